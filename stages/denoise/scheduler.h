/* scheduler.h — the flow-matching schedule used at inference (FlowMatchScheduler with
 * shift, sigma_min 0, extra_one_step, set_timesteps(1000, training=True)), the warped
 * denoising step list, add_noise and the flow → x0 conversion.
 * Mirrors utils/scheduler.py, pipeline/causal_inference.py (warp) and
 * utils/wan_wrapper.py _convert_flow_pred_to_x0. Tested by tests/unit/test_scheduler.c
 * (bit-exact against expect/scheduler.safetensors). */
#ifndef SF_SCHEDULER_H
#define SF_SCHEDULER_H

#include "sf.h"

#define SF_SCHED_N 1000

typedef struct sf_scheduler {
    double shift;
    float sigmas[SF_SCHED_N];    /* descending 1.0 → 0.00498 (shift 5), float32 */
    float timesteps[SF_SCHED_N]; /* sigmas·1000, float32 */
} sf_scheduler;

sf_status sf_scheduler_init(sf_scheduler *s, double shift, sf_err *err);

/* Step list: raw (e.g. 1000 750 500 250) → float32 timesteps. With warp, t = [timesteps ++ 0][1000 − raw]
 * (raw must be in [0, 1000]); without, t = raw. */
sf_status sf_scheduler_steps(const sf_scheduler *s, const double *raw, int n, int warp, float *out, sf_err *err);

/* argmin_i |timesteps[i] − t| (first on ties), in float64 / float32 as the two reference users do. */
int sf_scheduler_index_f64(const sf_scheduler *s, double t);
int sf_scheduler_index_f32(const sf_scheduler *s, float t);

/* The σ each conversion uses: flow → x0 looks t up in float64, add_noise in float32 (the two
 * reference call sites differ; SPEC §4.3). */
double sf_scheduler_sigma_x0(const sf_scheduler *s, float t);
float sf_scheduler_sigma_noise(const sf_scheduler *s, float t);

/* The element-wise cores (CPU references of sf_flow_to_x0_cuda / sf_add_noise_cuda, kernels/cuda_ops.h):
 *   x0  = float32(float64(xt) − σ·float64(flow))          (σ = sf_scheduler_sigma_x0)
 *   out = (1 − σ)·x0 + σ·noise, float32, each product rounded, then the sum  (σ = sf_scheduler_sigma_noise)
 * n elements; out may alias x0 or noise, x0 may alias xt or flow. */
void sf_flow_to_x0_cpu(const float *xt, const float *flow, int64_t n, double sigma, float *x0);
void sf_add_noise_cpu(const float *x0, const float *noise, int64_t n, float sigma, float *out);

/* x0 = float32(float64(xt) − σ·float64(flow)), σ = float64(sigmas[index_f64(t)]). n elements. */
void sf_scheduler_flow_to_x0(const sf_scheduler *s, const float *xt, const float *flow, int64_t n, float t, float *x0);
/* out = (1 − σ)·x0 + σ·noise in float32, σ = sigmas[index_f32(t)]. n elements; out may alias x0. */
void sf_scheduler_add_noise(const sf_scheduler *s, const float *x0, const float *noise, int64_t n, float t, float *out);

#endif
