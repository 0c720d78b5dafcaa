/* kernel_test.h — the harness shared by the tests that hold CUDA kernels to their CPU references
 * (test_cuda_emu.c, test_t5_glue.c; each built on the CPU emulation and, with -DSF_TEST_GPU, on a
 * GPU): random inputs, the tolerance comparison that prints enough to fix a failure blind (tensor,
 * first bad index, both values, count, max |Δ|, NMSE), the device context of a test case and
 * guarded device tensors (poisoned guard elements and row gaps, checked untouched on read-back).
 * Static functions in a header: each test binary gets its own copy; include after sf_test.h.
 * Hooks a test may define first: KT_SEED (the input generator's seed), KT_OPEN_HOOK() and
 * KT_CLOSE_HOOK() (run when a case opens / closes its context: the emulator's knobs). */
#ifndef SF_KERNEL_TEST_H
#define SF_KERNEL_TEST_H

#include "cuda_ops.h"
#include "device.h"

#include <math.h>
#include <stdint.h>

#ifndef KT_SEED
#define KT_SEED 0x9E3779B97F4A7C15ull
#endif
#ifndef KT_OPEN_HOOK
#define KT_OPEN_HOOK() (void)0
#endif
#ifndef KT_CLOSE_HOOK
#define KT_CLOSE_HOOK() (void)0
#endif

/* EMU_ONLY(): first statement of a case that checks the emulation's own rules (capture rules,
 * launch counters): it SKIPs as "emulator self-test" in the -DSF_TEST_GPU twin, which check.sh
 * does not count as a failure. */
#ifdef SF_TEST_GPU
#define EMU_ONLY() \
    do { \
        SF_TEST_SKIP("emulator self-test"); \
        return; \
    } while (0)
#else
#define EMU_ONLY() (void)0
#endif

#define GUARD 64
#define POISON 0xA5

/* ---- host side ---------------------------------------------------------------------------- */
static uint64_t kt_rng = KT_SEED;
static float urand(float lo, float hi) { /* never exactly 0 */
    for (;;) {
        kt_rng ^= kt_rng << 13, kt_rng ^= kt_rng >> 7, kt_rng ^= kt_rng << 17;
        float v = lo + (hi - lo) * (float)((kt_rng >> 40) / 16777216.0);
        if (v != 0.0f) return v;
    }
}
static float *hrand(size_t n, float lo, float hi, int bf16) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; p && i < n; i++) p[i] = bf16 ? sf_round_bf16(urand(lo, hi)) : urand(lo, hi);
    SF_CHECK(p != NULL);
    return p;
}
static inline float *hzalloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static int64_t ord(float f) { /* monotonic integer image of a float */
    int32_t i;
    memcpy(&i, &f, 4);
    return i < 0 ? -(int64_t)(i & 0x7fffffff) : (int64_t)i;
}

/* n values pass when within `ulps` steps (bf16 steps when bf16, else f32 steps) or when
 * |Δ| ≤ atol + rtol·|ref|; NaN never passes. On failure one line with everything to fix it blind. */
static int tol_cmp(const char *what, const float *got, const float *ref, size_t n, int ulps, int bf16, double rtol,
                   double atol) {
    size_t bad = 0, first = 0;
    double maxd = 0, se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        int64_t u = ord(got[i]) - ord(ref[i]);
        if (u < 0) u = -u;
        if (bf16) u >>= 16;
        int ok = !isnan(got[i]) && !isnan(ref[i]) && (u <= ulps || d <= atol + rtol * fabs((double)ref[i]));
        if (!isnan(d)) {
            se += d * d, sr += (double)ref[i] * ref[i];
            if (d > maxd) maxd = d;
        }
        if (!ok && bad++ == 0) first = i;
    }
    if (bad) {
        fprintf(stderr,
                "# %s: %zu/%zu out of tolerance (%d ulps, rtol %g, atol %g); first bad [%zu] got %.9g ref %.9g; "
                "max |d| %.3g; nmse %.3g\n",
                what, bad, n, ulps, rtol, atol, first, (double)got[first], (double)ref[first], maxd,
                sr > 0 ? se / sr : se);
        sf_test_failures++;
        return 0;
    }
    return 1;
}

/* ---- device side: a case's context and the allocations it frees -------------------------- */
typedef struct cu {
    sf_cuda_ctx ctx;
    sf_err err;
    void *dev[24];
    int ndev;
} cu;
/* The device under test ($SF_TEST_DEVICE, default cuda:0; the emulation has one); SKIP without one. */
static int cu_open(cu *c) {
    memset(c, 0, sizeof *c);
    const int ordinal = sf_test_gpu();
    if (ordinal < 0) return 0;
    KT_OPEN_HOOK();
    sf_status st = sf_cuda_ctx_init(&c->ctx, ordinal, &c->err);
    SF_CHECK_OK(st, &c->err);
    return st == SF_OK;
}
static void cu_close(cu *c) {
    for (int i = 0; i < c->ndev; i++) sf_cuda_free(c->dev[i]);
    sf_cuda_ctx_free(&c->ctx);
    KT_CLOSE_HOOK();
}
static void *cu_alloc(cu *c, size_t bytes) {
    void *p = NULL;
    SF_CHECK(c->ndev < 24);
    if (c->ndev >= 24) return NULL;
    SF_CHECK_OK(sf_cuda_malloc(&p, bytes, &c->err), &c->err);
    if (p) c->dev[c->ndev++] = p;
    return p;
}
/* A plain device copy of n host values, as bf16 (bf16 = 1) or f32. */
static inline void *cu_put(cu *c, const float *h, size_t n, int bf16) {
    void *p = cu_alloc(c, n * (bf16 ? 2 : 4));
    if (!p) return NULL;
    sf_status st = bf16 ? sf_cuda_upload_bf16(&c->ctx, p, h, n, &c->err) : sf_cuda_upload_f32(&c->ctx, p, h, n, &c->err);
    SF_CHECK_OK(st, &c->err);
    return st == SF_OK ? p : NULL;
}

/* A guarded device tensor (rows, cols) with row stride ld, element size esz (2: bf16, 4: f32, 8: f64):
 * GUARD poisoned elements before and after and poison in the row gaps. */
typedef struct gbuf {
    unsigned char *raw, *at;
    int64_t rows, cols, ld;
    size_t esz, bytes;
} gbuf;
static int gb_new(cu *c, gbuf *g, int64_t rows, int64_t cols, int64_t ld, size_t esz) {
    g->rows = rows, g->cols = cols, g->ld = ld, g->esz = esz;
    g->bytes = ((size_t)(rows * ld) + 2 * GUARD) * esz;
    g->raw = cu_alloc(c, g->bytes);
    if (!g->raw) return 0;
    g->at = g->raw + GUARD * esz;
    sf_status st = sf_cuda_memset(&c->ctx, g->raw, POISON, g->bytes, &c->err);
    SF_CHECK_OK(st, &c->err);
    return st == SF_OK;
}
/* Upload contiguous rows·cols host floats into the interior (as bf16 / f32), leaving the gaps. */
static int gb_put(cu *c, gbuf *g, const float *h) {
    for (int64_t r = 0; r < g->rows; r++) {
        unsigned char *d = g->at + (size_t)(r * g->ld) * g->esz;
        sf_status st = g->esz == 2 ? sf_cuda_upload_bf16(&c->ctx, d, h + r * g->cols, (size_t)g->cols, &c->err)
                                   : sf_cuda_upload_f32(&c->ctx, d, h + r * g->cols, (size_t)g->cols, &c->err);
        SF_CHECK_OK(st, &c->err);
        if (st != SF_OK) return 0;
    }
    return 1;
}
/* Read back, check guards and gaps, write the interior contiguously to vals (f32). */
static int gb_get(cu *c, const gbuf *g, const char *what, float *vals) {
    unsigned char *h = malloc(g->bytes);
    if (!h) return 0;
    sf_status st = sf_cuda_copy_d2h(&c->ctx, h, g->raw, g->bytes, &c->err);
    SF_CHECK_OK(st, &c->err);
    size_t bad = 0, first = 0;
    for (size_t i = 0; st == SF_OK && i < g->bytes; i++) {
        int64_t e = (int64_t)(i / g->esz) - GUARD;
        int inside = e >= 0 && e < g->rows * g->ld && e % g->ld < g->cols;
        if (!inside && h[i] != POISON && bad++ == 0) first = i;
    }
    SF_CHECK_MSG(bad == 0, "%s: %zu guard/gap bytes overwritten, first at byte %lld of the interior", what, bad,
                 (long long)first - (long long)(GUARD * g->esz));
    for (int64_t r = 0; st == SF_OK && r < g->rows; r++)
        for (int64_t k = 0; k < g->cols; k++) {
            const unsigned char *p = h + (GUARD + r * g->ld + k) * g->esz;
            if (g->esz == 2) {
                uint16_t b;
                memcpy(&b, p, 2);
                vals[r * g->cols + k] = sf_bf16_to_f32(b);
            } else {
                memcpy(&vals[r * g->cols + k], p, 4);
            }
        }
    free(h);
    return st == SF_OK && bad == 0;
}

#endif
