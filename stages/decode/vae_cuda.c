/* vae_cuda.c — the Wan2.1 VAE decoder on a CUDA GPU; the design is in vae_cuda.h. Mirrors
 * stages/decode/vae.c (decode_frame) step for step; plain C over the C-callable CUDA ops
 * (kernels/cuda_ops.h, vae_cuda.h, conv_cuda.h), so a CPU-only build compiles it against stubs; what it
 * shares with the GPU encoder (uploads, caches, convs, residual and attention blocks) is vae_gpu.c.
 * Tested by tests/unit/test_vae_cuda.c (GPU golden + refusal) and test_vae_emu (CPU emulation). */
#define _POSIX_C_SOURCE 200809L
#include "vae_cuda.h"
#include "vae_gpu.h"
#include "stop.h"
#include "conv_cuda.h"
#include "cuda_ops.h"
#include "device.h"
#include "gpu_host.h"
#include "vae_ops.h"
#include "vae_ops_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SF_CUDA_PROFILE categories (one profile run per latent frame): vae_gpu.h's */
enum { V_CONV = SF_VG_CONV, V_POINT = SF_VG_POINT, V_NORM = SF_VG_NORM, V_ATTN = SF_VG_ATTN, V_UP = SF_VG_UP,
       V_CACHE = SF_VG_CACHE, V_IO = SF_VG_IO, V_N = SF_VG_N };
typedef sf_vconv conv_w;
typedef sf_vlayer layer_w;
typedef sf_vcache cache_buf;
static const char *const V_NAME[V_N] = {"conv3d (cuDNN)", "1x1 convs (cuBLASLt)", "RMS norm + SiLU",
                                        "mid-block attention", "upsampling", "cache shifts", "latent in, pixels out"};

struct sf_vae_cuda {
    sf_vgpu d; /* context, cuDNN, caches + stage, bytes, profile (vae_gpu.h) */
    const sf_vae *v;
    conv_w conv2, conv1, head;
    layer_w L[SF_VAE_MAX_LAYERS];
    float *head_g;
    int up3d_seen[SF_VAE_MAX_LAYERS];
    void *A, *B, *X, *U; /* activations: residual stream ping-pong, scratch, upsampled frames */
    float *S;            /* attention logits [HW, HW] f32 */
    void *P;             /* attention probabilities [HW, HW] bf16 */
    int64_t attn_hw;
    float *zin, *mr, *video_d;
    uint8_t *u8_d;
    sf_vflight fl;       /* sf_vae_cuda_submit / _receive: up to two latent frames in flight (vae_gpu.h) */
    int want_u8, want_video; /* the submit being enqueued: its pixels' destinations */
    int64_t frames_in;
};

/* ---- sizing: one walk over the decoder for a steady-state latent frame -------------------- */

typedef struct plan {
    size_t act, up;    /* elements of A/B/X, of U */
    int64_t attn_hw;
    int n_caches;
    cache_buf cache[128];
} plan;

static void gpu_step(void *ctx, const sf_vae_step *st) {
    plan *p = ctx;
    size_t e = st->elems;
    switch (st->kind) {
    case SF_VAE_STEP_ACT: break;
    case SF_VAE_STEP_CACHE:
        if (p->n_caches < 128) p->cache[p->n_caches].fe = (size_t)(st->cin * st->H * st->W), p->cache[p->n_caches].nmax = (int)st->n;
        p->n_caches++;
        break;
    case SF_VAE_STEP_ATTN:
        if (st->H * st->W > p->attn_hw) p->attn_hw = st->H * st->W;
        break;
    case SF_VAE_STEP_UP: /* all n frames at once */
        if (e > p->up) p->up = e;
        e = 0;
        break;
    case SF_VAE_STEP_HEAD: e = (size_t)(st->n * 8 * st->H * st->W); break; /* 3 outputs padded to 8 */
    }
    if (e > p->act) p->act = e;
}

static void walk(const sf_vae *v, plan *p) {
    memset(p, 0, sizeof *p);
    sf_vae_walk(&v->cfg, v->st.h, v->st.w, gpu_step, p);
}

/* Every conv shape the decoder runs, prepared at init: one output frame per call (the first latent
 * frame, and the fallback), and all n frames of a steady latent frame at that level in one call
 * (n = 2^(temporal upsamplings so far)) unless SF_VAE_FRAME_CONVS=1 asks for the per-frame calls
 * (to measure one against the other) or cuDNN refuses the larger shape. */
static sf_status prepare(sf_vae_cuda *g, conv_w *c, int64_t H, int64_t W, int residual, int64_t n, sf_err *err) {
    sf_conv_shape s = {c->cin, c->cout, H, W, 1, c->kt, c->k, 1, residual, 0};
    sf_status st = sf_conv_cudnn_prepare(g->d.conv, &s, err);
    c->tb = 0;
    if (st || n < 2) return st;
    sf_err e2 = {{0}};
    s.t_out = n;
    st = sf_conv_cudnn_prepare(g->d.conv, &s, &e2);
    if (st == SF_OK) c->tb = n;
    else if (st != SF_E_UNSUPPORTED) return *err = e2, st;
    return SF_OK;
}

static sf_status prepare_all(sf_vae_cuda *g, sf_err *err) {
    const sf_vae_config *c = &g->v->cfg;
    int64_t H = g->v->st.h, W = g->v->st.w, n = 1;
    const char *pf = getenv("SF_VAE_FRAME_CONVS");
    const int64_t up = pf && atoi(pf) > 0 ? 1 : 2; /* what n grows by: 1 keeps every call per frame */
    sf_status s;
    if ((s = prepare(g, &g->conv1, H, W, 0, n, err))) return s;
    for (int i = 0; i < c->n_layers; i++) {
        layer_w *w = &g->L[i];
        switch (c->layers[i].kind) {
        case SF_VAE_RES:
            if ((s = prepare(g, &w->a, H, W, 0, n, err)) || (s = prepare(g, &w->b, H, W, 1, n, err))) return s;
            break;
        case SF_VAE_ATTN: break;
        case SF_VAE_UP3D:
            if ((s = prepare(g, &w->tc, H, W, 0, n, err))) return s;
            n *= up;
            /* fall through */
        case SF_VAE_UP2D:
            H *= 2, W *= 2;
            if ((s = prepare(g, &w->rs, H, W, 0, n, err))) return s;
            break;
        }
    }
    return prepare(g, &g->head, H, W, 0, n, err);
}

static sf_status upload(sf_vae_cuda *g, sf_err *err) {
    const sf_vae_config *c = &g->v->cfg;
    const sf_vae_weights *Wt = &g->v->wt;
    sf_status s;
    const int64_t z = c->z_dim;
    if ((s = sf_vgpu_up_conv(&g->d, &g->conv2, Wt->conv2_w, Wt->conv2_b, z, z, z, z, 1, 1, err)) ||
        (s = sf_vgpu_up_conv(&g->d, &g->conv1, Wt->conv1_w, Wt->conv1_b, z, z, c->top, c->top, 3, 3, err)))
        return s;
    for (int i = 0; i < c->n_layers; i++) {
        const sf_vae_layer *L = &c->layers[i];
        const sf_vae_lw *w = &Wt->layer[i];
        layer_w *d = &g->L[i];
        const int64_t ci = L->cin, co = L->cout;
        switch (L->kind) {
        case SF_VAE_RES:
        case SF_VAE_ATTN:
            if ((s = sf_vgpu_up_block(&g->d, d, L, w, L->kind == SF_VAE_ATTN, err))) return s;
            break;
        case SF_VAE_UP3D:
            if ((s = sf_vgpu_up_conv(&g->d, &d->tc, w->wtc, w->btc, ci, ci, 2 * ci, 2 * ci, 3, 1, err))) return s;
            /* fall through */
        case SF_VAE_UP2D:
            if ((s = sf_vgpu_up_conv(&g->d, &d->rs, w->wrs, w->brs, ci, ci, co, co, 1, 3, err))) return s;
            break;
        }
    }
    if ((s = sf_vgpu_up_f32(&g->d, &g->head_g, Wt->head_g, (size_t)c->dim, err))) return s;
    return sf_vgpu_up_conv(&g->d, &g->head, Wt->head_w, Wt->head_b, c->dim, c->dim, c->out_ch, 8, 3, 3, err);
}

sf_status sf_vae_cuda_new(const sf_vae *v, int ordinal, sf_vae_cuda **out, sf_err *err) {
    const sf_vae_config *c = &v->cfg;
    sf_status s;
    *out = NULL;
    if (c->z_dim % 8 || c->top % 8 || c->dim % 8 || c->out_ch > 8)
        return sf_fail(err, SF_E_UNSUPPORTED,
                       "VAE on cuda:%d: widths z %lld, top %lld, dim %lld must be multiples of 8 (cuDNN's bf16 NDHWC)",
                       ordinal, (long long)c->z_dim, (long long)c->top, (long long)c->dim);
    if (c->top > 4096) /* the widest norm (sf_vae_rms_norm_cuda takes up to 4096 channels): said here, not at the first frame */
        return sf_fail(err, SF_E_UNSUPPORTED, "VAE on cuda:%d: width %lld is past the GPU norm's 4096 channels", ordinal,
                       (long long)c->top);
    plan *p = calloc(1, sizeof *p);
    sf_vae_cuda *g = calloc(1, sizeof *g);
    if (!g || !p) {
        free(g), free(p);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    g->v = v;
    if ((s = sf_cuda_ctx_init(&g->d.cx, ordinal, err))) goto fail;
    walk(v, p);
    if (p->n_caches > 128) {
        s = sf_fail(err, SF_E_UNSUPPORTED, "VAE: %d causal caches (at most 128)", p->n_caches);
        goto fail;
    }
    /* the memory check before anything large: caches + 4 activations + attention + frames */
    const int64_t Ho = v->st.h << c->n_up, Wo = v->st.w << c->n_up, nf = (int64_t)1 << c->n_up3d;
    size_t need = (2 * p->act + p->act + p->up) * 2 + (size_t)(p->attn_hw * p->attn_hw) * 6 +
                  (size_t)(nf * Ho * Wo) * (3 + 12) + ((size_t)64 << 20), fr = 0, tot = 0, stage_e = 0;
    for (int i = 0; i < p->n_caches; i++) {
        const size_t se = (size_t)(2 + p->cache[i].nmax) * p->cache[i].fe;
        need += 2 * p->cache[i].fe * 2;
        if (se > stage_e) stage_e = se;
    }
    need += stage_e * 2;
    if (sf_cuda_mem_info(&fr, &tot, err) == SF_OK && need > fr) {
        s = sf_fail(err, SF_E_NOMEM,
                    "cuda:%d has %.2f GiB free, the VAE decoder needs about %.2f GiB for %lldx%lld latents: use a GPU "
                    "with more memory or --device cpu",
                    ordinal, fr / 1073741824.0, need / 1073741824.0, (long long)v->st.h, (long long)v->st.w);
        goto fail;
    }
    if ((s = sf_conv_cudnn_new(&g->d.conv, &g->d.cx, err))) goto fail;
    if ((s = upload(g, err))) goto fail;
    if ((s = sf_vgpu_caches_new(&g->d, p->cache, p->n_caches, stage_e, err))) goto fail;
    g->attn_hw = p->attn_hw;
    float mr[2 * 4096];
    sf_vae_unscale_consts(sf_vae_latent_mean, sf_vae_latent_std, c->z_dim, c->bf16_unscale, mr);
    if ((s = sf_vgpu_alloc(&g->d, &g->A, p->act * 2, err)) || (s = sf_vgpu_alloc(&g->d, &g->B, p->act * 2, err)) ||
        (s = sf_vgpu_alloc(&g->d, &g->X, p->act * 2, err)) || (s = sf_vgpu_alloc(&g->d, &g->U, (p->up ? p->up : 8) * 2, err)) ||
        (p->attn_hw && (s = sf_vgpu_alloc(&g->d, (void **)&g->S, (size_t)(p->attn_hw * p->attn_hw) * 4, err))) ||
        (p->attn_hw && (s = sf_vgpu_alloc(&g->d, &g->P, (size_t)(p->attn_hw * p->attn_hw) * 2, err))) ||
        (s = sf_vgpu_alloc(&g->d, (void **)&g->zin, (size_t)(c->z_dim * v->st.h * v->st.w) * 4, err)) ||
        (s = sf_vgpu_up_f32(&g->d, &g->mr, mr, (size_t)(2 * c->z_dim), err)) ||
        (s = sf_vgpu_alloc(&g->d, (void **)&g->u8_d, (size_t)(nf * Ho * Wo * 3), err)) ||
        (s = sf_vgpu_alloc(&g->d, (void **)&g->video_d, (size_t)(nf * Ho * Wo * 3) * 4, err)) ||
        (s = sf_vflight_init(&g->fl, "VAE (cuda)", (size_t)(c->z_dim * v->st.h * v->st.w), (size_t)(Ho * Wo * 3), nf,
                             g->u8_d, g->video_d, err)))
        goto fail;
    if ((s = prepare_all(g, err))) goto fail;
    char tune[256];
    if (sf_conv_cudnn_tune_report(g->d.conv, tune, sizeof tune)) sf_info("VAE on cuda:%d: %s", ordinal, tune);
    g->d.bytes += sf_conv_cudnn_bytes(g->d.conv);
    if ((s = sf_vae_cuda_reset(g, err))) goto fail;
    if (getenv("SF_CUDA_PROFILE") && atoi(getenv("SF_CUDA_PROFILE")) > 0 &&
        (s = sf_gpu_prof_init(&g->d.prof, 256 + 64 * c->n_layers, V_N, V_NAME, err)))
        goto fail;
    free(p);
    *out = g;
    return SF_OK;
fail:
    free(p);
    sf_vae_cuda_destroy(&g);
    return s;
}

void sf_vae_cuda_destroy(sf_vae_cuda **gp) {
    sf_vae_cuda *g = gp ? *gp : NULL;
    if (!g) return;
    sf_err e2 = {{0}};
    if (g->d.cx.stream) sf_cuda_sync(&g->d.cx, &e2);
    sf_vlayer top = {.a = g->conv2, .b = g->conv1, .sc = g->head}; /* the convs outside the layers */
    sf_vgpu_layer_free(&top);
    for (int i = 0; i < SF_VAE_MAX_LAYERS; i++) sf_vgpu_layer_free(&g->L[i]);
    sf_cuda_free(g->head_g);
    sf_cuda_free(g->A), sf_cuda_free(g->B), sf_cuda_free(g->X), sf_cuda_free(g->U);
    sf_cuda_free(g->S), sf_cuda_free(g->P), sf_cuda_free(g->zin), sf_cuda_free(g->mr);
    sf_cuda_free(g->u8_d), sf_cuda_free(g->video_d);
    sf_vflight_free(&g->fl);
    sf_vgpu_free(&g->d);
    free(g);
    *gp = NULL;
}

sf_status sf_vae_cuda_reset(sf_vae_cuda *g, sf_err *err) {
    sf_status s;
    if ((s = sf_vflight_reset(&g->fl, &g->d.cx, err))) return s;
    if ((s = sf_vgpu_caches_zero(&g->d, err))) return s;
    memset(g->up3d_seen, 0, sizeof g->up3d_seen);
    g->frames_in = 0;
    return SF_OK;
}

int64_t sf_vae_cuda_frames_for(const sf_vae_cuda *g, int64_t n) {
    if (n <= 0) return 0;
    int64_t per = (int64_t)1 << g->v->cfg.n_up3d;
    return g->frames_in == 0 ? 1 + per * (n - 1) : per * n;
}

size_t sf_vae_cuda_bytes(const sf_vae_cuda *g) { return g ? g->d.bytes : 0; }
size_t sf_vae_cuda_cache_bytes(const sf_vae_cuda *g) { return g ? g->d.cache_bytes : 0; }

int sf_vae_cuda_profile(const sf_vae_cuda *g, char *buf, size_t n) {
    return g ? sf_gpu_prof_format(&g->d.prof, "latent frames", 2, buf, n) : 0;
}

void sf_vae_cuda_profile_reset(sf_vae_cuda *g) {
    if (g) sf_gpu_prof_reset(&g->d.prof);
}

/* ---- decoding ------------------------------------------------------------------------------ */

#define BF SF_BF

/* Debug tap: download n frames (n, H, W, C) bf16 → [n, C, H, W] f32 for v->tap. */
static sf_status tap(sf_vae_cuda *g, const char *name, const void *x, int64_t n, int64_t C, int64_t H, int64_t W,
                     sf_err *err) {
    const sf_vae *v = g->v;
    if (!v->tap) return SF_OK;
    const size_t ne = (size_t)(n * C * H * W);
    float *h = malloc(ne * 2 * sizeof(float));
    sf_status s;
    if (!h) return sf_fail(err, SF_E_NOMEM, "out of memory for a debug tap");
    if ((s = sf_cuda_download_bf16(&g->d.cx, h + ne, x, ne, err)) == SF_OK) {
        for (int64_t f = 0; f < n; f++)
            for (int64_t p = 0; p < H * W; p++)
                for (int64_t ch = 0; ch < C; ch++) h[(f * C + ch) * H * W + p] = h[ne + (f * H * W + p) * C + ch];
        v->tap(v->tap_ctx, name, g->frames_in, h, n, C, H, W);
    }
    free(h);
    return s;
}

#define TRY(e)                                                                                               \
    do {                                                                                                     \
        if ((s = (e)) != SF_OK) return s;                                                                    \
    } while (0)
#define SWAP(p, q)                                                                                           \
    do {                                                                                                     \
        void *t_ = p;                                                                                        \
        p = q;                                                                                               \
        q = t_;                                                                                              \
    } while (0)

/* One latent frame, uploaded to g->zin [z, h, w] f32 → decoder output (n, 8h, 8w, 8) bf16 in *res. */
static sf_status decode_frame(sf_vae_cuda *g, void **res, int64_t *n_out, sf_err *err) {
    const sf_vae_config *c = &g->v->cfg;
    int64_t n = 1, C = c->z_dim, H = g->v->st.h, W = g->v->st.w;
    void *A = g->A, *B = g->B, *X = g->X;
    int slot = 0;
    sf_status s;
    TRY(sf_vae_unscale_cuda(&g->d.cx, C, H * W, g->zin, g->mr, c->bf16_unscale, X, C, err));
    TRY(tap(g, "latent_unscaled", X, 1, C, H, W, err));
    TRY(sf_vgpu_pointwise(&g->d, &g->conv2, H * W, X, sf_vgpu_slot_in(&g->d, slot), err)); /* conv2 writes conv1's input slot */
    TRY(tap(g, "decoder_in", sf_vgpu_slot_in(&g->d, slot), 1, C, H, W, err));
    TRY(sf_vgpu_cached_conv(&g->d, &slot, &g->conv1, n, H, W, NULL, A, err));
    C = c->top;
    TRY(tap(g, "decoder.conv1", A, n, C, H, W, err));
    for (int i = 0; i < c->n_layers; i++) {
        const sf_vae_layer *L = &c->layers[i];
        const layer_w *w = &g->L[i];
        const int64_t HW = H * W;
        switch (L->kind) {
        case SF_VAE_RES: TRY(sf_vgpu_res_block(&g->d, &slot, L, w, &A, &B, &X, n, H, W, err)); break;
        case SF_VAE_ATTN: TRY(sf_vgpu_attn_block(&g->d, w, &A, &B, &X, n, C, H, W, g->S, g->P, err)); break;
        case SF_VAE_UP3D:
            if (!g->up3d_seen[i]) {
                g->up3d_seen[i] = 1; /* 'Rep': latent frame 0 skips time_conv, its cache stays zero */
                slot++;
                sf_vgpu_prof(&g->d, V_UP, 0);
                TRY(sf_vae_upsample2x_cuda(&g->d.cx, n, H, W, C, A, HW * C, C, g->U, err));
            } else {
                sf_vgpu_prof(&g->d, V_CACHE, 0);
                TRY(sf_cuda_copy_d2d(&g->d.cx, sf_vgpu_slot_in(&g->d, slot), A, (size_t)(n * HW * C) * 2, err));
                TRY(sf_vgpu_cached_conv(&g->d, &slot, &w->tc, n, H, W, NULL, X, err)); /* (n, H, W, 2C) */
                sf_vgpu_prof(&g->d, V_UP, 0);
                for (int64_t t = 0; t < n; t++) /* frame 2t ← channels [0, C), 2t+1 ← [C, 2C) */
                    for (int j = 0; j < 2; j++)
                        TRY(sf_vae_upsample2x_cuda(&g->d.cx, 1, H, W, C, BF(X, (size_t)(t * HW * 2 * C + j * C)), 0,
                                                   2 * C, BF(g->U, (size_t)((2 * t + j) * 4 * HW * C)), err));
                n *= 2;
            }
            goto resample;
        case SF_VAE_UP2D:
            sf_vgpu_prof(&g->d, V_UP, 0);
            TRY(sf_vae_upsample2x_cuda(&g->d.cx, n, H, W, C, A, HW * C, C, g->U, err));
        resample: {
            sf_conv_shape sh = {C, L->cout, 2 * H, 2 * W, 1, 1, 3, 1, 0, 0}; /* 1×3×3: n frames in, n out */
            TRY(sf_vgpu_conv_frames(&g->d, sh, &w->rs, n, g->U, (size_t)(4 * HW * C), NULL, B, err));
            SWAP(A, B);
            H *= 2, W *= 2;
            break;
        }
        }
        C = L->cout;
        TRY(tap(g, L->prefix, A, n, C, H, W, err));
    }
    sf_vgpu_prof(&g->d, V_NORM, 0);
    TRY(sf_vae_rms_norm_cuda(&g->d.cx, n * H * W, C, A, g->head_g, 1, sf_vgpu_slot_in(&g->d, slot), err));
    TRY(sf_vgpu_cached_conv(&g->d, &slot, &g->head, n, H, W, NULL, X, err));
    if (slot != g->d.n_caches) return sf_fail(err, SF_E_ARG, "VAE (cuda): used %d of %d caches", slot, g->d.n_caches);
    g->frames_in++;
    *res = X;
    *n_out = n;
    return SF_OK;
}

/* The GPU work of one submit, enqueued (sf_vflight_submit: the frames' copies and the slot's event follow):
 * the latent frame's upload from its pinned slot, its decode, the pixels. */
static sf_status submit_enqueue(void *ctx, const float *zin_h, int64_t *nf, sf_err *err) {
    sf_vae_cuda *g = ctx;
    const sf_vae_config *c = &g->v->cfg;
    const int64_t P = (g->v->st.h << c->n_up) * (g->v->st.w << c->n_up);
    sf_status s;
    void *res = NULL;
    sf_vgpu_prof(&g->d, V_IO, 0);
    TRY(sf_cuda_copy_h2d_async(&g->d.cx, g->zin, zin_h, sizeof(float) * g->fl.zf, err));
    TRY(decode_frame(g, &res, nf, err));
    sf_vgpu_prof(&g->d, V_IO, 0);
    return sf_vae_to_pixels_cuda(&g->d.cx, *nf, P, 8, res, g->want_u8 ? g->u8_d : NULL, g->want_video ? g->video_d : NULL,
                                 err);
}

sf_status sf_vae_cuda_submit(sf_vae_cuda *g, const float *z, int want_video, int want_u8, sf_err *err) {
    sf_status s;
    g->want_u8 = want_u8, g->want_video = want_video;
    TRY(sf_vflight_submit(&g->fl, &g->d.cx, z, want_video, want_u8, submit_enqueue, g, err));
    if (g->d.prof.ev) { /* profiling: one latent frame per run, closed here */
        sf_vgpu_prof(&g->d, V_IO, 0);
        TRY(sf_gpu_prof_collect(&g->d.prof, err));
    }
    return SF_OK;
}

sf_status sf_vae_cuda_receive(sf_vae_cuda *g, float *video, uint8_t *u8, int64_t *n_out, sf_err *err) {
    return sf_vflight_receive(&g->fl, video, u8, n_out, err);
}

sf_status sf_vae_cuda_decode(sf_vae_cuda *g, const float *z, int64_t n, float *video, uint8_t *u8, int64_t *n_out,
                             sf_err *err) {
    const sf_vae_config *c = &g->v->cfg;
    const int64_t zf = c->z_dim * g->v->st.h * g->v->st.w;
    const int64_t P = (g->v->st.h << c->n_up) * (g->v->st.w << c->n_up);
    int64_t done = 0;
    sf_status s;
    *n_out = 0;
    if (n < 0 || (!z && n > 0)) return sf_fail(err, SF_E_ARG, "VAE decode: bad arguments");
    if (g->fl.submitted != g->fl.received)
        return sf_fail(err, SF_E_ARG, "VAE (cuda): latent frames in flight (receive them first)");
    for (int64_t t = 0; t < n; t++) {
        int64_t nf = 0;
        TRY(sf_vae_cuda_submit(g, z + t * zf, video != NULL, u8 != NULL, err));
        TRY(sf_vae_cuda_receive(g, video ? video + done * 3 * P : NULL, u8 ? u8 + done * 3 * P : NULL, &nf, err));
        done += nf;
        *n_out = done;
    }
    return SF_OK;
}
