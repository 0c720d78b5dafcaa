/* taps.c — attention taps: capture, selection, frame aggregates and the output files (see taps.h;
 * the .pt dicts and the streaming aggregate's assembly are taps_pt.c's). Mirrors the fork's
 * attention capture (wan/modules/attention.py), run_extraction_figure4.py's selection and
 * run_extraction_streaming.py's frame aggregates. Tested by tests/unit/test_dit_taps.c (vs taps_base
 * stream.* goldens, .pt read back) and tests/bats/sf-denoise.bats, streaming.bats, reference_scripts.bats. */
#define _POSIX_C_SOURCE 200809L
#include "taps.h"
#include "pickle.h"
#include "tap_mass.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

sf_status sf_taps_parse_mode(const char *s, sf_tap_mode *m, sf_err *err) {
    if (!strcmp(s, "logits")) *m = SF_TAP_LOGITS;
    else if (!strcmp(s, "frames")) *m = SF_TAP_FRAMES;
    else if (!strcmp(s, "probs")) *m = SF_TAP_PROBS;
    else if (!strcmp(s, "tokens")) *m = SF_TAP_TOKENS;
    else return sf_fail(err, SF_E_ARG, "--tap-mode: expected logits, frames, probs or tokens, got '%s'", s);
    return SF_OK;
}

/* A decimal layer number: digits only (no sign, no spaces), at most 6 of them. */
static int layer_num(const char *s, size_t n, long *v) {
    if (n == 0 || n > 6) return 0;
    long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        x = 10 * x + (s[i] - '0');
    }
    *v = x;
    return 1;
}

sf_status sf_taps_parse_layers(const char *const *args, int n_args, int num_layers, int **out, int *n_out,
                               sf_err *err) {
    const int cap = num_layers > 0 ? num_layers : 1;
    unsigned char *on = calloc((size_t)cap, 1);
    *out = NULL;
    *n_out = 0;
    if (!on) return sf_fail(err, SF_E_NOMEM, "out of memory");
    static const char *const dflt[2] = {"0", "4"}; /* run_extraction_figure4.py's default */
    if (n_args == 0) {
        args = dflt;
        n_args = 2;
    }
    sf_status s = SF_OK;
    for (int a = 0; a < n_args && !s; a++) {
        const char *p = args[a];
        do {
            size_t n = strcspn(p, ",");
            const char *dash = memchr(p, '-', n);
            long lo = 0, hi = 0;
            if (n == 3 && !strncmp(p, "all", 3)) lo = 0, hi = num_layers - 1;
            else if (dash ? !(layer_num(p, (size_t)(dash - p), &lo) && layer_num(dash + 1, n - (size_t)(dash - p) - 1, &hi))
                          : !layer_num(p, n, &lo)) {
                s = sf_fail(err, SF_E_ARG, "--layer_indices: '%s' is not a layer, a range A-B, a list A,B or 'all'", args[a]);
                break;
            } else if (!dash) hi = lo;
            if (dash && hi < lo) {
                s = sf_fail(err, SF_E_ARG, "--layer_indices: empty range in '%s' (write A-B with A <= B)", args[a]);
                break;
            }
            if (num_layers >= 0 && hi >= num_layers) {
                s = sf_fail(err, SF_E_ARG, "--layer_indices: layer %ld out of range (the model has %d layers: 0..%d)", hi,
                            num_layers, num_layers - 1);
                break;
            }
            for (long l = lo; num_layers >= 0 && l <= hi; l++) on[l] = 1;
            p += n;
        } while (*p++ == ',');
    }
    int k = 0;
    for (int l = 0; l < num_layers; l++) k += on[l];
    if (!s && num_layers >= 0 && !(*out = malloc(sizeof(int) * (size_t)(k ? k : 1))))
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int l = 0; !s && l < num_layers; l++)
        if (on[l]) (*out)[(*n_out)++] = l;
    free(on);
    return s;
}

sf_status sf_taps_given_layers(const char *const *args, int n_args, int **out, int *n_out, sf_err *err) {
    static const char *const dflt[2] = {"0", "4"}; /* run_extraction_figure4.py's default */
    *out = NULL;
    *n_out = 0;
    if (n_args <= 0) {
        args = dflt;
        n_args = 2;
    }
    long v;
    for (int a = 0; a < n_args; a++)
        if (!layer_num(args[a], strlen(args[a]), &v)) return SF_OK; /* a range or list: the ascending list */
    if (!(*out = malloc(sizeof(int) * (size_t)n_args))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int a = 0; a < n_args; a++) {
        layer_num(args[a], strlen(args[a]), &v);
        (*out)[a] = (int)v;
    }
    *n_out = n_args;
    return SF_OK;
}

static const char *const pt_layout_names[] = {"auto", "streaming", "full_attention", "distributed_streaming",
                                               "distributed_multi_prompt"};

sf_status sf_taps_parse_pt_layout(const char *s, sf_pt_layout *l, sf_err *err) {
    for (int i = 0; i < (int)(sizeof pt_layout_names / sizeof *pt_layout_names); i++)
        if (!strcmp(s, pt_layout_names[i])) {
            *l = (sf_pt_layout)i;
            return SF_OK;
        }
    return sf_fail(err, SF_E_ARG, "--pt-layout: expected auto, streaming, full_attention, distributed_streaming or "
                   "distributed_multi_prompt, got '%s'", s);
}

const char *sf_taps_pt_layout_name(sf_pt_layout l) {
    return (unsigned)l < sizeof pt_layout_names / sizeof *pt_layout_names ? pt_layout_names[l] : "?";
}

int sf_taps_pt_per_layer(const sf_taps *t) {
    if (t->pt.layout == SF_PT_AUTO) return t->mode == SF_TAP_FRAMES && t->sel == SF_TAP_SEL_SEED;
    return t->pt.layout != SF_PT_FULL_ATTENTION;
}

sf_status sf_taps_parse_select(const char *s, sf_tap_sel *sel, int *b, int *st, sf_err *err) {
    const char *p = s;
    int64_t vb, vs; /* strict integers (sf_scan_i64): b:4294967296 is refused, never wrapped to 0 */
    if (!strcmp(s, "seed")) *sel = SF_TAP_SEL_SEED;
    else if (!strcmp(s, "all")) *sel = SF_TAP_SEL_ALL;
    else if (!strncmp(p, "b:", 2) && (p += 2, sf_scan_i64(&p, 0, INT_MAX, &vb)) && !strncmp(p, ",s:", 3) &&
             (p += 3, sf_scan_i64(&p, 0, INT_MAX, &vs)) && !*p) {
        *sel = SF_TAP_SEL_ONE;
        *b = (int)vb, *st = (int)vs;
    } else
        return sf_fail(err, SF_E_ARG, "--tap-select: expected seed, all or b:B,s:S (B, S integers in [0, %d]), got '%s'",
                       INT_MAX, s);
    return SF_OK;
}

sf_status sf_taps_init(sf_taps *t, sf_tap_mode mode, sf_tap_sel sel, int sel_block, int sel_step, const int *layers,
                       int n, int num_layers, sf_err *err) {
    memset(t, 0, sizeof *t);
    for (int i = 0; i < n; i++)
        if (layers[i] < 0 || layers[i] >= num_layers)
            return sf_fail(err, SF_E_ARG, "--layer_indices: layer %d out of range (the model has %d layers: 0..%d)",
                           layers[i], num_layers, num_layers - 1);
    t->layers = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    if (!t->layers) return sf_fail(err, SF_E_NOMEM, "out of memory");
    memcpy(t->layers, layers, sizeof(int) * (size_t)n);
    t->n_layers = n;
    t->mode = mode;
    t->sel = sel;
    t->sel_block = sel_block;
    t->sel_step = sel_step;
    t->token_frames = 1;
    return SF_OK;
}

static void cap_free(sf_tap_capture *c) {
    free(c->logits);
    free(c->frames);
    free(c->stats);
    free(c->key_frames);
    free(c->win_frames);
    free(c->kept_hist);
    memset(c, 0, sizeof *c);
}

static int cmp_i32(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The view's kept tokens as (frame, tokens) pairs, frames ascending (c->kept_hist; none: NULL). */
static sf_status kept_histogram(sf_tap_capture *c, const sf_dit_attn_view *v, sf_err *err) {
    free(c->kept_hist);
    c->kept_hist = NULL, c->kept_bins = 0;
    const int64_t n = v->cross || !v->kept_frames ? 0 : v->kept_tokens * v->kept_heads;
    if (n <= 0) return SF_OK;
    int32_t *f = malloc(sizeof(int32_t) * (size_t)n);
    if (!f) return sf_fail(err, SF_E_NOMEM, "out of memory");
    memcpy(f, v->kept_frames, sizeof(int32_t) * (size_t)n);
    qsort(f, (size_t)n, sizeof(int32_t), cmp_i32);
    int64_t bins = 1;
    for (int64_t i = 1; i < n; i++) bins += f[i] != f[i - 1];
    if (!(c->kept_hist = malloc(sizeof(int64_t) * (size_t)(2 * bins)))) {
        free(f);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    for (int64_t i = 0, b = -1; i < n; i++) {
        if (!i || f[i] != f[i - 1]) c->kept_hist[2 * ++b] = f[i], c->kept_hist[2 * b + 1] = 0;
        c->kept_hist[2 * b + 1]++;
    }
    c->kept_bins = bins;
    free(f);
    return SF_OK;
}

void sf_taps_free(sf_taps *t) {
    for (size_t i = 0; i < t->n_caps; i++) cap_free(&t->caps[i]);
    free(t->caps);
    free(t->layers);
    free(t->given);
    free(t->buf);
    free(t->pend);
    memset(t, 0, sizeof *t);
}

void sf_taps_on_forward(sf_taps *t, int block, int step, int64_t start_frame) {
    t->cur_block = block;
    t->cur_step = step;
    t->cur_start = start_frame;
}

/* The selection by forward alone: one (block, step), or with seed and an aggregate (streaming frames,
 * probs, cross) only a block's first forward (its key frames grew); everything else may be tapped. */
static int selects_forward(const sf_taps *t, int block, int step, int aggregate) {
    if (t->sel == SF_TAP_SEL_ONE) return block == t->sel_block && step == t->sel_step;
    return !(aggregate && t->sel == SF_TAP_SEL_SEED && step != 0);
}

static int wants_forward(const sf_taps *t, int layer, int aggregate) {
    if (!selects_forward(t, t->cur_block, t->cur_step, aggregate)) return 0;
    for (int i = 0; i < t->n_layers; i++)
        if (t->layers[i] == layer) return 1;
    return 0;
}

static int tap_wants(void *ctx, int layer) {
    const sf_taps *t = ctx;
    return wants_forward(t, layer, t->mode != SF_TAP_LOGITS);
}

static int tap_wants_cross(void *ctx, int layer) {
    const sf_taps *t = ctx;
    return t->cross && wants_forward(t, layer, 1);
}

static int tap_wants_mass(void *ctx, int layer) {
    (void)layer;
    const sf_taps *t = ctx;
    return t->mode == SF_TAP_PROBS || t->mode == SF_TAP_TOKENS;
}

/* The self-attention's mass groups for a window of Lk keys, S a frame: key frames (G = S, NG = Lk / S), or in
 * tokens mode single tokens of the first token_frames key slots (G = 1, NG = K·S). The tap hook mass_groups. */
static void tap_mass_groups(void *ctx, int64_t Lk, int64_t S, int64_t *G, int64_t *NG) {
    const sf_taps *t = ctx;
    const int64_t KF = S > 0 ? Lk / S : 0;
    if (t->mode == SF_TAP_TOKENS) {
        const int64_t K = t->token_frames < KF ? t->token_frames : KF;
        *G = 1, *NG = K * S;
    } else {
        *G = S, *NG = KF;
    }
}


static int tap_wants_means(void *ctx, int layer) {
    (void)layer;
    return ((const sf_taps *)ctx)->mode == SF_TAP_FRAMES;
}

static float *tap_logits_buf(void *ctx, int layer, int heads, int64_t Lq, int64_t Lk) {
    sf_taps *t = ctx;
    (void)layer;
    if (t->mode != SF_TAP_LOGITS) return NULL;
    size_t n;
    if (!sf_mul_ok((size_t)heads, (size_t)Lq, &n) || !sf_mul_ok(n, (size_t)Lk, &n)) return NULL;
    if (n > t->buf_cap) {
        float *p = realloc(t->buf, n * sizeof(float));
        if (!p) return NULL;
        t->buf = p;
        t->buf_cap = n;
    }
    return t->buf;
}

/* The seed selection keeps, per layer, the first capture with the largest key length: a later one
 * with no more keys is not kept. The existing capture of that layer, or NULL. */
static sf_tap_capture *seed_cap(sf_taps *t, int layer) {
    sf_tap_capture *c = NULL;
    for (size_t i = 0; i < t->n_caps; i++)
        if (t->caps[i].layer == layer && !t->caps[i].cross) c = &t->caps[i];
    return c;
}

/* GPU backend: the f16 destination of this forward's logits, or NULL when none are wanted
 * (frames mode, or the seed selection already holds as many keys). */
static uint16_t *tap_logits_f16(void *ctx, int layer, int heads, int64_t Lq, int64_t Lk) {
    sf_taps *t = ctx;
    t->pend_skip = 0;
    free(t->pend);
    t->pend = NULL;
    if (t->mode != SF_TAP_LOGITS) return NULL;
    if (t->sel == SF_TAP_SEL_SEED) {
        const sf_tap_capture *c = seed_cap(t, layer);
        if (c && c->Lk >= Lk) {
            t->pend_skip = 1;
            return NULL;
        }
    }
    size_t n;
    if (!sf_mul_ok((size_t)heads, (size_t)Lq, &n) || !sf_mul_ok(n, (size_t)Lk, &n)) return NULL;
    t->pend = malloc(n * sizeof(uint16_t));
    return t->pend;
}

static sf_tap_capture *new_cap(sf_taps *t, sf_err *err) {
    if (t->n_caps == t->cap_caps) {
        size_t nc = t->cap_caps ? 2 * t->cap_caps : 16;
        sf_tap_capture *p = realloc(t->caps, nc * sizeof *p);
        if (!p) {
            sf_fail(err, SF_E_NOMEM, "out of memory storing attention taps");
            return NULL;
        }
        t->caps = p;
        t->cap_caps = nc;
    }
    sf_tap_capture *c = &t->caps[t->n_caps];
    memset(c, 0, sizeof *c);
    return c;
}

/* Where a capture comes from: layer, the forward (block, step, start frame), its shape and (for the
 * self-attention) the absolute frame of each key slot. */
static sf_status cap_describe(sf_tap_capture *c, const sf_taps *t, const sf_dit_attn_view *v, sf_err *err) {
    const int64_t KF = v->frame_tokens > 0 ? v->Lk / v->frame_tokens : 0;
    if (!v->cross && !c->key_frames) {
        if (!(c->key_frames = malloc(sizeof(int64_t) * (size_t)(KF > 0 ? KF : 1))))
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        for (int64_t f = 0; f < KF; f++) c->key_frames[f] = v->key_frames ? v->key_frames[f] : f;
    }
    free(c->win_frames);
    c->win_frames = NULL, c->win_slots = 0;
    if (!v->cross && v->window_frames && v->window_slots != KF) { /* the layer skipped some of the window's keys */
        if (!(c->win_frames = malloc(sizeof(int64_t) * (size_t)(v->window_slots > 0 ? v->window_slots : 1))))
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        memcpy(c->win_frames, v->window_frames, sizeof(int64_t) * (size_t)v->window_slots);
        c->win_slots = v->window_slots;
    }
    sf_status s = kept_histogram(c, v, err);
    if (s) return s;
    c->cross = v->cross;
    c->n_real = v->n_real;
    c->sink_shift = !v->cross && t->st ? t->st->sink_shift : 0; /* set before the forward's layers, on both backends */
    c->layer = v->layer;
    c->block = t->cur_block;
    c->step = t->cur_step;
    c->start_frame = t->cur_start;
    c->heads = v->heads;
    c->Lq = v->Lq;
    c->Lk = v->Lk;
    c->frame_tokens = v->frame_tokens;
    return SF_OK;
}

/* PROBS / TOKENS / cross: the probability aggregates, from the backend (GPU) or computed here from q and k. */
static sf_status tap_mass(sf_taps *t, const sf_dit_attn_view *v, sf_err *err) {
    const int64_t S = v->frame_tokens, QF = v->Lq / S;
    int64_t G = 1, NG = v->n_real;
    if (!v->cross) tap_mass_groups(t, v->Lk, S, &G, &NG);
    if (v->cross && NG < 1)
        return sf_fail(err, SF_E_ARG, "--tap-cross: the prompt embeddings have no non-zero (real) token rows");
    sf_tap_capture *c = new_cap(t, err);
    if (!c) return SF_E_NOMEM;
    size_t n = (size_t)v->heads * (size_t)QF;
    c->frames = malloc(sizeof(float) * n * (size_t)NG);
    c->stats = malloc(sizeof(float) * n * SF_TAP_NSTATS);
    if (!c->frames || !c->stats) goto nomem;
    if (v->mass && v->mass_stats) {
        memcpy(c->frames, v->mass, sizeof(float) * n * (size_t)NG);
        memcpy(c->stats, v->mass_stats, sizeof(float) * n * SF_TAP_NSTATS);
    } else if (sf_tap_mass_cpu(v->Lq, v->Lk, v->heads, v->head_dim, v->q, v->ld, v->k, v->ld,
                               (float)(1.0 / sqrt((double)v->head_dim)), G, NG, S, v->cross, c->frames, c->stats,
                               t->nthreads)) {
        goto nomem;
    }
    sf_status s = cap_describe(c, t, v, err);
    if (s) {
        cap_free(c);
        return s;
    }
    if (v->cross) c->Lk = NG * S; /* the stored tensor's last dim is NG = Lk / frame_tokens */
    else if (G == 1) c->groups = NG; /* tokens: (heads, QF, K·S), the key window's frames still described by Lk */
    t->n_caps++;
    return SF_OK;
nomem:
    cap_free(c);
    return sf_fail(err, SF_E_NOMEM, "out of memory for the attention probabilities of layer %d", v->layer);
}

static sf_status tap_done(void *ctx, const sf_dit_attn_view *v, sf_err *err) {
    sf_taps *t = ctx;
    const int64_t S = v->frame_tokens, d = v->head_dim;
    if (v->cross || t->mode == SF_TAP_PROBS || t->mode == SF_TAP_TOKENS) return tap_mass(t, v, err);
    if (t->mode == SF_TAP_LOGITS) {
        if (!v->logits && !v->logits_f16) {
            if (t->pend_skip) return SF_OK; /* GPU: the seed selection did not want this one */
            return sf_fail(err, SF_E_NOMEM, "out of memory for the logits of layer %d (%d×%lld×%lld values)", v->layer,
                           v->heads, (long long)v->Lq, (long long)v->Lk);
        }
        sf_tap_capture *c = NULL;
        if (t->sel == SF_TAP_SEL_SEED) { /* per layer: the first capture with the largest Lk */
            c = seed_cap(t, v->layer);
            if (c && c->Lk >= v->Lk) return SF_OK;
            if (c) cap_free(c);
        }
        int fresh = c == NULL;
        if (fresh && !(c = new_cap(t, err))) return SF_E_NOMEM;
        size_t n = (size_t)v->heads * (size_t)v->Lq * (size_t)v->Lk;
        if (v->logits_f16 && v->logits_f16 == t->pend) { /* the GPU filled our buffer: take it */
            c->logits = t->pend;
            t->pend = NULL;
        } else {
            c->logits = malloc(n * sizeof(uint16_t));
            if (!c->logits) return sf_fail(err, SF_E_NOMEM, "out of memory storing the logits of layer %d", v->layer);
            for (size_t i = 0; i < n; i++)
                c->logits[i] = v->logits_f16 ? v->logits_f16[i] : sf_f32_to_f16(v->logits[i]);
        }
        sf_status s = cap_describe(c, t, v, err);
        if (s) {
            if (fresh) cap_free(c);
            return s;
        }
        if (fresh) t->n_caps++;
        return SF_OK;
    }
    /* frames: A[h,qf,kf] = (mean_q · mean_k)·scale, reductions in double (sf_frame_means_cpu and
     * sf_frame_logit_means_cpu; a GPU backend hands over the same aggregate, made on the device) */
    int64_t QF = v->Lq / S, KF = v->Lk / S;
    sf_tap_capture *c = new_cap(t, err);
    if (!c) return SF_E_NOMEM;
    const int given = v->frames != NULL;
    double *qm = given ? NULL : calloc((size_t)(QF * v->heads * d), sizeof(double));
    double *km = given ? NULL : calloc((size_t)(KF * v->heads * d), sizeof(double));
    c->frames = calloc((size_t)(v->heads * QF * KF), sizeof(float));
    c->key_frames = malloc(sizeof(int64_t) * (size_t)(KF > 0 ? KF : 1));
    if ((!given && (!qm || !km)) || !c->frames || !c->key_frames) {
        free(qm);
        free(km);
        cap_free(c);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    for (int64_t f = 0; f < KF; f++) c->key_frames[f] = v->key_frames ? v->key_frames[f] : f;
    if (given) {
        memcpy(c->frames, v->frames, sizeof(float) * (size_t)(v->heads * QF * KF));
    } else {
        sf_frame_means_cpu(QF, S, v->heads * d, v->q, v->ld, qm);
        sf_frame_means_cpu(KF, S, v->heads * d, v->k, v->ld, km);
        sf_frame_logit_means_cpu(v->heads, d, QF, KF, qm, km, 1.0 / sqrt((double)d), c->frames);
    }
    free(qm);
    free(km);
    sf_status s = cap_describe(c, t, v, err);
    if (s) {
        cap_free(c);
        return s;
    }
    t->n_caps++;
    return SF_OK;
}

/* Whether a forward may be tapped at all: seed keeps step 0 of each block in every mode (logits too: the
 * first capture with the most keys is a step 0), so the aggregate rule serves all modes here. */
static int tap_wants_forward(void *ctx, int block, int step) {
    return selects_forward(ctx, block, step, 1);
}

static int tap_may_want(void *ctx, int layer, int cross) {
    const sf_taps *t = ctx;
    if (cross && !t->cross) return 0;
    for (int i = 0; i < t->n_layers; i++)
        if (t->layers[i] == layer) return 1;
    return 0;
}

void sf_taps_attach(sf_taps *t, sf_dit_state *st) {
    st->tap.wants = tap_wants;
    st->tap.logits_buf = tap_logits_buf;
    st->tap.logits_f16 = tap_logits_f16;
    st->tap.done = tap_done;
    st->tap.ctx = t;
    t->st = st;
    st->tap.wants_mass = tap_wants_mass;
    st->tap.wants_cross = tap_wants_cross;
    st->tap.wants_means = tap_wants_means;
    st->tap.mass_groups = tap_mass_groups;
    st->tap.wants_forward = tap_wants_forward;
    st->tap.may_want = tap_may_want;
}

sf_tensor sf_taps_cap_tensor(const sf_tap_capture *c) {
    if (c->logits) {
        int64_t sh[4] = {1, c->heads, c->Lq, c->Lk};
        return sf_tensor_view(c->logits, SF_F16, 4, sh);
    }
    int64_t sh[3] = {c->heads, c->Lq / c->frame_tokens, c->groups > 0 ? c->groups : c->Lk / c->frame_tokens};
    return sf_tensor_view(c->frames, SF_F32, 3, sh);
}

static sf_tensor cap_stats_tensor(const sf_tap_capture *c) {
    int64_t sh[3] = {c->heads, c->Lq / c->frame_tokens, SF_TAP_NSTATS};
    return sf_tensor_view(c->stats, SF_F32, 3, sh);
}

/* The tensor name of a capture (stats = 1: its log-sum-exp statistics). */
static void cap_name(const sf_taps *t, const sf_tap_capture *c, int stats, char *nm, size_t n) {
    const char *kind = c->cross ? (stats ? "cross_lse" : "cross")
                       : t->mode == SF_TAP_PROBS ? (stats ? "lse" : "probs")
                       : t->mode == SF_TAP_TOKENS ? (stats ? "tokens_lse" : "tokens")
                       : t->mode == SF_TAP_FRAMES ? "frames"
                       : t->sel == SF_TAP_SEL_SEED ? NULL : "taps";
    if (kind) snprintf(nm, n, "%s.L%d.b%d.s%d", kind, c->layer, c->block, c->step);
    else snprintf(nm, n, "fig4.L%d.attn_logits", c->layer);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}


/* Two self-attention captures of one forward (block, step)? */
static int same_forward(const sf_tap_capture *a, const sf_tap_capture *b) {
    return !a->cross && !b->cross && a->block == b->block && a->step == b->step;
}

/* n absolute key frames (NULL: none), as a JSON list. */
static cJSON *frames_json(const int64_t *f, int64_t n) {
    cJSON *kf = cJSON_CreateArray();
    for (int64_t i = 0; kf && f && i < n; i++) cJSON_AddItemToArray(kf, cJSON_CreateNumber((double)f[i]));
    return kf;
}

/* The run's facts as safetensors metadata, JSON where a value is a list: layers, heads, the
 * forwards (block, step, start frame, absolute key frame of every slot, the sink's shift in time), seed, weights, prompt,
 * sink and window sizes. bufs[0..1]: owned JSON strings (freed by the caller); num: the caller's
 * storage for the numbers, alive until the file is written. */
typedef char fact_num[10][32];
static sf_status facts(const sf_taps *t, const sf_taps_meta *m, const char **kv, size_t *nkv, char **bufs, fact_num num,
                       sf_err *err) {
    size_t k = *nkv;
    cJSON *li = cJSON_CreateArray(), *fw = cJSON_CreateArray();
    for (int i = 0; li && i < t->n_layers; i++) cJSON_AddItemToArray(li, cJSON_CreateNumber(t->layers[i]));
    for (size_t i = 0; fw && i < t->n_caps; i++) { /* one entry per forward, in run order */
        const sf_tap_capture *c = &t->caps[i];
        int seen = c->cross;
        for (size_t j = 0; j < i && !seen; j++) seen = same_forward(&t->caps[j], c);
        if (seen) continue;
        /* key_frames: the forward's window — a capture of a layer that attended all of it, else the window one kept
           beside its own keys; a layer that attended fewer (--sink-ablate) has its own list in layer_key_frames */
        const sf_tap_capture *w = c;
        for (size_t j = i + 1; j < t->n_caps && w->win_frames; j++)
            if (same_forward(&t->caps[j], c) && !t->caps[j].win_frames) w = &t->caps[j];
        const int64_t wslots = w->win_frames ? w->win_slots : w->Lk / w->frame_tokens;
        cJSON *o = cJSON_CreateObject(), *lk = NULL;
        cJSON_AddNumberToObject(o, "block", c->block);
        cJSON_AddNumberToObject(o, "step", c->step);
        cJSON_AddNumberToObject(o, "start_frame", (double)c->start_frame);
        cJSON_AddNumberToObject(o, "query_frames", (double)(c->Lq / c->frame_tokens));
        cJSON_AddItemToObject(o, "key_frames", frames_json(w->win_frames ? w->win_frames : w->key_frames, wslots));
        /* --sink-rope realign: the sink's keys sat sink_shift frames later in time than the frames they hold */
        if (c->sink_shift) cJSON_AddNumberToObject(o, "sink_shift", (double)c->sink_shift);
        /* --kv-compress / --pc-budget: where each layer's kept tokens came from */
        cJSON *kh = NULL;
        for (size_t j = i; j < t->n_caps; j++) {
            const sf_tap_capture *a = &t->caps[j];
            if (!same_forward(a, c) || a->cross || !a->kept_bins) continue;
            char nm[16];
            snprintf(nm, sizeof nm, "%d", a->layer);
            if (!kh) cJSON_AddItemToObject(o, "kept_frames", kh = cJSON_CreateObject());
            if (!kh || cJSON_GetObjectItem(kh, nm)) continue;
            cJSON *arr = cJSON_CreateArray();
            for (int64_t b = 0; arr && b < a->kept_bins; b++) {
                cJSON *pair = cJSON_CreateArray();
                cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)a->kept_hist[2 * b]));
                cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)a->kept_hist[2 * b + 1]));
                cJSON_AddItemToArray(arr, pair);
            }
            cJSON_AddItemToObject(kh, nm, arr);
        }
        for (size_t j = i; j < t->n_caps; j++)
            if (same_forward(&t->caps[j], c) && t->caps[j].Lk / t->caps[j].frame_tokens < wslots) {
                char nm[16];
                snprintf(nm, sizeof nm, "%d", t->caps[j].layer);
                if (!lk) cJSON_AddItemToObject(o, "layer_key_frames", lk = cJSON_CreateObject());
                const sf_tap_capture *a = &t->caps[j];
                if (lk && !cJSON_GetObjectItem(lk, nm))
                    cJSON_AddItemToObject(lk, nm, frames_json(a->key_frames, a->Lk / a->frame_tokens));
            }
        cJSON_AddItemToArray(fw, o);
    }
    bufs[0] = li ? cJSON_PrintUnformatted(li) : NULL;
    bufs[1] = fw ? cJSON_PrintUnformatted(fw) : NULL;
    cJSON_Delete(li);
    cJSON_Delete(fw);
    if (!bufs[0] || !bufs[1]) return sf_fail(err, SF_E_NOMEM, "out of memory");
    int64_t real = 0;
    for (size_t i = 0; i < t->n_caps; i++)
        if (t->caps[i].cross) real = t->caps[i].n_real;
    snprintf(num[0], 32, "%d", t->caps[0].heads);
    snprintf(num[1], 32, "%ld", m->local_attn_size);
    snprintf(num[2], 32, "%ld", m->sink_size);
    snprintf(num[3], 32, "%lld", (long long)real);
    kv[k++] = "layers", kv[k++] = bufs[0];
    kv[k++] = "forwards", kv[k++] = bufs[1];
    kv[k++] = "heads", kv[k++] = num[0];
    kv[k++] = "tap_cross", kv[k++] = t->cross ? "1" : "0";
    if (t->mode == SF_TAP_TOKENS) {
        snprintf(num[4], 32, "%d", t->token_frames);
        kv[k++] = "token_frames", kv[k++] = num[4];
        if (m->grid_h > 0 && m->grid_w > 0) {
            snprintf(num[5], 32, "%dx%d", m->grid_h, m->grid_w);
            kv[k++] = "token_grid", kv[k++] = num[5];
        }
    }
    if (t->cross) kv[k++] = "real_text_tokens", kv[k++] = num[3];
    if (m->local_attn_size) kv[k++] = "local_attn_size", kv[k++] = num[1], kv[k++] = "sink_size", kv[k++] = num[2];
    if (m->kv_compress > 0) {
        snprintf(num[6], 32, "%ld", m->kv_compress);
        kv[k++] = "kv_compress", kv[k++] = num[6];
    }
    if (m->pc_budget > 0) {
        snprintf(num[7], 32, "%ld", m->pc_budget), snprintf(num[8], 32, "%ld", m->pc_recent);
        snprintf(num[9], 32, "%ld", m->pc_max_reuse);
        kv[k++] = "pc_budget", kv[k++] = num[7], kv[k++] = "pc_recent", kv[k++] = num[8];
        kv[k++] = "pc_max_reuse", kv[k++] = num[9];
    }
    if (m->seed) kv[k++] = "seed", kv[k++] = m->seed;
    if (m->model_dir) kv[k++] = "model_dir", kv[k++] = m->model_dir;
    if (m->config) kv[k++] = "config", kv[k++] = m->config;
    *nkv = k;
    return SF_OK;
}

/* stream.L<l>.full_frame_attention / .last_block_frame_attention (f32) for every requested layer. */
static sf_status write_stream_st(const sf_taps *t, const char *path, const sf_taps_meta *m, sf_err *err) {
    size_t n = (size_t)t->n_layers * 2;
    sf_tensor_entry *ents = calloc(n ? n : 1, sizeof *ents);
    char (*names)[64] = calloc(n ? n : 1, 64);
    float **bufs = calloc(n ? n : 1, sizeof *bufs);
    char *fbufs[2] = {NULL, NULL};
    sf_status s = SF_OK;
    if (!ents || !names || !bufs) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto done; }
    const int64_t T = m->num_frames;
    for (int i = 0; i < t->n_layers; i++) {
        int H = 0, l = t->layers[i];
        if ((s = sf_taps_stream_alloc(t, l, m, &H, &bufs[2 * i], &bufs[2 * i + 1], err))) goto done;
        int64_t sf[3] = {H, T, T}, sl[2] = {H, T};
        snprintf(names[2 * i], 64, "stream.L%d.full_frame_attention", l);
        snprintf(names[2 * i + 1], 64, "stream.L%d.last_block_frame_attention", l);
        ents[2 * i].name = names[2 * i];
        ents[2 * i].t = sf_tensor_view(bufs[2 * i], SF_F32, 3, sf);
        ents[2 * i + 1].name = names[2 * i + 1];
        ents[2 * i + 1].t = sf_tensor_view(bufs[2 * i + 1], SF_F32, 2, sl);
    }
    char fpb[32], nf[32], ch[32], fsl[32];
    snprintf(fpb, sizeof fpb, "%d", m->num_frame_per_block);
    snprintf(nf, sizeof nf, "%d", m->num_frames);
    snprintf(ch, sizeof ch, "%d", m->chunk_frames > 0 ? m->chunk_frames : 3);
    snprintf(fsl, sizeof fsl, "%lld", (long long)t->caps[0].frame_tokens);
    const char *kv[48] = {"tap_mode", "frames", "extraction_method", "streaming", "num_frames", nf,
                          "num_frame_per_block", fpb, "chunk_frames", ch, "frame_seq_length", fsl,
                          "prompt", m->prompt ? m->prompt : ""};
    size_t nkv = 14;
    if (m->weights) kv[nkv++] = "weights", kv[nkv++] = m->weights;
    fact_num fn;
    if ((s = facts(t, m, kv, &nkv, fbufs, fn, err))) goto done;
    s = sf_safetensors_write(path, ents, n, kv, nkv / 2, err);
done:
    free(fbufs[0]);
    free(fbufs[1]);
    for (size_t i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    free(names);
    free(ents);
    return s;
}

double sf_taps_logits_bytes(const sf_taps *t, int n_blocks, int n_steps, int fpb, int independent_first,
                            int64_t first_frame, int64_t frame_tokens, int64_t cache_frames, int heads) {
    if (t->mode != SF_TAP_LOGITS || t->n_layers == 0) return 0;
    double sum = 0, seed_lk = 0, seed_bytes = 0;
    int64_t end = first_frame; /* frames up to the end of block b */
    for (int b = 0; b < n_blocks; b++) {
        const int64_t f = independent_first && b == 0 ? 1 : fpb;
        end += f;
        const double lq = (double)(f * frame_tokens), lk = (double)((end < cache_frames ? end : cache_frames) * frame_tokens);
        const double one = 2.0 * heads * lq * lk; /* one forward of one layer, f16 */
        for (int s = 0; s <= n_steps; s++)
            if (selects_forward(t, b, s, 0)) sum += one;
        if (lk > seed_lk) seed_lk = lk, seed_bytes = one; /* the first with the most keys */
    }
    return t->n_layers * (t->sel == SF_TAP_SEL_SEED ? seed_bytes : sum);
}

/* MemAvailable in bytes (SF_MEM_AVAILABLE_MB overrides it), or -1 when unknown */
static double mem_available(void) {
    const char *e = getenv("SF_MEM_AVAILABLE_MB");
    if (e && *e) return atof(e) * 1048576.0;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb < 0 ? -1 : kb * 1024.0;
}

static const char *human(double bytes, char *buf, size_t n) {
    if (bytes >= 1e9) snprintf(buf, n, "%.1f GB", bytes / 1e9);
    else snprintf(buf, n, "%.2f MB", bytes / 1e6);
    return buf;
}

sf_status sf_taps_check_room(const sf_taps *t, double bytes, const char *path, sf_err *err) {
    if (bytes <= 0) return SF_OK;
    const double mem = mem_available();
    char hb[32], hm[32];
    char dir[4096];
    sf_path_dir(path, dir, sizeof dir);
    struct statvfs vf;
    const double disk = statvfs(dir, &vf) == 0 ? (double)vf.f_bavail * (double)vf.f_frsize : -1;
    const char *hint = "tap fewer layers (--layer_indices), one forward (--tap-select b:B,s:S), or the aggregates "
                       "(--tap-mode frames / probs: kilobytes)";
    if (mem >= 0 && bytes > mem)
        return sf_fail(err, SF_E_NOMEM, "the logits taps of %d layer(s) would hold %s in memory until the run ends, "
                       "%s is available: %s", t->n_layers, human(bytes, hb, sizeof hb), human(mem, hm, sizeof hm), hint);
    if (disk >= 0 && bytes > disk)
        return sf_fail(err, SF_E_IO, "the logits taps of %d layer(s) would write %s to %s, which has %s free: %s",
                       t->n_layers, human(bytes, hb, sizeof hb), dir, human(disk, hm, sizeof hm), hint);
    sf_info("attention taps: %s (%.0f bytes) of logits held until the end of the run, then written to %s",
            human(bytes, hb, sizeof hb), bytes, path);
    return SF_OK;
}

sf_status sf_taps_check_path(const sf_taps *t, const char *path, sf_err *err) {
    int st = ends_with(path, ".safetensors"), pt = ends_with(path, ".pt") || ends_with(path, ".pth");
    if (!st && !pt) return sf_fail(err, SF_E_ARG, "--output_path %s: use a .pt or .safetensors extension", path);
    if (pt && (t->mode == SF_TAP_PROBS || t->mode == SF_TAP_TOKENS || t->cross))
        return sf_fail(err, SF_E_ARG, "--output_path %s: --tap-mode probs / tokens and --tap-cross write .safetensors only",
                       path);
    if (t->cross && t->mode == SF_TAP_FRAMES && t->sel == SF_TAP_SEL_SEED)
        return sf_fail(err, SF_E_ARG, "--tap-cross with the streaming aggregate (--tap-mode frames --tap-select seed): "
                                      "use --tap-select all or b:B,s:S");
    const char *name = sf_taps_pt_layout_name(t->pt.layout);
    if (t->pt.layout != SF_PT_AUTO && !pt)
        return sf_fail(err, SF_E_ARG, "--pt-layout %s writes a .pt dict: --output_path %s needs a .pt extension", name, path);
    if (t->pt.layout != SF_PT_AUTO && (t->mode != SF_TAP_FRAMES || t->sel != SF_TAP_SEL_SEED))
        return sf_fail(err, SF_E_ARG, "--pt-layout %s is made of the streaming aggregate: use --tap-mode frames --tap-select seed",
                       name);
    if (pt && sf_taps_pt_per_layer(t) && t->n_layers > 1 && !strstr(path, "{layer}"))
        return sf_fail(err, SF_E_ARG, "the %s .pt holds one layer; got %d layers (put {layer} in --output_path for one file "
                       "per layer, or use .safetensors)", t->pt.layout == SF_PT_AUTO ? "streaming" : name, t->n_layers);
    return SF_OK;
}

sf_status sf_taps_write(const sf_taps *t, const char *path, const sf_taps_meta *meta, sf_err *err) {
    if (t->n_caps == 0) return sf_fail(err, SF_E_NOTFOUND, "no attention was captured (check --layer_indices / --tap-select)");
    sf_status s = sf_taps_check_path(t, path, err);
    if (s) return s;
    int stream = t->mode == SF_TAP_FRAMES && t->sel == SF_TAP_SEL_SEED;
    if (ends_with(path, ".pt") || ends_with(path, ".pth"))
        return sf_taps_write_pt(t, path, meta, err);
    if (stream) return write_stream_st(t, path, meta, err);
    size_t ne = 0;
    for (size_t i = 0; i < t->n_caps; i++) ne += t->caps[i].stats ? 2 : 1;
    sf_tensor_entry *ents = calloc(ne, sizeof *ents);
    char **names = calloc(ne, sizeof *names), *bufs[2] = {NULL, NULL};
    if (!ents || !names) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto done; }
    for (size_t i = 0, e = 0; i < t->n_caps; i++)
        for (int st = 0; st < (t->caps[i].stats ? 2 : 1); st++, e++) {
            char nm[96];
            cap_name(t, &t->caps[i], st, nm, sizeof nm);
            names[e] = strdup(nm);
            if (!names[e]) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto done; }
            ents[e].name = names[e];
            ents[e].t = st ? cap_stats_tensor(&t->caps[i]) : sf_taps_cap_tensor(&t->caps[i]);
        }
    char fpb[32], nf[32], fsl[32];
    snprintf(fpb, sizeof fpb, "%d", meta->num_frame_per_block);
    snprintf(nf, sizeof nf, "%d", meta->num_frames);
    /* tokens per latent frame: readers (sf-taps) need it to group keys by frame, and a
     * 1-frame first block (independent_first_frame) makes Lq / num_frame_per_block wrong */
    snprintf(fsl, sizeof fsl, "%lld", (long long)t->caps[0].frame_tokens);
    static const char *mode_names[] = {"logits", "frames", "probs", "tokens"};
    const char *kv[48] = {"tap_mode", mode_names[t->mode], "num_frames", nf, "num_frame_per_block", fpb,
                          "frame_seq_length", fsl, "prompt", meta->prompt ? meta->prompt : ""};
    size_t nkv = 10;
    if (meta->weights) kv[nkv++] = "weights", kv[nkv++] = meta->weights;
    fact_num fn;
    if ((s = facts(t, meta, kv, &nkv, bufs, fn, err))) goto done;
    s = sf_safetensors_write(path, ents, ne, kv, nkv / 2, err);
done:
    if (names)
        for (size_t i = 0; i < ne; i++) free(names[i]);
    free(bufs[0]);
    free(bufs[1]);
    free(names);
    free(ents);
    return s;
}
