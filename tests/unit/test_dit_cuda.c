/* test_dit_cuda.c — sf-denoise's CUDA backend (stages/denoise/dit_cuda.c) against the goldens, in
 * the reference's bf16 numerics, on a GPU ($SF_TEST_DEVICE=cuda:N; tests/gpu/check.sh):
 * dit_forward (flow, x0 and every probed intermediate), dit_pipeline_{base,generator,generator_ema}
 * (every pred and the output), the full-logit taps and the frame aggregates, and cuDNN's fused
 * attention against the explicit cuBLAS path. Without a GPU every case SKIPs except `refusal`,
 * which checks that asking for one fails with one clear line and leaves nothing allocated.
 *
 * Built twice: test_dit_cuda (the real CUDA backend; SKIPs without a GPU) and test_dit_emu
 * (-DSF_TEST_EMU: the same backend on the CPU emulation of the kernels, kernels/cuda/emu/, in every
 * `make test`; cuDNN's attention is emulated by a plain loop (kernels/cuda/emu/sdpa_emu.cc), so the
 * default path's calls, shapes and plan preparation run there too, and the cases that would only repeat
 * a covered path are skipped there to keep the suite fast).
 *
 * Tolerances (max|Δ| / max|ref| per tensor, sf_test_rel_close), the bf16 GPU entries of sf_test.h:
 *   single forward, every tensor            SF_TOL_BF16_FWD   2e-2
 *   pipeline preds / output                 SF_TOL_BF16_PIPE  5e-2
 *   f16 logit taps, frame aggregates        SF_TOL_BF16_TAP   5e-2
 *   cuDNN fused vs explicit attention       SF_TOL_BF16_FWD   2e-2  (two bf16 attention algorithms) */
#define _POSIX_C_SOURCE 200809L
#include "attn_mass_cuda.h"
#include "dit_golden.h"
#include "device.h"
#include "stages/denoise/dit_cuda.h"
#include "stages/denoise/taps.h"
#ifdef SF_TEST_EMU
#include "cuda/emu/sf_emu.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Without a GPU: a CUDA state fails with SF_E_DEVICE (or "no CUDA support" in a CPU-only build),
 * one line naming the GPU and what to do; the state is left zeroed. With one: a missing ordinal. */
static void test_refusal(void) {
    sf_err err = {{0}};
    sf_dit_config cfg;
    sf_tfile *base = NULL;
    sf_dit_weights w;
    SF_CHECK_OK(dit_golden_base_model(&cfg, &base, &w, &err), &err);
    if (!base) return;
    int count = 0;
    sf_err e2 = {{0}};
    int have = sf_cuda_device_count(&count, &e2) == SF_OK;
    sf_dit_state st;
    sf_status s = sf_dit_state_init_on(&st, &w, 3, 8, 12, 9, -1, 0, 1, have ? 99 : 0, &err);
    SF_CHECK_MSG(s == SF_E_DEVICE, "status %s: %s", sf_status_str(s), err.msg);
    SF_CHECK_MSG(strstr(err.msg, have ? "no such GPU" : "CUDA") != NULL && !strchr(err.msg, '\n'), "message: %s",
                 err.msg);
    SF_CHECK(st.gpu == NULL && st.kc == NULL && st.key_frames == NULL);
    sf_dit_weights_free(&w);
    sf_tfile_destroy(&base);
}

typedef struct probe_ctx {
    const sf_tfile *g;
    int checked;
} probe_ctx;

static void on_probe(void *vc, const char *name, const float *data, int64_t n) {
    probe_ctx *pc = vc;
    const sf_tensor *t = sf_tfile_get(pc->g, name);
    if (!t || t->ndim == 5) return; /* the patch embedding's channel-major golden layout: test_dit.c transposes it */
    int64_t gn;
    float *ref = sf_test_golden_f32(pc->g, name, &gn);
    if (!ref) return;
    /* text/cross K/V goldens hold the first rows */
    sf_test_rel_close(name, data, ref, (size_t)(n < gn ? n : gn), SF_TOL_BF16_FWD);
    pc->checked++;
    free(ref);
}

/* One forward of the golden model against the reference, with SF_CUDA_PROFILE on: the profile
 * counts each category's arithmetic (so the bench reports the GEMMs' and the attention's TFLOP/s)
 * and changes no value. */
static void test_forward(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    sf_dit_config cfg;
    sf_tfile *base = NULL, *g = sf_test_open_golden("expect/dit_forward.safetensors");
    sf_dit_weights w;
    if (!g) return;
    SF_CHECK_OK(dit_golden_base_model(&cfg, &base, &w, &err), &err);
    if (!base) return;
    int64_t n;
    const sf_tensor *lat = sf_tfile_get(g, "in.noisy_latent");
    int F = (int)lat->shape[1], H = (int)lat->shape[3], W = (int)lat->shape[4];
    sf_dit_state st;
    setenv("SF_CUDA_PROFILE", "1", 1);
    sf_status s = sf_dit_state_init_on(&st, &w, F, H, W, 21, -1, 0, 1, dev, &err);
    unsetenv("SF_CUDA_PROFILE");
    SF_CHECK_OK(s, &err);
    if (!s) {
        probe_ctx pc = {g, 0};
        st.probe = on_probe;
        st.probe_ctx = &pc;
        float *ctx = sf_test_golden_f32(g, "in.context", &n), *x = sf_test_golden_f32(g, "in.noisy_latent", &n);
        float *t = sf_test_golden_f32(g, "in.timestep", &n), *ref = sf_test_golden_f32(g, "out.flow_pred", &n);
        float *flow = calloc((size_t)n, sizeof(float)), *x0 = calloc((size_t)n, sizeof(float));
        SF_CHECK_OK(sf_dit_set_context(&st, ctx, 512, &err), &err);
        sf_dit_cuda_profile_reset(&st);
        SF_CHECK_OK(sf_dit_forward(&st, x, F, t, 0, flow, &err), &err);
        sf_test_rel_close("out.flow_pred", flow, ref, n, SF_TOL_BF16_FWD);
        /* block 0: L tokens attend to L keys and text_len text tokens in each layer */
        char prof[2048] = "";
        SF_CHECK(sf_dit_cuda_profile(&st, prof, sizeof prof));
        const double L = (double)st.global_end, D = cfg.dim, NL = cfg.num_layers, FF = cfg.ffn_dim;
        double self = sf_test_prof_gflop(prof, "self-attention"), cross = sf_test_prof_gflop(prof, "cross-attention");
        double lin = sf_test_prof_gflop(prof, "linear"), want_self = 4 * L * L * D * NL / 1e9;
        double want_cross = 4 * L * cfg.text_len * D * NL / 1e9;
        /* q, k|v, o, cross q, cross o and the FFN's two matrices of every layer; embeddings and head on top */
        double want_lin = 2 * L * D * (6 * D + 2 * FF) * NL / 1e9;
        SF_CHECK_MSG(fabs(self - want_self) <= 1e-3 * want_self, "self-attention %.6g GFLOP, want %.6g (%s)", self,
                     want_self, prof);
        SF_CHECK_MSG(fabs(cross - want_cross) <= 1e-3 * want_cross, "cross-attention %.6g GFLOP, want %.6g", cross,
                     want_cross);
        SF_CHECK_MSG(lin >= want_lin * (1 - 1e-3) && lin <= want_lin * 1.5, "linear %.6g GFLOP, layers alone %.6g", lin,
                     want_lin);
        SF_CHECK_MSG(strstr(prof, "TFLOP/s") != NULL, "no rate in %s", prof);
        sf_scheduler sc;
        SF_CHECK_OK(sf_scheduler_init(&sc, 5.0, &err), &err);
        sf_scheduler_flow_to_x0(&sc, x, flow, n, t[0], x0);
        float *rx0 = sf_test_golden_f32(g, "out.x0_pred", &n);
        sf_test_rel_close("out.x0_pred", x0, rx0, n, SF_TOL_BF16_FWD);
        SF_CHECK_MSG(pc.checked >= 5, "only %d intermediates checked", pc.checked);
        SF_CHECK(st.global_end == 72 && st.local_end == 72);
        free(ctx), free(x), free(t), free(ref), free(flow), free(x0), free(rx0);
        sf_dit_state_free(&st);
    }
    sf_dit_weights_free(&w);
    sf_tfile_destroy(&base);
    sf_tfile_destroy(&g);
}

typedef struct pctx {
    const sf_tfile *g;
    int n_pred;
} pctx;

static sf_status on_pred(void *vc, int b, int s, int F, const float *x0, sf_err *err) {
    (void)err;
    pctx *c = vc;
    char nm[64];
    snprintf(nm, sizeof nm, "pred.%d.%d", b, s);
    int64_t n;
    float *ref = sf_test_golden_f32(c->g, nm, &n);
    if (!ref) return SF_OK;
    sf_test_rel_close(nm, x0, ref, (int64_t)F * 16 * 8 * 12, SF_TOL_BF16_PIPE);
    c->n_pred++;
    free(ref);
    return SF_OK;
}

static void pipeline(const char *mode, const char *key) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    dit_golden d;
    static float out[9 * 16 * 8 * 12];
    if (dit_golden_open_on(&d, mode, key, 1, 1, 0, dev)) {
        pctx c = {d.g, 0};
        sf_pipeline_hooks hk = {NULL, on_pred, NULL, &c, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, out, &err), &err);
        SF_CHECK_MSG(c.n_pred == 15, "%d preds", c.n_pred);
        int64_t n;
        float *ref = sf_test_golden_f32(d.g, "output", &n);
        if (ref) sf_test_rel_close(mode, out, ref, n, SF_TOL_BF16_PIPE);
        free(ref);
    }
    dit_golden_close(&d);
}

#ifdef SF_TEST_EMU
#define EMU_SKIP(why) \
    do { \
        SF_TEST_SKIP(why); \
        return; \
    } while (0)
#else
#define EMU_SKIP(why) (void)0
#endif

/* The golden pipeline; on the emulation also: every fused row kernel with per-column vectors (affine,
 * modulation, gate, RMSNorm weight, RoPE table) found them 16-byte aligned and loaded them so. */
static void test_pipeline_base(void) {
#ifdef SF_TEST_EMU
    const unsigned long long v0 = sf_emu_vector_loads(), fb0 = sf_emu_vector_fallbacks();
#endif
    pipeline("base", NULL);
#ifdef SF_TEST_EMU
    SF_CHECK_MSG(sf_emu_vector_loads() > v0, "the DiT's fused row kernels loaded no vector 16 bytes at a time");
    SF_CHECK_MSG(sf_emu_vector_fallbacks() == fb0, "%llu fused row launches loaded their vectors one value at a time "
                 "(not 16-byte aligned)", sf_emu_vector_fallbacks() - fb0);
#endif
}
/* Initial latents (pipeline.h) on the device: the reference's dit_pipeline_initial (dit_golden.h) cases, video
 * extension and image-to-video, within the bf16 pipeline tolerance (the CPU meets 1e-4: test_dit_pipeline); the
 * output starts with the given latents bit for bit. */
static void test_pipeline_initial(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    static const char *const cases[] = {"ext", "i2v"};
    for (int k = 0; k < 2; k++) {
        sf_err err = {{0}};
        dit_golden d;
        dit_golden_initial gi;
        static float out[9 * 16 * 8 * 12];
        if (dit_golden_initial_open(&d, &gi, cases[k], 1, dev)) {
            SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, NULL, out, &err), &err);
            SF_CHECK(memcmp(out, gi.init, sizeof(float) * (size_t)gi.F_in * 16 * 8 * 12) == 0);
            float *ref = malloc(sizeof(float) * (size_t)gi.n_out);
            if (ref) sf_tensor_to_f32(gi.ref, ref);
            if (ref) sf_test_rel_close(cases[k], out, ref, gi.n_out, SF_TOL_BF16_PIPE);
            free(ref);
        }
        dit_golden_initial_close(&d, &gi);
    }
}

/* cuBLASLt without a GELU-epilogue algorithm (emulated refusal): a warning, the GELU as its own kernel,
 * the same golden results. */
static void test_gelu_epilogue_refused(void) {
#ifdef SF_TEST_EMU
    setenv("SF_EMU_NO_GELU_EPILOGUE", "1", 1);
    pipeline("base", NULL);
    unsetenv("SF_EMU_NO_GELU_EPILOGUE");
#else
    SF_TEST_SKIP("the refusal is emulated (test_dit_emu)");
#endif
}
static void test_pipeline_generator(void) { pipeline("generator", "generator"); } /* bf16 checkpoint upload */
/* The sampling loop runs ahead of the GPU: within a block nothing waits for the device (the
 * latents stay there, the timestep sinusoid and the scheduler steps are kernels, the re-noising
 * draws go through pinned staging); the host never waits for the stream to drain, only for events: a
 * staging buffer's previous copy (the block's input and 3 re-noising draws) and the block's x0 in pinned
 * memory, whose hand-out comes after the refresh pass is enqueued (so the GPU runs it meanwhile): at
 * block b's hand-out 5·(b + 1) forwards have started. Counted by the emulation, which treats a copy between
 * the device and pageable memory as the wait it is on a GPU. Before, every forward waited 6 times.
 * No device memory is allocated once the first forward has started, nor between sf_pipeline_prepare (which
 * sf-denoise calls before it waits for its embedding) and the run. On a GPU: the hook-free loop's
 * output against the golden (the waits are the emulation's to count). */
#ifdef SF_TEST_EMU
typedef struct ahead { /* at the first forward: allocations, host and event waits; forwards started; hand-outs seen late */
    unsigned long long allocs, waits, events;
    int fwds, early;
} ahead;
static void first_forward(void *c, int b, int s, int64_t start, int F) {
    ahead *a = c;
    (void)start, (void)F;
    if (b == 0 && s == 0) a->allocs = sf_emu_device_allocs(), a->waits = sf_emu_host_waits(), a->events = sf_emu_event_waits();
    a->fwds++;
}
static sf_status block_out(void *c, int b, int64_t start, int F, const float *x0, sf_err *err) {
    ahead *a = c;
    (void)start, (void)F, (void)x0, (void)err;
    if (a->fwds != (b == 2 ? 14 : 5 * (b + 1))) a->early++; /* the last block has no refresh pass (pipeline.h) */
    return SF_OK;
}
#endif
static void test_pipeline_runs_ahead(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    dit_golden d;
    static float out[9 * 16 * 8 * 12];
    if (dit_golden_open_on(&d, "base", NULL, 1, 1, 0, dev)) {
#ifdef SF_TEST_EMU
        /* first sf_pipeline_prepare, as sf-denoise calls it before it waits for its embedding: the run's
           own prepare then finds everything made */
        const unsigned long long a0 = sf_emu_device_allocs();
        SF_CHECK_OK(sf_pipeline_prepare(&d.st, &d.pc, &err), &err);
        const unsigned long long a1 = sf_emu_device_allocs();
        ahead at0 = {0, 0, 0, 0, 0};
        sf_pipeline_hooks hk = {first_forward, NULL, block_out, &at0, 0, NULL};
#else /* on a GPU only the result is checked (no hooks: the loop as sf-denoise runs it) */
        sf_pipeline_hooks hk = {NULL, NULL, NULL, NULL, 0, NULL};
#endif
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, out, &err), &err);
#ifdef SF_TEST_EMU
        /* counted from the first forward: sf_dit_prepare's one-time work before it (plans, workspaces, the
         * fused attention's self-check) is not the loop's */
        const unsigned long long waits = sf_emu_host_waits() - at0.waits, events = sf_emu_event_waits() - at0.events;
        SF_CHECK_MSG(waits == 0, "%llu host waits for the stream in 3 blocks of 5 forwards (want none)", waits);
        /* per block: the staging buffers of its input and 3 draws, then its x0 (block 0's input went up before
           the first forward) */
        SF_CHECK_MSG(events == 5 * 3 - 1, "%llu event waits in 3 blocks (want 14: 4 staging buffers and the x0 per "
                     "block, less block 0's input)", events);
        SF_CHECK_MSG(at0.early == 0, "%d blocks handed out before their refresh pass was enqueued", at0.early);
        SF_CHECK_MSG(at0.fwds == 14, "%d forwards (want 14: the last block's refresh pass is skipped)", at0.fwds);
        /* and allocates nothing once the loop runs: what the attention needs (cuDNN's plans and workspace,
         * emulated: an unprepared shape would cudaMalloc at its first forward) was made by sf_dit_prepare
         * before the first forward */
        SF_CHECK_MSG(at0.allocs > 0 && sf_emu_device_allocs() == at0.allocs, "device allocations: %llu at the first forward, %llu after",
                     at0.allocs, sf_emu_device_allocs());
        SF_CHECK_MSG(a1 > a0 && at0.allocs == a1, "device allocations: %llu by sf_pipeline_prepare, %llu more by the run "
                     "before its first forward (want some, then none)", a1 - a0, at0.allocs - a1);
#endif
        int64_t n;
        float *ref = sf_test_golden_f32(d.g, "output", &n);
        if (ref) sf_test_rel_close("runs_ahead output", out, ref, n, SF_TOL_BF16_PIPE);
        free(ref);
    }
    dit_golden_close(&d);
}

/* The cache-only refresh pass (sf_dit_refresh: the last layer stops after its K/V, no head) against the
 * full one (a prediction hook forces it), both on the device: the same output, bit for bit. */
static sf_status ignore_pred(void *vc, int b, int s, int F, const float *x0, sf_err *err) {
    (void)b, (void)s, (void)F, (void)x0, (void)err;
    ++*(int *)vc;
    return SF_OK;
}
static void test_refresh_kv_only(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    static float out[2][9 * 16 * 8 * 12];
    int preds[2] = {0, 0};
    for (int full = 0; full < 2; full++) {
        dit_golden d;
        if (dit_golden_open_on(&d, "base", NULL, 1, 1, 0, dev)) {
            sf_pipeline_hooks hk = {NULL, full ? ignore_pred : NULL, NULL, &preds[full], 0, NULL};
            SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, out[full], &err), &err);
        }
        dit_golden_close(&d);
    }
    SF_CHECK_MSG(preds[1] == 15, "%d predictions read", preds[1]);
    size_t i = 0, n = sizeof out[0] / sizeof out[0][0];
    while (i < n && memcmp(&out[0][i], &out[1][i], sizeof(float)) == 0) i++;
    SF_CHECK_MSG(i == n, "cache-only refresh: output differs at %zu: %g (cache only) vs %g (full)", i,
                 i < n ? out[0][i] : 0.0, i < n ? out[1][i] : 0.0);
}

/* Every one of n forwards of the golden pipeline a CUDA graph. On a GPU a library may load on each plan's
 * first execution, which is inside the capture of each block's first forward (sf_dit_prepare readied the
 * shapes): up to one failed capture per block's shape (3), each forward then run directly, no strike. */
static int all_graphs(const sf_cuda_graph_stats *g, long long n) {
#ifdef SF_TEST_EMU
    return g->launches == n && g->failed == 0;
#else
    return g->failed <= 3 && g->launches == n - g->failed;
#endif
}

/* CUDA graphs (dit_cuda.c, "CUDA graphs"): the golden pipeline with its forwards captured into graphs
 * equals the run without them ($SF_CUDA_GRAPHS=0) bit for bit — a capture that missed some work, or a
 * graph replayed with an earlier forward's arguments (the timesteps change every step, the key window
 * every block), would differ. All 14 forwards are graphs (sf_dit_prepare readied every shape), and
 * after the first denoising and refresh passes each is the cached graph updated in place. On the
 * emulation also a capture the runtime invalidates (at its 40th operation, as a library call that
 * cannot be captured would): that forward runs directly, same bits, the later ones are graphs again.
 * And captures that fail on each attention plan's first execution (a library that loads or allocates
 * there): one per new shape, at least 3 here, none held against graphs, so every later forward is still
 * a graph (three strikes would have turned them off: 8 launches instead of 11). */
static void graphs_run(int on, int brk, int first_use, float *out, sf_cuda_graph_stats *gs) {
    int dev = sf_test_gpu();
    sf_err err = {{0}};
    dit_golden d;
    memset(gs, 0, sizeof *gs);
    if (on) unsetenv("SF_CUDA_GRAPHS");
    else setenv("SF_CUDA_GRAPHS", "0", 1);
#ifdef SF_TEST_EMU
    sf_emu_capture_break_after(brk);
    sf_emu_sdpa_first_use_breaks_capture(first_use);
#else
    (void)brk, (void)first_use;
#endif
    if (dit_golden_open_on(&d, "base", NULL, 1, 1, 0, dev)) {
        sf_pipeline_hooks hk = {NULL, NULL, NULL, NULL, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, out, &err), &err);
        sf_dit_cuda_graph_stats(&d.st, gs);
    }
    dit_golden_close(&d);
#ifdef SF_TEST_EMU
    sf_emu_capture_break_after(0);
    sf_emu_sdpa_first_use_breaks_capture(0);
#endif
    unsetenv("SF_CUDA_GRAPHS");
}
static void same_bits(const char *what, const float *a, const float *b, size_t n) {
    size_t i = 0;
    while (i < n && memcmp(&a[i], &b[i], sizeof(float)) == 0) i++;
    SF_CHECK_MSG(i == n, "%s: output differs at %zu: %.9g vs %.9g", what, i, i < n ? a[i] : 0.0, i < n ? b[i] : 0.0);
}
static void test_graphs(void) {
    if (sf_test_gpu() < 0) return;
    static float out[3][9 * 16 * 8 * 12];
    const size_t n = sizeof out[0] / sizeof out[0][0];
    sf_cuda_graph_stats off, on, brk, first;
    graphs_run(0, 0, 0, out[0], &off);
    graphs_run(1, 0, 0, out[1], &on);
    SF_CHECK_MSG(off.launches == 0, "SF_CUDA_GRAPHS=0 launched %lld graphs", off.launches);
#ifdef SF_TEST_EMU
    SF_CHECK_MSG(on.launches == 14 && on.failed == 0 && on.instantiations >= 2 && on.instantiations <= 6 &&
                     on.updates == on.launches - on.instantiations,
                 "graphs: %lld launches (14 forwards), %lld updates, %lld instantiations, %lld failed", on.launches,
                 on.updates, on.instantiations, on.failed);
#else
    /* a GPU's runtime may refuse more updates than the emulation (its rules for copy and kernel nodes:
       each refusal re-instantiates, counted) and a library may load on a plan's first execution (at most
       one failed capture per block's shape, no strike): every forward still a graph or run directly once */
    SF_CHECK_MSG(all_graphs(&on, 14) && on.updates + on.instantiations == on.launches,
                 "graphs: %lld launches (14 forwards), %lld updates, %lld instantiations (%lld updates refused, last "
                 "cudaGraphExecUpdateResult %d), %lld failed captures (at most 3: one per shape)", on.launches, on.updates,
                 on.instantiations, on.refused, on.last_refusal, on.failed);
    fprintf(stderr, "# graphs on this GPU: %lld launches, %lld updates, %lld instantiations, %lld refused (last %d), "
            "%lld failed\n", on.launches, on.updates, on.instantiations, on.refused, on.last_refusal, on.failed);
#endif
    same_bits("graphs on vs off", out[1], out[0], n);
#ifdef SF_TEST_EMU
    graphs_run(1, 40, 0, out[2], &brk);
    SF_CHECK_MSG(brk.failed == 1 && brk.launches == 13, "an invalidated capture: %lld failed, %lld launches (expected 1, 13)",
                 brk.failed, brk.launches);
    same_bits("one capture invalidated vs graphs off", out[2], out[0], n);
    graphs_run(1, 0, 1, out[2], &first);
    SF_CHECK_MSG(first.failed >= 3 && first.launches == 14 - first.failed,
                 "first plan executions invalidating captures: %lld failed, %lld launches (expected >= 3 failed, and "
                 "every other forward of the 14 a graph: a shape's first capture is no strike)",
                 first.failed, first.launches);
    same_bits("first plan executions invalidating captures vs graphs off", out[2], out[0], n);
#else
    (void)brk, (void)first;
#endif
}

static void test_pipeline_generator_ema(void) {
    EMU_SKIP("emulated: same path as pipeline_generator");
    pipeline("generator_ema", "generator_ema");
}

typedef struct fwd_ctx {
    sf_taps *t;
    int n;                       /* forwards seen */
    unsigned long long waits0;   /* the emulation's host waits when the first forward started */
} fwd_ctx;
static void on_fwd(void *c, int b, int s, int64_t start, int F) {
    fwd_ctx *fc = c;
    (void)F;
#ifdef SF_TEST_EMU
    if (fc->n == 0) fc->waits0 = sf_emu_host_waits();
#endif
    fc->n++;
    sf_taps_on_forward(fc->t, b, s, start);
}

/* A spy between the DiT and the taps: what each self-attention view carried (frames mode on a GPU:
 * the per-frame means made on the device, never q and the key window). */
typedef struct spy {
    sf_dit_tap in;
    int with_means, with_qk;
} spy;
static spy *spy_of(void *c) { return c; }
static int spy_wants(void *c, int l) { return spy_of(c)->in.wants(spy_of(c)->in.ctx, l); }
static int spy_wants_mass(void *c, int l) { return spy_of(c)->in.wants_mass(spy_of(c)->in.ctx, l); }
static int spy_wants_cross(void *c, int l) { return spy_of(c)->in.wants_cross(spy_of(c)->in.ctx, l); }
static int spy_wants_means(void *c, int l) { return spy_of(c)->in.wants_means(spy_of(c)->in.ctx, l); }
static int spy_may_want(void *c, int l, int x) { return spy_of(c)->in.may_want(spy_of(c)->in.ctx, l, x); }
static void spy_groups(void *c, int64_t k, int64_t S, int64_t *G, int64_t *NG) { spy_of(c)->in.mass_groups(spy_of(c)->in.ctx, k, S, G, NG); }
static float *spy_buf(void *c, int l, int h, int64_t q, int64_t k) { return spy_of(c)->in.logits_buf(spy_of(c)->in.ctx, l, h, q, k); }
static uint16_t *spy_f16(void *c, int l, int h, int64_t q, int64_t k) { return spy_of(c)->in.logits_f16(spy_of(c)->in.ctx, l, h, q, k); }
static sf_status spy_done(void *c, const sf_dit_attn_view *v, sf_err *err) {
    spy *s = c;
    if (!v->cross) s->with_means += v->frames && !v->q && !v->k, s->with_qk += v->q && v->k;
    return s->in.done(s->in.ctx, v, err);
}

static void taps(sf_tap_mode mode, sf_tap_sel sel) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    sf_taps t;
    int layers[2] = {0, 2};
    SF_CHECK_OK(sf_taps_init(&t, mode, sel, 0, 0, layers, 2, 3, &err), &err);
    dit_golden d;
    setenv("SF_CUDA_ATTN_CHUNK", "20", 1); /* 72 query rows: chunks of 20, 20, 20, 12 through the tap copies */
    int opened = dit_golden_open_on(&d, "base", NULL, 1, 1, 0, dev);
    unsetenv("SF_CUDA_ATTN_CHUNK");
    spy sp = {{0}, 0, 0};
    if (opened) {
        sf_taps_attach(&t, &d.st);
        sp.in = d.st.tap;
        sf_dit_tap x = {spy_buf, spy_f16, spy_wants, spy_done, &sp, spy_wants_mass, spy_wants_cross, spy_wants_means, NULL,
                        spy_may_want, spy_groups};
        d.st.tap = x;
        fwd_ctx fc = {&t, 0, 0};
        sf_pipeline_hooks hk = {on_fwd, NULL, NULL, &fc, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, NULL, &err), &err);
        sf_cuda_graph_stats gst;
        sf_dit_cuda_graph_stats(&d.st, &gst);
        /* the explicit attention's logits workspace: only logits taps read it (frames mode: per-frame means) */
        const size_t ws = sf_dit_cuda_logits_ws_bytes(&d.st);
        SF_CHECK_MSG(mode == SF_TAP_FRAMES ? ws == 0 : ws > 0, "%s taps: a %zu-byte logits workspace",
                     mode == SF_TAP_FRAMES ? "frames" : "logits", ws);
        if (mode == SF_TAP_FRAMES) { /* the aggregates wait on the device until the forward's end: each forward a graph */
            SF_CHECK_MSG(all_graphs(&gst, 15), "frames mode: %lld graphs of 15 forwards, %lld failed",
                         gst.launches, gst.failed);
#ifdef SF_TEST_EMU
            /* and the host waits for the stream once per forward for them, not once per tapped layer (counted
               from the first forward: sf_dit_prepare's one-time work is not the loop's) */
            const unsigned long long w = sf_emu_host_waits() - fc.waits0;
            SF_CHECK_MSG(w == 15, "frames mode: %llu host waits in 15 forwards of 2 tapped layers (want 15)", w);
#endif
        } else {
            SF_CHECK_MSG(gst.launches < 15, "%s taps: %lld of 15 forwards as graphs (a tapped one may not be)",
                         mode == SF_TAP_LOGITS ? "logits" : "probs", gst.launches);
        }
    }
    dit_golden_close(&d);
    if (opened && mode == SF_TAP_FRAMES) /* 30 tapped self-attentions: means only, made on the device */
        SF_CHECK_MSG(sp.with_means == 30 && sp.with_qk == 0, "frames mode: %d views with means, %d with q and k",
                     sp.with_means, sp.with_qk);
    const int seed = sel == SF_TAP_SEL_SEED; /* figure-4: per layer the first capture with the most keys */
    SF_CHECK_MSG(t.n_caps == (seed ? 2u : 30u), "%zu captures", t.n_caps);
    sf_tfile *g = sf_test_open_golden("expect/taps_base.safetensors");
    for (size_t i = 0; g && i < t.n_caps; i++) {
        const sf_tap_capture *c = &t.caps[i];
        char nm[64];
        if (seed) {
            SF_CHECK(c->block == 2 && c->step == 0 && c->Lk == 216);
            snprintf(nm, sizeof nm, "fig4.L%d.attn_logits", c->layer);
        } else {
            snprintf(nm, sizeof nm, "%s.L%d.b%d.s%d", mode == SF_TAP_LOGITS ? "taps" : "stream", c->layer, c->block,
                     c->step);
        }
        int64_t n;
        float *ref = sf_test_golden_f32(g, nm, &n);
        if (!ref) continue;
        int64_t mine = mode == SF_TAP_LOGITS ? (int64_t)c->heads * c->Lq * c->Lk
                                             : (int64_t)c->heads * (c->Lq / c->frame_tokens) * (c->Lk / c->frame_tokens);
        SF_CHECK_MSG(n == mine, "%s: %lld elements vs %lld", nm, (long long)n, (long long)mine);
        if (n == mine) {
            float *got = malloc(sizeof(float) * (size_t)n);
            for (int64_t k = 0; k < n; k++) got[k] = mode == SF_TAP_LOGITS ? sf_f16_to_f32(c->logits[k]) : c->frames[k];
            sf_test_rel_close(nm, got, ref, n, SF_TOL_BF16_TAP);
            free(got);
        }
        free(ref);
    }
    sf_tfile_destroy(&g);
    sf_taps_free(&t);
}

/* The logits workspace is made before the loop when some forward of the run will read logits, whichever
 * forward that is (here only block 2, step 0 is tapped; the taps' current forward at prepare is block 0's):
 * a workspace made in the middle of a run could fail for memory after output went out. Frames mode with
 * the same selection needs none. */
static void test_taps_workspace_at_prepare(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    for (int m = 0; m < 2; m++) {
        sf_err err = {{0}};
        sf_taps t;
        int layers[1] = {1};
        SF_CHECK_OK(sf_taps_init(&t, m ? SF_TAP_FRAMES : SF_TAP_LOGITS, SF_TAP_SEL_ONE, 2, 0, layers, 1, 3, &err), &err);
        dit_golden d;
        if (dit_golden_open_on(&d, "base", NULL, 1, 1, 0, dev)) {
            sf_taps_attach(&t, &d.st);
            SF_CHECK_OK(sf_pipeline_prepare(&d.st, &d.pc, &err), &err);
            const size_t ws = sf_dit_cuda_logits_ws_bytes(&d.st);
            SF_CHECK_MSG(m ? ws == 0 : ws > 0, "%s taps of block 2 only: a %zu-byte logits workspace after the prepare",
                         m ? "frames" : "logits", ws);
        }
        dit_golden_close(&d);
        sf_taps_free(&t);
    }
}
static void test_taps_logits(void) { taps(SF_TAP_LOGITS, SF_TAP_SEL_ALL); }
static void test_taps_frames(void) { taps(SF_TAP_FRAMES, SF_TAP_SEL_ALL); }
/* the figure-4 selection: the GPU copies out only the captures that are kept (f16, chunk by chunk) */
static void test_taps_seed(void) { taps(SF_TAP_LOGITS, SF_TAP_SEL_SEED); }

/* The workbench's probability taps on the GPU (attn_mass.cu fused with the self-attention, or tap_mass.cu
 * over the explicit attention's chunks): probs + lse of the self-attention and the cross-attention's
 * real-token mass of every forward, against the CPU backend's (f32) — bf16 activations:
 * SF_TOL_BF16_TAP of the tensor's max. */
/* One golden pipeline run with t attached (with cross-attention taps unless no_cross); when gs is given,
 * the run's CUDA graph counts, its logits workspace bytes and (emulation) host waits from its first
 * forward on. */
static void run_wb_x(sf_taps *t, int dev, int no_cross, sf_cuda_graph_stats *gs, size_t *ws, unsigned long long *waits) {
    sf_err err = {{0}};
    dit_golden d;
    setenv("SF_CUDA_ATTN_CHUNK", "20", 1); /* chunks of 20 query rows: not aligned to the 24-token frames */
    int opened = dit_golden_open_on(&d, "base", NULL, 1, 1, 0, dev);
    unsetenv("SF_CUDA_ATTN_CHUNK");
    if (opened) {
        t->cross = !no_cross;
        t->nthreads = 1;
        sf_taps_attach(t, &d.st);
        fwd_ctx fc = {t, 0, 0};
        sf_pipeline_hooks hk = {on_fwd, NULL, NULL, &fc, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, NULL, &err), &err);
        if (gs) sf_dit_cuda_graph_stats(&d.st, gs);
        if (ws) *ws = sf_dit_cuda_logits_ws_bytes(&d.st);
#ifdef SF_TEST_EMU
        if (waits) *waits = sf_emu_host_waits() - fc.waits0;
#else
        (void)waits;
#endif
    }
    dit_golden_close(&d);
}
static void run_wb(sf_taps *t, int dev) { run_wb_x(t, dev, 0, NULL, NULL, NULL); }

/* Layers 0 and 2 tapped in `mode` with cross taps, every forward, on the GPU (gt) and the CPU (ct):
 * 60 captures each. Returns 0 without a GPU (nothing to compare). */
static int wb_pair(sf_tap_mode mode, sf_taps *gt, sf_taps *ct) {
    int dev = sf_test_gpu();
    if (dev < 0) return 0;
    sf_err err = {{0}};
    int layers[2] = {0, 2};
    SF_CHECK_OK(sf_taps_init(gt, mode, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    SF_CHECK_OK(sf_taps_init(ct, mode, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    run_wb(gt, dev);
    run_wb(ct, -1);
    SF_CHECK_MSG(gt->n_caps == 60 && ct->n_caps == 60, "%zu / %zu captures", gt->n_caps, ct->n_caps);
    return 1;
}

/* The GPU's probability captures (gt) against the CPU's (ct): probs / cross, or tokens (groups: the K·S leading keys'
 * single-token masses, a row summing to its held share). */
static void probs_vs_cpu(const sf_taps *gt, const sf_taps *ct) {
    for (size_t i = 0; i < gt->n_caps && i < ct->n_caps; i++) {
        const sf_tap_capture *a = &gt->caps[i], *b = &ct->caps[i];
        SF_CHECK(a->layer == b->layer && a->block == b->block && a->step == b->step && a->cross == b->cross &&
                 a->n_real == b->n_real && a->Lk == b->Lk && a->groups == b->groups);
        if (a->groups != b->groups) continue;
        const int64_t QF = a->Lq / a->frame_tokens, NG = a->groups > 0 ? a->groups : a->Lk / a->frame_tokens;
        char nm[64];
        snprintf(nm, sizeof nm, "%s.L%d.b%d.s%d", a->cross ? "cross" : a->groups ? "tokens" : "probs", a->layer, a->block, a->step);
        sf_test_rel_close(nm, a->frames, b->frames, (size_t)(a->heads * QF * NG), SF_TOL_BF16_TAP);
        for (int64_t k = 0; k < a->heads * QF; k++) { /* rows are distributions over the key frames / real tokens */
            double sum = 0;
            for (int64_t g = 0; g < NG; g++) sum += a->frames[k * NG + g];
            const double want = a->groups ? a->stats[k * SF_TAP_NSTATS + 3] : 1.0;
            SF_CHECK_MSG(fabs(sum - want) < 1e-5, "%s row %lld sums to %.8f (want %.8f)", nm, (long long)k, sum, want);
            for (int j = 0; j < SF_TAP_NSTATS; j++) { /* lse within the bf16 logits' error; held mass as the CPU's */
                float x = a->stats[k * SF_TAP_NSTATS + j], y = b->stats[k * SF_TAP_NSTATS + j];
                SF_CHECK_MSG(fabsf(x - y) <= SF_TOL_BF16_TAP * (1 + fabsf(y)), "%s stats[%d]: %g vs %g", nm, j, x, y);
            }
        }
    }
}

/* Probability taps both ways on the GPU: the self-attention's masses fused with the attention
 * (attn_mass.cu, the default: 2 layers × 15 forwards = 30 launches, after the state's one self-check of
 * the kernel on this GPU) and, with $SF_TAP_PROBS_EXPLICIT,
 * from the explicit attention's logits chunk by chunk (tap_mass.cu; no fused launch) — each against
 * the CPU backend. */
static void test_taps_probs_cross(void) {
    sf_taps gt, ct, et;
    sf_err err = {{0}};
    int layers[2] = {0, 2};
#ifdef SF_TEST_EMU
    const unsigned long long f0 = sf_emu_kernel_launches("attn_mass_groups");
#endif
    if (!wb_pair(SF_TAP_PROBS, &gt, &ct)) return;
#ifdef SF_TEST_EMU
    const unsigned long long f1 = sf_emu_kernel_launches("attn_mass_groups");
    SF_CHECK_MSG(f1 - f0 == 30 + 1, "%llu fused attention + mass launches (want 30 + the self-check's 1)", f1 - f0);
#endif
    probs_vs_cpu(&gt, &ct);
    SF_CHECK_OK(sf_taps_init(&et, SF_TAP_PROBS, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    setenv("SF_TAP_PROBS_EXPLICIT", "1", 1);
    run_wb(&et, sf_test_gpu());
    unsetenv("SF_TAP_PROBS_EXPLICIT");
#ifdef SF_TEST_EMU
    /* none: the explicit taps and cuDNN (emulated) for the untapped attentions need no fused kernel, so
       not its self-check either */
    SF_CHECK_MSG(sf_emu_kernel_launches("attn_mass_groups") == f1, "%llu fused + mass launches on the explicit path "
                 "(want none)", sf_emu_kernel_launches("attn_mass_groups") - f1);
#endif
    SF_CHECK_MSG(et.n_caps == 60, "%zu captures (explicit path)", et.n_caps);
    probs_vs_cpu(&et, &ct);
    sf_taps_free(&gt);
    sf_taps_free(&ct);
    sf_taps_free(&et);
}

/* Probability taps without cross-attention taps: each layer's aggregates wait on the device (pinned slots)
 * until the forward's end, so every forward is a CUDA graph and the host waits for the stream once per
 * forward — the same captures as the CPU backend's. */
static void test_taps_probs_graphs(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_taps gt, ct;
    sf_err err = {{0}};
    int layers[2] = {0, 2};
    sf_cuda_graph_stats gs;
    unsigned long long waits = 0;
    size_t ws = 1;
    SF_CHECK_OK(sf_taps_init(&gt, SF_TAP_PROBS, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    SF_CHECK_OK(sf_taps_init(&ct, SF_TAP_PROBS, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
    run_wb_x(&gt, dev, 1, &gs, &ws, &waits);
    run_wb_x(&ct, -1, 1, NULL, NULL, NULL);
    SF_CHECK_MSG(gt.n_caps == 30 && ct.n_caps == 30, "%zu / %zu captures", gt.n_caps, ct.n_caps);
    SF_CHECK_MSG(all_graphs(&gs, 15), "probs taps: %lld graphs of 15 forwards, %lld failed", gs.launches,
                 gs.failed);
    SF_CHECK_MSG(ws == 0, "probs taps fused with the attention made a %zu-byte logits workspace (want none)", ws);
#ifdef SF_TEST_EMU
    SF_CHECK_MSG(waits == 15, "probs taps: %llu host waits in 15 forwards of 2 tapped layers (want 15)", waits);
#endif
    probs_vs_cpu(&gt, &ct);
    sf_taps_free(&gt);
    sf_taps_free(&ct);
}

/* Tokens mode (--tap-mode tokens, K = 2 leading key frames): a tapped self-attention runs as the fused attention
 * alone with its lse, then the first K·S keys' logits by one batched GEMM and exp(s − lse) (tap_mass.cu) — no full
 * logits; with $SF_TAP_PROBS_EXPLICIT the explicit attention's logits chunk by chunk instead. Each layer's aggregate
 * waits in its pinned slot until the forward's end (forwards stay CUDA graphs), or with cross taps is delivered
 * layer by layer. All against the CPU backend: the same shapes, values within the bf16 tap bound. */
static void test_taps_tokens(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_taps t[5]; /* GPU, CPU; with cross taps GPU, CPU; the GPU's explicit path */
    sf_err err = {{0}};
    int layers[2] = {0, 2};
    sf_cuda_graph_stats gs;
    size_t ws = 1;
    for (int i = 0; i < 5; i++) {
        SF_CHECK_OK(sf_taps_init(&t[i], SF_TAP_TOKENS, SF_TAP_SEL_ALL, 0, 0, layers, 2, 3, &err), &err);
        t[i].token_frames = 2;
    }
#ifdef SF_TEST_EMU
    const unsigned long long t0 = sf_emu_kernel_launches("tap_token_mass_kernel"), p0 = sf_emu_kernel_launches("attn_plain");
#endif
    run_wb_x(&t[0], dev, 1, &gs, &ws, NULL), run_wb_x(&t[1], -1, 1, NULL, NULL, NULL), run_wb(&t[2], dev), run_wb(&t[3], -1);
#ifdef SF_TEST_EMU /* 2 tapped layers × 15 forwards × 2 GPU runs: the fused attention alone, then the token masses */
    const unsigned long long t1 = sf_emu_kernel_launches("tap_token_mass_kernel"), p1 = sf_emu_kernel_launches("attn_plain");
    SF_CHECK_MSG(t1 - t0 == 60 && p1 - p0 == 60, "%llu token-mass, %llu fused attention launches (want 60, 60)", t1 - t0, p1 - p0);
#endif
    SF_CHECK_MSG(ws == 0, "tokens taps made a %zu-byte logits workspace (want none)", ws);
    setenv("SF_TAP_PROBS_EXPLICIT", "1", 1);
    run_wb_x(&t[4], dev, 1, NULL, NULL, NULL);
    unsetenv("SF_TAP_PROBS_EXPLICIT");
#ifdef SF_TEST_EMU
    SF_CHECK(sf_emu_kernel_launches("tap_token_mass_kernel") == t1); /* the explicit path: rows of logits instead */
#endif
    SF_CHECK_MSG(t[0].n_caps == 30 && t[1].n_caps == 30 && t[4].n_caps == 30 && t[2].n_caps == 60 && t[3].n_caps == 60,
                 "%zu / %zu / %zu captures, %zu / %zu with cross taps", t[0].n_caps, t[1].n_caps, t[4].n_caps, t[2].n_caps,
                 t[3].n_caps);
    SF_CHECK_MSG(all_graphs(&gs, 15), "tokens taps: %lld graphs of 15 forwards, %lld failed", gs.launches, gs.failed);
    SF_CHECK(t[0].n_caps > 0 && t[0].caps[0].groups == 2 * t[0].caps[0].frame_tokens); /* K = 2 leading frames */
    probs_vs_cpu(&t[0], &t[1]), probs_vs_cpu(&t[2], &t[3]), probs_vs_cpu(&t[4], &t[1]);
    for (int i = 0; i < 5; i++) sf_taps_free(&t[i]);
}

/* Frames mode with cross-attention taps: the self-attention's aggregates are then delivered layer by
 * layer (not at the forward's end), so the GPU's captures come in the CPU's order — per layer the self-
 * then the cross-attention — with the CPU's values (frames: the mean logits; cross: rows summing to 1). */
static void test_taps_frames_cross(void) {
    sf_taps gt, ct;
    if (!wb_pair(SF_TAP_FRAMES, &gt, &ct)) return;
    for (size_t i = 0; i < gt.n_caps && i < ct.n_caps; i++) {
        const sf_tap_capture *a = &gt.caps[i], *b = &ct.caps[i];
        SF_CHECK_MSG(a->layer == b->layer && a->block == b->block && a->step == b->step && a->cross == b->cross,
                     "capture %zu: GPU L%d b%d s%d %s, CPU L%d b%d s%d %s", i, a->layer, a->block, a->step,
                     a->cross ? "cross" : "self", b->layer, b->block, b->step, b->cross ? "cross" : "self");
        const int64_t n = (int64_t)a->heads * (a->Lq / a->frame_tokens) * (a->Lk / a->frame_tokens);
        char nm[64];
        snprintf(nm, sizeof nm, "%s.L%d.b%d.s%d", a->cross ? "cross" : "frames", a->layer, a->block, a->step);
        if (a->Lk == b->Lk && a->Lq == b->Lq) sf_test_rel_close(nm, a->frames, b->frames, (size_t)n, SF_TOL_BF16_TAP);
    }
    sf_taps_free(&gt);
    sf_taps_free(&ct);
}

/* The attention paths give the same forward within the bf16 tolerance: the default (cuDNN's fused
 * attention; on the emulation its plain-loop stand-in), sfpipe's own fused kernel (SF_NO_CUDNN=1:
 * attn_mass.cu without groups, cuDNN's stand-in), the same on wgmma (SF_ATTN_WGMMA=1 too:
 * attn_mass_wg.cu) and the explicit cuBLASLt path (SF_NO_CUDNN=1 SF_NO_FUSED_ATTN=1). On the emulation
 * each run is counted: the default's attentions all on cuDNN, the SF_NO_CUDNN run's all on the fused
 * kernel, and the explicit run launches no fused kernel. */
static void run_attn_path(int dev, const char *no_cudnn, const char *no_fused, float *out) {
    sf_err err = {{0}};
    dit_golden d;
    if (no_cudnn) setenv("SF_NO_CUDNN", "1", 1);
    if (no_fused) setenv("SF_NO_FUSED_ATTN", "1", 1);
    if (dit_golden_open_on(&d, "base", NULL, 1, 1, 0, dev)) SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, NULL, out, &err), &err);
    dit_golden_close(&d);
    unsetenv("SF_NO_CUDNN");
    unsetenv("SF_NO_FUSED_ATTN");
}
static void test_attention_paths(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    enum { N = 9 * 16 * 8 * 12 };
    static float od[N], oo[N], oe[N];
#ifdef SF_TEST_EMU
    const unsigned long long f0 = sf_emu_kernel_launches("attn_plain"), q0 = sf_emu_sdpa_calls();
#endif
    run_attn_path(dev, NULL, NULL, od);
#ifdef SF_TEST_EMU
    /* every attention of the run: 3 blocks × 4 steps × 3 layers × (self + cross) + the cache-only refresh
       passes of blocks 0 and 1 (the last block has none), whose last layer stops after its K/V:
       2 × 2 layers × 2 = 80; the default run's all on cuDNN (emulated), none on the fused kernel */
    const unsigned long long c1 = sf_emu_sdpa_calls();
    SF_CHECK_MSG(c1 - q0 == 80 && sf_emu_kernel_launches("attn_plain") == f0,
                 "default run: %llu cuDNN attentions (want 80), %llu fused launches (want none)", c1 - q0,
                 sf_emu_kernel_launches("attn_plain") - f0);
#endif
    run_attn_path(dev, "1", NULL, oo);
#ifdef SF_TEST_EMU
    const unsigned long long f1 = sf_emu_kernel_launches("attn_plain");
    SF_CHECK_MSG(f1 - f0 == 80 && sf_emu_sdpa_calls() == c1, "SF_NO_CUDNN run: %llu fused launches (want 80), %llu cuDNN",
                 f1 - f0, sf_emu_sdpa_calls() - c1);
#endif
    run_attn_path(dev, "1", "1", oe);
#ifdef SF_TEST_EMU
    SF_CHECK_MSG(sf_emu_kernel_launches("attn_plain") == f1, "the explicit run launched the fused kernel");
#endif
    /* sfpipe's other kernels, each asked for by its knob (the emulation is an sm_90): on Hopper's wgmma
       (attn_mass_wg.cu), warp-specialised with TMA (attn_mass_ws.cu), with the intra-warpgroup overlap and
       with the consumers' ping-pong; on the emulation each must have run every attention of the pipeline */
    static const struct {
        const char *env, *val, *kernel, *what;
        int emulated; /* also on the emulation (the others differ only inside the kernel: test_tap_mass) */
        int wide;     /* SF_ATTN_WS_BN=128 */
    } variants[] = {{"SF_ATTN_WGMMA", "1", "attn_plain_wg", "sfpipe's wgmma", 1, 0},
                    {"SF_ATTN_WS", "1", "attn_plain_ws", "sfpipe's warp-specialised", 0, 0},
                    {"SF_ATTN_WS", "2", "attn_plain_ws2", "sfpipe's overlapped warp-specialised", 1, 0},
                    {"SF_ATTN_WS", "3", "attn_plain_ws3", "sfpipe's ping-pong warp-specialised", 0, 0},
                    {"SF_ATTN_WS", "2", "attn_plain_ws2_n128", "sfpipe's overlapped warp-specialised, 128-key tiles", 0, 1}};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
#ifdef SF_TEST_EMU
        if (!variants[i].emulated) continue;
#endif
        static float ov[N];
        char what[96];
#ifdef SF_TEST_EMU
        const unsigned long long n0 = sf_emu_kernel_launches(variants[i].kernel), c0 = sf_emu_kernel_launches("attn_ws_combine");
        /* the warp-specialised kernel splits its last wave along the keys: on a GPU the tiny model's few
           units always leave a tail; the emulation (one SM) plans for 5 to make one (2 units: 2 splits) */
        const int ws = !strcmp(variants[i].env, "SF_ATTN_WS");
        if (ws) setenv("SF_ATTN_WS_SMS", "5", 1);
#endif
        setenv(variants[i].env, variants[i].val, 1);
        if (variants[i].wide) setenv("SF_ATTN_WS_BN", "128", 1);
        run_attn_path(dev, "1", NULL, ov);
        unsetenv(variants[i].env);
        unsetenv("SF_ATTN_WS_BN");
        /* on a GPU too: the variant ran (a kernel failing the state's self-check leaves the run on the
           explicit path, whose output would pass the comparison below) */
        const char *ran = sf_attn_mass_last_kernel();
        SF_CHECK_MSG(ran && !strcmp(ran, variants[i].kernel), "%s: the last fused attention was %s, not %s",
                     variants[i].what, ran ? ran : "none", variants[i].kernel);
#ifdef SF_TEST_EMU
        /* counts by name prefix ("attn_plain_ws" also counts "attn_plain_ws2"): each run launches one variant */
        SF_CHECK_MSG(sf_emu_kernel_launches(variants[i].kernel) - n0 == 80, "%s: %llu launches of %s (want 80)",
                     variants[i].what, sf_emu_kernel_launches(variants[i].kernel) - n0, variants[i].kernel);
        if (ws) { /* every attention of the run split (self and cross: 2 units of 2 or more key tiles each) */
            unsetenv("SF_ATTN_WS_SMS");
            SF_CHECK_MSG(sf_emu_kernel_launches("attn_ws_combine") - c0 == 80, "%s: %llu split combines (want 80)",
                         variants[i].what, sf_emu_kernel_launches("attn_ws_combine") - c0);
        }
#endif
        snprintf(what, sizeof what, "%s vs explicit attention output", variants[i].what);
        sf_test_rel_close(what, ov, oe, N, SF_TOL_BF16_FWD);
    }
#ifdef SF_TEST_EMU
    /* a fused kernel that does nothing on this "GPU" (the emulation's fault injection): the state's
       self-check catches it and the run takes the explicit path — the explicit run's bits */
    static float of[N];
    setenv("SF_EMU_SKIP_KERNEL", "attn_", 1);
    run_attn_path(dev, "1", NULL, of);
    unsetenv("SF_EMU_SKIP_KERNEL");
    SF_CHECK_MSG(!memcmp(of, oe, sizeof of), "a run whose fused kernel fails its self-check is not the explicit run");
    /* a fused kernel that faults (an illegal address) loses the GPU context, and then no other path can stand
       in: the run must stop at the self-check saying so, and how to run without the kernel — not log a
       fallback and die at the next allocation as "out of memory" */
    setenv("SF_EMU_FAULT_KERNEL", "attn_", 1);
    setenv("SF_NO_CUDNN", "1", 1);
    dit_golden fd;
    if (dit_golden_open_on(&fd, "base", NULL, 1, 1, 0, dev)) {
        sf_err fe = {{0}};
        sf_status fs = sf_pipeline_run(&fd.st, &fd.sc, &fd.pc, NULL, of, &fe);
        SF_CHECK_MSG(fs == SF_E_DEVICE && strstr(fe.msg, "broke the GPU context in its self-check") &&
                         strstr(fe.msg, "cudaErrorIllegalAddress") && strstr(fe.msg, "rerun with SF_NO_FUSED_ATTN=1"),
                     "a faulting fused kernel: status %d, '%s'", fs, fe.msg);
    }
    dit_golden_close(&fd);
    unsetenv("SF_NO_CUDNN");
    unsetenv("SF_EMU_FAULT_KERNEL");
    sf_emu_reset(); /* the emulated context works again for the cases after this one */
#endif
    sf_test_rel_close("default vs explicit attention output", od, oe, N, SF_TOL_BF16_FWD);
    sf_test_rel_close("sfpipe's fused vs explicit attention output", oo, oe, N, SF_TOL_BF16_FWD);
    sf_test_rel_close("default vs sfpipe's fused attention output", od, oo, N, SF_TOL_BF16_FWD);
}

/* The rolling KV cache with a sink on the GPU (device copies of the roll, RoPE at absolute
 * positions after eviction) against the CPU state on the same inputs: 12 frames in blocks of 3
 * through a 6-frame window with a 1-frame sink, with and without an independent first frame;
 * every forward's flow within the single-forward bf16 tolerance of the CPU's (each forward
 * starts from the same x, so the error does not compound). With sw >= 0, a prompt switch before block
 * sw (live.h): both states get another context (sf_dit_set_context must replace the GPU's) and
 * re-cache their window (sf_dit_recache on the device) from the same clean inputs; the later flows
 * must still agree (a GPU that kept the old context fails that: checked when written). */
enum { RFR = 16 * 8 * 12 };
static float rc_hist[12 * RFR]; /* the refresh passes' inputs by absolute frame: the "clean latents" */
static const float *rc_frame(void *ctx, int64_t f) { (void)ctx; return f >= 0 && f < 12 ? rc_hist + f * RFR : NULL; }

static void rolling_case(int iff, int sw) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    dit_golden d;
    if (!dit_golden_open(&d, "base", NULL, 1, 1, 0)) {
        dit_golden_close(&d);
        return;
    }
    /* sharper self-attention (q's RMSNorm weight × 3, both states share the weights): the golden model's rows
       are near-uniform over the window, where a key at the wrong RoPE position moved the flows by ~2 % of
       max|ref| and passed; sharpened, such a bug moves them several times the tolerance */
    for (int l = 0; l < d.cfg.num_layers; l++)
        for (int i = 0; i < d.cfg.dim; i++) d.w.layers[l].sa_nq[i] *= 3.0f;
    sf_dit_state gs;
    const long las = 6, sink = 1;
    sf_status s = sf_dit_state_init_on(&gs, &d.w, 3, 8, 12, las, las, sink, 1, dev, &err);
    SF_CHECK_OK(s, &err);
    sf_dit_state cs;
    SF_CHECK_OK(sf_dit_state_init(&cs, &d.w, 3, 8, 12, las, las, sink, 1, &err), &err);
    const sf_tensor *pe = sf_tfile_get(d.g, "context.prompt_embeds");
    if (!s) {
        SF_CHECK_OK(sf_dit_set_context(&gs, d.emb, pe->shape[1], &err), &err);
        SF_CHECK_OK(sf_dit_set_context(&cs, d.emb, pe->shape[1], &err), &err);
        enum { FR = RFR };
        static float x[3 * FR], fg[3 * FR], fc[3 * FR];
        int64_t ne = pe->shape[1] * pe->shape[2];
        float *emb2 = malloc(sizeof(float) * (size_t)ne);
        for (int64_t i = 0; i < ne; i++) emb2[i] = -0.5f * d.emb[ne - 1 - i] + 0.25f;
        uint64_t r = 0x1234567u + (uint64_t)iff;
        int64_t start = 0;
        for (int b = 0; start < 12 - (iff ? 2 : 0); b++) {
            int F = iff && b == 0 ? 1 : 3;
            if (b == sw) { /* the prompt switch with LongLive's re-cache, on both backends */
                SF_CHECK_OK(sf_dit_set_context(&gs, emb2, pe->shape[1], &err), &err);
                SF_CHECK_OK(sf_dit_set_context(&cs, emb2, pe->shape[1], &err), &err);
                SF_CHECK_OK(sf_dit_recache(&gs, 0.0f, 3, iff, rc_frame, NULL, &err), &err);
                SF_CHECK_OK(sf_dit_recache(&cs, 0.0f, 3, iff, rc_frame, NULL, &err), &err);
            }
            for (int k = 0; k < 2; k++) { /* a denoising step, then the refresh at t = 0 (same slots) */
                for (int i = 0; i < F * FR; i++) { /* fresh inputs, never zero */
                    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                    x[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 4.0 - 2.0) + 1e-3f;
                }
                float t[3] = {k ? 0.0f : 750.0f, k ? 0.0f : 750.0f, k ? 0.0f : 750.0f};
                if (k) memcpy(rc_hist + start * FR, x, sizeof(float) * (size_t)(F * FR));
                SF_CHECK_OK(sf_dit_forward(&gs, x, F, t, start, fg, &err), &err);
                SF_CHECK_OK(sf_dit_forward(&cs, x, F, t, start, fc, &err), &err);
                char nm[128];
                snprintf(nm, sizeof nm, "rolling%s block %d pass %d (start %lld)", iff ? " iff" : "", b, k,
                         (long long)start);
                sf_test_rel_close(nm, fg, fc, (int64_t)F * FR, SF_TOL_BF16_FWD);
            }
            start += F;
        }
        SF_CHECK(gs.local_end == cs.local_end && gs.global_end == cs.global_end);
        sf_cuda_graph_stats gst; /* each block's second pass has its first pass's shape: a graph (with the roll) */
        sf_dit_cuda_graph_stats(&gs, &gst);
        SF_CHECK_MSG(gst.launches >= 3 && gst.failed == 0, "rolling cache: %lld graphs launched, %lld failed", gst.launches,
                     gst.failed);
        free(emb2);
        sf_dit_state_free(&gs);
    }
    sf_dit_state_free(&cs);
    dit_golden_close(&d);
}
static void test_rolling_cache(void) { rolling_case(0, -1); }
static void test_rolling_cache_first_frame(void) { rolling_case(1, -1); }
static void test_prompt_switch(void) { rolling_case(1, 3); }


static const sf_test tests[] = {
    {"refusal", test_refusal},
    {"forward", test_forward},
    {"pipeline_base", test_pipeline_base},
    {"pipeline_runs_ahead", test_pipeline_runs_ahead},
    {"pipeline_generator", test_pipeline_generator},
    {"pipeline_initial", test_pipeline_initial},
    {"refresh_kv_only", test_refresh_kv_only},
    {"graphs", test_graphs},
    {"gelu_epilogue_refused", test_gelu_epilogue_refused},
    {"pipeline_generator_ema", test_pipeline_generator_ema},
    {"taps_logits", test_taps_logits},
    {"taps_workspace_at_prepare", test_taps_workspace_at_prepare},
    {"taps_frames", test_taps_frames},
    {"taps_seed", test_taps_seed},
    {"taps_probs_cross", test_taps_probs_cross},
    {"taps_probs_graphs", test_taps_probs_graphs},
    {"taps_tokens", test_taps_tokens},
    {"taps_frames_cross", test_taps_frames_cross},
    {"attention_paths", test_attention_paths},
    {"rolling_cache", test_rolling_cache},
    {"rolling_cache_first_frame", test_rolling_cache_first_frame},
    {"prompt_switch", test_prompt_switch},
};
SF_TEST_MAIN(tests)
