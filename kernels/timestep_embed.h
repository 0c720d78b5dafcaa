/* timestep_embed.h — Wan's sinusoidal timestep features (sinusoidal_embedding_1d), float64.
 * out[i, j] = cos(t_i·10000^(−j/half)) for j < half, sin(...) for j ≥ half (cos half FIRST),
 * half = dim/2. t: (n) f32 timesteps (fractional values kept). out: (n, dim) double.
 * Tested by tests/unit/test_kernels.c against mid.t_sinusoid_f64. */
#ifndef SF_TIMESTEP_EMBED_H
#define SF_TIMESTEP_EMBED_H

#include <stdint.h>

/* The frequency of column pair j: 10000^(−j/half) in fp64 (also the GPU kernel's table,
 * sf_timestep_embed_cuda in kernels/cuda_ops.h). */
double sf_timestep_freq(int j, int dim);
void sf_timestep_embed_cpu(const float *t, int64_t n, int dim, double *out);

#endif
