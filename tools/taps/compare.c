/* compare.c — sf-taps compare / heatmap / report (see compare.h). */
#define _POSIX_C_SOURCE 200809L
#include "compare.h"
#include "taps_tokens.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void sf_taps_cmp_free(sf_taps_cmp *c) {
    for (int i = 0; c->r && i < c->nr; i++) {
        sf_tfile_destroy(&c->r[i].tf);
        free(c->r[i].block);
        free(c->r[i].step);
        free(c->r[i].mass);
        free(c->r[i].ratio);
        free(c->r[i].kf0);
        free(c->r[i].ablated);
        free(c->r[i].nslot);
        free(c->r[i].skf);
        free(c->r[i].sm);
        free(c->r[i].nkept), free(c->r[i].kept_f), free(c->r[i].kept_n);
    }
    free(c->r);
    free(c->layers);
    free(c->col_lo), free(c->col_hi), free(c->f2c);
    memset(c, 0, sizeof *c);
}

/* key frames of a source from its shape */
static int64_t src_kf(const sf_taps_src *s) {
    const sf_tensor *t = s->t;
    if (s->kind == SF_TAPS_SRC_LOGITS) return s->fsl > 0 ? t->shape[t->ndim - 1] / s->fsl : 0;
    return t->shape[t->ndim - 1];
}

/* The source used for layer l: the forward asked for, else the first with the most key frames;
 * probs before logits. NULL when none. */
static const sf_taps_src *pick(const sf_taps_src *v, size_t n, int l, int fb, int fs) {
    const sf_taps_src *best = NULL;
    for (int want = SF_TAPS_SRC_PROBS; want >= 0 && !best; want = want == SF_TAPS_SRC_PROBS ? SF_TAPS_SRC_LOGITS : -1)
        for (size_t i = 0; i < n; i++) {
            const sf_taps_src *s = &v[i];
            if (s->layer != l || (int)s->kind != want) continue;
            if (fb >= 0 && (s->block != fb || s->step != fs)) continue;
            if (!best || src_kf(s) > src_kf(best)) best = s;
        }
    return best;
}

static void base_label(const char *path, char *out, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, n, "%s", b);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

/* Layer li's kept tokens in src's forward, where the file records them (the arrays made for a file that has any). */
static sf_status load_kept(sf_taps_cmp *c, sf_taps_run *r, int li, const sf_taps_src *src, sf_err *err) {
    enum { CAP = SF_TAPS_GRID_FRAMES };
    if (!r->nkept) {
        const char *fw = sf_tfile_meta(r->tf, "forwards");
        if (!fw || !strstr(fw, "kept_frames")) return SF_OK;
        r->nkept = calloc((size_t)c->nl, sizeof(int64_t));
        r->kept_f = calloc((size_t)c->nl * CAP, sizeof(int64_t));
        r->kept_n = calloc((size_t)c->nl * CAP, sizeof(double));
        if (!r->nkept || !r->kept_f || !r->kept_n) return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    int64_t *kf = r->kept_f + (size_t)li * CAP;
    r->nkept[li] = sf_taps_forward_kept(r->tf, src->layer, src->block, src->step, kf, r->kept_n + (size_t)li * CAP, CAP);
    for (int64_t k = 0; k < r->nkept[li]; k++)
        if (kf[k] + 1 > c->nf && kf[k] < SF_TAPS_GRID_FRAMES) c->nf = kf[k] + 1;
    return SF_OK;
}

/* Whether some layer of run r kept tokens in the forward used (a figure to draw). */
static int has_kept(const sf_taps_run *r, int nl) {
    for (int li = 0; r->nkept && li < nl; li++)
        if (r->nkept[li] > 0) return 1;
    return 0;
}

static sf_status load_run(sf_taps_cmp *c, int i, const char *path, int64_t fsl, int fb, int fs, sf_err *err) {
    sf_taps_run *r = &c->r[i];
    sf_taps_src *v = NULL;
    size_t n = 0;
    sf_status s = sf_tfile_open(path, &r->tf, err);
    if (!s) s = sf_taps_find_sources(r->tf, SF_TAPS_SET_PROBS | SF_TAPS_SET_TAPS | SF_TAPS_SET_FIG4, fsl, NULL, 0, &v, &n, err);
    if (s == SF_E_NOTFOUND) { /* frame-level means have no softmax: say what these commands need */
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        return sf_fail(err, s, "%s; compare, heatmap and report need softmax masses: probs taps (sf-denoise --tap-mode probs) "
                               "or logits (--tap-mode logits)", m);
    }
    if (s) return s;
    if (i == 0 && !c->layers) { /* the first file's layers */
        c->layers = malloc(sizeof(int) * (n ? n : 1));
        for (size_t k = 0; c->layers && k < n; k++) { /* distinct, ascending (insertion) */
            int l = v[k].layer, at = c->nl, dup = 0;
            for (int j = 0; j < c->nl; j++) dup |= c->layers[j] == l;
            if (dup) continue;
            while (at > 0 && c->layers[at - 1] > l) c->layers[at] = c->layers[at - 1], at--;
            c->layers[at] = l;
            c->nl++;
        }
    }
    r->block = calloc((size_t)c->nl + 1, sizeof(int));
    r->step = calloc((size_t)c->nl + 1, sizeof(int));
    r->kf0 = calloc((size_t)c->nl + 1, sizeof(int64_t));
    r->ablated = calloc((size_t)c->nl + 1, 1);
    r->kmax = 1;
    for (int li = 0; li < c->nl; li++) { /* the room for every layer's key slots */
        const sf_taps_src *src = pick(v, n, c->layers[li], fb, fs);
        if (src && src_kf(src) > r->kmax) r->kmax = src_kf(src);
    }
    r->nslot = calloc((size_t)c->nl + 1, sizeof(int64_t));
    r->skf = calloc((size_t)(c->nl + 1) * (size_t)r->kmax, sizeof(int64_t));
    r->sm = calloc((size_t)(c->nl + 1) * (size_t)r->kmax, sizeof(double));
    if (!c->layers || !r->block || !r->step || !r->kf0 || !r->ablated || !r->nslot || !r->skf || !r->sm) {
        free(v);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    for (int li = 0; li < c->nl && !s; li++) {
        const sf_taps_src *src = pick(v, n, c->layers[li], fb, fs);
        if (!src) {
            s = sf_fail(err, SF_E_NOTFOUND, "%s: no probs/logits tap of layer %d%s", path, c->layers[li],
                        fb >= 0 ? " at the --forward asked for" : "");
            break;
        }
        sf_taps_stats st;
        if ((s = sf_taps_stats_source(src, NULL, 0, &st, err))) {
            sf_taps_stats_free(&st);
            break;
        }
        if (!c->H) {
            c->H = st.nh;
            c->fsl = src->fsl;
            r->mass = calloc((size_t)c->nl * (size_t)c->H, sizeof(double));
        } else if (st.nh != c->H) {
            s = sf_fail(err, SF_E_SHAPE, "%s: layer %d has %d heads, %s has %d", path, src->layer, st.nh, c->r[0].path, c->H);
        }
        if (!r->mass) r->mass = calloc((size_t)c->nl * (size_t)c->H, sizeof(double));
        if (!r->ratio) r->ratio = calloc((size_t)c->nl * (size_t)c->H, sizeof(double));
        if (!s && (!r->mass || !r->ratio)) s = sf_fail(err, SF_E_NOMEM, "out of memory");
        for (int h = 0; !s && h < c->H; h++) {
            double w0 = st.W[(size_t)h * (size_t)st.nkf];
            r->mass[li * c->H + h] = src->kind == SF_TAPS_SRC_PROBS ? st.F[(size_t)h * (size_t)st.nkf] : w0 * (double)src->fsl;
            r->ratio[li * c->H + h] = st.sink[h];
        }
        r->block[li] = src->block;
        r->step[li] = src->step;
        /* each key slot's mass (head mean) and the frame it holds; the first slot's against the window's first frame
           (layer −1: no layer_key_frames entry) */
        const int64_t K = st.nkf < r->kmax ? st.nkf : r->kmax;
        int64_t *kf = r->skf + (size_t)li * (size_t)r->kmax, w0;
        double *m = r->sm + (size_t)li * (size_t)r->kmax;
        sf_taps_forward_facts(r->tf, src->layer, src->block, src->step, NULL, kf, K);
        sf_taps_forward_facts(r->tf, -1, src->block, src->step, NULL, &w0, 1);
        r->kf0[li] = K > 0 ? kf[0] : -1;
        r->ablated[li] = r->kf0[li] >= 0 && w0 >= 0 && r->kf0[li] != w0;
        for (int64_t k = 0; k < K; k++) {
            double a = 0;
            for (int h = 0; h < st.nh; h++)
                a += src->kind == SF_TAPS_SRC_PROBS ? st.F[(size_t)h * (size_t)st.nkf + (size_t)k]
                                                    : st.W[(size_t)h * (size_t)st.nkf + (size_t)k] * (double)src->fsl;
            m[k] = a / (st.nh > 0 ? st.nh : 1);
            if (kf[k] == -1) kf[k] = k; /* not recorded: slot k, frame k (global attention's order); a compressed cache's
                                           kept tokens (SF_TAPS_KF_KEPT) hold no one frame: no column of the grid */
            if (kf[k] + 1 > c->nf && kf[k] < SF_TAPS_GRID_FRAMES) c->nf = kf[k] + 1;
        }
        r->nslot[li] = K;
        sf_taps_stats_free(&st);
        if (!s) s = load_kept(c, r, li, src, err);
    }
    free(v);
    return s;
}

/* The mass grids' columns: a frame some run's layer attended is its own column; a run of ≥ 2 frames none
 * attended is one (grey) column, so a long rolling-cache run's grid is its sink and window, not its past. */
static sf_status grid_columns(sf_taps_cmp *c, sf_err *err) {
    const int64_t nf = c->nf > 0 ? c->nf : 1;
    unsigned char *seen = calloc((size_t)nf, 1);
    c->col_lo = calloc((size_t)nf, sizeof *c->col_lo), c->col_hi = calloc((size_t)nf, sizeof *c->col_hi);
    c->f2c = calloc((size_t)nf, sizeof *c->f2c);
    if (!seen || !c->col_lo || !c->col_hi || !c->f2c) {
        free(seen);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < c->nr; i++)
        for (int li = 0; li < c->nl; li++)
            for (int64_t k = 0; k < c->r[i].nslot[li]; k++) {
                const int64_t f = c->r[i].skf[(size_t)li * (size_t)c->r[i].kmax + (size_t)k];
                if (f >= 0 && f < nf) seen[f] = 1;
            }
    for (int i = 0; i < c->nr; i++) /* and the frames kept tokens came from */
        for (int li = 0; c->r[i].nkept && li < c->nl; li++)
            for (int64_t k = 0; k < c->r[i].nkept[li]; k++) {
                const int64_t f = c->r[i].kept_f[(size_t)li * SF_TAPS_GRID_FRAMES + (size_t)k];
                if (f < nf) seen[f] = 1;
            }
    c->ncol = 0;
    for (int64_t f = 0; f < nf;) {
        int64_t e = f + 1;
        if (!seen[f])
            while (e < nf && !seen[e]) e++;
        if (seen[f] || e - f < 2) e = f + 1; /* one frame, attended or not, keeps its own column */
        c->col_lo[c->ncol] = f, c->col_hi[c->ncol] = e - 1;
        for (int64_t g = f; g < e; g++) c->f2c[g] = c->ncol;
        c->ncol++, f = e;
    }
    free(seen);
    return SF_OK;
}

sf_status sf_taps_cmp_load(sf_taps_cmp *c, const char *const *paths, int n, const char *const *labels,
                           int64_t fsl, const int *layers, int nl, int fwd_b, int fwd_s, sf_err *err) {
    memset(c, 0, sizeof *c);
    c->fwd_b = fwd_b, c->fwd_s = fwd_s;
    if (n < 1) return sf_fail(err, SF_E_ARG, "no tap files");
    c->r = calloc((size_t)n, sizeof *c->r);
    if (!c->r) return sf_fail(err, SF_E_NOMEM, "out of memory");
    c->nr = n;
    if (layers && nl > 0) {
        c->layers = malloc(sizeof(int) * (size_t)nl);
        if (!c->layers) return sf_fail(err, SF_E_NOMEM, "out of memory");
        memcpy(c->layers, layers, sizeof(int) * (size_t)nl);
        c->nl = nl;
    }
    for (int i = 0; i < n; i++) {
        c->r[i].path = paths[i];
        if (labels) snprintf(c->r[i].label, sizeof c->r[i].label, "%s", labels[i]);
        else base_label(paths[i], c->r[i].label, sizeof c->r[i].label);
        sf_status s = load_run(c, i, paths[i], fsl, fwd_b, fwd_s, err);
        if (s) return s;
    }
    return grid_columns(c, err);
}

static void num(FILE *f, double v) {
    if (isnan(v)) fputs("nan", f);
    else if (isinf(v)) fputs(v > 0 ? "inf" : "-inf", f);
    else fprintf(f, "%.9g", v);
}

void sf_taps_cmp_csv(FILE *f, const sf_taps_cmp *c) {
    fputs("layer,head,run,block,step,first_mass,sink_ratio,d_first_mass,d_sink_ratio,first_key_frame\n", f);
    for (int li = 0; li < c->nl; li++)
        for (int h = 0; h < c->H; h++)
            for (int i = 0; i < c->nr; i++) {
                const sf_taps_run *r = &c->r[i], *r0 = &c->r[0];
                int k = li * c->H + h;
                fprintf(f, "%d,%d,%s,%d,%d,", c->layers[li], h, r->label, r->block[li], r->step[li]);
                num(f, r->mass[k]);
                fputc(',', f);
                num(f, r->ratio[k]);
                fputc(',', f);
                num(f, r->mass[k] - r0->mass[k]);
                fputc(',', f);
                num(f, r->ratio[k] - r0->ratio[k]);
                fprintf(f, ",%lld\n", (long long)r->kf0[li]);
            }
}

/* ---- figures ---------------------------------------------------------------------------- */

typedef enum { FIG_HEAT, FIG_DIFF, FIG_MASS, FIG_RATIO, FIG_FRAMES, FIG_FRAMES_DIFF, FIG_KEPT } fig_kind;

/* Run i's layers × grid columns v[nl, ncol]: the share of the layer's kept tokens from each frame (NaN: none). */
static void kept_grid(const sf_taps_cmp *c, int i, double *v) {
    const sf_taps_run *r = &c->r[i];
    for (size_t j = 0; j < (size_t)c->nl * (size_t)c->ncol; j++) v[j] = NAN;
    for (int li = 0; r->nkept && li < c->nl; li++) {
        const int64_t *kf = r->kept_f + (size_t)li * SF_TAPS_GRID_FRAMES;
        const double *kn = r->kept_n + (size_t)li * SF_TAPS_GRID_FRAMES;
        double all = 0;
        for (int64_t k = 0; k < r->nkept[li]; k++) all += kn[k];
        for (int64_t k = 0; k < r->nkept[li]; k++)
            if (kf[k] < c->nf) {
                double *at = &v[(size_t)li * (size_t)c->ncol + (size_t)c->f2c[kf[k]]];
                *at = (isnan(*at) ? 0 : *at) + kn[k] / all;
            }
    }
}

/* Run i's layers × grid columns v[nl, ncol]: the mass on each absolute frame, NaN where no slot held it. */
static void frame_grid(const sf_taps_cmp *c, int i, double *v) {
    const sf_taps_run *r = &c->r[i];
    for (size_t j = 0; j < (size_t)c->nl * (size_t)c->ncol; j++) v[j] = NAN;
    for (int li = 0; li < c->nl; li++)
        for (int64_t k = 0; k < r->nslot[li]; k++) {
            const size_t at = (size_t)li * (size_t)r->kmax + (size_t)k;
            const int64_t f = r->skf[at];
            if (f >= 0 && f < c->nf) v[(size_t)li * (size_t)c->ncol + (size_t)c->f2c[f]] = r->sm[at];
        }
}

/* Head means per layer of run i's mass or ratio (NaN-skipping). */
static void head_mean(const sf_taps_cmp *c, const double *v, double *out) {
    for (int li = 0; li < c->nl; li++) {
        double a = 0;
        int m = 0;
        for (int h = 0; h < c->H; h++)
            if (isfinite(v[li * c->H + h])) a += v[li * c->H + h], m++;
        out[li] = m ? a / m : NAN;
    }
}

static sf_status figure(FILE *f, const sf_taps_cmp *c, fig_kind k, int run, sf_err *err) {
    char title[256];
    const int grid = k == FIG_FRAMES || k == FIG_FRAMES_DIFF || k == FIG_KEPT;
    size_t n = (size_t)c->nl * (size_t)(grid ? c->ncol : k == FIG_MASS || k == FIG_RATIO ? c->nr : c->H);
    double *v = calloc(grid ? 2 * n : n ? n : 1, sizeof(double));
    const char **names = calloc((size_t)c->nr, sizeof *names);
    if (!v || !names) {
        free(v);
        free(names);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    if (k == FIG_KEPT) {
        kept_grid(c, run, v);
        snprintf(title, sizeof title, "Where the kept tokens came from (share of each layer's, heads together): %s",
                 c->r[run].label);
        sf_taps_svg_grid(f, title, c->nl, c->layers, "L", "Layer", c->ncol, c->col_lo, c->col_hi, "Frame (absolute)",
                         "frame", v, "Share");
    } else if (grid) {
        frame_grid(c, run, v);
        if (k == FIG_FRAMES_DIFF) {
            frame_grid(c, 0, v + n);
            for (size_t i = 0; i < n; i++) v[i] -= v[n + i]; /* NaN where either run did not attend the frame */
            snprintf(title, sizeof title, "Mass on each key frame: %s minus %s", c->r[run].label, c->r[0].label);
        } else {
            snprintf(title, sizeof title, "Attention mass on each key frame (mean over heads and queries): %s", c->r[run].label);
        }
        sf_taps_svg_grid(f, title, c->nl, c->layers, "L", "Layer", c->ncol, c->col_lo, c->col_hi, "Key frame (absolute)",
                         "frame", v, k == FIG_FRAMES ? "Mass" : "Difference");
    } else if (k == FIG_HEAT || k == FIG_DIFF) {
        for (size_t i = 0; i < n; i++) v[i] = c->r[run].ratio[i] - (k == FIG_DIFF ? c->r[0].ratio[i] : 0);
        if (k == FIG_HEAT) snprintf(title, sizeof title, "Sink ratio w(first key frame) / mean w(middle frames): %s", c->r[run].label);
        else snprintf(title, sizeof title, "Sink ratio difference: %s minus %s", c->r[run].label, c->r[0].label);
        sf_taps_svg_grid(f, title, c->nl, c->layers, "L", "Layer", c->H, NULL, NULL, "Head", "head", v,
                         k == FIG_HEAT ? "Sink ratio" : "Difference");
    } else {
        for (int i = 0; i < c->nr; i++) {
            head_mean(c, k == FIG_MASS ? c->r[i].mass : c->r[i].ratio, v + (size_t)i * (size_t)c->nl);
            names[i] = c->r[i].label;
        }
        sf_taps_svg_lines(f, k == FIG_MASS ? "First-frame attention mass per layer (mean over heads)"
                                           : "Sink ratio per layer (mean over heads)",
                          "Layer", k == FIG_MASS ? "Mass on the first key frame" : "Sink ratio", c->nr, names, c->nl, c->layers, v);
    }
    free(v);
    free(names);
    return ferror(f) ? sf_fail(err, SF_E_IO, "write failed") : SF_OK;
}

static sf_status figure_file(const sf_taps_cmp *c, fig_kind k, int run, const char *path, sf_err *err) {
    sf_atomic_file af;
    sf_status s = sf_atomic_open(&af, path, err);
    if (s) return s;
    if ((s = figure(af.fp, c, k, run, err))) {
        sf_atomic_abort(&af);
        return sf_fail(err, s, "%s: %s", path, err->msg);
    }
    return sf_atomic_commit(&af, err);
}

sf_status sf_taps_cmp_heatmap(const sf_taps_cmp *c, int run, const char *path, sf_err *err) {
    return figure_file(c, FIG_HEAT, run, path, err);
}

sf_status sf_taps_cmp_write_dir(const sf_taps_cmp *c, const char *dir, sf_err *err) {
    sf_status s = sf_taps_make_dir(dir, err);
    if (s) return s;
    char p[4096];
    sf_atomic_file af;
    snprintf(p, sizeof p, "%s/compare.csv", dir);
    s = sf_atomic_open(&af, p, err);
    if (s) return s;
    sf_taps_cmp_csv(af.fp, c);
    if ((s = sf_atomic_commit(&af, err))) return s;
    for (int i = 0; i < c->nr && !s; i++) {
        snprintf(p, sizeof p, "%s/sink_ratio_%s.svg", dir, c->r[i].label);
        s = figure_file(c, FIG_HEAT, i, p, err);
        if (!s && i > 0) {
            snprintf(p, sizeof p, "%s/sink_ratio_diff_%s.svg", dir, c->r[i].label);
            s = figure_file(c, FIG_DIFF, i, p, err);
        }
        snprintf(p, sizeof p, "%s/frame_mass_%s.svg", dir, c->r[i].label);
        if (!s) s = figure_file(c, FIG_FRAMES, i, p, err);
        snprintf(p, sizeof p, "%s/frame_mass_diff_%s.svg", dir, c->r[i].label);
        if (!s && i > 0) s = figure_file(c, FIG_FRAMES_DIFF, i, p, err);
        snprintf(p, sizeof p, "%s/kept_frames_%s.svg", dir, c->r[i].label);
        if (!s && has_kept(&c->r[i], c->nl)) s = figure_file(c, FIG_KEPT, i, p, err);
    }
    snprintf(p, sizeof p, "%s/first_mass.svg", dir);
    if (!s) s = figure_file(c, FIG_MASS, 0, p, err);
    snprintf(p, sizeof p, "%s/sink_ratio_layers.svg", dir);
    if (!s) s = figure_file(c, FIG_RATIO, 0, p, err);
    return s;
}

/* ---- the HTML report ------------------------------------------------------------------------ */

static void html(FILE *f, const char *s) { sf_taps_xml_text(f, s ? s : ""); }

static void hnum(FILE *f, double v, const char *fmt) {
    if (!isfinite(v)) fputs("nan", f);
    else fprintf(f, fmt, v);
}

/* A figure inline: its SVG without the XML prolog. */
static sf_status inline_figure(FILE *out, const sf_taps_cmp *c, fig_kind k, int run, sf_err *err) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_status s = figure(m, c, k, run, err);
    fclose(m);
    if (!s) {
        const char *p = buf;
        if (!strncmp(p, "<?xml", 5) && (p = strchr(p, '\n'))) p++;
        fputs("<figure>", out);
        fputs(p ? p : buf, out);
        fputs("</figure>\n", out);
    }
    free(buf);
    return s;
}

static const char *const FACTS[] = {"weights", "prompt", "seed", "tap_mode", "tap_cross", "num_frames",
                                    "num_frame_per_block", "frame_seq_length", "heads", "layers", "local_attn_size",
                                    "sink_size", "model_dir"};

/* The runs whose files hold cross-attention taps (--tap-cross): which of the prompt's tokens each query frame looks at
 * (sf_taps_words), a figure a run. */
static void words_section(FILE *f, const sf_taps_cmp *c, sf_err *err, sf_status *s) {
    int any = 0;
    for (int i = 0; i < c->nr && !*s; i++) {
        const sf_tfile *tf = c->r[i].tf;
        int has = 0;
        for (size_t k = 0; k < tf->n && !has; k++) has = !strncmp(tf->entries[k].name, "cross.L", 7);
        if (!has) continue;
        if (!any++)
            fputs("\n<h2>Which words each frame looks at</h2>\n<p>From the cross-attention taps (sf-denoise "
                  "<code>--tap-cross</code>): each query frame's attention mass over the prompt's words (its SentencePiece "
                  "pieces joined, their mass summed; <code>sf-taps words</code> without <code>--by-word</code> shows "
                  "the pieces), mean over the heads and the frame's tokens.</p>\n", f);
        const sf_taps_words_opts wo = {{c->layers, c->nl, NULL, 0, c->fwd_b, c->fwd_s}, c->tokenizer, NULL, 1};
        fputs("<h3>", f), html(f, c->r[i].label), fputs("</h3>\n<figure>", f);
        *s = sf_taps_words(tf, &wo, f, NULL, err);
        fputs("</figure>\n", f);
    }
}

static void write_report(FILE *f, const sf_taps_cmp *c, sf_err *err, sf_status *s) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>Attention-sink report</title>\n"
          "<style>body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}"
          "table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #bbb;padding:3px 8px;"
          "font-size:13px;text-align:right;vertical-align:top}th{background:#eee}td.t{text-align:left;"
          "max-width:420px;word-break:break-word}figure{margin:10px 0;display:inline-block}"
          "figure.thumb{margin:0 4px 4px 0;text-align:center;font-size:11px}figure.thumb img{display:block}"
          "h2{border-bottom:1px solid #ccc;padding-bottom:3px}code{white-space:nowrap}</style></head><body>\n"
          "<h1>Attention-sink report</h1>\n<p>",
          f);
    fprintf(f, "%d run%s, %d layer%s × %d heads, %lld tokens per latent frame. First-frame mass: the softmax "
               "mass of the first key frame (frame 0, but in a layer ablated with <code>--sink-ablate</code>) averaged over the "
               "queries; sink ratio: w(first) / mean w(key frames 1..K−2). "
               "Made by sfpipe <code>sf-taps report</code>.</p>\n",
            c->nr, c->nr == 1 ? "" : "s", c->nl, c->nl == 1 ? "" : "s", c->H, (long long)c->fsl);
    fputs("<h2>Runs</h2>\n<table><tr><th>fact</th>", f);
    for (int i = 0; i < c->nr; i++) fputs("<th>", f), html(f, c->r[i].label), fputs("</th>", f);
    fputs("</tr>\n<tr><th>file</th>", f);
    for (int i = 0; i < c->nr; i++) fputs("<td class=\"t\">", f), html(f, c->r[i].path), fputs("</td>", f);
    fputs("</tr>\n", f);
    for (size_t k = 0; k < sizeof FACTS / sizeof *FACTS; k++) {
        fputs("<tr><th>", f), html(f, FACTS[k]), fputs("</th>", f);
        for (int i = 0; i < c->nr; i++) {
            const char *v = sf_tfile_meta(c->r[i].tf, FACTS[k]);
            fputs("<td class=\"t\">", f), html(f, v ? v : "—"), fputs("</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("<tr><th>forward used (layer ", f);
    fprintf(f, "%d)</th>", c->layers[c->nl - 1]);
    for (int i = 0; i < c->nr; i++) {
        char kf[1024];
        sf_taps_forward_keys_text(c->r[i].tf, c->layers[c->nl - 1], c->r[i].block[c->nl - 1], c->r[i].step[c->nl - 1], kf,
                                  sizeof kf);
        fprintf(f, "<td class=\"t\">block %d, step %d; key frames ", c->r[i].block[c->nl - 1], c->r[i].step[c->nl - 1]);
        html(f, kf);
        fputs("</td>", f);
    }
    fputs("</tr></table>\n<h2>Per layer (mean over heads)</h2>\n", f);
    if (!*s) *s = inline_figure(f, c, FIG_MASS, 0, err);
    if (!*s) *s = inline_figure(f, c, FIG_RATIO, 0, err);
    fputs("\n<table><tr><th>layer</th>", f);
    for (int i = 0; i < c->nr; i++) fputs("<th>first mass ", f), html(f, c->r[i].label), fputs("</th>", f);
    for (int i = 0; i < c->nr; i++) fputs("<th>sink ratio ", f), html(f, c->r[i].label), fputs("</th>", f);
    for (int i = 1; i < c->nr; i++) fputs("<th>Δ sink ratio ", f), html(f, c->r[i].label), fputs("</th>", f);
    fputs("</tr>\n", f);
    double *hm = calloc((size_t)c->nr * 2 * (size_t)c->nl, sizeof(double));
    for (int i = 0; hm && i < c->nr; i++) {
        head_mean(c, c->r[i].mass, hm + (size_t)(2 * i) * (size_t)c->nl);
        head_mean(c, c->r[i].ratio, hm + (size_t)(2 * i + 1) * (size_t)c->nl);
    }
    int ablated = 0;
    for (int li = 0; hm && li < c->nl; li++) {
        fprintf(f, "<tr><td>%d</td>", c->layers[li]);
        for (int i = 0; i < c->nr; i++) {
            fputs("<td>", f), hnum(f, hm[(size_t)(2 * i) * c->nl + li], "%.4f");
            if (c->r[i].ablated[li]) fprintf(f, " (frame %lld, ablated)", (long long)c->r[i].kf0[li]);
            fputs("</td>", f);
            ablated |= c->r[i].ablated[li];
        }
        for (int i = 0; i < c->nr; i++) fputs("<td>", f), hnum(f, hm[(size_t)(2 * i + 1) * c->nl + li], "%.4f"), fputs("</td>", f);
        for (int i = 1; i < c->nr; i++)
            fputs("<td>", f), hnum(f, hm[(size_t)(2 * i + 1) * c->nl + li] - hm[(size_t)1 * c->nl + li], "%+.4f"), fputs("</td>", f);
        fputs("</tr>\n", f);
    }
    free(hm);
    fputs("</table>\n", f);
    if (ablated)
        fputs("<p>“ablated”: in that run the layer attended no key frame before the one named (sf-denoise "
              "<code>--sink-ablate</code>); its first mass and sink ratio are over the first frame it attended.</p>\n", f);
    fputs("<h2>Mass by key frame</h2>\n<p>Per layer, the softmax mass on each key frame (absolute frame number), "
          "mean over the heads and the forward's query frames; grey: a frame the layer did not attend (not yet in its "
          "window, rolled out of a rolling cache, or skipped by <code>--sink-ablate</code>); two or more consecutive "
          "frames no layer of any run attended share one hatched column, labelled with their range (a long run's "
          "past behind its rolling window). A row sums to 1.</p>\n", f);
    int kept = 0; /* a run with --kv-compress or --pc-budget: its kept tokens' slots are no column */
    for (int i = 0; i < c->nr; i++)
        for (size_t j = 0; j < (size_t)(c->nl + 1) * (size_t)c->r[i].kmax && !kept; j++) kept = c->r[i].skf[j] == SF_TAPS_KF_KEPT;
    if (kept)
        fputs("<p>Here a row sums to less where the run kept tokens of mixed frames (sf-denoise <code>--kv-compress</code> "
              "or <code>--pc-budget</code>: the tap file's key frame −1): their mass is on no frame's column.</p>\n", f);
    for (int i = 0; i < c->nr && !*s; i++) *s = inline_figure(f, c, FIG_FRAMES, i, err);
    for (int i = 1; i < c->nr && !*s; i++) *s = inline_figure(f, c, FIG_FRAMES_DIFF, i, err);
    if (kept) {
        fputs("<h2>Where the kept tokens came from</h2>\n<p>Per layer, the share of its kept tokens (the slots above with "
              "no frame) that came from each frame, heads together: <code>--pc-budget</code> keeps one set of tokens for "
              "every head, <code>--kv-compress</code> one per head (the file's <code>kept_frames</code>).</p>\n", f);
        for (int i = 0; i < c->nr && !*s; i++)
            if (has_kept(&c->r[i], c->nl)) *s = inline_figure(f, c, FIG_KEPT, i, err);
    }
    fputs("<h2>Layers × heads</h2>\n", f);
    for (int i = 0; i < c->nr && !*s; i++) *s = inline_figure(f, c, FIG_HEAT, i, err);
    for (int i = 1; i < c->nr && !*s; i++) *s = inline_figure(f, c, FIG_DIFF, i, err);
    if (c->tokens && !*s) {
        fputs("\n<h2>Where in the sink frames the mass lands</h2>\n<p>From each run's tokens file (sf-denoise "
              "<code>--tap-mode tokens</code>): the softmax mass of every token of the first key frames, mean over the "
              "heads and the forward's query frames, on the frame's latent token grid.</p>\n", f);
        sf_tfile *first = NULL;
        for (int i = 0; i < c->nr && !*s; i++) {
            char id[24];
            snprintf(id, sizeof id, "run%d", i);
            const sf_taps_tok_opts to = {{c->layers, c->nl, NULL, 0, c->fwd_b, c->fwd_s}, NULL, 1, c->fsl, 0,
                                         c->frames ? c->frames[i] : NULL, id};
            sf_tfile *tf = NULL;
            fputs("<h3>", f), html(f, c->r[i].label), fputs(" — ", f), html(f, c->tokens[i]), fputs("</h3>\n<figure>", f);
            if (!(*s = sf_tfile_open(c->tokens[i], &tf, err)) &&
                (*s = sf_taps_tokens(tf, &to, f, NULL, err))) {
                char m[sizeof err->msg];
                snprintf(m, sizeof m, "%s", err->msg);
                if (strncmp(m, c->tokens[i], strlen(c->tokens[i])) != 0) sf_fail(err, *s, "%s: %s", c->tokens[i], m);
            }
            fputs("</figure>\n", f);
            if (!*s && c->frames && c->frames[i]) { /* the run's video, a thumbnail per latent frame */
                fputs("<p>The video (latent frame under each picture; key slot k holds the frame named over its map):</p>\n", f);
                *s = sf_taps_tokens_film(tf, c->frames[i], f, err);
            }
            if (!*s && i > 0) { /* how this run's sink moved against the first run's */
                fputs("<h3>", f), html(f, c->r[i].label), fputs(" − ", f), html(f, c->r[0].label), fputs("</h3>\n<figure>", f);
                *s = sf_taps_tokens_diff(tf, first, &to, f, err);
                fputs("</figure>\n", f);
            }
            if (i == 0) first = tf;
            else sf_tfile_destroy(&tf);
        }
        sf_tfile_destroy(&first);
    }
    words_section(f, c, err, s);
    fputs("\n<details><summary>Every layer and head</summary>\n<table><tr><th>layer</th><th>head</th>", f);
    for (int i = 0; i < c->nr; i++) {
        fputs("<th>first mass ", f), html(f, c->r[i].label), fputs("</th><th>sink ratio ", f), html(f, c->r[i].label);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (int li = 0; li < c->nl; li++)
        for (int h = 0; h < c->H; h++) {
            fprintf(f, "<tr><td>%d</td><td>%d</td>", c->layers[li], h);
            for (int i = 0; i < c->nr; i++) {
                fputs("<td>", f), hnum(f, c->r[i].mass[li * c->H + h], "%.6f"), fputs("</td><td>", f);
                hnum(f, c->r[i].ratio[li * c->H + h], "%.6f"), fputs("</td>", f);
            }
            fputs("</tr>\n", f);
        }
    fputs("</table></details>\n</body></html>\n", f);
}

sf_status sf_taps_cmp_report(const sf_taps_cmp *c, const char *path, sf_err *err) {
    sf_atomic_file af;
    sf_status s = sf_atomic_open(&af, path, err);
    if (s) return s;
    write_report(af.fp, c, err, &s);
    if (!s && ferror(af.fp)) s = sf_fail(err, SF_E_IO, "%s: write failed", path);
    if (s) {
        sf_atomic_abort(&af);
        return s;
    }
    return sf_atomic_commit(&af, err);
}
