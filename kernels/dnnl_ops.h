/* dnnl_ops.h — the CPU backend's fast and bf16 modes (parallel.h sf_cpu_mode): matrix products,
 * row softmax and the VAE's 3-D convolution through oneDNN (Debian libdnnl-dev), on the same OpenMP
 * runtime (libgomp) as the exact kernels' team, so one persistent pool serves both. oneDNN picks its
 * kernel by the CPU at run time: AVX-512 FMA brgemm for f32, AMX or AVX512-BF16 for bf16.
 * The exact kernels (gemm.c, attention.c, conv3d.c) call these when the mode is not SF_CPU_EXACT;
 * results then depend on oneDNN's blocking (not bit-stable across thread counts or CPUs) and stay
 * within the golden tolerances (tests/unit/test_dit.c, test_t5.c, test_vae.c run in every mode).
 * Tested by tests/unit/test_kernels.c (fast_* tests, against the exact kernels). */
#ifndef SF_DNNL_OPS_H
#define SF_DNNL_OPS_H

#include <stdint.h>

#include "conv3d.h"
#include "tensor.h"

/* C = (A · Bᵀ)·scale + bias. A: (M, K) row stride lda, dtype dt (SF_F32 or SF_BF16).
 * B: (N, K) row-major, row stride ldb, dtype dt (nn.Linear's weight / the keys).
 * With b_kn = 1, B is (K, N) row stride ldb instead (the values of P·V).
 * bias: (N) f32 or NULL. C: (M, N) f32 row stride ldc. nthreads: oneDNN's threads (inside a
 * parallel region it runs on the calling thread). Returns 0, or -1 when oneDNN refuses. */
int sf_dnnl_matmul(int64_t M, int64_t N, int64_t K, const void *a, int64_t lda, const void *b, int64_t ldb,
                   int b_kn, sf_dtype dt, const float *bias, float scale, float *c, int64_t ldc, int nthreads);

/* Batched f32 products: for b < nb, C[b] = A[b]·B[b], A[b] (M, K), B[b] (K, N), C[b] (M, N), each
 * addressed by element strides {batch, row, column} (sa, sb, sc: heads of a (tokens, heads·d) matrix,
 * keys transposed by their strides). Returns 0, or -1 when oneDNN refuses. */
int sf_dnnl_matmul_batch(int64_t nb, int64_t M, int64_t N, int64_t K, const float *a, const int64_t sa[3],
                         const float *b, const int64_t sb[3], float *c, const int64_t sc[3], int nthreads);

/* In place softmax over each of `rows` rows of n floats (row stride lds). Returns 0 or -1. */
int sf_dnnl_softmax_rows(int64_t rows, int64_t n, float *s, int64_t lds, int nthreads);

/* In place x = GELU-tanh(x) (nn.GELU('tanh')) over n floats, oneDNN's vectorised eltwise. 0 or -1. */
int sf_dnnl_gelu_tanh(float *x, int64_t n, int nthreads);

/* sf_conv3d_cpu's contract (conv3d.h) through oneDNN's convolution, f32, or with bf16 = 1 bf16
 * inputs and weights (f32 accumulation and output). Its work memory is oneDNN's (per call). */
sf_status sf_dnnl_conv3d(const sf_conv3d_args *a, int bf16, sf_err *err);

/* A planar f32 frame src [C, HW] (C a multiple of 16) into oneDNN's 16-channel blocked layout: channel
 * c, pixel p at dst[(c / 16)·cbs + p·16 + c % 16] (cbs: elements between channel blocks). Data
 * movement only. */
void sf_dnnl_to_blocked16(const float *src, int64_t C, int64_t HW, float *dst, int64_t cbs, int nthreads);

/* 1 when built with oneDNN, 0 with DNNL=0 (kernels/nodnnl/dnnl_none.c: every call refuses). */
int sf_dnnl_built(void);

/* oneDNN primitives run so far (matmul, softmax, convolution): tests check the fast path ran. */
unsigned long long sf_dnnl_calls(void);
/* Primitives oneDNN could not make, or had only its reference loops for (refused: the exact kernels run
 * instead), counted once per shape: tests check a refusal happened where the fast path did not run. */
unsigned long long sf_dnnl_refusals(void);
/* 1 when oneDNN has JIT bf16 kernels on this CPU (AVX-512 or later: emulated, or on bf16 units), 0 else
 * (AVX2: bf16 products are refused, the exact kernels run). */
int sf_dnnl_bf16_jit(void);

/* bf16 ← f32, round to nearest even (NaN stays NaN), n elements; vectorised (feeds oneDNN). */
void sf_dnnl_to_bf16(const float *src, uint16_t *dst, int64_t n);

/* x = hi + mid + lo for n floats: three bf16 pieces, each the rounding of what the previous ones leave
 * (|x − Σ| ≤ 2⁻²⁵·|x| for normal x), so f32 × bf16 products become three exact bf16 × bf16 ones (the
 * fast mode's GEMM on bf16 weights, gemm.c). Non-finite x: hi = bf16(x), mid = lo = 0. */
void sf_dnnl_split3_bf16(const float *src, uint16_t *hi, uint16_t *mid, uint16_t *lo, int64_t n);

/* 1 when oneDNN runs bf16 products on this CPU's bf16 units (AVX512-BF16 or AMX), else 0 (also
 * without oneDNN). SF_CPU_NO_BF16_UNITS=1 says 0 (tests of the other path). */
int sf_dnnl_bf16_native(void);

/* The variant sf_dnnl_to_bf16 / sf_dnnl_split3_bf16 run now (SF_ISA_BASE or SF_ISA_AVX2, parallel.h). */
int sf_bf16_cvt_isa(void);

#endif
