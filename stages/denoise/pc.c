/* pc.c — Participative Compression as Deep Forcing's released code runs it (sf-denoise --pc-budget; contract:
 * sf_dit_set_pc in dit.h), both backends.
 *
 * The rule, read from the authors' code release (Yi et al., `wan/modules/causal_model.py`, February 2026) and
 * written here in our own terms:
 * - every forward's post-RoPE queries join a per-layer window of the last R query rows (R = --pc-recent frames'
 *   worth; the window spans forwards: at a block's first forward it holds the block's queries and the end of the
 *   block before's clean-context pass);
 * - when a block's first forward finds the cache too full for its tokens, every layer compresses: of the T cached
 *   tokens plus the block's, the sink stays, the newest R stay (the block's own among them), and of the candidates
 *   between them the C = budget − sink − R with the highest score join them, in cache order. A candidate's score is
 *   the window's query sum dotted with its key over all the heads' features, over √d·heads: one score for every
 *   head, no softmax (kernels/kv_compress.h sf_pc_scores_cpu). Ties go to the older token; a token already chosen
 *   --pc-max-reuse times (the release's default: 7) stands back while enough others can be chosen;
 * - with a sink, the sink's keys then move in time as if the compressed cache ended where the block begins: the
 *   sink starts budget frames before the block (the shift the release gives them), held until the next
 *   compression (sink_rope.c, mode 2).
 * Where sfpipe differs, and why (docs/sink-workbench.md): scores in fp64 (the release rounds them to bf16, whose
 * ties torch.topk breaks its own way); when the reuse limit leaves too few candidates, the best held-back ones fill
 * the rest, so every layer's cache keeps one length (the release then keeps a shorter cache in that layer; at its
 * settings — sink 10, budget 16, recent 4, blocks of 3 — a compression always has 6 fresh frames for 2 kept); the
 * sink's first shift is its absolute place, where the release hard-codes 21 − budget (the same number when the
 * blocks fill a 21-frame window); the window is reset with each video (the release keeps it across the prompts of
 * one process; its scripts run one prompt a process). The release's "Top-C RoPE" adjustment never runs at its
 * settings (its region is empty whenever the cache is no longer than the window), so kept tokens keep their RoPE.
 * On a GPU every step runs on the device — the selection too (sf_topk_select_cuda, the CPU's choice exactly on the
 * same scores), the reuse counts with it (sf_pc_finish_cuda) — so a compressing forward waits on nothing and is a
 * CUDA graph like the others (the window's update is one kernel whatever its position); where the kept tokens came
 * from (pc_src) and the fills catch up at the forward's end (sf_dit_settle: one download of each layer's choice).
 * Tested against the release's own code on the tiny model (tests/golden/expect/dit_deepforcing.safetensors, made by
 * tests/heldout/make_deepforcing.py; sf-denoise.bats: every prediction within 1e-4), by tests/unit/test_dit_pc.c (every compression of every layer against a brute force of the algorithm written
 * in the test) and test_dit_cuda_shapes.c (pc_*: the GPU against the CPU). */
#include "cuda_ops.h"
#include "dit.h"
#include "dit_cuda_impl.h"
#include "kv_compress.h"
#include "kv_compress_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void free_gpu(sf_dit_gpu *g) {
    g->state_bytes -= g->pc_bytes, g->pc_bytes = 0;
    sf_cuda_free(g->pc_ring), sf_cuda_free(g->pc_tmp), sf_cuda_free(g->pc_new);
    sf_cuda_free(g->pc_qsum), sf_cuda_free(g->pc_score), sf_cuda_free(g->pc_idx), sf_cuda_free(g->pc_count);
    sf_cuda_free(g->pc_itmp), sf_cuda_free(g->pc_fills);
    g->pc_ring = g->pc_tmp = g->pc_new = NULL, g->pc_qsum = g->pc_score = NULL, g->pc_idx = g->pc_count = NULL;
    g->pc_itmp = NULL, g->pc_fills = NULL;
}

void sf_dit_pc_free(sf_dit_state *st) {
    if (st->gpu) free_gpu(st->gpu);
    free(st->pc_ring), free(st->pc_count), free(st->pc_qsum), free(st->pc_score), free(st->pc_idx);
    free(st->pc_src), free(st->pc_old_kf), free(st->pc_pend);
    st->pc_pend = NULL;
    st->pc_ring = NULL, st->pc_count = NULL, st->pc_qsum = st->pc_score = NULL, st->pc_idx = NULL;
    st->pc_src = NULL, st->pc_old_kf = NULL, st->pc_kept = st->pc_kept_old = 0;
    st->pc_budget = st->pc_recent = 0, st->pc_head = st->pc_len = 0, st->pc_sink_want = 0;
}

void sf_dit_pc_reset(sf_dit_state *st) {
    const size_t n = (size_t)st->w->cfg.num_layers * (size_t)st->cache_tokens;
    if (st->pc_count) memset(st->pc_count, 0, sizeof(int32_t) * n);
    if (st->pc_pend) memset(st->pc_pend, 0, (size_t)st->w->cfg.num_layers);
    sf_err e = {{0}};
    if (st->gpu && st->gpu->pc_count && sf_cuda_memset(&st->gpu->cx, st->gpu->pc_count, 0, sizeof(int32_t) * n, &e))
        sf_log(SF_LOG_WARN, "sf-denoise: --pc-budget's counts not reset: %s", e.msg); /* the next forward's call fails too */
}

sf_status sf_dit_pc_fits(int64_t budget, int64_t recent, int64_t sink_frames, int block_frames, int64_t cache_frames,
                         sf_err *err) {
    if (budget < 0 || recent < 0)
        return sf_fail(err, SF_E_ARG, "--pc-budget %lld --pc-recent %lld: frames, 0 or more", (long long)budget,
                       (long long)recent);
    if (recent < block_frames)
        return sf_fail(err, SF_E_ARG, "--pc-recent %lld: the recent frames must hold a block (%d frames): a block's "
                                      "own tokens are always kept", (long long)recent, block_frames);
    if (sink_frames + recent > budget)
        return sf_fail(err, SF_E_ARG, "--pc-budget %lld: the sink (%lld frame%s) and the recent frames (%lld) need %lld",
                       (long long)budget, (long long)sink_frames, sink_frames == 1 ? "" : "s", (long long)recent,
                       (long long)(sink_frames + recent));
    if (budget > cache_frames)
        return sf_fail(err, SF_E_ARG, "--pc-budget %lld: the cache holds %lld frames (local_attn_size)", (long long)budget,
                       (long long)cache_frames);
    return SF_OK;
}

sf_status sf_dit_set_pc(sf_dit_state *st, int64_t budget, int64_t recent, int max_reuse, sf_err *err) {
    const sf_dit_config *c = &st->w->cfg;
    const int64_t S = st->frame_tokens, NL = c->num_layers, D = c->dim, cache = st->cache_tokens;
    if (budget < 0 || recent < 0 || max_reuse < 0)
        return sf_fail(err, SF_E_ARG, "--pc-budget %lld --pc-recent %lld --pc-max-reuse %d: 0 or more",
                       (long long)budget, (long long)recent, max_reuse);
    if (st->sink_rope == 2) { /* the sink back as cached, before the rest goes */
        sf_status s = sf_dit_set_sink_rope(st, 0, 0, err);
        if (s) return s;
    }
    sf_dit_pc_free(st);
    if (budget == 0) return SF_OK;
    if (st->local_attn_size == -1 || sf_dit_window_tokens(st) < cache)
        return sf_fail(err, SF_E_ARG, "--pc-budget needs a rolling KV cache (local_attn_size): without eviction nothing "
                                      "is compressed");
    if (st->kvc_tokens > 0)
        return sf_fail(err, SF_E_ARG, "--pc-budget and --kv-compress are two rules for one cache: give one");
    if (st->sink_rope == 1)
        return sf_fail(err, SF_E_ARG, "--pc-budget moves the sink itself, as Deep Forcing's code does: leave --sink-rope "
                                      "out");
    sf_status s = sf_dit_pc_fits(budget, recent, S > 0 ? st->sink_tokens / S : 0, st->max_frames, S > 0 ? cache / S : 0, err);
    if (s) return s;
    const int64_t R = recent * S;
    st->pc_idx = malloc(sizeof(int32_t) * (size_t)cache);
    st->pc_src = malloc(sizeof(int32_t) * (size_t)(NL * cache));
    st->pc_old_kf = malloc(sizeof(int64_t) * (size_t)(S > 0 ? cache / S : 1));
    if (st->gpu) { /* the counts, sums and scores live on the device; the host's record of a choice waits in these */
        st->pc_pend = calloc((size_t)NL, 1);
    } else {
        st->pc_count = calloc((size_t)(NL * cache), sizeof(int32_t));
        st->pc_qsum = malloc(sizeof(double) * (size_t)D);
        st->pc_score = malloc(sizeof(double) * (size_t)cache);
    }
    if (!st->pc_idx || !st->pc_src || !st->pc_old_kf ||
        (st->gpu ? !st->pc_pend : !st->pc_count || !st->pc_qsum || !st->pc_score)) {
        s = sf_fail(err, SF_E_NOMEM, "--pc-budget: out of memory");
    } else if (st->gpu) {
        sf_dit_gpu *g = st->gpu;
        const size_t b_ring = sizeof(bf16) * (size_t)(NL * R * D), b_tmp = sizeof(bf16) * (size_t)(budget * S * 2 * D);
        const size_t b_new = sizeof(bf16) * (size_t)((int64_t)st->max_frames * S * 2 * D);
        const size_t b_sc = sizeof(double) * (size_t)(NL * cache), b_i = sizeof(int32_t) * (size_t)(NL * cache);
        if (!(s = sf_cuda_malloc((void **)&g->pc_ring, b_ring, err)) && !(s = sf_cuda_malloc((void **)&g->pc_tmp, b_tmp, err)) &&
            !(s = sf_cuda_malloc((void **)&g->pc_new, b_new, err)) &&
            !(s = sf_cuda_malloc((void **)&g->pc_qsum, sizeof(double) * (size_t)D, err)) &&
            !(s = sf_cuda_malloc((void **)&g->pc_score, b_sc, err)) && !(s = sf_cuda_malloc((void **)&g->pc_idx, b_i, err)) &&
            !(s = sf_cuda_malloc((void **)&g->pc_count, b_i, err)) &&
            !(s = sf_cuda_malloc((void **)&g->pc_itmp, sizeof(int32_t) * (size_t)cache, err)) &&
            !(s = sf_cuda_malloc((void **)&g->pc_fills, sizeof(int64_t) * (size_t)NL, err)) &&
            !(s = sf_cuda_memset(&g->cx, g->pc_count, 0, b_i, err))) /* every slot's count 0, as the CPU's calloc */
            g->pc_bytes = b_ring + b_tmp + b_new + sizeof(double) * (size_t)D + b_sc + 2 * b_i +
                          sizeof(int32_t) * (size_t)cache + sizeof(int64_t) * (size_t)NL,
            g->state_bytes += g->pc_bytes;
    } else if (!(st->pc_ring = malloc(sizeof(float) * (size_t)(NL * R * D)))) {
        s = sf_fail(err, SF_E_NOMEM, "--pc-budget: out of memory for the query window (%lld rows a layer)", (long long)R);
    }
    if (!s && st->sink_tokens > 0) s = sf_dit_set_sink_rope(st, 2, 0, err); /* the release's sink shift */
    if (s) {
        sf_dit_pc_free(st);
        return s;
    }
    st->pc_budget = budget * S, st->pc_recent = R, st->pc_max_reuse = max_reuse;
    return SF_OK;
}

int sf_dit_pc_sizes(const sf_dit_state *st, int64_t n_new, int64_t start_frame, int64_t window_rows, sf_dit_kv_step *kv) {
    const int64_t S = st->frame_tokens, lend = st->local_end;
    if (st->pc_budget <= 0 || start_frame * S + n_new <= st->global_end || n_new + lend <= st->cache_tokens) return 0;
    /* the release's arithmetic: T tokens with the block's; the window's rows after this forward's join it */
    const int64_t T = lend + n_new, R = st->pc_recent;
    int64_t reff = window_rows + n_new < R ? window_rows + n_new : R;
    if (reff > T) reff = T;
    const int64_t sink = st->sink_tokens;
    int64_t cap = st->pc_budget < st->cache_tokens ? st->pc_budget : st->cache_tokens;
    if (cap < sink + reff) cap = sink + reff;
    if (cap > T) cap = T;
    const int64_t from = T - reff; /* > sink, ≤ lend: sf_dit_pc_fits holds sink + R ≤ budget and a block ≤ R */
    int64_t topc = cap - sink - reff;
    if (topc > from - sink) topc = from - sink;
    if (topc < 0) topc = 0;
    const int64_t le = sink + topc + reff;
    memset(kv, 0, sizeof *kv);
    kv->ls = le - n_new, kv->le = le, kv->pc = 1, kv->pc_topc = topc, kv->pc_from = from, kv->pc_end = lend;
    return 1;
}

int sf_dit_pc_plan(sf_dit_state *st, int64_t n_new, int64_t start_frame, sf_dit_kv_step *kv) {
    if (!sf_dit_pc_sizes(st, n_new, start_frame, st->pc_len, kv)) return 0;
    const int64_t S = st->frame_tokens, sink = st->sink_tokens, topc = kv->pc_topc, from = kv->pc_from;
    const int64_t lend = kv->pc_end, le = kv->le;
    /* key_frames: the kept slots hold tokens of mixed frames (−1), the old recent frames move down behind them
       (forward() then writes the block's); every quantity is whole frames */
    const int64_t sf = sink / S, kf = topc / S;
    memcpy(st->pc_old_kf, st->key_frames, sizeof(int64_t) * (size_t)(lend / S)); /* where the candidates came from */
    st->pc_kept_old = st->pc_kept, st->pc_kept = topc;
    memmove(st->key_frames + sf + kf, st->key_frames + from / S, sizeof(int64_t) * (size_t)((lend - from) / S));
    for (int64_t f = sf; f < sf + kf; f++) st->key_frames[f] = -1;
    if (sink > 0) st->pc_sink_want = start_frame - le / S; /* as if the compressed cache ended at the block */
    st->pc_runs++;
    return 1;
}

void sf_dit_pc_advance(sf_dit_state *st, int64_t L) {
    if (st->pc_budget <= 0) return;
    const int64_t R = st->pc_recent, n = st->pc_len + L;
    if (n <= R) {
        st->pc_len = n;
    } else {
        st->pc_head = (st->pc_head + n - R) % R;
        st->pc_len = R;
    }
}

/* Where layer l's topc chosen tokens came from (idx ascending, relative to the sink): a kept token's own frame, else
 * its slot's (pc_old_kf: key_frames before the plan) — in place. */
static void provenance(sf_dit_state *st, int l, const int32_t *idx, int64_t topc) {
    int32_t *src = st->pc_src + (size_t)l * (size_t)st->cache_tokens;
    for (int64_t i = 0; i < topc; i++)
        src[i] = idx[i] < st->pc_kept_old ? src[idx[i]]
                                          : (int32_t)st->pc_old_kf[(st->sink_tokens + idx[i]) / st->frame_tokens];
}

/* CPU: the compaction's sources (relative to the sink): the selection, then the old recent slots; returns their count
 * (selection fills, if any, counted in pc_fills), or −1 out of memory. Counts move with their tokens (the chosen
 * +1), the block's slots and those after them start at 0 (sf_pc_finish_cpu). */
static int64_t choose(sf_dit_state *st, int l, const sf_dit_kv_step *kv, int32_t *cnt) {
    const int64_t sink = st->sink_tokens, n = kv->pc_from - sink, topc = kv->pc_topc, old = kv->pc_end - kv->pc_from;
    int32_t *idx = st->pc_idx;
    int64_t fills = 0;
    if (st->kvc_select) { /* the test seam: one "head" */
        if (st->kvc_select(st->kvc_select_ctx, l, 1, n, st->pc_score, topc, idx)) return -1;
    } else if ((fills = sf_pc_select_cpu(n, st->pc_score, cnt + sink, st->pc_max_reuse, topc, idx)) < 0) {
        return -1;
    }
    st->pc_fills += fills;
    provenance(st, l, idx, topc);
    sf_pc_finish_cpu(n, topc, old, idx, cnt + sink, st->cache_tokens - sink);
    return topc + old;
}

/* A compressing forward's window: the last rows of the stream, this forward's L included — as many as the recent
 * tokens kept (T − pc_from) — and where they start in the ring once those L rows are in (every layer alike). */
static int64_t window_rows(const sf_dit_kv_step *kv, int64_t L) { return kv->pc_end + L - kv->pc_from; }
static int64_t window_head(const sf_dit_state *st, const sf_dit_kv_step *kv, int64_t L) {
    return (st->pc_head + st->pc_len + L - window_rows(kv, L)) % st->pc_recent;
}

sf_status sf_dit_pc_layer(sf_dit_state *st, int l, const sf_dit_kv_step *kv, const float *q, int64_t L, sf_err *err) {
    const sf_dit_config *c = &st->w->cfg;
    const int64_t D = c->dim, R = st->pc_recent, sink = st->sink_tokens;
    float *ring = st->pc_ring + (size_t)l * (size_t)(R * D);
    int32_t *cnt = st->pc_count + (size_t)l * (size_t)st->cache_tokens;
    sf_ring_put_cpu(ring, R, D, (st->pc_head + st->pc_len) % R, q, D, L);
    if (!kv->pc) {
        for (int64_t i = kv->ls; i < kv->le; i++) cnt[i] = 0;
        return SF_OK;
    }
    const double scale = sf_pc_score_scale(D / c->num_heads, c->num_heads);
    sf_ring_sum_cpu(ring, R, D, window_head(st, kv, L), window_rows(kv, L), st->pc_qsum);
    sf_pc_scores_cpu(kv->pc_from - sink, D, st->kc[l] + sink * D, D, st->pc_qsum, scale, st->pc_score);
    const int64_t keep = choose(st, l, kv, cnt);
    if (keep < 0) return sf_fail(err, SF_E_NOMEM, "--pc-budget: out of memory");
    sf_kv_gather_cpu(st->kc[l] + sink * D, D, 1, (int)D, keep, st->pc_idx);
    sf_kv_gather_cpu(st->vc[l] + sink * D, D, 1, (int)D, keep, st->pc_idx);
    return SF_OK;
}

sf_status sf_dgpu_pc_layer(sf_dit_state *st, int l, const sf_dit_kv_step *kv, const bf16 *q, int64_t L, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const int64_t D = c->dim, R = st->pc_recent, sink = st->sink_tokens, row = 2 * D, n = kv->pc_from - sink;
    const int64_t cache = st->cache_tokens, topc = kv->pc_topc, old = kv->pc_end - kv->pc_from;
    bf16 *ring = g->pc_ring + (size_t)l * (size_t)(R * D), *KV = g->kv + (size_t)l * (size_t)(cache * row);
    int32_t *cnt = g->pc_count + (size_t)l * (size_t)cache, *idx = g->pc_idx + (size_t)l * (size_t)cache;
    double *score = g->pc_score + (size_t)l * (size_t)cache;
    sf_status s = sf_ring_put_cuda(&g->cx, ring, R, D, (st->pc_head + st->pc_len) % R, q, D, L, err);
    if (s || !kv->pc) return s ? s : sf_fill_i32_cuda(&g->cx, cnt + kv->ls, kv->le - kv->ls, 0, err);
    if (st->kvc_select) return sf_fail(err, SF_E_UNSUPPORTED, "kvc_select (a test seam) runs on the CPU only");
    const double scale = sf_pc_score_scale(D / c->num_heads, c->num_heads);
    if ((s = sf_ring_sum_cuda(&g->cx, ring, R, D, window_head(st, kv, L), window_rows(kv, L), g->pc_qsum, err)) ||
        (s = sf_pc_scores_cuda(&g->cx, n, D, KV + sink * row, row, g->pc_qsum, scale, score, err)) ||
        (s = sf_topk_select_cuda(&g->cx, 1, n, score, n, cnt + sink, n, st->pc_max_reuse, topc, idx, topc,
                                 g->pc_fills + l, err)) ||
        (s = sf_pc_finish_cuda(&g->cx, n, topc, old, idx, cnt + sink, cache - sink, g->pc_itmp, err)) ||
        (s = sf_kv_gather_cuda(&g->cx, KV + sink * row, row, 1, (int)row, topc + old, idx, g->pc_tmp, err)))
        return s;
    st->pc_pend[l] = 1; /* (the same when a graph's capture runs this again) */
    /* the block's K|V rows, made aside while the cache was compacted, into their slots */
    return sf_cuda_copy_d2d(&g->cx, KV + kv->ls * row, g->pc_new, sizeof(bf16) * (size_t)(L * row), err);
}

sf_status sf_dit_pc_settle(sf_dit_state *st, int l, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    int64_t fills = 0;
    const size_t at = (size_t)l * (size_t)st->cache_tokens;
    sf_status s = sf_cuda_copy_d2h(&g->cx, st->pc_idx, g->pc_idx + at, sizeof(int32_t) * (size_t)st->pc_kept, err);
    if (!s) s = sf_cuda_copy_d2h(&g->cx, &fills, g->pc_fills + l, sizeof fills, err);
    if (s) return s;
    provenance(st, l, st->pc_idx, st->pc_kept);
    st->pc_fills += fills, st->pc_pend[l] = 0;
    return SF_OK;
}
