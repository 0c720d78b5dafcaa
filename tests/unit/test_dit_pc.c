/* test_dit_pc.c — sf-denoise --pc-budget (Participative Compression as Deep Forcing's released code runs it,
 * stages/denoise/pc.c) on the tiny golden DiT's rolling cache. Every layer of every compression is checked against
 * a brute force written here from the release's algorithm, not from pc.c:
 *  - the queries are the ones the attention tap hands out (every layer, every forward), kept here in a window of
 *    the last R rows (not the implementation's ring);
 *  - a block's first forward compresses when the cache, with the block, would overflow: scores in double (the
 *    window's sum · each candidate key / (√d · heads)), the C best by a ranking written here (ties: the older),
 *    tokens chosen max_reuse times standing back while others can, fills from the best of them otherwise, and the
 *    counts tracked here;
 *  - the cache after the forward holds the sink, the chosen tokens, then the old recent slots: keys (the tap's
 *    window) and values bit for bit; the window ends at sink + C + R; with a sink, its shift is the release's
 *    (block start − the compressed cache's frames);
 *  - the blocks before the first compression equal the plain rolling run bit for bit; later ones differ.
 * Tiny golden model, blocks of 3 latent frames of 8×12, 2 steps + the refresh pass, seeded noise. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "dit_golden.h"
#include "config.h"
#include "tfile.h"
#include "stages/denoise/pipeline.h"

#include <math.h>
#include <stdio.h>

enum { NSTEP = 2, FPB = 3, TMAX = 30, FR = 16 * 8 * 12, MAXL = 64 };

static dit_golden_base M;

typedef struct brute {
    const sf_dit_state *st;
    int64_t S, D, R, sink, budget, cache, max_reuse;
    float *win[MAXL];           /* per layer: the last R query rows, oldest first */
    int64_t wlen;               /* rows in the window (every layer alike), before the current forward */
    float *kk, *vv;             /* the caches (NL, cache, D) before a block's first forward */
    int32_t *cnt;               /* (NL, cache) times each slot's token was chosen */
    int32_t *frm;               /* (NL, cache) the frame each slot's token came from */
    int64_t lend;               /* the brute's own cache length */
    int64_t start;              /* this forward's block start */
    int step, compress, n_compress, fills, bad, views;
    int64_t topc, from, le, old_lend;
    char first_bad[200];
    float *preds;               /* (blocks, NSTEP + 1, FPB, FR) every x0 prediction, or NULL */
} brute;

static void note_bad(brute *b, const char *fmt, int l, int64_t i, double got, double want) {
    if (!b->bad++) snprintf(b->first_bad, sizeof b->first_bad, fmt, l, (long long)i, got, want);
}

static void on_fwd(void *vc, int blk, int s, int64_t start, int F) {
    (void)blk;
    brute *b = vc;
    const sf_dit_state *st = b->st;
    const int64_t NL = st->w->cfg.num_layers, L = (int64_t)F * b->S;
    b->step = s, b->start = start, b->compress = 0;
    if (s != 0) return;
    b->old_lend = b->lend;
    if (b->lend + L <= b->cache) { /* the block appends */
        b->le = b->lend + L;
        b->lend = b->le;
        return;
    }
    /* the release's arithmetic for this compression */
    const int64_t T = b->lend + L;
    int64_t reff = b->wlen + L < b->R ? b->wlen + L : b->R;
    if (reff > T) reff = T;
    int64_t cap = b->budget < b->cache ? b->budget : b->cache;
    if (cap < b->sink + reff) cap = b->sink + reff;
    if (cap > T) cap = T;
    b->from = T - reff;
    b->topc = cap - b->sink - reff;
    if (b->topc > b->from - b->sink) b->topc = b->from - b->sink;
    b->le = b->sink + b->topc + reff;
    b->lend = b->le;
    b->compress = 1, b->n_compress++;
    for (int64_t l = 0; l < NL; l++) {
        memcpy(b->kk + l * b->cache * b->D, st->kc[l], sizeof(float) * (size_t)(b->cache * b->D));
        memcpy(b->vv + l * b->cache * b->D, st->vc[l], sizeof(float) * (size_t)(b->cache * b->D));
    }
}

static int wants(void *ctx, int layer) {
    (void)ctx, (void)layer;
    return 1;
}

/* The C best of the candidates by score (ties: the lower index), those under the reuse limit first. */
static void rank_select(const double *sc, const int32_t *cnt, int64_t n, int64_t keep, int max_reuse, int32_t *out,
                        int *fills) {
    unsigned char *taken = calloc((size_t)n + 1, 1);
    int64_t got = 0;
    for (int pass = 0; pass < 2 && got < keep; pass++)
        while (got < keep) {
            int64_t best = -1;
            for (int64_t j = 0; j < n; j++) {
                const int held = max_reuse > 0 && cnt[j] >= max_reuse;
                if (taken[j] || held != pass) continue;
                if (best < 0 || sc[j] > sc[best]) best = j;
            }
            if (best < 0) break;
            taken[best] = 1, got++, *fills += pass;
        }
    int64_t k = 0;
    for (int64_t j = 0; j < n; j++)
        if (taken[j]) out[k++] = (int32_t)j;
    free(taken);
}

static sf_status tap_done(void *vc, const sf_dit_attn_view *v, sf_err *err) {
    (void)err;
    brute *b = vc;
    if (v->cross) return SF_OK;
    const int l = v->layer;
    const int64_t D = b->D, L = v->Lq, cache = b->cache;
    float *win = b->win[l];
    int32_t *cnt = b->cnt + l * cache;
    b->views++;
    if (v->Lk != b->le) note_bad(b, "layer %d: window of %lld keys, want %.0f (%.0f)", l, v->Lk, (double)b->le, 0);
    if (b->compress) {
        const int64_t reff = b->le - b->sink - b->topc, n = b->from - b->sink, keep = b->topc;
        double *qs = calloc((size_t)D, sizeof(double)), *sc = malloc(sizeof(double) * (size_t)n);
        int32_t *sel = malloc(sizeof(int32_t) * (size_t)(keep + 1));
        for (int64_t r = b->wlen - (reff - L); r < b->wlen; r++) /* the window's newest rows, then this forward's */
            for (int64_t e = 0; e < D; e++) qs[e] += win[r * D + e];
        for (int64_t r = 0; r < L; r++)
            for (int64_t e = 0; e < D; e++) qs[e] += v->q[r * v->ld + e];
        const float *K0 = b->kk + l * cache * D, *V0 = b->vv + l * cache * D;
        const double scale = 1.0 / (sqrt((double)v->head_dim) * v->heads);
        for (int64_t j = 0; j < n; j++) {
            double a = 0;
            for (int64_t e = 0; e < D; e++) a += qs[e] * K0[(b->sink + j) * D + e];
            sc[j] = a * scale;
        }
        for (int64_t j = 0; j < n; j++) /* the layer's scores, still in the state's scratch */
            if (!(fabs(b->st->pc_score[j] - sc[j]) <= 1e-12 * fabs(sc[j]) + 1e-300))
                note_bad(b, "layer %d candidate %lld: score %.17g, want %.17g", l, j, b->st->pc_score[j], sc[j]);
        rank_select(sc, cnt + b->sink, n, keep, (int)b->max_reuse, sel, &b->fills);
        /* expected slots after the sink: the chosen, then the old recent [from, old_lend) */
        int32_t *c2 = malloc(sizeof(int32_t) * (size_t)cache), *f2 = malloc(sizeof(int32_t) * (size_t)cache);
        int32_t *frm = b->frm + l * cache;
        memcpy(c2, cnt, sizeof(int32_t) * (size_t)cache);
        memcpy(f2, frm, sizeof(int32_t) * (size_t)cache);
        for (int64_t i = 0; i < b->le - L - b->sink; i++) {
            const int64_t src = i < keep ? b->sink + sel[i] : b->from + (i - keep), dst = b->sink + i;
            c2[dst] = cnt[src] + (i < keep), f2[dst] = frm[src];
            for (int64_t e = 0; e < D; e++) {
                if (v->k[dst * v->ld + e] != K0[src * D + e])
                    note_bad(b, "layer %d slot %lld: key %.9g, want %.9g", l, dst, v->k[dst * v->ld + e], K0[src * D + e]);
                if (b->st->vc[l][dst * D + e] != V0[src * D + e])
                    note_bad(b, "layer %d slot %lld: value %.9g, want %.9g", l, dst, b->st->vc[l][dst * D + e],
                             V0[src * D + e]);
            }
        }
        for (int64_t i = 0; i < b->sink * D; i++) /* the sink's values never move (its keys turn in time) */
            if (b->st->vc[l][i] != V0[i]) note_bad(b, "layer %d sink value %lld: %.9g, want %.9g", l, i, b->st->vc[l][i], V0[i]);
        memcpy(cnt, c2, sizeof(int32_t) * (size_t)cache);
        memcpy(frm, f2, sizeof(int32_t) * (size_t)cache);
        free(qs), free(sc), free(sel), free(c2), free(f2);
    }
    if (b->step == 0)
        for (int64_t i = b->le - L; i < b->le; i++) /* the block's own slots */
            cnt[i] = 0, b->frm[l * cache + i] = (int32_t)(b->start + (i - (b->le - L)) / b->S);
    /* the view says where the kept tokens came from: the brute force's own record of them */
    const int64_t kt = b->n_compress ? b->topc : 0; /* the last compression's C, once any ran */
    if (v->kept_tokens != kt || (kt && (!v->kept_frames || v->kept_heads != 1)))
        note_bad(b, "layer %d: %lld kept tokens' frames in the view, want %.0f (%.0f)", l, v->kept_tokens, (double)kt, 0);
    for (int64_t i = 0; i < kt && v->kept_frames && v->kept_tokens == kt; i++)
        if (v->kept_frames[i] != b->frm[l * cache + b->sink + i])
            note_bad(b, "layer %d kept token %lld: from frame %.0f, want %.0f", l, i, v->kept_frames[i],
                     b->frm[l * cache + b->sink + i]);
    /* this forward's queries join the window (the last R rows kept) */
    const int64_t n = b->wlen + L, drop = n > b->R ? n - b->R : 0;
    memmove(win, win + drop * D, sizeof(float) * (size_t)((b->wlen - drop) * D));
    for (int64_t r = 0; r < L; r++) memcpy(win + (b->wlen - drop + r) * D, v->q + r * v->ld, sizeof(float) * (size_t)D);
    if (l + 1 == b->st->w->cfg.num_layers) b->wlen = n - drop;
    return SF_OK;
}

static sf_status on_pred(void *vc, int blk, int s, int F, const float *x0, sf_err *err) {
    (void)err, (void)F;
    brute *b = vc;
    if (b->preds) memcpy(b->preds + ((int64_t)blk * (NSTEP + 1) + s) * FPB * FR, x0, sizeof(float) * (size_t)(FPB * FR));
    if (s == 0 && b->compress && b->sink > 0 && b->st->sink_shift != b->start - b->le / b->S)
        note_bad(b, "layer %d block start %lld: sink shift %.0f, want %.0f", -1, b->start, (double)b->st->sink_shift,
                 (double)(b->start - b->le / b->S));
    return SF_OK;
}

/* After the run (recache_after): a prompt switch's re-cache rewrites every whole frame's slots and leaves the kept
 * tokens as they are, keys, values and where they came from. */
static int recache_after;
static const float *clean_frame(void *ctx, int64_t f) { /* the block's last denoising step's x0: its output */
    return (const float *)ctx + ((f / FPB) * (NSTEP + 1) + NSTEP - 1) * FPB * FR + (f % FPB) * FR;
}
static void recache_check(sf_dit_state *st, const float *preds) {
    const int64_t S = st->frame_tokens, D = st->w->cfg.dim, n = st->local_end * D, C = st->cache_tokens;
    float *k0 = malloc(sizeof(float) * (size_t)n), *v0 = malloc(sizeof(float) * (size_t)n);
    int32_t *src0 = malloc(sizeof(int32_t) * (size_t)C);
    float *emb2 = malloc(sizeof(float) * (size_t)M.n);
    sf_err err = {{0}};
    if (!k0 || !v0 || !src0 || !emb2) goto out;
    memcpy(k0, st->kc[1], sizeof(float) * (size_t)n), memcpy(v0, st->vc[1], sizeof(float) * (size_t)n);
    memcpy(src0, st->pc_src + C, sizeof(int32_t) * (size_t)C);
    for (int64_t i = 0; i < M.n; i++) emb2[i] = -0.5f * M.emb[M.n - 1 - i];
    st->tap.wants = NULL, st->tap.done = NULL;
    const int64_t kept = st->pc_kept;
    SF_CHECK(kept > 0);
    SF_CHECK_OK(sf_dit_set_context(st, emb2, M.rows, &err), &err);
    SF_CHECK_OK(sf_dit_recache(st, 0.0f, FPB, 0, clean_frame, (void *)preds, &err), &err);
    for (int64_t f = 0; f < st->local_end / S; f++) {
        const int same = !memcmp(k0 + f * S * D, st->kc[1] + f * S * D, sizeof(float) * (size_t)(S * D)) &&
                         !memcmp(v0 + f * S * D, st->vc[1] + f * S * D, sizeof(float) * (size_t)(S * D));
        SF_CHECK_MSG(same == (st->key_frames[f] < 0), "re-cache: slot %lld (frame %lld) %s", (long long)f,
                     (long long)st->key_frames[f], same ? "was not rewritten" : "was rewritten");
    }
    SF_CHECK(st->pc_kept == kept && !memcmp(src0, st->pc_src + C, sizeof(int32_t) * (size_t)kept));
out:
    free(k0), free(v0), free(src0), free(emb2);
}

/* One run of nf frames: window las, sink, --pc-budget budget (0: off) / recent / max_reuse frames; the brute force
 * checks every compression when budget > 0. Returns the run's compressions (−1 when it could not run). */
static int run(int nf, long las, long sink, int64_t budget, int64_t recent, int max_reuse, float *preds, brute *out) {
    sf_err err = {{0}};
    if (!dit_golden_base_load(&M)) return -1;
    sf_dit_state st;
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, FPB, 8, 12, las, las, sink, 2, &err), &err);
    if (err.msg[0]) return -1;
    SF_CHECK_OK(sf_dit_set_context(&st, M.emb, M.rows, &err), &err);
    SF_CHECK_OK(sf_dit_set_pc(&st, budget, recent, max_reuse, &err), &err);
    const int64_t NL = st.w->cfg.num_layers, S = st.frame_tokens, D = st.w->cfg.dim;
    brute b = {.st = &st, .S = S, .D = D, .R = recent * S, .sink = sink * S, .budget = budget * S, .cache = las * S, .max_reuse = max_reuse};
    b.preds = preds;
    if (NL > MAXL) return -1;
    if (budget > 0) {
        for (int64_t l = 0; l < NL; l++) b.win[l] = calloc((size_t)(b.R * D), sizeof(float));
        b.kk = malloc(sizeof(float) * (size_t)(NL * b.cache * D));
        b.vv = malloc(sizeof(float) * (size_t)(NL * b.cache * D));
        b.cnt = calloc((size_t)(NL * b.cache), sizeof(int32_t));
        b.frm = calloc((size_t)(NL * b.cache), sizeof(int32_t));
        st.tap.wants = wants, st.tap.done = tap_done, st.tap.ctx = &b;
    }
    sf_scheduler sc;
    SF_CHECK_OK(sf_scheduler_init(&sc, 5.0, &err), &err);
    sf_pipeline_cfg pc = {{0}, NSTEP, FPB, 0, 0.0f, nf, 8, 12, 16, 7, NULL, 0, 0, {0, 0, 0, 0}, 0, 0, NULL, 0};
    double raw[NSTEP] = {1000, 500};
    SF_CHECK_OK(sf_scheduler_steps(&sc, raw, NSTEP, 1, pc.steps, &err), &err);
    sf_pipeline_hooks hk = {budget > 0 ? on_fwd : NULL, on_pred, NULL, &b, 0, NULL};
    SF_CHECK_OK(sf_pipeline_run(&st, &sc, &pc, &hk, NULL, &err), &err);
    if (budget > 0) {
        SF_CHECK_MSG(b.bad == 0, "%d differences from the brute force; first: %s", b.bad, b.first_bad);
        SF_CHECK_MSG(st.pc_runs == b.n_compress, "%lld compressions, the brute force %d", (long long)st.pc_runs,
                     b.n_compress);
        SF_CHECK_MSG(st.pc_fills == (int64_t)b.fills * 1, "%lld fills, the brute force %d", (long long)st.pc_fills, b.fills);
        SF_CHECK(b.views > 0 && st.local_end == b.lend);
        if (recache_after && preds) recache_check(&st, preds);
    }
    const int n = (int)st.pc_runs;
    if (out) *out = b;
    for (int64_t l = 0; l < NL; l++) free(b.win[l]);
    free(b.kk), free(b.vv), free(b.cnt), free(b.frm);
    sf_dit_state_free(&st);
    return n;
}

enum { BLK = (NSTEP + 1) * FPB * FR };

/* pc against the brute force, and against the plain rolling run: equal before the first compression, not after. */
static void pc_case(int nf, long las, long sink, int64_t budget, int64_t recent, int max_reuse, int first_block,
                    int want_fills) {
    const int nb = nf / FPB;
    float *a = calloc((size_t)nb * BLK, sizeof(float)), *p = calloc((size_t)nb * BLK, sizeof(float));
    brute b;
    const int n = run(nf, las, sink, budget, recent, max_reuse, a, &b);
    if (n < 0 || run(nf, las, sink, 0, 0, 0, p, NULL) < 0) goto done;
    SF_CHECK_MSG(n == nb - first_block, "%d compressions, want one a block from block %d of %d", n, first_block, nb);
    SF_CHECK_MSG(want_fills ? b.fills > 0 : b.fills == 0, "%d fills (want %s)", b.fills, want_fills ? "some" : "none");
    for (int k = 0; k < nb; k++) {
        const int same = memcmp(a + (size_t)k * BLK, p + (size_t)k * BLK, sizeof(float) * BLK) == 0;
        SF_CHECK_MSG(same == (k < first_block), "block %d %s the plain rolling run", k, same ? "equals" : "differs from");
    }
done:
    free(a), free(p);
}

/* Window 8, no sink, recent 3, budget 6: block 2 (frames 6-8) overflows 6 + 3 > 8 and every block after it: of the
 * 9 frames the newest 3 stay, 3 frames' worth of the 6 before them. */
static void test_pc_nosink(void) { pc_case(24, 8, 0, 6, 3, 7, 2, 0); }
/* Window 10, a sink of 2 that moves, recent 4, budget 8 (2 frames kept): from block 3 on. */
static void test_pc_sink(void) { pc_case(27, 10, 2, 8, 4, 7, 3, 0); }
/* Window 10, sink 1, recent 3, budget 9: 5 frames' worth kept, reuse limit 1 — a compression finds 3 fresh frames
 * beside the 5 chosen once already, so 2 frames' worth come from those (the fills). */
static void test_pc_fills(void) { pc_case(27, 10, 1, 9, 3, 1, 3, 1); }

/* A prompt switch's re-cache after compressions (window 10, sink 2, budget 8, recent 4): the whole frames rewritten,
 * the kept tokens not. */
static void test_pc_recache(void) {
    float *p = calloc((size_t)(27 / FPB) * BLK, sizeof(float));
    recache_after = 1;
    if (p) SF_CHECK(run(27, 10, 2, 8, 4, 7, p, NULL) > 0);
    recache_after = 0;
    free(p);
}

/* What the setting refuses, each with its reason. */
static void test_pc_refused(void) {
    sf_err err = {{0}};
    if (!dit_golden_base_load(&M)) return;
    sf_dit_state st;
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, FPB, 8, 12, 10, 10, 2, 1, &err), &err);
    if (err.msg[0]) return;
    SF_CHECK(sf_dit_set_pc(&st, 8, 2, 7, &err) == SF_E_ARG && strstr(err.msg, "block")); /* recent < a block */
    SF_CHECK(sf_dit_set_pc(&st, 5, 4, 7, &err) == SF_E_ARG && strstr(err.msg, "sink"));  /* 2 + 4 > 5 */
    SF_CHECK(sf_dit_set_pc(&st, 11, 4, 7, &err) == SF_E_ARG && strstr(err.msg, "cache holds"));
    SF_CHECK_OK(sf_dit_set_kv_compress(&st, 2, &err), &err);
    SF_CHECK(sf_dit_set_pc(&st, 8, 4, 7, &err) == SF_E_ARG && strstr(err.msg, "--kv-compress"));
    SF_CHECK_OK(sf_dit_set_kv_compress(&st, 0, &err), &err);
    SF_CHECK_OK(sf_dit_set_sink_rope(&st, 1, 0, &err), &err);
    SF_CHECK(sf_dit_set_pc(&st, 8, 4, 7, &err) == SF_E_ARG && strstr(err.msg, "--sink-rope"));
    SF_CHECK_OK(sf_dit_set_sink_rope(&st, 0, 0, &err), &err);
    SF_CHECK_OK(sf_dit_set_pc(&st, 8, 4, 7, &err), &err);
    SF_CHECK(st.sink_rope == 2 && st.pc_budget == 8 * st.frame_tokens);
    SF_CHECK_OK(sf_dit_set_pc(&st, 0, 0, 0, &err), &err); /* off again: the sink as cached */
    SF_CHECK(st.sink_rope == 0 && st.pc_budget == 0);
    sf_dit_state_free(&st);
    SF_CHECK_OK(sf_dit_state_init(&st, &M.w, FPB, 8, 12, 12, -1, 0, 1, &err), &err); /* global attention */
    SF_CHECK(sf_dit_set_pc(&st, 8, 4, 7, &err) == SF_E_ARG && strstr(err.msg, "rolling"));
    sf_dit_state_free(&st);
}

static const sf_test tests[] = {
    {"pc_nosink", test_pc_nosink},
    {"pc_sink", test_pc_sink},
    {"pc_fills", test_pc_fills},
    {"pc_recache", test_pc_recache},
    {"pc_refused", test_pc_refused},
};
SF_TEST_MAIN(tests)
