/* mkmodel.c — parameter lists of the Wan DiT, umT5 encoder and Wan VAE decoder for any
 * size, random initialisation, and the model-folder writer behind sf-mkmodel.
 * Names and shapes follow SPEC.md §3.6, §5.13 and §8.8. Tested by tests/bats/sf-mkmodel.bats. */
#define _POSIX_C_SOURCE 200809L
#include "mkmodel.h"

#include "parallel.h"
#include "pickle.h"
#include "rng.h"
#include "tfile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

sf_status sf_mk_preset(const char *name, sf_mk_spec *s, sf_err *err) {
    memset(s, 0, sizeof *s);
    sf_dit_config_default(&s->dit);
    s->vae_z = 16;
    if (strcmp(name, "tiny") == 0) {
        s->dit.dim = 256;
        s->dit.ffn_dim = 384;
        s->dit.num_heads = 2;
        s->dit.num_layers = 3;
        s->dit.text_dim = 64;
        s->t5 = (sf_mk_t5){.vocab = 1000, .dim = 64, .heads = 4, .head_dim = 16, .ffn = 160, .layers = 3, .buckets = 32};
        s->vae_base = 8;
        s->taehv_nf[0] = s->taehv_nf[1] = 16, s->taehv_nf[2] = s->taehv_nf[3] = 8;
        s->spiece_pieces = 1000;
        return SF_OK;
    }
    if (strcmp(name, "1.3b") == 0) {
        /* sf_dit_config_default is already Wan2.1-T2V-1.3B */
        s->t5 = (sf_mk_t5){.vocab = 256384, .dim = 4096, .heads = 64, .head_dim = 64, .ffn = 10240, .layers = 24, .buckets = 32};
        s->vae_base = 96;
        s->taehv_nf[0] = 256, s->taehv_nf[1] = 128, s->taehv_nf[2] = s->taehv_nf[3] = 64;
        s->spiece_pieces = 256000;
        return SF_OK;
    }
    return sf_fail(err, SF_E_ARG, "unknown model preset '%s' (expected tiny, 1.3b or a config.json)", name);
}

static sf_status add(sf_mk_params *p, sf_mk_init init, int ndim, const int64_t *shape, sf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static sf_status add(sf_mk_params *p, sf_mk_init init, int ndim, const int64_t *shape, sf_err *err, const char *fmt, ...) {
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 256;
        sf_mk_param *nv = realloc(p->v, nc * sizeof *nv);
        if (!nv) return sf_fail(err, SF_E_NOMEM, "out of memory");
        p->v = nv;
        p->cap = nc;
    }
    sf_mk_param *q = &p->v[p->n++];
    memset(q, 0, sizeof *q);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->name, sizeof q->name, fmt, ap);
    va_end(ap);
    q->ndim = ndim;
    for (int i = 0; i < ndim; i++) q->shape[i] = shape[i];
    q->init = init;
    return SF_OK;
}

#define SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

/* Linear layer "<name>.weight" [out, in] and optional "<name>.bias" [out]. */
static sf_status linear(sf_mk_params *p, const char *name, int64_t out, int64_t in, int bias, sf_err *err) {
    sf_status s = add(p, SF_MK_LINEAR, SHAPE(out, in), err, "%s.weight", name);
    if (!s && bias) s = add(p, SF_MK_BIAS, SHAPE(out), err, "%s.bias", name);
    return s;
}

sf_status sf_mk_dit_params(const sf_dit_config *c, sf_mk_params *p, sf_err *err) {
    sf_status s = SF_OK;
    int64_t D = c->dim, F = c->ffn_dim;
    int64_t pt = c->patch_size[0], ph = c->patch_size[1], pw = c->patch_size[2];
    char nm[96];
#define TRY(x) do { if ((s = (x))) return s; } while (0)
    TRY(add(p, SF_MK_LINEAR, SHAPE(D, c->in_dim, pt, ph, pw), err, "patch_embedding.weight"));
    TRY(add(p, SF_MK_BIAS, SHAPE(D), err, "patch_embedding.bias"));
    TRY(linear(p, "text_embedding.0", D, c->text_dim, 1, err));
    TRY(linear(p, "text_embedding.2", D, D, 1, err));
    TRY(linear(p, "time_embedding.0", D, c->freq_dim, 1, err));
    TRY(linear(p, "time_embedding.2", D, D, 1, err));
    TRY(linear(p, "time_projection.1", 6 * D, D, 1, err));
    for (int l = 0; l < c->num_layers; l++) {
        TRY(add(p, SF_MK_SMALL, SHAPE(1, 6, D), err, "blocks.%d.modulation", l));
        for (int a = 0; a < 2; a++) {
            const char *an = a ? "cross_attn" : "self_attn";
            for (const char *w = "qkvo"; *w; w++) {
                snprintf(nm, sizeof nm, "blocks.%d.%s.%c", l, an, *w);
                TRY(linear(p, nm, D, D, 1, err));
            }
            if (c->qk_norm) {
                TRY(add(p, SF_MK_GAMMA, SHAPE(D), err, "blocks.%d.%s.norm_q.weight", l, an));
                TRY(add(p, SF_MK_GAMMA, SHAPE(D), err, "blocks.%d.%s.norm_k.weight", l, an));
            }
            if (a == 0 && c->cross_attn_norm) {
                TRY(add(p, SF_MK_GAMMA, SHAPE(D), err, "blocks.%d.norm3.weight", l));
                TRY(add(p, SF_MK_BIAS, SHAPE(D), err, "blocks.%d.norm3.bias", l));
            }
        }
        snprintf(nm, sizeof nm, "blocks.%d.ffn.0", l);
        TRY(linear(p, nm, F, D, 1, err));
        snprintf(nm, sizeof nm, "blocks.%d.ffn.2", l);
        TRY(linear(p, nm, D, F, 1, err));
    }
    TRY(add(p, SF_MK_SMALL, SHAPE(1, 2, D), err, "head.modulation"));
    TRY(linear(p, "head.head", c->out_dim * pt * ph * pw, D, 1, err));
    return SF_OK;
}

sf_status sf_mk_t5_params(const sf_mk_t5 *t, sf_mk_params *p, sf_err *err) {
    sf_status s = SF_OK;
    int64_t D = t->dim, A = (int64_t)t->heads * t->head_dim;
    char nm[96];
    TRY(add(p, SF_MK_EMBED, SHAPE(t->vocab, D), err, "token_embedding.weight"));
    for (int i = 0; i < t->layers; i++) {
        TRY(add(p, SF_MK_GAMMA, SHAPE(D), err, "blocks.%d.norm1.weight", i));
        for (const char *w = "qkv"; *w; w++) {
            snprintf(nm, sizeof nm, "blocks.%d.attn.%c", i, *w);
            TRY(linear(p, nm, A, D, 0, err));
        }
        snprintf(nm, sizeof nm, "blocks.%d.attn.o", i);
        TRY(linear(p, nm, D, A, 0, err));
        TRY(add(p, SF_MK_GAMMA, SHAPE(D), err, "blocks.%d.norm2.weight", i));
        snprintf(nm, sizeof nm, "blocks.%d.ffn.gate.0", i);
        TRY(linear(p, nm, t->ffn, D, 0, err));
        snprintf(nm, sizeof nm, "blocks.%d.ffn.fc1", i);
        TRY(linear(p, nm, t->ffn, D, 0, err));
        snprintf(nm, sizeof nm, "blocks.%d.ffn.fc2", i);
        TRY(linear(p, nm, D, t->ffn, 0, err));
        TRY(add(p, SF_MK_SMALL, SHAPE(t->buckets, t->heads), err, "blocks.%d.pos_embedding.embedding.weight", i));
    }
    TRY(add(p, SF_MK_GAMMA, SHAPE(D), err, "norm.weight"));
    return SF_OK;
}

static sf_status conv3(sf_mk_params *p, const char *name, int64_t out, int64_t in, int k, sf_err *err) {
    sf_status s = add(p, SF_MK_LINEAR, SHAPE(out, in, k, k, k), err, "%s.weight", name);
    return s ? s : add(p, SF_MK_BIAS, SHAPE(out), err, "%s.bias", name);
}

static sf_status resblock(sf_mk_params *p, const char *pre, int64_t cin, int64_t cout, sf_err *err) {
    sf_status s;
    char nm[128];
    TRY(add(p, SF_MK_GAMMA, SHAPE(cin, 1, 1, 1), err, "%s.residual.0.gamma", pre));
    snprintf(nm, sizeof nm, "%s.residual.2", pre);
    TRY(conv3(p, nm, cout, cin, 3, err));
    TRY(add(p, SF_MK_GAMMA, SHAPE(cout, 1, 1, 1), err, "%s.residual.3.gamma", pre));
    snprintf(nm, sizeof nm, "%s.residual.6", pre);
    TRY(conv3(p, nm, cout, cout, 3, err));
    if (cin != cout) {
        snprintf(nm, sizeof nm, "%s.shortcut", pre);
        TRY(conv3(p, nm, cout, cin, 1, err));
    }
    return SF_OK;
}

/* The TAEHV decoder's state dict (taehv.h; demo_utils/taehv.py TAEHV.decoder): Clamp, conv z → c0, ReLU, then
 * per stage s: `mems` MemBlocks (conv.0 [C, 2C, 3, 3], conv.2, conv.4 with biases; the first of stage 0 from
 * c0 to nf[0] with a 1×1 skip when c0 ≠ nf[0]), Upsample, TGrow (1×1, nf[s] → strides[s]·nf[s], no bias),
 * conv nf[s] → nf[s + 1] (no bias); ReLU, conv nf[3] → 3. Indices as the Sequential numbers them. */
sf_status sf_mk_taehv_params(int64_t z, int64_t c0, const int64_t nf[4], const int strides[3], int mems,
                             sf_mk_params *p, sf_err *err) {
    sf_status s;
    int i = 1;
    if (z <= 0 || c0 <= 0 || mems < 1 || mems > 8)
        return sf_fail(err, SF_E_ARG, "TAEHV params: z %lld, c0 %lld, %d MemBlocks a stage", (long long)z, (long long)c0, mems);
    for (int k = 0; k < 4; k++)
        if (nf[k] <= 0 || (k < 3 && (strides[k] < 1 || strides[k] > 4)))
            return sf_fail(err, SF_E_ARG, "TAEHV params: width or stride %d out of range", k);
    TRY(add(p, SF_MK_LINEAR, SHAPE(c0, z, 3, 3), err, "decoder.%d.weight", i));
    TRY(add(p, SF_MK_BIAS, SHAPE(c0), err, "decoder.%d.bias", i));
    i += 2; /* the ReLU */
    int64_t C = c0;
    for (int st = 0; st < 3; st++) {
        for (int m = 0; m < mems; m++, i++) {
            const int64_t co = nf[st];
            TRY(add(p, SF_MK_LINEAR, SHAPE(co, 2 * C, 3, 3), err, "decoder.%d.conv.0.weight", i));
            TRY(add(p, SF_MK_BIAS, SHAPE(co), err, "decoder.%d.conv.0.bias", i));
            TRY(add(p, SF_MK_LINEAR, SHAPE(co, co, 3, 3), err, "decoder.%d.conv.2.weight", i));
            TRY(add(p, SF_MK_BIAS, SHAPE(co), err, "decoder.%d.conv.2.bias", i));
            TRY(add(p, SF_MK_LINEAR, SHAPE(co, co, 3, 3), err, "decoder.%d.conv.4.weight", i));
            TRY(add(p, SF_MK_BIAS, SHAPE(co), err, "decoder.%d.conv.4.bias", i));
            if (C != co) TRY(add(p, SF_MK_LINEAR, SHAPE(co, C, 1, 1), err, "decoder.%d.skip.weight", i));
            C = co;
        }
        i++; /* the Upsample */
        TRY(add(p, SF_MK_LINEAR, SHAPE(strides[st] * C, C, 1, 1), err, "decoder.%d.conv.weight", i++));
        TRY(add(p, SF_MK_LINEAR, SHAPE(nf[st + 1], C, 3, 3), err, "decoder.%d.weight", i++));
        C = nf[st + 1];
    }
    i++; /* the ReLU */
    TRY(add(p, SF_MK_LINEAR, SHAPE(3, C, 3, 3), err, "decoder.%d.weight", i));
    TRY(add(p, SF_MK_BIAS, SHAPE(3), err, "decoder.%d.bias", i));
    return SF_OK;
}

sf_status sf_mk_vae_params(int base, int z, sf_mk_params *p, sf_err *err) {
    sf_status s;
    int64_t d4 = 4 * (int64_t)base, d2 = 2 * (int64_t)base, d1 = base;
    TRY(conv3(p, "conv2", z, z, 1, err));
    TRY(conv3(p, "decoder.conv1", d4, z, 3, err));
    TRY(resblock(p, "decoder.middle.0", d4, d4, err));
    TRY(add(p, SF_MK_GAMMA, SHAPE(d4, 1, 1), err, "decoder.middle.1.norm.gamma"));
    TRY(add(p, SF_MK_LINEAR, SHAPE(3 * d4, d4, 1, 1), err, "decoder.middle.1.to_qkv.weight"));
    TRY(add(p, SF_MK_BIAS, SHAPE(3 * d4), err, "decoder.middle.1.to_qkv.bias"));
    TRY(add(p, SF_MK_LINEAR, SHAPE(d4, d4, 1, 1), err, "decoder.middle.1.proj.weight"));
    TRY(add(p, SF_MK_BIAS, SHAPE(d4), err, "decoder.middle.1.proj.bias"));
    TRY(resblock(p, "decoder.middle.2", d4, d4, err));
    /* stage in/out widths: (4b→4b) ×3 + up3d, (2b→4b, 4b, 4b) + up3d, (2b→2b) ×3 + up2d, (b→b) ×3 */
    const int64_t rin[15] = {d4, d4, d4, 0, d2, d4, d4, 0, d2, d2, d2, 0, d1, d1, d1};
    const int64_t rout[15] = {d4, d4, d4, 0, d4, d4, d4, 0, d2, d2, d2, 0, d1, d1, d1};
    char nm[96];
    for (int i = 0; i < 15; i++) {
        snprintf(nm, sizeof nm, "decoder.upsamples.%d", i);
        if (rin[i]) {
            TRY(resblock(p, nm, rin[i], rout[i], err));
            continue;
        }
        int64_t c = i == 11 ? d2 : d4;
        if (i != 11) {
            TRY(add(p, SF_MK_LINEAR, SHAPE(2 * c, c, 3, 1, 1), err, "%s.time_conv.weight", nm));
            TRY(add(p, SF_MK_BIAS, SHAPE(2 * c), err, "%s.time_conv.bias", nm));
        }
        TRY(add(p, SF_MK_LINEAR, SHAPE(c / 2, c, 3, 3), err, "%s.resample.1.weight", nm));
        TRY(add(p, SF_MK_BIAS, SHAPE(c / 2), err, "%s.resample.1.bias", nm));
    }
    TRY(add(p, SF_MK_GAMMA, SHAPE(d1, 1, 1, 1), err, "decoder.head.0.gamma"));
    TRY(conv3(p, "decoder.head.2", 3, d1, 3, err));
    /* the encoder (sf-vae-encode), after the decoder so that the decoder's values stay as they were:
       stages (b→b) ×2 + down2d, (b→2b, 2b) + down3d, (2b→4b, 4b) + down3d, (4b→4b) ×2; the middle; the
       head to 2z (mu, log_var); conv1 (2z → 2z, 1×1×1) */
    TRY(conv3(p, "encoder.conv1", d1, 3, 3, err));
    const int64_t ein[11] = {d1, d1, 0, d1, d2, 0, d2, d4, 0, d4, d4};
    const int64_t eout[11] = {d1, d1, 0, d2, d2, 0, d4, d4, 0, d4, d4};
    for (int i = 0; i < 11; i++) {
        snprintf(nm, sizeof nm, "encoder.downsamples.%d", i);
        if (ein[i]) {
            TRY(resblock(p, nm, ein[i], eout[i], err));
            continue;
        }
        const int64_t c = eout[i - 1];
        if (i != 2) { /* down3d: a time conv, stride 2 */
            TRY(add(p, SF_MK_LINEAR, SHAPE(c, c, 3, 1, 1), err, "%s.time_conv.weight", nm));
            TRY(add(p, SF_MK_BIAS, SHAPE(c), err, "%s.time_conv.bias", nm));
        }
        TRY(add(p, SF_MK_LINEAR, SHAPE(c, c, 3, 3), err, "%s.resample.1.weight", nm));
        TRY(add(p, SF_MK_BIAS, SHAPE(c), err, "%s.resample.1.bias", nm));
    }
    TRY(resblock(p, "encoder.middle.0", d4, d4, err));
    TRY(add(p, SF_MK_GAMMA, SHAPE(d4, 1, 1), err, "encoder.middle.1.norm.gamma"));
    TRY(add(p, SF_MK_LINEAR, SHAPE(3 * d4, d4, 1, 1), err, "encoder.middle.1.to_qkv.weight"));
    TRY(add(p, SF_MK_BIAS, SHAPE(3 * d4), err, "encoder.middle.1.to_qkv.bias"));
    TRY(add(p, SF_MK_LINEAR, SHAPE(d4, d4, 1, 1), err, "encoder.middle.1.proj.weight"));
    TRY(add(p, SF_MK_BIAS, SHAPE(d4), err, "encoder.middle.1.proj.bias"));
    TRY(resblock(p, "encoder.middle.2", d4, d4, err));
    TRY(add(p, SF_MK_GAMMA, SHAPE(d4, 1, 1, 1), err, "encoder.head.0.gamma"));
    TRY(conv3(p, "encoder.head.2", 2 * (int64_t)z, d4, 3, err));
    TRY(conv3(p, "conv1", 2 * (int64_t)z, 2 * (int64_t)z, 1, err));
    return SF_OK;
#undef TRY
}

void sf_mk_params_free(sf_mk_params *p) {
    free(p->v);
    memset(p, 0, sizeof *p);
}

void sf_mk_entries_free(sf_tensor_entry *e, size_t n) {
    if (!e) return;
    for (size_t i = 0; i < n; i++) {
        free(e[i].name);
        sf_tensor_free(&e[i].t);
    }
    free(e);
}

static float init_std(const sf_mk_param *q) {
    switch (q->init) {
    case SF_MK_LINEAR: {
        int64_t fan_in = 1;
        for (int i = 1; i < q->ndim; i++) fan_in *= q->shape[i];
        return (float)(1.0 / sqrt((double)(fan_in > 0 ? fan_in : 1)));
    }
    case SF_MK_BIAS: return 0.02f;
    case SF_MK_GAMMA: return 0.05f;
    case SF_MK_EMBED: return 1.0f;
    case SF_MK_SMALL: return 0.1f;
    }
    return 0.02f;
}

/* One parameter's values: its own normal stream (seed ^ 0x9e37…·(i + 1), so perturbed checkpoints stay
 * aligned), then with a perturbation a second stream added in order, converted to the entry's dtype — in
 * chunks through the worker's scratch (each stream is read in order, so any chunking gives the same
 * values as one pass over the whole tensor). */
enum { GEN_CHUNK = 1 << 20 };
typedef struct gen_job {
    const sf_mk_params *p;
    sf_tensor_entry *e;
    uint64_t seed;
    float perturb;
    float **scratch; /* one GEN_CHUNK buffer per worker */
    const size_t *items; /* the parameters parallel_items runs (indices into p) */
    int mt;              /* > 1: this item's Box–Muller transforms on mt threads (sf_rng_fill_normal_mt) */
} gen_job;

static void gen_one(void *ctx, int64_t item, int tid) {
    const gen_job *j = ctx;
    const size_t i = j->items ? j->items[item] : (size_t)item;
    const sf_mk_param *q = &j->p->v[i];
    sf_tensor *t = &j->e[i].t;
    const size_t n = (size_t)sf_tensor_numel(t);
    const float std = init_std(q), mean = q->init == SF_MK_GAMMA ? 1.0f : 0.0f;
    float *buf = j->scratch[tid];
    sf_rng r, rp;
    sf_rng_seed(&r, j->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)));
    if (j->perturb != 0)
        sf_rng_seed(&rp, j->seed ^ 0x5851f42d4c957f2dull ^ (0xda942042e4dd58b5ull * (uint64_t)(i + 1)) ^
                             (uint64_t)(j->perturb * 1e6f));
    for (size_t off = 0; off < n; off += GEN_CHUNK) {
        const size_t m = n - off < GEN_CHUNK ? n - off : GEN_CHUNK;
        sf_rng_fill_normal_mt(&r, buf, m, mean, std, j->mt); /* the same values for any mt (rng.h) */
        if (j->perturb != 0)
            for (size_t k = 0; k < m; k++) buf[k] += j->perturb * std * (float)sf_rng_normal(&rp);
        if (t->dtype == SF_F32) memcpy((float *)t->data + off, buf, m * sizeof(float));
        else {
            uint16_t *h = (uint16_t *)t->data + off;
            for (size_t k = 0; k < m; k++) h[k] = sf_f32_to_bf16(buf[k]);
        }
    }
}

sf_status sf_mk_generate(const sf_mk_params *p, sf_dtype dtype, uint64_t seed, const char *prefix, float perturb,
                         sf_tensor_entry **entries, sf_err *err) {
    sf_status s = SF_OK;
    sf_tensor_entry *e = calloc(p->n ? p->n : 1, sizeof *e);
    if (!e) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (size_t i = 0; i < p->n; i++) { /* names and tensors first: the only steps that can fail */
        const sf_mk_param *q = &p->v[i];
        size_t len = strlen(prefix) + strlen(q->name) + 1;
        if (!(e[i].name = malloc(len))) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto fail; }
        snprintf(e[i].name, len, "%s%s", prefix, q->name);
        if ((s = sf_tensor_alloc(&e[i].t, dtype, q->ndim, q->shape, err))) goto fail;
    }
    /* the parameters on every core, each from its own streams (the same values as one thread: a full-size
       model's 2.4 G normals took ~2.5 minutes on one, and the device check writes one per call) */
    int workers = sf_cpu_count();
    if ((size_t)workers > p->n) workers = p->n ? (int)p->n : 1;
    float *scratch[256] = {0};
    if (workers > 256) workers = 256;
    for (int w = 0; w < workers; w++)
        if (!(scratch[w] = malloc(sizeof(float) * GEN_CHUNK))) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); break; }
    size_t *small = s ? NULL : malloc(sizeof(size_t) * (p->n ? p->n : 1)), n_small = 0;
    if (!s && !small) s = sf_fail(err, SF_E_NOMEM, "out of memory");
    if (!s) {
        /* a parameter of a quarter of all values or more (umT5's 1 G-value embedding: ~40 % of a full model)
           would keep one worker busy long after the others: it goes first, alone, its transforms on every
           core; then the rest, a parameter per worker */
        size_t total = 0;
        for (size_t i = 0; i < p->n; i++) total += (size_t)sf_tensor_numel(&e[i].t);
        for (size_t i = 0; i < p->n; i++) {
            if (workers > 1 && (size_t)sf_tensor_numel(&e[i].t) * 4 >= total && sf_tensor_numel(&e[i].t) >= 8192) {
                gen_job big = {p, e, seed, perturb, scratch, NULL, sf_cpu_count()};
                gen_one(&big, (int64_t)i, 0);
            } else
                small[n_small++] = i;
        }
        gen_job j = {p, e, seed, perturb, scratch, small, 1};
        sf_parallel_items((int64_t)n_small, workers, gen_one, &j);
    }
    free(small);
    for (int w = 0; w < workers; w++) free(scratch[w]);
    if (s) goto fail;
    *entries = e;
    return SF_OK;
fail:
    sf_mk_entries_free(e, p->n);
    return s;
}

sf_status sf_mk_tfile(const sf_mk_params *p, sf_dtype dtype, uint64_t seed, const char *name, sf_tfile **out,
                      sf_err *err) {
    sf_tensor_entry *e = NULL;
    sf_tfile *tf = sf_tfile_new_empty(name);
    *out = NULL;
    sf_status s = tf ? sf_mk_generate(p, dtype, seed, "", 0, &e, err) : sf_fail(err, SF_E_NOMEM, "out of memory");
    for (size_t i = 0; !s && i < p->n; i++) {
        s = sf_tfile_add(tf, e[i].name, &e[i].t, err);
        if (!s) e[i].t.owned = 0, e[i].t.data = NULL; /* the data now belongs to tf */
    }
    sf_mk_entries_free(e, p->n);
    if (s) sf_tfile_destroy(&tf);
    *out = tf;
    return s;
}

static int wants(const char *what, const char *item) {
    if (!what) return 1;
    size_t n = strlen(item);
    for (const char *p = what; *p;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == n && strncmp(p, item, n) == 0) return 1;
        p += l + (c ? 1 : 0);
    }
    return 0;
}

static sf_status mkdirs(const char *path, sf_err *err) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0777) && errno != EEXIST) return sf_fail(err, SF_E_IO, "cannot create %s: %s", tmp, strerror(errno));
            *p = '/';
        }
    if (mkdir(tmp, 0777) && errno != EEXIST) return sf_fail(err, SF_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    return SF_OK;
}

static sf_status write_torch_state(const char *path, const sf_tensor_entry *e, size_t n, sf_err *err) {
    sf_py *root = sf_py_dict();
    if (!root) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        sf_tensor view = e[i].t;
        view.owned = 0; /* the entries keep ownership */
        if (!sf_py_dict_set(root, e[i].name, sf_py_tensor(&view))) {
            sf_py_free(root);
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        }
    }
    sf_status s = sf_torch_write(path, root, err);
    sf_py_free(root);
    return s;
}

static sf_status write_config_json(const sf_dit_config *c, const char *path, sf_err *err) {
    sf_atomic_file af;
    sf_status s = sf_atomic_open(&af, path, err);
    if (s) return s;
    fprintf(af.fp,
            "{\n  \"_class_name\": \"WanModel\",\n  \"_diffusers_version\": \"0.30.0\",\n  \"dim\": %d,\n"
            "  \"eps\": %g,\n  \"ffn_dim\": %d,\n  \"freq_dim\": %d,\n  \"in_dim\": %d,\n  \"model_type\": \"t2v\",\n"
            "  \"num_heads\": %d,\n  \"num_layers\": %d,\n  \"out_dim\": %d,\n  \"text_len\": %d,\n  \"text_dim\": %d,\n"
            "  \"patch_size\": [%d, %d, %d],\n  \"qk_norm\": %s,\n  \"cross_attn_norm\": %s\n}\n",
            c->dim, c->eps, c->ffn_dim, c->freq_dim, c->in_dim, c->num_heads, c->num_layers, c->out_dim, c->text_len,
            c->text_dim, c->patch_size[0], c->patch_size[1], c->patch_size[2], c->qk_norm ? "true" : "false",
            c->cross_attn_norm ? "true" : "false");
    return sf_atomic_commit(&af, err);
}

/* p's values (dtype, seed) as the torch state dict dir/name; p is emptied (its entries freed) either way. */
sf_status sf_mk_taew2_1_params(sf_mk_params *out, sf_err *err) {
    static const int64_t nf[4] = {256, 128, 64, 64};
    static const int strides[3] = {1, 2, 2};
    return sf_mk_taehv_params(16, nf[0], nf, strides, 3, out, err);
}

static sf_status write_params(sf_mk_params *p, sf_dtype dtype, uint64_t seed, const char *dir, const char *name,
                              sf_err *err) {
    sf_tensor_entry *e = NULL;
    char path[4096];
    sf_status s = sf_mk_generate(p, dtype, seed, "", 0, &e, err);
    if (s == SF_OK) {
        snprintf(path, sizeof path, "%s/%s", dir, name);
        s = write_torch_state(path, e, p->n, err);
        sf_mk_entries_free(e, p->n);
    }
    sf_mk_params_free(p);
    return s;
}

sf_status sf_mk_write_folder(const sf_mk_spec *spec, const char *dir, const char *what, const char *ckpt_path,
                             sf_err *err) {
    sf_status s = mkdirs(dir, err);
    if (s) return s;
    char path[4096];
    sf_mk_params p = {0};
    sf_tensor_entry *e = NULL;
    if (wants(what, "config")) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        if ((s = write_config_json(&spec->dit, path, err))) return s;
    }
    if (wants(what, "dit") || ckpt_path) {
        if ((s = sf_mk_dit_params(&spec->dit, &p, err))) goto done;
        if (wants(what, "dit")) {
            if ((s = sf_mk_generate(&p, SF_F32, spec->seed, "", 0, &e, err))) goto done;
            snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
            s = sf_safetensors_write(path, e, p.n, (const char *const[]){"format", "pt"}, 1, err);
            sf_mk_entries_free(e, p.n);
            e = NULL;
            if (s) goto done;
        }
        if (ckpt_path) {
            /* generator / generator_ema: the base weights nudged two different ways, in bf16 */
            sf_tensor_entry *g = NULL, *ge = NULL;
            sf_py *root = sf_py_dict(), *dg = sf_py_dict(), *de = sf_py_dict();
            if (!root || !dg || !de) s = sf_fail(err, SF_E_NOMEM, "out of memory");
            if (!s) s = sf_mk_generate(&p, SF_BF16, spec->seed, "model.", 0.05f, &g, err);
            if (!s) s = sf_mk_generate(&p, SF_BF16, spec->seed, "model.", 0.03f, &ge, err);
            for (size_t i = 0; !s && i < p.n; i++) {
                sf_tensor a = g[i].t, b = ge[i].t;
                a.owned = b.owned = 0;
                if (!sf_py_dict_set(dg, g[i].name, sf_py_tensor(&a)) || !sf_py_dict_set(de, ge[i].name, sf_py_tensor(&b)))
                    s = sf_fail(err, SF_E_NOMEM, "out of memory");
            }
            if (!s && (!sf_py_dict_set(root, "generator", dg) || !sf_py_dict_set(root, "generator_ema", de)))
                s = sf_fail(err, SF_E_NOMEM, "out of memory");
            else if (!s) dg = de = NULL;
            if (!s) s = sf_torch_write(ckpt_path, root, err);
            sf_py_free(root);
            sf_py_free(dg);
            sf_py_free(de);
            sf_mk_entries_free(g, g ? p.n : 0);
            sf_mk_entries_free(ge, ge ? p.n : 0);
            if (s) goto done;
        }
        sf_mk_params_free(&p);
    }
    if (wants(what, "t5")) {
        if ((s = sf_mk_t5_params(&spec->t5, &p, err)) ||
            (s = write_params(&p, SF_BF16, spec->seed + 1, dir, "models_t5_umt5-xxl-enc-bf16.pth", err)))
            goto done;
    }
    if (wants(what, "vae")) {
        if ((s = sf_mk_vae_params(spec->vae_base, spec->vae_z, &p, err)) ||
            (s = write_params(&p, SF_F32, spec->seed + 2, dir, "Wan2.1_VAE.pth", err)))
            goto done;
    }
    if (wants(what, "taehv") && spec->taehv_nf[0] > 0) { /* taew2_1.pth: the TAEHV tiny decoder (sf-decode --vae) */
        const int strides[3] = {1, 2, 2};
        if ((s = sf_mk_taehv_params(spec->vae_z, spec->taehv_nf[0], spec->taehv_nf, strides, 3, &p, err)) ||
            (s = write_params(&p, SF_F32, spec->seed + 4, dir, "taew2_1.pth", err)))
            goto done;
    }
    if (wants(what, "tokenizer")) {
        snprintf(path, sizeof path, "%s/google/umt5-xxl", dir);
        if ((s = mkdirs(path, err))) goto done;
        char json[sizeof path];
        snprintf(path, sizeof path, "%s/google/umt5-xxl/spiece.model", dir);
        snprintf(json, sizeof json, "%s/google/umt5-xxl/tokenizer.json", dir);
        /* umT5's 300 <extra_id_N> where the embedding has rows for them (the real model: 256000 + 300 ≤ 256384) */
        const int64_t room = spec->t5.vocab - spec->spiece_pieces;
        const int extra = room >= 300 ? 300 : room > 0 ? (int)room : 0;
        if ((s = sf_mk_write_spiece(path, json, spec->spiece_pieces, extra, spec->seed + 3, err))) goto done;
    }
done:
    sf_mk_params_free(&p);
    return s;
}
