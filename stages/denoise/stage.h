/* stage.h — sf-denoise's run as library code: its flags checked and gathered (sf_denoise_opts_get:
 * every flag error before any heavy work, in the order the CLI has always reported them), then the
 * run (sf_denoise_stage_run: the model, the text conditioning, the pipeline, the outputs). The stage's
 * main.c only declares the flags, handles --bench and turns a failure into its exit line. Tested
 * through the binary by tests/bats/sf-denoise.bats (and the pipelines' bats). The three stages' stage.h
 * have the same shape (sf_*_opts_get, then the run or --bench). */
#ifndef SF_DENOISE_STAGE_H
#define SF_DENOISE_STAGE_H

#include "cli.h"
#include "config.h"
#include "stages/denoise/taps.h"

typedef struct sf_denoise_opts {
    sf_stage_flags sh;                              /* --device, --model-dir, --progress, wire timeout */
    long threads;
    const char *bench;                              /* --bench: only bench_tokens was checked after it */
    long bench_tokens;
    const char *pe_arg, *in_url, *out_url, *save, *tap_out, *noise_path, *ckpath, *prompt, *model_dir;
    const char *init_arg;                           /* --initial-latents FILE[:NAME] (read by the run) */
    const char **lay;                               /* --layer_indices words (owned: freed by the run) */
    int n_lay;
    long ablate;                                    /* --sink-ablate K (0: off) */
    int sink_rope;                                  /* --sink-rope realign */
    long sink_rope_gap;                             /* --sink-rope-gap N */
    long kv_compress;                               /* --kv-compress N frames (0: off) */
    long pc_budget, pc_recent, pc_max_reuse;        /* --pc-budget / --pc-recent / --pc-max-reuse frames (0: off) */
    const char **ab_lay;                            /* --sink-ablate-layers words (owned: freed by the run) */
    int n_ab_lay;
    sf_tap_mode tmode;
    sf_tap_sel tsel;
    int sel_b, sel_s, tap_cross;
    long token_frames;     /* --tap-token-frames (tokens mode) */
    sf_run_config rc;                               /* configs/default_config.yaml + --config_path */
    char config_path[4096];                         /* --config_path as found ("" if none: defaults only) */
    long num_frames, height, width, seed, las, sink, rope_frames, chunk;
    int torch_noise, torch_sms, torch_tpsm;         /* --noise-rng torch-cuda[:SMS:THREADS] (0: the GPU's or an H100's) */
    long noise_offset, noise_seq, noise_batch, noise_sample; /* --noise-offset, --noise-sequence, --noise-batch B:S */
    int endless, follow, recache, dump, no_ckpt, use_ema, require_ckpt;
    double pace, pace_ahead;                        /* --pace FPS (0: none), --pace-ahead SEC */
    int check;                                      /* --check: the run's checks only (stage_run) */
    int fp8;                                        /* --fp8: the block linears in float8 (dit.h sf_dit_weights_fp8) */
    int list_layers;                                /* --list-layers: --check, printing the tap layers */
    sf_pt_layout pt_layout;                         /* --pt-layout and what it records (taps.h) */
    long pt_rank, pt_world, pt_prompt_index;
} sf_denoise_opts;

/* The flags → *o: the shared stage flags (a GPU that cannot be used is an error here), --threads, then
 * either --bench (and --bench-tokens) or a run's: inputs and outputs (stdin / stdout when they are
 * data), their folders, the tap flags' syntax, the configs, the numbers and their combinations. */
sf_status sf_denoise_opts_get(const sf_args *a, const sf_opt *opts, sf_denoise_opts *o, sf_err *err);

/* The run itself (with o->check: only its checks — config.json, the tap layers' range, the weights
 * and checkpoint opened, not loaded, the frame count against the block — then SF_OK without the
 * state, the device or the input). On failure after --out is open, the error is sent downstream before returning.
 * Frees o->lay. SF_OK also for an endless run stopped by Ctrl-C or the live route. */
sf_status sf_denoise_stage_run(sf_denoise_opts *o, sf_err *err);

#endif
