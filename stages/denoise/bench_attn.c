/* bench_attn.c — `sf-denoise --bench attn --device cuda`: the DiT's self-attention at full size on
 * the GPU, each path on the same inputs:
 * cuDNN's fused attention (what untapped layers run), sfpipe's fused kernel on mma.sync
 * (kernels/cuda/attn_mass.cu: cuDNN's stand-in; also with 128-row blocks, $SF_ATTN_BM128) and on
 * wgmma ($SF_ATTN_WGMMA: attn_mass_wg.cu), each plain and with the per-key-frame probability mass
 * (what --tap-mode probs runs). Shapes of the 1.3B model at 832×480: 12 heads of d = 128, a block's
 * 4680 queries against the first block's 4680 keys and the last block's 32760 (keys in the [k | v]
 * cache rows, frames of 1560 tokens).
 * Prints ms (median of 5 after a warm-up) and TFLOP/s (4·Lq·Lk·d·H) per path; nothing passes or
 * fails on time. Run by `make bench` and tests/gpu/check.sh (part taps). `--bench attn-small`: frames
 * of 64 tokens, to try the program itself on a small (or emulated) device. */
#define _POSIX_C_SOURCE 200809L
#include "stages/denoise/bench.h"

#include "attn_mass_cuda.h"
#include "cuda_ops.h"
#include "rng.h"
#include "sdpa_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { H = 12, D = 128, REPS = 5 };

typedef enum { P_CUDNN, P_MMA, P_MMA_MASS, P_MMA128, P_MMA128_MASS, P_WG, P_WG_MASS, P_WG128, P_WG128_MASS, P_N } path;
static const char *const NAME[P_N] = {"cudnn",         "sfpipe mma.sync",      "sfpipe mma.sync + mass",
                                      "sfpipe mma.sync bm128", "sfpipe mma.sync bm128 + mass", "sfpipe wgmma",
                                      "sfpipe wgmma + mass",   "sfpipe wgmma bm128",   "sfpipe wgmma bm128 + mass"};

typedef struct bufs {
    void *q, *kv, *o;
    float *rowmass, *lse;
} bufs;

static sf_status one(sf_cuda_ctx *cx, sf_sdpa *sd, path p, int64_t S, int64_t LQ, int64_t Lk, const bufs *b, sf_err *err) {
    const float scale = 0.08838834764831845f; /* 1/√128 */
    const int64_t ldk = 2 * H * D;
    const void *k = b->kv, *v = (const char *)b->kv + (size_t)H * D * 2;
    if (p == P_CUDNN) return sf_sdpa_forward(sd, LQ, Lk, H, D, b->q, H * D, k, v, ldk, b->o, H * D, scale, err);
    const int mass = p == P_MMA_MASS || p == P_MMA128_MASS || p == P_WG_MASS || p == P_WG128_MASS;
    if (p >= P_WG) setenv("SF_ATTN_WGMMA", "1", 1);
    else unsetenv("SF_ATTN_WGMMA");
    if (p == P_MMA128 || p == P_MMA128_MASS || p == P_WG128 || p == P_WG128_MASS) setenv("SF_ATTN_BM128", "1", 1);
    else unsetenv("SF_ATTN_BM128");
    return sf_attn_mass_cuda(cx, LQ, Lk, H, D, b->q, H * D, k, v, ldk, b->o, H * D, scale, mass ? S : 1,
                             mass ? Lk / S : 0, mass ? b->rowmass : NULL, mass ? b->lse : NULL, err);
}

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

sf_status sf_denoise_bench_attn(int cuda_ordinal, int small, sf_err *err) {
    const int64_t S = small ? 64 : 1560, LQ = 3 * S, LK_MAX = 21 * S; /* frame tokens, a block's queries, 21 frames */
    if (cuda_ordinal < 0) return sf_fail(err, SF_E_ARG, "--bench attn measures the GPU's attention: give --device cuda");
    sf_cuda_ctx cx;
    sf_sdpa *sd = NULL;
    bufs b = {0};
    void *ev = NULL;
    float *h = NULL;
    sf_status s = sf_cuda_ctx_init(&cx, cuda_ordinal, err);
    if (s) return s;
    const size_t nq = (size_t)LQ * H * D, nkv = (size_t)LK_MAX * 2 * H * D;
    if ((s = sf_cuda_malloc(&b.q, nq * 2, err)) || (s = sf_cuda_malloc(&b.kv, nkv * 2, err)) ||
        (s = sf_cuda_malloc(&b.o, nq * 2, err)) || (s = sf_cuda_malloc((void **)&b.rowmass, (size_t)H * LQ * 21 * 4, err)) ||
        (s = sf_cuda_malloc((void **)&b.lse, (size_t)H * LQ * 4, err)) || (s = sf_cuda_events_new(&ev, 2 * REPS, err)))
        goto done;
    /* inputs: small random bf16 values drawn once on the host (the same for every path) */
    if (!(h = malloc(sizeof(float) * nkv))) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    sf_rng rng;
    sf_rng_seed(&rng, 1);
    for (size_t i = 0; i < nkv; i++) h[i] = (float)(2.0 * sf_rng_uniform(&rng) - 1.0); /* in [-1, 1) */
    if ((s = sf_cuda_upload_bf16(&cx, b.kv, h, nkv, err)) || (s = sf_cuda_upload_bf16(&cx, b.q, h, nq, err))) goto done;
    sf_err e2 = {{0}};
    if (sf_sdpa_new(&sd, cx.stream, &e2) != SF_OK) printf("attention gpu: cuDNN: %s (its rows are skipped)\n", e2.msg);
    const int64_t lks[2] = {LQ, LK_MAX};
    for (int li = 0; li < 2 && !s; li++)
        for (int p = 0; p < P_N && !s; p++) {
            const int64_t Lk = lks[li];
            if (p == P_CUDNN && (!sd || sf_sdpa_prepare(sd, LQ, Lk, H, D, H * D, 2 * H * D, H * D, &e2) != SF_OK)) continue;
            float ms[REPS];
            sf_status s1 = one(&cx, sd, (path)p, S, LQ, Lk, &b, &e2);
            if (!s1) s1 = sf_cuda_sync(&cx, &e2); /* the warm-up */
            for (int r = 0; r < REPS && !s1; r++)
                if (!(s1 = sf_cuda_event_record(&cx, ev, 2 * r, &e2)) && !(s1 = one(&cx, sd, (path)p, S, LQ, Lk, &b, &e2)) &&
                    !(s1 = sf_cuda_event_record(&cx, ev, 2 * r + 1, &e2)))
                    s1 = sf_cuda_event_ms(ev, 2 * r, 2 * r + 1, &ms[r], &e2);
            if (s1) {
                printf("attention gpu %lld q x %lld k, %s: FAILED (%s)\n", (long long)LQ, (long long)Lk, NAME[p], e2.msg);
                if (s1 == SF_E_DEVICE) { /* a device fault poisons the context: stop */
                    *err = e2;
                    s = s1;
                }
                continue;
            }
            qsort(ms, REPS, sizeof ms[0], cmp_f);
            const float med = ms[REPS / 2];
            printf("attention gpu %lld q x %lld k x %d heads (d %d), %s: %.3f ms, ", (long long)LQ, (long long)Lk, H, D,
                   NAME[p], med);
            if (med > 0) printf("%.0f TFLOP/s\n", 4.0 * (double)LQ * (double)Lk * D * H / (med * 1e-3) / 1e12);
            else printf("- TFLOP/s\n");
        }
done:
    unsetenv("SF_ATTN_WGMMA");
    unsetenv("SF_ATTN_BM128");
    free(h);
    sf_sdpa_destroy(&sd);
    sf_cuda_events_free(ev, 2 * REPS);
    sf_cuda_free(b.q), sf_cuda_free(b.kv), sf_cuda_free(b.o), sf_cuda_free(b.rowmass), sf_cuda_free(b.lse);
    sf_cuda_ctx_free(&cx);
    return s;
}
