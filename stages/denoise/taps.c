/* taps.c — attention taps: capture, selection, frame aggregates and the output files (see taps.h).
 * Mirrors the fork's attention capture (wan/modules/attention.py), run_extraction_figure4.py's
 * selection + torch.save dict and run_extraction_streaming.py's frame aggregates, its
 * FrameAttentionAggregator (step-0 capture per block → full_frame_attention) and save_data dict.
 * Tested by tests/unit/test_dit_taps.c (vs taps_base stream.* goldens, .pt read back) and
 * tests/bats/sf-denoise.bats, tests/bats/streaming.bats. */
#define _POSIX_C_SOURCE 200809L
#include "taps.h"
#include "pickle.h"

#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sf_status sf_taps_parse_mode(const char *s, sf_tap_mode *m, sf_err *err) {
    if (!strcmp(s, "logits")) *m = SF_TAP_LOGITS;
    else if (!strcmp(s, "frames")) *m = SF_TAP_FRAMES;
    else return sf_fail(err, SF_E_ARG, "--tap-mode: expected logits or frames, got '%s'", s);
    return SF_OK;
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
    return SF_OK;
}

static void cap_free(sf_tap_capture *c) {
    free(c->logits);
    free(c->frames);
    free(c->key_frames);
    memset(c, 0, sizeof *c);
}

void sf_taps_free(sf_taps *t) {
    for (size_t i = 0; i < t->n_caps; i++) cap_free(&t->caps[i]);
    free(t->caps);
    free(t->layers);
    free(t->buf);
    free(t->pend);
    memset(t, 0, sizeof *t);
}

void sf_taps_on_forward(sf_taps *t, int block, int step, int64_t start_frame) {
    t->cur_block = block;
    t->cur_step = step;
    t->cur_start = start_frame;
}

static int tap_wants(void *ctx, int layer) {
    sf_taps *t = ctx;
    if (t->sel == SF_TAP_SEL_ONE && (t->cur_block != t->sel_block || t->cur_step != t->sel_step)) return 0;
    /* streaming aggregate: only the block's first forward (the one whose key frames grew) */
    if (t->mode == SF_TAP_FRAMES && t->sel == SF_TAP_SEL_SEED && t->cur_step != 0) return 0;
    for (int i = 0; i < t->n_layers; i++)
        if (t->layers[i] == layer) return 1;
    return 0;
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
        if (t->caps[i].layer == layer) c = &t->caps[i];
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

/* Where a capture comes from: layer, the forward (block, step, start frame) and its shape. */
static void cap_describe(sf_tap_capture *c, const sf_taps *t, const sf_dit_attn_view *v) {
    c->layer = v->layer;
    c->block = t->cur_block;
    c->step = t->cur_step;
    c->start_frame = t->cur_start;
    c->heads = v->heads;
    c->Lq = v->Lq;
    c->Lk = v->Lk;
    c->frame_tokens = v->frame_tokens;
}

static sf_status tap_done(void *ctx, const sf_dit_attn_view *v, sf_err *err) {
    sf_taps *t = ctx;
    const int64_t S = v->frame_tokens, d = v->head_dim;
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
        cap_describe(c, t, v);
        if (fresh) t->n_caps++;
        return SF_OK;
    }
    /* frames: A[h,qf,kf] = (mean_q · mean_k)·scale, reductions in double */
    int64_t QF = v->Lq / S, KF = v->Lk / S;
    sf_tap_capture *c = new_cap(t, err);
    if (!c) return SF_E_NOMEM;
    double *qm = calloc((size_t)(QF * v->heads * d), sizeof(double));
    double *km = calloc((size_t)(KF * v->heads * d), sizeof(double));
    c->frames = calloc((size_t)(v->heads * QF * KF), sizeof(float));
    c->key_frames = malloc(sizeof(int64_t) * (size_t)(KF > 0 ? KF : 1));
    if (!qm || !km || !c->frames || !c->key_frames) {
        free(qm);
        free(km);
        cap_free(c);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    for (int64_t f = 0; f < KF; f++) c->key_frames[f] = v->key_frames ? v->key_frames[f] : f;
    for (int pass = 0; pass < 2; pass++) {
        const float *src = pass ? v->k : v->q;
        double *m = pass ? km : qm;
        int64_t nf = pass ? KF : QF;
        for (int64_t f = 0; f < nf; f++) {
            double *mf = m + f * v->heads * d;
            for (int64_t tk = 0; tk < S; tk++) {
                const float *row = src + (f * S + tk) * v->ld;
                for (int64_t i = 0; i < v->heads * d; i++) mf[i] += row[i];
            }
            for (int64_t i = 0; i < v->heads * d; i++) mf[i] /= (double)S;
        }
    }
    double scale = 1.0 / sqrt((double)d);
    for (int h = 0; h < v->heads; h++)
        for (int64_t qf = 0; qf < QF; qf++)
            for (int64_t kf = 0; kf < KF; kf++) {
                const double *a = qm + (qf * v->heads + h) * d, *b = km + (kf * v->heads + h) * d;
                double s = 0;
                for (int64_t i = 0; i < d; i++) s += a[i] * b[i];
                c->frames[(h * QF + qf) * KF + kf] = (float)(s * scale);
            }
    free(qm);
    free(km);
    cap_describe(c, t, v);
    t->n_caps++;
    return SF_OK;
}

void sf_taps_attach(sf_taps *t, sf_dit_state *st) {
    st->tap.wants = tap_wants;
    st->tap.logits_buf = tap_logits_buf;
    st->tap.logits_f16 = tap_logits_f16;
    st->tap.done = tap_done;
    st->tap.ctx = t;
}

static sf_tensor cap_tensor(const sf_tap_capture *c) {
    if (c->logits) {
        int64_t sh[4] = {1, c->heads, c->Lq, c->Lk};
        return sf_tensor_view(c->logits, SF_F16, 4, sh);
    }
    int64_t sh[3] = {c->heads, c->Lq / c->frame_tokens, c->Lk / c->frame_tokens};
    return sf_tensor_view(c->frames, SF_F32, 3, sh);
}

static void cap_name(const sf_taps *t, const sf_tap_capture *c, char *nm, size_t n) {
    if (t->mode == SF_TAP_FRAMES) snprintf(nm, n, "frames.L%d.b%d.s%d", c->layer, c->block, c->step);
    else if (t->sel == SF_TAP_SEL_SEED) snprintf(nm, n, "fig4.L%d.attn_logits", c->layer);
    else snprintf(nm, n, "taps.L%d.b%d.s%d", c->layer, c->block, c->step);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static sf_py *int_range(int64_t a, int64_t b) {
    sf_py *l = sf_py_list();
    for (int64_t i = a; l && i < b; i++) sf_py_append(l, sf_py_int(i));
    return l;
}

/* The figure-4 dict (SPEC.md §7.3); other selections add every capture under its name. */
static sf_status write_pt(const sf_taps *t, const char *path, const sf_taps_meta *m, sf_err *err) {
    sf_py *root = sf_py_dict(), *list = sf_py_list();
    sf_status s = SF_OK;
    if (!root || !list) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto done; }
    const sf_tap_capture *first = NULL;
    int64_t S = t->n_caps ? t->caps[0].frame_tokens : 1;
    /* layers ascending (the reference groups by layer and iterates sorted) */
    for (int layer = 0; layer < 4096; layer++)
        for (size_t i = 0; i < t->n_caps; i++) {
            const sf_tap_capture *c = &t->caps[i];
            if (c->layer != layer) continue;
            if (!first) first = c;
            sf_py *e = sf_py_dict();
            sf_tensor tv = cap_tensor(c);
            sf_py_dict_set(e, "layer_idx", sf_py_int(c->layer));
            if (t->mode == SF_TAP_LOGITS) sf_py_dict_set(e, "attn_logits", sf_py_tensor(&tv));
            else sf_py_dict_set(e, "frame_attention", sf_py_tensor(&tv));
            sf_py_dict_set(e, "is_logits", sf_py_bool(1));
            sf_py_dict_set(e, "num_frames", sf_py_int(m->num_frames));
            sf_py_dict_set(e, "frame_seq_length", sf_py_int(c->frame_tokens));
            sf_py_dict_set(e, "num_heads", sf_py_int(c->heads));
            sf_py_dict_set(e, "num_query_frames", sf_py_int(c->Lq / c->frame_tokens));
            sf_py_dict_set(e, "num_key_frames", sf_py_int(c->Lk / c->frame_tokens));
            if (t->sel != SF_TAP_SEL_SEED) {
                sf_py_dict_set(e, "block", sf_py_int(c->block));
                sf_py_dict_set(e, "step", sf_py_int(c->step));
            }
            sf_py_append(list, e);
        }
    sf_py_dict_set(root, "attention_weights", list);
    list = NULL;
    sf_py_dict_set(root, "prompt", sf_py_str(m->prompt ? m->prompt : ""));
    sf_py_dict_set(root, "num_frames", sf_py_int(m->num_frames));
    sf_py_dict_set(root, "frame_seq_length", sf_py_int(S));
    sf_py_dict_set(root, "num_frame_per_block", sf_py_int(m->num_frame_per_block));
    sf_py *li = sf_py_list();
    for (int i = 0; i < t->n_layers; i++) sf_py_append(li, sf_py_int(t->layers[i]));
    sf_py_dict_set(root, "layer_indices", li);
    sf_py_dict_set(root, "is_logits", sf_py_bool(1));
    sf_py_dict_set(root, "capture_method", sf_py_str(t->mode == SF_TAP_LOGITS ? "native_inference_capture"
                                                                              : "streaming_frame_aggregate"));
    if (first) {
        sf_py_dict_set(root, "query_frames",
                       int_range(first->start_frame, first->start_frame + first->Lq / first->frame_tokens));
        sf_py_dict_set(root, "key_frames", int_range(0, first->Lk / first->frame_tokens));
    }
    /* sfpipe's addition, after the reference's keys (their order unchanged): which weights ran */
    if (m->weights) sf_py_dict_set(root, "weights", sf_py_str(m->weights));
    s = sf_torch_write(path, root, err);
done:
    sf_py_free(list);
    sf_py_free(root);
    return s;
}

/* ---------------------------------------------------------------- streaming aggregate (frames + seed) */

static int last_block_size(const sf_taps_meta *m) {
    return m->independent_first_frame && m->num_frames == 1 ? 1 : m->num_frame_per_block;
}

sf_status sf_taps_stream_matrix(const sf_taps *t, int layer, const sf_taps_meta *meta, int *heads, float *full,
                                float *last, sf_err *err) {
    const int64_t T = meta->num_frames;
    int H = 0;
    for (size_t i = 0; i < t->n_caps; i++)
        if (t->caps[i].layer == layer) H = t->caps[i].heads;
    if (!H) return sf_fail(err, SF_E_NOTFOUND, "no frame attention was captured for layer %d", layer);
    *heads = H;
    memset(full, 0, sizeof(float) * (size_t)(H * T * T));
    for (size_t i = 0; i < t->n_caps; i++) {
        const sf_tap_capture *c = &t->caps[i];
        if (c->layer != layer || !c->frames) continue;
        int64_t QF = c->Lq / c->frame_tokens, KF = c->Lk / c->frame_tokens;
        if (c->heads != H || c->start_frame < 0 || c->start_frame + QF > T)
            return sf_fail(err, SF_E_ARG, "frame capture of layer %d block %d does not fit %lld frames", layer, c->block,
                           (long long)T);
        for (int64_t kf = 0; kf < KF; kf++)
            if (c->key_frames[kf] < 0 || c->key_frames[kf] >= T)
                return sf_fail(err, SF_E_ARG, "frame capture of layer %d: key frame %lld outside %lld frames", layer,
                               (long long)c->key_frames[kf], (long long)T);
        for (int h = 0; h < H; h++)
            for (int64_t qf = 0; qf < QF; qf++)
                for (int64_t kf = 0; kf < KF; kf++)
                    full[(h * T + c->start_frame + qf) * T + c->key_frames[kf]] = c->frames[(h * QF + qf) * KF + kf];
    }
    int64_t lb = last_block_size(meta), q0 = T - lb;
    if (lb < 1 || q0 < 0) return sf_fail(err, SF_E_ARG, "bad block layout for the streaming aggregate");
    for (int h = 0; h < H; h++)
        for (int64_t k = 0; k < T; k++) {
            double sum = 0;
            for (int64_t q = q0; q < T; q++) sum += full[(h * T + q) * T + k];
            last[h * T + k] = (float)(sum / (double)lb);
        }
    return SF_OK;
}

/* Both aggregates of one layer, owned f32 buffers. */
static sf_status stream_alloc(const sf_taps *t, int layer, const sf_taps_meta *m, int *H, float **full, float **last,
                              sf_err *err) {
    const size_t T = (size_t)(m->num_frames > 0 ? m->num_frames : 1);
    int heads = 0;
    for (size_t i = 0; i < t->n_caps; i++)
        if (t->caps[i].layer == layer) heads = t->caps[i].heads;
    *full = NULL;
    *last = NULL;
    if (!heads) return sf_fail(err, SF_E_NOTFOUND, "no frame attention was captured for layer %d", layer);
    size_t n;
    if (!sf_mul_ok((size_t)heads, T, &n) || !sf_mul_ok(n, T, &n)) return sf_fail(err, SF_E_NOMEM, "size overflow");
    *full = malloc(n * sizeof(float));
    *last = malloc((size_t)heads * T * sizeof(float));
    if (!*full || !*last) return sf_fail(err, SF_E_NOMEM, "out of memory");
    return sf_taps_stream_matrix(t, layer, m, H, *full, *last, err);
}

static uint16_t *to_f16(const float *x, size_t n) {
    uint16_t *y = malloc((n ? n : 1) * sizeof(uint16_t));
    for (size_t i = 0; y && i < n; i++) y[i] = sf_f32_to_f16(x[i]);
    return y;
}

/* run_extraction_streaming.py's save_data dict (SPEC.md §7.4), one layer. */
static sf_status write_stream_pt(const sf_taps *t, const char *path, const sf_taps_meta *m, sf_err *err) {
    if (t->n_layers != 1)
        return sf_fail(err, SF_E_ARG, "the streaming .pt holds one layer (--layer_index); got %d layers (use .safetensors)",
                       t->n_layers);
    const int64_t T = m->num_frames, fpb = m->num_frame_per_block;
    float *full = NULL, *last = NULL;
    uint16_t *f16 = NULL, *l16 = NULL;
    sf_py *root = NULL;
    int H = 0;
    sf_status s = stream_alloc(t, t->layers[0], m, &H, &full, &last, err);
    if (s) goto done;
    f16 = to_f16(full, (size_t)(H * T * T));
    l16 = to_f16(last, (size_t)(H * T));
    root = sf_py_dict();
    sf_py *bs = sf_py_list();
    if (!f16 || !l16 || !root || !bs) {
        sf_py_free(bs);
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    int64_t rest = T;
    if (m->independent_first_frame && rest > 0) {
        sf_py_append(bs, sf_py_int(1));
        rest--;
    }
    for (int64_t i = 0; fpb > 0 && i < rest / fpb; i++) sf_py_append(bs, sf_py_int(fpb));
    int64_t sf[3] = {H, T, T}, sl[2] = {H, T};
    sf_tensor tf = sf_tensor_view(f16, SF_F16, 3, sf), tl = sf_tensor_view(l16, SF_F16, 2, sl);
    int64_t S = t->n_caps ? t->caps[0].frame_tokens : 0;
    sf_py_dict_set(root, "layer_index", sf_py_int(t->layers[0]));
    sf_py_dict_set(root, "full_frame_attention", sf_py_tensor(&tf));
    sf_py_dict_set(root, "last_block_frame_attention", sf_py_tensor(&tl));
    sf_py_dict_set(root, "is_logits", sf_py_bool(1));
    sf_py_dict_set(root, "prompt", sf_py_str(m->prompt ? m->prompt : ""));
    sf_py_dict_set(root, "num_frames", sf_py_int(T));
    sf_py_dict_set(root, "frame_seq_length", sf_py_int(S));
    sf_py_dict_set(root, "num_frame_per_block", sf_py_int(fpb));
    sf_py_dict_set(root, "num_heads", sf_py_int(H));
    sf_py_dict_set(root, "block_sizes", bs);
    sf_py_dict_set(root, "query_frames", int_range(0, T));
    sf_py_dict_set(root, "key_frames", int_range(0, T));
    sf_py_dict_set(root, "last_block_query_frames", int_range(T - last_block_size(m), T));
    sf_py_dict_set(root, "extraction_method", sf_py_str("streaming"));
    sf_py_dict_set(root, "chunk_frames", sf_py_int(m->chunk_frames > 0 ? m->chunk_frames : 3));
    if (m->weights) sf_py_dict_set(root, "weights", sf_py_str(m->weights)); /* sfpipe's, after the script's keys */
    s = sf_torch_write(path, root, err);
done:
    sf_py_free(root);
    free(full);
    free(last);
    free(f16);
    free(l16);
    return s;
}

/* stream.L<l>.full_frame_attention / .last_block_frame_attention (f32) for every requested layer. */
static sf_status write_stream_st(const sf_taps *t, const char *path, const sf_taps_meta *m, sf_err *err) {
    size_t n = (size_t)t->n_layers * 2;
    sf_tensor_entry *ents = calloc(n ? n : 1, sizeof *ents);
    char (*names)[64] = calloc(n ? n : 1, 64);
    float **bufs = calloc(n ? n : 1, sizeof *bufs);
    sf_status s = SF_OK;
    if (!ents || !names || !bufs) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto done; }
    const int64_t T = m->num_frames;
    for (int i = 0; i < t->n_layers; i++) {
        int H = 0, l = t->layers[i];
        if ((s = stream_alloc(t, l, m, &H, &bufs[2 * i], &bufs[2 * i + 1], err))) goto done;
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
    const char *kv[] = {"tap_mode", "frames", "extraction_method", "streaming", "num_frames", nf,
                        "num_frame_per_block", fpb, "chunk_frames", ch, "frame_seq_length", fsl,
                        "prompt", m->prompt ? m->prompt : "", "weights", m->weights ? m->weights : ""};
    s = sf_safetensors_write(path, ents, n, kv, m->weights ? 8 : 7, err);
done:
    for (size_t i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    free(names);
    free(ents);
    return s;
}

sf_status sf_taps_write(const sf_taps *t, const char *path, const sf_taps_meta *meta, sf_err *err) {
    if (t->n_caps == 0) return sf_fail(err, SF_E_NOTFOUND, "no attention was captured (check --layer_indices / --tap-select)");
    int stream = t->mode == SF_TAP_FRAMES && t->sel == SF_TAP_SEL_SEED;
    if (ends_with(path, ".pt") || ends_with(path, ".pth"))
        return stream ? write_stream_pt(t, path, meta, err) : write_pt(t, path, meta, err);
    if (stream && ends_with(path, ".safetensors")) return write_stream_st(t, path, meta, err);
    if (!ends_with(path, ".safetensors"))
        return sf_fail(err, SF_E_ARG, "--output_path %s: use a .pt or .safetensors extension", path);
    sf_tensor_entry *ents = calloc(t->n_caps, sizeof *ents);
    char **names = calloc(t->n_caps, sizeof *names);
    sf_status s = SF_OK;
    if (!ents || !names) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < t->n_caps; i++) {
        char nm[96];
        cap_name(t, &t->caps[i], nm, sizeof nm);
        names[i] = strdup(nm);
        if (!names[i]) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto done; }
        ents[i].name = names[i];
        ents[i].t = cap_tensor(&t->caps[i]);
    }
    char fpb[32], nf[32], fsl[32];
    snprintf(fpb, sizeof fpb, "%d", meta->num_frame_per_block);
    snprintf(nf, sizeof nf, "%d", meta->num_frames);
    /* tokens per latent frame: readers (sf-taps) need it to group keys by frame, and a
     * 1-frame first block (independent_first_frame) makes Lq / num_frame_per_block wrong */
    snprintf(fsl, sizeof fsl, "%lld", (long long)t->caps[0].frame_tokens);
    const char *kv[] = {"tap_mode", t->mode == SF_TAP_LOGITS ? "logits" : "frames", "num_frames", nf,
                        "num_frame_per_block", fpb, "frame_seq_length", fsl, "prompt", meta->prompt ? meta->prompt : "",
                        "weights", meta->weights ? meta->weights : ""};
    s = sf_safetensors_write(path, ents, t->n_caps, kv, meta->weights ? 6 : 5, err);
done:
    if (names)
        for (size_t i = 0; i < t->n_caps; i++) free(names[i]);
    free(names);
    free(ents);
    return s;
}
