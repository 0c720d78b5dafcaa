/* bench_attn.c — `sf-denoise --bench attn --device cuda`: the DiT's self-attention at full size on
 * the GPU, each path on the same inputs:
 * cuDNN's fused attention (what untapped layers run), sfpipe's fused kernel on mma.sync
 * (kernels/cuda/attn_mass.cu: cuDNN's stand-in; also with 128-row blocks, $SF_ATTN_BM128) and on
 * wgmma ($SF_ATTN_WGMMA: attn_mass_wg.cu; warp-specialised with TMA, $SF_ATTN_WS=1, and with FA3's
 * intra-warpgroup overlap, $SF_ATTN_WS=2, and the consumers' ping-pong, =3: attn_mass_ws.cu; each of those
 * with 128-key tiles too, $SF_ATTN_WS_BN=128; the plain ones split the grid's last wave along the keys,
 * and two rows run them without that, $SF_ATTN_WS_SPLIT=0, for the A/B), each
 * plain and with the per-key-frame probability mass (what --tap-mode probs runs). Shapes of the 1.3B
 * model at 832×480: 12 heads of d = 128, a block's 4680 queries against the first block's 4680 keys and
 * the last block's 32760 (keys in the [k | v] cache rows, frames of 1560 tokens).
 * Prints ms (median of 5 after a warm-up) and TFLOP/s (4·Lq·Lk·d·H) per path; nothing passes or fails
 * on time. Each row also says the largest |difference| of its O from the first path's (cuDNN's) on the
 * same inputs — "MISMATCH" past 5 % of the largest |O| (bf16 rounding makes ~1 %): a kernel wrong at
 * full size — and, for the mass paths, the masses' largest |difference| from the first mass path's and
 * how far a row's masses sum from 1 (MISMATCH past 1e-3), and a variant the device does not run (it fell back to another kernel) is said as such
 * instead of timed. Run by `make bench` and tests/gpu/check.sh (part attn). `--bench attn-small`: frames
 * of 64 tokens, to try the program itself on a small (or emulated) device (on the emulation: ~3 min). */
#define _POSIX_C_SOURCE 200809L
#include "stages/denoise/bench.h"

#include "attn_mass_cuda.h"
#include "cuda_ops.h"
#include "rng.h"
#include "sdpa_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { H = 12, D = 128, REPS = 5 };

/* The paths, cuDNN first: each sfpipe variant by its knobs (wgmma, 128-row blocks, warp-specialised mode,
 * 128-key tiles), plain and with the masses, and the kernel it must have launched
 * (sf_attn_mass_last_kernel): a variant that does not apply on this device falls back inside
 * sf_attn_mass_cuda, and its row must not pass for the variant's. */
typedef struct path {
    const char *name, *kernel;
    int wgmma, bm128, ws, ws_bn, mass;
    int whole; /* $SF_ATTN_WS_SPLIT=0: the warp-specialised kernel's last wave not split (the A/B) */
} path;
static const path PATHS[] = {
    {"cudnn", NULL, 0, 0, 0, 0, 0, 0},
    {"sfpipe mma.sync", "attn_plain", 0, 0, 0, 0, 0, 0},
    {"sfpipe mma.sync + mass", "attn_mass_groups", 0, 0, 0, 0, 1, 0},
    {"sfpipe mma.sync bm128", "attn_plain_bm128", 0, 1, 0, 0, 0, 0},
    {"sfpipe mma.sync bm128 + mass", "attn_mass_groups_bm128", 0, 1, 0, 0, 1, 0},
    {"sfpipe wgmma", "attn_plain_wg", 1, 0, 0, 0, 0, 0},
    {"sfpipe wgmma + mass", "attn_mass_groups_wg", 1, 0, 0, 0, 1, 0},
    {"sfpipe wgmma bm128", "attn_plain_wg_bm128", 1, 1, 0, 0, 0, 0},
    {"sfpipe wgmma bm128 + mass", "attn_mass_groups_wg_bm128", 1, 1, 0, 0, 1, 0},
    {"sfpipe ws", "attn_plain_ws", 0, 0, 1, 0, 0, 0},
    {"sfpipe ws + mass", "attn_mass_groups_ws", 0, 0, 1, 0, 1, 0},
    {"sfpipe ws2", "attn_plain_ws2", 0, 0, 2, 0, 0, 0},
    {"sfpipe ws2 + mass", "attn_mass_groups_ws2", 0, 0, 2, 0, 1, 0},
    {"sfpipe ws3", "attn_plain_ws3", 0, 0, 3, 0, 0, 0},
    {"sfpipe ws3 + mass", "attn_mass_groups_ws3", 0, 0, 3, 0, 1, 0},
    {"sfpipe ws n128", "attn_plain_ws_n128", 0, 0, 1, 128, 0, 0},
    {"sfpipe ws n128 + mass", "attn_mass_groups_ws_n128", 0, 0, 1, 128, 1, 0},
    {"sfpipe ws2 n128", "attn_plain_ws2_n128", 0, 0, 2, 128, 0, 0},
    {"sfpipe ws2 n128 + mass", "attn_mass_groups_ws2_n128", 0, 0, 2, 128, 1, 0},
    {"sfpipe ws3 n128", "attn_plain_ws3_n128", 0, 0, 3, 128, 0, 0},
    {"sfpipe ws3 n128 + mass", "attn_mass_groups_ws3_n128", 0, 0, 3, 128, 1, 0},
    {"sfpipe ws2 whole units", "attn_plain_ws2", 0, 0, 2, 0, 0, 1},
    {"sfpipe ws2 n128 whole units", "attn_plain_ws2_n128", 0, 0, 2, 128, 0, 1},
};
enum { P_N = sizeof PATHS / sizeof PATHS[0] };

static void knob(const char *name, int v) {
    char b[16];
    snprintf(b, sizeof b, "%d", v);
    if (v) setenv(name, b, 1);
    else unsetenv(name);
}

typedef struct bufs {
    void *q, *kv, *o;
    float *rowmass, *lse;
} bufs;

static sf_status one(sf_cuda_ctx *cx, sf_sdpa *sd, const path *p, int64_t S, int64_t LQ, int64_t Lk, const bufs *b,
                     sf_err *err) {
    const float scale = 0.08838834764831845f; /* 1/√128 */
    const int64_t ldk = 2 * H * D;
    const void *k = b->kv, *v = (const char *)b->kv + (size_t)H * D * 2;
    if (!p->kernel) return sf_sdpa_forward(sd, LQ, Lk, H, D, b->q, H * D, k, v, ldk, b->o, H * D, scale, err);
    knob("SF_ATTN_WGMMA", p->wgmma), knob("SF_ATTN_BM128", p->bm128), knob("SF_ATTN_WS", p->ws);
    knob("SF_ATTN_WS_BN", p->ws_bn);
    if (p->whole) setenv("SF_ATTN_WS_SPLIT", "0", 1);
    else unsetenv("SF_ATTN_WS_SPLIT");
    return sf_attn_mass_cuda(cx, LQ, Lk, H, D, b->q, H * D, k, v, ldk, b->o, H * D, scale, p->mass ? S : 1,
                             p->mass ? Lk / S : 0, p->mass ? b->rowmass : NULL, p->mass ? b->lse : NULL, err);
}

/* The masses of rows × ng (each row's over its key frames): the largest |difference| from ref (when
 * given) and the largest |Σ − 1| of a row (the frames cover every key here). */
static void mass_dev(const float *m, const float *ref, size_t rows, int64_t ng, double *dmax, double *sumdev) {
    *dmax = 0, *sumdev = 0;
    for (size_t r = 0; r < rows; r++) {
        double t = 0;
        for (int64_t g = 0; g < ng; g++) {
            const size_t i = r * (size_t)ng + (size_t)g;
            const double dd = ref ? fabs((double)m[i] - ref[i]) : 0;
            *dmax = dd > *dmax || dd != dd ? dd : *dmax;
            t += m[i];
        }
        const double sd = fabs(t - 1);
        *sumdev = sd > *sumdev || sd != sd ? sd : *sumdev;
    }
}

sf_status sf_denoise_bench_attn(int cuda_ordinal, int small, sf_err *err) {
    const int64_t S = small ? 64 : 1560, LQ = 3 * S, LK_MAX = 21 * S; /* frame tokens, a block's queries, 21 frames */
    if (cuda_ordinal < 0) return sf_fail(err, SF_E_ARG, "--bench attn measures the GPU's attention: give --device cuda");
    sf_cuda_ctx cx;
    sf_sdpa *sd = NULL;
    bufs b = {0};
    void *ev = NULL;
    float *h = NULL, *o0 = NULL, *o1 = NULL; /* O of the first path that ran (per key count) and of this one */
    float *m0 = NULL, *m1 = NULL;            /* the masses of the first mass path that ran, and of this one */
    sf_status s = sf_cuda_ctx_init(&cx, cuda_ordinal, err);
    if (s) return s;
    const size_t nq = (size_t)LQ * H * D, nkv = (size_t)LK_MAX * 2 * H * D;
    if ((s = sf_cuda_malloc(&b.q, nq * 2, err)) || (s = sf_cuda_malloc(&b.kv, nkv * 2, err)) ||
        (s = sf_cuda_malloc(&b.o, nq * 2, err)) || (s = sf_cuda_malloc((void **)&b.rowmass, (size_t)H * LQ * 21 * 4, err)) ||
        (s = sf_cuda_malloc((void **)&b.lse, (size_t)H * LQ * 4, err)) || (s = sf_cuda_events_new(&ev, 2 * REPS, err)))
        goto done;
    /* inputs: small random bf16 values drawn once on the host (the same for every path) */
    const size_t nm = (size_t)H * LQ * 21;
    if (!(h = malloc(sizeof(float) * nkv)) || !(o0 = malloc(sizeof(float) * nq)) || !(o1 = malloc(sizeof(float) * nq)) ||
        !(m0 = malloc(sizeof(float) * nm)) || !(m1 = malloc(sizeof(float) * nm))) {
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
    for (int li = 0; li < 2 && !s; li++) {
        double omax = 0; /* the first path's largest |O| at this key count */
        for (int p = 0, first = -1, mfirst = -1; p < P_N && !s; p++) {
            const int64_t Lk = lks[li];
            if (!PATHS[p].kernel && (!sd || sf_sdpa_prepare(sd, LQ, Lk, H, D, H * D, 2 * H * D, H * D, &e2) != SF_OK)) continue;
            float ms[REPS];
            sf_status s1 = one(&cx, sd, &PATHS[p], S, LQ, Lk, &b, &e2);
            if (!s1) s1 = sf_cuda_sync(&cx, &e2); /* the warm-up */
            for (int r = 0; r < REPS && !s1; r++)
                if (!(s1 = sf_cuda_event_record(&cx, ev, 2 * r, &e2)) && !(s1 = one(&cx, sd, &PATHS[p], S, LQ, Lk, &b, &e2)) &&
                    !(s1 = sf_cuda_event_record(&cx, ev, 2 * r + 1, &e2)))
                    s1 = sf_cuda_event_ms(ev, 2 * r, 2 * r + 1, &ms[r], &e2);
            if (s1) {
                printf("attention gpu %lld q x %lld k, %s: FAILED (%s)\n", (long long)LQ, (long long)Lk, PATHS[p].name, e2.msg);
                if (s1 == SF_E_DEVICE) { /* a device fault poisons the context: stop */
                    *err = e2;
                    s = s1;
                }
                continue;
            }
            const char *ran = PATHS[p].kernel ? sf_attn_mass_last_kernel() : NULL;
            if (PATHS[p].kernel && (!ran || strcmp(ran, PATHS[p].kernel))) {
                printf("attention gpu %lld q x %lld k, %s: not run (the device took %s instead)\n", (long long)LQ,
                       (long long)Lk, PATHS[p].name, ran ? ran : "no kernel");
                continue;
            }
            /* the same inputs on every path: O against the first path's (cuDNN where it runs) */
            double dmax = 0;
            if ((s1 = sf_cuda_download_bf16(&cx, first < 0 ? o0 : o1, b.o, nq, &e2))) {
                printf("attention gpu %lld q x %lld k, %s: FAILED (%s)\n", (long long)LQ, (long long)Lk, PATHS[p].name, e2.msg);
                *err = e2, s = s1;
                continue;
            }
            for (size_t i = 0; first >= 0 && i < nq; i++) {
                const double dd = fabs((double)o1[i] - o0[i]);
                dmax = dd > dmax || dd != dd ? dd : dmax;
            }
            if (first < 0) /* the reference's scale: differences beyond 5 % of its largest |O| are wrong (bf16 rounding: ~1 %) */
                for (size_t i = 0; i < nq; i++) omax = fabs(o0[i]) > omax ? fabs(o0[i]) : omax;
            const float med = sf_bench_median_ms(ms, REPS);
            printf("attention gpu %lld q x %lld k x %d heads (d %d), %s: %.3f ms, ", (long long)LQ, (long long)Lk, H, D,
                   PATHS[p].name, med);
            if (med > 0) printf("%.0f TFLOP/s", 4.0 * (double)LQ * (double)Lk * D * H / (med * 1e-3) / 1e12);
            else printf("- TFLOP/s");
            int64_t tail = 0;
            const int nsplit = PATHS[p].kernel ? sf_attn_mass_last_split(&tail) : 1;
            if (nsplit > 1) printf(" (last wave: %lld units as %d key splits each)", (long long)tail, nsplit);
            if (first < 0) printf(" (the reference for max |d|; max |O| %.3g)", omax), first = p;
            else printf(", O max |d| vs %s %.3g%s", PATHS[first].name, dmax,
                        dmax <= 5e-2 * omax ? "" : " MISMATCH (over 5% of max |O|)");
            /* the masses: against the first mass path's, and each row's sum (1: the frames cover the keys) */
            const int64_t ng = Lk / S;
            double mdev = 0, sdev = 0;
            if (PATHS[p].mass && !(s1 = sf_cuda_download_f32(&cx, mfirst < 0 ? m0 : m1, b.rowmass, (size_t)H * LQ * ng, &e2))) {
                mass_dev(mfirst < 0 ? m0 : m1, mfirst < 0 ? NULL : m0, (size_t)H * LQ, ng, &mdev, &sdev);
                if (mfirst < 0) printf(", masses: the reference, rows sum to 1 ± %.2g", sdev);
                else printf(", masses max |d| vs %s %.2g, rows sum to 1 ± %.2g", PATHS[mfirst].name, mdev, sdev);
                printf("%s", mdev <= 1e-3 && sdev <= 1e-3 ? "" : " MISMATCH (masses off by over 1e-3)");
                if (mfirst < 0) mfirst = p;
            } else if (s1) {
                printf(", masses: FAILED (%s)", e2.msg);
                *err = e2, s = s1;
            }
            printf("\n");
        }
    }
done:
    knob("SF_ATTN_WGMMA", 0), knob("SF_ATTN_BM128", 0), knob("SF_ATTN_WS", 0), knob("SF_ATTN_WS_BN", 0);
    unsetenv("SF_ATTN_WS_SPLIT");
    free(h), free(o0), free(o1), free(m0), free(m1);
    sf_sdpa_destroy(&sd);
    sf_cuda_events_free(ev, 2 * REPS);
    sf_cuda_free(b.q), sf_cuda_free(b.kv), sf_cuda_free(b.o), sf_cuda_free(b.rowmass), sf_cuda_free(b.lse);
    sf_cuda_ctx_free(&cx);
    return s;
}
