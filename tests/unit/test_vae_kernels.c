/* test_vae_kernels.c — the VAE decoder's CPU kernels (kernels/conv3d.h, kernels/vae_ops.h)
 * against hand-computed values, a naive direct convolution and a double-precision attention;
 * thread-count bit identity; the conv's exact summation order (bit for bit, avx2 and baseline kernels: SF_CPU_BASELINE=1). */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "act.h"
#include "conv3d.h"
#include "dnnl_ops.h"
#include "parallel.h"
#include "vae_ops.h"

/* Naive causal conv (double accumulation) for comparison. x: frames pointer list. */
static void naive_conv(const float *const *fr, int64_t n, int64_t cin, int64_t cout, int64_t H, int64_t W, int kt,
                       int kh, int kw, const float *w, const float *b, float *out) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t co = 0; co < cout; co++)
            for (int64_t y = 0; y < H; y++)
                for (int64_t x = 0; x < W; x++) {
                    double acc = b ? b[co] : 0;
                    for (int64_t ci = 0; ci < cin; ci++)
                        for (int dt = 0; dt < kt; dt++)
                            for (int dy = 0; dy < kh; dy++)
                                for (int dx = 0; dx < kw; dx++) {
                                    int64_t iy = y + dy - kh / 2, ix = x + dx - kw / 2;
                                    if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                    acc += (double)w[(((co * cin + ci) * kt + dt) * kh + dy) * kw + dx] *
                                           fr[t + dt][(ci * H + iy) * W + ix];
                                }
                    out[((t * cout + co) * H + y) * W + x] = (float)acc;
                }
}

static float frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void test_conv3d_hand(void) {
    sf_test_exact(1); /* the exact kernels' bits: run in the exact mode */
    /* 1→1 channel, kernel (3,3,3) all ones except centre tap 2, bias 0.5, H=W=2.
     * History frames: zeros and a frame of ones; input frame: 1,2,3,4. */
    float zero[4] = {0, 0, 0, 0}, ones[4] = {1, 1, 1, 1}, in[4] = {1, 2, 3, 4};
    const float *fr[3] = {zero, ones, in};
    float w[27], b = 0.5f, out[4 + 2], guard = 12345.0f;
    for (int i = 0; i < 27; i++) w[i] = 1.0f;
    w[13] = 2.0f; /* dt=1, dy=1, dx=1 */
    out[4] = out[5] = guard;
    sf_err err = {{0}};
    sf_conv3d_args a = {fr, 1, 1, 1, 2, 2, 3, 3, 3, w, &b, out, 1, NULL, 1};
    SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
    /* Every output sees the whole 2×2 (3×3 window with pad 1 covers it):
     * frame 'ones' contributes 4 + 1 (centre tap doubled), frame 'in' contributes 10,
     * bias 0.5 → 15.5 everywhere. */
    for (int i = 0; i < 4; i++) SF_CHECK_MSG(out[i] == 15.5f, "out[%d] = %g", i, out[i]);
    SF_CHECK(out[4] == guard && out[5] == guard);

    /* 1x1x1 (pointwise) 2→1: y = 2·x0 − x1 + 1 */
    float x2[2 * 4] = {1, 2, 3, 4, 10, 20, 30, 40}, w2[2] = {2, -1}, b2 = 1, o2[4];
    const float *fr2[1] = {x2};
    sf_conv3d_args a2 = {fr2, 1, 2, 1, 2, 2, 1, 1, 1, w2, &b2, o2, 1, NULL, 1};
    SF_CHECK_OK(sf_conv3d_cpu(&a2, &err), &err);
    float want2[4] = {-7, -15, -23, -31};
    SF_CHECK(memcmp(o2, want2, sizeof want2) == 0);
    sf_test_exact(0);
}

static void test_conv3d_naive_threads(void) {
    sf_test_exact(1); /* the exact kernels' bits: run in the exact mode */
    /* cin 5, cout 6 (not a multiple of 4), W 11 (8 + 3 tail), H 7, kt 3, 3 output frames. */
    enum { CI = 5, CO = 6, H = 7, W = 11, NT = 3, KT = 3 };
    static float frames[NT + KT - 1][CI * H * W], w[CO * CI * KT * 9], b[CO];
    static float ref[NT * CO * H * W], o1[NT * CO * H * W + 4], o3[NT * CO * H * W + 4];
    uint32_t s = 7;
    for (int f = 0; f < NT + KT - 1; f++)
        for (int i = 0; i < CI * H * W; i++) frames[f][i] = frand(&s);
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) w[i] = frand(&s);
    for (int i = 0; i < CO; i++) b[i] = frand(&s);
    const float *fr[NT + KT - 1];
    for (int f = 0; f < NT + KT - 1; f++) fr[f] = frames[f];
    naive_conv(fr, NT, CI, CO, H, W, KT, 3, 3, w, b, ref);
    for (int i = 0; i < 4; i++) o1[NT * CO * H * W + i] = o3[NT * CO * H * W + i] = -777.0f;
    sf_err err = {{0}};
    sf_conv3d_args a = {fr, NT, CI, CO, H, W, KT, 3, 3, w, b, o1, 1, NULL, 1};
    SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
    a.out = o3;
    a.threads = 3;
    SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
    sf_test_allclose("conv3d vs naive", o1, ref, NT * CO * H * W, 1e-5, 1e-5);
    SF_CHECK_MSG(memcmp(o1, o3, sizeof(float) * NT * CO * H * W) == 0, "1 vs 3 threads differ");
    for (int i = 0; i < 4; i++) SF_CHECK(o1[NT * CO * H * W + i] == -777.0f && o3[NT * CO * H * W + i] == -777.0f);

    /* time_conv shape (3,1,1): no spatial padding */
    static float ref2[NT * CO * H * W], o4[NT * CO * H * W];
    naive_conv(fr, NT, CI, CO, H, W, KT, 1, 1, w, b, ref2);
    sf_conv3d_args a4 = {fr, NT, CI, CO, H, W, KT, 1, 1, w, b, o4, 2, NULL, 1};
    SF_CHECK_OK(sf_conv3d_cpu(&a4, &err), &err);
    sf_test_allclose("time_conv vs naive", o4, ref2, NT * CO * H * W, 1e-5, 1e-5);

    /* bad arguments are rejected, not crashed on */
    sf_conv3d_args bad = a;
    bad.kh = 2;
    SF_CHECK(sf_conv3d_cpu(&bad, &err) == SF_E_ARG);
    sf_test_exact(0);
}

/* The documented summation order in float: bias (or 0), then + w·x over r = ((ci·kt + dt)·kh + dy)·kw + dx
 * ascending, with x = 0 outside the frame. The kernel must match it bit for bit. */
static void seq_conv(const float *const *fr, int64_t n, int64_t cin, int64_t cout, int64_t H, int64_t W, int kt,
                     int kh, int kw, const float *w, const float *b, float *out) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t co = 0; co < cout; co++)
            for (int64_t y = 0; y < H; y++)
                for (int64_t x = 0; x < W; x++) {
                    float acc = b ? b[co] : 0.0f;
                    const float *wr = w + co * cin * kt * kh * kw;
                    for (int64_t ci = 0; ci < cin; ci++)
                        for (int dt = 0; dt < kt; dt++)
                            for (int dy = 0; dy < kh; dy++)
                                for (int dx = 0; dx < kw; dx++) {
                                    int64_t iy = y + dy - kh / 2, ix = x + dx - kw / 2;
                                    float v = iy < 0 || iy >= H || ix < 0 || ix >= W
                                                  ? 0.0f
                                                  : fr[t + dt][(ci * H + iy) * W + ix];
                                    acc += *wr++ * v;
                                }
                    out[((t * cout + co) * H + y) * W + x] = acc;
                }
}

static void test_conv3d_exact_order(void) {
    sf_test_exact(1); /* the exact kernels' bits: run in the exact mode */
    /* Shapes that exercise: W tails (3, 11, 20 not multiples of 16 / 8), cout not a multiple of the
     * 6-channel tile (1, 7, 13), several row blocks (H 37), reduction chunks (W 832: 19 planes per
     * chunk, 24 planes), 1×1 and (3,1,1) kernels, no bias. 1, 2 and 5 threads, avx2 and baseline. */
    static const struct { int64_t n, cin, cout, h, w; int kt, kh, kw, bias; } sh[] = {
        {2, 5, 7, 37, 11, 3, 3, 3, 1}, {1, 8, 13, 3, 832, 3, 3, 3, 1}, {3, 9, 3, 4, 20, 1, 1, 1, 1},
        {2, 6, 1, 5, 3, 3, 1, 1, 0},   {1, 4, 12, 6, 16, 1, 3, 3, 0},
    };
    for (size_t k = 0; k < sizeof sh / sizeof sh[0]; k++) {
        const int64_t n = sh[k].n, ci = sh[k].cin, co = sh[k].cout, H = sh[k].h, W = sh[k].w;
        const int kt = sh[k].kt, nf = (int)n + kt - 1;
        const size_t fe = (size_t)(ci * H * W), on = (size_t)(n * co * H * W), wn = (size_t)(co * ci * kt * 9);
        float *frames = malloc(sizeof(float) * fe * (size_t)nf), *w = malloc(sizeof(float) * wn);
        float *b = malloc(sizeof(float) * (size_t)co), *ref = malloc(sizeof(float) * on);
        float *o = malloc(sizeof(float) * (on + 4));
        const float *fr[8];
        uint32_t s = 11 + (uint32_t)k;
        for (size_t i = 0; i < fe * (size_t)nf; i++) frames[i] = frand(&s);
        for (size_t i = 0; i < wn; i++) w[i] = frand(&s);
        for (int64_t i = 0; i < co; i++) b[i] = frand(&s);
        for (int f = 0; f < nf; f++) fr[f] = frames + (size_t)f * fe;
        const float *bp = sh[k].bias ? b : NULL;
        seq_conv(fr, n, ci, co, H, W, kt, sh[k].kh, sh[k].kw, w, bp, ref);
        for (int pass = 0; pass < 2; pass++) {
            if (pass) setenv("SF_CPU_BASELINE", "1", 1);
            /* the variant that runs, answered from inside it (kernels/cpu/simd_variants.h): the
             * two passes compare two differently compiled kernels, under gcc and clang alike */
            int want = SF_ISA_BASE;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
            if (!pass && __builtin_cpu_supports("avx2")) want = SF_ISA_AVX2;
#endif
            SF_CHECK_MSG(sf_conv3d_cpu_isa() == want, "conv3d runs isa %d, expected %d", sf_conv3d_cpu_isa(), want);
            for (int th = 1; th <= 5; th += 1 + (th == 2)) {
                for (int i = 0; i < 4; i++) o[on + (size_t)i] = -777.0f;
                sf_err err = {{0}};
                sf_conv3d_args a = {fr, n, ci, co, H, W, kt, sh[k].kh, sh[k].kw, w, bp, o, th, NULL, 1};
                SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
                SF_CHECK_MSG(memcmp(o, ref, sizeof(float) * on) == 0, "shape %zu, %d threads, %s: not the exact order",
                             k, th, pass ? "baseline" : "default isa");
                for (int i = 0; i < 4; i++) SF_CHECK(o[on + (size_t)i] == -777.0f);
            }
            { /* work memory from a scratch sized by sf_conv3d_cpu_scratch (poisoned first: nothing may be
                 read before it is written), 3 threads: same bits, no allocation */
                sf_scratch ws;
                sf_err err = {{0}};
                SF_CHECK_OK(sf_scratch_init(&ws, 1, sf_conv3d_cpu_scratch(ci, co, kt, sh[k].kh, sh[k].kw, W, 3), &err),
                            &err);
                for (size_t i = 0; ws.buf && i < ws.per_part; i++) ws.buf[i] = NAN;
                unsigned long long m0 = sf_scratch_misses();
                sf_conv3d_args a = {fr, n, ci, co, H, W, kt, sh[k].kh, sh[k].kw, w, bp, o, 3, &ws, 1};
                SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
                SF_CHECK_MSG(sf_scratch_misses() == m0 && memcmp(o, ref, sizeof(float) * on) == 0,
                             "shape %zu with a scratch: %llu allocations, %s", k, sf_scratch_misses() - m0,
                             memcmp(o, ref, sizeof(float) * on) ? "outputs differ" : "outputs equal");
                sf_scratch_free(&ws);
            }
        }
        unsetenv("SF_CPU_BASELINE");
        free(frames), free(w), free(b), free(ref), free(o);
    }
    sf_test_exact(0);
}

static void test_cache_push(void) {
    float cache[4] = {1, 1, 2, 2}; /* depth 2, frames of 2 floats */
    float one[2] = {3, 3};
    sf_conv3d_cache_push(cache, 2, one, 1, 2);
    float w1[4] = {2, 2, 3, 3};
    SF_CHECK(memcmp(cache, w1, sizeof w1) == 0);
    float three[6] = {4, 4, 5, 5, 6, 6};
    sf_conv3d_cache_push(cache, 2, three, 3, 2);
    float w2[4] = {5, 5, 6, 6};
    SF_CHECK(memcmp(cache, w2, sizeof w2) == 0);
}

static void test_rms_norm(void) {
    /* one frame, C=2, 2 pixels: (3,4) and (0,0). ‖(3,4)‖ = 5 → (0.6, 0.8)·√2·γ, γ = (1, 2).
     * The zero pixel stays 0 (norm clamped to 1e-12, no NaN). */
    float x[4] = {3, 0, 4, 0}, y[4], g[2] = {1, 2};
    sf_vae_rms_norm_cpu(x, y, 1, 2, 2, g, NULL, 0, 1);
    float r2 = sqrtf(2.0f);
    SF_CHECK(fabsf(y[0] - 0.6f * r2) < 1e-6f && fabsf(y[2] - 1.6f * r2) < 1e-6f);
    SF_CHECK(y[1] == 0.0f && y[3] == 0.0f);
    /* fused SiLU: silu(v) = v / (1 + e^-v) */
    float z[4];
    sf_vae_rms_norm_cpu(x, z, 1, 2, 2, g, NULL, 1, 2);
    float v = 0.6f * r2;
    SF_CHECK(fabsf(z[0] - v / (1 + expf(-v))) < 1e-6f);
}

static void test_upsample_interleave(void) {
    float x[2 * 2] = {1, 2, 3, 4}, y[16];
    sf_vae_upsample2x_cpu(x, y, 1, 1, 2, 2);
    float want[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    SF_CHECK(memcmp(y, want, sizeof want) == 0);
    /* time_conv out [1 frame, 2C=4 channels, HW=1]: channels 0,1 → frame 0; 2,3 → frame 1 */
    float tc[4] = {10, 11, 20, 21}, o[4];
    sf_vae_time_interleave_cpu(tc, o, 1, 2, 1);
    float w[4] = {10, 11, 20, 21};
    SF_CHECK(memcmp(o, w, sizeof w) == 0);
}

static void test_attention(void) {
    /* C = 1, 2 tokens: q = (1, 0), k = (0, ln 3), v = (10, 20). Scale 1/√1.
     * token 0: scores (0, ln3) → p = (1/4, 3/4) → 17.5; token 1: scores (0, 0) → 15. */
    float qkv[6] = {1, 0, 0, logf(3.0f), 10, 20}, out[2];
    float *scratch = malloc(sizeof(float) * sf_vae_attention_scratch(1, 2, 2));
    SF_CHECK(scratch != NULL);
    SF_CHECK(sf_vae_attention_cpu(qkv, out, 1, 1, 2, scratch, 2) == 0);
    SF_CHECK_MSG(fabsf(out[0] - 17.5f) < 1e-5f && fabsf(out[1] - 15.0f) < 1e-5f, "%g %g", out[0], out[1]);
    free(scratch);
}

/* The attention against a double-precision softmax attention, in every CPU mode: 2 frames (the
 * scratch reused), C = 20 (off the kernel's 8 / 16 lanes), 103 tokens (off its 48-query tiles and
 * 4-key / 6-query register tiles), scratch sized by sf_vae_attention_scratch and nothing allocated
 * per call, guard values after the output untouched; the exact mode's bits the same on 1, 2 and 3
 * threads. All modes keep the attention in f32: within 1e-5 of max|ref| (we see ~1e-7). */
static void test_attention_ref(void) {
    enum { N = 2, C = 20, HW = 103, G = 8 };
    static float qkv[N * 3 * C * HW], out[N * C * HW + G], o1[N * C * HW];
    static double ref[N * C * HW], sc[HW];
    uint32_t s = 77;
    for (int i = 0; i < N * 3 * C * HW; i++) qkv[i] = 2.0f * frand(&s);
    for (int f = 0; f < N; f++) {
        const float *q = qkv + f * 3 * C * HW, *k = q + C * HW, *v = k + C * HW;
        for (int i = 0; i < HW; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < HW; j++) {
                double d = 0;
                for (int c = 0; c < C; c++) d += (double)q[c * HW + i] * k[c * HW + j];
                sc[j] = d / sqrt((double)C);
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (int j = 0; j < HW; j++) sum += sc[j] = exp(sc[j] - mx);
            for (int c = 0; c < C; c++) {
                double o = 0;
                for (int j = 0; j < HW; j++) o += sc[j] / sum * v[c * HW + j];
                ref[(f * C + c) * HW + i] = o;
            }
        }
    }
    static float reff[N * C * HW];
    for (int i = 0; i < N * C * HW; i++) reff[i] = (float)ref[i];
    float *scratch = malloc(sizeof(float) * sf_vae_attention_scratch(C, HW, 3));
    SF_CHECK(scratch != NULL);
    const char *modes[3] = {"exact", "fast", "bf16"};
    for (int mi = 0; mi < 3; mi++)
        for (int th = 1; th <= 3; th++) {
            if (mi) sf_test_mode(modes[mi]);
            else sf_test_exact(1);
            for (int g = 0; g < G; g++) out[N * C * HW + g] = -777.0f;
            const unsigned long long m0 = sf_scratch_misses();
            SF_CHECK(sf_vae_attention_cpu(qkv, out, N, C, HW, scratch, th) == 0);
            SF_CHECK_MSG(sf_scratch_misses() == m0, "%s, %d threads: the kernel allocated its work memory", modes[mi], th);
            for (int g = 0; g < G; g++) SF_CHECK(out[N * C * HW + g] == -777.0f);
            char what[64];
            snprintf(what, sizeof what, "VAE attention, %s mode, %d threads", modes[mi], th);
            sf_test_rel_close(what, out, reff, N * C * HW, 1e-5);
            if (!mi && th == 1) memcpy(o1, out, sizeof o1);
            if (!mi && th > 1) SF_CHECK_MSG(!memcmp(o1, out, sizeof o1), "exact mode: %d threads differ from 1", th);
            if (!mi) sf_test_exact(0);
            else sf_test_mode("fast");
        }
    free(scratch);
}

static void test_to_pixels(void) {
    /* 0.9 → 0.95·255 = 242.25 → 242 (truncation); 0.999 → 254.87 → 254 (rounding would say 255);
     * -3 → -1 → 0; 1.5 → 1 → 255; -0.5 → 0.25 → 63.75 → 63. */
    float x[5] = {0.9f, 0.999f, -3.0f, 1.5f, -0.5f}, v[5];
    uint8_t u[5];
    sf_vae_to_pixels_cpu(x, 5, v, u);
    SF_CHECK(u[0] == 242 && u[1] == 254 && u[2] == 0 && u[3] == 255 && u[4] == 63);
    SF_CHECK(v[2] == -1.0f && v[3] == 1.0f && v[0] == 0.9f);
}

static void test_gelu_threads(void) {
    sf_test_exact(1); /* the exact kernels' bits: run in the exact mode */
    /* The threaded GELU (the DiT's FFN) equals the single-threaded one bit for bit, and the values
     * are GELU-tanh: gelu(1) = 0.5·(1 + tanh(√(2/π)·1.044715)) = 0.8411920, gelu(0) = 0, gelu(-10) ≈ 0. */
    enum { N = 100003 };
    static float a[N], b[N];
    uint32_t s = 5;
    for (int i = 0; i < N; i++) a[i] = b[i] = 6.0f * frand(&s);
    a[0] = b[0] = 1.0f, a[1] = b[1] = 0.0f, a[2] = b[2] = -10.0f;
    sf_gelu_tanh_cpu(a, N);
    sf_gelu_tanh_mt_cpu(b, N, 3);
    SF_CHECK(memcmp(a, b, sizeof a) == 0);
    SF_CHECK_MSG(fabsf(b[0] - 0.8411920f) < 1e-6f && b[1] == 0.0f && fabsf(b[2]) < 1e-6f, "%g %g %g", b[0], b[1], b[2]);
    sf_gelu_tanh_mt_cpu(b + 3, 5, 4); /* tiny n on many threads: runs, touches only its range */
    SF_CHECK(fabsf(b[0] - 0.8411920f) < 1e-6f);
    sf_test_exact(0);
}

/* The fast and bf16 modes' convolution (oneDNN) against the exact one: history frames apart from the
 * chunk's (pointers, not one block), kt 3 and 1, channel counts off the 8/16 blocking, no bias; the
 * oneDNN path must run. fast ≤ 1e-5, bf16 ≤ 1e-2 of max|ref| (inputs and weights rounded to bf16). */
static void test_fast_conv3d(void) {
    if (!sf_dnnl_built()) {
        SF_TEST_SKIP("built without oneDNN (DNNL=0)");
        return;
    }
    enum { CI = 5, CO = 7, H = 9, W = 11, NT = 4, KT = 3 };
    static float frames[NT + KT - 1][CI * H * W], w[CO * CI * KT * 9], b[CO];
    static float ref[NT * CO * H * W], o[NT * CO * H * W + 4];
    uint32_t s = 9;
    for (int f = 0; f < NT + KT - 1; f++)
        for (int i = 0; i < CI * H * W; i++) frames[f][i] = frand(&s);
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) w[i] = frand(&s);
    for (int i = 0; i < CO; i++) b[i] = frand(&s);
    const float *fr[NT + KT - 1];
    for (int f = 0; f < NT + KT - 1; f++) fr[f] = frames[(f * 3) % (NT + KT - 1)]; /* out of memory order */
    const char *modes[2] = {"fast", "bf16"};
    for (int mi = 0; mi < 2; mi++)
        for (int kt = 1; kt <= KT; kt += 2)
            for (int bi = 0; bi < 2; bi++) {
                sf_err err = {{0}};
                sf_conv3d_args a = {fr + (KT - kt), NT, CI, CO, H, W, kt, 3, 3, w, bi ? b : NULL, ref, 2, NULL, 1};
                sf_test_exact(1);
                SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
                sf_test_exact(0);
                sf_test_mode(modes[mi]);
                for (int i = 0; i < 4; i++) o[NT * CO * H * W + i] = -777.0f;
                a.out = o;
                const unsigned long long c0 = sf_dnnl_calls(), r0 = sf_dnnl_refusals();
                SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
                /* f32 always has a JIT kernel; bf16 only from AVX-512 on — on AVX2 oneDNN offers its reference
                 * loops, which are refused (counted) and the exact kernels run */
                if (!mi || sf_dnnl_bf16_jit()) SF_CHECK_MSG(sf_dnnl_calls() > c0, "%s conv3d: oneDNN did not run", modes[mi]);
                else SF_CHECK_MSG(sf_dnnl_calls() > c0 || sf_dnnl_refusals() > r0, "bf16 conv3d without JIT bf16: neither run nor refused");
                char what[64];
                snprintf(what, sizeof what, "%s conv3d kt %d bias %d", modes[mi], kt, bi);
                sf_test_rel_close(what, o, ref, NT * CO * H * W, mi ? 1e-2 : 1e-5);
                for (int i = 0; i < 4; i++) SF_CHECK(o[NT * CO * H * W + i] == -777.0f);
                sf_test_mode("fast");
            }
}

/* The fast mode's f32 convolution at channel counts that are multiples of 16 (every real VAE conv): the
 * 16-channel blocked layout with our frame reorder (sf_dnnl_to_blocked16). The reorder itself against
 * its definition (ragged pixel count, 1 and 3 threads, the gaps between channel blocks untouched); the
 * convolution within 1e-5 of the exact one and the same bits as with oneDNN's own reorder
 * (SF_DNNL_REORDER=1). */
static void test_fast_conv3d_blocked(void) {
    if (!sf_dnnl_built()) {
        SF_TEST_SKIP("built without oneDNN (DNNL=0)");
        return;
    }
    enum { CI = 32, CO = 16, H = 13, W = 170, HW = H * W, NT = 2, KT = 3, CBS = HW * 16 + 40 };
    static float frames[NT + KT - 1][CI * HW], w[CO * CI * KT * 9], b[CO], blk[2 * CBS];
    static float ref[NT * CO * HW], o[NT * CO * HW], o2[NT * CO * HW];
    uint32_t s = 21;
    for (int f = 0; f < NT + KT - 1; f++)
        for (int i = 0; i < CI * HW; i++) frames[f][i] = frand(&s);
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) w[i] = frand(&s);
    for (int i = 0; i < CO; i++) b[i] = frand(&s);
    for (int th = 1; th <= 3; th += 2) {
        for (int i = 0; i < 2 * CBS; i++) blk[i] = -9.0f;
        sf_dnnl_to_blocked16(frames[0], CI, HW, blk, CBS, th);
        int bad = 0, gap = 0;
        for (int c = 0; c < CI; c++)
            for (int p = 0; p < HW; p++) bad += blk[(c / 16) * CBS + p * 16 + c % 16] != frames[0][c * HW + p];
        for (int g = HW * 16; g < CBS; g++) gap += blk[g] != -9.0f || blk[CBS + g] != -9.0f;
        SF_CHECK_MSG(!bad && !gap, "to_blocked16 (%d threads): %d values wrong, %d gap values written", th, bad, gap);
    }
    const float *fr[NT + KT - 1];
    for (int f = 0; f < NT + KT - 1; f++) fr[f] = frames[f];
    sf_err err = {{0}};
    sf_conv3d_args a = {fr, NT, CI, CO, H, W, KT, 3, 3, w, b, ref, 2, NULL, 1};
    sf_test_exact(1);
    SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
    sf_test_exact(0);
    sf_test_mode("fast");
    a.out = o;
    const unsigned long long c0 = sf_dnnl_calls();
    SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
    SF_CHECK_MSG(sf_dnnl_calls() > c0, "fast conv3d: oneDNN did not run");
    sf_test_rel_close("fast conv3d, 16-channel blocks", o, ref, NT * CO * HW, 1e-5);
    setenv("SF_DNNL_REORDER", "1", 1);
    a.out = o2;
    SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
    unsetenv("SF_DNNL_REORDER");
    SF_CHECK_MSG(!memcmp(o, o2, sizeof o), "our frame reorder and oneDNN's give different convolutions");
}

/* Stride 2 (the encoder's downsample: ZeroPad2d((0, 1, 0, 1)) + Conv2d(3, stride 2)) against the direct
 * formula in double: out[t, co, i, j] = b + Σ w · x[t + dt][ci, 2i + 1 + dy − kh/2, 2j + 1 + dx − kw/2]
 * (zero outside; for 3×3 that reads rows 2i..2i+2, row H being the pad's zero row). Shapes off the
 * kernel's tiles: output widths 23 (16 + 8 lanes), 9 and 2, 7 and 5 output channels, kt 3 and 1, 3×3
 * and 5×5. In the exact mode: the stride-1 result's bits at the odd rows and columns, the same bits on 1
 * and 3 threads and in the baseline ISA variant, nothing allocated with a scratch sized by
 * sf_conv3d_cpu_scratch for the input width, guard values untouched; in the fast and bf16 modes
 * (oneDNN's strided convolution) within 1e-5 and 1e-2 of max|ref|. Odd sizes and stride 3 are refused. */
static void test_conv3d_stride2(void) {
    static const struct { int ci, co, h, w, kt, k, n; } sh[] = {{5, 7, 10, 46, 3, 3, 2}, {3, 6, 6, 18, 1, 5, 1}, {2, 5, 4, 4, 1, 3, 3}};
    enum { G = 4 };
    for (size_t k = 0; k < sizeof sh / sizeof sh[0]; k++) {
        const int ci = sh[k].ci, co = sh[k].co, H = sh[k].h, W = sh[k].w, kt = sh[k].kt, kk = sh[k].k, n = sh[k].n;
        const int ho = H / 2, wo = W / 2, nf = n + kt - 1, on = n * co * ho * wo;
        float *x = malloc(sizeof(float) * (size_t)(nf * ci * H * W)), *w = malloc(sizeof(float) * (size_t)(co * ci * kt * kk * kk));
        float *b = malloc(sizeof(float) * (size_t)co), *full = malloc(sizeof(float) * (size_t)(n * co * H * W));
        float *ref = malloc(sizeof(float) * (size_t)on), *o = malloc(sizeof(float) * (size_t)(on + G));
        float *o1 = malloc(sizeof(float) * (size_t)on), *sub = malloc(sizeof(float) * (size_t)on);
        SF_CHECK(x && w && b && full && ref && o && o1 && sub);
        uint32_t s = 31 + (uint32_t)k;
        for (int i = 0; i < nf * ci * H * W; i++) x[i] = frand(&s);
        for (int i = 0; i < co * ci * kt * kk * kk; i++) w[i] = frand(&s);
        for (int i = 0; i < co; i++) b[i] = frand(&s);
        const float *fr[8];
        for (int f = 0; f < nf; f++) fr[f] = x + (size_t)f * (size_t)(ci * H * W);
        for (int t = 0; t < n; t++)
            for (int c = 0; c < co; c++)
                for (int i = 0; i < ho; i++)
                    for (int j = 0; j < wo; j++) {
                        double acc = b[c];
                        for (int c2 = 0; c2 < ci; c2++)
                            for (int dt = 0; dt < kt; dt++)
                                for (int dy = 0; dy < kk; dy++)
                                    for (int dx = 0; dx < kk; dx++) {
                                        const int iy = 2 * i + 1 + dy - kk / 2, ix = 2 * j + 1 + dx - kk / 2;
                                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                        acc += (double)w[(((c * ci + c2) * kt + dt) * kk + dy) * kk + dx] *
                                               fr[t + dt][(c2 * H + iy) * W + ix];
                                    }
                        ref[((t * co + c) * ho + i) * wo + j] = (float)acc;
                    }
        sf_err err = {{0}};
        sf_test_exact(1);
        sf_conv3d_args a = {fr, n, ci, co, H, W, kt, kk, kk, w, b, full, 1, NULL, 1};
        SF_CHECK_OK(sf_conv3d_cpu(&a, &err), &err);
        for (int t = 0; t < n; t++)
            for (int c = 0; c < co; c++)
                for (int i = 0; i < ho; i++)
                    for (int j = 0; j < wo; j++)
                        sub[((t * co + c) * ho + i) * wo + j] = full[((t * co + c) * H + 2 * i + 1) * W + 2 * j + 1];
        sf_scratch ws;
        SF_CHECK_OK(sf_scratch_init(&ws, 1, sf_conv3d_cpu_scratch(ci, co, kt, kk, kk, W, 3), &err), &err);
        for (int v = 0; v < 3; v++) { /* 1 thread, 3 threads with the scratch, the baseline ISA variant */
            if (v == 2) setenv("SF_CPU_BASELINE", "1", 1);
            if (v == 2) SF_CHECK(sf_conv3d_cpu_isa() == SF_ISA_BASE);
            for (int g = 0; g < G; g++) o[on + g] = -777.0f;
            sf_conv3d_args a2 = {fr, n, ci, co, H, W, kt, kk, kk, w, b, o, v ? 3 : 1, v == 1 ? &ws : NULL, 2};
            const unsigned long long m0 = sf_scratch_misses();
            SF_CHECK_OK(sf_conv3d_cpu(&a2, &err), &err);
            if (v == 1) SF_CHECK_MSG(sf_scratch_misses() == m0, "stride 2, shape %zu: the scratch was too small", k);
            if (v == 2) unsetenv("SF_CPU_BASELINE");
            char what[80];
            snprintf(what, sizeof what, "conv3d stride 2, shape %zu, variant %d vs the direct formula", k, v);
            sf_test_allclose(what, o, ref, (size_t)on, 1e-5, 1e-5);
            SF_CHECK_MSG(!memcmp(o, sub, sizeof(float) * (size_t)on), "stride 2, shape %zu, variant %d: not the stride-1 bits", k, v);
            for (int g = 0; g < G; g++) SF_CHECK(o[on + g] == -777.0f);
            if (!v) memcpy(o1, o, sizeof(float) * (size_t)on);
        }
        sf_scratch_free(&ws);
        sf_conv3d_args bad = a;
        bad.stride = 2, bad.w = W - 1;
        SF_CHECK(sf_conv3d_cpu(&bad, &err) == SF_E_ARG);
        bad.w = W, bad.stride = 3;
        SF_CHECK(sf_conv3d_cpu(&bad, &err) == SF_E_ARG);
        sf_test_exact(0);
        const char *modes[2] = {"fast", "bf16"};
        for (int mi = 0; sf_dnnl_built() && mi < 2; mi++) {
            sf_test_mode(modes[mi]);
            for (int g = 0; g < G; g++) o[on + g] = -777.0f;
            sf_conv3d_args a3 = {fr, n, ci, co, H, W, kt, kk, kk, w, b, o, 2, NULL, 2};
            const unsigned long long c0 = sf_dnnl_calls();
            SF_CHECK_OK(sf_conv3d_cpu(&a3, &err), &err);
            if (!mi) SF_CHECK_MSG(sf_dnnl_calls() > c0, "fast stride-2 conv3d: oneDNN did not run");
            char what[80];
            snprintf(what, sizeof what, "%s conv3d stride 2, shape %zu", modes[mi], k);
            sf_test_rel_close(what, o, o1, (size_t)on, mi ? 1e-2 : 1e-5);
            for (int g = 0; g < G; g++) SF_CHECK(o[on + g] == -777.0f);
            sf_test_mode("fast");
        }
        free(x), free(w), free(b), free(full), free(ref), free(o), free(o1), free(sub);
    }
}

static const sf_test tests[] = {
    {"fast_conv3d", test_fast_conv3d},
    {"fast_conv3d_blocked", test_fast_conv3d_blocked},
    {"conv3d_hand", test_conv3d_hand},
    {"conv3d_naive_threads", test_conv3d_naive_threads},
    {"conv3d_exact_order", test_conv3d_exact_order},
    {"conv3d_stride2", test_conv3d_stride2},
    {"cache_push", test_cache_push},
    {"rms_norm", test_rms_norm},
    {"upsample_interleave", test_upsample_interleave},
    {"attention", test_attention},
    {"attention_ref", test_attention_ref},
    {"to_pixels", test_to_pixels},
    {"gelu_threads", test_gelu_threads},
};
SF_TEST_MAIN(tests)
