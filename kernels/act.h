/* act.h — elementwise activations, in place on f32: SiLU x·σ(x) (time embedding, VAE norms) and GELU with
 * the tanh approximation (text embedding, FFN; torch nn.GELU(approximate='tanh')).
 * Shared by the DiT and the T5 encoder. Tested by tests/unit/test_kernels.c and
 * tests/unit/test_vae_kernels.c (threaded GELU). */
#ifndef SF_ACT_H
#define SF_ACT_H

#include <math.h>
#include <stdint.h>

/* The one SiLU, x·σ(x) = x / (1 + e^-x): evaluated in double and rounded once, which the DiT's
 * golden time embedding needs (the VAE's fused norm + SiLU uses it too). */
static inline float sf_silu1(float x) { return (float)((double)x / (1.0 + exp(-(double)x))); }

/* x: (n) f32, in place. */
void sf_silu_cpu(float *x, int64_t n);
/* 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), x: (n) f32, in place. */
void sf_gelu_tanh_cpu(float *x, int64_t n);
/* The same on up to nthreads threads (<= 1: inline); elementwise, so the same bits. */
void sf_gelu_tanh_mt_cpu(float *x, int64_t n, int nthreads);

#endif
