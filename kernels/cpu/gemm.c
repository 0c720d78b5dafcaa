/* gemm.c — CPU reference GEMM with bias for f32 / bf16 / f16 weights (see gemm.h).
 * Mirrors torch.nn.Linear (float32). Tested by tests/unit/test_kernels.c (vs a double reference,
 * f32 vs bf16 weights, 1..4 threads, row/column split, ragged tile edges, guard bytes);
 * benchmarked by tests/bench/bench_kernels.c.
 *
 * Blocking (kernels in gemm_tile.inc): per panel of NP weight rows (copied, or widened from
 * bf16/f16, into an f32 panel once per thread), per block of RB input rows, per K chunk of KC:
 * 3 rows × 4 weight rows register tiles of 8-lane partial sums, parked in an f32 scratch between
 * chunks (which does not change them); finally each output = the canonical lane combination +
 * K%8 tail + bias. So every output is the same sum whatever the tile, chunk or thread that
 * computes it. Plain GCC vector code (no FMA contraction: the Makefile passes -ffp-contract=off),
 * compiled for the baseline ISA and under target("avx2"), chosen at run time: same bits. */
#include "gemm.h"
#include "dnnl_ops.h"
#include "parallel.h"

#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wpsabi" /* static always-inline vector helpers: no ABI */

typedef float v8 __attribute__((vector_size(32)));

#define NP 64  /* weight rows per panel (a multiple of 4) */
#define RB 48  /* input rows per block (a multiple of 3) */
#define KC 1024 /* K chunk (a multiple of 8): RB x KC inputs + NP x KC weights stay in L2 */

#define AI static inline __attribute__((always_inline))

typedef struct gemm_job {
    int64_t M, N, K, ldx, ldy, np; /* np: weight rows per panel */
    const float *x;
    const void *w;
    sf_dtype wdt;
    const float *bias;
    float *y;
    int by_cols, avx2;
    const sf_scratch *ws; /* the caller's scratch (NULL: allocate per call) */
} gemm_job;

#define SF_VARIANT_FILE "gemm_tile.inc"
#define SF_VARIANT_ISA sf_gemm_cpu_isa
#include "simd_variants.h"

static void widen_rows(const void *w, sf_dtype wdt, int64_t K, int64_t n0, int64_t nr, float *dst) {
    widen_base(w, wdt, K, n0, nr, dst);
}

static void gemm_lowmem(const gemm_job *j, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    for (int64_t m = m0; m < m1; m++)
        for (int64_t n = n0; n < n1; n++) {
            int64_t K = j->K, K8 = K & ~(int64_t)7;
            const float *xr = j->x + m * j->ldx;
            float wb[8];
            v8 acc = {0};
            for (int64_t k = 0; k < K8; k += 8) {
                widen_rows(j->w, j->wdt, 1, n * K + k, 8, wb); /* 8 elements */
                acc += ld8_base(xr + k) * ld8_base(wb);
            }
            float s = hsum8_base(&acc);
            for (int64_t k = K8; k < K; k++) {
                widen_rows(j->w, j->wdt, 1, n * K + k, 1, wb);
                s += xr[k] * wb[0];
            }
            if (j->bias) s += j->bias[n];
            j->y[m * j->ldy + n] = s;
        }
}

static void gemm_range(void *ctx, int64_t b, int64_t e, int part) {
    const gemm_job *j = ctx;
    int64_t m0 = j->by_cols ? 0 : b, m1 = j->by_cols ? j->M : e;
    int64_t n0 = j->by_cols ? b * j->np : 0, n1 = j->by_cols ? (e * j->np < j->N ? e * j->np : j->N) : j->N;
    /* the part's slot of the caller's scratch (sized at its init), else memory of this call */
    const size_t na = (size_t)8 * RB * NP, np = (size_t)j->np * (size_t)(j->K > 0 ? j->K : 1);
    float *acc = sf_scratch_part(j->ws, part, na + np), *own = NULL;
    if (!acc) {
        sf_scratch_count_miss();
        if (!(acc = own = malloc(sizeof(float) * (na + np)))) { /* out of memory: one output at a time (same sums, slower) */
            gemm_lowmem(j, m0, m1, n0, n1);
            return;
        }
    }
    float *panel = acc + na;
#ifdef SF_HAVE_AVX2_PATH
    if (j->avx2) gemm_block_avx2(j, m0, m1, n0, n1, panel, acc);
    else gemm_block_base(j, m0, m1, n0, n1, panel, acc);
#else
    gemm_block_base(j, m0, m1, n0, n1, panel, acc);
#endif
    free(own);
}

/* ---- fast and bf16 modes (parallel.h sf_cpu_mode): oneDNN's matmul ---------------------------------
 * f32 weights go to oneDNN as they are; bf16/f16 weights are widened (fast mode) or f32/f16 ones
 * rounded to bf16 (bf16 mode) FAST_ROWS·parts rows at a time into the scratch, and in the bf16 mode
 * the inputs are rounded to bf16 in row blocks there too. */
#define FAST_ROWS 128 /* weight or input rows per scratch part (≥ NP: the exact path fits too) */
/* Fewer input rows than this on f16 weights (or bf16 ones without bf16 units) stay on the exact kernels in
 * the fast mode: widening the whole matrix to f32 per call costs more than their in-cache panels (umT5
 * on a short prompt: 64 rows × 4096×10240 weights ran 1.5× slower through oneDNN). */
#define FAST_MIN_ROWS 256

typedef struct cvt_job {
    const void *src;
    sf_dtype sdt;
    int64_t K, lds, r0; /* rows r0.. of src (row stride lds) */
    void *dst;          /* rows of K, f32 (to_bf16 = 0) or bf16 */
    int to_bf16;
} cvt_job;

static void cvt_range(void *ctx, int64_t b, int64_t e) {
    const cvt_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        const int64_t so = (j->r0 + r) * j->lds;
        if (!j->to_bf16) widen_rows(j->src, j->sdt, 1, so, j->K, (float *)j->dst + r * j->K);
        else if (j->sdt == SF_F32) sf_dnnl_to_bf16((const float *)j->src + so, (uint16_t *)j->dst + r * j->K, j->K);
        else { /* f16: through f32, 512 values at a time */
            float tmp[512];
            for (int64_t k = 0; k < j->K; k += 512) {
                int64_t n = j->K - k < 512 ? j->K - k : 512;
                widen_rows(j->src, j->sdt, 1, so + k, n, tmp);
                sf_dnnl_to_bf16(tmp, (uint16_t *)j->dst + r * j->K + k, n);
            }
        }
    }
}

/* Convert rows [r0, r0 + n) of src into dst (rows of K), on nthreads. */
static void cvt_rows(const void *src, sf_dtype sdt, int64_t K, int64_t lds, int64_t r0, int64_t n, void *dst,
                     int to_bf16, int nthreads) {
    cvt_job j = {src, sdt, K, lds, r0, dst, to_bf16};
    sf_parallel_for(n, nthreads, 1 + (1 << 14) / (K > 0 ? K : 1), cvt_range, &j);
}

/* ---- fast mode on bf16 weights, CPUs with bf16 units: three bf16 pieces of each input ----------------
 * x = hi + mid + lo + e with each piece the bf16 rounding of what the previous ones leave, so
 * |e| ≤ 2⁻²⁵·|x| (8 significant bits per piece, as f32's 24 in three): f32-grade. A bf16 piece times a
 * bf16 weight is exact in f32 and oneDNN (AMX / AVX512-BF16) accumulates in f32, so one bf16 matmul
 * of the stacked rows [hi; mid; lo] and y = hi·Wᵀ + (mid·Wᵀ + lo·Wᵀ) + b is an f32 product that reads
 * the weights once, as they lie (no f32 copy: the bf16 umT5-XXL stays bf16 in memory). */
#define SPLIT_CAP ((int64_t)1 << 22) /* floats of stacked output per matmul call (16 MiB: under glibc's 32 MiB mmap ceiling, so the buffers are reused, not fresh pages per call) */

typedef struct split_job {
    const float *x, *bias;
    int64_t K, ldx, N, ldy, mr; /* mr rows in this block */
    uint16_t *xb;               /* 3·mr rows of K */
    float *c3;                  /* 3·mr rows of N */
    float *y;
} split_job;

static void split_range(void *ctx, int64_t b, int64_t e) {
    const split_job *j = ctx;
    for (int64_t r = b; r < e; r++)
        sf_dnnl_split3_bf16(j->x + r * j->ldx, j->xb + r * j->K, j->xb + (j->mr + r) * j->K,
                            j->xb + (2 * j->mr + r) * j->K, j->K);
}

static void combine_range(void *ctx, int64_t b, int64_t e) {
    const split_job *j = ctx;
    for (int64_t r = b; r < e; r++) {
        const float *hi = j->c3 + r * j->N, *mid = hi + j->mr * j->N, *lo = mid + j->mr * j->N;
        float *yr = j->y + r * j->ldy;
        if (j->bias)
            for (int64_t n = 0; n < j->N; n++) yr[n] = hi[n] + (mid[n] + lo[n]) + j->bias[n];
        else
            for (int64_t n = 0; n < j->N; n++) yr[n] = hi[n] + (mid[n] + lo[n]);
    }
}

static int gemm_split3(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const uint16_t *w,
                       const float *bias, float *y, int64_t ldy, int nthreads) {
    int64_t mc = SPLIT_CAP / (3 * N);
    if (mc < 16) mc = 16;
    if (mc > M) mc = M;
    uint16_t *xb = sf_malloc64(3 * (size_t)mc * (size_t)K, sizeof(uint16_t));
    float *c3 = sf_malloc64(3 * (size_t)mc * (size_t)N, sizeof(float));
    int rc = xb && c3 ? 0 : -1;
    for (int64_t m0 = 0; m0 < M && !rc; m0 += mc) {
        const int64_t mr = M - m0 < mc ? M - m0 : mc;
        split_job j = {x + m0 * ldx, bias, K, ldx, N, ldy, mr, xb, c3, y + m0 * ldy};
        sf_parallel_for(mr, nthreads, 1 + (1 << 14) / K, split_range, &j);
        rc = sf_dnnl_matmul(3 * mr, N, K, xb, K, w, K, 0, SF_BF16, NULL, 1.0f, c3, N, nthreads);
        if (!rc) sf_parallel_for(mr, nthreads, 1 + (1 << 14) / N, combine_range, &j);
    }
    free(xb);
    free(c3);
    return rc;
}

static int gemm_fast(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const void *w, sf_dtype wdt,
                     const float *bias, float *y, int64_t ldy, int nthreads, const sf_scratch *ws, int bf16) {
    if (!bf16 && wdt == SF_F32) return sf_dnnl_matmul(M, N, K, x, ldx, w, K, 0, SF_F32, bias, 1.0f, y, ldy, nthreads);
    if (!bf16 && wdt == SF_BF16 && K > 0 && sf_dnnl_bf16_native())
        return gemm_split3(M, N, K, x, ldx, w, bias, y, ldy, nthreads);
    if (K <= 0) return -1; /* nothing to convert: the exact kernels write the bias */
    const int parts = nthreads < 1 ? 1 : nthreads;
    size_t T = ws && ws->buf ? ws->per_part * (size_t)ws->parts : 0;
    float *buf = ws && ws->buf ? ws->buf : NULL, *own = NULL;
    if (T < (size_t)FAST_ROWS * (size_t)K) {
        sf_scratch_count_miss();
        T = (size_t)FAST_ROWS * (size_t)K * (size_t)parts;
        if (!(buf = own = sf_malloc64(T, sizeof(float)))) return -1;
    }
    int rc = 0;
    if (!bf16) { /* widen nc weight rows at a time */
        const int64_t nc = (int64_t)(T / (size_t)K);
        for (int64_t n0 = 0; n0 < N && !rc; n0 += nc) {
            const int64_t nr = N - n0 < nc ? N - n0 : nc;
            cvt_rows(w, wdt, K, K, n0, nr, buf, 0, nthreads);
            rc = sf_dnnl_matmul(M, nr, K, x, ldx, buf, K, 0, SF_F32, bias ? bias + n0 : NULL, 1.0f, y + n0, ldy, nthreads);
        }
    } else { /* bf16: T floats = 2T bf16 values; inputs in mc-row blocks, then weights in nc-row blocks */
        const int wcvt = wdt != SF_BF16;
        const size_t T2 = T & ~(size_t)31; /* the weights' half starts on a 64-byte line too */
        const int64_t mc = (int64_t)((wcvt ? T2 : 2 * T) / (size_t)K), nc = (int64_t)(T2 / (size_t)K);
        uint16_t *xb = (uint16_t *)buf, *wb = xb + (wcvt ? T2 : 0);
        for (int64_t m0 = 0; m0 < M && !rc; m0 += mc) {
            const int64_t mr = M - m0 < mc ? M - m0 : mc;
            cvt_rows(x, SF_F32, K, ldx, m0, mr, xb, 1, nthreads);
            if (!wcvt) {
                rc = sf_dnnl_matmul(mr, N, K, xb, K, w, K, 0, SF_BF16, bias, 1.0f, y + m0 * ldy, ldy, nthreads);
                continue;
            }
            for (int64_t n0 = 0; n0 < N && !rc; n0 += nc) {
                const int64_t nr = N - n0 < nc ? N - n0 : nc;
                cvt_rows(w, wdt, K, K, n0, nr, wb, 1, nthreads);
                rc = sf_dnnl_matmul(mr, nr, K, xb, K, wb, K, 0, SF_BF16, bias ? bias + n0 : NULL, 1.0f,
                                    y + m0 * ldy + n0, ldy, nthreads);
            }
        }
    }
    free(own);
    return rc;
}

size_t sf_gemm_cpu_scratch(int64_t K) { return (size_t)8 * RB * NP + (size_t)FAST_ROWS * (size_t)(K > 0 ? K : 1); }

int sf_gemm_cpu(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const void *w, sf_dtype wdt,
                const float *bias, float *y, int64_t ldy, int nthreads) {
    return sf_gemm_cpu_ws(M, N, K, x, ldx, w, wdt, bias, y, ldy, nthreads, NULL);
}

int sf_gemm_cpu_ws(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const void *w, sf_dtype wdt,
                   const float *bias, float *y, int64_t ldy, int nthreads, const sf_scratch *ws) {
    if (wdt != SF_F32 && wdt != SF_BF16 && wdt != SF_F16) return -1;
    if (M <= 0 || N <= 0) return 0;
    const sf_cpu_mode mode = sf_cpu_mode_now();
    /* fast / bf16: oneDNN (on its refusal, the exact kernels below: same contract) */
    const int fast = mode == SF_CPU_BF16 ||
                     (mode == SF_CPU_FAST && (wdt == SF_F32 || M >= FAST_MIN_ROWS || (wdt == SF_BF16 && sf_dnnl_bf16_native())));
    if (fast && gemm_fast(M, N, K, x, ldx, w, wdt, bias, y, ldy, nthreads, ws, mode == SF_CPU_BF16) == 0) return 0;
    int64_t np = NP;
    gemm_job j = {M, N, K, ldx, ldy, np, x, w, wdt, bias, y, 0, sf_cpu_use_avx2(), ws};
    int64_t npanels = (N + np - 1) / np;
    /* Split weight panels (columns) when rows are few, or moderately few and panels many (each
     * thread then widens only its own bf16/f16 panels); else split rows. */
    if (nthreads > 1 && npanels >= 2 && (M < 8 * (int64_t)nthreads || (M <= 1024 && npanels >= 4 * nthreads))) {
        j.by_cols = 1;
        sf_parallel_for_part(npanels, nthreads, 1, gemm_range, &j);
    } else {
        int64_t work = N * K; /* per row */
        int64_t min_rows = work > 0 ? (1 << 16) / work + 1 : M;
        sf_parallel_for_part(M, nthreads, min_rows, gemm_range, &j);
    }
    return 0;
}
