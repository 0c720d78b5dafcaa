/* test_kv_compress.c — Participative Compression's ops (kernels/kv_compress.h): the CPU references against
 * hand-checkable cases and a direct softmax, and the GPU kernels (kernels/cuda/kv_compress.cu) held to them — on
 * the CPU emulation layer in every build (this binary links the emulated kernels), on a GPU in the _gpu twin.
 * Tolerances: the key masses are fp64 sums of fp64 exps of the same f32 logits on both sides: 1e-9 relative when
 * the logits are the same (rows handed over); from bf16 q and k the GPU's GEMM rounds each logit in f32 in
 * another order than the CPU's fp64 dot: 2e-4 relative to the largest mass (logits ≲ 8, one f32 step ≈ 5e-7 of
 * them, many keys). The gather moves bf16 bits: exact. */
#include "sf_test.h"
#include "device.h"
#include "kv_compress.h"
#include "kv_compress_cuda.h"

#include <math.h>
#include <stdint.h>

#include "kernel_test.h"
#ifndef SF_TEST_GPU
#include "cuda/emu/sf_emu.h"
#endif

/* Hand cases: uniform logits → each key gets 1/Lk from each row; one key 30 above the rest takes its rows; and the
 * fp64 row max keeps logits of 800 finite (their lse ≈ 807 holds ~1e-13 of absolute rounding). */
static void test_hand(void) {
    enum { Lk = 8 };
    float s[2 * Lk];
    double acc[Lk] = {0};
    for (int i = 0; i < 2 * Lk; i++) s[i] = 0.25f;
    sf_key_mass_rows_cpu(2, Lk, s, Lk, 0, Lk, acc);
    for (int j = 0; j < Lk; j++) SF_CHECK_MSG(fabs(acc[j] - 2.0 / Lk) < 1e-15, "uniform key %d: %.17g", j, acc[j]);
    double acc2[3] = {1, 1, 1};
    s[Lk + 5] = 30.25f; /* row 1, key 5 */
    sf_key_mass_rows_cpu(2, Lk, s, Lk, 4, 3, acc2); /* keys 4, 5, 6 */
    const double z = exp(30.0) + 7;
    SF_CHECK_MSG(fabs(acc2[1] - (1 + 1.0 / Lk + exp(30.0) / z)) < 1e-12, "spike: %.17g", acc2[1]);
    SF_CHECK_MSG(fabs(acc2[0] - (1 + 1.0 / Lk + 1 / z)) < 1e-12, "beside the spike: %.17g", acc2[0]);
    for (int i = 0; i < Lk; i++) s[i] = 800.0f + (float)i;
    double big[Lk] = {0}, sum = 0;
    sf_key_mass_rows_cpu(1, Lk, s, Lk, 0, Lk, big);
    for (int j = 0; j < Lk; j++) sum += big[j];
    SF_CHECK_MSG(isfinite(sum) && fabs(sum - 1) < 1e-12, "logits of 800: total %.17g", sum);
    SF_CHECK(big[7] > big[6] && big[6] > big[0]);
}

/* sf_key_mass_cpu against the softmax written out here; the masses of all the keys sum to Lq per head. */
static void test_cpu_vs_softmax(void) {
    enum { H = 3, d = 8, Lq = 5, Lk = 11, ld = H * d + 2, K0 = 3, NK = 6 };
    float *q = hrand(Lq * ld, -1.5f, 1.5f, 0), *k = hrand(Lk * ld, -1.5f, 1.5f, 0);
    const float scale = 0.35f;
    double got[H * NK], all[H * Lk], want[H * NK] = {0};
    sf_err err = {{0}};
    SF_CHECK_OK(sf_key_mass_cpu(Lq, Lk, H, d, q, ld, k, ld, scale, K0, NK, got, 1, &err), &err);
    SF_CHECK_OK(sf_key_mass_cpu(Lq, Lk, H, d, q, ld, k, ld, scale, 0, Lk, all, 2, &err), &err);
    for (int h = 0; h < H; h++) {
        double tot = 0;
        for (int j = 0; j < Lk; j++) tot += all[h * Lk + j];
        SF_CHECK_MSG(fabs(tot - Lq) < 1e-12, "head %d: the keys' masses sum to %.17g, not %d", h, tot, Lq);
        for (int r = 0; r < Lq; r++) {
            double l[Lk], z = 0;
            for (int i = 0; i < Lk; i++) {
                double dot = 0;
                for (int c = 0; c < d; c++) dot += (double)q[r * ld + h * d + c] * k[i * ld + h * d + c];
                l[i] = dot * scale;
                z += exp(l[i]);
            }
            for (int j = 0; j < NK; j++) want[h * NK + j] += exp(l[K0 + j]) / z;
        }
        for (int j = 0; j < NK; j++) {
            SF_CHECK_MSG(fabs(got[h * NK + j] - want[h * NK + j]) < 1e-6, "head %d key %d: %.9g, softmax %.9g", h,
                         K0 + j, got[h * NK + j], want[h * NK + j]);
            SF_CHECK(got[h * NK + j] == all[h * Lk + K0 + j]); /* a range is the same sums as the whole */
        }
    }
    SF_CHECK(sf_key_mass_cpu(Lq, Lk, H, d, q, ld, k, ld, scale, 8, 4, got, 1, &err) == SF_E_ARG); /* past Lk */
    free(q), free(k);
}

/* The threads share out rows and keys, never a sum: 1, 2 and 3 threads give the bits sf_key_mass_rows_cpu gives on
 * the same f32 logits (rows of each head made here, the dot in double rounded once). */
static void test_threads(void) {
    enum { H = 2, d = 16, Lq = 13, Lk = 29, ld = H * d, K0 = 5, NK = 20 };
    float *q = hrand(Lq * ld, -2, 2, 0), *k = hrand(Lk * ld, -2, 2, 0), row[Lk];
    const float scale = 0.25f;
    double ref[H * NK] = {0}, got[H * NK];
    for (int h = 0; h < H; h++)
        for (int r = 0; r < Lq; r++) {
            for (int i = 0; i < Lk; i++) {
                double dot = 0;
                for (int c = 0; c < d; c++) dot += (double)q[r * ld + h * d + c] * (double)k[i * ld + h * d + c];
                row[i] = (float)(dot * (double)scale);
            }
            sf_key_mass_rows_cpu(1, Lk, row, Lk, K0, NK, ref + h * NK);
        }
    sf_err err = {{0}};
    for (int t = 1; t <= 3; t++) {
        SF_CHECK_OK(sf_key_mass_cpu(Lq, Lk, H, d, q, ld, k, ld, scale, K0, NK, got, t, &err), &err);
        int first = -1;
        for (int i = 0; i < H * NK && first < 0; i++)
            if (got[i] != ref[i]) first = i;
        SF_CHECK_MSG(first < 0, "%d threads: key %d got %.17g, the rows' %.17g", t, first, got[first < 0 ? 0 : first],
                     ref[first < 0 ? 0 : first]);
    }
    free(q), free(k);
}

/* Selection: the keep largest per head, ties to the lower index, NaN last, listed ascending. */
static void test_select(void) {
    const double sc[2 * 6] = {0.5, 0.9, 0.5, 0.1, 0.9, 0.2, /* head 0: 1 and 4, then 0 before 2 (tie) */
                              NAN, 0.3, 0.3, 0.3, -1.0, 0.7};
    int32_t idx[2 * 3];
    SF_CHECK(sf_kv_select_cpu(2, 6, sc, 3, idx) == 0);
    const int32_t want[6] = {0, 1, 4, 1, 2, 5};
    for (int i = 0; i < 6; i++) SF_CHECK_MSG(idx[i] == want[i], "idx[%d] = %d, want %d", i, idx[i], want[i]);
    int32_t all[6];
    SF_CHECK(sf_kv_select_cpu(1, 6, sc, 6, all) == 0);
    for (int i = 0; i < 6; i++) SF_CHECK(all[i] == i); /* keep = n: everything, in order */
    SF_CHECK(sf_kv_select_cpu(2, 6, sc, 0, idx) == 0);
}

/* Gather in place: each head's rows from its own list, other columns and rows untouched. */
static void test_gather_cpu(void) {
    enum { H = 2, d = 3, ld = H * d + 1, R = 6, KEEP = 3 };
    float x[R * ld], x0[R * ld];
    for (int i = 0; i < R * ld; i++) x[i] = x0[i] = (float)i;
    const int32_t idx[H * KEEP] = {1, 2, 5, 0, 3, 4};
    sf_kv_gather_cpu(x, ld, H, d, KEEP, idx);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < ld; c++) {
            const int h = c / d;
            const float want = r < KEEP && c < H * d ? x0[idx[h * KEEP + r] * ld + c] : x0[r * ld + c];
            SF_CHECK_MSG(x[r * ld + c] == want, "row %d col %d: %g, want %g", r, c, x[r * ld + c], want);
        }
}

/* GPU: the rows form on f32 logits (chunks, a gap past Lk never read), the whole form from bf16 q, k against the
 * CPU on the same (bf16-rounded) values, and the gather bit for bit, with guards. */
static void test_gpu_rows(void) {
    enum { R = 37, Lk = 300, lds = 305, K0 = 40, NK = 200 };
    cu c;
    if (!cu_open(&c)) return;
    float *s = hrand(R * lds, -7, 7, 0);
    s[2 * lds + K0 + 9] = 60.0f; /* a spike: only the true max keeps exp finite */
    for (int r = 0; r < R; r++)
        for (int j = Lk; j < lds; j++) s[r * lds + j] = NAN; /* the gap: never read */
    double ref[NK], got[NK];
    for (int j = 0; j < NK; j++) ref[j] = 0.5; /* accumulated onto */
    sf_key_mass_rows_cpu(R, Lk, s, lds, K0, NK, ref);
    float *dS = cu_put(&c, s, R * lds, 0);
    double *dl = cu_alloc(&c, sizeof(double) * R), *da = cu_alloc(&c, sizeof(double) * NK);
    if (!dS || !dl || !da) goto done;
    for (int j = 0; j < NK; j++) got[j] = 0.5;
    SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, da, got, sizeof got, &c.err), &c.err);
    SF_CHECK_OK(sf_key_mass_rows_cuda(&c.ctx, 20, Lk, dS, lds, K0, NK, dl, da, &c.err), &c.err);
    SF_CHECK_OK(sf_key_mass_rows_cuda(&c.ctx, R - 20, Lk, dS + 20 * lds, lds, K0, NK, dl, da, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, got, da, sizeof got, &c.err), &c.err);
    double e = 0;
    int first = -1;
    for (int j = 0; j < NK; j++) {
        double r = fabs(got[j] - ref[j]) / fabs(ref[j]);
        if (!(r <= 1e-9) && first < 0) first = j;
        if (!(r <= e)) e = r;
    }
    SF_CHECK_MSG(first < 0, "key mass rows: key %d got %.17g ref %.17g; max rel |d| %.3g", first, got[first < 0 ? 0 : first],
                 ref[first < 0 ? 0 : first], e);
    SF_CHECK(sf_key_mass_rows_cuda(&c.ctx, R, Lk, dS, lds, K0, Lk, dl, da, &c.err) == SF_E_ARG); /* past Lk */
done:
    free(s);
    cu_close(&c);
}

static void test_gpu_qk(void) {
    enum { H = 2, d = 32, Lq = 50, Lk = 90, ld = 2 * H * d, K0 = 10, NK = 70, WS = 16 };
    cu c;
    if (!cu_open(&c)) return;
    float *q = hrand(Lq * ld, -1, 1, 1), *k = hrand(Lk * ld, -1, 1, 1);
    const float scale = 1.0f / sqrtf((float)d);
    double ref[H * NK], got[H * NK];
    SF_CHECK_OK(sf_key_mass_cpu(Lq, Lk, H, d, q, ld, k, ld, scale, K0, NK, ref, 2, &c.err), &c.err);
    void *dq = cu_put(&c, q, Lq * ld, 1), *dk = cu_put(&c, k, Lk * ld, 1);
    float *dS = cu_alloc(&c, sizeof(float) * WS * Lk);
    double *dl = cu_alloc(&c, sizeof(double) * WS), *dout = cu_alloc(&c, sizeof(double) * H * NK);
    if (!dq || !dk || !dS || !dl || !dout) goto done;
    SF_CHECK_OK(sf_key_mass_cuda(&c.ctx, Lq, Lk, H, d, dq, ld, dk, ld, scale, K0, NK, dS, WS, dl, dout, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, got, dout, sizeof got, &c.err), &c.err);
    double mx = 0, e = 0;
    int first = -1;
    for (int i = 0; i < H * NK; i++) mx = fmax(mx, ref[i]);
    for (int i = 0; i < H * NK; i++) {
        double a = fabs(got[i] - ref[i]);
        if (!(a <= 2e-4 * mx) && first < 0) first = i;
        if (!(a <= e)) e = a;
    }
    SF_CHECK_MSG(first < 0, "key mass from q, k: head %d key %d got %.9g ref %.9g; max |d| %.3g (max %.3g)",
                 first < 0 ? 0 : first / NK, first < 0 ? 0 : K0 + first % NK, got[first < 0 ? 0 : first],
                 ref[first < 0 ? 0 : first], e, mx);
    int32_t ic[H * 20], ig[H * 20]; /* the selections agree where no two scores are within the tolerance */
    SF_CHECK(sf_kv_select_cpu(H, NK, ref, 20, ic) == 0 && sf_kv_select_cpu(H, NK, got, 20, ig) == 0);
    int same = 0;
    for (int i = 0; i < H * 20; i++) same += ic[i] == ig[i];
    SF_CHECK_MSG(same >= H * 20 - 2, "selections differ in %d of %d places", H * 20 - same, H * 20);
done:
    free(q), free(k);
    cu_close(&c);
}

static void test_gpu_gather(void) {
    enum { H = 3, d = 16, ld = 2 * H * d + 8, R = 40, KEEP = 24 };
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(R * ld, -4, 4, 1), *ref = malloc(sizeof(float) * R * ld), *got = malloc(sizeof(float) * R * ld);
    memcpy(ref, x, sizeof(float) * R * ld);
    double sc[H * R];
    for (int i = 0; i < H * R; i++) sc[i] = urand(0, 1);
    int32_t idx[H * KEEP];
    SF_CHECK(sf_kv_select_cpu(H, R, sc, KEEP, idx) == 0);
    sf_kv_gather_cpu(ref, ld, H, d, KEEP, idx);
    gbuf gx;
    int32_t *di = cu_alloc(&c, sizeof idx);
    void *tmp = cu_alloc(&c, (size_t)KEEP * H * d * 2);
    if (!di || !tmp || !gb_new(&c, &gx, R, ld, ld, 2) || !gb_put(&c, &gx, x)) goto done;
    SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, di, idx, sizeof idx, &c.err), &c.err);
    SF_CHECK_OK(sf_kv_gather_cuda(&c.ctx, gx.at, ld, H, d, KEEP, di, tmp, &c.err), &c.err);
    if (gb_get(&c, &gx, "kv gather", got)) (void)tol_cmp("kv gather", got, ref, (size_t)R * ld, 0, 1, 0, 0);
    SF_CHECK(sf_kv_gather_cuda(&c.ctx, gx.at, H * d - 1, H, d, KEEP, di, tmp, &c.err) == SF_E_ARG);
done:
    free(x), free(ref), free(got);
    cu_close(&c);
}

/* Deep Forcing's rule, CPU: the ring keeps the last R rows and sums them oldest first; the scores are the
 * written-out dot; the selection holds back tokens chosen max_reuse times while others can stand in. */
static void test_pc_cpu(void) {
    enum { R = 5, D = 3 };
    float ring[R * D], x[7 * 4];
    for (int i = 0; i < 7 * 4; i++) x[i] = (float)(i + 1); /* rows of 4, the 4th column never read */
    for (int i = 0; i < R * D; i++) ring[i] = -1000;
    sf_ring_put_cpu(ring, R, D, 3, x, 4, 4); /* rows 0..3 → slots 3, 4, 0, 1 */
    const float want_slot[R] = {3, 4, -1, 1, 2}; /* which row of x each slot holds (−1: untouched) */
    for (int r = 0; r < R; r++)
        for (int c = 0; c < D; c++) {
            const float w = want_slot[r] < 0 ? -1000 : x[(int)(want_slot[r] - 1) * 4 + c];
            SF_CHECK_MSG(ring[r * D + c] == w, "ring slot %d col %d: %g, want %g", r, c, ring[r * D + c], w);
        }
    double sum[D];
    sf_ring_sum_cpu(ring, R, D, 3, 4, sum); /* the four rows put, oldest (slot 3) first */
    for (int c = 0; c < D; c++) {
        double w = 0;
        for (int i = 0; i < 4; i++) w += x[i * 4 + c];
        SF_CHECK_MSG(sum[c] == w, "ring sum col %d: %.17g, want %.17g", c, sum[c], w);
    }
    const float k[3 * 4] = {1, 0, 0, 9, 0, 2, 0, 9, 1, 1, -1, 9};
    const double qs[D] = {0.5, -1.0, 4.0};
    double sc[3];
    sf_pc_scores_cpu(3, D, k, 4, qs, 0.25, sc);
    SF_CHECK(sc[0] == 0.125 && sc[1] == -0.5 && sc[2] == 0.25 * (0.5 - 1.0 - 4.0));
    const double score[6] = {0.9, 0.1, 0.8, 0.8, NAN, 0.7};
    const int32_t cnt[6] = {7, 0, 0, 2, 0, 6};
    int32_t idx[4];
    SF_CHECK(sf_pc_select_cpu(6, score, cnt, 7, 3, idx) == 0); /* 0 is held back: 2 and 3 (tie: both), 5 */
    SF_CHECK_MSG(idx[0] == 2 && idx[1] == 3 && idx[2] == 5, "select: %d %d %d", idx[0], idx[1], idx[2]);
    SF_CHECK(sf_pc_select_cpu(6, score, cnt, 0, 3, idx) == 0); /* no limit: 0, 2, 3 */
    SF_CHECK_MSG(idx[0] == 0 && idx[1] == 2 && idx[2] == 3, "no limit: %d %d %d", idx[0], idx[1], idx[2]);
    SF_CHECK(sf_pc_select_cpu(6, score, cnt, 7, 2, idx) == 0 && idx[0] == 2 && idx[1] == 3); /* ties: the lower */
    const int32_t worn[6] = {7, 7, 7, 7, 0, 9};
    SF_CHECK(sf_pc_select_cpu(6, score, worn, 7, 3, idx) == 2); /* only 4 qualifies (NaN): 0 and 2 fill in */
    SF_CHECK_MSG(idx[0] == 0 && idx[1] == 2 && idx[2] == 4, "fills: %d %d %d", idx[0], idx[1], idx[2]);
}

/* The same on the GPU: a ring of bf16 rows with a wrap, its sums, the scores of bf16 keys, against the CPU on the
 * same (bf16-rounded) values: the ring's bits exactly, the sums exactly (fp64 sums of bf16 values, same order), the
 * scores to 1e-12 relative (fp64, another order). */
static void test_gpu_pc(void) {
    enum { R = 23, D = 40, N = 17, ldx = 44, NK = 31, ldk = 48 };
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(N * ldx, -3, 3, 1), *k = hrand(NK * ldk, -2, 2, 1), *ring = hzalloc(R * D), *got = hzalloc(R * D);
    double ref[D], gs[D], rsc[NK], gsc[NK];
    sf_ring_put_cpu(ring, R, D, 0, x, ldx, 10);
    sf_ring_put_cpu(ring, R, D, 10, x, ldx, N); /* wraps: rows 13.. land in slots 0..3 */
    sf_ring_sum_cpu(ring, R, D, 4, R, ref);
    sf_pc_scores_cpu(NK, D, k, ldk, ref, 0.01, rsc);
    void *dr = cu_alloc(&c, (size_t)R * D * 2), *dx = cu_put(&c, x, N * ldx, 1), *dk = cu_put(&c, k, NK * ldk, 1);
    double *dsum = cu_alloc(&c, sizeof gs), *dsc = cu_alloc(&c, sizeof gsc);
    gbuf gr;
    if (!dr || !dx || !dk || !dsum || !dsc || !gb_new(&c, &gr, R, D, D, 2)) goto done;
    SF_CHECK_OK(sf_ring_put_cuda(&c.ctx, gr.at, R, D, 0, dx, ldx, 10, &c.err), &c.err);
    SF_CHECK_OK(sf_ring_put_cuda(&c.ctx, gr.at, R, D, 10, dx, ldx, N, &c.err), &c.err);
    if (gb_get(&c, &gr, "ring", got)) (void)tol_cmp("ring", got, ring, (size_t)R * D, 0, 1, 0, 0);
    SF_CHECK_OK(sf_ring_sum_cuda(&c.ctx, gr.at, R, D, 4, R, dsum, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, gs, dsum, sizeof gs, &c.err), &c.err);
    for (int e = 0; e < D; e++) SF_CHECK_MSG(gs[e] == ref[e], "ring sum col %d: %.17g, CPU %.17g", e, gs[e], ref[e]);
    SF_CHECK_OK(sf_pc_scores_cuda(&c.ctx, NK, D, dk, ldk, dsum, 0.01, dsc, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, gsc, dsc, sizeof gsc, &c.err), &c.err);
    for (int j = 0; j < NK; j++)
        SF_CHECK_MSG(fabs(gsc[j] - rsc[j]) <= 1e-12 * (fabs(rsc[j]) + 1e-3), "score %d: %.17g, CPU %.17g", j, gsc[j],
                     rsc[j]);
    SF_CHECK(sf_ring_put_cuda(&c.ctx, gr.at, R, D, R, dx, ldx, 1, &c.err) == SF_E_ARG); /* pos past the ring */
    SF_CHECK(sf_ring_sum_cuda(&c.ctx, gr.at, R, D, 0, R + 1, dsum, &c.err) == SF_E_ARG);
done:
    free(x), free(k), free(ring), free(got);
    cu_close(&c);
}

/* The selections against a full sort written here (score descending, NaN last, ties to the lower index), on
 * scores with many ties and NaNs, every keep from 0 to n: the quickselect picks exactly the sorted order's first. */
static int ref_before(const double *s, int32_t a, int32_t b) {
    const int an = isnan(s[a]), bn = isnan(s[b]);
    if (an != bn) return bn;
    if (!an && s[a] != s[b]) return s[a] > s[b];
    return a < b;
}
static void test_select_vs_sort(void) {
    enum { N = 97 };
    double sc[N];
    int32_t order[N], got[N], cnt[N];
    uint64_t r = 0x2545F4914F6CDD1Dull;
    for (int trial = 0; trial < 40; trial++) {
        for (int j = 0; j < N; j++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            const int v = (int)(r % 23); /* 23 distinct values: ties everywhere */
            sc[j] = trial % 4 == 0 ? 1.0 : v == 0 ? NAN : (double)(v % 11) - 5.0;
            cnt[j] = (int32_t)(r >> 40) % 4;
            order[j] = j;
        }
        for (int a = 1; a < N; a++) /* insertion sort by the rule */
            for (int b = a; b > 0 && ref_before(sc, order[b], order[b - 1]); b--) {
                const int32_t t = order[b];
                order[b] = order[b - 1], order[b - 1] = t;
            }
        for (int keep = 0; keep <= N; keep += trial % 3 + 1) {
            unsigned char want[N] = {0};
            for (int i = 0; i < keep; i++) want[order[i]] = 1;
            SF_CHECK(sf_kv_select_cpu(1, N, sc, keep, got) == 0);
            int bad = 0;
            for (int i = 0; i < keep; i++) bad += !want[got[i]] || (i && got[i] <= got[i - 1]);
            SF_CHECK_MSG(!bad, "trial %d keep %d: %d of the chosen not the sort's first, or out of order", trial, keep, bad);
            /* with the reuse counts: the qualifying ones (count < 2) first, in the rule's order, then the others */
            int32_t ord2[N], n2 = 0;
            for (int pass = 0; pass < 2; pass++)
                for (int i = 0; i < N; i++)
                    if ((cnt[order[i]] >= 2) == pass) ord2[n2++] = order[i];
            int qual = 0;
            for (int j = 0; j < N; j++) qual += cnt[j] < 2;
            unsigned char want2[N] = {0};
            for (int i = 0; i < keep; i++) want2[ord2[i]] = 1;
            const int64_t fills = sf_pc_select_cpu(N, sc, cnt, 2, keep, got);
            bad = 0;
            for (int i = 0; i < keep; i++) bad += !want2[got[i]] || (i && got[i] <= got[i - 1]);
            SF_CHECK_MSG(!bad && fills == (keep > qual ? keep - qual : 0), "trial %d keep %d: reuse selection (%d wrong, "
                         "%lld fills)", trial, keep, bad, (long long)fills);
        }
    }
}

/* After a selection: the old recent slots follow the chosen, counts move with their tokens (+1 the chosen), the rest
 * 0 — by hand. */
static void test_pc_finish_cpu(void) {
    int32_t idx[8] = {1, 4, -7, -7, -7, -7, -7, -7}, cnt[9] = {5, 2, 9, 9, 3, 1, 4, 8, 8};
    sf_pc_finish_cpu(6, 2, 3, idx, cnt, 9); /* chosen 1 and 4 of 6 candidates, then slots 6, 7, 8 */
    const int32_t wi[5] = {1, 4, 6, 7, 8}, wc[9] = {3, 4, 4, 8, 8, 0, 0, 0, 0};
    for (int i = 0; i < 5; i++) SF_CHECK_MSG(idx[i] == wi[i], "idx[%d] = %d, want %d", i, idx[i], wi[i]);
    SF_CHECK(idx[5] == -7);
    for (int i = 0; i < 9; i++) SF_CHECK_MSG(cnt[i] == wc[i], "cnt[%d] = %d, want %d", i, cnt[i], wc[i]);
}

/* The device's selection against the CPU's, index for index: segments strided in one launch, n past a block's
 * threads (several chunks), scores with ties, NaNs, ±∞, ±0 and neighbours one ulp apart (every byte of the key
 * decides somewhere), with and without reuse counts, every kind of keep (0, 1, all, the qualifying ones exactly,
 * more than them); then sf_pc_finish_cuda and sf_fill_i32_cuda against theirs. */
static void test_gpu_select(void) {
    enum { NSEG = 5, N = 1300, LDS = N + 3, LDI = N + 1, LDC = N + 2 };
    cu c;
    if (!cu_open(&c)) return;
    double *sc = malloc(sizeof(double) * NSEG * LDS);
    int32_t *cnt = malloc(sizeof(int32_t) * NSEG * LDC), *ref = malloc(sizeof(int32_t) * LDI), *got = malloc(sizeof(int32_t) * NSEG * LDI);
    double *dsc = cu_alloc(&c, sizeof(double) * NSEG * LDS);
    int32_t *dcnt = cu_alloc(&c, sizeof(int32_t) * NSEG * LDC), *didx = cu_alloc(&c, sizeof(int32_t) * NSEG * LDI);
    int64_t *dfill = cu_alloc(&c, sizeof(int64_t) * NSEG), fills[NSEG];
    int32_t *dtmp = cu_alloc(&c, sizeof(int32_t) * N);
    if (!sc || !cnt || !ref || !got || !dsc || !dcnt || !didx || !dfill || !dtmp) goto done;
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (int trial = 0; trial < 6; trial++) {
        const int n = trial == 5 ? 37 : N, reuse = trial % 2 ? 3 : 0;
        for (int s = 0; s < NSEG; s++)
            for (int j = 0; j < LDS; j++) {
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                const int v = (int)(r % 29);
                double x = trial == 0 ? 0.25 : (double)(v % 13) - 6.0;       /* trial 0: all tied */
                if (trial >= 2) x = ((r >> 63) ? -1.0 : 1.0) * (1.0 + (double)(v % 7) * 0x1p-52); /* ulps apart */
                if (trial >= 4) x = ldexp((double)(int64_t)(r >> 11) - 4e15, (int)(r % 61) - 30); /* spread wide */
                if (v == 0) x = NAN;
                if (v == 1) x = -INFINITY;
                if (v == 2) x = INFINITY;
                if (v == 3) x = -0.0;
                if (v == 4) x = 0.0;
                sc[s * LDS + j] = x;
                if (j < LDC) cnt[s * LDC + j] = (int32_t)((r >> 33) % 5);
            }
        SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, dsc, sc, sizeof(double) * NSEG * LDS, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, dcnt, cnt, sizeof(int32_t) * NSEG * LDC, &c.err), &c.err);
        int qual = 0; /* segment 0's qualifying candidates */
        for (int j = 0; j < n; j++) qual += !reuse || cnt[j] < reuse;
        const int64_t keeps[7] = {0, 1, n, qual, qual + 1 <= n ? qual + 1 : n, n / 3, n - 1};
        for (int ki = 0; ki < 7; ki++) {
            const int64_t keep = keeps[ki];
            const int32_t *dc = trial % 3 == 2 ? NULL : dcnt; /* no counts: the plain per-head selection */
            SF_CHECK_OK(sf_topk_select_cuda(&c.ctx, NSEG, n, dsc, LDS, dc, LDC, reuse, keep, didx, LDI, dfill, &c.err),
                        &c.err);
            SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, got, didx, sizeof(int32_t) * NSEG * LDI, &c.err), &c.err);
            SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, fills, dfill, sizeof fills, &c.err), &c.err);
            for (int s = 0; s < NSEG; s++) {
                int64_t f = 0;
                if (dc) f = sf_pc_select_cpu(n, sc + s * LDS, cnt + s * LDC, reuse, keep, ref);
                else SF_CHECK(sf_kv_select_cpu(1, n, sc + s * LDS, keep, ref) == 0);
                int64_t bad = -1;
                for (int64_t i = 0; i < keep && bad < 0; i++)
                    if (got[s * LDI + i] != ref[i]) bad = i;
                SF_CHECK_MSG(bad < 0 && fills[s] == f, "trial %d segment %d keep %lld%s: index %lld device %d, CPU %d; "
                             "fills device %lld, CPU %lld", trial, s, (long long)keep, dc ? " (counts)" : "",
                             (long long)bad, bad < 0 ? 0 : got[s * LDI + bad], bad < 0 ? 0 : ref[bad],
                             (long long)fills[s], (long long)f);
            }
        }
    }
    /* the bookkeeping after segment 0's selection of n/3 with counts (trial 5's scores, n = 37: old slots fit) */
    {
        const int n = 37, topc = 12, old = 9, ncnt = 60;
        SF_CHECK(sf_pc_select_cpu(n, sc, cnt, 3, topc, ref) >= 0);
        int32_t c0[60], cg[60], ig[60];
        for (int i = 0; i < ncnt; i++) c0[i] = (int32_t)(i * 7 % 5);
        SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, dcnt, c0, sizeof c0, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, didx, ref, sizeof(int32_t) * topc, &c.err), &c.err);
        sf_pc_finish_cpu(n, topc, old, ref, c0, ncnt);
        SF_CHECK_OK(sf_pc_finish_cuda(&c.ctx, n, topc, old, didx, dcnt, ncnt, dtmp, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, cg, dcnt, sizeof cg, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, ig, didx, sizeof(int32_t) * (topc + old), &c.err), &c.err);
        for (int i = 0; i < ncnt; i++) SF_CHECK_MSG(cg[i] == c0[i], "pc finish count %d: device %d, CPU %d", i, cg[i], c0[i]);
        for (int i = 0; i < topc + old; i++) SF_CHECK_MSG(ig[i] == ref[i], "pc finish idx %d: device %d, CPU %d", i, ig[i], ref[i]);
        SF_CHECK_OK(sf_fill_i32_cuda(&c.ctx, dcnt + 5, 50, 0, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, cg, dcnt, sizeof cg, &c.err), &c.err);
        for (int i = 0; i < ncnt; i++)
            SF_CHECK_MSG(cg[i] == (i >= 5 && i < 55 ? 0 : c0[i]), "fill %d: %d", i, cg[i]);
    }
    SF_CHECK(sf_topk_select_cuda(&c.ctx, 1, 10, dsc, 10, NULL, 0, 0, 11, didx, 11, NULL, &c.err) == SF_E_ARG);
    SF_CHECK(sf_pc_finish_cuda(&c.ctx, 10, 11, 0, didx, dcnt, 20, dtmp, &c.err) == SF_E_ARG);
done:
    free(sc), free(cnt), free(ref), free(got);
    cu_close(&c);
}

static const sf_test tests[] = {
    {"hand", test_hand},
    {"cpu_vs_softmax", test_cpu_vs_softmax},
    {"threads", test_threads},
    {"select", test_select},
    {"select_vs_sort", test_select_vs_sort},
    {"gather_cpu", test_gather_cpu},
    {"gpu_rows", test_gpu_rows},
    {"gpu_qk", test_gpu_qk},
    {"gpu_gather", test_gpu_gather},
    {"pc_cpu", test_pc_cpu},
    {"gpu_pc", test_gpu_pc},
    {"pc_finish_cpu", test_pc_finish_cpu},
    {"gpu_select", test_gpu_select},
};
SF_TEST_MAIN(tests)
