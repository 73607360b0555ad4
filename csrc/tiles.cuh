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
  // Long-row split: 0 = off; otherwise a row longer than `split` times the mean row length
  // (and than one sub-warp) gets a whole block, its BR sub-warps taking interleaved chunks.
  // A power-law mask's few long rows otherwise leave one sub-warp working long after the
  // rest of the grid is done. The host counts those rows (the launch's `long_rows`).
  int split = 0;
};

// SpMM and transposed SpMM (one kernel template, so one table). Short rows want small
// sub-warps (fewer idle lanes per nonzero); wide N wants more vectors in flight. The
// unroll > 1 rows are the aligned fast path (spmm.cu): unroll * vectors 16-byte loads in
// flight per thread. The unroll-1 rows stay until a GPU run has compared them. The split
// rows repeat two fast-path tiles with the long-row split on, so a GPU run (and the tuner)
// can compare each against its unsplit twin on skewed masks.
inline constexpr Tile kSpmmTiles[] = {
    {4, 32, 1},    {8, 16, 1},    {16, 8, 1},    {32, 4, 1},    {32, 4, 2},
    {4, 32, 1, 4}, {8, 16, 1, 8}, {16, 8, 1, 8}, {32, 4, 1, 8}, {32, 4, 2, 4},
    {8, 16, 1, 8, 4}, {32, 4, 1, 8, 4},
};

// SDDMM: the sub-warp spans k; small k wants small sub-warps. unroll: nonzeros per round
// sharing one load of L's chunk and one reduction (sddmm.cu); the unroll-1 rows stay
// until a GPU run has compared them; the split rows are twins of two unroll-4 rows.
inline constexpr Tile kSddmmTiles[] = {
    {4, 32, 1},    {8, 16, 1},    {16, 8, 1},    {32, 4, 1},    {32, 8, 2},
    {4, 32, 1, 4}, {8, 16, 1, 4}, {16, 8, 1, 4}, {32, 4, 1, 4}, {32, 8, 2, 2},
    {8, 16, 1, 4, 4}, {32, 4, 1, 4, 4},
};

template <size_t N> constexpr size_t count_of(const Tile (&)[N]) { return N; }

inline constexpr size_t kSpmmCount = count_of(kSpmmTiles);
inline constexpr size_t kSddmmCount = count_of(kSddmmTiles);

} // namespace rosa
