/* bench_kernels.c — GFLOP/s of the DiT's CPU reference kernels at Wan2.1-1.3B shapes:
 * sf_gemm_cpu (x · Wᵀ + b, f32 and bf16 weights; K=1536 → N=1536 (q/k/v/o) and N=8960 (ffn
 * up), K=8960 → N=1536 (ffn down)) and sf_attention_cpu (12 heads, d=128, 4680 keys = one
 * block, 9360 = two blocks of KV cache; with and without the logits tap), and peak RSS.
 * Each figure is the best of `reps` runs (the dev box is shared; best-of is the stable one).
 * Nothing passes or fails on time.
 *   bench_kernels           quick: fewer rows / queries (under ~30 s on 2 cores)
 *   bench_kernels --full    full 4680-row GEMMs and 4680-query attention (minutes)
 *   bench_kernels --vae-attn / --vae-block   the VAE attention / residual-block convs, current mode
 * Env: SF_THREADS (default all cores). Run by `make bench` (tests/bench/run.sh). */
#define _POSIX_C_SOURCE 200809L
#include "attention.h"
#include "conv3d.h"
#include "gemm.h"
#include "parallel.h"
#include "rng.h"
#include "sf.h"
#include "vae_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static float *randf(size_t n, uint64_t seed, float std) {
    float *p = xmalloc(n * sizeof *p);
    sf_rng r;
    sf_rng_seed(&r, seed);
    sf_rng_fill_normal(&r, p, n, 0, std);
    return p;
}

static void bench_gemm(int64_t M, int64_t K, int64_t N, int threads, int reps, const sf_scratch *ws) {
    float *x = randf((size_t)(M * K), 1, 1.0f), *w = randf((size_t)(N * K), 2, 0.02f), *b = randf((size_t)N, 3, 0.1f);
    float *y = xmalloc(sizeof(float) * (size_t)(M * N));
    uint16_t *wb = xmalloc(sizeof(uint16_t) * (size_t)(N * K));
    for (int64_t i = 0; i < N * K; i++) wb[i] = sf_f32_to_bf16(w[i]);
    double flop = 2.0 * (double)M * (double)N * (double)K;
    for (int dt = 0; dt < 2; dt++) {
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = sf_now();
            if (sf_gemm_cpu_ws(M, N, K, x, K, dt ? (const void *)wb : (const void *)w, dt ? SF_BF16 : SF_F32, b, y, N,
                               threads, ws)) {
                fprintf(stderr, "bench_kernels: gemm failed\n");
                exit(1);
            }
            double t = sf_now() - t0;
            best = t < best ? t : best;
        }
        printf("gemm %-4s M=%-5lld K=%-5lld N=%-5lld  %8.1f ms  %6.1f GFLOP/s%s\n", dt ? "bf16" : "f32", (long long)M,
               (long long)K, (long long)N, best * 1e3, flop / best / 1e9,
               ws ? "  (work memory from a scratch sized at init)" : "");
    }
    free(x), free(w), free(b), free(y), free(wb);
}

static void bench_attn(int64_t Lq, int64_t Lk, int heads, int d, int threads, int tap, int reps) {
    int64_t D = (int64_t)heads * d;
    float *q = randf((size_t)(Lq * D), 4, 1.0f), *k = randf((size_t)(Lk * D), 5, 1.0f);
    float *v = randf((size_t)(Lk * D), 6, 1.0f), *o = xmalloc(sizeof(float) * (size_t)(Lq * D));
    float *lg = tap ? xmalloc(sizeof(float) * (size_t)heads * (size_t)Lq * (size_t)Lk) : NULL;
    double flop = 4.0 * (double)Lq * (double)Lk * (double)D, best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = sf_now();
        if (sf_attention_cpu(Lq, Lk, heads, d, q, D, k, v, D, o, D, 0.08838834764831845f, lg, threads)) {
            fprintf(stderr, "bench_kernels: attention failed\n");
            exit(1);
        }
        double t = sf_now() - t0;
        best = t < best ? t : best;
    }
    printf("attention %d heads d=%d Lq=%-5lld Lk=%-5lld%s  %8.1f ms  %6.1f GFLOP/s\n", heads, d, (long long)Lq,
           (long long)Lk, tap ? " +logits" : "        ", best * 1e3, flop / best / 1e9);
    free(q), free(k), free(v), free(o), free(lg);
}

/* The cost of one parallel region: sf_parallel_for over a trivial body, the rate the CPU DiT
 * hits (~20 000 regions per video: every GEMM, norm, RoPE and attention call), and one small GEMM
 * (M = 4 rows: the time-embedding shape, where the region overhead dominates). */
static void touch_range(void *ctx, int64_t b, int64_t e) {
    volatile float *p = ctx;
    for (int64_t i = b; i < e; i++) p[i] += 1.0f;
}
static void bench_regions(int threads) {
    enum { N_CALLS = 20000 };
    static float buf[4096];
    double t0 = sf_now();
    for (int i = 0; i < N_CALLS; i++) sf_parallel_for(4096, threads, 1, touch_range, buf);
    double t = sf_now() - t0;
    printf("parallel region (%d threads, trivial body): %.2f us per call, %d calls %.3f s\n", threads,
           t / N_CALLS * 1e6, N_CALLS, t);
}

/* "VAE block": the two causal 3×3×3 convolutions of one decoder residual block at 192 channels on
 * the 832×480 decoder's 120×208 stage, one output frame (two history frames): 2 × 0.1 TFLOP.
 * tests/bench/torch_ref.py times the same two F.conv3d. */
static void bench_vae_block(int threads) {
    enum { C = 192, H = 120, W = 208, KT = 3 };
    const size_t fe = (size_t)C * H * W, wn = (size_t)C * C * KT * 9;
    float *x = randf(3 * fe, 31, 1.0f), *y = xmalloc(fe * sizeof(float)), *z = xmalloc(3 * fe * sizeof(float));
    float *w = randf(wn, 32, 0.02f), *b = randf(C, 33, 0.05f);
    memset(z, 0, 3 * fe * sizeof(float));
    const float *f1[3] = {x, x + fe, x + 2 * fe}, *f2[3] = {z, z + fe, y};
    sf_conv3d_args a1 = {f1, 1, C, C, H, W, KT, 3, 3, w, b, y, threads, NULL, 1};
    sf_conv3d_args a2 = {f2, 1, C, C, H, W, KT, 3, 3, w, b, z + 2 * fe, threads, NULL, 1};
    sf_err err = {{0}};
    double best = 1e30, spent = 0;
    /* a warm-up (it builds oneDNN's kernels), then the best of up to 5 within ~3 s (torch_ref.py's way) */
    for (int r = 0; r < 6 && (r < 3 || spent < 3.0); r++) {
        double t0 = sf_now();
        if (sf_conv3d_cpu(&a1, &err) || sf_conv3d_cpu(&a2, &err)) {
            fprintf(stderr, "bench_kernels: conv3d failed: %s\n", err.msg);
            break;
        }
        double t = sf_now() - t0;
        if (r) best = t < best ? t : best, spent += t;
    }
    printf("vae block (2 causal convs 3x3x3, %d ch, %dx%d, 1 frame) [%s]  %8.1f ms  %6.1f GFLOP/s\n", C, H, W,
           sf_cpu_mode_name(sf_cpu_mode_now()), best * 1e3, 2.0 * 2.0 * C * C * KT * 9 * H * W / best / 1e9);
    free(x), free(y), free(z), free(w), free(b);
}

/* "VAE attention": the Wan VAE's middle AttentionBlock core (one head, d = C = 384, over the 60×104
 * = 6240 tokens of one 832×480 latent frame; the decoder runs it once per latent frame, the encoder
 * once per image) through sf_vae_attention_cpu with its scratch sized as the VAE sizes it, and the
 * token-major attention kernel alone at the same shape (the difference is the layout transposes). */
static void bench_vae_attn(int threads) {
    enum { C = 384, H = 60, W = 104 };
    const int64_t HW = (int64_t)H * W;
    float *qkv = randf((size_t)(3 * C * HW), 41, 1.0f), *out = xmalloc(sizeof(float) * (size_t)(C * HW));
    float *scr = xmalloc(sizeof(float) * sf_vae_attention_scratch(C, HW, threads));
    const double flop = 4.0 * (double)HW * (double)HW * C;
    const char *mode = sf_cpu_mode_name(sf_cpu_mode_now());
    double best = 1e30, spent = 0;
    for (int r = 0; r < 6 && (r < 2 || spent < 3.0); r++) { /* a warm-up, then best of up to 5 within ~3 s */
        double t0 = sf_now();
        if (sf_vae_attention_cpu(qkv, out, 1, C, HW, scr, threads)) {
            fprintf(stderr, "bench_kernels: VAE attention failed\n");
            exit(1);
        }
        double t = sf_now() - t0;
        if (r) best = t < best ? t : best, spent += t;
    }
    printf("vae attention (1 head, d=%d, %d tokens, 1 frame) [%s]  %8.1f ms  %6.1f GFLOP/s\n", C, (int)HW, mode,
           best * 1e3, flop / best / 1e9);
    free(qkv), free(out), free(scr);
    bench_attn(HW, HW, 1, C, threads, 0, 2);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--vae-block") == 0) { /* make bench's mode table */
        const char *ts = getenv("SF_THREADS");
        bench_vae_block(ts && atoi(ts) > 0 ? atoi(ts) : sf_cpu_count());
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--vae-attn") == 0) {
        const char *ts = getenv("SF_THREADS");
        bench_vae_attn(ts && atoi(ts) > 0 ? atoi(ts) : sf_cpu_count());
        return 0;
    }
    int full = argc > 1 && strcmp(argv[1], "--full") == 0;
    if (argc > 1 && !full) {
        fprintf(stderr, "usage: bench_kernels [--full | --vae-attn | --vae-block]\n");
        return 2;
    }
    const char *ts = getenv("SF_THREADS");
    int threads = ts && atoi(ts) > 0 ? atoi(ts) : sf_cpu_count();
    printf("threads: %d%s\n", threads, full ? " (full shapes)" : " (quick shapes; --full for 4680 rows/queries)");
    int64_t M = full ? 4680 : 520, Q = full ? 4680 : 260;
    int reps = full ? 1 : 2;
    bench_regions(threads);
    bench_gemm(M, 1536, 1536, threads, reps, NULL);
    bench_gemm(M, 1536, 8960, threads, reps, NULL);
    bench_gemm(full ? M : 260, 8960, 1536, threads, reps, NULL);
    bench_gemm(4, 1536, 8960, threads, reps, NULL); /* small M: the column split */
    { /* the same with the work memory a component sizes at init (the DiT state's): no malloc per call */
        sf_scratch ws;
        sf_err err = {{0}};
        if (sf_scratch_init(&ws, threads, sf_gemm_cpu_scratch(8960), &err) == SF_OK) {
            bench_gemm(4, 1536, 8960, threads, reps, &ws);
            sf_scratch_free(&ws);
        }
    }
    bench_attn(Q, 4680, 12, 128, threads, 0, reps);
    bench_attn(Q, 9360, 12, 128, threads, 0, reps);
    bench_attn(Q, 4680, 12, 128, threads, 1, reps);
    bench_attn(Q, 512, 12, 128, threads, 0, reps); /* cross-attention */
    printf("peak RSS: %.0f MB\n", peak_rss_mb());
    return 0;
}
