/* dnnl_bf16.c — the plain-C operand preparation for oneDNN (dnnl_ops.h), built with and without oneDNN
 * (DNNL=0): sf_dnnl_to_bf16 and sf_dnnl_split3_bf16, the f32 → bf16 roundings that feed its bf16
 * products, 8 lanes at a time in a baseline and an AVX2 variant (bf16_cvt.inc, the same bits; tested
 * by test_kernels split3_bf16, to_bf16_variants), and sf_dnnl_to_blocked16, the f32 convolution's
 * input layout (test_vae_kernels fast_conv3d_blocked). */
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

/* ---- the f32 convolution's input layout ---------------------------------------------------
 * A planar frame [C, HW] into the 16-channel blocked layout, channel block cb at dst + cb·cbs:
 * [HW][16] per block. oneDNN's reorder into a depth slice of the blocked source ran its generic
 * jit:uni kernel (4.1 ms for 192 × 120×208); this plain loop over tiles of 16 channel rows × 2048
 * pixels takes 0.8 ms (an AVX2 8×8-transpose version measured 0.74: not worth its intrinsics). Data
 * movement only, so the bits are the same. */
typedef struct blk_job {
    const float *src;
    float *dst;
    int64_t HW, cbs, chunk; /* pixels per item */
    int64_t nchunks;
} blk_job;

static void blk_range(void *ctx, int64_t b, int64_t e) {
    const blk_job *j = ctx;
    for (int64_t it = b; it < e; it++) {
        const int64_t cb = it / j->nchunks, p0 = (it % j->nchunks) * j->chunk;
        const int64_t p1 = p0 + j->chunk < j->HW ? p0 + j->chunk : j->HW;
        const float *rows[16];
        for (int i = 0; i < 16; i++) rows[i] = j->src + (cb * 16 + i) * j->HW;
        float *out = j->dst + cb * j->cbs;
        for (int64_t p = p0; p < p1; p++)
            for (int i = 0; i < 16; i++) out[p * 16 + i] = rows[i][p];
    }
}

void sf_dnnl_to_blocked16(const float *src, int64_t C, int64_t HW, float *dst, int64_t cbs, int nthreads) {
    if (C <= 0 || HW <= 0) return;
    blk_job j = {src, dst, HW, cbs, 2048, (HW + 2047) / 2048};
    sf_parallel_for(C / 16 * j.nchunks, nthreads, 1, blk_range, &j);
}
