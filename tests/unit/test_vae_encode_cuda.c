/* test_vae_encode_cuda.c — the GPU VAE encoder (stages/decode/vae_enc_cuda.c) against the reference's
 * encode_to_latent (tests/golden/expect/vae_encode.safetensors: the golden tiny VAE, base width 8, on a
 * 1-frame 32x48 image and a 9-frame 24x40 video) within the GPU VAE's bf16 bound (SF_TOL_VAE_BF16: name,
 * index, both values and max|Δ| on failure); frame by frame and uneven splits bit-identical to all at once,
 * reset reuse, latents_for; against the CPU encoder (vae_enc.c) on random VAEs of other widths
 * (tools/mkmodel/mkmodel.h sf_mk_vae_params(base, z): bases 16 and 24, z 8, 16 and 24) and frame sizes; refusals
 * (widths cuDNN cannot take; no usable GPU) as one line with nothing allocated.
 * SF_TEST_DEVICE=cuda:N picks the GPU; SKIP without one (refusal runs everywhere).
 * Built twice like test_vae_cuda.c: test_vae_encode_cuda (real CUDA: tests/gpu/check.sh) and, with
 * -DSF_TEST_EMU, test_vae_encode_emu — the whole GPU encoder on the CPU emulation of the kernels, cuBLASLt
 * and cuDNN (kernels/cuda/emu), in every `make test`. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "device.h"
#include "tfile.h"
#include "stages/decode/vae_enc.h"
#include "stages/decode/vae_enc_cuda.h"
#include "tools/mkmodel/mkmodel.h"
#include "vae_encode_golden.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The golden VAE's encoder (weights only) and its GPU encoder for H×W; 0 when the test cannot go on. */
static int open_gpu(const char *path, int64_t H, int64_t W, int ord, sf_vae_enc **e, sf_vae_enc_cuda **g) {
    sf_err err = {{0}};
    SF_CHECK_OK(sf_vae_enc_new_weights(path, H, W, e, &err), &err);
    if (*e) SF_CHECK_OK(sf_vae_enc_cuda_new(*e, ord, g, &err), &err);
    return *e && *g;
}

static void test_encode_cuda_golden(void) {
    int ord = 0;
    if (!sf_test_pick_gpu(&ord)) {
        SF_TEST_SKIP("no CUDA device");
        return;
    }
    sf_tfile *g = sf_test_open_golden("expect/vae_encode.safetensors");
    if (!g) return;
    const char *names[2] = {"img", "vid"};
    for (int k = 0; k < 2; k++) {
        golden_case c = {0};
        char pre[8];
        snprintf(pre, sizeof pre, "%s.", names[k]);
        sf_vae_enc *e = NULL;
        sf_vae_enc_cuda *gc = NULL;
        if (load_case(g, pre, &c) && open_gpu(sf_test_gpath("model/Wan2.1_VAE.pth"), c.H, c.W, ord, &e, &gc)) {
            sf_err err = {{0}};
            const size_t zf = zframe(&c);
            float *z = calloc(zf * (size_t)c.Tl, sizeof(float));
            int64_t m = -1;
            SF_CHECK(sf_vae_enc_cuda_latents_for(gc, c.T) == c.Tl);
            SF_CHECK_OK(sf_vae_enc_cuda_encode(gc, c.px, c.T, z, &m, &err), &err);
            SF_CHECK_MSG(m == c.Tl, "%s: %lld latent frames, want %lld", names[k], (long long)m, (long long)c.Tl);
            char what[64];
            snprintf(what, sizeof what, "%s latent (GPU)", names[k]);
            if (m == c.Tl) sf_test_max_close(what, z, c.ref, zf * (size_t)c.Tl, SF_TOL_VAE_BF16, SF_TOL_VAE_BF16);
            free(z);
        }
        sf_vae_enc_cuda_destroy(&gc);
        sf_vae_enc_destroy(&e);
        free_case(&c);
    }
    sf_tfile_destroy(&g);
}

/* At once, frame by frame, uneven splits 2, 3, 0, 4: the same bits; reset reuses the encoder. */
static void test_encode_cuda_streamed(void) {
    int ord = 0;
    if (!sf_test_pick_gpu(&ord)) {
        SF_TEST_SKIP("no CUDA device");
        return;
    }
    sf_err err = {{0}};
    sf_tfile *g = sf_test_open_golden("expect/vae_encode.safetensors");
    golden_case c = {0};
    sf_vae_enc *e = NULL;
    sf_vae_enc_cuda *gc = NULL;
    if (!g || !load_case(g, "vid.", &c) || !open_gpu(sf_test_gpath("model/Wan2.1_VAE.pth"), c.H, c.W, ord, &e, &gc)) goto done;
    const size_t zf = zframe(&c), pf = (size_t)(3 * c.H * c.W);
    float *one = calloc(zf * 3, sizeof(float)), *got = calloc(zf * 3, sizeof(float));
    int64_t m = 0, at = 0;
    SF_CHECK_OK(sf_vae_enc_cuda_encode(gc, c.px, 9, one, &m, &err), &err);
    SF_CHECK(m == 3);
    SF_CHECK_OK(sf_vae_enc_cuda_reset(gc, &err), &err);
    for (int64_t t = 0; t < 9; t++) { /* latents after frames 1, 5 and 9 */
        const int64_t want = t == 0 || t == 4 || t == 8;
        SF_CHECK(sf_vae_enc_cuda_latents_for(gc, 1) == want);
        SF_CHECK_OK(sf_vae_enc_cuda_encode(gc, c.px + (size_t)t * pf, 1, got + (size_t)at * zf, &m, &err), &err);
        SF_CHECK(m == want);
        at += m;
    }
    SF_CHECK_MSG(at == 3 && !memcmp(one, got, zf * 3 * sizeof(float)), "frame by frame differs from all at once");
    SF_CHECK_OK(sf_vae_enc_cuda_reset(gc, &err), &err);
    memset(got, 0, zf * 3 * sizeof(float));
    const int64_t split[4] = {2, 3, 0, 4}, lat[4] = {1, 1, 0, 1};
    int64_t f = 0;
    at = 0;
    for (int b = 0; b < 4; b++) {
        SF_CHECK(sf_vae_enc_cuda_latents_for(gc, split[b]) == lat[b]);
        SF_CHECK_OK(sf_vae_enc_cuda_encode(gc, c.px + (size_t)f * pf, split[b], got + (size_t)at * zf, &m, &err), &err);
        SF_CHECK(m == lat[b]);
        f += split[b], at += m;
    }
    SF_CHECK_MSG(at == 3 && !memcmp(one, got, zf * 3 * sizeof(float)), "uneven splits differ from all at once");
    SF_CHECK(sf_vae_enc_cuda_encode(gc, NULL, 1, got, &m, &err) == SF_E_ARG);
    free(one), free(got);
done:
    sf_vae_enc_cuda_destroy(&gc);
    sf_vae_enc_destroy(&e);
    free_case(&c);
    sf_tfile_destroy(&g);
}

/* A random f32 VAE sf_mk_vae_params(base, z) written to path (safetensors). */
static int write_vae(const char *path, int base, int z) {
    sf_err err = {{0}};
    sf_mk_params p = {0};
    sf_tensor_entry *ents = NULL;
    int ok = 0;
    SF_CHECK_OK(sf_mk_vae_params(base, z, &p, &err), &err);
    if (!err.msg[0]) SF_CHECK_OK(sf_mk_generate(&p, SF_F32, 7, "", 0.0f, &ents, &err), &err);
    if (ents) {
        SF_CHECK_OK(sf_safetensors_write(path, ents, p.n, NULL, 0, &err), &err);
        ok = !err.msg[0];
        sf_mk_entries_free(ents, p.n);
    }
    sf_mk_params_free(&p);
    return ok;
}

typedef struct shape_case {
    int base, z, H, W, T;
    int split[4]; /* the GPU's calls, frames each (0 ends) */
} shape_case;

/* The GPU encoder against the CPU one on random VAEs of other widths and frame sizes. */
static void test_encode_cuda_shapes(void) {
    int ord = 0;
    if (!sf_test_pick_gpu(&ord)) {
        SF_TEST_SKIP("no CUDA device");
        return;
    }
    static const shape_case cases[] = {
        {16, 16, 16, 24, 5, {5}},       /* 2 latents of 2x3 */
        {8, 8, 24, 40, 9, {2, 3, 4}},   /* z 8; 3 latents in uneven calls */
        {24, 24, 8, 16, 1, {1}},        /* an image at a 1x2 latent */
    };
    char dir[] = "/tmp/sf_vae_enc_cuda_XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        SF_CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    snprintf(path, sizeof path, "%s/vae.safetensors", dir);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const shape_case *c = &cases[k];
        sf_err err = {{0}};
        sf_vae_enc *cpu = NULL, *e = NULL;
        sf_vae_enc_cuda *gc = NULL;
        if (!write_vae(path, c->base, c->z)) continue;
        SF_CHECK_OK(sf_vae_enc_new(path, c->H, c->W, 2, &cpu, &err), &err);
        if (!cpu || !open_gpu(path, c->H, c->W, ord, &e, &gc)) goto next;
        const int64_t Tl = sf_vae_enc_latents_for(cpu, c->T);
        const size_t zf = (size_t)(c->z * (c->H / 8) * (c->W / 8)), pf = (size_t)(3 * c->H * c->W);
        float *px = malloc(pf * (size_t)c->T * sizeof(float)), *zc = calloc(zf * (size_t)Tl, sizeof(float)),
              *zg = calloc(zf * (size_t)Tl, sizeof(float));
        uint64_t r = 0x9E3779B97F4A7C15ull + k;
        for (size_t i = 0; i < pf * (size_t)c->T; i++) { /* pixels in [-1, 1) */
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            px[i] = (float)((double)(r >> 11) / 4503599627370496.0 - 1.0);
        }
        int64_t m = 0, at = 0, f = 0;
        SF_CHECK_OK(sf_vae_encode(cpu, px, c->T, zc, &m, &err), &err);
        SF_CHECK(m == Tl);
        for (int b = 0; b < 4 && c->split[b]; b++) {
            SF_CHECK_OK(sf_vae_enc_cuda_encode(gc, px + (size_t)f * pf, c->split[b], zg + (size_t)at * zf, &m, &err), &err);
            f += c->split[b], at += m;
        }
        char what[96];
        snprintf(what, sizeof what, "base %d z %d %dx%d %d frames: latent", c->base, c->z, c->W, c->H, c->T);
        SF_CHECK_MSG(at == Tl, "%s frames %lld, want %lld", what, (long long)at, (long long)Tl);
        if (at == Tl) sf_test_max_close(what, zg, zc, zf * (size_t)Tl, SF_TOL_VAE_BF16, SF_TOL_VAE_BF16);
        free(px), free(zc), free(zg);
    next:
        sf_vae_enc_cuda_destroy(&gc);
        sf_vae_enc_destroy(&e);
        sf_vae_enc_destroy(&cpu);
    }
    /* a base width cuDNN's bf16 NDHWC cannot take: refused at init, one line, nothing made */
    if (write_vae(path, 12, 16)) {
        sf_err err = {{0}};
        sf_vae_enc *e = NULL;
        sf_vae_enc_cuda *gc = NULL;
        SF_CHECK_OK(sf_vae_enc_new_weights(path, 16, 16, &e, &err), &err);
        if (e) {
            sf_status s = sf_vae_enc_cuda_new(e, ord, &gc, &err);
            SF_CHECK_MSG(s == SF_E_UNSUPPORTED && !gc && err.msg[0] && !strchr(err.msg, '\n') && strstr(err.msg, "multiples of 8"),
                         "base 12: %s '%s'", sf_status_str(s), err.msg);
        }
        sf_vae_enc_destroy(&e);
    }
    unlink(path);
    rmdir(dir);
}

/* Without a usable GPU: one clear line, nothing allocated (with one: a bad ordinal). The CPU state is not
 * needed for it and sf_vae_encode refuses an encoder opened without it. */
static void test_encode_cuda_refusal(void) {
    sf_err err = {{0}};
    sf_vae_enc *e = NULL;
    sf_vae_enc_cuda *gc = NULL;
    int ord = 0, has = sf_test_pick_gpu(&ord);
    SF_CHECK_OK(sf_vae_enc_new_weights(sf_test_gpath("model/Wan2.1_VAE.pth"), 16, 24, &e, &err), &err);
    if (!e) return;
    sf_status s = sf_vae_enc_cuda_new(e, has ? 999 : 0, &gc, &err);
    SF_CHECK_MSG(s != SF_OK && gc == NULL, "sf_vae_enc_cuda_new gave %s", sf_status_str(s));
    SF_CHECK_MSG(err.msg[0] && !strchr(err.msg, '\n'), "message: '%s'", err.msg);
    printf("# refusal: %s\n", err.msg);
    float px[3 * 16 * 24] = {0}, z[16 * 2 * 3];
    int64_t m = 0;
    SF_CHECK(sf_vae_encode(e, px, 1, z, &m, &err) == SF_E_ARG && strstr(err.msg, "without the CPU state"));
    sf_vae_enc_destroy(&e);
}

static const sf_test tests[] = {
    {"encode_cuda_golden", test_encode_cuda_golden},
    {"encode_cuda_streamed", test_encode_cuda_streamed},
    {"encode_cuda_shapes", test_encode_cuda_shapes},
    {"encode_cuda_refusal", test_encode_cuda_refusal},
};
SF_TEST_MAIN(tests)
