/* tap_mass.h — exact post-softmax attention mass aggregated over key groups (the attention-sink
 * workbench's --tap-mode probs and --tap-cross).
 *
 * For one attention with logits s[h, r, j] = (q_r·k_j)·scale (f32), j < Lk, per row:
 *   m = max_j s,  Z = Σ_j exp(s_j − m)  (expf terms, double sum),  lse = m + log Z,
 *   rowmass[h, r, g] = Σ_{j ∈ group g} exp(s_j − m) / Z   (double sum, stored f32),
 * groups g < NG of G consecutive keys covering [0, NG·G) ⊆ [0, Lk): key frames (G = tokens per
 * frame, NG = Lk/G) for the self-attention, single real text tokens (G = 1, NG = real tokens,
 * the padding keys left out of the groups but in Z) for the cross-attention.
 * Reduced per query frame of S rows (QF = Lq/S), in double, fixed order:
 *   out[h, qf, g]  = mean over the frame's rows of rowmass (renorm: each row first divided by
 *                    its Σ_g rowmass, so out rows sum to 1 over the groups);
 *   stats[h, qf, :] = (mean, min, max of lse over the frame's rows, mean of Σ_g rowmass) — the
 *                    last is the mass the groups hold before any renormalisation (1 for key
 *                    frames up to rounding; the real tokens' share for the cross-attention).
 * Layouts: rowmass (H, Lq, NG), lse (H, Lq), out (H, QF, NG), stats (H, QF, SF_TAP_NSTATS), f32.
 * CPU reference here (kernels/cpu/tap_mass.c); the GPU version (kernels/cuda/tap_mass.cu) reduces
 * the explicit attention's logits chunk by chunk, never holding all of them. Tested by
 * tests/unit/test_tap_mass.c (against logits captured whole) and test_cuda_emu (GPU vs CPU). */
#ifndef SF_TAP_MASS_H
#define SF_TAP_MASS_H

#include <stdint.h>

#define SF_TAP_NSTATS 4

/* One row: s[0..Lk) → mass[0..NG), *lse. Needs NG·G ≤ Lk, Lk ≥ 1. */
void sf_tap_row_mass_cpu(const float *s, int64_t Lk, int64_t G, int64_t NG, float *mass, float *lse);

/* Single-token masses from the row's log-sum-exp (the GPU's tokens mode: the attention makes lse, one small
 * GEMM the logits of the first NG keys): s (n, NG) f32 in place → exp(s − lse[i / NG]) (expf), n = rows.
 * Equal to sf_tap_row_mass_cpu's G = 1 masses up to rounding (exp(s − m) / Z with lse = m + log Z). */
void sf_tap_token_mass_cpu(int64_t rows, int64_t NG, const float *lse, float *s);

/* rowmass / lse of H·Lq rows → out / stats (see above). Needs Lq a multiple of S. Returns 0, or
 * -1 when its NG doubles of scratch could not be allocated (nothing written). */
int sf_tap_mass_reduce_cpu(int H, int64_t Lq, int64_t NG, int64_t S, int renorm, const float *rowmass,
                           const float *lse, float *out, float *stats);

/* The whole aggregate from q (Lq, H, d) stride ldq and k (Lk, H, d) stride ldk, f32: each row's
 * logits (one dot product over d in order, times scale) then the two steps above. Scratch is
 * allocated here; returns 0, or -1 when it could not be (nothing written). Parallel over rows;
 * the result does not depend on nthreads. */
int sf_tap_mass_cpu(int64_t Lq, int64_t Lk, int H, int d, const float *q, int64_t ldq, const float *k, int64_t ldk,
                    float scale, int64_t G, int64_t NG, int64_t S, int renorm, float *out, float *stats, int nthreads);

/* Frames mode (--tap-mode frames): the mean logit of query frame qf over key frame kf is bilinear,
 * mean_{r∈qf, j∈kf} (q_r·k_j)·scale = (mean_r q_r)·(mean_j k_j)·scale, so per-frame means are all it
 * needs. means[f·D + c] = (Σ_{t<S} x[(f·S + t)·ld + c]) / S for f < nframes, c < D: a double sum in
 * token order, then one division. The GPU's (sf_frame_means_cuda) is bit for bit the same. */
void sf_frame_means_cpu(int64_t nframes, int64_t S, int64_t D, const float *x, int64_t ld, double *means);
/* The frames-mode aggregate from those means, D = H·d: out[(h·QF + qf)·KF + kf] =
 * (float)((Σ_{i<d} qm[qf·D + h·d + i]·km[kf·D + h·d + i]) · scale), the products and sum in double in
 * i order. The GPU's (sf_frame_logit_means_cuda) is bit for bit the same. */
void sf_frame_logit_means_cpu(int H, int64_t d, int64_t QF, int64_t KF, const double *qm, const double *km,
                              double scale, float *out);

#endif
