/* attn_mass_ws.cu — the fused attention + key-group mass (contract: kernels/attn_mass_cuda.h) as a
 * warp-specialised Hopper kernel: a producer warpgroup feeds K/V tiles by TMA through a ring of
 * shared-memory stages while two consumer warpgroups compute, FlashAttention-3's division of labour.
 * Opt-in ($SF_ATTN_WS=1, sm_90, head dims 64/128) until the H200 has measured it against cuDNN and the
 * other two kernels (sf-denoise --bench attn).
 *
 * A block = 3 warpgroups over 128 query rows of one head:
 *   producer (warpgroup 0, one thread): loads Q once (TMA, 2 × d/64 boxes of 64 rows), then for each
 *     key tile j (64 keys; 128 with $SF_ATTN_WS_BN=128) waits until stage j % STAGES's K buffer is free
 *     (its `kempty` barrier), announces its bytes on `kfull` and issues the K boxes, then the same for V
 *     (`vempty`, `vfull`) — d/64 boxes of BN rows × 64 columns each, 128-byte swizzled (the layout wgmma's
 *     descriptors read; rows past Lk zero-filled);
 *   consumers (warpgroups 1, 2; 64 query rows each; 240 registers each by setmaxnreg, the producer
 *     keeps 24): Q once into registers (ldmatrix from the swizzled atoms: the wgmma A fragments), then
 *     per tile wait for its `full` phase, S = Q·Kᵀ on wgmma with A from registers (only K is read from
 *     shared memory: at 64 keys per tile, Q read from shared memory by every product would take most of
 *     its bandwidth), O += P·V as attn_mass_wg.cu, the shared per-tile softmax / mass code
 *     (attn_mass_common.cuh); each consumer warp arrives on `kempty` / `vempty` once the products reading
 *     that K / V have completed (wgmma.wait_group), so K and V are refilled independently.
 * Loads never wait for compute unless all stages are full, and consumer registers hold no addresses
 * for loads. $SF_ATTN_WS=2 adds FA3's intra-warpgroup overlap (tile j's S = Q·Kᵀ and tile j − 1's
 * O += P·V in flight on the tensor cores while the warpgroup runs tile j's softmax; O rescaled once
 * its product is done); =3 adds FA3's ping-pong of the two consumers (named barriers: one's softmax
 * while the other's products run). $SF_ATTN_WS_BN=128 makes the key tiles 128 wide (a ring of 2 stages of
 * 64 KB at d = 128; S = Q·Kᵀ as m64n128k16; half the per-tile barrier, fence and softmax-reduction
 * overhead): FA3's tile for d = 128. With the overlap, P is packed out of S's registers before the next
 * tile's S = Q·Kᵀ is issued into them, which keeps 128-key tiles within the consumers' 240 registers. ptxas must keep the products asynchronous: tests/bats/build.bats
 * fails the build on its serialisation notes or spills. Tested like the other two (test_tap_mass
 * attn_mass_ws, attn_mass_ws2, attn_mass_ws3; test_dit_emu attention_paths) on the emulation, which
 * runs the mbarriers, TMA and named barriers of tma.cuh. */
#include "attn_mass_common.cuh"
#include "attn_mass_cuda.h"
#include "attn_mass_wgmma.cuh"
#include "tma.cuh"

#define WS_BM 128      /* query rows per block: two consumer warpgroups */
#define WS_THREADS 384 /* producer + two consumers */
#define WS_CWARPS 8    /* consumer warps: each arrives once per stage it frees (lane 0, after a __syncwarp) */

/* BN keys per tile (64, or 128 with $SF_ATTN_WS_BN=128), in a ring of 4 or 2 stages. */
template <int D, int BN>
struct ws_layout { /* byte offsets in the 1024-aligned shared window */
    static constexpr int STAGES = BN == 64 ? 4 : 2, NS = BN / 8;
    static constexpr uint32_t NA = D / 64, ATOM = BN * 128, QATOM = WS_BM * 128; /* a K / V atom: BN rows */
    static constexpr uint32_t Q = 0, KV = NA * QATOM, STAGE = 2 * NA * ATOM;
    static constexpr uint32_t BARS = KV + STAGES * STAGE; /* kfull[S], vfull[S], kempty[S], vempty[S], q */
    static constexpr uint32_t BYTES = BARS + (4 * STAGES + 1) * 8;
};

/* MODE 1: each tile's products are waited for before its softmax. MODE 2: FA3's intra-warpgroup
 * pipelining — tile j's S = Q·Kᵀ and tile j−1's O += P·V are in flight on the tensor cores while the
 * warpgroup turns tile j's S into P (O's rescale waits for the product writing it). MODE 3: that, and
 * FA3's ping-pong between the two consumers — each issues its products only in its turn (named barrier
 * 1 + its index, 256 threads: its own 128 waiting, the other's 128 arriving once it has issued), so one
 * warpgroup's softmax runs while the other's products occupy the tensor cores. Warpgroup 0 goes first;
 * each takes ntiles + 1 turns, and the other's arrivals match them one for one (warpgroup 1's last turn
 * hands over to no one). Registers rebalanced by setmaxnreg in every mode (producer 24, consumers 240:
 * ptxas allocates the consumer code within 240 though it reports the launch's 168). */
/* The last wave (see ws_plan): a 1-D grid of work units, unit u = (head u / RB, row block u % RB), RB row
 * blocks per head. Units below nfull run whole; each later one runs as nsplit blocks, split i taking its
 * key tiles [n·i/nsplit, n·(i+1)/nsplit) and writing its O / l (f32) and log2-sum-exp to part / part_lse
 * (slot b − nfull), which attn_ws_combine turns into the unit's O and lse. */
template <int D, bool MASS, int MODE, int BN>
static __global__ void __launch_bounds__(WS_THREADS, 1)
    attn_mass_ws_kernel(const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
                        const __grid_constant__ CUtensorMap tv, __nv_bfloat16 *__restrict__ o, int64_t ldo, int64_t Lq,
                        int64_t Lk, float sl2, int64_t G, int64_t NG, float *__restrict__ rowmass,
                        float *__restrict__ lse, int64_t RB, int64_t nfull, int nsplit, float *__restrict__ part,
                        float *__restrict__ part_lse, uint32_t mbar_ns) {
    using L = ws_layout<D, BN>;
    constexpr int NT = D / 8, S = L::STAGES, NS = L::NS;
    SF_DYN_SHARED(unsigned char, sm_raw);
    unsigned char *sm = sm_raw + ((1024u - (sf_smem_addr(sm_raw) & 1023u)) & 1023u);
    /* K and V of a stage have their own barriers (FA3's two pipelines). With the overlap a consumer holds
     * tile j's K and tile j − 1's V during iteration j and frees both at its end, so tile j + S's K loads
     * during iteration j + 1, a whole iteration before it is needed. With one barrier per stage, tile j's
     * stage stayed held until its V was read at the end of iteration j + 1: at 2 stages (128-key tiles)
     * the producer could not load ahead at all. (K is freed with V, not right after its S = Q·Kᵀ: there
     * the arrive costs the 128-key, d = 128 consumers a spill.) */
    uint64_t *kfull = reinterpret_cast<uint64_t *>(sm + L::BARS), *vfull = kfull + S, *kempty = vfull + S,
             *vempty = kempty + S, *qbar = vempty + S;
    const int64_t b = (int64_t)blockIdx.x, tb = b - nfull;
    const int64_t u = tb < 0 ? b : nfull + tb / nsplit;
    const int split = tb < 0 ? 0 : (int)(tb % nsplit), nsp = tb < 0 ? 1 : nsplit;
    const int h = (int)(u / RB), hc = h * D;
    const int64_t q0 = (u % RB) * WS_BM, nall = (Lk + BN - 1) / BN;
    const int64_t j0 = nall * split / nsp, ntiles = nall * (split + 1) / nsp - j0; /* this block's key tiles */

    if (threadIdx.x == 0) {
        for (int i = 0; i < S; i++) {
            sf_mbar_init(&kfull[i], 1), sf_mbar_init(&vfull[i], 1);
            sf_mbar_init(&kempty[i], WS_CWARPS), sf_mbar_init(&vempty[i], WS_CWARPS);
        }
        sf_mbar_init(qbar, 1);
        sf_mbar_fence_init();
    }
    __syncthreads();

    if (threadIdx.x < 128) { /* the producer warpgroup: one thread issues every copy */
        sf_setmaxnreg_dec<24>();
        if (threadIdx.x == 0) {
            sf_tma_prefetch(&tq), sf_tma_prefetch(&tk), sf_tma_prefetch(&tv);
            sf_mbar_arrive_expect_tx(qbar, L::NA * L::QATOM);
            for (uint32_t a = 0; a < L::NA; a++)
                for (int half = 0; half < 2; half++)
                    sf_tma_load_2d(sm + L::Q + a * L::QATOM + half * 64 * 128, &tq, hc + 64 * (int)a,
                                   (int)(q0 + 64 * half), qbar);
            for (int64_t j = 0; j < ntiles; j++) { /* the ring counts this block's tiles; keys from tile j0 + j */
                const int s = (int)(j % S);
                const unsigned par = (unsigned)((j / S - 1) & 1);
                unsigned char *ks = sm + L::KV + s * L::STAGE, *vs = ks + L::NA * L::ATOM;
                if (j >= S) sf_mbar_wait(&kempty[s], par, mbar_ns);
                sf_mbar_arrive_expect_tx(&kfull[s], L::NA * L::ATOM);
                for (uint32_t a = 0; a < L::NA; a++)
                    sf_tma_load_2d(ks + a * L::ATOM, &tk, hc + 64 * (int)a, (int)((j0 + j) * BN), &kfull[s]);
                if (j >= S) sf_mbar_wait(&vempty[s], par, mbar_ns);
                sf_mbar_arrive_expect_tx(&vfull[s], L::NA * L::ATOM);
                for (uint32_t a = 0; a < L::NA; a++)
                    sf_tma_load_2d(vs + a * L::ATOM, &tv, hc + 64 * (int)a, (int)((j0 + j) * BN), &vfull[s]);
            }
        }
        return;
    }

    /* consumers: warp 0..7 over the block's 128 rows, warpgroup wg = warp / 4. A warp frees a K or V
     * buffer once the wgmma.wait_group covering its reads has returned in all its lanes. */
    auto release = [&](uint64_t *bar) {
        __syncwarp();
        if ((threadIdx.x & 31) == 0) sf_mbar_arrive(bar);
    };
    sf_setmaxnreg_inc<240>();
    const int ct = (int)threadIdx.x - 128, warp = ct >> 5, lane = ct & 31, t = lane & 3;
    const int64_t row0 = q0 + warp * 16 + (lane >> 2), base = (int64_t)h * Lq;
    const uint32_t kv0 = sf_smem_addr(sm + L::KV);
    o += hc;
    am_state<NT> st;
    am_state_init(st);
    float sc[NS][4];
    uint32_t pa[BN / 16][4];
    sf_mbar_wait(qbar, 0, mbar_ns);
    /* the warp's 16 query rows as wgmma A fragments, all of d (rows 64·wg + 16·(warp % 4) = 16·warp) */
    uint32_t qf[D / 16][4];
    sf_wgmma_load_a<D / 16>(qf, sm + L::Q, L::QATOM, warp * 16);
    if constexpr (MODE == 1) {
        for (int64_t j = 0; j < ntiles; j++) {
            const int s = (int)(j % S);
            const uint32_t ka = kv0 + s * L::STAGE;
            const unsigned par = (unsigned)((j / S) & 1);
            sf_mbar_wait(&kfull[s], par, mbar_ns);
            am_wg_qk<D, BN>(sc, qf, ka);
            sf_wgmma_wait<0>();
            sf_wgmma_fence_regs(sc); /* no read of S may be scheduled above the wait (PTX: undefined) */
            release(&kempty[s]);
            am_tile_softmax<NT, MASS, true, NS>(&sc[0], st, (j0 + j) * BN, Lk, sl2, t, G, NG, rowmass, base, Lq, row0);
            am_wg_pack<BN>(pa, sc);
            sf_mbar_wait(&vfull[s], par, mbar_ns);
            am_wg_pv<D, BN>(st, pa, ka + L::NA * L::ATOM);
            sf_wgmma_wait<0>();
            sf_wgmma_fence_regs(st.oacc);
            release(&vempty[s]);
        }
    } else {
        constexpr bool PP = MODE == 3;
        const unsigned mine = 1u + (unsigned)(warp / 4), other = 2u - (unsigned)(warp / 4); /* turn barriers */
        float alpha[2];
        if (PP && warp / 4 == 1) sf_named_arrive(1, 256); /* warpgroup 0's first turn */
        sf_mbar_wait(&kfull[0], 0, mbar_ns);
        if (PP) sf_named_sync(mine, 256);
        am_wg_qk<D, BN>(sc, qf, kv0);
        if (PP) sf_named_arrive(other, 256);
        sf_wgmma_wait<0>();
        sf_wgmma_fence_regs(sc);
        release(&kempty[0]);
        am_tile_softmax<NT, MASS, true, NS>(&sc[0], st, j0 * BN, Lk, sl2, t, G, NG, rowmass, base, Lq, row0);
        for (int64_t j = 1; j < ntiles; j++) { /* sc: tile j − 1's P; its O += P·V goes out with tile j's S */
            const int sp = (int)((j - 1) % S), s = (int)(j % S);
            am_wg_pack<BN>(pa, sc); /* sc is free from here: tile j's S goes into the same registers */
            sf_mbar_wait(&kfull[s], (unsigned)((j / S) & 1), mbar_ns);
            sf_mbar_wait(&vfull[sp], (unsigned)(((j - 1) / S) & 1), mbar_ns);
            if (PP) sf_named_sync(mine, 256);
            am_wg_qk<D, BN>(sc, qf, kv0 + s * L::STAGE);
            am_wg_pv<D, BN>(st, pa, kv0 + sp * L::STAGE + L::NA * L::ATOM);
            if (PP) sf_named_arrive(other, 256);
            sf_wgmma_wait<1>(); /* tile j's S (the older group) */
            sf_wgmma_fence_regs(sc);
            am_tile_softmax<NT, MASS, false, NS>(&sc[0], st, (j0 + j) * BN, Lk, sl2, t, G, NG, rowmass, base, Lq, row0,
                                                 alpha);
            sf_wgmma_wait<0>(); /* tile j − 1's O += P·V: O and P's registers are free again */
            sf_wgmma_fence_regs(st.oacc);
            sf_wgmma_fence_regs(pa);
            release(&kempty[s]);  /* tile j's K (read by the older group, long done): tile j + S's K may load */
            release(&vempty[sp]); /* tile j − 1's V */
            am_rescale_o<NT>(st, alpha);
        }
        const int sl = (int)((ntiles - 1) % S); /* the last tile's O += P·V */
        am_wg_pack<BN>(pa, sc);
        sf_mbar_wait(&vfull[sl], (unsigned)(((ntiles - 1) / S) & 1), mbar_ns);
        if (PP) sf_named_sync(mine, 256);
        am_wg_pv<D, BN>(st, pa, kv0 + sl * L::STAGE + L::NA * L::ATOM);
        if (PP && warp / 4 == 0) sf_named_arrive(other, 256);
        sf_wgmma_wait<0>();
        sf_wgmma_fence_regs(st.oacc);
        release(&vempty[sl]);
    }
    if (nsp == 1) {
        am_finish<NT, MASS>(st, t, NG, rowmass, lse, base, Lq, row0, o, ldo);
        return;
    }
    for (int r = 0; r < 2; r++) { /* a split: O / l and log2 Σ 2^s of its keys, for attn_ws_combine */
        const int64_t row = row0 + 8 * r;
        if (row >= Lq) continue;
        const int64_t slot = tb * WS_BM + (row - q0);
        const float inv = 1.0f / st.l[r];
        if (t == 0) part_lse[slot] = st.m[r] + log2f(st.l[r]);
        float *prow = part + slot * D + 2 * t;
        for (int nt = 0; nt < NT; nt++) {
            prow[nt * 8] = st.oacc[nt][2 * r] * inv;
            prow[nt * 8 + 1] = st.oacc[nt][2 * r + 1] * inv;
        }
    }
}

/* The split units' rows: O = Σ_i 2^(lse_i − M)·O_i / Σ_i 2^(lse_i − M) (M the largest lse_i), and
 * lse = M + log2 of that sum (natural log out); one block per (row, unit), a thread per column. */
template <int D>
static __global__ void attn_ws_combine(const float *__restrict__ part, const float *__restrict__ part_lse, int64_t RB,
                                       int64_t nfull, int nsplit, int64_t Lq, __nv_bfloat16 *__restrict__ o, int64_t ldo,
                                       float *__restrict__ lse) {
    const int64_t ti = (int64_t)blockIdx.y, u = nfull + ti, row = (u % RB) * WS_BM + (int64_t)blockIdx.x;
    const int h = (int)(u / RB), col = (int)threadIdx.x;
    if (row >= Lq) return;
    const int64_t s0 = ti * nsplit * WS_BM + (int64_t)blockIdx.x;
    float mx = -INFINITY;
    for (int i = 0; i < nsplit; i++) mx = fmaxf(mx, part_lse[s0 + (int64_t)i * WS_BM]);
    float w = 0.0f, acc = 0.0f;
    for (int i = 0; i < nsplit; i++) {
        const float wi = exp2f(part_lse[s0 + (int64_t)i * WS_BM] - mx);
        w += wi;
        acc += wi * part[(s0 + (int64_t)i * WS_BM) * D + col];
    }
    o[row * ldo + (int64_t)h * D + col] = __float2bfloat16(acc / w);
    if (lse && col == 0) lse[(int64_t)h * Lq + row] = (mx + log2f(w)) * AM_LN2;
}

typedef void (*ws_kernel)(const CUtensorMap, const CUtensorMap, const CUtensorMap, __nv_bfloat16 *, int64_t, int64_t,
                          int64_t, float, int64_t, int64_t, float *, float *, int64_t, int64_t, int, float *, float *, uint32_t);

/* The last wave. One block per SM (164 KB of shared memory), units = RB·H blocks of equal work: the
 * grid's last wave holds units % SMs of them and leaves the other SMs idle for a whole unit's time (at
 * the DiT's 4680 × 12 on 132 SMs: 444 units, a last wave of 48 — 16 % of the kernel's time on a
 * quarter of the machine). So, for the attention alone (the masses keep whole units), each of those
 * tail units runs as nsplit = min(SMs / tail, 4, tiles) blocks over a share of the keys, and a small
 * kernel combines them: the last wave takes 1/nsplit of a unit's time. $SF_ATTN_WS_SPLIT=0 turns it off
 * (the A/B), $SF_ATTN_WS_SMS=N plans for N SMs (tests: tails on the emulation's one SM). */
static int ws_plan(const sf_cuda_ctx *ctx, int64_t units, int64_t tiles, bool may_split, int64_t *ntail) {
    const char *ov = getenv("SF_ATTN_WS_SMS");
    const int64_t sms = ov && atoi(ov) > 0 ? atoi(ov) : ctx->sms;
    *ntail = 0;
    if (!may_split || sms < 2) return 1;
    const int64_t tail = units % sms;
    if (tail == 0) return 1;
    int64_t n = sms / tail;
    n = n < 4 ? n : 4;
    n = n < tiles ? n : tiles;
    if (n < 2) return 1;
    *ntail = tail;
    return (int)n;
}
template <int D, int BN>
static ws_kernel ws_pick(int mode, bool mass) {
    if (mode == 3) return mass ? attn_mass_ws_kernel<D, true, 3, BN> : attn_mass_ws_kernel<D, false, 3, BN>;
    if (mode == 2) return mass ? attn_mass_ws_kernel<D, true, 2, BN> : attn_mass_ws_kernel<D, false, 2, BN>;
    return mass ? attn_mass_ws_kernel<D, true, 1, BN> : attn_mass_ws_kernel<D, false, 1, BN>;
}

template <int D, int BN>
static sf_status ws_launch(const sf_cuda_ctx *ctx, int mode, int64_t Lq, int64_t Lk, int H, const void *q, int64_t ldq,
                           const void *k, const void *v, int64_t ldk, void *o, int64_t ldo, float sl2, int64_t G,
                           int64_t NG, float *rowmass, float *lse, sf_err *err) {
    sf_status st = SF_OK;
    const size_t smem = ws_layout<D, BN>::BYTES + 1024; /* + the alignment slack */
    const uint64_t cols = (uint64_t)H * D;
    CUtensorMap tq, tk, tv;
    const ws_kernel kern = ws_pick<D, BN>(mode, NG > 0);
    static const char *const names[2][2][3] = {
        {{"attn_plain_ws", "attn_plain_ws2", "attn_plain_ws3"}, {"attn_mass_groups_ws", "attn_mass_groups_ws2", "attn_mass_groups_ws3"}},
        {{"attn_plain_ws_n128", "attn_plain_ws2_n128", "attn_plain_ws3_n128"},
         {"attn_mass_groups_ws_n128", "attn_mass_groups_ws2_n128", "attn_mass_groups_ws3_n128"}}};
    const char *name = names[BN == 128][NG > 0][mode - 1];
    const int64_t RB = (Lq + WS_BM - 1) / WS_BM, units = RB * H;
    const char *off = getenv("SF_ATTN_WS_SPLIT");
    const bool split = !(off && !strcmp(off, "0")); /* $SF_ATTN_WS_SPLIT=0: whole units (the A/B) */
    int64_t ntail = 0;
    const int nsplit = ws_plan(ctx, units, (Lk + BN - 1) / BN, split && NG == 0, &ntail);
    const int64_t nfull = units - ntail, blocks = nfull + ntail * nsplit;
    float *part = NULL, *part_lse = NULL;
    if (blocks > INT_MAX) return SF_E_UNSUPPORTED; /* nothing enqueued: the caller runs another kernel */
    /* the splits' scratch, sized once for the most a plan can ask of this context (tail · nsplit ≤ SMs,
       d ≤ 128) by the first launch, split or not (the DiT's first is its self-check, before any CUDA
       graph capture, which may not allocate) */
    if (split) {
        const int64_t most = ntail * nsplit > ctx->sms ? ntail * nsplit : ctx->sms;
        void *p = NULL;
        SF_CHECK_STATUS(sf_cuda_scratch(ctx, (size_t)most * WS_BM * (128 + 1) * sizeof(float), &p, err));
        part = (float *)p, part_lse = part + ntail * nsplit * WS_BM * D;
    }
    SF_CHECK_STATUS(sf_tma_map_bf16(&tq, q, (uint64_t)Lq, cols, (uint64_t)ldq * 2, 64, err));
    SF_CHECK_STATUS(sf_tma_map_bf16(&tk, k, (uint64_t)Lk, cols, (uint64_t)ldk * 2, BN, err));
    SF_CHECK_STATUS(sf_tma_map_bf16(&tv, v, (uint64_t)Lk, cols, (uint64_t)ldk * 2, BN, err));
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    SF_LAUNCH_NAMED(name, kern, (unsigned)blocks, WS_THREADS, smem, SF_CUDA_STREAM(ctx), tq, tk, tv, (__nv_bfloat16 *)o,
                    ldo, Lq, Lk, sl2, G, NG, rowmass, lse, RB, nfull, nsplit, part, part_lse,
                    sf_mbar_limit_env());
    CUDA_CHECK_LAUNCH(name);
    if (ntail) {
        SF_LAUNCH(attn_ws_combine<D>, dim3(WS_BM, (unsigned)ntail), D, 0, SF_CUDA_STREAM(ctx), (const float *)part,
                  (const float *)part_lse, RB, nfull, nsplit, Lq, (__nv_bfloat16 *)o, ldo, lse);
        CUDA_CHECK_LAUNCH("attn_ws_combine");
    }
    sf_attn_mass_note_kernel(name);
    sf_attn_mass_note_split(nsplit, ntail);
    return SF_OK;
fail:
    return st;
}

/* Called by sf_attn_mass_cuda (attn_mass.cu) when $SF_ATTN_WS asks for it (mode: its value, 1..3 — see
 * the kernel's MODE; wide: $SF_ATTN_WS_BN=128, 128-key tiles), after its checks:
 * SF_E_UNSUPPORTED (nothing enqueued) when this kernel does not apply — head dim, device, a key count
 * or query count past TMA's 32-bit coordinates, or a driver without TMA — so the caller runs another. */
extern "C" sf_status sf_attn_mass_ws_try(const sf_cuda_ctx *ctx, int mode, int wide, int64_t Lq, int64_t Lk, int H,
                                         int d, const void *q, int64_t ldq, const void *k, const void *v, int64_t ldk,
                                         void *o, int64_t ldo, float sl2, int64_t G, int64_t NG, float *rowmass,
                                         float *lse, sf_err *err) {
    if ((d != 64 && d != 128) || !sf_wgmma_device_ok(ctx->ordinal) || Lq > INT_MAX / 2 || Lk > INT_MAX / 2)
        return SF_E_UNSUPPORTED;
    mode = mode < 1 ? 1 : mode > 3 ? 3 : mode;
    if (wide)
        return d == 128 ? ws_launch<128, 128>(ctx, mode, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo, sl2, G, NG, rowmass, lse, err)
                        : ws_launch<64, 128>(ctx, mode, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo, sl2, G, NG, rowmass, lse, err);
    return d == 128 ? ws_launch<128, 64>(ctx, mode, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo, sl2, G, NG, rowmass, lse, err)
                    : ws_launch<64, 64>(ctx, mode, Lq, Lk, H, q, ldq, k, v, ldk, o, ldo, sl2, G, NG, rowmass, lse, err);
}
