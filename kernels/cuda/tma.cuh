/* tma.cuh — Hopper's asynchronous copy machinery for the hand-written tensor-core kernels
 * (attn_mass_ws.cu): shared-memory mbarriers (init, arrive, arrive with an expected transaction count,
 * wait on a phase's parity) and TMA tile loads (cp.async.bulk.tensor.2d, global → shared, the
 * 128-byte swizzle, completion counted on an mbarrier), named barriers (bar.sync / bar.arrive), plus the
 * host side that describes a bf16
 * matrix to the TMA unit (a CUtensorMap from cuTensorMapEncodeTiled, reached through the runtime's
 * driver entry point: nothing links libcuda).
 *
 * mbarrier phases: a barrier made for `count` arrivals completes its current phase when all have
 * arrived and every byte announced by arrive_expect_tx has landed; then it re-arms. Waiting with
 * parity P returns once the phase of parity P has completed: the k-th completion (k = 1, 2, …) is
 * waited for with parity (k − 1) & 1.
 * The emulation (cuda_emu.h, async_emu.cc) runs the same calls: barriers live in the dynamic shared
 * memory (a barrier no one initialised faults), a waiting thread yields until some phase completes
 * (a wait that nothing can end is reported as a deadlock with its source line), a TMA load copies
 * the box at once, swizzled, zero-filling what lies outside the matrix, and then counts its bytes. */
#ifndef SF_TMA_CUH
#define SF_TMA_CUH

#include "cuda_common.cuh"
#include "cuda/mbar_clock.h"
#include "wgmma.cuh"
#ifndef SF_CUDA_EMU
#include <cuda.h> /* CUtensorMap and its enums (types only) */
#include <cudaTypedefs.h>
#endif

#ifdef SF_CUDA_EMU
#define sf_named_sync(id, n) sf_emu::named_sync((id), (n), __FILE__, __LINE__)
#define sf_named_arrive(id, n) sf_emu::named_arrive((id), (n), __FILE__, __LINE__)
#define sf_mbar_init(bar, count) sf_emu_mbar_init((bar), (count), __FILE__, __LINE__)
#define sf_mbar_arrive(bar) sf_emu_mbar_arrive((bar), 0, __FILE__, __LINE__)
#define sf_mbar_arrive_expect_tx(bar, bytes) sf_emu_mbar_arrive((bar), (bytes), __FILE__, __LINE__)
#define sf_mbar_wait(bar, parity, limit_ns) ((void)(limit_ns), sf_emu_mbar_wait((bar), (parity), __FILE__, __LINE__))
#define sf_tma_load_2d(dst, map, c0, c1, bar) sf_emu_tma_load_2d((dst), (map), (c0), (c1), (bar), __FILE__, __LINE__)
static inline void sf_mbar_fence_init(void) {}
static inline void sf_tma_prefetch(const CUtensorMap *) {}
#else
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define SF_HAVE_TMA 1
#endif
/* Named barriers (id 1..15; 0 is __syncthreads): bar.sync waits until n threads (whole warps) arrived,
 * counting itself; bar.arrive counts without waiting. For scheduling warpgroups against each other. */
__device__ __forceinline__ void sf_named_sync(unsigned id, unsigned n) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void sf_named_arrive(unsigned id, unsigned n) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void sf_mbar_init(uint64_t *bar, unsigned count) {
#ifdef SF_HAVE_TMA
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(sf_smem_addr(bar)), "r"(count) : "memory");
#endif
}
/* After the initialising thread's inits, before the block barrier that publishes them. */
__device__ __forceinline__ void sf_mbar_fence_init(void) {
#ifdef SF_HAVE_TMA
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void sf_mbar_arrive(uint64_t *bar) {
#ifdef SF_HAVE_TMA
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(sf_smem_addr(bar)) : "memory");
#endif
}
/* Arrive, and announce `bytes` of asynchronous copies that complete on this barrier's phase. */
__device__ __forceinline__ void sf_mbar_arrive_expect_tx(uint64_t *bar, unsigned bytes) {
#ifdef SF_HAVE_TMA
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(sf_smem_addr(bar)), "r"(bytes)
                 : "memory");
#endif
}
/* A wait still not done after limit_ns of the GPU's clock is a hang (a phase nobody completes): it traps,
 * so the launch fails ("illegal instruction", after that time) instead of the process hanging until a
 * timeout kills it. limit_ns is a kernel argument the host reads from $SF_MBAR_TIMEOUT_NS at each launch
 * (sf_mbar_limit_ns, mbar_clock.h: default 3 s, 0 = no bound, at most ~4.29e9 as the difference is taken
 * in 32 bits). The clock runs on while a debugger holds the GPU at a breakpoint, and compute-sanitizer
 * slows a kernel tens of times: both want 0 (tests/gpu/check.sh's sanitizer runs set it). A kernel
 * argument lives in the constant bank, so the bound costs the waiting loop no register. No printf to say
 * where: a call in the kernel makes ptxas serialise every wgmma (C7510); the emulation names the line of
 * a wait nothing can end. The clock: mbar_clock.h (one register; tested on the host). */
__device__ __forceinline__ void sf_mbar_wait(uint64_t *bar, unsigned parity, uint32_t limit_ns) {
#ifdef SF_HAVE_TMA
    uint32_t done = 0, t0 = 0;
    for (;;) {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(sf_smem_addr(bar)), "r"(parity)
                     : "memory");
        if (done) break;
        if (!limit_ns) continue;
        uint32_t now;
        asm volatile("mov.u32 %0, %%globaltimer_lo;" : "=r"(now));
        SF_MBAR_CLOCK_STEP(t0, now, limit_ns, __trap());
    }
#else
    (void)bar, (void)parity, (void)limit_ns;
#endif
}
/* Fetch a tensor map (a __grid_constant__ kernel parameter) into the TMA unit's descriptor cache ahead
 * of its first load, as CUTLASS's producers do. */
__device__ __forceinline__ void sf_tma_prefetch(const CUtensorMap *map) {
#ifdef SF_HAVE_TMA
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
#endif
}
/* The box of map at column c0, row c1 (elements) → dst (1024-byte aligned for the 128-byte swizzle);
 * its bytes complete on bar. */
__device__ __forceinline__ void sf_tma_load_2d(void *dst, const CUtensorMap *map, int c0, int c1, uint64_t *bar) {
#ifdef SF_HAVE_TMA
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"(sf_smem_addr(dst)), "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1),
                   "r"(sf_smem_addr(bar))
                 : "memory");
#endif
}
#endif

/* Host: map = a row-major bf16 matrix at base (rows × cols, row_bytes apart; 16-byte aligned base and
 * pitch) read in boxes of box_rows × 64 columns (128 bytes: one swizzle atom row), 128-byte swizzled
 * into shared memory; boxes reaching past the matrix are zero-filled. SF_E_UNSUPPORTED when the
 * driver has no TMA (no cuTensorMapEncodeTiled) or refuses the description. */
static inline sf_status sf_tma_map_bf16(CUtensorMap *map, const void *base, uint64_t rows, uint64_t cols,
                                        uint64_t row_bytes, uint32_t box_rows, sf_err *err) {
    if (!base || (uintptr_t)base % 16 || row_bytes % 16 || rows < 1 || cols < 64 || row_bytes < cols * 2 ||
        box_rows < 1 || box_rows > 256)
        return sf_fail(err, SF_E_UNSUPPORTED, "TMA map: base %p, %llu × %llu, pitch %llu bytes, box %u rows not "
                       "describable", base, (unsigned long long)rows, (unsigned long long)cols,
                       (unsigned long long)row_bytes, box_rows);
#ifdef SF_CUDA_EMU
    return sf_emu_tma_map(map, base, rows, cols, row_bytes, box_rows, err);
#else
    static PFN_cuTensorMapEncodeTiled_v12000 encode;
    static int looked;
    if (!looked) {
        cudaDriverEntryPointQueryResult q;
        void *fn = nullptr;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) ==
                cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            encode = (PFN_cuTensorMapEncodeTiled_v12000)fn;
        looked = 1;
    }
    if (!encode) return sf_fail(err, SF_E_UNSUPPORTED, "TMA map: the driver has no cuTensorMapEncodeTiled");
    const cuuint64_t dim[2] = {cols, rows}, stride[1] = {row_bytes};
    const cuuint32_t box[2] = {64, box_rows}, estride[2] = {1, 1};
    CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void *>(base), dim, stride, box, estride,
                        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS)
        return sf_fail(err, SF_E_UNSUPPORTED, "TMA map: cuTensorMapEncodeTiled refused %llu × %llu (pitch %llu, box "
                       "%u rows): CUresult %d", (unsigned long long)rows, (unsigned long long)cols,
                       (unsigned long long)row_bytes, box_rows, (int)r);
    return SF_OK;
#endif
}

#endif
