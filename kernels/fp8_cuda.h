/* fp8_cuda.h — the GPU half of `--fp8` (numerics: kernels/fp8.h, CPU reference kernels/cpu/fp8.c):
 * a bf16 activation quantized to float8 e4m3fn with its per-tensor scale made on the device, and the
 * float8 linear layer through cuBLASLt's FP8 GEMM (kernels/blaslt_cuda.h, sf_mm.fp8).
 *
 * Everything is enqueued on ctx->stream without a host wait, and legal inside a CUDA graph capture
 * (kernels/cuda_graph.h): the scale never leaves the device, cuBLASLt reads it through a pointer.
 * Implemented in kernels/cuda/fp8.cu; CPU-only builds link stubs (kernels/nocuda/nocuda.c).
 * Tested by tests/unit/test_fp8_cuda.c (test_fp8_emu on the CPU emulation, test_fp8_cuda on a GPU):
 * codes and scale bit for bit against sf_fp8_amax_cpu / sf_fp8_scale / sf_fp8_quantize_cpu, the FP8
 * linear against the CPU product on the same e4m3 values. */
#ifndef SF_FP8_CUDA_H
#define SF_FP8_CUDA_H

#include "cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x: (rows, cols) bf16 device, row stride ldx ≥ cols. codes: (rows, cols) e4m3fn bytes, dense, device.
 * scale: one f32 of device memory: s = ⌊max|x| / 448⌉_bf16 (1 when 0 or not finite), and
 * codes = e4m3(clamp(x / s, ±448)) (an f32 division, round to nearest even, saturating) — the codes of
 * sf_fp8_quantize_cpu and the scale of sf_fp8_scale(sf_fp8_amax_cpu(...)), bit for bit. The scale's
 * float is also the amax's accumulator while the work runs (no other scratch): four launches (zero,
 * per-block max + atomicMax on the float's bits, codes, scale), no host wait. rows 0: nothing. */
sf_status sf_fp8_quantize_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t cols, const void *x, int64_t ldx,
                               void *codes, float *scale, sf_err *err);

/* The FP8 linear layer: y = ⌊ sx·sw·(X8 · W8ᵀ) + b ⌉ [GELU-tanh of the f32 value before the rounding].
 * x8: (M, K) e4m3 codes, dense (sf_fp8_quantize_cuda); sx: its device scale. w8: (N, K) e4m3 codes
 * row-major as stored; sw: its device scale. bias: (N) bf16 device or NULL. y: (M, N) bf16, row stride
 * ldy ≥ N. fp32 accumulation with cuBLASLt's fast accumulation (torchao's use_fast_accum=True).
 * K and N multiples of 16 (cuBLASLt's FP8 rule, sf_fp8_eligible), else SF_E_ARG. No algorithm for the
 * shape (or the GELU epilogue in FP8): SF_E_UNSUPPORTED, nothing enqueued. */
sf_status sf_linear_fp8_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x8, const float *sx,
                             const void *w8, const float *sw, const void *bias, int gelu, void *y, int64_t ldy,
                             sf_err *err);

#ifdef __cplusplus
}
#endif
#endif
