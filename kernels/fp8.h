/* fp8.h — float8 (e4m3fn) per-tensor quantization of a linear layer's operands: `sf-denoise --fp8`.
 *
 * What the reference's live demo does with its "FP8" switch (demo.py: torchao's
 * Float8DynamicActivationFloat8WeightConfig(granularity=PerTensor()) on the transformer), here on the
 * bf16 model that inference.py runs:
 *   weight W (bf16, [n, k]):  s_w = ⌊max|W| / 448⌉_bf16,  W8 = e4m3(clamp(W / s_w, ±448))   (once)
 *   input  X (bf16, [M, k]):  s_x = ⌊max|X| / 448⌉_bf16,  X8 = e4m3(clamp(X / s_x, ±448))   (every call)
 *   Y = ⌊ s_x·s_w·(X8 · W8ᵀ) + b ⌉_bf16                  (torch._scaled_mm: fp32 accumulation, bias epilogue)
 * e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; largest finite 448, smallest subnormal 2⁻⁹, no
 * infinities, S.1111.111 is NaN; conversion rounds to nearest, ties to even. The scale is computed in the
 * tensor's dtype (bf16) as torchao does, then widened to f32; the division X / s is an f32 division.
 * A layer qualifies when n and k are multiples of 16 (torchao's _fp8_mm_compat; others stay bf16).
 * Where torchao divides 0 by 0 (an all-zero tensor: scale 0, NaN values), the scale here is 1 and the
 * values are 0 — the product is then exactly the bias.
 * Values on the e4m3 grid are exact in bf16 and f32: the CPU path keeps them as bf16 / f32 numbers and
 * runs its ordinary products on them; the GPU path stores the 8-bit codes (kernels/cuda/fp8.cu).
 * Written here because no C library in Debian converts to float8 (the device side uses cuda_fp8.h's
 * conversion, held to this one bit for bit by test_fp8_emu / test_fp8_cuda).
 * Tested by tests/unit/test_fp8.c (every code, ties, saturation, the scale's rounding) and, through the
 * DiT, against tests/golden/expect/dit_fp8.safetensors (tests/heldout/make_fp8_golden.py). */
#ifndef SF_FP8_H
#define SF_FP8_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SF_FP8_E4M3_MAX 448.0f

/* Round x to the nearest e4m3fn value (ties to even), saturating to ±448; NaN → 0x7F. -0 → 0x80. */
uint8_t sf_fp8_e4m3_from_f32(float x);
/* The value of an e4m3fn code (0x7F / 0xFF: NaN). */
float sf_fp8_e4m3_to_f32(uint8_t c);
/* x rounded to the e4m3fn grid: sf_fp8_e4m3_to_f32(sf_fp8_e4m3_from_f32(x)). */
float sf_fp8_e4m3_round(float x);
/* One value's code at a scale: e4m3(clamp(x / scale, ±448)), the f32 division (NaN passes the clamp). */
uint8_t sf_fp8_e4m3_code(float x, float scale);
/* A per-tensor scale from the tensor's largest magnitude: ⌊amax / 448⌉_bf16 (1 when that is 0 or not finite). */
float sf_fp8_scale(float amax);
/* max |⌊x⌉_bf16| over rows × cols (row stride ld): the amax of the tensor as the bf16 model holds it. */
float sf_fp8_amax_cpu(const float *x, int64_t rows, int64_t cols, int64_t ld);
/* q[r·cols + c] = e4m3 value of clamp(⌊x[r·ld + c]⌉_bf16 / scale, ±448), as f32 (dense rows of cols). */
void sf_fp8_quantize_cpu(const float *x, int64_t rows, int64_t cols, int64_t ld, float scale, float *q);
/* The same two on up to nthreads threads (rows split among them): the same values for any nthreads. */
float sf_fp8_amax_cpu_mt(const float *x, int64_t rows, int64_t cols, int64_t ld, int nthreads);
void sf_fp8_quantize_cpu_mt(const float *x, int64_t rows, int64_t cols, int64_t ld, float scale, float *q, int nthreads);
/* 1 when a [n, k] weight is quantized (n % 16 == 0 and k % 16 == 0), as torchao decides. */
int sf_fp8_eligible(int64_t n, int64_t k);

#ifdef __cplusplus
}
#endif

#endif
