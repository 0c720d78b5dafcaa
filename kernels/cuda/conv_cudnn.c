/* conv_cudnn.c — kernels/conv_cuda.h: the VAE's NDHWC bf16 conv3d through cuDNN's backend graph
 * API, plain C11, cuDNN dlopen'd (kernels/cuda/cudnn_util.h; the plan search is the DiT
 * attention's). Learned from shared/device/cudnn-probe/conv3d_cudnn.c.
 *
 * Two graphs per shape, tried in order:
 *   fused  conv_fprop (x, w → virtual f32) → + bias (bf16 [1,cout,1,1,1]) → + res → y bf16
 *          (only the parts the shape asks for; cuDNN's runtime fusion engines);
 *   plain  conv_fprop (x, w → y bf16); bias / residual then by sf_vae_bias_res_cuda.
 * Each through heuristics A, FALLBACK, then every engine (cudnn_util). On a GPU the plan is
 * autotuned (SF_CUDNN_AUTOTUNE=0: off): the first configs of heuristics A that finalize for each
 * graph (≤ 6, ≤ 0.25 s of finalizing) are timed on random scratch buffers of the shape (one warm-up,
 * 2 runs; the plain graph's with its bias / residual kernel), and the fastest that is ≥ 3 % faster
 * than cuDNN's first choice and computes its bits exactly replaces it — cuDNN's first choice is not
 * always the fastest kernel for the VAE's narrow channels, and the bytes must not depend on timings;
 * sf_conv_cudnn_tune_report sums what it found. The temporal padding is 0: the causal cache is the
 * input buffer's first kt−1 frames (see conv_cuda.h).
 * Tested by tests/unit/test_conv_plans.c (deviceless plans for every VAE shape; GPU forward). */
#include "conv_cuda.h"
#include "cuda/cudnn_util.h"
#include "t5_cuda.h" /* sf_t5_fill_random_cuda: the autotune's random inputs */
#include "vae_ops_cuda.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { UID_X = 1, UID_W, UID_Y, UID_B, UID_R, UID_VIRT = 100 };

/* 5-D NDHWC tensor (n, c, t, h, w) of dtype dt; virtual = a fused intermediate. */
static bdesc tensor5(sf_cudnn_build *b, int64_t uid, cudnnDataType_t dt, int64_t n, int64_t c, int64_t t, int64_t h,
                     int64_t w, bool virt) {
    const int64_t dim[5] = {n, c, t, h, w}, str[5] = {c * t * h * w, 1, h * w * c, w * c, c};
    return sf_cudnn_tensor(b, uid, dt, 5, dim, str, virt, false);
}


/* The finalized operation graph; fused = with the bias / residual epilogue. */
static bdesc graph_new(sf_cudnn_build *b, const sf_conv_shape *s, int fused) {
    const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
    const int pad = (s->k - 1) / 2, n_epi = fused ? (s->bias != 0) + (s->residual != 0) : 0;
    const int64_t oh = s->down ? s->h / 2 : s->h, ow = s->down ? s->w / 2 : s->w; /* the output's frame */
    int64_t uid = UID_VIRT;
    bdesc x = tensor5(b, UID_X, bf, 1, s->cin, s->t_out + s->kt - 1, s->h, s->w, false);
    bdesc w = x ? tensor5(b, UID_W, bf, s->cout, s->cin, s->kt, s->k, s->k, false) : NULL;
    bdesc y = w ? tensor5(b, n_epi ? uid++ : UID_Y, n_epi ? f32 : bf, 1, s->cout, s->t_out, oh, ow, n_epi > 0) : NULL;
    bdesc conv = y ? sf_cudnn_make(b, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR) : NULL;
    bdesc op = conv ? sf_cudnn_make(b, CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR) : NULL, ops[3], g;
    int64_t nd = 3, pre[3] = {0, pad, pad}, post[3] = {0, pad, pad}, dil[3] = {1, 1, 1}, str[3] = {1, 1, 1};
    if (s->down) /* ZeroPad2d((0, 1, 0, 1)) + stride 2: nothing before, one zero row / column after */
        pre[1] = pre[2] = 0, post[1] = post[2] = 1, str[1] = str[2] = 2;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    float one = 1.0f, zero = 0.0f;
    int nops = 0;
    if (!op) return NULL;
    SET(b, conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    SET(b, conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
    SET(b, conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &nd);
    SET(b, conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 3, pre);
    SET(b, conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 3, post);
    SET(b, conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 3, dil);
    SET(b, conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 3, str);
    CK(b, b->api->finalize(conv), "convolution finalize");
    SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w);
    SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv);
    SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &one);
    SET(b, op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &zero);
    CK(b, b->api->finalize(op), "convolution op finalize");
    ops[nops++] = op;
    if (fused && s->bias) { /* + bias: into y, or into another f32 intermediate when a residual follows */
        bdesc bt = tensor5(b, UID_B, bf, 1, s->cout, 1, 1, 1, false);
        bdesc out = bt ? tensor5(b, s->residual ? uid++ : UID_Y, s->residual ? f32 : bf, 1, s->cout, s->t_out, oh, ow,
                                 s->residual != 0)
                       : NULL;
        if (!out || !(ops[nops++] = sf_cudnn_pointwise(b, CUDNN_POINTWISE_ADD, y, bt, out))) return NULL;
        y = out;
    }
    if (fused && s->residual) { /* + res → y */
        bdesc rt = tensor5(b, UID_R, bf, 1, s->cout, s->t_out, oh, ow, false);
        bdesc out = rt ? tensor5(b, UID_Y, bf, 1, s->cout, s->t_out, oh, ow, false) : NULL;
        if (!out || !(ops[nops++] = sf_cudnn_pointwise(b, CUDNN_POINTWISE_ADD, y, rt, out))) return NULL;
    }
    if (!(g = sf_cudnn_make(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR))) return NULL;
    SET(b, g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, nops, ops);
    if (b->handle) SET(b, g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &b->handle);
    CK(b, b->api->finalize(g), "operation graph finalize");
    return g;
fail:
    return NULL;
}

/* Whether graph kind ("fused", "plain") may be tried: SF_CUDNN_ONLY (testing aid) naming one of them
 * rules out the other. */
static int kind_allowed(const char *kind) {
    const char *only = getenv("SF_CUDNN_ONLY");
    return !(only && *only && (strstr(only, "fused") || strstr(only, "plain")) && !strstr(only, kind));
}

/* fused graph (when the shape has an epilogue) then plain; *fused tells which won. */
static int plan_search(sf_cudnn_build *b, const sf_conv_shape *s, sf_cudnn_found *f, int *fused) {
    for (int fu = (s->bias || s->residual) ? 1 : 0; fu >= 0; fu--) {
        const char *kind = fu ? "fused" : "plain";
        char label[48];
        if (!kind_allowed(kind)) continue;
        int mark = b->l->n;
        size_t k = strlen(b->tried);
        snprintf(b->tried + k, sizeof b->tried - k, "%s%s:", k ? " " : "", kind);
        bdesc g = graph_new(b, s, fu);
        if (!g) {
            k = strlen(b->tried);
            snprintf(b->tried + k, sizeof b->tried - k, " graph rejected;");
            sf_cudnn_dl_drop(b->api, b->l, mark);
            continue;
        }
        *fused = fu;
        snprintf(label, sizeof label, "%s heurA", kind);
        if (sf_cudnn_plan_heur(b, g, CUDNN_HEUR_MODE_A, label, f)) return 1;
        snprintf(label, sizeof label, "%s fallback", kind);
        if (sf_cudnn_plan_heur(b, g, CUDNN_HEUR_MODE_FALLBACK, label, f)) return 1;
        snprintf(label, sizeof label, "%s enum", kind);
        if (sf_cudnn_plan_engines(b, g, label, f)) return 1;
        sf_cudnn_dl_drop(b->api, b->l, mark);
    }
    return 0;
}

static sf_status shape_check(const sf_conv_shape *s, sf_err *err) {
    if (s->cin < 8 || s->cout < 8 || s->cin % 8 || s->cout % 8 || s->h < 1 || s->w < 1 || s->t_out < 1 ||
        (s->kt != 1 && s->kt != 3) || (s->k != 1 && s->k != 3))
        return sf_fail(err, SF_E_ARG,
                       "conv: bad shape cin %lld cout %lld %lldx%lld t_out %lld kernel %dx%dx%d (channels multiples of "
                       "8, kt and k 1 or 3)",
                       (long long)s->cin, (long long)s->cout, (long long)s->h, (long long)s->w, (long long)s->t_out,
                       s->kt, s->k, s->k);
    if (s->down && (s->k != 3 || s->kt != 1 || s->h % 2 || s->w % 2))
        return sf_fail(err, SF_E_ARG, "conv: a downsampling conv is 1x3x3 over an even frame (got %dx%dx%d over %lldx%lld)",
                       s->kt, s->k, s->k, (long long)s->h, (long long)s->w);
    return SF_OK;
}

static sf_status search_fail(sf_cudnn_build *b, const sf_conv_shape *s, sf_err *err) {
    char hint[160];
    sf_cudnn_nvrtc_hint(b->api, hint, sizeof hint);
    return sf_fail(err, SF_E_UNSUPPORTED,
                   "cuDNN %d has no engine for the bf16 NDHWC conv %lld->%lld %lldx%lld t %lld kernel %dx%dx%d%s%s%s (%s "
                   "last: %s)%s%s",
                   b->api->version, (long long)s->cin, (long long)s->cout, (long long)s->h, (long long)s->w,
                   (long long)s->t_out, s->kt, s->k, s->k, s->down ? " stride 2" : "", s->bias ? " +bias" : "", s->residual ? " +res" : "",
                   b->tried, b->why[0] ? b->why : "none", hint,
                   b->debug ? "" : "; SF_CUDNN_DEBUG=1 shows every attempt");
}

static int same(const sf_conv_shape *a, const sf_conv_shape *b) {
    return a->cin == b->cin && a->cout == b->cout && a->h == b->h && a->w == b->w && a->t_out == b->t_out &&
           a->kt == b->kt && a->k == b->k && !!a->bias == !!b->bias && !!a->residual == !!b->residual &&
           !!a->down == !!b->down;
}

/* ---- the handle-bound object --------------------------------------------------------------- */

typedef struct conv_plan {
    sf_conv_shape key;
    sf_cudnn_found f;
    int fused;
    sf_cudnn_dlist l;
} conv_plan;

struct sf_conv_cudnn {
    sf_cudnn_session cs; /* library, handle on the context's stream, device properties, workspace */
    const sf_cuda_ctx *ctx;
    conv_plan *plans;
    int nplans, capplans;
    int tune;                    /* time the candidates (SF_CUDNN_AUTOTUNE, default on) */
    int tuned, changed, timed;   /* shapes tuned, of them where another plan won; candidates timed */
    double tune_s, first_ms, best_ms; /* seconds spent; per-call ms summed over tuned shapes */
};

sf_status sf_conv_cudnn_new(sf_conv_cudnn **out, const sf_cuda_ctx *ctx, sf_err *err) {
    sf_conv_cudnn *c = calloc(1, sizeof *c);
    sf_status st;
    *out = NULL;
    if (!c) return sf_fail(err, SF_E_NOMEM, "conv: out of memory");
    c->ctx = ctx;
    if ((st = sf_cudnn_session_open(&c->cs, ctx->stream, err))) {
        free(c);
        return st;
    }
    const char *at = getenv("SF_CUDNN_AUTOTUNE");
    c->tune = !(at && !strcmp(at, "0"));
    *out = c;
    return SF_OK;
}

void sf_conv_cudnn_destroy(sf_conv_cudnn **cp) {
    sf_conv_cudnn *c = cp ? *cp : NULL;
    if (!c) return;
    sf_cudnn_session_drain(&c->cs); /* no plan is freed under a running kernel */
    for (int i = 0; i < c->nplans; i++) sf_cudnn_dl_free(&c->cs.api, &c->plans[i].l);
    free(c->plans);
    sf_cudnn_session_close(&c->cs);
    free(c);
    *cp = NULL;
}

static conv_plan *plan_find(const sf_conv_cudnn *c, const sf_conv_shape *s) {
    for (int i = 0; i < c->nplans; i++)
        if (same(&c->plans[i].key, s)) return &c->plans[i];
    return NULL;
}

/* Enqueue plan f (of the fused graph or the plain one + the bias / residual kernel) on the stream. */
static sf_status exec_plan(sf_conv_cudnn *c, const sf_conv_shape *s, const sf_cudnn_found *f, int fused, void *ws,
                           const void *x, const void *w, const void *bias, const void *res, void *y, sf_err *err) {
    int64_t uids[5] = {UID_X, UID_W, UID_Y, UID_B, UID_R};
    void *ptrs[5] = {(void *)x, (void *)w, y, (void *)bias, (void *)res};
    int np = 3;
    if (fused && s->bias) uids[np] = UID_B, ptrs[np++] = (void *)bias;
    if (fused && s->residual) uids[np] = UID_R, ptrs[np++] = (void *)res;
    sf_cudnn_dlist l = {0};
    sf_cudnn_build b = {.api = &c->cs.api, .l = &l};
    bdesc vp = sf_cudnn_make(&b, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    if (!vp) goto fail;
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, np, uids);
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, np, ptrs);
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    CK(&b, c->cs.api.finalize(vp), "variant pack finalize");
    CK(&b, c->cs.api.execute(c->cs.handle, f->plan, vp), "cudnnBackendExecute");
    sf_cudnn_dl_free(&c->cs.api, &l);
    if (!fused && (s->bias || s->residual))
        return sf_vae_bias_res_cuda(c->ctx, s->t_out * (s->down ? s->h / 2 * (s->w / 2) : s->h * s->w), s->cout, y,
                                    s->bias ? bias : NULL, s->residual ? res : NULL, err);
    return SF_OK;
fail:
    sf_cudnn_dl_free(&c->cs.api, &l);
    return sf_fail(err, SF_E_DEVICE, "conv %lld->%lld %lldx%lld (%s): %s", (long long)s->cin, (long long)s->cout,
                   (long long)s->h, (long long)s->w, f->desc, b.why);
}

/* ---- autotune: cuDNN's first choice is not always the fastest kernel for a shape ---------------- */

/* per graph: at most 6 candidates, no more once 0.25 s went into finalizing them (the runtime-compiled
 * fusion engines of the residual shapes take ~0.4 s each: only their first is timed) */
enum { TUNE_PER_GRAPH = 6, TUNE_MAX = 2 * TUNE_PER_GRAPH, TUNE_REPS = 2 };
#define TUNE_BUDGET_S 0.25

typedef struct cand {
    sf_cudnn_found f;
    int fused;
} cand;

/* The candidates: the first TUNE_PER_GRAPH configs of heuristics A that finalize, for the fused graph
 * (when the shape has an epilogue) then the plain one (+ the bias / residual kernel) — plan_search's
 * graphs in its order, so candidate 0 is its choice whenever heuristics A has one. Their count. */
static int tune_collect(sf_cudnn_build *b, const sf_conv_shape *s, cand *cs) {
    int n = 0;
    for (int fu = (s->bias || s->residual) ? 1 : 0; fu >= 0; fu--) {
        const char *kind = fu ? "fused" : "plain";
        if (!kind_allowed(kind)) continue;
        int mark = b->l->n;
        sf_cudnn_found f[TUNE_PER_GRAPH];
        char label[48];
        snprintf(label, sizeof label, "%s heurA", kind);
        bdesc g = graph_new(b, s, fu);
        int k = g ? sf_cudnn_plan_heur_n(b, g, CUDNN_HEUR_MODE_A, label, f, TUNE_PER_GRAPH, TUNE_BUDGET_S) : 0;
        if (!k) sf_cudnn_dl_drop(b->api, b->l, mark);
        for (int i = 0; i < k; i++) cs[n].f = f[i], cs[n++].fused = fu;
    }
    return n;
}

/* The candidates do not all compute the same bits (a fused plan rounds once, a plain one twice; other
 * tilings may sum in another order), and timings near a tie flip between runs: a choice by speed alone
 * would make the decoder's bytes depend on the run. So a candidate replaces cuDNN's first choice only
 * when it is at least TUNE_GAIN faster and gives that choice's output bit for bit on random inputs;
 * the same flags then give the same bytes with the autotune on, off, or in another process. */
#define TUNE_GAIN 0.03

/* "cin->cout HxW t T k KTxKxK": the shape in the autotune's messages. */
static const char *tune_shape(const sf_conv_shape *s, char *buf, size_t n) {
    snprintf(buf, n, "%lld->%lld %lldx%lld t %lld k %dx%dx%d%s", (long long)s->cin, (long long)s->cout, (long long)s->h,
             (long long)s->w, (long long)s->t_out, s->kt, s->k, s->k, s->down ? " stride 2" : "");
    return buf;
}

/* One execution of candidate i on the scratch buffers; SF_E_DEVICE (naming it) when the GPU failed, as
 * opposed to a plan cuDNN refused to execute (SF_E_UNSUPPORTED, the reason in err: that candidate is
 * left out). */
static sf_status tune_exec(sf_conv_cudnn *c, const sf_conv_shape *s, const cand *cs, int i, void *const *buf, sf_err *err) {
    sf_err e = {{0}};
    char sh[96];
    if (exec_plan(c, s, &cs[i].f, cs[i].fused, buf[5], buf[0], buf[1], buf[3], buf[4], buf[2], &e) == SF_OK) return SF_OK;
    sf_err lost = {{0}};
    if (sf_cuda_alive(c->ctx, &lost) != SF_OK) /* a fault is sticky: the context is lost */
        return sf_fail(err, SF_E_DEVICE, "conv autotune %s: candidate %d (%s) failed on the GPU: %s",
                       tune_shape(s, sh, sizeof sh), i, cs[i].f.desc, lost.msg);
    return sf_fail(err, SF_E_UNSUPPORTED, "%s", e.msg);
}

/* Time each candidate on the context's stream on scratch buffers of the shape filled with random
 * values (ms[i]: the mean of TUNE_REPS runs after a warm-up, −1 when it did not run), then pick: *best =
 * the fastest candidate at least TUNE_GAIN faster than candidate 0 whose output equals candidate 0's
 * bit for bit, else 0. SF_E_NOMEM when the scratch cannot be had (nothing timed, *best = 0); SF_E_DEVICE
 * when a candidate broke the GPU context. */
static sf_status tune_choose(sf_conv_cudnn *c, const sf_conv_shape *s, const cand *cs, int n, float *ms, int *best,
                             sf_err *err) {
    const size_t xn = (size_t)((s->t_out + s->kt - 1) * s->h * s->w * s->cin), wn = (size_t)(s->cout * s->kt * s->k * s->k * s->cin),
                 yn = (size_t)(s->t_out * (s->down ? s->h / 2 * (s->w / 2) : s->h * s->w) * s->cout), bn = (size_t)s->cout, rn = s->residual ? yn : 0;
    size_t wsb = 16;
    *best = 0;
    for (int i = 0; i < n; i++) {
        ms[i] = -1.0f;
        if ((size_t)cs[i].f.workspace > wsb) wsb = (size_t)cs[i].f.workspace;
    }
    cudaStream_t st = (cudaStream_t)c->ctx->stream;
    void *buf[6] = {0}; /* x, w, y, bias, res, workspace */
    const size_t bytes[6] = {2 * xn, 2 * wn, 2 * yn, 2 * bn, 2 * rn, wsb};
    uint16_t *y0 = NULL, *yi = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    sf_status r = SF_OK;
    char sh[96];
    tune_shape(s, sh, sizeof sh);
    int ok = cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess;
    for (int k = 0; ok && k < 6; k++) ok = !bytes[k] || cudaMalloc(&buf[k], bytes[k]) == cudaSuccess;
    if (!ok) {
        (void)cudaGetLastError(); /* not sticky: an allocation refused */
        r = sf_fail(err, SF_E_NOMEM, "conv autotune: no scratch for %zu MB", (bytes[0] + bytes[1] + bytes[2] + bytes[4] + wsb) >> 20);
        goto done;
    }
    const float scale[5] = {1.0f, 0.05f, 0, 0.5f, 1.0f}; /* x, w, (y), bias, res: values of a conv's size */
    for (int k = 0; k < 5; k++)
        if (k != 2 && bytes[k] && (r = sf_t5_fill_random_cuda(c->ctx, buf[k], (int64_t)(bytes[k] / 2), 0x5eed + (uint64_t)k,
                                                                scale[k], err)))
            goto done;
    for (int i = 0; i < n; i++) {
        int good = 1;
        for (int k = 0; good && k <= TUNE_REPS; k++) { /* k = 0: the warm-up; the clock starts after it */
            if (k == 1) good = cudaEventRecord(e0, st) == cudaSuccess;
            sf_status x = good ? tune_exec(c, s, cs, i, buf, err) : SF_OK;
            if (x == SF_E_DEVICE) {
                r = x;
                goto done;
            }
            good = good && !x;
        }
        float t = 0;
        if (good && cudaEventRecord(e1, st) == cudaSuccess && cudaEventSynchronize(e1) == cudaSuccess &&
            cudaEventElapsedTime(&t, e0, e1) == cudaSuccess)
            ms[i] = t / TUNE_REPS;
        else
            (void)cudaGetLastError();
        if (sf_cudnn_debug_on())
            fprintf(stderr, "sf-cudnn: autotune %s: %s: %s\n", sh, cs[i].f.desc, ms[i] >= 0 ? "timed" : err->msg);
    }
    if (ms[0] < 0) goto done; /* cuDNN's first choice stays: nothing to hold the others to */
    for (;;) { /* the fastest challenger left, held to candidate 0's bits */
        int k = -1;
        for (int i = 1; i < n; i++)
            if (ms[i] >= 0 && ms[i] <= (1.0 - TUNE_GAIN) * ms[0] && (k < 0 || ms[i] < ms[k])) k = i;
        if (k < 0) break;
        /* (copies on the context's stream, then a wait: it is non-blocking, so cudaMemcpy would not wait for it) */
        if (!y0) { /* candidate 0's output, once: the reference */
            sf_status x = (y0 = malloc(2 * yn)) && (yi = malloc(2 * yn)) ? tune_exec(c, s, cs, 0, buf, err) : SF_E_NOMEM;
            if (x == SF_E_DEVICE) {
                r = x;
                goto done;
            }
            if (x || cudaMemcpyAsync(y0, buf[2], 2 * yn, cudaMemcpyDeviceToHost, st) != cudaSuccess ||
                cudaStreamSynchronize(st) != cudaSuccess) {
                (void)cudaGetLastError();
                goto done; /* no reference: cuDNN's first choice stays (a lost context shows at done) */
            }
        }
        /* y poisoned first: a challenger that wrote nothing must not pass on candidate 0's bytes */
        sf_status x = cudaMemsetAsync(buf[2], 0xFF, 2 * yn, st) == cudaSuccess ? tune_exec(c, s, cs, k, buf, err)
                                                                              : SF_E_UNSUPPORTED;
        if (x == SF_E_DEVICE) {
            r = x;
            goto done;
        }
        if (!x && cudaMemcpyAsync(yi, buf[2], 2 * yn, cudaMemcpyDeviceToHost, st) == cudaSuccess &&
            cudaStreamSynchronize(st) == cudaSuccess && !memcmp(y0, yi, 2 * yn)) {
            *best = k;
            break;
        }
        (void)cudaGetLastError();
        if (sf_cudnn_debug_on())
            fprintf(stderr, "sf-cudnn: autotune %s: %s is %.0f%% faster but computes other bits: not taken\n", sh,
                    cs[k].f.desc, 100.0 * (1.0 - ms[k] / ms[0]));
        ms[k] = -2.0f; /* timed, but not the same arithmetic */
    }
done:
    if (!r) { /* a fault the timing loop let pass (a wait it did not check): the context is lost */
        sf_err lost = {{0}};
        if (sf_cuda_alive(c->ctx, &lost) != SF_OK) r = sf_fail(err, SF_E_DEVICE, "conv autotune %s: %s", sh, lost.msg);
    }
    for (int k = 0; k < 6; k++) cudaFree(buf[k]);
    free(y0), free(yi);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    return r;
}

/* Autotune p's plan: SF_OK and *found = 1 with p->f / p->fused set (see tune_choose; cuDNN's first choice
 * when timing was impossible), *found = 0 when heuristics A has no candidate at all (plan_search decides);
 * SF_E_DEVICE when a candidate broke the GPU context (the VAE cannot go on). */
static sf_status tune_pick(sf_conv_cudnn *c, sf_cudnn_build *b, const sf_conv_shape *s, conv_plan *p, int *found,
                           sf_err *err) {
    cand cs[TUNE_MAX];
    float ms[TUNE_MAX];
    const double t0 = sf_now();
    const int n = tune_collect(b, s, cs);
    *found = n > 0;
    if (!n) return SF_OK;
    sf_err e = {{0}};
    int best = 0;
    const char *pick = getenv("SF_CUDNN_TUNE_PICK"); /* testing aid: candidate k (the last when fewer), untimed */
    if (pick && *pick) {
        const int k = atoi(pick);
        best = k < 0 ? 0 : k < n ? k : n - 1;
        char d[sizeof p->f.desc];
        snprintf(d, sizeof d, "%.60s (candidate %d of %d)", cs[best].f.desc, best, n);
        memcpy(cs[best].f.desc, d, sizeof d);
    } else if (n > 1) {
        sf_status st = tune_choose(c, s, cs, n, ms, &best, &e);
        if (st == SF_E_DEVICE) {
            *err = e;
            return st;
        }
        if (!st && ms[0] >= 0) {
            c->tuned++, c->timed += n, c->changed += best != 0;
            c->first_ms += ms[0];
            c->best_ms += ms[best];
            char d[2 * sizeof p->f.desc]; /* room for any float: the copy below cuts to the field */
            snprintf(d, sizeof d, "%.40s (tuned, same bits: best of %d %.3f ms, first %.3f)", cs[best].f.desc, n,
                     (double)ms[best], (double)ms[0]);
            snprintf(cs[best].f.desc, sizeof cs[best].f.desc, "%.*s", (int)sizeof cs[best].f.desc - 1, d);
        } else if (e.msg[0] && sf_cudnn_debug_on()) {
            fprintf(stderr, "sf-cudnn: %s\n", e.msg);
        }
    }
    p->f = cs[best].f, p->fused = cs[best].fused;
    c->tune_s += sf_now() - t0;
    return SF_OK;
}

int sf_conv_cudnn_tune_report(const sf_conv_cudnn *c, char *buf, size_t n) {
    if (n) buf[0] = 0;
    if (!c || !c->tuned) return 0;
    snprintf(buf, n,
             "%d conv shapes autotuned in %.2f s (%d candidates timed), %d on another plan than cuDNN's first choice: "
             "one call of each %.2f ms instead of %.2f ms",
             c->tuned, c->tune_s, c->timed, c->changed, c->best_ms, c->first_ms);
    return 1;
}

sf_status sf_conv_cudnn_prepare(sf_conv_cudnn *c, const sf_conv_shape *s, sf_err *err) {
    sf_status st = shape_check(s, err);
    if (st || plan_find(c, s)) return st;
    if (c->nplans == c->capplans) {
        int cap = c->capplans ? 2 * c->capplans : 16;
        conv_plan *p = realloc(c->plans, sizeof *p * (size_t)cap);
        if (!p) return sf_fail(err, SF_E_NOMEM, "conv: out of memory");
        c->plans = p, c->capplans = cap;
    }
    conv_plan *p = &c->plans[c->nplans];
    memset(p, 0, sizeof *p);
    p->key = *s;
    sf_cudnn_build b = {.api = &c->cs.api, .handle = c->cs.handle, .devprop = c->cs.devprop, .l = &p->l,
                        .debug = sf_cudnn_debug_on()};
    int tuned = 0;
    if (c->tune && c->cs.handle && (st = tune_pick(c, &b, s, p, &tuned, err))) {
        sf_cudnn_dl_free(&c->cs.api, &p->l);
        return st;
    }
    if (!tuned && !plan_search(&b, s, &p->f, &p->fused))
        st = search_fail(&b, s, err);
    else
        st = sf_cudnn_session_workspace(&c->cs, p->f.workspace, "conv", err); /* grows at init only */
    if (st) {
        sf_cudnn_dl_free(&c->cs.api, &p->l);
        return st;
    }
    c->nplans++;
    return SF_OK;
}

sf_status sf_conv_cudnn_describe(const sf_conv_cudnn *c, const sf_conv_shape *s, char *desc, size_t n, sf_err *err) {
    const conv_plan *p = plan_find(c, s);
    if (!p) return sf_fail(err, SF_E_NOTFOUND, "conv: shape not prepared");
    snprintf(desc, n, "%s", p->f.desc);
    return SF_OK;
}

size_t sf_conv_cudnn_bytes(const sf_conv_cudnn *c) { return c ? c->cs.ws_bytes : 0; }

sf_status sf_conv_cudnn_forward(sf_conv_cudnn *c, const sf_conv_shape *s, const void *x, const void *w,
                                const void *bias, const void *res, void *y, sf_err *err) {
    conv_plan *p = plan_find(c, s);
    if (!p)
        return sf_fail(err, SF_E_ARG, "conv %lld->%lld %lldx%lld t %lld: no plan prepared at init", (long long)s->cin,
                       (long long)s->cout, (long long)s->h, (long long)s->w, (long long)s->t_out);
    if (!x || !w || !y || (s->bias && !bias) || (s->residual && !res) ||
        (((uintptr_t)x | (uintptr_t)w | (uintptr_t)y | (uintptr_t)bias | (uintptr_t)res) & 15))
        return sf_fail(err, SF_E_ARG, "conv: x, w, y (and bias, res when used) must be 16-byte aligned device pointers");
    return exec_plan(c, s, &p->f, p->fused, c->cs.ws, x, w, bias, res, y, err);
}

sf_status sf_conv_cudnn_plan_deviceless(const char *deviceprop_json_path, const sf_conv_shape *s, char *desc,
                                        size_t desc_n, sf_err *err) {
    sf_cudnn_api a;
    sf_cudnn_dlist l = {0};
    sf_cudnn_found f = {0};
    int fused = 0;
    sf_status st;
    if (desc_n) desc[0] = 0;
    if ((st = shape_check(s, err)) || (st = sf_cudnn_api_load(&a, err))) return st;
    sf_cudnn_build b = {.api = &a, .l = &l, .debug = sf_cudnn_debug_on()};
    if ((st = sf_cudnn_devprop_json(&b, deviceprop_json_path, &b.devprop, err))) goto done;
    if (!plan_search(&b, s, &f, &fused)) {
        st = search_fail(&b, s, err);
        goto done;
    }
    /* what an autotune on the GPU would time (the first of them is plan_search's choice); not with
       SF_CUDNN_AUTOTUNE=0 */
    const char *at = getenv("SF_CUDNN_AUTOTUNE");
    if (at && !strcmp(at, "0")) {
        snprintf(desc, desc_n, "%s", f.desc);
    } else {
        cand cs[TUNE_MAX];
        const int nc = tune_collect(&b, s, cs);
        snprintf(desc, desc_n, "%s; %d autotune candidates%s", f.desc, nc,
                 nc && cs[0].f.engine == f.engine && cs[0].fused == fused ? ", the first this one" : "");
    }
done:
    sf_cudnn_dl_free(&a, &l);
    return st;
}
