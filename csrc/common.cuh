// Device helpers shared by every kernel: element conversion, 16-byte vector access with
// a per-access alignment test, sub-warp masks, and the dtype / tile dispatch that turns
// the runtime arguments of the C ABI into template parameters.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "rosa_kernels.h"

namespace rosa {

// Loads widen to f32 and stores round from f32: the accumulator type is always f32.
template <typename T> struct Elem;
template <> struct Elem<float> {
  __device__ __forceinline__ static float load(float x) { return x; }
  __device__ __forceinline__ static float store(float x) { return x; }
};
template <> struct Elem<__half> {
  __device__ __forceinline__ static float load(__half x) { return __half2float(x); }
  __device__ __forceinline__ static __half store(float x) { return __float2half_rn(x); }
};
template <> struct Elem<__nv_bfloat16> {
  __device__ __forceinline__ static float load(__nv_bfloat16 x) { return __bfloat162float(x); }
  __device__ __forceinline__ static __nv_bfloat16 store(float x) { return __float2bfloat16_rn(x); }
};

// Elements per 16-byte vector: 4 for f32, 8 for f16 and bf16.
template <typename T> constexpr int kVec = 16 / static_cast<int>(sizeof(T));

__device__ __forceinline__ bool aligned16(const void *p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Widens elements S .. S + kVec of the pair of vectors `u` (compile-time S, so the
// extraction stays in registers).
template <typename T, int S>
__device__ __forceinline__ void unpack_shifted(const uint4 (&u)[2], float *out) {
  const T *e = reinterpret_cast<const T *>(u);
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) out[i] = Elem<T>::load(e[S + i]);
}

template <typename T, size_t... S>
__device__ __forceinline__ void unpack_at(int shift, const uint4 (&u)[2], float *out,
                                          std::index_sequence<S...>) {
  (void)((shift == static_cast<int>(S) ? (unpack_shifted<T, S>(u, out), true) : false) || ...);
}

// Reads up to kVec<T> elements starting at p (fewer when `avail` < kVec, none when <= 0),
// zero-filling the rest, as 16-byte loads wherever possible:
//   - p 16-byte aligned: one vector;
//   - p misaligned (a row of B or L whose start is not, as with an odd leading dimension):
//     the two aligned vectors around p[0 .. kVec) and a register shift, as long as both
//     lie inside [lo, p + avail) so that nothing outside the operand is touched;
//   - otherwise (the last partial chunk of a row): scalar loads of just that chunk.
// The test is on the actual address, so a misaligned row costs a second vector load per
// chunk, never scalar loads for the whole row. `lo` is the operand's first element.
// ReadOnly: through the non-coherent read-only path (ld.global.nc), which is valid only for
// memory no thread writes during the kernel, so not for the C read of alpha/beta updates.
template <typename T, bool ReadOnly = true>
__device__ __forceinline__ void load_vec(const T *__restrict__ p, int64_t avail,
                                         const T *lo, float *out) {
  constexpr int V = kVec<T>;
  const int shift = static_cast<int>((reinterpret_cast<uintptr_t>(p) & 15u) / sizeof(T));
  if (avail >= V && shift == 0) {
    const uint4 *q = reinterpret_cast<const uint4 *>(p);
    const uint4 u = ReadOnly ? __ldg(q) : *q;
    const T *e = reinterpret_cast<const T *>(&u);
#pragma unroll
    for (int i = 0; i < V; ++i) out[i] = Elem<T>::load(e[i]);
  } else if (ReadOnly && shift != 0 && avail >= 2 * V - shift && p - shift >= lo) {
    const uint4 *q = reinterpret_cast<const uint4 *>(p - shift);
    const uint4 u[2] = {__ldg(q), __ldg(q + 1)};
    unpack_at<T>(shift, u, out, std::make_index_sequence<V>{});
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) out[i] = i < avail ? Elem<T>::load(p[i]) : 0.0f;
  }
}

// out[i] = alpha * acc[i] + beta * out[i] for the first min(avail, kVec) elements; with
// beta == 0 the old values are never read, so a NaN-poisoned output is overwritten.
template <typename T>
__device__ __forceinline__ void store_vec(T *__restrict__ p, int64_t avail, const float *acc,
                                          float alpha, float beta) {
  constexpr int V = kVec<T>;
  float old[V];
  if (beta != 0.0f) {
    load_vec<T, false>(p, avail, p, old);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) old[i] = 0.0f;
  }
  if (avail >= V && aligned16(p)) {
    uint4 u;
    T *e = reinterpret_cast<T *>(&u);
#pragma unroll
    for (int i = 0; i < V; ++i) e[i] = Elem<T>::store(alpha * acc[i] + beta * old[i]);
    *reinterpret_cast<uint4 *>(p) = u;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i)
      if (i < avail) p[i] = Elem<T>::store(alpha * acc[i] + beta * old[i]);
  }
}

// The lanes of this thread's sub-warp of SW threads, for __syncwarp and shuffles: sub-warps
// of one warp run different rows with different trip counts, so a full-warp mask would
// wait on threads that never arrive.
template <int SW> __device__ __forceinline__ unsigned subwarp_mask() {
  static_assert(SW == 4 || SW == 8 || SW == 16 || SW == 32, "sub-warp size");
  if constexpr (SW == 32) {
    return 0xffffffffu;
  } else {
    const unsigned lane = threadIdx.x & 31u;
    return ((1u << SW) - 1u) << (lane & ~static_cast<unsigned>(SW - 1));
  }
}

// Calls f(T{}) with T the element type named by a rosa_dtype.
template <typename F> int32_t with_dtype(int32_t dtype, F &&f) {
  switch (dtype) {
  case ROSA_DTYPE_F32: return f(float{});
  case ROSA_DTYPE_F16: return f(__half{});
  case ROSA_DTYPE_BF16: return f(__nv_bfloat16{});
  default: return ROSA_ERR_BAD_DTYPE;
  }
}

// Calls f(std::integral_constant<size_t, I>{}) for the I == index, so each tile of a table
// becomes one template instantiation without the table being spelled out a second time.
template <typename F, size_t... I>
int32_t with_index(int32_t index, F &&f, std::index_sequence<I...>) {
  int32_t rc = ROSA_ERR_BAD_CONFIG;
  (void)((index == static_cast<int32_t>(I)
              ? (rc = f(std::integral_constant<size_t, I>{}), true)
              : false) ||
         ...);
  return rc;
}

inline unsigned ceil_div(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

// Block size and grid of the elementwise kernels: grid-stride loops over a grid capped at
// kMaxBlocks (enough to fill any current GPU several times over), so an n of any size
// stays inside the launch limits and each thread's index math is plain int64.
// ROSA_MAX_BLOCKS: the cuda-emu build sets a tiny cap so that its tests reach the
// grid-stride loops' second pass with small n.
#ifndef ROSA_MAX_BLOCKS
#define ROSA_MAX_BLOCKS 4096
#endif
constexpr int kElemThreads = 256;
constexpr int64_t kMaxBlocks = ROSA_MAX_BLOCKS;
inline unsigned elem_blocks(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kElemThreads - 1) / kElemThreads, kMaxBlocks));
}
__device__ __forceinline__ int64_t grid_start() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

} // namespace rosa
