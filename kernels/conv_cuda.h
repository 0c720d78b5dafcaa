/* conv_cuda.h — the VAE's causal conv3d (and its 3×3 2-D case) on the GPU through cuDNN's backend
 * graph API: channels-last (NDHWC) bf16 activations, fp32 accumulation, bias and residual fused
 * into the convolution's epilogue where cuDNN takes them.
 *
 * Mirrors wan/modules/vae.py CausalConv3d without its F.pad in time: the caller keeps the kt−1
 * cached frames IN FRONT of the chunk in the same buffer, so the conv runs with temporal padding 0
 * (no copy per call); spatial zero padding (k−1)/2. CPU contract: kernels/conv3d.h (sf_conv3d_cpu,
 * channel-first f32) — same sums, here over bf16 inputs.
 *
 * Layout (all device memory, 16-byte aligned, bf16 raw bits):
 *   x:    (t_out + kt − 1, h, w, cin)      oldest frame first; frames [0, kt−1) are the history
 *   w:    (cout, kt, k, k, cin)            PyTorch's [cout, cin, kt, k, k] reordered at upload
 *   bias: (cout) bf16 or NULL               res: (t_out, h, w, cout) bf16 or NULL (may not alias y)
 *   y:    (t_out, h, w, cout)              (t_out, h/2, w/2, cout) with down (see sf_conv_shape)
 *   y = ⌊ conv(x, w) + bias + res ⌉ — one rounding when cuDNN fuses the epilogue ("fused" plan),
 *   else ⌊ ⌊conv⌉ + bias + res ⌉ by sf_vae_bias_res_cuda after a plain conv ("plain" plan).
 * cin and cout multiples of 8 (bf16 16-byte vectors; pad cout with zero filters, as the head does).
 *
 * cuDNN is dlopen'd (kernels/cuda/cudnn_util.h): a missing library is SF_E_UNSUPPORTED with the
 * reason. One execution plan per shape, built by sf_conv_cudnn_prepare at init: fused graph
 * (heuristics A, FALLBACK, every engine), then the plain conv graph the same way; on a GPU
 * heuristics A's first configs of both graphs are timed, and the fastest that is ≥ 3 % faster than the
 * first and gives its output bit for bit replaces it (SF_CUDNN_AUTOTUNE=0: the first, untimed). The
 * bytes never depend on the timings; a candidate that breaks the GPU context fails the prepare, naming it.
 * SF_CUDNN_DEBUG=1 prints every attempt. Implemented in kernels/cuda/conv_cudnn.c; in the CPU
 * emulation build (tests) by kernels/cuda/emu/conv_emu.cc, a plain loop over the same bf16 data;
 * a CPU-only build links stubs (kernels/nocuda/nocuda.c, SF_E_DEVICE).
 * Tested by tests/unit/test_conv_plans.c: deviceless plans for every real VAE shape (H200
 * description) in `make test`, and the forward against sf_conv3d_cpu on a GPU. */
#ifndef SF_CONV_CUDA_H
#define SF_CONV_CUDA_H

#include "cuda_ops.h"
#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_conv_shape {
    int64_t cin, cout, h, w; /* per frame */
    int64_t t_out;           /* output frames; the input holds t_out + kt − 1 */
    int kt, k;               /* kernel kt × k × k; kt ∈ {1, 3}, k ∈ {1, 3} */
    int bias, residual;      /* 1: the forward adds bias / res */
    int down;                /* 1: the VAE encoder's Resample 'downsample2d' (wan/modules/vae.py):
                                ZeroPad2d((0, 1, 0, 1)) then stride 2 in h and w — padding 0 before, 1
                                after, so output (i, j) reads input rows 2i..2i+2, columns 2j..2j+2. h, w
                                (the input's) even, k 3, kt 1; y and res are (t_out, h/2, w/2, cout) */
} sf_conv_shape;

typedef struct sf_conv_cudnn sf_conv_cudnn;

/* dlopen cuDNN, create a handle on ctx's device bound to ctx->stream (ctx is borrowed and must
 * outlive the object). SF_E_UNSUPPORTED when cuDNN is missing, SF_E_DEVICE without a device. */
sf_status sf_conv_cudnn_new(sf_conv_cudnn **out, const sf_cuda_ctx *ctx, sf_err *err);
void sf_conv_cudnn_destroy(sf_conv_cudnn **c); /* NULL or *c NULL: no-op */

/* Build the plan for shape s now (init time) and grow the workspace; SF_E_UNSUPPORTED when no
 * engine takes it (reason in err). */
sf_status sf_conv_cudnn_prepare(sf_conv_cudnn *c, const sf_conv_shape *s, sf_err *err);
/* y = conv(x, w) [+ bias] [+ res], enqueued on the stream. The plan must have been prepared
 * (SF_E_ARG otherwise: no plan is built inside the frame loop). */
sf_status sf_conv_cudnn_forward(sf_conv_cudnn *c, const sf_conv_shape *s, const void *x, const void *w,
                                const void *bias, const void *res, void *y, sf_err *err);
/* "fused heurA engine 12 ws 0" for a prepared shape; SF_E_NOTFOUND otherwise. */
sf_status sf_conv_cudnn_describe(const sf_conv_cudnn *c, const sf_conv_shape *s, char *desc, size_t n, sf_err *err);
/* Device memory held (workspace), bytes. */
size_t sf_conv_cudnn_bytes(const sf_conv_cudnn *c);
/* What the plans' autotune found (on a GPU, unless SF_CUDNN_AUTOTUNE=0): 1 with a one-line summary in
 * buf (shapes tuned, seconds, how many run another plan than cuDNN's first choice, one call of each
 * tuned shape in ms against the first choice's), 0 with "" when nothing was tuned. */
int sf_conv_cudnn_tune_report(const sf_conv_cudnn *c, char *buf, size_t n);

/* Deviceless: finalize the plan for a saved cuDNN device description (JSON) without a GPU (needs a
 * libcuda.so.1, real or tests/gpu/cudnn_stub/). desc: which graph / mode / engine. */
sf_status sf_conv_cudnn_plan_deviceless(const char *deviceprop_json_path, const sf_conv_shape *s, char *desc,
                                        size_t desc_n, sf_err *err);

#ifdef __cplusplus
}
#endif
#endif
