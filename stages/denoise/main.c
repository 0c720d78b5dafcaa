/* sf-denoise — prompt embeddings → latent blocks: the causal Wan DiT with KV cache, the Self-Forcing
 * 4-step schedule with re-noising and the clean-context refresh pass, attention taps.
 *
 * Inputs: --prompt-embeds FILE[:NAME] ([L, text_dim] or [1, L, text_dim], L <= text_len, default name
 * prompt_embeds) or --in URL (wire stream; the first "prompt_embeds" tensor, and with --follow-prompts
 * / --num_frames 0 the later ones switch the prompt at block boundaries: live.c). Weights: --model-dir
 * (config.json + diffusion_pytorch_model.safetensors), then the checkpoint decision of DESIGN.md §3.
 * Outputs: --out URL (one "latents" wire message per finished block, then end), --save-latents FILE
 * (safetensors "latents" [1, T, C, h, w], + pred.<b>.<s> with --dump-preds), taps to --output_path.
 * Mirrors inference.py / experiments/run_extraction_figure4.py. Tested by tests/bats/sf-denoise.bats.
 * Only parses flags and calls dit.c / pipeline.c / taps.c. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "stop.h"
#include "config.h"
#include "device.h"
#include "parallel.h"
#include "tfile.h"
#include "wire.h"
#include "stages/denoise/bench.h"
#include "stages/denoise/live.h"
#include "stages/denoise/pipeline.h"
#include "stages/denoise/run_io.h"
#include "stages/denoise/taps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const sf_opt opts[] = {
    SF_OPT_MODEL_DIR,
    {"config-path", 0, SF_ARG_VALUE, "FILE\trun config merged over configs/default_config.yaml (default configs/self_forcing_dmd.yaml)"},
    {"checkpoint-path", 0, SF_ARG_VALUE, "FILE\tSelf-Forcing checkpoint (.pt); missing file: loud warning, base weights (like the reference)"},
    {"require-checkpoint", 0, SF_ARG_FLAG, "a missing --checkpoint_path is an error (exit 1) instead of a fallback to the base weights"},
    {"no-checkpoint", 0, SF_ARG_FLAG, "keep the base Wan2.1 weights"},
    {"use-ema", 0, SF_ARG_FLAG, "use generator_ema (default; falls back to generator when absent)"},
    {"no-ema", 0, SF_ARG_FLAG, "use the checkpoint's generator weights"},
    {"prompt-embeds", 0, SF_ARG_VALUE, "FILE[:NAME]\ttext embeddings [L,D] or [1,L,D] (default name prompt_embeds)"},
    {"prompt", 0, SF_ARG_VALUE, "TEXT\tprompt text recorded in the outputs' metadata"},
    {"in", 0, SF_ARG_VALUE, "URL\twire stream with a prompt_embeds tensor (-, fd:N, file, tcp://, ipc://, shm://)"},
    {"out", 0, SF_ARG_VALUE, "URL\twire stream of latent blocks (one 'latents' message per block)"},
    {"noise", 0, SF_ARG_VALUE, "FILE\treplay noise.init and noise.renoise.<k> instead of drawing"},
    {"num-frames", 0, SF_ARG_VALUE, "N\tlatent frames (default 21; 0 = endless until SIGINT, needs --local_attn_size)"},
    {"follow-prompts", 0, SF_ARG_FLAG, "keep reading --in: a new prompt_embeds message switches the prompt at the next block (default with --num_frames 0)"},
    {"recache", 0, SF_ARG_FLAG, "on a prompt switch, recompute the window's cached K/V under the new prompt (LongLive)"},
    {"rope-frames", 0, SF_ARG_VALUE, "N\tRoPE positions of an endless run (default 65536; the run ends there)"},
    {"height", 0, SF_ARG_VALUE, "PX\tvideo height (default 480; latent = /8)"},
    {"width", 0, SF_ARG_VALUE, "PX\tvideo width (default 832; latent = /8)"},
    {"seed", 0, SF_ARG_VALUE, "N\tseed of sfpipe's noise generator (default 42)"},
    {"local-attn-size", 0, SF_ARG_VALUE, "N\tKV window in frames (-1 global; overrides model_kwargs.local_attn_size)"},
    {"sink-size", 0, SF_ARG_VALUE, "N\tframes pinned at the start of a local window (model_kwargs.sink_size)"},
    {"save-latents", 0, SF_ARG_VALUE, "FILE\twrite safetensors 'latents' [1,T,C,h,w]"},
    {"dump-preds", 0, SF_ARG_FLAG, "also write every forward's x0 as pred.<block>.<step> (4 = refresh)"},
    {"layer-indices", 0, SF_ARG_MULTI, "L...\ttap the self-attention of these blocks: all, N, A-B, A,B,... (default 0 4)"},
    {"tap-mode", 0, SF_ARG_VALUE, "logits|frames|probs\tfull pre-softmax logits, frame-level mean logits, or exact frame-level softmax mass + log-sum-exp stats (default logits)"},
    {"tap-cross", 0, SF_ARG_FLAG, "also tap the cross-attention: each query frame's mass over the real text tokens"},
    {"tap-select", 0, SF_ARG_VALUE, "seed|all|b:B,s:S\twhich captures to keep (default seed: logits = figure-4 selection, frames = streaming aggregate)"},
    {"output-path", 0, SF_ARG_VALUE, "FILE\ttap file: .pt (reference figure-4 / streaming dict) or .safetensors"},
    {"chunk-frames", 0, SF_ARG_VALUE, "N\trecorded as chunk_frames in the streaming tap file (default 3; no effect on values)"},
    SF_OPTS_DEVICE("the DiT in bf16"),
    {"threads", 0, SF_ARG_VALUE, "N\tCPU threads (default: all CPUs)"},
    {"bench", 0, SF_ARG_VALUE, "tiny|1.3b-layer|1.3b\tprint ms per block-forward and peak memory, then exit (1.3b: a whole random-weight video, GPU only)"},
    {"bench-tokens", 0, SF_ARG_VALUE, "N\t--bench 1.3b-layer: tokens per 3-frame block (default 4680 = 832x480; 480 = 256x160)"},
    SF_OPT_PROGRESS,
    SF_OPT_TIMEOUT,
    SF_OPTS_CPU_MODE,
    SF_OPTS_STD,
    {NULL, 0, 0, NULL},
};

#define PROG "sf-denoise"

typedef struct run {
    sf_wire *out;
    float *preds;            /* dump: (blocks, steps+1, F, C, H, W) */
    int n_steps, fpb, C, H, W;
    int64_t fr;
    sf_taps *taps;
    const char *prompt, *weights;
    uint64_t seed;
    int live;                /* following prompts: a "progress" message before every forward (live.h) */
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
    return sf_denoise_send_block(r->out, b, start, F, r->C, r->H, r->W, x0, r->seed, r->prompt, r->weights, err);
}

/* configs/<name>: in the working directory, then next to the binary (../../configs). */
static const char *find_config(const char *name, char *buf, size_t n) {
    char rel[256];
    snprintf(rel, sizeof rel, "configs/%s", name);
    return sf_find_data(rel, buf, n);
}

static sf_status get_long(const sf_args *a, const char *name, long lo, long hi, long *v, sf_err *err) {
    const char *s = sf_args_get(a, opts, name);
    char flag[64];
    snprintf(flag, sizeof flag, "--%s", name);
    return s ? sf_arg_long(flag, s, lo, hi, v, err) : SF_OK;
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
    if (!t) {
        s = sf_fail(err, SF_E_NOTFOUND, "%s: no tensor '%s'", path, nm);
        sf_tfile_destroy(&tf);
        return s;
    }
    int ok = (t->ndim == 2 || (t->ndim == 3 && t->shape[0] == 1));
    int64_t L = ok ? t->shape[t->ndim - 2] : 0, D = ok ? t->shape[t->ndim - 1] : 0; /* rank 0/1: no such dims */
    char b[96];
    snprintf(b, sizeof b, "prompt embeddings '%.64s'", nm);
    if ((s = sf_tensor_need_float(t, b, err))) {
        sf_tfile_destroy(&tf);
        return s;
    }
    if (!ok || D != text_dim || L > text_len || L < 1) {
        s = sf_fail(err, SF_E_SHAPE, "%s: prompt embeddings '%s' have shape %s; the model expects [L, %d] with L <= %d",
                    path, nm, sf_shape_str(t, b, sizeof b), text_dim, text_len);
        sf_tfile_destroy(&tf);
        return s;
    }
    *emb = sf_calloc2((size_t)(L * D), sizeof(float));
    if (!*emb) {
        sf_tfile_destroy(&tf);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    sf_tensor_to_f32(t, *emb);
    *rows = L;
    sf_tfile_destroy(&tf);
    return SF_OK;
}

int main(int argc, char **argv) {
    sf_err err = {{0}};
    sf_args a = {0};
    sf_status s = SF_OK;
    if (sf_args_main(argc, argv, PROG,
                     "[--model-dir DIR] (--prompt-embeds FILE[:NAME] | --in URL) [--out URL] [--save-latents FILE] "
                     "[--layer_indices L... --output_path FILE]",
                     opts, &a))
        return 0;
    if ((s = sf_stop_install(&err))) sf_die(PROG, s, &err); /* SIGINT/SIGTERM: stop per layer, exit 130/143 */
    sf_stage_flags sh; /* --device / --gpu-id, --model-dir, --progress: common/cli.c */
    if ((s = sf_stage_flags_get(&a, opts, &sh, &err))) sf_die(PROG, s, &err);
    sf_device dev = {sh.cuda, sh.ordinal}; /* a GPU that cannot be used: one line before any work */
    if (sh.cuda && (s = sf_device_check(&dev, &err))) sf_die(PROG, s, &err);
    long threads = sf_cpu_count(), v;
    if ((s = get_long(&a, "threads", 1, 1024, &threads, &err))) sf_die(PROG, s, &err);
    const char *model_dir = sh.model_dir;
    const int ordinal = sh.cuda ? sh.ordinal : -1;
    const char *bench = sf_args_get(&a, opts, "bench");
    if (bench) {
        long tokens = 4680;
        if ((s = get_long(&a, "bench-tokens", 3, 1L << 24, &tokens, &err))) sf_die(PROG, s, &err);
        s = sf_denoise_bench(bench, model_dir, (int)threads, ordinal, tokens, &err);
        if (s) sf_die(PROG, s, &err);
        sf_args_free(&a);
        return 0;
    }
    const int show_progress = (int)sh.progress;

    /* inputs and outputs named up front so flag errors come before any heavy work */
    const char *pe_arg = sf_args_get(&a, opts, "prompt-embeds"), *in_url = sf_args_get(&a, opts, "in");
    const char *out_url = sf_args_get(&a, opts, "out"), *save = sf_args_get(&a, opts, "save-latents");
    const char *tap_out = sf_args_get(&a, opts, "output-path");
    const char **lay = NULL;
    int n_lay = sf_args_all(&a, opts, "layer-indices", &lay);
    /* shell composition: `sf-encode ... | sf-denoise | sf-decode -o v.y4m` reads and writes the
     * wire on stdin/stdout when those are pipes or files (DESIGN §3: stdout carries data only
     * when it is the --out) */
    if (!pe_arg && !in_url && sf_fd_is_data(0)) in_url = "-";
    if (!out_url && !save && !tap_out && sf_fd_is_data(1)) out_url = "-";
    if (!pe_arg && !in_url) {
        sf_fail(&err, SF_E_ARG, "no text conditioning: give --prompt-embeds FILE[:NAME] or --in URL");
        sf_die(PROG, SF_E_ARG, &err);
    }
    if (n_lay > 0 && !tap_out) {
        sf_fail(&err, SF_E_ARG, "--layer_indices needs --output_path FILE (.pt or .safetensors)");
        sf_die(PROG, SF_E_ARG, &err);
    }
    if (!out_url && !save && !tap_out) {
        sf_fail(&err, SF_E_ARG, "nothing to write: give --out URL, --save-latents FILE or --output_path FILE");
        sf_die(PROG, SF_E_ARG, &err);
    }
    /* every output's folder, before any work: a typo must not cost the whole run */
    if ((s = sf_check_out_dir("--save-latents", save, 0, &err)) || (s = sf_check_out_dir("--output_path", tap_out, 0, &err)) ||
        (s = sf_check_out_dir("--out", out_url, 0, &err)))
        sf_die(PROG, s, &err);
    int *layers = NULL, n_layers = 0; /* taps.c parses them (syntax now, the range once the model is known) */
    if ((s = sf_taps_parse_layers(lay, n_lay, -1, &layers, &n_layers, &err))) sf_die(PROG, s, &err);
    sf_tap_mode tmode = SF_TAP_LOGITS;
    sf_tap_sel tsel = SF_TAP_SEL_SEED;
    int sel_b = 0, sel_s = 0;
    const char *tm = sf_args_get(&a, opts, "tap-mode"), *ts = sf_args_get(&a, opts, "tap-select");
    if ((tm && (s = sf_taps_parse_mode(tm, &tmode, &err))) || (ts && (s = sf_taps_parse_select(ts, &tsel, &sel_b, &sel_s, &err))))
        sf_die(PROG, s, &err);

    /* configs */
    char dbuf[4096], cbuf[4096];
    const char *def = find_config("default_config.yaml", dbuf, sizeof dbuf);
    const char *cpath = sf_args_get(&a, opts, "config-path");
    if (!cpath) cpath = find_config("self_forcing_dmd.yaml", cbuf, sizeof cbuf);
    else if (cpath[0] != '/' && sf_find_data(cpath, cbuf, sizeof cbuf)) cpath = cbuf; /* configs/x.yaml from anywhere */
    if (!def) sf_warn("configs/default_config.yaml not found (set SF_ROOT to the sfpipe folder); using only %s",
                      cpath ? cpath : "built-in defaults");
    sf_run_config rc;
    if ((s = sf_run_config_load(def, cpath, &rc, &err))) sf_die(PROG, s, &err);
    if (rc.n_steps == 0) {
        sf_fail(&err, SF_E_ARG, "the config has no denoising_step_list (use --config_path configs/self_forcing_dmd.yaml)");
        sf_die(PROG, SF_E_ARG, &err);
    }
    long num_frames = 21, height = 480, width = 832, seed = 42, las = rc.local_attn_size, sink = rc.sink_size;
    if ((s = get_long(&a, "num-frames", 0, 1023, &num_frames, &err)) || (s = get_long(&a, "height", 8, 1 << 16, &height, &err)) ||
        (s = get_long(&a, "width", 8, 1 << 16, &width, &err)) || (s = get_long(&a, "seed", 0, (long)((~0ul) >> 1), &seed, &err)) ||
        (s = get_long(&a, "local-attn-size", -1, 1023, &las, &err)) || (s = get_long(&a, "sink-size", 0, 1023, &sink, &err)))
        sf_die(PROG, s, &err);
    (void)v;
    if (height % 16 || width % 16) {
        sf_fail(&err, SF_E_ARG, "--height/--width must be multiples of 16 (latent /8, patch 2)");
        sf_die(PROG, SF_E_ARG, &err);
    }
    const int endless = num_frames == 0;
    long rope_frames = endless ? SF_DIT_ROPE_FRAMES_MAX : SF_DIT_ROPE_FRAMES;
    if ((s = get_long(&a, "rope-frames", 1, SF_DIT_ROPE_FRAMES_MAX, &rope_frames, &err))) sf_die(PROG, s, &err);
    if (endless && (las == -1 || save || tap_out || sf_args_get(&a, opts, "noise"))) {
        sf_fail(&err, SF_E_ARG, "--num_frames 0 (endless) needs a rolling KV cache (--local_attn_size N) and writes only "
                "--out (no --save-latents, --output_path or --noise)");
        sf_die(PROG, SF_E_ARG, &err);
    }
    const int follow = (endless || sf_args_has(&a, opts, "follow-prompts")) && in_url && !pe_arg;
    long chunk = 3;
    if ((s = get_long(&a, "chunk-frames", 1, 1 << 20, &chunk, &err))) sf_die(PROG, s, &err);
    if (las == -1 && sink > 0) sf_warn("sink_size %ld has no effect with global attention (local_attn_size -1)", sink);
    if (las == 0 || las < -1) {
        sf_fail(&err, SF_E_ARG, "local_attn_size must be -1 (global) or a positive number of frames");
        sf_die(PROG, SF_E_ARG, &err);
    }

    /* model */
    char p[4096];
    sf_dit_config cfg;
    snprintf(p, sizeof p, "%s/config.json", model_dir);
    if ((s = sf_dit_config_load(p, &cfg, &err))) sf_die(PROG, s, &err);
    free(layers); /* the tapped layers, range-checked now that the model's depth is known */
    if (tap_out && (s = sf_taps_parse_layers(lay, n_lay, cfg.num_layers, &layers, &n_layers, &err))) sf_die(PROG, s, &err);
    free(lay);
    sf_tfile *noise = NULL;
    const char *ckpath = sf_args_get(&a, opts, "checkpoint-path");
    sf_dit_source src;
    if ((s = sf_dit_source_open(&src, model_dir, ckpath, sf_args_has(&a, opts, "no-checkpoint"),
                                !sf_args_has(&a, opts, "no-ema"), sf_args_has(&a, opts, "require-checkpoint"), &err)))
        sf_die(PROG, s, &err);
    const char *weights = src.weights; /* which weights ran, in every output's metadata */
    sf_dit_weights w;
    if ((s = sf_dit_weights_load(&w, &cfg, src.base, src.ck, src.key, &err))) sf_die(PROG, s, &err);
    sf_info("DiT: %d layers, dim %d, %lld parameters, weights: %s", cfg.num_layers, cfg.dim, (long long)w.n_params, weights);
    sf_taps taps;
    int have_taps = tap_out != NULL;
    if (have_taps && (s = sf_taps_init(&taps, tmode, tsel, sel_b, sel_s, layers, n_layers, cfg.num_layers, &err)))
        sf_die(PROG, s, &err);
    free(layers);
    if (have_taps) {
        taps.cross = sf_args_has(&a, opts, "tap-cross");
        taps.nthreads = (int)threads;
        if ((s = sf_taps_check_path(&taps, tap_out, &err))) sf_die(PROG, s, &err);
    }
    const char *noise_path = sf_args_get(&a, opts, "noise");
    if (noise_path && (s = sf_tfile_open(noise_path, &noise, &err))) sf_die(PROG, s, &err);

    char prompt[4096] = "";
    const char *pa = sf_args_get(&a, opts, "prompt");
    if (pa) snprintf(prompt, sizeof prompt, "%s", pa);
    float *emb = NULL;
    int64_t rows = 0;
    sf_denoise_live live = {NULL, NULL, sf_args_has(&a, opts, "recache"), "", 0};
    if ((s = pe_arg ? load_embeds(pe_arg, cfg.text_dim, cfg.text_len, &emb, &rows, &err)
                    : sf_prompt_feed_open(in_url, sh.wire_timeout, cfg.text_dim, cfg.text_len, follow, &live.feed, &emb,
                                          &rows, prompt, sizeof prompt, &err)))
        sf_die(PROG, s, &err);

    /* pipeline */
    sf_scheduler sc;
    if ((s = sf_scheduler_init(&sc, rc.timestep_shift, &err))) sf_die(PROG, s, &err);
    sf_pipeline_cfg pc;
    memset(&pc, 0, sizeof pc);
    pc.n_steps = rc.n_steps;
    if ((s = sf_scheduler_steps(&sc, rc.denoising_step_list, rc.n_steps, rc.warp_denoising_step, pc.steps, &err)))
        sf_die(PROG, s, &err);
    pc.frames_per_block = rc.num_frame_per_block;
    pc.independent_first_frame = rc.independent_first_frame;
    pc.context_noise = (float)rc.context_noise;
    pc.num_frames = (int)num_frames;
    pc.lat_h = (int)height / 8;
    pc.lat_w = (int)width / 8;
    pc.channels = cfg.in_dim;
    pc.seed = (uint64_t)seed;
    pc.noise = noise;
    int n_blocks;
    if ((s = sf_pipeline_check(&pc, &n_blocks, &err))) sf_die(PROG, s, &err);
    if (cfg.out_dim != cfg.in_dim) {
        sf_fail(&err, SF_E_UNSUPPORTED, "in_dim %d != out_dim %d is not supported", cfg.in_dim, cfg.out_dim);
        sf_die(PROG, s, &err);
    }
    int64_t cache_frames = las == -1 ? num_frames : las;
    if (las != -1 && las < rc.num_frame_per_block + sink) {
        sf_fail(&err, SF_E_ARG, "local_attn_size %ld cannot hold sink_size %ld + a block of %d frames", las, sink,
                rc.num_frame_per_block);
        sf_die(PROG, SF_E_ARG, &err);
    }
    sf_dit_state st;
    if ((s = sf_dit_state_init_rope(&st, &w, rc.num_frame_per_block, pc.lat_h, pc.lat_w, cache_frames, las, sink,
                                    (int)threads, ordinal, (int)rope_frames, &err)))
        sf_die(PROG, s, &err);
    /* the KV cache is the big allocation (CPU f32: 12 GiB for 21 frames at 480×832; GPU bf16: 6) */
    sf_info("KV cache: %lld frames x %lld tokens x %d layers, %.2f GiB (%s)", (long long)cache_frames,
            (long long)st.frame_tokens, cfg.num_layers,
            2.0 * (double)st.cache_tokens * cfg.dim * cfg.num_layers * (sh.cuda ? 2 : 4) / (1024.0 * 1024.0 * 1024.0),
            sh.cuda ? "bf16, on the GPU" : "f32");
    if ((s = sf_dit_set_context(&st, emb, rows, &err))) sf_die(PROG, s, &err);
    if (have_taps) sf_taps_attach(&taps, &st);

    const int64_t fr = (int64_t)cfg.in_dim * pc.lat_h * pc.lat_w;
    snprintf(live.prompt, sizeof live.prompt, "%s", prompt);
    live.st = &st;
    run r = {NULL, NULL, rc.n_steps, rc.num_frame_per_block, cfg.in_dim, pc.lat_h, pc.lat_w, fr,
             have_taps ? &taps : NULL, prompt[0] || follow ? live.prompt : NULL, weights, (uint64_t)seed, follow};
    int dump = sf_args_has(&a, opts, "dump-preds") && save;
    float *latents = NULL;
    if (save) latents = sf_calloc2((size_t)(num_frames * fr), sizeof(float));
    if (dump) r.preds = sf_calloc2((size_t)n_blocks * (size_t)(rc.n_steps + 1) * (size_t)(rc.num_frame_per_block * fr), sizeof(float));
    if ((save && !latents) || (dump && !r.preds)) {
        sf_fail(&err, SF_E_NOMEM, "out of memory");
        sf_die(PROG, SF_E_NOMEM, &err);
    }
    if (out_url) {
        if ((s = sf_wire_open_writer_opts(out_url, &(sf_wire_opts){sh.wire_timeout, 0}, &r.out, &err)))
            sf_die(PROG, s, &err);
    }
    sf_pipeline_hooks hk = {on_forward, dump ? on_pred : NULL, on_block, &r, show_progress, NULL};
    const sf_pipeline_live lh = {follow ? sf_denoise_live_block_start : NULL, endless ? sf_denoise_live_stopped : NULL,
                                 &live};
    s = sf_pipeline_run_live(&st, &sc, &pc, &hk, &lh, latents, &err);
    if (s == SF_E_STOPPED && endless && (sf_wire_stopped() || sf_prompt_feed_stop_requested(live.feed))) {
        /* Ctrl-C or the live route's stop ends an endless video cleanly (exit 0, the video finished) */
        sf_info("stopped (%d prompt switches)", live.switches);
        s = SF_OK;
    }
    if (s) {
        if (r.out) {
            sf_err e2;
            sf_wire_send_error(r.out, err.msg, &e2);
            sf_wire_close(&r.out, &e2);
        }
        sf_die(PROG, s, &err);
    }
    if (r.out) {
        if (sf_wire_stopped()) { /* stopped: every wire call now fails; downstream got the signal too */
            sf_err e2;
            sf_wire_close(&r.out, &e2);
        } else if ((s = sf_wire_send_end(r.out, &err)) || (s = sf_wire_close(&r.out, &err))) sf_die(PROG, s, &err);
    }
    sf_prompt_feed_close(&live.feed); /* after the end went out: stopping the reader raises the stop flag */
    if (save) {
        char seedbuf[32];
        snprintf(seedbuf, sizeof seedbuf, "%ld", seed);
        sf_latents_out lo = {latents, dump ? r.preds : NULL, (int)num_frames, n_blocks, rc.n_steps, rc.num_frame_per_block,
                             pc.independent_first_frame, cfg.in_dim, pc.lat_h, pc.lat_w, noise ? "replayed" : seedbuf,
                             prompt, weights};
        if ((s = sf_denoise_write_latents(save, &lo, &err))) sf_die(PROG, s, &err);
        sf_info("wrote the latents to %s", save);
    }
    if (have_taps) {
        char seedbuf[32];
        snprintf(seedbuf, sizeof seedbuf, "%ld", seed);
        sf_taps_meta meta = {prompt, (int)num_frames, rc.num_frame_per_block, rc.independent_first_frame, (int)chunk, weights,
                             noise ? "replayed" : seedbuf, las, sink, model_dir};
        if ((s = sf_taps_write(&taps, tap_out, &meta, &err))) sf_die(PROG, s, &err);
        sf_info("wrote the attention taps to %s", tap_out);
        sf_taps_free(&taps);
    }
    if (src.ck_missing)
        sf_warn("this run used the BASE Wan2.1 weights: checkpoint %s was not found; the result is NOT the Self-Forcing model",
                ckpath);
    free(latents);
    free(r.preds);
    free(emb);
    sf_dit_state_free(&st);
    sf_dit_weights_free(&w);
    sf_tfile_destroy(&noise);
    sf_dit_source_close(&src);
    sf_args_free(&a);
    return 0;
}
