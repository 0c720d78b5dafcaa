/* test_t5_glue.c — the umT5 encoder's CUDA kernels (kernels/cuda/t5_glue.cu, contracts in
 * kernels/t5_cuda.h), each held to its CPU reference: the CPU kernels of kernels/t5_ops.h (the ones
 * stages/encode/t5.c runs) and kernels/norm_rows.h, called here, not replayed. Built twice:
 * test_t5_glue runs the same .cu on the CPU emulation layer (kernels/cuda/emu/, in every `make test`), test_t5_glue_gpu (-DSF_TEST_GPU) on a
 * real GPU (tests/gpu/check.sh; SKIPs without one). Run one case by name:
 * build/tests/test_t5_glue bias_softmax_masked.
 *
 * Outputs live between guard elements (poison byte 0xA5) and strided outputs keep their row gaps:
 * both are checked untouched. Inputs are random, bf16-exact where a kernel reads bf16. A failure
 * prints tensor, first bad index, both values, the count, max |Δ| and NMSE.
 * Tolerances (bf16 ulps = steps between adjacent bf16 values):
 *   embedding gather, residual update x + r        exact (same IEEE operations)
 *   RMS norm → bf16 vs sf_rmsnorm_cpu + rounding   1 ulp: rs in fp32 (block sum) vs double, one rounding
 *   RMS norm → f32 in place vs sf_rmsnorm_cpu      rtol 1e-6 (rs in the last fp32 bits)
 *   bias softmax vs sf_t5_bias_softmax_cpu → bf16  1 ulp: e/Σ (fp32 tree sum) vs e·(1/Σ) (double sum)
 *   attention vs sf_t5_attention_cpu (f32 P and o) |Δ| ≤ 2^-8·max|v| + 2^-8·|ref| + 1e-5: P rounded to
 *     on the same bf16 q, k, v                     bf16 moves each weight by ≤ 2^-8 of itself (bf16's unit
 *                                                  roundoff) and Σ P = 1; o's bf16 rounding ≤ 2^-8·|o|;
 *                                                  1e-5 for fp32 sums in another order (the bound of
 *                                                  test_cuda_emu's attention_blas vs sf_attention_cpu)
 *   gated GELU vs sf_t5_gated_gelu_cpu (double)    1 ulp, or |Δ| ≤ atol where 1 + tanhf cancels (z ≲ −4):
 *                                                  0.5·|z|·|fc1| ≤ 9 times tanhf's error near −1, half an
 *                                                  ulp (2^-25) on the host → 3e-7, CUDA's 2 ulps (2^-23) → 1.1e-6 */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "device.h"
#include "gpu_host.h"
#include "norm_rows.h"
#include "stages/encode/t5.h"
#include "t5_cuda.h"
#include "t5_ops.h"

#include <stdint.h>

#define KT_SEED 0x2545F4914F6CDD1Dull
#include "kernel_test.h"

static void *dput(cu *c, const void *h, size_t bytes) {
    void *p = cu_alloc(c, bytes);
    if (p) SF_CHECK_OK(sf_cuda_copy_h2d(&c->ctx, p, h, bytes, &c->err), &c->err);
    return p;
}

/* ---- the cases --------------------------------------------------------------------------------- */

/* Rows of the table by id, exactly widened; an id outside the table writes NaN (the host checks ids first). */
static void test_embed_gather(void) {
    enum { V = 50, D = 40, N = 9, LDX = 44 };
    cu c;
    if (!cu_open(&c)) return;
    float *tab = hrand(V * D, -3, 3, 1), got[N * D], ref[N * D];
    int64_t ids[N] = {0, 49, 7, 7, 13, 1, 48, 50, 22}; /* 50: out of range */
    gbuf tb, x;
    void *dids = dput(&c, ids, sizeof ids);
    if (!tab || !dids || !gb_new(&c, &tb, V, D, D, 2) || !gb_put(&c, &tb, tab) || !gb_new(&c, &x, N, D, LDX, 4)) goto done;
    SF_CHECK_OK(sf_t5_embed_cuda(&c.ctx, N, D, dids, V, tb.at, (float *)x.at, LDX, &c.err), &c.err);
    if (!gb_get(&c, &x, "embed", got)) goto done;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < D; k++) ref[i * D + k] = ids[i] < V ? tab[ids[i] * D + k] : 0.0f;
    tol_cmp("embed rows 0..6", got, ref, 7 * D, 0, 0, 0, 0);
    int nan = 0;
    for (int k = 0; k < D; k++) nan += isnan(got[7 * D + k]);
    SF_CHECK_MSG(nan == D, "out-of-range id: %d of %d values NaN", nan, D);
    tol_cmp("embed row 8", got + 8 * D, ref + 8 * D, D, 0, 0, 0, 0);
done:
    free(tab);
    cu_close(&c);
}

/* x += r then the T5 RMS norm into a bf16 GEMM input (strided, D = 1000: 128 threads, the last
 * columns on fewer threads), against x + r on the host and sf_rmsnorm_cpu rounded to bf16; then the
 * final norm's form (no residual, f32, in place). */
static void test_res_rmsnorm(void) {
    enum { M = 5, D = 1000, LDX = 1008, LDR = 1016, LDY = 1024 };
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(M * D, -4, 4, 0), *r = hrand(M * D, -2, 2, 0), *w = hrand(D, 0.5f, 1.5f, 1);
    float *gx = calloc(M * D, 4), *gy = calloc(M * D, 4), *rx = calloc(M * D, 4), *ry = calloc(M * D, 4);
    gbuf bx, br, by;
    float *dw = dput(&c, w, D * 4);
    if (!x || !r || !w || !gx || !gy || !rx || !ry || !dw || !gb_new(&c, &bx, M, D, LDX, 4) || !gb_put(&c, &bx, x) ||
        !gb_new(&c, &br, M, D, LDR, 4) || !gb_put(&c, &br, r) || !gb_new(&c, &by, M, D, LDY, 2))
        goto done;
    SF_CHECK_OK(sf_t5_res_rmsnorm_cuda(&c.ctx, M, D, (float *)bx.at, LDX, (const float *)br.at, LDR, dw, 1e-6, by.at,
                                       SF_BF16, LDY, &c.err),
                &c.err);
    for (int i = 0; i < M * D; i++) rx[i] = x[i] + r[i];
    sf_rmsnorm_cpu(M, D, rx, D, w, 1e-6, ry, D, 1);
    for (int i = 0; i < M * D; i++) ry[i] = sf_round_bf16(ry[i]);
    if (gb_get(&c, &bx, "res_rmsnorm x", gx)) tol_cmp("res_rmsnorm x = x + r", gx, rx, M * D, 0, 0, 0, 0);
    if (gb_get(&c, &by, "res_rmsnorm y", gy)) tol_cmp("res_rmsnorm y vs CPU RMSNorm (bf16)", gy, ry, M * D, 1, 1, 0, 0);
    /* final norm: no residual, f32 out, in place */
    SF_CHECK_OK(sf_t5_res_rmsnorm_cuda(&c.ctx, M, D, (float *)bx.at, LDX, NULL, 0, dw, 1e-6, bx.at, SF_F32, LDX, &c.err),
                &c.err);
    sf_rmsnorm_cpu(M, D, rx, D, w, 1e-6, ry, D, 1);
    if (gb_get(&c, &bx, "rmsnorm in place", gx)) tol_cmp("rmsnorm f32 in place vs CPU", gx, ry, M * D, 4, 0, 1e-6, 0);
    /* refused: bf16 output aliasing the f32 stream */
    SF_CHECK(sf_t5_res_rmsnorm_cuda(&c.ctx, M, D, (float *)bx.at, LDX, NULL, 0, dw, 1e-6, bx.at, SF_BF16, LDX, &c.err) ==
             SF_E_ARG);
done:
    free(x), free(r), free(w), free(gx), free(gy), free(rx), free(ry);
    cu_close(&c);
}

/* The CPU reference of the bias softmax, P rounded to bf16 as the GPU stores it (masked keys 0). */
static void cpu_softmax(int H, int64_t rows, int64_t q0, int64_t Lk, int64_t nk, const float *S, const int *bucket,
                        int64_t off, const float *pos, float *P) {
    sf_t5_bias_softmax_cpu(H, rows, q0, Lk, nk, S, Lk, bucket, off, pos, P, Lk, 1);
    for (int64_t i = 0; i < (int64_t)H * rows * Lk; i++) P[i] = sf_round_bf16(P[i]);
}

static sf_t5_config t5cfg(int H) {
    sf_t5_config cf = {0};
    cf.num_buckets = 32, cf.max_dist = 128, cf.num_heads = H;
    return cf;
}

/* The bucket table at rel + Lmax − 1 (as t5_cuda.c builds it). */
static int *bucket_table(const sf_t5_config *cf, int64_t Lmax) {
    int *b = malloc(sizeof(int) * (size_t)(2 * Lmax - 1));
    for (int64_t r = -(Lmax - 1); b && r <= Lmax - 1; r++) b[r + Lmax - 1] = sf_t5_bucket(cf, r);
    return b;
}

/* Rows of queries [q0, q0 + rows) over Lk keys, nk of them real, logits spread ±20 (the unscaled T5
 * logits are large), rows ld apart (the gaps must stay untouched). */
static void bias_softmax_case(int H, int ROWS, int64_t Q0, int64_t LK, int64_t LD, int64_t NK, int64_t LMAX) {
    cu c;
    if (!cu_open(&c)) return;
    sf_t5_config cf = t5cfg(H);
    float *S = hrand(H * ROWS * LK, -20, 20, 0), *pos = hrand(32 * H, -3, 3, 1), *ref = calloc(H * ROWS * LK, 4);
    float *got = calloc(H * ROWS * LK, 4);
    int *bt = bucket_table(&cf, LMAX);
    gbuf gs, gp;
    void *db = bt ? dput(&c, bt, sizeof(int) * (2 * LMAX - 1)) : NULL;
    float *dpos = dput(&c, pos, 32 * H * 4);
    if (!S || !pos || !ref || !got || !db || !dpos || !gb_new(&c, &gs, H * ROWS, LK, LD, 4) || !gb_put(&c, &gs, S) ||
        !gb_new(&c, &gp, H * ROWS, LK, LD, 2))
        goto done;
    SF_CHECK_OK(
        sf_t5_bias_softmax_cuda(&c.ctx, H, ROWS, Q0, LK, LD, NK, (float *)gs.at, db, LMAX - 1, dpos, 32, gp.at, &c.err),
        &c.err);
    cpu_softmax(H, ROWS, Q0, LK, NK, S, bt, LMAX - 1, pos, ref);
    if (gb_get(&c, &gp, "bias_softmax P", got)) {
        tol_cmp("bias_softmax P vs sf_t5_bias_softmax_cpu", got, ref, H * ROWS * LK, 1, 1, 0, 0);
        int nz = 0;
        for (int r = 0; r < H * ROWS; r++)
            for (int j = NK; j < LK; j++) nz += got[r * LK + j] != 0.0f;
        SF_CHECK_MSG(nz == 0, "%d masked probabilities not exactly 0", nz);
    }
    /* refused: queries past the bucket table */
    SF_CHECK(sf_t5_bias_softmax_cuda(&c.ctx, H, ROWS, LMAX - ROWS + 1, LK, LD, NK, (float *)gs.at, db, LMAX - 1, dpos,
                                     32, gp.at, &c.err) == SF_E_ARG);
done:
    free(S), free(pos), free(ref), free(got), free(bt);
    cu_close(&c);
}
/* 150 keys (|rel| up to 149: every bucket incl. the far ones), 30 masked: the row in shared memory. */
static void test_bias_softmax_masked(void) { bias_softmax_case(3, 6, 131, 150, 157, 120, 160); }
/* 8200 keys, past T5_SOFTMAX_SMEM_KEYS (8192): the row worked on in place in S. */
static void test_bias_softmax_long_row(void) { bias_softmax_case(1, 2, 8000, 8200, 8208, 8195, 8300); }

/* The whole bias attention of L = 37 tokens (3 heads × 16) from one fused [q | k | v] buffer, in
 * query chunks of 10 (4 chunks, the last short), 7 keys masked, against sf_t5_attention_cpu on the
 * same bf16 q, k, v (f32 P and output: the tolerance covers the GPU's two bf16 roundings). */
static void test_attention_chunks(void) {
    enum { L = 37, NK = 30, H = 3, DH = 16, A = H * DH, LD = 3 * A, LDO = A + 8, CH = 10 };
    cu c;
    if (!cu_open(&c)) return;
    sf_t5_config cf = t5cfg(H);
    float *qkv = hrand(L * LD, -1.5f, 1.5f, 1), *pos = hrand(32 * H, -2, 2, 1), *got = calloc(L * A, 4);
    float *ref = calloc(L * A, 4);
    int *bt = bucket_table(&cf, L);
    gbuf gq, go;
    void *db = bt ? dput(&c, bt, sizeof(int) * (2 * L - 1)) : NULL;
    const size_t ws = (size_t)H * CH * ((L + 7) / 8 * 8); /* H·chunk·Lp */
    float *dpos = dput(&c, pos, 32 * H * 4), *dS = cu_alloc(&c, ws * 4);
    void *dP = cu_alloc(&c, ws * 2);
    if (!qkv || !pos || !got || !ref || !db || !dpos || !dS || !dP || !gb_new(&c, &gq, L, LD, LD, 2) ||
        !gb_put(&c, &gq, qkv) || !gb_new(&c, &go, L, A, LDO, 2))
        goto done;
    const uint16_t *q = (const uint16_t *)gq.at;
    SF_CHECK_OK(sf_t5_attention_cuda(&c.ctx, L, NK, H, DH, q, q + A, q + 2 * A, LD, go.at, LDO, db, L - 1, dpos, 32, dS, dP,
                                     CH, &c.err),
                &c.err);
    SF_CHECK(sf_t5_attention_cpu(L, NK, H, DH, qkv, qkv + A, qkv + 2 * A, LD, ref, A, bt, L - 1, pos, 1) == 0);
    double vmax = 0;
    for (int j = 0; j < L; j++)
        for (int t = 0; t < A; t++) vmax = fmax(vmax, fabs((double)qkv[j * LD + 2 * A + t]));
    if (gb_get(&c, &go, "attention out", got))
        tol_cmp("t5 attention vs sf_t5_attention_cpu (bf16 q, k, v)", got, ref, L * A, 0, 0, 0x1p-8,
            0x1p-8 * vmax + 1e-5);
done:
    free(qkv), free(pos), free(got), free(ref), free(bt);
    cu_close(&c);
}

/* h = ⌊fc1 · gelu_tanh(gate)⌉ from [gate | fc1] rows (strided both ways), gate over [−6, 6] (both
 * tails), against sf_t5_gated_gelu_cpu (double) on the same fused rows, rounded to bf16. */
#ifdef SF_TEST_GPU
#define GELU_ATOL 1.1e-6 /* CUDA tanhf: 2 ulps */
#else
#define GELU_ATOL 3e-7   /* glibc tanhf, as the emulation runs it */
#endif
static void test_gated_gelu(void) {
    enum { M = 7, F = 50, LDG = 2 * F + 6, LDH = F + 4 };
    cu c;
    if (!cu_open(&c)) return;
    float *g = hrand(M * 2 * F, -6, 6, 0), *got = calloc(M * F, 4), *ref = calloc(M * F, 4);
    gbuf gg, gh;
    if (!g || !got || !ref || !gb_new(&c, &gg, M, 2 * F, LDG, 4) || !gb_put(&c, &gg, g) || !gb_new(&c, &gh, M, F, LDH, 2))
        goto done;
    for (int i = 0; i < M * 2 * F; i++)
        if ((i / F) % 2) g[i] = g[i] / 2; /* fc1 in [−3, 3] */
    if (!gb_put(&c, &gg, g)) goto done;
    SF_CHECK_OK(sf_t5_gated_gelu_cuda(&c.ctx, M, F, (const float *)gg.at, LDG, gh.at, LDH, &c.err), &c.err);
    sf_t5_gated_gelu_cpu(M, F, g, 2 * F, g + F, 2 * F, ref, F, 1);
    for (int i = 0; i < M * F; i++) ref[i] = sf_round_bf16(ref[i]);
    if (gb_get(&c, &gh, "gated_gelu h", got)) tol_cmp("gated_gelu vs sf_t5_gated_gelu_cpu", got, ref, M * F, 1, 1, 0, GELU_ATOL);
done:
    free(g), free(got), free(ref);
    cu_close(&c);
}

/* Benchmark weights: bf16 values in [−scale, scale), the same for the same seed, centred. */
static void test_fill_random(void) {
    enum { N = 5000 };
    cu c;
    if (!cu_open(&c)) return;
    float *a = calloc(N, 4), *b = calloc(N, 4);
    gbuf ga, gb;
    if (!a || !b || !gb_new(&c, &ga, 1, N, N, 2) || !gb_new(&c, &gb, 1, N, N, 2)) goto done;
    SF_CHECK_OK(sf_t5_fill_random_cuda(&c.ctx, ga.at, N, 7, 0.25f, &c.err), &c.err);
    SF_CHECK_OK(sf_t5_fill_random_cuda(&c.ctx, gb.at, N, 7, 0.25f, &c.err), &c.err);
    if (!gb_get(&c, &ga, "fill a", a) || !gb_get(&c, &gb, "fill b", b)) goto done;
    SF_CHECK(memcmp(a, b, sizeof(float) * N) == 0);
    double mean = 0;
    int out = 0;
    for (int i = 0; i < N; i++) mean += a[i] / N, out += !(a[i] >= -0.25f && a[i] <= 0.25f);
    SF_CHECK_MSG(out == 0 && fabs(mean) < 0.01 && sf_test_maxabs(a, N) > 0.2, "out of range %d, mean %g", out, mean);
    SF_CHECK_OK(sf_t5_fill_random_cuda(&c.ctx, gb.at, N, 8, 0.25f, &c.err), &c.err);
    if (gb_get(&c, &gb, "fill seed 8", b)) SF_CHECK(memcmp(a, b, sizeof(float) * N) != 0);
done:
    free(a), free(b);
    cu_close(&c);
}

/* sf_gpu_upload_bf16 (common/gpu_host.h: every weight upload of the encoder and the DiT): f32, f16
 * and bf16 sources through a pinned stage, in one piece and in alternating halves (odd lengths, a
 * last half part-filled), and a source long enough for several conversion threads — the device
 * holds exactly sf_f32_to_bf16 of each value. On a GPU the halves' copies really overlap the next
 * conversion, so a half refilled before its copy left would show here. */
static void test_staged_upload(void) {
    cu c;
    if (!cu_open(&c)) return;
    enum { BIG = (1 << 20) + 3 };
    const size_t lens[] = {1, 63, 64, 65, 1000, 1001, BIG}, stages[] = {64, 64, 64, 64, 64, 7, 1 << 18};
    float *f = hrand(BIG, -70000, 70000, 0); /* not bf16-exact: the rounding is exercised; past f16's range */
    uint16_t *h16 = malloc(BIG * 2), *got = malloc(BIG * 2), *want = malloc(BIG * 2), *stage = NULL;
    void *dst = cu_alloc(&c, BIG * 2);
    sf_status st = sf_cuda_host_alloc((void **)&stage, ((size_t)1 << 18) * 2, &c.err);
    SF_CHECK_OK(st, &c.err);
    if (!f || !h16 || !got || !want || !dst || st) goto done;
    for (size_t i = 0; i < BIG; i++) h16[i] = sf_f32_to_f16(f[i] / 4096);
    for (int dt = 0; dt < 3; dt++)
        for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
            const size_t n = lens[t];
            const sf_dtype type = dt == 0 ? SF_F32 : dt == 1 ? SF_F16 : SF_BF16;
            const void *src = dt == 0 ? (const void *)f : (const void *)h16; /* bf16: the f16 bits as bf16 */
            for (size_t i = 0; i < n; i++)
                want[i] = dt == 0 ? sf_f32_to_bf16(f[i]) : dt == 1 ? sf_f32_to_bf16(sf_f16_to_f32(h16[i])) : h16[i];
            memset(got, 0xA5, n * 2);
            if ((st = sf_cuda_memset(&c.ctx, dst, 0x5A, n * 2, &c.err)) ||
                (st = sf_gpu_upload_bf16(&c.ctx, dst, src, type, n, stage, stages[t], &c.err)) ||
                (st = sf_cuda_copy_d2h(&c.ctx, got, dst, n * 2, &c.err))) {
                SF_CHECK_OK(st, &c.err);
                goto done;
            }
            size_t i = 0;
            while (i < n && got[i] == want[i]) i++;
            SF_CHECK_MSG(i == n, "%s source, %zu values, stage %zu: index %zu is %#x, want %#x", sf_dtype_name(type), n,
                         stages[t], i, i < n ? got[i] : 0, i < n ? want[i] : 0);
        }
    SF_CHECK(sf_gpu_upload_bf16(&c.ctx, dst, f, SF_I64, 8, stage, 64, &c.err) == SF_E_UNSUPPORTED);
done:
    sf_cuda_host_free(stage);
    free(f), free(h16), free(got), free(want);
    cu_close(&c);
}

static const sf_test tests[] = {
    {"staged_upload", test_staged_upload},
    {"embed_gather", test_embed_gather},
    {"res_rmsnorm", test_res_rmsnorm},
    {"bias_softmax_masked", test_bias_softmax_masked},
    {"bias_softmax_long_row", test_bias_softmax_long_row},
    {"attention_chunks", test_attention_chunks},
    {"gated_gelu", test_gated_gelu},
    {"fill_random", test_fill_random},
};
SF_TEST_MAIN(tests)
