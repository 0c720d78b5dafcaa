/* dit.h — the causal Wan DiT (CausalWanModel) for inference: weights, state, one forward.
 *
 * Three structs (STYLE.md): sf_dit_config (config.h), sf_dit_weights (pointers into the mmapped
 * safetensors / torch files, small vectors widened to owned f32 copies), sf_dit_state (KV cache,
 * cross-attention cache, activations — all allocated once by sf_dit_state_init).
 * Mirrors wan/modules/causal_model.py (CausalWanModel._forward_inference) in float32, fp64 where
 * the reference uses it (sinusoid, RoPE). Tested by tests/unit/test_dit.c (dit_forward golden)
 * and tests/unit/test_dit_pipeline.c. */
#ifndef SF_DIT_H
#define SF_DIT_H

#include "config.h"
#include "parallel.h"
#include "rope.h"
#include "tensor.h"
#include "tfile.h"

/* A weight matrix (N, K) in its file dtype (f32 / bf16 / f16), borrowed from a mapping. With --fp8
 * (sf_dit_weights_fp8) a block linear that qualifies has fp8 = 1: its products run in float8 e4m3 with
 * per-tensor scales (kernels/fp8.h); on the CPU q8 then holds the quantized weight (its e4m3 values as
 * bf16, owned by the weights) and s8 its scale. */
typedef struct sf_dit_mat {
    const void *w;
    sf_dtype dt;
    int64_t n, k;
    int fp8;
    const uint16_t *q8;
    float s8;
} sf_dit_mat;

typedef struct sf_dit_layer {
    float *modulation;               /* (6, dim) */
    sf_dit_mat sa_q, sa_k, sa_v, sa_o;   /* (dim, dim) */
    float *sa_qb, *sa_kb, *sa_vb, *sa_ob; /* (dim) */
    float *sa_nq, *sa_nk;            /* (dim) RMSNorm weights */
    float *n3_w, *n3_b;              /* (dim) norm3 */
    sf_dit_mat ca_q, ca_k, ca_v, ca_o;
    float *ca_qb, *ca_kb, *ca_vb, *ca_ob, *ca_nq, *ca_nk;
    sf_dit_mat ffn0, ffn2;           /* (ffn, dim), (dim, ffn) */
    float *ffn0_b, *ffn2_b;          /* (ffn), (dim) */
} sf_dit_layer;

typedef struct sf_dit_weights {
    sf_dit_config cfg;
    sf_dit_mat patch;                /* (dim, in_dim·pt·ph·pw) = Conv3d weight flattened */
    float *patch_b;
    sf_dit_mat txt0, txt2;           /* (dim, text_dim), (dim, dim) */
    float *txt0_b, *txt2_b;
    sf_dit_mat tim0, tim2, tproj;    /* (dim, freq), (dim, dim), (6·dim, dim) */
    float *tim0_b, *tim2_b, *tproj_b;
    sf_dit_layer *layers;            /* num_layers */
    float *head_mod;                 /* (2, dim) */
    sf_dit_mat head;                 /* (out_dim·ph·pw, dim) */
    float *head_b;
    void **owned;                    /* every owned f32 vector */
    size_t n_owned, cap_owned;
    int64_t n_params;
    int fp8;                         /* block linears in float8 (sf_dit_weights_fp8), 0: none */
} sf_dit_weights;

/* Load every tensor of the model. When ckpt is non-NULL every tensor comes from it, under
 * "<ckpt_key>/model.<name>" (Self-Forcing checkpoints), and every tensor under "<ckpt_key>/"
 * must be used; otherwise from base (diffusion_pytorch_model.safetensors names). Missing or
 * mis-shaped tensors are SF_E_NOTFOUND / SF_E_SHAPE naming the tensor. The files must outlive w. */
sf_status sf_dit_weights_load(sf_dit_weights *w, const sf_dit_config *cfg, const sf_tfile *base,
                              const sf_tfile *ckpt, const char *ckpt_key, sf_err *err);
void sf_dit_weights_free(sf_dit_weights *w);
/* Hand p (malloc'd) to w: freed with it (sf_dit_weights_free), or at once when the list cannot grow. */
sf_status sf_dit_weights_own(sf_dit_weights *w, void *p, sf_err *err);
/* The transformer block's linears --fp8 covers, i < SF_DIT_BLOCK_LINEARS: self-attention q, k, v, o,
 * cross-attention q, k, v, o, ffn.0, ffn.2 (non-const, as strchr: the caller's L decides). */
#define SF_DIT_BLOCK_LINEARS 10
sf_dit_mat *sf_dit_block_linear(const sf_dit_layer *L, int i);
/* --fp8: the transformer blocks' linears (self- and cross-attention q, k, v, o; the FFN's two) whose
 * shapes qualify (sf_fp8_eligible) run in float8 e4m3 with per-tensor dynamic scales, as the reference
 * demo's FP8 switch (torchao) does to every linear (the embeddings and the head — under 0.1 % of the
 * arithmetic — stay bf16 here). Marks them (w->fp8 = how many); cpu 1 also quantizes them for the CPU
 * backend (q8, s8: 2 bytes a weight), which a CPU state then needs; a GPU backend quantizes at upload. */
sf_status sf_dit_weights_fp8(sf_dit_weights *w, int cpu, sf_err *err);
/* The e4m3 codes (n·k, row-major) of m's weight as the bf16 model holds it, and its scale: the
 * quantization both backends use. */
sf_status sf_dit_mat_fp8(const sf_dit_mat *m, uint8_t *codes, float *scale, sf_err *err);

/* What a tap sees of one self-attention call (all borrowed, valid during the callback only). */
typedef struct sf_dit_attn_view {
    int layer;
    int64_t Lq, Lk;              /* query tokens, key tokens in the window */
    int heads, head_dim;
    const float *q;              /* (Lq, heads, d) post-RoPE, row stride ld */
    const float *k;              /* (Lk, heads, d) post-RoPE window kv_cache[lo:local_end], stride ld */
    int64_t ld;
    int64_t frame_tokens;        /* tokens per latent frame */
    const int64_t *key_frames;   /* (Lk/frame_tokens) absolute latent frame of each key frame-slot */
    const float *logits;         /* (heads, Lq, Lk) when the tap supplied a buffer, else NULL */
    const uint16_t *logits_f16;  /* GPU: (heads, Lq, Lk) f16, filled into the tap's logits_f16 buffer, else NULL */
    /* Probability aggregates (kernels/tap_mass.h) a backend computed itself (the GPU, when wants_mass),
     * else NULL and the tap computes them from q and k: (heads, Lq/frame_tokens, groups) and
     * (heads, Lq/frame_tokens, SF_TAP_NSTATS) f32. */
    const float *mass, *mass_stats;
    int cross;                   /* 1: the cross-attention: k = the text keys (Lk = text_len), groups = real tokens */
    int64_t n_real;              /* cross: real (non-padding) text tokens, the first n_real keys */
    /* Frames mode on a GPU (when wants_means): the frame aggregate itself, (heads, Lq/S, Lk/S) f32
     * (sf_frame_means_cpu + sf_frame_logit_means_cpu's, made on the device); q and k are then NULL.
     * Else NULL. */
    const float *frames;
    /* Self-attention: the forward's key window, (window_slots) absolute frames — key_frames' own unless the layer
     * skipped some of its first slots (--sink-ablate: sf_dit_ablate_skip). NULL: key_frames is the window. */
    const int64_t *window_frames;
    int64_t window_slots;
    /* Self-attention under --kv-compress or --pc-budget: the absolute frame each kept token came from, (kept_heads,
     * kept_tokens) — the slots of key_frames that read −1, in order; kept_heads 1 when every head keeps the same
     * tokens (--pc-budget), the heads' count when each keeps its own (--kv-compress). NULL / 0: none kept. */
    const int32_t *kept_frames;
    int64_t kept_tokens;
    int kept_heads;
} sf_dit_attn_view;

typedef struct sf_dit_tap {
    /* Return a (heads, Lq, Lk) f32 buffer to receive the logits of this layer's self-attention,
     * or NULL (no logits wanted). May be NULL. */
    float *(*logits_buf)(void *ctx, int layer, int heads, int64_t Lq, int64_t Lk);
    /* The GPU backend's form: a (heads, Lq, Lk) f16 buffer it fills chunk by chunk, converted on the
     * device (no f32 host copy of the logits), or NULL (none wanted). May be NULL (then logits_buf). */
    uint16_t *(*logits_f16)(void *ctx, int layer, int heads, int64_t Lq, int64_t Lk);
    /* Called after the attention of a layer for which wants() is true. */
    int (*wants)(void *ctx, int layer);
    sf_status (*done)(void *ctx, const sf_dit_attn_view *v, sf_err *err);
    void *ctx;
    /* Attention-sink workbench (taps.h), all optional: wants_mass true → a GPU backend computes the
     * self-attention's probability aggregates (view.mass) on the device; wants_cross true → done()
     * is also called after layer l's cross-attention with view.cross = 1 (and view.mass on a GPU). */
    int (*wants_mass)(void *ctx, int layer);
    int (*wants_cross)(void *ctx, int layer);
    /* Frames mode: true → a GPU backend hands over the frame aggregate made on the device (view.frames)
     * instead of q and the whole key window (kilobytes instead of ~200 MB per layer at full size), and
     * may call done() for the self-attention taps at the end of the forward instead of per layer (one
     * wait per forward; not when a cross-attention tap is wanted: its order is kept). */
    int (*wants_means)(void *ctx, int layer);
    /* Whether any layer of forward (block, step) may be tapped; NULL: every forward may be. The
     * pipeline skips the last block's refresh pass only when this says no (pipeline.h). */
    int (*wants_forward)(void *ctx, int block, int step);
    /* Whether layer l's self-attention (cross 0) or cross-attention (cross 1) is tapped in some forward
     * of the run, whichever forward is current: what a GPU backend makes before the loop depends on it.
     * NULL: any layer may be. */
    int (*may_want)(void *ctx, int layer, int cross);
    /* With wants_mass: the self-attention's key groups for a window of Lk keys (S tokens a frame): G
     * consecutive keys each, NG groups from key 0 (G = S, NG = Lk / S: key frames; G = 1: single tokens of the
     * first key slots, --tap-mode tokens). NULL: key frames. */
    void (*mass_groups)(void *ctx, int64_t Lk, int64_t S, int64_t *G, int64_t *NG);
} sf_dit_tap;

/* Test seam (tests/unit/test_dit_longvideo.c): list into frames[0..cap) the absolute latent frames the
 * block [start_frame, start_frame + F) attends to, ascending; return how many (or -1 to fail). */
typedef int64_t (*sf_dit_key_select_fn)(void *ctx, int64_t start_frame, int F, int64_t *frames, int64_t cap);

/* Debug probe: named intermediates (golden names, e.g. "mid.block0.self_attn.q_roped"). */
typedef void (*sf_dit_probe_fn)(void *ctx, const char *name, const float *data, int64_t n);

/* The KV-cache arithmetic of one forward, shared by the CPU and CUDA paths (reference
 * CausalWanSelfAttention): roll [sink+evict, +keep) down to [sink, +keep) when evict > 0, write the
 * new tokens to slots [ls, le), attend to [lo, le) (Lk = le − lo keys). Same for every layer. */
typedef struct sf_dit_kv_step {
    int64_t ls, le, evict, keep, lo, Lk;
    /* --pc-budget (pc.c): this forward compresses the cache first (pc 1): the pc_topc best of the candidates
     * [sink, pc_from) join the sink, the old recent slots [pc_from, pc_end) follow them, then the new tokens [ls, le) */
    int pc;
    int64_t pc_topc, pc_from, pc_end;
} sf_dit_kv_step;

typedef struct sf_dit_gpu sf_dit_gpu; /* the CUDA backend's state (dit_cuda_impl.h) */

/* The sampling loop's latent slots (sf_dit_lat_put and below). */
typedef enum sf_dit_slot { SF_LAT_X = 0, SF_LAT_X0, SF_LAT_AUX, SF_LAT_N } sf_dit_slot;

/* --fp8 on the CPU: the last product input quantized (dit_fp8.h), reused by the products right after it that read
 * the same activation (q, k, v; the text's K and V). */
typedef struct sf_dit_xq {
    float *q;                        /* its values on the e4m3 grid, dense rows of k */
    const float *x;                  /* which input (NULL: none kept), its rows, row stride, width and scale */
    int64_t M, ld, k;
    float s;
} sf_dit_xq;

typedef struct sf_dit_state {
    const sf_dit_weights *w;
    sf_dit_gpu *gpu;                 /* non-NULL: this state lives on a GPU (dit_cuda.c) */
    int max_frames;                  /* frames per forward (block) */
    int lat_h, lat_w;                /* latent H, W */
    int64_t frame_tokens;            /* (H/ph)·(W/pw) */
    int64_t cache_tokens;            /* self-attention KV slots per layer */
    int64_t sink_tokens;
    long local_attn_size;            /* -1 = global */
    int64_t global_end, local_end;   /* reference kv_cache indices (same for every layer) */
    int64_t *key_frames;             /* (cache_tokens/frame_tokens) absolute frame of each cache frame-slot */
    float **kc, **vc;                /* per layer (cache_tokens, dim) */
    float *ctx;                      /* (text_len, dim) text embedding */
    float **ck, **cv;                /* per layer (text_len, dim) cross-attention K (normed) / V */
    int ctx_ready;
    int64_t ctx_real;                /* real text tokens: rows of the last set_context up to its last non-zero row */
    /* activations, L = max_frames·frame_tokens */
    float *x, *a, *q, *k, *v, *o, *y;/* (L, dim) */
    float *h;                        /* (L, ffn_dim) */
    float *patches;                  /* (L, in_dim·ph·pw) */
    float *hout;                     /* (L, out_dim·ph·pw) */
    double *sinus;                   /* (F, freq_dim) */
    float *sinf;                     /* (F, freq_dim) */
    float *e, *et, *e0, *E, *Hm;     /* (F,dim) (F,dim) (F,6dim) (F,6,dim) (F,2,dim) */
    float *txt_tmp;                  /* (text_len, max(dim, text_dim)) */
    sf_dit_xq xq;                    /* --fp8 on the CPU: a product's input on the e4m3 grid (max(L·ffn, text_len·dim)) */
    float *lat[SF_LAT_N], *lat_flow; /* CPU slots of the sampling loop (sf_dit_lat_*), (max_frames, C, H, W) */
    sf_scratch ws;                   /* the CPU kernels' work memory, sized at init (parallel.h) */
    sf_rope_table rope;
    int nthreads;
    sf_dit_tap tap;                  /* optional */
    sf_dit_probe_fn probe;           /* optional */
    void *probe_ctx;
    /* Optional test seam: with global attention (slot = absolute token), attend to exactly the
     * listed key frames, gathered in list order, instead of the cache window. */
    sf_dit_key_select_fn key_select;
    void *key_select_ctx;
    /* --sink-ablate (sf_dit_set_ablation): in the layers marked, the self-attention skips the first ablate_frames
     * key slots of its context (sf_dit_ablate_skip) */
    int ablate_frames;
    unsigned char *ablate_layer;     /* [num_layers], owned; NULL: no layer */
    /* --sink-rope realign (sf_dit_set_sink_rope, sink_rope.c): Deep Sink's re-alignment of the sink keys */
    int sink_rope;                   /* 1: on */
    int64_t sink_rope_gap;           /* frames left between the moved sink and the oldest recent frame */
    int64_t sink_shift;              /* the time shift the sink slots hold now (0: as cached) */
    int sink_orig_valid;             /* sink_orig holds the sink slots' keys as cached */
    float *sink_orig;                /* CPU: (num_layers, sink_tokens, dim), owned (a GPU keeps its own) */
    /* --kv-compress (sf_dit_set_kv_compress, kv_compress.c): Participative Compression of a rolling cache */
    int64_t kvc_tokens;              /* tokens of the compressed region right after the sink (0: off) */
    int64_t kvc_lq;                  /* query rows of the last forward, kept in kvc_q (0: none since the reset) */
    float *kvc_q;                    /* CPU: (num_layers, max_frames·frame_tokens, dim) its post-RoPE queries, owned */
    double *kvc_score;               /* CPU: (num_layers, heads, kvc_tokens + max_frames·frame_tokens) importances */
    int32_t *kvc_idx;                /* host: (num_layers, heads, kvc_tokens) the tokens each head keeps */
    int64_t kvc_runs;                /* compressions since the state was made (tests, info) */
    int32_t *kvc_src;                /* host: (num_layers, heads, kvc_tokens) the frame each kept token came from */
    int kvc_src_valid;               /* kvc_src holds them (a compression of this video ran) */
    unsigned char *kvc_pend;         /* GPU, host: (num_layers) 1 where the last compression's choice is still only on
                                        the device: kvc_src catches up in sf_dit_settle */
    int64_t *kvc_old_kf;             /* GPU, host: (cache frames) key_frames before that compression's roll */
    int kvc_old_valid;               /* and kvc_src_valid before it */
    /* Test seam (test_dit_cuda_shapes), CPU states only: when set, layer l's selection comes from here instead of
     * sf_kv_select_cpu / sf_pc_select_cpu (same contract; 0 = done) — a CPU state made to keep the GPU's tokens, so
     * their flows stay comparable (a GPU state selects on the device: SF_E_UNSUPPORTED there). */
    int (*kvc_select)(void *ctx, int layer, int H, int64_t n, const double *score, int64_t keep, int32_t *idx);
    void *kvc_select_ctx;
    /* --pc-budget (sf_dit_set_pc, pc.c): Participative Compression as Deep Forcing's released code runs it */
    int64_t pc_budget;               /* tokens a compression leaves: sink + top-C + recent (0: off) */
    int64_t pc_recent;               /* R: the newest query rows summed, and the newest cache tokens kept whole */
    int pc_max_reuse;                /* a token chosen this many times stands back while others can (0: no limit) */
    int64_t pc_head, pc_len;         /* the query ring's oldest row and the rows it holds (every layer alike) */
    float *pc_ring;                  /* CPU: (num_layers, pc_recent, dim) each layer's last R post-RoPE queries */
    int32_t *pc_count;               /* CPU: (num_layers, cache_tokens) times the token in each slot was chosen (a GPU
                                        keeps its own) */
    double *pc_qsum, *pc_score;      /* CPU scratch: (dim), (cache_tokens) */
    int32_t *pc_idx;                 /* host scratch: (cache_tokens) a compaction's sources (GPU: as downloaded) */
    unsigned char *pc_pend;          /* GPU, host: (num_layers) as kvc_pend, for --pc-budget's compression */
    int64_t pc_sink_want;            /* the shift of the sink that the last compression asked for (frames) */
    int32_t *pc_src;                 /* host: (num_layers, cache_tokens) the frame each kept token came from */
    int64_t pc_kept, pc_kept_old;    /* tokens kept after the sink now, and before this forward's compression */
    int64_t *pc_old_kf;              /* host: (cache frames) key_frames as they were before this forward's plan */
    int64_t pc_runs, pc_fills;       /* compressions; tokens chosen past the reuse limit (tests, info) */
} sf_dit_state;

/* Allocate the state for blocks of up to max_frames latent frames of lat_h × lat_w, a KV cache of
 * cache_frames frames (global attention: the whole video; local: local_attn_size), sink frames.
 * Rolling cache (local_attn_size != -1, cache_frames = local_attn_size): block [s, s+F) attends to
 * frames [0, sink) ∪ [max(sink, s+F−(local_attn_size−sink)), s+F) — the reference's eviction
 * (see /work/notes/longvideo.md); needs sink_size + max_frames <= cache_frames (else SF_E_ARG). */
sf_status sf_dit_state_init(sf_dit_state *st, const sf_dit_weights *w, int max_frames, int lat_h, int lat_w,
                            int64_t cache_frames, long local_attn_size, long sink_size, int nthreads, sf_err *err);
/* The same on a device: cuda_ordinal −1 = the CPU (sf_dit_state_init), N ≥ 0 = cuda:N, where the
 * weights are uploaded as bf16 and the state is allocated on the GPU (the host keeps only the cache
 * plan and the RoPE table). SF_E_DEVICE / SF_E_UNSUPPORTED / SF_E_NOMEM name what is missing. */
sf_status sf_dit_state_init_on(sf_dit_state *st, const sf_dit_weights *w, int max_frames, int lat_h, int lat_w,
                               int64_t cache_frames, long local_attn_size, long sink_size, int nthreads,
                               int cuda_ordinal, sf_err *err);
/* The same with a RoPE table of rope_frames time positions (max_frames..SF_DIT_ROPE_FRAMES_MAX;
 * the others use the reference's SF_DIT_ROPE_FRAMES = 1024). Positions past 1024 follow the
 * reference's formula (pos·θ in fp64), so the first 1024 rows are the reference's table bit for bit;
 * a forward past the last row is SF_E_ARG (an endless run ends there: README "Live"). */
#define SF_DIT_ROPE_FRAMES 1024
#define SF_DIT_ROPE_FRAMES_MAX (1 << 16)
sf_status sf_dit_state_init_rope(sf_dit_state *st, const sf_dit_weights *w, int max_frames, int lat_h, int lat_w,
                                 int64_t cache_frames, long local_attn_size, long sink_size, int nthreads,
                                 int cuda_ordinal, int rope_frames, sf_err *err);
void sf_dit_state_free(sf_dit_state *st);
/* Keys a self-attention sees at most: the whole cache (global attention) or local_attn_size frames. */
int64_t sf_dit_window_tokens(const sf_dit_state *st);
/* In a pass whose prediction nobody reads (kv_only: the clean-context refresh, a re-cache) layer l
 * stops once its K/V are in the cache when it is the last layer — its output feeds only the head —
 * and no tap wants its self- or cross-attention. Earlier layers run whole: each one's output is the
 * next one's input, hence its K/V. Exact (test_dit_pipeline `refresh_kv_only`). Both backends. */
int sf_dit_kv_only_layer(const sf_dit_state *st, int l, int kv_only);
/* Sink ablation, an intervention for attention-sink studies: in layers[nl] (nl 0: every layer) the self-attention
 * of every forward skips the first `frames` key slots of its window that are context — under global attention the
 * video's first frames, with a rolling cache its sink slots (or, without a sink, its oldest frames) — but never the
 * forward's own frames. frames 0 turns it off. Both backends; set after the state is made and before
 * sf_dit_prepare. SF_E_ARG: a layer out of range, frames < 0, or the key_select seam in use. A tapped ablated
 * layer's view holds the keys it attended: Lk less the skip, key_frames from the first slot it kept. */
sf_status sf_dit_set_ablation(sf_dit_state *st, int frames, const int *layers, int nl, sf_err *err);
/* Key tokens layer l's self-attention skips at the front of a window of Lk keys for Lq queries (the forward's own
 * keys are the window's last Lq): min(ablate_frames · frame_tokens, Lk − Lq) in an ablated layer, else 0. */
int64_t sf_dit_ablate_skip(const sf_dit_state *st, int l, int64_t Lq, int64_t Lk);
/* Deep Sink's temporal re-alignment (Deep Forcing, Yi et al. 2025), an intervention for long rolling-cache runs:
 * once eviction has opened a gap between the sink frames [0, sink) and the oldest recent frame a of a forward's
 * window, the sink's cached keys are moved in time, as if RoPE had put them at frames a − gap − sink .. a − gap − 1
 * (shift a − gap − sink: only the time pairs of each head turn, sf_rope_time_shift_cpu; values are unchanged),
 * so the window reads as one stretch of time instead of frames 0..sink−1 followed by a jump. The shift is taken
 * from the sink keys as cached each time (never compounded), once per change of window (a block), on both
 * backends. A forward that rewrites sink slots (the first blocks; a re-cache of the sink frames) sees the sink
 * unshifted. gap >= 0 frames (0: adjacent). Needs a rolling cache with a sink (SF_E_ARG otherwise). on 0 turns
 * it off; 2 (sf_dit_set_pc's) takes the shift --pc-budget's compressions ask for instead. Set after the state is
 * made; set again mid-video, it first puts the sink back as cached;
 * sf_dit_state_reset forgets the shift. */
sf_status sf_dit_set_sink_rope(sf_dit_state *st, int on, int64_t gap, sf_err *err);
/* Before a forward (dit.c) whose window starts at slot lo and holds n_frames frames kfr[] (absolute), and which
 * writes from slot ls: bring the sink slots to the shift that window gives them (snapshotting them as cached first
 * if needed) — 0 when the sink is not in it, the window is one stretch, or the forward writes a sink slot. */
sf_status sf_dit_sink_realign(sf_dit_state *st, int64_t lo, int64_t ls, const int64_t *kfr, int64_t n_frames,
                              sf_err *err);

/* Participative Compression (Deep Forcing, Yi et al. 2025), an intervention for long rolling-cache runs: the cache
 * holds the sink, then a compressed region of `frames` frames' worth of tokens, then the recent frames. Where the
 * reference's eviction drops the oldest frames after the sink, each layer here scores the candidates — the
 * compressed region's tokens and the frames leaving the recent ones — by the attention probability the last
 * forward's queries gave them (kernels/kv_compress.h: summed over those queries, the softmax over every key in the
 * cache as that forward saw it), and per head keeps the frames·frame_tokens most attended (ties: the older), in
 * their cache order, with their keys and values as cached (RoPE at their own frames). The recent frames roll down
 * behind them. Their slots' key_frames read −1 (tokens of mixed frames, per head). Keys are scored once per
 * eviction (the first forward of a block), from the previous forward's queries (normally the block before's
 * clean-context pass; after a prompt switch's re-cache, its last chunk's), kept per layer (so that pass computes
 * its last layer's queries too). A re-cache leaves the compressed tokens as they are (their frames are not whole
 * in the cache). frames 0 turns it off (the reference's eviction). Needs a rolling cache whose window is the
 * cache, and sink + frames + max_frames ≤ the cache's frames (SF_E_ARG otherwise). Both backends; set before a
 * video (sf_dit_state_reset forgets the kept queries: a video's first eviction after a reset with none drops the
 * oldest frames as the reference does). */
sf_status sf_dit_set_kv_compress(sf_dit_state *st, int64_t frames, sf_err *err);
/* The eviction of a forward (dit.c): kv_plan's evict tokens leave; with compression on and queries kept, the
 * candidates [sink, sink + kvc_tokens + evict) are compressed into [sink, sink + kvc_tokens) and the rest of the
 * cache [sink + kvc_tokens + evict, local_end) rolls down behind them, every layer, key_frames too. Returns 1 in
 * *done when it did the eviction (the forward then rolls nothing), 0 when the plain roll is still to do. */
sf_status sf_dit_kv_compress(sf_dit_state *st, int64_t evict, int *done, sf_err *err);
/* Whether a cache of cache_frames holds the sink, `frames` compressed frames and a block: SF_OK, else SF_E_ARG saying
 * so (sf_dit_set_kv_compress's check, for callers that check before making a state). */
sf_status sf_dit_kv_compress_fits(int64_t frames, int64_t sink_frames, int block_frames, int64_t cache_frames,
                                  sf_err *err);
/* Layer l's kept tokens' frames into a self-attention view (kept_frames, kept_tokens, kept_heads; none: NULL, 0).
 * On a GPU, the layer settled first (sf_dit_settle; the GPU's taps do). */
void sf_dit_kept_view(const sf_dit_state *st, int l, sf_dit_attn_view *v);
/* GPU: a compression's choice is made on the device (kernels/kv_compress_cuda.h sf_topk_select_cuda), so the forward
 * never waits for the host; what the host keeps of it — where each kept token came from (kvc_src, pc_src) and
 * --pc-budget's fills — catches up here: for layer l (all layers: l < 0) whose last compression is pending, one
 * download of its choice (synchronous). A GPU forward calls it once its work is enqueued (before its taps' views and
 * its output), with taps also before a view it delivers while running, and sf_dit_forward before each plan; a no-op on
 * the CPU and when nothing is pending. */
sf_status sf_dit_settle(sf_dit_state *st, int l, sf_err *err);
/* Frees what sf_dit_set_kv_compress made (sf_dit_state_free calls it). */
void sf_dit_kv_compress_free(sf_dit_state *st);

/* Participative Compression as Deep Forcing's released code runs it (Yi et al. 2025; the authors' code release,
 * `wan/modules/causal_model.py`): a rolling cache that, whenever a block's first forward would overflow it, is
 * compressed to budget frames' worth of tokens — the sink, the top-C tokens, and the recent R = recent frames'
 * worth (the newest, this forward's included). Every layer keeps its last R post-RoPE query rows (all forwards, a
 * ring); at a compression it sums them (the current forward's included), scores each candidate token of the cache
 * (after the sink, before the recent) by that sum dotted with its key over all the heads' features, divided by
 * √d·heads (kernels/kv_compress.h sf_pc_scores_cpu: one score shared by every head, no softmax), and keeps the
 * C = budget − sink − recent best (ties: the older; a token already chosen max_reuse times stands back while
 * others can, 0: no limit), in cache order. With a sink, the sink's keys then move in time as if the compressed
 * cache ended where the block begins — the sink starts budget frames before it (the shift the released code gives
 * them, set at each compression; sink_rope.c). Kept slots' key_frames read −1. Needs a rolling cache whose window is the cache,
 * max_frames ≤ recent, sink + recent ≤ budget ≤ the cache's frames, and --kv-compress off (SF_E_ARG otherwise).
 * Both backends; set before a video; budget 0 turns it off. */
sf_status sf_dit_set_pc(sf_dit_state *st, int64_t budget, int64_t recent, int max_reuse, sf_err *err);
/* sf_dit_set_pc's size checks on frame counts, for callers that check before making a state (sf-denoise --check). */
sf_status sf_dit_pc_fits(int64_t budget, int64_t recent, int64_t sink_frames, int block_frames, int64_t cache_frames,
                         sf_err *err);
/* A forward's plan (dit.c): with --pc-budget on, 1 when this forward of n_new tokens compresses, with kv's ls / le /
 * pc fields set (no eviction), key_frames rearranged and the sink's shift asked for; 0 when the plain plan stands. */
int sf_dit_pc_plan(sf_dit_state *st, int64_t n_new, int64_t start_frame, sf_dit_kv_step *kv);
/* Its arithmetic alone, the query window holding window_rows rows before the forward (sf_dit_prepare's replay). */
int sf_dit_pc_sizes(const sf_dit_state *st, int64_t n_new, int64_t start_frame, int64_t window_rows, sf_dit_kv_step *kv);
/* Layer l's part, CPU (dit.c, after RoPE, before the new keys are written): the layer's L query rows q join its
 * ring; a compressing forward then scores, selects and compacts the layer's cache (keys, values, counts). */
sf_status sf_dit_pc_layer(sf_dit_state *st, int l, const sf_dit_kv_step *kv, const float *q, int64_t L, sf_err *err);
/* sf_dit_settle's part for --pc-budget's layer l (pc.c). */
sf_status sf_dit_pc_settle(sf_dit_state *st, int l, sf_err *err);
/* After a forward of L query rows: the ring's oldest row and length move on (both backends). */
void sf_dit_pc_advance(sf_dit_state *st, int64_t L);
/* A new video (sf_dit_state_reset): every slot's reuse count 0 (a GPU's too: enqueued), nothing pending. */
void sf_dit_pc_reset(sf_dit_state *st);
/* Frees what sf_dit_set_pc made (sf_dit_state_free calls it). */
void sf_dit_pc_free(sf_dit_state *st);

/* Start a new video: cache indices to 0 (the cross-attention cache stays with its prompt). */
void sf_dit_state_reset(sf_dit_state *st);

/* Text conditioning: emb (n_rows, text_dim) f32 with n_rows <= text_len; zero-padded to text_len
 * rows, embedded, and every layer's cross-attention K/V computed (the reference's crossattn_cache). */
sf_status sf_dit_set_context(sf_dit_state *st, const float *emb, int64_t n_rows, sf_err *err);

/* One forward over a block: x_t (F, C, H, W) f32 noisy latents, t (F) timesteps, start_frame =
 * first latent frame of the block (absolute; current_start = start_frame·frame_tokens).
 * flow: (F, C, H, W) f32 model output. Updates the KV cache like the reference. */
sf_status sf_dit_forward(sf_dit_state *st, const float *x_t, int F, const float *t, int64_t start_frame,
                         float *flow, sf_err *err);

/* LongLive's KV re-cache after a prompt switch (sf_dit_set_context first): recompute the K/V of every
 * frame now in the cache under the current context. The cached frames are taken in slot order, in
 * chunks of consecutive frames of one block (blocks of fpb frames, the first of 1 with an
 * independent first frame); each chunk's clean latents frame_x0(ctx, frame) ((C, H, W) f32, borrowed)
 * run one forward at timestep t (context_noise) that rewrites the chunk's own slots and attends to
 * every slot up to its end (sink, older window frames, itself); no prediction is made (as sf_dit_refresh)
 * and slots past local_end, the cache indices and the latent slots x / x0 keep their meaning. */
sf_status sf_dit_recache(sf_dit_state *st, float t, int fpb, int independent_first_frame,
                         const float *(*frame_x0)(void *ctx, int64_t frame), void *ctx, sf_err *err);

/* ---- the sampling loop's latents, kept where the forward runs ---------------------------------
 * Three slots (sf_dit_slot) of up to max_frames·C·H·W f32 (C = in_dim = out_dim): x (the forward's input), x0
 * (the prediction) and aux (a prediction that must not clobber x0: the context pass's). On a GPU
 * they live on the device and the calls below only enqueue work: within a block nothing crosses
 * PCIe except the re-noising draws going in (staged through pinned memory), and the host waits
 * only where it reads a slot (a finished block; a per-step prediction hook). On the CPU the slots
 * are host buffers and the calls are the plain CPU steps, so one loop (pipeline.c) serves both. */
/* slot ← n host floats. The host buffer may be reused at return. */
sf_status sf_dit_lat_put(sf_dit_state *st, sf_dit_slot slot, const float *host, int64_t n, sf_err *err);
/* n host floats ← slot, after everything enqueued before (waits on a GPU). */
sf_status sf_dit_lat_get(sf_dit_state *st, sf_dit_slot slot, float *host, int64_t n, sf_err *err);
/* sf_dit_lat_get in two halves, for a block's hand-out: _begin starts copying slot's n values for host
 * (GPU: enqueued into pinned memory, so more work can be enqueued behind it before the host waits;
 * CPU: the copy itself), _end waits until host holds them (then host is valid). One at a time; the slot
 * must not be written by work enqueued in between. */
sf_status sf_dit_lat_get_begin(sf_dit_state *st, sf_dit_slot slot, float *host, int64_t n, sf_err *err);
sf_status sf_dit_lat_get_end(sf_dit_state *st, sf_err *err);
/* dst ← src, n floats. */
sf_status sf_dit_lat_copy(sf_dit_state *st, sf_dit_slot dst, sf_dit_slot src, int64_t n, sf_err *err);
/* One forward on slot x (F frames, timesteps t, like sf_dit_forward), then the scheduler's flow → x0
 * with σ = sf_scheduler_sigma_x0(t): slot dst = x − σ·flow (sf_flow_to_x0_cpu). */
sf_status sf_dit_denoise(sf_dit_state *st, int F, const float *t, int64_t start_frame, double sigma, sf_dit_slot dst,
                         sf_err *err);
/* The clean-context refresh pass: the same forward as sf_dit_denoise on slot x, but nobody reads its
 * prediction, so only the KV cache is written: the last layer stops once its K/V are stored (unless a
 * tap wants that layer) and the head and flow → x0 are skipped; no slot changes. The cache gets the
 * same values as sf_dit_denoise would write (test_dit_pipeline `refresh_kv_only`). */
sf_status sf_dit_refresh(sf_dit_state *st, int F, const float *t, int64_t start_frame, sf_err *err);
/* Re-noising: slot x = (1 − σ)·x0 + σ·eps (sf_add_noise_cpu), eps: n host floats (reusable at return). */
sf_status sf_dit_renoise(sf_dit_state *st, const float *eps, int64_t n, float sigma, sf_err *err);
/* Before a video's loop: make everything its forwards will need — on a GPU the cuDNN plan of every
 * (queries, keys) shape the blocks produce and, when a tap is attached or cuDNN refuses a shape,
 * the explicit attention's workspace — so that the loop allocates and plans nothing. frames[b]:
 * latent frames of block b, starting from a reset cache. Leaves the cache indices as they were.
 * The CPU has nothing to prepare. */
sf_status sf_dit_prepare(sf_dit_state *st, int n_blocks, const int *frames, sf_err *err);

#endif
