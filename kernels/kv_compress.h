/* kv_compress.h — Participative Compression's ops (Deep Forcing, Yi et al. 2025): a rolling KV cache that,
 * instead of dropping its oldest frames, keeps per head the tokens the latest queries attended most
 * (sf-denoise --kv-compress; the cache step: sf_dit_set_kv_compress in stages/denoise/dit.h).
 *
 *   importance  sf_key_mass_cpu: for every head, the softmax probability each key of a range receives,
 *               summed over the queries (the softmax over all the keys the queries saw: exactly what the
 *               attention computed), in fp64;
 *   selection   sf_kv_select_cpu: per head the `keep` most important, ties to the older (lower) index,
 *               listed in ascending order (on a GPU sf_topk_select_cuda, the same choice: no host round trip);
 *   compaction  sf_kv_gather_cpu: per head, row i of the region ← row idx[i] (in place: idx[i] ≥ i).
 *
 * GPU forms (kernels/kv_compress_cuda.h, kernels/cuda/kv_compress.cu) are held to these by
 * tests/unit/test_kv_compress.c on the emulation layer in every build and on a GPU by its _gpu twin. */
#ifndef SF_KV_COMPRESS_H
#define SF_KV_COMPRESS_H

#include "sf.h"

#include <math.h>
#include <stdint.h>

/* One head's logits rows S (rows, lds) f32, each over Lk keys: acc[j] += Σ_r exp(S[r, k0 + j] − lse_r) for
 * j < nk, with lse_r = m_r + log Σ_{i<Lk} exp(S[r, i] − m_r), m_r the row max, all in fp64; rows added in order.
 * Requires 0 ≤ k0, k0 + nk ≤ Lk ≤ lds. */
void sf_key_mass_rows_cpu(int64_t rows, int64_t Lk, const float *S, int64_t lds, int64_t k0, int64_t nk, double *acc);

/* The importance of keys [k0, k0 + nk) to Lq queries, per head h of H (features [h·d, (h+1)·d)):
 * out[h·nk + j] = Σ_r softmax_i((q_r·k_i)·scale over i < Lk)[k0 + j]. q: (Lq, H·d) f32 row stride ldq;
 * k: (Lk, H·d) f32 stride ldk. Each logit is the f32 rounding of its fp64 dot product times scale (the rows
 * a GPU's GEMM hands over), then sf_key_mass_rows_cpu's numbers exactly, on nthreads threads (the same bits for
 * any count: rows and keys are shared out, never a sum). SF_E_NOMEM / SF_E_ARG name what failed. */
sf_status sf_key_mass_cpu(int64_t Lq, int64_t Lk, int H, int d, const float *q, int64_t ldq, const float *k,
                          int64_t ldk, float scale, int64_t k0, int64_t nk, double *out, int nthreads, sf_err *err);

/* Per head h of H: idx[h·keep + i], i < keep, the candidates j < n with the keep largest score[h·n + j] (a NaN
 * counts as −∞; ties: the lower j), in ascending order. Requires 0 ≤ keep ≤ n. Returns 0, or −1 when out of
 * memory (idx untouched). */
int sf_kv_select_cpu(int H, int64_t n, const double *score, int64_t keep, int32_t *idx);

/* In place, per head h of H (columns [h·d, (h+1)·d) of rows ld apart): row i ← row idx[h·keep + i] for i < keep
 * (ascending indices with idx[h·keep + i] ≥ i, as sf_kv_select_cpu lists them: every row is read before it is
 * overwritten). */
void sf_kv_gather_cpu(float *x, int64_t ld, int H, int d, int64_t keep, const int32_t *idx);

/* Deep Forcing's released rule (sf-denoise --pc-budget; stages/denoise/pc.c): one score per cached token, shared
 * by every head: the recent queries' sum dotted with the key over all the heads' features — no softmax.
 *   query ring  sf_ring_put_cpu / sf_ring_sum_cpu: a layer's last R post-RoPE query rows in a ring of R rows, and
 *               their column sums in fp64, oldest row first;
 *   scores      sf_pc_scores_cpu: φ_j = scale·Σ_e qsum[e]·k[j, e] in fp64;
 *   selection   sf_pc_select_cpu: the keep highest, a token chosen max_reuse times already held back while others
 *               can stand in; sf_pc_finish_cpu: the recent slots after them, the reuse counts moved along;
 *               compaction is sf_kv_gather_cpu with H = 1. */

/* ring[(pos + i) mod R] ← x[i] for i < n (rows of D floats; ring rows dense, x rows ldx apart). 0 ≤ pos < R, n ≤ R. */
void sf_ring_put_cpu(float *ring, int64_t R, int64_t D, int64_t pos, const float *x, int64_t ldx, int64_t n);
/* out[e] = Σ_{i<n} ring[(head + i) mod R][e] for e < D, i ascending, in fp64 (overwritten). 0 ≤ head < R, n ≤ R. */
void sf_ring_sum_cpu(const float *ring, int64_t R, int64_t D, int64_t head, int64_t n, double *out);
/* out[j] = scale·Σ_{e<D} qsum[e]·k[j·ldk + e] for j < n, in fp64, e ascending. */
/* The release's scale for heads of d features: 1 / (√d · heads), the dot over all heads' features averaged over them. */
static inline double sf_pc_score_scale(int64_t d, int heads) { return 1.0 / (sqrt((double)d) * (double)heads); }
void sf_pc_scores_cpu(int64_t n, int64_t D, const float *k, int64_t ldk, const double *qsum, double scale, double *out);
/* idx[0..keep) ← the candidates j < n with the keep highest score[j] (a NaN counts as −∞; ties: the lower j) among
 * those with count[j] < max_reuse (all of them when max_reuse is 0 or count is NULL), in ascending order; when
 * fewer than keep qualify, the best of the others fill the rest, in the same order. Requires 0 ≤ keep ≤ n.
 * Returns how many of the chosen were such fills (0 when none), or −1 when out of memory (idx untouched). */
int64_t sf_pc_select_cpu(int64_t n, const double *score, const int32_t *count, int max_reuse, int64_t keep,
                         int32_t *idx);
/* After a selection of topc of n candidates (idx ascending): the old recent slots [n, n + old) follow the chosen,
 * idx[topc + i] ← n + i; then the counts move with their tokens, cnt[i] ← cnt[idx[i]] + (i < topc) for i < keep =
 * topc + old (in place: idx[i] ≥ i), and cnt[i] ← 0 for keep ≤ i < ncnt (the slots the block and later forwards fill
 * hold tokens never chosen). Indices and counts relative to the sink. Requires n + old ≤ ncnt. */
void sf_pc_finish_cpu(int64_t n, int64_t topc, int64_t old, int32_t *idx, int32_t *cnt, int64_t ncnt);

#endif
