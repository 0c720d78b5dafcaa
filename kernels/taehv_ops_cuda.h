/* taehv_ops_cuda.h — the TAEHV tiny video decoder's own GPU kernels: the memory-bound glue around
 * cuDNN's 3×3 convolutions and cuBLASLt's 1×1 ones (stages/decode/taehv_cuda.c) — the input clamp
 * (with the latent's transpose to channels last), ReLU, and a MemBlock's concatenation with its memory.
 * Nearest 2× upsampling and the output pixels are the Wan VAE's kernels (kernels/vae_ops_cuda.h:
 * sf_vae_upsample2x_cuda, sf_vae_to_pixels_cuda), used unchanged.
 *
 * Output mapping: the reference maps the decoder's output x (~[0, 1]) to 2·x − 1 (demo.py; CPU:
 * sf_taehv_to_signed_cpu). The GPU decoder folds that affine map into its last conv at upload —
 * weights ·2, bias 2·b − 1, computed in f32 before the one rounding to bf16 — so the conv's bf16 output
 * is already the signed video, and sf_vae_to_pixels_cuda (clamp to [−1, 1], uint8) finishes it as it
 * does the Wan VAE's frames. (×2 is exact in bf16; 2·b − 1 is rounded once, like any bias.)
 *
 * Layout: channels last. A frame is (H, W, C) bf16 (raw uint16 bits), pixels row-major; "P" = pixels.
 * CPU contracts: kernels/taehv_ops.h (channel-first f32: the tests transpose). Every op is enqueued on
 * ctx->stream. Implemented in kernels/cuda/taehv_glue.cu (also compiled for the CPU emulation, Makefile
 * EMU_SRC); stubs in kernels/nocuda/nocuda.c. Tested kernel by kernel against the taehv_ops.h references
 * by tests/unit/test_taehv_glue.c (test_taehv_glue_emu on the emulation in every `make test`,
 * test_taehv_glue on a GPU) and through the whole GPU decoder against the TAEHV golden and the CPU
 * decoder: test_taehv_emu and test_taehv_cuda (tests/gpu/check.sh). */
#ifndef SF_TAEHV_OPS_CUDA_H
#define SF_TAEHV_OPS_CUDA_H

#include <stdint.h>

#include "cuda_ops.h"
#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The decoder's input: one latent frame z (C, HW) f32 device, channel-first as the DiT writes it →
 * y (HW, ldy) bf16 channels-last, y[p, c] = ⌊ tanh(z[c, p] / 3) · 3 ⌉ (f32 arithmetic, one rounding)
 * for c < C and 0 for C ≤ c < ldy (the channels padded for cuDNN must be zeros, not stale values: a NaN
 * there would survive the zero weights). CPU: sf_taehv_clamp_cpu (+ the transpose). */
sf_status sf_taehv_clamp_cuda(const sf_cuda_ctx *ctx, int64_t C, int64_t HW, const float *z, void *y, int64_t ldy,
                              sf_err *err);

/* ReLU in place on x (P, C) bf16: negative values (−inf included) become +0; −0 and NaN are kept bit for
 * bit, as sf_relu_cpu keeps them. 16 bytes per thread when P·C is a multiple of 8 and x is 16-byte
 * aligned, else one value per thread. CPU: sf_relu_cpu. */
sf_status sf_relu_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, void *x, sf_err *err);

/* A MemBlock's input and memory step, in one pass: cat (P, 2C) = [x | past] per pixel (x's C channels
 * first), then past = x. x, past: (P, C) bf16; cat must not overlap either. Bit-exact copies. 16 bytes
 * per thread when C is a multiple of 8 and every pointer 16-byte aligned, else one value per thread.
 * CPU: sf_taehv_cat_roll_cpu (channel-first there: [2C, HW] = [x ; past]). */
sf_status sf_taehv_cat_roll_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, const void *x, void *past, void *cat,
                                 sf_err *err);

#ifdef __cplusplus
}
#endif
#endif
