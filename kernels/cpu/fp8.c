/* fp8.c — kernels/fp8.h: float8 e4m3fn rounding and per-tensor quantization, the CPU reference of
 * `--fp8` (kernels/cuda/fp8.cu is held to it). */
#include "fp8.h"
#include "tensor.h"

#include <math.h>
#include <string.h>

uint8_t sf_fp8_e4m3_from_f32(float x) {
    const uint8_t sign = signbit(x) ? 0x80 : 0;
    double a = fabs((double)x);
    if (isnan(x)) return (uint8_t)(sign | 0x7F);
    if (a >= (double)SF_FP8_E4M3_MAX) return (uint8_t)(sign | 0x7E);
    if (a < 0.015625) /* below 2^-6: subnormal steps of 2^-9; 8 steps is the first normal, code 0x08 */
        return (uint8_t)(sign | (uint8_t)nearbyint(a * 512.0));
    int e2;
    (void)frexp(a, &e2);              /* a = f·2^e2, f in [0.5, 1): exponent of a is e2 − 1 */
    int ex = e2 - 1;                  /* -6 .. 8 */
    double q = nearbyint(ldexp(a, 3 - ex)); /* 8 .. 16 mantissa steps of 2^(ex−3), ties to even */
    if (q >= 16.0) q = 8.0, ex++;
    return (uint8_t)(sign | (uint8_t)((ex + 7) << 3) | (uint8_t)(q - 8.0));
}

float sf_fp8_e4m3_to_f32(uint8_t c) {
    const int e = (c >> 3) & 15, m = c & 7;
    float v;
    if (e == 15 && m == 7) return NAN;
    v = e == 0 ? ldexpf((float)m, -9) : ldexpf((float)(8 + m), e - 10);
    return (c & 0x80) ? -v : v;
}

/* The same value as sf_fp8_e4m3_to_f32(sf_fp8_e4m3_from_f32(x)) (test_fp8 `round_fast` sweeps the floats),
 * on the f32 bits: a normal keeps 3 mantissa bits (round half to even by adding 0x7FFFF plus the kept lsb,
 * the carry moving into the exponent), a subnormal rounds to whole steps of 2^-9 by adding 2^23 to x·512. */
float sf_fp8_e4m3_round(float x) {
    float a = fabsf(x);
    if (!(a == a)) return x;
    if (a >= SF_FP8_E4M3_MAX) a = SF_FP8_E4M3_MAX;
    else if (a >= 0.015625f) {
        uint32_t b;
        memcpy(&b, &a, 4);
        b = (b + 0x7FFFFu + ((b >> 20) & 1u)) & ~0xFFFFFu;
        memcpy(&a, &b, 4);
    } else {
        volatile float t = a * 512.0f + 0x1p23f; /* volatile: the rounding add must happen in f32 */
        a = (t - 0x1p23f) * (1.0f / 512.0f);
    }
    return signbit(x) ? -a : a;
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
            float v = sf_round_bf16(x[r * ld + c]) / scale;
            v = v > SF_FP8_E4M3_MAX ? SF_FP8_E4M3_MAX : v < -SF_FP8_E4M3_MAX ? -SF_FP8_E4M3_MAX : v;
            q[r * cols + c] = sf_fp8_e4m3_round(v);
        }
}

int sf_fp8_eligible(int64_t n, int64_t k) { return n > 0 && k > 0 && n % 16 == 0 && k % 16 == 0; }
