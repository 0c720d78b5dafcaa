/* t5_cuda.h — the umT5 encoder's own GPU kernels (kernels/cuda/t5_glue.cu): the memory-bound glue
 * around the cuBLASLt GEMMs of stages/encode/t5_cuda.c, and the relative-position-bias attention.
 *
 * Numerics (the design of the GPU encoder, see stages/encode/t5_cuda.h): the residual stream x is
 * f32 on the device; every GEMM input is rounded to bf16 (activations) against bf16 weights with
 * fp32 accumulation; norms, softmax statistics and the gated GELU are fp32. Nothing here rounds the
 * residual stream, so the encoder stays close to the golden fp32 model on bf16 weights.
 *
 * CPU references (each kernel's contract below names it; tests/unit/test_t5_glue.c holds every
 * kernel to it on the CPU emulation layer in `make test`, and tests/gpu/check.sh runs the same file
 * on a GPU as test_t5_glue_gpu):
 *   sf_t5_embed_cuda         exact widening gather, as t5.c's embedding (sf_tensor_to_f32 of a row)
 *   sf_t5_res_rmsnorm_cuda   `x += r` then sf_rmsnorm_cpu (kernels/norm_rows.h), rounded to y's dtype
 *   sf_t5_bias_softmax_cuda  sf_t5_bias_softmax_cpu (kernels/t5_ops.h), P rounded to bf16
 *   sf_t5_attention_cuda     sf_t5_attention_cpu (kernels/t5_ops.h, no 1/√d scale) on bf16 q, k, v,
 *                            P and o rounded to bf16
 *   sf_t5_gated_gelu_cuda    sf_t5_gated_gelu_cpu (kernels/t5_ops.h): fc1 · gelu_tanh(gate) (double
 *                            there, fp32 here), rounded to bf16
 * A build without nvcc links the stubs in kernels/nocuda/nocuda.c (SF_E_DEVICE). */
#ifndef SF_T5_CUDA_KERNELS_H
#define SF_T5_CUDA_KERNELS_H

#include "cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Token embedding gather: x[i, :] = f32(table[ids[i], :]) for i < n (exact widening).
 * ids: (n) int64 device; table: (vocab, D) bf16 device; x: (n, D) f32 device, row stride ldx.
 * An id outside [0, vocab) writes NaN into its row (callers check ids on the host first). */
sf_status sf_t5_embed_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t D, const int64_t *ids, int64_t vocab,
                           const void *table, float *x, int64_t ldx, sf_err *err);

/* The residual add that ends a sub-block fused with the T5 RMS norm (T5LayerNorm: no mean, no bias)
 * that starts the next one, one block per row:
 *   if r:  x = x + r                         (f32, written back to x)
 *   rs = 1 / sqrt(mean_c(x²) + eps)          (fp32 block sum)
 *   y  = ⌊ (x · rs) · w ⌉_ydt                (two fp32 products, one rounding to ydt)
 * x: (M, D) f32 stride ldx; r: (M, D) f32 stride ldr or NULL; w: (D) f32 device; y: (M, D) of
 * dtype ydt (SF_BF16: the next GEMM's input, or SF_F32: the final norm), stride ldy. y may be x
 * (f32, same stride). CPU reference: x += r, then sf_rmsnorm_cpu (rs in double there). The bf16
 * reference model also rounds x·rs to bf16 before the weight multiply (SPEC §3.2); our f32 stream
 * follows the fp32 golden instead. */
sf_status sf_t5_res_rmsnorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, float *x, int64_t ldx, const float *r,
                                 int64_t ldr, const float *w, double eps, void *y, sf_dtype ydt, int64_t ldy,
                                 sf_err *err);

/* Bias + key mask + softmax over rows of T5 attention logits, one block per (head, query) row (CPU
 * contract: sf_t5_bias_softmax_cpu, same layout; e/Σ here vs e·(1/Σ) with a double Σ there):
 *   S: (H, rows, Lk) f32 device with row stride ld ≥ Lk (also between heads: row b = h·rows + i
 *      starts at b·ld), raw q·kᵀ of queries [q0, q0 + rows) (no 1/√d scale in T5); rows longer than
 *      8192 keys are used as scratch (overwritten), shorter ones are worked on in shared memory;
 *   s_j = S[h, i, j] + pos[bucket[j − (q0 + i) + off], h]  for j < nk_valid, else masked (weight 0:
 *         the reference replaces the bias of a padded key by the dtype's minimum);
 *   P[h, i, j] = ⌊ exp(s_j − max) / Σ exp(s − max) ⌉ bf16, fp32 statistics; P: (H, rows, Lk) bf16,
 *   row stride ld (columns past Lk untouched).
 * bucket: device int table of the relative-position bucket of rel = key − query at index rel + off
 * (off = Lmax − 1 covers |rel| < Lmax; sf_t5_bucket); pos: (num_buckets, H) f32 device (one layer's
 * pos_embedding). Requires 1 ≤ nk_valid ≤ Lk and q0 + rows ≤ Lmax, Lk ≤ Lmax. */
sf_status sf_t5_bias_softmax_cuda(const sf_cuda_ctx *ctx, int H, int64_t rows, int64_t q0, int64_t Lk,
                                  int64_t ld, int64_t nk_valid, float *S, const int *bucket, int64_t off,
                                  const float *pos, int num_buckets, void *P, sf_err *err);

/* T5 self-attention of L tokens: per head h (features [h·d, (h+1)·d)),
 *   O_h = ⌊ P_h · V_h ⌉,  P_h = sf_t5_bias_softmax(Q_h · K_hᵀ)   (fp32 accumulation, no scale)
 * q, k, v: (L, H·d) bf16 device, row stride ld (the fused projection: q, k, v are column offsets of
 * one (L, 3·H·d) buffer); o: (L, H·d) bf16, stride ldo. Keys ≥ nk_valid are masked. Queries go
 * chunk rows at a time through the workspace S ≥ H·chunk·Lp f32 and P ≥ H·chunk·Lp bf16 (device),
 * Lp = L rounded up to a multiple of 8 (aligned rows for cuBLASLt).
 * QKᵀ and P·V are cuBLASLt strided-batched products (the head is the batch index, as
 * kernels/cuda/attn_blas.cu). CPU contract: sf_t5_attention_cpu (f32 q, k, v, P and o). */
sf_status sf_t5_attention_cuda(const sf_cuda_ctx *ctx, int64_t L, int64_t nk_valid, int H, int d, const void *q,
                               const void *k, const void *v, int64_t ld, void *o, int64_t ldo, const int *bucket,
                               int64_t off, const float *pos, int num_buckets, float *S, void *P, int64_t chunk,
                               sf_err *err);

/* Gated GELU of the umT5 feed-forward (SPEC §3.5, gate.0 = the GELU branch):
 *   h[i, c] = ⌊ fc1[i, c] · gelu_tanh(gate[i, c]) ⌉ bf16, fp32 arithmetic (tanhf),
 *   gelu_tanh(z) = 0.5·z·(1 + tanh(√(2/π)·(z + 0.044715·z³))).
 * g: (M, 2F) f32 device, row = [gate (F) | fc1 (F)] (one fused [W_gate; W_fc1] GEMM), stride ldg;
 * h: (M, F) bf16, stride ldh. CPU contract: sf_t5_gated_gelu_cpu (double, sf_gelu_tanh of kernels/act.h),
 * with gate = g, fc1 = g + F, ldgate = ldf = ldg. */
sf_status sf_t5_gated_gelu_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t F, const float *g, int64_t ldg, void *h,
                                int64_t ldh, sf_err *err);

/* Benchmark weights: n bf16 values uniform in [−scale, scale) from a counter hash of (seed, index),
 * generated on the device (sf-encode --bench xxl: 11 GB of random weights without a host copy). */
sf_status sf_t5_fill_random_cuda(const sf_cuda_ctx *ctx, void *p, int64_t n, uint64_t seed, float scale,
                                 sf_err *err);

#ifdef __cplusplus
}
#endif
#endif
