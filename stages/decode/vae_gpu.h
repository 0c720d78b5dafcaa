/* vae_gpu.h — what the Wan VAE's two GPU halves share (internal to stages/decode): the decoder
 * (vae_cuda.c) and the encoder (vae_enc_cuda.c) hold the same device context, cuDNN conv object,
 * causal-cache layout and profile, upload their convs the same way (bf16 [cout, kt, k, k, cin],
 * padded with zero rows / columns to cuDNN's multiples of 8), and run the same ResidualBlock and
 * AttentionBlock (vae.h's CPU ones: sf_vae_res_block, sf_vae_attn_block). The layout and numerics are
 * described in vae_cuda.h. Tested through both halves: test_vae_emu / test_vae_cuda and
 * test_vae_encode_emu / test_vae_encode_cuda. */
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

#endif
