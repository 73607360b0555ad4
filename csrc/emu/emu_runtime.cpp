// Runtime of the CUDA emulation (see cuda_emu.h): a pool of OS threads, one per CUDA thread
// of a block, and the block's barrier, warp barriers and shuffle slots, all under one mutex
// so that every wait can be checked against every other (deadlock, exited lanes).
#include "cuda_emu.h"

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace emu {

thread_local uint3 tl_thread_idx;
thread_local uint3 tl_block_idx;
thread_local dim3 tl_block_dim;
thread_local dim3 tl_grid_dim;

namespace {

enum class Wait { None, Block, Warp, Exited };

struct ThreadState {
  Wait wait = Wait::None;
  unsigned mask = 0;
  bool released = false;
  const char *file = "";
  int line = 0;
};

struct BlockState {
  std::mutex m;
  std::condition_variable block_cv;
  std::vector<std::condition_variable> warp_cv{32}; // 1024 threads: 32 warps
  std::vector<ThreadState> st;
  std::vector<uint64_t> slot;
  int n = 0;
};

BlockState g_block;
thread_local int tl_tid = -1;
cudaError_t g_last_error = cudaSuccess;
std::mutex g_error_m;

const char *wait_name(Wait w) {
  switch (w) {
  case Wait::None: return "running";
  case Wait::Block: return "__syncthreads";
  case Wait::Warp: return "__syncwarp/shfl";
  case Wait::Exited: return "exited";
  }
  return "?";
}

[[noreturn]] void die_locked(const char *file, int line, const char *what, bool table) {
  std::fprintf(stderr, "cuda-emu: %s:%d: %s (block (%u,%u,%u), thread (%u,%u,%u))\n", file, line,
               what, tl_block_idx.x, tl_block_idx.y, tl_block_idx.z, tl_thread_idx.x,
               tl_thread_idx.y, tl_thread_idx.z);
  if (table) {
    std::fprintf(stderr, "cuda-emu: wait table:\n");
    for (int t = 0; t < g_block.n; ++t) {
      const ThreadState &s = g_block.st[t];
      std::fprintf(stderr, "  thread %4d: %-16s mask %08x at %s:%d\n", t, wait_name(s.wait),
                   s.mask, s.file, s.line);
    }
  }
  std::fflush(stderr);
  std::abort();
}

// Called with the lock held by a thread about to wait: if no live thread is running,
// nothing can ever release anyone.
void check_deadlock(const char *file, int line) {
  for (int t = 0; t < g_block.n; ++t)
    if (g_block.st[t].wait == Wait::None) return;
  die_locked(file, line, "deadlock: every live thread waits on a barrier that cannot complete",
             true);
}

// Lanes of `mask` in this thread's warp must exist and not have exited.
void check_mask(unsigned mask, const char *file, int line) {
  const int lane = tl_tid & 31, base = tl_tid & ~31;
  if (!(mask >> lane & 1u)) die_locked(file, line, "lane not in its own mask", false);
  for (int l = 0; l < 32; ++l) {
    if (!(mask >> l & 1u)) continue;
    if (base + l >= g_block.n) die_locked(file, line, "mask names an absent lane", false);
    if (g_block.st[base + l].wait == Wait::Exited)
      die_locked(file, line, "mask names an exited lane", false);
  }
}

void warp_barrier(std::unique_lock<std::mutex> &lk, unsigned mask, const char *file, int line) {
  check_mask(mask, file, line);
  const int base = tl_tid & ~31;
  ThreadState &me = g_block.st[tl_tid];
  me.wait = Wait::Warp;
  me.mask = mask;
  me.file = file;
  me.line = line;
  me.released = false;
  bool all = true;
  for (int l = 0; l < 32 && all; ++l)
    if (mask >> l & 1u) {
      const ThreadState &s = g_block.st[base + l];
      all = s.wait == Wait::Warp && s.mask == mask;
    }
  if (all) {
    for (int l = 0; l < 32; ++l)
      if (mask >> l & 1u) {
        g_block.st[base + l].wait = Wait::None;
        g_block.st[base + l].released = true;
      }
    g_block.warp_cv[tl_tid / 32].notify_all();
    return;
  }
  check_deadlock(file, line);
  g_block.warp_cv[tl_tid / 32].wait(lk, [&] { return me.released; });
}

// The worker pool: worker i runs thread i of each block.
struct Pool {
  std::mutex m;
  std::condition_variable cv, done_cv;
  std::vector<std::thread> workers;
  uint64_t gen = 0;
  int active = 0, done = 0;
  const std::function<void()> *body = nullptr;
  dim3 grid, block;
  uint3 block_idx;

  void grow(int n) {
    while (static_cast<int>(workers.size()) < n) {
      const int id = static_cast<int>(workers.size());
      workers.emplace_back([this, id] { loop(id); });
      workers.back().detach();
    }
  }
  void loop(int id) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void()> *f;
      {
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return gen != seen && id < active; });
        seen = gen;
        f = body;
        tl_grid_dim = grid;
        tl_block_dim = block;
        tl_block_idx = block_idx;
      }
      tl_tid = id;
      tl_thread_idx = uint3{static_cast<unsigned>(id) % block.x,
                            static_cast<unsigned>(id) / block.x % block.y,
                            static_cast<unsigned>(id) / (block.x * block.y)};
      (*f)();
      {
        std::unique_lock<std::mutex> lk(g_block.m);
        g_block.st[id].wait = Wait::Exited;
        // Anyone waiting on a barrier that names this thread can never be released.
        for (int t = 0; t < g_block.n; ++t) {
          const ThreadState &s = g_block.st[t];
          if (s.wait == Wait::Block)
            die_locked(s.file, s.line, "__syncthreads while a thread of the block has exited",
                       true);
          if (s.wait == Wait::Warp && (t & ~31) == (id & ~31) && (s.mask >> (id & 31) & 1u))
            die_locked(s.file, s.line, "a warp barrier's mask names an exited lane", true);
        }
        bool any_live = false, any_running = false;
        for (int t = 0; t < g_block.n; ++t) {
          any_live |= g_block.st[t].wait != Wait::Exited;
          any_running |= g_block.st[t].wait == Wait::None;
        }
        if (any_live && !any_running)
          die_locked(__FILE__, __LINE__, "deadlock after a thread exited", true);
      }
      {
        std::lock_guard<std::mutex> lk(m);
        if (++done == active) done_cv.notify_all();
      }
    }
  }
  void run_block(const std::function<void()> &f, int n) {
    grow(n);
    std::unique_lock<std::mutex> lk(m);
    body = &f;
    active = n;
    done = 0;
    ++gen;
    cv.notify_all();
    done_cv.wait(lk, [&] { return done == active; });
  }
};

Pool &pool() {
  static Pool *p = new Pool; // never destroyed: detached workers outlive static teardown
  return *p;
}

void set_error(cudaError_t e) {
  std::lock_guard<std::mutex> lk(g_error_m);
  if (g_last_error == cudaSuccess) g_last_error = e;
}

} // namespace

void fail(const char *file, int line, const char *what) {
  std::unique_lock<std::mutex> lk(g_block.m);
  die_locked(file, line, what, false);
}

void check_aligned16(const void *p, const char *file, int line, const char *what) {
  if (reinterpret_cast<uintptr_t>(p) & 15u) {
    char msg[128];
    std::snprintf(msg, sizeof msg, "misaligned %s at %p", what, p);
    fail(file, line, msg);
  }
}

void syncthreads(const char *file, int line) {
  std::unique_lock<std::mutex> lk(g_block.m);
  ThreadState &me = g_block.st[tl_tid];
  for (int t = 0; t < g_block.n; ++t)
    if (g_block.st[t].wait == Wait::Exited)
      die_locked(file, line, "__syncthreads while a thread of the block has exited", true);
  me.wait = Wait::Block;
  me.file = file;
  me.line = line;
  me.released = false;
  bool all = true;
  for (int t = 0; t < g_block.n && all; ++t) all = g_block.st[t].wait == Wait::Block;
  if (all) {
    for (int t = 0; t < g_block.n; ++t) {
      g_block.st[t].wait = Wait::None;
      g_block.st[t].released = true;
    }
    g_block.block_cv.notify_all();
    return;
  }
  check_deadlock(file, line);
  g_block.block_cv.wait(lk, [&] { return me.released; });
}

void syncwarp(unsigned mask, const char *file, int line) {
  std::unique_lock<std::mutex> lk(g_block.m);
  warp_barrier(lk, mask, file, line);
}

int shfl_source(Shfl kind, int lane, int arg, int width, const char *file, int line) {
  if (width < 1 || width > 32 || (width & (width - 1)))
    fail(file, line, "shuffle width is not a power of two in 1..32");
  const int seg = lane & ~(width - 1), in = lane - seg;
  switch (kind) {
  case Shfl::Idx: return seg + (arg & (width - 1));
  case Shfl::Up: return in - arg < 0 ? lane : lane - arg;
  case Shfl::Down: return in + arg >= width ? lane : lane + arg;
  case Shfl::Xor: {
    const int src = lane ^ (arg & 31);
    return src >= seg + width ? lane : src;
  }
  }
  return lane;
}

uint64_t exchange(unsigned mask, uint64_t bits, int src, const char *file, int line) {
  std::unique_lock<std::mutex> lk(g_block.m);
  const int base = tl_tid & ~31;
  if (!(mask >> src & 1u)) die_locked(file, line, "shuffle reads a lane outside its mask", false);
  g_block.slot[tl_tid] = bits;
  warp_barrier(lk, mask, file, line); // every lane's value is in place
  const uint64_t got = g_block.slot[base + src];
  warp_barrier(lk, mask, file, line); // every lane has read before any slot is rewritten
  return got;
}

void run(const dim3 &grid, const dim3 &block, const std::function<void()> &body) {
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 ||
      grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 ||
      grid.z > 65535) {
    set_error(cudaErrorInvalidConfiguration);
    return;
  }
  // One launch at a time (a single stream, and a single block state): Rust's test harness
  // launches from several threads.
  static std::mutex launch_m;
  std::lock_guard<std::mutex> one(launch_m);
  Pool &p = pool();
  const int n = static_cast<int>(threads);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        {
          std::lock_guard<std::mutex> lk(g_block.m);
          g_block.n = n;
          g_block.st.assign(n, ThreadState{});
          g_block.slot.assign(n, 0);
        }
        {
          std::lock_guard<std::mutex> lk(p.m);
          p.grid = grid;
          p.block = block;
          p.block_idx = uint3{x, y, z};
        }
        p.run_block(body, n);
      }
}

} // namespace emu

extern "C" cudaError_t cudaGetLastError(void) {
  std::lock_guard<std::mutex> lk(emu::g_error_m);
  const cudaError_t e = emu::g_last_error;
  emu::g_last_error = cudaSuccess;
  return e;
}

extern "C" cudaError_t cudaPeekAtLastError(void) {
  std::lock_guard<std::mutex> lk(emu::g_error_m);
  return emu::g_last_error;
}

extern "C" const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
  case cudaSuccess: return "no error";
  case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  default: return "unknown error (cuda-emu)";
  }
}

// Tests fence an operand's guard bytes with this (rosa::emu::poison): under AddressSanitizer
// a kernel touching them then fails the run even where the bytes lie inside the test's own
// allocation (an operand placed 2..14 bytes past an aligned base). ASan tracks 8-byte
// granules addressable from their start only, so it poisons what of the range it can: the
// whole granules, and a suffix of a partial last one. A no-op without ASan.
extern "C" void rosa_emu_poison(const void *p, size_t bytes, int poison) {
#if defined(__SANITIZE_ADDRESS__)
  if (poison)
    __asan_poison_memory_region(p, bytes);
  else
    __asan_unpoison_memory_region(p, bytes);
#else
  (void)p;
  (void)bytes;
  (void)poison;
#endif
}
