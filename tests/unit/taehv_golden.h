/* taehv_golden.h — what test_taehv.c (the CPU decoder) and test_taehv_cuda.c (the GPU one) share about the
 * TAEHV golden (tests/golden/expect/taehv.safetensors): the debug tap that holds each layer output frame
 * to the golden's <case>.layer.<index> [T_i, C, H, W], and the reference's uint8 cast. */
#ifndef SF_TAEHV_GOLDEN_H
#define SF_TAEHV_GOLDEN_H

#include "sf_test.h"

typedef struct taehv_tap_ctx {
    const sf_tfile *g;
    const char *cs; /* the case: "tiny", "t2" */
    double tol;     /* sf_test_max_close's atol = rtol */
    int checked;    /* frames compared */
} taehv_tap_ctx;

/* sf_taehv_tap_fn: layer `index`'s frame `frame` against the golden, where it has that layer. */
static inline void taehv_golden_tap(void *p, int index, int64_t frame, const float *x, int64_t C, int64_t H, int64_t W) {
    taehv_tap_ctx *c = p;
    char name[64];
    snprintf(name, sizeof name, "%s.layer.%d", c->cs, index);
    const sf_tensor *t = sf_tfile_get(c->g, name);
    if (!t) return;
    const int fits = t->ndim == 4 && t->shape[1] == C && t->shape[2] == H && t->shape[3] == W && frame < t->shape[0];
    SF_CHECK_MSG(fits, "%s: frame %lld of [%lld, %lld, %lld] (golden %lld frames of %lldx%lldx%lld)", name,
                 (long long)frame, (long long)C, (long long)H, (long long)W, (long long)t->shape[0],
                 (long long)t->shape[1], (long long)t->shape[2], (long long)t->shape[3]);
    int64_t n = 0;
    float *g = fits ? sf_test_golden_f32(c->g, name, &n) : NULL;
    if (g) {
        char what[96];
        snprintf(what, sizeof what, "%s[frame %lld]", name, (long long)frame);
        sf_test_max_close(what, x, g + frame * C * H * W, (size_t)(C * H * W), c->tol, c->tol);
        c->checked++;
    }
    free(g);
}

/* The reference's uint8 cast of a [−1, 1] video value (inference.py): truncation of 255·(v·0.5 + 0.5). */
static inline int taehv_u8_of(float v) {
    float q = v * 0.5f + 0.5f;
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    return (int)(255.0f * q);
}

#endif
