/* vae.h — the Wan2.1 3-D causal VAE decoder (latents → RGB frames), CPU, streaming.
 *
 * Mirrors wan/modules/vae.py (WanVAE_.decode / cached_decode, Decoder3d, ResidualBlock,
 * AttentionBlock, Resample, CausalConv3d) and utils/wan_wrapper.py (WanVAEWrapper.decode_to_pixel:
 * un-scaling with 16 mean/std constants, clamp to [-1, 1]). Every width is inferred from the
 * tensor shapes of Wan2.1_VAE.pth (real file: base width 96; golden fixture: 8).
 * Tested by tests/unit/test_vae.c against tests/golden/expect/vae.safetensors (intermediates,
 * video, frames_u8; one-shot and block by block) and tests/bats/sf-decode.bats.
 *
 * Three structs: sf_vae_config (shapes inferred from the file), sf_vae_weights (pointers into
 * the mmapped checkpoint, or f32 copies when the file is not f32), sf_vae_state (per-conv causal
 * caches and activation buffers, sized once for a latent resolution h×w). Like the reference,
 * the decoder runs one latent frame at a time with a per-conv cache of the last 2 input frames,
 * so decoding block by block is bit-identical to decoding everything at once; memory is bounded
 * by one latent frame's activations (4 pixel frames), independent of the video length. */
#ifndef SF_VAE_H
#define SF_VAE_H

#include "parallel.h"
#include "sf.h"
#include "tfile.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_VAE_MAX_LAYERS 64

typedef enum sf_vae_layer_kind { SF_VAE_RES = 0, SF_VAE_ATTN, SF_VAE_UP2D, SF_VAE_UP3D } sf_vae_layer_kind;

typedef struct sf_vae_layer {
    sf_vae_layer_kind kind;
    int64_t cin, cout;   /* RES: in/out widths; ATTN: C, C; UP*: C → C/2 */
    char prefix[64];     /* e.g. "decoder.upsamples.4" */
} sf_vae_layer;

typedef struct sf_vae_config {
    int64_t z_dim;       /* latent channels (16) */
    int64_t top;         /* decoder.conv1 output width (4·dim) */
    int64_t dim;         /* base width = head input width (96 real, 8 fixture) */
    int64_t out_ch;      /* 3 */
    int n_layers;        /* middle + upsamples, in order */
    sf_vae_layer layers[SF_VAE_MAX_LAYERS];
    int n_up3d, n_up;    /* temporal ×2 stages, spatial ×2 stages */
    int bf16_unscale;    /* 1: un-scale latents in bf16 like the real bf16 pipeline (SPEC §8.1) */
    int threads;         /* worker threads for the kernels (>= 1) */
} sf_vae_config;

/* Weights of one layer (borrowed f32 pointers; NULL when absent). */
typedef struct sf_vae_lw {
    const float *g0, *wa, *ba, *g1, *wb, *bb, *wsc, *bsc; /* RES: [cin] [cout,cin,3,3,3] [cout] [cout] ... */
    const float *g, *wqkv, *bqkv, *wproj, *bproj;         /* ATTN: [C] [3C,C] [3C] [C,C] [C] */
    const float *wtc, *btc, *wrs, *brs;                   /* UP: [2C,C,3,1,1] [2C] [C/2,C,3,3] [C/2] */
} sf_vae_lw;

typedef struct sf_vae_weights {
    sf_tfile *file;          /* owned; the mapping the pointers borrow from */
    sf_tensor *copies;       /* owned f32 conversions (non-f32 or misaligned tensors) */
    size_t n_copies, cap_copies;
    const float *conv2_w, *conv2_b;   /* [z, z, 1, 1, 1], [z] */
    const float *conv1_w, *conv1_b;   /* [top, z, 3, 3, 3], [top] */
    sf_vae_lw layer[SF_VAE_MAX_LAYERS];
    const float *head_g, *head_w, *head_b; /* [dim], [3, dim, 3, 3, 3], [3] */
} sf_vae_weights;

typedef struct sf_vae_state {
    int64_t h, w;            /* latent resolution this state was sized for */
    int n_caches;
    float **cache;           /* [n_caches] each [2, Cin, H, W] of its conv's input (zeros at start) */
    size_t *cache_frame;     /* elements of one cached frame */
    int up3d_seen[SF_VAE_MAX_LAYERS]; /* first-frame rule: 1 once latent frame 0 passed layer i */
    float *buf[3];           /* activation buffers, buf_elems each */
    size_t buf_elems;
    float *up;               /* one frame of 2× upsampled input [C, 2H, 2W] */
    float *attn;             /* attention scratch */
    float *zin;              /* one latent frame [z, h, w] after un-scaling */
    int64_t frames_in;       /* latent frames decoded since the last reset */
    sf_scratch ws;           /* the convolutions' work memory, sized at init (conv3d.h) */
} sf_vae_state;

typedef void (*sf_vae_tap_fn)(void *ctx, const char *name, int64_t latent_frame, const float *x, int64_t frames,
                              int64_t C, int64_t H, int64_t W);

typedef struct sf_vae {
    sf_vae_config cfg;
    sf_vae_weights wt;
    sf_vae_state st;
    sf_vae_tap_fn tap; /* debug taps (NULL: none) */
    void *tap_ctx;
} sf_vae;

/* The decoder's geometry for one steady-state latent frame, step by step in execution order — the
 * one description both backends size their buffers from (vae.c plan_state, vae_cuda.c walk).
 * ACT: an activation of `elems` elements (n frames); CACHE: a causal k=3 conv whose input is
 * cin × H × W, n frames per call (its cache slot, in the order decode_frame uses them);
 * ATTN: the middle attention over H·W tokens of width cin; UP: a 2× spatial upsample of n frames
 * of cin × H × W (before the size doubles); HEAD: the head conv's n output frames of H × W (the
 * caller multiplies by the output width it stores). */
typedef enum sf_vae_step_kind { SF_VAE_STEP_ACT, SF_VAE_STEP_CACHE, SF_VAE_STEP_ATTN, SF_VAE_STEP_UP, SF_VAE_STEP_HEAD } sf_vae_step_kind;
typedef struct sf_vae_step {
    sf_vae_step_kind kind;
    size_t elems;
    int64_t cin, n, H, W;
} sf_vae_step;
void sf_vae_walk(const sf_vae_config *c, int64_t h, int64_t w, void (*fn)(void *ctx, const sf_vae_step *st), void *ctx);

/* The 16 per-channel constants of WanVAEWrapper (float32). */
extern const float sf_vae_latent_mean[16];
extern const float sf_vae_latent_std[16];

/* Open a VAE checkpoint (Wan2.1_VAE.pth or any container sf_tfile_open reads), infer the
 * architecture from tensor shapes, check every tensor's presence and shape, and allocate the
 * state for latents of h×w. threads <= 0 means one per CPU. Caller destroys with sf_vae_destroy. */
sf_status sf_vae_new(const char *path, int64_t h, int64_t w, int threads, sf_vae **out, sf_err *err);
/* The same from an open tensor file (ownership passes to the VAE, also on failure); cpu_state 0
 * skips the CPU decoder's caches and buffers (a GPU decoder borrows only config and weights;
 * sf_vae_decode must then not be called). */
sf_status sf_vae_new_from(sf_tfile *tf, int64_t h, int64_t w, int threads, int cpu_state, sf_vae **out, sf_err *err);
void sf_vae_destroy(sf_vae **v);

/* Clear the causal caches: the next decoded latent frame is frame 0 of a new video. */
void sf_vae_reset(sf_vae *v);

/* Pixel frames the next n latent frames will produce (1 + 4(n-1) for a fresh state, 4n after). */
int64_t sf_vae_frames_for(const sf_vae *v, int64_t n);

/* Decode n latent frames that continue the current video (streaming; call sf_vae_reset first
 * for a new video). z: [n, z_dim, h, w] f32, scaled latents as the DiT produces them (pipeline
 * layout [B=1, T, C, h, w] without B). video: [sf_vae_frames_for(v, n), 3, 8h, 8w] f32 in
 * [-1, 1] (decode_to_pixel output, clamped); u8: same frames as [T, 8h, 8w, 3] uint8 (the
 * reference's truncating cast of 255·(video·0.5 + 0.5)), either may be NULL. *n_out = frames
 * written. Bit-identical whether a video is decoded at once or block by block. */
sf_status sf_vae_decode(sf_vae *v, const float *z, int64_t n, float *video, uint8_t *u8, int64_t *n_out,
                        sf_err *err);

/* Debug taps for the golden intermediates: when non-NULL, called with each named activation of
 * the current latent frame: "latent_unscaled", "decoder_in", "dec_conv1", "dec_middle",
 * "dec_up0" (first upsample3d output). x: [frames, C, H, W] f32 (borrowed). */
void sf_vae_set_tap(sf_vae *v, sf_vae_tap_fn fn, void *ctx);

/* ---- shared with the encoder (vae_enc.c) ------------------------------------------------ */

/* A shape argument pair for sf_vae_wget: SF_VAE_SHAPE(a, b, c) → (const int64_t[]){a, b, c}, 3. */
#define SF_VAE_SHAPE(...) (const int64_t[]){__VA_ARGS__}, sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)
/* Tensor `name` of W->file as f32 with exactly `shape` (else SF_E_NOTFOUND / SF_E_SHAPE, one line naming
 * the file and tensor): borrowed from the mapping when it is f32 and aligned, else a converted copy that
 * W keeps. */
sf_status sf_vae_wget(sf_vae_weights *W, const char *name, const int64_t *shape, int ndim, const float **out,
                      sf_err *err);
/* Free W's copies and close its file (the other pointers dangle after). */
void sf_vae_weights_free(sf_vae_weights *W);
/* A residual block's weights (attn 0: residual.{0,2,3,6}, shortcut when ci != co) or an attention
 * block's (attn 1: norm, to_qkv, proj; width ci) under `prefix`, each shape checked, into w. */
sf_status sf_vae_block_weights(sf_vae_weights *W, const char *prefix, int attn, int64_t ci, int64_t co, sf_vae_lw *w,
                               sf_err *err);

/* The CPU convolutions of one pass through a VAE half: its causal caches (each [2, Cin, H, W], used in
 * order: `slot` counts them), worker threads, the convolutions' work memory and the attention scratch.
 * first_w non-NULL: every cache still holds zeros (frame 0 of a video) and the k=3 causal convs run their
 * last temporal tap alone, the weights sliced into first_w (≥ cout·cin·k·k floats) — the same sums without
 * their 0·w terms at a third of the work; the caches are pushed as usual. */
typedef struct sf_vae_convs {
    float **cache;
    const size_t *cache_frame;
    int n_caches, slot;
    int threads;
    const sf_scratch *ws;
    float *attn;
    float *first_w;
} sf_vae_convs;
/* Causal k×k×3 conv (kt = 3) of x [n, cin, H, W] → out [n, cout, H, W] with cache slot r->slot, then
 * the cache push; a stop request ends it (sf_stopped). */
sf_status sf_vae_cached_conv(sf_vae_convs *r, const float *x, int64_t n, int64_t cin, int64_t cout, int64_t H,
                             int64_t W, int kk, const float *w, const float *b, float *out, sf_err *err);
/* Per-frame conv (kt = 1), pointwise or k×k with zero padding (k−1)/2. */
sf_status sf_vae_frame_conv(const sf_vae_convs *r, const float *x, int64_t n, int64_t cin, int64_t cout, int64_t H,
                            int64_t W, int kk, const float *w, const float *b, float *out, sf_err *err);
/* The same with an output stride (conv3d.h): stride 2 writes out [n, cout, H/2, W/2], the stride-1
 * result at the odd rows and columns (the encoder's downsample). */
sf_status sf_vae_frame_conv_strided(const sf_vae_convs *r, const float *x, int64_t n, int64_t cin, int64_t cout,
                                    int64_t H, int64_t W, int kk, int stride, const float *w, const float *b,
                                    float *out, sf_err *err);
/* ResidualBlock on *pA [n, cin, H, W] → *pA [n, cout, H, W] (two cache slots); *pB, *pX: scratch of the
 * larger size; the three buffers are permuted. */
sf_status sf_vae_res_block(sf_vae_convs *r, const sf_vae_layer *L, const sf_vae_lw *w, float **pA, float **pB,
                           float **pX, int64_t n, int64_t H, int64_t W, sf_err *err);
/* AttentionBlock (per frame, one head of C) on *pA [n, C, H, W]; *pX holds 3·C channels; permuted. */
sf_status sf_vae_attn_block(sf_vae_convs *r, const sf_vae_lw *w, float **pA, float **pB, float **pX, int64_t n,
                            int64_t C, int64_t H, int64_t W, sf_err *err);

#ifdef __cplusplus
}
#endif
#endif
