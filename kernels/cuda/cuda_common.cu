/* cuda_common.cu — the CUDA context (device, stream, cuBLASLt handle) and device memory helpers of
 * kernels/cuda_ops.h. Run on an H200 (tests/gpu/RESULTS.md). Tested by
 * tests/unit/test_cuda_kernels.c (every op test goes through these helpers) via tests/gpu/check.sh. */
#include "cuda_common.cuh"
#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" sf_status sf_cuda_ctx_init(sf_cuda_ctx *ctx, int ordinal, sf_err *err) {
    sf_status st = SF_OK;
    cudaStream_t s = NULL;
    sf_blaslt *lt = NULL;
    const sf_device dev = {1, ordinal};
    cudaDeviceProp p;
    memset(ctx, 0, sizeof *ctx);
    ctx->ordinal = ordinal;
    SF_CUDA_REQUIRE(ordinal >= 0, "cuda:%d: bad device ordinal", ordinal);
    SF_CHECK_STATUS(sf_device_check(&dev, err)); /* a driver and that GPU (kernels/device.h) */
    CUDA_CHECK(cudaGetDeviceProperties(&p, ordinal));
    if (p.major < 8) {
        st = sf_fail(err, SF_E_UNSUPPORTED, "cuda:%d (%s) is sm_%d%d; sfpipe needs sm_80 or newer (A100, RTX 30/40, H100)",
                     ordinal, p.name, p.major, p.minor);
        goto fail;
    }
    CUDA_CHECK(cudaSetDevice(ordinal));
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    SF_CHECK_STATUS(sf_blaslt_new(&lt, (void *)s, err)); /* dlopen'd: a missing cuBLASLt is one clear line */
    ctx->stream = (void *)s;
    ctx->lt = (void *)lt;
    ctx->sms = p.multiProcessorCount;
    return SF_OK;
fail:
    sf_blaslt_destroy(&lt);
    if (s) cudaStreamDestroy(s);
    memset(ctx, 0, sizeof *ctx);
    return st;
}

extern "C" void sf_cuda_ctx_free(sf_cuda_ctx *ctx) {
    if (!ctx) return;
    sf_blaslt *lt = (sf_blaslt *)ctx->lt;
    sf_blaslt_destroy(&lt);
    if (ctx->scratch) cudaFree(ctx->scratch);
    if (ctx->stream) cudaStreamDestroy((cudaStream_t)ctx->stream);
    memset(ctx, 0, sizeof *ctx);
}

extern "C" sf_status sf_cuda_scratch(const sf_cuda_ctx *ctx, size_t bytes, void **p, sf_err *err) {
    sf_status st = SF_OK;
    sf_cuda_ctx *cx = (sf_cuda_ctx *)ctx; /* the scratch is the context's own cache, not its identity */
    if (bytes > cx->scratch_bytes) {
        void *n = NULL;
        CUDA_CHECK(cudaMalloc(&n, bytes));
        if (cx->scratch) cudaFree(cx->scratch); /* synchronises: no enqueued work still uses it */
        cx->scratch = n, cx->scratch_bytes = bytes;
    }
    *p = cx->scratch;
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_sync(const sf_cuda_ctx *ctx, sf_err *err) {
    sf_status st = SF_OK;
    CUDA_CHECK(cudaStreamSynchronize(SF_CUDA_STREAM(ctx)));
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_alive(const sf_cuda_ctx *ctx, sf_err *err) {
    (void)cudaGetLastError(); /* a refusal's error is not sticky: cleared here */
    cudaError_t e = cudaStreamSynchronize(SF_CUDA_STREAM(ctx));
    if (e == cudaSuccess) return SF_OK;
    (void)cudaGetLastError();
    return sf_fail(err, SF_E_DEVICE, "the GPU context is lost (cuda:%d): %s", sf_cuda_current_device(), cudaGetErrorString(e));
}

extern "C" sf_status sf_cuda_malloc(void **dev, size_t bytes, sf_err *err) {
    *dev = NULL;
    if (bytes == 0) return SF_OK;
    cudaError_t e = cudaMalloc(dev, bytes);
    if (e == cudaSuccess) return SF_OK;
    *dev = NULL;
    (void)cudaGetLastError(); /* the next kernel's launch check must not report this failure */
    /* out of device memory is SF_E_NOMEM; anything else (a context lost to a fault) stays a device error */
    return sf_fail(err, e == cudaErrorMemoryAllocation ? SF_E_NOMEM : SF_E_DEVICE, "cudaMalloc of %zu bytes failed: %s (cuda:%d)",
                   bytes, cudaGetErrorString(e), sf_cuda_current_device());
}

extern "C" void sf_cuda_free(void *dev) {
    if (dev) cudaFree(dev);
}

/* A byte copy on ctx->stream; wait: return once it is done (the host buffer reusable), else just enqueued
 * (the host side must be pinned memory left alone until the stream has passed the copy). */
static sf_status copy_on_stream(const sf_cuda_ctx *ctx, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                                int wait, sf_err *err) {
    sf_status st = SF_OK;
    if (bytes == 0) return SF_OK;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, SF_CUDA_STREAM(ctx)));
    if (wait) CUDA_CHECK(cudaStreamSynchronize(SF_CUDA_STREAM(ctx)));
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_copy_h2d(const sf_cuda_ctx *ctx, void *dev, const void *host, size_t bytes,
                                      sf_err *err) {
    return copy_on_stream(ctx, dev, host, bytes, cudaMemcpyHostToDevice, 1, err);
}

extern "C" sf_status sf_cuda_copy_h2d_async(const sf_cuda_ctx *ctx, void *dev, const void *pinned, size_t bytes,
                                            sf_err *err) {
    return copy_on_stream(ctx, dev, pinned, bytes, cudaMemcpyHostToDevice, 0, err);
}

extern "C" sf_status sf_cuda_copy_d2h(const sf_cuda_ctx *ctx, void *host, const void *dev, size_t bytes,
                                      sf_err *err) {
    return copy_on_stream(ctx, host, dev, bytes, cudaMemcpyDeviceToHost, 1, err);
}

extern "C" sf_status sf_cuda_copy_d2h_async(const sf_cuda_ctx *ctx, void *pinned, const void *dev, size_t bytes,
                                            sf_err *err) {
    return copy_on_stream(ctx, pinned, dev, bytes, cudaMemcpyDeviceToHost, 0, err);
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

extern "C" sf_status sf_cuda_copy_d2h_2d(const sf_cuda_ctx *ctx, void *host, size_t hpitch, const void *dev,
                                         size_t dpitch, size_t width, size_t height, sf_err *err) {
    sf_status st = SF_OK;
    if (width == 0 || height == 0) return SF_OK;
    if (hpitch > SF_CUDA_MAX_PITCH || dpitch > SF_CUDA_MAX_PITCH) /* cudaMemcpy2D refuses such pitches */
        for (size_t r = 0; r < height; r++)
            CUDA_CHECK(cudaMemcpyAsync((char *)host + r * hpitch, (const char *)dev + r * dpitch, width,
                                       cudaMemcpyDeviceToHost, SF_CUDA_STREAM(ctx)));
    else
        CUDA_CHECK(cudaMemcpy2DAsync(host, hpitch, dev, dpitch, width, height, cudaMemcpyDeviceToHost,
                                     SF_CUDA_STREAM(ctx)));
    CUDA_CHECK(cudaStreamSynchronize(SF_CUDA_STREAM(ctx)));
    return SF_OK;
fail:
    return st;
}

/* Overlapping device copies (the rolling KV cache's roll moves a range down by `evict` tokens):
 * cudaMemcpyAsync is undefined for overlap, so copy forward in pieces no longer than the shift,
 * each of which reads only bytes that no earlier piece has overwritten. */
extern "C" sf_status sf_cuda_copy_d2d(const sf_cuda_ctx *ctx, void *dst, const void *src, size_t bytes,
                                      sf_err *err) {
    sf_status st = SF_OK;
    char *d = (char *)dst;
    const char *s = (const char *)src;
    if (bytes == 0 || d == s) return SF_OK;
    if (d + bytes <= s || s + bytes <= d) {
        CUDA_CHECK(cudaMemcpyAsync(d, s, bytes, cudaMemcpyDeviceToDevice, SF_CUDA_STREAM(ctx)));
    } else if (d < s) { /* moving down: ascending pieces of at most (s − d) bytes */
        size_t step = (size_t)(s - d);
        for (size_t off = 0; off < bytes; off += step) {
            size_t n = bytes - off < step ? bytes - off : step;
            CUDA_CHECK(cudaMemcpyAsync(d + off, s + off, n, cudaMemcpyDeviceToDevice, SF_CUDA_STREAM(ctx)));
        }
    } else { /* moving up: descending pieces */
        size_t step = (size_t)(d - s), off = bytes;
        while (off > 0) {
            size_t n = off < step ? off : step;
            off -= n;
            CUDA_CHECK(cudaMemcpyAsync(d + off, s + off, n, cudaMemcpyDeviceToDevice, SF_CUDA_STREAM(ctx)));
        }
    }
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_host_alloc(void **p, size_t bytes, sf_err *err) {
    *p = NULL;
    cudaError_t e = cudaMallocHost(p, bytes);
    if (e == cudaSuccess) return SF_OK;
    (void)cudaGetLastError(); /* a refused allocation is not sticky: the next launch check must not see it */
    *p = NULL;
    /* as sf_cuda_malloc: out of (pinned) memory is SF_E_NOMEM, a lost context a device error */
    return sf_fail(err, e == cudaErrorMemoryAllocation ? SF_E_NOMEM : SF_E_DEVICE,
                   "cudaMallocHost of %zu bytes failed: %s (cuda:%d)", bytes, cudaGetErrorString(e), sf_cuda_current_device());
}

extern "C" void sf_cuda_host_free(void *p) {
    if (p) cudaFreeHost(p);
}

extern "C" sf_status sf_cuda_mem_info(size_t *free_bytes, size_t *total_bytes, sf_err *err) {
    sf_status st = SF_OK;
    CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_events_new(void **ev, int n, sf_err *err) {
    sf_status st = SF_OK;
    cudaEvent_t *e = (cudaEvent_t *)calloc((size_t)(n > 0 ? n : 1), sizeof *e);
    *ev = e;
    if (!e) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) CUDA_CHECK(cudaEventCreate(&e[i]));
    return SF_OK;
fail:
    sf_cuda_events_free(e, n);
    *ev = NULL;
    return st;
}

extern "C" void sf_cuda_events_free(void *ev, int n) {
    cudaEvent_t *e = (cudaEvent_t *)ev;
    for (int i = 0; e && i < n; i++)
        if (e[i]) cudaEventDestroy(e[i]);
    free(e);
}

extern "C" sf_status sf_cuda_event_record(const sf_cuda_ctx *ctx, void *ev, int i, sf_err *err) {
    sf_status st = SF_OK;
    CUDA_CHECK(cudaEventRecord(((cudaEvent_t *)ev)[i], SF_CUDA_STREAM(ctx)));
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_event_sync(void *ev, int i, sf_err *err) {
    sf_status st = SF_OK;
    CUDA_CHECK(cudaEventSynchronize(((cudaEvent_t *)ev)[i]));
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_cuda_event_ms(void *ev, int i, int j, float *ms, sf_err *err) {
    sf_status st = SF_OK;
    cudaEvent_t *e = (cudaEvent_t *)ev;
    CUDA_CHECK(cudaEventSynchronize(e[j]));
    CUDA_CHECK(cudaEventElapsedTime(ms, e[i], e[j]));
    return SF_OK;
fail:
    return st;
}
