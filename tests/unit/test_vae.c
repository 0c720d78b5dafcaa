/* test_vae.c — the VAE decoder (stages/decode/vae.c) against the golden reference decode
 * (tests/golden/expect/vae.safetensors from wan/modules/vae.py, dim 8, 9 latent frames → 33):
 * intermediates, video and frames_u8 within vae_manifest.json tolerances; streamed decoding in
 * blocks (3,3,3 and 1,2,4,2) is bit-identical to one-shot; config inferred from shapes;
 * a missing tensor is a one-line error. */
#include "sf_test.h"
#include "tfile.h"
#include "stages/decode/vae.h"

#include <stdio.h>

typedef struct tap_ctx {
    const sf_tfile *g;
    int checked;
} tap_ctx;

static void tap(void *p, const char *name, int64_t lf, const float *x, int64_t frames, int64_t C, int64_t H,
                int64_t W) {
    tap_ctx *c = p;
    int64_t n = 0;
    if (!strcmp(name, "latent_unscaled") || !strcmp(name, "decoder_in")) {
        /* golden [1, C, T, H, W]: take time slice lf */
        float *g = sf_test_golden_f32(c->g, name, &n);
        if (!g) return;
        int64_t T = n / (C * H * W);
        float *sl = malloc(sizeof(float) * (size_t)(C * H * W));
        for (int64_t ch = 0; ch < C; ch++) memcpy(sl + ch * H * W, g + (ch * T + lf) * H * W, sizeof(float) * H * W);
        char what[64];
        snprintf(what, sizeof what, "%s[t=%lld]", name, (long long)lf);
        /* decoder_in is past the 1×1×1 conv2: a convolution, bf16 in the bf16 mode as on the GPU */
        double tol = strcmp(name, "decoder_in") ? SF_TOL_VAE_LATENT : SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16);
        sf_test_max_close(what, x, sl, (size_t)(C * H * W), tol, tol); /* the manifest's atol + rtol·max|ref| */
        c->checked++;
        free(sl);
        free(g);
        return;
    }
    const char *gname = NULL;
    if (lf == 0 && !strcmp(name, "decoder.conv1")) gname = "dec_conv1_f0";
    if (lf == 0 && !strcmp(name, "decoder.middle.2")) gname = "dec_middle_f0";
    if (lf == 0 && !strcmp(name, "decoder.upsamples.3")) gname = "dec_up0_f0";
    if (lf == 1 && !strcmp(name, "decoder.upsamples.3")) gname = "dec_up0_f1";
    if (!gname) return;
    float *g = sf_test_golden_f32(c->g, gname, &n);
    if (!g) return;
    /* golden [1, C, T, H, W]; ours [T, C, H, W] */
    SF_CHECK_MSG(n == frames * C * H * W, "%s: %lld elements, ours %lld", gname, (long long)n,
                 (long long)(frames * C * H * W));
    if (n == frames * C * H * W) {
        float *ours = malloc(n * sizeof(float));
        for (int64_t f = 0; f < frames; f++)
            for (int64_t ch = 0; ch < C; ch++)
                memcpy(ours + (ch * frames + f) * H * W, x + (f * C + ch) * H * W, sizeof(float) * H * W);
        sf_test_max_close(gname, ours, g, n, SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16),
                          SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16));
        free(ours);
        c->checked++;
    }
    free(g);
}

/* Streamed decoding gives the one-shot frames: the same bits in the exact mode, within the mode's
 * tolerance in the fast and bf16 ones (oneDNN's blocking differs with the frames per call). */
static void same_as_one_shot(const float *one, const float *blk, size_t nv, int64_t at) {
    SF_CHECK(at == 33);
    if (sf_cpu_mode_now() == SF_CPU_EXACT) SF_CHECK(!memcmp(one, blk, nv * sizeof(float)));
    else sf_test_max_close("streamed", blk, one, nv, SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16),
                           SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16));
}

static void test_vae_golden(void) {
    sf_err err = {{0}};
    sf_tfile *g = NULL;
    sf_vae *v = NULL;
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath("expect/vae.safetensors"), &g, &err), &err);
    if (!g) return;
    SF_CHECK_OK(sf_vae_new(sf_test_gpath("model/Wan2.1_VAE.pth"), 8, 12, 2, &v, &err), &err);
    if (!v) goto done;
    /* config inferred from shapes (manifest inferred_config_from_shapes) */
    SF_CHECK(v->cfg.z_dim == 16 && v->cfg.top == 32 && v->cfg.dim == 8 && v->cfg.n_layers == 18);
    SF_CHECK(v->cfg.n_up3d == 2 && v->cfg.n_up == 3 && v->cfg.layers[1].kind == SF_VAE_ATTN);
    SF_CHECK(v->cfg.layers[6].kind == SF_VAE_UP3D && v->cfg.layers[14].kind == SF_VAE_UP2D);
    SF_CHECK(v->st.n_caches == 32); /* the reference's 32 used cache slots */

    int64_t nz, nv, nm, ns;
    float *z = sf_test_golden_f32(g, "z", &nz), *ref = sf_test_golden_f32(g, "video", &nv);
    float *gm = sf_test_golden_f32(g, "latent_mean", &nm), *gs = sf_test_golden_f32(g, "latent_std", &ns);
    const sf_tensor *u8t = sf_tfile_get(g, "frames_u8");
    SF_CHECK(nz == 9 * 16 * 8 * 12 && nv == 33 * 3 * 64 * 96 && u8t && u8t->dtype == SF_U8);
    SF_CHECK(nm == 16 && ns == 16 && !memcmp(gm, sf_vae_latent_mean, 64) && !memcmp(gs, sf_vae_latent_std, 64));

    tap_ctx tc = {g, 0};
    sf_vae_set_tap(v, tap, &tc);
    float *one = malloc(nv * sizeof(float)), *blk = malloc(nv * sizeof(float));
    uint8_t *u8 = malloc(nv);
    int64_t no = 0;
    SF_CHECK(sf_vae_frames_for(v, 9) == 33);
    const unsigned long long misses = sf_scratch_misses();
    SF_CHECK_OK(sf_vae_decode(v, z, 9, one, u8, &no, &err), &err);
    SF_CHECK_MSG(sf_scratch_misses() == misses, "%llu convolutions allocated their own work memory (the state's "
                 "scratch is sized at init)", sf_scratch_misses() - misses);
    SF_CHECK(no == 33);
    SF_CHECK_MSG(tc.checked == 9 + 9 + 4, "%d intermediates checked", tc.checked);
    sf_vae_set_tap(v, NULL, NULL);
    sf_test_max_close("video", one, ref, nv, SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16),
                      SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16));
    int du = 0;
    const uint8_t *gu = u8t->data;
    for (int64_t i = 0; i < nv; i++) {
        int d = abs((int)u8[i] - (int)gu[i]);
        du = d > du ? d : du;
    }
    SF_CHECK_MSG(du <= SF_TOL_CPU(1, SF_TOL_VAE_U8), "frames_u8 max|diff| %d", du);

    /* streamed: blocks of 3 latent frames → 9, 12, 12 frames, as one-shot */
    sf_vae_reset(v);
    int64_t at = 0, want[3] = {9, 12, 12};
    const size_t fe = 3 * 64 * 96, ze = 16 * 8 * 12;
    for (int b = 0; b < 3; b++) {
        SF_CHECK(sf_vae_frames_for(v, 3) == want[b]);
        SF_CHECK_OK(sf_vae_decode(v, z + (size_t)b * 3 * ze, 3, blk + at * fe, NULL, &no, &err), &err);
        SF_CHECK(no == want[b]);
        at += no;
    }
    same_as_one_shot(one, blk, nv, at);
    /* uneven blocks 1, 2, 4, 2 */
    sf_vae_reset(v);
    int sizes[4] = {1, 2, 4, 2}, zi = 0;
    at = 0;
    memset(blk, 0, nv * sizeof(float));
    for (int b = 0; b < 4; b++) {
        SF_CHECK_OK(sf_vae_decode(v, z + (size_t)zi * ze, sizes[b], blk + at * fe, NULL, &no, &err), &err);
        zi += sizes[b];
        at += no;
    }
    same_as_one_shot(one, blk, nv, at);
    free(z);
    free(ref);
    free(gm);
    free(gs);
    free(one);
    free(blk);
    free(u8);
done:
    sf_vae_destroy(&v);
    sf_tfile_destroy(&g);
}

static void test_vae_thread_invariance(void) {
    /* 1 thread and 3 threads give the same bits (2 latent frames) */
    sf_err err = {{0}};
    sf_vae *v1 = NULL, *v3 = NULL;
    SF_CHECK_OK(sf_vae_new(sf_test_gpath("model/Wan2.1_VAE.pth"), 8, 12, 1, &v1, &err), &err);
    SF_CHECK_OK(sf_vae_new(sf_test_gpath("model/Wan2.1_VAE.pth"), 8, 12, 3, &v3, &err), &err);
    if (v1 && v3) {
        static float z[2 * 16 * 8 * 12], a[5 * 3 * 64 * 96], b[5 * 3 * 64 * 96];
        uint32_t s = 1;
        for (size_t i = 0; i < sizeof z / sizeof z[0]; i++) {
            s = s * 1664525u + 1013904223u;
            z[i] = (float)((s >> 8) & 0xffff) / 16384.0f - 2.0f;
        }
        int64_t n1 = 0, n3 = 0;
        sf_test_exact(1); /* thread-count invariance: the exact mode's promise */
        SF_CHECK_OK(sf_vae_decode(v1, z, 2, a, NULL, &n1, &err), &err);
        SF_CHECK_OK(sf_vae_decode(v3, z, 2, b, NULL, &n3, &err), &err);
        sf_test_exact(0);
        SF_CHECK(n1 == 5 && n3 == 5 && !memcmp(a, b, sizeof a));
    }
    sf_vae_destroy(&v1);
    sf_vae_destroy(&v3);
}

static void test_vae_bad_file(void) {
    sf_err err = {{0}};
    sf_vae *v = NULL;
    /* a safetensors file that is not a VAE: clear one-line error, no crash */
    sf_status s = sf_vae_new(sf_test_gpath("expect/vae.safetensors"), 8, 12, 1, &v, &err);
    SF_CHECK(s == SF_E_NOTFOUND && v == NULL && strstr(err.msg, "conv2.weight") && !strchr(err.msg, '\n'));
    s = sf_vae_new(sf_test_gpath("model/nonexistent.pth"), 8, 12, 1, &v, &err);
    SF_CHECK(s != SF_OK && v == NULL);
    s = sf_vae_new(sf_test_gpath("model/Wan2.1_VAE.pth"), 0, 12, 1, &v, &err);
    SF_CHECK(s == SF_E_ARG && v == NULL);
}

static const sf_test tests[] = {
    {"vae_golden", test_vae_golden},
    {"vae_thread_invariance", test_vae_thread_invariance},
    {"vae_bad_file", test_vae_bad_file},
};
SF_TEST_MAIN(tests)
