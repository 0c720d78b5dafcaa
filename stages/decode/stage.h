/* stage.h — sf-decode's run as library code: its flags checked and gathered (sf_decode_opts_get:
 * every flag error before the VAE loads, in the order the CLI has always reported them), then the
 * run (sf_decode_stage_run: latents from a file or a wire stream, decoded latent frame by latent
 * frame, into the video file, --save-video and the --out frames stream). main.c declares the flags,
 * runs --bench and turns a failure into its exit line. Tested through the binary by
 * tests/bats/sf-decode.bats (and the pipelines' and live bats). */
#ifndef SF_DECODE_STAGE_H
#define SF_DECODE_STAGE_H

#include "cli.h"

typedef struct sf_decode_opts {
    sf_stage_flags sh;           /* --device, --model-dir, --progress, wire timeout */
    const char *bench;           /* --bench: nothing else was checked */
    long fps, threads;
    long height, width;          /* --height/--width: the latents' size known up front (0: from the first latents) */
    int bf16;                    /* --bf16-unscale */
    const char *out_path;        /* -o (or a video file given to --out) */
    const char *frames_url;      /* --out as a wire URL: raw frames */
    const char *save_path, *lat, *in;
    char vae_path[4096];
} sf_decode_opts;

sf_status sf_decode_opts_get(const sf_args *a, const sf_opt *opts, sf_decode_opts *o, sf_err *err);
sf_status sf_decode_stage_run(const sf_decode_opts *o, sf_err *err);

#endif
