/* rng_torch.c — torch.randn on a CUDA device, on the CPU (rng_torch.h). */
#include "rng_torch.h"
#include "sf.h"
#include "tensor.h"

#include <math.h>

void sf_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r) k0 += 0x9E3779B9u, k1 += 0xBB67AE85u; /* the Weyl key schedule between rounds */
        const uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1,
                       n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* Threads of the launch: 256 per block, the grid capped at one wave of resident blocks. */
static int64_t launch_threads(const sf_torch_cuda_rng *g, int64_t numel) {
    int64_t grid = (numel + 255) / 256, cap = (int64_t)g->sms * (g->threads_per_sm / 256);
    if (cap < 1) cap = 1;
    return 256 * (grid < cap ? grid : cap);
}

uint64_t sf_torch_cuda_randn_increment(const sf_torch_cuda_rng *g, int64_t numel) {
    if (numel <= 0) return 0;
    const int64_t S = launch_threads(g, numel);
    return (uint64_t)((numel - 1) / (S * 4) + 1) * 4; /* 4 offsets per curand_normal4 call, per thread */
}

/* cuRAND's Box–Muller of two words: (sin v, cos v) · sqrt(-2 ln u). The uniforms as the device computes
 * them (the multiply-add contracted into one rounding, as nvcc does by default). */
static void box_muller(uint32_t a, uint32_t b, float *s_out, float *c_out) {
    const float inv = 2.3283064e-10f, inv2pi = 2.3283064e-10f * 6.2831855f;
    const float u = fmaf((float)a, inv, inv / 2), v = fmaf((float)b, inv2pi, inv2pi / 2);
    const float r = sqrtf(-2.0f * logf(u));
    *s_out = sinf(v) * r;
    *c_out = cosf(v) * r;
}

void sf_torch_cuda_randn_range(const sf_torch_cuda_rng *g, int64_t numel, int64_t begin, int64_t end, int bf16,
                               float *out, int threads) {
    if (begin < 0) begin = 0;
    if (end > numel) end = numel;
    if (begin >= end) return;
    const int64_t S = launch_threads(g, numel);
    const uint64_t base = g->offset / 4; /* the counter's low 64 bits at the first call (offsets are multiples of 4) */
    const uint32_t key[2] = {(uint32_t)g->seed, (uint32_t)(g->seed >> 32)};
    /* call row i of every thread covers elements [4iS, 4(i+1)S): only the rows the range touches */
    const int64_t i0 = begin / (4 * S), i1 = (end - 1) / (4 * S);
    for (int64_t i = i0; i <= i1; i++) {
        const int64_t row = 4 * S * i;
        const uint64_t lo = base + (uint64_t)i;
        const uint32_t carry = lo < base; /* the counter's low half wrapping into the thread's half */
#pragma omp parallel for num_threads(threads > 1 ? threads : 1) schedule(static) if (threads > 1)
        for (int64_t t = 0; t < S; t++) {
            int64_t li[4];
            int any = 0;
            for (int k = 0; k < 4; k++) li[k] = row + t + S * k, any |= li[k] >= begin && li[k] < end;
            if (!any) continue;
            const uint64_t hi = (uint64_t)t + carry;
            const uint32_t ctr[4] = {(uint32_t)lo, (uint32_t)(lo >> 32), (uint32_t)hi, (uint32_t)(hi >> 32)};
            uint32_t w[4];
            float z[4];
            sf_philox4x32_10(ctr, key, w);
            box_muller(w[0], w[1], &z[0], &z[1]);
            box_muller(w[2], w[3], &z[2], &z[3]);
            for (int k = 0; k < 4; k++)
                if (li[k] >= begin && li[k] < end) out[li[k] - begin] = bf16 ? sf_round_bf16(z[k]) : z[k];
        }
    }
}

void sf_torch_cuda_randn(sf_torch_cuda_rng *g, int64_t numel, int bf16, float *out, int threads) {
    sf_torch_cuda_randn_range(g, numel, 0, numel, bf16, out, threads);
    g->offset += sf_torch_cuda_randn_increment(g, numel);
}
