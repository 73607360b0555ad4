/*
 * The whole ABI between the CUDA kernels (the .cu files in csrc/) and Rust (src/cuda/, via bindgen).
 *
 * Plain C, fixed-width types, no CUDA headers: bindgen reads this file without a CUDA
 * toolkit's include path, and a stream crosses the boundary as an opaque pointer (a
 * CUstream and a cudaStream_t are the same handle).
 *
 * Every launcher returns ROSA_OK (0), a negative rosa_status for arguments it refused
 * before launching anything, or a positive cudaError_t from the launch itself
 * (cudaGetLastError() after the launch). rosa_status_string() names either kind.
 */
#ifndef ROSA_KERNELS_H
#define ROSA_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element type of values and dense operands; accumulation is always f32. */
typedef enum rosa_dtype {
  ROSA_DTYPE_F32 = 0,
  ROSA_DTYPE_F16 = 1,
  ROSA_DTYPE_BF16 = 2
} rosa_dtype;

/* The three kernels; each has its own table of compiled tile configurations. */
typedef enum rosa_op {
  ROSA_OP_SPMM = 0,   /* C(M x N) = alpha A(M x K, CSR) B(K x N) + beta C       */
  ROSA_OP_SPMM_T = 1, /* C(K x N) = alpha A^T B(M x N) + beta C, via a plan     */
  ROSA_OP_SDDMM = 2   /* out[p] = alpha (L R^T)[i, j] + beta out[p], p = (i, j) */
} rosa_op;

/* Refusals found before any launch (the launchers never touch memory for these). */
typedef enum rosa_status {
  ROSA_OK = 0,
  ROSA_ERR_BAD_OP = -1,
  ROSA_ERR_BAD_CONFIG = -2,
  ROSA_ERR_BAD_DTYPE = -3,
  ROSA_ERR_BAD_ARGUMENT = -4
} rosa_status;

/*
 * One compiled tile configuration. A sparse row (SpMM) or a row's nonzeros (SDDMM) is
 * handled by a sub-warp of `subwarp` threads; a block holds `block_rows` sub-warps.
 * `vectors` is how many 16-byte vectors each thread keeps in flight along the dense
 * dimension (N for SpMM, k for SDDMM).
 */
typedef struct rosa_config {
  int32_t op;         /* rosa_op */
  int32_t index;      /* position in its op's table */
  int32_t subwarp;    /* threads per sparse row: 4, 8, 16 or 32 */
  int32_t block_rows; /* sub-warps (rows) per block */
  int32_t vectors;    /* 16-byte vectors per thread per step */
  int32_t threads;    /* subwarp * block_rows */
  int32_t unroll;     /* SpMM: nonzeros whose B vectors are loaded before the first FMA
                         (1: the general path only; > 1: the aligned fast path where B
                         allows it); SDDMM: nonzeros per round sharing one load of the L
                         chunk and one shuffle reduction */
  int32_t split;      /* 0: no long-row split (the launch's long_rows must be 0); else a
                         row longer than split x the mean row length and than one
                         sub-warp is long: it gets a whole block (see long_rows) */
} rosa_config;

/*
 * SpMM and transposed SpMM. The kernel walks a CSR operand of `rows` rows: A itself
 * (perm == NULL), or A^T given by a transpose plan (row_ptr/col_idx of A^T, and perm
 * mapping each entry of A^T to its index in A's `values`).
 */
typedef struct rosa_spmm_params {
  int32_t dtype;              /* rosa_dtype of values and b (and of c unless c_f32) */
  int32_t rows;               /* rows of the walked operand and of C */
  int32_t n;                  /* columns of B and C */
  int32_t b_rows;             /* rows of B: columns of the walked operand */
  int32_t long_rows;          /* in [0, rows]; 0 unless the config splits: the first
                                 long_rows rows of row_swizzle get a block each, whose
                                 sub-warps share the row and combine their partial sums
                                 in a fixed order (so results are bitwise reproducible).
                                 Any value is correct; the split rule's count is fast */
  int32_t c_f32;              /* 0: c has `dtype`; 1: c is f32, written from the f32
                                 accumulators unrounded (dtype bf16 or f32 only; f16
                                 is refused with ROSA_ERR_BAD_DTYPE, other values
                                 with ROSA_ERR_BAD_ARGUMENT): a bf16 product added
                                 straight into f32 activations */
  const int32_t *row_ptr;     /* [rows + 1] */
  const int32_t *col_idx;     /* [nnz], each in [0, b_rows) */
  const int32_t *perm;        /* [nnz] or NULL: value index of each entry */
  const int32_t *row_swizzle; /* [rows], a permutation of 0..rows, longest row first */
  const void *values;         /* A's values, [nnz] */
  const void *b;              /* [b_rows * ldb] */
  void *c;                    /* [rows * ldc] */
  int64_t ldb;                /* row stride of B in elements, >= n */
  int64_t ldc;                /* row stride of C in elements, >= n */
  float alpha;
  float beta;                 /* 0: C is written without being read */
} rosa_spmm_params;

/* SDDMM over the mask's structure; `out` has the mask's nnz values. */
typedef struct rosa_sddmm_params {
  int32_t dtype;              /* rosa_dtype of l, r and out */
  int32_t rows;               /* rows of the mask and of L */
  int32_t cols;               /* columns of the mask, rows of R */
  int32_t k;                  /* columns of L and R */
  int32_t long_rows;          /* as in rosa_spmm_params: the first long_rows rows of
                                 row_swizzle spread their nonzeros over a whole block */
  const int32_t *row_ptr;     /* [rows + 1] */
  const int32_t *col_idx;     /* [nnz], each in [0, cols) */
  const int32_t *row_swizzle; /* [rows] */
  const void *l;              /* [rows * ldl] */
  const void *r;              /* [cols * ldr] */
  void *out;                  /* [nnz] */
  int64_t ldl;
  int64_t ldr;
  float alpha;
  float beta;
} rosa_sddmm_params;

/* Number of compiled configurations of `op` (0 for an unknown op). No CUDA call. */
int32_t rosa_config_count(int32_t op);

/* Copies configuration `index` of `op` into *out. No CUDA call. */
int32_t rosa_config_get(int32_t op, int32_t index, rosa_config *out);

/* A static, NUL-terminated description of a status or cudaError_t code. */
const char *rosa_status_string(int32_t code);

/* Launch on `stream` (a cudaStream_t / CUstream; NULL is the legacy default stream). */
int32_t rosa_spmm(const rosa_spmm_params *params, int32_t config, void *stream);
int32_t rosa_spmm_t(const rosa_spmm_params *params, int32_t config, void *stream);
int32_t rosa_sddmm(const rosa_sddmm_params *params, int32_t config, void *stream);

/*
 * Elementwise and reduction kernels of the training step (csrc/elementwise.cu). All take
 * packed buffers of `n` elements (n >= 0; n == 0 launches nothing) and launch a capped,
 * grid-stride grid, so any n fits the launch limits.
 */

/*
 * One AdamW step on f32 buffers, for each i < n:
 *   g = grad[i] * grad_scale                       (global-norm clipping factor, or 1)
 *   m[i] = beta1 m[i] + (1 - beta1) g;   v[i] = beta2 v[i] + (1 - beta2) g^2
 *   param[i] -= lr ((m[i] / bias_correction1) / (sqrt(v[i] / bias_correction2) + eps)
 *                   + weight_decay param[i])
 * with bias_correction{1,2} = 1 - beta{1,2}^t, computed by the caller.
 */
typedef struct rosa_adamw_params {
  int64_t n;
  float *param;
  const float *grad;
  float *m;
  float *v;
  float lr;
  float beta1;
  float beta2;
  float eps;
  float weight_decay;
  float bias_correction1;
  float bias_correction2;
  float grad_scale;
} rosa_adamw_params;

int32_t rosa_adamw(const rosa_adamw_params *params, void *stream);

/* *acc += sum of x[i]^2 over i < n, accumulated in f64 (atomically, so several buffers can
 * add into one accumulator: the global gradient norm). */
int32_t rosa_sum_squares(int64_t n, const float *x, double *acc, void *stream);

/* y = alpha x + beta y, f32; beta == 0 leaves the old y unread. */
int32_t rosa_axpby(int64_t n, float alpha, const float *x, float beta, float *y, void *stream);

/* dst[i] = src[i] converted between rosa_dtypes (rounded to nearest even when narrowing). */
int32_t rosa_cast(int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype, void *dst,
                  void *stream);

/* y[i, j] += bias[i] for a row-major rows x cols f32 matrix (feature-major activations: one
 * bias per row). */
int32_t rosa_bias_add(int64_t rows, int64_t cols, const float *bias, float *y, void *stream);

/* out[i] = sum_j x[i, j] for a row-major rows x cols f32 matrix: the bias gradient. */
int32_t rosa_row_sum(int64_t rows, int64_t cols, const float *x, float *out, void *stream);

/* dense[i, col_idx[p]] = base[i, col_idx[p]] + alpha values[p] for every stored entry p of
 * row i of a CSR matrix (rows x cols, columns unique within a row), computed in f32 and
 * rounded once to `dtype` (nearest even); every other element of `dense` is left as it is.
 * `base` NULL means `dense` itself: an in-place add that folds a sparse adapter into a dense
 * weight (alpha = -1 takes it out). A separate `base` (the frozen W, same shape, its own
 * stride, never overlapping `dense`) rewrites the mask's entries of a working copy from
 * scratch, so a merged W + S never drifts from rounding repeated adds and subtracts. */
typedef struct rosa_csr_add_params {
  int32_t rows;
  int32_t cols;
  const int32_t *row_ptr; /* [rows + 1] */
  const int32_t *col_idx; /* [nnz], each in [0, cols) */
  const float *values;    /* [nnz], f32 whatever the dense dtype */
  int32_t dtype;          /* rosa_dtype of base and dense */
  const void *base;       /* [rows * base_ld], or NULL (in place) */
  int64_t base_ld;        /* >= cols when base is given */
  void *dense;            /* [rows * ld] */
  int64_t ld;
  float alpha;
} rosa_csr_add_params;

int32_t rosa_csr_add(const rosa_csr_add_params *params, void *stream);

/*
 * NF4 dequantization (csrc/nf4.cu), the CUDA twin of rosa::quant's Nf4Matrix::dequantize_into:
 * rows [row0, row0 + row_count) of a rows x cols NF4 matrix W into a row-major output of
 * out_dtype with row stride ld, out[i * ld + j] = round(nf4[q] * scale) for element
 * e = (row0 + i) * cols + j of W. The elements of W, row-major, are cut into blocks of
 * block_size consecutive elements, one scale each; element e's 4-bit code q is the high
 * nibble of codes[e / 2] for an even e, the low one for an odd e. A scale is absmax[b],
 * or, double-quantized (scale_codes != NULL), dynamic_code[scale_codes[b]] * absmax[b /
 * dq_block_size] + offset, each operation rounded to f32 (never fused). The padding of
 * out between rows is never touched; out is only written, never read.
 */
typedef struct rosa_nf4_params {
  int64_t rows;                /* rows of W */
  int64_t cols;                /* columns of W and of the output */
  int64_t row0;                /* first row of W to dequantize */
  int64_t row_count;           /* rows to dequantize: row0 + row_count <= rows */
  int32_t block_size;          /* elements per scale: a power of two in [32, 4096] */
  int32_t dq_block_size;       /* scales per nested absmax, a power of two in [32, 4096];
                                  ignored unless scale_codes != NULL */
  const uint8_t *codes;        /* [ceil(rows * cols / 2)] packed 4-bit codes */
  const float *nf4;            /* [16] the code values */
  const float *absmax;         /* [ceil(rows * cols / block_size)] f32 scales, or the nested
                                  absmax [ceil(scales / dq_block_size)] of double quant */
  const uint8_t *scale_codes;  /* NULL: f32 scales; else [scales] 8-bit codes of the scales */
  const float *dynamic_code;   /* [256] values of the 8-bit codes; double quantization only */
  float offset;                /* double quantization: added to every dequantized scale */
  void *out;                   /* [(row_count - 1) * ld + cols] of out_dtype */
  int64_t ld;                  /* row stride of out in elements, >= cols */
} rosa_nf4_params;

/* Dequantizes into out (a rosa_dtype). row_count == 0 or cols == 0 launches nothing. */
int32_t rosa_nf4_dequant(const rosa_nf4_params *params, int32_t out_dtype, void *stream);

/*
 * Probes of the GPU's ceilings (csrc/ceilings.cu), for the benchmarks' roofline. Both run
 * `blocks` blocks of ROSA_PROBE_THREADS threads and write *sink at most once (only on
 * values the callers never produce: the probes' results are their times, not their sums).
 */
#define ROSA_PROBE_THREADS 256
#define ROSA_PROBE_FMA_CHAINS 8

/* Reads the `bytes` at `buf` `passes` times over, as 16-byte vectors cached in L2 but not
 * L1: bytes * passes bytes in all. `bytes` must be a multiple of 16 and `buf` 16-byte
 * aligned; pass an all-zeros buffer. */
int32_t rosa_probe_read(const void *buf, int64_t bytes, int32_t passes, int32_t blocks,
                        float *sink, void *stream);

/* Each thread runs `iters` rounds of ROSA_PROBE_FMA_CHAINS independent f32 FMAs:
 * 2 * ROSA_PROBE_FMA_CHAINS * ROSA_PROBE_THREADS * blocks * iters flops in all. */
int32_t rosa_probe_fma(int32_t blocks, int32_t iters, float *sink, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* ROSA_KERNELS_H */
