/* conv3d.h — causal 3-D convolution (and its 2-D / pointwise special cases) for the Wan VAE.
 *
 * Mirrors wan/modules/vae.py CausalConv3d (F.pad with 2·p_t frames in FRONT only, symmetric zero
 * spatial padding, stride 1, valid conv) and nn.Conv2d(3x3, pad 1) of Resample (kt = 1).
 * The CPU reference lives in kernels/cpu/conv3d.c; tested by tests/unit/test_vae_kernels.c
 * (hand-computed values, thread-count invariance) and through the VAE golden tests.
 *
 * Layout: frame-major. A frame is one contiguous [C, H, W] float32 block. The temporal context
 * is given as an array of frame pointers so that the per-layer causal cache (the last kt-1
 * input frames of the previous chunk) is used without concatenating copies. */
#ifndef SF_CONV3D_H
#define SF_CONV3D_H

#include "parallel.h"
#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_conv3d_args {
    /* frames: n_out + kt - 1 pointers, oldest first; each [cin, h, w] f32 (borrowed).
     * frames[0 .. kt-2] are the history (cache or zero frames), frames[kt-1 ..] the chunk. */
    const float *const *frames;
    int64_t n_out;                 /* output frames */
    int64_t cin, cout, h, w;
    int kt, kh, kw;                /* odd kh, kw; spatial zero padding (kh-1)/2, (kw-1)/2 */
    const float *weight;           /* [cout, cin, kt, kh, kw] (PyTorch Conv3d; Conv2d when kt = 1) */
    const float *bias;             /* [cout] or NULL */
    float *out;                    /* [n_out, cout, h, w], written entirely */
    int threads;                   /* <= 1: run on the calling thread */
    const sf_scratch *ws;          /* work memory sized at the caller's init (slot 0 of at least
                                      sf_conv3d_cpu_scratch floats); NULL: allocated per call */
    int stride;                    /* spatial output stride: 0 or 1, or 2 (see below) */
} sf_conv3d_args;

/* out[t, co, y, x] = bias[co] + Σ_{ci, dt, dy, dx} weight[co, ci, dt, dy, dx]
 *                    · frames[t + dt][ci, y + dy - kh/2, x + dx - kw/2]   (zero outside H×W)
 * Each output element is one float32 sum in a fixed order — bias (0 without), then + w·x over
 * r = ((ci·kt + dt)·kh + dy)·kw + dx ascending, x = 0 outside H×W; plain mul + add — computed by
 * one thread (work is split over (frame, row block)), so results are bit-identical for every
 * thread count and ISA variant. Scratch: per thread a padded input slab (≤ ~6 MB) and one
 * output row of partial sums; the packed weights once.
 * stride 2 (3 ≤ kh, 3 ≤ kw ≤ 15, h and w even): out [n_out, cout, h/2, w/2], out[t, co, y, x] = the sum above
 * at (2y + 1, 2x + 1) — Resample's ZeroPad2d((0, 1, 0, 1)) + Conv2d(stride 2) when kh = kw = 3 — the
 * same chain in the same order, so the exact mode gives the stride-1 result's bits at those points
 * for a quarter of its work (the slab holds the even and odd input columns apart). */
sf_status sf_conv3d_cpu(const sf_conv3d_args *a, sf_err *err);

/* Floats of work memory sf_conv3d_cpu needs for a conv of this shape and input width, whatever the
 * number of frames or rows per call or the stride (an upper bound: the packed weights, and per worker
 * a padded input slab and a row of partial sums). */
size_t sf_conv3d_cpu_scratch(int64_t cin, int64_t cout, int kt, int kh, int kw, int64_t w, int threads);

/* Causal cache update after a conv over a chunk: cache holds the last `depth` input frames
 * (each `frame_elems` floats, oldest first) of the sequence (cache ++ chunk). chunk: n frames
 * [n, frame_elems] contiguous. With n >= depth the cache becomes the chunk's last frames; with
 * n < depth the old cache shifts left and the chunk's frames are appended. */
void sf_conv3d_cache_push(float *cache, int depth, const float *chunk, int64_t n, size_t frame_elems);


#ifdef __cplusplus
}
#endif
#endif
