/* rope.h — Wan's 3-axis rotary position embedding (causal_rope_apply), float64 tables.
 *
 * Per head of width d, the d/2 complex pairs z_j = x[2j] + i·x[2j+1] are split into a time axis
 * (d/2 − 2·⌊d/6⌋ pairs, inverse frequency 10000^(−2m/(d − 4⌊d/6⌋))) and height / width axes
 * (⌊d/6⌋ pairs each, 10000^(−2m/(2⌊d/6⌋))); for d = 128: 22/21/21 pairs, dims 44/42/42.
 * Positions: time = start_frame + f (absolute latent frame), height h, width w.
 * The rotation is done in double and rounded to f32 once. Tables cover positions [0, max_pos)
 * (the reference uses 1024). Tested by tests/unit/test_kernels.c against rope.freqs_f64 and the
 * DiT golden q/k. */
#ifndef SF_ROPE_H
#define SF_ROPE_H

#include "sf.h"

typedef struct sf_rope_table {
    int head_dim;       /* d */
    int n_t, n_h, n_w;  /* pairs per axis (sum d/2) */
    int max_pos;
    double *cs;         /* (max_pos, d/2, 2) cos,sin of pos·invfreq of pair j's own axis; owned */
} sf_rope_table;

sf_status sf_rope_table_init(sf_rope_table *t, int head_dim, int max_pos, sf_err *err);
void sf_rope_table_free(sf_rope_table *t);

/* x: (F·H·W, heads, d) f32 in place, token row stride ld (elements); tokens ordered (f, h, w).
 * Requires start_frame + F <= max_pos, H <= max_pos, W <= max_pos (caller checks). */
void sf_rope_apply_cpu(const sf_rope_table *t, float *x, int64_t ld, int F, int H, int W, int heads,
                       int64_t start_frame, int nthreads);

/* Deep Sink's temporal re-alignment (sf-denoise --sink-rope realign): keys already rotated at time
 * position p, moved to p + delta by rotating only the time-axis pairs [0, n_t) by delta's own
 * table row (the conjugate for delta < 0): R(delta)·R(p)·k = R(p + delta)·k, so the result is the key
 * RoPE would have given at p + delta, up to one more rounding. Height / width pairs are copied.
 * src, dst: n_tok rows of heads·d f32 (row strides lds, ldd; dst may be src with ldd = lds). In double,
 * rounded to f32 once, as the rotation above. Requires |delta| < max_pos. */
void sf_rope_time_shift_cpu(const sf_rope_table *t, const float *src, int64_t lds, float *dst, int64_t ldd,
                            int64_t n_tok, int heads, int64_t delta, int nthreads);

#endif
