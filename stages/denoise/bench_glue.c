/* bench_glue.c — `sf-denoise --bench glue --device cuda`: the DiT's memory-bound glue kernels alone at
 * full size (a block of 4680 tokens × dim 1536, 12 heads of 128, frames of 30 × 52 patches), each timed
 * on the GPU (median of 7 after a warm-up) with the bytes it must move (its rows read and written;
 * the per-frame vectors and tables are small and cached) as achieved TB/s against a device-to-device
 * copy of the same rows on the same card — the floor each could reach. Rows are the kernels a forward
 * runs (dit_cuda.c) and how many times per forward, so "per forward" sums to the glue of one forward at
 * the rates measured: the figure SF_CUDA_PROFILE's "norms" and "q/k" categories include, launch gaps
 * aside. The fused row kernels run twice: as the DiT runs them, then with their per-column vectors loaded
 * one value at a time (sf_fused_norm_vector_loads(0), the A/B of their 16-byte loads; lines marked
 * "[per-value vector loads]", not counted per forward). Nothing passes or fails on time. `--bench glue-small`: 64-token frames, to try the program on
 * an emulated device. Run by tests/gpu/check.sh (part bench). */
#define _POSIX_C_SOURCE 200809L
#include "stages/denoise/bench.h"

#include "cuda_ops.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D = 1536, HEADS = 12, HD = 128, FF = 8960, F = 3, REPS = 7, MAXPOS = 1024, N_T = 22, N_H = 21 };

typedef struct glue {
    sf_cuda_ctx *cx;
    int64_t L, S;
    int Hp, Wp;
    void *x, *res, *y, *kv, *h;      /* bf16 rows: (L, D) ×3, the K|V cache rows (L, 2D), the FFN's (L, FF) */
    float *vec;                      /* f32 per-frame vectors (F, 6D) and affine weights (2D) */
    double *cs;                      /* a RoPE table (MAXPOS, HD/2, 2) */
} glue;

typedef struct kern {
    const char *name;
    int per_forward;   /* launches in one forward of the 1.3B model (30 layers) */
    double bytes_elem; /* bytes moved per element of its rows */
    int wide;          /* rows of FF instead of D */
} kern;

/* The kernels, as dit_cuda.c calls them. */
static const kern K[] = {
    {"device copy (the floor: rows read + written)", 0, 4, 0},
    {"res_ln_mod gated + modulation (FFN out -> next layer's LN)", 30, 8, 0},
    {"res_ln_mod plain + modulation (cross-attn out -> FFN's LN)", 30, 8, 0},
    {"res_ln_mod gated + affine (self-attn out -> norm3)", 30, 8, 0},
    {"ln_mod (layer 0's input)", 1, 4, 0},
    {"rmsnorm_rope q (in place)", 30, 4, 0},
    {"rmsnorm_rope k (in place, cache rows of 2D)", 30, 4, 0},
    {"rmsnorm cross-attn q (in place)", 30, 4, 0},
    {"gelu_tanh (the FFN's, when not in the GEMM epilogue)", 0, 4, 1},
};
enum { K_N = sizeof K / sizeof K[0] };

static sf_status run(const glue *g, int k, sf_err *err) {
    const int64_t L = g->L, fs = 6 * D;
    const float *v = g->vec, *aff = g->vec + F * fs;
    switch (k) {
    case 0: return sf_cuda_copy_d2d(g->cx, g->y, g->x, (size_t)(L * D) * 2, err);
    case 1: return sf_res_ln_mod_cuda(g->cx, L, D, g->x, D, g->res, D, v + 5 * D, NULL, NULL, 1e-6, g->S, v, v + D, fs, g->y, D, err);
    case 2: return sf_res_ln_mod_cuda(g->cx, L, D, g->x, D, g->res, D, NULL, NULL, NULL, 1e-6, g->S, v + 3 * D, v + 4 * D, fs, g->y, D, err);
    case 3: return sf_res_ln_mod_cuda(g->cx, L, D, g->x, D, g->res, D, v + 2 * D, aff, aff + D, 1e-6, g->S, NULL, NULL, fs, g->y, D, err);
    case 4: return sf_ln_mod_cuda(g->cx, L, D, g->x, D, NULL, NULL, 1e-6, g->S, v, v + D, fs, g->y, D, err);
    case 5:
        return sf_rmsnorm_rope_cuda(g->cx, L, D, g->y, D, aff, 1e-6, g->y, D, HEADS, HD, g->Hp, g->Wp, N_T, N_H, 0, g->cs,
                                    MAXPOS, err);
    case 6:
        return sf_rmsnorm_rope_cuda(g->cx, L, D, g->kv, 2 * D, aff, 1e-6, g->kv, 2 * D, HEADS, HD, g->Hp, g->Wp, N_T, N_H, 0,
                                    g->cs, MAXPOS, err);
    case 7: return sf_rmsnorm_rope_cuda(g->cx, L, D, g->y, D, aff, 1e-6, g->y, D, HEADS, HD, 1, 1, 0, 0, 0, NULL, 0, err);
    default: return sf_gelu_tanh_cuda(g->cx, g->h, L * FF, err);
    }
}

/* n values in [-1, 1) as bf16 (or f32) at dev */
static sf_status fill(sf_cuda_ctx *cx, sf_rng *r, void *dev, size_t n, int bf16, sf_err *err) {
    float *h = malloc(sizeof(float) * n);
    if (!h) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) h[i] = (float)(2.0 * sf_rng_uniform(r) - 1.0);
    sf_status s = bf16 ? sf_cuda_upload_bf16(cx, dev, h, n, err) : sf_cuda_upload_f32(cx, dev, h, n, err);
    free(h);
    return s;
}

sf_status sf_denoise_bench_glue(int cuda_ordinal, int small, sf_err *err) {
    if (cuda_ordinal < 0) return sf_fail(err, SF_E_ARG, "--bench glue measures the GPU's kernels: give --device cuda");
    sf_cuda_ctx cx;
    glue g = {&cx, 0, 0, small ? 8 : 30, small ? 8 : 52, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    g.S = (int64_t)g.Hp * g.Wp, g.L = F * g.S;
    void *ev = NULL;
    double *cs = NULL;
    sf_status s = sf_cuda_ctx_init(&cx, cuda_ordinal, err);
    if (s) return s;
    const size_t rows = (size_t)(g.L * D), ncs = (size_t)MAXPOS * (HD / 2) * 2;
    sf_rng r;
    sf_rng_seed(&r, 7);
    if ((s = sf_cuda_malloc(&g.x, rows * 2, err)) || (s = sf_cuda_malloc(&g.res, rows * 2, err)) ||
        (s = sf_cuda_malloc(&g.y, rows * 2, err)) || (s = sf_cuda_malloc(&g.kv, rows * 4, err)) ||
        (s = sf_cuda_malloc(&g.h, (size_t)(g.L * FF) * 2, err)) ||
        (s = sf_cuda_malloc((void **)&g.vec, sizeof(float) * (size_t)(F * 6 * D + 2 * D), err)) ||
        (s = sf_cuda_malloc((void **)&g.cs, sizeof(double) * ncs, err)) || (s = sf_cuda_events_new(&ev, 2 * REPS, err)))
        goto done;
    if ((s = fill(&cx, &r, g.x, rows, 1, err)) || (s = fill(&cx, &r, g.res, rows, 1, err)) ||
        (s = fill(&cx, &r, g.y, rows, 1, err)) || (s = fill(&cx, &r, g.kv, 2 * rows, 1, err)) ||
        (s = fill(&cx, &r, g.h, (size_t)(g.L * FF), 1, err)) || (s = fill(&cx, &r, g.vec, (size_t)(F * 6 * D + 2 * D), 0, err)))
        goto done;
    if (!(cs = malloc(sizeof(double) * ncs))) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < ncs / 2; i++) cs[2 * i] = cos(1e-3 * (double)i), cs[2 * i + 1] = sin(1e-3 * (double)i);
    if ((s = sf_cuda_copy_h2d(&cx, g.cs, cs, sizeof(double) * ncs, err))) goto done;
    double floor_tbs = 0, fwd_ms = 0, fwd_scalar_ms = 0;
    for (int k = 0; k < K_N && !s; k++) {
        /* pass 1 of the fused row kernels (1..7): their vectors one value per load (the A/B) */
        const int passes = k >= 1 && k <= 7 ? 2 : 1;
        for (int pass = 0; pass < passes && !s; pass++) {
            float ms[REPS];
            sf_fused_norm_vector_loads(pass == 0);
            if ((s = run(&g, k, err)) || (s = sf_cuda_sync(&cx, err))) break; /* the warm-up */
            for (int i = 0; i < REPS && !s; i++)
                if (!(s = sf_cuda_event_record(&cx, ev, 2 * i, err)) && !(s = run(&g, k, err)) &&
                    !(s = sf_cuda_event_record(&cx, ev, 2 * i + 1, err)))
                    s = sf_cuda_event_ms(ev, 2 * i, 2 * i + 1, &ms[i], err);
            if (s) break;
            const double med = sf_bench_median_ms(ms, REPS), bytes = K[k].bytes_elem * (double)g.L * (K[k].wide ? FF : D);
            const double tbs = med > 0 ? bytes / (med * 1e-3) / 1e12 : 0;
            if (k == 0) floor_tbs = tbs;
            printf("glue gpu %lld x %d, %s%s: %.4f ms, %.2f TB/s", (long long)g.L, K[k].wide ? FF : D, K[k].name,
                   pass ? " [per-value vector loads]" : "", med, tbs);
            if (k > 0 && floor_tbs > 0) printf(" (%.0f%% of the copy's)", 100.0 * tbs / floor_tbs);
            if (K[k].per_forward && !pass) printf(", %d per forward: %.2f ms", K[k].per_forward, K[k].per_forward * med);
            printf("\n");
            if (pass || passes == 1) fwd_scalar_ms += K[k].per_forward * med;
            if (!pass) fwd_ms += K[k].per_forward * med;
        }
    }
    sf_fused_norm_vector_loads(1);
    if (!s) {
        printf("glue gpu per forward (block 0, the kernels above at these rates): %.2f ms\n", fwd_ms);
        printf("glue gpu A/B: the same with per-value vector loads: %.2f ms per forward\n", fwd_scalar_ms);
    }
done:
    free(cs);
    sf_cuda_events_free(ev, 2 * REPS);
    sf_cuda_free(g.x), sf_cuda_free(g.res), sf_cuda_free(g.y), sf_cuda_free(g.kv), sf_cuda_free(g.h);
    sf_cuda_free(g.vec), sf_cuda_free(g.cs);
    sf_cuda_ctx_free(&cx);
    return s;
}
