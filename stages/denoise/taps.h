/* taps.h — attention taps on the DiT's self-attention (the fork's ATTENTION_WEIGHT_CAPTURE and
 * STREAMING_FRAME_ATTENTION_CAPTURE), selection and output files.
 *
 * Modes: SF_TAP_LOGITS keeps pre-softmax logits q·kᵀ/√d, (1, heads, Lq, Lk), stored as float16;
 * SF_TAP_FRAMES computes per forward the frame aggregate A[h, qf, kf] = mean over query frame qf's
 * and key frame-slot kf's tokens of the logits, = (q̄_{h,qf} · k̄_{h,kf})/√d (linearity), in
 * double, from the post-RoPE queries and the cached keys — never forming the logits.
 * Selection: SF_TAP_SEL_SEED (logits: per layer the first capture with the largest key length,
 * what run_extraction_figure4.py saves; frames: the first forward of every block (step 0, where
 * the key frames grow), assembled into full_frame_attention [heads, T, T] like
 * run_extraction_streaming.py's FrameAttentionAggregator, columns = absolute key frames, zeros
 * elsewhere), SF_TAP_SEL_ALL, SF_TAP_SEL_ONE (block B, step S; step n_steps = the refresh pass).
 * Output by extension: .safetensors (taps.L<l>.b<b>.s<s> | fig4.L<l>.attn_logits |
 * frames.L<l>.b<b>.s<s> | stream.L<l>.full_frame_attention + stream.L<l>.last_block_frame_attention,
 * f32) or .pt (figure-4 dict of SPEC.md §7.3 for logits; the streaming dict of §7.4 for frames +
 * seed, one layer; frames + seed in the other reference scripts' dicts with --pt-layout: taps_pt.c).
 * Workbench additions (issue 14): SF_TAP_PROBS keeps per forward the exact post-softmax mass
 * probs[h, qf, kf] = mean over query frame qf's tokens of the summed probabilities over key slot kf's
 * tokens, and per-row log-sum-exp statistics per query frame lse[h, qf, (mean, min, max, held)]
 * (kernels/tap_mass.h; the CPU computes them from q and k, the GPU from its explicit attention's
 * logits chunk by chunk); its seed selection keeps each block's step 0 like frames. cross = 1 adds
 * the cross-attention mass of each query frame over the real text tokens, renormalised over them
 * (cross.L<l>.b<b>.s<s> [heads, qf, real_tokens], cross_lse.* with held = the real tokens' share).
 * SF_TAP_TOKENS (where in the sink frames the mass lands) keeps the same mass per single key token of
 * the first token_frames key slots (the sink frames of a rolling cache; K = min(token_frames, slots)):
 * tokens[h, qf, j] = mean over query frame qf's tokens of the probability of key token j < K·S, not
 * renormalised (Σ_j over a frame's S tokens = that frame's probs value), and its lse statistics
 * (held = the K frames' share); tokens.L<l>.b<b>.s<s> [heads, qf, K·S], tokens_lse.* — a token j is
 * row j / grid_w, column j % grid_w of its frame's latent token grid (metadata token_grid "HxW").
 * A .safetensors file carries the run's facts as metadata (sf_taps_write).
 * Mirrors experiments/run_extraction_figure4.py and run_extraction_streaming.py.
 * Tested by tests/unit/test_dit_taps.c against taps_{base,generator,generator_ema}. */
#ifndef SF_TAPS_H
#define SF_TAPS_H

#include "dit.h"
#include "tap_mass.h"

typedef enum sf_tap_mode { SF_TAP_LOGITS = 0, SF_TAP_FRAMES = 1, SF_TAP_PROBS = 2, SF_TAP_TOKENS = 3 } sf_tap_mode;
typedef enum sf_tap_sel { SF_TAP_SEL_SEED = 0, SF_TAP_SEL_ALL = 1, SF_TAP_SEL_ONE = 2 } sf_tap_sel;

/* The .pt dict a run's taps are written as (--pt-layout; taps_pt.c). AUTO: the figure-4 dict, or for
 * frames + seed run_extraction_streaming.py's. The others are frames + seed only: FULL_ATTENTION =
 * run_extraction_full_attention.py's list of layers; DISTRIBUTED_STREAMING / _MULTI_PROMPT =
 * run_extraction_streaming_distributed.py's per-layer dicts of its two modes. */
typedef enum sf_pt_layout {
    SF_PT_AUTO = 0,
    SF_PT_STREAMING = 1,
    SF_PT_FULL_ATTENTION = 2,
    SF_PT_DISTRIBUTED_STREAMING = 3,
    SF_PT_DISTRIBUTED_MULTI_PROMPT = 4
} sf_pt_layout;

typedef struct sf_tap_capture {
    int layer, block, step;
    int64_t start_frame;     /* first query frame */
    int heads;
    int64_t Lq, Lk, frame_tokens;
    uint16_t *logits;        /* LOGITS: (heads, Lq, Lk) f16, owned */
    float *frames;           /* FRAMES / PROBS: (heads, Lq/frame_tokens, Lk/frame_tokens) f32; cross: (heads, QF, n_real);
                                TOKENS: (heads, QF, groups); owned */
    int64_t groups;          /* TOKENS: key tokens kept per row (K·frame_tokens); 0: the last dim is Lk/frame_tokens */
    float *stats;            /* PROBS / cross: (heads, QF, SF_TAP_NSTATS) log-sum-exp statistics, owned */
    int64_t *key_frames;     /* (Lk/frame_tokens) absolute frame of each key slot (self-attention), owned */
    int64_t *win_frames;     /* the forward's key window when this layer attended less (--sink-ablate), owned; else NULL */
    int64_t win_slots;       /* its length (win_frames non-NULL) */
    int cross;               /* 1: a cross-attention capture (Lk = text_len) */
    int64_t n_real;          /* cross: real text tokens */
    int64_t sink_shift;      /* --sink-rope realign: the time shift the sink's keys had in this forward (0: none) */
    int64_t *kept_hist;      /* --kv-compress / --pc-budget: (kept_bins, 2) frame, tokens (summed over the heads) the
                                kept slots hold from it, frames ascending; owned, NULL when none */
    int64_t kept_bins;
} sf_tap_capture;

typedef struct sf_taps {
    sf_tap_mode mode;
    sf_tap_sel sel;
    int sel_block, sel_step;
    int *layers;             /* requested layers, in the order given (owned) */
    int n_layers;
    int *given;              /* the .pt's layer_indices: --layer_indices as typed (sf_taps_given_layers),
                                NULL → layers (owned) */
    int n_given;
    int cross;               /* --tap-cross: also the cross-attention's text-token mass */
    int token_frames;        /* TOKENS: how many leading key slots keep per-token mass (--tap-token-frames; init: 1) */
    struct {
        sf_pt_layout layout; /* --pt-layout */
        int rank, world_size;/* recorded by DISTRIBUTED_STREAMING (--pt-rank, --pt-world-size; 0 and 1) */
        long prompt_index;   /* recorded by DISTRIBUTED_MULTI_PROMPT (--pt-prompt-index) */
    } pt;
    int nthreads;            /* CPU threads for the probability aggregates (0 → 1) */
    int cur_block, cur_step;
    int64_t cur_start;
    const sf_dit_state *st;  /* the state sf_taps_attach hooked (the sink's shift); NULL: none */
    float *buf;              /* f32 logits scratch (owned) */
    size_t buf_cap;
    uint16_t *pend;          /* GPU: the f16 logits being filled for the current capture (owned) */
    int pend_skip;           /* 1: this forward's logits are not kept (seed selection already has them) */
    sf_tap_capture *caps;    /* kept captures (owned) */
    size_t n_caps, cap_caps;
} sf_taps;

/* layers: n values, each in [0, num_layers) (else SF_E_ARG naming it). */
sf_status sf_taps_init(sf_taps *t, sf_tap_mode mode, sf_tap_sel sel, int sel_block, int sel_step, const int *layers,
                       int n, int num_layers, sf_err *err);
void sf_taps_free(sf_taps *t);
/* --layer_indices: every arg is "all", a layer, a range "A-B" (inclusive) or a comma list of those;
 * n_args 0 → the reference's default 0 4. Ascending, duplicates dropped, each in [0, num_layers)
 * (else SF_E_ARG naming it); num_layers < 0 checks the syntax only ("all" then gives nothing).
 * *out owned (free()). */
sf_status sf_taps_parse_layers(const char *const *args, int n_args, int num_layers, int **out, int *n_out, sf_err *err);
/* The figure-4 .pt's layer_indices. The reference stores args.layer_indices as typed (ints,
 * nargs='+': order and repeats kept, [0, 4] when none) while its attention_weights hold one entry
 * per layer, ascending. When every arg is a plain layer number, *out is that list as typed (owned);
 * when any uses sfpipe's forms (all, A-B, A,B), *out is NULL and the ascending list stands. */
sf_status sf_taps_given_layers(const char *const *args, int n_args, int **out, int *n_out, sf_err *err);
/* Parse --tap-mode / --tap-select values ("seed", "all", "b:B,s:S"). */
sf_status sf_taps_parse_mode(const char *s, sf_tap_mode *m, sf_err *err);
sf_status sf_taps_parse_select(const char *s, sf_tap_sel *sel, int *b, int *st, sf_err *err);
/* --pt-layout: auto, streaming, full_attention, distributed_streaming, distributed_multi_prompt. */
sf_status sf_taps_parse_pt_layout(const char *s, sf_pt_layout *l, sf_err *err);
const char *sf_taps_pt_layout_name(sf_pt_layout l);
/* Whether t's .pt layout holds one layer a file (the streaming dicts): several layers then need
 * "{layer}" in the path, replaced by each layer's number (sf_taps_write_pt). */
int sf_taps_pt_per_layer(const sf_taps *t);
/* Hook the taps into a DiT state (st->tap). */
void sf_taps_attach(sf_taps *t, sf_dit_state *st);
/* Tell the taps which forward comes next (pipeline on_forward hook). */
void sf_taps_on_forward(sf_taps *t, int block, int step, int64_t start_frame);

typedef struct sf_taps_meta {
    const char *prompt;
    int num_frames, num_frame_per_block;
    int independent_first_frame; /* block sizes [1, fpb, ...] (streaming dict) */
    int chunk_frames;            /* recorded in the streaming dict (0 → 3, the reference default) */
    const char *weights;         /* which weights ran (safetensors metadata / .pt dict key "weights"; NULL: not recorded) */
    /* the run's facts, recorded in a .safetensors tap file's metadata when set */
    const char *seed;            /* decimal seed, or "replayed" (NULL: not recorded) */
    long local_attn_size;        /* -1 global, > 0 rolling window; 0: not recorded (nor sink_size) */
    long sink_size;
    const char *model_dir;       /* NULL: not recorded */
    const char *config;          /* the run config (--config_path, as resolved); NULL: not recorded */
    int grid_h, grid_w;          /* a latent frame's token grid (height/16, width/16); 0: not recorded */
    long kv_compress;            /* --kv-compress frames (0: off, not recorded) */
    long pc_budget, pc_recent, pc_max_reuse; /* --pc-budget / --pc-recent / --pc-max-reuse (budget 0: not recorded) */
} sf_taps_meta;

/* Frames + seed: the streaming aggregate of one layer. full (heads, T, T) f32 and last
 * (heads, T) f32 = mean of full's rows of the last block; both caller-allocated (heads from the
 * captures, T = meta->num_frames). SF_E_NOTFOUND when the layer has no capture. */
sf_status sf_taps_stream_matrix(const sf_taps *t, int layer, const sf_taps_meta *meta, int *heads, float *full,
                                float *last, sf_err *err);

/* taps_pt.c: sf_taps_stream_matrix into owned buffers (*full, *last; freed by the caller, also on failure). */
sf_status sf_taps_stream_alloc(const sf_taps *t, int layer, const sf_taps_meta *m, int *H, float **full, float **last,
                               sf_err *err);
/* A capture as a tensor view: logits (1, heads, Lq, Lk) f16, else frames (heads, QF, KF) f32. */
sf_tensor sf_taps_cap_tensor(const sf_tap_capture *c);
/* The .pt dict of t->pt.layout (see sf_pt_layout) at path; per-layer layouts write one file a layer
 * ("{layer}" in path → the layer's number; the files written so far are removed when one fails). */
sf_status sf_taps_write_pt(const sf_taps *t, const char *path, const sf_taps_meta *meta, sf_err *err);

/* The bytes the logits captures will hold until the run ends and then write (f16 [heads, Lq, Lk] per
 * kept capture): every selected forward of every tapped layer, or with the seed selection one per layer
 * (the first with the most keys). 0 in the aggregate modes (frames, probs: kilobytes). The run: n_blocks
 * blocks of fpb latent frames (the first of 1 with independent_first), the first at frame first_frame (the
 * initial latents before it, whose keys it sees; 0 without), n_steps steps + the refresh pass, frame_tokens
 * tokens a frame, a KV cache of cache_frames frames (the rolling window, or all). */
double sf_taps_logits_bytes(const sf_taps *t, int n_blocks, int n_steps, int fpb, int independent_first,
                            int64_t first_frame, int64_t frame_tokens, int64_t cache_frames, int heads);
/* Refuse (SF_E_NOMEM) a logits capture of bytes that cannot fit in memory (MemAvailable; SF_MEM_AVAILABLE_MB
 * overrides it, for tests) or on the output's file system, naming the size and what to change; an info line
 * with the size otherwise. Call it before the run. */
sf_status sf_taps_check_room(const sf_taps *t, double bytes, const char *path, sf_err *err);

/* Whether path suits this configuration (extension; probs / cross need .safetensors): call it
 * before the run so that a bad output fails before any work. SF_E_ARG with the reason. */
sf_status sf_taps_check_path(const sf_taps *t, const char *path, sf_err *err);
/* Write the kept captures; nothing captured → SF_E_NOTFOUND (like the reference's exit 1).
 * .safetensors metadata: tap_mode, num_frames, num_frame_per_block, frame_seq_length, prompt,
 * weights, layers (JSON list), heads, forwards (JSON: block, step, start_frame, query_frames,
 * key_frames = the absolute frame of every key slot of the forward's window, sink frames of a rolling cache
 * included, −1 for a slot of --kv-compress's kept tokens (mixed frames, per head), kept_frames {"<layer>":
 * [[frame, tokens], ...]} where those slots' tokens came from (tokens summed over the heads), and layer_key_frames {"<layer>": [...]} for a tapped layer that attended fewer: --sink-ablate),
 * tap_cross, real_text_tokens, local_attn_size, sink_size, kv_compress, seed, model_dir, config (those set in meta). */
sf_status sf_taps_write(const sf_taps *t, const char *path, const sf_taps_meta *meta, sf_err *err);

#endif
