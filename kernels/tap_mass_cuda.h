/* tap_mass_cuda.h — the attention-tap probability aggregates on the GPU (kernels/cuda/tap_mass.cu),
 * held to the CPU reference of kernels/tap_mass.h (same definitions, layouts and statistics).
 * The explicit attention hands each query chunk's logits S (H, rows, lds) f32 to
 * sf_tap_row_mass_cuda before its softmax; after the last chunk sf_tap_mass_reduce_cuda makes the
 * per-query-frame aggregates. Only rows' masses (H, Lq, NG) and lse (H, Lq) are kept: never all
 * the logits. All pointers are device memory; work is enqueued on ctx->stream.
 * Tested on the emulation layer by tests/unit/test_cuda_emu.c (tap_mass) and, through the whole
 * GPU DiT, by test_dit_emu (probs / cross taps vs the CPU backend). */
#ifndef SF_TAP_MASS_CUDA_H
#define SF_TAP_MASS_CUDA_H

#include "cuda_ops.h"
#include "tap_mass.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows [r0, r0 + rows) of H heads: S (H, rows, lds) f32 → rowmass (H, Lq, NG), lse (H, Lq) at those
 * rows (sf_tap_row_mass_cpu per row). */
sf_status sf_tap_row_mass_cuda(const sf_cuda_ctx *ctx, int H, int64_t rows, int64_t r0, int64_t Lq, int64_t Lk,
                               const float *S, int64_t lds, int64_t G, int64_t NG, float *rowmass, float *lse,
                               sf_err *err);
/* sf_tap_token_mass_cpu on the device: s (rows, NG) f32 in place → exp(s − lse[row]) (rows = H·Lq of the rowmass
 * layout: the tokens mode's masses from the attention's own lse, no full logits). */
sf_status sf_tap_token_mass_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t NG, const float *lse, float *s,
                                 sf_err *err);
/* The tokens mode's row masses without the full logits: the first NG keys' logits S = (q·kᵀ)·scale by one
 * batched cuBLASLt GEMM over the H heads (f32) straight into rowmass (H, Lq, NG), then sf_tap_token_mass_cuda with
 * the rows' lse (H, Lq) the attention made. q: (Lq, H·d) bf16 row stride ldq; k: the key window's first NG rows,
 * (NG, H·d) bf16 stride ldk. CPU: the logits of sf_tap_mass_cpu, then sf_tap_token_mass_cpu. */
sf_status sf_tap_token_mass_qk_cuda(const sf_cuda_ctx *ctx, int H, int64_t Lq, int64_t NG, int d, const void *q,
                                    int64_t ldq, const void *k, int64_t ldk, float scale, const float *lse, float *rowmass,
                                    sf_err *err);
/* rowmass, lse → out (H, Lq/S, NG), stats (H, Lq/S, SF_TAP_NSTATS) (sf_tap_mass_reduce_cpu); rowtot:
 * (H·Lq) doubles of device scratch. */
sf_status sf_tap_mass_reduce_cuda(const sf_cuda_ctx *ctx, int H, int64_t Lq, int64_t NG, int64_t S, int renorm,
                                  const float *rowmass, const float *lse, double *rowtot, float *out, float *stats,
                                  sf_err *err);

/* sf_frame_means_cpu on the device: x bf16 (nframes·S rows, stride ld) → means (nframes, D) f64, the
 * same token-order double sums and division (bit for bit): frames-mode taps download these instead
 * of q and the whole key window. */
sf_status sf_frame_means_cuda(const sf_cuda_ctx *ctx, int64_t nframes, int64_t S, int64_t D, const void *x, int64_t ld,
                              double *means, sf_err *err);
/* sf_frame_logit_means_cpu on the device (qm, km, out device memory; bit for bit the same). */
sf_status sf_frame_logit_means_cuda(const sf_cuda_ctx *ctx, int H, int64_t d, int64_t QF, int64_t KF, const double *qm,
                                    const double *km, double scale, float *out, sf_err *err);

#ifdef __cplusplus
}
#endif

#endif
