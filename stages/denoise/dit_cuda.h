/* dit_cuda.h — the CUDA backend of the causal DiT (internal to stages/denoise; callers use dit.h,
 * which dispatches here when a state was made with a CUDA ordinal).
 *
 * Weights: uploaded once as bf16 matrices (+ bf16 biases for cuBLASLt's epilogue) in one device
 * allocation and bf16-rounded f32 vectors (norms, modulation) in another, staged through a pinned
 * buffer (no full host copy); K and V of self-attention are one fused [Wk; Wv] projection. State:
 * bf16 KV cache (global or rolling with sink) with rows [k | v] written in place by that
 * projection, cross-attention K/V preallocated, every activation sized at init; the forward
 * allocates nothing (the explicit attention's workspace and the cuDNN plans are made by
 * sf_dit_prepare before the loop; a caller that skips it gets them on first use). The sampling
 * loop's latents stay on the device (sf_dit_lat_*, sf_dit_denoise, sf_dit_renoise): the timestep
 * sinusoid, flow → x0 and re-noising are kernels, so a block runs without a host sync. Attention:
 * cuDNN fused SDPA when a plan exists for the shape, else the explicit cuBLASLt path
 * (kernels/cuda/attn_blas.cu), which logits-tapped layers always use. A forward that nothing reads
 * from while it runs (no probe, profile, logits or cross-attention tap; frames- and probs-mode aggregates
 * wait in pinned memory until its end) is captured into a CUDA graph and launched as one, once its
 * shape has run or been prepared (dit_cuda.c, "CUDA graphs"; SF_CUDA_GRAPHS=0: never).
 * Precision: the reference's bf16 model (SPEC §5.12): bf16 storage, fp32 accumulation, fp64 RoPE.
 * Tested by tests/unit/test_dit_cuda.c on a GPU (golden dit_forward / dit_pipeline_* / taps within
 * the golden README's bf16 tolerances) and, without one, for its clear refusal. */
#ifndef SF_DIT_CUDA_H
#define SF_DIT_CUDA_H

#include "dit.h"
#include "cuda_graph.h"

/* Build the GPU side of st (the host part — shapes, cache plan, RoPE table — is already set). */
sf_status sf_dit_cuda_init(sf_dit_state *st, int ordinal, sf_err *err);
void sf_dit_cuda_free(sf_dit_state *st);
sf_status sf_dit_cuda_set_context(sf_dit_state *st, const float *emb, int64_t n_rows, sf_err *err);
/* One forward (same contract as sf_dit_forward); kv plan values computed by the caller. x_t: host
 * input, or NULL for the device slot SF_LAT_X; flow: host output, or NULL to keep it on the device;
 * x0_slot ≥ 0: then slot x0_slot = x − sigma·flow on the device (sf_dit_denoise). kv_only: write the
 * cache only (sf_dit_refresh): the last layer stops after its K/V (sf_dit_kv_only_layer), no head. */
sf_status sf_dit_cuda_forward(sf_dit_state *st, const float *x_t, int F, const float *t, int64_t start_frame,
                              const sf_dit_kv_step *kv, float *flow, double sigma, int x0_slot, int kv_only,
                              sf_err *err);
/* The device slots of sf_dit_lat_* (dit.h; arguments checked there). Puts and re-noising draws go
 * through two pinned staging buffers, each reused only after the copy that read it has run. */
sf_status sf_dit_cuda_lat_put(sf_dit_state *st, int slot, const float *host, int64_t n, sf_err *err);
sf_status sf_dit_cuda_lat_get(sf_dit_state *st, int slot, float *host, int64_t n, sf_err *err);
sf_status sf_dit_cuda_lat_copy(sf_dit_state *st, int dst, int src, int64_t n, sf_err *err);
/* sf_dit_lat_get_begin / _end: an asynchronous copy into a pinned buffer and an event after it; _end waits
 * for the event and copies into the host buffer _begin was given. */
sf_status sf_dit_cuda_lat_get_begin(sf_dit_state *st, int slot, float *host, int64_t n, sf_err *err);
sf_status sf_dit_cuda_lat_get_end(sf_dit_state *st, sf_err *err);
sf_status sf_dit_cuda_renoise(sf_dit_state *st, const float *eps, int64_t n, float sigma, sf_err *err);
/* Build the cuDNN plans of a forward of Lq query tokens over Lk cached keys (self-attention) and
 * the text (cross-attention); allocate the explicit attention's workspace when a tap is attached or
 * cuDNN refuses a shape (sf_dit_prepare). */
sf_status sf_dit_cuda_prepare(sf_dit_state *st, int64_t Lq, int64_t Lk, sf_err *err);
/* With SF_CUDA_PROFILE=1 at init: GPU ms per forward by category (linear, self- and
 * cross-attention, norms + glue) into buf; 0 when nothing was profiled. Reset clears the sums. */
int sf_dit_cuda_profile(const sf_dit_state *st, char *buf, size_t n);
void sf_dit_cuda_profile_reset(sf_dit_state *st);
/* Record event i of an sf_cuda_events_new array on the state's stream (benchmarks time forwards
 * on the GPU's clock while the host runs ahead). */
sf_status sf_dit_cuda_mark(sf_dit_state *st, void *ev, int i, sf_err *err);
/* CUDA graphs launched for this state's forwards, and how (kernels/cuda_graph.h; zeros when off). */
void sf_dit_cuda_graph_stats(const sf_dit_state *st, sf_cuda_graph_stats *out);
/* Tests and diagnosis: host copies of what the device's last compression left for layer l — the candidates' scores
 * (--kv-compress: heads·n, n = kept + evicted; --pc-budget: n), its choice (heads·keep, keep = the kept tokens; keep
 * of --pc-budget's, its sources after the sink) and, for --pc-budget, the layer's slots' reuse counts (cache_tokens;
 * count NULL: not wanted). Synchronous. SF_E_ARG on a CPU state or one without compression. */
sf_status sf_dit_cuda_compression(sf_dit_state *st, int l, int64_t n, int64_t keep, double *score, int32_t *idx,
                                  int32_t *count, sf_err *err);
/* Peak device memory of this state in bytes (weights + state), for reports. */
size_t sf_dit_cuda_bytes(const sf_dit_state *st);
/* ... of which the explicit attention's logits workspace: 0 unless something read logits (a logits or
 * cross-attention tap, probability taps without the fused kernel, a shape no fused attention takes). */
size_t sf_dit_cuda_logits_ws_bytes(const sf_dit_state *st);

#endif
