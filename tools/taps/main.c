/* sf-taps — attention-tap files → frame-level tables (CSV/JSON), a readable summary and SVG
 * figures for the attention-sink study (Deep Forcing Figure 4).
 *
 *   sf-taps summary FILE [-o OUT]                     per source: logit range, head-mean first/middle/
 *                                                     last/ratio, per-head Δ, spread %, softmax sink ratio
 *   sf-taps table FILE [--format csv|json] [-o OUT]   F[layer, head, key_frame] rows (+ softmax means)
 *   sf-taps plot FILE -o DIR                          heads_<label>.svg, heatmap_<label>.svg, layers.svg,
 *                                                     sink_ratio.svg
 *   sf-taps compare A B [C...] [-o DIR]              per layer × head: first-frame mass, sink ratio and their
 *                                                     differences to A (CSV on stdout, or DIR/compare.csv + SVGs)
 *   sf-taps heatmap FILE -o OUT.svg                  layers × heads sink-ratio heatmap
 *   sf-taps report A [B...] -o OUT.html [--tokens TA [TB...]]  one self-contained HTML page (compare.h); with
 *                                                     tokens files, where in the sink frames the mass lands
 *   sf-taps tokens FILE [-o OUT.svg]                 the sink frames' per-token mass (--tap-mode tokens, or from
 *                                                     full logits: a figure-4 .pt too): one heatmap per layer and
 *                                                     key slot (--frames: over the video), or CSV on stdout (tokens.c)
 *   sf-taps words FILE [-o OUT.svg]                  which prompt tokens each query frame looks at (--tap-cross),
 *                                                     labelled with the prompt's pieces: SVG or CSV (words.c)
 * Filters: --layers L..., --heads H..., --set fig4|taps|frames|stream|probs|all, --frame-seq-length N,
 * --labels NAME... (compare/report), --forward B:S (compare/report: that forward of every layer).
 * Inputs: the figure-4 .pt of run_extraction_figure4.py / sf-denoise, the streaming .pt of
 * run_extraction_streaming.py, and sf-denoise's / the goldens' safetensors names.
 * Mirrors notebooks/plt_fig4.ipynb and the summary of run_extraction_figure4.py.
 * Tested by tests/bats/sf-taps.bats (statistics by tests/unit/test_taps_analysis.c). */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "compare.h"
#include "taps_analysis.h"
#include "taps_tokens.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *prog = "sf-taps";
static const char *synopsis = "summary FILE [-o OUT] | table FILE [--format csv|json] [-o OUT] | plot FILE -o DIR | "
                              "compare A B [C...] [-o DIR] | heatmap FILE -o OUT.svg | report A [B...] -o OUT.html [--tokens TA...] | "
                              "tokens FILE [-o OUT.svg [--frames VIDEO]] | words FILE [-o OUT.svg]";

static const sf_opt opts[] = {
    {"output", 'o', SF_ARG_VALUE, "PATH\toutput file (summary, table: default stdout; heatmap .svg, report .html) or directory (plot; compare: default CSV on stdout)"},
    {"format", 'f', SF_ARG_VALUE, "csv|json\ttable format (default csv)"},
    {"layers", 'l', SF_ARG_MULTI, "L...\tonly these layers"},
    {"heads", 0, SF_ARG_MULTI, "H...\tonly these heads (the head mean is over the selected heads)"},
    {"set", 0, SF_ARG_VALUE, "S\tfig4|taps|frames|stream|probs|all (default: fig4 if present, else stream, else taps+frames+probs)"},
    {"frame-seq-length", 0, SF_ARG_VALUE, "N\ttokens per latent frame (default: from the file, else Lq / query frames)"},
    {"labels", 0, SF_ARG_MULTI, "NAME...\tcompare/report: one name per file (default: the file names)"},
    {"tokens", 0, SF_ARG_MULTI, "FILE...\treport: one --tap-mode tokens file per run, in the same order: adds where in the sink frames the mass lands"},
    {"token-grid", 0, SF_ARG_VALUE, "HxW\ttokens: a frame's latent token grid, for files that do not say (figure-4 .pt; 1560 tokens: 30x52)"},
    {"token-frames", 0, SF_ARG_VALUE, "K\ttokens from full logits: the leading key slots to map (default 1)"},
    {"frames", 0, SF_ARG_MULTI, "PATH...\ttokens/report: the maps over the video: an image file, or sf-decode's PNG folder (DIR/frame_00000.png...: each key slot over its own frame); report: one per tokens file"},
    {"tokenizer", 0, SF_ARG_VALUE, "FILE\twords/report: the tokenizer.json or spiece.model that labels the cross-attention taps' tokens (default <the run's model_dir>/google/umt5-xxl/tokenizer.json, else its spiece.model)"},
    {"prompt", 0, SF_ARG_VALUE, "TEXT\twords: the prompt to label the tokens with (default the file's)"},
    {"by-word", 0, SF_ARG_FLAG, "words: a column a word (its pieces joined, their mass summed) instead of a token"},
    {"per-head", 0, SF_ARG_FLAG, "tokens: one map per head (those of --heads, else every one) instead of their mean"},
    {"forward", 0, SF_ARG_VALUE, "B:S\tcompare/report/tokens/words: use block B, step S of every layer (default: the most key frames)"},
    SF_OPTS_STD,
    {0},
};

typedef struct run {
    sf_tfile *tf;
    sf_taps_src *src;
    size_t n;
    sf_taps_stats *st;
} run;

static void run_free(run *r) {
    for (size_t i = 0; r->st && i < r->n; i++) sf_taps_stats_free(&r->st[i]);
    free(r->st);
    free(r->src);
    sf_tfile_destroy(&r->tf);
}

static void die_run(run *r, sf_status s, const sf_err *e) {
    run_free(r);
    sf_die(prog, s, e);
}

static void usage_die(const char *msg) {
    sf_err e;
    snprintf(e.msg, sizeof e.msg, "%s (usage: sf-taps %s)", msg, synopsis);
    sf_die(prog, SF_E_ARG, &e);
}

static int *int_list(const sf_args *a, const char *name, const char *flag, int *n) {
    const char **v = NULL;
    int k = sf_args_all(a, opts, name, &v);
    *n = k;
    if (k <= 0) {
        free(v);
        return NULL;
    }
    int *out = malloc(sizeof(int) * (size_t)k);
    if (!out) usage_die("out of memory");
    for (int i = 0; i < k; i++) {
        long x;
        sf_err e;
        if (sf_arg_long(flag, v[i], 0, 1 << 20, &x, &e)) sf_die(prog, SF_E_ARG, &e);
        out[i] = (int)x;
    }
    free(v);
    return out;
}

/* CSV/plain number: "nan"/"inf" spelled out. */
static void num(FILE *f, const char *fmt, double v) {
    if (isnan(v)) fputs("nan", f);
    else if (isinf(v)) fputs(v > 0 ? "inf" : "-inf", f);
    else fprintf(f, fmt, v);
}

/* JSON number: null for NaN/inf. */
static void jnum(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.10g", v);
    else fputs("null", f);
}

static void jstr(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void jarr(FILE *f, const double *v, int64_t n) {
    fputc('[', f);
    for (int64_t i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        jnum(f, v[i]);
    }
    fputc(']', f);
}

static void write_summary(FILE *f, const run *r, const char *path) {
    char sh[128];
    fprintf(f, "# %s: %zu source%s\n", path, r->n, r->n == 1 ? "" : "s");
    for (size_t i = 0; i < r->n; i++) {
        const sf_taps_src *s = &r->src[i];
        const sf_taps_stats *t = &r->st[i];
        fprintf(f, "\n== %s  layer %d", s->label, s->layer);
        if (s->block >= 0) fprintf(f, "  block %d  step %d", s->block, s->step);
        fprintf(f, "  (%s %s %s)\n", s->name, sf_dtype_name(s->t->dtype), sf_shape_str(s->t, sh, sizeof sh));
        const sf_taps_kind_text *kt = sf_taps_kind_labels(s->kind);
        fprintf(f, kt->intro, (long long)t->nq, (long long)t->fsl);
        fprintf(f, ", key frames %lld, heads %d\n", (long long)t->nkf, t->nh);
        fprintf(f, "%s range: [", kt->range);
        num(f, "%.4f", t->lmin);
        fputs(", ", f);
        num(f, "%.4f", t->lmax);
        fputs("]\nhead mean: first ", f);
        num(f, "%.4f", t->first);
        fputs("  middle ", f);
        num(f, "%.4f", t->middle);
        fputs("  last ", f);
        num(f, "%.4f", t->last);
        fputs("  first/middle ", f);
        num(f, "%.2fx", t->ratio);
        fputs("  first-last ", f);
        num(f, "%.4f", t->first_minus_last);
        fprintf(f, "\n%-6s %10s %10s %10s %10s %10s\n", "head", "first", "last", "delta", "spread%", "sink_ratio");
        for (int h = 0; h < t->nh; h++) {
            const double *F = t->F + (size_t)h * (size_t)t->nkf;
            fprintf(f, "H%-5d ", t->heads[h]);
            double v[5] = {F[0], F[t->nkf - 1], t->delta[h], t->spread[h], t->sink[h]};
            for (int k = 0; k < 5; k++) {
                char b[32];
                if (isfinite(v[k])) snprintf(b, sizeof b, k == 3 ? "%.1f" : "%.4f", v[k]);
                else snprintf(b, sizeof b, isnan(v[k]) ? "nan" : v[k] > 0 ? "inf" : "-inf");
                fprintf(f, "%10s%s", b, k == 4 ? "\n" : " ");
            }
        }
    }
}

static void write_csv(FILE *f, const run *r) {
    /* F's column says what F is; a table mixing logits and probs sources says value_mean (the
     * source label tells them apart) */
    fprintf(f, "source,layer,block,step,head,key_frame,%s,softmax_mean\n",
            sf_taps_kinds_label(r->src, r->n, offsetof(sf_taps_kind_text, column), "value_mean"));
    for (size_t i = 0; i < r->n; i++) {
        const sf_taps_src *s = &r->src[i];
        const sf_taps_stats *t = &r->st[i];
        for (int h = 0; h < t->nh; h++)
            for (int64_t k = 0; k < t->nkf; k++) {
                size_t o = (size_t)h * (size_t)t->nkf + (size_t)k;
                fprintf(f, "%s,%d,", s->label, s->layer);
                if (s->block >= 0) fprintf(f, "%d,%d,", s->block, s->step);
                else fputs(",,", f);
                fprintf(f, "%d,%lld,", t->heads[h], (long long)k);
                num(f, "%.9g", t->F[o]);
                fputc(',', f);
                if (t->W) num(f, "%.9g", t->W[o]);
                fputc('\n', f);
            }
    }
}

static void write_json(FILE *f, const run *r, const char *path) {
    fputs("{\"file\": ", f);
    jstr(f, path);
    fputs(", \"sources\": [", f);
    for (size_t i = 0; i < r->n; i++) {
        const sf_taps_src *s = &r->src[i];
        const sf_taps_stats *t = &r->st[i];
        fputs(i ? ",\n  {" : "\n  {", f);
        fputs("\"label\": ", f);
        jstr(f, s->label);
        fputs(", \"tensor\": ", f);
        jstr(f, s->name);
        fprintf(f, ", \"kind\": \"%s\", \"layer\": %d, ", sf_taps_kind_labels(s->kind)->json_kind, s->layer);
        if (s->block >= 0) fprintf(f, "\"block\": %d, \"step\": %d, ", s->block, s->step);
        else fputs("\"block\": null, \"step\": null, ", f);
        fprintf(f, "\"frame_seq_length\": %lld, \"num_key_frames\": %lld, \"heads\": [", (long long)t->fsl, (long long)t->nkf);
        for (int h = 0; h < t->nh; h++) fprintf(f, "%s%d", h ? ", " : "", t->heads[h]);
        fputs("],\n   \"logits_min\": ", f);
        jnum(f, t->lmin);
        fputs(", \"logits_max\": ", f);
        jnum(f, t->lmax);
        fputs(",\n   \"frame_attention\": [", f);
        for (int h = 0; h < t->nh; h++) {
            fputs(h ? ", " : "", f);
            jarr(f, t->F + (size_t)h * (size_t)t->nkf, t->nkf);
        }
        fputs("],\n   \"softmax_frame_mean\": ", f);
        if (t->W) {
            fputc('[', f);
            for (int h = 0; h < t->nh; h++) {
                fputs(h ? ", " : "", f);
                jarr(f, t->W + (size_t)h * (size_t)t->nkf, t->nkf);
            }
            fputc(']', f);
        } else
            fputs("null", f);
        fputs(",\n   \"delta\": ", f);
        jarr(f, t->delta, t->nh);
        fputs(", \"spread_pct\": ", f);
        jarr(f, t->spread, t->nh);
        fputs(", \"sink_ratio\": ", f);
        jarr(f, t->sink, t->nh);
        fputs(",\n   \"head_mean\": ", f);
        jarr(f, t->mean, t->nkf);
        fputs(", \"head_std\": ", f);
        jarr(f, t->std, t->nkf);
        fputs(",\n   \"summary\": {\"first\": ", f);
        jnum(f, t->first);
        fputs(", \"middle\": ", f);
        jnum(f, t->middle);
        fputs(", \"last\": ", f);
        jnum(f, t->last);
        fputs(", \"ratio\": ", f);
        jnum(f, t->ratio);
        fputs(", \"first_minus_last\": ", f);
        jnum(f, t->first_minus_last);
        fputs("}}", f);
    }
    fputs("\n]}\n", f);
}

typedef enum { OUT_SUMMARY, OUT_CSV, OUT_JSON } out_kind;

static sf_status emit(const run *r, out_kind k, const char *out, const char *path, sf_err *err) {
    sf_atomic_file af;
    FILE *f = stdout;
    int to_file = out && strcmp(out, "-") != 0;
    struct stat sb;
    if (to_file && stat(out, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        /* a device or FIFO (/dev/stdout, a pipe): write in place, never rename over it */
        f = fopen(out, "w");
        if (!f) return sf_fail(err, SF_E_IO, "%s: %s", out, strerror(errno));
        if (k == OUT_SUMMARY) write_summary(f, r, path);
        else if (k == OUT_CSV) write_csv(f, r);
        else write_json(f, r, path);
        int bad = ferror(f) | (fclose(f) != 0);
        return bad ? sf_fail(err, SF_E_IO, "%s: write failed", out) : SF_OK;
    }
    if (to_file) {
        sf_status s = sf_atomic_open(&af, out, err);
        if (s) return s;
        f = af.fp;
    }
    if (k == OUT_SUMMARY) write_summary(f, r, path);
    else if (k == OUT_CSV) write_csv(f, r);
    else write_json(f, r, path);
    if (!to_file) return fflush(stdout) == 0 ? SF_OK : sf_fail(err, SF_E_IO, "stdout: write failed");
    if (ferror(f)) {
        sf_atomic_abort(&af);
        return sf_fail(err, SF_E_IO, "%s: write failed", out);
    }
    return sf_atomic_commit(&af, err);
}

static sf_status plot(const run *r, const char *dir, sf_err *err) {
    char p[4096];
    sf_status s;
    if ((s = sf_taps_make_dir(dir, err))) return s;
    int nfiles = 0;
    for (size_t i = 0; i < r->n; i++) {
        snprintf(p, sizeof p, "%s/heads_%s.svg", dir, r->src[i].label);
        if ((s = sf_taps_svg_heads(p, &r->src[i], &r->st[i], err))) return s;
        snprintf(p, sizeof p, "%s/heatmap_%s.svg", dir, r->src[i].label);
        if ((s = sf_taps_svg_heatmap(p, &r->src[i], &r->st[i], err))) return s;
        nfiles += 2;
    }
    snprintf(p, sizeof p, "%s/layers.svg", dir);
    if ((s = sf_taps_svg_layers(p, r->src, r->st, r->n, err))) return s;
    nfiles++;
    /* sink ratios: the logits and probs sources (frame-level means have no softmax) */
    sf_taps_src *ls = calloc(r->n, sizeof *ls);
    sf_taps_stats *lt = calloc(r->n, sizeof *lt);
    if (!ls || !lt) {
        free(ls);
        free(lt);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->st[i].W) {
            ls[m] = r->src[i];
            lt[m++] = r->st[i]; /* shallow copies: not freed here */
        }
    s = SF_OK;
    if (m) {
        snprintf(p, sizeof p, "%s/sink_ratio.svg", dir);
        s = sf_taps_svg_sink(p, ls, lt, m, err);
        nfiles++;
    }
    free(ls);
    free(lt);
    if (!s) sf_info("wrote %d SVG files to %s", nfiles, dir);
    return s;
}

/* --forward B:S → *fb, *fs (both -1 when not given) */
static void forward_arg(sf_args *a, int *fb, int *fs) {
    int n = 0;
    const char *fw = sf_args_get(a, opts, "forward");
    *fb = *fs = -1;
    if (fw && !(sscanf(fw, "%d:%d%n", fb, fs, &n) == 2 && !fw[n] && *fb >= 0 && *fs >= 0)) usage_die("--forward: expected B:S");
}

/* compare / heatmap / report (compare.h). Takes over a and pos. */
static int workbench(sf_args *a, const char **pos, int np) {
    sf_err err = {{0}};
    sf_status s;
    const char *cmd = pos[0], *out = sf_args_get(a, opts, "output");
    const int nfiles = np - 1;
    if (!strcmp(cmd, "compare") && nfiles < 2) usage_die("compare: expected two or more files");
    if (!strcmp(cmd, "heatmap") && nfiles != 1) usage_die("heatmap: expected one file");
    if (strcmp(cmd, "compare") != 0 && !out) usage_die(!strcmp(cmd, "report") ? "report: -o OUT.html is required"
                                                                               : "heatmap: -o OUT.svg is required");
    if (sf_args_get(a, opts, "format") || sf_args_get(a, opts, "set") || sf_args_has(a, opts, "heads"))
        usage_die("--format, --set and --heads do not apply to compare/heatmap/report");
    const char **labels = NULL;
    int nlab = sf_args_all(a, opts, "labels", &labels);
    if (nlab > 0 && nlab != nfiles) usage_die("--labels: give one name per file");
    const char **tok = NULL;
    int ntok = sf_args_all(a, opts, "tokens", &tok);
    if (ntok > 0 && strcmp(cmd, "report") != 0) usage_die("--tokens applies to report only");
    if (ntok > 0 && ntok != nfiles) usage_die("--tokens: give one tokens file per run");
    const char **frames = NULL;
    int nfr = sf_args_all(a, opts, "frames", &frames);
    if (nfr > 0 && nfr != ntok) usage_die("--frames: give one per --tokens file (report)");
    for (int i = 0; i < nlab; i++)
        if (!labels[i][0] || strchr(labels[i], '/') || strlen(labels[i]) > 60) usage_die("--labels: names must be 1-60 characters without '/'");
    int fb, fs;
    forward_arg(a, &fb, &fs);
    long fsl = 0;
    const char *fsa = sf_args_get(a, opts, "frame-seq-length");
    if (fsa && (s = sf_arg_long("--frame-seq-length", fsa, 1, 1L << 30, &fsl, &err))) sf_die(prog, s, &err);
    int nl = 0;
    int *layers = int_list(a, "layers", "--layers", &nl);
    sf_taps_cmp c;
    s = sf_taps_cmp_load(&c, pos + 1, nfiles, nlab > 0 ? labels : NULL, fsl, layers, nl, fb, fs, &err);
    c.tokens = ntok > 0 ? tok : NULL;
    c.frames = nfr > 0 ? frames : NULL;
    c.tokenizer = sf_args_get(a, opts, "tokenizer");
    if (!s) {
        if (!strcmp(cmd, "report")) s = sf_taps_cmp_report(&c, out, &err);
        else if (!strcmp(cmd, "heatmap")) s = sf_taps_cmp_heatmap(&c, 0, out, &err);
        else if (out && strcmp(out, "-") != 0) s = sf_taps_cmp_write_dir(&c, out, &err);
        else {
            sf_taps_cmp_csv(stdout, &c);
            if (fflush(stdout) != 0) s = sf_fail(&err, SF_E_IO, "stdout: write failed");
        }
    }
    if (!s && out && strcmp(out, "-") != 0) sf_info("wrote %s", out);
    sf_taps_cmp_free(&c);
    free(layers);
    free(labels);
    free(tok);
    free(frames);
    free(pos);
    sf_args_free(a);
    if (s) sf_die(prog, s, &err);
    return 0;
}

/* tokens / words: FILE's maps as an SVG (-o OUT.svg, atomically) or CSV on stdout, by draw(tf, ctx, svg, csv). */
typedef sf_status (*draw_fn)(const sf_tfile *tf, const void *ctx, FILE *svg, FILE *csv, sf_err *err);
static sf_status one_file(const char *path, const char *out, draw_fn draw, const void *ctx, sf_err *err) {
    sf_tfile *tf = NULL;
    const int svg = out && strcmp(out, "-") != 0;
    sf_atomic_file af;
    sf_status s;
    if (!(s = sf_tfile_open(path, &tf, err)) && (!svg || !(s = sf_atomic_open(&af, out, err)))) {
        s = draw(tf, ctx, svg ? af.fp : NULL, svg ? NULL : stdout, err);
        if (svg && s) sf_atomic_abort(&af);
        else if (svg) s = sf_atomic_commit(&af, err);
    }
    if (!s && !svg && fflush(stdout) != 0) s = sf_fail(err, SF_E_IO, "stdout: write failed");
    if (!s && svg) sf_info("wrote %s", out);
    sf_tfile_destroy(&tf);
    return s;
}
static sf_status draw_tokens(const sf_tfile *tf, const void *o, FILE *svg, FILE *csv, sf_err *err) {
    return sf_taps_tokens(tf, o, svg, csv, err);
}
static sf_status draw_words(const sf_tfile *tf, const void *o, FILE *svg, FILE *csv, sf_err *err) {
    return sf_taps_words(tf, o, svg, csv, err);
}

/* sf-taps tokens FILE [-o OUT.svg [--frames V]] [--layers L...] [--heads H...] [--forward B:S] (tokens.c), and
 * sf-taps words FILE [-o OUT.svg] [--layers L...] [--heads H...] [--forward B:S] [--tokenizer P] [--prompt S]
 * (words.c) */
static int per_token_cmd(sf_args *a, const char **pos, int np) {
    sf_err err = {{0}};
    sf_status s = SF_OK;
    const int words = !strcmp(pos[0], "words");
    if (np != 2) usage_die(words ? "words: expected one file" : "tokens: expected one file");
    if (sf_args_get(a, opts, "format") || sf_args_get(a, opts, "set") || sf_args_get(a, opts, "labels"))
        usage_die(words ? "--format, --set and --labels do not apply to words" : "--format, --set and --labels do not apply to tokens");
    long fsl = 0, kf = 1;
    const char *fsa = sf_args_get(a, opts, "frame-seq-length"), *tfa = sf_args_get(a, opts, "token-frames");
    if (words && fsa) usage_die("--frame-seq-length does not apply to words (its taps are per query frame already)");
    sf_status s0;
    if ((fsa && (s0 = sf_arg_long("--frame-seq-length", fsa, 1, 1L << 30, &fsl, &err))) ||
        (tfa && (s0 = sf_arg_long("--token-frames", tfa, 1, 1L << 20, &kf, &err))))
        sf_die(prog, s0, &err);
    int fb, fs, nl = 0, nh = 0;
    forward_arg(a, &fb, &fs);
    const char *out = sf_args_get(a, opts, "output");
    int *layers = int_list(a, "layers", "--layers", &nl), *heads = int_list(a, "heads", "--heads", &nh);
    const int svg = out && strcmp(out, "-") != 0;
    const char **frames = NULL;
    const int nfr = sf_args_all(a, opts, "frames", &frames);
    if (nfr > 1) usage_die("--frames: tokens takes one image file or folder");
    if (nfr && !svg) usage_die("--frames: draws the maps over the video in the SVG: give -o OUT.svg");
    const sf_taps_sel sel = {layers, nl, heads, nh, fb, fs};
    if (words) {
        const sf_taps_words_opts wo = {sel, sf_args_get(a, opts, "tokenizer"), sf_args_get(a, opts, "prompt"),
                                       sf_args_has(a, opts, "by-word")};
        s = one_file(pos[1], out, draw_words, &wo, &err);
    } else {
        const sf_taps_tok_opts to = {sel, sf_args_get(a, opts, "token-grid"), (int)kf, fsl, sf_args_has(a, opts, "per-head"),
                                     nfr ? frames[0] : NULL, NULL};
        s = one_file(pos[1], out, draw_tokens, &to, &err);
    }
    free(layers);
    free(heads);
    free(frames);
    free(pos);
    sf_args_free(a);
    if (s) sf_die(prog, s, &err);
    return 0;
}

int main(int argc, char **argv) {
    sf_args a;
    sf_err err = {{0}};
    sf_status s = SF_OK;
    if (sf_args_main(argc, argv, prog, synopsis, opts, &a)) return 0;
    const char **pos = NULL;
    int np = sf_args_positional(&a, &pos);
    const int is_tokens = np >= 1 && !strcmp(pos[0], "tokens"), is_words = np >= 1 && !strcmp(pos[0], "words");
    if (np >= 1 && !is_tokens &&
        (sf_args_get(&a, opts, "token-grid") || sf_args_get(&a, opts, "token-frames") || sf_args_has(&a, opts, "per-head")))
        usage_die("--token-grid, --token-frames and --per-head apply to tokens only");
    if (np >= 1 && !is_words && (sf_args_get(&a, opts, "prompt") || sf_args_has(&a, opts, "by-word")))
        usage_die("--prompt and --by-word apply to words only");
    if (np >= 1 && !is_words && strcmp(pos[0], "report") != 0 && sf_args_get(&a, opts, "tokenizer"))
        usage_die("--tokenizer applies to words and report only");
    if (np >= 1 && !is_tokens && strcmp(pos[0], "report") != 0 && sf_args_has(&a, opts, "frames"))
        usage_die("--frames applies to tokens and report only");
    if (np >= 2 && (!strcmp(pos[0], "compare") || !strcmp(pos[0], "report") || !strcmp(pos[0], "heatmap")))
        return workbench(&a, pos, np);
    if (is_tokens || is_words) return per_token_cmd(&a, pos, np);
    if (np != 2) usage_die(np < 2 ? "expected a command and a FILE" : "too many arguments");
    const char *cmd = pos[0], *path = pos[1];
    free(pos);
    out_kind ok = OUT_SUMMARY;
    const char *out = sf_args_get(&a, opts, "output"), *fmt = sf_args_get(&a, opts, "format");
    if (!strcmp(cmd, "table")) {
        if (!fmt || !strcmp(fmt, "csv")) ok = OUT_CSV;
        else if (!strcmp(fmt, "json")) ok = OUT_JSON;
        else usage_die("--format: expected csv or json");
    } else if (!strcmp(cmd, "plot")) {
        if (!out) usage_die("plot: -o DIR is required");
    } else if (strcmp(cmd, "summary") != 0) {
        char m[160];
        snprintf(m, sizeof m, "unknown command '%.60s'", cmd);
        usage_die(m);
    }
    if (fmt && strcmp(cmd, "table") != 0) usage_die("--format applies to table only");
    unsigned sets = 0;
    const char *set = sf_args_get(&a, opts, "set");
    if (set) {
        if (!strcmp(set, "fig4")) sets = SF_TAPS_SET_FIG4;
        else if (!strcmp(set, "taps")) sets = SF_TAPS_SET_TAPS;
        else if (!strcmp(set, "frames")) sets = SF_TAPS_SET_FRAMES;
        else if (!strcmp(set, "stream")) sets = SF_TAPS_SET_STREAM;
        else if (!strcmp(set, "probs")) sets = SF_TAPS_SET_PROBS;
        else if (!strcmp(set, "all"))
            sets = SF_TAPS_SET_FIG4 | SF_TAPS_SET_TAPS | SF_TAPS_SET_FRAMES | SF_TAPS_SET_STREAM | SF_TAPS_SET_PROBS;
        else usage_die("--set: expected fig4, taps, frames, stream, probs or all");
    }
    long fsl = 0;
    const char *fs = sf_args_get(&a, opts, "frame-seq-length");
    if (fs && (s = sf_arg_long("--frame-seq-length", fs, 1, 1L << 30, &fsl, &err))) sf_die(prog, s, &err);
    int nl = 0, nh = 0;
    int *layers = int_list(&a, "layers", "--layers", &nl);
    int *heads = int_list(&a, "heads", "--heads", &nh);
    char *outp = out ? strdup(out) : NULL;
    out = outp;
    sf_args_free(&a);

    run r = {0};
    if ((s = sf_tfile_open(path, &r.tf, &err))) die_run(&r, s, &err);
    if ((s = sf_taps_find_sources(r.tf, sets, fsl, layers, nl, &r.src, &r.n, &err))) die_run(&r, s, &err);
    r.st = calloc(r.n, sizeof *r.st);
    if (!r.st) die_run(&r, sf_fail(&err, SF_E_NOMEM, "out of memory"), &err);
    for (size_t i = 0; i < r.n; i++) {
        sf_debug("%s: computing", r.src[i].name);
        if ((s = sf_taps_stats_source(&r.src[i], heads, nh, &r.st[i], &err))) die_run(&r, s, &err);
    }
    if (!strcmp(cmd, "plot")) s = plot(&r, out, &err);
    else s = emit(&r, ok, out, path, &err);
    free(layers);
    free(heads);
    free(outp);
    if (s) die_run(&r, s, &err);
    run_free(&r);
    return 0;
}
