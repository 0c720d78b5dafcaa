/* vae_enc.h — the Wan2.1 3-D causal VAE encoder (RGB frames → scaled latents), CPU, streaming.
 *
 * Mirrors wan/modules/vae.py (WanVAE_.encode, Encoder3d, ResidualBlock, AttentionBlock, Resample
 * 'downsample2d' / 'downsample3d', CausalConv3d, the top-level conv1) and utils/wan_wrapper.py
 * (WanVAEWrapper.encode_to_latent: mu, then (mu − mean)·(1/std) with the 16 constants of vae.h, float32;
 * output permuted to frames first). Image-to-video and video extension encode their pixels with it.
 * Every width is inferred from the tensor shapes of Wan2.1_VAE.pth (real file: base width 96, 3 spatial
 * and 2 temporal downsamples; golden fixture: 8), every tensor checked. The weight loading and the
 * residual / attention blocks are the decoder's (vae.h, shared part).
 *
 * The reference encodes frame 0 alone, then chunks of 4 frames, each conv keeping a cache of its last
 * input frames. We run ONE pixel frame at a time through the same layers, which computes the same sums:
 *   - every causal k=3 conv keeps its last 2 input frames (zeros at the start);
 *   - 'downsample3d' passes frame 0 through without its time_conv (and keeps it), then holds one frame
 *     and, with the next, applies time_conv (3 frames in time, stride 2, no padding) to [kept frame, held
 *     frame, new frame], keeping the new one: one output per 2 inputs;
 *   - 'downsample2d' (also inside downsample3d, before time_conv) is ZeroPad2d(0,1,0,1) + a 3×3 stride-2
 *     conv: computed as the stride-1 conv with padding 1, sampled at the odd rows and columns;
 *   - the middle AttentionBlock attends within a frame; the head is RMS norm + SiLU + causal conv.
 * So pixel frame 0 makes latent 0, and every 4 frames after it one more; frames of an unfinished group
 * wait inside (in those caches) and the output is bit-identical however the frames are split into calls.
 * Memory: a few frames of activations at the input resolution plus the caches, fixed at open (it does
 * not grow with the video). Frame 0 (all caches zero) runs only the last temporal tap of each causal
 * conv: a third of the work for an image. Tested by tests/unit/test_vae_encode.c against
 * tests/golden/expect/vae_encode.safetensors (tests/heldout/make_vae_encode_golden.py). */
#ifndef SF_VAE_ENC_H
#define SF_VAE_ENC_H

#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_vae_enc sf_vae_enc;

/* Open the encoder half of a Wan VAE checkpoint (any container sf_tfile_open reads; architecture
 * inferred from shapes, every tensor checked), sized for pixel frames of H×W (multiples of 8, more
 * precisely of 2^(spatial downsamples)). threads <= 0: one per CPU. */
sf_status sf_vae_enc_new(const char *path, int64_t H, int64_t W, int threads, sf_vae_enc **out, sf_err *err);
/* The same without the CPU state (caches, activations: gigabytes at 832x480): config and weights only, for
 * the GPU encoder (vae_enc_cuda.h), which borrows them; sf_vae_encode on it is refused (SF_E_ARG). */
sf_status sf_vae_enc_new_weights(const char *path, int64_t H, int64_t W, sf_vae_enc **out, sf_err *err);
void sf_vae_enc_destroy(sf_vae_enc **e);
void sf_vae_enc_reset(sf_vae_enc *e); /* next frame is frame 0 of a new video */
int64_t sf_vae_enc_z_dim(const sf_vae_enc *e); /* 16 */
/* Latent frames that n more pixel frames complete (frame 0 alone makes latent 0, then every 4 frames one). */
int64_t sf_vae_enc_latents_for(const sf_vae_enc *e, int64_t n);
/* Encode n pixel frames [n,3,H,W] f32 in [-1,1] continuing the current video (streaming: any n per call,
 * frames of an unfinished group of 4 wait inside); z: [sf_vae_enc_latents_for(e,n), z_dim, H/8, W/8] f32,
 * the scaled latents the DiT consumes (the reference's encode_to_latent output, permuted to frames first);
 * *m_out = latent frames written. Bit-identical whether a video is fed at once or frame by frame. */
sf_status sf_vae_encode(sf_vae_enc *e, const float *video, int64_t n, float *z, int64_t *m_out, sf_err *err);

#ifdef __cplusplus
}
#endif
#endif
