/* device.h — choosing the compute device at run time (--device cpu|cuda|cuda:N).
 *
 * Parsing and checking live in kernels/cpu/device.c, the CUDA queries in kernels/cuda/device.cu;
 * a build without nvcc links kernels/nocuda/nocuda.c instead, whose functions report that CUDA
 * is not compiled in.
 * Tested by tests/unit/test_core.c (parsing) and tests/gpu/check.sh (on a GPU). */
#ifndef SF_DEVICE_H
#define SF_DEVICE_H

#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_device {
    int cuda;    /* 0 cpu, 1 cuda */
    int ordinal; /* CUDA device index */
} sf_device;

/* Parse "cpu", "cuda", "cuda:N" or a bare GPU id "N" (the reference's --gpu_id). */
sf_status sf_device_parse(const char *s, sf_device *dev, sf_err *err);

/* 1 when this binary was built with CUDA. */
int sf_cuda_compiled(void);
/* Number of visible CUDA devices; SF_E_DEVICE with a reason when none can be used. */
sf_status sf_cuda_device_count(int *count, sf_err *err);
/* Name and memory of a device into buf ("NVIDIA H100 80GB HBM3, 79.1 GiB, sm_90"). */
sf_status sf_cuda_describe(int ordinal, char *buf, size_t n, sf_err *err);
/* The device's multiprocessors and resident threads per multiprocessor (the launch-grid cap of
 * PyTorch's random kernels: common/rng_torch.h). */
sf_status sf_cuda_geometry(int ordinal, int *sms, int *threads_per_sm, sf_err *err);
/* Check that dev is usable (for cuda: compiled in, device present). */
sf_status sf_device_check(const sf_device *dev, sf_err *err);

#ifdef __cplusplus
}
#endif
#endif
