// The elementwise and reduction work around the training step's products: scale-add, dtype
// casts, bias add and its gradient (a row sum, activations being feature-major), squared
// norms for gradient clipping, and the CSR-add that folds a sparse adapter into a dense
// weight. Everything is memory-bound and simple: grid-stride loops (common.cuh) over a
// capped grid, f32 arithmetic, f64 where sums must match a CPU f64 reference.
#include "common.cuh"

namespace rosa {
namespace {

// Sum of `v` over the block (kElemThreads threads, all of which must call it), valid in
// thread 0. The leading barrier lets a caller loop: no warp overwrites `warp_sums` while
// warp 0 may still be reading the previous call's.
template <typename A> __device__ A block_sum(A v) {
  constexpr int kWarps = kElemThreads / 32;
  __shared__ A warp_sums[kWarps];
  __syncthreads();
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? warp_sums[lane] : A(0);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  return v;
}

__global__ void __launch_bounds__(kElemThreads)
    sum_squares_kernel(int64_t n, const float *__restrict__ x, double *acc) {
  double s = 0.0;
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    const double xi = x[i];
    s += xi * xi;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) atomicAdd(acc, s);
}

__global__ void __launch_bounds__(kElemThreads)
    axpby_kernel(int64_t n, float alpha, const float *__restrict__ x, float beta,
                 float *__restrict__ y) {
  for (int64_t i = grid_start(); i < n; i += grid_stride())
    y[i] = beta != 0.0f ? alpha * x[i] + beta * y[i] : alpha * x[i];
}

template <typename S, typename D>
__global__ void __launch_bounds__(kElemThreads)
    cast_kernel(int64_t n, const S *__restrict__ src, D *__restrict__ dst) {
  for (int64_t i = grid_start(); i < n; i += grid_stride())
    dst[i] = Elem<D>::store(Elem<S>::load(src[i]));
}

__global__ void __launch_bounds__(kElemThreads)
    bias_add_kernel(int64_t rows, int64_t cols, const float *__restrict__ bias,
                    float *__restrict__ y) {
  for (int64_t i = grid_start(); i < rows * cols; i += grid_stride()) y[i] += bias[i / cols];
}

// One block per row (grid-stride over rows): every thread of a block runs the same number
// of rows, so all of them reach block_sum's barriers.
__global__ void __launch_bounds__(kElemThreads)
    row_sum_kernel(int64_t rows, int64_t cols, const float *__restrict__ x,
                   float *__restrict__ out) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float *xr = x + row * cols;
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
    s = block_sum(s);
    if (threadIdx.x == 0) out[row] = s;
  }
}

// One warp per row; its lanes stride over the row's entries. Columns are unique within a
// row and rows are disjoint, so no two threads ever write the same element; `base` either
// is `dense` (same row, same element read then written by one thread) or does not overlap it.
template <typename T>
__global__ void __launch_bounds__(kElemThreads) csr_add_kernel(const rosa_csr_add_params p) {
  constexpr int kWarps = kElemThreads / 32;
  const int lane = threadIdx.x % 32;
  T *const dense = static_cast<T *>(p.dense);
  const T *const base = p.base != nullptr ? static_cast<const T *>(p.base) : dense;
  const int64_t base_ld = p.base != nullptr ? p.base_ld : p.ld;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < p.rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    T *dense_row = dense + row * p.ld;
    const T *base_row = base + row * base_ld;
    const int32_t end = p.row_ptr[row + 1];
    for (int32_t q = p.row_ptr[row] + lane; q < end; q += 32) {
      const int32_t c = p.col_idx[q];
      dense_row[c] = Elem<T>::store(Elem<T>::load(base_row[c]) + p.alpha * p.values[q]);
    }
  }
}

int32_t launched() { return static_cast<int32_t>(cudaGetLastError()); }

cudaStream_t as_stream(void *s) { return static_cast<cudaStream_t>(s); }

bool valid_dtype(int32_t d) { return d >= ROSA_DTYPE_F32 && d <= ROSA_DTYPE_BF16; }

} // namespace
} // namespace rosa

using namespace rosa;

extern "C" int32_t rosa_sum_squares(int64_t n, const float *x, double *acc, void *stream) {
  if (n < 0) return ROSA_ERR_BAD_ARGUMENT;
  if (n == 0) return ROSA_OK;
  if (x == nullptr || acc == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  sum_squares_kernel<<<elem_blocks(n), kElemThreads, 0, as_stream(stream)>>>(n, x, acc);
  return launched();
}

extern "C" int32_t rosa_axpby(int64_t n, float alpha, const float *x, float beta, float *y,
                              void *stream) {
  if (n < 0) return ROSA_ERR_BAD_ARGUMENT;
  if (n == 0) return ROSA_OK;
  if (x == nullptr || y == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  axpby_kernel<<<elem_blocks(n), kElemThreads, 0, as_stream(stream)>>>(n, alpha, x, beta, y);
  return launched();
}

extern "C" int32_t rosa_cast(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype,
                             void *dst, void *stream) {
  if (!valid_dtype(src_dtype) || !valid_dtype(dst_dtype)) return ROSA_ERR_BAD_DTYPE;
  if (n < 0) return ROSA_ERR_BAD_ARGUMENT;
  if (n == 0) return ROSA_OK;
  if (src == nullptr || dst == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  return with_dtype(src_dtype, [&](auto s_tag) {
    using S = decltype(s_tag);
    return with_dtype(dst_dtype, [&](auto d_tag) {
      using D = decltype(d_tag);
      cast_kernel<S, D><<<elem_blocks(n), kElemThreads, 0, as_stream(stream)>>>(
          n, static_cast<const S *>(src), static_cast<D *>(dst));
      return launched();
    });
  });
}

extern "C" int32_t rosa_bias_add(int64_t rows, int64_t cols, const float *bias, float *y,
                                 void *stream) {
  if (rows < 0 || cols < 0 || (cols > 0 && rows > INT64_MAX / cols)) return ROSA_ERR_BAD_ARGUMENT;
  if (rows == 0 || cols == 0) return ROSA_OK;
  if (bias == nullptr || y == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  bias_add_kernel<<<elem_blocks(rows * cols), kElemThreads, 0, as_stream(stream)>>>(rows, cols,
                                                                                    bias, y);
  return launched();
}

extern "C" int32_t rosa_row_sum(int64_t rows, int64_t cols, const float *x, float *out,
                                void *stream) {
  if (rows < 0 || cols < 0) return ROSA_ERR_BAD_ARGUMENT;
  if (rows == 0) return ROSA_OK;
  // cols == 0 still launches: each row's sum is 0 and must be written.
  if (out == nullptr || (cols > 0 && x == nullptr)) return ROSA_ERR_BAD_ARGUMENT;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, kMaxBlocks));
  row_sum_kernel<<<blocks, kElemThreads, 0, as_stream(stream)>>>(rows, cols, x, out);
  return launched();
}

extern "C" int32_t rosa_csr_add(const rosa_csr_add_params *p, void *stream) {
  if (p == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  if (!valid_dtype(p->dtype)) return ROSA_ERR_BAD_DTYPE;
  if (p->rows < 0 || p->cols < 0 || p->ld < p->cols ||
      (p->base != nullptr && p->base_ld < p->cols))
    return ROSA_ERR_BAD_ARGUMENT;
  if (p->rows == 0) return ROSA_OK;
  if (p->row_ptr == nullptr || p->col_idx == nullptr || p->values == nullptr ||
      p->dense == nullptr)
    return ROSA_ERR_BAD_ARGUMENT;
  constexpr int64_t kRowsPerBlock = kElemThreads / 32;
  const unsigned blocks = static_cast<unsigned>(
      std::min<int64_t>((p->rows + kRowsPerBlock - 1) / kRowsPerBlock, kMaxBlocks));
  return with_dtype(p->dtype, [&](auto tag) {
    csr_add_kernel<decltype(tag)><<<blocks, kElemThreads, 0, as_stream(stream)>>>(*p);
    return launched();
  });
}
