/* t5_cuda.c — the umT5 encoder forward on CUDA (see t5_cuda.h for the design). Plain C over the
 * kernels' C API (kernels/cuda_ops.h for the GEMMs and memory, kernels/t5_cuda.h for the encoder's
 * own kernels): the same steps as sf_t5_encode in t5.c, modelled on stages/denoise/dit_cuda.c.
 * Mirrors wan/modules/t5.py T5Encoder. Tested by tests/unit/test_t5_cuda.c (test_t5_cuda on a GPU,
 * test_t5_emu on the emulated kernels). */
#define _POSIX_C_SOURCE 200809L
#include "stages/encode/t5_cuda.h"
#include "stop.h"
#include "cuda_ops.h"
#include "gpu_host.h"
#include "kernels/t5_cuda.h" /* the kernels (this folder has its own t5_cuda.h) */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint16_t bf16;

typedef struct glayer {
    bf16 *qkv;      /* (3A, D): [Wq; Wk; Wv] */
    bf16 *o;        /* (D, A) */
    bf16 *gf;       /* (2F, D): [W_gate; W_fc1] */
    bf16 *fc2;      /* (D, F) */
    float *n1, *n2; /* (D) */
    float *pos;     /* (num_buckets, H) */
} glayer;

enum { P_LINEAR, P_ATTN, P_GLUE, P_IO, P_N };
static const char *const P_NAME[P_N] = {"linear (cuBLASLt)", "attention (QK, bias softmax, PV)",
                                        "embedding + residual/RMS norms + gated GELU", "copies"};

struct sf_t5_gpu {
    sf_cuda_ctx cx;
    sf_t5_config cfg;
    int ordinal;
    /* streaming (sf_t5_cuda_new_streaming): one layer's matrices on the device at a time, uploaded
     * from the borrowed host encoder before the layer runs; the prompt's embedding rows gathered on
     * the host. NULL: resident. */
    const sf_t5 *host;
    uint16_t *stage;   /* pinned staging (streaming only), STAGE_N bf16 */
    void *wmat;        /* every bf16 matrix */
    float *wvec;       /* every f32 vector */
    size_t mat_bytes, vec_bytes, state_bytes;
    bf16 *emb;         /* (vocab, D); streaming: the state's (max_len, D) rows of this prompt */
    float *final_norm; /* (D) */
    glayer *L;
    /* state, one allocation sized for max_len tokens */
    void *arena;
    int64_t max_len;
    int64_t s_elems;   /* S holds s_elems floats (P as many bf16): H·chunk·Lp for max_len */
    int64_t *ids;      /* (max_len) */
    int *bucket;       /* (2·max_len − 1): bucket of rel = key − query at rel + max_len − 1 */
    float *x, *t;      /* (L, D) f32: residual stream, sub-block output */
    bf16 *hn;          /* (L, D): normed GEMM input */
    bf16 *qkv, *ao;    /* (L, 3A), (L, A) */
    float *gf;         /* (L, 2F): [gate | fc1] */
    bf16 *hf;          /* (L, F) */
    float *S;          /* (H, chunk, Lp) logits, Lp = L rounded up to 8 (kernels/t5_cuda.h) */
    bf16 *P;           /* (H, chunk, Lp) probabilities */
    /* SF_CUDA_PROFILE=1 */
    sf_gpu_prof prof;
};

/* ---------------------------------------------------------------- profile */

static void prof(sf_t5_gpu *g, int cat) { sf_gpu_prof_mark(&g->prof, &g->cx, cat); }
static sf_status prof_collect(sf_t5_gpu *g, sf_err *err) { return sf_gpu_prof_collect(&g->prof, err); }

int sf_t5_cuda_profile(const sf_t5_gpu *g, char *buf, size_t n) {
    return g ? sf_gpu_prof_format(&g->prof, "prompts", 2, buf, n) : 0;
}

void sf_t5_cuda_profile_reset(sf_t5_gpu *g) {
    if (!g) return;
    sf_gpu_prof_reset(&g->prof);
}

/* ---------------------------------------------------------------- sizes and layout */



#define STAGE_N ((size_t)16 << 20) /* bf16 values per staging buffer (32 MiB) */

/* Resident: the embedding and every layer's matrices. Streaming: one slot of matrices that every
 * layer's pointers share (the vectors stay per layer: a few KiB each). */
static size_t layout_weights(sf_t5_gpu *g, char *mb, float *vb, size_t *vec_floats) {
    const sf_t5_config *c = &g->cfg;
    const size_t D = (size_t)c->dim, A = (size_t)c->dim_attn, F = (size_t)c->dim_ffn;
    const size_t NB = (size_t)c->num_buckets, H = (size_t)c->num_heads;
    size_t off = 0, voff = 0;
#define VEC(n) (vb ? vb + voff : NULL), voff += ((size_t)(n) + 63) & ~(size_t)63
    if (!g->host) g->emb = sf_gpu_carve(mb, &off, (size_t)c->vocab * D * 2);
    g->final_norm = VEC(D);
    for (int64_t l = 0; l < c->num_layers; l++) {
        glayer *L = &g->L[l];
        if (g->host && l > 0) {
            L->qkv = g->L[0].qkv, L->o = g->L[0].o, L->gf = g->L[0].gf, L->fc2 = g->L[0].fc2;
        } else {
            L->qkv = sf_gpu_carve(mb, &off, 3 * A * D * 2);
            L->o = sf_gpu_carve(mb, &off, D * A * 2);
            L->gf = sf_gpu_carve(mb, &off, 2 * F * D * 2);
            L->fc2 = sf_gpu_carve(mb, &off, D * F * 2);
        }
        L->n1 = VEC(D);
        L->n2 = VEC(D);
        L->pos = VEC(NB * H);
    }
#undef VEC
    *vec_floats = voff;
    return off;
}

static int64_t round8(int64_t n) { return (n + 7) / 8 * 8; }

/* The attention's query chunk for L tokens: logits of at most 2^28 floats (1 GiB). */
static int64_t chunk_for(int64_t heads, int64_t L) {
    int64_t c = ((int64_t)1 << 28) / (heads * round8(L));
    if (c < 1) c = 1;
    return c < L ? c : L;
}

static size_t layout_state(sf_t5_gpu *g, int64_t max_len, char *base) {
    const sf_t5_config *c = &g->cfg;
    const size_t L = (size_t)max_len, D = (size_t)c->dim, A = (size_t)c->dim_attn, F = (size_t)c->dim_ffn;
    const size_t H = (size_t)c->num_heads, ch = (size_t)chunk_for(c->num_heads, max_len);
    size_t off = 0;
    g->ids = sf_gpu_carve(base, &off, L * 8);
    if (g->host) g->emb = sf_gpu_carve(base, &off, L * D * 2); /* streaming: this prompt's embedding rows */
    g->bucket = sf_gpu_carve(base, &off, (2 * L - 1) * sizeof(int));
    g->x = sf_gpu_carve(base, &off, L * D * 4);
    g->t = sf_gpu_carve(base, &off, L * D * 4);
    g->hn = sf_gpu_carve(base, &off, L * D * 2);
    g->qkv = sf_gpu_carve(base, &off, L * 3 * A * 2);
    g->ao = sf_gpu_carve(base, &off, L * A * 2);
    g->gf = sf_gpu_carve(base, &off, L * 2 * F * 4);
    g->hf = sf_gpu_carve(base, &off, L * F * 2);
    const size_t se = H * ch * (size_t)round8(max_len);
    g->S = sf_gpu_carve(base, &off, se * 4);
    g->P = sf_gpu_carve(base, &off, se * 2);
    if (base) g->s_elems = (int64_t)se;
    return off;
}

size_t sf_t5_cuda_bytes(const sf_t5_gpu *g) { return g ? g->mat_bytes + g->vec_bytes + g->state_bytes : 0; }
size_t sf_t5_cuda_weight_bytes(const sf_t5_gpu *g) { return g ? g->mat_bytes + g->vec_bytes : 0; }

void sf_t5_cuda_destroy(sf_t5_gpu **gp) {
    if (!gp || !*gp) return;
    sf_t5_gpu *g = *gp;
    sf_gpu_prof_free(&g->prof);
    sf_cuda_host_free(g->stage);
    sf_cuda_free(g->arena);
    sf_cuda_free(g->wmat);
    sf_cuda_free(g->wvec);
    sf_cuda_ctx_free(&g->cx);
    free(g->L);
    free(g);
    *gp = NULL;
}

/* (Re)allocate the activations for max_len tokens and upload the bucket table. A size that does not
 * fit the free memory is refused before the current state is touched; any later failure leaves no
 * state (max_len 0: the next prompt allocates again). */
static sf_status alloc_state(sf_t5_gpu *g, int64_t max_len, sf_err *err) {
    sf_status s;
    sf_t5_gpu sizing = *g; /* the counting pass sets the pointers to NULL: not on the live state */
    const size_t need = layout_state(&sizing, max_len, NULL);
    size_t fr = 0, tot = 0;
    if (sf_cuda_mem_info(&fr, &tot, err) == SF_OK && need + ((size_t)256 << 20) > fr + g->state_bytes)
        return sf_fail(err, SF_E_NOMEM,
                       "cuda:%d: the umT5 activations for %lld tokens need %.2f GiB, %.2f GiB are free: use shorter "
                       "prompts (--text-len) or --device cpu",
                       g->ordinal, (long long)max_len, need / 1073741824.0, (fr + g->state_bytes) / 1073741824.0);
    sf_cuda_free(g->arena);
    g->arena = NULL;
    g->state_bytes = 0;
    g->max_len = 0;
    int *b = malloc(sizeof(int) * (size_t)(2 * max_len - 1));
    if (!b) return sf_fail(err, SF_E_NOMEM, "out of memory");
    if (!(s = sf_cuda_malloc(&g->arena, need, err))) {
        layout_state(g, max_len, g->arena);
        for (int64_t r = -(max_len - 1); r <= max_len - 1; r++) b[r + max_len - 1] = sf_t5_bucket(&g->cfg, r);
        s = sf_cuda_copy_h2d(&g->cx, g->bucket, b, sizeof(int) * (size_t)(2 * max_len - 1), err);
    }
    free(b);
    if (s) {
        sf_cuda_free(g->arena);
        g->arena = NULL;
        return s;
    }
    g->state_bytes = need;
    g->max_len = max_len;
    return SF_OK;
}

/* ---------------------------------------------------------------- weights */

typedef struct up {
    sf_t5_gpu *g;
    uint16_t *stage; /* pinned, stage_n bf16 (or stage_n / 2 floats) */
    size_t stage_n;
    sf_err *err;
} up;

/* A whole tensor (bf16 / f16 / f32 in the file, contiguous: t5.c's loader checked it) as bf16 at dst. */
static sf_status up_mat(up *u, const sf_tensor *t, bf16 *dst) {
    return sf_gpu_upload_bf16(&u->g->cx, dst, t->data, t->dtype, (size_t)sf_tensor_numel(t), u->stage, u->stage_n, u->err);
}

/* n f32 host values (t5.c already widened them) to dst; n ≤ stage_n / 2. */
static sf_status up_vec(up *u, const float *v, int64_t n, float *dst) {
    for (int64_t off = 0; off < n; off += (int64_t)(u->stage_n / 2)) {
        int64_t c = n - off < (int64_t)(u->stage_n / 2) ? n - off : (int64_t)(u->stage_n / 2);
        memcpy(u->stage, v + off, (size_t)c * 4);
        sf_status s = sf_cuda_copy_h2d(&u->g->cx, dst + off, u->stage, (size_t)c * 4, u->err);
        if (s) return s;
    }
    return SF_OK;
}

/* Layer l's matrices into its slot (resident: its own; streaming: the shared one). */
static sf_status up_layer(up *u, const sf_t5 *m, int64_t l) {
    const sf_t5_config *c = &u->g->cfg;
    const size_t D = (size_t)c->dim, A = (size_t)c->dim_attn, F = (size_t)c->dim_ffn;
    const sf_t5_layer *h = &m->layers[l];
    glayer *L = &u->g->L[l];
    sf_status s;
    if ((s = up_mat(u, h->q, L->qkv)) || (s = up_mat(u, h->k, L->qkv + A * D)) || (s = up_mat(u, h->v, L->qkv + 2 * A * D)) ||
        (s = up_mat(u, h->o, L->o)) || (s = up_mat(u, h->gate, L->gf)) || (s = up_mat(u, h->fc1, L->gf + F * D)) ||
        (s = up_mat(u, h->fc2, L->fc2)))
        return s;
    return SF_OK;
}

/* Streaming: the embedding rows of ids[0..n) gathered on the host (as bf16, through the stage) into
 * g->emb rows 0..n−1, and the row indices 0..n−1 as the ids the embedding kernel gathers by. */
static sf_status up_rows(sf_t5_gpu *g, const int64_t *ids, int64_t n, sf_err *err) {
    const sf_tensor *e = g->host->emb;
    const int64_t D = g->cfg.dim, per = (int64_t)(STAGE_N / (size_t)D);
    const size_t es = sf_dtype_size(e->dtype);
    sf_status s = SF_OK;
    for (int64_t r0 = 0; r0 < n && !s; r0 += per) {
        const int64_t nr = n - r0 < per ? n - r0 : per;
        for (int64_t i = 0; i < nr; i++)
            sf_gpu_to_bf16((const char *)e->data + (size_t)(ids[r0 + i] * e->stride[0]) * es, e->dtype, (size_t)D,
                           g->stage + (size_t)(i * D));
        s = sf_cuda_copy_h2d(&g->cx, g->emb + (size_t)(r0 * D), g->stage, (size_t)(nr * D) * 2, err);
    }
    int64_t *iota = s ? NULL : malloc(sizeof(int64_t) * (size_t)n);
    if (!s && !iota) s = sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int64_t i = 0; !s && i < n; i++) iota[i] = i;
    if (!s) s = sf_cuda_copy_h2d(&g->cx, g->ids, iota, (size_t)n * 8, err);
    free(iota);
    return s;
}

static sf_status upload(sf_t5_gpu *g, const sf_t5 *m, sf_err *err) {
    const sf_t5_config *c = &g->cfg;
    const size_t D = (size_t)c->dim;
    up u = {g, g->stage, STAGE_N, err};
    sf_status s = g->stage ? SF_OK : sf_cuda_host_alloc((void **)&u.stage, u.stage_n * 2, err);
    if (s) return s;
    if (!g->host && (s = up_mat(&u, m->emb, g->emb))) goto done;
    if ((s = up_vec(&u, m->final_norm, c->dim, g->final_norm))) goto done;
    for (int64_t l = 0; l < c->num_layers; l++) {
        const sf_t5_layer *h = &m->layers[l];
        glayer *L = &g->L[l];
        if (!g->host && (s = up_layer(&u, m, l))) goto done;
        if ((s = up_vec(&u, m->norms + (size_t)(2 * l) * D, c->dim, L->n1)) ||
            (s = up_vec(&u, m->norms + (size_t)(2 * l + 1) * D, c->dim, L->n2)) ||
            (s = up_vec(&u, h->pos, c->num_buckets * c->num_heads, L->pos)))
            goto done;
    }
done:
    if (u.stage != g->stage) sf_cuda_host_free(u.stage);
    return s;
}

/* Random weights on the device (bench): matrices uniform with variance 1/K (outputs of unit scale),
 * the embedding in [−1, 1), norm weights 1, position tables in [−1, 1) from the host. */
static sf_status fill_random(sf_t5_gpu *g, uint64_t seed, sf_err *err) {
    const sf_t5_config *c = &g->cfg;
    const int64_t D = c->dim, A = c->dim_attn, F = c->dim_ffn, NP = c->num_buckets * c->num_heads;
    sf_status s;
    const float sD = sqrtf(3.0f / (float)D), sA = sqrtf(3.0f / (float)A), sF = sqrtf(3.0f / (float)F);
    uint64_t k = seed * 1000003u;
    float *h = malloc(sizeof(float) * (size_t)(D > NP ? D : NP));
    if (!h) return sf_fail(err, SF_E_NOMEM, "out of memory");
    if ((s = sf_t5_fill_random_cuda(&g->cx, g->emb, c->vocab * D, k++, 1.0f, err))) goto done;
    for (int64_t i = 0; i < D; i++) h[i] = 1.0f;
    if ((s = sf_cuda_copy_h2d(&g->cx, g->final_norm, h, (size_t)D * 4, err))) goto done;
    for (int64_t l = 0; l < c->num_layers; l++) {
        glayer *L = &g->L[l];
        if ((s = sf_t5_fill_random_cuda(&g->cx, L->qkv, 3 * A * D, k++, sD, err)) ||
            (s = sf_t5_fill_random_cuda(&g->cx, L->o, D * A, k++, sA, err)) ||
            (s = sf_t5_fill_random_cuda(&g->cx, L->gf, 2 * F * D, k++, sD, err)) ||
            (s = sf_t5_fill_random_cuda(&g->cx, L->fc2, D * F, k++, sF, err)))
            goto done;
        for (int64_t i = 0; i < D; i++) h[i] = 1.0f;
        if ((s = sf_cuda_copy_h2d(&g->cx, L->n1, h, (size_t)D * 4, err)) ||
            (s = sf_cuda_copy_h2d(&g->cx, L->n2, h, (size_t)D * 4, err)))
            goto done;
        for (int64_t i = 0; i < NP; i++) h[i] = sf_round_bf16((float)((i * 7919 + l * 104729) % 2001) / 1000.0f - 1.0f);
        if ((s = sf_cuda_copy_h2d(&g->cx, L->pos, h, (size_t)NP * 4, err))) goto done;
    }
    s = sf_cuda_sync(&g->cx, err);
done:
    free(h);
    return s;
}

/* ---------------------------------------------------------------- init */

static sf_status init(const sf_t5 *m, const sf_t5_config *c, int ordinal, int64_t max_len, uint64_t seed,
                      int streaming, sf_t5_gpu **out, sf_err *err) {
    sf_status s;
    *out = NULL;
    if (max_len < 1) return sf_fail(err, SF_E_ARG, "umT5 on cuda:%d: max length %lld < 1", ordinal, (long long)max_len);
    sf_t5_gpu *g = calloc(1, sizeof *g);
    if (!g) return sf_fail(err, SF_E_NOMEM, "out of memory");
    g->cfg = *c;
    g->ordinal = ordinal;
    g->host = streaming ? m : NULL;
    if ((s = sf_cuda_ctx_init(&g->cx, ordinal, err))) goto fail;
    if (streaming && (s = sf_cuda_host_alloc((void **)&g->stage, STAGE_N * 2, err))) goto fail;
    if (!(g->L = calloc((size_t)c->num_layers, sizeof *g->L))) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto fail; }
    /* memory check before any large allocation: weights + activations must fit */
    size_t vfl = 0;
    g->mat_bytes = layout_weights(g, NULL, NULL, &vfl);
    g->vec_bytes = vfl * sizeof(float);
    size_t need_state = layout_state(g, max_len, NULL), fr = 0, tot = 0;
    size_t need = g->mat_bytes + g->vec_bytes + need_state;
    if (sf_cuda_mem_info(&fr, &tot, err) == SF_OK && need + ((size_t)256 << 20) > fr) {
        s = sf_fail(err, SF_E_NOMEM,
                    "cuda:%d has %.2f GiB free, the umT5 encoder needs %.2f GiB (bf16 weights %.2f + activations "
                    "%.2f for %lld tokens): use a GPU with more memory, free it from other stages, %sor --device cpu",
                    ordinal, fr / 1073741824.0, need / 1073741824.0, (g->mat_bytes + g->vec_bytes) / 1073741824.0,
                    need_state / 1073741824.0, (long long)max_len, streaming ? "" : "--low-memory ");
        goto fail;
    }
    if ((s = sf_cuda_malloc(&g->wmat, g->mat_bytes, err))) goto fail;
    if ((s = sf_cuda_malloc((void **)&g->wvec, g->vec_bytes, err))) goto fail;
    layout_weights(g, g->wmat, g->wvec, &vfl);
    if ((s = m ? upload(g, m, err) : fill_random(g, seed, err))) goto fail;
    if ((s = alloc_state(g, max_len, err))) goto fail;
    if (getenv("SF_CUDA_PROFILE") && atoi(getenv("SF_CUDA_PROFILE")) > 0) {
        if ((s = sf_gpu_prof_init(&g->prof, 16 + 16 * (int)c->num_layers, P_N, P_NAME, err))) goto fail;
    }
    if ((s = sf_cuda_sync(&g->cx, err))) goto fail;
    *out = g;
    return SF_OK;
fail:
    sf_t5_cuda_destroy(&g);
    return s;
}

sf_status sf_t5_cuda_new(const sf_t5 *m, int ordinal, int64_t max_len, sf_t5_gpu **out, sf_err *err) {
    return init(m, &m->cfg, ordinal, max_len, 0, 0, out, err);
}

sf_status sf_t5_cuda_new_streaming(const sf_t5 *m, int ordinal, int64_t max_len, sf_t5_gpu **out, sf_err *err) {
    return init(m, &m->cfg, ordinal, max_len, 0, 1, out, err);
}

sf_status sf_t5_cuda_new_random(const sf_t5_config *c, int ordinal, int64_t max_len, uint64_t seed, sf_t5_gpu **out,
                                sf_err *err) {
    return init(NULL, c, ordinal, max_len, seed, 0, out, err);
}

/* ---------------------------------------------------------------- forward */

/* y (M, N) = x (M, K) bf16 · Wᵀ, fp32 accumulation, y of dtype ydt. */
static sf_status mm(sf_t5_gpu *g, int64_t M, int64_t N, int64_t K, const bf16 *x, const bf16 *w, void *y, sf_dtype ydt,
                    sf_err *err) {
    sf_gpu_prof_mark_flops(&g->prof, &g->cx, P_LINEAR, 2.0 * (double)M * (double)N * (double)K);
    return sf_gemm_cuda(&g->cx, M, N, K, x, K, w, NULL, y, ydt, N, err);
}

static sf_status norm(sf_t5_gpu *g, int64_t n, const float *res, const float *w, void *y, sf_dtype ydt, sf_err *err) {
    const int64_t D = g->cfg.dim;
    prof(g, P_GLUE);
    return sf_t5_res_rmsnorm_cuda(&g->cx, n, D, g->x, D, res, D, w, (double)g->cfg.eps, y, ydt, D, err);
}

static sf_status tap_f32(sf_t5_gpu *g, float *host, const float *dev, size_t n, sf_err *err) {
    if (!host) return SF_OK;
    prof(g, P_IO);
    return sf_cuda_download_f32(&g->cx, host, dev, n, err);
}

sf_status sf_t5_cuda_encode(sf_t5_gpu *g, const int64_t *ids, int64_t seq_len, int64_t n_tokens, float *out,
                            const sf_t5_debug *dbg, sf_err *err) {
    const sf_t5_config *c = &g->cfg;
    const int64_t D = c->dim, A = c->dim_attn, F = c->dim_ffn, H = c->num_heads, n = n_tokens;
    const size_t nD = (size_t)n * (size_t)D;
    sf_status s;
    if (n_tokens < 1 || n_tokens > seq_len)
        return sf_fail(err, SF_E_ARG, "umT5: n_tokens %lld outside [1, %lld]", (long long)n_tokens, (long long)seq_len);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return sf_fail(err, SF_E_ARG, "umT5: token id %lld outside the embedding (vocab %lld)", (long long)ids[i],
                           (long long)c->vocab);
    if (dbg && dbg->block0_out && c->num_layers < 2) /* the residual is fused into the next norm */
        return sf_fail(err, SF_E_UNSUPPORTED, "umT5 on the GPU: the block-0 output tap needs at least 2 layers");
    g->prof.n_ev = 0; /* SF_CUDA_PROFILE: this prompt's events only (an encode that failed left its own) */
    if (n > g->max_len) {
        const int64_t old = g->max_len;
        sf_info("umT5 on cuda:%d: %lld tokens, more than the %lld sized so far: regrowing the activations",
                g->ordinal, (long long)n, (long long)old);
        if ((s = alloc_state(g, n, err))) {
            sf_err e2 = {{0}};
            if (old && !g->arena) alloc_state(g, old, &e2); /* keep serving the lengths that fit */
            return s;
        }
    }
    int64_t chunk = g->s_elems / (H * round8(n)); /* ≥ chunk_for(max_len) ≥ 1 */
    if (chunk > n) chunk = n;
    const char *ch = getenv("SF_CUDA_ATTN_CHUNK"); /* tests: several query chunks at small sizes */
    if (ch && atoll(ch) > 0 && atoll(ch) < chunk) chunk = atoll(ch);
    prof(g, P_IO);
    if ((s = g->host ? up_rows(g, ids, n, err) : sf_cuda_copy_h2d(&g->cx, g->ids, ids, (size_t)n * 8, err))) return s;
    prof(g, P_GLUE);
    if ((s = sf_t5_embed_cuda(&g->cx, n, D, g->ids, g->host ? n : c->vocab, g->emb, g->x, D, err))) return s;
    up u = {g, g->stage, STAGE_N, err};
    if (dbg && (s = tap_f32(g, dbg->embed, g->x, nD, err))) return s;
    const bf16 *q = g->qkv, *k = g->qkv + A, *v = g->qkv + 2 * A;
    for (int64_t l = 0; l < c->num_layers; l++) {
        const glayer *W = &g->L[l];
        if ((s = sf_stop_check(err))) return s; /* a stop signal is honoured per layer */
        if (g->host) { /* streaming: this layer's matrices into the slot (the previous layer's kernels ran) */
            prof(g, P_IO);
            if ((s = up_layer(&u, g->host, l))) return s;
        }
        /* the previous layer's FFN residual, then this layer's norm1 */
        if ((s = norm(g, n, l ? g->t : NULL, W->n1, g->hn, SF_BF16, err))) return s;
        if (l == 1 && dbg && (s = tap_f32(g, dbg->block0_out, g->x, nD, err))) return s;
        if (l == 0 && dbg && dbg->block0_norm1) {
            prof(g, P_IO);
            if ((s = sf_cuda_download_bf16(&g->cx, dbg->block0_norm1, g->hn, nD, err))) return s;
        }
        if ((s = mm(g, n, 3 * A, D, g->hn, W->qkv, g->qkv, SF_BF16, err))) return s;
        /* QKᵀ and PV over the n×n (query, key) pairs of every head: 2·n·n·A each */
        sf_gpu_prof_mark_flops(&g->prof, &g->cx, P_ATTN, 4.0 * (double)n * (double)n * (double)A);
        if ((s = sf_t5_attention_cuda(&g->cx, n, n, (int)H, (int)c->head_dim, q, k, v, 3 * A, g->ao, A, g->bucket,
                                      g->max_len - 1, W->pos, (int)c->num_buckets, g->S, g->P, chunk, err)))
            return s;
        if ((s = mm(g, n, D, A, g->ao, W->o, g->t, SF_F32, err))) return s;
        if (l == 0 && dbg && (s = tap_f32(g, dbg->block0_attn, g->t, nD, err))) return s;
        if ((s = norm(g, n, g->t, W->n2, g->hn, SF_BF16, err))) return s;
        if ((s = mm(g, n, 2 * F, D, g->hn, W->gf, g->gf, SF_F32, err))) return s;
        prof(g, P_GLUE);
        if ((s = sf_t5_gated_gelu_cuda(&g->cx, n, F, g->gf, 2 * F, g->hf, F, err))) return s;
        if ((s = mm(g, n, D, F, g->hf, W->fc2, g->t, SF_F32, err))) return s;
    }
    /* the last FFN residual and the final norm, in place (f32) */
    if ((s = norm(g, n, g->t, g->final_norm, g->x, SF_F32, err))) return s;
    prof(g, P_IO);
    if ((s = sf_cuda_download_f32(&g->cx, out, g->x, nD, err))) return s;
    memset(out + nD, 0, (size_t)(seq_len - n) * (size_t)D * sizeof(float));
    prof(g, P_IO);
    return prof_collect(g, err);
}
