/* dit_cuda.h — the CUDA backend of the causal DiT (internal to stages/denoise; callers use dit.h,
 * which dispatches here when a state was made with a CUDA ordinal).
 *
 * Weights: uploaded once as bf16 matrices (+ bf16 biases for cuBLASLt's epilogue) in one device
 * allocation and bf16-rounded f32 vectors (norms, modulation) in another, staged through a pinned
 * buffer (no full host copy); K and V of self-attention are one fused [Wk; Wv] projection. State:
 * bf16 KV cache (global or rolling with sink) with rows [k | v] written in place by that
 * projection, cross-attention K/V preallocated, every activation sized at init; the forward
 * allocates nothing (the explicit attention's workspace is made on its first use). Attention:
 * cuDNN fused SDPA when a plan exists for the shape, else the explicit cuBLASLt path
 * (kernels/cuda/attn_blas.cu), which tapped layers always use.
 * Precision: the reference's bf16 model (SPEC §5.12): bf16 storage, fp32 accumulation, fp64 RoPE.
 * Tested by tests/unit/test_dit_cuda.c on a GPU (golden dit_forward / dit_pipeline_* / taps within
 * the golden README's bf16 tolerances) and, without one, for its clear refusal. */
#ifndef SF_DIT_CUDA_H
#define SF_DIT_CUDA_H

#include "dit.h"

/* Build the GPU side of st (the host part — shapes, cache plan, RoPE table — is already set). */
sf_status sf_dit_cuda_init(sf_dit_state *st, int ordinal, sf_err *err);
void sf_dit_cuda_free(sf_dit_state *st);
sf_status sf_dit_cuda_set_context(sf_dit_state *st, const float *emb, int64_t n_rows, sf_err *err);
/* One forward (same contract as sf_dit_forward); kv plan values computed by the caller. */
sf_status sf_dit_cuda_forward(sf_dit_state *st, const float *x_t, int F, const float *t, int64_t start_frame,
                              const sf_dit_kv_step *kv, float *flow, sf_err *err);
/* With SF_CUDA_PROFILE=1 at init: GPU ms per forward by category (linear, self- and
 * cross-attention, norms + glue) into buf; 0 when nothing was profiled. Reset clears the sums. */
int sf_dit_cuda_profile(const sf_dit_state *st, char *buf, size_t n);
void sf_dit_cuda_profile_reset(sf_dit_state *st);
/* Peak device memory of this state in bytes (weights + state), for reports. */
size_t sf_dit_cuda_bytes(const sf_dit_state *st);

#endif
