/* rope.c — 3-axis RoPE (see rope.h). Mirrors wan/modules/model.py rope_params and
 * wan/modules/causal_model.py causal_rope_apply (complex128 arithmetic, then .type_as(x)).
 * Tested by tests/unit/test_kernels.c and tests/unit/test_dit.c. */
#include "rope.h"
#include "parallel.h"

#include <math.h>
#include <stdlib.h>

sf_status sf_rope_table_init(sf_rope_table *t, int head_dim, int max_pos, sf_err *err) {
    t->cs = NULL;
    if (head_dim < 6 || head_dim % 2 || max_pos < 1)
        return sf_fail(err, SF_E_ARG, "rope: unsupported head_dim %d", head_dim);
    int c = head_dim / 2, d6 = head_dim / 6;
    t->head_dim = head_dim;
    t->n_h = t->n_w = d6;
    t->n_t = c - 2 * d6;
    t->max_pos = max_pos;
    t->cs = sf_calloc2((size_t)max_pos * (size_t)c * 2, sizeof(double));
    if (!t->cs) return sf_fail(err, SF_E_NOMEM, "rope: out of memory");
    int dim_t = head_dim - 4 * d6, dim_hw = 2 * d6;
    for (int p = 0; p < max_pos; p++)
        for (int j = 0; j < c; j++) {
            int m, dim;
            if (j < t->n_t) { m = j; dim = dim_t; }
            else if (j < t->n_t + t->n_h) { m = j - t->n_t; dim = dim_hw; }
            else { m = j - t->n_t - t->n_h; dim = dim_hw; }
            /* torch: 1.0 / pow(theta, arange(0, dim, 2).double() / dim), outer with arange(pos) */
            double inv = 1.0 / pow(10000.0, (double)(2 * m) / (double)dim);
            double ang = (double)p * inv;
            t->cs[((size_t)p * c + j) * 2] = cos(ang);
            t->cs[((size_t)p * c + j) * 2 + 1] = sin(ang);
        }
    return SF_OK;
}

void sf_rope_table_free(sf_rope_table *t) {
    free(t->cs);
    t->cs = NULL;
}

typedef struct rope_job {
    const sf_rope_table *t;
    float *x;
    int64_t ld, start;
    int H, W, heads;
} rope_job;

static void rope_range(void *ctx, int64_t b, int64_t e) {
    const rope_job *j = ctx;
    const sf_rope_table *t = j->t;
    int c = t->head_dim / 2;
    for (int64_t tok = b; tok < e; tok++) {
        int64_t f = tok / ((int64_t)j->H * j->W), hw = tok % ((int64_t)j->H * j->W);
        int64_t pos[3] = {j->start + f, hw / j->W, hw % j->W};
        float *row = j->x + tok * j->ld;
        for (int jj = 0; jj < c; jj++) {
            int ax = jj < t->n_t ? 0 : (jj < t->n_t + t->n_h ? 1 : 2);
            const double *cs = t->cs + ((size_t)pos[ax] * c + jj) * 2;
            for (int h = 0; h < j->heads; h++) {
                float *z = row + (int64_t)h * t->head_dim + 2 * jj;
                double re = z[0], im = z[1];
                z[0] = (float)(re * cs[0] - im * cs[1]);
                z[1] = (float)(re * cs[1] + im * cs[0]);
            }
        }
    }
}

void sf_rope_apply_cpu(const sf_rope_table *t, float *x, int64_t ld, int F, int H, int W, int heads,
                       int64_t start_frame, int nthreads) {
    rope_job j = {t, x, ld, start_frame, H, W, heads};
    sf_parallel_for((int64_t)F * H * W, nthreads, 256, rope_range, &j);
}

typedef struct shift_job {
    const sf_rope_table *t;
    const float *src;
    float *dst;
    int64_t lds, ldd, delta;
    int heads;
} shift_job;

static void shift_range(void *ctx, int64_t b, int64_t e) {
    const shift_job *j = ctx;
    const sf_rope_table *t = j->t;
    const int c = t->head_dim / 2;
    const int64_t a = j->delta < 0 ? -j->delta : j->delta;
    const double sgn = j->delta < 0 ? -1.0 : 1.0; /* the conjugate rotates back */
    for (int64_t tok = b; tok < e; tok++) {
        const float *in = j->src + tok * j->lds;
        float *out = j->dst + tok * j->ldd;
        for (int h = 0; h < j->heads; h++)
            for (int jj = 0; jj < c; jj++) {
                const float *z = in + (int64_t)h * t->head_dim + 2 * jj;
                float *o = out + (int64_t)h * t->head_dim + 2 * jj;
                if (jj >= t->n_t) {
                    o[0] = z[0], o[1] = z[1];
                    continue;
                }
                const double *cs = t->cs + ((size_t)a * c + jj) * 2;
                const double re = z[0], im = z[1], cr = cs[0], si = sgn * cs[1];
                o[0] = (float)(re * cr - im * si);
                o[1] = (float)(re * si + im * cr);
            }
    }
}

void sf_rope_time_shift_cpu(const sf_rope_table *t, const float *src, int64_t lds, float *dst, int64_t ldd,
                            int64_t n_tok, int heads, int64_t delta, int nthreads) {
    shift_job j = {t, src, dst, lds, ldd, delta, heads};
    sf_parallel_for(n_tok, nthreads, 256, shift_range, &j);
}
