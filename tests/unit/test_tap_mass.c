/* test_tap_mass.c — the attention-tap probability aggregates (kernels/tap_mass.h):
 * the CPU reference against a direct softmax of the whole logits matrix (hand-checkable cases:
 * uniform logits, one dominant key frame), and the GPU kernels (kernels/cuda/tap_mass.cu) held to
 * the CPU reference — on the CPU emulation layer in every build (this binary links the emulated
 * kernels), chunk by chunk as the explicit attention hands them over, with guard bytes.
 * Tolerance: double sums in tree vs key order, expf on both sides: 1e-6 absolute (masses ≤ 1).
 * The fused attention + mass kernel (kernels/cuda/attn_mass.cu, attn_mass_*) against sf_attention_cpu
 * and sf_tap_row_mass_cpu on the same bf16 inputs: masses within 2e-5 absolute (fp32 running sums,
 * logits summed in another order, exp2 of a difference of two log2-sums of magnitude ≲ 100:
 * ~100·2⁻²⁴ ≈ 6e-6 relative), lse 1e-5 relative, O within 2 bf16 steps or 1e-2 of max|O| (P is bf16
 * before P·V, as in flash attention; the CPU reference keeps it f32). */
#include "sf_test.h"
#include "device.h"
#include "tap_mass.h"
#include "tap_mass_cuda.h"
#include "attention.h"
#include "attn_mass_cuda.h"

#include <math.h>
#include <stdint.h>

#include "kernel_test.h"
#ifndef SF_TEST_GPU
#include "cuda/emu/sf_emu.h"
#endif

#define TM_TOL 1e-6

static double maxdiff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* Hand cases: uniform logits → every key frame gets 1/KF, lse = log Lk; one frame 20 above the rest
 * → almost all of it (e^20·S / (e^20·S + (Lk − S))). */
static void test_hand(void) {
    enum { Lk = 12, S = 3, KF = 4 };
    float s[Lk], m[KF], lse;
    for (int j = 0; j < Lk; j++) s[j] = 0.5f;
    sf_tap_row_mass_cpu(s, Lk, S, KF, m, &lse);
    for (int g = 0; g < KF; g++) SF_CHECK(fabsf(m[g] - 0.25f) < 1e-7f);
    SF_CHECK(fabsf(lse - (0.5f + logf(12.0f))) < 1e-6f);
    for (int j = 0; j < S; j++) s[j] = 20.5f;
    sf_tap_row_mass_cpu(s, Lk, S, KF, m, &lse);
    double big = exp(20.0) * 3, want0 = big / (big + 9);
    SF_CHECK_MSG(fabs(m[0] - want0) < 1e-7 && fabs(m[1] - 3 / (big + 9)) < 1e-12, "m0 %.9g", m[0]);
    /* reduce: two rows of one query frame, renormalised (groups cover half the keys) */
    float rm[2 * 2] = {0.2f, 0.2f, 0.1f, 0.3f}, l2[2] = {1, 3}, out[2], st[SF_TAP_NSTATS];
    SF_CHECK(sf_tap_mass_reduce_cpu(1, 2, 2, 2, 1, rm, l2, out, st) == 0);
    SF_CHECK(fabsf(out[0] - 0.375f) < 1e-7f && fabsf(out[1] - 0.625f) < 1e-7f); /* (0.5 + 0.25)/2, (0.5 + 0.75)/2 */
    SF_CHECK(st[0] == 2.0f && st[1] == 1.0f && st[2] == 3.0f && fabsf(st[3] - 0.4f) < 1e-7f);
}

/* sf_tap_mass_cpu from q, k = the softmax of the logits computed here, summed per frame, in double. */
static void test_cpu_vs_softmax(void) {
    enum { H = 3, d = 16, S = 5, QF = 2, KF = 4, Lq = QF * S, Lk = KF * S, ld = H * d + 3 };
    float *q = hrand(Lq * ld, -1, 1, 0), *k = hrand(Lk * ld, -1, 1, 0);
    for (int i = 0; i < Lk * ld; i++) k[i] *= 3; /* peaky rows */
    float out[H * QF * KF], st[H * QF * SF_TAP_NSTATS];
    const float scale = 1.0f / sqrtf((float)d);
    SF_CHECK(sf_tap_mass_cpu(Lq, Lk, H, d, q, ld, k, ld, scale, S, KF, S, 0, out, st, 3) == 0);
    double worst = 0;
    for (int h = 0; h < H; h++)
        for (int qf = 0; qf < QF; qf++) {
            double acc[KF] = {0}, lsum = 0;
            for (int r = qf * S; r < (qf + 1) * S; r++) {
                double lg[Lk], mx = -INFINITY, z = 0;
                for (int j = 0; j < Lk; j++) {
                    double a = 0;
                    for (int t = 0; t < d; t++) a += (double)q[r * ld + h * d + t] * k[j * ld + h * d + t];
                    lg[j] = a * scale;
                    mx = lg[j] > mx ? lg[j] : mx;
                }
                for (int j = 0; j < Lk; j++) z += exp(lg[j] - mx);
                for (int j = 0; j < Lk; j++) acc[j / S] += exp(lg[j] - mx) / z / S;
                lsum += (mx + log(z)) / S;
            }
            for (int g = 0; g < KF; g++) {
                double e = fabs(out[(h * QF + qf) * KF + g] - acc[g]);
                worst = e > worst ? e : worst;
            }
            SF_CHECK(fabs(st[(h * QF + qf) * SF_TAP_NSTATS] - lsum) < 1e-5);
        }
    SF_CHECK_MSG(worst < TM_TOL, "max|Δ| %.3g vs the double softmax", worst);
    /* the same for any thread count */
    float out1[H * QF * KF], st1[H * QF * SF_TAP_NSTATS];
    SF_CHECK(sf_tap_mass_cpu(Lq, Lk, H, d, q, ld, k, ld, scale, S, KF, S, 0, out1, st1, 1) == 0);
    SF_CHECK(!memcmp(out, out1, sizeof out) && !memcmp(st, st1, sizeof st));
    free(q), free(k);
}

/* GPU: chunks of `chunk` rows of S (H, rows, lds) like the explicit attention's, then the reduce. */
static void gpu_case(int H, int64_t Lq, int64_t Lk, int64_t lds, int64_t G, int64_t NG, int64_t S, int renorm,
                     int64_t chunk) {
    cu c;
    if (!cu_open(&c)) return;
    const int64_t QF = Lq / S;
    float *s = hrand((size_t)(H * Lq * Lk), -8, 8, 0);
    s[5] = 60.0f; /* a spike: only the true row max keeps exp finite */
    float *rm = hzalloc((size_t)(H * Lq * NG)), *lse = hzalloc((size_t)(H * Lq));
    float *ref = hzalloc((size_t)(H * QF * NG)), *rst = hzalloc((size_t)(H * QF * SF_TAP_NSTATS));
    float *got = hzalloc((size_t)(H * QF * NG)), *gst = hzalloc((size_t)(H * QF * SF_TAP_NSTATS));
    for (int64_t r = 0; r < H * Lq; r++) sf_tap_row_mass_cpu(s + r * Lk, Lk, G, NG, rm + r * NG, lse + r);
    SF_CHECK(sf_tap_mass_reduce_cpu(H, Lq, NG, S, renorm, rm, lse, ref, rst) == 0);
    float *dS = cu_alloc(&c, sizeof(float) * (size_t)(H * chunk * lds));
    float *drm = cu_alloc(&c, sizeof(float) * (size_t)(H * Lq * NG)), *dl = cu_alloc(&c, sizeof(float) * (size_t)(H * Lq));
    double *dt = cu_alloc(&c, sizeof(double) * (size_t)(H * Lq));
    gbuf go, gs;
    if (!dS || !drm || !dl || !dt || !gb_new(&c, &go, H * QF, NG, NG, 4) || !gb_new(&c, &gs, H * QF, SF_TAP_NSTATS, SF_TAP_NSTATS, 4))
        goto done;
    float *hc = hzalloc((size_t)(H * chunk * lds));
    for (int64_t r0 = 0; r0 < Lq; r0 += chunk) {
        int64_t rows = Lq - r0 < chunk ? Lq - r0 : chunk;
        for (int h = 0; h < H; h++)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < lds; j++)
                    hc[(h * rows + r) * lds + j] = j < Lk ? s[((int64_t)h * Lq + r0 + r) * Lk + j] : NAN; /* gap: never read */
        SF_CHECK_OK(sf_cuda_upload_f32(&c.ctx, dS, hc, (size_t)(H * rows * lds), &c.err), &c.err);
        SF_CHECK_OK(sf_tap_row_mass_cuda(&c.ctx, H, rows, r0, Lq, Lk, dS, lds, G, NG, drm, dl, &c.err), &c.err);
    }
    free(hc);
    SF_CHECK_OK(sf_tap_mass_reduce_cuda(&c.ctx, H, Lq, NG, S, renorm, drm, dl, dt, (float *)go.at, (float *)gs.at, &c.err),
                &c.err);
    if (gb_get(&c, &go, "tap mass", got) && gb_get(&c, &gs, "tap stats", gst)) {
        double e1 = maxdiff(got, ref, (size_t)(H * QF * NG)), e2 = maxdiff(gst, rst, (size_t)(H * QF * SF_TAP_NSTATS));
        SF_CHECK_MSG(e1 <= TM_TOL, "mass max|Δ| %.3g vs the CPU reference", e1);
        SF_CHECK_MSG(e2 <= 1e-5, "stats max|Δ| %.3g vs the CPU reference", e2);
    }
    SF_CHECK_OK(sf_tap_row_mass_cuda(&c.ctx, H, 1, Lq, Lq, Lk, dS, lds, G, NG, drm, dl, &c.err) == SF_E_ARG ? SF_OK : SF_E_ARG,
                &c.err); /* a chunk past Lq is refused */
done:
    free(s), free(rm), free(lse), free(ref), free(rst), free(got), free(gst);
    cu_close(&c);
}
/* self-attention: key frames of 40 tokens (block sums), chunks not aligned to query frames */
static void test_gpu_frames(void) {
    (void)gb_put, (void)tol_cmp; /* kernel_test.h helpers this file does not need */
    gpu_case(2, 60, 160, 163, 40, 4, 20, 0, 25); }
/* cross-attention: 7 real tokens of 64, renormalised (a thread per group) */
static void test_gpu_cross(void) { gpu_case(3, 12, 64, 64, 1, 7, 4, 1, 5); }

/* Tokens mode from the row's lse: exp(s − lse) equals sf_tap_row_mass_cpu's single-token masses (G = 1) of the
 * first NG keys (rows with a spike: the lse, not a shifted sum, keeps them finite), and the GPU kernel equals the
 * CPU reference within one expf rounding, with guards around its in-place rows. */
static void test_token_mass(void) {
    enum { R = 7, Lk = 50, NG = 12 };
    float *s = hrand(R * Lk, -6, 6, 0), rm[R * NG], lse[R], tok[R * NG];
    s[3] = 70.0f;
    for (int r = 0; r < R; r++) {
        sf_tap_row_mass_cpu(s + r * Lk, Lk, 1, NG, rm + r * NG, &lse[r]);
        memcpy(tok + r * NG, s + r * Lk, NG * sizeof(float));
    }
    sf_tap_token_mass_cpu(R, NG, lse, tok);
    double e = 0;
    for (int i = 0; i < R * NG; i++) e = fmax(e, fabs((double)tok[i] - rm[i]) / fmax(1e-30, fabs((double)rm[i])));
    SF_CHECK_MSG(e < 1e-5, "exp(s − lse) vs exp(s − m)/Z: %.3g relative", e);
    SF_CHECK(tok[3] > 0.99f); /* the spike holds its row */
    cu c;
    if (cu_open(&c)) {
        gbuf gs, gl;
        float got[R * NG], in[R * NG];
        for (int r = 0; r < R; r++) memcpy(in + r * NG, s + r * Lk, NG * sizeof(float));
        if (gb_new(&c, &gs, R, NG, NG, 4) && gb_put(&c, &gs, in) && gb_new(&c, &gl, 1, R, R, 4) && gb_put(&c, &gl, lse)) {
            SF_CHECK_OK(sf_tap_token_mass_cuda(&c.ctx, R, NG, (const float *)gl.at, (float *)gs.at, &c.err), &c.err);
            if (gb_get(&c, &gs, "token mass", got)) {
                double g = 0;
                for (int i = 0; i < R * NG; i++) g = fmax(g, fabs((double)got[i] - tok[i]) / fmax(1e-30, fabs((double)tok[i])));
                SF_CHECK_MSG(g <= 1e-6, "GPU token mass %.3g relative vs the CPU reference", g);
            }
        }
        SF_CHECK(sf_tap_token_mass_cuda(&c.ctx, -1, NG, NULL, NULL, &c.err) == SF_E_ARG);
        cu_close(&c);
    }
    free(s);
}

/* Frames-mode means: x[t, c] = t + c/8 → means = (S−1)/2 + c/8 exactly; and the identity frames mode
 * rests on: the mean of a frame pair's logits = (mean q)·(mean k)·scale, against the logits averaged
 * one by one (1e-12 relative: double sums in different orders); sf_frame_logit_means_cpu is that. */
static void test_frame_means(void) {
    enum { NF = 3, S = 5, D = 6, LD = 8 };
    float x[NF * S * LD];
    double m[NF * D];
    for (int r = 0; r < NF * S; r++)
        for (int c = 0; c < LD; c++) x[r * LD + c] = c < D ? (float)(r % S) + (float)c / 8 + (float)(r / S) : NAN;
    sf_frame_means_cpu(NF, S, D, x, LD, m);
    for (int f = 0; f < NF; f++)
        for (int c = 0; c < D; c++) SF_CHECK_MSG(m[f * D + c] == (S - 1) / 2.0 + c / 8.0 + f, "means[%d,%d] = %g", f, c, m[f * D + c]);
    /* the bilinear identity on random q (2 frames) and k (3 frames), one head of d = D */
    float *q = hrand(2 * S * D, -1, 1, 0), *k = hrand(3 * S * D, -1, 1, 0);
    double qm[2 * D], km[3 * D], scale = 0.25;
    sf_frame_means_cpu(2, S, D, q, D, qm);
    sf_frame_means_cpu(3, S, D, k, D, km);
    for (int qf = 0; qf < 2; qf++)
        for (int kf = 0; kf < 3; kf++) {
            double direct = 0, viam = 0;
            for (int i = 0; i < S; i++)
                for (int j = 0; j < S; j++) {
                    double s = 0;
                    for (int c = 0; c < D; c++) s += (double)q[(qf * S + i) * D + c] * k[(kf * S + j) * D + c];
                    direct += s * scale;
                }
            direct /= S * S;
            for (int c = 0; c < D; c++) viam += qm[qf * D + c] * km[kf * D + c];
            viam *= scale;
            SF_CHECK_MSG(fabs(direct - viam) <= 1e-12 * (1 + fabs(direct)), "frame pair (%d, %d): %.17g vs %.17g", qf, kf,
                         direct, viam);
            float agg[2 * 3];
            sf_frame_logit_means_cpu(1, D, 2, 3, qm, km, scale, agg);
            SF_CHECK(agg[qf * 3 + kf] == (float)viam);
        }
    free(q), free(k);
}

/* sf_frame_means_cuda == sf_frame_means_cpu bit for bit: bf16 rows with a stride (the [k | v] cache's
 * 2·D), NaN in the gap (never read), frames of 40 tokens. Emulated, once more on a grid capped at one
 * block: both kernels loop over what a capped grid leaves (sf_cuda_blocks caps it at large sizes). */
static void frame_means_case(int NF, int S, int D, int LD, int H, int QF);
static void test_gpu_frame_means(void) {
    frame_means_case(4, 40, 24, 48, 3, 1);
#ifndef SF_TEST_GPU
    sf_emu_set_max_blocks(1); /* 6·96 means and 8·6·6 aggregates: more than one block of 256 threads each */
    frame_means_case(6, 8, 96, 200, 8, 6);
    sf_emu_set_max_blocks(0);
#endif
}
static void frame_means_case(int NF, int S, int D, int LD, int H, int QF) {
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand((size_t)NF * S * LD, -3, 3, 1);
    for (int r = 0; r < NF * S; r++)
        for (int j = D; j < LD; j++) x[r * LD + j] = NAN;
    double *ref = malloc(sizeof(double) * NF * D), *got = malloc(sizeof(double) * NF * D);
    const int d = D / H, KF = NF, na = H * QF * KF;
    float *agg = malloc(sizeof(float) * na), *gagg = malloc(sizeof(float) * na);
    sf_frame_means_cpu(NF, S, D, x, LD, ref);
    void *dx = cu_alloc(&c, 2 * (size_t)NF * S * LD);
    double *dm = cu_alloc(&c, sizeof(double) * NF * D);
    if (dx && dm && ref && got && agg && gagg) {
        SF_CHECK_OK(sf_cuda_upload_bf16(&c.ctx, dx, x, (size_t)NF * S * LD, &c.err), &c.err);
        SF_CHECK_OK(sf_frame_means_cuda(&c.ctx, NF, S, D, dx, LD, dm, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, got, dm, sizeof(double) * NF * D, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_sync(&c.ctx, &c.err), &c.err);
        int i = 0;
        while (i < NF * D && memcmp(&got[i], &ref[i], sizeof(double)) == 0) i++;
        SF_CHECK_MSG(i == NF * D, "frame means (%d frames × %d) [%d]: %.17g (GPU) vs %.17g (CPU)", NF, D, i,
                     i < NF * D ? got[i] : 0.0, i < NF * D ? ref[i] : 0.0);
        SF_CHECK(sf_frame_means_cuda(&c.ctx, NF, S, D, dx, D - 1, dm, &c.err) == SF_E_ARG); /* ld < D */
        /* the aggregate from those means (H heads of d; the last QF frames as queries against all): bit for bit */
        const double scale = 1.0 / sqrt((double)d);
        sf_frame_logit_means_cpu(H, d, QF, KF, ref + (NF - QF) * D, ref, scale, agg);
        float *da = cu_alloc(&c, sizeof(float) * na);
        if (da) {
            SF_CHECK_OK(sf_frame_logit_means_cuda(&c.ctx, H, d, QF, KF, dm + (NF - QF) * D, dm, scale, da, &c.err), &c.err);
            SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, gagg, da, sizeof(float) * na, &c.err), &c.err);
            SF_CHECK_OK(sf_cuda_sync(&c.ctx, &c.err), &c.err);
            int k = 0;
            while (k < na && memcmp(&agg[k], &gagg[k], sizeof(float)) == 0) k++;
            SF_CHECK_MSG(k == na, "frame aggregates [%d of %d]: %.9g (GPU) vs %.9g (CPU)", k, na, k < na ? gagg[k] : 0.0,
                         k < na ? agg[k] : 0.0);
        }
    }
    free(x), free(ref), free(got), free(agg), free(gagg);
    cu_close(&c);
}

/* The fused kernel: q (Lq, H·d) stride H·d + 8, keys and values as the DiT's [k | v] cache rows (stride
 * 2·H·d + 8), O into a guarded buffer; then the per-frame reduce on both sides. kscale sharpens the
 * logits (large row maxima exercise the running rescale); G < 64 makes tiles span several groups,
 * NG·G < Lk leaves padding keys out of the groups. */
static int attn_mass_case(int H, int d, int64_t Lq, int64_t Lk, int64_t G, int64_t NG, int64_t S, float kscale) {
    cu c;
    if (!cu_open(&c)) return 0; /* SKIPped: no device */
    const int64_t D = (int64_t)H * d, ldq = D + 8, ldk = 2 * D + 8, QF = Lq / S;
    float *q = hrand((size_t)(Lq * D), -1, 1, 1), *kv = hrand((size_t)(Lk * 2 * D), -1, 1, 0);
    for (int64_t i = 0; i < Lk * 2 * D; i++) kv[i] = sf_round_bf16(i % (2 * D) < D ? kv[i] * kscale : kv[i]);
    const float scale = 1.0f / sqrtf((float)d);
    float *oref = hzalloc((size_t)(Lq * D)), *lg = hzalloc((size_t)(H * Lq * Lk));
    float *rm = hzalloc((size_t)(H * Lq * NG)), *lse = hzalloc((size_t)(H * Lq));
    SF_CHECK(sf_attention_cpu(Lq, Lk, H, d, q, D, kv, kv + D, 2 * D, oref, D, scale, lg, 1) == 0);
    for (int64_t r = 0; r < H * Lq; r++) sf_tap_row_mass_cpu(lg + r * Lk, Lk, G, NG, rm + r * NG, lse + r);
    float *aref = hzalloc((size_t)(H * QF * NG)), *sref = hzalloc((size_t)(H * QF * SF_TAP_NSTATS));
    SF_CHECK(NG == 0 || sf_tap_mass_reduce_cpu(H, Lq, NG, S, 0, rm, lse, aref, sref) == 0);

    float *og = hzalloc((size_t)(Lq * D)), *rmg = hzalloc((size_t)(H * Lq * NG)), *lg2 = hzalloc((size_t)(H * Lq));
    float *ag = hzalloc((size_t)(H * QF * NG)), *sg = hzalloc((size_t)(H * QF * SF_TAP_NSTATS));
    gbuf gq, gkv, go, grm, gl, ga, gs;
    double *dt = cu_alloc(&c, sizeof(double) * (size_t)(H * Lq));
    if (!dt || !gb_new(&c, &gq, Lq, D, ldq, 2) || !gb_new(&c, &gkv, Lk, 2 * D, ldk, 2) || !gb_new(&c, &go, Lq, D, D + 8, 2) ||
        !gb_new(&c, &grm, H * Lq, NG ? NG : 1, NG ? NG : 1, 4) || !gb_new(&c, &gl, H * Lq, 1, 1, 4) || !gb_new(&c, &ga, H * QF, NG, NG, 4) ||
        !gb_new(&c, &gs, H * QF, SF_TAP_NSTATS, SF_TAP_NSTATS, 4) || !gb_put(&c, &gq, q) || !gb_put(&c, &gkv, kv))
        goto done;
    if (NG == 0) { /* the attention alone (the DiT's stand-in for cuDNN): no masses; lse when asked for */
        SF_CHECK_OK(sf_attn_mass_cuda(&c.ctx, Lq, Lk, H, d, gq.at, ldq, gkv.at, gkv.at + 2 * D, ldk, go.at, D + 8, scale, 1,
                                      0, NULL, (float *)gl.at, &c.err),
                    &c.err);
        double omax = 0;
        for (int64_t i = 0; i < Lq * D; i++) omax = fabs(oref[i]) > omax ? fabs(oref[i]) : omax;
        if (gb_get(&c, &go, "attention O", og)) tol_cmp("attention O", og, oref, (size_t)(Lq * D), 2, 1, 0, 1e-2 * omax);
        if (gb_get(&c, &gl, "attention lse", lg2)) tol_cmp("attention lse", lg2, lse, (size_t)(H * Lq), 0, 0, 1e-5, 1e-6);
        goto done;
    }
    SF_CHECK_OK(sf_attn_mass_cuda(&c.ctx, Lq, Lk, H, d, gq.at, ldq, gkv.at, gkv.at + 2 * D, ldk, go.at, D + 8, scale, G, NG,
                                  (float *)grm.at, (float *)gl.at, &c.err),
                &c.err);
    SF_CHECK_OK(sf_tap_mass_reduce_cuda(&c.ctx, H, Lq, NG, S, 0, (const float *)grm.at, (const float *)gl.at, dt,
                                        (float *)ga.at, (float *)gs.at, &c.err),
                &c.err);
    if (gb_get(&c, &go, "attn_mass O", og) && gb_get(&c, &grm, "attn_mass rowmass", rmg) &&
        gb_get(&c, &gl, "attn_mass lse", lg2) && gb_get(&c, &ga, "attn_mass aggregate", ag) &&
        gb_get(&c, &gs, "attn_mass stats", sg)) {
        double omax = 0;
        for (int64_t i = 0; i < Lq * D; i++) omax = fabs(oref[i]) > omax ? fabs(oref[i]) : omax;
        tol_cmp("attn_mass O", og, oref, (size_t)(Lq * D), 2, 1, 0, 1e-2 * omax);
        tol_cmp("attn_mass rowmass", rmg, rm, (size_t)(H * Lq * NG), 0, 0, 0, 2e-5);
        tol_cmp("attn_mass lse", lg2, lse, (size_t)(H * Lq), 0, 0, 1e-5, 1e-6);
        tol_cmp("attn_mass per-frame mass", ag, aref, (size_t)(H * QF * NG), 0, 0, 0, 2e-5);
        tol_cmp("attn_mass per-frame stats", sg, sref, (size_t)(H * QF * SF_TAP_NSTATS), 0, 0, 1e-5, 2e-5);
        /* the masses are the softmax's: a row holds Σ_g ≤ 1 (= 1 when the groups cover every key) */
        double worst = 0;
        for (int64_t r = 0; r < H * Lq && NG * G == Lk; r++) {
            double t = 0;
            for (int64_t gi = 0; gi < NG; gi++) t += rmg[r * NG + gi];
            worst = fabs(t - 1) > worst ? fabs(t - 1) : worst;
        }
        SF_CHECK_MSG(worst < 2e-5, "a row's masses sum to 1 ± %.3g", worst);
    }
done:
    free(q), free(kv), free(oref), free(lg), free(rm), free(lse), free(aref), free(sref);
    free(og), free(rmg), free(lg2), free(ag), free(sg);
    cu_close(&c);
    return 1;
}
/* the DiT's shape class: d = 128, key frames of 80 tokens (tiles straddle them), a tail tile of 16
 * keys and a last query block of 48 rows */
static void test_attn_mass_frames(void) { attn_mass_case(2, 128, 240, 400, 80, 5, 80, 1.0f); }
/* d = 32, groups of 5 (a tile spans up to 14), 5 padding keys outside the groups, sharp logits */
static void test_attn_mass_small_groups(void) { attn_mass_case(3, 32, 20, 130, 5, 25, 10, 4.0f); }
/* d = 64 and d = 16, a single query row and a single key tile */
static void test_attn_mass_dims(void) {
    attn_mass_case(1, 64, 1, 70, 35, 2, 1, 2.0f);
    attn_mass_case(2, 16, 17, 9, 3, 3, 17, 1.0f);
}
/* no groups: the attention alone, as the DiT runs it without cuDNN (lse and masses not written) */
static void test_attn_plain(void) {
    attn_mass_case(2, 128, 100, 200, 1, 0, 100, 1.0f);
    attn_mass_case(3, 64, 7, 512, 1, 0, 7, 3.0f);
}
/* A kernel variant asked for by env=1 on three cases — groups of 80 at d = 128, small groups at d2, the
 * plain attention — and, on the emulation, proof that the variant's kernels (launched under the names
 * groups and plain) are the ones that ran. */
static void variant_cases_v(const char *env, const char *val, const char *groups, const char *plain, int d2) {
#ifndef SF_TEST_GPU
    const unsigned long long g0 = sf_emu_kernel_launches(groups), p0 = sf_emu_kernel_launches(plain);
#endif
    setenv(env, val, 1);
    /* on a GPU too, the kernel that ran must be the variant's (one the device declines falls back) */
    const int on = attn_mass_case(2, 128, 240, 400, 80, 5, 80, 1.0f);
    const char *ran = sf_attn_mass_last_kernel();
    SF_CHECK_MSG(!on || (ran && !strcmp(ran, groups)), "%s=%s: the kernel that ran was %s, not %s", env, val,
                 ran ? ran : "none", groups);
    attn_mass_case(d2 == 64 ? 1 : 3, d2, d2 == 64 ? 100 : 20, 130, 5, d2 == 64 ? 26 : 25, 10, 4.0f);
    attn_mass_case(2, 128, 100, 200, 1, 0, 100, 1.0f);
    ran = sf_attn_mass_last_kernel();
    SF_CHECK_MSG(!on || (ran && !strcmp(ran, plain)), "%s=%s: the kernel that ran was %s, not %s", env, val,
                 ran ? ran : "none", plain);
    unsetenv(env);
#ifndef SF_TEST_GPU
    const unsigned long long g = sf_emu_kernel_launches(groups) - g0, pl = sf_emu_kernel_launches(plain) - p0;
    SF_CHECK_MSG(g == 2 && pl == 1, "%s: %llu launches of %s, %llu of %s (want 2, 1)", env, g, groups, pl, plain);
#endif
}
static void variant_cases(const char *env, const char *groups, const char *plain, int d2) {
    variant_cases_v(env, "1", groups, plain, d2);
}
/* On Hopper's wgmma (attn_mass_wg.cu; the emulation reports an sm_90 device and emulates wgmma from the
 * PTX layouts; on a GPU this runs on the H200's tensor cores): d = 128 and 64. */
static void test_attn_mass_wgmma(void) { variant_cases("SF_ATTN_WGMMA", "attn_mass_groups_wg", "attn_plain_wg", 64); }
/* The mma.sync kernel's 128-row blocks (8 warps share each K/V tile), partial blocks included: d = 128, 32. */
static void test_attn_mass_bm128(void) { variant_cases("SF_ATTN_BM128", "attn_mass_groups_bm128", "attn_plain_bm128", 32); }
/* Both: the wgmma kernel with two warpgroups per block (128 rows sharing each K/V tile). */
static void test_attn_mass_wgmma_bm128(void) {
    setenv("SF_ATTN_WGMMA", "1", 1);
    variant_cases("SF_ATTN_BM128", "attn_mass_groups_wg_bm128", "attn_plain_wg_bm128", 64);
    unsetenv("SF_ATTN_WGMMA");
}
/* The warp-specialised kernel (attn_mass_ws.cu: a TMA producer warpgroup, two wgmma consumers, a ring of
 * 4 K/V stages on mbarriers) in mode val (SF_ATTN_WS): the variant cases, then 1100 keys (18 tiles: the
 * ring wraps four times, so both parities of every stage's barriers are waited on) with a tail tile of
 * 12 keys and 3 query blocks, and a single key tile at d = 64 (no overlap at all in modes 2 and 3). */
static void ws_cases(const char *val, int wide) {
    char groups[48], plain[48];
    const int plain1 = !strcmp(val, "1"); /* mode 1's kernels carry no number */
    snprintf(groups, sizeof groups, "attn_mass_groups_ws%s%s", plain1 ? "" : val, wide ? "_n128" : "");
    snprintf(plain, sizeof plain, "attn_plain_ws%s%s", plain1 ? "" : val, wide ? "_n128" : "");
    if (wide) setenv("SF_ATTN_WS_BN", "128", 1);
    variant_cases_v("SF_ATTN_WS", val, groups, plain, 64);
    setenv("SF_ATTN_WS", val, 1);
    attn_mass_case(1, 128, 300, 1100, 100, 11, 100, 2.0f);
    attn_mass_case(2, 64, 70, 50, 10, 5, 10, 3.0f);
    unsetenv("SF_ATTN_WS");
    unsetenv("SF_ATTN_WS_BN");
}
static void test_attn_mass_ws(void) { ws_cases("1", 0); }
/* with FA3's intra-warpgroup overlap (tile j's S = Q·Kᵀ and tile j − 1's O += P·V in flight while tile j's
   softmax runs, O rescaled after) */
static void test_attn_mass_ws2(void) { ws_cases("2", 0); }
/* and with the two consumers' ping-pong on named barriers */
static void test_attn_mass_ws3(void) { ws_cases("3", 0); }
/* the three modes with 128-key tiles (SF_ATTN_WS_BN=128: a ring of 2 stages; 1100 keys wrap it four times) */
static void test_attn_mass_ws_n128(void) {
    ws_cases("1", 1);
    ws_cases("2", 1);
    ws_cases("3", 1);
}

/* The warp-specialised kernel's last-wave split (attn_mass_ws.cu, ws_plan), made to happen by planning
 * for a few SMs ($SF_ATTN_WS_SMS): 2 heads × 3 row blocks on 4 SMs (2 tail units as 2 key splits of
 * 9 tiles), one unit on 5 SMs (4 splits of 18 tiles: 1100 keys, a tail tile of 12), 2 units of one tile
 * (no split possible); in each mode and tile width, the plain attention against the CPU (O and the
 * combined lse), and with the split off ($SF_ATTN_WS_SPLIT=0). On the emulation
 * the combine kernel must have run as planned; on a GPU the plan is reported by sf_attn_mass_last_split. */
static void ws_split_case(int H, int d, int64_t Lq, int64_t Lk, const char *sms, int want_split, int64_t want_tail) {
    setenv("SF_ATTN_WS_SMS", sms, 1);
#ifndef SF_TEST_GPU
    const unsigned long long c0 = sf_emu_kernel_launches("attn_ws_combine");
#endif
    const int on = attn_mass_case(H, d, Lq, Lk, 1, 0, Lq, 2.0f);
    int64_t tail = -1;
    const int split = sf_attn_mass_last_split(&tail);
    SF_CHECK_MSG(!on || (split == want_split && tail == want_tail), "%d heads × %lld rows × %lld keys on %s SMs: split %d, %lld tail units (want %d, %lld)",
                 H, (long long)Lq, (long long)Lk, sms, split, (long long)tail, want_split, (long long)want_tail);
#ifndef SF_TEST_GPU
    const unsigned long long c = sf_emu_kernel_launches("attn_ws_combine") - c0;
    SF_CHECK_MSG(c == (want_split > 1), "%llu combine launches (want %d)", c, want_split > 1);
#endif
    unsetenv("SF_ATTN_WS_SMS");
}
static void test_attn_ws_split(void) {
    static const char *const modes[] = {"1", "2", "3"};
    for (int wide = 0; wide < 2; wide++)
        for (int m = 0; m < 3; m++) {
            setenv("SF_ATTN_WS", modes[m], 1);
            if (wide) setenv("SF_ATTN_WS_BN", "128", 1);
            ws_split_case(2, 128, 300, 1100, "4", 2, 2);
            ws_split_case(1, 64, 70, 1100, "5", 4, 1);
            ws_split_case(2, 128, 20, 50, "3", 1, 0);
            setenv("SF_ATTN_WS_SPLIT", "0", 1); /* the A/B: whole units */
            ws_split_case(2, 128, 300, 1100, "4", 1, 0);
            unsetenv("SF_ATTN_WS_SPLIT");
            unsetenv("SF_ATTN_WS");
            unsetenv("SF_ATTN_WS_BN");
        }
}

/* What the kernel does not take is refused before anything runs: SF_E_UNSUPPORTED for a head dim or
 * stride it has no code for (the caller falls back to the explicit path), SF_E_ARG for bad shapes. */
static void test_attn_mass_refusals(void) {
    cu c;
    if (!cu_open(&c)) return;
    void *b = cu_alloc(&c, 1 << 16);
    float *f = cu_alloc(&c, 1 << 12);
    if (b && f) {
        SF_CHECK(sf_attn_mass_cuda(&c.ctx, 4, 8, 1, 48, b, 48, b, b, 96, b, 48, 1, 4, 2, f, f, &c.err) == SF_E_UNSUPPORTED);
        SF_CHECK(strstr(c.err.msg, "head dim 48") != NULL);
        SF_CHECK(sf_attn_mass_cuda(&c.ctx, 4, 8, 1, 64, b, 68, b, b, 128, b, 64, 1, 4, 2, f, f, &c.err) == SF_E_UNSUPPORTED);
        SF_CHECK(sf_attn_mass_cuda(&c.ctx, 4, 8, 1, 64, (char *)b + 2, 64, b, b, 128, b, 64, 1, 4, 2, f, f, &c.err) ==
                 SF_E_UNSUPPORTED);
        SF_CHECK(sf_attn_mass_cuda(&c.ctx, 4, 8, 1, 64, b, 64, b, b, 128, b, 64, 1, 4, 3, f, f, &c.err) == SF_E_ARG);
        SF_CHECK(sf_attn_mass_cuda(&c.ctx, 4, 8, 2, 64, b, 64, b, b, 128, b, 64, 1, 4, 2, f, f, &c.err) == SF_E_ARG);
        SF_CHECK(sf_attn_mass_cuda(&c.ctx, 0, 8, 1, 64, b, 64, b, b, 128, b, 64, 1, 4, 2, f, f, &c.err) == SF_OK);
    }
    cu_close(&c);
}

static const sf_test tests[] = {
    {"hand", test_hand},
    {"cpu_vs_softmax", test_cpu_vs_softmax},
    {"gpu_frames", test_gpu_frames},
    {"gpu_cross", test_gpu_cross},
    {"token_mass", test_token_mass},
    {"frame_means", test_frame_means},
    {"gpu_frame_means", test_gpu_frame_means},
    {"attn_mass_frames", test_attn_mass_frames},
    {"attn_mass_small_groups", test_attn_mass_small_groups},
    {"attn_mass_dims", test_attn_mass_dims},
    {"attn_plain", test_attn_plain},
    {"attn_mass_wgmma", test_attn_mass_wgmma},
    {"attn_mass_bm128", test_attn_mass_bm128},
    {"attn_mass_wgmma_bm128", test_attn_mass_wgmma_bm128},
    {"attn_mass_ws", test_attn_mass_ws},
    {"attn_mass_ws2", test_attn_mass_ws2},
    {"attn_mass_ws3", test_attn_mass_ws3},
    {"attn_mass_ws_n128", test_attn_mass_ws_n128},
    {"attn_ws_split", test_attn_ws_split},
    {"attn_mass_refusals", test_attn_mass_refusals},
};
SF_TEST_MAIN(tests)
