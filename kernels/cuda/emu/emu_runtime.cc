/* emu_runtime.cc — the CUDA runtime API of the CPU emulation (cuda_emu.h): errors (the last and the
 * sticky one), devices, streams and events (synchronous), device memory (registered host memory, so
 * a host pointer where device memory is due is caught), pinned host memory and copies. The scheduler
 * and kernel launches are cuda_emu.cc's; the state both halves share is declared in emu_state.h.
 * Part of the emulated objects (Makefile EMU_SRC), never of libsf.a. */
#include "cuda_emu.h"
#include "emu_state.h"

#include <stdio.h>
#include <stdlib.h>

#include <deque>
#include <mutex>
#include <vector>

/* The emulated device's memory (cudaMemGetInfo) and the most a host pins in one call: a larger
 * allocation is refused with cudaErrorMemoryAllocation, as on a GPU (test_cuda_emu alloc_refusals). */
#define EMU_DEVICE_BYTES (1ull << 30)
#define EMU_PINNED_BYTES (1ull << 38)

using namespace sf_emu;

namespace {
struct stream_tag { /* what a cudaStream_t points at: a registered zero-size allocation */
    int dummy;
};
} // namespace
/* An event: the position in the deferred queue its record took (0: nothing to wait for). */
struct CUevent_st {
    unsigned long long pos;
    bool captured; /* last recorded into a stream capture: waits and timings on it fail until recorded again */
};

/* ---- deferred streams (SF_EMU_ASYNC=1, cuda_emu.h "Asynchrony") ------------------------------ */
namespace {
int async_on = -1;                       /* -1: $SF_EMU_ASYNC not read yet */
std::deque<std::function<void()>> queue; /* enqueued, not yet run, in enqueue order */
unsigned long long n_enqueued, n_ran;    /* positions: operations queued / run since the start */
/* Run the queue up to position pos (an event's record) or all of it. After a fault the rest is dropped
   (a faulted context runs nothing more; the sticky error is reported by the waits). */
void drain_to(unsigned long long pos) {
    while (n_ran < pos && !queue.empty()) {
        std::function<void()> op = std::move(queue.front());
        queue.pop_front();
        n_ran++;
        if (!sticky_error) op();
    }
}
void drain(void) { drain_to(n_enqueued); }
} // namespace
bool sf_emu::deferring() {
    if (async_on < 0) {
        const char *e = getenv("SF_EMU_ASYNC");
        async_on = e && *e && strcmp(e, "0") != 0;
    }
    return async_on > 0;
}
void sf_emu::defer(std::function<void()> run) {
    queue.push_back(std::move(run));
    n_enqueued++;
}
extern "C" void sf_emu_set_async(int on) {
    drain();
    async_on = on != 0;
}
extern "C" unsigned long long sf_emu_queued(void) { return (unsigned long long)queue.size(); }

/* ---- runtime ------------------------------------------------------------------------------- */
cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidPitchValue: return "cudaErrorInvalidPitchValue";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorCapturedEvent: return "cudaErrorCapturedEvent";
    case cudaErrorGraphExecUpdateFailure: return "cudaErrorGraphExecUpdateFailure";
    }
    return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t e) {
    static char buf[1100];
    if (e == cudaSuccess) return "no error";
    if (err_msg[0]) {
        snprintf(buf, sizeof buf, "%s (emulated: %s)", cudaGetErrorName(e), err_msg);
        return buf;
    }
    return cudaGetErrorName(e);
}
/* ---- devices: $SF_EMU_DEVICES of them (default 1), the current one per host thread ---------------- */
thread_local int sf_emu::cur_dev = 0;
int sf_emu::devices() { /* read at every call: a test may set it after the process started */
    const char *e = getenv("SF_EMU_DEVICES");
    const int n = e && *e ? atoi(e) : 1;
    return n < 1 ? 1 : n > 8 ? 8 : n;
}
bool sf_emu::same_device(const char *what, const void *s, const void *a, const void *b) {
    const void *ps[3] = {s, a, b};
    for (int i = 0; i < 3; i++) {
        const int d = ps[i] ? alloc_device(ps[i]) : -1;
        if (d < 0 || d == cur_dev) continue;
        snprintf(err_msg, sizeof err_msg,
                 "%s: %s of cuda:%d used while cuda:%d is this host thread's current device (no cudaSetDevice(%d) "
                 "in this thread?)", what, i ? "device memory" : "a stream", d, cur_dev, d);
        last_error = i ? cudaErrorInvalidValue : cudaErrorInvalidResourceHandle;
        return false;
    }
    return true;
}
cudaError_t cudaSetDevice(int d) {
    if (d < 0 || d >= devices()) return set_error(cudaErrorInvalidDevice);
    cur_dev = d;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *d) {
    *d = cur_dev;
    return cudaSuccess;
}
extern "C" int sf_emu_current_device(void) { return cur_dev; }
extern "C" int sf_emu_set_device(int d) { return cudaSetDevice(d) == cudaSuccess ? 0 : -1; }
/* Host waits (sf_emu_host_waits): what would block the host thread on a GPU until the stream drains. */
static unsigned long long n_host_waits;
/* Page-locked host allocations (cudaMallocHost): async copies from / to them do not wait. */
struct pinned_range {
    const char *p;
    size_t n;
};
static std::vector<pinned_range> pinned; /* every live one (a fixed table would call the rest pageable) */
static std::mutex pinned_mu;               /* host threads may allocate while another copies */
static bool is_pinned(const void *p, size_t bytes) {
    std::lock_guard<std::mutex> lk(pinned_mu);
    for (const pinned_range &r : pinned)
        if ((const char *)p >= r.p && (const char *)p + bytes <= r.p + r.n) return true;
    return false;
}
cudaError_t cudaGetDeviceCount(int *n) {
    *n = devices();
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
    if (capture_active()) return capture_illegal("cudaDeviceSynchronize");
    n_host_waits++;
    drain();
    return sticky_error;
}

static cudaError_t add_alloc(void *p, size_t n) {
    if (nallocs == cap_allocs) {
        size_t nc = cap_allocs ? 2 * cap_allocs : 64;
        alloc *na = (alloc *)realloc(allocs, nc * sizeof *na);
        if (!na) return cudaErrorMemoryAllocation;
        allocs = na, cap_allocs = nc;
    }
    allocs[nallocs++] = alloc{(char *)p, n, cur_dev};
    return cudaSuccess;
}
static bool del_alloc(void *p) {
    for (size_t i = 0; i < nallocs; i++)
        if (allocs[i].p == p) {
            allocs[i] = allocs[--nallocs];
            return true;
        }
    return false;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int) {
    void *p = malloc(sizeof(stream_tag));
    if (!p || add_alloc(p, 0) != cudaSuccess) {
        free(p);
        return set_error(cudaErrorMemoryAllocation);
    }
    *s = (cudaStream_t)p;
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    drain(); /* work already enqueued still runs (a GPU finishes it after the call returns) */
    if (!s || !del_alloc(s)) return set_error(cudaErrorInvalidResourceHandle);
    free(s);
    return cudaSuccess;
}
/* One stream per context in this project: a stream's wait drains the whole queue (a GPU's would wait for
   that stream and what it waited on; everything queued before is at least that). */
cudaError_t cudaStreamSynchronize(cudaStream_t) {
    if (capture_active()) return capture_illegal("cudaStreamSynchronize");
    n_host_waits++;
    drain();
    return sticky_error;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new CUevent_st{0, false};
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
/* Recorded inside a capture: nothing (the project records its events outside forwards). */
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!e) return set_error(cudaErrorInvalidResourceHandle);
    if (!same_device("cudaEventRecord", s, nullptr, nullptr)) return last_error;
    e->captured = capturing(s); /* a node of the graph, as on a GPU: the event itself is not reached here */
    if (!e->captured) e->pos = n_enqueued;
    return cudaSuccess;
}
static cudaError_t captured_event(const char *what) {
    snprintf(err_msg, sizeof err_msg, "%s on an event last recorded inside a stream capture", what);
    return set_error(cudaErrorCapturedEvent);
}
static unsigned long long n_event_waits;
extern "C" unsigned long long sf_emu_event_waits(void) { return n_event_waits; }
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (capture_active()) return capture_illegal("cudaEventSynchronize");
    if (!e) return set_error(cudaErrorInvalidResourceHandle);
    if (e->captured) return captured_event("cudaEventSynchronize");
    n_event_waits++;
    drain_to(e->pos);
    return sticky_error;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = 0;
    if (!a || !b) return set_error(cudaErrorInvalidResourceHandle);
    if (a->captured || b->captured) return captured_event("cudaEventElapsedTime");
    return cudaSuccess;
}

static unsigned long long n_vector_loads;
extern "C" unsigned long long sf_emu_vector_loads(void) { return n_vector_loads; }
extern "C" void sf_emu_count_vector_load(void) { n_vector_loads++; }
static unsigned long long n_vector_fallbacks;
extern "C" unsigned long long sf_emu_vector_fallbacks(void) { return n_vector_fallbacks; }
extern "C" void sf_emu_count_vector_fallback(void) { n_vector_fallbacks++; }
static unsigned long long n_device_allocs;
extern "C" unsigned long long sf_emu_device_allocs(void) { return n_device_allocs; }
cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = nullptr;
    if (sticky_error) return set_error(sticky_error); /* a context lost to a fault: every call reports it */
    if (capture_active()) return capture_illegal("cudaMalloc");
    n_device_allocs++;
    if (bytes > EMU_DEVICE_BYTES) return set_error(cudaErrorMemoryAllocation); /* more than the whole device */
    void *m = malloc(bytes ? bytes : 1);
    if (!m) return set_error(cudaErrorMemoryAllocation);
    /* A GPU's fresh allocation holds whatever was there (often an earlier buffer's data): poisoned
       (0xFF: NaN as f32 / bf16, -1 as integers) so that a kernel or copy reading memory nothing wrote
       shows, as compute-sanitizer's initcheck would on the GPU. */
    memset(m, 0xFF, bytes);
    if (add_alloc(m, bytes) != cudaSuccess) {
        free(m);
        return set_error(cudaErrorMemoryAllocation);
    }
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d < 0 || d >= devices()) return set_error(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "sf_emu (CPU emulation)");
    p->totalGlobalMem = 1ull << 30;
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = 227 * 1024;
    p->major = 9, p->minor = 0, p->multiProcessorCount = 1, p->warpSize = 32, p->maxThreadsPerBlock = 1024;
    p->maxThreadsPerMultiProcessor = 2048;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = EMU_DEVICE_BYTES;
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes) { /* pinned host memory: plain host memory, remembered */
    if (capture_active()) {
        *p = nullptr;
        return capture_illegal("cudaMallocHost");
    }
    if (bytes > EMU_PINNED_BYTES) return set_error(cudaErrorMemoryAllocation); /* more than a host can pin */
    *p = malloc(bytes ? bytes : 1);
    if (*p) memset(*p, 0xFF, bytes); /* poisoned like device memory: a slot read before any copy filled it shows */
    if (*p) {
        std::lock_guard<std::mutex> lk(pinned_mu);
        pinned.push_back({(const char *)*p, bytes});
    }
    return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void *p) {
    if (capture_active()) return capture_illegal("cudaFreeHost");
    drain(); /* synchronises on a GPU */
    std::lock_guard<std::mutex> lk(pinned_mu);
    for (size_t i = 0; i < pinned.size(); i++)
        if (pinned[i].p == p) {
            pinned[i] = pinned.back();
            pinned.pop_back();
            break;
        }
    free(p);
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    if (capture_active()) return capture_illegal("cudaFree");
    drain(); /* synchronises on a GPU */
    if (!del_alloc(p)) return set_error(cudaErrorInvalidValue); /* not a cudaMalloc'd base pointer */
    free(p);
    return cudaSuccess;
}
/* The copy itself, once the pointers match the kind. */
static cudaError_t copy_now(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (sticky_error) return sticky_error;
    bool dd = registered(dst, bytes), sd = registered(src, bytes);
    bool ok = kind == cudaMemcpyDefault || (kind == cudaMemcpyHostToDevice && dd && !sd) ||
              (kind == cudaMemcpyDeviceToHost && sd && !dd) || (kind == cudaMemcpyDeviceToDevice && dd && sd) ||
              (kind == cudaMemcpyHostToHost && !dd && !sd);
    if (!ok) {
        snprintf(err_msg, sizeof err_msg, "cudaMemcpy kind %d does not match the pointers (dst %s, src %s, %zu bytes)",
                 (int)kind, dd ? "device" : "host", sd ? "device" : "host", bytes);
        return set_error(cudaErrorInvalidValue);
    }
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (capture_active()) return capture_illegal("cudaMemcpy");
    if (!same_device("cudaMemcpy", nullptr, dst, src)) return last_error;
    drain();
    return copy_now(dst, src, bytes, kind);
}
/* A copy recorded into a capture (node name: what). One from or to pageable host memory is refused: a
 * replay would touch that memory long after the caller moved on (pinned staging is the pattern). The
 * pointers are checked again when the graph runs. */
static cudaError_t capture_copy(cudaStream_t s, const char *what, bool host_side, const void *host, size_t hbytes,
                                std::function<void()> run, void *host_dst = nullptr) {
    if (host_side && !is_pinned(host, hbytes)) {
        char why[96];
        snprintf(why, sizeof why, "%s from or to pageable host memory", what);
        return capture_illegal(why);
    }
    return capture_node(s, "memcpy", what, std::move(run), host_dst, host_dst ? hbytes : 0);
}
/* An async copy between the device and PAGEABLE host memory waits like a synchronous one on a GPU
 * (the driver stages it): counted as a host wait. */
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    const bool h2d = kind == cudaMemcpyHostToDevice, d2h = kind == cudaMemcpyDeviceToHost;
    if (!same_device("cudaMemcpyAsync", s, dst, src)) return last_error;
    std::function<void()> later = [=] { /* recorded or queued */
        if (copy_now(dst, src, bytes, kind) != cudaSuccess) sticky_error = last_error;
    };
    if (capturing(s))
        return capture_copy(s, "cudaMemcpyAsync", h2d || d2h, h2d ? src : dst, bytes, std::move(later), d2h ? dst : nullptr);
    if (capture_active()) return capture_illegal("cudaMemcpyAsync on another stream");
    const bool pageable = (h2d && !is_pinned(src, bytes)) || (d2h && !is_pinned(dst, bytes));
    if (pageable) n_host_waits++;
    if (deferring() && !pageable) { /* from pinned memory: read when it runs; into it: poison until then */
        if (d2h && bytes) memset(dst, 0xFF, bytes);
        defer(std::move(later));
        return cudaSuccess;
    }
    drain();
    return copy_now(dst, src, bytes, kind);
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
    if (width > dpitch || width > spitch) return set_error(cudaErrorInvalidValue);
    if (dpitch > 2147483647u || spitch > 2147483647u) return set_error(cudaErrorInvalidPitchValue); /* cudaDevAttrMaxPitch */
    if (!same_device("cudaMemcpy2DAsync", s, dst, src)) return last_error;
    const bool h2d = kind == cudaMemcpyHostToDevice, d2h = kind == cudaMemcpyDeviceToHost;
    std::function<void()> later = [=] { /* recorded or queued */
        for (size_t r = 0; r < height; r++)
            if (copy_now((char *)dst + r * dpitch, (const char *)src + r * spitch, width, kind) != cudaSuccess) {
                sticky_error = last_error;
                return;
            }
    };
    if (capturing(s)) return capture_copy(s, "cudaMemcpy2DAsync", h2d || d2h, h2d ? src : dst, 1, std::move(later));
    if (capture_active()) return capture_illegal("cudaMemcpy2DAsync on another stream");
    const bool pageable = (h2d && !is_pinned(src, 1)) || (d2h && !is_pinned(dst, 1));
    if (pageable) n_host_waits++;
    if (deferring() && !pageable) {
        if (d2h)
            for (size_t r = 0; r < height; r++) memset((char *)dst + r * dpitch, 0xFF, width);
        defer(std::move(later));
        return cudaSuccess;
    }
    drain();
    for (size_t r = 0; r < height; r++) {
        cudaError_t e = copy_now((char *)dst + r * dpitch, (const char *)src + r * spitch, width, kind);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}
extern "C" unsigned long long sf_emu_host_waits(void) { return n_host_waits; }

static cudaError_t set_now(void *p, int byte, size_t bytes) {
    if (sticky_error) return sticky_error;
    if (!registered(p, bytes)) {
        snprintf(err_msg, sizeof err_msg, "cudaMemset of %zu bytes at %p: not device memory", bytes, p);
        return set_error(cudaErrorInvalidValue);
    }
    if (bytes) memset(p, byte, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int byte, size_t bytes) {
    if (capture_active()) return capture_illegal("cudaMemset");
    if (!same_device("cudaMemset", nullptr, p, nullptr)) return last_error;
    drain();
    return set_now(p, byte, bytes);
}
cudaError_t cudaMemsetAsync(void *p, int byte, size_t bytes, cudaStream_t s) {
    if (!same_device("cudaMemsetAsync", s, p, nullptr)) return last_error;
    const bool cap = capturing(s);
    if (!cap && capture_active()) return capture_illegal("cudaMemsetAsync on another stream");
    if (cap || deferring()) { /* recorded or queued */
        if (!registered(p, bytes)) return set_now(p, byte, bytes); /* the refusal, at enqueue time */
        std::function<void()> later = [=] {
            if (set_now(p, byte, bytes) != cudaSuccess) sticky_error = last_error;
        };
        if (cap) return capture_node(s, "memset", "cudaMemsetAsync", std::move(later));
        defer(std::move(later));
        return cudaSuccess;
    }
    return set_now(p, byte, bytes);
}
