/* attn_blas.cu — explicit multi-head attention on the GPU: S = Q·Kᵀ·scale through cuBLAS strided
 * batched GEMMs (fp32 logits), P = row softmax (bf16, dit_glue.cu), O = P·V (fp32 accumulate, bf16
 * out), in query chunks so the logits buffer stays bounded. This is the attention-tap path (the
 * logits of each chunk are handed to a callback before the softmax) and the fallback when cuDNN's
 * fused attention is unavailable. Contract: kernels/cuda_ops.h (sf_attention_blas_cuda); CPU
 * reference: kernels/attention.h (sf_attention_cpu). Tested on a GPU by test_cuda_kernels.
 *
 * Row-major ↔ cuBLAS column-major (see gemm.cu): per head h (features [h·d, (h+1)·d)),
 *   Sᵀ (Lk, rows) = K_h (Lk, d) · Q_hᵀ          → gemm(T, N, Lk, rows, d; K_h ld ldk; Q_h ld ldq; S ld Lk)
 *   Oᵀ (d, rows)  = V_hᵀ (d, Lk) · P_hᵀ (Lk, rows) → gemm(N, N, d, rows, Lk; V_h ld ldk; P ld Lk; O ld ldo)
 * with the head as the batch index (strides d, d, rows·Lk). */
#include "cuda_common.cuh"

extern "C" sf_status sf_attention_blas_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int H, int d,
                                            const void *q, int64_t ldq, const void *k, const void *v, int64_t ldk,
                                            void *o, int64_t ldo, float scale, float *S, void *P, int64_t chunk,
                                            sf_attn_logits_fn on_logits, void *cb_ctx, sf_err *err) {
    sf_status st = SF_OK;
    const float one = 1.0f, zero = 0.0f;
    SF_CUDA_REQUIRE(ctx && ctx->stream && ctx->cublas, "sf_attention_blas_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(Lq >= 0 && Lk >= 1 && H >= 1 && d >= 1 && chunk >= 1 && ldq >= (int64_t)H * d &&
                        ldk >= (int64_t)H * d && ldo >= (int64_t)H * d,
                    "sf_attention_blas_cuda: bad shape Lq=%lld Lk=%lld H=%d d=%d", (long long)Lq, (long long)Lk, H, d);
    SF_CUDA_REQUIRE(Lk <= INT_MAX && chunk * Lk <= INT_MAX && ldq <= INT_MAX && ldk <= INT_MAX && ldo <= INT_MAX,
                    "sf_attention_blas_cuda: sizes beyond cuBLAS's int range (Lk=%lld chunk=%lld)", (long long)Lk,
                    (long long)chunk);
    for (int64_t r0 = 0; r0 < Lq; r0 += chunk) {
        int64_t rows = Lq - r0 < chunk ? Lq - r0 : chunk;
        const __nv_bfloat16 *qc = (const __nv_bfloat16 *)q + r0 * ldq;
        __nv_bfloat16 *oc = (__nv_bfloat16 *)o + r0 * ldo;
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(SF_CUDA_BLAS(ctx), CUBLAS_OP_T, CUBLAS_OP_N, (int)Lk, (int)rows, d,
                                                &scale, k, CUDA_R_16BF, (int)ldk, d, qc, CUDA_R_16BF, (int)ldq, d,
                                                &zero, S, CUDA_R_32F, (int)Lk, rows * Lk, H, CUBLAS_COMPUTE_32F,
                                                CUBLAS_GEMM_DEFAULT));
        if (on_logits && (st = on_logits(cb_ctx, r0, rows, S, err)) != SF_OK) goto fail;
        if ((st = sf_softmax_rows_cuda(ctx, (int64_t)H * rows, Lk, S, Lk, P, Lk, err)) != SF_OK) goto fail;
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(SF_CUDA_BLAS(ctx), CUBLAS_OP_N, CUBLAS_OP_N, d, (int)rows, (int)Lk,
                                                &one, v, CUDA_R_16BF, (int)ldk, d, P, CUDA_R_16BF, (int)Lk,
                                                rows * Lk, &zero, oc, CUDA_R_16BF, (int)ldo, d, H,
                                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    return SF_OK;
fail:
    return st;
}
