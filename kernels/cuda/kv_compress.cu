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

/* ---- the selections on the device: no host round trip inside a compressing forward ---- */
#define SEL_THREADS 512 /* a multiple of 32: sel_scan's warps */

/* A score as an unsigned key ordered as kernels/cpu/kv_compress.c's by_score orders scores: a larger score, a
 * larger key; −0 as +0 (they tie there); NaN below everything, −∞ included (key 0). */
__device__ __forceinline__ unsigned long long sel_key(double s) {
    if (s != s) return 0ull;
    if (s == 0.0) s = 0.0;
    const unsigned long long b = (unsigned long long)__double_as_longlong(s);
    return (b >> 63) ? ~b : b | 0x8000000000000000ull;
}

/* Exclusive prefix sum of v over the block in thread order; *total ← the block's sum (every thread gets both).
 * sh: 32 ints; synchronises before reusing it, so it may be called repeatedly. */
__device__ __forceinline__ int sel_scan(int v, int *sh, int *total) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    int x = v;
    for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    __syncthreads(); /* sh may still be read from the last call */
    if (lane == 31) sh[w] = x;
    __syncthreads();
    if (w == 0) {
        int t = lane < nw ? sh[lane] : 0;
        for (int o = 1; o < 32; o <<= 1) {
            const int y = __shfl_up_sync(0xffffffffu, t, o);
            if (lane >= o) t += y;
        }
        if (lane < nw) sh[lane] = t;
    }
    __syncthreads();
    *total = sh[nw - 1];
    return (w ? sh[w - 1] : 0) + x - v;
}

/* One block a segment: sf_pc_select_cpu's choice (sf_kv_select_cpu's when no counts). The order is (qualifies,
 * key, lower index first); a radix select finds the keep-th in it, a byte of the key a pass from the top (the
 * "qualifies" bit decided first, by a count), stopping early once the bucket it narrowed to is taken whole (scores
 * that differ in their first bytes: two or three passes, not eight); then one pass in index order writes the chosen
 * ascending: those above the threshold prefix, and of those equal to it the first `need` (two block scans a chunk).
 * Every step is integer counting: the same choice whatever the threads' order. */
static __global__ void topk_select_kernel(int64_t n, const double *__restrict__ score, int64_t lds,
                                          const int32_t *__restrict__ count, int64_t ldc, int max_reuse, int64_t keep,
                                          int32_t *__restrict__ idx, int64_t ldi, int64_t *__restrict__ fills) {
    __shared__ unsigned hist[256];
    __shared__ int sh[32];
    __shared__ unsigned long long s_pre, s_mask;
    __shared__ long long s_rem;
    __shared__ unsigned s_qual;
    __shared__ int s_done;
    const double *sc = score + (int64_t)blockIdx.x * lds;
    const int32_t *cn = count && max_reuse > 0 ? count + (int64_t)blockIdx.x * ldc : NULL;
    int32_t *out = idx + (int64_t)blockIdx.x * ldi;
    if (threadIdx.x == 0) s_qual = 0;
    __syncthreads();
    unsigned q = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) q += !cn || cn[j] < max_reuse;
    atomicAdd(&s_qual, q);
    __syncthreads();
    const int64_t E = s_qual; /* the candidates that qualify */
    if (fills && threadIdx.x == 0) fills[blockIdx.x] = keep > E ? keep - E : 0;
    if (keep <= 0) return;
    const int qt = keep <= E; /* the threshold's "qualifies" bit */
    if (threadIdx.x == 0) s_rem = qt ? keep : keep - E, s_pre = 0, s_mask = 0, s_done = 0;
    for (int pass = 0; pass < 8; pass++) {
        const int shift = 56 - 8 * pass;
        for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
        __syncthreads();
        const unsigned long long pre = s_pre, mask = s_mask;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
            const unsigned long long k = sel_key(sc[j]);
            if ((!cn || cn[j] < max_reuse) == qt && (k & mask) == pre) atomicAdd(&hist[(k >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            long long rem = s_rem;
            int b = 255;
            for (; b > 0 && rem > (long long)hist[b]; b--) rem -= hist[b];
            s_rem = rem, s_pre = pre | (unsigned long long)b << shift, s_mask = mask | 255ull << shift;
            s_done = rem == (long long)hist[b]; /* the whole bucket is chosen: no need to look further */
        }
        __syncthreads();
        if (s_done) break;
    }
    const unsigned long long T = s_pre, M = s_mask; /* the threshold: a prefix of the key, or all of it */
    const int64_t need = s_rem; /* of the candidates equal to it, the first `need` (all of them when done early) */
    int64_t base_eq = 0, base_out = 0;
    for (int64_t j0 = 0; j0 < n; j0 += blockDim.x) {
        const int64_t j = j0 + threadIdx.x;
        int gt = 0, eq = 0;
        if (j < n) {
            const int qj = !cn || cn[j] < max_reuse;
            const unsigned long long k = sel_key(sc[j]) & M;
            gt = qj > qt || (qj == qt && k > T);
            eq = qj == qt && k == T;
        }
        int eq_tot, sel_tot;
        const int eq_rank = sel_scan(eq, sh, &eq_tot);
        const int sel = gt || (eq && base_eq + eq_rank < need);
        const int pos = sel_scan(sel, sh, &sel_tot);
        if (sel) out[base_out + pos] = (int32_t)j;
        base_eq += eq_tot, base_out += sel_tot;
    }
}

extern "C" sf_status sf_topk_select_cuda(const sf_cuda_ctx *ctx, int nseg, int64_t n, const double *score, int64_t lds,
                                         const int32_t *count, int64_t ldc, int max_reuse, int64_t keep, int32_t *idx,
                                         int64_t ldi, int64_t *fills, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_topk_select_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(nseg >= 0 && nseg <= 65535 * 32 && n >= 0 && n <= INT_MAX && keep >= 0 && keep <= n && lds >= n &&
                        ldi >= keep && max_reuse >= 0 && (!count || ldc >= n),
                    "sf_topk_select_cuda: bad shape segments=%d n=%lld keep=%lld lds=%lld ldi=%lld ldc=%lld", nseg,
                    (long long)n, (long long)keep, (long long)lds, (long long)ldi, (long long)ldc);
    if (nseg == 0) return SF_OK;
    SF_LAUNCH(topk_select_kernel, (unsigned)nseg, SEL_THREADS, 0, SF_CUDA_STREAM(ctx), n, score, lds, count, ldc,
              max_reuse, keep, idx, ldi, fills);
    CUDA_CHECK_LAUNCH("topk_select_kernel");
    return SF_OK;
fail:
    return st;
}

/* One block: sf_pc_finish_cpu (the writes of each step done before the next reads them). */
static __global__ void pc_finish_kernel(int64_t n, int64_t topc, int64_t old, int32_t *__restrict__ idx,
                                        int32_t *__restrict__ cnt, int64_t ncnt, int32_t *__restrict__ tmp) {
    const int64_t keep = topc + old;
    for (int64_t i = threadIdx.x; i < old; i += blockDim.x) idx[topc + i] = (int32_t)(n + i);
    __syncthreads();
    for (int64_t i = threadIdx.x; i < keep; i += blockDim.x) tmp[i] = cnt[idx[i]] + (i < topc);
    __syncthreads();
    for (int64_t i = threadIdx.x; i < ncnt; i += blockDim.x) cnt[i] = i < keep ? tmp[i] : 0;
}

extern "C" sf_status sf_pc_finish_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t topc, int64_t old, int32_t *idx,
                                       int32_t *cnt, int64_t ncnt, int32_t *tmp, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_pc_finish_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(n >= 0 && topc >= 0 && topc <= n && old >= 0 && n + old <= ncnt && n + old <= INT_MAX,
                    "sf_pc_finish_cuda: bad shape n=%lld topc=%lld old=%lld counts=%lld", (long long)n, (long long)topc,
                    (long long)old, (long long)ncnt);
    SF_LAUNCH(pc_finish_kernel, 1, SEL_THREADS, 0, SF_CUDA_STREAM(ctx), n, topc, old, idx, cnt, ncnt, tmp);
    CUDA_CHECK_LAUNCH("pc_finish_kernel");
    return SF_OK;
fail:
    return st;
}

static __global__ void fill_i32_kernel(int32_t *__restrict__ x, int64_t n, int32_t v) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) x[i] = v;
}

extern "C" sf_status sf_fill_i32_cuda(const sf_cuda_ctx *ctx, int32_t *x, int64_t n, int32_t v, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_fill_i32_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(n >= 0, "sf_fill_i32_cuda: n=%lld", (long long)n);
    if (n == 0) return SF_OK;
    SF_LAUNCH(fill_i32_kernel, sf_cuda_blocks(n, 256), 256, 0, SF_CUDA_STREAM(ctx), x, n, v);
    CUDA_CHECK_LAUNCH("fill_i32_kernel");
    return SF_OK;
fail:
    return st;
}
