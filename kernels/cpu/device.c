/* device.c — parsing and checking --device (see device.h): the host side of the device family, next
 * to kernels/cuda/device.cu (CUDA discovery) and kernels/nocuda/nocuda.c (its stand-in without
 * nvcc). Tested by tests/unit/test_core.c. */
#include "device.h"

#include <stdlib.h>
#include <string.h>

sf_status sf_device_parse(const char *s, sf_device *dev, sf_err *err) {
    dev->cuda = 0;
    dev->ordinal = 0;
    if (!s || strcmp(s, "cpu") == 0) return SF_OK;
    const char *num = NULL;
    if (strcmp(s, "cuda") == 0) {
        dev->cuda = 1;
        return SF_OK;
    }
    if (strncmp(s, "cuda:", 5) == 0) num = s + 5;
    else num = s; /* bare GPU id, as --gpu_id gives */
    char *end = NULL;
    long v = strtol(num, &end, 10);
    if (!*num || *end || v < 0 || v > 1024)
        return sf_fail(err, SF_E_ARG, "bad device '%s' (expected cpu, cuda or cuda:N)", s);
    dev->cuda = 1;
    dev->ordinal = (int)v;
    return SF_OK;
}

sf_status sf_device_check(const sf_device *dev, sf_err *err) {
    if (!dev->cuda) return SF_OK;
    int n = 0;
    sf_status s = sf_cuda_device_count(&n, err);
    if (s) return s;
    if (dev->ordinal >= n)
        return sf_fail(err, SF_E_DEVICE, "cuda:%d: no such GPU (%d visible: cuda:0..cuda:%d)", dev->ordinal, n, n - 1);
    return SF_OK;
}
