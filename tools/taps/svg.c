/* svg.c — hand-written SVG figures of sf-taps (no dependencies): per-head bar grids, a
 * heads × key-frames heatmap, the layer comparison of head-mean curves with a ±std band,
 * and the per-head softmax sink ratios. Mirrors the figures of notebooks/plt_fig4.ipynb
 * (per_head_grid, all_heads heatmap with viridis, layer_comparison). Every file is written
 * atomically. Tested by tests/bats/sf-taps.bats (xmllint well-formedness, element counts). */
#define _POSIX_C_SOURCE 200809L
#include "taps_analysis.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Plot area in pixels and a data range. */
typedef struct axes {
    double x, y, w, h;      /* top-left corner and size */
    double x0, x1, y0, y1;  /* data range */
} axes;

static double ax_px(const axes *a, double v) { return a->x + (v - a->x0) / (a->x1 - a->x0) * a->w; }
static double ax_py(const axes *a, double v) { return a->y + a->h - (v - a->y0) / (a->y1 - a->y0) * a->h; }

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
}

static void text(FILE *f, double x, double y, const char *anchor, int size, const char *weight, const char *s) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\"%s%s%s>", x, y, anchor, size,
            weight ? " font-weight=\"" : "", weight ? weight : "", weight ? "\"" : "");
    xml_text(f, s);
    fputs("</text>\n", f);
}

/* Width that fits a 15 px bold title (≈ 9.5 px per character). */
static double fit_title(double w, const char *title) {
    double need = 9.5 * (double)strlen(title) + 40;
    return w > need ? w : need;
}

static void begin(FILE *f, double w, double h, const char *title) {
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\">\n<title>",
            w, h, w, h);
    xml_text(f, title);
    fprintf(f, "</title>\n<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", w, h);
    text(f, w / 2, 24, "middle", 15, "bold", title);
}

/* Finite range of v[0..n) widened to include 0 when with_zero; never empty. */
static void range_of(const double *v, size_t n, int with_zero, double *lo, double *hi) {
    double a = with_zero ? 0 : INFINITY, b = with_zero ? 0 : -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < a) a = v[i];
            if (v[i] > b) b = v[i];
        }
    if (!isfinite(a) || !isfinite(b)) a = 0, b = 1;
    if (b - a < 1e-12) {
        double d = fabs(a) > 0 ? fabs(a) * 0.1 : 1;
        a -= d;
        b += d;
    }
    double pad = (b - a) * 0.05;
    *lo = with_zero && a == 0 ? 0 : a - pad;
    *hi = with_zero && b == 0 ? 0 : b + pad;
}

/* Frame, y grid with 5 labelled ticks, x ticks at integers 0..K-1 (thinned). */
static void frame(FILE *f, const axes *a, int64_t K, int fsize, const char *xlabel, const char *ylabel) {
    char buf[64];
    for (int i = 0; i <= 4; i++) {
        double v = a->y0 + (a->y1 - a->y0) * i / 4.0, py = ax_py(a, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\" stroke-dasharray=\"3,3\"/>\n",
                a->x, py, a->x + a->w, py);
        snprintf(buf, sizeof buf, "%.3g", v);
        text(f, a->x - 4, py + fsize / 3.0, "end", fsize, NULL, buf);
    }
    int64_t step = K <= 24 ? 1 : (K + 23) / 24;
    for (int64_t k = 0; k < K; k += step) {
        snprintf(buf, sizeof buf, "%lld", (long long)k);
        text(f, ax_px(a, (double)k), a->y + a->h + fsize + 2, "middle", fsize, NULL, buf);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n", a->x, a->y,
            a->w, a->h);
    if (xlabel) text(f, a->x + a->w / 2, a->y + a->h + 2 * fsize + 8, "middle", fsize + 1, NULL, xlabel);
    if (ylabel) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"%d\" transform=\"rotate(-90 %.1f %.1f)\">",
                a->x - 48, a->y + a->h / 2, fsize + 1, a->x - 48, a->y + a->h / 2);
        xml_text(f, ylabel);
        fputs("</text>\n", f);
    }
}

/* Viridis, linear between 9 anchor colours. */
static void viridis(double t, char *out, size_t n) {
    static const unsigned char c[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},   {44, 113, 142}, {33, 144, 141},
                                          {39, 173, 129}, {92, 200, 99},  {170, 220, 50},  {253, 231, 37}};
    if (!isfinite(t)) {
        snprintf(out, n, "#cccccc");
        return;
    }
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    double p = t * 8;
    int i = (int)p;
    if (i > 7) i = 7;
    double u = p - i;
    int r = (int)lround(c[i][0] + (c[i + 1][0] - c[i][0]) * u), g = (int)lround(c[i][1] + (c[i + 1][1] - c[i][1]) * u),
        b = (int)lround(c[i][2] + (c[i + 1][2] - c[i][2]) * u);
    snprintf(out, n, "#%02x%02x%02x", r, g, b);
}

static const char *palette(size_t i) {
    static const char *p[] = {"#2E86AB", "#A23B72", "#F18F01", "#3B8B3B", "#6C4AB6", "#C73E1D", "#1B998B", "#777777"};
    return p[i % 8];
}

static sf_status finish(sf_atomic_file *af, FILE *f, sf_err *err) {
    fputs("</svg>\n", f);
    if (ferror(f)) {
        sf_atomic_abort(af);
        return sf_fail(err, SF_E_IO, "%s: write failed", af->path);
    }
    return sf_atomic_commit(af, err);
}

static void fmt_num(char *buf, size_t n, double v) {
    if (isfinite(v)) snprintf(buf, n, "%.3f", v);
    else snprintf(buf, n, "nan");
}

sf_status sf_taps_svg_heads(const char *path, const sf_taps_src *src, const sf_taps_stats *s, sf_err *err) {
    sf_atomic_file af;
    sf_status st = sf_atomic_open(&af, path, err);
    if (st) return st;
    FILE *f = af.fp;
    int ncols = s->nh < 4 ? s->nh : 4, nrows = (s->nh + 3) / 4;
    double pw = 300, ph = 210, W = ncols * pw + 20, H = nrows * ph + 50;
    char title[256], buf[128];
    snprintf(title, sizeof title, "Layer %d (%s): per-head frame attention, Δ = first − middle frames", src->layer,
             src->label);
    W = fit_title(W, title);
    begin(f, W, H, title);
    int64_t K = s->nkf;
    for (int hi = 0; hi < s->nh; hi++) {
        const double *F = s->F + (size_t)hi * (size_t)K;
        axes a = {.x = 10 + (hi % 4) * pw + 60, .y = 50 + (hi / 4) * ph + 22, .w = pw - 80, .h = ph - 62};
        a.x0 = -0.6;
        a.x1 = (double)K - 0.4;
        range_of(F, (size_t)K, 1, &a.y0, &a.y1);
        fmt_num(buf, 64, s->delta[hi]);
        char t2[200];
        snprintf(t2, sizeof t2, "H%d (Δ=%s)", s->heads[hi], buf);
        text(f, a.x + a.w / 2, a.y - 6, "middle", 11, "bold", t2);
        frame(f, &a, K, 8, NULL, NULL);
        double bw = a.w / ((double)K + 0.2) * 0.8, zero = ax_py(&a, 0);
        fprintf(f, "<g fill=\"%s\" fill-opacity=\"0.7\">\n", palette(0));
        for (int64_t k = 0; k < K; k++) {
            if (!isfinite(F[k])) continue;
            double py = ax_py(&a, F[k]), top = py < zero ? py : zero, hh = fabs(zero - py);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"><title>frame %lld: %.6g</title></rect>\n",
                    ax_px(&a, (double)k) - bw / 2, top, bw, hh, (long long)k, F[k]);
        }
        fputs("</g>\n<polyline fill=\"none\" stroke=\"black\" stroke-width=\"1\" points=\"", f);
        for (int64_t k = 0; k < K; k++)
            if (isfinite(F[k])) fprintf(f, "%.2f,%.2f ", ax_px(&a, (double)k), ax_py(&a, F[k]));
        fputs("\"/>\n", f);
    }
    return finish(&af, f, err);
}

sf_status sf_taps_svg_heatmap(const char *path, const sf_taps_src *src, const sf_taps_stats *s, sf_err *err) {
    sf_atomic_file af;
    sf_status st = sf_atomic_open(&af, path, err);
    if (st) return st;
    FILE *f = af.fp;
    int64_t K = s->nkf;
    double cw = K <= 32 ? 36 : 1200.0 / (double)K, chh = 28, x0 = 70, y0 = 50;
    double W = x0 + cw * (double)K + 130, H = y0 + chh * s->nh + 60;
    char title[256], col[16], buf[96];
    snprintf(title, sizeof title, "Layer %d (%s): frame attention logits across heads", src->layer, src->label);
    W = fit_title(W, title);
    begin(f, W, H, title);
    double lo = INFINITY, hi = -INFINITY; /* exact finite range: full colour contrast */
    for (size_t i = 0; i < (size_t)s->nh * (size_t)K; i++)
        if (isfinite(s->F[i])) {
            if (s->F[i] < lo) lo = s->F[i];
            if (s->F[i] > hi) hi = s->F[i];
        }
    if (!(hi > lo)) {
        lo = isfinite(lo) ? lo - 1 : 0;
        hi = lo + 2;
    }
    for (int h = 0; h < s->nh; h++) {
        snprintf(buf, sizeof buf, "H%d", s->heads[h]);
        text(f, x0 - 6, y0 + chh * h + chh / 2 + 4, "end", 10, NULL, buf);
        for (int64_t k = 0; k < K; k++) {
            double v = s->F[(size_t)h * (size_t)K + (size_t)k];
            viridis((v - lo) / (hi - lo), col, sizeof col);
            fprintf(f,
                    "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>H%d frame %lld: "
                    "%.6g</title></rect>\n",
                    x0 + cw * (double)k, y0 + chh * h, cw, chh, col, s->heads[h], (long long)k, v);
        }
    }
    int64_t step = K <= 32 ? 1 : (K + 31) / 32;
    for (int64_t k = 0; k < K; k += step) {
        snprintf(buf, sizeof buf, "%lld", (long long)k);
        text(f, x0 + cw * ((double)k + 0.5), y0 + chh * s->nh + 14, "middle", 9, NULL, buf);
    }
    text(f, x0 + cw * (double)K / 2, y0 + chh * s->nh + 34, "middle", 12, NULL, "Key frame index");
    /* colour bar */
    double bx = x0 + cw * (double)K + 30, bh = chh * s->nh;
    for (int i = 0; i < 64; i++) {
        viridis((63 - i) / 63.0, col, sizeof col);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"16\" height=\"%.2f\" fill=\"%s\"/>\n", bx, y0 + bh * i / 64.0,
                bh / 64.0 + 0.3, col);
    }
    snprintf(buf, sizeof buf, "%.4g", hi);
    text(f, bx + 20, y0 + 8, "start", 9, NULL, buf);
    snprintf(buf, sizeof buf, "%.4g", lo);
    text(f, bx + 20, y0 + bh, "start", 9, NULL, buf);
    text(f, bx + 20, y0 + bh / 2, "start", 9, NULL, "logits");
    return finish(&af, f, err);
}

sf_status sf_taps_svg_layers(const char *path, const sf_taps_src *srcs, const sf_taps_stats *st, size_t n,
                             sf_err *err) {
    sf_atomic_file af;
    sf_status rc = sf_atomic_open(&af, path, err);
    if (rc) return rc;
    FILE *f = af.fp;
    double W = 900, H = 420;
    begin(f, W, H, "Head-averaged frame attention per layer (mean ± std over heads)");
    int64_t K = 1;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (st[i].nkf > K) K = st[i].nkf;
        for (int64_t k = 0; k < st[i].nkf; k++) {
            double a = st[i].mean[k] - st[i].std[k], b = st[i].mean[k] + st[i].std[k];
            if (isfinite(a) && a < lo) lo = a;
            if (isfinite(b) && b > hi) hi = b;
        }
    }
    double r[2] = {lo, hi};
    axes a = {.x = 80, .y = 45, .w = W - 260, .h = H - 110, .x0 = -0.5, .x1 = (double)K - 0.5};
    range_of(r, 2, 0, &a.y0, &a.y1);
    frame(f, &a, K, 10, "Key frame index", "Mean attention (logits)");
    for (size_t i = 0; i < n; i++) {
        const sf_taps_stats *s = &st[i];
        const char *c = palette(i);
        fprintf(f, "<polygon fill=\"%s\" fill-opacity=\"0.2\" stroke=\"none\" points=\"", c);
        for (int64_t k = 0; k < s->nkf; k++) fprintf(f, "%.2f,%.2f ", ax_px(&a, (double)k), ax_py(&a, s->mean[k] + s->std[k]));
        for (int64_t k = s->nkf - 1; k >= 0; k--)
            fprintf(f, "%.2f,%.2f ", ax_px(&a, (double)k), ax_py(&a, s->mean[k] - s->std[k]));
        fprintf(f, "\"/>\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
        for (int64_t k = 0; k < s->nkf; k++) fprintf(f, "%.2f,%.2f ", ax_px(&a, (double)k), ax_py(&a, s->mean[k]));
        fprintf(f, "\"/>\n<g fill=\"%s\">\n", c);
        for (int64_t k = 0; k < s->nkf; k++)
            fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\"><title>%s frame %lld: %.6g ± %.4g</title></circle>\n",
                    ax_px(&a, (double)k), ax_py(&a, s->mean[k]), srcs[i].label, (long long)k, s->mean[k], s->std[k]);
        fputs("</g>\n", f);
        double ly = a.y + 14 + 18.0 * (double)i;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", a.x + a.w + 15,
                ly - 4, a.x + a.w + 40, ly - 4, c);
        char lab[96];
        snprintf(lab, sizeof lab, "layer %d (%s)", srcs[i].layer, srcs[i].label);
        text(f, a.x + a.w + 46, ly, "start", 11, NULL, lab);
    }
    return finish(&af, f, err);
}

sf_status sf_taps_svg_sink(const char *path, const sf_taps_src *srcs, const sf_taps_stats *st, size_t n, sf_err *err) {
    sf_atomic_file af;
    sf_status rc = sf_atomic_open(&af, path, err);
    if (rc) return rc;
    FILE *f = af.fp;
    int maxh = 1;
    double lo = 0, hi = 1;
    for (size_t i = 0; i < n; i++) {
        if (st[i].nh > maxh) maxh = st[i].nh;
        for (int h = 0; h < st[i].nh; h++)
            if (isfinite(st[i].sink[h]) && st[i].sink[h] > hi) hi = st[i].sink[h];
    }
    double W = 120 + (double)maxh * (18.0 * (double)n + 14) + 180, H = 400;
    if (W < 600) W = 600;
    begin(f, W, H, "Softmax sink ratio per head: w(frame 0) / mean w(frames 1..K-2)");
    double r[2] = {lo, hi};
    axes a = {.x = 80, .y = 45, .w = W - 260, .h = H - 110, .x0 = -0.5, .x1 = maxh - 0.5};
    range_of(r, 2, 1, &a.y0, &a.y1);
    frame(f, &a, 0, 10, "Head", "Sink ratio");
    for (int h = 0; h < maxh; h++) {
        char hb[32];
        const sf_taps_stats *w = NULL;
        for (size_t i = 0; i < n && !w; i++)
            if (st[i].nh > h) w = &st[i];
        snprintf(hb, sizeof hb, "H%d", w ? w->heads[h] : h);
        text(f, ax_px(&a, h), a.y + a.h + 12, "middle", 10, NULL, hb);
    }
    double one = ax_py(&a, 1.0), zero = ax_py(&a, 0.0);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\" stroke-dasharray=\"6,3\"/>\n", a.x,
            one, a.x + a.w, one);
    double gw = a.w / maxh * 0.8, bw = gw / (double)(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "<g fill=\"%s\">\n", palette(i));
        for (int h = 0; h < st[i].nh; h++) {
            double v = st[i].sink[h];
            if (!isfinite(v)) continue;
            double py = ax_py(&a, v), x = ax_px(&a, h) - gw / 2 + bw * (double)i;
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"><title>%s H%d: %.6g</title></rect>\n", x,
                    py < zero ? py : zero, bw * 0.9, fabs(zero - py), srcs[i].label, st[i].heads[h], v);
        }
        fputs("</g>\n", f);
        double ly = a.y + 14 + 18.0 * (double)i;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"20\" height=\"10\" fill=\"%s\"/>\n", a.x + a.w + 15, ly - 9, palette(i));
        char lab[96];
        snprintf(lab, sizeof lab, "layer %d (%s)", srcs[i].layer, srcs[i].label);
        text(f, a.x + a.w + 40, ly, "start", 11, NULL, lab);
    }
    return finish(&af, f, err);
}
