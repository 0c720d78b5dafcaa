/* act.h — elementwise activations, in place on f32: SiLU x·σ(x) (time embedding, VAE norms) and GELU with
 * the tanh approximation (text embedding, FFN; torch nn.GELU(approximate='tanh')).
 * Shared by the DiT, the VAE and the T5 encoder (whose gated GELU, kernels/t5_ops.h, uses the
 * sf_gelu_tanh scalar). Tested by tests/unit/test_kernels.c, tests/unit/test_vae_kernels.c
 * (threaded GELU) and tests/unit/test_t5_ops.c (the scalar). */
#ifndef SF_ACT_H
#define SF_ACT_H

#include <math.h>
#include <stdint.h>

/* The one SiLU, x·σ(x) = x / (1 + e^-x): evaluated in double and rounded once, which the DiT's
 * golden time embedding needs (the VAE's fused norm + SiLU uses it too). */
static inline float sf_silu1(float x) { return (float)((double)x / (1.0 + exp(-(double)x))); }

/* The one GELU-tanh, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in double and NOT rounded: callers
 * round once, after their own last multiply (sf_gelu_tanh_cpu rounds it to f32; the umT5 gated GELU,
 * kernels/t5_ops.h, multiplies by fc1 first), which the DiT's and umT5's goldens need. */
static inline double sf_gelu_tanh(double x) {
    const double k = 0.7978845608028654; /* sqrt(2/pi) */
    return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}

/* x: (n) f32, in place. */
void sf_silu_cpu(float *x, int64_t n);
/* 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), x: (n) f32, in place. */
void sf_gelu_tanh_cpu(float *x, int64_t n);
/* The same on up to nthreads threads (<= 1: inline); elementwise, so the same bits. In the fast and
 * bf16 modes (parallel.h) oneDNN's vectorised GELU-tanh (within 1e-6 of it, tests/unit/test_kernels.c). */
void sf_gelu_tanh_mt_cpu(float *x, int64_t n, int nthreads);

#endif
