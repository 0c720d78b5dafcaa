/* vae_gpu.c — the pieces of the Wan VAE's GPU halves that the decoder (vae_cuda.c) and the encoder
 * (vae_enc_cuda.c) share: uploads, the causal caches on the shared stage, cuDNN / cuBLASLt convs, the
 * ResidualBlock and the AttentionBlock (see vae_gpu.h). Plain C over the C-callable CUDA ops, so a
 * CPU-only build compiles it against stubs. Tested through test_vae_emu / test_vae_encode_emu and their
 * GPU builds. */
#define _POSIX_C_SOURCE 200809L
#include "vae_gpu.h"
#include "stop.h"
#include "vae_ops_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sf_vgpu_prof(sf_vgpu *d, int cat, double flops) { sf_gpu_prof_mark_flops(&d->prof, &d->cx, cat, flops); }

sf_status sf_vgpu_alloc(sf_vgpu *d, void **p, size_t bytes, sf_err *err) {
    sf_status s = sf_cuda_malloc(p, bytes, err);
    if (s == SF_OK) d->bytes += bytes;
    return s;
}

sf_status sf_vgpu_up_f32(sf_vgpu *d, float **dst, const float *h, size_t n, sf_err *err) {
    sf_status s = sf_vgpu_alloc(d, (void **)dst, n * sizeof(float), err);
    return s ? s : sf_cuda_upload_f32(&d->cx, *dst, h, n, err);
}

sf_status sf_vgpu_up_conv(sf_vgpu *d, sf_vconv *c, const float *w, const float *b, int64_t cin, int64_t cin_pad,
                          int64_t cout, int64_t cout_pad, int kt, int k, sf_err *err) {
    const int64_t K = (int64_t)kt * k * k;
    const size_t nw = (size_t)(cout_pad * K * cin_pad);
    float *h = calloc(nw + (size_t)cout_pad, sizeof(float));
    sf_status s;
    if (!h) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int64_t co = 0; co < cout; co++)
        for (int64_t ci = 0; ci < cin; ci++)
            for (int64_t r = 0; r < K; r++) h[(co * K + r) * cin_pad + ci] = w[(co * cin + ci) * K + r];
    for (int64_t co = 0; co < cout; co++) h[nw + co] = b ? b[co] : 0.0f;
    c->cin = cin_pad, c->cout = cout_pad, c->kt = kt, c->k = k;
    if (!(s = sf_vgpu_alloc(d, &c->w, nw * 2, err)) && !(s = sf_vgpu_alloc(d, &c->b, (size_t)cout_pad * 2, err)) &&
        !(s = sf_cuda_upload_bf16(&d->cx, c->w, h, nw, err)))
        s = sf_cuda_upload_bf16(&d->cx, c->b, h + nw, (size_t)cout_pad, err);
    free(h);
    return s;
}

sf_status sf_vgpu_up_block(sf_vgpu *d, sf_vlayer *dst, const sf_vae_layer *L, const sf_vae_lw *w, int is_attn, sf_err *err) {
    const int64_t ci = L->cin, co = L->cout;
    sf_status s;
    if (is_attn) {
        if ((s = sf_vgpu_up_f32(d, &dst->g0, w->g, (size_t)ci, err)) ||
            (s = sf_vgpu_up_conv(d, &dst->qkv, w->wqkv, w->bqkv, ci, ci, 3 * ci, 3 * ci, 1, 1, err)) ||
            (s = sf_vgpu_up_conv(d, &dst->proj, w->wproj, w->bproj, ci, ci, ci, ci, 1, 1, err)))
            return s;
        return SF_OK;
    }
    if ((s = sf_vgpu_up_f32(d, &dst->g0, w->g0, (size_t)ci, err)) || (s = sf_vgpu_up_f32(d, &dst->g1, w->g1, (size_t)co, err)) ||
        (s = sf_vgpu_up_conv(d, &dst->a, w->wa, w->ba, ci, ci, co, co, 3, 3, err)) ||
        (s = sf_vgpu_up_conv(d, &dst->b, w->wb, w->bb, co, co, co, co, 3, 3, err)) ||
        (w->wsc && (s = sf_vgpu_up_conv(d, &dst->sc, w->wsc, w->bsc, ci, ci, co, co, 1, 1, err))))
        return s;
    return SF_OK;
}

static void free_conv(sf_vconv *c) {
    sf_cuda_free(c->w);
    sf_cuda_free(c->b);
}

void sf_vgpu_layer_free(sf_vlayer *w) {
    free_conv(&w->a), free_conv(&w->b), free_conv(&w->sc), free_conv(&w->qkv), free_conv(&w->proj);
    free_conv(&w->tc), free_conv(&w->rs);
    sf_cuda_free(w->g0), sf_cuda_free(w->g1);
}

sf_status sf_vgpu_caches_new(sf_vgpu *d, const sf_vcache *list, int n, size_t stage_e, sf_err *err) {
    sf_status s;
    if (!(d->cache = calloc((size_t)(n ? n : 1), sizeof *d->cache))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    d->n_caches = n;
    for (int i = 0; i < n; i++) {
        d->cache[i] = list[i];
        d->cache[i].buf = NULL;
        if ((s = sf_vgpu_alloc(d, &d->cache[i].buf, 2 * list[i].fe * 2, err))) return s;
        d->cache_bytes += 2 * list[i].fe * 2;
    }
    if (stage_e && (s = sf_vgpu_alloc(d, &d->stage, stage_e * 2, err))) return s;
    d->cache_bytes += stage_e * 2;
    return SF_OK;
}

sf_status sf_vgpu_caches_zero(sf_vgpu *d, sf_err *err) {
    sf_status s;
    for (int i = 0; i < d->n_caches; i++)
        if ((s = sf_cuda_memset(&d->cx, d->cache[i].buf, 0, 2 * d->cache[i].fe * 2, err))) return s;
    return SF_OK;
}

void sf_vgpu_free(sf_vgpu *d) {
    sf_err e2 = {{0}};
    if (d->cx.stream) sf_cuda_sync(&d->cx, &e2);
    for (int i = 0; d->cache && i < d->n_caches; i++) sf_cuda_free(d->cache[i].buf);
    free(d->cache);
    d->cache = NULL;
    sf_cuda_free(d->stage);
    sf_conv_cudnn_destroy(&d->conv);
    sf_gpu_prof_free(&d->prof);
    sf_cuda_ctx_free(&d->cx);
}

void *sf_vgpu_slot_in(sf_vgpu *d, int slot) { return SF_BF(d->stage, 2 * d->cache[slot].fe); }

sf_status sf_vgpu_conv_frames(sf_vgpu *d, sf_conv_shape sh, const sf_vconv *c, int64_t n, const void *x, size_t xe,
                              const void *res, void *y, sf_err *err) {
    const int64_t sd = sh.down ? 2 : 1;
    const size_t oe = (size_t)((sh.h / sd) * (sh.w / sd) * sh.cout);
    sf_status s;
    sf_vgpu_prof(d, SF_VG_CONV, 2.0 * (double)(n * (int64_t)oe) * (double)(c->cin * c->kt * c->k * c->k));
    if (n > 1 && c->tb == n) {
        sh.t_out = n;
        return sf_conv_cudnn_forward(d->conv, &sh, x, c->w, c->b, res, y, err);
    }
    for (int64_t t = 0; t < n; t++)
        if ((s = sf_conv_cudnn_forward(d->conv, &sh, SF_BF(x, (size_t)t * xe), c->w, c->b,
                                       res ? SF_BF(res, (size_t)t * oe) : NULL, SF_BF(y, (size_t)t * oe), err)))
            return s;
    return SF_OK;
}

sf_status sf_vgpu_cached_conv(sf_vgpu *d, int *slot, const sf_vconv *c, int64_t n, int64_t H, int64_t W,
                              const void *res, void *out, sf_err *err) {
    sf_status s;
    if (sf_stopped()) return sf_stop_err(err); /* a stop signal is honoured per conv chunk */
    if (*slot >= d->n_caches || d->cache[*slot].fe != (size_t)(c->cin * H * W) || n > d->cache[*slot].nmax)
        return sf_fail(err, SF_E_ARG, "VAE (cuda): internal cache mismatch at slot %d", *slot);
    sf_vcache *cb = &d->cache[*slot];
    const size_t fe = cb->fe;
    /* the input is the n + kt − 1 frames from the stage's start: [cache0, cache1, x0 .. x(n-1)] */
    sf_vgpu_prof(d, SF_VG_CACHE, 0);
    if ((s = sf_cuda_copy_d2d(&d->cx, d->stage, cb->buf, 2 * fe * 2, err))) return s;
    sf_conv_shape sh = {c->cin, c->cout, H, W, 1, c->kt, c->k, 1, res != NULL, 0};
    if ((s = sf_vgpu_conv_frames(d, sh, c, n, d->stage, fe, res, out, err))) return s;
    /* cache = frames n, n+1 of the stage (the conv is enqueued first; one stream orders them) */
    sf_vgpu_prof(d, SF_VG_CACHE, 0);
    if ((s = sf_cuda_copy_d2d(&d->cx, cb->buf, SF_BF(d->stage, (size_t)n * fe), 2 * fe * 2, err))) return s;
    (*slot)++;
    return SF_OK;
}

sf_status sf_vgpu_pointwise(sf_vgpu *d, const sf_vconv *c, int64_t P, const void *x, void *y, sf_err *err) {
    sf_vgpu_prof(d, SF_VG_POINT, 2.0 * (double)P * (double)c->cout * (double)c->cin);
    return sf_linear_cuda(&d->cx, P, c->cout, c->cin, x, c->cin, c->w, c->b, y, c->cout, err);
}

sf_status sf_vflight_init(sf_vflight *f, const char *who, size_t zf, size_t fv, int64_t nmax, const uint8_t *u8_d,
                          const float *video_d, sf_err *err) {
    sf_status s;
    memset(f, 0, sizeof *f);
    f->who = who, f->zf = zf, f->fv = fv, f->nmax = nmax, f->u8_d = u8_d, f->video_d = video_d;
    if ((s = sf_cuda_events_new(&f->ev, 2, err))) return s;
    for (int k = 0; k < 2; k++)
        if ((s = sf_cuda_host_alloc((void **)&f->zin_h[k], zf * sizeof(float), err)) ||
            (s = sf_cuda_host_alloc((void **)&f->u8_h[k], (size_t)nmax * fv, err)))
            return s;
    return SF_OK;
}

void sf_vflight_free(sf_vflight *f) {
    for (int k = 0; k < 2; k++) sf_cuda_host_free(f->zin_h[k]), sf_cuda_host_free(f->u8_h[k]), sf_cuda_host_free(f->video_h[k]);
    if (f->ev) sf_cuda_events_free(f->ev, 2);
    memset(f, 0, sizeof *f);
}

sf_status sf_vflight_reset(sf_vflight *f, sf_cuda_ctx *cx, sf_err *err) {
    sf_status s;
    if (f->submitted != f->received) {
        if ((s = sf_cuda_sync(cx, err))) return s;
        f->received = f->submitted;
    }
    return SF_OK;
}

/* The decoder's work from slot k's latent frame, then its frames' copies into slot k (pinned destinations: the
 * copies are enqueued and the host goes on, so the next frame's decode can be enqueued behind them) and the
 * slot's event. */
static sf_status flight_enqueue(sf_vflight *f, sf_cuda_ctx *cx, int k, int want_video, int want_u8,
                                sf_vflight_enqueue_fn enqueue, void *ctx, sf_err *err) {
    int64_t nf = 0;
    sf_status s;
    if ((s = enqueue(ctx, f->zin_h[k], &nf, err))) return s;
    const size_t n = (size_t)nf * f->fv;
    if (want_u8 && n && (s = sf_cuda_copy_d2h_async(cx, f->u8_h[k], f->u8_d, n, err))) return s;
    if (want_video && n && (s = sf_cuda_copy_d2h_async(cx, f->video_h[k], f->video_d, n * sizeof(float), err))) return s;
    if ((s = sf_cuda_event_record(cx, f->ev, k, err))) return s;
    f->tk_frames[k] = nf, f->tk_u8[k] = want_u8, f->tk_video[k] = want_video;
    f->submitted++;
    return SF_OK;
}

sf_status sf_vflight_submit(sf_vflight *f, sf_cuda_ctx *cx, const float *z, int want_video, int want_u8,
                            sf_vflight_enqueue_fn enqueue, void *ctx, sf_err *err) {
    const int k = (int)(f->submitted % 2);
    sf_status s;
    if (!z) return sf_fail(err, SF_E_ARG, "%s: no latent frame", f->who);
    if (f->submitted - f->received >= 2)
        return sf_fail(err, SF_E_ARG, "%s: two latent frames in flight already (receive one first)", f->who);
    if (want_video && !f->video_h[k] &&
        (s = sf_cuda_host_alloc((void **)&f->video_h[k], (size_t)f->nmax * f->fv * sizeof(float), err)))
        return s;
    /* slot k's last latent frame was received: its upload and copies are done, the slot is free */
    memcpy(f->zin_h[k], z, sizeof(float) * f->zf);
    if ((s = flight_enqueue(f, cx, k, want_video, want_u8, enqueue, ctx, err))) {
        /* what was enqueued before the failure may still read slot k (the upload runs when the stream gets to
           it): the next submit reuses the slot, so nothing may be left in flight */
        sf_err e2;
        (void)sf_cuda_sync(cx, &e2);
        return s;
    }
    return SF_OK;
}

sf_status sf_vflight_receive(sf_vflight *f, float *video, uint8_t *u8, int64_t *n_out, sf_err *err) {
    const int k = (int)(f->received % 2);
    sf_status s;
    *n_out = 0;
    if (f->received == f->submitted) return sf_fail(err, SF_E_ARG, "%s: no latent frame in flight", f->who);
    if ((u8 && !f->tk_u8[k]) || (video && !f->tk_video[k]))
        return sf_fail(err, SF_E_ARG, "%s: frames asked for that were not submitted", f->who);
    if ((s = sf_cuda_event_sync(f->ev, k, err))) return s;
    const int64_t nf = f->tk_frames[k];
    if (u8) memcpy(u8, f->u8_h[k], (size_t)nf * f->fv);
    if (video) memcpy(video, f->video_h[k], sizeof(float) * (size_t)nf * f->fv);
    f->received++;
    *n_out = nf;
    return SF_OK;
}

#define TRY(e)                                                                                               \
    do {                                                                                                     \
        if ((s = (e)) != SF_OK) return s;                                                                    \
    } while (0)

/* out = conv_b(silu(rms(conv_a(silu(rms(x)))))) + shortcut(x) */
sf_status sf_vgpu_res_block(sf_vgpu *d, int *slot, const sf_vae_layer *L, const sf_vlayer *w, void **pA, void **pB,
                            void **pX, int64_t n, int64_t H, int64_t W, sf_err *err) {
    const int64_t HW = H * W;
    void *A = *pA, *B = *pB, *X = *pX;
    sf_status s;
    sf_vgpu_prof(d, SF_VG_NORM, 0);
    TRY(sf_vae_rms_norm_cuda(&d->cx, n * HW, L->cin, A, w->g0, 1, sf_vgpu_slot_in(d, *slot), err));
    TRY(sf_vgpu_cached_conv(d, slot, &w->a, n, H, W, NULL, X, err));
    sf_vgpu_prof(d, SF_VG_NORM, 0);
    TRY(sf_vae_rms_norm_cuda(&d->cx, n * HW, L->cout, X, w->g1, 1, sf_vgpu_slot_in(d, *slot), err));
    const void *r = A;
    if (w->sc.w) {
        TRY(sf_vgpu_pointwise(d, &w->sc, n * HW, A, X, err));
        r = X;
    }
    TRY(sf_vgpu_cached_conv(d, slot, &w->b, n, H, W, r, B, err));
    *pA = B, *pB = A;
    return SF_OK;
}

/* x + proj(attn(to_qkv(rms(x)))) per frame, single head d = C */
sf_status sf_vgpu_attn_block(sf_vgpu *d, const sf_vlayer *w, void **pA, void **pB, void **pX, int64_t n, int64_t C,
                             int64_t H, int64_t W, float *S, void *P, sf_err *err) {
    const int64_t HW = H * W;
    void *A = *pA, *B = *pB, *X = *pX;
    sf_status s;
    sf_vgpu_prof(d, SF_VG_NORM, 0);
    TRY(sf_vae_rms_norm_cuda(&d->cx, n * HW, C, A, w->g0, 0, B, err));
    TRY(sf_vgpu_pointwise(d, &w->qkv, n * HW, B, X, err));
    sf_vgpu_prof(d, SF_VG_ATTN, 4.0 * (double)n * (double)HW * (double)HW * (double)C);
    for (int64_t f = 0; f < n; f++) {
        const uint16_t *q = (const uint16_t *)X + (size_t)(f * HW * 3 * C);
        TRY(sf_attention_blas_cuda(&d->cx, HW, HW, 1, (int)C, q, 3 * C, q + C, q + 2 * C, 3 * C,
                                   SF_BF(B, (size_t)(f * HW * C)), C, (float)(1.0 / sqrt((double)C)), S, P, HW, NULL,
                                   NULL, err));
    }
    TRY(sf_vgpu_pointwise(d, &w->proj, n * HW, B, X, err));
    sf_vgpu_prof(d, SF_VG_NORM, 0);
    TRY(sf_vae_bias_res_cuda(&d->cx, n * HW, C, X, NULL, A, err));
    *pA = X, *pX = A;
    return SF_OK;
}
