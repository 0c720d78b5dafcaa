/* hopper_probe.cu — the probes of kernels/hopper_probe_cuda.h: wgmma in each operand form the attention
 * kernels use, TMA through an mbarrier ring, named-barrier turns. Same helpers as attn_mass_ws.cu
 * (wgmma.cuh, tma.cuh), smallest shapes; tested by tests/unit/test_hopper.c (emulation and GPU). */
#include "hopper_probe_cuda.h"
#include "tma.cuh"

/* Element (r, c) of an R-row matrix stored as 128-byte-swizzled atoms of 64 contiguous columns: the
 * byte offset from the (1024-aligned) first atom. K-major operands (c = k) and N-major ones (c = n,
 * r = k) alike. */
static __device__ __forceinline__ uint32_t hp_swz(int R, int r, int c) {
    return (uint32_t)((c / 64) * R * 128 + r * 128 + sf_swz128(r, (c % 64) / 8) * 16 + (c % 8) * 2);
}
/* rows × cols bf16 row-major (global) → swizzled atoms at s, by the block's threads */
static __device__ void hp_store(unsigned char *s, const __nv_bfloat16 *g, int rows, int cols) {
    for (int e = (int)threadIdx.x; e < rows * cols; e += (int)blockDim.x)
        *reinterpret_cast<__nv_bfloat16 *>(s + hp_swz(rows, e / cols, e % cols)) = g[e];
}

template <int MODE>
static __global__ void __launch_bounds__(128) hp_wgmma_kernel(const __nv_bfloat16 *a, const __nv_bfloat16 *b, float *d) {
    constexpr bool QK = MODE <= 1 || MODE == 4; /* B K-major (N rows × 128 k), else N-major (64 k × N) */
    constexpr int N = MODE == 2 || MODE == 4 ? 128 : 64, KA = QK ? 128 : 64;
    constexpr uint32_t ATOM = 64 * 128, BATOM = (QK ? N : 64) * 128; /* A's atoms: 64 rows; B's: its rows */
    SF_DYN_SHARED(unsigned char, raw);
    unsigned char *sa = raw + ((1024u - (sf_smem_addr(raw) & 1023u)) & 1023u), *sb = sa + 2 * ATOM;
    hp_store(sa, a, 64, KA);
    if (QK) hp_store(sb, b, N, 128); /* B: N n-rows × 128 k, K-major */
    else hp_store(sb, b, 64, N);     /* V: 64 k-rows × N n, N-major */
    sf_fence_proxy_async();
    __syncthreads();
    const int warp = (int)threadIdx.x >> 5, lane = (int)threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const uint32_t a0 = sf_smem_addr(sa), b0 = sf_smem_addr(sb);
    float acc[N / 2];
    uint32_t af[KA / 16][4];
    if (MODE >= 1) sf_wgmma_load_a<KA / 16>(af, sa, ATOM, warp * 16);
    sf_wgmma_fence_regs(acc);
    sf_wgmma_fence();
    for (int kk = 0; kk < KA / 16; kk++) {
        const uint32_t in_atom = (uint32_t)(kk / 4) * ATOM + (uint32_t)(kk % 4) * 32,
                       in_batom = (uint32_t)(kk / 4) * BATOM + (uint32_t)(kk % 4) * 32;
        if constexpr (MODE == 0)
            sf_wgmma_m64n64k16_ss(acc, sf_wgmma_desc(a0 + in_atom, 16, 1024), sf_wgmma_desc(b0 + in_batom, 16, 1024), kk > 0);
        else if constexpr (MODE == 1)
            sf_wgmma_m64n64k16_rs(acc, af[kk], sf_wgmma_desc(b0 + in_batom, 16, 1024), kk > 0);
        else if constexpr (MODE == 4)
            sf_wgmma_m64n128k16_rs(acc, af[kk], sf_wgmma_desc(b0 + in_batom, 16, 1024), kk > 0);
        else if constexpr (MODE == 2)
            sf_wgmma_m64n128k16_rs_tb(acc, af[kk], sf_wgmma_desc(b0 + (uint32_t)kk * 16 * 128, ATOM, 1024), kk > 0);
        else
            sf_wgmma_m64n64k16_rs_tb(acc, af[kk], sf_wgmma_desc(b0 + (uint32_t)kk * 16 * 128, ATOM, 1024), kk > 0);
    }
    sf_wgmma_commit();
    sf_wgmma_wait<0>();
    sf_wgmma_fence_regs(acc);
    for (int j = 0; j < N / 8; j++) /* the accumulator fragment: rows 16·warp + g (+8), columns 8j + 2t (+1) */
        for (int i = 0; i < 4; i++) d[(16 * warp + g + 8 * (i >> 1)) * N + 8 * j + 2 * t + (i & 1)] = acc[4 * j + i];
}

extern "C" sf_status sf_hopper_probe_wgmma(const sf_cuda_ctx *ctx, int mode, const void *a, const void *b, float *d,
                                           sf_err *err) {
    sf_status st = SF_OK;
    const size_t smem = 2 * 64 * 128 + 2 * 128 * 128 + 1024; /* A's atoms, B's (up to 128 rows), slack */
    if (!ctx || !ctx->stream || mode < 0 || mode > 4 || !a || !b || !d)
        return sf_fail(err, SF_E_ARG, "sf_hopper_probe_wgmma: bad arguments (mode %d)", mode);
    if (!sf_wgmma_device_ok(ctx->ordinal)) return sf_fail(err, SF_E_UNSUPPORTED, "wgmma needs an sm_90 device");
    const __nv_bfloat16 *ab = (const __nv_bfloat16 *)a, *bb = (const __nv_bfloat16 *)b;
    static void (*const kern[5])(const __nv_bfloat16 *, const __nv_bfloat16 *, float *) = {
        hp_wgmma_kernel<0>, hp_wgmma_kernel<1>, hp_wgmma_kernel<2>, hp_wgmma_kernel<3>, hp_wgmma_kernel<4>};
    static const char *const name[5] = {"hp_wgmma_qk_ss", "hp_wgmma_qk_rs", "hp_wgmma_pv128", "hp_wgmma_pv64",
                                        "hp_wgmma_qk128"};
    /* over 48 KiB of dynamic shared memory: the kernel must be granted it first (a GPU refuses the launch) */
    CUDA_CHECK(cudaFuncSetAttribute(kern[mode], cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    SF_LAUNCH_NAMED(name[mode], kern[mode], 1, 128, smem, SF_CUDA_STREAM(ctx), ab, bb, d);
    CUDA_CHECK_LAUNCH("hp_wgmma");
    return SF_OK;
fail:
    return st;
}

/* Thread 0 loads box r once warp 1 has released the stage; warp 1 waits for it and copies it out. */
static __global__ void hp_tma_kernel(const __grid_constant__ CUtensorMap map, float *out, uint32_t mbar_ns) {
    SF_DYN_SHARED(unsigned char, raw);
    unsigned char *sm = raw + ((1024u - (sf_smem_addr(raw) & 1023u)) & 1023u);
    uint64_t *full = reinterpret_cast<uint64_t *>(sm + 1024), *empty = full + 1;
    if (threadIdx.x == 0) {
        sf_mbar_init(full, 1), sf_mbar_init(empty, 32);
        sf_mbar_fence_init();
    }
    __syncthreads();
    for (int r = 0; r < 4; r++) {
        if (threadIdx.x == 0) {
            if (r) sf_mbar_wait(empty, (unsigned)((r - 1) & 1), mbar_ns);
            sf_mbar_arrive_expect_tx(full, 8 * 128);
            sf_tma_load_2d(sm, &map, 64 * (r % 2), 6 * r - 3, full);
        } else if (threadIdx.x >= 32) {
            sf_mbar_wait(full, (unsigned)(r & 1), mbar_ns);
            const __nv_bfloat16 *box = reinterpret_cast<const __nv_bfloat16 *>(sm);
            for (int e = (int)threadIdx.x - 32; e < 512; e += 32) {
                const int row = e / 64, chunk = (e % 64) / 8;
                out[r * 512 + e] = __bfloat162float(box[row * 64 + sf_swz128(row, chunk) * 8 + e % 8]);
            }
            sf_mbar_arrive(empty);
        }
    }
}

extern "C" sf_status sf_hopper_probe_tma(const sf_cuda_ctx *ctx, const void *m, int64_t rows, int64_t cols,
                                         int64_t pitch, float *out, sf_err *err) {
    sf_status st = SF_OK;
    CUtensorMap map;
    if (!ctx || !ctx->stream || !m || !out || rows < 1 || cols < 64 || pitch < cols)
        return sf_fail(err, SF_E_ARG, "sf_hopper_probe_tma: bad arguments");
    if (!sf_wgmma_device_ok(ctx->ordinal)) return sf_fail(err, SF_E_UNSUPPORTED, "TMA needs an sm_90 device");
    SF_CHECK_STATUS(sf_tma_map_bf16(&map, m, (uint64_t)rows, (uint64_t)cols, (uint64_t)pitch * 2, 8, err));
    SF_LAUNCH_NAMED("hp_tma", hp_tma_kernel, 1, 64, 2048 + 1024, SF_CUDA_STREAM(ctx), map, out,
                    sf_mbar_limit_env());
    CUDA_CHECK_LAUNCH("hp_tma");
    return SF_OK;
fail:
    return st;
}

/* Warp w takes its turns on named barrier 1 + w (64 threads: its own 32 waiting, the other warp's 32
 * arriving after its turn); warp 1 hands the first turn over, and its last turn hands over to no one. */
static __global__ void hp_turns_kernel(float *out) {
    __shared__ int log[8], pos;
    const unsigned w = threadIdx.x >> 5, mine = 1 + w, other = 2 - w;
    if (threadIdx.x == 0) pos = 0;
    __syncthreads();
    if (w == 1) sf_named_arrive(1, 64);
    for (int turn = 0; turn < 4; turn++) {
        sf_named_sync(mine, 64);
        if ((threadIdx.x & 31) == 0) log[pos++] = (int)w;
        __syncwarp();
        if (w == 0 || turn < 3) sf_named_arrive(other, 64);
    }
    __syncthreads();
    if (threadIdx.x < 8) out[threadIdx.x] = (float)log[threadIdx.x];
}

extern "C" sf_status sf_hopper_probe_turns(const sf_cuda_ctx *ctx, float *out, sf_err *err) {
    sf_status st = SF_OK;
    if (!ctx || !ctx->stream || !out) return sf_fail(err, SF_E_ARG, "sf_hopper_probe_turns: bad arguments");
    if (!sf_wgmma_device_ok(ctx->ordinal)) return sf_fail(err, SF_E_UNSUPPORTED, "the probes need an sm_90 device");
    SF_LAUNCH_NAMED("hp_turns", hp_turns_kernel, 1, 64, 0, SF_CUDA_STREAM(ctx), out);
    CUDA_CHECK_LAUNCH("hp_turns");
    return SF_OK;
fail:
    return st;
}
