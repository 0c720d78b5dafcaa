/* vae_ops_cuda.h — the VAE decoder's own GPU kernels (memory-bound glue around cuDNN's convolutions
 * and cuBLASLt's 1×1 convs): channels-last RMS norm with fused SiLU, nearest 2× upsampling (also
 * the time_conv interleave, through strides), latent un-scaling, bias / residual epilogue, and the
 * final clamp → uint8 frames.
 *
 * Layout: channels last. A frame is (H, W, C) bf16 (raw uint16 bits), pixels row-major; n frames
 * are (n, H, W, C); "P" = pixels over all frames. CPU contracts: kernels/vae_ops.h (channel-first
 * f32: the tests transpose). Every op is enqueued on ctx->stream. Implemented in
 * kernels/cuda/vae_glue.cu (also compiled for the CPU emulation); stubs in kernels/nocuda/nocuda.c.
 * Tested kernel by kernel against the vae_ops.h references by tests/unit/test_vae_glue.c
 * (test_vae_glue_emu on the emulation in every `make test`, test_vae_glue on a GPU) and through the
 * whole GPU decoder against the vae golden: test_vae_emu and test_vae_cuda (tests/gpu/check.sh). */
#ifndef SF_VAE_OPS_CUDA_H
#define SF_VAE_OPS_CUDA_H

#include <stdint.h>

#include "cuda_ops.h"
#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RMS_norm over C per pixel (fp32 statistics): y = ⌊ x / max(‖x‖₂, 1e-12) · √C · gamma[c] ⌉, then
 * with silu ≠ 0 y = ⌊ y·σ(y) ⌉ computed from the unrounded value (one rounding). x, y: (P, C) bf16
 * (y may equal x); gamma: (C) f32 device. C ≤ 4096, a multiple of 8. CPU: sf_vae_rms_norm_cpu. */
sf_status sf_vae_rms_norm_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, const void *x, const float *gamma,
                               int silu, void *y, sf_err *err);

/* Nearest 2× spatial upsampling of n frames of (H, W, C): frame f's pixel p starts at
 * x + f·fstride + p·pstride (elements; pstride ≥ C). y: (n, 2H, 2W, C) contiguous.
 * With fstride = H·W·2C, pstride = 2C and x offset by 0 or C, frames τ of a time_conv output
 * (n, H, W, 2C) become the interleaved frames 2τ / 2τ+1 (SPEC §8.2) without a copy.
 * CPU: sf_vae_upsample2x_cpu (+ sf_vae_time_interleave_cpu). */
sf_status sf_vae_upsample2x_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t H, int64_t W, int64_t C, const void *x,
                                 int64_t fstride, int64_t pstride, void *y, sf_err *err);

/* Latent un-scaling (SPEC §8.1) of one latent frame: z (C, HW) f32 device, channel-first as the
 * DiT writes it → y (HW, ldy) bf16 channels-last (channels [C, ldy) untouched). mr: (2, C) f32
 * device = the per-channel mean m and reciprocal r of sf_vae_unscale_consts. bf16 ≠ 0: the bf16
 * pipeline's ⌊⌊⌊z⌉ / r⌉ + m⌉, else ⌊z / r + m⌉. CPU: sf_vae_unscale_cpu. */
sf_status sf_vae_unscale_cuda(const sf_cuda_ctx *ctx, int64_t C, int64_t HW, const float *z, const float *mr, int bf16,
                              void *y, int64_t ldy, sf_err *err);

/* Convolution epilogue when cuDNN cannot fuse it: y = ⌊ y + bias[c] + res ⌉ in fp32.
 * y: (P, C) bf16; bias: (C) bf16 or NULL; res: (P, C) bf16 or NULL (may equal y? no: distinct). */
sf_status sf_vae_bias_res_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, void *y, const void *bias,
                               const void *res, sf_err *err);

/* Decoder output → pixels: x (n, P, ldx) bf16 channels-last, channels 0..2 = RGB (the head's
 * output padded to ldx ≥ 3 channels). u8: (n, P, 3) = (uint8)(255·clamp(clamp(x,−1,1)·0.5+0.5, 0, 1))
 * (truncation, the reference's cast); video: (n, 3, P) f32 = clamp(x, −1, 1), channel-first as
 * --save-video writes it. Either may be NULL. CPU: sf_vae_to_pixels_cpu. */
sf_status sf_vae_to_pixels_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t P, int64_t ldx, const void *x, uint8_t *u8,
                                float *video, sf_err *err);

#ifdef __cplusplus
}
#endif
#endif
