/* attention.c — exact f32 softmax attention with an optional logits tap (see attention.h).
 * Queries are processed in tiles of QT per head so each key/value row is loaded once per tile.
 * Mirrors wan/modules/attention.py (its float32 path). Tested by tests/unit/test_kernels.c. */
#include "attention.h"
#include "parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));

#define QT 16

static inline v8 ld8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float dot(const float *a, const float *b, int d) {
    int d8 = d & ~7;
    v8 acc = {0};
    for (int i = 0; i < d8; i += 8) acc += ld8(a + i) * ld8(b + i);
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (int i = d8; i < d; i++) s += a[i] * b[i];
    return s;
}

typedef struct attn_job {
    int64_t Lq, Lk, ldq, ldkv, ldo, ntiles;
    int heads, d;
    const float *q, *k, *v;
    float *out, *logits, scale;
    int failed;
} attn_job;

static void attn_range(void *ctx, int64_t b, int64_t e) {
    attn_job *j = ctx;
    float *sc = j->logits ? NULL : malloc(sizeof(float) * QT * (size_t)j->Lk);
    float *acc = malloc(sizeof(float) * QT * (size_t)j->d);
    if ((!j->logits && !sc) || !acc) {
        j->failed = 1; /* benign race: every writer stores 1 */
        free(sc);
        free(acc);
        return;
    }
    int d = j->d;
    for (int64_t item = b; item < e; item++) {
        int h = (int)(item / j->ntiles);
        int64_t q0 = (item % j->ntiles) * QT, nq = j->Lq - q0 < QT ? j->Lq - q0 : QT;
        float *S[QT];
        for (int64_t i = 0; i < nq; i++)
            S[i] = j->logits ? j->logits + ((int64_t)h * j->Lq + q0 + i) * j->Lk : sc + i * j->Lk;
        /* logits */
        for (int64_t t = 0; t < j->Lk; t++) {
            const float *kr = j->k + t * j->ldkv + (int64_t)h * d;
            for (int64_t i = 0; i < nq; i++) S[i][t] = dot(j->q + (q0 + i) * j->ldq + (int64_t)h * d, kr, d) * j->scale;
        }
        /* softmax per row: p = exp(s - max) / sum */
        for (int64_t i = 0; i < nq; i++) {
            float mx = -INFINITY;
            for (int64_t t = 0; t < j->Lk; t++) mx = S[i][t] > mx ? S[i][t] : mx;
            double sum = 0;
            float *p = j->logits ? NULL : S[i];
            if (p) {
                for (int64_t t = 0; t < j->Lk; t++) {
                    p[t] = expf(S[i][t] - mx);
                    sum += p[t];
                }
                float inv = (float)(1.0 / sum);
                for (int64_t t = 0; t < j->Lk; t++) p[t] *= inv;
            }
            (void)sum;
        }
        /* when the logits are tapped they must survive: compute probabilities into sc lazily */
        memset(acc, 0, sizeof(float) * (size_t)nq * d);
        for (int64_t i = 0; i < nq; i++) {
            float *a = acc + i * d;
            if (j->logits) {
                const float *s = S[i];
                float mx = -INFINITY;
                for (int64_t t = 0; t < j->Lk; t++) mx = s[t] > mx ? s[t] : mx;
                double sum = 0;
                for (int64_t t = 0; t < j->Lk; t++) sum += expf(s[t] - mx);
                float inv = (float)(1.0 / sum);
                for (int64_t t = 0; t < j->Lk; t++) {
                    float p = expf(s[t] - mx) * inv;
                    const float *vr = j->v + t * j->ldkv + (int64_t)h * d;
                    for (int c = 0; c < d; c++) a[c] += p * vr[c];
                }
            } else {
                const float *p = S[i];
                for (int64_t t = 0; t < j->Lk; t++) {
                    const float *vr = j->v + t * j->ldkv + (int64_t)h * d;
                    float pt = p[t];
                    for (int c = 0; c < d; c++) a[c] += pt * vr[c];
                }
            }
            memcpy(j->out + (q0 + i) * j->ldo + (int64_t)h * d, a, sizeof(float) * (size_t)d);
        }
    }
    free(sc);
    free(acc);
}

int sf_attention_cpu(int64_t Lq, int64_t Lk, int heads, int d, const float *q, int64_t ldq, const float *k,
                     const float *v, int64_t ldkv, float *out, int64_t ldo, float scale, float *logits,
                     int nthreads) {
    if (Lq <= 0) return 0;
    attn_job j = {Lq, Lk, ldq, ldkv, ldo, (Lq + QT - 1) / QT, heads, d, q, k, v, out, logits, scale, 0};
    sf_parallel_for((int64_t)heads * j.ntiles, nthreads, 1, attn_range, &j);
    return j.failed ? -1 : 0;
}
