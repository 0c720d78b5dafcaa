/* cuda_emu.cc — the scheduler and host runtime of the CUDA CPU emulation (see cuda_emu.h for what
 * is faithful and what it is blind to): blocks run one after another, the threads of a block as
 * ucontext coroutines that switch only at barriers and warp collectives; cudaMalloc is registered
 * host memory; streams are synchronous; cublasGemmEx is a plain loop.
 * Built only into build/tests/test_cuda_emu (Makefile, EMU_*), tested by tests/unit/test_cuda_emu.c.
 * Under AddressSanitizer every stack switch is announced with __sanitizer_start/finish_switch_fiber. */
#include "cuda_emu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SF_EMU_ASAN 1
#else
#define SF_EMU_ASAN 0
#endif

namespace sf_emu {

index_state cur;

namespace {

enum tstate { T_READY, T_BAR, T_WARP, T_DONE, T_FAULT };

struct thr {
    ucontext_t uc;
    char *stack;      /* usable stack (above the guard page) */
    void *fake_stack; /* ASan: this fiber's fake stack while switched out */
    tstate state;
    uint3 idx;
    const char *file; /* where it waits */
    int line;
    warp_kind wkind;
    unsigned wmask;
    uint64_t wval, wres;
    int warg;
};

const size_t STACK = 256 * 1024; /* per thread; kernels are leaf-ish, ASan frames are bigger */
thr *thrs;
unsigned nthr_cap;
unsigned cur_t;      /* index of the running coroutine */
unsigned nthreads;   /* threads of the current block */
bool in_launch;
ucontext_t sched_uc;
#if SF_EMU_ASAN
void *sched_fake;          /* the scheduler's fake stack while a coroutine runs */
const void *sched_bottom;  /* the scheduler's stack, learned at the first switch */
size_t sched_size;
#endif
void (*body)(void *);
void *body_arg;

char fault_msg[512]; /* a thread's own fault (set before it yields with T_FAULT) */
char err_msg[1024];  /* the last kernel failure, for cudaGetErrorString */
cudaError_t last_error = cudaSuccess;   /* cleared by cudaGetLastError */
cudaError_t sticky_error = cudaSuccess; /* reported by every sync until sf_emu_reset */
bool quiet;
long long max_blocks_cap;
unsigned long long n_launches, n_threads_run;

unsigned char *dyn_buf;
size_t dyn_size;

struct alloc {
    char *p;
    size_t n;
};
alloc *allocs;
size_t nallocs, cap_allocs;

struct stream_tag {
    int dummy;
};

extern "C" char __start_sf_emu_shared[] __attribute__((weak));
extern "C" char __stop_sf_emu_shared[] __attribute__((weak));

/* No ASan check: the section may hold padding that is not a variable. */
__attribute__((no_sanitize_address)) void poison(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) ((volatile unsigned char *)p)[i] = 0xFF;
}

void to_thread(unsigned t) {
#if SF_EMU_ASAN
    __sanitizer_start_switch_fiber(&sched_fake, thrs[t].stack, STACK);
#endif
    swapcontext(&sched_uc, &thrs[t].uc);
#if SF_EMU_ASAN
    __sanitizer_finish_switch_fiber(sched_fake, nullptr, nullptr);
#endif
}

void to_scheduler(bool exiting) {
    thr &t = thrs[cur_t];
#if SF_EMU_ASAN
    __sanitizer_start_switch_fiber(exiting ? nullptr : &t.fake_stack, sched_bottom, sched_size);
#else
    (void)exiting;
#endif
    swapcontext(&t.uc, &sched_uc);
#if SF_EMU_ASAN
    __sanitizer_finish_switch_fiber(t.fake_stack, &sched_bottom, &sched_size);
#endif
}

void entry(void) {
#if SF_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &sched_bottom, &sched_size);
#endif
    body(body_arg);
    thrs[cur_t].state = T_DONE;
    to_scheduler(true); /* never resumed */
    abort();
}

bool ensure_threads(unsigned n) {
    if (n <= nthr_cap) return true;
    thr *nt = (thr *)realloc(thrs, n * sizeof *nt);
    if (!nt) return false;
    thrs = nt;
    /* ucontext_t points into itself (uc_mcontext.fpregs): re-initialise the moved ones. No
     * coroutine is alive between launches, so nothing else refers to them. */
    for (unsigned i = 0; i < nthr_cap; i++)
        if (getcontext(&thrs[i].uc) != 0) return false;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (unsigned i = nthr_cap; i < n; i++) {
        memset(&thrs[i], 0, sizeof thrs[i]);
        void *m = mmap(nullptr, STACK + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return false;
        mprotect(m, page, PROT_NONE); /* a stack overflow faults instead of corrupting a neighbour */
        thrs[i].stack = (char *)m + page;
        if (getcontext(&thrs[i].uc) != 0) return false;
        nthr_cap = i + 1;
    }
    return true;
}

void set_index(unsigned t) {
    cur_t = t;
    cur.tid = thrs[t].idx;
}

/* Try to complete the warp collectives of warp w; 1 = released some lanes, 0 = nothing to do,
 * -1 = an error (message in fault_msg). */
int complete_warp(unsigned w) {
    unsigned lo = w * 32, hi = lo + 32 < nthreads ? lo + 32 : nthreads;
    int released = 0;
    for (unsigned l = lo; l < hi; l++) {
        thr &a = thrs[l];
        if (a.state != T_WARP) continue;
        unsigned mask = a.wmask;
        bool ready = true;
        for (unsigned m = lo; m < hi; m++) {
            if (!(mask >> (m - lo) & 1u)) continue;
            thr &b = thrs[m];
            if (b.state == T_DONE) continue; /* exited lanes are not waited for */
            if (b.state != T_WARP) {
                ready = false;
                continue;
            }
            if (b.wmask != mask || b.wkind != a.wkind) {
                snprintf(fault_msg, sizeof fault_msg,
                         "divergent warp collective in warp %u: lane %u at %s:%d (mask %08x) and lane %u at %s:%d "
                         "(mask %08x)",
                         w, l - lo, a.file, a.line, mask, m - lo, b.file, b.line, b.wmask);
                return -1;
            }
        }
        if (!ready) continue;
        unsigned ballot = 0;
        for (unsigned m = lo; m < hi; m++)
            if ((mask >> (m - lo) & 1u) && thrs[m].state == T_WARP && thrs[m].warg) ballot |= 1u << (m - lo);
        for (unsigned m = lo; m < hi; m++) {
            if (!(mask >> (m - lo) & 1u) || thrs[m].state != T_WARP) continue;
            thr &b = thrs[m];
            if (b.wkind == W_SHFL) {
                int src = b.warg;
                unsigned s = lo + (unsigned)src;
                if (src < 0 || src > 31 || !(mask >> src & 1u) || s >= hi || thrs[s].state != T_WARP) {
                    snprintf(fault_msg, sizeof fault_msg,
                             "shuffle at %s:%d: lane %u reads lane %d of warp %u, which does not take part "
                             "(mask %08x, %u threads in the block)",
                             b.file, b.line, m - lo, src, w, mask, nthreads);
                    return -1;
                }
                b.wres = thrs[s].wval;
            } else {
                b.wres = b.wkind == W_BALLOT ? ballot : 0;
            }
        }
        for (unsigned m = lo; m < hi; m++)
            if ((mask >> (m - lo) & 1u) && thrs[m].state == T_WARP) thrs[m].state = T_READY;
        released = 1;
    }
    return released;
}

/* Run one block to completion; false = failed (message in fault_msg). */
bool run_block(void) {
    for (unsigned t = 0; t < nthreads; t++) {
        thr &th = thrs[t];
        th.state = T_READY;
        th.fake_stack = nullptr;
        th.uc.uc_stack.ss_sp = th.stack;
        th.uc.uc_stack.ss_size = STACK;
        th.uc.uc_link = nullptr;
        makecontext(&th.uc, entry, 0);
    }
    for (;;) {
        for (unsigned t = 0; t < nthreads; t++) {
            if (thrs[t].state != T_READY) continue;
            set_index(t);
            to_thread(t);
            if (thrs[t].state == T_FAULT) return false;
        }
        unsigned done = 0, bar = 0, warp = 0, first_done = 0, first_bar = 0;
        for (unsigned t = 0; t < nthreads; t++) {
            tstate s = thrs[t].state;
            if (s == T_DONE && done++ == 0) first_done = t;
            if (s == T_BAR && bar++ == 0) first_bar = t;
            if (s == T_WARP) warp++;
        }
        if (done == nthreads) return true;
        if (warp) {
            int any = 0;
            for (unsigned w = 0; w * 32 < nthreads; w++) {
                int r = complete_warp(w);
                if (r < 0) return false;
                any |= r;
            }
            if (any) continue;
        }
        if (bar && bar + done == nthreads) {
            const thr &a = thrs[first_bar];
            if (done) {
                const uint3 &d = thrs[first_done].idx;
                snprintf(fault_msg, sizeof fault_msg,
                         "divergent __syncthreads: %u of %u threads wait at %s:%d but %u exited without reaching "
                         "it (first: thread (%u,%u,%u))",
                         bar, nthreads, a.file, a.line, done, d.x, d.y, d.z);
                return false;
            }
            for (unsigned t = 0; t < nthreads; t++) {
                const thr &b = thrs[t];
                if (b.line != a.line || strcmp(b.file, a.file) != 0) {
                    snprintf(fault_msg, sizeof fault_msg,
                             "divergent __syncthreads: thread (%u,%u,%u) waits at %s:%d, thread (%u,%u,%u) at %s:%d",
                             a.idx.x, a.idx.y, a.idx.z, a.file, a.line, b.idx.x, b.idx.y, b.idx.z, b.file, b.line);
                    return false;
                }
            }
            for (unsigned t = 0; t < nthreads; t++) thrs[t].state = T_READY;
            continue;
        }
        /* Nothing can move: describe one waiting thread of each kind. */
        int off = snprintf(fault_msg, sizeof fault_msg, "deadlock: %u at __syncthreads, %u in warp collectives, %u exited",
                           bar, warp, done);
        for (unsigned t = 0; t < nthreads && off < (int)sizeof fault_msg; t++) {
            const thr &b = thrs[t];
            if (b.state == T_WARP) {
                snprintf(fault_msg + off, sizeof fault_msg - (size_t)off,
                         "; thread (%u,%u,%u) waits in a warp collective at %s:%d (mask %08x) for a lane in %s", b.idx.x,
                         b.idx.y, b.idx.z, b.file, b.line, b.wmask, bar ? "__syncthreads" : "another collective");
                break;
            }
        }
        return false;
    }
}

thr &running(const char *what) {
    if (!in_launch) {
        fprintf(stderr, "sf_emu: %s called outside a kernel\n", what);
        abort();
    }
    return thrs[cur_t];
}

bool registered(const void *p, size_t need) {
    const char *c = (const char *)p;
    for (size_t i = 0; i < nallocs; i++)
        if (c >= allocs[i].p && c <= allocs[i].p + allocs[i].n) return need <= (size_t)(allocs[i].p + allocs[i].n - c);
    return false;
}

cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

} // namespace

void syncthreads(const char *file, int line) {
    thr &t = running("__syncthreads");
    t.state = T_BAR;
    t.file = file;
    t.line = line;
    to_scheduler(false);
    cur.tid = thrs[cur_t].idx;
}

uint64_t warp_op(warp_kind kind, unsigned mask, uint64_t val, int arg, const char *file, int line) {
    thr &t = running("a warp intrinsic");
    unsigned lane = lane_id();
    t.file = file;
    t.line = line;
    if (!(mask >> lane & 1u)) {
        snprintf(fault_msg, sizeof fault_msg, "warp collective at %s:%d: lane %u is not in its own mask %08x", file,
                 line, lane, mask);
        t.state = T_FAULT;
    } else {
        t.state = T_WARP;
        t.wkind = kind;
        t.wmask = mask;
        t.wval = val;
        t.warg = arg;
    }
    to_scheduler(false);
    cur.tid = thrs[cur_t].idx;
    return thrs[cur_t].wres;
}

unsigned lane_id(void) { return cur_t & 31u; }

void *dyn_shared(void) {
    running("dynamic shared memory");
    return dyn_buf;
}

bool is_device_ptr(const void *p) { return registered(p, 0); }

void fail_launch(const char *kernel, const char *fmt, ...) {
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(err_msg, sizeof err_msg, "%s: %s", kernel, why);
    if (!quiet) fprintf(stderr, "sf_emu: %s\n", err_msg);
    last_error = sticky_error = cudaErrorLaunchFailure;
}

void launch_raw(const char *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s, void (*run)(void *),
                void *arg) {
    unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    if (in_launch) {
        fprintf(stderr, "sf_emu: %s launched from inside a kernel or from two host threads\n", kernel);
        abort();
    }
    if (nt == 0 || nt > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 ||
        grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535 || smem > 227 * 1024) {
        snprintf(err_msg, sizeof err_msg, "%s: invalid configuration grid (%u,%u,%u) block (%u,%u,%u) smem %zu", kernel,
                 grid.x, grid.y, grid.z, block.x, block.y, block.z, smem);
        if (!quiet) fprintf(stderr, "sf_emu: %s\n", err_msg);
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (s && !registered(s, 0)) { /* streams are registered (zero-size) tags */
        snprintf(err_msg, sizeof err_msg, "%s: launched on an unknown stream %p", kernel, (void *)s);
        last_error = cudaErrorInvalidResourceHandle;
        return;
    }
    if (!ensure_threads((unsigned)nt)) {
        fprintf(stderr, "sf_emu: out of memory for %llu coroutine stacks\n", nt);
        abort();
    }
    if (smem > dyn_size) {
        unsigned char *nb = (unsigned char *)realloc(dyn_buf, smem);
        if (!nb) abort();
        dyn_buf = nb, dyn_size = smem;
    }
    n_launches++;
    nthreads = (unsigned)nt;
    body = run, body_arg = arg;
    cur.bdim = block, cur.gdim = grid;
    unsigned t = 0;
    for (unsigned z = 0; z < block.z; z++)
        for (unsigned y = 0; y < block.y; y++)
            for (unsigned x = 0; x < block.x; x++) thrs[t++].idx = uint3{x, y, z};
    in_launch = true;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                cur.bid = uint3{bx, by, bz};
                if (+__start_sf_emu_shared && +__stop_sf_emu_shared > +__start_sf_emu_shared)
                    poison((unsigned char *)__start_sf_emu_shared, (size_t)(__stop_sf_emu_shared - __start_sf_emu_shared));
                if (smem) poison(dyn_buf, smem);
                n_threads_run += nt;
                if (!run_block()) {
                    in_launch = false;
                    fail_launch(kernel, "block (%u,%u,%u) of (%u,%u,%u), %llu threads: %s", bx, by, bz, grid.x, grid.y,
                                grid.z, nt, fault_msg);
                    return;
                }
            }
    in_launch = false;
}

} // namespace sf_emu

using namespace sf_emu;

/* ---- C API (sf_emu.h) ---------------------------------------------------------------------- */
extern "C" void sf_emu_set_max_blocks(long long n) { max_blocks_cap = n > 0 ? n : 0; }
extern "C" long long sf_emu_max_blocks(void) { return max_blocks_cap > 0 ? max_blocks_cap : 65535LL * 16; }
extern "C" unsigned long long sf_emu_launches(void) { return n_launches; }
extern "C" unsigned long long sf_emu_threads_run(void) { return n_threads_run; }
extern "C" const char *sf_emu_last_error(void) { return sticky_error != cudaSuccess ? err_msg : ""; }
extern "C" void sf_emu_reset(void) {
    sticky_error = last_error = cudaSuccess;
    err_msg[0] = 0;
}
extern "C" void sf_emu_set_quiet(int q) { quiet = q != 0; }

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
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
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
cudaError_t cudaSetDevice(int d) { return set_error(d == 0 ? cudaSuccess : cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return sticky_error; }

static cudaError_t add_alloc(void *p, size_t n) {
    if (nallocs == cap_allocs) {
        size_t nc = cap_allocs ? 2 * cap_allocs : 64;
        alloc *na = (alloc *)realloc(allocs, nc * sizeof *na);
        if (!na) return cudaErrorMemoryAllocation;
        allocs = na, cap_allocs = nc;
    }
    allocs[nallocs++] = alloc{(char *)p, n};
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
    if (!s || !del_alloc(s)) return set_error(cudaErrorInvalidResourceHandle);
    free(s);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return sticky_error; }
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = (cudaEvent_t)&sched_uc;
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return sticky_error; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t, cudaEvent_t) {
    *ms = 0;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = nullptr;
    void *m = malloc(bytes ? bytes : 1);
    if (!m) return set_error(cudaErrorMemoryAllocation);
    if (add_alloc(m, bytes) != cudaSuccess) {
        free(m);
        return set_error(cudaErrorMemoryAllocation);
    }
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return set_error(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "sf_emu (CPU emulation)");
    p->totalGlobalMem = 1ull << 30;
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = 227 * 1024;
    p->major = 9, p->minor = 0, p->multiProcessorCount = 1, p->warpSize = 32, p->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = 1ull << 30;
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes) { /* pinned host memory: plain host memory */
    *p = malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    if (!del_alloc(p)) return set_error(cudaErrorInvalidValue); /* not a cudaMalloc'd base pointer */
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
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
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t) {
    if (width > dpitch || width > spitch) return set_error(cudaErrorInvalidValue);
    for (size_t r = 0; r < height; r++) {
        cudaError_t e = cudaMemcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width, kind);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int byte, size_t bytes) {
    if (sticky_error) return sticky_error;
    if (!registered(p, bytes)) {
        snprintf(err_msg, sizeof err_msg, "cudaMemset of %zu bytes at %p: not device memory", bytes, p);
        return set_error(cudaErrorInvalidValue);
    }
    if (bytes) memset(p, byte, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int byte, size_t bytes, cudaStream_t) { return cudaMemset(p, byte, bytes); }

/* ---- cuBLAS -------------------------------------------------------------------------------- */
struct cublasContext {
    cudaStream_t stream;
};
cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = (cublasHandle_t)calloc(1, sizeof(cublasContext));
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}
static float ld_el(const void *p, cudaDataType_t t, size_t i) {
    return t == CUDA_R_16BF ? sf_emu_bf_bits2f(((const unsigned short *)p)[i]) : ((const float *)p)[i];
}
/* Column-major C (m, n) = alpha·op(A)·op(B) + beta·C, fp32 accumulation in k order; C is not read
 * when beta == 0 (as cuBLAS). Only bf16/f32 data and CUBLAS_COMPUTE_32F. */
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType_t at, int lda, const void *B,
                            cudaDataType_t bt, int ldb, const void *beta, void *C, cudaDataType_t ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    bool types = (at == CUDA_R_16BF || at == CUDA_R_32F) && (bt == CUDA_R_16BF || bt == CUDA_R_32F) &&
                 (ct == CUDA_R_16BF || ct == CUDA_R_32F) && compute == CUBLAS_COMPUTE_32F;
    if (!types) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1)) ||
        ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1)) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    if ((k > 0 && (!is_device_ptr(A) || !is_device_ptr(B))) || !is_device_ptr(C)) return CUBLAS_STATUS_INVALID_VALUE;
    if (sticky_error) return CUBLAS_STATUS_EXECUTION_FAILED;
    float al = *(const float *)alpha, be = *(const float *)beta;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            for (int p = 0; p < k; p++) {
                size_t ia = ta == CUBLAS_OP_N ? (size_t)i + (size_t)p * lda : (size_t)p + (size_t)i * lda;
                size_t ib = tb == CUBLAS_OP_N ? (size_t)p + (size_t)j * ldb : (size_t)j + (size_t)p * ldb;
                acc += ld_el(A, at, ia) * ld_el(B, bt, ib);
            }
            size_t ic = (size_t)i + (size_t)j * ldc;
            float v = al * acc;
            if (be != 0.0f) v += be * ld_el(C, ct, ic);
            if (ct == CUDA_R_16BF) ((unsigned short *)C)[ic] = sf_emu_f2bf_bits(v);
            else ((float *)C)[ic] = v;
        }
    return CUBLAS_STATUS_SUCCESS;
}
