/* test_cuda_emu.c — every custom CUDA kernel run on the host through the CPU emulation layer
 * (kernels/cuda/emu/cuda_emu.h: the same .cu files compiled by g++ with -DSF_CUDA_EMU, linked into
 * this binary only) and held to its CPU reference (the emulator's own rules: test_emu_self.c).
 * Runs in every build, with or without nvcc or a GPU (make test). Run one case by name:
 * build/tests/test_cuda_emu rmsnorm_strided.
 *
 * Each op is compared twice where that is meaningful:
 *  - "mirror": the kernel's own arithmetic replayed on the host in the same order (for the block
 *    reductions: per-thread strided partial sums, the xor-butterfly inside each warp, the warp
 *    totals through shared memory, the butterfly again). Same IEEE operations → bit-exact; this is
 *    what catches indexing, coverage and barrier mistakes;
 *  - "cpu": the project's CPU contract (kernels/<op>.h), with the tolerance below.
 * Outputs live between guard elements (poison byte 0xA5) and strided outputs keep their row gaps:
 * both are checked untouched. Inputs are random, bf16-exact where the op reads bf16, never zero.
 * Grid-stride loops are made to wrap by capping the grid (sf_emu_set_max_blocks) in the "_wrap"
 * cases. A failure prints tensor, first bad index, both values, the count, max |Δ| and NMSE. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include "sf_test.h"
#include "device.h"

#include "act.h"
#include "attention.h"
#ifdef SF_TEST_GPU
/* test_cuda_glue: this file against the real CUDA backend on a GPU (tests/gpu/check.sh). The
 * emulator's knobs do nothing there, its self-tests SKIP, and the grid-stride "_wrap" cases run
 * with the GPU's grid cap (they still pass, they just do not wrap). */
static void sf_emu_set_max_blocks(long long n) { (void)n; }
static void sf_emu_reset(void) {}
static unsigned long long sf_emu_launches(void) { return 0; }
static unsigned long long sf_emu_vector_loads(void) { return 0; }
static unsigned long long sf_emu_vector_fallbacks(void) { return 0; }
#else
#include "cuda/emu/sf_emu.h"
#endif
#include "cuda_ops.h"
#include "gemm.h"
#include "modulate.h"
#include "norm_rows.h"
#include "patch.h"
#include "rope.h"
#include "stages/denoise/scheduler.h"
#include "timestep_embed.h"

#include <stdint.h>
#include <sys/mman.h>

/* Tolerance table: pass if ulps(got, ref) ≤ ulps, or |Δ| ≤ atol + rtol·|ref|. ulps count bf16
 * steps for bf16 outputs and f32 steps for f32 outputs. */
enum { T_EXACT, T_NORM_CPU, T_ONE_ULP, T_GELU_CPU, T_FRAME_CPU, T_GEMM_CPU, T_GEMM_GELU, T_BITS, T_SINUS, T_COUNT };
static const struct tol {
    int ulps;
    double rtol, atol;
} TOL[T_COUNT] = {
    /* same IEEE operations in the same order (mirror / SPEC order / pure data movement): exact.
       On a GPU (SF_TEST_GPU) nvcc contracts a·b + c into one FMA (-fmad=true), which the emulation
       (g++ -ffp-contract=off) and the host mirror do not: one ulp there. */
#ifdef SF_TEST_GPU
    [T_EXACT] = {1, 0, 0},
#else
    [T_EXACT] = {0, 0, 0},
#endif
    /* RMSNorm vs sf_rmsnorm_cpu: fp32 tree statistics vs double (rs differs in the last fp32
       bits), and two roundings ⌊⌊x·rs⌉·w⌉ where the CPU rounds x·rs to f32 only: the intermediate
       may land one bf16 step apart, which w can carry into the output: ≤ 2 ulps. */
    [T_NORM_CPU] = {2, 0, 0},
    /* one final rounding of values that differ only in fp32 rounding (LayerNorm statistics fp32 vs
       double; GELU/SiLU tanhf/expf vs double; RoPE rounded f64→f32→bf16 on the CPU vs f64→bf16;
       softmax sum in tree vs sequential order): adjacent bf16 values at most. */
    [T_ONE_ULP] = {1, 0, 0},
    /* GELU vs the double CPU: as above, plus fp32 cancellation in 1 + tanhf(u) for x ≲ −3, where
       tanhf ≈ −1 carries ≤ 2^-25 absolute error, times 0.5·|x| ≤ 2.5: ≤ 1e-7 absolute (tiny
       outputs, many bf16 ulps of themselves). */
    [T_GELU_CPU] = {1, 0, 1e-7},
    /* modulate / gated add vs the f32 contract, which does not round in between (as
       test_cuda_kernels.c): ⌊1+s⌉ and ⌊x·(1+s)⌉ (|·| ≤ 3) each move by ≤ 2^-8·3 before the shift. */
    [T_FRAME_CPU] = {1, 1e-2, 3e-2},
    /* GEMM vs sf_gemm_cpu: the emulated cublasGemmEx sums in k order in fp32, the CPU in its own
       order: K=33, |terms| ≤ 1 → ≲ 33·2^-24 absolute before the single bf16 rounding: 1 ulp. */
    [T_GEMM_CPU] = {1, 0, 1e-5},
    /* GEMM + bias + GELU in one epilogue vs sf_gemm_cpu then the double GELU, one rounding: the GEMM's
       1e-5 (GELU's slope is ≤ 1.13) before a single bf16 rounding: 1 ulp. On a GPU cuBLASLt evaluates
       the tanh in fp32, possibly with the hardware tanh (relative error ≤ 2^-10.9): where GELU is
       tiny (x ≲ −2, 1 + tanh cancels) that is ≤ 0.5·|x|·2^-10.9 ≈ 1e-3 absolute. */
#ifdef SF_TEST_GPU
    [T_GEMM_GELU] = {1, 0, 2e-3},
#else
    [T_GEMM_GELU] = {1, 0, 1e-5},
#endif
    /* explicitly rounded arithmetic (__dmul_rn, __fadd_rn, ...: never contracted): bit for bit, GPU too. */
    [T_BITS] = {0, 0, 0},
    /* timestep sinusoid: the GPU's fp64 cos/sin are within 2 ulp of fp64 (not correctly rounded
       like glibc's), which shows after fp64 → fp32 → bf16 only at a rounding tie: one bf16 step.
       The emulation calls glibc: exact. */
#ifdef SF_TEST_GPU
    [T_SINUS] = {1, 0, 0},
#else
    [T_SINUS] = {0, 0, 0},
#endif
};

#define KT_OPEN_HOOK() (sf_emu_reset(), sf_emu_set_max_blocks(0))
#define KT_CLOSE_HOOK() sf_emu_set_max_blocks(0)
#include "kernel_test.h"

static float rbf(float v) { return sf_round_bf16(v); }
/* double → bf16 with one rounding (round to odd into f32, then to nearest even): the GPU's cvt. */
static float rbf_d(double d) {
    float f = (float)d;
    if ((double)f != d) {
        if (fabs((double)f) > fabs(d)) f = nextafterf(f, 0.0f);
        uint32_t u;
        memcpy(&u, &f, 4);
        u |= 1u;
        memcpy(&f, &u, 4);
    }
    return rbf(f);
}

/* Compare n values with tolerance t; bf16: values are bf16-exact and ulps count bf16 steps. */
static int cmp(const char *what, const float *got, const float *ref, size_t n, int t, int bf16) {
    return tol_cmp(what, got, ref, n, TOL[t].ulps, bf16, TOL[t].rtol, TOL[t].atol);
}

/* ---- the reduction tree of sf_block_sum / sf_block_max (cuda_common.cuh), replayed -------- */
static float warp_reduce(float *v, int is_max) { /* v[32]: xor butterfly, every lane ends equal */
    for (int o = 16; o > 0; o >>= 1) {
        float nv[32];
        for (int l = 0; l < 32; l++) nv[l] = is_max ? fmaxf(v[l], v[l ^ o]) : v[l] + v[l ^ o];
        memcpy(v, nv, sizeof nv);
    }
    return v[0];
}
static float block_reduce(const float *part, int T, int is_max) { /* T a multiple of 32 */
    float w[32], v[32];
    int nw = T / 32;
    for (int i = 0; i < nw; i++) {
        memcpy(v, part + 32 * i, sizeof v);
        w[i] = warp_reduce(v, is_max);
    }
    for (int l = 0; l < 32; l++) v[l] = l < nw ? w[l] : (is_max ? -INFINITY : 0.0f);
    return warp_reduce(v, is_max);
}

/* ---- the emulation is linked (its own rules: test_emu_self.c) ---------------------------- */
/* The binary runs the emulated wrappers (not the real CUDA objects of libsf.a): launches are counted. */
static void test_emu_is_linked(void) {
    EMU_ONLY();
    cu c;
    if (!cu_open(&c)) return;
    unsigned long long n0 = sf_emu_launches();
    float one = 1.5f;
    void *x = cu_put(&c, &one, 1, 1);
    if (x) SF_CHECK_OK(sf_silu_cuda(&c.ctx, x, 1, &c.err), &c.err);
    SF_CHECK(sf_emu_launches() == n0 + 1);
    cu_close(&c);
}

/* ---- strided device → host copies (cuda_common.cu) -------------------------------------------- */
/* sf_cuda_copy_d2h_2d: rows land at the host pitch and the gaps between them stay untouched, also with a
 * host pitch beyond CUDA's 2D-copy limit (2^31 − 1 bytes: a logits tap of a very long key window), which
 * cudaMemcpy2D refuses and the helper copies row by row. The large host range is reserved with mmap, never
 * touched but for its rows. */
static void test_copy_d2h_2d_pitches(void) {
    enum { R = 3, W = 48, DP = 64 };
    cu c;
    if (!cu_open(&c)) return;
    unsigned char src[R * DP];
    for (int i = 0; i < R * DP; i++) src[i] = (unsigned char)(i * 7 + 1);
    void *d = cu_alloc(&c, sizeof src);
    if (d) SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, d, src, sizeof src, &c.err), &c.err);
    const size_t pitches[2] = {100, (size_t)2147483647 + 129};
    for (int k = 0; k < 2 && d; k++) {
        const size_t hp = pitches[k], span = (R - 1) * hp + W + 16;
        unsigned char *h = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (h == MAP_FAILED) { /* strict overcommit or a ulimit -v: the machine's limit, not the code's */
            printf("# host pitch %zu not tried: no %zu bytes of address space here (mmap)\n", hp, span);
            SF_CHECK_MSG(k == 1, "mmap of %zu bytes", span);
            continue;
        }
        for (int r = 0; r < R; r++) memset(h + r * hp, 0xA5, W + 16);
        SF_CHECK_OK(sf_cuda_copy_d2h_2d(&c.ctx, h, hp, d, DP, W, R, &c.err), &c.err);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < W + 16; i++) {
                const unsigned want = i < W ? src[r * DP + i] : 0xA5, got = h[r * hp + i];
                if (got != want) {
                    SF_CHECK_MSG(0, "host pitch %zu: row %d byte %d = %#x, want %#x", hp, r, i, got, want);
                    r = R;
                    break;
                }
            }
        munmap(h, span);
    }
    cu_close(&c);
}

/* ---- refused allocations (cuda_common.cu) ----------------------------------------------------- */
/* More device or pinned memory than there is: SF_E_NOMEM (a caller may retry smaller, --low-memory),
 * not SF_E_DEVICE (a lost context), with the size in one line; NULL back; the refusal is not sticky. */
static void test_alloc_refusals(void) {
    EMU_ONLY();
    cu c;
    if (!cu_open(&c)) return;
    void *p = (void *)1;
    sf_status s = sf_cuda_malloc(&p, (size_t)3 << 30, &c.err);
    SF_CHECK_MSG(s == SF_E_NOMEM && !p && strstr(c.err.msg, "3221225472 bytes") && !strchr(c.err.msg, '\n'),
                 "device: %s: %s", sf_status_str(s), c.err.msg);
    p = (void *)1;
    s = sf_cuda_host_alloc(&p, (size_t)1 << 39, &c.err);
    SF_CHECK_MSG(s == SF_E_NOMEM && !p && strstr(c.err.msg, "cudaMallocHost of 549755813888 bytes") && !strchr(c.err.msg, '\n'),
                 "pinned: %s: %s", sf_status_str(s), c.err.msg);
    float one = 1.5f;
    void *x = cu_put(&c, &one, 1, 1);
    if (x) SF_CHECK_OK(sf_silu_cuda(&c.ctx, x, 1, &c.err), &c.err);
    if (x) SF_CHECK_OK(sf_cuda_sync(&c.ctx, &c.err), &c.err);
    cu_close(&c);
}

/* ---- bf16 conversions (dit_glue.cu) ---------------------------------------------------------- */
static void test_f32_to_bf16(void) {
    enum { N = 4099 };
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(N, -3, 3, 0), *got = hzalloc(N), *ref = hzalloc(N);
    uint32_t special[] = {0x3f808000u /* tie → even */, 0x3f818000u /* tie → up */, 0x7f7fffffu /* → inf */,
                          0x00000001u /* subnormal */,  0x807fffffu, 0x7f800000u, 0xff800000u, 0x80000000u};
    for (size_t i = 0; i < sizeof special / 4; i++) memcpy(&x[i * 97], &special[i], 4);
    for (int i = 0; i < N; i++) ref[i] = sf_bf16_to_f32(sf_f32_to_bf16(x[i]));
    gbuf y;
    float *dx = cu_put(&c, x, N, 0);
    sf_emu_set_max_blocks(3); /* 17 blocks' worth of work on 3: every thread loops 5-6 times */
    if (!dx || !gb_new(&c, &y, 1, N, N, 2)) goto done;
    SF_CHECK_OK(sf_f32_to_bf16_cuda(&c.ctx, dx, y.at, N, &c.err), &c.err);
    if (gb_get(&c, &y, "f32_to_bf16", got)) cmp("f32_to_bf16 vs sf_f32_to_bf16", got, ref, N, T_EXACT, 1);
    /* NaN: the GPU's canonical 0x7FFF (the project's sf_f32_to_bf16 keeps the payload) */
    float qnan = NAN;
    uint16_t b = 0;
    void *dn = cu_put(&c, &qnan, 1, 0), *db = cu_alloc(&c, 2);
    if (dn && db) {
        SF_CHECK_OK(sf_f32_to_bf16_cuda(&c.ctx, dn, db, 1, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, &b, db, 2, &c.err), &c.err);
        SF_CHECK_MSG(b == 0x7fff, "NaN → %#06x, want 0x7fff", b);
    }
done:
    free(x), free(got), free(ref);
    cu_close(&c);
}

static void test_bf16_to_f32_and_add_wrap(void) {
    enum { N = 5003 };
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(N, -4, 4, 1), *y = hrand(N, -4, 4, 1), *got = hzalloc(N), *ref = hzalloc(N);
    gbuf o, s;
    sf_emu_set_max_blocks(2);
    void *dy = cu_put(&c, y, N, 1);
    if (!dy || !gb_new(&c, &o, 1, N, N, 4) || !gb_new(&c, &s, 1, N, N, 2) || !gb_put(&c, &s, x)) goto done;
    SF_CHECK_OK(sf_bf16_to_f32_cuda(&c.ctx, dy, (float *)o.at, N, &c.err), &c.err);
    if (gb_get(&c, &o, "bf16_to_f32", got)) cmp("bf16_to_f32", got, y, N, T_EXACT, 0);
    SF_CHECK_OK(sf_add_cuda(&c.ctx, s.at, dy, N, &c.err), &c.err); /* in place */
    for (int i = 0; i < N; i++) ref[i] = rbf(x[i] + y[i]);
    if (gb_get(&c, &s, "add", got)) cmp("add vs ⌊x + y⌉", got, ref, N, T_EXACT, 1);
done:
    free(x), free(y), free(got), free(ref);
    cu_close(&c);
}

/* ---- norms --------------------------------------------------------------------------------- */
static void norm_case(int layer, int64_t M, int64_t D, int64_t ldx, int64_t ldy, int affine, int inplace) {
    enum { T = 256 };
    cu c;
    if (!cu_open(&c)) return;
    size_t n = (size_t)(M * D);
    float *x = hrand(n, -3, 3, 1), *w = hrand((size_t)D, 0.5f, 1.5f, 0), *b = hrand((size_t)D, -0.5f, 0.5f, 0);
    float *mir = hzalloc(n), *cpu = hzalloc(n), *got = hzalloc(n);
    const double eps = 1e-6;
    gbuf gx, gy;
    if (inplace) ldy = ldx;
    /* mirror: the kernel's arithmetic in its order */
    for (int64_t r = 0; r < M; r++) {
        const float *xr = x + r * D;
        float part[T], part2[T];
        for (int t = 0; t < T; t++) {
            float s = 0.0f;
            for (int64_t i = t; i < D; i += T) s += layer ? xr[i] : xr[i] * xr[i];
            part[t] = s;
        }
        float s = block_reduce(part, T, 0);
        if (!layer) {
            float rs = 1.0f / sqrtf(s / (float)D + (float)eps);
            for (int64_t i = 0; i < D; i++) {
                float v = rbf(xr[i] * rs);
                mir[r * D + i] = rbf(affine ? v * w[i] : v);
            }
        } else {
            float mean = s / (float)D;
            for (int t = 0; t < T; t++) {
                float ss = 0.0f;
                for (int64_t i = t; i < D; i += T) {
                    float d = xr[i] - mean;
                    ss += d * d;
                }
                part2[t] = ss;
            }
            float rstd = 1.0f / sqrtf(block_reduce(part2, T, 0) / (float)D + (float)eps);
            for (int64_t i = 0; i < D; i++) {
                float v = (xr[i] - mean) * rstd;
                if (affine) v = v * w[i] + b[i];
                mir[r * D + i] = rbf(v);
            }
        }
    }
    if (layer) sf_layernorm_cpu(M, D, x, D, affine ? w : NULL, affine ? b : NULL, eps, cpu, D, 1);
    else sf_rmsnorm_cpu(M, D, x, D, affine ? w : NULL, eps, cpu, D, 1);
    for (size_t i = 0; i < n; i++) cpu[i] = rbf(cpu[i]);
    if (!gb_new(&c, &gx, M, D, ldx, 2) || !gb_put(&c, &gx, x)) goto done;
    if (inplace) gy = gx;
    else if (!gb_new(&c, &gy, M, D, ldy, 2)) goto done;
    float *dw = cu_put(&c, w, (size_t)D, 0), *db = cu_put(&c, b, (size_t)D, 0);
    if (!dw || !db) goto done;
    sf_status st = layer ? sf_layernorm_cuda(&c.ctx, M, D, gx.at, ldx, affine ? dw : NULL, affine ? db : NULL, eps, gy.at, ldy, &c.err)
                         : sf_rmsnorm_cuda(&c.ctx, M, D, gx.at, ldx, affine ? dw : NULL, eps, gy.at, ldy, &c.err);
    SF_CHECK_OK(st, &c.err);
    if (gb_get(&c, &gy, layer ? "layernorm" : "rmsnorm", got)) {
        cmp(layer ? "layernorm vs mirror" : "rmsnorm vs mirror", got, mir, n, T_EXACT, 1);
        cmp(layer ? "layernorm vs sf_layernorm_cpu" : "rmsnorm vs sf_rmsnorm_cpu", got, cpu, n,
            layer ? T_ONE_ULP : T_NORM_CPU, 1);
    }
done:
    free(x), free(w), free(b), free(mir), free(cpu), free(got);
    cu_close(&c);
}
static void test_rmsnorm_strided(void) { norm_case(0, 5, 1536, 1600, 1541, 1, 0); }
static void test_rmsnorm_odd_inplace(void) { norm_case(0, 4, 77, 80, 80, 0, 1); }
static void test_rmsnorm_wide_odd(void) { norm_case(0, 2, 1001, 1001, 1003, 1, 0); }
static void test_layernorm_plain_strided(void) { norm_case(1, 6, 333, 340, 337, 0, 0); }
static void test_layernorm_affine_inplace(void) { norm_case(1, 3, 1536, 1536, 1536, 1, 1); }

/* ---- activations --------------------------------------------------------------------------- */
static void act_case(int gelu, int64_t n, float lo, float hi, long long cap) {
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand((size_t)n, lo, hi, 1), *mir = hzalloc((size_t)n), *cpu = hzalloc((size_t)n), *got = hzalloc((size_t)n);
    const float k = 0.7978845608028654f;
    gbuf g;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        mir[i] = rbf(gelu ? 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v))) : v / (1.0f + expf(-v)));
    }
    memcpy(cpu, x, (size_t)n * 4);
    if (gelu) sf_gelu_tanh_cpu(cpu, n);
    else sf_silu_cpu(cpu, n);
    for (int64_t i = 0; i < n; i++) cpu[i] = rbf(cpu[i]);
    sf_emu_set_max_blocks(cap);
    if (!gb_new(&c, &g, 1, n, n, 2) || !gb_put(&c, &g, x)) goto done;
    SF_CHECK_OK(gelu ? sf_gelu_tanh_cuda(&c.ctx, g.at, n, &c.err) : sf_silu_cuda(&c.ctx, g.at, n, &c.err), &c.err);
    if (gb_get(&c, &g, gelu ? "gelu" : "silu", got)) {
        cmp(gelu ? "gelu_tanh vs mirror" : "silu vs mirror", got, mir, (size_t)n, T_EXACT, 1);
        cmp(gelu ? "gelu_tanh vs sf_gelu_tanh_cpu" : "silu vs sf_silu_cpu", got, cpu, (size_t)n, gelu ? T_GELU_CPU : T_ONE_ULP, 1);
    }
done:
    free(x), free(mir), free(cpu), free(got);
    cu_close(&c);
}
static void test_gelu_tanh(void) { act_case(1, 1000, -5, 5, 0); }
static void test_gelu_tanh_wrap(void) { act_case(1, 10007, -5, 5, 7); }
static void test_silu_wrap(void) { act_case(0, 4099, -8, 8, 3); }

/* ---- modulation (norm_act.cu) and the modulation table (dit_glue.cu) ------------------------ */
static void frame_case(int gated, long long cap) {
    enum { F = 3, S = 5, D = 70 };
    const int64_t n = (int64_t)F * S * D, fstride = 6 * D;
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand((size_t)n, -2, 2, 1), *y = hrand((size_t)n, -2, 2, 1), *E = hrand((size_t)(F * fstride), -0.5f, 0.5f, 1);
    float *spec = hzalloc((size_t)n), *cpu = hzalloc((size_t)n), *got = hzalloc((size_t)n);
    const float *shift = E, *scale = E + D, *gate = E + 2 * D;
    gbuf o;
    for (int64_t i = 0; i < n; i++) {
        int64_t f = i / (S * D), k = i % D;
        spec[i] = gated ? rbf(x[i] + rbf(y[i] * gate[f * fstride + k]))
                        : rbf(rbf(x[i] * rbf(1.0f + scale[f * fstride + k])) + shift[f * fstride + k]);
    }
    if (gated) {
        memcpy(cpu, x, (size_t)n * 4);
        sf_gated_add_cpu(F, S, D, cpu, y, gate, fstride);
    } else {
        sf_modulate_cpu(F, S, D, x, shift, scale, fstride, cpu);
    }
    sf_emu_set_max_blocks(cap);
    float *dE = cu_put(&c, E, (size_t)(F * fstride), 0);
    void *dy = cu_put(&c, y, (size_t)n, 1), *dx = cu_put(&c, x, (size_t)n, 1);
    if (!dE || !dy || !dx || !gb_new(&c, &o, F * S, D, D, 2)) goto done;
    if (gated) {
        if (!gb_put(&c, &o, x)) goto done;
        SF_CHECK_OK(sf_gated_add_cuda(&c.ctx, F, S, D, o.at, dy, dE + 2 * D, fstride, &c.err), &c.err);
    } else {
        SF_CHECK_OK(sf_modulate_cuda(&c.ctx, F, S, D, dx, dE, dE + D, fstride, o.at, &c.err), &c.err);
    }
    if (gb_get(&c, &o, gated ? "gated_add" : "modulate", got)) {
        cmp(gated ? "gated_add vs SPEC order" : "modulate vs SPEC order", got, spec, (size_t)n, T_EXACT, 1);
        cmp(gated ? "gated_add vs sf_gated_add_cpu" : "modulate vs sf_modulate_cpu", got, cpu, (size_t)n, T_FRAME_CPU, 1);
    }
done:
    free(x), free(y), free(E), free(spec), free(cpu), free(got);
    cu_close(&c);
}
static void test_modulate(void) { frame_case(0, 0); }
static void test_modulate_wrap(void) { frame_case(0, 2); }
static void test_gated_add_wrap(void) { frame_case(1, 2); }

static void test_mod_table(void) {
    enum { F = 3, DIM = 37, N = 2 * DIM, LDE = DIM + 3 };
    cu c;
    if (!cu_open(&c)) return;
    float *mod = hrand(N, -1, 1, 0), *e = hrand(F * LDE, -1, 1, 1), *cpu = hzalloc(F * N), *got = hzalloc(F * N);
    gbuf o;
    sf_mod_table_cpu(F, N, mod, e, LDE, DIM, cpu);
    sf_emu_set_max_blocks(1);
    float *dm = cu_put(&c, mod, N, 0);
    void *de = cu_put(&c, e, F * LDE, 1);
    if (!dm || !de || !gb_new(&c, &o, F, N, N, 4)) goto done;
    SF_CHECK_OK(sf_mod_table_cuda(&c.ctx, F, N, dm, de, LDE, DIM, (float *)o.at, &c.err), &c.err);
    if (gb_get(&c, &o, "mod_table", got)) cmp("mod_table vs sf_mod_table_cpu", got, cpu, F * N, T_EXACT, 0);
done:
    free(mod), free(e), free(cpu), free(got);
    cu_close(&c);
}

/* ---- timestep sinusoid and the scheduler's steps (dit_glue.cu) ----------------------------- */
/* 70 frames: two launches (SF_CUDA_TVEC = 64 timesteps per kernel argument), the second partial;
 * fractional and large t (the warped schedule's 937.5…, the context pass's 0). */
static void test_timestep_embed_wrap(void) {
    enum { N = 70, DIM = 256, HALF = DIM / 2 };
    cu c;
    if (!cu_open(&c)) return;
    float t[N], *cpu = hzalloc(N * DIM), *got = hzalloc(N * DIM);
    double fr[HALF], *ref = calloc(N * DIM, sizeof(double));
    gbuf o;
    for (int i = 0; i < N; i++) t[i] = i == 0 ? 0.0f : i == 1 ? 1000.0f : urand(0, 1000);
    for (int j = 0; j < HALF; j++) fr[j] = sf_timestep_freq(j, DIM);
    sf_timestep_embed_cpu(t, N, DIM, ref);
    for (int i = 0; i < N * DIM; i++) cpu[i] = rbf((float)ref[i]); /* the host path's f64 → f32 → bf16 */
    sf_emu_set_max_blocks(3);
    double *dfr = cu_alloc(&c, sizeof fr);
    if (!dfr || !gb_new(&c, &o, N, DIM, DIM, 2)) goto done;
    SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, dfr, fr, sizeof fr, &c.err), &c.err);
    SF_CHECK_OK(sf_timestep_embed_cuda(&c.ctx, t, N, DIM, dfr, o.at, &c.err), &c.err);
    if (gb_get(&c, &o, "timestep_embed", got)) cmp("timestep_embed vs sf_timestep_embed_cpu", got, cpu, N * DIM, T_SINUS, 1);
done:
    free(cpu), free(got), free(ref);
    cu_close(&c);
}

/* flow → x0 (fp64) and re-noising (fp32, two rounded products) on real schedule σ values, in place
 * like the pipeline (x0 over the flow buffer, x over x0): bit for bit the CPU references. */
static void test_scheduler_steps_wrap(void) {
    enum { N = 4099 };
    cu c;
    if (!cu_open(&c)) return;
    sf_scheduler sc;
    sf_err e = {{0}};
    SF_CHECK_OK(sf_scheduler_init(&sc, 5.0, &e), &e);
    const double sx = sf_scheduler_sigma_x0(&sc, 750.0f);
    const float sn = sf_scheduler_sigma_noise(&sc, 500.0f);
    float *xt = hrand(N, -4, 4, 0), *flow = hrand(N, -4, 4, 0), *eps = hrand(N, -4, 4, 0);
    float *x0 = hzalloc(N), *xn = hzalloc(N), *got = hzalloc(N);
    gbuf dx, df, de;
    sf_flow_to_x0_cpu(xt, flow, N, sx, x0);
    sf_add_noise_cpu(x0, eps, N, sn, xn);
    sf_emu_set_max_blocks(2);
    if (!gb_new(&c, &dx, 1, N, N, 4) || !gb_new(&c, &df, 1, N, N, 4) || !gb_new(&c, &de, 1, N, N, 4) ||
        !gb_put(&c, &dx, xt) || !gb_put(&c, &df, flow) || !gb_put(&c, &de, eps))
        goto done;
    SF_CHECK_OK(sf_flow_to_x0_cuda(&c.ctx, (float *)dx.at, (float *)df.at, N, sx, (float *)df.at, &c.err), &c.err);
    if (gb_get(&c, &df, "flow_to_x0", got)) cmp("flow_to_x0 vs sf_flow_to_x0_cpu", got, x0, N, T_BITS, 0);
    SF_CHECK_OK(sf_add_noise_cuda(&c.ctx, (float *)df.at, (float *)de.at, N, sn, (float *)df.at, &c.err), &c.err);
    if (gb_get(&c, &df, "add_noise", got)) cmp("add_noise vs sf_add_noise_cpu", got, xn, N, T_BITS, 0);
done:
    free(xt), free(flow), free(eps), free(x0), free(xn), free(got);
    cu_close(&c);
}

/* ---- RoPE, patchify, unpatchify (dit_glue.cu) ----------------------------------------------- */
static void test_rope_strided(void) {
    enum { F = 2, H = 3, W = 5, HEADS = 2, D = 12, LD = HEADS * D + 5, START = 3, MAXPOS = 16 };
    const int ntok = F * H * W, c2 = D / 2;
    cu c;
    sf_rope_table t = {0};
    if (!cu_open(&c)) return;
    SF_CHECK_OK(sf_rope_table_init(&t, D, MAXPOS, &c.err), &c.err);
    float *x = hrand((size_t)ntok * HEADS * D, -2, 2, 1), *mir = hzalloc((size_t)ntok * HEADS * D);
    float *cpu = hzalloc((size_t)ntok * HEADS * D), *got = hzalloc((size_t)ntok * HEADS * D);
    gbuf g;
    if (!t.cs) goto done;
    for (int tok = 0; tok < ntok; tok++)
        for (int h = 0; h < HEADS; h++)
            for (int j = 0; j < c2; j++) {
                int hw = tok % (H * W);
                int pos = j < t.n_t ? START + tok / (H * W) : (j < t.n_t + t.n_h ? hw / W : hw % W);
                const double *p = t.cs + ((size_t)pos * c2 + j) * 2;
                const float *z = x + (size_t)tok * HEADS * D + h * D + 2 * j;
                double re = z[0], im = z[1];
                mir[(size_t)tok * HEADS * D + h * D + 2 * j] = rbf_d(re * p[0] - im * p[1]);
                mir[(size_t)tok * HEADS * D + h * D + 2 * j + 1] = rbf_d(re * p[1] + im * p[0]);
            }
    memcpy(cpu, x, (size_t)ntok * HEADS * D * 4);
    sf_rope_apply_cpu(&t, cpu, HEADS * D, F, H, W, HEADS, START, 1);
    for (int i = 0; i < ntok * HEADS * D; i++) cpu[i] = rbf(cpu[i]);
    sf_emu_set_max_blocks(1);
    double *dcs = cu_alloc(&c, (size_t)MAXPOS * c2 * 2 * 8);
    if (!dcs || !gb_new(&c, &g, ntok, HEADS * D, LD, 2) || !gb_put(&c, &g, x)) goto done;
    SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, dcs, t.cs, (size_t)MAXPOS * c2 * 2 * 8, &c.err), &c.err);
    SF_CHECK_OK(sf_rope_cuda(&c.ctx, g.at, LD, F, H, W, HEADS, D, t.n_t, t.n_h, START, dcs, MAXPOS, &c.err), &c.err);
    if (gb_get(&c, &g, "rope", got)) {
        cmp("rope vs mirror (f64, one rounding)", got, mir, (size_t)ntok * HEADS * D, T_EXACT, 1);
        cmp("rope vs sf_rope_apply_cpu", got, cpu, (size_t)ntok * HEADS * D, T_ONE_ULP, 1);
        /* Deep Sink's shift of those keys by -DELTA into other strided rows (--sink-rope realign), vs the CPU's */
        enum { DELTA = 11, LD2 = HEADS * D + 3 };
        gbuf g2;
        sf_rope_time_shift_cpu(&t, got, HEADS * D, cpu, HEADS * D, ntok, HEADS, -DELTA, 1);
        for (int i = 0; i < ntok * HEADS * D; i++) cpu[i] = rbf(cpu[i]);
        if (gb_new(&c, &g2, ntok, HEADS * D, LD2, 2)) {
            SF_CHECK_OK(sf_rope_time_shift_cuda(&c.ctx, g.at, LD, g2.at, LD2, ntok, HEADS, D, t.n_t, -DELTA, dcs, MAXPOS,
                                                &c.err), &c.err);
            if (gb_get(&c, &g2, "rope_time_shift", got))
                cmp("rope_time_shift vs sf_rope_time_shift_cpu", got, cpu, (size_t)ntok * HEADS * D, T_ONE_ULP, 1);
        }
    }
done:
    sf_rope_table_free(&t);
    free(x), free(mir), free(cpu), free(got);
    cu_close(&c);
}

static void test_patchify_unpatchify(void) {
    enum { F = 2, C = 3, H = 6, W = 10, PH = 2, PW = 2, NTOK = F * (H / PH) * (W / PW), K = C * PH * PW };
    const size_t n = (size_t)F * C * H * W;
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(n, -3, 3, 0), *O = hrand(n, -3, 3, 1), *cpu = hzalloc(n), *got = hzalloc(n);
    gbuf gp, gy;
    sf_emu_set_max_blocks(2);
    float *dx = cu_put(&c, x, n, 0);
    void *dO = cu_put(&c, O, n, 1);
    if (!dx || !dO || !gb_new(&c, &gp, NTOK, K, K, 2) || !gb_new(&c, &gy, 1, (int64_t)n, (int64_t)n, 4)) goto done;
    sf_patchify_cpu(x, F, C, H, W, PH, PW, cpu);
    for (size_t i = 0; i < n; i++) cpu[i] = rbf(cpu[i]);
    SF_CHECK_OK(sf_patchify_cuda(&c.ctx, dx, F, C, H, W, PH, PW, gp.at, &c.err), &c.err);
    if (gb_get(&c, &gp, "patchify", got)) cmp("patchify vs ⌊sf_patchify_cpu⌉", got, cpu, n, T_EXACT, 1);
    sf_unpatchify_cpu(O, F, C, H, W, PH, PW, cpu);
    SF_CHECK_OK(sf_unpatchify_cuda(&c.ctx, dO, F, C, H, W, PH, PW, (float *)gy.at, &c.err), &c.err);
    if (gb_get(&c, &gy, "unpatchify", got)) cmp("unpatchify vs sf_unpatchify_cpu", got, cpu, n, T_EXACT, 0);
done:
    free(x), free(O), free(cpu), free(got);
    cu_close(&c);
}

/* ---- row softmax (dit_glue.cu) -------------------------------------------------------------- */
/* spike: one logit of 120 per row (at an odd lane, position 13 + 64·r): only a max over every lane
 * keeps exp(s − max) finite. */
static void softmax_case(int64_t rows, int64_t n, int64_t lds, int64_t ldp, int spike) {
    enum { T = 256 };
    cu c;
    if (!cu_open(&c)) return;
    float *s = hrand((size_t)(rows * lds), -6, 6, 0), *mir = hzalloc((size_t)(rows * n));
    for (int64_t r = 0; spike && r < rows; r++) s[r * lds + (13 + 64 * r) % n] = 120.0f;
    float *cpu = hzalloc((size_t)(rows * n)), *got = hzalloc((size_t)(rows * n));
    gbuf gp;
    for (int64_t r = 0; r < rows; r++) {
        const float *sr = s + r * lds;
        float part[T];
        for (int t = 0; t < T; t++) {
            float m = -INFINITY;
            for (int64_t i = t; i < n; i += T) m = fmaxf(m, sr[i]);
            part[t] = m;
        }
        float m = block_reduce(part, T, 1);
        for (int t = 0; t < T; t++) {
            float sum = 0.0f;
            for (int64_t i = t; i < n; i += T) sum += expf(sr[i] - m);
            part[t] = sum;
        }
        float inv = 1.0f / block_reduce(part, T, 0);
        for (int64_t i = 0; i < n; i++) mir[r * n + i] = rbf(expf(sr[i] - m) * inv);
    }
    sf_softmax_rows_cpu(rows, n, s, lds, cpu, n);
    float *ds = cu_put(&c, s, (size_t)(rows * lds), 0);
    if (!ds || !gb_new(&c, &gp, rows, n, ldp, 2)) goto done;
    SF_CHECK_OK(sf_softmax_rows_cuda(&c.ctx, rows, n, ds, lds, gp.at, ldp, &c.err), &c.err);
    if (gb_get(&c, &gp, "softmax", got)) {
        cmp("softmax_rows vs mirror", got, mir, (size_t)(rows * n), T_EXACT, 1);
        cmp("softmax_rows vs sf_softmax_rows_cpu", got, cpu, (size_t)(rows * n), T_ONE_ULP, 1);
    }
done:
    free(s), free(mir), free(cpu), free(got);
    cu_close(&c);
}
static void test_softmax_rows_strided(void) { softmax_case(4, 1000, 1003, 1010, 0); }
static void test_softmax_rows_short(void) { softmax_case(3, 37, 37, 41, 0); }
static void test_softmax_rows_spike(void) { softmax_case(4, 700, 700, 700, 1); }

/* ---- GEMM wrapper (gemm.cu: the bias fill kernel + the row/column-major mapping) ----------- */
static void test_gemm_bias_strided(void) {
    enum { M = 5, N = 7, K = 33, LDX = 40, LDY = 9 };
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(M * K, -1, 1, 1), *w = hrand(N * K, -1, 1, 1), *bias = hrand(N, -1, 1, 1);
    float *cpu = hzalloc(M * N), *got = hzalloc(M * N);
    uint16_t wb[N * K];
    gbuf gx, gy;
    for (int i = 0; i < N * K; i++) wb[i] = sf_f32_to_bf16(w[i]);
    sf_gemm_cpu(M, N, K, x, K, wb, SF_BF16, bias, cpu, N, 1);
    for (int i = 0; i < M * N; i++) cpu[i] = rbf(cpu[i]);
    sf_emu_set_max_blocks(1);
    void *dw = cu_put(&c, w, N * K, 1);
    float *db = cu_put(&c, bias, N, 0);
    if (!dw || !db || !gb_new(&c, &gx, M, K, LDX, 2) || !gb_put(&c, &gx, x) || !gb_new(&c, &gy, M, N, LDY, 2)) goto done;
    SF_CHECK_OK(sf_gemm_cuda(&c.ctx, M, N, K, gx.at, LDX, dw, db, gy.at, SF_BF16, LDY, &c.err), &c.err);
    if (gb_get(&c, &gy, "gemm", got)) cmp("gemm bf16 + bias vs sf_gemm_cpu", got, cpu, M * N, T_GEMM_CPU, 1);
done:
    free(x), free(w), free(bias), free(cpu), free(got);
    cu_close(&c);
}

/* sf_linear_cuda: bf16 bias through the epilogue == sf_gemm_cpu with that bias, one rounding. */
static void test_linear_bias_epilogue(void) {
    enum { M = 6, N = 9, K = 31, LDX = 35, LDY = 12 };
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(M * K, -1, 1, 1), *w = hrand(N * K, -1, 1, 1), *bias = hrand(N, -1, 1, 1);
    float *cpu = hzalloc(M * N), *got = hzalloc(M * N);
    uint16_t wb[N * K];
    gbuf gx, gy;
    for (int i = 0; i < N * K; i++) wb[i] = sf_f32_to_bf16(w[i]);
    sf_gemm_cpu(M, N, K, x, K, wb, SF_BF16, bias, cpu, N, 1);
    for (int i = 0; i < M * N; i++) cpu[i] = rbf(cpu[i]);
    void *dw = cu_put(&c, w, N * K, 1), *db = cu_put(&c, bias, N, 1);
    if (!dw || !db || !gb_new(&c, &gx, M, K, LDX, 2) || !gb_put(&c, &gx, x) || !gb_new(&c, &gy, M, N, LDY, 2)) goto done;
    SF_CHECK_OK(sf_linear_cuda(&c.ctx, M, N, K, gx.at, LDX, dw, db, gy.at, LDY, &c.err), &c.err);
    if (gb_get(&c, &gy, "linear", got)) cmp("linear bf16 + bias epilogue vs sf_gemm_cpu", got, cpu, M * N, T_GEMM_CPU, 1);
done:
    free(x), free(w), free(bias), free(cpu), free(got);
    cu_close(&c);
}

/* sf_linear_gelu_cuda: bias and GELU-tanh in cuBLASLt's epilogue == sf_gemm_cpu with the bias, then
 * the double GELU, one rounding; and against the unfused pair (sf_linear_cuda, then sf_gelu_tanh_cuda),
 * which rounds the product to bf16 before the GELU: that half step of the input (GELU's slope ≤ 1.13)
 * plus a step of the output, element by element. Inputs to ±3: the GELU's curve and its tail. */
static void test_linear_gelu_epilogue(void) {
    enum { M = 7, N = 10, K = 29, LDX = 32, LDY = 13 };
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(M * K, -1, 1, 1), *w = hrand(N * K, -0.6f, 0.6f, 1), *bias = hrand(N, -1, 1, 1);
    float *cpu = hzalloc(M * N), *got = hzalloc(M * N), *two = hzalloc(M * N);
    uint16_t wb[N * K];
    gbuf gx, gy, g2;
    for (int i = 0; i < N * K; i++) wb[i] = sf_f32_to_bf16(w[i]);
    sf_gemm_cpu(M, N, K, x, K, wb, SF_BF16, bias, cpu, N, 1);
    int neg = 0, pos = 0;
    float pre[M * N];
    memcpy(pre, cpu, sizeof pre);
    for (int i = 0; i < M * N; i++) neg += cpu[i] < -1.0f, pos += cpu[i] > 1.0f, cpu[i] = rbf((float)sf_gelu_tanh(cpu[i]));
    SF_CHECK_MSG(neg > 0 && pos > 0, "inputs reach only one side of the GELU (%d below -1, %d above 1)", neg, pos);
    void *dw = cu_put(&c, w, N * K, 1), *db = cu_put(&c, bias, N, 1);
    if (!dw || !db || !gb_new(&c, &gx, M, K, LDX, 2) || !gb_put(&c, &gx, x) || !gb_new(&c, &gy, M, N, LDY, 2) ||
        !gb_new(&c, &g2, M, N, LDY, 2))
        goto done;
    SF_CHECK_OK(sf_linear_gelu_cuda(&c.ctx, M, N, K, gx.at, LDX, dw, db, gy.at, LDY, &c.err), &c.err);
    SF_CHECK_OK(sf_linear_cuda(&c.ctx, M, N, K, gx.at, LDX, dw, db, g2.at, LDY, &c.err), &c.err);
    for (int r = 0; r < M; r++)
        SF_CHECK_OK(sf_gelu_tanh_cuda(&c.ctx, (char *)g2.at + (size_t)r * LDY * 2, N, &c.err), &c.err);
    if (gb_get(&c, &gy, "linear+gelu", got)) {
        cmp("linear + bias + GELU epilogue vs sf_gemm_cpu, GELU", got, cpu, M * N, T_GEMM_GELU, 1);
        int bad = 0;
        if (gb_get(&c, &g2, "linear, gelu", two))
            for (int i = 0; i < M * N; i++) { /* a bf16 step of v: 2^(exponent(v) − 7) */
                const double step_in = ldexp(1.0, ilogbf(pre[i] != 0.0f ? pre[i] : 1e-30f) - 7);
                const double step_out = ldexp(1.0, ilogbf(got[i] != 0.0f ? got[i] : 1e-30f) - 7);
                const double bound = 1.13 * 0.5 * step_in + step_out + TOL[T_GEMM_GELU].atol;
                if (fabs((double)got[i] - (double)two[i]) > bound && !bad++)
                    SF_CHECK_MSG(0, "GELU epilogue vs linear then GELU kernel: [%d] (x %g) %g vs %g, |d| %g > %g", i,
                                 pre[i], got[i], two[i], fabs((double)got[i] - (double)two[i]), bound);
            }
    }
done:
    free(x), free(w), free(bias), free(cpu), free(got), free(two);
    cu_close(&c);
}

/* Explicit attention (attn_blas.cu) in the DiT's interleaved KV-cache layout (row = [k | v]),
 * strided q and o, query chunks with a remainder, against sf_attention_cpu on the same bf16
 * inputs; the logits handed to the tap callback against the CPU's logits. */
typedef struct logit_cap {
    cu *c;
    float *all; /* (H, Lq, Lk) */
    int64_t Lq, Lk;
    int H, calls;
} logit_cap;
static sf_status cap_logits(void *vc, int64_t r0, int64_t rows, const float *S, sf_err *err) {
    logit_cap *lc = vc;
    lc->calls++;
    for (int h = 0; h < lc->H; h++) {
        sf_status st = sf_cuda_copy_d2h(&lc->c->ctx, lc->all + ((int64_t)h * lc->Lq + r0) * lc->Lk,
                                        S + (int64_t)h * rows * lc->Lk, (size_t)(rows * lc->Lk) * sizeof(float), err);
        if (st) return st;
    }
    return SF_OK;
}
static void test_attention_blas_kv_interleaved(void) {
    enum { LQ = 7, LK = 37, H = 2, D = 8, HD = H * D, LDQ = HD + 3, LDKV = 2 * HD, LDO = HD + 5, CHUNK = 3 };
    cu c;
    if (!cu_open(&c)) return;
    float *q = hrand(LQ * HD, -1, 1, 1), *kv = hrand(LK * 2 * HD, -1, 1, 1);
    float *k = hzalloc(LK * HD), *v = hzalloc(LK * HD), *cpu = hzalloc(LQ * HD), *got = hzalloc(LQ * HD);
    float *lcpu = hzalloc(H * LQ * LK), *lgot = hzalloc(H * LQ * LK);
    for (int t = 0; t < LK; t++)
        for (int i = 0; i < HD; i++) k[t * HD + i] = kv[t * 2 * HD + i], v[t * HD + i] = kv[t * 2 * HD + HD + i];
    const float scale = 0.35355339f;
    SF_CHECK(sf_attention_cpu(LQ, LK, H, D, q, HD, k, v, HD, cpu, HD, scale, lcpu, 1) == 0);
    gbuf gq, gkv, go;
    float *S = NULL;
    void *P = NULL;
    logit_cap lc = {&c, lgot, LQ, LK, H, 0};
    if (!gb_new(&c, &gq, LQ, HD, LDQ, 2) || !gb_put(&c, &gq, q) || !gb_new(&c, &gkv, LK, 2 * HD, LDKV, 2) ||
        !gb_put(&c, &gkv, kv) || !gb_new(&c, &go, LQ, HD, LDO, 2))
        goto done;
    S = cu_alloc(&c, sizeof(float) * H * CHUNK * LK);
    P = cu_alloc(&c, 2 * H * CHUNK * LK);
    if (!S || !P) goto done;
    SF_CHECK_OK(sf_attention_blas_cuda(&c.ctx, LQ, LK, H, D, gq.at, LDQ, gkv.at, gkv.at + 2 * HD, LDKV, go.at, LDO,
                                       scale, S, P, CHUNK, cap_logits, &lc, &c.err),
                &c.err);
    SF_CHECK_MSG(lc.calls == 3, "%d logit chunks (want 3 for %d queries in chunks of %d)", lc.calls, LQ, CHUNK);
    /* logits: fp32 sums of bf16 products in another order: ≤ 1e-5 absolute for |q|,|k| ≤ 1, d = 8 */
    sf_test_allclose("attention logits vs CPU", lgot, lcpu, H * LQ * LK, 0, 1e-5);
    /* output: P rounded to bf16 before P·V (flash semantics) and one bf16 rounding of O; the CPU
       stays f32: |Δ| ≤ 2^-8·max|v| + one bf16 step of |o| ≤ 1 → 8e-3 */
    if (gb_get(&c, &go, "attention out", got)) sf_test_allclose("attention out vs CPU", got, cpu, LQ * HD, 0, 8e-3);
done:
    free(q), free(kv), free(k), free(v), free(cpu), free(got), free(lcpu), free(lgot);
    cu_close(&c);
}

/* ---- fused row ops (norm_fused.cu) ---------------------------------------------------------- */
/* LayerNorm [affine] [+ modulation] in one warp per row vs the unfused kernels (layernorm, then
 * modulate: same rounding points, only the row sums run in another order → ≤ 1 ulp, T_ONE_ULP)
 * and vs the CPU LayerNorm followed by SPEC §5.4's modulation (T_FRAME_CPU, as modulate). D = 264:
 * 33 chunks of 8, so lane 0 holds two and the rest one; strided rows; guard bytes. */
static void ln_mod_case(int affine, int modulated) {
    enum { F = 3, S = 5, M = F * S, D = 264, LDX = 272, LDY = 280, FS = 6 * D };
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(M * D, -3, 3, 1), *w = hrand(D, 0.5f, 1.5f, 1), *b = hrand(D, -0.5f, 0.5f, 1);
    float *E = hrand(F * FS, -0.5f, 0.5f, 1), *cpu = hzalloc(M * D), *ref = hzalloc(M * D), *got = hzalloc(M * D);
    const float *shift = E, *scale = E + D;
    gbuf gx, gy, gt;
    sf_layernorm_cpu(M, D, x, D, affine ? w : NULL, affine ? b : NULL, 1e-6, cpu, D, 1);
    for (int r = 0; r < M; r++)
        for (int j = 0; j < D; j++) {
            float a = rbf(cpu[r * D + j]);
            if (modulated) {
                const float *sh = shift + (r / S) * FS, *sc = scale + (r / S) * FS;
                a = rbf(rbf(a * rbf(1.0f + sc[j])) + sh[j]);
            }
            cpu[r * D + j] = a;
        }
    float *dw = cu_put(&c, w, D, 0), *db = cu_put(&c, b, D, 0), *dE = cu_put(&c, E, F * FS, 0);
    if (!dw || !db || !dE || !gb_new(&c, &gx, M, D, LDX, 2) || !gb_put(&c, &gx, x) || !gb_new(&c, &gy, M, D, LDY, 2) ||
        !gb_new(&c, &gt, M, D, D, 2))
        goto done;
    SF_CHECK_OK(sf_ln_mod_cuda(&c.ctx, M, D, gx.at, LDX, affine ? dw : NULL, affine ? db : NULL, 1e-6, S,
                               modulated ? dE : NULL, modulated ? dE + D : NULL, FS, gy.at, LDY, &c.err),
                &c.err);
    SF_CHECK_OK(sf_layernorm_cuda(&c.ctx, M, D, gx.at, LDX, affine ? dw : NULL, affine ? db : NULL, 1e-6, gt.at, D, &c.err),
                &c.err);
    if (modulated) SF_CHECK_OK(sf_modulate_cuda(&c.ctx, F, S, D, gt.at, dE, dE + D, FS, gt.at, &c.err), &c.err);
    if (gb_get(&c, &gy, "ln_mod", got) && gb_get(&c, &gt, "layernorm+modulate", ref)) {
        cmp("ln_mod vs layernorm + modulate kernels", got, ref, M * D, T_ONE_ULP, 1);
        cmp("ln_mod vs CPU LayerNorm + SPEC modulation", got, cpu, M * D, T_FRAME_CPU, 1);
    }
done:
    free(x), free(w), free(b), free(E), free(cpu), free(ref), free(got);
    cu_close(&c);
}
static void test_ln_mod_fused(void) { ln_mod_case(0, 1); }
static void test_ln_affine_fused(void) { ln_mod_case(1, 0); }

/* RMSNorm + RoPE in one warp per row, in place in a strided buffer (the KV cache's [k | v] rows),
 * vs sf_rmsnorm_cuda then sf_rope_cuda. A 1-ulp difference of the normed value (row sums in
 * another order) can move the rotated pair by 1 ulp each: T_NORM_CPU (2 ulps). Without RoPE
 * (cs NULL, no weight) vs sf_rmsnorm_cuda alone: T_ONE_ULP. */
static void test_rmsnorm_rope_fused(void) {
    enum { F = 2, HP = 3, WP = 5, HEADS = 2, D = 16, HD = HEADS * D, LD = 2 * HD, START = 3, MAXPOS = 16 };
    const int M = F * HP * WP;
    cu c;
    sf_rope_table t = {0};
    if (!cu_open(&c)) return;
    SF_CHECK_OK(sf_rope_table_init(&t, D, MAXPOS, &c.err), &c.err);
    float *x = hrand(M * HD, -2, 2, 1), *w = hrand(HD, 0.5f, 1.5f, 1), *ref = hzalloc(M * HD), *got = hzalloc(M * HD);
    gbuf ga, gb;
    double *dcs = cu_alloc(&c, (size_t)MAXPOS * D * 8);
    float *dw = cu_put(&c, w, HD, 0);
    if (!t.cs || !dcs || !dw || !gb_new(&c, &ga, M, HD, LD, 2) || !gb_put(&c, &ga, x) || !gb_new(&c, &gb, M, HD, LD, 2) ||
        !gb_put(&c, &gb, x))
        goto done;
    SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, dcs, t.cs, (size_t)MAXPOS * D * 8, &c.err), &c.err);
    SF_CHECK_OK(sf_rmsnorm_rope_cuda(&c.ctx, M, HD, ga.at, LD, dw, 1e-6, ga.at, LD, HEADS, D, HP, WP, t.n_t, t.n_h,
                                     START, dcs, MAXPOS, &c.err),
                &c.err);
    SF_CHECK_OK(sf_rmsnorm_cuda(&c.ctx, M, HD, gb.at, LD, dw, 1e-6, gb.at, LD, &c.err), &c.err);
    SF_CHECK_OK(sf_rope_cuda(&c.ctx, gb.at, LD, F, HP, WP, HEADS, D, t.n_t, t.n_h, START, dcs, MAXPOS, &c.err), &c.err);
    if (gb_get(&c, &ga, "rmsnorm_rope", got) && gb_get(&c, &gb, "rmsnorm then rope", ref))
        cmp("rmsnorm_rope vs rmsnorm + rope kernels", got, ref, M * HD, T_NORM_CPU, 1);
    /* no RoPE, no weight */
    if (!gb_put(&c, &ga, x) || !gb_put(&c, &gb, x)) goto done;
    SF_CHECK_OK(sf_rmsnorm_rope_cuda(&c.ctx, M, HD, ga.at, LD, NULL, 1e-6, ga.at, LD, 0, 0, 0, 0, 0, 0, 0, NULL, 0,
                                     &c.err),
                &c.err);
    SF_CHECK_OK(sf_rmsnorm_cuda(&c.ctx, M, HD, gb.at, LD, NULL, 1e-6, gb.at, LD, &c.err), &c.err);
    if (gb_get(&c, &ga, "rmsnorm (fused kernel)", got) && gb_get(&c, &gb, "rmsnorm", ref))
        cmp("rmsnorm_rope without rope vs rmsnorm kernel", got, ref, M * HD, T_ONE_ULP, 1);
    /* shapes the fused kernels refuse (callers fall back): D not a multiple of 8 */
    SF_CHECK(sf_ln_mod_cuda(&c.ctx, M, 12, ga.at, LD, NULL, NULL, 1e-6, 1, NULL, NULL, 0, ga.at, LD, &c.err) == SF_E_ARG);
done:
    sf_rope_table_free(&t);
    free(x), free(w), free(ref), free(got);
    cu_close(&c);
}

/* The residual add fused in front of the LayerNorm + modulation: the same as gated_add (gate) or
 * add (no gate) followed by ln_mod — same operations, exact (T_EXACT) for both the updated x and y. */
static void res_ln_case(int gated) {
    enum { F = 2, S = 7, M = F * S, D = 1536, LDX = 1536, LDR = 1544, LDY = 1552, FS = 6 * D };
    cu c;
    if (!cu_open(&c)) return;
    float *x = hrand(M * D, -3, 3, 1), *r = hrand(M * D, -2, 2, 1), *E = hrand(F * FS, -0.5f, 0.5f, 1);
    float *gx = hzalloc(M * D), *gy = hzalloc(M * D), *rx = hzalloc(M * D), *ry = hzalloc(M * D);
    gbuf bx, br, by, cx, cr, cy;
    float *dE = cu_put(&c, E, F * FS, 0);
    const float *gate = dE ? dE + 2 * D : NULL, *shift = dE, *scale = dE ? dE + D : NULL;
    if (!dE || !gb_new(&c, &bx, M, D, LDX, 2) || !gb_put(&c, &bx, x) || !gb_new(&c, &br, M, D, LDR, 2) ||
        !gb_put(&c, &br, r) || !gb_new(&c, &by, M, D, LDY, 2) || !gb_new(&c, &cx, M, D, D, 2) || !gb_put(&c, &cx, x) ||
        !gb_new(&c, &cr, M, D, D, 2) || !gb_put(&c, &cr, r) || !gb_new(&c, &cy, M, D, D, 2))
        goto done;
    SF_CHECK_OK(sf_res_ln_mod_cuda(&c.ctx, M, D, bx.at, LDX, br.at, LDR, gated ? gate : NULL, NULL, NULL, 1e-6, S, shift,
                                   scale, FS, by.at, LDY, &c.err),
                &c.err);
    if (gated) SF_CHECK_OK(sf_gated_add_cuda(&c.ctx, F, S, D, cx.at, cr.at, gate, FS, &c.err), &c.err);
    else SF_CHECK_OK(sf_add_cuda(&c.ctx, cx.at, cr.at, M * D, &c.err), &c.err);
    SF_CHECK_OK(sf_ln_mod_cuda(&c.ctx, M, D, cx.at, D, NULL, NULL, 1e-6, S, shift, scale, FS, cy.at, D, &c.err), &c.err);
    if (gb_get(&c, &bx, "res_ln_mod x", gx) && gb_get(&c, &cx, "gated_add x", rx))
        cmp(gated ? "res_ln_mod x vs gated_add" : "res_ln_mod x vs add", gx, rx, M * D, T_EXACT, 1);
    if (gb_get(&c, &by, "res_ln_mod y", gy) && gb_get(&c, &cy, "ln_mod y", ry))
        cmp("res_ln_mod y vs ln_mod after the add", gy, ry, M * D, T_EXACT, 1);
    SF_CHECK(sf_res_ln_mod_cuda(&c.ctx, M, D, bx.at, LDX, br.at, LDR, NULL, NULL, NULL, 1e-6, S, NULL, NULL, 0, bx.at,
                                LDX, &c.err) == SF_E_ARG); /* y aliasing x is refused */
done:
    free(x), free(r), free(E), free(gx), free(gy), free(rx), free(ry);
    cu_close(&c);
}
static void test_res_ln_mod_gated(void) { res_ln_case(1); }
static void test_res_ln_mod_plain(void) { res_ln_case(0); }

/* The fused row kernels' per-column vectors (affine, modulation, gate, RMSNorm weight, RoPE table) in
 * 16-byte loads and one value at a time give the same bits: default (aligned: vector loads, counted by
 * the emulation), forced scalar (sf_fused_norm_vector_loads(0)), and layouts that must fall back — a
 * modulation table 4 bytes off 16-byte alignment, a frame stride not a multiple of 4 (no vector load
 * then; the emulation faults on a misaligned one). */
static void vec_case_ln(cu *c, int64_t M, int64_t D, int64_t S, const float *x, const float *r, gbuf *bx, gbuf *br,
                        gbuf *by, const float *w, const float *b, const float *gate, const float *shift,
                        const float *scale, int64_t fs, float *out, int expect_vec) {
    const unsigned long long v0 = sf_emu_vector_loads(), fb0 = sf_emu_vector_fallbacks();
    if (!gb_put(c, bx, x) || !gb_put(c, br, r)) return;
    SF_CHECK_OK(sf_res_ln_mod_cuda(&c->ctx, M, D, bx->at, D, br->at, D, gate, w, b, 1e-6, S, shift, scale, fs, by->at,
                                   D, &c->err),
                &c->err);
    float *y = out + M * D;
    if (!gb_get(c, bx, "res_ln_mod x", out) || !gb_get(c, by, "res_ln_mod y", y)) return;
#ifndef SF_TEST_GPU
    if (expect_vec) SF_CHECK_MSG(sf_emu_vector_loads() > v0, "aligned vectors: no 16-byte loads counted");
    else SF_CHECK_MSG(sf_emu_vector_loads() == v0, "%llu 16-byte loads where they must fall back",
                      sf_emu_vector_loads() - v0);
    /* a misaligned layout counts as a fallback; the forced scalar loads do not */
    const unsigned long long fb = sf_emu_vector_fallbacks() - fb0;
    SF_CHECK_MSG(fb == (unsigned long long)(!expect_vec && sf_fused_norm_vector_loads(-1)), "%llu fallbacks counted", fb);
#else
    (void)v0, (void)fb0, (void)expect_vec;
#endif
}
static void test_fused_vector_loads(void) {
    enum { F = 2, S = 5, M = F * S, D = 264, FS = 6 * D, FS2 = 6 * D + 2, HP = 1, WP = 5, HEADS = 3, HD = 88, MAXPOS = 16 };
    cu c;
    sf_rope_table t = {0};
    if (!cu_open(&c)) return;
    float *x = hrand(M * D, -3, 3, 1), *r = hrand(M * D, -2, 2, 1), *w = hrand(D, 0.5f, 1.5f, 1);
    float *b = hrand(D, -0.5f, 0.5f, 1), *E = hrand(F * FS, -0.5f, 0.5f, 1);
    float *E1 = hzalloc(F * FS + 4), *E2 = hzalloc(F * FS2), *got[4];
    for (int i = 0; i < 4; i++) got[i] = hzalloc(2 * M * D);
    for (int i = 0; i < F * FS; i++) E1[1 + i] = E[i];                   /* 4 bytes off alignment */
    for (int f = 0; f < F; f++) memcpy(E2 + f * FS2, E + f * FS, sizeof(float) * FS); /* odd frame stride */
    float *dw = cu_put(&c, w, D, 0), *db = cu_put(&c, b, D, 0), *dE = cu_put(&c, E, F * FS, 0);
    float *dE1 = cu_put(&c, E1, F * FS + 4, 0), *dE2 = cu_put(&c, E2, F * FS2, 0);
    gbuf bx, br, by;
    if (!dw || !db || !dE || !dE1 || !dE2 || !gb_new(&c, &bx, M, D, D, 2) || !gb_new(&c, &br, M, D, D, 2) ||
        !gb_new(&c, &by, M, D, D, 2))
        goto done;
    /* gated residual + modulation (the FFN's end), then gated + affine (norm3) */
    for (int affine = 0; affine < 2; affine++) {
        const float *A = affine ? dw : NULL, *B = affine ? db : NULL;
        const int64_t mod = affine ? 0 : 1; /* modulation only without affine, as the DiT calls them */
        vec_case_ln(&c, M, D, S, x, r, &bx, &br, &by, A, B, dE + 2 * D, mod ? dE : NULL, mod ? dE + D : NULL, FS, got[0], 1);
        const int was = sf_fused_norm_vector_loads(0);
        SF_CHECK(was == 1);
        vec_case_ln(&c, M, D, S, x, r, &bx, &br, &by, A, B, dE + 2 * D, mod ? dE : NULL, mod ? dE + D : NULL, FS, got[1], 0);
        sf_fused_norm_vector_loads(1);
        vec_case_ln(&c, M, D, S, x, r, &bx, &br, &by, A, B, dE1 + 1 + 2 * D, mod ? dE1 + 1 : NULL, mod ? dE1 + 1 + D : NULL,
                    FS, got[2], 0);
        vec_case_ln(&c, M, D, S, x, r, &bx, &br, &by, A, B, dE2 + 2 * D, mod ? dE2 : NULL, mod ? dE2 + D : NULL, FS2,
                    got[3], 0);
        cmp(affine ? "affine: forced scalar loads vs vector" : "modulation: forced scalar loads vs vector", got[1], got[0],
            2 * M * D, T_BITS, 1);
        cmp("misaligned table (scalar fallback) vs vector", got[2], got[0], 2 * M * D, T_BITS, 1);
        cmp("odd frame stride (scalar fallback) vs vector", got[3], got[0], 2 * M * D, T_BITS, 1);
    }
    /* RMSNorm weight + RoPE table */
    SF_CHECK_OK(sf_rope_table_init(&t, HD, MAXPOS, &c.err), &c.err);
    double *dcs = cu_alloc(&c, (size_t)MAXPOS * HD * 8);
    if (!t.cs || !dcs) goto done;
    SF_CHECK_OK(sf_cuda_copy_h2d(&c.ctx, dcs, t.cs, (size_t)MAXPOS * HD * 8, &c.err), &c.err);
    for (int pass = 0; pass < 2; pass++) {
        const unsigned long long v0 = sf_emu_vector_loads();
        sf_fused_norm_vector_loads(pass == 0);
        if (!gb_put(&c, &bx, x)) break;
        SF_CHECK_OK(sf_rmsnorm_rope_cuda(&c.ctx, M, D, bx.at, D, dw, 1e-6, bx.at, D, HEADS, HD, HP, WP, t.n_t, t.n_h, 2, dcs,
                                         MAXPOS, &c.err),
                    &c.err);
        if (!gb_get(&c, &bx, "rmsnorm_rope", got[pass])) break;
#ifndef SF_TEST_GPU
        SF_CHECK_MSG(pass ? sf_emu_vector_loads() == v0 : sf_emu_vector_loads() > v0, "rmsnorm_rope pass %d: %llu 16-byte loads",
                     pass, sf_emu_vector_loads() - v0);
#else
        (void)v0;
#endif
    }
    sf_fused_norm_vector_loads(1);
    cmp("rmsnorm_rope: forced scalar loads vs vector", got[1], got[0], M * D, T_BITS, 1);
done:
    sf_fused_norm_vector_loads(1);
    sf_rope_table_free(&t);
    free(x), free(r), free(w), free(b), free(E), free(E1), free(E2);
    for (int i = 0; i < 4; i++) free(got[i]);
    cu_close(&c);
}

static const sf_test tests[] = {
    {"emu_is_linked", test_emu_is_linked},
    {"copy_d2h_2d_pitches", test_copy_d2h_2d_pitches},
    {"f32_to_bf16", test_f32_to_bf16},
    {"bf16_to_f32_and_add_wrap", test_bf16_to_f32_and_add_wrap},
    {"rmsnorm_strided", test_rmsnorm_strided},
    {"rmsnorm_odd_inplace", test_rmsnorm_odd_inplace},
    {"rmsnorm_wide_odd", test_rmsnorm_wide_odd},
    {"layernorm_plain_strided", test_layernorm_plain_strided},
    {"layernorm_affine_inplace", test_layernorm_affine_inplace},
    {"alloc_refusals", test_alloc_refusals},
    {"gelu_tanh", test_gelu_tanh},
    {"gelu_tanh_wrap", test_gelu_tanh_wrap},
    {"silu_wrap", test_silu_wrap},
    {"modulate", test_modulate},
    {"modulate_wrap", test_modulate_wrap},
    {"gated_add_wrap", test_gated_add_wrap},
    {"mod_table", test_mod_table},
    {"timestep_embed_wrap", test_timestep_embed_wrap},
    {"scheduler_steps_wrap", test_scheduler_steps_wrap},
    {"rope_strided", test_rope_strided},
    {"patchify_unpatchify", test_patchify_unpatchify},
    {"softmax_rows_strided", test_softmax_rows_strided},
    {"softmax_rows_short", test_softmax_rows_short},
    {"softmax_rows_spike", test_softmax_rows_spike},
    {"gemm_bias_strided", test_gemm_bias_strided},
    {"linear_bias_epilogue", test_linear_bias_epilogue},
    {"linear_gelu_epilogue", test_linear_gelu_epilogue},
    {"attention_blas_kv_interleaved", test_attention_blas_kv_interleaved},
    {"ln_mod_fused", test_ln_mod_fused},
    {"ln_affine_fused", test_ln_affine_fused},
    {"rmsnorm_rope_fused", test_rmsnorm_rope_fused},
    {"res_ln_mod_gated", test_res_ln_mod_gated},
    {"res_ln_mod_plain", test_res_ln_mod_plain},
    {"fused_vector_loads", test_fused_vector_loads},
};
SF_TEST_MAIN(tests)
