/* cuda_emu.cc — the scheduler and host runtime of the CUDA CPU emulation (see cuda_emu.h for what
 * is faithful and what it is blind to): blocks run one after another, the threads of a block as
 * ucontext coroutines that switch only at barriers (block, warpgroup, named), warp collectives and
 * mbarrier waits. The runtime API (memory, streams, copies) is emu_runtime.cc's, the vendor libraries'
 * stand-ins libs_emu.cc's, mbarriers and TMA async_emu.cc's.
 * Built only into build/tests/test_cuda_emu (Makefile, EMU_*), tested by tests/unit/test_cuda_emu.c.
 * Under AddressSanitizer every stack switch is announced with __sanitizer_start/finish_switch_fiber. */
#include "cuda_emu.h"
#include "emu_state.h"

#include <map>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <setjmp.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define ASAN_STACK_CLEAR ((size_t)64 * 1024)
#define SF_EMU_ASAN 1
#else
#define SF_EMU_ASAN 0
#endif

namespace sf_emu {

index_state cur;

namespace {

/* T_GBAR: at a barrier of its own group of gsize threads (a warpgroup's); T_SPIN: polling an mbarrier
 * that has not flipped (runnable again once any mbarrier phase completes); T_NBAR: at named barrier
 * nbid (bar.sync), released when its generation moves on. */
enum tstate { T_READY, T_BAR, T_WARP, T_GBAR, T_SPIN, T_NBAR, T_DONE, T_FAULT };

struct thr {
    ucontext_t *uc;   /* the portable switch (swapcontext); own allocation, so that the scheduler's
                         scans over thrs stay within a few cache lines per thread */
    void *sp;         /* the x86-64 switch: saved stack pointer */
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
    unsigned gsize;            /* T_GBAR: the group's size (groups are aligned runs of threads) */
    unsigned long long epoch;  /* T_SPIN: the mbarrier epoch it saw; T_NBAR: its barrier's generation */
    unsigned nbid;             /* T_NBAR: the named barrier */
};

const size_t STACK = 256 * 1024; /* per thread; kernels are leaf-ish, ASan frames are bigger */
thr *thrs;
unsigned nthr_cap;
unsigned cur_t;      /* index of the running coroutine */
unsigned nthreads;   /* threads of the current block */
bool in_launch;
#if SF_EMU_ASAN
void *sched_fake;          /* the scheduler's fake stack while a coroutine runs */
const void *sched_bottom;  /* the scheduler's stack, learned at the first switch */
size_t sched_size;
#endif
void (*body)(void *);
void *body_arg;

char fault_msg[512]; /* a thread's own fault (set before it yields with T_FAULT) */
bool quiet;
long long max_blocks_cap;
unsigned long long n_launches, n_threads_run;
unsigned long long mbar_epoch;   /* mbarrier phases completed (spinning threads wait for a change) */
/* named barriers 1..15 (bar.sync / bar.arrive; 0 is __syncthreads): arrivals in the open generation, the
   thread count it completes at (0: none yet), generations completed; reset for every block */
enum { NBARS = 16 };
unsigned nb_count[NBARS], nb_n[NBARS];
unsigned long long nb_gen[NBARS];

unsigned char *dyn_buf;
size_t dyn_size;

/* The order threads and blocks run in (SF_EMU_ORDER; cuda_emu.h "Order"): forward (threads and blocks
 * in index order), reverse, or a seeded shuffle — a new permutation of the threads for every block, and
 * of the blocks for every launch. A kernel whose result depends on it has a race. */
enum order_kind { ORD_FORWARD, ORD_REVERSE, ORD_SHUFFLE };
int order = -1; /* -1: SF_EMU_ORDER not read yet */
unsigned long long order_seed;
unsigned perm[1024]; /* the running block's thread order */

unsigned long long mix64(unsigned long long x) { /* splitmix64's finaliser */
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* "forward", "reverse", "shuffle" or "shuffle:SEED" (NULL or "": forward); false if none of them. */
bool order_parse(const char *e) {
    if (!e || !*e || !strcmp(e, "forward")) {
        order = ORD_FORWARD;
    } else if (!strcmp(e, "reverse")) {
        order = ORD_REVERSE;
    } else if (!strncmp(e, "shuffle", 7) && (e[7] == 0 || e[7] == ':')) {
        order = ORD_SHUFFLE;
        order_seed = e[7] ? strtoull(e + 8, nullptr, 0) : 1;
    } else {
        return false;
    }
    return true;
}

void order_init(void) {
    if (order >= 0) return;
    const char *e = getenv("SF_EMU_ORDER");
    if (!order_parse(e)) {
        fprintf(stderr, "sf_emu: SF_EMU_ORDER=%s: use forward, reverse or shuffle[:SEED]\n", e);
        exit(2);
    }
}

/* The running block's thread order, for block number b of the launch. */
void order_threads(unsigned long long b) {
    for (unsigned i = 0; i < nthreads; i++) perm[i] = order == ORD_REVERSE ? nthreads - 1 - i : i;
    if (order != ORD_SHUFFLE) return;
    unsigned long long r = mix64(order_seed ^ mix64(n_launches << 20 ^ b));
    for (unsigned i = nthreads - 1; i > 0; i--) { /* Fisher-Yates */
        r = mix64(r);
        unsigned j = (unsigned)(r % (i + 1)), k = perm[i];
        perm[i] = perm[j], perm[j] = k;
    }
}

unsigned long long gcd64(unsigned long long a, unsigned long long b) {
    while (b) {
        unsigned long long t = a % b;
        a = b, b = t;
    }
    return a;
}


extern "C" char __start_sf_emu_shared[] __attribute__((weak));
extern "C" char __stop_sf_emu_shared[] __attribute__((weak));

/* No ASan check: the section may hold padding that is not a variable (so no memset under ASan). */
__attribute__((no_sanitize_address)) void poison(unsigned char *p, size_t n) {
#if SF_EMU_ASAN
    for (size_t i = 0; i < n; i++) ((volatile unsigned char *)p)[i] = 0xFF;
#else
    memset(p, 0xFF, n);
#endif
}

/* Context switch. swapcontext saves and restores the signal mask with a system call on every
 * switch, which made the barrier-heavy kernels (norms, softmax: a switch per shuffle) cost ~1 µs
 * per switch; on x86-64 a six-register switch in user space does the same job in nanoseconds.
 * Callee-saved registers (rbx, rbp, r12–r15) go on the old stack, rsp is swapped; the signal mask
 * and MXCSR are never changed by the kernels. Other architectures keep swapcontext. */
#if defined(__x86_64__) && !defined(SF_EMU_UCONTEXT)
#define SF_EMU_FAST_SWITCH 1
extern "C" void sf_emu_switch(void **save_sp, void *new_sp);
__asm__(".text\n"
        ".globl sf_emu_switch\n"
        ".type sf_emu_switch,@function\n"
        "sf_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size sf_emu_switch, .-sf_emu_switch\n");
void *sched_sp;
#else
#define SF_EMU_FAST_SWITCH 0
ucontext_t sched_uc; /* the scheduler's context (swapcontext) */
#endif

void entry(void);

#if SF_EMU_FAST_SWITCH
/* A fresh coroutine's stack: six zero registers, then entry as the return address, with rsp + 8
 * 16-byte aligned at entry as after a call. */
void *initial_sp(char *stack) {
    uintptr_t top = ((uintptr_t)stack + STACK) & ~(uintptr_t)15;
    void **sp = (void **)(top - 16);
    sp[1] = nullptr;        /* entry's (never used) return address slot */
    sp[0] = (void *)entry;  /* popped by ret */
    sp -= 6;
    for (int i = 0; i < 6; i++) sp[i] = nullptr;
    return sp;
}
#endif

void to_thread(unsigned t) {
#if SF_EMU_ASAN
    __sanitizer_start_switch_fiber(&sched_fake, thrs[t].stack, STACK);
#endif
#if SF_EMU_FAST_SWITCH
    sf_emu_switch(&sched_sp, thrs[t].sp);
#else
    swapcontext(&sched_uc, thrs[t].uc);
#endif
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
#if SF_EMU_FAST_SWITCH
    sf_emu_switch(&t.sp, sched_sp);
#else
    swapcontext(t.uc, &sched_uc);
#endif
#if SF_EMU_ASAN
    __sanitizer_finish_switch_fiber(t.fake_stack, &sched_bottom, &sched_size);
#endif
}

void entry(void) {
#if SF_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &sched_bottom, &sched_size);
#endif
    body(body_arg);
    wgmma_thread_exit(); /* faults when products are left in flight */
    thrs[cur_t].state = T_DONE;
    to_scheduler(true); /* never resumed */
    abort();
}

/* getcontext "returns twice" like setjmp; called from its own frame so the loops below keep their
 * counters in registers (-Wclobbered). The saved context is only a template for makecontext. */
__attribute__((noinline)) static int fresh_context(ucontext_t *uc) { return getcontext(uc); }

bool ensure_threads(unsigned n) {
    if (n <= nthr_cap) return true;
    thr *nt = (thr *)realloc(thrs, n * sizeof *nt);
    if (!nt) return false;
    thrs = nt;
    /* the ucontexts are separate allocations (thr.uc), so nothing self-referential moved with the
     * array; no coroutine is alive between launches, so nothing refers to the old slots. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (unsigned i = nthr_cap; i < n; i++) {
        memset(&thrs[i], 0, sizeof thrs[i]);
        void *m = mmap(nullptr, STACK + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return false;
        mprotect(m, page, PROT_NONE); /* a stack overflow faults instead of corrupting a neighbour */
        thrs[i].stack = (char *)m + page;
        thrs[i].uc = (ucontext_t *)calloc(1, sizeof(ucontext_t));
        if (!thrs[i].uc || fresh_context(thrs[i].uc) != 0) return false;
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

/* Release the groups (aligned runs of gsize threads) whose threads all wait at the same group barrier;
 * 1 = released some, 0 = none ready, -1 = an error (message in fault_msg). */
int complete_groups(void) {
    int released = 0;
    unsigned next = 0; /* groups below this one are done with */
    for (unsigned t = 0; t < nthreads; t++) {
        const thr &a = thrs[t];
        if (a.state != T_GBAR || t < next) continue; /* the group's first waiting thread decides */
        const unsigned g0 = t - t % a.gsize;
        next = g0 + a.gsize;
        bool ready = true;
        for (unsigned m = g0; m < g0 + a.gsize && m < nthreads; m++) {
            const thr &b = thrs[m];
            if (b.state == T_DONE) {
                snprintf(fault_msg, sizeof fault_msg,
                         "divergent warpgroup barrier: thread (%u,%u,%u) waits at %s:%d but thread (%u,%u,%u) of its "
                         "group exited", a.idx.x, a.idx.y, a.idx.z, a.file, a.line, b.idx.x, b.idx.y, b.idx.z);
                return -1;
            }
            if (b.state != T_GBAR) {
                ready = false;
                break;
            }
            if (b.gsize != a.gsize || b.line != a.line || strcmp(b.file, a.file) != 0) {
                snprintf(fault_msg, sizeof fault_msg,
                         "divergent warpgroup barrier: thread (%u,%u,%u) waits at %s:%d, thread (%u,%u,%u) at %s:%d",
                         a.idx.x, a.idx.y, a.idx.z, a.file, a.line, b.idx.x, b.idx.y, b.idx.z, b.file, b.line);
                return -1;
            }
        }
        if (!ready) continue;
        for (unsigned m = g0; m < g0 + a.gsize && m < nthreads; m++) thrs[m].state = T_READY;
        released = 1;
    }
    return released;
}

/* Fast path: a kernel that never reaches a barrier or warp collective runs each thread as a plain
 * call on the scheduler's stack (no coroutine switches: the emulation of the elementwise kernels
 * is ~20x faster). A launch site's first block always runs on coroutines; if none of its threads
 * reached a barrier or a collective, the site's later blocks and launches run direct. Should a
 * direct block still reach one (barriers that depend on the data or the block), it is abandoned
 * (longjmp back here), the site goes back to coroutines and the block is re-run from the start —
 * exact unless the threads that ran wrote global memory they also read (that case is not
 * emulated faithfully). SF_EMU_NO_DIRECT=1 turns the fast path off. */
bool direct_mode;
jmp_buf direct_jb;
unsigned direct_t;
unsigned long long n_syncs; /* barriers + warp collectives reached, for the learning above */
struct site {
    const char *k;
    int direct; /* 1: no barriers seen in a whole block */
    unsigned long long launches;
};
site sites[256];
unsigned n_sites;

site *find_site(const char *k) {
    for (unsigned i = 0; i < n_sites; i++)
        if (sites[i].k == k || !strcmp(sites[i].k, k)) return &sites[i];
    if (n_sites == sizeof sites / sizeof sites[0]) return nullptr;
    sites[n_sites] = site{k, 0, 0};
    return &sites[n_sites++];
}

void leave_direct(void) {
    if (direct_mode) {
        direct_mode = false;
        longjmp(direct_jb, 1);
    }
}

/* 0 = the block ran to completion, 1 = a thread reached a barrier (direct_t says which). */
__attribute__((noinline)) int run_block_direct(void) {
    static unsigned i; /* static: kept across the longjmp (-Wclobbered) */
    if (setjmp(direct_jb)) return 1;
    direct_mode = true;
    for (i = 0; i < nthreads; i++) {
        direct_t = perm[i];
        set_index(direct_t);
        body(body_arg);
    }
    direct_mode = false;
    return 0;
}

/* Run one block to completion; false = failed (message in fault_msg). */
bool run_block(void) {
    wgmma_block_start();
    sf_emu_tma_block_start();
    for (unsigned t = 0; t < nthreads; t++) {
        thr &th = thrs[t];
        th.state = T_READY;
        th.fake_stack = nullptr;
#if SF_EMU_FAST_SWITCH
        th.sp = initial_sp(th.stack);
#if SF_EMU_ASAN
        /* swapcontext's ASan interceptor clears the shadow of the stack it switches to; this switch
           is not intercepted, so a reused stack would keep the scope poison of the frames of the
           last coroutine that ran there (they end by switching away, never returning): clear the
           part a kernel's frames use. */
        __asan_unpoison_memory_region(th.stack + STACK - ASAN_STACK_CLEAR, ASAN_STACK_CLEAR);
#endif
#else
        th.uc->uc_stack.ss_sp = th.stack;
        th.uc->uc_stack.ss_size = STACK;
        th.uc->uc_link = nullptr;
        makecontext(th.uc, entry, 0);
#endif
    }
    for (;;) {
        for (unsigned i = 0; i < nthreads; i++) {
            const unsigned t = perm[i];
            if (thrs[t].state != T_READY) continue;
            set_index(t);
            to_thread(t);
            if (thrs[t].state == T_FAULT) return false;
        }
        unsigned done = 0, bar = 0, warp = 0, gbar = 0, spin = 0, ready = 0, first_done = 0, first_bar = 0;
        for (unsigned t = 0; t < nthreads; t++) {
            tstate s = thrs[t].state;
            if (s == T_READY) ready++; /* yielded (yield_now): after the waiters below are looked at */
            if (s == T_DONE && done++ == 0) first_done = t;
            if (s == T_BAR && bar++ == 0) first_bar = t;
            if (s == T_WARP) warp++;
            if (s == T_GBAR) gbar++;
            if (s == T_SPIN || s == T_NBAR) spin++;
        }
        if (done == nthreads) {
            for (unsigned id = 1; id < NBARS; id++)
                if (nb_count[id]) { /* arrivals nobody waited for: the kernel's turns do not pair up */
                    snprintf(fault_msg, sizeof fault_msg,
                             "named barrier %u left with %u of %u arrivals when the block ended (unmatched "
                             "bar.arrive / bar.sync)", id, nb_count[id], nb_n[id]);
                    return false;
                }
            return true;
        }
        if (warp) {
            int any = 0;
            for (unsigned w = 0; w * 32 < nthreads; w++) {
                int r = complete_warp(w);
                if (r < 0) return false;
                any |= r;
            }
            if (any) continue;
        }
        if (gbar) {
            int r = complete_groups();
            if (r < 0) return false;
            if (r) continue;
        }
        if (spin) { /* pollers wake when some mbarrier phase completed since they looked */
            int any = 0;
            for (unsigned t = 0; t < nthreads; t++)
                if ((thrs[t].state == T_SPIN && thrs[t].epoch != mbar_epoch) ||
                    (thrs[t].state == T_NBAR && thrs[t].epoch != nb_gen[thrs[t].nbid]))
                    thrs[t].state = T_READY, any = 1;
            if (any) continue;
        }
        if (ready) continue;
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
        int off = snprintf(fault_msg, sizeof fault_msg,
                           "deadlock: %u at __syncthreads, %u in warp collectives, %u at warpgroup barriers, %u at "
                           "mbarriers or named barriers, %u exited",
                           bar, warp, gbar, spin, done);
        for (unsigned t = 0; t < nthreads && off < (int)sizeof fault_msg; t++) {
            const thr &b = thrs[t];
            if (b.state == T_SPIN || b.state == T_GBAR || b.state == T_NBAR) {
                snprintf(fault_msg + off, sizeof fault_msg - (size_t)off, "; thread (%u,%u,%u) waits %s at %s:%d",
                         b.idx.x, b.idx.y, b.idx.z,
                         b.state == T_SPIN   ? "on an mbarrier"
                         : b.state == T_NBAR ? "at a named barrier"
                                             : "at a warpgroup barrier",
                         b.file, b.line);
                break;
            }
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

} // namespace

/* The state shared with emu_runtime.cc (emu_state.h). */
char err_msg[1024];
cudaError_t last_error = cudaSuccess;
cudaError_t sticky_error = cudaSuccess;
alloc *allocs;
size_t nallocs, cap_allocs;
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
int alloc_device(const void *p) {
    const char *c = (const char *)p;
    for (size_t i = 0; c && i < nallocs; i++)
        if (c >= allocs[i].p && c <= allocs[i].p + allocs[i].n) return allocs[i].dev;
    return -1;
}

namespace {
/* A thread reaching a synchronisation point: off the fast path, counted, the running thread. */
thr &sync_point(const char *what) {
    leave_direct();
    n_syncs++;
    return running(what);
}
/* ... then waiting there in state st until the scheduler releases it. */
void park(thr &t, tstate st, const char *file, int line) {
    t.state = st;
    t.file = file;
    t.line = line;
    to_scheduler(false);
    cur.tid = thrs[cur_t].idx;
}
} // namespace

void syncthreads(const char *file, int line) { park(sync_point("__syncthreads"), T_BAR, file, line); }

void group_sync(unsigned gsize, const char *file, int line) {
    thr &t = sync_point("a warpgroup barrier");
    if (gsize == 0 || nthreads % gsize)
        thread_fault("warpgroup barrier at %s:%d: a block of %u threads is not made of groups of %u", file, line,
                     nthreads, gsize);
    t.gsize = gsize;
    park(t, T_GBAR, file, line);
}

void yield_now(const char *file, int line) { park(sync_point("a yield"), T_READY, file, line); }
void spin_yield(const char *file, int line) {
    thr &t = sync_point("an mbarrier wait");
    t.epoch = mbar_epoch;
    park(t, T_SPIN, file, line);
}
void mbar_progress(void) { mbar_epoch++; }

/* bar.sync / bar.arrive id, n: one arrival per thread (the kernels' warps take part whole); the n-th
 * arrival of a generation completes it and releases the threads waiting at it. */
namespace {
bool named_arrival(unsigned id, unsigned n, const char *what, const char *file, int line) {
    if (id == 0 || id >= NBARS || n == 0 || n % 32 || n > nthreads)
        thread_fault("%s %u, %u at %s:%d: barrier 1..%d and a thread count that is a multiple of 32, at most the block's %u",
                     what, id, n, file, line, NBARS - 1, nthreads);
    if (nb_count[id] && nb_n[id] != n)
        thread_fault("%s %u at %s:%d: count %u, but this generation's arrivals counted to %u", what, id, file, line, n,
                     nb_n[id]);
    nb_n[id] = n;
    if (++nb_count[id] < n) return false;
    nb_count[id] = 0, nb_gen[id]++;
    return true;
}
} // namespace
void named_sync(unsigned id, unsigned n, const char *file, int line) {
    thr &t = sync_point("bar.sync");
    const unsigned long long gen = id < NBARS ? nb_gen[id] : 0;
    if (named_arrival(id, n, "bar.sync", file, line)) return;
    t.nbid = id;
    t.epoch = gen;
    park(t, T_NBAR, file, line);
}
void named_arrive(unsigned id, unsigned n, const char *file, int line) {
    sync_point("bar.arrive");
    named_arrival(id, n, "bar.arrive", file, line);
}

uint64_t warp_op(warp_kind kind, unsigned mask, uint64_t val, int arg, const char *file, int line) {
    thr &t = sync_point("a warp intrinsic");
    unsigned lane = lane_id();
    if (!(mask >> lane & 1u))
        snprintf(fault_msg, sizeof fault_msg, "warp collective at %s:%d: lane %u is not in its own mask %08x", file,
                 line, lane, mask);
    t.wkind = kind;
    t.wmask = mask;
    t.wval = val;
    t.warg = arg;
    park(t, mask >> lane & 1u ? T_WARP : T_FAULT, file, line);
    return thrs[cur_t].wres;
}

unsigned lane_id(void) { return cur_t & 31u; }
unsigned warp_id(void) { return cur_t >> 5; }

/* Warp-matrix exchange (the emulated mma.sync / ldmatrix of cuda_emu.h): each lane posts its words in
 * its slot with its exchange count, the whole warp meets at a barrier, every lane reads the 32 slots
 * in place. Two slot sets alternate by the count's parity, so a lane that runs on to the next
 * exchange never overwrites a slot another lane is still reading (it cannot get two exchanges ahead:
 * each one waits for every lane). A lane that exited without posting this exchange (the barrier does not
 * wait for it) leaves an older count behind: that is the fault, not a lane that posted and exited. */
namespace {
wx_slot wx_buf[2][1024];
unsigned long long wx_seq[1024];
unsigned long long wx_chk[32]; /* per warp: the exchange last checked for lanes that left */
bool wx_used; /* an exchange since the last reset (launches without one skip the reset) */
} // namespace
const wx_slot *warp_exchange(const uint32_t *mine, const char *file, int line, bool *first_out) {
    running("a warp matrix instruction");
    const unsigned lo = cur_t & ~31u;
    if (lo + 32 > nthreads)
        thread_fault("warp matrix instruction at %s:%d in a warp of %u lanes (needs 32)", file, line, nthreads - lo);
    wx_used = true;
    const unsigned long long seq = ++wx_seq[cur_t];
    wx_slot *set = wx_buf[seq & 1];
    memcpy(set[cur_t].w, mine, sizeof set[cur_t].w);
    set[cur_t].seq = seq;
    warp_op(W_SYNC, 0xffffffffu, 0, 0, file, line);
    const bool first = wx_chk[lo >> 5] != seq; /* the first lane past the barrier checks for the warp */
    wx_chk[lo >> 5] = seq;
    for (unsigned m = lo; first && m < lo + 32; m++)
        if (set[m].seq != seq)
            thread_fault("warp matrix instruction at %s:%d: lane %u has exited without taking part", file, line, m - lo);
    if (first_out) *first_out = first;
    return set + lo;
}

/* The shared window of the emulated kernels is the dynamic shared buffer: offsets into it. */
uint32_t smem_offset(const void *p, const char *file, int line) {
    running("a shared-memory address");
    const unsigned char *c = (const unsigned char *)p;
    if (!dyn_buf || c < dyn_buf || c >= dyn_buf + dyn_size)
        thread_fault("%s:%d: %p is not in the dynamic shared memory (the only shared window the emulated "
                     "async-proxy instructions address)", file, line, p);
    return (uint32_t)(c - dyn_buf);
}
const unsigned char *smem_at(uint32_t off, size_t n, const char *file, int line) {
    if (!dyn_buf || (size_t)off + n > dyn_size)
        thread_fault("%s:%d: shared address %#x (+%zu bytes) is past the %zu bytes of dynamic shared memory", file, line,
                     off, n, dyn_size);
    return dyn_buf + off;
}

/* Warpgroup exchange (the emulated wgmma): like warp_exchange, over the calling thread's warpgroup of
 * 128 threads (a barrier of that warpgroup only: a TMA producer warpgroup issues no wgmma). Returns
 * the warpgroup's 128 slots. */
namespace {
wx_slot wg_buf[2][1024];
unsigned long long wg_seq[1024];
unsigned long long wg_chk[8]; /* per warpgroup: the exchange whose first thread has passed */
} // namespace
const wx_slot *wg_exchange(const uint32_t *mine, const char *file, int line, bool *first_out) {
    running("a warpgroup matrix instruction");
    if (nthreads % 128)
        thread_fault("wgmma at %s:%d in a block of %u threads (the emulation needs whole warpgroups, 128 threads each)",
                     file, line, nthreads);
    wx_used = true;
    const unsigned long long seq = ++wg_seq[cur_t];
    wx_slot *set = wg_buf[seq & 1];
    if (mine) memcpy(set[cur_t].w, mine, sizeof set[cur_t].w);
    set[cur_t].seq = seq;
    group_sync(128, file, line);
    if (first_out) *first_out = wg_chk[cur_t >> 7] != seq;
    wg_chk[cur_t >> 7] = seq;
    return set + (cur_t & ~127u);
}

void thread_fault(const char *fmt, ...) {
    running("a device-side fault");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fault_msg, sizeof fault_msg, fmt, ap);
    va_end(ap);
    thrs[cur_t].state = T_FAULT;
    to_scheduler(false);
    abort(); /* a faulted thread is never resumed */
}

void *dyn_shared(void) {
    running("dynamic shared memory");
    return dyn_buf;
}
size_t dyn_shared_size(void) { return dyn_buf ? dyn_size : 0; }

bool is_device_ptr(const void *p) { return registered(p, 0); }

/* kernel → the dynamic shared memory it was granted (cudaFuncSetAttribute); launches come from one thread */
static std::map<const void *, int> dyn_smem_granted;

cudaError_t set_max_dyn_smem(const void *kernel, int bytes) {
    if (bytes < 0 || bytes > 227 * 1024) return last_error = cudaErrorInvalidValue;
    dyn_smem_granted[kernel] = bytes;
    return cudaSuccess;
}

bool dyn_smem_ok(const char *kname, const void *kernel, size_t smem) {
    if (smem <= 48 * 1024) return true;
    auto it = dyn_smem_granted.find(kernel);
    if (it != dyn_smem_granted.end() && (size_t)it->second >= smem) return true;
    snprintf(err_msg, sizeof err_msg, "%s: %zu bytes of dynamic shared memory, over 48 KiB without "
             "cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) granting them (%d granted)", kname, smem,
             it == dyn_smem_granted.end() ? 0 : it->second);
    if (!quiet) fprintf(stderr, "sf_emu: %s\n", err_msg);
    last_error = cudaErrorInvalidValue; /* not sticky, as on a GPU */
    return false;
}

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

bool launch_config_ok(const char *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s) {
    unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    if (nt == 0 || nt > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 ||
        grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535 || smem > 227 * 1024) {
        snprintf(err_msg, sizeof err_msg, "%s: invalid configuration grid (%u,%u,%u) block (%u,%u,%u) smem %zu", kernel,
                 grid.x, grid.y, grid.z, block.x, block.y, block.z, smem);
        if (!quiet) fprintf(stderr, "sf_emu: %s\n", err_msg);
        last_error = cudaErrorInvalidConfiguration;
        return false;
    }
    if (s && !registered(s, 0)) { /* streams are registered (zero-size) tags */
        snprintf(err_msg, sizeof err_msg, "%s: launched on an unknown stream %p", kernel, (void *)s);
        last_error = cudaErrorInvalidResourceHandle;
        return false;
    }
    if (!same_device(kernel, s, nullptr, nullptr)) {
        if (!quiet) fprintf(stderr, "sf_emu: %s\n", err_msg);
        return false;
    }
    return true;
}

void launch_raw(const char *kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s, void (*run)(void *),
                void *arg) {
    unsigned long long nt = (unsigned long long)block.x * block.y * block.z;
    if (in_launch) {
        fprintf(stderr, "sf_emu: %s launched from inside a kernel or from two host threads\n", kernel);
        abort();
    }
    if (!launch_config_ok(kernel, grid, block, smem, s)) return;
    if (!ensure_threads((unsigned)nt)) {
        fprintf(stderr, "sf_emu: out of memory for %llu coroutine stacks\n", nt);
        abort();
    }
    if (smem > dyn_size) { /* 1024-aligned, as the GPU's shared window is (wgmma's 128-byte swizzle needs it) */
        void *nb = nullptr;
        if (posix_memalign(&nb, 1024, (smem + 1023) & ~(size_t)1023)) abort();
        free(dyn_buf);
        dyn_buf = (unsigned char *)nb, dyn_size = smem;
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
    if (wx_used) {
        memset(wg_seq, 0, sizeof wg_seq);
        memset(wg_buf, 0, sizeof wg_buf);
        memset(wx_seq, 0, sizeof wx_seq);
        memset(wx_buf, 0, sizeof wx_buf);
        memset(wx_chk, 0, sizeof wx_chk);
        memset(wg_chk, 0, sizeof wg_chk);
        wx_used = false;
    }
    site *named = find_site(kernel);
    if (named) named->launches++;
    const char *skip = getenv("SF_EMU_SKIP_KERNEL"); /* fault injection: a kernel that silently does nothing */
    if (skip && *skip && !strncmp(kernel, skip, strlen(skip))) {
        in_launch = false;
        return;
    }
    const char *fault = getenv("SF_EMU_FAULT_KERNEL"); /* fault injection: a kernel that faults */
    if (fault && *fault && !strncmp(kernel, fault, strlen(fault))) {
        snprintf(err_msg, sizeof err_msg, "%s: an illegal memory access (SF_EMU_FAULT_KERNEL)", kernel);
        sticky_error = cudaErrorIllegalAddress; /* as a GPU: the launch succeeds, the next sync reports it */
        in_launch = false;
        return;
    }
    site *st = getenv("SF_EMU_NO_DIRECT") ? nullptr : named;
    bool learn = st && !st->direct; /* from this launch's first block */
    order_init();
    /* the blocks in the chosen order: i-th block run = linear index L (x fastest); a shuffle is
       L = (a·i + c) mod n with a coprime to n, drawn for each launch */
    const unsigned long long nblk = (unsigned long long)grid.x * grid.y * grid.z;
    unsigned long long ba = 1, bc = 0;
    if (order == ORD_SHUFFLE && nblk > 1) {
        const unsigned long long r = mix64(order_seed ^ mix64(n_launches));
        ba = 1 + r % (nblk - 1);
        while (gcd64(ba, nblk) != 1) ba = ba % (nblk - 1) + 1;
        bc = mix64(r) % nblk;
    }
    auto poison_shared = [smem] { /* every block starts with unwritten shared memory */
        if (+__start_sf_emu_shared && +__stop_sf_emu_shared > +__start_sf_emu_shared)
            poison((unsigned char *)__start_sf_emu_shared, (size_t)(__stop_sf_emu_shared - __start_sf_emu_shared));
        if (smem) poison(dyn_buf, smem);
    };
    for (unsigned long long i = 0; i < nblk; i++) {
        const unsigned long long L = order == ORD_REVERSE ? nblk - 1 - i
                                     : order == ORD_SHUFFLE
                                         ? (unsigned long long)(((unsigned __int128)ba * i + bc) % nblk)
                                         : i;
        const unsigned bx = (unsigned)(L % grid.x), by = (unsigned)(L / grid.x % grid.y),
                       bz = (unsigned)(L / ((unsigned long long)grid.x * grid.y));
        cur.bid = uint3{bx, by, bz};
        order_threads(L);
        poison_shared();
        n_threads_run += nt;
        memset(nb_count, 0, sizeof nb_count), memset(nb_n, 0, sizeof nb_n);
        if (st && st->direct) {
            if (run_block_direct() == 0) continue;
            /* a barrier after all: back to coroutines for this site, re-run the block */
            st->direct = 0;
            learn = false;
            poison_shared();
        }
        const unsigned long long syncs0 = n_syncs;
        if (!run_block()) {
            in_launch = false;
            fail_launch(kernel, "block (%u,%u,%u) of (%u,%u,%u), %llu threads: %s", bx, by, bz, grid.x, grid.y,
                        grid.z, nt, fault_msg);
            return;
        }
        if (learn && n_syncs == syncs0) st->direct = 1; /* a whole block without a barrier */
        learn = false;
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
extern "C" unsigned long long sf_emu_kernel_launches(const char *prefix) {
    unsigned long long n = 0;
    for (unsigned i = 0; i < n_sites; i++)
        if (!strncmp(sites[i].k, prefix, strlen(prefix))) n += sites[i].launches;
    return n;
}
extern "C" const char *sf_emu_last_error(void) { return sticky_error != cudaSuccess ? err_msg : ""; }
extern "C" void sf_emu_reset(void) {
    sticky_error = last_error = cudaSuccess;
    err_msg[0] = 0;
}
extern "C" void sf_emu_set_quiet(int q) { quiet = q != 0; }
extern "C" int sf_emu_set_order(const char *spec) {
    const int was = order;
    if (order_parse(spec)) return 0;
    order = was;
    return -1;
}
extern "C" const char *sf_emu_order(void) {
    order_init();
    return order == ORD_REVERSE ? "reverse" : order == ORD_SHUFFLE ? "shuffle" : "forward";
}
