/* vae.c — the Wan2.1 causal VAE decoder on CPU (see vae.h for the contract).
 *
 * Mirrors wan/modules/vae.py (WanVAE_.decode: un-scale, conv2, then decoder(...) per latent
 * frame with a per-conv feature cache; Resample's 'Rep' first-frame rule) and
 * utils/wan_wrapper.py (decode_to_pixel). Tested by tests/unit/test_vae.c (golden tensors,
 * one-shot vs streamed) and tests/bats/sf-decode.bats.
 *
 * Execution: one latent frame at a time, frame-major activations [n, C, H, W] in three ping-pong
 * buffers. Each k=3 causal conv (decoder.conv1, both convs of every residual block, time_conv,
 * head) owns a cache of its last 2 INPUT frames, starting as zeros (= the reference's zero
 * front padding). time_conv caches never see latent frame 0: that frame bypasses time_conv
 * (the reference's 'Rep' marker), so later frames get zero history — see MODEL_NOTES. */
#define _POSIX_C_SOURCE 200809L
#include "vae.h"
#include "stop.h"
#include "conv3d.h"
#include "parallel.h"
#include "vae_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* utils/wan_wrapper.py WanVAEWrapper.mean / .std (float32). */
const float sf_vae_latent_mean[16] = {-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
                                      0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f};
const float sf_vae_latent_std[16] = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                     3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

#define MAX_CHUNK 64 /* pixel frames per latent frame handled by one conv call (2^n_up3d) */

/* ---- loading ----------------------------------------------------------------------------- */

static const sf_tensor *find(const sf_vae_weights *W, const char *fmt, const char *prefix, char *name, size_t nn) {
    snprintf(name, nn, fmt, prefix);
    return sf_tfile_get(W->file, name);
}

sf_status sf_vae_wget(sf_vae_weights *W, const char *name, const int64_t *shape, int ndim, const float **out,
                      sf_err *err) {
    const sf_tensor *t = sf_tfile_get(W->file, name);
    char got[96], want[96];
    if (!t) return sf_fail(err, SF_E_NOTFOUND, "VAE file %s: missing tensor %s", W->file->path, name);
    sf_tensor ws = sf_tensor_view(NULL, SF_F32, ndim, shape);
    if (!sf_shape_eq(t, ndim, shape))
        return sf_fail(err, SF_E_SHAPE, "VAE file %s: tensor %s has shape %s, expected %s", W->file->path, name,
                       sf_shape_str(t, got, sizeof got), sf_shape_str(&ws, want, sizeof want));
    if (t->device >= 0) return sf_fail(err, SF_E_UNSUPPORTED, "VAE tensor %s is not in host memory", name);
    if (t->dtype == SF_F32 && sf_tensor_is_contiguous(t) && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return SF_OK;
    }
    if (t->dtype != SF_F32 && t->dtype != SF_BF16 && t->dtype != SF_F16 && t->dtype != SF_F64)
        return sf_fail(err, SF_E_UNSUPPORTED, "VAE tensor %s has dtype %s (want a float type)", name,
                       sf_dtype_name(t->dtype));
    if (W->n_copies == W->cap_copies) {
        size_t cap = W->cap_copies ? 2 * W->cap_copies : 64;
        sf_tensor *c = realloc(W->copies, cap * sizeof *c);
        if (!c) return sf_fail(err, SF_E_NOMEM, "out of memory");
        W->copies = c;
        W->cap_copies = cap;
    }
    sf_status s = sf_tensor_convert(t, SF_F32, &W->copies[W->n_copies], err);
    if (s != SF_OK) return s;
    *out = W->copies[W->n_copies++].data;
    return SF_OK;
}

/* Infer the layer list and widths from shapes (vae_manifest "shape_inference_from_state_dict"). */
static sf_status infer_config(sf_vae *v, sf_err *err) {
    sf_vae_config *c = &v->cfg;
    const sf_vae_weights *W = &v->wt;
    const char *path = W->file->path;
    char name[160];
    const sf_tensor *t = sf_tfile_get(W->file, "conv2.weight");
    if (!t || t->ndim != 5)
        return sf_fail(err, t ? SF_E_SHAPE : SF_E_NOTFOUND, "VAE file %s: %s tensor conv2.weight (is this a Wan VAE?)",
                       path, t ? "bad" : "missing");
    c->z_dim = t->shape[0];
    t = sf_tfile_get(W->file, "decoder.conv1.weight");
    if (!t || t->ndim != 5)
        return sf_fail(err, t ? SF_E_SHAPE : SF_E_NOTFOUND, "VAE file %s: %s tensor decoder.conv1.weight", path,
                       t ? "bad" : "missing");
    c->top = t->shape[0];
    t = sf_tfile_get(W->file, "decoder.head.0.gamma");
    if (!t || t->ndim < 1)
        return sf_fail(err, t ? SF_E_SHAPE : SF_E_NOTFOUND, "VAE file %s: %s tensor decoder.head.0.gamma", path,
                       t ? "bad" : "missing");
    c->dim = t->shape[0];
    c->out_ch = 3;
    if (c->z_dim <= 0 || c->z_dim > 4096 || c->top <= 0 || c->top > 65536 || c->dim <= 0 || c->dim > 65536)
        return sf_fail(err, SF_E_SHAPE, "VAE file %s: implausible widths z=%lld top=%lld dim=%lld", path,
                       (long long)c->z_dim, (long long)c->top, (long long)c->dim);

    int64_t C = c->top;
    c->n_layers = 0;
    c->n_up3d = c->n_up = 0;
    /* middle: ResidualBlock, AttentionBlock (if present), ResidualBlock; then upsamples.N */
    for (int part = 0; part < 2; part++) {
        for (int i = 0;; i++) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, part == 0 ? "decoder.middle.%d" : "decoder.upsamples.%d", i);
            sf_vae_layer L = {0};
            snprintf(L.prefix, sizeof L.prefix, "%s", prefix);
            if ((t = find(W, "%s.residual.2.weight", prefix, name, sizeof name))) {
                if (t->ndim != 5) return sf_fail(err, SF_E_SHAPE, "VAE file %s: bad tensor %s", path, name);
                L.kind = SF_VAE_RES;
                L.cin = t->shape[1];
                L.cout = t->shape[0];
            } else if ((t = find(W, "%s.to_qkv.weight", prefix, name, sizeof name))) {
                L.kind = SF_VAE_ATTN;
                L.cin = L.cout = C;
            } else if ((t = find(W, "%s.resample.1.weight", prefix, name, sizeof name))) {
                if (t->ndim != 4) return sf_fail(err, SF_E_SHAPE, "VAE file %s: bad tensor %s", path, name);
                L.cin = t->shape[1];
                L.cout = t->shape[0];
                L.kind = find(W, "%s.time_conv.weight", prefix, name, sizeof name) ? SF_VAE_UP3D : SF_VAE_UP2D;
            } else {
                if (part == 0 && i == 0)
                    return sf_fail(err, SF_E_NOTFOUND, "VAE file %s: missing tensor decoder.middle.0.residual.2.weight",
                                   path);
                break;
            }
            if (L.cin != C)
                return sf_fail(err, SF_E_SHAPE, "VAE file %s: %s takes %lld channels but receives %lld", path, prefix,
                               (long long)L.cin, (long long)C);
            if (L.cout <= 0) return sf_fail(err, SF_E_SHAPE, "VAE file %s: %s has no outputs", path, prefix);
            if (c->n_layers == SF_VAE_MAX_LAYERS)
                return sf_fail(err, SF_E_UNSUPPORTED, "VAE file %s: more than %d decoder layers", path,
                               SF_VAE_MAX_LAYERS);
            if (L.kind == SF_VAE_UP3D) c->n_up3d++;
            if (L.kind == SF_VAE_UP2D || L.kind == SF_VAE_UP3D) c->n_up++;
            C = L.cout;
            c->layers[c->n_layers++] = L;
        }
    }
    if (C != c->dim)
        return sf_fail(err, SF_E_SHAPE, "VAE file %s: decoder ends with %lld channels but the head takes %lld", path,
                       (long long)C, (long long)c->dim);
    if ((1 << c->n_up3d) > MAX_CHUNK || c->n_up > 8)
        return sf_fail(err, SF_E_UNSUPPORTED, "VAE file %s: %d temporal / %d spatial upsamplers are too many", path,
                       c->n_up3d, c->n_up);
    return SF_OK;
}

sf_status sf_vae_block_weights(sf_vae_weights *W, const char *prefix, int attn, int64_t ci, int64_t co, sf_vae_lw *w,
                               sf_err *err) {
    char n[160];
    sf_status s;
#define GETP(fmt, ptr, ...)                                                                                 \
    do {                                                                                                    \
        snprintf(n, sizeof n, fmt, prefix);                                                                 \
        if ((s = sf_vae_wget(W, n, SF_VAE_SHAPE(__VA_ARGS__), &(ptr), err)) != SF_OK) return s;             \
    } while (0)
    if (attn) {
        GETP("%s.norm.gamma", w->g, ci, 1, 1);
        GETP("%s.to_qkv.weight", w->wqkv, 3 * ci, ci, 1, 1);
        GETP("%s.to_qkv.bias", w->bqkv, 3 * ci);
        GETP("%s.proj.weight", w->wproj, ci, ci, 1, 1);
        GETP("%s.proj.bias", w->bproj, ci);
        return SF_OK;
    }
    GETP("%s.residual.0.gamma", w->g0, ci, 1, 1, 1);
    GETP("%s.residual.2.weight", w->wa, co, ci, 3, 3, 3);
    GETP("%s.residual.2.bias", w->ba, co);
    GETP("%s.residual.3.gamma", w->g1, co, 1, 1, 1);
    GETP("%s.residual.6.weight", w->wb, co, co, 3, 3, 3);
    GETP("%s.residual.6.bias", w->bb, co);
    if (ci != co) {
        GETP("%s.shortcut.weight", w->wsc, co, ci, 1, 1, 1);
        GETP("%s.shortcut.bias", w->bsc, co);
    }
#undef GETP
    return SF_OK;
}

static sf_status load_weights(sf_vae *v, sf_err *err) {
    const sf_vae_config *c = &v->cfg;
    sf_vae_weights *W = &v->wt;
    char n[160];
    sf_status s;
    const int64_t z = c->z_dim;
#define GET(nm, ptr, ...)                                                                                   \
    do {                                                                                                    \
        if ((s = sf_vae_wget(W, nm, SF_VAE_SHAPE(__VA_ARGS__), &(ptr), err)) != SF_OK) return s;            \
    } while (0)
#define GETP(fmt, ptr, ...)                                                                                 \
    do {                                                                                                    \
        snprintf(n, sizeof n, fmt, L->prefix);                                                              \
        GET(n, ptr, __VA_ARGS__);                                                                           \
    } while (0)
    GET("conv2.weight", W->conv2_w, z, z, 1, 1, 1);
    GET("conv2.bias", W->conv2_b, z);
    GET("decoder.conv1.weight", W->conv1_w, c->top, z, 3, 3, 3);
    GET("decoder.conv1.bias", W->conv1_b, c->top);
    for (int i = 0; i < c->n_layers; i++) {
        const sf_vae_layer *L = &c->layers[i];
        sf_vae_lw *w = &W->layer[i];
        const int64_t ci = L->cin, co = L->cout;
        switch (L->kind) {
        case SF_VAE_RES:
        case SF_VAE_ATTN:
            if ((s = sf_vae_block_weights(W, L->prefix, L->kind == SF_VAE_ATTN, ci, co, w, err)) != SF_OK) return s;
            break;
        case SF_VAE_UP3D:
            GETP("%s.time_conv.weight", w->wtc, 2 * ci, ci, 3, 1, 1);
            GETP("%s.time_conv.bias", w->btc, 2 * ci);
            /* fall through */
        case SF_VAE_UP2D:
            GETP("%s.resample.1.weight", w->wrs, co, ci, 3, 3);
            GETP("%s.resample.1.bias", w->brs, co);
            break;
        }
    }
    GET("decoder.head.0.gamma", W->head_g, c->dim, 1, 1, 1);
    GET("decoder.head.2.weight", W->head_w, c->out_ch, c->dim, 3, 3, 3);
    GET("decoder.head.2.bias", W->head_b, c->out_ch);
#undef GET
#undef GETP
    return SF_OK;
}

/* ---- state ------------------------------------------------------------------------------- */

void sf_vae_walk(const sf_vae_config *c, int64_t h, int64_t w, void (*fn)(void *ctx, const sf_vae_step *st), void *ctx) {
    int64_t n = 1, H = h, W = w;
#define STEP(k, e, ci) fn(ctx, &(sf_vae_step){(k), (size_t)(e), (ci), n, H, W})
    /* every product below is bounded: widths ≤ 65536, frames ≤ 64, h·w checked by the caller */
    STEP(SF_VAE_STEP_ACT, n * c->z_dim * H * W, c->z_dim);
    STEP(SF_VAE_STEP_CACHE, 0, c->z_dim);
    STEP(SF_VAE_STEP_ACT, n * c->top * H * W, c->top);
    for (int i = 0; i < c->n_layers; i++) {
        const sf_vae_layer *L = &c->layers[i];
        switch (L->kind) {
        case SF_VAE_RES:
            STEP(SF_VAE_STEP_ACT, n * L->cin * H * W, L->cin);
            STEP(SF_VAE_STEP_ACT, n * L->cout * H * W, L->cout);
            STEP(SF_VAE_STEP_CACHE, 0, L->cin);
            STEP(SF_VAE_STEP_CACHE, 0, L->cout);
            break;
        case SF_VAE_ATTN:
            STEP(SF_VAE_STEP_ACT, n * 3 * L->cin * H * W, 3 * L->cin);
            STEP(SF_VAE_STEP_ATTN, 0, L->cin);
            break;
        case SF_VAE_UP3D:
            STEP(SF_VAE_STEP_ACT, n * 2 * L->cin * H * W, 2 * L->cin);
            STEP(SF_VAE_STEP_CACHE, 0, L->cin);
            n *= 2;
            /* fall through */
        case SF_VAE_UP2D:
            STEP(SF_VAE_STEP_UP, n * L->cin * 4 * H * W, L->cin);
            H *= 2;
            W *= 2;
            STEP(SF_VAE_STEP_ACT, n * L->cout * H * W, L->cout);
            break;
        }
    }
    STEP(SF_VAE_STEP_ACT, n * c->dim * H * W, c->dim);
    STEP(SF_VAE_STEP_CACHE, 0, c->dim);
    STEP(SF_VAE_STEP_HEAD, 0, c->dim);
#undef STEP
}

/* The CPU state's sizes from the walk; with `alloc`, each cache is allocated as it is met. */
typedef struct cpu_plan {
    sf_vae *v;
    int alloc, slot, failed;
    size_t mx, upmx, attn;
} cpu_plan;

static void cpu_step(void *ctx, const sf_vae_step *st) {
    cpu_plan *p = ctx;
    sf_vae_state *S = &p->v->st;
    size_t e = st->elems;
    switch (st->kind) {
    case SF_VAE_STEP_ACT: break;
    case SF_VAE_STEP_CACHE:
        if (p->alloc && !p->failed) {
            S->cache_frame[p->slot] = (size_t)(st->cin * st->H * st->W);
            if (!(S->cache[p->slot] = sf_calloc2(2 * S->cache_frame[p->slot], sizeof(float)))) p->failed = 1;
        }
        p->slot++;
        break;
    case SF_VAE_STEP_ATTN: {
        size_t a = sf_vae_attention_scratch(st->cin, st->H * st->W, p->v->cfg.threads);
        if (a > p->attn) p->attn = a;
        break;
    }
    case SF_VAE_STEP_UP: /* the CPU upsamples one frame at a time, into its own buffer */
        if ((size_t)(st->cin * 4 * st->H * st->W) > p->upmx) p->upmx = (size_t)(st->cin * 4 * st->H * st->W);
        e = 0;
        break;
    case SF_VAE_STEP_HEAD: e = (size_t)(st->n * p->v->cfg.out_ch * st->H * st->W); break;
    }
    if (e > p->mx) p->mx = e;
}

/* Size the state for a steady-state latent frame (sf_vae_walk): count caches, size buffers. When
 * `alloc` is set, allocate each cache as it is met (same order as decode_frame uses them). */
static sf_status plan_state(sf_vae *v, int alloc, sf_err *err) {
    const sf_vae_config *c = &v->cfg;
    sf_vae_state *S = &v->st;
    cpu_plan p = {v, alloc, 0, 0, 0, 0, 0};
    sf_vae_walk(c, S->h, S->w, cpu_step, &p);
    if (p.failed) return sf_fail(err, SF_E_NOMEM, "VAE: out of memory for the causal cache");
    size_t mx = p.mx, upmx = p.upmx, attn = p.attn;
    int slot = p.slot;
    if (!alloc) {
        S->n_caches = slot;
        S->buf_elems = mx;
        if (!(S->cache = calloc((size_t)slot, sizeof *S->cache)) ||
            !(S->cache_frame = calloc((size_t)slot, sizeof *S->cache_frame)))
            return sf_fail(err, SF_E_NOMEM, "VAE: out of memory");
        for (int b = 0; b < 3; b++)
            if (!(S->buf[b] = sf_calloc2(mx, sizeof(float))))
                return sf_fail(err, SF_E_NOMEM, "VAE: out of memory for activations (3 x %zu MB)",
                               mx * sizeof(float) >> 20);
        if (!(S->up = sf_calloc2(upmx ? upmx : 1, sizeof(float))) ||
            !(S->attn = sf_calloc2(attn ? attn : 1, sizeof(float))) ||
            !(S->zin = sf_calloc2((size_t)(c->z_dim * S->h * S->w), sizeof(float))))
            return sf_fail(err, SF_E_NOMEM, "VAE: out of memory");
    }
    return SF_OK;
}

/* The convolutions' work memory: the largest sf_conv3d_cpu_scratch over every conv the decoder runs
 * (shape and width at its stage), so that decoding allocates nothing per call. */
static size_t conv_scratch(const sf_vae_config *c, int64_t w) {
    size_t mx = 0;
    const int t = c->threads;
#define CONV(ci, co, kt, k, ww)                                                                                     \
    do {                                                                                                         \
        size_t n_ = sf_conv3d_cpu_scratch((ci), (co), (kt), (k), (k), (ww), t);                                  \
        if (n_ > mx) mx = n_;                                                                                    \
    } while (0)
    CONV(c->z_dim, c->z_dim, 1, 1, w); /* conv2 */
    CONV(c->z_dim, c->top, 3, 3, w);   /* decoder.conv1 */
    for (int i = 0; i < c->n_layers; i++) {
        const sf_vae_layer *L = &c->layers[i];
        switch (L->kind) {
        case SF_VAE_RES:
            CONV(L->cin, L->cout, 3, 3, w);
            CONV(L->cout, L->cout, 3, 3, w);
            CONV(L->cin, L->cout, 1, 1, w); /* shortcut */
            break;
        case SF_VAE_ATTN:
            CONV(L->cin, 3 * L->cin, 1, 1, w);
            CONV(L->cin, L->cin, 1, 1, w);
            break;
        case SF_VAE_UP3D:
            CONV(L->cin, 2 * L->cin, 3, 1, w); /* time_conv: 3 frames, 1×1 */
            /* fall through */
        case SF_VAE_UP2D:
            w *= 2;
            CONV(L->cin, L->cout, 1, 3, w); /* resample.1 on the upsampled frame */
            break;
        }
    }
    CONV(c->dim, c->out_ch, 3, 3, w); /* head */
#undef CONV
    return mx;
}

void sf_vae_reset(sf_vae *v) {
    sf_vae_state *S = &v->st;
    for (int i = 0; i < S->n_caches; i++)
        if (S->cache[i]) memset(S->cache[i], 0, 2 * S->cache_frame[i] * sizeof(float));
    memset(S->up3d_seen, 0, sizeof S->up3d_seen);
    S->frames_in = 0;
}

sf_status sf_vae_new(const char *path, int64_t h, int64_t w, int threads, sf_vae **out, sf_err *err) {
    sf_tfile *tf = NULL;
    sf_status s;
    *out = NULL;
    if (h <= 0 || w <= 0 || h > 4096 || w > 4096)
        return sf_fail(err, SF_E_ARG, "VAE: latent size %lldx%lld out of range", (long long)h, (long long)w);
    if ((s = sf_tfile_open(path, &tf, err)) != SF_OK) return s;
    return sf_vae_new_from(tf, h, w, threads, 1, out, err);
}

sf_status sf_vae_new_from(sf_tfile *tf, int64_t h, int64_t w, int threads, int cpu_state, sf_vae **out, sf_err *err) {
    sf_status s;
    *out = NULL;
    if (h <= 0 || w <= 0 || h > 4096 || w > 4096) {
        sf_tfile_destroy(&tf);
        return sf_fail(err, SF_E_ARG, "VAE: latent size %lldx%lld out of range", (long long)h, (long long)w);
    }
    sf_vae *v = calloc(1, sizeof *v);
    if (!v) {
        sf_tfile_destroy(&tf);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    v->wt.file = tf;
    v->cfg.threads = threads > 0 ? threads : sf_cpu_count();
    if ((s = infer_config(v, err)) != SF_OK) goto fail;
    if ((s = load_weights(v, err)) != SF_OK) goto fail;
    v->st.h = h;
    v->st.w = w;
    if (cpu_state && (s = plan_state(v, 0, err)) != SF_OK) goto fail;
    if (cpu_state && (s = plan_state(v, 1, err)) != SF_OK) goto fail;
    if (cpu_state && (s = sf_scratch_init(&v->st.ws, 1, conv_scratch(&v->cfg, w), err)) != SF_OK) goto fail;
    sf_vae_reset(v);
    *out = v;
    return SF_OK;
fail:
    sf_vae_destroy(&v);
    return s;
}

void sf_vae_weights_free(sf_vae_weights *W) {
    for (size_t i = 0; i < W->n_copies; i++) sf_tensor_free(&W->copies[i]);
    free(W->copies);
    W->copies = NULL;
    W->n_copies = W->cap_copies = 0;
    sf_tfile_destroy(&W->file);
}

void sf_vae_destroy(sf_vae **vp) {
    if (!vp || !*vp) return;
    sf_vae *v = *vp;
    sf_vae_state *S = &v->st;
    for (int i = 0; S->cache && i < S->n_caches; i++) free(S->cache[i]);
    free(S->cache);
    free(S->cache_frame);
    for (int b = 0; b < 3; b++) free(S->buf[b]);
    free(S->up);
    free(S->attn);
    free(S->zin);
    sf_scratch_free(&S->ws);
    sf_vae_weights_free(&v->wt);
    free(v);
    *vp = NULL;
}

void sf_vae_set_tap(sf_vae *v, sf_vae_tap_fn fn, void *ctx) {
    v->tap = fn;
    v->tap_ctx = ctx;
}

int64_t sf_vae_frames_for(const sf_vae *v, int64_t n) {
    if (n <= 0) return 0;
    int64_t per = (int64_t)1 << v->cfg.n_up3d;
    return v->st.frames_in == 0 ? 1 + per * (n - 1) : per * n;
}

/* ---- decoding ---------------------------------------------------------------------------- */

/* Causal conv over n frames x [n, cin, H, W] with cache slot r->slot (kt = 3), then cache push. */
sf_status sf_vae_cached_conv(sf_vae_convs *r, const float *x, int64_t n, int64_t cin, int64_t cout, int64_t H,
                             int64_t W, int kk, const float *w, const float *b, float *out, sf_err *err) {
    const float *fr[MAX_CHUNK + 2];
    size_t fe = (size_t)(cin * H * W);
    if (sf_stopped()) return sf_stop_err(err); /* a stop signal is honoured per conv chunk */
    if (r->slot >= r->n_caches || r->cache_frame[r->slot] != fe || n > MAX_CHUNK)
        return sf_fail(err, SF_E_ARG, "VAE: internal cache mismatch at slot %d", r->slot);
    float *cache = r->cache[r->slot];
    sf_status s;
    if (r->first_w) { /* zero history: the last temporal tap alone (the same sums without their 0·w terms) */
        const size_t kk2 = (size_t)kk * (size_t)kk, per = (size_t)cin * kk2;
        for (int64_t co = 0; co < cout; co++)
            for (int64_t ci = 0; ci < cin; ci++)
                memcpy(r->first_w + (size_t)co * per + (size_t)ci * kk2, w + ((size_t)co * per + (size_t)ci * kk2) * 3 + 2 * kk2,
                       kk2 * sizeof(float));
        for (int64_t i = 0; i < n; i++) fr[i] = x + (size_t)i * fe;
        sf_conv3d_args a = {fr, n, cin, cout, H, W, 1, kk, kk, r->first_w, b, out, r->threads, r->ws, 1};
        s = sf_conv3d_cpu(&a, err);
    } else {
        fr[0] = cache;
        fr[1] = cache + fe;
        for (int64_t i = 0; i < n; i++) fr[2 + i] = x + (size_t)i * fe;
        sf_conv3d_args a = {fr, n, cin, cout, H, W, 3, kk, kk, w, b, out, r->threads, r->ws, 1};
        s = sf_conv3d_cpu(&a, err);
    }
    if (s != SF_OK) return s;
    sf_conv3d_cache_push(cache, 2, x, n, fe);
    r->slot++;
    return SF_OK;
}

/* Per-frame conv without temporal context (kt = 1): pointwise or 3×3. */
sf_status sf_vae_frame_conv_strided(const sf_vae_convs *r, const float *x, int64_t n, int64_t cin, int64_t cout,
                                    int64_t H, int64_t W, int kk, int stride, const float *w, const float *b,
                                    float *out, sf_err *err) {
    const float *fr[MAX_CHUNK];
    if (sf_stopped()) return sf_stop_err(err);
    if (n > MAX_CHUNK) return sf_fail(err, SF_E_ARG, "VAE: too many frames in one chunk");
    for (int64_t i = 0; i < n; i++) fr[i] = x + (size_t)i * (size_t)(cin * H * W);
    sf_conv3d_args a = {fr, n, cin, cout, H, W, 1, kk, kk, w, b, out, r->threads, r->ws, stride};
    return sf_conv3d_cpu(&a, err);
}

sf_status sf_vae_frame_conv(const sf_vae_convs *r, const float *x, int64_t n, int64_t cin, int64_t cout, int64_t H,
                            int64_t W, int kk, const float *w, const float *b, float *out, sf_err *err) {
    return sf_vae_frame_conv_strided(r, x, n, cin, cout, H, W, kk, 1, w, b, out, err);
}

#define SWAP(p, q)                                                                                           \
    do {                                                                                                     \
        float *t_ = p;                                                                                       \
        p = q;                                                                                               \
        q = t_;                                                                                              \
    } while (0)
#define TRY(e)                                                                                               \
    do {                                                                                                     \
        if ((s = (e)) != SF_OK) return s;                                                                    \
    } while (0)
#define TAP(nm, ptr)                                                                                         \
    do {                                                                                                     \
        if (v->tap) v->tap(v->tap_ctx, nm, li, ptr, n, C, H, W);                                            \
    } while (0)

/* ResidualBlock: A [n, cin, H, W] → A [n, cout, H, W] = conv_b(silu(rms(conv_a(silu(rms(x)))))) + shortcut(x),
 * two cache slots; B and X are scratch of the same size (the three pointers are permuted). */
sf_status sf_vae_res_block(sf_vae_convs *r, const sf_vae_layer *L, const sf_vae_lw *w, float **pA, float **pB,
                           float **pX, int64_t n, int64_t H, int64_t W, sf_err *err) {
    float *A = *pA, *B = *pB, *X = *pX;
    const int64_t HW = H * W;
    sf_status s;
    sf_vae_rms_norm_cpu(A, B, n, L->cin, HW, w->g0, NULL, 1, r->threads);
    TRY(sf_vae_cached_conv(r, B, n, L->cin, L->cout, H, W, 3, w->wa, w->ba, X, err));
    sf_vae_rms_norm_cpu(X, X, n, L->cout, HW, w->g1, NULL, 1, r->threads);
    TRY(sf_vae_cached_conv(r, X, n, L->cout, L->cout, H, W, 3, w->wb, w->bb, B, err));
    if (w->wsc) {
        TRY(sf_vae_frame_conv(r, A, n, L->cin, L->cout, H, W, 1, w->wsc, w->bsc, X, err));
        sf_vae_add_cpu(B, X, n * L->cout * HW);
    } else {
        sf_vae_add_cpu(B, A, n * L->cout * HW);
    }
    *pA = B;
    *pB = A;
    return SF_OK;
}

/* AttentionBlock, per frame: A ← A + proj(attn(to_qkv(rms(A)))); B, X scratch (3·C per frame in X). */
sf_status sf_vae_attn_block(sf_vae_convs *r, const sf_vae_lw *w, float **pA, float **pB, float **pX, int64_t n,
                            int64_t C, int64_t H, int64_t W, sf_err *err) {
    float *A = *pA, *B = *pB, *X = *pX;
    const int64_t HW = H * W;
    sf_status s;
    sf_vae_rms_norm_cpu(A, B, n, C, HW, w->g, NULL, 0, r->threads);
    TRY(sf_vae_frame_conv(r, B, n, C, 3 * C, H, W, 1, w->wqkv, w->bqkv, X, err));
    if (sf_vae_attention_cpu(X, B, n, C, HW, r->attn, r->threads))
        return sf_fail(err, SF_E_NOMEM, "VAE: out of memory for the attention's work memory");
    TRY(sf_vae_frame_conv(r, B, n, C, C, H, W, 1, w->wproj, w->bproj, X, err));
    sf_vae_add_cpu(X, A, n * C * HW);
    *pA = X;
    *pX = A;
    return SF_OK;
}

/* Decode latent frame `zf` [z, h, w] (scaled) into v->st.buf: returns the buffer holding the
 * decoder output [*n_out, 3, 8h, 8w]. */
static sf_status decode_frame(sf_vae *v, const float *zf, float **res, int64_t *n_out, sf_err *err) {
    const sf_vae_config *c = &v->cfg;
    const sf_vae_weights *Wt = &v->wt;
    sf_vae_state *S = &v->st;
    const int64_t li = S->frames_in;
    int64_t n = 1, C = c->z_dim, H = S->h, W = S->w;
    float *A = S->buf[0], *B = S->buf[1], *X = S->buf[2];
    sf_vae_convs r = {S->cache, S->cache_frame, S->n_caches, 0, c->threads, &S->ws, S->attn, NULL};
    sf_status s;

    /* un-scale (kernels/vae_ops.h: float32 z / (1/std) + mean, or the bf16 pipeline's rounding) */
    float mr[2 * 4096];
    sf_vae_unscale_consts(sf_vae_latent_mean, sf_vae_latent_std, C, c->bf16_unscale, mr);
    sf_vae_unscale_cpu(zf, C, H * W, mr, c->bf16_unscale, A);
    TAP("latent_unscaled", A);
    TRY(sf_vae_frame_conv(&r, A, 1, C, C, H, W, 1, Wt->conv2_w, Wt->conv2_b, B, err));
    SWAP(A, B);
    TAP("decoder_in", A);
    TRY(sf_vae_cached_conv(&r, A, n, C, c->top, H, W, 3, Wt->conv1_w, Wt->conv1_b, B, err));
    SWAP(A, B);
    C = c->top;
    TAP("decoder.conv1", A);

    for (int i = 0; i < c->n_layers; i++) {
        const sf_vae_layer *L = &c->layers[i];
        const sf_vae_lw *w = &Wt->layer[i];
        const int64_t HW = H * W;
        switch (L->kind) {
        case SF_VAE_RES: TRY(sf_vae_res_block(&r, L, w, &A, &B, &X, n, H, W, err)); break;
        case SF_VAE_ATTN: TRY(sf_vae_attn_block(&r, w, &A, &B, &X, n, C, H, W, err)); break;
        case SF_VAE_UP3D:
            if (!S->up3d_seen[i]) {
                S->up3d_seen[i] = 1; /* 'Rep': latent frame 0 skips time_conv, its cache stays zero */
                r.slot++;
            } else {
                TRY(sf_vae_cached_conv(&r, A, n, C, 2 * C, H, W, 1, w->wtc, w->btc, B, err));
                sf_vae_time_interleave_cpu(B, B, n, C, HW); /* [n, 2C] ≡ [2n, C] */
                SWAP(A, B);
                n *= 2;
            }
            /* fall through */
        case SF_VAE_UP2D:
            for (int64_t f = 0; f < n; f++) {
                sf_vae_upsample2x_cpu(A + f * C * HW, S->up, 1, C, H, W);
                TRY(sf_vae_frame_conv(&r, S->up, 1, C, L->cout, 2 * H, 2 * W, 3, w->wrs, w->brs, B + f * L->cout * 4 * HW,
                               err));
            }
            SWAP(A, B);
            H *= 2;
            W *= 2;
            break;
        }
        C = L->cout;
        TAP(L->prefix, A);
    }
    sf_vae_rms_norm_cpu(A, B, n, C, H * W, Wt->head_g, NULL, 1, c->threads);
    TRY(sf_vae_cached_conv(&r, B, n, C, c->out_ch, H, W, 3, Wt->head_w, Wt->head_b, X, err));
    C = c->out_ch;
    TAP("decoder.head", X);
    S->frames_in++;
    *res = X;
    *n_out = n;
    return SF_OK;
}

sf_status sf_vae_decode(sf_vae *v, const float *z, int64_t n, float *video, uint8_t *u8, int64_t *n_out,
                        sf_err *err) {
    sf_status s = SF_OK;
    const int64_t zf = v->cfg.z_dim * v->st.h * v->st.w;
    int64_t done = 0;
    *n_out = 0;
    if (n < 0 || !z) return sf_fail(err, SF_E_ARG, "VAE decode: bad arguments");
    if (!v->st.buf[0]) return sf_fail(err, SF_E_ARG, "VAE decode: opened without the CPU decoder's state");
    for (int64_t t = 0; t < n; t++) {
        float *res;
        int64_t nf;
        TRY(decode_frame(v, z + t * zf, &res, &nf, err));
        const int64_t Ho = v->st.h << v->cfg.n_up, Wo = v->st.w << v->cfg.n_up, P = Ho * Wo;
        for (int64_t f = 0; f < nf; f++) {
            const float *src = res + f * 3 * P;
            if (video) sf_vae_to_pixels_cpu(src, 3 * P, video + (done + f) * 3 * P, NULL);
            if (u8) {
                uint8_t *d = u8 + (done + f) * 3 * P;
                for (int64_t ch = 0; ch < 3; ch++)
                    for (int64_t p = 0; p < P; p++) sf_vae_to_pixels_cpu(src + ch * P + p, 1, NULL, d + p * 3 + ch);
            }
        }
        done += nf;
        *n_out = done;
    }
    return s;
}
