/* gemm.c — CPU reference GEMM with bias for f32 / bf16 / f16 weights (see gemm.h).
 * Blocked: a panel of 64 weight rows is widened to f32 once per thread and reused for every
 * input row; the 1×4 micro-kernel keeps 4 columns' 8-lane partial sums in registers (GCC
 * vector extension; plain SSE without -mavx). Mirrors torch.nn.Linear (float32).
 * Tested by tests/unit/test_kernels.c. */
#include "gemm.h"
#include "parallel.h"

#include <stdlib.h>
#include <string.h>


typedef float v8 __attribute__((vector_size(32)));

#define PANEL 64

static inline v8 ld8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float hsum8(v8 a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

/* One dot product in the canonical order (used for the column remainder). */
static inline float dot1(const float *x, const float *w, int64_t K) {
    int64_t K8 = K & ~(int64_t)7;
    v8 acc = {0};
    for (int64_t k = 0; k < K8; k += 8) acc += ld8(x + k) * ld8(w + k);
    float s = hsum8(acc);
    for (int64_t k = K8; k < K; k++) s += x[k] * w[k];
    return s;
}

/* Four dot products sharing x, each in the same canonical order as dot1. */
static inline void dot4(const float *x, const float *w, int64_t K, float *out) {
    int64_t K8 = K & ~(int64_t)7;
    v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    const float *w0 = w, *w1 = w + K, *w2 = w + 2 * K, *w3 = w + 3 * K;
    for (int64_t k = 0; k < K8; k += 8) {
        v8 xv = ld8(x + k);
        a0 += xv * ld8(w0 + k);
        a1 += xv * ld8(w1 + k);
        a2 += xv * ld8(w2 + k);
        a3 += xv * ld8(w3 + k);
    }
    float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
    for (int64_t k = K8; k < K; k++) {
        s0 += x[k] * w0[k];
        s1 += x[k] * w1[k];
        s2 += x[k] * w2[k];
        s3 += x[k] * w3[k];
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

typedef struct gemm_job {
    int64_t M, N, K, ldx, ldy;
    const float *x;
    const void *w;
    sf_dtype wdt;
    const float *bias;
    float *y;
    int by_cols;
} gemm_job;

static void widen_rows(const void *w, sf_dtype wdt, int64_t K, int64_t n0, int64_t nr, float *dst) {
    size_t cnt = (size_t)(nr * K);
    if (wdt == SF_BF16) {
        const uint16_t *s = (const uint16_t *)w + n0 * K;
        for (size_t i = 0; i < cnt; i++) {
            uint32_t u = (uint32_t)s[i] << 16;
            memcpy(&dst[i], &u, 4);
        }
    } else {
        const uint16_t *s = (const uint16_t *)w + n0 * K;
        for (size_t i = 0; i < cnt; i++) dst[i] = sf_f16_to_f32(s[i]);
    }
}

static void gemm_block(const gemm_job *j, int64_t m0, int64_t m1, int64_t n0, int64_t n1, float *panel) {
    for (int64_t p0 = n0; p0 < n1; p0 += PANEL) {
        int64_t pn = n1 - p0 < PANEL ? n1 - p0 : PANEL;
        const float *wp;
        if (j->wdt == SF_F32) {
            wp = (const float *)j->w + p0 * j->K;
        } else {
            widen_rows(j->w, j->wdt, j->K, p0, pn, panel);
            wp = panel;
        }
        for (int64_t m = m0; m < m1; m++) {
            const float *xr = j->x + m * j->ldx;
            float *yr = j->y + m * j->ldy + p0;
            int64_t c = 0;
            for (; c + 4 <= pn; c += 4) dot4(xr, wp + c * j->K, j->K, yr + c);
            for (; c < pn; c++) yr[c] = dot1(xr, wp + c * j->K, j->K);
            if (j->bias)
                for (c = 0; c < pn; c++) yr[c] += j->bias[p0 + c];
        }
    }
}

static void gemm_lowmem(const gemm_job *j, int64_t b, int64_t e) {
    int64_t m0 = j->by_cols ? 0 : b, m1 = j->by_cols ? j->M : e;
    int64_t n0 = j->by_cols ? b * PANEL : 0, n1 = j->by_cols ? (e * PANEL < j->N ? e * PANEL : j->N) : j->N;
    for (int64_t m = m0; m < m1; m++)
        for (int64_t n = n0; n < n1; n++) {
            int64_t K = j->K, K8 = K & ~(int64_t)7;
            const float *xr = j->x + m * j->ldx;
            float wb[8];
            v8 acc = {0};
            for (int64_t k = 0; k < K8; k += 8) {
                widen_rows((const char *)j->w + 0, j->wdt, 1, n * K + k, 8, wb); /* 8 elements */
                acc += ld8(xr + k) * ld8(wb);
            }
            float s = hsum8(acc);
            for (int64_t k = K8; k < K; k++) {
                widen_rows(j->w, j->wdt, 1, n * K + k, 1, wb);
                s += xr[k] * wb[0];
            }
            if (j->bias) s += j->bias[n];
            j->y[m * j->ldy + n] = s;
        }
}

static void gemm_range(void *ctx, int64_t b, int64_t e) {
    const gemm_job *j = ctx;
    float *panel = NULL;
    if (j->wdt != SF_F32) {
        panel = malloc(sizeof(float) * (size_t)PANEL * (size_t)j->K);
        if (!panel) { /* out of memory: widen one weight row at a time (same sums, slower) */
            gemm_lowmem(j, b, e);
            return;
        }
    }
    if (j->by_cols) gemm_block(j, 0, j->M, b * PANEL, e * PANEL < j->N ? e * PANEL : j->N, panel);
    else gemm_block(j, b, e, 0, j->N, panel);
    free(panel);
}

int sf_gemm_cpu(int64_t M, int64_t N, int64_t K, const float *x, int64_t ldx, const void *w, sf_dtype wdt,
                const float *bias, float *y, int64_t ldy, int nthreads) {
    if (wdt != SF_F32 && wdt != SF_BF16 && wdt != SF_F16) return -1;
    if (M <= 0 || N <= 0) return 0;
    gemm_job j = {M, N, K, ldx, ldy, x, w, wdt, bias, y, 0};
    int64_t npanels = (N + PANEL - 1) / PANEL;
    /* Split rows when there are enough of them, else weight panels (columns). */
    if (nthreads > 1 && M < 8 * (int64_t)nthreads && npanels >= 2) {
        j.by_cols = 1;
        sf_parallel_for(npanels, nthreads, 1, gemm_range, &j);
    } else {
        int64_t work = N * K; /* per row */
        int64_t min_rows = work > 0 ? (1 << 16) / work + 1 : M;
        sf_parallel_for(M, nthreads, min_rows, gemm_range, &j);
    }
    return 0;
}
