/* test_cuda_kernels.c — the CUDA kernels of kernels/cuda_ops.h against their CPU contracts
 * (kernels/gemm.h, norm_rows.h, act.h, modulate.h) on the same bf16-rounded inputs, and against
 * SPEC §5.4's exact bf16 rounding order where the order is fully determined (modulation, gated
 * add: bit-exact). Every device output sits between guard bytes (and strided outputs keep their
 * row gaps), copied back whole and checked untouched. Strided inputs carry NaN in their row gaps,
 * so reading past a row's width fails the comparison.
 * Without a usable CUDA device (CPU-only build, or no GPU: CI and the dev machines) every op test
 * prints a TAP skip; ctx_init then checks the clean SF_E_DEVICE failure instead.
 * Run on a GPU by tests/gpu/check.sh (SF_TEST_DEVICE=cuda:N picks the device). As of this commit
 * the CUDA ops have been compiled but never executed. */
#include "sf_test.h"

#include "act.h"
#include "cuda_ops.h"
#include "device.h"
#include "gemm.h"
#include "modulate.h"
#include "norm_rows.h"

/* Tolerance table: |got − ref| ≤ atol + rtol·|ref|. bf16 keeps 8 significant bits, so one bf16
 * ulp is 2^-8..2^-7 of a value; a GPU/CPU pair that differ only in fp32 rounding can still land
 * on adjacent bf16 values (1 ulp ≤ 0.0078 relative) after each bf16 rounding. */
enum { TOL_GEMM_F32, TOL_GEMM_BF16, TOL_NORM, TOL_ACT, TOL_FRAME_CPU, TOL_FRAME_SPEC, TOL_COUNT };
static const struct tol {
    double rtol, atol;
} TOL[TOL_COUNT] = {
    /* f32 output: bf16·bf16 products are exact in fp32, only the summation order differs
       (K ≤ 256, |x|,|w| ≤ 1: accumulated error ≲ K·2^-24·Σ|terms| ≈ 1e-4 worst case). */
    [TOL_GEMM_F32] = {1e-5, 2e-4},
    /* bf16 output, one rounding of nearly equal fp32 sums: ≤ 1 ulp; atol for sums near 0. */
    [TOL_GEMM_BF16] = {8e-3, 2e-4},
    /* RMSNorm ⌊⌊x·rs⌉·w⌉: two roundings (≤ 2 ulps), fp32 (GPU) vs double (CPU) statistics;
       LayerNorm has one rounding, same bound kept for one table row. atol for outputs near 0. */
    [TOL_NORM] = {1.6e-2, 1e-3},
    /* GELU/SiLU: tanhf/expf (fp32) vs the CPU's double, one rounding: ≤ 1 ulp. */
    [TOL_ACT] = {8e-3, 1e-5},
    /* modulate / gated add vs the f32 CPU contract, which does not round in between: the
       intermediate ⌊1+s⌉ and ⌊x·(1+s)⌉ (|·| ≤ 3) each move by ≤ 2^-8·3, before the shift. */
    [TOL_FRAME_CPU] = {1e-2, 3e-2},
    /* vs the same rounding sequence in IEEE fp32 + round-to-nearest-even on the host: exact. */
    [TOL_FRAME_SPEC] = {0, 0},
};

#define GUARD 64   /* sentinel elements on each side of every device output */
#define SENT 0xA5  /* sentinel byte */
#define MAXDEV 16  /* device buffers per test */

typedef struct cu {
    sf_cuda_ctx ctx;
    sf_err err;
    void *dev[MAXDEV];
    int ndev;
} cu;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float urand(float lo, float hi) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) / 16777216.0);
}
static float *hrand(size_t n, float lo, float hi, int bf16) { /* bf16: values already bf16-exact */
    float *p = malloc(n * sizeof *p);
    SF_CHECK(p != NULL);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) p[i] = bf16 ? sf_round_bf16(urand(lo, hi)) : urand(lo, hi);
    return p;
}

/* Open the device named by $SF_TEST_DEVICE (default cuda:0); 0 = skipped (reason set) or failed. */
static int cu_open(cu *c) {
    memset(c, 0, sizeof *c);
    int count = 0;
    if (sf_cuda_device_count(&count, &c->err) != SF_OK) {
        SF_TEST_SKIP("no CUDA device");
        return 0;
    }
    sf_device d = {1, 0};
    const char *env = getenv("SF_TEST_DEVICE");
    if (env && *env) SF_CHECK_OK(sf_device_parse(env, &d, &c->err), &c->err);
    sf_status st = sf_cuda_ctx_init(&c->ctx, d.ordinal, &c->err);
    SF_CHECK_OK(st, &c->err);
    return st == SF_OK;
}
static void cu_close(cu *c) {
    for (int i = 0; i < c->ndev; i++) sf_cuda_free(c->dev[i]);
    c->ndev = 0;
    sf_cuda_ctx_free(&c->ctx);
}
static void *cu_alloc(cu *c, size_t bytes) {
    void *p = NULL;
    SF_CHECK(c->ndev < MAXDEV);
    if (c->ndev >= MAXDEV) return NULL;
    SF_CHECK_OK(sf_cuda_malloc(&p, bytes, &c->err), &c->err);
    if (p) c->dev[c->ndev++] = p;
    return p;
}
/* Device copy of n host floats as bf16 (bf16 = 1) or f32. */
static void *cu_put(cu *c, const float *h, size_t n, int bf16) {
    void *p = cu_alloc(c, n * (bf16 ? 2 : 4));
    if (!p) return NULL;
    sf_status st = bf16 ? sf_cuda_upload_bf16(&c->ctx, p, h, n, &c->err) : sf_cuda_upload_f32(&c->ctx, p, h, n, &c->err);
    SF_CHECK_OK(st, &c->err);
    return st == SF_OK ? p : NULL;
}

/* A guarded device output of (rows, cols) with row stride ld and element size esz (2 bf16, 4 f32):
 * GUARD sentinel elements before and after, sentinel in every row gap. */
typedef struct gout {
    unsigned char *raw; /* device: the whole guarded allocation */
    void *at;           /* device: element (0, 0) */
    int64_t rows, cols, ld;
    size_t esz, bytes;
} gout;

static int gout_new(cu *c, gout *o, int64_t rows, int64_t cols, int64_t ld, size_t esz) {
    o->rows = rows, o->cols = cols, o->ld = ld, o->esz = esz;
    o->bytes = ((size_t)(rows * ld) + 2 * GUARD) * esz;
    o->raw = cu_alloc(c, o->bytes);
    if (!o->raw) return 0;
    o->at = o->raw + GUARD * esz;
    sf_status st = sf_cuda_memset(&c->ctx, o->raw, SENT, o->bytes, &c->err);
    SF_CHECK_OK(st, &c->err);
    return st == SF_OK;
}
/* Contiguous rows·cols host floats into the interior (in-place ops; requires ld == cols). */
static int gout_fill(cu *c, gout *o, const float *h) {
    sf_status st = o->esz == 2 ? sf_cuda_upload_bf16(&c->ctx, o->at, h, (size_t)(o->rows * o->cols), &c->err)
                               : sf_cuda_upload_f32(&c->ctx, o->at, h, (size_t)(o->rows * o->cols), &c->err);
    SF_CHECK_OK(st, &c->err);
    return st == SF_OK;
}
/* Copy back the whole allocation (synchronises), check every guard and gap byte, and write the
 * (rows, cols) values contiguously to vals as f32. */
static int gout_read(cu *c, const gout *o, float *vals) {
    unsigned char *h = malloc(o->bytes);
    SF_CHECK(h != NULL);
    if (!h) return 0;
    sf_status st = sf_cuda_copy_d2h(&c->ctx, h, o->raw, o->bytes, &c->err);
    SF_CHECK_OK(st, &c->err);
    if (st == SF_OK) st = sf_cuda_sync(&c->ctx, &c->err);
    SF_CHECK_OK(st, &c->err);
    size_t bad = 0;
    for (size_t i = 0; st == SF_OK && i < o->bytes; i++) {
        int64_t e = (int64_t)(i / o->esz) - GUARD; /* element index inside the interior */
        int inside = e >= 0 && e < o->rows * o->ld && e % o->ld < o->cols;
        if (!inside && h[i] != SENT) bad++;
    }
    SF_CHECK_MSG(bad == 0, "%zu guard/gap bytes overwritten", bad);
    for (int64_t r = 0; st == SF_OK && r < o->rows; r++)
        for (int64_t k = 0; k < o->cols; k++) {
            const unsigned char *p = h + (GUARD + r * o->ld + k) * o->esz;
            if (o->esz == 2) {
                uint16_t b;
                memcpy(&b, p, 2);
                vals[r * o->cols + k] = sf_bf16_to_f32(b);
            } else {
                memcpy(&vals[r * o->cols + k], p, 4);
            }
        }
    free(h);
    return st == SF_OK && bad == 0;
}

static void round_all(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = sf_round_bf16(x[i]);
}
/* Rows (M, D) with stride ld ≥ D: NaN in the gaps (bf16-exact values inside). */
static float *hrows(int64_t M, int64_t D, int64_t ld, float lo, float hi) {
    float *p = hrand((size_t)(M * ld), lo, hi, 1);
    for (int64_t i = 0; p && i < M * ld; i++)
        if (i % ld >= D) p[i] = NAN;
    return p;
}

static void test_ctx_init(void) {
    cu c;
    int count = 0;
    sf_err err = {{0}};
    if (sf_cuda_device_count(&count, &err) != SF_OK) { /* no device: a clean failure, never a crash */
        sf_cuda_ctx ctx;
        memset(&ctx, 0x5A, sizeof ctx);
        err.msg[0] = 0;
        SF_CHECK(sf_cuda_ctx_init(&ctx, 0, &err) == SF_E_DEVICE);
        SF_CHECK(err.msg[0] != 0);
        SF_CHECK(ctx.stream == NULL && ctx.lt == NULL);
        sf_cuda_ctx_free(&ctx);
        sf_cuda_ctx_free(NULL);
        return;
    }
    if (!cu_open(&c)) return;
    SF_CHECK(c.ctx.stream != NULL && c.ctx.lt != NULL);
    /* argument errors are reported before anything is enqueued */
    SF_CHECK(sf_gemm_cuda(&c.ctx, 2, 2, 2, NULL, 2, NULL, NULL, NULL, SF_F16, 2, &c.err) == SF_E_ARG);
    SF_CHECK(sf_rmsnorm_cuda(&c.ctx, 2, 4, NULL, 3, NULL, 1e-6, NULL, 4, &c.err) == SF_E_ARG);
    cu_close(&c);
    SF_CHECK(c.ctx.stream == NULL && c.ctx.lt == NULL);
}

/* One GEMM case: x (M, K) stride ldx, W (N, K), bias or not, y of ydt with stride ldy. */
static void gemm_case(int64_t M, int64_t N, int64_t K, int64_t ldx, int64_t ldy, int with_bias, sf_dtype ydt) {
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrows(M, K, ldx, -1, 1), *w = hrand((size_t)(N * K), -1, 1, 1);
    float *b = hrand((size_t)N, -1, 1, ydt == SF_BF16), *ref = malloc((size_t)(M * N) * 4), *got = malloc((size_t)(M * N) * 4);
    uint16_t *wb = malloc((size_t)(N * K) * 2);
    gout y;
    if (!x || !w || !b || !ref || !got || !wb) goto done;
    for (int64_t i = 0; i < N * K; i++) wb[i] = sf_f32_to_bf16(w[i]);
    /* CPU contract on the bf16 inputs (W as bf16, as the GPU sees it); bias bf16-rounded for a
       bf16 y (see sf_gemm_cuda). Then the GPU's single rounding of the output. */
    SF_CHECK(sf_gemm_cpu(M, N, K, x, ldx, wb, SF_BF16, with_bias ? b : NULL, ref, N, 1) == 0);
    if (ydt == SF_BF16) round_all(ref, (size_t)(M * N));
    void *dx = cu_put(&c, x, (size_t)(M * ldx), 1), *dw = cu_put(&c, w, (size_t)(N * K), 1);
    void *db = cu_put(&c, b, (size_t)N, 0);
    if (!dx || !dw || !db || !gout_new(&c, &y, M, N, ldy, ydt == SF_BF16 ? 2 : 4)) goto done;
    SF_CHECK_OK(sf_gemm_cuda(&c.ctx, M, N, K, dx, ldx, dw, with_bias ? db : NULL, y.at, ydt, ldy, &c.err), &c.err);
    if (gout_read(&c, &y, got))
        sf_test_allclose("gemm", got, ref, (size_t)(M * N), TOL[ydt == SF_BF16 ? TOL_GEMM_BF16 : TOL_GEMM_F32].rtol,
                         TOL[ydt == SF_BF16 ? TOL_GEMM_BF16 : TOL_GEMM_F32].atol);
done:
    free(x), free(w), free(b), free(ref), free(got), free(wb);
    cu_close(&c);
}

static void test_gemm_bf16_bias_strided(void) { gemm_case(37, 53, 96, 101, 56, 1, SF_BF16); }
static void test_gemm_f32_nobias(void) { gemm_case(5, 130, 256, 256, 130, 0, SF_F32); }
static void test_gemm_f32_bias_m1(void) { gemm_case(1, 200, 64, 64, 203, 1, SF_F32); }

/* rms = 1: RMSNorm (w or NULL), else LayerNorm (affine: w and b). inplace: y = x, ldy = ldx. */
static void norm_case(int rms, int64_t M, int64_t D, int64_t ldx, int64_t ldy, int affine, int inplace) {
    cu c;
    if (!cu_open(&c)) return;
    if (inplace) ldy = ldx = D;
    float *x = hrows(M, D, ldx, -3, 3), *w = hrand((size_t)D, 0.5f, 1.5f, 0), *b = hrand((size_t)D, -0.5f, 0.5f, 0);
    float *ref = malloc((size_t)(M * D) * 4), *got = malloc((size_t)(M * D) * 4);
    gout y;
    if (!x || !w || !b || !ref || !got) goto done;
    if (rms) { /* ⌊ ⌊x·rs⌉ · w ⌉ */
        sf_rmsnorm_cpu(M, D, x, ldx, NULL, 1e-6, ref, D, 1);
        for (int64_t i = 0; i < M * D; i++) ref[i] = sf_round_bf16(affine ? sf_round_bf16(ref[i]) * w[i % D] : ref[i]);
    } else {
        sf_layernorm_cpu(M, D, x, ldx, affine ? w : NULL, affine ? b : NULL, 1e-6, ref, D, 1);
        round_all(ref, (size_t)(M * D));
    }
    void *dw = cu_put(&c, w, (size_t)D, 0), *db = cu_put(&c, b, (size_t)D, 0), *dx = NULL;
    if (!dw || !db || !gout_new(&c, &y, M, D, ldy, 2)) goto done;
    if (inplace) {
        if (!gout_fill(&c, &y, x)) goto done;
        dx = y.at;
    } else if (!(dx = cu_put(&c, x, (size_t)(M * ldx), 1))) {
        goto done;
    }
    sf_status st = rms ? sf_rmsnorm_cuda(&c.ctx, M, D, dx, ldx, affine ? dw : NULL, 1e-6, y.at, ldy, &c.err)
                       : sf_layernorm_cuda(&c.ctx, M, D, dx, ldx, affine ? dw : NULL, affine ? db : NULL, 1e-6, y.at,
                                           ldy, &c.err);
    SF_CHECK_OK(st, &c.err);
    if (gout_read(&c, &y, got)) sf_test_allclose(rms ? "rmsnorm" : "layernorm", got, ref, (size_t)(M * D), TOL[TOL_NORM].rtol, TOL[TOL_NORM].atol);
done:
    free(x), free(w), free(b), free(ref), free(got);
    cu_close(&c);
}

static void test_rmsnorm_full_width_strided(void) { norm_case(1, 6, 1536, 1544, 1540, 1, 0); }
static void test_rmsnorm_noweight_inplace(void) { norm_case(1, 9, 100, 0, 0, 0, 1); }
static void test_layernorm_plain_strided(void) { norm_case(0, 5, 1536, 1537, 1539, 0, 0); }
static void test_layernorm_affine_inplace(void) { norm_case(0, 7, 200, 0, 0, 1, 1); }

static void act_case(int gelu, int64_t n, float lo, float hi) {
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand((size_t)n, lo, hi, 1), *ref = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
    gout y;
    if (!x || !ref || !got) goto done;
    memcpy(ref, x, (size_t)n * 4);
    if (gelu) sf_gelu_tanh_cpu(ref, n);
    else sf_silu_cpu(ref, n);
    round_all(ref, (size_t)n);
    if (!gout_new(&c, &y, 1, n, n, 2) || !gout_fill(&c, &y, x)) goto done;
    SF_CHECK_OK(gelu ? sf_gelu_tanh_cuda(&c.ctx, y.at, n, &c.err) : sf_silu_cuda(&c.ctx, y.at, n, &c.err), &c.err);
    if (gout_read(&c, &y, got)) sf_test_allclose(gelu ? "gelu_tanh" : "silu", got, ref, (size_t)n, TOL[TOL_ACT].rtol, TOL[TOL_ACT].atol);
done:
    free(x), free(ref), free(got);
    cu_close(&c);
}

static void test_gelu_tanh(void) { act_case(1, 10007, -5, 5); }
static void test_silu(void) { act_case(0, 4099, -8, 8); }

/* Modulation (gated = 0, out of place) or gated add (gated = 1, in place) over F frames of S
 * tokens; E: (F, 6, D) bf16-exact values as in the DiT's per-frame modulation table. */
static void frame_case(int gated) {
    enum { F = 3, S = 5, D = 70 };
    const int64_t n = (int64_t)F * S * D, fstride = 6 * D;
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand((size_t)n, -2, 2, 1), *y = hrand((size_t)n, -2, 2, 1), *E = hrand((size_t)(F * fstride), -0.5f, 0.5f, 1);
    float *ref = malloc((size_t)n * 4), *spec = malloc((size_t)n * 4), *got = malloc((size_t)n * 4);
    gout o;
    if (!x || !y || !E || !ref || !spec || !got) goto done;
    const float *shift = E, *scale = E + D, *gate = E + 2 * D;
    for (int64_t i = 0; i < n; i++) { /* SPEC §5.4, rounding by rounding */
        int64_t f = i / (S * D), k = i % D;
        if (gated) {
            spec[i] = sf_round_bf16(x[i] + sf_round_bf16(y[i] * gate[f * fstride + k]));
        } else {
            float one = sf_round_bf16(1.0f + scale[f * fstride + k]);
            spec[i] = sf_round_bf16(sf_round_bf16(x[i] * one) + shift[f * fstride + k]);
        }
    }
    if (gated) {
        memcpy(ref, x, (size_t)n * 4);
        sf_gated_add_cpu(F, S, D, ref, y, gate, fstride);
    } else {
        sf_modulate_cpu(F, S, D, x, shift, scale, fstride, ref);
    }
    void *dE = cu_put(&c, E, (size_t)(F * fstride), 0), *dy = cu_put(&c, y, (size_t)n, 1), *dx = NULL;
    if (!dE || !dy || !gout_new(&c, &o, F * S, D, D, 2)) goto done;
    if (gated) {
        if (!gout_fill(&c, &o, x)) goto done;
        SF_CHECK_OK(sf_gated_add_cuda(&c.ctx, F, S, D, o.at, dy, (const float *)dE + 2 * D, fstride, &c.err), &c.err);
    } else {
        if (!(dx = cu_put(&c, x, (size_t)n, 1))) goto done;
        SF_CHECK_OK(sf_modulate_cuda(&c.ctx, F, S, D, dx, (const float *)dE, (const float *)dE + D, fstride, o.at, &c.err),
                    &c.err);
    }
    if (gout_read(&c, &o, got)) {
        sf_test_allclose(gated ? "gated_add vs SPEC order" : "modulate vs SPEC order", got, spec, (size_t)n,
                         TOL[TOL_FRAME_SPEC].rtol, TOL[TOL_FRAME_SPEC].atol);
        sf_test_allclose(gated ? "gated_add vs CPU" : "modulate vs CPU", got, ref, (size_t)n, TOL[TOL_FRAME_CPU].rtol,
                         TOL[TOL_FRAME_CPU].atol);
    }
done:
    free(x), free(y), free(E), free(ref), free(spec), free(got);
    cu_close(&c);
}

static void test_modulate(void) { frame_case(0); }
static void test_gated_add(void) { frame_case(1); }

/* The SPEC-order references above are only meaningful if the CPU contract is close to them. */
static void test_spec_order_reference_is_sane(void) {
    float x = 1.5f, s = 0.00390625f /* 2^-8 */, sh = 0.25f;
    float one = sf_round_bf16(1.0f + s); /* 1 + 2^-8 is a bf16 tie: rounds to even, 1.0 */
    SF_CHECK(one == 1.0f);
    SF_CHECK(sf_round_bf16(sf_round_bf16(x * one) + sh) == 1.75f);
}

static const sf_test tests[] = {
    {"ctx_init", test_ctx_init},
    {"spec_order_reference_is_sane", test_spec_order_reference_is_sane},
    {"gemm_bf16_bias_strided", test_gemm_bf16_bias_strided},
    {"gemm_f32_nobias", test_gemm_f32_nobias},
    {"gemm_f32_bias_m1", test_gemm_f32_bias_m1},
    {"rmsnorm_full_width_strided", test_rmsnorm_full_width_strided},
    {"rmsnorm_noweight_inplace", test_rmsnorm_noweight_inplace},
    {"layernorm_plain_strided", test_layernorm_plain_strided},
    {"layernorm_affine_inplace", test_layernorm_affine_inplace},
    {"gelu_tanh", test_gelu_tanh},
    {"silu", test_silu},
    {"modulate", test_modulate},
    {"gated_add", test_gated_add},
};
SF_TEST_MAIN(tests)
