/* norm_rows.h — per-row normalisations of the DiT, f32 in/out, statistics in double.
 *   LayerNorm (WanLayerNorm: norm1/norm2/head.norm without affine, norm3 with weight+bias):
 *     y = (x − mean)·rsqrt(var + eps) [·w + b], biased variance.
 *   RMSNorm (WanRMSNorm, norm_q/norm_k over the FULL model width, before the head split):
 *     y = (x·rsqrt(mean(x²) + eps)) · w  — the normalised value is rounded to f32 before the
 *     weight multiply, as the reference's .type_as(x) * weight does.
 * x, y: (M, D), row strides ldx/ldy (may alias when equal). Tested by tests/unit/test_kernels.c. */
#ifndef SF_NORM_ROWS_H
#define SF_NORM_ROWS_H

#include <stdint.h>

/* w, b: (D) f32 or NULL (no affine). */
void sf_layernorm_cpu(int64_t M, int64_t D, const float *x, int64_t ldx, const float *w, const float *b, double eps,
                      float *y, int64_t ldy, int nthreads);
/* w: (D) f32 or NULL. */
void sf_rmsnorm_cpu(int64_t M, int64_t D, const float *x, int64_t ldx, const float *w, double eps, float *y,
                    int64_t ldy, int nthreads);

#endif
