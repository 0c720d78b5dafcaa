/* emu_selftest.cu — small kernels that check the CUDA emulation itself (cuda_emu.h): indices of
 * 3-D grids and blocks, block barriers, warp shuffles and ballots (including partial-width
 * segments), per-block static and dynamic shared memory and its poison, and the failures the
 * emulation must report (divergent __syncthreads, a warp deadlock, a shuffle from a lane that does
 * not take part, a host pointer as kernel argument, warp matrix instructions in a partial warp or on
 * misaligned rows); the warp-level matrix instructions' operand layouts. Valid CUDA, but compiled only
 * for the emulation (kernels/cuda/emu/ is not in the nvcc build). Driven by tests/unit/test_emu_self.c. */
#include "../cuda_common.cuh"
#include "../tma.cuh"
#include "../wgmma.cuh"

/* out[linear thread id] = tx | ty<<4 | tz<<8 | bx<<12 | by<<16 | bz<<20, with the dims in out_dims. */
static __global__ void index_kernel(int *out, int *out_dims) {
    unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    unsigned b = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    unsigned t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    out[b * nt + t] = (int)(threadIdx.x | threadIdx.y << 4 | threadIdx.z << 8 | blockIdx.x << 12 | blockIdx.y << 16 |
                            blockIdx.z << 20);
    if (b == 0 && t == 0) {
        out_dims[0] = (int)(blockDim.x | blockDim.y << 4 | blockDim.z << 8);
        out_dims[1] = (int)(gridDim.x | gridDim.y << 4 | gridDim.z << 8);
    }
}

/* Per thread t (value v = 1000·warp + lane): 6 results, see the test for the expected ones. */
static __global__ void shfl_kernel(int *out) {
    int t = (int)threadIdx.x, lane = t & 31, v = 1000 * (t >> 5) + lane;
    int *o = out + 6 * t;
    o[0] = __shfl_xor_sync(0xffffffffu, v, 5);
    o[1] = __shfl_up_sync(0xffffffffu, v, 3);
    o[2] = __shfl_down_sync(0xffffffffu, v, 3);
    o[3] = __shfl_sync(0xffffffffu, v, 7);
    o[4] = __shfl_xor_sync(0xffffffffu, v, 2, 8);
    o[5] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
}

/* Block reversal through static shared memory; poison[block] = a shared value read before any
 * thread of this block wrote it (thread 0 writes it at the end, for the next block to see). */
static __global__ void shared_kernel(float *out, float *poison) {
    __shared__ float buf[256];
    __shared__ float unwritten[1];
    int t = (int)threadIdx.x, n = (int)blockDim.x;
    if (t == 0) poison[blockIdx.x] = unwritten[0];
    buf[t] = (float)(1000 * blockIdx.x + t);
    __syncthreads();
    out[blockIdx.x * n + t] = buf[n - 1 - t];
    __syncthreads();
    if (t == 0) unwritten[0] = 1.0f;
}

/* Cases 41 / 42: 49 KiB of dynamic shared memory, not granted / granted by cudaFuncSetAttribute. */
static __global__ void smem_ungranted_kernel(float *out) {
    if (threadIdx.x == 0) out[0] = 1.0f;
}
static __global__ void smem_granted_kernel(float *out) {
    if (threadIdx.x == 0) out[0] = 2.0f;
}

static __global__ void dyn_shared_kernel(float *out, float *poison) {
    SF_DYN_SHARED(float, buf);
    int t = (int)threadIdx.x, n = (int)blockDim.x;
    if (t == 0) poison[blockIdx.x] = buf[n]; /* one float past the block's use: never written */
    buf[t] = (float)(1000 * blockIdx.x + t);
    __syncthreads();
    out[blockIdx.x * n + t] = buf[n - 1 - t];
    __syncthreads();
    if (t == 0) buf[n] = 1.0f;
}

/* sf_block_sum over a block: out[block] = Σ (t + 1) for t < blockDim.x. */
static __global__ void block_sum_kernel(float *out) {
    __shared__ float shm[32];
    float s = sf_block_sum((float)(threadIdx.x + 1), shm);
    float s2 = sf_block_sum(1.0f, shm); /* a second call reuses shm */
    if (threadIdx.x == 0) out[2 * blockIdx.x] = s, out[2 * blockIdx.x + 1] = s2;
}

/* One 16×8×16 product, three ways (one warp): in = A (16×16) then B (16×8), bf16 row-major; out =
 * three D (16×8, f32 row-major): fragments gathered by the PTX layout; A and Bᵀ by ldmatrix; A by
 * ldmatrix and B by ldmatrix.trans. */
static __device__ uint32_t st_pair(const __nv_bfloat16 *p, int i, int j) { /* p[i] low, p[j] high */
    return (uint32_t)__bfloat16_as_ushort(p[i]) | (uint32_t)__bfloat16_as_ushort(p[j]) << 16;
}
static __global__ void mma_kernel(const __nv_bfloat16 *in, float *out) {
    __shared__ __nv_bfloat16 sa[16 * 16], sbt[8 * 16], sb[16 * 8];
    const __nv_bfloat16 *A = in, *B = in + 256;
    const int lane = (int)threadIdx.x, g = lane >> 2, t = lane & 3;
    for (int i = lane; i < 256; i += 32) sa[i] = A[i];
    for (int i = lane; i < 128; i += 32) sb[i] = B[i], sbt[(i % 8) * 16 + i / 8] = B[i];
    __syncthreads();
    float d[3][4];
    for (int v = 0; v < 3; v++) d[v][0] = d[v][1] = d[v][2] = d[v][3] = 0.0f;
    const uint32_t a[4] = {st_pair(A, g * 16 + 2 * t, g * 16 + 2 * t + 1),
                           st_pair(A, (g + 8) * 16 + 2 * t, (g + 8) * 16 + 2 * t + 1),
                           st_pair(A, g * 16 + 2 * t + 8, g * 16 + 2 * t + 9),
                           st_pair(A, (g + 8) * 16 + 2 * t + 8, (g + 8) * 16 + 2 * t + 9)};
    const uint32_t b[2] = {st_pair(B, 2 * t * 8 + g, (2 * t + 1) * 8 + g), st_pair(B, (2 * t + 8) * 8 + g, (2 * t + 9) * 8 + g)};
    sf_mma_bf16_16816(d[0], a, b);
    uint32_t la[4], lb[4], lt[4];
    sf_ldsm_x4(la, sa + ((lane & 7) + ((lane >> 3) & 1) * 8) * 16 + (lane >> 4) * 8);
    sf_ldsm_x4(lb, sbt + (lane & 7) * 16 + ((lane >> 3) & 1) * 8); /* (n, k 0-7), (n, k 8-15), twice */
    sf_ldsm_x4_t(lt, sb + ((lane & 7) + ((lane >> 3) & 1) * 8) * 8); /* (k 0-7, n), (k 8-15, n), twice */
    sf_mma_bf16_16816(d[1], la, lb);
    sf_mma_bf16_16816(d[2], la, lt + 2); /* the second copy: the x4's last two matrices */
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < 4; i++) out[v * 128 + (g + 8 * (i >> 1)) * 8 + 2 * t + (i & 1)] = d[v][i];
}

static __global__ void named_bad_id_kernel(float *out) {
    sf_named_sync(0, 32);
    out[threadIdx.x] = 1.0f;
}
static __global__ void named_hang_kernel(float *out) { /* warp 0 waits for an arrival warp 1 never makes */
    if (threadIdx.x < 32) sf_named_sync(3, 64);
    out[threadIdx.x] = 1.0f;
}
static __global__ void mbar_uninit_kernel(float *out) { /* a barrier no one initialised */
    SF_DYN_SHARED(uint64_t, bar);
    sf_mbar_arrive(bar);
    out[threadIdx.x] = 1.0f;
}
static __global__ void mbar_extra_kernel(float *out) { /* 2 arrivals on a barrier of count 1, in one phase */
    SF_DYN_SHARED(uint64_t, bar);
    if (threadIdx.x == 0) sf_mbar_init(bar, 2);
    __syncthreads();
    if (threadIdx.x < 3) sf_mbar_arrive_expect_tx(bar, 16); /* the bytes keep the phase open */
    out[threadIdx.x] = 1.0f;
}
static __global__ void mbar_hang_kernel(float *out) { /* waits for a phase nobody completes */
    SF_DYN_SHARED(uint64_t, bar);
    if (threadIdx.x == 0) sf_mbar_init(bar, 64);
    __syncthreads();
    if (threadIdx.x < 63) sf_mbar_arrive(bar);
    sf_mbar_wait(bar, 0, 0);
    out[threadIdx.x] = 1.0f;
}
static __global__ void tma_misaligned_kernel(const __grid_constant__ CUtensorMap map, float *out) {
    SF_DYN_SHARED(unsigned char, sm);
    uint64_t *bar = reinterpret_cast<uint64_t *>(sm + 2048);
    sf_mbar_init(bar, 1);
    sf_mbar_arrive_expect_tx(bar, 8 * 128);
    sf_tma_load_2d(sm + 512, &map, 0, 0, bar);
    out[threadIdx.x] = 1.0f;
}
/* SF_EMU_COPIES_LATE: thread 0 loads an 8-row box (row 0: the first 64 values of the map's row 0); every
 * thread reads one of them after waiting for the barrier (wait) or not */
static __global__ void tma_read_kernel(const __grid_constant__ CUtensorMap map, float *out, int wait) {
    SF_DYN_SHARED(unsigned char, sm);
    uint64_t *bar = reinterpret_cast<uint64_t *>(sm + 2048);
    if (threadIdx.x == 0) sf_mbar_init(bar, 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        sf_mbar_arrive_expect_tx(bar, 8 * 128);
        sf_tma_load_2d(sm, &map, 0, 0, bar);
    }
    if (wait) sf_mbar_wait(bar, 0, 0);
    __syncthreads();
    out[threadIdx.x] = __bfloat162float(reinterpret_cast<const __nv_bfloat16 *>(sm)[threadIdx.x]);
}
/* SF_EMU_COPIES_LATE for cp.async: threads 0..7 copy 64 bf16 into shared memory (16 bytes each) and
 * commit; every thread reads one after the wait (wait) or without it */
static __global__ void cp_read_kernel(const __nv_bfloat16 *src, float *out, int wait) {
    SF_DYN_SHARED(__nv_bfloat16, sm);
    if (threadIdx.x < 8) sf_cp_async16(sm + 8 * threadIdx.x, src + 8 * threadIdx.x, 16);
    sf_cp_async_commit();
    if (wait) sf_cp_async_wait<0>();
    __syncthreads();
    out[threadIdx.x] = __bfloat162float(sm[threadIdx.x]);
}
static __global__ void wgmma_half_group_kernel(float *out) { /* warpgroup 1 issues, half of warpgroup 0 left */
    SF_DYN_SHARED(__nv_bfloat16, buf);
    if (threadIdx.x < 64) return;
    float d[32];
    const uint64_t desc = sf_wgmma_desc(sf_smem_addr(buf), 16, 1024);
    sf_wgmma_m64n64k16_ss(d, desc, desc, 0);
    out[threadIdx.x] = d[0];
}

static __global__ void wgmma_mixed_desc_kernel(float *out) { /* thread 5 points its descriptors elsewhere */
    SF_DYN_SHARED(__nv_bfloat16, buf);
    float d[32];
    const uint64_t desc = sf_wgmma_desc(sf_smem_addr(buf) + (threadIdx.x == 5 ? 1024u : 0u), 16, 1024);
    sf_wgmma_m64n64k16_ss(d, desc, desc, 0);
    out[threadIdx.x] = d[0];
}

/* The asynchronous wgmma (wgmma_emu.cc): A and B all ones in shared memory, so each of the 64 × 64 outputs
 * is 16. mode 0: the accumulator is read before the wait (out[t]: the poison) and after it (out[128 + t]);
 * 4: B rewritten to twos between the issue and the wait (the product reads it at the wait: 32);
 * 1: the accumulator written in flight, 2: no fence, 3: an exit with the product in flight (faults). */
static __global__ void wgmma_async_kernel(float *out, int mode) {
    SF_DYN_SHARED(__nv_bfloat16, buf); /* A: 8 KB K-major, B: 8 KB at byte 8192 */
    for (int i = (int)threadIdx.x; i < 8192; i += 128) buf[i] = __float2bfloat16(1.0f);
    sf_fence_proxy_async(); /* generic stores, read by the tensor cores */
    __syncthreads();
    float d[32];
    for (int i = 0; i < 32; i++) d[i] = 0.0f;
    const uint64_t da = sf_wgmma_desc(sf_smem_addr(buf), 16, 1024), db = sf_wgmma_desc(sf_smem_addr(buf + 4096), 16, 1024);
    if (mode != 2) sf_wgmma_fence();
    sf_wgmma_m64n64k16_ss(d, da, db, 0);
    sf_wgmma_commit();
    out[threadIdx.x] = d[0];
    if (mode == 1) d[1] = 5.0f;
    if (mode == 3) return;
    if (mode == 4) {
        __syncthreads();
        for (int i = (int)threadIdx.x; i < 4096; i += 128) buf[4096 + i] = __float2bfloat16(2.0f);
        __syncthreads();
    }
    sf_wgmma_wait<0>();
    out[128 + threadIdx.x] = d[0];
}

static __global__ void wgmma_no_proxy_fence_kernel(float *out) { /* B and A written by cp.async, no proxy fence */
    SF_DYN_SHARED(__nv_bfloat16, buf);
    for (int i = (int)threadIdx.x; i < 1024; i += 128) sf_cp_async16(buf + 8 * i, out, 16);
    sf_cp_async_commit();
    sf_cp_async_wait<0>();
    __syncthreads();
    float d[32];
    for (int i = 0; i < 32; i++) d[i] = 0.0f;
    sf_wgmma_fence();
    sf_wgmma_m64n64k16_ss(d, sf_wgmma_desc(sf_smem_addr(buf), 16, 1024), sf_wgmma_desc(sf_smem_addr(buf + 4096), 16, 1024), 0);
    sf_wgmma_commit();
    sf_wgmma_wait<0>();
    out[threadIdx.x] = d[0];
}

/* --- kernels that must fail ---------------------------------------------------------------- */
static __global__ void early_exit_kernel(float *out) {
    if (threadIdx.x < 5) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}
static __global__ void two_sites_kernel(float *out) {
    if (threadIdx.x & 1) {
        __syncthreads();
        out[threadIdx.x] = 1.0f;
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0f;
    }
}
static __global__ void warp_deadlock_kernel(float *out) {
    float v = (float)threadIdx.x;
    if ((threadIdx.x & 31) != 3) v += __shfl_xor_sync(0xffffffffu, v, 1);
    __syncthreads();
    out[threadIdx.x] = v;
}
static __global__ void mma_half_warp_kernel(float *out) { /* 16 threads: an mma needs the whole warp */
    const uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    float d[4] = {0, 0, 0, 0};
    sf_mma_bf16_16816(d, a, b);
    out[threadIdx.x] = d[0];
}
static __global__ void mma_lane_gone_kernel(float *out) { /* lane 3 of warp 0, lane 0 of warp 1 leave first */
    if (threadIdx.x == 3 || threadIdx.x == 32) return;
    const uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    float d[4] = {0, 0, 0, 0};
    sf_mma_bf16_16816(d, a, b);
    out[threadIdx.x] = d[0];
}
static __global__ void wgmma_noswizzle_kernel(float *out) { /* a descriptor without the 128-byte swizzle */
    SF_DYN_SHARED(__nv_bfloat16, buf);
    float d[32];
    const uint64_t desc = sf_wgmma_desc(sf_smem_addr(buf), 16, 1024) & ~((uint64_t)3 << 62);
    sf_wgmma_m64n64k16_ss(d, desc, desc, 0);
    out[threadIdx.x] = d[0];
}
static __global__ void ldsm_misaligned_kernel(float *out) {
    __shared__ __nv_bfloat16 buf[8 * 40];
    uint32_t r[4];
    sf_ldsm_x4(r, buf + (threadIdx.x & 7) * 40 + 4); /* rows 8 bytes off a 16-byte boundary */
    out[threadIdx.x] = (float)r[0];
}
static __global__ void missing_lane_kernel(float *out) { /* 48 threads: lanes 16..31 of warp 1 do not exist */
    float v = __shfl_xor_sync(0xffffffffu, (float)threadIdx.x, 16);
    out[threadIdx.x] = v;
}

/* Races that only the order of threads (race_threads) or of blocks (race_blocks) decides (SF_EMU_ORDER):
 * each thread / block writes its own slot, then reads its left neighbour's — with no barrier between
 * unless sync. In index order the neighbour has always run first, so the racy kernels "work"; in reverse
 * or shuffled order the read finds shared memory's NaN poison or the value of before the launch. */
static __global__ void race_threads_kernel(float *out, int sync) {
    __shared__ float s[128];
    const int t = (int)threadIdx.x;
    s[t] = (float)(t + 1);
    if (sync) __syncthreads();
    out[t] = t ? s[t - 1] : 0.0f;
}
static __global__ void race_blocks_kernel(float *w, float *r) { /* w: zeroed by the caller */
    const int b = (int)blockIdx.x;
    if (threadIdx.x == 0) {
        w[b] = (float)(b + 1);
        r[b] = b ? w[b - 1] : 0.0f;
    }
}

/* which: 0 index (grid (3,2,2), block (4,3,2)), 1 shuffles (64 threads), 2 static shared (4 blocks
 * of 256), 3 dynamic shared (3 blocks of 128), 4 block sum (2 blocks of 1024, then 3 of 96), 5 the
 * mma product three ways (aux: A and B bf16, out: 384 floats), 10..13 the failing kernels, 14 a host
 * pointer as argument, 15 an mma in half a warp, 16 ldmatrix rows off 16 bytes, 17 an mma a lane left,
 * 18 a wgmma descriptor without the 128-byte swizzle, 19 a wgmma in a block of 64 threads, 20 an
 * uninitialised mbarrier, 21 arrivals past the count, 22 a wait nothing ends, 23 a TMA box to a misaligned
 * destination (aux: a 10 × 100 bf16 matrix, rows 104 apart), 24 a wgmma whose warpgroup lost half its
 * threads, 25 bar.sync 0, 26 a named barrier nobody completes, 27 / 28 race_threads without / with its
 * barrier (128 threads, out: 128 floats), 29 race_blocks (64 blocks, out: w then r, 128 floats), 41 / 42 a
 * launch with 49 KiB of dynamic shared memory without / with cudaFuncSetAttribute granting it. out/aux:
 * device buffers large enough.
 * (What TMA, named barriers and wgmma must do, as opposed to the rules, is tests/unit/test_hopper.c's.) */
extern "C" sf_status sf_emu_selftest(const sf_cuda_ctx *ctx, int which, void *out, void *aux, sf_err *err) {
    sf_status st = SF_OK;
    cudaStream_t s = SF_CUDA_STREAM(ctx);
    float *fo = (float *)out, *fa = (float *)aux;
    switch (which) {
    case 0: SF_LAUNCH(index_kernel, dim3(3, 2, 2), dim3(4, 3, 2), 0, s, (int *)out, (int *)aux); break;
    case 1: SF_LAUNCH(shfl_kernel, 1, 64, 0, s, (int *)out); break;
    case 2: SF_LAUNCH(shared_kernel, 4, 256, 0, s, fo, fa); break;
    case 3: SF_LAUNCH(dyn_shared_kernel, 3, 128, (128 + 1) * sizeof(float), s, fo, fa); break;
    case 4:
        SF_LAUNCH(block_sum_kernel, 2, 1024, 0, s, fo);
        CUDA_CHECK_LAUNCH("block_sum_kernel");
        SF_LAUNCH(block_sum_kernel, 3, 96, 0, s, fo + 4);
        break;
    case 10: SF_LAUNCH(early_exit_kernel, 1, 64, 0, s, fo); break;
    case 11: SF_LAUNCH(two_sites_kernel, 1, 64, 0, s, fo); break;
    case 12: SF_LAUNCH(warp_deadlock_kernel, 1, 64, 0, s, fo); break;
    case 13: SF_LAUNCH(missing_lane_kernel, 1, 48, 0, s, fo); break;
    case 5: SF_LAUNCH(mma_kernel, 1, 32, 0, s, (const __nv_bfloat16 *)aux, fo); break;
    case 15: SF_LAUNCH(mma_half_warp_kernel, 1, 16, 0, s, fo); break;
    case 16: SF_LAUNCH(ldsm_misaligned_kernel, 1, 32, 0, s, fo); break;
    case 17: SF_LAUNCH(mma_lane_gone_kernel, 1, 64, 0, s, fo); break;
    case 18: SF_LAUNCH(wgmma_noswizzle_kernel, 1, 128, 4096, s, fo); break;
    case 19: SF_LAUNCH(wgmma_noswizzle_kernel, 1, 64, 4096, s, fo); break;
    case 23: { /* aux: a 10 × 100 bf16 matrix, rows 104 apart */
        CUtensorMap map;
        SF_CHECK_STATUS(sf_tma_map_bf16(&map, aux, 10, 100, 104 * 2, 8, err));
        SF_LAUNCH(tma_misaligned_kernel, 1, 1, 4096, s, map, fo);
        break;
    }
    case 36:
    case 37: { /* aux as in case 23; 36 waits for the load, 37 does not */
        CUtensorMap map;
        SF_CHECK_STATUS(sf_tma_map_bf16(&map, aux, 10, 100, 104 * 2, 8, err));
        SF_LAUNCH(tma_read_kernel, 1, 64, 4096, s, map, fo, which == 36);
        break;
    }
    case 38:
    case 39: SF_LAUNCH(cp_read_kernel, 1, 64, 4096, s, (const __nv_bfloat16 *)aux, fo, which == 38); break;
    case 40: SF_LAUNCH(wgmma_no_proxy_fence_kernel, 1, 128, 16384, s, fo); break;
    case 41: SF_LAUNCH(smem_ungranted_kernel, 1, 32, 49 * 1024, s, fo); break;
    case 42:
        CUDA_CHECK(cudaFuncSetAttribute(smem_granted_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 49 * 1024));
        SF_LAUNCH(smem_granted_kernel, 1, 32, 49 * 1024, s, fo);
        break;
    case 25: SF_LAUNCH(named_bad_id_kernel, 1, 32, 0, s, fo); break;
    case 26: SF_LAUNCH(named_hang_kernel, 1, 64, 0, s, fo); break;
    case 20: SF_LAUNCH(mbar_uninit_kernel, 1, 32, 64, s, fo); break;
    case 21: SF_LAUNCH(mbar_extra_kernel, 1, 32, 64, s, fo); break;
    case 22: SF_LAUNCH(mbar_hang_kernel, 1, 64, 64, s, fo); break;
    case 24: SF_LAUNCH(wgmma_half_group_kernel, 1, 256, 16384, s, fo); break;
    case 30: SF_LAUNCH(wgmma_mixed_desc_kernel, 1, 128, 16384, s, fo); break;
    case 31: SF_LAUNCH(wgmma_async_kernel, 1, 128, 16384, s, fo, 0); break;
    case 32: SF_LAUNCH(wgmma_async_kernel, 1, 128, 16384, s, fo, 4); break;
    case 33: SF_LAUNCH(wgmma_async_kernel, 1, 128, 16384, s, fo, 1); break;
    case 34: SF_LAUNCH(wgmma_async_kernel, 1, 128, 16384, s, fo, 2); break;
    case 35: SF_LAUNCH(wgmma_async_kernel, 1, 128, 16384, s, fo, 3); break;
    case 27: SF_LAUNCH(race_threads_kernel, 1, 128, 0, s, fo, 0); break;
    case 28: SF_LAUNCH(race_threads_kernel, 1, 128, 0, s, fo, 1); break;
    case 29: SF_LAUNCH(race_blocks_kernel, 64, 32, 0, s, fo, fo + 64); break;
    case 14: {
        static float host[64];
        SF_LAUNCH(early_exit_kernel, 1, 64, 0, s, host);
        break;
    }
    default: return sf_fail(err, SF_E_ARG, "sf_emu_selftest: no case %d", which);
    }
    CUDA_CHECK_LAUNCH("selftest kernel");
    CUDA_CHECK(cudaStreamSynchronize(s));
    return SF_OK;
fail:
    return st;
}
