/* run_io.h — what an sf-denoise run decides and writes around the model math: the checkpoint
 * decision (DESIGN.md §3: which weights run, and the loud fallback when a checkpoint is missing),
 * the provenance string recorded as "weights" in every output, the latent block sent on the wire,
 * and the latents (+ per-step predictions) file. Library code so that unit tests reach it
 * (tests/unit/test_denoise_run.c); stages/denoise/main.c only parses flags and calls these. */
#ifndef SF_RUN_IO_H
#define SF_RUN_IO_H

#include "tfile.h"
#include "wire.h"

/* Which DiT weights a run uses. */
typedef struct sf_dit_source {
    sf_tfile *base;      /* owned: <model_dir>/diffusion_pytorch_model.safetensors, when no checkpoint is used */
    sf_tfile *ck;        /* owned: the Self-Forcing checkpoint, when one is used */
    const char *key;     /* "generator_ema" or "generator" with a checkpoint, else NULL */
    int ck_missing;      /* a checkpoint was named but not found: the base weights run (warned) */
    char weights[4400];  /* "checkpoint PATH:KEY" or "base PATH[ (checkpoint PATH not found)]" */
} sf_dit_source;

/* The decision: no checkpoint named (or no_ckpt) → the base weights. A named checkpoint that does
 * not exist → with require: SF_E_NOTFOUND naming the path and what to do; else the base weights,
 * ck_missing = 1 and one loud warning (the reference falls back silently; the caller warns again
 * at the end). A checkpoint that exists → its generator_ema when use_ema and present, else its
 * generator (SF_E_NOTFOUND when that is absent too). *src is zeroed first; close it in any case. */
sf_status sf_dit_source_open(sf_dit_source *src, const char *model_dir, const char *ckpath, int no_ckpt, int use_ema,
                             int require, sf_err *err);
void sf_dit_source_close(sf_dit_source *src);

/* One finished block on the wire: a "latents" tensor message [1, F, C, H, W] f32 with metadata
 * block, start_frame, seed, weights, t_sent (sf_now() at sending), clock (sf_clock_id: whose sf_now),
 * (when non-NULL) prompt and (when > 0) gen_fps: the video frames the block decodes to over the seconds it
 * took to generate (pace waits not counted) — the generator's own rate, for the live viewer. */
sf_status sf_denoise_send_block(sf_wire *out, int block, int64_t start_frame, int F, int C, int H, int W,
                                const float *x0, uint64_t seed, const char *prompt, const char *weights, double gen_fps,
                                sf_err *err);

/* --initial-latents FILE[:NAME] (the reference's initial_latent): a latent video, [F, C, H, W] or [1, F, C, H, W]
 * (sf_tensor_latent_dims; the layout --save-latents writes), default name "latents" (or the file's only tensor),
 * safetensors or .pt, any float dtype, every value finite; C, H, W must be the run's. *x: (F, C, H, W) f32,
 * malloc'd (caller frees); *F its frames. A file that cannot be read: its SF_E_* (exit 1, as any input file); a
 * tensor that is missing or does not fit the run: SF_E_ARG (exit 2), one line naming the file and what differs. */
sf_status sf_denoise_load_latents(const char *arg, int C, int H, int W, float **x, int *F, sf_err *err);

/* The latents file (safetensors, atomic): "latents" [1, T, C, H, W] f32 and, when preds is
 * non-NULL, "pred.<b>.<s>" [1, F_b, C, H, W] for every block b and step s ≤ n_steps (s = n_steps:
 * the context refresh pass), F_0 = 1 with an independent first frame, else fpb. preds layout:
 * (n_blocks, n_steps + 1, fpb, C, H, W). Metadata: seed (or "replayed"), prompt, weights. */
typedef struct sf_latents_out {
    const float *latents, *preds;
    int num_frames, n_blocks, n_steps, fpb, independent_first_frame, C, H, W;
    const char *seed, *prompt, *weights;
} sf_latents_out;
sf_status sf_denoise_write_latents(const char *path, const sf_latents_out *o, sf_err *err);

#endif
