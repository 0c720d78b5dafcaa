/* attn_mass.cu — self-attention with the probability mass per key group in the same pass (the
 * attention-sink workbench's --tap-mode probs on the GPU). Contract: kernels/attn_mass_cuda.h; CPU
 * references: sf_attention_cpu (attention.h) and sf_tap_row_mass_cpu (tap_mass.h).
 *
 * Flash attention on the tensor cores (mma.sync m16n8k16 bf16 → f32, ldmatrix, cp.async double
 * buffering): a block of 4 warps takes 64 query rows of one head (16 per warp, Q in registers; 8 warps
 * and 128 rows with $SF_ATTN_BM128) and walks the keys in tiles of 64. Per tile and row: S = Q·Kᵀ
 * (scaled into log2 units), the running max m and sum l (flash attention's rescaling), P = 2^(S − m) (f32 for the masses, bf16 for P·V), and the
 * row's P summed over each key group the tile touches (a segment loop: one or two segments for key
 * frames of ≥ 64 tokens). A group's sum is kept relative to m like l and, when the keys leave the
 * group, stored as its log2-sum (log2 acc + m) in the row's rowmass slot; at the end the same thread
 * turns the slots into exp2(group − row log-sum) and writes lse. Sums over a quad's lanes use fixed
 * shuffles, nothing is atomic: the bits do not depend on scheduling. The row of a thread: g = lane/4
 * (and g + 8) of its warp's 16; its columns: 2·(lane%4) + {0, 1} of each 8-column n-tile. With no
 * groups (NG = 0) it is a plain fused attention: the DiT's attention where cuDNN is not available.
 * On sm_90 with $SF_ATTN_WGMMA, sf_attn_mass_cuda hands over to attn_mass_wg.cu, with $SF_ATTN_WS to the
 * warp-specialised TMA kernel of attn_mass_ws.cu (same contract; the first that applies runs). */
#include "attn_mass_common.cuh"
#include "attn_mass_cuda.h"

#include <stdlib.h>

/* Rows [r0, r0 + R) of a bf16 matrix (n rows, stride ld, D columns) → s (rows D + 8 apart: the
 * padding makes every ldmatrix phase hit 32 distinct banks); rows past n are zero-filled; T threads. */
template <int D, int R, int T>
static __device__ __forceinline__ void am_load_tile(__nv_bfloat16 *s, const __nv_bfloat16 *src, int64_t ld, int64_t r0,
                                                    int64_t n) {
    constexpr int LD = D + 8, CH = D / 8;
    for (int c = (int)threadIdx.x; c < R * CH; c += T) {
        const int r = c / CH, col = (c % CH) * 8;
        const bool in = r0 + r < n;
        sf_cp_async16(s + r * LD + col, src + (in ? (r0 + r) * ld : 0) + col, in ? 16 : 0);
    }
}

/* WARPS warps × 16 query rows per block (4: the default; 8: 128 rows sharing each K/V tile, half the
 * tile traffic per product — the A/B $SF_ATTN_BM128 asks for). */
template <int D, bool MASS, int WARPS>
static __global__ void __launch_bounds__(WARPS * 32)
    attn_mass_kernel(const __nv_bfloat16 *__restrict__ q, int64_t ldq, const __nv_bfloat16 *__restrict__ k,
                     const __nv_bfloat16 *__restrict__ v, int64_t ldk, __nv_bfloat16 *__restrict__ o, int64_t ldo,
                     int64_t Lq, int64_t Lk, float sl2, int64_t G, int64_t NG, float *__restrict__ rowmass,
                     float *__restrict__ lse) {
    constexpr int LD = D + 8, KS = D / 16, NT = D / 8, BM = WARPS * 16, T = WARPS * 32;
    SF_DYN_SHARED(__nv_bfloat16, sm);
    __nv_bfloat16 *Qs = sm, *Ks = sm + BM * LD, *Vs = Ks + 2 * AM_BN * LD;
    const int h = (int)blockIdx.y, warp = (int)threadIdx.x >> 5, lane = (int)threadIdx.x & 31, t = lane & 3;
    const int64_t q0 = (int64_t)blockIdx.x * BM, row0 = q0 + warp * 16 + (lane >> 2), base = (int64_t)h * Lq;
    const int64_t ntiles = (Lk + AM_BN - 1) / AM_BN;
    q += (int64_t)h * D, k += (int64_t)h * D, v += (int64_t)h * D, o += (int64_t)h * D;

    am_load_tile<D, BM, T>(Qs, q, ldq, q0, Lq);
    sf_cp_async_commit();
    am_load_tile<D, AM_BN, T>(Ks, k, ldk, 0, Lk);
    am_load_tile<D, AM_BN, T>(Vs, v, ldk, 0, Lk);
    sf_cp_async_commit();
    sf_cp_async_wait<1>();
    __syncthreads();
    uint32_t qf[KS][4]; /* the warp's 16 rows as A fragments, all of d */
    for (int kk = 0; kk < KS; kk++)
        sf_ldsm_x4(qf[kk], Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 + (lane >> 4) * 8);

    am_state<NT> st;
    am_state_init(st);
    for (int64_t j = 0; j < ntiles; j++) {
        const int buf = (int)(j & 1);
        if (j + 1 < ntiles) { /* the next tile streams in while this one is computed */
            am_load_tile<D, AM_BN, T>(Ks + (buf ^ 1) * AM_BN * LD, k, ldk, (j + 1) * AM_BN, Lk);
            am_load_tile<D, AM_BN, T>(Vs + (buf ^ 1) * AM_BN * LD, v, ldk, (j + 1) * AM_BN, Lk);
            sf_cp_async_commit();
            sf_cp_async_wait<1>();
        } else {
            sf_cp_async_wait<0>();
        }
        __syncthreads();
        const __nv_bfloat16 *Kt = Ks + buf * AM_BN * LD, *Vt = Vs + buf * AM_BN * LD;

        float s[8][4];
        for (int nt = 0; nt < 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
        for (int kk = 0; kk < KS; kk++)
            for (int nt = 0; nt < 8; nt += 2) {
                uint32_t b[4];
                sf_ldsm_x4(b, Kt + (nt * 8 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
                sf_mma_bf16_16816(s[nt], qf[kk], b);
                sf_mma_bf16_16816(s[nt + 1], qf[kk], b + 2);
            }
        am_tile_softmax<NT, MASS>(s, st, j * AM_BN, Lk, sl2, t, G, NG, rowmass, base, Lq, row0);
        for (int kk = 0; kk < AM_BN / 16; kk++) { /* O += P·V: the S accumulators are P's A fragments */
            const uint32_t pa[4] = {sf_pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), sf_pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                    sf_pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    sf_pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
            for (int nt = 0; nt < NT; nt += 2) {
                uint32_t b[4];
                sf_ldsm_x4_t(b, Vt + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + nt * 8 + (lane >> 4) * 8);
                sf_mma_bf16_16816(st.oacc[nt], pa, b);
                sf_mma_bf16_16816(st.oacc[nt + 1], pa, b + 2);
            }
        }
        __syncthreads(); /* the buffer just read is the next prefetch's target */
    }
    am_finish<NT, MASS>(st, t, NG, rowmass, lse, base, Lq, row0, o, ldo);
}

/* The kernel for head dim D, with or without groups (told apart by the launch's name), 4 warps per
 * block or with w8 8. */
template <int D>
static sf_status am_launch(const sf_cuda_ctx *ctx, int w8, int64_t Lq, int64_t Lk, int H, const void *q, int64_t ldq,
                           const void *k, const void *v, int64_t ldk, void *o, int64_t ldo, float scale, int64_t G,
                           int64_t NG, float *rowmass, float *lse, sf_err *err) {
    const size_t smem = (size_t)((w8 ? 128 : 64) + 4 * 64) * (D + 8) * sizeof(__nv_bfloat16); /* Q, 2 × K, 2 × V */
    if (w8)
        return am_launch_kernel(ctx, NG > 0 ? attn_mass_kernel<D, true, 8> : attn_mass_kernel<D, false, 8>,
                                NG > 0 ? "attn_mass_groups_bm128" : "attn_plain_bm128", 8, smem, Lq, Lk, H, q, ldq, k, v,
                                ldk, o, ldo, scale * AM_LOG2E, G, NG, rowmass, lse, err);
    return am_launch_kernel(ctx, NG > 0 ? attn_mass_kernel<D, true, 4> : attn_mass_kernel<D, false, 4>,
                            NG > 0 ? "attn_mass_groups" : "attn_plain", 4, smem, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo,
                            scale * AM_LOG2E, G, NG, rowmass, lse, err);
}

/* attn_mass_wg.cu: the same on Hopper's wgmma (two warpgroups per block with wide), when it applies. */
extern "C" sf_status sf_attn_mass_wg_try(const sf_cuda_ctx *ctx, int wide, int64_t Lq, int64_t Lk, int H, int d, const void *q,
                                         int64_t ldq, const void *k, const void *v, int64_t ldk, void *o, int64_t ldo,
                                         float sl2, int64_t G, int64_t NG, float *rowmass, float *lse, sf_err *err);

/* attn_mass_ws.cu: the warp-specialised TMA version (two consumer warpgroups, a producer), when it applies. */
extern "C" sf_status sf_attn_mass_ws_try(const sf_cuda_ctx *ctx, int mode, int wide, int64_t Lq, int64_t Lk, int H,
                                         int d, const void *q, int64_t ldq, const void *k, const void *v, int64_t ldk,
                                         void *o, int64_t ldo, float sl2, int64_t G, int64_t NG, float *rowmass,
                                         float *lse, sf_err *err);

/* An A/B knob: $name's number (0 when unset). Read per call (cheap beside a kernel; tests toggle it). */
static int am_knob(const char *name) {
    const char *v = getenv(name);
    const int n = v ? atoi(v) : 0;
    return n > 0 ? n : 0;
}

static const char *am_last;
static int am_last_split = 1;
static int64_t am_last_tail;
extern "C" void sf_attn_mass_note_kernel(const char *name) {
    am_last = name;
    am_last_split = 1, am_last_tail = 0;
}
extern "C" void sf_attn_mass_note_split(int nsplit, int64_t tail_units) {
    am_last_split = nsplit, am_last_tail = tail_units;
}
extern "C" const char *sf_attn_mass_last_kernel(void) { return am_last; }
extern "C" int sf_attn_mass_last_split(int64_t *tail_units) {
    if (tail_units) *tail_units = am_last_tail;
    return am_last_split;
}

extern "C" int sf_attn_mass_head_dim_ok(int d) { return d == 16 || d == 32 || d == 64 || d == 128; }

extern "C" sf_status sf_attn_mass_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int H, int d, const void *q,
                                       int64_t ldq, const void *k, const void *v, int64_t ldk, void *o, int64_t ldo,
                                       float scale, int64_t G, int64_t NG, float *rowmass, float *lse, sf_err *err) {
    sf_status st = SF_OK;
    const int wide = am_knob("SF_ATTN_BM128"); /* 128 query rows per block, either kernel */
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_attn_mass_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(Lq >= 0 && Lk >= 1 && H >= 1 && H <= 65535 && d >= 1 && G >= 1 && NG >= 0 && NG <= Lk / G &&
                        ldq >= (int64_t)H * d && ldk >= (int64_t)H * d && ldo >= (int64_t)H * d &&
                        (Lq + AM_BM - 1) / AM_BM <= INT_MAX && q && k && v && o && (rowmass || NG == 0),
                    "sf_attn_mass_cuda: bad shape Lq=%lld Lk=%lld H=%d d=%d G=%lld NG=%lld ldq=%lld ldk=%lld ldo=%lld",
                    (long long)Lq, (long long)Lk, H, d, (long long)G, (long long)NG, (long long)ldq, (long long)ldk,
                    (long long)ldo);
    if (!sf_attn_mass_head_dim_ok(d) || ((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)o) % 16 ||
        ldq % 8 || ldk % 8 || ldo % 8)
        return sf_fail(err, SF_E_UNSUPPORTED,
                       "sf_attn_mass_cuda: head dim %d or the strides / alignment do not suit the fused kernel "
                       "(needs d in {16, 32, 64, 128}, 16-byte rows)",
                       d);
    if (Lq == 0) return SF_OK;
    if (const int ws = am_knob("SF_ATTN_WS")) { /* 2: with the intra-warpgroup overlap, 3: and ping-pong */
        st = sf_attn_mass_ws_try(ctx, ws, am_knob("SF_ATTN_WS_BN") == 128, Lq, Lk, H, d, q, ldq, k, v, ldk, o, ldo, scale * AM_LOG2E, G, NG, rowmass,
                                 lse, err);
        if (st != SF_E_UNSUPPORTED) return st;
        st = SF_OK;
    }
    if (am_knob("SF_ATTN_WGMMA")) {
        st = sf_attn_mass_wg_try(ctx, wide, Lq, Lk, H, d, q, ldq, k, v, ldk, o, ldo, scale * AM_LOG2E, G, NG, rowmass, lse,
                                 err);
        if (st != SF_E_UNSUPPORTED) return st;
        st = SF_OK;
    }
    switch (d) {
    case 16: return am_launch<16>(ctx, wide, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo, scale, G, NG, rowmass, lse, err);
    case 32: return am_launch<32>(ctx, wide, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo, scale, G, NG, rowmass, lse, err);
    case 64: return am_launch<64>(ctx, wide, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo, scale, G, NG, rowmass, lse, err);
    default: return am_launch<128>(ctx, wide, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo, scale, G, NG, rowmass, lse, err);
    }
fail:
    return st;
}
