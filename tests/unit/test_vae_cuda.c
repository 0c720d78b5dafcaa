/* test_vae_cuda.c — the GPU VAE decoder (stages/decode/vae_cuda.c) against the golden reference
 * decode (tests/golden/expect/vae.safetensors, dim 8, 9 latent frames → 33) within bf16
 * tolerances: intermediates (dec_conv1_f0, dec_middle_f0, dec_up0_f0/f1 through the debug tap),
 * video, frames_u8; streamed in blocks (3,3,3 and 1,2,4,2) gives the same bytes as one-shot; the causal
 * caches hold 2 frames per conv plus one shared stage.
 * SF_TEST_DEVICE=cuda:N picks the GPU; SKIP without one. refusal runs everywhere: on a machine
 * without a usable GPU, sf_vae_cuda_new fails with one line and leaves nothing allocated.
 * Built twice: test_vae_cuda (real CUDA) and, with -DSF_TEST_EMU, test_vae_emu — the whole GPU
 * decoder on the CPU emulation of the kernels, cuBLASLt and cuDNN (kernels/cuda/emu), in every
 * `make test`. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "device.h"
#include "tfile.h"
#ifdef SF_TEST_EMU
#include "cuda/emu/sf_emu.h"
#endif
#include "stages/decode/vae.h"
#include "stages/decode/vae_cuda.h"

#include <stdio.h>

typedef struct tap_ctx {
    const sf_tfile *g;
    int checked;
} tap_ctx;

/* The golden intermediates of latent frames 0 and 1 ([1, C, T, H, W]; ours [T, C, H, W]). */
static void tap(void *p, const char *name, int64_t lf, const float *x, int64_t frames, int64_t C, int64_t H,
                int64_t W) {
    tap_ctx *c = p;
    const char *gname = NULL;
    if (lf == 0 && !strcmp(name, "decoder.conv1")) gname = "dec_conv1_f0";
    if (lf == 0 && !strcmp(name, "decoder.middle.2")) gname = "dec_middle_f0";
    if (lf == 0 && !strcmp(name, "decoder.upsamples.3")) gname = "dec_up0_f0";
    if (lf == 1 && !strcmp(name, "decoder.upsamples.3")) gname = "dec_up0_f1";
    if (!gname) return;
    int64_t n = 0;
    float *g = sf_test_golden_f32(c->g, gname, &n);
    if (!g) return;
    SF_CHECK_MSG(n == frames * C * H * W, "%s: %lld elements, ours %lld", gname, (long long)n,
                 (long long)(frames * C * H * W));
    if (n == frames * C * H * W) {
        float *ours = malloc(n * sizeof(float));
        for (int64_t f = 0; f < frames; f++)
            for (int64_t ch = 0; ch < C; ch++)
                memcpy(ours + (ch * frames + f) * H * W, x + (f * C + ch) * H * W, sizeof(float) * H * W);
        sf_test_max_close(gname, ours, g, n, SF_TOL_VAE_BF16, SF_TOL_VAE_BF16);
        free(ours);
        c->checked++;
    }
    free(g);
}

/* The device to test, the golden file and the golden VAE (2 threads); 0 when the test cannot go on
 * (SKIP without a device, a failed check otherwise); the caller destroys what was opened. */
static int open_golden(int *ord, sf_tfile **g, sf_vae **v) {
    sf_err err = {{0}};
    if (!sf_test_pick_gpu(ord)) {
        SF_TEST_SKIP("no CUDA device");
        return 0;
    }
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath("expect/vae.safetensors"), g, &err), &err);
    if (*g) SF_CHECK_OK(sf_vae_new(sf_test_gpath("model/Wan2.1_VAE.pth"), 8, 12, 2, v, &err), &err);
    return *g && *v;
}

/* The causal caches' device memory by the layout: 2 frames per cached conv plus one shared stage of
 * the largest conv's 2 + n frames (sf_vae_walk lists every cached conv with its frame size and n). */
typedef struct cache_sum {
    size_t two, stage;
} cache_sum;
static void sum_caches(void *ctx, const sf_vae_step *st) {
    cache_sum *c = ctx;
    if (st->kind != SF_VAE_STEP_CACHE) return;
    const size_t fe = (size_t)(st->cin * st->H * st->W), se = (size_t)(2 + st->n) * fe * 2;
    c->two += 2 * fe * 2;
    if (se > c->stage) c->stage = se;
}

static void test_vae_cuda_golden(void) {
    sf_err err = {{0}};
    sf_tfile *g = NULL;
    sf_vae *v = NULL;
    sf_vae_cuda *gv = NULL;
    int ord = 0;
    if (!open_golden(&ord, &g, &v)) goto done;
    SF_CHECK_OK(sf_vae_cuda_new(v, ord, &gv, &err), &err);
    if (!gv) goto done;
    printf("# GPU VAE: %.1f MiB of device memory\n", sf_vae_cuda_bytes(gv) / 1048576.0);
    cache_sum cs = {0, 0};
    sf_vae_walk(&v->cfg, v->st.h, v->st.w, sum_caches, &cs);
    SF_CHECK_MSG(sf_vae_cuda_cache_bytes(gv) == cs.two + cs.stage && cs.two > 0,
                 "causal caches hold %zu bytes; 2 frames per conv + one stage = %zu + %zu", sf_vae_cuda_cache_bytes(gv),
                 cs.two, cs.stage);

    int64_t nz, nv;
    float *z = sf_test_golden_f32(g, "z", &nz), *ref = sf_test_golden_f32(g, "video", &nv);
    const sf_tensor *u8t = sf_tfile_get(g, "frames_u8");
    SF_CHECK(nz == 9 * 16 * 8 * 12 && nv == 33 * 3 * 64 * 96 && u8t && u8t->dtype == SF_U8);
    tap_ctx tc = {g, 0};
    sf_vae_set_tap(v, tap, &tc);
    float *one = malloc(nv * sizeof(float)), *blk = malloc(nv * sizeof(float));
    uint8_t *u8 = malloc(nv), *u8b = malloc(nv);
    int64_t no = 0;
    SF_CHECK(sf_vae_cuda_frames_for(gv, 9) == 33);
    SF_CHECK_OK(sf_vae_cuda_decode(gv, z, 9, one, u8, &no, &err), &err);
    SF_CHECK(no == 33);
    SF_CHECK_MSG(tc.checked == 4, "%d intermediates checked", tc.checked);
    sf_vae_set_tap(v, NULL, NULL);
    sf_test_max_close("video", one, ref, nv, SF_TOL_VAE_BF16, SF_TOL_VAE_BF16);
    /* frames_u8: the bf16 error moves pixels by a few levels; the bound follows from the tolerance */
    int du = 0;
    size_t at_du = 0;
    const uint8_t *gu = u8t->data;
    for (int64_t i = 0; i < nv; i++) {
        int d = abs((int)u8[i] - (int)gu[i]);
        if (d > du) du = d, at_du = i;
    }
    if (getenv("SF_TEST_VERBOSE")) fprintf(stderr, "# frames_u8: max|Δ| %d levels (bound %d)\n", du, SF_TOL_VAE_U8);
    SF_CHECK_MSG(du <= SF_TOL_VAE_U8, "frames_u8 max|diff| %d at [%zu] (got %d ref %d)", du, at_du, u8[at_du],
                 gu[at_du]);
    /* the u8 frames are the video's mapping: recompute from `one` exactly */
    int mism = 0;
    for (size_t f = 0; f < 33 && !mism; f++)
        for (size_t ch = 0; ch < 3; ch++)
            for (size_t p = 0; p < 64 * 96; p++) {
                float q = one[(f * 3 + ch) * 6144 + p] * 0.5f + 0.5f;
                q = q < 0 ? 0 : q > 1 ? 1 : q;
                if ((uint8_t)(255.0f * q) != u8[(f * 6144 + p) * 3 + ch]) mism++;
            }
    SF_CHECK_MSG(mism == 0, "u8 frames disagree with the video output (%d)", mism);

    /* streamed: blocks of 3 latent frames → 9, 12, 12 frames, the same bytes */
    const size_t fe = 3 * 64 * 96, ze = 16 * 8 * 12;
    int64_t at = 0, want[3] = {9, 12, 12};
    SF_CHECK_OK(sf_vae_cuda_reset(gv, &err), &err);
    for (int b = 0; b < 3; b++) {
        SF_CHECK(sf_vae_cuda_frames_for(gv, 3) == want[b]);
        SF_CHECK_OK(sf_vae_cuda_decode(gv, z + (size_t)b * 3 * ze, 3, blk + at * fe, u8b + at * fe, &no, &err), &err);
        SF_CHECK(no == want[b]);
        at += no;
    }
    SF_CHECK_MSG(at == 33 && !memcmp(one, blk, nv * sizeof(float)) && !memcmp(u8, u8b, nv),
                 "streamed (3,3,3) differs from one-shot");
    /* pipelined (sf-decode's GPU loop): latent frame t+1 submitted before t's frames are received — the
     * same bytes, in order; a third frame in flight, a receive with none and a blocking decode with
     * frames in flight are refused */
    SF_CHECK_OK(sf_vae_cuda_reset(gv, &err), &err);
    memset(u8b, 0, nv);
    at = 0;
#ifdef SF_TEST_EMU
    /* and a submit never waits for the stream (its frames' copies go to pinned memory behind the decode;
       the receive waits for their event): counted by the emulation */
    const unsigned long long w0 = sf_emu_host_waits();
#endif
    SF_CHECK_OK(sf_vae_cuda_submit(gv, z, 0, 1, &err), &err);
    for (int t = 1; t <= 4; t++) { /* the first 4 latent frames: 1 + 4 + 4 + 4 video frames */
        if (t < 4) SF_CHECK_OK(sf_vae_cuda_submit(gv, z + (size_t)t * ze, 0, 1, &err), &err);
#ifdef SF_TEST_EMU
        SF_CHECK_MSG(sf_emu_host_waits() == w0, "%llu stream waits by submits", sf_emu_host_waits() - w0);
#endif
        if (t == 1) {
            SF_CHECK(sf_vae_cuda_submit(gv, z, 0, 1, &err) == SF_E_ARG && strstr(err.msg, "in flight"));
            SF_CHECK(sf_vae_cuda_decode(gv, z, 1, NULL, u8b, &no, &err) == SF_E_ARG);
            SF_CHECK(sf_vae_cuda_receive(gv, one, NULL, &no, &err) == SF_E_ARG); /* f32 frames were not asked for */
        }
        SF_CHECK_OK(sf_vae_cuda_receive(gv, NULL, u8b + at * fe, &no, &err), &err);
        SF_CHECK(no == (t == 1 ? 1 : 4));
        at += no;
    }
    SF_CHECK(sf_vae_cuda_receive(gv, NULL, u8b, &no, &err) == SF_E_ARG && strstr(err.msg, "no latent frame"));
    SF_CHECK_MSG(at == 13 && !memcmp(u8, u8b, (size_t)at * fe), "pipelined submit/receive differs from one-shot");
#ifdef SF_TEST_EMU /* emulated: the (3,3,3) blocks already exercise the cache hand-over; save ~30 s */
    if (0)
#endif
    {
    SF_CHECK_OK(sf_vae_cuda_reset(gv, &err), &err);
    int sizes[4] = {1, 2, 4, 2}, zi = 0;
    at = 0;
    memset(blk, 0, nv * sizeof(float));
    for (int b = 0; b < 4; b++) {
        SF_CHECK_OK(sf_vae_cuda_decode(gv, z + (size_t)zi * ze, sizes[b], blk + at * fe, NULL, &no, &err), &err);
        zi += sizes[b];
        at += no;
    }
    SF_CHECK_MSG(at == 33 && !memcmp(one, blk, nv * sizeof(float)), "streamed (1,2,4,2) differs from one-shot");
    }
    free(z), free(ref), free(one), free(blk), free(u8), free(u8b);
done:
    sf_vae_cuda_destroy(&gv);
    sf_vae_destroy(&v);
    sf_tfile_destroy(&g);
}

/* 1 when a[0..n) == b[0..n); else 0 and, in why, how many bytes differ, the first, and by how many
 * levels at most (1-2: a summation order; more: a bug). */
static int same_bytes(const uint8_t *a, const uint8_t *b, size_t n, char *why, size_t wn) {
    size_t ndiff = 0, first = n;
    int maxd = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            const int d = abs((int)a[i] - (int)b[i]);
            ndiff++, first = first < i ? first : i, maxd = d > maxd ? d : maxd;
        }
    if (ndiff)
        snprintf(why, wn, "%zu of %zu bytes, first at %zu (%d vs %d), max %d levels", ndiff, n, first, a[first], b[first],
                 maxd);
    return ndiff == 0;
}

/* SF_CUDA_PROFILE=1: one profile run per latent frame, every category timed, the convolutions' and
 * GEMMs' arithmetic counted; profiling changes no output byte. And the convolutions of a steady
 * latent frame's 2 or 4 frames batched into one cuDNN call each give the bytes of the per-frame
 * calls (SF_VAE_FRAME_CONVS=1), in fewer calls. */
static void test_vae_cuda_profile(void) {
    sf_err err = {{0}};
    sf_tfile *g = NULL;
    sf_vae *v = NULL;
    sf_vae_cuda *plain = NULL, *prof = NULL;
    int ord = 0;
    if (!open_golden(&ord, &g, &v)) goto done;
    setenv("SF_VAE_FRAME_CONVS", "1", 1); /* the per-frame convolutions, to compare the batched ones with */
    SF_CHECK_OK(sf_vae_cuda_new(v, ord, &plain, &err), &err);
    unsetenv("SF_VAE_FRAME_CONVS");
    setenv("SF_CUDA_PROFILE", "1", 1);
    SF_CHECK_OK(sf_vae_cuda_new(v, ord, &prof, &err), &err);
    unsetenv("SF_CUDA_PROFILE");
    if (!plain || !prof) goto done;
    char buf[2048] = "";
    SF_CHECK(!sf_vae_cuda_profile(plain, buf, sizeof buf));
    int64_t nz;
    float *z = sf_test_golden_f32(g, "z", &nz);
    const size_t n = 5 * 3 * 64 * 96; /* 2 latent frames → 1 + 4 frames */
    uint8_t *a = malloc(n), *b = malloc(n);
    int64_t na = 0, nb = 0;
#ifdef SF_TEST_EMU
    unsigned long long c0 = sf_emu_conv_calls();
#endif
    SF_CHECK_OK(sf_vae_cuda_decode(plain, z, 2, NULL, a, &na, &err), &err);
#ifdef SF_TEST_EMU
    unsigned long long c1 = sf_emu_conv_calls();
#endif
    SF_CHECK_OK(sf_vae_cuda_decode(prof, z, 2, NULL, b, &nb, &err), &err);
    /* batched (one call per conv of the second latent frame's 2 or 4 frames) = per frame, byte for byte */
    /* on a GPU the batched shapes have their own cuDNN plans: a failure here with max 1-2 levels says those
     * plans sum in another order (not a batching bug, which would show as large differences) */
    char why[160];
    SF_CHECK_MSG(na == 5 && nb == 5 && same_bytes(a, b, n, why, sizeof why),
                 "batched convolutions differ from per-frame ones: %s", why);
#ifdef SF_TEST_EMU
    unsigned long long c2 = sf_emu_conv_calls();
    SF_CHECK_MSG(c2 - c1 < c1 - c0, "conv calls: %llu batched, %llu per frame", c2 - c1, c1 - c0);
#endif
    SF_CHECK(sf_vae_cuda_profile(prof, buf, sizeof buf));
    SF_CHECK_MSG(!strncmp(buf, "2 latent frames,", 16), "%s", buf);
    const char *cats[] = {"conv3d (cuDNN)", "1x1 convs (cuBLASLt)", "RMS norm + SiLU", "mid-block attention",
                          "upsampling", "cache shifts", "latent in, pixels out"};
    for (int i = 0; i < 7; i++) SF_CHECK_MSG(strstr(buf, cats[i]) != NULL, "no %s in %s", cats[i], buf);
    const char *c = strstr(buf, "conv3d (cuDNN)");
    SF_CHECK_MSG(c && strstr(c, "GFLOP") && strstr(c, "GFLOP") < strstr(c, "1x1"), "no conv FLOPs: %s", buf);
    sf_vae_cuda_profile_reset(prof);
    SF_CHECK(!sf_vae_cuda_profile(prof, buf, sizeof buf));
    free(z), free(a), free(b);
done:
    sf_vae_cuda_destroy(&plain);
    sf_vae_cuda_destroy(&prof);
    sf_vae_destroy(&v);
    sf_tfile_destroy(&g);
}

/* Two decoders made the same way give the same bytes: on a GPU each autotunes its conv plans, and the
 * timings differ from one to the other — a plan is only ever swapped for one computing the same bits
 * (conv_cudnn.c tune_choose), so the video cannot depend on them. */
static void test_vae_cuda_reproducible(void) {
    sf_err err = {{0}};
    sf_tfile *g = NULL;
    sf_vae *v = NULL;
    sf_vae_cuda *d1 = NULL, *d2 = NULL;
    int ord = 0;
    if (!open_golden(&ord, &g, &v)) goto done;
    SF_CHECK_OK(sf_vae_cuda_new(v, ord, &d1, &err), &err);
    SF_CHECK_OK(sf_vae_cuda_new(v, ord, &d2, &err), &err);
    if (!d1 || !d2) goto done;
    int64_t nz;
    float *z = sf_test_golden_f32(g, "z", &nz);
    const size_t n = 5 * 3 * 64 * 96; /* 2 latent frames → 1 + 4 frames */
    uint8_t *a = malloc(n), *b = malloc(n);
    int64_t na = 0, nb = 0;
    if (z && a && b) {
        SF_CHECK_OK(sf_vae_cuda_decode(d1, z, 2, NULL, a, &na, &err), &err);
        SF_CHECK_OK(sf_vae_cuda_decode(d2, z, 2, NULL, b, &nb, &err), &err);
        char why[160];
        SF_CHECK_MSG(na == 5 && nb == 5 && same_bytes(a, b, n, why, sizeof why), "two decoders differ: %s", why);
    }
    free(z), free(a), free(b);
done:
    sf_vae_cuda_destroy(&d1);
    sf_vae_cuda_destroy(&d2);
    sf_vae_destroy(&v);
    sf_tfile_destroy(&g);
}

/* Without a usable GPU: one clear line, nothing allocated. (With one: a bad ordinal.) */
static void test_vae_cuda_refusal(void) {
    sf_err err = {{0}};
    sf_vae *v = NULL;
    sf_vae_cuda *gv = NULL;
    int ord = 0, has = sf_test_pick_gpu(&ord);
    SF_CHECK_OK(sf_vae_new(sf_test_gpath("model/Wan2.1_VAE.pth"), 8, 12, 1, &v, &err), &err);
    if (!v) return;
    sf_status s = sf_vae_cuda_new(v, has ? 999 : 0, &gv, &err);
    SF_CHECK_MSG(s != SF_OK && gv == NULL, "sf_vae_cuda_new gave %s", sf_status_str(s));
    SF_CHECK_MSG(err.msg[0] && !strchr(err.msg, '\n'), "message: '%s'", err.msg);
    printf("# refusal: %s\n", err.msg);
    sf_vae_destroy(&v);
}

static const sf_test tests[] = {
    {"vae_cuda_golden", test_vae_cuda_golden},
    {"vae_cuda_profile", test_vae_cuda_profile},
    {"vae_cuda_reproducible", test_vae_cuda_reproducible},
    {"vae_cuda_refusal", test_vae_cuda_refusal},
};
SF_TEST_MAIN(tests)
