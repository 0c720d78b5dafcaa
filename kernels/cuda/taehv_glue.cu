/* taehv_glue.cu — kernels/taehv_ops_cuda.h: the TAEHV decoder's memory-bound GPU kernels (input clamp +
 * transpose, ReLU, a MemBlock's concatenation with its memory), channels-last bf16. CPU references in
 * kernels/taehv_ops.h (channel-first f32). Compiled by nvcc and, for tests, by g++ on the CPU emulation
 * (kernels/cuda/emu/cuda_emu.h, Makefile EMU_SRC). Tested by tests/unit/test_taehv_glue.c (each kernel
 * against its reference) and through the whole decoder: test_taehv_emu / test_taehv_cuda. */
#include "cuda_common.cuh"
#include "taehv_ops_cuda.h"

/* Eight raw bf16 values, one 16-byte access: ReLU and the copies work on the bits (NaN payloads and −0
 * pass through untouched, as the CPU keeps them). */
struct alignas(16) u16x8 {
    uint16_t v[8];
};

/* ReLU on a bf16 bit pattern: negative and non-zero (0x8001 .. 0xFF80, −inf included) → +0; +values,
 * ±0 and NaN (0x7F81.. / 0xFF81..) unchanged — sf_relu_cpu's `x < 0 → 0`. */
__device__ __forceinline__ uint16_t relu_bits(uint16_t u) { return u > 0x8000u && u <= 0xFF80u ? (uint16_t)0 : u; }

/* ---------------------------------------------------------------- input clamp */

/* One thread per output element (pixel, channel < ldy): reads channel-first, writes channels-last. */
static __global__ void taehv_clamp_kernel(const float *__restrict__ z, int C, int64_t HW, __nv_bfloat16 *__restrict__ y,
                                          int64_t ldy) {
    const int64_t total = HW * ldy;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t p = i / ldy, c = i - p * ldy;
        float v = 0.0f;
        if (c < C) v = tanhf(z[c * HW + p] / 3.0f) * 3.0f; /* the CPU's f32 steps: quotient, tanhf, product */
        y[i] = sf_tobf(v);
    }
}

extern "C" sf_status sf_taehv_clamp_cuda(const sf_cuda_ctx *ctx, int64_t C, int64_t HW, const float *z, void *y,
                                         int64_t ldy, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_taehv_clamp_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(C > 0 && C <= 65536 && HW >= 0 && ldy >= C && ldy <= 65536 && z && y,
                    "sf_taehv_clamp_cuda: bad shape C=%lld HW=%lld ldy=%lld", (long long)C, (long long)HW,
                    (long long)ldy);
    if (HW == 0) return SF_OK;
    SF_LAUNCH(taehv_clamp_kernel, sf_cuda_blocks(HW * ldy, 256), 256, 0, SF_CUDA_STREAM(ctx), z, (int)C, HW,
              (__nv_bfloat16 *)y, ldy);
    CUDA_CHECK_LAUNCH("taehv_clamp_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- ReLU */

static __global__ void taehv_relu8_kernel(u16x8 *x, int64_t n8) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += (int64_t)gridDim.x * blockDim.x) {
        u16x8 v = x[i];
#pragma unroll
        for (int e = 0; e < 8; e++) v.v[e] = relu_bits(v.v[e]);
        x[i] = v;
    }
}

static __global__ void taehv_relu_kernel(uint16_t *x, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = relu_bits(x[i]);
}

extern "C" sf_status sf_relu_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, void *x, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_relu_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(P >= 0 && C > 0 && (P == 0 || x), "sf_relu_cuda: bad shape P=%lld C=%lld", (long long)P, (long long)C);
    if (P == 0) return SF_OK;
    {
        const int64_t n = P * C;
        if (n % 8 == 0 && (uintptr_t)x % 16 == 0) {
            SF_LAUNCH(taehv_relu8_kernel, sf_cuda_blocks(n / 8, 256), 256, 0, SF_CUDA_STREAM(ctx), (u16x8 *)x, n / 8);
            CUDA_CHECK_LAUNCH("taehv_relu8_kernel");
        } else {
            SF_LAUNCH(taehv_relu_kernel, sf_cuda_blocks(n, 256), 256, 0, SF_CUDA_STREAM(ctx), (uint16_t *)x, n);
            CUDA_CHECK_LAUNCH("taehv_relu_kernel");
        }
    }
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- MemBlock cat + roll */

/* Per (pixel, element): cat's two halves, then the memory; T is one bf16 value, or 8 of them (u16x8) when
 * C and the pointers allow 16-byte loads (nv = C / 8 then). Each thread reads past[i] before it writes it, and
 * no other thread touches i: in place without a hazard. */
template <typename T>
static __global__ void taehv_cat_roll_kernel(const T *__restrict__ x, T *past, T *__restrict__ cat, int64_t P,
                                             int64_t nv) {
    const int64_t total = P * nv;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t p = i / nv, v = i - p * nv;
        const T a = x[i], b = past[i];
        cat[p * 2 * nv + v] = a;
        cat[p * 2 * nv + nv + v] = b;
        past[i] = a;
    }
}

extern "C" sf_status sf_taehv_cat_roll_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, const void *x, void *past,
                                            void *cat, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_taehv_cat_roll_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(P >= 0 && C > 0 && C <= 65536 && (P == 0 || (x && past && cat)),
                    "sf_taehv_cat_roll_cuda: bad shape P=%lld C=%lld", (long long)P, (long long)C);
    {
        /* cat [cat, cat + 2PC) must not overlap x or past (the kernel reads them while it writes cat) */
        const uintptr_t c0 = (uintptr_t)cat, c1 = c0 + (uintptr_t)(2 * P * C * 2), x0 = (uintptr_t)x,
                        p0 = (uintptr_t)past, n = (uintptr_t)(P * C * 2);
        SF_CUDA_REQUIRE(P == 0 || ((x0 + n <= c0 || x0 >= c1) && (p0 + n <= c0 || p0 >= c1)),
                        "sf_taehv_cat_roll_cuda: cat overlaps x or past");
    }
    if (P == 0) return SF_OK;
    if (C % 8 == 0 && (((uintptr_t)x | (uintptr_t)past | (uintptr_t)cat) & 15) == 0) {
        SF_LAUNCH_NAMED("taehv_cat_roll8_kernel", taehv_cat_roll_kernel<u16x8>, sf_cuda_blocks(P * (C / 8), 256), 256, 0,
                        SF_CUDA_STREAM(ctx), (const u16x8 *)x, (u16x8 *)past, (u16x8 *)cat, P, C / 8);
        CUDA_CHECK_LAUNCH("taehv_cat_roll8_kernel");
        return SF_OK;
    }
    SF_LAUNCH_NAMED("taehv_cat_roll_kernel", taehv_cat_roll_kernel<uint16_t>, sf_cuda_blocks(P * C, 256), 256, 0,
                    SF_CUDA_STREAM(ctx), (const uint16_t *)x, (uint16_t *)past, (uint16_t *)cat, P, C);
    CUDA_CHECK_LAUNCH("taehv_cat_roll_kernel");
    return SF_OK;
fail:
    return st;
}
