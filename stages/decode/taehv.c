/* taehv.c — the TAEHV tiny video decoder on CPU (see taehv.h for the contract).
 *
 * Mirrors demo_utils/taehv.py (TAEHV.decoder, MemBlock, TGrow, Clamp, apply_model_with_memblocks) and
 * demo.py's TAEHV wrapper. Tested by tests/unit/test_taehv.c (golden layer outputs and frames, two
 * checkpoints, streamed = one-shot) and tests/bats/sf-decode.bats.
 *
 * Execution: one latent frame at a time through the layer list; at a TGROW the frame's s sub-frames go
 * on one after another (depth first), each through every later layer, so each MemBlock sees its input
 * frames in time order and keeps the last one as its memory — the reference's sequential decode, whose
 * result its parallel decode equals. Activations are frame-major [C, H, W] f32 in three ping-pong
 * buffers; each TGROW's output [s·C, H, W] has its own buffer, read while the later layers run. */
#define _POSIX_C_SOURCE 200809L
#include "stages/decode/taehv.h"
#include "stop.h"
#include "conv3d.h"
#include "taehv_ops.h"
#include "vae_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sf_taehv {
    sf_taehv_config cfg;
    sf_vae_weights wt;                      /* the file and any f32 copies (sf_vae_wget) */
    int64_t h, w;
    float *past[SF_TAEHV_MAX_LAYERS];       /* MEM: the previous input frame [C, H, W] (zeros after reset) */
    float *grow[SF_TAEHV_MAX_LAYERS];       /* TGROW: one input frame's output [s·C, H, W] */
    int64_t seen[SF_TAEHV_MAX_LAYERS];      /* frames each layer has output since the reset (the taps') */
    float *buf[3];                          /* activations, buf_elems each */
    size_t buf_elems;
    float *px;                              /* one output frame mapped to [−1, 1]: [3, H, W] */
    sf_scratch ws;                          /* the convolutions' work memory, sized at init */
    int64_t frames_out;                     /* frames made since the reset (trimmed ones too) */
    sf_taehv_tap_fn tap;
    void *tap_ctx;
};

/* ---- loading ----------------------------------------------------------------------------- */

static const sf_tensor *tget(const sf_tfile *tf, char *name, size_t nn, const char *fmt, int i) {
    snprintf(name, nn, fmt, i);
    return sf_tfile_get(tf, name);
}

int sf_taehv_detect(const sf_tfile *tf) {
    const sf_tensor *t = sf_tfile_get(tf, "decoder.1.weight");
    return t && t->ndim == 4 && !sf_tfile_get(tf, "decoder.conv1.weight");
}

static const char *kind_name(sf_taehv_kind k) {
    static const char *n[] = {"Clamp", "conv", "ReLU", "MemBlock", "Upsample", "TGrow"};
    return n[k];
}

/* One weight of layer L: decoder.<index><suffix> with exactly `shape` (4-D or 1-D). */
static sf_status lw(sf_taehv *t, const sf_taehv_layer *L, const char *suffix, const int64_t *shape, int ndim,
                    const float **out, sf_err *err) {
    char name[96];
    snprintf(name, sizeof name, "decoder.%d%s", L->index, suffix);
    return sf_vae_wget(&t->wt, name, shape, ndim, out, err);
}

/* The layer list from the state dict's names and shapes (taehv.h), every width chained and checked. */
static sf_status infer(sf_taehv *t, sf_err *err) {
    sf_taehv_config *c = &t->cfg;
    const sf_tfile *tf = t->wt.file;
    const char *path = tf->path;
    char name[96];
    int last = -1;
    for (int i = 0; i < 4 * SF_TAEHV_MAX_LAYERS; i++)
        if (tget(tf, name, sizeof name, "decoder.%d.weight", i) || tget(tf, name, sizeof name, "decoder.%d.conv.weight", i) ||
            tget(tf, name, sizeof name, "decoder.%d.conv.0.weight", i))
            last = i;
    if (last < 1) return sf_fail(err, SF_E_FORMAT, "%s: no TAEHV decoder tensors (decoder.<i>.weight)", path);
    if (last >= SF_TAEHV_MAX_LAYERS)
        return sf_fail(err, SF_E_UNSUPPORTED, "%s: TAEHV decoder of %d layers (at most %d)", path, last + 1,
                       SF_TAEHV_MAX_LAYERS);
    c->n_layers = last + 1;
    c->time_up = 1;
    int64_t C = -1;
    int scale = 1;
    for (int i = 0; i <= last; i++) {
        sf_taehv_layer *L = &c->layers[i];
        const sf_tensor *cw = tget(tf, name, sizeof name, "decoder.%d.weight", i);
        const sf_tensor *gw = tget(tf, name, sizeof name, "decoder.%d.conv.weight", i);
        const sf_tensor *mw = tget(tf, name, sizeof name, "decoder.%d.conv.0.weight", i);
        L->index = i;
        L->scale = scale;
        if (cw) {
            if (cw->ndim != 4 || cw->shape[2] != cw->shape[3] || (cw->shape[2] != 1 && cw->shape[2] != 3))
                return sf_fail(err, SF_E_SHAPE, "%s: decoder.%d.weight is not a 1x1 or 3x3 conv", path, i);
            L->kind = SF_TAEHV_CONV, L->cout = cw->shape[0], L->cin = cw->shape[1], L->k = (int)cw->shape[2];
            if (C < 0) C = L->cin, c->z_dim = C; /* the first conv takes the latents */
        } else if (mw) {
            if (mw->ndim != 4 || mw->shape[1] % 2)
                return sf_fail(err, SF_E_SHAPE, "%s: decoder.%d.conv.0.weight is not a MemBlock's conv", path, i);
            L->kind = SF_TAEHV_MEM, L->cout = mw->shape[0], L->cin = mw->shape[1] / 2;
        } else if (gw) {
            if (gw->ndim != 4 || gw->shape[1] <= 0 || gw->shape[0] % gw->shape[1] || gw->shape[2] != 1 || gw->shape[3] != 1)
                return sf_fail(err, SF_E_SHAPE, "%s: decoder.%d.conv.weight is not a TGrow's 1x1 conv", path, i);
            const int64_t st = gw->shape[0] / gw->shape[1];
            if (st < 1 || st > 64 || (int64_t)c->time_up * st > 64)
                return sf_fail(err, SF_E_UNSUPPORTED, "%s: TGrow decoder.%d makes %lld frames of one (1 to 64 in all)",
                               path, i, (long long)st);
            L->kind = SF_TAEHV_TGROW, L->cin = L->cout = gw->shape[1], L->stride = (int)st;
            c->time_up *= L->stride;
        } else { /* no weights: what the TAEHV layout has there */
            const sf_taehv_kind prev = i ? c->layers[i - 1].kind : SF_TAEHV_CLAMP;
            if (i == 0) L->kind = SF_TAEHV_CLAMP;
            else if (prev == SF_TAEHV_CONV) L->kind = SF_TAEHV_RELU;
            else if (prev == SF_TAEHV_MEM && c->n_up < 6) L->kind = SF_TAEHV_UP, scale *= 2, c->n_up++;
            else if (prev == SF_TAEHV_MEM) /* 2^n_up output pixels a latent pixel each way (taew2_1: 3) */
                return sf_fail(err, SF_E_UNSUPPORTED, "%s: a TAEHV decoder with over 6 2x upsamplings", path);
            else
                return sf_fail(err, SF_E_FORMAT, "%s: decoder layer %d has no weights after a %s: not a TAEHV decoder",
                               path, i, kind_name(prev));
            L->cin = L->cout = C;
            continue;
        }
        if (i == 0) return sf_fail(err, SF_E_FORMAT, "%s: decoder.0 has weights: not a TAEHV decoder (Clamp first)", path);
        if (L->cin < 1 || L->cout < 1 || L->cin > 65536 || L->cout > 65536)
            return sf_fail(err, SF_E_SHAPE, "%s: decoder layer %d (%s) has %lld -> %lld channels (1 to 65536)", path, i,
                           kind_name(L->kind), (long long)L->cin, (long long)L->cout);
        if (C < 0 || L->cin != C)
            return sf_fail(err, SF_E_SHAPE, "%s: decoder layer %d (%s) takes %lld channels, the layer before gives %lld",
                           path, i, kind_name(L->kind), (long long)L->cin, (long long)C);
        C = L->cout;
    }
    if (c->layers[last].kind != SF_TAEHV_CONV || C != 3)
        return sf_fail(err, SF_E_SHAPE, "%s: the TAEHV decoder's last layer must be a conv to 3 channels (RGB)", path);
    if (c->z_dim <= 0 || c->z_dim > 4096) return sf_fail(err, SF_E_SHAPE, "%s: bad latent width", path);
    c->layers[0].cin = c->layers[0].cout = c->z_dim; /* the Clamp, on the latents */
    c->out_ch = 3;
    c->trim = c->time_up - 1;
    return SF_OK;
}

static sf_status load(sf_taehv *t, sf_err *err) {
    sf_status s;
    for (int i = 0; i < t->cfg.n_layers; i++) {
        sf_taehv_layer *L = &t->cfg.layers[i];
        const int64_t ci = L->cin, co = L->cout;
        char name[96];
        switch (L->kind) {
        case SF_TAEHV_CONV:
            if ((s = lw(t, L, ".weight", SF_VAE_SHAPE(co, ci, L->k, L->k), &L->w0, err))) return s;
            if (tget(t->wt.file, name, sizeof name, "decoder.%d.bias", i) &&
                (s = lw(t, L, ".bias", SF_VAE_SHAPE(co), &L->b0, err)))
                return s;
            break;
        case SF_TAEHV_MEM:
            if ((s = lw(t, L, ".conv.0.weight", SF_VAE_SHAPE(co, 2 * ci, 3, 3), &L->w0, err)) ||
                (s = lw(t, L, ".conv.0.bias", SF_VAE_SHAPE(co), &L->b0, err)) ||
                (s = lw(t, L, ".conv.2.weight", SF_VAE_SHAPE(co, co, 3, 3), &L->w1, err)) ||
                (s = lw(t, L, ".conv.2.bias", SF_VAE_SHAPE(co), &L->b1, err)) ||
                (s = lw(t, L, ".conv.4.weight", SF_VAE_SHAPE(co, co, 3, 3), &L->w2, err)) ||
                (s = lw(t, L, ".conv.4.bias", SF_VAE_SHAPE(co), &L->b2, err)))
                return s;
            if (ci != co && (s = lw(t, L, ".skip.weight", SF_VAE_SHAPE(co, ci, 1, 1), &L->wskip, err))) return s;
            break;
        case SF_TAEHV_TGROW:
            if ((s = lw(t, L, ".conv.weight", SF_VAE_SHAPE(L->stride * ci, ci, 1, 1), &L->w0, err))) return s;
            break;
        default: break;
        }
    }
    return SF_OK;
}

/* Buffers and work memory for latents of h×w. */
static sf_status alloc_state(sf_taehv *t, sf_err *err) {
    const sf_taehv_config *c = &t->cfg;
    size_t mx = (size_t)(c->z_dim * t->h * t->w), ws = 0;
    for (int i = 0; i < c->n_layers; i++) {
        const sf_taehv_layer *L = &c->layers[i];
        const int64_t H = t->h * L->scale, W = t->w * L->scale, HW = H * W;
        const int64_t ch = L->kind == SF_TAEHV_MEM && 2 * L->cin > L->cout ? 2 * L->cin : L->cout;
        size_t e = (size_t)(ch * HW * (L->kind == SF_TAEHV_UP ? 4 : 1));
        if (e > mx) mx = e;
        size_t w1 = 0;
        if (L->kind == SF_TAEHV_CONV) w1 = sf_conv3d_cpu_scratch(L->cin, L->cout, 1, L->k, L->k, W, c->threads);
        if (L->kind == SF_TAEHV_MEM) w1 = sf_conv3d_cpu_scratch(2 * L->cin, L->cout, 1, 3, 3, W, c->threads);
        if (L->kind == SF_TAEHV_MEM && w1 < sf_conv3d_cpu_scratch(L->cout, L->cout, 1, 3, 3, W, c->threads))
            w1 = sf_conv3d_cpu_scratch(L->cout, L->cout, 1, 3, 3, W, c->threads);
        if (L->kind == SF_TAEHV_TGROW) w1 = sf_conv3d_cpu_scratch(L->cin, L->stride * L->cin, 1, 1, 1, W, c->threads);
        if (w1 > ws) ws = w1;
        if (L->kind == SF_TAEHV_MEM && !(t->past[i] = sf_calloc2((size_t)(L->cin * HW), sizeof(float))))
            return sf_fail(err, SF_E_NOMEM, "TAEHV: out of memory");
        if (L->kind == SF_TAEHV_TGROW && !(t->grow[i] = sf_calloc2((size_t)(L->stride * L->cin * HW), sizeof(float))))
            return sf_fail(err, SF_E_NOMEM, "TAEHV: out of memory");
    }
    t->buf_elems = mx;
    for (int b = 0; b < 3; b++)
        if (!(t->buf[b] = sf_calloc2(mx, sizeof(float)))) return sf_fail(err, SF_E_NOMEM, "TAEHV: out of memory");
    const int64_t P = (t->h << c->n_up) * (t->w << c->n_up);
    if (!(t->px = sf_calloc2((size_t)(3 * P), sizeof(float)))) return sf_fail(err, SF_E_NOMEM, "TAEHV: out of memory");
    return sf_scratch_init(&t->ws, 1, ws, err);
}

sf_status sf_taehv_new_from(sf_tfile *tf, int64_t h, int64_t w, int threads, int cpu_state, sf_taehv **out,
                            sf_err *err) {
    sf_status s;
    *out = NULL;
    if (h <= 0 || w <= 0 || h > 4096 || w > 4096) {
        sf_tfile_destroy(&tf);
        return sf_fail(err, SF_E_ARG, "TAEHV: latent size %lldx%lld out of range", (long long)h, (long long)w);
    }
    sf_taehv *t = calloc(1, sizeof *t);
    if (!t) {
        sf_tfile_destroy(&tf);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    t->wt.file = tf;
    t->h = h, t->w = w;
    t->cfg.threads = threads > 0 ? threads : sf_cpu_count();
    if ((s = infer(t, err)) || (s = load(t, err)) || (cpu_state && (s = alloc_state(t, err)))) {
        sf_taehv_destroy(&t);
        return s;
    }
    sf_taehv_reset(t);
    *out = t;
    return SF_OK;
}

sf_status sf_taehv_new(const char *path, int64_t h, int64_t w, int threads, sf_taehv **out, sf_err *err) {
    sf_tfile *tf = NULL;
    sf_status s;
    *out = NULL;
    if ((s = sf_tfile_open(path, &tf, err)) != SF_OK) return s;
    return sf_taehv_new_from(tf, h, w, threads, 1, out, err);
}

void sf_taehv_destroy(sf_taehv **tp) {
    if (!tp || !*tp) return;
    sf_taehv *t = *tp;
    for (int i = 0; i < SF_TAEHV_MAX_LAYERS; i++) free(t->past[i]), free(t->grow[i]);
    for (int b = 0; b < 3; b++) free(t->buf[b]);
    free(t->px);
    sf_scratch_free(&t->ws);
    sf_vae_weights_free(&t->wt);
    free(t);
    *tp = NULL;
}

const sf_taehv_config *sf_taehv_config_of(const sf_taehv *t) { return &t->cfg; }
int64_t sf_taehv_h(const sf_taehv *t) { return t->h; }
int64_t sf_taehv_w(const sf_taehv *t) { return t->w; }

void sf_taehv_reset(sf_taehv *t) {
    for (int i = 0; i < t->cfg.n_layers; i++) {
        const sf_taehv_layer *L = &t->cfg.layers[i];
        if (t->past[i]) memset(t->past[i], 0, (size_t)(L->cin * t->h * L->scale * t->w * L->scale) * sizeof(float));
        t->seen[i] = 0;
    }
    t->frames_out = 0;
}

int64_t sf_taehv_frames_after(const sf_taehv_config *c, int64_t made, int64_t n) {
    if (n <= 0) return 0;
    const int64_t all = (int64_t)c->time_up * n, left = made < c->trim ? c->trim - made : 0;
    return all > left ? all - left : 0;
}

int64_t sf_taehv_frames_for(const sf_taehv *t, int64_t n) { return sf_taehv_frames_after(&t->cfg, t->frames_out, n); }

void sf_taehv_set_tap(sf_taehv *t, sf_taehv_tap_fn fn, void *ctx) {
    t->tap = fn;
    t->tap_ctx = ctx;
}

/* ---- decoding ---------------------------------------------------------------------------- */

typedef struct sink {
    float *video;
    uint8_t *u8;
    int64_t done; /* frames written to video / u8 */
} sink;

/* A buffer that is neither a nor b. */
static float *other(sf_taehv *t, const float *a, const float *b) {
    for (int i = 0; i < 3; i++)
        if (t->buf[i] != a && t->buf[i] != b) return t->buf[i];
    return NULL;
}

static sf_status conv(sf_taehv *t, const float *x, int64_t cin, int64_t cout, int64_t H, int64_t W, int k,
                      const float *w, const float *b, float *y, sf_err *err) {
    const sf_vae_convs r = {NULL, NULL, 0, 0, t->cfg.threads, &t->ws, NULL, NULL};
    return sf_vae_frame_conv(&r, x, 1, cin, cout, H, W, k, w, b, y, err);
}

/* One output frame [3, H, W]: trimmed at the start of a video, else mapped and stored. */
static void emit(sf_taehv *t, const float *x, int64_t P, sink *o) {
    if (t->frames_out++ < t->cfg.trim) return;
    sf_taehv_to_signed_cpu(x, t->px, 3 * P);
    if (o->video) sf_vae_to_pixels_cpu(t->px, 3 * P, o->video + o->done * 3 * P, NULL);
    if (o->u8) {
        uint8_t *d = o->u8 + o->done * 3 * P;
        for (int64_t ch = 0; ch < 3; ch++)
            for (int64_t p = 0; p < P; p++) sf_vae_to_pixels_cpu(t->px + ch * P + p, 1, NULL, d + p * 3 + ch);
    }
    o->done++;
}

#define TRY(e)                                                                                               \
    do {                                                                                                     \
        if ((s = (e)) != SF_OK) return s;                                                                    \
    } while (0)

/* Run frame x [C, H, W] (layer `from`'s input; may be modified in place) through layers from.. and emit
 * the frames it becomes. */
static sf_status run(sf_taehv *t, int from, float *x, int64_t C, int64_t H, int64_t W, sink *o, sf_err *err) {
    const sf_taehv_config *c = &t->cfg;
    sf_status s;
    float *cur = x;
    for (int i = from; i < c->n_layers; i++) {
        const sf_taehv_layer *L = &c->layers[i];
        const int64_t HW = H * W;
        if (sf_stopped()) return sf_stop_err(err);
        switch (L->kind) {
        case SF_TAEHV_CLAMP: sf_taehv_clamp_cpu(cur, C * HW); break;
        case SF_TAEHV_RELU: sf_relu_cpu(cur, C * HW); break;
        case SF_TAEHV_CONV: {
            float *y = other(t, cur, NULL);
            TRY(conv(t, cur, L->cin, L->cout, H, W, L->k, L->w0, L->b0, y, err));
            cur = y;
            break;
        }
        case SF_TAEHV_UP: {
            float *y = other(t, cur, NULL);
            sf_vae_upsample2x_cpu(cur, y, 1, C, H, W);
            cur = y, H *= 2, W *= 2;
            break;
        }
        case SF_TAEHV_MEM: { /* relu(conv4(relu(conv2(relu(conv0([x; past]))))) + skip(x)) */
            const int64_t co = L->cout;
            float *a = other(t, cur, NULL), *b = other(t, cur, a);
            sf_taehv_cat_roll_cpu(cur, t->past[i], a, C, HW);
            TRY(conv(t, a, 2 * C, co, H, W, 3, L->w0, L->b0, b, err));
            sf_relu_cpu(b, co * HW);
            TRY(conv(t, b, co, co, H, W, 3, L->w1, L->b1, a, err));
            sf_relu_cpu(a, co * HW);
            TRY(conv(t, a, co, co, H, W, 3, L->w2, L->b2, b, err));
            if (L->wskip) TRY(conv(t, cur, C, co, H, W, 1, L->wskip, NULL, a, err)); /* a is free again */
            sf_vae_add_cpu(b, L->wskip ? a : cur, co * HW);
            sf_relu_cpu(b, co * HW);
            cur = b;
            break;
        }
        case SF_TAEHV_TGROW: {
            TRY(conv(t, cur, C, L->stride * C, H, W, 1, L->w0, NULL, t->grow[i], err));
            for (int j = 0; j < L->stride; j++) {
                float *f = t->grow[i] + (size_t)j * (size_t)(C * HW);
                if (t->tap) t->tap(t->tap_ctx, L->index, t->seen[i]++, f, C, H, W);
                TRY(run(t, i + 1, f, C, H, W, o, err));
            }
            return SF_OK;
        }
        }
        C = L->cout;
        if (t->tap) t->tap(t->tap_ctx, L->index, t->seen[i]++, cur, C, H, W);
    }
    emit(t, cur, H * W, o);
    return SF_OK;
}

sf_status sf_taehv_decode(sf_taehv *t, const float *z, int64_t n, float *video, uint8_t *u8, int64_t *n_out,
                          sf_err *err) {
    const int64_t zf = t->cfg.z_dim * t->h * t->w;
    sink o = {video, u8, 0};
    sf_status s = SF_OK;
    *n_out = 0;
    if (n < 0 || (!z && n)) return sf_fail(err, SF_E_ARG, "TAEHV decode: bad arguments");
    if (!t->buf[0]) return sf_fail(err, SF_E_ARG, "TAEHV decode: opened without the CPU decoder's state");
    for (int64_t f = 0; f < n && s == SF_OK; f++) {
        memcpy(t->buf[0], z + f * zf, (size_t)zf * sizeof(float));
        s = run(t, 0, t->buf[0], t->cfg.z_dim, t->h, t->w, &o, err);
        *n_out = o.done;
    }
    return s;
}
