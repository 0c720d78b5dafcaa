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

size_t sf_gemm_cpu_scratch(int64_t K) { return (size_t)8 * RB * NP + (size_t)NP * (size_t)(K > 0 ? K : 1); }

int sf_gemm_cpu(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const void *w, sf_dtype wdt,
                const float *bias, float *y, int64_t ldy, int nthreads) {
    return sf_gemm_cpu_ws(M, N, K, x, ldx, w, wdt, bias, y, ldy, nthreads, NULL);
}

int sf_gemm_cpu_ws(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const void *w, sf_dtype wdt,
                   const float *bias, float *y, int64_t ldy, int nthreads, const sf_scratch *ws) {
    if (wdt != SF_F32 && wdt != SF_BF16 && wdt != SF_F16) return -1;
    if (M <= 0 || N <= 0) return 0;
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
