/* taps_analysis.h — frame-level statistics of attention taps for the attention-sink study
 * (Deep Forcing Figure 4): what notebooks/plt_fig4.ipynb and the summary printed by
 * experiments/run_extraction_figure4.py compute from a figure-4 file (SPEC.md §7.3, §7.5).
 *
 * A "source" is one tapped attention: either pre-softmax logits [1, H, Lq, Lk] (or [H, Lq, Lk])
 * of any float dtype, streamed one query row at a time (never copied whole: 3.7 GB per layer
 * for the real model), or an already frame-level tensor [H, q_frames, k_frames] / [H, k_frames].
 * Per source and selected head h:
 *   F[h, kf]    = mean over all queries and the keys of key frame kf of the logits
 *   W[h, kf]    = softmax_K(logits) averaged over the queries, then over frame kf's keys
 *                 (logits sources only; max-subtracted softmax, double accumulation)
 *   delta[h]    = F[h,0] − mean(F[h,1:−1])   (notebook: mean(F[h,:]) when K < 3)
 *   spread[h]   = (max − min)/|mean| · 100 over F[h,:]
 *   sink[h]     = W[h,0] / mean(W[h,1:−1])   (the script's softmax "sink ratio"; NaN when K < 3)
 * Head mean over the selected heads: m = mean_h F, s = population std_h F (numpy .std), and
 * first = m[0], middle = mean(m[1:−1]) (NaN when K < 3), last = m[−1], ratio = first/middle,
 * first_minus_last. Source discovery for sf-taps' containers is here too.
 * Probability sources (probs.*, the exact per-frame softmax mass): F[h, kf] = the mass averaged over
 * the query frames, W = F / frame_seq_length, so the sink ratio is the same statistic as for logits.
 * Tested by tests/unit/test_taps_analysis.c (hand-made logits, golden fig4.L*.frame_attention). */
#ifndef SF_TAPS_ANALYSIS_H
#define SF_TAPS_ANALYSIS_H

#include "tfile.h"

#include <stdio.h>

typedef enum sf_taps_src_kind {
    SF_TAPS_SRC_LOGITS = 0, /* [1,H,Lq,Lk] or [H,Lq,Lk] token logits */
    SF_TAPS_SRC_FRAMES = 1, /* [H, q_frames, k_frames]: F = mean over the used query-frame rows */
    SF_TAPS_SRC_CURVE = 2,  /* [H, k_frames]: F directly (last_block_frame_attention) */
    SF_TAPS_SRC_PROBS = 3,  /* [H, q_frames, k_frames] softmax mass (probs.*): F = mass averaged over the
                               query frames, W = F / fsl (the per-key mean, as for logits) */
} sf_taps_src_kind;

typedef enum sf_taps_set {
    SF_TAPS_SET_FIG4 = 1,   /* figure-4 selection: .pt attention_weights, fig4.L<l>.attn_logits */
    SF_TAPS_SET_TAPS = 2,   /* taps.L<l>.b<b>.s<s> (every forward) */
    SF_TAPS_SET_FRAMES = 4, /* frames.L<l>.b<b>.s<s>, stream.L<l>.b<b>.s<s> */
    SF_TAPS_SET_STREAM = 8, /* streaming .pt / stream.L<l>.full_frame_attention: last block rows */
    SF_TAPS_SET_PROBS = 16, /* probs.L<l>.b<b>.s<s> (sf-denoise --tap-mode probs) */
} sf_taps_set;

typedef struct sf_taps_src {
    char name[128];         /* tensor name in the file ("fig4.L0.attn_logits", "attention_weights/0/attn_logits") */
    char label[64];         /* short label for file names and tables: "L0", "L0.b2.s0" */
    sf_taps_src_kind kind;
    sf_taps_set set;
    int layer, block, step; /* block/step -1 when unknown */
    const sf_tensor *t;     /* borrowed from the sf_tfile */
    int64_t fsl;            /* frame_seq_length (LOGITS; 0 = derive) */
    int64_t row0, nrows;    /* FRAMES: query-frame rows averaged (nrows 0 = all) */
} sf_taps_src;

typedef struct sf_taps_stats {
    int nh;                 /* selected heads */
    int *heads;             /* [nh] head indices (owned) */
    int64_t nkf;            /* key frames K */
    int64_t nq;             /* query tokens (LOGITS) or query frames (FRAMES) averaged */
    int64_t fsl;            /* tokens per frame (LOGITS; PROBS: the file's, 0 when unknown), 0 otherwise */
    double *F;              /* [nh, nkf] frame means of the logits (owned) */
    double *W;              /* [nh, nkf] frame means of the softmax weights; NULL unless LOGITS */
    double *delta, *spread, *sink; /* [nh] each (sink all NaN without W) */
    double *mean, *std;     /* [nkf] head mean / population std of F */
    double first, middle, last, ratio, first_minus_last;
    double lmin, lmax;      /* min/max of the logits (of the frame values for non-LOGITS) */
} sf_taps_stats;

/* One row of n values of dtype dt (f16 through tab: the 65536 halves as floats; bf16, f32, f64) as floats. */
void sf_taps_row_to_f32(const uint8_t *p, sf_dtype dt, int64_t n, const float *tab, float *x);

/* Logits pass over `t` ([1,H,Lq,Lk] or [H,Lq,Lk]; f16/bf16/f32/f64; last dim contiguous).
 * fsl = tokens per frame (Lk and Lq multiples of it; must be > 0). heads: nh indices (NULL/0 =
 * all heads). Fills F, W and the logit range, then sf_taps_stats_finish. `out` is initialised
 * here; free with sf_taps_stats_free (also after a failure). */
sf_status sf_taps_stats_logits(const sf_tensor *t, int64_t fsl, const int *heads, int nh, sf_taps_stats *out,
                               sf_err *err);
/* Frame-level input: [H, Qf, K] averaged over rows row0..row0+nrows−1 (nrows 0 = all), or
 * [H, K] used directly. Any float dtype/strides. W stays NULL. */
sf_status sf_taps_stats_frames(const sf_tensor *t, int64_t row0, int64_t nrows, const int *heads, int nh,
                               sf_taps_stats *out, sf_err *err);
/* Derived statistics from F (and W): delta, spread, sink, mean/std, first/middle/last/ratio. */
void sf_taps_stats_finish(sf_taps_stats *s);
void sf_taps_stats_free(sf_taps_stats *s);

/* Softmax sink ratio of one frame-mean weight row w[K]: w[0]/mean(w[1:−1]), NaN when K < 3. */
double sf_taps_sink_ratio(const double *w, int64_t K);

/* Find the sources of an opened tap file: figure-4 / streaming .pt dicts, or the safetensors
 * names of sf-denoise and the goldens. `sets` = OR of sf_taps_set (0 = automatic: fig4 when
 * present, else stream, else taps + frames). fsl_override > 0 replaces the file's
 * frame_seq_length; fpb (query frames of the last block for streaming files) defaults to the
 * file's num_frame_per_block or 3. layers: nl filter values (NULL = all). Sorted by layer,
 * block, step. No source → SF_E_NOTFOUND. *out owned (free()). */
sf_status sf_taps_find_sources(const sf_tfile *tf, unsigned sets, int64_t fsl_override, const int *layers, int nl,
                               sf_taps_src **out, size_t *n_out, sf_err *err);

/* What a source's frame values F are, in words: one row per kind, used by every sf-taps output
 * (summary, CSV/JSON, figures) so that a probs source is never labelled as logits. */
typedef struct sf_taps_kind_text {
    const char *json_kind;  /* JSON "kind": "logits", "frames", "probs" */
    const char *column;     /* CSV column of F: "logit_mean" (logits, frames, curve), "mass_mean" (probs) */
    const char *range;      /* summary "<range> range: [min, max]": "logits", "values", "mass" */
    const char *intro;      /* summary line before ", key frames K, heads H": a printf format given
                               (long long nq, long long fsl); kinds that show fewer ignore the rest */
    const char *axis;       /* figure y axis / colour bar: "Mean attention logit", "Attention mass" */
    const char *heads_title;   /* heads_<label>.svg: "Layer L (label): <heads_title>, Δ = …" */
    const char *heatmap_title; /* heatmap_<label>.svg: "Layer L (label): <heatmap_title>" */
} sf_taps_kind_text;
const sf_taps_kind_text *sf_taps_kind_labels(sf_taps_src_kind k);
/* The label shared by n sources (a CSV header, one y axis over several sources): the field at
 * byte offset `field` of their kinds' rows when all agree, else `mixed`. */
const char *sf_taps_kinds_label(const sf_taps_src *srcs, size_t n, size_t field, const char *mixed);

/* Compute the statistics of one source (dispatching on its kind). */
sf_status sf_taps_stats_source(const sf_taps_src *src, const int *heads, int nh, sf_taps_stats *out, sf_err *err);

/* The output folder of plot / compare -o DIR: made with its parents (mkdir -p) when missing;
 * SF_E_IO, one line, when that fails or DIR is not a folder. */
sf_status sf_taps_make_dir(const char *dir, sf_err *err);

/* Axis ticks of the SVG figures (svg.c; pure, tested by tests/unit/test_taps_svg.c).
 * sf_taps_nice_ticks: ticks at every multiple of a "nice" step mant·10^e (mant 1, 2 or 5) from
 * the last one ≤ lo to the first one ≥ hi, so the axis range is [v[0], v[n−1]] ⊇ [lo, hi]; the
 * smallest such step that needs at most max_ticks ticks (clamped to 3..SF_TAPS_TICKS_MAX). Each
 * v[i] is the double nearest the decimal (k0+i)·mant·10^e (0.3, not 0.30000000000000004), and
 * 0 is one of the ticks whenever the range spans it. A single value (hi − lo ≤ 1e−9·max|·|)
 * gets the window value ± its decade (5 → 4..6, 0 → −1..1); NaN/inf ends are dropped (none
 * left: 0..1); lo > hi is swapped. Labels (sf_taps_tick_label) share one format per axis:
 * fixed with `decimals` digits, or, when that would need more than 4 decimals or values from
 * 10^6 up, a mantissa with `decimals` digits times 10^exp10 ("0.5×10⁻⁶"; zero is "0"). Negative
 * labels use U+2212 MINUS SIGN. */
#define SF_TAPS_TICKS_MAX 16
typedef struct sf_taps_ticks {
    int n;                       /* ticks, 2..max_ticks */
    double v[SF_TAPS_TICKS_MAX]; /* [n] ascending tick values; the axis runs v[0]..v[n−1] */
    double step;                 /* mant·10^e */
    int mant, e;                 /* step = mant·10^e, mant ∈ {1, 2, 5} */
    int decimals;                /* digits after the point, the same in every label */
    int sci, exp10;              /* labels are mantissa×10^exp10 when sci */
} sf_taps_ticks;
void sf_taps_nice_ticks(double lo, double hi, int max_ticks, sf_taps_ticks *out);
/* Label of value v on axis t into buf[n] (UTF-8, NUL-terminated; "nan" for non-finite v). */
void sf_taps_tick_label(const sf_taps_ticks *t, double v, char *buf, size_t n);
/* Step of the integer ticks 0, s, 2s, … < count (frame and head indices): the smallest of 1, 2,
 * 5, 10, 20, 50, … that labels at most max_ticks of them (≥ 1). */
int64_t sf_taps_int_tick_step(int64_t count, int max_ticks);

/* s as XML / HTML text or attribute value: < > & " ' escaped, control characters but newline and tab dropped, a
 * byte that is not UTF-8 as U+FFFD (svg.c; the HTML report's text too). */
void sf_taps_xml_text(FILE *f, const char *s);

/* SVG figures (svg.c); each written atomically. */
/* Viridis at t ∈ [0, 1] (clamped; not finite: grey) as "#rrggbb", or as 3 bytes (svg.c). */
void sf_taps_viridis(double t, char *out, size_t n);
void sf_taps_viridis_rgb(double t, unsigned char rgb[3]);
sf_status sf_taps_svg_heads(const char *path, const sf_taps_src *src, const sf_taps_stats *s, sf_err *err);
sf_status sf_taps_svg_heatmap(const char *path, const sf_taps_src *src, const sf_taps_stats *s, sf_err *err);
sf_status sf_taps_svg_layers(const char *path, const sf_taps_src *srcs, const sf_taps_stats *st, size_t n,
                             sf_err *err);
sf_status sf_taps_svg_sink(const char *path, const sf_taps_src *srcs, const sf_taps_stats *st, size_t n,
                           sf_err *err);

/* The workbench's figures, written to an open stream (compare.c writes them to files and inlines
 * them in the HTML report), text XML-escaped:
 * sf_taps_svg_grid: a rows × cols heatmap of v (row-major), viridis over the exact finite range with
 * a colour bar; rows labelled row_prefix + row_ids[r] (NULL: r), column k labelled col_lo[k] (NULL: k),
 * or "lo–hi" where col_hi[k] > col_lo[k] (a column standing for several, drawn hatched); each cell's
 * <title> "<row> <col_name> <k>: value" ("<row> <col_name>s lo–hi: value"). sf_taps_svg_lines: one polyline per series over npts
 * points labelled x_ids[p] (NULL: p), with a legend of names. */
void sf_taps_svg_grid(FILE *f, const char *title, int rows, const int *row_ids, const char *row_prefix,
                      const char *row_axis, int64_t cols, const int64_t *col_lo, const int64_t *col_hi,
                      const char *col_axis, const char *col_name, const double *v, const char *bar_label);
void sf_taps_svg_lines(FILE *f, const char *title, const char *xlabel, const char *ylabel, int n_series,
                       const char *const *names, int npts, const int *x_ids, const double *v);

#endif
