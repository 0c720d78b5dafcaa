/* bench_vae.c — `sf-decode --bench 1.3b --device cuda`: the full-size Wan2.1 VAE decoder (dim 96,
 * widths 384/192/96, random weights from sf-mkmodel's parameter list, tools/mkmodel) on the GPU for
 * one 81-frame 832×480 video: 21 latent frames decoded in the pipeline's blocks of 3, seconds per
 * block and in total (host time; every block ends with its uint8 frames' download), device memory.
 * `--bench tiny` runs the golden-sized VAE (dim 8, 64×96) for a quick smoke test. `--bench taehv` runs
 * the TAEHV tiny decoder (stages/decode/taehv_cuda.h) at taew2_1.pth's shapes (latent 16, widths
 * 256/128/64/64, TGrow strides 1, 2, 2, 3 MemBlocks a stage; sf_mk_taehv_params' random weights) on the
 * same video. Modeled on stages/denoise/bench_video.c; run by tests/gpu/check.sh. */
#define _POSIX_C_SOURCE 200809L
#include "bench_vae.h"
#include "cuda_ops.h"
#include "rng.h"
#include "stages/decode/vae.h"
#include "stages/decode/taehv.h"
#include "stages/decode/taehv_cuda.h"
#include "stages/decode/vae_cuda.h"
#include "tools/mkmodel/mkmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Random VAE weights of base width `dim` as an in-memory tensor file (f32, the checkpoint's dtype). */
static sf_status random_vae(int dim, sf_tfile **out, sf_err *err) {
    sf_mk_params p = {0};
    *out = NULL;
    sf_status s = sf_mk_vae_params(dim, 16, &p, err);
    if (!s) s = sf_mk_tfile(&p, SF_F32, 11, dim == 96 ? "random-1.3b-vae" : "random-tiny-vae", out, err);
    sf_mk_params_free(&p);
    return s;
}

/* Random TAEHV weights at taew2_1.pth's shapes, in memory (f32). */
static sf_status random_taehv(sf_tfile **out, sf_err *err) {
    sf_mk_params p = {0};
    *out = NULL;
    sf_status s = sf_mk_taew2_1_params(&p, err);
    if (!s) s = sf_mk_tfile(&p, SF_F32, 11, "random-taew2_1", out, err);
    sf_mk_params_free(&p);
    return s;
}

/* The decoder under test: the Wan VAE's GPU decoder or the TAEHV's. */
typedef struct bench_dec {
    sf_vae_cuda *v;
    sf_taehv_cuda *t;
} bench_dec;
static sf_status dec_reset(bench_dec *d, sf_err *err) { return d->t ? sf_taehv_cuda_reset(d->t, err) : sf_vae_cuda_reset(d->v, err); }
static sf_status dec_decode(bench_dec *d, const float *z, int64_t n, uint8_t *u8, int64_t *no, sf_err *err) {
    return d->t ? sf_taehv_cuda_decode(d->t, z, n, NULL, u8, no, err) : sf_vae_cuda_decode(d->v, z, n, NULL, u8, no, err);
}
static size_t dec_bytes(const bench_dec *d) { return d->t ? sf_taehv_cuda_bytes(d->t) : sf_vae_cuda_bytes(d->v); }
static int dec_profile(const bench_dec *d, char *buf, size_t n) {
    return d->t ? sf_taehv_cuda_profile(d->t, buf, n) : sf_vae_cuda_profile(d->v, buf, n);
}
static void dec_profile_reset(bench_dec *d) {
    if (d->t) sf_taehv_cuda_profile_reset(d->t);
    else sf_vae_cuda_profile_reset(d->v);
}

sf_status sf_decode_bench(const char *kind, int cuda_ordinal, sf_err *err) {
    const int taehv = !strcmp(kind, "taehv"), full = taehv || !strcmp(kind, "1.3b");
    if (!full && strcmp(kind, "tiny"))
        return sf_fail(err, SF_E_ARG, "--bench: expected 1.3b, tiny or taehv, got '%s'", kind);
    if (cuda_ordinal < 0)
        return sf_fail(err, SF_E_ARG, "--bench runs the GPU decoder: add --device cuda (the CPU decoder's speed is in "
                                      "make bench)");
    const int64_t T = 21, h = full ? 60 : 8, w = full ? 104 : 12, B = 3;
    sf_tfile *tf = NULL;
    sf_vae *v = NULL;
    sf_taehv *tv = NULL;
    bench_dec g = {NULL, NULL};
    float *z = NULL;
    uint8_t *u8 = NULL;
    size_t fr = 0, tot = 0;
    sf_status s;
    double t0 = sf_now();
    if ((s = taehv ? random_taehv(&tf, err) : random_vae(full ? 96 : 8, &tf, err))) return s;
    if ((s = taehv ? sf_taehv_new_from(tf, h, w, 1, 0, &tv, err) : sf_vae_new_from(tf, h, w, 1, 0, &v, err))) return s;
    double t1 = sf_now();
    if ((s = taehv ? sf_taehv_cuda_new(tv, cuda_ordinal, &g.t, err) : sf_vae_cuda_new(v, cuda_ordinal, &g.v, err))) goto done;
    const int n_up = taehv ? sf_taehv_config_of(tv)->n_up : v->cfg.n_up;
    const int64_t per = taehv ? sf_taehv_config_of(tv)->time_up : (int64_t)1 << v->cfg.n_up3d;
    const int64_t Ho = h << n_up, Wo = w << n_up, fe = 3 * Ho * Wo, ze = 16 * h * w;
    printf("decode %s gpu: %lldx%lld latents -> %lldx%lld frames; random weights %.1f s, upload + plans + buffers "
           "%.2f s, %.2f GiB on the device\n",
           kind, (long long)h, (long long)w, (long long)Wo, (long long)Ho, t1 - t0, sf_now() - t1,
           (double)dec_bytes(&g) / 1073741824.0);
    z = malloc(sizeof(float) * (size_t)(T * ze));
    u8 = malloc((size_t)(per * B * fe));
    if (!z || !u8) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    sf_rng rng;
    sf_rng_seed(&rng, 5);
    sf_rng_fill_normal(&rng, z, (size_t)(T * ze), 0, 1);
    for (int run = 0; run < 2; run++) {
        double a = sf_now(), tb[8];
        int64_t frames = 0, no = 0;
        if ((s = dec_reset(&g, err))) goto done;
        for (int b = 0; b < T / B; b++) {
            double c = sf_now();
            if ((s = dec_decode(&g, z + b * B * ze, B, u8, &no, err))) goto done;
            tb[b] = sf_now() - c;
            frames += no;
            if (run == 0) break; /* warm-up: one block */
        }
        if (run == 0) {
            printf("decode %s gpu warm-up block: %.3f s\n", kind, sf_now() - a);
            dec_profile_reset(&g);
            continue;
        }
        double total = sf_now() - a;
        printf("decode %s gpu video: %.3f s for %lld latent frames (%lld video frames): %.1f FPS %s only\n", kind,
               total, (long long)T, (long long)frames, (double)frames / total, taehv ? "decoder" : "VAE");
        printf("decode %s gpu seconds per block of %lld latent frames:", kind, (long long)B);
        for (int b = 0; b < T / B; b++) printf(" %.3f", tb[b]);
        printf("\n");
        char prof[2048];
        if (dec_profile(&g, prof, sizeof prof)) printf("decode %s gpu profile (SF_CUDA_PROFILE, timed video): %s\n", kind, prof);
    }
    if ((s = sf_cuda_mem_info(&fr, &tot, err))) goto done;
    printf("decode %s gpu memory: %.2f GiB allocated by the decoder (weights, caches, activations, workspaces), "
           "device used %.2f of %.2f GiB after the run\n",
           kind, (double)dec_bytes(&g) / 1073741824.0, (double)(tot - fr) / 1073741824.0,
           (double)tot / 1073741824.0);
done:
    free(z);
    free(u8);
    sf_vae_cuda_destroy(&g.v);
    sf_vae_destroy(&v);
    sf_taehv_cuda_destroy(&g.t);
    sf_taehv_destroy(&tv);
    return s;
}
