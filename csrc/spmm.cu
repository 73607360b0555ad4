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

template <typename T, int SW, int BR, int V, typename Values>
__global__ void __launch_bounds__(SW *BR) spmm_kernel(const rosa_spmm_params p) {
  constexpr int VEC = kVec<T>;
  constexpr int64_t TILE = static_cast<int64_t>(SW) * V * VEC; // columns per sub-warp step
  __shared__ int32_t s_col[BR][SW];
  __shared__ float s_val[BR][SW];

  const int sub = threadIdx.x / SW;
  const int lane = threadIdx.x % SW;
  const int64_t slot = static_cast<int64_t>(blockIdx.x) * BR + sub;
  // A whole sub-warp shares `slot`, so it leaves together and no mask names a gone lane.
  if (slot >= p.rows) return;
  const unsigned mask = subwarp_mask<SW>();

  const int32_t row = __ldg(p.row_swizzle + slot);
  const int32_t start = __ldg(p.row_ptr + row);
  const int32_t end = __ldg(p.row_ptr + row + 1);
  const T *__restrict__ values = static_cast<const T *>(p.values);
  const T *__restrict__ b = static_cast<const T *>(p.b);
  T *__restrict__ c = static_cast<T *>(p.c) + static_cast<int64_t>(row) * p.ldc;

  for (int64_t tile0 = static_cast<int64_t>(blockIdx.y) * TILE; tile0 < p.n;
       tile0 += static_cast<int64_t>(gridDim.y) * TILE) {
    float acc[V][VEC];
#pragma unroll
    for (int v = 0; v < V; ++v)
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[v][i] = 0.0f;

    // int64: a row ending within SW of INT32_MAX would overflow an int32 `base += SW`.
    for (int64_t base = start; base < end; base += SW) {
      const int count = static_cast<int>(end - base < SW ? end - base : SW);
      if (lane < count) {
        const int32_t q = static_cast<int32_t>(base + lane); // < end, so it fits
        s_col[sub][lane] = __ldg(p.col_idx + q);
        s_val[sub][lane] = Elem<T>::load(values[Values::index(p.perm, q)]);
      }
      __syncwarp(mask);
#pragma unroll 4
      for (int e = 0; e < count; ++e) {
        const float a = s_val[sub][e];
        const T *brow = b + static_cast<int64_t>(s_col[sub][e]) * p.ldb;
#pragma unroll
        for (int v = 0; v < V; ++v) {
          const int64_t j = tile0 + (static_cast<int64_t>(v) * SW + lane) * VEC;
          float x[VEC];
          load_vec<T>(brow + j, p.n - j, b, x);
#pragma unroll
          for (int i = 0; i < VEC; ++i) acc[v][i] = fmaf(a, x[i], acc[v][i]);
        }
      }
      // The next batch overwrites the staged pairs: every lane must be done reading them.
      __syncwarp(mask);
    }

#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int64_t j = tile0 + (static_cast<int64_t>(v) * SW + lane) * VEC;
      if (j < p.n) store_vec<T>(c + j, p.n - j, acc[v], p.alpha, p.beta);
    }
  }
}

template <typename T, int SW, int BR, int V, typename Values>
int32_t launch(const rosa_spmm_params &p, cudaStream_t stream) {
  constexpr int64_t TILE = static_cast<int64_t>(SW) * V * kVec<T>;
  const dim3 grid(ceil_div(p.rows, BR), static_cast<unsigned>(std::min<int64_t>(
                                            (p.n + TILE - 1) / TILE, 65535)));
  spmm_kernel<T, SW, BR, V, Values><<<grid, SW * BR, 0, stream>>>(p);
  return static_cast<int32_t>(cudaGetLastError());
}

template <typename Values>
int32_t run(const rosa_spmm_params *p, int32_t config, void *stream) {
  if (p == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  if (config < 0 || config >= static_cast<int32_t>(kSpmmCount)) return ROSA_ERR_BAD_CONFIG;
  if (p->dtype < ROSA_DTYPE_F32 || p->dtype > ROSA_DTYPE_BF16) return ROSA_ERR_BAD_DTYPE;
  if (p->rows < 0 || p->n < 0 || p->b_rows < 0 || p->ldb < p->n || p->ldc < p->n)
    return ROSA_ERR_BAD_ARGUMENT;
  if (p->rows == 0 || p->n == 0) return ROSA_OK; // C is empty: nothing to launch
  if (p->row_ptr == nullptr || p->row_swizzle == nullptr || p->c == nullptr)
    return ROSA_ERR_BAD_ARGUMENT;
  const auto s = static_cast<cudaStream_t>(stream);
  return with_dtype(p->dtype, [&](auto tag) {
    using T = decltype(tag);
    return with_index(
        config,
        [&](auto ic) {
          constexpr Tile t = kSpmmTiles[decltype(ic)::value];
          return launch<T, t.subwarp, t.block_rows, t.vectors, Values>(*p, s);
        },
        std::make_index_sequence<kSpmmCount>{});
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
