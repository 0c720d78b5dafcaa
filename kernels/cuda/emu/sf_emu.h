/* sf_emu.h — the C-callable side of the CUDA CPU emulation (kernels/cuda/emu/cuda_emu.h): knobs and
 * counters a test uses to drive the emulated kernels. Only defined in the emulated objects that
 * build/tests/test_cuda_emu links (never in libsf.a). Tested by tests/unit/test_cuda_emu.c. */
#ifndef SF_EMU_H
#define SF_EMU_H

#ifdef __cplusplus
extern "C" {
#endif

/* Cap on the blocks of a 1-D elementwise launch (sf_cuda_blocks); 0 restores the GPU's cap
 * (65535·16). A small cap makes grid-stride loops wrap at unit-test sizes. */
void sf_emu_set_max_blocks(long long n);
long long sf_emu_max_blocks(void);
/* Kernels launched / threads run (all blocks) since the process started. */
unsigned long long sf_emu_launches(void);
unsigned long long sf_emu_threads_run(void);
/* Launches of the kernels whose name (as written in SF_LAUNCH, e.g. "attn_mass_groups") starts with
 * prefix: which path a whole forward took. */
unsigned long long sf_emu_kernel_launches(const char *prefix);
/* Fault injection: with $SF_EMU_SKIP_KERNEL=PREFIX, kernels whose name starts with PREFIX are counted as
 * launched and do nothing (as a kernel built empty for the wrong architecture would): callers' self-
 * checks must notice. With $SF_EMU_FAULT_KERNEL=PREFIX they fault instead (an illegal address): the
 * launch succeeds and the context is lost, every later sync, copy and allocation reporting
 * cudaErrorIllegalAddress until sf_emu_reset, as on a GPU. */
/* Host waits since the process started: stream / device synchronisations, and async copies between
 * the device and pageable host memory (which a GPU's driver performs synchronously). A loop that
 * is meant to run ahead of the GPU is tested by counting these. */
unsigned long long sf_emu_host_waits(void);
/* cudaEventSynchronize calls since the process started: waits for one point of a stream (a pinned
 * buffer's copy), not for the whole stream to drain; counted apart from the host waits above. */
unsigned long long sf_emu_event_waits(void);
/* sf_conv_cudnn_forward calls since the process started (the emulated cuDNN convolution). */
unsigned long long sf_emu_conv_calls(void);
/* sf_sdpa_forward calls since the process started (the emulated cuDNN attention, sdpa_emu.cc). */
unsigned long long sf_emu_sdpa_calls(void);
/* 16-byte loads of per-column vectors by the row kernels (sf_load8f: norm_fused.cu, vae_glue.cu) since
 * the process started: whether they took the vector path; counted by the kernels themselves. */
unsigned long long sf_emu_vector_loads(void);
void sf_emu_count_vector_load(void);
/* Launches of those kernels with per-column vectors that had to load them one value at a time (not
 * 16-byte aligned, or a frame stride not a multiple of 4) while vector loads were on. */
unsigned long long sf_emu_vector_fallbacks(void);
void sf_emu_count_vector_fallback(void);
/* cudaMalloc calls since the process started. */
unsigned long long sf_emu_device_allocs(void);
/* The message of the last kernel failure ("" if none) and the sticky error flag: like a CUDA
 * context after a fault, every later sync reports it until sf_emu_reset clears it. */
const char *sf_emu_last_error(void);
void sf_emu_reset(void);
/* CUDA graphs (graph_emu.cc): graphs instantiated, executable graphs updated in place, graph launches
 * since the process started. */
unsigned long long sf_emu_graph_instantiations(void);
unsigned long long sf_emu_graph_updates(void);
unsigned long long sf_emu_graph_launches(void);
/* Fault injection: the n-th operation recorded by the next stream capture(s) invalidates it, as a
 * library call that cannot be captured would (n <= 0: off). Counts across captures until it fires. */
void sf_emu_capture_break_after(int n);
/* Fault injection (sdpa_emu.cc), 1: the first execution of each attention plan (per shape) inside a
 * stream capture invalidates it, as a library that loads or allocates on a plan's first use would; once
 * the plan has run outside a capture it captures normally. 0 (the default): off. */
void sf_emu_sdpa_first_use_breaks_capture(int on);
/* 1: do not print kernel failures on stderr (tests that provoke them on purpose). */
void sf_emu_set_quiet(int quiet);
/* Devices: $SF_EMU_DEVICES emulated GPUs (1..8, default 1; read at each call). The current device is per host
 * thread, as on a GPU (a new thread starts on 0): a stream or device memory of another device used by a thread
 * is an error naming both (the bug of a stage on cuda:1 that calls CUDA from a thread without cudaSetDevice).
 * sf_emu_set_device: cudaSetDevice (0, or -1 for a device that does not exist). */
int sf_emu_current_device(void);
int sf_emu_set_device(int d);
/* The order the threads of a block and the blocks of a launch run in: "forward" (index order, the
 * default), "reverse", or "shuffle[:SEED]" (a seeded permutation per block and per launch). A kernel
 * whose results change with it has a race (cuda_emu.h "Order"). The default is $SF_EMU_ORDER, read at
 * the first launch. Returns 0, or -1 (order unchanged) for another spec. sf_emu_order: the one in use. */
int sf_emu_set_order(const char *spec);
/* TMA loads land when issued (0, the default) or only when a wait on their mbarrier needs them (1; what
 * $SF_EMU_COPIES_LATE=1 sets): async_emu.cc. From the next block on. */
void sf_emu_set_copies_late(int on);
const char *sf_emu_order(void);
/* Deferred streams (cuda_emu.h "Asynchrony"; default $SF_EMU_ASYNC): on, work enqueued on a stream runs only
 * when the host waits for it. Switching runs what is queued first. sf_emu_queued: operations queued, not run. */
void sf_emu_set_async(int on);
unsigned long long sf_emu_queued(void);

#ifdef __cplusplus
}
#endif
#endif
