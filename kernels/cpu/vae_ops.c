/* vae_ops.c — CPU reference of kernels/vae_ops.h: channel-first RMS norm (+SiLU), nearest 2×
 * upsampling, time_conv interleave, per-frame single-head attention, output mapping.
 *
 * Mirrors wan/modules/vae.py (RMS_norm = F.normalize(x, dim=1)·√C·γ, Resample's
 * nn.Upsample(nearest), AttentionBlock) and utils/wan_wrapper.py / inference.py for the pixel
 * mapping. Tested by tests/unit/test_vae_kernels.c and the VAE golden tests. Parallel work is
 * split over output elements only (never a reduction), so results do not depend on threads. */
#include "vae_ops.h"
#include "act.h"
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

size_t sf_vae_attention_scratch(int64_t C, int64_t HW, int threads) {
    if (threads < 1) threads = 1;
    return (size_t)(3 * C * HW) + (size_t)threads * (size_t)(HW + C);
}

typedef struct attn_ctx {
    const float *qt, *kt, *vt; /* token-major [HW, C] */
    float *out;                /* [C, HW] of this frame */
    float *rows;               /* per worker: HW scores + C accumulators */
    int64_t C, HW;
    float scale;
} attn_ctx;

#define ATT_Q 16 /* queries per item */

static void attn_item(void *p, int64_t item, int tid) {
    const attn_ctx *c = p;
    const int64_t C = c->C, HW = c->HW;
    float *s = c->rows + (size_t)tid * (size_t)(HW + C), *o = s + HW;
    const int64_t i1 = (item + 1) * ATT_Q < HW ? (item + 1) * ATT_Q : HW;
    for (int64_t i = item * ATT_Q; i < i1; i++) {
        const float *q = c->qt + i * C;
        float mx = -INFINITY;
        for (int64_t j = 0; j < HW; j++) {
            const float *k = c->kt + j * C;
            float d = 0.0f;
            for (int64_t ch = 0; ch < C; ch++) d += q[ch] * k[ch];
            d *= c->scale;
            s[j] = d;
            mx = d > mx ? d : mx;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < HW; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        for (int64_t ch = 0; ch < C; ch++) o[ch] = 0.0f;
        for (int64_t j = 0; j < HW; j++) {
            const float pj = s[j] / sum, *v = c->vt + j * C;
            for (int64_t ch = 0; ch < C; ch++) o[ch] += pj * v[ch];
        }
        for (int64_t ch = 0; ch < C; ch++) c->out[ch * HW + i] = o[ch];
    }
}

void sf_vae_attention_cpu(const float *qkv, float *out, int64_t n, int64_t C, int64_t HW, float *scratch,
                          int threads) {
    if (threads < 1) threads = 1;
    float *qt = scratch, *kt = qt + C * HW, *vt = kt + C * HW, *rows = vt + C * HW;
    for (int64_t f = 0; f < n; f++) {
        const float *src = qkv + f * 3 * C * HW;
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t j = 0; j < HW; j++) {
                qt[j * C + ch] = src[ch * HW + j];
                kt[j * C + ch] = src[(C + ch) * HW + j];
                vt[j * C + ch] = src[(2 * C + ch) * HW + j];
            }
        attn_ctx c = {qt, kt, vt, out + f * C * HW, rows, C, HW, (float)(1.0 / sqrt((double)C))};
        sf_parallel_items((HW + ATT_Q - 1) / ATT_Q, threads, attn_item, &c);
    }
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
