// The optimizer step: AdamW on flat f32 buffers (parameter, gradient and both moments),
// elementwise, so one thread per element in a grid-stride loop.
#include "common.cuh"

namespace rosa {
namespace {

__global__ void __launch_bounds__(kElemThreads) adamw_kernel(const rosa_adamw_params p) {
  for (int64_t i = grid_start(); i < p.n; i += grid_stride()) {
    const float g = p.grad[i] * p.grad_scale;
    const float m = p.beta1 * p.m[i] + (1.0f - p.beta1) * g;
    const float v = p.beta2 * p.v[i] + (1.0f - p.beta2) * g * g;
    p.m[i] = m;
    p.v[i] = v;
    const float update = (m / p.bias_correction1) / (sqrtf(v / p.bias_correction2) + p.eps);
    const float w = p.param[i];
    // Decoupled weight decay, on the value before this step, as the CPU AdamW does.
    p.param[i] = w - p.lr * (update + p.weight_decay * w);
  }
}

} // namespace
} // namespace rosa

extern "C" int32_t rosa_adamw(const rosa_adamw_params *p, void *stream) {
  using namespace rosa;
  if (p == nullptr || p->n < 0) return ROSA_ERR_BAD_ARGUMENT;
  if (p->n == 0) return ROSA_OK;
  if (p->param == nullptr || p->grad == nullptr || p->m == nullptr || p->v == nullptr)
    return ROSA_ERR_BAD_ARGUMENT;
  // A zero bias correction (t = 0, or beta = 1) would divide by zero on every element.
  if (p->bias_correction1 == 0.0f || p->bias_correction2 == 0.0f) return ROSA_ERR_BAD_ARGUMENT;
  adamw_kernel<<<elem_blocks(p->n), kElemThreads, 0, static_cast<cudaStream_t>(stream)>>>(*p);
  return static_cast<int32_t>(cudaGetLastError());
}
