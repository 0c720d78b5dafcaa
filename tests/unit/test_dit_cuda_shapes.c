/* test_dit_cuda_shapes.c — sf-denoise's CUDA backend (stages/denoise/dit_cuda.c, dit_cuda_taps.c) against
 * the CPU DiT (stages/denoise/dit.c) on model shapes other than the golden tiny model's (test_dit_cuda.c
 * covers that one: dim 256, head dim 128, 24 tokens a frame). Each case makes a random f32 model in
 * memory (tools/mkmodel/mkmodel.h, fixed seed; self-attention sharpened, model_make), a CPU state and a
 * GPU state on the same weights and the same random text context, prepares both (sf_dit_prepare, as the
 * pipeline does: cuDNN plans, the fused kernel's self-check, the explicit workspace), then runs blocks at
 * increasing start frames — a denoising forward (t = 750) and the refresh forward (t = 0, same slots) of
 * each, on fresh random inputs — and holds every GPU flow within SF_TOL_BF16_FWD (2e-2 of max|ref|,
 * sf_test_rel_close: one bf16 forward; each starts from the same x, so the error does not compound) of
 * the CPU's, and every forward after sf_dit_prepare a CUDA graph. One case runs the sampling loop's
 * calls instead (sf_dit_denoise on the device slots, the refresh as sf_dit_refresh: the cache only).
 *
 * The cases cover what the CUDA code treats specially (dit_cuda.c, dit_cuda_taps.c, the kernels' shape
 * checks): head dims 64, 32, 96, 48, 20 (not a multiple of 8: cuDNN's SDPA and the fused row kernels
 * need that) and 384 (past cuDNN's 256), sfpipe's fused attention taking only 16/32/64/128; each
 * attention path — cuDNN, sfpipe's fused kernel ($SF_NO_CUDNN), the explicit cuBLASLt path
 * ($SF_NO_FUSED_ATTN too) in query chunks that divide nothing ($SF_CUDA_ATTN_CHUNK) — and the fallbacks
 * for head dims a path does not take; the unfused row kernels ($SF_CUDA_UNFUSED: the path of dim > 2048);
 * ffn dims not a multiple of 64, text dims other than the golden's, a 77-token text_len, qk_norm and
 * norm3 off, 1 and 2 layers, tokens per frame odd and not a multiple of 8 (6×10 latents: 15, 10×14: 35,
 * patch 1×2 on 5×6: 15), freq_dim 192, an independent first frame (a block of 1, then blocks of 3) and
 * rolling caches with and without a sink whose blocks evict and roll. On the emulation the attentions
 * are counted: each case checks that the path it must take (asked for, or the fallback) ran every one.
 * A case that can no longer run a shape fails at the call that refuses it, naming the shape.
 *
 * The fp8_* cases run two of these shapes with --fp8 on both backends (sf_dit_weights_fp8): the GPU's FP8 products
 * against the CPU's, within SF_TOL_FP8_GPU (bf16 activations move the dynamic scales now and then).
 *
 * The taps_* cases attach the attention taps (stages/denoise/taps.h; test_dit_cuda.c holds them on the
 * golden model only) to both states on some of these shapes and hold every capture the GPU makes to the
 * CPU's (taps_run): frames and probs over every layer, each with and without the cross-attention's
 * text-token mass, and the logits of one layer, every forward — the same forwards, layers, shapes and key
 * frames (absolute, through a rolling cache's rolls and sink), the values within test_dit_cuda.c's bounds
 * (SF_TOL_BF16_TAP). They cover the GPU taps' paths: probability masses fused with the attention for head
 * dim 64, from the explicit attention's chunks for 48 and 96 (chunks of 7 rows across frames), the frame
 * aggregates from per-frame means, the logits copied chunk by chunk, the aggregates delivered at the
 * forward's end or layer by layer; on the emulation each path is counted.
 *
 * Built twice like test_dit_cuda.c: test_dit_cuda_shapes (the real CUDA backend; SKIPs without a GPU;
 * in the GPU bundle, Makefile GPU_CHECK_TESTS) and test_dit_shapes_emu (-DSF_TEST_EMU: the CPU emulation
 * of the kernels, kernels/cuda/emu/, in every `make test`, ~15 s, two thirds of it the taps). */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "config.h"
#include "stages/denoise/dit.h"
#include "stages/denoise/dit_cuda.h"
#include "stages/denoise/taps.h"
#include "tools/mkmodel/mkmodel.h"
#include "kv_compress.h"
#ifdef SF_TEST_EMU
#include "cuda/emu/sf_emu.h"
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An attention path: cuDNN's fused attention (the default), sfpipe's own fused kernel ($SF_NO_CUDNN), the
 * explicit cuBLASLt path ($SF_NO_CUDNN + $SF_NO_FUSED_ATTN). A case asks for one and names the one that
 * must take every attention: the same, or the fallback for a head dim the asked-for path does not take. */
typedef enum attn_path { PATH_CUDNN = 0, PATH_FUSED, PATH_EXPLICIT } attn_path;

/* A model and a run; zero fields are the reference's defaults (text_len 512, qk_norm and norm3 on,
 * global attention). */
typedef struct shape_case {
    const char *name;
    int dim, heads, ffn, text_dim, text_len, layers;
    int no_qk_norm, no_cross_attn_norm;
    int lat_h, lat_w;     /* latent H, W: (H/ph)·(W/pw) tokens a frame */
    int iff;              /* an independent first frame: a block of 1 frame, then blocks of 3 */
    int blocks;           /* blocks of 3 frames (after the first frame's) */
    long las, sink;       /* local_attn_size (0: global attention over the whole video), sink frames */
    attn_path ask, runs;  /* the path asked for, the path that must run every attention */
    int unfused;          /* $SF_CUDA_UNFUSED=1: the unfused norm / RoPE / GELU kernels */
    int chunk;            /* > 0: $SF_CUDA_ATTN_CHUNK (the explicit path's query rows per chunk) */
    int ph, pw;           /* patch H, W (0: the reference's 2×2) */
    int freq_dim;         /* 0: 256 */
    int slots;            /* the sampling loop's calls: sf_dit_denoise on the device slots, the refresh as
                             sf_dit_refresh (the cache only) — instead of two sf_dit_forward */
    int fp8;              /* --fp8: the block linears in float8 on both (sf_dit_weights_fp8), bound SF_TOL_FP8_GPU */
    int fp8_refused;      /* with fp8: the GPU refuses every FP8 shape at init (no quantization on the device) */
    int ablate;           /* > 0: sink ablation of that many frames in every layer but the first, on both (--sink-ablate) */
    int sink_rope;        /* > 0: --sink-rope realign with a gap of sink_rope − 1 frames, on both */
    int kv_compress;      /* > 0: --kv-compress of that many frames, on both; the CPU keeps the GPU's tokens (kvc_follow) */
    int pc_budget, pc_recent, pc_reuse; /* > 0: --pc-budget / --pc-recent / --pc-max-reuse, on both; the CPU keeps
                             the GPU's tokens (pc_follow), the slots' reuse counts the same on both after every pass */
} shape_case;

enum { MAXF = 3, CTX_ROWS = 7 };

static float urand(uint64_t *r, double lo, double hi) { /* xorshift64, never exactly zero */
    *r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
    return (float)((double)(*r >> 11) / 9007199254740992.0 * (hi - lo) + lo) + 1e-3f;
}

static void config_of(const shape_case *c, sf_dit_config *cfg) {
    sf_dit_config_default(cfg);
    cfg->dim = c->dim, cfg->num_heads = c->heads, cfg->ffn_dim = c->ffn, cfg->text_dim = c->text_dim;
    cfg->num_layers = c->layers, cfg->qk_norm = !c->no_qk_norm, cfg->cross_attn_norm = !c->no_cross_attn_norm;
    if (c->text_len) cfg->text_len = c->text_len;
    if (c->ph) cfg->patch_size[1] = c->ph, cfg->patch_size[2] = c->pw;
    if (c->freq_dim) cfg->freq_dim = c->freq_dim;
}

/* A random f32 model of cfg's shape (sf-mkmodel's initialisation, seed 11) in an in-memory container
 * (*tf owns the tensors, w borrows them). 1 when loaded; failures are recorded. */
static int model_make(const sf_dit_config *cfg, sf_tfile **tf, sf_dit_weights *w) {
    sf_err err = {{0}};
    sf_mk_params p = {0};
    int ok = 0;
    *tf = NULL;
    SF_CHECK_OK(sf_mk_dit_params(cfg, &p, &err), &err);
    if (!err.msg[0]) SF_CHECK_OK(sf_mk_tfile(&p, SF_F32, 11, "random-shape-model", tf, &err), &err);
    sf_tensor_entry *e = *tf ? (*tf)->entries : NULL; /* the container's own tensors, sharpened in place */
    /* sharper self-attention than the initialisation's (logits ~N(0, 1), near-uniform rows over a few
       dozen keys, where a key at the wrong RoPE position or a frame missing from the window moves a flow
       by less than the bf16 tolerance): q's RMSNorm weight (q's projection without qk_norm) times 3, as a
       trained model's peaked rows. A q RoPE position off by one frame then moves the flows 3-9 % of
       max|ref| (unperturbed: <= 1 %) */
    for (size_t i = 0; e && i < (*tf)->n; i++) {
        const char *nm = e[i].name;
        if (cfg->qk_norm ? strstr(nm, "self_attn.norm_q.weight") != NULL
                         : strstr(nm, "self_attn.q.weight") != NULL || strstr(nm, "self_attn.q.bias") != NULL) {
            float *v = e[i].t.data;
            for (int64_t j = 0; j < sf_tensor_numel(&e[i].t); j++) v[j] *= 3.0f;
        }
    }
    if (e) {
        SF_CHECK_OK(sf_dit_weights_load(w, cfg, *tf, NULL, NULL, &err), &err);
        ok = !err.msg[0];
    }
    sf_mk_params_free(&p);
    return ok;
}

static void env_set(const shape_case *c, int on) {
    const int no_cudnn = c->ask != PATH_CUDNN, no_fused = c->ask == PATH_EXPLICIT;
    char chunk[32];
    snprintf(chunk, sizeof chunk, "%d", c->chunk);
    if (on && no_cudnn) setenv("SF_NO_CUDNN", "1", 1);
    if (on && no_fused) setenv("SF_NO_FUSED_ATTN", "1", 1);
    if (on && c->unfused) setenv("SF_CUDA_UNFUSED", "1", 1);
    if (on && c->chunk > 0) setenv("SF_CUDA_ATTN_CHUNK", chunk, 1);
    if (!on) unsetenv("SF_NO_CUDNN"), unsetenv("SF_NO_FUSED_ATTN"), unsetenv("SF_CUDA_UNFUSED"), unsetenv("SF_CUDA_ATTN_CHUNK");
}

/* --kv-compress on both: the CPU state keeps the tokens the GPU kept (its kvc_select seam), so that a choice
 * between two near-equal importances, which bf16 against f32 may make either way, cannot part the flows; the CPU's
 * own choice and its importances are compared with the GPU's here instead: importances within 5 % of the layer's
 * largest (bf16 keys and queries against f32), at least 90 % of the GPU's tokens among those the CPU would keep. */
typedef struct follow_tally {
    int64_t compared, differ; /* the GPU's kept tokens, and those of them the CPU's own choice leaves out */
    double worst;             /* max |Δ| / max |score| over the layers' scores */
} follow_tally;
/* The CPU's scores score beside the GPU's gs ((H, n) each) and its own choice idx beside the GPU's gi ((H, keep) each)
 * into t; then idx ← gi. −1 out of memory. */
static int follow(follow_tally *t, int H, int64_t n, const double *score, const double *gs, int64_t keep,
                  const int32_t *gi, int32_t *idx) {
    double mx = 0, md = 0;
    for (int64_t i = 0; i < H * n; i++) { /* a NaN anywhere makes worst NaN: fails the bound */
        const double d = fabs(score[i] - gs[i]);
        mx = fmax(mx, fabs(score[i]));
        if (!(d <= md)) md = d;
    }
    const double w = mx > 0 ? md / mx : md;
    if (!(w <= t->worst)) t->worst = w;
    unsigned char *mine = calloc((size_t)n + 1, 1);
    if (!mine) return -1;
    for (int h = 0; h < H; h++) { /* the GPU's tokens the CPU would not have kept */
        memset(mine, 0, (size_t)n);
        for (int64_t i = 0; i < keep; i++) mine[idx[h * keep + i]] = 1;
        for (int64_t i = 0; i < keep; i++) t->differ += !mine[gi[h * keep + i]];
    }
    free(mine);
    t->compared += H * keep;
    memcpy(idx, gi, sizeof(int32_t) * (size_t)(H * keep));
    return 0;
}

/* The device's compression of layer l (its scores and choice, sf_dit_cuda_compression: the GPU's forward ran first)
 * into the follow buffers (room for (heads, cache) each); −1 when it cannot be read. */
typedef struct follow_buf {
    sf_dit_state *gpu, *cpu;
    double *score;
    int32_t *idx;
    follow_tally t;
    int64_t fills; /* --pc-budget: the CPU's own choices' fills (the same count as the GPU's, whatever the scores) */
} follow_buf;
static int device_choice(follow_buf *f, int l, int64_t n, int64_t keep) {
    sf_err err = {{0}};
    sf_status s = sf_dit_cuda_compression(f->gpu, l, n, keep, f->score, f->idx, NULL, &err);
    SF_CHECK_OK(s, &err);
    return s ? -1 : 0;
}
static int kvc_follow_select(void *ctx, int l, int H, int64_t n, const double *score, int64_t keep, int32_t *idx) {
    follow_buf *f = ctx;
    if (sf_kv_select_cpu(H, n, score, keep, idx) || device_choice(f, l, n, keep)) return -1;
    return follow(&f->t, H, n, score, f->score, keep, f->idx, idx);
}
/* --pc-budget: the CPU's own choice with its own reuse counts (the same as the GPU's, pc_counts_same checks) */
static int pc_follow_select(void *ctx, int l, int H, int64_t n, const double *score, int64_t keep, int32_t *idx) {
    follow_buf *f = ctx;
    const int32_t *cnt = f->cpu->pc_count + (size_t)l * (size_t)f->cpu->cache_tokens + f->cpu->sink_tokens;
    const int64_t fills = H == 1 ? sf_pc_select_cpu(n, score, cnt, f->cpu->pc_max_reuse, keep, idx) : -1;
    if (fills < 0 || device_choice(f, l, n, keep)) return -1;
    f->fills += fills;
    return follow(&f->t, 1, n, score, f->score, keep, f->idx, idx);
}

/* Two states on one random model of the case's shape (model_make) — the GPU's (gs, on dev) and the CPU's
 * (cs) — with the case's attention path asked for ($SF_* set until rig_close), taps attached when given
 * (before sf_dit_prepare, as the pipeline does: it sizes the taps' buffers and the logits workspace by
 * them), the GPU's prepared, and the same random text context (CTX_ROWS real rows) on both. rig_open: 1 when
 * ready; failures are recorded. rig_close in any case. */
typedef struct rig {
    const shape_case *c;
    sf_dit_config cfg;
    sf_tfile *tf;
    sf_dit_weights w;
    sf_dit_state gs, cs;
    int nb, frames[16];        /* blocks, frames in each */
    int64_t fr;                /* latent floats a frame: in_dim·H·W */
    float *x, *fg, *fc, *emb;  /* x and the GPU's, the CPU's flow: (MAXF, in_dim, H, W); emb: (CTX_ROWS, text_dim) */
    uint64_t r;                /* the inputs' random stream */
    follow_buf kf, pf;         /* --kv-compress, --pc-budget: the CPU keeps the GPU's tokens */
} rig;

static int rig_open(rig *g, const shape_case *c, int dev, sf_taps *gt, sf_taps *ct) {
    sf_err err = {{0}};
    const int f0 = sf_test_failures;
    memset(g, 0, sizeof *g);
    g->c = c;
    config_of(c, &g->cfg);
    env_set(c, 1);
    if (!model_make(&g->cfg, &g->tf, &g->w)) return 0;
    if (c->fp8) { /* both states read the marks; the CPU's its quantized copies too */
        SF_CHECK_OK(sf_dit_weights_fp8(&g->w, 1, &err), &err);
        SF_CHECK_MSG(g->w.fp8 == 10 * g->cfg.num_layers, "%s: %d block linears in fp8", c->name, g->w.fp8);
    }
    g->nb = (c->iff ? 1 : 0) + c->blocks;
    SF_CHECK(g->nb <= 16);
    if (g->nb > 16) return 0;
    for (int b = 0; b < g->nb; b++) g->frames[b] = c->iff && b == 0 ? 1 : MAXF;
    const int total = (c->iff ? 1 : 0) + MAXF * c->blocks;
    const int64_t cache = c->las > 0 ? c->las : total;
    const long las = c->las > 0 ? c->las : -1;
    g->fr = (int64_t)g->cfg.in_dim * c->lat_h * c->lat_w;
    const size_t n = (size_t)(MAXF * g->fr);
    g->x = malloc(sizeof(float) * n), g->fg = malloc(sizeof(float) * n), g->fc = malloc(sizeof(float) * n);
    g->emb = malloc(sizeof(float) * CTX_ROWS * (size_t)g->cfg.text_dim);
    SF_CHECK(g->x && g->fg && g->fc && g->emb);
    sf_status s = sf_dit_state_init_on(&g->gs, &g->w, MAXF, c->lat_h, c->lat_w, cache, las, c->sink, 1, dev, &err);
    SF_CHECK_OK(s, &err);
    SF_CHECK_OK(sf_dit_state_init(&g->cs, &g->w, MAXF, c->lat_h, c->lat_w, cache, las, c->sink, 1, &err), &err);
    if (s || !g->cs.w || sf_test_failures != f0) return 0;
    if (gt) sf_taps_attach(gt, &g->gs), sf_taps_attach(ct, &g->cs);
    if (c->ablate) { /* layers 1 … L−1: a forward's layers attend windows of two lengths */
        int ls[64], nl = 0;
        for (int l = 1; l < g->cfg.num_layers && nl < 64; l++) ls[nl++] = l;
        SF_CHECK_OK(sf_dit_set_ablation(&g->gs, c->ablate, ls, nl, &err), &err);
        SF_CHECK_OK(sf_dit_set_ablation(&g->cs, c->ablate, ls, nl, &err), &err);
    }
    if (c->sink_rope) { /* the sink's keys moved in time once eviction opens a gap (sink_rope.c) */
        SF_CHECK_OK(sf_dit_set_sink_rope(&g->gs, 1, c->sink_rope - 1, &err), &err);
        SF_CHECK_OK(sf_dit_set_sink_rope(&g->cs, 1, c->sink_rope - 1, &err), &err);
    }
    if (c->kv_compress) { /* Participative Compression at every eviction (kv_compress.c) */
        const size_t b0 = sf_dit_cuda_bytes(&g->gs); /* set twice: counted once */
        SF_CHECK_OK(sf_dit_set_kv_compress(&g->gs, c->kv_compress, &err), &err);
        const size_t b1 = sf_dit_cuda_bytes(&g->gs);
        SF_CHECK_OK(sf_dit_set_kv_compress(&g->gs, c->kv_compress, &err), &err);
        SF_CHECK_MSG(b1 > b0 && sf_dit_cuda_bytes(&g->gs) == b1, "--kv-compress's memory: %zu, %zu once set, %zu set again",
                     b0, b1, sf_dit_cuda_bytes(&g->gs));
        SF_CHECK_OK(sf_dit_set_kv_compress(&g->cs, c->kv_compress, &err), &err);
        g->kf.gpu = &g->gs;
        g->kf.score = calloc((size_t)(g->cfg.num_heads * cache * g->cs.frame_tokens), sizeof(double));
        g->kf.idx = calloc((size_t)(g->cfg.num_heads * cache * g->cs.frame_tokens), sizeof(int32_t));
        SF_CHECK(g->kf.score && g->kf.idx);
        g->cs.kvc_select = kvc_follow_select, g->cs.kvc_select_ctx = &g->kf;
    }
    if (c->pc_budget) { /* Deep Forcing's released rule at every overflow (pc.c) */
        const size_t b0 = sf_dit_cuda_bytes(&g->gs); /* set, set again, off, on: the device memory it reports */
        SF_CHECK_OK(sf_dit_set_pc(&g->gs, c->pc_budget, c->pc_recent, 0, &err), &err);
        const size_t b1 = sf_dit_cuda_bytes(&g->gs);
        SF_CHECK_OK(sf_dit_set_pc(&g->gs, c->pc_budget, c->pc_recent, 0, &err), &err);
        SF_CHECK_MSG(b1 > b0 && sf_dit_cuda_bytes(&g->gs) == b1, "--pc-budget's memory: %zu, %zu once set, %zu set again",
                     b0, b1, sf_dit_cuda_bytes(&g->gs));
        SF_CHECK_OK(sf_dit_set_pc(&g->gs, 0, 0, 0, &err), &err);
        SF_CHECK(sf_dit_cuda_bytes(&g->gs) == b0);
        SF_CHECK_OK(sf_dit_set_pc(&g->gs, c->pc_budget, c->pc_recent, c->pc_reuse, &err), &err);
        SF_CHECK_OK(sf_dit_set_pc(&g->cs, c->pc_budget, c->pc_recent, c->pc_reuse, &err), &err);
        g->pf.gpu = &g->gs, g->pf.cpu = &g->cs;
        g->pf.score = calloc((size_t)g->cs.cache_tokens, sizeof(double));
        g->pf.idx = calloc((size_t)g->cs.cache_tokens, sizeof(int32_t));
        SF_CHECK(g->pf.score && g->pf.idx);
        g->cs.kvc_select = pc_follow_select, g->cs.kvc_select_ctx = &g->pf;
    }
    SF_CHECK_OK(sf_dit_prepare(&g->gs, g->nb, g->frames, &err), &err);
    g->r = 0x9E3779B97F4A7C15ull ^ (uint64_t)(c->dim * 131 + c->heads * 7 + c->lat_w);
    for (int64_t i = 0; i < CTX_ROWS * (int64_t)g->cfg.text_dim; i++) g->emb[i] = urand(&g->r, -1.0, 1.0);
    SF_CHECK_OK(sf_dit_set_context(&g->gs, g->emb, CTX_ROWS, &err), &err);
    SF_CHECK_OK(sf_dit_set_context(&g->cs, g->emb, CTX_ROWS, &err), &err);
    return sf_test_failures == f0;
}

static void rig_close(rig *g) {
    env_set(g->c, 0);
    sf_dit_state_free(&g->gs);
    sf_dit_state_free(&g->cs);
    sf_dit_weights_free(&g->w);
    sf_tfile_destroy(&g->tf);
    free(g->x), free(g->fg), free(g->fc), free(g->emb), free(g->pf.score), free(g->pf.idx), free(g->kf.score), free(g->kf.idx);
}

/* Fresh random inputs for block b's F frames from start: pass k (0: the denoising step at t = 750, 1: the
 * refresh at t = 0, same slots); what the forward would say in a failure into nm. */
static void rig_input(rig *g, int b, int k, int64_t start, const char *what, char *nm, size_t nn, float t[MAXF]) {
    const int F = g->frames[b];
    for (int64_t i = 0; i < F * g->fr; i++) g->x[i] = urand(&g->r, -2.0, 2.0);
    for (int f = 0; f < MAXF; f++) t[f] = k ? 0.0f : 750.0f;
    snprintf(nm, nn, "%s: block %d (%d frames from %lld) %s %s", g->c->name, b, F, (long long)start,
             k ? "refresh" : "denoise", what);
}

/* Both states' forwards of that pass (sf_dit_forward), the GPU's flow within SF_TOL_BF16_FWD of the CPU's. */
static void rig_forward(rig *g, int b, int k, int64_t start, const char *what) {
    sf_err err = {{0}};
    char nm[192];
    float t[MAXF];
    rig_input(g, b, k, start, what, nm, sizeof nm, t);
    SF_CHECK_OK(sf_dit_forward(&g->gs, g->x, g->frames[b], t, start, g->fg, &err), &err);
    SF_CHECK_OK(sf_dit_forward(&g->cs, g->x, g->frames[b], t, start, g->fc, &err), &err);
    sf_test_rel_close(nm, g->fg, g->fc, (size_t)(g->frames[b] * g->fr), g->c->fp8 ? SF_TOL_FP8_GPU : SF_TOL_BF16_FWD);
}

/* --pc-budget: every layer's reuse counts on the device equal the CPU's (which kept the same tokens), after block b */
static void pc_counts_same(rig *g, int b) {
    sf_err err = {{0}};
    const int64_t cache = g->cs.cache_tokens;
    int32_t *cnt = malloc(sizeof(int32_t) * (size_t)cache);
    SF_CHECK(cnt != NULL);
    for (int l = 0; cnt && l < g->cfg.num_layers && !sf_test_failures; l++) {
        SF_CHECK_OK(sf_dit_cuda_compression(&g->gs, l, 0, 0, g->pf.score, g->pf.idx, cnt, &err), &err);
        const int32_t *want = g->cs.pc_count + (size_t)l * (size_t)cache;
        int64_t i = 0;
        while (i < cache && cnt[i] == want[i]) i++;
        SF_CHECK_MSG(i == cache, "%s: after block %d, layer %d slot %lld: reuse count GPU %d, CPU %d", g->c->name, b, l,
                     (long long)i, i < cache ? cnt[i] : 0, i < cache ? want[i] : 0);
    }
    free(cnt);
}

/* The case: GPU flows against the CPU's, block by block (see the top of the file). */
static void shape_run(const shape_case *c) {
    const char *name = c->name;
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    rig g;
#ifdef SF_TEST_EMU
    const unsigned long long q0 = sf_emu_sdpa_calls(), f0 = sf_emu_kernel_launches("attn_plain");
    const unsigned long long c0 = sf_emu_kernel_launches("fp8_codes_kernel");
#endif
    long long attns = 0; /* attentions the GPU ran: self + cross in each layer of each forward */
    if (rig_open(&g, c, dev, NULL, NULL)) {
        const int nb = g.nb, nl = g.cfg.num_layers;
        int64_t start = 0;
        for (int b = 0; b < nb && !sf_test_failures; b++) {
            const int F = g.frames[b];
            for (int k = 0; k < 2; k++) { /* a denoising step, then the refresh at t = 0 (same slots) */
                if (!c->slots) {
                    rig_forward(&g, b, k, start, "flow");
                    attns += 2LL * nl;
                    continue;
                }
                /* the sampling loop's calls: x in the device slot, the denoising forward with flow → x0 on
                   the device (the flow recovered from it, (x − x0)/σ, f32: far below the bound), the refresh
                   writing only the cache — checked through the next blocks' forwards */
                char nm[192];
                float t[MAXF];
                rig_input(&g, b, k, start, "flow (from x0)", nm, sizeof nm, t);
                for (int m = 0; m < 2; m++) {
                    sf_dit_state *st = m ? &g.cs : &g.gs;
                    SF_CHECK_OK(sf_dit_lat_put(st, SF_LAT_X, g.x, F * g.fr, &err), &err);
                    if (k) SF_CHECK_OK(sf_dit_refresh(st, F, t, start, &err), &err);
                    else {
                        float *out = m ? g.fc : g.fg;
                        SF_CHECK_OK(sf_dit_denoise(st, F, t, start, 0.75, SF_LAT_X0, &err), &err);
                        SF_CHECK_OK(sf_dit_lat_get(st, SF_LAT_X0, out, F * g.fr, &err), &err);
                        for (int64_t i = 0; i < F * g.fr; i++) out[i] = (float)(((double)g.x[i] - out[i]) / 0.75);
                    }
                }
                /* the refresh's last layer stops after its K/V (sf_dit_kv_only_layer): no attention there, unless
                   --kv-compress keeps its queries */
                attns += 2LL * (k && !c->kv_compress && !c->pc_budget ? nl - 1 : nl);
                if (!k) sf_test_rel_close(nm, g.fg, g.fc, (size_t)(F * g.fr), c->fp8 ? SF_TOL_FP8_GPU : SF_TOL_BF16_FWD);
            }
            if (c->pc_budget) pc_counts_same(&g, b);
            start += F;
        }
        if (sf_test_failures) goto done; /* the first failure says it; the counts below would only echo it */
        SF_CHECK_MSG(g.gs.local_end == g.cs.local_end && g.gs.global_end == g.cs.global_end,
                     "%s: cache ends GPU %lld/%lld, CPU %lld/%lld", name, (long long)g.gs.local_end,
                     (long long)g.gs.global_end, (long long)g.cs.local_end, (long long)g.cs.global_end);
        SF_CHECK_MSG(g.gs.sink_shift == g.cs.sink_shift && (c->pc_budget || (g.gs.sink_shift > 0) == (c->sink_rope > 0)),
                     "%s: the sink's shift at the end: GPU %lld, CPU %lld", name, (long long)g.gs.sink_shift,
                     (long long)g.cs.sink_shift);
        SF_CHECK_MSG(g.gs.kvc_runs == g.cs.kvc_runs && (g.gs.kvc_runs > 0) == (c->kv_compress > 0),
                     "%s: compressions GPU %lld, CPU %lld", name, (long long)g.gs.kvc_runs, (long long)g.cs.kvc_runs);
        SF_CHECK_MSG(g.kf.t.worst <= 0.05 && g.kf.t.differ * 10 <= g.kf.t.compared,
                     "%s: the GPU's importances within %.3g of the largest (bound 0.05); %lld of its %lld kept tokens "
                     "the CPU would not keep", name, g.kf.t.worst, (long long)g.kf.t.differ, (long long)g.kf.t.compared);
        SF_CHECK_MSG(g.gs.pc_runs == g.cs.pc_runs && (g.gs.pc_runs > 0) == (c->pc_budget > 0) && g.pf.t.worst <= 0.05 &&
                         g.pf.t.differ * 10 <= g.pf.t.compared && g.gs.pc_fills == g.pf.fills,
                     "%s: --pc-budget compressions GPU %lld, CPU %lld; scores within %.3g of the largest (bound 0.05); "
                     "%lld of the GPU's %lld chosen tokens the CPU would not choose; fills GPU %lld, CPU %lld", name,
                     (long long)g.gs.pc_runs, (long long)g.cs.pc_runs, g.pf.t.worst, (long long)g.pf.t.differ,
                     (long long)g.pf.t.compared, (long long)g.gs.pc_fills, (long long)g.pf.fills);
        /* CUDA graphs: sf_dit_prepare readied every shape, so every forward is one. On a GPU a library may
           load on a plan's first execution, inside the capture of a shape's first forward: then at most
           one failed capture per block's shape, that forward run directly (test_dit_cuda `graphs`) */
        sf_cuda_graph_stats gst;
        sf_dit_cuda_graph_stats(&g.gs, &gst);
#ifdef SF_TEST_EMU
        const int graphs_ok = gst.failed == 0 && gst.launches == 2LL * nb; /* a compressing forward too */
#else
        const int graphs_ok = gst.failed <= nb && gst.launches == 2LL * nb - gst.failed;
#endif
        SF_CHECK_MSG(graphs_ok, "%s: %lld graphs launched for %d forwards, %lld failed captures", name, gst.launches,
                     2 * nb, gst.failed);
#ifdef SF_TEST_EMU
        /* the attention path asked for took every attention */
        const unsigned long long q = sf_emu_sdpa_calls() - q0, f = sf_emu_kernel_launches("attn_plain") - f0;
        const unsigned long long want_q = c->runs == PATH_CUDNN ? (unsigned long long)attns : 0;
        const unsigned long long want_f = c->runs == PATH_FUSED ? (unsigned long long)attns : 0;
        SF_CHECK_MSG(q == want_q && f == want_f, "%s: %llu cuDNN attentions (want %llu), %llu fused (want %llu)", name,
                     q, want_q, f, want_f);
        /* --fp8: the products' inputs were quantized on the device (the golden test, test_fp8_cuda, tells fp8's
           numbers from bf16's; here the bound alone could not) */
        const unsigned long long nq = sf_emu_kernel_launches("fp8_codes_kernel") - c0;
        SF_CHECK_MSG(c->fp8 && !c->fp8_refused ? nq >= (unsigned long long)(2 * nb * nl) : nq == 0,
                     "%s: %llu fp8 quantizations in %d forwards of %d layers", name, nq, 2 * nb, nl);
#endif
    }
done:
    rig_close(&g);
}

/* ---------------------------------------------------------------- attention taps */

/* A tap run: the mode, with the cross-attention's text-token mass or not, every layer or one. */
typedef struct tap_spec {
    sf_tap_mode mode;
    int cross; /* --tap-cross */
    int layer; /* < 0: every layer (--layer_indices all); else that one */
} tap_spec;

static const char *mode_name(sf_tap_mode m) {
    return m == SF_TAP_LOGITS ? "logits" : m == SF_TAP_FRAMES ? "frames" : m == SF_TAP_TOKENS ? "tokens" : "probs";
}

/* Capture a (GPU) against b (CPU), one tensor each, within test_dit_cuda.c's bounds for the same
 * comparisons: SF_TOL_BF16_TAP of the tensor's max for the f16 logits and the masses; each mass row a
 * distribution over its key frames (self) or real tokens (cross) within 1e-5, and the log-sum-exp statistics
 * within SF_TOL_BF16_TAP·(1 + |ref|). The frame aggregates (mean logits) within SF_TOL_BF16_TAP of scale,
 * the largest of the layer's aggregates in the run (frames_scale): a block of one frame has one aggregate a
 * head, and a mean of logits can cancel to near 0 (head_dim_48_rolling's first frame, refreshed: max|ref|
 * 0.094 where layer 0's reach 1.02), where the bf16 logits' error (0.0046 there, on the emulation) is 4.8 %
 * of the tensor's own max. 1 when all hold. */
static int cap_close(const char *nm, const sf_tap_capture *a, const sf_tap_capture *b, double scale) {
    const int f0 = sf_test_failures;
    const int64_t QF = a->Lq / a->frame_tokens, NG = b->groups > 0 ? b->groups : a->Lk / a->frame_tokens;
    SF_CHECK_MSG(a->groups == b->groups, "%s: %lld groups on the GPU, %lld on the CPU", nm, (long long)a->groups,
                 (long long)b->groups);
    if (a->groups != b->groups) return 0;
    if (b->logits) { /* f16, both: the GPU's converted on the device, the CPU's from its f32 logits */
        const size_t n = (size_t)a->heads * (size_t)a->Lq * (size_t)a->Lk;
        float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
        SF_CHECK_MSG(a->logits != NULL, "%s: the GPU kept no logits", nm);
        SF_CHECK(x && y);
        if (sf_test_failures == f0) {
            for (size_t i = 0; i < n; i++)
                x[i] = sf_f16_to_f32(a->logits[i]), y[i] = sf_f16_to_f32(b->logits[i]);
            sf_test_rel_close(nm, x, y, n, SF_TOL_BF16_TAP);
        }
        free(x), free(y);
        return sf_test_failures == f0;
    }
    SF_CHECK_MSG(a->frames != NULL && (a->stats != NULL) == (b->stats != NULL), "%s: the GPU's capture has %s", nm,
                 !a->frames ? "no aggregate" : a->stats ? "statistics (the CPU's none)" : "no statistics");
    if (sf_test_failures != f0) return 0;
    if (b->stats) sf_test_rel_close(nm, a->frames, b->frames, (size_t)(a->heads * QF * NG), SF_TOL_BF16_TAP);
    else sf_test_max_close(nm, a->frames, b->frames, (size_t)(a->heads * QF * NG), 0, SF_TOL_BF16_TAP * scale);
    for (int64_t k = 0; b->stats && k < a->heads * QF && sf_test_failures == f0; k++) { /* probs / tokens / cross */
        double sum = 0;
        for (int64_t g = 0; g < NG; g++) sum += a->frames[k * NG + g];
        /* a distribution over the key frames / real tokens; tokens: the leading frames' share (stats[3]) */
        const double want = b->groups > 0 ? a->stats[k * SF_TAP_NSTATS + 3] : 1.0;
        SF_CHECK_MSG(fabs(sum - want) < 1e-5, "%s row %lld sums to %.8f (want %.8f)", nm, (long long)k, sum, want);
        for (int j = 0; j < SF_TAP_NSTATS; j++) {
            float x = a->stats[k * SF_TAP_NSTATS + j], y = b->stats[k * SF_TAP_NSTATS + j];
            SF_CHECK_MSG(fabsf(x - y) <= SF_TOL_BF16_TAP * (1 + fabsf(y)), "%s row %lld stats[%d]: %g vs %g", nm,
                         (long long)k, j, x, y);
        }
    }
    return sf_test_failures == f0;
}

/* Frames mode: the largest |aggregate| of the CPU's self-attention captures of layer l (cap_close). */
static double frames_scale(const sf_taps *ct, int l) {
    double m = 0;
    for (size_t i = 0; i < ct->n_caps; i++) {
        const sf_tap_capture *c = &ct->caps[i];
        const size_t n = (size_t)(c->heads * (c->Lq / c->frame_tokens) * (c->Lk / c->frame_tokens));
        const double x = c->layer == l && !c->cross && c->frames && !c->stats ? sf_test_maxabs(c->frames, n) : 0;
        m = x > m ? x : m;
    }
    return m;
}

/* Every capture the GPU kept (gt) against the CPU's (ct), in the CPU's order: the same forward, layer, kind
 * (self / cross) and shape, for the self-attention the same absolute frame in every key slot (a rolling
 * cache's sink and rolled frames), then the values (cap_close). Says at most 6 bad captures. */
static void caps_compare(const char *name, const sf_taps *gt, const sf_taps *ct) {
    int bad = 0;
    for (size_t i = 0; i < gt->n_caps && i < ct->n_caps && bad < 6; i++) {
        const sf_tap_capture *a = &gt->caps[i], *b = &ct->caps[i];
        char nm[192];
        const char *kind = b->cross ? "cross" : ct->mode == SF_TAP_LOGITS ? "taps" : mode_name(ct->mode);
        snprintf(nm, sizeof nm, "%s: %s.L%d.b%d.s%d", name, kind, b->layer, b->block, b->step);
        const int same = a->layer == b->layer && a->block == b->block && a->step == b->step && a->cross == b->cross &&
                         a->start_frame == b->start_frame && a->heads == b->heads && a->Lq == b->Lq && a->Lk == b->Lk &&
                         a->frame_tokens == b->frame_tokens && a->n_real == b->n_real;
        SF_CHECK_MSG(same, "%s (capture %zu): GPU L%d b%d s%d %s from %lld, %d×%lld×%lld (%lld real), CPU L%d b%d "
                     "s%d %s from %lld, %d×%lld×%lld (%lld real)", nm, i, a->layer, a->block, a->step,
                     a->cross ? "cross" : "self", (long long)a->start_frame, a->heads, (long long)a->Lq,
                     (long long)a->Lk, (long long)a->n_real, b->layer, b->block, b->step, b->cross ? "cross" : "self",
                     (long long)b->start_frame, b->heads, (long long)b->Lq, (long long)b->Lk, (long long)b->n_real);
        const int64_t nf = b->cross ? 0 : b->Lk / b->frame_tokens;
        int64_t f = 0;
        while (same && a->key_frames && f < nf && a->key_frames[f] == b->key_frames[f]) f++;
        SF_CHECK_MSG(!same || f == nf, "%s: key slot %lld holds frame %lld on the GPU, %lld on the CPU", nm,
                     (long long)f, a->key_frames ? (long long)a->key_frames[f] : -1LL, (long long)b->key_frames[f]);
        bad += !(same && f == nf && cap_close(nm, a, b, frames_scale(ct, b->layer)));
    }
}

#ifdef SF_TEST_EMU
/* The emulation's counts of the kernels that tell the taps' paths apart. */
typedef struct path_counts {
    unsigned long long fused_mass; /* attn_mass.cu with key groups: the attention and its masses in one pass */
    unsigned long long mass_rows;  /* tap_mass.cu: the masses from an explicit attention chunk's logits */
    unsigned long long frame_aggs; /* frames mode: the aggregate from per-frame means, on the device */
    unsigned long long token_mass; /* tokens mode: the leading keys' masses from the fused attention's lse */
} path_counts;
static path_counts path_counts_now(void) {
    path_counts p = {sf_emu_kernel_launches("attn_mass_groups"), sf_emu_kernel_launches("tap_row_mass"),
                     sf_emu_kernel_launches("frame_logit_means"), sf_emu_kernel_launches("tap_token_mass_kernel")};
    return p;
}

/* The paths a tap run's forwards took on the GPU (counted since p0): probability masses fused with the
 * attention for every tapped self-attention when the head dim is the fused kernel's (16/32/64/128) and the
 * case's path allows it, else none fused and at least a chunk of explicit masses each; at least one chunk
 * of explicit masses for each cross-attention tap; a frame aggregate made on the device for each frames-
 * mode tap; and, without cross-attention or logits taps, every forward a CUDA graph (the aggregates wait
 * on the device until the forward's end). */
static void taps_paths(const char *name, const shape_case *c, const rig *g, tap_spec sp, int nl,
                       const path_counts *p0) {
    const path_counts p = path_counts_now();
    const unsigned long long selfs = (unsigned long long)(2 * g->nb * nl), m = p.fused_mass - p0->fused_mass;
    const unsigned long long r = p.mass_rows - p0->mass_rows, a = p.frame_aggs - p0->frame_aggs;
    const int hd = g->cfg.dim / g->cfg.num_heads;
    const int fused = (hd == 16 || hd == 32 || hd == 64 || hd == 128) && c->ask != PATH_EXPLICIT;
    if (sp.mode == SF_TAP_PROBS && fused)
        SF_CHECK_MSG(m == selfs, "%s: %llu fused attention + mass launches (want %llu)", name, m, selfs);
    if (sp.mode == SF_TAP_PROBS && !fused)
        SF_CHECK_MSG(m == 0 && r >= selfs, "%s: %llu fused attention + mass launches (want none: head dim %d, %s), "
                     "%llu explicit mass chunks (want >= %llu)", name, m, hd,
                     c->ask == PATH_EXPLICIT ? "the explicit path asked for" : "not the fused kernel's", r, selfs);
    if (sp.mode == SF_TAP_FRAMES)
        SF_CHECK_MSG(a == selfs, "%s: %llu frame aggregates made on the device (want %llu)", name, a, selfs);
    const unsigned long long t = p.token_mass - p0->token_mass;
    if (sp.mode == SF_TAP_TOKENS) /* the fused attention's lse + the leading keys' logits, else explicit rows */
        SF_CHECK_MSG(m == 0 && (fused ? t == selfs : t == 0 && r >= selfs), "%s: %llu token-mass launches (want %llu), "
                     "%llu fused mass launches (want 0), %llu explicit mass chunks", name, t, fused ? selfs : 0ULL, m, r);
    if (sp.cross) SF_CHECK_MSG(r >= selfs, "%s: %llu mass chunks for %llu cross-attention taps", name, r, selfs);
    sf_cuda_graph_stats gst;
    sf_dit_cuda_graph_stats(&g->gs, &gst);
    if (sp.mode != SF_TAP_LOGITS && !sp.cross)
        SF_CHECK_MSG(gst.failed == 0 && gst.launches == 2LL * g->nb, "%s: %lld graphs launched for %d forwards, "
                     "%lld failed captures", name, gst.launches, 2 * g->nb, gst.failed);
}
#endif

/* With --sink-ablate (layers 1 … L−1, rig_open): each ablated layer's self-attention capture against layer 0's of
 * the same forward (not ablated: the whole window): min(ablate frames, the context's) fewer key slots, the same
 * absolute frames from there on, the window kept beside them when it lost any (win_frames = layer 0's), and at least
 * one capture that lost slots. Says the first mismatch. */
static void ablated_caps(const char *name, const shape_case *c, const sf_taps *ct) {
    int shorter = 0;
    for (size_t i = 0; i < ct->n_caps; i++) {
        const sf_tap_capture *a = &ct->caps[i], *w = NULL;
        for (size_t j = 0; j < ct->n_caps && !w && !a->cross && a->layer > 0; j++)
            if (!ct->caps[j].cross && ct->caps[j].layer == 0 && ct->caps[j].block == a->block && ct->caps[j].step == a->step)
                w = &ct->caps[j];
        if (!w) continue;
        const int64_t S = a->frame_tokens, ctx = (w->Lk - w->Lq) / S, skip = c->ablate < ctx ? c->ablate : ctx;
        int ok = a->Lk == w->Lk - skip * S;
        for (int64_t f = 0; ok && f < a->Lk / S; f++) ok = a->key_frames[f] == w->key_frames[f + skip];
        ok = ok && (skip ? a->win_frames && a->win_slots == w->Lk / S : !a->win_frames);
        for (int64_t f = 0; ok && skip && f < a->win_slots; f++) ok = a->win_frames[f] == w->key_frames[f];
        SF_CHECK_MSG(ok, "%s: layer %d b%d s%d keeps %lld key slots from frame %lld; the window has %lld from frame "
                     "%lld, %lld of them context (ablating %d)", name, a->layer, a->block, a->step,
                     (long long)(a->Lk / S), (long long)a->key_frames[0], (long long)(w->Lk / S),
                     (long long)w->key_frames[0], (long long)ctx, c->ablate);
        if (!ok) return;
        shorter += skip > 0;
    }
    SF_CHECK_MSG(shorter > 0, "%s: no ablated capture lost a key slot", name);
}

/* Case c's blocks with taps of spec sp attached to both states before sf_dit_prepare (as the pipeline
 * attaches them: the GPU sizes its tap buffers and logits workspace by them), every forward tapped
 * (--tap-select all): the GPU's flows held to the CPU's as in shape_run (taps must not change them: a
 * probs-tapped layer runs another attention kernel), then the captures, as many as the CPU's — each
 * forward's self-attention of each tapped layer, and its cross-attention with sp.cross — each against the
 * CPU's (caps_compare); on the emulation also the paths they took (taps_paths). */
static void taps_run(const shape_case *c, tap_spec sp) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    sf_dit_config cfg;
    config_of(c, &cfg);
    const int nl = sp.layer < 0 ? cfg.num_layers : 1, f0 = sf_test_failures;
    int layers[64];
    SF_CHECK(cfg.num_layers <= 64 && sp.layer < cfg.num_layers);
    if (cfg.num_layers > 64 || sp.layer >= cfg.num_layers) return;
    for (int l = 0; l < nl; l++) layers[l] = sp.layer < 0 ? l : sp.layer;
    sf_taps gt, ct;
    SF_CHECK_OK(sf_taps_init(&gt, sp.mode, SF_TAP_SEL_ALL, 0, 0, layers, nl, cfg.num_layers, &err), &err);
    SF_CHECK_OK(sf_taps_init(&ct, sp.mode, SF_TAP_SEL_ALL, 0, 0, layers, nl, cfg.num_layers, &err), &err);
    gt.cross = ct.cross = sp.cross;
    gt.token_frames = ct.token_frames = 2; /* tokens mode: the sink slot and the one after it */
    gt.nthreads = ct.nthreads = 1;
    char what[96], name[160];
    snprintf(what, sizeof what, "flow with %s taps%s of %s", mode_name(sp.mode), sp.cross ? " + cross" : "",
             sp.layer < 0 ? "every layer" : "one layer");
    snprintf(name, sizeof name, "%s, %s", c->name, what + strlen("flow with "));
    rig g;
    if (sf_test_failures != f0) {
        sf_taps_free(&gt), sf_taps_free(&ct);
        return;
    }
    if (rig_open(&g, c, dev, &gt, &ct)) {
#ifdef SF_TEST_EMU
        const path_counts p0 = path_counts_now(); /* from the first forward on: sf_dit_prepare's self-check is not */
#endif
        int64_t start = 0;
        for (int b = 0; b < g.nb && sf_test_failures == f0; b++) {
            for (int k = 0; k < 2; k++) { /* a denoising step, then the refresh at t = 0 (same slots) */
                sf_taps_on_forward(&gt, b, k, start), sf_taps_on_forward(&ct, b, k, start);
                rig_forward(&g, b, k, start, what);
            }
            start += g.frames[b];
        }
        const size_t want = (size_t)(2 * g.nb * nl * (sp.cross ? 2 : 1)); /* a forward: self (+ cross) a layer */
        SF_CHECK_MSG(sf_test_failures != f0 || (gt.n_caps == want && ct.n_caps == want),
                     "%s: %zu GPU, %zu CPU captures (want %zu)", name, gt.n_caps, ct.n_caps, want);
        if (sf_test_failures == f0 && c->ablate) ablated_caps(name, c, &ct), ablated_caps(name, c, &gt);
        if (sf_test_failures == f0) caps_compare(name, &gt, &ct);
#ifdef SF_TEST_EMU
        if (sf_test_failures == f0) taps_paths(name, c, &g, sp, nl, &p0);
#endif
    }
    rig_close(&g);
    sf_taps_free(&gt);
    sf_taps_free(&ct);
}

/* Case c's tap runs, each on fresh states. */
static void taps_runs(const shape_case *c, const tap_spec *specs, size_t n) {
    for (size_t i = 0; i < n; i++) taps_run(c, specs[i]);
}

/* head dim 64 (dim 192, 3 heads) on cuDNN's attention, ffn 320, text_dim 48, 2 layers, 15 tokens a frame,
 * global attention */
static const shape_case case_head_dim_64 = {.name = "head_dim_64", .dim = 192, .heads = 3, .ffn = 320, .text_dim = 48,
                                            .layers = 2, .lat_h = 6, .lat_w = 10, .blocks = 2, .ask = PATH_CUDNN,
                                            .runs = PATH_CUDNN};
static void test_head_dim_64(void) { shape_run(&case_head_dim_64); }

/* head dim 32 (dim 128, 4 heads) on sfpipe's fused kernel, ffn 200, text_dim 100, 1 layer, 35 tokens a
 * frame (10×14), an independent first frame */
static void test_head_dim_32_fused(void) {
    shape_case c = {.name = "head_dim_32_fused", .dim = 128, .heads = 4, .ffn = 200, .text_dim = 100, .layers = 1,
                    .lat_h = 10, .lat_w = 14, .iff = 1, .blocks = 2, .ask = PATH_FUSED, .runs = PATH_FUSED};
    shape_run(&c);
}

/* head dim 96 (dim 192, 2 heads): cuDNN takes it (a multiple of 8, ≤ 256); run by the sampling loop's calls,
 * the refresh of this 1-layer model stopping in its only layer once the K/V are cached */
static void test_head_dim_96(void) {
    shape_case c = {.name = "head_dim_96", .dim = 192, .heads = 2, .ffn = 200, .text_dim = 64, .layers = 1,
                    .lat_h = 6, .lat_w = 10, .iff = 1, .blocks = 3, .ask = PATH_CUDNN, .runs = PATH_CUDNN,
                    .slots = 1};
    shape_run(&c);
}

/* head dim 96 on the explicit cuBLASLt path, in query chunks of 7 rows (dividing neither 15 nor 45) */
static const shape_case case_head_dim_96_explicit = {.name = "head_dim_96_explicit", .dim = 192, .heads = 2, .ffn = 200,
                                                     .text_dim = 64, .layers = 1, .lat_h = 6, .lat_w = 10, .blocks = 2,
                                                     .ask = PATH_EXPLICIT, .runs = PATH_EXPLICIT, .chunk = 7};
static void test_head_dim_96_explicit(void) { shape_run(&case_head_dim_96_explicit); }

/* head dim 48 (dim 96, 2 heads) with a rolling cache of 6 frames and a 1-frame sink: a first frame, then
 * 4 blocks of 3 (from the third block on each evicts and rolls frames down); sfpipe's fused kernel asked
 * for, which does not take d = 48: every attention falls back to the explicit path */
static const shape_case case_head_dim_48_rolling = {.name = "head_dim_48_rolling", .dim = 96, .heads = 2, .ffn = 256,
                                                    .text_dim = 64, .layers = 2, .lat_h = 6, .lat_w = 10, .iff = 1,
                                                    .blocks = 4, .las = 6, .sink = 1, .ask = PATH_FUSED,
                                                    .runs = PATH_EXPLICIT};
static void test_head_dim_48_rolling(void) { shape_run(&case_head_dim_48_rolling); }

/* the unfused row kernels ($SF_CUDA_UNFUSED: LayerNorm, modulation, RMSNorm, RoPE, GELU each on its own,
 * as for dim > 2048) with head dim 64 (dim 128, 2 heads) on the fused attention, without qk_norm and
 * norm3, a 77-token text, 1 layer, 35 tokens a frame */
static void test_unfused_no_norms(void) {
    shape_case c = {.name = "unfused_no_norms", .dim = 128, .heads = 2, .ffn = 200, .text_dim = 72, .text_len = 77,
                    .layers = 1, .no_qk_norm = 1, .no_cross_attn_norm = 1, .lat_h = 10, .lat_w = 14, .iff = 1,
                    .blocks = 2, .ask = PATH_FUSED, .runs = PATH_FUSED, .unfused = 1};
    shape_run(&c);
}

/* head dim 20 (dim 80, 4 heads), not a multiple of 8: cuDNN's attention and the fused row kernels do not
 * take it, sfpipe's fused attention neither; the default run must fall back to the explicit path and
 * the unfused kernels (it used to stop at sf_dit_prepare / the first forward with cuDNN's "bad shape") */
static void test_head_dim_20(void) {
    shape_case c = {.name = "head_dim_20", .dim = 80, .heads = 4, .ffn = 200, .text_dim = 64, .layers = 1,
                    .lat_h = 6, .lat_w = 10, .iff = 1, .blocks = 1, .ask = PATH_CUDNN, .runs = PATH_EXPLICIT};
    shape_run(&c);
}

/* head dim 384 (dim 384, 1 head): past cuDNN's 256, not the fused kernel's; the default run falls back to
 * the explicit path */
static void test_head_dim_384(void) {
    shape_case c = {.name = "head_dim_384", .dim = 384, .heads = 1, .ffn = 200, .text_dim = 64, .layers = 1,
                    .lat_h = 6, .lat_w = 10, .blocks = 1, .ask = PATH_CUDNN, .runs = PATH_EXPLICIT};
    shape_run(&c);
}

/* patch 1×2 (the reference's is 2×2) on 5×6 latents: 15 tokens a frame from an odd latent height; freq_dim
 * 192; a rolling cache of 5 frames without a sink (from the third block on each evicts and rolls) */
static const shape_case case_patch_1x2_rolling = {.name = "patch_1x2_rolling", .dim = 128, .heads = 2, .ffn = 200,
                                                  .text_dim = 64, .layers = 1, .lat_h = 5, .lat_w = 6, .iff = 1,
                                                  .blocks = 3, .las = 5, .sink = 0, .ask = PATH_CUDNN,
                                                  .runs = PATH_CUDNN, .ph = 1, .pw = 2, .freq_dim = 192};
static void test_patch_1x2_rolling(void) { shape_run(&case_patch_1x2_rolling); }

/* A case of another: its shapes, run with --fp8 and / or --sink-ablate on both backends */
static void run_variant(shape_case c, const char *name, int fp8, int ablate) {
    c.name = name, c.fp8 = fp8, c.ablate = ablate;
    shape_run(&c);
}

/* --fp8 on both backends: head dim 64 on cuDNN, global attention (the K|V projection split in two FP8
 * products, q/k/v sharing one quantization); and head dim 48 with an independent first frame and a rolling
 * cache with a sink, on the explicit path */
static void test_fp8_head_dim_64(void) { run_variant(case_head_dim_64, "fp8_head_dim_64", 1, 0); }
static void test_fp8_head_dim_48_rolling(void) { run_variant(case_head_dim_48_rolling, "fp8_head_dim_48_rolling", 1, 0); }

/* --sink-ablate on both backends, in every layer but the first (each forward attends two window lengths, as one
 * CUDA graph): on cuDNN with global attention, and on the explicit path with a rolling cache, a sink and an
 * independent first frame — the GPU's flows within the bf16 bound of the CPU's (whose ablation test_dit_longvideo
 * holds to a brute force) */
static void test_ablate_head_dim_64(void) { run_variant(case_head_dim_64, "ablate_head_dim_64", 0, 1); }
static void test_ablate_head_dim_48_rolling(void) { run_variant(case_head_dim_48_rolling, "ablate_head_dim_48_rolling", 0, 2); }

/* --sink-rope realign on both backends (the sink's keys moved in time before the forwards that find a gap after
 * it, on the device by sf_rope_time_shift_cuda outside the forward's CUDA graph): on the explicit path with a 1-frame
 * sink after an independent first frame (shifts 1, 4, 7), and on cuDNN through the sampling loop's calls with a
 * 3-frame sink and a gap of 1 (shifts 2, 5) — the GPU's flows within the bf16 bound of the CPU's (whose moved sink
 * test_dit_longvideo holds to a brute force) */
static int64_t recache_fr; /* test_sink_rope_recache: latent floats a frame */
static void test_sink_rope_head_dim_48_rolling(void) {
    shape_case c = case_head_dim_48_rolling;
    c.name = "sink_rope_head_dim_48_rolling", c.sink_rope = 1;
    shape_run(&c);
}
static void test_sink_rope_head_dim_64_rolling(void) {
    shape_case c = case_head_dim_64;
    c.name = "sink_rope_head_dim_64_rolling", c.las = 6, c.sink = 3, c.blocks = 4, c.slots = 1, c.sink_rope = 2;
    shape_run(&c);
}

/* --kv-compress on both backends (kv_compress.c: importances from the kept queries by cuBLASLt, the selection and the
 * gather kernels, before the forward and outside its CUDA graph): on the explicit path after an independent
 * first frame (evictions of 1 frame: 3 frames of candidates into 2), and on cuDNN through the sampling loop's calls
 * (the refresh keeps its last layer's queries; evictions of 3 frames) — the GPU's flows within the bf16 bound of the
 * CPU's with the same tokens kept (kvc_follow), its importances and own choices beside the CPU's (whose compression
 * test_dit_longvideo holds to a brute force) */
static void test_kv_compress_head_dim_48_rolling(void) {
    shape_case c = case_head_dim_48_rolling;
    c.name = "kv_compress_head_dim_48_rolling", c.kv_compress = 2;
    shape_run(&c);
}
static void test_kv_compress_head_dim_64_rolling(void) {
    shape_case c = case_head_dim_64;
    c.name = "kv_compress_head_dim_64_rolling", c.las = 6, c.sink = 1, c.blocks = 4, c.slots = 1, c.kv_compress = 2;
    shape_run(&c);
}
/* --pc-budget on both backends (pc.c: all on the device, every forward a CUDA graph, the compressing ones too): after
 * an independent first frame on the explicit path (window 6, sink 1, recent 3, budget 5), and on cuDNN through the
 * sampling loop's calls (window 7, sink 1, recent 4: the window spans the block before's refresh; budget 6; a reuse
 * limit of 1) — the GPU's flows within the bf16 bound of the CPU's with the same tokens kept (pc_follow), its scores and
 * own choices beside the CPU's (whose compression test_dit_pc holds to a brute force), the reuse counts and fills the
 * same, the sink's shifts the same */
static void test_pc_head_dim_48_rolling(void) {
    shape_case c = case_head_dim_48_rolling;
    c.name = "pc_head_dim_48_rolling", c.pc_budget = 5, c.pc_recent = 3;
    shape_run(&c);
}
static void test_pc_head_dim_64_rolling(void) {
    shape_case c = case_head_dim_64;
    c.name = "pc_head_dim_64_rolling", c.las = 7, c.sink = 1, c.blocks = 5, c.slots = 1, c.pc_budget = 6, c.pc_recent = 4;
    c.pc_reuse = 1; /* a token chosen once stands back: the counts decide */
    shape_run(&c);
}
/* --sink-rope realign through a prompt switch's re-cache on both backends: the rolling run of head_dim_48_rolling (its
 * sink moved at blocks 2-4), then a new context and sf_dit_recache (the sink's chunk rewrites it unshifted, the next
 * chunk moves a fresh copy of it: on the device the copy is the shift-0 kernel), then one more block — the GPU's flows
 * within the bf16 bound of the CPU's throughout, the same shifts. A device that kept moving its first copy fails the
 * last block. */
static const float *recache_frame(void *ctx, int64_t f) { return (const float *)ctx + f * recache_fr; }
static void test_sink_rope_recache(void) {
    shape_case c = case_head_dim_48_rolling;
    c.name = "sink_rope_recache", c.sink_rope = 1;
    const int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    rig g;
    float *clean = NULL;
    if (!rig_open(&g, &c, dev, NULL, NULL)) goto done;
    recache_fr = g.fr;
    int64_t start = 0;
    if (!(clean = malloc(sizeof(float) * (size_t)((1 + MAXF * c.blocks) * g.fr)))) goto done;
    for (int b = 0; b < g.nb && !sf_test_failures; b++) {
        rig_forward(&g, b, 0, start, "flow");
        rig_forward(&g, b, 1, start, "flow"); /* the refresh: its inputs are the block's clean latents */
        memcpy(clean + start * g.fr, g.x, sizeof(float) * (size_t)(g.frames[b] * g.fr));
        start += g.frames[b];
    }
    for (int64_t i = 0; i < CTX_ROWS * (int64_t)g.cfg.text_dim; i++) g.emb[i] = -0.5f * g.emb[i] + 0.25f;
    /* and other clean latents for the sink frame, so that its rewritten keys differ from the old ones in every layer
       (a new context alone moves them little in a 2-layer model): a device that moved the old copy would show it */
    for (int64_t i = 0; i < g.fr; i++) clean[i] = -clean[i];
    for (int m = 0; m < 2 && !sf_test_failures; m++) {
        sf_dit_state *st = m ? &g.cs : &g.gs;
        SF_CHECK_OK(sf_dit_set_context(st, g.emb, CTX_ROWS, &err), &err);
        SF_CHECK_OK(sf_dit_recache(st, 0.0f, MAXF, 1, recache_frame, clean, &err), &err);
    }
    SF_CHECK_MSG(g.gs.sink_shift == g.cs.sink_shift && g.cs.sink_shift > 0, "sink shift after the re-cache: GPU %lld, CPU %lld",
                 (long long)g.gs.sink_shift, (long long)g.cs.sink_shift);
    if (!sf_test_failures) rig_forward(&g, g.nb - 1, 0, start, "flow after the re-cache");
    SF_CHECK(g.gs.sink_shift == g.cs.sink_shift);
done:
    free(clean);
    rig_close(&g);
}

/* A cuBLASLt that takes the FP8 products of a 3-frame block (45 rows) but not of the 1-frame first block (15 rows;
 * the emulation's SF_EMU_NO_FP8_ROWS): the init probe tries every block's row count, so the refusal is a warning
 * and the linears stay bf16 (no quantization at all) instead of a failing product mid-run; the flows stay within the
 * fp8 bound of the CPU's fp8 run. */
static void test_fp8_rows_refused(void) {
#ifdef SF_TEST_EMU
    shape_case c = case_head_dim_48_rolling;
    c.name = "fp8_rows_refused", c.fp8 = 1, c.fp8_refused = 1;
    setenv("SF_EMU_NO_FP8_ROWS", "15", 1);
    shape_run(&c);
    unsetenv("SF_EMU_NO_FP8_ROWS");
#else
    SF_TEST_SKIP("emulator self-test (a refusal only the emulation makes)");
#endif
}

/* The taps on some of the cases above (taps_run): frames and probs of every layer, with and without the
 * cross-attention's text-token mass, and the logits of one layer, on cases whose taps take different paths
 * on the GPU. */
/* head dim 64 on cuDNN: probability masses fused with the attention (attn_mass.cu); every combination; tokens
 * from the fused attention's lse and the leading keys' logits */
static void test_taps_head_dim_64(void) {
    static const tap_spec sp[] = {{SF_TAP_FRAMES, 0, -1}, {SF_TAP_PROBS, 0, -1}, {SF_TAP_FRAMES, 1, -1},
                                  {SF_TAP_PROBS, 1, -1},  {SF_TAP_LOGITS, 0, 1},  {SF_TAP_TOKENS, 0, -1}};
    taps_runs(&case_head_dim_64, sp, sizeof sp / sizeof sp[0]);
}
/* head dim 48, not the fused kernel's (masses from the explicit attention, tap_mass.cu), through a rolling
 * cache with a sink: the key slots' absolute frames after each roll (sink frame 0, then the latest); tokens of
 * the sink slot and the next, from the explicit rows */
static void test_taps_head_dim_48_rolling(void) {
    static const tap_spec sp[] = {{SF_TAP_PROBS, 0, -1}, {SF_TAP_FRAMES, 1, -1}, {SF_TAP_LOGITS, 0, 1}, {SF_TAP_TOKENS, 0, -1}};
    taps_runs(&case_head_dim_48_rolling, sp, sizeof sp / sizeof sp[0]);
}
/* head dim 96 on the explicit path in query chunks of 7 rows: the logits copied out and the masses made
 * chunk by chunk, chunks straddling the 15-token frames */
static void test_taps_head_dim_96_explicit(void) {
    static const tap_spec sp[] = {{SF_TAP_FRAMES, 0, -1}, {SF_TAP_PROBS, 1, -1}, {SF_TAP_LOGITS, 0, 0}};
    taps_runs(&case_head_dim_96_explicit, sp, sizeof sp / sizeof sp[0]);
}
/* head dim 64 through a rolling cache without a sink: fused masses over the rolled window */
static void test_taps_patch_1x2_rolling(void) {
    static const tap_spec sp[] = {{SF_TAP_PROBS, 0, -1}, {SF_TAP_FRAMES, 1, -1}};
    taps_runs(&case_patch_1x2_rolling, sp, sizeof sp / sizeof sp[0]);
}

/* Taps on ablated layers (--sink-ablate in layers 1 … L−1, every layer tapped): each capture holds the keys its
 * layer attended (ablated_caps on the CPU's), and the GPU's equal the CPU's — deferred frames and probs views of a
 * window shorter than the forward's, on cuDNN with fused masses (global attention, frame 0 dropped) and on the
 * explicit path through a rolling cache with a sink and an independent first frame (the sink dropped) */
static void test_taps_ablate_head_dim_64(void) {
    static const tap_spec sp[] = {{SF_TAP_FRAMES, 0, -1}, {SF_TAP_PROBS, 1, -1}, {SF_TAP_LOGITS, 0, -1}, {SF_TAP_TOKENS, 0, -1}};
    shape_case c = case_head_dim_64;
    c.name = "taps_ablate_head_dim_64", c.ablate = 1;
    taps_runs(&c, sp, sizeof sp / sizeof sp[0]);
}
static void test_taps_ablate_head_dim_48_rolling(void) {
    static const tap_spec sp[] = {{SF_TAP_PROBS, 0, -1}, {SF_TAP_FRAMES, 1, -1}};
    shape_case c = case_head_dim_48_rolling;
    c.name = "taps_ablate_head_dim_48_rolling", c.ablate = 1;
    taps_runs(&c, sp, sizeof sp / sizeof sp[0]);
}

static const sf_test tests[] = {
    {"head_dim_64", test_head_dim_64},
    {"fp8_head_dim_64", test_fp8_head_dim_64},
    {"fp8_head_dim_48_rolling", test_fp8_head_dim_48_rolling},
    {"fp8_rows_refused", test_fp8_rows_refused},
    {"ablate_head_dim_64", test_ablate_head_dim_64},
    {"ablate_head_dim_48_rolling", test_ablate_head_dim_48_rolling},
    {"sink_rope_head_dim_48_rolling", test_sink_rope_head_dim_48_rolling},
    {"sink_rope_head_dim_64_rolling", test_sink_rope_head_dim_64_rolling},
    {"sink_rope_recache", test_sink_rope_recache},
    {"kv_compress_head_dim_48_rolling", test_kv_compress_head_dim_48_rolling},
    {"kv_compress_head_dim_64_rolling", test_kv_compress_head_dim_64_rolling},
    {"pc_head_dim_48_rolling", test_pc_head_dim_48_rolling},
    {"pc_head_dim_64_rolling", test_pc_head_dim_64_rolling},
    {"head_dim_32_fused", test_head_dim_32_fused},
    {"head_dim_96", test_head_dim_96},
    {"head_dim_96_explicit", test_head_dim_96_explicit},
    {"head_dim_48_rolling", test_head_dim_48_rolling},
    {"unfused_no_norms", test_unfused_no_norms},
    {"head_dim_20", test_head_dim_20},
    {"head_dim_384", test_head_dim_384},
    {"patch_1x2_rolling", test_patch_1x2_rolling},
    {"taps_head_dim_64", test_taps_head_dim_64},
    {"taps_head_dim_48_rolling", test_taps_head_dim_48_rolling},
    {"taps_head_dim_96_explicit", test_taps_head_dim_96_explicit},
    {"taps_patch_1x2_rolling", test_taps_patch_1x2_rolling},
    {"taps_ablate_head_dim_64", test_taps_ablate_head_dim_64},
    {"taps_ablate_head_dim_48_rolling", test_taps_ablate_head_dim_48_rolling},
};
SF_TEST_MAIN(tests)
