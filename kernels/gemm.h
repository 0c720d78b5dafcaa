/* gemm.h — the DiT's linear layer: y = x · Wᵀ + b (nn.Linear), fp32 accumulate.
 *
 * x: (M, K) f32, row stride ldx (elements). W: (N, K) row-major, dtype f32, bf16 or f16 — bf16/f16
 * weights stay in that dtype in memory (an mmapped file) and are widened to f32 inside the kernel.
 * bias: (N) f32 or NULL. y: (M, N) f32, row stride ldy; must not alias x.
 * Every output element is one dot product over K summed in a fixed order (8 interleaved partial
 * sums, combined pairwise, then the K%8 tail, then the bias), whatever the thread count or tiling:
 * results are bit-identical for any nthreads. Threads split output rows (or columns when M is small).
 * Mirrors torch.nn.Linear in float32. Tested by tests/unit/test_kernels.c. */
#ifndef SF_GEMM_H
#define SF_GEMM_H

#include "parallel.h"
#include "tensor.h"

/* Returns 0, or -1 for an unsupported weight dtype (nothing written). Allocates its work memory per
 * call; sf_gemm_cpu_ws takes it from ws (a component's scratch, parallel.h: nthreads parts of at
 * least sf_gemm_cpu_scratch(K) floats) and allocates nothing. Same bits either way. */
int sf_gemm_cpu(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const void *w, sf_dtype wdt,
                const float *bias, float *y, int64_t ldy, int nthreads);
int sf_gemm_cpu_ws(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const void *w, sf_dtype wdt,
                   const float *bias, float *y, int64_t ldy, int nthreads, const sf_scratch *ws);
size_t sf_gemm_cpu_scratch(int64_t K);

#endif
