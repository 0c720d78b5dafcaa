/* taps_tokens.h — the per-token views of the workbench: `sf-taps tokens` (tokens.c), the per-token mass of the
 * sink frames from a --tap-mode tokens file as CSV and/or an SVG of one heatmap per layer and key slot; and
 * `sf-taps words` (words.c), each query frame's cross-attention mass over the prompt's tokens (--tap-cross). */
#ifndef SF_TAPS_TOKENS_H
#define SF_TAPS_TOKENS_H

#include "taps_analysis.h"

#include <stdio.h>

/* One capture of a layer, prefix.L<layer>.b<block>.s<step>; head −1: the mean over the heads asked, else that head. */
typedef struct sf_taps_cap {
    int layer, block, step;
    const sf_tensor *t;
    int head;
} sf_taps_cap;

/* The captures prefix.L<l>.b<b>.s<s> of tf, one a layer of layers[nl] (nl 0: every layer), by layer: the forward
 * (fb, fs) when fb ≥ 0, else each layer's latest block's first step. *out: caller frees (NULL when *n is 0). */
sf_status sf_taps_pick(const sf_tfile *tf, const char *prefix, const int *layers, int nl, int fb, int fs, sf_taps_cap **out,
                       int *n, sf_err *err);

/* The run's facts of forward (b, st) (the file's "forwards"): *start (non-NULL) its first query frame, 0 when not
 * said; kf[0..K) the absolute frame each of layer's first K key slots holds (its layer_key_frames when it attended
 * fewer than the window: --sink-ablate), -1 where not said (an older or hand-made file), SF_TAPS_KF_KEPT where the
 * file says −1: a slot of sf-denoise --kv-compress's or --pc-budget's kept tokens, which hold no one frame. */
#define SF_TAPS_KF_KEPT (-2)
void sf_taps_forward_facts(const sf_tfile *tf, int layer, int b, int st, int64_t *start, int64_t *kf, int64_t K);
/* Layer `layer`'s kept tokens in forward (b, st) — the file's kept_frames (sf-denoise --kv-compress / --pc-budget):
 * up to cap (frame, tokens) pairs into frame[] / tokens[]; returns how many (0: none recorded). */
int64_t sf_taps_forward_kept(const sf_tfile *tf, int layer, int b, int st, int64_t *frame, double *tokens, int64_t cap);
/* The same forward's key frames of layer as the file writes them (a JSON list), or "(not recorded)"; into out[n]. */
void sf_taps_forward_keys_text(const sf_tfile *tf, int layer, int b, int st, char *out, size_t n);

/* Which captures a per-token view shows: layers[nl] (nl 0: all) averaged over heads[nh] (nh 0: all); fb ≥ 0: that
 * forward (block fb, step fs) of every layer, else each layer's latest block's first step. */
typedef struct sf_taps_sel {
    const int *layers;
    int nl;
    const int *heads;
    int nh;
    int fb, fs;
} sf_taps_sel;

/* What sf-taps tokens maps: the selection. From full logits (a figure-4 .pt of the reference, or
 * taps.L* / fig4.L* tensors) the maps are computed here, as sf-denoise --tap-mode tokens would have kept them:
 * token_frames key slots (0: 1), frame_seq_length fsl (0: the file's), on grid "HxW" (NULL: the file's token_grid;
 * for 1560 tokens a frame without one, the reference's 30x52, 480×832). */
typedef struct sf_taps_tok_opts {
    sf_taps_sel sel;
    const char *grid;
    int token_frames;
    int64_t fsl;
    int per_head; /* one map per head (asked, else every one) instead of their mean */
    /* The SVG's maps over the video (NULL: none): an image file behind every panel, or a folder of sf-decode's
     * frame_%05d.png, each key slot over the first video frame of its latent frame (0 for frame 0, else r(f − 1) + 1,
     * r from the folder's count: 4 for the Wan VAE) */
    const char *frames;
    const char *id; /* the SVG's element id prefix, unique in one HTML page (NULL: "tok") */
} sf_taps_tok_opts;

/* svg non-NULL: the figure (an <svg> element, no XML prolog) to it; csv non-NULL: the rows to it. Bad input (no
 * tokens or logits taps, nothing selected, a grid that does not fit): one-line error, nothing written. */
sf_status sf_taps_tokens(const sf_tfile *tf, const sf_taps_tok_opts *o, FILE *svg, FILE *csv, sf_err *err);

/* The same maps of tf minus base's (heads: all; grids, layers and key slots must match, else SF_E_SHAPE) as an SVG
 * of differences on a diverging scale: how a run's sink moved against another's (report --tokens). */
sf_status sf_taps_tokens_diff(const sf_tfile *tf, const sf_tfile *base, const sf_taps_tok_opts *o, FILE *svg, sf_err *err);

/* The video behind a tokens file's run as HTML: a strip of thumbnails, one per latent frame (what each key slot
 * holds; at most the first 256), from frames, a folder of sf-decode's frame_%05d.png (latent frame f's picture as
 * sf_taps_tokens draws it), each 120 px wide with the latent frame under it. Nothing for an image file, or a file
 * whose facts do not say its latent frames (num_frames). For report --frames (compare.c). */
sf_status sf_taps_tokens_film(const sf_tfile *tf, const char *frames, FILE *html, sf_err *err);

/* sf-taps words: the selection's mean over its heads. The tokens are labelled with the prompt's SentencePiece pieces: prompt (NULL:
 * the file's fact) through the tokenizer at tokenizer (NULL: <the file's model_dir>/google/umt5-xxl/spiece.model)
 * as sf-encode cleans and encodes it; when that is not possible, or the count is not the file's, by position (#j),
 * with a warning saying why. */
typedef struct sf_taps_words_opts {
    sf_taps_sel sel;
    const char *tokenizer, *prompt;
    int by_word; /* a column a word (its pieces joined, their mass summed) instead of a token */
} sf_taps_words_opts;

/* svg non-NULL: the figure (an <svg> element) to it, one row a (layer, query frame), one column a token, each layer's
 * rows summing to 1 (viridis over [0, the largest]); csv non-NULL: rows layer,head,block,step,query_frame,token,piece,
 * mass (query_frame absolute when the facts say the forward's start, piece quoted as CSV; by_word: word,text). No cross.L* taps, nothing
 * selected, a bad shape: one-line error, nothing written. */
sf_status sf_taps_words(const sf_tfile *tf, const sf_taps_words_opts *o, FILE *svg, FILE *csv, sf_err *err);

#endif
