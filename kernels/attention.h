/* attention.h — multi-head attention O = softmax(Q·Kᵀ·scale)·V without masking, with an optional
 * tap of the pre-softmax scaled logits.
 *
 * q:  (Lq, heads, d) f32, token row stride ldq (elements)
 * k, v: (Lk, heads, d) f32, token row stride ldkv (a KV-cache window)
 * out: (Lq, heads, d) f32, token row stride ldo (must not alias q/k/v)
 * logits: NULL or (heads, Lq, Lk) f32 — receives s = (q·k)·scale exactly as used by the softmax.
 * Every logit is one dot product over d in a fixed order; every output element sums over the keys
 * in key order; work is split over (head, query tile) only → bit-identical for any nthreads.
 * Returns 0, or -1 when scratch memory could not be allocated (nothing valid written).
 * Mirrors the golden's exact float32 attention (flash attention in the bf16 reference).
 * Tested by tests/unit/test_kernels.c and tests/unit/test_dit.c. */
#ifndef SF_ATTENTION_H
#define SF_ATTENTION_H

#include <stdint.h>

#include "parallel.h"

int sf_attention_cpu(int64_t Lq, int64_t Lk, int heads, int d, const float *q, int64_t ldq, const float *k,
                     const float *v, int64_t ldkv, float *out, int64_t ldo, float scale, float *logits,
                     int nthreads);
/* The same with its work memory from ws (a component's scratch, parallel.h: nthreads parts of at
 * least sf_attention_cpu_scratch(Lk, d) floats): nothing is allocated per call. Same bits. */
int sf_attention_cpu_ws(int64_t Lq, int64_t Lk, int heads, int d, const float *q, int64_t ldq, const float *k,
                        const float *v, int64_t ldkv, float *out, int64_t ldo, float scale, float *logits,
                        int nthreads, const sf_scratch *ws);
size_t sf_attention_cpu_scratch(int64_t Lk, int d);

/* Row softmax of the explicit (tapped / fallback) GPU attention path, its CPU reference:
 * p[r, i] = ⌊ exp(s[r, i] − max_r) / Σ_i exp(s[r, i] − max_r) ⌉ with float statistics, ⌊·⌉ = round to
 * bf16 (P is bf16 before the P·V product, as in flash attention). s: (rows, n) stride lds, p stride ldp. */
void sf_softmax_rows_cpu(int64_t rows, int64_t n, const float *s, int64_t lds, float *p, int64_t ldp);

#endif
