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
 * Built twice like test_dit_cuda.c: test_dit_cuda_shapes (the real CUDA backend; SKIPs without a GPU;
 * in the GPU bundle, Makefile GPU_CHECK_TESTS) and test_dit_shapes_emu (-DSF_TEST_EMU: the CPU emulation
 * of the kernels, kernels/cuda/emu/, in every `make test`, ~5 s). */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "config.h"
#include "stages/denoise/dit.h"
#include "stages/denoise/dit_cuda.h"
#include "tools/mkmodel/mkmodel.h"
#ifdef SF_TEST_EMU
#include "cuda/emu/sf_emu.h"
#endif

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
    sf_tensor_entry *e = NULL;
    int ok = 0;
    *tf = sf_tfile_new_empty("random-shape-model");
    SF_CHECK(*tf != NULL);
    if (!*tf) return 0;
    SF_CHECK_OK(sf_mk_dit_params(cfg, &p, &err), &err);
    if (!err.msg[0]) SF_CHECK_OK(sf_mk_generate(&p, SF_F32, 11, "", 0, &e, &err), &err);
    /* sharper self-attention than the initialisation's (logits ~N(0, 1), near-uniform rows over a few
       dozen keys, where a key at the wrong RoPE position or a frame missing from the window moves a flow
       by less than the bf16 tolerance): q's RMSNorm weight (q's projection without qk_norm) times 3, as a
       trained model's peaked rows. A q RoPE position off by one frame then moves the flows 3-9 % of
       max|ref| (unperturbed: <= 1 %) */
    for (size_t i = 0; e && i < p.n; i++) {
        const char *nm = e[i].name;
        if (cfg->qk_norm ? strstr(nm, "self_attn.norm_q.weight") != NULL
                         : strstr(nm, "self_attn.q.weight") != NULL || strstr(nm, "self_attn.q.bias") != NULL) {
            float *v = e[i].t.data;
            for (int64_t j = 0; j < sf_tensor_numel(&e[i].t); j++) v[j] *= 3.0f;
        }
    }
    for (size_t i = 0; e && i < p.n; i++) { /* the container takes the tensors over */
        sf_status s = sf_tfile_add(*tf, e[i].name, &e[i].t, &err);
        SF_CHECK_OK(s, &err);
        if (!s) e[i].t.owned = 0, e[i].t.data = NULL;
    }
    if (e && !err.msg[0]) {
        SF_CHECK_OK(sf_dit_weights_load(w, cfg, *tf, NULL, NULL, &err), &err);
        ok = !err.msg[0];
    }
    sf_mk_entries_free(e, p.n);
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

/* The case: GPU flows against the CPU's, block by block (see the top of the file). */
static void shape_run(const shape_case *c) {
    const char *name = c->name;
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    sf_dit_config cfg;
    config_of(c, &cfg);
    sf_tfile *tf = NULL;
    sf_dit_weights w;
    memset(&w, 0, sizeof w);
    if (!model_make(&cfg, &tf, &w)) {
        sf_tfile_destroy(&tf);
        return;
    }
    const int nb = (c->iff ? 1 : 0) + c->blocks, total = (c->iff ? 1 : 0) + MAXF * c->blocks;
    int frames[16];
    SF_CHECK(nb <= 16);
    if (nb > 16) return;
    for (int b = 0; b < nb; b++) frames[b] = c->iff && b == 0 ? 1 : MAXF;
    const int64_t cache = c->las > 0 ? c->las : total;
    const long las = c->las > 0 ? c->las : -1;
    const int64_t fr = (int64_t)cfg.in_dim * c->lat_h * c->lat_w, n = MAXF * fr;
    float *x = malloc(sizeof(float) * (size_t)n), *fg = malloc(sizeof(float) * (size_t)n),
          *fc = malloc(sizeof(float) * (size_t)n), *emb = malloc(sizeof(float) * CTX_ROWS * (size_t)cfg.text_dim);
    sf_dit_state gs, cs;
    memset(&gs, 0, sizeof gs), memset(&cs, 0, sizeof cs);
    env_set(c, 1);
#ifdef SF_TEST_EMU
    const unsigned long long q0 = sf_emu_sdpa_calls(), f0 = sf_emu_kernel_launches("attn_plain");
#endif
    sf_status s = sf_dit_state_init_on(&gs, &w, MAXF, c->lat_h, c->lat_w, cache, las, c->sink, 1, dev, &err);
    SF_CHECK_OK(s, &err);
    SF_CHECK_OK(sf_dit_state_init(&cs, &w, MAXF, c->lat_h, c->lat_w, cache, las, c->sink, 1, &err), &err);
    uint64_t r = 0x9E3779B97F4A7C15ull ^ (uint64_t)(c->dim * 131 + c->heads * 7 + c->lat_w);
    long long attns = 0; /* attentions the GPU ran: self + cross in each layer of each forward */
    if (!s && x && fg && fc && emb && cs.w) {
        SF_CHECK_OK(sf_dit_prepare(&gs, nb, frames, &err), &err);
        for (int64_t i = 0; i < CTX_ROWS * (int64_t)cfg.text_dim; i++) emb[i] = urand(&r, -1.0, 1.0);
        SF_CHECK_OK(sf_dit_set_context(&gs, emb, CTX_ROWS, &err), &err);
        SF_CHECK_OK(sf_dit_set_context(&cs, emb, CTX_ROWS, &err), &err);
        int64_t start = 0;
        for (int b = 0; b < nb && !sf_test_failures; b++) {
            const int F = frames[b];
            for (int k = 0; k < 2; k++) { /* a denoising step, then the refresh at t = 0 (same slots) */
                for (int64_t i = 0; i < F * fr; i++) x[i] = urand(&r, -2.0, 2.0);
                const float t[MAXF] = {k ? 0.0f : 750.0f, k ? 0.0f : 750.0f, k ? 0.0f : 750.0f};
                char nm[160];
                snprintf(nm, sizeof nm, "%s: block %d (%d frames from %lld) %s %s", name, b, F, (long long)start,
                         k ? "refresh" : "denoise", c->slots ? "flow (from x0)" : "flow");
                if (!c->slots) {
                    SF_CHECK_OK(sf_dit_forward(&gs, x, F, t, start, fg, &err), &err);
                    SF_CHECK_OK(sf_dit_forward(&cs, x, F, t, start, fc, &err), &err);
                    attns += 2LL * cfg.num_layers;
                    sf_test_rel_close(nm, fg, fc, (size_t)(F * fr), SF_TOL_BF16_FWD);
                    continue;
                }
                /* the sampling loop's calls: x in the device slot, the denoising forward with flow → x0 on
                   the device (the flow recovered from it, (x − x0)/σ, f32: far below the bound), the refresh
                   writing only the cache — checked through the next blocks' forwards */
                for (int m = 0; m < 2; m++) {
                    sf_dit_state *st = m ? &cs : &gs;
                    SF_CHECK_OK(sf_dit_lat_put(st, SF_LAT_X, x, F * fr, &err), &err);
                    if (k) SF_CHECK_OK(sf_dit_refresh(st, F, t, start, &err), &err);
                    else {
                        float *out = m ? fc : fg;
                        SF_CHECK_OK(sf_dit_denoise(st, F, t, start, 0.75, SF_LAT_X0, &err), &err);
                        SF_CHECK_OK(sf_dit_lat_get(st, SF_LAT_X0, out, F * fr, &err), &err);
                        for (int64_t i = 0; i < F * fr; i++) out[i] = (float)(((double)x[i] - out[i]) / 0.75);
                    }
                }
                /* the refresh's last layer stops after its K/V (sf_dit_kv_only_layer): no attention there */
                attns += 2LL * (k ? cfg.num_layers - 1 : cfg.num_layers);
                if (!k) sf_test_rel_close(nm, fg, fc, (size_t)(F * fr), SF_TOL_BF16_FWD);
            }
            start += F;
        }
        if (sf_test_failures) goto done; /* the first failure says it; the counts below would only echo it */
        SF_CHECK_MSG(gs.local_end == cs.local_end && gs.global_end == cs.global_end,
                     "%s: cache ends GPU %lld/%lld, CPU %lld/%lld", name, (long long)gs.local_end,
                     (long long)gs.global_end, (long long)cs.local_end, (long long)cs.global_end);
        /* CUDA graphs: sf_dit_prepare readied every shape, so every forward is one. On a GPU a library may
           load on a plan's first execution, inside the capture of a shape's first forward: then at most
           one failed capture per block's shape, that forward run directly (test_dit_cuda `graphs`) */
        sf_cuda_graph_stats gst;
        sf_dit_cuda_graph_stats(&gs, &gst);
#ifdef SF_TEST_EMU
        const int graphs_ok = gst.failed == 0 && gst.launches == 2LL * nb;
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
#endif
    }
done:
    env_set(c, 0);
    sf_dit_state_free(&gs);
    sf_dit_state_free(&cs);
    sf_dit_weights_free(&w);
    sf_tfile_destroy(&tf);
    free(x), free(fg), free(fc), free(emb);
}

/* head dim 64 (dim 192, 3 heads) on cuDNN's attention, ffn 320, text_dim 48, 2 layers, 15 tokens a frame,
 * global attention */
static void test_head_dim_64(void) {
    shape_case c = {.name = "head_dim_64", .dim = 192, .heads = 3, .ffn = 320, .text_dim = 48, .layers = 2,
                    .lat_h = 6, .lat_w = 10, .blocks = 2, .ask = PATH_CUDNN, .runs = PATH_CUDNN};
    shape_run(&c);
}

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
static void test_head_dim_96_explicit(void) {
    shape_case c = {.name = "head_dim_96_explicit", .dim = 192, .heads = 2, .ffn = 200, .text_dim = 64, .layers = 1,
                    .lat_h = 6, .lat_w = 10, .blocks = 2, .ask = PATH_EXPLICIT, .runs = PATH_EXPLICIT, .chunk = 7};
    shape_run(&c);
}

/* head dim 48 (dim 96, 2 heads) with a rolling cache of 6 frames and a 1-frame sink: a first frame, then
 * 4 blocks of 3 (from the third block on each evicts and rolls frames down); sfpipe's fused kernel asked
 * for, which does not take d = 48: every attention falls back to the explicit path */
static void test_head_dim_48_rolling(void) {
    shape_case c = {.name = "head_dim_48_rolling", .dim = 96, .heads = 2, .ffn = 256, .text_dim = 64, .layers = 2,
                    .lat_h = 6, .lat_w = 10, .iff = 1, .blocks = 4, .las = 6, .sink = 1, .ask = PATH_FUSED,
                    .runs = PATH_EXPLICIT};
    shape_run(&c);
}

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
static void test_patch_1x2_rolling(void) {
    shape_case c = {.name = "patch_1x2_rolling", .dim = 128, .heads = 2, .ffn = 200, .text_dim = 64, .layers = 1,
                    .lat_h = 5, .lat_w = 6, .iff = 1, .blocks = 3, .las = 5, .sink = 0, .ask = PATH_CUDNN,
                    .runs = PATH_CUDNN, .ph = 1, .pw = 2, .freq_dim = 192};
    shape_run(&c);
}

static const sf_test tests[] = {
    {"head_dim_64", test_head_dim_64},
    {"head_dim_32_fused", test_head_dim_32_fused},
    {"head_dim_96", test_head_dim_96},
    {"head_dim_96_explicit", test_head_dim_96_explicit},
    {"head_dim_48_rolling", test_head_dim_48_rolling},
    {"unfused_no_norms", test_unfused_no_norms},
    {"head_dim_20", test_head_dim_20},
    {"head_dim_384", test_head_dim_384},
    {"patch_1x2_rolling", test_patch_1x2_rolling},
};
SF_TEST_MAIN(tests)
