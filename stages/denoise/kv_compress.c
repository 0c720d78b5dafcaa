/* kv_compress.c — Participative Compression of a rolling KV cache (sf-denoise --kv-compress; contract:
 * sf_dit_set_kv_compress / sf_dit_kv_compress in dit.h), both backends.
 *
 * Deep Forcing (Yi et al. 2025) keeps, instead of the oldest frames after the sink, the tokens the latest queries
 * attend most. Its code is not public; the paper says what, not exactly how, so the rule here is ours and exact:
 * - when: at an eviction (a block's first forward finds the cache full), every layer;
 * - candidates: the compressed region's tokens and the frames the eviction drops, i.e. slots
 *   [sink, sink + kept + evict) of the cache as it stands (the recent frames behind them stay whole);
 * - importance: per head, the softmax probability the last forward's queries gave each candidate, summed over
 *   those queries, the softmax taken over every key in the cache [0, local_end) — what that forward's attention
 *   computed (kernels/kv_compress.h). The queries are kept per layer as each forward makes them (post-RoPE);
 * - selection: per head the `kept` most important, ties to the older slot, written in cache order into
 *   [sink, sink + kept) — keys and values as cached, each head its own tokens (a key keeps its RoPE frame);
 * - the rest rolls down behind them, as the reference's eviction rolls it.
 * On a GPU the importances come from cuBLASLt logits chunks (sf_key_mass_cuda), one download of all layers' scores,
 * the selection on the host, one upload, then a gather kernel per layer and part: all before the forward, outside
 * its CUDA graph. Tested by tests/unit/test_dit_longvideo.c (kv_compress_*: the compressed slots against a brute
 * force written in the test, the plain run before the first eviction, the re-cache, Deep Sink beside it) and
 * test_dit_cuda_shapes.c (kv_compress_*: the GPU path against the CPU, on the emulation in make test). */
#include "cuda_ops.h"
#include "dit.h"
#include "dit_cuda_impl.h"
#include "kv_compress.h"
#include "kv_compress_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void free_gpu(sf_dit_gpu *g) {
    g->state_bytes -= g->kvc_bytes, g->kvc_bytes = 0;
    sf_cuda_free(g->kvc_q), sf_cuda_free(g->kvc_tmp), sf_cuda_free(g->kvc_S), sf_cuda_free(g->kvc_lse);
    sf_cuda_free(g->kvc_score), sf_cuda_free(g->kvc_idx);
    g->kvc_q = g->kvc_tmp = NULL, g->kvc_S = NULL, g->kvc_lse = g->kvc_score = NULL, g->kvc_idx = NULL;
}

void sf_dit_kv_compress_free(sf_dit_state *st) {
    if (st->gpu) free_gpu(st->gpu);
    free(st->kvc_q), free(st->kvc_score), free(st->kvc_idx), free(st->kvc_src);
    st->kvc_q = NULL, st->kvc_score = NULL, st->kvc_idx = NULL, st->kvc_src = NULL, st->kvc_tokens = 0, st->kvc_lq = 0;
    st->kvc_src_valid = 0;
}

sf_status sf_dit_kv_compress_fits(int64_t frames, int64_t sink_frames, int block_frames, int64_t cache_frames,
                                  sf_err *err) {
    if (sink_frames + frames + block_frames <= cache_frames) return SF_OK;
    return sf_fail(err, SF_E_ARG,
                   "--kv-compress %lld: the sink (%lld frame%s), the compressed frames and a block (%d) need %lld frames, "
                   "the cache holds %lld (local_attn_size)",
                   (long long)frames, (long long)sink_frames, sink_frames == 1 ? "" : "s", block_frames,
                   (long long)(sink_frames + frames + block_frames), (long long)cache_frames);
}

sf_status sf_dit_set_kv_compress(sf_dit_state *st, int64_t frames, sf_err *err) {
    const sf_dit_config *c = &st->w->cfg;
    const int64_t S = st->frame_tokens, NL = c->num_layers, H = c->num_heads, D = c->dim;
    const int64_t L = (int64_t)st->max_frames * S, cache_fr = S > 0 ? st->cache_tokens / S : 0;
    const int64_t sink_fr = S > 0 ? st->sink_tokens / S : 0;
    if (frames < 0) return sf_fail(err, SF_E_ARG, "--kv-compress %lld: must be 0 or more frames", (long long)frames);
    sf_dit_kv_compress_free(st);
    if (frames == 0) return SF_OK;
    if (st->local_attn_size == -1 || sf_dit_window_tokens(st) < st->cache_tokens)
        return sf_fail(err, SF_E_ARG, "--kv-compress needs a rolling KV cache (local_attn_size): without eviction "
                                      "nothing is dropped, so nothing is compressed");
    sf_status s = sf_dit_kv_compress_fits(frames, sink_fr, st->max_frames, cache_fr, err);
    if (s) return s;
    const int64_t kept = frames * S, ncand = kept + L;
    if (ncand > INT32_MAX) return sf_fail(err, SF_E_ARG, "--kv-compress %lld: too many tokens", (long long)frames);
    const size_t nscore = (size_t)(NL * H * ncand), nidx = (size_t)(NL * H * kept);
    st->kvc_score = malloc(sizeof(double) * nscore);
    st->kvc_idx = malloc(sizeof(int32_t) * nidx);
    st->kvc_src = malloc(sizeof(int32_t) * nidx);
    if (!st->kvc_score || !st->kvc_idx || !st->kvc_src) {
        s = sf_fail(err, SF_E_NOMEM, "--kv-compress: out of memory");
    } else if (st->gpu) {
        sf_dit_gpu *g = st->gpu;
        const int64_t lk = st->cache_tokens;
        g->kvc_rows = sf_key_mass_ws_rows(L, lk);
        const size_t b_q = sizeof(bf16) * (size_t)(NL * L * D), b_tmp = sizeof(bf16) * (size_t)(kept * D);
        const size_t b_S = sizeof(float) * (size_t)(g->kvc_rows * lk), b_lse = sizeof(double) * (size_t)g->kvc_rows;
        if (!(s = sf_cuda_malloc((void **)&g->kvc_q, b_q, err)) && !(s = sf_cuda_malloc((void **)&g->kvc_tmp, b_tmp, err)) &&
            !(s = sf_cuda_malloc((void **)&g->kvc_S, b_S, err)) && !(s = sf_cuda_malloc((void **)&g->kvc_lse, b_lse, err)) &&
            !(s = sf_cuda_malloc((void **)&g->kvc_score, sizeof(double) * nscore, err)) &&
            !(s = sf_cuda_malloc((void **)&g->kvc_idx, sizeof(int32_t) * nidx, err)))
            g->kvc_bytes = b_q + b_tmp + b_S + b_lse + sizeof(double) * nscore + sizeof(int32_t) * nidx,
            g->state_bytes += g->kvc_bytes;
    } else if (!(st->kvc_q = malloc(sizeof(float) * (size_t)(NL * L * D)))) {
        s = sf_fail(err, SF_E_NOMEM, "--kv-compress: out of memory for the kept queries");
    }
    if (s) {
        sf_dit_kv_compress_free(st);
        return s;
    }
    st->kvc_tokens = kept;
    return SF_OK;
}

/* Layer l's selection: the kept tokens of each head (sf_kv_select_cpu, or the test seam); then where each came
 * from — a kept token of the last compression (this video's), else the frame its candidate slot holds (key_frames,
 * still as before the roll) — in place (idx ascending, idx[i] ≥ i). */
static int pick(sf_dit_state *st, int l, int64_t n, const double *score, int32_t *idx) {
    const int H = st->w->cfg.num_heads;
    const int64_t kept = st->kvc_tokens, S = st->frame_tokens, T = st->sink_tokens;
    const int r = st->kvc_select ? st->kvc_select(st->kvc_select_ctx, l, H, n, score, kept, idx)
                                 : sf_kv_select_cpu(H, n, score, kept, idx);
    for (int h = 0; h < H && !r; h++) {
        int32_t *src = st->kvc_src + ((size_t)l * (size_t)H + (size_t)h) * (size_t)kept;
        const int32_t *ih = idx + (size_t)h * (size_t)kept;
        for (int64_t i = 0; i < kept; i++)
            src[i] = st->kvc_src_valid && ih[i] < kept ? src[ih[i]] : (int32_t)st->key_frames[(T + ih[i]) / S];
    }
    return r;
}

/* Every layer, CPU: score, select, gather keys and values, roll the rest. */
static sf_status compress_cpu(sf_dit_state *st, int64_t n, int64_t rest, sf_err *err) {
    const sf_dit_config *c = &st->w->cfg;
    const int64_t D = c->dim, H = c->num_heads, hd = D / H, T = st->sink_tokens, kept = st->kvc_tokens;
    const int64_t L = (int64_t)st->max_frames * st->frame_tokens;
    const float scale = (float)(1.0 / sqrt((double)hd));
    for (int l = 0; l < c->num_layers; l++) {
        double *score = st->kvc_score + (size_t)l * (size_t)(H * n); /* packed, as the GPU's */
        int32_t *idx = st->kvc_idx + (size_t)l * (size_t)(H * kept);
        sf_status s = sf_key_mass_cpu(st->kvc_lq, st->local_end, (int)H, (int)hd, st->kvc_q + (size_t)l * (size_t)(L * D),
                                      D, st->kc[l], D, scale, T, n, score, st->nthreads, err);
        if (s) return s;
        if (pick(st, l, n, score, idx)) return sf_fail(err, SF_E_NOMEM, "--kv-compress: out of memory");
        float *parts[2] = {st->kc[l], st->vc[l]};
        for (int p = 0; p < 2; p++) {
            sf_kv_gather_cpu(parts[p] + T * D, D, (int)H, (int)hd, kept, idx);
            memmove(parts[p] + (T + kept) * D, parts[p] + (T + n) * D, sizeof(float) * (size_t)(rest * D));
        }
    }
    return SF_OK;
}

/* The same on the device: all layers' scores, one download, the selection here, one upload, then the moves. */
static sf_status compress_gpu(sf_dit_state *st, int64_t n, int64_t rest, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const int64_t D = c->dim, H = c->num_heads, hd = D / H, T = st->sink_tokens, kept = st->kvc_tokens, NL = c->num_layers;
    const int64_t L = (int64_t)st->max_frames * st->frame_tokens, row = 2 * D;
    const float scale = (float)(1.0 / sqrt((double)hd));
    sf_status s = SF_OK;
    for (int l = 0; l < NL && !s; l++) {
        const bf16 *KV = g->kv + (size_t)l * (size_t)(st->cache_tokens * row);
        s = sf_key_mass_cuda(&g->cx, st->kvc_lq, st->local_end, (int)H, (int)hd, g->kvc_q + (size_t)l * (size_t)(L * D), D,
                             KV, row, scale, T, n, g->kvc_S, g->kvc_rows, g->kvc_lse,
                             g->kvc_score + (size_t)l * (size_t)(H * n), err);
    }
    /* the layers' scores packed (H·n each) */
    if (!s) s = sf_cuda_copy_d2h(&g->cx, st->kvc_score, g->kvc_score, sizeof(double) * (size_t)(NL * H * n), err);
    for (int l = 0; l < NL && !s; l++)
        if (pick(st, l, n, st->kvc_score + (size_t)l * (size_t)(H * n), st->kvc_idx + (size_t)l * (size_t)(H * kept)))
            s = sf_fail(err, SF_E_NOMEM, "--kv-compress: out of memory");
    if (!s) s = sf_cuda_copy_h2d(&g->cx, g->kvc_idx, st->kvc_idx, sizeof(int32_t) * (size_t)(NL * H * kept), err);
    for (int l = 0; l < NL && !s; l++) {
        bf16 *KV = g->kv + (size_t)l * (size_t)(st->cache_tokens * row);
        const int32_t *idx = g->kvc_idx + (size_t)l * (size_t)(H * kept);
        s = sf_kv_gather_cuda(&g->cx, KV + T * row, row, (int)H, (int)hd, kept, idx, g->kvc_tmp, err);
        if (!s) s = sf_kv_gather_cuda(&g->cx, KV + T * row + D, row, (int)H, (int)hd, kept, idx, g->kvc_tmp, err);
        if (!s && rest > 0)
            s = sf_cuda_copy_d2d(&g->cx, KV + (T + kept) * row, KV + (T + n) * row, sizeof(bf16) * (size_t)(rest * row), err);
    }
    return s;
}

sf_status sf_dit_kv_compress(sf_dit_state *st, int64_t evict, int *done, sf_err *err) {
    *done = 0;
    if (st->kvc_tokens <= 0 || evict <= 0 || st->kvc_lq <= 0) return SF_OK;
    const int64_t S = st->frame_tokens, T = st->sink_tokens, kept = st->kvc_tokens, n = kept + evict;
    const int64_t rest = st->local_end - T - n;
    if (rest < 0 || evict % S)
        return sf_fail(err, SF_E_ARG, "--kv-compress: an eviction of %lld tokens from a cache filled to %lld",
                       (long long)evict, (long long)st->local_end);
    sf_status s = st->gpu ? compress_gpu(st, n, rest, err) : compress_cpu(st, n, rest, err);
    if (s) return s;
    const int64_t sf = T / S, kf = kept / S;
    for (int64_t f = sf; f < sf + kf; f++) st->key_frames[f] = -1; /* tokens of mixed frames, per head */
    memmove(st->key_frames + sf + kf, st->key_frames + sf + n / S, sizeof(int64_t) * (size_t)(rest / S));
    st->kvc_runs++, st->kvc_src_valid = 1;
    *done = 1;
    return SF_OK;
}

void sf_dit_kept_view(const sf_dit_state *st, int l, sf_dit_attn_view *v) {
    v->kept_frames = NULL, v->kept_tokens = 0, v->kept_heads = 0;
    if (st->kvc_tokens > 0 && st->kvc_src_valid) {
        const int H = st->w->cfg.num_heads;
        v->kept_frames = st->kvc_src + (size_t)l * (size_t)H * (size_t)st->kvc_tokens;
        v->kept_tokens = st->kvc_tokens, v->kept_heads = H;
    } else if (st->pc_budget > 0 && st->pc_kept > 0) {
        v->kept_frames = st->pc_src + (size_t)l * (size_t)st->cache_tokens;
        v->kept_tokens = st->pc_kept, v->kept_heads = 1;
    }
}
