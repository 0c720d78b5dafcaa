/* conv3d.c — CPU reference of the causal 3-D convolution (kernels/conv3d.h) and the small
 * pthread pool shared by the VAE kernels.
 *
 * Mirrors CausalConv3d / nn.Conv2d of wan/modules/vae.py (zero padding, front-only time
 * padding supplied as history frame pointers). Tested by tests/unit/test_vae_kernels.c
 * (hand-computed convs, cache push, 1-vs-N-thread bit identity) and the VAE golden tests.
 *
 * Speed: a work item is (output frame, block of output rows). It copies the rows it needs into
 * a zero-padded slab (per worker, so no edge tests in the inner loop; rows padded to a multiple
 * of 8 pixels), then, output row by row, runs the reduction in chunks of (ci, dt) planes (whose
 * rows stay in L2) over tiles of 6 output channels × 16 pixels held in 12 ymm registers (GCC
 * vector code in conv3d_tile.inc, compiled for the baseline ISA and under target("avx2"), picked
 * at run time like the GEMM; SF_CPU_BASELINE=1 forces the baseline copy), parking the partial sums
 * in a per-worker row buffer between chunks. Each output is one float chain in the documented
 * order (bias, then r ascending; plain mul + add, no FMA), owned by exactly one item: results do
 * not depend on the thread count, the row/tile/chunk sizes or the ISA variant (tested bit for bit
 * against a scalar loop). ≈ 90–105 GFLOP/s per core at the decoder's shapes (was ≈ 16). */
#define _POSIX_C_SOURCE 200809L
#include "conv3d.h"
#include "dnnl_ops.h"
#include "parallel.h"

#include <stdlib.h>
#include <string.h>

/* ---- thread pool ---------------------------------------------------------------------- */

/* ---- convolution ----------------------------------------------------------------------- */

#pragma GCC diagnostic ignored "-Wpsabi" /* static always-inline vector helpers: no ABI */

typedef float v8 __attribute__((vector_size(32)));

#define AI static inline __attribute__((always_inline))
#define CO 6 /* output channels per register tile (tile = 6 × 16 pixels: 12 ymm); tile() is written for 6 */
#define SLAB_MAX (6u << 20) /* bytes of padded input rows per worker (caps rows per item) */
#define CHUNK_BYTES (192u << 10) /* per output row, the planes of one reduction chunk stay in L2 */

typedef struct conv_ctx {
    const sf_conv3d_args *a;
    const float *wpk;      /* packed weights [cout_pad/CO][cin·kt·kh·kw][CO] */
    int64_t cout_pad;
    int64_t rows;          /* output rows per item */
    int64_t n_rblk;        /* row blocks per frame */
    int64_t sr, wps;       /* slab: st·(rows - 1) + kh rows of wps floats per (ci, dt) plane */
    int64_t wv;            /* output row padded to a multiple of 8 */
    int64_t ho, wo;        /* output rows and columns: h / st, w / st */
    int st;                /* stride, 1 or 2 */
    int64_t cd_chunk;      /* (ci, dt) planes per reduction chunk */
    float *slabs, *accs;   /* per worker */
    size_t slab_elems, acc_elems;
    int avx2;
} conv_ctx;

#define SF_VARIANT_FILE "conv3d_tile.inc"
#define SF_VARIANT_ISA sf_conv3d_cpu_isa
#include "simd_variants.h"

static void conv_item(void *p, int64_t item, int tid) {
    const conv_ctx *c = p;
    const int64_t t = item / c->n_rblk, rb = item % c->n_rblk;
    const int64_t y0 = rb * c->rows, y1 = y0 + c->rows < c->ho ? y0 + c->rows : c->ho;
    float *slab = c->slabs + (size_t)tid * c->slab_elems, *acc = c->accs + (size_t)tid * c->acc_elems;
#ifdef SF_HAVE_AVX2_PATH
    if (c->avx2) {
        conv_rows_avx2(c, t, y0, y1, slab, acc);
        return;
    }
#endif
    conv_rows_base(c, t, y0, y1, slab, acc);
}

/* Floats per padded slab row: stride 1, the row with its kw - 1 padding columns; stride 2, the even
 * and odd columns of the padded row apart, each long enough for the tiles' 8-lane reads (conv_rows). */
static int64_t slab_row(int64_t wv, int kw, int st) { return st == 2 ? 2 * (wv + kw / 2) : wv + kw - 1; }

size_t sf_conv3d_cpu_scratch(int64_t cin, int64_t cout, int kt, int kh, int kw, int64_t w, int threads) {
    const int64_t cout_pad = (cout + CO - 1) / CO * CO, ncd = cin * kt, red = ncd * kh * kw;
    const int64_t wv = (w + 7) / 8 * 8, wv2 = (w / 2 + 7) / 8 * 8;
    const int64_t wps = slab_row(wv, kw, 1) > slab_row(wv2, kw, 2) ? slab_row(wv, kw, 1) : slab_row(wv2, kw, 2);
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    /* the slab holds (rows + kh − 1) padded rows of every (ci, dt): at most SLAB_MAX bytes, or kh rows
     * when even one row per item exceeds it */
    size_t slab = (size_t)(SLAB_MAX / sizeof(float)), one = (size_t)(kh * ncd * wps);
    if (one > slab) slab = one;
    return (size_t)(cout_pad * red) + (size_t)threads * (slab + (size_t)(cout_pad * wv));
}

sf_status sf_conv3d_cpu(const sf_conv3d_args *a, sf_err *err) {
    sf_status st = SF_OK;
    float *wpk = NULL, *slabs = NULL, *accs = NULL, *own = NULL;
    if (!a || !a->frames || !a->weight || !a->out || a->n_out < 0 || a->cin <= 0 || a->cout <= 0 || a->h <= 0 ||
        a->w <= 0 || a->kt < 1 || a->kh < 1 || a->kw < 1 || a->kh % 2 == 0 || a->kw % 2 == 0 || a->stride < 0 ||
        a->stride > 2 || (a->stride == 2 && (a->h % 2 || a->w % 2 || a->kh < 3 || a->kw < 3 || a->kw > 15)))
        return sf_fail(err, SF_E_ARG, "conv3d: bad arguments");
    if (a->n_out == 0) return SF_OK;
    const sf_cpu_mode mode = sf_cpu_mode_now();
    if (mode != SF_CPU_EXACT) { /* fast / bf16: oneDNN's convolution; on its refusal, the exact kernels */
        sf_err e2;
        if (sf_dnnl_conv3d(a, mode == SF_CPU_BF16, &e2) == SF_OK) return SF_OK;
    }
    const int st_ = a->stride == 2 ? 2 : 1;
    const int64_t ho = a->h / st_, wo = a->w / st_;
    const int64_t cout_pad = (a->cout + CO - 1) / CO * CO;
    const int64_t ncd = a->cin * a->kt, red = ncd * a->kh * a->kw;
    const int64_t wv = (wo + 7) / 8 * 8, wps = slab_row(wv, a->kw, st_);
    size_t wn, slab_elems, all_slabs, acc_elems, all_accs;
    const int threads = a->threads < 1 ? 1 : a->threads > 256 ? 256 : a->threads; /* sf_parallel_items' cap */

    /* Rows per item: small enough to give every worker several items, at most 16, and a padded
     * input slab of at most SLAB_MAX bytes (the summation order does not depend on it). */
    int64_t rows = ho;
    const double row_bytes = (double)ncd * (double)wps * sizeof(float);
    while (rows > 1 && (a->n_out * ((ho + rows - 1) / rows) < 4 * threads || rows > 16 ||
                        (double)(st_ * (rows - 1) + a->kh) * row_bytes > SLAB_MAX))
        rows = (rows + 1) / 2;
    const int64_t sr = st_ * (rows - 1) + a->kh;
    int64_t cd_chunk = (int64_t)(CHUNK_BYTES / ((double)a->kh * (double)wps * sizeof(float)));
    if (cd_chunk < 1) cd_chunk = 1;
    size_t total = 0;
    if (!sf_mul_ok((size_t)cout_pad, (size_t)red, &wn) || !sf_mul_ok((size_t)ncd, (size_t)(sr * wps), &slab_elems) ||
        !sf_mul_ok(slab_elems, (size_t)threads, &all_slabs) || !sf_mul_ok((size_t)cout_pad, (size_t)wv, &acc_elems) ||
        !sf_mul_ok(acc_elems, (size_t)threads, &all_accs) || (total = wn + all_slabs + all_accs) < wn) {
        st = sf_fail(err, SF_E_NOMEM, "conv3d: work memory size overflows");
        goto fail;
    }
    /* the caller's scratch (sized at its init with sf_conv3d_cpu_scratch), else memory of this call */
    if (!(wpk = sf_scratch_part(a->ws, 0, total))) {
        sf_scratch_count_miss();
        if (!(wpk = own = malloc(total * sizeof(float)))) {
            st = sf_fail(err, SF_E_NOMEM, "conv3d: out of memory (%lld->%lld channels, %lldx%lld)", (long long)a->cin,
                         (long long)a->cout, (long long)a->h, (long long)a->w);
            goto fail;
        }
    }
    slabs = wpk + wn;
    accs = slabs + all_slabs;
    /* the padded output channels' weights are read by the tiles: zeros (their sums are never stored) */
    memset(wpk + (size_t)(a->cout / CO) * (size_t)red * CO, 0, (wn - (size_t)(a->cout / CO) * (size_t)red * CO) * sizeof(float));
    /* Pack weights so one tile's CO output channels are adjacent: [cout_pad/CO][red][CO]. */
    for (int64_t co = 0; co < a->cout; co++) {
        float *d = wpk + (co / CO) * red * CO + co % CO;
        const float *s = a->weight + co * red;
        for (int64_t r = 0; r < red; r++) d[r * CO] = s[r];
    }

    conv_ctx c = {a,     wpk,      cout_pad, rows,       (ho + rows - 1) / rows, sr,        wps,
                  wv,    ho,       wo,       st_,        cd_chunk,               slabs,     accs,
                  slab_elems, acc_elems, sf_cpu_use_avx2()};
    sf_parallel_items(a->n_out * c.n_rblk, threads, conv_item, &c);
fail:
    free(own);
    return st;
}

void sf_conv3d_cache_push(float *cache, int depth, const float *chunk, int64_t n, size_t frame_elems) {
    if (depth <= 0 || n <= 0) return;
    if (n >= depth) {
        memcpy(cache, chunk + (size_t)(n - depth) * frame_elems, (size_t)depth * frame_elems * sizeof(float));
        return;
    }
    size_t keep = (size_t)(depth - n);
    memmove(cache, cache + (size_t)n * frame_elems, keep * frame_elems * sizeof(float));
    memcpy(cache + keep * frame_elems, chunk, (size_t)n * frame_elems * sizeof(float));
}
