/* test_taps_analysis.c — sf-taps statistics (tools/taps/taps_analysis.c): frame means, Δ, spread,
 * head mean ± std, first/middle/last summary and the softmax sink ratio on small hand-made
 * logits with hand-computed answers (f32/f16/bf16, 3-D/4-D, strided rows, a softmax that
 * overflows without max subtraction), frame-level inputs, filters and errors, and the golden
 * notebook values fig4.L<l>.frame_attention / stream.L<l>.last_block_frame_attention. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "tools/taps/taps_analysis.h"

#include <stddef.h>

static int close_to(double a, double b, double tol) { return fabs(a - b) <= tol * (1 + fabs(b)); }
#define CHECK_NEAR(a, b, tol) SF_CHECK_MSG(close_to((a), (b), (tol)), "%s = %.10g, expected %.10g", #a, (double)(a), (double)(b))

/* Head 0 (rows of Lk = 6 keys, frame_seq_length 2 → K = 3 frames):
 *   q0 = [1 3 | 0 2 | 4 4], q1 = [3 1 | 2 0 | 0 0]  → column means [2 2 1 1 2 2] → F = [2, 1, 2]
 * Head 1: every logit 1 → F = [1, 1, 1], softmax uniform. */
static const float kLogits[2][2][6] = {{{1, 3, 0, 2, 4, 4}, {3, 1, 2, 0, 0, 0}}, {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}}};

/* Expected softmax frame means of head 0, written out from the definition. */
static void head0_softmax(double W[3]) {
    double w[6] = {0};
    for (int i = 0; i < 2; i++) {
        double s = 0;
        for (int j = 0; j < 6; j++) s += exp(kLogits[0][i][j]);
        for (int j = 0; j < 6; j++) w[j] += exp(kLogits[0][i][j]) / s / 2; /* mean over 2 queries */
    }
    for (int k = 0; k < 3; k++) W[k] = (w[2 * k] + w[2 * k + 1]) / 2;
}

static void check_basic(const sf_taps_stats *s, double tol) {
    SF_CHECK(s->nh == 2 && s->nkf == 3 && s->nq == 2 && s->fsl == 2);
    const double F[6] = {2, 1, 2, 1, 1, 1};
    for (int i = 0; i < 6; i++) CHECK_NEAR(s->F[i], F[i], 1e-12);
    CHECK_NEAR(s->delta[0], 1.0, 1e-12);              /* 2 − mean([1]) */
    CHECK_NEAR(s->delta[1], 0.0, 1e-12);
    CHECK_NEAR(s->spread[0], 100.0 * 1.0 / (5.0 / 3.0), 1e-12); /* (2−1)/|5/3|·100 = 60 */
    CHECK_NEAR(s->spread[1], 0.0, 1e-12);
    CHECK_NEAR(s->mean[0], 1.5, 1e-12);
    CHECK_NEAR(s->mean[1], 1.0, 1e-12);
    CHECK_NEAR(s->std[0], 0.5, 1e-12); /* population std of {2, 1} */
    CHECK_NEAR(s->std[1], 0.0, 1e-12);
    CHECK_NEAR(s->first, 1.5, 1e-12);
    CHECK_NEAR(s->middle, 1.0, 1e-12);
    CHECK_NEAR(s->last, 1.5, 1e-12);
    CHECK_NEAR(s->ratio, 1.5, 1e-12);
    CHECK_NEAR(s->first_minus_last, 0.0, 1e-12);
    CHECK_NEAR(s->lmin, 0.0, 0);
    CHECK_NEAR(s->lmax, 4.0, 0);
    double W[3];
    head0_softmax(W);
    SF_CHECK(s->W != NULL);
    for (int k = 0; k < 3; k++) CHECK_NEAR(s->W[k], W[k], tol);
    for (int k = 0; k < 3; k++) CHECK_NEAR(s->W[3 + k], 1.0 / 6.0, tol);
    CHECK_NEAR(s->sink[0], W[0] / W[1], tol);
    CHECK_NEAR(s->sink[1], 1.0, tol);
}

static void test_logits_f32(void) {
    sf_err err = {{0}};
    int64_t sh[4] = {1, 2, 2, 6};
    sf_tensor t = sf_tensor_view((void *)kLogits, SF_F32, 4, sh);
    sf_taps_stats s;
    SF_CHECK_OK(sf_taps_stats_logits(&t, 2, NULL, 0, &s, &err), &err);
    check_basic(&s, 1e-6);
    sf_taps_stats_free(&s);
}

static void test_logits_f16_bf16_3d(void) {
    sf_err err = {{0}};
    uint16_t h16[24], b16[24];
    const float *x = &kLogits[0][0][0];
    for (int i = 0; i < 24; i++) {
        h16[i] = sf_f32_to_f16(x[i]); /* small integers: exact in both */
        b16[i] = sf_f32_to_bf16(x[i]);
    }
    int64_t sh[3] = {2, 2, 6};
    sf_tensor t = sf_tensor_view(h16, SF_F16, 3, sh);
    sf_taps_stats s;
    SF_CHECK_OK(sf_taps_stats_logits(&t, 2, NULL, 0, &s, &err), &err);
    check_basic(&s, 1e-6);
    sf_taps_stats_free(&s);
    t = sf_tensor_view(b16, SF_BF16, 3, sh);
    SF_CHECK_OK(sf_taps_stats_logits(&t, 2, NULL, 0, &s, &err), &err);
    check_basic(&s, 1e-6);
    sf_taps_stats_free(&s);
}

static void test_logits_strided(void) {
    /* rows padded to 8 elements with garbage that must not be read as keys */
    float buf[2][2][8];
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j < 6; j++) buf[h][i][j] = kLogits[h][i][j];
            buf[h][i][6] = buf[h][i][7] = 1e30f;
        }
    int64_t sh[4] = {1, 2, 2, 6};
    sf_tensor t = sf_tensor_view(buf, SF_F32, 4, sh);
    t.stride[2] = 8;
    t.stride[1] = 16;
    t.stride[0] = 32;
    sf_err err = {{0}};
    sf_taps_stats s;
    SF_CHECK_OK(sf_taps_stats_logits(&t, 2, NULL, 0, &s, &err), &err);
    check_basic(&s, 1e-6);
    sf_taps_stats_free(&s);
}

static void test_softmax_needs_max_subtraction(void) {
    /* one query, frame_seq_length 1, K = 3: x = [1001, 1000, 1000] → w = [e, 1, 1]/(e + 2);
     * exp(1000) overflows float and double, so only a max-subtracted softmax gets this.
     * Head 1 is the same shifted to [−999, −1000, −1000] (0/0 without the shift). */
    float x[2][3] = {{1001.0f, 1000.0f, 1000.0f}, {-999.0f, -1000.0f, -1000.0f}};
    const double e = exp(1.0);
    int64_t sh[4] = {1, 2, 1, 3};
    sf_tensor t = sf_tensor_view(x, SF_F32, 4, sh);
    sf_err err = {{0}};
    sf_taps_stats s;
    SF_CHECK_OK(sf_taps_stats_logits(&t, 1, NULL, 0, &s, &err), &err);
    for (int h = 0; h < 2; h++) {
        CHECK_NEAR(s.W[3 * h + 0], e / (e + 2), 1e-6);
        CHECK_NEAR(s.W[3 * h + 1], 1 / (e + 2), 1e-6);
        CHECK_NEAR(s.W[3 * h + 2], 1 / (e + 2), 1e-6);
        CHECK_NEAR(s.sink[h], e, 1e-6); /* w0 / mean(w[1:-1]) = e */
        CHECK_NEAR(s.F[3 * h + 1], h ? -1000.0 : 1000.0, 1e-9);
    }
    SF_CHECK(isfinite(s.sink[0]) && isfinite(s.sink[1]));
    sf_taps_stats_free(&s);
}

static void test_heads_filter_and_short_k(void) {
    sf_err err = {{0}};
    int64_t sh[4] = {1, 2, 2, 6};
    sf_tensor t = sf_tensor_view((void *)kLogits, SF_F32, 4, sh);
    sf_taps_stats s;
    int only1[1] = {1};
    SF_CHECK_OK(sf_taps_stats_logits(&t, 2, only1, 1, &s, &err), &err);
    SF_CHECK(s.nh == 1 && s.heads[0] == 1);
    CHECK_NEAR(s.F[0], 1.0, 1e-12);
    CHECK_NEAR(s.std[0], 0.0, 1e-12);
    CHECK_NEAR(s.first, 1.0, 1e-12); /* head mean over the selected head only */
    sf_taps_stats_free(&s);
    /* fsl 3 → K = 2 frames: notebook Δ falls back to the mean of all frames; middle is NaN */
    SF_CHECK_OK(sf_taps_stats_logits(&t, 3, NULL, 0, &s, &err), &err);
    SF_CHECK(s.nkf == 2);
    /* head 0: column means [2 2 1 | 1 2 2] → F = [5/3, 5/3] */
    CHECK_NEAR(s.F[0], 5.0 / 3.0, 1e-12);
    CHECK_NEAR(s.delta[0], 0.0, 1e-12);
    SF_CHECK(isnan(s.middle) && isnan(s.sink[0]));
    sf_taps_stats_free(&s);
    int bad[1] = {2};
    SF_CHECK(sf_taps_stats_logits(&t, 2, bad, 1, &s, &err) == SF_E_ARG);
    SF_CHECK(strstr(err.msg, "head 2") != NULL);
    sf_taps_stats_free(&s);
    SF_CHECK(sf_taps_stats_logits(&t, 4, NULL, 0, &s, &err) == SF_E_SHAPE); /* 6 % 4 != 0 */
    sf_taps_stats_free(&s);
    int64_t sh2[2] = {2, 12};
    sf_tensor t2 = sf_tensor_view((void *)kLogits, SF_F32, 2, sh2);
    SF_CHECK(sf_taps_stats_logits(&t2, 2, NULL, 0, &s, &err) == SF_E_SHAPE);
    sf_taps_stats_free(&s);
    int64_t sh3[3] = {2, 2, 6};
    int32_t ints[24] = {0};
    sf_tensor t3 = sf_tensor_view(ints, SF_I32, 3, sh3);
    SF_CHECK(sf_taps_stats_logits(&t3, 2, NULL, 0, &s, &err) == SF_E_UNSUPPORTED);
    sf_taps_stats_free(&s);
}

static void test_frames_input(void) {
    /* [H=1, Qf=3, K=3]: rows 1..2 averaged → [ (4+6)/2, (5+7)/2, (6+8)/2 ] = [5, 6, 7] */
    float v[9] = {0, 1, 2, 4, 5, 6, 6, 7, 8};
    int64_t sh[3] = {1, 3, 3};
    sf_tensor t = sf_tensor_view(v, SF_F32, 3, sh);
    sf_err err = {{0}};
    sf_taps_stats s;
    SF_CHECK_OK(sf_taps_stats_frames(&t, 1, 2, NULL, 0, &s, &err), &err);
    CHECK_NEAR(s.F[0], 5, 1e-12);
    CHECK_NEAR(s.F[2], 7, 1e-12);
    CHECK_NEAR(s.delta[0], -1, 1e-12);
    CHECK_NEAR(s.spread[0], 2.0 / 6.0 * 100, 1e-12);
    SF_CHECK(s.W == NULL && isnan(s.sink[0]));
    sf_taps_stats_free(&s);
    SF_CHECK(sf_taps_stats_frames(&t, 2, 2, NULL, 0, &s, &err) == SF_E_SHAPE);
    sf_taps_stats_free(&s);
    int64_t sh2[2] = {3, 3}; /* [H, K] curve */
    t = sf_tensor_view(v, SF_F32, 2, sh2);
    SF_CHECK_OK(sf_taps_stats_frames(&t, 0, 0, NULL, 0, &s, &err), &err);
    CHECK_NEAR(s.mean[0], (0 + 4 + 6) / 3.0, 1e-12);
    sf_taps_stats_free(&s);
}

static void golden_f64(const sf_tfile *tf, const char *name, double *out, int64_t n) {
    const sf_tensor *t = sf_tfile_get(tf, name);
    SF_CHECK_MSG(t && sf_tensor_numel(t) == n, "%s", name);
    for (int64_t i = 0; t && i < n && i < sf_tensor_numel(t); i++) out[i] = sf_tensor_get(t, i);
}

static void test_golden_fig4_and_stream(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/expect/taps_base.safetensors", sf_test_golden());
    sf_tfile *tf = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_tfile_open(path, &tf, &err), &err);
    if (!tf) return;
    sf_taps_src *src = NULL;
    size_t n = 0;
    SF_CHECK_OK(sf_taps_find_sources(tf, 0, 0, NULL, 0, &src, &n, &err), &err);
    SF_CHECK(n == 2 && src && src[0].layer == 0 && src[1].layer == 2 && src[0].fsl == 24);
    for (size_t i = 0; i < n; i++) {
        sf_taps_stats s;
        SF_CHECK_OK(sf_taps_stats_source(&src[i], NULL, 0, &s, &err), &err);
        SF_CHECK(s.nh == 2 && s.nkf == 9 && s.nq == 72);
        double nb[18] = {0}, ex[18] = {0};
        char nm[64];
        snprintf(nm, sizeof nm, "fig4.L%d.frame_attention", src[i].layer);
        golden_f64(tf, nm, nb, 18);
        snprintf(nm, sizeof nm, "fig4.L%d.frame_attention_exact", src[i].layer);
        golden_f64(tf, nm, ex, 18);
        for (int k = 0; k < 18 && s.F; k++) {
            /* notebook on the same f16 logits (numpy f32 means): measured ≤ 1e-8 */
            SF_CHECK_MSG(fabs(s.F[k] - nb[k]) <= 1e-6, "L%d [%d] %.9g vs notebook %.9g", src[i].layer, k, s.F[k], nb[k]);
            /* exact reduction of the f32 logits: differs by the f16 storage rounding only */
            SF_CHECK_MSG(fabs(s.F[k] - ex[k]) <= 1e-4 + 1e-3 * fabs(ex[k]), "L%d [%d] %.9g vs exact %.9g", src[i].layer,
                         k, s.F[k], ex[k]);
        }
        /* softmax frame means sum to 1/fsl per query-average (weights sum to 1 over Lk keys) */
        double tot = 0;
        for (int k = 0; k < 9; k++) tot += s.W[k] * 24;
        CHECK_NEAR(tot, 1.0, 1e-6);
        sf_taps_stats_free(&s);
    }
    free(src);
    /* streaming: full_frame_attention's last block rows = the script's last_block_frame_attention */
    int lay[1] = {2};
    SF_CHECK_OK(sf_taps_find_sources(tf, SF_TAPS_SET_STREAM, 0, lay, 1, &src, &n, &err), &err);
    SF_CHECK(n == 1 && src && src[0].row0 == 6 && src[0].nrows == 3);
    if (n == 1) {
        sf_taps_stats s;
        SF_CHECK_OK(sf_taps_stats_source(&src[0], NULL, 0, &s, &err), &err);
        double lb[18] = {0};
        golden_f64(tf, "stream.L2.last_block_frame_attention", lb, 18);
        for (int k = 0; k < 18 && s.F; k++) CHECK_NEAR(s.F[k], lb[k], 1e-5);
        sf_taps_stats_free(&s);
    }
    free(src);
    /* taps: every forward of layer 0 (15) */
    int lay0[1] = {0};
    SF_CHECK_OK(sf_taps_find_sources(tf, SF_TAPS_SET_TAPS, 0, lay0, 1, &src, &n, &err), &err);
    SF_CHECK(n == 15 && src && src[0].block == 0 && src[14].block == 2 && src[14].step == 4);
    free(src);
    int lay9[1] = {9};
    SF_CHECK(sf_taps_find_sources(tf, 0, 0, lay9, 1, &src, &n, &err) == SF_E_NOTFOUND);
    sf_tfile_destroy(&tf);
}

static void test_sink_ratio_fn(void) {
    double w[4] = {0.4, 0.1, 0.3, 0.2};
    CHECK_NEAR(sf_taps_sink_ratio(w, 4), 0.4 / 0.2, 1e-15); /* frames 1..K-2 = {0.1, 0.3} */
    SF_CHECK(isnan(sf_taps_sink_ratio(w, 2)));
}

/* What F is called per kind (sf_taps_kind_labels): probs sources are masses, never logits; a
 * table or axis shared by logits and probs sources says neither. */
static void test_kind_labels(void) {
    const sf_taps_kind_text *p = sf_taps_kind_labels(SF_TAPS_SRC_PROBS);
    SF_CHECK(!strcmp(p->json_kind, "probs") && !strcmp(p->column, "mass_mean") && !strcmp(p->range, "mass"));
    SF_CHECK(!strcmp(p->axis, "Attention mass") && strstr(p->heads_title, "mass") && strstr(p->heatmap_title, "mass"));
    const sf_taps_src_kind others[3] = {SF_TAPS_SRC_LOGITS, SF_TAPS_SRC_FRAMES, SF_TAPS_SRC_CURVE};
    for (int i = 0; i < 3; i++) { /* the labels every other kind always had */
        const sf_taps_kind_text *k = sf_taps_kind_labels(others[i]);
        SF_CHECK(!strcmp(k->column, "logit_mean") && !strcmp(k->axis, "Mean attention logit"));
        SF_CHECK(!strcmp(k->json_kind, i == 0 ? "logits" : "frames") && !strcmp(k->range, i == 0 ? "logits" : "values"));
        SF_CHECK(!strstr(k->intro, "mass") && !strstr(k->heads_title, "mass"));
    }
    char buf[256];
    snprintf(buf, sizeof buf, p->intro, 2LL, 24LL);
    SF_CHECK_MSG(strstr(buf, "2 query frame(s) averaged, frame_seq_length 24"), "%s", buf);
    sf_taps_src v[3];
    memset(v, 0, sizeof v);
    v[0].kind = SF_TAPS_SRC_LOGITS, v[1].kind = SF_TAPS_SRC_FRAMES, v[2].kind = SF_TAPS_SRC_PROBS;
    const size_t col = offsetof(sf_taps_kind_text, column);
    SF_CHECK(!strcmp(sf_taps_kinds_label(v, 2, col, "value_mean"), "logit_mean"));
    SF_CHECK(!strcmp(sf_taps_kinds_label(v + 2, 1, col, "value_mean"), "mass_mean"));
    SF_CHECK(!strcmp(sf_taps_kinds_label(v, 3, col, "value_mean"), "value_mean"));
    SF_CHECK(!strcmp(sf_taps_kinds_label(v, 0, col, "value_mean"), "value_mean"));
}

static const sf_test tests[] = {
    {"kind_labels", test_kind_labels},
    {"logits_f32", test_logits_f32},
    {"logits_f16_bf16_3d", test_logits_f16_bf16_3d},
    {"logits_strided", test_logits_strided},
    {"softmax_needs_max_subtraction", test_softmax_needs_max_subtraction},
    {"heads_filter_and_short_k", test_heads_filter_and_short_k},
    {"frames_input", test_frames_input},
    {"sink_ratio_fn", test_sink_ratio_fn},
    {"golden_fig4_and_stream", test_golden_fig4_and_stream},
};
SF_TEST_MAIN(tests)
