/* dnnl_bf16.c — sf_dnnl_to_bf16 and sf_dnnl_split3_bf16 (dnnl_ops.h): the f32 → bf16 roundings that
 * feed oneDNN's bf16 products; plain C, so it is built with and without oneDNN (DNNL=0). Tested by
 * test_kernels. */
#include "dnnl_ops.h"

#include <string.h>

void sf_dnnl_to_bf16(const float *src, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) { /* branch-free: GCC vectorises it */
        uint32_t u;
        memcpy(&u, &src[i], 4);
        uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        dst[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? ((u >> 16) | 0x40u) : r);
    }
}

/* x = hi + mid + lo: each piece the bf16 rounding of what the previous ones leave (the differences are
 * exact in f32). A non-finite x gives hi = x (its bf16) and mid = lo = 0. */
void sf_dnnl_split3_bf16(const float *src, uint16_t *hi, uint16_t *mid, uint16_t *lo, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u, m;
        memcpy(&u, &src[i], 4);
        const int fin = (u & 0x7f800000u) != 0x7f800000u;
        uint32_t h = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        h = fin ? h : (u >> 16) | ((u & 0x7fffffffu) > 0x7f800000u ? 0x40u : 0u);
        float fh, r1, fm;
        m = h << 16;
        memcpy(&fh, &m, 4);
        r1 = fin ? src[i] - fh : 0.0f;
        memcpy(&u, &r1, 4);
        const uint32_t md = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        m = md << 16;
        memcpy(&fm, &m, 4);
        const float r2 = r1 - fm;
        memcpy(&u, &r2, 4);
        hi[i] = (uint16_t)h;
        mid[i] = (uint16_t)md;
        lo[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}
