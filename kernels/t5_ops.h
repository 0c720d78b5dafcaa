/* t5_ops.h — the umT5 encoder's own CPU kernels (besides the GEMMs and the RMS norm, which are
 * shared: kernels/gemm.h, kernels/norm_rows.h): the relative-position-bias attention with its
 * bias + key-mask softmax, and the gated-GELU of the feed-forward.
 *
 * Mirrors wan/modules/t5.py T5Attention (no 1/√d scale, per-layer bias table, key mask) and
 * T5FeedForward (fc1(x) · gelu_tanh(gate.0(x))) in the fp32 numerics of the golden (SPEC.md §3.3,
 * §3.5). These are the CPU references of the GPU kernels in kernels/t5_cuda.h (same argument
 * layout where it makes sense: bucket tables, strides). CPU code in kernels/cpu/t5_ops.c; used by
 * stages/encode/t5.c. Tested by tests/unit/test_t5_ops.c (hand-computed values, thread-count
 * invariance), tests/unit/test_t5.c (the golden encoder) and tests/unit/test_t5_glue.c (the GPU
 * kernels held to these).
 *
 * Why not attention.h / act.h: sf_attention_cpu is the DiT's scaled, unmasked, bias-free
 * attention (a tiled AVX2 kernel with a logit tap); T5's unscaled softmax with a per-head bucket
 * bias, a key mask and a double sum is another op with another contract, and its GPU sibling is
 * sf_t5_attention_cuda, not the DiT's. The gated GELU is binary (gate, fc1) and strided; its
 * scalar is the shared one, sf_gelu_tanh in kernels/act.h.
 *
 * Relative position: rel = key − query; bucket[rel + off] is its bucket (sf_t5_bucket of
 * stages/encode/t5.h; off = Lmax − 1 covers |rel| < Lmax); pos: (num_buckets, H) f32, one layer's
 * pos_embedding, so the bias of head h is pos[bucket[rel + off]·H + h].
 *
 * Determinism: threads split output rows only (sf_parallel_for, kernels/parallel.h); every sum
 * runs in a fixed order inside one row → bit-identical for any thread count. */
#ifndef SF_T5_OPS_H
#define SF_T5_OPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bias + key mask + softmax over rows of raw T5 attention logits (the CPU contract of
 * sf_t5_bias_softmax_cuda, whose P is this rounded to bf16):
 *   S: (H, rows, Lk) f32, row b = h·rows + i at b·lds (lds ≥ Lk): q·kᵀ of query q0 + i, unscaled;
 *   s_j = S[h, i, j] + pos[bucket[j − (q0 + i) + off]·H + h]            (f32 add)   for j < nk_valid;
 *   m = max_j s_j (f32); e_j = expf(s_j − m); Σ = Σ_j e_j in double, key order;
 *   P[h, i, j] = e_j · (float)(1/Σ)  for j < nk_valid,  0 for nk_valid ≤ j < Lk (masked: exactly 0,
 *   as the reference's bf16_min logit gives).
 * P: (H, rows, Lk) f32, row stride ldp ≥ Lk; P may be S when ldp == lds (in place). Columns past
 * Lk are not touched. Requires 1 ≤ nk_valid ≤ Lk and the bucket table to cover every rel used. */
void sf_t5_bias_softmax_cpu(int H, int64_t rows, int64_t q0, int64_t Lk, int64_t nk_valid, const float *S,
                            int64_t lds, const int *bucket, int64_t off, const float *pos, float *P, int64_t ldp,
                            int nthreads);

/* T5 self-attention of L tokens, per head h (features [h·d, (h+1)·d)), no 1/√d scale:
 *   S_h[i, j] = Σ_t q[i, h·d + t]·k[j, h·d + t]      (f32, t order)
 *   P_h = sf_t5_bias_softmax_cpu(S_h) for query i (q0 = 0), keys ≥ nk_valid masked
 *   o[i, h·d + t] = Σ_{j < nk_valid} P_h[i, j]·v[j, h·d + t]   (f32, key order; masked keys add nothing)
 * q, k, v: (L, H·d) f32, row stride ld ≥ H·d (may be column offsets of one fused [q | k | v]
 * buffer); o: (L, H·d) f32, row stride ldo, must not alias q, k, v. Requires 1 ≤ nk_valid ≤ L.
 * Work is split over (query, head) pairs; scratch: L floats per thread part (malloc). In the fast
 * and bf16 modes (parallel.h) the two products run on oneDNN (f32) per (head, 64-query block).
 * Returns 0, or −1 when scratch could not be allocated (o then partly unwritten).
 * The CPU contract of sf_t5_attention_cuda (which rounds q, k, v, P and o to bf16). */
int sf_t5_attention_cpu(int64_t L, int64_t nk_valid, int H, int d, const float *q, const float *k, const float *v,
                        int64_t ld, float *o, int64_t ldo, const int *bucket, int64_t off, const float *pos,
                        int nthreads);

/* Gated GELU of the umT5 feed-forward (SPEC §3.5, gate.0 = the GELU branch):
 *   h[i, c] = (float)( (double)fc1[i, c] · sf_gelu_tanh(gate[i, c]) )   (kernels/act.h: double, one rounding)
 * gate, fc1: (M, F) f32, row strides ldgate, ldf ≥ F (the GPU's fused [gate | fc1] rows are
 * fc1 = gate + F, ldf = ldgate = 2F); h: (M, F) f32, stride ldh; h may be gate or fc1 (same
 * stride). The CPU contract of sf_t5_gated_gelu_cuda (fp32 tanhf there, rounded to bf16). */
void sf_t5_gated_gelu_cpu(int64_t M, int64_t F, const float *gate, int64_t ldgate, const float *fc1, int64_t ldf,
                          float *h, int64_t ldh, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
