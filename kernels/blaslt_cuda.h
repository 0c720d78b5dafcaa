/* blaslt_cuda.h — every matrix product of the CUDA backend, through cuBLASLt loaded at run time
 * (dlopen libcublasLt.so.13, or $SF_CUBLASLT_LIB): a CUDA build links no cuBLAS, so it starts on
 * machines without it and says what is missing when a GPU path is asked for.
 *
 * Terms are cuBLAS's column-major ones (see kernels/cuda/gemm.cu for the row-major mapping):
 * D (m, n) = alpha · op(A) (m, k) · op(B) (k, n) + beta · D [+ bias (m) broadcast over columns],
 * bf16 or f32 operands, fp32 compute and scale, `batch` products with element strides sa, sb, sd.
 * The bias epilogue (CUBLASLT_EPILOGUE_BIAS) adds a bias of D's dtype in fp32 before D's single
 * rounding — torch's addmm. The GELU epilogue (sf_mm.gelu) then applies cuBLASLt's GELU, the tanh
 * approximation torch's nn.GELU(approximate='tanh') computes, to that fp32 value: one rounding where
 * addmm + GELU rounds twice (tests/unit/test_cuda_emu.c `linear_gelu_epilogue`). Reduction schemes
 * that round partial sums to the output type (INPLACE, OUTPUT_TYPE split-K) are excluded: only fp32
 * (compute-type) reductions are allowed.
 * With sf_mm.fp8 the operands are float8 e4m3 with per-tensor scales (the FP8 GEMM torchao runs).
 * One heuristic query per distinct shape/alignment, cached; a 32 MiB workspace allocated once.
 *
 * Implemented in kernels/cuda/blaslt.c; CPU-only builds link stubs (kernels/nocuda/nocuda.c).
 * Tested by tests/unit/test_cuda_kernels.c on a GPU (gemm, linear, batched attention products
 * against the CPU references). */
#ifndef SF_BLASLT_CUDA_H
#define SF_BLASLT_CUDA_H

#include "sf.h"
#include "tensor.h"

#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_blaslt sf_blaslt;

typedef struct sf_mm {
    int transa, transb;       /* 1 = transposed (CUBLAS_OP_T) */
    int64_t m, n, k;
    const void *A;            /* device */
    sf_dtype at;              /* SF_BF16 or SF_F32 */
    int64_t lda, sa;          /* leading dimension, batch stride (elements) */
    const void *B;
    sf_dtype bt;
    int64_t ldb, sb;
    void *D;                  /* also C when beta != 0 */
    sf_dtype dt;
    int64_t ldd, sd;
    int batch;                /* ≥ 1 */
    float alpha, beta;
    const void *bias;         /* NULL, or (m) of dtype dt: the bias epilogue */
    int gelu;                 /* 1: GELU (tanh form) of the fp32 result after the bias, before D's rounding
                                 (CUBLASLT_EPILOGUE_GELU[_BIAS]; valid with beta == 0 only) */
    /* FP8 (`--fp8`, kernels/fp8_cuda.h): A and B are float8 e4m3fn bytes (at = bt = SF_U8), D bf16 (and the
       bias bf16), the product TN only (transa 1, transb 0: cuBLASLt's one FP8 layout), beta 0, batch 1;
       D = alpha·(*a_scale)·(*b_scale)·op(A)·op(B) + bias with fp32 accumulation and cuBLASLt's fast
       accumulation (torch._scaled_mm's use_fast_accum=True, torchao's default). a_scale, b_scale: one f32
       each in device memory, read when the product runs (CUBLASLT_MATMUL_DESC_A/B_SCALE_POINTER). */
    int fp8;
    const float *a_scale, *b_scale;
} sf_mm;

/* The two products the backend builds in several places, in row-major terms (A and B swapped, see gemm.cu):
 * sf_mm_linear: y (M, N) = x (M, K) · wᵀ (nn.Linear; w (N, K) as stored), x and w of dtype in (bf16, or u8 for fp8),
 * y of dtype out, row strides ldx, ldy; alpha 1, no bias.
 * sf_mm_head_logits: per head h of H (features [h·d, (h+1)·d)), S_h (rows, nk) = (q_h · k_hᵀ)·alpha in f32, rows lds
 * apart and heads rows·lds apart; q (rows, H·d) and k (nk, H·d) bf16 with row strides ldq, ldk. */
static inline sf_mm sf_mm_linear(int64_t M, int64_t N, int64_t K, const void *x, int64_t ldx, const void *w, sf_dtype in,
                                 void *y, sf_dtype out, int64_t ldy) {
    sf_mm m;
    memset(&m, 0, sizeof m);
    m.transa = 1, m.transb = 0, m.m = N, m.n = M, m.k = K;
    m.A = w, m.at = in, m.lda = K;
    m.B = x, m.bt = in, m.ldb = ldx;
    m.D = y, m.dt = out, m.ldd = ldy;
    m.batch = 1, m.alpha = 1.0f;
    return m;
}
static inline sf_mm sf_mm_head_logits(int64_t rows, int64_t nk, int H, int d, const void *q, int64_t ldq, const void *k,
                                      int64_t ldk, float alpha, float *S, int64_t lds) {
    sf_mm m;
    memset(&m, 0, sizeof m);
    m.transa = 1, m.transb = 0, m.m = nk, m.n = rows, m.k = d;
    m.A = k, m.at = SF_BF16, m.lda = ldk, m.sa = d;
    m.B = q, m.bt = SF_BF16, m.ldb = ldq, m.sb = d;
    m.D = S, m.dt = SF_F32, m.ldd = lds, m.sd = rows * lds;
    m.batch = H, m.alpha = alpha;
    return m;
}

/* dlopen cuBLASLt, create a handle and the workspace on the current device, bind to stream
 * (cudaStream_t). Missing library → SF_E_UNSUPPORTED with what to install. */
sf_status sf_blaslt_new(sf_blaslt **out, void *cuda_stream, sf_err *err);
void sf_blaslt_destroy(sf_blaslt **p); /* NULL / *p NULL: no-op */
/* Enqueue one (batched) product on the stream. */
sf_status sf_blaslt_matmul(sf_blaslt *lt, const sf_mm *p, sf_err *err);
/* Version of the loaded library (e.g. 130100), 0 when none. */
int sf_blaslt_version(const sf_blaslt *lt);

#ifdef __cplusplus
}
#endif
#endif
