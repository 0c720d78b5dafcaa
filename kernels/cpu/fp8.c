/* fp8.c — kernels/fp8.h: float8 e4m3fn rounding and per-tensor quantization, the CPU reference of
 * `--fp8` (kernels/cuda/fp8.cu is held to it). */
#include "fp8.h"
#include "parallel.h"
#include "tensor.h"

#include <math.h>
#include <string.h>

/* On the f32 bits (test_fp8 `from_f32` holds it to a frexp/nearbyint version over a sweep of the floats): a
 * normal keeps 3 mantissa bits, rounded half to even by adding 0x7FFFF plus the kept lsb (the carry moves into
 * the exponent: 0x..FFFFF rounds up to the next binade), and its exponent is re-biased from 127 to 7; a value
 * below 2^-6 is a whole number of 2^-9 steps, rounded by adding 2^23 to x·512 (8 steps: code 0x08, the first
 * normal). 448 and above (infinity too) saturate to 0x7E. */
uint8_t sf_fp8_e4m3_from_f32(float x) {
    uint32_t b, a;
    memcpy(&b, &x, 4);
    const uint8_t sign = (uint8_t)((b >> 24) & 0x80u);
    a = b & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint8_t)(sign | 0x7F); /* NaN */
    if (a >= 0x43E00000u) return (uint8_t)(sign | 0x7E); /* ≥ 448 */
    if (a < 0x3C800000u) {                               /* < 2^-6 */
        float f;
        memcpy(&f, &a, 4);
        volatile float t = f * 512.0f + 0x1p23f; /* volatile: the rounding add happens in f32 */
        return (uint8_t)(sign | (uint8_t)(t - 0x1p23f));
    }
    a = a + 0x7FFFFu + ((a >> 20) & 1u);
    return (uint8_t)(sign | (uint8_t)((((a >> 23) - 120u) << 3) | ((a >> 20) & 7u)));
}

/* A normal code's f32 bits are its fields re-biased (exponent 7 → 127, the 3 mantissa bits on top); a
 * subnormal is m·2^-9, exact in f32. test_fp8 `codes` holds every code to the format's definition. */
float sf_fp8_e4m3_to_f32(uint8_t c) {
    const uint32_t e = (c >> 3) & 15u, m = c & 7u;
    float v;
    if (e == 15 && m == 7) return NAN;
    if (e == 0) v = (float)m * (1.0f / 512.0f);
    else {
        const uint32_t b = ((e + 120u) << 23) | (m << 20);
        memcpy(&v, &b, 4);
    }
    return (c & 0x80) ? -v : v;
}

float sf_fp8_e4m3_round(float x) { return sf_fp8_e4m3_to_f32(sf_fp8_e4m3_from_f32(x)); }

uint8_t sf_fp8_e4m3_code(float x, float scale) {
    float v = x / scale;
    v = v > SF_FP8_E4M3_MAX ? SF_FP8_E4M3_MAX : v < -SF_FP8_E4M3_MAX ? -SF_FP8_E4M3_MAX : v;
    return sf_fp8_e4m3_from_f32(v);
}

float sf_fp8_scale(float amax) {
    float s = sf_round_bf16(amax / SF_FP8_E4M3_MAX);
    return (s > 0.0f && isfinite(s)) ? s : 1.0f;
}

float sf_fp8_amax_cpu(const float *x, int64_t rows, int64_t cols, int64_t ld) {
    float m = 0.0f;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float a = fabsf(sf_round_bf16(x[r * ld + c]));
            if (a > m) m = a;
        }
    return m;
}

void sf_fp8_quantize_cpu(const float *x, int64_t rows, int64_t cols, int64_t ld, float scale, float *q) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            q[r * cols + c] = sf_fp8_e4m3_to_f32(sf_fp8_e4m3_code(sf_round_bf16(x[r * ld + c]), scale));
        }
}

typedef struct rows_job {
    const float *x;
    int64_t cols, ld;
    float scale, *q, amax[64];
} rows_job;

static void amax_rows(void *ctx, int64_t lo, int64_t hi, int part) {
    rows_job *j = ctx;
    j->amax[part] = sf_fp8_amax_cpu(j->x + lo * j->ld, hi - lo, j->cols, j->ld);
}

static void quantize_rows(void *ctx, int64_t lo, int64_t hi) {
    const rows_job *j = ctx;
    sf_fp8_quantize_cpu(j->x + lo * j->ld, hi - lo, j->cols, j->ld, j->scale, j->q + lo * j->cols);
}

float sf_fp8_amax_cpu_mt(const float *x, int64_t rows, int64_t cols, int64_t ld, int nthreads) {
    rows_job j = {x, cols, ld, 1.0f, NULL, {0}};
    const int nt = nthreads < 1 ? 1 : nthreads > 64 ? 64 : nthreads;
    float m = 0.0f;
    sf_parallel_for_part(rows, nt, 16, amax_rows, &j);
    for (int p = 0; p < nt; p++) m = j.amax[p] > m ? j.amax[p] : m; /* max: the same for any split */
    return m;
}

void sf_fp8_quantize_cpu_mt(const float *x, int64_t rows, int64_t cols, int64_t ld, float scale, float *q, int nthreads) {
    rows_job j = {x, cols, ld, scale, q, {0}};
    sf_parallel_for(rows, nthreads < 1 ? 1 : nthreads, 16, quantize_rows, &j);
}

int sf_fp8_eligible(int64_t n, int64_t k) { return n > 0 && k > 0 && n % 16 == 0 && k % 16 == 0; }
