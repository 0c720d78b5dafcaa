/* test_sdpa_plans.c — kernels/sdpa_cuda.h (cuDNN flash attention, kernels/cuda/sdpa_cudnn.c).
 *
 * deviceless_plans (every `make test`, no GPU needed): builds and finalizes cuDNN execution plans
 * for the saved H200 description (tests/gpu/h200_deviceprop.json) for every attention shape the
 * pipelines use. It re-runs this binary as a child ("--deviceless-child") with the libcuda.so.1
 * stand-in $(BUILD)/tests/cudnn_stub/ first on LD_LIBRARY_PATH, so the stub never reaches the GPU
 * tests of this process. SKIP when libcudnn.so.9 cannot be loaded or the build has no CUDA.
 *
 * forward_gpu (with a GPU; SF_TEST_DEVICE=cuda:N picks it): sf_sdpa_forward on random bf16 data
 * against sf_attention_cpu on the same bf16-rounded inputs — output poisoned with NaN first, guard
 * bytes around it and in its row gaps, NaN in the inputs' row gaps; reports max |Δ|, the first bad
 * element with both values, NMSE; times the full-size call (TFLOP/s as a TAP comment).
 * First GPU run (H200, cuDNN 9.19.0): every case within 1/6 of its tolerance (NMSE ≈ 5e-6), also
 * with SF_CUDNN_ONLY=composite and ="unified enum"; 4680×32760 in 1.72 ms (547 TFLOP/s).
 * Run alone: build/tests/test_sdpa_plans deviceless_plans  (SF_CUDNN_DEBUG=1 shows every attempt).
 *
 * Built twice: test_sdpa_emu (-DSF_TEST_EMU) runs forward_gpu's tiny cases on the CPU emulation, whose
 * cuDNN attention is kernels/cuda/emu/sdpa_emu.cc's plain loop — the stand-in the emulated DiT and
 * pipelines take by default, held here to the CPU reference with the same guards, gaps and poison. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"

#include "attention.h"
#include "cuda_ops.h"
#include "device.h"
#include "sdpa_cuda.h"
#include "deviceless_test.h"


typedef struct sdpa_case {
    const char *what;
    int64_t Lq, Lk;
    int H, d;
    int64_t ldq, ldk, ldo;
} sdpa_case;

/* ---- deviceless plans --------------------------------------------------------------------- */

/* Full-size Wan 1.3B: 12 heads × 128, 1560 tokens per latent frame (30×52 patches), blocks of 3
 * frames → Lq 4680. Tiny golden model (tests/golden/model/config.json): dim 256, 2 heads × 128,
 * 24 tokens per frame (8×12 latents, patch 2×2), 9 frames = 3 blocks → Lq 72. */
enum { FULL_F = 1560, FULL_Q = 3 * FULL_F, TINY_F = 24, TINY_Q = 3 * TINY_F };

static int deviceless_cases(sdpa_case *c, int cap) {
    int n = 0;
#define ADD(w, lq, lk, h, dd, ld) \
    if (n < cap) c[n++] = (sdpa_case){w, lq, lk, h, dd, ld, ld, ld}
    /* self-attention, global cache of 21 frames (SPEC §5.7): block b attends to 4680·(b+1) keys */
    for (int b = 1; b <= 7; b++) ADD("self, 21-frame cache", FULL_Q, (int64_t)FULL_Q * b, 12, 128, 1536);
    /* pipelines/streaming.sh (SPEC §7.4): local_attn_size −1, sink_size 0, cache enlarged to
       num_frames = 120 frames → block b (0..39) attends to 4680·(b+1) keys, up to 187200 */
    for (int b = 8; b <= 40; b++) ADD("self, 120-frame streaming cache", FULL_Q, (int64_t)FULL_Q * b, 12, 128, 1536);
    ADD("self, independent first frame", FULL_F, FULL_F, 12, 128, 1536);
    ADD("cross-attention, 512 text rows", FULL_Q, 512, 12, 128, 1536);
    /* tiny golden DiT: 3 blocks of 3 frames, cross-attention over 512 rows, a 5-frame window */
    for (int b = 1; b <= 3; b++) ADD("tiny self", TINY_Q, (int64_t)TINY_Q * b, 2, 128, 256);
    ADD("tiny cross", TINY_Q, 512, 2, 128, 256);
    ADD("tiny 5-frame window", TINY_Q, 5 * TINY_F, 2, 128, 256);
    /* q straight from a fused QKV projection (row stride 3·H·d) */
    if (n < cap) c[n++] = (sdpa_case){"self, fused-qkv strides", FULL_Q, FULL_Q, 12, 128, 3 * 1536, 1536, 1536};
#undef ADD
    return n;
}

static const char *h200_json(char *buf, size_t n) { return sf_find_data("tests/gpu/h200_deviceprop.json", buf, n); }

/* The child: every case in this process (the stub libcuda is loaded). Exit 0 ok, 1 failures. */
static int deviceless_child(void) {
    sdpa_case c[64];
    char path[4096], desc[128];
    sf_err err = {{0}};
    int n = deviceless_cases(c, 64), bad = 0;
    sf_status st;
    const char *js = h200_json(path, sizeof path);
    if (!js) {
        printf("# tests/gpu/h200_deviceprop.json not found\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        double t0 = sf_now();
        st = sf_sdpa_plan_deviceless(js, c[i].Lq, c[i].Lk, c[i].H, c[i].d, c[i].ldq, c[i].ldk, c[i].ldo, desc,
                                               sizeof desc, &err);
        printf("# H200 %-32s Lq %5lld Lk %6lld H %2d d %d: %s (%.2f s)\n", c[i].what, (long long)c[i].Lq,
               (long long)c[i].Lk, c[i].H, c[i].d, st ? "FAILED" : desc, sf_now() - t0);
        if (st) printf("# %s: %s\n", sf_status_str(st), err.msg), bad++;
    }
    /* every search path on its own (SF_CUDNN_ONLY), so a GPU where heuristics return nothing
       still has a tested way to a plan; the unified graph's FALLBACK mode returns no configs in
       cuDNN 9.19 and is not required */
    static const char *paths[] = {"unified heurA", "unified enum", "composite heurA", "composite fallback",
                                  "composite enum"};
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        setenv("SF_CUDNN_ONLY", paths[p], 1);
        st = sf_sdpa_plan_deviceless(js, TINY_Q, 5 * TINY_F, 2, 128, 256, 256, 256, desc, sizeof desc, &err);
        printf("# H200 only \"%s\", Lq %d Lk %d: %s\n", paths[p], TINY_Q, 5 * TINY_F, st ? "FAILED" : desc);
        if (st) printf("# %s: %s\n", sf_status_str(st), err.msg), bad++;
    }
    unsetenv("SF_CUDNN_ONLY");
    /* clean failures: a missing description, a malformed one, a bad shape */
    st = sf_sdpa_plan_deviceless("/nonexistent/deviceprop.json", 72, 72, 2, 128, 256, 256, 256, desc,
                                           sizeof desc, &err);
    if (st != SF_E_IO) printf("# missing JSON gave %s, not IO\n", sf_status_str(st)), bad++;
    st = sf_sdpa_plan_deviceless(js, 72, 72, 2, 100, 256, 256, 256, desc, sizeof desc, &err);
    if (st != SF_E_ARG) printf("# d = 100 gave %s, not ARG\n", sf_status_str(st)), bad++;
    char tmp[] = "/tmp/sf_devprop_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd >= 0) {
        if (write(fd, "{\"not\":\"a device\"}", 18) != 18) bad++;
        close(fd);
        st = sf_sdpa_plan_deviceless(tmp, 72, 72, 2, 128, 256, 256, 256, desc, sizeof desc, &err);
        if (st != SF_E_FORMAT) printf("# malformed JSON gave %s, not FORMAT (%s)\n", sf_status_str(st), err.msg), bad++;
        unlink(tmp);
    }
    fflush(stdout);
    return bad ? 1 : 0;
}

static void test_deviceless_plans(void) {
#ifdef SF_TEST_EMU
    (void)sf_test_run_deviceless_child;
    SF_TEST_SKIP("deviceless cuDNN plans are not emulated (test_sdpa_plans builds them)");
#else
    sf_test_run_deviceless_child();
#endif
}

/* ---- forward on a GPU --------------------------------------------------------------------- */

#define GUARD 64  /* bf16 sentinel elements each side of O */
#define SENT 0xA5 /* sentinel byte */

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static float urand(float lo, float hi) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) / 16777216.0);
}
/* (L, ld) bf16-exact values in [lo, hi) for the first w columns, NaN in the row gaps. */
static float *hrows(int64_t L, int64_t w, int64_t ld, float lo, float hi) {
    float *p = malloc(sizeof *p * (size_t)(L * ld));
    for (int64_t i = 0; p && i < L * ld; i++) p[i] = i % ld < w ? sf_round_bf16(urand(lo, hi)) : NAN;
    return p;
}

typedef struct gpu {
    sf_cuda_ctx ctx;
    sf_sdpa *sdpa;
    sf_err err;
} gpu;

/* Query rows checked against the CPU: all of them for small Lq, an even spread (plus the last)
 * for the large shapes, whose full reference would take minutes on the CPU. */
static int64_t check_rows(int64_t Lq, int64_t *rows, int64_t cap) {
    int64_t n = Lq <= cap ? Lq : cap, step = Lq <= cap ? 1 : Lq / (cap - 1);
    for (int64_t i = 0; i < n; i++) rows[i] = i * step < Lq ? i * step : Lq - 1;
    rows[n - 1] = Lq - 1;
    return n;
}

/* One case: returns 0 when everything matched. */
static int forward_case(gpu *g, const sdpa_case *c, int timed) {
    const int64_t w = (int64_t)c->H * c->d;
    const float scale = 1.0f / sqrtf((float)c->d);
    float *hq = hrows(c->Lq, w, c->ldq, -2, 2), *hk = hrows(c->Lk, w, c->ldk, -2, 2), *hv = hrows(c->Lk, w, c->ldk, -1, 1);
    size_t obytes = ((size_t)(c->Lq * c->ldo) + 2 * GUARD) * 2;
    void *dq = NULL, *dk = NULL, *dv = NULL, *dout = NULL;
    unsigned char *ho = malloc(obytes);
    int64_t rows[65], nr = check_rows(c->Lq, rows, 65);
    float *qs = malloc(sizeof *qs * (size_t)(nr * w)), *ref = malloc(sizeof *ref * (size_t)(nr * w));
    int fails = 0;
    sf_err *e = &g->err;
    SF_CHECK(hq && hk && hv && ho && qs && ref);
    if (!hq || !hk || !hv || !ho || !qs || !ref) goto done;
#define T(x)                              \
    do {                                  \
        sf_status s_ = (x);               \
        SF_CHECK_OK(s_, e);               \
        if (s_) goto done;                \
    } while (0)
    T(sf_cuda_malloc(&dq, (size_t)(c->Lq * c->ldq) * 2, e));
    T(sf_cuda_malloc(&dk, (size_t)(c->Lk * c->ldk) * 2, e));
    T(sf_cuda_malloc(&dv, (size_t)(c->Lk * c->ldk) * 2, e));
    T(sf_cuda_malloc(&dout, obytes, e));
    T(sf_cuda_upload_bf16(&g->ctx, dq, hq, (size_t)(c->Lq * c->ldq), e));
    T(sf_cuda_upload_bf16(&g->ctx, dk, hk, (size_t)(c->Lk * c->ldk), e));
    T(sf_cuda_upload_bf16(&g->ctx, dv, hv, (size_t)(c->Lk * c->ldk), e));
    T(sf_cuda_memset(&g->ctx, dout, SENT, obytes, e));                                /* guards and gaps */
    for (int64_t r = 0; r < c->Lq; r++)                                                /* NaN poison inside */
        T(sf_cuda_memset(&g->ctx, (char *)dout + (GUARD + r * c->ldo) * 2, 0xFF, (size_t)w * 2, e));
    void *o = (char *)dout + GUARD * 2;
    double t0 = sf_now();
    T(sf_sdpa_prepare(g->sdpa, c->Lq, c->Lk, c->H, c->d, c->ldq, c->ldk, c->ldo, e));
    double t_plan = sf_now() - t0;
    T(sf_sdpa_forward(g->sdpa, c->Lq, c->Lk, c->H, c->d, dq, c->ldq, dk, dv, c->ldk, o, c->ldo, scale, e));
    T(sf_cuda_copy_d2h(&g->ctx, ho, dout, obytes, e));
    T(sf_cuda_sync(&g->ctx, e));
    char desc[128] = "";
    sf_sdpa_describe(g->sdpa, c->Lq, c->Lk, c->H, c->d, c->ldq, c->ldk, c->ldo, desc, sizeof desc, e);
    /* every guard / gap byte untouched, no NaN left anywhere inside */
    size_t gap = 0, nan = 0;
    for (size_t i = 0; i < obytes / 2; i++) {
        int64_t el = (int64_t)i - GUARD;
        int inside = el >= 0 && el < c->Lq * c->ldo && el % c->ldo < w;
        uint16_t b;
        memcpy(&b, ho + 2 * i, 2);
        if (!inside) gap += ho[2 * i] != SENT || ho[2 * i + 1] != SENT;
        else nan += isnan(sf_bf16_to_f32(b));
    }
    /* CPU reference on the checked rows */
    for (int64_t i = 0; i < nr; i++) memcpy(qs + i * w, hq + rows[i] * c->ldq, sizeof *qs * (size_t)w);
    SF_CHECK(sf_attention_cpu(nr, c->Lk, c->H, c->d, qs, w, hk, hv, c->ldk, ref, w, scale, NULL,
                              (int)sysconf(_SC_NPROCESSORS_ONLN)) == 0);
    double maxref = sf_test_maxabs(ref, (size_t)(nr * w)), maxd = 0, se = 0, sr = 0;
    /* tolerance: cuDNN rounds P to bf16 before P·V and O to bf16 (each ≤ 2^-9 relative), the
       reference keeps f32 throughout; summing over Lk keys of mixed signs keeps the error far
       below 2e-2 of the largest output, which a wrong head, row or stride would exceed at once */
    double tol = 2e-2 * maxref;
    int64_t first = -1;
    float fgot = 0, fref = 0;
    for (int64_t i = 0; i < nr; i++)
        for (int64_t j = 0; j < w; j++) {
            uint16_t b;
            memcpy(&b, ho + 2 * (GUARD + rows[i] * c->ldo + j), 2);
            float got = sf_bf16_to_f32(b), r = ref[i * w + j];
            double d = fabs((double)got - r);
            se += d * d, sr += (double)r * r;
            if (!(d <= maxd)) maxd = isnan(d) ? INFINITY : d;
            if (first < 0 && !(d <= tol)) first = rows[i] * w + j, fgot = got, fref = r;
        }
    double nmse = sr > 0 ? se / sr : se;
    printf("# %s Lq %lld Lk %lld H %d: %s; plan %.2f s; %lld rows checked, max|Δ| %.3g (tol %.3g), nmse %.3g\n",
           c->what, (long long)c->Lq, (long long)c->Lk, c->H, desc, t_plan, (long long)nr, maxd, tol, nmse);
    SF_CHECK_MSG(gap == 0, "%s: %zu guard/gap bytes overwritten", c->what, gap);
    SF_CHECK_MSG(nan == 0, "%s: %zu outputs NaN (unwritten or NaN)", c->what, nan);
    SF_CHECK_MSG(first < 0, "%s: first bad O[%lld, h %lld, %lld]: got %.6g ref %.6g", c->what,
                 (long long)(first / w), (long long)(first % w / c->d), (long long)(first % c->d), fgot, fref);
    fails = gap != 0 || nan != 0 || first >= 0;
    if (timed && !fails) {
        int iters = 10;
        T(sf_cuda_sync(&g->ctx, e));
        t0 = sf_now();
        for (int i = 0; i < iters; i++)
            T(sf_sdpa_forward(g->sdpa, c->Lq, c->Lk, c->H, c->d, dq, c->ldq, dk, dv, c->ldk, o, c->ldo, scale, e));
        T(sf_cuda_sync(&g->ctx, e));
        double t = (sf_now() - t0) / iters, flop = 4.0 * (double)c->Lq * (double)c->Lk * c->H * c->d;
        printf("# timing %s: %.3f ms per call, %.0f TFLOP/s\n", c->what, t * 1e3, flop / t / 1e12);
    }
#undef T
done:
    sf_cuda_free(dq), sf_cuda_free(dk), sf_cuda_free(dv), sf_cuda_free(dout);
    free(hq), free(hk), free(hv), free(ho), free(qs), free(ref);
    return fails;
}

static void test_forward_gpu(void) {
    gpu g;
    int count = 0;
    memset(&g, 0, sizeof g);
    if (sf_cuda_device_count(&count, &g.err) != SF_OK || count == 0) {
        SF_TEST_SKIP("no CUDA device");
        return;
    }
    sf_device dev = {1, 0};
    const char *env = getenv("SF_TEST_DEVICE");
    if (env && *env) SF_CHECK_OK(sf_device_parse(env, &dev, &g.err), &g.err);
    sf_status st = sf_cuda_ctx_init(&g.ctx, dev.ordinal, &g.err);
    SF_CHECK_OK(st, &g.err);
    if (st) return;
    st = sf_sdpa_new(&g.sdpa, g.ctx.stream, &g.err);
    if (st == SF_E_UNSUPPORTED) {
        SF_TEST_SKIP("libcudnn.so.9 cannot be loaded (cuDNN 9 not installed)");
        fprintf(stderr, "# %s\n", g.err.msg);
    } else {
        SF_CHECK_OK(st, &g.err);
    }
    if (st == SF_OK) {
        /* argument errors come back before anything is enqueued */
        SF_CHECK(sf_sdpa_forward(g.sdpa, 8, 8, 2, 128, NULL, 256, NULL, NULL, 256, NULL, 256, 1, &g.err) == SF_E_ARG);
        SF_CHECK(sf_sdpa_prepare(g.sdpa, 8, 8, 2, 128, 100, 256, 256, &g.err) == SF_E_ARG);
        const sdpa_case cases[] = {
            {"tiny self, Lk 120 (5 frames)", TINY_Q, 5 * TINY_F, 2, 128, 256, 256, 256},
            {"tiny cross, Lk 512", TINY_Q, 512, 2, 128, 256, 256, 256},
            {"tiny strided (fused qkv, cache, gapped O)", TINY_Q, 3 * TINY_Q, 2, 128, 768, 384, 264},
            {"self, first block", FULL_Q, FULL_Q, 12, 128, 1536, 1536, 1536},
            {"cross-attention", FULL_Q, 512, 12, 128, 1536, 1536, 1536},
            {"self, last block (21 frames)", FULL_Q, 7 * FULL_Q, 12, 128, 1536, 1536, 1536},
        };
        int n = (int)(sizeof cases / sizeof cases[0]);
#ifdef SF_TEST_EMU
        n = 3; /* the tiny shapes: the full-size ones are minutes of plain loops */
#endif
        for (int i = 0; i < n; i++) forward_case(&g, &cases[i], i == n - 1);
    }
    sf_sdpa_destroy(&g.sdpa);
    SF_CHECK(g.sdpa == NULL);
    sf_cuda_ctx_free(&g.ctx);
}

static const sf_test tests[] = {
    {"deviceless_plans", test_deviceless_plans},
    {"forward_gpu", test_forward_gpu},
};

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--deviceless-child") == 0) return deviceless_child();
    return sf_test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
