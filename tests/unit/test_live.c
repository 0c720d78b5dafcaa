/* test_live.c — the live features of the sampling loop (stages/denoise/live.h, pipeline.h):
 *  switch_at_block  a prompt switch at block k gives bit for bit the single-prompt run's blocks < k
 *                   and different blocks from k on (with and without re-cache, which differ from
 *                   each other at block k);
 *  recache_*        sf_dit_recache rewrites exactly the K/V of the frames in the cache window: every
 *                   slot [0, local_end) equals a brute-force recompute — a global-attention state under
 *                   the new prompt whose self-attention is restricted (key_select seam) to the window
 *                   frames up to each chunk, fed the chunks' clean latents at context_noise — and
 *                   slots past local_end are untouched; with a rolling cache that evicted frames and
 *                   with a global one;
 *  endless_*        num_frames 0: blocks until the stop hook says so, memory independent of the block
 *                   count (no allocation grows), the same first block as a finite run's with the
 *                   block-by-block noise order, and a clean end at the RoPE table's last row;
 *  rope_rows        a longer RoPE table (endless runs) starts with the reference's 1024 rows bit for bit;
 *  feed             prompt_embeds messages on a stream: the first conditions block 0, later ones are
 *                   taken at their at_block, a wrong shape is skipped;
 *  pace             --pace: the viewer's clock model on given times (pace.h), and the block-start hook
 *                   waiting for it.
 * Tiny golden model, 8×12 latents, 2 steps + refresh. */
#define _DEFAULT_SOURCE
#include "sf_test.h"
#include "parallel.h"
#include "dit_golden.h"
#include "config.h"
#include "tfile.h"
#include "wire.h"
#include "stages/denoise/live.h"
#include "stages/denoise/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

enum { FR = 16 * 8 * 12, NSTEP = 2, MAXB = 8 };

static dit_golden_base M;
static float *emb2; /* a second "prompt" of the golden one's size */

static void model_load(void) {
    if (M.ok || !dit_golden_base_load(&M)) return;
    emb2 = malloc(sizeof(float) * (size_t)M.n);
    SF_CHECK(emb2 != NULL);
    if (!emb2) {
        M.ok = 0;
        return;
    }
    for (int64_t i = 0; i < M.n; i++) emb2[i] = -0.5f * M.emb[M.n - 1 - i] + 0.25f;
}

static void pipe_cfg(sf_pipeline_cfg *pc, sf_scheduler *sc, int num_frames, int iff) {
    sf_err err = {{0}};
    memset(pc, 0, sizeof *pc);
    pc->n_steps = NSTEP, pc->frames_per_block = 3, pc->independent_first_frame = iff;
    pc->num_frames = num_frames, pc->lat_h = 8, pc->lat_w = 12, pc->channels = 16, pc->seed = 7;
    SF_CHECK_OK(sf_scheduler_init(sc, 5.0, &err), &err);
    double raw[NSTEP] = {1000, 500};
    SF_CHECK_OK(sf_scheduler_steps(sc, raw, NSTEP, 1, pc->steps, &err), &err);
}

/* A run's finished blocks (F·FR floats at start·FR) and its switching plan. */
typedef struct run_ctx {
    float *out;              /* (frames, FR) */
    int64_t cap;             /* frames */
    int blocks, stop_after;  /* endless: stop once this many blocks are out */
    int switch_at, recache;  /* live hook: set emb2 at block switch_at (-1 never) */
    sf_dit_state *st;
    const float *init;       /* initial latents (n_init, FR) or NULL (pipeline.h) */
    int n_init;
} run_ctx;

static sf_status on_block(void *vc, int b, int64_t start, int F, const float *x0, sf_err *err) {
    (void)err, (void)b;
    run_ctx *c = vc;
    if (start + F <= c->cap) memcpy(c->out + start * FR, x0, sizeof(float) * (size_t)(F * FR));
    c->blocks++;
    return SF_OK;
}

static sf_status on_start(void *vc, int b, int64_t start, int *recache, sf_err *err) {
    (void)start;
    run_ctx *c = vc;
    if (b != c->switch_at) return SF_OK;
    *recache = c->recache;
    return sf_dit_set_context(c->st, emb2, M.rows, err);
}

static int stop_cb(void *vc) {
    run_ctx *c = vc;
    return c->stop_after > 0 && c->blocks >= c->stop_after;
}

/* One run: T frames (0 = endless), cache of las frames (-1 global) with sink, switch plan in c. */
static sf_status run(int T, long las, long sink, int iff, int rope_frames, run_ctx *c, sf_err *err) {
    model_load();
    if (!M.ok) return sf_fail(err, SF_E_NOTFOUND, "no model");
    sf_dit_state st;
    int64_t cache = las == -1 ? T + c->n_init : las;
    sf_status s = sf_dit_state_init_rope(&st, &M.w, 3, 8, 12, cache, las, sink, 2, -1, rope_frames, err);
    if (s) return s;
    c->st = &st;
    if (!(s = sf_dit_set_context(&st, M.emb, M.rows, err))) {
        sf_scheduler sc;
        sf_pipeline_cfg pc;
        pipe_cfg(&pc, &sc, T, iff);
        pc.init_latents = c->init, pc.init_frames = c->n_init;
        sf_pipeline_hooks hk = {NULL, NULL, on_block, c, 0, NULL};
        sf_pipeline_live lv = {c->switch_at >= 0 ? on_start : NULL, stop_cb, c};
        s = sf_pipeline_run_live(&st, &sc, &pc, &hk, &lv, NULL, err);
    }
    sf_dit_state_free(&st);
    c->st = NULL;
    return s;
}

static int same_frames(const float *a, const float *b, int64_t f0, int64_t f1) {
    return memcmp(a + f0 * FR, b + f0 * FR, sizeof(float) * (size_t)((f1 - f0) * FR)) == 0;
}

static void switch_case(int iff, long las, long sink) {
    enum { T = 12 };
    sf_err err = {{0}};
    static float base[T * FR], sw[T * FR], swr[T * FR];
    const int k = 2, first = iff ? 1 + 3 * (k - 1) : 3 * k; /* first frame of block k */
    const int nf = iff ? 10 : T;
    run_ctx a = {base, T, 0, 0, -1, 0, NULL, NULL, 0}, b = {sw, T, 0, 0, k, 0, NULL, NULL, 0},
            r = {swr, T, 0, 0, k, 1, NULL, NULL, 0};
    SF_CHECK_OK(run(nf, las, sink, iff, SF_DIT_ROPE_FRAMES, &a, &err), &err);
    SF_CHECK_OK(run(nf, las, sink, iff, SF_DIT_ROPE_FRAMES, &b, &err), &err);
    SF_CHECK_OK(run(nf, las, sink, iff, SF_DIT_ROPE_FRAMES, &r, &err), &err);
    SF_CHECK_MSG(same_frames(base, sw, 0, first), "iff %d: blocks before the switch differ", iff);
    SF_CHECK_MSG(same_frames(base, swr, 0, first), "iff %d: blocks before the switch differ (recache)", iff);
    for (int64_t f = first; f < nf; f += 3) {
        SF_CHECK_MSG(!same_frames(base, sw, f, f + 1), "iff %d: frame %lld after the switch is unchanged", iff,
                     (long long)f);
        SF_CHECK_MSG(!same_frames(sw, swr, f, f + 1), "iff %d: re-cache made no difference at frame %lld", iff,
                     (long long)f);
    }
}

/* A prompt switch with re-cache after initial latents (pipeline.h): the re-cache rebuilds the initial frames' K/V
 * too (the loop keeps them with the generated ones), so it runs and changes what follows; before the switch the
 * runs agree. Video extension (3 frames, global cache) and image-to-video (1 frame, rolling cache with a sink). */
static void initial_switch_case(int iff, long las, long sink) {
    enum { T = 6, NI = 3 };
    sf_err err = {{0}};
    static float base[(NI + T) * FR], sw[(NI + T) * FR], swr[(NI + T) * FR];
    const int ni = iff ? 1 : NI, first = ni + 3; /* the switch: generated block 1 */
    model_load();
    const sf_tensor *o = M.ok ? sf_tfile_get(M.g, "output") : NULL; /* any clean latents: the golden video's */
    if (!o || o->dtype != SF_F32) return;
    const float *init = o->data;
    run_ctx a = {base, NI + T, 0, 0, -1, 0, NULL, init, ni}, b = {sw, NI + T, 0, 0, 1, 0, NULL, init, ni},
            r = {swr, NI + T, 0, 0, 1, 1, NULL, init, ni};
    SF_CHECK_OK(run(T, las, sink, iff, SF_DIT_ROPE_FRAMES, &a, &err), &err);
    SF_CHECK_OK(run(T, las, sink, iff, SF_DIT_ROPE_FRAMES, &b, &err), &err);
    SF_CHECK_OK(run(T, las, sink, iff, SF_DIT_ROPE_FRAMES, &r, &err), &err);
    SF_CHECK_MSG(a.blocks == 3 && r.blocks == 3, "iff %d: %d / %d blocks out (the initial latents and 2)", iff, a.blocks,
                 r.blocks);
    SF_CHECK_MSG(same_frames(base, init, 0, ni) && same_frames(swr, init, 0, ni), "iff %d: the initial latents", iff);
    SF_CHECK_MSG(same_frames(base, sw, 0, first) && same_frames(base, swr, 0, first), "iff %d: before the switch", iff);
    SF_CHECK_MSG(!same_frames(base, sw, first, first + 1), "iff %d: the switch changed nothing", iff);
    SF_CHECK_MSG(!same_frames(sw, swr, first, first + 1), "iff %d: the re-cache changed nothing", iff);
}

static void test_recache_initial(void) {
    initial_switch_case(0, -1, 0);
    initial_switch_case(1, 6, 3); /* 1 + 6 frames through a window of 6: evicting */
}

static void test_switch_at_block(void) {
    switch_case(0, -1, 0);
    switch_case(1, 6, 3); /* rolling with a sink, evicting from block 2 on */
}

/* ---- re-cache vs brute force ---- */

typedef struct hist {
    float x[24 * FR];       /* clean latents by absolute frame */
} hist;

static sf_status keep_block(void *vc, int b, int64_t start, int F, const float *x0, sf_err *err) {
    (void)b, (void)err;
    hist *h = vc;
    memcpy(h->x + start * FR, x0, sizeof(float) * (size_t)(F * FR));
    return SF_OK;
}

static const float *hist_frame(void *vc, int64_t f) {
    hist *h = vc;
    return f >= 0 && f < 24 ? h->x + f * FR : NULL;
}

typedef struct sel_ctx {
    const int64_t *frames;  /* the window's frames, ascending */
    int64_t n;
} sel_ctx;

static int64_t sel_cb(void *vc, int64_t s, int F, int64_t *out, int64_t cap) {
    const sel_ctx *c = vc;
    int64_t n = 0;
    for (int64_t i = 0; i < c->n && n < cap; i++)
        if (c->frames[i] < s + F) out[n++] = c->frames[i];
    return n;
}

static int64_t block_id(int64_t f, int iff) { return iff ? (f == 0 ? 0 : 1 + (f - 1) / 3) : f / 3; }

static void recache_case(int T, long las, long sink, int iff) {
    sf_err err = {{0}};
    model_load();
    if (!M.ok) return;
    static hist h;
    sf_dit_state st, g;
    const int64_t cache = las == -1 ? T : las;
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, 3, 8, 12, cache, las, sink, 2, &err), &err);
    SF_CHECK_OK(sf_dit_set_context(&st, M.emb, M.rows, &err), &err);
    sf_scheduler sc;
    sf_pipeline_cfg pc;
    pipe_cfg(&pc, &sc, T, iff);
    pc.last_refresh = 1; /* the cache is re-cached after the run: the last block's clean K/V must be in it */
    sf_pipeline_hooks hk = {NULL, NULL, keep_block, &h, 0, NULL};
    SF_CHECK_OK(sf_pipeline_run(&st, &sc, &pc, &hk, NULL, &err), &err);
    const int64_t S = st.frame_tokens, D = M.cfg.dim, NL = M.cfg.num_layers, cs = st.cache_tokens * D;
    const int64_t have = st.local_end / S;
    float *before = malloc(sizeof(float) * (size_t)(2 * NL * cs));
    for (int64_t l = 0; l < NL; l++) {
        memcpy(before + (2 * l) * cs, st.kc[l], sizeof(float) * (size_t)cs);
        memcpy(before + (2 * l + 1) * cs, st.vc[l], sizeof(float) * (size_t)cs);
    }
    SF_CHECK_OK(sf_dit_set_context(&st, emb2, M.rows, &err), &err);
    SF_CHECK_OK(sf_dit_recache(&st, 0.0f, 3, iff, hist_frame, &h, &err), &err);
    /* brute force: a global state (slot = frame) restricted to the window's frames, chunk by chunk */
    int64_t win[64];
    for (int64_t i = 0; i < have; i++) win[i] = st.key_frames[i];
    sel_ctx sc2 = {win, have};
    SF_CHECK_OK(sf_dit_state_init(&g, &M.w, 3, 8, 12, T, -1, 0, 2, &err), &err);
    SF_CHECK_OK(sf_dit_set_context(&g, emb2, M.rows, &err), &err);
    g.key_select = sel_cb;
    g.key_select_ctx = &sc2;
    float *flow = malloc(sizeof(float) * 3 * FR), tv[3] = {0, 0, 0};
    for (int64_t i = 0; i < have;) {
        int F = 1;
        while (i + F < have && F < 3 && win[i + F] == win[i] + F && block_id(win[i + F], iff) == block_id(win[i], iff))
            F++;
        SF_CHECK_OK(sf_dit_forward(&g, h.x + win[i] * FR, F, tv, win[i], flow, &err), &err);
        i += F;
    }
    int exact = 1, changed = 1, untouched = 1;
    for (int64_t l = 0; l < NL; l++)
        for (int kv = 0; kv < 2; kv++) {
            const float *C = kv ? st.vc[l] : st.kc[l], *G = kv ? g.vc[l] : g.kc[l], *B = before + (2 * l + kv) * cs;
            for (int64_t i = 0; i < have; i++) {
                exact &= !memcmp(C + i * S * D, G + win[i] * S * D, sizeof(float) * (size_t)(S * D));
                /* layer 0's K/V come before any cross-attention: the prompt cannot change them — up to the
                 * rounding of a GEMM over another number of rows (the re-cache may group the window's frames
                 * otherwise than the blocks did; the fast mode's oneDNN products are not row-count invariant
                 * on every CPU, e.g. AVX2): within 1e-5 of the slot's scale, the fast mode's GEMM bound */
                if (l > 0) changed &= memcmp(C + i * S * D, B + i * S * D, sizeof(float) * (size_t)(S * D)) != 0;
                else {
                    double md = 0, mx = 0;
                    for (int64_t j = 0; j < S * D; j++) {
                        const double d = fabs((double)C[i * S * D + j] - (double)B[i * S * D + j]);
                        md = d > md ? d : md;
                        mx = fabs((double)B[i * S * D + j]) > mx ? fabs((double)B[i * S * D + j]) : mx;
                    }
                    changed &= md <= (sf_cpu_mode_now() == SF_CPU_EXACT ? 0.0 : 1e-5) * mx; /* exact: the same bits */
                }
            }
            untouched &= !memcmp(C + have * S * D, B + have * S * D, sizeof(float) * (size_t)(cs - have * S * D));
        }
    SF_CHECK_MSG(exact, "T %d las %ld sink %ld: re-cached K/V differ from the brute-force recompute", T, las, sink);
    SF_CHECK_MSG(changed, "T %d las %ld sink %ld: some window slot kept its old K/V", T, las, sink);
    SF_CHECK_MSG(untouched, "T %d las %ld sink %ld: slots past the window were written", T, las, sink);
    SF_CHECK(st.local_end == have * S);
    free(flow);
    free(before);
    sf_dit_state_free(&g);
    sf_dit_state_free(&st);
}

static void test_recache_rolling(void) {
    recache_case(12, 8, 2, 0); /* evicted: window = sinks {0,1} + frames 6..11 (block 2 split) */
    recache_case(10, 7, 1, 1); /* independent first frame: sink {0}, then 4..9 */
}

static void test_recache_global(void) {
    recache_case(6, -1, 0, 0); /* the whole video is the window */
}

/* ---- endless ---- */

static void test_endless_stop(void) {
    sf_err err = {{0}};
    static float out[12 * FR], fin[12 * FR];
    run_ctx c = {out, 12, 0, 8, -1, 0, NULL, NULL, 0};
    sf_status s = run(0, 6, 3, 0, SF_DIT_ROPE_FRAMES_MAX, &c, &err);
    SF_CHECK_MSG(s == SF_E_STOPPED, "endless run ended with %s: %s", sf_status_str(s), err.msg);
    SF_CHECK_MSG(c.blocks == 8, "%d blocks before the stop, want 8", c.blocks);
    /* a global run would not be endless */
    run_ctx c2 = {out, 12, 0, 2, -1, 0, NULL, NULL, 0};
    s = run(0, -1, 0, 0, SF_DIT_ROPE_FRAMES, &c2, &err);
    SF_CHECK(s == SF_E_ARG && c2.blocks == 0);
    /* the first block is drawn like a finite run's first block only when that run has one block */
    run_ctx f = {fin, 12, 0, 0, -1, 0, NULL, NULL, 0};
    SF_CHECK_OK(run(3, 6, 3, 0, SF_DIT_ROPE_FRAMES, &f, &err), &err);
    SF_CHECK_MSG(same_frames(out, fin, 0, 3), "endless block 0 differs from a one-block run");
}

static void test_endless_rope_end(void) {
    sf_err err = {{0}};
    static float out[12 * FR];
    run_ctx c = {out, 12, 0, 0, -1, 0, NULL, NULL, 0};
    sf_status s = run(0, 6, 3, 0, 12, &c, &err); /* a 12-row table: blocks [0,3) .. [9,12), then the end */
    SF_CHECK_MSG(s == SF_OK, "%s: %s", sf_status_str(s), err.msg);
    SF_CHECK_MSG(c.blocks == 4, "%d blocks with a 12-frame RoPE table, want 4", c.blocks);
    sf_dit_state st;
    model_load();
    SF_CHECK(sf_dit_state_init_rope(&st, &M.w, 3, 8, 12, 6, 6, 3, 1, -1, 2, &err) == SF_E_ARG); /* < a block */
}

static void test_rope_rows(void) {
    sf_err err = {{0}};
    sf_rope_table a, b;
    SF_CHECK_OK(sf_rope_table_init(&a, 128, SF_DIT_ROPE_FRAMES, &err), &err);
    SF_CHECK_OK(sf_rope_table_init(&b, 128, SF_DIT_ROPE_FRAMES_MAX, &err), &err);
    SF_CHECK(!memcmp(a.cs, b.cs, sizeof(double) * (size_t)SF_DIT_ROPE_FRAMES * 64 * 2));
    /* row p of the time axis is cos/sin(p·θ_j): the last row continues the formula */
    double th = 1.0 / pow(10000.0, 2.0 / 44.0), p = SF_DIT_ROPE_FRAMES_MAX - 1;
    SF_CHECK(b.cs[((size_t)p * 64 + 1) * 2] == cos(p * th) && b.cs[((size_t)p * 64 + 1) * 2 + 1] == sin(p * th));
    sf_rope_table_free(&a);
    sf_rope_table_free(&b);
}

/* ---- the stream ---- */

static void send_emb(sf_wire *w, const float *e, int64_t rows, int64_t dim, int at, const char *prompt) {
    sf_err err = {{0}};
    sf_wire_msg m;
    sf_wire_msg_init(&m, SF_WIRE_TENSOR, "prompt_embeds");
    if (at >= 0) SF_CHECK_OK(sf_wire_meta_set_int(&m, "at_block", at, &err), &err);
    SF_CHECK_OK(sf_wire_meta_set_str(&m, "prompt", prompt, &err), &err);
    int64_t sh[2] = {rows, dim};
    sf_tensor t = sf_tensor_view((void *)e, SF_F32, 2, sh);
    SF_CHECK_OK(sf_wire_send_tensor(w, "prompt_embeds", &t, &m, &err), &err);
}

static void test_feed(void) {
    sf_err err = {{0}};
    model_load();
    if (!M.ok) return;
    char path[512];
    snprintf(path, sizeof path, "/tmp/sf-test-live-%d.wire", (int)getpid());
    sf_wire *w = NULL;
    SF_CHECK_OK(sf_wire_open_writer(path, &w, &err), &err);
    const int64_t D = M.cfg.text_dim;
    send_emb(w, M.emb, M.rows, D, -1, "first");
    send_emb(w, M.emb, M.rows / 2, D + 1, -1, "bad shape"); /* skipped (fewer rows: stays inside M.emb) */
    send_emb(w, emb2, M.rows, D, 3, "second");
    send_emb(w, M.emb, 2, D, 5, "third");
    SF_CHECK_OK(sf_wire_send_end(w, &err), &err);
    SF_CHECK_OK(sf_wire_close(&w, &err), &err);
    sf_prompt_feed *f = NULL;
    float *emb = NULL;
    int64_t rows = 0;
    char prompt[64] = "";
    SF_CHECK_OK(sf_prompt_feed_open(path, 0, (int)D, M.cfg.text_len, 1, &f, &emb, &rows, prompt, sizeof prompt, &err),
                &err);
    SF_CHECK(rows == M.rows && !strcmp(prompt, "first") && emb && !memcmp(emb, M.emb, sizeof(float) * (size_t)(rows * D)));
    const float *e;
    const char *pr;
    int64_t r;
    int rc, got = 0;
    SF_CHECK(!sf_prompt_feed_take(f, 2, &e, &r, &pr, &rc)); /* "second" is for block 3, whenever it is read */
    /* the reader thread drains the file in its own time: poll, up to 10 s (a loaded machine) */
    for (int i = 0; i < 1000 && !(got = sf_prompt_feed_take(f, 3, &e, &r, &pr, &rc)); i++) usleep(10000);
    SF_CHECK(got && !strcmp(pr, "second") && r == M.rows && rc == -1 && !memcmp(e, emb2, sizeof(float) * (size_t)(r * D)));
    SF_CHECK(!sf_prompt_feed_take(f, 4, &e, &r, &pr, &rc)); /* "third" is for block 5 */
    for (int i = 0; i < 1000 && !(got = sf_prompt_feed_take(f, 9, &e, &r, &pr, &rc)); i++) usleep(10000);
    SF_CHECK(got && !strcmp(pr, "third") && r == 2);
    sf_prompt_feed_close(&f);
    SF_CHECK(f == NULL);
    free(emb);
    unlink(path);
    /* a stream without embeddings is one clear error */
    SF_CHECK_OK(sf_wire_open_writer(path, &w, &err), &err);
    SF_CHECK_OK(sf_wire_send_end(w, &err), &err);
    SF_CHECK_OK(sf_wire_close(&w, &err), &err);
    SF_CHECK(sf_prompt_feed_open(path, 0, (int)D, M.cfg.text_len, 0, &f, &emb, &rows, prompt, sizeof prompt, &err) ==
                 SF_E_FORMAT &&
             strstr(err.msg, "without prompt_embeds"));
    unlink(path);
}

static void test_pace(void) {
    /* pixel frames: the video's first latent frame is one, every other four */
    SF_CHECK(sf_pace_pixel_frames(0, 3) == 9 && sf_pace_pixel_frames(3, 3) == 12 && sf_pace_pixel_frames(0, 1) == 1 &&
             sf_pace_pixel_frames(1, 3) == 12 && sf_pace_pixel_frames(0, 0) == 0);
    sf_pace p = {16, 0.5, 0, 0, 0};
    SF_CHECK(sf_pace_wait(&p, 10.0) == 0); /* nothing sent: start */
    sf_pace_started(&p, 10.0);
    sf_pace_sent(&p, 10.2, 0, 3); /* 9 frames: play_end 10.2 + 9/16 */
    SF_CHECK_MSG(fabs((p.play_end) - (10.7625)) < 1e-9, "%s = %.9f", "p.play_end", p.play_end);
    SF_CHECK_MSG(fabs((p.gen) - (0.2)) < 1e-9, "%s = %.9f", "p.gen", p.gen);
    SF_CHECK(sf_pace_wait(&p, 10.2) == 0); /* due at 10.7625 - 0.2 - 0.5: already */
    sf_pace_started(&p, 10.2);
    sf_pace_sent(&p, 10.3, 3, 3); /* queued behind the first: play_end + 12/16 */
    SF_CHECK_MSG(fabs((p.play_end) - (11.5125)) < 1e-9, "%s = %.9f", "p.play_end", p.play_end);
    SF_CHECK_MSG(fabs((p.gen) - (0.1)) < 1e-9, "%s = %.9f", "p.gen", p.gen);
    SF_CHECK_MSG(fabs((sf_pace_wait(&p, 10.3)) - (11.5125 - 0.1 - 0.5 - 10.3)) < 1e-9, "%s = %.9f", "sf_pace_wait(&p, 10.3)", sf_pace_wait(&p, 10.3));
    SF_CHECK(sf_pace_wait(&p, 11.0) == 0);
    /* a viewer that ran dry (a slow block) starts the next on arrival */
    sf_pace_started(&p, 11.0);
    sf_pace_sent(&p, 13.0, 6, 3);
    SF_CHECK_MSG(fabs((p.play_end) - (13.75)) < 1e-9, "%s = %.9f", "p.play_end", p.play_end);
    SF_CHECK_MSG(fabs((p.gen) - (2.0)) < 1e-9, "%s = %.9f", "p.gen", p.gen);
    SF_CHECK(sf_pace_wait(&p, 13.0) == 0); /* a slow generator never waits */
    /* no pacing: nothing moves, never a wait */
    sf_pace off = {0, 0.5, 0, 0, 0};
    sf_pace_started(&off, 1.0);
    sf_pace_sent(&off, 1.1, 0, 3);
    SF_CHECK(off.play_end == 0 && sf_pace_wait(&off, 1.1) == 0);
    /* the block-start hook waits until the block is due (no feed: pacing only) */
    sf_denoise_live lv = {NULL, NULL, 0, "", 0, {16, 0.5, 0, 0, 0.2}};
    lv.pace.play_end = sf_now() + 1.0; /* due in 1.0 - 0.2 - 0.5 = 0.3 s */
    int rc = 0;
    sf_err err = {{0}};
    const double t0 = sf_now();
    SF_CHECK_OK(sf_denoise_live_block_start(&lv, 4, 12, &rc, &err), &err);
    const double waited = sf_now() - t0;
    SF_CHECK_MSG(waited >= 0.28 && waited < 1.0, "waited %.3f s, not ~0.3", waited);
    SF_CHECK(lv.pace.t_start >= t0 + 0.28 && rc == 0 && lv.switches == 0);
}

static const sf_test tests[] = {
    {"switch_at_block", test_switch_at_block},
    {"recache_rolling", test_recache_rolling},
    {"recache_global", test_recache_global},
    {"recache_initial", test_recache_initial},
    {"endless_stop", test_endless_stop},
    {"endless_rope_end", test_endless_rope_end},
    {"rope_rows", test_rope_rows},
    {"feed", test_feed},
    {"pace", test_pace},
};
SF_TEST_MAIN(tests)
