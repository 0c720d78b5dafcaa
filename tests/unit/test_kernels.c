/* test_kernels.c — the DiT's CPU kernels by hand and against golden tables: GEMM (f32/bf16/f16
 * weights vs a double-precision reference, bit-identical for 1..4 threads, guard bytes), attention
 * (vs a naive double softmax, logits tap, thread invariance), RoPE tables (rope.freqs_f64), the
 * sinusoid (mid.t_sinusoid_f64), norms, activations, modulation, patchify/unpatchify round trip;
 * ragged shapes across every tile edge of the blocked GEMM / attention, bit-exact against the
 * canonical summation order, baseline-ISA vs avx2 kernels (SF_CPU_BASELINE=1). */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "act.h"
#include "attention.h"
#include "dnnl_ops.h"
#include "gemm.h"
#include "modulate.h"
#include "norm_rows.h"
#include "parallel.h"
#include "patch.h"
#include "rope.h"
#include "rng.h"
#include "tfile.h"
#include "timestep_embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kernel variant that should run: the AVX2 copy on an AVX2 CPU unless SF_CPU_BASELINE is
 * set. sf_*_cpu_isa() answers from inside the variant, so "baseline vs avx2, same bits" below
 * really compares two differently compiled kernels (clang used to build both for the baseline). */
static int expected_isa(int baseline) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    if (!baseline && __builtin_cpu_supports("avx2")) return SF_ISA_AVX2;
#endif
    return SF_ISA_BASE;
}

static void fill(float *x, size_t n, uint64_t seed) {
    sf_rng r;
    sf_rng_seed(&r, seed);
    sf_rng_fill_normal(&r, x, n, 0, 1);
}

static void test_gemm(void) {
    sf_test_exact(1); /* the exact kernels' bits: run in the exact mode */
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
    sf_test_exact(0);
}

static void test_attention(void) {
    sf_test_exact(1); /* the exact kernels' bits: run in the exact mode */
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
    sf_test_exact(0);
}

/* The canonical order of gemm.h / attention.h in scalar code: 8 lanes (lane = k mod 8) summed in
 * k order, combined pairwise, then the tail. -std=c11 compiles this without FMA contraction. */
static float canon_dot(const float *x, const float *w, int64_t K) {
    float l[8] = {0};
    int64_t K8 = K & ~(int64_t)7, k;
    for (k = 0; k < K8; k++) l[k & 7] += x[k] * w[k];
    float s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
    for (; k < K; k++) s += x[k] * w[k];
    return s;
}

/* Shapes that cross every tile edge of the blocked GEMM (3-row × 4-column tiles, 48-row blocks,
 * 64-row panels, 1024-wide K chunks, the K%8 tail) with padded strides: bit-exact against the
 * canonical order for f32 / bf16 / f16 weights, 1..4 threads, row and column splits, and the
 * baseline-ISA kernels (SF_CPU_BASELINE=1) vs the avx2 ones. */
static void test_gemm_tiles(void) {
    sf_test_exact(1); /* the exact kernels' bits: run in the exact mode */
    enum { M = 50, N = 70, K = 2 * 1024 + 13, LDX = K + 3, LDY = N + 5 };
    float *x = calloc((size_t)M * LDX, 4), *w = malloc((size_t)N * K * 4), *wf = malloc((size_t)N * K * 4);
    float *b = malloc(N * 4), *ref = malloc((size_t)M * N * 4), *y = malloc((size_t)M * LDY * 4);
    uint16_t *wb = malloc((size_t)N * K * 2), *wh = malloc((size_t)N * K * 2);
    SF_CHECK(x && w && wf && b && ref && y && wb && wh);
    if (!(x && w && wf && b && ref && y && wb && wh)) goto done;
    for (int m = 0; m < M; m++) fill(x + (size_t)m * LDX, K, 10 + (uint64_t)m);
    fill(w, (size_t)N * K, 11);
    fill(b, N, 12);
    for (size_t i = 0; i < (size_t)N * K; i++) {
        wb[i] = sf_f32_to_bf16(w[i]);
        w[i] = sf_bf16_to_f32(wb[i]); /* representable in bf16 and f16 (|w| < 65504, 8-bit mantissa) */
        wh[i] = sf_f32_to_f16(w[i]);
    }
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) ref[m * N + n] = canon_dot(x + (size_t)m * LDX, w + (size_t)n * K, K) + b[n];
    for (int pass = 0; pass < 2; pass++) {
        if (pass) setenv("SF_CPU_BASELINE", "1", 1);
        SF_CHECK_MSG(sf_gemm_cpu_isa() == expected_isa(pass), "gemm runs isa %d, expected %d (baseline %d)",
                     sf_gemm_cpu_isa(), expected_isa(pass), pass);
        for (int th = 1; th <= 4; th++)
            for (int dt = 0; dt < 3; dt++) {
                for (size_t i = 0; i < (size_t)M * LDY; i++) y[i] = -7.0f;
                const void *wp = dt == 0 ? (const void *)w : dt == 1 ? (const void *)wb : (const void *)wh;
                sf_dtype wdt = dt == 0 ? SF_F32 : dt == 1 ? SF_BF16 : SF_F16;
                SF_CHECK(sf_gemm_cpu(M, N, K, x, LDX, wp, wdt, b, y, LDY, th) == 0);
                int bad = 0, pad = 0;
                for (int m = 0; m < M; m++) {
                    for (int n = 0; n < N; n++) bad += memcmp(&y[m * LDY + n], &ref[m * N + n], 4) != 0;
                    for (int n = N; n < LDY; n++) pad += y[m * LDY + n] != -7.0f;
                }
                SF_CHECK_MSG(!bad && !pad, "gemm tiles: dtype %d, %d threads, baseline %d: %d differ, %d pad", dt, th,
                             pass, bad, pad);
            }
        /* M < 8·threads: columns split over panels */
        SF_CHECK(sf_gemm_cpu(5, N, K, x, LDX, wb, SF_BF16, NULL, y, LDY, 3) == 0);
        int bad = 0;
        for (int m = 0; m < 5; m++)
            for (int n = 0; n < N; n++) {
                float r = canon_dot(x + (size_t)m * LDX, w + (size_t)n * K, K);
                bad += memcmp(&y[m * LDY + n], &r, 4) != 0;
            }
        SF_CHECK_MSG(!bad, "gemm column split, baseline %d: %d differ", pass, bad);
    }
    unsetenv("SF_CPU_BASELINE");
    { /* a component's scratch: the same bits, nothing allocated per call; too small a slot is
         counted (and the call allocates its own, same bits) */
        sf_scratch ws, tiny;
        sf_err err = {{0}};
        SF_CHECK_OK(sf_scratch_init(&ws, 3, sf_gemm_cpu_scratch(K), &err), &err);
        SF_CHECK_OK(sf_scratch_init(&tiny, 3, 16, &err), &err);
        for (int row_split = 0; row_split < 2; row_split++) {
            const int64_t Mx = row_split ? M : 5; /* rows, or the column split over panels */
            unsigned long long m0 = sf_scratch_misses();
            SF_CHECK(sf_gemm_cpu_ws(Mx, N, K, x, LDX, wb, SF_BF16, b, y, LDY, 3, &ws) == 0);
            SF_CHECK_MSG(sf_scratch_misses() == m0, "gemm with a sized scratch allocated %llu times",
                         sf_scratch_misses() - m0);
            int bad = 0;
            for (int m = 0; m < Mx; m++)
                for (int n = 0; n < N; n++) bad += memcmp(&y[m * LDY + n], &ref[m * N + n], 4) != 0;
            SF_CHECK_MSG(!bad, "gemm with a scratch (M %lld): %d differ", (long long)Mx, bad);
            SF_CHECK(sf_gemm_cpu_ws(Mx, N, K, x, LDX, wb, SF_BF16, b, y, LDY, 3, &tiny) == 0);
            SF_CHECK_MSG(sf_scratch_misses() > m0, "an undersized scratch was not counted");
        }
        sf_scratch_free(&ws);
        sf_scratch_free(&tiny);
    }
done:
    free(x), free(w), free(wf), free(b), free(ref), free(y), free(wb), free(wh);
    sf_test_exact(0);
}

/* Ragged attention shapes (queries across the 48-query tile and the 6/3-query register tiles,
 * keys across the 64-key P·V blocks and 4-key tiles; d = 27 and 128) with padded strides: logits
 * bit-exact vs the canonical dot × scale, output vs a double softmax, and identical bits for 1..4
 * threads, tapped or not, baseline or avx2 kernels. */
static void attention_tiles(const int LQ, const int LK, const int H, const int D) {
    const int LDQ = H * D + 2, LDKV = H * D + 5, LDO = H * D + 1;
    float *q = malloc((size_t)LQ * LDQ * 4), *k = malloc((size_t)LK * LDKV * 4), *v = malloc((size_t)LK * LDKV * 4);
    float *o = malloc((size_t)LQ * LDO * 4), *o2 = malloc((size_t)LQ * LDO * 4), *lg = malloc((size_t)H * LQ * LK * 4);
    double *s = malloc(sizeof(double) * (size_t)LK);
    SF_CHECK(q && k && v && o && o2 && lg && s);
    if (!(q && k && v && o && o2 && lg && s)) goto done;
    fill(q, LQ * LDQ, 21);
    fill(k, LK * LDKV, 22);
    fill(v, LK * LDKV, 23);
    const float sc = 0.19245009f;
    for (int i = 0; i < LQ * LDO; i++) o[i] = -7.0f;
    SF_CHECK(sf_attention_cpu(LQ, LK, H, D, q, LDQ, k, v, LDKV, o, LDO, sc, lg, 1) == 0);
    int badl = 0, pad = 0;
    double maxd = 0;
    for (int h = 0; h < H; h++)
        for (int i = 0; i < LQ; i++) {
            double mx = -1e300, sum = 0;
            for (int t = 0; t < LK; t++) {
                float c = canon_dot(q + i * LDQ + h * D, k + t * LDKV + h * D, D) * sc;
                badl += memcmp(&c, &lg[((size_t)h * LQ + i) * LK + t], 4) != 0;
                s[t] = c;
                mx = s[t] > mx ? s[t] : mx;
            }
            for (int t = 0; t < LK; t++) sum += exp(s[t] - mx);
            for (int c = 0; c < D; c++) {
                double a = 0;
                for (int t = 0; t < LK; t++) a += exp(s[t] - mx) / sum * v[t * LDKV + h * D + c];
                double dd = fabs(a - o[i * LDO + h * D + c]);
                maxd = dd > maxd ? dd : maxd;
            }
        }
    for (int i = 0; i < LQ; i++)
        for (int c = H * D; c < LDO; c++) pad += o[i * LDO + c] != -7.0f;
    SF_CHECK_MSG(!badl && !pad && maxd < 1e-5, "attention tiles d=%d: %d logits differ, %d pad, out %.3g", D, badl, pad,
                 maxd);
    for (int pass = 0; pass < 2; pass++) {
        if (pass) setenv("SF_CPU_BASELINE", "1", 1);
        SF_CHECK_MSG(sf_attention_cpu_isa() == expected_isa(pass), "attention runs isa %d, expected %d (baseline %d)",
                     sf_attention_cpu_isa(), expected_isa(pass), pass);
        for (int th = 1; th <= 4; th++) {
            for (int i = 0; i < LQ * LDO; i++) o2[i] = -7.0f;
            SF_CHECK(sf_attention_cpu(LQ, LK, H, D, q, LDQ, k, v, LDKV, o2, LDO, sc, th & 1 ? NULL : lg, th) == 0);
            SF_CHECK_MSG(memcmp(o, o2, (size_t)LQ * LDO * 4) == 0, "attention d=%d: %d threads, baseline %d differ", D,
                         th, pass);
        }
    }
    unsetenv("SF_CPU_BASELINE");
    { /* from a sized scratch: the same bits and no allocation per call */
        sf_scratch ws;
        sf_err err = {{0}};
        SF_CHECK_OK(sf_scratch_init(&ws, 4, sf_attention_cpu_scratch(LK, D), &err), &err);
        unsigned long long m0 = sf_scratch_misses();
        for (int i = 0; i < LQ * LDO; i++) o2[i] = -7.0f;
        SF_CHECK(sf_attention_cpu_ws(LQ, LK, H, D, q, LDQ, k, v, LDKV, o2, LDO, sc, lg, 4, &ws) == 0);
        SF_CHECK_MSG(sf_scratch_misses() == m0 && memcmp(o, o2, (size_t)LQ * LDO * 4) == 0,
                     "attention d=%d with a scratch: %llu allocations, outputs %s", D, sf_scratch_misses() - m0,
                     memcmp(o, o2, (size_t)LQ * LDO * 4) ? "differ" : "equal");
        sf_scratch_free(&ws);
    }
    /* no keys: zeros, like the softmax of an empty row times nothing */
    SF_CHECK(sf_attention_cpu(2, 0, H, D, q, LDQ, k, v, LDKV, o2, LDO, sc, NULL, 2) == 0);
    SF_CHECK(o2[0] == 0.0f && o2[LDO + H * D - 1] == 0.0f);
done:
    free(q), free(k), free(v), free(o), free(o2), free(lg), free(s);
}

static void test_attention_tiles(void) {
    sf_test_exact(1); /* the exact kernels' bits: run in the exact mode */
    attention_tiles(101, 133, 3, 27); /* d: a 16-wide, an 8-wide and a scalar channel part */
    attention_tiles(55, 70, 2, 128);  /* the model's head size: the vector logit reduction */
    sf_test_exact(0);
}

/* Deep Sink's re-alignment (sf_rope_time_shift_cpu): keys roped at frames [s, s+F), shifted by delta, are the
 * keys roped at [s+delta, s+F+delta) to rounding (both ways); height / width pairs and delta 0 are bit-exact
 * copies; in place = out of place; strided rows keep their gaps. */
static void test_rope_time_shift(void) {
    enum { F = 2, H = 3, W = 4, HEADS = 2, D = 12, ROW = HEADS * D, LD = ROW + 3, NTOK = F * H * W, S0 = 5, DELTA = 37 };
    sf_err err = {{0}};
    sf_rope_table rt;
    SF_CHECK_OK(sf_rope_table_init(&rt, D, 64, &err), &err);
    if (!rt.cs) return;
    float x[NTOK * ROW], a[NTOK * ROW], b[NTOK * ROW], sh[NTOK * LD], back[NTOK * ROW], inpl[NTOK * ROW];
    uint64_t r = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < NTOK * ROW; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
    memcpy(a, x, sizeof a), memcpy(b, x, sizeof b);
    sf_rope_apply_cpu(&rt, a, ROW, F, H, W, HEADS, S0, 1);
    sf_rope_apply_cpu(&rt, b, ROW, F, H, W, HEADS, S0 + DELTA, 1);
    for (int i = 0; i < NTOK * LD; i++) sh[i] = -7.0f; /* the row gaps must stay */
    sf_rope_time_shift_cpu(&rt, a, ROW, sh, LD, NTOK, HEADS, DELTA, 2);
    sf_rope_time_shift_cpu(&rt, b, ROW, back, ROW, NTOK, HEADS, -DELTA, 1);
    memcpy(inpl, a, sizeof inpl);
    sf_rope_time_shift_cpu(&rt, inpl, ROW, inpl, ROW, NTOK, HEADS, DELTA, 1);
    double md = 0, mb = 0;
    int copies = 1, gaps = 1, same = 1;
    for (int t = 0; t < NTOK; t++) {
        for (int k = ROW; k < LD; k++) gaps &= sh[t * LD + k] == -7.0f;
        for (int k = 0; k < ROW; k++) {
            const int time = (k % D) / 2 < rt.n_t;
            const float got = sh[t * LD + k];
            md = fmax(md, fabs(got - b[t * ROW + k]));
            mb = fmax(mb, fabs(back[t * ROW + k] - a[t * ROW + k]));
            if (!time) copies &= got == a[t * ROW + k];
            same &= inpl[t * ROW + k] == got;
        }
    }
    SF_CHECK_MSG(md <= 2e-6 && mb <= 2e-6, "shift by %d vs RoPE at +%d: max |d| %.3g; back: %.3g", DELTA, DELTA, md, mb);
    SF_CHECK_MSG(copies && gaps && same, "height/width copied %d, row gaps kept %d, in place = out of place %d", copies,
                 gaps, same);
    memcpy(inpl, a, sizeof inpl);
    sf_rope_time_shift_cpu(&rt, inpl, ROW, inpl, ROW, NTOK, HEADS, 0, 1);
    SF_CHECK(memcmp(inpl, a, sizeof inpl) == 0);
    sf_rope_table_free(&rt);
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

/* The build must not contract a*b+c into an FMA: the CPU kernels are bit-exact references
 * (baseline vs AVX2, CPU vs the emulated GPU), and clang contracts within a statement by default
 * wherever FMA is available. This function is compiled for FMA and with the build's C flags; with
 * -ffp-contract=off (Makefile ALL_CFLAGS) it rounds the product first: 1+2^-19 - (1+2^-19) = 0,
 * where a fused multiply-add keeps the 2^-40 of the exact product. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
__attribute__((target("fma"))) static float mul_add_fma_target(float a, float b, float c) { return a * b + c; }
#endif

static void test_no_fp_contract(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    if (!__builtin_cpu_supports("fma")) {
        SF_TEST_SKIP("no FMA on this CPU");
        return;
    }
    volatile float a = 1.0f + 0x1p-20f, c = -(1.0f + 0x1p-19f);
    float r = mul_add_fma_target(a, a, c);
    SF_CHECK_MSG(r == 0.0f, "a*b+c = %a: contracted into an FMA (build without -ffp-contract=off?)", (double)r);
#else
    SF_TEST_SKIP("x86 only");
#endif
}

/* The fast and bf16 modes' GEMM (oneDNN) against the exact kernels: f32/bf16/f16 weights, bias or
 * none, row strides with guard columns, 1 and 3 threads, more rows and columns than one scratch
 * block (the chunk loops); the oneDNN path must really run. fast: f32 products, |Δ| ≤ 1e-5·max;
 * bf16: inputs and non-bf16 weights rounded to bf16, ≤ 1e-2·max (SF_TOL_BF16_FWD's order). */
static void test_fast_gemm(void) {
    if (!sf_dnnl_built()) {
        SF_TEST_SKIP("built without oneDNN (DNNL=0)");
        return;
    }
    enum { M = 300, N = 290, K = 72, LDX = K + 5, LDY = N + 3 };
    static float x[M * LDX], w[N * K], b[N], ref[M * LDY], y[M * LDY];
    static uint16_t wb[N * K], wh[N * K];
    fill(x, M * LDX, 11);
    fill(w, N * K, 12);
    fill(b, N, 13);
    for (int i = 0; i < N * K; i++) wb[i] = sf_f32_to_bf16(w[i]), wh[i] = sf_f32_to_f16(w[i]);
    const void *ws[3] = {w, wb, wh};
    const sf_dtype dts[3] = {SF_F32, SF_BF16, SF_F16};
    const char *modes[2] = {"fast", "bf16"};
    for (int mi = 0; mi < 2; mi++)
        for (int d = 0; d < 3; d++)
            for (int th = 1; th <= 3; th += 2)
                for (int bi = 0; bi < 2; bi++) {
                    sf_test_exact(1);
                    SF_CHECK(sf_gemm_cpu(M, N, K, x, LDX, ws[d], dts[d], bi ? b : NULL, ref, LDY, 1) == 0);
                    sf_test_exact(0);
                    sf_test_mode(modes[mi]);
                    for (int i = 0; i < M * LDY; i++) y[i] = -555.0f;
                    const unsigned long long c0 = sf_dnnl_calls();
                    SF_CHECK(sf_gemm_cpu(M, N, K, x, LDX, ws[d], dts[d], bi ? b : NULL, y, LDY, th) == 0);
                    /* bf16 products need oneDNN's AVX-512 kernels (elsewhere refused: the exact kernels run) */
                    if (!mi || sf_dnnl_bf16_jit())
                        SF_CHECK_MSG(sf_dnnl_calls() > c0, "%s gemm: oneDNN did not run", modes[mi]);
                    float got[M * N], want[M * N];
                    int guard = 0;
                    for (int m = 0; m < M; m++) {
                        for (int n = 0; n < N; n++) got[m * N + n] = y[m * LDY + n], want[m * N + n] = ref[m * LDY + n];
                        for (int n = N; n < LDY; n++) guard += y[m * LDY + n] != -555.0f;
                    }
                    SF_CHECK_MSG(!guard, "%s gemm wrote %d guard values", modes[mi], guard);
                    char what[64];
                    snprintf(what, sizeof what, "%s gemm dtype %d, %d threads, bias %d", modes[mi], d, th, bi);
                    sf_test_rel_close(what, got, want, M * N, mi ? 1e-2 : 1e-5);
                    sf_test_mode("fast");
                }
}

/* sf_dnnl_split3_bf16: hi + mid + lo equals x to 2⁻²⁴·|x| over 40 binades (tiny, huge, negative), each
 * piece a bf16 that rounds what the previous left (hi = bf16(x)); non-finite x: hi = bf16(x), rest 0. */
static void test_split3_bf16(void) {
    enum { N = 4000 };
    static float x[N];
    static uint16_t hi[N], mid[N], lo[N];
    fill(x, N, 51);
    for (int i = 0; i < N; i++) x[i] *= ldexpf(1.0f, (i % 40) - 20);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = INFINITY, x[3] = -INFINITY, x[4] = NAN, x[5] = 1.0f + ldexpf(1.0f, -23);
    sf_dnnl_split3_bf16(x, hi, mid, lo, N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        const float h = sf_bf16_to_f32(hi[i]), m = sf_bf16_to_f32(mid[i]), l = sf_bf16_to_f32(lo[i]);
        if (i >= 2 && i <= 4) {
            bad += !(m == 0.0f && l == 0.0f && (isnan(x[i]) ? isnan(h) : h == x[i]));
            continue;
        }
        const double sum = (double)h + (double)m + (double)l;
        if (hi[i] != sf_f32_to_bf16(x[i]) || fabs(sum - (double)x[i]) > ldexp(fabs((double)x[i]), -24)) {
            if (!bad) fprintf(stderr, "# first: x[%d] = %.9g: %.9g + %.9g + %.9g\n", i, x[i], h, m, l);
            bad++;
        }
    }
    SF_CHECK_MSG(bad == 0, "split3: %d values off", bad);
}

/* sf_dnnl_to_bf16 and sf_dnnl_split3_bf16 in their baseline and AVX2 variants (bf16_cvt.inc): the
 * same bits as each other, and to_bf16 the same as the scalar sf_f32_to_bf16, over normal, denormal,
 * huge (rounding to inf), signed-zero, inf and NaN inputs and a ragged tail (n % 8 = 5). */
static void test_to_bf16_variants(void) {
    enum { N = 3005 };
    static float x[N];
    static uint16_t t[2][N], h[2][N], m[2][N], l[2][N];
    fill(x, N, 71);
    for (int i = 0; i < N; i++) x[i] *= ldexpf(1.0f, (i % 300) - 150); /* denormals up to near FLT_MAX */
    x[0] = 0.0f, x[1] = -0.0f, x[2] = INFINITY, x[3] = -INFINITY, x[4] = NAN, x[5] = -NAN;
    x[6] = 3.4028235e38f, x[7] = 1.0e-45f, x[N - 1] = NAN, x[N - 2] = 3.39e38f;
    for (int pass = 0; pass < 2; pass++) {
        if (pass) setenv("SF_CPU_BASELINE", "1", 1);
        SF_CHECK_MSG(sf_bf16_cvt_isa() == expected_isa(pass), "to_bf16 runs isa %d, expected %d (baseline %d)",
                     sf_bf16_cvt_isa(), expected_isa(pass), pass);
        sf_dnnl_to_bf16(x, t[pass], N);
        sf_dnnl_split3_bf16(x, h[pass], m[pass], l[pass], N);
    }
    unsetenv("SF_CPU_BASELINE");
    int bad = 0;
    for (int i = 0; i < N; i++) {
        const uint16_t want = sf_f32_to_bf16(x[i]);
        const int nan = isnan(x[i]);
        bad += nan ? !(isnan(sf_bf16_to_f32(t[0][i])) && t[0][i] == t[1][i]) : t[0][i] != want || t[1][i] != want;
    }
    SF_CHECK_MSG(bad == 0, "to_bf16: %d values differ from sf_f32_to_bf16 or between variants", bad);
    SF_CHECK_MSG(!memcmp(h[0], h[1], sizeof h[0]) && !memcmp(m[0], m[1], sizeof m[0]) && !memcmp(l[0], l[1], sizeof l[0]),
                 "split3: the baseline and AVX2 variants differ");
}

/* The fast mode's GEMM on bf16 weights with few rows (umT5 on a short prompt) on a CPU with bf16 units:
 * three bf16 pieces of each input through one oneDNN bf16 matmul (gemm.c gemm_split3). Its error
 * against a double reference stays at the exact f32 kernel's order (≤ 4× it + 1e-7·max) while one
 * bf16 rounding of the inputs (the bf16 mode) is over 30× worse — so the check sees a piece missing;
 * SF_CPU_NO_BF16_UNITS=1 takes the widening path (also f32-grade). */
static void test_fast_gemm_split3(void) {
    if (!sf_dnnl_built() || !sf_dnnl_bf16_native()) {
        SF_TEST_SKIP("no oneDNN bf16 units on this CPU (or built without oneDNN)");
        return;
    }
    enum { M = 40, N = 70, K = 1100, LDY = N + 2 };
    static float x[M * K], w[N * K], b[N], y[M * LDY], ex[M * LDY], yb[M * LDY];
    static uint16_t wb[N * K];
    static double ref[M * N];
    fill(x, M * K, 61);
    fill(w, N * K, 62);
    fill(b, N, 63);
    for (int i = 0; i < N * K; i++) wb[i] = sf_f32_to_bf16(w[i]);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = b[n];
            for (int k = 0; k < K; k++) acc += (double)x[m * K + k] * (double)sf_bf16_to_f32(wb[n * K + k]);
            ref[m * N + n] = acc;
        }
    sf_test_exact(1);
    SF_CHECK(sf_gemm_cpu(M, N, K, x, K, wb, SF_BF16, b, ex, LDY, 1) == 0);
    sf_test_exact(0);
    sf_test_mode("bf16");
    SF_CHECK(sf_gemm_cpu(M, N, K, x, K, wb, SF_BF16, b, yb, LDY, 2) == 0);
    sf_test_mode("fast");
    for (int i = 0; i < M * LDY; i++) y[i] = -555.0f;
    const unsigned long long c0 = sf_dnnl_calls();
    SF_CHECK(sf_gemm_cpu(M, N, K, x, K, wb, SF_BF16, b, y, LDY, 2) == 0);
    SF_CHECK_MSG(sf_dnnl_calls() > c0, "fast gemm on bf16 weights: oneDNN did not run");
    double e_fast = 0, e_exact = 0, e_bf16 = 0, mx = 0;
    int guard = 0;
    for (int m = 0; m < M; m++) {
        for (int n = 0; n < N; n++) {
            const double r = ref[m * N + n];
            mx = fmax(mx, fabs(r));
            e_fast = fmax(e_fast, fabs(y[m * LDY + n] - r));
            e_exact = fmax(e_exact, fabs(ex[m * LDY + n] - r));
            e_bf16 = fmax(e_bf16, fabs(yb[m * LDY + n] - r));
        }
        for (int n = N; n < LDY; n++) guard += y[m * LDY + n] != -555.0f;
    }
    SF_CHECK_MSG(!guard, "split3 gemm wrote %d guard values", guard);
    SF_CHECK_MSG(e_fast <= 4 * e_exact + 1e-7 * mx, "split3 max |err| %.3g vs exact f32 kernel's %.3g (max %.3g)",
                 e_fast, e_exact, mx);
    SF_CHECK_MSG(e_bf16 > 30 * e_fast, "bf16 inputs' error %.3g not above 30x split3's %.3g", e_bf16, e_fast);
}

/* The fast modes' attention (oneDNN products + softmax) against the exact kernel: more queries than
 * one block, strided q/k/v/out, 1 and 3 threads, guard columns; the tap keeps the exact path. */
static void test_fast_attention(void) {
    if (!sf_dnnl_built()) {
        SF_TEST_SKIP("built without oneDNN (DNNL=0)");
        return;
    }
    enum { LQ = 300, LK = 77, H = 3, D = 40, LDQ = H * D + 4, LDKV = H * D + 8, LDO = H * D + 2 };
    static float q[LQ * LDQ], k[LK * LDKV], v[LK * LDKV], ref[LQ * LDO], o[LQ * LDO];
    fill(q, LQ * LDQ, 21);
    fill(k, LK * LDKV, 22);
    fill(v, LK * LDKV, 23);
    const float scale = 0.158f;
    sf_test_exact(1);
    SF_CHECK(sf_attention_cpu(LQ, LK, H, D, q, LDQ, k, v, LDKV, ref, LDO, scale, NULL, 1) == 0);
    sf_test_exact(0);
    sf_test_mode("fast");
    for (int th = 1; th <= 3; th += 2) {
        for (int i = 0; i < LQ * LDO; i++) o[i] = -555.0f;
        const unsigned long long c0 = sf_dnnl_calls();
        SF_CHECK(sf_attention_cpu(LQ, LK, H, D, q, LDQ, k, v, LDKV, o, LDO, scale, NULL, th) == 0);
        SF_CHECK_MSG(sf_dnnl_calls() > c0, "fast attention: oneDNN did not run");
        int guard = 0;
        static float got[LQ * H * D], want[LQ * H * D];
        for (int i = 0; i < LQ; i++) {
            memcpy(got + i * H * D, o + i * LDO, sizeof(float) * H * D);
            memcpy(want + i * H * D, ref + i * LDO, sizeof(float) * H * D);
            for (int c = H * D; c < LDO; c++) guard += o[i * LDO + c] != -555.0f;
        }
        SF_CHECK_MSG(!guard, "fast attention wrote %d guard values", guard);
        sf_test_allclose("fast attention", got, want, LQ * H * D, 1e-5, 1e-5);
    }
}

/* The fast modes' GELU-tanh (oneDNN eltwise) against the exact one (tanh in double, rounded once). */
static void test_fast_gelu(void) {
    if (!sf_dnnl_built()) {
        SF_TEST_SKIP("built without oneDNN (DNNL=0)");
        return;
    }
    enum { N = 100003 };
    static float x[N], ref[N];
    fill(x, N, 41);
    for (int i = 0; i < N; i++) x[i] *= 4.0f, ref[i] = (float)sf_gelu_tanh(x[i]);
    sf_test_mode("fast");
    const unsigned long long c0 = sf_dnnl_calls();
    sf_gelu_tanh_mt_cpu(x, N, 2);
    SF_CHECK_MSG(sf_dnnl_calls() > c0, "fast gelu: oneDNN did not run");
    sf_test_allclose("fast gelu", x, ref, N, 1e-5, 1e-6);
}

static const sf_test tests[] = {
    {"fast_gemm", test_fast_gemm},
    {"split3_bf16", test_split3_bf16},
    {"to_bf16_variants", test_to_bf16_variants},
    {"fast_gemm_split3", test_fast_gemm_split3},
    {"fast_gelu", test_fast_gelu},
    {"fast_attention", test_fast_attention},
    {"gemm", test_gemm},
    {"attention", test_attention},
    {"gemm_tiles", test_gemm_tiles},
    {"attention_tiles", test_attention_tiles},
    {"rope_time_shift", test_rope_time_shift},
    {"rope_and_sinusoid", test_rope_and_sinusoid},
    {"small_ops", test_small_ops},
    {"no_fp_contract", test_no_fp_contract},
};
SF_TEST_MAIN(tests)
