/* sink_rope.c — Deep Sink's temporal re-alignment of the sink keys (sf-denoise --sink-rope realign; contract:
 * sf_dit_set_sink_rope in dit.h), both backends.
 *
 * A rolling cache keeps the sink frames [0, sink) and the most recent frames; once eviction has dropped the
 * frames between them, a forward's window reads frames 0..sink−1, then a jump to its oldest recent frame a.
 * Realigned, the sink's keys are moved in time to just before a (less --sink-rope-gap frames). Keys are cached
 * after RoPE, and rotations compose (R(Δ)·R(p)·k = R(p + Δ)·k), so moving a key is one more rotation of its
 * time pairs (kernels/rope.h sf_rope_time_shift_cpu; the GPU's sf_rope_time_shift_cuda) — Deep Forcing's
 * `_rope_time_delta_mul_`. Unlike an in-place rotation by the change of shift, each shift here is taken from a
 * copy of the sink keys as cached (sink_orig), so a run of thousands of blocks does not compound roundings in
 * the bf16 cache. The shift changes at most once per block (every forward of a block has the same window), and
 * the rotation runs before the forward, outside its CUDA graph. Tested by tests/unit/test_dit_longvideo.c
 * (sink_rope_*: the moved keys are the keys RoPE gives at the new frames, also after a re-cache; a run before the
 * first eviction is the plain run bit for bit; no compounding) and test_dit_cuda_shapes.c (sink_rope_*: the GPU
 * path against the CPU, on the emulation in make test). */
#include "cuda_ops.h"
#include "dit.h"
#include "dit_cuda_impl.h"

#include <stdlib.h>
#include <string.h>

/* The shift a forward's window gives the sink (sf_dit_sink_realign's contract in dit.h). */
static int64_t sink_shift(const sf_dit_state *st, int64_t lo, int64_t ls, const int64_t *kfr, int64_t n_frames) {
    const int64_t sf = st->frame_tokens > 0 ? st->sink_tokens / st->frame_tokens : 0;
    if (!st->sink_rope || sf <= 0 || lo != 0 || ls < st->sink_tokens || n_frames <= sf) return 0;
    if (st->sink_rope == 2) return st->pc_sink_want; /* --pc-budget: the place its last compression gave the sink */
    int64_t a = sf; /* the oldest recent frame: past --kv-compress's slots of mixed frames (−1) */
    while (a < n_frames && kfr[a] < 0) a++;
    if (a == n_frames) return 0;
    /* less the frame after the sink, less the gap asked for */
    const int64_t want = kfr[a] - (kfr[sf - 1] + 1) - st->sink_rope_gap;
    return want > 0 ? want : 0;
}

/* Every layer's sink slots ← its cached sink keys moved by shift (first, with snap, the copy of them as cached). */
static sf_status shift_cpu(sf_dit_state *st, int64_t shift, int snap) {
    const sf_dit_config *c = &st->w->cfg;
    const int64_t D = c->dim, T = st->sink_tokens;
    for (int l = 0; l < c->num_layers; l++) {
        float *orig = st->sink_orig + (size_t)l * (size_t)(T * D);
        if (snap) memcpy(orig, st->kc[l], sizeof(float) * (size_t)(T * D));
        sf_rope_time_shift_cpu(&st->rope, orig, D, st->kc[l], D, T, c->num_heads, shift, st->nthreads);
    }
    return SF_OK;
}

/* The same on the device: the cache's rows are [k | v] (2D wide); a shift of 0 is an exact copy (the snapshot). */
static sf_status shift_gpu(sf_dit_state *st, int64_t shift, int snap, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_config *c = &st->w->cfg;
    const int64_t D = c->dim, T = st->sink_tokens;
    const int hd = (int)(D / c->num_heads);
    sf_status s = SF_OK;
    for (int l = 0; l < c->num_layers && !s; l++) {
        bf16 *kv = g->kv + (size_t)l * (size_t)(st->cache_tokens * 2 * D), *orig = g->sink_orig + (size_t)l * (size_t)(T * D);
        if (snap)
            s = sf_rope_time_shift_cuda(&g->cx, kv, 2 * D, orig, D, T, c->num_heads, hd, st->rope.n_t, 0, g->rope_cs,
                                        st->rope.max_pos, err);
        if (!s)
            s = sf_rope_time_shift_cuda(&g->cx, orig, D, kv, 2 * D, T, c->num_heads, hd, st->rope.n_t, shift,
                                        g->rope_cs, st->rope.max_pos, err);
    }
    return s;
}

sf_status sf_dit_set_sink_rope(sf_dit_state *st, int on, int64_t gap, sf_err *err) {
    const sf_dit_config *c = &st->w->cfg;
    const size_t n = (size_t)c->num_layers * (size_t)st->sink_tokens * (size_t)c->dim;
    if (on && (st->local_attn_size == -1 || st->sink_tokens <= 0))
        return sf_fail(err, SF_E_ARG, "--sink-rope realign needs a rolling KV cache with a sink (local_attn_size and "
                                      "sink_size > 0): without eviction the window is one stretch of time already");
    if (gap < 0) return sf_fail(err, SF_E_ARG, "--sink-rope-gap %lld: must be 0 or more frames", (long long)gap);
    if (st->sink_rope && st->sink_shift != 0) { /* set again mid-video: the slots go back to the keys as cached */
        sf_status s = st->gpu ? shift_gpu(st, 0, 0, err) : shift_cpu(st, 0, 0);
        if (s) return s;
    }
    st->sink_rope = 0, st->sink_shift = 0, st->sink_orig_valid = 0;
    if (!on) return SF_OK;
    if (st->gpu) {
        if (!st->gpu->sink_orig) {
            sf_status s = sf_cuda_malloc((void **)&st->gpu->sink_orig, n * sizeof(bf16), err);
            if (s) return s;
        }
    } else if (!st->sink_orig && !(st->sink_orig = malloc(n * sizeof(float)))) {
        return sf_fail(err, SF_E_NOMEM, "--sink-rope realign: out of memory for the sink keys (%zu floats)", n);
    }
    st->sink_rope = on == 2 ? 2 : 1, st->sink_rope_gap = gap;
    return SF_OK;
}

sf_status sf_dit_sink_realign(sf_dit_state *st, int64_t lo, int64_t ls, const int64_t *kfr, int64_t n_frames,
                              sf_err *err) {
    const int64_t want = sink_shift(st, lo, ls, kfr, n_frames);
    if (want != st->sink_shift) {
        if (want >= st->rope.max_pos || -want >= st->rope.max_pos)
            return sf_fail(err, SF_E_ARG, "--sink-rope realign: shift %lld is past the RoPE table (%d positions)",
                           (long long)want, st->rope.max_pos);
        /* not valid → the slots hold the keys as cached (shift 0): a forward that rewrote them ran unshifted */
        const int snap = !st->sink_orig_valid;
        sf_status s = st->gpu ? shift_gpu(st, want, snap, err) : shift_cpu(st, want, snap);
        if (s) return s;
        st->sink_orig_valid = 1, st->sink_shift = want;
    }
    if (ls < st->sink_tokens) st->sink_orig_valid = 0; /* this forward rewrites sink slots: copy them again later */
    return SF_OK;
}
