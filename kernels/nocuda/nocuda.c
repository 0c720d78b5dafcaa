/* nocuda.c — the CUDA entry points of a CPU-only build (no nvcc at build time): each one
 * reports that CUDA is not compiled in, so --device cuda fails with a clear message. */
#include "device.h"

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
