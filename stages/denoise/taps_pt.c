/* taps_pt.c — the taps as the reference scripts' torch.save dicts (taps.h, sf_pt_layout): the
 * figure-4 dict (run_extraction_figure4.py), the streaming aggregate (run_extraction_streaming.py's
 * FrameAttentionAggregator: each block's step-0 capture → full_frame_attention [heads, T, T]) and
 * the dicts made of it: run_extraction_streaming.py's and run_extraction_full_attention.py's save_data,
 * run_extraction_streaming_distributed.py's two modes (one file a layer). Keys in the scripts' order;
 * sfpipe's "weights" (which weights ran) after them. Split out of taps.c. Tested by
 * tests/unit/test_dit_taps.c and tests/bats/streaming.bats, reference_scripts.bats. */
#define _POSIX_C_SOURCE 200809L
#include "taps.h"
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The layer_indices list as typed, like the reference's args.layer_indices (sf_taps_given_layers). */
static sf_py *given_layers(const sf_taps *t) {
    sf_py *li = sf_py_list();
    for (int i = 0; li && i < (t->given ? t->n_given : t->n_layers); i++)
        sf_py_append(li, sf_py_int(t->given ? t->given[i] : t->layers[i]));
    return li;
}

static sf_py *int_range(int64_t a, int64_t b) {
    sf_py *l = sf_py_list();
    for (int64_t i = a; l && i < b; i++) sf_py_append(l, sf_py_int(i));
    return l;
}

/* Whether a self-attention capture's key slots hold frames 0, 1, … in order (what the figure-4 dict's key_frames
 * say), not a rolling cache's or an ablated layer's. */
static int plain_keys(const sf_tap_capture *c) {
    for (int64_t f = 0; c->key_frames && f < c->Lk / c->frame_tokens; f++)
        if (c->key_frames[f] != f) return 0;
    return 1;
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
            sf_tensor tv = sf_taps_cap_tensor(c);
            sf_py_dict_set(e, "layer_idx", sf_py_int(c->layer));
            if (t->mode == SF_TAP_LOGITS) sf_py_dict_set(e, "attn_logits", sf_py_tensor(&tv));
            else sf_py_dict_set(e, "frame_attention", sf_py_tensor(&tv));
            sf_py_dict_set(e, "is_logits", sf_py_bool(1));
            sf_py_dict_set(e, "num_frames", sf_py_int(m->num_frames));
            sf_py_dict_set(e, "frame_seq_length", sf_py_int(c->frame_tokens));
            sf_py_dict_set(e, "num_heads", sf_py_int(c->heads));
            sf_py_dict_set(e, "num_query_frames", sf_py_int(c->Lq / c->frame_tokens));
            sf_py_dict_set(e, "num_key_frames", sf_py_int(c->Lk / c->frame_tokens));
            if (!plain_keys(c)) { /* sfpipe's addition: which frames its slots hold (rolling cache, --sink-ablate) */
                sf_py *kf = sf_py_list();
                for (int64_t f = 0; kf && f < c->Lk / c->frame_tokens; f++) sf_py_append(kf, sf_py_int(c->key_frames[f]));
                sf_py_dict_set(e, "key_frames", kf);
            }
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
    sf_py_dict_set(root, "layer_indices", given_layers(t));
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
            if (c->key_frames[kf] == -1) /* --kv-compress, --pc-budget: no one frame to put the slot's mass at */
                return sf_fail(err, SF_E_ARG, "frame capture of layer %d block %d: its keys include a compressed cache's "
                                              "kept tokens (mixed frames), which a frame-by-frame matrix cannot hold: keep every "
                                              "forward's captures instead (--tap-select all: key_frames −1 marks those "
                                              "slots)", layer, c->block);
            else if (c->key_frames[kf] < 0 || c->key_frames[kf] >= T)
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
sf_status sf_taps_stream_alloc(const sf_taps *t, int layer, const sf_taps_meta *m, int *H, float **full, float **last,
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

/* [1, fpb, fpb, ...] or [fpb, ...]: the reference's block_sizes for the run's frames. */
static sf_py *block_sizes(const sf_taps_meta *m) {
    sf_py *bs = sf_py_list();
    int64_t rest = m->num_frames, fpb = m->num_frame_per_block;
    if (bs && m->independent_first_frame && rest > 0) {
        sf_py_append(bs, sf_py_int(1));
        rest--;
    }
    for (int64_t i = 0; bs && fpb > 0 && i < rest / fpb; i++) sf_py_append(bs, sf_py_int(fpb));
    return bs;
}

static int64_t frame_tokens(const sf_taps *t) {
    return t->n_caps ? t->caps[0].frame_tokens : 0;
}

/* One layer's streaming dict in the layout's keys and order: run_extraction_streaming.py's save_data
 * (SPEC.md §7.4), or run_extraction_streaming_distributed.py's (multi_layer: extraction_method
 * 'distributed_streaming', rank, world_size; multi_prompt: prompt_index, 'distributed_multi_prompt'). */
static sf_status write_layer_pt(const sf_taps *t, int layer, const char *path, const sf_taps_meta *m, sf_err *err) {
    const int64_t T = m->num_frames;
    const sf_pt_layout L = t->pt.layout;
    float *full = NULL, *last = NULL;
    uint16_t *f16 = NULL, *l16 = NULL;
    sf_py *root = NULL;
    int H = 0;
    sf_status s = sf_taps_stream_alloc(t, layer, m, &H, &full, &last, err);
    if (s) goto done;
    f16 = to_f16(full, (size_t)(H * T * T));
    l16 = to_f16(last, (size_t)(H * T));
    root = sf_py_dict();
    sf_py *bs = block_sizes(m);
    if (!f16 || !l16 || !root || !bs) {
        sf_py_free(bs);
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    int64_t sf[3] = {H, T, T}, sl[2] = {H, T};
    sf_tensor tf = sf_tensor_view(f16, SF_F16, 3, sf), tl = sf_tensor_view(l16, SF_F16, 2, sl);
    sf_py_dict_set(root, "layer_index", sf_py_int(layer));
    sf_py_dict_set(root, "full_frame_attention", sf_py_tensor(&tf));
    sf_py_dict_set(root, "last_block_frame_attention", sf_py_tensor(&tl));
    sf_py_dict_set(root, "is_logits", sf_py_bool(1));
    sf_py_dict_set(root, "prompt", sf_py_str(m->prompt ? m->prompt : ""));
    if (L == SF_PT_DISTRIBUTED_MULTI_PROMPT) sf_py_dict_set(root, "prompt_index", sf_py_int(t->pt.prompt_index));
    sf_py_dict_set(root, "num_frames", sf_py_int(T));
    sf_py_dict_set(root, "frame_seq_length", sf_py_int(frame_tokens(t)));
    sf_py_dict_set(root, "num_frame_per_block", sf_py_int(m->num_frame_per_block));
    sf_py_dict_set(root, "num_heads", sf_py_int(H));
    sf_py_dict_set(root, "block_sizes", bs);
    if (L == SF_PT_DISTRIBUTED_STREAMING) {
        sf_py_dict_set(root, "extraction_method", sf_py_str("distributed_streaming"));
        sf_py_dict_set(root, "rank", sf_py_int(t->pt.rank));
        sf_py_dict_set(root, "world_size", sf_py_int(t->pt.world_size));
    } else if (L == SF_PT_DISTRIBUTED_MULTI_PROMPT) {
        sf_py_dict_set(root, "extraction_method", sf_py_str("distributed_multi_prompt"));
    } else {
        sf_py_dict_set(root, "query_frames", int_range(0, T));
        sf_py_dict_set(root, "key_frames", int_range(0, T));
        sf_py_dict_set(root, "last_block_query_frames", int_range(T - last_block_size(m), T));
        sf_py_dict_set(root, "extraction_method", sf_py_str("streaming"));
        sf_py_dict_set(root, "chunk_frames", sf_py_int(m->chunk_frames > 0 ? m->chunk_frames : 3));
    }
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

/* path with every "{layer}" replaced by the layer's number (owned), or NULL (out of memory). */
static char *layer_path(const char *path, int layer) {
    char num[16];
    int nn = snprintf(num, sizeof num, "%d", layer);
    size_t n = strlen(path) + 1;
    for (const char *p = path; (p = strstr(p, "{layer}")); p += 7) n += (size_t)nn;
    char *out = malloc(n), *o = out;
    for (const char *p = path; out && *p;) {
        if (!strncmp(p, "{layer}", 7)) {
            memcpy(o, num, (size_t)nn);
            o += nn, p += 7;
        } else
            *o++ = *p++;
    }
    if (out) *o = 0;
    return out;
}

/* Each tapped layer's dict to its file; on a failure the files written so far are removed. */
static sf_status write_layers_pt(const sf_taps *t, const char *path, const sf_taps_meta *m, sf_err *err) {
    char **done = calloc((size_t)(t->n_layers > 0 ? t->n_layers : 1), sizeof *done);
    sf_status s = done ? SF_OK : sf_fail(err, SF_E_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; !s && i < t->n_layers; i++) {
        if (!(done[i] = layer_path(path, t->layers[i]))) s = sf_fail(err, SF_E_NOMEM, "out of memory");
        else if (!(s = write_layer_pt(t, t->layers[i], done[i], m, err))) n = i + 1;
    }
    for (int i = 0; done && i < t->n_layers; i++) {
        if (s && i < n) unlink(done[i]);
        free(done[i]);
    }
    free(done);
    return s;
}

/* run_extraction_full_attention.py's save_data: per layer (ascending) the frame-level mean logits
 * [heads, T, T] of each block's first capture whose key length equals the block's end (its step 0,
 * the streaming aggregate's selection); a block whose step 0 sees fewer frames (a rolling KV window
 * that evicted some) has no such capture there and keeps zero rows, as in the reference. */
static sf_status write_full_pt(const sf_taps *t, const char *path, const sf_taps_meta *m, sf_err *err) {
    const int64_t T = m->num_frames;
    sf_py *root = sf_py_dict(), *list = sf_py_list();
    uint16_t **keep = calloc((size_t)(t->n_layers > 0 ? t->n_layers : 1), sizeof *keep);
    sf_status s = root && list && keep ? SF_OK : sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int i = 0; !s && i < t->n_layers; i++) { /* t->layers: ascending, no repeats */
        const int layer = t->layers[i];
        float *full = NULL, *last = NULL;
        int H = 0;
        if (!(s = sf_taps_stream_alloc(t, layer, m, &H, &full, &last, err))) {
            for (size_t c = 0; c < t->n_caps; c++) {
                const sf_tap_capture *cp = &t->caps[c];
                const int64_t QF = cp->Lq / cp->frame_tokens, KF = cp->Lk / cp->frame_tokens;
                if (cp->layer != layer || KF == cp->start_frame + QF) continue;
                for (int h = 0; h < H; h++)
                    memset(&full[(h * T + cp->start_frame) * T], 0, sizeof(float) * (size_t)(QF * T));
            }
            keep[i] = to_f16(full, (size_t)(H * T * T));
            if (!keep[i]) s = sf_fail(err, SF_E_NOMEM, "out of memory");
        }
        free(full);
        free(last);
        if (s) break;
        int64_t sh[3] = {H, T, T};
        sf_tensor tv = sf_tensor_view(keep[i], SF_F16, 3, sh);
        sf_py *e = sf_py_dict();
        sf_py_dict_set(e, "layer_idx", sf_py_int(layer));
        sf_py_dict_set(e, "full_frame_attention", sf_py_tensor(&tv));
        sf_py_dict_set(e, "is_logits", sf_py_bool(1));
        sf_py_dict_set(e, "num_frames", sf_py_int(T));
        sf_py_dict_set(e, "num_heads", sf_py_int(H));
        sf_py_append(list, e);
    }
    if (!s) {
        sf_py_dict_set(root, "attention_weights", list);
        list = NULL;
        sf_py_dict_set(root, "prompt", sf_py_str(m->prompt ? m->prompt : ""));
        sf_py_dict_set(root, "num_frames", sf_py_int(T));
        sf_py_dict_set(root, "frame_seq_length", sf_py_int(frame_tokens(t)));
        sf_py_dict_set(root, "num_frame_per_block", sf_py_int(m->num_frame_per_block));
        sf_py_dict_set(root, "layer_indices", given_layers(t));
        sf_py_dict_set(root, "is_logits", sf_py_bool(1));
        sf_py_dict_set(root, "capture_method", sf_py_str("full_matrix_all_blocks"));
        sf_py_dict_set(root, "block_sizes", block_sizes(m));
        if (m->weights) sf_py_dict_set(root, "weights", sf_py_str(m->weights));
        s = sf_torch_write(path, root, err);
    }
    sf_py_free(list);
    sf_py_free(root);
    for (int i = 0; keep && i < t->n_layers; i++) free(keep[i]);
    free(keep);
    return s;
}

sf_status sf_taps_write_pt(const sf_taps *t, const char *path, const sf_taps_meta *meta, sf_err *err) {
    if (t->pt.layout == SF_PT_FULL_ATTENTION) return write_full_pt(t, path, meta, err);
    if (!sf_taps_pt_per_layer(t)) return write_pt(t, path, meta, err);
    return write_layers_pt(t, path, meta, err);
}
