/* svg.c — hand-written SVG figures of sf-taps (no dependencies): per-head bar grids, a
 * heads × key-frames heatmap, the layer comparison of head-mean curves with a ±std band,
 * and the per-head softmax sink ratios. Mirrors the figures of notebooks/plt_fig4.ipynb
 * (per_head_grid, all_heads heatmap with viridis, layer_comparison). Axes have ticks at round
 * values (sf_taps_nice_ticks) and span the enclosing ticks; a y range that spans 0 gets a zero
 * line (class "zero-line"). Every file is written atomically and the same input gives the same
 * bytes. Tested by tests/unit/test_taps_svg.c (ticks, labels, zero line, head-grid labels,
 * well-formedness, determinism) and tests/bats/sf-taps.bats (xml parse, element counts). */
#define _POSIX_C_SOURCE 200809L
#include "taps_analysis.h"

#include <float.h>
#include <math.h>
#include <utf8proc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ticks ---------------------------------------------------------------------------- */

/* 10^a for a ≥ 0: exact up to 10^22 (= 2^22·5^22, 5^22 < 2^53), a product of those beyond. */
static double pow10_pos(int a) {
    static const double t[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    double p = 1;
    for (; a > 22; a -= 22) p *= 1e22;
    return p * t[a];
}

/* The double nearest q·10^e (one correctly rounded operation on exact operands while
 * |q| < 2^53 and |e| ≤ 22): 3·10^−1 is 0.3, where 3·0.1 would be 0.30000000000000004. */
static double dec_value(int64_t q, int e) { return e >= 0 ? (double)q * pow10_pos(e) : (double)q / pow10_pos(-e); }

/* Largest e with 10^e ≤ x (x > 0, finite). */
static int decade_of(double x) {
    int e = (int)floor(log10(x));
    if (dec_value(1, e) > x) e--;
    else if (dec_value(1, e + 1) <= x) e++;
    return e;
}

void sf_taps_nice_ticks(double lo, double hi, int max_ticks, sf_taps_ticks *t) {
    static const int mants[3] = {1, 2, 5};
    memset(t, 0, sizeof *t);
    if (max_ticks < 3) max_ticks = 3;
    if (max_ticks > SF_TAPS_TICKS_MAX) max_ticks = SF_TAPS_TICKS_MAX;
    if (!isfinite(lo)) lo = hi;
    if (!isfinite(hi)) hi = lo;
    if (!isfinite(lo)) lo = 0, hi = 1;
    if (lo > hi) {
        double s = lo;
        lo = hi;
        hi = s;
    }
    /* keep hi − lo and every step finite, and every step a normal number */
    lo = fmax(lo, -1e300);
    hi = fmin(hi, 1e300);
    double mag = fmax(fabs(lo), fabs(hi));
    if (mag < 1e-290) lo = hi = mag = 0;
    if (hi - lo <= 1e-9 * mag || hi == lo) { /* one value: ± its decade */
        double c = lo / 2 + hi / 2, d = c != 0 ? dec_value(1, decade_of(fabs(c))) : 1;
        lo = c - d;
        hi = c + d;
    }
    int e = (int)floor(log10((hi - lo) / max_ticks)) - 1; /* a step certainly too small */
    for (int iter = 0; iter < 64; iter++, e++)
        for (int j = 0; j < 3; j++) {
            double step = dec_value(mants[j], e), ql = lo / step, qh = hi / step;
            /* lo/step and hi/step carry a rounding error: a value within 1e-9 step of a tick
             * (0.6000000000000001 for 0.6) is on it, not one step further out */
            double k0 = floor(ql + 1e-9 + 8 * DBL_EPSILON * fabs(ql));
            double k1 = ceil(qh - 1e-9 - 8 * DBL_EPSILON * fabs(qh));
            if (k1 <= k0) k1 = k0 + 1;
            if (k1 - k0 + 1 > max_ticks) continue;
            t->n = (int)(k1 - k0) + 1;
            t->mant = mants[j];
            t->e = e;
            t->step = step;
            for (int i = 0; i < t->n; i++) t->v[i] = dec_value(((int64_t)k0 + i) * mants[j], e);
            /* one label format per axis, from the decimal exponent of the largest |tick| */
            int64_t qa = llabs((int64_t)k0 * mants[j]), qb = llabs((int64_t)k1 * mants[j]);
            int digits = 0;
            for (int64_t q = qa > qb ? qa : qb; q > 0; q /= 10) digits++;
            int top = e + digits - 1;
            t->decimals = e < 0 ? -e : 0;
            if (top < -4 || top >= 6) {
                t->sci = 1;
                t->exp10 = top;
                t->decimals = digits - 1;
            }
            return;
        }
    /* not reached (64 decades of steps were tried); a usable axis all the same */
    t->n = 2, t->v[0] = lo, t->v[1] = hi, t->step = hi - lo, t->mant = 1;
}

void sf_taps_tick_label(const sf_taps_ticks *t, double v, char *buf, size_t n) {
    static const char *const sup[10] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
    if (!n) return;
    if (!isfinite(v)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (fabs(v) < 1e-6 * t->step) v = 0; /* rounding residue and −0 */
    if (t->sci && v == 0) {
        snprintf(buf, n, "0");
        return;
    }
    double x = !t->sci ? v : t->exp10 >= 0 ? v / pow10_pos(t->exp10) : v * pow10_pos(-t->exp10);
    char num[400], ex[64] = "";
    snprintf(num, sizeof num, "%.*f", t->decimals, fabs(x));
    int neg = v < 0 && strspn(num, "0.") != strlen(num); /* no "−0.0" */
    if (t->sci) {
        char d[16];
        size_t m = (size_t)snprintf(ex, sizeof ex, "×10");
        snprintf(d, sizeof d, "%d", t->exp10);
        for (const char *c = d; *c; c++) m += (size_t)snprintf(ex + m, sizeof ex - m, "%s", *c == '-' ? "⁻" : sup[*c - '0']);
    }
    snprintf(buf, n, "%s%s%s", neg ? "−" : "", num, ex);
}

int64_t sf_taps_int_tick_step(int64_t count, int max_ticks) {
    static const int mants[3] = {1, 2, 5};
    if (max_ticks < 1) max_ticks = 1;
    if (count <= 1) return 1;
    for (int64_t d = 1; d <= INT64_MAX / 50; d *= 10)
        for (int j = 0; j < 3; j++)
            if ((count - 1) / (mants[j] * d) + 1 <= max_ticks) return mants[j] * d;
    return count;
}

/* ---- drawing ---------------------------------------------------------------------------- */

/* Plot area in pixels and a data range. */
typedef struct axes {
    double x, y, w, h;      /* top-left corner and size */
    double x0, x1, y0, y1;  /* data range */
} axes;

static double ax_px(const axes *a, double v) { return a->x + (v - a->x0) / (a->x1 - a->x0) * a->w; }
static double ax_py(const axes *a, double v) { return a->y + a->h - (v - a->y0) / (a->y1 - a->y0) * a->h; }

void sf_taps_xml_text(FILE *f, const char *s) {
    while (*s) {
        utf8proc_int32_t cp;
        const utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &cp);
        if (n <= 0) { /* not UTF-8 (a file's text, a tokenizer's piece): U+FFFD for the byte */
            fputs("\xef\xbf\xbd", f);
            s++;
            continue;
        }
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else if (*s == '\'') fputs("&#39;", f);
        else if ((cp >= 0x20 && cp != 0x7f && !(cp >= 0x80 && cp < 0xa0)) || cp == '\n' || cp == '\t') fwrite(s, 1, (size_t)n, f);
        s += n;
    }
}
#define xml_text sf_taps_xml_text

static void text(FILE *f, const char *cls, double x, double y, const char *anchor, int size, const char *weight,
                 const char *s) {
    fputs("<text", f);
    if (cls) fprintf(f, " class=\"%s\"", cls);
    fprintf(f, " x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\"", x, y, anchor, size);
    if (weight) fprintf(f, " font-weight=\"%s\"", weight);
    fputc('>', f);
    xml_text(f, s);
    fputs("</text>\n", f);
}

/* Text reading upwards, centred on (x, y), its glyphs left of x: a y-axis label. */
static void vtext(FILE *f, const char *cls, double x, double y, int size, const char *s) {
    fprintf(f, "<text class=\"%s\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"%d\" transform=\"rotate(-90 %.1f %.1f)\">",
            cls, x, y, size, x, y);
    xml_text(f, s);
    fputs("</text>\n", f);
}

/* Rough rendered width of s in px at font size `size` (0.6 em per character). */
static double text_w(const char *s, int size) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80; /* UTF-8 characters */
    return 0.6 * size * (double)n;
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
    text(f, "figure-title", w / 2, 24, "middle", 15, "bold", title);
}

/* Finite range of v[0..n), widened to include 0 when with_zero; 0..1 when nothing is finite.
 * May be empty (lo == hi): sf_taps_nice_ticks widens it. */
static void range_of(const double *v, size_t n, int with_zero, double *lo, double *hi) {
    double a = with_zero ? 0 : INFINITY, b = with_zero ? 0 : -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < a) a = v[i];
            if (v[i] > b) b = v[i];
        }
    if (!isfinite(a) || !isfinite(b)) a = 0, b = 1;
    *lo = a;
    *hi = b;
}

/* Round y ticks enclosing the data range lo..hi; the y axis of `a` runs between the outer two. */
static void set_y(axes *a, sf_taps_ticks *yt, double lo, double hi, int max_ticks) {
    sf_taps_nice_ticks(lo, hi, max_ticks, yt);
    a->y0 = yt->v[0];
    a->y1 = yt->v[yt->n - 1];
}

/* Frame with dashed grid lines, tick marks and labels at the y ticks, integer x ticks 0..K−1
 * (thinned to round steps; none for K = 0), and the axis labels (NULL: none). */
static void frame(FILE *f, const axes *a, const sf_taps_ticks *yt, int64_t K, int fsize, const char *xlabel,
                  const char *ylabel) {
    char buf[128];
    int zero = a->y0 < 0 && a->y1 > 0; /* drawn by zero_line instead of a grid line */
    fputs("<g stroke=\"#dddddd\" stroke-dasharray=\"3,3\">\n", f);
    for (int i = 1; i + 1 < yt->n; i++) {
        if (zero && yt->v[i] == 0) continue;
        double py = ax_py(a, yt->v[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", a->x, py, a->x + a->w, py);
    }
    fputs("</g>\n<g stroke=\"#333333\">\n", f);
    for (int i = 0; i < yt->n; i++) {
        double py = ax_py(a, yt->v[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", a->x - 4, py, a->x, py);
    }
    int64_t step = sf_taps_int_tick_step(K, (int)(a->w / (2.4 * fsize)));
    for (int64_t k = 0; k < K; k += step) {
        double px = ax_px(a, (double)k);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px, a->y + a->h, px, a->y + a->h + 4);
    }
    fputs("</g>\n", f);
    double wmax = 0;
    for (int i = 0; i < yt->n; i++) {
        sf_taps_tick_label(yt, yt->v[i], buf, sizeof buf);
        if (text_w(buf, fsize) > wmax) wmax = text_w(buf, fsize);
        text(f, "y-tick", a->x - 6, ax_py(a, yt->v[i]) + fsize / 3.0, "end", fsize, NULL, buf);
    }
    for (int64_t k = 0; k < K; k += step) {
        snprintf(buf, sizeof buf, "%lld", (long long)k);
        text(f, "x-tick", ax_px(a, (double)k), a->y + a->h + fsize + 5, "middle", fsize, NULL, buf);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n", a->x, a->y,
            a->w, a->h);
    if (xlabel) text(f, "axis-label", a->x + a->w / 2, a->y + a->h + 2 * fsize + 11, "middle", fsize + 1, NULL, xlabel);
    if (ylabel) vtext(f, "axis-label", a->x - 10 - wmax - 4, a->y + a->h / 2, fsize + 1, ylabel);
}

/* The horizontal rule at y = 0, when the y range spans zero (Δ-like statistics go negative). */
static void zero_line(FILE *f, const axes *a) {
    if (!(a->y0 < 0 && a->y1 > 0)) return;
    double py = ax_py(a, 0);
    fprintf(f, "<line class=\"zero-line\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000000\" stroke-width=\"1\"/>\n",
            a->x, py, a->x + a->w, py);
}

/* Viridis, linear between 9 anchor colours (taps_analysis.h). */
void sf_taps_viridis_rgb(double t, unsigned char rgb[3]) {
    static const unsigned char c[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},   {44, 113, 142}, {33, 144, 141},
                                          {39, 173, 129}, {92, 200, 99},  {170, 220, 50},  {253, 231, 37}};
    if (!isfinite(t)) {
        rgb[0] = rgb[1] = rgb[2] = 0xcc;
        return;
    }
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    double p = t * 8;
    int i = (int)p;
    if (i > 7) i = 7;
    double u = p - i;
    for (int k = 0; k < 3; k++) rgb[k] = (unsigned char)lround(c[i][k] + (c[i + 1][k] - c[i][k]) * u);
}
void sf_taps_viridis(double t, char *out, size_t n) {
    unsigned char c[3];
    sf_taps_viridis_rgb(t, c);
    snprintf(out, n, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* The viridis colour bar of a heatmap at (bx, y0), bh tall, for values lo (bottom) .. hi (top), with
 * round ticks inside the exact range (as matplotlib's colorbar). */
static void colour_bar(FILE *f, double bx, double y0, double bh, double lo, double hi) {
    char col[16], buf[128];
    fprintf(f, "<g><title>colour range %.6g to %.6g</title>\n", lo, hi);
    for (int i = 0; i < 64; i++) {
        sf_taps_viridis((63 - i) / 63.0, col, sizeof col);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"16\" height=\"%.2f\" fill=\"%s\"/>\n", bx, y0 + bh * i / 64.0,
                bh / 64.0 + 0.3, col);
    }
    fputs("</g>\n", f);
    sf_taps_ticks ct;
    sf_taps_nice_ticks(lo, hi, 6, &ct);
    double tol = 1e-9 * (hi - lo);
    for (int i = 0; i < ct.n; i++) {
        double v = ct.v[i], py = y0 + bh * (hi - v) / (hi - lo);
        if (v < lo - tol || v > hi + tol) continue;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", bx + 16, py, bx + 20, py);
        sf_taps_tick_label(&ct, v, buf, sizeof buf);
        text(f, "c-tick", bx + 23, py + 3, "start", 9, NULL, buf);
    }
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

#define X_KEY_FRAME "Key frame"

sf_status sf_taps_svg_heads(const char *path, const sf_taps_src *src, const sf_taps_stats *s, sf_err *err) {
    sf_atomic_file af;
    sf_status st = sf_atomic_open(&af, path, err);
    if (st) return st;
    FILE *f = af.fp;
    int ncols = s->nh < 4 ? s->nh : 4, nrows = (s->nh + 3) / 4;
    double pw = 300, ph = 210, W = ncols * pw + 20, H = nrows * ph + 50;
    char title[256], buf[128];
    const sf_taps_kind_text *kt = sf_taps_kind_labels(src->kind); /* logits or attention mass */
    snprintf(title, sizeof title, "Layer %d (%s): %s, Δ = first − middle frames", src->layer, src->label, kt->heads_title);
    W = fit_title(W, title);
    begin(f, W, H, title);
    int64_t K = s->nkf;
    for (int hi = 0; hi < s->nh; hi++) {
        const double *F = s->F + (size_t)hi * (size_t)K;
        axes a = {.x = 10 + (hi % 4) * pw + 60, .y = 50 + (hi / 4) * ph + 22, .w = pw - 80, .h = ph - 62};
        a.x0 = -0.6;
        a.x1 = (double)K - 0.4;
        double lo, up;
        sf_taps_ticks yt;
        range_of(F, (size_t)K, 1, &lo, &up);
        set_y(&a, &yt, lo, up, 6);
        fputs("<g class=\"panel\">\n", f);
        /* Δ in the panel's units: its axis format with two more decimals (−0.013, 1.33×10⁻⁷) */
        sf_taps_ticks dt = yt;
        dt.decimals += 2;
        sf_taps_tick_label(&dt, s->delta[hi], buf, sizeof buf);
        char t2[200];
        snprintf(t2, sizeof t2, "head %d (Δ = %s)", s->heads[hi], buf);
        text(f, "panel-title", a.x + a.w / 2, a.y - 6, "middle", 11, "bold", t2);
        /* axis labels on the outer panels: x under the last panel of each column, y on the left */
        frame(f, &a, &yt, K, 8, hi + ncols >= s->nh ? X_KEY_FRAME : NULL, hi % 4 == 0 ? kt->axis : NULL);
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
        zero_line(f, &a); /* over the bars: their common base */
        fputs("</g>\n", f);
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
    double W = x0 + cw * (double)K + 160, H = y0 + chh * s->nh + 60;
    char title[256], col[16], buf[128];
    const sf_taps_kind_text *kt = sf_taps_kind_labels(src->kind);
    snprintf(title, sizeof title, "Layer %d (%s): %s", src->layer, src->label, kt->heatmap_title);
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
        text(f, "y-tick", x0 - 6, y0 + chh * h + chh / 2 + 4, "end", 10, NULL, buf);
        for (int64_t k = 0; k < K; k++) {
            double v = s->F[(size_t)h * (size_t)K + (size_t)k];
            sf_taps_viridis((v - lo) / (hi - lo), col, sizeof col);
            fprintf(f,
                    "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>H%d frame %lld: "
                    "%.6g</title></rect>\n",
                    x0 + cw * (double)k, y0 + chh * h, cw, chh, col, s->heads[h], (long long)k, v);
        }
    }
    vtext(f, "axis-label", x0 - 40, y0 + chh * s->nh / 2, 12, "Head");
    int64_t step = sf_taps_int_tick_step(K, (int)(cw * (double)K / 22));
    for (int64_t k = 0; k < K; k += step) {
        snprintf(buf, sizeof buf, "%lld", (long long)k);
        text(f, "x-tick", x0 + cw * ((double)k + 0.5), y0 + chh * s->nh + 14, "middle", 9, NULL, buf);
    }
    text(f, "axis-label", x0 + cw * (double)K / 2, y0 + chh * s->nh + 34, "middle", 12, NULL, X_KEY_FRAME);
    double bx = x0 + cw * (double)K + 30;
    colour_bar(f, bx, y0, chh * s->nh, lo, hi);
    /* above the bar: two heads make a bar shorter than the label */
    text(f, "axis-label", bx, y0 - 8, "start", 10, NULL, kt->axis);
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
    sf_taps_ticks yt;
    range_of(r, 2, 0, &lo, &hi);
    set_y(&a, &yt, lo, hi, 8);
    frame(f, &a, &yt, K, 10, X_KEY_FRAME,
          sf_taps_kinds_label(srcs, n, offsetof(sf_taps_kind_text, axis), "Mean attention logit / attention mass"));
    zero_line(f, &a); /* under the bands and curves */
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
        text(f, "legend", a.x + a.w + 46, ly, "start", 11, NULL, lab);
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
    axes a = {.x = 80, .y = 45, .w = W - 260, .h = H - 110, .x0 = -0.5, .x1 = maxh - 0.5};
    sf_taps_ticks yt;
    set_y(&a, &yt, lo, hi, 8);
    frame(f, &a, &yt, 0, 10, "Head", "Sink ratio");
    for (int h = 0; h < maxh; h++) {
        char hb[32];
        const sf_taps_stats *w = NULL;
        for (size_t i = 0; i < n && !w; i++)
            if (st[i].nh > h) w = &st[i];
        snprintf(hb, sizeof hb, "H%d", w ? w->heads[h] : h);
        text(f, "x-tick", ax_px(&a, h), a.y + a.h + 14, "middle", 10, NULL, hb);
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
        text(f, "legend", a.x + a.w + 40, ly, "start", 11, NULL, lab);
    }
    zero_line(f, &a); /* sink ratios are ≥ 0: only for a range that does go negative */
    return finish(&af, f, err);
}

/* ---- the workbench's figures (compare / report): FILE* writers ------------------------------ */

/* column k's label: its frame, or "lo–hi" for a column standing for several */
static void col_label(const int64_t *lo, const int64_t *hi, int64_t k, char *buf, size_t n) {
    const long long a = lo ? (long long)lo[k] : (long long)k, b = lo && hi ? (long long)hi[k] : a;
    if (b > a) snprintf(buf, n, "%lld\u2013%lld", a, b);
    else snprintf(buf, n, "%lld", a);
}

void sf_taps_svg_grid(FILE *f, const char *title, int rows, const int *row_ids, const char *row_prefix,
                      const char *row_axis, int64_t cols, const int64_t *col_lo, const int64_t *col_hi,
                      const char *col_axis, const char *col_name, const double *v, const char *bar_label) {
    double cw = cols <= 32 ? 36 : 1200.0 / (double)cols, chh = rows <= 16 ? 28 : 448.0 / rows, x0 = 70, y0 = 50;
    if (chh < 12) chh = 12;
    double W = x0 + cw * (double)cols + 160, H = y0 + chh * rows + 60;
    char col[16], buf[128];
    W = fit_title(W, title);
    begin(f, W, H, title);
    int gaps = 0;
    for (int64_t k = 0; col_lo && col_hi && k < cols; k++) gaps |= col_hi[k] > col_lo[k];
    /* a column standing for several frames none attended: grey, hatched; the pattern's id is new for each figure,
       as the report inlines several in one page (the order of the figures is fixed, so are the bytes) */
    static unsigned figure_no;
    char gap_fill[32] = "";
    if (gaps) {
        figure_no++;
        snprintf(gap_fill, sizeof gap_fill, "url(#gap%u)", figure_no);
        fprintf(f,
                "<defs><pattern id=\"gap%u\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
                "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#cccccc\"/>"
                "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#ffffff\" stroke-width=\"2\"/></pattern></defs>\n",
                figure_no);
    }
    double lo = INFINITY, hi = -INFINITY; /* exact finite range: full colour contrast */
    for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
        if (isfinite(v[i])) {
            if (v[i] < lo) lo = v[i];
            if (v[i] > hi) hi = v[i];
        }
    if (!(hi > lo)) {
        lo = isfinite(lo) ? lo - 1 : 0;
        hi = lo + 2;
    }
    int64_t rstep = sf_taps_int_tick_step(rows, (int)(chh * rows / 12));
    for (int r = 0; r < rows; r++) {
        snprintf(buf, sizeof buf, "%s%d", row_prefix, row_ids ? row_ids[r] : r);
        if (r % rstep == 0) text(f, "y-tick", x0 - 6, y0 + chh * r + chh / 2 + 4, "end", 10, NULL, buf);
        for (int64_t k = 0; k < cols; k++) {
            double x = v[(size_t)r * (size_t)cols + (size_t)k];
            char cl[48];
            const int many = col_lo && col_hi && col_hi[k] > col_lo[k];
            sf_taps_viridis((x - lo) / (hi - lo), col, sizeof col);
            col_label(col_lo, col_hi, k, cl, sizeof cl);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>", x0 + cw * (double)k,
                    y0 + chh * r, cw, chh, many && isnan(x) ? gap_fill : col);
            xml_text(f, buf);
            fprintf(f, " %s%s %s: %.6g</title></rect>\n", col_name, many ? "s" : "", cl, x);
        }
    }
    vtext(f, "axis-label", x0 - 40, y0 + chh * rows / 2, 12, row_axis);
    int64_t step = sf_taps_int_tick_step(cols, (int)(cw * (double)cols / 22));
    for (int64_t k = 0; k < cols; k += step) {
        col_label(col_lo, col_hi, k, buf, sizeof buf);
        text(f, "x-tick", x0 + cw * ((double)k + 0.5), y0 + chh * rows + 14, "middle", 9, NULL, buf);
    }
    text(f, "axis-label", x0 + cw * (double)cols / 2, y0 + chh * rows + 34, "middle", 12, NULL, col_axis);
    double bx = x0 + cw * (double)cols + 30;
    colour_bar(f, bx, y0, chh * rows, lo, hi);
    text(f, "axis-label", bx, y0 - 8, "start", 10, NULL, bar_label);
    fputs("</svg>\n", f);
}

void sf_taps_svg_lines(FILE *f, const char *title, const char *xlabel, const char *ylabel, int n_series,
                       const char *const *names, int npts, const int *x_ids, const double *v) {
    double W = 900, H = 420;
    begin(f, W, H, title);
    double lo, hi;
    range_of(v, (size_t)n_series * (size_t)npts, 0, &lo, &hi);
    axes a = {.x = 80, .y = 45, .w = W - 260, .h = H - 110, .x0 = -0.5, .x1 = (double)npts - 0.5};
    sf_taps_ticks yt;
    set_y(&a, &yt, lo, hi, 8);
    frame(f, &a, &yt, 0, 10, xlabel, ylabel);
    char buf[160];
    int64_t step = sf_taps_int_tick_step(npts, (int)(a.w / 24));
    for (int p = 0; p < npts; p += (int)step) {
        snprintf(buf, sizeof buf, "%d", x_ids ? x_ids[p] : p);
        text(f, "x-tick", ax_px(&a, p), a.y + a.h + 15, "middle", 10, NULL, buf);
    }
    zero_line(f, &a);
    for (int i = 0; i < n_series; i++) {
        const char *c = palette((size_t)i);
        const double *s = v + (size_t)i * (size_t)npts;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
        for (int p = 0; p < npts; p++)
            if (isfinite(s[p])) fprintf(f, "%.2f,%.2f ", ax_px(&a, p), ax_py(&a, s[p]));
        fprintf(f, "\"/>\n<g fill=\"%s\">\n", c);
        for (int p = 0; p < npts; p++) {
            if (!isfinite(s[p])) continue;
            fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\"><title>", ax_px(&a, p), ax_py(&a, s[p]));
            xml_text(f, names[i]);
            fprintf(f, " %d: %.6g</title></circle>\n", x_ids ? x_ids[p] : p, s[p]);
        }
        fputs("</g>\n", f);
        double ly = a.y + 14 + 18.0 * (double)i;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", a.x + a.w + 15,
                ly - 4, a.x + a.w + 40, ly - 4, c);
        text(f, "legend", a.x + a.w + 46, ly, "start", 11, NULL, names[i]);
    }
    fputs("</svg>\n", f);
}
