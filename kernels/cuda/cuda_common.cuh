/* cuda_common.cuh — shared by the kernels/cuda .cu files: error-check macros that turn CUDA / cuBLAS
 * failures into sf_status + sf_err (library code never exits), launch-error checks, bf16 helpers
 * and a block reduction. The context and memory helpers declared in kernels/cuda_ops.h are
 * implemented in cuda_common.cu. Compiled, never executed (no GPU yet); tested by
 * tests/unit/test_cuda_kernels.c on a GPU (tests/gpu/check.sh). */
#ifndef SF_CUDA_COMMON_CUH
#define SF_CUDA_COMMON_CUH

#include "blaslt_cuda.h"
#include "cuda_ops.h"

#ifdef SF_CUDA_EMU /* host emulation for the unit tests (kernels/cuda/emu/cuda_emu.h), plain g++ */
#include "cuda/emu/cuda_emu.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif
#include <limits.h>
#include <string.h>

static inline int sf_cuda_current_device(void) {
    int d = -1;
    if (cudaGetDevice(&d) != cudaSuccess) d = -1;
    return d;
}

/* Both macros expect `sf_status st` and `sf_err *err` in scope and a `fail:` label: on error
 * they fill err with statement, function, file:line and device, set st and jump to fail. */
#define CUDA_CHECK(stmt)                                                                               \
    do {                                                                                               \
        cudaError_t e_ = (stmt);                                                                       \
        if (e_ != cudaSuccess) {                                                                       \
            st = sf_fail(err, SF_E_DEVICE, "%s: %s (in %s at %s:%d, cuda:%d)", #stmt,                  \
                         cudaGetErrorString(e_), __func__, __FILE__, __LINE__, sf_cuda_current_device()); \
            goto fail;                                                                                 \
        }                                                                                              \
    } while (0)

/* A library call returning sf_status (cuBLASLt, cuDNN wrappers): keep its message. */
#define SF_CHECK_STATUS(stmt)                                                                          \
    do {                                                                                               \
        if ((st = (stmt)) != SF_OK) goto fail;                                                         \
    } while (0)

/* After every kernel launch: configuration / launch errors (execution errors show at sync). */
#define CUDA_CHECK_LAUNCH(kname)                                                                       \
    do {                                                                                               \
        cudaError_t e_ = cudaGetLastError();                                                           \
        if (e_ != cudaSuccess) {                                                                       \
            st = sf_fail(err, SF_E_DEVICE, "launch of %s: %s (in %s at %s:%d, cuda:%d)", kname,        \
                         cudaGetErrorString(e_), __func__, __FILE__, __LINE__, sf_cuda_current_device()); \
            goto fail;                                                                                 \
        }                                                                                              \
    } while (0)

/* Every kernel launch goes through SF_LAUNCH so that the CPU emulation layer (tests) can run the
 * same kernel bodies on the host: SF_LAUNCH(kernel, grid, block, shared_bytes, stream, args...). */
#ifndef SF_LAUNCH
#define SF_LAUNCH(kern, grid, block, smem, stream, ...) kern<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#endif
/* The same through a kernel pointer, with the name the emulation reports (and counts launches by). */
#ifndef SF_LAUNCH_NAMED
#define SF_LAUNCH_NAMED(name, kern, grid, block, smem, stream, ...) kern<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#endif

#define SF_CUDA_STREAM(ctx) ((cudaStream_t)(ctx)->stream)
/* The largest pitch cudaMemcpy2D* takes (cudaDevAttrMaxPitch: 2^31 − 1 bytes on every current GPU). */
#define SF_CUDA_MAX_PITCH ((size_t)2147483647)
#define SF_CUDA_LT(ctx) ((sf_blaslt *)(ctx)->lt)

/* Argument checks shared by the ops (before anything is enqueued). */
#define SF_CUDA_REQUIRE(cond, ...)                                                                     \
    do {                                                                                               \
        if (!(cond)) {                                                                                 \
            st = sf_fail(err, SF_E_ARG, __VA_ARGS__);                                                  \
            goto fail;                                                                                 \
        }                                                                                              \
    } while (0)

/* Dynamic shared memory: SF_DYN_SHARED(float, smem); declares `smem` (the emulation cannot
 * express `extern __shared__`). */
#ifndef SF_DYN_SHARED
#define SF_DYN_SHARED(type, name) extern __shared__ type name[]
#endif

/* Blocks for a 1-D elementwise launch over n items (grid-stride loops cover the rest). The
 * emulation lowers the cap at run time so that unit tests reach the grid-stride wrap. */
#ifndef SF_CUDA_MAX_BLOCKS
#define SF_CUDA_MAX_BLOCKS (65535LL * 16)
#endif
static inline unsigned sf_cuda_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > SF_CUDA_MAX_BLOCKS) b = SF_CUDA_MAX_BLOCKS;
    return (unsigned)b;
}

__device__ __forceinline__ float sf_bf(__nv_bfloat16 v) { return __bfloat162float(v); }
/* Round-to-nearest-even fp32 → bf16, the reference's ⌊·⌉. */
__device__ __forceinline__ __nv_bfloat16 sf_tobf(float v) { return __float2bfloat16_rn(v); }
__device__ __forceinline__ float sf_round_bf(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

/* Sum of v over the block (blockDim.x a multiple of 32, ≤ 1024); every thread gets the result.
 * `shm` holds ≥ 32 floats; the function syncs before reusing it, so it may be called repeatedly. */
__device__ __forceinline__ float sf_block_sum(float v, float *shm) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* shm may still be read from a previous call */
    if (lane == 0) shm[wid] = v;
    __syncthreads();
    v = lane < nw ? shm[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum of v over the block in double, in a fixed tree order (blockDim.x a power of two); every thread gets it.
 * `sh` holds blockDim.x doubles; the function syncs before reusing it. The tap and kv-compress reductions, whose
 * fp64 sums their CPU references match to ~1e-16. */
__device__ __forceinline__ double sf_block_sum_f64(double v, double *sh) {
    __syncthreads(); /* sh may still be read from a previous call */
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int o = (int)blockDim.x / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    return sh[0];
}

/* Eight bf16 values, one 16-byte load or store (rows of the fused kernels, vectorised elementwise ops). */
struct alignas(16) bf16x8 {
    __nv_bfloat16 h[8];
};

/* Four f32 / two f64 values in one 16-byte load (per-column vectors of the row kernels). */
struct alignas(16) f32x4 {
    float v[4];
};
struct alignas(16) f64x2 {
    double v[2];
};

/* o[0..8) = p[0..8): two 16-byte loads when vec (p must then be 16-byte aligned: the launch checks; the
 * emulation faults otherwise and counts the loads, sf_emu_vector_loads), else eight scalar loads. Where a
 * lane's 8 columns are contiguous and lanes follow each other, the two loads coalesce across the warp;
 * eight scalar ones each touch 32 sectors. */
__device__ __forceinline__ void sf_load8f(const float *__restrict__ p, bool vec, float (&o)[8]) {
    if (vec) {
#ifdef SF_CUDA_EMU
        if ((uintptr_t)p % 16) sf_emu::thread_fault("sf_load8f: %p is not 16-byte aligned", (const void *)p);
        sf_emu_count_vector_load();
#endif
        const f32x4 a = ((const f32x4 *)p)[0], b = ((const f32x4 *)p)[1];
#pragma unroll
        for (int e = 0; e < 4; e++) o[e] = a.v[e], o[4 + e] = b.v[e];
    } else {
#pragma unroll
        for (int e = 0; e < 8; e++) o[e] = p[e];
    }
}

/* t[0], t[1] (a RoPE table's cos, sin): one 16-byte load when vec (t 16-byte aligned, as sf_load8f),
 * else two. */
__device__ __forceinline__ void sf_load2d(const double *__restrict__ t, bool vec, double &t0, double &t1) {
    if (vec) {
#ifdef SF_CUDA_EMU
        if ((uintptr_t)t % 16) sf_emu::thread_fault("sf_load2d: %p is not 16-byte aligned", (const void *)t);
        sf_emu_count_vector_load();
#endif
        const f64x2 tt = *(const f64x2 *)t;
        t0 = tt.v[0], t1 = tt.v[1];
    } else {
        t0 = t[0], t1 = t[1];
    }
}

/* Sum of v over the warp (all 32 lanes active); every lane gets the result. */
__device__ __forceinline__ float sf_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Maximum of v over the block (same contract as sf_block_sum). */
__device__ __forceinline__ float sf_block_max(float v, float *shm) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) shm[wid] = v;
    __syncthreads();
    v = lane < nw ? shm[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Warp-level matrix instructions for the hand-written tensor-core kernels (attn_mass.cu): bf16
 * mma.sync m16n8k16 with fp32 accumulators, ldmatrix x4 (plain and transposed) from shared memory,
 * cp.async 16-byte copies global → shared with zero fill. Operand layouts: the PTX ISA's, restated in
 * cuda_emu.h, whose emulation of each (a warp barrier) the emulated tests run. */
#ifdef SF_CUDA_EMU
#define sf_mma_bf16_16816(d, a, b) sf_emu_mma_16816((d), (a), (b), __FILE__, __LINE__)
#define sf_ldsm_x4(r, p) sf_emu_ldsm_x4((r), (p), false, __FILE__, __LINE__)
#define sf_ldsm_x4_t(r, p) sf_emu_ldsm_x4((r), (p), true, __FILE__, __LINE__)
static inline void sf_cp_async16(void *dst, const void *src, int src_bytes, const char *file = __builtin_FILE(),
                                 int line = __builtin_LINE()) {
    sf_emu::cp_async16(dst, src, src_bytes, file, line);
}
static inline void sf_cp_async_commit(void) { sf_emu::cp_async_commit(); }
template <int N>
static inline void sf_cp_async_wait(void) {
    sf_emu::cp_async_wait(N);
}
#else
__device__ __forceinline__ void sf_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void sf_ldsm_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"((unsigned)__cvta_generic_to_shared(p))
                 : "memory");
}
__device__ __forceinline__ void sf_ldsm_x4_t(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"((unsigned)__cvta_generic_to_shared(p))
                 : "memory");
}
__device__ __forceinline__ void sf_cp_async16(void *dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"((unsigned)__cvta_generic_to_shared(dst)),
                 "l"(src), "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void sf_cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void sf_cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
#endif
/* Two floats → one register of two bf16 (round to nearest even; lo in the lower half). */
__device__ __forceinline__ uint32_t sf_pack_bf16x2(float lo, float hi) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16;
}

/* The explicit attention's two cuBLASLt products per query chunk (attn_blas.cu), around the caller's
 * softmax step: per head, S (rows, Lk) = alpha·Q·Kᵀ in f32 with rows lds apart (lds ≥ Lk), then
 * softmax(cb, r0, rows, S, P) fills P (bf16, same layout), then O = P·V in bf16. Used by the DiT's
 * sf_attention_blas_cuda and umT5's sf_t5_attention_cuda (t5_glue.cu). */
typedef sf_status (*sf_attn_softmax_fn)(void *cb, int64_t r0, int64_t rows, float *S, void *P, sf_err *err);
sf_status sf_attention_chunks_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int64_t lds, int H, int d,
                                   const void *q, int64_t ldq, const void *k, const void *v, int64_t ldk, void *o,
                                   int64_t ldo, float alpha, float *S, void *P, int64_t chunk, sf_attn_softmax_fn softmax,
                                   void *cb, sf_err *err);

#endif
