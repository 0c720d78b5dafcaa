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

/* x0 = float32(float64(xt) − σ·float64(flow)), σ = float64(sigmas[index_f64(t)]). n elements. */
void sf_scheduler_flow_to_x0(const sf_scheduler *s, const float *xt, const float *flow, int64_t n, float t, float *x0);
/* out = (1 − σ)·x0 + σ·noise in float32, σ = sigmas[index_f32(t)]. n elements; out may alias x0. */
void sf_scheduler_add_noise(const sf_scheduler *s, const float *x0, const float *noise, int64_t n, float t, float *out);

#endif
