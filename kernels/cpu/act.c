/* act.c — SiLU and GELU-tanh on f32 (see act.h). Mirrors torch.nn.SiLU / nn.GELU('tanh') in
 * float32 (the transcendental is evaluated in double and rounded once).
 * Tested by tests/unit/test_kernels.c (values) and tests/unit/test_vae_kernels.c (threaded GELU
 * = single-threaded GELU bit for bit). */
#include "act.h"
#include "dnnl_ops.h"
#include "parallel.h"

#include <math.h>

void sf_silu_cpu(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = sf_silu1(x[i]);
}

static void gelu_range(void *ctx, int64_t b, int64_t e) {
    float *x = ctx;
    for (int64_t i = b; i < e; i++) x[i] = (float)sf_gelu_tanh(x[i]);
}

void sf_gelu_tanh_cpu(float *x, int64_t n) {
    if (n > 0) gelu_range(x, 0, n);
}

void sf_gelu_tanh_mt_cpu(float *x, int64_t n, int nthreads) {
    /* fast / bf16 modes: oneDNN's vectorised GELU (the double tanh per element was ~10 % of the DiT) */
    if (n > 0 && sf_cpu_mode_now() != SF_CPU_EXACT && sf_dnnl_gelu_tanh(x, n, nthreads) == 0) return;
    if (n > 0) sf_parallel_for(n, nthreads, 1 << 14, gelu_range, x); /* elementwise: same bits */
}
