/* tokens.c — `sf-taps tokens`: where in the sink frames the attention mass lands, from sf-denoise's
 * --tap-mode tokens files (tokens.L<l>.b<b>.s<s> [heads, query frames, K·S], the facts token_grid "HxW" and
 * token_frames K; stages/denoise/taps.h). Per selected layer, one forward (--forward B:S, else the latest
 * block's first step), the mass of each token of key slot k < K averaged over the selected heads and the
 * forward's query frames: a CSV (layer, block, step, key_slot, row, col, mass) or an SVG of one H×W heatmap
 * per layer and key slot (viridis, each layer on its own scale, its total and peak in the label), also inline in
 * `sf-taps report --tokens` (compare.c). The same input gives the same bytes. Tested by tests/bats/sf-taps.bats
 * and sf-taps-compare.bats. */
#define _POSIX_C_SOURCE 200809L
#include "taps_tokens.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tok_cap {
    int layer, block, step;
    const sf_tensor *t;
} tok_cap;

/* the capture of each layer this command shows: the forward asked for, else the latest block's first step */
static int better(const tok_cap *a, const tok_cap *b) { return a->block > b->block || (a->block == b->block && a->step < b->step); }

static sf_status pick(const sf_tfile *tf, const int *layers, int nl, int fb, int fs, tok_cap **out, int *n_out,
                      sf_err *err) {
    tok_cap *c = NULL;
    int n = 0;
    for (size_t i = 0; i < tf->n; i++) {
        const char *nm = tf->entries[i].name;
        tok_cap x;
        int k = 0;
        if (sscanf(nm, "tokens.L%d.b%d.s%d%n", &x.layer, &x.block, &x.step, &k) != 3 || nm[k]) continue;
        int want = nl == 0;
        for (int j = 0; j < nl && !want; j++) want = layers[j] == x.layer;
        if (!want || (fb >= 0 && (x.block != fb || x.step != fs))) continue;
        x.t = &tf->entries[i].t;
        int j = 0;
        while (j < n && c[j].layer != x.layer) j++;
        if (j < n) {
            if (better(&x, &c[j])) c[j] = x;
            continue;
        }
        tok_cap *p = realloc(c, sizeof *c * (size_t)(n + 1));
        if (!p) {
            free(c);
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        }
        c = p;
        c[n++] = x;
    }
    for (int i = 1; i < n; i++) /* by layer */
        for (int j = i; j > 0 && c[j - 1].layer > c[j].layer; j--) {
            tok_cap t = c[j];
            c[j] = c[j - 1], c[j - 1] = t;
        }
    *out = c, *n_out = n;
    return SF_OK;
}

/* m[K·S]: the mass of each token of the K key slots, mean over the heads asked (all when nh = 0) and the query frames. */
static sf_status token_means(const tok_cap *c, int64_t S, const int *heads, int nh, double *m, int64_t *K, sf_err *err) {
    const sf_tensor *t = c->t;
    if (t->ndim != 3 || t->shape[2] % S != 0 || t->shape[0] < 1 || t->shape[1] < 1)
        return sf_fail(err, SF_E_SHAPE, "tokens.L%d.b%d.s%d: expected [heads, query frames, K·%lld], not that shape", c->layer,
                       c->block, c->step, (long long)S);
    const int64_t H = t->shape[0], QF = t->shape[1], NG = t->shape[2];
    for (int i = 0; i < nh; i++)
        if (heads[i] < 0 || heads[i] >= H)
            return sf_fail(err, SF_E_ARG, "--heads: head %d out of range (the file has %lld heads)", heads[i], (long long)H);
    float *v = malloc(sizeof(float) * (size_t)(H * QF * NG));
    if (!v) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_tensor_to_f32(t, v);
    const int nsel = nh > 0 ? nh : (int)H;
    for (int64_t j = 0; j < NG; j++) {
        double a = 0;
        for (int i = 0; i < nsel; i++) {
            const int64_t h = nh > 0 ? heads[i] : i;
            for (int64_t q = 0; q < QF; q++) a += v[(h * QF + q) * NG + j];
        }
        m[j] = a / (double)(nsel * QF);
    }
    free(v);
    *K = NG / S;
    return SF_OK;
}

static void svg_panel(FILE *f, double x0, double y0, double cw, int gh, int gw, const double *m, double lo, double hi) {
    char col[16];
    for (int r = 0; r < gh; r++)
        for (int q = 0; q < gw; q++) {
            sf_taps_viridis(hi > lo ? (m[r * gw + q] - lo) / (hi - lo) : 0.5, col, sizeof col);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>row %d, col %d: %.6g</title></rect>\n",
                    x0 + q * cw, y0 + r * cw, cw + 0.05, cw + 0.05, col, r, q, m[r * gw + q]);
        }
}

sf_status sf_taps_tokens(const sf_tfile *tf, const int *layers, int nl, const int *heads, int nh, int fb, int fs,
                         FILE *svg, FILE *csv, sf_err *err) {
    const char *grid = sf_tfile_meta(tf, "token_grid");
    int gh = 0, gw = 0, k = 0;
    if (!grid || sscanf(grid, "%dx%d%n", &gh, &gw, &k) != 2 || grid[k] || gh < 1 || gw < 1)
        return sf_fail(err, SF_E_FORMAT, "no token_grid HxW in the file's metadata: tokens needs a file of sf-denoise "
                                         "--tap-mode tokens");
    const int64_t S = (int64_t)gh * gw;
    tok_cap *c = NULL;
    int n = 0;
    sf_status s = pick(tf, layers, nl, fb, fs, &c, &n, err);
    if (s) return s;
    if (n == 0) {
        free(c);
        return fb >= 0 ? sf_fail(err, SF_E_NOTFOUND, "no tokens.L*.b%d.s%d tensor of the layers asked", fb, fs)
                       : sf_fail(err, SF_E_NOTFOUND, "no tokens.L* tensors of the layers asked (sf-denoise --tap-mode tokens)");
    }
    int64_t Kmax = 0;
    double **m = calloc((size_t)n, sizeof *m);
    int64_t *K = calloc((size_t)n, sizeof *K);
    if (!m || !K) s = sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int i = 0; !s && i < n; i++) {
        if (c[i].t->ndim != 3 || c[i].t->shape[2] < 1)
            s = sf_fail(err, SF_E_SHAPE, "tokens.L%d.b%d.s%d: expected [heads, query frames, K·%lld]", c[i].layer,
                        c[i].block, c[i].step, (long long)S);
        else if (!(m[i] = malloc(sizeof(double) * (size_t)c[i].t->shape[2])))
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
        else s = token_means(&c[i], S, heads, nh, m[i], &K[i], err);
        if (!s && K[i] > Kmax) Kmax = K[i];
    }
    if (!s && csv) {
        fputs("layer,block,step,key_slot,row,col,mass\n", csv);
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < K[i] * S; j++)
                fprintf(csv, "%d,%d,%d,%lld,%lld,%lld,%.9g\n", c[i].layer, c[i].block, c[i].step, (long long)(j / S),
                        (long long)(j % S / gw), (long long)(j % gw), m[i][j]);
        if (ferror(csv)) s = sf_fail(err, SF_E_IO, "write failed");
    }
    if (!s && svg) {
        FILE *f = svg;
        const double cw = 240.0 / (gw > gh ? gw : gh), pw = cw * gw, ph = cw * gh, lm = 20, tm = 54, gap = 52;
        double W = lm + (double)Kmax * (pw + 30) + 20;
        if (W < 760) W = 760;
        const double Hh = tm + n * (ph + gap) + 10;
        fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                   "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
                W, Hh, W, Hh);
        fprintf(f, "<text x=\"%.1f\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Where the sink frames' attention "
                   "mass lands (%dx%d tokens a frame)</text>\n", lm, gh, gw);
        fprintf(f, "<text x=\"%.1f\" y=\"40\" font-size=\"11\">mean over %s and the forward's query frames; each layer "
                   "(row) on its own colour scale, viridis from its least to its most</text>\n",
                lm, nh > 0 ? "the heads asked" : "all heads");
        for (int i = 0; i < n; i++) {
            double lo = INFINITY, hi = -INFINITY;
            for (int64_t j = 0; j < K[i] * S; j++) lo = fmin(lo, m[i][j]), hi = fmax(hi, m[i][j]);
            const double y = tm + i * (ph + gap);
            for (int64_t kk = 0; kk < K[i]; kk++) {
                double tot = 0, peak = -INFINITY;
                for (int64_t j = 0; j < S; j++) tot += m[i][kk * S + j], peak = fmax(peak, m[i][kk * S + j]);
                const double x = lm + (double)kk * (pw + 30);
                fprintf(f, "<text class=\"panel\" x=\"%.1f\" y=\"%.1f\" font-size=\"11\" font-weight=\"bold\">layer %d, "
                           "key slot %lld (block %d, step %d)</text>\n",
                        x, y + 12, c[i].layer, (long long)kk, c[i].block, c[i].step);
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">mass %.4g in all, %.4g at the peak token</text>\n",
                        x, y + 25, tot, peak);
                svg_panel(f, x, y + 30, cw, gh, gw, m[i] + kk * S, lo, hi);
            }
        }
        fputs("</svg>\n", f);
        if (ferror(f)) s = sf_fail(err, SF_E_IO, "write failed");
    }
    for (int i = 0; m && i < n; i++) free(m[i]);
    free(m);
    free(K);
    free(c);
    return s;
}
