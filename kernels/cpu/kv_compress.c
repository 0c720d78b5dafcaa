/* kv_compress.c — CPU references of Participative Compression's ops (contract: kernels/kv_compress.h). */
#include "kv_compress.h"
#include "parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A row's log-sum-exp over Lk logits: the max, then Σ exp(s − max) in key order, fp64 (both forms below). */
static double row_lse(const float *s, int64_t Lk) {
    double m = -INFINITY, z = 0;
    for (int64_t i = 0; i < Lk; i++)
        if ((double)s[i] > m) m = s[i];
    for (int64_t i = 0; i < Lk; i++) z += exp((double)s[i] - m);
    return m + log(z);
}

void sf_key_mass_rows_cpu(int64_t rows, int64_t Lk, const float *S, int64_t lds, int64_t k0, int64_t nk, double *acc) {
    for (int64_t r = 0; r < rows; r++) {
        const float *s = S + r * lds;
        const double lse = row_lse(s, Lk);
        for (int64_t j = 0; j < nk; j++) acc[j] += exp((double)s[k0 + j] - lse);
    }
}

/* sf_key_mass_cpu in two parallel passes that make exactly sf_key_mass_rows_cpu's numbers on these rows, whatever
 * the thread count: each row's lse (rows apart; the row's logits in a buffer of the part's own), then each key's sum
 * (keys apart; its logits made again, the rows added in order). */
typedef struct km_job {
    int64_t Lq, Lk, ldq, ldk, k0, nk;
    int d;
    const float *q, *k;
    float scale;
    double *lse, *out;
    float *buf; /* (parts, Lk) */
} km_job;

static float km_logit(const km_job *j, int64_t h, int64_t r, int64_t i) {
    const float *qr = j->q + r * j->ldq + h * j->d, *ki = j->k + i * j->ldk + h * j->d;
    double dot = 0;
    for (int c = 0; c < j->d; c++) dot += (double)qr[c] * (double)ki[c];
    return (float)(dot * (double)j->scale);
}

static void km_lse(void *ctx, int64_t b, int64_t e, int part) { /* rows h·Lq + r */
    const km_job *j = ctx;
    float *row = j->buf + (size_t)part * (size_t)j->Lk;
    for (int64_t hr = b; hr < e; hr++) {
        for (int64_t i = 0; i < j->Lk; i++) row[i] = km_logit(j, hr / j->Lq, hr % j->Lq, i);
        j->lse[hr] = row_lse(row, j->Lk);
    }
}

static void km_sum(void *ctx, int64_t b, int64_t e) { /* keys h·nk + jj */
    const km_job *j = ctx;
    for (int64_t hj = b; hj < e; hj++) {
        const int64_t h = hj / j->nk, key = j->k0 + hj % j->nk;
        double a = 0;
        for (int64_t r = 0; r < j->Lq; r++) a += exp((double)km_logit(j, h, r, key) - j->lse[h * j->Lq + r]);
        j->out[hj] = a;
    }
}

sf_status sf_key_mass_cpu(int64_t Lq, int64_t Lk, int H, int d, const float *q, int64_t ldq, const float *k,
                          int64_t ldk, float scale, int64_t k0, int64_t nk, double *out, int nthreads, sf_err *err) {
    if (Lq < 0 || Lk < 1 || H < 1 || d < 1 || k0 < 0 || nk < 0 || k0 + nk > Lk || ldq < (int64_t)H * d ||
        ldk < (int64_t)H * d)
        return sf_fail(err, SF_E_ARG, "key mass: bad shape Lq=%lld Lk=%lld H=%d d=%d keys [%lld, +%lld)",
                       (long long)Lq, (long long)Lk, H, d, (long long)k0, (long long)nk);
    const int parts = nthreads < 1 ? 1 : nthreads;
    km_job j = {Lq, Lk, ldq, ldk, k0, nk, d, q, k, scale, NULL, out, NULL};
    j.lse = malloc(sizeof(double) * (size_t)(H * Lq > 0 ? H * Lq : 1));
    j.buf = malloc(sizeof(float) * (size_t)Lk * (size_t)parts);
    if (!j.lse || !j.buf) {
        free(j.lse), free(j.buf);
        return sf_fail(err, SF_E_NOMEM, "key mass: out of memory (%lld keys)", (long long)Lk);
    }
    sf_parallel_for_part((int64_t)H * Lq, parts, 1, km_lse, &j);
    sf_parallel_for((int64_t)H * nk, parts, 16, km_sum, &j);
    free(j.lse), free(j.buf);
    return SF_OK;
}

/* Order of candidates: larger score first, NaN last, ties by lower index. */
typedef struct cand {
    double s;
    int32_t j;
} cand;
static int by_score(const void *a, const void *b) {
    const cand *x = a, *y = b;
    const int xn = isnan(x->s), yn = isnan(y->s);
    if (xn != yn) return xn - yn;
    if (!xn && x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

static void swap_c(cand *c, int64_t i, int64_t j) {
    const cand t = c[i];
    c[i] = c[j], c[j] = t;
}

/* c[0..k) ← the k first of c[0..n) in by_score's order, in no particular order: a quickselect (the set is unique,
 * by_score being a total order: every index differs), O(n) where a full sort of every head's thousands of
 * candidates cost milliseconds a layer; a range that keeps partitioning badly is sorted instead. */
static void select_first(cand *c, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, budget = 64;
    while (lo < hi && k - 1 >= lo && k - 1 <= hi) {
        if (--budget < 0) { /* bad pivots again and again: finish by sorting what is left */
            qsort(c + lo, (size_t)(hi - lo + 1), sizeof(cand), by_score);
            return;
        }
        const int64_t mid = lo + (hi - lo) / 2;
        if (by_score(&c[mid], &c[lo]) < 0) swap_c(c, mid, lo);
        if (by_score(&c[hi], &c[lo]) < 0) swap_c(c, hi, lo);
        if (by_score(&c[hi], &c[mid]) < 0) swap_c(c, hi, mid);
        const cand p = c[mid];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (by_score(&c[i], &p) < 0) i++;
            while (by_score(&p, &c[j]) < 0) j--;
            if (i <= j) swap_c(c, i++, j--);
        }
        if (k - 1 <= j) hi = j; /* [lo, j] precede [i, hi] */
        else if (k - 1 >= i) lo = i;
        else return;            /* the k-th sits between them: done */
    }
}

/* idx[0..keep) ← the indices c[0..keep).j in ascending order (mark, then scan: O(n)). */
static int ascending(const cand *c, int64_t n, int64_t keep, int32_t *idx) {
    unsigned char *mark = calloc((size_t)(n > 0 ? n : 1), 1);
    if (!mark) return -1;
    for (int64_t i = 0; i < keep; i++) mark[c[i].j] = 1;
    for (int64_t j = 0, o = 0; j < n; j++)
        if (mark[j]) idx[o++] = (int32_t)j;
    free(mark);
    return 0;
}

int sf_kv_select_cpu(int H, int64_t n, const double *score, int64_t keep, int32_t *idx) {
    cand *c = malloc(sizeof(cand) * (size_t)(n > 0 ? n : 1));
    if (!c) return -1;
    for (int h = 0; h < H; h++) {
        for (int64_t j = 0; j < n; j++) c[j].s = score[(size_t)h * (size_t)n + (size_t)j], c[j].j = (int32_t)j;
        select_first(c, n, keep);
        if (ascending(c, n, keep, idx + (size_t)h * (size_t)keep)) return free(c), -1;
    }
    free(c);
    return 0;
}

void sf_kv_gather_cpu(float *x, int64_t ld, int H, int d, int64_t keep, const int32_t *idx) {
    for (int h = 0; h < H; h++)
        for (int64_t i = 0; i < keep; i++) {
            const int64_t from = idx[(size_t)h * (size_t)keep + (size_t)i];
            if (from != i) memcpy(x + i * ld + (int64_t)h * d, x + from * ld + (int64_t)h * d, sizeof(float) * (size_t)d);
        }
}

void sf_ring_put_cpu(float *ring, int64_t R, int64_t D, int64_t pos, const float *x, int64_t ldx, int64_t n) {
    for (int64_t i = 0; i < n; i++) memcpy(ring + ((pos + i) % R) * D, x + i * ldx, sizeof(float) * (size_t)D);
}

void sf_ring_sum_cpu(const float *ring, int64_t R, int64_t D, int64_t head, int64_t n, double *out) {
    for (int64_t e = 0; e < D; e++) out[e] = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *r = ring + ((head + i) % R) * D;
        for (int64_t e = 0; e < D; e++) out[e] += r[e];
    }
}

void sf_pc_scores_cpu(int64_t n, int64_t D, const float *k, int64_t ldk, const double *qsum, double scale, double *out) {
    for (int64_t j = 0; j < n; j++) {
        const float *kj = k + j * ldk;
        double a = 0;
        for (int64_t e = 0; e < D; e++) a += qsum[e] * (double)kj[e];
        out[j] = scale * a;
    }
}

int64_t sf_pc_select_cpu(int64_t n, const double *score, const int32_t *count, int max_reuse, int64_t keep,
                         int32_t *idx) {
    cand *c = malloc(sizeof(cand) * (size_t)(n > 0 ? n : 1));
    if (!c) return -1;
    int64_t na = 0, nb = n; /* the candidates that qualify first (from 0 up), the held-back ones after (from n down) */
    for (int64_t j = 0; j < n; j++) {
        const int held = count && max_reuse > 0 && count[j] >= max_reuse;
        cand *o = held ? &c[--nb] : &c[na++];
        o->s = score[j], o->j = (int32_t)j;
    }
    if (keep <= na) select_first(c, na, keep);
    else select_first(c + na, n - na, keep - na); /* every qualifying one, then the best of the others */
    const int r = ascending(c, n, keep, idx);
    free(c);
    return r ? -1 : keep > na ? keep - na : 0;
}

void sf_pc_finish_cpu(int64_t n, int64_t topc, int64_t old, int32_t *idx, int32_t *cnt, int64_t ncnt) {
    const int64_t keep = topc + old;
    for (int64_t i = 0; i < old; i++) idx[topc + i] = (int32_t)(n + i);
    for (int64_t i = 0; i < keep; i++) cnt[i] = cnt[idx[i]] + (i < topc);
    for (int64_t i = keep; i < ncnt; i++) cnt[i] = 0;
}
