/* test_rng_torch.c — common/rng_torch.c: torch.randn on a CUDA device, computed on the CPU.
 *
 * Oracles: Random123's published Philox4x32-10 known answers; torch.randn values that PyTorch users
 * printed in PyTorch's issue tracker (4 decimals: torch.manual_seed(10), randn(3) on a GPU, issue
 * #79496; Generator(cuda).manual_seed(42), randn([1, 64, 2048]) on two machines, issue #158398 — its
 * last row only comes out with a 28-SM, 1536-thread card's grid, an RTX 3060's); and a plain
 * thread-by-thread run of PyTorch's grid-stride kernel (curand_init, curand4 calls, element
 * t + S·(4i + k)) against the range function's direct mapping. Also the pipeline: a run on the torch
 * stream equals the same run replaying those draws from a file: test_dit_pipeline torch_noise. */
#include "sf_test.h"
#include "rng_torch.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_philox_known(void) {
    static const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                       {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                       {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
    static const uint32_t key[3][2] = {{0, 0}, {0xffffffffu, 0xffffffffu}, {0xa4093822u, 0x299f31d0u}};
    static const uint32_t want[3][4] = {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
                                        {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
                                        {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
    for (int c = 0; c < 3; c++) {
        uint32_t out[4];
        sf_philox4x32_10(ctr[c], key[c], out);
        for (int k = 0; k < 4; k++)
            SF_CHECK_MSG(out[k] == want[c][k], "philox case %d word %d: %08x, want %08x", c, k, out[k], want[c][k]);
    }
}

static void near4(const float *got, const float *want, int n, const char *what) {
    for (int i = 0; i < n; i++) /* printed to 4 decimals */
        SF_CHECK_MSG(fabsf(got[i] - want[i]) <= 5.01e-5f, "%s[%d] = %.6f, PyTorch printed %.4f", what, i, got[i], want[i]);
}

static void test_torch_printed(void) {
    sf_torch_cuda_rng g = {10, 0, SF_TORCH_CUDA_SMS_H100, SF_TORCH_CUDA_THREADS_PER_SM};
    float x3[3];
    sf_torch_cuda_randn(&g, 3, 0, x3, 1);
    near4(x3, (const float[]){-0.1029f, 1.6810f, -0.2708f}, 3, "seed 10 randn(3)");
    SF_CHECK(g.offset == 4);
    enum { N = 1 * 64 * 2048 };
    float *x = malloc(sizeof(float) * N);
    SF_CHECK(x != NULL);
    if (!x) return;
    sf_torch_cuda_rng h = {42, 0, SF_TORCH_CUDA_SMS_H100, SF_TORCH_CUDA_THREADS_PER_SM};
    sf_torch_cuda_randn(&h, N, 0, x, 2);
    near4(x, (const float[]){0.1940f, 2.1614f, -0.1721f}, 3, "seed 42 row 0 head");
    near4(x + 2045, (const float[]){1.4540f, -2.7733f, -0.8932f}, 3, "seed 42 row 0 tail");
    near4(x + 2048, (const float[]){-0.4574f, 0.8063f, 0.1580f}, 3, "seed 42 row 1 head");
    /* the last row: elements past one wave of a small card's grid (S = 168 blocks = 43008 threads) take
     * curand_normal4's components 1..3, so they follow that card's geometry */
    sf_torch_cuda_rng r3060 = {42, 0, 28, 1536};
    sf_torch_cuda_randn_range(&r3060, N, N - 3, N, 0, x, 1);
    near4(x, (const float[]){-0.4841f, 1.2850f, -0.0282f}, 3, "seed 42 row 63 tail, 28 SMs x 1536");
    sf_torch_cuda_randn_range(&r3060, N, 0, 3, 0, x, 1); /* within the first wave: the same on every card */
    near4(x, (const float[]){0.1940f, 2.1614f, -0.1721f}, 3, "seed 42 row 0 head, 28 SMs x 1536");
    free(x);
}

/* PyTorch's calc_execution_policy: 4 · ceil(numel / (4 · S)), S the grid's threads. */
static void test_increment(void) {
    sf_torch_cuda_rng g = {0, 0, SF_TORCH_CUDA_SMS_H100, SF_TORCH_CUDA_THREADS_PER_SM};
    SF_CHECK(sf_torch_cuda_randn_increment(&g, 1) == 4);
    SF_CHECK(sf_torch_cuda_randn_increment(&g, 4 * 270336) == 4);             /* 132·8 blocks of 256: one call each */
    SF_CHECK(sf_torch_cuda_randn_increment(&g, 4 * 270336 + 1) == 8);
    SF_CHECK(sf_torch_cuda_randn_increment(&g, 21LL * 16 * 60 * 104) == 8);   /* the reference's initial noise */
    SF_CHECK(sf_torch_cuda_randn_increment(&g, 3LL * 16 * 60 * 104) == 4);    /* one re-noising draw */
    sf_torch_cuda_rng a100 = {0, 0, 108, 2048};
    SF_CHECK(sf_torch_cuda_randn_increment(&a100, 21LL * 16 * 60 * 104) == 12); /* 864 blocks: 3 calls */
}

/* PyTorch's kernel as written, one thread after another: curand_init(seed, t, offset), then
 * curand_normal4 per grid-stride step, component k to element li + S·k. */
static void simulate(uint64_t seed, uint64_t offset, int64_t S, int64_t numel, float *out) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const int64_t rounded = ((numel - 1) / (S * 4) + 1) * S * 4;
    for (int64_t t = 0; t < S; t++) {
        uint64_t lo = offset / 4, hi = (uint64_t)t; /* the 128-bit counter: (lo, hi) */
        for (int64_t li = t; li < rounded; li += S * 4) {
            const uint32_t ctr[4] = {(uint32_t)lo, (uint32_t)(lo >> 32), (uint32_t)hi, (uint32_t)(hi >> 32)};
            uint32_t w[4];
            sf_philox4x32_10(ctr, key, w);
            if (++lo == 0) hi++;
            float z[4];
            for (int p = 0; p < 2; p++) {
                const float inv = 2.3283064e-10f, inv2pi = 2.3283064e-10f * 6.2831855f;
                const float u = fmaf((float)w[2 * p], inv, inv / 2), v = fmaf((float)w[2 * p + 1], inv2pi, inv2pi / 2);
                const float r = sqrtf(-2.0f * logf(u));
                z[2 * p] = sinf(v) * r, z[2 * p + 1] = cosf(v) * r;
            }
            for (int k = 0; k < 4; k++)
                if (li + S * k < numel) out[li + S * k] = z[k];
        }
    }
}

static void test_mapping(void) {
    const int64_t numel = 3000; /* a 1-SM, 256-thread card: S = 256, three grid-stride steps */
    float *want = malloc(sizeof(float) * numel), *got = malloc(sizeof(float) * numel);
    SF_CHECK(want && got);
    if (!want || !got) goto done;
    simulate(7, 8, 256, numel, want);
    sf_torch_cuda_rng g = {7, 8, 1, 256};
    sf_torch_cuda_randn(&g, numel, 0, got, 1);
    SF_CHECK(memcmp(got, want, sizeof(float) * numel) == 0);
    SF_CHECK(g.offset == 8 + 12);
    const int64_t cuts[][2] = {{0, 1}, {255, 257}, {1023, 1025}, {1500, 3000}, {2999, 3000}};
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) { /* any range of a launch, any thread count */
        memset(got, 0, sizeof(float) * numel);
        sf_torch_cuda_rng h = {7, 8, 1, 256};
        sf_torch_cuda_randn_range(&h, numel, cuts[c][0], cuts[c][1], 0, got, 3);
        SF_CHECK_MSG(memcmp(got, want + cuts[c][0], sizeof(float) * (size_t)(cuts[c][1] - cuts[c][0])) == 0,
                     "range [%lld, %lld)", (long long)cuts[c][0], (long long)cuts[c][1]);
        SF_CHECK(h.offset == 8);
    }
    /* bf16: each value rounded to nearest even, representable in bf16 */
    sf_torch_cuda_rng b = {7, 8, 1, 256};
    sf_torch_cuda_randn(&b, numel, 1, got, 1);
    for (int64_t i = 0; i < numel; i++) {
        uint32_t u, v;
        memcpy(&u, &got[i], 4);
        memcpy(&v, &want[i], 4);
        const uint32_t r = (v + 0x7FFFu + ((v >> 16) & 1u)) & 0xFFFF0000u;
        if (u != r || (u & 0xFFFFu)) {
            SF_CHECK_MSG(0, "bf16 value %lld: %08x from %08x", (long long)i, u, v);
            break;
        }
    }
done:
    free(want);
    free(got);
}

/* On a GPU (tests/gpu/check.sh): the draws torch_noise.py made with the reference's torch on this card
 * (SF_TORCH_NOISE_DIR) against ours for its SM count and threads per SM — the generator's offset after
 * each draw, and every value: bf16 draws within one bf16 step (the card's sine and cosine are
 * __sincosf approximations, ours sinf/cosf) and 99 % of them bit for bit; the float32 draw within
 * 1e-5 + 2e-6·|x|. Every figure is printed, the worst element with both values. */
static float *read_f32(const char *dir, const char *name, int64_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.f32", dir, name);
    FILE *f = fopen(path, "rb");
    float *x = f ? malloc(sizeof(float) * (size_t)n) : NULL;
    size_t got = x ? fread(x, sizeof(float), (size_t)n, f) : 0;
    if (f) fclose(f);
    SF_CHECK_MSG(x && got == (size_t)n, "%s: %zu of %lld floats", path, got, (long long)n);
    return x;
}

static void test_device_compare(void) {
    const char *dir = getenv("SF_TORCH_NOISE_DIR");
    if (!dir || !*dir) {
        SF_TEST_SKIP("no SF_TORCH_NOISE_DIR: tests/gpu/check.sh writes one on a GPU (tests/gpu/torch_noise.py)");
        return;
    }
    char path[1024], *data = NULL;
    size_t len = 0;
    sf_err err = {{0}};
    snprintf(path, sizeof path, "%s/meta.json", dir);
    SF_CHECK_OK(sf_read_file(path, &data, &len, 1 << 20, &err), &err);
    cJSON *m = data ? cJSON_ParseWithLength(data, len) : NULL;
    free(data);
    SF_CHECK(m != NULL);
    if (!m) return;
    sf_torch_cuda_rng g = {(uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(m, "seed")), 0,
                           (int)cJSON_GetNumberValue(cJSON_GetObjectItem(m, "sms")),
                           (int)cJSON_GetNumberValue(cJSON_GetObjectItem(m, "threads_per_sm"))};
    fprintf(stderr, "# %s, torch %s: %d SMs x %d threads\n", cJSON_GetStringValue(cJSON_GetObjectItem(m, "device")),
            cJSON_GetStringValue(cJSON_GetObjectItem(m, "torch")), g.sms, g.threads_per_sm);
    cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(m, "draws")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(d, "name"));
        const int bf16 = cJSON_IsTrue(cJSON_GetObjectItem(d, "bf16"));
        int64_t n = 1;
        cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(d, "shape")) n *= (int64_t)cJSON_GetNumberValue(e);
        float *ref = read_f32(dir, name, n), *got = malloc(sizeof(float) * (size_t)n);
        if (!ref || !got) {
            free(ref), free(got);
            break;
        }
        sf_torch_cuda_randn(&g, n, bf16, got, 4);
        const uint64_t off = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(d, "offset_after"));
        SF_CHECK_MSG(g.offset == off, "%s: generator offset after the draw %llu, torch's %llu", name,
                     (unsigned long long)g.offset, (unsigned long long)off);
        int64_t exact = 0, worst = 0, over = 0;
        double wd = -1;
        for (int64_t i = 0; i < n; i++) {
            const double dd = fabs((double)got[i] - ref[i]), mag = fabs(ref[i]) > fabs(got[i]) ? fabs(ref[i]) : fabs(got[i]);
            const double tol = bf16 ? ldexp(1.0, mag > 0 ? ilogb(mag) - 7 : -133) : 1e-5 + 2e-6 * mag;
            exact += got[i] == ref[i];
            over += dd > tol;
            if (dd > wd) wd = dd, worst = i;
        }
        fprintf(stderr, "# %s: %lld values, %lld bit-identical (%.4f %%), max |d| %.3g at %lld (ours %.8g, torch %.8g), %lld over tolerance\n",
                name, (long long)n, (long long)exact, 100.0 * (double)exact / (double)n, wd, (long long)worst, got[worst],
                ref[worst], (long long)over);
        SF_CHECK_MSG(over == 0, "%s: %lld values beyond %s; the worst at %lld: ours %.8g, torch %.8g", name, (long long)over,
                     bf16 ? "one bf16 step" : "1e-5 + 2e-6|x|", (long long)worst, got[worst], ref[worst]);
        if (bf16) SF_CHECK_MSG(exact >= n - n / 100, "%s: only %lld of %lld bit-identical", name, (long long)exact, (long long)n);
        free(ref), free(got);
    }
    cJSON_Delete(m);
}

static const sf_test tests[] = {
    {"philox_known", test_philox_known},
    {"torch_printed", test_torch_printed},
    {"increment", test_increment},
    {"mapping", test_mapping},
    {"device_compare", test_device_compare},
};
SF_TEST_MAIN(tests)
