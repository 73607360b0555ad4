// SDDMM: out[p] = alpha * dot(L[i, :], R[j, :]) + beta * out[p] for each nonzero p = (i, j)
// of the mask. A sub-warp owns one mask row (swizzle order, longest first) and walks its
// nonzeros G at a time (G = the tile's `unroll`): for each 16-byte chunk of k, the lanes
// load L's chunk once into registers and the matching chunks of the G rows of R, keeping G
// independent partial dot products; the G partials then meet in one combined butterfly
// (G - 1 + log2(SW / G) shuffles for G outputs, against 5 per output for G = 1 at SW = 32),
// after which G lanes hold one finished dot product each and store it. So L is read once
// per G nonzeros and the shuffle chain is shared, register tiling in the sense of
// Sputnik's SDDMM (Gale et al., SC 2020). Inputs of any dtype, f32 accumulation.
//
// Long-row split (tiles with split > 0): the first `long_rows` swizzle slots (the longest
// rows) get a whole block each, sub-warp s taking the row's rounds s, s + BR, ... Every
// output is one nonzero's own dot product, so nothing is combined across sub-warps and the
// result is the unsplit one, bit for bit.
#include "common.cuh"
#include "tiles.cuh"

namespace rosa {
namespace {

// Reduces G partial sums spread over the SW lanes of a sub-warp in one butterfly: at each
// of the first log2(G) steps a lane keeps half of its values and trades the other half
// with its partner, so the count halves while the lanes still sum over all partners; the
// remaining steps are the plain xor reduction. Returns this lane's finished sum, of
// nonzero `*which` of the G (each of the G is held by SW / G lanes).
template <int G, int SW>
__device__ __forceinline__ float combined_reduce(float (&v)[G], unsigned mask, int lane,
                                                 int *which) {
  static_assert(G >= 1 && (G & (G - 1)) == 0 && G <= SW, "G: a power of two up to SW");
  int g = 0;
  int off = SW / 2;
#pragma unroll
  for (int half = G / 2; half >= 1; half /= 2, off /= 2) {
    const bool upper = (lane & off) != 0;
#pragma unroll
    for (int i = 0; i < half; ++i) {
      const float keep = upper ? v[half + i] : v[i];
      const float send = upper ? v[i] : v[half + i];
      v[i] = keep + __shfl_xor_sync(mask, send, off, SW);
    }
    if (upper) g += half;
  }
  float sum = v[0];
#pragma unroll
  for (; off > 0; off /= 2) sum += __shfl_xor_sync(mask, sum, off, SW);
  *which = g;
  return sum;
}

template <typename T, int SW, int BR, int V, int G, bool Split>
__global__ void __launch_bounds__(SW *BR) sddmm_kernel(const rosa_sddmm_params p) {
  constexpr int VEC = kVec<T>;
  constexpr int64_t STEP = static_cast<int64_t>(SW) * V * VEC;

  const int sub = threadIdx.x / SW;
  const int lane = threadIdx.x % SW;
  // Blocks below `first` own one long row each; the rest hold BR rows, one per sub-warp.
  const int64_t first = Split ? p.long_rows : 0;
  const bool long_row = Split && blockIdx.x < first;
  const int64_t slot =
      long_row ? blockIdx.x : first + (static_cast<int64_t>(blockIdx.x) - first) * BR + sub;
  if (slot >= p.rows) return; // the whole sub-warp leaves together
  const unsigned mask = subwarp_mask<SW>();

  const int32_t row = __ldg(p.row_swizzle + slot);
  const int32_t start = __ldg(p.row_ptr + row);
  const int32_t end = __ldg(p.row_ptr + row + 1);
  const T *l0 = static_cast<const T *>(p.l);
  const T *__restrict__ l = l0 + static_cast<int64_t>(row) * p.ldl;
  const T *__restrict__ r = static_cast<const T *>(p.r);
  T *__restrict__ out = static_cast<T *>(p.out);

  // This sub-warp's rounds: from `from`, `step` apart (a long row's sub-warps interleave
  // theirs). uint32: the last `q0 += step` may pass INT32_MAX, never 2^32 (and an int64
  // index costs the unsplit kernels a register they do not have).
  const int64_t own = start + static_cast<int64_t>(long_row ? sub : 0) * G;
  const uint32_t from = static_cast<uint32_t>(own < end ? own : end);
  const uint32_t step = long_row ? G * BR : G;
  const uint32_t stop = static_cast<uint32_t>(end);
  for (uint32_t q0 = from; q0 < stop; q0 += step) {
    // Past the row's end a slot repeats the last nonzero's R row (valid memory) and its sum
    // is never stored.
    const T *rrow[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const int32_t q = q0 + g < stop ? static_cast<int32_t>(q0 + g) : end - 1;
      rrow[g] = r + static_cast<int64_t>(__ldg(p.col_idx + q)) * p.ldr;
    }
    float sum[G];
#pragma unroll
    for (int g = 0; g < G; ++g) sum[g] = 0.0f;
    for (int64_t k0 = 0; k0 < p.k; k0 += STEP) {
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const int64_t j = k0 + (static_cast<int64_t>(v) * SW + lane) * VEC;
        float x[VEC];
        load_vec<T>(l + j, p.k - j, l0, x);
#pragma unroll
        for (int g = 0; g < G; ++g) {
          float y[VEC];
          load_vec<T>(rrow[g] + j, p.k - j, r, y);
#pragma unroll
          for (int i = 0; i < VEC; ++i) sum[g] = fmaf(x[i], y[i], sum[g]);
        }
      }
    }
    int g;
    const float dot = combined_reduce<G, SW>(sum, mask, lane, &g);
    const uint32_t q = q0 + g;
    if (lane % (SW / G) == 0 && q < stop) {
      const float old = p.beta != 0.0f ? p.beta * Elem<T>::load(out[q]) : 0.0f;
      out[q] = Elem<T>::store(p.alpha * dot + old);
    }
  }
}

template <typename T, int SW, int BR, int V, int G, bool Split>
int32_t launch(const rosa_sddmm_params &p, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>(p.long_rows) + ceil_div(p.rows - p.long_rows, BR);
  sddmm_kernel<T, SW, BR, V, G, Split><<<blocks, SW * BR, 0, stream>>>(p);
  return static_cast<int32_t>(cudaGetLastError());
}

} // namespace
} // namespace rosa

extern "C" int32_t rosa_sddmm(const rosa_sddmm_params *p, int32_t config, void *stream) {
  using namespace rosa;
  if (p == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  if (config < 0 || config >= static_cast<int32_t>(kSddmmCount)) return ROSA_ERR_BAD_CONFIG;
  if (p->dtype < ROSA_DTYPE_F32 || p->dtype > ROSA_DTYPE_BF16) return ROSA_ERR_BAD_DTYPE;
  if (p->rows < 0 || p->cols < 0 || p->k < 0 || p->ldl < p->k || p->ldr < p->k ||
      p->long_rows < 0 || p->long_rows > p->rows)
    return ROSA_ERR_BAD_ARGUMENT;
  // An unsplit kernel treats every slot as a sub-warp's row: long_rows > 0 would skip rows.
  if (kSddmmTiles[config].split == 0 && p->long_rows != 0) return ROSA_ERR_BAD_ARGUMENT;
  if (p->rows == 0) return ROSA_OK; // no mask rows, no outputs
  if (p->row_ptr == nullptr || p->row_swizzle == nullptr) return ROSA_ERR_BAD_ARGUMENT;
  const auto s = static_cast<cudaStream_t>(stream);
  return with_dtype(p->dtype, [&](auto tag) {
    using T = decltype(tag);
    return with_index(
        config,
        [&](auto ic) {
          constexpr Tile t = kSddmmTiles[decltype(ic)::value];
          return launch<T, t.subwarp, t.block_rows, t.vectors, t.unroll, (t.split > 0)>(*p, s);
        },
        std::make_index_sequence<kSddmmCount>{});
  });
}
