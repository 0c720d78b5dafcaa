/* dit_fp8.h — the CPU backend's half of `--fp8` (dit.h sf_dit_weights_fp8; numerics in kernels/fp8.h).
 * Internal to stages/denoise; tested through test_fp8.c (`dit_forward`) against the fp8 golden. */
#ifndef SF_DIT_FP8_H
#define SF_DIT_FP8_H

#include "dit.h"
#include "parallel.h"

/* SF_OK when every marked matrix of w has its CPU copy (sf_dit_weights_fp8 with cpu = 1), else SF_E_ARG. */
sf_status sf_dit_fp8_cpu_ready(const sf_dit_weights *w, sf_err *err);
/* y (M, m->n) = s_x·s_w·(X8 · W8ᵀ) + b, X8 the e4m3 values of x (M, m->k; row stride ldx) put in xq->q —
 * unless same_x (the caller vouches nothing wrote x since the previous product) and xq already holds this x. */
sf_status sf_dit_gemm_fp8_cpu(int64_t M, const float *x, int64_t ldx, const sf_dit_mat *m, const float *b, float *y,
                              sf_dit_xq *xq, int same_x, int nthreads, sf_scratch *ws, sf_err *err);

#endif
