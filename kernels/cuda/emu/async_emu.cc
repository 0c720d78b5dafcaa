/* async_emu.cc — the emulation of Hopper's mbarriers and TMA tile loads (kernels/cuda/tma.cuh; the
 * rules are in cuda_emu.h's "mbarriers and TMA" comment). Part of the emulated objects (Makefile
 * EMU_SRC). Tested by tests/unit/test_emu_self.c (emu_selftest.cu's TMA and mbarrier cases) and through
 * the warp-specialised attention kernel (test_tap_mass attn_mass_ws*). */
#include "cuda_emu.h"

#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <vector>

namespace {

/* Emulated barrier word: bits 0-15 the arrival count, 16-31 arrivals pending, 32-55 transaction bytes
 * pending (signed 24 bits: bytes may land before they are announced), 56-62 the tag, 63 the parity of
 * the phase in progress. */
const uint64_t TAG = 0x5b;

struct mbar {
    unsigned count, pending;
    int tx;
    unsigned parity;
};

mbar load(const uint64_t *bar, const char *what, const char *file, int line) {
    const uint32_t off = sf_emu::smem_offset(bar, file, line);
    if (off % 8) sf_emu::thread_fault("%s at %s:%d: mbarrier at shared offset %#x is not 8-byte aligned", what, file, line, off);
    const uint64_t w = *bar;
    if ((w >> 56 & 0x7f) != TAG)
        sf_emu::thread_fault("%s at %s:%d: no initialised mbarrier at shared offset %#x (word %#llx)", what, file, line, off,
                             (unsigned long long)w);
    mbar m;
    m.count = (unsigned)(w & 0xffff), m.pending = (unsigned)(w >> 16 & 0xffff);
    m.tx = (int)((uint32_t)(w >> 32 & 0xffffff) << 8) >> 8;
    m.parity = (unsigned)(w >> 63);
    return m;
}

void store(uint64_t *bar, mbar m) {
    if (m.pending == 0 && m.tx == 0) { /* the phase completes; the barrier re-arms */
        m.pending = m.count, m.parity ^= 1u;
        sf_emu::mbar_progress();
    }
    *bar = (uint64_t)m.count | (uint64_t)m.pending << 16 | (uint64_t)((uint32_t)m.tx & 0xffffff) << 32 | TAG << 56 |
           (uint64_t)m.parity << 63;
}

void complete_tx(uint64_t *bar, unsigned bytes, const char *file, int line) {
    mbar m = load(bar, "TMA completion", file, line);
    m.tx -= (int)bytes;
    if (m.tx < -(1 << 23)) sf_emu::thread_fault("TMA at %s:%d: transaction count underflow", file, line);
    store(bar, m);
}

/* SF_EMU_COPIES_LATE=1: a TMA load lands only when a thread waits on its mbarrier for a phase that has not
 * completed (the copy the wait needs), so a wait that returns early — the wrong parity, the wrong
 * barrier — finds the stage's previous contents; a cp.async copy lands at the cp.async.wait_group that
 * covers its group (reading its source then), so a buffer read before that wait holds its old contents.
 * Off (the default), both land when issued, so a stage released before the wgmma reading it was waited
 * for is refilled under it (wgmma_emu.cc). */
struct tma_load {
    uint32_t off;
    CUtensorMap map;
    int c0, c1;
    uint64_t *bar;
    const char *file;
    int line;
};
int late = -1;
std::vector<tma_load> in_flight; /* this block's, in issue order */
struct cp_copy {
    void *dst;
    const void *src;
    int bytes;
    long long group; /* -1: not yet committed */
};
std::vector<cp_copy> cp_q[1024]; /* per thread, in issue order */
long long cp_next[1024];
bool cp_used;

unsigned cp_tid() { return sf_emu::warp_id() * 32 + sf_emu::lane_id(); }

/* Generic-proxy writes not yet fenced for the async proxy: per 16-byte granule of the dynamic shared
 * memory, the writing thread + 1 (0: none); per thread, its granules. */
std::vector<uint16_t> gen_owner;
std::vector<uint32_t> gen_list[1024];
bool gen_used;

void cp_land(const cp_copy &c) {
    memcpy(c.dst, c.src, (size_t)c.bytes);
    memset((char *)c.dst + c.bytes, 0, (size_t)(16 - c.bytes));
    const unsigned char *base = (const unsigned char *)sf_emu::dyn_shared(), *d = (const unsigned char *)c.dst;
    const size_t size = sf_emu::dyn_shared_size();
    if (!base || d < base || d >= base + size) return; /* static shared memory: not tracked */
    const uint32_t g = (uint32_t)((size_t)(d - base) / 16);
    if (gen_owner.size() < size / 16 + 1) gen_owner.assign(size / 16 + 1, 0);
    const unsigned t = cp_tid();
    gen_owner[g] = (uint16_t)(t + 1);
    gen_list[t].push_back(g);
    gen_used = true;
}

void land(const tma_load &t) {
    const unsigned char *src = (const unsigned char *)t.map.base;
    const uint32_t rows = t.map.box_rows;
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t c = 0; c < 64; c++) {
            const int64_t gr = (int64_t)t.c1 + r, gc = (int64_t)t.c0 + c;
            uint16_t v = 0;
            if (gr >= 0 && gr < (int64_t)t.map.rows && gc >= 0 && gc < (int64_t)t.map.cols)
                memcpy(&v, src + (uint64_t)gr * t.map.row_bytes + (uint64_t)gc * 2, 2);
            uint32_t a = t.off + r * 128 + c * 2;
            a ^= ((a >> 7) & 7u) << 4; /* the 128-byte swizzle, as wgmma's reads undo it */
            memcpy(const_cast<unsigned char *>(sf_emu::smem_at(a, 2, t.file, t.line)), &v, 2);
        }
    complete_tx(t.bar, rows * 128, t.file, t.line);
}

/* land the loads in flight on bar (in issue order); true when there were any */
bool land_for(uint64_t *bar) {
    bool any = false;
    for (size_t i = 0; i < in_flight.size();)
        if (in_flight[i].bar == bar) {
            const tma_load t = in_flight[i];
            in_flight.erase(in_flight.begin() + (long)i);
            land(t);
            any = true;
        } else {
            i++;
        }
    return any;
}

} // namespace

extern "C" void sf_emu_set_copies_late(int on) { late = on ? 1 : 0; }

void sf_emu::fence_proxy_async(void) {
    std::vector<uint32_t> &l = gen_list[cp_tid()];
    const uint16_t me = (uint16_t)(cp_tid() + 1);
    for (uint32_t g : l)
        if (g < gen_owner.size() && gen_owner[g] == me) gen_owner[g] = 0;
    l.clear();
}
void sf_emu::check_async_read(uint32_t off, const char *what, const char *file, int line) {
    const uint32_t g = off / 16;
    if (g < gen_owner.size() && gen_owner[g])
        thread_fault("%s at %s:%d reads shared offset %#x, written by thread %u's cp.async with no fence.proxy.async "
                     "since (the tensor cores read through the async proxy)", what, file, line, off,
                     (unsigned)gen_owner[g] - 1);
}

void sf_emu::cp_async16(void *dst, const void *src, int src_bytes, const char *file, int line) {
    if (src_bytes < 0 || src_bytes > 16 || (uintptr_t)dst % 16 || (src_bytes && (uintptr_t)src % 16))
        thread_fault("cp.async at %s:%d: %d bytes from %p to %p (0..16 bytes, both 16-byte aligned)", file, line, src_bytes,
                     src, dst);
    const cp_copy c = {dst, src, src_bytes, -1};
    if (late > 0) {
        cp_q[cp_tid()].push_back(c);
        cp_used = true;
    } else {
        cp_land(c);
    }
}
void sf_emu::cp_async_commit(void) {
    const unsigned t = cp_tid();
    async_commit(cp_q[t], cp_next[t]);
}
void sf_emu::cp_async_wait(int n) { /* all but the n most recent committed groups land */
    const unsigned t = cp_tid();
    std::vector<cp_copy> &q = cp_q[t];
    const long long last = async_wait_last(cp_next[t], n);
    size_t kept = 0;
    for (size_t i = 0; i < q.size(); i++) {
        if (q[i].group >= 0 && q[i].group <= last) cp_land(q[i]);
        else q[kept++] = q[i];
    }
    q.resize(kept);
}

void sf_emu_tma_block_start(void) {
    in_flight.clear(); /* a block's loads nobody waited for land nowhere */
    if (cp_used) {
        for (unsigned t = 0; t < 1024; t++) cp_q[t].clear(), cp_next[t] = 0;
        cp_used = false;
    }
    if (gen_used) {
        std::fill(gen_owner.begin(), gen_owner.end(), (uint16_t)0);
        for (unsigned t = 0; t < 1024; t++) gen_list[t].clear();
        gen_used = false;
    }
    if (late < 0) {
        const char *e = getenv("SF_EMU_COPIES_LATE");
        late = e && *e && strcmp(e, "0") != 0;
    }
}

void sf_emu_mbar_init(uint64_t *bar, unsigned count, const char *file, int line) {
    const uint32_t off = sf_emu::smem_offset(bar, file, line);
    if (off % 8 || count < 1 || count > 0xffff)
        sf_emu::thread_fault("mbarrier.init at %s:%d: offset %#x, count %u (8-byte aligned, 1..65535 here)", file, line, off,
                             count);
    *bar = (uint64_t)count | (uint64_t)count << 16 | TAG << 56;
}

void sf_emu_mbar_arrive(uint64_t *bar, unsigned tx_bytes, const char *file, int line) {
    mbar m = load(bar, "mbarrier.arrive", file, line);
    if (m.pending == 0)
        sf_emu::thread_fault("mbarrier.arrive at %s:%d: more arrivals than the count %u in one phase", file, line, m.count);
    if (tx_bytes >= (1u << 23) || m.tx + (int)tx_bytes >= (1 << 23))
        sf_emu::thread_fault("mbarrier.arrive.expect_tx at %s:%d: %u bytes overflow the transaction count", file, line,
                             tx_bytes);
    m.tx += (int)tx_bytes, m.pending--;
    store(bar, m);
}

void sf_emu_mbar_wait(uint64_t *bar, unsigned parity, const char *file, int line) {
    /* done once the phase of this parity completed, i.e. the phase in progress has the other parity */
    while (load(bar, "mbarrier.try_wait", file, line).parity == (parity & 1u))
        if (!land_for(bar)) sf_emu::spin_yield(file, line);
}

void sf_emu_tma_load_2d(void *dst, const CUtensorMap *map, int c0, int c1, uint64_t *bar, const char *file, int line) {
    if (!map || map->magic != 0x7e5a0001u)
        sf_emu::thread_fault("TMA load at %s:%d: not a tensor map made by sf_tma_map_bf16", file, line);
    const uint32_t off = sf_emu::smem_offset(dst, file, line);
    if (off % 1024)
        sf_emu::thread_fault("TMA load at %s:%d: destination at shared offset %#x is not 1024-byte aligned (the "
                             "128-byte swizzle's period)", file, line, off);
    if (!sf_emu::is_device_ptr(map->base))
        sf_emu::thread_fault("TMA load at %s:%d: the tensor map's base %p is not device memory", file, line, map->base);
    sf_emu::smem_offset(bar, file, line); /* the barrier is in shared memory (faults otherwise) */
    const tma_load t = {off, *map, c0, c1, bar, file, line};
    if (late > 0) {
        in_flight.push_back(t);
        sf_emu::mbar_progress(); /* waiters on bar look again: their wait lands it */
    } else {
        land(t);
    }
}

sf_status sf_emu_tma_map(CUtensorMap *map, const void *base, uint64_t rows, uint64_t cols, uint64_t row_bytes,
                         uint32_t box_rows, sf_err *err) {
    (void)err;
    memset(map, 0, sizeof *map);
    map->magic = 0x7e5a0001u, map->box_rows = box_rows;
    map->base = base, map->rows = rows, map->cols = cols, map->row_bytes = row_bytes;
    return SF_OK;
}
