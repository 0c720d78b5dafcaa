/* t5.c — umT5 encoder forward on CPU (fp32 activations, weights widened from bf16 in the GEMM).
 *
 * Mirrors wan/modules/t5.py T5Encoder / T5SelfAttention / T5Attention / T5FeedForward /
 * T5LayerNorm / T5RelativeEmbedding (SPEC.md §3): pre-norm blocks, per-block relative
 * position bias (bidirectional buckets), RMS norm without mean or bias, attention WITHOUT the
 * 1/sqrt(d) scale, key mask, gated-GELU (tanh) FFN, final norm, rows past the real length 0.
 * GEMMs use kernels/cpu/gemm.c (sf_gemm_cpu: bf16 weights widened in the inner loop, rows split
 * across threads, bit-identical for any thread count); the bias attention and the gated GELU are
 * kernels/t5_ops.h (sf_t5_attention_cpu, sf_t5_gated_gelu_cpu), the norms kernels/norm_rows.h, all
 * split by output row too. Tested by tests/unit/test_t5.c (tests/golden/expect/t5.safetensors:
 * bucket table exact, dbg.* intermediates and emb.<i> of all 28 prompts within 1e-4·max|ref|). */
#include "t5.h"
#include "stop.h"
#include "gemm.h"
#include "norm_rows.h"
#include "parallel.h"
#include "t5_ops.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 128

static const sf_tensor *need(const sf_tfile *tf, const char *name, int ndim, const int64_t *shape, int matrix,
                             sf_status *st, sf_err *err) {
    if (*st) return NULL;
    const sf_tensor *t = sf_tfile_get(tf, name);
    char b1[96];
    if (!t) {
        *st = sf_fail(err, SF_E_NOTFOUND, "umT5 weights: tensor %s missing", name);
        return NULL;
    }
    if (!sf_shape_eq(t, ndim, shape)) {
        *st = sf_fail(err, SF_E_SHAPE, "umT5 weights: %s has shape %s, expected %lld%s%lld", name,
                      sf_shape_str(t, b1, sizeof b1), (long long)shape[0], ndim > 1 ? " x " : "",
                      ndim > 1 ? (long long)shape[1] : 0LL);
        return NULL;
    }
    if (t->device >= 0) {
        *st = sf_fail(err, SF_E_UNSUPPORTED, "umT5 weights: %s is not in host memory", name);
        return NULL;
    }
    if (matrix && (!sf_tensor_is_contiguous(t) || (t->dtype != SF_BF16 && t->dtype != SF_F32 && t->dtype != SF_F16))) {
        *st = sf_fail(err, SF_E_UNSUPPORTED, "umT5 weights: %s must be a contiguous bf16/f16/f32 matrix (is %s)", name,
                      sf_dtype_name(t->dtype));
        return NULL;
    }
    if (!matrix && t->dtype != SF_BF16 && t->dtype != SF_F32 && t->dtype != SF_F16) {
        *st = sf_fail(err, SF_E_UNSUPPORTED, "umT5 weights: %s has dtype %s", name, sf_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

sf_status sf_t5_open(const char *path, int nthreads, sf_t5 **out, sf_err *err) {
    sf_status st = SF_OK;
    char nm[NAME_MAX_LEN];
    *out = NULL;
    sf_t5 *m = calloc(1, sizeof *m);
    if (!m) return sf_fail(err, SF_E_NOMEM, "out of memory (umT5)");
    m->nthreads = nthreads > 0 ? nthreads : sf_cpu_count();
    if ((st = sf_tfile_open(path, &m->tf, err))) goto fail;
    sf_t5_config *c = &m->cfg;
    const sf_tfile *tf = m->tf;
    m->emb = sf_tfile_get(tf, "token_embedding.weight");
    if (!m->emb || m->emb->ndim != 2) {
        st = sf_fail(err, SF_E_FORMAT, "%s: no token_embedding.weight [vocab, dim] (not a umT5 encoder state dict?)",
                     path);
        goto fail;
    }
    c->vocab = m->emb->shape[0], c->dim = m->emb->shape[1];
    for (c->num_layers = 0;; c->num_layers++) {
        snprintf(nm, sizeof nm, "blocks.%lld.norm1.weight", (long long)c->num_layers);
        if (!sf_tfile_get(tf, nm)) break;
    }
    if (c->num_layers == 0) { st = sf_fail(err, SF_E_FORMAT, "%s: no blocks.0.* tensors", path); goto fail; }
    const sf_tensor *q0 = sf_tfile_get(tf, "blocks.0.attn.q.weight");
    const sf_tensor *f0 = sf_tfile_get(tf, "blocks.0.ffn.fc1.weight");
    const sf_tensor *p0 = sf_tfile_get(tf, "blocks.0.pos_embedding.embedding.weight");
    const sf_tensor *ps = sf_tfile_get(tf, "pos_embedding.embedding.weight");
    c->shared_pos = p0 == NULL && ps != NULL;
    const sf_tensor *pp = c->shared_pos ? ps : p0;
    if (!q0 || q0->ndim != 2 || !f0 || f0->ndim != 2 || !pp || pp->ndim != 2) {
        st = sf_fail(err, SF_E_FORMAT, "%s: missing blocks.0.attn.q / ffn.fc1 / pos_embedding weights", path);
        goto fail;
    }
    c->dim_attn = q0->shape[0], c->dim_ffn = f0->shape[0];
    c->num_buckets = pp->shape[0], c->num_heads = pp->shape[1];
    c->max_dist = 128, c->eps = 1e-6f;
    /* the relative-position table: T5RelativeEmbedding splits its buckets in two directions and
     * each half into max_exact exact buckets plus log-spaced ones up to max_dist, so it needs an
     * even count >= 4 with max_exact = buckets/4 below max_dist (a 2- or 3-bucket table would
     * divide by zero: log(0/0) cast to an index) */
    if (c->num_buckets < 4 || c->num_buckets % 2 || c->num_buckets / 4 >= c->max_dist) {
        st = sf_fail(err, SF_E_SHAPE, "%s: relative-position table of %lld buckets; umT5 needs an even count in [4, %lld]",
                     path, (long long)c->num_buckets, (long long)(4 * c->max_dist - 2));
        goto fail;
    }
    if (c->dim < 1 || c->dim_attn < 1 || c->dim_ffn < 1 || c->num_heads < 1 || c->num_buckets < 2 ||
        c->dim_attn % c->num_heads || c->vocab < 1 || c->num_heads > INT_MAX || c->dim_attn / c->num_heads > INT_MAX) {
        st = sf_fail(err, SF_E_SHAPE, "%s: inconsistent dims (dim %lld, attn %lld, heads %lld, buckets %lld)", path,
                     (long long)c->dim, (long long)c->dim_attn, (long long)c->num_heads, (long long)c->num_buckets);
        goto fail;
    }
    c->head_dim = c->dim_attn / c->num_heads;
    const int64_t D = c->dim, A = c->dim_attn, F = c->dim_ffn, NL = c->num_layers;
    const int64_t sD[1] = {D}, sAD[2] = {A, D}, sDA[2] = {D, A}, sFD[2] = {F, D}, sDF[2] = {D, F},
                  sP[2] = {c->num_buckets, c->num_heads}, sE[2] = {c->vocab, D};
    if (!need(tf, "token_embedding.weight", 2, sE, 1, &st, err)) goto fail;
    m->layers = sf_calloc2((size_t)NL, sizeof *m->layers);
    m->norms = sf_calloc2((size_t)NL * 2, (size_t)D * sizeof(float));
    m->final_norm = sf_calloc2((size_t)D, sizeof(float));
    if (!m->layers || !m->norms || !m->final_norm) { st = sf_fail(err, SF_E_NOMEM, "out of memory (umT5)"); goto fail; }
    for (int64_t l = 0; l < NL; l++) {
        sf_t5_layer *L = &m->layers[l];
#define W(field, suffix, nd, shp, mat)                                                                             \
    snprintf(nm, sizeof nm, "blocks.%lld.%s", (long long)l, suffix);                                               \
    L->field = need(tf, nm, nd, shp, mat, &st, err);
        W(norm1, "norm1.weight", 1, sD, 0)
        W(norm2, "norm2.weight", 1, sD, 0)
        W(q, "attn.q.weight", 2, sAD, 1)
        W(k, "attn.k.weight", 2, sAD, 1)
        W(v, "attn.v.weight", 2, sAD, 1)
        W(o, "attn.o.weight", 2, sDA, 1)
        W(gate, "ffn.gate.0.weight", 2, sFD, 1)
        W(fc1, "ffn.fc1.weight", 2, sFD, 1)
        W(fc2, "ffn.fc2.weight", 2, sDF, 1)
#undef W
        const sf_tensor *pos;
        if (c->shared_pos) {
            pos = need(tf, "pos_embedding.embedding.weight", 2, sP, 0, &st, err);
        } else {
            snprintf(nm, sizeof nm, "blocks.%lld.pos_embedding.embedding.weight", (long long)l);
            pos = need(tf, nm, 2, sP, 0, &st, err);
        }
        if (st) goto fail;
        L->pos = sf_calloc2((size_t)(c->num_buckets * c->num_heads), sizeof(float));
        if (!L->pos) { st = sf_fail(err, SF_E_NOMEM, "out of memory (umT5)"); goto fail; }
        sf_tensor_to_f32(pos, L->pos);
        sf_tensor_to_f32(L->norm1, m->norms + (size_t)(2 * l) * (size_t)D);
        sf_tensor_to_f32(L->norm2, m->norms + (size_t)(2 * l + 1) * (size_t)D);
    }
    const sf_tensor *fn = need(tf, "norm.weight", 1, sD, 0, &st, err);
    if (st) goto fail;
    sf_tensor_to_f32(fn, m->final_norm);
    { /* the GEMMs' work memory for the largest K, once (the CPU kernels allocate nothing per call) */
        int64_t K = c->dim > c->dim_attn ? c->dim : c->dim_attn;
        if (c->dim_ffn > K) K = c->dim_ffn;
        if ((st = sf_scratch_init(&m->ws, m->nthreads, sf_gemm_cpu_scratch(K), err))) goto fail;
    }
    *out = m;
    return SF_OK;
fail:
    sf_t5_destroy(&m);
    return st;
}

void sf_t5_destroy(sf_t5 **mp) {
    if (!mp || !*mp) return;
    sf_t5 *m = *mp;
    if (m->layers)
        for (int64_t l = 0; l < m->cfg.num_layers; l++) free(m->layers[l].pos);
    free(m->layers);
    free(m->norms);
    free(m->final_norm);
    sf_scratch_free(&m->ws);
    sf_tfile_destroy(&m->tf);
    free(m);
    *mp = NULL;
}

int sf_t5_bucket(const sf_t5_config *c, int64_t rel) {
    int64_t nb = c->num_buckets / 2, bucket = rel > 0 ? nb : 0, a = rel < 0 ? -rel : rel;
    int64_t max_exact = nb / 2;
    if (a < max_exact) return (int)(bucket + a);
    if (c->num_buckets == 32 && c->max_dist == 128) {
        /* integer thresholds of the float32 formula (t5_manifest.json): exact-math boundaries at
         * 16, 32, 64 are where a 1-ulp log error would flip the bucket */
        static const int64_t thr[8] = {8, 12, 16, 23, 32, 46, 64, 91};
        int off = 8;
        for (int i = 1; i < 8; i++)
            if (a >= thr[i]) off = 8 + i;
        return (int)(bucket + off);
    }
    /* reference: max_exact + (log(a / max_exact) / log(max_dist / max_exact) * (nb - max_exact)).long(),
     * float32 tensor math */
    float r = logf((float)a / (float)max_exact) / (float)log((double)c->max_dist / (double)max_exact) *
              (float)(nb - max_exact);
    /* clamp in float before the conversion: a NaN or out-of-range float → integer is undefined */
    if (!(r >= 0.0f)) r = 0.0f;
    if (r > (float)nb) r = (float)nb;
    int64_t large = max_exact + (int64_t)r;
    if (large > nb - 1) large = nb - 1;
    return (int)(bucket + large);
}

static int gemm(const sf_t5 *m, int64_t M, const float *x, const sf_tensor *w, float *y) {
    /* w: (N, K) */
    return sf_gemm_cpu_ws(M, w->shape[0], w->shape[1], x, w->shape[1], w->data, w->dtype, NULL, y, w->shape[0],
                          m->nthreads, &m->ws);
}

sf_status sf_t5_encode(const sf_t5 *m, const int64_t *ids, int64_t seq_len, int64_t n_tokens, float *out,
                       const sf_t5_debug *dbg, sf_err *err) {
    const sf_t5_config *c = &m->cfg;
    const int64_t D = c->dim, A = c->dim_attn, F = c->dim_ffn, L = n_tokens;
    sf_status st = SF_OK;
    if (n_tokens < 1 || n_tokens > seq_len) return sf_fail(err, SF_E_ARG, "umT5: n_tokens %lld outside [1, %lld]",
                                                           (long long)n_tokens, (long long)seq_len);
    for (int64_t i = 0; i < L; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return sf_fail(err, SF_E_ARG, "umT5: token id %lld outside the embedding (vocab %lld)", (long long)ids[i],
                           (long long)c->vocab);
    size_t nLD, nLA, nLF;
    if (!sf_mul_ok((size_t)L, (size_t)D, &nLD) || !sf_mul_ok((size_t)L, (size_t)A, &nLA) ||
        !sf_mul_ok((size_t)L, (size_t)F, &nLF))
        return sf_fail(err, SF_E_NOMEM, "umT5: activation size overflow");
    /* one block, every part written before it is read: no zeroing, and a block glibc keeps for the next
     * prompt (its mmap threshold rises to it after the first free) instead of fresh pages per call */
    if (nLD > SIZE_MAX / 64 || nLA > SIZE_MAX / 64 || nLF > SIZE_MAX / 64) /* 9 parts of 4 bytes fit */
        return sf_fail(err, SF_E_NOMEM, "umT5: activation size overflow");
    float *x = sf_malloc64(3 * nLD + 4 * nLA + 2 * nLF, sizeof(float)), *h = NULL, *t = NULL, *q = NULL, *k = NULL, *v = NULL, *o = NULL;
    float *g = NULL, *f1 = NULL;
    if (x) h = x + nLD, t = h + nLD, q = t + nLD, k = q + nLA, v = k + nLA, o = v + nLA, g = o + nLA, f1 = g + nLF;
    int *bucket = sf_calloc2((size_t)(2 * L - 1), sizeof *bucket);
    if (!x || !bucket) {
        st = sf_fail(err, SF_E_NOMEM, "out of memory (umT5 activations for %lld tokens)", (long long)L);
        goto fail;
    }
    for (int64_t r = -(L - 1); r <= L - 1; r++) bucket[r + L - 1] = sf_t5_bucket(c, r);
    /* embedding gather (exact widening) */
    {
        sf_tensor row = *m->emb;
        row.ndim = 1;
        row.shape[0] = D;
        row.stride[0] = m->emb->stride[1];
        size_t es = sf_dtype_size(m->emb->dtype);
        for (int64_t i = 0; i < L; i++) {
            row.data = (char *)m->emb->data + (size_t)(ids[i] * m->emb->stride[0]) * es;
            sf_tensor_to_f32(&row, x + i * D);
        }
    }
    if (dbg && dbg->embed) memcpy(dbg->embed, x, nLD * 4);
    for (int64_t l = 0; l < c->num_layers; l++) {
        const sf_t5_layer *W = &m->layers[l];
        if ((st = sf_stop_check(err))) goto fail; /* a stop signal is honoured per layer */
        /* T5LayerNorm: x·rsqrt(mean(x²) + eps)·w; eps as the float the config holds */
        sf_rmsnorm_cpu(L, D, x, D, m->norms + (size_t)(2 * l) * (size_t)D, (double)c->eps, h, D, m->nthreads);
        if (l == 0 && dbg && dbg->block0_norm1) memcpy(dbg->block0_norm1, h, nLD * 4);
        if (gemm(m, L, h, W->q, q) || gemm(m, L, h, W->k, k) || gemm(m, L, h, W->v, v)) goto gemm_fail;
        /* all L keys are real (only the first n_tokens are encoded): nk_valid = L */
        if (sf_t5_attention_cpu(L, L, (int)c->num_heads, (int)c->head_dim, q, k, v, A, o, A, bucket, L - 1, W->pos,
                                m->nthreads)) {
            st = sf_fail(err, SF_E_NOMEM, "out of memory (umT5 attention)");
            goto fail;
        }
        if (gemm(m, L, o, W->o, t)) goto gemm_fail;
        if (l == 0 && dbg && dbg->block0_attn) memcpy(dbg->block0_attn, t, nLD * 4);
        for (size_t i = 0; i < nLD; i++) x[i] += t[i];
        sf_rmsnorm_cpu(L, D, x, D, m->norms + (size_t)(2 * l + 1) * (size_t)D, (double)c->eps, h, D, m->nthreads);
        if (gemm(m, L, h, W->gate, g) || gemm(m, L, h, W->fc1, f1)) goto gemm_fail;
        sf_t5_gated_gelu_cpu(L, F, g, F, f1, F, g, F, m->nthreads); /* h = fc1·gelu_tanh(gate), into g */
        if (gemm(m, L, g, W->fc2, t)) goto gemm_fail;
        for (size_t i = 0; i < nLD; i++) x[i] += t[i];
        if (l == 0 && dbg && dbg->block0_out) memcpy(dbg->block0_out, x, nLD * 4);
    }
    {
        sf_rmsnorm_cpu(L, D, x, D, m->final_norm, (double)c->eps, out, D, m->nthreads);
        memset(out + nLD, 0, (size_t)(seq_len - L) * (size_t)D * 4);
    }
    goto fail; /* common cleanup */
gemm_fail:
    st = sf_fail(err, SF_E_UNSUPPORTED, "umT5: unsupported weight dtype for the GEMM");
fail:
    free(x), free(bucket);
    return st;
}
