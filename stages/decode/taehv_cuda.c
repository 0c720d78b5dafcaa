/* taehv_cuda.c — the TAEHV tiny video decoder on a CUDA GPU; the design is in taehv_cuda.h. Mirrors
 * stages/decode/taehv.c (run) step for step; plain C over the C-callable CUDA ops (kernels/cuda_ops.h,
 * conv_cuda.h, taehv_ops_cuda.h, vae_ops_cuda.h), so a CPU-only build compiles it against stubs. Shares the
 * Wan VAE's GPU helpers (vae_gpu.h: context, cuDNN conv object, uploads, convs, profile).
 * Tested by tests/unit/test_taehv_cuda.c (test_taehv_cuda on a GPU, test_taehv_emu on the emulation). */
#define _POSIX_C_SOURCE 200809L
#include "taehv_cuda.h"
#include "vae_gpu.h"
#include "stop.h"
#include "conv_cuda.h"
#include "cuda_ops.h"
#include "gpu_host.h"
#include "taehv_ops_cuda.h"
#include "vae_ops_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SF_CUDA_PROFILE categories: the first two are vae_gpu.c's (sf_vgpu_conv_frames, sf_vgpu_pointwise mark them) */
enum { T_CONV = SF_VG_CONV, T_POINT = SF_VG_POINT, T_GLUE = 2, T_UP = 3, T_IO = 4, T_N = 5 };
_Static_assert(SF_VG_CONV == 0 && SF_VG_POINT == 1, "taehv_cuda.c numbers its profile categories after vae_gpu.h's");
static const char *const T_NAME[T_N] = {"3x3 convs (cuDNN)", "1x1 convs (cuBLASLt)", "ReLU + MemBlock cat",
                                        "upsampling", "latent in, pixels out"};

/* One layer's device side. */
typedef struct tlayer {
    sf_vconv a, b, c, skip; /* CONV: a. MEM: a (conv 0 over [x | past]), b (conv 2), c (conv 4), skip (1×1; w NULL:
                               the identity). TGROW: a (its 1×1 conv C → s·C, output chunk j at j·C_pad) */
    void *past;             /* MEM: (H·W, C_pad) bf16, the block's previous input frame */
    void *grow;             /* TGROW: (h·w, s·C_pad) bf16 at its UP's input resolution */
} tlayer;

struct sf_taehv_cuda {
    sf_vgpu d; /* context, cuDNN, bytes, profile (vae_gpu.h) */
    const sf_taehv *t;
    const sf_taehv_config *c;
    int64_t h, w, P; /* latent size; pixels of an output frame */
    tlayer L[SF_TAEHV_MAX_LAYERS];
    void *buf[3];    /* activations, act elements each: any of them free at a TGROW */
    size_t act;
    float *zin, *video_d; /* the latent frame [z_dim, h·w] f32; one latent frame's video (time_up, 3, P) f32 */
    uint8_t *u8_d;        /* its u8 frames (time_up, P, 3) */
    sf_vflight fl;        /* sf_taehv_cuda_submit / _receive: up to two latent frames in flight (vae_gpu.h) */
    int64_t made;            /* frames made (trimmed ones too) since the reset */
    int64_t seen[SF_TAEHV_MAX_LAYERS]; /* the taps' frame counters */
    sf_taehv_tap_fn tap;
    void *tap_ctx;
    int want_u8, want_video; /* the submit being enqueued: what its frames go to, and how many so far */
    int64_t emitted;
};

static int64_t pad8(int64_t c) { return (c + 7) / 8 * 8; }

/* ---- checks, sizes, uploads and plans ------------------------------------------------------- */

typedef struct sizing {
    size_t act, state, weights; /* elements of each activation buffer; bytes of memories + TGROW buffers, of weights */
    int events;                 /* profile events per latent frame (generous) */
} sizing;

static void grow_to(size_t *m, int64_t e) {
    if ((size_t)e > *m) *m = (size_t)e;
}

/* The layer arrangement the GPU path takes — the clamp first, a conv to RGB last, every Upsample followed by a
 * TGrow and every TGrow after an Upsample (the TAEHV decoder's: taehv.c's loader also takes an Upsample before
 * a conv or MemBlock, which no TAEHV checkpoint has) — and the sizes. */
static sf_status plan(const sf_taehv_config *c, int64_t h, int64_t w, int ordinal, sizing *z, sf_err *err) {
    int64_t frames = 1;
    memset(z, 0, sizeof *z);
    grow_to(&z->act, h * w * pad8(c->z_dim));
    if (c->n_layers < 2 || c->layers[0].kind != SF_TAEHV_CLAMP || c->layers[c->n_layers - 1].kind != SF_TAEHV_CONV ||
        c->layers[c->n_layers - 1].cout != 3)
        return sf_fail(err, SF_E_UNSUPPORTED, "TAEHV on cuda:%d: the decoder must start with its clamp and end with a "
                                              "conv to RGB", ordinal);
    for (int i = 0; i < c->n_layers; i++) {
        const sf_taehv_layer *L = &c->layers[i];
        const int64_t HW = h * L->scale * w * L->scale, cip = pad8(L->cin), cop = pad8(L->cout);
        switch (L->kind) {
        case SF_TAEHV_CLAMP:
            if (i) return sf_fail(err, SF_E_UNSUPPORTED, "TAEHV on cuda:%d: a clamp at layer %d (only the first)", ordinal, i);
            break;
        case SF_TAEHV_RELU: break;
        case SF_TAEHV_CONV:
            grow_to(&z->act, HW * cop);
            z->weights += (size_t)(cop * cip * L->k * L->k + cop) * 2;
            break;
        case SF_TAEHV_MEM:
            grow_to(&z->act, HW * 2 * cip), grow_to(&z->act, HW * cop);
            z->weights += (size_t)(cop * 2 * cip * 9 + 2 * cop * cop * 9 + cop * cip + 3 * cop) * 2;
            z->state += (size_t)(HW * cip) * 2;
            break;
        case SF_TAEHV_UP:
            if (i + 1 >= c->n_layers || c->layers[i + 1].kind != SF_TAEHV_TGROW)
                return sf_fail(err, SF_E_UNSUPPORTED, "TAEHV on cuda:%d: Upsample decoder.%d is not followed by a TGrow",
                               ordinal, L->index);
            grow_to(&z->act, 4 * HW * cip);
            break;
        case SF_TAEHV_TGROW: {
            if (i == 0 || c->layers[i - 1].kind != SF_TAEHV_UP)
                return sf_fail(err, SF_E_UNSUPPORTED, "TAEHV on cuda:%d: TGrow decoder.%d does not follow an Upsample",
                               ordinal, L->index);
            const int64_t hw_in = HW / 4; /* its UP's input */
            z->state += (size_t)(hw_in * L->stride * cip) * 2;
            z->weights += (size_t)(L->stride * cip * cip + L->stride * cip) * 2;
            frames *= L->stride;
            break;
        }
        }
        z->events += (int)(12 * frames);
    }
    z->events += 16;
    return SF_OK;
}

/* w [coch·co, cich·ci, k, k] f32, b [coch·co] or NULL → dst, bf16 [coch·co_pad, k, k, cich·ci_pad]: input
 * chunk q's channel i at q·ci_pad + i (a MemBlock's [x | past]), output chunk q's likewise (a TGROW's
 * frames), zeros elsewhere. Weights ·scale, bias ·scale + shift (the last conv's 2·x − 1), in f32 before
 * the one rounding to bf16; the padded outputs get zero bias. */
static sf_status upload(sf_taehv_cuda *g, sf_vconv *dst, const float *w, const float *b, int64_t ci, int cich,
                        int64_t co, int coch, int k, float scale, float shift, sf_err *err) {
    const int64_t cip = pad8(ci), cop = pad8(co), CI = cich * cip, CO = coch * cop, K = (int64_t)k * k;
    float *hw = calloc((size_t)(CO * CI * K + CO), sizeof(float));
    if (!hw) return sf_fail(err, SF_E_NOMEM, "TAEHV (cuda): out of memory for the weights");
    float *hb = hw + CO * CI * K;
    for (int oq = 0; oq < coch; oq++)
        for (int64_t o = 0; o < co; o++) {
            const int64_t so = oq * co + o, d = oq * cop + o;
            hb[d] = (b ? b[so] : 0.0f) * scale + shift;
            for (int iq = 0; iq < cich; iq++)
                for (int64_t i = 0; i < ci; i++)
                    for (int64_t r = 0; r < K; r++)
                        hw[(d * CI + iq * cip + i) * K + r] = w[(so * cich * ci + iq * ci + i) * K + r] * scale;
        }
    sf_status s = sf_vgpu_up_conv(&g->d, dst, hw, hb, CI, CI, CO, CO, 1, k, err);
    free(hw);
    return s;
}

/* The cuDNN plan of conv c at H×W (one frame), with or without a residual. */
static sf_status prepare(sf_taehv_cuda *g, const sf_vconv *c, int64_t H, int64_t W, int residual, sf_err *err) {
    sf_conv_shape s = {c->cin, c->cout, H, W, 1, 1, c->k, 1, residual, 0};
    return sf_conv_cudnn_prepare(g->d.conv, &s, err);
}

/* Weights, memories, TGROW buffers and conv plans, layer by layer. */
static sf_status build(sf_taehv_cuda *g, sf_err *err) {
    const sf_taehv_config *c = g->c;
    sf_status s;
    for (int i = 0; i < c->n_layers; i++) {
        const sf_taehv_layer *L = &c->layers[i];
        tlayer *d = &g->L[i];
        const int64_t H = g->h * L->scale, W = g->w * L->scale, ci = L->cin, co = L->cout;
        switch (L->kind) {
        case SF_TAEHV_CONV: {
            const int last = i == c->n_layers - 1; /* the output mapping 2·x − 1, folded (taehv_ops_cuda.h) */
            if ((s = upload(g, &d->a, L->w0, L->b0, ci, 1, co, 1, L->k, last ? 2.0f : 1.0f, last ? -1.0f : 0.0f, err)) ||
                (s = prepare(g, &d->a, H, W, 0, err)))
                return s;
            break;
        }
        case SF_TAEHV_MEM:
            if ((s = upload(g, &d->a, L->w0, L->b0, ci, 2, co, 1, 3, 1.0f, 0.0f, err)) ||
                (s = upload(g, &d->b, L->w1, L->b1, co, 1, co, 1, 3, 1.0f, 0.0f, err)) ||
                (s = upload(g, &d->c, L->w2, L->b2, co, 1, co, 1, 3, 1.0f, 0.0f, err)) ||
                (L->wskip && (s = upload(g, &d->skip, L->wskip, NULL, ci, 1, co, 1, 1, 1.0f, 0.0f, err))) ||
                (s = prepare(g, &d->a, H, W, 0, err)) || (s = prepare(g, &d->b, H, W, 0, err)) ||
                (s = prepare(g, &d->c, H, W, 1, err)) ||
                (s = sf_vgpu_alloc(&g->d, &d->past, (size_t)(H * W * pad8(ci)) * 2, err)))
                return s;
            break;
        case SF_TAEHV_TGROW:
            if ((s = upload(g, &d->a, L->w0, NULL, ci, 1, ci, L->stride, 1, 1.0f, 0.0f, err)) ||
                (s = sf_vgpu_alloc(&g->d, &d->grow, (size_t)(H * W / 4 * L->stride * pad8(ci)) * 2, err)))
                return s;
            break;
        default: break;
        }
    }
    return SF_OK;
}

sf_status sf_taehv_cuda_new(const sf_taehv *t, int ordinal, sf_taehv_cuda **out, sf_err *err) {
    const sf_taehv_config *c = sf_taehv_config_of(t);
    const int64_t h = sf_taehv_h(t), w = sf_taehv_w(t), P = (h << c->n_up) * (w << c->n_up), per = c->time_up;
    sizing z;
    sf_status s;
    *out = NULL;
    if ((s = plan(c, h, w, ordinal, &z, err))) return s;
    sf_taehv_cuda *g = calloc(1, sizeof *g);
    if (!g) return sf_fail(err, SF_E_NOMEM, "out of memory");
    g->t = t, g->c = c, g->h = h, g->w = w, g->P = P, g->act = z.act;
    if ((s = sf_cuda_ctx_init(&g->d.cx, ordinal, err))) goto fail;
    /* the memory check before anything large: weights, state, 3 activations, the latent and the frames */
    const size_t zf = (size_t)(c->z_dim * h * w);
    size_t need = z.weights + z.state + 3 * z.act * 2 + zf * 4 + (size_t)(per * P * 3) * 5 + ((size_t)64 << 20), fr = 0,
           tot = 0;
    if (sf_cuda_mem_info(&fr, &tot, err) == SF_OK && need > fr) {
        s = sf_fail(err, SF_E_NOMEM,
                    "cuda:%d has %.2f GiB free, the TAEHV decoder needs about %.2f GiB for %lldx%lld latents: use a GPU "
                    "with more memory or --device cpu",
                    ordinal, fr / 1073741824.0, need / 1073741824.0, (long long)h, (long long)w);
        goto fail;
    }
    if ((s = sf_conv_cudnn_new(&g->d.conv, &g->d.cx, err)) || (s = build(g, err))) goto fail;
    for (int b = 0; b < 3; b++)
        if ((s = sf_vgpu_alloc(&g->d, &g->buf[b], z.act * 2, err)) ||
            (s = sf_cuda_memset(&g->d.cx, g->buf[b], 0, z.act * 2, err)))
            goto fail;
    if ((s = sf_vgpu_alloc(&g->d, (void **)&g->zin, zf * 4, err)) ||
        (s = sf_vgpu_alloc(&g->d, (void **)&g->u8_d, (size_t)(per * P * 3), err)) ||
        (s = sf_vgpu_alloc(&g->d, (void **)&g->video_d, (size_t)(per * P * 3) * 4, err)) ||
        (s = sf_vflight_init(&g->fl, "TAEHV (cuda)", zf, (size_t)(P * 3), per, g->u8_d, g->video_d, err)))
        goto fail;
    char tune[256];
    if (sf_conv_cudnn_tune_report(g->d.conv, tune, sizeof tune)) sf_info("TAEHV on cuda:%d: %s", ordinal, tune);
    g->d.bytes += sf_conv_cudnn_bytes(g->d.conv);
    if ((s = sf_taehv_cuda_reset(g, err))) goto fail;
    if (getenv("SF_CUDA_PROFILE") && atoi(getenv("SF_CUDA_PROFILE")) > 0 &&
        (s = sf_gpu_prof_init(&g->d.prof, z.events, T_N, T_NAME, err)))
        goto fail;
    *out = g;
    return SF_OK;
fail:
    sf_taehv_cuda_destroy(&g);
    return s;
}

void sf_taehv_cuda_destroy(sf_taehv_cuda **gp) {
    sf_taehv_cuda *g = gp ? *gp : NULL;
    if (!g) return;
    sf_err e2 = {{0}};
    if (g->d.cx.stream) sf_cuda_sync(&g->d.cx, &e2);
    for (int i = 0; i < SF_TAEHV_MAX_LAYERS; i++) {
        tlayer *d = &g->L[i];
        sf_vlayer v = {.a = d->a, .b = d->b, .sc = d->c, .rs = d->skip}; /* vae_gpu.c frees a layer's convs */
        sf_vgpu_layer_free(&v);
        sf_cuda_free(d->past), sf_cuda_free(d->grow);
    }
    for (int b = 0; b < 3; b++) sf_cuda_free(g->buf[b]);
    sf_cuda_free(g->zin), sf_cuda_free(g->u8_d), sf_cuda_free(g->video_d);
    sf_vflight_free(&g->fl);
    sf_vgpu_free(&g->d);
    free(g);
    *gp = NULL;
}

sf_status sf_taehv_cuda_reset(sf_taehv_cuda *g, sf_err *err) {
    sf_status s;
    if ((s = sf_vflight_reset(&g->fl, &g->d.cx, err))) return s;
    for (int i = 0; i < g->c->n_layers; i++) {
        const sf_taehv_layer *L = &g->c->layers[i];
        if (g->L[i].past &&
            (s = sf_cuda_memset(&g->d.cx, g->L[i].past, 0, (size_t)(g->h * L->scale * g->w * L->scale * pad8(L->cin)) * 2, err)))
            return s;
    }
    memset(g->seen, 0, sizeof g->seen);
    g->made = 0;
    return SF_OK;
}

int64_t sf_taehv_cuda_frames_for(const sf_taehv_cuda *g, int64_t n) { return sf_taehv_frames_after(g->c, g->made, n); }

size_t sf_taehv_cuda_bytes(const sf_taehv_cuda *g) { return g ? g->d.bytes : 0; }

void sf_taehv_cuda_set_tap(sf_taehv_cuda *g, sf_taehv_tap_fn fn, void *ctx) {
    g->tap = fn;
    g->tap_ctx = ctx;
}

int sf_taehv_cuda_profile(const sf_taehv_cuda *g, char *buf, size_t n) {
    return g ? sf_gpu_prof_format(&g->d.prof, "latent frames", 2, buf, n) : 0;
}

void sf_taehv_cuda_profile_reset(sf_taehv_cuda *g) {
    if (g) sf_gpu_prof_reset(&g->d.prof);
}

/* ---- decoding ------------------------------------------------------------------------------ */

#define TRY(e)                                                                                               \
    do {                                                                                                     \
        if ((s = (e)) != SF_OK) return s;                                                                    \
    } while (0)

/* Debug tap: layer i's output x (H·W, C_pad) bf16 → [C, H, W] f32 for the tap (the last conv's mapped back
 * from 2·x − 1). */
static sf_status tap(sf_taehv_cuda *g, int i, const void *x, int64_t C, int64_t H, int64_t W, sf_err *err) {
    if (!g->tap) return SF_OK;
    const int64_t HW = H * W, Cp = pad8(C);
    const int last = i == g->c->n_layers - 1;
    float *h = malloc(sizeof(float) * (size_t)(HW * (C + Cp)));
    sf_status s;
    if (!h) return sf_fail(err, SF_E_NOMEM, "out of memory for a debug tap");
    if ((s = sf_cuda_download_bf16(&g->d.cx, h + HW * C, x, (size_t)(HW * Cp), err)) == SF_OK) {
        for (int64_t p = 0; p < HW; p++)
            for (int64_t ch = 0; ch < C; ch++) {
                const float v = h[HW * C + p * Cp + ch];
                h[ch * HW + p] = last ? (v + 1.0f) * 0.5f : v;
            }
        g->tap(g->tap_ctx, g->c->layers[i].index, g->seen[i]++, h, C, H, W);
    }
    free(h);
    return s;
}

/* An activation buffer that is neither a nor b. */
static void *other(sf_taehv_cuda *g, const void *a, const void *b) {
    for (int i = 0; i < 3; i++)
        if (g->buf[i] != a && g->buf[i] != b) return g->buf[i];
    return NULL;
}

/* y = conv(x) [+ res] at H×W, one frame (the plan prepared at init). */
static sf_status conv(sf_taehv_cuda *g, const sf_vconv *c, int64_t H, int64_t W, const void *x, const void *res, void *y,
                      sf_err *err) {
    sf_conv_shape sh = {c->cin, c->cout, H, W, 1, 1, c->k, 1, res != NULL, 0};
    return sf_vgpu_conv_frames(&g->d, sh, c, 1, x, 0, res, y, err);
}

static sf_status relu(sf_taehv_cuda *g, void *x, int64_t P, int64_t C, sf_err *err) {
    sf_vgpu_prof(&g->d, T_GLUE, 0);
    return sf_relu_cuda(&g->d.cx, P, C, x, err);
}

/* One output frame y (P, 8) bf16, already 2·x − 1: trimmed at the start of a video, else its pixels into the
 * submit's frame slot. */
static sf_status emit(sf_taehv_cuda *g, const void *y, sf_err *err) {
    if (g->made++ < g->c->trim) return SF_OK;
    const size_t off = (size_t)(g->emitted * 3 * g->P);
    sf_vgpu_prof(&g->d, T_IO, 0);
    sf_status s = sf_vae_to_pixels_cuda(&g->d.cx, 1, g->P, 8, y, g->want_u8 ? g->u8_d + off : NULL,
                                        g->want_video ? g->video_d + off : NULL, err);
    g->emitted++;
    return s;
}

/* Run frame x (H·W, C_pad) — layer `from`'s input, in one of the activation buffers — through layers
 * from.. and emit the frames it becomes (taehv.c's run). */
static sf_status run(sf_taehv_cuda *g, int from, void *x, int64_t H, int64_t W, sf_err *err) {
    const sf_taehv_config *c = g->c;
    void *cur = x;
    sf_status s;
    for (int i = from; i < c->n_layers; i++) {
        const sf_taehv_layer *L = &c->layers[i];
        tlayer *d = &g->L[i];
        const int64_t HW = H * W, cip = pad8(L->cin), cop = pad8(L->cout);
        if (sf_stopped()) return sf_stop_err(err);
        switch (L->kind) {
        case SF_TAEHV_CLAMP: break; /* layer 0: the input kernel (refused elsewhere at init) */
        case SF_TAEHV_RELU: TRY(relu(g, cur, HW, cip, err)); break;
        case SF_TAEHV_CONV: {
            void *y = other(g, cur, NULL);
            TRY(conv(g, &d->a, H, W, cur, NULL, y, err));
            cur = y;
            break;
        }
        case SF_TAEHV_MEM: { /* relu(conv4(relu(conv2(relu(conv0([x | past]))))) + skip(x)) */
            void *a = other(g, cur, NULL), *b = other(g, cur, a), *y;
            sf_vgpu_prof(&g->d, T_GLUE, 0);
            TRY(sf_taehv_cat_roll_cuda(&g->d.cx, HW, cip, cur, d->past, a, err));
            TRY(conv(g, &d->a, H, W, a, NULL, b, err));
            TRY(relu(g, b, HW, cop, err));
            TRY(conv(g, &d->b, H, W, b, NULL, a, err));
            TRY(relu(g, a, HW, cop, err));
            if (d->skip.w) { /* skip(x) into b (free again), the last conv over x's buffer (x is done with) */
                TRY(sf_vgpu_pointwise(&g->d, &d->skip, HW, cur, b, err));
                TRY(conv(g, &d->c, H, W, a, b, cur, err));
                y = cur;
            } else {
                TRY(conv(g, &d->c, H, W, a, cur, b, err));
                y = b;
            }
            TRY(relu(g, y, HW, cop, err));
            cur = y;
            break;
        }
        case SF_TAEHV_UP: { /* and the TGROW after it (plan): its 1×1 conv first, here at H×W; then each sub-frame j
                               upsampled out of its channel chunk and run through the rest before sub-frame j + 1 */
            const sf_taehv_layer *G = &c->layers[i + 1];
            const tlayer *gd = &g->L[i + 1];
            TRY(sf_vgpu_pointwise(&g->d, &gd->a, HW, cur, gd->grow, err)); /* (H·W, s·C_pad) */
            for (int j = 0; j < G->stride; j++) {
                void *y = g->buf[0]; /* every activation buffer is free: the frames live in gd->grow */
                sf_vgpu_prof(&g->d, T_UP, 0);
                TRY(sf_vae_upsample2x_cuda(&g->d.cx, 1, H, W, cip, SF_BF(gd->grow, (size_t)(j * cip)), 0, G->stride * cip,
                                           y, err));
                TRY(tap(g, i + 1, y, G->cout, 2 * H, 2 * W, err));
                TRY(run(g, i + 2, y, 2 * H, 2 * W, err));
            }
            return SF_OK;
        }
        case SF_TAEHV_TGROW: return sf_fail(err, SF_E_ARG, "TAEHV (cuda): internal: TGrow without its Upsample"); /* plan */
        }
        TRY(tap(g, i, cur, L->cout, H, W, err));
    }
    return emit(g, cur, err);
}

/* The GPU work of one submit, enqueued (sf_vflight_submit: the frames' copies and the slot's event follow):
 * the latent frame's upload from its pinned slot, clamp, the layers and the pixels. */
static sf_status submit_enqueue(void *ctx, const float *zin_h, int64_t *nf, sf_err *err) {
    sf_taehv_cuda *g = ctx;
    const sf_taehv_config *c = g->c;
    sf_status s;
    sf_vgpu_prof(&g->d, T_IO, 0);
    TRY(sf_cuda_copy_h2d_async(&g->d.cx, g->zin, zin_h, g->fl.zf * sizeof(float), err));
    TRY(sf_taehv_clamp_cuda(&g->d.cx, c->z_dim, g->h * g->w, g->zin, g->buf[0], pad8(c->z_dim), err));
    TRY(tap(g, 0, g->buf[0], c->z_dim, g->h, g->w, err));
    g->emitted = 0;
    TRY(run(g, 1, g->buf[0], g->h, g->w, err));
    *nf = g->emitted;
    return SF_OK;
}

sf_status sf_taehv_cuda_submit(sf_taehv_cuda *g, const float *z, int want_video, int want_u8, sf_err *err) {
    sf_status s;
    g->want_u8 = want_u8, g->want_video = want_video;
    TRY(sf_vflight_submit(&g->fl, &g->d.cx, z, want_video, want_u8, submit_enqueue, g, err));
    if (g->d.prof.ev) { /* profiling: one latent frame per run, closed here */
        sf_vgpu_prof(&g->d, T_IO, 0);
        TRY(sf_gpu_prof_collect(&g->d.prof, err));
    }
    return SF_OK;
}

sf_status sf_taehv_cuda_receive(sf_taehv_cuda *g, float *video, uint8_t *u8, int64_t *n_out, sf_err *err) {
    return sf_vflight_receive(&g->fl, video, u8, n_out, err);
}

sf_status sf_taehv_cuda_decode(sf_taehv_cuda *g, const float *z, int64_t n, float *video, uint8_t *u8,
                               int64_t *n_out, sf_err *err) {
    const int64_t zf = g->c->z_dim * g->h * g->w;
    int64_t done = 0;
    sf_status s;
    *n_out = 0;
    if (n < 0 || (!z && n > 0)) return sf_fail(err, SF_E_ARG, "TAEHV decode: bad arguments");
    if (g->fl.submitted != g->fl.received)
        return sf_fail(err, SF_E_ARG, "TAEHV (cuda): latent frames in flight (receive them first)");
    for (int64_t t = 0; t < n; t++) {
        int64_t nf = 0;
        TRY(sf_taehv_cuda_submit(g, z + t * zf, video != NULL, u8 != NULL, err));
        TRY(sf_taehv_cuda_receive(g, video ? video + done * 3 * g->P : NULL, u8 ? u8 + done * 3 * g->P : NULL, &nf, err));
        done += nf;
        *n_out = done;
    }
    return SF_OK;
}
