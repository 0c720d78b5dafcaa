/* test_vae_encode.c — the VAE encoder (stages/decode/vae_enc.c) against the reference's encode_to_latent
 * (tests/golden/expect/vae_encode.safetensors, tests/heldout/make_vae_encode_golden.py: the golden tiny VAE on
 * a 1-frame 32x48 image and a 9-frame 24x40 video): the scaled latents within the VAE's fp32 tolerance (bf16
 * bound in the bf16 mode); frame-by-frame and uneven splits bit-identical to all at once; reset reuse;
 * sf_vae_enc_latents_for; refusals (frame size not a multiple of 8, not a VAE, no encoder tensors, a
 * wrong-shaped one) as one-line errors. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "tfile.h"
#include "stages/decode/vae.h"
#include "stages/decode/vae_enc.h"
#include "vae_encode_golden.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Encode case c at once with the VAE at vae_path and hold the latents to the reference's. */
static void check_case(const char *vae_path, const char *what, const golden_case *c, int threads) {
    sf_err err = {{0}};
    sf_vae_enc *e = NULL;
    SF_CHECK_OK(sf_vae_enc_new(vae_path, c->H, c->W, threads, &e, &err), &err);
    if (!e) return;
    SF_CHECK(sf_vae_enc_z_dim(e) == 16);
    SF_CHECK_MSG(sf_vae_enc_latents_for(e, c->T) == c->Tl, "%s: latents_for(%lld) = %lld, want %lld", what,
                 (long long)c->T, (long long)sf_vae_enc_latents_for(e, c->T), (long long)c->Tl);
    const size_t zf = zframe(c);
    float *z = calloc(zf * (size_t)c->Tl, sizeof(float));
    int64_t m = -1;
    const unsigned long long misses = sf_scratch_misses();
    SF_CHECK_OK(sf_vae_encode(e, c->px, c->T, z, &m, &err), &err);
    SF_CHECK_MSG(sf_scratch_misses() == misses, "%s: %llu convolutions allocated their own work memory", what,
                 sf_scratch_misses() - misses);
    SF_CHECK_MSG(m == c->Tl, "%s: %lld latent frames, want %lld", what, (long long)m, (long long)c->Tl);
    char name[96];
    snprintf(name, sizeof name, "%s latent", what);
    if (m == c->Tl)
        sf_test_max_close(name, z, c->ref, zf * (size_t)c->Tl, SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16),
                          SF_TOL_CPU(SF_TOL_VAE_FP32, SF_TOL_VAE_BF16));
    free(z);
    sf_vae_enc_destroy(&e);
}

static void test_encode_golden(void) {
    sf_tfile *g = sf_test_open_golden("expect/vae_encode.safetensors");
    if (!g) return;
    int64_t nm = 0, ns = 0;
    float *gm = sf_test_golden_f32(g, "latent_mean", &nm), *gs = sf_test_golden_f32(g, "latent_std", &ns);
    SF_CHECK(nm == 16 && ns == 16 && !memcmp(gm, sf_vae_latent_mean, 64) && !memcmp(gs, sf_vae_latent_std, 64));
    free(gm);
    free(gs);
    const char *names[2] = {"img", "vid"};
    for (int k = 0; k < 2; k++) {
        golden_case c = {0};
        char pre[8];
        snprintf(pre, sizeof pre, "%s.", names[k]);
        if (load_case(g, pre, &c)) check_case(sf_test_gpath("model/Wan2.1_VAE.pth"), names[k], &c, 2);
        free_case(&c);
    }
    sf_tfile_destroy(&g);
}

/* The video fed at once, frame by frame and in uneven splits: the same bits (the same convolutions run
 * whatever the split); reset reuses the encoder; frame 0 alone gives latent 0. */
static void test_encode_streamed(void) {
    sf_err err = {{0}};
    sf_tfile *g = sf_test_open_golden("expect/vae_encode.safetensors");
    golden_case c = {0};
    sf_vae_enc *e = NULL;
    if (!g || !load_case(g, "vid.", &c)) goto done;
    SF_CHECK_OK(sf_vae_enc_new(sf_test_gpath("model/Wan2.1_VAE.pth"), c.H, c.W, 3, &e, &err), &err);
    if (!e) goto done;
    const size_t zf = zframe(&c), pf = (size_t)(3 * c.H * c.W);
    float *one = calloc(zf * 3, sizeof(float)), *got = calloc(zf * 3, sizeof(float));
    int64_t m = 0;
    SF_CHECK_OK(sf_vae_encode(e, c.px, 9, one, &m, &err), &err);
    SF_CHECK(m == 3);
    /* frame by frame: latents appear after frames 1, 5 and 9 */
    sf_vae_enc_reset(e);
    int64_t at = 0;
    for (int64_t t = 0; t < 9; t++) {
        const int64_t want = t == 0 || t == 4 || t == 8;
        SF_CHECK_MSG(sf_vae_enc_latents_for(e, 1) == want, "frame %lld: latents_for(1) %lld", (long long)t,
                     (long long)sf_vae_enc_latents_for(e, 1));
        SF_CHECK_OK(sf_vae_encode(e, c.px + (size_t)t * pf, 1, got + (size_t)at * zf, &m, &err), &err);
        SF_CHECK(m == want);
        at += m;
    }
    SF_CHECK(at == 3);
    SF_CHECK_MSG(!memcmp(one, got, zf * 3 * sizeof(float)), "frame by frame differs from all at once");
    /* uneven splits 2, 3, 0, 4 (reset after a whole video: the encoder is reused) */
    sf_vae_enc_reset(e);
    memset(got, 0, zf * 3 * sizeof(float));
    const int64_t split[4] = {2, 3, 0, 4}, lat[4] = {1, 1, 0, 1};
    int64_t f = 0;
    at = 0;
    for (int b = 0; b < 4; b++) {
        SF_CHECK(sf_vae_enc_latents_for(e, split[b]) == lat[b]);
        SF_CHECK_OK(sf_vae_encode(e, c.px + (size_t)f * pf, split[b], got + (size_t)at * zf, &m, &err), &err);
        SF_CHECK(m == lat[b]);
        f += split[b];
        at += m;
    }
    SF_CHECK(at == 3 && !memcmp(one, got, zf * 3 * sizeof(float)));
    /* frame 0 alone after a reset: latent 0 */
    sf_vae_enc_reset(e);
    SF_CHECK_OK(sf_vae_encode(e, c.px, 1, got, &m, &err), &err);
    SF_CHECK(m == 1 && !memcmp(one, got, zf * sizeof(float)));
    free(one);
    free(got);
done:
    sf_vae_enc_destroy(&e);
    free_case(&c);
    sf_tfile_destroy(&g);
}

static void test_encode_latents_for(void) {
    sf_err err = {{0}};
    sf_vae_enc *e = NULL;
    SF_CHECK_OK(sf_vae_enc_new(sf_test_gpath("model/Wan2.1_VAE.pth"), 16, 24, 1, &e, &err), &err);
    if (!e) return;
    const int64_t n[] = {0, 1, 2, 4, 5, 8, 9, 21, 81, -3}, want[] = {0, 1, 1, 1, 2, 2, 3, 6, 21, 0};
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        SF_CHECK_MSG(sf_vae_enc_latents_for(e, n[i]) == want[i], "fresh: latents_for(%lld) = %lld, want %lld",
                     (long long)n[i], (long long)sf_vae_enc_latents_for(e, n[i]), (long long)want[i]);
    float px[2 * 3 * 16 * 24], z[16 * 2 * 3];
    for (size_t i = 0; i < sizeof px / sizeof px[0]; i++) px[i] = (float)((i * 37) % 201) / 100.0f - 1.0f;
    int64_t m = 0;
    SF_CHECK_OK(sf_vae_encode(e, px, 2, z, &m, &err), &err); /* frame 0 → latent; frame 1 waits */
    SF_CHECK(m == 1);
    SF_CHECK(sf_vae_enc_latents_for(e, 2) == 0 && sf_vae_enc_latents_for(e, 3) == 1 &&
             sf_vae_enc_latents_for(e, 7) == 2 && sf_vae_enc_latents_for(e, 6) == 1);
    sf_vae_enc_reset(e);
    SF_CHECK(sf_vae_enc_latents_for(e, 1) == 1);
    SF_CHECK(sf_vae_encode(e, NULL, 1, z, &m, &err) == SF_E_ARG);
    SF_CHECK(sf_vae_encode(e, px, 1, NULL, &m, &err) == SF_E_ARG); /* frame 0 makes a latent: z needed */
    SF_CHECK_OK(sf_vae_encode(e, px, 1, z, &m, &err), &err);
    SF_CHECK_OK(sf_vae_encode(e, px, 1, NULL, &m, &err), &err); /* frame 1 makes none: no z needed */
    SF_CHECK(m == 0);
    SF_CHECK_OK(sf_vae_encode(e, px, 0, z, &m, &err), &err);
    SF_CHECK(m == 0);
    sf_vae_enc_destroy(&e);
}

/* 1 thread and 3 threads give the same bits (the exact mode's promise; 5 frames: 2 latents). */
static void test_encode_thread_invariance(void) {
    sf_err err = {{0}};
    sf_tfile *g = sf_test_open_golden("expect/vae_encode.safetensors");
    golden_case c = {0};
    sf_vae_enc *e1 = NULL, *e3 = NULL;
    if (!g || !load_case(g, "vid.", &c)) goto done;
    SF_CHECK_OK(sf_vae_enc_new(sf_test_gpath("model/Wan2.1_VAE.pth"), c.H, c.W, 1, &e1, &err), &err);
    SF_CHECK_OK(sf_vae_enc_new(sf_test_gpath("model/Wan2.1_VAE.pth"), c.H, c.W, 3, &e3, &err), &err);
    if (e1 && e3) {
        const size_t zf = zframe(&c);
        float *a = calloc(2 * zf, sizeof(float)), *b = calloc(2 * zf, sizeof(float));
        int64_t m1 = 0, m3 = 0;
        sf_test_exact(1);
        SF_CHECK_OK(sf_vae_encode(e1, c.px, 5, a, &m1, &err), &err);
        SF_CHECK_OK(sf_vae_encode(e3, c.px, 5, b, &m3, &err), &err);
        sf_test_exact(0);
        SF_CHECK(m1 == 2 && m3 == 2 && !memcmp(a, b, 2 * zf * sizeof(float)));
        free(a);
        free(b);
    }
done:
    sf_vae_enc_destroy(&e1);
    sf_vae_enc_destroy(&e3);
    free_case(&c);
    sf_tfile_destroy(&g);
}

static int one_line(const sf_err *err) { return err->msg[0] && !strchr(err->msg, '\n'); }

/* The golden VAE rewritten as safetensors with `drop` ("encoder." tensors left out) or `reshape` (that tensor's
 * shape made [32, 32, 1, 3, 3], a time kernel of 1). */
static int write_variant(const char *path, const char *drop, const char *reshape) {
    sf_err err = {{0}};
    sf_tfile *tf = NULL;
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath("model/Wan2.1_VAE.pth"), &tf, &err), &err);
    if (!tf) return 0;
    sf_tensor_entry *ents = calloc(tf->n, sizeof *ents);
    size_t n = 0;
    for (size_t i = 0; i < tf->n; i++) {
        if (drop && !strncmp(tf->entries[i].name, drop, strlen(drop))) continue;
        ents[n] = tf->entries[i];
        if (reshape && !strcmp(ents[n].name, reshape))
            ents[n].t = sf_tensor_view(ents[n].t.data, ents[n].t.dtype, 5, (const int64_t[]){32, 32, 1, 3, 3});
        n++;
    }
    sf_status s = sf_safetensors_write(path, ents, n, NULL, 0, &err);
    SF_CHECK_OK(s, &err);
    free(ents);
    sf_tfile_destroy(&tf);
    return s == SF_OK;
}

static void test_encode_refusals(void) {
    sf_err err = {{0}};
    sf_vae_enc *e = NULL;
    /* a frame size that is not a multiple of 8 (the golden VAE downsamples 3 times) */
    SF_CHECK(sf_vae_enc_new(sf_test_gpath("model/Wan2.1_VAE.pth"), 30, 48, 1, &e, &err) == SF_E_SHAPE && !e);
    SF_CHECK_MSG(one_line(&err) && strstr(err.msg, "multiple of 8"), "%s", err.msg);
    SF_CHECK(sf_vae_enc_new(sf_test_gpath("model/Wan2.1_VAE.pth"), 32, 44, 1, &e, &err) == SF_E_SHAPE && !e);
    SF_CHECK(sf_vae_enc_new(sf_test_gpath("model/Wan2.1_VAE.pth"), 0, 48, 1, &e, &err) == SF_E_ARG && !e && one_line(&err));
    /* not a VAE; a missing file */
    SF_CHECK(sf_vae_enc_new(sf_test_gpath("expect/vae.safetensors"), 32, 48, 1, &e, &err) == SF_E_NOTFOUND && !e);
    SF_CHECK_MSG(one_line(&err) && strstr(err.msg, "conv1.weight"), "%s", err.msg);
    SF_CHECK(sf_vae_enc_new(sf_test_gpath("model/nonexistent.pth"), 32, 48, 1, &e, &err) != SF_OK && !e);
    char dir[] = "/tmp/sf_vae_enc_XXXXXX", path[64];
    if (!mkdtemp(dir)) {
        SF_CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    snprintf(path, sizeof path, "%s/vae.safetensors", dir);
    /* a decoder-only file: no encoder tensors */
    if (write_variant(path, "encoder.", NULL)) {
        SF_CHECK(sf_vae_enc_new(path, 32, 48, 1, &e, &err) == SF_E_NOTFOUND && !e);
        SF_CHECK_MSG(one_line(&err) && strstr(err.msg, "encoder.conv1.weight"), "%s", err.msg);
    }
    /* one wrong-shaped encoder tensor (found by its shape check, named in the message) */
    if (write_variant(path, NULL, "encoder.middle.2.residual.6.weight")) {
        SF_CHECK(sf_vae_enc_new(path, 32, 48, 1, &e, &err) == SF_E_SHAPE && !e);
        SF_CHECK_MSG(one_line(&err) && strstr(err.msg, "encoder.middle.2.residual.6.weight") &&
                         strstr(err.msg, "[32, 32, 3, 3, 3]"),
                     "%s", err.msg);
    }
    /* a missing mid-encoder tensor */
    if (write_variant(path, "encoder.downsamples.5.time_conv.bias", NULL)) {
        SF_CHECK(sf_vae_enc_new(path, 32, 48, 1, &e, &err) == SF_E_NOTFOUND && !e);
        SF_CHECK_MSG(one_line(&err) && strstr(err.msg, "encoder.downsamples.5.time_conv.bias"), "%s", err.msg);
    }
    unlink(path);
    rmdir(dir);
}


/* make heldout (tests/heldout/run_heldout.sh) sets SF_HELDOUT_DIR: every <shape>/expect/vae_encode.safetensors
 * there (the reference's encode_to_latent on VAEs of other widths and res-block counts, 2 trailing frames it
 * drops) against <shape>/model/Wan2.1_VAE.pth; SF_HELDOUT_SHAPES=a,b limits the shapes. SKIP without it. */
static void test_encode_heldout(void) {
    const char *dir = getenv("SF_HELDOUT_DIR"), *only = getenv("SF_HELDOUT_SHAPES");
    if (!dir || !*dir) {
        SF_TEST_SKIP("SF_HELDOUT_DIR not set (make heldout sets it)");
        return;
    }
    DIR *d = opendir(dir);
    SF_CHECK_MSG(d, "cannot read %s", dir);
    if (!d) return;
    int checked = 0;
    for (struct dirent *de; (de = readdir(d));) {
        char exp[1400], vae[1400], key[300];
        if (de->d_name[0] == '.' || strlen(de->d_name) > 256) continue;
        snprintf(key, sizeof key, ",%s,", de->d_name);
        if (only && *only) {
            char list[1024];
            snprintf(list, sizeof list, ",%s,", only);
            if (!strstr(list, key)) continue;
        }
        snprintf(exp, sizeof exp, "%s/%s/expect/vae_encode.safetensors", dir, de->d_name);
        snprintf(vae, sizeof vae, "%s/%s/model/Wan2.1_VAE.pth", dir, de->d_name);
        if (access(exp, R_OK)) continue;
        sf_err err = {{0}};
        sf_tfile *g = NULL;
        golden_case c = {0};
        SF_CHECK_OK(sf_tfile_open(exp, &g, &err), &err);
        if (g && load_case(g, "", &c)) {
            char what[300];
            snprintf(what, sizeof what, "heldout %s (%lld frames of %lldx%lld)", de->d_name, (long long)c.T,
                     (long long)c.W, (long long)c.H);
            check_case(vae, what, &c, 0);
            fprintf(stderr, "# %s: checked\n", what);
            checked++;
        }
        free_case(&c);
        sf_tfile_destroy(&g);
    }
    closedir(d);
    SF_CHECK_MSG(checked > 0, "no <shape>/expect/vae_encode.safetensors under %s", dir);
}

static const sf_test tests[] = {
    {"encode_golden", test_encode_golden},
    {"encode_streamed", test_encode_streamed},
    {"encode_latents_for", test_encode_latents_for},
    {"encode_thread_invariance", test_encode_thread_invariance},
    {"encode_refusals", test_encode_refusals},
    {"encode_heldout", test_encode_heldout},
};
SF_TEST_MAIN(tests)
