/* test_kernels.c — the DiT's CPU kernels by hand and against golden tables: GEMM (f32/bf16/f16
 * weights vs a double-precision reference, bit-identical for 1..4 threads, guard bytes), attention
 * (vs a naive double softmax, logits tap, thread invariance), RoPE tables (rope.freqs_f64), the
 * sinusoid (mid.t_sinusoid_f64), norms, activations, modulation, patchify/unpatchify round trip. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "act.h"
#include "attention.h"
#include "gemm.h"
#include "modulate.h"
#include "norm_rows.h"
#include "patch.h"
#include "rope.h"
#include "rng.h"
#include "tfile.h"
#include "timestep_embed.h"

#include <stdio.h>

static void fill(float *x, size_t n, uint64_t seed) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    sf_rng_fill_normal(&r, x, n, 0, 1);
}

static void test_gemm(void) {
    enum { M = 37, N = 131, K = 203 };
    static float x[M * K], w[N * K], b[N], y[M * N + 4], y2[M * N + 4], ref[M * N];
    static uint16_t wb[N * K];
    fill(x, M * K, 1);
    fill(w, N * K, 2);
    fill(b, N, 3);
    for (int i = 0; i < N * K; i++) { wb[i] = sf_f32_to_bf16(w[i]); w[i] = sf_bf16_to_f32(wb[i]); }
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = b[n];
            for (int k = 0; k < K; k++) s += (double)x[m * K + k] * w[n * K + k];
            ref[m * N + n] = (float)s;
        }
    for (int i = 0; i < 4; i++) y[M * N + i] = 12345.0f;
    SF_CHECK(sf_gemm_cpu(M, N, K, x, K, w, SF_F32, b, y, N, 1) == 0);
    sf_test_allclose("gemm f32", y, ref, M * N, 1e-5, 1e-4);
    SF_CHECK(y[M * N] == 12345.0f && y[M * N + 3] == 12345.0f); /* guard */
    for (int th = 2; th <= 4; th++) {
        SF_CHECK(sf_gemm_cpu(M, N, K, x, K, wb, SF_BF16, b, y2, N, th) == 0);
        SF_CHECK_MSG(memcmp(y, y2, sizeof(float) * M * N) == 0, "bf16 weights / %d threads differ from f32 / 1", th);
    }
    SF_CHECK(sf_gemm_cpu(2, N, K, x, K, wb, SF_BF16, NULL, y2, N, 3) == 0); /* column split */
    for (int n = 0; n < N; n++) SF_CHECK(y2[n] == y[n] - b[n] || fabsf(y2[n] - (y[n] - b[n])) < 1e-4f);
    SF_CHECK(sf_gemm_cpu(1, 1, 1, x, 1, w, SF_I32, NULL, y2, 1, 1) == -1);
}

static void test_attention(void) {
    enum { LQ = 19, LK = 45, H = 2, D = 128 };
    static float q[LQ * H * D], k[LK * H * D], v[LK * H * D], o[LQ * H * D], o2[LQ * H * D], lg[H * LQ * LK];
    fill(q, LQ * H * D, 4);
    fill(k, LK * H * D, 5);
    fill(v, LK * H * D, 6);
    float sc = 0.08838834764831845f;
    SF_CHECK(sf_attention_cpu(LQ, LK, H, D, q, H * D, k, v, H * D, o, H * D, sc, lg, 1) == 0);
    double maxd = 0, maxl = 0;
    for (int h = 0; h < H; h++)
        for (int i = 0; i < LQ; i++) {
            double s[LK], mx = -1e300, sum = 0;
            for (int t = 0; t < LK; t++) {
                double d = 0;
                for (int c = 0; c < D; c++) d += (double)q[(i * H + h) * D + c] * k[(t * H + h) * D + c];
                s[t] = d * sc;
                double dl = fabs(s[t] - lg[(h * LQ + i) * LK + t]);
                maxl = dl > maxl ? dl : maxl;
                mx = s[t] > mx ? s[t] : mx;
            }
            for (int t = 0; t < LK; t++) sum += exp(s[t] - mx);
            for (int c = 0; c < D; c++) {
                double a = 0;
                for (int t = 0; t < LK; t++) a += exp(s[t] - mx) / sum * v[(t * H + h) * D + c];
                double dd = fabs(a - o[(i * H + h) * D + c]);
                maxd = dd > maxd ? dd : maxd;
            }
        }
    SF_CHECK_MSG(maxl < 1e-5 && maxd < 1e-5, "logits %.3g out %.3g", maxl, maxd);
    SF_CHECK(sf_attention_cpu(LQ, LK, H, D, q, H * D, k, v, H * D, o2, H * D, sc, NULL, 3) == 0);
    SF_CHECK_MSG(memcmp(o, o2, sizeof o) == 0, "tapped/1 thread vs untapped/3 threads differ");
}

static void test_rope_and_sinusoid(void) {
    char p[1024];
    sf_err err = {{0}};
    sf_tfile *g = NULL;
    snprintf(p, sizeof p, "%s/expect/dit_forward.safetensors", sf_test_golden());
    SF_CHECK_OK(sf_tfile_open(p, &g, &err), &err);
    if (!g) return;
    sf_rope_table rt;
    SF_CHECK_OK(sf_rope_table_init(&rt, 128, 1024, &err), &err);
    SF_CHECK(rt.n_t == 22 && rt.n_h == 21 && rt.n_w == 21);
    const sf_tensor *fr = sf_tfile_get(g, "rope.freqs_f64"); /* [32, 64, 2] */
    double md = 0;
    for (int i = 0; fr && i < 32 * 64 * 2; i++) {
        double d = fabs(sf_tensor_get(fr, i) - rt.cs[i]);
        md = d > md ? d : md;
    }
    SF_CHECK_MSG(fr && md <= 1e-15, "rope table max diff %.3g", md);
    /* rotation of a unit vector at position (frame 1, 0, 0): pair 0 turns by 1 radian */
    float x[2 * 128] = {0};
    x[128] = 1.0f;
    sf_rope_apply_cpu(&rt, x, 128, 2, 1, 1, 1, 0, 1);
    SF_CHECK(x[0] == 0.0f && fabsf(x[128] - (float)cos(1.0)) < 1e-7f && fabsf(x[129] - (float)sin(1.0)) < 1e-7f);
    sf_rope_table_free(&rt);
    const sf_tensor *ts = sf_tfile_get(g, "mid.t_sinusoid_f64"); /* [3, 256] */
    float t[3] = {1000, 1000, 1000};
    double out[3 * 256];
    sf_timestep_embed_cpu(t, 3, 256, out);
    md = 0;
    for (int i = 0; ts && i < 3 * 256; i++) {
        double d = fabs(sf_tensor_get(ts, i) - out[i]);
        md = d > md ? d : md;
    }
    SF_CHECK_MSG(ts && md <= 1e-12, "sinusoid max diff %.3g", md);
    sf_tfile_destroy(&g);
}

static void test_small_ops(void) {
    float x[4] = {1, 2, 3, 4}, y[4], w[4] = {1, 1, 2, 2}, b[4] = {0, 0, 1, 1};
    sf_layernorm_cpu(1, 4, x, 4, NULL, NULL, 0.0, y, 4, 1);
    double r = 1 / sqrt(1.25);
    SF_CHECK(fabs(y[0] + 1.5 * r) < 1e-6 && fabs(y[3] - 1.5 * r) < 1e-6);
    sf_layernorm_cpu(1, 4, x, 4, w, b, 0.0, y, 4, 1);
    SF_CHECK(fabs(y[3] - (3 * r + 1)) < 1e-6);
    sf_rmsnorm_cpu(1, 4, x, 4, w, 0.0, y, 4, 1);
    double rr = 1 / sqrt(7.5);
    SF_CHECK(fabs(y[0] - rr) < 1e-6 && fabs(y[3] - 8 * rr) < 1e-6);
    float a[3] = {0, 1, -2};
    sf_silu_cpu(a, 3);
    SF_CHECK(a[0] == 0 && fabsf(a[1] - 0.7310586f) < 1e-6f && fabsf(a[2] + 0.2384058f) < 1e-6f);
    float gl[2] = {1, -1};
    sf_gelu_tanh_cpu(gl, 2);
    SF_CHECK(fabsf(gl[0] - 0.8411920f) < 1e-6f && fabsf(gl[1] + 0.1588080f) < 1e-6f);
    /* modulation per frame: 2 frames × 1 token × 2 channels */
    float xm[4] = {1, 2, 3, 4}, ym[4], sh[4] = {10, 20, 30, 40}, scl[4] = {1, 0, -1, 2};
    sf_modulate_cpu(2, 1, 2, xm, sh, scl, 2, ym);
    SF_CHECK(ym[0] == 12 && ym[1] == 22 && ym[2] == 30 && ym[3] == 52);
    sf_gated_add_cpu(2, 1, 2, xm, ym, scl, 2);
    SF_CHECK(xm[0] == 13 && xm[1] == 2 && xm[2] == -27 && xm[3] == 108);
    /* patchify → unpatchify with matching layouts is the identity when C = 1 */
    float lat[2 * 1 * 4 * 6], P[2 * 6 * 4], back[2 * 1 * 4 * 6];
    for (int i = 0; i < 48; i++) lat[i] = (float)i;
    sf_patchify_cpu(lat, 2, 1, 4, 6, 2, 2, P);
    SF_CHECK(P[0] == 0 && P[1] == 1 && P[2] == 6 && P[3] == 7 && P[4] == 2);
    sf_unpatchify_cpu(P, 2, 1, 4, 6, 2, 2, back);
    SF_CHECK(memcmp(lat, back, sizeof lat) == 0);
}

static const sf_test tests[] = {
    {"gemm", test_gemm},
    {"attention", test_attention},
    {"rope_and_sinusoid", test_rope_and_sinusoid},
    {"small_ops", test_small_ops},
};
SF_TEST_MAIN(tests)
