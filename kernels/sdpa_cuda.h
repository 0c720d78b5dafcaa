/* sdpa_cuda.h — the DiT's attention O = softmax(Q·Kᵀ·scale)·V through cuDNN's fused flash
 * attention (SDPA forward, cuDNN backend graph API), in the project's own layout.
 *
 * q:    (Lq, H·d) bf16, row stride ldq elements; head h = features [h·d, (h+1)·d)
 * k, v: (Lk, H·d) bf16, row stride ldk (a KV-cache window: both share the stride)
 * o:    (Lq, H·d) bf16, row stride ldo (must not alias q, k, v)
 * fp32 softmax statistics, P rounded to bf16 before P·V (SPEC §5.7), no mask. All pointers are
 * device memory and 16-byte aligned; d and the strides are multiples of 8 elements.
 *
 * cuDNN is loaded at run time with dlopen (libcudnn.so.9, or $SF_CUDNN_LIB): a CUDA build runs
 * where cuDNN is absent, and every entry point then answers SF_E_UNSUPPORTED with the reason, so
 * the caller falls back to its cuBLAS attention. An execution plan is built per shape: heuristics
 * mode A, then mode FALLBACK, then every engine by global index, for the unified
 * SDPA_FWD operation first and the composite matmul→softmax→matmul graph second; the first plan
 * that finalizes is kept. SF_CUDNN_DEBUG=1 prints every attempt (graph, mode/engine, status,
 * cuDNN's last error) to stderr.
 *
 * Implemented in kernels/cuda/sdpa_cudnn.c; a CPU-only build links the stubs in
 * kernels/nocuda/nocuda.c (SF_E_DEVICE). Tested by tests/unit/test_sdpa_plans.c: deviceless plans
 * for the saved H200 properties (tests/gpu/h200_deviceprop.json) in every `make test`, and the
 * forward against sf_attention_cpu on a GPU (SF_TEST_DEVICE=cuda:N). */
#ifndef SF_SDPA_CUDA_H
#define SF_SDPA_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cuDNN library + handle bound to one stream, a plan cache and a device workspace. Not
 * thread-safe: one sf_sdpa per stream / thread. */
typedef struct sf_sdpa sf_sdpa;

/* dlopen cuDNN, create a handle on the current CUDA device and bind it to cuda_stream
 * (cudaStream_t; NULL = the default stream). *out: caller destroys with sf_sdpa_destroy.
 * Missing library → SF_E_UNSUPPORTED ("cuDNN not found ..."); no device → SF_E_DEVICE. */
sf_status sf_sdpa_new(sf_sdpa **out, void *cuda_stream, sf_err *err);
void sf_sdpa_destroy(sf_sdpa **s); /* NULL or *s NULL: no-op; NULLs *s */

/* The shapes the contract above allows (d ≤ 256, multiples of 8, strides ≥ H·d): SF_E_ARG naming the
 * shape otherwise. Shared by the cuDNN wrapper and the emulation's stand-in (kernels/cuda/emu/sdpa_emu.cc). */
static inline sf_status sf_sdpa_shape_check(int64_t Lq, int64_t Lk, int64_t H, int64_t d, int64_t ldq, int64_t ldk,
                                            int64_t ldo, sf_err *err) {
    const int64_t w = H * d;
    if (Lq < 1 || Lk < 1 || H < 1 || d < 8 || d > 256 || d % 8 || ldq < w || ldk < w || ldo < w || ldq % 8 || ldk % 8 ||
        ldo % 8)
        return sf_fail(err, SF_E_ARG,
                       "sdpa: bad shape Lq %lld Lk %lld H %lld d %lld ldq %lld ldk %lld ldo %lld (d ≤ 256 and strides "
                       "multiples of 8, ≥ H·d)",
                       (long long)Lq, (long long)Lk, (long long)H, (long long)d, (long long)ldq, (long long)ldk,
                       (long long)ldo);
    return SF_OK;
}

/* Build (or find) the execution plan for this shape now — at init, outside the block loop — and
 * grow the workspace it needs. SF_E_UNSUPPORTED when no engine takes the shape (reason in err). */
sf_status sf_sdpa_prepare(sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, int64_t ldq, int64_t ldk, int64_t ldo,
                          sf_err *err);

/* O = softmax(Q Kᵀ·scale) V per head, enqueued on the stream (asynchronous). Builds the plan on
 * first use of a shape (call sf_sdpa_prepare first to keep that out of the loop). */
sf_status sf_sdpa_forward(sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, const void *q, int64_t ldq,
                          const void *k, const void *v, int64_t ldk, void *o, int64_t ldo, float scale,
                          sf_err *err);

/* The plan chosen for a prepared shape, e.g. "unified heurA engine 9 ws 256", into desc (desc_n
 * bytes). SF_E_NOTFOUND when the shape was never prepared. */
sf_status sf_sdpa_describe(const sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, int64_t ldq, int64_t ldk,
                           int64_t ldo, char *desc, size_t desc_n, sf_err *err);

/* Deviceless: build and finalize the plan for a saved device description (the JSON of cuDNN's
 * CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION) without a GPU. Needs a libcuda.so.1 (real, or the
 * stand-in tests/gpu/cudnn_stub/) and NVRTC for runtime-compiled engines. desc receives which
 * graph/mode/engine was chosen. */
sf_status sf_sdpa_plan_deviceless(const char *deviceprop_json_path, int64_t Lq, int64_t Lk, int H, int d,
                                  int64_t ldq, int64_t ldk, int64_t ldo, char *desc, size_t desc_n, sf_err *err);

/* *version = cudnnGetVersion() of the library that would be loaded (e.g. 91900); SF_E_UNSUPPORTED
 * when it cannot be loaded. */
sf_status sf_sdpa_cudnn_version(int *version, sf_err *err);

#ifdef __cplusplus
}
#endif
#endif
