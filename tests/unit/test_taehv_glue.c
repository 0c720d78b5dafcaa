/* test_taehv_glue.c — the TAEHV decoder's GPU kernels (kernels/taehv_ops_cuda.h, kernels/cuda/taehv_glue.cu)
 * against their CPU references (kernels/taehv_ops.h: sf_taehv_clamp_cpu, sf_relu_cpu,
 * sf_taehv_cat_roll_cpu), channels-last on the GPU vs channel-first on the CPU, transposed here.
 * Built twice: test_taehv_glue_emu (-DSF_TEST_EMU: the same .cu on the CPU emulation, every `make test`)
 * and test_taehv_glue (the real kernels; SKIP without a GPU, tests/gpu/check.sh runs it).
 * Odd sizes (pixel counts 13-37, channel counts 5, 12, 24), both paths of each kernel (16-byte vectors
 * and one value a thread), special values (±0, ±inf, NaN, denormals, saturating inputs), grid-stride
 * loops made to wrap on the emulation (grid capped at 2-3 blocks). Outputs sit between guard elements
 * (kernel_test.h: poison 0xA5) that must stay untouched. A failure prints tensor, first bad index, both
 * values, the count and max |Δ|.
 * Tolerances:
 *   ReLU, cat + roll            bit for bit (copies and a sign test on the bits; NaN payloads, −0 kept)
 *   clamp tanh(x/3)·3 → bf16    emulation: bit for bit (the same f32 quotient, tanhf and product as the
 *                               CPU, one rounding); GPU: 1 bf16 step — CUDA's tanhf is within 2 f32 ulps of
 *                               tanh, glibc's within 1, and two f32 values that close round to the same
 *                               bf16 unless they straddle a bf16 rounding midpoint: then one step apart. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "device.h"
#include "taehv_ops.h"
#include "taehv_ops_cuda.h"
#include "tensor.h"

#include <stdint.h>

#define KT_SEED 0x7AE4F00DC0FFEE11ull
#include "kernel_test.h"

#ifdef SF_TEST_EMU
#include "cuda/emu/sf_emu.h"
#else
static void sf_emu_set_max_blocks(long long n) { (void)n; }
#endif

/* Compare raw bf16 bit patterns: 1 when equal; else one line with the first bad index and both values. */
static int bits_eq(const char *what, const uint16_t *got, const uint16_t *ref, size_t n) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != ref[i] && bad++ == 0) first = i;
    if (bad) {
        fprintf(stderr, "# %s: %zu/%zu values differ; first [%zu] got 0x%04x (%g) ref 0x%04x (%g)\n", what, bad, n, first,
                got[first], (double)sf_bf16_to_f32(got[first]), ref[first], (double)sf_bf16_to_f32(ref[first]));
        sf_test_failures++;
        return 0;
    }
    return 1;
}

/* Device bf16 bits between guards: n elements; returns the interior. */
static void *gbits(cu *c, gbuf *g, size_t n, const uint16_t *h) {
    if (!gb_new(c, g, 1, (int64_t)n, (int64_t)n, 2)) return NULL;
    if (h) SF_CHECK_OK(sf_cuda_copy_h2d(&c->ctx, g->at, h, n * 2, &c->err), &c->err);
    return g->at;
}
/* Read back n bf16 bits, checking the guards. */
static int gbits_get(cu *c, const gbuf *g, const char *what, uint16_t *out) {
    float *v = malloc(sizeof(float) * (size_t)(g->rows * g->cols));
    int ok = v && gb_get(c, g, what, v);
    for (int64_t i = 0; ok && i < g->rows * g->cols; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        out[i] = (uint16_t)(u >> 16); /* gb_get widened the bits exactly */
    }
    free(v);
    return ok;
}

/* ---- input clamp ------------------------------------------------------------------------------- */

/* z (C, HW) f32 channel-first → y (HW, ldy) bf16: tanh(z/3)·3 in the first C channels, zeros after. */
static void clamp_case(int64_t C, int64_t HW, int64_t ldy, long long max_blocks) {
    cu c;
    if (!cu_open(&c)) return;
    float *z = hrand((size_t)(C * HW), -12, 12, 0), *ref = hzalloc((size_t)(HW * ldy)), *got = hzalloc((size_t)(HW * ldy));
    float *zc = hzalloc((size_t)(C * HW));
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-30f, -1e-30f, 3e-39f, 1e6f, -1e6f, 0.4f};
    for (size_t i = 0; i < sizeof special / sizeof special[0] && i < (size_t)(C * HW); i++) z[i * 7 % (C * HW)] = special[i];
    gbuf gy;
    float *dz = cu_put(&c, z, (size_t)(C * HW), 0);
    if (!dz || !gb_new(&c, &gy, HW, ldy, ldy, 2)) goto done;
    memcpy(zc, z, sizeof(float) * (size_t)(C * HW));
    sf_taehv_clamp_cpu(zc, C * HW);
    for (int64_t p = 0; p < HW; p++)
        for (int64_t ch = 0; ch < C; ch++) ref[p * ldy + ch] = sf_round_bf16(zc[ch * HW + p]);
    sf_emu_set_max_blocks(max_blocks);
    SF_CHECK_OK(sf_taehv_clamp_cuda(&c.ctx, C, HW, dz, gy.at, ldy, &c.err), &c.err);
    sf_emu_set_max_blocks(0);
    char what[96];
    snprintf(what, sizeof what, "taehv_clamp C=%lld HW=%lld ldy=%lld", (long long)C, (long long)HW, (long long)ldy);
    if (!gb_get(&c, &gy, what, got)) goto done;
#ifdef SF_TEST_EMU
    tol_cmp(what, got, ref, (size_t)(HW * ldy), 0, 1, 0, 0);
#else
    tol_cmp(what, got, ref, (size_t)(HW * ldy), 1, 1, 0, 0);
#endif
    size_t pad = 0; /* the padding channels are +0 exactly (tol_cmp would let −0 pass) */
    for (int64_t p = 0; p < HW; p++)
        for (int64_t ch = C; ch < ldy; ch++) pad += signbit(got[p * ldy + ch]) || got[p * ldy + ch] != 0.0f;
    SF_CHECK_MSG(pad == 0, "%s: %zu padding values are not +0", what, pad);
    SF_CHECK_MSG(got[0] == 0.0f && !signbit(got[0]), "%s: z = +0 gave %g", what, (double)got[0]);
done:
    free(z), free(ref), free(got), free(zc);
    cu_close(&c);
}
static void test_taehv_clamp_padded(void) { clamp_case(16, 35, 24, 0); }    /* z_dim 16 padded to 24 */
static void test_taehv_clamp_odd_wrap(void) { clamp_case(5, 13, 8, 2); }    /* C 5 → 8, the grid wraps */
static void test_taehv_clamp_unpadded(void) { clamp_case(16, 24, 16, 0); }  /* the real decoder's case */

/* ---- ReLU ---------------------------------------------------------------------------------------- */

/* n random bf16 values with the special ones spread in, relu'd at an element offset off into a guarded
 * buffer (off 1: not 16-byte aligned, one value a thread), against sf_relu_cpu bit for bit. */
static void relu_case(int64_t P, int64_t C, int off, long long max_blocks) {
    cu c;
    if (!cu_open(&c)) return;
    const size_t n = (size_t)(P * C);
    float *x = hrand(n, -3, 3, 1);
    uint16_t *in = malloc((n + 1) * 2), *ref = malloc(n * 2), *got = malloc((n + 1) * 2);
    const uint16_t special[] = {0x8000, 0x0000, 0xFF80 /* −inf */, 0x7F80 /* +inf */, 0x7FC1 /* NaN */,
                                0xFFC3 /* −NaN */, 0x8001 /* −denormal */, 0x0001, 0xFF7F /* −max */, 0xBF80 /* −1 */};
    gbuf g;
    if (!x || !in || !ref || !got) goto done;
    for (size_t i = 0; i < n; i++) in[off + i] = sf_f32_to_bf16(x[i]);
    in[0] = 0x3F80;
    for (size_t i = 0; i < sizeof special / sizeof special[0] && i < n; i++) in[off + (i * 5) % n] = special[i];
    for (size_t i = 0; i < n; i++) x[i] = sf_bf16_to_f32(in[off + i]);
    sf_relu_cpu(x, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        ref[i] = (uint16_t)(u >> 16); /* every value is a widened bf16: exact */
    }
    void *d = gbits(&c, &g, n + (size_t)off, in);
    if (!d) goto done;
    sf_emu_set_max_blocks(max_blocks);
    SF_CHECK_OK(sf_relu_cuda(&c.ctx, P, C, (uint16_t *)d + off, &c.err), &c.err);
    sf_emu_set_max_blocks(0);
    char what[96];
    snprintf(what, sizeof what, "relu P=%lld C=%lld offset %d", (long long)P, (long long)C, off);
    if (!gbits_get(&c, &g, what, got)) goto done;
    bits_eq(what, got + off, ref, n);
    SF_CHECK_MSG(!off || got[0] == 0x3F80, "%s: the element before x was written", what);
done:
    free(x), free(in), free(ref), free(got);
    cu_close(&c);
}
static void test_relu_vec_wrap(void) { relu_case(37, 24, 0, 3); }    /* 16-byte path, 111 vectors on 3 blocks */
static void test_relu_scalar_odd(void) { relu_case(13, 5, 0, 0); }  /* 65 values: one a thread */
static void test_relu_unaligned(void) { relu_case(9, 8, 1, 0); }    /* a multiple of 8, but not 16-byte aligned */

/* ---- MemBlock cat + roll ------------------------------------------------------------------------- */

/* Three frames through one MemBlock's memory, starting from zeros: each frame's cat and the memory after
 * it against sf_taehv_cat_roll_cpu (channel-first) transposed, bit for bit; the overlap refusal. */
static void cat_roll_case(int64_t P, int64_t C, long long max_blocks) {
    cu c;
    if (!cu_open(&c)) return;
    const size_t n = (size_t)(P * C);
    float *xs = hrand(3 * n, -4, 4, 1), *xc = hzalloc(n), *pc = hzalloc(n), *cc = hzalloc(2 * n);
    float *ref_cat = hzalloc(2 * n), *ref_past = hzalloc(n), *got_cat = hzalloc(2 * n), *got_past = hzalloc(n);
    gbuf gx, gp, gc;
    if (!gb_new(&c, &gx, P, C, C, 2) || !gb_new(&c, &gp, P, C, C, 2) || !gb_new(&c, &gc, P, 2 * C, 2 * C, 2)) goto done;
    SF_CHECK_OK(sf_cuda_memset(&c.ctx, gp.at, 0, n * 2, &c.err), &c.err); /* the memory after a reset */
    for (int f = 0; f < 3 && !sf_test_failures; f++) {
        const float *x = xs + (size_t)f * n; /* (P, C) */
        if (!gb_put(&c, &gx, x)) goto done;
        for (int64_t p = 0; p < P; p++)
            for (int64_t ch = 0; ch < C; ch++) xc[ch * P + p] = x[p * C + ch];
        sf_taehv_cat_roll_cpu(xc, pc, cc, C, P);
        for (int64_t p = 0; p < P; p++)
            for (int64_t ch = 0; ch < 2 * C; ch++) ref_cat[p * 2 * C + ch] = cc[ch * P + p];
        for (int64_t p = 0; p < P; p++)
            for (int64_t ch = 0; ch < C; ch++) ref_past[p * C + ch] = pc[ch * P + p];
        sf_emu_set_max_blocks(max_blocks);
        SF_CHECK_OK(sf_taehv_cat_roll_cuda(&c.ctx, P, C, gx.at, gp.at, gc.at, &c.err), &c.err);
        sf_emu_set_max_blocks(0);
        char what[96];
        snprintf(what, sizeof what, "cat_roll P=%lld C=%lld frame %d: cat", (long long)P, (long long)C, f);
        if (gb_get(&c, &gc, what, got_cat)) tol_cmp(what, got_cat, ref_cat, 2 * n, 0, 1, 0, 0);
        snprintf(what, sizeof what, "cat_roll P=%lld C=%lld frame %d: past", (long long)P, (long long)C, f);
        if (gb_get(&c, &gp, what, got_past)) tol_cmp(what, got_past, ref_past, n, 0, 1, 0, 0);
    }
    /* cat over x or past is refused before anything runs */
    SF_CHECK(sf_taehv_cat_roll_cuda(&c.ctx, P, C, gx.at, gp.at, gx.at, &c.err) == SF_E_ARG);
    SF_CHECK(sf_taehv_cat_roll_cuda(&c.ctx, P, C, gx.at, gp.at, (uint16_t *)gp.at + 1, &c.err) == SF_E_ARG);
done:
    free(xs), free(xc), free(pc), free(cc), free(ref_cat), free(ref_past), free(got_cat), free(got_past);
    cu_close(&c);
}
static void test_cat_roll_vec_wrap(void) { cat_roll_case(29, 24, 3); } /* 16-byte path, the grid wraps */
static void test_cat_roll_scalar(void) { cat_roll_case(31, 12, 0); }   /* C 12: one value a thread */

static const sf_test tests[] = {
    {"taehv_clamp_padded", test_taehv_clamp_padded},
    {"taehv_clamp_odd_wrap", test_taehv_clamp_odd_wrap},
    {"taehv_clamp_unpadded", test_taehv_clamp_unpadded},
    {"relu_vec_wrap", test_relu_vec_wrap},
    {"relu_scalar_odd", test_relu_scalar_odd},
    {"relu_unaligned", test_relu_unaligned},
    {"cat_roll_vec_wrap", test_cat_roll_vec_wrap},
    {"cat_roll_scalar", test_cat_roll_scalar},
};
SF_TEST_MAIN(tests)
