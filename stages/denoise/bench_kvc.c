/* bench_kvc.c — `sf-denoise --bench kvc --device cuda`: what one eviction of --kv-compress costs at full size
 * (Participative Compression, kv_compress.c), one layer of the 1.3B model timed on the GPU (median of 5 after a
 * warm-up) and ×30 for the block that evicts: a 3-frame block's queries (4680 × 1536 bf16) against a full
 * 21-frame cache (32760 rows of [k | v]) with a 3-frame sink and 6 kept frames, so 9 frames of candidates
 * (14040 tokens) scored and 6 frames' worth kept per head. Rows: the importance (cuBLASLt logits in chunks +
 * the row lse and per-key sums: sf_key_mass_cuda), the selection on the device (sf_topk_select_cuda, a block a
 * head), the gathers of keys and values and the roll of the recent frames; then, not counted, the way it was done
 * before (the scores downloaded, chosen on the host, the choice uploaded): the A/B the device's selection must win.
 * The importance writes and reads every f32 logit (~7.4 GB a layer): the bytes are its floor, printed beside it as the TB/s
 * it reached. Nothing passes or fails on time. `--bench kvc-small`: 64-token frames, to try it on an
 * emulated device. Then the same for --pc-budget's compression at Deep Forcing's settings (bench_pc below). Run by
 * tests/gpu/check.sh (part bench_attn). */
#define _POSIX_C_SOURCE 200809L
#include "stages/denoise/bench.h"

#include "cuda_ops.h"
#include "kv_compress.h"
#include "kv_compress_cuda.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D = 1536, H = 12, HD = 128, F = 3, CACHE_F = 21, SINK_F = 3, KEPT_F = 6, LAYERS = 30, REPS = 5 };

/* One part's median ms over REPS runs after a warm-up: run(ctx, part, rep) enqueues it (rep −1: the warm-up, waited
 * for); host: the part is host work, timed on the wall clock, else between two events of ev on the stream. */
typedef sf_status (*part_fn)(void *ctx, int part, int rep, sf_err *err);
static sf_status time_part(sf_cuda_ctx *cx, void *ev, part_fn run, void *ctx, int part, int host, double *med,
                           sf_err *err) {
    float ms[REPS];
    sf_status s = SF_OK;
    for (int i = -1; i < REPS && !s; i++) {
        if (i >= 0 && (s = sf_cuda_event_record(cx, ev, 2 * i, err))) break;
        const double t0 = sf_now();
        if ((s = run(ctx, part, i, err))) break;
        if (i < 0) s = sf_cuda_sync(cx, err);
        else if (host) ms[i] = (float)((sf_now() - t0) * 1e3);
        else if (!(s = sf_cuda_event_record(cx, ev, 2 * i + 1, err))) s = sf_cuda_event_ms(ev, 2 * i, 2 * i + 1, &ms[i], err);
    }
    if (!s) *med = sf_bench_median_ms(ms, REPS);
    return s;
}

/* --kv-compress's eviction: its sizes and buffers. */
typedef struct kvc_bench {
    sf_cuda_ctx *cx;
    int64_t Lq, Lk, T, kept, n, rest, row, ws_rows;
    void *q, *kv, *tmp;
    float *Sw;
    double *lse, *score, *hscore;
    int32_t *idx, *hidx;
} kvc_bench;

static sf_status kvc_part(void *ctx, int part, int rep, sf_err *err) {
    (void)rep;
    kvc_bench *b = ctx;
    uint16_t *kv = b->kv;
    const float scale = (float)(1.0 / sqrt((double)HD));
    sf_status s = SF_OK;
    switch (part) {
    case 0:
        return sf_key_mass_cuda(b->cx, b->Lq, b->Lk, H, HD, b->q, D, kv, b->row, scale, b->T, b->n, b->Sw, b->ws_rows,
                                b->lse, b->score, err);
    case 1: return sf_topk_select_cuda(b->cx, H, b->n, b->score, b->n, NULL, 0, 0, b->kept, b->idx, b->kept, NULL, err);
    case 2:
        s = sf_kv_gather_cuda(b->cx, kv + b->T * b->row, b->row, H, HD, b->kept, b->idx, b->tmp, err);
        if (!s) s = sf_kv_gather_cuda(b->cx, kv + b->T * b->row + D, b->row, H, HD, b->kept, b->idx, b->tmp, err);
        if (!s)
            s = sf_cuda_copy_d2d(b->cx, kv + (b->T + b->kept) * b->row, kv + (b->T + b->n) * b->row,
                                 sizeof(uint16_t) * (size_t)(b->rest * b->row), err);
        return s;
    default: /* before: the scores to the host, the selection there, the choice back */
        if ((s = sf_cuda_copy_d2h(b->cx, b->hscore, b->score, sizeof(double) * (size_t)(H * b->n), err))) return s;
        if (sf_kv_select_cpu(H, b->n, b->hscore, b->kept, b->hidx)) return sf_fail(err, SF_E_NOMEM, "out of memory");
        return sf_cuda_copy_h2d(b->cx, b->idx, b->hidx, sizeof(int32_t) * (size_t)(H * b->kept), err);
    }
}

static sf_status bench_pc(sf_cuda_ctx *cx, void *ev, void *kv, void *q, int64_t S, sf_err *err);

sf_status sf_denoise_bench_kvc(int cuda_ordinal, int small, sf_err *err) {
    if (cuda_ordinal < 0) return sf_fail(err, SF_E_ARG, "--bench kvc measures the GPU's --kv-compress: give --device cuda");
    const int64_t S = small ? 64 : 1560;
    sf_cuda_ctx cx;
    kvc_bench b = {.cx = &cx, .Lq = F * S, .Lk = CACHE_F * S, .T = SINK_F * S, .kept = KEPT_F * S};
    b.n = b.kept + F * S, b.rest = b.Lk - b.T - b.n, b.row = 2 * D;
    b.ws_rows = sf_key_mass_ws_rows(b.Lq, b.Lk); /* the chunk the DiT's compression uses */
    void *ev = NULL;
    float *hq = NULL;
    sf_status s = sf_cuda_ctx_init(&cx, cuda_ordinal, err);
    if (s) return s;
    if ((s = sf_cuda_malloc(&b.q, (size_t)(b.Lq * D) * 2, err)) || (s = sf_cuda_malloc(&b.kv, (size_t)(b.Lk * b.row) * 2, err)) ||
        (s = sf_cuda_malloc(&b.tmp, (size_t)(b.kept * D) * 2, err)) ||
        (s = sf_cuda_malloc((void **)&b.Sw, sizeof(float) * (size_t)(b.ws_rows * b.Lk), err)) ||
        (s = sf_cuda_malloc((void **)&b.lse, sizeof(double) * (size_t)b.ws_rows, err)) ||
        (s = sf_cuda_malloc((void **)&b.score, sizeof(double) * (size_t)(H * b.n), err)) ||
        (s = sf_cuda_malloc((void **)&b.idx, sizeof(int32_t) * (size_t)(H * b.kept), err)) ||
        (s = sf_cuda_events_new(&ev, 2 * REPS, err)))
        goto done;
    b.hscore = malloc(sizeof(double) * (size_t)(H * b.n));
    b.hidx = malloc(sizeof(int32_t) * (size_t)(H * b.kept));
    hq = malloc(sizeof(float) * (size_t)(b.Lk * b.row));
    if (!b.hscore || !b.hidx || !hq) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    sf_rng r;
    sf_rng_seed(&r, 7);
    for (int64_t i = 0; i < b.Lk * b.row; i++) hq[i] = (float)(2.0 * sf_rng_uniform(&r) - 1.0);
    if ((s = sf_cuda_upload_bf16(&cx, b.kv, hq, (size_t)(b.Lk * b.row), err)) ||
        (s = sf_cuda_upload_bf16(&cx, b.q, hq, (size_t)(b.Lq * D), err)))
        goto done;
    double total = 0;
    for (int part = 0; part < 4 && !s; part++) {
        double med = 0;
        if ((s = time_part(&cx, ev, kvc_part, &b, part, part == 3, &med, err))) break;
        if (part < 3) total += med;
        static const char *const name[4] = {"importance (logits + lse + per-key sums)", "selection on the device",
                                            "gathers of k and v + the roll",
                                            "before, not counted: scores to the host, selection there, its upload"};
        printf("kvc gpu %lld queries x %lld keys, %lld candidates -> %lld kept a head, %s: %.3f ms", (long long)b.Lq,
               (long long)b.Lk, (long long)b.n, (long long)b.kept, name[part], med);
        if (part == 0) {
            const double bytes = (double)H * (double)b.Lq * (2.0 * (double)b.Lk + (double)b.n) * 4.0;
            printf(", %.2f TB/s over its f32 logits (written, read, the candidates read again)", med > 0 ? bytes / (med * 1e-3) / 1e12 : 0);
        }
        printf("\n");
    }
    if (!s)
        printf("kvc gpu per eviction (one layer %.3f ms x %d layers, the block's first forward): %.1f ms\n", total, LAYERS,
               total * LAYERS);
    if (!s) s = bench_pc(&cx, ev, b.kv, b.q, S, err);
done:
    free(b.hscore), free(b.hidx), free(hq);
    sf_cuda_events_free(ev, 2 * REPS);
    sf_cuda_free(b.q), sf_cuda_free(b.kv), sf_cuda_free(b.tmp), sf_cuda_free(b.Sw), sf_cuda_free(b.lse);
    sf_cuda_free(b.score), sf_cuda_free(b.idx);
    sf_cuda_ctx_free(&cx);
    return s;
}

/* --pc-budget's compression (pc.c) at Deep Forcing's settings, one layer: a 21-frame window with a 10-frame sink,
 * budget 16, recent 4 — the cache holds 19 frames when a 3-frame block overflows it, so 8 frames of candidates
 * (from the sink to the newest 4) and 2 frames' worth kept, plus the recent frame before the block. Parts: the
 * block's queries into the layer's window (every forward does this, inside its graph), the window's sums and the
 * scores, the selection and the counts on the device, the gather of the kept and recent rows and the block's new rows
 * into place; then, not counted, the way it was done before (the scores to the host, chosen there, uploaded). */
enum { PC_SINK = 10, PC_BUDGET = 16, PC_RECENT = 4, PC_CACHE = 19 };
typedef struct pc_bench {
    sf_cuda_ctx *cx;
    int64_t L, R, T, n, topc, keep, row;
    void *kv, *q, *ring, *tmp, *nw;
    double *qsum, *score, *hscore;
    int32_t *idx, *hidx, *cnt, *itmp;
} pc_bench;

static sf_status pc_part(void *ctx, int part, int rep, sf_err *err) {
    pc_bench *b = ctx;
    uint16_t *kv = b->kv;
    sf_status s = SF_OK;
    switch (part) {
    case 0: return sf_ring_put_cuda(b->cx, b->ring, b->R, D, (b->L * (rep + 2)) % b->R, b->q, D, b->L, err);
    case 1:
        s = sf_ring_sum_cuda(b->cx, b->ring, b->R, D, 0, b->R, b->qsum, err);
        return s ? s : sf_pc_scores_cuda(b->cx, b->n, D, kv + b->T * b->row, b->row, b->qsum, sf_pc_score_scale(HD, H),
                                         b->score, err);
    case 2: /* the release's reuse limit (7): the counts grow by one a run, and the 6 runs leave every candidate in */
        s = sf_topk_select_cuda(b->cx, 1, b->n, b->score, b->n, b->cnt, b->n, 7, b->topc, b->idx, b->topc, NULL, err);
        return s ? s : sf_pc_finish_cuda(b->cx, b->n, b->topc, b->keep - b->topc, b->idx, b->cnt, b->n + b->keep, b->itmp, err);
    case 3:
        s = sf_kv_gather_cuda(b->cx, kv + b->T * b->row, b->row, 1, (int)b->row, b->keep, b->idx, b->tmp, err);
        return s ? s : sf_cuda_copy_d2d(b->cx, kv + (b->T + b->keep) * b->row, b->nw, sizeof(uint16_t) * (size_t)(b->L * b->row), err);
    default: /* before: the scores to the host, the selection there, the choice back */
        if ((s = sf_cuda_copy_d2h(b->cx, b->hscore, b->score, sizeof(double) * (size_t)b->n, err))) return s;
        if (sf_pc_select_cpu(b->n, b->hscore, NULL, 0, b->topc, b->hidx) < 0) return sf_fail(err, SF_E_NOMEM, "out of memory");
        for (int64_t j = 0; j < b->keep - b->topc; j++) b->hidx[b->topc + j] = (int32_t)(b->n + j);
        return sf_cuda_copy_h2d(b->cx, b->idx, b->hidx, sizeof(int32_t) * (size_t)b->keep, err);
    }
}

static sf_status bench_pc(sf_cuda_ctx *cx, void *ev, void *kv, void *q, int64_t S, sf_err *err) {
    pc_bench b = {.cx = cx, .L = F * S, .R = PC_RECENT * S, .T = PC_SINK * S};
    const int64_t from = (PC_CACHE + F - PC_RECENT) * S;
    b.n = from - b.T, b.topc = (PC_BUDGET - PC_SINK - PC_RECENT) * S, b.keep = b.topc + PC_CACHE * S - from, b.row = 2 * D;
    b.kv = kv, b.q = q;
    b.hscore = malloc(sizeof(double) * (size_t)b.n), b.hidx = malloc(sizeof(int32_t) * (size_t)b.keep);
    sf_status s = b.hscore && b.hidx ? SF_OK : sf_fail(err, SF_E_NOMEM, "out of memory");
    if (!s && ((s = sf_cuda_malloc(&b.ring, (size_t)(b.R * D) * 2, err)) ||
               (s = sf_cuda_malloc(&b.tmp, (size_t)(b.keep * b.row) * 2, err)) ||
               (s = sf_cuda_malloc(&b.nw, (size_t)(b.L * b.row) * 2, err)) ||
               (s = sf_cuda_malloc((void **)&b.qsum, sizeof(double) * D, err)) ||
               (s = sf_cuda_malloc((void **)&b.score, sizeof(double) * (size_t)b.n, err)) ||
               (s = sf_cuda_malloc((void **)&b.idx, sizeof(int32_t) * (size_t)b.keep, err)) ||
               (s = sf_cuda_malloc((void **)&b.cnt, sizeof(int32_t) * (size_t)(b.n + b.keep), err)) ||
               (s = sf_cuda_malloc((void **)&b.itmp, sizeof(int32_t) * (size_t)b.keep, err)) ||
               (s = sf_cuda_memset(cx, b.cnt, 0, sizeof(int32_t) * (size_t)(b.n + b.keep), err))))
        goto done;
    if ((s = sf_cuda_copy_d2d(cx, b.ring, q, (size_t)(b.L * D) * 2, err))) goto done; /* a window of real values */
    double total = 0;
    for (int part = 0; part < 5 && !s; part++) {
        double med = 0;
        if ((s = time_part(cx, ev, pc_part, &b, part, part == 4, &med, err))) break;
        if (part > 0 && part < 4) total += med; /* the window's update runs in every forward, not only this one */
        static const char *const name[5] = {"the block's queries into the window (every forward)",
                                            "window sums + scores", "selection + reuse counts on the device",
                                            "gather of the kept + recent rows, the block's rows",
                                            "before, not counted: scores to the host, selection there, its upload"};
        printf("pc gpu a window of %lld queries, %lld candidates -> %lld kept, %s: %.3f ms\n", (long long)b.R, (long long)b.n,
               (long long)b.topc, name[part], med);
    }
    if (!s)
        printf("pc gpu per compression (one layer %.3f ms x %d layers, a block's first forward, in its CUDA graph; "
               "one block in two at budget 16): %.1f ms\n", total, LAYERS, total * LAYERS);
done:
    free(b.hscore), free(b.hidx);
    sf_cuda_free(b.ring), sf_cuda_free(b.tmp), sf_cuda_free(b.nw), sf_cuda_free(b.qsum), sf_cuda_free(b.score);
    sf_cuda_free(b.idx), sf_cuda_free(b.cnt), sf_cuda_free(b.itmp);
    return s;
}
