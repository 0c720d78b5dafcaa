/* test_t5.c — stages/encode/cache.c (SHA-256 vectors, put/get, corrupt entry → miss) and
 * stages/encode/t5.c against tests/golden/expect/t5.safetensors: the bucket
 * table (exact), prompt-0 intermediates dbg.embed (exact), dbg.block0.{norm1,attn,out} and
 * emb.<i> of all 28 prompts within the manifest's fp32 tolerance (max|Δ| ≤ 1e-4·max|ref| over
 * the real rows, pad rows exactly 0), thread-count invariance, and bad weights/ids. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "stages/encode/cache.h"
#include "stages/encode/t5.h"
#include <unistd.h>
#include "tfile.h"

static sf_t5 *open_golden(int nthreads) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model/models_t5_umt5-xxl-enc-bf16.pth", sf_test_golden());
    sf_t5 *m = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_t5_open(path, nthreads, &m, &err), &err);
    return m;
}

static sf_tfile *open_expect(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/expect/t5.safetensors", sf_test_golden());
    sf_tfile *tf = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_tfile_open(path, &tf, &err), &err);
    return tf;
}

static void test_config_and_buckets(void) {
    sf_t5 *m = open_golden(1);
    sf_tfile *ex = open_expect();
    if (!m || !ex) goto done;
    const sf_t5_config *c = &m->cfg;
    SF_CHECK(c->vocab == 1000 && c->dim == 64 && c->dim_attn == 64 && c->dim_ffn == 160);
    SF_CHECK(c->num_heads == 4 && c->head_dim == 16 && c->num_layers == 3 && c->num_buckets == 32);
    SF_CHECK(c->shared_pos == 0);
    const sf_tensor *bt = sf_tfile_get(ex, "bucket.table");
    SF_CHECK(bt && bt->ndim == 2 && bt->shape[0] == 512 && bt->shape[1] == 512);
    if (!bt) goto done;
    int bad = 0;
    for (int64_t i = 0; i < 512; i++)
        for (int64_t j = 0; j < 512; j++) bad += (int64_t)sf_tensor_get(bt, i * 512 + j) != sf_t5_bucket(c, j - i);
    SF_CHECK_MSG(bad == 0, "%d bucket mismatches", bad);
    /* the generic float32 formula path (any other bucket config) */
    sf_t5_config c2 = *c;
    c2.max_dist = 129; /* forces the formula path */
    SF_CHECK(sf_t5_bucket(&c2, 7) == 23 && sf_t5_bucket(&c2, -7) == 7 && sf_t5_bucket(&c2, -9) == 8);
    SF_CHECK(sf_t5_bucket(&c2, 600) == 31 && sf_t5_bucket(&c2, -600) == 15 && sf_t5_bucket(&c2, 0) == 0);
done:
    sf_tfile_destroy(&ex);
    sf_t5_destroy(&m);
}

static void test_prompt0_intermediates(void) {
    sf_t5 *m = open_golden(2);
    sf_tfile *ex = open_expect();
    if (!m || !ex) goto done;
    int64_t ids[512], n = 0;
    const sf_tensor *ti = sf_tfile_get(ex, "ids.0"), *tm = sf_tfile_get(ex, "mask.0");
    if (!ti || !tm) { SF_CHECK(0); goto done; }
    for (int i = 0; i < 512; i++) ids[i] = (int64_t)sf_tensor_get(ti, i), n += (int64_t)sf_tensor_get(tm, i);
    SF_CHECK(n == 19);
    static float out[512 * 64], e[512 * 64], n1[512 * 64], at[512 * 64], bo[512 * 64], ref[512 * 64];
    sf_t5_debug dbg = {e, n1, at, bo};
    sf_err err = {{0}};
    SF_CHECK_OK(sf_t5_encode(m, ids, 512, n, out, &dbg, &err), &err);
    const char *names[4] = {"dbg.embed", "dbg.block0.norm1", "dbg.block0.attn", "dbg.block0.out"};
    float *got[4] = {e, n1, at, bo};
    for (int k = 0; k < 4; k++) {
        const sf_tensor *r = sf_tfile_get(ex, names[k]);
        if (!r) { SF_CHECK_MSG(0, "missing %s", names[k]); continue; }
        sf_tensor_to_f32(r, ref);
        sf_test_rel_close(names[k], got[k], ref, (size_t)n * 64, k == 0 ? SF_TOL_EXACT : SF_TOL_CPU(SF_TOL_FP32_FWD, SF_TOL_BF16_T5));
    }
done:
    sf_tfile_destroy(&ex);
    sf_t5_destroy(&m);
}

static void test_all_prompts(void) {
    sf_t5 *m = open_golden(2);
    sf_tfile *ex = open_expect();
    if (!m || !ex) goto done;
    static float out[512 * 64], ref[512 * 64];
    int64_t ids[512];
    char nm[32];
    for (int p = 0; p < 28; p++) {
        snprintf(nm, sizeof nm, "ids.%d", p);
        const sf_tensor *ti = sf_tfile_get(ex, nm);
        snprintf(nm, sizeof nm, "mask.%d", p);
        const sf_tensor *tm = sf_tfile_get(ex, nm);
        snprintf(nm, sizeof nm, "emb.%d", p);
        const sf_tensor *te = sf_tfile_get(ex, nm);
        if (!ti || !tm || !te) { SF_CHECK_MSG(0, "missing golden tensors of prompt %d", p); continue; }
        int64_t n = 0;
        for (int i = 0; i < 512; i++) ids[i] = (int64_t)sf_tensor_get(ti, i), n += (int64_t)sf_tensor_get(tm, i);
        sf_err err = {{0}};
        for (size_t i = 0; i < 512 * 64; i++) out[i] = NAN; /* pad rows must be written */
        const unsigned long long misses = sf_scratch_misses();
        SF_CHECK_OK(sf_t5_encode(m, ids, 512, n, out, NULL, &err), &err);
        SF_CHECK_MSG(sf_scratch_misses() == misses, "prompt %d: %llu GEMMs allocated their own work memory", p,
                     sf_scratch_misses() - misses); /* the encoder's scratch is sized at open */
        sf_tensor_to_f32(te, ref);
        snprintf(nm, sizeof nm, "emb.%d", p);
        sf_test_rel_close(nm, out, ref, (size_t)n * 64, SF_TOL_CPU(SF_TOL_FP32_FWD, SF_TOL_BF16_T5));
        int nz = 0;
        for (size_t i = (size_t)n * 64; i < 512 * 64; i++) nz += out[i] != 0.0f || ref[i] != 0.0f;
        SF_CHECK_MSG(nz == 0, "%s: %d pad values not exactly 0", nm, nz);
    }
done:
    sf_tfile_destroy(&ex);
    sf_t5_destroy(&m);
}

static void test_threads_bit_identical(void) {
    sf_t5 *m1 = open_golden(1), *m3 = open_golden(3);
    if (!m1 || !m3) goto done;
    int64_t ids[512] = {0};
    for (int i = 0; i < 100; i++) ids[i] = (i * 37) % 1000;
    ids[99] = 1;
    static float a[512 * 64], b[512 * 64];
    sf_err err = {{0}};
    sf_test_exact(1); /* thread-count invariance: the exact mode's promise */
    SF_CHECK_OK(sf_t5_encode(m1, ids, 512, 100, a, NULL, &err), &err);
    SF_CHECK_OK(sf_t5_encode(m3, ids, 512, 100, b, NULL, &err), &err);
    sf_test_exact(0);
    SF_CHECK(memcmp(a, b, sizeof a) == 0);
    /* bad ids and lengths */
    ids[5] = 1000;
    SF_CHECK(sf_t5_encode(m1, ids, 512, 100, a, NULL, &err) == SF_E_ARG);
    SF_CHECK(sf_t5_encode(m1, ids, 512, 0, a, NULL, &err) == SF_E_ARG);
    SF_CHECK(sf_t5_encode(m1, ids, 512, 513, a, NULL, &err) == SF_E_ARG);
done:
    sf_t5_destroy(&m1);
    sf_t5_destroy(&m3);
}

static void test_bad_weights(void) {
    sf_t5 *m = NULL;
    sf_err err = {{0}};
    char path[1024];
    /* a safetensors file that is not an encoder */
    snprintf(path, sizeof path, "%s/expect/t5.safetensors", sf_test_golden());
    SF_CHECK(sf_t5_open(path, 1, &m, &err) == SF_E_FORMAT && m == NULL);
    SF_CHECK(strstr(err.msg, "token_embedding") != NULL);
    SF_CHECK(sf_t5_open("/nonexistent.pth", 1, &m, &err) != SF_OK && m == NULL);
}

static void test_cache_sha256_and_roundtrip(void) {
    /* SHA-256 is libsodium's: the FIPS 180-2 vectors through sf_sha256_file, and a cache key
     * that must not change (entries written before the switch stay valid) */
    uint8_t d[32];
    char hex[65], vp[] = "/tmp/sf-test-sha-XXXXXX";
    int fd = mkstemp(vp);
    SF_CHECK(fd >= 0);
    if (fd < 0) return;
    static const struct { const char *msg, *hex; } vec[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", /* padding spills into a 2nd block */
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        sf_err e = {{0}};
        SF_CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, vec[i].msg, strlen(vec[i].msg), 0) == (ssize_t)strlen(vec[i].msg));
        SF_CHECK_OK(sf_sha256_file(vp, d, &e), &e);
        sf_sha256_hex(d, hex);
        SF_CHECK_MSG(strcmp(hex, vec[i].hex) == 0, "sha256(%s) = %s", vec[i].msg, hex);
    }
    close(fd);
    unlink(vp);
    char k0[65];
    sf_cache_key("tok", "weights", "a dog", 4, k0);
    SF_CHECK(strcmp(k0, "13d0ce36ecced9384cf95ea7d6a53da8fc1ec8a37851a84c70f243f37643cb31") == 0);
    /* put → get round trip; a corrupted entry is a miss and is removed */
    char dir[] = "/tmp/sf-test-cache-XXXXXX";
    if (!mkdtemp(dir)) { SF_CHECK(0); return; }
    char key[65];
    sf_cache_key("tok", "weights", "a dog", 4, key);
    float emb[4 * 2] = {1, 2, 3, 4, 0, 0, 0, 0};
    int64_t ids[4] = {5, 6, 1, 0}, mask[4] = {1, 1, 1, 0};
    sf_err err = {{0}};
    SF_CHECK_OK(sf_cache_put(dir, key, "a dog", "tok", "weights", 4, 2, emb, ids, mask, 3, &err), &err);
    sf_cache_entry e;
    int hit = 0;
    SF_CHECK_OK(sf_cache_get(dir, key, 4, &e, &hit, &err), &err);
    SF_CHECK(hit && e.dim == 2 && e.n_tokens == 3 && memcmp(e.emb, emb, sizeof emb) == 0 && e.ids[1] == 6);
    sf_cache_entry_free(&e);
    char path[256];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, key);
    FILE *f = fopen(path, "r+b");
    if (f) {
        fseek(f, -20, SEEK_END); /* inside the ids/mask payload */
        fputc(0x7f, f);
        fclose(f);
    }
    SF_CHECK_OK(sf_cache_get(dir, key, 4, &e, &hit, &err), &err);
    SF_CHECK(!hit && access(path, F_OK) != 0);
    char other[65];
    sf_cache_key("tok", "weights", "a dog", 5, other);
    SF_CHECK(strcmp(other, key) != 0);
    rmdir(dir);
}

static const sf_test tests[] = {
    {"cache_sha256_and_roundtrip", test_cache_sha256_and_roundtrip},
    {"config_and_buckets", test_config_and_buckets}, {"prompt0_intermediates", test_prompt0_intermediates},
    {"all_prompts", test_all_prompts},               {"threads_bit_identical", test_threads_bit_identical},
    {"bad_weights", test_bad_weights},
};
SF_TEST_MAIN(tests)
