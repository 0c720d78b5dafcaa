/* bench_kvc.c — `sf-denoise --bench kvc --device cuda`: what one eviction of --kv-compress costs at full size
 * (Participative Compression, kv_compress.c), one layer of the 1.3B model timed on the GPU (median of 5 after a
 * warm-up) and ×30 for the block that evicts: a 3-frame block's queries (4680 × 1536 bf16) against a full
 * 21-frame cache (32760 rows of [k | v]) with a 3-frame sink and 6 kept frames, so 9 frames of candidates
 * (14040 tokens) scored and 6 frames' worth kept per head. Rows: the importance (cuBLASLt logits in chunks +
 * the row lse and per-key sums: sf_key_mass_cuda), the download of the scores, the host's selection, the
 * upload of the choice, the gathers of keys and values and the roll of the recent frames. The importance
 * writes and reads every f32 logit (~7.4 GB a layer): the bytes are its floor, printed beside it as the TB/s
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

static sf_status bench_pc(sf_cuda_ctx *cx, void *kv, void *q, int64_t S, sf_err *err);

sf_status sf_denoise_bench_kvc(int cuda_ordinal, int small, sf_err *err) {
    if (cuda_ordinal < 0) return sf_fail(err, SF_E_ARG, "--bench kvc measures the GPU's --kv-compress: give --device cuda");
    const int64_t S = small ? 64 : 1560, Lq = F * S, Lk = CACHE_F * S, T = SINK_F * S, kept = KEPT_F * S;
    const int64_t n = kept + F * S, rest = Lk - T - n, row = 2 * D;
    const int64_t ws_rows = sf_key_mass_ws_rows(Lq, Lk); /* the chunk the DiT's compression uses */
    sf_cuda_ctx cx;
    void *q = NULL, *kv = NULL, *tmp = NULL, *ev = NULL;
    float *Sw = NULL, *hq = NULL;
    double *lse = NULL, *score = NULL, *hscore = NULL;
    int32_t *idx = NULL, *hidx = NULL;
    sf_status s = sf_cuda_ctx_init(&cx, cuda_ordinal, err);
    if (s) return s;
    if ((s = sf_cuda_malloc(&q, (size_t)(Lq * D) * 2, err)) || (s = sf_cuda_malloc(&kv, (size_t)(Lk * row) * 2, err)) ||
        (s = sf_cuda_malloc(&tmp, (size_t)(kept * D) * 2, err)) ||
        (s = sf_cuda_malloc((void **)&Sw, sizeof(float) * (size_t)(ws_rows * Lk), err)) ||
        (s = sf_cuda_malloc((void **)&lse, sizeof(double) * (size_t)ws_rows, err)) ||
        (s = sf_cuda_malloc((void **)&score, sizeof(double) * (size_t)(H * n), err)) ||
        (s = sf_cuda_malloc((void **)&idx, sizeof(int32_t) * (size_t)(H * kept), err)) ||
        (s = sf_cuda_events_new(&ev, 2 * REPS, err)))
        goto done;
    hscore = malloc(sizeof(double) * (size_t)(H * n));
    hidx = malloc(sizeof(int32_t) * (size_t)(H * kept));
    hq = malloc(sizeof(float) * (size_t)(Lk * row));
    if (!hscore || !hidx || !hq) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    sf_rng r;
    sf_rng_seed(&r, 7);
    for (int64_t i = 0; i < Lk * row; i++) hq[i] = (float)(2.0 * sf_rng_uniform(&r) - 1.0);
    if ((s = sf_cuda_upload_bf16(&cx, kv, hq, (size_t)(Lk * row), err)) ||
        (s = sf_cuda_upload_bf16(&cx, q, hq, (size_t)(Lq * D), err)))
        goto done;
    const float scale = (float)(1.0 / sqrt((double)HD));
    double total = 0;
    for (int part = 0; part < 4 && !s; part++) {
        float ms[REPS];
        for (int i = -1; i < REPS && !s; i++) { /* i = −1: the warm-up */
            if (i >= 0 && (s = sf_cuda_event_record(&cx, ev, 2 * i, err))) break;
            double t0 = sf_now();
            switch (part) {
            case 0:
                s = sf_key_mass_cuda(&cx, Lq, Lk, H, HD, q, D, kv, row, scale, T, n, Sw, ws_rows, lse, score, err);
                break;
            case 1: s = sf_cuda_copy_d2h(&cx, hscore, score, sizeof(double) * (size_t)(H * n), err); break;
            case 2:
                if (sf_kv_select_cpu(H, n, hscore, kept, hidx)) s = sf_fail(err, SF_E_NOMEM, "out of memory");
                if (!s) s = sf_cuda_copy_h2d(&cx, idx, hidx, sizeof(int32_t) * (size_t)(H * kept), err);
                break;
            default:
                s = sf_kv_gather_cuda(&cx, (uint16_t *)kv + T * row, row, H, HD, kept, idx, tmp, err);
                if (!s) s = sf_kv_gather_cuda(&cx, (uint16_t *)kv + T * row + D, row, H, HD, kept, idx, tmp, err);
                if (!s) s = sf_cuda_copy_d2d(&cx, (uint16_t *)kv + (T + kept) * row, (uint16_t *)kv + (T + n) * row,
                                             sizeof(uint16_t) * (size_t)(rest * row), err);
            }
            if (i < 0 || s) {
                if (!s) s = sf_cuda_sync(&cx, err);
                continue;
            }
            if (part == 2) { /* host work: the wall clock */
                ms[i] = (float)((sf_now() - t0) * 1e3);
                continue;
            }
            if (!(s = sf_cuda_event_record(&cx, ev, 2 * i + 1, err))) s = sf_cuda_event_ms(ev, 2 * i, 2 * i + 1, &ms[i], err);
        }
        if (s) break;
        const double med = sf_bench_median_ms(ms, REPS);
        total += med;
        static const char *const name[4] = {"importance (logits + lse + per-key sums)", "scores to the host",
                                            "selection on the host + its upload", "gathers of k and v + the roll"};
        printf("kvc gpu %lld queries x %lld keys, %lld candidates -> %lld kept a head, %s: %.3f ms", (long long)Lq,
               (long long)Lk, (long long)n, (long long)kept, name[part], med);
        if (part == 0) {
            const double bytes = (double)H * (double)Lq * (2.0 * (double)Lk + (double)n) * 4.0;
            printf(", %.2f TB/s over its f32 logits (written, read, the candidates read again)", med > 0 ? bytes / (med * 1e-3) / 1e12 : 0);
        }
        printf("\n");
    }
    if (!s)
        printf("kvc gpu per eviction (one layer %.3f ms x %d layers, the block's first forward): %.1f ms\n", total, LAYERS,
               total * LAYERS);
    if (!s) s = bench_pc(&cx, kv, q, S, err);
done:
    free(hscore), free(hidx), free(hq);
    sf_cuda_events_free(ev, 2 * REPS);
    sf_cuda_free(q), sf_cuda_free(kv), sf_cuda_free(tmp), sf_cuda_free(Sw), sf_cuda_free(lse), sf_cuda_free(score);
    sf_cuda_free(idx);
    sf_cuda_ctx_free(&cx);
    return s;
}

/* --pc-budget's compression (pc.c) at Deep Forcing's settings, one layer: a 21-frame window with a 10-frame sink,
 * budget 16, recent 4 — the cache holds 19 frames when a 3-frame block overflows it, so 8 frames of candidates
 * (from the sink to the newest 4) and 2 frames' worth kept, plus the recent frame before the block. Parts: the
 * block's queries into the layer's window (every forward does this, inside its graph), the window's sums and the
 * scores, the scores to the host, the selection + its upload, the gather of the kept and recent rows and the block's
 * new rows into place. */
enum { PC_SINK = 10, PC_BUDGET = 16, PC_RECENT = 4, PC_CACHE = 19 };
static sf_status bench_pc(sf_cuda_ctx *cx, void *kv, void *q, int64_t S, sf_err *err) {
    const int64_t L = F * S, R = PC_RECENT * S, T = PC_SINK * S, from = (PC_CACHE + F - PC_RECENT) * S, n = from - T;
    const int64_t topc = (PC_BUDGET - PC_SINK - PC_RECENT) * S, keep = topc + PC_CACHE * S - from, row = 2 * D;
    void *ring = NULL, *tmp = NULL, *nw = NULL, *ev = NULL;
    double *qsum = NULL, *score = NULL, *hscore = malloc(sizeof(double) * (size_t)n);
    int32_t *idx = NULL, *hidx = malloc(sizeof(int32_t) * (size_t)keep);
    sf_status s = hscore && hidx ? SF_OK : sf_fail(err, SF_E_NOMEM, "out of memory");
    if (!s && ((s = sf_cuda_malloc(&ring, (size_t)(R * D) * 2, err)) || (s = sf_cuda_malloc(&tmp, (size_t)(keep * row) * 2, err)) ||
               (s = sf_cuda_malloc(&nw, (size_t)(L * row) * 2, err)) ||
               (s = sf_cuda_malloc((void **)&qsum, sizeof(double) * D, err)) ||
               (s = sf_cuda_malloc((void **)&score, sizeof(double) * (size_t)n, err)) ||
               (s = sf_cuda_malloc((void **)&idx, sizeof(int32_t) * (size_t)keep, err)) ||
               (s = sf_cuda_events_new(&ev, 2 * REPS, err))))
        goto done;
    if ((s = sf_cuda_copy_d2d(cx, ring, q, (size_t)(L * D) * 2, err))) goto done; /* a window of real values */
    double total = 0;
    const double scale = sf_pc_score_scale(HD, H);
    for (int part = 0; part < 5 && !s; part++) {
        float ms[REPS];
        for (int i = -1; i < REPS && !s; i++) {
            if (i >= 0 && (s = sf_cuda_event_record(cx, ev, 2 * i, err))) break;
            double t0 = sf_now();
            switch (part) {
            case 0: s = sf_ring_put_cuda(cx, ring, R, D, (L * (i + 2)) % R, q, D, L, err); break;
            case 1:
                s = sf_ring_sum_cuda(cx, ring, R, D, 0, R, qsum, err);
                if (!s) s = sf_pc_scores_cuda(cx, n, D, (uint16_t *)kv + T * row, row, qsum, scale, score, err);
                break;
            case 2: s = sf_cuda_copy_d2h(cx, hscore, score, sizeof(double) * (size_t)n, err); break;
            case 3:
                if (sf_pc_select_cpu(n, hscore, NULL, 0, topc, hidx) < 0) s = sf_fail(err, SF_E_NOMEM, "out of memory");
                for (int64_t j = 0; !s && j < keep - topc; j++) hidx[topc + j] = (int32_t)(n + j);
                if (!s) s = sf_cuda_copy_h2d(cx, idx, hidx, sizeof(int32_t) * (size_t)keep, err);
                break;
            default:
                s = sf_kv_gather_cuda(cx, (uint16_t *)kv + T * row, row, 1, (int)row, keep, idx, tmp, err);
                if (!s) s = sf_cuda_copy_d2d(cx, (uint16_t *)kv + (T + keep) * row, nw, sizeof(uint16_t) * (size_t)(L * row), err);
            }
            if (i < 0 || s) {
                if (!s) s = sf_cuda_sync(cx, err);
                continue;
            }
            if (part == 3) { /* host work: the wall clock */
                ms[i] = (float)((sf_now() - t0) * 1e3);
                continue;
            }
            if (!(s = sf_cuda_event_record(cx, ev, 2 * i + 1, err))) s = sf_cuda_event_ms(ev, 2 * i, 2 * i + 1, &ms[i], err);
        }
        if (s) break;
        const double med = sf_bench_median_ms(ms, REPS);
        if (part > 0) total += med; /* the window's update runs in every forward, not only this one */
        static const char *const name[5] = {"the block's queries into the window (every forward)",
                                            "window sums + scores", "scores to the host",
                                            "selection on the host + its upload", "gather of the kept + recent rows, the block's rows"};
        printf("pc gpu a window of %lld queries, %lld candidates -> %lld kept, %s: %.3f ms\n", (long long)R, (long long)n,
               (long long)topc, name[part], med);
    }
    if (!s)
        printf("pc gpu per compression (one layer %.3f ms x %d layers, a block's first forward, outside its CUDA graph; "
               "one block in two at budget 16): %.1f ms\n", total, LAYERS, total * LAYERS);
done:
    free(hscore), free(hidx);
    sf_cuda_events_free(ev, 2 * REPS);
    sf_cuda_free(ring), sf_cuda_free(tmp), sf_cuda_free(nw), sf_cuda_free(qsum), sf_cuda_free(score), sf_cuda_free(idx);
    return s;
}
