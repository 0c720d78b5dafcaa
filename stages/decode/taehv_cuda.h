/* taehv_cuda.h — the TAEHV tiny video decoder on a CUDA GPU (same contract as taehv.h's sf_taehv_decode).
 *
 * Mirrors stages/decode/taehv.c (the readable CPU oracle) layer for layer: one latent frame at a time, its
 * sub-frames depth first in time order through each TGROW, a per-MemBlock memory of the block's previous
 * input frame (zeros after a reset), the first `trim` frames of a video dropped; decoding in blocks gives
 * the same bytes as decoding at once.
 * Design: channels-last bf16 activations (H, W, C) end to end, fp32 accumulation; every width padded to a
 * multiple of 8 (cuDNN's bf16 NHWC: 12 → 16, the head's 3 outputs → 8) with zero weights, and the padded
 * channels kept at +0 (the input kernel writes zeros there; zero filters and bias give zeros after).
 *  - input: the latent frame (z_dim, h·w) f32 → clamp tanh(x/3)·3 → (h·w, z_pad) bf16 in one kernel
 *    (kernels/taehv_ops_cuda.h sf_taehv_clamp_cuda): layer 0 (CLAMP) is that kernel.
 *  - 3×3 convs: cuDNN (kernels/conv_cuda.h, kt = 1), bias in the fused epilogue; ReLU after, in place
 *    (sf_relu_cuda). A MemBlock: cat [x | past] and past = x in one kernel (sf_taehv_cat_roll_cuda; the
 *    first conv's input channels are uploaded in that padded order), conv + ReLU twice, then the last conv
 *    with the skip fused as cuDNN's residual: x itself when the skip is the identity, else the 1×1 skip
 *    conv's output (cuBLASLt, sf_linear_cuda); ReLU.
 *  - UP then TGROW (the decoder's only arrangement; either without the other is refused at init): the TGROW's
 *    1×1 conv C → s·C runs first, at the lower resolution — a 1×1 conv commutes exactly with nearest
 *    upsampling, so this is 4× less work and the same sums — into the TGROW's own buffer (h·w, s·C_pad)
 *    (output chunk j at channels [j·C_pad, (j+1)·C_pad)); then sub-frame j is upsampled straight out of
 *    chunk j (sf_vae_upsample2x_cuda with pixel stride s·C_pad) and runs through every later layer
 *    before sub-frame j + 1 (the TGROW buffer is read while they run; the three activation buffers are
 *    shared by every level).
 *  - output: the 2·x − 1 mapping is folded into the last conv at upload (weights ·2, bias 2·b − 1, in f32
 *    before the bf16 rounding: kernels/taehv_ops_cuda.h), so the Wan VAE's sf_vae_to_pixels_cuda maps each
 *    frame (clamp, uint8) unchanged; only uint8 frames (and f32 video when asked) cross to the host.
 * Every buffer and plan is made at init; the frame loop allocates nothing.
 * Weights: borrowed f32 from a CPU sf_taehv (opened with cpu_state 0: config and weights only), reordered
 * and rounded to bf16 once at upload ([cout, cin, k, k] → [cout_pad, k, k, cin_pad]).
 * Numerics against the CPU decoder (f32 throughout): bf16 activations and weights, each conv's output
 * rounded once, ~20 convs deep — tolerances in tests/unit/test_taehv_cuda.c.
 * Tested by tests/unit/test_taehv_cuda.c (the taehv golden's two checkpoints, one-shot / streamed /
 * pipelined, and the CPU decoder on other widths and odd latent sizes; on a GPU as test_taehv_cuda, on
 * the CPU emulation of the kernels, cuBLASLt and cuDNN as test_taehv_emu in every `make test`). */
#ifndef SF_TAEHV_CUDA_H
#define SF_TAEHV_CUDA_H

#include "stages/decode/taehv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_taehv_cuda sf_taehv_cuda;

/* Upload t's weights to cuda:ordinal and build every conv plan and buffer for t's latent size
 * (sf_taehv_h × sf_taehv_w). t is borrowed (config and f32 weights) and must outlive the GPU decoder; it
 * may have been opened with cpu_state 0. A missing driver, library or GPU, too little memory, a layer
 * arrangement the GPU path does not take: one clear error line, nothing left allocated. */
sf_status sf_taehv_cuda_new(const sf_taehv *t, int ordinal, sf_taehv_cuda **out, sf_err *err);
void sf_taehv_cuda_destroy(sf_taehv_cuda **g);
/* Clear the memories: the next latent frame is frame 0 of a new video (frames in flight are dropped). */
sf_status sf_taehv_cuda_reset(sf_taehv_cuda *g, sf_err *err);
/* Frames the next n latent frames give: time_up·n, less what is left of the trim for a fresh video. */
int64_t sf_taehv_cuda_frames_for(const sf_taehv_cuda *g, int64_t n);
/* sf_taehv_decode's contract: z [n, z_dim, h, w] f32 host; video [frames, 3, H, W] f32 in [−1, 1] and/or
 * u8 [frames, H, W, 3] host (either may be NULL); *n_out = frames written; synchronous. */
sf_status sf_taehv_cuda_decode(sf_taehv_cuda *g, const float *z, int64_t n, float *video, uint8_t *u8,
                               int64_t *n_out, sf_err *err);
/* The same one latent frame at a time and asynchronous (sf_vae_cuda_submit / _receive's shape): submit
 * enqueues latent frame z ([z_dim, h, w] f32 host, copied at once) and returns; receive waits for the
 * oldest submitted frame and copies its frames out (u8 [n, H, W, 3] and/or video [n, 3, H, W], asked for
 * at submit; n = time_up − trim for a video's first latent frame, then time_up). At most two in flight (a
 * third submit is refused); frames come back in submit order. */
sf_status sf_taehv_cuda_submit(sf_taehv_cuda *g, const float *z, int want_video, int want_u8, sf_err *err);
sf_status sf_taehv_cuda_receive(sf_taehv_cuda *g, float *video, uint8_t *u8, int64_t *n_out, sf_err *err);
/* Device memory held (weights, memories, TGROW buffers, activations, frames, workspaces), bytes. */
size_t sf_taehv_cuda_bytes(const sf_taehv_cuda *g);
/* Debug tap (taehv.h's): layer `index`'s output per frame, downloaded to [C, H, W] f32, in time order, as
 * the CPU decoder's tap gives it (CLAMP: the input kernel's output) — except an UP followed by a TGROW,
 * which is never materialised (the TGROW's frames are already upsampled), and the last conv, whose output
 * is given mapped back from 2·x − 1 ((y + 1) / 2 in f32). Synchronous (a download per call): for tests and
 * debugging only. fn NULL turns it off. */
void sf_taehv_cuda_set_tap(sf_taehv_cuda *g, sf_taehv_tap_fn fn, void *ctx);
/* SF_CUDA_PROFILE=1 at sf_taehv_cuda_new: where each latent frame's GPU time goes, by category, with the
 * convolutions' achieved TFLOP/s (sf_gpu_prof_format) into buf; 0 when off. _reset starts a new tally. */
int sf_taehv_cuda_profile(const sf_taehv_cuda *g, char *buf, size_t n);
void sf_taehv_cuda_profile_reset(sf_taehv_cuda *g);

#ifdef __cplusplus
}
#endif
#endif
