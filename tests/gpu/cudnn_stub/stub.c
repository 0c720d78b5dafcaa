/* stub.c — a libcuda.so.1 stand-in for DEVICELESS cuDNN plan builds (test fixture of
 * tests/unit/test_sdpa_plans.c; built by the Makefile as $(BUILD)/tests/cudnn_stub/libcuda.so.1).
 * With it first on LD_LIBRARY_PATH, cuDNN's runtime-compiled engines run NVRTC and "load" the
 * result, so heuristics and execution plans finalize for a saved device description on a machine
 * without a GPU driver. It reports no devices and refuses every launch: never for execution.
 * Adapted from /work/shared/device/cudnn-probe/stub/stub.c (the symbols cuDNN 9.19 resolves). */
#include <stddef.h>
#include <stdint.h>

enum { NOT_SUPPORTED = 801 }; /* CUDA_ERROR_NOT_SUPPORTED */
static char fake[64];

int cuDriverGetVersion(int *v) { if (v) *v = 13000; return 0; }
int cuLibraryLoadData(void **lib, const void *code, void *a, void *b, unsigned n, void *c, void *d, unsigned m) {
    (void)code, (void)a, (void)b, (void)n, (void)c, (void)d, (void)m;
    *lib = fake;
    return 0;
}
int cuLibraryLoadFromFile(void **lib, const char *f, void *a, void *b, unsigned n, void *c, void *d, unsigned m) {
    (void)f, (void)a, (void)b, (void)n, (void)c, (void)d, (void)m;
    *lib = fake;
    return 0;
}
int cuLibraryGetKernel(void **k, void *lib, const char *name) { (void)lib, (void)name; *k = fake + 8; return 0; }
int cuKernelGetAttribute(int *v, int attrib, void *k, int dev) { (void)attrib, (void)k, (void)dev; if (v) *v = 0; return 0; }
int cuCtxGetCurrent(void **c) { if (c) *c = fake + 16; return 0; }
int cuCtxGetLimit(size_t *v, int l) { (void)l; if (v) *v = 0; return 0; }
int cuDeviceGet(int *d, int o) { (void)o; if (d) *d = 0; return 0; }
int cuDeviceGetCount(int *n) { if (n) *n = 0; return 0; }
int cuGetErrorName(int e, const char **s) { (void)e; if (s) *s = "CUDA_STUB"; return 0; }
int cuGetErrorString(int e, const char **s) { (void)e; if (s) *s = "libcuda stand-in (deviceless build)"; return 0; }
int cuOccupancyMaxPotentialClusterSize(int *n, void *f, const void *cfg) { (void)f, (void)cfg; if (n) *n = 1; return 0; }
int cuStreamGetCtx(void *s, void **c) { (void)s; if (c) *c = fake + 16; return 0; }
int cuKernelSetAttribute(void) { return 0; }
int cuLibraryUnload(void) { return 0; }
int cuCtxPopCurrent(void) { return 0; }
int cuCtxPushCurrent(void) { return 0; }
int cuLinkCreate(void) { return NOT_SUPPORTED; }
int cuLinkAddData(void) { return NOT_SUPPORTED; }
int cuLinkComplete(void) { return NOT_SUPPORTED; }
int cuLinkDestroy(void) { return 0; }
int cuLaunchKernel(void) { return NOT_SUPPORTED; } /* nothing runs here */
int cuLaunchKernelEx(void) { return NOT_SUPPORTED; }
int cuLaunchCooperativeKernel(void) { return NOT_SUPPORTED; }
