/* dit_cuda.c — the causal Wan DiT forward on CUDA (see dit_cuda.h). Plain C over the kernels'
 * C API (kernels/cuda_ops.h, kernels/sdpa_cuda.h): the same steps as sf_dit_forward in dit.c, in
 * the reference's bf16 rounding order (SPEC §5.4). Mirrors wan/modules/causal_model.py as run by
 * the reference in bf16. The attention call and the taps' device work: dit_cuda_taps.c; `--fp8`'s
 * float8 linears: dit_cuda_fp8.c; the types they share: dit_cuda_impl.h. Tested by
 * tests/unit/test_dit_cuda.c (and test_fp8_cuda.c with --fp8). */
#define _POSIX_C_SOURCE 200809L
#include "dit_cuda_impl.h"
#include "stop.h"
#include "timestep_embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SF_CUDA_PROFILE categories' names (dit_cuda_impl.h: P_*) */
static const char *const P_NAME[P_N] = {"linear (cuBLASLt)", "self-attention", "cross-attention",
                                        "residual + LayerNorm + modulation", "q/k RMSNorm + RoPE", "GELU",
                                        "embeddings, tables, copies", "fp8 quantize"};

/* ---------------------------------------------------------------- weights */

typedef struct up {
    sf_dit_gpu *g;
    int pass;          /* 0 size, 1 upload */
    size_t moff, voff; /* bytes into wmat, floats into wvec */
    uint16_t *stage;   /* pinned staging (bf16) */
    float *vstage;
    size_t stage_n;
    sf_err *err;
} up;

/* Stage n values of a matrix (any file dtype) as bf16 and copy them to dst. */
static sf_status up_bf16(up *u, const sf_dit_mat *m, bf16 *dst) {
    return sf_gpu_upload_bf16(&u->g->cx, dst, m->w, m->dt, (size_t)m->n * (size_t)m->k, u->stage, u->stage_n, u->err);
}

static sf_status up_bias(up *u, const float *b, int64_t n, bf16 *dst) {
    for (int64_t i = 0; i < n; i++) u->stage[i] = sf_f32_to_bf16(b[i]); /* n ≤ stage_n: biases are short */
    return sf_cuda_copy_h2d(&u->g->cx, dst, u->stage, (size_t)n * 2, u->err);
}

/* A linear layer: matrix (and its bias, bf16) into the matrix arena. With m2, the rows of m2 follow
 * those of m (and b2 follows b): one fused projection [W; W2]. A matrix that runs in float8 (--fp8,
 * sf_dgpu_fp8_takes; both of a fused pair) goes as its e4m3 codes, then the bias, then its scale(s). */
static sf_status up_linear(up *u, const sf_dit_mat *m, const float *b, const sf_dit_mat *m2, const float *b2,
                           gmat *out) {
    int64_t n = m->n + (m2 ? m2->n : 0);
    const int f8 = sf_dgpu_fp8_takes(u->g, m) && (!m2 || sf_dgpu_fp8_takes(u->g, m2));
    size_t wbytes = ((size_t)n * (size_t)m->k * (f8 ? 1 : 2) + 255) & ~(size_t)255, bbytes = b ? ((size_t)n * 2 + 255) & ~(size_t)255 : 0;
    const size_t sbytes = f8 ? 256 : 0;
    sf_status s;
    if (u->pass == 0) {
        u->moff += wbytes + bbytes + sbytes;
        return SF_OK;
    }
    char *base = (char *)u->g->wmat + u->moff;
    out->w = f8 ? NULL : (bf16 *)base;
    out->w8 = f8 ? (uint8_t *)base : NULL;
    out->s8 = f8 ? (float *)(base + wbytes + bbytes) : NULL;
    out->parts = f8 && m2 ? 2 : 1;
    out->b = b ? (bf16 *)(base + wbytes) : NULL;
    out->n = n;
    out->k = m->k;
    u->moff += wbytes + bbytes + sbytes;
    if (f8) {
        s = sf_dgpu_fp8_upload(u->g, m, out->w8, out->s8, u->err);
        if (!s && m2) s = sf_dgpu_fp8_upload(u->g, m2, out->w8 + (size_t)m->n * (size_t)m->k, out->s8 + 1, u->err);
    } else {
        s = up_bf16(u, m, out->w);
        if (!s && m2) s = up_bf16(u, m2, out->w + (size_t)m->n * (size_t)m->k);
    }
    if (!s && b) s = up_bias(u, b, m->n, out->b);
    if (!s && b && m2) s = up_bias(u, b2, m2->n, out->b + m->n);
    return s;
}

static sf_status up_vec(up *u, const float *v, int64_t n, float **out) {
    if (!v) {
        if (u->pass) *out = NULL;
        return SF_OK;
    }
    size_t nn = ((size_t)n + 63) & ~(size_t)63;
    if (u->pass == 0) {
        u->voff += nn;
        return SF_OK;
    }
    *out = u->g->wvec + u->voff;
    u->voff += nn;
    for (int64_t off = 0; off < n; off += (int64_t)u->stage_n) {
        int64_t c = n - off < (int64_t)u->stage_n ? n - off : (int64_t)u->stage_n;
        for (int64_t i = 0; i < c; i++) u->vstage[i] = sf_round_bf16(v[off + i]); /* the bf16 model's values */
        sf_status s = sf_cuda_copy_h2d(&u->g->cx, *out + off, u->vstage, (size_t)c * 4, u->err);
        if (s) return s;
    }
    return SF_OK;
}

static sf_status walk_weights(up *u, const sf_dit_weights *w) {
    const sf_dit_config *c = &w->cfg;
    sf_dit_gpu *g = u->g;
    const int64_t D = c->dim, FF = c->ffn_dim;
    sf_status s;
#define M(src, b, dst) if ((s = up_linear(u, src, b, NULL, NULL, dst))) return s
#define V(src, n, dst) if ((s = up_vec(u, src, n, dst))) return s
    M(&w->patch, w->patch_b, &g->patch);
    M(&w->txt0, w->txt0_b, &g->txt0);
    M(&w->txt2, w->txt2_b, &g->txt2);
    M(&w->tim0, w->tim0_b, &g->tim0);
    M(&w->tim2, w->tim2_b, &g->tim2);
    M(&w->tproj, w->tproj_b, &g->tproj);
    M(&w->head, w->head_b, &g->head);
    V(w->head_mod, 2 * D, &g->head_mod);
    for (int l = 0; l < c->num_layers; l++) {
        const sf_dit_layer *h = &w->layers[l];
        glayer *d = &g->L[l];
        V(h->modulation, 6 * D, &d->mod);
        M(&h->sa_q, h->sa_qb, &d->sa_q);
        if ((s = up_linear(u, &h->sa_k, h->sa_kb, &h->sa_v, h->sa_vb, &d->sa_kv))) return s;
        M(&h->sa_o, h->sa_ob, &d->sa_o);
        M(&h->ca_q, h->ca_qb, &d->ca_q); M(&h->ca_k, h->ca_kb, &d->ca_k); M(&h->ca_v, h->ca_vb, &d->ca_v);
        M(&h->ca_o, h->ca_ob, &d->ca_o);
        M(&h->ffn0, h->ffn0_b, &d->ffn0); M(&h->ffn2, h->ffn2_b, &d->ffn2);
        V(h->sa_nq, D, &d->sa_nq); V(h->sa_nk, D, &d->sa_nk); V(h->ca_nq, D, &d->ca_nq); V(h->ca_nk, D, &d->ca_nk);
        V(h->n3_w, D, &d->n3_w); V(h->n3_b, D, &d->n3_b);
    }
    (void)FF;
#undef M
#undef V
    return SF_OK;
}

/* g->mat_bytes / vec_bytes come from the sizing pass (walk_weights with pass 0) in sf_dit_cuda_init. */
static sf_status upload_weights(sf_dit_gpu *g, const sf_dit_weights *w, sf_err *err) {
    up u = {g, 1, 0, 0, NULL, NULL, (size_t)16 << 20, err};
    sf_status s;
    if ((s = sf_cuda_malloc(&g->wmat, g->mat_bytes, err))) return s;
    if ((s = sf_cuda_malloc((void **)&g->wvec, g->vec_bytes, err))) return s;
    if ((s = sf_cuda_host_alloc((void **)&u.stage, u.stage_n * sizeof(float), err))) return s;
    u.vstage = (float *)u.stage; /* vectors and matrices never stage at the same time */
    s = walk_weights(&u, w);
    sf_cuda_host_free(u.stage);
    return s;
}

/* ---------------------------------------------------------------- state */


static size_t layout(sf_dit_gpu *g, const sf_dit_state *st, char *base) {
    const sf_dit_config *c = &st->w->cfg;
    const size_t D = (size_t)c->dim, NL = (size_t)c->num_layers, T = (size_t)c->text_len, F = (size_t)st->max_frames;
    const size_t L = F * (size_t)st->frame_tokens, ph = (size_t)c->patch_size[1], pw = (size_t)c->patch_size[2];
    const size_t lat = F * (size_t)c->in_dim * (size_t)st->lat_h * (size_t)st->lat_w;
    const size_t latout = F * (size_t)c->out_dim * (size_t)st->lat_h * (size_t)st->lat_w;
    size_t off = 0;
    g->kv = sf_gpu_carve(base, &off, NL * (size_t)st->cache_tokens * 2 * D * 2);
    g->ck = sf_gpu_carve(base, &off, NL * T * D * 2);
    g->cv = sf_gpu_carve(base, &off, NL * T * D * 2);
    g->ctx = sf_gpu_carve(base, &off, T * D * 2);
    g->txt_pad = sf_gpu_carve(base, &off, T * (size_t)c->text_dim * 2);
    g->txt_tmp = sf_gpu_carve(base, &off, T * D * 2);
    bf16 **act[] = {&g->x, &g->a, &g->q, &g->o, &g->y};
    for (size_t i = 0; i < sizeof act / sizeof act[0]; i++) *act[i] = sf_gpu_carve(base, &off, L * D * 2);
    g->h = sf_gpu_carve(base, &off, L * (size_t)c->ffn_dim * 2);
    g->patches = sf_gpu_carve(base, &off, L * (size_t)c->in_dim * ph * pw * 2);
    g->hout = sf_gpu_carve(base, &off, L * (size_t)c->out_dim * ph * pw * 2);
    g->xin = sf_gpu_carve(base, &off, lat * 4);
    g->flow = sf_gpu_carve(base, &off, (latout > lat ? latout : lat) * 4);
    for (int i = 0; i < SF_LAT_N; i++) g->lat[i] = sf_gpu_carve(base, &off, (latout > lat ? latout : lat) * 4);
    g->freq = sf_gpu_carve(base, &off, (size_t)c->freq_dim / 2 * 8);
    g->sinus = sf_gpu_carve(base, &off, F * (size_t)c->freq_dim * 2);
    g->et = sf_gpu_carve(base, &off, F * D * 2);
    g->e = sf_gpu_carve(base, &off, F * D * 2);
    g->e0 = sf_gpu_carve(base, &off, F * 6 * D * 2);
    g->E = sf_gpu_carve(base, &off, NL * F * 6 * D * 4);
    g->Hm = sf_gpu_carve(base, &off, F * 2 * D * 4);
    g->rope_cs = sf_gpu_carve(base, &off, (size_t)st->rope.max_pos * (size_t)(st->rope.head_dim / 2) * 2 * 8);
    if (g->fp8_on) { /* --fp8: the largest float8 product input (L × ffn, or the text's T × D), and its scale */
        const size_t xq = L * (D > (size_t)c->ffn_dim ? D : (size_t)c->ffn_dim);
        g->xq = sf_gpu_carve(base, &off, xq > T * D ? xq : T * D);
        g->sx = sf_gpu_carve(base, &off, sizeof(float));
    }
    return off;
}

void sf_dit_cuda_free(sf_dit_state *st) {
    sf_dit_gpu *g = st->gpu;
    if (!g) return;
    sf_sdpa_destroy(&g->sdpa);
    sf_cuda_graphs_free(g->graphs);
    sf_cuda_free(g->S);
    sf_cuda_free(g->P);
    sf_cuda_free(g->sink_orig);
    sf_cuda_free(g->S16);
    sf_gpu_prof_free(&g->prof);
    sf_cuda_free(g->arena);
    sf_cuda_free(g->wmat);
    sf_cuda_free(g->wvec);
    sf_cuda_ctx_free(&g->cx);
    free(g->L);
    sf_cuda_host_free(g->stage[0]);
    sf_cuda_host_free(g->stage[1]);
    sf_cuda_events_free(g->stage_ev, 2);
    sf_cuda_host_free(g->out_pin);
    sf_cuda_events_free(g->out_ev, 1);
    free(g->tap_q);
    free(g->tap_k);
    sf_cuda_free(g->tm_means);
    sf_cuda_free(g->tm_agg);
    sf_cuda_host_free(g->tap_agg);
    free(g->def_layer);
    sf_cuda_free(g->tm_rm);
    sf_cuda_free(g->tm_lse);
    sf_cuda_free(g->tm_out);
    sf_cuda_free(g->tm_st);
    sf_cuda_free(g->tm_tot);
    free(g->tm_hout);
    free(g->tm_hst);
    sf_cuda_host_free(g->tap_pmass);
    free(g);
    st->gpu = NULL;
}

sf_status sf_dit_cuda_mark(sf_dit_state *st, void *ev, int i, sf_err *err) {
    if (!st->gpu) return sf_fail(err, SF_E_ARG, "not a GPU state");
    return sf_cuda_event_record(&st->gpu->cx, ev, i, err);
}

size_t sf_dit_cuda_bytes(const sf_dit_state *st) {
    const sf_dit_gpu *g = st->gpu;
    return g ? g->mat_bytes + g->vec_bytes + g->state_bytes : 0;
}

size_t sf_dit_cuda_logits_ws_bytes(const sf_dit_state *st) {
    const sf_dit_gpu *g = st->gpu;
    return g && g->S ? (size_t)st->w->cfg.num_heads * (size_t)g->chunk * (size_t)g->lk_max * 8 : 0;
}

/* The explicit attention's query chunk: logits of at most ~1 GiB (f32) per chunk. */
static int64_t pick_chunk(int heads, int64_t L, int64_t lk_max) {
    int64_t c = ((int64_t)1 << 28) / ((int64_t)heads * lk_max);
    if (c < 1) c = 1;
    return c < L ? c : L;
}

sf_status sf_dit_cuda_init(sf_dit_state *st, int ordinal, sf_err *err) {
    const sf_dit_config *c = &st->w->cfg;
    sf_status s;
    sf_dit_gpu *g = calloc(1, sizeof *g);
    if (!g) return sf_fail(err, SF_E_NOMEM, "out of memory");
    st->gpu = g;
    if ((s = sf_cuda_ctx_init(&g->cx, ordinal, err))) goto fail;
    g->L = calloc((size_t)c->num_layers, sizeof *g->L);
    if (!g->L) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto fail; }
    const int64_t L = (int64_t)st->max_frames * st->frame_tokens;
    g->fused = c->dim % 8 == 0 && c->dim <= 2048 && (c->dim / c->num_heads) % 8 == 0 && !getenv("SF_CUDA_UNFUSED");
    g->gelu_epi = !getenv("SF_CUDA_UNFUSED") && !getenv("SF_CUDA_GELU_UNFUSED");
    g->mass_explicit = getenv("SF_TAP_PROBS_EXPLICIT") != NULL;
    g->own_attn_off = getenv("SF_NO_FUSED_ATTN") != NULL;
    const int64_t max_att = sf_dit_window_tokens(st);
    g->lk_max = max_att > c->text_len ? max_att : c->text_len;
    g->chunk = pick_chunk(c->num_heads, L, g->lk_max);
    const char *ch = getenv("SF_CUDA_ATTN_CHUNK"); /* tests: several query chunks at small sizes */
    if (ch && atoll(ch) > 0 && atoll(ch) < g->chunk) g->chunk = atoll(ch);
    /* --fp8: which float8 shapes cuBLASLt takes, before the weights are sized */
    if ((s = sf_dgpu_fp8_probe(st, err))) goto fail;
    /* memory check before any large allocation: weights + state must fit */
    size_t need_state = layout(g, st, NULL);
    up probe = {g, 0, 0, 0, NULL, NULL, 0, err}; /* the sizing pass: nothing is uploaded */
    if ((s = walk_weights(&probe, st->w))) goto fail;
    g->mat_bytes = probe.moff;
    g->vec_bytes = probe.voff * sizeof(float);
    size_t need = need_state + g->mat_bytes + g->vec_bytes, fr = 0, tot = 0;
    if (sf_cuda_mem_info(&fr, &tot, err) == SF_OK && need + ((size_t)256 << 20) > fr) {
        s = sf_fail(err, SF_E_NOMEM,
                    "cuda:%d has %.2f GiB free, the DiT needs %.2f GiB (weights %.2f + KV cache and activations %.2f): "
                    "use a GPU with more memory, fewer frames or a rolling cache (local_attn_size)",
                    ordinal, fr / 1073741824.0, need / 1073741824.0, (double)(g->mat_bytes + g->vec_bytes) / 1073741824.0,
                    need_state / 1073741824.0);
        goto fail;
    }
    if ((s = upload_weights(g, st->w, err))) goto fail;
    g->state_bytes = need_state;
    if ((s = sf_cuda_malloc(&g->arena, need_state, err))) goto fail;
    layout(g, st, g->arena);
    if ((s = sf_cuda_memset(&g->cx, g->arena, 0, need_state, err))) goto fail;
    size_t ncs = (size_t)st->rope.max_pos * (size_t)(st->rope.head_dim / 2) * 2;
    if ((s = sf_cuda_copy_h2d(&g->cx, g->rope_cs, st->rope.cs, ncs * sizeof(double), err))) goto fail;
    {
        const int half = c->freq_dim / 2;
        double *tf = malloc(sizeof(double) * (size_t)(half > 0 ? half : 1));
        if (!tf) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto fail; }
        for (int j = 0; j < half; j++) tf[j] = sf_timestep_freq(j, c->freq_dim);
        s = sf_cuda_copy_h2d(&g->cx, g->freq, tf, sizeof(double) * (size_t)half, err);
        free(tf);
        if (s) goto fail;
    }
    g->lat_n = (size_t)st->max_frames * (size_t)(c->in_dim > c->out_dim ? c->in_dim : c->out_dim) * (size_t)st->lat_h *
               (size_t)st->lat_w;
    if ((s = sf_cuda_host_alloc((void **)&g->stage[0], g->lat_n * sizeof(float), err))) goto fail;
    if ((s = sf_cuda_host_alloc((void **)&g->stage[1], g->lat_n * sizeof(float), err))) goto fail;
    if ((s = sf_cuda_events_new(&g->stage_ev, 2, err))) goto fail;
    if ((s = sf_cuda_host_alloc((void **)&g->out_pin, g->lat_n * sizeof(float), err))) goto fail;
    if ((s = sf_cuda_events_new(&g->out_ev, 1, err))) goto fail;
    sf_err e2 = {0};
    /* cuDNN's attention takes head dims that are multiples of 8 up to 256 (sf_sdpa_shape_check); any other
       is an argument error there (SF_E_ARG), not the refusal (SF_E_UNSUPPORTED) sf_dgpu_attend falls back
       on, and stopped such a model at its first forward. Leave cuDNN out for it: the fused kernel or the
       explicit path takes every head dim (test_dit_cuda_shapes head_dim_20). */
    const int hd = c->dim / c->num_heads;
    const int sdpa_takes = sf_sdpa_shape_check(1, 1, c->num_heads, hd, c->dim, 2 * (int64_t)c->dim, c->dim, &e2) == SF_OK;
    if (!sdpa_takes) snprintf(e2.msg, sizeof e2.msg, "cuDNN's attention does not take head dim %d (multiples of 8 up to 256)", hd);
    if (getenv("SF_NO_CUDNN") || !sdpa_takes || sf_sdpa_new(&g->sdpa, g->cx.stream, &e2) != SF_OK) {
        g->sdpa = NULL;
        if (!getenv("SF_NO_CUDNN"))
            sf_log(SF_LOG_WARN, "sf-denoise: %s; attention uses %s", e2.msg,
                   g->own_attn_off || !sf_attn_mass_head_dim_ok(hd) ? "the explicit cuBLASLt path (slower)"
                                                                    : "sfpipe's fused kernel");
    }
    const char *gr = getenv("SF_CUDA_GRAPHS");
    if ((!gr || strcmp(gr, "0") != 0) && (s = sf_cuda_graphs_new(&g->graphs, err))) goto fail;
    if (getenv("SF_CUDA_PROFILE") && atoi(getenv("SF_CUDA_PROFILE")) > 0) {
        /* --fp8 adds a quantization before most products and splits the K|V one: more events, one more category */
        if ((s = sf_gpu_prof_init(&g->prof, 64 + (g->fp8_on ? 40 : 24) * c->num_layers, g->fp8_on ? P_N : P_N - 1,
                                  P_NAME, err)))
            goto fail;
    }
    return sf_cuda_sync(&g->cx, err);
fail:
    sf_dit_cuda_free(st);
    return s;
}

/* ---------------------------------------------------------------- profile */

/* SF_CUDA_PROFILE=1: an event before each op with its category; the time to the next event is
 * that op's. Summed per category over forwards (sf_dit_cuda_profile prints them). */

static void prof(sf_dit_gpu *g, int cat) { sf_gpu_prof_mark(&g->prof, &g->cx, cat); }
static sf_status prof_collect(sf_dit_gpu *g, sf_err *err) { return sf_gpu_prof_collect(&g->prof, err); }

int sf_dit_cuda_profile(const sf_dit_state *st, char *buf, size_t n) {
    const sf_dit_gpu *g = st->gpu;
    return g ? sf_gpu_prof_format(&g->prof, "forwards", 1, buf, n) : 0;
}

void sf_dit_cuda_profile_reset(sf_dit_state *st) {
    sf_dit_gpu *g = st->gpu;
    if (!g) return;
    sf_gpu_prof_reset(&g->prof);
}

/* ---------------------------------------------------------------- forward pieces */

/* y = x·Wᵀ + b (gelu: GELU in the epilogue), counted as a linear op in the profile. A float8 matrix (--fp8):
 * sf_dgpu_product8, which quantizes x first. */
static sf_status product(sf_dit_gpu *g, int64_t M, const void *x, int64_t ldx, const gmat *w, void *y, int64_t ldy,
                         int gelu, sf_err *err) {
    if (w->w8) return sf_dgpu_product8(g, M, x, ldx, w, y, ldy, gelu, 0, err);
    g->xq_x = NULL; /* xq is reused only by the product right after the one that made it (mm_same_x) */
    sf_gpu_prof_mark_flops(&g->prof, &g->cx, P_LINEAR, 2.0 * (double)M * (double)w->n * (double)w->k);
    return (gelu ? sf_linear_gelu_cuda : sf_linear_cuda)(&g->cx, M, w->n, w->k, x, ldx, w->w, w->b, y, ldy, err);
}

static sf_status mm(sf_dit_gpu *g, int64_t M, const void *x, int64_t ldx, const gmat *w, void *y, int64_t ldy,
                    sf_err *err) {
    return product(g, M, x, ldx, w, y, ldy, 0, err);
}

/* mm for a product whose input x the previous product read too, nothing having written it since: a float8
 * matrix reuses that product's quantization of x when it made one (sf_dgpu_product8 checks it is x's). */
static sf_status mm_same_x(sf_dit_gpu *g, int64_t M, const void *x, int64_t ldx, const gmat *w, void *y, int64_t ldy,
                           sf_err *err) {
    return w->w8 ? sf_dgpu_product8(g, M, x, ldx, w, y, ldy, 0, 1, err) : product(g, M, x, ldx, w, y, ldy, 0, err);
}

/* y = ⌊GELU-tanh(x·Wᵀ + b)⌉: in the GEMM's epilogue (one rounding), or product then kernel (two, the
 * reference's order) with g->gelu_epi off — also from the first shape cuBLASLt has no GELU-epilogue
 * algorithm for (a warning; nothing was enqueued for that product). */
static sf_status mm_gelu(sf_dit_gpu *g, int64_t M, const void *x, int64_t ldx, const gmat *w, void *y, int64_t ldy,
                         sf_err *err) {
    sf_status s;
    int *epi = w->w8 ? &g->fp8_gelu_epi : &g->gelu_epi; /* the FP8 GEMM's epilogues are cuBLASLt's other question */
    if (*epi) {
        if ((s = product(g, M, x, ldx, w, y, ldy, 1, err)) != SF_E_UNSUPPORTED) return s;
        sf_log(SF_LOG_WARN, "sf-denoise: %s; the GELU runs as its own kernel from here on", err->msg);
        *epi = 0;
    }
    if ((s = mm(g, M, x, ldx, w, y, ldy, err))) return s;
    prof(g, P_GELU);
    return ldy == w->n ? sf_gelu_tanh_cuda(&g->cx, y, M * w->n, err) : sf_fail(err, SF_E_ARG, "mm_gelu: strided output");
}

/* rows × cols bf16 device values (row stride ld) → contiguous f32 host (synchronous). */
sf_status sf_dgpu_download_rows(sf_dit_gpu *g, float *host, const void *dev, int64_t rows, int64_t cols, int64_t ld,
                               sf_err *err) {
    const int64_t n = rows * cols;
    uint16_t *b = malloc(2 * (size_t)(n > 0 ? n : 1));
    if (!b) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_status s = sf_cuda_copy_d2h_2d(&g->cx, b, (size_t)cols * 2, dev, (size_t)ld * 2, (size_t)cols * 2, (size_t)rows, err);
    for (int64_t i = 0; !s && i < n; i++) host[i] = sf_bf16_to_f32(b[i]);
    free(b);
    return s;
}

/* Debug probe (golden intermediate names): bf16 device rows → f32 host. */
static sf_status gprobe2(sf_dit_state *st, const char *name, const void *dev, int64_t rows, int64_t cols, int64_t ld,
                         sf_err *err) {
    if (!st->probe) return SF_OK;
    float *h = malloc(sizeof(float) * (size_t)(rows * cols > 0 ? rows * cols : 1));
    if (!h) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_status s = sf_dgpu_download_rows(st->gpu, h, dev, rows, cols, ld, err);
    if (!s) st->probe(st->probe_ctx, name, h, rows * cols);
    free(h);
    return s;
}

static sf_status gprobe(sf_dit_state *st, const char *name, const void *dev, int64_t n, sf_err *err) {
    return gprobe2(st, name, dev, 1, n, n, err);
}

/* y = LN(x) [·w + b] [then the adaLN modulation of frame r / S]: one fused kernel, or the two
 * unfused ones when the shape does not allow it (or SF_CUDA_UNFUSED=1). */
static sf_status ln_mod(sf_dit_gpu *g, const sf_dit_config *c, int F, int64_t S, const bf16 *x, const float *w,
                        const float *b, const float *shift, const float *scale, int64_t fstride, bf16 *y, sf_err *err) {
    const int64_t D = c->dim, M = (int64_t)F * S;
    prof(g, P_NORM);
    if (g->fused) return sf_ln_mod_cuda(&g->cx, M, D, x, D, w, b, c->eps, S, shift, scale, fstride, y, D, err);
    sf_status s = sf_layernorm_cuda(&g->cx, M, D, x, D, w, b, c->eps, y, D, err);
    if (!s && shift) s = sf_modulate_cuda(&g->cx, F, S, D, y, shift, scale, fstride, y, err);
    return s;
}

/* The residual that ends a sub-block, x = ⌊x + ⌊res·gate⌉⌉ (gate NULL: ⌊x + res⌉), then ln_mod of the
 * new x into y — one pass when fused. */
static sf_status res_ln_mod(sf_dit_gpu *g, const sf_dit_config *c, int F, int64_t S, bf16 *x, const bf16 *res,
                            const float *gate, int64_t gstride, const float *w, const float *b, const float *shift,
                            const float *scale, int64_t fstride, bf16 *y, sf_err *err) {
    const int64_t D = c->dim, M = (int64_t)F * S;
    sf_status s;
    prof(g, P_NORM);
    if (g->fused && (!gate || !shift || gstride == fstride))
        return sf_res_ln_mod_cuda(&g->cx, M, D, x, D, res, D, gate, w, b, c->eps, S, shift, scale,
                                  gate ? gstride : fstride, y, D, err);
    s = gate ? sf_gated_add_cuda(&g->cx, F, S, D, x, res, gate, gstride, err) : sf_add_cuda(&g->cx, x, res, M * D, err);
    return s ? s : ln_mod(g, c, F, S, x, w, b, shift, scale, fstride, y, err);
}

/* The unfused 3-axis RoPE of M token rows (stride ld) in place, frames from start_frame. */
static sf_status rope_rows(sf_dit_state *st, int64_t M, bf16 *x, int64_t ld, int64_t start_frame, sf_err *err) {
    const sf_dit_config *c = &st->w->cfg;
    const sf_rope_table *rt = &st->rope;
    const int hd = c->dim / c->num_heads, Hp = st->lat_h / c->patch_size[1], Wp = st->lat_w / c->patch_size[2];
    prof(st->gpu, P_QK);
    return sf_rope_cuda(&st->gpu->cx, x, ld, (int)(M / ((int64_t)Hp * Wp)), Hp, Wp, c->num_heads, hd, rt->n_t,
                        rt->n_h, start_frame, st->gpu->rope_cs, rt->max_pos, err);
}

/* RMSNorm of rows (stride ld) in place [then RoPE for tokens of frames start_frame.. (rope = 1)]. */
static sf_status rms_rope(sf_dit_state *st, int64_t M, bf16 *x, int64_t ld, const float *w, int rope,
                          int64_t start_frame, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const sf_rope_table *rt = &st->rope;
    const int64_t D = c->dim;
    const int hd = (int)(D / c->num_heads), Hp = st->lat_h / c->patch_size[1], Wp = st->lat_w / c->patch_size[2];
    prof(g, P_QK);
    if (g->fused)
        return sf_rmsnorm_rope_cuda(&g->cx, M, D, x, ld, w, c->eps, x, ld, c->num_heads, hd, Hp, Wp, rt->n_t, rt->n_h,
                                    start_frame, rope ? g->rope_cs : NULL, rt->max_pos, err);
    sf_status s = sf_rmsnorm_cuda(&g->cx, M, D, x, ld, w, c->eps, x, ld, err);
    return !s && rope ? rope_rows(st, M, x, ld, start_frame, err) : s;
}

sf_status sf_dit_cuda_set_context(sf_dit_state *st, const float *emb, int64_t n_rows, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const int64_t T = c->text_len, D = c->dim, TD = c->text_dim;
    sf_status s;
    float *pad = calloc((size_t)(T * TD), sizeof(float));
    if (!pad) return sf_fail(err, SF_E_NOMEM, "out of memory");
    memcpy(pad, emb, sizeof(float) * (size_t)(n_rows * TD));
    s = sf_cuda_upload_bf16(&g->cx, g->txt_pad, pad, (size_t)(T * TD), err);
    free(pad);
    if (s) return s;
    if ((s = mm_gelu(g, T, g->txt_pad, TD, &g->txt0, g->txt_tmp, D, err))) return s;
    if ((s = mm(g, T, g->txt_tmp, D, &g->txt2, g->ctx, D, err))) return s;
    if ((s = gprobe(st, "mid.text_embedding", g->ctx, T * D, err))) return s;
    for (int l = 0; l < c->num_layers; l++) {
        const glayer *B = &g->L[l];
        bf16 *ck = g->ck + (size_t)l * T * D, *cv = g->cv + (size_t)l * T * D;
        if ((s = sf_stop_check(err))) return s;
        /* every layer's K and V read the same ctx: a float8 one quantizes it once (mm_same_x) */
        if ((s = (l ? mm_same_x : mm)(g, T, g->ctx, D, &B->ca_k, ck, D, err))) return s;
        if (c->qk_norm && (s = rms_rope(st, T, ck, D, B->ca_nk, 0, 0, err))) return s;
        if ((s = mm_same_x(g, T, g->ctx, D, &B->ca_v, cv, D, err))) return s;
        if (l == 0) {
            if ((s = gprobe(st, "mid.block0.cross_attn.k", ck, T * D, err))) return s;
            if ((s = gprobe(st, "mid.block0.cross_attn.v", cv, T * D, err))) return s;
        }
    }
    g->prof.n_ev = 0; /* the profile covers forwards only */
    return sf_cuda_sync(&g->cx, err);
}

/* Layer l. On entry g->a holds this layer's attention input ⌊LN(x)·⌊1+scale_attn⌉ + shift_attn⌉ (made by the
 * previous step, fused with its residual); on return x holds the layer's output and g->a the next
 * consumer's input: the next layer's modulated LayerNorm, or the head's (Hm) after the last layer. */
static sf_status layer(sf_dit_state *st, int l, int F, int64_t start_frame, const sf_dit_kv_step *kv,
                       const int64_t *kfr, int stop_kv, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const glayer *B = &g->L[l];
    const int64_t D = c->dim, S = st->frame_tokens, L = (int64_t)F * S, NH = c->num_heads, hd = D / NH;
    const float scale = (float)(1.0 / sqrt((double)hd));
    sf_cuda_ctx *cx = &g->cx;
    sf_status s;
    /* chunks of E: 0 shift-attn, 1 scale-attn, 2 gate-attn, 3 shift-ffn, 4 scale-ffn, 5 gate-ffn */
    const float *E = g->E + (size_t)l * F * 6 * D;
    const float *gate_attn = E + 2 * D, *shift_ffn = E + 3 * D, *scale_ffn = E + 4 * D, *gate_ffn = E + 5 * D;

    /* self-attention: the fused K|V projection lands in its cache slots, rows of 2D */
    bf16 *KV = g->kv + (size_t)l * st->cache_tokens * 2 * D;
    if (kv->evict > 0 && kv->keep > 0) {
        size_t row = (size_t)D * 4;
        prof(g, P_IO);
        if ((s = sf_cuda_copy_d2d(cx, (char *)KV + (size_t)st->sink_tokens * row,
                                  (char *)KV + (size_t)(st->sink_tokens + kv->evict) * row, (size_t)kv->keep * row, err)))
            return s;
    }
    bf16 *kn = kv->pc ? g->pc_new : KV + kv->ls * 2 * D, *vn = kn + D; /* --pc-budget compacts first (pc.c) */
    if (!stop_kv && (s = mm(g, L, g->a, D, &B->sa_q, g->q, D, err))) return s;
    if ((s = (stop_kv ? mm : mm_same_x)(g, L, g->a, D, &B->sa_kv, kn, 2 * D, err))) return s;
    if (c->qk_norm && !st->probe) { /* RMSNorm + RoPE in one pass over q and over the new k */
        if (!stop_kv && (s = rms_rope(st, L, g->q, D, B->sa_nq, 1, start_frame, err))) return s;
        if ((s = rms_rope(st, L, kn, 2 * D, B->sa_nk, 1, start_frame, err))) return s;
    } else { /* separately, so that a probe sees the normed q / k (golden intermediates) */
        if (c->qk_norm) {
            if (!stop_kv && (s = rms_rope(st, L, g->q, D, B->sa_nq, 0, 0, err))) return s;
            if ((s = rms_rope(st, L, kn, 2 * D, B->sa_nk, 0, 0, err))) return s;
        }
        if (l == 0 && !stop_kv) {
            if ((s = gprobe(st, "mid.block0.self_attn.q_normed", g->q, L * D, err))) return s;
            if ((s = gprobe2(st, "mid.block0.self_attn.k_normed", kn, L, D, 2 * D, err))) return s;
            if ((s = gprobe2(st, "mid.block0.self_attn.v", vn, L, D, 2 * D, err))) return s;
        }
        if (!stop_kv && (s = rope_rows(st, L, g->q, D, start_frame, err))) return s;
        if ((s = rope_rows(st, L, kn, 2 * D, start_frame, err))) return s;
    }
    if (stop_kv) return SF_OK; /* a pass nobody reads past the cache (sf_dit_kv_only_layer) */
    if (st->pc_budget > 0) {
        prof(g, P_IO);
        if ((s = sf_dgpu_pc_layer(st, l, kv, g->q, L, err))) return s;
        /* a tap that reads this layer's view while the forward runs: the kept tokens' record first (one wait) */
        if (kv->pc && st->tap.done && !g->capturing && (s = sf_dit_settle(st, l, err))) return s;
    }
    if (st->kvc_tokens > 0) { /* --kv-compress: the next eviction scores the keys with these queries (kv_compress.c) */
        prof(g, P_IO);
        if ((s = sf_cuda_copy_d2d(cx, g->kvc_q + (size_t)l * (size_t)((int64_t)st->max_frames * S * D), g->q,
                                  sizeof(bf16) * (size_t)(L * D), err)))
            return s;
    }
    /* the keys this layer attends: the window, less its first context slots in an ablated layer (--sink-ablate) */
    const int64_t skip = sf_dit_ablate_skip(st, l, L, kv->Lk), Lk = kv->Lk - skip;
    const bf16 *Ka = KV + (kv->lo + skip) * 2 * D, *Va = Ka + D;
    if (l == 0) {
        if ((s = gprobe(st, "mid.block0.self_attn.q_roped", g->q, L * D, err))) return s;
        if ((s = gprobe2(st, "mid.block0.self_attn.k_roped", Ka, Lk, D, 2 * D, err))) return s;
    }
    int tapped = st->tap.wants && st->tap.wants(st->tap.ctx, l);
    float *logits = NULL;
    uint16_t *logits16 = NULL;
    if (tapped && st->tap.logits_f16) logits16 = st->tap.logits_f16(st->tap.ctx, l, (int)NH, L, Lk);
    else if (tapped && st->tap.logits_buf) logits = st->tap.logits_buf(st->tap.ctx, l, (int)NH, L, Lk);
    tapcopy tc = {g, logits, logits16, L, Lk, (int)NH};
    const int mass = tapped && !logits && !logits16 && st->tap.wants_mass && st->tap.wants_mass(st->tap.ctx, l);
    if (tapped && g->capturing && (logits || logits16 || !g->defer)) /* graph_wanted admits frames and probs modes */
        return sf_fail(err, SF_E_UNSUPPORTED, "layer %d's tap reads the device during the forward: not in a CUDA graph", l);
    massrun mr = {g, (int)NH, L, Lk, S, Lk / S};
    if (mass) mr.NG = sf_dgpu_mass_groups(st, Lk, &mr.G);
    if (mass && (s = sf_dgpu_mass_ws(st, err))) return s;
    sf_gpu_prof_mark_flops(&g->prof, cx, P_SELF, 4.0 * (double)L * (double)Lk * (double)D);
    if ((s = mass ? sf_dgpu_attend_mass(&mr, (int)hd, g->q, Ka, Va, 2 * D, g->o, D, scale, err)
                  : sf_dgpu_attend(g, L, Lk, (int)NH, (int)hd, g->q, Ka, Va, 2 * D, g->o, D, scale,
                                   logits || logits16 ? sf_dgpu_tap_chunk : NULL, &tc, err)))
        return s;
    if (mass && (s = sf_dgpu_mass_finish(st, &mr, 0, g->defer ? l : -1, err))) return s;
    if (tapped && st->tap.done && (s = sf_dgpu_tap_layer(st, l, L, kv->Lk, Ka, kfr, logits, logits16, mass, err)))
        return s; /* the view: the window kfr, less this layer's skip */
    if (l == 0 && (s = gprobe(st, "mid.block0.self_attn.attn_out", g->o, L * D, err))) return s;
    if ((s = mm(g, L, g->o, D, &B->sa_o, g->y, D, err))) return s;
    if (l == 0 && (s = gprobe(st, "mid.block0.self_attn.out", g->y, L * D, err))) return s;

    /* gated residual, then the cross-attention's input (norm3, or x itself without it) */
    const bf16 *cin = g->x;
    if (c->cross_attn_norm) {
        if ((s = res_ln_mod(g, c, F, S, g->x, g->y, gate_attn, 6 * D, B->n3_w, B->n3_b, NULL, NULL, 0, g->a, err))) return s;
        cin = g->a;
    } else {
        prof(g, P_NORM);
        if ((s = sf_gated_add_cuda(cx, F, S, D, g->x, g->y, gate_attn, 6 * D, err))) return s;
    }
    if (l == 0 && (s = gprobe(st, "mid.block0.norm3.out", cin, L * D, err))) return s;
    if ((s = mm(g, L, cin, D, &B->ca_q, g->q, D, err))) return s;
    if (c->qk_norm && (s = rms_rope(st, L, g->q, D, B->ca_nq, 0, 0, err))) return s;
    if (l == 0 && (s = gprobe(st, "mid.block0.cross_attn.q", g->q, L * D, err))) return s;
    const bf16 *ck = g->ck + (size_t)l * c->text_len * D, *cv = g->cv + (size_t)l * c->text_len * D;
    sf_gpu_prof_mark_flops(&g->prof, cx, P_CROSS, 4.0 * (double)L * (double)c->text_len * (double)D);
    const int xtap = st->tap.wants_cross && st->tap.done && st->tap.wants_cross(st->tap.ctx, l);
    if (xtap && st->ctx_real < 1) { /* no real token: the tap reports it (as on the CPU) */
        sf_dit_attn_view vw = {l,    L,    c->text_len, (int)NH, (int)hd, NULL, NULL, D, S, NULL,
                               NULL, NULL, NULL,        NULL,    1,       0,    NULL, NULL, 0, NULL, 0, 0};
        return st->tap.done(st->tap.ctx, &vw, err);
    }
    massrun xr = {g, (int)NH, L, c->text_len, 1, st->ctx_real};
    if (xtap && (s = sf_dgpu_mass_ws(st, err))) return s;
    if ((s = sf_dgpu_attend(g, L, c->text_len, (int)NH, (int)hd, g->q, ck, cv, D, g->o, D, scale, xtap ? sf_dgpu_mass_chunk : NULL,
                    &xr, err)))
        return s;
    if (xtap) { /* the cross-attention's text-token mass, renormalised over the real tokens */
        if ((s = sf_dgpu_mass_finish(st, &xr, 1, -1, err))) return s;
        sf_dit_attn_view vw = {l, L, c->text_len, (int)NH, (int)hd, NULL, NULL, D, S, NULL, NULL, NULL,
                               g->tm_hout, g->tm_hst, 1, st->ctx_real, NULL, NULL, 0, NULL, 0, 0};
        if ((s = st->tap.done(st->tap.ctx, &vw, err))) return s;
    }
    if (l == 0 && (s = gprobe(st, "mid.block0.cross_attn.attn_out", g->o, L * D, err))) return s;
    if ((s = mm(g, L, g->o, D, &B->ca_o, g->y, D, err))) return s;
    if (l == 0 && (s = gprobe(st, "mid.block0.cross_attn.out", g->y, L * D, err))) return s;

    /* ungated cross residual, then the feed-forward's modulated LayerNorm */
    if ((s = res_ln_mod(g, c, F, S, g->x, g->y, NULL, 0, NULL, NULL, shift_ffn, scale_ffn, 6 * D, g->a, err))) return s;
    if ((s = mm_gelu(g, L, g->a, D, &B->ffn0, g->h, c->ffn_dim, err))) return s;
    if ((s = mm(g, L, g->h, c->ffn_dim, &B->ffn2, g->y, D, err))) return s;
    if (l == 0 && (s = gprobe(st, "mid.block0.ffn.out", g->y, L * D, err))) return s;

    /* gated residual, then the next consumer's modulated LayerNorm (next layer, or the head) */
    const int last = l + 1 == c->num_layers;
    const float *nE = last ? g->Hm : g->E + (size_t)(l + 1) * F * 6 * D;
    if ((s = res_ln_mod(g, c, F, S, g->x, g->y, gate_ffn, 6 * D, NULL, NULL, nE, nE + D, last ? 2 * D : 6 * D, g->a,
                        err)))
        return s;
    if (st->probe) {
        char nm[64];
        snprintf(nm, sizeof nm, "mid.block%d.out", l);
        if ((s = gprobe(st, nm, g->x, L * D, err))) return s;
    }
    return SF_OK;
}

/* Everything a forward enqueues between its input upload and its output download: what a CUDA graph
 * records (see sf_dit_cuda_forward). Input from g->xin (host_in) or the slot SF_LAT_X. */
static sf_status forward_body(sf_dit_state *st, int host_in, int F, const float *t, int64_t start_frame,
                              const sf_dit_kv_step *kv, double sigma, int x0_slot, int kv_only, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const int64_t D = c->dim, S = st->frame_tokens, L = (int64_t)F * S, FD = c->freq_dim;
    const int ph = c->patch_size[1], pw = c->patch_size[2];
    sf_cuda_ctx *cx = &g->cx;
    sf_status s;
    const int64_t nout = (int64_t)F * c->out_dim * st->lat_h * st->lat_w;
    /* 1. patch embedding */
    prof(g, P_IO);
    const float *xin = host_in ? g->xin : g->lat[SF_LAT_X];
    if ((s = sf_patchify_cuda(cx, xin, F, c->in_dim, st->lat_h, st->lat_w, ph, pw, g->patches, err))) return s;
    if ((s = mm(g, L, g->patches, (int64_t)c->in_dim * ph * pw, &g->patch, g->x, D, err))) return s;
    /* 2. time embedding: the fp64 sinusoid by a kernel that gets t as its arguments (no copy, no sync) */
    prof(g, P_IO);
    if ((s = sf_timestep_embed_cuda(cx, t, F, (int)FD, g->freq, g->sinus, err))) return s;
    if ((s = mm(g, F, g->sinus, FD, &g->tim0, g->et, D, err))) return s;
    prof(g, P_IO);
    if ((s = sf_silu_cuda(cx, g->et, F * D, err))) return s;
    if ((s = mm(g, F, g->et, D, &g->tim2, g->e, D, err))) return s;
    prof(g, P_IO);
    if ((s = sf_cuda_copy_d2d(cx, g->et, g->e, (size_t)(F * D) * 2, err))) return s;
    if ((s = sf_silu_cuda(cx, g->et, F * D, err))) return s;
    if ((s = mm(g, F, g->et, D, &g->tproj, g->e0, 6 * D, err))) return s;
    if ((s = gprobe(st, "mid.time_embedding", g->e, F * D, err))) return s;
    if ((s = gprobe(st, "mid.time_projection", g->e0, F * 6 * D, err))) return s;
    /* every layer's modulation table E_l = ⌊mod_l + e0⌉ and the head's Hm = ⌊head.modulation + e⌉ (not e0) */
    prof(g, P_IO);
    for (int l = 0; l < c->num_layers; l++)
        if ((s = sf_mod_table_cuda(cx, F, 6 * D, g->L[l].mod, g->e0, 6 * D, 6 * D, g->E + (size_t)l * F * 6 * D, err)))
            return s;
    if ((s = sf_mod_table_cuda(cx, F, 2 * D, g->head_mod, g->e, D, D, g->Hm, err))) return s;
    /* 3. blocks: layer 0's modulated LayerNorm here, every later one fused into the residual before it */
    if ((s = ln_mod(g, c, F, S, g->x, NULL, NULL, g->E, g->E + D, 6 * D, g->a, err))) return s;
    const int64_t *kfr = st->key_frames + kv->lo / S;
    /* frames-mode taps are delivered at the forward's end (one wait), unless a cross-attention tap is
     * wanted: those are delivered as they come, and the self-attention's keep their place among them */
    g->n_def = 0;
    g->defer = st->tap.wants_means != NULL && st->tap.done != NULL;
    for (int l = 0; g->defer && st->tap.wants_cross && l < c->num_layers; l++)
        if (st->tap.wants_cross(st->tap.ctx, l)) g->defer = 0;
    for (int l = 0; l < c->num_layers; l++) /* a stop signal is honoured per layer (host side) */
        if ((s = sf_stop_check(err)) ||
            (s = layer(st, l, F, start_frame, kv, kfr, sf_dit_kv_only_layer(st, l, kv_only), err)))
            return s;
    /* (deferred frames- and probs-mode views: sf_dit_cuda_forward delivers them once the forward has run) */
    if (kv_only) return SF_OK; /* no head, no prediction */
    /* 4. head (g->a = ⌊LN(x)·⌊1+Hm1⌉ + Hm0⌉ from the last layer's residual step) */
    if ((s = mm(g, L, g->a, D, &g->head, g->hout, g->head.n, err))) return s;
    if ((s = gprobe(st, "mid.head_out", g->hout, L * g->head.n, err))) return s;
    prof(g, P_IO);
    if ((s = sf_unpatchify_cuda(cx, g->hout, F, c->out_dim, st->lat_h, st->lat_w, ph, pw, g->flow, err))) return s;
    if (x0_slot >= 0 && (s = sf_flow_to_x0_cuda(cx, xin, g->flow, nout, sigma, g->lat[x0_slot], err))) return s;
    prof(g, P_IO);
    return SF_OK;
}

/* ---------------------------------------------------------------- CUDA graphs */

/* A forward's work is captured into a CUDA graph and launched as one (kernels/cuda_graph.h) when
 *  - graphs are on ($SF_CUDA_GRAPHS=0 turns them off; so do 3 failed captures, with a warning),
 *  - nothing reads the device between its operations: no probe, no profiling, no logits or cross-
 *    attention tap (frames and probs modes copy each layer's aggregates into pinned memory and deliver
 *    them after the forward; logits go out chunk by chunk, cross taps layer by layer), and
 *  - its shape is warm: a forward of the same (queries, keys) ran before, or sf_dit_prepare prepared
 *    it — whatever the first forward of a shape makes on first use (cuDNN plans, workspaces, the
 *    fused attention's self-check) allocates or waits, which a capture may not.
 * The graph is keyed by what changes the work's shape (frames, a cache-only pass, a cache roll, a
 * prediction slot, taps); the key's executable graph is updated with each forward's arguments. A capture
 * that fails is discarded and the same forward enqueued directly: nothing ran, and the enqueueing
 * changes no host state the second pass depends on. Exact: test_dit_cuda `graphs` (graphs on = off,
 * bit for bit).
 * A prepared shape's first forward of each variant is the first execution of its cuDNN plans and
 * kernels. Should a library load or allocate there, its capture fails once per shape: that capture is
 * not held against graphs (no strike towards the 3), since the direct run that follows does the first-use
 * work and the next capture of the shape is a fair test (test_dit_cuda `graphs`, the emulation's
 * first-use faults). */
static int warm_find(const sf_dit_gpu *g, int64_t L, int64_t Lk) {
    for (int i = 0; i < g->n_warm; i++)
        if (g->warm[i].L == L && g->warm[i].Lk == Lk) return i;
    return -1;
}

static int graph_shape_warm(const sf_dit_gpu *g, int64_t L, int64_t Lk) { return warm_find(g, L, Lk) >= 0; }

/* variant < 0: prepared only; else a forward of that variant ran (directly or as a graph) */
static void graph_shape_add(sf_dit_gpu *g, int64_t L, int64_t Lk, int variant) {
    int i = warm_find(g, L, Lk);
    if (i < 0) {
        if (g->n_warm == SF_DIT_WARM_MAX) return;
        i = g->n_warm++;
        g->warm[i].L = L, g->warm[i].Lk = Lk, g->warm[i].ran = 0;
    }
    if (variant >= 0) g->warm[i].ran |= 1ull << variant;
}

static int graph_variant_ran(const sf_dit_gpu *g, int64_t L, int64_t Lk, int variant) {
    const int i = warm_find(g, L, Lk);
    return i >= 0 && (g->warm[i].ran >> variant & 1u);
}

/* 0: no graph; 1: a graph; 2: a graph with tapped layers (other work: its own key) */
static int graph_wanted(const sf_dit_state *st, int64_t L, int64_t Lk) {
    const sf_dit_gpu *g = st->gpu;
    const sf_dit_tap *tp = &st->tap;
    int tapped = 0;
    if (!g->graphs || g->graphs_off || st->probe || g->prof.ev || !graph_shape_warm(g, L, Lk)) return 0;
    for (int l = 0; tp->wants && l < st->w->cfg.num_layers; l++) {
        if (tp->wants_cross && tp->done && tp->wants_cross(tp->ctx, l)) return 0;
        if (!tp->wants(tp->ctx, l)) continue;
        /* frames- and probs-mode taps stay on the device until the forward's end (sf_dgpu_tap_flush): a graph
           may hold them; logits go out chunk by chunk */
        if (!(tp->wants_means && tp->done &&
              (tp->wants_means(tp->ctx, l) || (tp->wants_mass && tp->wants_mass(tp->ctx, l)))))
            return 0;
        tapped = 1;
    }
    return 1 + tapped;
}

sf_status sf_dit_cuda_forward(sf_dit_state *st, const float *x_t, int F, const float *t, int64_t start_frame,
                              const sf_dit_kv_step *kv, float *flow, double sigma, int x0_slot, int kv_only,
                              sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const int64_t L = (int64_t)F * st->frame_tokens, plane = (int64_t)st->lat_h * st->lat_w;
    sf_status s;
    if (x_t && (s = sf_cuda_copy_h2d(&g->cx, g->xin, x_t, sizeof(float) * (size_t)(F * c->in_dim * plane), err)))
        return s;
    const int64_t *kfr = st->key_frames + kv->lo / st->frame_tokens;
    /* --kv-compress's last compression (before this forward) recorded for the views of a tapped one */
    if (st->tap.done && (s = sf_dit_settle(st, -1, err))) return s;
    const int want = graph_wanted(st, L, kv->Lk);
    /* the key's bits above the frame count: cache-only pass, cache roll, prediction slot, tapped layers, kept queries,
       --pc-budget's compression */
    const int variant = (kv_only != 0) | (kv->evict > 0 && kv->keep > 0) << 1 | (x0_slot >= 0) << 2 | (want == 2) << 3 |
                        (st->kvc_tokens > 0 || st->pc_budget > 0) << 4 | (kv->pc != 0) << 5;
    if (want) {
        const uint64_t key = (uint64_t)F | (uint64_t)variant << 32;
        sf_err ge = {{0}};
        s = sf_cuda_graph_begin(&g->cx, &ge);
        if (!s) {
            g->capturing = 1;
            s = forward_body(st, x_t != NULL, F, t, start_frame, kv, sigma, x0_slot, kv_only, err);
            g->capturing = 0;
            sf_status e2 = sf_cuda_graph_end(&g->cx, g->graphs, key, s == SF_OK, &ge);
            if (s == SF_E_STOPPED) return s;
            if (!s) s = e2;
            else ge = *err;
        }
        if (!s) goto out;
        /* nothing of this forward ran: enqueue it directly */
        if (!graph_variant_ran(g, L, kv->Lk, variant)) {
            sf_log(SF_LOG_DEBUG, "sf-denoise: first forward of %lld queries x %lld keys (variant %d) without a CUDA graph: %s",
                   (long long)L, (long long)kv->Lk, variant, ge.msg);
        } else if (++g->graph_fails >= 3) {
            sf_log(SF_LOG_WARN, "sf-denoise: CUDA graphs off after %d failed captures (last: %s)", g->graph_fails, ge.msg);
            g->graphs_off = 1;
        } else {
            sf_log(SF_LOG_DEBUG, "sf-denoise: forward without a CUDA graph: %s", ge.msg);
        }
    }
    if ((s = forward_body(st, x_t != NULL, F, t, start_frame, kv, sigma, x0_slot, kv_only, err))) return s;
out:
    graph_shape_add(g, L, kv->Lk, variant); /* warm, and this variant has run */
    if ((s = sf_dit_settle(st, -1, err))) return s; /* a compression's record on the host (waits, when there was one) */
    if ((s = sf_dgpu_tap_flush(st, L, kv->Lk, kfr, err))) return s; /* frames-mode views, after one wait */
    if (flow && !kv_only &&
        (s = sf_cuda_copy_d2h(&g->cx, flow, g->flow, sizeof(float) * (size_t)(F * c->out_dim * plane), err)))
        return s;
    return prof_collect(g, err);
}

void sf_dit_cuda_graph_stats(const sf_dit_state *st, sf_cuda_graph_stats *out) {
    sf_cuda_graph_stats_get(st->gpu ? st->gpu->graphs : NULL, out);
}

/* ---------------------------------------------------------------- sampling-loop slots */

/* Copy n host floats into the next pinned staging buffer (after the copy that last read it has
 * run) and enqueue its upload to dev; the host does not wait for the upload. */
static sf_status stage_up(sf_dit_gpu *g, float *dev, const float *host, int64_t n, sf_err *err) {
    const int i = g->stage_next;
    sf_status s = sf_cuda_event_sync(g->stage_ev, i, err);
    if (s) return s;
    memcpy(g->stage[i], host, sizeof(float) * (size_t)n);
    if ((s = sf_cuda_copy_h2d_async(&g->cx, dev, g->stage[i], sizeof(float) * (size_t)n, err))) return s;
    g->stage_next = 1 - i;
    return sf_cuda_event_record(&g->cx, g->stage_ev, i, err);
}

sf_status sf_dit_cuda_lat_put(sf_dit_state *st, int slot, const float *host, int64_t n, sf_err *err) {
    return stage_up(st->gpu, st->gpu->lat[slot], host, n, err);
}

sf_status sf_dit_cuda_lat_get(sf_dit_state *st, int slot, float *host, int64_t n, sf_err *err) {
    return sf_cuda_copy_d2h(&st->gpu->cx, host, st->gpu->lat[slot], sizeof(float) * (size_t)n, err);
}

sf_status sf_dit_cuda_lat_get_begin(sf_dit_state *st, int slot, float *host, int64_t n, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    sf_status s = sf_cuda_copy_d2h_async(&g->cx, g->out_pin, g->lat[slot], sizeof(float) * (size_t)n, err);
    if (!s) s = sf_cuda_event_record(&g->cx, g->out_ev, 0, err);
    if (!s) g->out_host = host, g->out_n = n;
    return s;
}

sf_status sf_dit_cuda_lat_get_end(sf_dit_state *st, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    if (!g->out_host) return SF_OK;
    sf_status s = sf_cuda_event_sync(g->out_ev, 0, err);
    if (!s) memcpy(g->out_host, g->out_pin, sizeof(float) * (size_t)g->out_n);
    g->out_host = NULL;
    return s;
}

sf_status sf_dit_cuda_lat_copy(sf_dit_state *st, int dst, int src, int64_t n, sf_err *err) {
    return sf_cuda_copy_d2d(&st->gpu->cx, st->gpu->lat[dst], st->gpu->lat[src], sizeof(float) * (size_t)n, err);
}

/* x = (1 − σ)·x0 + σ·eps. The draw lands in the flow buffer (stream order: after the flow → x0 that
 * read it; the next forward overwrites it), so no slot is disturbed. */
sf_status sf_dit_cuda_renoise(sf_dit_state *st, const float *eps, int64_t n, float sigma, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    sf_status s = stage_up(g, g->flow, eps, n, err);
    return s ? s : sf_add_noise_cuda(&g->cx, g->lat[SF_LAT_X0], g->flow, n, sigma, g->lat[SF_LAT_X], err);
}

sf_status sf_dit_cuda_prepare(sf_dit_state *st, int64_t Lq, int64_t Lk, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const int64_t D = c->dim;
    const int H = c->num_heads, d = (int)(D / H);
    sf_status s;
    if (g->sdpa && !g->sdpa_off) {
        sf_err e2 = {0};
        s = sf_sdpa_prepare(g->sdpa, Lq, Lk, H, d, D, 2 * D, D, &e2); /* self: K|V cache rows of 2D */
        if (!s) s = sf_sdpa_prepare(g->sdpa, Lq, c->text_len, H, d, D, D, D, &e2); /* cross */
        if (s == SF_E_UNSUPPORTED) {
            sf_log(SF_LOG_WARN, "sf-denoise: %s; attention uses %s", e2.msg,
                   g->own_attn_off ? "cuBLASLt" : "sfpipe's fused kernel");
            g->sdpa_off = 1;
        } else if (s) {
            *err = e2;
            return s;
        }
    }
    /* the fused kernel's self-check, before the loop, when a run will use it: no cuDNN, or a tap that asks
       for probability masses in some layer (frames and logits taps never run it) */
    int mass_wanted = 0;
    for (int l = 0; st->tap.wants && st->tap.wants_mass && l < c->num_layers && !mass_wanted; l++)
        mass_wanted = st->tap.wants_mass(st->tap.ctx, l);
    const int uses_own = !g->sdpa || g->sdpa_off || (mass_wanted && !g->mass_explicit);
    int own = !g->own_attn_off;
    if (D % 8 != 0) own = 0;
    else if (uses_own && (s = sf_dgpu_fused_ok(g, d, &own, err))) return s;
    /* the explicit path's logits workspace (H x chunk x Lk_max, f32 + two 16-bit copies: ~2 GiB at full size),
       made here only when the run will read logits: a logits tap, a cross-attention tap, probability taps
       without the fused kernel, or no fused attention at all. Frames mode (per-frame means) and fused
       probability taps never touch it; a shape a fused path refuses later makes it on first use. */
    const sf_dit_tap *tp = &st->tap;
    int logits_read = 0;
    for (int l = 0; tp->wants && l < c->num_layers && !logits_read; l++) { /* any forward of the run */
        const int cross = tp->wants_cross && tp->done && (tp->may_want ? tp->may_want(tp->ctx, l, 1) : 1);
        const int self = tp->may_want ? tp->may_want(tp->ctx, l, 0) : 1;
        const int means = tp->wants_means && tp->wants_means(tp->ctx, l);
        const int probs = tp->wants_mass && tp->wants_mass(tp->ctx, l);
        logits_read = cross || (self && probs && (g->mass_explicit || !own)) || (self && !means && !probs);
    }
    if (logits_read || ((!g->sdpa || g->sdpa_off) && !own)) {
        if ((s = sf_dgpu_explicit_ws(g, H, err))) return s;
    }
    if (st->tap.wants && (st->tap.wants_mass || st->tap.wants_cross) && (s = sf_dgpu_mass_ws(st, err))) return s;
    if (st->tap.wants && (s = sf_dgpu_tap_bufs(st, err))) return s;
    graph_shape_add(g, Lq, Lk, -1); /* what this shape's first forward would have made on first use is made */
    return SF_OK;
}
