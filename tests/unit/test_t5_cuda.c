/* test_t5_cuda.c — sf-encode's GPU encoder (stages/encode/t5_cuda.c) against the golden
 * tests/golden/expect/t5.safetensors on a GPU ($SF_TEST_DEVICE=cuda:N; tests/gpu/check.sh):
 * prompt 0's intermediates (dbg.embed exact, dbg.block0.{norm1,attn,out}), emb.<i> of all 28
 * prompts over the real rows with the pad rows exactly 0, query-chunked attention equal to the
 * unchunked one, the activations regrown for a prompt longer than sized at init (emulated: a
 * prompt too long for the device's memory refused, the encoder still working), a resident
 * encoder giving the same bytes twice, bad ids, and sf-encode's per-prompt pipeline on the GPU
 * (stages/encode/encode.c: resident and --low-memory, GPU cache keys apart from the CPU's), and the
 * --low-memory streaming encoder equal to the resident one byte for byte. Without a GPU every case SKIPs except
 * `refusal`: asking for one fails with one clear line and leaves nothing allocated.
 *
 * Built twice: test_t5_cuda (the real CUDA backend; SKIPs without a GPU) and test_t5_emu
 * (-DSF_TEST_EMU: the same encoder on the CPU emulation of the kernels, kernels/cuda/emu/, in every
 * `make test`; the emulated cuBLASLt is an fp32 loop in k order, so this checks the layout and the
 * numerics design, not cuBLASLt's summation order). Both run all 28 prompts (1 to 512
 * tokens; under a second emulated).
 *
 * Tolerance: max|Δ| / max|ref| per tensor over the real rows, SF_TOL_BF16_T5 (sf_test.h) for every
 * computed tensor; the embedding gather is exact. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "device.h"
#include "stages/encode/encode.h"
#include "stages/encode/t5_cuda.h"
#include "gpu_host.h"

#include <unistd.h>

#include <math.h>
#include <stdio.h>
#include <string.h>


static sf_t5 *open_model(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model/models_t5_umt5-xxl-enc-bf16.pth", sf_test_golden());
    sf_t5 *m = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_t5_open(path, 1, &m, &err), &err);
    return m;
}

/* ids / n_tokens of golden prompt p; 0 when missing. */
static int prompt(const sf_tfile *ex, int p, int64_t ids[512], int64_t *n) {
    char nm[32];
    snprintf(nm, sizeof nm, "ids.%d", p);
    const sf_tensor *ti = sf_tfile_get(ex, nm);
    snprintf(nm, sizeof nm, "mask.%d", p);
    const sf_tensor *tm = sf_tfile_get(ex, nm);
    SF_CHECK_MSG(ti && tm, "golden prompt %d missing", p);
    if (!ti || !tm) return 0;
    *n = 0;
    for (int i = 0; i < 512; i++) ids[i] = (int64_t)sf_tensor_get(ti, i), *n += (int64_t)sf_tensor_get(tm, i);
    return 1;
}

/* Without a GPU: SF_E_DEVICE (no driver, or "no CUDA support" in a CPU-only build), one line, *out
 * NULL. With one (or the emulated one): a missing ordinal is "no such GPU". */
static void test_refusal(void) {
    sf_t5 *m = open_model();
    if (!m) return;
    int count = 0;
    sf_err err = {{0}}, e2 = {{0}};
    int have = sf_cuda_device_count(&count, &e2) == SF_OK;
    sf_t5_gpu *g = (sf_t5_gpu *)&err; /* must come back NULL */
    sf_status s = sf_t5_cuda_new(m, have ? 99 : 0, 512, &g, &err);
    SF_CHECK_MSG(s == SF_E_DEVICE, "status %s: %s", sf_status_str(s), err.msg);
    SF_CHECK_MSG(strstr(err.msg, have ? "no such GPU" : "CUDA") != NULL && !strchr(err.msg, '\n'), "message: %s",
                 err.msg);
    SF_CHECK(g == NULL);
    sf_t5_cuda_destroy(&g); /* harmless */
    sf_t5_destroy(&m);
}

static void test_prompt0_intermediates(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_t5 *m = open_model();
    sf_tfile *ex = sf_test_open_golden("expect/t5.safetensors");
    sf_t5_gpu *g = NULL;
    sf_err err = {{0}};
    int64_t ids[512], n = 0;
    if (!m || !ex || !prompt(ex, 0, ids, &n)) goto done;
    SF_CHECK_OK(sf_t5_cuda_new(m, dev, 512, &g, &err), &err);
    if (!g) goto done;
    static float out[512 * 64], e[512 * 64], n1[512 * 64], at[512 * 64], bo[512 * 64], ref[512 * 64];
    sf_t5_debug dbg = {e, n1, at, bo};
    SF_CHECK_OK(sf_t5_cuda_encode(g, ids, 512, n, out, &dbg, &err), &err);
    const char *names[4] = {"dbg.embed", "dbg.block0.norm1", "dbg.block0.attn", "dbg.block0.out"};
    float *got[4] = {e, n1, at, bo};
    for (int k = 0; k < 4; k++) {
        const sf_tensor *r = sf_tfile_get(ex, names[k]);
        if (!r) { SF_CHECK_MSG(0, "missing %s", names[k]); continue; }
        sf_tensor_to_f32(r, ref);
        sf_test_rel_close(names[k], got[k], ref, (size_t)n * 64, k == 0 ? SF_TOL_EXACT : SF_TOL_BF16_T5);
    }
done:
    sf_t5_cuda_destroy(&g);
    sf_tfile_destroy(&ex);
    sf_t5_destroy(&m);
}

/* emb.<p> of one prompt through g, checked against the golden; the pad rows must be written as 0. */
static void check_prompt(sf_t5_gpu *g, const sf_tfile *ex, int p, float *out) {
    static float ref[512 * 64];
    int64_t ids[512], n = 0;
    char nm[32];
    sf_err err = {{0}};
    if (!prompt(ex, p, ids, &n)) return;
    snprintf(nm, sizeof nm, "emb.%d", p);
    const sf_tensor *te = sf_tfile_get(ex, nm);
    if (!te) { SF_CHECK_MSG(0, "missing %s", nm); return; }
    for (size_t i = 0; i < 512 * 64; i++) out[i] = NAN;
    SF_CHECK_OK(sf_t5_cuda_encode(g, ids, 512, n, out, NULL, &err), &err);
    sf_tensor_to_f32(te, ref);
    char what[96];
    snprintf(what, sizeof what, "%s (%lld tokens)", nm, (long long)n);
    sf_test_rel_close(what, out, ref, (size_t)n * 64, SF_TOL_BF16_T5);
    int nz = 0;
    for (size_t i = (size_t)n * 64; i < 512 * 64; i++) nz += out[i] != 0.0f;
    SF_CHECK_MSG(nz == 0, "%s: %d pad values not exactly 0", nm, nz);
}

static void test_all_prompts(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_t5 *m = open_model();
    sf_tfile *ex = sf_test_open_golden("expect/t5.safetensors");
    sf_t5_gpu *g = NULL;
    sf_err err = {{0}};
    static float out[512 * 64];
    if (!m || !ex) goto done;
    SF_CHECK_OK(sf_t5_cuda_new(m, dev, 512, &g, &err), &err);
    for (int p = 0; g && p < 28; p++) {
        check_prompt(g, ex, p, out);
    }
done:
    sf_t5_cuda_destroy(&g);
    sf_tfile_destroy(&ex);
    sf_t5_destroy(&m);
}

/* The attention in query chunks of 7 rows (SF_CUDA_ATTN_CHUNK) gives the same bytes as one chunk. */
static void test_chunked_attention(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_t5 *m = open_model();
    sf_tfile *ex = sf_test_open_golden("expect/t5.safetensors");
    sf_t5_gpu *g = NULL;
    sf_err err = {{0}};
    static float a[512 * 64], b[512 * 64];
    int64_t ids[512], n = 0;
    if (!m || !ex || !prompt(ex, 1, ids, &n)) goto done;
    SF_CHECK_OK(sf_t5_cuda_new(m, dev, 512, &g, &err), &err);
    if (!g) goto done;
    SF_CHECK_OK(sf_t5_cuda_encode(g, ids, 512, n, a, NULL, &err), &err);
    setenv("SF_CUDA_ATTN_CHUNK", "7", 1);
    SF_CHECK_OK(sf_t5_cuda_encode(g, ids, 512, n, b, NULL, &err), &err);
    unsetenv("SF_CUDA_ATTN_CHUNK");
    SF_CHECK_MSG(n % 7 != 0 && n > 14, "prompt 1 has %lld tokens: pick one that is not a multiple of 7", (long long)n);
    sf_test_max_close("chunked vs one chunk", b, a, 512 * 64, 0, 0);
done:
    sf_t5_cuda_destroy(&g);
    sf_tfile_destroy(&ex);
    sf_t5_destroy(&m);
}

/* Sized for 8 tokens at init, then a 19-token prompt: the activations regrow and the result is the
 * golden's; the same prompt twice on the resident encoder gives the same bytes. Bad ids and
 * lengths are refused before anything runs. */
static void test_regrow_resident_and_bad_ids(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_t5 *m = open_model();
    sf_tfile *ex = sf_test_open_golden("expect/t5.safetensors");
    sf_t5_gpu *g = NULL;
    sf_err err = {{0}};
    static float a[512 * 64], b[512 * 64];
    int64_t ids[512], n = 0;
    if (!m || !ex || !prompt(ex, 0, ids, &n)) goto done;
    SF_CHECK_OK(sf_t5_cuda_new(m, dev, 8, &g, &err), &err);
    if (!g) goto done;
    size_t small = sf_t5_cuda_bytes(g);
    check_prompt(g, ex, 0, a);
    SF_CHECK(sf_t5_cuda_bytes(g) > small && sf_t5_cuda_weight_bytes(g) < small);
    SF_CHECK_OK(sf_t5_cuda_encode(g, ids, 512, n, b, NULL, &err), &err);
    SF_CHECK(memcmp(a, b, sizeof a) == 0);
#ifdef SF_TEST_EMU
    { /* a prompt whose activations cannot fit (the emulated device has 1 GiB): refused with the sizes,
         the encoder keeps working at the sizes it had */
        enum { BIG = 200000 };
        int64_t *big = calloc(BIG, sizeof *big);
        float *bo = malloc(sizeof(float) * (size_t)BIG * 64);
        if (big && bo) {
            big[BIG - 1] = 1;
            sf_status s = sf_t5_cuda_encode(g, big, BIG, BIG, bo, NULL, &err);
            SF_CHECK_MSG(s == SF_E_NOMEM && strstr(err.msg, "200000 tokens") && !strchr(err.msg, '\n'),
                         "status %s: %s", sf_status_str(s), err.msg);
            SF_CHECK_OK(sf_t5_cuda_encode(g, ids, 512, n, b, NULL, &err), &err);
            SF_CHECK(memcmp(a, b, sizeof a) == 0);
        }
        free(big), free(bo);
    }
#endif
    ids[3] = 1000;
    SF_CHECK(sf_t5_cuda_encode(g, ids, 512, n, b, NULL, &err) == SF_E_ARG && strstr(err.msg, "1000"));
    SF_CHECK(sf_t5_cuda_encode(g, ids, 512, 0, b, NULL, &err) == SF_E_ARG);
    SF_CHECK(sf_t5_cuda_encode(g, ids, 512, 513, b, NULL, &err) == SF_E_ARG);
done:
    sf_t5_cuda_destroy(&g);
    sf_tfile_destroy(&ex);
    sf_t5_destroy(&m);
}


/* --low-memory's streaming encoder (sf_t5_cuda_new_streaming: one layer's matrices on the device at a
 * time, uploaded before the layer runs; the prompt's embedding rows gathered on the host): the same
 * bytes as the resident encoder for all 28 golden prompts (1 to 512 tokens; sized for 16 at init, so
 * the activations and the row buffer regrow) and for prompt 0's intermediates, while holding under a
 * quarter of the resident weight bytes (no embedding table, one layer slot). */
static void test_streaming(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_t5 *m = open_model();
    sf_tfile *ex = sf_test_open_golden("expect/t5.safetensors");
    sf_t5_gpu *r = NULL, *st = NULL;
    sf_err err = {{0}};
    static float a[512 * 64], b[512 * 64], da[4][512 * 64], db[4][512 * 64];
    int64_t ids[512], n = 0;
    if (!m || !ex) goto done;
    SF_CHECK_OK(sf_t5_cuda_new(m, dev, 512, &r, &err), &err);
    SF_CHECK_OK(sf_t5_cuda_new_streaming(m, dev, 16, &st, &err), &err);
    if (!r || !st) goto done;
    SF_CHECK_MSG(4 * sf_t5_cuda_weight_bytes(st) < sf_t5_cuda_weight_bytes(r), "streaming holds %zu weight bytes, resident %zu",
                 sf_t5_cuda_weight_bytes(st), sf_t5_cuda_weight_bytes(r));
    int differ = 0;
    for (int p = 0; p < 28; p++) {
        if (!prompt(ex, p, ids, &n)) continue;
        for (size_t i = 0; i < 512 * 64; i++) a[i] = NAN, b[i] = -NAN;
        sf_t5_debug dba = {da[0], da[1], da[2], da[3]}, dbb = {db[0], db[1], db[2], db[3]};
        SF_CHECK_OK(sf_t5_cuda_encode(r, ids, 512, n, a, p ? NULL : &dba, &err), &err);
        SF_CHECK_OK(sf_t5_cuda_encode(st, ids, 512, n, b, p ? NULL : &dbb, &err), &err);
        if (memcmp(a, b, sizeof a) != 0) {
            if (!differ) sf_test_max_close("streaming vs resident", b, a, 512 * 64, 0, 0);
            differ++;
        }
        if (!p) SF_CHECK_MSG(memcmp(da, db, sizeof da) == 0, "prompt 0 intermediates differ (streaming vs resident)");
    }
    SF_CHECK_MSG(differ == 0, "%d of 28 prompts differ between the streaming and the resident encoder", differ);
done:
    sf_t5_cuda_destroy(&r);
    sf_t5_cuda_destroy(&st);
    sf_tfile_destroy(&ex);
    sf_t5_destroy(&m);
}

/* sf-encode's pipeline (encode.c) on the device: resident, the same embedding as the CPU encoder
 * within the bf16 tolerance, a cache entry under a key of its own (not the CPU's), a second run
 * served from it; with low_memory the GPU encoder is gone after each prompt and comes back for
 * the next miss. */
static void test_encoder_pipeline(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    char tok[4096], w[4096], dir[] = "/tmp/sf-test-t5cuda-XXXXXX";
    snprintf(tok, sizeof tok, "%s/model/google/umt5-xxl/spiece.model", sf_test_golden());
    snprintf(w, sizeof w, "%s/model/models_t5_umt5-xxl-enc-bf16.pth", sf_test_golden());
    if (!mkdtemp(dir)) { SF_CHECK(0); return; }
    sf_err err = {{0}};
    sf_encoder cpu, gpu_enc, low;
    sf_encoded a = {0}, b = {0}, c = {0}, d = {0};
    SF_CHECK_OK(sf_encoder_init(&cpu, tok, w, dir, 1, 1, &err), &err);
    SF_CHECK_OK(sf_encoder_init(&gpu_enc, tok, w, dir, 1, 1, &err), &err);
    SF_CHECK_OK(sf_encoder_init(&low, tok, w, dir, 1, 1, &err), &err);
    sf_encoder_set_device(&gpu_enc, dev, 0);
    sf_encoder_set_device(&low, dev, 1);
    const char *p = "A red fox trotting through fresh snow";
    SF_CHECK_OK(sf_encoder_run(&cpu, p, strlen(p), 64, &a, &err), &err);
    SF_CHECK_OK(sf_encoder_run(&gpu_enc, p, strlen(p), 64, &b, &err), &err);
    if (a.emb && b.emb) {
        SF_CHECK(!b.from_cache && gpu_enc.gpu != NULL && strcmp(a.key, b.key) != 0);
        sf_test_rel_close("GPU vs CPU encoder (encode.c)", b.emb, a.emb, (size_t)(a.n_tokens * a.dim), SF_TOL_BF16_T5);
        int nz = 0;
        for (int64_t i = a.n_tokens * a.dim; i < 64 * a.dim; i++) nz += b.emb[i] != 0.0f;
        SF_CHECK_MSG(nz == 0, "%d pad values not 0", nz);
    }
    SF_CHECK_OK(sf_encoder_run(&low, p, strlen(p), 64, &c, &err), &err); /* the GPU entry: a hit, no upload */
    SF_CHECK(c.from_cache && low.gpu == NULL && c.emb && b.emb && memcmp(c.emb, b.emb, 64 * 64 * 4) == 0);
    const char *q = "a second prompt misses the cache";
    SF_CHECK_OK(sf_encoder_run(&low, q, strlen(q), 64, &d, &err), &err);
    SF_CHECK(!d.from_cache && low.gpu == NULL && low.t5 != NULL); /* uploaded, encoded, freed */
    sf_encoded_free(&a), sf_encoded_free(&b), sf_encoded_free(&c), sf_encoded_free(&d);
    sf_encoder_free(&cpu), sf_encoder_free(&gpu_enc), sf_encoder_free(&low);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    SF_CHECK(system(cmd) == 0);
}

/* SF_CUDA_PROFILE=1: each encode is one run of the profile, its linear layers' and attention's
 * arithmetic counted exactly (so the bench reports their TFLOP/s), a refused encode adds nothing,
 * profiling changes no output byte, and a reset empties it. */
static void test_profile(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_t5 *m = open_model();
    sf_tfile *ex = sf_test_open_golden("expect/t5.safetensors");
    sf_t5_gpu *plain = NULL, *g = NULL;
    sf_err err = {{0}};
    static float a[512 * 64], b[512 * 64];
    int64_t ids[512], n = 0;
    if (!m || !ex || !prompt(ex, 1, ids, &n)) goto done;
    SF_CHECK_OK(sf_t5_cuda_new(m, dev, 512, &plain, &err), &err);
    setenv("SF_CUDA_PROFILE", "1", 1);
    SF_CHECK_OK(sf_t5_cuda_new(m, dev, 512, &g, &err), &err);
    unsetenv("SF_CUDA_PROFILE");
    if (!plain || !g) goto done;
    char buf[2048] = "";
    SF_CHECK_OK(sf_t5_cuda_encode(plain, ids, 512, n, a, NULL, &err), &err);
    SF_CHECK(!sf_t5_cuda_profile(plain, buf, sizeof buf));
    SF_CHECK_OK(sf_t5_cuda_encode(g, ids, 512, n, b, NULL, &err), &err);
    SF_CHECK_MSG(!memcmp(a, b, sizeof a), "profiling changed the embedding");
    int64_t bad[1] = {-1};
    SF_CHECK(sf_t5_cuda_encode(g, bad, 512, 1, b, NULL, &err) == SF_E_ARG);
    SF_CHECK_OK(sf_t5_cuda_encode(g, ids, 512, n, b, NULL, &err), &err);
    SF_CHECK(sf_t5_cuda_profile(g, buf, sizeof buf));
    SF_CHECK_MSG(!strncmp(buf, "2 prompts,", 10), "%s", buf);
    const sf_t5_config *c = &m->cfg;
    const double N = (double)n, D = (double)c->dim, A = (double)c->dim_attn, F = (double)c->dim_ffn;
    const double NL = (double)c->num_layers;
    /* per layer: [q; k; v] (3A×D), o (D×A), [gate; fc1] (2F×D), fc2 (D×F), 2 flops per multiply-add */
    const double want_lin = 2 * N * (3 * A * D + D * A + 2 * F * D + D * F) * NL / 1e9;
    const double want_attn = 4 * N * N * A * NL / 1e9;
    const double lin = sf_test_prof_gflop(buf, "linear (cuBLASLt)");
    const double attn = sf_test_prof_gflop(buf, "attention (QK, bias softmax, PV)");
    SF_CHECK_MSG(fabs(lin - want_lin) <= 1e-3 * want_lin, "linear %.6g GFLOP per prompt, want %.6g (%s)", lin,
                 want_lin, buf);
    SF_CHECK_MSG(fabs(attn - want_attn) <= 1e-3 * want_attn, "attention %.6g GFLOP per prompt, want %.6g (%s)",
                 attn, want_attn, buf);
    SF_CHECK_MSG(sf_test_prof_gflop(buf, "copies") < 0, "copies count arithmetic: %s", buf);
    sf_t5_cuda_profile_reset(g);
    SF_CHECK(!sf_t5_cuda_profile(g, buf, sizeof buf));
    /* the profile itself (common/gpu_host.c): a run abandoned midway (an encode that failed after some of its
       products were marked; the next run sets n_ev back to 0) counts none of its arithmetic */
    sf_cuda_ctx cx;
    static const char *const cat[2] = {"products", "rest"};
    sf_gpu_prof p;
    SF_CHECK_OK(sf_cuda_ctx_init(&cx, dev, &err), &err);
    SF_CHECK_OK(sf_gpu_prof_init(&p, 8, 2, cat, &err), &err);
    sf_gpu_prof_mark_flops(&p, &cx, 0, 1e12);
    sf_gpu_prof_mark(&p, &cx, 1);
    p.n_ev = 0; /* abandoned */
    sf_gpu_prof_mark_flops(&p, &cx, 0, 7e9);
    sf_gpu_prof_mark(&p, &cx, 1);
    SF_CHECK_OK(sf_gpu_prof_collect(&p, &err), &err);
    SF_CHECK_MSG(p.runs == 1 && p.flops[0] == 7e9 && p.flops[1] == 0, "%d runs, %g and %g FLOPs (want 1, 7e9, 0)",
                 p.runs, p.flops[0], p.flops[1]);
    SF_CHECK(sf_gpu_prof_format(&p, "runs", 2, buf, sizeof buf) && sf_test_prof_gflop(buf, "products") == 7);
    sf_gpu_prof_free(&p);
    sf_cuda_ctx_free(&cx);
done:
    sf_t5_cuda_destroy(&plain);
    sf_t5_cuda_destroy(&g);
    sf_tfile_destroy(&ex);
    sf_t5_destroy(&m);
}

static const sf_test tests[] = {
    {"refusal", test_refusal},
    {"prompt0_intermediates", test_prompt0_intermediates},
    {"all_prompts", test_all_prompts},
    {"chunked_attention", test_chunked_attention},
    {"regrow_resident_and_bad_ids", test_regrow_resident_and_bad_ids},
    {"encoder_pipeline", test_encoder_pipeline},
    {"streaming", test_streaming},
    {"profile", test_profile},
};
SF_TEST_MAIN(tests)
