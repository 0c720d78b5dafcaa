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
 * On a GPU the importances come from cuBLASLt logits chunks (sf_key_mass_cuda), the selection of every layer's heads
 * from one kernel (sf_topk_select_cuda: the CPU's choice exactly, on the same scores), then a gather kernel per layer
 * and part: all before the forward, nothing waiting on the host; where the kept tokens came from (kvc_src) catches up
 * at the forward's end (sf_dit_settle: one download of the choice). Tested by tests/unit/test_dit_longvideo.c
 * (kv_compress_*: the compressed slots against a brute force written in the test, the plain run before the first
 * eviction, the re-cache, Deep Sink beside it) and test_dit_cuda_shapes.c (kv_compress_*: the GPU path against the
 * CPU, on the emulation in make test). */
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
    free(st->kvc_q), free(st->kvc_score), free(st->kvc_idx), free(st->kvc_src), free(st->kvc_pend), free(st->kvc_old_kf);
    st->kvc_pend = NULL, st->kvc_old_kf = NULL;
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
    st->kvc_idx = malloc(sizeof(int32_t) * nidx);
    st->kvc_src = malloc(sizeof(int32_t) * nidx);
    if (st->gpu) { /* the choice is made on the device; the host's record of it waits in these */
        st->kvc_pend = calloc((size_t)NL, 1);
        st->kvc_old_kf = malloc(sizeof(int64_t) * (size_t)(cache_fr > 0 ? cache_fr : 1));
    } else {
        st->kvc_score = malloc(sizeof(double) * nscore);
    }
    if (!st->kvc_idx || !st->kvc_src || (st->gpu ? !st->kvc_pend || !st->kvc_old_kf : !st->kvc_score)) {
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

/* Where layer l's kept tokens came from, after a compression chose idx (each head's, ascending: idx[i] ≥ i): a kept
 * token of the last compression (this video's, when valid), else the frame its candidate slot held (kf: key_frames
 * as before the roll) — in place. */
static void provenance(sf_dit_state *st, int l, const int32_t *idx, int valid, const int64_t *kf) {
    const int H = st->w->cfg.num_heads;
    const int64_t kept = st->kvc_tokens, S = st->frame_tokens, T = st->sink_tokens;
    for (int h = 0; h < H; h++) {
        int32_t *src = st->kvc_src + ((size_t)l * (size_t)H + (size_t)h) * (size_t)kept;
        const int32_t *ih = idx + (size_t)h * (size_t)kept;
        for (int64_t i = 0; i < kept; i++) src[i] = valid && ih[i] < kept ? src[ih[i]] : (int32_t)kf[(T + ih[i]) / S];
    }
}

/* Layer l's selection on the CPU: the kept tokens of each head (sf_kv_select_cpu, or the test seam), and where they
 * came from. */
static int pick(sf_dit_state *st, int l, int64_t n, const double *score, int32_t *idx) {
    const int H = st->w->cfg.num_heads;
    const int64_t kept = st->kvc_tokens;
    const int r = st->kvc_select ? st->kvc_select(st->kvc_select_ctx, l, H, n, score, kept, idx)
                                 : sf_kv_select_cpu(H, n, score, kept, idx);
    if (!r) provenance(st, l, idx, st->kvc_src_valid, st->key_frames);
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

/* The same on the device: all layers' scores, every layer's heads chosen by one kernel, then the moves; the choice's
 * record on the host (provenance) pending until sf_dit_settle. */
static sf_status compress_gpu(sf_dit_state *st, int64_t n, int64_t rest, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const int64_t D = c->dim, H = c->num_heads, hd = D / H, T = st->sink_tokens, kept = st->kvc_tokens, NL = c->num_layers;
    const int64_t L = (int64_t)st->max_frames * st->frame_tokens, row = 2 * D;
    const float scale = (float)(1.0 / sqrt((double)hd));
    if (st->kvc_select) return sf_fail(err, SF_E_UNSUPPORTED, "kvc_select (a test seam) runs on the CPU only");
    sf_status s = SF_OK;
    for (int l = 0; l < NL && !s; l++) {
        const bf16 *KV = g->kv + (size_t)l * (size_t)(st->cache_tokens * row);
        s = sf_key_mass_cuda(&g->cx, st->kvc_lq, st->local_end, (int)H, (int)hd, g->kvc_q + (size_t)l * (size_t)(L * D), D,
                             KV, row, scale, T, n, g->kvc_S, g->kvc_rows, g->kvc_lse,
                             g->kvc_score + (size_t)l * (size_t)(H * n), err);
    }
    /* the layers' scores packed (H·n each), a segment a head */
    if (!s) s = sf_topk_select_cuda(&g->cx, (int)(NL * H), n, g->kvc_score, n, NULL, 0, 0, kept, g->kvc_idx, kept, NULL, err);
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
    /* (the last compression's record on the host is complete: sf_dit_forward settles before it plans) */
    sf_status s = st->gpu ? compress_gpu(st, n, rest, err) : compress_cpu(st, n, rest, err);
    if (s) return s;
    if (st->gpu) { /* what provenance will need of the state as it is now */
        memcpy(st->kvc_old_kf, st->key_frames, sizeof(int64_t) * (size_t)(st->cache_tokens / S));
        st->kvc_old_valid = st->kvc_src_valid;
        memset(st->kvc_pend, 1, (size_t)st->w->cfg.num_layers);
    }
    const int64_t sf = T / S, kf = kept / S;
    for (int64_t f = sf; f < sf + kf; f++) st->key_frames[f] = -1; /* tokens of mixed frames, per head */
    memmove(st->key_frames + sf + kf, st->key_frames + sf + n / S, sizeof(int64_t) * (size_t)(rest / S));
    st->kvc_runs++, st->kvc_src_valid = 1;
    *done = 1;
    return SF_OK;
}

sf_status sf_dit_settle(sf_dit_state *st, int l, sf_err *err) {
    if (!st->gpu) return SF_OK;
    const int NL = st->w->cfg.num_layers, H = st->w->cfg.num_heads;
    const int64_t kept = st->kvc_tokens;
    for (int i = l < 0 ? 0 : l; i < (l < 0 ? NL : l + 1); i++) {
        if (st->kvc_pend && st->kvc_pend[i]) {
            int32_t *idx = st->kvc_idx + (size_t)i * (size_t)H * (size_t)kept;
            sf_status s = sf_cuda_copy_d2h(&st->gpu->cx, idx, st->gpu->kvc_idx + (size_t)i * (size_t)H * (size_t)kept,
                                           sizeof(int32_t) * (size_t)(H * kept), err);
            if (s) return s;
            provenance(st, i, idx, st->kvc_old_valid, st->kvc_old_kf);
            st->kvc_pend[i] = 0;
        }
        if (st->pc_pend && st->pc_pend[i]) {
            sf_status s = sf_dit_pc_settle(st, i, err);
            if (s) return s;
        }
    }
    return SF_OK;
}

sf_status sf_dit_cuda_compression(sf_dit_state *st, int l, int64_t n, int64_t keep, double *score, int32_t *idx,
                                  int32_t *count, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const int64_t H = st->w->cfg.num_heads, cache = st->cache_tokens;
    if (!g || l < 0 || l >= st->w->cfg.num_layers || (st->kvc_tokens <= 0 && st->pc_budget <= 0))
        return sf_fail(err, SF_E_ARG, "sf_dit_cuda_compression: no compression on a GPU state (layer %d)", l);
    sf_status s;
    if (st->kvc_tokens > 0) {
        if (n < 0 || n > st->kvc_tokens + (int64_t)st->max_frames * st->frame_tokens || keep != st->kvc_tokens)
            return sf_fail(err, SF_E_ARG, "sf_dit_cuda_compression: %lld candidates, %lld kept", (long long)n, (long long)keep);
        if ((s = sf_cuda_copy_d2h(&g->cx, score, g->kvc_score + (size_t)l * (size_t)(H * n), sizeof(double) * (size_t)(H * n), err)))
            return s;
        return sf_cuda_copy_d2h(&g->cx, idx, g->kvc_idx + (size_t)l * (size_t)(H * keep), sizeof(int32_t) * (size_t)(H * keep), err);
    }
    if (n < 0 || keep < 0 || n > cache || keep > cache)
        return sf_fail(err, SF_E_ARG, "sf_dit_cuda_compression: %lld candidates, %lld kept", (long long)n, (long long)keep);
    const size_t at = (size_t)l * (size_t)cache;
    if ((s = sf_cuda_copy_d2h(&g->cx, score, g->pc_score + at, sizeof(double) * (size_t)n, err)) ||
        (s = sf_cuda_copy_d2h(&g->cx, idx, g->pc_idx + at, sizeof(int32_t) * (size_t)keep, err)))
        return s;
    return count ? sf_cuda_copy_d2h(&g->cx, count, g->pc_count + at, sizeof(int32_t) * (size_t)cache, err) : SF_OK;
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
