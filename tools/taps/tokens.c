/* tokens.c — `sf-taps tokens`: where in the sink frames the attention mass lands, from sf-denoise's
 * --tap-mode tokens files (tokens.L<l>.b<b>.s<s> [heads, query frames, K·S], the facts token_grid "HxW" and
 * token_frames K; stages/denoise/taps.h). Per selected layer, one forward (--forward B:S, else the latest
 * block's first step), the mass of each token of key slot k < K averaged over the selected heads and the
 * forward's query frames (--per-head: one map per head): a CSV (layer, head, block, step, key_slot, key_frame, row,
 * col, mass; head -1 for the mean, key_frame -1 when the file's facts do not say) or an SVG of one H×W heatmap
 * per layer and key slot (one slot: the layers in rows of 5; more: a row a layer; each map a small PNG, a
 * pixel a token) (viridis, each layer on its own scale, its total and peak in the label) — with --frames over the
 * video (sf-decode's PNG folder, or one image), its opacity growing with the mass — also inline in
 * `sf-taps report --tokens` (compare.c). The same input gives the same bytes. Tested by tests/bats/sf-taps.bats
 * and sf-taps-compare.bats. */
#define _POSIX_C_SOURCE 200809L
#include "taps_tokens.h"
#include "tap_mass.h"

#include "stages/decode/image.h" /* sf_image_load: the frames behind the maps */
#include "stages/decode/video.h" /* sf_png_encode (libpng) */

#include <cjson/cJSON.h>
#include <errno.h>
#include <sys/stat.h>
#include <sodium.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the capture of each layer this command shows: the forward asked for, else the latest block's first step */
static int better(const sf_taps_cap *a, const sf_taps_cap *b) {
    return a->block > b->block || (a->block == b->block && a->step < b->step);
}

/* x kept as its layer's capture in (*c)[0..*n): appended for a new layer, or in place of a worse one. The slot it
 * went to, -1 when the one kept is better, -2 out of memory. */
static int cap_keep(sf_taps_cap **c, int *n, const sf_taps_cap *x) {
    int j = 0;
    while (j < *n && (*c)[j].layer != x->layer) j++;
    if (j < *n) {
        if (!better(x, &(*c)[j])) return -1;
        (*c)[j] = *x;
        return j;
    }
    sf_taps_cap *p = realloc(*c, sizeof *p * (size_t)(*n + 1));
    if (!p) return -2;
    *c = p, p[*n] = *x;
    return (*n)++;
}

sf_status sf_taps_pick(const sf_tfile *tf, const char *prefix, const int *layers, int nl, int fb, int fs,
                       sf_taps_cap **out, int *n_out, sf_err *err) {
    sf_taps_cap *c = NULL;
    int n = 0;
    const size_t pl = strlen(prefix);
    for (size_t i = 0; i < tf->n; i++) {
        const char *nm = tf->entries[i].name;
        sf_taps_cap x = {0, 0, 0, NULL, -1};
        int k = 0;
        if (strncmp(nm, prefix, pl) != 0 || sscanf(nm + pl, ".L%d.b%d.s%d%n", &x.layer, &x.block, &x.step, &k) != 3 ||
            nm[pl + k])
            continue;
        int want = nl == 0;
        for (int j = 0; j < nl && !want; j++) want = layers[j] == x.layer;
        if (!want || (fb >= 0 && (x.block != fb || x.step != fs))) continue;
        x.t = &tf->entries[i].t;
        if (cap_keep(&c, &n, &x) == -2) {
            free(c);
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        }
    }
    for (int i = 1; i < n; i++) /* by layer */
        for (int j = i; j > 0 && c[j - 1].layer > c[j].layer; j--) {
            sf_taps_cap t = c[j];
            c[j] = c[j - 1], c[j - 1] = t;
        }
    *out = c, *n_out = n;
    return SF_OK;
}

/* m[K·S]: the mass of each token of the K key slots, mean over the heads asked (all when nh = 0) and the query frames.
 * The tensor's shape is load_tokens' checked [heads, query frames, K·S]. */
static sf_status token_means(const sf_taps_cap *c, int64_t S, const int *heads, int nh, double *m, int64_t *K, sf_err *err) {
    const sf_tensor *t = c->t;
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

/* Blue (below 0) – white – red (above 0) at t ∈ [−1, 1] (clamped; not finite: white), for differences. */
static void diverging_rgb(double t, unsigned char rgb[3]) {
    static const unsigned char lo[3] = {33, 102, 172}, mid[3] = {247, 247, 247}, hi[3] = {178, 24, 43};
    if (!isfinite(t)) t = 0;
    t = t < -1 ? -1 : t > 1 ? 1 : t;
    const unsigned char *e = t < 0 ? lo : hi;
    for (int k = 0; k < 3; k++) rgb[k] = (unsigned char)lround(mid[k] + (e[k] - mid[k]) * fabs(t));
}

/* PNG bytes as a data URI's base64 (malloc'd, NUL-terminated), NULL when out of memory. */
static char *base64_of(const unsigned char *png, size_t len) {
    const size_t bl = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(bl);
    if (b64) sodium_bin2base64(b64, bl, png, len, sodium_base64_VARIANT_ORIGINAL);
    return b64;
}

/* How opaque the peak token is over a video frame (--frames); the least massive token is transparent. */
#define OVERLAY_PEAK_ALPHA 0.85

enum { PANEL_MAP, PANEL_DIFF, PANEL_OVERLAY };

/* One panel: a gw × gh PNG (a pixel a token; viridis over [lo, hi], or PANEL_DIFF the diverging scale over ±hi,
 * or PANEL_OVERLAY viridis with an alpha channel, alpha = OVERLAY_PEAK_ALPHA · the same t, to lie over a frame),
 * embedded as a data URI and drawn cw per pixel without smoothing — a few KB a panel where a rect a token
 * would be ~170 KB at 30×52. The numbers themselves: the CSV of sf-taps tokens. */
static sf_status svg_panel(FILE *f, double x0, double y0, double cw, int gh, int gw, const double *m, double lo, double hi,
                           int kind, sf_err *err) {
    const int ch = kind == PANEL_OVERLAY ? 4 : 3;
    unsigned char *px = malloc((size_t)gh * (size_t)gw * (size_t)ch), *png = NULL;
    char *b64 = NULL;
    size_t len = 0;
    if (!px) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int64_t j = 0; j < (int64_t)gh * gw; j++) {
        const double t = hi > lo ? (m[j] - lo) / (hi - lo) : 0.5;
        if (kind == PANEL_DIFF) diverging_rgb(hi > 0 ? m[j] / hi : 0, px + ch * j);
        else sf_taps_viridis_rgb(t, px + ch * j);
        if (kind == PANEL_OVERLAY) px[ch * j + 3] = (unsigned char)lround(255.0 * OVERLAY_PEAK_ALPHA * (t < 0 ? 0 : t > 1 ? 1 : t));
    }
    sf_status s = kind == PANEL_OVERLAY ? sf_png_encode_rgba(px, gw, gh, &png, &len, err) : sf_png_encode(px, gw, gh, &png, &len, err);
    if (!s && !(b64 = base64_of(png, len))) s = sf_fail(err, SF_E_NOMEM, "out of memory");
    if (!s)
        fprintf(f, "<image class=\"tokmap\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" preserveAspectRatio=\"none\" "
                   "style=\"image-rendering:pixelated\" href=\"data:image/png;base64,%s\"/>\n",
                x0, y0, cw * gw, cw * gh, b64);
    free(px), free(png), free(b64);
    return s;
}

/* ---- the video behind the maps (--frames) ---- */

/* The frames embedded so far in one figure (each once, in <defs>, then <use>d by every panel over it). */
typedef struct backdrop {
    const char *frames, *id; /* the image file or folder; the figure's id prefix */
    int dir;                 /* frames is a folder of frame_%05d.png */
    int64_t r;               /* video frames a latent frame after the first (dir: backdrop_rate) */
    int64_t *done;           /* video frame indices embedded (-1: the one image file) */
    int n, cap;
} backdrop;

/* The video frame behind latent frame f: 0 for f = 0, else r(f − 1) + 1 — the first of the r video frames a causal
 * video VAE decodes from latent frame f ≥ 1 (the Wan VAE and TAEHV as the reference trims it: r = 4, 4f − 3). */
static int64_t video_frame_of(int64_t f, int64_t r) { return f <= 0 ? 0 : r * (f - 1) + 1; }

/* r of a folder: a video of T latent frames (the facts' num_frames) decodes to 1 + r(T − 1) frames, so the N frames
 * the folder holds (frame_00000.png on, consecutive) say r — 2^(temporal upsamplers) of whatever VAE made them. A
 * folder that does not fit (T unknown, under 2, or N − 1 not a multiple of T − 1: a partial or foreign video): the
 * Wan VAE's 4, with a warning when the count says otherwise (once a folder). */
static int64_t backdrop_rate(const char *dir, int64_t T) {
    int64_t n = 0;
    char path[4200];
    struct stat st;
    for (; n < 1000000; n++) {
        snprintf(path, sizeof path, "%s/" SF_VIDEO_FRAME_NAME, dir, (long long)n);
        if (stat(path, &st) != 0) break;
    }
    if (T >= 2 && n >= 2 && (n - 1) % (T - 1) == 0) return (n - 1) / (T - 1);
    /* said once a folder: a report reads each run's folder for its maps, their difference and its thumbnails */
    static char said[16][512];
    static int n_said;
    int again = 0;
    for (int i = 0; i < n_said && !again; i++) again = !strncmp(said[i], dir, sizeof said[i] - 1);
    if (!again && n_said < 16) snprintf(said[n_said++], sizeof said[0], "%s", dir);
    if (T >= 2 && n >= 1 && !again)
        sf_warn("--frames %s: %lld frames are not 1 + r·%lld for the run's %lld latent frames: taking the Wan VAE's "
                "r = 4 (latent frame f over video frame 4f − 3)", dir, (long long)n, (long long)(T - 1), (long long)T);
    return 4;
}

/* A picture as a PNG data URI's base64 (*b64, malloc'd): the file at path, resized to W × H (H ≤ 0: W wide in its own
 * aspect ratio; PIL's bilinear) when it is larger than that (else as it is: the browser scales it); *w, *h what was encoded. grid_h/grid_w > 0: warn
 * when its aspect ratio is not the token grid's (it is drawn stretched to it). A missing or unreadable file:
 * sf_image_load's one-line error naming it. */
static sf_status picture_b64(const char *path, int64_t W, int64_t H, int grid_h, int grid_w, char **b64, int64_t *w,
                             int64_t *h, sf_err *err) {
    sf_image im = {0}, sm = {0};
    unsigned char *png = NULL;
    size_t len = 0;
    *b64 = NULL;
    sf_status s = sf_image_load(path, &im, err);
    if (!s) {
        const double a = (double)im.w / (double)im.h, g = (double)grid_w / (grid_h > 0 ? grid_h : 1);
        if (grid_h > 0 && grid_w > 0 && fabs(a - g) > 0.02 * g)
            sf_warn("%s is %lldx%lld, the token grid %dx%d: the frame is stretched to the grid", path, (long long)im.w,
                    (long long)im.h, grid_h, grid_w);
        if (H <= 0) H = lround((double)W * (double)im.h / (double)im.w), H = H < 1 ? 1 : H; /* W wide, its aspect */
        if (im.w > W || im.h > H) s = sf_image_resize_bilinear(&im, W, H, &sm, err);
        else sm = im, im = (sf_image){0};
    }
    if (!s) s = sf_png_encode(sm.rgb, (int)sm.w, (int)sm.h, &png, &len, err);
    if (!s && !(*b64 = base64_of(png, len))) s = sf_fail(err, SF_E_NOMEM, "out of memory");
    if (!s) *w = sm.w, *h = sm.h;
    sf_image_free(&im), sf_image_free(&sm), free(png);
    return s;
}

static void frame_path(const backdrop *b, int64_t p, char *path, size_t n) {
    if (b->dir) snprintf(path, n, "%s/" SF_VIDEO_FRAME_NAME, b->frames, (long long)p);
    else snprintf(path, n, "%s", b->frames);
}

/* Draw the frame behind a panel of key frame f at (x, y), pw × ph: embedded at the first use (at most twice the
 * panel's size: sharp on a dense screen; a frame of another aspect ratio than the token grid is stretched, with a
 * warning), then a <use>. */
static sf_status backdrop_use(FILE *out, backdrop *b, int64_t f, double x, double y, double pw, double ph, int gh, int gw,
                              sf_err *err) {
    if (b->dir && f == SF_TAPS_KF_KEPT)
        return sf_fail(err, SF_E_ARG, "--frames %s: a key slot holds a compressed cache's kept tokens (sf-denoise --kv-compress or "
                                      "--pc-budget; mixed frames): "
                                      "no one video frame to draw it over (tap fewer key frames: sf-denoise "
                                      "--tap-token-frames; or give one image file)", b->frames);
    if (b->dir && f < 0)
        return sf_fail(err, SF_E_ARG, "--frames %s: the tokens file does not say which frame a key slot holds (no "
                                      "forwards facts): give one image file instead of a folder", b->frames);
    const int64_t p = b->dir ? video_frame_of(f, b->r) : -1;
    int seen = 0;
    for (int i = 0; i < b->n && !seen; i++) seen = b->done[i] == p;
    if (!seen) {
        char path[4200], *b64 = NULL;
        int64_t w, h;
        frame_path(b, p, path, sizeof path);
        sf_status s = picture_b64(path, lround(2 * pw), lround(2 * ph), gh, gw, &b64, &w, &h, err);
        if (!s && b->n == b->cap) {
            int64_t *d = realloc(b->done, sizeof *d * (size_t)(b->cap ? 2 * b->cap : 4));
            if (!d) s = sf_fail(err, SF_E_NOMEM, "out of memory");
            else b->done = d, b->cap = b->cap ? 2 * b->cap : 4;
        }
        if (!s) {
            b->done[b->n++] = p;
            fprintf(out, "<defs><image id=\"%s-bg%lld\" class=\"frame\" x=\"0\" y=\"0\" width=\"%.2f\" height=\"%.2f\" "
                         "preserveAspectRatio=\"none\" href=\"data:image/png;base64,%s\"/></defs>\n",
                    b->id, (long long)p, pw, ph, b64);
        }
        free(b64);
        if (s) return s;
    }
    fprintf(out, "<use href=\"#%s-bg%lld\" x=\"%.2f\" y=\"%.2f\"/>\n", b->id, (long long)p, x, y);
    return SF_OK;
}

/* A file's maps: per selected layer (ascending) the capture used and its means over heads and query frames. */
typedef struct tokmap {
    int gh, gw, n;
    int64_t S, Kmax;
    sf_taps_cap *c;
    double **m;
    int64_t *K;
    int64_t **frame; /* [n][K]: the absolute latent frame in each key slot (the facts' forwards), -1 unknown */
    int64_t T;        /* the run's latent frames (the facts' num_frames), 0 unknown */
} tokmap;

static void tokmap_free(tokmap *t) {
    for (int i = 0; t->m && i < t->n; i++) free(t->m[i]);
    for (int i = 0; t->frame && i < t->n; i++) free(t->frame[i]);
    free(t->m), free(t->K), free(t->c), free(t->frame);
    memset(t, 0, sizeof *t);
}

/* The entry of forward (b, st) in a parsed "forwards" list, NULL when absent; *keys the key frames layer attended in it:
 * its layer_key_frames list when it attended fewer than the window (--sink-ablate), else key_frames (NULL: none). */
static const cJSON *forward_entry(const cJSON *a, int layer, int b, int st, const cJSON **keys) {
    const cJSON *o;
    *keys = NULL;
    cJSON_ArrayForEach(o, a) {
        const cJSON *jb = cJSON_GetObjectItem(o, "block"), *js = cJSON_GetObjectItem(o, "step");
        if (!cJSON_IsNumber(jb) || !cJSON_IsNumber(js) || jb->valuedouble != b || js->valuedouble != st) continue;
        char nm[16];
        snprintf(nm, sizeof nm, "%d", layer);
        const cJSON *own = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "layer_key_frames"), nm);
        *keys = cJSON_IsArray(own) ? own : cJSON_GetObjectItem(o, "key_frames");
        return o;
    }
    return NULL;
}

void sf_taps_forward_facts(const sf_tfile *tf, int layer, int b, int st, int64_t *start, int64_t *kf, int64_t K) {
    if (start) *start = 0;
    for (int64_t k = 0; k < K; k++) kf[k] = -1;
    const char *fw = sf_tfile_meta(tf, "forwards");
    cJSON *a = fw ? cJSON_Parse(fw) : NULL;
    const cJSON *ka, *o = forward_entry(a, layer, b, st, &ka);
    const cJSON *sf = o ? cJSON_GetObjectItem(o, "start_frame") : NULL;
    if (start && cJSON_IsNumber(sf) && sf->valuedouble >= 0 && sf->valuedouble < 1e9) *start = (int64_t)sf->valuedouble;
    for (int64_t k = 0; k < K && cJSON_IsArray(ka); k++) {
        const cJSON *e = cJSON_GetArrayItem(ka, (int)k);
        if (cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble < 1e9) kf[k] = (int64_t)e->valuedouble;
        else if (cJSON_IsNumber(e) && e->valuedouble == -1) kf[k] = SF_TAPS_KF_KEPT;
    }
    cJSON_Delete(a);
}

int64_t sf_taps_forward_kept(const sf_tfile *tf, int layer, int b, int st, int64_t *frame, double *tokens, int64_t cap) {
    const char *fw = sf_tfile_meta(tf, "forwards");
    if (!fw || !strstr(fw, "kept_frames")) return 0;
    cJSON *a = cJSON_Parse(fw);
    const cJSON *ka, *o = forward_entry(a, layer, b, st, &ka), *pair;
    char nm[16];
    snprintf(nm, sizeof nm, "%d", layer);
    const cJSON *h = o ? cJSON_GetObjectItem(cJSON_GetObjectItem(o, "kept_frames"), nm) : NULL;
    int64_t n = 0;
    cJSON_ArrayForEach(pair, h) {
        const cJSON *f = cJSON_GetArrayItem(pair, 0), *t = cJSON_GetArrayItem(pair, 1);
        if (n < cap && cJSON_IsNumber(f) && cJSON_IsNumber(t) && f->valuedouble >= 0 && f->valuedouble < 1e9 &&
            t->valuedouble > 0)
            frame[n] = (int64_t)f->valuedouble, tokens[n++] = t->valuedouble;
    }
    cJSON_Delete(a);
    return n;
}

void sf_taps_forward_keys_text(const sf_tfile *tf, int layer, int b, int st, char *out, size_t n) {
    snprintf(out, n, "%s", "(not recorded)");
    const char *fw = sf_tfile_meta(tf, "forwards");
    cJSON *a = fw ? cJSON_Parse(fw) : NULL;
    const cJSON *ka;
    char *t = forward_entry(a, layer, b, st, &ka) && ka ? cJSON_PrintUnformatted(ka) : NULL;
    if (t) snprintf(out, n, "%s", t);
    free(t);
    cJSON_Delete(a);
}

/* "HxW" → *gh, *gw (1 when well formed). */
static int parse_grid(const char *g, int *gh, int *gw) {
    int k = 0;
    return g && sscanf(g, "%dx%d%n", gh, gw, &k) == 2 && !g[k] && *gh >= 1 && *gw >= 1 && *gh <= 65535 && *gw <= 65535;
}

/* The per-map arrays of t's n captures (the maps themselves come one by one). */
static sf_status tokmap_alloc(tokmap *t, sf_err *err) {
    t->m = calloc((size_t)t->n, sizeof *t->m);
    t->K = calloc((size_t)t->n, sizeof *t->K);
    t->frame = calloc((size_t)t->n, sizeof *t->frame);
    return t->m && t->K && t->frame ? SF_OK : sf_fail(err, SF_E_NOMEM, "out of memory");
}

/* --per-head: each picked capture becomes one map per head asked (all: H, its heads dimension), in head order, each
 * item's extra (fsl) copied. Heads out of range are the computations' errors. */
static sf_status expand_heads(tokmap *t, const sf_taps_tok_opts *o, int64_t **extra, sf_err *err) {
    if (!o->per_head) return SF_OK;
    int n = 0;
    for (int i = 0; i < t->n; i++) n += o->sel.nh > 0 ? o->sel.nh : (int)t->c[i].t->shape[t->c[i].t->ndim == 4 ? 1 : 0];
    sf_taps_cap *c = malloc(sizeof *c * (size_t)(n ? n : 1));
    int64_t *x = extra ? malloc(sizeof *x * (size_t)(n ? n : 1)) : NULL;
    if (!c || (extra && !x)) {
        free(c), free(x);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    for (int i = 0, k = 0; i < t->n; i++) {
        const int H = o->sel.nh > 0 ? o->sel.nh : (int)t->c[i].t->shape[t->c[i].t->ndim == 4 ? 1 : 0];
        for (int h = 0; h < H; h++, k++) {
            c[k] = t->c[i], c[k].head = o->sel.nh > 0 ? o->sel.heads[h] : h;
            if (x) x[k] = (*extra)[i];
        }
    }
    free(t->c), t->c = c, t->n = n;
    if (extra) free(*extra), *extra = x;
    return SF_OK;
}

/* The maps of a tokens file (sf-denoise --tap-mode tokens). */
static sf_status load_tokens(const sf_tfile *tf, const sf_taps_tok_opts *o, tokmap *t, sf_err *err) {
    const int fb = o->sel.fb, fs = o->sel.fs;
    sf_status s = sf_taps_pick(tf, "tokens", o->sel.layers, o->sel.nl, fb, fs, &t->c, &t->n, err);
    if (s) return s;
    if (t->n == 0)
        return fb >= 0 ? sf_fail(err, SF_E_NOTFOUND, "no tokens.L*.b%d.s%d tensor of the layers asked", fb, fs)
                       : sf_fail(err, SF_E_NOTFOUND, "no tokens.L* tensors of the layers asked (sf-denoise --tap-mode tokens)");
    for (int i = 0; i < t->n; i++) { /* every tensor's shape, once, before heads are split or anything is allocated */
        const sf_tensor *x = t->c[i].t;
        if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1 || x->shape[2] % t->S != 0)
            return sf_fail(err, SF_E_SHAPE, "tokens.L%d.b%d.s%d: expected [heads, query frames, K·%lld], not that shape",
                           t->c[i].layer, t->c[i].block, t->c[i].step, (long long)t->S);
    }
    if ((s = expand_heads(t, o, NULL, err))) return s;
    s = tokmap_alloc(t, err);
    for (int i = 0; !s && i < t->n; i++) {
        const sf_taps_cap *c = &t->c[i];
        if (!(t->m[i] = malloc(sizeof(double) * (size_t)c->t->shape[2])))
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
        else s = token_means(c, t->S, c->head >= 0 ? &c->head : o->sel.heads, c->head >= 0 ? 1 : o->sel.nh, t->m[i], &t->K[i], err);
        if (!s && !(t->frame[i] = malloc(sizeof(int64_t) * (size_t)(t->K[i] > 0 ? t->K[i] : 1))))
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
        if (!s) sf_taps_forward_facts(tf, c->layer, c->block, c->step, NULL, t->frame[i], t->K[i]);
        if (!s && t->K[i] > t->Kmax) t->Kmax = t->K[i];
    }
    return s;
}

/* m[K·S] from full logits ([1, H, Lq, Lk] or [H, Lq, Lk]): each row's softmax mass of its first K·S keys
 * (sf_tap_row_mass_cpu, single-token groups: what sf-denoise's CPU backend keeps), mean over the heads asked and every
 * query row (= the mean over query frames of their means). Row by row (a reference figure-4 layer is 3.7 GB), in
 * TM_PARTS fixed parts of the rows on the OpenMP threads, each summed alone and the parts added in order: the same
 * bytes on any thread count. */
#define TM_PARTS 64
static sf_status logits_means(const sf_tensor *t, int64_t S, int64_t K, const int *heads, int nh, double *m, sf_err *err) {
    const int off = t->ndim == 4 ? 1 : 0;
    const int64_t H = t->shape[off], Lq = t->shape[off + 1], Lk = t->shape[off + 2], NG = K * S;
    for (int i = 0; i < nh; i++)
        if (heads[i] < 0 || heads[i] >= H)
            return sf_fail(err, SF_E_ARG, "--heads: head %d out of range (the file has %lld heads)", heads[i], (long long)H);
    const int nsel = nh > 0 ? nh : (int)H;
    const int64_t rows = (int64_t)nsel * Lq;
    const size_t esz = sf_dtype_size(t->dtype);
    float *tab = t->dtype == SF_F16 ? malloc(sizeof(float) * 65536) : NULL;
    double *part = calloc((size_t)TM_PARTS * (size_t)NG, sizeof(double));
    int bad = !part || (t->dtype == SF_F16 && !tab);
    for (uint32_t i = 0; tab && i < 65536; i++) tab[i] = sf_f16_to_f32((uint16_t)i);
    const int parts = bad ? 0 : TM_PARTS; /* nothing to run without the buffers */
#pragma omp parallel for schedule(dynamic) reduction(| : bad)
    for (int p = 0; p < parts; p++) {
        float *x = malloc(sizeof(float) * (size_t)Lk), *mass = x ? malloc(sizeof(float) * (size_t)NG) : NULL;
        if (!mass) {
            free(x);
            bad = 1;
            continue;
        }
        for (int64_t q = rows * p / TM_PARTS; q < rows * (p + 1) / TM_PARTS; q++) {
            const int64_t h = nh > 0 ? heads[q / Lq] : q / Lq, r = q % Lq;
            float lse;
            sf_taps_row_to_f32((const uint8_t *)t->data + (h * t->stride[off] + r * t->stride[off + 1]) * (int64_t)esz,
                               t->dtype, Lk, tab, x);
            sf_tap_row_mass_cpu(x, Lk, 1, NG, mass, &lse);
            for (int64_t j = 0; j < NG; j++) part[(size_t)p * (size_t)NG + (size_t)j] += mass[j];
        }
        free(x), free(mass);
    }
    if (!bad)
        for (int64_t j = 0; j < NG; j++) {
            double a = 0;
            for (int p = 0; p < TM_PARTS; p++) a += part[(size_t)p * (size_t)NG + (size_t)j];
            m[j] = a / (double)rows;
        }
    free(tab), free(part);
    return bad ? sf_fail(err, SF_E_NOMEM, "out of memory (rows of %lld keys)", (long long)Lk) : SF_OK;
}

/* The maps of a file with full logits (figure-4 / taps.L*). */
static sf_status load_logits(const sf_tfile *tf, const sf_taps_tok_opts *o, int have_grid, tokmap *t, sf_err *err) {
    sf_taps_src *src = NULL;
    size_t ns = 0;
    sf_status s = sf_taps_find_sources(tf, SF_TAPS_SET_FIG4 | SF_TAPS_SET_TAPS, o->fsl, o->sel.layers, o->sel.nl, &src, &ns, err);
    if (s == SF_E_NOTFOUND)
        return sf_fail(err, s, "%s: no tokens.L* taps and no full logits (of the layers asked): tokens needs sf-denoise "
                       "--tap-mode tokens, or logits (a figure-4 .pt, taps.L*)", tf->path ? tf->path : "file");
    if (s) return s;
    int64_t *fsls = calloc(ns ? ns : 1, sizeof *fsls); /* beside each kept capture: its tokens per frame */
    if (!fsls) {
        free(src);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < ns; i++) { /* per layer: the forward asked for, else the latest block's first step */
        const sf_taps_src *x = &src[i];
        if (x->kind != SF_TAPS_SRC_LOGITS || (o->sel.fb >= 0 && (x->block != o->sel.fb || x->step != o->sel.fs))) continue;
        const sf_taps_cap c = {x->layer, x->block, x->step, x->t, -1};
        const int j = cap_keep(&t->c, &t->n, &c);
        if (j == -2) {
            free(src), free(fsls);
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        }
        if (j >= 0) fsls[j] = x->fsl;
    }
    if (t->n == 0) {
        free(src), free(fsls);
        return o->sel.fb >= 0 ? sf_fail(err, SF_E_NOTFOUND, "no logits of forward b%d.s%d of the layers asked", o->sel.fb, o->sel.fs)
                          : sf_fail(err, SF_E_NOTFOUND, "no logits taps of the layers asked");
    }
    for (int i = 0; i < t->n && o->per_head; i++)
        if (t->c[i].t->ndim != 3 && t->c[i].t->ndim != 4) s = sf_fail(err, SF_E_SHAPE, "layer %d: logits must be [1, heads, Lq, Lk]", t->c[i].layer);
    if (s || (s = expand_heads(t, o, &fsls, err))) {
        free(src), free(fsls);
        return s;
    }
    s = tokmap_alloc(t, err);
    for (int i = 0; !s && i < t->n; i++) {
        const sf_taps_cap *c = &t->c[i];
        const sf_tensor *x = c->t;
        const int off = x->ndim == 4 ? 1 : 0;
        const int64_t fsl = fsls[i], Lk = x->shape[off + 2];
        if (!((x->ndim == 4 && x->shape[0] == 1) || x->ndim == 3) || x->device >= 0 || !x->data ||
            (x->dtype != SF_F16 && x->dtype != SF_BF16 && x->dtype != SF_F32 && x->dtype != SF_F64) ||
            (x->stride[off + 2] != 1 && Lk > 1)) {
            s = sf_fail(err, SF_E_SHAPE, "layer %d: logits must be float [1, heads, Lq, Lk] with contiguous rows", c->layer);
            break;
        }
        if (fsl <= 0 || Lk % fsl != 0) {
            s = sf_fail(err, SF_E_SHAPE, "layer %d: tokens per frame unknown or not dividing the %lld keys (--frame-seq-length N)",
                        c->layer, (long long)Lk);
            break;
        }
        if (!have_grid && t->S == 0 && fsl == 1560) t->gh = 30, t->gw = 52, t->S = 1560; /* the reference's 480×832 */
        if (t->S == 0) t->S = fsl; /* no grid said: checked below */
        if (fsl != t->S || (int64_t)t->gh * t->gw != fsl) {
            s = sf_fail(err, SF_E_ARG, "layer %d: %lld tokens a frame: give their grid, --token-grid HxW with H·W = %lld", c->layer,
                        (long long)fsl, (long long)fsl);
            break;
        }
        const int64_t kf = Lk / fsl, want = o->token_frames > 0 ? o->token_frames : 1;
        t->K[i] = want < kf ? want : kf;
        if (!(t->m[i] = malloc(sizeof(double) * (size_t)(t->K[i] * fsl))) ||
            !(t->frame[i] = malloc(sizeof(int64_t) * (size_t)t->K[i])))
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
        else s = logits_means(x, fsl, t->K[i], c->head >= 0 ? &c->head : o->sel.heads, c->head >= 0 ? 1 : o->sel.nh, t->m[i], err);
        if (!s) sf_taps_forward_facts(tf, c->layer, c->block, c->step, NULL, t->frame[i], t->K[i]);
        if (!s && t->K[i] > t->Kmax) t->Kmax = t->K[i];
    }
    free(src), free(fsls);
    return s;
}

/* The run's latent frames (the facts' num_frames), 0 when the file does not say. */
static int64_t latent_frames(const sf_tfile *tf) {
    const char *nf = tf->kind == SF_TFILE_TORCH ? NULL : sf_tfile_meta(tf, "num_frames");
    long long T = 0;
    int k = 0;
    return nf && sscanf(nf, "%lld%n", &T, &k) == 1 && !nf[k] && T > 0 && T < (1LL << 40) ? (int64_t)T : 0;
}

static sf_status tokmap_load(const sf_tfile *tf, const sf_taps_tok_opts *o, tokmap *t, sf_err *err) {
    memset(t, 0, sizeof *t);
    const char *fg = tf->kind == SF_TFILE_TORCH ? NULL : sf_tfile_meta(tf, "token_grid");
    int gh = 0, gw = 0, ah = 0, aw = 0;
    if (o->grid && !parse_grid(o->grid, &ah, &aw)) return sf_fail(err, SF_E_ARG, "--token-grid: expected HxW, got '%s'", o->grid);
    if (fg && !parse_grid(fg, &gh, &gw)) return sf_fail(err, SF_E_FORMAT, "the file's token_grid '%s' is not HxW", fg);
    if (fg && o->grid && (gh != ah || gw != aw))
        return sf_fail(err, SF_E_ARG, "--token-grid %s: the file says %s", o->grid, fg);
    t->gh = fg ? gh : ah, t->gw = fg ? gw : aw, t->S = (int64_t)t->gh * t->gw;
    int has_tokens = 0;
    for (size_t i = 0; i < tf->n && !has_tokens; i++) has_tokens = !strncmp(tf->entries[i].name, "tokens.L", 8);
    sf_status s;
    if (has_tokens) {
        if (!t->S) return sf_fail(err, SF_E_FORMAT, "tokens.L* taps without a token_grid in the file's metadata: give --token-grid HxW");
        s = load_tokens(tf, o, t, err);
    } else {
        s = load_logits(tf, o, fg || o->grid, t, err);
    }
    if (!s) t->T = latent_frames(tf);
    if (s) tokmap_free(t);
    return s;
}

/* The figure: one row a layer, one panel a key slot; base non-NULL: t − base, on a diverging scale; else with
 * o->frames, each map over its video frame. */
static sf_status tokmap_svg(const tokmap *t, const tokmap *base, const sf_taps_tok_opts *o, FILE *f, sf_err *err) {
    const int gh = t->gh, gw = t->gw, n = t->n, diff = base != NULL;
    backdrop bd = {o->frames, o->id ? o->id : "tok", 0, 4, NULL, 0, 0};
    if (!diff && o->frames) {
        struct stat st;
        if (stat(o->frames, &st) != 0) return sf_fail(err, SF_E_IO, "--frames %s: %s", o->frames, strerror(errno));
        if ((bd.dir = S_ISDIR(st.st_mode))) bd.r = backdrop_rate(o->frames, t->T);
    }
    const int over = !diff && o->frames;
    const int64_t S = t->S;
    const double cw = 240.0 / (gw > gh ? gw : gh), pw = cw * gw, ph = cw * gh, lm = 20, tm = 54, gap = 52;
    /* one key slot a layer (the usual sink): the layers flow in rows of up to 5 panels; more slots: a row a layer */
    const int flow = t->Kmax == 1, cols = flow ? (n < 5 ? n : 5) : (int)t->Kmax, rows = flow ? (n + cols - 1) / cols : n;
    double W = lm + (double)cols * (pw + 30) + 20;
    if (W < 760) W = 760;
    const double Hh = tm + rows * (ph + gap) + 10;
    double *d = NULL;
    sf_status s = SF_OK;
    if (diff && !(d = malloc(sizeof(double) * (size_t)(t->Kmax * S)))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
            W, Hh, W, Hh);
    fprintf(f, "<text x=\"%.1f\" y=\"22\" font-size=\"15\" font-weight=\"bold\">%s (%dx%d tokens a frame)</text>\n", lm,
            diff ? "How the sink frames' attention mass moved against the first run" : "Where the sink frames' attention mass lands",
            gh, gw);
    fprintf(f, "<text x=\"%.1f\" y=\"40\" font-size=\"11\">%s</text>\n", lm,
            diff ? "this run minus the first, token by token; each layer on its own symmetric scale: red more, "
                   "blue less, white the same"
                 : over ? "mean over heads and query frames, over the key slot's video frame: least mass clear, most opaque "
                          "(viridis, a scale per layer)"
                        : "mean over the heads and the forward's query frames; each layer on its own colour scale, "
                          "viridis from its least to its most");
    for (int i = 0; i < n && !s; i++) {
        const double *v = t->m[i];
        if (diff) {
            for (int64_t j = 0; j < t->K[i] * S; j++) d[j] = v[j] - base->m[i][j];
            v = d;
        }
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t j = 0; j < t->K[i] * S; j++) lo = fmin(lo, v[j]), hi = fmax(hi, diff ? fabs(v[j]) : v[j]);
        const double y = tm + (flow ? i / cols : i) * (ph + gap), x0 = flow ? lm + (i % cols) * (pw + 30) : lm;
        for (int64_t kk = 0; kk < t->K[i]; kk++) {
            double tot = 0, peak = -INFINITY;
            for (int64_t j = 0; j < S; j++) tot += v[kk * S + j], peak = fmax(peak, diff ? fabs(v[kk * S + j]) : v[kk * S + j]);
            const double x = x0 + (double)kk * (pw + 30);
            char fr[40] = "";
            if (t->frame[i][kk] >= 0) snprintf(fr, sizeof fr, " = frame %lld", (long long)t->frame[i][kk]);
            char fw[48] = ""; /* a figure-4 capture names no forward */
            if (t->c[i].block >= 0) snprintf(fw, sizeof fw, " (block %d, step %d)", t->c[i].block, t->c[i].step);
            char hd[24] = "";
            if (t->c[i].head >= 0) snprintf(hd, sizeof hd, " head %d", t->c[i].head);
            fprintf(f, "<text class=\"panel\" x=\"%.1f\" y=\"%.1f\" font-size=\"11\" font-weight=\"bold\">layer %d%s, key slot "
                       "%lld%s%s</text>\n", x, y + 12, t->c[i].layer, hd, (long long)kk, fr, fw);
            if (diff)
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">change %+.3g in all, %.3g at most</text>\n", x,
                        y + 25, tot, peak);
            else
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">mass %.4g in all, %.4g at the peak token</text>\n",
                        x, y + 25, tot, peak);
            if (over && (s = backdrop_use(f, &bd, t->frame[i][kk], x, y + 30, pw, ph, gh, gw, err))) break;
            if (over && bd.dir)
                fprintf(f, "<text class=\"under\" x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#555555\">over video frame "
                           "%lld</text>\n", x, y + 30 + ph + 12, (long long)video_frame_of(t->frame[i][kk], bd.r));
            if ((s = svg_panel(f, x, y + 30, cw, gh, gw, v + kk * S, lo, hi, diff ? PANEL_DIFF : over ? PANEL_OVERLAY : PANEL_MAP,
                               err)))
                break;
        }
    }
    fputs("</svg>\n", f);
    free(d);
    free(bd.done);
    return s ? s : ferror(f) ? sf_fail(err, SF_E_IO, "write failed") : SF_OK;
}

sf_status sf_taps_tokens(const sf_tfile *tf, const sf_taps_tok_opts *o, FILE *svg, FILE *csv, sf_err *err) {
    tokmap t;
    sf_status s = tokmap_load(tf, o, &t, err);
    if (s) return s;
    if (csv) {
        fputs("layer,head,block,step,key_slot,key_frame,row,col,mass\n", csv);
        for (int i = 0; i < t.n; i++)
            for (int64_t j = 0; j < t.K[i] * t.S; j++)
                fprintf(csv, "%d,%d,%d,%d,%lld,%lld,%lld,%lld,%.9g\n", t.c[i].layer, t.c[i].head, t.c[i].block, t.c[i].step,
                        (long long)(j / t.S), (long long)(t.frame[i][j / t.S] < 0 ? -1 : t.frame[i][j / t.S]),
                        (long long)(j % t.S / t.gw), (long long)(j % t.gw),
                        t.m[i][j]);
        if (ferror(csv)) s = sf_fail(err, SF_E_IO, "write failed");
    }
    if (!s && svg) s = tokmap_svg(&t, NULL, o, svg, err);
    tokmap_free(&t);
    return s;
}

sf_status sf_taps_tokens_diff(const sf_tfile *tf, const sf_tfile *base, const sf_taps_tok_opts *o, FILE *svg, sf_err *err) {
    tokmap t, b;
    sf_taps_tok_opts all = *o;
    all.sel.heads = NULL, all.sel.nh = 0, all.per_head = 0;
    sf_status s = tokmap_load(tf, &all, &t, err);
    if (s) return s;
    if ((s = tokmap_load(base, &all, &b, err))) {
        tokmap_free(&t);
        return s;
    }
    int same = t.gh == b.gh && t.gw == b.gw && t.n == b.n;
    for (int i = 0; same && i < t.n; i++) same = t.c[i].layer == b.c[i].layer && t.K[i] == b.K[i];
    if (!same) s = sf_fail(err, SF_E_SHAPE, "the tokens files differ in token grid, layers or key slots: no difference map");
    else s = tokmap_svg(&t, &b, o, svg, err);
    tokmap_free(&t);
    tokmap_free(&b);
    return s;
}

/* The most thumbnails a strip shows (a longer video: its first latent frames), and their width on the page. */
#define FILM_MAX 256
#define FILM_W 120

sf_status sf_taps_tokens_film(const sf_tfile *tf, const char *frames, FILE *html, sf_err *err) {
    struct stat st;
    const int64_t T = latent_frames(tf);
    if (!frames || !T || stat(frames, &st) != 0 || !S_ISDIR(st.st_mode)) return SF_OK;
    backdrop b = {frames, NULL, 1, backdrop_rate(frames, T), NULL, 0, 0};
    fputs("<div class=\"film\">", html);
    for (int64_t f = 0; f < T && f < FILM_MAX; f++) {
        char path[4200], *b64 = NULL;
        int64_t w = 0, h = 0, p = video_frame_of(f, b.r);
        frame_path(&b, p, path, sizeof path);
        sf_status s = picture_b64(path, 2 * FILM_W, 0, 0, 0, &b64, &w, &h, err);
        if (s) return s;
        fprintf(html, "<figure class=\"thumb\"><img class=\"thumb\" width=\"%d\" height=\"%.0f\" alt=\"latent frame %lld, "
                      "video frame %lld\" src=\"data:image/png;base64,%s\"><figcaption>%lld</figcaption></figure>",
                FILM_W, (double)FILM_W * (double)h / (double)w, (long long)f, (long long)p, b64, (long long)f);
        free(b64);
    }
    fputs("</div>\n", html);
    return ferror(html) ? sf_fail(err, SF_E_IO, "write failed") : SF_OK;
}
