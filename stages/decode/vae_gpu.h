/* vae_gpu.h — what the Wan VAE's two GPU halves share (internal to stages/decode): the decoder
 * (vae_cuda.c) and the encoder (vae_enc_cuda.c) hold the same device context, cuDNN conv object,
 * causal-cache layout and profile, upload their convs the same way (bf16 [cout, kt, k, k, cin],
 * padded with zero rows / columns to cuDNN's multiples of 8), and run the same ResidualBlock and
 * AttentionBlock (vae.h's CPU ones: sf_vae_res_block, sf_vae_attn_block). The layout and numerics are
 * described in vae_cuda.h. Tested through both halves: test_vae_emu / test_vae_cuda and
 * test_vae_encode_emu / test_vae_encode_cuda. The two GPU decoders (this VAE's and the TAEHV's, taehv_cuda.c)
 * also share their latent frames in flight (sf_vflight; test_vae_emu, test_taehv_emu). */
#ifndef SF_VAE_GPU_H
#define SF_VAE_GPU_H

#include "conv_cuda.h"
#include "cuda_ops.h"
#include "gpu_host.h"
#include "vae.h"

typedef struct sf_vconv {
    void *w, *b;   /* bf16 [cout, kt, k, k, cin] (or [cout, cin] for 1×1), bf16 [cout] */
    int64_t cin, cout;
    int kt, k;
    int64_t tb; /* > 1: a plan convolves tb frames in one call (else one call per output frame) */
} sf_vconv;

/* One layer's device weights. */
typedef struct sf_vlayer {
    sf_vconv a, b, sc, qkv, proj, tc, rs; /* RES: a, b, sc; ATTN: qkv, proj; UP / DOWN: tc, rs */
    float *g0, *g1;                       /* f32 gammas (RES g0/g1, ATTN g0) */
} sf_vlayer;

typedef struct sf_vcache {
    void *buf;      /* [2, H, W, cin] bf16: the causal conv's 2 cached input frames */
    size_t fe;      /* elements per frame */
    int nmax;       /* most frames one call convolves */
} sf_vcache;

/* SF_CUDA_PROFILE categories */
enum { SF_VG_CONV, SF_VG_POINT, SF_VG_NORM, SF_VG_ATTN, SF_VG_UP, SF_VG_CACHE, SF_VG_IO, SF_VG_N };

typedef struct sf_vgpu {
    sf_cuda_ctx cx;
    sf_conv_cudnn *conv;
    sf_vcache *cache;
    int n_caches;
    void *stage;        /* one conv's input [2 + n, H, W, cin] bf16, shared by every cache slot: the slot's 2
                           frames are copied in front of the chunk its producer wrote */
    size_t cache_bytes; /* the slots' 2 frames each + the stage */
    size_t bytes;       /* device memory held */
    sf_gpu_prof prof;   /* SF_CUDA_PROFILE=1: events around every op */
} sf_vgpu;

#define SF_BF(p, e) ((void *)((uint16_t *)(p) + (e))) /* bf16 element offset */

void sf_vgpu_prof(sf_vgpu *d, int cat, double flops);
sf_status sf_vgpu_alloc(sf_vgpu *d, void **p, size_t bytes, sf_err *err);
sf_status sf_vgpu_up_f32(sf_vgpu *d, float **dst, const float *h, size_t n, sf_err *err);
/* Upload a conv: w [cout, cin, kt, k, k] f32 → bf16 [cout_pad, kt, k, k, cin_pad], zero rows past cout and
 * zero columns past cin (b NULL: zero bias). */
sf_status sf_vgpu_up_conv(sf_vgpu *d, sf_vconv *c, const float *w, const float *b, int64_t cin, int64_t cin_pad,
                          int64_t cout, int64_t cout_pad, int kt, int k, sf_err *err);
/* A ResidualBlock's (is_attn 0) or an AttentionBlock's weights. */
sf_status sf_vgpu_up_block(sf_vgpu *d, sf_vlayer *dst, const sf_vae_layer *L, const sf_vae_lw *w, int is_attn, sf_err *err);
void sf_vgpu_layer_free(sf_vlayer *l);
/* The caches of n slots (each 2 frames of list[i].fe zeros) and the stage (stage_e elements). */
sf_status sf_vgpu_caches_new(sf_vgpu *d, const sf_vcache *list, int n, size_t stage_e, sf_err *err);
sf_status sf_vgpu_caches_zero(sf_vgpu *d, sf_err *err);
/* Free the caches, the stage, the conv object, the profile and the context (after a sync). */
void sf_vgpu_free(sf_vgpu *d);

/* Where the producer of cache slot `slot`'s conv input writes its chunk: the stage, behind room for the
 * slot's 2 cached frames. */
void *sf_vgpu_slot_in(sf_vgpu *d, int slot);
/* n output frames of conv c (shape sh, t_out 1) from frames of xe elements at x (output frame t reads input
 * frames t..t+kt-1), with res (n frames) or NULL: one cuDNN call when a plan for all n was prepared
 * (c->tb == n), else one per frame. */
sf_status sf_vgpu_conv_frames(sf_vgpu *d, sf_conv_shape sh, const sf_vconv *c, int64_t n, const void *x, size_t xe,
                              const void *res, void *y, sf_err *err);
/* Causal conv over the n frames written at sf_vgpu_slot_in(slot): the slot's 2 cached frames in front, output
 * frame t reads stage frames t..t+kt-1; res (n, H, W, cout) or NULL; then the last 2 input frames become
 * the slot's cache and *slot moves on. */
sf_status sf_vgpu_cached_conv(sf_vgpu *d, int *slot, const sf_vconv *c, int64_t n, int64_t H, int64_t W,
                              const void *res, void *out, sf_err *err);
/* 1×1 conv over P pixels: y (P, cout) = x (P, cin) · Wᵀ + b. */
sf_status sf_vgpu_pointwise(sf_vgpu *d, const sf_vconv *c, int64_t P, const void *x, void *y, sf_err *err);
/* ResidualBlock on *pA (n, H, W, cin) → *pA (n, H, W, cout), two cache slots; *pB, *pX scratch. */
sf_status sf_vgpu_res_block(sf_vgpu *d, int *slot, const sf_vae_layer *L, const sf_vlayer *w, void **pA, void **pB,
                            void **pX, int64_t n, int64_t H, int64_t W, sf_err *err);
/* AttentionBlock (per frame, one head of C) on *pA (n, H, W, C); *pX holds 3·C channels; S, P: the
 * attention's [HW, HW] f32 logits and bf16 probabilities. */
sf_status sf_vgpu_attn_block(sf_vgpu *d, const sf_vlayer *w, void **pA, void **pB, void **pX, int64_t n, int64_t C,
                             int64_t H, int64_t W, float *S, void *P, sf_err *err);

/* Up to two latent frames in flight on a GPU decoder (the Wan VAE's, vae_cuda.c, and the TAEHV's, taehv_cuda.c:
 * their _submit / _receive): each submit's latent frame and frames have a pinned slot (k = submit count mod 2),
 * and an event says when slot k's frames are on the host. */
typedef struct sf_vflight {
    const char *who;          /* "VAE (cuda)", "TAEHV (cuda)": in the messages */
    size_t zf, fv;            /* floats of a latent frame; values of a frame (P·3) */
    int64_t nmax;             /* frames one latent frame gives at most */
    const uint8_t *u8_d;      /* the decoder's device frames a submit fills: u8 [n, P, 3] and f32 [n, 3, P] */
    const float *video_d;
    float *zin_h[2];
    uint8_t *u8_h[2];
    float *video_h[2];        /* made on the first submit that wants f32 frames */
    void *ev;                 /* 2 events: slot k's frames are on the host */
    int64_t tk_frames[2];
    int tk_u8[2], tk_video[2];
    int64_t submitted, received;
} sf_vflight;

/* The slots and events for latent frames of zf floats giving up to nmax frames of fv values in u8_d / video_d. */
sf_status sf_vflight_init(sf_vflight *f, const char *who, size_t zf, size_t fv, int64_t nmax, const uint8_t *u8_d,
                          const float *video_d, sf_err *err);
void sf_vflight_free(sf_vflight *f);
/* Frames still in flight belong to the old video: waited for and dropped. */
sf_status sf_vflight_reset(sf_vflight *f, sf_cuda_ctx *cx, sf_err *err);
/* One latent frame z in: copied to its slot, then enqueue(ctx, zin_h, &nf, err) enqueues the GPU work that
 * uploads it from zin_h and leaves its nf frames in u8_d / video_d; their copies into the slot and the slot's
 * event follow. On a failure the stream is drained (what was enqueued may still read the slot). */
typedef sf_status (*sf_vflight_enqueue_fn)(void *ctx, const float *zin_h, int64_t *nf, sf_err *err);
sf_status sf_vflight_submit(sf_vflight *f, sf_cuda_ctx *cx, const float *z, int want_video, int want_u8,
                            sf_vflight_enqueue_fn enqueue, void *ctx, sf_err *err);
/* The oldest submit's frames (P·3 values each) into video / u8 (either NULL), *n_out of them. */
sf_status sf_vflight_receive(sf_vflight *f, float *video, uint8_t *u8, int64_t *n_out, sf_err *err);

#endif
