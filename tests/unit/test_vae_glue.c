/* test_vae_glue.c — the VAE decoder's GPU kernels (kernels/vae_ops_cuda.h, kernels/cuda/vae_glue.cu)
 * against their CPU references (kernels/vae_ops.h), channels-last vs channel-first transposed here.
 * Built twice: test_vae_glue_emu (-DSF_TEST_EMU: the same .cu on the CPU emulation, every
 * `make test`) and test_vae_glue (the real kernels; SKIP without a GPU, tests/gpu/check.sh runs it).
 * Outputs sit between guard elements (byte 0xA5) that must stay untouched, strided outputs keep
 * their gaps; the grid-stride loops are made to wrap in the emulation (grid capped at 3 blocks).
 * A failure prints tensor, first bad index, both values, max |Δ|. Every case was seen failing with
 * a planted bug in its kernel (wrong channel index, missing frame stride, skipped residual, ...). */
#include "sf_test.h"
#include "cuda_ops.h"
#include "device.h"
#include "tensor.h"
#include "vae_ops.h"
#include "vae_ops_cuda.h"
#include "stages/decode/vae.h"

#ifdef SF_TEST_EMU
#include "cuda/emu/sf_emu.h"
#else
static void sf_emu_set_max_blocks(long long n) { (void)n; }
#endif

#define GUARD 64 /* bf16 elements each side */

static sf_cuda_ctx cx;
static int ctx_ok;

static int open_ctx(void) {
    sf_err err = {{0}};
    sf_device dev = {1, 0};
    const char *d = getenv("SF_TEST_DEVICE");
    if (ctx_ok) return 1;
    if (d && *d && (sf_device_parse(d, &dev, &err) != SF_OK || !dev.cuda)) return 0;
    if (sf_device_check(&dev, &err) != SF_OK || sf_cuda_ctx_init(&cx, dev.ordinal, &err) != SF_OK) return 0;
    return ctx_ok = 1;
}
#define NEED_GPU()                                                                                           \
    do {                                                                                                     \
        if (!open_ctx()) {                                                                                   \
            SF_TEST_SKIP("no CUDA device");                                                                  \
            return;                                                                                          \
        }                                                                                                    \
    } while (0)

static uint32_t seed = 7;
static float urand(float lo, float hi) {
    seed = seed * 1664525u + 1013904223u;
    float v = lo + (hi - lo) * (float)((seed >> 8) & 0xffffff) / 16777216.0f;
    return v == 0.0f ? 0.5f : v;
}
static float *hrand(size_t n, float lo, float hi) { /* bf16-exact */
    float *h = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = sf_round_bf16(urand(lo, hi));
    return h;
}

/* Device bf16 buffer of n elements between guards; returns the inner pointer. */
typedef struct gbuf {
    void *base;
    size_t n, esz;
} gbuf;
static void *gnew(gbuf *g, size_t n, size_t esz) {
    sf_err err = {{0}};
    g->n = n, g->esz = esz, g->base = NULL;
    SF_CHECK_OK(sf_cuda_malloc(&g->base, (n + 2 * GUARD) * esz, &err), &err);
    if (g->base) SF_CHECK_OK(sf_cuda_memset(&cx, g->base, 0xA5, (n + 2 * GUARD) * esz, &err), &err);
    return g->base ? (char *)g->base + GUARD * esz : NULL;
}
/* The guards are untouched (and, with gaps, every element i where keep(i) is 0). */
static void gcheck(const gbuf *g, const char *what) {
    sf_err err = {{0}};
    size_t nb = (g->n + 2 * GUARD) * g->esz;
    unsigned char *h = malloc(nb);
    SF_CHECK_OK(sf_cuda_copy_d2h(&cx, h, g->base, nb, &err), &err);
    size_t bad = 0;
    for (size_t i = 0; i < GUARD * g->esz; i++) bad += (h[i] != 0xA5) + (h[nb - 1 - i] != 0xA5);
    SF_CHECK_MSG(bad == 0, "%s: %zu guard bytes overwritten", what, bad);
    free(h);
    sf_cuda_free(g->base);
}
static void *dput_bf16(const float *h, size_t n) {
    sf_err err = {{0}};
    void *d = NULL;
    SF_CHECK_OK(sf_cuda_malloc(&d, n * 2, &err), &err);
    if (d) SF_CHECK_OK(sf_cuda_upload_bf16(&cx, d, h, n, &err), &err);
    return d;
}
static float *dget_bf16(const void *d, size_t n) {
    sf_err err = {{0}};
    float *h = malloc(n * sizeof(float));
    SF_CHECK_OK(sf_cuda_download_bf16(&cx, h, d, n, &err), &err);
    return h;
}

/* ---- RMS norm (+ SiLU) ---------------------------------------------------------------------- */

/* goff: γ that many floats past an aligned allocation (1: not 16-byte aligned, loaded value by value);
 * on the emulation, whether γ went in 16-byte loads is counted. */
static void rms_case_g(int64_t P, int64_t C, int silu, int inplace, int goff) {
    NEED_GPU();
    sf_err err = {{0}};
    float *x = hrand((size_t)(P * C), -3, 3), *g = hrand((size_t)C, 0.5f, 1.5f);
    float *xc = malloc(sizeof(float) * (size_t)(P * C)), *yc = malloc(sizeof(float) * (size_t)(P * C));
    float *ref = malloc(sizeof(float) * (size_t)(P * C));
    for (int64_t p = 0; p < P; p++)
        for (int64_t c = 0; c < C; c++) xc[c * P + p] = x[p * C + c];
    sf_vae_rms_norm_cpu(xc, yc, 1, C, P, g, NULL, silu, 1);
    for (int64_t p = 0; p < P; p++)
        for (int64_t c = 0; c < C; c++) ref[p * C + c] = yc[c * P + p];
    gbuf gy;
    void *dx = dput_bf16(x, (size_t)(P * C)), *dy = gnew(&gy, (size_t)(P * C), 2);
    float *dg = NULL;
    SF_CHECK_OK(sf_cuda_malloc((void **)&dg, (size_t)(C + goff) * 4, &err), &err);
    SF_CHECK_OK(sf_cuda_upload_f32(&cx, dg + goff, g, (size_t)C, &err), &err);
    if (inplace) SF_CHECK_OK(sf_cuda_copy_d2d(&cx, dy, dx, (size_t)(P * C) * 2, &err), &err);
#ifdef SF_TEST_EMU
    const unsigned long long v0 = sf_emu_vector_loads();
#endif
    SF_CHECK_OK(sf_vae_rms_norm_cuda(&cx, P, C, inplace ? dy : dx, dg + goff, silu, dy, &err), &err);
#ifdef SF_TEST_EMU
    SF_CHECK_MSG((sf_emu_vector_loads() > v0) == !goff, "vae_rms C=%lld γ offset %d: %llu 16-byte loads of γ",
                 (long long)C, goff, sf_emu_vector_loads() - v0);
#endif
    float *got = dget_bf16(dy, (size_t)(P * C));
    /* fp32 statistics in another summation order, one bf16 rounding: within one bf16 step */
    size_t bad = 0, first = 0;
    double md = 0;
    for (size_t i = 0; i < (size_t)(P * C); i++) {
        double dd = fabs((double)got[i] - (double)ref[i]);
        md = dd > md || isnan(dd) ? dd : md;
        if (!(dd <= 4e-3 * fabs((double)ref[i]) + 1e-6) && bad++ == 0) first = i;
    }
    SF_CHECK_MSG(bad == 0, "vae_rms C=%lld silu=%d: %zu bad (|d| <= 4e-3|ref| + 1e-6), first [%zu] got %.8g ref %.8g, max|d| %.3g",
                 (long long)C, silu, bad, first, (double)got[first], (double)ref[first], md);
    gcheck(&gy, "vae_rms y");
    sf_cuda_free(dx), sf_cuda_free(dg);
    free(x), free(g), free(xc), free(yc), free(ref), free(got);
}
static void rms_case(int64_t P, int64_t C, int silu, int inplace) { rms_case_g(P, C, silu, inplace, 0); }
static void test_vae_rms_silu_wide(void) { rms_case(37, 384, 1, 0); } /* 48 vectors per pixel: lanes loop */
/* 3 vectors per pixel: groups of 4 lanes, 8 pixels per warp, the last warp part empty; then 1 vector
 * (32 pixels per warp) with γ not 16-byte aligned */
static void test_vae_rms_narrow_inplace(void) {
    rms_case(101, 24, 0, 1);
    rms_case_g(45, 8, 1, 0, 1);
}
static void test_vae_rms_wrap(void) {
    sf_emu_set_max_blocks(3); /* 8 pixels per block: the grid-stride loop wraps */
    rms_case(53, 96, 1, 0);
    sf_emu_set_max_blocks(0);
}

/* The SiLU the norm ends with is sf_silu1's fp64 formula rounded to bf16, bit for bit, though mostly
 * computed in fp32 (vae_glue.cu silu_bf16). Driven through the norm at C = 1024 with one-hot pixels:
 * ‖x‖ = 1 and √C = 32, so channel j of a pixel whose one value is ±1 gets f = ±32·γ_j exactly. The f
 * values: random ones over the sigmoid's range, ones whose result lies within 16 fp32 ulps of a bf16
 * rounding midpoint (the fp64 fallback's cases: found by search), and the edges (e^−f overflowing fp32,
 * denormal and zero results, ±0, ±inf, NaN, FLT_MAX). The emulation matches the host formula exactly; a
 * GPU within one bf16 step (its fp64 exp may differ from glibc's in the last bit). */
static float silu_fp64_bf16(float f) { return sf_round_bf16((float)((double)f / (1.0 + exp(-(double)f)))); }
static void test_vae_silu_exact(void) {
    NEED_GPU();
    enum { C = 1024, P = 2 * C, ROUNDS = 16 };
    sf_err err = {{0}};
    float *fv = malloc(sizeof(float) * C * ROUNDS), *x = calloc((size_t)P * C, sizeof(float)), *g = malloc(sizeof(float) * C);
    int n = 0, near = 0;
    const float edges[] = {-88.5f, -88.8f, -89.0f, -100.0f, -103.9f, -104.0f, -105.0f, -150.0f, 87.0f, 88.7f, 89.0f,
                           100.0f, 1e-30f, -1e-30f, 1e-40f, -1e-40f, 0.0f, -0.0f, INFINITY, -INFINITY, NAN, 3.4e38f,
                           -3.4e38f, 1e-5f, -1e-5f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) fv[n++] = edges[i];
    uint32_t st = 12345;
    while (near < 600 && n < C * ROUNDS) { /* near a midpoint: 1 in ~2000 random values */
        st = st * 1664525u + 1013904223u;
        const float f = ((float)(st >> 8) / 16777216.0f - 0.5f) * 40.0f;
        const float r = (float)((double)f / (1.0 + exp(-(double)f)));
        uint32_t u;
        memcpy(&u, &r, 4);
        const uint32_t lo = u & 0xFFFFu;
        if (lo + 16u >= 0x8000u && lo <= 0x8000u + 16u) fv[n++] = f, near++;
    }
    while (n < C * ROUNDS) { /* the rest: uniform in [-20, 20), then log-uniform magnitudes */
        st = st * 1664525u + 1013904223u;
        const float u = (float)(st >> 8) / 16777216.0f;
        fv[n] = n % 2 ? (u - 0.5f) * 40.0f : (n % 4 ? 1.0f : -1.0f) * powf(10.0f, -30.0f + 31.6f * u);
        n++;
    }
    for (int p = 0; p < P; p++) x[(size_t)p * C + p % C] = p < C ? 1.0f : -1.0f;
    void *dx = dput_bf16(x, (size_t)P * C), *dy = NULL;
    float *dg = NULL, *got = malloc(sizeof(float) * (size_t)P * C);
    SF_CHECK_OK(sf_cuda_malloc(&dy, (size_t)P * C * 2, &err), &err);
    SF_CHECK_OK(sf_cuda_malloc((void **)&dg, (size_t)C * 4, &err), &err);
    size_t bad = 0, far = 0, checked = 0;
    for (int rd = 0; rd < ROUNDS && dx && dy && dg; rd++) {
        for (int j = 0; j < C; j++) g[j] = fv[rd * C + j] / 32.0f; /* exact: a power of two */
        SF_CHECK_OK(sf_cuda_upload_f32(&cx, dg, g, C, &err), &err);
        SF_CHECK_OK(sf_vae_rms_norm_cuda(&cx, P, C, dx, dg, 1, dy, &err), &err);
        SF_CHECK_OK(sf_cuda_download_bf16(&cx, got, dy, (size_t)P * C, &err), &err);
        for (int p = 0; p < P; p++) {
            const int j = p % C;
            const float f = (p < C ? 1.0f : -1.0f) * 32.0f * g[j], want = silu_fp64_bf16(f), have = got[(size_t)p * C + j];
            checked++;
            if (memcmp(&want, &have, 4) && !(isnan(want) && isnan(have))) {
                const double d = fabs((double)want - (double)have);
                if (bad++ < 5)
                    fprintf(stderr, "# silu f %.9g: got %.9g want %.9g\n", (double)f, (double)have, (double)want);
                far += !(d <= fabs((double)want) / 128.0); /* more than one bf16 step */
            }
            if (isfinite(g[(j + 1) % C])) SF_CHECK(got[(size_t)p * C + (j + 1) % C] == 0.0f); /* silu(0) elsewhere (0·∞: NaN) */
        }
    }
#ifdef SF_TEST_EMU
    SF_CHECK_MSG(bad == 0, "silu: %zu of %zu values differ from the fp64 formula's bf16 (%d near a midpoint)", bad, checked, near);
#else
    SF_CHECK_MSG(far == 0, "silu: %zu of %zu values more than one bf16 step from the fp64 formula's", far, checked);
#endif
    SF_CHECK(checked == (size_t)P * ROUNDS && near == 600);
    sf_cuda_free(dx), sf_cuda_free(dy), sf_cuda_free(dg);
    free(fv), free(x), free(g), free(got);
}

/* ---- nearest 2× upsampling, plain and as the time_conv interleave ---------------------------- */

static void test_vae_upsample2x_wrap(void) {
    NEED_GPU();
    sf_err err = {{0}};
    const int64_t n = 3, H = 5, W = 7, C = 16, ne = n * H * W * C;
    float *x = hrand((size_t)ne, -2, 2), *xc = malloc(ne * 4), *yc = malloc(4 * ne * 4), *ref = malloc(4 * ne * 4);
    for (int64_t f = 0; f < n; f++)
        for (int64_t p = 0; p < H * W; p++)
            for (int64_t c = 0; c < C; c++) xc[(f * C + c) * H * W + p] = x[(f * H * W + p) * C + c];
    sf_vae_upsample2x_cpu(xc, yc, n, C, H, W);
    for (int64_t f = 0; f < n; f++)
        for (int64_t p = 0; p < 4 * H * W; p++)
            for (int64_t c = 0; c < C; c++) ref[(f * 4 * H * W + p) * C + c] = yc[(f * C + c) * 4 * H * W + p];
    gbuf gy;
    void *dx = dput_bf16(x, (size_t)ne), *dy = gnew(&gy, (size_t)(4 * ne), 2);
    sf_emu_set_max_blocks(3);
    SF_CHECK_OK(sf_vae_upsample2x_cuda(&cx, n, H, W, C, dx, H * W * C, C, dy, &err), &err);
    sf_emu_set_max_blocks(0);
    float *got = dget_bf16(dy, (size_t)(4 * ne));
    sf_test_max_close("vae_upsample2x", got, ref, (size_t)(4 * ne), 0, 0);
    gcheck(&gy, "vae_upsample2x y");
    sf_cuda_free(dx);
    free(x), free(xc), free(yc), free(ref), free(got);
}

/* time_conv output tc (n, H, W, 2C) → frames 2τ+j = channels [jC, (j+1)C) upsampled: one call per
 * output frame with x = tc + τ·HW·2C + j·C, pixel stride 2C (as vae_cuda.c does). */
static void test_vae_interleave_upsample(void) {
    NEED_GPU();
    sf_err err = {{0}};
    const int64_t n = 2, H = 3, W = 4, C = 8, HW = H * W, ne = n * HW * 2 * C;
    float *tc = hrand((size_t)ne, -2, 2), *tcc = malloc(ne * 4), *il = malloc(ne * 4), *yc = malloc(4 * ne * 4);
    float *ref = malloc(4 * ne * 4);
    for (int64_t t = 0; t < n; t++) /* channel-first (n, 2C, HW) for the CPU */
        for (int64_t p = 0; p < HW; p++)
            for (int64_t c = 0; c < 2 * C; c++) tcc[(t * 2 * C + c) * HW + p] = tc[(t * HW + p) * 2 * C + c];
    sf_vae_time_interleave_cpu(tcc, il, n, C, HW);
    sf_vae_upsample2x_cpu(il, yc, 2 * n, C, H, W);
    for (int64_t f = 0; f < 2 * n; f++)
        for (int64_t p = 0; p < 4 * HW; p++)
            for (int64_t c = 0; c < C; c++) ref[(f * 4 * HW + p) * C + c] = yc[(f * C + c) * 4 * HW + p];
    gbuf gy;
    void *dx = dput_bf16(tc, (size_t)ne), *dy = gnew(&gy, (size_t)(4 * ne), 2);
    for (int64_t t = 0; t < n; t++)
        for (int j = 0; j < 2; j++)
            SF_CHECK_OK(sf_vae_upsample2x_cuda(&cx, 1, H, W, C, (uint16_t *)dx + t * HW * 2 * C + j * C, 0, 2 * C,
                                               (uint16_t *)dy + (2 * t + j) * 4 * HW * C, &err),
                        &err);
    float *got = dget_bf16(dy, (size_t)(4 * ne));
    sf_test_max_close("vae_interleave_upsample", got, ref, (size_t)(4 * ne), 0, 0);
    gcheck(&gy, "vae_interleave_upsample y");
    sf_cuda_free(dx);
    free(tc), free(tcc), free(il), free(yc), free(ref), free(got);
}

/* ---- latent un-scaling ------------------------------------------------------------------------ */

static void unscale_case(int bf16) {
    NEED_GPU();
    sf_err err = {{0}};
    const int64_t C = 16, HW = 35, ld = 24;
    float *z = malloc(C * HW * 4), mr[32], *yc = malloc(C * HW * 4);
    for (int64_t i = 0; i < C * HW; i++) z[i] = urand(-4, 4); /* f32 latents, not bf16-exact */
    sf_vae_unscale_consts(sf_vae_latent_mean, sf_vae_latent_std, C, bf16, mr);
    sf_vae_unscale_cpu(z, C, HW, mr, bf16, yc);
    float *dz = NULL, *dmr = NULL;
    gbuf gy;
    void *dy = gnew(&gy, (size_t)(HW * ld), 2);
    SF_CHECK_OK(sf_cuda_malloc((void **)&dz, C * HW * 4, &err), &err);
    SF_CHECK_OK(sf_cuda_malloc((void **)&dmr, sizeof mr, &err), &err);
    SF_CHECK_OK(sf_cuda_upload_f32(&cx, dz, z, (size_t)(C * HW), &err), &err);
    SF_CHECK_OK(sf_cuda_upload_f32(&cx, dmr, mr, 32, &err), &err);
    sf_emu_set_max_blocks(2);
    SF_CHECK_OK(sf_vae_unscale_cuda(&cx, C, HW, dz, dmr, bf16, dy, ld, &err), &err);
    sf_emu_set_max_blocks(0);
    float *got = dget_bf16(dy, (size_t)(HW * ld)), *gv = malloc(C * HW * 4), *ref = malloc(C * HW * 4);
    size_t gap = 0;
    for (int64_t p = 0; p < HW; p++)
        for (int64_t c = 0; c < ld; c++) {
            if (c < C) gv[p * C + c] = got[p * ld + c], ref[p * C + c] = sf_round_bf16(yc[c * HW + p]);
            else gap += ((uint16_t *)&got[p * ld + c])[1] != 0xA5A5; /* the gap keeps its poison */
        }
    sf_test_max_close(bf16 ? "vae_unscale_bf16" : "vae_unscale_f32", gv, ref, (size_t)(C * HW), 0, 0);
    SF_CHECK_MSG(gap == 0, "vae_unscale: %zu gap elements written", gap);
    gcheck(&gy, "vae_unscale y");
    sf_cuda_free(dz), sf_cuda_free(dmr);
    free(z), free(yc), free(got), free(gv), free(ref);
}
static void test_vae_unscale_f32_wrap(void) { unscale_case(0); }
static void test_vae_unscale_bf16_wrap(void) { unscale_case(1); }

/* ---- bias / residual epilogue ----------------------------------------------------------------- */

/* C = 40: 8 channels per thread (vae_bias_res8_kernel); C = 36: one value per thread. */
static void bias_res_case_c(int bias, int res, int64_t C) {
    NEED_GPU();
    sf_err err = {{0}};
    const int64_t P = 77, ne = P * C;
    float *y = hrand((size_t)ne, -2, 2), *b = hrand((size_t)C, -1, 1), *r = hrand((size_t)ne, -2, 2);
    float *ref = malloc(ne * 4);
    for (int64_t i = 0; i < ne; i++)
        ref[i] = sf_round_bf16(y[i] + (bias ? b[i % C] : 0.0f) + (res ? r[i] : 0.0f));
    gbuf gy;
    void *dy = gnew(&gy, (size_t)ne, 2), *db = dput_bf16(b, (size_t)C), *dr = dput_bf16(r, (size_t)ne);
    SF_CHECK_OK(sf_cuda_upload_bf16(&cx, dy, y, (size_t)ne, &err), &err);
    SF_CHECK_OK(sf_vae_bias_res_cuda(&cx, P, C, dy, bias ? db : NULL, res ? dr : NULL, &err), &err);
    float *got = dget_bf16(dy, (size_t)ne);
    sf_test_max_close("vae_bias_res", got, ref, (size_t)ne, 0, 0);
    gcheck(&gy, "vae_bias_res y");
    sf_cuda_free(db), sf_cuda_free(dr);
    free(y), free(b), free(r), free(ref), free(got);
}
static void bias_res_case(int bias, int res) {
    bias_res_case_c(bias, res, 40);
    bias_res_case_c(bias, res, 36);
}
static void test_vae_bias_res(void) {
    sf_emu_set_max_blocks(1); /* both kernels' grid-stride loops wrap */
    bias_res_case(1, 1);
    bias_res_case(1, 0);
    bias_res_case(0, 1);
    sf_emu_set_max_blocks(0);
}

/* ---- decoder output → uint8 frames + f32 video ------------------------------------------------- */

static void test_vae_to_pixels(void) {
    NEED_GPU();
    sf_err err = {{0}};
    const int64_t n = 2, P = 50, ld = 8, ne = n * P * ld;
    float *x = hrand((size_t)ne, -1.4f, 1.4f);
    x[5 * ld + 1] = NAN; /* a NaN pixel: video keeps it, the byte is 0's (as the CPU) */
    x[7 * ld + 2] = -0.0f;
    uint8_t *ref8 = malloc(n * P * 3), *got8 = malloc(n * P * 3 + 2 * GUARD);
    float *refv = malloc(n * 3 * P * 4), *gotv = malloc(n * 3 * P * 4);
    for (int64_t f = 0; f < n; f++)
        for (int64_t p = 0; p < P; p++)
            for (int c = 0; c < 3; c++) {
                float v = x[(f * P + p) * ld + c];
                sf_vae_to_pixels_cpu(&v, 1, &refv[(f * 3 + c) * P + p], &ref8[(f * P + p) * 3 + c]);
            }
    void *dx = dput_bf16(x, (size_t)ne);
    gbuf g8, gv;
    uint8_t *d8 = gnew(&g8, (size_t)(n * P * 3), 1);
    float *dv = gnew(&gv, (size_t)(n * 3 * P), 4);
    SF_CHECK_OK(sf_vae_to_pixels_cuda(&cx, n, P, ld, dx, d8, dv, &err), &err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&cx, got8, d8, (size_t)(n * P * 3), &err), &err);
    SF_CHECK_OK(sf_cuda_download_f32(&cx, gotv, dv, (size_t)(n * 3 * P), &err), &err);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < (size_t)(n * P * 3); i++)
        if (got8[i] != ref8[i] && bad++ == 0) first = i;
    SF_CHECK_MSG(bad == 0, "vae_to_pixels u8: %zu bad, first [%zu] got %d ref %d", bad, first, got8[first], ref8[first]);
    size_t vb = 0;
    for (size_t i = 0; i < (size_t)(n * 3 * P); i++)
        if (!(gotv[i] == refv[i] || (isnan(gotv[i]) && isnan(refv[i]))) && vb++ == 0) first = i;
    SF_CHECK_MSG(vb == 0, "vae_to_pixels video: %zu bad, first [%zu] got %g ref %g", vb, first, gotv[first],
                 refv[first]);
    gcheck(&g8, "vae_to_pixels u8");
    gcheck(&gv, "vae_to_pixels video");
    sf_cuda_free(dx);
    free(x), free(ref8), free(got8), free(refv), free(gotv);
}

static const sf_test tests[] = {
    {"vae_rms_silu_wide", test_vae_rms_silu_wide},
    {"vae_rms_narrow_inplace", test_vae_rms_narrow_inplace},
    {"vae_rms_wrap", test_vae_rms_wrap},
    {"vae_silu_exact", test_vae_silu_exact},
    {"vae_upsample2x_wrap", test_vae_upsample2x_wrap},
    {"vae_interleave_upsample", test_vae_interleave_upsample},
    {"vae_unscale_f32_wrap", test_vae_unscale_f32_wrap},
    {"vae_unscale_bf16_wrap", test_vae_unscale_bf16_wrap},
    {"vae_bias_res", test_vae_bias_res},
    {"vae_to_pixels", test_vae_to_pixels},
};
SF_TEST_MAIN(tests)
