/* t5_ops.c — the umT5 encoder's bias attention and gated GELU on CPU, plain fp32 (see t5_ops.h).
 * Mirrors wan/modules/t5.py T5Attention / T5FeedForward in the golden's float32 numerics (the
 * softmax sum in double, the GELU in double and rounded once). Moved out of stages/encode/t5.c
 * with the arithmetic unchanged (the golden encoder output is the same bits). Tested by
 * tests/unit/test_t5_ops.c, tests/unit/test_t5.c and, as the GPU kernels' reference,
 * tests/unit/test_t5_glue.c. */
#include "t5_ops.h"
#include "act.h"
#include "dnnl_ops.h"
#include "parallel.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* One softmax row in place: s (n_valid logits of query `qi` in head h) gets the bias, then becomes
 * the probabilities. Shared by the softmax kernel and the attention so both are one arithmetic:
 * f32 bias add, f32 max, expf, double sum in key order, p = e·(float)(1/Σ). */
static void bias_softmax_row(float *s, int64_t n_valid, int64_t qi, int h, int H, const int *bucket, int64_t off,
                             const float *pos) {
    const int *bk = bucket + off - qi; /* bk[j] = bucket of rel = j − qi */
    float mx = -INFINITY;
    for (int64_t j = 0; j < n_valid; j++) {
        float d = s[j] + pos[(int64_t)bk[j] * H + h];
        s[j] = d;
        if (d > mx) mx = d;
    }
    double sum = 0;
    for (int64_t j = 0; j < n_valid; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < n_valid; j++) s[j] = s[j] * inv;
}

/* ---------------------------------------------------------------- bias softmax */

typedef struct softmax_ctx {
    const float *S;
    float *P;
    const int *bucket;
    const float *pos;
    int64_t rows, q0, Lk, nk, lds, ldp, off;
    int H;
} softmax_ctx;

/* One row b = h·rows + i per index. */
static void softmax_rows(void *vc, int64_t b, int64_t e) {
    const softmax_ctx *c = vc;
    for (int64_t r = b; r < e; r++) {
        const int h = (int)(r / c->rows);
        const int64_t i = r - (int64_t)h * c->rows;
        const float *s = c->S + r * c->lds;
        float *p = c->P + r * c->ldp;
        if (p != s)
            for (int64_t j = 0; j < c->nk; j++) p[j] = s[j];
        bias_softmax_row(p, c->nk, c->q0 + i, h, c->H, c->bucket, c->off, c->pos);
        for (int64_t j = c->nk; j < c->Lk; j++) p[j] = 0.0f;
    }
}

void sf_t5_bias_softmax_cpu(int H, int64_t rows, int64_t q0, int64_t Lk, int64_t nk_valid, const float *S,
                            int64_t lds, const int *bucket, int64_t off, const float *pos, float *P, int64_t ldp,
                            int nthreads) {
    if (H < 1 || rows < 1) return;
    softmax_ctx c = {S, P, bucket, pos, rows, q0, Lk, nk_valid, lds, ldp, off, H};
    sf_parallel_for((int64_t)H * rows, nthreads, 16, softmax_rows, &c);
}

/* ---------------------------------------------------------------- attention */

typedef struct attn_ctx {
    const float *q, *k, *v; /* (L, H·d), stride ld */
    float *o;               /* (L, H·d), stride ldo */
    const float *pos;       /* (num_buckets, H) */
    const int *bucket;      /* bucket of rel = j − i at rel + off */
    int64_t L, nk, ld, ldo, off;
    int H, d;
    atomic_int nomem;       /* set when a part cannot allocate its scratch row */
} attn_ctx;

/* One (query row, head) pair per index idx = i·H + h: it owns o[i, h·d .. h·d + d). Scratch: one
 * row of nk floats per part. */
static void attn_rows(void *vc, int64_t b, int64_t e) {
    attn_ctx *c = vc;
    float *s = malloc((size_t)c->nk * sizeof *s);
    if (!s) {
        atomic_store(&c->nomem, 1);
        return;
    }
    for (int64_t idx = b; idx < e; idx++) {
        const int64_t i = idx / c->H;
        const int h = (int)(idx % c->H);
        const float *qi = c->q + i * c->ld + (int64_t)h * c->d;
        for (int64_t j = 0; j < c->nk; j++) { /* masked keys: no logit at all */
            const float *kj = c->k + j * c->ld + (int64_t)h * c->d;
            float dot = 0;
            for (int t = 0; t < c->d; t++) dot += qi[t] * kj[t];
            s[j] = dot; /* no 1/sqrt(d) scale in T5 */
        }
        bias_softmax_row(s, c->nk, i, h, c->H, c->bucket, c->off, c->pos);
        float *oi = c->o + i * c->ldo + (int64_t)h * c->d;
        for (int t = 0; t < c->d; t++) oi[t] = 0;
        for (int64_t j = 0; j < c->nk; j++) {
            const float p = s[j];
            const float *vj = c->v + j * c->ld + (int64_t)h * c->d;
            for (int t = 0; t < c->d; t++) oi[t] += p * vj[t];
        }
    }
    free(s);
}

/* Fast and bf16 modes (parallel.h sf_cpu_mode): for a group of heads at a time, S = Q·Kᵀ and O = P·V as
 * two batched oneDNN products (f32; the heads addressed by strides in place), around the same bias
 * softmax row as the exact path. A group's logits stay under T5_SCORES floats (16 MiB). */
#define T5_SCORES ((int64_t)1 << 22)

typedef struct fast_softmax_ctx {
    float *S;
    const attn_ctx *c;
    int h0;
} fast_softmax_ctx;

/* The position bias added to rows [b, e) of the group's logits (oneDNN's softmax follows, over all rows
 * at once: 0.65 -> ~0.15 ms for 64 heads × 64 × 64 against the scalar bias_softmax_row). */
static void fast_bias_rows(void *vc, int64_t b, int64_t e) {
    const fast_softmax_ctx *f = vc;
    const attn_ctx *c = f->c;
    for (int64_t r = b; r < e; r++) {
        const int h = f->h0 + (int)(r / c->L);
        const int *bk = c->bucket + c->off - r % c->L; /* bk[j] = bucket of rel = j − qi */
        float *sr = f->S + r * c->nk;
        for (int64_t j = 0; j < c->nk; j++) sr[j] += c->pos[(int64_t)bk[j] * c->H + h];
    }
}

/* 0, -1 out of memory, -2 oneDNN refused (then the exact path). */
static int attn_fast(attn_ctx *c, int nthreads) {
    int64_t hg = T5_SCORES / (c->L * c->nk);
    if (hg < 1) hg = 1;
    if (hg > c->H) hg = c->H;
    float *S = malloc(sizeof(float) * (size_t)(hg * c->L * c->nk));
    if (!S) return -1;
    int rc = 0;
    for (int h0 = 0; h0 < c->H && !rc; h0 += (int)hg) {
        const int64_t n = c->H - h0 < hg ? c->H - h0 : hg, hd = (int64_t)h0 * c->d;
        const int64_t sq[3] = {c->d, c->ld, 1}, skt[3] = {c->d, 1, c->ld}, ss[3] = {c->L * c->nk, c->nk, 1};
        const int64_t sv[3] = {c->d, c->ld, 1}, so[3] = {c->d, c->ldo, 1};
        fast_softmax_ctx f = {S, c, h0};
        if (sf_dnnl_matmul_batch(n, c->L, c->nk, c->d, c->q + hd, sq, c->k + hd, skt, S, ss, nthreads)) rc = -2;
        if (!rc) { /* the bias, then oneDNN's vectorised softmax (refused: the exact path for everything) */
            sf_parallel_for(n * c->L, nthreads, 16, fast_bias_rows, &f);
            if (sf_dnnl_softmax_rows(n * c->L, c->nk, S, c->nk, nthreads)) rc = -2;
        }
        if (!rc && sf_dnnl_matmul_batch(n, c->L, c->d, c->nk, S, ss, c->v + hd, sv, c->o + hd, so, nthreads)) rc = -2;
    }
    free(S);
    return rc;
}

int sf_t5_attention_cpu(int64_t L, int64_t nk_valid, int H, int d, const float *q, const float *k, const float *v,
                        int64_t ld, float *o, int64_t ldo, const int *bucket, int64_t off, const float *pos,
                        int nthreads) {
    if (L < 1 || H < 1 || d < 1) return 0;
    if (sf_cpu_mode_now() != SF_CPU_EXACT) {
        attn_ctx f = {q, k, v, o, pos, bucket, L, nk_valid, ld, ldo, off, H, d, 0};
        int rc = nk_valid > 0 ? attn_fast(&f, nthreads) : -2;
        if (rc == -1) return -1;
        if (rc == 0) return 0; /* -2: oneDNN refused, the exact path below */
    }
    attn_ctx c = {q, k, v, o, pos, bucket, L, nk_valid, ld, ldo, off, H, d, 0};
    sf_parallel_for(L * H, nthreads, 16, attn_rows, &c);
    return atomic_load(&c.nomem) ? -1 : 0;
}

/* ---------------------------------------------------------------- gated GELU */

typedef struct gelu_ctx {
    const float *gate, *fc1;
    float *h;
    int64_t F, ldgate, ldf, ldh;
} gelu_ctx;

static void gelu_rows(void *vc, int64_t b, int64_t e) {
    const gelu_ctx *c = vc;
    for (int64_t i = b; i < e; i++) {
        const float *g = c->gate + i * c->ldgate, *f = c->fc1 + i * c->ldf;
        float *h = c->h + i * c->ldh;
        for (int64_t j = 0; j < c->F; j++) h[j] = (float)((double)f[j] * sf_gelu_tanh(g[j]));
    }
}

static void gate_mul_rows(void *vc, int64_t b, int64_t e) {
    const gelu_ctx *c = vc;
    for (int64_t i = b; i < e; i++) {
        const float *f = c->fc1 + i * c->ldf;
        float *h = c->h + i * c->ldh;
        for (int64_t j = 0; j < c->F; j++) h[j] = f[j] * h[j];
    }
}

void sf_t5_gated_gelu_cpu(int64_t M, int64_t F, const float *gate, int64_t ldgate, const float *fc1, int64_t ldf,
                          float *h, int64_t ldh, int nthreads) {
    if (M < 1 || F < 1) return;
    gelu_ctx c = {gate, fc1, h, F, ldgate, ldf, ldh};
    /* fast / bf16: oneDNN's vectorised GELU-tanh (f32) on the gate in h, then h·fc1 */
    if (sf_cpu_mode_now() != SF_CPU_EXACT && ldh == F && (h != gate || ldgate == F)) {
        if (h != gate)
            for (int64_t i = 0; i < M; i++) memmove(h + i * F, gate + i * ldgate, sizeof(float) * (size_t)F);
        if (sf_dnnl_gelu_tanh(h, M * F, nthreads) == 0) {
            sf_parallel_for(M, nthreads, 8, gate_mul_rows, &c);
            return;
        }
        c.gate = h, c.ldgate = F; /* refused: the exact GELU on the gate now in h */
    }
    sf_parallel_for(M, nthreads, 8, gelu_rows, &c);
}
