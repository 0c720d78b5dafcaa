/* gemm.cu — the DiT's linear layers on the GPU: y = x · Wᵀ + b (nn.Linear in bf16 with fp32
 * accumulation), through cuBLASLt (kernels/blaslt_cuda.h); the CPU contract is kernels/gemm.h.
 *   sf_linear_cuda: bf16 bias in the BIAS epilogue (fp32 add before the one rounding: torch's
 *                   addmm) — the DiT's path;
 *   sf_gemm_cuda:   f32 bias copied into y first (rounded to y's dtype), then the product added
 *                   with beta = 1 — one rounding from fp32 as well; also for f32 outputs.
 * Tested by tests/unit/test_cuda_kernels.c on a GPU and test_cuda_emu on the host.
 *
 * Row-major ↔ column-major: cuBLAS sees a row-major (R, C) matrix with row stride ld as a
 * column-major (C, R) matrix with leading dimension ld. So row-major y (M, N) = x (M, K) · Wᵀ is
 * column-major yᵀ (N, M) = W (N, K) · xᵀ (K, M), where
 *   W row-major (N, K), ld K   = column-major (K, N), ld K   → op(A) = T gives (N, K)
 *   x row-major (M, K), ld ldx = column-major (K, M), ld ldx → op(B) = N gives (K, M)
 *   y row-major (M, N), ld ldy = column-major (N, M), ld ldy → D
 * i.e. matmul(T, N, m = N, n = M, k = K, A = W, lda = K, B = x, ldb = ldx, D = y, ldd = ldy). */
#include "cuda_common.cuh"

/* y[r, c] = bias[c] for r < M, c < N (row stride ldy), in y's dtype; the GEMM then adds with beta = 1. */
template <typename T>
__device__ __forceinline__ T bias_cast(float v);
template <>
__device__ __forceinline__ float bias_cast<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 bias_cast<__nv_bfloat16>(float v) { return sf_tobf(v); }

template <typename T>
static __global__ void gemm_bias_fill_kernel(int64_t M, int64_t N, const float *__restrict__ bias, T *__restrict__ y,
                                             int64_t ldy) {
    int64_t total = M * N;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / N, c = i - r * N;
        y[r * ldy + c] = bias_cast<T>(bias[c]);
    }
}

static sf_status linear_args(const char *op, const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, int64_t ldx,
                             int64_t ldy, sf_err *err) {
    if (!ctx || !ctx->stream || !ctx->lt) return sf_fail(err, SF_E_ARG, "%s: CUDA context not initialised", op);
    if (M < 0 || N < 0 || K < 1 || ldx < K || ldy < (N > 0 ? N : 1))
        return sf_fail(err, SF_E_ARG, "%s: bad shape M=%lld N=%lld K=%lld ldx=%lld ldy=%lld", op, (long long)M,
                       (long long)N, (long long)K, (long long)ldx, (long long)ldy);
    return SF_OK;
}

static sf_status linear(const char *op, const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x,
                        int64_t ldx, const void *w, const void *bias, int gelu, void *y, int64_t ldy, sf_err *err) {
    sf_status st = linear_args(op, ctx, M, N, K, ldx, ldy, err);
    if (st != SF_OK || M == 0 || N == 0) return st;
    sf_mm m = sf_mm_linear(M, N, K, x, ldx, w, SF_BF16, y, SF_BF16, ldy);
    m.bias = bias;
    m.gelu = gelu;
    return sf_blaslt_matmul(SF_CUDA_LT(ctx), &m, err);
}

extern "C" sf_status sf_linear_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x,
                                    int64_t ldx, const void *w, const void *bias, void *y, int64_t ldy, sf_err *err) {
    return linear("sf_linear_cuda", ctx, M, N, K, x, ldx, w, bias, 0, y, ldy, err);
}

extern "C" sf_status sf_linear_gelu_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x,
                                         int64_t ldx, const void *w, const void *bias, void *y, int64_t ldy,
                                         sf_err *err) {
    return linear("sf_linear_gelu_cuda", ctx, M, N, K, x, ldx, w, bias, 1, y, ldy, err);
}

extern "C" sf_status sf_gemm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x,
                                  int64_t ldx, const void *w, const float *bias, void *y, sf_dtype ydt, int64_t ldy,
                                  sf_err *err) {
    sf_status st = linear_args("sf_gemm_cuda", ctx, M, N, K, ldx, ldy, err);
    sf_mm m;
    if (st != SF_OK) return st;
    SF_CUDA_REQUIRE(ydt == SF_BF16 || ydt == SF_F32, "sf_gemm_cuda: output dtype %s (want bf16 or f32)",
                    sf_dtype_name(ydt));
    if (M == 0 || N == 0) return SF_OK;
    if (bias) {
        const int threads = 256;
        unsigned blocks = sf_cuda_blocks(M * N, threads);
        if (ydt == SF_BF16)
            SF_LAUNCH(gemm_bias_fill_kernel<__nv_bfloat16>, blocks, threads, 0, SF_CUDA_STREAM(ctx),
                      M, N, bias, (__nv_bfloat16 *)y, ldy);
        else
            SF_LAUNCH(gemm_bias_fill_kernel<float>, blocks, threads, 0, SF_CUDA_STREAM(ctx), M, N, bias, (float *)y, ldy);
        CUDA_CHECK_LAUNCH("gemm_bias_fill_kernel");
    }
    m = sf_mm_linear(M, N, K, x, ldx, w, SF_BF16, y, ydt, ldy);
    m.beta = bias ? 1.0f : 0.0f;
    SF_CHECK_STATUS(sf_blaslt_matmul(SF_CUDA_LT(ctx), &m, err));
    return SF_OK;
fail:
    return st;
}
