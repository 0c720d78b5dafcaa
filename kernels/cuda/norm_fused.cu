/* norm_fused.cu — the DiT's row norms fused with what follows them, one warp per row with 16-byte
 * loads (the glue that took a quarter of a forward on the H200 as separate one-block-per-row and
 * elementwise kernels, tests/gpu/RESULTS.md):
 *   sf_ln_mod_cuda        LayerNorm [affine] [+ adaLN modulation]   (SPEC §5.4 a/u, c; §5.9)
 *   sf_res_ln_mod_cuda    the same after the residual add that precedes it (gated or plain)
 *   sf_rmsnorm_rope_cuda  RMSNorm [+ 3-axis RoPE]                   (SPEC §5.5 + §5.6)
 * Same arithmetic and rounding points as the unfused kernels (norm_act.cu, dit_glue.cu); only the
 * order of the row sums differs (a warp butterfly instead of a block tree). Contracts in
 * kernels/cuda_ops.h; CPU references: kernels/norm_rows.h + kernels/modulate.h, kernels/rope.h.
 * Tested by tests/unit/test_cuda_emu.c (host emulation, every make test) and test_cuda_glue (GPU). */
#include "cuda_common.cuh"

#define FUSED_MAXC 8 /* 8-element chunks per lane: rows of up to 32 · 8 · 8 = 2048 values */
#define FUSED_WARPS 8

/* Per-column vectors (LayerNorm affine, modulation, gate, RMSNorm weight, RoPE table) 16 bytes at a time
 * where every one is 16-byte aligned (the DiT's always are): a lane's 8 columns are contiguous, so two
 * float4 loads coalesce across the warp where eight scalar ones each touch 32 sectors (8× the L1
 * traffic of the row itself). Same values either way; sf_fused_norm_vector_loads(0) (--bench glue's A/B)
 * forces the scalar loads. */
static int g_vec_loads = 1;
extern "C" int sf_fused_norm_vector_loads(int on) {
    const int was = g_vec_loads;
    if (on >= 0) g_vec_loads = on != 0;
    return was;
}
static bool al16(const void *p) { return (uintptr_t)p % 16 == 0; }

/* A row's chunks c = lane + 32k (< nc) into v[k][0..8) as floats. */
__device__ __forceinline__ void load_row(const __nv_bfloat16 *x, int nc, int lane, float (&v)[FUSED_MAXC][8]) {
    const bf16x8 *xr = (const bf16x8 *)x;
#pragma unroll
    for (int k = 0; k < FUSED_MAXC; k++) {
        const int c = lane + 32 * k;
        if (c < nc) {
            const bf16x8 t = xr[c];
#pragma unroll
            for (int e = 0; e < 8; e++) v[k][e] = sf_bf(t.h[e]);
        }
    }
}

/* One warp per row r < M. With res (the residual branch's output, row stride ldr) first
 *   x = ⌊ x + ⌊ res · gate ⌉ ⌉   (gate per frame at frame·fstride)   or   x = ⌊ x + res ⌉ (gate NULL),
 * written back to x; then y = ⌊ (x − mean)·rstd [·w + b] ⌉ and with shift/scale
 * y = ⌊ ⌊ y · ⌊1 + scale⌉ ⌉ + shift ⌉ (frame r / S, vectors at frame·fstride). */
static __global__ void __launch_bounds__(32 * FUSED_WARPS) ln_mod_kernel(int64_t M, int D, __nv_bfloat16 *x, int64_t ldx, const __nv_bfloat16 *res,
                                     int64_t ldr, const float *__restrict__ gate, const float *__restrict__ w,
                                     const float *__restrict__ b, float eps, int64_t S, const float *__restrict__ shift,
                                     const float *__restrict__ scale, int64_t fstride, __nv_bfloat16 *y, int64_t ldy,
                                     bool vec) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= M) return; /* whole warps leave together: the shuffles below see full warps */
    const int nc = D >> 3;
    bf16x8 *xr = (bf16x8 *)(x + row * ldx);
    const bf16x8 *rr = res ? (const bf16x8 *)(res + row * ldr) : NULL;
    const int64_t fo = (row / S) * fstride;
    float v[FUSED_MAXC][8];
    if (rr) { /* the residual add of gated_add_kernel / add_kernel, written back */
#pragma unroll
        for (int k = 0; k < FUSED_MAXC; k++) {
            const int c = lane + 32 * k;
            if (c < nc) {
                bf16x8 t = xr[c];
                const bf16x8 u = rr[c];
                float g8[8];
                if (gate) sf_load8f(gate + fo + c * 8, vec, g8);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float add = gate ? sf_round_bf(sf_bf(u.h[e]) * g8[e]) : sf_bf(u.h[e]);
                    t.h[e] = sf_tobf(sf_bf(t.h[e]) + add);
                    v[k][e] = sf_bf(t.h[e]);
                }
                xr[c] = t;
            }
        }
    } else {
        load_row(x + row * ldx, nc, lane, v);
    }
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < FUSED_MAXC; k++)
        if (lane + 32 * k < nc)
#pragma unroll
            for (int e = 0; e < 8; e++) s += v[k][e];
    const float mean = sf_warp_sum(s) / (float)D;
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < FUSED_MAXC; k++)
        if (lane + 32 * k < nc)
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float d = v[k][e] - mean;
                ss += d * d;
            }
    const float rstd = 1.0f / sqrtf(sf_warp_sum(ss) / (float)D + eps);
    bf16x8 *yr = (bf16x8 *)(y + row * ldy);
#pragma unroll
    for (int k = 0; k < FUSED_MAXC; k++) {
        const int c = lane + 32 * k;
        if (c < nc) {
            bf16x8 o;
            float w8[8], b8[8], sc8[8], sh8[8];
            if (w) sf_load8f(w + c * 8, vec, w8);
            if (b) sf_load8f(b + c * 8, vec, b8);
            if (shift) sf_load8f(scale + fo + c * 8, vec, sc8), sf_load8f(shift + fo + c * 8, vec, sh8);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float a = (v[k][e] - mean) * rstd;
                if (w) a = a * w8[e] + (b ? b8[e] : 0.0f);
                if (shift) {
                    const float one_sc = sf_round_bf(1.0f + sc8[e]);
                    const float p = sf_round_bf(sf_round_bf(a) * one_sc);
                    o.h[e] = sf_tobf(p + sh8[e]);
                } else {
                    o.h[e] = sf_tobf(a);
                }
            }
            yr[c] = o;
        }
    }
}

/* One warp per row (token) r < M. y = ⌊ ⌊ x·rs ⌉ · w ⌉, rs = 1/sqrt(mean(x²) + eps); with cs, each
 * head's pairs (2p, 2p+1) are then rotated in fp64 by the angle of pair p's axis and rounded once:
 * time (start_frame + f) for p < n_t, height h for p < n_t + n_h, width otherwise, token r =
 * (f·Hp + h)·Wp + w. A chunk of 8 never straddles a head (d is a multiple of 8). */
static __global__ void __launch_bounds__(32 * FUSED_WARPS) rmsnorm_rope_kernel(int64_t M, int D, const __nv_bfloat16 *x, int64_t ldx,
                                           const float *__restrict__ w, float eps, __nv_bfloat16 *y, int64_t ldy,
                                           int d, int Hp, int Wp, int n_t, int n_h, int64_t start_frame,
                                           const double *__restrict__ cs, bool vec) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= M) return;
    const int nc = D >> 3;
    float v[FUSED_MAXC][8];
    load_row(x + row * ldx, nc, lane, v);
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < FUSED_MAXC; k++)
        if (lane + 32 * k < nc)
#pragma unroll
            for (int e = 0; e < 8; e++) ss += v[k][e] * v[k][e];
    const float rs = 1.0f / sqrtf(sf_warp_sum(ss) / (float)D + eps);
    const int64_t hw = row % ((int64_t)Hp * Wp);
    const int64_t pt = start_frame + row / ((int64_t)Hp * Wp), ph = hw / Wp, pw = hw % Wp; /* (no array: registers) */
    const int half = d >> 1;
    bf16x8 *yr = (bf16x8 *)(y + row * ldy);
#pragma unroll
    for (int k = 0; k < FUSED_MAXC; k++) {
        const int c = lane + 32 * k;
        if (c < nc) {
            bf16x8 o;
            float w8[8];
            if (w) sf_load8f(w + c * 8, vec, w8);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float n = sf_round_bf(v[k][e] * rs);
                o.h[e] = sf_tobf(w ? n * w8[e] : n);
            }
            if (cs) {
#pragma unroll
                for (int e = 0; e < 8; e += 2) {
                    const int p = ((c * 8 + e) % d) >> 1;
                    const int64_t ps = p < n_t ? pt : (p < n_t + n_h ? ph : pw);
                    double t0, t1; /* the pair (cos, sin) */
                    sf_load2d(cs + ((size_t)ps * half + p) * 2, vec, t0, t1);
                    const double re = (double)sf_bf(o.h[e]), im = (double)sf_bf(o.h[e + 1]);
                    o.h[e] = __double2bfloat16(re * t0 - im * t1);
                    o.h[e + 1] = __double2bfloat16(re * t1 + im * t0);
                }
            }
            yr[c] = o;
        }
    }
}

/* Whether a launch loads its vectors 16 bytes at a time: when they are aligned (and vector loads on). */
static bool vec_decide(bool any, bool aligned) {
#ifdef SF_CUDA_EMU /* a launch with vectors that must load them one value at a time (the tests count these) */
    if (any && g_vec_loads && !aligned) sf_emu_count_vector_fallback();
#endif
    return g_vec_loads && aligned;
}
/* ln_mod_kernel's: every vector aligned (NULL counts as aligned), and the frame stride keeps them so (a
 * lane's columns c·8 are already multiples of 8). */
static bool vec_ok(const float *w, const float *b, const float *gate, const float *shift, const float *scale,
                   int64_t fstride) {
    return vec_decide(w || b || gate || shift, al16(w) && al16(b) && al16(gate) && al16(shift) && al16(scale) &&
                                                   (fstride % 4 == 0 || (!gate && !shift)));
}

static sf_status fused_args(const char *op, const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx,
                            const void *y, int64_t ldy, sf_err *err) {
    if (!ctx || !ctx->stream) return sf_fail(err, SF_E_ARG, "%s: CUDA context not initialised", op);
    if (M < 0 || D < 8 || D % 8 || D > 32 * 8 * FUSED_MAXC || ldx < D || ldy < D || ldx % 8 || ldy % 8 ||
        ((uintptr_t)x | (uintptr_t)y) % 16)
        return sf_fail(err, SF_E_ARG,
                       "%s: M=%lld D=%lld ldx=%lld ldy=%lld: needs D a multiple of 8 up to %d, strides multiples of 8, "
                       "16-byte aligned rows",
                       op, (long long)M, (long long)D, (long long)ldx, (long long)ldy, 32 * 8 * FUSED_MAXC);
    if ((M + FUSED_WARPS - 1) / FUSED_WARPS > INT_MAX) return sf_fail(err, SF_E_ARG, "%s: too many rows", op);
    return SF_OK;
}

extern "C" sf_status sf_ln_mod_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx,
                                    const float *w, const float *b, double eps, int64_t S, const float *shift,
                                    const float *scale, int64_t fstride, void *y, int64_t ldy, sf_err *err) {
    sf_status st = fused_args("sf_ln_mod_cuda", ctx, M, D, x, ldx, y, ldy, err);
    if (st != SF_OK) return st;
    SF_CUDA_REQUIRE(!shift == !scale && (!shift || (S >= 1 && fstride >= D)),
                    "sf_ln_mod_cuda: shift and scale go together (S=%lld fstride=%lld)", (long long)S,
                    (long long)fstride);
    if (M == 0) return SF_OK;
    SF_LAUNCH(ln_mod_kernel, (unsigned)((M + FUSED_WARPS - 1) / FUSED_WARPS), 32 * FUSED_WARPS, 0,
              SF_CUDA_STREAM(ctx), M, (int)D, (__nv_bfloat16 *)x, ldx, (const __nv_bfloat16 *)NULL, (int64_t)0,
              (const float *)NULL, w, w ? b : NULL, (float)eps, S > 0 ? S : 1, shift, scale, fstride,
              (__nv_bfloat16 *)y, ldy, vec_ok(w, w ? b : NULL, NULL, shift, scale, fstride));
    CUDA_CHECK_LAUNCH("ln_mod_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_res_ln_mod_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, void *x, int64_t ldx,
                                        const void *res, int64_t ldr, const float *gate, const float *w, const float *b,
                                        double eps, int64_t S, const float *shift, const float *scale, int64_t fstride,
                                        void *y, int64_t ldy, sf_err *err) {
    sf_status st = fused_args("sf_res_ln_mod_cuda", ctx, M, D, x, ldx, y, ldy, err);
    if (st != SF_OK) return st;
    SF_CUDA_REQUIRE(res && ldr >= D && ldr % 8 == 0 && (uintptr_t)res % 16 == 0 && x != y && x != res,
                    "sf_res_ln_mod_cuda: the residual needs its own 16-byte aligned rows (stride %lld) and y != x",
                    (long long)ldr);
    SF_CUDA_REQUIRE(!shift == !scale && (S >= 1 && ((!shift && !gate) || fstride >= D)),
                    "sf_res_ln_mod_cuda: bad frame vectors (S=%lld fstride=%lld)", (long long)S, (long long)fstride);
    if (M == 0) return SF_OK;
    SF_LAUNCH(ln_mod_kernel, (unsigned)((M + FUSED_WARPS - 1) / FUSED_WARPS), 32 * FUSED_WARPS, 0,
              SF_CUDA_STREAM(ctx), M, (int)D, (__nv_bfloat16 *)x, ldx, (const __nv_bfloat16 *)res, ldr, gate, w,
              w ? b : NULL, (float)eps, S, shift, scale, fstride, (__nv_bfloat16 *)y, ldy,
              vec_ok(w, w ? b : NULL, gate, shift, scale, fstride));
    CUDA_CHECK_LAUNCH("ln_mod_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_rmsnorm_rope_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx,
                                          const float *w, double eps, void *y, int64_t ldy, int heads, int d, int Hp,
                                          int Wp, int n_t, int n_h, int64_t start_frame, const double *cs, int max_pos,
                                          sf_err *err) {
    sf_status st = fused_args("sf_rmsnorm_rope_cuda", ctx, M, D, x, ldx, y, ldy, err);
    if (st != SF_OK) return st;
    if (cs) {
        SF_CUDA_REQUIRE(heads > 0 && d > 0 && d % 8 == 0 && (int64_t)heads * d == D && Hp > 0 && Wp > 0 &&
                            M % ((int64_t)Hp * Wp) == 0,
                        "sf_rmsnorm_rope_cuda: bad RoPE shape heads=%d d=%d D=%lld grid %dx%d M=%lld", heads, d,
                        (long long)D, Hp, Wp, (long long)M);
        SF_CUDA_REQUIRE(start_frame >= 0 && start_frame + M / ((int64_t)Hp * Wp) <= max_pos && Hp <= max_pos &&
                            Wp <= max_pos,
                        "sf_rmsnorm_rope_cuda: position past the table (%d positions)", max_pos);
    }
    if (M == 0) return SF_OK;
    SF_LAUNCH(rmsnorm_rope_kernel, (unsigned)((M + FUSED_WARPS - 1) / FUSED_WARPS), 32 * FUSED_WARPS, 0,
              SF_CUDA_STREAM(ctx), M, (int)D, (const __nv_bfloat16 *)x, ldx, w, (float)eps, (__nv_bfloat16 *)y, ldy,
              cs ? d : 8, cs ? Hp : 1, cs ? Wp : 1, n_t, n_h, start_frame, cs, vec_decide(w || cs, al16(w) && al16(cs)));
    CUDA_CHECK_LAUNCH("rmsnorm_rope_kernel");
    return SF_OK;
fail:
    return st;
}
