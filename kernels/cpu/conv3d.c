/* conv3d.c — CPU reference of the causal 3-D convolution (kernels/conv3d.h) and the small
 * pthread pool shared by the VAE kernels.
 *
 * Mirrors CausalConv3d / nn.Conv2d of wan/modules/vae.py (zero padding, front-only time
 * padding supplied as history frame pointers). Tested by tests/unit/test_vae_kernels.c
 * (hand-computed convs, cache push, 1-vs-N-thread bit identity) and the VAE golden tests.
 *
 * Speed: a work item is (output frame, block of output rows). It copies the rows it needs into
 * a zero-padded slab (per worker, so no edge tests in the inner loop), then computes tiles of
 * 4 output channels × 8 pixels held in registers (GCC/Clang vector extensions; plain SSE on
 * baseline x86-64) while running over the whole reduction (ci, dt, dy, dx) in a fixed order.
 * Each output element is owned by exactly one item: results do not depend on the thread count. */
#define _POSIX_C_SOURCE 200809L
#include "conv3d.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef float v4f __attribute__((vector_size(16)));

static inline v4f ld4(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void st4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

/* ---- thread pool ---------------------------------------------------------------------- */

typedef struct pf_job {
    int64_t n_items;
    int n_workers, tid;
    void (*fn)(void *, int64_t, int);
    void *ctx;
} pf_job;

static void *pf_worker(void *p) {
    pf_job *j = p;
    for (int64_t i = j->tid; i < j->n_items; i += j->n_workers) j->fn(j->ctx, i, j->tid);
    return NULL;
}

#define PF_MAX_THREADS 256

void sf_vae_parallel_for(int64_t n_items, int threads, void (*fn)(void *ctx, int64_t i, int tid), void *ctx) {
    if (n_items <= 0) return;
    int n = threads < 1 ? 1 : threads > PF_MAX_THREADS ? PF_MAX_THREADS : threads;
    if ((int64_t)n > n_items) n = (int)n_items;
    if (n == 1) {
        for (int64_t i = 0; i < n_items; i++) fn(ctx, i, 0);
        return;
    }
    pf_job jobs[PF_MAX_THREADS];
    pthread_t th[PF_MAX_THREADS];
    int started[PF_MAX_THREADS];
    for (int t = 0; t < n; t++) {
        jobs[t] = (pf_job){n_items, n, t, fn, ctx};
        started[t] = t > 0 && pthread_create(&th[t], NULL, pf_worker, &jobs[t]) == 0;
    }
    pf_worker(&jobs[0]);
    for (int t = 1; t < n; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else pf_worker(&jobs[t]); /* could not start: run its items here */
    }
}

/* ---- convolution ---------------------------------------------------------------------- */

#define CO_BLK 4  /* output channels per register tile */
#define X_BLK 8   /* pixels per register tile (2 × v4f) */

typedef struct conv_ctx {
    const sf_conv3d_args *a;
    const float *wpk;      /* packed weights [cout_pad/4][cin][kt][kh][kw][4] */
    int64_t cout_pad;
    int64_t rows;          /* output rows per item */
    int64_t n_rblk;        /* row blocks per frame */
    int64_t slab_rows, wp; /* padded slab geometry: (rows + kh - 1) × (w + kw - 1) */
    float *slabs;          /* per worker: cin × kt × slab_rows × wp */
    size_t slab_elems;
} conv_ctx;

static void conv_item(void *p, int64_t item, int tid) {
    const conv_ctx *c = p;
    const sf_conv3d_args *a = c->a;
    const int64_t t = item / c->n_rblk, rb = item % c->n_rblk;
    const int64_t y0 = rb * c->rows, y1 = y0 + c->rows < a->h ? y0 + c->rows : a->h;
    const int kt = a->kt, kh = a->kh, kw = a->kw, ph = kh / 2, pw = kw / 2;
    const int64_t W = a->w, H = a->h, HW = H * W, wp = c->wp, sr = c->slab_rows;
    float *slab = c->slabs + (size_t)tid * c->slab_elems;

    /* Gather rows y0-ph .. y1-1+ph of every (ci, dt) into the zero-padded slab. */
    for (int64_t ci = 0; ci < a->cin; ci++) {
        for (int dt = 0; dt < kt; dt++) {
            const float *src = a->frames[t + dt] + ci * HW;
            float *dst = slab + (ci * kt + dt) * sr * wp;
            for (int64_t r = 0; r < (y1 - y0) + kh - 1; r++) {
                float *d = dst + r * wp;
                int64_t iy = y0 + r - ph;
                if (iy < 0 || iy >= H) {
                    memset(d, 0, (size_t)wp * sizeof(float));
                    continue;
                }
                for (int x = 0; x < pw; x++) d[x] = 0.0f, d[pw + W + x] = 0.0f;
                memcpy(d + pw, src + iy * W, (size_t)W * sizeof(float));
            }
        }
    }

    const int64_t red = a->cin * kt * kh * kw; /* reduction length per output */
    for (int64_t cb = 0; cb < c->cout_pad; cb += CO_BLK) {
        const float *wb = c->wpk + cb * red; /* [red][4] */
        int nco = (int)(a->cout - cb < CO_BLK ? a->cout - cb : CO_BLK);
        float bias[CO_BLK] = {0, 0, 0, 0};
        if (a->bias)
            for (int j = 0; j < nco; j++) bias[j] = a->bias[cb + j];
        for (int64_t y = y0; y < y1; y++) {
            float *orow[CO_BLK];
            for (int j = 0; j < CO_BLK; j++)
                orow[j] = j < nco ? a->out + ((t * a->cout + cb + j) * H + y) * W : NULL;
            const float *srow = slab + (y - y0) * wp;
            int64_t x = 0;
            for (; x + X_BLK <= W; x += X_BLK) {
                v4f acc[CO_BLK][2];
                for (int j = 0; j < CO_BLK; j++) {
                    v4f b = {bias[j], bias[j], bias[j], bias[j]};
                    acc[j][0] = b;
                    acc[j][1] = b;
                }
                const float *wq = wb;
                for (int64_t cd = 0; cd < a->cin * kt; cd++) {
                    const float *s0 = srow + cd * sr * wp + x;
                    for (int dy = 0; dy < kh; dy++) {
                        const float *s1 = s0 + dy * wp;
                        for (int dx = 0; dx < kw; dx++, wq += CO_BLK) {
                            v4f lo = ld4(s1 + dx), hi = ld4(s1 + dx + 4);
                            for (int j = 0; j < CO_BLK; j++) {
                                v4f wv = {wq[j], wq[j], wq[j], wq[j]};
                                acc[j][0] += wv * lo;
                                acc[j][1] += wv * hi;
                            }
                        }
                    }
                }
                for (int j = 0; j < nco; j++) {
                    st4(orow[j] + x, acc[j][0]);
                    st4(orow[j] + x + 4, acc[j][1]);
                }
            }
            for (; x < W; x++) { /* tail pixels: same order of summation, scalar */
                float acc[CO_BLK];
                for (int j = 0; j < CO_BLK; j++) acc[j] = bias[j];
                const float *wq = wb;
                for (int64_t cd = 0; cd < a->cin * kt; cd++) {
                    const float *s0 = srow + cd * sr * wp + x;
                    for (int dy = 0; dy < kh; dy++)
                        for (int dx = 0; dx < kw; dx++, wq += CO_BLK)
                            for (int j = 0; j < CO_BLK; j++) acc[j] += wq[j] * s0[dy * wp + dx];
                }
                for (int j = 0; j < nco; j++) orow[j][x] = acc[j];
            }
        }
    }
}

sf_status sf_conv3d_cpu(const sf_conv3d_args *a, sf_err *err) {
    sf_status st = SF_OK;
    float *wpk = NULL, *slabs = NULL;
    if (!a || !a->frames || !a->weight || !a->out || a->n_out < 0 || a->cin <= 0 || a->cout <= 0 || a->h <= 0 ||
        a->w <= 0 || a->kt < 1 || a->kh < 1 || a->kw < 1 || a->kh % 2 == 0 || a->kw % 2 == 0)
        return sf_fail(err, SF_E_ARG, "conv3d: bad arguments");
    if (a->n_out == 0) return SF_OK;
    const int64_t cout_pad = (a->cout + CO_BLK - 1) / CO_BLK * CO_BLK;
    const int64_t red = a->cin * a->kt * a->kh * a->kw;
    size_t wn, slab_elems, all_slabs;
    const int threads = a->threads < 1 ? 1 : a->threads > PF_MAX_THREADS ? PF_MAX_THREADS : a->threads;

    /* Rows per item: small enough to give every worker several items, at most 16. */
    int64_t rows = a->h;
    while (rows > 1 && (a->n_out * ((a->h + rows - 1) / rows) < 4 * threads || rows > 16)) rows = (rows + 1) / 2;
    const int64_t slab_rows = rows + a->kh - 1, wp = a->w + a->kw - 1;
    if (!sf_mul_ok((size_t)cout_pad, (size_t)red, &wn) ||
        !sf_mul_ok((size_t)(a->cin * a->kt), (size_t)(slab_rows * wp), &slab_elems) ||
        !sf_mul_ok(slab_elems, (size_t)threads, &all_slabs) || !(wpk = sf_calloc2(wn, sizeof(float))) ||
        !(slabs = sf_calloc2(all_slabs, sizeof(float)))) {
        st = sf_fail(err, SF_E_NOMEM, "conv3d: out of memory (%lld->%lld channels, %lldx%lld)", (long long)a->cin,
                     (long long)a->cout, (long long)a->h, (long long)a->w);
        goto fail;
    }
    /* Pack weights so one tile's 4 output channels are adjacent: [cout_pad/4][red][4]. */
    for (int64_t co = 0; co < a->cout; co++)
        for (int64_t r = 0; r < red; r++)
            wpk[(co / CO_BLK) * red * CO_BLK + r * CO_BLK + co % CO_BLK] = a->weight[co * red + r];

    conv_ctx c = {a, wpk, cout_pad, rows, (a->h + rows - 1) / rows, slab_rows, wp, slabs, slab_elems};
    sf_vae_parallel_for(a->n_out * c.n_rblk, threads, conv_item, &c);
fail:
    free(wpk);
    free(slabs);
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
