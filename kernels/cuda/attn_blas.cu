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

sf_status sf_attention_chunks_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int64_t lds, int H, int d,
                                   const void *q, int64_t ldq, const void *k, const void *v, int64_t ldk, void *o,
                                   int64_t ldo, float alpha, float *S, void *P, int64_t chunk, sf_attn_softmax_fn softmax,
                                   void *cb, sf_err *err) {
    sf_status st = SF_OK;
    for (int64_t r0 = 0; r0 < Lq; r0 += chunk) {
        const int64_t rows = Lq - r0 < chunk ? Lq - r0 : chunk;
        sf_mm m;
        /* Sᵀ (Lk, rows) per head = K_h · Q_hᵀ · alpha, f32, rows lds apart */
        m = sf_mm_head_logits(rows, Lk, H, d, (const __nv_bfloat16 *)q + r0 * ldq, ldq, k, ldk, alpha, S, lds);
        SF_CHECK_STATUS(sf_blaslt_matmul(SF_CUDA_LT(ctx), &m, err));
        SF_CHECK_STATUS(softmax(cb, r0, rows, S, P, err));
        /* Oᵀ (d, rows) per head = V_hᵀ · P_hᵀ, bf16 */
        memset(&m, 0, sizeof m);
        m.transa = 0, m.transb = 0, m.m = d, m.n = rows, m.k = Lk;
        m.A = v, m.at = SF_BF16, m.lda = ldk, m.sa = d;
        m.B = P, m.bt = SF_BF16, m.ldb = lds, m.sb = rows * lds;
        m.D = (__nv_bfloat16 *)o + r0 * ldo, m.dt = SF_BF16, m.ldd = ldo, m.sd = d;
        m.batch = H, m.alpha = 1.0f;
        SF_CHECK_STATUS(sf_blaslt_matmul(SF_CUDA_LT(ctx), &m, err));
    }
    return SF_OK;
fail:
    return st;
}

/* The scaled-dot-product step: the tap sees the logits, then the plain row softmax. */
typedef struct sdp_step {
    const sf_cuda_ctx *ctx;
    int64_t Lk;
    int H;
    sf_attn_logits_fn on_logits;
    void *cb_ctx;
} sdp_step;

static sf_status sdp_softmax(void *c, int64_t r0, int64_t rows, float *S, void *P, sf_err *err) {
    const sdp_step *t = (const sdp_step *)c;
    sf_status st = t->on_logits ? t->on_logits(t->cb_ctx, r0, rows, S, err) : SF_OK;
    return st ? st : sf_softmax_rows_cuda(t->ctx, (int64_t)t->H * rows, t->Lk, S, t->Lk, P, t->Lk, err);
}

extern "C" sf_status sf_attention_blas_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int H, int d,
                                            const void *q, int64_t ldq, const void *k, const void *v, int64_t ldk,
                                            void *o, int64_t ldo, float scale, float *S, void *P, int64_t chunk,
                                            sf_attn_logits_fn on_logits, void *cb_ctx, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream && ctx->lt, "sf_attention_blas_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(Lq >= 0 && Lk >= 1 && H >= 1 && d >= 1 && chunk >= 1 && ldq >= (int64_t)H * d &&
                        ldk >= (int64_t)H * d && ldo >= (int64_t)H * d,
                    "sf_attention_blas_cuda: bad shape Lq=%lld Lk=%lld H=%d d=%d", (long long)Lq, (long long)Lk, H, d);
    {
        sdp_step t = {ctx, Lk, H, on_logits, cb_ctx};
        return sf_attention_chunks_cuda(ctx, Lq, Lk, Lk, H, d, q, ldq, k, v, ldk, o, ldo, scale, S, P, chunk,
                                        sdp_softmax, &t, err);
    }
fail:
    return st;
}
