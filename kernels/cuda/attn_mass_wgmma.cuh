/* attn_mass_wgmma.cuh — the per-tile tensor-core products of the two wgmma attention kernels
 * (attn_mass_wg.cu, attn_mass_ws.cu): their K and V tiles sit in shared memory as d / 64 128-byte-swizzled
 * atoms of BN rows (K K-major, V N-major), Q is in registers as wgmma A fragments (sf_wgmma_load_a), S
 * and O have attn_mass_common.cuh's fragments. */
#ifndef SF_ATTN_MASS_WGMMA_CUH
#define SF_ATTN_MASS_WGMMA_CUH

#include "attn_mass_common.cuh"
#include "wgmma.cuh"

/* The wgmma products of one tile of BN keys: S = Q·Kᵀ into sc (Q from registers, K from its atoms at ka),
 * and O += P·V from P packed beforehand (am_wg_pack; V's atoms at va) — each issued and committed, not
 * waited for. The accumulators are fenced on both sides (no compiler-made copies or reads while the
 * tensor cores own them) and P is packed before any product is issued, so ptxas need not serialise the
 * products (its C7514 / C7519 / C7520 notes: tests/bats/build.bats) and S's registers are free for the
 * next tile's. */
template <int D, int BN>
static __device__ __forceinline__ void am_wg_qk(float (&sc)[BN / 8][4], const uint32_t (*qf)[4], uint32_t ka) {
    constexpr uint32_t ATOM = BN * 128;
    sf_wgmma_fence_regs(sc);
    sf_wgmma_fence();
    for (int kk = 0; kk < D / 16; kk++) { /* only K is read from shared memory */
        const uint64_t kd = sf_wgmma_desc(ka + (uint32_t)(kk / 4) * ATOM + (uint32_t)(kk % 4) * 32, 16, 1024);
        if constexpr (BN == 128) sf_wgmma_m64n128k16_rs(&sc[0][0], qf[kk], kd, kk > 0);
        else sf_wgmma_m64n64k16_rs(&sc[0][0], qf[kk], kd, kk > 0);
    }
    sf_wgmma_commit();
    sf_wgmma_fence_regs(sc);
}
template <int BN>
static __device__ __forceinline__ void am_wg_pack(uint32_t (&pa)[BN / 16][4], const float (&sc)[BN / 8][4]) {
    for (int kk = 0; kk < BN / 16; kk++) {
        pa[kk][0] = sf_pack_bf16x2(sc[2 * kk][0], sc[2 * kk][1]), pa[kk][1] = sf_pack_bf16x2(sc[2 * kk][2], sc[2 * kk][3]);
        pa[kk][2] = sf_pack_bf16x2(sc[2 * kk + 1][0], sc[2 * kk + 1][1]);
        pa[kk][3] = sf_pack_bf16x2(sc[2 * kk + 1][2], sc[2 * kk + 1][3]);
    }
}
template <int D, int BN>
static __device__ __forceinline__ void am_wg_pv(am_state<D / 8> &st, uint32_t (&pa)[BN / 16][4], uint32_t va) {
    constexpr uint32_t ATOM = BN * 128;
    sf_wgmma_fence_regs(st.oacc);
    sf_wgmma_fence();
    for (int kk = 0; kk < BN / 16; kk++) { /* V N-major: its d atoms ATOM apart */
        const uint64_t vd = sf_wgmma_desc(va + (uint32_t)kk * 16 * 128, ATOM, 1024);
        if constexpr (D == 128) sf_wgmma_m64n128k16_rs_tb(&st.oacc[0][0], pa[kk], vd, 1);
        else sf_wgmma_m64n64k16_rs_tb(&st.oacc[0][0], pa[kk], vd, 1);
    }
    sf_wgmma_commit();
    sf_wgmma_fence_regs(st.oacc);
}

#endif
