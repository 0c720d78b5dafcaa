/* conv_emu.cc — kernels/conv_cuda.h on the CPU emulation (test builds only, never in libsf.a): the
 * cuDNN conv3d as a plain loop over the same bf16 device (= host) buffers, fp32 accumulation in
 * the order of sf_conv3d_cpu (bias, then taps (ci, dt, dy, dx) ascending), + residual, one bf16
 * rounding — the fused plan's contract; the encoder's stride-2 'downsample' shape (down) too. It tests the decoder's use of the API (layouts, the
 * cache-prefix buffers, weight reordering, epilogues, plans prepared at init), not cuDNN. Linked
 * before libsf.a by the emu rules, so conv_cudnn.o is never pulled in. Deviceless plans are not
 * emulated (SF_E_UNSUPPORTED). */
#include "conv_cuda.h"
#include "cuda_emu.h"
#include "emu_state.h"

#include <stdlib.h>
#include <string.h>

static inline float bf2f(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t f2bf(float f) { /* round to nearest even, NaN → 0x7FFF (the GPU's cvt) */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

struct sf_conv_cudnn {
    sf_conv_shape *shapes;
    int n, cap;
};

static int same(const sf_conv_shape *a, const sf_conv_shape *b) {
    return a->cin == b->cin && a->cout == b->cout && a->h == b->h && a->w == b->w && a->t_out == b->t_out &&
           a->kt == b->kt && a->k == b->k && !!a->bias == !!b->bias && !!a->residual == !!b->residual &&
           !!a->down == !!b->down;
}

extern "C" sf_status sf_conv_cudnn_new(sf_conv_cudnn **out, const sf_cuda_ctx *ctx, sf_err *err) {
    (void)ctx;
    *out = (sf_conv_cudnn *)calloc(1, sizeof(sf_conv_cudnn));
    return *out ? SF_OK : sf_fail(err, SF_E_NOMEM, "conv: out of memory");
}

extern "C" void sf_conv_cudnn_destroy(sf_conv_cudnn **c) {
    if (!c || !*c) return;
    free((*c)->shapes);
    free(*c);
    *c = NULL;
}

extern "C" sf_status sf_conv_cudnn_prepare(sf_conv_cudnn *c, const sf_conv_shape *s, sf_err *err) {
    if (s->cin < 8 || s->cout < 8 || s->cin % 8 || s->cout % 8 || s->h < 1 || s->w < 1 || s->t_out < 1 ||
        (s->kt != 1 && s->kt != 3) || (s->k != 1 && s->k != 3) ||
        (s->down && (s->k != 3 || s->kt != 1 || s->h % 2 || s->w % 2)))
        return sf_fail(err, SF_E_ARG, "conv: bad shape cin %lld cout %lld (emulated)", (long long)s->cin,
                       (long long)s->cout);
    for (int i = 0; i < c->n; i++)
        if (same(&c->shapes[i], s)) return SF_OK;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        sf_conv_shape *p = (sf_conv_shape *)realloc(c->shapes, sizeof *p * (size_t)cap);
        if (!p) return sf_fail(err, SF_E_NOMEM, "conv: out of memory");
        c->shapes = p, c->cap = cap;
    }
    c->shapes[c->n++] = *s;
    return SF_OK;
}

static sf_status conv_now(const sf_conv_shape *s, const void *xv, const void *wv, const void *bv, const void *rv,
                          void *yv, sf_err *err);
static unsigned long long n_conv_calls;
extern "C" unsigned long long sf_emu_conv_calls(void) { return n_conv_calls; }

extern "C" sf_status sf_conv_cudnn_forward(sf_conv_cudnn *c, const sf_conv_shape *s, const void *xv, const void *wv,
                                           const void *bv, const void *rv, void *yv, sf_err *err) {
    n_conv_calls++;
    int found = 0;
    for (int i = 0; i < c->n && !found; i++) found = same(&c->shapes[i], s);
    if (!found) return sf_fail(err, SF_E_ARG, "conv %lld->%lld: no plan prepared at init (emulated)",
                               (long long)s->cin, (long long)s->cout);
    if (!xv || !wv || !yv || (s->bias && !bv) || (s->residual && !rv) ||
        (((uintptr_t)xv | (uintptr_t)wv | (uintptr_t)yv | (uintptr_t)bv | (uintptr_t)rv) & 15))
        return sf_fail(err, SF_E_ARG, "conv: x, w, y (and bias, res when used) must be 16-byte aligned device pointers");
    if (!sf_emu::same_device("sf_conv_cudnn_forward", nullptr, xv, wv) || !sf_emu::same_device("sf_conv_cudnn_forward", nullptr, yv, rv) ||
        !sf_emu::same_device("sf_conv_cudnn_forward", nullptr, bv, nullptr))
        return sf_fail(err, SF_E_DEVICE, "%s", sf_emu::err_msg);
    if (sf_emu::deferring()) { /* queued (SF_EMU_ASYNC): the shape copied, computed when the host waits */
        const sf_conv_shape sc = *s;
        sf_emu::defer([sc, xv, wv, bv, rv, yv] {
            sf_err e2 = {{0}};
            if (conv_now(&sc, xv, wv, bv, rv, yv, &e2)) sf_emu::sticky_error = sf_emu::last_error = cudaErrorLaunchFailure;
        });
        return SF_OK;
    }
    return conv_now(s, xv, wv, bv, rv, yv, err);
}

/* The convolution itself: fp32 sums in a fixed order per output, one bf16 rounding. The weights are
 * widened once per call into tap-major order ([ci][dt][dy][dx] rows of cout floats), so each tap adds its
 * product to all output channels of a pixel in one vectorisable loop — every output still sums its
 * taps in the order above. */
static sf_status conv_now(const sf_conv_shape *s, const void *xv, const void *wv, const void *bv, const void *rv,
                          void *yv, sf_err *err) {
    const uint16_t *x = (const uint16_t *)xv, *w = (const uint16_t *)wv, *b = (const uint16_t *)bv,
                   *r = (const uint16_t *)rv;
    uint16_t *y = (uint16_t *)yv;
    const int64_t H = s->h, W = s->w, ci_n = s->cin, co_n = s->cout, kt = s->kt, k = s->k;
    /* down: ZeroPad2d((0, 1, 0, 1)) + stride 2 — output (i, j) at input (2i, 2j) with the taps from there
       (padding 0 before; the row / column past the end reads the pad's zeros) */
    const int64_t p = s->down ? 0 : (k - 1) / 2, st = s->down ? 2 : 1, Ho = H / st, Wo = W / st;
    const int64_t K = kt * k * k;
    float *__restrict acc = (float *)malloc(sizeof(float) * (size_t)co_n);
    float *wt = (float *)malloc(sizeof(float) * (size_t)(K * ci_n * co_n));
    if (!acc || !wt) {
        free(acc), free(wt);
        return sf_fail(err, SF_E_NOMEM, "conv: out of memory");
    }
    for (int64_t co = 0; co < co_n; co++) /* w: [co][dt][dy][dx][ci] → wt: [ci][dt][dy][dx][co] */
        for (int64_t tap = 0; tap < K; tap++)
            for (int64_t ci = 0; ci < ci_n; ci++) wt[(ci * K + tap) * co_n + co] = bf2f(w[(co * K + tap) * ci_n + ci]);
    for (int64_t t = 0; t < s->t_out; t++)
        for (int64_t yo = 0; yo < Ho; yo++)
            for (int64_t xo = 0; xo < Wo; xo++) {
                const int64_t yy = st * yo, xx = st * xo; /* the input pixel of tap (p, p) */
                for (int64_t co = 0; co < co_n; co++) acc[co] = s->bias ? bf2f(b[co]) : 0.0f;
                /* taps inside the frame only (zero padding contributes nothing); same order per output */
                const int64_t dy0 = yy - p < 0 ? p - yy : 0, dy1 = yy + (k - 1 - p) >= H ? H - 1 - yy + p : k - 1;
                const int64_t dx0 = xx - p < 0 ? p - xx : 0, dx1 = xx + (k - 1 - p) >= W ? W - 1 - xx + p : k - 1;
                for (int64_t ci = 0; ci < ci_n; ci++)
                    for (int64_t dt = 0; dt < kt; dt++)
                        for (int64_t dy = dy0; dy <= dy1; dy++) {
                            const uint16_t *xr = x + (((t + dt) * H + yy + dy - p) * W + xx - p) * ci_n + ci;
                            const float *wr = wt + (ci * K + (dt * k + dy) * k) * co_n;
                            for (int64_t dx = dx0; dx <= dx1; dx++) {
                                const float xf = bf2f(xr[dx * ci_n]);
                                const float *__restrict wc = wr + dx * co_n;
                                int64_t co = 0;
                                for (; co + 8 <= co_n; co += 8) /* a fixed 8: GCC's -O2 vectorises it */
                                    for (int l = 0; l < 8; l++) acc[co + l] += wc[co + l] * xf;
                                for (; co < co_n; co++) acc[co] += wc[co] * xf;
                            }
                        }
                const int64_t o = ((t * Ho + yo) * Wo + xo) * co_n;
                for (int64_t co = 0; co < co_n; co++)
                    y[o + co] = f2bf(acc[co] + (s->residual ? bf2f(r[o + co]) : 0.0f));
            }
    free(acc);
    free(wt);
    return SF_OK;
}

extern "C" sf_status sf_conv_cudnn_describe(const sf_conv_cudnn *c, const sf_conv_shape *s, char *desc, size_t n,
                                            sf_err *err) {
    for (int i = 0; i < c->n; i++)
        if (same(&c->shapes[i], s)) {
            if (n) strncpy(desc, "emulated loop", n - 1), desc[n - 1] = 0;
            return SF_OK;
        }
    return sf_fail(err, SF_E_NOTFOUND, "conv: shape not prepared");
}

extern "C" size_t sf_conv_cudnn_bytes(const sf_conv_cudnn *c) {
    (void)c;
    return 0;
}

extern "C" int sf_conv_cudnn_tune_report(const sf_conv_cudnn *c, char *buf, size_t n) { /* nothing to time */
    (void)c;
    if (n) buf[0] = 0;
    return 0;
}

extern "C" sf_status sf_conv_cudnn_plan_deviceless(const char *path, const sf_conv_shape *s, char *desc, size_t n,
                                                   sf_err *err) {
    (void)path, (void)s;
    if (n) desc[0] = 0;
    return sf_fail(err, SF_E_UNSUPPORTED, "deviceless cuDNN plans are not emulated");
}
