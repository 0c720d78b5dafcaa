/* cuda_common.cu — the CUDA context (device, stream, cuBLAS handle) and device memory helpers of
 * kernels/cuda_ops.h. Compiled (sm_90a), never executed: no GPU has run this yet. Tested by
 * tests/unit/test_cuda_kernels.c (every op test goes through these helpers) via tests/gpu/check.sh. */
#include "cuda_common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" sf_status sf_cuda_ctx_init(sf_cuda_ctx *ctx, int ordinal, sf_err *err) {
    sf_status st = SF_OK;
    cudaStream_t s = NULL;
    cublasHandle_t h = NULL;
    memset(ctx, 0, sizeof *ctx);
    ctx->ordinal = ordinal;
    SF_CUDA_REQUIRE(ordinal >= 0, "cuda:%d: bad device ordinal", ordinal);
    CUDA_CHECK(cudaSetDevice(ordinal));
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&h));
    CUBLAS_CHECK(cublasSetStream(h, s));
    /* bf16 inputs with CUBLAS_COMPUTE_32F: keep the default (no TF32 down-conversion of f32). */
    CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    ctx->stream = (void *)s;
    ctx->cublas = (void *)h;
    return SF_OK;
fail:
    if (h) cublasDestroy(h);
    if (s) cudaStreamDestroy(s);
    memset(ctx, 0, sizeof *ctx);
    return st;
}

extern "C" void sf_cuda_ctx_free(sf_cuda_ctx *ctx) {
    if (!ctx) return;
    if (ctx->cublas) cublasDestroy((cublasHandle_t)ctx->cublas);
    if (ctx->stream) cudaStreamDestroy((cudaStream_t)ctx->stream);
    memset(ctx, 0, sizeof *ctx);
}

extern "C" sf_status sf_cuda_sync(const sf_cuda_ctx *ctx, sf_err *err) {
    sf_status st = SF_OK;
    CUDA_CHECK(cudaStreamSynchronize(SF_CUDA_STREAM(ctx)));
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_malloc(void **dev, size_t bytes, sf_err *err) {
    sf_status st = SF_OK;
    *dev = NULL;
    if (bytes == 0) return SF_OK;
    CUDA_CHECK(cudaMalloc(dev, bytes));
    return SF_OK;
fail:
    *dev = NULL;
    if (st == SF_E_DEVICE) { /* out of device memory is SF_E_NOMEM; keep the CUDA message */
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        st = sf_fail(err, SF_E_NOMEM, "cudaMalloc of %zu bytes failed: %s", bytes, why);
    }
    return st;
}

extern "C" void sf_cuda_free(void *dev) {
    if (dev) cudaFree(dev);
}

extern "C" sf_status sf_cuda_copy_h2d(const sf_cuda_ctx *ctx, void *dev, const void *host, size_t bytes,
                                      sf_err *err) {
    sf_status st = SF_OK;
    if (bytes == 0) return SF_OK;
    CUDA_CHECK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, SF_CUDA_STREAM(ctx)));
    CUDA_CHECK(cudaStreamSynchronize(SF_CUDA_STREAM(ctx)));
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_copy_d2h(const sf_cuda_ctx *ctx, void *host, const void *dev, size_t bytes,
                                      sf_err *err) {
    sf_status st = SF_OK;
    if (bytes == 0) return SF_OK;
    CUDA_CHECK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, SF_CUDA_STREAM(ctx)));
    CUDA_CHECK(cudaStreamSynchronize(SF_CUDA_STREAM(ctx)));
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_memset(const sf_cuda_ctx *ctx, void *dev, int byte, size_t bytes, sf_err *err) {
    sf_status st = SF_OK;
    if (bytes == 0) return SF_OK;
    CUDA_CHECK(cudaMemsetAsync(dev, byte, bytes, SF_CUDA_STREAM(ctx)));
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_upload_f32(const sf_cuda_ctx *ctx, void *dev, const float *host, size_t n,
                                        sf_err *err) {
    if (n > SIZE_MAX / sizeof(float)) return sf_fail(err, SF_E_NOMEM, "upload of %zu floats overflows", n);
    return sf_cuda_copy_h2d(ctx, dev, host, n * sizeof(float), err);
}

extern "C" sf_status sf_cuda_upload_bf16(const sf_cuda_ctx *ctx, void *dev, const float *host, size_t n,
                                         sf_err *err) {
    if (n == 0) return SF_OK;
    if (n > SIZE_MAX / sizeof(uint16_t)) return sf_fail(err, SF_E_NOMEM, "upload of %zu bf16 overflows", n);
    uint16_t *tmp = (uint16_t *)malloc(n * sizeof(uint16_t));
    if (!tmp) return sf_fail(err, SF_E_NOMEM, "upload of %zu bf16: out of host memory", n);
    for (size_t i = 0; i < n; i++) tmp[i] = sf_f32_to_bf16(host[i]);
    sf_status st = sf_cuda_copy_h2d(ctx, dev, tmp, n * sizeof(uint16_t), err); /* synchronous: tmp reusable */
    free(tmp);
    return st;
}

extern "C" sf_status sf_cuda_download_f32(const sf_cuda_ctx *ctx, float *host, const void *dev, size_t n,
                                          sf_err *err) {
    if (n > SIZE_MAX / sizeof(float)) return sf_fail(err, SF_E_NOMEM, "download of %zu floats overflows", n);
    return sf_cuda_copy_d2h(ctx, host, dev, n * sizeof(float), err);
}

extern "C" sf_status sf_cuda_download_bf16(const sf_cuda_ctx *ctx, float *host, const void *dev, size_t n,
                                           sf_err *err) {
    if (n == 0) return SF_OK;
    if (n > SIZE_MAX / sizeof(uint16_t)) return sf_fail(err, SF_E_NOMEM, "download of %zu bf16 overflows", n);
    uint16_t *tmp = (uint16_t *)malloc(n * sizeof(uint16_t));
    if (!tmp) return sf_fail(err, SF_E_NOMEM, "download of %zu bf16: out of host memory", n);
    sf_status st = sf_cuda_copy_d2h(ctx, tmp, dev, n * sizeof(uint16_t), err);
    if (st == SF_OK)
        for (size_t i = 0; i < n; i++) host[i] = sf_bf16_to_f32(tmp[i]);
    free(tmp);
    return st;
}
