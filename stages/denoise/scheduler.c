/* scheduler.c — flow-matching schedule, warped steps, add_noise, flow → x0 (see scheduler.h).
 * Mirrors utils/scheduler.py FlowMatchScheduler and torch's CPU float32 linspace (the first half
 * counts up from start, the second half down from end). Tested by tests/unit/test_scheduler.c. */
#include "scheduler.h"

#include <math.h>

sf_status sf_scheduler_init(sf_scheduler *s, double shift, sf_err *err) {
    if (!(shift > 0) || !isfinite(shift)) return sf_fail(err, SF_E_ARG, "timestep_shift must be positive");
    s->shift = shift;
    /* torch.linspace(1.0, 0.0, 1001) in float32, last point dropped (extra_one_step), bit-exact
     * with torch's CPU (AVX2) kernel: step = (end − start)/(steps − 1) in f32; vectors of 8 start at
     * base = start + step·idx0 (first half, idx0 < steps/2) or end − step·(steps − idx0 − 1), each
     * rounded once (the product is exact in double); lanes are base + j·step in f32; the loop runs
     * over pairs of vectors, the remainder (< 16) uses the scalar formula. */
    const int steps = SF_SCHED_N + 1, half = steps / 2, nv = steps / 16 * 16;
    const float step = (0.0f - 1.0f) / (float)(steps - 1);
    const float fs = (float)shift, fs1 = (float)(shift - 1.0);
    float lin[SF_SCHED_N + 1];
    for (int i0 = 0; i0 < nv; i0 += 8) {
        float base = i0 < half ? (float)(1.0 + (double)step * i0) : (float)(0.0 - (double)step * (steps - i0 - 1));
        for (int j = 0; j < 8; j++) lin[i0 + j] = base + (float)j * step;
    }
    for (int i = nv; i < steps; i++)
        lin[i] = i < half ? (float)(1.0 + (double)step * i) : (float)(0.0 - (double)step * (steps - i - 1));
    for (int i = 0; i < SF_SCHED_N; i++) {
        float sg = fs * lin[i];
        sg = sg / (1.0f + fs1 * lin[i]);
        s->sigmas[i] = sg;
        s->timesteps[i] = sg * 1000.0f;
    }
    return SF_OK;
}

sf_status sf_scheduler_steps(const sf_scheduler *s, const double *raw, int n, int warp, float *out, sf_err *err) {
    for (int i = 0; i < n; i++) {
        if (!warp) {
            out[i] = (float)raw[i];
            continue;
        }
        double r = raw[i];
        if (r != floor(r) || r < 0 || r > SF_SCHED_N)
            return sf_fail(err, SF_E_ARG, "denoising_step_list entry %g must be an integer in [0, 1000] to warp", r);
        int idx = SF_SCHED_N - (int)r;
        out[i] = idx == SF_SCHED_N ? 0.0f : s->timesteps[idx];
    }
    return SF_OK;
}

int sf_scheduler_index_f64(const sf_scheduler *s, double t) {
    int best = 0;
    double bd = INFINITY;
    for (int i = 0; i < SF_SCHED_N; i++) {
        double d = fabs((double)s->timesteps[i] - t);
        if (d < bd) { bd = d; best = i; }
    }
    return best;
}

int sf_scheduler_index_f32(const sf_scheduler *s, float t) {
    int best = 0;
    float bd = INFINITY;
    for (int i = 0; i < SF_SCHED_N; i++) {
        float d = fabsf(s->timesteps[i] - t);
        if (d < bd) { bd = d; best = i; }
    }
    return best;
}

double sf_scheduler_sigma_x0(const sf_scheduler *s, float t) {
    return (double)s->sigmas[sf_scheduler_index_f64(s, (double)t)];
}

float sf_scheduler_sigma_noise(const sf_scheduler *s, float t) { return s->sigmas[sf_scheduler_index_f32(s, t)]; }

void sf_flow_to_x0_cpu(const float *xt, const float *flow, int64_t n, double sigma, float *x0) {
    for (int64_t i = 0; i < n; i++) x0[i] = (float)((double)xt[i] - sigma * (double)flow[i]);
}

void sf_add_noise_cpu(const float *x0, const float *noise, int64_t n, float sigma, float *out) {
    const float one = 1.0f - sigma;
    for (int64_t i = 0; i < n; i++) {
        float a = one * x0[i], b = sigma * noise[i];
        out[i] = a + b;
    }
}

void sf_scheduler_flow_to_x0(const sf_scheduler *s, const float *xt, const float *flow, int64_t n, float t, float *x0) {
    sf_flow_to_x0_cpu(xt, flow, n, sf_scheduler_sigma_x0(s, t), x0);
}

void sf_scheduler_add_noise(const sf_scheduler *s, const float *x0, const float *noise, int64_t n, float t, float *out) {
    sf_add_noise_cpu(x0, noise, n, sf_scheduler_sigma_noise(s, t), out);
}
