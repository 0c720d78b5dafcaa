/* vae_enc.c — the Wan2.1 causal VAE encoder on CPU (see vae_enc.h for the contract and the frame-by-frame
 * scheme). Weight loading, the causal convs and the residual / attention blocks are vae.c's (vae.h,
 * shared part); the kernels are conv3d.h and vae_ops.h, multithreaded. Tested by
 * tests/unit/test_vae_encode.c. */
#define _POSIX_C_SOURCE 200809L
#include "vae_enc.h"
#include "conv3d.h"
#include "parallel.h"
#include "stop.h"
#include "vae.h"
#include "vae_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vae_enc_int.h"

#define MAX_LAYERS SF_VAE_MAX_LAYERS
#define MAX_DOWN SF_VAE_ENC_MAX_DOWN

/* ---- loading ----------------------------------------------------------------------------- */

static const sf_tensor *tget(const sf_vae_enc *e, char *name, size_t nn, const char *fmt, const char *prefix) {
    snprintf(name, nn, fmt, prefix);
    return sf_tfile_get(e->wt.file, name);
}

static sf_status need5(const sf_vae_enc *e, const char *name, const sf_tensor **t, sf_err *err) {
    *t = sf_tfile_get(e->wt.file, name);
    if (!*t) return sf_fail(err, SF_E_NOTFOUND, "VAE file %s: missing tensor %s (no encoder in it?)", e->wt.file->path, name);
    if ((*t)->ndim != 5) return sf_fail(err, SF_E_SHAPE, "VAE file %s: bad tensor %s", e->wt.file->path, name);
    return SF_OK;
}

/* Layers and widths from shapes: encoder.downsamples.N (ResidualBlock iff N.residual.2.weight,
 * AttentionBlock iff N.to_qkv.weight, Resample iff N.resample.1.weight, downsample3d iff also
 * N.time_conv.weight), then encoder.middle.N; every width must chain. */
static sf_status infer_config(sf_vae_enc *e, sf_err *err) {
    const char *path = e->wt.file->path;
    const sf_tensor *t;
    char name[160];
    sf_status s;
    if ((s = need5(e, "conv1.weight", &t, err)) != SF_OK) return s;
    const int64_t z2 = t->shape[0];
    if (z2 <= 0 || z2 % 2 || z2 > 2 * 4096 || t->shape[1] != z2)
        return sf_fail(err, SF_E_SHAPE, "VAE file %s: conv1.weight is not [2z, 2z, 1, 1, 1]", path);
    e->z_dim = z2 / 2;
    if ((s = need5(e, "encoder.conv1.weight", &t, err)) != SF_OK) return s;
    e->dim = t->shape[0];
    e->in_ch = t->shape[1];
    if (e->dim <= 0 || e->dim > 65536 || e->in_ch != 3)
        return sf_fail(err, SF_E_SHAPE, "VAE file %s: encoder.conv1.weight takes %lld channels, not 3", path,
                       (long long)e->in_ch);
    int64_t C = e->dim;
    e->n_layers = e->n_down = e->n_down3d = 0;
    for (int part = 0; part < 2; part++) {
        for (int i = 0;; i++) {
            sf_vae_layer L = {0};
            snprintf(L.prefix, sizeof L.prefix, part == 0 ? "encoder.downsamples.%d" : "encoder.middle.%d", i);
            if ((t = tget(e, name, sizeof name, "%s.residual.2.weight", L.prefix))) {
                if (t->ndim != 5) return sf_fail(err, SF_E_SHAPE, "VAE file %s: bad tensor %s", path, name);
                L.kind = (sf_vae_layer_kind)ENC_RES;
                L.cin = t->shape[1];
                L.cout = t->shape[0];
            } else if (tget(e, name, sizeof name, "%s.to_qkv.weight", L.prefix)) {
                L.kind = (sf_vae_layer_kind)ENC_ATTN;
                L.cin = L.cout = C;
            } else if (part == 0 && (t = tget(e, name, sizeof name, "%s.resample.1.weight", L.prefix))) {
                if (t->ndim != 4) return sf_fail(err, SF_E_SHAPE, "VAE file %s: bad tensor %s", path, name);
                L.cin = t->shape[1];
                L.cout = t->shape[0];
                L.kind = (sf_vae_layer_kind)(tget(e, name, sizeof name, "%s.time_conv.weight", L.prefix) ? ENC_DOWN3D
                                                                                                         : ENC_DOWN2D);
            } else {
                if (i == 0)
                    return sf_fail(err, SF_E_NOTFOUND, "VAE file %s: missing tensor %s.residual.2.weight (no encoder in it?)",
                                   path, L.prefix);
                break;
            }
            if (L.cin != C)
                return sf_fail(err, SF_E_SHAPE, "VAE file %s: %s takes %lld channels but receives %lld", path, L.prefix,
                               (long long)L.cin, (long long)C);
            if (L.cout <= 0 || L.cout > 65536)
                return sf_fail(err, SF_E_SHAPE, "VAE file %s: %s has %lld outputs", path, L.prefix, (long long)L.cout);
            if (e->n_layers == MAX_LAYERS)
                return sf_fail(err, SF_E_UNSUPPORTED, "VAE file %s: more than %d encoder layers", path, MAX_LAYERS);
            if ((int)L.kind == ENC_DOWN2D || (int)L.kind == ENC_DOWN3D) e->n_down++;
            if ((int)L.kind == ENC_DOWN3D) e->n_down3d++;
            C = L.cout;
            e->layers[e->n_layers++] = L;
        }
    }
    e->top = C;
    if (e->n_down > MAX_DOWN)
        return sf_fail(err, SF_E_UNSUPPORTED, "VAE file %s: %d spatial downsamples are too many", path, e->n_down);
    return SF_OK;
}

static sf_status load_weights(sf_vae_enc *e, sf_err *err) {
    sf_vae_weights *W = &e->wt;
    const int64_t z2 = 2 * e->z_dim;
    const float *mu_w_all = NULL;
    char n[160];
    sf_status s;
#define GET(nm, ptr, ...)                                                                                   \
    do {                                                                                                    \
        if ((s = sf_vae_wget(W, nm, SF_VAE_SHAPE(__VA_ARGS__), &(ptr), err)) != SF_OK) return s;            \
    } while (0)
#define GETP(fmt, ptr, ...)                                                                                 \
    do {                                                                                                    \
        snprintf(n, sizeof n, fmt, L->prefix);                                                              \
        GET(n, ptr, __VA_ARGS__);                                                                           \
    } while (0)
    GET("encoder.conv1.weight", e->conv1_w, e->dim, e->in_ch, 3, 3, 3);
    GET("encoder.conv1.bias", e->conv1_b, e->dim);
    for (int i = 0; i < e->n_layers; i++) {
        const sf_vae_layer *L = &e->layers[i];
        sf_vae_lw *w = &W->layer[i];
        const int64_t ci = L->cin, co = L->cout;
        switch ((enc_kind)L->kind) {
        case ENC_RES:
        case ENC_ATTN:
            if ((s = sf_vae_block_weights(W, L->prefix, (enc_kind)L->kind == ENC_ATTN, ci, co, w, err)) != SF_OK) return s;
            break;
        case ENC_DOWN3D:
            GETP("%s.time_conv.weight", w->wtc, ci, ci, 3, 1, 1);
            GETP("%s.time_conv.bias", w->btc, ci);
            /* fall through */
        case ENC_DOWN2D:
            if (co != ci)
                return sf_fail(err, SF_E_SHAPE, "VAE file %s: %s.resample.1 maps %lld channels to %lld (a downsample keeps them)",
                               W->file->path, L->prefix, (long long)ci, (long long)co);
            GETP("%s.resample.1.weight", w->wrs, co, ci, 3, 3);
            GETP("%s.resample.1.bias", w->brs, co);
            break;
        }
    }
    GET("encoder.head.0.gamma", e->head_g, e->top, 1, 1, 1);
    GET("encoder.head.2.weight", e->head_w, z2, e->top, 3, 3, 3);
    GET("encoder.head.2.bias", e->head_b, z2);
    GET("conv1.weight", mu_w_all, z2, z2, 1, 1, 1);
    GET("conv1.bias", e->mu_b, z2);
    e->mu_w = mu_w_all; /* rows [0, z) are mu's: a pointwise conv's output channels are independent sums */
#undef GET
#undef GETP
    for (int64_t c = 0; c < e->z_dim; c++) { /* encode_to_latent: scale = [mean, 1.0 / std], float32 */
        e->mr[c] = sf_vae_latent_mean[c % 16];
        e->mr[e->z_dim + c] = 1.0f / sf_vae_latent_std[c % 16];
    }
    return SF_OK;
}

/* ---- state ------------------------------------------------------------------------------- */

typedef struct plan {
    size_t buf, attn, ws, first_w;
    int caches;
} plan;

/* Walk one pixel frame's layers: with e->cache allocated, size and allocate each cache slot in the order
 * encode_frame uses them, else count them; also the largest activation (buf), attention, conv scratch and
 * first-frame weight slice. */
static sf_status walk(sf_vae_enc *e, plan *p, sf_err *err) {
    int64_t C = e->in_ch, H = e->H, W = e->W;
    const int th = e->threads;
    memset(p, 0, sizeof *p);
#define MX(field, v)                                                                                        \
    do {                                                                                                    \
        size_t v_ = (size_t)(v);                                                                            \
        if (v_ > p->field) p->field = v_;                                                                   \
    } while (0)
#define CACHE(ci)                                                                                           \
    do {                                                                                                    \
        if (e->cache) {                                                                                     \
            e->cache_frame[p->caches] = (size_t)((ci) * H * W);                                             \
            if (!(e->cache[p->caches] = sf_calloc2(2 * e->cache_frame[p->caches], sizeof(float))))          \
                return sf_fail(err, SF_E_NOMEM, "VAE encoder: out of memory for the causal caches");        \
        }                                                                                                   \
        p->caches++;                                                                                        \
    } while (0)
#define CONV3(ci, co)                                                                                       \
    do {                                                                                                    \
        CACHE(ci);                                                                                          \
        MX(ws, sf_conv3d_cpu_scratch((ci), (co), 3, 3, 3, W, th));                                          \
        MX(ws, sf_conv3d_cpu_scratch((ci), (co), 1, 3, 3, W, th));                                          \
        MX(first_w, (co) * (ci) * 9);                                                                       \
    } while (0)
    MX(buf, C * H * W);
    CONV3(C, e->dim);
    C = e->dim;
    MX(buf, C * H * W);
    for (int i = 0; i < e->n_layers; i++) {
        const sf_vae_layer *L = &e->layers[i];
        switch ((enc_kind)L->kind) {
        case ENC_RES:
            CONV3(L->cin, L->cout);
            CONV3(L->cout, L->cout);
            MX(ws, sf_conv3d_cpu_scratch(L->cin, L->cout, 1, 1, 1, W, th));
            MX(buf, L->cout * H * W);
            break;
        case ENC_ATTN:
            MX(buf, 3 * C * H * W);
            MX(attn, sf_vae_attention_scratch(C, H * W, th));
            MX(ws, sf_conv3d_cpu_scratch(C, 3 * C, 1, 1, 1, W, th));
            break;
        case ENC_DOWN2D:
        case ENC_DOWN3D:
            MX(ws, sf_conv3d_cpu_scratch(C, C, 1, 3, 3, W, th)); /* stride 2 from the input size */
            MX(buf, C * H * W);
            H /= 2;
            W /= 2;
            if ((enc_kind)L->kind == ENC_DOWN3D) {
                MX(ws, sf_conv3d_cpu_scratch(C, C, 3, 1, 1, W, th));
                if (e->cache) {
                    down3d_state *d = &e->d3[i];
                    if (!(d->last = sf_calloc2((size_t)(C * H * W), sizeof(float))) ||
                        !(d->held = sf_calloc2((size_t)(C * H * W), sizeof(float))))
                        return sf_fail(err, SF_E_NOMEM, "VAE encoder: out of memory");
                }
            }
            break;
        }
        C = L->cout;
    }
    CONV3(C, 2 * e->z_dim); /* head */
    MX(buf, 2 * e->z_dim * H * W);
    MX(ws, sf_conv3d_cpu_scratch(2 * e->z_dim, e->z_dim, 1, 1, 1, W, th));
#undef MX
#undef CACHE
#undef CONV3
    return SF_OK;
}

static sf_status alloc_state(sf_vae_enc *e, sf_err *err) {
    plan p;
    sf_status s = walk(e, &p, err);
    if (s != SF_OK) return s;
    e->n_caches = p.caches;
    if (!(e->cache = calloc((size_t)p.caches, sizeof *e->cache)) ||
        !(e->cache_frame = calloc((size_t)p.caches, sizeof *e->cache_frame)))
        return sf_fail(err, SF_E_NOMEM, "VAE encoder: out of memory");
    if ((s = walk(e, &p, err)) != SF_OK) return s;
    for (int b = 0; b < 3; b++)
        if (!(e->buf[b] = sf_calloc2(p.buf, sizeof(float))))
            return sf_fail(err, SF_E_NOMEM, "VAE encoder: out of memory for activations (3 x %zu MB)",
                           p.buf * sizeof(float) >> 20);
    if (!(e->attn = sf_calloc2(p.attn ? p.attn : 1, sizeof(float))) ||
        !(e->first_w = sf_calloc2(p.first_w, sizeof(float))))
        return sf_fail(err, SF_E_NOMEM, "VAE encoder: out of memory");
    return sf_scratch_init(&e->ws, 1, p.ws, err);
}

void sf_vae_enc_reset(sf_vae_enc *e) {
    /* a clean state is left alone: zeroing the caches of a 480x832 encoder writes 2 GB */
    for (int i = 0; e->dirty && i < e->n_caches; i++)
        if (e->cache[i]) memset(e->cache[i], 0, 2 * e->cache_frame[i] * sizeof(float));
    e->dirty = 0;
    for (int i = 0; i < MAX_LAYERS; i++) e->d3[i].have_last = e->d3[i].have_held = 0;
    e->frames_in = 0;
}

/* with_state 0: config and weights only (sf_vae_enc_new_weights) */
static sf_status enc_open(const char *path, int64_t H, int64_t W, int threads, int with_state, sf_vae_enc **out,
                          sf_err *err) {
    sf_status s;
    *out = NULL;
    if (H <= 0 || W <= 0 || H > 16384 || W > 16384)
        return sf_fail(err, SF_E_ARG, "VAE encoder: pixel size %lldx%lld out of range", (long long)W, (long long)H);
    sf_vae_enc *e = calloc(1, sizeof *e);
    if (!e) return sf_fail(err, SF_E_NOMEM, "out of memory");
    if ((s = sf_tfile_open(path, &e->wt.file, err)) != SF_OK) goto fail;
    e->threads = threads > 0 ? threads : sf_cpu_count();
    e->H = H;
    e->W = W;
    if ((s = infer_config(e, err)) != SF_OK || (s = load_weights(e, err)) != SF_OK) goto fail;
    const int64_t m = (int64_t)1 << e->n_down;
    if (H % m || W % m) {
        s = sf_fail(err, SF_E_SHAPE, "VAE encoder: frame size %lldx%lld is not a multiple of %lld (%s downsamples %d times)",
                    (long long)W, (long long)H, (long long)m, path, e->n_down);
        goto fail;
    }
    if (with_state && (s = alloc_state(e, err)) != SF_OK) goto fail; /* zeroed: a reset state */
    *out = e;
    return SF_OK;
fail:
    sf_vae_enc_destroy(&e);
    return s;
}

sf_status sf_vae_enc_new(const char *path, int64_t H, int64_t W, int threads, sf_vae_enc **out, sf_err *err) {
    return enc_open(path, H, W, threads, 1, out, err);
}

sf_status sf_vae_enc_new_weights(const char *path, int64_t H, int64_t W, sf_vae_enc **out, sf_err *err) {
    return enc_open(path, H, W, 1, 0, out, err);
}

void sf_vae_enc_destroy(sf_vae_enc **ep) {
    if (!ep || !*ep) return;
    sf_vae_enc *e = *ep;
    for (int i = 0; e->cache && i < e->n_caches; i++) free(e->cache[i]);
    free(e->cache);
    free(e->cache_frame);
    for (int i = 0; i < MAX_LAYERS; i++) {
        free(e->d3[i].last);
        free(e->d3[i].held);
    }
    for (int b = 0; b < 3; b++) free(e->buf[b]);
    free(e->attn);
    free(e->first_w);
    sf_scratch_free(&e->ws);
    sf_vae_weights_free(&e->wt);
    free(e);
    *ep = NULL;
}

int64_t sf_vae_enc_z_dim(const sf_vae_enc *e) { return e->z_dim; }

/* (vae_enc_int.h) */
int64_t sf_vae_enc_latents_after(const sf_vae_enc *e, int64_t f) { return f <= 0 ? 0 : 1 + ((f - 1) >> e->n_down3d); }

int64_t sf_vae_enc_latents_for(const sf_vae_enc *e, int64_t n) {
    if (n <= 0) return 0;
    return sf_vae_enc_latents_after(e, e->frames_in + n) - sf_vae_enc_latents_after(e, e->frames_in);
}

/* ---- encoding ---------------------------------------------------------------------------- */

#define TRY(x)                                                                                               \
    do {                                                                                                     \
        if ((s = (x)) != SF_OK) return s;                                                                    \
    } while (0)

/* Resample.resample: ZeroPad2d((0, 1, 0, 1)) + Conv2d(3, stride 2) of A [C, H, W] into B [C, H/2, W/2]:
 * output (i, j) reads input rows 2i..2i+2 and columns 2j..2j+2 (row H / column W: the pad's zeros), which
 * is the stride-1, padding-1 convolution at (2i+1, 2j+1): conv3d.h's stride 2, a quarter of its work. */
static sf_status downsample(sf_vae_convs *r, const sf_vae_lw *w, const float *A, float *B, int64_t C, int64_t H,
                            int64_t W, sf_err *err) {
    return sf_vae_frame_conv_strided(r, A, 1, C, C, H, W, 3, 2, w->wrs, w->brs, B, err);
}

/* One pixel frame px [3, H, W] through the encoder. *done = 1 when it completes a latent frame, which is then
 * written to zout [z, H/2^n_down, W/2^n_down] (scaled). */
static sf_status encode_frame(sf_vae_enc *e, const float *px, float *zout, int *done, sf_err *err) {
    int64_t C = e->in_ch, H = e->H, W = e->W;
    float *A = e->buf[0], *B = e->buf[1], *X = e->buf[2];
    sf_vae_convs r = {e->cache, e->cache_frame, e->n_caches, 0, e->threads, &e->ws, e->attn,
                      e->frames_in == 0 ? e->first_w : NULL};
    sf_status s;
    *done = 0;
    e->dirty = 1;
    TRY(sf_vae_cached_conv(&r, px, 1, C, e->dim, H, W, 3, e->conv1_w, e->conv1_b, A, err));
    C = e->dim;
    for (int i = 0; i < e->n_layers; i++) {
        const sf_vae_layer *L = &e->layers[i];
        const sf_vae_lw *w = &e->wt.layer[i];
        switch ((enc_kind)L->kind) {
        case ENC_RES: TRY(sf_vae_res_block(&r, L, w, &A, &B, &X, 1, H, W, err)); break;
        case ENC_ATTN: TRY(sf_vae_attn_block(&r, w, &A, &B, &X, 1, C, H, W, err)); break;
        case ENC_DOWN2D:
        case ENC_DOWN3D: {
            TRY(downsample(&r, w, A, B, C, H, W, err));
            H /= 2;
            W /= 2;
            const size_t fe = (size_t)(C * H * W);
            if ((enc_kind)L->kind == ENC_DOWN2D) {
                float *t = A;
                A = B;
                B = t;
                break;
            }
            down3d_state *d = &e->d3[i];
            if (!d->have_last) { /* frame 0: no time_conv; kept as the first frame time_conv will see */
                memcpy(d->last, B, fe * sizeof(float));
                d->have_last = 1;
                float *t = A;
                A = B;
                B = t;
                break;
            }
            if (!d->have_held) { /* the first of a pair waits for the second */
                memcpy(d->held, B, fe * sizeof(float));
                d->have_held = 1;
                e->frames_in++;
                return SF_OK;
            }
            if (sf_stopped()) return sf_stop_err(err);
            const float *fr[3] = {d->last, d->held, B};
            sf_conv3d_args a = {fr, 1, C, C, H, W, 3, 1, 1, w->wtc, w->btc, A, e->threads, &e->ws, 1};
            TRY(sf_conv3d_cpu(&a, err));
            memcpy(d->last, B, fe * sizeof(float));
            d->have_held = 0;
            break;
        }
        }
        C = L->cout;
    }
    sf_vae_rms_norm_cpu(A, B, 1, C, H * W, e->head_g, NULL, 1, e->threads);
    TRY(sf_vae_cached_conv(&r, B, 1, C, 2 * e->z_dim, H, W, 3, e->head_w, e->head_b, X, err));
    /* conv1 → mu (its first z channels), then (mu − mean) · (1 / std) */
    TRY(sf_vae_frame_conv(&r, X, 1, 2 * e->z_dim, e->z_dim, H, W, 1, e->mu_w, e->mu_b, zout, err));
    const int64_t HW = H * W;
    for (int64_t c = 0; c < e->z_dim; c++) {
        const float m = e->mr[c], k = e->mr[e->z_dim + c];
        float *zc = zout + c * HW;
        for (int64_t p = 0; p < HW; p++) zc[p] = (zc[p] - m) * k;
    }
    e->frames_in++;
    *done = 1;
    return SF_OK;
}

sf_status sf_vae_encode(sf_vae_enc *e, const float *video, int64_t n, float *z, int64_t *m_out, sf_err *err) {
    sf_status s;
    if (m_out) *m_out = 0;
    if (!e || n < 0 || (n > 0 && !video) || (!z && sf_vae_enc_latents_for(e, n) > 0))
        return sf_fail(err, SF_E_ARG, "VAE encode: bad arguments");
    if (!e->buf[0]) return sf_fail(err, SF_E_ARG, "VAE encode: opened without the CPU state (sf_vae_enc_new_weights)");
    const size_t pf = (size_t)(e->in_ch * e->H * e->W);
    const size_t zf = (size_t)(e->z_dim * (e->H >> e->n_down) * (e->W >> e->n_down));
    int64_t m = 0;
    for (int64_t t = 0; t < n; t++) {
        int done = 0;
        TRY(encode_frame(e, video + (size_t)t * pf, z + (size_t)m * zf, &done, err));
        m += done;
        if (m_out) *m_out = m;
    }
    return SF_OK;
}
