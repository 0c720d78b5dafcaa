/* cuda_ops.h — the C-callable CUDA backend: a context (device, stream, cuBLAS handle), device
 * memory helpers, and the first kernels (GEMM, RMSNorm, LayerNorm, GELU-tanh, SiLU, modulation,
 * gated residual add). Usable from C without CUDA headers: streams and handles are void*.
 *
 * Implemented in kernels/cuda/{cuda_common,gemm,norm_act}.cu; a build without nvcc links the
 * stubs in kernels/nocuda/nocuda.c, which return SF_E_DEVICE ("this build has no CUDA support").
 * STATUS: compiled (nvcc 13, sm_90a), never executed on a GPU — tests/gpu/check.sh runs
 * tests/unit/test_cuda_kernels.c, which compares every op with its CPU contract
 * (kernels/gemm.h, norm_rows.h, act.h, modulate.h) and with SPEC §5.4's bf16 rounding order.
 *
 * Conventions: "dev" pointers are device memory; bf16 tensors are raw uint16 bit patterns
 * (__nv_bfloat16 on the device). Every op is enqueued on ctx->stream (asynchronous: call
 * sf_cuda_sync before reading results on the host) and runs on ctx->ordinal, which
 * sf_cuda_ctx_init makes current on the calling thread. Ops take the context rather than a bare
 * cudaStream_t (STYLE's sf_<op>_cuda(..., cudaStream_t)) because the GEMM also needs the cuBLAS
 * handle and C callers cannot name either type. Launch errors are checked after every kernel;
 * asynchronous execution errors surface at the next sf_cuda_sync / download. */
#ifndef SF_CUDA_OPS_H
#define SF_CUDA_OPS_H

#include "sf.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_cuda_ctx {
    int ordinal;  /* CUDA device index */
    void *stream; /* cudaStream_t, owned (non-blocking stream) */
    void *lt;     /* sf_blaslt * (kernels/blaslt_cuda.h), owned, bound to stream */
    void *scratch; /* device scratch of the ops that need a little (sf_cuda_scratch), owned */
    size_t scratch_bytes;
    int sms;      /* the device's multiprocessors */
} sf_cuda_ctx;

/* Select device `ordinal`, create a stream and a cuBLAS handle. On failure everything created so
 * far is released and *ctx is zeroed (sf_cuda_ctx_free on it is harmless). */
sf_status sf_cuda_ctx_init(sf_cuda_ctx *ctx, int ordinal, sf_err *err);
/* Release the handle and stream; zeroes *ctx. NULL or zeroed ctx: no-op. */
void sf_cuda_ctx_free(sf_cuda_ctx *ctx);
/* Device scratch of at least bytes for work enqueued on ctx->stream (stream order makes one buffer
 * enough): grown on demand — a growth allocates and frees, so it must not happen inside a CUDA graph
 * capture; callers ask for their largest need on first use. */
sf_status sf_cuda_scratch(const sf_cuda_ctx *ctx, size_t bytes, void **p, sf_err *err);
/* Wait for everything enqueued on ctx->stream; reports asynchronous kernel errors. */
sf_status sf_cuda_sync(const sf_cuda_ctx *ctx, sf_err *err);
/* After a failed call: SF_OK when the GPU context still works (the failure was a refusal: an
 * allocation, a launch configuration; the last error is cleared), SF_E_DEVICE with the fault when a
 * kernel faulted — sticky: the context is lost for this process and every later call fails. */
sf_status sf_cuda_alive(const sf_cuda_ctx *ctx, sf_err *err);

/* Device memory: *dev = bytes of device memory (caller frees with sf_cuda_free). bytes 0 → NULL.
 * SF_E_NOMEM when the device has not that much free, SF_E_DEVICE for any other failure (a context
 * lost to a fault reports that fault here too, not a lack of memory). */
sf_status sf_cuda_malloc(void **dev, size_t bytes, sf_err *err);
void sf_cuda_free(void *dev); /* NULL: no-op */
/* Byte copies on ctx->stream; both return after the copy finished (host buffers reusable). */
sf_status sf_cuda_copy_h2d(const sf_cuda_ctx *ctx, void *dev, const void *host, size_t bytes, sf_err *err);
sf_status sf_cuda_copy_d2h(const sf_cuda_ctx *ctx, void *host, const void *dev, size_t bytes, sf_err *err);
/* Fill bytes of device memory with the byte value `byte` (guard patterns in tests). */
sf_status sf_cuda_memset(const sf_cuda_ctx *ctx, void *dev, int byte, size_t bytes, sf_err *err);
/* n floats host f32 → device f32 / device bf16 (rounded to nearest even on the host). */
sf_status sf_cuda_upload_f32(const sf_cuda_ctx *ctx, void *dev, const float *host, size_t n, sf_err *err);
sf_status sf_cuda_upload_bf16(const sf_cuda_ctx *ctx, void *dev, const float *host, size_t n, sf_err *err);
/* n elements device f32 / device bf16 → host f32 (bf16 widened exactly). Synchronises the stream. */
sf_status sf_cuda_download_f32(const sf_cuda_ctx *ctx, float *host, const void *dev, size_t n, sf_err *err);
sf_status sf_cuda_download_bf16(const sf_cuda_ctx *ctx, float *host, const void *dev, size_t n, sf_err *err);

/* y = x · Wᵀ + b (nn.Linear) with fp32 accumulation (cuBLASLt, kernels/blaslt_cuda.h).
 * x: (M, K) bf16, row stride ldx ≥ K. w: (N, K) bf16 row-major as stored ([out, in]).
 * bias: (N) f32 device or NULL. y: (M, N) of dtype ydt (SF_BF16 or SF_F32), row stride ldy ≥ N;
 * y must not alias x or w. The bias is written into y first and added by the GEMM (beta = 1), so
 * each output is rounded once from fp32 (as torch's addmm); with a bf16 y the bias is therefore
 * rounded to bf16 first — exact for the model's bf16 biases. M, N, K, ldx, ldy ≤ INT_MAX. */
sf_status sf_gemm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x, int64_t ldx,
                       const void *w, const float *bias, void *y, sf_dtype ydt, int64_t ldy, sf_err *err);

/* The DiT's linear layer: y = ⌊ x · Wᵀ + b ⌉, bf16 x (M, K) stride ldx, W (N, K), bias (N) bf16 device
 * or NULL, added in fp32 by cuBLASLt's epilogue before the single rounding; y (M, N) bf16 stride ldy. */
sf_status sf_linear_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x, int64_t ldx,
                         const void *w, const void *bias, void *y, int64_t ldy, sf_err *err);
/* The same with GELU-tanh in the epilogue: y = ⌊ gelu(x · Wᵀ + b) ⌉, one rounding from fp32 (the FFN's
 * first product; sf_linear_cuda then sf_gelu_tanh_cuda rounds twice — within a bf16 step of it). */
sf_status sf_linear_gelu_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x, int64_t ldx,
                              const void *w, const void *bias, void *y, int64_t ldy, sf_err *err);

/* RMSNorm over the full width D (WanRMSNorm; norm_q / norm_k over all 1536 features):
 * y = ⌊ ⌊ x·rsqrt(mean(x²) + eps) ⌉ · w ⌉ with fp32 statistics (⌊·⌉ = round to bf16).
 * x, y: (M, D) bf16, row strides ldx / ldy (y may equal x when ldx == ldy). w: (D) f32 device or NULL. */
sf_status sf_rmsnorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx, const float *w,
                          double eps, void *y, int64_t ldy, sf_err *err);
/* LayerNorm (WanLayerNorm), biased variance, fp32 statistics (two passes: mean, then squared
 * deviations), one rounding to bf16: y = ⌊ (x − mean)·rsqrt(var + eps) [·w + b] ⌉.
 * x, y: (M, D) bf16 as above. w, b: (D) f32 device; w NULL = no affine (b ignored), b NULL = 0. */
sf_status sf_layernorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx, const float *w,
                            const float *b, double eps, void *y, int64_t ldy, sf_err *err);

/* In place on n bf16 values, computed in fp32 and rounded once:
 * GELU-tanh 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), SiLU x·σ(x). */
sf_status sf_gelu_tanh_cuda(const sf_cuda_ctx *ctx, void *x, int64_t n, sf_err *err);
sf_status sf_silu_cuda(const sf_cuda_ctx *ctx, void *x, int64_t n, sf_err *err);

/* adaLN modulation per latent frame (kernels/modulate.h layout: rows [f·S, (f+1)·S) of x belong to
 * frame f; shift / scale row f starts at f·fstride), SPEC §5.4 rounding order:
 *   y = ⌊ ⌊ x · ⌊1 + scale⌉ ⌉ + shift ⌉
 * x, y: (F·S, D) contiguous bf16 (y may equal x). shift, scale: f32 device holding the reference's
 * bf16 E_i values (the kernel does not round them). */
sf_status sf_modulate_cuda(const sf_cuda_ctx *ctx, int F, int64_t S, int64_t D, const void *x, const float *shift,
                           const float *scale, int64_t fstride, void *y, sf_err *err);
/* Gated residual, SPEC §5.4: x = ⌊ x + ⌊ y · gate ⌉ ⌉. x, y: (F·S, D) contiguous bf16, gate as shift. */
sf_status sf_gated_add_cuda(const sf_cuda_ctx *ctx, int F, int64_t S, int64_t D, void *x, const void *y,
                            const float *gate, int64_t fstride, sf_err *err);


/* ---- DiT glue (kernels/cuda/dit_glue.cu) ------------------------------------------------------ */

/* 3-axis RoPE in place on x: (F·H·W, heads·d) bf16, token row stride ld; tokens ordered (f, h, w).
 * cs: device copy of sf_rope_table.cs (max_pos, d/2, 2) fp64; pairs [0, n_t) use the time axis
 * (position start_frame + f), [n_t, n_t + n_h) height, the rest width. Rotation in fp64, one
 * rounding to bf16. CPU reference: sf_rope_apply_cpu (kernels/rope.h). */
sf_status sf_rope_cuda(const sf_cuda_ctx *ctx, void *x, int64_t ld, int F, int H, int W, int heads, int d, int n_t,
                       int n_h, int64_t start_frame, const double *cs, int max_pos, sf_err *err);
/* Deep Sink's re-alignment of cached keys (sf-denoise --sink-rope realign): dst = src with the time pairs
 * [0, n_t) of each head rotated by delta positions (table row |delta|, conjugated for delta < 0), the
 * other pairs copied; n_tok rows of heads·d bf16, strides lds / ldd (dst may be src). fp64, one rounding.
 * CPU reference: sf_rope_time_shift_cpu (kernels/rope.h). */
sf_status sf_rope_time_shift_cuda(const sf_cuda_ctx *ctx, const void *src, int64_t lds, void *dst, int64_t ldd,
                                  int64_t n_tok, int heads, int d, int n_t, int64_t delta, const double *cs, int max_pos,
                                  sf_err *err);
/* Patch embedding input: x (F, C, H, W) f32 device → P (F·H/ph·W/pw, C·ph·pw) bf16 (rounded).
 * Unpatchify: O (F·H/ph·W/pw, ph·pw·C) bf16 → y (F, C, H, W) f32. CPU: kernels/patch.h. */
sf_status sf_patchify_cuda(const sf_cuda_ctx *ctx, const float *x, int F, int C, int H, int W, int ph, int pw, void *P,
                           sf_err *err);
sf_status sf_unpatchify_cuda(const sf_cuda_ctx *ctx, const void *O, int F, int C, int H, int W, int ph, int pw,
                             float *y, sf_err *err);
/* Modulation table: out[f·n + i] = ⌊ mod[i] + e[f·lde + i mod period] ⌉ as f32, f < F, i < n.
 * mod: (n) f32 device; e: bf16 device. Blocks: n = period = lde = 6·dim (E = modulation + e0);
 * head: n = 2·dim, period = lde = dim (Hm = head.modulation + e). CPU: sf_mod_table_cpu. */
sf_status sf_mod_table_cuda(const sf_cuda_ctx *ctx, int F, int64_t n, const float *mod, const void *e, int64_t lde,
                            int64_t period, float *out, sf_err *err);
/* x = ⌊ x + y ⌉ over n bf16 values. */
sf_status sf_add_cuda(const sf_cuda_ctx *ctx, void *x, const void *y, int64_t n, sf_err *err);
/* n values f32 → bf16 (round to nearest even) and bf16 → f32, device to device. */
sf_status sf_f32_to_bf16_cuda(const sf_cuda_ctx *ctx, const float *x, void *y, int64_t n, sf_err *err);
sf_status sf_bf16_to_f32_cuda(const sf_cuda_ctx *ctx, const void *x, float *y, int64_t n, sf_err *err);
/* n values f32 → f16 bits (round to nearest even, as sf_f32_to_f16; the attention taps' storage). */
sf_status sf_f32_to_f16_cuda(const sf_cuda_ctx *ctx, const float *x, void *y, int64_t n, sf_err *err);
/* Row softmax of the explicit attention path: s (rows, n) f32 scaled logits, row stride lds →
 * p (rows, n) bf16, row stride ldp: p = ⌊ exp(s − max_row) / Σ_row exp(s − max_row) ⌉ with fp32
 * statistics. CPU: sf_softmax_rows_cpu (kernels/attention.h). */
sf_status sf_softmax_rows_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t n, const float *s, int64_t lds, void *p,
                               int64_t ldp, sf_err *err);

/* Wan's timestep sinusoid (sf_timestep_embed_cpu, kernels/timestep_embed.h) straight into bf16:
 * out (n, dim) bf16, row f = ⌊(float)[cos(t_f·freq_j) …, sin(t_f·freq_j) …]⌉, freq: (dim/2) fp64 device
 * table 10000^(−j/(dim/2)) (made on the host with the CPU reference's pow). t: n HOST floats, passed to
 * the kernel as arguments (SF_CUDA_TVEC per launch): nothing is copied, nothing waits. */
#define SF_CUDA_TVEC 64
typedef struct sf_cuda_tvec {
    float t[SF_CUDA_TVEC];
} sf_cuda_tvec;
sf_status sf_timestep_embed_cuda(const sf_cuda_ctx *ctx, const float *t, int n, int dim, const double *freq, void *out,
                                 sf_err *err);
/* The scheduler's element-wise steps on device f32 buffers, bit for bit the CPU references
 * (stages/denoise/scheduler.h): x0 = fl32(fl64(xt) − σ·fl64(flow)) (sf_flow_to_x0_cpu) and
 * out = fl32(1 − σ)·x0 + σ·noise with each product rounded (sf_add_noise_cpu). Aliasing as there. */
sf_status sf_flow_to_x0_cuda(const sf_cuda_ctx *ctx, const float *xt, const float *flow, int64_t n, double sigma,
                             float *x0, sf_err *err);
sf_status sf_add_noise_cuda(const sf_cuda_ctx *ctx, const float *x0, const float *noise, int64_t n, float sigma,
                            float *out, sf_err *err);

/* ---- fused row ops (kernels/cuda/norm_fused.cu): one warp per row, 16-byte loads ------------------
 * Shapes: D a multiple of 8 up to 2048, row strides multiples of 8, 16-byte aligned rows (else
 * SF_E_ARG: callers fall back to the unfused kernels); y may equal x (same stride). */

/* The fused row ops load their per-column f32/f64 vectors (affine, modulation, gate, RMSNorm weight,
 * RoPE table) 16 bytes at a time when all are 16-byte aligned and the frame stride a multiple of 4,
 * else one value per load; same results. on = 0 forces the scalar loads, 1 restores the default, < 0
 * only asks; returns the previous setting (process-wide: for --bench glue's A/B and the tests). */
int sf_fused_norm_vector_loads(int on);

/* LayerNorm (fp32 statistics, biased variance, eps) of x (M, D) bf16 → y (M, D) bf16:
 *   a = ⌊ (x − mean)·rstd [·w + b] ⌉           (w, b: (D) f32 device, NULL = no affine)
 *   with shift, scale (f32 device, per frame: row r uses frame r / S at frame·fstride):
 *   y = ⌊ ⌊ a · ⌊1 + scale⌉ ⌉ + shift ⌉         else y = a.
 * = sf_layernorm_cuda followed by sf_modulate_cuda. */
sf_status sf_ln_mod_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx, const float *w,
                         const float *b, double eps, int64_t S, const float *shift, const float *scale, int64_t fstride,
                         void *y, int64_t ldy, sf_err *err);
/* The residual add that ends a sub-block, then the LayerNorm [+ modulation] that starts the next, in
 * one pass: x = ⌊ x + ⌊ res · gate ⌉ ⌉ (gate: f32 per frame, SPEC §5.4's gated residual) or
 * x = ⌊ x + res ⌉ (gate NULL: the cross-attention residual), written back to x (M, D) stride ldx;
 * then y = sf_ln_mod_cuda's output on the new x. res: (M, D) bf16 stride ldr; y must not alias x.
 * = sf_gated_add_cuda / sf_add_cuda followed by sf_ln_mod_cuda. */
sf_status sf_res_ln_mod_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, void *x, int64_t ldx, const void *res,
                             int64_t ldr, const float *gate, const float *w, const float *b, double eps, int64_t S,
                             const float *shift, const float *scale, int64_t fstride, void *y, int64_t ldy,
                             sf_err *err);
/* RMSNorm over the full row, y = ⌊ ⌊ x·rsqrt(mean(x²) + eps) ⌉ · w ⌉ (w NULL: no weight), then with cs
 * (non-NULL) the 3-axis RoPE of sf_rope_cuda on rows = tokens (f, h, w) of an F×Hp×Wp grid,
 * heads·d = D. = sf_rmsnorm_cuda followed by sf_rope_cuda. */
sf_status sf_rmsnorm_rope_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx,
                               const float *w, double eps, void *y, int64_t ldy, int heads, int d, int Hp, int Wp,
                               int n_t, int n_h, int64_t start_frame, const double *cs, int max_pos, sf_err *err);

/* ---- explicit attention (kernels/cuda/attn_blas.cu) ------------------------------------------- */

/* Called per query chunk with the device logits S: (H, rows, Lk) f32 of queries [r0, r0 + rows),
 * before the softmax (enqueued on ctx->stream; the callback may enqueue copies of S). */
typedef sf_status (*sf_attn_logits_fn)(void *ctx, int64_t r0, int64_t rows, const float *S, sf_err *err);
/* O = softmax(Q·Kᵀ·scale)·V per head, no mask. q: (Lq, H·d) bf16 row stride ldq; k, v: (Lk, H·d) bf16
 * stride ldk; o: (Lq, H·d) bf16 stride ldo. Workspace: S ≥ H·chunk·Lk f32, P ≥ H·chunk·Lk bf16 (device).
 * Queries are processed chunk rows at a time. on_logits may be NULL. CPU: sf_attention_cpu. */
sf_status sf_attention_blas_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int H, int d, const void *q,
                                 int64_t ldq, const void *k, const void *v, int64_t ldk, void *o, int64_t ldo,
                                 float scale, float *S, void *P, int64_t chunk, sf_attn_logits_fn on_logits,
                                 void *cb_ctx, sf_err *err);
/* Device → host copy of `height` rows of `width` bytes (pitches in bytes), synchronous. Pitches over
 * CUDA's limit for a 2D copy (2^31 − 1 bytes: a tap's logits of very long key windows) are copied row
 * by row. */
sf_status sf_cuda_copy_d2h_2d(const sf_cuda_ctx *ctx, void *host, size_t hpitch, const void *dev, size_t dpitch,
                              size_t width, size_t height, sf_err *err);
/* Device → device byte copy on ctx->stream (regions may overlap: copied through a bounce when they do). */
sf_status sf_cuda_copy_d2d(const sf_cuda_ctx *ctx, void *dst, const void *src, size_t bytes, sf_err *err);
/* Host → device byte copy enqueued on ctx->stream WITHOUT waiting: `pinned` must be page-locked
 * (sf_cuda_host_alloc) and left unchanged until the stream has passed the copy (record an event
 * after it and sf_cuda_event_sync before reusing the buffer). */
sf_status sf_cuda_copy_h2d_async(const sf_cuda_ctx *ctx, void *dev, const void *pinned, size_t bytes, sf_err *err);
/* Device → host byte copy enqueued on ctx->stream WITHOUT waiting: `pinned` (sf_cuda_host_alloc) holds the
 * bytes once the stream has passed the copy (sf_cuda_sync, or an event after it). */
sf_status sf_cuda_copy_d2h_async(const sf_cuda_ctx *ctx, void *pinned, const void *dev, size_t bytes, sf_err *err);
/* Pinned (page-locked) host memory for staging uploads; *p NULL on failure. */
sf_status sf_cuda_host_alloc(void **p, size_t bytes, sf_err *err);
void sf_cuda_host_free(void *p); /* NULL: no-op */
/* Events on ctx->stream (profiles, staging-buffer reuse): an array of n events; record event i; elapsed ms from
 * event i to event j once both completed (synchronises on j). */
sf_status sf_cuda_events_new(void **ev, int n, sf_err *err);
void sf_cuda_events_free(void *ev, int n);
sf_status sf_cuda_event_record(const sf_cuda_ctx *ctx, void *ev, int i, sf_err *err);
sf_status sf_cuda_event_ms(void *ev, int i, int j, float *ms, sf_err *err);
/* Wait until event i (recorded earlier) has completed; an event never recorded counts as done. */
sf_status sf_cuda_event_sync(void *ev, int i, sf_err *err);
/* Free and total memory of the current device, bytes. */
sf_status sf_cuda_mem_info(size_t *free_bytes, size_t *total_bytes, sf_err *err);

#ifdef __cplusplus
}
#endif
#endif
