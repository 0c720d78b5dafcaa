/* test_emu_self.c — the CUDA emulation's own rules (kernels/cuda/emu/cuda_emu.h, through the kernels
 * of emu_selftest.cu): indices of 3-D grids and blocks, warp shuffles and ballots, static and dynamic
 * shared memory with its poison, the block reductions, the warp-level matrix instructions (mma.sync
 * m16n8k16 bf16, ldmatrix x4 plain and transposed) against a product computed here from the PTX
 * ISA's operand layouts, pinned host memory, and the misuse each must report. Emulation only (there is no GPU build of
 * this file: on a GPU the same instructions are checked through the kernels that use them, e.g.
 * test_tap_mass_gpu's attn_mass_* cases). */
#include "sf_test.h"
#include "device.h"
#include "cuda/emu/sf_emu.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KT_OPEN_HOOK() (sf_emu_reset(), sf_emu_set_max_blocks(0))
#define KT_CLOSE_HOOK() sf_emu_set_max_blocks(0)
#include "kernel_test.h"

sf_status sf_emu_selftest(const sf_cuda_ctx *ctx, int which, void *out, void *aux, sf_err *err);

static void test_emu_index(void) {
    (void)hrand, (void)tol_cmp, (void)gb_new, (void)gb_put, (void)gb_get; /* kernel_test.h helpers not needed here */
    cu c;
    if (!cu_open(&c)) return;
    enum { NB = 12, NT = 24 };
    int *out = cu_alloc(&c, NB * NT * 4), *dims = cu_alloc(&c, 8), h[NB * NT], hd[2];
    if (!out || !dims) goto done;
    SF_CHECK_OK(sf_cuda_memset(&c.ctx, out, 0xFF, NB * NT * 4, &c.err), &c.err);
    SF_CHECK_OK(sf_emu_selftest(&c.ctx, 0, out, dims, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, h, out, sizeof h, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, hd, dims, sizeof hd, &c.err), &c.err);
    SF_CHECK(hd[0] == (4 | 3 << 4 | 2 << 8) && hd[1] == (3 | 2 << 4 | 2 << 8));
    for (int b = 0, bad = 0; b < NB; b++)
        for (int t = 0; t < NT; t++) {
            int bx = b % 3, by = b / 3 % 2, bz = b / 6, tx = t % 4, ty = t / 4 % 3, tz = t / 12;
            int want = tx | ty << 4 | tz << 8 | bx << 12 | by << 16 | bz << 20;
            if (h[b * NT + t] != want && bad++ == 0)
                SF_CHECK_MSG(0, "block %d thread %d: got %#x want %#x", b, t, h[b * NT + t], want);
        }
done:
    cu_close(&c);
}

static void test_emu_shuffles(void) {
    cu c;
    if (!cu_open(&c)) return;
    int *out = cu_alloc(&c, 64 * 6 * 4), h[64 * 6];
    if (!out) goto done;
    SF_CHECK_OK(sf_emu_selftest(&c.ctx, 1, out, NULL, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, h, out, sizeof h, &c.err), &c.err);
    unsigned ballot = 0;
    for (int l = 0; l < 32; l++) ballot |= (unsigned)(l % 3 == 0) << l;
    for (int t = 0, bad = 0; t < 64; t++) {
        int lane = t & 31, base = 1000 * (t >> 5);
        int want[6] = {base + (lane ^ 5), base + (lane >= 3 ? lane - 3 : lane), base + (lane + 3 < 32 ? lane + 3 : lane),
                       base + 7, base + (lane ^ 2), (int)ballot};
        for (int k = 0; k < 6; k++)
            if (h[6 * t + k] != want[k] && bad++ < 3)
                SF_CHECK_MSG(0, "thread %d result %d: got %d want %d", t, k, h[6 * t + k], want[k]);
    }
done:
    cu_close(&c);
}

static void shared_case(int which, int nb, int nt) {
    cu c;
    if (!cu_open(&c)) return;
    float *out = cu_alloc(&c, (size_t)nb * nt * 4), *poison = cu_alloc(&c, (size_t)nb * 4);
    float *h = hzalloc((size_t)nb * nt), hp[8];
    if (!out || !poison || !h) goto done;
    SF_CHECK_OK(sf_emu_selftest(&c.ctx, which, out, poison, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, h, out, (size_t)nb * nt * 4, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, hp, poison, (size_t)nb * 4, &c.err), &c.err);
    for (int b = 0, bad = 0; b < nb; b++) {
        SF_CHECK_MSG(isnan(hp[b]), "block %d read %g from unwritten shared memory (want the NaN poison)", b, hp[b]);
        for (int t = 0; t < nt; t++)
            if (h[b * nt + t] != (float)(1000 * b + nt - 1 - t) && bad++ == 0)
                SF_CHECK_MSG(0, "block %d thread %d: got %g", b, t, h[b * nt + t]);
    }
done:
    free(h);
    cu_close(&c);
}
static void test_emu_shared_static(void) {
    shared_case(2, 4, 256);
}
static void test_emu_shared_dynamic(void) {
    shared_case(3, 3, 128);
}

static void test_emu_block_sum(void) {
    cu c;
    if (!cu_open(&c)) return;
    float *out = cu_alloc(&c, 10 * 4), h[10];
    if (!out) goto done;
    SF_CHECK_OK(sf_emu_selftest(&c.ctx, 4, out, NULL, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, h, out, sizeof h, &c.err), &c.err);
    for (int b = 0; b < 5; b++) {
        float T = b < 2 ? 1024 : 96;
        SF_CHECK_MSG(h[2 * b] == T * (T + 1) / 2 && h[2 * b + 1] == T, "block %d: sums %g %g", b, h[2 * b], h[2 * b + 1]);
    }
done:
    cu_close(&c);
}

/* One 16×8×16 product D = A·B three ways in one warp (emu_selftest.cu case 5): fragments gathered
 * element by element as the PTX ISA lays them out, A and Bᵀ through ldmatrix, A through ldmatrix and B
 * through ldmatrix.trans. Small integers: every product and sum is exact, so all three equal the
 * product computed here bit for bit; a layout mistake moves values to other places. */
static void test_emu_mma_layouts(void) {
    cu c;
    if (!cu_open(&c)) return;
    float ab[256 + 128], want[128], got[3 * 128];
    for (int i = 0; i < 384; i++) ab[i] = (float)((i * 7 + i / 16) % 9 - 4);
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 8; n++) {
            float d = 0;
            for (int k = 0; k < 16; k++) d += ab[r * 16 + k] * ab[256 + k * 8 + n];
            want[r * 8 + n] = d;
        }
    void *in = cu_alloc(&c, sizeof ab / 2);
    float *out = cu_alloc(&c, sizeof got);
    if (in && out) {
        SF_CHECK_OK(sf_cuda_upload_bf16(&c.ctx, in, ab, 384, &c.err), &c.err);
        SF_CHECK_OK(sf_emu_selftest(&c.ctx, 5, out, in, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, got, out, sizeof got, &c.err), &c.err);
        for (int v = 0; v < 3; v++) {
            int i = 0;
            while (i < 128 && got[v * 128 + i] == want[i]) i++;
            SF_CHECK_MSG(i == 128, "way %d (%s): D[%d][%d] = %g, want %g", v,
                         v == 0 ? "PTX layout" : v == 1 ? "ldmatrix" : "ldmatrix.trans", i / 8, i % 8,
                         i < 128 ? got[v * 128 + i] : 0.0, i < 128 ? want[i] : 0.0);
        }
    }
    cu_close(&c);
}

/* Kernels that break a rule must fail the launch with a message naming the rule. */
static void test_emu_reports_misuse(void) {
    static const struct {
        int which;
        const char *needle;
    } cases[] = {{10, "divergent __syncthreads"}, {11, "divergent __syncthreads"}, {12, "deadlock"},
                 {13, "does not take part"},      {14, "host memory"},
                 {15, "needs 32"},                {16, "not 16-byte aligned"},
                 {17, "exited without taking part"}, {18, "only the 128-byte swizzle"},
                 {19, "whole warpgroups"},        {20, "no initialised mbarrier"},
                 {21, "more arrivals than the count"}, {22, "waits on an mbarrier"},
                 {23, "not 1024-byte aligned"},   {24, "divergent warpgroup barrier"},
                 {25, "barrier 1..15"},           {26, "at a named barrier"},
                 {30, "other descriptors"},       {33, "written while the product was in flight"},
                 {34, "without a wgmma.fence"},   {35, "exits with 1 wgmma products in flight"},
                 {40, "no fence.proxy.async"}};
    cu c;
    if (!cu_open(&c)) return;
    float *out = cu_alloc(&c, 256 * 4);
    void *aux = cu_alloc(&c, 10 * 104 * 2);
    sf_emu_set_quiet(1);
    for (size_t i = 0; out && i < sizeof cases / sizeof cases[0]; i++) {
        sf_emu_reset();
        c.err.msg[0] = 0;
        sf_status st = sf_emu_selftest(&c.ctx, cases[i].which, out, aux, &c.err);
        SF_CHECK_MSG(st == SF_E_DEVICE && strstr(c.err.msg, cases[i].needle), "case %d: status %d, message '%s'",
                     cases[i].which, (int)st, c.err.msg);
        SF_CHECK(strstr(sf_emu_last_error(), cases[i].needle) != NULL);
    }
    /* over 48 KiB of dynamic shared memory: refused unless granted, and (as on a GPU) not sticky */
    sf_emu_reset();
    c.err.msg[0] = 0;
    sf_status st = out ? sf_emu_selftest(&c.ctx, 41, out, aux, &c.err) : SF_E_NOMEM;
    SF_CHECK_MSG(st == SF_E_DEVICE && strstr(c.err.msg, "over 48 KiB"), "case 41: status %d, message '%s'", (int)st,
                 c.err.msg);
    SF_CHECK_MSG(!*sf_emu_last_error(), "case 41 left a sticky error: %s", sf_emu_last_error());
    sf_emu_set_quiet(0);
    sf_emu_reset();
    if (out) SF_CHECK_OK(sf_emu_selftest(&c.ctx, 42, out, aux, &c.err), &c.err); /* granted: it runs */
    cu_close(&c);
}

/* wgmma is asynchronous on the emulation as on the GPU: the accumulator holds NaN poison until the
 * wait that covers its product, and the product reads shared memory at that wait (so a stage rewritten
 * before it — an early release — shows in the values). */
static void test_emu_wgmma_async(void) {
    cu c;
    if (!cu_open(&c)) return;
    float *d = cu_alloc(&c, 256 * 4), h[256];
    for (int mode = 0; d && mode < 2; mode++) {
        SF_CHECK_OK(sf_emu_selftest(&c.ctx, mode ? 32 : 31, d, NULL, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, h, d, sizeof h, &c.err), &c.err);
        int before = 0, after = 0;
        for (int t = 0; t < 128; t++) before += isnan(h[t]), after += h[128 + t] == (mode ? 32.0f : 16.0f);
        SF_CHECK_MSG(before == 128 && after == 128, "mode %d: %d of 128 accumulators poisoned before the wait, %d right after "
                     "it (out[0] %g, out[128] %g)", mode, before, after, h[0], h[128]);
    }
    cu_close(&c);
}

/* SF_EMU_COPIES_LATE: a TMA load lands when a wait on its barrier needs it, a cp.async copy at the wait_group
 * that covers it, so a thread that reads the stage without waiting finds the shared memory's poison; when
 * copies land at issue (the default) it does not notice. A waiting reader gets the data either way. */
static void test_emu_copies_late(void) {
    cu c;
    if (!cu_open(&c)) return;
    float *d = cu_alloc(&c, 64 * 4), h[64], row[100];
    for (int i = 0; i < 100; i++) row[i] = (float)(i + 1);
    void *aux = cu_put(&c, row, 100, 1); /* row 0 of the map: the only one read */
    void *m = cu_alloc(&c, 10 * 104 * 2);
    if (d && aux && m) {
        SF_CHECK_OK(sf_cuda_memset(&c.ctx, m, 0, 10 * 104 * 2, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2d(&c.ctx, m, aux, 100 * 2, &c.err), &c.err);
        for (int late = 0; late < 2; late++)
            for (int wait = 0; wait < 4; wait++) { /* 0, 1: TMA; 2, 3: cp.async */
                sf_emu_set_copies_late(late);
                static const int which[4] = {37, 36, 39, 38};
                SF_CHECK_OK(sf_emu_selftest(&c.ctx, which[wait], d, m, &c.err), &c.err);
                SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, h, d, sizeof h, &c.err), &c.err);
                int data = 0, poison = 0;
                for (int t = 0; t < 64; t++) data += h[t] == (float)(t + 1), poison += isnan(h[t]);
                const int want_poison = late && !(wait & 1);
                SF_CHECK_MSG(want_poison ? poison == 64 : data == 64, "%s, late %d, wait %d: %d of 64 values loaded, %d poisoned",
                             wait < 2 ? "TMA" : "cp.async", late, wait & 1, data, poison);
            }
    }
    sf_emu_set_copies_late(getenv("SF_EMU_COPIES_LATE") && strcmp(getenv("SF_EMU_COPIES_LATE"), "0") != 0);
    cu_close(&c);
}

/* SF_EMU_ORDER: the racy kernels of emu_selftest.cu give the right values in index order only; reversed
 * and shuffled orders expose both races (a thread reading a shared slot before its writer ran, a block
 * reading global memory before the block that writes it ran); with the barrier the thread race is gone
 * in every order. Threads and blocks are each permuted (one permutation per block / per launch). */
static void race_run(cu *c, int which, float *d, float *h) {
    SF_CHECK_OK(sf_cuda_memset(&c->ctx, d, 0, 128 * 4, &c->err), &c->err);
    SF_CHECK_OK(sf_emu_selftest(&c->ctx, which, d, NULL, &c->err), &c->err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c->ctx, h, d, 128 * 4, &c->err), &c->err);
}
static void test_emu_order(void) {
    cu c;
    if (!cu_open(&c)) return;
    const char *was = sf_emu_order();
    float *d = cu_alloc(&c, 128 * 4), h[128];
    if (!d) goto done;
    SF_CHECK(sf_emu_set_order("sideways") == -1 && !strcmp(sf_emu_order(), was));
    const char *orders[] = {"forward", "reverse", "shuffle:1", "shuffle:2"};
    for (int o = 0; o < 4; o++) {
        SF_CHECK(sf_emu_set_order(orders[o]) == 0);
        int wrong_t = 0, poisoned = 0, wrong_sync = 0, wrong_b = 0;
        race_run(&c, 27, d, h);
        for (int t = 1; t < 128; t++) wrong_t += h[t] != (float)t, poisoned += isnan(h[t]); /* NaN counts as wrong */
        race_run(&c, 28, d, h);
        for (int t = 1; t < 128; t++) wrong_sync += h[t] != (float)t;
        race_run(&c, 29, d, h);
        for (int b = 1; b < 64; b++) wrong_b += h[64 + b] != (float)b;
        SF_CHECK_MSG(wrong_sync == 0, "%s: %d threads read a wrong value past the barrier", orders[o], wrong_sync);
        if (o == 0) {
            SF_CHECK_MSG(wrong_t == 0 && wrong_b == 0, "forward: %d threads, %d blocks wrong (index order hides both)",
                         wrong_t, wrong_b);
        } else {
            SF_CHECK_MSG(wrong_t > 0, "%s: the missing barrier went unnoticed", orders[o]);
            SF_CHECK_MSG(wrong_b > 0, "%s: the block race went unnoticed", orders[o]);
        }
        /* reversed, no thread finds its neighbour's value: every read is the poison */
        if (o == 1) SF_CHECK_MSG(poisoned == 127, "reverse: %d of 127 reads were the poison", poisoned);
    }
done:
    sf_emu_set_order(was);
    cu_close(&c);
}

/* A fresh device allocation is poisoned (0xFF bytes: NaN as f32 and bf16), so a read of memory nothing
 * wrote shows (a GPU hands out whatever an earlier buffer left there); a freed and re-allocated one too. */
static void test_emu_malloc_poison(void) {
    cu c;
    if (!cu_open(&c)) return;
    for (int round = 0; round < 2; round++) {
        void *d = NULL;
        unsigned char h[1000];
        float f;
        SF_CHECK_OK(sf_cuda_malloc(&d, sizeof h, &c.err), &c.err);
        if (!d) break;
        SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, h, d, sizeof h, &c.err), &c.err);
        int bad = 0;
        for (size_t i = 0; i < sizeof h; i++) bad += h[i] != 0xFF;
        memcpy(&f, h, 4);
        SF_CHECK_MSG(bad == 0 && isnan(f), "round %d: %d of %zu bytes not poisoned", round, bad, sizeof h);
        SF_CHECK_OK(sf_cuda_memset(&c.ctx, d, 0, sizeof h, &c.err), &c.err); /* what the next one must not see */
        sf_cuda_free(d);
    }
    cu_close(&c);
}

/* SF_EMU_ASYNC (deferred streams): queued work runs when the host waits for it. An upload from pinned
 * memory reads its source when it runs (a host that refills the staging buffer before waiting sends the
 * new data: the race shows); a download into pinned memory holds the poison until its event's wait, then
 * the data; a kernel's fault is reported by the wait. */
static void test_emu_async(void) {
    cu c;
    if (!cu_open(&c)) return;
    void *ev = NULL;
    float *pin = NULL, *back = NULL, *d = cu_alloc(&c, 64 * 4), *f = cu_alloc(&c, 64 * 4);
    SF_CHECK_OK(sf_cuda_host_alloc((void **)&pin, 64 * 4, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_host_alloc((void **)&back, 64 * 4, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_events_new(&ev, 1, &c.err), &c.err);
    if (!pin || !back || !d || !f || !ev) goto done;
    sf_emu_set_async(1);
    for (int i = 0; i < 64; i++) pin[i] = 1.0f, back[i] = 7.0f;
    SF_CHECK_OK(sf_cuda_copy_h2d_async(&c.ctx, d, pin, 64 * 4, &c.err), &c.err);
    SF_CHECK_MSG(sf_emu_queued() == 1, "%llu operations queued after one upload", sf_emu_queued());
    for (int i = 0; i < 64; i++) pin[i] = 2.0f; /* refilled before any wait: what the queued copy will read */
    SF_CHECK_OK(sf_cuda_copy_d2h_async(&c.ctx, back, d, 64 * 4, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_event_record(&c.ctx, ev, 0, &c.err), &c.err);
    SF_CHECK_MSG(isnan(back[0]) && isnan(back[63]), "the download's destination read %g before its event's wait", back[0]);
    SF_CHECK_MSG(sf_emu_queued() == 2, "%llu operations queued", sf_emu_queued());
    SF_CHECK_OK(sf_cuda_event_sync(ev, 0, &c.err), &c.err);
    SF_CHECK_MSG(sf_emu_queued() == 0 && back[0] == 2.0f && back[63] == 2.0f,
                 "after the wait: %llu queued, %g (want 2: the upload ran late and read the refilled buffer)",
                 sf_emu_queued(), back[0]);
    /* a kernel: queued, runs at the synchronous download (which waits for the stream) */
    SF_CHECK_OK(sf_cuda_memset(&c.ctx, f, 0, 64 * 4, &c.err), &c.err);
    SF_CHECK_OK(sf_gelu_tanh_cuda(&c.ctx, f, 64, &c.err), &c.err); /* 64 bf16 of zeros */
    SF_CHECK(sf_emu_queued() >= 1);
    float h[64];
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, h, f, sizeof h, &c.err), &c.err);
    SF_CHECK(sf_emu_queued() == 0);
done:
    sf_emu_set_async(0);
    sf_cuda_events_free(ev, 1);
    sf_cuda_host_free(pin);
    sf_cuda_host_free(back);
    cu_close(&c);
}

/* Every live pinned buffer is pinned: an async copy into the 100th waits no more than into the first
 * (the emulation once remembered 64, and took later ones for pageable memory: a wait, refused in a
 * capture). */
static void test_emu_many_pinned(void) {
    enum { N = 100 };
    cu c;
    if (!cu_open(&c)) return;
    void *h[N] = {0};
    float one = 2.0f;
    void *x = cu_put(&c, &one, 1, 0);
    for (int i = 0; i < N; i++) SF_CHECK_OK(sf_cuda_host_alloc(&h[i], 64, &c.err), &c.err);
    if (x && h[N - 1]) {
        SF_CHECK_OK(sf_cuda_sync(&c.ctx, &c.err), &c.err);
        const unsigned long long w0 = sf_emu_host_waits();
        SF_CHECK_OK(sf_cuda_copy_d2h_async(&c.ctx, h[0], x, 4, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_copy_d2h_async(&c.ctx, h[N - 1], x, 4, &c.err), &c.err);
        SF_CHECK_MSG(sf_emu_host_waits() == w0, "async copies into pinned buffers 1 and %d: %llu host waits (want 0)", N,
                     sf_emu_host_waits() - w0);
        SF_CHECK_OK(sf_cuda_sync(&c.ctx, &c.err), &c.err);
        float got;
        memcpy(&got, h[N - 1], 4);
        SF_CHECK_MSG(got == 2.0f, "pinned buffer %d holds %g after the copy (want 2)", N, got);
    }
    for (int i = 0; i < N; i++) sf_cuda_host_free(h[i]);
    cu_close(&c);
}

/* SF_EMU_DEVICES=2: a second emulated GPU. A context on cuda:1 works from the host thread that made it
 * (sf_cuda_ctx_init sets the device); a thread that did not call cudaSetDevice(1) — every new thread starts on
 * cuda:0, as on a GPU — gets an error naming both devices for a kernel on that context's stream and for a copy
 * into its memory, and works once it sets the device. Without the variable there is no cuda:1. */
typedef struct dev_job {
    const sf_cuda_ctx *ctx;
    void *out, *dims;
    int set_first, dev_seen;
    sf_status launch, copy;
    char launch_msg[512], copy_msg[512];
} dev_job;

static void *dev_thread(void *arg) {
    dev_job *j = arg;
    if (j->set_first) sf_emu_set_device(1);
    j->dev_seen = sf_emu_current_device();
    sf_err e = {{0}};
    j->launch = sf_emu_selftest(j->ctx, 0, j->out, j->dims, &e);
    snprintf(j->launch_msg, sizeof j->launch_msg, "%s", e.msg);
    sf_emu_reset(); /* a refused launch is not sticky; the copy's own check follows */
    int h[4] = {1, 2, 3, 4};
    e.msg[0] = 0;
    j->copy = sf_cuda_copy_h2d(j->ctx, j->out, h, sizeof h, &e);
    snprintf(j->copy_msg, sizeof j->copy_msg, "%s", e.msg);
    return NULL;
}

static void test_emu_devices(void) {
    sf_err err = {{0}};
    sf_cuda_ctx ctx;
    unsetenv("SF_EMU_DEVICES");
    SF_CHECK(sf_cuda_ctx_init(&ctx, 1, &err) != SF_OK); /* one device by default */
    setenv("SF_EMU_DEVICES", "2", 1);
    sf_emu_reset();
    SF_CHECK_OK(sf_cuda_ctx_init(&ctx, 1, &err), &err);
    SF_CHECK(sf_emu_current_device() == 1);
    void *out = NULL, *dims = NULL;
    SF_CHECK_OK(sf_cuda_malloc(&out, 12 * 24 * 4, &err), &err);
    SF_CHECK_OK(sf_cuda_malloc(&dims, 8, &err), &err);
    SF_CHECK_OK(sf_emu_selftest(&ctx, 0, out, dims, &err), &err); /* this thread: cuda:1 is current */
    sf_emu_set_quiet(1);
    for (int set = 0; set < 2; set++) {
        dev_job j = {&ctx, out, dims, set, -1, SF_OK, SF_OK, "", ""};
        pthread_t th;
        SF_CHECK(pthread_create(&th, NULL, dev_thread, &j) == 0);
        pthread_join(th, NULL);
        if (!set) {
            SF_CHECK_MSG(j.dev_seen == 0, "a new thread's device is cuda:%d", j.dev_seen);
            SF_CHECK_MSG(j.launch == SF_E_DEVICE && strstr(j.launch_msg, "a stream of cuda:1 used while cuda:0 is"),
                         "kernel from a thread on cuda:0: status %d, '%s'", (int)j.launch, j.launch_msg);
            SF_CHECK_MSG(j.copy == SF_E_DEVICE && strstr(j.copy_msg, "of cuda:1 used while cuda:0 is") &&
                             strstr(j.copy_msg, "cudaSetDevice(1)"),
                         "copy from a thread on cuda:0: status %d, '%s'", (int)j.copy, j.copy_msg);
        } else {
            SF_CHECK_MSG(j.dev_seen == 1 && j.launch == SF_OK && j.copy == SF_OK,
                         "a thread that set cuda:1: device %d, launch %d '%s', copy %d '%s'", j.dev_seen, (int)j.launch,
                         j.launch_msg, (int)j.copy, j.copy_msg);
        }
        sf_emu_reset();
    }
    sf_emu_set_quiet(0);
    SF_CHECK(sf_emu_set_device(2) == -1 && sf_emu_current_device() == 1);
    sf_cuda_free(out);
    sf_cuda_free(dims);
    sf_cuda_ctx_free(&ctx);
    sf_emu_set_device(0);
    unsetenv("SF_EMU_DEVICES");
    sf_emu_reset();
}

static const sf_test tests[] = {
    {"emu_index", test_emu_index},
    {"emu_shuffles", test_emu_shuffles},
    {"emu_shared_static", test_emu_shared_static},
    {"emu_shared_dynamic", test_emu_shared_dynamic},
    {"emu_block_sum", test_emu_block_sum},
    {"emu_mma_layouts", test_emu_mma_layouts},
    {"emu_reports_misuse", test_emu_reports_misuse},
    {"emu_order", test_emu_order},
    {"emu_malloc_poison", test_emu_malloc_poison},
    {"emu_async", test_emu_async},
    {"emu_wgmma_async", test_emu_wgmma_async},
    {"emu_copies_late", test_emu_copies_late},
    {"emu_many_pinned", test_emu_many_pinned},
    {"emu_devices", test_emu_devices},
};
SF_TEST_MAIN(tests)
