/* vae_ops.h — the element-wise and per-frame ops of the Wan VAE decoder (besides convolution):
 * channel-first RMS norm (with a fused SiLU), nearest 2× spatial upsampling, the time_conv
 * output interleave, the single-head per-frame attention of the decoder middle, residual add,
 * output mapping.
 *
 * Mirrors wan/modules/vae.py (RMS_norm, Resample, AttentionBlock) and the output handling of
 * utils/wan_wrapper.py + inference.py. CPU reference in kernels/cpu/vae_ops.c; tested by
 * tests/unit/test_vae_kernels.c (hand-computed values) and the VAE golden tests.
 *
 * Layout: frame-major; a frame is a contiguous [C, H, W] f32 block; n frames are [n, C, H, W]. */
#ifndef SF_VAE_OPS_H
#define SF_VAE_OPS_H

#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RMS_norm over channels at every pixel, with optional fused SiLU:
 *   y[f,c,p] = x[f,c,p] / max(‖x[f,:,p]‖₂, 1e-12) · √C · gamma[c] (+ bias[c] when non-NULL)
 *   then y = y·sigmoid(y) when silu != 0 (sf_silu1, kernels/act.h).
 * x, y: [n, C, HW] (y may equal x); gamma: [C]; bias: [C] or NULL. Threads split frames/pixels. */
void sf_vae_rms_norm_cpu(const float *x, float *y, int64_t n, int64_t C, int64_t HW, const float *gamma,
                         const float *bias, int silu, int threads);

/* Nearest-neighbour 2× spatial upsampling of one or more frames:
 * x: [n, C, H, W] → y: [n, C, 2H, 2W], y[.., 2i+a, 2j+b] = x[.., i, j]. */
void sf_vae_upsample2x_cpu(const float *x, float *y, int64_t n, int64_t C, int64_t H, int64_t W);

/* time_conv output → doubled frames: tc: [n, 2C, HW] (channels [0,C) belong to the earlier
 * frame, [C,2C) to the later one) → y: [2n, C, HW] with y[2τ] = tc[τ, 0:C], y[2τ+1] = tc[τ, C:2C].
 * This is a pure reordering; [n, 2C, HW] is bytewise [2n, C, HW], so y may equal tc. */
void sf_vae_time_interleave_cpu(const float *tc, float *y, int64_t n, int64_t C, int64_t HW);

/* Single-head softmax attention over the HW tokens of each frame (AttentionBlock core, no mask):
 * qkv: [n, 3C, HW] (q = channels [0,C), k = [C,2C), v = [2C,3C)); out: [n, C, HW],
 * out[:, c, i] = Σ_j softmax_j(q_i·k_j / √C) v[c, j]. Runs kernels/attention.h's sf_attention_cpu_ws
 * (heads 1, d = C) on the frame transposed to token-major, so it has that kernel's numerics in each
 * CPU mode (exact: the same bits for any thread count). scratch: at least
 * sf_vae_attention_scratch(C, HW, threads) floats (caller owns; no allocation per call), threads at
 * most the count it was sized for. Returns 0, or -1 when the kernel's work memory failed. */
size_t sf_vae_attention_scratch(int64_t C, int64_t HW, int threads);
int sf_vae_attention_cpu(const float *qkv, float *out, int64_t n, int64_t C, int64_t HW, float *scratch,
                         int threads);

/* Latent un-scaling constants (SPEC §8.1) for C channels (channel c uses constant c mod 16):
 * mr[c] = m, mr[C + c] = r with, for bf16 ≠ 0, m = ⌊mean⌉, r = ⌊1 / ⌊std⌉⌉ (bf16), else m = mean,
 * r = 1 / std (f32). mr: 2·C floats (caller owns). */
void sf_vae_unscale_consts(const float *mean16, const float *std16, int64_t C, int bf16, float *mr);
/* One latent frame z [C, HW] → y [C, HW]: y = ⌊⌊⌊z⌉ / r⌉ + m⌉ (bf16) or z / r + m (f32). */
void sf_vae_unscale_cpu(const float *z, int64_t C, int64_t HW, const float *mr, int bf16, float *y);

/* y += x, n floats. */
void sf_vae_add_cpu(float *y, const float *x, int64_t n);

/* Decoder output → the reference's pixel values. x: n floats of decoder output.
 * video  = clamp(x, -1, 1)                       (WanVAEWrapper.decode_to_pixel)
 * u8     = (uint8)(255.0f · clamp(video·0.5 + 0.5, 0, 1))  — TRUNCATION, as torch's uint8 cast
 * Either output may be NULL. */
void sf_vae_to_pixels_cpu(const float *x, int64_t n, float *video, uint8_t *u8);

#ifdef __cplusplus
}
#endif
#endif
