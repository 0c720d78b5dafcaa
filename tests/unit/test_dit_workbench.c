/* test_dit_workbench.c — the attention-sink workbench's taps (issue 14) on the golden pipeline:
 * --tap-mode probs and frames aggregates against the same aggregation of the full golden logits
 * (taps.L<l>.b<b>.s<s>), an all-layers run against per-layer runs (identical bytes), the
 * cross-attention mass (rows sum to 1 over the real tokens), --layer_indices parsing, and the run's
 * facts in the tap file's metadata (rolling cache: sink frames in the key frames).
 * The full logits come two ways: the run's own f32 logits (the attention's logits buffer, captured
 * whole by a wrapping tap) — held to 1e-5 as the issue asks — and the golden taps.* stored as f16,
 * whose rounding (2^-11·|s| per logit) alone moves a frame aggregate by up to 3.2e-5 (frames) /
 * 1.9e-5 (probs) measured: WB_TOL_F16 = 1e-4 there. */
#define _POSIX_C_SOURCE 200809L
#include "dit_golden.h"
#include "stages/denoise/pipeline.h"
#include "stages/denoise/taps.h"
#include "tap_mass.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <unistd.h>

#define WB_TOL_GOLDEN 1e-5 /* issue 14: aggregates equal the aggregation of the full (f32) logits to 1e-5 */
#define WB_TOL_F16 1e-4    /* the same against the golden f16-stored logits: f16 rounding, measured ≤ 3.2e-5 */

typedef struct fwd_ctx { sf_taps *t; } fwd_ctx;
static void on_fwd(void *c, int b, int s, int64_t start, int F) {
    (void)F;
    sf_taps_on_forward(((fwd_ctx *)c)->t, b, s, start);
}

/* A tap around sf_taps that also asks the CPU attention for its f32 logits (whole) and keeps, per
 * self-attention capture, the aggregate of those logits computed here: ref[i] for caps[i]. */
typedef struct wrap {
    sf_dit_tap in;
    sf_taps *t;
    float *buf;
    float *ref[128], *ref_stats[128];
} wrap;
static int w_wants(void *c, int l) { return ((wrap *)c)->in.wants(((wrap *)c)->in.ctx, l); }
static int w_wants_cross(void *c, int l) { return ((wrap *)c)->in.wants_cross(((wrap *)c)->in.ctx, l); }
static int w_wants_mass(void *c, int l) { return ((wrap *)c)->in.wants_mass(((wrap *)c)->in.ctx, l); }
static void w_groups(void *c, int64_t k, int64_t S, int64_t *G, int64_t *NG) { ((wrap *)c)->in.mass_groups(((wrap *)c)->in.ctx, k, S, G, NG); }
static float *w_buf(void *c, int layer, int heads, int64_t Lq, int64_t Lk) {
    wrap *w = c;
    (void)layer;
    free(w->buf);
    return w->buf = malloc(sizeof(float) * (size_t)(heads * Lq * Lk));
}
/* frames: mean of the logits over each (query frame, key frame) block; probs: row masses reduced */
static void aggregate(const float *s, int H, int64_t Lq, int64_t Lk, int64_t S, int probs, float **out, float **stats) {
    const int64_t QF = Lq / S, KF = Lk / S, rows = (int64_t)H * Lq;
    *out = malloc(sizeof(float) * (size_t)(H * QF * KF));
    *stats = NULL;
    if (probs) {
        float *rm = malloc(sizeof(float) * (size_t)(rows * KF)), *lse = malloc(sizeof(float) * (size_t)rows);
        *stats = malloc(sizeof(float) * (size_t)(H * QF * SF_TAP_NSTATS));
        for (int64_t r = 0; r < rows; r++) sf_tap_row_mass_cpu(s + r * Lk, Lk, S, KF, rm + r * KF, lse + r);
        SF_CHECK(sf_tap_mass_reduce_cpu(H, Lq, KF, S, 0, rm, lse, *out, *stats) == 0);
        free(rm), free(lse);
        return;
    }
    for (int h = 0; h < H; h++)
        for (int64_t qf = 0; qf < QF; qf++)
            for (int64_t kf = 0; kf < KF; kf++) {
                double a = 0;
                for (int64_t r = qf * S; r < (qf + 1) * S; r++)
                    for (int64_t j = kf * S; j < (kf + 1) * S; j++) a += s[((int64_t)h * Lq + r) * Lk + j];
                (*out)[(h * QF + qf) * KF + kf] = (float)(a / (double)(S * S));
            }
}
static sf_status w_done(void *c, const sf_dit_attn_view *v, sf_err *err) {
    wrap *w = c;
    size_t i = w->t->n_caps;
    sf_status s = w->in.done(w->in.ctx, v, err);
    if (!s && !v->cross && v->logits && i < 128 && w->t->n_caps == i + 1 && w->t->mode == SF_TAP_TOKENS) {
        const size_t n = (size_t)v->heads * (size_t)v->Lq * (size_t)v->Lk; /* tokens: the logits themselves */
        if ((w->ref[i] = malloc(n * sizeof(float)))) memcpy(w->ref[i], v->logits, n * sizeof(float));
    } else if (!s && !v->cross && v->logits && i < 128 && w->t->n_caps == i + 1)
        aggregate(v->logits, v->heads, v->Lq, v->Lk, v->frame_tokens, w->t->mode == SF_TAP_PROBS, &w->ref[i],
                  &w->ref_stats[i]);
    return s;
}
static void wrap_free(wrap *w) {
    free(w->buf);
    for (int i = 0; i < 128; i++) free(w->ref[i]), free(w->ref_stats[i]);
}

/* Run the golden pipeline (base weights, replayed noise) with taps; w non-NULL: wrapped (above). */
static void run_taps_w(sf_taps *taps, int cross, wrap *w) {
    sf_err err = {{0}};
    dit_golden d;
    if (dit_golden_open(&d, "base", NULL, 2, 1, 0)) {
        taps->cross = cross;
        taps->nthreads = 2;
        sf_taps_attach(taps, &d.st);
        if (w) {
            w->in = d.st.tap;
            w->t = taps;
            sf_dit_tap x = {w_buf, NULL, w_wants, w_done, w, w_wants_mass, w_wants_cross, NULL, NULL, NULL, w_groups};
            d.st.tap = x;
        }
        fwd_ctx fc = {taps};
        sf_pipeline_hooks hk = {on_fwd, NULL, NULL, &fc, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, NULL, &err), &err);
    }
    dit_golden_close(&d);
}
static void run_taps(sf_taps *taps, int cross) { run_taps_w(taps, cross, NULL); }

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

/* The golden full logits taps.L<l>.b<b>.s<s> [1, H, Lq, Lk] as f32, or NULL. */
static float *golden_logits(const sf_tfile *g, const sf_tap_capture *c) {
    char nm[64];
    snprintf(nm, sizeof nm, "taps.L%d.b%d.s%d", c->layer, c->block, c->step);
    const sf_tensor *t = sf_tfile_get(g, nm);
    SF_CHECK_MSG(t && sf_tensor_numel(t) == (int64_t)c->heads * c->Lq * c->Lk, "golden %s missing or mis-sized", nm);
    if (!t || sf_tensor_numel(t) != (int64_t)c->heads * c->Lq * c->Lk) return NULL;
    float *s = malloc(sizeof(float) * (size_t)sf_tensor_numel(t));
    sf_tensor_to_f32(t, s);
    return s;
}

/* probs (+ lse) or frames of layers 0 and 2 for every forward, against the aggregation of the
 * run's own f32 logits (1e-5) and of the golden f16 logits taps.* (WB_TOL_F16). */
static void vs_full_logits(sf_tap_mode mode) {
    sf_err err = {{0}};
    sf_taps t;
    wrap w;
    memset(&w, 0, sizeof w);
    int layers[2] = {0, 2};
    const int probs = mode == SF_TAP_PROBS;
    SF_CHECK_OK(sf_taps_init(&t, mode, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    run_taps_w(&t, 0, &w);
    SF_CHECK_MSG(t.n_caps == 30, "%zu captures", t.n_caps);
    sf_tfile *g = sf_test_open_golden("expect/taps_base.safetensors");
    double worst32 = 0, worst16 = 0, worst_lse = 0;
    for (size_t i = 0; g && i < t.n_caps && i < 128; i++) {
        const sf_tap_capture *c = &t.caps[i];
        const int64_t S = c->frame_tokens, QF = c->Lq / S, KF = c->Lk / S;
        const size_t n = (size_t)(c->heads * QF * KF);
        SF_CHECK_MSG(w.ref[i] != NULL, "capture %zu: no f32 logits", i);
        float *s16 = golden_logits(g, c), *ref16 = NULL, *st16 = NULL;
        if (!s16 || !w.ref[i]) {
            free(s16);
            continue;
        }
        aggregate(s16, c->heads, c->Lq, c->Lk, S, probs, &ref16, &st16);
        double d32 = max_abs_diff(c->frames, w.ref[i], n), d16 = max_abs_diff(c->frames, ref16, n);
        SF_CHECK_MSG(d32 <= WB_TOL_GOLDEN, "%s.L%d.b%d.s%d: max|Δ| %.3g vs the aggregate of the f32 logits",
                     probs ? "probs" : "frames", c->layer, c->block, c->step, d32);
        SF_CHECK_MSG(d16 <= WB_TOL_F16, "%s.L%d.b%d.s%d: max|Δ| %.3g vs the aggregate of the golden f16 logits",
                     probs ? "probs" : "frames", c->layer, c->block, c->step, d16);
        worst32 = d32 > worst32 ? d32 : worst32;
        worst16 = d16 > worst16 ? d16 : worst16;
        for (int64_t k = 0; probs && k < c->heads * QF; k++) {
            /* lse mean/min/max equal those of the f32 logits; the held mass is 1; rows are distributions */
            for (int j = 0; j < 3; j++) {
                double e = fabs((double)c->stats[k * SF_TAP_NSTATS + j] - w.ref_stats[i][k * SF_TAP_NSTATS + j]);
                worst_lse = e > worst_lse ? e : worst_lse;
            }
            SF_CHECK(fabsf(c->stats[k * SF_TAP_NSTATS + 3] - 1.0f) < 1e-5f);
            double sum = 0;
            for (int64_t f = 0; f < KF; f++) sum += c->frames[k * KF + f];
            SF_CHECK_MSG(fabs(sum - 1) < 1e-5, "probs row sums to %.8f", sum);
        }
        free(s16), free(ref16), free(st16);
    }
    SF_CHECK_MSG(worst_lse <= WB_TOL_GOLDEN, "lse stats max|Δ| %.3g", worst_lse);
    printf("# %s: max|Δ| %.3g vs f32 logits, %.3g vs golden f16 logits, lse %.3g\n", probs ? "probs" : "frames",
           worst32, worst16, worst_lse);
    sf_tfile_destroy(&g);
    wrap_free(&w);
    sf_taps_free(&t);
}
static void test_probs_vs_full_logits(void) { vs_full_logits(SF_TAP_PROBS); }
static void test_frames_vs_full_logits(void) { vs_full_logits(SF_TAP_FRAMES); }

/* Tokens mode (K = 2 leading key frames): each value against a softmax computed here in double from the run's own f32
 * logits (1e-5) and from the golden f16 logits (WB_TOL_F16); a frame's tokens sum to that frame's probs value of a
 * probs run of the same forwards (1e-6), and the held share (stats[3]) to the K frames' probs. */
static double naive_token_mass(const float *s, int64_t Lq, int64_t Lk, int64_t S, int h, int64_t qf, int64_t j) {
    double a = 0;
    for (int64_t r = qf * S; r < (qf + 1) * S; r++) {
        const float *row = s + ((int64_t)h * Lq + r) * Lk;
        double m = -INFINITY, z = 0;
        for (int64_t i = 0; i < Lk; i++) m = row[i] > m ? row[i] : m;
        for (int64_t i = 0; i < Lk; i++) z += exp((double)row[i] - m);
        a += exp((double)row[j] - m) / z;
    }
    return a / (double)S;
}
static void test_tokens_vs_full_logits(void) {
    sf_err err = {{0}};
    sf_taps t, p;
    wrap w;
    memset(&w, 0, sizeof w);
    int layers[2] = {0, 2};
    SF_CHECK_OK(sf_taps_init(&t, SF_TAP_TOKENS, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    SF_CHECK_OK(sf_taps_init(&p, SF_TAP_PROBS, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    t.token_frames = 2;
    run_taps_w(&t, 0, &w);
    run_taps(&p, 0);
    SF_CHECK_MSG(t.n_caps == 30 && p.n_caps == 30, "%zu / %zu captures", t.n_caps, p.n_caps);
    sf_tfile *g = sf_test_open_golden("expect/taps_base.safetensors");
    double worst32 = 0, worst16 = 0, worst_sum = 0;
    for (size_t i = 0; g && i < t.n_caps && i < p.n_caps; i++) {
        const sf_tap_capture *c = &t.caps[i], *q = &p.caps[i];
        const int64_t S = c->frame_tokens, QF = c->Lq / S, KF = c->Lk / S, K = 2, NG = K * S;
        SF_CHECK_MSG(c->groups == NG && q->layer == c->layer && q->block == c->block && q->step == c->step,
                     "capture %zu: groups %lld", i, (long long)c->groups);
        sf_tensor tv = sf_taps_cap_tensor(c);
        SF_CHECK(tv.ndim == 3 && tv.shape[0] == c->heads && tv.shape[1] == QF && tv.shape[2] == NG);
        float *s16 = golden_logits(g, c);
        SF_CHECK_MSG(w.ref[i] != NULL, "capture %zu: no f32 logits", i);
        if (!s16 || !w.ref[i] || c->groups != NG) {
            free(s16);
            continue;
        }
        for (int h = 0; h < c->heads; h++)
            for (int64_t qf = 0; qf < QF; qf++) {
                for (int64_t j = 0; j < NG; j++) {
                    const double v = c->frames[(h * QF + qf) * NG + j];
                    const double d16 = fabs(v - naive_token_mass(s16, c->Lq, c->Lk, S, h, qf, j));
                    worst16 = d16 > worst16 ? d16 : worst16;
                    const double d32 = fabs(v - naive_token_mass(w.ref[i], c->Lq, c->Lk, S, h, qf, j));
                    worst32 = d32 > worst32 ? d32 : worst32;
                }
                double held = 0;
                for (int64_t f = 0; f < K; f++) {
                    double sum = 0;
                    for (int64_t j = f * S; j < (f + 1) * S; j++) sum += c->frames[(h * QF + qf) * NG + j];
                    const double e = fabs(sum - q->frames[(h * QF + qf) * KF + f]);
                    worst_sum = e > worst_sum ? e : worst_sum;
                    held += q->frames[(h * QF + qf) * KF + f];
                }
                SF_CHECK(fabs(c->stats[(h * QF + qf) * SF_TAP_NSTATS + 3] - held) < 1e-6);
                const double l1 = c->stats[(h * QF + qf) * SF_TAP_NSTATS], l2 = q->stats[(h * QF + qf) * SF_TAP_NSTATS];
                SF_CHECK_MSG(fabs(l1 - l2) <= 1e-6 * (1 + fabs(l2)), "lse mean %.9g vs probs' %.9g", l1, l2);
            }
        free(s16);
    }
    SF_CHECK_MSG(worst32 <= WB_TOL_GOLDEN && worst32 > 0, "tokens max|Δ| %.3g vs the f32 logits", worst32);
    SF_CHECK_MSG(worst16 <= WB_TOL_F16, "tokens max|Δ| %.3g vs the golden f16 logits", worst16);
    SF_CHECK_MSG(worst_sum <= 1e-6, "a frame's tokens differ from its probs value by %.3g", worst_sum);
    printf("# tokens: max|Δ| %.3g vs f32 logits, %.3g vs golden f16 logits, %.3g vs probs\n", worst32, worst16, worst_sum);
    sf_tfile_destroy(&g);
    wrap_free(&w);
    sf_taps_free(&t);
    sf_taps_free(&p);
}

/* One run over every layer (and the cross-attention) = one run per layer, byte for byte. */
static void all_vs_single(sf_tap_mode mode) {
    sf_err err = {{0}};
    sf_taps all;
    const char *spec[1] = {"all"};
    int *layers = NULL, nl = 0;
    SF_CHECK_OK(sf_taps_parse_layers(spec, 1, 3, &layers, &nl, &err), &err);
    SF_CHECK(nl == 3);
    SF_CHECK_OK(sf_taps_init(&all, mode, SF_TAP_SEL_ALL, 0, 0, layers, nl, 3, &err), &err);
    free(layers);
    run_taps(&all, 1);
    SF_CHECK_MSG(all.n_caps == 90, "%zu captures", all.n_caps); /* 3 layers × 15 forwards × (self + cross) */
    size_t matched = 0;
    for (int l = 0; l < 3; l++) {
        sf_taps one;
        SF_CHECK_OK(sf_taps_init(&one, mode, SF_TAP_SEL_ALL, 0, 0, &l, 1, 3, &err), &err);
        run_taps(&one, 1);
        for (size_t i = 0; i < one.n_caps; i++) {
            const sf_tap_capture *c = &one.caps[i];
            for (size_t j = 0; j < all.n_caps; j++) {
                const sf_tap_capture *a = &all.caps[j];
                if (a->layer != c->layer || a->block != c->block || a->step != c->step || a->cross != c->cross) continue;
                size_t n = (size_t)c->heads * (size_t)(c->Lq / c->frame_tokens) * (size_t)(c->Lk / c->frame_tokens);
                int same = a->Lq == c->Lq && a->Lk == c->Lk && !memcmp(a->frames, c->frames, n * sizeof(float)) &&
                           (!c->stats || !memcmp(a->stats, c->stats, (n / (size_t)(c->Lk / c->frame_tokens)) * SF_TAP_NSTATS * sizeof(float)));
                SF_CHECK_MSG(same, "layer %d b%d s%d cross %d: the all-layers run differs", c->layer, c->block, c->step, c->cross);
                matched++;
            }
        }
        sf_taps_free(&one);
    }
    SF_CHECK_MSG(matched == 90, "%zu of 90 captures matched", matched);
    sf_taps_free(&all);
}
static void test_all_layers_probs(void) { all_vs_single(SF_TAP_PROBS); }
static void test_all_layers_frames(void) { all_vs_single(SF_TAP_FRAMES); }

/* Cross-attention: [H, QF, real tokens], each row a distribution over the real tokens. */
static void test_cross_rows(void) {
    sf_err err = {{0}};
    sf_taps t;
    int layers[1] = {1};
    SF_CHECK_OK(sf_taps_init(&t, SF_TAP_FRAMES, SF_TAP_SEL_ONE, 2, 4, layers, 1, 3, &err), &err);
    run_taps(&t, 1);
    SF_CHECK_MSG(t.n_caps == 2, "%zu captures", t.n_caps);
    /* the golden prompt's real rows: up to its last non-zero row */
    sf_tfile *g = sf_test_open_golden("expect/dit_pipeline_base.safetensors");
    const sf_tensor *pe = g ? sf_tfile_get(g, "context.prompt_embeds") : NULL;
    int64_t real = 0;
    if (pe) {
        int64_t rows = pe->shape[pe->ndim - 2], dim = pe->shape[pe->ndim - 1];
        float *e = malloc(sizeof(float) * (size_t)sf_tensor_numel(pe));
        sf_tensor_to_f32(pe, e);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < dim; i++)
                if (e[r * dim + i] != 0) real = r + 1;
        free(e);
    }
    SF_CHECK(real > 1);
    for (size_t i = 0; i < t.n_caps; i++) {
        const sf_tap_capture *c = &t.caps[i];
        if (!c->cross) continue;
        SF_CHECK(c->layer == 1 && c->block == 2 && c->step == 4 && c->n_real == real && c->stats);
        const int64_t QF = c->Lq / c->frame_tokens;
        for (int64_t k = 0; k < c->heads * QF; k++) {
            double sum = 0;
            int pos = 1;
            for (int64_t j = 0; j < c->n_real; j++) {
                sum += c->frames[k * c->n_real + j];
                pos &= c->frames[k * c->n_real + j] > 0;
            }
            SF_CHECK_MSG(fabs(sum - 1) < 1e-6 && pos, "cross row %lld sums to %.9f", (long long)k, sum);
            float held = c->stats[k * SF_TAP_NSTATS + 3]; /* the real tokens' share of the full softmax */
            SF_CHECK_MSG(held > 0 && held < 1, "real-token share %g", held);
        }
    }
    sf_tfile_destroy(&g);
    sf_taps_free(&t);
}

static void test_parse_layers(void) {
    sf_err err = {{0}};
    int *l = NULL, n = 0;
    const char *a1[] = {"all"};
    SF_CHECK_OK(sf_taps_parse_layers(a1, 1, 30, &l, &n, &err), &err);
    SF_CHECK(n == 30 && l && l[0] == 0 && l[29] == 29);
    free(l);
    const char *a2[] = {"7", "0-2,5", "2", "28-29"};
    SF_CHECK_OK(sf_taps_parse_layers(a2, 4, 30, &l, &n, &err), &err);
    int want[] = {0, 1, 2, 5, 7, 28, 29};
    SF_CHECK(n == 7 && !memcmp(l, want, sizeof want));
    free(l);
    SF_CHECK_OK(sf_taps_parse_layers(NULL, 0, 30, &l, &n, &err), &err); /* the reference's default */
    SF_CHECK(n == 2 && l[0] == 0 && l[1] == 4);
    free(l);
    const char *bad[] = {"30", "3-1", "x", "1-", "", "-1", "1,,2", "0-30", " 1", "+1", "1.0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        l = NULL;
        SF_CHECK_MSG(sf_taps_parse_layers(&bad[i], 1, 30, &l, &n, &err) == SF_E_ARG, "'%s' accepted", bad[i]);
        SF_CHECK(strstr(err.msg, "--layer_indices") != NULL);
        free(l);
    }
    SF_CHECK(sf_taps_parse_layers(&bad[0], 1, -1, &l, &n, &err) == SF_OK && n == 0); /* syntax only */
    SF_CHECK(sf_taps_parse_layers(&bad[2], 1, -1, &l, &n, &err) == SF_E_ARG);
}

/* The .pt's layer_indices as the reference stores them: typed order and repeats; sfpipe's forms
 * (all, ranges, lists) leave the ascending list. */
static void test_given_layers(void) {
    sf_err err = {{0}};
    int *l = NULL, n = -1;
    const char *a1[] = {"2", "0", "2"};
    SF_CHECK_OK(sf_taps_given_layers(a1, 3, &l, &n, &err), &err);
    SF_CHECK(n == 3 && l && l[0] == 2 && l[1] == 0 && l[2] == 2);
    free(l);
    SF_CHECK_OK(sf_taps_given_layers(NULL, 0, &l, &n, &err), &err); /* the reference's default [0, 4] */
    SF_CHECK(n == 2 && l && l[0] == 0 && l[1] == 4);
    free(l);
    const char *a2[][2] = {{"3", "all"}, {"1-2", "0"}, {"0,4", "1"}};
    for (int i = 0; i < 3; i++) {
        SF_CHECK_OK(sf_taps_given_layers(a2[i], 2, &l, &n, &err), &err);
        SF_CHECK(l == NULL && n == 0);
    }
}

/* The file's facts: a rolling cache (window 6, sink 3) — block 2 attends to frames 0,1,2 (sink) + 6,7,8. */
static void test_facts_rolling(void) {
    sf_err err = {{0}};
    dit_golden d;
    sf_taps t;
    int layers[2] = {0, 2};
    char path[256];
    snprintf(path, sizeof path, "/tmp/sf_test_wb_%d.safetensors", (int)getpid());
    SF_CHECK_OK(sf_taps_init(&t, SF_TAP_PROBS, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    SF_CHECK(sf_taps_check_path(&t, "x.pt", &err) == SF_E_ARG && strstr(err.msg, ".safetensors"));
    if (dit_golden_open(&d, "base", NULL, 2, 1, 0)) {
        sf_dit_state_free(&d.st);
        SF_CHECK_OK(sf_dit_state_init(&d.st, &d.w, 3, 8, 12, 6, 6, 3, 2, &err), &err);
        SF_CHECK_OK(sf_dit_set_context(&d.st, d.emb, sf_tfile_get(d.g, "context.prompt_embeds")->shape[1], &err), &err);
        t.nthreads = 2;
        sf_taps_attach(&t, &d.st);
        fwd_ctx fc = {&t};
        sf_pipeline_hooks hk = {on_fwd, NULL, NULL, &fc, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, NULL, &err), &err);
    }
    dit_golden_close(&d);
    sf_taps_meta m = {.prompt = "a <fox> & \"quotes\"", .num_frames = 9, .num_frame_per_block = 3,
                      .weights = "checkpoint tiny_dmd.pt:generator_ema", .seed = "42", .local_attn_size = 6,
                      .sink_size = 3, .model_dir = "tests/golden/model"};
    SF_CHECK_OK(sf_taps_write(&t, path, &m, &err), &err);
    sf_tfile *f = NULL;
    SF_CHECK_OK(sf_tfile_open(path, &f, &err), &err);
    if (f) {
        const char *v;
        SF_CHECK((v = sf_tfile_meta(f, "tap_mode")) && !strcmp(v, "probs"));
        SF_CHECK((v = sf_tfile_meta(f, "layers")) && !strcmp(v, "[0,2]"));
        SF_CHECK((v = sf_tfile_meta(f, "heads")) && !strcmp(v, "2"));
        SF_CHECK((v = sf_tfile_meta(f, "frame_seq_length")) && !strcmp(v, "24"));
        SF_CHECK((v = sf_tfile_meta(f, "seed")) && !strcmp(v, "42"));
        SF_CHECK((v = sf_tfile_meta(f, "sink_size")) && !strcmp(v, "3"));
        SF_CHECK((v = sf_tfile_meta(f, "local_attn_size")) && !strcmp(v, "6"));
        SF_CHECK((v = sf_tfile_meta(f, "weights")) && strstr(v, "tiny_dmd.pt"));
        SF_CHECK((v = sf_tfile_meta(f, "prompt")) && !strcmp(v, m.prompt));
        SF_CHECK((v = sf_tfile_meta(f, "model_dir")) && !strcmp(v, m.model_dir));
        v = sf_tfile_meta(f, "forwards");
        cJSON *fw = v ? cJSON_Parse(v) : NULL;
        SF_CHECK_MSG(fw && cJSON_GetArraySize(fw) == 15, "forwards: %s", v ? v : "(none)");
        int found = 0;
        for (int i = 0; fw && i < cJSON_GetArraySize(fw); i++) {
            cJSON *o = cJSON_GetArrayItem(fw, i), *kf = cJSON_GetObjectItem(o, "key_frames");
            int b = cJSON_GetObjectItem(o, "block")->valueint, s = cJSON_GetObjectItem(o, "step")->valueint;
            if (b == 2 && s == 0) {
                int want[6] = {0, 1, 2, 6, 7, 8}, ok = cJSON_GetArraySize(kf) == 6;
                for (int k = 0; ok && k < 6; k++) ok = cJSON_GetArrayItem(kf, k)->valueint == want[k];
                SF_CHECK_MSG(ok, "block 2 key frames are not sink 0,1,2 + 6,7,8");
                SF_CHECK(cJSON_GetObjectItem(o, "start_frame")->valueint == 6);
                found = 1;
            }
        }
        SF_CHECK(found);
        cJSON_Delete(fw);
        const sf_tensor *p = sf_tfile_get(f, "probs.L2.b2.s4"), *q = sf_tfile_get(f, "lse.L2.b2.s4");
        int64_t sp[3] = {2, 3, 6}, sq[3] = {2, 3, SF_TAP_NSTATS};
        SF_CHECK(p && p->dtype == SF_F32 && sf_shape_eq(p, 3, sp));
        SF_CHECK(q && q->dtype == SF_F32 && sf_shape_eq(q, 3, sq));
        sf_tfile_destroy(&f);
    }
    unlink(path);
    sf_taps_free(&t);
}

static const sf_test tests[] = {
    {"probs_vs_full_logits", test_probs_vs_full_logits},
    {"frames_vs_full_logits", test_frames_vs_full_logits},
    {"tokens_vs_full_logits", test_tokens_vs_full_logits},
    {"all_layers_probs", test_all_layers_probs},
    {"all_layers_frames", test_all_layers_frames},
    {"cross_rows", test_cross_rows},
    {"parse_layers", test_parse_layers},
    {"given_layers", test_given_layers},
    {"facts_rolling", test_facts_rolling},
};
SF_TEST_MAIN(tests)
