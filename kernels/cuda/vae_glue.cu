/* vae_glue.cu — kernels/vae_ops_cuda.h: the VAE decoder's memory-bound GPU kernels, channels-last bf16
 * with fp32 arithmetic (SiLU bit for bit the CPU's fp64 sf_silu1, mostly computed in fp32: silu_bf16). CPU references in
 * kernels/vae_ops.h (channel-first f32). Compiled by nvcc and, for tests, by g++ on the CPU
 * emulation (kernels/cuda/emu/cuda_emu.h). Tested through the whole decoder against the vae golden:
 * test_vae_emu (emulated, every `make test`) and test_vae_cuda (GPU). */
#include "cuda_common.cuh"
#include "vae_ops_cuda.h"

/* ---------------------------------------------------------------- RMS norm (+ SiLU) */

/* SiLU of f rounded to bf16, bit for bit the fp64 formula's (sf_silu1: f / (1 + e^−f) in double, then
 * float, then bf16) at a fraction of its cost (the decoder runs ~33 G of them per 81-frame video; fp64
 * runs at half fp32's rate on Hopper and its exp and division are long sequences): the value in fp32
 * first — expf and an IEEE division, a few ulps from the fp64 value's float — rounds to the same bf16
 * unless it lies within 16 ulps of a bf16 rounding midpoint (low half 0x8000) or is not a normal float
 * (overflowed e^−f, zero, denormal, NaN); those (about 1 in 2000) take the fp64 formula. */
__device__ __forceinline__ __nv_bfloat16 silu_fp64(float f) { return sf_tobf((float)((double)f / (1.0 + exp(-(double)f)))); }
__device__ __forceinline__ __nv_bfloat16 silu_bf16(float f) {
    const float r = f / (1.0f + expf(-f));
    const unsigned lo = __float_as_uint(r) & 0xFFFFu;
    if (fabsf(r) >= 1.17549435e-38f && fabsf(r) <= 3.4e38f && (lo < 0x8000u - 16u || lo > 0x8000u + 16u))
        return sf_tobf(r);
    return silu_fp64(f);
}

/* Groups of G lanes per pixel (G a power of two ≥ the pixel's 8-channel vectors, at most 32: the
 * decoder's 96-channel rows are 12 vectors, so a whole warp per pixel left 20 of 32 lanes idle), bf16x8
 * vectors: sum of squares in fp32 (lane-strided, then the group's sum), then
 * y = x / max(‖x‖, 1e-12) · √C · γ [→ SiLU: silu_bf16], rounded once; γ 16 bytes at a time when aligned. Every
 * lane of a warp runs the same iterations (the shuffles need the whole warp); a lane whose pixel is past
 * P only adds zeros. 8 warps per block. */
static __global__ void vae_rms_kernel(const __nv_bfloat16 *__restrict__ x, __nv_bfloat16 *y, int64_t P, int C,
                                      const float *__restrict__ gamma, int silu, float scale, int G, bool gvec,
                                      bool silu64) {
    const int lane = threadIdx.x & 31, nv = C / 8, ppw = 32 / G, grp = lane / G, gl = lane % G;
    for (int64_t p0 = ((int64_t)blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5)) * ppw; p0 < P;
         p0 += (int64_t)gridDim.x * (blockDim.x / 32) * ppw) {
        const int64_t p = p0 + grp;
        const bool live = p < P;
        const bf16x8 *xr = reinterpret_cast<const bf16x8 *>(x + (live ? p : 0) * C);
        bf16x8 *yr = reinterpret_cast<bf16x8 *>(y + (live ? p : 0) * C);
        float ss = 0.0f;
        for (int v = gl; live && v < nv; v += G) {
            bf16x8 a = xr[v];
            for (int j = 0; j < 8; j++) {
                float f = sf_bf(a.h[j]);
                ss += f * f;
            }
        }
        for (int o = G / 2; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o); /* within the group */
        float nrm = sqrtf(ss);
        nrm = nrm > 1e-12f ? nrm : 1e-12f;
        for (int v = gl; live && v < nv; v += G) {
            bf16x8 a = xr[v], o;
            float g8[8];
            sf_load8f(gamma + v * 8, gvec, g8);
            for (int j = 0; j < 8; j++) {
                const float f = sf_bf(a.h[j]) / nrm * scale * g8[j];
                o.h[j] = !silu ? sf_tobf(f) : silu64 ? silu_fp64(f) : silu_bf16(f);
            }
            yr[v] = o;
        }
    }
}

/* SF_VAE_NORM_PLAIN=1: the norm as it was before its lane groups and fp32 SiLU — a whole warp per pixel,
 * SiLU in fp64 (the same bits): the A/B of tests/gpu/check.sh's unit ab. */
static int norm_plain(void) {
    static int v = -1;
    if (v < 0) v = getenv("SF_VAE_NORM_PLAIN") && atoi(getenv("SF_VAE_NORM_PLAIN")) > 0;
    return v;
}

/* lanes per pixel: the smallest power of two holding its C / 8 vectors, at most a warp */
static int rms_group(int64_t C) {
    if (norm_plain()) return 32;
    int G = 1;
    while (G < 32 && G < C / 8) G *= 2;
    return G;
}

extern "C" sf_status sf_vae_rms_norm_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, const void *x,
                                          const float *gamma, int silu, void *y, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_vae_rms_norm_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(P >= 0 && C >= 8 && C <= 4096 && C % 8 == 0 && gamma,
                    "sf_vae_rms_norm_cuda: bad shape P=%lld C=%lld (C a multiple of 8 up to 4096, gamma required)",
                    (long long)P, (long long)C);
    SF_CUDA_REQUIRE((((uintptr_t)x | (uintptr_t)y) & 15) == 0, "sf_vae_rms_norm_cuda: x, y must be 16-byte aligned");
    if (P == 0) return SF_OK;
    { /* (a block: the checks above jump past it to fail) */
        const int G = rms_group(C), ppw = 32 / G; /* lanes and pixels per warp */
        SF_LAUNCH(vae_rms_kernel, sf_cuda_blocks((P + ppw - 1) / ppw, 8), 256, 0, SF_CUDA_STREAM(ctx),
                  (const __nv_bfloat16 *)x, (__nv_bfloat16 *)y, P, (int)C, gamma, silu, (float)sqrt((double)C), G,
                  (uintptr_t)gamma % 16 == 0, norm_plain() != 0);
        CUDA_CHECK_LAUNCH("vae_rms_kernel");
    }
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- nearest 2× upsampling */

/* One thread per output (frame, 2H·2W pixel, 8-channel vector). */
static __global__ void vae_up2x_kernel(const __nv_bfloat16 *__restrict__ x, int64_t fstride, int64_t pstride,
                                       __nv_bfloat16 *__restrict__ y, int64_t n, int H, int W, int C) {
    const int nv = C / 8;
    const int64_t total = n * 4 * H * W * nv;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t v = i % nv, pix = i / nv;
        int64_t f = pix / (4LL * H * W), q = pix % (4LL * H * W);
        int64_t yy = q / (2 * W), xx = q % (2 * W);
        const bf16x8 *src = reinterpret_cast<const bf16x8 *>(x + f * fstride + ((yy / 2) * W + xx / 2) * pstride);
        reinterpret_cast<bf16x8 *>(y + pix * C)[v] = src[v];
    }
}

extern "C" sf_status sf_vae_upsample2x_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t H, int64_t W, int64_t C,
                                            const void *x, int64_t fstride, int64_t pstride, void *y, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_vae_upsample2x_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(n >= 0 && H > 0 && W > 0 && H <= 65536 && W <= 65536 && C >= 8 && C % 8 == 0 && pstride >= C &&
                        pstride % 8 == 0 && fstride % 8 == 0,
                    "sf_vae_upsample2x_cuda: bad shape n=%lld H=%lld W=%lld C=%lld pstride=%lld (C, strides multiples of 8)",
                    (long long)n, (long long)H, (long long)W, (long long)C, (long long)pstride);
    SF_CUDA_REQUIRE((((uintptr_t)x | (uintptr_t)y) & 15) == 0, "sf_vae_upsample2x_cuda: x, y must be 16-byte aligned");
    if (n == 0) return SF_OK;
    SF_LAUNCH(vae_up2x_kernel, sf_cuda_blocks(n * 4 * H * W * (C / 8), 256), 256, 0, SF_CUDA_STREAM(ctx),
              (const __nv_bfloat16 *)x, fstride, pstride, (__nv_bfloat16 *)y, n, (int)H, (int)W, (int)C);
    CUDA_CHECK_LAUNCH("vae_up2x_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- latent un-scaling */

/* One thread per (pixel, channel): reads channel-first, writes channels-last. */
static __global__ void vae_unscale_kernel(const float *__restrict__ z, const float *__restrict__ mr, int C, int64_t HW,
                                          int bf16, __nv_bfloat16 *__restrict__ y, int64_t ldy) {
    const int64_t total = HW * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t p = i / C;
        int c = (int)(i - p * C);
        float m = mr[c], r = mr[C + c], zz = z[(int64_t)c * HW + p];
        y[p * ldy + c] = sf_tobf(bf16 ? sf_round_bf(sf_round_bf(sf_round_bf(zz) / r) + m) : zz / r + m);
    }
}

extern "C" sf_status sf_vae_unscale_cuda(const sf_cuda_ctx *ctx, int64_t C, int64_t HW, const float *z, const float *mr,
                                         int bf16, void *y, int64_t ldy, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_vae_unscale_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(C > 0 && C <= 65536 && HW >= 0 && ldy >= C && z && mr,
                    "sf_vae_unscale_cuda: bad shape C=%lld HW=%lld ldy=%lld", (long long)C, (long long)HW,
                    (long long)ldy);
    if (HW == 0) return SF_OK;
    SF_LAUNCH(vae_unscale_kernel, sf_cuda_blocks(HW * C, 256), 256, 0, SF_CUDA_STREAM(ctx), z, mr, (int)C, HW, bf16,
              (__nv_bfloat16 *)y, ldy);
    CUDA_CHECK_LAUNCH("vae_unscale_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- bias / residual epilogue */

/* 8 channels per thread (C a multiple of 8, every pointer 16-byte aligned: the convolutions' outputs),
 * one 64-bit division per 8 values for the channel instead of a modulo per value. Same arithmetic and
 * order as the one-per-element kernel below: v = ⌊ (y + bias) + res ⌉. */
static __global__ void vae_bias_res8_kernel(bf16x8 *y, int64_t n8, int nvc, const bf16x8 *__restrict__ bias,
                                            const bf16x8 *__restrict__ res) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += (int64_t)gridDim.x * blockDim.x) {
        bf16x8 v = y[i];
        const int64_t p = i / nvc;
        const bf16x8 b = bias ? bias[i - p * nvc] : v, r = res ? res[i] : v;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            float f = sf_bf(v.h[e]);
            if (bias) f += sf_bf(b.h[e]);
            if (res) f += sf_bf(r.h[e]);
            v.h[e] = sf_tobf(f);
        }
        y[i] = v;
    }
}

static __global__ void vae_bias_res_kernel(__nv_bfloat16 *y, int64_t P, int C, const __nv_bfloat16 *__restrict__ bias,
                                           const __nv_bfloat16 *__restrict__ res) {
    const int64_t total = P * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = sf_bf(y[i]);
        if (bias) v += sf_bf(bias[i % C]);
        if (res) v += sf_bf(res[i]);
        y[i] = sf_tobf(v);
    }
}

extern "C" sf_status sf_vae_bias_res_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, void *y, const void *bias,
                                          const void *res, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_vae_bias_res_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(P >= 0 && C > 0 && C <= 65536, "sf_vae_bias_res_cuda: bad shape P=%lld C=%lld", (long long)P,
                    (long long)C);
    if (P == 0 || (!bias && !res)) return SF_OK;
    if (C % 8 == 0 && (((uintptr_t)y | (uintptr_t)bias | (uintptr_t)res) & 15) == 0) {
        SF_LAUNCH(vae_bias_res8_kernel, sf_cuda_blocks(P * C / 8, 256), 256, 0, SF_CUDA_STREAM(ctx), (bf16x8 *)y,
                  P * C / 8, (int)(C / 8), (const bf16x8 *)bias, (const bf16x8 *)res);
        CUDA_CHECK_LAUNCH("vae_bias_res8_kernel");
        return SF_OK;
    }
    SF_LAUNCH(vae_bias_res_kernel, sf_cuda_blocks(P * C, 256), 256, 0, SF_CUDA_STREAM(ctx), (__nv_bfloat16 *)y, P,
              (int)C, (const __nv_bfloat16 *)bias, (const __nv_bfloat16 *)res);
    CUDA_CHECK_LAUNCH("vae_bias_res_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- output pixels */

/* One thread per (frame, pixel): the 3 RGB channels; the mapping of sf_vae_to_pixels_cpu. */
static __global__ void vae_pixels_kernel(const __nv_bfloat16 *__restrict__ x, int64_t n, int64_t P, int64_t ldx,
                                         uint8_t *__restrict__ u8, float *__restrict__ video) {
    const int64_t total = n * P;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t f = i / P, p = i - f * P;
        for (int c = 0; c < 3; c++) {
            const float x0 = sf_bf(x[i * ldx + c]);
            float v = x0 < -1.0f ? -1.0f : (x0 > 1.0f ? 1.0f : x0);
            if (v != v) v = 0.0f; /* NaN: video keeps it, the pixel gets 0's value (as the CPU) */
            if (video) video[(f * 3 + c) * P + p] = x0 != x0 ? x0 : v;
            float q = v * 0.5f + 0.5f;
            q = q < 0.0f ? 0.0f : (q > 1.0f ? 1.0f : q);
            if (u8) u8[i * 3 + c] = (uint8_t)(255.0f * q);
        }
    }
}

extern "C" sf_status sf_vae_to_pixels_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t P, int64_t ldx, const void *x,
                                           uint8_t *u8, float *video, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_vae_to_pixels_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(n >= 0 && P >= 0 && ldx >= 3, "sf_vae_to_pixels_cuda: bad shape n=%lld P=%lld ldx=%lld",
                    (long long)n, (long long)P, (long long)ldx);
    if (n * P == 0 || (!u8 && !video)) return SF_OK;
    SF_LAUNCH(vae_pixels_kernel, sf_cuda_blocks(n * P, 256), 256, 0, SF_CUDA_STREAM(ctx), (const __nv_bfloat16 *)x, n,
              P, ldx, u8, video);
    CUDA_CHECK_LAUNCH("vae_pixels_kernel");
    return SF_OK;
fail:
    return st;
}
