// Emulation of the CUDA device model on the host, force-included (g++ -include) ahead of
// every csrc/*.cu when the `cuda-emu` feature builds the kernels as plain C++. The real
// CUDA 13.0 headers supply the types and the host-side half/bfloat16 conversions; this
// header supplies what only nvcc would: the thread indices, __shared__, barriers, warp
// shuffles, __ldg / __stwb, atomics, and the launch that build.rs substitutes for `<<<...>>>`.
// Semantics (runtime in emu_runtime.cpp): every CUDA thread of a block is its own OS
// thread, blocks of a launch run one after another, and any misuse that a GPU would
// answer with a hang or undefined behaviour aborts with the kernel's file:line.
#pragma once

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// Blocks run one after another, so one static object per kernel instantiation is exactly
// one block's shared memory.
#define __shared__ static

namespace emu {

// Per-OS-thread CUDA coordinates (set by the runtime before the kernel body runs).
extern thread_local uint3 tl_thread_idx;
extern thread_local uint3 tl_block_idx;
extern thread_local dim3 tl_block_dim;
extern thread_local dim3 tl_grid_dim;

[[noreturn]] void fail(const char *file, int line, const char *what);
void check_aligned16(const void *p, const char *file, int line, const char *what);
void syncthreads(const char *file, int line);
void syncwarp(unsigned mask, const char *file, int line);
// Exchanges `bits` among the lanes of `mask`; returns the bits of lane `src` of this warp.
uint64_t exchange(unsigned mask, uint64_t bits, int src, const char *file, int line);

enum class Shfl { Idx, Up, Down, Xor };

// PTX shfl.sync: lanes form segments of `width`; a source outside the caller's segment
// (past its end for up/down/xor, or any lane for idx wraps inside the segment) yields the
// caller's own value.
int shfl_source(Shfl kind, int lane, int arg, int width, const char *file, int line);

template <typename T> T shfl(Shfl kind, unsigned mask, T v, int arg, int width,
                             const char *file, int line) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of <= 8 bytes");
  const int lane = static_cast<int>(tl_thread_idx.x & 31u);
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  const int src = shfl_source(kind, lane, arg, width, file, line);
  const uint64_t got = exchange(mask, bits, src, file, line);
  T out;
  std::memcpy(&out, &got, sizeof(T));
  return out;
}

// The launch: `k<<<g, b, s, st>>>(args)` is rewritten by build.rs into
// `k % ::emu::Launch(::emu::Config(g, b, s, st), args)`.
struct Config {
  dim3 grid, block;
  Config(dim3 g, dim3 b, size_t = 0, cudaStream_t = nullptr) : grid(g), block(b) {}
};
template <typename... A> struct Launch {
  Config cfg;
  std::tuple<std::decay_t<A>...> args;
  explicit Launch(Config c, A &&...a) : cfg(c), args(std::forward<A>(a)...) {}
};
template <typename... A> Launch(Config, A &&...) -> Launch<A...>;

// Runs body(tid) on every thread of every block (blocks in order), or records
// cudaErrorInvalidConfiguration for cudaGetLastError.
void run(const dim3 &grid, const dim3 &block, const std::function<void()> &body);

template <typename... P, typename... A>
void operator%(void (*kernel)(P...), const Launch<A...> &l) {
  run(l.cfg.grid, l.cfg.block, [&] {
    std::tuple<std::decay_t<P>...> params = l.args; // each thread owns its parameters
    std::apply(kernel, params);
  });
}

} // namespace emu

#define threadIdx (::emu::tl_thread_idx)
#define blockIdx (::emu::tl_block_idx)
#define blockDim (::emu::tl_block_dim)
#define gridDim (::emu::tl_grid_dim)

#define __syncthreads() ::emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::emu::syncwarp(__VA_ARGS__, __FILE__, __LINE__)

namespace emu {
template <typename T> T shfl_idx(unsigned m, T v, int a, int w = 32, const char *f = "", int l = 0) {
  return shfl(Shfl::Idx, m, v, a, w, f, l);
}
template <typename T> T shfl_up(unsigned m, T v, unsigned a, int w = 32, const char *f = "", int l = 0) {
  return shfl(Shfl::Up, m, v, static_cast<int>(a), w, f, l);
}
template <typename T> T shfl_down(unsigned m, T v, unsigned a, int w = 32, const char *f = "", int l = 0) {
  return shfl(Shfl::Down, m, v, static_cast<int>(a), w, f, l);
}
template <typename T> T shfl_xor(unsigned m, T v, int a, int w = 32, const char *f = "", int l = 0) {
  return shfl(Shfl::Xor, m, v, a, w, f, l);
}
// The width argument is optional in CUDA; the location rides behind it.
struct Loc { const char *file; int line; };
template <typename T> T shfl_w(Shfl k, Loc at, unsigned m, T v, int a, int w = 32) {
  return shfl(k, m, v, a, w, at.file, at.line);
}
} // namespace emu

#define __shfl_sync(...) ::emu::shfl_w(::emu::Shfl::Idx, ::emu::Loc{__FILE__, __LINE__}, __VA_ARGS__)
#define __shfl_up_sync(...) ::emu::shfl_w(::emu::Shfl::Up, ::emu::Loc{__FILE__, __LINE__}, __VA_ARGS__)
#define __shfl_down_sync(...) ::emu::shfl_w(::emu::Shfl::Down, ::emu::Loc{__FILE__, __LINE__}, __VA_ARGS__)
#define __shfl_xor_sync(...) ::emu::shfl_w(::emu::Shfl::Xor, ::emu::Loc{__FILE__, __LINE__}, __VA_ARGS__)

// Read-only loads: a 16-byte vector load must be 16-byte aligned, or a GPU faults.
namespace emu {
template <typename T> T ldg(const T *p, const char *file, int line) {
  if constexpr (sizeof(T) == 16) check_aligned16(p, file, line, "16-byte __ldg");
  return *p;
}
inline double atomic_add(double *p, double v) {
  return std::atomic_ref<double>(*p).fetch_add(v, std::memory_order_relaxed);
}
inline float atomic_add(float *p, float v) {
  return std::atomic_ref<float>(*p).fetch_add(v, std::memory_order_relaxed);
}
} // namespace emu
namespace emu {
// A store through the intrinsic: a 16-byte one must be 16-byte aligned, as for __ldg.
template <typename T> void stwb(T *p, T v, const char *file, int line) {
  if constexpr (sizeof(T) == 16) check_aligned16(p, file, line, "16-byte __stwb");
  *p = v;
}
} // namespace emu
#define __ldg(p) ::emu::ldg((p), __FILE__, __LINE__)
#define __stwb(p, v) ::emu::stwb((p), (v), __FILE__, __LINE__)
#define __ldcg(p) ::emu::ldg((p), __FILE__, __LINE__)
#define atomicAdd(p, v) ::emu::atomic_add((p), (v))

// Round-to-nearest f32 product and sum that are never fused into an FMA (nvcc contracts
// a * b + c unless these are used). The volatile store forces each result to be rounded
// to f32 on its own here too, whatever contraction the host compiler would do.
inline float __fmul_rn(float a, float b) {
  volatile float r = a * b;
  return r;
}
inline float __fadd_rn(float a, float b) {
  volatile float r = a + b;
  return r;
}
