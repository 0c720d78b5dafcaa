/* test_taehv.c — the TAEHV tiny decoder (stages/decode/taehv.c) and its ops (kernels/taehv_ops.h)
 * against hand-computed values and the golden reference decode (tests/golden/expect/taehv.safetensors
 * from demo_utils/taehv.py, tests/heldout/make_taehv_golden.py): two checkpoints (temporal upscale 4
 * and 2), layer outputs frame by frame, the video (first frames trimmed) and its uint8 frames; streamed
 * in blocks = one-shot; thread-count invariance; the layer list inferred from names and shapes; bad
 * files as one-line errors. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "taehv_golden.h"
#include "taehv_ops.h"
#include "tfile.h"
#include "stages/decode/taehv.h"

#include <stdio.h>
#include <unistd.h>

static void test_taehv_ops(void) {
    float x[5] = {3.0f, -6.0f, 0.0f, 1e-3f, 30.0f};
    sf_taehv_clamp_cpu(x, 5);
    const double want[5] = {3 * tanh(1.0), 3 * tanh(-2.0), 0.0, 1e-3, 3.0};
    for (int i = 0; i < 5; i++) SF_CHECK_MSG(fabs(x[i] - want[i]) < 1e-6, "clamp[%d] %.9g want %.9g", i, x[i], want[i]);
    float r[4] = {-1.5f, 2.0f, -0.0f, NAN};
    sf_relu_cpu(r, 4);
    SF_CHECK(r[0] == 0.0f && r[1] == 2.0f && r[2] == 0.0f && isnan(r[3])); /* NaN passes, as torch.relu */
    /* cat = [x; past], past = x: C 2, HW 3 */
    const float xi[6] = {1, 2, 3, 4, 5, 6};
    float past[6] = {-1, -2, -3, -4, -5, -6}, cat[12];
    sf_taehv_cat_roll_cpu(xi, past, cat, 2, 3);
    for (int i = 0; i < 6; i++) SF_CHECK(cat[i] == xi[i] && cat[6 + i] == -(float)(i + 1) && past[i] == xi[i]);
    float s[3] = {0.0f, 0.25f, 1.5f};
    sf_taehv_to_signed_cpu(s, s, 3);
    SF_CHECK(s[0] == -1.0f && s[1] == -0.5f && s[2] == 2.0f);
}

static void golden_case(const char *cs, const char *model, int time_up, int64_t channels0) {
    sf_err err = {{0}};
    sf_tfile *g = NULL;
    sf_taehv *t = NULL;
    char name[64];
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath("expect/taehv.safetensors"), &g, &err), &err);
    if (!g) return;
    SF_CHECK_OK(sf_taehv_new(sf_test_gpath(model), 4, 6, 2, &t, &err), &err);
    if (!t) goto done;
    const sf_taehv_config *c = sf_taehv_config_of(t);
    /* the layer list from the names and shapes: Clamp, conv, ReLU, 3 x (3 MemBlocks, Upsample, TGrow, conv), ReLU, conv */
    SF_CHECK(c->n_layers == 23 && c->z_dim == 16 && c->out_ch == 3 && c->n_up == 3);
    SF_CHECK_MSG(c->time_up == time_up && c->trim == time_up - 1, "%s: time_up %d trim %d", cs, c->time_up, c->trim);
    SF_CHECK(c->layers[0].kind == SF_TAEHV_CLAMP && c->layers[1].kind == SF_TAEHV_CONV && c->layers[2].kind == SF_TAEHV_RELU);
    SF_CHECK(c->layers[1].cout == channels0 && c->layers[3].kind == SF_TAEHV_MEM && c->layers[6].kind == SF_TAEHV_UP);
    SF_CHECK(c->layers[7].kind == SF_TAEHV_TGROW && c->layers[7].stride == 1 && c->layers[19].kind == SF_TAEHV_TGROW);
    SF_CHECK(c->layers[21].kind == SF_TAEHV_RELU && c->layers[22].kind == SF_TAEHV_CONV && c->layers[20].b0 == NULL);
    SF_CHECK(c->layers[22].scale == 8 && c->layers[8].scale == 2);

    int64_t nz, nv;
    snprintf(name, sizeof name, "%s.latents", cs);
    float *z = sf_test_golden_f32(g, name, &nz);
    snprintf(name, sizeof name, "%s.video", cs);
    float *ref = sf_test_golden_f32(g, name, &nv);
    const int64_t T = 5, frames = time_up * T - (time_up - 1), fe = 3 * 32 * 48, ze = 16 * 4 * 6;
    SF_CHECK_MSG(nz == T * ze && nv == frames * fe, "%s: golden latents %lld, video %lld elements", cs, (long long)nz,
                 (long long)nv);
    if (!z || !ref || nz != T * ze || nv != frames * fe) goto free_done;
    taehv_tap_ctx tc = {g, cs, SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16), 0};
    sf_taehv_set_tap(t, taehv_golden_tap, &tc);
    float *one = malloc(nv * sizeof(float)), *blk = calloc((size_t)nv, sizeof(float));
    uint8_t *u8 = malloc((size_t)nv);
    int64_t no = 0;
    SF_CHECK(sf_taehv_frames_for(t, T) == frames && sf_taehv_frames_for(t, 1) == 1);
    const unsigned long long misses = sf_scratch_misses();
    SF_CHECK_OK(sf_taehv_decode(t, z, T, one, u8, &no, &err), &err);
    SF_CHECK_MSG(sf_scratch_misses() == misses, "%llu convolutions allocated their own work memory",
                 sf_scratch_misses() - misses);
    SF_CHECK_MSG(no == frames, "%s: %lld frames, want %lld", cs, (long long)no, (long long)frames);
    /* every frame of the 5 tapped layers: 1 conv, 3 MemBlock, 6 Upsample, 7 and 13 TGrow */
    const int want_taps = 5 + 5 + 5 + 5 * (c->layers[7].stride) + 5 * c->layers[7].stride * c->layers[13].stride;
    SF_CHECK_MSG(tc.checked == want_taps, "%s: %d layer frames checked, want %d", cs, tc.checked, want_taps);
    sf_taehv_set_tap(t, NULL, NULL);
    snprintf(name, sizeof name, "%s.video", cs);
    sf_test_max_close(name, one, ref, (size_t)nv, SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16),
                      SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16));
    int du = 0;
    int64_t at_max = -1;
    for (int64_t f = 0; f < frames; f++)
        for (int64_t ch = 0; ch < 3; ch++)
            for (int64_t p = 0; p < 32 * 48; p++) {
                int d = abs((int)u8[(f * 32 * 48 + p) * 3 + ch] - taehv_u8_of(ref[(f * 3 + ch) * 32 * 48 + p]));
                if (d > du) du = d, at_max = (f * 32 * 48 + p) * 3 + ch;
            }
    /* one level: a value within the fp32 tolerance of a level boundary truncates to the next level */
    SF_CHECK_MSG(du <= SF_TOL_CPU(1, SF_TOL_VAE_U8), "%s: frames u8 max|diff| %d levels at byte %lld", cs, du,
                 (long long)at_max);

    /* streamed in blocks 3, 2 and 1, 2, 2: the same frames */
    const int plans[2][3] = {{3, 2, 0}, {1, 2, 2}};
    for (int pl = 0; pl < 2; pl++) {
        sf_taehv_reset(t);
        int64_t at = 0, zi = 0;
        memset(blk, 0, nv * sizeof(float));
        for (int b = 0; b < 3 && plans[pl][b]; b++) {
            const int k = plans[pl][b];
            const int64_t want = sf_taehv_frames_for(t, k);
            SF_CHECK_OK(sf_taehv_decode(t, z + zi * ze, k, blk + at * fe, NULL, &no, &err), &err);
            SF_CHECK_MSG(no == want, "%s: block %d gave %lld frames, frames_for said %lld", cs, b, (long long)no,
                         (long long)want);
            zi += k, at += no;
        }
        SF_CHECK(at == frames);
        if (sf_cpu_mode_now() == SF_CPU_EXACT)
            SF_CHECK_MSG(!memcmp(one, blk, nv * sizeof(float)), "%s: streamed plan %d differs from one-shot", cs, pl);
        else
            sf_test_max_close("streamed", blk, one, (size_t)nv, SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16),
                              SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16));
    }
    free(one);
    free(blk);
    free(u8);
free_done:
    free(z);
    free(ref);
done:
    sf_taehv_destroy(&t);
    sf_tfile_destroy(&g);
}

static void test_taehv_golden(void) { golden_case("tiny", "model/taehv_tiny.pth", 4, 16); }
static void test_taehv_golden_t2(void) { golden_case("t2", "model/taehv_t2.pth", 2, 8); }

static void test_taehv_thread_invariance(void) {
    sf_err err = {{0}};
    sf_taehv *t1 = NULL, *t3 = NULL;
    SF_CHECK_OK(sf_taehv_new(sf_test_gpath("model/taehv_tiny.pth"), 3, 5, 1, &t1, &err), &err);
    SF_CHECK_OK(sf_taehv_new(sf_test_gpath("model/taehv_tiny.pth"), 3, 5, 3, &t3, &err), &err);
    if (t1 && t3) {
        static float z[2 * 16 * 3 * 5], a[5 * 3 * 24 * 40], b[5 * 3 * 24 * 40];
        uint32_t s = 7;
        for (size_t i = 0; i < sizeof z / sizeof z[0]; i++) {
            s = s * 1664525u + 1013904223u;
            z[i] = (float)((s >> 8) & 0xffff) / 16384.0f - 2.0f;
        }
        int64_t n1 = 0, n3 = 0;
        sf_test_exact(1);
        SF_CHECK_OK(sf_taehv_decode(t1, z, 2, a, NULL, &n1, &err), &err);
        SF_CHECK_OK(sf_taehv_decode(t3, z, 2, b, NULL, &n3, &err), &err);
        sf_test_exact(0);
        SF_CHECK(n1 == 5 && n3 == 5 && !memcmp(a, b, sizeof a));
    }
    sf_taehv_destroy(&t1);
    sf_taehv_destroy(&t3);
}

/* A copy of the tiny checkpoint's tensors with one changed (drop: left out; bad: its shape cut; zero: its first
 * dimension 0; extra: a [1, 1, 1, 1] tensor added). */
static sf_status write_variant(const char *path, const char *drop, const char *bad, const char *zero, const char *extra,
                               sf_err *err) {
    sf_tfile *src = NULL;
    sf_status s = sf_tfile_open(sf_test_gpath("model/taehv_tiny.pth"), &src, err);
    if (s) return s;
    sf_tensor_entry *e = calloc(src->n + 1, sizeof *e);
    size_t n = 0;
    static float one[4] = {1, 1, 1, 1};
    for (size_t i = 0; i < src->n; i++) {
        if (drop && !strcmp(src->entries[i].name, drop)) continue;
        e[n] = src->entries[i];
        if (bad && !strcmp(e[n].name, bad)) e[n].t.shape[0] -= 1;
        if (zero && !strcmp(e[n].name, zero)) e[n].t.shape[0] = 0; /* no elements at all */
        n++;
    }
    if (extra) {
        int64_t sh[4] = {1, 1, 1, 1};
        e[n].name = (char *)extra;
        e[n++].t = sf_tensor_view(one, SF_F32, 4, sh);
    }
    s = sf_safetensors_write(path, e, n, NULL, 0, err);
    free(e);
    sf_tfile_destroy(&src);
    return s;
}

static void expect_refusal(const char *path, sf_status want, const char *needle) {
    sf_err err = {{0}};
    sf_taehv *t = NULL;
    sf_status s = sf_taehv_new(path, 4, 6, 1, &t, &err);
    SF_CHECK_MSG(s == want && !t && strstr(err.msg, needle) && !strchr(err.msg, '\n'),
                 "status %d (want %d), message '%s' (want '%s' in it)", s, want, err.msg, needle);
    sf_taehv_destroy(&t);
}

static void test_taehv_bad_files(void) {
    sf_err err = {{0}};
    sf_tfile *tf = NULL;
    /* a Wan VAE is not a TAEHV, the TAEHV is */
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath("model/Wan2.1_VAE.pth"), &tf, &err), &err);
    if (tf) SF_CHECK(!sf_taehv_detect(tf));
    sf_tfile_destroy(&tf);
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath("model/taehv_tiny.pth"), &tf, &err), &err);
    if (tf) SF_CHECK(sf_taehv_detect(tf));
    sf_tfile_destroy(&tf);
    expect_refusal(sf_test_gpath("model/Wan2.1_VAE.pth"), SF_E_FORMAT, "no TAEHV decoder tensors");
    char dir[] = "/tmp/sf_taehv_XXXXXX", path[64];
    SF_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/v.safetensors", dir);
    sf_taehv *t = NULL; /* the copy, untouched, loads: the refusals below are the changes' */
    SF_CHECK_OK(write_variant(path, NULL, NULL, NULL, NULL, &err), &err);
    SF_CHECK_OK(sf_taehv_new(path, 4, 6, 1, &t, &err), &err);
    sf_taehv_destroy(&t);
    SF_CHECK_OK(write_variant(path, "decoder.4.conv.2.bias", NULL, NULL, NULL, &err), &err);
    expect_refusal(path, SF_E_NOTFOUND, "decoder.4.conv.2.bias");
    SF_CHECK_OK(write_variant(path, NULL, "decoder.9.conv.4.weight", NULL, NULL, &err), &err);
    expect_refusal(path, SF_E_SHAPE, "decoder.9.conv.4.weight");
    SF_CHECK_OK(write_variant(path, NULL, "decoder.8.weight", NULL, NULL, &err), &err); /* a width that does not chain */
    expect_refusal(path, SF_E_SHAPE, "decoder layer 9");
    SF_CHECK_OK(write_variant(path, "decoder.1.weight", NULL, NULL, NULL, &err), &err); /* no first conv */
    expect_refusal(path, SF_E_FORMAT, "not a TAEHV decoder");
    SF_CHECK_OK(write_variant(path, NULL, NULL, NULL, "decoder.0.weight", &err), &err); /* weights where Clamp is */
    expect_refusal(path, SF_E_FORMAT, "Clamp first");
    SF_CHECK_OK(write_variant(path, NULL, NULL, NULL, "decoder.23.weight", &err), &err); /* a 1x1 conv to 1 channel last */
    expect_refusal(path, SF_E_SHAPE, "decoder layer 23");
    SF_CHECK_OK(write_variant(path, NULL, NULL, "decoder.13.conv.weight", NULL, &err), &err); /* a TGrow of 0 frames */
    expect_refusal(path, SF_E_UNSUPPORTED, "TGrow decoder.13 makes 0 frames");
    SF_CHECK_OK(write_variant(path, NULL, NULL, "decoder.8.weight", NULL, &err), &err); /* a conv to no channels */
    expect_refusal(path, SF_E_SHAPE, "decoder layer 8 (conv) has 16 -> 0 channels");
    unlink(path);
    rmdir(dir);
    SF_CHECK(sf_taehv_new(sf_test_gpath("model/taehv_tiny.pth"), 0, 6, 1, &t, &err) == SF_E_ARG && !t);
}

static const sf_test tests[] = {
    {"taehv_ops", test_taehv_ops},
    {"taehv_golden", test_taehv_golden},
    {"taehv_golden_t2", test_taehv_golden_t2},
    {"taehv_thread_invariance", test_taehv_thread_invariance},
    {"taehv_bad_files", test_taehv_bad_files},
};
SF_TEST_MAIN(tests)
