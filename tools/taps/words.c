/* words.c — `sf-taps words`: which words of the prompt each query frame looks at, from sf-denoise --tap-cross
 * (cross.L<l>.b<b>.s<s> [heads, query frames, real tokens]: each query frame's cross-attention mass over the prompt's
 * real tokens, padding excluded, rows summing to 1; stages/denoise/taps.h). Per selected layer, one forward (--forward
 * B:S, else the latest block's first step), the mass averaged over the selected heads: a CSV (layer, head, block,
 * step, query_frame, token, piece, mass) or an SVG with a row per (layer, query frame) and a column per token,
 * labelled with the prompt's SentencePiece pieces — the prompt (the file's fact, or --prompt) cleaned and encoded as
 * sf-encode does (stages/encode/tokenizer.h), with the tokenizer of the run's model folder (or --tokenizer). Tested
 * by tests/bats/sf-taps.bats. */
#define _POSIX_C_SOURCE 200809L
#include "taps_tokens.h"

#include "stages/encode/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest prompt encoded for labels: longer ones are cut as a model's text_len would cut them. */
#define WORDS_SEQ_MAX 4096

typedef struct words {
    sf_taps_cap *c;
    int n;
    int64_t R;     /* real tokens (every capture's last dimension) */
    double **m;    /* [n][QF·R]: mean over the heads asked */
    int64_t *QF;   /* query frames of each capture */
    int64_t *f0;   /* its first query frame (the facts' start_frame; 0 when they do not say) */
    char **piece;  /* [R] labels, owned */
    int positional; /* the labels are positions (#j): no pieces to join into words */
    int by_word;   /* the columns are words (pieces joined), not tokens */
} words;

static void words_free(words *w) {
    for (int i = 0; w->m && i < w->n; i++) free(w->m[i]);
    for (int64_t j = 0; w->piece && j < w->R; j++) free(w->piece[j]);
    free(w->m), free(w->QF), free(w->f0), free(w->piece), free(w->c);
    memset(w, 0, sizeof *w);
}

/* w->piece[0..R): the prompt's pieces when the tokenizer and prompt give exactly R tokens (or more, cut to R as the
 * run's text_len cut them: R − 1 pieces and the eos), else "#j" with a warning saying why. */
static sf_status label(const sf_tfile *tf, const sf_taps_words_opts *o, words *w, sf_err *err) {
    const char *prompt = o->prompt ? o->prompt : sf_tfile_meta(tf, "prompt"), *md = sf_tfile_meta(tf, "model_dir");
    char path[4200], why[4400] = "";
    if (o->tokenizer) snprintf(path, sizeof path, "%s", o->tokenizer);
    else if (md) sf_tokenizer_default_path(md, path, sizeof path);
    else path[0] = 0;
    const int64_t R = w->R;
    if (!(w->piece = calloc((size_t)R, sizeof *w->piece))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_tokenizer *tok = NULL;
    int64_t *ids = NULL, *mask = NULL;
    size_t nt = 0;
    if (!prompt || !prompt[0]) snprintf(why, sizeof why, "the file records no prompt (give --prompt)");
    else if (!path[0]) snprintf(why, sizeof why, "the file names no model folder (give --tokenizer)");
    else {
        sf_err e2 = {{0}};
        if (!(ids = malloc(sizeof *ids * WORDS_SEQ_MAX)) || !(mask = malloc(sizeof *mask * WORDS_SEQ_MAX))) {
            free(ids), free(mask);
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        }
        if (sf_tokenizer_load(path, &tok, &e2) ||
            sf_tokenizer_prompt(tok, prompt, strlen(prompt), WORDS_SEQ_MAX, ids, mask, &nt, NULL, &e2))
            snprintf(why, sizeof why, "%s", e2.msg);
        else if ((int64_t)nt < R)
            snprintf(why, sizeof why, "the prompt is %zu tokens, the taps %lld (another prompt than the run's?)", nt,
                     (long long)R);
        else if ((int64_t)nt > R)
            sf_warn("the prompt is %zu tokens, the taps %lld: labelled as the run's text_len cut it (%lld pieces and the end)",
                    nt, (long long)R, (long long)(R - 1));
    }
    for (int64_t j = 0; j < R; j++) {
        char b[24];
        const char *p = NULL;
        if (!why[0]) p = sf_tokenizer_piece(tok, (int32_t)(j == R - 1 ? ids[nt - 1] : ids[j])); /* the last: eos */
        if (!p) snprintf(b, sizeof b, "#%lld", (long long)j), p = b;
        if (!(w->piece[j] = strdup(p))) {
            free(ids), free(mask), sf_tokenizer_destroy(&tok);
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        }
    }
    if (why[0]) sf_warn("tokens labelled by position: %s", why);
    w->positional = why[0] != 0;
    free(ids), free(mask);
    sf_tokenizer_destroy(&tok);
    return SF_OK;
}

/* "▁" (U+2581): a SentencePiece piece that starts a word */
#define SP_SPACE "\xe2\x96\x81"

/* --by-word: the columns become words — a word is a piece that starts with ▁ (or the first, or the end-of-text
 * token) and the pieces after it that do not; its mass is theirs summed, its label their text joined without the ▁. */
static sf_status join_words(words *w, sf_err *err) {
    const int64_t R = w->R;
    int64_t *g = malloc(sizeof *g * (size_t)R), nw = 0;
    char **lab = calloc((size_t)R, sizeof *lab);
    sf_status s = g && lab ? SF_OK : sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int64_t j = 0; !s && j < R; j++) {
        const char *p = w->piece[j];
        const int start = j == 0 || !strncmp(p, SP_SPACE, 3) || j == R - 1; /* the last: the end of text */
        if (start) nw++;
        g[j] = nw - 1;
        const char *t = start && !strncmp(p, SP_SPACE, 3) ? p + 3 : p;
        char *old = lab[nw - 1], *nl = malloc((old ? strlen(old) : 0) + strlen(t) + 1);
        if (!nl) s = sf_fail(err, SF_E_NOMEM, "out of memory");
        else sprintf(nl, "%s%s", old ? old : "", t), free(old), lab[nw - 1] = nl;
    }
    for (int64_t k = 0; !s && k < nw; k++) /* a lone ▁ (a space before text the vocabulary lacks) stays visible */
        if (!lab[k][0]) {
            free(lab[k]);
            if (!(lab[k] = strdup(SP_SPACE))) s = sf_fail(err, SF_E_NOMEM, "out of memory");
        }
    for (int i = 0; !s && i < w->n; i++) {
        double *m = calloc((size_t)(w->QF[i] * nw), sizeof *m);
        if (!m) {
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
            break;
        }
        for (int64_t q = 0; q < w->QF[i]; q++)
            for (int64_t j = 0; j < R; j++) m[q * nw + g[j]] += w->m[i][q * R + j];
        free(w->m[i]), w->m[i] = m;
    }
    if (!s) {
        for (int64_t j = 0; j < R; j++) free(w->piece[j]);
        free(w->piece), w->piece = lab, lab = NULL, w->R = nw, w->by_word = 1;
    }
    for (int64_t j = 0; lab && j < R; j++) free(lab[j]);
    free(lab), free(g);
    return s;
}

static sf_status words_load(const sf_tfile *tf, const sf_taps_words_opts *o, words *w, sf_err *err) {
    memset(w, 0, sizeof *w);
    sf_status s = sf_taps_pick(tf, "cross", o->sel.layers, o->sel.nl, o->sel.fb, o->sel.fs, &w->c, &w->n, err);
    if (s) return s;
    if (w->n == 0)
        return o->sel.fb >= 0 ? sf_fail(err, SF_E_NOTFOUND, "no cross.L*.b%d.s%d tensor of the layers asked", o->sel.fb, o->sel.fs)
                          : sf_fail(err, SF_E_NOTFOUND, "no cross.L* taps of the layers asked (sf-denoise --tap-cross)");
    for (int i = 0; i < w->n; i++) { /* every shape once, before anything is allocated */
        const sf_tensor *x = w->c[i].t;
        if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1 || x->shape[2] > WORDS_SEQ_MAX ||
            (i && x->shape[2] != w->R))
            return sf_fail(err, SF_E_SHAPE, "cross.L%d.b%d.s%d: expected [heads, query frames, real tokens] with the "
                                            "same tokens in every layer, not that shape",
                           w->c[i].layer, w->c[i].block, w->c[i].step);
        w->R = x->shape[2];
        for (int h = 0; h < o->sel.nh; h++)
            if (o->sel.heads[h] < 0 || o->sel.heads[h] >= x->shape[0])
                return sf_fail(err, SF_E_ARG, "--heads: head %d out of range (the file has %lld heads)", o->sel.heads[h],
                               (long long)x->shape[0]);
    }
    if (!(w->m = calloc((size_t)w->n, sizeof *w->m)) || !(w->QF = calloc((size_t)w->n, sizeof *w->QF)) ||
        !(w->f0 = calloc((size_t)w->n, sizeof *w->f0)))
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int i = 0; i < w->n; i++) {
        const sf_tensor *x = w->c[i].t;
        const int64_t H = x->shape[0], QF = x->shape[1], R = w->R;
        const int nsel = o->sel.nh > 0 ? o->sel.nh : (int)H;
        float *v = malloc(sizeof(float) * (size_t)(H * QF * R));
        if (!v || !(w->m[i] = malloc(sizeof(double) * (size_t)(QF * R)))) {
            free(v);
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        }
        sf_tensor_to_f32(x, v);
        for (int64_t q = 0; q < QF; q++)
            for (int64_t j = 0; j < R; j++) {
                double a = 0;
                for (int k = 0; k < nsel; k++) a += v[((o->sel.nh > 0 ? o->sel.heads[k] : k) * QF + q) * R + j];
                w->m[i][q * R + j] = a / nsel;
            }
        free(v);
        w->QF[i] = QF;
        sf_taps_forward_facts(tf, w->c[i].layer, w->c[i].block, w->c[i].step, &w->f0[i], NULL, 0);
    }
    if ((s = label(tf, o, w, err)) || !o->by_word) return s;
    if (w->positional) {
        sf_warn("--by-word: no pieces to join (the tokens are labelled by position): one column a token");
        return SF_OK;
    }
    return join_words(w, err);
}

static void csv_field(FILE *f, const char *s) { /* RFC 4180: quoted, quotes doubled, control characters dropped */
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputs("\"\"", f);
        else if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

/* Tokens a panel of the figure: at 22 px a column it is 1196 px wide, within the report's 1400, whatever the prompt's
 * length (a long prompt's tokens wrap into panels, one under another, rather than columns too narrow to label). */
#define WORDS_PANEL 48

/* The figure: the pieces over the columns (rotated), a row per (layer, query frame), each cell's <title> its
 * numbers; viridis over [0, the largest mass shown]. More than WORDS_PANEL tokens: a panel each WORDS_PANEL of them,
 * its rows labelled again and its first and last token numbers over them. */
static void words_svg(const words *w, FILE *f) {
    const int64_t R = w->R, np = (R + WORDS_PANEL - 1) / WORDS_PANEL, P = R < WORDS_PANEL ? R : WORDS_PANEL;
    int rows = 0;
    for (int i = 0; i < w->n; i++) rows += (int)w->QF[i];
    size_t longest = 1; /* the rotated labels' room: ~6.5 px a character at 11 px, times sin 60° */
    for (int64_t j = 0; j < R; j++) longest = strlen(w->piece[j]) > longest ? strlen(w->piece[j]) : longest;
    const double cw = 22, ch = 16, x0 = 110, lab = fmin(150, 5.7 * (double)longest), gap = 24;
    const double pan = lab + ch * rows + gap; /* a panel's height: its labels, its rows, the space under them */
    double hi = 0;
    for (int i = 0; i < w->n; i++)
        for (int64_t j = 0; j < w->QF[i] * R; j++) hi = fmax(hi, w->m[i][j]);
    const double W = fmax(640, x0 + cw * (double)P + 30), H = 64 + pan * (double)np - gap + 40;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
               "<text x=\"20\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Which words each frame looks at "
               "(cross-attention mass over the prompt's %lld %s)</text>\n"
               "<text x=\"20\" y=\"40\" font-size=\"11\">each row a query frame of a layer (mean over its tokens and the "
               "heads; a row sums to 1), viridis from 0 to %.3g</text>\n",
            W, H, W, H, (long long)R, w->by_word ? "words" : "tokens", hi);
    for (int64_t p = 0; p < np; p++) {
        const int64_t j0 = p * WORDS_PANEL, j1 = j0 + WORDS_PANEL < R ? j0 + WORDS_PANEL : R;
        const double y0 = 64 + lab + pan * (double)p; /* the panel's first row */
        if (np > 1)
            fprintf(f, "<text class=\"panel\" x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%s %lld–%lld"
                       "</text>\n", x0 - 6, y0 - 6, w->by_word ? "words" : "tokens", (long long)j0, (long long)(j1 - 1));
        for (int64_t j = j0; j < j1; j++) {
            const double x = x0 + cw * ((double)(j - j0) + 0.5), y = y0 - 6;
            fprintf(f, "<text class=\"piece\" x=\"%.1f\" y=\"%.1f\" font-size=\"11\" transform=\"rotate(-60 %.1f %.1f)\">", x, y,
                    x, y);
            sf_taps_xml_text(f, w->piece[j]);
            fputs("</text>\n", f);
        }
        int r = 0;
        for (int i = 0; i < w->n; i++)
            for (int64_t q = 0; q < w->QF[i]; q++, r++) {
                const double y = y0 + ch * r;
                fprintf(f, "<text class=\"row\" x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">layer %d, frame %lld"
                           "</text>\n", x0 - 6, y + ch - 4, w->c[i].layer, (long long)(w->f0[i] + q));
                for (int64_t j = j0; j < j1; j++) {
                    const double v = w->m[i][q * R + j];
                    char col[16];
                    sf_taps_viridis(hi > 0 ? v / hi : 0, col, sizeof col);
                    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>layer %d, frame %lld, ",
                            x0 + cw * (double)(j - j0), y, cw, ch, col, w->c[i].layer, (long long)(w->f0[i] + q));
                    sf_taps_xml_text(f, w->piece[j]);
                    fprintf(f, ": %.6g</title></rect>\n", v);
                }
            }
    }
    fprintf(f, "<text x=\"20\" y=\"%.1f\" font-size=\"10\">block %d, step %d of each layer; --layers, --heads, --forward "
               "choose</text>\n</svg>\n",
            H - 16, w->c[0].block, w->c[0].step);
}

sf_status sf_taps_words(const sf_tfile *tf, const sf_taps_words_opts *o, FILE *svg, FILE *csv, sf_err *err) {
    words w;
    sf_status s = words_load(tf, o, &w, err);
    if (!s && csv) {
        fputs(w.by_word ? "layer,head,block,step,query_frame,word,text,mass\n" : "layer,head,block,step,query_frame,token,piece,mass\n",
              csv);
        for (int i = 0; i < w.n; i++)
            for (int64_t q = 0; q < w.QF[i]; q++)
                for (int64_t j = 0; j < w.R; j++) {
                    fprintf(csv, "%d,-1,%d,%d,%lld,%lld,", w.c[i].layer, w.c[i].block, w.c[i].step, (long long)(w.f0[i] + q),
                            (long long)j);
                    csv_field(csv, w.piece[j]);
                    fprintf(csv, ",%.9g\n", w.m[i][q * w.R + j]);
                }
        if (ferror(csv)) s = sf_fail(err, SF_E_IO, "write failed");
    }
    if (!s && svg) {
        words_svg(&w, svg);
        if (ferror(svg)) s = sf_fail(err, SF_E_IO, "write failed");
    }
    words_free(&w);
    return s;
}
