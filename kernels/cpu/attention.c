/* attention.c — exact f32 softmax attention with an optional logits tap (see attention.h).
 * Mirrors wan/modules/attention.py (its float32 path). Tested by tests/unit/test_kernels.c
 * (vs a double-precision softmax, tapped vs untapped, 1 vs N threads, ragged tile edges) and
 * benchmarked by tests/bench/bench_kernels.c.
 *
 * Two passes per (head, tile of QT queries), everything for the tile in a QT × Lk scratch:
 *  1. logits S = (Q·Kᵀ)·scale, register-tiled 3 queries × 4 keys; each logit is one dot product
 *     over d in 8 interleaved lanes (lane sums combined pairwise, then the d%8 tail), times scale;
 *  2. per query row: max, p = expf(s - max), sum in double, p *= 1/sum (P overwrites S, or goes
 *     to the scratch when S is the caller's logits tap);
 *  3. O = P·V, register-tiled 6 queries × 16 channels over blocks of KB keys; each output element
 *     accumulates p·v in key order from 0 (partial sums parked in an f32 tile between key blocks,
 *     which does not change them).
 * Every value is computed by the same operations whatever the tile shape that holds it, so the
 * result does not depend on the thread count, the tile edges or the logits tap. The kernels are
 * plain GCC vector code (no FMA contraction: the Makefile passes -ffp-contract=off) in
 * attention_tile.inc, compiled twice: for the baseline ISA and under target("avx2") (8-lane ymm),
 * chosen at run time — both give the same bits, only speed differs. */
#include "attention.h"
#include "dnnl_ops.h"
#include "tensor.h"
#include "parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wpsabi" /* static always-inline vector helpers: no ABI */

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
/* Constant lane shuffles of v8: GCC spells them __builtin_shuffle(a, b, mask), clang
 * __builtin_shufflevector(a, b, i...) (the fuzz and sanitizer builds use clang). */
#if defined(__clang__)
#define SHUF2(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#define SHUF1(a, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shufflevector(a, a, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define SHUF2(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shuffle(a, b, (v8i){i0, i1, i2, i3, i4, i5, i6, i7})
#define SHUF1(a, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shuffle(a, (v8i){i0, i1, i2, i3, i4, i5, i6, i7})
#endif
typedef double v4d __attribute__((vector_size(32)));

#define QT 48 /* queries per work item (a multiple of 6) */
#define KB 64 /* keys per P·V block */

#define AI static inline __attribute__((always_inline))

typedef struct attn_job {
    int64_t Lq, Lk, ldq, ldkv, ldo, ntiles;
    int heads, d;
    const float *q, *k, *v;
    float *out, *logits, scale;
    int failed, avx2;
    const sf_scratch *ws; /* the caller's scratch (NULL: allocate per call) */
} attn_job;

#define SF_VARIANT_FILE "attention_tile.inc"
#define SF_VARIANT_ISA sf_attention_cpu_isa
#include "simd_variants.h"

size_t sf_attention_cpu_scratch(int64_t Lk, int d) {
    size_t lk = (size_t)(Lk > 0 ? Lk : 1), dd = (size_t)(d > 0 ? d : 1);
    return QT * lk + QT * dd + 2 * lk * dd;
}

static void attn_range(void *ctx, int64_t b, int64_t e, int part) {
    attn_job *j = ctx;
    size_t lk = (size_t)(j->Lk > 0 ? j->Lk : 1), dd = (size_t)(j->d > 0 ? j->d : 1);
    /* the part's slot of the caller's scratch (sized at its init), else memory of this call */
    float *sc = sf_scratch_part(j->ws, part, sf_attention_cpu_scratch(j->Lk, j->d)), *own = NULL;
    if (!sc) {
        sf_scratch_count_miss();
        if (!(sc = own = malloc(sizeof(float) * sf_attention_cpu_scratch(j->Lk, j->d)))) {
            j->failed = 1; /* benign race: every writer stores 1 */
            return;
        }
    }
    float *acc = sc + QT * lk, *kv = acc + QT * dd;
#ifdef SF_HAVE_AVX2_PATH
    if (j->avx2) attn_items_avx2(j, b, e, sc, acc, kv, kv + lk * dd);
    else attn_items_base(j, b, e, sc, acc, kv, kv + lk * dd);
#else
    attn_items_base(j, b, e, sc, acc, kv, kv + lk * dd);
#endif
    free(own);
}

/* ---- fast and bf16 modes (parallel.h sf_cpu_mode): per (head, block of qb queries), one thread each,
 * S = (Q·Kᵀ)·scale, the row softmax and O = P·V by oneDNN (f32 in both modes: the bf16 mode keeps
 * attention in f32, tighter than the GPU's bf16 flash attention). The logits tap runs the exact path. */
#define FAST_QB 256 /* queries per item at most */

typedef struct attn_fast_job {
    int64_t Lq, Lk, ldq, ldkv, ldo, qb, nblk;
    int heads, d;
    const float *q, *k, *v;
    float *out, scale;
    const sf_scratch *ws;
    int failed;
} attn_fast_job;

static void attn_fast_range(void *ctx, int64_t b, int64_t e, int part) {
    attn_fast_job *j = ctx;
    const size_t need = (size_t)j->qb * (size_t)j->Lk;
    float *s = sf_scratch_part(j->ws, part, need), *own = NULL;
    if (!s) {
        sf_scratch_count_miss();
        if (!(s = own = malloc(sizeof(float) * need))) {
            j->failed = 1; /* benign race: every writer stores 1 */
            return;
        }
    }
    for (int64_t it = b; it < e && !j->failed; it++) {
        const int64_t h = it / j->nblk, q0 = (it % j->nblk) * j->qb;
        const int64_t n = j->Lq - q0 < j->qb ? j->Lq - q0 : j->qb;
        if (sf_dnnl_matmul(n, j->Lk, j->d, j->q + q0 * j->ldq + h * j->d, j->ldq, j->k + h * j->d, j->ldkv, 0, SF_F32,
                           NULL, j->scale, s, j->Lk, 1) ||
            sf_dnnl_softmax_rows(n, j->Lk, s, j->Lk, 1) ||
            sf_dnnl_matmul(n, j->d, j->Lk, s, j->Lk, j->v + h * j->d, j->ldkv, 1, SF_F32, NULL, 1.0f,
                           j->out + q0 * j->ldo + h * j->d, j->ldo, 1))
            j->failed = 1;
    }
    free(own);
}

static int attention_fast(int64_t Lq, int64_t Lk, int heads, int d, const float *q, int64_t ldq, const float *k,
                          const float *v, int64_t ldkv, float *out, int64_t ldo, float scale, int nthreads,
                          const sf_scratch *ws) {
    int64_t qb = ws && ws->buf ? (int64_t)(ws->per_part / (size_t)Lk) : 64;
    if (qb > FAST_QB) qb = FAST_QB;
    if (qb < 1) qb = 1;
    attn_fast_job j = {Lq, Lk, ldq, ldkv, ldo, qb, (Lq + qb - 1) / qb, heads, d, q, k, v, out, scale, ws, 0};
    sf_parallel_for_part((int64_t)heads * j.nblk, nthreads, 1, attn_fast_range, &j);
    return j.failed ? -1 : 0;
}

int sf_attention_cpu(int64_t Lq, int64_t Lk, int heads, int d, const float *q, int64_t ldq, const float *k,
                     const float *v, int64_t ldkv, float *out, int64_t ldo, float scale, float *logits,
                     int nthreads) {
    return sf_attention_cpu_ws(Lq, Lk, heads, d, q, ldq, k, v, ldkv, out, ldo, scale, logits, nthreads, NULL);
}

int sf_attention_cpu_ws(int64_t Lq, int64_t Lk, int heads, int d, const float *q, int64_t ldq, const float *k,
                        const float *v, int64_t ldkv, float *out, int64_t ldo, float scale, float *logits,
                        int nthreads, const sf_scratch *ws) {
    if (Lq <= 0) return 0;
    if (!logits && Lk > 0 && sf_cpu_mode_now() != SF_CPU_EXACT &&
        attention_fast(Lq, Lk, heads, d, q, ldq, k, v, ldkv, out, ldo, scale, nthreads, ws) == 0)
        return 0; /* else (oneDNN refused) the exact kernels below */
    attn_job j = {Lq, Lk, ldq, ldkv, ldo, (Lq + QT - 1) / QT, heads, d, q, k, v, out, logits, scale, 0,
                  sf_cpu_use_avx2(), ws};
    sf_parallel_for_part((int64_t)heads * j.ntiles, nthreads, 1, attn_range, &j);
    return j.failed ? -1 : 0;
}

void sf_softmax_rows_cpu(int64_t rows, int64_t n, const float *s, int64_t lds, float *p, int64_t ldp) {
    for (int64_t r = 0; r < rows; r++) {
        const float *sr = s + r * lds;
        float m = -INFINITY, sum = 0.0f;
        for (int64_t i = 0; i < n; i++) m = sr[i] > m ? sr[i] : m;
        for (int64_t i = 0; i < n; i++) sum += expf(sr[i] - m);
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < n; i++) p[r * ldp + i] = sf_round_bf16(expf(sr[i] - m) * inv);
    }
}
