/* encode.h — sf-vae-encode's flags gathered and checked, and its run (main.c declares the flags).
 * Every check that needs no model runs before the VAE loads: the inputs exist and decode, their
 * frame count is 1 + 4k, the size divides by 8, the output's folder is writable. */
#ifndef SF_TOOLS_VAE_ENCODE_H
#define SF_TOOLS_VAE_ENCODE_H

#include "cli.h"

#include <stdio.h>

typedef struct sf_vae_encode_opts {
    char **files;          /* --image / --frames: the frames' files in order (owned) */
    int64_t n_files;
    const char *video;     /* --video FILE[:NAME] */
    const char *out, *name;
    char vae_path[4096];
    int64_t H, W;          /* the frames' size (0: the --video's own) */
    long threads;
    sf_stage_flags sh;
} sf_vae_encode_opts;

sf_status sf_vae_encode_opts_get(const sf_args *a, const sf_opt *opts, sf_vae_encode_opts *o, sf_err *err);
sf_status sf_vae_encode_run(const sf_vae_encode_opts *o, sf_err *err);
void sf_vae_encode_opts_free(sf_vae_encode_opts *o);

/* --list-dataset DIR (dataset.c): the reference's i2v data folder as lines "IMAGE\tCAPTION" in item order
 * (IMAGE = DIR/<ratio>/<file_name>), checked whole first — one metadata file, its image folder, every
 * item's file_name and caption strings, every image readable, no tab or line break in a caption. */
sf_status sf_vae_encode_list_dataset(const char *dir, FILE *out, sf_err *err);

#endif
