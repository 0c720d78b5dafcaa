/* test_hopper.c — the Hopper probes (kernels/hopper_probe_cuda.h) against exact CPU results: wgmma in
 * the four operand forms the attention kernels use, TMA through an mbarrier ring, named-barrier turns.
 * On the emulation in every build (this binary links the emulated kernels); test_hopper_gpu is the
 * same file on an sm_90 GPU (tests/gpu/check.sh, part attn), where a layout, copy or barrier
 * misunderstanding shows here by name and first wrong element before the attention kernels fail.
 * Inputs are small integers: every product and sum is exact in fp32, so results must be equal. */
#include "sf_test.h"
#include "device.h"
#include "hopper_probe_cuda.h"
#include "cuda/mbar_clock.h"

#include <math.h>
#include <stdint.h>

#include "kernel_test.h"

/* The probe's device (SKIP without an sm_90 one: the probe's own refusal). */
static int hp_open(cu *c) {
    (void)hrand, (void)tol_cmp, (void)gb_new, (void)gb_put, (void)gb_get; /* kernel_test.h helpers not needed here */
    if (!cu_open(c)) return 0;
    float *f = cu_alloc(c, 64);
    sf_status st = f ? sf_hopper_probe_turns(&c->ctx, f, &c->err) : SF_E_NOMEM;
    if (st == SF_E_UNSUPPORTED) {
        SF_TEST_SKIP("no sm_90 device (the probes need wgmma and TMA)");
        cu_close(c);
        return 0;
    }
    SF_CHECK_OK(st, &c->err);
    return st == SF_OK;
}

/* mode's product on (rows × ka) A and B (as the probe lays them out), against the CPU's */
static void wgmma_case(int mode, const char *what) {
    cu c;
    if (!hp_open(&c)) return;
    const int qk = mode <= 1 || mode == 4, n = mode == 2 || mode == 4 ? 128 : 64, ka = qk ? 128 : 64,
              nb = qk ? n * 128 : 64 * n;
    float a[64 * 128], b[128 * 128], want[64 * 128], got[64 * 128];
    for (int i = 0; i < 64 * ka; i++) a[i] = (float)((i * 7 + i / 13) % 9 - 4);
    for (int i = 0; i < nb; i++) b[i] = (float)((i * 5 + i / 11) % 7 - 3);
    for (int r = 0; r < 64; r++)
        for (int col = 0; col < n; col++) {
            float s = 0;
            for (int k = 0; k < ka; k++) s += a[r * ka + k] * (qk ? b[col * 128 + k] : b[k * n + col]);
            want[r * n + col] = s;
        }
    void *da = cu_alloc(&c, (size_t)64 * ka * 2), *db = cu_alloc(&c, (size_t)nb * 2);
    float *dd = cu_alloc(&c, sizeof(float) * 64 * (size_t)n);
    if (da && db && dd) {
        SF_CHECK_OK(sf_cuda_upload_bf16(&c.ctx, da, a, (size_t)64 * ka, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_upload_bf16(&c.ctx, db, b, (size_t)nb, &c.err), &c.err);
        SF_CHECK_OK(sf_hopper_probe_wgmma(&c.ctx, mode, da, db, dd, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, got, dd, sizeof(float) * 64 * (size_t)n, &c.err), &c.err);
        int bad = -1;
        double worst = 0;
        for (int i = 0; i < 64 * n; i++) {
            const double dlt = fabs((double)got[i] - want[i]);
            if (!(dlt == 0) && bad < 0) bad = i;
            worst = !(dlt <= worst) ? dlt : worst;
        }
        SF_CHECK_MSG(bad < 0, "wgmma %s: D[%d][%d] = %g, want %g (max |d| %g)", what, bad / n, bad % n,
                     bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want[bad] : 0.0, worst);
    }
    cu_close(&c);
}
static void test_wgmma_qk_ss(void) { wgmma_case(0, "Q·Kᵀ, both from shared memory (SS)"); }
static void test_wgmma_qk_rs(void) { wgmma_case(1, "Q·Kᵀ, Q in registers (RS)"); }
static void test_wgmma_pv128(void) { wgmma_case(2, "P·V, P in registers, V N-major, n = 128"); }
static void test_wgmma_pv64(void) { wgmma_case(3, "P·V, P in registers, V N-major, n = 64"); }
static void test_wgmma_qk128(void) { wgmma_case(4, "Q·Kᵀ, Q in registers, n = 128 (128-key tiles)"); }

/* TMA boxes of 8 rows × 64 columns of a 10 × 100 matrix (pitch 104) at rows −3, 3, 9, 15 and columns
 * 0, 64, 0, 64, through a one-stage mbarrier ring (both parities of both barriers), read back through
 * the 128-byte swizzle: the matrix's values where the box lies inside it, zeros outside. */
static void test_tma_ring(void) {
    cu c;
    if (!hp_open(&c)) return;
    float m[10 * 104], got[4 * 512];
    for (int i = 0; i < 10 * 104; i++) m[i] = (float)(i % 104 < 100 ? 1 + i % 251 : -7); /* the pad: never read */
    void *in = cu_alloc(&c, sizeof m / 2);
    float *out = cu_alloc(&c, sizeof got);
    if (in && out) {
        SF_CHECK_OK(sf_cuda_upload_bf16(&c.ctx, in, m, 10 * 104, &c.err), &c.err);
        SF_CHECK_OK(sf_hopper_probe_tma(&c.ctx, in, 10, 100, 104, out, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, got, out, sizeof got, &c.err), &c.err);
        int bad = 0;
        for (int r = 0; r < 4 && !bad; r++)
            for (int e = 0; e < 512 && !bad; e++) {
                const int row = 6 * r - 3 + e / 64, col = 64 * (r % 2) + e % 64;
                const float want = row >= 0 && row < 10 && col < 100 ? m[row * 104 + col] : 0.0f;
                if (got[r * 512 + e] != want) {
                    bad = 1;
                    SF_CHECK_MSG(0, "TMA box %d element (%d, %d) = matrix (%d, %d): got %g, want %g", r, e / 64, e % 64,
                                 row, col, got[r * 512 + e], want);
                }
            }
    }
    cu_close(&c);
}

/* Named barriers order two warps' turns: 0, 1, 0, 1, … */
static void test_named_turns(void) {
    cu c;
    if (!hp_open(&c)) return;
    float got[8];
    float *out = cu_alloc(&c, sizeof got);
    if (out) {
        SF_CHECK_OK(sf_hopper_probe_turns(&c.ctx, out, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, got, out, sizeof got, &c.err), &c.err);
        for (int i = 0; i < 8; i++) SF_CHECK_MSG(got[i] == (float)(i & 1), "turn %d went to warp %g", i, got[i]);
    }
    cu_close(&c);
}

/* sf_mbar_wait's hang guard (mbar_clock.h): the emulation replaces the wait, so its arithmetic is held
 * here. %globaltimer ticks coarsely (every 32 ns to 1 µs): equal readings are the common case. */
static int expired(uint32_t *t0, uint32_t now, uint32_t lim) {
    int fired = 0;
    SF_MBAR_CLOCK_STEP(*t0, now, lim, fired = 1);
    return fired;
}
static void test_wait_clock(void) {
    const uint32_t lim = 3000000000u;
    static const uint32_t starts[] = {1000, 1001, 0, 0xFFFFFFFEu, 0xFFFFFFFFu, 0x80000000u};
    for (size_t i = 0; i < sizeof starts / sizeof *starts; i++) {
        uint32_t t0 = 0, s = starts[i];
        SF_CHECK(!expired(&t0, s, lim) && t0 != 0);
        SF_CHECK_MSG(!expired(&t0, s, lim), "start %u: the same reading again counted as expired", s);
        SF_CHECK_MSG(!expired(&t0, s + 1, lim), "start %u: one tick later counted as expired", s);
        SF_CHECK_MSG(!expired(&t0, s + lim - 1, lim), "start %u: within the bound counted as expired", s);
        SF_CHECK_MSG(expired(&t0, s + lim + 2, lim), "start %u: past the bound (across 2^32 too) not expired", s);
    }
    uint32_t t0 = 0; /* a long wait: every poll of the first 2.9 s stays below the bound */
    int fired = 0;
    for (uint64_t t = 0; t < 2900000000ull; t += 1000) fired |= expired(&t0, (uint32_t)(5u + t), lim);
    SF_CHECK(!fired);
    /* the bound from $SF_MBAR_TIMEOUT_NS: 0 switches it off (sanitizers, debuggers), bad values keep 3 s */
    static const struct { const char *env; uint32_t want; } lims[] = {
        {NULL, 3000000000u}, {"", 3000000000u},     {"0", 0},          {"3e10", 4000000000u}, {"20000000000", 4000000000u},
        {"5", 1000000u},     {"2e9", 2000000000u}, {"x", 3000000000u}, {"-1", 3000000000u},  {"1e9s", 3000000000u},
        {"nan", 3000000000u}};
    for (size_t i = 0; i < sizeof lims / sizeof *lims; i++)
        SF_CHECK_MSG(sf_mbar_limit_ns(lims[i].env) == lims[i].want, "SF_MBAR_TIMEOUT_NS=%s: %u, want %u",
                     lims[i].env ? lims[i].env : "(unset)", sf_mbar_limit_ns(lims[i].env), lims[i].want);
}

static const sf_test tests[] = {
    {"wgmma_qk_ss", test_wgmma_qk_ss}, {"wgmma_qk_rs", test_wgmma_qk_rs}, {"wgmma_pv128", test_wgmma_pv128},
    {"wgmma_pv64", test_wgmma_pv64},   {"wgmma_qk128", test_wgmma_qk128}, {"tma_ring", test_tma_ring},
    {"wait_clock", test_wait_clock},
    {"named_turns", test_named_turns},
};
SF_TEST_MAIN(tests)
