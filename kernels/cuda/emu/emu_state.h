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
};
extern alloc *allocs;
extern size_t nallocs, cap_allocs;
/* p lies in a registered allocation with at least need bytes from p to its end */
bool registered(const void *p, size_t need);
/* records e as the last error (unless success) and returns it */
cudaError_t set_error(cudaError_t e);
} // namespace sf_emu

#endif
