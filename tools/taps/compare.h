/* compare.h — sf-taps' attention-sink workbench: several tap files (e.g. the base, DMD and SID
 * checkpoints on one prompt, seed and noise) side by side, per layer × head:
 *   first_mass = the softmax mass of key frame 0, averaged over the queries (probs.* directly; from
 *                logits W[h,0]·frame_seq_length),
 *   sink_ratio = W[h,0] / mean W[h,1:−1] (sf_taps_sink_ratio; NaN with fewer than 3 key frames),
 *   d_first_mass, d_sink_ratio = the same minus the first file's,
 *   first_key_frame = the frame the first key slot holds (frame 0 but in a layer ablated with --sink-ablate).
 * Per file and layer one forward is used: --forward B:S, else the first with the most key frames
 * (the figure-4 choice), a probs.* source before a logits one. Outputs: a CSV table, SVG figures
 * (layers × heads sink-ratio heatmaps, their differences to the first file, head-mean curves per
 * layer, layers × absolute key frames mass grids and their differences) and one self-contained HTML report (inline SVG, tables, the runs' facts from the
 * files' metadata; every text escaped; with one tokens file per run, each run's per-token sink-frame
 * heatmaps of taps_tokens.h). Tested by tests/bats/sf-taps-compare.bats on numbers
 * worked out by hand from the golden tap file, and the report in headless Chromium. */
#ifndef SF_TAPS_COMPARE_H
#define SF_TAPS_COMPARE_H

#include "taps_analysis.h"

/* The most absolute key frames a mass grid shows (frame_mass_*.svg): a video of 4096 latent frames is 4.5 hours. */
#define SF_TAPS_GRID_FRAMES 4096

typedef struct sf_taps_run {
    char label[64];
    const char *path;         /* borrowed */
    sf_tfile *tf;
    int *block, *step;        /* [nl] the forward used per layer */
    double *mass, *ratio;     /* [nl, H] */
    int64_t *kf0;             /* [nl] the absolute frame of the layer's first key slot in that forward (−1: not recorded) */
    unsigned char *ablated;   /* [nl] 1: the layer attended fewer keys than the forward's window (sf-denoise
                                 --sink-ablate), so its first key slot, whose mass and ratio these are, is not frame 0's */
    int64_t kmax;             /* key slots room per layer in skf / sm (the most of any layer's source) */
    int64_t *nslot;           /* [nl] key slots of the layer's source */
    int64_t *skf;             /* [nl, kmax] the absolute frame each slot holds (the slot's index when not recorded) */
    double *sm;               /* [nl, kmax] the mass on each slot, mean over the heads and the queries */
    int64_t *nkept;           /* [nl] (frame, tokens) pairs of the layer's kept tokens (--kv-compress, --pc-budget) */
    int64_t *kept_f;          /* [nl, SF_TAPS_GRID_FRAMES] the frames they came from */
    double *kept_n;           /* [nl, SF_TAPS_GRID_FRAMES] and how many tokens (heads together) from each */
} sf_taps_run;

typedef struct sf_taps_cmp {
    int nr;
    sf_taps_run *r;
    int nl, H;
    int *layers;              /* [nl] ascending: the first file's, every other file must have them */
    int64_t fsl;
    int64_t nf;               /* key frames 0 … nf−1: the last any run's layer attended, plus one (at most
                                 SF_TAPS_GRID_FRAMES: the mass grids leave later frames out) */
    int64_t ncol;             /* the mass grids' columns: each frame some run's layer attended, and each run of
                                 two or more frames none attended as one column (a rolling cache's long past) */
    int64_t *col_lo, *col_hi; /* [ncol] the frames column j covers (lo == hi but for such a run) */
    int64_t *f2c;             /* [nf] frame → its column */
    int fwd_b, fwd_s;         /* the forward asked for (--forward), or -1 */
    const char *const *tokens; /* report: one --tap-mode tokens file per run (borrowed), or NULL */
    const char *const *frames; /* report: each tokens file's video (taps_tokens.h's frames; borrowed), or NULL */
    const char *tokenizer;     /* report: the tokenizer file for the cross-attention taps' labels, or NULL (the runs') */
} sf_taps_cmp;

/* Open n files and compute the table. labels: n names or NULL (file base names). layers: filter
 * (NULL = the first file's). fwd_b/fwd_s ≥ 0: that forward. Bad input: one-line error. */
sf_status sf_taps_cmp_load(sf_taps_cmp *c, const char *const *paths, int n, const char *const *labels,
                           int64_t fsl, const int *layers, int nl, int fwd_b, int fwd_s, sf_err *err);
void sf_taps_cmp_free(sf_taps_cmp *c);
/* CSV: layer,head,run,block,step,first_mass,sink_ratio,d_first_mass,d_sink_ratio,first_key_frame (nan spelled
 * out; first_key_frame: the absolute frame of the layer's first key slot, −1 when not recorded). */
void sf_taps_cmp_csv(FILE *f, const sf_taps_cmp *c);
/* DIR/compare.csv, sink_ratio_<label>.svg, sink_ratio_diff_<label>.svg (runs ≥ 1), first_mass.svg,
 * sink_ratio_layers.svg, frame_mass_<label>.svg (layers × absolute key frames: the mass on each, mean over the
 * heads and queries; grey where the layer attended no such frame — not yet in the window, rolled out, or skipped:
 * --sink-ablate; two or more consecutive frames no layer of any run attended share one grey column labelled
 * "a–b") and frame_mass_diff_<label>.svg (runs ≥ 1: minus the first run's, frame for frame); kept_frames_<label>.svg
 * for a run that kept tokens (--kv-compress, --pc-budget): per layer, the share of its kept tokens from each frame. */
sf_status sf_taps_cmp_write_dir(const sf_taps_cmp *c, const char *dir, sf_err *err);
/* One run's layers × heads sink-ratio heatmap as an SVG file. */
sf_status sf_taps_cmp_heatmap(const sf_taps_cmp *c, int run, const char *path, sf_err *err);
/* The HTML report, atomically. */
sf_status sf_taps_cmp_report(const sf_taps_cmp *c, const char *path, sf_err *err);

#endif
