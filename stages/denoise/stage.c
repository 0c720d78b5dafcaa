/* stage.c — sf-denoise's flags gathered and its run (stage.h). Moved out of main.c unchanged in
 * behaviour: the same checks in the same order, the same messages; failures return a status (main
 * turns it into the exit line) with everything made so far released. */
#define _POSIX_C_SOURCE 200809L
#include "stages/denoise/stage.h"

#include "device.h"
#include "parallel.h"
#include "tfile.h"
#include "trace.h"
#include "wire.h"
#include "stages/denoise/live.h"
#include "stages/denoise/pipeline.h"
#include "stages/denoise/run_io.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- flags -------------------------------------------------------------------------------- */

/* configs/<name>: in the working directory, then next to the binary (../../configs). */
static const char *find_config(const char *name, char *buf, size_t n) {
    char rel[256];
    snprintf(rel, sizeof rel, "configs/%s", name);
    return sf_find_data(rel, buf, n);
}

static sf_status get_long(const sf_args *a, const sf_opt *opts, const char *name, long lo, long hi, long *v, sf_err *err) {
    const char *s = sf_args_get(a, opts, name);
    char flag[64];
    snprintf(flag, sizeof flag, "--%s", name);
    return s ? sf_arg_long(flag, s, lo, hi, v, err) : SF_OK;
}

/* "A:B", two strict integers (sf_scan_i64), any values; 0 when s is not that. */
static int int_pair(const char *s, long *a, long *b) {
    int64_t x, y;
    if (!sf_scan_i64(&s, LONG_MIN, LONG_MAX, &x) || *s++ != ':' || !sf_scan_i64(&s, LONG_MIN, LONG_MAX, &y) || *s) return 0;
    *a = (long)x, *b = (long)y;
    return 1;
}

/* --noise-rng sfpipe | torch-cuda[:SMS:THREADS], --noise-offset, --noise-sequence, --noise-batch. */
static sf_status noise_rng_get(const sf_args *a, const sf_opt *opts, sf_denoise_opts *o, sf_err *err) {
    const char *v = sf_args_get(a, opts, "noise-rng");
    sf_status s;
    if (v && strcmp(v, "sfpipe")) {
        const char *p = v + 10;
        long sms = 0, tpsm = 0;
        if (strncmp(v, "torch-cuda", 10) || (*p && *p != ':'))
            return sf_fail(err, SF_E_ARG, "--noise-rng: expected sfpipe, torch-cuda or torch-cuda:SMS:THREADS, got '%s'", v);
        if (*p && (!int_pair(p + 1, &sms, &tpsm) || sms < 1 || sms > 4096 || tpsm < 256 || tpsm > 65536 || tpsm % 256))
            return sf_fail(err, SF_E_ARG,
                           "--noise-rng torch-cuda:SMS:THREADS: the card's multiprocessors (1..4096) and resident "
                           "threads per multiprocessor (a multiple of 256, e.g. 2048 or 1536), got '%s'", v);
        o->torch_noise = 1, o->torch_sms = (int)sms, o->torch_tpsm = (int)tpsm;
    }
    if ((s = get_long(a, opts, "noise-offset", 0, LONG_MAX, &o->noise_offset, err)) ||
        (s = get_long(a, opts, "noise-sequence", 0, 1L << 40, &o->noise_seq, err)))
        return s;
    if (o->noise_offset % 4)
        return sf_fail(err, SF_E_ARG, "--noise-offset %ld: PyTorch's CUDA generator moves in multiples of 4", o->noise_offset);
    o->noise_batch = 1, o->noise_sample = 0;
    const char *nb = sf_args_get(a, opts, "noise-batch");
    if (nb) {
        if (!int_pair(nb, &o->noise_batch, &o->noise_sample) || o->noise_batch < 1 || o->noise_batch > 4096 ||
            o->noise_sample < 0 || o->noise_sample >= o->noise_batch)
            return sf_fail(err, SF_E_ARG, "--noise-batch B:S: B videos drawn at once (1..4096), this one S (0..B-1); got '%s'", nb);
    }
    const char *const only_torch[] = {"noise-offset", "noise-sequence", "noise-batch"};
    for (int i = 0; i < 3; i++)
        if (sf_args_get(a, opts, only_torch[i]) && !o->torch_noise)
            return sf_fail(err, SF_E_ARG, "--%s needs --noise-rng torch-cuda", only_torch[i]);
    return SF_OK;
}

/* --round-frames: --num_frames rounded down to whole blocks of the config, [1, fpb, ...] with an
 * independent first frame (and no --initial-latents), else [fpb, ...] (run_extraction_streaming_distributed.py's block_sizes and
 * "Adjusting num_frames"); less than one block is an error. */
static sf_status round_frames(sf_denoise_opts *o, sf_err *err) {
    const long fpb = o->rc.num_frame_per_block, first = o->rc.independent_first_frame && !o->init_arg ? 1 : 0;
    if (fpb < 1) return SF_OK; /* the pipeline check names the bad config */
    const long n = o->num_frames < 1 ? 0 : first + (o->num_frames - first) / fpb * fpb;
    if (n < (first ? 1 : fpb))
        return sf_fail(err, SF_E_ARG, "--num_frames %ld is less than one block (%ld frames)", o->num_frames, first ? 1 : fpb);
    if (n != o->num_frames) sf_info("adjusting num_frames from %ld to %ld (whole blocks of %ld)", o->num_frames, n, fpb);
    o->num_frames = n;
    return SF_OK;
}

/* --sink-ablate-layers (default all) against a model of num_layers (−1: the syntax only), parsed as --layer_indices
 * and its errors naming the flag. */
static sf_status ablate_layers(const sf_denoise_opts *o, int num_layers, int **out, int *n, sf_err *err) {
    static const char *const all[1] = {"all"};
    *out = NULL, *n = 0;
    sf_status s = sf_taps_parse_layers(o->n_ab_lay ? o->ab_lay : all, o->n_ab_lay ? o->n_ab_lay : 1, num_layers, out, n, err);
    if (s && !strncmp(err->msg, "--layer_indices", 15)) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg + 15);
        sf_fail(err, s, "--sink-ablate-layers%s", m);
    }
    return s;
}

sf_status sf_denoise_opts_get(const sf_args *a, const sf_opt *opts, sf_denoise_opts *o, sf_err *err) {
    sf_status s;
    memset(o, 0, sizeof *o);
    if ((s = sf_stage_flags_get(a, opts, &o->sh, err))) return s; /* --device / --gpu-id, --model-dir, --progress */
    const sf_device dev = {o->sh.cuda, o->sh.ordinal}; /* a GPU that cannot be used: one line before any work */
    if (dev.cuda && (s = sf_device_check(&dev, err))) return s;
    o->threads = sf_cpu_count(), o->bench_tokens = 4680, o->model_dir = o->sh.model_dir;
    if ((s = get_long(a, opts, "threads", 1, 1024, &o->threads, err))) return s;
    o->fp8 = sf_args_has(a, opts, "fp8");
    if ((o->bench = sf_args_get(a, opts, "bench"))) /* stages/denoise/bench*.c */
        return get_long(a, opts, "bench-tokens", 3, 1L << 24, &o->bench_tokens, err);
    /* inputs and outputs named up front so flag errors come before any heavy work */
    o->pe_arg = sf_args_get(a, opts, "prompt-embeds"), o->in_url = sf_args_get(a, opts, "in");
    o->out_url = sf_args_get(a, opts, "out"), o->save = sf_args_get(a, opts, "save-latents");
    o->tap_out = sf_args_get(a, opts, "output-path"), o->init_arg = sf_args_get(a, opts, "initial-latents");
    o->n_lay = sf_args_all(a, opts, "layer-indices", &o->lay);
    o->n_ab_lay = sf_args_all(a, opts, "sink-ablate-layers", &o->ab_lay);
    o->list_layers = sf_args_has(a, opts, "list-layers"); /* a --check that prints the tap layers */
    o->check = sf_args_has(a, opts, "check") || o->list_layers; /* --check: no input or output needed, none opened */
    /* shell composition: `sf-encode ... | sf-denoise | sf-decode -o v.y4m` reads and writes the
     * wire on stdin/stdout when those are pipes or files (DESIGN §3: stdout carries data only
     * when it is the --out) */
    if (!o->check && !o->pe_arg && !o->in_url && sf_fd_is_data(0)) o->in_url = "-";
    if (!o->check && !o->out_url && !o->save && !o->tap_out && sf_fd_is_data(1)) o->out_url = "-";
    if (!o->check && !o->pe_arg && !o->in_url)
        return sf_fail(err, SF_E_ARG, "no text conditioning: give --prompt-embeds FILE[:NAME] or --in URL");
    if (!o->check && o->n_lay > 0 && !o->tap_out)
        return sf_fail(err, SF_E_ARG, "--layer_indices needs --output_path FILE (.pt or .safetensors)");
    if (!o->check && !o->out_url && !o->save && !o->tap_out)
        return sf_fail(err, SF_E_ARG, "nothing to write: give --out URL, --save-latents FILE or --output_path FILE");
    /* every output's folder, before any work: a typo must not cost the whole run */
    if ((s = sf_check_out_dir("--save-latents", o->save, 0, err)) || (s = sf_check_out_dir("--output_path", o->tap_out, 0, err)) ||
        (s = sf_check_out_dir("--out", o->out_url, 0, err)))
        return s;
    int *layers = NULL, n_layers = 0; /* taps.c checks the syntax now, the range once the model is known */
    if ((s = sf_taps_parse_layers(o->lay, o->n_lay, -1, &layers, &n_layers, err))) return s;
    free(layers), layers = NULL;
    if ((s = get_long(a, opts, "sink-ablate", 0, 1L << 20, &o->ablate, err))) return s;
    if (o->n_ab_lay > 0 && !o->ablate) return sf_fail(err, SF_E_ARG, "--sink-ablate-layers goes with --sink-ablate K");
    if ((s = ablate_layers(o, -1, &layers, &n_layers, err))) return s;
    free(layers);
    o->tmode = SF_TAP_LOGITS, o->tsel = SF_TAP_SEL_SEED;
    const char *tm = sf_args_get(a, opts, "tap-mode"), *ts = sf_args_get(a, opts, "tap-select");
    if ((tm && (s = sf_taps_parse_mode(tm, &o->tmode, err))) ||
        (ts && (s = sf_taps_parse_select(ts, &o->tsel, &o->sel_b, &o->sel_s, err))))
        return s;
    o->tap_cross = sf_args_has(a, opts, "tap-cross");
    o->token_frames = 1;
    if ((s = get_long(a, opts, "tap-token-frames", 1, 1L << 20, &o->token_frames, err))) return s;
    if (sf_args_get(a, opts, "tap-token-frames") && o->tmode != SF_TAP_TOKENS)
        return sf_fail(err, SF_E_ARG, "--tap-token-frames goes with --tap-mode tokens");
    /* the .pt dict (taps_pt.c) and what its distributed layouts record */
    const char *pl = sf_args_get(a, opts, "pt-layout");
    o->pt_layout = SF_PT_AUTO, o->pt_rank = 0, o->pt_world = 1, o->pt_prompt_index = 0;
    if ((pl && (s = sf_taps_parse_pt_layout(pl, &o->pt_layout, err))) ||
        (s = get_long(a, opts, "pt-world-size", 1, 1L << 20, &o->pt_world, err)) ||
        (s = get_long(a, opts, "pt-rank", 0, (1L << 20) - 1, &o->pt_rank, err)) ||
        (s = get_long(a, opts, "pt-prompt-index", 0, (long)((~0ul) >> 2), &o->pt_prompt_index, err)))
        return s;
    if ((sf_args_get(a, opts, "pt-rank") || sf_args_get(a, opts, "pt-world-size")) &&
        o->pt_layout != SF_PT_DISTRIBUTED_STREAMING)
        return sf_fail(err, SF_E_ARG, "--pt-rank / --pt-world-size are recorded by --pt-layout distributed_streaming only");
    if (sf_args_get(a, opts, "pt-prompt-index") && o->pt_layout != SF_PT_DISTRIBUTED_MULTI_PROMPT)
        return sf_fail(err, SF_E_ARG, "--pt-prompt-index is recorded by --pt-layout distributed_multi_prompt only");
    if (o->pt_rank >= o->pt_world)
        return sf_fail(err, SF_E_ARG, "--pt-rank %ld is not below --pt-world-size %ld (ranks 0..W-1)", o->pt_rank, o->pt_world);
    if (o->pt_layout != SF_PT_AUTO && !o->tap_out && !o->check)
        return sf_fail(err, SF_E_ARG, "--pt-layout needs --output_path FILE.pt");

    /* configs */
    char dbuf[4096], cbuf[4096];
    const char *def = find_config("default_config.yaml", dbuf, sizeof dbuf);
    const char *cpath = sf_args_get(a, opts, "config-path");
    if (!cpath) cpath = find_config("self_forcing_dmd.yaml", cbuf, sizeof cbuf);
    else if (cpath[0] != '/' && sf_find_data(cpath, cbuf, sizeof cbuf)) cpath = cbuf; /* configs/x.yaml from anywhere */
    if (!def) sf_warn("configs/default_config.yaml not found (set SF_ROOT to the sfpipe folder); using only %s",
                      cpath ? cpath : "built-in defaults");
    if ((s = sf_run_config_load(def, cpath, &o->rc, err))) return s;
    snprintf(o->config_path, sizeof o->config_path, "%s", cpath ? cpath : "");
    if (o->rc.n_steps == 0)
        return sf_fail(err, SF_E_ARG, "the config has no denoising_step_list (use --config_path configs/self_forcing_dmd.yaml)");
    o->num_frames = 21, o->height = 480, o->width = 832, o->seed = 42, o->las = o->rc.local_attn_size, o->sink = o->rc.sink_size;
    if ((s = get_long(a, opts, "num-frames", 0, 1023, &o->num_frames, err)) ||
        (s = get_long(a, opts, "height", 8, 1 << 16, &o->height, err)) ||
        (s = get_long(a, opts, "width", 8, 1 << 16, &o->width, err)) ||
        (s = get_long(a, opts, "seed", 0, (long)((~0ul) >> 1), &o->seed, err)) ||
        (s = get_long(a, opts, "local-attn-size", -1, 1023, &o->las, err)) ||
        (s = get_long(a, opts, "sink-size", 0, 1023, &o->sink, err)))
        return s;
    if (sf_args_has(a, opts, "round-frames") && (s = round_frames(o, err))) return s;
    if (o->height % 16 || o->width % 16)
        return sf_fail(err, SF_E_ARG, "--height/--width must be multiples of 16 (latent /8, patch 2)");
    o->endless = o->num_frames == 0;
    o->rope_frames = o->endless ? SF_DIT_ROPE_FRAMES_MAX : SF_DIT_ROPE_FRAMES;
    if ((s = get_long(a, opts, "rope-frames", 1, SF_DIT_ROPE_FRAMES_MAX, &o->rope_frames, err))) return s;
    o->noise_path = sf_args_get(a, opts, "noise");
    if ((s = noise_rng_get(a, opts, o, err)) ||
        (o->endless && (s = sf_pipeline_check_endless(o->torch_noise, (int)o->las, o->noise_path != NULL,
                                                      o->save || o->tap_out, err))))
        return s;
    if (o->torch_noise && o->noise_path)
        return sf_fail(err, SF_E_ARG, "--noise replays its own draws: it takes no --noise-rng");
    if (o->tap_out && o->tsel == SF_TAP_SEL_ONE) { /* a forward the run never makes: said now, not after the run */
        sf_pipeline_cfg pc = {.n_steps = o->rc.n_steps, .frames_per_block = o->rc.num_frame_per_block,
                              .independent_first_frame = o->rc.independent_first_frame, .num_frames = (int)o->num_frames,
                              /* the generated blocks do not depend on F_in (the run checks it once the file is read) */
                              .init_frames = o->init_arg ? (o->rc.independent_first_frame ? 1 : o->rc.num_frame_per_block) : 0};
        int nb = 0;
        if ((s = sf_pipeline_check(&pc, &nb, err))) return s;
        if ((nb && o->sel_b >= nb) || o->sel_s > o->rc.n_steps)
            return sf_fail(err, SF_E_ARG,
                           "--tap-select b:%d,s:%d: this run makes blocks 0..%d and steps 0..%d per block (%d: the clean "
                           "refresh pass)", o->sel_b, o->sel_s, nb - 1, o->rc.n_steps, o->rc.n_steps);
    }
    o->follow = (o->endless || sf_args_has(a, opts, "follow-prompts")) && o->in_url && !o->pe_arg;
    o->pace = 0, o->pace_ahead = 0.5;
    const char *pv = sf_args_get(a, opts, "pace"), *pa = sf_args_get(a, opts, "pace-ahead");
    if (pv && ((s = sf_arg_double("--pace", pv, &o->pace, err)) || !(o->pace >= 0 && o->pace <= 1000)))
        return s ? s : sf_fail(err, SF_E_ARG, "--pace must be a frame rate in 0..1000 (0: no pacing), got '%s'", pv);
    if (pa && ((s = sf_arg_double("--pace-ahead", pa, &o->pace_ahead, err)) || !(o->pace_ahead >= 0 && o->pace_ahead <= 3600)))
        return s ? s : sf_fail(err, SF_E_ARG, "--pace-ahead must be in 0..3600 seconds, got '%s'", pa);
    if (pa && !(o->pace > 0)) sf_warn("--pace-ahead has no effect without --pace");
    o->chunk = 3;
    if ((s = get_long(a, opts, "chunk-frames", 1, 1 << 20, &o->chunk, err))) return s;
    if (o->las == -1 && o->sink > 0) sf_warn("sink_size %ld has no effect with global attention (local_attn_size -1)", o->sink);
    if (o->las == 0 || o->las < -1)
        return sf_fail(err, SF_E_ARG, "local_attn_size must be -1 (global) or a positive number of frames");
    const char *sr = sf_args_get(a, opts, "sink-rope");
    if (sr && strcmp(sr, "absolute") && strcmp(sr, "realign"))
        return sf_fail(err, SF_E_ARG, "--sink-rope must be absolute or realign");
    o->sink_rope = sr && !strcmp(sr, "realign");
    const char *gap = sf_args_get(a, opts, "sink-rope-gap");
    if (gap && !strcmp(gap, "block")) /* a block's frames: Deep Forcing's Deep Sink-only place (its --is_ds_only) */
        o->sink_rope_gap = o->rc.num_frame_per_block;
    else if ((s = get_long(a, opts, "sink-rope-gap", 0, 1023, &o->sink_rope_gap, err)))
        return s;
    if (sf_args_get(a, opts, "sink-rope-gap") && !o->sink_rope)
        return sf_fail(err, SF_E_ARG, "--sink-rope-gap goes with --sink-rope realign");
    if (o->sink_rope && (o->las == -1 || o->sink <= 0))
        return sf_fail(err, SF_E_ARG, "--sink-rope realign needs a rolling KV cache with a sink (--local_attn_size N and "
                                      "--sink_size > 0; this run has %ld and %ld)", o->las, o->sink);
    if ((s = get_long(a, opts, "kv-compress", 0, 1 << 20, &o->kv_compress, err))) return s;
    if (o->kv_compress && o->las == -1)
        return sf_fail(err, SF_E_ARG, "--kv-compress needs a rolling KV cache (--local_attn_size N): with global "
                                      "attention nothing is evicted, so nothing is compressed");
    o->pc_recent = 4, o->pc_max_reuse = 7; /* Deep Forcing's released defaults (its --Recent, topc_max_reuse) */
    if ((s = get_long(a, opts, "pc-budget", 0, 1 << 20, &o->pc_budget, err)) ||
        (s = get_long(a, opts, "pc-recent", 1, 1 << 20, &o->pc_recent, err)) ||
        (s = get_long(a, opts, "pc-max-reuse", 0, 1 << 20, &o->pc_max_reuse, err)))
        return s;
    if (!o->pc_budget && (sf_args_get(a, opts, "pc-recent") || sf_args_get(a, opts, "pc-max-reuse")))
        return sf_fail(err, SF_E_ARG, "--pc-recent and --pc-max-reuse go with --pc-budget N");
    if (o->pc_budget && o->las == -1)
        return sf_fail(err, SF_E_ARG, "--pc-budget needs a rolling KV cache (--local_attn_size N): with global "
                                      "attention the cache never overflows, so nothing is compressed");
    if (o->pc_budget && o->kv_compress)
        return sf_fail(err, SF_E_ARG, "--pc-budget and --kv-compress are two rules for one cache: give one");
    if (o->pc_budget && o->sink_rope)
        return sf_fail(err, SF_E_ARG, "--pc-budget moves the sink itself, as Deep Forcing's code does: leave --sink-rope "
                                      "out");
    o->ckpath = sf_args_get(a, opts, "checkpoint-path");
    o->no_ckpt = sf_args_has(a, opts, "no-checkpoint"), o->use_ema = !sf_args_has(a, opts, "no-ema");
    o->require_ckpt = sf_args_has(a, opts, "require-checkpoint"), o->recache = sf_args_has(a, opts, "recache");
    o->prompt = sf_args_get(a, opts, "prompt");
    o->dump = sf_args_has(a, opts, "dump-preds") && o->save;
    return SF_OK;
}

/* ---- the run ------------------------------------------------------------------------------ */

typedef struct run {
    sf_wire *out;
    float *preds;            /* dump: (blocks, steps+1, F, C, H, W) */
    int n_steps, fpb, C, H, W;
    int64_t fr;
    sf_taps *taps;
    const char *prompt, *weights;
    uint64_t seed;
    int live;                /* following prompts: a "progress" message before every forward (live.h) */
    sf_pace *pace;           /* the blocks' start times; with --pace the viewer's clock too (pace.h) */
} run;

static void on_forward(void *c, int b, int s, int64_t start, int F) {
    run *r = c;
    (void)F;
    if (r->taps) sf_taps_on_forward(r->taps, b, s, start);
    if (r->live && r->out) sf_denoise_live_progress(r->out, b, s, r->n_steps);
}

static sf_status on_pred(void *c, int b, int s, int F, const float *x0, sf_err *err) {
    run *r = c;
    (void)err;
    memcpy(r->preds + ((int64_t)b * (r->n_steps + 1) + s) * r->fpb * r->fr, x0, sizeof(float) * (size_t)(F * r->fr));
    return SF_OK;
}

static sf_status on_block(void *c, int b, int64_t start, int F, const float *x0, sf_err *err) {
    run *r = c;
    if (!r->out) return SF_OK;
    /* the generator's rate: the block's video frames over its time from its start (after any pace wait) */
    const double gen_s = r->pace && r->pace->t_start > 0 ? sf_now() - r->pace->t_start : 0;
    const double gen_fps = gen_s > 0 ? (double)sf_pace_pixel_frames(start, F) / gen_s : 0;
    sf_status s = sf_denoise_send_block(r->out, b, start, F, r->C, r->H, r->W, x0, r->seed, r->prompt, r->weights,
                                        gen_fps, err);
    if (!s && r->pace) sf_pace_sent(r->pace, sf_now(), start, F);
    return s;
}

/* Prompt embeddings from FILE[:NAME] (a wire stream: live.c): (rows, text_dim) f32, malloc'd. */
static sf_status load_embeds(const char *arg, int text_dim, int text_len, float **emb, int64_t *rows, sf_err *err) {
    sf_status s;
    char path[4096];
    const char *name = NULL;
    sf_split_file_arg(arg, path, sizeof path, &name);
    sf_tfile *tf = NULL;
    if ((s = sf_tfile_open(path, &tf, err))) return s;
    const char *nm = name ? name : "prompt_embeds";
    const sf_tensor *t = sf_tfile_get(tf, nm);
    if (!t && !name && tf->n == 1) t = &tf->entries[0].t;
    int ok = t && (t->ndim == 2 || (t->ndim == 3 && t->shape[0] == 1));
    int64_t L = ok ? t->shape[t->ndim - 2] : 0, D = ok ? t->shape[t->ndim - 1] : 0; /* rank 0/1: no such dims */
    char b[96];
    snprintf(b, sizeof b, "prompt embeddings '%.64s'", nm);
    if (!t) s = sf_fail(err, SF_E_NOTFOUND, "%s: no tensor '%s'", path, nm);
    else if ((s = sf_tensor_need_float(t, b, err))) {
    } else if (!ok || D != text_dim || L > text_len || L < 1) {
        s = sf_fail(err, SF_E_SHAPE, "%s: prompt embeddings '%s' have shape %s; the model expects [L, %d] with L <= %d",
                    path, nm, sf_shape_str(t, b, sizeof b), text_dim, text_len);
    } else if (!(*emb = sf_calloc2((size_t)(L * D), sizeof(float)))) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
    } else {
        sf_tensor_to_f32(t, *emb);
        *rows = L;
    }
    sf_tfile_destroy(&tf);
    return s;
}

/* What a finished run writes besides the wire: the latents file and the tap file (lo's seed is set
 * here: the run's, or "replayed" with --noise). */
static sf_status write_files(const sf_denoise_opts *o, const sf_latents_out *lo_in, sf_taps *taps, int replayed,
                             sf_err *err) {
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%ld", o->seed);
    sf_latents_out lo = *lo_in;
    lo.seed = replayed ? "replayed" : seedbuf;
    sf_status s;
    if (o->save) {
        if ((s = sf_denoise_write_latents(o->save, &lo, err))) return s;
        sf_info("wrote the latents to %s", o->save);
    }
    if (taps) {
        /* the whole video's frames (with initial latents their frames too: the streaming matrices are indexed by
           absolute frame, their context rows untapped) and the blocks it is made of, context chunks included */
        sf_taps_meta meta = {lo.prompt, lo.num_frames, o->rc.num_frame_per_block, o->rc.independent_first_frame,
                             (int)o->chunk, lo.weights, lo.seed, o->las, o->sink, o->model_dir,
                             o->config_path[0] ? o->config_path : NULL, (int)(o->height / 16), (int)(o->width / 16),
                             o->kv_compress, o->pc_budget, o->pc_recent, o->pc_max_reuse};
        if ((s = sf_taps_write(taps, o->tap_out, &meta, err))) return s;
        sf_info("wrote the attention taps to %s", o->tap_out);
    }
    return SF_OK;
}

/* --initial-latents: read (run_io.c), then held to the run's block rule and RoPE table (pipeline.h). */
static sf_status initial_latents(const sf_denoise_opts *o, const sf_dit_config *cfg, float **x, int *F, sf_err *err) {
    sf_status s = sf_denoise_load_latents(o->init_arg, cfg->in_dim, (int)o->height / 8, (int)o->width / 8, x, F, err);
    if (s) return s;
    const sf_pipeline_cfg pc = {.n_steps = o->rc.n_steps, .frames_per_block = o->rc.num_frame_per_block,
                                .independent_first_frame = o->rc.independent_first_frame,
                                .num_frames = (int)o->num_frames, .init_latents = *x, .init_frames = *F};
    int nb;
    const long more = o->endless ? o->rc.num_frame_per_block : o->num_frames, rope = o->rope_frames;
    if ((s = sf_pipeline_check(&pc, &nb, err))) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        s = sf_fail(err, s, "--initial-latents %s: %s", o->init_arg, m);
    } else if (*F + more > rope) {
        s = sf_fail(err, SF_E_ARG, "--initial-latents %s: %d frames + %ld more pass the RoPE table's %ld positions", o->init_arg,
                    *F, more, rope);
    }
    return s;
}

sf_status sf_denoise_stage_run(sf_denoise_opts *o, sf_err *err) {
    const sf_run_config *rc = &o->rc;
    const int ordinal = o->sh.cuda ? o->sh.ordinal : -1;
    sf_status s;
    sf_dit_config cfg;
    sf_dit_source src;
    sf_dit_weights w;
    sf_taps taps;
    sf_dit_state st;
    sf_tfile *noise = NULL;
    float *emb = NULL, *latents = NULL, *init = NULL;
    int *layers = NULL, n_layers = 0, have_w = 0, have_taps = 0, have_st = 0, n_init = 0, *ab_layers = NULL, n_ab = 0;
    char p[4096], prompt[4096] = "";
    memset(&src, 0, sizeof src);
    sf_denoise_live live = {NULL, NULL, o->recache, "", 0, {o->pace, o->pace_ahead, 0, 0, 0}};
    run r = {0};

    /* model */
    snprintf(p, sizeof p, "%s/config.json", o->model_dir);
    if ((s = sf_dit_config_load(p, &cfg, err))) goto done;
    /* the tapped layers, range-checked now that the model's depth is known */
    if ((o->tap_out || (o->check && (o->n_lay > 0 || o->list_layers))) &&
        (s = sf_taps_parse_layers(o->lay, o->n_lay, cfg.num_layers, &layers, &n_layers, err)))
        goto done;
    /* the ablated layers (--sink-ablate); a tapped one's captures hold the keys it attended (forwards' layer_key_frames) */
    if (o->ablate && (s = ablate_layers(o, cfg.num_layers, &ab_layers, &n_ab, err))) goto done;
    if (o->init_arg && (s = initial_latents(o, &cfg, &init, &n_init, err))) goto done; /* before any model work */
    if ((s = sf_dit_source_open(&src, o->model_dir, o->ckpath, o->no_ckpt, o->use_ema, o->require_ckpt, err))) goto done;
    const char *weights = src.weights; /* which weights ran, in every output's metadata */
    char weights_fp8[4480];
    if (!o->check) { /* --check stops at opening them: loading is the run's first heavy work */
        if ((s = sf_dit_weights_load(&w, &cfg, src.base, src.ck, src.key, err))) goto done;
        have_w = 1;
        sf_info("DiT: %d layers, dim %d, %lld parameters, weights: %s", cfg.num_layers, cfg.dim, (long long)w.n_params, weights);
        if (o->fp8) {
            if ((s = sf_dit_weights_fp8(&w, !o->sh.cuda, err))) goto done;
            sf_info("fp8: %d of %d block linears in float8 e4m3, per-tensor dynamic scales (the reference demo's FP8)%s",
                    w.fp8, 10 * cfg.num_layers, w.fp8 < 10 * cfg.num_layers ? "; the others' shapes are not multiples of 16" : "");
            /* every output's "weights" says the products ran in fp8: other numbers than the bf16 model's */
            snprintf(weights_fp8, sizeof weights_fp8, "%s, fp8 block linears (%d)", weights, w.fp8);
            weights = weights_fp8;
        }
    }
    char weights_ab[5600];
    if (o->ablate) { /* every output's "weights" says what ran: not the model's attention in those layers */
        char ls[1024]; /* ascending, consecutive layers as ranges: "0-14,20" */
        size_t k = 0;
        for (int i = 0; i < n_ab && k < sizeof ls; i++) {
            int j = i;
            while (j + 1 < n_ab && ab_layers[j + 1] == ab_layers[j] + 1) j++;
            k += (size_t)(j > i ? snprintf(ls + k, sizeof ls - k, "%s%d-%d", i ? "," : "", ab_layers[i], ab_layers[j])
                                : snprintf(ls + k, sizeof ls - k, "%s%d", i ? "," : "", ab_layers[i]));
            i = j;
        }
        if (n_ab == cfg.num_layers) snprintf(ls, sizeof ls, "all");
        snprintf(weights_ab, sizeof weights_ab, "%s, sink-ablated (%ld frame%s, layers %s)", weights, o->ablate,
                 o->ablate == 1 ? "" : "s", ls);
        weights = weights_ab;
        sf_info("sink ablation: layers %s skip the first %ld key frame%s of their context", ls, o->ablate, o->ablate == 1 ? "" : "s");
    }
    char weights_sr[5680];
    if (o->sink_rope) { /* every output's "weights" says the sink's keys were moved: not the model's positions */
        snprintf(weights_sr, sizeof weights_sr, "%s, sink RoPE realigned (gap %ld)", weights, o->sink_rope_gap);
        weights = weights_sr;
        sf_info("sink RoPE realign: once eviction opens a gap, the %ld sink frame%s move%s in time to %ld frame%s before "
                "the oldest recent frame", o->sink, o->sink == 1 ? "" : "s", o->sink == 1 ? "s" : "", o->sink_rope_gap,
                o->sink_rope_gap == 1 ? "" : "s");
    }
    char weights_kc[5720];
    if (o->kv_compress) { /* and that its cache kept the most attended tokens instead of the oldest frames */
        snprintf(weights_kc, sizeof weights_kc, "%s, KV cache compressed (%ld frame%s)", weights, o->kv_compress,
                 o->kv_compress == 1 ? "" : "s");
        weights = weights_kc;
    }
    char weights_pc[5800];
    if (o->pc_budget) { /* or Deep Forcing's released rule: recorded the same way */
        snprintf(weights_pc, sizeof weights_pc, "%s, KV cache compressed as Deep Forcing's release (budget %ld, recent %ld)",
                 weights, o->pc_budget, o->pc_recent);
        weights = weights_pc;
    }
    if (o->tap_out) {
        if ((s = sf_taps_init(&taps, o->tmode, o->tsel, o->sel_b, o->sel_s, layers, n_layers, cfg.num_layers, err))) goto done;
        have_taps = 1;
        if ((s = sf_taps_given_layers(o->lay, o->n_lay, &taps.given, &taps.n_given, err))) goto done;
        taps.cross = o->tap_cross;
        taps.token_frames = (int)o->token_frames;
        taps.pt.layout = o->pt_layout, taps.pt.rank = (int)o->pt_rank, taps.pt.world_size = (int)o->pt_world;
        taps.pt.prompt_index = o->pt_prompt_index;
        taps.nthreads = (int)o->threads;
        if ((s = sf_taps_check_path(&taps, o->tap_out, err))) goto done;
        if ((o->kv_compress || o->pc_budget) && o->tmode == SF_TAP_FRAMES && o->tsel == SF_TAP_SEL_SEED) { /* before any work */
            s = sf_fail(err, SF_E_ARG, "%s keeps tokens of mixed frames, which frames mode's streaming matrix (frame by "
                                       "frame) cannot hold: keep every forward's captures instead (--tap-select all: "
                                       "key_frames −1 marks those slots)", o->pc_budget ? "--pc-budget" : "--kv-compress");
            goto done;
        }
    }
    if (o->noise_path && (s = sf_tfile_open(o->noise_path, &noise, err))) goto done;
    /* the input: a file is read now, a stream opened now and waited for once the device is ready */
    if (o->prompt) snprintf(prompt, sizeof prompt, "%s", o->prompt);
    int64_t rows = 0;
    if (!o->check && (s = o->pe_arg ? load_embeds(o->pe_arg, cfg.text_dim, cfg.text_len, &emb, &rows, err)
                       : sf_prompt_feed_connect(o->in_url, o->sh.wire_timeout, cfg.text_dim, cfg.text_len, &live.feed, err)))
        goto done;
    if (o->pe_arg && !o->check) sf_trace("denoise", "embeds_in", 0, rows); /* a file's is in hand now */

    /* pipeline */
    sf_scheduler sc;
    if ((s = sf_scheduler_init(&sc, rc->timestep_shift, err))) goto done;
    sf_pipeline_cfg pc;
    memset(&pc, 0, sizeof pc);
    pc.n_steps = rc->n_steps;
    if ((s = sf_scheduler_steps(&sc, rc->denoising_step_list, rc->n_steps, rc->warp_denoising_step, pc.steps, err))) goto done;
    pc.frames_per_block = rc->num_frame_per_block;
    pc.independent_first_frame = rc->independent_first_frame;
    pc.context_noise = (float)rc->context_noise;
    pc.num_frames = (int)o->num_frames;
    pc.lat_h = (int)o->height / 8;
    pc.lat_w = (int)o->width / 8;
    pc.channels = cfg.in_dim;
    pc.seed = (uint64_t)o->seed;
    pc.noise = noise;
    pc.init_latents = init, pc.init_frames = n_init;
    if (o->torch_noise) { /* the reference's stream: the card's geometry shapes it (rng_torch.h) */
        int sms = o->torch_sms, tpsm = o->torch_tpsm;
        if (!sms && ordinal >= 0 && (s = sf_cuda_geometry(ordinal, &sms, &tpsm, err))) goto done;
        if (!sms) sms = SF_TORCH_CUDA_SMS_H100, tpsm = SF_TORCH_CUDA_THREADS_PER_SM;
        pc.torch_noise = 1;
        pc.torch = (sf_torch_cuda_rng){(uint64_t)o->seed, (uint64_t)o->noise_offset, sms, tpsm};
        pc.torch_batch = (int)o->noise_batch, pc.torch_sample = (int)o->noise_sample;
        pc.torch.offset += (uint64_t)o->noise_seq * sf_pipeline_torch_noise_span(&pc); /* video I of a sequence */
        char batch[64] = "";
        if (o->noise_batch > 1) snprintf(batch, sizeof batch, ", video %ld of %ld drawn at once", o->noise_sample, o->noise_batch);
        if (!o->check)
            sf_info("noise: torch.randn on a CUDA generator seeded %ld at offset %llu%s, as a card of %d SMs x %d threads "
                    "draws it", o->seed, (unsigned long long)pc.torch.offset, batch, sms, tpsm);
    }
    int n_blocks;
    if ((s = sf_pipeline_check(&pc, &n_blocks, err))) goto done;
    if (cfg.out_dim != cfg.in_dim) {
        s = sf_fail(err, SF_E_UNSUPPORTED, "in_dim %d != out_dim %d is not supported", cfg.in_dim, cfg.out_dim);
        goto done;
    }
    const int64_t cache_frames = o->las == -1 ? n_init + o->num_frames : o->las;
    if (o->las != -1 && o->las < rc->num_frame_per_block + o->sink) {
        s = sf_fail(err, SF_E_ARG, "local_attn_size %ld cannot hold sink_size %ld + a block of %d frames", o->las, o->sink,
                    rc->num_frame_per_block);
        goto done;
    }
    if (o->kv_compress && (s = sf_dit_kv_compress_fits(o->kv_compress, o->sink, rc->num_frame_per_block, o->las, err)))
        goto done; /* also for --check */
    if (o->pc_budget &&
        (s = sf_dit_pc_fits(o->pc_budget, o->pc_recent, o->sink, rc->num_frame_per_block, o->las, err)))
        goto done;
    if (o->list_layers) { /* the tap layers, for scripts (all, ranges and lists resolved against this model) */
        for (int i = 0; i < n_layers; i++) printf("%s%d", i ? " " : "", layers[i]);
        printf("\n");
        fflush(stdout);
    }
    if (o->check) { /* everything but the state, the device and the input was checked: done */
        sf_info("check: ok: %ld frames in blocks of %d at %ldx%ld, weights: %s", o->num_frames, rc->num_frame_per_block,
                o->height, o->width, weights);
        goto done;
    }
    if ((s = sf_dit_state_init_rope(&st, &w, rc->num_frame_per_block, pc.lat_h, pc.lat_w, cache_frames, o->las, o->sink,
                                    (int)o->threads, ordinal, (int)o->rope_frames, err)))
        goto done;
    have_st = 1;
    if (o->ablate && (s = sf_dit_set_ablation(&st, (int)o->ablate, ab_layers, n_ab, err))) goto done;
    if (o->sink_rope && (s = sf_dit_set_sink_rope(&st, 1, o->sink_rope_gap, err))) goto done;
    if (o->kv_compress && (s = sf_dit_set_kv_compress(&st, o->kv_compress, err))) goto done;
    if (o->pc_budget && (s = sf_dit_set_pc(&st, o->pc_budget, o->pc_recent, (int)o->pc_max_reuse, err))) goto done;
    /* the KV cache is the big allocation (CPU f32: 12 GiB for 21 frames at 480×832; GPU bf16: 6) */
    const double row_gib = (double)cfg.dim * cfg.num_layers * (o->sh.cuda ? 2 : 4) / (1024.0 * 1024.0 * 1024.0);
    sf_info("KV cache: %lld frames x %lld tokens x %d layers, %.2f GiB (%s)", (long long)cache_frames,
            (long long)st.frame_tokens, cfg.num_layers, 2.0 * (double)st.cache_tokens * row_gib,
            o->sh.cuda ? "bf16, on the GPU" : "f32");
    if (o->sink_rope) /* the sink's keys as cached, which every shift starts from (sink_rope.c) */
        sf_info("sink RoPE realign: a copy of the sink keys, %.2f GiB", (double)st.sink_tokens * row_gib);
    if (o->kv_compress) /* the last forward's queries, kept for the next eviction's importances (kv_compress.c) */
        sf_info("KV compress: at each eviction every layer keeps, per head, the %lld tokens after the sink its last "
                "queries attended most; those queries kept: %.2f GiB",
                (long long)st.kvc_tokens, (double)rc->num_frame_per_block * (double)st.frame_tokens * row_gib);
    if (o->pc_budget) /* every layer's last queries, summed at each compression (pc.c) */
        sf_info("KV compress (Deep Forcing's release): when a block would overflow the cache every layer keeps the "
                "sink, the %ld frames' worth of tokens its recent queries score highest and the newest %ld frames; the "
                "query windows: %.2f GiB", o->pc_budget - o->sink - o->pc_recent, o->pc_recent,
                (double)st.pc_recent * row_gib);
    if (have_taps) {
        /* logits captures stay in memory until the end (3.7 GB a layer at 480x832): refused now if they cannot fit */
        const double tb = sf_taps_logits_bytes(&taps, n_blocks, rc->n_steps, rc->num_frame_per_block,
                                               rc->independent_first_frame && !n_init, n_init, st.frame_tokens,
                                               cache_frames, cfg.num_heads);
        if ((s = sf_taps_check_room(&taps, tb, o->tap_out, err))) goto done;
        sf_taps_attach(&taps, &st); /* before the prepare: what the taps need is made there too */
    }
    /* the device's one-time work (plans, workspaces) before the embedding: it overlaps the encoder's */
    if ((s = sf_pipeline_prepare(&st, &pc, err))) goto done;
    sf_trace("denoise", "ready", -1, n_blocks);
    if (!o->pe_arg) { /* a stream's: waited for now */
        if ((s = sf_prompt_feed_first(live.feed, o->follow, &emb, &rows, prompt, sizeof prompt, err))) goto done;
        sf_trace("denoise", "embeds_in", 0, rows);
    }
    if ((s = sf_dit_set_context(&st, emb, rows, err))) goto done;

    const int64_t fr = (int64_t)cfg.in_dim * pc.lat_h * pc.lat_w;
    snprintf(live.prompt, sizeof live.prompt, "%s", prompt);
    live.st = &st;
    r = (run){NULL, NULL, rc->n_steps, rc->num_frame_per_block, cfg.in_dim, pc.lat_h, pc.lat_w, fr,
              have_taps ? &taps : NULL, prompt[0] || o->follow ? live.prompt : NULL, weights, (uint64_t)o->seed, o->follow,
              &live.pace};
    if (o->save) latents = sf_calloc2((size_t)((n_init + o->num_frames) * fr), sizeof(float)); /* the whole output */
    if (o->dump) r.preds = sf_calloc2((size_t)n_blocks * (size_t)(rc->n_steps + 1) * (size_t)(rc->num_frame_per_block * fr), sizeof(float));
    if ((o->save && !latents) || (o->dump && !r.preds)) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    if (o->out_url && (s = sf_wire_open_writer_opts(o->out_url, &(sf_wire_opts){o->sh.wire_timeout, 0}, &r.out, err)))
        goto done;
    sf_pipeline_hooks hk = {on_forward, o->dump ? on_pred : NULL, on_block, &r, (int)o->sh.progress, NULL};
    const sf_pipeline_live lh = {sf_denoise_live_block_start, /* a block's start: pacing, prompts, its time */
                                 o->endless ? sf_denoise_live_stopped : NULL, &live};
    s = sf_pipeline_run_live(&st, &sc, &pc, &hk, &lh, latents, err);
    if (s == SF_E_STOPPED && o->endless && (sf_wire_stopped() || sf_prompt_feed_stop_requested(live.feed))) {
        /* Ctrl-C or the live route's stop ends an endless video cleanly (exit 0, the video finished) */
        sf_info("stopped (%d prompt switches)", live.switches);
        s = SF_OK;
    }
    if (s) {
        if (r.out) {
            sf_err e2;
            sf_wire_send_error(r.out, err->msg, &e2);
            sf_wire_close(&r.out, &e2);
        }
        goto done;
    }
    if (r.out) {
        /* stopped: a stream's end fails (downstream got the signal too) and is let go; a file's end still
           goes out and the close commits it (an endless run ended by Ctrl-C keeps its blocks) */
        const int stopped = sf_wire_stopped();
        sf_err e2;
        if ((s = sf_wire_send_end(r.out, stopped ? &e2 : err)) && stopped) {
            sf_wire_close(&r.out, &e2);
            s = SF_OK;
        } else if (s || (s = sf_wire_close(&r.out, err))) {
            goto done;
        }
    }
    sf_prompt_feed_close(&live.feed); /* after the end went out: stopping the reader raises the stop flag */
    const sf_latents_out lo = {latents, o->dump ? r.preds : NULL, n_init + (int)o->num_frames, n_blocks, rc->n_steps,
                               rc->num_frame_per_block, pc.independent_first_frame && !n_init, cfg.in_dim, pc.lat_h, pc.lat_w,
                               NULL, prompt, weights};
    if ((s = write_files(o, &lo, have_taps ? &taps : NULL, noise != NULL, err))) goto done;
    if (src.ck_missing)
        sf_warn("this run used the BASE Wan2.1 weights: checkpoint %s was not found; the result is NOT the Self-Forcing model",
                o->ckpath);
done:
    if (r.out) {
        sf_err e2;
        sf_wire_close(&r.out, &e2);
    }
    sf_prompt_feed_close(&live.feed);
    if (have_taps) sf_taps_free(&taps);
    free(latents);
    free(init);
    free(r.preds);
    free(emb);
    if (have_st) sf_dit_state_free(&st);
    if (have_w) sf_dit_weights_free(&w);
    sf_tfile_destroy(&noise);
    sf_dit_source_close(&src);
    free(layers);
    free(ab_layers);
    free(o->lay);
    free(o->ab_lay);
    o->lay = NULL, o->ab_lay = NULL;
    return s;
}
