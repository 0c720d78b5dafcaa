/* test_dit.c — the causal Wan DiT against tests/golden/expect/dit_forward.safetensors: every
 * intermediate of one forward of block 0 (patch embed, time embed, text embed, cross K/V, q/k
 * before/after RoPE, attention outputs, block outputs, head), the flow and x0 predictions, a
 * second prompt, and weight-loading errors. Metric as in dit_manifest.json: max|x − golden| /
 * max|golden| per tensor. */
#define _POSIX_C_SOURCE 200809L
#include "dit_golden.h"
#include "config.h"
#include "tfile.h"
#include "stages/denoise/dit.h"
#include "stages/denoise/scheduler.h"

#include <stdio.h>

typedef struct probe_ctx {
    const sf_tfile *g;
    int checked;
} probe_ctx;

static void on_probe(void *vctx, const char *name, const float *data, int64_t n) {
    probe_ctx *pc = vctx;
    int64_t gn;
    if (!sf_tfile_get(pc->g, name)) return;
    float *ref = sf_test_golden_f32(pc->g, name, &gn);
    if (!ref) return;
    if (!strcmp(name, "mid.patch_embedding")) { /* golden [1, dim, F, h, w] vs ours (tokens, dim) */
        const sf_tensor *t = sf_tfile_get(pc->g, name);
        int64_t D = t->shape[1], Ltok = gn / D;
        float *tr = malloc(sizeof(float) * (size_t)gn);
        for (int64_t tok = 0; tok < Ltok; tok++)
            for (int64_t d = 0; d < D; d++) tr[tok * D + d] = ref[d * Ltok + tok];
        free(ref);
        ref = tr;
    }
    int64_t m = gn < n ? gn : n; /* text/cross K/V goldens hold the first 32 rows */
    /* block-0 intermediates are held tighter than the single-forward bound (see sf_test.h) */
    double tol = SF_TOL_CPU(strstr(name, "block0") && !strstr(name, "block0.out") ? SF_TOL_FP32_DIT_BLOCK0 : SF_TOL_FP32_FWD,
                            SF_TOL_BF16_FWD);
    sf_test_rel_close(name, data, ref, (size_t)m, tol);
    pc->checked++;
    free(ref);
}


static void run_forward(const sf_tfile *g, const char *prefix, int nthreads, int with_probe) {
    sf_err err = {{0}};
    sf_dit_config cfg;
    sf_tfile *base = NULL, *sch = NULL;
    sf_dit_weights w;
    SF_CHECK_OK(dit_golden_base_model(&cfg, &base, &w, &err), &err);
    if (!base) return;
    const sf_tensor *lat = sf_tfile_get(g, "in.noisy_latent");
    int F = (int)lat->shape[1], H = (int)lat->shape[3], W = (int)lat->shape[4];
    sf_dit_state st;
    SF_CHECK_OK(sf_dit_state_init(&st, &w, F, H, W, 21, -1, 0, nthreads, &err), &err);
    probe_ctx pc = {g, 0};
    if (with_probe) {
        st.probe = on_probe;
        st.probe_ctx = &pc;
    }
    char nm[128];
    int64_t n;
    snprintf(nm, sizeof nm, "%sin.context", prefix);
    float *ctx = sf_test_golden_f32(g, nm, &n);
    SF_CHECK_OK(sf_dit_set_context(&st, ctx, 512, &err), &err);
    float *x = sf_test_golden_f32(g, "in.noisy_latent", &n);
    float *t = sf_test_golden_f32(g, "in.timestep", &n);
    float *flow = calloc((size_t)(F * 16 * H * W), sizeof(float));
    const unsigned long long misses = sf_scratch_misses();
    SF_CHECK_OK(sf_dit_forward(&st, x, F, t, 0, flow, &err), &err);
    /* the GEMMs and attentions ran in the state's scratch, sized at init: no allocation per call */
    SF_CHECK_MSG(sf_scratch_misses() == misses, "%llu kernel calls allocated their own work memory",
                 sf_scratch_misses() - misses);
    snprintf(nm, sizeof nm, "%sout.flow_pred", prefix);
    float *ref = sf_test_golden_f32(g, nm, &n);
    sf_test_rel_close(nm, flow, ref, (size_t)n, SF_TOL_CPU(SF_TOL_FP32_FWD, SF_TOL_BF16_FWD));
    /* x0 = xt - sigma_t * flow in float64 */
    sf_scheduler sc;
    SF_CHECK_OK(sf_scheduler_init(&sc, 5.0, &err), &err);
    float *x0 = calloc((size_t)n, sizeof(float));
    sf_scheduler_flow_to_x0(&sc, x, flow, n, t[0], x0);
    snprintf(nm, sizeof nm, "%sout.x0_pred", prefix);
    float *rx0 = sf_test_golden_f32(g, nm, &n);
    sf_test_rel_close(nm, x0, rx0, (size_t)n, SF_TOL_CPU(SF_TOL_FP32_FWD, SF_TOL_BF16_FWD));
    SF_CHECK(st.global_end == 72 && st.local_end == 72);
    if (with_probe) SF_CHECK_MSG(pc.checked >= 20, "only %d intermediates checked", pc.checked);
    free(ctx); free(x); free(t); free(flow); free(ref); free(x0); free(rx0);
    sf_dit_state_free(&st);
    sf_dit_weights_free(&w);
    sf_tfile_destroy(&base);
    sf_tfile_destroy(&sch);
}

static void test_forward_intermediates(void) {
    sf_tfile *g = sf_test_open_golden("expect/dit_forward.safetensors");
    if (!g) return;
    run_forward(g, "", 1, 1);
    sf_tfile_destroy(&g);
}

static void test_forward_prompt1_threads(void) {
    sf_tfile *g = sf_test_open_golden("expect/dit_forward.safetensors");
    if (!g) return;
    run_forward(g, "p1.", 3, 0);
    sf_tfile_destroy(&g);
}

static void test_weights_errors(void) {
    sf_err err = {{0}};
    sf_dit_config cfg;
    sf_tfile *base = NULL;
    sf_dit_weights w;
    SF_CHECK_OK(dit_golden_base_model(&cfg, &base, &w, &err), &err);
    if (!base) return;
    sf_dit_weights_free(&w);
    /* wrong config: ffn_dim mismatch → shape error naming the tensor */
    sf_dit_config bad = cfg;
    bad.ffn_dim = 100;
    SF_CHECK(sf_dit_weights_load(&w, &bad, base, NULL, NULL, &err) == SF_E_SHAPE);
    SF_CHECK_MSG(strstr(err.msg, "blocks.0.ffn.0.weight") != NULL, "%s", err.msg);
    bad = cfg;
    bad.num_layers = 4; /* blocks.3.* absent */
    SF_CHECK(sf_dit_weights_load(&w, &bad, base, NULL, NULL, &err) == SF_E_NOTFOUND);
    SF_CHECK_MSG(strstr(err.msg, "blocks.3.modulation") != NULL, "%s", err.msg);
    sf_tfile_destroy(&base);
}

static const sf_test tests[] = {
    {"forward_intermediates", test_forward_intermediates},
    {"forward_prompt1_threads", test_forward_prompt1_threads},
    {"weights_errors", test_weights_errors},
};
SF_TEST_MAIN(tests)
