/* test_dit_longvideo.c — the rolling KV cache (local_attn_size / sink_size) of the causal DiT.
 * There is no golden for it, so the checks are built to fail on wrong eviction arithmetic:
 *  (a) a window that covers the whole video (local_attn_size >= frames) gives the global-attention
 *      run bit for bit;
 *  (b) an independent brute-force run: a global-attention state (slot = absolute frame) whose
 *      self-attention is restricted, through the key_select seam, to an explicit list of key
 *      frames computed here from the semantics below; every x0 prediction (all blocks, all steps,
 *      the refresh pass) of the rolling run must equal it bit for bit (same keys in the same order),
 *      and must differ from the global run once frames were evicted;
 *  (c) impossible combinations are errors;
 *  (d) --kv-compress (kv_compress_*): each compression against a brute force written here (scores in double from
 *      the kept queries, the selection, the moved keys and values bit for bit), the plain run before it.
 * Semantics (derived from CausalWanSelfAttention's kv_cache update in wan/modules/causal_model.py
 * and checked against a frame-level simulation of that arithmetic for all T <= 39, block 1..4,
 * window 1..19, every sink, with and without an independent first frame): a block covering
 * latent frames [s, e) — every pass of it, since repeated passes never evict — attends to
 *     [0, e)                                         if e <= local_attn_size
 *     [0, sink) ∪ [max(sink, e − (local_attn_size − sink)), e)   otherwise,
 * keys kept in that order (sink first), RoPE positions absolute.
 * Tiny golden model, 12 latent frames 8×12, seeded noise. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "dit_golden.h"
#include "config.h"
#include "tfile.h"
#include "stages/denoise/pipeline.h"

#include <stdio.h>

enum { T = 12, FR = 16 * 8 * 12, NSTEP = 2 }; /* 2 steps + refresh: repeated passes, fewer forwards */

static dit_golden_base M;
static void model_load(void) { dit_golden_base_load(&M); }

/* The test's own statement of which key frames block [s, s+F) sees (see the file comment). */
typedef struct window { long las, sink; } window;

static int64_t visible(const window *wd, int64_t s, int F, int64_t *out, int64_t cap) {
    int64_t e = s + F, n = 0;
    if (e <= wd->las) {
        for (int64_t f = 0; f < e && n < cap; f++) out[n++] = f;
        return n;
    }
    for (int64_t f = 0; f < wd->sink && n < cap; f++) out[n++] = f;
    int64_t lo = e - (wd->las - wd->sink);
    if (lo < wd->sink) lo = wd->sink;
    for (int64_t f = lo; f < e && n < cap; f++) out[n++] = f;
    return n;
}

static int64_t select_cb(void *ctx, int64_t s, int F, int64_t *out, int64_t cap) {
    return visible(ctx, s, F, out, cap);
}

/* Sink ablation (sf_dit_set_ablation), stated here as the brute force sees it: of the frames block [s, s+F) sees,
 * the first k of those before the block are dropped. */
typedef struct ablated { window w; int k; } ablated;
static int64_t ablated_cb(void *ctx, int64_t s, int F, int64_t *out, int64_t cap) {
    const ablated *a = ctx;
    int64_t n = visible(&a->w, s, F, out, cap), drop = a->k < n - F ? a->k : n - F;
    memmove(out, out + drop, sizeof(int64_t) * (size_t)(n - drop));
    return n - drop;
}

/* The run's ablation (run() sets it on its state): ab_frames 0: none; ab_nl 0: every layer */
static int ab_frames, ab_nl;
static const int *ab_layers;

/* --sink-rope realign in run()'s state (rope_on, rope_gap); rope_after: called with the state and the preds when
 * the run is done, before the state is freed */
static int rope_on;
static int64_t rope_gap;
static void (*rope_after)(sf_dit_state *st, const float *preds);

/* --kv-compress in run()'s state (kvc_frames; 0: off): every compression is checked against kvc_brute (below) */
static int64_t kvc_frames;
typedef struct kvc_snap {
    float *k, *v, *q;        /* the cache (NL, cache_tokens, D) and the kept queries (NL, L, D) before the forward */
    int64_t lq, lend;
    int armed, checked, bad, near_ties;
    int64_t kf[T];           /* key_frames before the forward */
    int32_t *frm;            /* (NL, H, kept) the frame each kept token came from, as the brute force chose them */
    int frm_valid;           /* a compression of this run ran */
} kvc_snap;
static kvc_snap KS;
static void kvc_snapshot(const sf_dit_state *st, int F);
static void kvc_brute(const sf_dit_state *st, int F);

/* Records, for layer 0, the absolute key frames the tap view reports, per forward. */
typedef struct run_ctx {
    float *preds;            /* (n_blocks, NSTEP+1, fpb, FR) */
    int fpb, block, step;
    int64_t start;
    const window *expect;    /* check the tap's key_frames against visible(), less the first ab context frames */
    int n_views, bad_views;
    int ab;                  /* layer 0's sink ablation (frames; 0: none) */
    const sf_dit_state *st;
} run_ctx;

static sf_status on_pred(void *vc, int b, int s, int F, const float *x0, sf_err *err) {
    (void)err;
    run_ctx *c = vc;
    memcpy(c->preds + ((int64_t)b * (NSTEP + 1) + s) * c->fpb * FR, x0, sizeof(float) * (size_t)(F * FR));
    if (KS.armed && s == 0) kvc_brute(c->st, F); /* the block's first forward compressed the cache */
    return SF_OK;
}

static void on_fwd(void *vc, int b, int s, int64_t start, int F) {
    (void)F;
    run_ctx *c = vc;
    c->block = b;
    c->step = s;
    c->start = start;
    if (kvc_frames && s == 0) kvc_snapshot(c->st, F);
}

static int tap_wants(void *ctx, int layer) {
    (void)ctx;
    return layer == 0;
}

static sf_status tap_done(void *ctx, const sf_dit_attn_view *v, sf_err *err) {
    (void)err;
    run_ctx *c = ctx;
    int64_t want[T];
    const ablated ab = {*c->expect, c->ab};
    const int64_t n = ablated_cb((void *)&ab, c->start, (int)(v->Lq / v->frame_tokens), want, T);
    int ok = v->Lk == n * v->frame_tokens && v->key_frames != NULL;
    for (int64_t i = 0; ok && i < n; i++) ok = v->key_frames[i] == want[i];
    c->n_views++;
    c->bad_views += !ok;
    return SF_OK;
}

/* One pipeline run over T frames. las == -1: global. sel != NULL: global state + key_select. */
static void run(long las, long sink, int iff, const window *sel, const window *check_taps, float *preds) {
    sf_err err = {{0}};
    model_load();
    if (!M.ok) return;
    KS.frm_valid = 0; /* a new state: no kept tokens yet */
    int nf = iff ? T - 2 : T; /* 1 + 3·3 = 10 frames with an independent first frame */
    sf_dit_state st;
    int64_t cache = las == -1 ? nf : las;
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, 3, 8, 12, cache, las, sink, 2, &err), &err);
    if (err.msg[0]) return;
    SF_CHECK_OK(sf_dit_set_context(&st, M.emb, M.rows, &err), &err);
    if (sel) {
        st.key_select = select_cb;
        st.key_select_ctx = (void *)sel;
    }
    SF_CHECK_OK(sf_dit_set_ablation(&st, ab_frames, ab_layers, ab_nl, &err), &err);
    SF_CHECK_OK(sf_dit_set_sink_rope(&st, rope_on, rope_gap, &err), &err);
    SF_CHECK_OK(sf_dit_set_kv_compress(&st, kvc_frames, &err), &err);
    int ab0 = ab_frames && ab_nl == 0; /* layer 0, the tapped one, ablated too */
    for (int i = 0; i < ab_nl; i++) ab0 |= ab_frames && ab_layers[i] == 0;
    run_ctx c = {preds, 3, 0, 0, 0, check_taps, 0, 0, ab0 ? ab_frames : 0, &st};
    if (check_taps) {
        st.tap.wants = tap_wants;
        st.tap.done = tap_done;
        st.tap.ctx = &c;
    }
    sf_scheduler sc;
    SF_CHECK_OK(sf_scheduler_init(&sc, 5.0, &err), &err);
    sf_pipeline_cfg pc = {{0}, NSTEP, 3, iff, 0.0f, nf, 8, 12, 16, 7, NULL, 0, 0, {0, 0, 0, 0}, 0, 0, NULL, 0};
    double raw[NSTEP] = {1000, 500};
    SF_CHECK_OK(sf_scheduler_steps(&sc, raw, NSTEP, 1, pc.steps, &err), &err);
    sf_pipeline_hooks hk = {on_fwd, on_pred, NULL, &c, 0, NULL};
    SF_CHECK_OK(sf_pipeline_run(&st, &sc, &pc, &hk, NULL, &err), &err);
    if (check_taps) {
        int n_blocks = iff ? 4 : T / 3;
        SF_CHECK_MSG(c.n_views == n_blocks * (NSTEP + 1) && c.bad_views == 0, "tap key_frames: %d views, %d wrong",
                     c.n_views, c.bad_views);
    }
    if (las != -1 && !sel) { /* the rolling cache ends full once anything was evicted */
        int64_t S = st.frame_tokens;
        SF_CHECK(st.global_end == nf * S);
        SF_CHECK(st.local_end == (nf <= las ? nf : las) * S);
    }
    if (rope_after) rope_after(&st, preds);
    sf_dit_state_free(&st);
}

enum { NPRED = (T / 3) * (NSTEP + 1) * 3 * FR, BLK = (NSTEP + 1) * 3 * FR };

/* Block b's preds (all steps) of two runs identical? */
static int same_block(const float *a, const float *b, int blk) {
    return memcmp(a + (size_t)blk * BLK, b + (size_t)blk * BLK, sizeof(float) * BLK) == 0;
}

/* The global-attention run, computed once. */
static const float *global_run(void) {
    static float g[NPRED];
    static int done;
    if (!done) run(-1, 0, 0, NULL, NULL, g);
    done = 1;
    return g;
}

static void test_window_covers_video(void) {
    static float a[NPRED], b[NPRED];
    const float *g = global_run();
    run(T, 0, 0, NULL, NULL, a);
    run(T + 3, 3, 0, NULL, NULL, b); /* sinks are irrelevant while nothing is evicted */
    SF_CHECK_MSG(memcmp(g, a, sizeof a) == 0, "local_attn_size = frames differs from global attention");
    SF_CHECK_MSG(memcmp(g, b, sizeof b) == 0, "local_attn_size > frames differs from global attention");
    int finite = 1;
    for (int i = 0; i < NPRED; i++) finite &= isfinite(g[i]);
    SF_CHECK(finite);
}

/* Rolling run vs brute force for one (window, sink); first_evicting_block: the first block whose
 * end frame exceeds the window (its and later preds must differ from global attention). */
static void rolling_case(long las, long sink, int first_evicting_block) {
    static float r[NPRED], bf[NPRED];
    window wd = {las, sink};
    const float *g = global_run();
    run(las, sink, 0, NULL, &wd, r);
    run(-1, 0, 0, &wd, NULL, bf);
    for (int blk = 0; blk < T / 3; blk++) {
        SF_CHECK_MSG(same_block(r, bf, blk), "las %ld sink %ld: block %d differs from the brute-force reference", las,
                     sink, blk);
        int evicted = blk >= first_evicting_block;
        SF_CHECK_MSG(same_block(r, g, blk) == !evicted, "las %ld sink %ld: block %d %s global attention", las, sink,
                     blk, evicted ? "equals" : "differs from");
    }
}

static void test_rolling_sink3(void) { rolling_case(6, 3, 2); } /* keeps 0 rolled frames: sink + block */
static void test_rolling_sink0(void) { rolling_case(6, 0, 2); }
static void test_rolling_roll(void) { rolling_case(8, 2, 2); }  /* block 2: evict 1, roll 3 frames */

/* Independent first frame: blocks of 1, 3, 3, 3 frames, window 5 with 1 sink (evictions of 2 then
 * 3 frames, not a multiple of the block). */
static void test_rolling_first_frame(void) {
    static float r[NPRED], bf[NPRED];
    window wd = {5, 1};
    run(5, 1, 1, NULL, &wd, r);
    run(-1, 0, 1, &wd, NULL, bf);
    SF_CHECK(memcmp(r, bf, sizeof(float) * (size_t)(4 * BLK)) == 0);
}

/* --sink-ablate, every layer: the run equals the brute force that drops the first k context frames from each block's
 * list, bit for bit (the same keys in the same order) — under global attention (frame 0, then frames 0-1) and with
 * a rolling cache and a sink (its sink slots) — and differs from the run without it from the second block on; the
 * first block, which has no context, is unchanged. A tap of the ablated layer 0 sees those keys: the absolute
 * frames of the brute force's list, every forward. */
static void ablated_case(long las, long sink, int k) {
    static float a[NPRED], bf[NPRED], plain[NPRED];
    window wd = {las == -1 ? T : las, las == -1 ? 0 : sink};
    ablated ab = {wd, k};
    if (las == -1) memcpy(plain, global_run(), sizeof plain);
    else run(las, sink, 0, NULL, NULL, plain);
    ab_frames = k;
    run(las, sink, 0, NULL, &wd, a); /* its taps of layer 0 see the keys it attended */
    ab_frames = 0;
    /* the brute force: a global state, its keys listed (key_select) */
    sf_err err = {{0}};
    model_load();
    if (!M.ok) return;
    sf_dit_state st;
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, 3, 8, 12, T, -1, 0, 2, &err), &err);
    SF_CHECK_OK(sf_dit_set_context(&st, M.emb, M.rows, &err), &err);
    st.key_select = ablated_cb;
    st.key_select_ctx = &ab;
    run_ctx c = {bf, 3, 0, 0, 0, NULL, 0, 0, 0, &st};
    sf_scheduler sc;
    SF_CHECK_OK(sf_scheduler_init(&sc, 5.0, &err), &err);
    sf_pipeline_cfg pc = {{0}, NSTEP, 3, 0, 0.0f, T, 8, 12, 16, 7, NULL, 0, 0, {0, 0, 0, 0}, 0, 0, NULL, 0};
    double raw[NSTEP] = {1000, 500};
    SF_CHECK_OK(sf_scheduler_steps(&sc, raw, NSTEP, 1, pc.steps, &err), &err);
    sf_pipeline_hooks hk = {on_fwd, on_pred, NULL, &c, 0, NULL};
    SF_CHECK_OK(sf_pipeline_run(&st, &sc, &pc, &hk, NULL, &err), &err);
    sf_dit_state_free(&st);
    for (int blk = 0; blk < T / 3; blk++) {
        SF_CHECK_MSG(same_block(a, bf, blk), "ablate %d (las %ld sink %ld): block %d differs from the brute force", k, las,
                     sink, blk);
        SF_CHECK_MSG(same_block(a, plain, blk) == (blk == 0), "ablate %d (las %ld sink %ld): block %d %s the plain run", k,
                     las, sink, blk, blk == 0 ? "differs from" : "equals");
    }
}
static void test_ablate_global_1(void) { ablated_case(-1, 0, 1); }
static void test_ablate_global_2(void) { ablated_case(-1, 0, 2); }
static void test_ablate_rolling_sink(void) { ablated_case(6, 3, 3); } /* the whole sink: block + nothing else */

/* Some layers only: ablating every layer by list = ablating them all; one layer of them differs from both, and
 * from no ablation; layers out of range and negative frames are refused. */
static void test_ablate_layers(void) {
    static float all[NPRED], listed[NPRED], one[NPRED];
    model_load();
    if (!M.ok) return;
    const int NL = M.w.cfg.num_layers, every[] = {0, 1, 2, 3, 4, 5, 6, 7}, last = NL - 1;
    SF_CHECK(NL >= 2 && NL <= 8);
    ab_frames = 1;
    run(-1, 0, 0, NULL, NULL, all);
    ab_layers = every, ab_nl = NL;
    run(-1, 0, 0, NULL, NULL, listed);
    ab_layers = &last, ab_nl = 1;
    run(-1, 0, 0, NULL, NULL, one);
    ab_frames = 0, ab_layers = NULL, ab_nl = 0;
    SF_CHECK(memcmp(all, listed, sizeof all) == 0);
    SF_CHECK(!same_block(one, all, 1) && !same_block(one, global_run(), 1) && same_block(one, global_run(), 0));
    sf_err err = {{0}};
    sf_dit_state st;
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, 3, 8, 12, T, -1, 0, 1, &err), &err);
    const int bad = NL;
    SF_CHECK(sf_dit_set_ablation(&st, 1, &bad, 1, &err) == SF_E_ARG && strstr(err.msg, "out of range"));
    SF_CHECK(sf_dit_set_ablation(&st, -1, NULL, 0, &err) == SF_E_ARG);
    SF_CHECK(sf_dit_ablate_skip(&st, 0, 72, 216) == 0);
    SF_CHECK_OK(sf_dit_set_ablation(&st, 2, &last, 1, &err), &err);
    /* skip: k frames of the context, never the block's own; only in the layer marked */
    SF_CHECK(sf_dit_ablate_skip(&st, last, 72, 216) == 48 && sf_dit_ablate_skip(&st, last, 72, 96) == 24 &&
             sf_dit_ablate_skip(&st, last, 72, 72) == 0 && sf_dit_ablate_skip(&st, 0, 72, 216) == 0);
    sf_dit_state_free(&st);
}

/* --sink-rope realign, window 6 with a sink of 3 (blocks 0-2 | 3-5 | 6-8 | 9-11: block 2 attends to the sink then
 * frames 6-8, block 3 to the sink then 9-11): the blocks before the first eviction are the plain rolling run's bit for
 * bit, the later ones differ; with a gap of 3 block 2's window needs no shift (6 − 3 − 3 = 0) and is the plain one
 * too. */
static void test_sink_rope_run(void) {
    static float plain[NPRED], re[NPRED], gap3[NPRED];
    run(6, 3, 0, NULL, NULL, plain);
    rope_on = 1;
    run(6, 3, 0, NULL, NULL, re);
    rope_gap = 3;
    run(6, 3, 0, NULL, NULL, gap3);
    rope_on = 0, rope_gap = 0;
    if (!M.ok) return;
    for (int blk = 0; blk < T / 3; blk++) {
        SF_CHECK_MSG(same_block(re, plain, blk) == (blk < 2), "realign: block %d %s the plain rolling run", blk,
                     blk < 2 ? "differs from" : "equals");
        SF_CHECK_MSG(same_block(gap3, plain, blk) == (blk < 3), "realign, gap 3: block %d %s the plain rolling run", blk,
                     blk < 3 ? "differs from" : "equals");
    }
    /* refused without a rolling cache with a sink, or with a negative gap */
    sf_err err = {{0}};
    sf_dit_state st;
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, 3, 8, 12, T, -1, 0, 1, &err), &err);
    SF_CHECK(sf_dit_set_sink_rope(&st, 1, 0, &err) == SF_E_ARG && strstr(err.msg, "rolling KV cache with a sink"));
    SF_CHECK_OK(sf_dit_set_sink_rope(&st, 0, 0, &err), &err);
    sf_dit_state_free(&st);
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, 3, 8, 12, 6, 6, 0, 1, &err), &err);
    SF_CHECK(sf_dit_set_sink_rope(&st, 1, 0, &err) == SF_E_ARG);
    sf_dit_state_free(&st);
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, 3, 8, 12, 6, 6, 3, 1, &err), &err);
    SF_CHECK(sf_dit_set_sink_rope(&st, 1, -1, &err) == SF_E_ARG && strstr(err.msg, "gap"));
    /* every shift is taken from the keys as cached, never from the last shift's result: after 301 windows that move
     * the sink back and forth, the slots are one shift of the first keys bit for bit (rotating by the change instead
     * would leave 301 roundings in them) */
    SF_CHECK_OK(sf_dit_set_sink_rope(&st, 1, 0, &err), &err);
    const int64_t n = st.sink_tokens * M.w.cfg.dim;
    float *keys = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n);
    if (!keys || !want) goto out;
    for (int64_t i = 0; i < n; i++) keys[i] = st.kc[0][i] = (float)sin(0.37 * (double)i) * 3.0f;
    for (int i = 0; i <= 300; i++) {
        const int64_t a = i % 2 ? 7 : 40, kfr[6] = {0, 1, 2, a, a + 1, a + 2};
        SF_CHECK_OK(sf_dit_sink_realign(&st, 0, 3 * st.frame_tokens, kfr, 6, &err), &err);
    }
    SF_CHECK(st.sink_shift == 37);
    sf_rope_time_shift_cpu(&st.rope, keys, M.w.cfg.dim, want, M.w.cfg.dim, st.sink_tokens, M.w.cfg.num_heads, 37, 1);
    SF_CHECK_MSG(memcmp(st.kc[0], want, sizeof(float) * (size_t)n) == 0, "301 re-alignments compounded roundings");
    /* turned off mid-video: the sink slots are the keys as cached again */
    SF_CHECK_OK(sf_dit_set_sink_rope(&st, 0, 0, &err), &err);
    SF_CHECK(st.sink_shift == 0 && memcmp(st.kc[0], keys, sizeof(float) * (size_t)n) == 0);
out:
    free(keys), free(want);
    sf_dit_state_free(&st);
}

/* The brute force of a moved sink: block 0's clean latents (its refresh pass's input) run at frames start..start+2
 * through a fresh global state under context emb, attending to those frames only (key_select), as the refresh pass
 * attended to the block alone; out ← every layer's keys of those frames (NL, 3·S, D). Shifting every position of a
 * forward that attends only to itself leaves its relative positions, hence its hidden states, as they were: its keys
 * are the cached ones RoPE'd at the new frames — what a realigned sink must hold. */
static int64_t own_block_cb(void *ctx, int64_t s, int F, int64_t *out, int64_t cap) {
    (void)ctx;
    for (int f = 0; f < F && f < cap; f++) out[f] = s + f;
    return F;
}
static void sink_brute(const float *emb, int64_t rows, const float *x0, int64_t start, float *out) {
    sf_err err = {{0}};
    sf_dit_state g;
    SF_CHECK_OK(sf_dit_state_init(&g, &M.w, 3, 8, 12, T, -1, 0, 1, &err), &err);
    SF_CHECK_OK(sf_dit_set_context(&g, emb, rows, &err), &err);
    g.key_select = own_block_cb;
    static float flow[3 * FR];
    const float t[3] = {0, 0, 0};
    SF_CHECK_OK(sf_dit_forward(&g, x0, 3, t, start, flow, &err), &err);
    const int64_t n = 3 * g.frame_tokens * M.w.cfg.dim;
    for (int l = 0; l < M.w.cfg.num_layers; l++)
        memcpy(out + l * n, g.kc[l] + start * g.frame_tokens * M.w.cfg.dim, sizeof(float) * (size_t)n);
    sf_dit_state_free(&g);
}

/* max |a − b| over every layer's sink keys of st (n per layer) against ref */
static double sink_diff(const sf_dit_state *st, const float *ref, int64_t n) {
    double md = 0;
    for (int l = 0; l < M.w.cfg.num_layers; l++)
        for (int64_t i = 0; i < n; i++) md = fmax(md, fabs(st->kc[l][i] - ref[l * n + i]));
    return md;
}

/* After the realigned run (last window: the sink, then frames 9-11, so a shift of 6 − gap) every layer's sink slots
 * hold the keys the brute force computes at frames shift..shift+2 (to the rounding RoPE at other angles makes), and
 * not the keys as cached. Then a prompt switch's re-cache (sf_dit_recache, a new context) rewrites the sink and moves
 * it again: the slots hold the new context's brute-force keys at the same frames — the copy of the sink keys taken
 * for the shift is taken again after a forward rewrote them. */
static float *rk_ref, *rk_emb2;
static int64_t rk_gap;
static const float *rk_preds;
static const float *rk_frame(void *ctx, int64_t f) {
    (void)ctx;
    return rk_preds + (((f / 3) * (NSTEP + 1) + NSTEP - 1) * 3 + f % 3) * FR; /* the block's last x0: its clean frames */
}
static void rk_check(sf_dit_state *st, const float *preds) {
    const int64_t n = st->sink_tokens * M.w.cfg.dim, shift = 6 - rk_gap;
    const float *x0 = preds + (NSTEP - 1) * 3 * FR;
    SF_CHECK_MSG(st->sink_shift == shift, "sink shift %lld after the run, want %lld", (long long)st->sink_shift,
                 (long long)shift);
    sink_brute(M.emb, M.rows, x0, shift, rk_ref);
    const double moved = sink_diff(st, rk_ref, n);
    SF_CHECK_MSG(moved <= 2e-4, "gap %lld: sink keys vs the brute force at frames %lld..: max |d| %.3g", (long long)rk_gap,
                 (long long)shift, moved);
    double as_cached = 0; /* the copy kept: the keys at frames 0..2 */
    for (int64_t i = 0; i < (int64_t)M.w.cfg.num_layers * n; i++) as_cached = fmax(as_cached, fabs(st->sink_orig[i] - rk_ref[i]));
    SF_CHECK_MSG(as_cached > 1e-2, "the sink as cached is already the moved one (max |d| %.3g): the test cannot fail", as_cached);
    /* a new prompt and its re-cache */
    sf_err err = {{0}};
    rk_preds = preds;
    SF_CHECK_OK(sf_dit_set_context(st, rk_emb2, M.rows, &err), &err);
    SF_CHECK_OK(sf_dit_recache(st, 0.0f, 3, 0, rk_frame, NULL, &err), &err);
    SF_CHECK(st->sink_shift == shift);
    sink_brute(rk_emb2, M.rows, x0, shift, rk_ref);
    const double re = sink_diff(st, rk_ref, n);
    SF_CHECK_MSG(re <= 2e-4, "after the re-cache: sink keys vs the new context's brute force: max |d| %.3g", re);
}
static void sink_keys_case(int64_t gap) {
    static float preds[NPRED];
    model_load();
    if (!M.ok) return;
    const int64_t S = (8 / M.w.cfg.patch_size[1]) * (12 / M.w.cfg.patch_size[2]); /* a frame's tokens */
    rk_ref = malloc(sizeof(float) * (size_t)(M.w.cfg.num_layers * 3 * S * M.w.cfg.dim));
    rk_emb2 = malloc(sizeof(float) * (size_t)M.n);
    for (int64_t i = 0; rk_emb2 && i < M.n; i++) rk_emb2[i] = -0.5f * M.emb[M.n - 1 - i];
    rk_gap = gap;
    rope_on = 1, rope_gap = gap, rope_after = rk_check;
    if (rk_ref && rk_emb2) run(6, 3, 0, NULL, NULL, preds);
    rope_on = 0, rope_gap = 0, rope_after = NULL;
    free(rk_ref), free(rk_emb2);
}
static void test_sink_rope_keys(void) { sink_keys_case(0); }
static void test_sink_rope_keys_gap(void) { sink_keys_case(2); }

/* ---- --kv-compress (Participative Compression) ------------------------------------------------------------------
 * The brute force, written here from the rule in dit.h: before a block's first forward that evicts, the cache and the
 * kept queries are copied; after it, per layer and head, the candidates [sink, sink + kept + evict) are scored by the
 * softmax (over the keys [0, local_end) as they stood) of every kept query, in double, logits from the queries
 * directly; the kept tokens (largest first, ties the older) sit in cache order at [sink, sink + kept) with their
 * keys and values bit for bit, the slots after the candidates rolled down behind them whole, the sink untouched. */
static void kvc_snapshot(const sf_dit_state *st, int F) {
    const int64_t S = st->frame_tokens, D = M.w.cfg.dim, NL = M.w.cfg.num_layers, C = st->cache_tokens;
    const int64_t L = (int64_t)st->max_frames * S;
    KS.armed = st->local_end + F * S > C && st->kvc_lq > 0;
    if (!KS.armed) return;
    if (!KS.k) {
        KS.k = malloc(sizeof(float) * (size_t)(NL * C * D)), KS.v = malloc(sizeof(float) * (size_t)(NL * C * D));
        KS.q = malloc(sizeof(float) * (size_t)(NL * L * D));
    }
    for (int l = 0; l < NL; l++) {
        memcpy(KS.k + l * C * D, st->kc[l], sizeof(float) * (size_t)(C * D));
        memcpy(KS.v + l * C * D, st->vc[l], sizeof(float) * (size_t)(C * D));
    }
    memcpy(KS.q, st->kvc_q, sizeof(float) * (size_t)(NL * L * D));
    memcpy(KS.kf, st->key_frames, sizeof(int64_t) * (size_t)(C / S));
    if (!KS.frm) KS.frm = calloc((size_t)(NL * M.w.cfg.num_heads * st->kvc_tokens), sizeof(int32_t));
    KS.lq = st->kvc_lq, KS.lend = st->local_end;
}

typedef struct kvc_cand {
    double s;
    int64_t j;
} kvc_cand;
static int kvc_desc(const void *a, const void *b) {
    const kvc_cand *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}
static int kvc_asc(const void *a, const void *b) {
    const kvc_cand *x = a, *y = b;
    return (x->j > y->j) - (x->j < y->j);
}

static void kvc_brute(const sf_dit_state *st, int F) {
    KS.armed = 0;
    const int64_t S = st->frame_tokens, D = M.w.cfg.dim, NL = M.w.cfg.num_layers, H = M.w.cfg.num_heads, hd = D / H;
    const int64_t C = st->cache_tokens, L = (int64_t)st->max_frames * S, T0 = st->sink_tokens, kept = st->kvc_tokens;
    const int64_t evict = KS.lend + F * S - C, n = kept + evict, rest = KS.lend - T0 - n;
    kvc_cand *cd = malloc(sizeof(kvc_cand) * (size_t)n);
    double *lg = malloc(sizeof(double) * (size_t)KS.lend);
    int bad = 0;
    for (int l = 0; l < NL && cd && lg; l++) {
        const float *K = KS.k + l * C * D, *V = KS.v + l * C * D, *Q = KS.q + l * L * D;
        for (int64_t h = 0; h < H; h++) {
            for (int64_t j = 0; j < n; j++) cd[j].s = 0, cd[j].j = j;
            for (int64_t r = 0; r < KS.lq; r++) {
                double m = -INFINITY, z = 0;
                for (int64_t i = 0; i < KS.lend; i++) {
                    double dot = 0;
                    for (int64_t e = 0; e < hd; e++) dot += (double)Q[r * D + h * hd + e] * K[i * D + h * hd + e];
                    lg[i] = dot / sqrt((double)hd);
                    m = fmax(m, lg[i]);
                }
                for (int64_t i = 0; i < KS.lend; i++) z += exp(lg[i] - m);
                for (int64_t j = 0; j < n; j++) cd[j].s += exp(lg[T0 + j] - m) / z;
            }
            int32_t *frm = KS.frm + (l * H + h) * kept; /* where the kept tokens came from: its record, then a tap's */
            const int32_t *got = st->kvc_src + (l * H + h) * kept;
            qsort(cd, (size_t)n, sizeof *cd, kvc_desc);
            if (cd[kept - 1].s - cd[kept].s < 1e-9 * cd[kept - 1].s) { /* too close to call in float: not checked */
                KS.near_ties++;
                memcpy(frm, got, sizeof(int32_t) * (size_t)kept);
                continue;
            }
            qsort(cd, (size_t)kept, sizeof *cd, kvc_asc);
            for (int64_t i = 0; i < kept; i++) { /* in place: cd[i].j >= i */
                frm[i] = KS.frm_valid && cd[i].j < kept ? frm[cd[i].j] : (int32_t)KS.kf[(T0 + cd[i].j) / S];
                if (got[i] != frm[i] && !bad++)
                    fprintf(stderr, "# kv-compress: layer %d head %lld kept token %lld came from frame %d, not %d\n", l,
                            (long long)h, (long long)i, got[i], frm[i]);
            }
            for (int64_t i = 0; i < kept; i++) {
                const size_t at = (size_t)((T0 + i) * D + h * hd), from = (size_t)((T0 + cd[i].j) * D + h * hd);
                if (memcmp(st->kc[l] + at, K + from, sizeof(float) * (size_t)hd) ||
                    memcmp(st->vc[l] + at, V + from, sizeof(float) * (size_t)hd)) {
                    if (!bad++)
                        fprintf(stderr, "# kv-compress: layer %d head %lld slot %lld should hold candidate %lld\n", l,
                                (long long)h, (long long)(T0 + i), (long long)cd[i].j);
                }
            }
        }
        if (memcmp(st->kc[l] + (T0 + kept) * D, K + (T0 + n) * D, sizeof(float) * (size_t)(rest * D)) ||
            memcmp(st->vc[l] + (T0 + kept) * D, V + (T0 + n) * D, sizeof(float) * (size_t)(rest * D)))
            bad += !fprintf(stderr, "# kv-compress: layer %d: the recent frames did not roll down whole\n", l) + 1;
        if (!rope_on && memcmp(st->kc[l], K, sizeof(float) * (size_t)(T0 * D)))
            bad += !fprintf(stderr, "# kv-compress: layer %d: the sink moved\n", l) + 1;
    }
    free(cd), free(lg);
    KS.checked++;
    KS.bad += bad;
    KS.frm_valid = 1;
}

/* The state after a compressed run: the slots' frames and the count; then a prompt switch's re-cache rewrites the
 * whole frames (sink, recent) and leaves the compressed tokens as they are. */
static float *kvc_emb2;
static void kvc_after(sf_dit_state *st, const float *preds) {
    const int64_t want[6] = {0, -1, -1, 9, 10, 11}, D = M.w.cfg.dim, S = st->frame_tokens;
    for (int f = 0; f < 6; f++)
        SF_CHECK_MSG(st->key_frames[f] == want[f], "slot %d holds frame %lld, want %lld", f, (long long)st->key_frames[f],
                     (long long)want[f]);
    SF_CHECK(st->kvc_runs == 2);
    const int64_t n = 6 * S * D;
    float *before = malloc(sizeof(float) * (size_t)n);
    if (!before || !kvc_emb2) goto out;
    memcpy(before, st->kc[1], sizeof(float) * (size_t)n);
    sf_err err = {{0}};
    rk_preds = preds;
    SF_CHECK_OK(sf_dit_set_context(st, kvc_emb2, M.rows, &err), &err);
    SF_CHECK_OK(sf_dit_recache(st, 0.0f, 3, 0, rk_frame, NULL, &err), &err);
    for (int f = 0; f < 6; f++) {
        const int same = !memcmp(before + f * S * D, st->kc[1] + f * S * D, sizeof(float) * (size_t)(S * D));
        SF_CHECK_MSG(same == (want[f] < 0), "re-cache: slot %d (frame %lld) %s", f, (long long)want[f],
                     same ? "was not rewritten" : "was rewritten");
    }
out:
    free(before);
}

/* A window of 6 with a 1-frame sink and 2 compressed frames: blocks 0-1 fill it (the plain rolling run's bit for bit),
 * blocks 2 and 3 each compress 5 frames' candidates into 2 frames' tokens per head (the second time the compressed
 * tokens are candidates again) and differ from the plain run, each compression equal to the brute force. */
static void test_kv_compress_run(void) {
    static float plain[NPRED], pc[NPRED];
    model_load();
    if (!M.ok) return;
    run(6, 1, 0, NULL, NULL, plain);
    kvc_emb2 = malloc(sizeof(float) * (size_t)M.n);
    for (int64_t i = 0; kvc_emb2 && i < M.n; i++) kvc_emb2[i] = -0.5f * M.emb[M.n - 1 - i];
    memset(&KS, 0, sizeof KS);
    kvc_frames = 2, rope_after = kvc_after;
    run(6, 1, 0, NULL, NULL, pc);
    kvc_frames = 0, rope_after = NULL;
    for (int blk = 0; blk < T / 3; blk++)
        SF_CHECK_MSG(same_block(pc, plain, blk) == (blk < 2), "kv-compress: block %d %s the plain rolling run", blk,
                     blk < 2 ? "differs from" : "equals");
    SF_CHECK_MSG(KS.checked == 2 && KS.bad == 0, "kv-compress: %d compressions checked, %d wrong", KS.checked, KS.bad);
    SF_CHECK_MSG(KS.near_ties <= 2, "kv-compress: %d heads too close to call", KS.near_ties);
    free(KS.k), free(KS.v), free(KS.q), free(KS.frm), free(kvc_emb2);
    memset(&KS, 0, sizeof KS);
    kvc_emb2 = NULL;
}

/* Deep Sink beside it: the realigned sink goes before the oldest recent frame, past the compressed slots (frame 9 of
 * the last window [0 | mixed mixed | 9 10 11]: a shift of 8). */
static void kvc_sink_after(sf_dit_state *st, const float *preds) {
    (void)preds;
    SF_CHECK_MSG(st->sink_shift == 8 && st->kvc_runs == 2, "sink shift %lld, compressions %lld", (long long)st->sink_shift,
                 (long long)st->kvc_runs);
}
static void test_kv_compress_sink_rope(void) {
    static float pc[NPRED];
    memset(&KS, 0, sizeof KS);
    kvc_frames = 2, rope_on = 1, rope_after = kvc_sink_after;
    run(6, 1, 0, NULL, NULL, pc);
    kvc_frames = 0, rope_on = 0, rope_after = NULL;
    SF_CHECK_MSG(KS.checked == 2 && KS.bad == 0, "kv-compress with realign: %d checked, %d wrong", KS.checked, KS.bad);
    free(KS.k), free(KS.v), free(KS.q), free(KS.frm);
    memset(&KS, 0, sizeof KS);
}

/* The clean-context pass keeps every layer's queries (its last layer would otherwise stop at its K/V): the kept
 * queries of sf_dit_refresh equal those of the full forward on the same input; refusals; a reset forgets them. */
static void test_kv_compress_state(void) {
    sf_err err = {{0}};
    sf_dit_state a, b;
    model_load();
    if (!M.ok) return;
    SF_CHECK_OK(sf_dit_state_init(&a, &M.w, 3, 8, 12, 6, 6, 1, 1, &err), &err);
    SF_CHECK_OK(sf_dit_state_init(&b, &M.w, 3, 8, 12, 6, 6, 1, 1, &err), &err);
    SF_CHECK_OK(sf_dit_set_kv_compress(&a, 2, &err), &err);
    SF_CHECK_OK(sf_dit_set_kv_compress(&b, 2, &err), &err);
    SF_CHECK_OK(sf_dit_set_context(&a, M.emb, M.rows, &err), &err);
    SF_CHECK_OK(sf_dit_set_context(&b, M.emb, M.rows, &err), &err);
    static float x[3 * FR], flow[3 * FR];
    for (int i = 0; i < 3 * FR; i++) x[i] = (float)sin(0.01 * i);
    const float t[3] = {0, 0, 0};
    SF_CHECK_OK(sf_dit_lat_put(&a, SF_LAT_X, x, 3 * FR, &err), &err);
    SF_CHECK_OK(sf_dit_refresh(&a, 3, t, 0, &err), &err);
    SF_CHECK_OK(sf_dit_forward(&b, x, 3, t, 0, flow, &err), &err);
    const int64_t nq = (int64_t)M.w.cfg.num_layers * 3 * a.frame_tokens * M.w.cfg.dim;
    SF_CHECK(a.kvc_lq == 3 * a.frame_tokens && b.kvc_lq == a.kvc_lq);
    SF_CHECK_MSG(memcmp(a.kvc_q, b.kvc_q, sizeof(float) * (size_t)nq) == 0, "the refresh pass kept other queries");
    sf_dit_state_reset(&a);
    SF_CHECK(a.kvc_lq == 0);
    SF_CHECK(sf_dit_set_kv_compress(&a, 3, &err) == SF_E_ARG && strstr(err.msg, "need 7 frames"));
    SF_CHECK(sf_dit_set_kv_compress(&a, -1, &err) == SF_E_ARG);
    SF_CHECK_OK(sf_dit_set_kv_compress(&a, 0, &err), &err);
    SF_CHECK(a.kvc_tokens == 0 && a.kvc_q == NULL);
    sf_dit_state_free(&a), sf_dit_state_free(&b);
    SF_CHECK_OK(sf_dit_state_init(&a, &M.w, 3, 8, 12, T, -1, 0, 1, &err), &err);
    SF_CHECK(sf_dit_set_kv_compress(&a, 1, &err) == SF_E_ARG && strstr(err.msg, "rolling KV cache"));
    sf_dit_state_free(&a);
}

static int64_t future_cb(void *ctx, int64_t s, int F, int64_t *out, int64_t cap) {
    (void)ctx;
    (void)cap;
    out[0] = s + F;
    return 1;
}

static void test_impossible(void) {
    sf_err err = {{0}};
    sf_dit_state st;
    model_load();
    if (!M.ok) return;
    /* window smaller than sink + block */
    SF_CHECK(sf_dit_state_init(&st, &M.w, 3, 8, 12, 4, 4, 2, 1, &err) == SF_E_ARG && strstr(err.msg, "sink_size 2"));
    /* window smaller than a block */
    SF_CHECK(sf_dit_state_init(&st, &M.w, 3, 8, 12, 2, 2, 0, 1, &err) == SF_E_ARG);
    /* rolling cache not sized to the window */
    SF_CHECK(sf_dit_state_init(&st, &M.w, 3, 8, 12, 6, 5, 0, 1, &err) == SF_E_ARG);
    /* global cache too small for the video: the forward past it is an error, not an overflow */
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, 3, 8, 12, 6, -1, 0, 1, &err), &err);
    SF_CHECK_OK(sf_dit_set_context(&st, M.emb, M.rows, &err), &err);
    static float x[3 * FR], flow[3 * FR];
    float t[3] = {1000, 1000, 1000};
    SF_CHECK_OK(sf_dit_forward(&st, x, 3, t, 0, flow, &err), &err);
    SF_CHECK_OK(sf_dit_forward(&st, x, 3, t, 3, flow, &err), &err);
    SF_CHECK(sf_dit_forward(&st, x, 3, t, 6, flow, &err) == SF_E_ARG && strstr(err.msg, "overflow"));
    /* the seam refuses a list with a frame from the future */
    st.key_select = future_cb;
    sf_dit_state_reset(&st);
    SF_CHECK(sf_dit_forward(&st, x, 3, t, 0, flow, &err) == SF_E_ARG && strstr(err.msg, "key_select"));
    sf_dit_state_free(&st);
    /* frames not a multiple of the block */
    int nb;
    sf_pipeline_cfg pc = {{1000}, 1, 3, 0, 0.0f, 13, 8, 12, 16, 0, NULL, 0, 0, {0, 0, 0, 0}, 0, 0, NULL, 0};
    SF_CHECK(sf_pipeline_check(&pc, &nb, &err) == SF_E_ARG);
}

static void test_cleanup(void) {
    dit_golden_base_free(&M);
}

static const sf_test tests[] = {
    {"window_covers_video", test_window_covers_video},
    {"rolling_sink3", test_rolling_sink3},
    {"rolling_sink0", test_rolling_sink0},
    {"rolling_roll", test_rolling_roll},
    {"rolling_first_frame", test_rolling_first_frame},
    {"impossible", test_impossible},
    {"ablate_global_1", test_ablate_global_1},
    {"ablate_global_2", test_ablate_global_2},
    {"ablate_rolling_sink", test_ablate_rolling_sink},
    {"ablate_layers", test_ablate_layers},
    {"sink_rope_run", test_sink_rope_run},
    {"sink_rope_keys", test_sink_rope_keys},
    {"sink_rope_keys_gap", test_sink_rope_keys_gap},
    {"kv_compress_run", test_kv_compress_run},
    {"kv_compress_sink_rope", test_kv_compress_sink_rope},
    {"kv_compress_state", test_kv_compress_state},
    {"cleanup", test_cleanup},
};
SF_TEST_MAIN(tests)
