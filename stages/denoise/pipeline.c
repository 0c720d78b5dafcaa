/* pipeline.c — the causal denoising loop with KV-cache refresh (see pipeline.h).
 * Mirrors pipeline/causal_inference.py CausalInferencePipeline.inference (T2V path).
 * The latents stay where the DiT runs (dit.h's slots): on a GPU a block's steps are enqueued
 * without a host sync, the re-noising draws go in and the block's x0 comes out.
 * Tested by tests/unit/test_dit_pipeline.c against dit_pipeline_{base,generator,generator_ema}. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline.h"
#include "parallel.h"
#include "stop.h"
#include "rng.h"
#include "trace.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The seeded noise, drawn by a helper thread in the reference's consumption order while the DiT
 * runs: the initial noise frame by frame, then every re-noising draw. The draws depend on nothing
 * the forwards compute, so the sequence (and every value) is the serial one; the loop only waits
 * when it gets ahead of the producer. On a GPU the ~60 ms of normals per video (21 draws + the
 * initial noise) then hide behind the forwards instead of adding to them. All draws are kept:
 * T·C·H·W + n_draws·F·C·H·W floats (33 MB for 21 frames at 480×832). */
typedef struct noise_feed {
    float *buf;                /* initial (T·fr) then the draws, draw k at off[k] */
    int64_t fr, T, n_draws;
    int64_t *off;              /* (n_draws + 1) offsets into buf; off[0] = T·fr */
    int64_t ready;             /* floats published so far */
    int threads;               /* for the Box–Muller transforms (sf_rng_fill_normal_mt; noise_threads) */
    int stop;                  /* read and written with __atomic */
    sf_rng rng;
    const sf_torch_cuda_rng *torch; /* the reference's stream instead (cfg->torch_noise), or NULL */
    int64_t batch, sample;     /* torch: each launch holds `batch` videos' draws; this video's is slice `sample` */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} noise_feed;

static void feed_publish(noise_feed *nf, int64_t upto) {
    pthread_mutex_lock(&nf->mu);
    nf->ready = upto;
    pthread_cond_broadcast(&nf->cv);
    pthread_mutex_unlock(&nf->mu);
}

static void *feed_main(void *arg) {
    noise_feed *nf = arg;
    int64_t off = 0;
    sf_torch_cuda_rng g = nf->torch ? *nf->torch : (sf_torch_cuda_rng){0};
    const int64_t vid = nf->off[0], at = nf->sample * vid; /* draw 0, the initial noise (torch: one launch of
                                                            batch videos), published frame by frame */
    for (int64_t f = 0; f < nf->T && !__atomic_load_n(&nf->stop, __ATOMIC_RELAXED); f++, off += nf->fr) {
        if (nf->torch) sf_torch_cuda_randn_range(&g, nf->batch * vid, at + off, at + off + nf->fr, 1, nf->buf + off, nf->threads);
        else sf_rng_fill_normal_mt(&nf->rng, nf->buf + off, (size_t)nf->fr, 0.0f, 1.0f, nf->threads); /* frame by frame */
        feed_publish(nf, off + nf->fr);
    }
    if (nf->torch) g.offset += sf_torch_cuda_randn_increment(&g, nf->batch * vid);
    for (int64_t d = 0; d < nf->n_draws && !__atomic_load_n(&nf->stop, __ATOMIC_RELAXED); d++) {
        const int64_t n = nf->off[d + 1] - nf->off[d];
        if (nf->torch) {
            sf_torch_cuda_randn_range(&g, nf->batch * n, nf->sample * n, (nf->sample + 1) * n, 1, nf->buf + nf->off[d],
                                      nf->threads);
            g.offset += sf_torch_cuda_randn_increment(&g, nf->batch * n);
        } else {
            sf_rng_fill_normal_mt(&nf->rng, nf->buf + nf->off[d], (size_t)n, 0.0f, 1.0f, nf->threads);
        }
        feed_publish(nf, nf->off[d + 1]);
    }
    return NULL;
}

/* Threads for the normals: on a GPU the host's cores are idle while the forwards run, and the first
 * block's first re-noising waits for the whole video's initial noise (~2.4 M normals at 832×480, ~30 ms
 * on one core): up to 8, leaving two cores to the driver and the main thread. On the CPU the forwards
 * use every core and the normals are a rounding error of a forward's time: one. */
static int noise_threads(const sf_dit_state *st) {
    const int n = sf_cpu_count() - 2;
    return st->gpu ? (n < 1 ? 1 : n > 8 ? 8 : n) : 1;
}

/* Wait until floats [0, upto) are drawn; returns them. */
static const float *feed_wait(noise_feed *nf, int64_t upto) {
    pthread_mutex_lock(&nf->mu);
    while (nf->ready < upto) pthread_cond_wait(&nf->cv, &nf->mu);
    pthread_mutex_unlock(&nf->mu);
    return nf->buf;
}

sf_status sf_pipeline_check(const sf_pipeline_cfg *cfg, int *n_blocks, sf_err *err) {
    int fpb = cfg->frames_per_block, T = cfg->num_frames;
    if (cfg->n_steps < 1 || cfg->n_steps > 16) return sf_fail(err, SF_E_ARG, "denoising_step_list needs 1..16 steps");
    if (fpb < 1 || fpb > 64) return sf_fail(err, SF_E_ARG, "num_frame_per_block must be in 1..64");
    const int Fi = cfg->init_frames, ctx_rest = cfg->independent_first_frame ? Fi - 1 : Fi;
    if (Fi < 0 || (Fi > 0 && (ctx_rest < 0 || ctx_rest % fpb)))
        return sf_fail(err, SF_E_ARG, "initial latents of %d frames: the count must be %sa multiple of num_frame_per_block %d "
                       "(the frames run in the blocks a video starts with)", Fi, cfg->independent_first_frame ? "1 + " : "", fpb);
    if (T == 0) { /* endless: what it cannot have is sf_pipeline_check_endless's */
        *n_blocks = 0;
        return SF_OK;
    }
    if (T < 1) return sf_fail(err, SF_E_ARG, "num_frames must be positive (0: endless)");
    if (cfg->init_frames) { /* every generated block has fpb frames (pipeline.h) */
        if (T % fpb)
            return sf_fail(err, SF_E_ARG,
                           "num_frames %d is not a multiple of num_frame_per_block %d (with initial latents every "
                           "generated block has %d frames)", T, fpb, fpb);
        *n_blocks = T / fpb;
        return SF_OK;
    }
    int rest = cfg->independent_first_frame ? T - 1 : T;
    if (rest < 0 || rest % fpb)
        return sf_fail(err, SF_E_ARG, "num_frames %d is not %sa multiple of num_frame_per_block %d", T,
                       cfg->independent_first_frame ? "1 + " : "", fpb);
    *n_blocks = rest / fpb + (cfg->independent_first_frame ? 1 : 0);
    return SF_OK;
}

/* The frames of generated block b (F_0 = 1 with an independent first frame and no initial latents). */
static int block_frames(const sf_pipeline_cfg *cfg, int b) {
    return cfg->independent_first_frame && !cfg->init_frames && b == 0 ? 1 : cfg->frames_per_block;
}

/* The chunks the initial latents run in (pipeline.h): those of a video without them, frame 0 alone with
 * an independent first frame, then blocks of fpb. Their number; chunk i has ctx_frames(cfg, i) frames. */
static int ctx_chunks(const sf_pipeline_cfg *cfg) {
    const int fpb = cfg->frames_per_block, iff = cfg->independent_first_frame != 0;
    return cfg->init_frames > 0 ? iff + (cfg->init_frames - iff) / fpb : 0;
}

static int ctx_frames(const sf_pipeline_cfg *cfg, int i) {
    return cfg->independent_first_frame && i == 0 ? 1 : cfg->frames_per_block;
}

/* The seeded noise's draws in the reference's consumption order, for a finite run (pipeline.h): draw 0 is
 * the whole initial noise (T·fr floats), draw 1 + (n_steps − 1)·b + k block b's k-th re-noising draw (F_b·fr).
 * The number of draws, and the floats of draw d. */
static int64_t noise_draws(const sf_pipeline_cfg *cfg, int n_blocks) {
    return 1 + (int64_t)n_blocks * (cfg->n_steps > 1 ? cfg->n_steps - 1 : 0);
}

static int64_t noise_draw_numel(const sf_pipeline_cfg *cfg, int64_t d) {
    const int64_t fr = (int64_t)cfg->channels * cfg->lat_h * cfg->lat_w;
    return (d == 0 ? cfg->num_frames : block_frames(cfg, (int)((d - 1) / (cfg->n_steps - 1)))) * fr;
}

uint64_t sf_pipeline_torch_noise_span(const sf_pipeline_cfg *cfg) {
    int nb;
    sf_err e;
    if (sf_pipeline_check(cfg, &nb, &e) || nb == 0) return 0;
    const int64_t B = cfg->torch_batch > 1 ? cfg->torch_batch : 1, n = noise_draws(cfg, nb);
    uint64_t span = 0;
    for (int64_t d = 0; d < n; d++) span += sf_torch_cuda_randn_increment(&cfg->torch, B * noise_draw_numel(cfg, d));
    return span;
}

sf_status sf_pipeline_check_endless(int torch_noise, int local_attn_size, int replay, int whole_video, sf_err *err) {
    if (torch_noise) return sf_fail(err, SF_E_ARG, "--noise-rng torch-cuda needs a finite run (the reference has no endless one)");
    if (local_attn_size == -1 || replay || whole_video)
        return sf_fail(err, SF_E_ARG, "--num_frames 0 (endless) needs a rolling KV cache (--local_attn_size N) and writes "
                                      "only --out (no --save-latents, --output_path or --noise)");
    return SF_OK;
}

static sf_status endless_check(const sf_dit_state *st, const sf_pipeline_cfg *cfg, sf_err *err) {
    return sf_pipeline_check_endless(cfg->torch_noise, st->local_attn_size, cfg->noise != NULL, 0, err);
}

/* The frames of each forward's block a run prepares for: the initial latents' chunks (ctx_chunks), then the
 * video's blocks (F_0 = 1 with an independent first frame and no initial latents), or for an endless run
 * (n_blocks 0) those until the rolling cache's shapes repeat. A calloc'd array of *n_prep, or NULL (out of
 * memory). */
static int *prep_blocks(const sf_dit_state *st, const sf_pipeline_cfg *cfg, int n_blocks, int *n_prep) {
    const int fpb = cfg->frames_per_block, nc = ctx_chunks(cfg);
    *n_prep = nc + (n_blocks == 0 ? (int)(st->cache_tokens / st->frame_tokens / fpb) + 3 : n_blocks);
    int *blk = calloc((size_t)*n_prep, sizeof(int));
    for (int b = 0; blk && b < *n_prep; b++) blk[b] = b < nc ? ctx_frames(cfg, b) : block_frames(cfg, b - nc);
    return blk;
}

sf_status sf_pipeline_prepare(sf_dit_state *st, const sf_pipeline_cfg *cfg, sf_err *err) {
    int n_blocks, n_prep;
    sf_status s = sf_pipeline_check(cfg, &n_blocks, err);
    if (!s && n_blocks == 0) s = endless_check(st, cfg, err); /* before any device work */
    if (s || !st->gpu) return s;
    int *blk = prep_blocks(st, cfg, n_blocks, &n_prep);
    s = blk ? sf_dit_prepare(st, n_prep, blk, err) : sf_fail(err, SF_E_NOMEM, "out of memory");
    free(blk);
    return s;
}

static sf_status replay(const sf_tfile *nf, const char *name, int nd, const int64_t *shape, float *dst, sf_err *err) {
    const sf_tensor *t = sf_tfile_get(nf, name);
    if (!t) return sf_fail(err, SF_E_NOTFOUND, "%s: missing noise tensor '%s'", nf->path, name);
    char what[192];
    snprintf(what, sizeof what, "%.80s: noise tensor '%.64s'", nf->path, name);
    sf_status s = sf_tensor_need_float(t, what, err);
    if (s) return s;
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    int ok = sf_tensor_numel(t) == n && (sf_shape_eq(t, nd, shape) || sf_shape_eq(t, nd - 1, shape + 1) ||
                                         (t->ndim == nd + 1 && t->shape[0] == 1));
    if (!ok) {
        char b[96];
        return sf_fail(err, SF_E_SHAPE, "%s: noise tensor '%s' has shape %s, expected %lld elements", nf->path, name,
                       sf_shape_str(t, b, sizeof b), (long long)n);
    }
    sf_tensor_to_f32(t, dst);
    return SF_OK;
}

/* The clean latents of the frames the KV cache can hold, for a re-cache after a prompt switch: sink
 * frames keep their slot, the others cycle through the rest (the cache's own eviction order). */
typedef struct history {
    float *x;           /* (n, C, H, W) */
    int64_t *frame;     /* (n) absolute frame in each slot, −1 = none */
    int64_t n, sink, fr;
} history;

static int64_t hist_slot(const history *h, int64_t f) {
    return f < h->sink ? f : h->sink + (f - h->sink) % (h->n - h->sink);
}

static const float *hist_get(void *ctx, int64_t f) {
    const history *h = ctx;
    int64_t k = hist_slot(h, f);
    return f >= 0 && h->frame[k] == f ? h->x + k * h->fr : NULL;
}

static void hist_put(history *h, int64_t start, int F, const float *x0) {
    for (int f = 0; f < F; f++) {
        int64_t k = hist_slot(h, start + f);
        h->frame[k] = start + f;
        memcpy(h->x + k * h->fr, x0 + f * h->fr, sizeof(float) * (size_t)h->fr);
    }
}

/* A finished block out of the loop: waits for its x0 (sf_dit_lat_get_begin came first), then the run's
 * output, the re-cache history and the hook. */
static sf_status hand_out(sf_dit_state *st, const sf_pipeline_hooks *hk, float *out, history *hist, int b, int64_t start,
                          int F, int64_t fr, const float *x0, sf_err *err) {
    sf_status s = sf_dit_lat_get_end(st, err);
    if (s) return s;
    if (out) memcpy(out + start * fr, x0, sizeof(float) * (size_t)(F * fr));
    if (hist->x) hist_put(hist, start, F, x0);
    if (hk && hk->on_block && (s = hk->on_block(hk->ctx, b, start, F, x0, err))) return s;
    sf_trace("denoise", "block_out", b, F);
    return SF_OK;
}

/* Whether anything reads the last block's refresh pass (pipeline.h): the caller, a prediction hook, a
 * probe, or an attached tap that may want it. */
static int last_refresh_read(const sf_dit_state *st, const sf_pipeline_cfg *cfg, const sf_pipeline_hooks *hk,
                             int block) {
    if (cfg->last_refresh || (hk && hk->on_pred) || st->probe) return 1;
    return st->tap.done && (!st->tap.wants_forward || st->tap.wants_forward(st->tap.ctx, block, cfg->n_steps));
}

/* The initial latents' context forwards (pipeline.h): chunk by chunk, cache-only at timestep 0, untapped;
 * then they go out as the output's first frames. */
static sf_status run_context(sf_dit_state *st, const sf_pipeline_cfg *cfg, const sf_pipeline_hooks *hk, int n_ctx,
                             const int *blk, float *out, history *hist, sf_err *err) {
    const int64_t fr = (int64_t)cfg->channels * cfg->lat_h * cfg->lat_w;
    const sf_dit_tap tap = st->tap;
    memset(&st->tap, 0, sizeof st->tap);
    const float tv[64] = {0}; /* the reference's timestep · 0, whatever context_noise is */
    sf_status s = SF_OK;
    int64_t start = 0;
    for (int i = 0; i < n_ctx && !s; start += blk[i++]) {
        const int64_t n = blk[i] * fr;
        if (!(s = sf_stop_check(err)) && hk && hk->stop && *hk->stop) s = sf_fail(err, SF_E_STOPPED, "interrupted");
        if (!s) s = sf_dit_lat_put(st, SF_LAT_X, cfg->init_latents + start * fr, n, err);
        if (!s) s = sf_dit_refresh(st, blk[i], tv, start, err);
        sf_trace("denoise", "context", i, blk[i]);
    }
    st->tap = tap;
    if (s) return s;
    const int Fi = cfg->init_frames;
    if (out) memcpy(out, cfg->init_latents, sizeof(float) * (size_t)(Fi * fr));
    if (hist->x) hist_put(hist, 0, Fi, cfg->init_latents);
    return hk && hk->on_block ? hk->on_block(hk->ctx, -1, 0, Fi, cfg->init_latents, err) : SF_OK;
}

sf_status sf_pipeline_run(sf_dit_state *st, const sf_scheduler *sc, const sf_pipeline_cfg *cfg,
                          const sf_pipeline_hooks *hk, float *out, sf_err *err) {
    return sf_pipeline_run_live(st, sc, cfg, hk, NULL, out, err);
}

sf_status sf_pipeline_run_live(sf_dit_state *st, const sf_scheduler *sc, const sf_pipeline_cfg *cfg,
                               const sf_pipeline_hooks *hk, const sf_pipeline_live *lv, float *out, sf_err *err) {
    int n_blocks;
    sf_status s = sf_pipeline_check(cfg, &n_blocks, err);
    if (s) return s;
    const int C = cfg->channels, H = cfg->lat_h, W = cfg->lat_w, T = cfg->num_frames, fpb = cfg->frames_per_block;
    const int64_t fr = (int64_t)C * H * W;
    const int endless = n_blocks == 0;
    if (H != st->lat_h || W != st->lat_w || fpb > st->max_frames)
        return sf_fail(err, SF_E_ARG, "pipeline shape does not match the DiT state");
    if (endless && (s = endless_check(st, cfg, err))) return s;
    if (cfg->init_frames && !cfg->init_latents) return sf_fail(err, SF_E_ARG, "init_frames without init_latents");
    const int64_t whole = cfg->init_frames + (endless ? fpb : T); /* frames up to the first generated block's end */
    if (cfg->init_frames && whole > st->rope.max_pos)
        return sf_fail(err, SF_E_ARG, "%d initial latent frames + %d frames pass the RoPE table's %d positions",
                       cfg->init_frames, endless ? fpb : T, st->rope.max_pos);
    if (cfg->init_frames && st->local_attn_size == -1 && whole * st->frame_tokens > st->cache_tokens)
        return sf_fail(err, SF_E_ARG, "the KV cache holds %lld frames; global attention over %d initial + %d frames needs "
                       "them all", (long long)(st->cache_tokens / st->frame_tokens), cfg->init_frames, T);
    int n_prep; /* the blocks sf_dit_prepare readies: the context chunks, the video's (endless: until the cache's
                   shapes repeat) */
    const int n_ctx = ctx_chunks(cfg), Fi = cfg->init_frames;
    const int64_t n_draws = noise_draws(cfg, n_blocks) - 1; /* the re-noising draws */
    noise_feed nf;
    memset(&nf, 0, sizeof nf);
    nf.threads = noise_threads(st);
    int feeding = 0;
    history hist = {NULL, NULL, 0, 0, fr};
    float *noise = cfg->noise || endless ? sf_calloc2((size_t)(endless ? fpb : T) * (size_t)fr, sizeof(float)) : NULL;
    float *x0 = sf_calloc2((size_t)fpb * (size_t)fr, sizeof(float));  /* a block's (or a step's) prediction, host copy */
    float *eps = sf_calloc2((size_t)fpb * (size_t)fr, sizeof(float)); /* a replayed re-noising draw */
    int *blk = prep_blocks(st, cfg, n_blocks, &n_prep); /* frames of each block */
    if (lv && lv->on_block_start) {
        hist.n = st->cache_tokens / st->frame_tokens;
        hist.sink = st->local_attn_size == -1 ? 0 : st->sink_tokens / st->frame_tokens;
        hist.x = sf_calloc2((size_t)hist.n * (size_t)fr, sizeof(float));
        hist.frame = malloc(sizeof(int64_t) * (size_t)hist.n);
        for (int64_t i = 0; hist.frame && i < hist.n; i++) hist.frame[i] = -1;
        if (!hist.x || !hist.frame) blk = (free(blk), NULL); /* → out of memory below */
    }
    if (endless) {
        sf_rng_seed(&nf.rng, cfg->seed);
    } else if (!cfg->noise && blk) { /* the draws end to end: off[k] = where re-noising draw k starts */
        nf.fr = fr, nf.T = T, nf.n_draws = n_draws;
        nf.off = calloc((size_t)n_draws + 1, sizeof(int64_t));
        if (nf.off) {
            nf.off[0] = noise_draw_numel(cfg, 0);
            for (int64_t d = 0; d < n_draws; d++) nf.off[d + 1] = nf.off[d] + noise_draw_numel(cfg, d + 1);
            nf.buf = sf_calloc2((size_t)nf.off[n_draws], sizeof(float));
        }
        noise = nf.buf;
    }
    if (!noise || !x0 || !eps || !blk) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto fail;
    }
    if (endless) {
    } else if (cfg->noise) {
        int64_t sh[5] = {1, T, C, H, W};
        if ((s = replay(cfg->noise, "noise.init", 5, sh, noise, err))) goto fail;
    } else {
        sf_rng_seed(&nf.rng, cfg->seed);
        nf.torch = cfg->torch_noise ? &cfg->torch : NULL;
        nf.batch = cfg->torch_batch > 1 ? cfg->torch_batch : 1;
        nf.sample = cfg->torch_sample > 0 && cfg->torch_sample < nf.batch ? cfg->torch_sample : 0;
        pthread_mutex_init(&nf.mu, NULL);
        pthread_cond_init(&nf.cv, NULL);
        if (pthread_create(&nf.th, NULL, feed_main, &nf)) {
            pthread_cond_destroy(&nf.cv);
            pthread_mutex_destroy(&nf.mu);
            s = sf_fail(err, SF_E_NOMEM, "cannot start the noise thread");
            goto fail;
        }
        feeding = 1;
    }
    /* every plan and workspace the forwards need, before the loop (nothing new after sf_pipeline_prepare) */
    if ((s = sf_dit_prepare(st, n_prep, blk, err))) goto fail;
    sf_dit_state_reset(st);
    float *const run_out = endless ? NULL : out; /* an endless run keeps no whole video */
    if (Fi && (s = run_context(st, cfg, hk, n_ctx, blk, run_out, &hist, err))) goto fail;
    int64_t start = Fi; /* the generated blocks follow the initial latents */
    int draw = 0;
    double t0 = sf_now();
    sf_trace("denoise", "start", -1, n_blocks);
    const int skip_last = !endless && !last_refresh_read(st, cfg, hk, n_blocks - 1);
    int total_fwd = n_blocks * (cfg->n_steps + 1) - skip_last, done_fwd = 0;
    /* On a GPU a finished block is handed out after its refresh pass is enqueued behind the copy of its
       x0: the GPU runs the refresh while the host waits for x0 and writes it out, instead of idling until
       the host comes back (with a per-step prediction hook, and on the CPU, before the refresh, as ever) */
    const int late_out = st->gpu != NULL && !(hk && hk->on_pred);
    int pending = 0; /* a finished block whose hand-out waits for the refresh to be enqueued */
    for (int b = 0; endless || b < n_blocks; b++) {
        const int F = n_ctx + b < n_prep ? blk[n_ctx + b] : fpb;
        const int64_t gen = start - Fi; /* frames generated before this block: where its noise starts */
        const int64_t n = (int64_t)F * fr;
        if (endless && start + F > st->rope.max_pos) { /* the RoPE table's end: a clean end (pipeline.h) */
            sf_info("endless run: latent frame %lld is past the RoPE table (%d positions); ending the video",
                    (long long)(start + F), st->rope.max_pos);
            break;
        }
        if (lv && lv->stopped && lv->stopped(lv->ctx)) {
            s = sf_fail(err, SF_E_STOPPED, "interrupted");
            goto fail;
        }
        if (lv && lv->on_block_start) {
            int rc = 0;
            if ((s = lv->on_block_start(lv->ctx, b, start, &rc, err))) goto fail;
            if (rc && (s = sf_dit_recache(st, cfg->context_noise, fpb, cfg->independent_first_frame, hist_get,
                                             &hist, err)))
                goto fail;
        }
        const float *xin;
        if (endless) { /* this block's initial noise (pipeline.h: drawn block by block) */
            sf_rng_fill_normal_mt(&nf.rng, noise, (size_t)n, 0.0f, 1.0f, nf.threads);
            xin = noise;
        } else {
            if (feeding) feed_wait(&nf, (gen + F) * fr);
            xin = noise + gen * fr;
        }
        if ((s = sf_dit_lat_put(st, SF_LAT_X, xin, n, err))) goto fail;
        for (int k = 0; k <= cfg->n_steps; k++) {
            int refresh = k == cfg->n_steps;
            if (refresh && skip_last && b == n_blocks - 1) { /* the video is done: its x0 goes out, no refresh */
                if (pending) {
                    pending = 0;
                    if ((s = hand_out(st, hk, run_out, &hist, b, start, F, fr, x0, err))) goto fail;
                }
                break;
            }
            float tk = refresh ? cfg->context_noise : cfg->steps[k];
            float tv[64];
            for (int f = 0; f < F && f < 64; f++) tv[f] = tk;
            s = sf_stop_check(err); /* SIGINT/SIGTERM (common/stop.c) */
            if (!s && ((hk && hk->stop && *hk->stop) || (lv && lv->stopped && lv->stopped(lv->ctx))))
                s = sf_fail(err, SF_E_STOPPED, "interrupted");
            if (s) {
                sf_err e2 = {{0}};
                if (pending) /* the finished block still goes out */
                    (void)hand_out(st, hk, run_out, &hist, b, start, F, fr, x0, &e2);
                goto fail;
            }
            if (hk && hk->on_forward) hk->on_forward(hk->ctx, b, k, start, F);
            /* the refresh pass feeds the clean x0 of the last step, never noised; it writes only the
             * cache (sf_dit_refresh), or, when a hook reads its prediction, puts that in the aux slot
             * (x0 is what the block hands out) */
            if (refresh && (s = sf_dit_lat_copy(st, SF_LAT_X, SF_LAT_X0, n, err))) goto fail;
            const sf_dit_slot dst = refresh ? SF_LAT_AUX : SF_LAT_X0;
            if (refresh && !(hk && hk->on_pred)) { /* nobody reads its prediction: the cache only */
                if ((s = sf_dit_refresh(st, F, tv, start, err))) goto fail;
            } else if ((s = sf_dit_denoise(st, F, tv, start, sf_scheduler_sigma_x0(sc, tk), dst, err))) {
                goto fail;
            }
            done_fwd++;
            if (pending) { /* the refresh is enqueued: now wait for the block's x0 and hand it out */
                pending = 0;
                if ((s = hand_out(st, hk, run_out, &hist, b, start, F, fr, x0, err))) goto fail;
            }
            if (hk && hk->on_pred) { /* a per-step hook reads the prediction: the one place a step waits */
                float *h = refresh ? eps : x0;
                if ((s = sf_dit_lat_get(st, dst, h, n, err))) goto fail;
                if ((s = hk->on_pred(hk->ctx, b, k, F, h, err))) goto fail;
            }
            if (hk && hk->progress && endless) {
                fprintf(stderr, hk->progress == SF_PROGRESS_LINES ? "sf-denoise: block %d step %d/%d: elapsed %.1fs\n"
                                                                   : "\rsf-denoise: block %d step %d/%d  %.1fs   ",
                        b + 1, k + 1, cfg->n_steps + 1, sf_now() - t0);
                fflush(stderr);
            } else if (hk && hk->progress == SF_PROGRESS_LINES) {
                double el = sf_now() - t0, eta = el / done_fwd * (total_fwd - done_fwd);
                fprintf(stderr, "sf-denoise: block %d/%d step %d/%d: elapsed %.1fs, ETA %.1fs (%d/%d forwards)\n", b + 1,
                        n_blocks, k + 1, cfg->n_steps + 1, el, eta, done_fwd, total_fwd);
                fflush(stderr);
            } else if (hk && hk->progress) {
                double el = sf_now() - t0;
                fprintf(stderr, "\rsf-denoise: block %d/%d step %d/%d  %.1fs  %.2f it/s   ", b + 1, n_blocks, k + 1,
                        cfg->n_steps + 1, el, el > 0 ? done_fwd / el : 0.0);
                if (done_fwd == total_fwd) fputc('\n', stderr);
                fflush(stderr);
            }
            if (k + 1 < cfg->n_steps) { /* re-noise to the next step's level */
                if (cfg->noise) {
                    char nm[64];
                    snprintf(nm, sizeof nm, "noise.renoise.%d", draw);
                    int64_t sh[4] = {F, C, H, W};
                    if ((s = replay(cfg->noise, nm, 4, sh, eps, err))) goto fail;
                }
                if (endless) sf_rng_fill_normal_mt(&nf.rng, eps, (size_t)n, 0.0f, 1.0f, nf.threads);
                const float *e = cfg->noise || endless ? eps : feed_wait(&nf, nf.off[draw + 1]) + nf.off[draw];
                draw++;
                if ((s = sf_dit_renoise(st, e, n, sf_scheduler_sigma_noise(sc, cfg->steps[k + 1]), err))) goto fail;
            }
            if (k + 1 == cfg->n_steps) { /* block finished: its x0 on its way to the host, handed out now or after
                                             the refresh pass is enqueued (late_out) */
                if ((s = sf_dit_lat_get_begin(st, SF_LAT_X0, x0, n, err))) goto fail;
                if (late_out) pending = 1;
                else if ((s = hand_out(st, hk, run_out, &hist, b, start, F, fr, x0, err))) goto fail;
            }
        }
        start += F;
    }
    s = SF_OK;
fail:
    if (feeding) {
        __atomic_store_n(&nf.stop, 1, __ATOMIC_RELAXED);
        pthread_join(nf.th, NULL);
        pthread_cond_destroy(&nf.cv);
        pthread_mutex_destroy(&nf.mu);
    }
    free(noise);
    free(hist.x);
    free(hist.frame);
    free(nf.off);
    free(x0);
    free(eps);
    free(blk);
    return s;
}
