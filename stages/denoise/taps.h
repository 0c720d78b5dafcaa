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
 * seed, one layer).
 * Mirrors experiments/run_extraction_figure4.py and run_extraction_streaming.py.
 * Tested by tests/unit/test_dit_taps.c against taps_{base,generator,generator_ema}. */
#ifndef SF_TAPS_H
#define SF_TAPS_H

#include "dit.h"

typedef enum sf_tap_mode { SF_TAP_LOGITS = 0, SF_TAP_FRAMES = 1 } sf_tap_mode;
typedef enum sf_tap_sel { SF_TAP_SEL_SEED = 0, SF_TAP_SEL_ALL = 1, SF_TAP_SEL_ONE = 2 } sf_tap_sel;

typedef struct sf_tap_capture {
    int layer, block, step;
    int64_t start_frame;     /* first query frame */
    int heads;
    int64_t Lq, Lk, frame_tokens;
    uint16_t *logits;        /* LOGITS: (heads, Lq, Lk) f16, owned */
    float *frames;           /* FRAMES: (heads, Lq/frame_tokens, Lk/frame_tokens) f32, owned */
    int64_t *key_frames;     /* FRAMES: (Lk/frame_tokens) absolute frame of each key slot, owned */
} sf_tap_capture;

typedef struct sf_taps {
    sf_tap_mode mode;
    sf_tap_sel sel;
    int sel_block, sel_step;
    int *layers;             /* requested layers, in the order given (owned) */
    int n_layers;
    int cur_block, cur_step;
    int64_t cur_start;
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
/* Parse --tap-mode / --tap-select values ("seed", "all", "b:B,s:S"). */
sf_status sf_taps_parse_mode(const char *s, sf_tap_mode *m, sf_err *err);
sf_status sf_taps_parse_select(const char *s, sf_tap_sel *sel, int *b, int *st, sf_err *err);
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
} sf_taps_meta;

/* Frames + seed: the streaming aggregate of one layer. full (heads, T, T) f32 and last
 * (heads, T) f32 = mean of full's rows of the last block; both caller-allocated (heads from the
 * captures, T = meta->num_frames). SF_E_NOTFOUND when the layer has no capture. */
sf_status sf_taps_stream_matrix(const sf_taps *t, int layer, const sf_taps_meta *meta, int *heads, float *full,
                                float *last, sf_err *err);

/* Write the kept captures; nothing captured → SF_E_NOTFOUND (like the reference's exit 1). */
sf_status sf_taps_write(const sf_taps *t, const char *path, const sf_taps_meta *meta, sf_err *err);

#endif
