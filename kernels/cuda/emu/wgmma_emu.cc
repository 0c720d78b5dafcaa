/* wgmma_emu.cc — Hopper's warpgroup MMA on the emulation, asynchronous as on the GPU (cuda_emu.h's
 * "warpgroup MMA" comment has the operand layouts; kernels/cuda/wgmma.cuh the calls).
 *
 * wgmma.mma_async only issues: the product runs when a wgmma.wait_group needs it, reading the
 * shared-memory operands and the threads' A registers at that moment, and each thread's accumulator
 * registers hold NaN poison from the issue until that thread's own wait — so the bugs that the tensor
 * cores' asynchrony makes and that a synchronous emulation cannot see show as wrong values here:
 *  - reading an accumulator before the wait that covers its product (reads NaN);
 *  - rewriting a stage of shared memory (a TMA refill after an early mbarrier release, a cp.async
 *    prefetch) or an A fragment before the wait (the product sees the new data: a wait that must
 *    complete a product first lets every other thread of the block run);
 *  - a wait_group count that leaves the needed group in flight (NaN again);
 * and these fault with the call site:
 *  - an accumulator written by the thread while its product is in flight;
 *  - a thread that starts a new accumulation (not the chained continuation of one in flight) without a
 *    wgmma.fence since its last wait or its start (PTX requires the fence before registers that the
 *    thread accessed are used by a wgmma);
 *  - a thread that exits with products in flight (no wait_group for them).
 * Products into the same accumulator chain in issue order (the k-steps of one tile), as on the GPU.
 * Groups: commit_group puts the thread's uncommitted products into one group; wait_group N completes
 * all but the N most recent committed groups. A product is computed once for its whole warpgroup, by
 * the first thread that waits for it, and handed to each thread at that thread's wait. */
#include "cuda_emu.h"

#include <deque>
#include <memory>
#include <string.h>
#include <vector>

namespace sf_emu {
namespace {

struct wg_op {
    unsigned long long id;
    int N;
    bool rs, trans_b;
    uint64_t da, db;
    const char *file;
    int line;
    float *d[128];           /* each thread's accumulator registers */
    const uint32_t *a[128];  /* each thread's A fragment (register A) */
    int scale[128];
    std::shared_ptr<wg_op> chain[128]; /* the product in flight whose result is this one's accumulator input */
    std::vector<float> in;   /* 128 × N/2: the accumulators' values at issue (when not chained) */
    std::vector<float> out;  /* 128 × N/2: the results, once computed */
    bool computed;
};
using op_ptr = std::shared_ptr<wg_op>;

struct pending {
    op_ptr op;
    long long group; /* -1: not yet committed */
};
struct thread_state {
    std::vector<pending> q; /* in issue order */
    long long next_group;
    bool fenced; /* a wgmma.fence since the last wait (or the start) */
};

thread_state ts[1024];
bool used; /* a product issued since the last block start */
std::deque<op_ptr> wg_ops[8]; /* per warpgroup, in issue order, until computed */
struct issued {
    float *d;
    const uint32_t *a;
    int scale;
} issue_info[1024];
unsigned long long next_id;

const uint32_t POISON = 0xFFFFFFFFu;

unsigned tid_now() { return warp_id() * 32 + lane_id(); }

float smem_bf(uint32_t addr, const char *file, int line) {
    addr ^= ((addr >> 7) & 7u) << 4; /* the 128-byte swizzle */
    check_async_read(addr, "wgmma", file, line);
    unsigned short h;
    memcpy(&h, smem_at(addr, 2, file, line), 2);
    return sf_emu_bf_bits2f(h);
}

/* The product of op for all 128 threads (earlier products of the warpgroup first: chains read them).
 * No local owns heap memory in the functions below that may fault: a faulting thread never returns
 * (cuda_emu.cc thread_fault), so such a local would leak; the products are owned by wg_ops and the
 * threads' queues, which the next block's start clears. */
void compute(unsigned wg, wg_op &op) {
    std::deque<op_ptr> &q = wg_ops[wg];
    while (!q.empty() && q.front()->id <= op.id) {
        wg_op &o = *q.front();
        const int N = o.N, half = N / 2;
        float A[64 * 16], BT[16 * 128];
        const uint32_t sa = (uint32_t)(o.da & 0x3fff) << 4, sba = (uint32_t)((o.da >> 32) & 0x3fff) << 4;
        const uint32_t sb = (uint32_t)(o.db & 0x3fff) << 4, lbb = (uint32_t)((o.db >> 16) & 0x3fff) << 4,
                       sbb = (uint32_t)((o.db >> 32) & 0x3fff) << 4;
        for (unsigned row = 0; row < 64; row++)
            for (unsigned k = 0; k < 16; k++) {
                if (o.rs) { /* the A register of the thread holding (row, k), read now */
                    const unsigned r16 = row & 15, src = (row >> 4) * 32 + (r16 & 7) * 4 + ((k & 7) >> 1);
                    const uint32_t word = o.a[src][(r16 >> 3) + 2 * (k >> 3)];
                    A[row * 16 + k] = sf_emu_bf_bits2f((unsigned short)(k & 1 ? word >> 16 : word & 0xffffu));
                } else {
                    A[row * 16 + k] = smem_bf(sa + (row >> 3) * sba + (row & 7) * 128 + 2 * k, o.file, o.line);
                }
            }
        for (unsigned col = 0; col < (unsigned)N; col++)
            for (unsigned k = 0; k < 16; k++)
                BT[k * N + col] = o.trans_b ? smem_bf(sb + (col >> 6) * lbb + (k >> 3) * sbb + (k & 7) * 128 + 2 * (col & 63),
                                                      o.file, o.line)
                                            : smem_bf(sb + (col >> 3) * sbb + (col & 7) * 128 + 2 * k, o.file, o.line);
        o.out.assign((size_t)128 * half, 0.0f);
        for (unsigned th = 0; th < 128; th++) {
            /* thread th's outputs: for n-chunk j, d[4j + i] = row 16w + g + 8·(i / 2), column 8j + 2t + i % 2;
               each sum starts at 0 and takes its 16 exact products in k order, then joins the accumulator */
            const unsigned w = th >> 5, lane = th & 31, g = lane >> 2, t = lane & 3;
            const int nc = N / 4;
            float acc0[32] = {0}, acc1[32] = {0};
            const float *a0 = A + (16 * w + g) * 16, *a1 = a0 + 8 * 16;
            for (unsigned k = 0; k < 16; k++) {
                float bk[32];
                for (int m = 0; m < nc; m++) bk[m] = BT[k * N + 8 * (m >> 1) + 2 * t + (m & 1)];
                for (int m = 0; m < nc; m++) acc0[m] += a0[k] * bk[m];
                for (int m = 0; m < nc; m++) acc1[m] += a1[k] * bk[m];
            }
            const float *in = o.chain[th] ? &o.chain[th]->out[(size_t)th * half] : &o.in[(size_t)th * half];
            float *res = &o.out[(size_t)th * half];
            for (int j = 0; j < N / 8; j++) {
                const float v[4] = {acc0[2 * j], acc0[2 * j + 1], acc1[2 * j], acc1[2 * j + 1]};
                for (int i = 0; i < 4; i++) res[4 * j + i] = o.scale[th] ? in[4 * j + i] + v[i] : v[i];
            }
            o.chain[th].reset(); /* its input is read: the earlier product may go */
        }
        o.in.clear();
        o.computed = true;
        q.pop_front(); /* still owned by the threads' queues until each has taken its part */
    }
}

bool poisoned(const float *d, int n) {
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &d[i], 4);
        if (u != POISON) return false;
    }
    return true;
}

} // namespace

void wgmma_block_start(void) {
    if (!used) return;
    for (thread_state &t : ts) t.q.clear(), t.next_group = 0, t.fenced = false;
    for (auto &q : wg_ops) q.clear();
    used = false;
}

void wgmma_thread_exit(void) {
    thread_state &t = ts[tid_now()];
    if (!t.q.empty())
        thread_fault("thread exits with %zu wgmma products in flight (issued at %s:%d; no wgmma.wait_group for them)",
                     t.q.size(), t.q.front().op->file, t.q.front().op->line);
}

void wgmma_fence(const char *, int) {
    ts[tid_now()].fenced = true;
    used = true;
}

void wgmma_commit(const char *, int) {
    thread_state &t = ts[tid_now()];
    async_commit(t.q, t.next_group);
}

void wgmma_wait(int n, const char *file, int line) {
    const unsigned tid = tid_now(), wg = tid >> 7, lt = tid & 127;
    thread_state &t = ts[tid];
    /* all but the n most recent committed groups complete */
    const long long last = async_wait_last(t.next_group, n);
    bool done = false;
    for (const pending &p : t.q) done |= p.group >= 0 && p.group <= last;
    if (done) {
        /* the tensor cores take their time: everything else runs first — a producer whose stage was
           released before this wait refills it now, and the product below reads the refill */
        yield_now(file, line);
        size_t kept = 0; /* the queue compacted in place: the products that stay in flight */
        for (size_t i = 0; i < t.q.size(); i++) {
            pending &p = t.q[i];
            if (p.group < 0 || p.group > last) {
                if (kept != i) t.q[kept] = t.q[i];
                kept++;
                continue;
            }
            wg_op &o = *p.op;
            if (!o.computed) compute(wg, o);
            bool later = false; /* a later product in flight accumulates into the same registers */
            for (size_t k = i + 1; k < t.q.size(); k++) later |= t.q[k].op->d[lt] == o.d[lt];
            if (later) continue;
            const int half = o.N / 2;
            if (!poisoned(o.d[lt], half))
                thread_fault("wgmma at %s:%d: its accumulator registers were written while the product was in flight "
                             "(found at the wait at %s:%d)", o.file, o.line, file, line);
            memcpy(o.d[lt], &o.out[(size_t)lt * half], sizeof(float) * (size_t)half);
        }
        t.q.resize(kept);
    }
    t.fenced = false;
}

void wgmma_issue(float *d, int N, const uint32_t *a, uint64_t da, uint64_t db, bool trans_b, int scale_d, const char *file,
                 int line) {
    const unsigned tid = tid_now(), wg = tid >> 7, lt = tid & 127;
    used = true;
    issue_info[tid] = {d, a, scale_d};
    uint32_t mine[SF_EMU_WX_WORDS] = {0};
    if (a) memcpy(mine, a, 4 * sizeof(uint32_t));
    mine[4] = (uint32_t)da, mine[5] = (uint32_t)(da >> 32), mine[6] = (uint32_t)db, mine[7] = (uint32_t)(db >> 32);
    bool first = false;
    const wx_slot *all = wg_exchange(mine, file, line, &first);
    for (uint64_t desc : {a ? (uint64_t)1 << 62 : da, db})
        if ((desc >> 62) != 1 || ((desc >> 49) & 7))
            thread_fault("wgmma at %s:%d: descriptor %#llx: only the 128-byte swizzle with base offset 0 is emulated", file,
                         line, (unsigned long long)desc);
    if (N < 8 || N > 128 || N % 8) thread_fault("wgmma at %s:%d: n = %d is not emulated (8..128, multiples of 8)", file, line, N);
    if (first) {
        for (unsigned th = 0; th < 128; th++)
            if (memcmp(all[th].w + 4, mine + 4, 4 * sizeof(uint32_t)) != 0)
                thread_fault("wgmma at %s:%d: thread %u of the warpgroup gave other descriptors (%#llx, %#llx) than thread "
                             "%u (%#llx, %#llx)", file, line, th,
                             (unsigned long long)(all[th].w[4] | (uint64_t)all[th].w[5] << 32),
                             (unsigned long long)(all[th].w[6] | (uint64_t)all[th].w[7] << 32), lt,
                             (unsigned long long)da, (unsigned long long)db);
        /* the product, for the whole warpgroup: each thread's accumulator is poisoned until its wait,
           or chained to the product in flight into it */
        wg_ops[wg].push_back(std::make_shared<wg_op>()); /* owned there from the start (see compute) */
        const op_ptr &p = wg_ops[wg].back();
        wg_op &o = *p;
        o.id = ++next_id, o.N = N, o.rs = a != nullptr, o.trans_b = trans_b, o.da = da, o.db = db, o.file = file,
        o.line = line, o.computed = false;
        const int half = N / 2;
        o.in.assign((size_t)128 * half, 0.0f);
        for (unsigned th = 0; th < 128; th++) {
            const issued &is = issue_info[wg * 128 + th];
            o.d[th] = is.d, o.a[th] = is.a, o.scale[th] = is.scale;
            thread_state &s = ts[wg * 128 + th];
            for (auto it = s.q.rbegin(); it != s.q.rend() && !o.chain[th]; ++it)
                if (it->op->d[th] == is.d) {
                    if (it->op->N != N)
                        thread_fault("wgmma at %s:%d: accumulates into the registers of a product of another shape in flight "
                                     "(issued at %s:%d)", file, line, it->op->file, it->op->line);
                    o.chain[th] = it->op;
                }
            if (!o.chain[th]) {
                memcpy(&o.in[(size_t)th * half], is.d, sizeof(float) * (size_t)half);
                for (int i = 0; i < half; i++) memcpy(&is.d[i], &POISON, 4);
            }
            s.q.push_back({p, -1});
        }
    }
    /* this thread's rule: a new accumulation (not chained to one in flight) needs a fence since its last
       wait; the chained k-steps of one product need none */
    thread_state &s = ts[tid];
    const wg_op &mine_op = *s.q.back().op;
    if (!mine_op.chain[lt] && !s.fenced)
        thread_fault("wgmma at %s:%d without a wgmma.fence since this thread's last wait_group (or its start): the "
                     "registers it reads or accumulates into may still be in use", file, line);
}

} // namespace sf_emu
