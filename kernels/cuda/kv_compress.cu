/* kv_compress.cu — Participative Compression's kernels (sf-denoise --kv-compress). Contract:
 * kernels/kv_compress_cuda.h; CPU references: kernels/kv_compress.h (kernels/cpu/kv_compress.c): the same fp64
 * row log-sum-exp (block tree order here, key order there: equal to ~1e-16 relative) and the same per-key sums,
 * rows in order. The logits come from cuBLASLt (matrix work stays with the vendor library); these kernels are
 * the memory-bound glue around it. Tested by tests/unit/test_kv_compress.c on the emulation layer. */
#include "cuda_common.cuh"
#include "kv_compress_cuda.h"

#define KM_THREADS 256 /* a power of two: sf_block_sum_f64's tree */

/* One block a row: lse = max + log Σ exp(s − max) in fp64. */
static __global__ void key_lse_kernel(const float *__restrict__ S, int64_t lds, int64_t Lk, double *__restrict__ lse) {
    __shared__ float shm[32];
    __shared__ double shd[KM_THREADS];
    const float *s = S + (int64_t)blockIdx.x * lds;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < Lk; j += blockDim.x) m = fmaxf(m, s[j]);
    m = sf_block_max(m, shm);
    double z = 0;
    for (int64_t j = threadIdx.x; j < Lk; j += blockDim.x) z += exp((double)s[j] - (double)m);
    z = sf_block_sum_f64(z, shd);
    if (threadIdx.x == 0) lse[blockIdx.x] = (double)m + log(z);
}

/* One thread a key: acc[j] (0 when init) + Σ_r exp(S[r, k0 + j] − lse_r), rows in order. */
static __global__ void key_mass_kernel(const float *__restrict__ S, int64_t lds, int64_t rows, int64_t k0, int64_t nk,
                                       const double *__restrict__ lse, int init, double *__restrict__ acc) {
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < nk; j += (int64_t)gridDim.x * blockDim.x) {
        double a = init ? 0.0 : acc[j];
        for (int64_t r = 0; r < rows; r++) a += exp((double)S[r * lds + k0 + j] - lse[r]);
        acc[j] = a;
    }
}

static sf_status key_mass_rows(const sf_cuda_ctx *ctx, int64_t rows, int64_t Lk, const float *S, int64_t lds,
                               int64_t k0, int64_t nk, double *lse_ws, int init, double *acc, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_key_mass_rows_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(rows >= 0 && Lk >= 1 && lds >= Lk && k0 >= 0 && nk >= 0 && k0 + nk <= Lk && rows <= INT_MAX,
                    "sf_key_mass_rows_cuda: bad shape rows=%lld Lk=%lld lds=%lld keys [%lld, +%lld)", (long long)rows,
                    (long long)Lk, (long long)lds, (long long)k0, (long long)nk);
    if (nk == 0) return SF_OK;
    if (rows > 0) {
        SF_LAUNCH(key_lse_kernel, (unsigned)rows, KM_THREADS, 0, SF_CUDA_STREAM(ctx), S, lds, Lk, lse_ws);
        CUDA_CHECK_LAUNCH("key_lse_kernel");
    } else if (!init) {
        return SF_OK;
    }
    SF_LAUNCH(key_mass_kernel, sf_cuda_blocks(nk, 256), 256, 0, SF_CUDA_STREAM(ctx), S, lds, rows, k0, nk, lse_ws, init,
              acc);
    CUDA_CHECK_LAUNCH("key_mass_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_key_mass_rows_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t Lk, const float *S, int64_t lds,
                                           int64_t k0, int64_t nk, double *lse_ws, double *acc, sf_err *err) {
    return key_mass_rows(ctx, rows, Lk, S, lds, k0, nk, lse_ws, 0, acc, err);
}

extern "C" sf_status sf_key_mass_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int H, int d, const void *q,
                                      int64_t ldq, const void *k, int64_t ldk, float scale, int64_t k0, int64_t nk,
                                      float *S_ws, int64_t ws_rows, double *lse_ws, double *out, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream && ctx->lt, "sf_key_mass_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(Lq >= 0 && Lk >= 1 && H >= 1 && d >= 1 && ws_rows >= 1 && ldq >= (int64_t)H * d &&
                        ldk >= (int64_t)H * d && k0 >= 0 && nk >= 0 && k0 + nk <= Lk,
                    "sf_key_mass_cuda: bad shape Lq=%lld Lk=%lld H=%d d=%d ws_rows=%lld keys [%lld, +%lld)",
                    (long long)Lq, (long long)Lk, H, d, (long long)ws_rows, (long long)k0, (long long)nk);
    for (int h = 0; h < H; h++) {
        const __nv_bfloat16 *qh = (const __nv_bfloat16 *)q + (int64_t)h * d, *kh = (const __nv_bfloat16 *)k + (int64_t)h * d;
        double *acc = out + (int64_t)h * nk;
        if (Lq == 0) SF_CHECK_STATUS(key_mass_rows(ctx, 0, Lk, S_ws, Lk, k0, nk, lse_ws, 1, acc, err));
        for (int64_t r0 = 0; r0 < Lq; r0 += ws_rows) {
            const int64_t rows = Lq - r0 < ws_rows ? Lq - r0 : ws_rows;
            sf_mm m = sf_mm_head_logits(rows, Lk, 1, d, qh + r0 * ldq, ldq, kh, ldk, scale, S_ws, Lk);
            SF_CHECK_STATUS(sf_blaslt_matmul(SF_CUDA_LT(ctx), &m, err));
            SF_CHECK_STATUS(key_mass_rows(ctx, rows, Lk, S_ws, Lk, k0, nk, lse_ws, r0 == 0, acc, err));
        }
    }
    return SF_OK;
fail:
    return st;
}

/* tmp[i, h·d + c] ← x[idx[h·keep + i], h·d + c] (dir 0); x[i, h·d + c] ← tmp[i, h·d + c] (dir 1). */
static __global__ void kv_gather_kernel(__nv_bfloat16 *__restrict__ x, int64_t ld, int H, int d, int64_t keep,
                                        const int32_t *__restrict__ idx, __nv_bfloat16 *__restrict__ tmp, int dir) {
    const int64_t w = (int64_t)H * d, total = keep * w;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e / w, col = e - i * w, h = col / d;
        if (dir == 0) tmp[e] = x[(int64_t)idx[h * keep + i] * ld + col];
        else x[i * ld + col] = tmp[e];
    }
}

extern "C" sf_status sf_kv_gather_cuda(const sf_cuda_ctx *ctx, void *x, int64_t ld, int H, int d, int64_t keep,
                                       const int32_t *idx, void *tmp, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_kv_gather_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(H >= 1 && d >= 1 && keep >= 0 && ld >= (int64_t)H * d,
                    "sf_kv_gather_cuda: bad shape H=%d d=%d keep=%lld ld=%lld", H, d, (long long)keep, (long long)ld);
    if (keep == 0) return SF_OK;
    for (int dir = 0; dir < 2; dir++) {
        SF_LAUNCH(kv_gather_kernel, sf_cuda_blocks(keep * H * d, 256), 256, 0, SF_CUDA_STREAM(ctx),
                  (__nv_bfloat16 *)x, ld, H, d, keep, idx, (__nv_bfloat16 *)tmp, dir);
        CUDA_CHECK_LAUNCH("kv_gather_kernel");
    }
    return SF_OK;
fail:
    return st;
}

/* Deep Forcing's released rule: the query ring, its column sums, the shared scores. */
static __global__ void ring_put_kernel(__nv_bfloat16 *__restrict__ ring, int64_t R, int64_t D, int64_t pos,
                                       const __nv_bfloat16 *__restrict__ x, int64_t ldx, int64_t n) {
    const int64_t total = n * D;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = e / D, c = e - i * D;
        ring[((pos + i) % R) * D + c] = x[i * ldx + c];
    }
}

/* One thread a column, the rows oldest first (sf_ring_sum_cpu's order exactly). */
static __global__ void ring_sum_kernel(const __nv_bfloat16 *__restrict__ ring, int64_t R, int64_t D, int64_t head,
                                       int64_t n, double *__restrict__ out) {
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < D; c += (int64_t)gridDim.x * blockDim.x) {
        double a = 0;
        for (int64_t i = 0; i < n; i++) a += (double)__bfloat162float(ring[((head + i) % R) * D + c]);
        out[c] = a;
    }
}

/* One warp a key: its lanes' partial sums (columns lane, lane + 32, …, in order), then a fixed shuffle tree. */
static __global__ void pc_scores_kernel(int64_t n, int64_t D, const __nv_bfloat16 *__restrict__ k, int64_t ldk,
                                        const double *__restrict__ qsum, double scale, double *__restrict__ out) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t j = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); j < n; j += warps) {
        const __nv_bfloat16 *kj = k + j * ldk;
        double a = 0;
        for (int64_t c = lane; c < D; c += 32) a += qsum[c] * (double)__bfloat162float(kj[c]);
        for (int o = 16; o > 0; o >>= 1) a += __shfl_down_sync(0xffffffffu, a, o);
        if (lane == 0) out[j] = scale * a;
    }
}

extern "C" sf_status sf_ring_put_cuda(const sf_cuda_ctx *ctx, void *ring, int64_t R, int64_t D, int64_t pos,
                                      const void *x, int64_t ldx, int64_t n, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_ring_put_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(R >= 1 && D >= 1 && pos >= 0 && pos < R && n >= 0 && n <= R && ldx >= D,
                    "sf_ring_put_cuda: bad shape R=%lld D=%lld pos=%lld n=%lld ldx=%lld", (long long)R, (long long)D,
                    (long long)pos, (long long)n, (long long)ldx);
    if (n == 0) return SF_OK;
    SF_LAUNCH(ring_put_kernel, sf_cuda_blocks(n * D, 256), 256, 0, SF_CUDA_STREAM(ctx), (__nv_bfloat16 *)ring, R, D, pos,
              (const __nv_bfloat16 *)x, ldx, n);
    CUDA_CHECK_LAUNCH("ring_put_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_ring_sum_cuda(const sf_cuda_ctx *ctx, const void *ring, int64_t R, int64_t D, int64_t head,
                                      int64_t n, double *out, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_ring_sum_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(R >= 1 && D >= 1 && head >= 0 && head < R && n >= 0 && n <= R,
                    "sf_ring_sum_cuda: bad shape R=%lld D=%lld head=%lld n=%lld", (long long)R, (long long)D,
                    (long long)head, (long long)n);
    SF_LAUNCH(ring_sum_kernel, sf_cuda_blocks(D, 128), 128, 0, SF_CUDA_STREAM(ctx), (const __nv_bfloat16 *)ring, R, D,
              head, n, out);
    CUDA_CHECK_LAUNCH("ring_sum_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_pc_scores_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t D, const void *k, int64_t ldk,
                                       const double *qsum, double scale, double *out, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_pc_scores_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(n >= 0 && D >= 1 && ldk >= D, "sf_pc_scores_cuda: bad shape n=%lld D=%lld ldk=%lld", (long long)n,
                    (long long)D, (long long)ldk);
    if (n == 0) return SF_OK;
    SF_LAUNCH(pc_scores_kernel, sf_cuda_blocks(n * 32, 256), 256, 0, SF_CUDA_STREAM(ctx), n, D,
              (const __nv_bfloat16 *)k, ldk, qsum, scale, out);
    CUDA_CHECK_LAUNCH("pc_scores_kernel");
    return SF_OK;
fail:
    return st;
}
