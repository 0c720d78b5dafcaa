/* test_t5_cuda_shapes.c — sf-encode's GPU encoder (stages/encode/t5_cuda.c, kernels/cuda/t5_glue.cu)
 * against the CPU encoder (stages/encode/t5.c) on model shapes other than the golden tiny model's
 * (test_t5_cuda.c covers that one: dim 64, 4 heads of 16, ffn 160, vocab 1000, 32 buckets, 3 layers).
 * Each case makes a random model (tools/mkmodel/mkmodel.h, sf-mkmodel's initialisation, fixed seed) in
 * the stored dtype the case names, writes it as a safetensors file into a mkdtemp folder (sf_t5_open
 * takes a path; the file is unlinked as soon as it is mapped), opens the CPU encoder on it, and builds
 * the resident GPU encoder (sized for fewer tokens than the longest prompt: the activations regrow) and
 * the --low-memory streaming one from it. Then, for prompts of 1, odd and near-maximum token counts
 * (random ids, the first and last embedding rows among them), padded to SEQ = 512 rows:
 *   - the GPU embedding within SF_TOL_BF16_T5 (2e-2 of max|ref| over the real rows: bf16 GEMM inputs on
 *     bf16 weights, the tolerance of the golden test) of the CPU's, the pad rows exactly 0;
 *   - the streaming encoder's bytes equal to the resident one's;
 *   - for the first prompt the layer-0 taps (embedding exact, norm1 / attention / block output within
 *     the same tolerance); a 1-layer model has no block-0 output tap on the GPU (the residual is fused
 *     into the next norm): asked for, it must be refused with one clear line (SF_E_UNSUPPORTED).
 *
 * The cases cover what the code treats as a parameter (t5_cuda.c, t5_glue.cu, kernels/t5_cuda.h): the
 * explicit cuBLASLt attention takes any head dim and count, so head dims 8, 16, 20, 32, 48, 64, 128 with
 * 1 to 12 heads; dim_attn (heads × head dim) ≠ dim both ways; dims and ffn dims not a multiple of 8 / 64
 * (odd ones); vocab 37 to 5000; 4, 8, 16, 32 (the integer-threshold table) and 64 buckets (the log
 * formula); one shared top-level position table (T5) instead of one per block (umT5); weights stored as
 * bf16, f32 and f16 (rounded to bf16 at upload); 1 to 3 layers; query chunks that divide nothing
 * ($SF_CUDA_ATTN_CHUNK). Nothing is refused for these shapes.
 *
 * Built twice like test_t5_cuda.c: test_t5_cuda_shapes (the real CUDA backend; SKIPs without a GPU; in
 * the GPU bundle, Makefile GPU_CHECK_TESTS) and test_t5_shapes_emu (-DSF_TEST_EMU: the CPU emulation of
 * the kernels, kernels/cuda/emu/, in every `make test`, ~10 s). */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "stages/encode/t5.h"
#include "stages/encode/t5_cuda.h"
#include "tools/mkmodel/mkmodel.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SEQ = 512, MAXP = 6 };

/* A model and its prompts. */
typedef struct t5_case {
    const char *name;
    sf_mk_t5 t;         /* vocab, dim, heads, head_dim, ffn, layers, buckets */
    sf_dtype dtype;     /* the stored weights: SF_BF16 (the real file's), SF_F32 or SF_F16 */
    int shared_pos;     /* 1: one top-level pos_embedding (T5) instead of one per block (umT5) */
    int max_len;        /* the GPU encoders' size at init (a longer prompt regrows them) */
    int chunk;          /* > 0: $SF_CUDA_ATTN_CHUNK (query rows per attention chunk) */
    int lens[MAXP];     /* prompt token counts, 0 ends the list */
} t5_case;

static uint64_t next(uint64_t *r) { /* xorshift64 */
    *r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
    return *r;
}

/* The random model of c as a file in a fresh mkdtemp folder, opened as the CPU encoder (2 threads); the
 * file and folder are gone when this returns (the mapping keeps the bytes). bf16_ref: the same weights
 * with the matrices rounded from the stored dtype to bf16 as the GPU's upload does (the CPU reference for
 * f32 / f16 files: the GPU runs on those bf16 values, so holding it to the CPU on the stored ones would add
 * the weights' rounding, ~0.5 % of max|ref| here, to the comparison). NULL on failure (recorded). */
static sf_t5 *model_open(const t5_case *c, int bf16_ref) {
    sf_err err = {{0}};
    sf_mk_params p = {0};
    sf_tensor_entry *e = NULL;
    size_t n = 0; /* entries in e (fewer than p.n once the per-block position tables are dropped) */
    sf_t5 *m = NULL;
    char dir[] = "/tmp/sf-test-t5shapes-XXXXXX", path[sizeof dir + 32];
    SF_CHECK_OK(sf_mk_t5_params(&c->t, &p, &err), &err);
    if (!err.msg[0]) SF_CHECK_OK(sf_mk_generate(&p, SF_F32, 7, "", 0, &e, &err), &err);
    if (!e) goto done;
    n = p.n;
    for (size_t i = 0; i < n; i++) {
        /* sf-mkmodel draws every matrix with std 1/sqrt(fan_in), so q and k have unit components and T5's
           unscaled logits q·k a std of sqrt(head dim): 11 at head dim 128, rows so peaked that bf16's
           rounding of q and k alone moves the output 3 % of max|ref| (measured against a double-precision
           model of the GPU's rounding points, which the emulated GPU matched to 0.3 %). T5 initialises q
           with a further 1/sqrt(head dim) for that reason; here q is scaled to logits of std 2 (peaked
           rows: a key at a wrong position or masked wrongly shows; at std 3 the clean runs reached 1.4 %
           of max|ref|, at 2 they stay within 0.75 %, the golden's 0.2-0.7 %), and the position tables to
           std 1 (from 0.1, where a wrong bucket would move nothing; trained umT5 biases are of that order) */
        const float k = strstr(e[i].name, ".attn.q.weight") ? 2.0f / sqrtf((float)c->t.head_dim)
                        : strstr(e[i].name, "pos_embedding.embedding.weight") ? 10.0f : 1.0f;
        float *v = e[i].t.data;
        for (int64_t j = 0; k != 1.0f && j < sf_tensor_numel(&e[i].t); j++) v[j] *= k;
        /* the stored dtype (bf16, the real file's, or f16, rounded to nearest even; f32 as drawn), then for
           the reference the matrices as bf16 from it (the GPU keeps the norm weights and position tables
           as f32: those stay as stored) */
        const int matrix = e[i].t.ndim == 2 && !strstr(e[i].name, "pos_embedding");
        for (int step = 0; step < 2; step++) {
            const sf_dtype to = step ? SF_BF16 : c->dtype;
            if (e[i].t.dtype == to || (step && (!bf16_ref || !matrix))) continue;
            sf_tensor h;
            if (sf_tensor_convert(&e[i].t, to, &h, &err)) {
                SF_CHECK_MSG(0, "%s: %s", c->name, err.msg);
                goto done;
            }
            sf_tensor_free(&e[i].t);
            e[i].t = h;
        }
    }
    if (c->shared_pos) { /* T5: block 0's table as the one top-level table, the per-block ones dropped */
        size_t k = 0;
        for (size_t i = 0; i < p.n; i++) {
            const int pos = strstr(e[i].name, ".pos_embedding.embedding.weight") != NULL;
            if (pos && !strncmp(e[i].name, "blocks.0.", 9)) {
                free(e[i].name);
                e[i].name = strdup("pos_embedding.embedding.weight");
            } else if (pos) {
                free(e[i].name);
                sf_tensor_free(&e[i].t);
                continue;
            }
            e[k++] = e[i];
        }
        n = k;
    }
    if (!mkdtemp(dir)) {
        SF_CHECK_MSG(0, "mkdtemp %s failed", dir);
        goto done;
    }
    snprintf(path, sizeof path, "%s/t5.safetensors", dir);
    SF_CHECK_OK(sf_safetensors_write(path, e, n, NULL, 0, &err), &err);
    if (!err.msg[0]) SF_CHECK_OK(sf_t5_open(path, 2, &m, &err), &err);
    unlink(path);
    SF_CHECK(rmdir(dir) == 0);
    if (m) {
        const sf_t5_config *g = &m->cfg;
        SF_CHECK_MSG(g->dim == c->t.dim && g->num_heads == c->t.heads && g->head_dim == c->t.head_dim &&
                         g->dim_ffn == c->t.ffn && g->num_layers == c->t.layers && g->num_buckets == c->t.buckets &&
                         g->vocab == c->t.vocab && g->shared_pos == c->shared_pos,
                     "%s: the loader read another shape", c->name);
    }
done:
    sf_mk_entries_free(e, n);
    sf_mk_params_free(&p);
    return m;
}

/* The case: every prompt on the CPU, the resident GPU encoder and the streaming one (see the top). */
static void t5_run(const t5_case *c) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_t5 *m = model_open(c, 0), *mr = c->dtype == SF_BF16 ? m : model_open(c, 1); /* GPU's, CPU's */
    sf_t5_gpu *g = NULL, *st = NULL;
    sf_err err = {{0}};
    const size_t D = (size_t)c->t.dim, on = SEQ * D;
    float *ref = malloc(on * sizeof(float)), *got = malloc(on * sizeof(float)), *str = malloc(on * sizeof(float));
    float *dc = malloc(4 * on * sizeof(float)), *dg = malloc(4 * on * sizeof(float));
    int64_t ids[SEQ];
    uint64_t r = 0x2545F4914F6CDD1Dull ^ (uint64_t)(c->t.dim * 977 + c->t.heads * 31 + c->t.head_dim);
    if (!m || !mr || !ref || !got || !str || !dc || !dg) goto done;
    if (c->chunk > 0) {
        char ch[32];
        snprintf(ch, sizeof ch, "%d", c->chunk);
        setenv("SF_CUDA_ATTN_CHUNK", ch, 1);
    }
    SF_CHECK_OK(sf_t5_cuda_new(m, dev, c->max_len, &g, &err), &err);
    SF_CHECK_OK(sf_t5_cuda_new_streaming(m, dev, c->max_len, &st, &err), &err);
    if (!g || !st) goto done;
    for (int p = 0; p < MAXP && c->lens[p] && !sf_test_failures; p++) {
        const int64_t n = c->lens[p];
        for (int64_t i = 0; i < SEQ; i++) ids[i] = (int64_t)(next(&r) % (uint64_t)c->t.vocab);
        if (n > 2) ids[0] = 0, ids[n - 1] = c->t.vocab - 1; /* the embedding table's first and last rows */
        for (int64_t i = n; i < SEQ; i++) ids[i] = 0;      /* padding, as the tokenizer writes it */
        for (size_t i = 0; i < on; i++) got[i] = NAN, str[i] = -NAN;
        /* the first prompt with the layer-0 taps; a 1-layer model cannot give the block-0 output */
        const int taps = p == 0;
        sf_t5_debug tc = {dc, dc + on, dc + 2 * on, c->t.layers > 1 ? dc + 3 * on : NULL};
        sf_t5_debug tg = {dg, dg + on, dg + 2 * on, c->t.layers > 1 ? dg + 3 * on : NULL};
        if (taps && c->t.layers == 1) {
            sf_t5_debug all = {dg, dg + on, dg + 2 * on, dg + 3 * on};
            sf_status s = sf_t5_cuda_encode(g, ids, SEQ, n, got, &all, &err);
            SF_CHECK_MSG(s == SF_E_UNSUPPORTED && strstr(err.msg, "2 layers") && !strchr(err.msg, '\n'),
                         "%s: block-0 output tap of a 1-layer model: %s: %s", c->name, sf_status_str(s), err.msg);
        }
        SF_CHECK_OK(sf_t5_encode(mr, ids, SEQ, n, ref, taps ? &tc : NULL, &err), &err);
        SF_CHECK_OK(sf_t5_cuda_encode(g, ids, SEQ, n, got, taps ? &tg : NULL, &err), &err);
        SF_CHECK_OK(sf_t5_cuda_encode(st, ids, SEQ, n, str, NULL, &err), &err);
        if (sf_test_failures) break;
        char what[160];
        snprintf(what, sizeof what, "%s: embedding of %lld tokens", c->name, (long long)n);
        sf_test_rel_close(what, got, ref, (size_t)n * D, SF_TOL_BF16_T5);
        int nz = 0;
        for (size_t i = (size_t)n * D; i < on; i++) nz += got[i] != 0.0f;
        SF_CHECK_MSG(nz == 0, "%s: %d pad values not exactly 0", what, nz);
        SF_CHECK_MSG(!memcmp(got, str, on * sizeof(float)), "%s: the streaming encoder differs from the resident one",
                     what);
        if (taps) {
            static const char *const tn[4] = {"embed", "block0.norm1", "block0.attn", "block0.out"};
            for (int k = 0; k < (c->t.layers > 1 ? 4 : 3); k++) {
                snprintf(what, sizeof what, "%s: dbg.%s of %lld tokens", c->name, tn[k], (long long)n);
                sf_test_rel_close(what, dg + k * on, dc + k * on, (size_t)n * D, k ? SF_TOL_BF16_T5 : SF_TOL_EXACT);
            }
        }
    }
done:
    unsetenv("SF_CUDA_ATTN_CHUNK");
    sf_t5_cuda_destroy(&g);
    sf_t5_cuda_destroy(&st);
    if (mr != m) sf_t5_destroy(&mr);
    sf_t5_destroy(&m);
    free(ref), free(got), free(str), free(dc), free(dg);
}

/* head dim 32 (4 heads, dim_attn = dim = 128), ffn 200 (not a multiple of 64), 3 layers, vocab 1000, 32
 * buckets (the integer-threshold table), bf16; sized for 16 tokens, prompts up to 509 */
static void test_head_dim_32(void) {
    t5_case c = {"head_dim_32", {1000, 128, 4, 32, 200, 3, 32}, SF_BF16, 0, 16, 0, {1, 7, 33, 509}};
    t5_run(&c);
}

/* head dim 64, 2 heads: dim_attn 128 > dim 96; ffn 130, 1 layer (the block-0 output tap refused), vocab
 * 300, 8 buckets */
static void test_head_dim_64_attn_wider(void) {
    t5_case c = {"head_dim_64_attn_wider", {300, 96, 2, 64, 130, 1, 8}, SF_BF16, 0, 64, 0, {1, 5, 64, 511}};
    t5_run(&c);
}

/* head dim 48, 3 heads: dim_attn 144 > dim 72; ffn 100, 2 layers, vocab 5000, 64 buckets (the log
 * formula), f32 weights, the attention in query chunks of 5 */
static void test_head_dim_48_f32_chunked(void) {
    t5_case c = {"head_dim_48_f32_chunked", {5000, 72, 3, 48, 100, 2, 64}, SF_F32, 0, 8, 5, {3, 1, 77, 500}};
    t5_run(&c);
}

/* head dim 20, 3 heads: dim_attn 60 > dim 50 (neither a multiple of 8), ffn 77, 3 layers, vocab 37, 4
 * buckets, one shared position table (T5), f16 weights */
static void test_head_dim_20_odd_dims(void) {
    t5_case c = {"head_dim_20_odd_dims", {37, 50, 3, 20, 77, 3, 4}, SF_F16, 1, 1, 0, {1, 2, 31, 510}};
    t5_run(&c);
}

/* head dim 128, 1 head: dim_attn 128 > dim 64; ffn 64, 2 layers, 16 buckets */
static void test_head_dim_128_one_head(void) {
    t5_case c = {"head_dim_128_one_head", {500, 64, 1, 128, 64, 2, 16}, SF_BF16, 0, 32, 0, {1, 9, 129, 505}};
    t5_run(&c);
}

/* head dim 8, 12 heads: dim_attn 96 < dim 160; ffn 333, 2 layers, 32 buckets, chunks of 3 */
static void test_head_dim_8_many_heads(void) {
    t5_case c = {"head_dim_8_many_heads", {2000, 160, 12, 8, 333, 2, 32}, SF_BF16, 0, 512, 3, {1, 11, 45, 508}};
    t5_run(&c);
}

/* head dim 16 (the golden's) with 6 heads: dim_attn 96 = dim; ffn 96, 3 layers, one shared position
 * table, 32 buckets */
static void test_head_dim_16_shared_pos(void) {
    t5_case c = {"head_dim_16_shared_pos", {777, 96, 6, 16, 96, 3, 32}, SF_BF16, 1, 100, 0, {1, 3, 99, 512}};
    t5_run(&c);
}

static const sf_test tests[] = {
    {"head_dim_32", test_head_dim_32},
    {"head_dim_64_attn_wider", test_head_dim_64_attn_wider},
    {"head_dim_48_f32_chunked", test_head_dim_48_f32_chunked},
    {"head_dim_20_odd_dims", test_head_dim_20_odd_dims},
    {"head_dim_128_one_head", test_head_dim_128_one_head},
    {"head_dim_8_many_heads", test_head_dim_8_many_heads},
    {"head_dim_16_shared_pos", test_head_dim_16_shared_pos},
};
SF_TEST_MAIN(tests)
