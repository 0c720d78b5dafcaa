/* vae_cuda.c — the Wan2.1 VAE decoder on a CUDA GPU; the design is in vae_cuda.h. Mirrors
 * stages/decode/vae.c (decode_frame) step for step; plain C over the C-callable CUDA ops
 * (kernels/cuda_ops.h, vae_cuda.h, conv_cuda.h), so a CPU-only build compiles it against stubs.
 * Tested by tests/unit/test_vae_cuda.c (GPU golden + refusal) and test_vae_emu (CPU emulation). */
#define _POSIX_C_SOURCE 200809L
#include "vae_cuda.h"
#include "stop.h"
#include "conv_cuda.h"
#include "cuda_ops.h"
#include "device.h"
#include "gpu_host.h"
#include "vae_ops.h"
#include "vae_ops_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct conv_w {
    void *w, *b;   /* bf16 [cout, kt, k, k, cin] (or [cout, cin] for 1×1), bf16 [cout] */
    int64_t cin, cout;
    int kt, k;
    int64_t tb; /* > 1: a plan convolves tb frames in one call (else one call per output frame) */
} conv_w;

typedef struct layer_w {
    conv_w a, b, sc, qkv, proj, tc, rs; /* RES: a, b, sc; ATTN: qkv, proj; UP: tc, rs */
    float *g0, *g1;                      /* f32 gammas (RES g0/g1, ATTN g0) */
} layer_w;

typedef struct cache_buf {
    void *buf;      /* [2, H, W, cin] bf16: the causal conv's 2 cached input frames */
    size_t fe;      /* elements per frame */
    int nmax;
} cache_buf;

/* SF_CUDA_PROFILE categories (one profile run per latent frame) */
enum { V_CONV, V_POINT, V_NORM, V_ATTN, V_UP, V_CACHE, V_IO, V_N };
static const char *const V_NAME[V_N] = {"conv3d (cuDNN)", "1x1 convs (cuBLASLt)", "RMS norm + SiLU",
                                        "mid-block attention", "upsampling", "cache shifts", "latent in, pixels out"};

struct sf_vae_cuda {
    const sf_vae *v;
    sf_cuda_ctx cx;
    sf_conv_cudnn *conv;
    conv_w conv2, conv1, head;
    layer_w L[SF_VAE_MAX_LAYERS];
    float *head_g;
    cache_buf *cache;
    int n_caches;
    void *stage;         /* one conv's input [2 + n, H, W, cin] bf16, shared by every cache slot: the
                            slot's 2 frames are copied in front of the chunk its producer wrote */
    size_t cache_bytes;  /* the slots' 2 frames each + the stage */
    int up3d_seen[SF_VAE_MAX_LAYERS];
    void *A, *B, *X, *U; /* activations: residual stream ping-pong, scratch, upsampled frames */
    float *S;            /* attention logits [HW, HW] f32 */
    void *P;             /* attention probabilities [HW, HW] bf16 */
    int64_t attn_hw;
    float *zin, *mr, *video_d;
    uint8_t *u8_d;
    /* sf_vae_cuda_submit / _receive: up to two latent frames in flight, each with a pinned slot */
    float *zin_h[2];     /* the latent frame, staged for its asynchronous upload */
    uint8_t *u8_h[2];    /* its u8 frames */
    float *video_h[2];   /* its f32 frames (made on the first submit that wants them) */
    void *ev;            /* 2 events: slot k's frames are on the host */
    int64_t tk_frames[2];
    int tk_u8[2], tk_video[2];
    int64_t submitted, received;
    int64_t frames_in;
    size_t bytes;
    sf_gpu_prof prof; /* SF_CUDA_PROFILE=1: events around every op, ms per category per latent frame */
};

static void prof(sf_vae_cuda *g, int cat, double flops) { sf_gpu_prof_mark_flops(&g->prof, &g->cx, cat, flops); }

/* ---- allocation helpers ----------------------------------------------------------------- */

static sf_status dalloc(sf_vae_cuda *g, void **p, size_t bytes, sf_err *err) {
    sf_status s = sf_cuda_malloc(p, bytes, err);
    if (s == SF_OK) g->bytes += bytes;
    return s;
}

/* Upload a conv: w [cout, cin, kt, k, k] f32 → bf16 [cout_pad, kt, k, k, cin] (zero rows past cout). */
static sf_status up_conv(sf_vae_cuda *g, conv_w *c, const float *w, const float *b, int64_t cin, int64_t cout,
                         int64_t cout_pad, int kt, int k, sf_err *err) {
    const int64_t K = (int64_t)kt * k * k;
    const size_t nw = (size_t)(cout_pad * K * cin);
    float *h = calloc(nw + (size_t)cout_pad, sizeof(float));
    sf_status s;
    if (!h) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int64_t co = 0; co < cout; co++)
        for (int64_t ci = 0; ci < cin; ci++)
            for (int64_t r = 0; r < K; r++) h[(co * K + r) * cin + ci] = w[(co * cin + ci) * K + r];
    for (int64_t co = 0; co < cout; co++) h[nw + co] = b ? b[co] : 0.0f;
    c->cin = cin, c->cout = cout_pad, c->kt = kt, c->k = k;
    if (!(s = dalloc(g, &c->w, nw * 2, err)) && !(s = dalloc(g, &c->b, (size_t)cout_pad * 2, err)) &&
        !(s = sf_cuda_upload_bf16(&g->cx, c->w, h, nw, err)))
        s = sf_cuda_upload_bf16(&g->cx, c->b, h + nw, (size_t)cout_pad, err);
    free(h);
    return s;
}

static sf_status up_f32(sf_vae_cuda *g, float **d, const float *h, size_t n, sf_err *err) {
    sf_status s = dalloc(g, (void **)d, n * sizeof(float), err);
    return s ? s : sf_cuda_upload_f32(&g->cx, *d, h, n, err);
}

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
    sf_status st = sf_conv_cudnn_prepare(g->conv, &s, err);
    c->tb = 0;
    if (st || n < 2) return st;
    sf_err e2 = {{0}};
    s.t_out = n;
    st = sf_conv_cudnn_prepare(g->conv, &s, &e2);
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
    if ((s = up_conv(g, &g->conv2, Wt->conv2_w, Wt->conv2_b, z, z, z, 1, 1, err)) ||
        (s = up_conv(g, &g->conv1, Wt->conv1_w, Wt->conv1_b, z, c->top, c->top, 3, 3, err)))
        return s;
    for (int i = 0; i < c->n_layers; i++) {
        const sf_vae_layer *L = &c->layers[i];
        const sf_vae_lw *w = &Wt->layer[i];
        layer_w *d = &g->L[i];
        const int64_t ci = L->cin, co = L->cout;
        switch (L->kind) {
        case SF_VAE_RES:
            if ((s = up_f32(g, &d->g0, w->g0, (size_t)ci, err)) || (s = up_f32(g, &d->g1, w->g1, (size_t)co, err)) ||
                (s = up_conv(g, &d->a, w->wa, w->ba, ci, co, co, 3, 3, err)) ||
                (s = up_conv(g, &d->b, w->wb, w->bb, co, co, co, 3, 3, err)) ||
                (w->wsc && (s = up_conv(g, &d->sc, w->wsc, w->bsc, ci, co, co, 1, 1, err))))
                return s;
            break;
        case SF_VAE_ATTN:
            if ((s = up_f32(g, &d->g0, w->g, (size_t)ci, err)) ||
                (s = up_conv(g, &d->qkv, w->wqkv, w->bqkv, ci, 3 * ci, 3 * ci, 1, 1, err)) ||
                (s = up_conv(g, &d->proj, w->wproj, w->bproj, ci, ci, ci, 1, 1, err)))
                return s;
            break;
        case SF_VAE_UP3D:
            if ((s = up_conv(g, &d->tc, w->wtc, w->btc, ci, 2 * ci, 2 * ci, 3, 1, err))) return s;
            /* fall through */
        case SF_VAE_UP2D:
            if ((s = up_conv(g, &d->rs, w->wrs, w->brs, ci, co, co, 1, 3, err))) return s;
            break;
        }
    }
    if ((s = up_f32(g, &g->head_g, Wt->head_g, (size_t)c->dim, err))) return s;
    return up_conv(g, &g->head, Wt->head_w, Wt->head_b, c->dim, c->out_ch, 8, 3, 3, err);
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
    if ((s = sf_cuda_ctx_init(&g->cx, ordinal, err))) goto fail;
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
    if ((s = sf_conv_cudnn_new(&g->conv, &g->cx, err))) goto fail;
    if ((s = upload(g, err))) goto fail;
    g->n_caches = p->n_caches;
    if (!(g->cache = calloc((size_t)p->n_caches, sizeof *g->cache))) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < p->n_caches; i++) {
        g->cache[i] = p->cache[i];
        if ((s = dalloc(g, &g->cache[i].buf, 2 * p->cache[i].fe * 2, err))) goto fail;
        g->cache_bytes += 2 * p->cache[i].fe * 2;
    }
    if (stage_e && (s = dalloc(g, &g->stage, stage_e * 2, err))) goto fail;
    g->cache_bytes += stage_e * 2;
    g->attn_hw = p->attn_hw;
    float mr[2 * 4096];
    sf_vae_unscale_consts(sf_vae_latent_mean, sf_vae_latent_std, c->z_dim, c->bf16_unscale, mr);
    if ((s = dalloc(g, &g->A, p->act * 2, err)) || (s = dalloc(g, &g->B, p->act * 2, err)) ||
        (s = dalloc(g, &g->X, p->act * 2, err)) || (s = dalloc(g, &g->U, (p->up ? p->up : 8) * 2, err)) ||
        (p->attn_hw && (s = dalloc(g, (void **)&g->S, (size_t)(p->attn_hw * p->attn_hw) * 4, err))) ||
        (p->attn_hw && (s = dalloc(g, &g->P, (size_t)(p->attn_hw * p->attn_hw) * 2, err))) ||
        (s = dalloc(g, (void **)&g->zin, (size_t)(c->z_dim * v->st.h * v->st.w) * 4, err)) ||
        (s = up_f32(g, &g->mr, mr, (size_t)(2 * c->z_dim), err)) ||
        (s = dalloc(g, (void **)&g->u8_d, (size_t)(nf * Ho * Wo * 3), err)) ||
        (s = dalloc(g, (void **)&g->video_d, (size_t)(nf * Ho * Wo * 3) * 4, err)) ||
        (s = sf_cuda_events_new(&g->ev, 2, err)))
        goto fail;
    for (int k = 0; k < 2; k++)
        if ((s = sf_cuda_host_alloc((void **)&g->zin_h[k], (size_t)(c->z_dim * v->st.h * v->st.w) * 4, err)) ||
            (s = sf_cuda_host_alloc((void **)&g->u8_h[k], (size_t)(nf * Ho * Wo * 3), err)))
            goto fail;
    if ((s = prepare_all(g, err))) goto fail;
    char tune[256];
    if (sf_conv_cudnn_tune_report(g->conv, tune, sizeof tune)) sf_info("VAE on cuda:%d: %s", ordinal, tune);
    g->bytes += sf_conv_cudnn_bytes(g->conv);
    if ((s = sf_vae_cuda_reset(g, err))) goto fail;
    if (getenv("SF_CUDA_PROFILE") && atoi(getenv("SF_CUDA_PROFILE")) > 0 &&
        (s = sf_gpu_prof_init(&g->prof, 256 + 64 * c->n_layers, V_N, V_NAME, err)))
        goto fail;
    free(p);
    *out = g;
    return SF_OK;
fail:
    free(p);
    sf_vae_cuda_destroy(&g);
    return s;
}

static void free_conv(conv_w *c) {
    sf_cuda_free(c->w);
    sf_cuda_free(c->b);
}

void sf_vae_cuda_destroy(sf_vae_cuda **gp) {
    sf_vae_cuda *g = gp ? *gp : NULL;
    if (!g) return;
    sf_err e2 = {{0}};
    if (g->cx.stream) sf_cuda_sync(&g->cx, &e2);
    free_conv(&g->conv2), free_conv(&g->conv1), free_conv(&g->head);
    for (int i = 0; i < SF_VAE_MAX_LAYERS; i++) {
        layer_w *w = &g->L[i];
        free_conv(&w->a), free_conv(&w->b), free_conv(&w->sc), free_conv(&w->qkv), free_conv(&w->proj);
        free_conv(&w->tc), free_conv(&w->rs);
        sf_cuda_free(w->g0), sf_cuda_free(w->g1);
    }
    sf_cuda_free(g->head_g);
    for (int i = 0; g->cache && i < g->n_caches; i++) sf_cuda_free(g->cache[i].buf);
    free(g->cache);
    sf_cuda_free(g->stage);
    sf_cuda_free(g->A), sf_cuda_free(g->B), sf_cuda_free(g->X), sf_cuda_free(g->U);
    sf_cuda_free(g->S), sf_cuda_free(g->P), sf_cuda_free(g->zin), sf_cuda_free(g->mr);
    sf_cuda_free(g->u8_d), sf_cuda_free(g->video_d);
    for (int k = 0; k < 2; k++) sf_cuda_host_free(g->zin_h[k]), sf_cuda_host_free(g->u8_h[k]), sf_cuda_host_free(g->video_h[k]);
    if (g->ev) sf_cuda_events_free(g->ev, 2);
    sf_conv_cudnn_destroy(&g->conv);
    sf_gpu_prof_free(&g->prof);
    sf_cuda_ctx_free(&g->cx);
    free(g);
    *gp = NULL;
}

sf_status sf_vae_cuda_reset(sf_vae_cuda *g, sf_err *err) {
    sf_status s;
    if (g->submitted != g->received) { /* frames still in flight belong to the old video: dropped */
        if ((s = sf_cuda_sync(&g->cx, err))) return s;
        g->received = g->submitted;
    }
    for (int i = 0; i < g->n_caches; i++)
        if ((s = sf_cuda_memset(&g->cx, g->cache[i].buf, 0, 2 * g->cache[i].fe * 2, err))) return s;
    memset(g->up3d_seen, 0, sizeof g->up3d_seen);
    g->frames_in = 0;
    return SF_OK;
}

int64_t sf_vae_cuda_frames_for(const sf_vae_cuda *g, int64_t n) {
    if (n <= 0) return 0;
    int64_t per = (int64_t)1 << g->v->cfg.n_up3d;
    return g->frames_in == 0 ? 1 + per * (n - 1) : per * n;
}

size_t sf_vae_cuda_bytes(const sf_vae_cuda *g) { return g ? g->bytes : 0; }
size_t sf_vae_cuda_cache_bytes(const sf_vae_cuda *g) { return g ? g->cache_bytes : 0; }

int sf_vae_cuda_profile(const sf_vae_cuda *g, char *buf, size_t n) {
    return g ? sf_gpu_prof_format(&g->prof, "latent frames", 2, buf, n) : 0;
}

void sf_vae_cuda_profile_reset(sf_vae_cuda *g) {
    if (g) sf_gpu_prof_reset(&g->prof);
}

/* ---- decoding ------------------------------------------------------------------------------ */

#define BF(p, e) ((void *)((uint16_t *)(p) + (e))) /* bf16 element offset */

/* Where the producer of cache slot `slot`'s conv input writes its chunk: the stage, behind room for the
 * slot's 2 cached frames (cached_conv copies them in front). */
static void *slot_in(sf_vae_cuda *g, int slot) { return BF(g->stage, 2 * g->cache[slot].fe); }

/* n output frames of conv c (shape sh, t_out 1) from frames of xe elements at x (output frame t reads
 * input frames t..t+kt-1), with res (n frames) or NULL: one cuDNN call when a plan for all n was
 * prepared (c->tb == n), else one per frame. */
static sf_status conv_frames(sf_vae_cuda *g, sf_conv_shape sh, const conv_w *c, int64_t n, const void *x, size_t xe,
                             const void *res, void *y, sf_err *err) {
    const size_t oe = (size_t)(sh.h * sh.w * sh.cout);
    sf_status s;
    prof(g, V_CONV, 2.0 * (double)(n * (int64_t)oe) * (double)(c->cin * c->kt * c->k * c->k));
    if (n > 1 && c->tb == n) {
        sh.t_out = n;
        return sf_conv_cudnn_forward(g->conv, &sh, x, c->w, c->b, res, y, err);
    }
    for (int64_t t = 0; t < n; t++)
        if ((s = sf_conv_cudnn_forward(g->conv, &sh, BF(x, (size_t)t * xe), c->w, c->b, res ? BF(res, (size_t)t * oe) : NULL,
                                       BF(y, (size_t)t * oe), err)))
            return s;
    return SF_OK;
}

/* Causal conv over the n frames written at slot_in(slot): the slot's 2 cached frames go in front of them
 * on the stage, output frame t reads stage frames t..t+kt-1; res (n, H, W, cout) or NULL; then the
 * last 2 input frames become the slot's cache. */
static sf_status cached_conv(sf_vae_cuda *g, int *slot, const conv_w *c, int64_t n, int64_t H, int64_t W,
                             const void *res, void *out, sf_err *err) {
    cache_buf *cb = &g->cache[*slot];
    const size_t fe = cb->fe;
    sf_status s;
    if (sf_stopped()) return sf_stop_err(err); /* a stop signal is honoured per conv chunk */
    if (*slot >= g->n_caches || fe != (size_t)(c->cin * H * W) || n > cb->nmax)
        return sf_fail(err, SF_E_ARG, "VAE (cuda): internal cache mismatch at slot %d", *slot);
    /* the input is the n + kt − 1 frames from the stage's start: [cache0, cache1, x0 .. x(n-1)] */
    prof(g, V_CACHE, 0);
    if ((s = sf_cuda_copy_d2d(&g->cx, g->stage, cb->buf, 2 * fe * 2, err))) return s;
    sf_conv_shape sh = {c->cin, c->cout, H, W, 1, c->kt, c->k, 1, res != NULL, 0};
    if ((s = conv_frames(g, sh, c, n, g->stage, fe, res, out, err))) return s;
    /* cache = frames n, n+1 of the stage (the conv is enqueued first; one stream orders them) */
    prof(g, V_CACHE, 0);
    if ((s = sf_cuda_copy_d2d(&g->cx, cb->buf, BF(g->stage, (size_t)n * fe), 2 * fe * 2, err))) return s;
    (*slot)++;
    return SF_OK;
}

/* 1×1 conv over P pixels: y (P, cout) = x (P, cin) · Wᵀ + b. */
static sf_status pointwise(sf_vae_cuda *g, const conv_w *c, int64_t P, const void *x, void *y, sf_err *err) {
    prof(g, V_POINT, 2.0 * (double)P * (double)c->cout * (double)c->cin);
    return sf_linear_cuda(&g->cx, P, c->cout, c->cin, x, c->cin, c->w, c->b, y, c->cout, err);
}

/* Debug tap: download n frames (n, H, W, C) bf16 → [n, C, H, W] f32 for v->tap. */
static sf_status tap(sf_vae_cuda *g, const char *name, const void *x, int64_t n, int64_t C, int64_t H, int64_t W,
                     sf_err *err) {
    const sf_vae *v = g->v;
    if (!v->tap) return SF_OK;
    const size_t ne = (size_t)(n * C * H * W);
    float *h = malloc(ne * 2 * sizeof(float));
    sf_status s;
    if (!h) return sf_fail(err, SF_E_NOMEM, "out of memory for a debug tap");
    if ((s = sf_cuda_download_bf16(&g->cx, h + ne, x, ne, err)) == SF_OK) {
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
    TRY(sf_vae_unscale_cuda(&g->cx, C, H * W, g->zin, g->mr, c->bf16_unscale, X, C, err));
    TRY(tap(g, "latent_unscaled", X, 1, C, H, W, err));
    TRY(pointwise(g, &g->conv2, H * W, X, slot_in(g, slot), err)); /* conv2 writes conv1's input slot */
    TRY(tap(g, "decoder_in", slot_in(g, slot), 1, C, H, W, err));
    TRY(cached_conv(g, &slot, &g->conv1, n, H, W, NULL, A, err));
    C = c->top;
    TRY(tap(g, "decoder.conv1", A, n, C, H, W, err));
    for (int i = 0; i < c->n_layers; i++) {
        const sf_vae_layer *L = &c->layers[i];
        const layer_w *w = &g->L[i];
        const int64_t HW = H * W;
        switch (L->kind) {
        case SF_VAE_RES: { /* out = conv_b(silu(rms(conv_a(silu(rms(x)))))) + shortcut(x) */
            prof(g, V_NORM, 0);
            TRY(sf_vae_rms_norm_cuda(&g->cx, n * HW, L->cin, A, w->g0, 1, slot_in(g, slot), err));
            TRY(cached_conv(g, &slot, &w->a, n, H, W, NULL, X, err));
            prof(g, V_NORM, 0);
            TRY(sf_vae_rms_norm_cuda(&g->cx, n * HW, L->cout, X, w->g1, 1, slot_in(g, slot), err));
            const void *r = A;
            if (w->sc.w) {
                TRY(pointwise(g, &w->sc, n * HW, A, X, err));
                r = X;
            }
            TRY(cached_conv(g, &slot, &w->b, n, H, W, r, B, err));
            SWAP(A, B);
            break;
        }
        case SF_VAE_ATTN: /* x + proj(attn(to_qkv(rms(x)))) per frame, single head d = C */
            prof(g, V_NORM, 0);
            TRY(sf_vae_rms_norm_cuda(&g->cx, n * HW, C, A, w->g0, 0, B, err));
            TRY(pointwise(g, &w->qkv, n * HW, B, X, err));
            prof(g, V_ATTN, 4.0 * (double)n * (double)HW * (double)HW * (double)C);
            for (int64_t f = 0; f < n; f++) {
                const uint16_t *q = (const uint16_t *)X + (size_t)(f * HW * 3 * C);
                TRY(sf_attention_blas_cuda(&g->cx, HW, HW, 1, (int)C, q, 3 * C, q + C, q + 2 * C, 3 * C,
                                           BF(B, (size_t)(f * HW * C)), C, (float)(1.0 / sqrt((double)C)), g->S, g->P,
                                           HW, NULL, NULL, err));
            }
            TRY(pointwise(g, &w->proj, n * HW, B, X, err));
            prof(g, V_NORM, 0);
            TRY(sf_vae_bias_res_cuda(&g->cx, n * HW, C, X, NULL, A, err));
            SWAP(A, X);
            break;
        case SF_VAE_UP3D:
            if (!g->up3d_seen[i]) {
                g->up3d_seen[i] = 1; /* 'Rep': latent frame 0 skips time_conv, its cache stays zero */
                slot++;
                prof(g, V_UP, 0);
                TRY(sf_vae_upsample2x_cuda(&g->cx, n, H, W, C, A, HW * C, C, g->U, err));
            } else {
                prof(g, V_CACHE, 0);
                TRY(sf_cuda_copy_d2d(&g->cx, slot_in(g, slot), A, (size_t)(n * HW * C) * 2, err));
                TRY(cached_conv(g, &slot, &w->tc, n, H, W, NULL, X, err)); /* (n, H, W, 2C) */
                prof(g, V_UP, 0);
                for (int64_t t = 0; t < n; t++) /* frame 2t ← channels [0, C), 2t+1 ← [C, 2C) */
                    for (int j = 0; j < 2; j++)
                        TRY(sf_vae_upsample2x_cuda(&g->cx, 1, H, W, C, BF(X, (size_t)(t * HW * 2 * C + j * C)), 0,
                                                   2 * C, BF(g->U, (size_t)((2 * t + j) * 4 * HW * C)), err));
                n *= 2;
            }
            goto resample;
        case SF_VAE_UP2D:
            prof(g, V_UP, 0);
            TRY(sf_vae_upsample2x_cuda(&g->cx, n, H, W, C, A, HW * C, C, g->U, err));
        resample: {
            sf_conv_shape sh = {C, L->cout, 2 * H, 2 * W, 1, 1, 3, 1, 0, 0}; /* 1×3×3: n frames in, n out */
            TRY(conv_frames(g, sh, &w->rs, n, g->U, (size_t)(4 * HW * C), NULL, B, err));
            SWAP(A, B);
            H *= 2, W *= 2;
            break;
        }
        }
        C = L->cout;
        TRY(tap(g, L->prefix, A, n, C, H, W, err));
    }
    prof(g, V_NORM, 0);
    TRY(sf_vae_rms_norm_cuda(&g->cx, n * H * W, C, A, g->head_g, 1, slot_in(g, slot), err));
    TRY(cached_conv(g, &slot, &g->head, n, H, W, NULL, X, err));
    if (slot != g->n_caches) return sf_fail(err, SF_E_ARG, "VAE (cuda): used %d of %d caches", slot, g->n_caches);
    g->frames_in++;
    *res = X;
    *n_out = n;
    return SF_OK;
}

/* The GPU work of one submit, enqueued: the latent frame's upload from pinned slot k, its decode, the
 * pixels and their copies into slot k, the event the receive waits on. */
static sf_status submit_enqueue(sf_vae_cuda *g, int k, int64_t zf, int64_t P, int want_video, int want_u8, sf_err *err) {
    sf_status s;
    prof(g, V_IO, 0);
    TRY(sf_cuda_copy_h2d_async(&g->cx, g->zin, g->zin_h[k], sizeof(float) * (size_t)zf, err));
    void *res = NULL;
    int64_t nf = 0;
    TRY(decode_frame(g, &res, &nf, err));
    prof(g, V_IO, 0);
    TRY(sf_vae_to_pixels_cuda(&g->cx, nf, P, 8, res, want_u8 ? g->u8_d : NULL, want_video ? g->video_d : NULL, err));
    /* pinned destinations: the copies are enqueued, the host goes on (the next frame's decode can be
     * enqueued behind them while this one's frames are written out) */
    if (want_u8) TRY(sf_cuda_copy_d2h_async(&g->cx, g->u8_h[k], g->u8_d, (size_t)(nf * 3 * P), err));
    if (want_video) TRY(sf_cuda_copy_d2h_async(&g->cx, g->video_h[k], g->video_d, (size_t)(nf * 3 * P) * 4, err));
    TRY(sf_cuda_event_record(&g->cx, g->ev, k, err));
    g->tk_frames[k] = nf, g->tk_u8[k] = want_u8, g->tk_video[k] = want_video;
    g->submitted++;
    if (g->prof.ev) { /* profiling: one latent frame per run, closed here */
        prof(g, V_IO, 0);
        TRY(sf_gpu_prof_collect(&g->prof, err));
    }
    return SF_OK;
}

sf_status sf_vae_cuda_submit(sf_vae_cuda *g, const float *z, int want_video, int want_u8, sf_err *err) {
    const sf_vae_config *c = &g->v->cfg;
    const int64_t zf = c->z_dim * g->v->st.h * g->v->st.w;
    const int64_t P = (g->v->st.h << c->n_up) * (g->v->st.w << c->n_up), per = (int64_t)1 << c->n_up3d;
    const int k = (int)(g->submitted % 2);
    sf_status s;
    if (!z) return sf_fail(err, SF_E_ARG, "VAE decode: no latent frame");
    if (g->submitted - g->received >= 2)
        return sf_fail(err, SF_E_ARG, "VAE (cuda): two latent frames in flight already (receive one first)");
    if (want_video && !g->video_h[k] && (s = sf_cuda_host_alloc((void **)&g->video_h[k], (size_t)(per * 3 * P) * 4, err)))
        return s;
    /* slot k's last latent frame was received: its upload and copies are done, the slot is free */
    memcpy(g->zin_h[k], z, sizeof(float) * (size_t)zf);
    if ((s = submit_enqueue(g, k, zf, P, want_video, want_u8, err))) {
        /* what was enqueued before the failure may still read slot k (the upload runs when the stream
         * gets to it): the next submit reuses the slot, so nothing may be left in flight */
        sf_err e2;
        (void)sf_cuda_sync(&g->cx, &e2);
        return s;
    }
    return SF_OK;
}

sf_status sf_vae_cuda_receive(sf_vae_cuda *g, float *video, uint8_t *u8, int64_t *n_out, sf_err *err) {
    const sf_vae_config *c = &g->v->cfg;
    const int64_t P = (g->v->st.h << c->n_up) * (g->v->st.w << c->n_up);
    const int k = (int)(g->received % 2);
    sf_status s;
    *n_out = 0;
    if (g->received == g->submitted) return sf_fail(err, SF_E_ARG, "VAE (cuda): no latent frame in flight");
    if ((u8 && !g->tk_u8[k]) || (video && !g->tk_video[k]))
        return sf_fail(err, SF_E_ARG, "VAE (cuda): frames asked for that were not submitted");
    TRY(sf_cuda_event_sync(g->ev, k, err));
    const int64_t nf = g->tk_frames[k];
    if (u8) memcpy(u8, g->u8_h[k], (size_t)(nf * 3 * P));
    if (video) memcpy(video, g->video_h[k], sizeof(float) * (size_t)(nf * 3 * P));
    g->received++;
    *n_out = nf;
    return SF_OK;
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
    if (g->submitted != g->received) return sf_fail(err, SF_E_ARG, "VAE (cuda): latent frames in flight (receive them first)");
    for (int64_t t = 0; t < n; t++) {
        int64_t nf = 0;
        TRY(sf_vae_cuda_submit(g, z + t * zf, video != NULL, u8 != NULL, err));
        TRY(sf_vae_cuda_receive(g, video ? video + done * 3 * P : NULL, u8 ? u8 + done * 3 * P : NULL, &nf, err));
        done += nf;
        *n_out = done;
    }
    return SF_OK;
}
