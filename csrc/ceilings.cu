// Probes of the GPU's own ceilings, for the roofline the benchmarks quote (DESIGN.md,
// "Performance model": measured on the machine of the run, never copied from a datasheet):
//   - a read loop over a buffer, through L2 only (never L1): over a buffer that fits in
//     L2, read again and again, it runs at the L2 bandwidth that our kernels' gathers of B
//     rows (SpMM) and R rows (SDDMM) see;
//   - a loop of independent f32 FMAs: the CUDA-core rate, which is what our kernels use
//     for every dtype (they convert to f32 and call fmaf; no tensor cores).
// The DRAM ceiling is the driver's own device-to-device copy (src/cuda/ceilings.rs).
// Plain CUDA on purpose (no inline PTX, no cooperative groups), like the other kernels.
#include "common.cuh"

namespace rosa {
namespace {

static_assert(ROSA_PROBE_THREADS % 32 == 0, "whole warps");

// Each thread sums what it reads and stores the sum only if it is nonzero: the caller's
// buffer is zeros, so the store never happens, but the compiler cannot know that and must
// keep every load.
__global__ void __launch_bounds__(ROSA_PROBE_THREADS)
    probe_read_kernel(const float4 *__restrict__ buf, int64_t n, int32_t passes, float *sink) {
  float acc = 0.0f;
  const int64_t stride = grid_stride();
  for (int32_t pass = 0; pass < passes; ++pass) {
#pragma unroll 4
    for (int64_t i = grid_start(); i < n; i += stride) {
      // __ldcg: cached in L2, not L1. Every pass reads the same addresses on the same
      // thread, and the per-SM share of an L2-sized buffer would otherwise fit in L1.
      const float4 v = __ldcg(buf + i);
      acc += (v.x + v.y) + (v.z + v.w);
    }
  }
  if (acc != 0.0f) sink[0] = acc;
}

// ROSA_PROBE_FMA_CHAINS independent chains per thread keep every FMA pipe busy despite
// the instruction's latency. `a` and `b` come at run time so nothing folds; with a = 1,
// b = 0 the values stay finite and the final test stays false.
__global__ void __launch_bounds__(ROSA_PROBE_THREADS)
    probe_fma_kernel(int32_t iters, float a, float b, float *sink) {
  float x[ROSA_PROBE_FMA_CHAINS];
#pragma unroll
  for (int c = 0; c < ROSA_PROBE_FMA_CHAINS; ++c) x[c] = static_cast<float>(threadIdx.x + c + 1);
  for (int32_t i = 0; i < iters; ++i) {
#pragma unroll
    for (int c = 0; c < ROSA_PROBE_FMA_CHAINS; ++c) x[c] = fmaf(x[c], a, b);
  }
  float s = 0.0f;
#pragma unroll
  for (int c = 0; c < ROSA_PROBE_FMA_CHAINS; ++c) s += x[c];
  if (s < 0.0f) sink[0] = s;
}

} // namespace
} // namespace rosa

extern "C" int32_t rosa_probe_read(const void *buf, int64_t bytes, int32_t passes, int32_t blocks,
                                   float *sink, void *stream) {
  if (bytes < 0 || bytes % 16 != 0 || passes < 0 || blocks < 1) return ROSA_ERR_BAD_ARGUMENT;
  if (bytes == 0 || passes == 0) return ROSA_OK;
  if (buf == nullptr || sink == nullptr || reinterpret_cast<uintptr_t>(buf) % 16 != 0)
    return ROSA_ERR_BAD_ARGUMENT;
  rosa::probe_read_kernel<<<static_cast<unsigned>(blocks), ROSA_PROBE_THREADS, 0,
                            static_cast<cudaStream_t>(stream)>>>(
      static_cast<const float4 *>(buf), bytes / 16, passes, sink);
  return static_cast<int32_t>(cudaGetLastError());
}

extern "C" int32_t rosa_probe_fma(int32_t blocks, int32_t iters, float *sink, void *stream) {
  if (blocks < 1 || iters < 0 || sink == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  rosa::probe_fma_kernel<<<static_cast<unsigned>(blocks), ROSA_PROBE_THREADS, 0,
                           static_cast<cudaStream_t>(stream)>>>(iters, 1.0f, 0.0f, sink);
  return static_cast<int32_t>(cudaGetLastError());
}
