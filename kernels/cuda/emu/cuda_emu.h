/* cuda_emu.h — a CPU emulation of the CUDA subset the project's kernels use, so that the SAME .cu
 * files (kernels/cuda/NAME.cu) compile with plain g++ (-x c++ -DSF_CUDA_EMU; cuda_common.cuh then
 * includes this header instead of the CUDA ones) and run on the host. No CUDA installation is
 * needed. Scheduler and runtime: cuda_emu.cc. Tested by tests/unit/test_cuda_emu.c, which holds
 * every emulated kernel to its CPU reference and checks the emulator's own rules (emu_selftest.cu).
 *
 * How a launch runs: SF_LAUNCH(kernel, grid, block, smem, stream, args...) converts the arguments
 * to the kernel's parameter types once (as a <<<>>> call does), then runs the blocks one after
 * another (x fastest, then y, z), and inside a block every thread as a coroutine (ucontext, one
 * preallocated stack per thread slot, reused across launches; a PROT_NONE page under each stack).
 * A thread runs until it finishes or reaches a barrier; the scheduler resumes the others in
 * thread order and releases a barrier when every thread it names has arrived.
 *
 * Faithful:
 *  - indexing: threadIdx/blockIdx/blockDim/gridDim are those of the running coroutine (1-3 D);
 *  - arithmetic: IEEE fp32/fp64 as written (compiled with -ffp-contract=off), bf16 conversions
 *    round to nearest even bit for bit like the GPU's cvt.rn.bf16.f32 (NaN → 0x7FFF);
 *  - __syncthreads: a real block barrier. Fails the launch (cudaErrorLaunchFailure, message on
 *    stderr and in cudaGetErrorString) when threads wait at different __syncthreads calls, when a
 *    thread exits while others wait (divergent barrier), or when the block deadlocks;
 *  - warp intrinsics (__shfl_sync/_up/_down/_xor, __ballot/__any/__all_sync, __syncwarp): a
 *    barrier over the lanes named in the mask (lanes that do not exist or have exited are not
 *    waited for), values exchanged after all arrived. Fails on a lane not in its own mask, lanes
 *    of one group with different masks or intrinsics, and a shuffle reading a lane that does not
 *    take part (the GPU returns garbage there);
 *  - __shared__ memory: one copy per block (blocks run one at a time), filled with 0xFF bytes
 *    (NaN for f32/bf16, -1 for integers) before every block, so a read of shared memory no thread
 *    of this block wrote shows up as NaN. Dynamic shared memory likewise, declared with
 *    SF_DYN_SHARED(type, name) (cuda_common.cuh) instead of `extern __shared__ type name[]`,
 *    which does not compile here;
 *  - device memory: cudaMalloc is host memory (ASan-visible), registered: a kernel argument or a
 *    cudaMemcpy side that must be device memory but is not fails (a host pointer on the GPU faults);
 *    filled with 0xFF bytes when allocated, like shared memory, since a GPU's fresh allocation holds
 *    an earlier buffer's leftovers: a read of device memory nothing wrote shows up as NaN;
 *  - launch limits: block ≤ 1024 threads (x, y ≤ 1024, z ≤ 64), grid y, z ≤ 65535, dynamic
 *    shared memory ≤ 227 KiB (cudaErrorInvalidConfiguration, from cudaGetLastError);
 *  - streams: every operation is synchronous, so anything enqueued is done at return — except
 *    while a stream is captured into a CUDA graph (see "stream capture and graphs" below), and with
 *    SF_EMU_ASYNC=1 (see "Asynchrony");
 *  - mbarriers and TMA tile loads (tma.cuh): see "mbarriers and TMA" below; a thread waiting on an
 *    mbarrier yields until some phase completes, so producer / consumer warpgroups interleave.
 * Asynchrony (SF_EMU_ASYNC=1): the GPU as if it were infinitely slow. Kernels, copies, memsets, library
 * calls and graph launches enqueued on a stream are queued, not run, and run in enqueue order only when
 * the host waits for them: a stream or device synchronisation, an event synchronisation (up to that
 * event's record), a synchronous copy or memset, cudaFree / cudaFreeHost (they synchronise on a GPU), an
 * async copy from or to pageable memory (the driver makes it synchronous). So an async copy from pinned
 * memory reads its source when it runs — a host that refills a staging buffer before the copy that
 * reads it has run sends the new data — and an async copy into pinned memory lands when it runs, its
 * destination poisoned (0xFF) until then: a host that reads it without waiting for its event reads the
 * poison. Kernel faults surface at the wait, as on a GPU. With it off (the default) nothing changes.
 * Order (SF_EMU_ORDER, sf_emu_set_order): the threads of a block run one after another between
 * barriers, and the blocks one after another, in index order ("forward", the default), "reverse", or
 * "shuffle[:SEED]" (a seeded permutation of the threads for every block and of the blocks for every
 * launch). A correct kernel gives the same result in every order; one that reads what another thread
 * wrote without a barrier between, or what another block writes, finds the poison or an old value in
 * some order: tests/run.sh runs the emulated kernel tests reversed and shuffled too.
 * Blind to:
 *  - races that no order shows: threads run whole stretches between barriers, never interleaved
 *    inside one, so a race between two writes of the same value, or one hidden by the tests'
 *    tolerances, goes unnoticed (compute-sanitizer racecheck on the GPU finds those);
 *  - the memory model, fences (except fence.proxy.async between cp.async and wgmma: async_emu.cc),
 *    atomics contention (atomics are plain read-modify-writes here, which is exact because coroutines
 *    never switch inside one), timing and occupancy;
 *  - nvcc's FMA contraction (-fmad=true): the GPU may compute a·b + c with one rounding where the
 *    emulation rounds twice; kernels that must match bit for bit round explicitly (sf_round_bf);
 *  - approximate intrinsics: rsqrtf, __expf, __logf, __fdividef are computed exactly here
 *    (the GPU's are within a few ulps); out-of-bounds __shared__ accesses (no ASan redzones there);
 *  - cuBLASLt and cuDNN: sf_blaslt_matmul (libs_emu.cc), the conv3d (conv_emu.cc) and the attention
 *    (sdpa_emu.cc) are plain fp32-accumulating loops: they test the wrappers' and callers' layouts,
 *    strides, batching, epilogues and plan preparation, not the libraries;
 *  - asynchrony of TMA and cp.async, by default: a copy lands when issued, so an mbarrier wait that
 *    returns early (wrong parity, a missing wait) or a cp.async.wait_group that leaves the group in
 *    flight still reads the right data — unless SF_EMU_COPIES_LATE=1 (async_emu.cc), where a copy
 *    lands only at the wait that needs it, and such a wait finds the old contents (tests/emu_perturbed.sh
 *    runs the attention kernels so). The default keeps the other
 *    extreme, which shows a stage released to the producer before its wgmma was waited for. (wgmma
 *    products are asynchronous here as on the GPU: wgmma_emu.cc.)
 * Single host thread: one launch at a time (a nested or concurrent launch fails loudly). */
#ifndef SF_CUDA_EMU_H
#define SF_CUDA_EMU_H

#ifndef __cplusplus
#error "cuda_emu.h is C++: compile the .cu file with g++ -x c++ -DSF_CUDA_EMU"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "sf_emu.h"

/* ---- qualifiers ---------------------------------------------------------------------------- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __constant__
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
/* Block-scope statics in one named section: the scheduler poisons [__start, __stop) per block. */
#define __shared__ static __attribute__((section("sf_emu_shared"), aligned(16)))
#define SF_DYN_SHARED(type, name) type *name = static_cast<type *>(sf_emu::dyn_shared())
#define SF_CUDA_MAX_BLOCKS (sf_emu_max_blocks())

/* ---- index types and the running coroutine's indices --------------------------------------- */
struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
static constexpr int warpSize = 32;

/* ---- runtime types ------------------------------------------------------------------------- */
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidPitchValue = 12,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorIllegalState = 401,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorCapturedEvent = 907,
    cudaErrorGraphExecUpdateFailure = 910,
};
typedef enum cudaError cudaError_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s = 0);
/* The emulated device: sm_90 named "sf_emu (CPU emulation)", 1 GiB. */
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin;
    int major, minor, multiProcessorCount, warpSize, maxThreadsPerBlock, maxThreadsPerMultiProcessor;
};
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
template <typename T>
static inline cudaError_t cudaMalloc(T **p, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int byte, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int byte, size_t bytes, cudaStream_t s = 0);
namespace sf_emu {
/* cudaFuncAttributeMaxDynamicSharedMemorySize per kernel: as on a GPU, a launch asking for more than
 * 48 KiB of dynamic shared memory fails unless its kernel was granted that much (launch()). */
cudaError_t set_max_dyn_smem(const void *kernel, int bytes);
bool dyn_smem_ok(const char *kname, const void *kernel, size_t smem);
} // namespace sf_emu
template <typename F>
static inline cudaError_t cudaFuncSetAttribute(F *f, cudaFuncAttribute attr, int v) {
    return attr == cudaFuncAttributeMaxDynamicSharedMemorySize ? sf_emu::set_max_dyn_smem((const void *)f, v) : cudaSuccess;
}

/* ---- stream capture and graphs (graph_emu.cc) ------------------------------------------------
 * One capture at a time. While a stream captures, kernel launches, cudaMemcpyAsync / cudaMemsetAsync
 * and the cuBLASLt stand-in on it are recorded instead of run (arguments checked and copied then, as
 * a launch does); a graph launch runs the recorded work in order. As on a GPU, a synchronising call
 * while a capture is active (stream / event / device synchronisation, cudaMemcpy, cudaMemset,
 * cudaMalloc, cudaFree, cudaMallocHost, cudaFreeHost) fails with cudaErrorStreamCaptureUnsupported
 * and invalidates the capture; so does a captured copy from or to pageable host memory (a replay
 * would read or write that memory long after the caller moved on: only pinned buffers are recorded) (so does work on another
 * stream, which a GPU would run unordered beside the capture: one stream is captured here, the rest
 * is refused rather than run early), and cudaStreamEndCapture
 * then returns cudaErrorStreamCaptureInvalidated and no graph. cudaGraphExecUpdate succeeds when the
 * new graph has the same sequence of node kinds (kernel / memcpy / memset / matmul), else it returns
 * cudaErrorGraphExecUpdateFailure (the executable graph keeps its old work). */
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
};
enum cudaGraphExecUpdateResult {
    cudaGraphExecUpdateSuccess = 0,
    cudaGraphExecUpdateError = 1,
    cudaGraphExecUpdateErrorTopologyChanged = 2,
};
struct cudaGraphExecUpdateResultInfo {
    cudaGraphExecUpdateResult result;
    void *errorNode, *errorFromNode;
};
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t g, cudaGraphExecUpdateResultInfo *info);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

/* ---- cuBLASLt: kernels/blaslt_cuda.h's sf_blaslt_* are implemented by cuda_emu.cc as plain
 * fp32-accumulating loops (they test the wrappers' layout mapping, not cuBLASLt). */
#include "blaslt_cuda.h"

/* ---- bf16 ---------------------------------------------------------------------------------- */
static inline unsigned short sf_emu_f2bf_bits(float f) { /* RNE; NaN → canonical 0x7FFF (cvt.rn.bf16.f32) */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
static inline float sf_emu_bf_bits2f(unsigned short h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : __x(sf_emu_f2bf_bits(f)) {}
    __nv_bfloat16(double d);
    operator float() const { return sf_emu_bf_bits2f(__x); }
};
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    __nv_bfloat16 r;
    r.__x = sf_emu_f2bf_bits(f);
    return r;
}
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
static inline float __bfloat162float(__nv_bfloat16 h) { return sf_emu_bf_bits2f(h.__x); }
/* double → bf16 with ONE rounding (like cvt.rn.bf16.f64): round to odd into fp32 (24 ≥ 8 + 2
 * bits, so no double rounding), then to nearest even into bf16. */
static inline __nv_bfloat16 __double2bfloat16(double d) {
    __nv_bfloat16 r;
    if (d != d) {
        r.__x = 0x7fffu;
        return r;
    }
    float f = (float)d;
    if ((double)f != d) {
        if (fabs((double)f) > fabs(d)) f = nextafterf(f, 0.0f);
        uint32_t u;
        memcpy(&u, &f, 4);
        u |= 1u;
        memcpy(&f, &u, 4);
    }
    r.__x = sf_emu_f2bf_bits(f);
    return r;
}
inline __nv_bfloat16::__nv_bfloat16(double d) : __x(__double2bfloat16(d).__x) {}
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
/* f16: only the conversion the kernels use; round to nearest even by the project's own
 * sf_f32_to_f16 (common/tensor.h; NaN gives 0x7e00 where the GPU gives 0x7fff). */
extern "C" uint16_t sf_f32_to_f16(float f);
struct __half {
    unsigned short __x;
};
static inline __half __float2half_rn(float f) {
    __half r;
    r.__x = sf_f32_to_f16(f);
    return r;
}
static inline unsigned short __half_as_ushort(__half h) { return h.__x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 r;
    r.__x = u;
    return r;
}

/* ---- float8 (cuda_fp8.h): the one conversion the kernels use, f32 → e4m3fn with saturation -------
 * What cvt.rn.satfinite.e4m3x2.f32 does, from the float's bits (independently of the CPU reference
 * sf_fp8_e4m3_from_f32, which the tests hold it to): round to nearest even at the 3-bit mantissa (2^-9
 * steps below 2^-6), |x| past 448 (and ±inf) → ±448, NaN → 0x7F, the sign kept (-0 → 0x80). */
typedef unsigned char __nv_fp8_storage_t;
enum __nv_saturation_t { __NV_NOSAT = 0, __NV_SATFINITE = 1 };
enum __nv_fp8_interpretation_t { __NV_E4M3 = 0, __NV_E5M2 = 1 };
static inline __nv_fp8_storage_t __nv_cvt_float_to_fp8(float x, __nv_saturation_t sat, __nv_fp8_interpretation_t fmt) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if (fmt != __NV_E4M3 || sat != __NV_SATFINITE) abort(); /* not emulated: no kernel uses it */
    const uint32_t sign = (u >> 24) & 0x80u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7f;
    if (a >= 0x3c800000u) { /* ≥ 2^-6: normal e4m3; RNE on the 20 low mantissa bits (carries into the exponent) */
        const uint32_t r = (a + 0x7ffffu + ((a >> 20) & 1u)) >> 20; /* (exponent + 127) << 3 | mantissa */
        const uint32_t c = r - ((127u - 7u) << 3);
        return (__nv_fp8_storage_t)(sign | (c > 0x7eu ? 0x7eu : c));
    }
    /* below 2^-6: an integer count of 2^-9, RNE */
    int e = (int)(a >> 23) - 127;
    uint32_t m = a & 0x7fffffu;
    if (e == -127) e = -126; /* an f32 subnormal */
    else m |= 0x800000u;
    const int sh = 14 - e; /* value = m · 2^(e − 23) = (m >> sh) units of 2^-9; sh ≥ 21 */
    if (sh >= 32) return (__nv_fp8_storage_t)sign;
    uint32_t q = m >> sh;
    const uint32_t rem = m & ((1u << sh) - 1u), half = 1u << (sh - 1);
    q += rem > half || (rem == half && (q & 1u));
    return (__nv_fp8_storage_t)(sign | q);
}

/* ---- math and integer intrinsics ----------------------------------------------------------- */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
/* glibc declares __expf / __logf itself (same functions as expf / logf): use those. */
static inline float __fdividef(float a, float b) { return a / b; }
static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline long long __double_as_longlong(double x) {
    long long u;
    memcpy(&u, &x, 8);
    return u;
}
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
/* explicitly rounded arithmetic (never fused into an fma on the GPU); plain IEEE operations here */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline float __double2float_rn(double x) { return (float)x; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
static inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
static inline int __ffs(int x) { return __builtin_ffs(x); }
#define SF_EMU_MINMAX(T)                                                                               \
    static inline T min(T a, T b) { return a < b ? a : b; }                                            \
    static inline T max(T a, T b) { return a > b ? a : b; }
SF_EMU_MINMAX(int)
SF_EMU_MINMAX(unsigned int)
SF_EMU_MINMAX(long)
SF_EMU_MINMAX(unsigned long)
SF_EMU_MINMAX(long long)
SF_EMU_MINMAX(unsigned long long)
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
#undef SF_EMU_MINMAX
template <typename T>
static inline T __ldg(const T *p) {
    return *p;
}
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

/* Atomics: plain read-modify-write (coroutines never switch inside one, so this is exact). */
template <typename T>
static inline T atomicAdd(T *p, T v) {
    T o = *p;
    *p = o + v;
    return o;
}
template <typename T>
static inline T atomicMax(T *p, T v) {
    T o = *p;
    *p = o > v ? o : v;
    return o;
}
template <typename T>
static inline T atomicMin(T *p, T v) {
    T o = *p;
    *p = o < v ? o : v;
    return o;
}
template <typename T>
static inline T atomicExch(T *p, T v) {
    T o = *p;
    *p = v;
    return o;
}
template <typename T>
static inline T atomicCAS(T *p, T cmp, T v) {
    T o = *p;
    if (o == cmp) *p = v;
    return o;
}

/* ---- the scheduler's interface ------------------------------------------------------------- */
namespace sf_emu {
struct index_state {
    uint3 tid, bid;
    dim3 bdim, gdim;
};
extern index_state cur; /* the running coroutine's indices */
enum warp_kind { W_SHFL = 1, W_BALLOT, W_SYNC };
void syncthreads(const char *file, int line);
/* A warp collective: waits for the lanes of `mask`; SHFL returns lane `arg`'s `val`, BALLOT the
 * mask of lanes whose arg != 0, SYNC 0. */
uint64_t warp_op(warp_kind kind, unsigned mask, uint64_t val, int arg, const char *file, int line);
/* Every lane of a full warp posts SF_EMU_WX_WORDS words; each gets all 32 lanes' posts (warp matrix ops). */
#define SF_EMU_WX_WORDS 8
struct wx_slot {
    uint32_t w[SF_EMU_WX_WORDS];
    unsigned long long seq; /* the posting lane's exchange count */
};
/* Returns the warp's 32 slots (lane order), valid until this lane's next exchange. *first (when given)
 * is set for the one lane that runs first past the exchange's barrier: work that is the same for the
 * whole warp can be done by it once, before any other lane of the warp resumes (one coroutine runs at a
 * time, and no lane can pass the warp's next exchange before every lane has left this one). */
const wx_slot *warp_exchange(const uint32_t *mine, const char *file, int line, bool *first = nullptr);
/* The caller's warpgroup's 128 slots after a barrier of that warpgroup; mine may be NULL. *first as
 * warp_exchange's, for the warpgroup. */
const wx_slot *wg_exchange(const uint32_t *mine, const char *file, int line, bool *first = nullptr);
/* Offset of p in the shared window (the dynamic shared buffer, 1024-aligned), and back (n bytes
 * checked to be inside). Faults on anything else. */
uint32_t smem_offset(const void *p, const char *file, int line);
const unsigned char *smem_at(uint32_t off, size_t n, const char *file, int line);
/* The running thread faults (the launch fails with this message); never returns. */
[[noreturn]] void thread_fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
unsigned lane_id(void);
unsigned warp_id(void); /* the calling thread's warp within its block (linear thread index / 32) */
void *dyn_shared(void);
size_t dyn_shared_size(void);
bool is_device_ptr(const void *p);
/* graph_emu.cc: s is capturing (work on it is recorded, not run) / any capture is active / record
 * run as the next node of s's capture (kind: "kernel", "memcpy", "memset", "matmul"; an invalidated
 * capture records nothing and returns cudaErrorStreamCaptureInvalidated) / a call that is not
 * allowed during a capture: invalidates it and returns cudaErrorStreamCaptureUnsupported. */
bool capturing(cudaStream_t s);
bool capture_active();
cudaError_t capture_node(cudaStream_t s, const char *kind, const char *name, std::function<void()> run,
                         void *host_dst = nullptr, size_t host_n = 0); /* host_dst: a copy into pinned memory */
cudaError_t capture_illegal(const char *what);
/* emu_runtime.cc: deferred streams (SF_EMU_ASYNC=1, "Asynchrony" above): true when work enqueued on
 * a stream outside a capture is queued (in enqueue order; it runs when the host waits for it) instead
 * of run at once / queue run as the next operation. */
bool deferring();
void defer(std::function<void()> run);
/* launch_raw's configuration checks alone (sets the last error; false when the launch is refused) */
bool launch_config_ok(const char *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s);
void fail_launch(const char *kernel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void launch_raw(const char *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s, void (*run)(void *),
                void *arg);

template <typename T>
static inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp value type");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}
template <typename T>
static inline T from_bits(uint64_t b) {
    T v;
    memcpy(&v, &b, sizeof v);
    return v;
}

template <typename P>
static inline P implicit(P v) { /* the implicit conversion a kernel call applies */
    return v;
}
template <typename... P>
struct call {
    void (*k)(P...);
    std::tuple<P...> args;
    template <size_t... I>
    void go(std::index_sequence<I...>) {
        std::tuple<P...> a = args; /* every thread gets its own copy of the parameters */
        k(std::get<I>(a)...);
    }
    static void run(void *self) { static_cast<call *>(self)->go(std::index_sequence_for<P...>{}); }
};
template <typename T>
static inline bool arg_ok(const T &) {
    return true;
}
template <typename T>
static inline bool arg_ok(T *const &p) {
    return p == nullptr || is_device_ptr(p);
}
template <typename... P, size_t... I>
static inline int bad_arg(const std::tuple<P...> &t, std::index_sequence<I...>) {
    int bad = -1, i = 0;
    ((bad = (bad < 0 && !arg_ok(std::get<I>(t))) ? i : bad, i++), ...);
    return bad;
}
template <typename... P, typename... A>
static inline void launch(const char *kname, dim3 grid, dim3 block, size_t smem, cudaStream_t s, void (*k)(P...),
                          A &&...a) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    call<P...> c{k, std::tuple<P...>(implicit<P>(std::forward<A>(a))...)};
    int bad = bad_arg(c.args, std::index_sequence_for<P...>{});
    if (bad >= 0) {
        fail_launch(kname, "argument %d is a pointer to host memory, not cudaMalloc'd memory", bad + 1);
        return;
    }
    if (!dyn_smem_ok(kname, (const void *)k, smem)) return;
    const bool cap = capturing(s);
    if (cap || deferring()) { /* with a copy of the converted arguments: recorded (run by cudaGraphLaunch) or
                                 queued (run when the host waits) */
        if (!launch_config_ok(kname, grid, block, smem, s)) return;
        auto cp = std::make_shared<call<P...>>(std::move(c));
        /* kname as given: launch names are static strings (the scheduler keys its per-kernel notes by them) */
        std::function<void()> run = [cp, kname, grid, block, smem, s] {
            launch_raw(kname, grid, block, smem, s, &call<P...>::run, cp.get());
        };
        if (cap) capture_node(s, "kernel", kname, std::move(run));
        else defer(std::move(run));
        return;
    }
    launch_raw(kname, grid, block, smem, s, &call<P...>::run, &c);
}
} // namespace sf_emu

#define threadIdx (static_cast<const uint3 &>(sf_emu::cur.tid))
#define blockIdx (static_cast<const uint3 &>(sf_emu::cur.bid))
#define blockDim (static_cast<const dim3 &>(sf_emu::cur.bdim))
#define gridDim (static_cast<const dim3 &>(sf_emu::cur.gdim))

#define SF_LAUNCH(kern, grid, block, smem, stream, ...)                                                \
    sf_emu::launch(#kern, (grid), (block), (smem), (stream), kern, ##__VA_ARGS__)
#define SF_LAUNCH_NAMED(name, kern, grid, block, smem, stream, ...)                                    \
    sf_emu::launch((name), (grid), (block), (smem), (stream), kern, ##__VA_ARGS__)

/* ---- barriers and warp intrinsics ---------------------------------------------------------- */
static inline void __syncthreads(const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    sf_emu::syncthreads(file, line);
}
static inline void __syncwarp(unsigned mask = 0xffffffffu, const char *file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
    sf_emu::warp_op(sf_emu::W_SYNC, mask, 0, 0, file, line);
}
static inline unsigned __ballot_sync(unsigned mask, int pred, const char *file = __builtin_FILE(),
                                     int line = __builtin_LINE()) {
    return (unsigned)sf_emu::warp_op(sf_emu::W_BALLOT, mask, 0, pred != 0, file, line);
}
static inline int __any_sync(unsigned mask, int pred, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return __ballot_sync(mask, pred, file, line) != 0;
}
static inline int __all_sync(unsigned mask, int pred, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return (__ballot_sync(mask, pred, file, line) & mask) == (__ballot_sync(mask, 1, file, line) & mask);
}
/* Source lanes as the CUDA programming guide defines them for a segment of `width` lanes. */
template <typename T>
static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, const char *file = __builtin_FILE(),
                            int line = __builtin_LINE()) {
    int lane = (int)sf_emu::lane_id(), base = lane & ~(width - 1);
    return sf_emu::from_bits<T>(sf_emu::warp_op(sf_emu::W_SHFL, mask, sf_emu::to_bits(v), base + (src & (width - 1)), file, line));
}
template <typename T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, const char *file = __builtin_FILE(),
                               int line = __builtin_LINE()) {
    int lane = (int)sf_emu::lane_id(), in_seg = lane & (width - 1);
    int src = in_seg >= (int)delta ? lane - (int)delta : lane;
    return sf_emu::from_bits<T>(sf_emu::warp_op(sf_emu::W_SHFL, mask, sf_emu::to_bits(v), src, file, line));
}
template <typename T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32,
                                 const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    int lane = (int)sf_emu::lane_id(), in_seg = lane & (width - 1);
    int src = in_seg + (int)delta < width ? lane + (int)delta : lane;
    return sf_emu::from_bits<T>(sf_emu::warp_op(sf_emu::W_SHFL, mask, sf_emu::to_bits(v), src, file, line));
}
template <typename T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                                const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    int lane = (int)sf_emu::lane_id(), src = lane ^ lane_mask;
    if (src >= ((lane / width) + 1) * width) src = lane; /* later segments: own value */
    return sf_emu::from_bits<T>(sf_emu::warp_op(sf_emu::W_SHFL, mask, sf_emu::to_bits(v), src, file, line));
}


/* ---- warp-level matrix instructions (cuda_common.cuh's sf_mma_bf16_16816, sf_ldsm_x4[_t],
 * sf_cp_async16), with the operand layouts of the PTX ISA: for lane l, g = l / 4, t = l % 4,
 *  mma m16n8k16 .row.col bf16 → f32: A (16×16) a0 = (row g, k 2t..2t+1), a1 = (g+8, 2t..),
 *    a2 = (g, 2t+8..), a3 = (g+8, 2t+8..); B (16×8) b0 = (k 2t..2t+1, col g), b1 = (k 2t+8.., g);
 *    C/D c0,c1 = (row g, cols 2t, 2t+1), c2,c3 = (row g+8, same); the lower half of a 32-bit
 *    register holds the smaller index. D = C + Σ_k A·B in fp32, k in order (the tensor core's
 *    own summation order and internal width differ: tests compare with tolerances);
 *  ldmatrix .m8n8.x4 .b16: lanes 8i..8i+7 give the 8 row addresses (16 bytes each, 16-byte aligned)
 *    of matrix i; register i of lane l = (row l/4, cols 2(l%4), 2(l%4)+1) of matrix i, or with .trans
 *    (rows 2(l%4), 2(l%4)+1, col l/4);
 *  cp.async 16 bytes (src_bytes < 16: the rest zero-filled): lands when issued, or with
 *    SF_EMU_COPIES_LATE=1 at the cp.async.wait_group that covers its group (async_emu.cc), reading its
 *    source then — so a buffer read before its wait holds what it held before.
 * Each instruction is a warp barrier here, all 32 lanes must take part (a fault otherwise). */
static inline void sf_emu_mma_16816(float d[4], const uint32_t a[4], const uint32_t b[2], const char *file, int line) {
    const uint32_t mine[SF_EMU_WX_WORDS] = {a[0], a[1], a[2], a[3], b[0], b[1], 0, 0};
    bool first = false;
    const sf_emu::wx_slot *all = sf_emu::warp_exchange(mine, file, line, &first);
    const unsigned lane = sf_emu::lane_id(), g = lane >> 2, t = lane & 3;
    /* The warp's operands as floats, A (16×16, row-major) and B (8 columns × 16 k), unpacked once per
     * instruction by the first lane past the exchange into its warp's entry (the warps of a block run
     * interleaved; one entry each) and read by all 32. */
    static float unpacked[32][16 * 16 + 8 * 16];
    float *A = unpacked[sf_emu::warp_id()];
    float *B = A + 16 * 16;
    if (first)
        for (unsigned l = 0; l < 32; l++) { /* lane l's registers: a0..a3 (rows l/4, l/4 + 8; k pairs 2(l%4), + 8), b0, b1 */
            const unsigned r = l >> 2, c = 2 * (l & 3);
            for (unsigned i = 0; i < 4; i++) {
                const uint32_t w = all[l].w[i];
                float *dst = A + (r + 8 * (i & 1)) * 16 + c + 8 * (i >> 1);
                dst[0] = sf_emu_bf_bits2f((unsigned short)(w & 0xffffu)), dst[1] = sf_emu_bf_bits2f((unsigned short)(w >> 16));
            }
            for (unsigned i = 0; i < 2; i++) {
                const uint32_t w = all[l].w[4 + i];
                float *dst = B + r * 16 + c + 8 * i; /* column r, k = c + 8i */
                dst[0] = sf_emu_bf_bits2f((unsigned short)(w & 0xffffu)), dst[1] = sf_emu_bf_bits2f((unsigned short)(w >> 16));
            }
        }
    /* d[i]: row g + 8·(i / 2), column 2t + i % 2; each d[i] += its 16 exact products in k order in
     * fp32 — the four sums side by side (one vector add per k), each in its own order */
    const float *a0 = A + g * 16, *a1 = A + (g + 8) * 16, *b0 = B + 2 * t * 16, *b1 = b0 + 16;
    float acc[4] = {d[0], d[1], d[2], d[3]};
    for (unsigned k = 0; k < 16; k++) {
        const float p[4] = {a0[k] * b0[k], a0[k] * b1[k], a1[k] * b0[k], a1[k] * b1[k]};
        for (int i = 0; i < 4; i++) acc[i] += p[i];
    }
    for (int i = 0; i < 4; i++) d[i] = acc[i];
}
static inline void sf_emu_ldsm_x4(uint32_t r[4], const void *p, bool trans, const char *file, int line) {
    uint32_t mine[SF_EMU_WX_WORDS] = {0};
    if ((uintptr_t)p % 16) sf_emu::thread_fault("ldmatrix at %s:%d: row address %p not 16-byte aligned", file, line, p);
    memcpy(mine, &p, sizeof p);
    const sf_emu::wx_slot *all = sf_emu::warp_exchange(mine, file, line);
    const unsigned lane = sf_emu::lane_id();
    for (unsigned i = 0; i < 4; i++) {
        const unsigned short *row[8];
        for (unsigned j = 0; j < 8; j++) memcpy(&row[j], all[8 * i + j].w, sizeof row[j]);
        unsigned lo, hi;
        if (!trans) lo = row[lane >> 2][2 * (lane & 3)], hi = row[lane >> 2][2 * (lane & 3) + 1];
        else lo = row[2 * (lane & 3)][lane >> 2], hi = row[2 * (lane & 3) + 1][lane >> 2];
        r[i] = lo | hi << 16;
    }
}

/* ---- warpgroup MMA (Hopper wgmma, kernels/cuda/wgmma.cuh), bf16 → f32, m64nNk16 ----------------
 * Operands in shared memory are read through 64-bit matrix descriptors: start address >> 4 (bits
 * 0-13), leading byte offset >> 4 (16-29), stride byte offset >> 4 (32-45), swizzle mode (62-63);
 * only the 128-byte swizzle is emulated (mode 1; anything else faults). With T = 8 bf16 (16 bytes),
 * as CUTLASS's GMMA descriptor documentation lays the canonical layouts out:
 *   K-major  (A: M×K, or B: N×K, K contiguous): element (r, k), k < 64 of one 128-byte row:
 *            start + (r / 8)·SBO + (r % 8)·128 + 2k                (the leading byte offset unused);
 *   MN-major (B with trans-b: K×N, N contiguous): element (k, n):
 *            start + (n / 64)·LBO + (k / 8)·SBO + (k % 8)·128 + 2(n % 64);
 * then the swizzle on the shared-window address: bits 4-6 ^= bits 7-9 (16-byte chunks of a 128-byte
 * row permuted by the row's index within its 1024-byte group). A in registers (RS): the mma.sync
 * m16n8k16 A layout per warp w for rows 16w..16w+15. D (N/2 floats per thread): for n-chunk j < N/8,
 * d[4j..4j+3] = rows 16w + g (+8 for the last two), columns 8j + 2t, 8j + 2t + 1 (g = lane / 4,
 * t = lane % 4). D = (scale_d ? D : 0) + Σ_k A·B, k in order, fp32. The instruction is a barrier of
 * the issuing warpgroup here (its 128 threads must all issue it at the same place; other warpgroups,
 * e.g. a TMA producer, need not); the product itself runs asynchronously, at the wait_group that needs
 * it, with the accumulators poisoned until then (wgmma_emu.cc). */
namespace sf_emu { /* wgmma_emu.cc: the products are asynchronous, as on the GPU (see that file) */
void wgmma_issue(float *d, int N, const uint32_t *a, uint64_t da, uint64_t db, bool trans_b, int scale_d, const char *file,
                 int line);
void wgmma_fence(const char *file, int line);
void wgmma_commit(const char *file, int line);
void wgmma_wait(int n, const char *file, int line);
void wgmma_block_start(void); /* cuda_emu.cc: before each block, and when each thread ends */
void wgmma_thread_exit(void);
} // namespace sf_emu
static inline void sf_emu_wgmma(float *d, int N, const uint32_t *a, uint64_t da, uint64_t db, bool trans_b, int scale_d,
                                const char *file, int line) {
    sf_emu::wgmma_issue(d, N, a, da, db, trans_b, scale_d, file, line);
}


/* ---- mbarriers and TMA (kernels/cuda/tma.cuh), implemented in async_emu.cc --------------------
 * An mbarrier is 8 bytes of the dynamic shared memory holding (emulated format) its arrival count,
 * the arrivals and transaction bytes still pending, its phase parity and a tag: a barrier no thread
 * initialised (the shared memory's 0xFF poison) or one overwritten by data faults when used. Arrivals
 * beyond the count in one phase fault. A thread waiting for a phase that has not completed yields
 * (cuda_emu.cc's T_SPIN) until some barrier completes a phase; a wait nothing can end is a deadlock.
 * A TMA load copies its whole box at once (rows and columns outside the matrix as zeros), 128-byte
 * swizzled like wgmma reads it (dst 1024-byte aligned, 64 bf16 per box row), then completes its bytes on
 * the barrier. CUtensorMap (128 bytes, opaque on the GPU) holds the emulation's own description. */
struct alignas(64) CUtensorMap {
    uint32_t magic, box_rows;
    const void *base;
    uint64_t rows, cols, row_bytes;
    unsigned char pad[88];
};
void sf_emu_mbar_init(uint64_t *bar, unsigned count, const char *file, int line);
void sf_emu_mbar_arrive(uint64_t *bar, unsigned tx_bytes, const char *file, int line);
void sf_emu_mbar_wait(uint64_t *bar, unsigned parity, const char *file, int line);
void sf_emu_tma_load_2d(void *dst, const CUtensorMap *map, int c0, int c1, uint64_t *bar, const char *file, int line);
void sf_emu_tma_block_start(void); /* cuda_emu.cc, before each block: SF_EMU_COPIES_LATE (async_emu.cc) */
namespace sf_emu {
/* PTX's asynchronous groups (cp.async, wgmma), per thread: commit puts its uncommitted operations (group
 * < 0) in group `next`; groups are numbered in commit order and leave whole, so the committed groups in
 * flight are the consecutive ones up to next − 1, and wait_group n completes those ≤ async_wait_last. */
template <class Q>
void async_commit(Q &q, long long &next) {
    bool any = false;
    for (auto &e : q)
        if (e.group < 0) e.group = next, any = true;
    if (any) next++;
}
inline long long async_wait_last(long long next, int n) { return next - 1 - n; }
} // namespace sf_emu
namespace sf_emu { /* cp.async (cuda_common.cuh), async_emu.cc */
void cp_async16(void *dst, const void *src, int src_bytes, const char *file, int line);
void cp_async_commit(void);
void cp_async_wait(int n);
/* The proxies: a cp.async write to dynamic shared memory stays "generic" until its thread's
 * fence.proxy.async; an async-proxy read of it before that (a wgmma operand) faults (async_emu.cc). */
void fence_proxy_async(void);
void check_async_read(uint32_t off, const char *what, const char *file, int line);
} // namespace sf_emu
sf_status sf_emu_tma_map(CUtensorMap *map, const void *base, uint64_t rows, uint64_t cols, uint64_t row_bytes,
                         uint32_t box_rows, sf_err *err);
namespace sf_emu {
/* The scheduler's side (cuda_emu.cc): a barrier over the caller's aligned group of gsize threads (a
 * warpgroup: 128); yield until an mbarrier phase completes; announce a completed phase. */
void group_sync(unsigned gsize, const char *file, int line);
void spin_yield(const char *file, int line);
/* Let every other thread of the block run (and pollers look at their mbarriers) before this one goes on. */
void yield_now(const char *file, int line);
void mbar_progress(void);
/* Named barriers (bar.sync / bar.arrive id, n: ids 1..15, n threads): see cuda_emu.cc. */
void named_sync(unsigned id, unsigned n, const char *file, int line);
void named_arrive(unsigned id, unsigned n, const char *file, int line);
} // namespace sf_emu

#endif
