/* tap_mass.cu — exact post-softmax attention mass per key group, reduced per query frame, from the
 * explicit attention's logits chunk by chunk (the workbench's --tap-mode probs / --tap-cross).
 * Contract: kernels/tap_mass_cuda.h; CPU reference: kernels/tap_mass.h (kernels/cpu/tap_mass.c):
 * float row max, expf terms, double sums (block tree order here, key order there: equal to ~1e-16
 * relative), the same reduce loops. Tested by tests/unit/test_cuda_emu.c on the emulation layer. */
#include "cuda_common.cuh"
#include "tap_mass_cuda.h"

#define TM_THREADS 256 /* a power of two: sf_block_sum_f64's tree */

/* One block per (head, chunk row): max, Z = Σ exp(s − max), each group's share, lse. */
static __global__ void tap_row_mass_kernel(const float *__restrict__ S, int64_t lds, int64_t rows, int64_t r0,
                                           int64_t Lq, int64_t Lk, int64_t G, int64_t NG, float *__restrict__ rowmass,
                                           float *__restrict__ lse) {
    __shared__ float shm[32];
    __shared__ double shd[TM_THREADS];
    const int64_t b = blockIdx.x, h = b / rows, r = b % rows;
    const float *s = S + b * lds;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < Lk; j += blockDim.x) m = fmaxf(m, s[j]);
    m = sf_block_max(m, shm);
    double z = 0;
    for (int64_t j = threadIdx.x; j < Lk; j += blockDim.x) z += (double)expf(s[j] - m);
    z = sf_block_sum_f64(z, shd);
    float *out = rowmass + (h * Lq + r0 + r) * NG;
    if (G >= 32) { /* key frames: the block sums each group */
        for (int64_t g = 0; g < NG; g++) {
            double a = 0;
            for (int64_t j = g * G + threadIdx.x; j < (g + 1) * G; j += blockDim.x) a += (double)expf(s[j] - m);
            a = sf_block_sum_f64(a, shd);
            if (threadIdx.x == 0) out[g] = (float)(a / z);
        }
    } else { /* single tokens (the cross-attention's real text tokens): a thread per group */
        for (int64_t g = threadIdx.x; g < NG; g += blockDim.x) {
            double a = 0;
            for (int64_t j = g * G; j < (g + 1) * G; j++) a += (double)expf(s[j] - m);
            out[g] = (float)(a / z);
        }
    }
    if (threadIdx.x == 0) lse[h * Lq + r0 + r] = (float)((double)m + log(z));
}

extern "C" sf_status sf_tap_row_mass_cuda(const sf_cuda_ctx *ctx, int H, int64_t rows, int64_t r0, int64_t Lq,
                                          int64_t Lk, const float *S, int64_t lds, int64_t G, int64_t NG,
                                          float *rowmass, float *lse, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_tap_row_mass_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(H >= 1 && rows >= 0 && r0 >= 0 && r0 + rows <= Lq && Lk >= 1 && lds >= Lk && G >= 1 && NG >= 0 &&
                        NG * G <= Lk && (int64_t)H * rows <= INT_MAX,
                    "sf_tap_row_mass_cuda: bad shape H=%d rows=%lld r0=%lld Lq=%lld Lk=%lld G=%lld NG=%lld", H,
                    (long long)rows, (long long)r0, (long long)Lq, (long long)Lk, (long long)G, (long long)NG);
    if (rows == 0) return SF_OK;
    SF_LAUNCH(tap_row_mass_kernel, (unsigned)((int64_t)H * rows), TM_THREADS, 0, SF_CUDA_STREAM(ctx), S, lds, rows, r0,
              Lq, Lk, G, NG, rowmass, lse);
    CUDA_CHECK_LAUNCH("tap_row_mass_kernel");
    return SF_OK;
fail:
    return st;
}

/* exp(s − lse[row]) in place (sf_tap_token_mass_cpu). */
static __global__ void tap_token_mass_kernel(int64_t n, int64_t NG, const float *__restrict__ lse, float *__restrict__ s) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        s[i] = expf(s[i] - lse[i / NG]);
}

extern "C" sf_status sf_tap_token_mass_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t NG, const float *lse, float *s,
                                            sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_tap_token_mass_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(rows >= 0 && NG >= 0 && (rows * NG == 0 || (lse && s)), "sf_tap_token_mass_cuda: bad shape rows=%lld NG=%lld",
                    (long long)rows, (long long)NG);
    if (rows * NG == 0) return SF_OK;
    SF_LAUNCH(tap_token_mass_kernel, sf_cuda_blocks(rows * NG, TM_THREADS), TM_THREADS, 0, SF_CUDA_STREAM(ctx), rows * NG,
              NG, lse, s);
    CUDA_CHECK_LAUNCH("tap_token_mass_kernel");
    return SF_OK;
fail:
    return st;
}

/* The NG leading keys' logits of every head (sf_mm_head_logits, as the explicit attention's), then their masses. */
extern "C" sf_status sf_tap_token_mass_qk_cuda(const sf_cuda_ctx *ctx, int H, int64_t Lq, int64_t NG, int d, const void *q,
                                               int64_t ldq, const void *k, int64_t ldk, float scale, const float *lse,
                                               float *rowmass, sf_err *err) {
    sf_status st = SF_OK;
    sf_mm m;
    SF_CUDA_REQUIRE(ctx && ctx->stream && ctx->lt, "sf_tap_token_mass_qk_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(H >= 1 && Lq >= 0 && NG >= 0 && d >= 1 && ldq >= (int64_t)H * d && ldk >= (int64_t)H * d,
                    "sf_tap_token_mass_qk_cuda: bad shape H=%d Lq=%lld NG=%lld d=%d ldq=%lld ldk=%lld", H, (long long)Lq,
                    (long long)NG, d, (long long)ldq, (long long)ldk);
    if (Lq == 0 || NG == 0) return SF_OK;
    m = sf_mm_head_logits(Lq, NG, H, d, q, ldq, k, ldk, scale, rowmass, NG);
    SF_CHECK_STATUS(sf_blaslt_matmul(SF_CUDA_LT(ctx), &m, err));
    return sf_tap_token_mass_cuda(ctx, (int64_t)H * Lq, NG, lse, rowmass, err);
fail:
    return st;
}

/* Σ_g rowmass of every row, in g order (the CPU's). */
static __global__ void tap_row_total_kernel(int64_t n, int64_t NG, const float *__restrict__ rowmass,
                                            double *__restrict__ tot) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        double t = 0;
        for (int64_t g = 0; g < NG; g++) t += rowmass[i * NG + g];
        tot[i] = t;
    }
}

/* out[h, qf, g]: mean over the frame's rows (renormalised by the row totals when renorm). */
static __global__ void tap_mass_mean_kernel(int64_t n, int64_t Lq, int64_t NG, int64_t S, int renorm,
                                            const float *__restrict__ rowmass, const double *__restrict__ tot,
                                            float *__restrict__ out) {
    const int64_t QF = Lq / S;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t g = i % NG, hq = i / NG, h = hq / QF, qf = hq % QF;
        double a = 0;
        for (int64_t r = h * Lq + qf * S; r < h * Lq + (qf + 1) * S; r++) {
            double inv = !renorm ? 1.0 : tot[r] > 0 ? 1.0 / tot[r] : 0.0;
            a += (double)rowmass[r * NG + g] * inv;
        }
        out[i] = (float)(a / (double)S);
    }
}

/* stats[h, qf]: lse mean, min, max over the frame's rows and the mean row total. */
static __global__ void tap_mass_stats_kernel(int64_t n, int64_t Lq, int64_t S, const float *__restrict__ lse,
                                             const double *__restrict__ tot, float *__restrict__ stats) {
    const int64_t QF = Lq / S;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t h = i / QF, qf = i % QF;
        double lsum = 0, lmin = INFINITY, lmax = -INFINITY, held = 0;
        for (int64_t r = h * Lq + qf * S; r < h * Lq + (qf + 1) * S; r++) {
            double l = lse[r];
            lsum += l;
            lmin = l < lmin ? l : lmin;
            lmax = l > lmax ? l : lmax;
            held += tot[r];
        }
        float *o = stats + i * SF_TAP_NSTATS;
        o[0] = (float)(lsum / (double)S);
        o[1] = (float)lmin;
        o[2] = (float)lmax;
        o[3] = (float)(held / (double)S);
    }
}

extern "C" sf_status sf_tap_mass_reduce_cuda(const sf_cuda_ctx *ctx, int H, int64_t Lq, int64_t NG, int64_t S,
                                             int renorm, const float *rowmass, const float *lse, double *rowtot,
                                             float *out, float *stats, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_tap_mass_reduce_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(H >= 1 && Lq >= 0 && NG >= 0 && S >= 1 && Lq % S == 0,
                    "sf_tap_mass_reduce_cuda: bad shape H=%d Lq=%lld NG=%lld S=%lld", H, (long long)Lq, (long long)NG,
                    (long long)S);
    {
        const int64_t rows = (int64_t)H * Lq, nq = (int64_t)H * (Lq / S);
        if (rows == 0) return SF_OK;
        SF_LAUNCH(tap_row_total_kernel, sf_cuda_blocks(rows, 256), 256, 0, SF_CUDA_STREAM(ctx), rows, NG, rowmass, rowtot);
        CUDA_CHECK_LAUNCH("tap_row_total_kernel");
        if (nq * NG > 0) {
            SF_LAUNCH(tap_mass_mean_kernel, sf_cuda_blocks(nq * NG, 256), 256, 0, SF_CUDA_STREAM(ctx), nq * NG, Lq, NG, S,
                      renorm, rowmass, (const double *)rowtot, out);
            CUDA_CHECK_LAUNCH("tap_mass_mean_kernel");
        }
        SF_LAUNCH(tap_mass_stats_kernel, sf_cuda_blocks(nq, 256), 256, 0, SF_CUDA_STREAM(ctx), nq, Lq, S, lse,
                  (const double *)rowtot, stats);
        CUDA_CHECK_LAUNCH("tap_mass_stats_kernel");
    }
    return SF_OK;
fail:
    return st;
}

/* A thread per (frame, column) (grid-stride: sf_cuda_blocks caps the grid): the column's S values summed
 * in token order in double (the CPU's order), then divided by S. Adjacent threads read adjacent columns
 * of a row: coalesced. */
static __global__ void frame_means_kernel(int64_t nframes, int64_t S, int64_t D, const __nv_bfloat16 *__restrict__ x,
                                          int64_t ld, double *__restrict__ means) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < nframes * D; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t f = i / D, c = i % D;
        const __nv_bfloat16 *p = x + f * S * ld + c;
        double m = 0.0;
        for (int64_t t = 0; t < S; t++) m = __dadd_rn(m, (double)sf_bf(p[t * ld]));
        means[i] = __ddiv_rn(m, (double)S);
    }
}

extern "C" sf_status sf_frame_means_cuda(const sf_cuda_ctx *ctx, int64_t nframes, int64_t S, int64_t D, const void *x,
                                         int64_t ld, double *means, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_frame_means_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(nframes >= 0 && S >= 1 && D >= 1 && ld >= D, "sf_frame_means_cuda: bad shape nframes=%lld S=%lld D=%lld ld=%lld",
                    (long long)nframes, (long long)S, (long long)D, (long long)ld);
    if (nframes == 0) return SF_OK;
    SF_LAUNCH(frame_means_kernel, sf_cuda_blocks(nframes * D, 256), 256, 0, SF_CUDA_STREAM(ctx), nframes, S, D,
              (const __nv_bfloat16 *)x, ld, means);
    CUDA_CHECK_LAUNCH("frame_means_kernel");
    return SF_OK;
fail:
    return st;
}

/* A thread per (head, query frame, key frame) (grid-stride): the head's d products and their sum in
 * double in i order (explicitly rounded: never fused), times scale, rounded to float — the CPU's
 * arithmetic. */
static __global__ void frame_logit_means_kernel(int H, int64_t d, int64_t QF, int64_t KF, const double *__restrict__ qm,
                                                const double *__restrict__ km, double scale, float *__restrict__ out) {
    const int64_t n = (int64_t)H * QF * KF, D = (int64_t)H * d;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t kf = i % KF, qf = (i / KF) % QF, h = i / (KF * QF);
        const double *a = qm + qf * D + h * d, *b = km + kf * D + h * d;
        double s = 0.0;
        for (int64_t j = 0; j < d; j++) s = __dadd_rn(s, __dmul_rn(a[j], b[j]));
        out[i] = __double2float_rn(__dmul_rn(s, scale));
    }
}

extern "C" sf_status sf_frame_logit_means_cuda(const sf_cuda_ctx *ctx, int H, int64_t d, int64_t QF, int64_t KF,
                                               const double *qm, const double *km, double scale, float *out,
                                               sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_frame_logit_means_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(H >= 1 && d >= 1 && QF >= 0 && KF >= 0, "sf_frame_logit_means_cuda: bad shape H=%d d=%lld QF=%lld KF=%lld",
                    H, (long long)d, (long long)QF, (long long)KF);
    if (QF == 0 || KF == 0) return SF_OK;
    SF_LAUNCH(frame_logit_means_kernel, sf_cuda_blocks((int64_t)H * QF * KF, 128), 128, 0, SF_CUDA_STREAM(ctx), H, d, QF,
              KF, qm, km, scale, out);
    CUDA_CHECK_LAUNCH("frame_logit_means_kernel");
    return SF_OK;
fail:
    return st;
}
