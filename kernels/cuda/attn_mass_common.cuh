/* attn_mass_common.cuh — the per-tile arithmetic shared by the two fused attention + mass kernels
 * (attn_mass.cu on mma.sync, attn_mass_wg.cu on Hopper's wgmma): both hold a 64-key tile of S in the
 * same fragment (s[j][i]: row 16·warp + lane/4 (+8 for i ≥ 2), column 8j + 2·(lane%4) + i%2) and O
 * likewise (oacc[j][i], columns 8j + …), so the online softmax, the key-group sums and the final
 * normalisation are one code. Contract and method: kernels/attn_mass_cuda.h, attn_mass.cu's header. */
#ifndef SF_ATTN_MASS_COMMON_CUH
#define SF_ATTN_MASS_COMMON_CUH

#include "cuda_common.cuh"

#define AM_BM 64 /* query rows per block by default: 4 warps × 16 (the launch takes the block's warps) */
#define AM_BN 64 /* keys per tile */
#define AM_THREADS 128 /* threads of a default block (one warpgroup) */
#define AM_LOG2E 1.4426950408889634f
#define AM_LN2 0.6931471805599453f

/* Sum over the four lanes of a quad (the lanes holding one row), the same order on every lane. */
static __device__ __forceinline__ float am_quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
static __device__ __forceinline__ float am_quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

/* Group gi's sum for the thread's two rows (relative to m) → its log2-sum in the rows' slots. */
static __device__ __forceinline__ void am_flush(float *rowmass, int64_t base, int64_t Lq, int64_t NG, int64_t row0,
                                                int64_t gi, const float acc[2], const float m[2]) {
    if ((threadIdx.x & 3) || gi >= NG) return;
    for (int r = 0; r < 2; r++) {
        const int64_t row = row0 + 8 * r;
        if (row < Lq) rowmass[(base + row) * NG + gi] = log2f(acc[r]) + m[r];
    }
}

/* A thread's running state over the key tiles, for its two rows: max m and sum l (log2 units), the
 * open key group gcur and its sum acc (relative to m), and its part of O (NT 8-column chunks). */
template <int NT>
struct am_state {
    float m[2], l[2], acc[2];
    float oacc[NT][4];
    int64_t gcur;
};
template <int NT>
static __device__ __forceinline__ void am_state_init(am_state<NT> &st) {
    for (int r = 0; r < 2; r++) st.m[r] = -INFINITY, st.l[r] = 0.0f, st.acc[r] = 0.0f;
    for (int nt = 0; nt < NT; nt++) st.oacc[nt][0] = st.oacc[nt][1] = st.oacc[nt][2] = st.oacc[nt][3] = 0.0f;
    st.gcur = -1;
}

/* O's rescale by the factors am_tile_softmax returns (when the caller defers it: RESCALE_O = false). */
template <int NT>
static __device__ __forceinline__ void am_rescale_o(am_state<NT> &st, const float alpha[2]) {
    for (int nt = 0; nt < NT; nt++) {
        st.oacc[nt][0] *= alpha[0], st.oacc[nt][1] *= alpha[0];
        st.oacc[nt][2] *= alpha[1], st.oacc[nt][3] *= alpha[1];
    }
}

/* One tile of S (raw q·k sums) at keys [key0, key0 + 8·NS) (NS n-tiles of 8: 64 keys by default, 128 for
 * the warp-specialised kernel's wide tiles): scaled into log2 units and masked past Lk,
 * the running max m and sum l (and O, and the open group's sum) rescaled, S turned into P = 2^(S − m),
 * and with MASS the tile's key groups summed in key order (a group the keys leave is flushed). With
 * RESCALE_O = false, O is left alone and its factors go to alpha_out (O may still be the target of an
 * asynchronous product: the caller rescales after waiting for it, am_rescale_o). */
template <int NT, bool MASS, bool RESCALE_O = true, int NS = AM_BN / 8>
static __device__ __forceinline__ void am_tile_softmax(float (*s)[4], am_state<NT> &st, int64_t key0, int64_t Lk, float sl2,
                                                       int t, int64_t G, int64_t NG, float *rowmass, int64_t base,
                                                       int64_t Lq, int64_t row0, float *alpha_out = nullptr) {
    float *m = st.m, *l = st.l, *acc = st.acc;
    int64_t &gcur = st.gcur;
    const int64_t kend = key0 + 8 * NS < Lk ? key0 + 8 * NS : Lk;
    const int nvalid = (int)(kend - key0); /* columns are tile-relative from here on */
    float mx[2] = {-INFINITY, -INFINITY};
    for (int nt = 0; nt < NS; nt++)
        for (int i = 0; i < 4; i++) {
            const int col = nt * 8 + 2 * t + (i & 1);
            const float x = col < nvalid ? s[nt][i] * sl2 : -INFINITY;
            s[nt][i] = x;
            mx[i >> 1] = fmaxf(mx[i >> 1], x);
        }
    float mn[2], alpha[2], rs[2] = {0.0f, 0.0f};
    for (int r = 0; r < 2; r++) {
        mn[r] = fmaxf(m[r], am_quad_max(mx[r])); /* finite: every tile has a key */
        alpha[r] = exp2f(m[r] - mn[r]);
    }
    for (int nt = 0; nt < NS; nt++)
        for (int i = 0; i < 4; i++) {
            const float p = exp2f(s[nt][i] - mn[i >> 1]);
            s[nt][i] = p;
            rs[i >> 1] += p;
        }
    for (int r = 0; r < 2; r++) {
        l[r] = l[r] * alpha[r] + am_quad_sum(rs[r]);
        acc[r] *= alpha[r];
    }
    if constexpr (RESCALE_O) am_rescale_o<NT>(st, alpha);
    else alpha_out[0] = alpha[0], alpha_out[1] = alpha[1];
    for (int64_t a = key0; MASS && a < kend;) { /* the key groups this tile touches, in key order */
        const int64_t gs = a / G, b = (gs + 1) * G < kend ? (gs + 1) * G : kend;
        const int ca = (int)(a - key0), cb = (int)(b - key0);
        float part[2] = {0.0f, 0.0f};
        for (int nt = 0; nt < NS; nt++)
            for (int i = 0; i < 4; i++) {
                const int col = nt * 8 + 2 * t + (i & 1);
                if (col >= ca && col < cb) part[i >> 1] += s[nt][i];
            }
        part[0] = am_quad_sum(part[0]), part[1] = am_quad_sum(part[1]);
        if (gs != gcur) {
            if (gcur >= 0) am_flush(rowmass, base, Lq, NG, row0, gcur, acc, mn);
            gcur = gs, acc[0] = part[0], acc[1] = part[1];
        } else {
            acc[0] += part[0], acc[1] += part[1];
        }
        a = b;
    }
    m[0] = mn[0], m[1] = mn[1];
}

/* After the last tile: the open group flushed, the rows' masses exp2(group − row log-sum), lse, and O
 * divided by l into bf16 (rows past Lq skipped). */
template <int NT, bool MASS>
static __device__ __forceinline__ void am_finish(am_state<NT> &st, int t, int64_t NG, float *rowmass, float *lse,
                                                 int64_t base, int64_t Lq, int64_t row0, __nv_bfloat16 *o, int64_t ldo) {
    const float *m = st.m, *l = st.l, *acc = st.acc;
    float(*oacc)[4] = st.oacc;
    const int64_t gcur = st.gcur;
    if (MASS && gcur >= 0) am_flush(rowmass, base, Lq, NG, row0, gcur, acc, m);
    for (int r = 0; r < 2; r++) {
        const int64_t row = row0 + 8 * r;
        if (row >= Lq) continue;
        const float lse2 = m[r] + log2f(l[r]), inv = 1.0f / l[r];
        if (MASS && t == 0) {
            float *rm = rowmass + (base + row) * NG;
            for (int64_t gi = 0; gi < NG; gi++) rm[gi] = exp2f(rm[gi] - lse2);
        }
        if (t == 0 && lse) lse[base + row] = lse2 * AM_LN2;
        uint32_t *orow = reinterpret_cast<uint32_t *>(o + row * ldo + 2 * t);
        for (int nt = 0; nt < NT; nt++) orow[nt * 4] = sf_pack_bf16x2(oacc[nt][2 * r] * inv, oacc[nt][2 * r + 1] * inv);
    }
}

/* Remembers the launch name for sf_attn_mass_last_kernel (attn_mass.cu). */
extern "C" void sf_attn_mass_note_kernel(const char *name);
/* ... and, after it, how the kernel split its last wave (attn_mass_ws.cu: nsplit blocks for each of
 * tail_units units; 1, 0 when not). */
extern "C" void sf_attn_mass_note_split(int nsplit, int64_t tail_units);

/* Both kernels' signature, and their common launch: warps × 16 query rows of one head per block, the
 * dynamic shared memory limit raised to smem, launched under name (the variant). */
typedef void (*am_kernel)(const __nv_bfloat16 *, int64_t, const __nv_bfloat16 *, const __nv_bfloat16 *, int64_t,
                          __nv_bfloat16 *, int64_t, int64_t, int64_t, float, int64_t, int64_t, float *, float *);
static inline sf_status am_launch_kernel(const sf_cuda_ctx *ctx, am_kernel kern, const char *name, int warps, size_t smem,
                                         int64_t Lq, int64_t Lk, int H, const void *q, int64_t ldq, const void *k,
                                         const void *v, int64_t ldk, void *o, int64_t ldo, float sl2, int64_t G,
                                         int64_t NG, float *rowmass, float *lse, sf_err *err) {
    sf_status st = SF_OK;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    SF_LAUNCH_NAMED(name, kern, dim3((unsigned)((Lq + 16 * warps - 1) / (16 * warps)), (unsigned)H), 32 * warps, smem,
                    SF_CUDA_STREAM(ctx), (const __nv_bfloat16 *)q, ldq, (const __nv_bfloat16 *)k,
                    (const __nv_bfloat16 *)v, ldk, (__nv_bfloat16 *)o, ldo, Lq, Lk, sl2, G, NG, rowmass, lse);
    CUDA_CHECK_LAUNCH(name);
    sf_attn_mass_note_kernel(name);
    return SF_OK;
fail:
    return st;
}

#endif
