/* kv_compress_cuda.h — Participative Compression's ops on the GPU (kernels/cuda/kv_compress.cu), held to the
 * CPU references of kernels/kv_compress.h (same definitions) by tests/unit/test_kv_compress.c. All pointers are
 * device memory; work is enqueued on ctx->stream, nothing waits for the host. */
#ifndef SF_KV_COMPRESS_CUDA_H
#define SF_KV_COMPRESS_CUDA_H

#include "cuda_ops.h"
#include "kv_compress.h"

#ifdef __cplusplus
extern "C" {
#endif

/* sf_key_mass_rows_cpu: S (rows, lds) f32 → acc (nk) f64 += the rows' probabilities of keys [k0, k0 + nk), rows
 * added in order (one thread a key); lse_ws: rows doubles of scratch (each row's log-sum-exp, a block a row). */
sf_status sf_key_mass_rows_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t Lk, const float *S, int64_t lds,
                                int64_t k0, int64_t nk, double *lse_ws, double *acc, sf_err *err);
/* sf_key_mass_cpu from bf16 q (Lq, H·d) stride ldq and k (Lk, H·d) stride ldk: per head, per chunk of at most
 * ws_rows queries, the chunk's logits by cuBLASLt (f32, scale folded in) into S_ws (ws_rows·Lk f32), then
 * sf_key_mass_rows_cuda. out (H, nk) f64 is overwritten. lse_ws: ws_rows doubles. */
sf_status sf_key_mass_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int H, int d, const void *q, int64_t ldq,
                           const void *k, int64_t ldk, float scale, int64_t k0, int64_t nk, float *S_ws, int64_t ws_rows,
                           double *lse_ws, double *out, sf_err *err);
/* Query rows of the logits chunk sf_key_mass_cuda works in for Lq queries against Lk keys: at most 2^25 f32
 * logits (128 MiB), at least one row, at most Lq. */
static inline int64_t sf_key_mass_ws_rows(int64_t Lq, int64_t Lk) {
    const int64_t r = ((int64_t)1 << 25) / (Lk > 0 ? Lk : 1);
    return r < 1 ? 1 : r > Lq ? Lq : r;
}
/* sf_kv_gather_cpu on bf16 rows (ld elements apart): idx (H, keep) int32 device; tmp: keep·H·d bf16 scratch
 * (the rows are gathered there first, then written back: no thread reads a row another has overwritten). */
sf_status sf_kv_gather_cuda(const sf_cuda_ctx *ctx, void *x, int64_t ld, int H, int d, int64_t keep, const int32_t *idx,
                            void *tmp, sf_err *err);

/* Deep Forcing's released rule (sf-denoise --pc-budget): sf_ring_put_cpu, sf_ring_sum_cpu and sf_pc_scores_cpu on
 * bf16 rows (the ring and the keys bf16, the sums and scores fp64). One launch each whatever pos / head (a CUDA
 * graph holds the ring's update with the same shape every forward). */
sf_status sf_ring_put_cuda(const sf_cuda_ctx *ctx, void *ring, int64_t R, int64_t D, int64_t pos, const void *x,
                           int64_t ldx, int64_t n, sf_err *err);
sf_status sf_ring_sum_cuda(const sf_cuda_ctx *ctx, const void *ring, int64_t R, int64_t D, int64_t head, int64_t n,
                           double *out, sf_err *err);
sf_status sf_pc_scores_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t D, const void *k, int64_t ldk, const double *qsum,
                            double scale, double *out, sf_err *err);

/* The selections on the device, so that a compression needs no host round trip. Per segment s < nseg (one block
 * each): sf_pc_select_cpu(n, score + s·lds, count ? count + s·ldc : NULL, max_reuse, keep, idx + s·ldi) — with no
 * count (or max_reuse 0) that is sf_kv_select_cpu's choice of one head — the same indices in the same order, and
 * fills[s] (when fills is not NULL) its return value: how many chosen past the reuse limit. Requires keep ≤ n. */
sf_status sf_topk_select_cuda(const sf_cuda_ctx *ctx, int nseg, int64_t n, const double *score, int64_t lds,
                              const int32_t *count, int64_t ldc, int max_reuse, int64_t keep, int32_t *idx, int64_t ldi,
                              int64_t *fills, sf_err *err);
/* sf_pc_finish_cpu on the device (one block); tmp: topc + old int32 of scratch. */
sf_status sf_pc_finish_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t topc, int64_t old, int32_t *idx, int32_t *cnt,
                            int64_t ncnt, int32_t *tmp, sf_err *err);
/* x[i] ← v for i < n (the counts of the slots a forward writes: 0). */
sf_status sf_fill_i32_cuda(const sf_cuda_ctx *ctx, int32_t *x, int64_t n, int32_t v, sf_err *err);

#ifdef __cplusplus
}
#endif

#endif
