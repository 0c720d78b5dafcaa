/* gemm.cu — the DiT's linear layer on the GPU: y = x · Wᵀ + b (nn.Linear in bf16 with fp32
 * accumulation), see sf_gemm_cuda in kernels/cuda_ops.h; the CPU contract is kernels/gemm.h.
 * Mirrors torch's bf16 addmm: the bias is copied into y, then cublasGemmEx with beta = 1 adds
 * x·Wᵀ accumulated in fp32 (CUBLAS_COMPUTE_32F) and rounds each output once.
 * Compiled (sm_90a), never executed: tested by tests/unit/test_cuda_kernels.c on a GPU
 * (tests/gpu/check.sh), against sf_gemm_cpu on the same bf16-rounded inputs.
 *
 * Row-major ↔ column-major: cuBLAS sees a row-major (R, C) matrix with row stride ld as a
 * column-major (C, R) matrix with leading dimension ld. So row-major y (M, N) = x (M, K) · Wᵀ is
 * column-major yᵀ (N, M) = W (N, K) · xᵀ (K, M), where
 *   W row-major (N, K), ld K   = column-major (K, N), ld K   → op(A) = T gives (N, K)
 *   x row-major (M, K), ld ldx = column-major (K, M), ld ldx → op(B) = N gives (K, M)
 *   y row-major (M, N), ld ldy = column-major (N, M), ld ldy → C
 * i.e. cublasGemmEx(T, N, m = N, n = M, k = K, A = W, lda = K, B = x, ldb = ldx, C = y, ldc = ldy). */
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

extern "C" sf_status sf_gemm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x,
                                  int64_t ldx, const void *w, const float *bias, void *y, sf_dtype ydt, int64_t ldy,
                                  sf_err *err) {
    sf_status st = SF_OK;
    const float alpha = 1.0f, zero = 0.0f, one = 1.0f;
    cudaDataType_t ctype = CUDA_R_32F;
    SF_CUDA_REQUIRE(ctx && ctx->stream && ctx->cublas, "sf_gemm_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(M >= 0 && N >= 0 && K >= 0, "sf_gemm_cuda: negative size M=%lld N=%lld K=%lld", (long long)M,
                    (long long)N, (long long)K);
    SF_CUDA_REQUIRE(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && ldx <= INT_MAX && ldy <= INT_MAX,
                    "sf_gemm_cuda: size beyond cuBLAS's int range (M=%lld N=%lld K=%lld)", (long long)M, (long long)N,
                    (long long)K);
    SF_CUDA_REQUIRE(ldx >= (K > 0 ? K : 1) && ldy >= (N > 0 ? N : 1), "sf_gemm_cuda: row stride too small (ldx=%lld K=%lld, ldy=%lld N=%lld)",
                    (long long)ldx, (long long)K, (long long)ldy, (long long)N);
    SF_CUDA_REQUIRE(ydt == SF_BF16 || ydt == SF_F32, "sf_gemm_cuda: output dtype %s (want bf16 or f32)",
                    sf_dtype_name(ydt));
    if (M == 0 || N == 0) return SF_OK;
    ctype = ydt == SF_BF16 ? CUDA_R_16BF : CUDA_R_32F;
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
    /* K == 0: x·Wᵀ is zero; cuBLAS then scales C by beta (bias or zeros) — still a defined result. */
    CUBLAS_CHECK(cublasGemmEx(SF_CUDA_BLAS(ctx), CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha, w,
                              CUDA_R_16BF, (int)(K > 0 ? K : 1), x, CUDA_R_16BF, (int)ldx, bias ? &one : &zero, y,
                              ctype, (int)ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return SF_OK;
fail:
    return st;
}
