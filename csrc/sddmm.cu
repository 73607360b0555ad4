// SDDMM: out[p] = alpha * dot(L[i, :], R[j, :]) + beta * out[p] for each nonzero p = (i, j)
// of the mask. A sub-warp owns one mask row (swizzle order, longest first) and walks its
// nonzeros; for each, the lanes stride over k in 16-byte vectors and the partial dot
// products meet through xor shuffles inside the sub-warp. L's row is re-read per nonzero
// from L1, which is what keeps it cheap: the row stays hot while its nonzeros are walked.
#include "common.cuh"
#include "tiles.cuh"

namespace rosa {
namespace {

template <typename T, int SW, int BR, int V>
__global__ void __launch_bounds__(SW *BR) sddmm_kernel(const rosa_sddmm_params p) {
  constexpr int VEC = kVec<T>;
  constexpr int64_t STEP = static_cast<int64_t>(SW) * V * VEC;

  const int sub = threadIdx.x / SW;
  const int lane = threadIdx.x % SW;
  const int64_t slot = static_cast<int64_t>(blockIdx.x) * BR + sub;
  if (slot >= p.rows) return; // the whole sub-warp leaves together
  const unsigned mask = subwarp_mask<SW>();

  const int32_t row = __ldg(p.row_swizzle + slot);
  const int32_t start = __ldg(p.row_ptr + row);
  const int32_t end = __ldg(p.row_ptr + row + 1);
  const T *l0 = static_cast<const T *>(p.l);
  const T *__restrict__ l = l0 + static_cast<int64_t>(row) * p.ldl;
  const T *__restrict__ r = static_cast<const T *>(p.r);
  T *__restrict__ out = static_cast<T *>(p.out);

  for (int32_t q = start; q < end; ++q) {
    const T *rrow = r + static_cast<int64_t>(__ldg(p.col_idx + q)) * p.ldr;
    float sum = 0.0f;
    for (int64_t k0 = 0; k0 < p.k; k0 += STEP) {
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const int64_t j = k0 + (static_cast<int64_t>(v) * SW + lane) * VEC;
        float x[VEC], y[VEC];
        load_vec<T>(l + j, p.k - j, l0, x);
        load_vec<T>(rrow + j, p.k - j, r, y);
#pragma unroll
        for (int i = 0; i < VEC; ++i) sum = fmaf(x[i], y[i], sum);
      }
    }
#pragma unroll
    for (int off = SW / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(mask, sum, off, SW);
    if (lane == 0) {
      const float old = p.beta != 0.0f ? p.beta * Elem<T>::load(out[q]) : 0.0f;
      out[q] = Elem<T>::store(p.alpha * sum + old);
    }
  }
}

template <typename T, int SW, int BR, int V>
int32_t launch(const rosa_sddmm_params &p, cudaStream_t stream) {
  sddmm_kernel<T, SW, BR, V><<<ceil_div(p.rows, BR), SW * BR, 0, stream>>>(p);
  return static_cast<int32_t>(cudaGetLastError());
}

} // namespace
} // namespace rosa

extern "C" int32_t rosa_sddmm(const rosa_sddmm_params *p, int32_t config, void *stream) {
  using namespace rosa;
  if (p == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  if (config < 0 || config >= static_cast<int32_t>(kSddmmCount)) return ROSA_ERR_BAD_CONFIG;
  if (p->dtype < ROSA_DTYPE_F32 || p->dtype > ROSA_DTYPE_BF16) return ROSA_ERR_BAD_DTYPE;
  if (p->rows < 0 || p->cols < 0 || p->k < 0 || p->ldl < p->k || p->ldr < p->k)
    return ROSA_ERR_BAD_ARGUMENT;
  if (p->rows == 0) return ROSA_OK; // no mask rows, no outputs
  if (p->row_ptr == nullptr || p->row_swizzle == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  const auto s = static_cast<cudaStream_t>(stream);
  return with_dtype(p->dtype, [&](auto tag) {
    using T = decltype(tag);
    return with_index(
        config,
        [&](auto ic) {
          constexpr Tile t = kSddmmTiles[decltype(ic)::value];
          return launch<T, t.subwarp, t.block_rows, t.vectors>(*p, s);
        },
        std::make_index_sequence<kSddmmCount>{});
  });
}
