/* test_dit_taps.c — attention taps against taps_{base,generator_ema}.safetensors: every full-logit
 * capture taps.L<l>.b<b>.s<s> (--tap-select all), the Figure-4 selection fig4.L<l>.attn_logits
 * (--tap-select seed), one capture by b:B,s:S, the frame aggregates (frames.* = stream.*), the
 * .pt figure-4 layout read back with our reader, and the layer-range error.
 * Tolerances from dit_manifest.json: f16 logits |d| <= 1e-3·|x| + 1e-3; frame aggregates rtol 1e-4
 * (relative to the tensor's max-abs). */
#define _POSIX_C_SOURCE 200809L
#include "dit_golden.h"
#include "pickle.h"
#include "stages/denoise/pipeline.h"
#include "stages/denoise/taps.h"

#include <stdio.h>
#include <unistd.h>

typedef struct fwd_ctx { sf_taps *t; } fwd_ctx;
static void on_fwd(void *c, int b, int s, int64_t start, int F) {
    (void)F;
    sf_taps_on_forward(((fwd_ctx *)c)->t, b, s, start);
}

/* Run the golden pipeline of `mode` (replayed noise, 2 threads) with taps configured. */
static void run_taps(const char *mode, const char *ckpt_key, sf_taps *taps) {
    sf_err err = {{0}};
    dit_golden d;
    if (dit_golden_open(&d, mode, ckpt_key, 2, 1, 0)) {
        sf_taps_attach(taps, &d.st);
        fwd_ctx fc = {taps};
        sf_pipeline_hooks hk = {on_fwd, NULL, NULL, &fc, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, NULL, &err), &err);
    }
    dit_golden_close(&d);
}

/* Compare a capture with golden tensor `gname`. kind 0: f16 logits; 1: frame aggregates. */
static void cmp_cap(const sf_tfile *g, const char *gname, const sf_tap_capture *c, int kind) {
    const sf_tensor *ref = sf_tfile_get(g, gname);
    SF_CHECK_MSG(ref != NULL, "golden %s missing", gname);
    if (!ref) return;
    int64_t n = sf_tensor_numel(ref);
    int64_t mine = kind ? (int64_t)c->heads * (c->Lq / c->frame_tokens) * (c->Lk / c->frame_tokens)
                        : (int64_t)c->heads * c->Lq * c->Lk;
    SF_CHECK_MSG(n == mine, "%s: %lld elements vs %lld", gname, (long long)n, (long long)mine);
    if (n != mine) return;
    float *r = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    sf_tensor_to_f32(ref, r);
    for (int64_t i = 0; i < n; i++) got[i] = kind ? c->frames[i] : sf_f16_to_f32(c->logits[i]);
    if (kind) sf_test_rel_close(gname, got, r, (size_t)n, SF_TOL_FP32_TAP);
    else sf_test_allclose(gname, got, r, (size_t)n, SF_TOL_F16_LOGITS, SF_TOL_F16_LOGITS);
    free(r);
    free(got);
}

static void check_all(const char *mode, const char *key, const char *gfile) {
    sf_err err = {{0}};
    sf_taps t;
    int layers[2] = {0, 2};
    SF_CHECK_OK(sf_taps_init(&t, SF_TAP_LOGITS, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    run_taps(mode, key, &t);
    SF_CHECK_MSG(t.n_caps == 30, "%zu captures", t.n_caps);
    sf_tfile *g = sf_test_open_golden(gfile);
    for (size_t i = 0; g && i < t.n_caps; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "taps.L%d.b%d.s%d", t.caps[i].layer, t.caps[i].block, t.caps[i].step);
        cmp_cap(g, nm, &t.caps[i], 0);
    }
    sf_tfile_destroy(&g);
    sf_taps_free(&t);
}

static void test_logits_all_base(void) { check_all("base", NULL, "expect/taps_base.safetensors"); }
static void test_logits_all_ema(void) { check_all("generator_ema", "generator_ema", "expect/taps_generator_ema.safetensors"); }

static void test_seed_and_pt(void) {
    sf_err err = {{0}};
    sf_taps t;
    int layers[2] = {2, 0};
    SF_CHECK_OK(sf_taps_init(&t, SF_TAP_LOGITS, SF_TAP_SEL_SEED, 0, 0, layers, 2, 3, &err), &err);
    run_taps("base", NULL, &t);
    SF_CHECK(t.n_caps == 2);
    sf_tfile *g = sf_test_open_golden("expect/taps_base.safetensors");
    for (size_t i = 0; g && i < t.n_caps; i++) {
        SF_CHECK(t.caps[i].block == 2 && t.caps[i].step == 0 && t.caps[i].Lk == 216);
        char nm[64];
        snprintf(nm, sizeof nm, "fig4.L%d.attn_logits", t.caps[i].layer);
        cmp_cap(g, nm, &t.caps[i], 0);
    }
    /* the figure-4 .pt layout, read back with our torch reader */
    char path[256];
    snprintf(path, sizeof path, "/tmp/sf_test_taps_%d.pt", (int)getpid());
    sf_taps_meta meta = {.prompt = "a prompt", .num_frames = 9, .num_frame_per_block = 3, .chunk_frames = 3,
                         .weights = "checkpoint c.pt:generator_ema"};
    SF_CHECK_OK(sf_taps_write(&t, path, &meta, &err), &err);
    sf_tfile *pt = NULL;
    SF_CHECK_OK(sf_tfile_open(path, &pt, &err), &err);
    if (pt) {
        const sf_tensor *l0 = sf_tfile_get(pt, "attention_weights/0/attn_logits");
        SF_CHECK(l0 && l0->dtype == SF_F16 && l0->ndim == 4 && l0->shape[1] == 2 && l0->shape[2] == 72 &&
                 l0->shape[3] == 216);
        const sf_tensor *ref = g ? sf_tfile_get(g, "fig4.L0.attn_logits") : NULL;
        if (l0 && ref) {
            /* layer 0 comes first (ascending), whatever order was requested */
            float a = sf_f16_to_f32(((uint16_t *)l0->data)[5]), b = (float)sf_tensor_get(ref, 5);
            SF_CHECK(fabsf(a - b) <= 1e-3f * fabsf(b) + 1e-3f);
        }
        sf_py *root = pt->root;
        SF_CHECK(root && sf_py_dict_get(root, "query_frames") && sf_py_dict_get(root, "key_frames"));
        sf_py *wk = root ? sf_py_dict_get(root, "weights") : NULL; /* sfpipe's provenance key */
        SF_CHECK_MSG(wk && wk->s && !strcmp(wk->s, "checkpoint c.pt:generator_ema"), "figure-4 .pt: weights key");
        sf_py *qf = root ? sf_py_dict_get(root, "query_frames") : NULL;
        SF_CHECK(qf && qf->n == 3 && qf->items[0]->i == 6);
        sf_py *cm = root ? sf_py_dict_get(root, "capture_method") : NULL;
        SF_CHECK(cm && cm->s && !strcmp(cm->s, "native_inference_capture"));
        sf_tfile_destroy(&pt);
    }
    unlink(path);
    sf_tfile_destroy(&g);
    sf_taps_free(&t);
}

static void test_select_one(void) {
    sf_err err = {{0}};
    sf_taps t;
    int layers[1] = {2};
    sf_tap_sel sel;
    int b, s;
    SF_CHECK_OK(sf_taps_parse_select("b:1,s:4", &sel, &b, &s, &err), &err);
    SF_CHECK(sf_taps_parse_select("b:1", &sel, &b, &s, &err) == SF_E_ARG);
    SF_CHECK_OK(sf_taps_init(&t, SF_TAP_LOGITS, SF_TAP_SEL_ONE, 1, 4, layers, 1, 3, &err), &err);
    run_taps("base", NULL, &t);
    SF_CHECK(t.n_caps == 1);
    sf_tfile *g = sf_test_open_golden("expect/taps_base.safetensors");
    if (g && t.n_caps == 1) cmp_cap(g, "taps.L2.b1.s4", &t.caps[0], 0);
    sf_tfile_destroy(&g);
    sf_taps_free(&t);
}

static void test_frames(void) {
    sf_err err = {{0}};
    sf_taps t;
    int layers[2] = {0, 2};
    SF_CHECK_OK(sf_taps_init(&t, SF_TAP_FRAMES, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    run_taps("base", NULL, &t);
    SF_CHECK_MSG(t.n_caps == 30, "%zu captures", t.n_caps);
    sf_tfile *g = sf_test_open_golden("expect/taps_base.safetensors");
    for (size_t i = 0; g && i < t.n_caps; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "stream.L%d.b%d.s%d", t.caps[i].layer, t.caps[i].block, t.caps[i].step);
        cmp_cap(g, nm, &t.caps[i], 1);
    }
    sf_tfile_destroy(&g);
    sf_taps_free(&t);
}

/* Compare n floats with golden `gname`: SF_TOL_FP32_TAP of its max-abs (the manifest's tolerance), or
 * atol_f16 > 0: per element |Δ| ≤ 1e-3·|ref| + atol_f16 (f16-stored values). */
static void cmp_f32(const sf_tfile *g, const char *gname, const float *got, int64_t n, double atol_f16) {
    const sf_tensor *ref = g ? sf_tfile_get(g, gname) : NULL;
    SF_CHECK_MSG(ref && sf_tensor_numel(ref) == n, "golden %s missing or mis-sized", gname);
    if (!ref || sf_tensor_numel(ref) != n) return;
    float *r = malloc(sizeof(float) * (size_t)n);
    sf_tensor_to_f32(ref, r);
    if (atol_f16 > 0) sf_test_allclose(gname, got, r, (size_t)n, SF_TOL_F16_LOGITS, atol_f16);
    else sf_test_rel_close(gname, got, r, (size_t)n, SF_TOL_FP32_TAP);
    free(r);
}

/* --tap-mode frames --tap-select seed: run_extraction_streaming.py's aggregate. Keeps only each
 * block's step-0 forward; full_frame_attention rows = stream.L<l>.b<b>.s0, zeros above the
 * block-causal band; last_block = mean of the last block's rows; the .pt dict layout read back. */
static void test_stream(void) {
    sf_err err = {{0}};
    sf_taps t;
    int layers[2] = {2, 0};
    SF_CHECK_OK(sf_taps_init(&t, SF_TAP_FRAMES, SF_TAP_SEL_SEED, 0, 0, layers, 2, 3, &err), &err);
    run_taps("base", NULL, &t);
    SF_CHECK_MSG(t.n_caps == 6, "%zu captures", t.n_caps);
    for (size_t i = 0; i < t.n_caps; i++) SF_CHECK(t.caps[i].step == 0);
    sf_tfile *g = sf_test_open_golden("expect/taps_base.safetensors");
    sf_taps_meta meta = {.prompt = "a prompt", .num_frames = 9, .num_frame_per_block = 3, .chunk_frames = 5,
                         .weights = "base m.safetensors"};
    float full[2 * 9 * 9], last[2 * 9];
    for (int li = 0; li < 2 && g; li++) {
        int l = layers[li], H = 0;
        char nm[64];
        SF_CHECK_OK(sf_taps_stream_matrix(&t, l, &meta, &H, full, last, &err), &err);
        SF_CHECK(H == 2);
        snprintf(nm, sizeof nm, "stream.L%d.full_frame_attention", l);
        cmp_f32(g, nm, full, 2 * 9 * 9, 0);
        snprintf(nm, sizeof nm, "stream.L%d.last_block_frame_attention", l);
        cmp_f32(g, nm, last, 2 * 9, 0);
        /* each block's rows are the golden step-0 capture; above the band exactly zero */
        for (int b = 0; b < 3; b++) {
            float rows[2 * 3 * 9];
            int KF = 3 * (b + 1), zeros = 1;
            for (int h = 0; h < 2; h++)
                for (int q = 0; q < 3; q++)
                    for (int k = 0; k < 9; k++) {
                        float v = full[(h * 9 + 3 * b + q) * 9 + k];
                        if (k < KF) rows[(h * 3 + q) * KF + k] = v;
                        else zeros &= v == 0.0f;
                    }
            SF_CHECK_MSG(zeros, "L%d block %d: non-zero above the band", l, b);
            snprintf(nm, sizeof nm, "stream.L%d.b%d.s0", l, b);
            cmp_f32(g, nm, rows, 2 * 3 * KF, 0);
        }
    }
    char path[256];
    snprintf(path, sizeof path, "/tmp/sf_test_stream_%d.pt", (int)getpid());
    SF_CHECK(sf_taps_write(&t, path, &meta, &err) == SF_E_ARG && strstr(err.msg, "one layer"));
    sf_taps_free(&t);

    int one[1] = {2};
    SF_CHECK_OK(sf_taps_init(&t, SF_TAP_FRAMES, SF_TAP_SEL_SEED, 0, 0, one, 1, 3, &err), &err);
    run_taps("base", NULL, &t);
    SF_CHECK_OK(sf_taps_write(&t, path, &meta, &err), &err);
    sf_tfile *pt = NULL;
    SF_CHECK_OK(sf_tfile_open(path, &pt, &err), &err);
    if (pt && pt->root) {
        static const char *keys[] = {"layer_index", "full_frame_attention", "last_block_frame_attention", "is_logits",
                                     "prompt", "num_frames", "frame_seq_length", "num_frame_per_block", "num_heads",
                                     "block_sizes", "query_frames", "key_frames", "last_block_query_frames",
                                     "extraction_method", "chunk_frames"};
        sf_py *root = pt->root;
        SF_CHECK(root->n == 16); /* the script's 15 keys + sfpipe's "weights" */
        for (size_t i = 0; i < 15; i++) SF_CHECK_MSG(sf_py_dict_get(root, keys[i]) != NULL, "missing %s", keys[i]);
        const sf_tensor *ff = sf_tfile_get(pt, "full_frame_attention"), *lb = sf_tfile_get(pt, "last_block_frame_attention");
        int64_t sff[3] = {2, 9, 9}, slb[2] = {2, 9};
        SF_CHECK(ff && ff->dtype == SF_F16 && sf_shape_eq(ff, 3, sff));
        SF_CHECK(lb && lb->dtype == SF_F16 && sf_shape_eq(lb, 2, slb));
        if (ff && sf_shape_eq(ff, 3, sff)) {
            float v[2 * 9 * 9];
            sf_tensor_to_f32(ff, v);
            cmp_f32(g, "stream.L2.full_frame_attention_f16", v, 2 * 9 * 9, SF_TOL_F16_LOGITS);
        }
        sf_py *x;
        SF_CHECK((x = sf_py_dict_get(root, "layer_index")) && x->i == 2);
        SF_CHECK_MSG((x = sf_py_dict_get(root, "weights")) && x->s && !strcmp(x->s, "base m.safetensors"), "streaming .pt: weights key");
        SF_CHECK((x = sf_py_dict_get(root, "num_frames")) && x->i == 9);
        SF_CHECK((x = sf_py_dict_get(root, "frame_seq_length")) && x->i == 24);
        SF_CHECK((x = sf_py_dict_get(root, "num_heads")) && x->i == 2);
        SF_CHECK((x = sf_py_dict_get(root, "chunk_frames")) && x->i == 5);
        SF_CHECK((x = sf_py_dict_get(root, "block_sizes")) && x->n == 3 && x->items[0]->i == 3 && x->items[2]->i == 3);
        SF_CHECK((x = sf_py_dict_get(root, "query_frames")) && x->n == 9 && x->items[8]->i == 8);
        SF_CHECK((x = sf_py_dict_get(root, "last_block_query_frames")) && x->n == 3 && x->items[0]->i == 6);
        SF_CHECK((x = sf_py_dict_get(root, "extraction_method")) && x->s && !strcmp(x->s, "streaming"));
        SF_CHECK((x = sf_py_dict_get(root, "prompt")) && x->s && !strcmp(x->s, "a prompt"));
    }
    sf_tfile_destroy(&pt);
    unlink(path);
    sf_tfile_destroy(&g);
    sf_taps_free(&t);
}

static void test_layer_range(void) {
    sf_err err = {{0}};
    sf_taps t;
    int layers[2] = {0, 3};
    SF_CHECK(sf_taps_init(&t, SF_TAP_LOGITS, SF_TAP_SEL_SEED, 0, 0, layers, 2, 3, &err) == SF_E_ARG);
    SF_CHECK(strstr(err.msg, "layer 3 out of range") != NULL);
}

static const sf_test tests[] = {
    {"logits_all_base", test_logits_all_base},
    {"logits_all_ema", test_logits_all_ema},
    {"seed_and_pt", test_seed_and_pt},
    {"select_one", test_select_one},
    {"frames", test_frames},
    {"stream", test_stream},
    {"layer_range", test_layer_range},
};
SF_TEST_MAIN(tests)
