/* test_cuda_graphs.c — CUDA graphs (kernels/cuda_graph.h, kernels/cuda/graph.cu): captured work runs
 * only when launched and equals the same work enqueued directly, bit for bit; a cached graph updated
 * in place runs with its new arguments; another shape of work is instantiated anew; an invalidated
 * capture launches nothing and leaves the stream working. Built on the CPU emulation
 * (test_cuda_graphs, make test: kernels/cuda/emu/graph_emu.cc records and replays the captures) and,
 * with -DSF_TEST_GPU, against the real runtime on a GPU (test_cuda_graphs_gpu, tests/gpu/check.sh; SKIP
 * without one). The whole DiT forward as graphs: test_dit_cuda `graphs`. */
#include "sf_test.h"
#include "device.h"

#include "act.h"
#include "cuda_graph.h"
#include "cuda_ops.h"
#include "gemm.h"

#include "kernel_test.h"

#include <stdint.h>

/* Graph launches replay the recorded kernels and library calls: bit for bit the direct run's values. */
static int same(const char *what, const float *got, const float *ref, size_t n) {
    (void)gb_new, (void)gb_put, (void)gb_get; /* kernel_test.h helpers not needed here */
    return tol_cmp(what, got, ref, n, 0, 1, 0, 0);
}

/* ---- CUDA graphs (kernels/cuda_graph.h) ------------------------------------------------------ */
/* A small sequence of the kinds of work a DiT forward records: a cuBLASLt product with its bias
 * epilogue, a kernel, a device copy (and with extra, one more kernel). */
static int graph_seq(cu *c, int64_t M, const void *x, const void *w, const void *b, void *h, void *y, int extra) {
    enum { N = 24, K = 40 };
    return sf_linear_cuda(&c->ctx, M, N, K, x, K, w, b, h, N, &c->err) == SF_OK &&
           sf_gelu_tanh_cuda(&c->ctx, h, M * N, &c->err) == SF_OK &&
           sf_cuda_copy_d2d(&c->ctx, y, h, (size_t)(M * N) * 2, &c->err) == SF_OK &&
           (!extra || sf_silu_cuda(&c->ctx, y, M * N, &c->err) == SF_OK);
}
/* Recorded work runs only when launched (a discarded capture leaves memory alone); a launch equals the
 * same work enqueued directly, bit for bit; a second capture under the key (other input, other rows)
 * updates the cached graph in place and runs with its own arguments; work of another shape under the
 * key is instantiated anew; a capture with a synchronisation inside fails as a whole, launches
 * nothing, and the stream works directly afterwards. */
static void test_graphs(void) {
    enum { M = 12, N = 24, K = 40 };
    cu c;
    if (!cu_open(&c)) return;
    float *x1 = hrand(M * K, -1, 1, 1), *x2 = hrand(M * K, -1, 1, 1), *w = hrand(N * K, -0.5f, 0.5f, 1);
    float *b = hrand(N, -1, 1, 1), *ref = hzalloc(M * N), *got = hzalloc(M * N);
    sf_cuda_graphs *gs = NULL;
    sf_cuda_graph_stats st;
    uint16_t *raw = calloc(M * N, 2);
    void *dx1 = cu_put(&c, x1, M * K, 1), *dx2 = cu_put(&c, x2, M * K, 1), *dw = cu_put(&c, w, N * K, 1), *db = cu_put(&c, b, N, 1);
    void *h = cu_alloc(&c, M * N * 2), *y = cu_alloc(&c, M * N * 2), *hr = cu_alloc(&c, M * N * 2), *yr = cu_alloc(&c, M * N * 2);
    if (!dx1 || !dx2 || !dw || !db || !h || !y || !hr || !yr || !raw) goto done;
    SF_CHECK_OK(sf_cuda_graphs_new(&gs, &c.err), &c.err);
    if (!gs) goto done;
#define GUARD_Y() SF_CHECK_OK(sf_cuda_memset(&c.ctx, y, 0xA5, M * N * 2, &c.err), &c.err)
#define REF(x, m, extra) \
    do { \
        SF_CHECK(graph_seq(&c, m, x, dw, db, hr, yr, extra)); \
        SF_CHECK_OK(sf_cuda_download_bf16(&c.ctx, ref, yr, M * N, &c.err), &c.err); \
    } while (0)
#define GOT() SF_CHECK_OK(sf_cuda_download_bf16(&c.ctx, got, y, M * N, &c.err), &c.err)
    /* discarded: nothing ran */
    GUARD_Y();
    SF_CHECK_OK(sf_cuda_graph_begin(&c.ctx, &c.err), &c.err);
    SF_CHECK(graph_seq(&c, M, dx1, dw, db, h, y, 0));
    SF_CHECK_OK(sf_cuda_graph_end(&c.ctx, gs, 7, 0, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, raw, y, M * N * 2, &c.err), &c.err);
    int untouched = 1;
    for (int i = 0; i < M * N; i++) untouched &= raw[i] == 0xA5A5;
    SF_CHECK_MSG(untouched, "a discarded capture changed the output");
    /* launched: = the direct run */
    REF(dx1, M, 0);
    SF_CHECK_OK(sf_cuda_graph_begin(&c.ctx, &c.err), &c.err);
    SF_CHECK(graph_seq(&c, M, dx1, dw, db, h, y, 0));
    SF_CHECK_OK(sf_cuda_graph_end(&c.ctx, gs, 7, 1, &c.err), &c.err);
    GOT();
    same("graph launch vs direct", got, ref, M * N);
    /* updated in place: another input and 7 of the rows (the rest of y keeps the last launch's values) */
    REF(dx1, M, 0);
    SF_CHECK(graph_seq(&c, 7, dx2, dw, db, hr, yr, 0));
    SF_CHECK_OK(sf_cuda_download_bf16(&c.ctx, ref, yr, M * N, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_graph_begin(&c.ctx, &c.err), &c.err);
    SF_CHECK(graph_seq(&c, 7, dx2, dw, db, h, y, 0));
    SF_CHECK_OK(sf_cuda_graph_end(&c.ctx, gs, 7, 1, &c.err), &c.err);
    GOT();
    same("updated graph vs direct", got, ref, M * N);
    sf_cuda_graph_stats_get(gs, &st);
    SF_CHECK_MSG(st.launches == 2 && st.instantiations == 1 && st.updates == 1 && st.failed == 0 && st.refused == 0,
                 "%lld launches, %lld instantiations, %lld updates, %lld failed", st.launches, st.instantiations,
                 st.updates, st.failed);
    /* another shape of work under the same key: instantiated again */
    REF(dx1, M, 1);
    SF_CHECK_OK(sf_cuda_graph_begin(&c.ctx, &c.err), &c.err);
    SF_CHECK(graph_seq(&c, M, dx1, dw, db, h, y, 1));
    SF_CHECK_OK(sf_cuda_graph_end(&c.ctx, gs, 7, 1, &c.err), &c.err);
    GOT();
    same("re-instantiated graph vs direct", got, ref, M * N);
    sf_cuda_graph_stats_get(gs, &st);
    SF_CHECK_MSG(st.launches == 3 && st.instantiations == 2 && st.updates == 1 && st.refused == 1 &&
                     st.last_refusal == 2 /* cudaGraphExecUpdateErrorTopologyChanged */,
                 "%lld launches, %lld instantiations, %lld refused updates (last result %d, want %d: topology changed)",
                 st.launches, st.instantiations, st.refused, st.last_refusal, 2);
    /* a synchronisation inside a capture: the capture fails, nothing is launched, the stream goes on */
    SF_CHECK_OK(sf_cuda_sync(&c.ctx, &c.err), &c.err);
    GUARD_Y();
    SF_CHECK_OK(sf_cuda_graph_begin(&c.ctx, &c.err), &c.err);
    SF_CHECK(graph_seq(&c, M, dx1, dw, db, h, y, 0));
    SF_CHECK_MSG(sf_cuda_sync(&c.ctx, &c.err) != SF_OK, "a stream synchronisation was allowed inside a capture");
    (void)graph_seq(&c, M, dx2, dw, db, h, y, 0); /* refused or recorded into the dead capture: either way not run */
    SF_CHECK_MSG(sf_cuda_graph_end(&c.ctx, gs, 7, 1, &c.err) == SF_E_DEVICE, "an invalidated capture was launched");
    sf_cuda_graph_stats_get(gs, &st);
    SF_CHECK_MSG(st.failed == 1 && st.launches == 3, "%lld failed, %lld launches after an invalidated capture", st.failed,
                 st.launches);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, raw, y, M * N * 2, &c.err), &c.err);
    untouched = 1;
    for (int i = 0; i < M * N; i++) untouched &= raw[i] == 0xA5A5;
    SF_CHECK_MSG(untouched, "an invalidated capture changed the output");
    REF(dx1, M, 0);
    SF_CHECK(graph_seq(&c, M, dx1, dw, db, h, y, 0));
    GOT();
    same("direct run after an invalidated capture", got, ref, M * N);
#undef GUARD_Y
#undef REF
#undef GOT
done:
    sf_cuda_graphs_free(gs);
    free(x1), free(x2), free(w), free(b), free(ref), free(got), free(raw);
    cu_close(&c);
}

/* The emulation's capture rules (cuda_emu.h): an allocation or a copy from pageable host memory inside
 * a capture invalidates it; a copy from pinned memory is recorded and reads the buffer when the graph
 * runs, not when it was recorded. */
static void test_graph_rules(void) {
    EMU_ONLY();
    cu c;
    if (!cu_open(&c)) return;
    sf_cuda_graphs *gs = NULL;
    float host[4] = {1, 2, 3, 4}, back[4] = {0};
    float *pin = NULL, *dev = cu_alloc(&c, sizeof host);
    void *extra = NULL, *ev = NULL;
    SF_CHECK_OK(sf_cuda_graphs_new(&gs, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_host_alloc((void **)&pin, sizeof host, &c.err), &c.err);
    if (!gs || !pin || !dev) goto done;
    SF_CHECK_OK(sf_cuda_graph_begin(&c.ctx, &c.err), &c.err);
    SF_CHECK_MSG(sf_cuda_malloc(&extra, 64, &c.err) != SF_OK, "cudaMalloc allowed inside a capture");
    SF_CHECK_MSG(sf_cuda_graph_end(&c.ctx, gs, 1, 1, &c.err) == SF_E_DEVICE, "a capture with an allocation was launched");
    SF_CHECK_OK(sf_cuda_graph_begin(&c.ctx, &c.err), &c.err);
    SF_CHECK_MSG(sf_cuda_copy_h2d_async(&c.ctx, dev, host, sizeof host, &c.err) != SF_OK,
                 "a copy from pageable memory was recorded");
    SF_CHECK_MSG(sf_cuda_graph_end(&c.ctx, gs, 1, 1, &c.err) == SF_E_DEVICE, "a capture with a pageable copy was launched");
    memcpy(pin, host, sizeof host);
    SF_CHECK_OK(sf_cuda_graph_begin(&c.ctx, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_h2d_async(&c.ctx, dev, pin, sizeof host, &c.err), &c.err);
    pin[2] = 30; /* after recording, before the launch: the graph copies this */
    SF_CHECK_OK(sf_cuda_graph_end(&c.ctx, gs, 1, 1, &c.err), &c.err);
    SF_CHECK_OK(sf_cuda_copy_d2h(&c.ctx, back, dev, sizeof back, &c.err), &c.err);
    SF_CHECK_MSG(back[0] == 1 && back[2] == 30, "the recorded copy read %g, %g (want 1, 30)", back[0], back[2]);
    /* an event recorded inside a capture is the graph's: waiting on it or timing it fails (CUDA's
       cudaErrorCapturedEvent) until it is recorded again outside one */
    SF_CHECK_OK(sf_cuda_events_new(&ev, 2, &c.err), &c.err);
    if (ev) {
        SF_CHECK_OK(sf_cuda_event_record(&c.ctx, ev, 0, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_graph_begin(&c.ctx, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_event_record(&c.ctx, ev, 1, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_graph_end(&c.ctx, gs, 3, 1, &c.err), &c.err);
        SF_CHECK_MSG(sf_cuda_event_sync(ev, 1, &c.err) == SF_E_DEVICE && strstr(c.err.msg, "cudaErrorCapturedEvent"),
                     "a wait on an event recorded in a capture: '%s'", c.err.msg);
        float ms = -1;
        SF_CHECK_MSG(sf_cuda_event_ms(ev, 0, 1, &ms, &c.err) == SF_E_DEVICE, "timed an event recorded in a capture");
        SF_CHECK_OK(sf_cuda_event_record(&c.ctx, ev, 1, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_event_sync(ev, 1, &c.err), &c.err);
        SF_CHECK_OK(sf_cuda_event_ms(ev, 0, 1, &ms, &c.err), &c.err);
    }
    /* a capture refused at its beginning (here: one is under way on the stream) leaves no error behind: the
       next launch check (the caller's direct run, on a GPU) must not report the refused begin as its own */
    SF_CHECK_OK(sf_cuda_graph_begin(&c.ctx, &c.err), &c.err);
    SF_CHECK_MSG(sf_cuda_graph_begin(&c.ctx, &c.err) == SF_E_DEVICE, "a capture began inside another");
    SF_CHECK_OK(sf_silu_cuda(&c.ctx, dev, 4, &c.err), &c.err);
    (void)sf_cuda_graph_end(&c.ctx, gs, 2, 0, &c.err); /* closes the first capture, launching nothing */
done:
    sf_cuda_events_free(ev, 2);
    sf_cuda_free(extra);
    sf_cuda_host_free(pin);
    sf_cuda_graphs_free(gs);
    cu_close(&c);
}

static const sf_test tests[] = {
    {"graphs", test_graphs},
    {"graph_rules", test_graph_rules},
};
SF_TEST_MAIN(tests)
