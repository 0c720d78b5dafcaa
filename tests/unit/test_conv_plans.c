/* test_conv_plans.c — kernels/conv_cuda.h (the VAE's NDHWC bf16 conv3d through cuDNN,
 * kernels/cuda/conv_cudnn.c).
 *
 * deviceless_plans (every `make test`, no GPU): finalizes cuDNN execution plans for the saved H200
 * description (tests/gpu/h200_deviceprop.json) for every convolution shape the GPU decoder
 * (stages/decode/vae_cuda.c) runs — the real Wan2.1 VAE at 832×480 (latent 60×104, widths
 * 384/192/96, SPEC §8.3) and the tiny golden VAE (dim 8, latent 8×12) — each with the epilogue
 * the decoder asks for (bias; bias + residual) — and the TAEHV tiny decoder's (stages/decode/taehv_cuda.c,
 * taew2_1.pth's widths at 832×480). Runs in a child with the libcuda.so.1 stand-in
 * ($(BUILD)/tests/cudnn_stub) first on LD_LIBRARY_PATH, like test_sdpa_plans. SKIP when cuDNN 9
 * cannot be loaded or the build has no CUDA.
 * forward_gpu (SF_TEST_DEVICE=cuda:N, SKIP without a GPU): every tiny shape, sf_conv_cudnn_forward
 * against sf_conv3d_cpu on the same bf16-rounded inputs (+ bias + residual), first bad index,
 * both values, max |Δ|; bias + residual again through the plain graph and the separate epilogue;
 * then every shape again with the autotune's candidates 1..5 forced (SF_CUDNN_TUNE_PICK): whichever
 * plan the timing keeps computes the same convolution.
 * test_conv_emu (-DSF_TEST_EMU, every `make test`): forward_gpu on the CPU emulation of cuDNN's conv
 * (kernels/cuda/emu/conv_emu.cc), the encoder's stride-2 shapes included.
 * Run alone: build/tests/test_conv_plans deviceless_plans  (SF_CUDNN_DEBUG=1 shows every attempt). */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"

#include "conv3d.h"
#include "conv_cuda.h"
#include "cuda_ops.h"
#include "device.h"
#include "sdpa_cuda.h"
#include "deviceless_test.h"


typedef struct conv_case {
    const char *what;
    sf_conv_shape s;
} conv_case;

/* The decoder's convolutions for base width `dim` at latent h×w: t_out 1 (the decoder convolves
 * one output frame per call, the cache frames in front), the epilogue each one gets. */
static int vae_cases(conv_case *c, int cap, int64_t dim, int64_t h, int64_t w, const char *tag) {
    int n = 0;
    const int64_t top = 4 * dim;
#define ADD(wh, ci, co, H, W, kt, k, b, r) \
    if (n < cap) c[n++] = (conv_case){wh, {ci, co, H, W, 1, kt, k, b, r, 0}}
    (void)tag;
    ADD("decoder.conv1", 16, top, h, w, 3, 3, 1, 0);
    ADD("res conv a @1x", top, top, h, w, 3, 3, 1, 0);
    ADD("res conv b @1x (+res)", top, top, h, w, 3, 3, 1, 1);
    ADD("time_conv @1x", top, 2 * top, h, w, 3, 1, 1, 0);
    ADD("resample @2x", top, top / 2, 2 * h, 2 * w, 1, 3, 1, 0);
    ADD("res conv a @2x (192->384)", top / 2, top, 2 * h, 2 * w, 3, 3, 1, 0);
    ADD("res conv a @2x", top, top, 2 * h, 2 * w, 3, 3, 1, 0);
    ADD("res conv b @2x (+res)", top, top, 2 * h, 2 * w, 3, 3, 1, 1);
    ADD("time_conv @2x", top, 2 * top, 2 * h, 2 * w, 3, 1, 1, 0);
    ADD("resample @4x", top, top / 2, 4 * h, 4 * w, 1, 3, 1, 0);
    ADD("res conv a @4x", top / 2, top / 2, 4 * h, 4 * w, 3, 3, 1, 0);
    ADD("res conv b @4x (+res)", top / 2, top / 2, 4 * h, 4 * w, 3, 3, 1, 1);
    ADD("resample @8x", top / 2, dim, 8 * h, 8 * w, 1, 3, 1, 0);
    ADD("res conv a @8x", dim, dim, 8 * h, 8 * w, 3, 3, 1, 0);
    ADD("res conv b @8x (+res)", dim, dim, 8 * h, 8 * w, 3, 3, 1, 1);
    ADD("head (3 outputs padded to 8)", dim, 8, 8 * h, 8 * w, 3, 3, 1, 0);
#undef ADD
    return n;
}

/* The encoder's convolutions (stages/decode/vae_enc_cuda.c) for base width `dim` at pixel size h×w:
 * conv1 (3 inputs padded to 8), residual convs, the stride-2 'downsample' convs (down), the downsample3d
 * time_conv (3 frames in, 1 out) and the head (2·16 outputs). */
static int enc_cases(conv_case *c, int cap, int64_t dim, int64_t h, int64_t w) {
    int n = 0;
#define ADD(wh, ci, co, H, W, kt, k, b, r, dn) \
    if (n < cap) c[n++] = (conv_case){wh, {ci, co, H, W, 1, kt, k, b, r, dn}}
    ADD("encoder.conv1 (3 inputs padded to 8)", 8, dim, h, w, 3, 3, 1, 0, 0);
    ADD("enc res conv b @1x (+res)", dim, dim, h, w, 3, 3, 1, 1, 0);
    ADD("enc downsample @1x", dim, dim, h, w, 1, 3, 1, 0, 1);
    ADD("enc res conv a @2x (dim->2dim)", dim, 2 * dim, h / 2, w / 2, 3, 3, 1, 0, 0);
    ADD("enc downsample @2x", 2 * dim, 2 * dim, h / 2, w / 2, 1, 3, 1, 0, 1);
    ADD("enc time_conv @4x", 2 * dim, 2 * dim, h / 4, w / 4, 3, 1, 1, 0, 0);
    ADD("enc downsample @4x", 4 * dim, 4 * dim, h / 4, w / 4, 1, 3, 1, 0, 1);
    ADD("enc time_conv @8x", 4 * dim, 4 * dim, h / 8, w / 8, 3, 1, 1, 0, 0);
    ADD("enc head (2z = 32 outputs)", 4 * dim, 32, h / 8, w / 8, 3, 3, 1, 0, 0);
#undef ADD
    return n;
}

/* The TAEHV tiny decoder's convolutions (stages/decode/taehv_cuda.c) at taew2_1.pth's widths (256/128/64/64)
 * for latents h×w: 3×3, kt 1, one frame a call, bias always (zeros where the layer has none), the
 * MemBlock's last conv with its skip as the residual; the head's 3 outputs padded to 8. */
static int taehv_cases(conv_case *c, int cap, int64_t h, int64_t w) {
    int n = 0;
    static const int64_t nf[4] = {256, 128, 64, 64};
#define ADD(wh, ci, co, H, W, r) \
    if (n < cap) c[n++] = (conv_case){wh, {ci, co, H, W, 1, 1, 3, 1, r, 0}}
    ADD("taehv conv 16->256", 16, nf[0], h, w, 0);
    for (int st = 0; st < 3; st++) {
        const int64_t C = nf[st], H = h << st, W = w << st;
        ADD(st == 0 ? "taehv MemBlock conv0 @1x" : st == 1 ? "taehv MemBlock conv0 @2x" : "taehv MemBlock conv0 @4x",
            2 * C, C, H, W, 0);
        ADD("taehv MemBlock conv2", C, C, H, W, 0);
        ADD("taehv MemBlock conv4 (+skip)", C, C, H, W, 1);
        ADD("taehv stage conv (after TGrow)", C, nf[st + 1], 2 * H, 2 * W, 0);
    }
    ADD("taehv head (3 outputs padded to 8)", nf[3], 8, 8 * h, 8 * w, 0);
#undef ADD
    return n;
}

static const char *h200_json(char *buf, size_t n) { return sf_find_data("tests/gpu/h200_deviceprop.json", buf, n); }

static int deviceless_child(void) {
    conv_case c[64];
    char path[4096], desc[128];
    sf_err err = {{0}};
    const int nreal = vae_cases(c, 64, 96, 60, 104, "real");
    int n = nreal + vae_cases(c + nreal, 64 - nreal, 8, 8, 12, "tiny"), bad = 0, nfused = 0, nepi = 0;
    sf_status st;
    const char *js = h200_json(path, sizeof path);
    if (!js) {
        printf("# tests/gpu/h200_deviceprop.json not found\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        const sf_conv_shape *s = &c[i].s;
        if (i == nreal) setenv("SF_CUDNN_AUTOTUNE", "0", 1); /* the candidates of the real shapes only (time) */
        double t0 = sf_now();
        st = sf_conv_cudnn_plan_deviceless(js, s, desc, sizeof desc, &err);
        printf("# H200 %-30s %4lld->%-4lld %4lldx%-4lld k %dx%dx%d: %s (%.2f s)\n", c[i].what, (long long)s->cin,
               (long long)s->cout, (long long)s->h, (long long)s->w, s->kt, s->k, s->k, st ? "FAILED" : desc,
               sf_now() - t0);
        if (st) printf("# %s: %s\n", sf_status_str(st), err.msg), bad++;
        /* what a GPU's autotune would time: heuristics A's first configs of both graphs, starting with
           this plan (so a timing that fails keeps cuDNN's first choice) */
        const char *ac = strstr(desc, "; ");
        int ncand = 0;
        if (!st && i < nreal && (!ac || sscanf(ac + 2, "%d autotune candidates", &ncand) != 1 || ncand < 2 ||
                                 !strstr(desc, "the first this one")))
            printf("# %s: autotune candidates missing or not led by this plan: %s\n", c[i].what, desc), bad++;
        nepi += s->bias || s->residual;
        nfused += !st && !strncmp(desc, "fused", 5);
    }
    printf("# %d of %d shapes with an epilogue got a fused plan\n", nfused, nepi);
    /* the encoder's shapes (the real VAE at 832x480, the tiny one at 48x32), the stride-2 ones above all:
       cuDNN has to take the asymmetric padding (0 before, 1 after) of the reference's ZeroPad2d */
    conv_case e[32];
    const int ne = enc_cases(e, 16, 96, 480, 832);
    const int ne2 = ne + enc_cases(e + ne, 16, 8, 32, 48);
    setenv("SF_CUDNN_AUTOTUNE", "0", 1);
    for (int i = 0; i < ne2; i++) {
        const sf_conv_shape *s = &e[i].s;
        st = sf_conv_cudnn_plan_deviceless(js, s, desc, sizeof desc, &err);
        printf("# H200 %-36s %4lld->%-4lld %4lldx%-4lld k %dx%dx%d: %s\n", e[i].what, (long long)s->cin,
               (long long)s->cout, (long long)s->h, (long long)s->w, s->kt, s->k, s->k, st ? "FAILED" : desc);
        if (st) printf("# %s: %s\n", sf_status_str(st), err.msg), bad++;
    }
    /* the TAEHV tiny decoder's at 832x480 (taew2_1.pth) */
    conv_case t[24];
    const int nt = taehv_cases(t, 24, 60, 104);
    for (int i = 0; i < nt; i++) {
        const sf_conv_shape *s = &t[i].s;
        st = sf_conv_cudnn_plan_deviceless(js, s, desc, sizeof desc, &err);
        printf("# H200 %-36s %4lld->%-4lld %4lldx%-4lld k %dx%dx%d: %s\n", t[i].what, (long long)s->cin,
               (long long)s->cout, (long long)s->h, (long long)s->w, s->kt, s->k, s->k, st ? "FAILED" : desc);
        if (st) printf("# %s: %s\n", sf_status_str(st), err.msg), bad++;
    }
    unsetenv("SF_CUDNN_AUTOTUNE");
    /* the plain graph on its own for every real shape (the fallback when fusion is refused) */
    setenv("SF_CUDNN_ONLY", "plain", 1);
    for (int i = 0; i < 16; i++) {
        st = sf_conv_cudnn_plan_deviceless(js, &c[i].s, desc, sizeof desc, &err);
        printf("# H200 only \"plain\", %-30s: %s\n", c[i].what, st ? "FAILED" : desc);
        if (st) printf("# %s: %s\n", sf_status_str(st), err.msg), bad++;
    }
    unsetenv("SF_CUDNN_ONLY");
    unsetenv("SF_CUDNN_AUTOTUNE");
    /* a steady latent frame's 2 (after the first time_conv) or 4 (after the second) frames in one call
     * (vae_cuda.c batches them; a refused shape would fall back to per-frame calls, so this is where a
     * refusal shows first) */
    for (int i = 4; i < 16; i++) {
        sf_conv_shape s = c[i].s;
        s.t_out = i < 9 ? 2 : 4;
        st = sf_conv_cudnn_plan_deviceless(js, &s, desc, sizeof desc, &err);
        printf("# H200 t_out %lld, %-30s: %s\n", (long long)s.t_out, c[i].what, st ? "FAILED" : desc);
        if (st) printf("# %s: %s\n", sf_status_str(st), err.msg), bad++;
    }
    /* clean failures: a bad shape, a missing description */
    sf_conv_shape odd = {12, 16, 8, 8, 1, 3, 3, 1, 0, 0};
    st = sf_conv_cudnn_plan_deviceless(js, &odd, desc, sizeof desc, &err);
    if (st != SF_E_ARG) printf("# cin 12 gave %s, not ARG\n", sf_status_str(st)), bad++;
    st = sf_conv_cudnn_plan_deviceless("/nonexistent/deviceprop.json", &c[0].s, desc, sizeof desc, &err);
    if (st != SF_E_IO) printf("# missing JSON gave %s, not IO\n", sf_status_str(st)), bad++;
    fflush(stdout);
    return bad ? 1 : 0;
}

static void test_deviceless_plans(void) {
#ifdef SF_TEST_EMU
    SF_TEST_SKIP("emulated: deviceless plans need the real cuDNN (test_conv_plans)");
    return;
#endif
    sf_test_run_deviceless_child();
}

/* ---- on a GPU ------------------------------------------------------------------------------ */

static uint32_t rng = 12345;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return sf_round_bf16((float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f);
}

/* One shape with t_out 2 against sf_conv3d_cpu (a stride-2 'down' shape: the stride-1 conv with padding 1
 * sampled at the odd rows and columns, vae_enc.c's downsample); returns 1 when close. */
static int check_forward(sf_cuda_ctx *cx, sf_conv_cudnn *cv, const conv_case *cc) {
    sf_conv_shape s = cc->s;
    s.t_out = 2;
    sf_err err = {{0}};
    const int64_t T = s.t_out + s.kt - 1, HW = s.h * s.w, K = s.kt * s.k * s.k, st = s.down ? 2 : 1;
    const int64_t ho = s.h / st, wo = s.w / st, HWo = ho * wo;
    const size_t nx = (size_t)(T * HW * s.cin), nw = (size_t)(s.cout * s.cin * K), ny = (size_t)(s.t_out * HWo * s.cout);
    float *x = malloc(nx * 4), *xc = malloc(nx * 4), *w = malloc(nw * 4), *wr = malloc(nw * 4), *b = malloc(s.cout * 4);
    float *r = malloc(ny * 4), *ref = malloc(ny * 4), *got = malloc(ny * 4);
    float *tmp = malloc((size_t)(s.t_out * HW * s.cout) * 4);
    void *dx = NULL, *dw = NULL, *db = NULL, *dr = NULL, *dy = NULL;
    int ok = 0;
    for (size_t i = 0; i < nx; i++) x[i] = frand();
    for (size_t i = 0; i < nw; i++) w[i] = frand() * 0.1f;
    for (int64_t i = 0; i < s.cout; i++) b[i] = frand();
    for (size_t i = 0; i < ny; i++) r[i] = frand();
    /* CPU: channel-first frames */
    for (int64_t t = 0; t < T; t++)
        for (int64_t p = 0; p < HW; p++)
            for (int64_t ch = 0; ch < s.cin; ch++) xc[(t * s.cin + ch) * HW + p] = x[(t * HW + p) * s.cin + ch];
    const float *fr[8];
    for (int64_t t = 0; t < T; t++) fr[t] = xc + t * s.cin * HW;
    sf_conv3d_args a = {fr, s.t_out, s.cin, s.cout, s.h, s.w, s.kt, s.k, s.k, w, b, tmp, 1, NULL, 1};
    SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
    for (int64_t t = 0; t < s.t_out; t++)
        for (int64_t p = 0; p < HWo; p++) {
            const int64_t q = st == 1 ? p : (2 * (p / wo) + 1) * s.w + 2 * (p % wo) + 1; /* the full conv's pixel */
            for (int64_t co = 0; co < s.cout; co++)
                ref[(t * HWo + p) * s.cout + co] = tmp[(t * s.cout + co) * HW + q] + (s.residual ? r[(t * HWo + p) * s.cout + co] : 0);
        }
    /* weights [co, ci, K] → [co, K, ci] */
    for (int64_t co = 0; co < s.cout; co++)
        for (int64_t ci = 0; ci < s.cin; ci++)
            for (int64_t k = 0; k < K; k++) wr[(co * K + k) * s.cin + ci] = w[(co * s.cin + ci) * K + k];
    if (sf_cuda_malloc(&dx, nx * 2, &err) || sf_cuda_malloc(&dw, nw * 2, &err) || sf_cuda_malloc(&db, s.cout * 2, &err) ||
        sf_cuda_malloc(&dr, ny * 2, &err) || sf_cuda_malloc(&dy, ny * 2, &err) ||
        sf_cuda_upload_bf16(cx, dx, x, nx, &err) || sf_cuda_upload_bf16(cx, dw, wr, nw, &err) ||
        sf_cuda_upload_bf16(cx, db, b, s.cout, &err) || sf_cuda_upload_bf16(cx, dr, r, ny, &err) ||
        sf_conv_cudnn_prepare(cv, &s, &err) ||
        sf_conv_cudnn_forward(cv, &s, dx, dw, db, s.residual ? dr : NULL, dy, &err) ||
        sf_cuda_download_bf16(cx, got, dy, ny, &err)) {
        SF_CHECK_MSG(0, "%s: %s", cc->what, err.msg);
        goto done;
    }
    char desc[128] = "";
    sf_conv_cudnn_describe(cv, &s, desc, sizeof desc, &err);
    printf("# %s %lld->%lld %lldx%lld: %s\n", cc->what, (long long)s.cin, (long long)s.cout, (long long)s.h,
           (long long)s.w, desc);
    ok = sf_test_max_close(cc->what, got, ref, ny, SF_TOL_BF16_FWD, SF_TOL_BF16_FWD);
done:
    sf_cuda_free(dx), sf_cuda_free(dw), sf_cuda_free(db), sf_cuda_free(dr), sf_cuda_free(dy);
    free(x), free(xc), free(w), free(wr), free(b), free(r), free(ref), free(got), free(tmp);
    return ok;
}

static void test_forward_gpu(void) {
    sf_err err = {{0}};
    sf_device dev = {1, 0};
    const char *d = getenv("SF_TEST_DEVICE");
    if (d && *d && sf_device_parse(d, &dev, &err) != SF_OK) dev.ordinal = 0;
    if (sf_device_check(&dev, &err) != SF_OK) {
        SF_TEST_SKIP("no CUDA device");
        return;
    }
    sf_cuda_ctx cx;
    sf_conv_cudnn *cv = NULL;
    SF_CHECK_OK(sf_cuda_ctx_init(&cx, dev.ordinal, &err), &err);
    if (!cx.stream) return;
    if (sf_conv_cudnn_new(&cv, &cx, &err) != SF_OK) {
        SF_CHECK_MSG(0, "%s", err.msg);
        sf_cuda_ctx_free(&cx);
        return;
    }
    conv_case c[48];
    int n = vae_cases(c, 32, 8, 8, 12, "tiny");
    const int nd = n;
    n += enc_cases(c + n, 16, 8, 32, 48); /* the encoder's, stride-2 'down' shapes among them */
    for (int i = 0; i < n; i++) check_forward(&cx, cv, &c[i]);
    sf_conv_cudnn_destroy(&cv);
    /* the plain conv graph + sf_vae_bias_res_cuda epilogue (the path when cuDNN refuses fusion) */
    setenv("SF_CUDNN_ONLY", "plain", 1);
    if (sf_conv_cudnn_new(&cv, &cx, &err) == SF_OK) {
        check_forward(&cx, cv, &c[2]);  /* bias + residual */
        check_forward(&cx, cv, &c[12]);     /* resample, bias */
        check_forward(&cx, cv, &c[nd + 2]); /* the encoder's stride-2 downsample */
    } else {
        SF_CHECK_MSG(0, "%s", err.msg);
    }
    unsetenv("SF_CUDNN_ONLY");
    sf_conv_cudnn_destroy(&cv);
    /* every candidate the autotune may keep computes the same convolution: candidates 1..5 of each
       shape forced (SF_CUDNN_TUNE_PICK; the last one where a shape has fewer) */
#ifdef SF_TEST_EMU
    if (0) /* one emulated loop: no candidates to force */
#endif
    for (int k = 1; k <= 5; k++) {
        char kv[16];
        snprintf(kv, sizeof kv, "%d", k);
        setenv("SF_CUDNN_TUNE_PICK", kv, 1);
        if (sf_conv_cudnn_new(&cv, &cx, &err) == SF_OK)
            for (int i = 0; i < n; i++) check_forward(&cx, cv, &c[i]);
        else
            SF_CHECK_MSG(0, "%s", err.msg);
        sf_conv_cudnn_destroy(&cv);
    }
    unsetenv("SF_CUDNN_TUNE_PICK");
    sf_cuda_ctx_free(&cx);
}

/* Without a GPU both cuDNN users refuse cleanly (the session in kernels/cuda/cudnn_util.c: the
 * library loads, cudnnCreate fails, everything made is released — make asan checks the release):
 * an error naming the cause, no object. On a GPU, forward_gpu here and in test_sdpa_plans open them. */
static void test_refused_without_device(void) {
    sf_err err = {{0}};
    int count = 0, version = 0;
#ifdef SF_TEST_EMU
    SF_TEST_SKIP("emulated: the real cuDNN's refusal is test_conv_plans'");
    return;
#endif
    if (sf_cuda_device_count(&count, &err) == SF_OK && count > 0) {
        SF_TEST_SKIP("a CUDA device is present (forward_gpu opens the sessions)");
        return;
    }
    if (sf_sdpa_cudnn_version(&version, &err) != SF_OK) {
        SF_TEST_SKIP("no cuDNN in this build or on this machine");
        return;
    }
    sf_sdpa *s = (sf_sdpa *)&err; /* must be set to NULL */
    sf_status st = sf_sdpa_new(&s, NULL, &err);
    SF_CHECK_MSG(st == SF_E_DEVICE && s == NULL && strstr(err.msg, "cudnnCreate"), "sf_sdpa_new: status %d, '%s'", (int)st,
                 err.msg);
    sf_cuda_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    sf_conv_cudnn *c = (sf_conv_cudnn *)&err;
    err.msg[0] = 0;
    st = sf_conv_cudnn_new(&c, &ctx, &err);
    SF_CHECK_MSG(st == SF_E_DEVICE && c == NULL && strstr(err.msg, "cudnnCreate"), "sf_conv_cudnn_new: status %d, '%s'",
                 (int)st, err.msg);
    printf("# %s\n", err.msg);
    sf_sdpa_destroy(&s), sf_conv_cudnn_destroy(&c); /* NULL: no-ops */
}

static const sf_test tests[] = {
    {"deviceless_plans", test_deviceless_plans},
    {"refused_without_device", test_refused_without_device},
    {"forward_gpu", test_forward_gpu},
};

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--deviceless-child") == 0) return deviceless_child();
    return sf_test_main(tests, sizeof tests / sizeof tests[0], argc, argv);
}
