/* vae_enc_cuda.c — the Wan2.1 VAE encoder on a CUDA GPU; the design is in vae_enc_cuda.h. Mirrors
 * stages/decode/vae_enc.c (encode_frame) step for step; plain C over the C-callable CUDA ops and the pieces
 * it shares with the GPU decoder (vae_gpu.h), so a CPU-only build compiles it against stubs.
 * Tested by tests/unit/test_vae_encode_cuda.c (GPU) and test_vae_encode_emu (CPU emulation). */
#define _POSIX_C_SOURCE 200809L
#include "vae_enc_cuda.h"
#include "vae_enc_int.h"
#include "vae_gpu.h"
#include "vae_ops_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IN_PAD 8 /* encoder.conv1's 3 input channels, padded for cuDNN's bf16 NDHWC */

struct sf_vae_enc_cuda {
    sf_vgpu d; /* context, cuDNN, caches + stage, bytes (vae_gpu.h) */
    const sf_vae_enc *e;
    sf_vconv conv1, head, mu;         /* mu: conv1's first z rows, [z, 2z] bf16 (its bias: mu_b) */
    sf_vlayer L[SF_VAE_MAX_LAYERS];
    float *head_g, *mu_b, *mr_in;     /* f32 device: [top], [z], the pixels' (mean 0, scale 1) [2, 3] */
    void *T3[SF_VAE_MAX_LAYERS];      /* downsample3d i: [3, h, w, C] bf16 = kept, held, new frame */
    int have_last[SF_VAE_MAX_LAYERS], have_held[SF_VAE_MAX_LAYERS];
    void *A, *B, *X;                  /* activations (H, W, C) bf16 at the widest stage */
    float *S;                         /* attention logits [HW, HW] f32 */
    void *P;                          /* attention probabilities [HW, HW] bf16 */
    float *px_d, *mu_d, *mu_h;        /* one pixel frame [3, H, W] f32; mu (h·w, z) f32 device and host */
    int64_t frames_in;
};

/* ---- sizing: one walk over the encoder's layers ------------------------------------------- */

typedef struct plan {
    size_t act, stage;
    int64_t attn_hw;
    int n_caches;
    sf_vcache cache[2 * SF_VAE_MAX_LAYERS + 2];
} plan;

static void add_cache(plan *p, int64_t cin, int64_t H, int64_t W) {
    const size_t fe = (size_t)(cin * H * W);
    p->cache[p->n_caches].fe = fe, p->cache[p->n_caches].nmax = 1, p->cache[p->n_caches].buf = NULL;
    p->n_caches++;
    if (3 * fe > p->stage) p->stage = 3 * fe;
}

static void act(plan *p, int64_t e) {
    if ((size_t)e > p->act) p->act = (size_t)e;
}

/* The cache slots in the order encode_frame uses them, the largest activation and the attention size;
 * with cv, also every conv plan prepared. */
static sf_status walk(const sf_vae_enc *e, plan *p, sf_conv_cudnn *cv, sf_err *err) {
    int64_t H = e->H, W = e->W, C = e->dim;
    sf_status s = SF_OK;
    memset(p, 0, sizeof *p);
#define PREP(...)                                                                                            \
    do {                                                                                                     \
        sf_conv_shape sh_ = {__VA_ARGS__};                                                                   \
        if (cv && (s = sf_conv_cudnn_prepare(cv, &sh_, err))) return s;                                     \
    } while (0)
    add_cache(p, IN_PAD, H, W);
    PREP(IN_PAD, C, H, W, 1, 3, 3, 1, 0, 0);
    act(p, IN_PAD * H * W), act(p, C * H * W);
    for (int i = 0; i < e->n_layers; i++) {
        const sf_vae_layer *L = &e->layers[i];
        switch ((enc_kind)L->kind) {
        case ENC_RES:
            add_cache(p, L->cin, H, W), add_cache(p, L->cout, H, W);
            PREP(L->cin, L->cout, H, W, 1, 3, 3, 1, 0, 0);
            PREP(L->cout, L->cout, H, W, 1, 3, 3, 1, 1, 0);
            act(p, L->cout * H * W), act(p, L->cin * H * W);
            break;
        case ENC_ATTN:
            act(p, 3 * C * H * W);
            if (H * W > p->attn_hw) p->attn_hw = H * W;
            break;
        case ENC_DOWN2D:
        case ENC_DOWN3D:
            PREP(C, C, H, W, 1, 1, 3, 1, 0, 1);
            H /= 2, W /= 2;
            if ((enc_kind)L->kind == ENC_DOWN3D) PREP(C, C, H, W, 1, 3, 1, 1, 0, 0);
            break;
        }
        C = L->cout;
    }
    add_cache(p, C, H, W);
    PREP(C, 2 * e->z_dim, H, W, 1, 3, 3, 1, 0, 0);
    act(p, 2 * e->z_dim * H * W);
#undef PREP
    return s;
}

static sf_status upload(sf_vae_enc_cuda *g, sf_err *err) {
    const sf_vae_enc *e = g->e;
    const int64_t z = e->z_dim, z2 = 2 * z;
    sf_vgpu *d = &g->d;
    sf_status s;
    const float mr_in[6] = {0, 0, 0, 1, 1, 1}; /* y = ⌊x / 1 + 0⌉: the pixels rounded to bf16 once */
    if ((s = sf_vgpu_up_conv(d, &g->conv1, e->conv1_w, e->conv1_b, e->in_ch, IN_PAD, e->dim, e->dim, 3, 3, err)) ||
        (s = sf_vgpu_up_f32(d, &g->head_g, e->head_g, (size_t)e->top, err)) ||
        (s = sf_vgpu_up_conv(d, &g->head, e->head_w, e->head_b, e->top, e->top, z2, z2, 3, 3, err)) ||
        (s = sf_vgpu_up_conv(d, &g->mu, e->mu_w, NULL, z2, z2, z, z, 1, 1, err)) || /* rows [0, z) of [2z, 2z] */
        (s = sf_vgpu_up_f32(d, &g->mu_b, e->mu_b, (size_t)z, err)) || (s = sf_vgpu_up_f32(d, &g->mr_in, mr_in, 6, err)))
        return s;
    for (int i = 0; i < e->n_layers; i++) {
        const sf_vae_layer *L = &e->layers[i];
        const sf_vae_lw *w = &e->wt.layer[i];
        sf_vlayer *dl = &g->L[i];
        const int64_t C = L->cin;
        switch ((enc_kind)L->kind) {
        case ENC_RES:
        case ENC_ATTN:
            if ((s = sf_vgpu_up_block(d, dl, L, w, (enc_kind)L->kind == ENC_ATTN, err))) return s;
            break;
        case ENC_DOWN3D:
            if ((s = sf_vgpu_up_conv(d, &dl->tc, w->wtc, w->btc, C, C, C, C, 3, 1, err))) return s;
            /* fall through */
        case ENC_DOWN2D:
            if ((s = sf_vgpu_up_conv(d, &dl->rs, w->wrs, w->brs, C, C, C, C, 1, 3, err))) return s;
            break;
        }
    }
    return SF_OK;
}

/* The 3-frame buffers of the downsample3d layers, at their output size. */
static sf_status alloc_t3(sf_vae_enc_cuda *g, sf_err *err) {
    const sf_vae_enc *e = g->e;
    int64_t H = e->H, W = e->W;
    sf_status s;
    for (int i = 0; i < e->n_layers; i++) {
        const enc_kind k = (enc_kind)e->layers[i].kind;
        if (k != ENC_DOWN2D && k != ENC_DOWN3D) continue;
        H /= 2, W /= 2;
        if (k == ENC_DOWN3D && (s = sf_vgpu_alloc(&g->d, &g->T3[i], (size_t)(3 * H * W * e->layers[i].cin) * 2, err)))
            return s;
    }
    return SF_OK;
}

sf_status sf_vae_enc_cuda_new(const sf_vae_enc *e, int ordinal, sf_vae_enc_cuda **out, sf_err *err) {
    sf_status s;
    *out = NULL;
    int ok = e->dim % 8 == 0 && e->z_dim % 8 == 0 && e->top <= 4096;
    for (int i = 0; i < e->n_layers; i++) ok = ok && e->layers[i].cin % 8 == 0 && e->layers[i].cout % 8 == 0;
    if (!ok)
        return sf_fail(err, SF_E_UNSUPPORTED,
                       "VAE encoder on cuda:%d: widths (base %lld, z %lld, up to %lld) must be multiples of 8 up to 4096 "
                       "(cuDNN's bf16 NDHWC, the GPU norm): use --device cpu",
                       ordinal, (long long)e->dim, (long long)e->z_dim, (long long)e->top);
    plan *p = calloc(1, sizeof *p);
    sf_vae_enc_cuda *g = calloc(1, sizeof *g);
    if (!g || !p) {
        free(g), free(p);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    g->e = e;
    if ((s = sf_cuda_ctx_init(&g->d.cx, ordinal, err))) goto fail;
    if ((s = walk(e, p, NULL, err))) goto fail;
    const int64_t hw = (e->H >> e->n_down) * (e->W >> e->n_down);
    /* the memory check before anything large: caches + stage + 3 activations + attention + 3-frame buffers */
    size_t need = (3 * p->act + p->stage) * 2 + (size_t)(p->attn_hw * p->attn_hw) * 6 + ((size_t)64 << 20), fr = 0, tot = 0;
    for (int i = 0; i < p->n_caches; i++) need += 2 * p->cache[i].fe * 2;
    need += 3 * p->act * 2; /* the T3 buffers, bounded loosely */
    if (sf_cuda_mem_info(&fr, &tot, err) == SF_OK && need > fr) {
        s = sf_fail(err, SF_E_NOMEM,
                    "cuda:%d has %.2f GiB free, the VAE encoder needs about %.2f GiB for %lldx%lld frames: use a GPU "
                    "with more memory or --device cpu",
                    ordinal, fr / 1073741824.0, need / 1073741824.0, (long long)e->W, (long long)e->H);
        goto fail;
    }
    if ((s = sf_conv_cudnn_new(&g->d.conv, &g->d.cx, err)) || (s = upload(g, err)) ||
        (s = sf_vgpu_caches_new(&g->d, p->cache, p->n_caches, p->stage, err)) || (s = alloc_t3(g, err)))
        goto fail;
    if ((s = sf_vgpu_alloc(&g->d, &g->A, p->act * 2, err)) || (s = sf_vgpu_alloc(&g->d, &g->B, p->act * 2, err)) ||
        (s = sf_vgpu_alloc(&g->d, &g->X, p->act * 2, err)) ||
        (p->attn_hw && (s = sf_vgpu_alloc(&g->d, (void **)&g->S, (size_t)(p->attn_hw * p->attn_hw) * 4, err))) ||
        (p->attn_hw && (s = sf_vgpu_alloc(&g->d, &g->P, (size_t)(p->attn_hw * p->attn_hw) * 2, err))) ||
        (s = sf_vgpu_alloc(&g->d, (void **)&g->px_d, (size_t)(3 * e->H * e->W) * 4, err)) ||
        (s = sf_vgpu_alloc(&g->d, (void **)&g->mu_d, (size_t)(hw * e->z_dim) * 4, err)))
        goto fail;
    if (!(g->mu_h = malloc((size_t)(hw * e->z_dim) * sizeof(float)))) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto fail;
    }
    if ((s = walk(e, p, g->d.conv, err))) goto fail; /* every conv plan, at init */
    char tune[256];
    if (sf_conv_cudnn_tune_report(g->d.conv, tune, sizeof tune)) sf_info("VAE encoder on cuda:%d: %s", ordinal, tune);
    g->d.bytes += sf_conv_cudnn_bytes(g->d.conv);
    if ((s = sf_vae_enc_cuda_reset(g, err))) goto fail;
    free(p);
    *out = g;
    return SF_OK;
fail:
    free(p);
    sf_vae_enc_cuda_destroy(&g);
    return s;
}

void sf_vae_enc_cuda_destroy(sf_vae_enc_cuda **gp) {
    sf_vae_enc_cuda *g = gp ? *gp : NULL;
    if (!g) return;
    sf_err e2 = {{0}};
    if (g->d.cx.stream) sf_cuda_sync(&g->d.cx, &e2);
    sf_vlayer top = {.a = g->conv1, .b = g->head, .sc = g->mu}; /* the convs outside the layers */
    sf_vgpu_layer_free(&top);
    for (int i = 0; i < SF_VAE_MAX_LAYERS; i++) sf_vgpu_layer_free(&g->L[i]), sf_cuda_free(g->T3[i]);
    sf_cuda_free(g->head_g), sf_cuda_free(g->mu_b), sf_cuda_free(g->mr_in);
    sf_cuda_free(g->A), sf_cuda_free(g->B), sf_cuda_free(g->X), sf_cuda_free(g->S), sf_cuda_free(g->P);
    sf_cuda_free(g->px_d), sf_cuda_free(g->mu_d);
    free(g->mu_h);
    sf_vgpu_free(&g->d);
    free(g);
    *gp = NULL;
}

sf_status sf_vae_enc_cuda_reset(sf_vae_enc_cuda *g, sf_err *err) {
    sf_status s = sf_vgpu_caches_zero(&g->d, err);
    if (s) return s;
    memset(g->have_last, 0, sizeof g->have_last);
    memset(g->have_held, 0, sizeof g->have_held);
    g->frames_in = 0;
    return SF_OK;
}

int64_t sf_vae_enc_cuda_latents_for(const sf_vae_enc_cuda *g, int64_t n) {
    if (n <= 0) return 0;
    return sf_vae_enc_latents_after(g->e, g->frames_in + n) - sf_vae_enc_latents_after(g->e, g->frames_in);
}

size_t sf_vae_enc_cuda_bytes(const sf_vae_enc_cuda *g) { return g ? g->d.bytes : 0; }

/* ---- encoding ---------------------------------------------------------------------------- */

#define TRY(x)                                                                                               \
    do {                                                                                                     \
        if ((s = (x)) != SF_OK) return s;                                                                    \
    } while (0)

/* One pixel frame px [3, H, W] f32 host through the encoder. *done = 1 when it completes a latent frame,
 * then written to zout [z, h, w] (scaled). */
static sf_status encode_frame(sf_vae_enc_cuda *g, const float *px, float *zout, int *done, sf_err *err) {
    const sf_vae_enc *e = g->e;
    sf_vgpu *d = &g->d;
    int64_t C = e->dim, H = e->H, W = e->W;
    void *A = g->A, *B = g->B, *X = g->X;
    int slot = 0;
    sf_status s;
    *done = 0;
    /* pixels → (H, W, 8) bf16 behind conv1's cached frames, channels 3..7 zero */
    TRY(sf_cuda_copy_h2d(&d->cx, g->px_d, px, sizeof(float) * (size_t)(3 * H * W), err));
    TRY(sf_cuda_memset(&d->cx, sf_vgpu_slot_in(d, slot), 0, (size_t)(H * W * IN_PAD) * 2, err));
    TRY(sf_vae_unscale_cuda(&d->cx, e->in_ch, H * W, g->px_d, g->mr_in, 0, sf_vgpu_slot_in(d, slot), IN_PAD, err));
    TRY(sf_vgpu_cached_conv(d, &slot, &g->conv1, 1, H, W, NULL, A, err));
    for (int i = 0; i < e->n_layers; i++) {
        const sf_vae_layer *L = &e->layers[i];
        const sf_vlayer *w = &g->L[i];
        switch ((enc_kind)L->kind) {
        case ENC_RES: TRY(sf_vgpu_res_block(d, &slot, L, w, &A, &B, &X, 1, H, W, err)); break;
        case ENC_ATTN: TRY(sf_vgpu_attn_block(d, w, &A, &B, &X, 1, C, H, W, g->S, g->P, err)); break;
        case ENC_DOWN2D:
        case ENC_DOWN3D: {
            const sf_conv_shape down = {C, C, H, W, 1, 1, 3, 1, 0, 1}; /* ZeroPad2d(0,1,0,1) + 3×3 stride 2 */
            H /= 2, W /= 2;
            const size_t fe = (size_t)(C * H * W);
            if ((enc_kind)L->kind == ENC_DOWN2D) {
                TRY(sf_vgpu_conv_frames(d, down, &w->rs, 1, A, 4 * fe, NULL, B, err));
                void *t = A;
                A = B, B = t;
                break;
            }
            if (!g->have_last[i]) { /* frame 0: no time_conv; kept as the first frame time_conv will see */
                TRY(sf_vgpu_conv_frames(d, down, &w->rs, 1, A, 4 * fe, NULL, g->T3[i], err));
                TRY(sf_cuda_copy_d2d(&d->cx, B, g->T3[i], fe * 2, err));
                void *t = A;
                A = B, B = t;
                g->have_last[i] = 1;
                break;
            }
            if (!g->have_held[i]) { /* the first of a pair waits for the second */
                TRY(sf_vgpu_conv_frames(d, down, &w->rs, 1, A, 4 * fe, NULL, SF_BF(g->T3[i], fe), err));
                g->have_held[i] = 1;
                g->frames_in++;
                return SF_OK;
            }
            TRY(sf_vgpu_conv_frames(d, down, &w->rs, 1, A, 4 * fe, NULL, SF_BF(g->T3[i], 2 * fe), err));
            const sf_conv_shape tc = {C, C, H, W, 1, 3, 1, 1, 0, 0}; /* [kept, held, new] → 1 frame */
            TRY(sf_vgpu_conv_frames(d, tc, &w->tc, 1, g->T3[i], fe, NULL, A, err));
            TRY(sf_cuda_copy_d2d(&d->cx, g->T3[i], SF_BF(g->T3[i], 2 * fe), fe * 2, err));
            g->have_held[i] = 0;
            break;
        }
        }
        C = L->cout;
    }
    TRY(sf_vae_rms_norm_cuda(&d->cx, H * W, C, A, g->head_g, 1, sf_vgpu_slot_in(d, slot), err));
    TRY(sf_vgpu_cached_conv(d, &slot, &g->head, 1, H, W, NULL, X, err));
    if (slot != d->n_caches) return sf_fail(err, SF_E_ARG, "VAE encoder (cuda): used %d of %d caches", slot, d->n_caches);
    /* conv1 → mu (its first z channels) in fp32, then (mu − mean) · (1 / std) on the host, frames first */
    const int64_t HW = H * W, z = e->z_dim;
    TRY(sf_gemm_cuda(&d->cx, HW, z, 2 * z, X, 2 * z, g->mu.w, g->mu_b, g->mu_d, SF_F32, z, err));
    TRY(sf_cuda_download_f32(&d->cx, g->mu_h, g->mu_d, (size_t)(HW * z), err));
    for (int64_t c = 0; c < z; c++) {
        const float m = e->mr[c], k = e->mr[z + c];
        for (int64_t p = 0; p < HW; p++) zout[c * HW + p] = (g->mu_h[p * z + c] - m) * k;
    }
    g->frames_in++;
    *done = 1;
    return SF_OK;
}

sf_status sf_vae_enc_cuda_encode(sf_vae_enc_cuda *g, const float *video, int64_t n, float *z, int64_t *m_out,
                                 sf_err *err) {
    sf_status s;
    if (m_out) *m_out = 0;
    if (!g || n < 0 || (n > 0 && !video) || (!z && sf_vae_enc_cuda_latents_for(g, n) > 0))
        return sf_fail(err, SF_E_ARG, "VAE encode (cuda): bad arguments");
    const sf_vae_enc *e = g->e;
    const size_t pf = (size_t)(e->in_ch * e->H * e->W);
    const size_t zf = (size_t)(e->z_dim * (e->H >> e->n_down) * (e->W >> e->n_down));
    int64_t m = 0;
    for (int64_t t = 0; t < n; t++) {
        int done = 0;
        TRY(encode_frame(g, video + (size_t)t * pf, z + (size_t)m * zf, &done, err));
        m += done;
        if (m_out) *m_out = m;
    }
    return SF_OK;
}
