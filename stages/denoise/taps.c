/* taps.c — attention taps: capture, selection, frame aggregates and the output files (see taps.h).
 * Mirrors the fork's attention capture (wan/modules/attention.py), run_extraction_figure4.py's
 * selection + torch.save dict and run_extraction_streaming.py's frame aggregates.
 * Tested by tests/unit/test_dit_taps.c. */
#define _POSIX_C_SOURCE 200809L
#include "taps.h"
#include "pickle.h"

#include <math.h>
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
    int n = 0;
    if (!strcmp(s, "seed")) *sel = SF_TAP_SEL_SEED;
    else if (!strcmp(s, "all")) *sel = SF_TAP_SEL_ALL;
    else if (sscanf(s, "b:%d,s:%d%n", b, st, &n) == 2 && s[n] == 0 && *b >= 0 && *st >= 0) *sel = SF_TAP_SEL_ONE;
    else return sf_fail(err, SF_E_ARG, "--tap-select: expected seed, all or b:B,s:S, got '%s'", s);
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
    t->sel = mode == SF_TAP_FRAMES && sel == SF_TAP_SEL_SEED ? SF_TAP_SEL_ALL : sel;
    t->sel_block = sel_block;
    t->sel_step = sel_step;
    return SF_OK;
}

static void cap_free(sf_tap_capture *c) {
    free(c->logits);
    free(c->frames);
    memset(c, 0, sizeof *c);
}

void sf_taps_free(sf_taps *t) {
    for (size_t i = 0; i < t->n_caps; i++) cap_free(&t->caps[i]);
    free(t->caps);
    free(t->layers);
    free(t->buf);
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

static sf_status tap_done(void *ctx, const sf_dit_attn_view *v, sf_err *err) {
    sf_taps *t = ctx;
    const int64_t S = v->frame_tokens, d = v->head_dim;
    if (t->mode == SF_TAP_LOGITS) {
        if (!v->logits)
            return sf_fail(err, SF_E_NOMEM, "out of memory for the logits of layer %d (%d×%lld×%lld floats)", v->layer,
                           v->heads, (long long)v->Lq, (long long)v->Lk);
        sf_tap_capture *c = NULL;
        if (t->sel == SF_TAP_SEL_SEED) { /* per layer: the first capture with the largest Lk */
            for (size_t i = 0; i < t->n_caps; i++)
                if (t->caps[i].layer == v->layer) c = &t->caps[i];
            if (c && c->Lk >= v->Lk) return SF_OK;
            if (c) cap_free(c);
        }
        int fresh = c == NULL;
        if (fresh && !(c = new_cap(t, err))) return SF_E_NOMEM;
        size_t n = (size_t)v->heads * (size_t)v->Lq * (size_t)v->Lk;
        c->logits = malloc(n * sizeof(uint16_t));
        if (!c->logits) return sf_fail(err, SF_E_NOMEM, "out of memory storing the logits of layer %d", v->layer);
        for (size_t i = 0; i < n; i++) c->logits[i] = sf_f32_to_f16(v->logits[i]);
        c->layer = v->layer;
        c->block = t->cur_block;
        c->step = t->cur_step;
        c->start_frame = t->cur_start;
        c->heads = v->heads;
        c->Lq = v->Lq;
        c->Lk = v->Lk;
        c->frame_tokens = S;
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
    if (!qm || !km || !c->frames) {
        free(qm);
        free(km);
        free(c->frames);
        c->frames = NULL;
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
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
    c->layer = v->layer;
    c->block = t->cur_block;
    c->step = t->cur_step;
    c->start_frame = t->cur_start;
    c->heads = v->heads;
    c->Lq = v->Lq;
    c->Lk = v->Lk;
    c->frame_tokens = S;
    t->n_caps++;
    return SF_OK;
}

void sf_taps_attach(sf_taps *t, sf_dit_state *st) {
    st->tap.wants = tap_wants;
    st->tap.logits_buf = tap_logits_buf;
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
    s = sf_torch_write(path, root, err);
done:
    sf_py_free(list);
    sf_py_free(root);
    return s;
}

sf_status sf_taps_write(const sf_taps *t, const char *path, const sf_taps_meta *meta, sf_err *err) {
    if (t->n_caps == 0) return sf_fail(err, SF_E_NOTFOUND, "no attention was captured (check --layer_indices / --tap-select)");
    if (ends_with(path, ".pt") || ends_with(path, ".pth")) return write_pt(t, path, meta, err);
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
    char fpb[32], nf[32];
    snprintf(fpb, sizeof fpb, "%d", meta->num_frame_per_block);
    snprintf(nf, sizeof nf, "%d", meta->num_frames);
    const char *kv[] = {"tap_mode", t->mode == SF_TAP_LOGITS ? "logits" : "frames", "num_frames", nf,
                        "num_frame_per_block", fpb, "prompt", meta->prompt ? meta->prompt : ""};
    s = sf_safetensors_write(path, ents, t->n_caps, kv, 4, err);
done:
    if (names)
        for (size_t i = 0; i < t->n_caps; i++) free(names[i]);
    free(names);
    free(ents);
    return s;
}
