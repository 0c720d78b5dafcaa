/* norm_rows.c — LayerNorm / RMSNorm over rows (see norm_rows.h). Mirrors wan/modules/model.py
 * WanLayerNorm and WanRMSNorm in float32. Tested by tests/unit/test_kernels.c and the DiT goldens. */
#include "norm_rows.h"
#include "parallel.h"

#include <math.h>
#include <stddef.h>

typedef struct norm_job {
    int64_t D, ldx, ldy;
    const float *x, *w, *b;
    double eps;
    float *y;
    int rms;
    int fast; /* fast / bf16 modes: four interleaved double sums (the exact mode: one, in order) */
} norm_job;

/* Σ f(x[i]) in double: in order (exact), or in four interleaved partial sums (fast: 4× the
 * throughput of one dependent chain; not the exact mode's bits). f: 0 = x, 1 = x², 2 = (x − m)². */
static double row_sum(const float *x, int64_t D, int f, double m, int fast) {
#define TERM(v) (f == 0 ? (double)(v) : f == 1 ? (double)(v) * (double)(v) : ((double)(v) - m) * ((double)(v) - m))
    if (!fast) {
        double s = 0;
        for (int64_t i = 0; i < D; i++) s += TERM(x[i]);
        return s;
    }
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= D; i += 4) s0 += TERM(x[i]), s1 += TERM(x[i + 1]), s2 += TERM(x[i + 2]), s3 += TERM(x[i + 3]);
    for (; i < D; i++) s0 += TERM(x[i]);
    return (s0 + s1) + (s2 + s3);
#undef TERM
}

static void norm_range(void *ctx, int64_t r0, int64_t r1) {
    const norm_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->ldx;
        float *y = j->y + r * j->ldy;
        if (j->rms) {
            const double ss = row_sum(x, j->D, 1, 0, j->fast);
            float rs = (float)(1.0 / sqrt(ss / (double)j->D + j->eps));
            for (int64_t i = 0; i < j->D; i++) {
                float v = x[i] * rs;
                y[i] = j->w ? v * j->w[i] : v;
            }
        } else {
            const double mean = row_sum(x, j->D, 0, 0, j->fast) / (double)j->D;
            const double ss = row_sum(x, j->D, 2, mean, j->fast);
            double rstd = 1.0 / sqrt(ss / (double)j->D + j->eps);
            for (int64_t i = 0; i < j->D; i++) {
                float v = (float)(((double)x[i] - mean) * rstd);
                if (j->w) v = v * j->w[i] + (j->b ? j->b[i] : 0.0f);
                y[i] = v;
            }
        }
    }
}

/* Rows per thread at least: ~16 k elements (64 rows of the umT5's 4096 ran on one thread before, its
 * sequential double sums 0.4 ms a norm). Each row's arithmetic is the same on any thread: same bits. */
static int64_t min_rows(int64_t D) { return 1 + (int64_t)16384 / (D > 0 ? D : 1); }

void sf_layernorm_cpu(int64_t M, int64_t D, const float *x, int64_t ldx, const float *w, const float *b, double eps,
                      float *y, int64_t ldy, int nthreads) {
    norm_job j = {D, ldx, ldy, x, w, b, eps, y, 0, sf_cpu_mode_now() != SF_CPU_EXACT};
    sf_parallel_for(M, nthreads, min_rows(D), norm_range, &j);
}

void sf_rmsnorm_cpu(int64_t M, int64_t D, const float *x, int64_t ldx, const float *w, double eps, float *y,
                    int64_t ldy, int nthreads) {
    norm_job j = {D, ldx, ldy, x, w, NULL, eps, y, 1, sf_cpu_mode_now() != SF_CPU_EXACT};
    sf_parallel_for(M, nthreads, min_rows(D), norm_range, &j);
}
