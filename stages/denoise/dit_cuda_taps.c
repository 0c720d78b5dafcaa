/* dit_cuda_taps.c — the CUDA DiT's attention call (cuDNN's fused attention, else the explicit cuBLASLt
 * path) and what the attention taps need on the device: the explicit path's workspace, the logits
 * copied out chunk by chunk, the probability masses (fused with the attention, attn_mass_cuda.h, or
 * from the explicit path's chunks, tap_mass_cuda.h), the frames-mode aggregate made from per-frame
 * means and its delivery at the forward's end. Internals: dit_cuda_impl.h. Tested with the forward by
 * tests/unit/test_dit_cuda.c (taps_*: against the CPU backend and the goldens). */
#define _POSIX_C_SOURCE 200809L
#include "dit_cuda_impl.h"

#include "attention.h"
#include "rng.h"
#include "tap_mass.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The explicit attention's workspace, made on first use (taps, or no cuDNN plan for a shape): the
 * fused path never needs it. */
sf_status sf_dgpu_explicit_ws(sf_dit_gpu *g, int heads, sf_err *err) {
    if (g->S) return SF_OK;
    if (g->capturing) /* an allocation would break the capture: the forward runs directly and makes it */
        return sf_fail(err, SF_E_UNSUPPORTED, "the explicit attention's workspace is made outside a CUDA graph");
    size_t n = (size_t)heads * (size_t)g->chunk * (size_t)g->lk_max;
    sf_status s = sf_cuda_malloc((void **)&g->S, n * 4, err);
    if (!s) s = sf_cuda_malloc((void **)&g->P, n * 2, err);
    if (!s) s = sf_cuda_malloc((void **)&g->S16, n * 2, err);
    if (s) { /* all or nothing: a later call must not find S and take the set as made */
        sf_cuda_free(g->S), sf_cuda_free(g->P), sf_cuda_free(g->S16);
        g->S = NULL, g->P = NULL, g->S16 = NULL;
        return s;
    }
    g->state_bytes += n * 8;
    return SF_OK;
}

/* Logits tap: one chunk of logits to the host (tapcopy, dit_cuda_impl.h). */
sf_status sf_dgpu_tap_chunk(void *ctx, int64_t r0, int64_t rows, const float *S, sf_err *err) {
    tapcopy *t = ctx;
    if (t->host16) {
        size_t w = (size_t)(rows * t->Lk) * sizeof(uint16_t);
        sf_status s = sf_f32_to_f16_cuda(&t->g->cx, S, t->g->S16, (int64_t)t->H * rows * t->Lk, err);
        return s ? s : sf_cuda_copy_d2h_2d(&t->g->cx, t->host16 + r0 * t->Lk, (size_t)(t->Lq * t->Lk) * sizeof(uint16_t),
                                           t->g->S16, w, w, (size_t)t->H, err);
    }
    size_t w = (size_t)(rows * t->Lk) * sizeof(float);
    return sf_cuda_copy_d2h_2d(&t->g->cx, t->host + r0 * t->Lk, (size_t)(t->Lq * t->Lk) * sizeof(float), S, w, w,
                               (size_t)t->H, err);
}

/* Probability taps: one chunk's per-row masses (sf_tap_row_mass_cuda; massrun, dit_cuda_impl.h). */
sf_status sf_dgpu_mass_chunk(void *ctx, int64_t r0, int64_t rows, const float *S, sf_err *err) {
    const massrun *m = ctx;
    return sf_tap_row_mass_cuda(&m->g->cx, m->H, rows, r0, m->Lq, m->Lk, S, m->Lk, m->G, m->NG, m->g->tm_rm,
                                m->g->tm_lse, err);
}

/* The probability taps' buffers, made once (sf_dit_prepare, or the first tapped layer). */
sf_status sf_dgpu_mass_ws(sf_dit_state *st, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    if (g->tm_rm) return SF_OK;
    const int64_t H = st->w->cfg.num_heads, L = (int64_t)st->max_frames * st->frame_tokens, F = st->max_frames;
    const int64_t kf = g->lk_max / st->frame_tokens, T = st->w->cfg.text_len;
    g->tm_self_ng = sf_dgpu_mass_groups(st, g->lk_max, NULL);
    if (g->tm_self_ng < kf) g->tm_self_ng = kf;
    g->tm_ng = g->tm_self_ng > T ? g->tm_self_ng : T;
    size_t rows = (size_t)(H * L), agg = (size_t)(H * F);
    sf_status s = sf_cuda_malloc((void **)&g->tm_rm, rows * (size_t)g->tm_ng * 4, err);
    if (!s) s = sf_cuda_malloc((void **)&g->tm_lse, rows * 4, err);
    if (!s) s = sf_cuda_malloc((void **)&g->tm_tot, rows * 8, err);
    if (!s) s = sf_cuda_malloc((void **)&g->tm_out, agg * (size_t)g->tm_ng * 4, err);
    if (!s) s = sf_cuda_malloc((void **)&g->tm_st, agg * SF_TAP_NSTATS * 4, err);
    g->tap_pmass_per = agg * ((size_t)g->tm_self_ng + SF_TAP_NSTATS);
    if (!s)
        s = sf_cuda_host_alloc((void **)&g->tap_pmass, (size_t)st->w->cfg.num_layers * g->tap_pmass_per * sizeof(float), err);
    if (!s && (!(g->tm_hout = malloc(agg * (size_t)g->tm_ng * sizeof(float))) ||
               !(g->tm_hst = malloc(agg * SF_TAP_NSTATS * sizeof(float)))))
        s = sf_fail(err, SF_E_NOMEM, "out of memory (attention probability tap)");
    if (s) { /* all or nothing: a later call must not find tm_rm and take the set as made */
        sf_cuda_free(g->tm_rm), sf_cuda_free(g->tm_lse), sf_cuda_free(g->tm_tot), sf_cuda_free(g->tm_out);
        sf_cuda_free(g->tm_st), sf_cuda_host_free(g->tap_pmass), free(g->tm_hout), free(g->tm_hst);
        g->tm_rm = g->tm_lse = g->tm_out = g->tm_st = NULL, g->tm_tot = NULL, g->tap_pmass = NULL;
        g->tm_hout = g->tm_hst = NULL;
        return s;
    }
    g->state_bytes += rows * ((size_t)g->tm_ng * 4 + 12) + agg * ((size_t)g->tm_ng + SF_TAP_NSTATS) * 4;
    return SF_OK;
}

/* Where a layer's probs stats start in its tap_pmass slot: after the largest aggregate (H, F, tm_self_ng). */
static size_t pmass_stats_at(const sf_dit_state *st) {
    return (size_t)st->w->cfg.num_heads * (size_t)st->max_frames * (size_t)st->gpu->tm_self_ng;
}

/* The self-attention's mass groups for a window of Lk keys, as the tap asks (taps.c mass_groups): key frames
 * (G = S, NG = Lk / S) unless it wants single tokens of the first key slots (G = 1). Returns NG; *G if G is set. */
int64_t sf_dgpu_mass_groups(const sf_dit_state *st, int64_t Lk, int64_t *G) {
    const int64_t S = st->frame_tokens;
    int64_t g = S, ng = S > 0 ? Lk / S : 0;
    if (st->tap.mass_groups) st->tap.mass_groups(st->tap.ctx, Lk, S, &g, &ng);
    if (G) *G = g;
    return ng;
}

/* After the attention: the per-frame aggregates (H, Lq/S, NG) and stats, copied to the host buffers —
 * now (slot < 0), or enqueued into layer slot's part of the pinned tap_pmass, for sf_dgpu_tap_flush
 * (self-attention only: NG ≤ Lk_max / S). */
sf_status sf_dgpu_mass_finish(sf_dit_state *st, const massrun *m, int renorm, int slot, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const int64_t S = st->frame_tokens, n = (int64_t)m->H * (m->Lq / S);
    sf_status s = sf_tap_mass_reduce_cuda(&g->cx, m->H, m->Lq, m->NG, S, renorm, g->tm_rm, g->tm_lse, g->tm_tot,
                                          g->tm_out, g->tm_st, err);
    if (slot >= 0) {
        float *dst = g->tap_pmass + (size_t)slot * g->tap_pmass_per;
        if (!s) s = sf_cuda_copy_d2h_async(&g->cx, dst, g->tm_out, sizeof(float) * (size_t)(n * m->NG), err);
        if (!s) s = sf_cuda_copy_d2h_async(&g->cx, dst + pmass_stats_at(st), g->tm_st, sizeof(float) * (size_t)(n * SF_TAP_NSTATS), err);
        return s;
    }
    if (!s) s = sf_cuda_download_f32(&g->cx, g->tm_hout, g->tm_out, (size_t)(n * m->NG), err);
    if (!s) s = sf_cuda_download_f32(&g->cx, g->tm_hst, g->tm_st, (size_t)(n * SF_TAP_NSTATS), err);
    return s;
}

/* Attention (k, v rows of stride ldk): cuDNN's fused attention when possible, else our own fused kernel
 * (attn_mass.cu without groups: no logits workspace), else the explicit cuBLASLt path — always explicit
 * for a tap that reads each chunk's logits (on_logits non-NULL). A path that refuses a shape is left
 * for the rest of the run, said once. */
sf_status sf_dgpu_attend(sf_dit_gpu *g, int64_t Lq, int64_t Lk, int H, int d, const bf16 *q, const bf16 *k,
                        const bf16 *v, int64_t ldk, bf16 *o, int64_t ld, float scale, sf_attn_logits_fn on_logits,
                        void *cb, sf_err *err) {
    if (!on_logits && g->sdpa && !g->sdpa_off) {
        sf_err e2 = {0};
        sf_status s = sf_sdpa_forward(g->sdpa, Lq, Lk, H, d, q, ld, k, v, ldk, o, ld, scale, &e2);
        if (s == SF_OK) return SF_OK;
        if (s != SF_E_UNSUPPORTED) {
            *err = e2;
            return s;
        }
        sf_log(SF_LOG_WARN, "sf-denoise: %s; attention uses %s from here on", e2.msg,
               g->own_attn_off ? "cuBLASLt" : "sfpipe's fused kernel");
        g->sdpa_off = 1;
    }
    int own = 0;
    sf_status so = on_logits ? SF_OK : sf_dgpu_fused_ok(g, d, &own, err);
    if (so) return so;
    if (own) {
        sf_err e2 = {0};
        sf_status s = sf_attn_mass_cuda(&g->cx, Lq, Lk, H, d, q, ld, k, v, ldk, o, ld, scale, 1, 0, NULL, NULL, &e2);
        if (s != SF_E_UNSUPPORTED) {
            if (s) *err = e2;
            return s;
        }
        sf_log(SF_LOG_WARN, "sf-denoise: %s; attention uses cuBLASLt from here on", e2.msg);
        g->own_attn_off = 1;
    }
    sf_status s = sf_dgpu_explicit_ws(g, H, err);
    if (s) return s;
    return sf_attention_blas_cuda(&g->cx, Lq, Lk, H, d, q, ld, k, v, ldk, o, ld, scale, g->S, g->P, g->chunk,
                                  on_logits, cb, err);
}

/* sfpipe's fused attention (attn_mass.cu, or attn_mass_wg.cu / attn_mass_ws.cu when asked for) checked once
 * per state, on this GPU, before a run relies on it: 80 queries × 600 keys of one head of d (10 key tiles:
 * the warp-specialised kernel's ring of 4 stages wraps twice), groups of 200, against
 * sf_attention_cpu and sf_tap_row_mass_cpu on the same bf16 values (O within 2 % of its largest value,
 * masses 1e-3, lse 1e-3 relative: generous for bf16 and the GPU's exp2, far below what a wrong fragment
 * layout or a kernel that did not run gives). A failure is said once with the first bad value and
 * max |Δ|, and the run falls back to cuDNN / the explicit path (own_attn_off, mass_explicit): returns 0.
 * But a kernel that faults (an illegal address or instruction) takes the GPU context with it, and no
 * other path can stand in: then −1, with err saying so (and how to run without the kernel). */
static int fused_selfcheck(sf_dit_gpu *g, int d, sf_err *err) {
    enum { LQ = 80, LK = 600, GS = 200, NG = 3 };
    const float scale = 1.0f / sqrtf((float)d);
    const size_t nq = (size_t)LQ * d, nkv = (size_t)LK * 2 * d;
    /* host: q, [k | v], O (CPU, GPU), the logits, masses (CPU, GPU), lse (CPU, GPU) */
    float *h = malloc(sizeof(float) * (nq + nkv + 2 * nq + (size_t)LQ * LK + 2 * (size_t)LQ * NG + 2 * LQ));
    void *dq = NULL, *dkv = NULL, *dout = NULL;
    float *drm = NULL, *dl = NULL;
    sf_err e = {{0}};
    int ok = 0;
    if (sf_cuda_alive(&g->cx, &e) != SF_OK) { /* lost before: not the kernel's doing */
        sf_fail(err, SF_E_DEVICE, "sfpipe's fused attention cannot be checked: %s", e.msg);
        free(h);
        return -1;
    }
    if (!h) sf_fail(&e, SF_E_NOMEM, "out of memory");
    if (!h || sf_cuda_malloc(&dq, nq * 2, &e) || sf_cuda_malloc(&dkv, nkv * 2, &e) || sf_cuda_malloc(&dout, nq * 2, &e) ||
        sf_cuda_malloc((void **)&drm, (size_t)LQ * NG * 4, &e) || sf_cuda_malloc((void **)&dl, (size_t)LQ * 4, &e))
        goto done;
    float *q = h, *kv = q + nq, *oref = kv + nkv, *og = oref + nq, *lg = og + nq, *rm = lg + (size_t)LQ * LK,
          *rmg = rm + (size_t)LQ * NG, *lse = rmg + (size_t)LQ * NG, *lseg = lse + LQ;
    sf_rng rng;
    sf_rng_seed(&rng, 7);
    for (size_t i = 0; i < nq + nkv; i++) /* in [-2, 2): rows sharp enough to mean something */
        q[i] = sf_round_bf16((float)(4.0 * sf_rng_uniform(&rng) - 2.0));
    if (sf_attention_cpu(LQ, LK, 1, d, q, d, kv, kv + d, 2 * d, oref, d, scale, lg, 1)) {
        sf_fail(&e, SF_E_NOMEM, "out of memory (CPU reference)");
        goto done;
    }
    for (int r = 0; r < LQ; r++) sf_tap_row_mass_cpu(lg + (size_t)r * LK, LK, GS, NG, rm + r * NG, lse + r);
    if (sf_cuda_upload_bf16(&g->cx, dq, q, nq, &e) || sf_cuda_upload_bf16(&g->cx, dkv, kv, nkv, &e) ||
        sf_cuda_memset(&g->cx, dout, 0xFF, nq * 2, &e) || sf_cuda_memset(&g->cx, drm, 0xFF, (size_t)LQ * NG * 4, &e) ||
        sf_attn_mass_cuda(&g->cx, LQ, LK, 1, d, dq, d, dkv, (char *)dkv + (size_t)d * 2, 2 * d, dout, d, scale, GS, NG, drm,
                          dl, &e) ||
        sf_cuda_download_bf16(&g->cx, og, dout, nq, &e) || sf_cuda_download_f32(&g->cx, rmg, drm, (size_t)LQ * NG, &e) ||
        sf_cuda_download_f32(&g->cx, lseg, dl, LQ, &e) || sf_cuda_sync(&g->cx, &e))
        goto done;
    double omax = 0, worst[3] = {0, 0, 0};
    for (size_t i = 0; i < nq; i++) omax = fabs(oref[i]) > omax ? fabs(oref[i]) : omax;
    const float *got[3] = {og, rmg, lseg}, *ref[3] = {oref, rm, lse};
    const size_t n[3] = {nq, (size_t)LQ * NG, LQ};
    const double tol[3] = {2e-2 * omax, 1e-3, 1e-3};
    ok = 1;
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < n[k]; i++) {
            double dd = fabs((double)got[k][i] - ref[k][i]), lim = tol[k] * (k == 2 ? 1 + fabs(ref[k][i]) : 1);
            if (!(dd <= lim) && ok) /* NaN too: the poison a kernel that never ran leaves */
                snprintf(e.msg, sizeof e.msg, "%s[%zu] = %g, want %g", k == 0 ? "O" : k == 1 ? "mass" : "lse", i,
                         (double)got[k][i], (double)ref[k][i]), ok = 0;
            worst[k] = !(dd <= worst[k]) ? dd : worst[k];
        }
    if (!ok)
        sf_log(SF_LOG_WARN, "sf-denoise: sfpipe's fused attention failed its self-check on this GPU (%s; max |d| O %.3g, "
                            "mass %.3g, lse %.3g): attention uses cuDNN / the explicit path",
               e.msg, worst[0], worst[1], worst[2]);
    e.msg[0] = 0;
done:
    if (e.msg[0]) {
        sf_err lost = {{0}};
        if (sf_cuda_alive(&g->cx, &lost) != SF_OK) {
            sf_fail(err, SF_E_DEVICE,
                    "sfpipe's fused attention broke the GPU context in its self-check (%s; %s): rerun with "
                    "SF_NO_FUSED_ATTN=1 (cuDNN / cuBLASLt attention only)",
                    e.msg, lost.msg);
            ok = -1;
        } else {
            sf_log(SF_LOG_WARN, "sf-denoise: sfpipe's fused attention could not be checked (%s); not used", e.msg);
        }
    }
    free(h);
    sf_cuda_free(dq), sf_cuda_free(dkv), sf_cuda_free(dout), sf_cuda_free(drm), sf_cuda_free(dl);
    return ok;
}

/* Whether the fused kernel may run for head dim d (*use): checked on the first call, the answer kept.
 * The check allocates and waits, which a CUDA graph capture may not: inside one it refuses
 * (SF_E_UNSUPPORTED: the capture is dropped and the forward runs directly, where the check is made).
 * SF_E_DEVICE when the GPU context is lost: the run cannot go on. */
sf_status sf_dgpu_fused_ok(sf_dit_gpu *g, int d, int *use, sf_err *err) {
    *use = 0;
    if (g->own_attn_off) return SF_OK; /* $SF_NO_FUSED_ATTN, or found wanting before */
    if (!g->fused_checked) {
        if (g->capturing)
            return sf_fail(err, SF_E_UNSUPPORTED, "sfpipe's fused attention is checked before its first use, not in a CUDA graph");
        g->fused_checked = 1;
        const int ok = sf_attn_mass_head_dim_ok(d) ? fused_selfcheck(g, d, err) : 0;
        if (ok <= 0) g->own_attn_off = 1, g->mass_explicit = 1;
        if (ok < 0) return SF_E_DEVICE;
    }
    *use = !g->own_attn_off;
    return SF_OK;
}

/* A probability-tapped self-attention: the attention and its per-row key-frame masses in one fused pass
 * (attn_mass.cu: no logits in memory, the attention's own running max and sum), into the massrun's
 * rowmass / lse; the explicit attention + tap_mass.cu chunk by chunk when asked ($SF_TAP_PROBS_EXPLICIT)
 * or for a shape the fused kernel does not take (said once). Either way sf_dgpu_mass_finish follows. */
sf_status sf_dgpu_attend_mass(const massrun *m, int d, const bf16 *q, const bf16 *k, const bf16 *v, int64_t ldk, bf16 *o,
                             int64_t ld, float scale, sf_err *err) {
    sf_dit_gpu *g = m->g;
    int own = 0;
    sf_status so = g->mass_explicit ? SF_OK : sf_dgpu_fused_ok(g, d, &own, err);
    if (so) return so;
    if (own && m->G == 1) {
        /* tokens mode (single-token groups of the first NG keys, too many for the fused kernel to hold per row): the
           fused attention alone with its lse, then those keys' logits by one batched GEMM straight into rowmass
           (row h·Lq + r, as the reduce reads it), then exp(s − lse) — no full logits anywhere */
        sf_err e2 = {0};
        sf_status s = sf_attn_mass_cuda(&g->cx, m->Lq, m->Lk, m->H, d, q, ld, k, v, ldk, o, ld, scale, 1, 0, NULL,
                                        g->tm_lse, &e2);
        if (s == SF_OK)
            return sf_tap_token_mass_qk_cuda(&g->cx, m->H, m->Lq, m->NG, d, q, ld, k, ldk, scale, g->tm_lse, g->tm_rm, err);
        if (s != SF_E_UNSUPPORTED) {
            *err = e2;
            return s;
        }
        sf_log(SF_LOG_WARN, "sf-denoise: %s; probability taps use the explicit attention from here on", e2.msg);
        g->mass_explicit = 1;
        own = 0;
    }
    if (own) {
        sf_err e2 = {0};
        sf_status s = sf_attn_mass_cuda(&g->cx, m->Lq, m->Lk, m->H, d, q, ld, k, v, ldk, o, ld, scale, m->G, m->NG,
                                        g->tm_rm, g->tm_lse, &e2);
        if (s != SF_E_UNSUPPORTED) {
            if (s) *err = e2;
            return s;
        }
        sf_log(SF_LOG_WARN, "sf-denoise: %s; probability taps use the explicit attention from here on", e2.msg);
        g->mass_explicit = 1;
    }
    return sf_dgpu_attend(g, m->Lq, m->Lk, m->H, d, q, k, v, ldk, o, ld, scale, sf_dgpu_mass_chunk, (void *)m, err);
}

/* Floats of one layer's frames-mode aggregate slot: (heads, max_frames, Lk_max / frame_tokens). */
static size_t tap_agg_per_layer(const sf_dit_state *st) {
    return (size_t)st->w->cfg.num_heads * (size_t)st->max_frames * (size_t)(st->gpu->lk_max / st->frame_tokens);
}

/* Host copies a tap reads (post-RoPE q and the key window, f32) and the frames-mode buffers, made
 * once: by sf_dit_prepare, or on a tapped layer's first call when the caller skipped it. */
sf_status sf_dgpu_tap_bufs(sf_dit_state *st, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const size_t D = (size_t)st->w->cfg.dim;
    const size_t nm = ((size_t)st->max_frames + (size_t)(g->lk_max / st->frame_tokens)) * D;
    const size_t na = (size_t)st->w->cfg.num_layers * tap_agg_per_layer(st);
    sf_status s;
    if (!g->tap_q) g->tap_q = malloc(sizeof(float) * (size_t)st->max_frames * (size_t)st->frame_tokens * D);
    if (!g->tap_k) g->tap_k = malloc(sizeof(float) * (size_t)g->lk_max * D);
    if (!g->def_layer) g->def_layer = malloc(sizeof(int) * (size_t)st->w->cfg.num_layers);
    if (!g->tm_means) {
        if ((s = sf_cuda_malloc((void **)&g->tm_means, sizeof(double) * nm, err)) ||
            (s = sf_cuda_malloc((void **)&g->tm_agg, sizeof(float) * na, err)) ||
            (s = sf_cuda_host_alloc((void **)&g->tap_agg, sizeof(float) * na, err))) {
            sf_cuda_free(g->tm_means), sf_cuda_free(g->tm_agg), sf_cuda_host_free(g->tap_agg); /* all or nothing */
            g->tm_means = NULL, g->tm_agg = NULL, g->tap_agg = NULL;
            return s;
        }
        g->state_bytes += sizeof(double) * nm + sizeof(float) * na;
    }
    return g->tap_q && g->tap_k && g->def_layer ? SF_OK : sf_fail(err, SF_E_NOMEM, "out of memory (attention tap)");
}

/* Layer l's self-attention view over the forward's key window (Lkw keys, kfw their frames): the keys it attended
 * (the window less what it skipped: --sink-ablate, sf_dit_ablate_skip), the window beside them; the mode's fields
 * are the caller's to fill. */
static sf_dit_attn_view layer_view(const sf_dit_state *st, int l, int64_t L, int64_t Lkw, const int64_t *kfw) {
    const sf_dit_config *c = &st->w->cfg;
    const int64_t S = st->frame_tokens, skip = sf_dit_ablate_skip(st, l, L, Lkw);
    sf_dit_attn_view vw = {0};
    vw.layer = l, vw.Lq = L, vw.Lk = Lkw - skip, vw.heads = c->num_heads, vw.head_dim = (int)(c->dim / c->num_heads);
    vw.ld = c->dim, vw.frame_tokens = S, vw.key_frames = kfw + skip / S, vw.window_frames = kfw, vw.window_slots = Lkw / S;
    sf_dit_kept_view(st, l, &vw);
    return vw;
}

/* A deferred probs-mode view of layer l: its aggregate and stats in its tap_pmass slot (sf_dgpu_mass_finish). */
static sf_dit_attn_view probs_view(const sf_dit_state *st, int l, int64_t L, int64_t Lkw, const int64_t *kfw) {
    float *slot = st->gpu->tap_pmass + (size_t)l * st->gpu->tap_pmass_per;
    sf_dit_attn_view vw = layer_view(st, l, L, Lkw, kfw);
    vw.mass = slot, vw.mass_stats = slot + pmass_stats_at(st);
    return vw;
}

/* A frames-mode view of layer l: its aggregate in the pinned tap_agg (copied there by sf_dgpu_tap_layer). */
static sf_dit_attn_view frames_view(const sf_dit_state *st, int l, int64_t L, int64_t Lkw, const int64_t *kfw) {
    sf_dit_attn_view vw = layer_view(st, l, L, Lkw, kfw);
    vw.frames = st->gpu->tap_agg + (size_t)l * tap_agg_per_layer(st);
    return vw;
}

sf_status sf_dgpu_tap_layer(sf_dit_state *st, int l, int64_t L, int64_t Lkw, const bf16 *Ka, const int64_t *kfw,
                           float *logits, const uint16_t *logits16, int mass, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const int64_t D = c->dim, H = c->num_heads;
    sf_status s;
    if ((s = sf_dgpu_tap_bufs(st, err))) return s;
    sf_dit_attn_view vw = layer_view(st, l, L, Lkw, kfw);
    const int64_t S = st->frame_tokens, QF = L / S, Lk = vw.Lk, KF = Lk / S;
    const int means = !mass && !logits && !logits16 && st->tap.wants_means && st->tap.wants_means(st->tap.ctx, l);
    if (means) { /* frames mode: the aggregate made here from per-frame means; bytes, not the key window, cross PCIe */
        const size_t per = tap_agg_per_layer(st);
        if ((s = sf_frame_means_cuda(&g->cx, QF, S, D, g->q, D, g->tm_means, err)) ||
            (s = sf_frame_means_cuda(&g->cx, KF, S, D, Ka, 2 * D, g->tm_means + QF * D, err)) ||
            (s = sf_frame_logit_means_cuda(&g->cx, (int)H, D / H, QF, KF, g->tm_means, g->tm_means + QF * D,
                                           1.0 / sqrt((double)(D / H)), g->tm_agg + (size_t)l * per, err)) ||
            (s = sf_cuda_copy_d2h_async(&g->cx, g->tap_agg + (size_t)l * per, g->tm_agg + (size_t)l * per,
                                        sizeof(float) * (size_t)(H * QF * KF), err))) /* pinned: enqueued, no wait */
            return s;
        if (g->defer) { /* delivered by sf_dgpu_tap_flush at the forward's end: no wait per layer */
            g->def_layer[g->n_def++] = 2 * l;
            return SF_OK;
        }
        if ((s = sf_cuda_sync(&g->cx, err))) return s;
        vw = frames_view(st, l, L, Lkw, kfw);
        return st->tap.done(st->tap.ctx, &vw, err);
    }
    if (mass && g->defer) { /* its aggregates are on their way to tap_pmass (sf_dgpu_mass_finish): delivered at the end */
        g->def_layer[g->n_def++] = 2 * l + 1;
        return SF_OK;
    }
    if (!mass) { /* the probability aggregates are made on the device: no q / k copies for them */
        if ((s = sf_dgpu_download_rows(g, g->tap_q, g->q, L, D, D, err))) return s;
        if ((s = sf_dgpu_download_rows(g, g->tap_k, Ka, Lk, D, 2 * D, err))) return s; /* keys of the [k | v] cache rows */
    }
    vw.q = mass ? NULL : g->tap_q, vw.k = mass ? NULL : g->tap_k, vw.logits = logits, vw.logits_f16 = logits16;
    vw.mass = mass ? g->tm_hout : NULL, vw.mass_stats = mass ? g->tm_hst : NULL;
    return st->tap.done(st->tap.ctx, &vw, err);
}

/* The forward's deferred frames- and probs-mode views, in layer order, after one wait for their copies; Lk and kfr
 * are the forward's window (each view takes its own layer's keys from it: layer_view). */
sf_status sf_dgpu_tap_flush(sf_dit_state *st, int64_t L, int64_t Lk, const int64_t *kfr, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    sf_status s = SF_OK;
    if (g->n_def && !(s = sf_cuda_sync(&g->cx, err)))
        for (int i = 0; i < g->n_def && !s; i++) {
            const int l = g->def_layer[i] / 2;
            sf_dit_attn_view vw = g->def_layer[i] & 1 ? probs_view(st, l, L, Lk, kfr) : frames_view(st, l, L, Lk, kfr);
            s = st->tap.done(st->tap.ctx, &vw, err);
        }
    g->n_def = 0;
    return s;
}
