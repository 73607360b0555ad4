// Kernels that test the CUDA emulator itself (tests/emu_semantics.rs), compiled only by the
// `cuda-emu` build (build.rs; nvcc compiles csrc/*.cu, never this directory). Each entry
// point launches one kernel on host buffers and returns cudaGetLastError. Some kernels sleep
// with std::this_thread, which only a host build can: the sleeps order the threads so that
// a misuse is found by one known thread, whose coordinates the test then expects in the
// abort message. Lines tagged `// abort:` are located by the test by their tag.
#include <chrono>
#include <cstdint>
#include <thread>

namespace {

void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

int linear_thread() {
  return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}
int linear_block() {
  return static_cast<int>(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z));
}

// Every thread records its twelve coordinates at its global linear index.
__global__ void builtins_kernel(uint32_t *out) {
  const int threads = static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
  uint32_t *o = out + 12 * (linear_block() * threads + linear_thread());
  const uint32_t v[12] = {threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y,
                          blockIdx.z,  blockDim.x,  blockDim.y,  blockDim.z, gridDim.x,
                          gridDim.y,   gridDim.z};
  for (int i = 0; i < 12; ++i) o[i] = v[i];
}

// `rounds` phases: each thread writes its slot, the barrier, then each reads its right
// neighbour's slot. Thread 0 writes late; without a real barrier its neighbour would read
// the previous phase's value.
__global__ void barrier_kernel(int rounds, int32_t *out) {
  __shared__ int32_t slot[1024];
  const int t = linear_thread(), n = static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
  int32_t sum = 0;
  for (int r = 0; r < rounds; ++r) {
    if (t == 0) pause_ms(2);
    slot[t] = r * 10000 + t;
    __syncthreads();
    sum += slot[(t + 1) % n];
    __syncthreads(); // nobody rewrites a slot before its reader has read it
  }
  out[t] = sum;
}

// Lanes 0..15 and 16..31 run different numbers of __syncwarp rounds, each half with its own
// mask: a barrier that waited for the whole warp would deadlock. Within a half, lane
// (first + 3) writes late and every lane reads it after the barrier.
__global__ void syncwarp_halves_kernel(int32_t *out) {
  __shared__ int32_t slot[32];
  const int lane = static_cast<int>(threadIdx.x);
  const bool low = lane < 16;
  const unsigned mask = low ? 0x0000ffffu : 0xffff0000u;
  const int rounds = low ? 3 : 5, late = low ? 3 : 19;
  int32_t sum = 0;
  for (int r = 0; r < rounds; ++r) {
    if (lane == late) pause_ms(2);
    slot[lane] = r * 100 + lane;
    __syncwarp(mask);
    sum += slot[late];
    __syncwarp(mask);
  }
  out[lane] = sum;
}

// One shuffle of kind 0 idx, 1 up, 2 down, 3 xor by every lane of a full warp; values are
// 64-bit so both halves of a slot are exchanged.
__global__ void shfl_kernel(int kind, int arg, int width, int64_t *out) {
  const int lane = static_cast<int>(threadIdx.x);
  const int64_t v = (int64_t{lane} << 40) | (1000 + lane);
  int64_t got = 0;
  switch (kind) {
  case 0: got = __shfl_sync(0xffffffffu, v, arg, width); break;
  case 1: got = __shfl_up_sync(0xffffffffu, v, static_cast<unsigned>(arg), width); break;
  case 2: got = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(arg), width); break;
  default: got = __shfl_xor_sync(0xffffffffu, v, arg, width); break;
  }
  out[lane] = got;
}

// Shared memory is per block: thread 0 publishes its block's number, the others read it
// after the barrier. Blocks run one after another, so a `static` stands for it exactly.
__global__ void shared_per_block_kernel(int32_t *out) {
  __shared__ int32_t mine;
  if (threadIdx.x == 0) {
    pause_ms(1);
    mine = linear_block();
  }
  __syncthreads();
  out[linear_block() * blockDim.x + threadIdx.x] = mine;
  __syncthreads(); // thread 0 of the next block rewrites `mine` only after all have read
}

__global__ void atomic_kernel(float *f, double *d) {
  atomicAdd(f, 1.0f);
  atomicAdd(d, 0.5);
}

__global__ void noop_kernel(int32_t *out) {
  if (linear_block() == 0 && linear_thread() == 0) out[0] = 1;
}

__global__ void misuse_kernel(int which, const unsigned char *buf) {
  // Block 0 leaves at once, so the abort must name block 1.
  if (blockIdx.x == 0) return;
  const int t = linear_thread();
  switch (which) {
  case 0: // lane 2 names a mask without itself
    if (t == 2) __syncwarp(0x3u); // abort: own-mask
    break;
  case 1: // lane 1 exits, lane 0 then names it
    if (t == 1) return;
    if (t == 0) {
      pause_ms(20);
      __syncwarp(0x3u); // abort: exited-lane
    }
    break;
  case 2: // a block of 16: lane 0 names lane 16
    if (t == 0) __syncwarp(0x10001u); // abort: absent-lane
    break;
  case 3: { // lane 1 reads lane 5, outside the mask {0, 1}
    if (t > 1) return;
    const int v = __shfl_sync(0x3u, t, t == 1 ? 5 : 0); // abort: shuffle-outside
    (void)v;
    break;
  }
  case 4: // every thread but 0 exits; thread 0 then waits for the block
    if (t != 0) return;
    pause_ms(20);
    __syncthreads(); // abort: syncthreads-exited
    break;
  case 5: // a block of 2: lane 0 waits for lane 1 at a warp barrier, lane 1 for lane 0 at
          // the block's
    if (t == 0) {
      __syncwarp(0x3u);
      __syncthreads();
    } else {
      pause_ms(20);
      __syncthreads(); // abort: deadlock
      __syncwarp(0x3u);
    }
    break;
  default: { // a 16-byte load 4 bytes past an aligned address
    const uint4 u = __ldg(reinterpret_cast<const uint4 *>(buf + 4)); // abort: misaligned
    (void)u;
    break;
  }
  }
}

int32_t launched() { return static_cast<int32_t>(cudaGetLastError()); }

} // namespace

extern "C" int32_t rosa_emu_test_builtins(const uint32_t *grid, const uint32_t *block,
                                          uint32_t *out) {
  builtins_kernel<<<dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2])>>>(out);
  return launched();
}

extern "C" int32_t rosa_emu_test_barrier(uint32_t bx, uint32_t by, int32_t rounds,
                                         int32_t *out) {
  barrier_kernel<<<1, dim3(bx, by)>>>(rounds, out);
  return launched();
}

extern "C" int32_t rosa_emu_test_syncwarp_halves(int32_t *out) {
  syncwarp_halves_kernel<<<1, 32>>>(out);
  return launched();
}

extern "C" int32_t rosa_emu_test_shfl(int32_t kind, int32_t arg, int32_t width, int64_t *out) {
  shfl_kernel<<<1, 32>>>(kind, arg, width, out);
  return launched();
}

extern "C" int32_t rosa_emu_test_shared(uint32_t blocks, uint32_t threads, int32_t *out) {
  shared_per_block_kernel<<<blocks, threads>>>(out);
  return launched();
}

extern "C" int32_t rosa_emu_test_atomic(uint32_t blocks, uint32_t threads, float *f, double *d) {
  atomic_kernel<<<blocks, threads>>>(f, d);
  return launched();
}

extern "C" int32_t rosa_emu_test_config(const uint32_t *grid, const uint32_t *block,
                                        int32_t *out) {
  noop_kernel<<<dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2])>>>(out);
  return launched();
}

extern "C" int32_t rosa_emu_test_misuse(int32_t which) {
  alignas(16) static unsigned char buf[64] = {};
  const unsigned threads[] = {32, 32, 16, 32, 64, 2, 1};
  if (which < 0 || which > 6) return -1;
  misuse_kernel<<<2, threads[which]>>>(which, buf);
  return launched();
}
