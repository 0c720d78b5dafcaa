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
} norm_job;

static void norm_range(void *ctx, int64_t r0, int64_t r1) {
    const norm_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->ldx;
        float *y = j->y + r * j->ldy;
        if (j->rms) {
            double ss = 0;
            for (int64_t i = 0; i < j->D; i++) ss += (double)x[i] * x[i];
            float rs = (float)(1.0 / sqrt(ss / (double)j->D + j->eps));
            for (int64_t i = 0; i < j->D; i++) {
                float v = x[i] * rs;
                y[i] = j->w ? v * j->w[i] : v;
            }
        } else {
            double s = 0, ss = 0;
            for (int64_t i = 0; i < j->D; i++) s += x[i];
            double mean = s / (double)j->D;
            for (int64_t i = 0; i < j->D; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
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
    norm_job j = {D, ldx, ldy, x, w, b, eps, y, 0};
    sf_parallel_for(M, nthreads, min_rows(D), norm_range, &j);
}

void sf_rmsnorm_cpu(int64_t M, int64_t D, const float *x, int64_t ldx, const float *w, double eps, float *y,
                    int64_t ldy, int nthreads) {
    norm_job j = {D, ldx, ldy, x, w, NULL, eps, y, 1};
    sf_parallel_for(M, nthreads, min_rows(D), norm_range, &j);
}
