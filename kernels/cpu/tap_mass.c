/* tap_mass.c — CPU reference of the attention-tap probability aggregates (kernels/tap_mass.h).
 * Plain fp32 logits, double sums. Tested by tests/unit/test_tap_mass.c. */
#include "tap_mass.h"
#include "parallel.h"

#include <math.h>
#include <stdlib.h>

void sf_tap_row_mass_cpu(const float *s, int64_t Lk, int64_t G, int64_t NG, float *mass, float *lse) {
    float m = -INFINITY;
    for (int64_t j = 0; j < Lk; j++) m = s[j] > m ? s[j] : m;
    double z = 0;
    for (int64_t j = 0; j < Lk; j++) z += (double)expf(s[j] - m);
    for (int64_t g = 0; g < NG; g++) {
        double a = 0;
        for (int64_t j = g * G; j < (g + 1) * G; j++) a += (double)expf(s[j] - m);
        mass[g] = (float)(a / z);
    }
    *lse = (float)((double)m + log(z));
}

void sf_tap_token_mass_cpu(int64_t rows, int64_t NG, const float *lse, float *s) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < NG; j++) s[r * NG + j] = expf(s[r * NG + j] - lse[r]);
}

int sf_tap_mass_reduce_cpu(int H, int64_t Lq, int64_t NG, int64_t S, int renorm, const float *rowmass,
                           const float *lse, float *out, float *stats) {
    const int64_t QF = Lq / S;
    double *acc = malloc(sizeof(double) * (size_t)(NG > 0 ? NG : 1));
    if (!acc) return -1;
    for (int h = 0; h < H; h++)
        for (int64_t qf = 0; qf < QF; qf++) {
            float *o = out + ((int64_t)h * QF + qf) * NG, *st = stats + ((int64_t)h * QF + qf) * SF_TAP_NSTATS;
            double lsum = 0, lmin = INFINITY, lmax = -INFINITY, held = 0;
            for (int64_t g = 0; g < NG; g++) acc[g] = 0;
            for (int64_t r = qf * S; r < (qf + 1) * S; r++) {
                const float *rm = rowmass + ((int64_t)h * Lq + r) * NG;
                double l = lse[(int64_t)h * Lq + r], t = 0;
                for (int64_t g = 0; g < NG; g++) t += rm[g];
                double inv = !renorm ? 1.0 : t > 0 ? 1.0 / t : 0.0;
                for (int64_t g = 0; g < NG; g++) acc[g] += (double)rm[g] * inv;
                lsum += l;
                lmin = l < lmin ? l : lmin;
                lmax = l > lmax ? l : lmax;
                held += t;
            }
            for (int64_t g = 0; g < NG; g++) o[g] = (float)(acc[g] / (double)S);
            st[0] = (float)(lsum / (double)S);
            st[1] = (float)lmin;
            st[2] = (float)lmax;
            st[3] = (float)(held / (double)S);
        }
    free(acc);
    return 0;
}

typedef struct mass_job {
    int64_t Lq, Lk;
    int H, d;
    const float *q, *k;
    int64_t ldq, ldk;
    float scale;
    int64_t G, NG;
    float *rowmass, *lse, *srow; /* srow: (parts, Lk) */
} mass_job;

/* rows i = h·Lq + r of [begin, end) */
static void mass_rows(void *ctx, int64_t begin, int64_t end, int part) {
    const mass_job *j = ctx;
    float *s = j->srow + (int64_t)part * j->Lk;
    for (int64_t i = begin; i < end; i++) {
        const int64_t h = i / j->Lq, r = i % j->Lq;
        const float *qr = j->q + r * j->ldq + h * j->d;
        for (int64_t c = 0; c < j->Lk; c++) {
            const float *kc = j->k + c * j->ldk + h * j->d;
            float a = 0;
            for (int t = 0; t < j->d; t++) a += qr[t] * kc[t];
            s[c] = a * j->scale;
        }
        sf_tap_row_mass_cpu(s, j->Lk, j->G, j->NG, j->rowmass + i * j->NG, j->lse + i);
    }
}

int sf_tap_mass_cpu(int64_t Lq, int64_t Lk, int H, int d, const float *q, int64_t ldq, const float *k, int64_t ldk,
                    float scale, int64_t G, int64_t NG, int64_t S, int renorm, float *out, float *stats, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    const int64_t rows = (int64_t)H * Lq;
    mass_job j = {Lq, Lk, H, d, q, k, ldq, ldk, scale, G, NG, NULL, NULL, NULL};
    j.rowmass = malloc(sizeof(float) * (size_t)(rows * NG > 0 ? rows * NG : 1));
    j.lse = malloc(sizeof(float) * (size_t)(rows > 0 ? rows : 1));
    j.srow = malloc(sizeof(float) * (size_t)nthreads * (size_t)(Lk > 0 ? Lk : 1));
    int rc = -1;
    if (j.rowmass && j.lse && j.srow) {
        sf_parallel_for_part(rows, nthreads, 8, mass_rows, &j);
        rc = sf_tap_mass_reduce_cpu(H, Lq, NG, S, renorm, j.rowmass, j.lse, out, stats);
    }
    free(j.rowmass);
    free(j.lse);
    free(j.srow);
    return rc;
}

void sf_frame_means_cpu(int64_t nframes, int64_t S, int64_t D, const float *x, int64_t ld, double *means) {
    for (int64_t f = 0; f < nframes; f++) {
        double *m = means + f * D;
        for (int64_t c = 0; c < D; c++) m[c] = 0.0;
        for (int64_t t = 0; t < S; t++) {
            const float *row = x + (f * S + t) * ld;
            for (int64_t c = 0; c < D; c++) m[c] += row[c];
        }
        for (int64_t c = 0; c < D; c++) m[c] /= (double)S;
    }
}

void sf_frame_logit_means_cpu(int H, int64_t d, int64_t QF, int64_t KF, const double *qm, const double *km,
                              double scale, float *out) {
    const int64_t D = (int64_t)H * d;
    for (int h = 0; h < H; h++)
        for (int64_t qf = 0; qf < QF; qf++)
            for (int64_t kf = 0; kf < KF; kf++) {
                const double *a = qm + qf * D + h * d, *b = km + kf * D + h * d;
                double s = 0;
                for (int64_t i = 0; i < d; i++) s += a[i] * b[i];
                out[(h * QF + qf) * KF + kf] = (float)(s * scale);
            }
}
