/* norm_act.cu — the DiT's row norms, activations and adaLN modulation on the GPU, bf16 in/out with
 * fp32 arithmetic (DESIGN §6), in SPEC §5.4's rounding order (see kernels/cuda_ops.h).
 * CPU contracts mirrored: kernels/norm_rows.h (sf_rmsnorm_cpu, sf_layernorm_cpu), kernels/act.h
 * (sf_gelu_tanh_cpu, sf_silu_cpu), kernels/modulate.h (sf_modulate_cpu, sf_gated_add_cpu);
 * reference modules: wan/modules/model.py WanRMSNorm, WanLayerNorm, torch GELU('tanh') / SiLU,
 * CausalWanAttentionBlock's modulation.
 * Compiled (sm_90a), never executed: tested by tests/unit/test_cuda_kernels.c on a GPU
 * (tests/gpu/check.sh) against the CPU contracts and the SPEC rounding order. */
#include "cuda_common.cuh"

#define NORM_THREADS 256 /* one block per row; the DiT's rows are 1536 (5120 for T5) wide */

/* One block per row. y = ⌊ ⌊ x·rs ⌉ · w ⌉, rs = 1 / sqrt(mean(x²) + eps) in fp32 (the reference's
 * x.float().pow(2).mean(-1) + eps, rsqrt, .type_as(x) before the weight multiply). */
static __global__ void rmsnorm_kernel(int64_t D, const __nv_bfloat16 *x, int64_t ldx,
                               const float *__restrict__ w, float eps, __nv_bfloat16 *y, int64_t ldy) {
    __shared__ float shm[32];
    const __nv_bfloat16 *xr = x + (int64_t)blockIdx.x * ldx;
    __nv_bfloat16 *yr = y + (int64_t)blockIdx.x * ldy;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = sf_bf(xr[i]);
        ss += v * v;
    }
    ss = sf_block_sum(ss, shm);
    /* 1/sqrtf (correctly rounded) rather than rsqrtf (approximate): closer to torch.rsqrt. */
    float rs = 1.0f / sqrtf(ss / (float)D + eps);
    /* x and y may be the same buffer: each element is read once above and once here by the same
     * thread before that thread writes it, and the statistic is complete before any write. */
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = sf_round_bf(sf_bf(xr[i]) * rs);
        yr[i] = sf_tobf(w ? v * w[i] : v);
    }
}

/* One block per row; two passes over the row for the statistics (mean, then Σ(x − mean)²), which
 * avoids the cancellation of E[x²] − mean². y = ⌊ (x − mean)·rstd [·w + b] ⌉. */
static __global__ void layernorm_kernel(int64_t D, const __nv_bfloat16 *x, int64_t ldx,
                                 const float *__restrict__ w, const float *__restrict__ b, float eps,
                                 __nv_bfloat16 *y, int64_t ldy) {
    __shared__ float shm[32];
    const __nv_bfloat16 *xr = x + (int64_t)blockIdx.x * ldx;
    __nv_bfloat16 *yr = y + (int64_t)blockIdx.x * ldy;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += sf_bf(xr[i]);
    float mean = sf_block_sum(s, shm) / (float)D;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float d = sf_bf(xr[i]) - mean;
        ss += d * d;
    }
    float rstd = 1.0f / sqrtf(sf_block_sum(ss, shm) / (float)D + eps);
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = (sf_bf(xr[i]) - mean) * rstd;
        if (w) v = v * w[i] + (b ? b[i] : 0.0f);
        yr[i] = sf_tobf(v);
    }
}

__device__ __forceinline__ float gelu_tanh_f(float v) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
}

/* In place; 8 values per 16-byte load where x is 16-byte aligned (vec8: the first n8·8 values),
 * the rest one by one. */
static __global__ void gelu_tanh_kernel(int64_t n, int64_t n8, __nv_bfloat16 *x) {
    const int64_t t0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    bf16x8 *x8 = (bf16x8 *)x;
    for (int64_t c = t0; c < n8; c += step) {
        bf16x8 v = x8[c];
#pragma unroll
        for (int e = 0; e < 8; e++) v.h[e] = sf_tobf(gelu_tanh_f(sf_bf(v.h[e])));
        x8[c] = v;
    }
    for (int64_t i = n8 * 8 + t0; i < n; i += step) x[i] = sf_tobf(gelu_tanh_f(sf_bf(x[i])));
}

static __global__ void silu_kernel(int64_t n, __nv_bfloat16 *x) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = sf_bf(x[i]);
        x[i] = sf_tobf(v / (1.0f + expf(-v)));
    }
}

/* y = ⌊ ⌊ x · ⌊1 + scale⌉ ⌉ + shift ⌉, element i of (F·S, D): row r = i / D, frame f = r / S.
 * The explicit roundings between the steps also keep nvcc from contracting them into an FMA. */
static __global__ void modulate_kernel(int64_t S, int64_t D, int64_t total, const __nv_bfloat16 *x,
                                const float *__restrict__ shift, const float *__restrict__ scale, int64_t fstride,
                                __nv_bfloat16 *y) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / D, c = i - r * D, f = r / S;
        float one_sc = sf_round_bf(1.0f + scale[f * fstride + c]);
        float p = sf_round_bf(sf_bf(x[i]) * one_sc);
        y[i] = sf_tobf(p + shift[f * fstride + c]);
    }
}

/* x = ⌊ x + ⌊ y · gate ⌉ ⌉ (same indexing as modulate_kernel). */
static __global__ void gated_add_kernel(int64_t S, int64_t D, int64_t total, __nv_bfloat16 *x,
                                 const __nv_bfloat16 *__restrict__ y, const float *__restrict__ gate,
                                 int64_t fstride) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / D, c = i - r * D, f = r / S;
        float g = sf_round_bf(sf_bf(y[i]) * gate[f * fstride + c]);
        x[i] = sf_tobf(sf_bf(x[i]) + g);
    }
}

/* Shared checks of the row ops: sizes, strides, grid limit (one block per row). */
static sf_status norm_args(const char *op, const sf_cuda_ctx *ctx, int64_t M, int64_t D, int64_t ldx, int64_t ldy,
                           sf_err *err) {
    if (!ctx || !ctx->stream) return sf_fail(err, SF_E_ARG, "%s: CUDA context not initialised", op);
    if (M < 0 || D < 1 || ldx < D || ldy < D)
        return sf_fail(err, SF_E_ARG, "%s: bad shape M=%lld D=%lld ldx=%lld ldy=%lld", op, (long long)M, (long long)D,
                       (long long)ldx, (long long)ldy);
    if (M > INT_MAX) return sf_fail(err, SF_E_ARG, "%s: %lld rows exceed the grid limit", op, (long long)M);
    return SF_OK;
}

extern "C" sf_status sf_rmsnorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx,
                                     const float *w, double eps, void *y, int64_t ldy, sf_err *err) {
    sf_status st = norm_args("sf_rmsnorm_cuda", ctx, M, D, ldx, ldy, err);
    if (st != SF_OK) return st;
    if (M == 0) return SF_OK;
    SF_LAUNCH(rmsnorm_kernel, (unsigned)M, NORM_THREADS, 0, SF_CUDA_STREAM(ctx), D, (const __nv_bfloat16 *)x, ldx, w,
                                                                          (float)eps, (__nv_bfloat16 *)y, ldy);
    CUDA_CHECK_LAUNCH("rmsnorm_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_layernorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx,
                                       const float *w, const float *b, double eps, void *y, int64_t ldy,
                                       sf_err *err) {
    sf_status st = norm_args("sf_layernorm_cuda", ctx, M, D, ldx, ldy, err);
    if (st != SF_OK) return st;
    if (M == 0) return SF_OK;
    SF_LAUNCH(layernorm_kernel, (unsigned)M, NORM_THREADS, 0, SF_CUDA_STREAM(ctx),
        D, (const __nv_bfloat16 *)x, ldx, w, w ? b : NULL, (float)eps, (__nv_bfloat16 *)y, ldy);
    CUDA_CHECK_LAUNCH("layernorm_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_gelu_tanh_cuda(const sf_cuda_ctx *ctx, void *x, int64_t n, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_gelu_tanh_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(n >= 0, "sf_gelu_tanh_cuda: negative length %lld", (long long)n);
    if (n == 0) return SF_OK;
    {
        const int64_t n8 = (uintptr_t)x % 16 == 0 ? n / 8 : 0;
        SF_LAUNCH(gelu_tanh_kernel, sf_cuda_blocks(n8 > 0 ? n8 : n, 256), 256, 0, SF_CUDA_STREAM(ctx), n, n8,
                  (__nv_bfloat16 *)x);
    }
    CUDA_CHECK_LAUNCH("gelu_tanh_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_silu_cuda(const sf_cuda_ctx *ctx, void *x, int64_t n, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_silu_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(n >= 0, "sf_silu_cuda: negative length %lld", (long long)n);
    if (n == 0) return SF_OK;
    SF_LAUNCH(silu_kernel, sf_cuda_blocks(n, 256), 256, 0, SF_CUDA_STREAM(ctx), n, (__nv_bfloat16 *)x);
    CUDA_CHECK_LAUNCH("silu_kernel");
    return SF_OK;
fail:
    return st;
}

/* Shared checks of the per-frame ops; *total = F·S·D. */
static sf_status frame_args(const char *op, const sf_cuda_ctx *ctx, int F, int64_t S, int64_t D, int64_t fstride,
                            int64_t *total, sf_err *err) {
    if (!ctx || !ctx->stream) return sf_fail(err, SF_E_ARG, "%s: CUDA context not initialised", op);
    if (F < 0 || S < 0 || D < 1 || fstride < D || (S > 0 && F > INT64_MAX / S) ||
        (F > 0 && S > 0 && (int64_t)F * S > INT64_MAX / D))
        return sf_fail(err, SF_E_ARG, "%s: bad shape F=%d S=%lld D=%lld fstride=%lld", op, F, (long long)S,
                       (long long)D, (long long)fstride);
    *total = (int64_t)F * S * D;
    return SF_OK;
}

extern "C" sf_status sf_modulate_cuda(const sf_cuda_ctx *ctx, int F, int64_t S, int64_t D, const void *x,
                                      const float *shift, const float *scale, int64_t fstride, void *y,
                                      sf_err *err) {
    int64_t total = 0;
    sf_status st = frame_args("sf_modulate_cuda", ctx, F, S, D, fstride, &total, err);
    if (st != SF_OK) return st;
    if (total == 0) return SF_OK;
    SF_LAUNCH(modulate_kernel, sf_cuda_blocks(total, 256), 256, 0, SF_CUDA_STREAM(ctx),
        S, D, total, (const __nv_bfloat16 *)x, shift, scale, fstride, (__nv_bfloat16 *)y);
    CUDA_CHECK_LAUNCH("modulate_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_gated_add_cuda(const sf_cuda_ctx *ctx, int F, int64_t S, int64_t D, void *x, const void *y,
                                       const float *gate, int64_t fstride, sf_err *err) {
    int64_t total = 0;
    sf_status st = frame_args("sf_gated_add_cuda", ctx, F, S, D, fstride, &total, err);
    if (st != SF_OK) return st;
    if (total == 0) return SF_OK;
    SF_LAUNCH(gated_add_kernel, sf_cuda_blocks(total, 256), 256, 0, SF_CUDA_STREAM(ctx),
        S, D, total, (__nv_bfloat16 *)x, (const __nv_bfloat16 *)y, gate, fstride);
    CUDA_CHECK_LAUNCH("gated_add_kernel");
    return SF_OK;
fail:
    return st;
}
