/* pipeline.h — the Self-Forcing causal inference loop (CausalInferencePipeline.inference):
 * blocks of num_frame_per_block latent frames; per block n_steps denoising forwards with
 * re-noising in between, then the clean-context refresh forward at context_noise that rewrites
 * the block's K/V; each finished block is handed to a callback as soon as it exists.
 *
 * Noise: either replayed from a tensor file (`noise.init` (1, T, C, H, W) and `noise.renoise.<k>`
 * (F, C, H, W), k = draw index = (n_steps − 1)·block + step), or drawn from sfpipe's own
 * generator (common/rng.h: xoshiro256** seeded by splitmix64(seed), Box–Muller normals in double
 * rounded to f32): first the whole initial noise T·C·H·W in (frame, channel, row, column) order,
 * then each re-noising draw F·C·H·W in loop order — the reference's consumption order. Serial,
 * so bit-reproducible across runs and thread counts. Or (torch_noise) the reference's own stream:
 * the same draws, each one torch.randn launch on a CUDA generator seeded with seed (rng_torch.h),
 * rounded to bf16 as the reference draws them.
 * The last block's refresh pass is skipped in a finite run (the reference runs it): it only writes
 * K/V that no later block reads, so the video is the same bits without it (test_dit_pipeline
 * `last_refresh`) — 34 forwards instead of 35 for 21 frames, the most expensive one saved. It runs
 * when something reads it: a prediction hook (on_pred), a probe, an attached tap that wants that
 * forward (sf_dit_tap.wants_forward; a tap without one wants all), or cfg.last_refresh (a caller
 * that goes on using the cache after the run).
 *
 * Initial latents (cfg.init_latents, the reference's initial_latent): before the first block, the F_in
 * given clean frames run through the DiT at timestep 0 (not context_noise: the reference's timestep·0), in
 * chunks of the no-initial-latent layout (frame 0 alone with an independent first frame, then blocks of
 * num_frame_per_block; F_in must fill them exactly), each a cache-only forward like the refresh pass
 * (sf_dit_refresh). They are the output's first F_in frames, handed out first (on_block with block −1,
 * start 0, all F_in frames at once). Then num_frames MORE frames are generated, all in blocks of
 * num_frame_per_block (no 1-frame first block even with an independent first frame), block b at frame
 * F_in + b·fpb; blocks, steps, draws and replayed noise count from 0 over these generated blocks (the
 * noise is the generated frames' only: noise.init (1, num_frames, C, H, W)). The context forwards call no
 * hook and are not tapped (the tap is detached during them): a tap's (block, step) names a denoising-loop
 * forward, the reference's extraction scripts have no initial latents; the generated blocks' taps see the
 * context frames among their keys.
 * Mirrors pipeline/causal_inference.py. Tested by tests/unit/test_dit_pipeline.c. */
#ifndef SF_PIPELINE_H
#define SF_PIPELINE_H

#include "cli.h"
#include "dit.h"
#include "scheduler.h"
#include "rng_torch.h"

typedef struct sf_pipeline_cfg {
    float steps[16];             /* warped timesteps, e.g. 1000 937.5 833.33 625 */
    int n_steps;
    int frames_per_block;        /* 3 */
    int independent_first_frame; /* first block of 1 frame */
    float context_noise;         /* timestep of the refresh pass (0) */
    int num_frames;              /* latent frames T; 0 = endless (until stopped; needs a rolling cache) */
    int lat_h, lat_w, channels;  /* latent H, W, C (16) */
    uint64_t seed;
    const sf_tfile *noise;       /* replay file, or NULL for the seeded generator */
    int last_refresh;            /* 1: run the last block's refresh pass even if nothing reads it (the
                                    cache is used after the run; the reference's 35 forwards) */
    int torch_noise;             /* 1: the seeded noise is torch.randn's on a CUDA device (rng_torch.h: the
                                    reference's stream for torch.manual_seed(seed)), bf16-rounded; finite runs */
    sf_torch_cuda_rng torch;     /* its generator at the run's first draw (seed, offset, the card's geometry) */
    int torch_batch, torch_sample; /* the reference drew torch_batch videos at once (its --num_samples); this is
                                    video torch_sample of them (0 / 0: one video) */
    const float *init_latents;   /* (init_frames, C, H, W) clean latents the video starts with (the reference's
                                    initial_latent: image-to-video with 1 frame, video extension), borrowed; or NULL */
    int init_frames;             /* F_in (0: none) */
} sf_pipeline_cfg;

/* The generator offsets one video of cfg takes from the reference's stream (cfg->torch_noise): its
 * initial noise and every re-noising draw, each a torch.randn launch of torch_batch videos' worth —
 * so video i of the reference's sequential loop (inference.py: one seed, prompt after prompt) starts
 * at i times this. 0 for an endless or invalid cfg. */
uint64_t sf_pipeline_torch_noise_span(const sf_pipeline_cfg *cfg);

/* progress (sf_progress_mode, common/cli.h): LINES prints one plain line per forward with elapsed
 * time and an ETA, BAR rewrites one '\r' line. */

typedef struct sf_pipeline_hooks {
    /* Before every forward: block, step (n_steps = refresh pass), start frame, frames (not called for
     * the last block's refresh pass when it is skipped, above). */
    void (*on_forward)(void *ctx, int block, int step, int64_t start_frame, int F);
    /* x0 prediction of every forward (step n_steps = the refresh pass's discarded x0), (F, C, H, W). */
    sf_status (*on_pred)(void *ctx, int block, int step, int F, const float *x0, sf_err *err);
    /* A finished block: frames [start_frame, start_frame + F) of the output, (F, C, H, W); block −1: the
     * initial latents (cfg.init_latents), before any generated block. */
    sf_status (*on_block)(void *ctx, int block, int64_t start_frame, int F, const float *x0, sf_err *err);
    void *ctx;
    int progress;                /* sf_progress_mode (cli.h): none, a '\r' bar (terminal, sf-run) or plain lines */
    const volatile int *stop;    /* optional: non-zero → SF_E_STOPPED between forwards */
} sf_pipeline_hooks;

/* The live hooks (sf_pipeline_run_live): prompt switching and stopping an endless run. */
typedef struct sf_pipeline_live {
    /* Optional, before a block's first forward: may replace the text context (sf_dit_set_context, a
     * prompt switch); set *recache = 1 to have the window's K/V re-cached under the new context
     * (sf_dit_recache with the clean latents the loop keeps). An error status ends the run. */
    sf_status (*on_block_start)(void *ctx, int block, int64_t start_frame, int *recache, sf_err *err);
    int (*stopped)(void *ctx);   /* optional: non-zero → SF_E_STOPPED between forwards (a signal) */
    void *ctx;
} sf_pipeline_live;

/* Check the block layout (frames a multiple of the block, ...; with initial latents their count too) and
 * fill *n_blocks, the generated blocks (0: endless).
 *
 * Endless runs (num_frames 0): blocks until a stop (SF_E_STOPPED) or the RoPE table's last row
 * (SF_OK, st->rope.max_pos latent frames). The seeded noise is then drawn block by block — the block's
 * F·C·H·W initial noise, then its re-noising draws — since there is no "whole video" to draw first;
 * replayed noise needs a finite run. Memory is constant: nothing grows with the block count. */
sf_status sf_pipeline_check(const sf_pipeline_cfg *cfg, int *n_blocks, sf_err *err);

/* What an endless run cannot have — the one rule, for sf_pipeline_prepare / _run and for sf-denoise's flags
 * (stage.c, before any work): the reference's noise stream (torch_noise: the reference has no endless run),
 * a global KV cache (local_attn_size -1: it would grow without end), replayed noise (replay: a file holds a
 * finite run's draws) or an output that keeps the whole video (whole_video: --save-latents, --output_path).
 * SF_E_ARG with the flags' names in err, else SF_OK. */
sf_status sf_pipeline_check_endless(int torch_noise, int local_attn_size, int replay, int whole_video, sf_err *err);

/* Make, before the run, what its forwards need on a GPU (cuDNN plans, workspaces, the fused attention's
 * check: sf_dit_prepare for every block shape of cfg); no-op on the CPU. The stage calls it before it
 * waits for its embedding, so this work overlaps the encoder's; the run's own prepare then finds it
 * made. Taps attached later add their buffers at the run. */
sf_status sf_pipeline_prepare(sf_dit_state *st, const sf_pipeline_cfg *cfg, sf_err *err);

/* Run the loop over a fresh cache (st must be sized for frames_per_block frames and have its
 * context set; global attention: a cache of init_frames + T frames). out: (init_frames + T, C, H, W) f32
 * or NULL. */
sf_status sf_pipeline_run(sf_dit_state *st, const sf_scheduler *sc, const sf_pipeline_cfg *cfg,
                          const sf_pipeline_hooks *hk, float *out, sf_err *err);
/* The same with live hooks (NULL: none); a finite run with hooks that never switch equals sf_pipeline_run. */
sf_status sf_pipeline_run_live(sf_dit_state *st, const sf_scheduler *sc, const sf_pipeline_cfg *cfg,
                               const sf_pipeline_hooks *hk, const sf_pipeline_live *lv, float *out, sf_err *err);

#endif
