/* dnnl_bf16.c — sf_dnnl_to_bf16 (dnnl_ops.h): the f32 → bf16 rounding that feeds oneDNN's bf16
 * products; plain C, so it is built with and without oneDNN (DNNL=0). Tested by test_kernels. */
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
