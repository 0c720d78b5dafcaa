/* device.cu — CUDA device discovery for --device cuda[:N]. Tested by tests/gpu/check.sh. */
#include "device.h"

#include "cuda_common.cuh" /* the CUDA runtime, or its host emulation (test_dit_emu) */
#include <stdio.h>

extern "C" int sf_cuda_compiled(void) { return 1; }

extern "C" sf_status sf_cuda_device_count(int *count, sf_err *err) {
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess || *count == 0) {
        *count = 0;
        cudaGetLastError(); /* not to be blamed on a later call */
        return sf_fail(err, SF_E_DEVICE, "no usable CUDA GPU (%s): install the NVIDIA driver or use --device cpu",
                       e != cudaSuccess ? cudaGetErrorString(e) : "no device present");
    }
    return SF_OK;
}

extern "C" sf_status sf_cuda_geometry(int ordinal, int *sms, int *threads_per_sm, sf_err *err) {
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, ordinal);
    if (e != cudaSuccess) return sf_fail(err, SF_E_DEVICE, "cuda:%d: %s", ordinal, cudaGetErrorString(e));
    *sms = p.multiProcessorCount, *threads_per_sm = p.maxThreadsPerMultiProcessor;
    return SF_OK;
}

extern "C" sf_status sf_cuda_describe(int ordinal, char *buf, size_t n, sf_err *err) {
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, ordinal);
    if (e != cudaSuccess) return sf_fail(err, SF_E_DEVICE, "cuda:%d: %s", ordinal, cudaGetErrorString(e));
    snprintf(buf, n, "%s, %.1f GiB, sm_%d%d", p.name, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
             p.major, p.minor);
    return SF_OK;
}
