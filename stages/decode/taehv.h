/* taehv.h — TAEHV, the tiny video decoder (latents → RGB frames), CPU, streaming.
 *
 * The reference demo's fast decoder option ("TAEHV-VAE", demo.py; demo_utils/taehv.py, from
 * madebyollin/taehv): taew2_1.pth decodes Wan 2.1 latents with ~9 M parameters of per-frame 2-D convs
 * instead of the Wan VAE's 3-D causal ones — several times faster, at some cost in quality.
 * The decoder is one nn.Sequential; its layers, by kind:
 *   CLAMP  tanh(x/3)·3 (index 0)          CONV  k×k conv, zero padding (k−1)/2, bias optional
 *   RELU   max(x, 0)                      MEM   MemBlock: relu(conv(relu(conv(relu(conv([x; past])))))
 *   UP     nearest 2× spatial                    + skip(x)); past = the block's previous input frame
 *   TGROW  1×1 conv C → s·C, no bias: each frame becomes s frames (channel chunk j = frame j)
 * The layer list and every width are inferred from the state dict: a parameter-less index is CLAMP at 0,
 * RELU after a CONV and UP after a MEM (the TAEHV decoder's only arrangements); TGROW strides come from
 * the weights' shapes, so checkpoints made with temporal upscaling off (decoder_time_upscale) load too.
 * Any file sf_tfile_open reads (the real .pth is a torch zip); the encoder's tensors are ignored.
 *
 * Output: decode_video(latents, parallel=True) on the whole video with its first frames_to_trim =
 * (∏ strides) − 1 frames dropped — 1 + 4(T−1) frames for T latents, as the Wan VAE gives — mapped like
 * demo.py (2·x − 1) and then like the Wan VAE's frames (clamp to [−1, 1], uint8 by truncation).
 * Streaming: each MemBlock keeps its previous input frame, and a latent frame's sub-frames are run in
 * time order (depth first through each TGROW), so decoding block by block is bit-identical to decoding
 * at once and equals the reference's whole-video decode. (The demo instead re-decodes each block with
 * the previous block's last 3 latents in front and a fresh memory, then drops their 12 frames: an
 * approximation that differs near block boundaries; sfpipe decodes exactly.)
 * Tested by tests/unit/test_taehv.c against tests/golden/expect/taehv.safetensors (layer outputs,
 * frames; two checkpoints; one-shot and block by block) and tests/bats/sf-decode.bats. */
#ifndef SF_TAEHV_H
#define SF_TAEHV_H

#include "parallel.h"
#include "sf.h"
#include "tfile.h"
#include "stages/decode/vae.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_TAEHV_MAX_LAYERS 64

typedef enum sf_taehv_kind {
    SF_TAEHV_CLAMP = 0, SF_TAEHV_CONV, SF_TAEHV_RELU, SF_TAEHV_MEM, SF_TAEHV_UP, SF_TAEHV_TGROW
} sf_taehv_kind;

typedef struct sf_taehv_layer {
    sf_taehv_kind kind;
    int index;              /* position in the Sequential: tensors "decoder.<index>...." */
    int64_t cin, cout;      /* input / output channels (TGROW: C, C — each output frame has C) */
    int k;                  /* CONV: 3 or 1 */
    int stride;             /* TGROW: frames out per frame in (1, 2, ...) */
    int scale;              /* 2^(UP layers before it): its resolution is scale·h × scale·w */
    /* f32 weights (borrowed; NULL when absent): CONV w0 [cout, cin, k, k], b0 [cout] or NULL;
     * MEM w0 [C, 2C, 3, 3] b0, w1 [C, C, 3, 3] b1, w2 [C, C, 3, 3] b2, wskip [cout, cin, 1, 1] or NULL
     * (identity when cin == cout); TGROW w0 [stride·C, C, 1, 1]. */
    const float *w0, *b0, *w1, *b1, *w2, *b2, *wskip;
} sf_taehv_layer;

typedef struct sf_taehv_config {
    int64_t z_dim;          /* latent channels (16) */
    int64_t out_ch;         /* 3 */
    int n_layers;
    sf_taehv_layer layers[SF_TAEHV_MAX_LAYERS];
    int n_up;               /* UP layers: frames are 2^n_up · h × 2^n_up · w */
    int time_up;            /* ∏ TGROW strides: frames per latent frame */
    int trim;               /* time_up − 1: frames dropped at the start of a video */
    int threads;
} sf_taehv_config;

typedef struct sf_taehv sf_taehv;

/* 1 when the open file holds a TAEHV decoder ("decoder.1.weight", a 4-D conv), not a Wan VAE. */
int sf_taehv_detect(const sf_tfile *tf);

/* Open a TAEHV checkpoint, infer its layers, check every tensor's presence and shape, and (cpu_state 1)
 * allocate the CPU decoder's state for latents of h×w. Ownership of tf passes to the decoder, also on
 * failure. threads <= 0: one per CPU. cpu_state 0: config and weights only (a GPU decoder borrows them;
 * sf_taehv_decode must then not be called). */
sf_status sf_taehv_new_from(sf_tfile *tf, int64_t h, int64_t w, int threads, int cpu_state, sf_taehv **out,
                            sf_err *err);
sf_status sf_taehv_new(const char *path, int64_t h, int64_t w, int threads, sf_taehv **out, sf_err *err);
void sf_taehv_destroy(sf_taehv **t);

const sf_taehv_config *sf_taehv_config_of(const sf_taehv *t);
int64_t sf_taehv_h(const sf_taehv *t);
int64_t sf_taehv_w(const sf_taehv *t);

/* Clear the memories: the next latent frame is frame 0 of a new video. */
void sf_taehv_reset(sf_taehv *t);
/* Frames the next n latent frames give: time_up·n, less trim for a fresh video. */
int64_t sf_taehv_frames_for(const sf_taehv *t, int64_t n);
/* The same for any decoder of config c that has made `made` frames (trimmed ones too) since its reset
 * (the GPU decoder's count). */
int64_t sf_taehv_frames_after(const sf_taehv_config *c, int64_t made, int64_t n);

/* Decode n latent frames that continue the current video. z: [n, z_dim, h, w] f32 as the DiT writes
 * them; video [frames, 3, H, W] f32 in [−1, 1] and/or u8 [frames, H, W, 3] (either may be NULL);
 * *n_out = frames written (sf_taehv_frames_for(t, n)). A stop request ends it (sf_stopped). */
sf_status sf_taehv_decode(sf_taehv *t, const float *z, int64_t n, float *video, uint8_t *u8, int64_t *n_out,
                          sf_err *err);

/* Debug tap: called with layer `index`'s output for each frame at its time resolution, in time order
 * (frame = that layer's frame count since the reset); x [C, H, W] f32 borrowed. */
typedef void (*sf_taehv_tap_fn)(void *ctx, int index, int64_t frame, const float *x, int64_t C, int64_t H, int64_t W);
void sf_taehv_set_tap(sf_taehv *t, sf_taehv_tap_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
