/* graph.cu — CUDA graphs for repeated work (kernels/cuda_graph.h): stream capture, an executable graph
 * per key updated in place with each new capture, instantiated when the work changed shape. Runs on
 * the CPU emulation too (graph_emu.cc), which records captured work and runs it at the launch.
 * Tested by tests/unit/test_cuda_graphs.c (emulated; test_cuda_graphs_gpu on a GPU) and through the
 * DiT by test_dit_emu / test_dit_cuda `graphs`. */
#include "cuda_common.cuh"
#include "cuda_graph.h"

#include <stdlib.h>

#define GRAPH_SLOTS 8

struct sf_cuda_graphs {
    struct {
        uint64_t key;
        cudaGraphExec_t exec; /* NULL: free */
        unsigned long long used;
    } slot[GRAPH_SLOTS];
    unsigned long long tick;
    sf_cuda_graph_stats st;
};

extern "C" sf_status sf_cuda_graphs_new(sf_cuda_graphs **out, sf_err *err) {
    *out = (sf_cuda_graphs *)calloc(1, sizeof **out);
    return *out ? SF_OK : sf_fail(err, SF_E_NOMEM, "out of memory");
}

extern "C" void sf_cuda_graphs_free(sf_cuda_graphs *gs) {
    if (!gs) return;
    for (int i = 0; i < GRAPH_SLOTS; i++)
        if (gs->slot[i].exec) cudaGraphExecDestroy(gs->slot[i].exec);
    free(gs);
}

extern "C" sf_status sf_cuda_graph_begin(const sf_cuda_ctx *ctx, sf_err *err) {
    sf_status st = SF_OK;
    if (!ctx || !ctx->stream) return sf_fail(err, SF_E_ARG, "sf_cuda_graph_begin: CUDA context not initialised");
    CUDA_CHECK(cudaStreamBeginCapture(SF_CUDA_STREAM(ctx), cudaStreamCaptureModeThreadLocal));
    return SF_OK;
fail:
    (void)cudaGetLastError(); /* the caller runs the work directly: its first launch check must not see this */
    return st;
}

extern "C" sf_status sf_cuda_graph_end(const sf_cuda_ctx *ctx, sf_cuda_graphs *gs, uint64_t key, int run, sf_err *err) {
    if (!ctx || !ctx->stream || !gs) return sf_fail(err, SF_E_ARG, "sf_cuda_graph_end: no context or graph cache");
    cudaStream_t s = SF_CUDA_STREAM(ctx);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(s, &g);
    if (e != cudaSuccess || !g) {
        const char *why = cudaGetErrorString(e);
        (void)cudaGetLastError(); /* the invalidation is not a device fault: the caller goes on without a graph */
        gs->st.failed++;
        return sf_fail(err, SF_E_DEVICE, "CUDA graph capture failed: %s", why);
    }
    if (!run) {
        cudaGraphDestroy(g);
        return SF_OK;
    }
    int k = -1, lru = 0;
    for (int i = 0; i < GRAPH_SLOTS; i++) {
        if (gs->slot[i].exec && gs->slot[i].key == key) k = i;
        if (!gs->slot[i].exec || (gs->slot[lru].exec && gs->slot[i].used < gs->slot[lru].used)) lru = i;
    }
    if (k >= 0) { /* the same work with new arguments: update in place (launches already enqueued keep theirs) */
        cudaGraphExecUpdateResultInfo info = {};
        if (cudaGraphExecUpdate(gs->slot[k].exec, g, &info) == cudaSuccess) {
            gs->st.updates++;
        } else { /* another shape of work under this key, or a change the runtime does not update in place */
            (void)cudaGetLastError();
            gs->st.refused++;
            gs->st.last_refusal = (int)info.result;
            cudaGraphExecDestroy(gs->slot[k].exec); /* an in-flight launch completes first */
            gs->slot[k].exec = NULL;
        }
    } else {
        k = lru;
        if (gs->slot[k].exec) cudaGraphExecDestroy(gs->slot[k].exec);
        gs->slot[k].exec = NULL;
    }
    if (!gs->slot[k].exec) {
        e = cudaGraphInstantiate(&gs->slot[k].exec, g, 0);
        if (e != cudaSuccess) {
            const char *why = cudaGetErrorString(e);
            (void)cudaGetLastError();
            cudaGraphDestroy(g);
            gs->slot[k].exec = NULL;
            gs->st.failed++;
            return sf_fail(err, SF_E_DEVICE, "CUDA graph: cudaGraphInstantiate: %s", why);
        }
        gs->st.instantiations++;
    }
    cudaGraphDestroy(g);
    gs->slot[k].key = key, gs->slot[k].used = ++gs->tick;
    e = cudaGraphLaunch(gs->slot[k].exec, s);
    if (e != cudaSuccess) {
        const char *why = cudaGetErrorString(e);
        (void)cudaGetLastError(); /* as above: the caller's direct run must not inherit it */
        gs->st.failed++;
        return sf_fail(err, SF_E_DEVICE, "CUDA graph: cudaGraphLaunch: %s", why);
    }
    gs->st.launches++;
    return SF_OK;
}

extern "C" void sf_cuda_graph_stats_get(const sf_cuda_graphs *gs, sf_cuda_graph_stats *out) {
    if (gs) *out = gs->st;
    else memset(out, 0, sizeof *out);
}
