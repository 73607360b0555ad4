// THE table of compiled tile configurations: every kernel instantiation is generated from
// these arrays (via rosa::with_index), and Rust enumerates them through rosa_config_get,
// so the list exists exactly once.
#pragma once

#include <cstddef>

#include "rosa_kernels.h"

namespace rosa {

struct Tile {
  int subwarp;    // threads per sparse row
  int block_rows; // sub-warps per block
  int vectors;    // 16-byte vectors per thread per step along the dense dimension
  int unroll = 1; // nonzeros per round: SpMM's fast-path load batch, SDDMM's shared reduction
};

// SpMM and transposed SpMM (one kernel template, so one table). Short rows want small
// sub-warps (fewer idle lanes per nonzero); wide N wants more vectors in flight. The
// unroll > 1 rows are the aligned fast path (spmm.cu): unroll * vectors 16-byte loads in
// flight per thread. The unroll-1 rows stay until a GPU run has compared them.
inline constexpr Tile kSpmmTiles[] = {
    {4, 32, 1},    {8, 16, 1},    {16, 8, 1},    {32, 4, 1},    {32, 4, 2},
    {4, 32, 1, 4}, {8, 16, 1, 8}, {16, 8, 1, 8}, {32, 4, 1, 8}, {32, 4, 2, 4},
};

// SDDMM: the sub-warp spans k; small k wants small sub-warps. unroll: nonzeros per round
// sharing one load of L's chunk and one reduction (sddmm.cu); the unroll-1 rows stay
// until a GPU run has compared them.
inline constexpr Tile kSddmmTiles[] = {
    {4, 32, 1},    {8, 16, 1},    {16, 8, 1},    {32, 4, 1},    {32, 8, 2},
    {4, 32, 1, 4}, {8, 16, 1, 4}, {16, 8, 1, 4}, {32, 4, 1, 4}, {32, 8, 2, 2},
};

template <size_t N> constexpr size_t count_of(const Tile (&)[N]) { return N; }

inline constexpr size_t kSpmmCount = count_of(kSpmmTiles);
inline constexpr size_t kSddmmCount = count_of(kSddmmTiles);

} // namespace rosa
