/* taehv_ops.c — CPU reference of kernels/taehv_ops.h: the TAEHV decoder's clamp, ReLU, MemBlock input
 * concatenation with its memory update, and the output mapping to the signed video range.
 *
 * Mirrors demo_utils/taehv.py (Clamp: torch.tanh(x / 3) * 3; nn.ReLU; MemBlock's torch.cat([x, past], 1)
 * and the sequential decode's mem update) and demo.py (decode(...).mul_(2).sub_(1)). Tested by
 * tests/unit/test_taehv.c and through the TAEHV golden tests. */
#include "taehv_ops.h"

#include <math.h>
#include <string.h>

void sf_taehv_clamp_cpu(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i] / 3.0f) * 3.0f;
}

void sf_relu_cpu(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (x[i] < 0.0f) x[i] = 0.0f; /* NaN and −0 compare false: kept, as torch.relu keeps them */
}

void sf_taehv_cat_roll_cpu(const float *x, float *past, float *cat, int64_t C, int64_t HW) {
    const size_t n = (size_t)(C * HW);
    memcpy(cat, x, n * sizeof(float));
    memcpy(cat + n, past, n * sizeof(float));
    memcpy(past, x, n * sizeof(float));
}

void sf_taehv_to_signed_cpu(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * 2.0f - 1.0f;
}
