/* test_fp8.c — `--fp8` on the CPU: kernels/fp8.h's e4m3fn rounding (every code, ties, subnormals,
 * saturation; and 16384 values against the golden's independent rounding), the per-tensor scale and one
 * fp8 linear against tests/golden/expect/dit_fp8.safetensors (tests/heldout/make_fp8_golden.py), and the
 * DiT's forward with its block linears in fp8 against the reference model with the same linears. */
#define _POSIX_C_SOURCE 200809L
#include "dit_golden.h"
#include "fp8.h"
#include "tensor.h"
#include "stages/denoise/dit.h"
#include "stages/denoise/dit_fp8.h"

#include <math.h>
#include <stdio.h>

static float code_value(int c) { /* the e4m3fn table, from the format's definition */
    int e = (c >> 3) & 15, m = c & 7;
    float v = e == 0 ? (float)m / 512.0f : ldexpf(1.0f + (float)m / 8.0f, e - 7);
    return (c & 0x80) ? -v : v;
}

static void test_codes(void) {
    int bad = 0;
    for (int c = 0; c < 256; c++) {
        float v = sf_fp8_e4m3_to_f32((uint8_t)c);
        if ((c & 0x7F) == 0x7F) {
            SF_CHECK_MSG(isnan(v), "code 0x%02x should be NaN, is %g", c, v);
            continue;
        }
        if (v != code_value(c) && bad++ < 5) SF_CHECK_MSG(0, "code 0x%02x decodes to %g, want %g", c, v, code_value(c));
        uint8_t back = sf_fp8_e4m3_from_f32(v);
        if (back != c && bad++ < 5) SF_CHECK_MSG(0, "code 0x%02x: %g encodes to 0x%02x", c, v, back);
    }
    SF_CHECK(bad == 0);
    /* hand values */
    SF_CHECK(sf_fp8_e4m3_from_f32(1.0f) == 0x38 && sf_fp8_e4m3_from_f32(-1.0f) == 0xB8);
    SF_CHECK(sf_fp8_e4m3_from_f32(448.0f) == 0x7E && sf_fp8_e4m3_from_f32(1e30f) == 0x7E);
    SF_CHECK(sf_fp8_e4m3_from_f32(-INFINITY) == 0xFE && sf_fp8_e4m3_from_f32(NAN) == 0x7F);
    SF_CHECK(sf_fp8_e4m3_to_f32(0x01) == 1.0f / 512 && sf_fp8_e4m3_to_f32(0x08) == 1.0f / 64);
    SF_CHECK(sf_fp8_e4m3_from_f32(-0.0f) == 0x80 && sf_fp8_e4m3_from_f32(0.0f) == 0x00);
    /* ties to even: 1.0625 is halfway between 1 (0x38) and 1.125 (0x39) -> 1; 1.1875 -> 1.25 (0x3A) */
    SF_CHECK_MSG(sf_fp8_e4m3_from_f32(1.0625f) == 0x38, "1.0625 -> 0x%02x", sf_fp8_e4m3_from_f32(1.0625f));
    SF_CHECK_MSG(sf_fp8_e4m3_from_f32(1.1875f) == 0x3A, "1.1875 -> 0x%02x", sf_fp8_e4m3_from_f32(1.1875f));
    SF_CHECK(sf_fp8_e4m3_from_f32(nextafterf(1.0625f, 2.0f)) == 0x39);
    /* subnormals: half the smallest (2^-10) ties to 0, a hair more is 2^-9; 1.5·2^-9 ties to 2·2^-9 */
    SF_CHECK(sf_fp8_e4m3_from_f32(ldexpf(1.0f, -10)) == 0x00);
    SF_CHECK(sf_fp8_e4m3_from_f32(nextafterf(ldexpf(1.0f, -10), 1.0f)) == 0x01);
    SF_CHECK(sf_fp8_e4m3_from_f32(1.5f / 512) == 0x02);
    /* the last subnormal rounds up into the first normal */
    SF_CHECK(sf_fp8_e4m3_from_f32(7.5f / 512) == 0x08);
    /* 464 is halfway between 448 and the missing 480: saturates at 448 */
    SF_CHECK(sf_fp8_e4m3_from_f32(464.0f) == 0x7E && sf_fp8_e4m3_round(-470.0f) == -448.0f);
}

/* e4m3fn rounding written the other way, with frexp and nearbyint in double (the first version of
 * sf_fp8_e4m3_from_f32): the reference the bit-level one is held to. */
static uint8_t ref_from_f32(float x) {
    const uint8_t sign = signbit(x) ? 0x80 : 0;
    double a = fabs((double)x);
    if (isnan(x)) return (uint8_t)(sign | 0x7F);
    if (a >= 448.0) return (uint8_t)(sign | 0x7E);
    if (a < 0.015625) return (uint8_t)(sign | (uint8_t)nearbyint(a * 512.0));
    int e2;
    (void)frexp(a, &e2);
    int ex = e2 - 1;
    double q = nearbyint(ldexp(a, 3 - ex));
    if (q >= 16.0) q = 8.0, ex++;
    return (uint8_t)(sign | (uint8_t)((ex + 7) << 3) | (uint8_t)(q - 8.0));
}

/* sf_fp8_e4m3_from_f32 (on the f32 bits) = ref_from_f32 on every 61st float bit pattern (70 M values: every
 * exponent, both signs, NaNs, infinities) and around every code and midpoint */
static void test_from_f32(void) {
    int bad = 0;
    for (uint64_t u = 0; u < 0x100000000ull; u += 61) {
        uint32_t b = (uint32_t)u;
        float x;
        memcpy(&x, &b, 4);
        uint8_t c = sf_fp8_e4m3_from_f32(x), want = ref_from_f32(x);
        if (c != want && bad++ < 5) SF_CHECK_MSG(0, "x = %.9g (0x%08x): code 0x%02x, the reference's 0x%02x", x, b, c, want);
    }
    for (int c = 0; c < 255; c++) {
        float v = sf_fp8_e4m3_to_f32((uint8_t)c), w = sf_fp8_e4m3_to_f32((uint8_t)(c + 1));
        if (isnan(v) || isnan(w) || (c & 0x7F) == 0x7E) continue;
        float pts[5] = {v, nextafterf(v, 0), (v + w) / 2, nextafterf((v + w) / 2, 0), nextafterf((v + w) / 2, 1e9f)};
        for (int i = 0; i < 5; i++)
            if (sf_fp8_e4m3_from_f32(pts[i]) != ref_from_f32(pts[i]) && bad++ < 10)
                SF_CHECK_MSG(0, "x = %.9g: code 0x%02x, the reference's 0x%02x", pts[i], sf_fp8_e4m3_from_f32(pts[i]),
                             ref_from_f32(pts[i]));
    }
    SF_CHECK(bad == 0);
}

/* sf_fp8_e4m3_round (what the CPU products' inputs go through) = decode(encode(x)) over a sweep of every
 * 61st float bit pattern (70 M values: every exponent, both signs, NaNs, infinities) and the codes' neighbours */
static void test_round_fast(void) {
    int bad = 0;
    for (uint64_t u = 0; u < 0x100000000ull; u += 61) {
        uint32_t b = (uint32_t)u;
        float x, r, want;
        memcpy(&x, &b, 4);
        r = sf_fp8_e4m3_round(x), want = sf_fp8_e4m3_to_f32(sf_fp8_e4m3_from_f32(x));
        if (!(r == want || (isnan(r) && isnan(want))) || (r == 0 && signbit(r) != signbit(want)))
            if (bad++ < 5) SF_CHECK_MSG(0, "x = %.9g (0x%08x): fast %.9g, from the code %.9g", x, b, r, want);
    }
    for (int c = 0; c < 256; c++) { /* each code's value and the floats on either side of it and of the midpoints */
        float v = sf_fp8_e4m3_to_f32((uint8_t)c), w = sf_fp8_e4m3_to_f32((uint8_t)(c + 1));
        if (isnan(v) || isnan(w) || (c & 0x7F) == 0x7E) continue;
        float pts[5] = {v, nextafterf(v, 0), (v + w) / 2, nextafterf((v + w) / 2, 0), nextafterf((v + w) / 2, 1e9f)};
        for (int i = 0; i < 5; i++) {
            float r = sf_fp8_e4m3_round(pts[i]), want = sf_fp8_e4m3_to_f32(sf_fp8_e4m3_from_f32(pts[i]));
            if (r != want && bad++ < 10) SF_CHECK_MSG(0, "x = %.9g: fast %.9g, from the code %.9g", pts[i], r, want);
        }
    }
    SF_CHECK(bad == 0);
}

static void test_golden_rounding(void) {
    sf_tfile *g = sf_test_open_golden("expect/dit_fp8.safetensors");
    if (!g) return;
    int64_t n, n2;
    float *x = sf_test_golden_f32(g, "e4m3.x", &n), *y = sf_test_golden_f32(g, "e4m3.y", &n2);
    int bad = 0;
    SF_CHECK(n == n2 && n >= 12000);
    for (int64_t i = 0; i < n; i++) {
        float r = sf_fp8_e4m3_round(x[i]);
        if (r != y[i] && bad++ < 5) SF_CHECK_MSG(0, "e4m3.x[%lld] = %.9g rounds to %.9g, golden %.9g", (long long)i, x[i], r, y[i]);
    }
    SF_CHECK_MSG(bad == 0, "%d of %lld values round differently from the golden", bad, (long long)n);
    free(x), free(y);
    sf_tfile_destroy(&g);
}

static void test_scale(void) {
    SF_CHECK(sf_fp8_scale(448.0f) == 1.0f && sf_fp8_scale(0.0f) == 1.0f && sf_fp8_scale(NAN) == 1.0f);
    /* 1/448 is not a bf16 value: the scale is its bf16 rounding, as torchao computes it on a bf16 tensor */
    SF_CHECK(sf_fp8_scale(1.0f) == sf_round_bf16(1.0f / 448.0f) && sf_fp8_scale(1.0f) != 1.0f / 448.0f);
    const float x[6] = {0.5f, -3.0f, 9.0f, 2.0f, 1.0f, -7.0f}; /* 2 rows of 2, ld 3: the 9 and -7 are outside */
    SF_CHECK(sf_fp8_amax_cpu(x, 2, 2, 3) == 3.0f);
    float q[4];
    const float s = sf_fp8_scale(3.0f);
    sf_fp8_quantize_cpu(x, 2, 2, 3, s, q);
    SF_CHECK(q[0] == sf_fp8_e4m3_round(0.5f / s) && q[1] == sf_fp8_e4m3_round(-3.0f / s) && q[2] == sf_fp8_e4m3_round(2.0f / s));
    SF_CHECK(fabsf(q[1]) <= 448.0f);
    /* threads split the rows: the same amax and values for any count */
    float big[37 * 50], qa[37 * 48], qb[37 * 48];
    for (int i = 0; i < 37 * 50; i++) big[i] = sinf(0.37f * (float)i) * (float)(1 + i % 13);
    const float am = sf_fp8_amax_cpu(big, 37, 48, 50);
    sf_fp8_quantize_cpu(big, 37, 48, 50, sf_fp8_scale(am), qa);
    for (int nt = 1; nt <= 5; nt++) {
        SF_CHECK(sf_fp8_amax_cpu_mt(big, 37, 48, 50, nt) == am);
        sf_fp8_quantize_cpu_mt(big, 37, 48, 50, sf_fp8_scale(am), qb, nt);
        SF_CHECK_MSG(!memcmp(qa, qb, sizeof qa), "%d threads quantize differently", nt);
    }
    SF_CHECK(sf_fp8_eligible(1536, 8960) && sf_fp8_eligible(64, 1536) && !sf_fp8_eligible(24, 256) &&
             !sf_fp8_eligible(256, 40) && !sf_fp8_eligible(0, 16));
}

static void test_linear(void) {
    sf_tfile *g = sf_test_open_golden("expect/dit_fp8.safetensors");
    if (!g) return;
    int64_t nx, nw, nb, ny, n1;
    float *x = sf_test_golden_f32(g, "lin.x", &nx), *w = sf_test_golden_f32(g, "lin.w", &nw),
          *b = sf_test_golden_f32(g, "lin.b", &nb), *y = sf_test_golden_f32(g, "lin.y", &ny),
          *sx = sf_test_golden_f32(g, "lin.sx", &n1), *sw = sf_test_golden_f32(g, "lin.sw", &n1);
    const int64_t N = nb, K = nw / N, M = nx / K;
    sf_dit_mat m = {w, SF_F32, N, K, 0, NULL, 0.0f};
    uint8_t *codes = malloc((size_t)(N * K));
    uint16_t *q = malloc(sizeof(uint16_t) * (size_t)(N * K));
    float *xq = malloc(sizeof(float) * (size_t)(M * K)), *out = malloc(sizeof(float) * (size_t)(M * N));
    sf_err err = {{0}};
    SF_CHECK_OK(sf_dit_mat_fp8(&m, codes, &m.s8, &err), &err);
    SF_CHECK_MSG(m.s8 == sw[0], "weight scale %.9g, golden %.9g", m.s8, sw[0]);
    SF_CHECK_MSG(sf_fp8_scale(sf_fp8_amax_cpu(x, M, K, K)) == sx[0], "input scale %.9g, golden %.9g",
                 sf_fp8_scale(sf_fp8_amax_cpu(x, M, K, K)), sx[0]);
    for (int64_t i = 0; i < N * K; i++) q[i] = sf_f32_to_bf16(sf_fp8_e4m3_to_f32(codes[i]));
    m.fp8 = 1, m.q8 = q;
    sf_scratch ws = {0};
    sf_dit_xq xs = {xq, NULL, 0, 0, 0, 0.0f};
    SF_CHECK_OK(sf_dit_gemm_fp8_cpu(M, x, K, &m, b, out, &xs, 0, 1, &ws, &err), &err);
    sf_test_rel_close("lin.y", out, y, (size_t)(M * N), 1e-6);
    free(x), free(w), free(b), free(y), free(sx), free(sw), free(codes), free(q), free(xq), free(out);
    sf_tfile_destroy(&g);
}

static double max_rel(const float *a, const float *ref, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - ref[i]));
        m = fmax(m, fabs((double)ref[i]));
    }
    return m > 0 ? d / m : d;
}

static double nmse(const float *a, const float *ref, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        m += (double)ref[i] * ref[i];
    }
    return m > 0 ? d / m : d;
}

static void test_forward(void) {
    sf_tfile *g = sf_test_open_golden("expect/dit_fp8.safetensors");
    if (!g) return;
    sf_err err = {{0}};
    sf_dit_config cfg;
    sf_tfile *base = NULL;
    sf_dit_weights w;
    SF_CHECK_OK(dit_golden_base_model(&cfg, &base, &w, &err), &err);
    if (!base) return;
    /* marked for a GPU only: a CPU state refuses rather than run bf16 products under --fp8 */
    SF_CHECK_OK(sf_dit_weights_fp8(&w, 0, &err), &err);
    SF_CHECK_MSG(w.fp8 == 10 * cfg.num_layers, "%d of %d block linears marked", w.fp8, 10 * cfg.num_layers);
    sf_dit_state st;
    const sf_tensor *lat = sf_tfile_get(g, "in.noisy_latent");
    int F = (int)lat->shape[1], H = (int)lat->shape[3], W = (int)lat->shape[4];
    SF_CHECK(sf_dit_state_init(&st, &w, F, H, W, 21, -1, 0, 1, &err) == SF_E_ARG);
    sf_dit_weights_free(&w);
    SF_CHECK_OK(sf_dit_weights_load(&w, &cfg, base, NULL, NULL, &err), &err);
    SF_CHECK_OK(sf_dit_weights_fp8(&w, 1, &err), &err);
    SF_CHECK_OK(sf_dit_state_init(&st, &w, F, H, W, 21, -1, 0, 2, &err), &err);
    int64_t n;
    float *ctx = sf_test_golden_f32(g, "in.context", &n);
    SF_CHECK_OK(sf_dit_set_context(&st, ctx, 512, &err), &err);
    float *x = sf_test_golden_f32(g, "in.noisy_latent", &n), *t = sf_test_golden_f32(g, "in.timestep", &n);
    float *flow = calloc((size_t)(F * 16 * H * W), sizeof(float));
    SF_CHECK_OK(sf_dit_forward(&st, x, F, t, 0, flow, &err), &err);
    float *ref = sf_test_golden_f32(g, "out.flow_pred", &n), *plain = sf_test_golden_f32(g, "out.flow_pred_plain", &n);
    const double d8 = max_rel(flow, ref, n), dp = max_rel(flow, plain, n); /* printed for the record */
    printf("# fp8 forward vs the fp8 golden %.3g, vs the plain forward %.3g of max|ref|; nmse %.3g, %.3g\n", d8, dp,
           nmse(flow, ref, n), nmse(flow, plain, n));
    sf_test_rel_close("out.flow_pred", flow, ref, (size_t)n, SF_TOL_CPU(SF_TOL_FP8_FWD, SF_TOL_BF16_FWD));
    /* the bf16 mode's own rounding (nmse ~1e-4 here) is as large as fp8's effect: the fp32 modes tell them apart */
    if (sf_cpu_mode_now() != SF_CPU_BF16)
        SF_CHECK_MSG(nmse(flow, ref, n) <= SF_TOL_FP8_NMSE, "nmse %.3g from the fp8 golden (%.3g from the plain forward)",
                     nmse(flow, ref, n), nmse(flow, plain, n));
    free(ctx), free(x), free(t), free(flow), free(ref), free(plain);
    sf_dit_state_free(&st);
    sf_dit_weights_free(&w);
    sf_tfile_destroy(&base);
    sf_tfile_destroy(&g);
}

static const sf_test tests[] = {
    {"codes", test_codes},
    {"from_f32", test_from_f32},
    {"round_fast", test_round_fast},
    {"golden_rounding", test_golden_rounding},
    {"scale", test_scale},
    {"linear", test_linear},
    {"forward", test_forward},
};
SF_TEST_MAIN(tests)
