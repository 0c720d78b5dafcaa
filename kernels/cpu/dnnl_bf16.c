/* dnnl_bf16.c — sf_dnnl_to_bf16 and sf_dnnl_split3_bf16 (dnnl_ops.h): the f32 → bf16 roundings that
 * feed oneDNN's bf16 products, 8 lanes at a time in a baseline and an AVX2 variant (bf16_cvt.inc, the
 * same bits); plain C, so it is built with and without oneDNN (DNNL=0). Tested by test_kernels
 * (split3_bf16, to_bf16_variants). */
#include "dnnl_ops.h"
#include "parallel.h"

#include <string.h>

#pragma GCC diagnostic ignored "-Wpsabi" /* static vector helpers: no ABI */

typedef uint32_t u32x8 __attribute__((vector_size(32)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef uint16_t u16x8 __attribute__((vector_size(16)));

#define SF_VARIANT_FILE "bf16_cvt.inc"
#define SF_VARIANT_ISA sf_bf16_cvt_isa
#include "simd_variants.h"

void sf_dnnl_to_bf16(const float *src, uint16_t *dst, int64_t n) {
#ifdef SF_HAVE_AVX2_PATH
    if (sf_cpu_use_avx2()) {
        to_bf16_v_avx2(src, dst, n);
        return;
    }
#endif
    to_bf16_v_base(src, dst, n);
}

/* x = hi + mid + lo: each piece the bf16 rounding of what the previous ones leave (the differences are
 * exact in f32). A non-finite x gives hi = x (its bf16) and mid = lo = 0. */
void sf_dnnl_split3_bf16(const float *src, uint16_t *hi, uint16_t *mid, uint16_t *lo, int64_t n) {
#ifdef SF_HAVE_AVX2_PATH
    if (sf_cpu_use_avx2()) {
        split3_v_avx2(src, hi, mid, lo, n);
        return;
    }
#endif
    split3_v_base(src, hi, mid, lo, n);
}
