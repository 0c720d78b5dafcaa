/* bench_video.c — `sf-denoise --bench 1.3b --device cuda`: a whole 21-frame video of the full-size
 * DiT with random weights (see bench.h), the Self-Forcing defaults (shift 5, warped steps
 * 1000 750 500 250, 3-frame blocks, refresh pass at t = 0). The loop runs ahead of the GPU (a
 * block waits only for its x0), so each forward is timed on the GPU's own clock: an event on the
 * state's stream as each forward is enqueued, the whole video by the host. Run by
 * tests/gpu/check.sh beside the reference PyTorch bench (../shared/refbench).
 * SF_BENCH_TAPS=frames|probs[+cross][+seed]: the same video with every layer tapped in that mode,
 * every forward kept (--tap-select all), or with +seed the CLI's default selection (step 0 of each
 * block): the taps' overhead against the plain run (tests/bench/run.sh, tests/gpu/check.sh print the
 * ratio). The line says "[taps: MODE[-explicit|-ws|-ws2|-wgmma][@seed][ + cross], all N layers]", and the
 * attention path when SF_NO_CUDNN is set. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include "attn_mass_cuda.h"
#include "cuda_ops.h"
#include "rng.h"
#include "stages/denoise/dit_cuda.h"
#include "stages/denoise/pipeline.h"
#include "stages/denoise/taps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_FWD = 35 };

typedef struct clock_ctx {
    sf_dit_state *st;
    void *ev; /* N_FWD + 1 events */
    int n, bad;
    sf_taps *taps; /* SF_BENCH_TAPS, or NULL */
} clock_ctx;

static void on_fwd(void *ctx, int block, int step, int64_t start, int F) {
    (void)block, (void)step, (void)start, (void)F;
    clock_ctx *c = ctx;
    sf_err e = {0};
    if (c->taps) sf_taps_on_forward(c->taps, block, step, start);
    if (c->n < N_FWD && sf_dit_cuda_mark(c->st, c->ev, c->n++, &e)) c->bad = 1;
}

sf_status sf_denoise_bench_video(const sf_dit_weights *w, int cuda_ordinal, sf_err *err) {
    const sf_dit_config *c = &w->cfg;
    const int T = 21, H = 60, W = 104, FPB = 3;
    sf_scheduler sc;
    sf_dit_state st;
    sf_status s;
    size_t tot = 0, fr1 = 0;
    float *emb = NULL;
    void *ev = NULL;
    sf_taps taps;
    int have_taps = 0;
    memset(&st, 0, sizeof st);
    if ((s = sf_scheduler_init(&sc, 5.0, err))) return s;
    sf_pipeline_cfg pc = {{0}, 4, FPB, 0, 0.0f, T, H, W, c->in_dim, 0, NULL, 0, 0, {0, 0, 0, 0}, 0, 0, NULL, 0};
    const double raw[4] = {1000, 750, 500, 250};
    if ((s = sf_scheduler_steps(&sc, raw, 4, 1, pc.steps, err))) return s;
    double t0 = sf_now();
    if ((s = sf_dit_state_init_on(&st, w, FPB, H, W, T, -1, 0, 1, cuda_ordinal, err))) return s;
    double t_init = sf_now() - t0;
    emb = calloc((size_t)c->text_len * (size_t)c->text_dim, sizeof(float));
    if (!emb) { s = sf_fail(err, SF_E_NOMEM, "out of memory"); goto done; }
    sf_rng rng;
    sf_rng_seed(&rng, 3);
    sf_rng_fill_normal(&rng, emb, (size_t)40 * (size_t)c->text_dim, 0, 0.2f); /* 40 prompt rows, rest zero */
    if ((s = sf_dit_set_context(&st, emb, c->text_len, err))) goto done;
    if ((s = sf_cuda_events_new(&ev, N_FWD + 1, err))) goto done;
    const char *tapenv = getenv("SF_BENCH_TAPS");
    char tapdesc[64] = "";
    if (tapenv && *tapenv) { /* every layer; every forward, or step 0 of each block */
        char mode[16];
        snprintf(mode, sizeof mode, "%.*s", (int)strcspn(tapenv, "+"), tapenv);
        sf_tap_mode tm;
        const int seedsel = strstr(tapenv, "+seed") != NULL;
        int *all = malloc(sizeof(int) * (size_t)c->num_layers);
        for (int l = 0; all && l < c->num_layers; l++) all[l] = l;
        if (!all) s = sf_fail(err, SF_E_NOMEM, "out of memory");
        if (!s && !(s = sf_taps_parse_mode(mode, &tm, err)))
            s = sf_taps_init(&taps, tm, seedsel ? SF_TAP_SEL_SEED : SF_TAP_SEL_ALL, 0, 0, all, c->num_layers,
                             c->num_layers, err);
        free(all);
        if (s) goto done;
        have_taps = 1;
        taps.cross = strstr(tapenv, "+cross") != NULL;
        sf_taps_attach(&taps, &st);
        snprintf(tapdesc, sizeof tapdesc, " [taps: %s%s%s%s, all %d layers]", mode,
                 tm != SF_TAP_PROBS                ? ""
                 : getenv("SF_TAP_PROBS_EXPLICIT") ? "-explicit"
                 : getenv("SF_ATTN_WS")            ? (atoi(getenv("SF_ATTN_WS")) >= 2 ? "-ws2" : "-ws")
                 : getenv("SF_ATTN_WGMMA")         ? "-wgmma"
                                                   : "",
                 seedsel ? "@seed" : "",
                 taps.cross ? " + cross" : "", c->num_layers);
    }
    printf("denoise 1.3b gpu: bf16 weights + state %.2f GiB on the device, upload + init %.2f s\n",
           (double)sf_dit_cuda_bytes(&st) / 1073741824.0, t_init);
    for (int run = 0; run < 2; run++) {
        clock_ctx ck = {&st, ev, 0, 0, have_taps ? &taps : NULL};
        sf_pipeline_hooks hk = {on_fwd, NULL, NULL, &ck, 0, NULL};
        sf_cuda_graph_stats g0, g1;
        sf_dit_cuda_graph_stats(&st, &g0);
        double a = sf_now();
        if ((s = sf_pipeline_run(&st, &sc, &pc, &hk, NULL, err))) goto done;
        double total = sf_now() - a;
        /* 35 forwards, or 34: the last block's refresh pass is skipped unless a tap wants it (pipeline.h) */
        const int nf = ck.n;
        if ((s = sf_dit_cuda_mark(&st, ev, nf, err))) goto done;
        float ms[N_FWD];
        for (int i = 0; i < nf; i++)
            if (ck.bad || nf < N_FWD - 1 || (s = sf_cuda_event_ms(ev, i, i + 1, &ms[i], err))) {
                if (!s) s = sf_fail(err, SF_E_DEVICE, "bench: %d forward events recorded of %d", nf, N_FWD);
                goto done;
            }
        if (run == 0) { /* what a process's first video pays once: plans, heuristics, lazily loaded kernels, and
                           captures broken by a library's first use (the timed video below has none of it) */
            sf_dit_cuda_graph_stats(&st, &g1);
            printf("denoise 1.3b gpu warm-up video: %.3f s (plans, cuBLASLt heuristics); first forward %.1f ms on the "
                   "GPU, second %.1f; CUDA graphs: %lld of %d forwards, %lld failed captures, %lld updates refused\n",
                   total, ms[0], nf > 1 ? ms[1] : 0.0, g1.launches - g0.launches, nf, g1.failed - g0.failed,
                   g1.refused - g0.refused);
            sf_dit_cuda_profile_reset(&st);
            continue;
        }
        /* the attention path when it is not cuDNN's (SF_NO_CUDNN: sfpipe's fused kernel, or the explicit one) */
        const char *apath = !getenv("SF_NO_CUDNN")       ? ""
                            : getenv("SF_NO_FUSED_ATTN") ? " [attention: explicit cuBLASLt, no cuDNN]"
                            : getenv("SF_ATTN_WS")       ? (atoi(getenv("SF_ATTN_WS")) >= 2 ? " [attention: sfpipe fused ws2, no cuDNN]"
                                                                                               : " [attention: sfpipe fused ws, no cuDNN]")
                            : getenv("SF_ATTN_WGMMA")    ? " [attention: sfpipe fused wgmma, no cuDNN]"
                                                         : " [attention: sfpipe fused, no cuDNN]";
        /* which of sfpipe's kernels the last fused attention launched (a variant that does not apply falls back) */
        const char *kern = sf_attn_mass_last_kernel();
        printf("denoise 1.3b gpu video: %.3f s for 21 latent frames (81 video frames): %.1f FPS DiT only, %d forwards%s%s%s%s%s\n",
               total, 81.0 / total, nf, tapdesc, apath, kern ? " (last fused kernel: " : "", kern ? kern : "", kern ? ")" : "");
        sf_dit_cuda_graph_stats(&st, &g1); /* the timed video's forwards as CUDA graphs (off: SF_CUDA_GRAPHS=0) */
        printf("denoise 1.3b gpu CUDA graphs: %lld of %d forwards (%lld updated in place, %lld instantiated, %lld failed "
               "captures, %lld updates refused, last cudaGraphExecUpdateResult %d)%s\n",
               g1.launches - g0.launches, nf, g1.updates - g0.updates, g1.instantiations - g0.instantiations,
               g1.failed - g0.failed, g1.refused - g0.refused, g1.last_refusal, getenv("SF_CUDA_GRAPHS") && !strcmp(getenv("SF_CUDA_GRAPHS"), "0") ? " [SF_CUDA_GRAPHS=0]" : "");
        char prof[512];
        if (sf_dit_cuda_profile(&st, prof, sizeof prof))
            printf("denoise 1.3b gpu profile (SF_CUDA_PROFILE, timed video)%s: %s\n", apath, prof);
        for (int b = 0; b < 7; b++) {
            double blk = 0;
            printf("denoise 1.3b gpu block %d (%d keys): GPU ms per forward", b, (b + 1) * FPB * (int)st.frame_tokens);
            for (int k = 0; k < 5 && b * 5 + k < nf; k++) printf(" %.1f", ms[b * 5 + k]), blk += ms[b * 5 + k];
            printf("  block %.1f ms%s\n", blk, b * 5 + 5 > nf ? " (no refresh pass: nothing reads the last block's cache)" : "");
        }
    }
    if ((s = sf_cuda_mem_info(&fr1, &tot, err))) goto done;
    printf("denoise 1.3b gpu memory: %.2f GiB allocated by the DiT (weights + KV cache + activations; logits "
           "workspace %.2f), device used %.2f of %.2f GiB after the run\n",
           (double)sf_dit_cuda_bytes(&st) / 1073741824.0, (double)sf_dit_cuda_logits_ws_bytes(&st) / 1073741824.0,
           (double)(tot - fr1) / 1073741824.0, (double)tot / 1073741824.0);
done:
    if (have_taps) sf_taps_free(&taps);
    free(emb);
    sf_cuda_events_free(ev, N_FWD + 1);
    sf_dit_state_free(&st);
    return s;
}
