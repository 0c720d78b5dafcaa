/* vae_encode_golden.h — the VAE encoder's golden cases (tests/golden/expect/vae_encode.safetensors, made by
 * tests/heldout/make_vae_encode_golden.py), shared by test_vae_encode.c (the CPU encoder) and
 * test_vae_encode_cuda.c (the GPU one): pixels [1, 3, T, H, W] read frames first, the reference's
 * latents [1, Tl, 16, H/8, W/8]. */
#ifndef SF_TEST_VAE_ENCODE_GOLDEN_H
#define SF_TEST_VAE_ENCODE_GOLDEN_H

#include "sf_test.h"
#include "tfile.h"

#include <stdlib.h>
#include <string.h>

typedef struct golden_case {
    int64_t T, H, W, Tl;
    float *px;  /* [T, 3, H, W] (frames first) */
    float *ref; /* [Tl, 16, H/8, W/8] */
} golden_case;

/* <pre>pixels [1, 3, T, H, W] → frames first; <pre>latent [1, Tl, 16, h, w] (pre: "img.", "vid." or "").
 * 0 (a failed check) when the case is missing. */
static inline int load_case(const sf_tfile *g, const char *pre, golden_case *c) {
    char kp[64], kl[64];
    snprintf(kp, sizeof kp, "%spixels", pre);
    snprintf(kl, sizeof kl, "%slatent", pre);
    const sf_tensor *tp = sf_tfile_get(g, kp), *tl = sf_tfile_get(g, kl);
    SF_CHECK_MSG(tp && tl && tp->ndim == 5 && tl->ndim == 5, "%s: golden case %spixels / %slatent missing", g->path, pre, pre);
    if (!tp || !tl || tp->ndim != 5 || tl->ndim != 5) return 0;
    c->T = tp->shape[2], c->H = tp->shape[3], c->W = tp->shape[4], c->Tl = tl->shape[1];
    int64_t n = 0;
    float *p = sf_test_golden_f32(g, kp, &n);
    c->ref = sf_test_golden_f32(g, kl, &n);
    const int64_t P = c->H * c->W;
    c->px = malloc(sizeof(float) * (size_t)(c->T * 3 * P));
    for (int64_t ch = 0; ch < 3; ch++)
        for (int64_t t = 0; t < c->T; t++) memcpy(c->px + (t * 3 + ch) * P, p + (ch * c->T + t) * P, sizeof(float) * P);
    free(p);
    return 1;
}

static inline void free_case(golden_case *c) {
    free(c->px);
    free(c->ref);
    c->px = c->ref = NULL;
}

/* Elements of one latent frame of case c. */
static inline size_t zframe(const golden_case *c) { return (size_t)(16 * (c->H / 8) * (c->W / 8)); }

#endif
