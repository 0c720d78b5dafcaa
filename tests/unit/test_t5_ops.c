/* test_t5_ops.c — the umT5 CPU kernels of kernels/t5_ops.h (bias softmax, bias attention, gated
 * GELU) and the shared GELU scalar sf_gelu_tanh (kernels/act.h): hand-computed values (bias per
 * head and bucket, masked keys with zero weight, no 1/√d scale, query offset), the attention
 * against its definition (logits → sf_t5_bias_softmax_cpu → P·V in double), thread-count
 * invariance (bit for bit), in-place and strided forms, and guard elements around every output.
 * Run one case by name: build/tests/test_t5_ops attention_hand.
 *
 * Tolerances:
 *   hand values (softmax of logs of small integers)  rtol 1e-6: a few f32 roundings of exp/log
 *   attention vs its definition in double            rtol 1e-5 + atol 1e-6: f32 P·V sums of ≤ 37 terms
 *   gated GELU vs the contract expression            exact (the same double expression, one rounding;
 *                                                    the exact mode — the fast modes' oneDNN GELU:
 *                                                    atol 1e-6 + rtol 1e-5, test_kernels fast_gelu's)
 *   gated GELU vs an independent formula (√(2/π)
 *   from libm, Python's values)                      rtol 1e-6 + atol 1e-12
 *   thread counts                                    exact (memcmp) */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "act.h"
#include "dnnl_ops.h"
#include "t5_ops.h"

#include <stdint.h>

#define GUARD 16
#define POISON 12345.0f

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float urand(float lo, float hi) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 40) / 16777216.0);
}

/* n floats with GUARD poisoned floats on each side; returns the interior. */
static float *galloc(size_t n) {
    float *p = malloc((n + 2 * GUARD) * sizeof *p);
    if (!p) return NULL;
    for (size_t i = 0; i < n + 2 * GUARD; i++) p[i] = POISON;
    return p + GUARD;
}
static void gfree(float *p) {
    if (p) free(p - GUARD);
}
/* The guards around an n-float interior, and every element of it outside the (rows, cols, ld)
 * window, are still POISON. */
static int guards_ok(const char *what, const float *p, int64_t rows, int64_t cols, int64_t ld) {
    size_t bad = 0;
    for (int64_t i = -GUARD; i < rows * ld + GUARD; i++) {
        int inside = i >= 0 && i < rows * ld && i % ld < cols;
        if (!inside && p[i] != POISON) bad++;
    }
    SF_CHECK_MSG(bad == 0, "%s: %zu guard/gap elements overwritten", what, bad);
    return bad == 0;
}

/* Identity bucket table: bucket[rel + off] = rel + off (one bucket per relative position), so a
 * test picks each (rel, head) bias directly: pos[(rel + off)·H + h]. */
static int *identity_buckets(int64_t Lmax) {
    int *b = malloc(sizeof(int) * (size_t)(2 * Lmax - 1));
    for (int64_t i = 0; b && i < 2 * Lmax - 1; i++) b[i] = (int)i;
    return b;
}

/* ---- bias softmax --------------------------------------------------------------------------- */

/* Zero logits, so P is softmax(bias): head 0's biases ln 1, ln 2, ln 3 over rel 0, 1, 2 give
 * (1, 2, 3)/6; head 1 gets ln 3, ln 1, ln 2 → (3, 1, 2)/6 (a bias indexed by bucket only, or with
 * the table transposed, mixes them up). A second query row at position q0 + 1 = 1 sees rel −1, 0, 1
 * (head 0: ln 5, ln 1, ln 2 → (5, 1, 2)/8; head 1: ln 2, ln 3, ln 1 → (2, 3, 1)/6). Key 3 is
 * masked in every row: S is huge there and P must be exactly 0. Rows are ldp apart with gaps and guards that must stay untouched. */
static void test_bias_softmax_hand(void) {
    enum { H = 2, ROWS = 2, LK = 4, NK = 3, LDS = 5, LDP = 6, LMAX = 4, OFF = LMAX - 1, NB = 2 * LMAX - 1 };
    float S[H * ROWS * LDS], pos[NB * H];
    for (int i = 0; i < H * ROWS * LDS; i++) S[i] = 0.0f;
    for (int r = 0; r < H * ROWS; r++) S[r * LDS + 3] = 1e30f; /* key 3 masked: would dominate */
    for (int i = 0; i < NB * H; i++) pos[i] = 100.0f + (float)i; /* unused entries: far off */
    /* pos[(rel + OFF)·H + h] */
    const float l1 = 0.0f, l2 = logf(2.0f), l3 = logf(3.0f), l5 = logf(5.0f);
    pos[(-1 + OFF) * H + 0] = l5, pos[(0 + OFF) * H + 0] = l1, pos[(1 + OFF) * H + 0] = l2, pos[(2 + OFF) * H + 0] = l3;
    pos[(-1 + OFF) * H + 1] = l2, pos[(0 + OFF) * H + 1] = l3, pos[(1 + OFF) * H + 1] = l1, pos[(2 + OFF) * H + 1] = l2;
    int *bt = identity_buckets(LMAX);
    float *P = galloc(H * ROWS * LDP);
    if (!bt || !P) { SF_CHECK(0); goto done; }
    for (int r = 0; r < H * ROWS; r++)
        for (int j = 0; j < LK; j++) P[r * LDP + j] = NAN; /* must all be written */
    sf_t5_bias_softmax_cpu(H, ROWS, 0, LK, NK, S, LDS, bt, OFF, pos, P, LDP, 1);
    /* row b = h·ROWS + i: query i, keys 0..2 (rel = j − i), key 3 masked */
    const float want[H * ROWS][LK] = {
        {1.0f / 6, 2.0f / 6, 3.0f / 6, 0}, /* h 0, i 0: rel 0, 1, 2 → 1, 2, 3 */
        {5.0f / 8, 1.0f / 8, 2.0f / 8, 0}, /* h 0, i 1: rel −1, 0, 1 → 5, 1, 2 */
        {3.0f / 6, 1.0f / 6, 2.0f / 6, 0}, /* h 1, i 0: rel 0, 1, 2 → 3, 1, 2 */
        {2.0f / 6, 3.0f / 6, 1.0f / 6, 0}, /* h 1, i 1: rel −1, 0, 1 → 2, 3, 1 */
    };
    for (int r = 0; r < H * ROWS; r++) {
        char nm[48];
        snprintf(nm, sizeof nm, "bias softmax row %d", r);
        sf_test_allclose(nm, P + r * LDP, want[r], LK, 1e-6, 0);
        SF_CHECK_MSG(P[r * LDP + 3] == 0.0f && !signbit(P[r * LDP + 3]), "row %d: masked P = %g", r,
                     (double)P[r * LDP + 3]);
    }
    guards_ok("bias softmax P", P, H * ROWS, LK, LDP);
done:
    free(bt);
    gfree(P);
}

/* Query offset q0 (the GPU's query chunks): rows of queries 5, 6 against 8 keys equal rows 5, 6 of
 * the whole table computed at q0 = 0, bit for bit; and the in-place form (P = S). */
static void test_bias_softmax_offset_inplace(void) {
    enum { H = 3, LQ = 8, LK = 8, NK = 6, Q0 = 5, ROWS = 2, LMAX = 8, NB = 32 };
    const int64_t off = LMAX - 1;
    float S[H * LQ * LK], Sall[H * LQ * LK], pos[NB * H], part[H * ROWS * LK], all[H * LQ * LK];
    for (int i = 0; i < H * LQ * LK; i++) S[i] = urand(-20, 20);
    for (int i = 0; i < NB * H; i++) pos[i] = urand(-3, 3);
    int bt[2 * LMAX - 1];
    for (int r = -(LMAX - 1); r <= LMAX - 1; r++) bt[r + off] = (r < 0 ? 0 : 16) + (r < 0 ? -r : r) % 16;
    sf_t5_bias_softmax_cpu(H, LQ, 0, LK, NK, S, LK, bt, off, pos, all, LK, 1);
    float Sp[H * ROWS * LK]; /* rows 5, 6 of each head */
    for (int h = 0; h < H; h++)
        for (int i = 0; i < ROWS; i++) memcpy(Sp + (h * ROWS + i) * LK, S + (h * LQ + Q0 + i) * LK, sizeof(float) * LK);
    sf_t5_bias_softmax_cpu(H, ROWS, Q0, LK, NK, Sp, LK, bt, off, pos, part, LK, 2);
    int bad = 0;
    for (int h = 0; h < H; h++)
        for (int i = 0; i < ROWS; i++)
            bad += memcmp(part + (h * ROWS + i) * LK, all + (h * LQ + Q0 + i) * LK, sizeof(float) * LK) != 0;
    SF_CHECK_MSG(bad == 0, "%d rows at q0 = %d differ from the whole table's", bad, Q0);
    memcpy(Sall, S, sizeof S);
    sf_t5_bias_softmax_cpu(H, LQ, 0, LK, NK, Sall, LK, bt, off, pos, Sall, LK, 3); /* in place */
    SF_CHECK(memcmp(Sall, all, sizeof all) == 0);
    /* rows sum to 1, masked keys exactly 0 */
    int nz = 0;
    for (int r = 0; r < H * LQ; r++) {
        double s = 0;
        for (int j = 0; j < LK; j++) s += all[r * LK + j], nz += j >= NK && all[r * LK + j] != 0.0f;
        SF_CHECK_MSG(fabs(s - 1) < 1e-6, "row %d sums to %.9g", r, s);
    }
    SF_CHECK_MSG(nz == 0, "%d masked probabilities not 0", nz);
}

/* The sum runs in double: one key at logit 0 and 4999 at −17 (e^−17 = 4.14e-8, under half an f32
 * ulp of 1, so an f32 running sum would stay at 1): P_0 = 1/(1 + 4999·e^−17) = 0.99979310,
 * P_j = e^−17·P_0 (an f32 sum gives P_0 = 1, off by 2e-4). */
static void test_bias_softmax_double_sum(void) {
    enum { LK = 5000, NB = 2 * LK - 1 };
    float *S = malloc(sizeof(float) * LK), *P = malloc(sizeof(float) * LK), *pos = calloc(NB, sizeof(float));
    int *bt = identity_buckets(LK);
    if (!S || !P || !pos || !bt) { SF_CHECK(0); goto done; }
    S[0] = 0.0f;
    for (int j = 1; j < LK; j++) S[j] = -17.0f;
    sf_t5_bias_softmax_cpu(1, 1, 0, LK, LK, S, LK, bt, LK - 1, pos, P, LK, 1);
    const double e17 = exp(-17.0), p0 = 1.0 / (1.0 + 4999.0 * e17);
    SF_CHECK_MSG(fabs(P[0] - p0) < 1e-6 * p0, "P_0 = %.9g, want %.9g", (double)P[0], p0);
    SF_CHECK_MSG(fabs(P[LK - 1] - e17 * p0) < 1e-6 * e17, "P_last = %.9g, want %.9g", (double)P[LK - 1], e17 * p0);
done:
    free(S), free(P), free(pos), free(bt);
}

/* ---- attention ------------------------------------------------------------------------------ */

/* L = 3 tokens, 2 heads of d = 2, key 2 masked (nk_valid = 2); v_0 = e0, v_1 = e1 in both heads
 * so o = (P[i, 0], P[i, 1]).
 *   head 0 (no scale): q_i = (1, 0), k_0 = (0, 0), k_1 = (ln 4, 0), zero bias → logits 0, ln 4
 *     → P = (1/5, 4/5) for every query (with 1/√2 it would be (1, 4^0.707)/3.67 = (0.27, 0.73));
 *   head 1 (bias per relative position): q = k = 0, bias(rel) = ln(rel + 3) → query 0: rel 0, 1
 *     → (3, 4)/7; query 1: rel −1, 0 → (2, 3)/5; query 2: rel −2, −1 → (1, 2)/3;
 *   key 2 (masked): q·k_2 = 1000 in head 0, bias ln 1000 in head 1, v_2 = (1000, 1000): any
 *     weight on it shows. */
static void test_attention_hand(void) {
    enum { L = 3, NK = 2, H = 2, D = 2, A = H * D, LD = 3 * A, LDO = A + 3, OFF = L - 1, NB = 2 * L - 1 };
    float qkv[L * LD] = {0}, pos[NB * H];
    float *q = qkv, *k = qkv + A, *v = qkv + 2 * A;
    for (int i = 0; i < L; i++) q[i * LD + 0] = 1.0f; /* head 0: q = (1, 0); head 1: q = 0 */
    k[1 * LD + 0] = logf(4.0f);
    k[2 * LD + 0] = 1000.0f;
    for (int h = 0; h < H; h++) {
        v[0 * LD + h * D + 0] = 1, v[1 * LD + h * D + 1] = 1;
        v[2 * LD + h * D + 0] = v[2 * LD + h * D + 1] = 1000;
    }
    for (int r = -(L - 1); r <= L - 1; r++) {
        pos[(r + OFF) * H + 0] = 0.0f;
        pos[(r + OFF) * H + 1] = logf((float)(r + 3));
    }
    pos[(2 + OFF) * H + 1] = logf(1000.0f); /* rel +2 only reaches the masked key 2 (from query 0) */
    int *bt = identity_buckets(L);
    float *o = galloc(L * LDO);
    if (!bt || !o) { SF_CHECK(0); goto done; }
    SF_CHECK(sf_t5_attention_cpu(L, NK, H, D, q, k, v, LD, o, LDO, bt, OFF, pos, 1) == 0);
    const float want[L][A] = {
        {0.2f, 0.8f, 3.0f / 7, 4.0f / 7},
        {0.2f, 0.8f, 2.0f / 5, 3.0f / 5},
        {0.2f, 0.8f, 1.0f / 3, 2.0f / 3},
    };
    for (int i = 0; i < L; i++) {
        char nm[40];
        snprintf(nm, sizeof nm, "attention row %d", i);
        sf_test_allclose(nm, o + i * LDO, want[i], A, 1e-6, 0);
    }
    guards_ok("attention o", o, L, A, LDO);
done:
    free(bt);
    gfree(o);
}

/* Random L = 37, 3 heads × 16, 7 keys masked, strided fused [q | k | v] rows, real bucket-like
 * table: the attention equals its definition (f32 logits, sf_t5_bias_softmax_cpu, P·V in double),
 * masked keys' v do not matter (changing them changes nothing), and 1, 2, 3, 7 threads give the
 * same bits. */
static void test_attention_definition_threads(void) {
    enum { L = 37, NK = 30, H = 3, D = 16, A = H * D, LD = 3 * A + 5, LDO = A + 2, NB = 32 };
    const int64_t off = L - 1;
    float *qkv = malloc(sizeof(float) * L * LD), *pos = malloc(sizeof(float) * NB * H);
    float *S = malloc(sizeof(float) * H * L * L), *P = malloc(sizeof(float) * H * L * L), *ref = malloc(sizeof(float) * L * A);
    float *o1 = galloc(L * LDO), *on = galloc(L * LDO);
    int *bt = malloc(sizeof(int) * (2 * L - 1));
    if (!qkv || !pos || !S || !P || !ref || !o1 || !on || !bt) { SF_CHECK(0); goto done; }
    for (int i = 0; i < L * LD; i++) qkv[i] = urand(-1.5f, 1.5f);
    for (int i = 0; i < NB * H; i++) pos[i] = urand(-2, 2);
    for (int r = -(L - 1); r <= L - 1; r++) { /* SPEC §3.4's shape: 16 + … right, 0 + … left */
        int a = r < 0 ? -r : r;
        bt[r + off] = (r > 0 ? 16 : 0) + (a < 8 ? a : a < 12 ? 8 : a < 16 ? 9 : a < 23 ? 10 : a < 32 ? 11 : 12);
    }
    const float *q = qkv, *k = qkv + A, *v = qkv + 2 * A;
    SF_CHECK(sf_t5_attention_cpu(L, NK, H, D, q, k, v, LD, o1, LDO, bt, off, pos, 1) == 0);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < L; i++)
            for (int j = 0; j < L; j++) {
                float d = 0;
                for (int t = 0; t < D; t++) d += q[i * LD + h * D + t] * k[j * LD + h * D + t];
                S[(h * L + i) * L + j] = d;
            }
    sf_t5_bias_softmax_cpu(H, L, 0, L, NK, S, L, bt, off, pos, P, L, 1);
    for (int i = 0; i < L; i++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < D; t++) {
                double s = 0;
                for (int j = 0; j < L; j++) s += (double)P[(h * L + i) * L + j] * v[j * LD + h * D + t];
                ref[i * A + h * D + t] = (float)s;
            }
    float *got = malloc(sizeof(float) * L * A);
    if (!got) { SF_CHECK(0); goto done; }
    for (int i = 0; i < L; i++) memcpy(got + i * A, o1 + i * LDO, sizeof(float) * A);
    sf_test_allclose("attention vs logits → bias softmax → P·V", got, ref, L * A, 1e-5, 1e-6);
    free(got);
    guards_ok("attention o (1 thread)", o1, L, A, LDO);
    const int threads[3] = {2, 3, 7};
    for (int n = 0; n < 3; n++) {
        SF_CHECK(sf_t5_attention_cpu(L, NK, H, D, q, k, v, LD, on, LDO, bt, off, pos, threads[n]) == 0);
        int diff = 0;
        for (int i = 0; i < L; i++) diff += memcmp(on + i * LDO, o1 + i * LDO, sizeof(float) * A) != 0;
        SF_CHECK_MSG(diff == 0, "%d threads: %d rows differ from 1 thread", threads[n], diff);
    }
    guards_ok("attention o (threads)", on, L, A, LDO);
    /* masked keys: their v (and k) are never read */
    for (int j = NK; j < L; j++)
        for (int c = A; c < 3 * A; c++) qkv[j * LD + c] = NAN;
    SF_CHECK(sf_t5_attention_cpu(L, NK, H, D, q, k, v, LD, on, LDO, bt, off, pos, 2) == 0);
    int diff = 0;
    for (int i = 0; i < L; i++) diff += memcmp(on + i * LDO, o1 + i * LDO, sizeof(float) * A) != 0;
    SF_CHECK_MSG(diff == 0, "NaN in masked keys' k, v changed %d rows", diff);
    /* softmax threads */
    float *P3 = malloc(sizeof(float) * H * L * L);
    if (P3) {
        sf_t5_bias_softmax_cpu(H, L, 0, L, NK, S, L, bt, off, pos, P3, L, 3);
        SF_CHECK(memcmp(P3, P, sizeof(float) * H * L * L) == 0);
    }
    free(P3);
done:
    free(qkv), free(pos), free(S), free(P), free(ref), free(bt);
    gfree(o1), gfree(on);
}

/* ---- gated GELU ----------------------------------------------------------------------------- */

/* The scalar: gelu_tanh(1) = 0.8411920 (Python: 0.5·(1 + tanh(√(2/π)·1.044715))), gelu(0) = 0,
 * odd part: gelu(z) − gelu(−z) = z. */
static void test_gelu_scalar(void) {
    SF_CHECK_MSG(fabs(sf_gelu_tanh(1.0) - 0.84119199060827677) < 1e-15, "gelu(1) = %.17g", sf_gelu_tanh(1.0));
    SF_CHECK(sf_gelu_tanh(0.0) == 0.0);
    for (double z = 0.25; z < 6; z += 0.5)
        SF_CHECK_MSG(fabs(sf_gelu_tanh(z) - sf_gelu_tanh(-z) - z) < 1e-14, "gelu(%g) - gelu(-%g) != %g", z, z, z);
    float x[3] = {1.0f, -3.0f, 0.5f};
    sf_gelu_tanh_cpu(x, 3); /* the in-place kernel is the scalar rounded once */
    SF_CHECK(x[0] == (float)sf_gelu_tanh(1.0) && x[1] == (float)sf_gelu_tanh(-3.0) && x[2] == (float)sf_gelu_tanh(0.5));
}

/* Hand values (fc1 · gelu_tanh(gate), Python float64): (gate, fc1) = (1, 2) → 1.6823839812165535,
 * (2, −0.5) → −0.9772988470438875, (−1, 3) → −0.4764240281751697, (0, 5) → 0,
 * (−3, 1) → −0.0036373920817729943, (0.5, 1) → 0.34571400982514394; gate and fc1 in separate
 * strided buffers, h strided, guards. */
static void test_gated_gelu_hand(void) {
    enum { M = 2, F = 3, LDG = 4, LDF = 5, LDH = 6 };
    const float gate[M * LDG] = {1, 2, -1, 99, 0, -3, 0.5f, 99}, fc1[M * LDF] = {2, -0.5f, 3, 99, 99, 5, 1, 1, 99, 99};
    const float want[M * F] = {1.6823839812165535f, -0.9772988470438875f, -0.4764240281751697f,
                               0.0f, -0.0036373920817729943f, 0.34571400982514394f};
    float *h = galloc(M * LDH), got[M * F];
    if (!h) { SF_CHECK(0); return; }
    sf_t5_gated_gelu_cpu(M, F, gate, LDG, fc1, LDF, h, LDH, 1);
    for (int i = 0; i < M; i++) memcpy(got + i * F, h + i * LDH, sizeof(float) * F);
    sf_test_allclose("gated gelu hand values", got, want, M * F, 1e-6, 1e-12);
    guards_ok("gated gelu h", h, M, F, LDH);
    gfree(h);
}

/* Random gate over [−8, 8] (both tails), fc1 over [−3, 3], in the GPU's fused layout (row = [gate |
 * fc1], ld 2F + 3): equal to the contract expression (float)(fc1 · sf_gelu_tanh(gate)) bit for bit,
 * close to an independent float64 formula with √(2/π) from libm, the same bits on 1, 2, 5 threads,
 * and in place (h = gate). */
static void test_gated_gelu_formula_threads(void) {
    enum { M = 41, F = 50, LDG = 2 * F + 3 };
    float *g = malloc(sizeof(float) * M * LDG), *h1 = galloc(M * F), *hn = galloc(M * F);
    float *exact = malloc(sizeof(float) * M * F), *indep = malloc(sizeof(float) * M * F);
    if (!g || !h1 || !hn || !exact || !indep) { SF_CHECK(0); goto done; }
    sf_test_exact(1); /* the contract's arithmetic (the fast modes' oneDNN GELU: gated_gelu_fast) */
    for (int i = 0; i < M; i++)
        for (int c = 0; c < LDG; c++) g[i * LDG + c] = c < F ? urand(-8, 8) : urand(-3, 3);
    sf_t5_gated_gelu_cpu(M, F, g, LDG, g + F, LDG, h1, F, 1);
    const double k = sqrt(2.0 / acos(-1.0));
    for (int i = 0; i < M; i++)
        for (int c = 0; c < F; c++) {
            const double z = g[i * LDG + c], f = g[i * LDG + F + c];
            exact[i * F + c] = (float)(f * sf_gelu_tanh(z));
            indep[i * F + c] = (float)(f * (0.5 * z * (1.0 + tanh(k * (z + 0.044715 * pow(z, 3))))));
        }
    SF_CHECK_MSG(memcmp(h1, exact, sizeof(float) * M * F) == 0, "gated gelu != (float)(fc1 * sf_gelu_tanh(gate))");
    sf_test_allclose("gated gelu vs independent formula", h1, indep, M * F, 1e-6, 1e-12);
    guards_ok("gated gelu h", h1, M, F, F);
    const int threads[2] = {2, 5};
    for (int n = 0; n < 2; n++) {
        sf_t5_gated_gelu_cpu(M, F, g, LDG, g + F, LDG, hn, F, threads[n]);
        SF_CHECK_MSG(memcmp(hn, h1, sizeof(float) * M * F) == 0, "%d threads differ from 1", threads[n]);
    }
    sf_t5_gated_gelu_cpu(M, F, g, LDG, g + F, LDG, g, LDG, 3); /* in place over gate (t5.c's form) */
    int diff = 0;
    for (int i = 0; i < M; i++) diff += memcmp(g + i * LDG, h1 + i * F, sizeof(float) * F) != 0;
    SF_CHECK_MSG(diff == 0, "in place: %d rows differ", diff);
done:
    sf_test_exact(0);
    free(g), free(exact), free(indep);
    gfree(h1), gfree(hn);
}

/* The fast modes' gated GELU (oneDNN's vectorised GELU-tanh, then · fc1) against the exact contract:
 * out of place (h rows dense) and in place over a dense gate (t5.c's form), 1 and 3 threads; oneDNN
 * must run. Tolerance atol 1e-6 + rtol 1e-5 (oneDNN's f32 tanh; test_kernels fast_gelu's). */
static void test_gated_gelu_fast(void) {
    if (!sf_dnnl_built()) {
        SF_TEST_SKIP("built without oneDNN (DNNL=0)");
        return;
    }
    enum { M = 37, F = 301 };
    float *g = malloc(sizeof(float) * M * F), *f = malloc(sizeof(float) * M * F), *want = galloc(M * F);
    float *h = galloc(M * F), *gi = malloc(sizeof(float) * M * F);
    if (!g || !f || !want || !h || !gi) { SF_CHECK(0); goto done; }
    for (int i = 0; i < M * F; i++) g[i] = urand(-8, 8), f[i] = urand(-3, 3);
    sf_test_exact(1);
    sf_t5_gated_gelu_cpu(M, F, g, F, f, F, want, F, 1);
    sf_test_exact(0);
    sf_test_mode("fast");
    for (int th = 1; th <= 3; th += 2) {
        unsigned long long c0 = sf_dnnl_calls();
        sf_t5_gated_gelu_cpu(M, F, g, F, f, F, h, F, th);
        SF_CHECK_MSG(sf_dnnl_calls() > c0, "fast gated gelu: oneDNN did not run");
        sf_test_allclose("fast gated gelu", h, want, M * F, 1e-5, 1e-6);
        guards_ok("fast gated gelu h", h, M, F, F);
        memcpy(gi, g, sizeof(float) * M * F);
        sf_t5_gated_gelu_cpu(M, F, gi, F, f, F, gi, F, th); /* in place over the gate */
        SF_CHECK_MSG(memcmp(gi, h, sizeof(float) * M * F) == 0, "fast gated gelu in place != out of place");
    }
done:
    free(g), free(f), free(gi);
    gfree(want), gfree(h);
}

static const sf_test tests[] = {
    {"gated_gelu_fast", test_gated_gelu_fast},
    {"bias_softmax_hand", test_bias_softmax_hand},
    {"bias_softmax_offset_inplace", test_bias_softmax_offset_inplace},
    {"bias_softmax_double_sum", test_bias_softmax_double_sum},
    {"attention_hand", test_attention_hand},
    {"attention_definition_threads", test_attention_definition_threads},
    {"gelu_scalar", test_gelu_scalar},
    {"gated_gelu_hand", test_gated_gelu_hand},
    {"gated_gelu_formula_threads", test_gated_gelu_formula_threads},
};
SF_TEST_MAIN(tests)
