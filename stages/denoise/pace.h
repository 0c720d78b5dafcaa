/* pace.h — sf-denoise --pace FPS: generate a live video no faster than it is watched.
 *
 * A live viewer (sf-view) plays frames at the video's rate. A generator faster than that fills the
 * stages' queues until the viewer, to stay live, plays faster than real time (its --max-lag catch-up):
 * the video then runs fast-forward, and a typed prompt waits behind every queued block. Pacing keeps
 * the generator just ahead of playback instead: a model of the viewer's clock, from what was sent.
 *
 *   play_end  when everything sent so far will have played: a block of P pixel frames sent at t moves
 *             it to max(play_end, t) + P / fps (a viewer that ran dry starts the block on arrival);
 *   gen       the last block's generation time (its start to its send);
 *   a block starts no earlier than play_end − gen − ahead, so it arrives `ahead` seconds before the
 *   viewer needs it (the viewer's lag then stays near ahead + the decode time).
 *
 * A generator slower than real time never waits. Pixel frames of a latent block: 4 per latent frame,
 * but 1 for the video's first (the Wan VAE's causal first frame). Pure arithmetic on times given by the
 * caller (sf_now() seconds), so it is tested without a clock: tests/unit/test_live.c `pace`. */
#ifndef SF_DENOISE_PACE_H
#define SF_DENOISE_PACE_H

#include <stdint.h>

typedef struct sf_pace {
    double fps;      /* video frames per second played (0: no pacing) */
    double ahead;    /* seconds a block should arrive before it is due */
    double play_end; /* when the viewer will have played everything sent (0: nothing sent yet) */
    double t_start;  /* when the block being generated started (0: none) */
    double gen;      /* the last block's generation time (0: none measured yet) */
} sf_pace;

/* Pixel frames of the latent frames [start_frame, start_frame + F) (the video's first latent frame is one). */
int64_t sf_pace_pixel_frames(int64_t start_frame, int F);

/* A block starts at now. */
void sf_pace_started(sf_pace *p, double now);
/* A block of latent frames [start_frame, start_frame + F) was sent at now. */
void sf_pace_sent(sf_pace *p, double now, int64_t start_frame, int F);
/* Seconds to wait at now before the next block starts (0: start now; always 0 when p->fps is 0). */
double sf_pace_wait(const sf_pace *p, double now);

#endif
