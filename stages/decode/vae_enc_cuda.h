/* vae_enc_cuda.h — the Wan2.1 VAE encoder on a CUDA GPU (same streaming contract as vae_enc.h).
 *
 * Mirrors stages/decode/vae_enc.c (encode_frame) layer for layer, one pixel frame at a time: each causal
 * conv keeps its last 2 input frames (zeros at the start: frame 0 runs the full 3-tap conv over the zero
 * caches, which adds exact zeros — no sliced first-frame weights); 'downsample3d' passes frame 0 through,
 * then holds one frame and applies time_conv to [kept, held, new]; latents come out bit-identical however
 * the frames are split into calls.
 * Design: the decoder's (vae_cuda.h; the shared pieces are vae_gpu.h): channels-last bf16 activations,
 * fp32 accumulation and statistics; causal convs through cuDNN on the shared stage with bias and
 * residual fused; 1×1 convs and the middle attention through cuBLASLt.
 *  - encoder.conv1's 3 input channels are padded to 8 (zero weight columns) for cuDNN's bf16 NDHWC; the
 *    pixels go in as (H, W, 8) bf16 through sf_vae_unscale_cuda with mean 0, scale 1 (one rounding).
 *  - 'downsample2d' (ZeroPad2d(0,1,0,1) + 3×3 stride 2): one cuDNN conv with padding 0 before, 1 after
 *    and stride 2 (sf_conv_shape.down).
 *  - 'downsample3d''s time_conv (kernel (3,1,1), stride 2 in time, no padding): a 3×1×1 cuDNN conv over
 *    a per-layer buffer of 3 frames [kept, held, new] the downsample writes into; one output frame.
 *  - the head's conv1 (mu = its first z rows): a cuBLASLt GEMM with an fp32 output, downloaded and
 *    scaled on the host ((mu − mean) · (1 / std), float32 as the CPU) into [z, h, w] frames first.
 * Every buffer and plan is made at init; the frame loop allocates nothing.
 * Tested by tests/unit/test_vae_encode_cuda.c (golden image + video, streamed = at once, other shapes
 * against the CPU encoder; refusal without a GPU) and test_vae_encode_emu (the same on the CPU
 * emulation of the kernels, cuBLASLt and cuDNN). */
#ifndef SF_VAE_ENC_CUDA_H
#define SF_VAE_ENC_CUDA_H

#include "vae_enc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_vae_enc_cuda sf_vae_enc_cuda;

/* Upload e's weights to cuda:ordinal and build every conv plan and buffer for e's pixel size. e is borrowed
 * (config and weights; sf_vae_enc_new_weights opens one without the CPU state) and must outlive the GPU
 * encoder. A missing driver, library or GPU, too little memory, widths cuDNN cannot take: one clear
 * error line, nothing left allocated. */
sf_status sf_vae_enc_cuda_new(const sf_vae_enc *e, int ordinal, sf_vae_enc_cuda **out, sf_err *err);
void sf_vae_enc_cuda_destroy(sf_vae_enc_cuda **g);
/* The next frame is frame 0 of a new video. */
sf_status sf_vae_enc_cuda_reset(sf_vae_enc_cuda *g, sf_err *err);
/* Latent frames that n more pixel frames complete (sf_vae_enc_latents_for's rule). */
int64_t sf_vae_enc_cuda_latents_for(const sf_vae_enc_cuda *g, int64_t n);
/* sf_vae_encode's contract: video [n, 3, H, W] f32 host in [-1, 1]; z [latents_for(n), z_dim, H/8, W/8] f32
 * host; *m_out = latent frames written; synchronous. */
sf_status sf_vae_enc_cuda_encode(sf_vae_enc_cuda *g, const float *video, int64_t n, float *z, int64_t *m_out,
                                 sf_err *err);
/* Device memory held (weights, caches, activations, workspaces), bytes. */
size_t sf_vae_enc_cuda_bytes(const sf_vae_enc_cuda *g);

#ifdef __cplusplus
}
#endif
#endif
