/* taehv_ops.h — the element-wise ops of the TAEHV tiny video decoder (besides its convolutions, which
 * are kernels/conv3d.h's, and its nearest 2× upsampling, kernels/vae_ops.h's): the input clamp, ReLU,
 * the MemBlock's input concatenation with its causal memory, and the output mapping.
 *
 * Mirrors the reference demo's demo_utils/taehv.py (Clamp, nn.ReLU, MemBlock's torch.cat([x, past], 1)
 * and its memory update, TAEHV.decode_video) and demo.py's TAEHV wrapper (decode().mul_(2).sub_(1)).
 * CPU reference in kernels/cpu/taehv_ops.c; tested by tests/unit/test_taehv.c (hand-computed values)
 * and through the TAEHV golden tests. GPU twins: kernels/taehv_ops_cuda.h.
 *
 * Layout: frame-major; a frame is a contiguous [C, H, W] f32 block. */
#ifndef SF_TAEHV_OPS_H
#define SF_TAEHV_OPS_H

#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Clamp: x = tanh(x / 3) · 3, n floats in place (f32: tanhf of the rounded quotient, then the product). */
void sf_taehv_clamp_cpu(float *x, int64_t n);

/* ReLU: x = max(x, 0), n floats in place (−0 and NaN pass through as torch's relu leaves them). */
void sf_relu_cpu(float *x, int64_t n);

/* A MemBlock's input and memory step for one frame of C × HW: cat = [x ; past] ([2C, HW]: x's channels
 * first), then past = x. past holds the block's previous input frame (zeros before the first). */
void sf_taehv_cat_roll_cpu(const float *x, float *past, float *cat, int64_t C, int64_t HW);

/* Decoder output (~[0, 1]) → the pipeline's signed video range: y = 2·x − 1, n floats (y may equal x).
 * The frames then go through sf_vae_to_pixels_cpu (clamp to [−1, 1], uint8) like the Wan VAE's. */
void sf_taehv_to_signed_cpu(const float *x, float *y, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
