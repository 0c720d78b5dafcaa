/* t5_glue.cu — the umT5 encoder's kernels on the GPU (contracts: kernels/t5_cuda.h): embedding
 * gather, residual add + T5 RMS norm, relative-position-bias softmax, the whole bias attention
 * (cuBLASLt strided-batched QKᵀ and P·V around the fused softmax, as attn_blas.cu), gated GELU, and
 * a device-side random fill for the full-size benchmark. fp32 arithmetic throughout; bf16 only
 * where a GEMM reads the value.
 * Reference module: wan/modules/t5.py (T5LayerNorm, T5Attention, T5FeedForward) in the fp32 numerics
 * of the golden; CPU references: kernels/t5_ops.h (bias softmax, attention, gated GELU),
 * kernels/norm_rows.h (RMS norm) and stages/encode/t5.c (embedding gather).
 * Tested on the host through the CPU emulation layer (tests/unit/test_t5_glue.c, in `make test`) and
 * on a GPU by the same file built as test_t5_glue_gpu (tests/gpu/check.sh). */
#include "cuda_common.cuh"
#include "t5_cuda.h"

/* Threads for a row kernel over n values: a multiple of 32 in [32, 256], about 8 values per thread
 * (the 4096-wide rows of umT5-XXL get 256; the tiny golden's 64 get 32, which keeps the emulated
 * tests fast). */
static inline int row_threads(int64_t n) {
    int64_t t = ((n + 7) / 8 + 31) / 32 * 32;
    return (int)(t < 32 ? 32 : t > 256 ? 256 : t);
}

/* ---------------------------------------------------------------- embedding */

static __global__ void t5_embed_kernel(int64_t n, int64_t D, const int64_t *__restrict__ ids, int64_t vocab,
                                       const __nv_bfloat16 *__restrict__ table, float *__restrict__ x, int64_t ldx) {
    const int64_t total = n * D;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / D, c = i - r * D, id = ids[r];
        x[r * ldx + c] = id >= 0 && id < vocab ? sf_bf(table[id * D + c]) : NAN;
    }
}

extern "C" sf_status sf_t5_embed_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t D, const int64_t *ids, int64_t vocab,
                                      const void *table, float *x, int64_t ldx, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_t5_embed_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(n >= 0 && D >= 1 && vocab >= 1 && ldx >= D, "sf_t5_embed_cuda: bad shape n=%lld D=%lld ldx=%lld",
                    (long long)n, (long long)D, (long long)ldx);
    if (n == 0) return SF_OK;
    SF_LAUNCH(t5_embed_kernel, sf_cuda_blocks(n * D, 256), 256, 0, SF_CUDA_STREAM(ctx), n, D, ids, vocab,
              (const __nv_bfloat16 *)table, x, ldx);
    CUDA_CHECK_LAUNCH("t5_embed_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- residual + RMS norm */

template <typename T>
__device__ __forceinline__ T t5_out(float v);
template <>
__device__ __forceinline__ float t5_out<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 t5_out<__nv_bfloat16>(float v) { return sf_tobf(v); }

/* One block per row. Each thread owns the columns threadIdx.x + k·blockDim.x in both passes, so the
 * in-place update of x (and y == x) needs no barrier beyond the one inside the block sum. */
template <typename T>
static __global__ void t5_res_rmsnorm_kernel(int64_t D, float *x, int64_t ldx, const float *r, int64_t ldr,
                                             const float *__restrict__ w, float eps, T *y, int64_t ldy) {
    __shared__ float shm[32];
    float *xr = x + (int64_t)blockIdx.x * ldx;
    const float *rr = r ? r + (int64_t)blockIdx.x * ldr : NULL;
    T *yr = y + (int64_t)blockIdx.x * ldy;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = xr[i];
        if (rr) {
            v = v + rr[i];
            xr[i] = v;
        }
        ss += v * v;
    }
    ss = sf_block_sum(ss, shm);
    const float rs = 1.0f / sqrtf(ss / (float)D + eps); /* correctly rounded, not rsqrtf */
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        float v = xr[i] * rs;
        yr[i] = t5_out<T>(v * w[i]);
    }
}

extern "C" sf_status sf_t5_res_rmsnorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, float *x, int64_t ldx,
                                            const float *r, int64_t ldr, const float *w, double eps, void *y,
                                            sf_dtype ydt, int64_t ldy, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_t5_res_rmsnorm_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(M >= 0 && M <= INT_MAX && D >= 1 && ldx >= D && ldy >= D && (!r || ldr >= D) && w,
                    "sf_t5_res_rmsnorm_cuda: bad shape M=%lld D=%lld ldx=%lld ldr=%lld ldy=%lld (or no weight)",
                    (long long)M, (long long)D, (long long)ldx, (long long)ldr, (long long)ldy);
    SF_CUDA_REQUIRE(ydt == SF_BF16 || ydt == SF_F32, "sf_t5_res_rmsnorm_cuda: output dtype %s (want bf16 or f32)",
                    sf_dtype_name(ydt));
    SF_CUDA_REQUIRE(ydt == SF_BF16 ? (const void *)y != (const void *)x : ((const void *)y != (const void *)x || ldy == ldx),
                    "sf_t5_res_rmsnorm_cuda: y may alias x only as f32 with the same stride");
    if (M == 0) return SF_OK;
    if (ydt == SF_BF16)
        SF_LAUNCH(t5_res_rmsnorm_kernel<__nv_bfloat16>, (unsigned)M, row_threads(D), 0, SF_CUDA_STREAM(ctx), D, x, ldx,
                  r, ldr, w, (float)eps, (__nv_bfloat16 *)y, ldy);
    else
        SF_LAUNCH(t5_res_rmsnorm_kernel<float>, (unsigned)M, row_threads(D), 0, SF_CUDA_STREAM(ctx), D, x, ldx, r, ldr,
                  w, (float)eps, (float *)y, ldy);
    CUDA_CHECK_LAUNCH("t5_res_rmsnorm_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- bias + mask + softmax */

/* Rows up to this many keys keep their biased logits in shared memory (one read of S, one write of
 * P); longer rows work in place in S (three passes over global memory). */
#define T5_SOFTMAX_SMEM_KEYS 8192

/* One block per row b = h·rows + i of S (H, rows, Lk). Three passes over the row: biased logits and
 * the max; exp and the sum; the normalised bf16 probabilities. The row lives in dynamic shared
 * memory when `cached` (Lk ≤ T5_SOFTMAX_SMEM_KEYS), else in S itself. Every thread touches the same
 * columns in every pass, so a thread only reads back its own writes (no barrier needed beyond the
 * reductions'), and masked keys contribute exactly 0. */
static __global__ void t5_bias_softmax_kernel(int64_t rows, int H, int64_t q0, int64_t Lk, int64_t ld,
                                              int64_t nk_valid, float *S, const int *__restrict__ bucket, int64_t off,
                                              const float *__restrict__ pos, __nv_bfloat16 *P, int cached) {
    __shared__ float shm[32];
    SF_DYN_SHARED(float, row);
    const int64_t b = blockIdx.x, h = b / rows, i = q0 + (b - h * rows);
    const float *s = S + b * ld;
    float *w = cached ? row : S + b * ld; /* the working copy of the row */
    __nv_bfloat16 *p = P + b * ld;
    const int *bk = bucket + off - i; /* bk[j] = bucket of rel = j − i */
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < nk_valid; j += blockDim.x) {
        float v = s[j] + pos[(int64_t)bk[j] * H + h];
        w[j] = v;
        mx = fmaxf(mx, v);
    }
    mx = sf_block_max(mx, shm);
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < nk_valid; j += blockDim.x) {
        float e = expf(w[j] - mx);
        w[j] = e;
        sum += e;
    }
    sum = sf_block_sum(sum, shm);
    for (int64_t j = threadIdx.x; j < Lk; j += blockDim.x) p[j] = sf_tobf(j < nk_valid ? w[j] / sum : 0.0f);
}

extern "C" sf_status sf_t5_bias_softmax_cuda(const sf_cuda_ctx *ctx, int H, int64_t rows, int64_t q0, int64_t Lk,
                                             int64_t ld, int64_t nk_valid, float *S, const int *bucket, int64_t off,
                                             const float *pos, int num_buckets, void *P, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_t5_bias_softmax_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(H >= 1 && rows >= 0 && (int64_t)H * rows <= INT_MAX && q0 >= 0 && Lk >= 1 && ld >= Lk &&
                        nk_valid >= 1 && nk_valid <= Lk && num_buckets >= 1 && q0 + rows <= off + 1 && Lk <= off + 1,
                    "sf_t5_bias_softmax_cuda: bad shape H=%d rows=%lld q0=%lld Lk=%lld ld=%lld valid=%lld (table covers "
                    "%lld)",
                    H, (long long)rows, (long long)q0, (long long)Lk, (long long)ld, (long long)nk_valid,
                    (long long)(off + 1));
    if (rows == 0) return SF_OK;
    {
        const int cached = Lk <= T5_SOFTMAX_SMEM_KEYS; /* 32 KiB of shared memory at most */
        SF_LAUNCH(t5_bias_softmax_kernel, (unsigned)((int64_t)H * rows), row_threads(Lk),
                  cached ? (size_t)Lk * sizeof(float) : 0, SF_CUDA_STREAM(ctx), rows, H, q0, Lk, ld, nk_valid, S,
                  bucket, off, pos, (__nv_bfloat16 *)P, cached);
    }
    CUDA_CHECK_LAUNCH("t5_bias_softmax_kernel");
    return SF_OK;
fail:
    return st;
}

/* The bias + mask softmax step of the explicit attention (sf_attention_chunks_cuda). */
typedef struct t5_step {
    const sf_cuda_ctx *ctx;
    int H;
    int64_t L, Lp, nk_valid;
    const int *bucket;
    int64_t off;
    const float *pos;
    int num_buckets;
} t5_step;

static sf_status t5_softmax(void *c, int64_t r0, int64_t rows, float *S, void *P, sf_err *err) {
    const t5_step *t = (const t5_step *)c;
    return sf_t5_bias_softmax_cuda(t->ctx, t->H, rows, r0, t->L, t->Lp, t->nk_valid, S, t->bucket, t->off, t->pos,
                                   t->num_buckets, P, err);
}

/* Row-major ↔ cuBLAS column-major, per head h (see attn_blas.cu):
 *   Sᵀ (L, rows) = K_h (L, d) · Q_hᵀ              → (T, N, m = L, n = rows, k = d), f32, alpha 1
 *   Oᵀ (d, rows) = V_hᵀ (d, L) · P_hᵀ (L, rows)   → (N, N, m = d, n = rows, k = L), bf16
 * S and P rows are Lp = L rounded up to 8 apart, so every row and every head's block starts 16-byte
 * aligned whatever the prompt's length (cuBLASLt's fast kernels want aligned leading dimensions and
 * batch strides); the Lp − L padding columns are neither written nor read. */
extern "C" sf_status sf_t5_attention_cuda(const sf_cuda_ctx *ctx, int64_t L, int64_t nk_valid, int H, int d,
                                          const void *q, const void *k, const void *v, int64_t ld, void *o,
                                          int64_t ldo, const int *bucket, int64_t off, const float *pos,
                                          int num_buckets, float *S, void *P, int64_t chunk, sf_err *err) {
    sf_status st = SF_OK;
    const int64_t Lp = (L + 7) / 8 * 8; /* before the checks: their goto may not skip an initialisation */
    SF_CUDA_REQUIRE(ctx && ctx->stream && ctx->lt, "sf_t5_attention_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(L >= 1 && H >= 1 && d >= 1 && chunk >= 1 && ld >= (int64_t)H * d && ldo >= (int64_t)H * d,
                    "sf_t5_attention_cuda: bad shape L=%lld H=%d d=%d ld=%lld ldo=%lld chunk=%lld", (long long)L, H, d,
                    (long long)ld, (long long)ldo, (long long)chunk);
    {
        t5_step t = {ctx, H, L, Lp, nk_valid, bucket, off, pos, num_buckets};
        return sf_attention_chunks_cuda(ctx, L, L, Lp, H, d, q, ld, k, v, ld, o, ldo, 1.0f /* T5: no 1/sqrt(d) */, S, P,
                                        chunk, t5_softmax, &t, err);
    }
fail:
    return st;
}

/* ---------------------------------------------------------------- gated GELU */

static __global__ void t5_gated_gelu_kernel(int64_t M, int64_t F, const float *__restrict__ g, int64_t ldg,
                                            __nv_bfloat16 *__restrict__ h, int64_t ldh) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    const int64_t total = M * F;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / F, c = i - r * F;
        const float z = g[r * ldg + c], f = g[r * ldg + F + c];
        const float gz = 0.5f * z * (1.0f + tanhf(k * (z + 0.044715f * z * z * z)));
        h[r * ldh + c] = sf_tobf(f * gz);
    }
}

extern "C" sf_status sf_t5_gated_gelu_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t F, const float *g, int64_t ldg,
                                           void *h, int64_t ldh, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_t5_gated_gelu_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(M >= 0 && F >= 1 && ldg >= 2 * F && ldh >= F, "sf_t5_gated_gelu_cuda: bad shape M=%lld F=%lld",
                    (long long)M, (long long)F);
    if (M == 0) return SF_OK;
    SF_LAUNCH(t5_gated_gelu_kernel, sf_cuda_blocks(M * F, 256), 256, 0, SF_CUDA_STREAM(ctx), M, F, g, ldg,
              (__nv_bfloat16 *)h, ldh);
    CUDA_CHECK_LAUNCH("t5_gated_gelu_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- random fill (bench) */

static __global__ void t5_fill_random_kernel(__nv_bfloat16 *p, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint64_t z = seed + (uint64_t)i * 0x9E3779B97F4A7C15ull; /* splitmix64 */
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        p[i] = sf_tobf(scale * ((float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f));
    }
}

extern "C" sf_status sf_t5_fill_random_cuda(const sf_cuda_ctx *ctx, void *p, int64_t n, uint64_t seed, float scale,
                                            sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream && n >= 0, "sf_t5_fill_random_cuda: no context or n < 0");
    if (n == 0) return SF_OK;
    SF_LAUNCH(t5_fill_random_kernel, sf_cuda_blocks(n, 256), 256, 0, SF_CUDA_STREAM(ctx), (__nv_bfloat16 *)p, n, seed,
              scale);
    CUDA_CHECK_LAUNCH("t5_fill_random_kernel");
    return SF_OK;
fail:
    return st;
}
