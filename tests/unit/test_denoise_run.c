/* test_denoise_run.c — stages/denoise/run_io.c: the checkpoint decision (which weights run, the loud
 * fallback, --require-checkpoint, --no-ema, a checkpoint without a generator), the provenance
 * string every output records as "weights", the wire message of a finished block and the latents
 * file with per-step predictions (names, shapes, values, metadata). On the golden tiny model and
 * tests/golden/checkpoints/tiny_dmd.pt. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "stages/denoise/run_io.h"

#include <stdio.h>
#include <unistd.h>

static char model[4096], ckpt[4096];

static void paths(void) {
    snprintf(model, sizeof model, "%s/model", sf_test_golden());
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/tiny_dmd.pt", sf_test_golden());
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static void test_base_without_checkpoint(void) {
    paths();
    sf_err err = {{0}};
    sf_dit_source src;
    SF_CHECK_OK(sf_dit_source_open(&src, model, NULL, 0, 1, 0, &err), &err);
    SF_CHECK(src.base != NULL && src.ck == NULL && src.key == NULL && !src.ck_missing);
    char want[4200];
    snprintf(want, sizeof want, "base %s/diffusion_pytorch_model.safetensors", model);
    SF_CHECK_MSG(!strcmp(src.weights, want), "weights '%s'", src.weights);
    sf_dit_source_close(&src);
    /* --no-checkpoint wins over a named checkpoint */
    SF_CHECK_OK(sf_dit_source_open(&src, model, ckpt, 1, 1, 1, &err), &err);
    SF_CHECK(src.base != NULL && src.ck == NULL && !strcmp(src.weights, want));
    sf_dit_source_close(&src);
}

static void test_checkpoint_ema_and_generator(void) {
    paths();
    sf_err err = {{0}};
    sf_dit_source src;
    char want[4200];
    SF_CHECK_OK(sf_dit_source_open(&src, model, ckpt, 0, 1, 1, &err), &err);
    SF_CHECK(src.ck != NULL && src.base == NULL && src.key && !strcmp(src.key, "generator_ema"));
    snprintf(want, sizeof want, "checkpoint %s:generator_ema", ckpt);
    SF_CHECK_MSG(!strcmp(src.weights, want), "weights '%s'", src.weights);
    sf_dit_source_close(&src);
    SF_CHECK_OK(sf_dit_source_open(&src, model, ckpt, 0, 0, 0, &err), &err); /* --no-ema */
    SF_CHECK(src.key && !strcmp(src.key, "generator"));
    snprintf(want, sizeof want, "checkpoint %s:generator", ckpt);
    SF_CHECK_MSG(!strcmp(src.weights, want), "weights '%s'", src.weights);
    sf_dit_source_close(&src);
}

static void test_missing_checkpoint(void) {
    paths();
    sf_err err = {{0}};
    sf_dit_source src;
    const char *nope = "/nonexistent/dir/self_forcing_dmd.pt";
    sf_log_set_level(SF_LOG_ERROR); /* the loud warning is the bats test's to read */
    SF_CHECK_OK(sf_dit_source_open(&src, model, nope, 0, 1, 0, &err), &err);
    sf_log_set_level(SF_LOG_INFO);
    SF_CHECK(src.ck_missing == 1 && src.base != NULL && src.ck == NULL);
    SF_CHECK_MSG(starts(src.weights, "base ") && strstr(src.weights, "(checkpoint /nonexistent/dir/self_forcing_dmd.pt not found)"),
                 "weights '%s'", src.weights);
    sf_dit_source_close(&src);
    sf_status s = sf_dit_source_open(&src, model, nope, 0, 1, 1, &err); /* --require-checkpoint */
    SF_CHECK_MSG(s == SF_E_NOTFOUND && strstr(err.msg, nope) && strstr(err.msg, "--require-checkpoint"), "%d: %s", s,
                 err.msg);
    SF_CHECK(src.base == NULL && src.ck == NULL);
    sf_dit_source_close(&src);
}

static void test_checkpoint_without_generator(void) {
    paths();
    sf_err err = {{0}};
    char p[256];
    snprintf(p, sizeof p, "/tmp/sf-test-run-%d.safetensors", (int)getpid());
    float v[2] = {1, 2};
    int64_t sh[1] = {2};
    sf_tensor_entry e = {"model.foo", sf_tensor_view(v, SF_F32, 1, sh)};
    SF_CHECK_OK(sf_safetensors_write(p, &e, 1, NULL, 0, &err), &err);
    sf_dit_source src;
    sf_status s = sf_dit_source_open(&src, model, p, 0, 1, 0, &err);
    SF_CHECK_MSG(s == SF_E_NOTFOUND && strstr(err.msg, "no 'generator' (nor generator_ema)"), "%d: %s", s, err.msg);
    sf_dit_source_close(&src);
    unlink(p);
}

/* 2 blocks with an independent first frame: block 0 has 1 frame, block 1 fpb = 3; 2 steps + refresh. */
static void test_latents_file(void) {
    enum { T = 4, NB = 2, NS = 2, FPB = 3, C = 2, H = 2, W = 3, FR = C * H * W };
    sf_err err = {{0}};
    float lat[T * FR], preds[NB * (NS + 1) * FPB * FR];
    for (int i = 0; i < T * FR; i++) lat[i] = (float)i * 0.5f;
    for (int i = 0; i < NB * (NS + 1) * FPB * FR; i++) preds[i] = -(float)i;
    char p[256];
    snprintf(p, sizeof p, "/tmp/sf-test-lat-%d.safetensors", (int)getpid());
    sf_latents_out o = {lat, preds, T, NB, NS, FPB, 1, C, H, W, "7", "a fox", "checkpoint x.pt:generator_ema"};
    SF_CHECK_OK(sf_denoise_write_latents(p, &o, &err), &err);
    sf_tfile *tf = NULL;
    SF_CHECK_OK(sf_tfile_open(p, &tf, &err), &err);
    if (tf) {
        SF_CHECK_MSG(tf->n == 1 + NB * (NS + 1), "%zu tensors", tf->n);
        const sf_tensor *t = sf_tfile_get(tf, "latents");
        int64_t sl[5] = {1, T, C, H, W};
        SF_CHECK(t && sf_shape_eq(t, 5, sl));
        if (t) SF_CHECK(!memcmp(t->data, lat, sizeof lat));
        for (int b = 0; b < NB; b++)
            for (int s = 0; s <= NS; s++) {
                char nm[32];
                snprintf(nm, sizeof nm, "pred.%d.%d", b, s);
                const sf_tensor *pt = sf_tfile_get(tf, nm);
                int F = b == 0 ? 1 : FPB;
                int64_t ps[5] = {1, F, C, H, W};
                SF_CHECK_MSG(pt && sf_shape_eq(pt, 5, ps), "%s", nm);
                if (pt) SF_CHECK_MSG(!memcmp(pt->data, preds + (b * (NS + 1) + s) * FPB * FR, sizeof(float) * F * FR), "%s values", nm);
            }
        const char *wv = sf_tfile_meta(tf, "weights"), *sv = sf_tfile_meta(tf, "seed"), *pv = sf_tfile_meta(tf, "prompt");
        SF_CHECK(wv && !strcmp(wv, "checkpoint x.pt:generator_ema") && sv && !strcmp(sv, "7") && pv && !strcmp(pv, "a fox"));
    }
    sf_tfile_destroy(&tf);
    unlink(p);
}

static void test_block_message(void) {
    enum { F = 3, C = 2, H = 2, W = 2, N = F * C * H * W };
    sf_err err = {{0}};
    float x0[N];
    for (int i = 0; i < N; i++) x0[i] = (float)i - 3.0f;
    char p[256];
    snprintf(p, sizeof p, "/tmp/sf-test-wire-%d.sfw", (int)getpid());
    sf_wire *w = NULL, *r = NULL;
    SF_CHECK_OK(sf_wire_open_writer(p, &w, &err), &err);
    if (!w) return;
    SF_CHECK_OK(sf_denoise_send_block(w, 2, 7, F, C, H, W, x0, 42, "a fox", "base m/diffusion_pytorch_model.safetensors",
                                      40.5, &err),
                &err);
    SF_CHECK_OK(sf_denoise_send_block(w, 3, 10, F, C, H, W, x0, 42, NULL, NULL, 0, &err), &err); /* gen_fps not known */
    SF_CHECK_OK(sf_wire_send_end(w, &err), &err);
    SF_CHECK_OK(sf_wire_close(&w, &err), &err);
    SF_CHECK_OK(sf_wire_open_reader(p, &r, &err), &err);
    if (r) {
        sf_wire_msg m;
        const void *payload;
        SF_CHECK_OK(sf_wire_recv(r, &m, &payload, &err), &err);
        SF_CHECK(m.type == SF_WIRE_TENSOR && !strcmp(m.name, "latents"));
        SF_CHECK(sf_wire_meta_int(&m, "block", -1) == 2 && sf_wire_meta_int(&m, "start_frame", -1) == 7 &&
                 sf_wire_meta_int(&m, "seed", -1) == 42);
        const char *wv = sf_wire_meta_str(&m, "weights"), *pv = sf_wire_meta_str(&m, "prompt");
        SF_CHECK_MSG(wv && !strcmp(wv, "base m/diffusion_pytorch_model.safetensors"), "weights %s", wv ? wv : "(none)");
        SF_CHECK(pv && !strcmp(pv, "a fox"));
        sf_tensor t = sf_wire_msg_view(&m, payload);
        int64_t sh[5] = {1, F, C, H, W};
        SF_CHECK(sf_shape_eq(&t, 5, sh) && !memcmp(t.data, x0, sizeof x0));
        SF_CHECK(sf_wire_meta_double(&m, "gen_fps", -1) == 40.5);
        SF_CHECK_OK(sf_wire_recv(r, &m, &payload, &err), &err);
        SF_CHECK(sf_wire_meta_int(&m, "block", -1) == 3 && !sf_wire_meta_find(&m, "gen_fps") &&
                 !sf_wire_meta_find(&m, "prompt") && !sf_wire_meta_find(&m, "weights"));
        sf_err e2;
        sf_wire_close(&r, &e2);
    }
    unlink(p);
}

static const sf_test tests[] = {
    {"base_without_checkpoint", test_base_without_checkpoint},
    {"checkpoint_ema_and_generator", test_checkpoint_ema_and_generator},
    {"missing_checkpoint", test_missing_checkpoint},
    {"checkpoint_without_generator", test_checkpoint_without_generator},
    {"latents_file", test_latents_file},
    {"block_message", test_block_message},
};
SF_TEST_MAIN(tests)
