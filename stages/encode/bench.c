/* bench.c — `sf-encode --bench xxl --device cuda[:N]`: the full-size umT5-XXL encoder (vocab 256384,
 * dim 4096, ffn 10240, 64 heads × 64, 24 layers, 32 buckets) with random bf16 weights generated on
 * the device (no 11 GB host file), one 512-token prompt: upload/init time, a warm-up prompt
 * (cuBLASLt heuristics), then ms per prompt over timed runs (median and min; every prompt ends with
 * its embeddings' download, so host time brackets the GPU work), the SF_CUDA_PROFILE breakdown when
 * set, and the GPU memory the encoder holds and the device's use after the runs. Modelled on
 * stages/denoise/bench_video.c. Run by tests/gpu/check.sh; one figure per line on stdout. */
#define _POSIX_C_SOURCE 200809L
#include "stages/encode/bench.h"
#include "cuda_ops.h"
#include "stages/encode/t5_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RUNS = 10 };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

sf_status sf_encode_bench(const char *kind, int cuda_ordinal, sf_err *err) {
    if (strcmp(kind, "xxl") != 0) return sf_fail(err, SF_E_ARG, "--bench: unknown '%s' (expected xxl)", kind);
    if (cuda_ordinal < 0)
        return sf_fail(err, SF_E_ARG, "--bench xxl runs the full-size encoder on a GPU: add --device cuda[:N]");
    sf_t5_config c = {0};
    c.vocab = 256384, c.dim = 4096, c.dim_attn = 4096, c.dim_ffn = 10240, c.num_heads = 64, c.head_dim = 64;
    c.num_layers = 24, c.num_buckets = 32, c.max_dist = 128, c.eps = 1e-6f, c.shared_pos = 0;
    const int64_t L = 512;
    sf_t5_gpu *g = NULL;
    sf_status s;
    size_t fr1 = 0, tot = 0;
    float *out = calloc((size_t)(L * c.dim), sizeof(float));
    int64_t *ids = calloc((size_t)L, sizeof(int64_t));
    double ms[RUNS];
    if (!out || !ids) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto done; }
    for (int64_t i = 0; i < L; i++) ids[i] = (i * 7919 + 13) % c.vocab; /* a full-length prompt */
    ids[L - 1] = 1;                                                      /* eos */
    double t0 = sf_now();
    if ((s = sf_t5_cuda_new_random(&c, cuda_ordinal, L, 11, &g, err))) goto done;
    printf("encode xxl gpu: %.2f GiB on the device (bf16 weights %.2f + activations %.2f), random init %.2f s\n",
           sf_t5_cuda_bytes(g) / 1073741824.0, sf_t5_cuda_weight_bytes(g) / 1073741824.0,
           (sf_t5_cuda_bytes(g) - sf_t5_cuda_weight_bytes(g)) / 1073741824.0, sf_now() - t0);
    double a = sf_now();
    if ((s = sf_t5_cuda_encode(g, ids, L, L, out, NULL, err))) goto done;
    printf("encode xxl gpu warm-up prompt: %.1f ms (cuBLASLt heuristics)\n", (sf_now() - a) * 1e3);
    sf_t5_cuda_profile_reset(g);
    for (int r = 0; r < RUNS; r++) {
        a = sf_now();
        if ((s = sf_t5_cuda_encode(g, ids, L, L, out, NULL, err))) goto done;
        ms[r] = (sf_now() - a) * 1e3;
    }
    int finite = 1;
    for (int64_t i = 0; i < L * c.dim && finite; i++) finite = out[i] == out[i] && out[i] - out[i] == 0.0f;
    qsort(ms, RUNS, sizeof ms[0], cmp_double);
    /* 2·params·tokens (GEMMs, the embedding is a gather) + 4·L²·dim_attn per layer (QKᵀ, P·V) */
    double flop = 2.0 * (double)L * (4.0 * c.dim * c.dim_attn + 3.0 * c.dim * c.dim_ffn) * c.num_layers +
                  4.0 * (double)L * L * c.dim_attn * c.num_layers;
    printf("encode xxl gpu: %.1f ms per 512-token prompt (median of %d, min %.1f): %.0f TFLOP/s%s\n", ms[RUNS / 2],
           RUNS, ms[0], flop / (ms[RUNS / 2] * 1e-3) / 1e12, finite ? "" : " (WARNING: non-finite outputs)");
    char prof[512];
    if (sf_t5_cuda_profile(g, prof, sizeof prof)) printf("encode xxl gpu profile (SF_CUDA_PROFILE): %s\n", prof);
    if ((s = sf_cuda_mem_info(&fr1, &tot, err))) goto done;
    printf("encode xxl gpu memory: %.2f GiB held by the encoder (weights + activations + attention workspace), "
           "device used %.2f of %.2f GiB after the runs\n",
           sf_t5_cuda_bytes(g) / 1073741824.0, (double)(tot - fr1) / 1073741824.0, (double)tot / 1073741824.0);
done:
    sf_t5_cuda_destroy(&g);
    free(out);
    free(ids);
    return s;
}
