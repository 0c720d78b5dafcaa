/* nocuda.c — the CUDA entry points of a CPU-only build (no nvcc at build time): each one
 * reports that CUDA is not compiled in, so --device cuda fails with a clear message.
 * Also stubs every function of kernels/cuda_ops.h (SF_E_DEVICE). Tested by tests/unit/test_cuda_kernels.c. */
#include "cuda_ops.h"
#include "device.h"

#include <string.h>

int sf_cuda_compiled(void) { return 0; }

sf_status sf_cuda_device_count(int *count, sf_err *err) {
    *count = 0;
    return sf_fail(err, SF_E_DEVICE, "this build has no CUDA support (rebuild with nvcc on PATH)");
}

sf_status sf_cuda_describe(int ordinal, char *buf, size_t n, sf_err *err) {
    (void)ordinal;
    if (n) buf[0] = 0;
    return sf_fail(err, SF_E_DEVICE, "this build has no CUDA support (rebuild with nvcc on PATH)");
}

/* kernels/cuda_ops.h: the CUDA context, memory helpers and kernels — all unavailable here. */
#define SF_NO_CUDA(err) sf_fail(err, SF_E_DEVICE, "this build has no CUDA support (rebuild with nvcc on PATH)")

sf_status sf_cuda_ctx_init(sf_cuda_ctx *ctx, int ordinal, sf_err *err) {
    (void)ordinal;
    memset(ctx, 0, sizeof *ctx);
    return SF_NO_CUDA(err);
}

void sf_cuda_ctx_free(sf_cuda_ctx *ctx) {
    if (ctx) memset(ctx, 0, sizeof *ctx);
}

sf_status sf_cuda_sync(const sf_cuda_ctx *ctx, sf_err *err) {
    (void)ctx;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_malloc(void **dev, size_t bytes, sf_err *err) {
    (void)bytes;
    *dev = NULL;
    return SF_NO_CUDA(err);
}

void sf_cuda_free(void *dev) { (void)dev; }

sf_status sf_cuda_copy_h2d(const sf_cuda_ctx *ctx, void *dev, const void *host, size_t bytes, sf_err *err) {
    (void)ctx, (void)dev, (void)host, (void)bytes;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_copy_d2h(const sf_cuda_ctx *ctx, void *host, const void *dev, size_t bytes, sf_err *err) {
    (void)ctx, (void)host, (void)dev, (void)bytes;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_memset(const sf_cuda_ctx *ctx, void *dev, int byte, size_t bytes, sf_err *err) {
    (void)ctx, (void)dev, (void)byte, (void)bytes;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_upload_f32(const sf_cuda_ctx *ctx, void *dev, const float *host, size_t n, sf_err *err) {
    (void)ctx, (void)dev, (void)host, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_upload_bf16(const sf_cuda_ctx *ctx, void *dev, const float *host, size_t n, sf_err *err) {
    (void)ctx, (void)dev, (void)host, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_download_f32(const sf_cuda_ctx *ctx, float *host, const void *dev, size_t n, sf_err *err) {
    (void)ctx, (void)host, (void)dev, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_download_bf16(const sf_cuda_ctx *ctx, float *host, const void *dev, size_t n, sf_err *err) {
    (void)ctx, (void)host, (void)dev, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_gemm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x, int64_t ldx,
                       const void *w, const float *bias, void *y, sf_dtype ydt, int64_t ldy, sf_err *err) {
    (void)ctx, (void)M, (void)N, (void)K, (void)x, (void)ldx, (void)w, (void)bias, (void)y, (void)ydt, (void)ldy;
    return SF_NO_CUDA(err);
}

sf_status sf_rmsnorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx, const float *w,
                          double eps, void *y, int64_t ldy, sf_err *err) {
    (void)ctx, (void)M, (void)D, (void)x, (void)ldx, (void)w, (void)eps, (void)y, (void)ldy;
    return SF_NO_CUDA(err);
}

sf_status sf_layernorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx, const float *w,
                            const float *b, double eps, void *y, int64_t ldy, sf_err *err) {
    (void)ctx, (void)M, (void)D, (void)x, (void)ldx, (void)w, (void)b, (void)eps, (void)y, (void)ldy;
    return SF_NO_CUDA(err);
}

sf_status sf_gelu_tanh_cuda(const sf_cuda_ctx *ctx, void *x, int64_t n, sf_err *err) {
    (void)ctx, (void)x, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_silu_cuda(const sf_cuda_ctx *ctx, void *x, int64_t n, sf_err *err) {
    (void)ctx, (void)x, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_modulate_cuda(const sf_cuda_ctx *ctx, int F, int64_t S, int64_t D, const void *x, const float *shift,
                           const float *scale, int64_t fstride, void *y, sf_err *err) {
    (void)ctx, (void)F, (void)S, (void)D, (void)x, (void)shift, (void)scale, (void)fstride, (void)y;
    return SF_NO_CUDA(err);
}

sf_status sf_gated_add_cuda(const sf_cuda_ctx *ctx, int F, int64_t S, int64_t D, void *x, const void *y,
                            const float *gate, int64_t fstride, sf_err *err) {
    (void)ctx, (void)F, (void)S, (void)D, (void)x, (void)y, (void)gate, (void)fstride;
    return SF_NO_CUDA(err);
}
