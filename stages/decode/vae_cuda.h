/* vae_cuda.h — the Wan2.1 VAE decoder on a CUDA GPU (same streaming contract as vae.h).
 *
 * Mirrors stages/decode/vae.c (the readable CPU oracle) layer for layer: one latent frame at a time,
 * a per-conv causal cache of the last 2 input frames, time_conv's 'Rep' first-frame rule; decoding
 * in blocks gives the same bytes as decoding at once.
 * Design: channels-last bf16 activations (H, W, C) end to end, fp32 accumulation and statistics.
 *  - 3×3×3 / 3×1×1 causal convs and the 3×3 Resample convs: cuDNN (kernels/conv_cuda.h), bias and
 *    the residual fused into the conv's epilogue. Each cached conv keeps only its 2 cached input
 *    frames [2, H, W, Cin]; one stage [2 + n_max, H, W, Cin] (the largest conv's) is shared: the
 *    producer (RMS norm + SiLU, conv2, the copy before time_conv) writes the chunk behind room for
 *    2 frames, the slot's 2 frames are copied in front, the conv reads output frame t from frames
 *    t..t+2 (temporal padding 0; all n frames in one call where a plan was made), and afterwards
 *    the last 2 input frames are copied back as the slot's cache. (Each conv owning a whole
 *    [2 + n_max] buffer held ~3 GiB more at 832×480 for a copy of 2 frames per conv.)
 *  - 1×1 convs (conv2, shortcut, to_qkv, proj): cuBLASLt GEMM + bias (sf_linear_cuda).
 *  - mid-block attention: single head, d = C (384 real): cuDNN's SDPA takes d ≤ 256 only, so the
 *    explicit cuBLASLt path (sf_attention_blas_cuda: QKᵀ f32 → softmax → PV).
 *  - RMS norm + SiLU, nearest 2× upsampling (time_conv interleave through strides), un-scaling,
 *    clamp → uint8: kernels/vae_ops_cuda.h. Only uint8 frames (and f32 video when asked) cross to
 *    the host. The head's 3 output channels are padded to 8 (zero filters) for cuDNN.
 * Every buffer and plan is made at init; the frame loop allocates nothing.
 * Weights: taken from a loaded sf_vae (the CPU loader: same file formats and checks), reordered
 * and rounded to bf16 once at upload ([cout, cin, kt, kh, kw] → [cout, kt, kh, kw, cin]).
 * Tested by tests/unit/test_vae_cuda.c (golden, streamed and one-shot, on a GPU; refusal
 * without one) and test_vae_emu (the same test on the CPU emulation of the kernels and cuDNN). */
#ifndef SF_VAE_CUDA_H
#define SF_VAE_CUDA_H

#include "vae.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_vae_cuda sf_vae_cuda;

/* Upload v's weights to cuda:ordinal, build every conv plan and buffer for v's latent size.
 * v is borrowed (config, weights, debug tap) and must outlive the GPU decoder. A missing driver,
 * library or GPU, an old GPU, too little memory: one clear error line, nothing left allocated. */
sf_status sf_vae_cuda_new(const sf_vae *v, int ordinal, sf_vae_cuda **out, sf_err *err);
void sf_vae_cuda_destroy(sf_vae_cuda **g);
/* Clear the causal caches: the next latent frame starts a new video. */
sf_status sf_vae_cuda_reset(sf_vae_cuda *g, sf_err *err);
/* Pixel frames the next n latent frames will produce. */
int64_t sf_vae_cuda_frames_for(const sf_vae_cuda *g, int64_t n);
/* sf_vae_decode's contract: z [n, z_dim, h, w] f32 host; video [frames, 3, 8h, 8w] f32 and/or
 * u8 [frames, 8h, 8w, 3] host (either may be NULL); synchronous. */
sf_status sf_vae_cuda_decode(sf_vae_cuda *g, const float *z, int64_t n, float *video, uint8_t *u8, int64_t *n_out,
                             sf_err *err);
/* The same, one latent frame at a time and asynchronous, for a loop that writes frames while the GPU
 * decodes the next: submit enqueues latent frame z ([z_dim, h, w] f32 host, copied at once) and
 * returns; receive waits for the oldest submitted frame and copies its frames out (u8 [n, 8h, 8w, 3]
 * and/or video [n, 3, 8h, 8w], asked for at submit; n = 1 for a video's first latent frame, then 4).
 * At most two in flight (a third submit is refused); frames come back in submit order. */
sf_status sf_vae_cuda_submit(sf_vae_cuda *g, const float *z, int want_video, int want_u8, sf_err *err);
sf_status sf_vae_cuda_receive(sf_vae_cuda *g, float *video, uint8_t *u8, int64_t *n_out, sf_err *err);
/* Device memory held (weights, caches, activations, workspaces), bytes. */
size_t sf_vae_cuda_bytes(const sf_vae_cuda *g);
/* Of it, the causal caches: 2 frames per cached conv + the shared stage (tests: the layout's size). */
size_t sf_vae_cuda_cache_bytes(const sf_vae_cuda *g);
/* SF_CUDA_PROFILE=1 at sf_vae_cuda_new: where each latent frame's GPU time goes, by category, with
 * the convolutions' and GEMMs' achieved TFLOP/s (sf_gpu_prof_format) into buf; 0 when off.
 * _reset starts a new tally (the bench resets after its warm-up). */
int sf_vae_cuda_profile(const sf_vae_cuda *g, char *buf, size_t n);
void sf_vae_cuda_profile_reset(sf_vae_cuda *g);

#ifdef __cplusplus
}
#endif
#endif
