/* modulate.c — per-frame shift/scale modulation and gated residual add (see modulate.h).
 * Tested by tests/unit/test_kernels.c. */
#include "modulate.h"
#include "tensor.h"

void sf_modulate_cpu(int F, int64_t S, int64_t D, const float *x, const float *shift, const float *scale,
                     int64_t fstride, float *y) {
    for (int f = 0; f < F; f++) {
        const float *sh = shift + (int64_t)f * fstride, *sc = scale + (int64_t)f * fstride;
        for (int64_t t = 0; t < S; t++) {
            int64_t r = ((int64_t)f * S + t) * D;
            for (int64_t c = 0; c < D; c++) {
                float one_sc = 1.0f + sc[c];
                y[r + c] = x[r + c] * one_sc + sh[c];
            }
        }
    }
}

void sf_gated_add_cpu(int F, int64_t S, int64_t D, float *x, const float *y, const float *gate, int64_t fstride) {
    for (int f = 0; f < F; f++) {
        const float *g = gate + (int64_t)f * fstride;
        for (int64_t t = 0; t < S; t++) {
            int64_t r = ((int64_t)f * S + t) * D;
            for (int64_t c = 0; c < D; c++) x[r + c] = x[r + c] + y[r + c] * g[c];
        }
    }
}

void sf_mod_table_cpu(int F, int64_t n, const float *mod, const float *e, int64_t lde, int64_t period, float *out) {
    for (int f = 0; f < F; f++)
        for (int64_t i = 0; i < n; i++) out[f * n + i] = sf_round_bf16(mod[i] + e[f * lde + i % period]);
}
