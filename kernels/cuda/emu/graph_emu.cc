/* graph_emu.cc — stream capture and CUDA graphs in the CPU emulation (cuda_emu.h, "stream capture and
 * graphs"): what a capture records, what it refuses, and how an executable graph is updated and run.
 * Work recorded here runs only at cudaGraphLaunch, in the order it was enqueued, so a capture that
 * missed something (work that ran at capture time instead, out of order) or a graph replayed with
 * stale arguments shows up in a test's results. Part of the emulated objects (Makefile EMU_SRC). */
#include "cuda_emu.h"
#include "emu_state.h"

#include <stdio.h>

#include <string>
#include <vector>

using namespace sf_emu;

namespace {
struct node {
    std::string kind, name;
    std::function<void()> run;
    void *host_dst; /* a copy into pinned host memory: poisoned when a deferred launch is queued */
    size_t host_n;
};
unsigned long long n_instantiated, n_updated, n_graph_launches;
int break_after; /* sf_emu_capture_break_after: the n-th recorded node invalidates the capture */
} // namespace

struct CUgraph_st {
    std::vector<node> nodes;
};
struct CUgraphExec_st {
    std::vector<node> nodes;
};

namespace {
cudaStream_t cap_stream;
cudaStreamCaptureStatus cap_status = cudaStreamCaptureStatusNone;
CUgraph_st *cap_graph;
} // namespace

namespace sf_emu {
bool capturing(cudaStream_t s) { return cap_status != cudaStreamCaptureStatusNone && s == cap_stream; }
bool capture_active() { return cap_status != cudaStreamCaptureStatusNone; }

cudaError_t capture_illegal(const char *what) {
    if (cap_status == cudaStreamCaptureStatusActive)
        snprintf(err_msg, sizeof err_msg, "%s while stream %p is being captured (the capture is invalidated)", what,
                 (void *)cap_stream);
    else
        snprintf(err_msg, sizeof err_msg, "%s while a stream capture is active", what);
    cap_status = cudaStreamCaptureStatusInvalidated;
    return set_error(cudaErrorStreamCaptureUnsupported);
}

cudaError_t capture_node(cudaStream_t s, const char *kind, const char *name, std::function<void()> run, void *host_dst,
                         size_t host_n) {
    if (!capturing(s)) return set_error(cudaErrorIllegalState);
    if (cap_status == cudaStreamCaptureStatusInvalidated) {
        snprintf(err_msg, sizeof err_msg, "%s %s: enqueued into an invalidated capture", kind, name);
        return set_error(cudaErrorStreamCaptureInvalidated);
    }
    if (break_after > 0 && --break_after == 0) return capture_illegal("an operation that cannot be captured (emulated)");
    cap_graph->nodes.push_back(node{kind, name, std::move(run), host_dst, host_n});
    return cudaSuccess;
}
} // namespace sf_emu

extern "C" void sf_emu_capture_break_after(int n) { break_after = n > 0 ? n : 0; }
extern "C" unsigned long long sf_emu_graph_instantiations(void) { return n_instantiated; }
extern "C" unsigned long long sf_emu_graph_updates(void) { return n_updated; }
extern "C" unsigned long long sf_emu_graph_launches(void) { return n_graph_launches; }

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    if (!s || !registered(s, 0)) {
        snprintf(err_msg, sizeof err_msg, "cudaStreamBeginCapture: the legacy stream or an unknown stream %p", (void *)s);
        return set_error(cudaErrorStreamCaptureUnsupported);
    }
    if (!same_device("cudaStreamBeginCapture", s, nullptr, nullptr)) return last_error;
    if (cap_status != cudaStreamCaptureStatusNone) {
        snprintf(err_msg, sizeof err_msg, "cudaStreamBeginCapture: a capture is already active (one at a time here)");
        return set_error(cudaErrorIllegalState);
    }
    cap_stream = s, cap_status = cudaStreamCaptureStatusActive, cap_graph = new CUgraph_st;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
    *g = nullptr;
    if (cap_status == cudaStreamCaptureStatusNone || s != cap_stream) {
        snprintf(err_msg, sizeof err_msg, "cudaStreamEndCapture: stream %p is not capturing", (void *)s);
        return set_error(cudaErrorIllegalState);
    }
    const bool ok = cap_status == cudaStreamCaptureStatusActive;
    cap_status = cudaStreamCaptureStatusNone, cap_stream = nullptr;
    if (!ok) {
        delete cap_graph;
        cap_graph = nullptr;
        return set_error(cudaErrorStreamCaptureInvalidated);
    }
    *g = cap_graph;
    cap_graph = nullptr;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status) {
    *status = capturing(s) ? cap_status : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long) {
    *exec = nullptr;
    if (!g) return set_error(cudaErrorInvalidValue);
    *exec = new CUgraphExec_st{g->nodes};
    n_instantiated++;
    return cudaSuccess;
}

cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t g, cudaGraphExecUpdateResultInfo *info) {
    if (info) *info = cudaGraphExecUpdateResultInfo{cudaGraphExecUpdateSuccess, nullptr, nullptr};
    if (!exec || !g) return set_error(cudaErrorInvalidValue);
    bool same = exec->nodes.size() == g->nodes.size();
    for (size_t i = 0; same && i < g->nodes.size(); i++) same = exec->nodes[i].kind == g->nodes[i].kind;
    if (!same) {
        if (info) info->result = cudaGraphExecUpdateErrorTopologyChanged;
        snprintf(err_msg, sizeof err_msg, "cudaGraphExecUpdate: %zu nodes against %zu, or another kind of node",
                 g->nodes.size(), exec->nodes.size());
        return set_error(cudaErrorGraphExecUpdateFailure);
    }
    exec->nodes = g->nodes;
    n_updated++;
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    if (!exec || (s && !registered(s, 0))) return set_error(cudaErrorInvalidResourceHandle);
    if (!same_device("cudaGraphLaunch", s, nullptr, nullptr)) return last_error;
    if (capture_active()) return capture_illegal("cudaGraphLaunch (graphs in graphs are not emulated)");
    if (sticky_error) return sticky_error;
    n_graph_launches++;
    if (deferring()) { /* the nodes as they are now: an update after the launch does not change it */
        auto nodes = std::make_shared<std::vector<node>>(exec->nodes);
        for (const node &n : *nodes)
            if (n.host_dst && n.host_n) memset(n.host_dst, 0xFF, n.host_n);
        defer([nodes] {
            for (const node &n : *nodes) {
                n.run();
                if (sticky_error) return;
            }
        });
        return cudaSuccess;
    }
    for (const node &n : exec->nodes) {
        n.run();
        if (sticky_error) return sticky_error;
    }
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}
