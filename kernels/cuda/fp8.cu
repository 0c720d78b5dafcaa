/* fp8.cu — kernels/fp8_cuda.h: a bf16 activation quantized to float8 e4m3fn with a per-tensor scale
 * made on the device (the CPU reference: kernels/cpu/fp8.c, held to it bit for bit), and the FP8
 * linear layer through cuBLASLt (blaslt.c, sf_mm.fp8). Tested by tests/unit/test_fp8_cuda.c on the
 * CPU emulation (test_fp8_emu) and on a GPU (test_fp8_cuda).
 *
 * The quantization in four stream-ordered launches, no host wait (legal inside a CUDA graph capture):
 *   1. the scale's float zeroed (it holds the amax's bits meanwhile);
 *   2. each block's max |x| (fmaxf ignores NaN, as the CPU's `a > m` does), then atomicMax on the
 *      float's bits: for floats ≥ 0 the unsigned order of the bits is the numeric order;
 *   3. every block derives s = ⌊amax / 448⌉_bf16 from the amax itself and writes the codes
 *      e4m3(clamp(x / s, ±448)) (an f32 division, RNE with saturation: cvt.rn.satfinite.e4m3x2.f32);
 *   4. one thread turns the amax into the scale, in place (after 3: nothing reads the amax then). */
#include "cuda_common.cuh"
#include "fp8_cuda.h"

#ifndef SF_CUDA_EMU
#include <cuda_fp8.h>
#endif

#define FP8_MAX 448.0f

/* s from the amax's bits, as sf_fp8_scale: ⌊amax / 448⌉_bf16, 1 when that is 0 or not finite. */
__device__ __forceinline__ float fp8_scale_of(unsigned amax_bits) {
    const float s = sf_round_bf(__fdiv_rn(__uint_as_float(amax_bits), FP8_MAX));
    return (s > 0.0f && isfinite(s)) ? s : 1.0f;
}

/* One value's code, as sf_fp8_quantize_cpu: clamp (NaN passes) then e4m3 with saturation. */
__device__ __forceinline__ unsigned char fp8_code(float v, float s) {
    float q = __fdiv_rn(v, s);
    q = q > FP8_MAX ? FP8_MAX : q < -FP8_MAX ? -FP8_MAX : q;
    return (unsigned char)__nv_cvt_float_to_fp8(q, __NV_SATFINITE, __NV_E4M3);
}

/* Eight codes, one 8-byte store. */
struct alignas(8) fp8x8 {
    unsigned w[2];
};

static __global__ void fp8_zero_kernel(unsigned *amax) { *amax = 0u; }

/* vec: rows of 8-value groups read as one 16-byte load (cols, ldx multiples of 8, x 16-byte aligned). */
static __global__ void fp8_amax_kernel(const __nv_bfloat16 *__restrict__ x, int64_t rows, int64_t cols, int64_t ldx,
                                       int vec, unsigned *amax) {
    __shared__ float shm[32];
    float m = 0.0f;
    const int64_t per = vec ? cols / 8 : cols, total = rows * per;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / per, c = i - r * per;
        if (vec) {
            const bf16x8 t = *(const bf16x8 *)(x + r * ldx + c * 8);
#pragma unroll
            for (int e = 0; e < 8; e++) m = fmaxf(m, fabsf(sf_bf(t.h[e])));
        } else {
            m = fmaxf(m, fabsf(sf_bf(x[r * ldx + c])));
        }
    }
    m = sf_block_max(m, shm);
    if (threadIdx.x == 0 && m > 0.0f) atomicMax(amax, __float_as_uint(m));
}

/* codes (rows, cols) dense; vec as above, with codes 8-byte aligned: 8 codes in one 8-byte store. */
static __global__ void fp8_codes_kernel(const __nv_bfloat16 *__restrict__ x, int64_t rows, int64_t cols, int64_t ldx,
                                        int vec, const unsigned *__restrict__ amax, unsigned char *__restrict__ codes) {
    const float s = fp8_scale_of(*amax);
    const int64_t per = vec ? cols / 8 : cols, total = rows * per;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / per, c = i - r * per;
        if (vec) {
            const bf16x8 t = *(const bf16x8 *)(x + r * ldx + c * 8);
            fp8x8 o;
            o.w[0] = o.w[1] = 0u;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                o.w[0] |= (unsigned)fp8_code(sf_bf(t.h[e]), s) << (8 * e);
                o.w[1] |= (unsigned)fp8_code(sf_bf(t.h[4 + e]), s) << (8 * e);
            }
            *(fp8x8 *)(codes + r * cols + c * 8) = o; /* little-endian: byte e is column e */
        } else {
            codes[r * cols + c] = fp8_code(sf_bf(x[r * ldx + c]), s);
        }
    }
}

static __global__ void fp8_scale_kernel(unsigned *amax_then_scale) {
    const float s = fp8_scale_of(*amax_then_scale);
    *(float *)amax_then_scale = s;
}

extern "C" sf_status sf_fp8_quantize_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t cols, const void *x,
                                          int64_t ldx, void *codes, float *scale, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_fp8_quantize_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(rows >= 0 && cols >= 1 && ldx >= cols && x && codes && scale,
                    "sf_fp8_quantize_cuda: bad arguments rows=%lld cols=%lld ldx=%lld", (long long)rows,
                    (long long)cols, (long long)ldx);
    {
        const int vec = cols % 8 == 0 && ldx % 8 == 0 && (uintptr_t)x % 16 == 0 && (uintptr_t)codes % 8 == 0;
        const int threads = 256;
        const int64_t items = rows * (vec ? cols / 8 : cols);
        /* a few blocks per SM, grid-stride beyond: one atomic per block on one address */
        unsigned blocks = sf_cuda_blocks(items, threads);
        const unsigned cap = (unsigned)(ctx->sms > 0 ? ctx->sms : 1) * 8u;
        if (blocks > cap) blocks = cap;
        unsigned *amax = (unsigned *)scale;
        cudaStream_t s = SF_CUDA_STREAM(ctx);
        SF_LAUNCH(fp8_zero_kernel, 1, 1, 0, s, amax);
        CUDA_CHECK_LAUNCH("fp8_zero_kernel");
        if (items > 0) {
            SF_LAUNCH(fp8_amax_kernel, blocks, threads, 0, s, (const __nv_bfloat16 *)x, rows, cols, ldx, vec, amax);
            CUDA_CHECK_LAUNCH("fp8_amax_kernel");
            SF_LAUNCH(fp8_codes_kernel, sf_cuda_blocks(items, threads), threads, 0, s, (const __nv_bfloat16 *)x, rows,
                      cols, ldx, vec, (const unsigned *)amax, (unsigned char *)codes);
            CUDA_CHECK_LAUNCH("fp8_codes_kernel");
        }
        SF_LAUNCH(fp8_scale_kernel, 1, 1, 0, s, amax);
        CUDA_CHECK_LAUNCH("fp8_scale_kernel");
    }
    return SF_OK;
fail:
    return st;
}

/* Row-major y (M, N) = x8 (M, K) · w8ᵀ as column-major yᵀ (N, M) = op(A = w8, T) · op(B = x8, N): the only
 * FP8 layout cuBLASLt has (TN), the same mapping as gemm.cu's linear. */
extern "C" sf_status sf_linear_fp8_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x8,
                                        const float *sx, const void *w8, const float *sw, const void *bias, int gelu,
                                        void *y, int64_t ldy, sf_err *err) {
    sf_status st = SF_OK;
    sf_mm m;
    SF_CUDA_REQUIRE(ctx && ctx->stream && ctx->lt, "sf_linear_fp8_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(M >= 0 && N > 0 && K > 0 && N % 16 == 0 && K % 16 == 0 && ldy >= N && sx && sw,
                    "sf_linear_fp8_cuda: bad shape M=%lld N=%lld K=%lld ldy=%lld (N, K multiples of 16)", (long long)M,
                    (long long)N, (long long)K, (long long)ldy);
    if (M == 0) return SF_OK;
    m = sf_mm_linear(M, N, K, x8, K, w8, SF_U8, y, SF_BF16, ldy);
    m.bias = bias, m.gelu = gelu;
    m.fp8 = 1, m.a_scale = sw, m.b_scale = sx;
    SF_CHECK_STATUS(sf_blaslt_matmul(SF_CUDA_LT(ctx), &m, err));
    return SF_OK;
fail:
    return st;
}
