/* emu_state.h — internal to the CUDA CPU emulation: the state its scheduler (cuda_emu.cc) and its
 * runtime API (emu_runtime.cc) share. Not for kernels or tests (they use cuda_emu.h and sf_emu.h). */
#ifndef SF_EMU_STATE_H
#define SF_EMU_STATE_H

#include "cuda_emu.h"

namespace sf_emu {
extern char err_msg[1024];         /* the last kernel failure, for cudaGetErrorString */
extern cudaError_t last_error;     /* cleared by cudaGetLastError */
extern cudaError_t sticky_error;   /* reported by every sync until sf_emu_reset */
struct alloc {                     /* a device allocation (or a stream's zero-size tag) */
    char *p;
    size_t n;
    int dev;                       /* the device current when it was made */
};
extern alloc *allocs;
extern size_t nallocs, cap_allocs;
/* p lies in a registered allocation with at least need bytes from p to its end */
bool registered(const void *p, size_t need);
/* The device of the registered allocation (or stream) holding p; -1 when none does (host memory). */
int alloc_device(const void *p);
/* The current device of this host thread (cudaSetDevice; a new thread starts on 0, as on a GPU). */
extern thread_local int cur_dev;
/* The emulated devices: $SF_EMU_DEVICES (1..8, default 1). */
int devices();
/* The stream s and the device memory a, b (each may be null or host memory) belong to the current device;
 * else what is wrong (naming both devices) in err_msg, last_error set, and false. */
bool same_device(const char *what, const void *s, const void *a, const void *b);
/* records e as the last error (unless success) and returns it */
cudaError_t set_error(cudaError_t e);
} // namespace sf_emu

#endif
