/* modulate.h — the DiT's adaLN modulation and gated residuals, per latent frame.
 * Tokens are grouped by frame: rows [f·S, (f+1)·S) of x belong to frame f (S = tokens per frame),
 * and each frame has its own (D) shift / scale / gate vectors (row f of a (F, ·, D) tensor with
 * frame stride fstride elements).
 *   sf_modulate_cpu:   y = x·(1 + scale) + shift      (the sum 1+scale is rounded to f32 first)
 *   sf_gated_add_cpu:  x = x + y·gate
 * x, y: (F·S, D) contiguous f32. Mirrors CausalWanAttentionBlock / CausalHead arithmetic in
 * float32. Tested by tests/unit/test_kernels.c and the DiT goldens. */
#ifndef SF_MODULATE_H
#define SF_MODULATE_H

#include <stdint.h>

void sf_modulate_cpu(int F, int64_t S, int64_t D, const float *x, const float *shift, const float *scale,
                     int64_t fstride, float *y);
void sf_gated_add_cpu(int F, int64_t S, int64_t D, float *x, const float *y, const float *gate, int64_t fstride);
/* The bf16 path's modulation table (SPEC §5.4 E_i, §5.9 Hm_i):
 *   out[f·n + i] = ⌊ mod[i] + e[f·lde + i mod period] ⌉   (⌊·⌉ = round to bf16, kept as f32)
 * mod: (n), e: rows of lde values per frame. CPU reference of sf_mod_table_cuda. */
void sf_mod_table_cpu(int F, int64_t n, const float *mod, const float *e, int64_t lde, int64_t period, float *out);

#endif
