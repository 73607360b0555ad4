// NF4 dequantization: a tile of rows of a 4-bit NormalFloat weight (QLoRA's storage, see
// rosa::quant) into a row-major f32 / f16 / bf16 workspace, for the dense GEMM that follows.
// The CUDA twin of Nf4Matrix::dequantize_into, bit for bit: each element is one f32 product
// nf4[q] * scale rounded once to the output type, and a double-quantized scale is the CPU's
// two separately rounded operations.
//
// Memory-bound and simple: each thread takes a group of kGroup consecutive elements of W
// (row-major) per grid-stride step, one 32-bit load of their codes and one scale, and
// writes them with 16-byte stores where the group lies in one row of an aligned output.
#include <cstring>

#include "common.cuh"

namespace rosa {
namespace {

// Codes per thread and step: 4 bytes, one 32-bit load (load_codes and nibble assume it).
// Every block size is a multiple of 32 elements, so a group aligned to kGroup never
// straddles two scale blocks: one scale per group.
constexpr int kGroup = 8;
static_assert(kGroup == 8 && 32 % kGroup == 0, "one 32-bit word of codes in one block");

// The 4-bit codes of group g (elements 8g .. 8g + 8 of W) as a little-endian word (see
// nibble). The last group of W may have fewer than 4 bytes, and a caller's codes pointer
// need not be 4-byte aligned: then only the bytes that exist are read, one at a time.
__device__ __forceinline__ uint32_t load_codes(const uint8_t *__restrict__ codes, int64_t g,
                                               int64_t n) {
  const uint8_t *b = codes + 4 * g;
  if (8 * g + kGroup <= n && (reinterpret_cast<uintptr_t>(b) & 3u) == 0)
    return __ldg(reinterpret_cast<const uint32_t *>(b));
  const int64_t bytes = (n + 1) / 2 - 4 * g; // >= 1: the group holds an element of W
  uint32_t bits = 0;
#pragma unroll
  for (int k = 0; k < 4; ++k)
    if (k < bytes) bits |= static_cast<uint32_t>(__ldg(b + k)) << (8 * k);
  return bits;
}

// Code of the group's element i: byte i / 2 of the word, its high nibble for an even i
// (element 2j is the high nibble of byte j, as rosa::quant and bitsandbytes pack them).
__device__ __forceinline__ uint32_t nibble(uint32_t bits, int i) {
  return (bits >> ((4 * i) ^ 4)) & 15u;
}

// The bits of an output element, widened to a 32-bit word (memcpy: a bit cast that stays
// in registers).
template <typename T> __device__ __forceinline__ uint32_t bits_of(T x) {
  std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t> b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// Scale of block `block`: absmax[block], or the double-quantized
// dynamic_code[scale_codes[block]] * absmax[block >> dq_shift] + offset, rounded after the
// product and after the sum like DoubleQuant::get (nvcc would otherwise fuse them into
// one FMA, which rounds once and differs in the last bit).
__device__ __forceinline__ float block_scale(const rosa_nf4_params &p, int64_t block,
                                             int dq_shift) {
  if (p.scale_codes == nullptr) return __ldg(p.absmax + block);
  const float c = __ldg(p.dynamic_code + __ldg(p.scale_codes + block));
  return __fadd_rn(__fmul_rn(c, __ldg(p.absmax + (block >> dq_shift))), p.offset);
}

template <typename T>
__global__ void __launch_bounds__(kElemThreads)
    nf4_dequant_kernel(const rosa_nf4_params p, int block_shift, int dq_shift) {
  // The 16 code values, indexed by a per-element code: from shared memory every lane reads
  // its own entry in one pass (constant memory would serialize distinct addresses).
  __shared__ float nf4[16];
  if (threadIdx.x < 16) nf4[threadIdx.x] = __ldg(p.nf4 + threadIdx.x);
  __syncthreads();

  const int64_t n = p.rows * p.cols;
  const int64_t start = p.row0 * p.cols, end = start + p.row_count * p.cols;
  const int64_t first = start / kGroup;
  const int64_t groups = (end + kGroup - 1) / kGroup - first;
  T *out = static_cast<T *>(p.out);
  for (int64_t t = grid_start(); t < groups; t += grid_stride()) {
    const int64_t g = first + t, e0 = g * kGroup;
    const uint32_t bits = load_codes(p.codes, g, n);
    const float scale = block_scale(p, e0 >> block_shift, dq_shift);
    // The group's elements inside the range (all but the first and last group: all 8).
    const int64_t lo = e0 > start ? e0 : start;
    const int64_t hi = e0 + kGroup < end ? e0 + kGroup : end;
    int64_t row = lo / p.cols, col = lo - row * p.cols;
    T *dst = out + (row - p.row0) * p.ld + col;
    if (hi - lo == kGroup && col + kGroup <= p.cols && aligned16(dst)) {
      // Whole group, one row, aligned: 16-byte stores (two for f32, one for f16 / bf16),
      // assembled from 32-bit words. __stwb is a plain (write-back) store, spelled as the
      // intrinsic because nvcc 13.0 split a plain uint4 assignment here into four 32-bit
      // stores (the first of the two for f32), even with the alignment asserted.
      constexpr int kPerWord = 4 / static_cast<int>(sizeof(T));
      constexpr int kWords = kGroup / kPerWord;
      uint32_t w[kWords] = {};
#pragma unroll
      for (int i = 0; i < kGroup; ++i)
        w[i / kPerWord] |= bits_of(Elem<T>::store(nf4[nibble(bits, i)] * scale))
                           << (32 / kPerWord * (i % kPerWord));
#pragma unroll
      for (int s = 0; s < kWords / 4; ++s)
        __stwb(reinterpret_cast<uint4 *>(dst) + s,
               make_uint4(w[4 * s], w[4 * s + 1], w[4 * s + 2], w[4 * s + 3]));
    } else {
      // A group at either end of the range, one that wraps to the next row (cols not a
      // multiple of kGroup), or a misaligned output: element by element.
      for (int64_t e = lo; e < hi; ++e) {
        out[(row - p.row0) * p.ld + col] =
            Elem<T>::store(nf4[nibble(bits, static_cast<int>(e - e0))] * scale);
        if (++col == p.cols) {
          col = 0;
          ++row;
        }
      }
    }
  }
}

// log2 of a power of two in [32, 4096], or -1 for anything else.
int block_shift_of(int32_t size) {
  for (int s = 5; s <= 12; ++s)
    if (size == (1 << s)) return s;
  return -1;
}

} // namespace
} // namespace rosa

using namespace rosa;

extern "C" int32_t rosa_nf4_dequant(const rosa_nf4_params *p, int32_t out_dtype, void *stream) {
  if (out_dtype < ROSA_DTYPE_F32 || out_dtype > ROSA_DTYPE_BF16) return ROSA_ERR_BAD_DTYPE;
  if (p == nullptr || p->rows < 0 || p->cols < 0 || p->row0 < 0 || p->row_count < 0 ||
      p->row0 > p->rows - p->row_count || p->ld < p->cols ||
      (p->cols > 0 && p->rows > INT64_MAX / 2 / p->cols))
    return ROSA_ERR_BAD_ARGUMENT;
  const int block_shift = block_shift_of(p->block_size);
  const bool dq = p->scale_codes != nullptr;
  const int dq_shift = dq ? block_shift_of(p->dq_block_size) : 0;
  if (block_shift < 0 || dq_shift < 0) return ROSA_ERR_BAD_ARGUMENT;
  if (p->row_count == 0 || p->cols == 0) return ROSA_OK;
  // The output's span, (row_count - 1) * ld + cols, must fit the kernel's int64 indexing.
  if (p->row_count - 1 > (INT64_MAX - p->cols) / p->ld) return ROSA_ERR_BAD_ARGUMENT;
  if (p->codes == nullptr || p->nf4 == nullptr || p->absmax == nullptr || p->out == nullptr ||
      (dq && p->dynamic_code == nullptr))
    return ROSA_ERR_BAD_ARGUMENT;
  // Groups of kGroup elements the range touches (partial ones at its two ends).
  const int64_t start = p->row0 * p->cols, end = start + p->row_count * p->cols;
  const int64_t groups = (end + kGroup - 1) / kGroup - start / kGroup;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  return with_dtype(out_dtype, [&](auto tag) {
    using T = decltype(tag);
    nf4_dequant_kernel<T><<<elem_blocks(groups), kElemThreads, 0, s>>>(*p, block_shift, dq_shift);
    return static_cast<int32_t>(cudaGetLastError());
  });
}
