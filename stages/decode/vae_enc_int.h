/* vae_enc_int.h — the CPU VAE encoder's struct (internal to stages/decode): config, weights and CPU state
 * of vae_enc.c, shared with the GPU encoder (vae_enc_cuda.c), which borrows the config and weights of an
 * encoder opened by sf_vae_enc_new_weights rather than loading the checkpoint a second way. */
#ifndef SF_VAE_ENC_INT_H
#define SF_VAE_ENC_INT_H

#include "vae.h"
#include "vae_enc.h"

#define SF_VAE_ENC_MAX_DOWN 8

typedef enum enc_kind { ENC_RES = 0, ENC_ATTN, ENC_DOWN2D, ENC_DOWN3D } enc_kind;

/* A downsample3d's frames: `last` the previous resampled frame time_conv starts from, `held` the one
 * waiting for its pair. */
typedef struct down3d_state {
    float *last, *held;
    int have_last, have_held;
} down3d_state;

/* One struct in three parts, as the decoder's sf_vae_config / sf_vae_weights / sf_vae_state. */
struct sf_vae_enc {
    /* config, from the tensor shapes and the open arguments */
    int64_t z_dim, in_ch, dim, top; /* 16; 3; encoder.conv1 width; the middle's and head's width */
    int n_layers, n_down, n_down3d;
    sf_vae_layer layers[SF_VAE_MAX_LAYERS]; /* kind: enc_kind; prefix e.g. "encoder.downsamples.5" */
    int threads;
    int64_t H, W;                    /* pixel frame size */
    /* weights: borrowed from the mapping or converted copies (sf_vae_wget); of the decoder's fields only
     * file, copies and layer[] (per encoder layer) are used */
    sf_vae_weights wt;
    const float *conv1_w, *conv1_b;              /* encoder.conv1 [dim, 3, 3, 3, 3] */
    const float *head_g, *head_w, *head_b;       /* [top], [2z, top, 3, 3, 3], [2z] */
    const float *mu_w, *mu_b;                    /* conv1 [2z, 2z, 1, 1, 1]: its first z rows (mu) */
    float mr[2 * 4096];                          /* mean, 1/std per latent channel (float32) */
    /* state, sized at open */
    int n_caches;
    float **cache;
    size_t *cache_frame;
    down3d_state d3[SF_VAE_MAX_LAYERS];
    float *buf[3];                   /* activations, one frame each: [C, H, W] at the widest stage */
    float *attn, *first_w;           /* attention scratch; frame 0's sliced conv weights */
    int64_t frames_in;
    int dirty; /* a frame entered the caches since they were last zeroed (calloc or reset) */
    sf_scratch ws;
};

/* Latents completed after f pixel frames of a video: 0, then 1 + ⌊(f − 1) / 2^n_down3d⌋. */
int64_t sf_vae_enc_latents_after(const sf_vae_enc *e, int64_t f);

#endif
