/* dit_cuda_impl.h — internals shared by the CUDA DiT's files: dit_cuda.c (weights, state, the
 * forward), dit_cuda_taps.c (the attention call and everything the attention taps need) and
 * dit_cuda_fp8.c (`--fp8`: the float8 linears). Not an API: include dit_cuda.h. */
#ifndef SF_DIT_CUDA_IMPL_H
#define SF_DIT_CUDA_IMPL_H

#include "dit_cuda.h"
#include "gpu_host.h"
#include "cuda_ops.h"
#include "sdpa_cuda.h"
#include "tap_mass_cuda.h"
#include "attn_mass_cuda.h"
#include "cuda_graph.h"

typedef uint16_t bf16;

typedef struct gmat {
    bf16 *w; /* (n, k) bf16 device, or NULL when w8 */
    bf16 *b; /* (n) bf16 device bias, or NULL */
    int64_t n, k;
    /* --fp8 (dit_cuda_fp8.c): (n, k) float8 e4m3 codes on the device instead of w, and the weight's scale
       per part (device f32). parts 2: the fused [Wk; Wv], which in float8 runs as two products of n/2 rows
       with their own scales (torchao quantizes the two Linears separately) into the same places. */
    uint8_t *w8;
    float *s8;
    int parts;
} gmat;

typedef struct glayer {
    float *mod;                                /* (6, D) */
    gmat sa_q, sa_kv, sa_o, ca_q, ca_k, ca_v, ca_o, ffn0, ffn2; /* sa_kv: [Wk; Wv] (2D, D), [bk; bv] */
    float *sa_nq, *sa_nk, *n3_w, *n3_b, *ca_nq, *ca_nk;
} glayer;

#define SF_DIT_WARM_MAX 64 /* (queries, keys) shapes remembered as ready for a CUDA graph */

/* SF_CUDA_PROFILE categories */
enum { P_LINEAR, P_SELF, P_CROSS, P_NORM, P_QK, P_GELU, P_IO, P_FP8Q, P_N }; /* P_FP8Q: listed with --fp8 only */
struct sf_dit_gpu {
    sf_cuda_ctx cx;
    sf_sdpa *sdpa;      /* NULL: cuDNN unavailable, explicit attention everywhere */
    int sdpa_off;       /* a shape cuDNN refused: sfpipe's fused kernel (else explicit) from then on */
    int own_attn_off;   /* no sfpipe fused attention (attn_mass.cu) at all: $SF_NO_FUSED_ATTN, a failed
                           self-check or a shape it refused; cuDNN / the explicit cuBLASLt path then */
    int fused_checked;  /* the fused kernel's self-check ran (sf_dgpu_fused_ok) */
    int mass_explicit;  /* probability taps through the explicit attention + tap_mass.cu instead of the fused
                           attn_mass.cu ($SF_TAP_PROBS_EXPLICIT, or a shape the fused kernel refused) */
    int fused;          /* the one-warp-per-row fused norms apply (dim, head_dim multiples of 8, dim ≤ 2048) */
    int gelu_epi;       /* GELU in the FFN's (and text embedding's) first GEMM epilogue (sf_linear_gelu_cuda);
                           0 with SF_CUDA_UNFUSED or SF_CUDA_GELU_UNFUSED: product, then the GELU kernel */
    /* --fp8 (dit_cuda_fp8.c): the (n, k) shapes the FP8 GEMM was tried on at init and whether cuBLASLt took
       them (a refused one stays bf16, with one warning), whether it takes the GELU epilogue (else FP8 product,
       then the GELU kernel), and a product's input as e4m3 codes (xq, max(L·max(D, FF), T·D) bytes) with its
       scale (sx), made on the device per product; xq_* say which input xq holds (sf_dgpu_product8 reuse) */
    struct {
        int64_t n, k;
        int ok;
    } f8shape[8];
    int n_f8shape, fp8_on, fp8_gelu_epi;
    uint8_t *xq;
    float *sx;
    const void *xq_x;
    int64_t xq_M, xq_ld, xq_k;
    void *wmat;         /* one allocation: every matrix (bf16, or e4m3 codes + scales with --fp8) */
    float *wvec;        /* one allocation: every f32 vector (bf16-rounded values) */
    size_t mat_bytes, vec_bytes, state_bytes;
    gmat patch, txt0, txt2, tim0, tim2, tproj, head;
    float *head_mod;
    glayer *L;
    /* state, one allocation (offsets below) */
    void *arena;
    bf16 *kv;           /* (NL, cache_tokens, 2D): row = [k | v] (one fused projection writes both) */
    bf16 *ck, *cv;      /* (NL, text_len, D) */
    bf16 *ctx, *txt_pad, *txt_tmp;            /* (T, D), (T, text_dim), (T, D) */
    bf16 *x, *a, *q, *o, *y;                  /* (L, D) */
    bf16 *h;                                  /* (L, FF) */
    bf16 *patches, *hout;                     /* (L, C·ph·pw), (L, out·ph·pw) */
    float *xin, *flow;                        /* (F, C, H, W) */
    float *lat[SF_LAT_N];                     /* the sampling loop's slots (F, C, H, W) f32 */
    double *freq;                             /* (freq_dim/2) timestep sinusoid frequencies */
    bf16 *sinus, *et, *e, *e0;                /* (F, freq), (F, D), (F, D), (F, 6D) */
    float *E, *Hm;                            /* (NL, F, 6D) every layer's modulation, (F, 2D) the head's */
    double *rope_cs;                          /* (max_pos, d/2, 2) */
    bf16 *sink_orig;                          /* --sink-rope realign: (NL, sink_tokens, D) the sink keys as cached */
    /* --kv-compress (kv_compress.c): the last forward's queries (NL, L, D), the logits chunk (kvc_rows, Lk_max) and its
     * rows' lse, the importances (NL, H, candidates) f64, the selection (NL, H, kept) and the gather's scratch */
    bf16 *kvc_q, *kvc_tmp;
    float *kvc_S;
    double *kvc_lse, *kvc_score;
    int32_t *kvc_idx;
    int64_t kvc_rows;
    size_t kvc_bytes, pc_bytes;               /* what --kv-compress / --pc-budget added to state_bytes (freed: taken off) */
    /* --pc-budget (pc.c): each layer's query ring (NL, R, D), the query sum f64 (D); per layer its last compression's
     * scores f64, sources and the slots' reuse counts (NL, cache) each, and how many it chose past the limit (NL);
     * the counts' scratch (cache), the compaction's (budget, 2D) and a compressing forward's new K|V rows (L, 2D) */
    bf16 *pc_ring, *pc_tmp, *pc_new;
    double *pc_qsum, *pc_score;
    int32_t *pc_idx, *pc_count, *pc_itmp;
    int64_t *pc_fills;
    float *S;                                 /* explicit attention logits (H, chunk, Lk_max), lazily */
    bf16 *P;                                  /* its probabilities */
    uint16_t *S16;                            /* a chunk of logits as f16, on its way to a tap */
    int64_t chunk, lk_max;
    /* SF_CUDA_PROFILE=1: events around every op, ms per category summed over forwards */
    sf_gpu_prof prof;
    /* host side: two pinned staging buffers for slot puts and re-noising draws, and the event after
     * each one's copy (a buffer is refilled only once its previous copy has run) */
    float *stage[2];
    void *stage_ev;
    int stage_next;
    /* sf_dit_cuda_lat_get_begin / _end: the pinned buffer a hand-out lands in, the event after its copy,
     * and where it goes (NULL: none pending) */
    float *out_pin, *out_host;
    void *out_ev;
    int64_t out_n;
    size_t lat_n;
    float *tap_q, *tap_k;                     /* post-RoPE q (L, D) and K window (Lk_max, D), f32 */
    double *tm_means;                         /* frames mode: per-frame means (F + Lk_max/S, D), device */
    float *tm_agg, *tap_agg;                  /* frames mode: every layer's aggregate (H, F, Lk_max/S): device, pinned */
    int defer, n_def, *def_layer;             /* frames / probs views delivered at the forward's end (tap_flush):
                                                 2·layer + 1 for a probs view */
    /* probability taps (tap_mass_cuda.h), made on first use: per-row masses (H, L, NG_max), lse (H, L),
     * row totals (H, L) f64, the aggregates (H, F, NG_max) + stats (H, F, 4) and their host copies */
    float *tm_rm, *tm_lse, *tm_out, *tm_st, *tm_hout, *tm_hst;
    float *tap_pmass;                         /* pinned: each layer's deferred self-attention probs / tokens aggregate
                                                 (H, F, tm_self_ng) then stats (H, F, NSTATS), tap_pmass_per floats a layer */
    size_t tap_pmass_per;
    double *tm_tot;
    int64_t tm_ng;                            /* the most groups of any tapped attention (buffers' last dim) */
    int64_t tm_self_ng;                       /* the most groups of a self-attention: Lk_max/S key frames, or the tokens
                                                 of the first key slots (--tap-mode tokens) */
    /* CUDA graphs of whole forwards (dit_cuda.c, "CUDA graphs"): NULL when off ($SF_CUDA_GRAPHS=0) */
    sf_cuda_graphs *graphs;
    int graph_fails, graphs_off;
    int capturing;                            /* a forward is being recorded into a CUDA graph */
    int n_warm;
    struct {
        int64_t L, Lk; /* a (queries, keys) shape whose first-use work is done (prepared, or a forward ran) */
        uint64_t ran;  /* bit k (k < 64): a forward of graph variant k (dit_cuda.c graph_variant) ran or launched */
    } warm[SF_DIT_WARM_MAX];
};

/* Logits tap: each chunk's device logits (H, rows, Lk) go into the host (H, Lq, Lk) buffer — as f16
 * converted on the device (the tap's storage, half the bytes over PCIe, no f32 host copy), or f32
 * for a tap that asked for floats (sf_dgpu_tap_chunk). */
typedef struct tapcopy {
    sf_dit_gpu *g;
    float *host;
    uint16_t *host16;
    int64_t Lq, Lk;
    int H;
} tapcopy;

/* Probability taps: each chunk's logits reduced to per-row masses of NG groups of G keys before the
 * softmax (sf_dgpu_mass_chunk); the logits themselves never leave the chunk. */
typedef struct massrun {
    sf_dit_gpu *g;
    int H;
    int64_t Lq, Lk, G, NG;
} massrun;

/* dit_cuda_taps.c (documented there) */
sf_status sf_dgpu_explicit_ws(sf_dit_gpu *g, int heads, sf_err *err);
sf_status sf_dgpu_tap_chunk(void *ctx, int64_t r0, int64_t rows, const float *S, sf_err *err);
sf_status sf_dgpu_mass_chunk(void *ctx, int64_t r0, int64_t rows, const float *S, sf_err *err);
sf_status sf_dgpu_mass_ws(sf_dit_state *st, sf_err *err);
sf_status sf_dgpu_mass_finish(sf_dit_state *st, const massrun *m, int renorm, int slot, sf_err *err);
int64_t sf_dgpu_mass_groups(const sf_dit_state *st, int64_t Lk, int64_t *G);
sf_status sf_dgpu_attend(sf_dit_gpu *g, int64_t Lq, int64_t Lk, int H, int d, const bf16 *q, const bf16 *k,
                        const bf16 *v, int64_t ldk, bf16 *o, int64_t ld, float scale, sf_attn_logits_fn on_logits,
                        void *cb, sf_err *err);
sf_status sf_dgpu_fused_ok(sf_dit_gpu *g, int d, int *use, sf_err *err);
sf_status sf_dgpu_attend_mass(const massrun *m, int d, const bf16 *q, const bf16 *k, const bf16 *v, int64_t ldk, bf16 *o,
                             int64_t ld, float scale, sf_err *err);
sf_status sf_dgpu_tap_bufs(sf_dit_state *st, sf_err *err);
/* Layer l's tap of this forward: Lkw keys in the forward's window, kfw their frames (the layer's own keys are the
 * window less its skip, Ka their first: --sink-ablate). */
sf_status sf_dgpu_tap_layer(sf_dit_state *st, int l, int64_t L, int64_t Lkw, const bf16 *Ka, const int64_t *kfw,
                           float *logits, const uint16_t *logits16, int mass, sf_err *err);
sf_status sf_dgpu_tap_flush(sf_dit_state *st, int64_t L, int64_t Lk, const int64_t *kfr, sf_err *err);

/* dit_cuda_fp8.c (documented there) */
sf_status sf_dgpu_fp8_probe(sf_dit_state *st, sf_err *err);
int sf_dgpu_fp8_takes(const sf_dit_gpu *g, const sf_dit_mat *m);
sf_status sf_dgpu_fp8_upload(sf_dit_gpu *g, const sf_dit_mat *m, uint8_t *codes, float *scale, sf_err *err);
sf_status sf_dgpu_product8(sf_dit_gpu *g, int64_t M, const void *x, int64_t ldx, const gmat *w, void *y, int64_t ldy,
                           int gelu, int reuse, sf_err *err);

/* dit_cuda.c: rows × cols bf16 device values (row stride ld) → contiguous f32 host (synchronous). */
sf_status sf_dgpu_download_rows(sf_dit_gpu *g, float *host, const void *dev, int64_t rows, int64_t cols, int64_t ld,
                               sf_err *err);

/* pc.c: layer l's part of --pc-budget on the GPU (the layer, after RoPE): the layer's L query rows q join its ring
 * and the slots [ls, le) it writes count 0 uses; a compressing forward then scores, selects, moves the counts,
 * compacts the layer's K|V cache rows and moves this forward's new K|V rows from g->pc_new into slots [ls, le), all on
 * the device (nothing waits: a CUDA graph holds it); the host's record of the choice is pending (sf_dit_settle). */
sf_status sf_dgpu_pc_layer(sf_dit_state *st, int l, const sf_dit_kv_step *kv, const bf16 *q, int64_t L, sf_err *err);

#endif
