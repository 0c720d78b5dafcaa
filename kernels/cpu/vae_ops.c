/* vae_ops.c — CPU reference of kernels/vae_ops.h: channel-first RMS norm (+SiLU), nearest 2×
 * upsampling, time_conv interleave, per-frame single-head attention, output mapping.
 *
 * Mirrors wan/modules/vae.py (RMS_norm = F.normalize(x, dim=1)·√C·γ, Resample's
 * nn.Upsample(nearest), AttentionBlock) and utils/wan_wrapper.py / inference.py for the pixel
 * mapping. Tested by tests/unit/test_vae_kernels.c and the VAE golden tests. Parallel work is
 * split over output elements only (never a reduction), so results do not depend on threads; the
 * attention is kernels/attention.h's (exact mode: the same bits for any thread count too). */
#include "vae_ops.h"
#include "act.h"
#include "attention.h"
#include "conv3d.h"
#include "parallel.h"
#include "tensor.h"

#include <math.h>
#include <string.h>

/* ---- RMS norm ---------------------------------------------------------------------------- */

#define RMS_PIX 256 /* pixels per work item */

typedef struct rms_ctx {
    const float *x;
    float *y;
    int64_t C, HW, n_pblk;
    const float *gamma, *bias;
    int silu;
    float scale;
} rms_ctx;

static void rms_item(void *p, int64_t item, int tid) {
    (void)tid;
    const rms_ctx *c = p;
    const int64_t f = item / c->n_pblk, p0 = (item % c->n_pblk) * RMS_PIX;
    const int64_t np = c->HW - p0 < RMS_PIX ? c->HW - p0 : RMS_PIX;
    const float *x = c->x + f * c->C * c->HW + p0;
    float *y = c->y + f * c->C * c->HW + p0;
    float inv[RMS_PIX];
    for (int64_t i = 0; i < np; i++) inv[i] = 0.0f;
    for (int64_t ch = 0; ch < c->C; ch++) {
        const float *xc = x + ch * c->HW;
        for (int64_t i = 0; i < np; i++) inv[i] += xc[i] * xc[i];
    }
    for (int64_t i = 0; i < np; i++) {
        float nrm = sqrtf(inv[i]);
        inv[i] = nrm > 1e-12f ? nrm : 1e-12f; /* F.normalize: x / max(‖x‖, eps) */
    }
    for (int64_t ch = 0; ch < c->C; ch++) {
        const float *xc = x + ch * c->HW;
        float *yc = y + ch * c->HW;
        const float g = c->gamma[ch], b = c->bias ? c->bias[ch] : 0.0f;
        for (int64_t i = 0; i < np; i++) {
            float v = xc[i] / inv[i] * c->scale * g;
            if (c->bias) v += b;
            if (c->silu) v = sf_silu1(v);
            yc[i] = v;
        }
    }
}

void sf_vae_rms_norm_cpu(const float *x, float *y, int64_t n, int64_t C, int64_t HW, const float *gamma,
                         const float *bias, int silu, int threads) {
    if (n <= 0 || C <= 0 || HW <= 0) return;
    rms_ctx c = {x, y, C, HW, (HW + RMS_PIX - 1) / RMS_PIX, gamma, bias, silu, (float)sqrt((double)C)};
    sf_parallel_items(n * c.n_pblk, threads, rms_item, &c);
}

/* ---- resampling -------------------------------------------------------------------------- */

void sf_vae_upsample2x_cpu(const float *x, float *y, int64_t n, int64_t C, int64_t H, int64_t W) {
    const int64_t W2 = 2 * W;
    for (int64_t pl = 0; pl < n * C; pl++) {
        const float *xp = x + pl * H * W;
        float *yp = y + pl * 4 * H * W;
        for (int64_t i = 0; i < H; i++) {
            float *r0 = yp + (2 * i) * W2;
            for (int64_t j = 0; j < W; j++) r0[2 * j] = r0[2 * j + 1] = xp[i * W + j];
            memcpy(r0 + W2, r0, (size_t)W2 * sizeof(float));
        }
    }
}

void sf_vae_time_interleave_cpu(const float *tc, float *y, int64_t n, int64_t C, int64_t HW) {
    /* [n, 2, C, HW] and [2n, C, HW] are the same bytes: only copy when not in place. */
    if (tc != y) memmove(y, tc, (size_t)(n * 2 * C * HW) * sizeof(float));
}

/* ---- attention --------------------------------------------------------------------------- */

/* The single-head attention is kernels/attention.h's kernel (heads = 1, d = C) on the frame in
 * token-major layout: [3C, HW] → [HW, 3C] (q, k, v side by side, row stride 3C), the kernel's
 * output [HW, C] → [C, HW]. Its exact mode gives the same bits for any thread count, its fast and
 * bf16 modes run the products and the softmax through oneDNN in f32 (attention.c). */
#define ALIGN16(x) (((size_t)(x) + 15) & ~(size_t)15) /* floats, to a 64-byte line */
#define TR_B 32                                        /* transpose tile */

size_t sf_vae_attention_scratch(int64_t C, int64_t HW, int threads) {
    if (threads < 1) threads = 1;
    /* 16: room to put the caller's buffer on a 64-byte line; then the transposed frame and output */
    return 16 + ALIGN16(3 * C * HW) + ALIGN16(C * HW) + (size_t)threads * ALIGN16(sf_attention_cpu_scratch(HW, (int)C));
}

typedef struct tr_ctx {
    const float *src; /* [rows, cols] */
    float *dst;       /* [cols, rows] */
    int64_t rows, cols;
} tr_ctx;

/* dst[c, r] = src[r, c] for the TR_B-column blocks [b, e) of src, in TR_B × TR_B tiles. */
static void tr_range(void *p, int64_t b, int64_t e) {
    const tr_ctx *t = p;
    const int64_t c_end = e * TR_B < t->cols ? e * TR_B : t->cols;
    for (int64_t c0 = b * TR_B; c0 < c_end; c0 += TR_B) {
        const int64_t c1 = c0 + TR_B < c_end ? c0 + TR_B : c_end;
        for (int64_t r0 = 0; r0 < t->rows; r0 += TR_B) {
            const int64_t r1 = r0 + TR_B < t->rows ? r0 + TR_B : t->rows;
            for (int64_t c = c0; c < c1; c++)
                for (int64_t r = r0; r < r1; r++) t->dst[c * t->rows + r] = t->src[r * t->cols + c];
        }
    }
}

static void transpose(const float *src, int64_t rows, int64_t cols, float *dst, int threads) {
    tr_ctx t = {src, dst, rows, cols};
    sf_parallel_for((cols + TR_B - 1) / TR_B, threads, 4, tr_range, &t);
}

int sf_vae_attention_cpu(const float *qkv, float *out, int64_t n, int64_t C, int64_t HW, float *scratch,
                         int threads) {
    if (threads < 1) threads = 1;
    float *t = scratch + ((16 - ((uintptr_t)scratch / sizeof(float)) % 16) % 16), *o = t + ALIGN16(3 * C * HW);
    const sf_scratch ws = {o + ALIGN16(C * HW), ALIGN16(sf_attention_cpu_scratch(HW, (int)C)), threads};
    const float scale = (float)(1.0 / sqrt((double)C));
    for (int64_t f = 0; f < n; f++) {
        transpose(qkv + f * 3 * C * HW, 3 * C, HW, t, threads);
        if (sf_attention_cpu_ws(HW, HW, 1, (int)C, t, 3 * C, t + C, t + 2 * C, 3 * C, o, C, scale, NULL, threads, &ws))
            return -1;
        transpose(o, HW, C, out + f * C * HW, threads);
    }
    return 0;
}

/* ---- misc -------------------------------------------------------------------------------- */

void sf_vae_unscale_consts(const float *mean16, const float *std16, int64_t C, int bf16, float *mr) {
    for (int64_t ch = 0; ch < C; ch++) {
        float m = mean16[ch % 16], sd = std16[ch % 16];
        mr[ch] = bf16 ? sf_round_bf16(m) : m;
        mr[C + ch] = bf16 ? sf_round_bf16(1.0f / sf_round_bf16(sd)) : 1.0f / sd;
    }
}

/* z / (1/std) + mean: float32 division by the float32 reciprocal, like WanVAE_.decode with
 * scale = [mean, 1/std]; the bf16 form reproduces the bf16 pipeline. */
void sf_vae_unscale_cpu(const float *z, int64_t C, int64_t HW, const float *mr, int bf16, float *y) {
    for (int64_t ch = 0; ch < C; ch++) {
        const float m = mr[ch], r = mr[C + ch];
        for (int64_t p = 0; p < HW; p++) {
            float zz = z[ch * HW + p];
            y[ch * HW + p] = bf16 ? sf_round_bf16(sf_round_bf16(sf_round_bf16(zz) / r) + m) : zz / r + m;
        }
    }
}

void sf_vae_add_cpu(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void sf_vae_to_pixels_cpu(const float *x, int64_t n, float *video, uint8_t *u8) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        v = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
        if (v != v) v = 0.0f; /* NaN never reaches a pixel as garbage; clamp_ would keep it */
        if (video) video[i] = isnan(x[i]) ? x[i] : v;
        if (u8) {
            float v01 = v * 0.5f + 0.5f;
            v01 = v01 < 0.0f ? 0.0f : v01 > 1.0f ? 1.0f : v01;
            float s = 255.0f * v01;
            u8[i] = (uint8_t)s; /* truncation toward zero, like torch's uint8 cast */
        }
    }
}
