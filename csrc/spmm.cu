// SpMM, C = alpha A B + beta C, and transposed SpMM, C = alpha A^T B + beta C: one kernel
// template. The transposed form walks the transpose plan's structure (row_ptr/col_idx of
// A^T, built once since the mask is fixed) and gathers A's current values through the
// plan's permutation: nothing is transposed per call.
//
// Work split: a sub-warp of SW threads owns one sparse row, taken in the row-swizzle order
// (longest first) so that the long rows start first and the short ones fill in behind.
// Along N, each lane owns V 16-byte vectors per column tile, and consecutive lanes own
// consecutive vectors, so a sub-warp's loads of one B row are coalesced. The row's
// (column, value) pairs are staged through shared memory SW at a time: each lane loads one
// pair (coalesced), then every lane reads all of them (a shared-memory broadcast).
//
// Long-row split (tiles with split > 0): one sub-warp per row leaves a power-law mask's few
// very long rows running long after the rest of the grid is done. So the first
// `long_rows` swizzle slots (the longest rows) get a whole block each: sub-warp s takes
// the row's batches s, s + BR, ..., keeps its partial sums in registers, and after a
// block barrier sub-warp v adds the BR partials of its vectors v in sub-warp order and
// stores. A fixed summation order and no atomics, so a rerun gives the same bits
// (cuSPARSE's ALG2 and transposed paths do not promise that).
//
// Output type TC: C in the operands' type T, or f32 for bf16 operands (c_f32). The RoSA
// layer's sparse terms, S x and S^T dY, read bf16 values and activations but add into f32
// activations; a bf16 C would need a temporary, a cast and an add over the whole M x N
// output, more traffic than the bf16 reads save at RoSA's densities.
#include "common.cuh"
#include "tiles.cuh"

namespace rosa {
namespace {

// Value-index policies: the only difference between SpMM and transposed SpMM.
struct DirectValues {
  __device__ __forceinline__ static int32_t index(const int32_t *, int32_t p) { return p; }
};
struct GatheredValues {
  __device__ __forceinline__ static int32_t index(const int32_t *__restrict__ perm, int32_t p) {
    return __ldg(perm + p);
  }
};

// Code-path policies of the kernel's inner loop over one staged batch of nonzeros.
// GeneralPath: each B vector through load_vec, which tests alignment and the row's end per
// access, so any ldb, base offset and n work. FastPath<U>: for B 16-byte aligned with ldb
// a multiple of the vector width (decided once per launch, on the host) and a column tile
// that lies wholly inside n, B's vectors of U nonzeros are loaded into registers before
// the first FMA uses one, with no per-access test: U * V independent 16-byte loads in
// flight per thread instead of one. The last, partial column tile takes the general path.
struct GeneralPath {
  static constexpr int kUnroll = 1;
};
template <int U> struct FastPath {
  static_assert(U > 1, "the fast path batches several nonzeros");
  static constexpr int kUnroll = U;
};

// Elements of C per store: a whole T vector when C is T, else (f32 C of bf16 operands) one
// 16-byte f32 vector, kVec<T> / 4 of them per T vector.
template <typename T, typename TC>
constexpr int kStore = kVec<TC> < kVec<T> ? kVec<TC> : kVec<T>;

// out[i] = alpha acc[i] + beta out[i] for the kVec<T> accumulators of one T vector, each
// store bounded by what is left of the row.
template <typename T, typename TC>
__device__ __forceinline__ void store_out(TC *p, int64_t avail, const float *acc, float alpha,
                                          float beta) {
  constexpr int CV = kStore<T, TC>;
#pragma unroll
  for (int h = 0; h < kVec<T>; h += CV)
    if (h < avail) store_vec<TC>(p + h, avail - h, acc + h, alpha, beta);
}

template <typename T, int SW, int V>
__device__ __forceinline__ void general_batch(float (&acc)[V][kVec<T>], const int64_t *s_off,
                                              const float *s_val, int count, const T *b,
                                              int64_t tile0, int lane, int64_t n) {
  constexpr int VEC = kVec<T>;
#pragma unroll 4
  for (int e = 0; e < count; ++e) {
    const float a = s_val[e];
    const T *brow = b + s_off[e];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int64_t j = tile0 + (static_cast<int64_t>(v) * SW + lane) * VEC;
      float x[VEC];
      load_vec<T>(brow + j, n - j, b, x);
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[v][i] = fmaf(a, x[i], acc[v][i]);
    }
  }
}

// acc += a[k] * B[row k, this lane's vectors] for the K nonzeros at e: every load first.
template <typename T, int SW, int V, int K>
__device__ __forceinline__ void fast_round(float (&acc)[V][kVec<T>], const int64_t *s_off,
                                           const float *s_val, const T *bcol) {
  constexpr int VEC = kVec<T>;
  uint4 u[K][V];
#pragma unroll
  for (int k = 0; k < K; ++k)
#pragma unroll
    for (int v = 0; v < V; ++v)
      u[k][v] = __ldg(reinterpret_cast<const uint4 *>(bcol + s_off[k] + v * SW * VEC));
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const float a = s_val[k];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const T *x = reinterpret_cast<const T *>(&u[k][v]);
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[v][i] = fmaf(a, Elem<T>::load(x[i]), acc[v][i]);
    }
  }
}

template <typename T, int SW, int V, int U>
__device__ __forceinline__ void fast_batch(float (&acc)[V][kVec<T>], const int64_t *s_off,
                                           const float *s_val, int count, const T *b,
                                           int64_t tile0, int lane) {
  const T *bcol = b + tile0 + static_cast<int64_t>(lane) * kVec<T>;
  int e = 0;
  for (; e + U <= count; e += U) fast_round<T, SW, V, U>(acc, s_off + e, s_val + e, bcol);
  // The batch's last count % U nonzeros: still no per-access test, one at a time.
  for (; e < count; ++e) fast_round<T, SW, V, 1>(acc, s_off + e, s_val + e, bcol);
}

// Adds the BR sub-warps' partial sums of a long row in sub-warp order and stores them:
// sub-warp v finishes vector v of every lane (V <= BR in every tile). Both barriers are
// reached by the whole block: a long row's block has no exited thread.
template <typename T, typename TC, int SW, int BR, int V>
__device__ __forceinline__ void combine_store(const float (&acc)[V][kVec<T>],
                                              float (&s_part)[BR][V][kVec<T>][SW], int sub,
                                              int lane, TC *c, int64_t tile0,
                                              const rosa_spmm_params &p) {
  constexpr int VEC = kVec<T>;
  static_assert(V <= BR, "one sub-warp finishes each vector");
  // [sub][v][i][lane]: consecutive lanes, consecutive words, for the writes and the reads.
#pragma unroll
  for (int v = 0; v < V; ++v)
#pragma unroll
    for (int i = 0; i < VEC; ++i) s_part[sub][v][i][lane] = acc[v][i];
  __syncthreads();
  if (sub < V) {
    float sum[VEC];
#pragma unroll
    for (int i = 0; i < VEC; ++i) sum[i] = s_part[0][sub][i][lane];
    for (int s = 1; s < BR; ++s)
#pragma unroll
      for (int i = 0; i < VEC; ++i) sum[i] += s_part[s][sub][i][lane];
    const int64_t j = tile0 + (static_cast<int64_t>(sub) * SW + lane) * VEC;
    if (j < p.n) store_out<T>(c + j, p.n - j, sum, p.alpha, p.beta);
  }
  // The next column tile rewrites s_part: every sub-warp must be done reading it.
  __syncthreads();
}

template <typename T, typename TC, int SW, int BR, int V, typename Values, typename Path,
          bool Split>
__global__ void __launch_bounds__(SW *BR) spmm_kernel(const rosa_spmm_params p) {
  constexpr int VEC = kVec<T>;
  constexpr int U = Path::kUnroll;
  static_assert(U <= SW, "a round batches at most one staged batch of SW nonzeros");
  constexpr int64_t TILE = static_cast<int64_t>(SW) * V * VEC; // columns per sub-warp step
  // B's row offsets (col * ldb, scaled once when staged) and the values, per sub-warp.
  __shared__ int64_t s_off[BR][SW];
  __shared__ float s_val[BR][SW];

  const int sub = threadIdx.x / SW;
  const int lane = threadIdx.x % SW;
  // Blocks below `first` own one long row each; the rest hold BR rows, one per sub-warp.
  const int64_t first = Split ? p.long_rows : 0;
  const bool long_row = Split && blockIdx.x < first; // the same for the whole block
  const int64_t slot =
      long_row ? blockIdx.x : first + (static_cast<int64_t>(blockIdx.x) - first) * BR + sub;
  // A whole sub-warp shares `slot`, so it leaves together and no mask names a gone lane.
  if (slot >= p.rows) return;
  const unsigned mask = subwarp_mask<SW>();

  const int32_t row = __ldg(p.row_swizzle + slot);
  const int32_t start = __ldg(p.row_ptr + row);
  const int32_t end = __ldg(p.row_ptr + row + 1);
  const T *__restrict__ values = static_cast<const T *>(p.values);
  const T *__restrict__ b = static_cast<const T *>(p.b);
  TC *__restrict__ c = static_cast<TC *>(p.c) + static_cast<int64_t>(row) * p.ldc;
  // This sub-warp's batches: from `from`, `step` apart (a long row's sub-warps interleave
  // theirs). Fixed before the column loop, so the batch loop carries no more live values
  // than the unsplit kernel's; `from` is clamped to the row's end, so it fits an int32.
  const int64_t own = start + static_cast<int64_t>(long_row ? sub : 0) * SW;
  const int32_t from = own < end ? static_cast<int32_t>(own) : end;
  const int32_t step = long_row ? SW * BR : SW;

  for (int64_t tile0 = static_cast<int64_t>(blockIdx.y) * TILE; tile0 < p.n;
       tile0 += static_cast<int64_t>(gridDim.y) * TILE) {
    float acc[V][VEC];
#pragma unroll
    for (int v = 0; v < V; ++v)
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[v][i] = 0.0f;
    // The same for every lane of the sub-warp, so the branch below never diverges.
    const bool full_tile = tile0 + TILE <= p.n;

    // int64: a row ending within `step` of INT32_MAX would overflow an int32 `base`.
    for (int64_t base = from; base < end; base += step) {
      const int count = static_cast<int>(end - base < SW ? end - base : SW);
      if (lane < count) {
        const int32_t q = static_cast<int32_t>(base + lane); // < end, so it fits
        s_off[sub][lane] = static_cast<int64_t>(__ldg(p.col_idx + q)) * p.ldb;
        s_val[sub][lane] = Elem<T>::load(values[Values::index(p.perm, q)]);
      }
      __syncwarp(mask);
      if constexpr (U > 1) {
        if (full_tile)
          fast_batch<T, SW, V, U>(acc, s_off[sub], s_val[sub], count, b, tile0, lane);
        else
          general_batch<T, SW, V>(acc, s_off[sub], s_val[sub], count, b, tile0, lane, p.n);
      } else {
        general_batch<T, SW, V>(acc, s_off[sub], s_val[sub], count, b, tile0, lane, p.n);
      }
      // The next batch overwrites the staged pairs: every lane must be done reading them.
      __syncwarp(mask);
    }

    if constexpr (Split) {
      if (long_row) {
        __shared__ float s_part[BR][V][VEC][SW];
        combine_store<T, TC, SW, BR, V>(acc, s_part, sub, lane, c, tile0, p);
        continue;
      }
    }
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int64_t j = tile0 + (static_cast<int64_t>(v) * SW + lane) * VEC;
      if (j < p.n) store_out<T>(c + j, p.n - j, acc[v], p.alpha, p.beta);
    }
  }
}

// The fast path's precondition, decided once per launch: every B row start 16-byte aligned.
template <typename T> bool b_rows_aligned(const rosa_spmm_params &p) {
  return (reinterpret_cast<uintptr_t>(p.b) & 15u) == 0 && p.ldb % kVec<T> == 0;
}

template <typename T, typename TC, int SW, int BR, int V, int U, bool Split, typename Values>
int32_t launch(const rosa_spmm_params &p, cudaStream_t stream) {
  constexpr int64_t TILE = static_cast<int64_t>(SW) * V * kVec<T>;
  const dim3 grid(static_cast<unsigned>(p.long_rows) + ceil_div(p.rows - p.long_rows, BR),
                  static_cast<unsigned>(std::min<int64_t>((p.n + TILE - 1) / TILE, 65535)));
  if constexpr (U > 1) {
    if (b_rows_aligned<T>(p)) {
      spmm_kernel<T, TC, SW, BR, V, Values, FastPath<U>, Split>
          <<<grid, SW * BR, 0, stream>>>(p);
      return static_cast<int32_t>(cudaGetLastError());
    }
  }
  spmm_kernel<T, TC, SW, BR, V, Values, GeneralPath, Split><<<grid, SW * BR, 0, stream>>>(p);
  return static_cast<int32_t>(cudaGetLastError());
}

template <typename T, typename TC, typename Values>
int32_t launch_tile(const rosa_spmm_params &p, int32_t config, cudaStream_t stream) {
  return with_index(
      config,
      [&](auto ic) {
        constexpr Tile t = kSpmmTiles[decltype(ic)::value];
        return launch<T, TC, t.subwarp, t.block_rows, t.vectors, t.unroll, (t.split > 0),
                      Values>(p, stream);
      },
      std::make_index_sequence<kSpmmCount>{});
}

template <typename Values>
int32_t run(const rosa_spmm_params *p, int32_t config, void *stream) {
  if (p == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  if (config < 0 || config >= static_cast<int32_t>(kSpmmCount)) return ROSA_ERR_BAD_CONFIG;
  // An unsplit kernel treats every slot as a sub-warp's row: long_rows > 0 would skip rows.
  if (kSpmmTiles[config].split == 0 && p->long_rows != 0) return ROSA_ERR_BAD_ARGUMENT;
  if (p->dtype < ROSA_DTYPE_F32 || p->dtype > ROSA_DTYPE_BF16) return ROSA_ERR_BAD_DTYPE;
  if (p->c_f32 != 0 && p->c_f32 != 1) return ROSA_ERR_BAD_ARGUMENT;
  // f16 operands with an f32 C are not compiled: no caller needs them (the layer's W is
  // f32, bf16 or NF4 dequantized to bf16), and each pairing is another 28 kernels.
  if (p->c_f32 == 1 && p->dtype == ROSA_DTYPE_F16) return ROSA_ERR_BAD_DTYPE;
  if (p->rows < 0 || p->n < 0 || p->b_rows < 0 || p->ldb < p->n || p->ldc < p->n ||
      p->long_rows < 0 || p->long_rows > p->rows)
    return ROSA_ERR_BAD_ARGUMENT;
  if (p->rows == 0 || p->n == 0) return ROSA_OK; // C is empty: nothing to launch
  if (p->row_ptr == nullptr || p->row_swizzle == nullptr || p->c == nullptr)
    return ROSA_ERR_BAD_ARGUMENT;
  const auto s = static_cast<cudaStream_t>(stream);
  if (p->c_f32 == 1 && p->dtype == ROSA_DTYPE_BF16)
    return launch_tile<__nv_bfloat16, float, Values>(*p, config, s);
  // An f32 C of f32 operands is the plain f32 product.
  return with_dtype(p->dtype, [&](auto tag) {
    using T = decltype(tag);
    return launch_tile<T, T, Values>(*p, config, s);
  });
}

} // namespace
} // namespace rosa

extern "C" int32_t rosa_spmm(const rosa_spmm_params *params, int32_t config, void *stream) {
  if (params != nullptr && params->perm != nullptr) return ROSA_ERR_BAD_ARGUMENT;
  return rosa::run<rosa::DirectValues>(params, config, stream);
}

extern "C" int32_t rosa_spmm_t(const rosa_spmm_params *params, int32_t config, void *stream) {
  if (params != nullptr && params->perm == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  return rosa::run<rosa::GatheredValues>(params, config, stream);
}
