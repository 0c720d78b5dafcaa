/* attn_mass_cuda.h — the self-attention and its probability mass per key group in one pass on the
 * GPU (kernels/cuda/attn_mass.cu): what --tap-mode probs needs, from the attention's own running
 * softmax statistics, without the logits ever in memory.
 *
 * For each head h and query row r (q, k, v bf16; logits s_j = (q_r·k_j)·scale, accumulated in fp32 on
 * the tensor cores):
 *   o[r, h]             = Σ_j p_j v_j (bf16; p_j = exp(s_j − lse_r), rounded to bf16 for the
 *                         product as in flash attention),
 *   lse[h·Lq + r]       = log Σ_j exp(s_j)                         (f32),
 *   rowmass[(h·Lq + r)·NG + g] = Σ_{j in group g} exp(s_j − lse_r)    (f32; groups of G consecutive
 *                         keys, g < NG, NG·G ≤ Lk; keys past NG·G count in lse only),
 * the layouts and meaning of kernels/tap_mass.h's rowmass / lse, so sf_tap_mass_reduce_cuda
 * (tap_mass_cuda.h) makes the per-frame aggregates from them. The CPU references: sf_attention_cpu
 * (attention.h) and sf_tap_row_mass_cpu (tap_mass.h).
 *
 * How: flash attention (one pass over 64-key tiles, a running row max m and sum l); each tile's
 * probabilities are also summed per key group; a group's sum is kept relative to the running max
 * and, when the keys move past the group, stored as its log-sum-exp (log acc + m); at the end
 * rowmass = exp(group lse − row lse). No atomics: the result does not depend on scheduling.
 * NG = 0 (rowmass unused) is the attention alone, lse may be NULL: the DiT's attention where cuDNN is
 * not available or refuses a shape (no logits workspace, unlike the explicit path).
 * Head dims 16, 32, 64, 128; q, k, v, o 16-byte aligned with row strides (elements) multiples of 8.
 * Anything else returns SF_E_UNSUPPORTED before enqueueing anything (callers fall back to the
 * explicit attention + sf_tap_row_mass_cuda, which is exact too). Work is enqueued on ctx->stream.
 * Variants, same results within the tolerances: mma.sync (attn_mass.cu, any sm_80+), wgmma on sm_90
 * for d 64/128 ($SF_ATTN_WGMMA=1: attn_mass_wg.cu), 128 query rows per block ($SF_ATTN_BM128=1), and
 * warp-specialised on sm_90 for d 64/128 ($SF_ATTN_WS=1: attn_mass_ws.cu — a TMA producer warpgroup and
 * two wgmma consumers over 128 rows; =2 with FA3's intra-warpgroup overlap, =3 and the consumers' ping-pong;
 * $SF_ATTN_WS_BN=128 for 128-key tiles; it wins over the other knobs; its plain attention splits the
 * grid's last wave along the keys unless $SF_ATTN_WS_SPLIT=0). A variant that does not apply
 * falls back to the next (sf_attn_mass_last_kernel says which ran).
 * Tested by tests/unit/test_tap_mass.c (attn_mass_*: on the emulation layer in every build, on a GPU
 * by test_tap_mass_gpu) and through the DiT by test_dit_emu / test_dit_cuda (probs taps). */
#ifndef SF_ATTN_MASS_CUDA_H
#define SF_ATTN_MASS_CUDA_H

#include "cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the kernel has code for head dim d (16, 32, 64, 128), else 0. */
int sf_attn_mass_head_dim_ok(int d);

/* The launch name of the kernel the last successful sf_attn_mass_cuda call in this process enqueued
 * ("attn_plain", "attn_mass_groups_wg_bm128", "attn_plain_ws", …; NULL before any): which variant ran,
 * for benches and diagnostics. Not thread-safe (one process-wide note). */
const char *sf_attn_mass_last_kernel(void);
/* How that launch split the grid's last wave along the keys (the warp-specialised kernel's plain
 * attention: its tail units each ran as the returned number of blocks, then were combined; 1 and
 * *tail_units 0 when nothing was split). tail_units may be NULL. */
int sf_attn_mass_last_split(int64_t *tail_units);

sf_status sf_attn_mass_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int H, int d, const void *q, int64_t ldq,
                            const void *k, const void *v, int64_t ldk, void *o, int64_t ldo, float scale, int64_t G,
                            int64_t NG, float *rowmass, float *lse, sf_err *err);

#ifdef __cplusplus
}
#endif

#endif
