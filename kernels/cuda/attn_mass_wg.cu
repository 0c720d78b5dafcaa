/* attn_mass_wg.cu — the fused attention + key-group mass of attn_mass.cu on Hopper's warpgroup MMA
 * (wgmma, sm_90a): same contract (kernels/attn_mass_cuda.h), same per-tile arithmetic
 * (attn_mass_common.cuh), the products on wgmma instead of mma.sync. Head dims 64 and 128.
 *
 * A block is one warpgroup (128 threads) over 64 query rows of one head (or, with $SF_ATTN_BM128, two
 * over 128 rows sharing each key tile); keys in tiles of 64, double-buffered by cp.async. Shared memory
 * holds Q, K and V in 128-byte-swizzled atoms of 64 (Q: 64 or 128) rows × 64 bf16 ([d / 64][row][128
 * bytes], chunk c of row r at c ^ (r % 8)). Q goes once into registers as wgmma A fragments; per tile,
 * S = Q·Kᵀ (m64n64k16, A from registers, K K-major from shared memory, d / 16 steps) and O += P·V
 * (m64n{d}k16 with trans-b, P from the S accumulators, V N-major, 4 steps of 16 keys) are the products of
 * attn_mass_wgmma.cuh, shared with attn_mass_ws.cu. The S and O accumulators have attn_mass.cu's
 * fragments, so the softmax / mass code is shared too.
 * Tested against the CPU references with attn_mass.cu's cases ($SF_ATTN_WGMMA=1 in test_tap_mass:
 * attn_mass_wgmma, attn_mass_wgmma_bm128), on the emulation (cuda_emu.h emulates wgmma from the PTX layouts) and on an H200
 * (test_tap_mass_gpu, tests/gpu/check.sh). */
#include "attn_mass_common.cuh"
#include "attn_mass_cuda.h"
#include "attn_mass_wgmma.cuh"

/* Rows [r0, r0 + R) of a bf16 matrix (n rows, stride ld, D columns) → the swizzled atoms at s (each
 * R rows × 128 bytes); rows past n zero-filled; T threads. */
template <int D, int R, int T>
static __device__ __forceinline__ void wg_load_tile(__nv_bfloat16 *s, const __nv_bfloat16 *src, int64_t ld, int64_t r0,
                                                    int64_t n) {
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    for (int c = (int)threadIdx.x; c < R * CH; c += T) {
        const int r = c / CH, ch = c % CH, atom = ch / 8;
        const bool in = r0 + r < n;
        sf_cp_async16(s + atom * R * 64 + r * 64 + sf_swz128(r, ch % 8) * 8, src + (in ? (r0 + r) * ld : 0) + ch * 8,
                      in ? 16 : 0);
    }
}

/* WGS warpgroups × 64 query rows per block (1: the default; 2: 128 rows sharing each K/V tile — the
 * A/B $SF_ATTN_BM128 asks for). */
template <int D, bool MASS, int WGS>
static __global__ void __launch_bounds__(WGS * 128)
    attn_mass_wg_kernel(const __nv_bfloat16 *__restrict__ q, int64_t ldq, const __nv_bfloat16 *__restrict__ k,
                        const __nv_bfloat16 *__restrict__ v, int64_t ldk, __nv_bfloat16 *__restrict__ o, int64_t ldo,
                        int64_t Lq, int64_t Lk, float sl2, int64_t G, int64_t NG, float *__restrict__ rowmass,
                        float *__restrict__ lse) {
    constexpr int NT = D / 8, TILE = 64 * D, BM = 64 * WGS, T = 128 * WGS; /* TILE: elements of a 64-row tile */
    constexpr uint32_t QATOM = BM * 128; /* bytes of one Q atom (K / V atoms: attn_mass_wgmma.cuh) */
    SF_DYN_SHARED(__nv_bfloat16, sm_raw);
    /* the atoms must sit on 1024-byte boundaries of the shared window (the swizzle's period) */
    __nv_bfloat16 *sm = sm_raw + ((1024u - (sf_smem_addr(sm_raw) & 1023u)) & 1023u) / 2;
    __nv_bfloat16 *Qs = sm, *Ks = sm + BM * D, *Vs = Ks + 2 * TILE;
    const int h = (int)blockIdx.y, warp = (int)threadIdx.x >> 5, lane = (int)threadIdx.x & 31, t = lane & 3;
    const int64_t q0 = (int64_t)blockIdx.x * BM, row0 = q0 + warp * 16 + (lane >> 2), base = (int64_t)h * Lq;
    const int64_t ntiles = (Lk + AM_BN - 1) / AM_BN;
    q += (int64_t)h * D, k += (int64_t)h * D, v += (int64_t)h * D, o += (int64_t)h * D;

    wg_load_tile<D, BM, T>(Qs, q, ldq, q0, Lq);
    wg_load_tile<D, 64, T>(Ks, k, ldk, 0, Lk);
    wg_load_tile<D, 64, T>(Vs, v, ldk, 0, Lk);
    sf_cp_async_commit();
    uint32_t qf[D / 16][4]; /* this warp's 16 query rows (of its warpgroup's 64) as wgmma A fragments */

    am_state<NT> st;
    am_state_init(st);
    for (int64_t j = 0; j < ntiles; j++) {
        const int buf = (int)(j & 1);
        if (j + 1 < ntiles) {
            wg_load_tile<D, 64, T>(Ks + (buf ^ 1) * TILE, k, ldk, (j + 1) * AM_BN, Lk);
            wg_load_tile<D, 64, T>(Vs + (buf ^ 1) * TILE, v, ldk, (j + 1) * AM_BN, Lk);
            sf_cp_async_commit();
            sf_cp_async_wait<1>();
        } else {
            sf_cp_async_wait<0>();
        }
        sf_fence_proxy_async(); /* this thread's cp.async writes, visible to the tensor cores' reads */
        __syncthreads();
        const uint32_t ka = sf_smem_addr(Ks + buf * TILE), va = sf_smem_addr(Vs + buf * TILE);

        if (j == 0) /* Q into registers once (wgmma A fragments): S = Q·Kᵀ then reads only K from shared memory */
            sf_wgmma_load_a<D / 16>(qf, reinterpret_cast<const unsigned char *>(Qs), QATOM, warp * 16);
        float s[8][4];
        uint32_t pa[AM_BN / 16][4];
        am_wg_qk<D, AM_BN>(s, qf, ka); /* S = Q·Kᵀ: only K is read from shared memory */
        sf_wgmma_wait<0>();
        sf_wgmma_fence_regs(s); /* no read of S may be scheduled above the wait (PTX: undefined) */
        am_tile_softmax<NT, MASS>(s, st, j * AM_BN, Lk, sl2, t, G, NG, rowmass, base, Lq, row0);
        am_wg_pack<AM_BN>(pa, s); /* P packed before the first product (else ptxas fences each product: C7519) */
        am_wg_pv<D, AM_BN>(st, pa, va); /* O += P·V (O was rescaled in registers) */
        sf_wgmma_wait<0>();
        sf_wgmma_fence_regs(st.oacc);
        __syncthreads(); /* the buffer just read is the next prefetch's target */
    }
    am_finish<NT, MASS>(st, t, NG, rowmass, lse, base, Lq, row0, o, ldo);
}

template <int D>
static sf_status wg_launch(const sf_cuda_ctx *ctx, int two, int64_t Lq, int64_t Lk, int H, const void *q, int64_t ldq,
                           const void *k, const void *v, int64_t ldk, void *o, int64_t ldo, float sl2, int64_t G,
                           int64_t NG, float *rowmass, float *lse, sf_err *err) {
    const size_t smem = (size_t)((two ? 128 : 64) + 4 * 64) * D * sizeof(__nv_bfloat16) + 1024; /* Q, 2 K, 2 V; slack */
    if (two)
        return am_launch_kernel(ctx, NG > 0 ? attn_mass_wg_kernel<D, true, 2> : attn_mass_wg_kernel<D, false, 2>,
                                NG > 0 ? "attn_mass_groups_wg_bm128" : "attn_plain_wg_bm128", 8, smem, Lq, Lk, H, q, ldq,
                                k, v, ldk, o, ldo, sl2, G, NG, rowmass, lse, err);
    return am_launch_kernel(ctx, NG > 0 ? attn_mass_wg_kernel<D, true, 1> : attn_mass_wg_kernel<D, false, 1>,
                            NG > 0 ? "attn_mass_groups_wg" : "attn_plain_wg", 4, smem, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo,
                            sl2, G, NG, rowmass, lse, err);
}

/* Called by sf_attn_mass_cuda (attn_mass.cu) when $SF_ATTN_WGMMA asks for it, after its checks (wide:
 * two warpgroups per block): SF_E_UNSUPPORTED when this kernel does not apply (head dim, device), so the
 * caller runs attn_mass.cu's. */
extern "C" sf_status sf_attn_mass_wg_try(const sf_cuda_ctx *ctx, int wide, int64_t Lq, int64_t Lk, int H, int d,
                                         const void *q, int64_t ldq, const void *k, const void *v, int64_t ldk, void *o,
                                         int64_t ldo, float sl2, int64_t G, int64_t NG, float *rowmass, float *lse,
                                         sf_err *err) {
    if ((d != 64 && d != 128) || !sf_wgmma_device_ok(ctx->ordinal)) return SF_E_UNSUPPORTED;
    return d == 128 ? wg_launch<128>(ctx, wide, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo, sl2, G, NG, rowmass, lse, err)
                    : wg_launch<64>(ctx, wide, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo, sl2, G, NG, rowmass, lse, err);
}
