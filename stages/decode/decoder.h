/* decoder.h — sf-decode's one view of its decoders: the Wan VAE (vae.h / vae_cuda.h) or the TAEHV tiny
 * decoder (taehv.h / taehv_cuda.h), on the CPU or a GPU, picked by what the checkpoint holds.
 *
 * Both decode latent frames of h×w into frames of H×W = (8h)×(8w) one latent frame at a time, keep their
 * causal state between calls (block by block = at once) and give 1 + k(T−1) frames for T latents
 * (k = 4 for both real checkpoints). The frames are the same kinds: f32 [n, 3, H, W] in [−1, 1] and uint8
 * [n, H, W, 3]. Latent frames go in through submit and come out through receive, in order, at most two
 * in flight: on a GPU the next frame decodes while the caller writes the last one's; on the CPU receive
 * does the work. Tested through sf-decode (tests/bats/sf-decode.bats, emu-gpu.bats). */
#ifndef SF_DECODER_H
#define SF_DECODER_H

#include "sf.h"
#include "tfile.h"

typedef struct sf_decoder sf_decoder;

typedef struct sf_decoder_opts {
    int64_t h, w;      /* latent size */
    int threads;       /* CPU threads (<= 0: one per CPU) */
    int cuda, ordinal; /* on cuda:ordinal */
    int bf16_unscale;  /* the Wan VAE's bf16 un-scaling (SPEC 8.1); the TAEHV takes the latents as they are */
    int64_t channels;  /* the latents' channels when known (checked before a GPU decoder is made); < 0: not yet */
} sf_decoder_opts;

/* Open the decoder the file holds (ownership of tf passes, also on failure): a TAEHV checkpoint
 * (sf_taehv_detect) or else a Wan VAE. */
sf_status sf_decoder_open(sf_tfile *tf, const sf_decoder_opts *o, sf_decoder **out, sf_err *err);
/* SF_E_SHAPE with one line when latents of C channels are not what the decoder takes (C < 0: SF_OK). */
sf_status sf_decoder_check_channels(const sf_decoder *d, int64_t C, sf_err *err);
void sf_decoder_destroy(sf_decoder **d);

int64_t sf_decoder_z_dim(const sf_decoder *d);
int64_t sf_decoder_h(const sf_decoder *d);
int64_t sf_decoder_w(const sf_decoder *d);
int64_t sf_decoder_frame_h(const sf_decoder *d); /* H: the frames' height */
int64_t sf_decoder_frame_w(const sf_decoder *d);
int64_t sf_decoder_max_frames(const sf_decoder *d); /* the most frames one latent frame gives */
/* Which decoder: "TAEHV" or "Wan VAE". */
const char *sf_decoder_kind(const sf_decoder *d);
/* One line for the log: which decoder, its size, where it runs. */
void sf_decoder_describe(const sf_decoder *d, const char *path, char *buf, size_t n);

/* Latent frame z [z_dim, h, w] f32 (copied at once) into the decoder; want_video / want_u8: which frames
 * receive will copy out. At most two submitted and not yet received. */
sf_status sf_decoder_submit(sf_decoder *d, const float *z, int want_video, int want_u8, sf_err *err);
/* The oldest submitted frame's frames: video [n, 3, H, W] and/or u8 [n, H, W, 3] (room for
 * sf_decoder_max_frames; NULL when not wanted), *n_out = n. */
sf_status sf_decoder_receive(sf_decoder *d, float *video, uint8_t *u8, int64_t *n_out, sf_err *err);

#endif
