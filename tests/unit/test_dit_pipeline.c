/* test_dit_pipeline.c — the causal loop against dit_pipeline_{base,generator,generator_ema}:
 * replayed noise, 3 blocks × (4 steps + refresh); every pred.<b>.<s> (s = 4: the refresh pass)
 * and the final output; checkpoint key selection (generator / generator_ema with the 'model.'
 * prefix); bit-identical results for 1 and 2 threads; the seeded generator is reproducible.
 * Metric as dit_manifest.json: max|x − golden| / max|golden| <= SF_TOL_FP32_PIPE (1e-4) for pipeline
 * tensors (its fp32 tolerance "pipeline preds/outputs ~1e-4..1e-3"; we measure ~7e-7). */
#define _POSIX_C_SOURCE 200809L
#include "dit_golden.h"
#include "stages/denoise/taps.h"

#include <stdio.h>
#include <unistd.h>

/* n floats against golden tensor ref (of n elements) within SF_TOL_FP32_PIPE. */
static void pipe_close(const char *what, const float *got, const sf_tensor *ref, int64_t n) {
    SF_CHECK_MSG(ref && sf_tensor_numel(ref) == n, "%s: golden missing or not %lld elements", what, (long long)n);
    if (!ref || sf_tensor_numel(ref) != n) return;
    float *r = malloc(sizeof(float) * (size_t)n);
    sf_tensor_to_f32(ref, r);
    sf_test_rel_close(what, got, r, (size_t)n, SF_TOL_CPU(SF_TOL_FP32_PIPE, SF_TOL_BF16_PIPE));
    free(r);
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
    const sf_tensor *t = sf_tfile_get(c->g, nm);
    SF_CHECK_MSG(t != NULL, "missing %s", nm);
    if (!t) return SF_OK;
    pipe_close(nm, x0, t, (int64_t)F * 16 * 8 * 12);
    c->n_pred++;
    return SF_OK;
}

/* Run one golden mode; out (9,16,8,12) is filled. */
static void run_mode(const char *mode, const char *ckpt_key, int nthreads, int use_noise, uint64_t seed, float *out,
                     int check) {
    sf_err err = {{0}};
    dit_golden d;
    if (dit_golden_open(&d, mode, ckpt_key, nthreads, use_noise, seed)) {
        pctx c = {d.g, 0};
        sf_pipeline_hooks hk = {NULL, check ? on_pred : NULL, NULL, &c, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, out, &err), &err);
        if (check) {
            SF_CHECK_MSG(c.n_pred == 15, "%d preds", c.n_pred);
            char nm[64];
            snprintf(nm, sizeof nm, "%s output", mode);
            pipe_close(nm, out, sf_tfile_get(d.g, "output"), 9 * 16 * 8 * 12);
            SF_CHECK(d.st.global_end == 216 && d.st.local_end == 216);
        }
    }
    dit_golden_close(&d);
}

enum { NOUT = 9 * 16 * 8 * 12 };

static void test_base(void) {
    static float a[NOUT], b[NOUT];
    run_mode("base", NULL, 1, 1, 0, a, 1);
    sf_test_exact(1); /* thread-count invariance: the exact mode's promise */
    run_mode("base", NULL, 1, 1, 0, a, 0);
    run_mode("base", NULL, 2, 1, 0, b, 0);
    sf_test_exact(0);
    SF_CHECK_MSG(memcmp(a, b, sizeof a) == 0, "1 vs 2 threads differ");
}

static void test_generator(void) {
    static float a[NOUT];
    run_mode("generator", "generator", 2, 1, 0, a, 1);
}

static void test_generator_ema(void) {
    static float a[NOUT];
    run_mode("generator_ema", "generator_ema", 2, 1, 0, a, 1);
}

static void test_seeded(void) {
    static float a[NOUT], b[NOUT], c[NOUT];
    run_mode("base", NULL, 1, 0, 42, a, 0);
    run_mode("base", NULL, 2, 0, 42, b, 0);
    run_mode("base", NULL, 2, 0, 43, c, 0);
    SF_CHECK(memcmp(a, b, sizeof a) == 0);
    SF_CHECK(memcmp(a, c, sizeof a) != 0);
    int finite = 1;
    for (int i = 0; i < NOUT; i++) finite &= isfinite(a[i]);
    SF_CHECK(finite);
}

/* The refresh pass writes only the KV cache when nobody reads its prediction (sf_dit_refresh): the
 * last layer stops after its K/V, no head runs. Against the full pass (a prediction hook forces it):
 * the same output and the same bits in every layer's cache, in the exact mode; the head ran for
 * 12 forwards instead of 15, the last layer's output was made 12 times instead of 15, and the aux
 * slot (where the full pass puts its prediction) was never written. */
typedef struct kvrun {
    int heads, last_out, layers;
    char last_name[64];
    size_t per;            /* floats per layer's K (or V) cache */
    float *kv;             /* every layer's K then V cache, copied after the run */
    float aux[NOUT / 3];   /* slot aux after the run (one block) */
    float out[NOUT];
} kvrun;
static void count_probe(void *vc, const char *name, const float *p, int64_t n) {
    (void)p, (void)n;
    kvrun *c = vc;
    c->heads += strcmp(name, "mid.head_out") == 0;
    c->last_out += strcmp(name, c->last_name) == 0;
}
static sf_status read_pred(void *vc, int b, int s, int F, const float *x0, sf_err *err) {
    (void)vc, (void)b, (void)s, (void)F, (void)x0, (void)err;
    return SF_OK;
}
static void refresh_run(int full, kvrun *c) {
    sf_err err = {{0}};
    dit_golden d;
    memset(c, 0, sizeof *c);
    if (dit_golden_open(&d, "base", NULL, 2, 1, 0)) {
        c->layers = d.cfg.num_layers;
        snprintf(c->last_name, sizeof c->last_name, "mid.block%d.out", c->layers - 1);
        d.st.probe = count_probe;
        d.st.probe_ctx = c;
        sf_pipeline_hooks hk = {NULL, full ? read_pred : NULL, NULL, NULL, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, c->out, &err), &err);
        c->per = (size_t)d.st.cache_tokens * (size_t)d.cfg.dim;
        c->kv = malloc(2 * (size_t)c->layers * c->per * sizeof(float));
        for (int l = 0; l < c->layers && c->kv; l++) {
            memcpy(c->kv + (2 * (size_t)l) * c->per, d.st.kc[l], c->per * sizeof(float));
            memcpy(c->kv + (2 * (size_t)l + 1) * c->per, d.st.vc[l], c->per * sizeof(float));
        }
        SF_CHECK_OK(sf_dit_lat_get(&d.st, SF_LAT_AUX, c->aux, NOUT / 3, &err), &err);
    }
    dit_golden_close(&d);
}

static void test_refresh_kv_only(void) {
    static kvrun full, fast;
    sf_test_exact(1);
    refresh_run(1, &full);
    refresh_run(0, &fast);
    sf_test_exact(0);
    SF_CHECK(full.kv && fast.kv && full.per == fast.per && full.per > 0);
    SF_CHECK_MSG(memcmp(full.out, fast.out, sizeof full.out) == 0, "output differs with the cache-only refresh");
    if (full.kv && fast.kv)
        for (int l = 0; l < full.layers; l++)
            for (int kv = 0; kv < 2; kv++) {
                const float *a = full.kv + (2 * (size_t)l + kv) * full.per, *b = fast.kv + (2 * (size_t)l + kv) * fast.per;
                size_t i = 0;
                while (i < full.per && memcmp(&a[i], &b[i], sizeof a[i]) == 0) i++;
                SF_CHECK_MSG(i == full.per, "layer %d %s cache differs at %zu: %g vs %g", l, kv ? "V" : "K", i,
                             i < full.per ? a[i] : 0.0, i < full.per ? b[i] : 0.0);
            }
    SF_CHECK_MSG(full.heads == 15 && fast.heads == 12, "head ran %d / %d times (expected 15 / 12)", full.heads,
                 fast.heads);
    SF_CHECK_MSG(full.last_out == 15 && fast.last_out == 12, "last layer's output made %d / %d times (expected 15 / 12)",
                 full.last_out, fast.last_out);
    int aux_full = 0, aux_fast = 0;
    for (int i = 0; i < NOUT / 3; i++) aux_full |= full.aux[i] != 0.0f, aux_fast |= fast.aux[i] != 0.0f;
    SF_CHECK_MSG(aux_full && !aux_fast, "aux slot written: full %d, cache-only %d (expected 1, 0)", aux_full, aux_fast);
    free(full.kv);
    free(fast.kv);
}

static void test_block_layout_errors(void) {
    sf_err err = {{0}};
    int nb;
    sf_pipeline_cfg pc = {{1000}, 1, 3, 0, 0.0f, 10, 8, 12, 16, 0, NULL, 0, 0, {0, 0, 0, 0}, 0, 0, NULL, 0};
    SF_CHECK(sf_pipeline_check(&pc, &nb, &err) == SF_E_ARG && strstr(err.msg, "multiple"));
    pc.num_frames = 12;
    SF_CHECK(sf_pipeline_check(&pc, &nb, &err) == SF_OK && nb == 4);
    pc.independent_first_frame = 1;
    pc.num_frames = 10;
    SF_CHECK(sf_pipeline_check(&pc, &nb, &err) == SF_OK && nb == 4);
}

/* The last block's refresh pass is skipped when nothing reads it (pipeline.h): 14 forwards instead of
 * 15, the same output bits, and the same cache except the last block's slots (which hold the last
 * step's K/V instead of the clean pass's); cfg.last_refresh and taps that want that forward bring it
 * back. Exact mode, so "the same" is bit for bit. */
typedef struct lastrun {
    int fwds, refreshes; /* forwards started; of them refresh passes */
    float out[NOUT];
    float *kv;           /* layer 0's K cache then the last layer's V cache after the run */
    size_t per, blk;     /* floats per cache; per block of 3 frames */
} lastrun;
static void count_fwd(void *vc, int b, int s, int64_t start, int F) {
    lastrun *c = vc;
    (void)b, (void)start, (void)F;
    c->fwds++;
    c->refreshes += s == 4;
}
static void last_run(lastrun *c, int last_refresh, int tap_sel, int tap_b, int tap_s) {
    sf_err err = {{0}};
    dit_golden d;
    sf_taps t;
    memset(c, 0, sizeof *c);
    if (dit_golden_open(&d, "base", NULL, 2, 1, 0)) {
        d.pc.last_refresh = last_refresh;
        const int layer = 0;
        int tapped = tap_sel >= 0;
        if (tapped) {
            SF_CHECK_OK(sf_taps_init(&t, SF_TAP_FRAMES, (sf_tap_sel)tap_sel, tap_b, tap_s, &layer, 1, d.cfg.num_layers, &err), &err);
            sf_taps_attach(&t, &d.st);
        }
        sf_pipeline_hooks hk = {count_fwd, NULL, NULL, c, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, c->out, &err), &err);
        const int L = d.cfg.num_layers;
        c->per = (size_t)d.st.cache_tokens * (size_t)d.cfg.dim;
        c->blk = 3 * (size_t)d.st.frame_tokens * (size_t)d.cfg.dim;
        c->kv = malloc(2 * c->per * sizeof(float));
        if (c->kv) {
            memcpy(c->kv, d.st.kc[0], c->per * sizeof(float));
            memcpy(c->kv + c->per, d.st.vc[L - 1], c->per * sizeof(float));
        }
        if (!last_refresh && !tapped) pipe_close("last_refresh skipped: output", c->out, sf_tfile_get(d.g, "output"), NOUT);
        if (tapped) sf_taps_free(&t);
    }
    dit_golden_close(&d);
}
static void test_last_refresh(void) {
    static lastrun skip, full, tap;
    sf_test_exact(1);
    last_run(&skip, 0, -1, 0, 0);
    last_run(&full, 1, -1, 0, 0);
    SF_CHECK_MSG(skip.fwds == 14 && skip.refreshes == 2, "default: %d forwards, %d refresh passes (want 14, 2)", skip.fwds,
                 skip.refreshes);
    SF_CHECK_MSG(full.fwds == 15 && full.refreshes == 3, "last_refresh: %d forwards, %d refresh passes (want 15, 3)",
                 full.fwds, full.refreshes);
    SF_CHECK_MSG(memcmp(skip.out, full.out, sizeof skip.out) == 0, "the output differs without the last refresh pass");
    if (skip.kv && full.kv && skip.per == full.per && skip.per >= 3 * skip.blk)
        for (int c = 0; c < 2; c++) { /* K of layer 0, V of the last layer */
            const float *a = skip.kv + c * skip.per, *b = full.kv + c * full.per;
            SF_CHECK_MSG(!memcmp(a, b, 2 * skip.blk * sizeof(float)), "cache %d: blocks 0-1 differ", c);
            SF_CHECK_MSG(memcmp(a + 2 * skip.blk, b + 2 * skip.blk, skip.blk * sizeof(float)) != 0,
                         "cache %d: the last block's K/V are the same with and without its refresh pass", c);
        }
    else
        SF_CHECK_MSG(0, "cache sizes: %zu / %zu floats, %zu per block", skip.per, full.per, skip.blk);
    /* taps: the seed selection (step 0 of each block) and a single forward elsewhere do not read it, all
       forwards and the pass itself do */
    const struct { int sel, b, s, fwds; } cases[] = {{SF_TAP_SEL_SEED, 0, 0, 14}, {SF_TAP_SEL_ONE, 1, 4, 14},
                                                     {SF_TAP_SEL_ONE, 2, 4, 15}, {SF_TAP_SEL_ALL, 0, 0, 15}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        last_run(&tap, 0, cases[i].sel, cases[i].b, cases[i].s);
        SF_CHECK_MSG(tap.fwds == cases[i].fwds, "taps selection %d (block %d step %d): %d forwards (want %d)", cases[i].sel,
                     cases[i].b, cases[i].s, tap.fwds, cases[i].fwds);
        SF_CHECK_MSG(memcmp(skip.out, tap.out, sizeof skip.out) == 0, "taps selection %d: the output differs", cases[i].sel);
        free(tap.kv);
    }
    sf_test_exact(0);
    free(skip.kv);
    free(full.kv);
}

/* The reference's noise stream (cfg.torch_noise, rng_torch.h): the run equals the same run replaying,
 * from a file, the draws sf_torch_cuda_randn makes in the reference's order — the initial noise one
 * launch at the generator's offset, then each re-noising draw a launch of its own, all bf16 — and
 * differs from sfpipe's own stream for that seed. A card of 1 SM x 256 threads, so that every launch
 * takes several grid-stride steps. With iff, an independent first frame: 7 frames in blocks of 1, 3, 3. */
static void torch_noise_case(int batch, int sample, int iff) {
    static float a[NOUT], b[NOUT], c[NOUT];
    enum { FR = 16 * 8 * 12, DRAWS = 3 * 3 };
    const sf_torch_cuda_rng g0 = {5, 16, 1, 256};
    const int B = batch > 1 ? batch : 1, T = iff ? 7 : 9;
    const int64_t n_out = (int64_t)T * FR;
    sf_err err = {{0}};
    dit_golden d;
    if (dit_golden_open(&d, "base", NULL, 2, 0, 5)) {
        sf_pipeline_hooks hk = {NULL, NULL, NULL, NULL, 0, NULL};
        d.pc.independent_first_frame = iff, d.pc.num_frames = T;
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, c, &err), &err);
        d.pc.torch_noise = 1, d.pc.torch = g0, d.pc.torch_batch = batch, d.pc.torch_sample = sample;
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, a, &err), &err);
        /* a card of 256 threads: a launch of n takes 4·ceil(n / 1024); 9 frames of 8x12 latents, 3 blocks */
        if (!iff) SF_CHECK(sf_pipeline_torch_noise_span(&d.pc) == (B == 1 ? 56u + 9 * 20 : 108u + 9 * 36));
    }
    dit_golden_close(&d);
    static float init[NOUT], draw[DRAWS][3 * FR];
    int64_t dn[DRAWS]; /* draw k's floats: block k / 3's frames */
    sf_torch_cuda_rng g = g0; /* this video's slice of each launch of B videos */
    sf_torch_cuda_randn_range(&g, B * n_out, sample * n_out, (sample + 1) * n_out, 1, init, 1);
    g.offset += sf_torch_cuda_randn_increment(&g, B * n_out);
    for (int k = 0; k < DRAWS; k++) {
        dn[k] = (iff && k < 3 ? 1 : 3) * FR;
        sf_torch_cuda_randn_range(&g, B * dn[k], sample * dn[k], (sample + 1) * dn[k], 1, draw[k], 1);
        g.offset += sf_torch_cuda_randn_increment(&g, B * dn[k]);
    }
    if (iff) { /* the feed's walk and the span's are one (pipeline.c noise_draw_numel) */
        const sf_pipeline_cfg pc = {{1000}, 4, 3, 1, 0.0f, T, 8, 12, 16, 5, NULL, 0, 1, g0, batch, sample, NULL, 0};
        SF_CHECK(sf_pipeline_torch_noise_span(&pc) == g.offset - g0.offset);
    }
    sf_tensor_entry e[1 + DRAWS];
    char names[DRAWS][32];
    int64_t si[5] = {1, T, 16, 8, 12}, sd[DRAWS][4];
    e[0] = (sf_tensor_entry){"noise.init", sf_tensor_view(init, SF_F32, 5, si)};
    for (int k = 0; k < DRAWS; k++) {
        snprintf(names[k], sizeof names[k], "noise.renoise.%d", k);
        sd[k][0] = dn[k] / FR, sd[k][1] = 16, sd[k][2] = 8, sd[k][3] = 12;
        e[1 + k] = (sf_tensor_entry){names[k], sf_tensor_view(draw[k], SF_F32, 4, sd[k])};
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/sf_test_torch_noise_%d.safetensors", (int)getpid());
    SF_CHECK_OK(sf_safetensors_write(path, e, 1 + DRAWS, NULL, 0, &err), &err);
    sf_tfile *rf = NULL;
    SF_CHECK_OK(sf_tfile_open(path, &rf, &err), &err);
    if (rf && dit_golden_open(&d, "base", NULL, 2, 0, 5)) {
        d.pc.noise = rf;
        d.pc.independent_first_frame = iff, d.pc.num_frames = T;
        sf_pipeline_hooks hk = {NULL, NULL, NULL, NULL, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, b, &err), &err);
        dit_golden_close(&d);
    }
    sf_tfile_destroy(&rf);
    unlink(path);
    SF_CHECK_MSG(memcmp(a, b, sizeof(float) * (size_t)n_out) == 0, "batch %d sample %d iff %d", batch, sample, iff);
    SF_CHECK(memcmp(a, c, sizeof(float) * (size_t)n_out) != 0);
}

/* Initial latents (the reference's initial_latent) against dit_pipeline_initial (dit_golden.h): video extension
 * (3 frames) and image-to-video (1 frame, an independent first frame, so no 1-frame block after it). The output's
 * first F_in frames are the given ones bit for bit, handed out first (block -1, start 0); the rest within the
 * pipeline tolerance; the context forwards call no hook (2 blocks × 5 forwards, the last refresh skipped). */
typedef struct initrun {
    int blocks, fwds, order_ok;
    int64_t next;          /* the frame the next handed-out block must start at */
} initrun;
static void init_on_forward(void *vc, int b, int s, int64_t start, int F) {
    initrun *c = vc;
    (void)s, (void)F;
    c->fwds++;
    c->order_ok &= b >= 0 && start >= 1;
}
static sf_status init_on_block(void *vc, int b, int64_t start, int F, const float *x0, sf_err *err) {
    initrun *c = vc;
    (void)x0, (void)err;
    c->order_ok &= b == c->blocks - 1 && start == c->next;
    c->blocks++;
    c->next = start + F;
    return SF_OK;
}
static void initial_case(const char *kase) {
    sf_err err = {{0}};
    dit_golden d;
    dit_golden_initial gi;
    if (dit_golden_initial_open(&d, &gi, kase, 2, -1)) {
        float *out = calloc((size_t)gi.n_out, sizeof(float));
        initrun c = {0, 0, 1, 0};
        sf_pipeline_hooks hk = {init_on_forward, NULL, init_on_block, &c, 0, NULL};
        SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, &hk, out, &err), &err);
        SF_CHECK_MSG(memcmp(out, gi.init, sizeof(float) * (size_t)gi.F_in * 16 * 8 * 12) == 0,
                     "%s: the output does not start with the initial latents", kase);
        pipe_close(kase, out, gi.ref, gi.n_out);
        SF_CHECK_MSG(c.order_ok && c.blocks == 3 && c.next == gi.F_in + 6 && c.fwds == 9,
                     "%s: %d blocks out (want 3: -1, 0, 1), %d hooked forwards (want 9)", kase, c.blocks, c.fwds);
        free(out);
    }
    dit_golden_initial_close(&d, &gi);
}
static void test_initial_latents(void) {
    initial_case("ext");
    initial_case("i2v");
}

/* A replay file of views into g's noise: noise.init frames [f0, f0 + T), then g's draws k0, k0 + 1, ... as
 * noise.renoise.0 .. n-1, the first `ones` of them cut to their first frame (a 1-frame block's). */
static sf_tfile *noise_views(const sf_tfile *g, int f0, int T, int k0, int n, int ones) {
    sf_err err = {{0}};
    sf_tfile *tf = sf_tfile_new_empty("noise views");
    const sf_tensor *ni = sf_tfile_get(g, "noise.init");
    SF_CHECK(tf && ni && ni->dtype == SF_F32 && ni->shape[1] >= f0 + T);
    if (!tf || !ni || ni->dtype != SF_F32 || ni->shape[1] < f0 + T) return tf;
    const int64_t si[5] = {1, T, 16, 8, 12};
    sf_tensor t = sf_tensor_view((float *)ni->data + (int64_t)f0 * 16 * 8 * 12, SF_F32, 5, si);
    SF_CHECK_OK(sf_tfile_add(tf, "noise.init", &t, &err), &err);
    for (int k = 0; k < n; k++) {
        char nm[64];
        snprintf(nm, sizeof nm, "noise.renoise.%d", k0 + k);
        const sf_tensor *r = sf_tfile_get(g, nm);
        SF_CHECK_MSG(r != NULL, "missing %s", nm);
        if (!r) continue;
        const int64_t sd[4] = {k < ones ? 1 : 3, 16, 8, 12};
        t = sf_tensor_view(r->data, SF_F32, 4, sd);
        snprintf(nm, sizeof nm, "noise.renoise.%d", k);
        SF_CHECK_OK(sf_tfile_add(tf, nm, &t, &err), &err);
    }
    return tf;
}

/* A run's own first frames as initial latents, with the rest of its noise, extend to that run bit for bit: the
 * context forwards (chunk by chunk, at t = 0) write the cache the run's own forwards and refresh passes (at
 * context_noise 0) left. Several context chunks: 6 frames (two blocks of 3), and 4 with an independent first
 * frame (frame 0 alone, then 3 — the 1-frame block's draws are one frame). */
static void own_extension(int iff, int F_in) {
    sf_err err = {{0}};
    static float a[NOUT], b[NOUT];
    const int T = iff ? 7 : 9;
    for (int run = 0; run < 2; run++) { /* each on a fresh state: no K/V of the first run left for the second */
        dit_golden d;
        if (dit_golden_open(&d, "base", NULL, 2, 0, 0)) {
            sf_tfile *nv = run ? noise_views(d.g, F_in, T - F_in, 6, 3, 0) : noise_views(d.g, 0, T, 0, 9, iff ? 3 : 0);
            d.pc.noise = nv, d.pc.independent_first_frame = iff, d.pc.num_frames = run ? T - F_in : T;
            if (run) d.pc.init_latents = a, d.pc.init_frames = F_in;
            SF_CHECK_OK(sf_pipeline_run(&d.st, &d.sc, &d.pc, NULL, run ? b : a, &err), &err);
            sf_tfile_destroy(&nv);
        }
        dit_golden_close(&d);
    }
    SF_CHECK_MSG(memcmp(a, b, sizeof(float) * (size_t)T * 16 * 8 * 12) == 0,
                 "iff %d: %d initial frames of a run + the rest of its noise differ from the run", iff, F_in);
}
static void test_initial_own_extension(void) {
    own_extension(0, 6);
    own_extension(1, 4);
}

/* What initial latents cannot be: a count off the block rule, generated frames off whole blocks (no 1-frame
 * block after them); and the noise a video with them draws. */
static void test_initial_layout_errors(void) {
    sf_err err = {{0}};
    int nb;
    static const float x[1];
    sf_pipeline_cfg pc = {{1000}, 1, 3, 0, 0.0f, 6, 8, 12, 16, 0, NULL, 0, 0, {0, 0, 0, 0}, 0, 0, x, 2};
    SF_CHECK(sf_pipeline_check(&pc, &nb, &err) == SF_E_ARG && strstr(err.msg, "initial latents of 2 frames"));
    pc.init_frames = 6;
    SF_CHECK_OK(sf_pipeline_check(&pc, &nb, &err), &err);
    SF_CHECK(nb == 2);
    pc.independent_first_frame = 1; /* 1 + 3k initial frames; the generated ones whole blocks */
    SF_CHECK(sf_pipeline_check(&pc, &nb, &err) == SF_E_ARG && strstr(err.msg, "1 + a multiple"));
    pc.init_frames = 4;
    SF_CHECK_OK(sf_pipeline_check(&pc, &nb, &err), &err);
    SF_CHECK(nb == 2);
    pc.num_frames = 7; /* fine without initial latents (1 + 3 + 3), not with them */
    SF_CHECK(sf_pipeline_check(&pc, &nb, &err) == SF_E_ARG && strstr(err.msg, "every generated block has 3"));
    pc.num_frames = 0; /* endless: allowed (the run checks the rest) */
    SF_CHECK_OK(sf_pipeline_check(&pc, &nb, &err), &err);
    /* the reference's stream: with initial latents every re-noising draw is a whole block's (F_in aside), so a
       video takes what one without an independent first frame takes (--noise-sequence moves on by it) */
    sf_pipeline_cfg t = {{1000}, 4, 3, 1, 0.0f, 6, 8, 12, 16, 5, NULL, 0, 1, {5, 0, 1, 256}, 0, 0, x, 4};
    sf_pipeline_cfg u = t, v = t;
    u.init_latents = NULL, u.init_frames = 0, u.independent_first_frame = 0;
    v.init_latents = NULL, v.init_frames = 0, v.num_frames = 7;
    SF_CHECK(sf_pipeline_torch_noise_span(&t) == sf_pipeline_torch_noise_span(&u));
    SF_CHECK(sf_pipeline_torch_noise_span(&t) != sf_pipeline_torch_noise_span(&v));
}

static void test_torch_noise(void) {
    torch_noise_case(0, 0, 0);
    torch_noise_case(2, 1, 0); /* the second of two videos drawn at once (the reference's --num_samples 2) */
    torch_noise_case(2, 1, 1); /* an independent first frame: the first block's draws are one frame */
    sf_err err = {{0}};
    /* an endless run has no reference stream: 0 draws; sf_pipeline_check_endless refuses it */
    sf_pipeline_cfg pc = {{1000}, 1, 3, 0, 0.0f, 0, 8, 12, 16, 5, NULL, 0, 1, {5, 0, 1, 256}, 0, 0, NULL, 0};
    int nb = -1;
    SF_CHECK_OK(sf_pipeline_check(&pc, &nb, &err), &err);
    SF_CHECK(nb == 0 && sf_pipeline_torch_noise_span(&pc) == 0);
    SF_CHECK(sf_pipeline_check_endless(1, 6, 0, 0, &err) == SF_E_ARG && strstr(err.msg, "finite run"));
}

static const sf_test tests[] = {
    {"base", test_base},
    {"generator", test_generator},
    {"generator_ema", test_generator_ema},
    {"seeded", test_seeded},
    {"block_layout_errors", test_block_layout_errors},
    {"refresh_kv_only", test_refresh_kv_only},
    {"last_refresh", test_last_refresh},
    {"torch_noise", test_torch_noise},
    {"initial_latents", test_initial_latents},
    {"initial_layout_errors", test_initial_layout_errors},
    {"initial_own_extension", test_initial_own_extension},
};
SF_TEST_MAIN(tests)
