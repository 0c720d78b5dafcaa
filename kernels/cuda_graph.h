/* cuda_graph.h — CUDA graphs for work that repeats with new arguments (kernels/cuda/graph.cu): record
 * what a function enqueues on a context's stream, then run it as one graph launch, so the GPU starts
 * each kernel without waiting for the host's next launch (the DiT's forward: ~20 kernels and products
 * per layer, 30 layers). Each launch is recorded afresh, so every argument — timesteps, cache offsets,
 * pointers — is this call's; the executable graph cached under the caller's key is updated in place
 * with them (cudaGraphExecUpdate), which is much cheaper than instantiating, and instantiated anew
 * only when the recorded work differs in shape (another number or kind of operations).
 *
 * The recorded work must not synchronise (no stream / device waits, synchronous copies, allocations)
 * and must not allocate: such a call invalidates the capture; sf_cuda_graph_end then launches nothing
 * and fails, and the caller enqueues the same work again directly. Nothing runs during the capture,
 * so host state the work's enqueueing changes must allow that second pass (see dit_cuda.c).
 * The libraries' wrappers take part: cuDNN's attention refuses to build a plan while its stream is
 * capturing (prepare shapes before), and it and cuBLASLt name themselves when their call invalidated
 * the capture. An update the runtime refuses re-instantiates the key's graph (counted: `refused`,
 * with the runtime's reason). Because every launch is recorded afresh, a cached executable graph may
 * point at memory freed since (a grown workspace): it is updated from the new recording before it runs.
 * Tested on the CPU emulation (graph_emu.cc: test_cuda_graphs, test_emu_self, test_dit_emu
 * `graphs`) and on a GPU by test_cuda_graphs_gpu / test_dit_cuda. */
#ifndef SF_CUDA_GRAPH_H
#define SF_CUDA_GRAPH_H

#include "cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sf_cuda_graphs sf_cuda_graphs; /* executable graphs by key (a few; least recently used replaced) */
typedef struct sf_cuda_graph_stats {
    long long launches;       /* graphs launched */
    long long updates;        /* ... of which by updating a cached executable graph */
    long long instantiations; /* ... of which instantiated (first use of a key, or the work changed shape) */
    long long failed;         /* captures the runtime invalidated, or that could not be instantiated */
    long long refused;        /* updates the runtime refused (that key's graph instantiated anew: counted above) */
    int last_refusal;         /* the last refusal's cudaGraphExecUpdateResult (0: none), for reports */
} sf_cuda_graph_stats;

sf_status sf_cuda_graphs_new(sf_cuda_graphs **out, sf_err *err);
void sf_cuda_graphs_free(sf_cuda_graphs *gs); /* NULL: no-op; in-flight launches complete */
/* Start recording what is enqueued on ctx->stream (by this thread); nothing runs until sf_cuda_graph_end. */
sf_status sf_cuda_graph_begin(const sf_cuda_ctx *ctx, sf_err *err);
/* End the recording. run != 0: launch it on ctx->stream as key's graph (update or instantiate, above);
 * run == 0: discard it (the caller's enqueueing failed). A capture the runtime invalidated returns
 * SF_E_DEVICE having launched nothing, with the runtime's error cleared (so the work can be enqueued
 * again directly). */
sf_status sf_cuda_graph_end(const sf_cuda_ctx *ctx, sf_cuda_graphs *gs, uint64_t key, int run, sf_err *err);
void sf_cuda_graph_stats_get(const sf_cuda_graphs *gs, sf_cuda_graph_stats *out); /* zeros for NULL */

#ifdef __cplusplus
}
#endif

#endif
