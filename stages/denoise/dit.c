/* dit.c — causal Wan DiT inference forward on the CPU (see dit.h).
 * Mirrors wan/modules/causal_model.py: CausalWanModel._forward_inference, CausalWanAttentionBlock,
 * CausalWanSelfAttention (KV cache + eviction), WanT2VCrossAttention (crossattn_cache), CausalHead;
 * float32 everywhere (the golden reference), fp64 sinusoid and RoPE.
 * Tested by tests/unit/test_dit.c (every dit_forward intermediate), test_dit_pipeline.c and
 * test_dit_longvideo.c (rolling KV cache vs global attention and a brute-force key-frame list). */
#define _POSIX_C_SOURCE 200809L
#include "dit.h"
#include "stop.h"
#include "scheduler.h"
#include "dit_cuda.h"
#include "dit_fp8.h"
#include "act.h"
#include "attention.h"
#include "gemm.h"
#include "modulate.h"
#include "norm_rows.h"
#include "patch.h"
#include "timestep_embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- weights */

typedef struct loader {
    const sf_tfile *base, *ckpt;
    const char *key;
    sf_dit_weights *w;
    unsigned char *used; /* (ckpt->n) 1 = consumed */
} loader;

static sf_status find_tensor(loader *ld, const char *name, const sf_tensor **out, char *full, size_t fn,
                             sf_err *err) {
    if (ld->ckpt) {
        snprintf(full, fn, "%s/model.%s", ld->key, name);
        const sf_tensor_entry *e = sf_tfile_find(ld->ckpt, full);
        if (!e)
            return sf_fail(err, SF_E_NOTFOUND, "%s: checkpoint entry '%s' lacks tensor 'model.%s'",
                           ld->ckpt->path, ld->key, name);
        ld->used[e - ld->ckpt->entries] = 1;
        *out = &e->t;
    } else {
        snprintf(full, fn, "%s", name);
        *out = sf_tfile_get(ld->base, name);
        if (!*out) return sf_fail(err, SF_E_NOTFOUND, "%s: missing tensor '%s'", ld->base->path, name);
    }
    return SF_OK;
}

static sf_status check_shape(const sf_tensor *t, const char *full, int nd, const int64_t *shape, sf_err *err) {
    if (sf_shape_eq(t, nd, shape)) return SF_OK;
    char got[128], want[128] = "[";
    for (int i = 0; i < nd; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "", (long long)shape[i]);
    strncat(want, "]", sizeof want - strlen(want) - 1);
    return sf_fail(err, SF_E_SHAPE, "tensor '%s' has shape %s, expected %s", full, sf_shape_str(t, got, sizeof got),
                   want);
}

static sf_status load_mat(loader *ld, const char *name, int nd, const int64_t *shape, sf_dit_mat *m, sf_err *err) {
    const sf_tensor *t;
    char full[512];
    sf_status s = find_tensor(ld, name, &t, full, sizeof full, err);
    if (s) return s;
    if ((s = check_shape(t, full, nd, shape, err))) return s;
    if (t->dtype != SF_F32 && t->dtype != SF_BF16 && t->dtype != SF_F16)
        return sf_fail(err, SF_E_UNSUPPORTED, "tensor '%s': dtype %s not supported (f32, bf16, f16)", full,
                       sf_dtype_name(t->dtype));
    if (!sf_tensor_is_contiguous(t)) return sf_fail(err, SF_E_FORMAT, "tensor '%s' is not contiguous", full);
    m->w = t->data;
    m->dt = t->dtype;
    m->n = shape[0];
    m->k = sf_tensor_numel(t) / shape[0];
    ld->w->n_params += sf_tensor_numel(t);
    return SF_OK;
}

static sf_status load_vec(loader *ld, const char *name, int nd, const int64_t *shape, float **out, sf_err *err) {
    const sf_tensor *t;
    char full[512];
    sf_status s = find_tensor(ld, name, &t, full, sizeof full, err);
    if (s) return s;
    if ((s = check_shape(t, full, nd, shape, err))) return s;
    if (t->dtype != SF_F32 && t->dtype != SF_BF16 && t->dtype != SF_F16 && t->dtype != SF_F64)
        return sf_fail(err, SF_E_UNSUPPORTED, "tensor '%s': dtype %s not supported", full, sf_dtype_name(t->dtype));
    sf_dit_weights *w = ld->w;
    int64_t n = sf_tensor_numel(t);
    float *v = sf_calloc2((size_t)n, sizeof(float));
    if (!v) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_tensor_to_f32(t, v);
    if ((s = sf_dit_weights_own(w, v, err))) return s;
    w->n_params += n;
    *out = v;
    return SF_OK;
}

sf_status sf_dit_weights_own(sf_dit_weights *w, void *p, sf_err *err) {
    if (w->n_owned == w->cap_owned) {
        size_t nc = w->cap_owned ? 2 * w->cap_owned : 64;
        void **o = realloc(w->owned, nc * sizeof *o);
        if (!o) return free(p), sf_fail(err, SF_E_NOMEM, "out of memory");
        w->owned = o;
        w->cap_owned = nc;
    }
    w->owned[w->n_owned++] = p;
    return SF_OK;
}

#define MAT(name, m, ...)                                                                  \
    do {                                                                                   \
        const int64_t sh_[] = {__VA_ARGS__};                                               \
        if ((s = load_mat(&ld, name, (int)(sizeof sh_ / sizeof sh_[0]), sh_, m, err))) goto fail; \
    } while (0)
#define VEC(name, p, ...)                                                                  \
    do {                                                                                   \
        const int64_t sh_[] = {__VA_ARGS__};                                               \
        if ((s = load_vec(&ld, name, (int)(sizeof sh_ / sizeof sh_[0]), sh_, p, err))) goto fail; \
    } while (0)

sf_status sf_dit_weights_load(sf_dit_weights *w, const sf_dit_config *cfg, const sf_tfile *base,
                              const sf_tfile *ckpt, const char *ckpt_key, sf_err *err) {
    sf_status s = SF_OK;
    memset(w, 0, sizeof *w);
    w->cfg = *cfg;
    loader ld = {base, ckpt, ckpt_key ? ckpt_key : "generator", w, NULL};
    if (!ckpt && !base) return sf_fail(err, SF_E_ARG, "dit: no weights given");
    if (ckpt && !(ld.used = calloc(ckpt->n + 1, 1))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    int64_t D = cfg->dim, FF = cfg->ffn_dim, pt = cfg->patch_size[0], ph = cfg->patch_size[1],
            pw = cfg->patch_size[2];
    if (pt != 1) { s = sf_fail(err, SF_E_UNSUPPORTED, "dit: temporal patch size %lld not supported", (long long)pt); goto fail; }
    if (D % cfg->num_heads) { s = sf_fail(err, SF_E_FORMAT, "dit: dim %lld not divisible by heads", (long long)D); goto fail; }
    char nm[256];
    MAT("patch_embedding.weight", &w->patch, D, cfg->in_dim, pt, ph, pw);
    VEC("patch_embedding.bias", &w->patch_b, D);
    MAT("text_embedding.0.weight", &w->txt0, D, cfg->text_dim);
    VEC("text_embedding.0.bias", &w->txt0_b, D);
    MAT("text_embedding.2.weight", &w->txt2, D, D);
    VEC("text_embedding.2.bias", &w->txt2_b, D);
    MAT("time_embedding.0.weight", &w->tim0, D, cfg->freq_dim);
    VEC("time_embedding.0.bias", &w->tim0_b, D);
    MAT("time_embedding.2.weight", &w->tim2, D, D);
    VEC("time_embedding.2.bias", &w->tim2_b, D);
    MAT("time_projection.1.weight", &w->tproj, 6 * D, D);
    VEC("time_projection.1.bias", &w->tproj_b, 6 * D);
    w->layers = sf_calloc2((size_t)cfg->num_layers, sizeof *w->layers);
    if (!w->layers) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto fail; }
    for (int l = 0; l < cfg->num_layers; l++) {
        sf_dit_layer *L = &w->layers[l];
#define N(suffix) (snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix), nm)
        VEC(N("modulation"), &L->modulation, 1, 6, D);
        const char *att[2] = {"self_attn", "cross_attn"};
        for (int a = 0; a < 2; a++) {
            sf_dit_mat *m[4] = {a ? &L->ca_q : &L->sa_q, a ? &L->ca_k : &L->sa_k, a ? &L->ca_v : &L->sa_v,
                                a ? &L->ca_o : &L->sa_o};
            float **b[4] = {a ? &L->ca_qb : &L->sa_qb, a ? &L->ca_kb : &L->sa_kb, a ? &L->ca_vb : &L->sa_vb,
                            a ? &L->ca_ob : &L->sa_ob};
            const char *pn[4] = {"q", "k", "v", "o"};
            char sub[64];
            for (int i = 0; i < 4; i++) {
                snprintf(sub, sizeof sub, "%s.%s.weight", att[a], pn[i]);
                MAT(N(sub), m[i], D, D);
                snprintf(sub, sizeof sub, "%s.%s.bias", att[a], pn[i]);
                VEC(N(sub), b[i], D);
            }
            if (cfg->qk_norm) {
                snprintf(sub, sizeof sub, "%s.norm_q.weight", att[a]);
                VEC(N(sub), a ? &L->ca_nq : &L->sa_nq, D);
                snprintf(sub, sizeof sub, "%s.norm_k.weight", att[a]);
                VEC(N(sub), a ? &L->ca_nk : &L->sa_nk, D);
            }
        }
        if (cfg->cross_attn_norm) {
            VEC(N("norm3.weight"), &L->n3_w, D);
            VEC(N("norm3.bias"), &L->n3_b, D);
        }
        MAT(N("ffn.0.weight"), &L->ffn0, FF, D);
        VEC(N("ffn.0.bias"), &L->ffn0_b, FF);
        MAT(N("ffn.2.weight"), &L->ffn2, D, FF);
        VEC(N("ffn.2.bias"), &L->ffn2_b, D);
#undef N
    }
    VEC("head.modulation", &w->head_mod, 1, 2, D);
    MAT("head.head.weight", &w->head, cfg->out_dim * pt * ph * pw, D);
    VEC("head.head.bias", &w->head_b, cfg->out_dim * pt * ph * pw);
    if (ckpt) { /* every checkpoint tensor of this key must have been used (strict load) */
        size_t kl = strlen(ld.key), n_key = 0;
        for (size_t i = 0; i < ckpt->n; i++) {
            const char *e = ckpt->entries[i].name;
            if (strncmp(e, ld.key, kl) || e[kl] != '/') continue;
            n_key++;
            if (!ld.used[i]) {
                s = sf_fail(err, SF_E_FORMAT, "%s: unexpected tensor '%s' (not a parameter of this model)",
                            ckpt->path, e);
                goto fail;
            }
        }
        if (n_key == 0) {
            s = sf_fail(err, SF_E_NOTFOUND, "%s: no checkpoint entry '%s'", ckpt->path, ld.key);
            goto fail;
        }
    }
    free(ld.used);
    return SF_OK;
fail:
    free(ld.used);
    sf_dit_weights_free(w);
    return s;
}

void sf_dit_weights_free(sf_dit_weights *w) {
    for (size_t i = 0; i < w->n_owned; i++) free(w->owned[i]);
    free(w->owned);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------- state */

/* The KV caches (12 GiB at full size): zeroed pages the kernel hands out lazily (calloc). */
static float *falloc(int64_t n, int *bad) {
    float *p = sf_calloc2((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!p) *bad = 1;
    return p;
}

/* Activations, the GEMMs' operands: zeroed and on 64-byte lines (a 16-byte-aligned source made oneDNN's
 * AMX products slower: the bf16 480-token layer 55.5-58.4 -> 53.7-55.0 ms); free() releases them. */
static float *aalloc(int64_t n, int *bad) {
    const size_t e = (size_t)(n > 0 ? n : 1);
    float *p = sf_malloc64(e, sizeof(float));
    if (p) memset(p, 0, e * sizeof(float));
    else *bad = 1;
    return p;
}

sf_status sf_dit_state_init(sf_dit_state *st, const sf_dit_weights *w, int max_frames, int lat_h, int lat_w,
                            int64_t cache_frames, long local_attn_size, long sink_size, int nthreads, sf_err *err) {
    return sf_dit_state_init_on(st, w, max_frames, lat_h, lat_w, cache_frames, local_attn_size, sink_size, nthreads,
                                -1, err);
}

static int rope_table_rows(const sf_dit_state *st, int rope_frames);

sf_status sf_dit_state_init_on(sf_dit_state *st, const sf_dit_weights *w, int max_frames, int lat_h, int lat_w,
                               int64_t cache_frames, long local_attn_size, long sink_size, int nthreads,
                               int cuda_ordinal, sf_err *err) {
    return sf_dit_state_init_rope(st, w, max_frames, lat_h, lat_w, cache_frames, local_attn_size, sink_size, nthreads,
                                  cuda_ordinal, SF_DIT_ROPE_FRAMES, err);
}

sf_status sf_dit_state_init_rope(sf_dit_state *st, const sf_dit_weights *w, int max_frames, int lat_h, int lat_w,
                                 int64_t cache_frames, long local_attn_size, long sink_size, int nthreads,
                                 int cuda_ordinal, int rope_frames, sf_err *err) {
    memset(st, 0, sizeof *st);
    if (rope_frames < max_frames || rope_frames > SF_DIT_ROPE_FRAMES_MAX)
        return sf_fail(err, SF_E_ARG, "RoPE table of %d frames (needs %d..%d)", rope_frames, max_frames,
                       SF_DIT_ROPE_FRAMES_MAX);
    const sf_dit_config *c = &w->cfg;
    int ph = c->patch_size[1], pw = c->patch_size[2];
    if (max_frames < 1 || lat_h < 1 || lat_w < 1 || lat_h % ph || lat_w % pw)
        return sf_fail(err, SF_E_ARG, "latent %dx%d is not a positive multiple of the patch size %dx%d", lat_h, lat_w,
                       ph, pw);
    if (cache_frames < max_frames)
        return sf_fail(err, SF_E_ARG, "KV cache of %lld frames is smaller than a block of %d frames",
                       (long long)cache_frames, max_frames);
    if (local_attn_size != -1 && local_attn_size != cache_frames)
        return sf_fail(err, SF_E_ARG, "a rolling KV cache holds local_attn_size %ld frames, not %lld", local_attn_size,
                       (long long)cache_frames);
    if (local_attn_size != -1 && sink_size >= 0 && sink_size + max_frames > cache_frames)
        return sf_fail(err, SF_E_ARG, "sink_size %ld + block of %d frames does not fit a %lld-frame cache", sink_size,
                       max_frames, (long long)cache_frames);
    st->w = w;
    st->max_frames = max_frames;
    st->lat_h = lat_h;
    st->lat_w = lat_w;
    st->frame_tokens = (int64_t)(lat_h / ph) * (lat_w / pw);
    st->cache_tokens = cache_frames * st->frame_tokens;
    st->local_attn_size = local_attn_size;
    st->sink_tokens = (sink_size > 0 ? sink_size : 0) * st->frame_tokens;
    st->nthreads = nthreads < 1 ? 1 : nthreads;
    int64_t D = c->dim, L = (int64_t)max_frames * st->frame_tokens, NL = c->num_layers;
    size_t tot;
    if (!sf_mul_ok((size_t)st->cache_tokens, (size_t)D, &tot) || !sf_mul_ok(tot, 2 * (size_t)NL, &tot))
        return sf_fail(err, SF_E_NOMEM, "KV cache size overflows");
    if (cuda_ordinal >= 0) { /* GPU: only the cache plan and the RoPE table stay on the host */
        st->key_frames = calloc((size_t)cache_frames, sizeof(int64_t));
        if (!st->key_frames) return sf_fail(err, SF_E_NOMEM, "out of memory");
        sf_status s = sf_rope_table_init(&st->rope, (int)(D / c->num_heads), rope_table_rows(st, rope_frames), err);
        if (!s) s = sf_dit_cuda_init(st, cuda_ordinal, err);
        if (s) sf_dit_state_free(st);
        return s;
    }
    (void)L;
    int bad = 0;
    st->kc = calloc((size_t)NL, sizeof(float *));
    st->vc = calloc((size_t)NL, sizeof(float *));
    st->ck = calloc((size_t)NL, sizeof(float *));
    st->cv = calloc((size_t)NL, sizeof(float *));
    if (!st->kc || !st->vc || !st->ck || !st->cv) bad = 1;
    for (int64_t l = 0; l < NL && !bad; l++) {
        st->kc[l] = falloc(st->cache_tokens * D, &bad);
        st->vc[l] = falloc(st->cache_tokens * D, &bad);
        st->ck[l] = falloc((int64_t)c->text_len * D, &bad);
        st->cv[l] = falloc((int64_t)c->text_len * D, &bad);
    }
    st->key_frames = calloc((size_t)cache_frames, sizeof(int64_t));
    if (!st->key_frames) bad = 1;
    st->ctx = aalloc((int64_t)c->text_len * D, &bad);
    st->txt_tmp = aalloc((int64_t)c->text_len * (D > c->text_dim ? D : c->text_dim), &bad);
    if (w->fp8) {
        sf_status s8 = sf_dit_fp8_cpu_ready(w, err);
        if (s8) {
            sf_dit_state_free(st);
            return s8;
        }
        int64_t xq = L * (D > c->ffn_dim ? D : c->ffn_dim);
        st->xq.q = aalloc(xq > (int64_t)c->text_len * D ? xq : (int64_t)c->text_len * D, &bad);
    }
    st->x = aalloc(L * D, &bad);
    st->a = aalloc(L * D, &bad);
    st->q = aalloc(L * D, &bad);
    st->k = aalloc(L * D, &bad);
    st->v = aalloc(L * D, &bad);
    st->o = aalloc(L * D, &bad);
    st->y = aalloc(L * D, &bad);
    st->h = aalloc(L * c->ffn_dim, &bad);
    st->patches = aalloc(L * c->in_dim * ph * pw, &bad);
    st->hout = aalloc(L * c->out_dim * ph * pw, &bad);
    st->sinus = sf_calloc2((size_t)max_frames * (size_t)c->freq_dim, sizeof(double));
    if (!st->sinus) bad = 1;
    st->sinf = aalloc((int64_t)max_frames * c->freq_dim, &bad);
    st->e = aalloc((int64_t)max_frames * D, &bad);
    st->et = aalloc((int64_t)max_frames * D, &bad);
    st->e0 = aalloc((int64_t)max_frames * 6 * D, &bad);
    st->E = aalloc((int64_t)max_frames * 6 * D, &bad);
    st->Hm = aalloc((int64_t)max_frames * 2 * D, &bad);
    const int64_t lat_n = (int64_t)max_frames * (c->in_dim > c->out_dim ? c->in_dim : c->out_dim) * lat_h * lat_w;
    for (int i = 0; i < SF_LAT_N; i++) st->lat[i] = aalloc(lat_n, &bad);
    st->lat_flow = aalloc(lat_n, &bad);
    if (bad) {
        sf_dit_state_free(st);
        return sf_fail(err, SF_E_NOMEM, "out of memory allocating the DiT state (KV cache %.1f GB)",
                       (double)tot * 4 / 1e9);
    }
    sf_status s = sf_rope_table_init(&st->rope, (int)(D / c->num_heads), rope_table_rows(st, rope_frames), err);
    if (!s) { /* the GEMMs' and attentions' work memory for the largest K and key window, once */
        int64_t K = D > c->ffn_dim ? D : c->ffn_dim, Lk = st->cache_tokens > c->text_len ? st->cache_tokens : c->text_len;
        if (c->text_dim > K) K = c->text_dim;
        if (c->freq_dim > K) K = c->freq_dim;
        if ((int64_t)c->in_dim * ph * pw > K) K = (int64_t)c->in_dim * ph * pw;
        size_t g = sf_gemm_cpu_scratch(K), at = sf_attention_cpu_scratch(Lk, (int)(D / c->num_heads));
        s = sf_scratch_init(&st->ws, st->nthreads, g > at ? g : at, err);
    }
    if (s) {
        sf_dit_state_free(st);
        return s;
    }
    return SF_OK;
}

void sf_dit_state_free(sf_dit_state *st) {
    sf_dit_kv_compress_free(st);
    sf_dit_pc_free(st);
    sf_dit_cuda_free(st);
    int NL = st->w ? st->w->cfg.num_layers : 0;
    for (int l = 0; l < NL; l++) {
        if (st->kc) free(st->kc[l]);
        if (st->vc) free(st->vc[l]);
        if (st->ck) free(st->ck[l]);
        if (st->cv) free(st->cv[l]);
    }
    free(st->kc);
    free(st->vc);
    free(st->ck);
    free(st->cv);
    float *bufs[] = {st->ctx, st->txt_tmp, st->xq.q, st->x, st->a, st->q, st->k, st->v, st->o, st->y, st->h,
                     st->patches, st->hout, st->sinf, st->e, st->et, st->e0, st->E, st->Hm,
                     st->lat[0], st->lat[1], st->lat[2], st->lat_flow};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(st->sinus);
    free(st->key_frames);
    free(st->ablate_layer);
    free(st->sink_orig);
    sf_scratch_free(&st->ws);
    sf_rope_table_free(&st->rope);
    memset(st, 0, sizeof *st);
}

sf_status sf_dit_set_ablation(sf_dit_state *st, int frames, const int *layers, int nl, sf_err *err) {
    const int NL = st->w->cfg.num_layers;
    if (frames < 0) return sf_fail(err, SF_E_ARG, "sink ablation: %d frames", frames);
    if (frames > 0 && st->key_select) return sf_fail(err, SF_E_ARG, "sink ablation cannot be combined with key_select");
    for (int i = 0; i < nl; i++)
        if (layers[i] < 0 || layers[i] >= NL)
            return sf_fail(err, SF_E_ARG, "sink ablation: layer %d out of range (the model has %d layers)", layers[i], NL);
    free(st->ablate_layer);
    st->ablate_layer = NULL, st->ablate_frames = 0;
    if (frames == 0) return SF_OK;
    if (!(st->ablate_layer = calloc((size_t)NL, 1))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int l = 0; l < NL; l++) st->ablate_layer[l] = nl == 0;
    for (int i = 0; i < nl; i++) st->ablate_layer[layers[i]] = 1;
    st->ablate_frames = frames;
    return SF_OK;
}

int64_t sf_dit_ablate_skip(const sf_dit_state *st, int l, int64_t Lq, int64_t Lk) {
    if (!st->ablate_layer || !st->ablate_layer[l] || Lk <= Lq) return 0;
    const int64_t k = (int64_t)st->ablate_frames * st->frame_tokens;
    return k < Lk - Lq ? k : Lk - Lq;
}

int64_t sf_dit_window_tokens(const sf_dit_state *st) {
    return st->local_attn_size == -1 ? st->cache_tokens : st->local_attn_size * st->frame_tokens;
}

void sf_dit_state_reset(sf_dit_state *st) {
    st->global_end = 0;
    st->local_end = 0;
    st->sink_shift = 0, st->sink_orig_valid = 0; /* the next video's sink is cached afresh */
    st->kvc_lq = 0;                              /* and --kv-compress has no queries of it yet */
    st->pc_head = st->pc_len = 0, st->pc_sink_want = 0, st->pc_kept = 0; /* nor --pc-budget's window, kept tokens */
    st->kvc_src_valid = 0;
    sf_dit_pc_reset(st); /* its reuse counts, and a compression's record still pending (either rule) dropped */
    if (st->kvc_pend) memset(st->kvc_pend, 0, (size_t)st->w->cfg.num_layers);
}

/* Rows of the RoPE table: the time positions asked for, and at least the spatial grid's. */
static int rope_table_rows(const sf_dit_state *st, int rope_frames) {
    const sf_dit_config *c = &st->w->cfg;
    int hp = st->lat_h / c->patch_size[1], wp = st->lat_w / c->patch_size[2];
    int r = rope_frames > hp ? rope_frames : hp;
    return r > wp ? r : wp;
}

static void probe(sf_dit_state *st, const char *name, const float *p, int64_t n) {
    if (st->probe) st->probe(st->probe_ctx, name, p, n);
}

/* y = x·Wᵀ + b. same_x: the previous product read this x too and nothing has written it since (--fp8: its
 * quantization is reused, as the GPU's mm_same_x does). */
static sf_status gemm_x(sf_dit_state *st, int64_t M, const float *x, int64_t ldx, const sf_dit_mat *m, const float *b,
                        float *y, int same_x, sf_err *err) {
    if (m->fp8) return sf_dit_gemm_fp8_cpu(M, x, ldx, m, b, y, &st->xq, same_x, st->nthreads, &st->ws, err);
    if (sf_gemm_cpu_ws(M, m->n, m->k, x, ldx, m->w, m->dt, b, y, m->n, st->nthreads, &st->ws))
        return sf_fail(err, SF_E_UNSUPPORTED, "gemm: unsupported weight dtype");
    return SF_OK;
}

static sf_status gemm(sf_dit_state *st, int64_t M, const float *x, int64_t ldx, const sf_dit_mat *m, const float *b,
                      float *y, sf_err *err) {
    return gemm_x(st, M, x, ldx, m, b, y, 0, err);
}

sf_status sf_dit_set_context(sf_dit_state *st, const float *emb, int64_t n_rows, sf_err *err) {
    const sf_dit_weights *w = st->w;
    const sf_dit_config *c = &w->cfg;
    int64_t T = c->text_len, D = c->dim;
    sf_status s;
    if (n_rows < 0 || n_rows > T)
        return sf_fail(err, SF_E_SHAPE, "prompt embeddings have %lld rows, more than text_len %d", (long long)n_rows,
                       c->text_len);
    st->ctx_real = 0; /* padding rows are zero (umT5's output past the prompt's length): the rest is real */
    for (int64_t r = n_rows; r > 0 && !st->ctx_real; r--)
        for (int64_t i = 0; i < c->text_dim; i++)
            if (emb[(r - 1) * c->text_dim + i] != 0.0f) {
                st->ctx_real = r;
                break;
            }
    if (st->gpu) {
        if ((s = sf_dit_cuda_set_context(st, emb, n_rows, err))) return s;
        st->ctx_ready = 1;
        return SF_OK;
    }
    float *pad = st->txt_tmp; /* (T, text_dim) zero-padded */
    memset(pad, 0, sizeof(float) * (size_t)(T * c->text_dim));
    memcpy(pad, emb, sizeof(float) * (size_t)(n_rows * c->text_dim));
    float *h = st->ctx; /* reuse as the hidden (T, D) before the second linear */
    float *tmp = malloc(sizeof(float) * (size_t)(T * D));
    if (!tmp) return sf_fail(err, SF_E_NOMEM, "out of memory");
    if ((s = gemm(st, T, pad, c->text_dim, &w->txt0, w->txt0_b, tmp, err))) goto fail;
    sf_gelu_tanh_mt_cpu(tmp, T * D, st->nthreads);
    if ((s = gemm(st, T, tmp, D, &w->txt2, w->txt2_b, h, err))) goto fail;
    probe(st, "mid.text_embedding", st->ctx, T * D);
    for (int l = 0; l < c->num_layers; l++) {
        const sf_dit_layer *L = &w->layers[l];
        if ((s = sf_stop_check(err))) goto fail;
        /* every layer's K and V read the same ctx: --fp8 quantizes it once */
        if ((s = gemm_x(st, T, st->ctx, D, &L->ca_k, L->ca_kb, tmp, l > 0, err))) goto fail;
        if (c->qk_norm) sf_rmsnorm_cpu(T, D, tmp, D, L->ca_nk, c->eps, st->ck[l], D, st->nthreads);
        else memcpy(st->ck[l], tmp, sizeof(float) * (size_t)(T * D));
        if ((s = gemm_x(st, T, st->ctx, D, &L->ca_v, L->ca_vb, st->cv[l], 1, err))) goto fail;
        if (l == 0) {
            probe(st, "mid.block0.cross_attn.k", st->ck[0], T * D);
            probe(st, "mid.block0.cross_attn.v", st->cv[0], T * D);
        }
    }
    st->ctx_ready = 1;
    free(tmp);
    return SF_OK;
fail:
    free(tmp);
    return s;
}

/* Reference CausalWanSelfAttention cache arithmetic for one forward of n_new tokens starting at
 * token cur_start: returns the slot range [*ls, *le) to write and, when eviction happens, the
 * (evict, keep) roll to apply first. Same for every layer. */
static sf_status kv_plan(sf_dit_state *st, int64_t cur_start, int64_t n_new, int64_t *ls, int64_t *le,
                         int64_t *evict, int64_t *keep, sf_err *err) {
    int64_t cur_end = cur_start + n_new, ge = st->global_end, lend = st->local_end;
    *evict = 0;
    *keep = 0;
    if (st->local_attn_size != -1 && cur_end > ge && n_new + lend > st->cache_tokens) {
        *evict = n_new + lend - st->cache_tokens;
        *keep = lend - *evict - st->sink_tokens;
        if (*keep < 0)
            return sf_fail(err, SF_E_ARG, "KV cache eviction would keep %lld tokens (cache too small for sink + block)",
                           (long long)*keep);
        *le = lend + (cur_end - ge) - *evict;
    } else {
        *le = lend + (cur_end - ge);
    }
    *ls = *le - n_new;
    if (*ls < 0 || *le > st->cache_tokens)
        return sf_fail(err, SF_E_ARG,
                       "KV cache overflow: writing tokens [%lld, %lld) into a %lld-token cache (more frames than the "
                       "cache holds; use local_attn_size for long videos)",
                       (long long)*ls, (long long)*le, (long long)st->cache_tokens);
    return SF_OK;
}

/* One forward's shared facts for its layers: shapes, the KV-cache step and the keys attended. */
typedef struct dit_fwd {
    int F;                  /* frames in this forward */
    int64_t start_frame;    /* absolute latent frame of the first one */
    sf_dit_kv_step kv;      /* cache roll / write / attend ranges (kv_plan) */
    const int64_t *kfr;     /* (Lk/S) absolute frame held by each attended key frame */
    const int64_t *sel;     /* key_select seam: NULL, or the (Lk/S) frames gathered into Kg, Vg */
    float *Kg, *Vg;         /* (Lk, D) gathered keys and values (key_select only) */
    int kv_only;            /* a pass that only has to write the cache (sf_dit_kv_only_layer) */
} dit_fwd;

int sf_dit_kv_only_layer(const sf_dit_state *st, int l, int kv_only) {
    if (!kv_only || l + 1 != st->w->cfg.num_layers || st->kvc_tokens > 0 || st->pc_budget > 0)
        return 0; /* --kv-compress and --pc-budget keep q */
    const sf_dit_tap *tp = &st->tap;
    if (tp->wants && tp->wants(tp->ctx, l)) return 0;
    return !(tp->wants_cross && tp->done && tp->wants_cross(tp->ctx, l));
}

/* Transformer layer l (CausalWanAttentionBlock.forward): x ← x + gate_attn·SA(mod(LN(x))),
 * x ← x + CA(LN3(x)), x ← x + gate_ffn·FFN(mod(LN(x))), on st->x (L, D) in place; writes this
 * forward's keys and values into layer l's cache. */
static sf_status dit_layer(sf_dit_state *st, int l, const dit_fwd *fw, sf_err *err) {
    const sf_dit_weights *w = st->w;
    const sf_dit_config *c = &w->cfg;
    const int F = fw->F;
    const int64_t start_frame = fw->start_frame, D = c->dim, S = st->frame_tokens, L = (int64_t)F * S;
    const int64_t NH = c->num_heads, hd = D / NH;
    const int ph = c->patch_size[1], pw = c->patch_size[2], nt = st->nthreads;
    const sf_dit_kv_step *kv = &fw->kv;
    /* the keys this layer attends: the window, less its first context slots in an ablated layer (--sink-ablate) */
    const int64_t skip = fw->sel ? 0 : sf_dit_ablate_skip(st, l, L, fw->kv.Lk), Lk = fw->kv.Lk - skip;
    const int64_t *kfr = fw->kfr + skip / S, *sel = fw->sel;
    float *Kg = fw->Kg, *Vg = fw->Vg;
    const int stop_kv = sf_dit_kv_only_layer(st, l, fw->kv_only); /* no query, attention, cross-attention or FFN */
    const float scale = (float)(1.0 / sqrt((double)hd));
    sf_status s;
    char nm[96];
    const sf_dit_layer *B = &w->layers[l];
    /* E = modulation + e0: (F, 6, D), its chunks in the reference's order (CausalWanAttentionBlock's
     * e[0..5]); each is read with a frame stride of 6·D */
    for (int f = 0; f < F; f++)
        for (int64_t i = 0; i < 6 * D; i++) st->E[f * 6 * D + i] = B->modulation[i] + st->e0[f * 6 * D + i];
    const float *shift_attn = st->E, *scale_attn = st->E + D, *gate_attn = st->E + 2 * D;
    const float *shift_ffn = st->E + 3 * D, *scale_ffn = st->E + 4 * D, *gate_ffn = st->E + 5 * D;
    /* self-attention */
    sf_layernorm_cpu(L, D, st->x, D, NULL, NULL, c->eps, st->a, D, nt);
    sf_modulate_cpu(F, S, D, st->a, shift_attn, scale_attn, 6 * D, st->a);
    if (!stop_kv && (s = gemm(st, L, st->a, D, &B->sa_q, B->sa_qb, st->q, err))) return s;
    if ((s = gemm_x(st, L, st->a, D, &B->sa_k, B->sa_kb, st->k, !stop_kv, err))) return s; /* q's input */
    if ((s = gemm_x(st, L, st->a, D, &B->sa_v, B->sa_vb, st->v, 1, err))) return s;
    if (c->qk_norm) {
        if (!stop_kv) sf_rmsnorm_cpu(L, D, st->q, D, B->sa_nq, c->eps, st->q, D, nt);
        sf_rmsnorm_cpu(L, D, st->k, D, B->sa_nk, c->eps, st->k, D, nt);
    }
    if (l == 0 && !stop_kv) {
        probe(st, "mid.block0.self_attn.q_normed", st->q, L * D);
        probe(st, "mid.block0.self_attn.k_normed", st->k, L * D);
        probe(st, "mid.block0.self_attn.v", st->v, L * D);
    }
    if (!stop_kv) sf_rope_apply_cpu(&st->rope, st->q, D, F, st->lat_h / ph, st->lat_w / pw, (int)NH, start_frame, nt);
    sf_rope_apply_cpu(&st->rope, st->k, D, F, st->lat_h / ph, st->lat_w / pw, (int)NH, start_frame, nt);
    if (st->kvc_tokens > 0 && !stop_kv) /* --kv-compress: the next eviction scores the keys with these queries */
        memcpy(st->kvc_q + (size_t)l * (size_t)((int64_t)st->max_frames * S * D), st->q, sizeof(float) * (size_t)(L * D));
    if (st->pc_budget > 0 && !stop_kv && (s = sf_dit_pc_layer(st, l, kv, st->q, L, err))) return s;
    float *KC = st->kc[l], *VC = st->vc[l];
    if (kv->evict > 0 && kv->keep > 0) { /* roll: [sink+evict, +keep) → [sink, +keep); memmove handles overlap */
        const int64_t from = st->sink_tokens + kv->evict;
        memmove(KC + st->sink_tokens * D, KC + from * D, sizeof(float) * (size_t)(kv->keep * D));
        memmove(VC + st->sink_tokens * D, VC + from * D, sizeof(float) * (size_t)(kv->keep * D));
    }
    memcpy(KC + kv->ls * D, st->k, sizeof(float) * (size_t)(L * D));
    memcpy(VC + kv->ls * D, st->v, sizeof(float) * (size_t)(L * D));
    if (stop_kv) return SF_OK;
    const float *Ka = KC + (kv->lo + skip) * D, *Va = VC + (kv->lo + skip) * D;
    if (sel) { /* key_select seam: gather the listed frames */
        for (int64_t i = 0; i < Lk / S; i++) {
            memcpy(Kg + i * S * D, KC + sel[i] * S * D, sizeof(float) * (size_t)(S * D));
            memcpy(Vg + i * S * D, VC + sel[i] * S * D, sizeof(float) * (size_t)(S * D));
        }
        Ka = Kg;
        Va = Vg;
    }
    if (l == 0) {
        probe(st, "mid.block0.self_attn.q_roped", st->q, L * D);
        probe(st, "mid.block0.self_attn.k_roped", Ka, Lk * D);
    }
    int tapped = st->tap.wants && st->tap.wants(st->tap.ctx, l);
    float *logits = tapped && st->tap.logits_buf ? st->tap.logits_buf(st->tap.ctx, l, (int)NH, L, Lk) : NULL;
    if (sf_attention_cpu_ws(L, Lk, (int)NH, (int)hd, st->q, D, Ka, Va, D, st->o, D, scale, logits, nt, &st->ws))
        return sf_fail(err, SF_E_NOMEM, "attention: out of memory");
    if (tapped && st->tap.done) {
        sf_dit_attn_view vw = {l,    L,    Lk,   (int)NH, (int)hd, st->q, Ka,      D,           S,
                               kfr,  logits, NULL, NULL,  NULL,    0,     0,  NULL, fw->kfr, fw->kv.Lk / S,
                               NULL, 0,      0};
        sf_dit_kept_view(st, l, &vw);
        if ((s = st->tap.done(st->tap.ctx, &vw, err))) return s;
    }
    if (l == 0) probe(st, "mid.block0.self_attn.attn_out", st->o, L * D);
    if ((s = gemm(st, L, st->o, D, &B->sa_o, B->sa_ob, st->y, err))) return s;
    if (l == 0) probe(st, "mid.block0.self_attn.out", st->y, L * D);
    sf_gated_add_cpu(F, S, D, st->x, st->y, gate_attn, 6 * D);
    /* cross-attention (ungated residual) */
    if (c->cross_attn_norm) sf_layernorm_cpu(L, D, st->x, D, B->n3_w, B->n3_b, c->eps, st->a, D, nt);
    else memcpy(st->a, st->x, sizeof(float) * (size_t)(L * D));
    if (l == 0) probe(st, "mid.block0.norm3.out", st->a, L * D);
    if ((s = gemm(st, L, st->a, D, &B->ca_q, B->ca_qb, st->q, err))) return s;
    if (c->qk_norm) sf_rmsnorm_cpu(L, D, st->q, D, B->ca_nq, c->eps, st->q, D, nt);
    if (l == 0) probe(st, "mid.block0.cross_attn.q", st->q, L * D);
    if (sf_attention_cpu_ws(L, c->text_len, (int)NH, (int)hd, st->q, D, st->ck[l], st->cv[l], D, st->o, D, scale,
                            NULL, nt, &st->ws))
        return sf_fail(err, SF_E_NOMEM, "attention: out of memory");
    if (st->tap.wants_cross && st->tap.done && st->tap.wants_cross(st->tap.ctx, l)) {
        sf_dit_attn_view vw = {l, L, c->text_len, (int)NH, (int)hd, st->q, st->ck[l], D, S, NULL, NULL, NULL,
                               NULL, NULL, 1, st->ctx_real, NULL, NULL, 0, NULL, 0, 0};
        if ((s = st->tap.done(st->tap.ctx, &vw, err))) return s;
    }
    if (l == 0) probe(st, "mid.block0.cross_attn.attn_out", st->o, L * D);
    if ((s = gemm(st, L, st->o, D, &B->ca_o, B->ca_ob, st->y, err))) return s;
    if (l == 0) probe(st, "mid.block0.cross_attn.out", st->y, L * D);
    for (int64_t i = 0; i < L * D; i++) st->x[i] = st->x[i] + st->y[i];
    /* feed-forward */
    sf_layernorm_cpu(L, D, st->x, D, NULL, NULL, c->eps, st->a, D, nt);
    sf_modulate_cpu(F, S, D, st->a, shift_ffn, scale_ffn, 6 * D, st->a);
    if ((s = gemm(st, L, st->a, D, &B->ffn0, B->ffn0_b, st->h, err))) return s;
    sf_gelu_tanh_mt_cpu(st->h, L * c->ffn_dim, nt);
    if ((s = gemm(st, L, st->h, c->ffn_dim, &B->ffn2, B->ffn2_b, st->y, err))) return s;
    if (l == 0) probe(st, "mid.block0.ffn.out", st->y, L * D);
    sf_gated_add_cpu(F, S, D, st->x, st->y, gate_ffn, 6 * D);
    snprintf(nm, sizeof nm, "mid.block%d.out", l);
    probe(st, nm, st->x, L * D);
    return SF_OK;
}

/* A GPU forward that stays on the device: input from slot x, prediction x − σ·flow into slot dst. */
typedef struct dev_step {
    double sigma;
    int dst;
} dev_step;

/* One forward: shapes, the KV-cache step and the keys attended, then the backend's layers.
 * x_t / flow: host buffers; on a GPU with ds set, both NULL (slots, see dev_step). */
static sf_status forward(sf_dit_state *st, const float *x_t, int F, const float *t, int64_t start_frame, float *flow,
                         const dev_step *ds, const sf_dit_kv_step *fix, int kv_only, sf_err *err) {
    const sf_dit_weights *w = st->w;
    const sf_dit_config *c = &w->cfg;
    const int64_t D = c->dim, S = st->frame_tokens, L = (int64_t)F * S;
    const int ph = c->patch_size[1], pw = c->patch_size[2], nt = st->nthreads;
    sf_status s;
    if (F < 1 || F > st->max_frames)
        return sf_fail(err, SF_E_ARG, "forward over %d frames (state sized for %d)", F, st->max_frames);
    if (!st->ctx_ready) return sf_fail(err, SF_E_ARG, "forward without text conditioning");
    if (start_frame < 0 || start_frame + F > st->rope.max_pos)
        return sf_fail(err, SF_E_ARG, "latent frame %lld is past the RoPE table (%d positions)",
                       (long long)(start_frame + F), st->rope.max_pos);
    int64_t ls = 0, le = 0, evict = 0, keep = 0;
    sf_dit_kv_step pk = {0}; /* --pc-budget's compression, when this forward makes one */
    if ((s = sf_dit_settle(st, -1, err))) return s; /* a GPU's last compression's record, before a plan */
    if (fix) /* a re-cache forward: rewrite slots [ls, le) in place, no roll, cache indices unchanged */
        ls = fix->ls, le = fix->le;
    else if (sf_dit_pc_plan(st, L, start_frame, &pk))
        ls = pk.ls, le = pk.le;
    else if ((s = kv_plan(st, start_frame * S, L, &ls, &le, &evict, &keep, err)))
        return s;
    if (!fix && evict > 0 && st->kvc_tokens > 0) { /* --kv-compress: the eviction compresses instead of dropping */
        int done = 0;
        if ((s = sf_dit_kv_compress(st, evict, &done, err))) return s;
        if (done) evict = keep = 0; /* rolled already, key_frames too */
    }
    if (st->kvc_tokens > 0) st->kvc_lq = L; /* the queries this forward keeps (dit_layer / the GPU's layer) */
    const int64_t max_att = sf_dit_window_tokens(st);
    int64_t lo = le - max_att > 0 ? le - max_att : 0, Lk = le - lo;
    /* which absolute frame each cache frame-slot holds after this forward's roll + write (all
     * quantities are whole frames: blocks, sink and cache are frame multiples) */
    const int64_t cache_fr = st->cache_tokens / S, sink_fr = st->sink_tokens / S;
    if (evict > 0 && keep > 0)
        memmove(st->key_frames + sink_fr, st->key_frames + sink_fr + evict / S, sizeof(int64_t) * (size_t)(keep / S));
    for (int f = 0; f < F; f++) st->key_frames[ls / S + f] = start_frame + f;
    const int64_t *kfr = st->key_frames + lo / S;
    if (st->sink_rope && (s = sf_dit_sink_realign(st, lo, ls, kfr, Lk / S, err))) return s;
    if (st->gpu) {
        if (st->key_select) return sf_fail(err, SF_E_UNSUPPORTED, "key_select (a test seam) runs on the CPU only");
        sf_dit_kv_step kv = {ls, le, evict, keep, lo, Lk, pk.pc, pk.pc_topc, pk.pc_from, pk.pc_end};
        if ((s = sf_dit_cuda_forward(st, x_t, F, t, start_frame, &kv, flow, ds ? ds->sigma : 0.0, ds ? ds->dst : -1,
                                     kv_only, err)))
            return s;
        sf_dit_pc_advance(st, L);
        if (!fix) {
            st->global_end = start_frame * S + L;
            st->local_end = le;
        }
        return SF_OK;
    }
    /* test seam: attend to an explicit list of frames gathered from a global (absolute-slot) cache */
    int64_t *sel = NULL;
    float *Kg = NULL, *Vg = NULL;
    if (st->key_select) {
        if (st->local_attn_size != -1) return sf_fail(err, SF_E_ARG, "key_select needs a global-attention state");
        sel = malloc(sizeof(int64_t) * (size_t)cache_fr);
        int64_t n = sel ? st->key_select(st->key_select_ctx, start_frame, F, sel, cache_fr) : -1;
        for (int64_t i = 0; i < n; i++)
            if (sel[i] < 0 || sel[i] >= start_frame + F || (i && sel[i] <= sel[i - 1])) n = -1;
        if (n < 1) {
            free(sel);
            return sf_fail(err, SF_E_ARG, "key_select: bad frame list");
        }
        Kg = malloc(sizeof(float) * (size_t)(n * S * D));
        Vg = malloc(sizeof(float) * (size_t)(n * S * D));
        if (!Kg || !Vg) {
            free(sel);
            free(Kg);
            free(Vg);
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        }
        Lk = n * S;
        kfr = sel;
    }

    /* 1. patch embedding */
    sf_patchify_cpu(x_t, F, c->in_dim, st->lat_h, st->lat_w, ph, pw, st->patches);
    if ((s = gemm(st, L, st->patches, (int64_t)c->in_dim * ph * pw, &w->patch, w->patch_b, st->x, err))) goto fail;
    probe(st, "mid.patch_embedding", st->x, L * D);
    /* 2. time embedding per frame: e = time_embedding(sinusoid), e0 = time_projection(e) */
    sf_timestep_embed_cpu(t, F, c->freq_dim, st->sinus);
    for (int64_t i = 0; i < (int64_t)F * c->freq_dim; i++) st->sinf[i] = (float)st->sinus[i];
    if ((s = gemm(st, F, st->sinf, c->freq_dim, &w->tim0, w->tim0_b, st->et, err))) goto fail;
    sf_silu_cpu(st->et, F * D);
    if ((s = gemm(st, F, st->et, D, &w->tim2, w->tim2_b, st->e, err))) goto fail;
    probe(st, "mid.time_embedding", st->e, F * D);
    memcpy(st->et, st->e, sizeof(float) * (size_t)(F * D));
    sf_silu_cpu(st->et, F * D);
    if ((s = gemm(st, F, st->et, D, &w->tproj, w->tproj_b, st->e0, err))) goto fail;
    probe(st, "mid.time_projection", st->e0, F * 6 * D);

    /* 3. transformer blocks */
    const dit_fwd fw = {F, start_frame, {ls, le, evict, keep, lo, Lk, pk.pc, pk.pc_topc, pk.pc_from, pk.pc_end},
                        kfr, sel, Kg, Vg, kv_only};
    for (int l = 0; l < c->num_layers; l++) /* a stop signal is honoured per layer */
        if ((s = sf_stop_check(err)) || (s = dit_layer(st, l, &fw, err))) goto fail;
    sf_dit_pc_advance(st, L);
    if (!fix) {
        st->global_end = start_frame * S + L;
        st->local_end = le;
    }
    if (kv_only) goto fail; /* s == SF_OK: nothing reads this pass's prediction */

    /* 4. head: Hm = head.modulation + e (NOT e0), then unpatchify */
    for (int f = 0; f < F; f++)
        for (int i = 0; i < 2; i++)
            for (int64_t j = 0; j < D; j++)
                st->Hm[(f * 2 + i) * D + j] = w->head_mod[i * D + j] + st->e[f * D + j];
    sf_layernorm_cpu(L, D, st->x, D, NULL, NULL, c->eps, st->a, D, nt);
    sf_modulate_cpu(F, S, D, st->a, st->Hm, st->Hm + D, 2 * D, st->a);
    if ((s = gemm(st, L, st->a, D, &w->head, w->head_b, st->hout, err))) goto fail;
    probe(st, "mid.head_out", st->hout, L * w->head.n);
    sf_unpatchify_cpu(st->hout, F, c->out_dim, st->lat_h, st->lat_w, ph, pw, flow);
    s = SF_OK;
fail:
    free(sel);
    free(Kg);
    free(Vg);
    return s;
}

sf_status sf_dit_forward(sf_dit_state *st, const float *x_t, int F, const float *t, int64_t start_frame,
                         float *flow, sf_err *err) {
    return forward(st, x_t, F, t, start_frame, flow, NULL, NULL, 0, err);
}

/* ---------------------------------------------------------------- the sampling loop's slots */

static sf_status lat_check(const sf_dit_state *st, int slot, int64_t n, sf_err *err) {
    const sf_dit_config *c = &st->w->cfg;
    const int64_t cap = (int64_t)st->max_frames * c->in_dim * st->lat_h * st->lat_w;
    if (slot < 0 || slot >= SF_LAT_N || n < 0 || n > cap || c->in_dim != c->out_dim)
        return sf_fail(err, SF_E_ARG, "latent slot %d: %lld values (slots hold %lld; in_dim %d, out_dim %d)", slot,
                       (long long)n, (long long)cap, c->in_dim, c->out_dim);
    return SF_OK;
}

sf_status sf_dit_lat_put(sf_dit_state *st, sf_dit_slot slot, const float *host, int64_t n, sf_err *err) {
    sf_status s = lat_check(st, (int)slot, n, err);
    if (s) return s;
    if (st->gpu) return sf_dit_cuda_lat_put(st, (int)slot, host, n, err);
    memcpy(st->lat[slot], host, sizeof(float) * (size_t)n);
    return SF_OK;
}

sf_status sf_dit_lat_get(sf_dit_state *st, sf_dit_slot slot, float *host, int64_t n, sf_err *err) {
    sf_status s = lat_check(st, (int)slot, n, err);
    if (s) return s;
    if (st->gpu) return sf_dit_cuda_lat_get(st, (int)slot, host, n, err);
    memcpy(host, st->lat[slot], sizeof(float) * (size_t)n);
    return SF_OK;
}

sf_status sf_dit_lat_get_begin(sf_dit_state *st, sf_dit_slot slot, float *host, int64_t n, sf_err *err) {
    sf_status s = lat_check(st, (int)slot, n, err);
    if (s) return s;
    if (st->gpu) return sf_dit_cuda_lat_get_begin(st, (int)slot, host, n, err);
    memcpy(host, st->lat[slot], sizeof(float) * (size_t)n);
    return SF_OK;
}

sf_status sf_dit_lat_get_end(sf_dit_state *st, sf_err *err) { return st->gpu ? sf_dit_cuda_lat_get_end(st, err) : SF_OK; }

sf_status sf_dit_lat_copy(sf_dit_state *st, sf_dit_slot dst, sf_dit_slot src, int64_t n, sf_err *err) {
    sf_status s = lat_check(st, (int)dst, n, err);
    if (!s) s = lat_check(st, (int)src, n, err);
    if (s || dst == src) return s;
    if (st->gpu) return sf_dit_cuda_lat_copy(st, (int)dst, (int)src, n, err);
    memcpy(st->lat[dst], st->lat[src], sizeof(float) * (size_t)n);
    return SF_OK;
}

sf_status sf_dit_denoise(sf_dit_state *st, int F, const float *t, int64_t start_frame, double sigma, sf_dit_slot dst,
                         sf_err *err) {
    if (F < 1 || F > st->max_frames)
        return sf_fail(err, SF_E_ARG, "forward over %d frames (state sized for %d)", F, st->max_frames);
    const int64_t n = (int64_t)F * st->w->cfg.in_dim * st->lat_h * st->lat_w;
    sf_status s = lat_check(st, (int)dst, n, err);
    if (s) return s;
    if (st->gpu) {
        const dev_step ds = {sigma, (int)dst};
        return forward(st, NULL, F, t, start_frame, NULL, &ds, NULL, 0, err);
    }
    if ((s = forward(st, st->lat[SF_LAT_X], F, t, start_frame, st->lat_flow, NULL, NULL, 0, err))) return s;
    sf_flow_to_x0_cpu(st->lat[SF_LAT_X], st->lat_flow, n, sigma, st->lat[dst]);
    return SF_OK;
}

sf_status sf_dit_refresh(sf_dit_state *st, int F, const float *t, int64_t start_frame, sf_err *err) {
    if (F < 1 || F > st->max_frames)
        return sf_fail(err, SF_E_ARG, "forward over %d frames (state sized for %d)", F, st->max_frames);
    const dev_step ds = {0.0, -1};
    return forward(st, st->gpu ? NULL : st->lat[SF_LAT_X], F, t, start_frame, NULL, st->gpu ? &ds : NULL, NULL, 1, err);
}

sf_status sf_dit_renoise(sf_dit_state *st, const float *eps, int64_t n, float sigma, sf_err *err) {
    sf_status s = lat_check(st, SF_LAT_X, n, err);
    if (s) return s;
    if (st->gpu) return sf_dit_cuda_renoise(st, eps, n, sigma, err);
    sf_add_noise_cpu(st->lat[SF_LAT_X0], eps, n, sigma, st->lat[SF_LAT_X]);
    return SF_OK;
}

/* The GPU's plans for a forward of Lq queries over Lk keys, and for an ablated layer's shorter window (--sink-ablate:
 * one skip for every ablated layer). */
static sf_status prepare_shape(sf_dit_state *st, int64_t Lq, int64_t Lk, sf_err *err) {
    sf_status s = sf_dit_cuda_prepare(st, Lq, Lk, err);
    for (int l = 0; !s && l < st->w->cfg.num_layers; l++) {
        const int64_t skip = sf_dit_ablate_skip(st, l, Lq, Lk);
        if (skip > 0) return sf_dit_cuda_prepare(st, Lq, Lk - skip, err);
    }
    return s;
}

sf_status sf_dit_prepare(sf_dit_state *st, int n_blocks, const int *frames, sf_err *err) {
    if (!st->gpu) return SF_OK;
    const int64_t S = st->frame_tokens, ge = st->global_end, lend = st->local_end;
    const int64_t max_att = sf_dit_window_tokens(st);
    sf_status s = SF_OK;
    int64_t start = 0;
    st->global_end = st->local_end = 0;
    for (int b = 0; b < n_blocks; b++) { /* the forwards' cache arithmetic, replayed without touching the cache */
        const int F = frames[b];
        int64_t ls, le, evict, keep;
        if (F < 1 || F > st->max_frames) {
            s = sf_fail(err, SF_E_ARG, "block %d has %d frames (state sized for %d)", b, F, st->max_frames);
            break;
        }
        sf_dit_kv_step pk; /* --pc-budget: its windows, the query window taken as full */
        if (sf_dit_pc_sizes(st, F * S, start, st->pc_recent, &pk)) le = pk.le;
        else if ((s = kv_plan(st, start * S, F * S, &ls, &le, &evict, &keep, err))) break;
        const int64_t lo = le - max_att > 0 ? le - max_att : 0;
        if ((s = prepare_shape(st, (int64_t)F * S, le - lo, err))) break;
        st->global_end = (start + F) * S;
        st->local_end = le;
        start += F;
    }
    st->global_end = ge;
    st->local_end = lend;
    return s;
}

/* Block of latent frame f: with an independent first frame blocks are {0}, {1..fpb}, ...; else {0..fpb-1}, ... */
static int64_t block_of(int64_t f, int fpb, int iff) {
    return iff ? (f == 0 ? 0 : 1 + (f - 1) / fpb) : f / fpb;
}

sf_status sf_dit_recache(sf_dit_state *st, float t, int fpb, int independent_first_frame,
                         const float *(*frame_x0)(void *ctx, int64_t frame), void *ctx, sf_err *err) {
    const sf_dit_config *c = &st->w->cfg;
    const int64_t S = st->frame_tokens, fr = (int64_t)c->in_dim * st->lat_h * st->lat_w;
    const int64_t have = st->local_end / S;
    float tv[64];
    if (fpb < 1 || !st->ctx_ready) return sf_fail(err, SF_E_ARG, "re-cache needs a block size and a text context");
    /* a chunk's clean latents, gathered on the host (a prompt switch is rare: allocate here) */
    float *buf = sf_calloc2((size_t)st->max_frames * (size_t)fr, sizeof(float));
    if (!buf) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_status s = SF_OK;
    const sf_dit_tap tap = st->tap; /* taps see the video's forwards, not the re-cache's */
    memset(&st->tap, 0, sizeof st->tap);
    for (int64_t at = 0; at < have && !s;) {
        /* one chunk: the slots from `at` that hold consecutive frames of one block */
        if (st->key_frames[at] < 0) { /* --kv-compress: tokens of mixed frames, kept as they are */
            at++;
            continue;
        }
        const int64_t f0 = st->key_frames[at], b0 = block_of(f0, fpb, independent_first_frame);
        int F = 1;
        while (at + F < have && F < st->max_frames && F < 64 && st->key_frames[at + F] == f0 + F &&
               block_of(f0 + F, fpb, independent_first_frame) == b0)
            F++;
        for (int f = 0; f < F && !s; f++) {
            const float *x = frame_x0(ctx, f0 + f);
            if (!x) s = sf_fail(err, SF_E_ARG, "re-cache: no clean latents of frame %lld", (long long)(f0 + f));
            else memcpy(buf + f * fr, x, sizeof(float) * (size_t)fr);
        }
        for (int f = 0; f < F; f++) tv[f] = t;
        /* the chunk rewrites its own slots and attends to every slot up to its end (block-causal
         * over the window, LongLive's re-cache mask) */
        const sf_dit_kv_step kv = {at * S, (at + F) * S, 0, 0, 0, (at + F) * S, 0, 0, 0, 0};
        if (!s) s = sf_dit_lat_put(st, SF_LAT_X, buf, F * fr, err);
        if (!s && st->gpu) {
            const dev_step ds = {0.0, -1};
            s = prepare_shape(st, (int64_t)F * S, kv.Lk, err);
            if (!s) s = forward(st, NULL, F, tv, f0, NULL, &ds, &kv, 1, err);
        } else if (!s) {
            s = forward(st, st->lat[SF_LAT_X], F, tv, f0, NULL, NULL, &kv, 1, err);
        }
        at += F;
    }
    st->tap = tap;
    free(buf);
    return s;
}
