/* t5_cuda.h — the umT5 encoder on an NVIDIA GPU (sf-encode --device cuda[:N]); same contract as
 * sf_t5_encode (t5.h), built from an opened CPU encoder (its checked, mmapped weights).
 *
 * Design:
 *  - weights: uploaded once as bf16 into one device allocation through a pinned staging buffer
 *    (no host copy of the model): the token embedding (gathered on the device), per layer the fused
 *    [Wq; Wk; Wv] (3·A, D), Wo (D, A), the fused [W_gate; W_fc1] (2·F, D) and W_fc2 (D, F); the norm
 *    weights and the per-layer relative-position tables as f32 (their bf16 values widened);
 *  - numerics: the residual stream is f32 on the device; GEMM inputs are rounded to bf16
 *    (activations and the attention probabilities) against the bf16 weights, fp32 accumulation,
 *    f32 GEMM outputs where a norm or the GELU reads them, bf16 where the next GEMM does (q, k, v,
 *    attention output); RMS norms, softmax statistics and the gated GELU in fp32. The golden is the
 *    fp32 model on bf16 weights, the reference inference runs umT5 in bf16: this sits in between
 *    and is held to the golden with a bf16 tolerance (tests/unit/sf_test.h SF_TOL_BF16_T5);
 *  - attention: only the n real tokens are computed (keys past n are masked, so the real rows do
 *    not depend on them: t5.h), QKᵀ and P·V as cuBLASLt strided-batched products, the bias + mask +
 *    softmax as one fused kernel (kernels/t5_cuda.h); logits in query chunks of ≤ 1 GiB;
 *  - memory: every activation sized at init for max_len tokens (one allocation); a longer prompt
 *    regrows it once (logged). The encoder is resident until sf_t5_cuda_destroy; sf-encode
 *    --low-memory streams the layers instead (sf_t5_cuda_new_streaming) and destroys the encoder
 *    after each prompt (stages/encode/encode.c).
 * Tested by tests/unit/test_t5_cuda.c (golden t5 on a GPU; as test_t5_emu on the CPU emulation of
 * the kernels in every make test) and, for its kernels, tests/unit/test_t5_glue.c. */
#ifndef SF_T5_CUDA_H
#define SF_T5_CUDA_H

#include "stages/encode/t5.h"

typedef struct sf_t5_gpu sf_t5_gpu;

/* Upload m's weights to cuda:ordinal and size the activations for max_len tokens (≥ 1). Fails with
 * one clear line (SF_E_DEVICE: no driver / GPU / cuBLASLt; SF_E_UNSUPPORTED: older than sm_80;
 * SF_E_NOMEM: the weights and activations do not fit, with the sizes) and leaves *out NULL with
 * nothing allocated. m is borrowed only during the call. */
sf_status sf_t5_cuda_new(const sf_t5 *m, int ordinal, int64_t max_len, sf_t5_gpu **out, sf_err *err);
/* Streaming (sf-encode --low-memory): the same forward and results, with one layer's matrices on the
 * device at a time — each prompt uploads layer l's from m (bf16 through a pinned stage) just before
 * layer l runs, and gathers its embedding rows on the host — so the encoder holds ~0.4 GB of
 * weights plus the activations instead of 10.8 GiB, for a transfer of the layers per prompt. m is
 * borrowed for the encoder's whole life here. */
sf_status sf_t5_cuda_new_streaming(const sf_t5 *m, int ordinal, int64_t max_len, sf_t5_gpu **out, sf_err *err);
/* The same shapes with random bf16 weights generated on the device (the full-size benchmark). */
sf_status sf_t5_cuda_new_random(const sf_t5_config *c, int ordinal, int64_t max_len, uint64_t seed, sf_t5_gpu **out,
                                sf_err *err);
void sf_t5_cuda_destroy(sf_t5_gpu **g); /* NULL / *g NULL: no-op; NULLs *g */

/* sf_t5_encode on the GPU: ids (seq_len) with n_tokens real → out (seq_len, dim) f32 host, rows ≥
 * n_tokens 0. dbg: as t5.h (embed exact, block0_norm1 the bf16 GEMM input widened). */
sf_status sf_t5_cuda_encode(sf_t5_gpu *g, const int64_t *ids, int64_t seq_len, int64_t n_tokens, float *out,
                            const sf_t5_debug *dbg, sf_err *err);

/* Device bytes held by the encoder (weights + activations + attention workspace). */
size_t sf_t5_cuda_bytes(const sf_t5_gpu *g);
size_t sf_t5_cuda_weight_bytes(const sf_t5_gpu *g);
/* With SF_CUDA_PROFILE=1 at init: GPU ms per prompt by category into buf; 0 when nothing was
 * profiled. Reset clears the sums. */
int sf_t5_cuda_profile(const sf_t5_gpu *g, char *buf, size_t n);
void sf_t5_cuda_profile_reset(sf_t5_gpu *g);

#endif
