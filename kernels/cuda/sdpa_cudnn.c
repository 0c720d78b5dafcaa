/* sdpa_cudnn.c — kernels/sdpa_cuda.h: bf16 flash attention through cuDNN's backend graph API,
 * plain C11, cuDNN loaded with dlopen (the build links no -lcudnn; <cudnn_graph.h> gives types and
 * enums only). Mirrors the reference's flash-attention call (SPEC §5.7, §5.8).
 *
 * Two graphs describe the same attention, in the project's (L, H·d) layout, nothing transposed:
 *   unified    one CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR (cuDNN ≥ 9.13.1);
 *   composite  matmul(Q, Kᵀ) → ×scale → max → sub → exp → sum → div → matmul(P, V) plus the
 *              log-sum-exp branch (log, add → virtual Stats) that cuDNN's MHA pattern matcher
 *              requires even for inference; P is bf16 (SPEC §5.7 rounds P before P·V).
 * For each graph: heuristics mode A, then FALLBACK, then every engine by global index; the first
 * execution plan that finalizes wins. SF_CUDNN_DEBUG=1 prints every attempt to stderr.
 *
 * Device properties. On a GPU the heuristics, engines and plans get a DEVICEPROP descriptor made
 * from the handle (CUDNN_ATTR_DEVICEPROP_HANDLE), and the operation graph the (deprecated) handle
 * attribute. With neither, cuDNN 9.19's heuristics return 0 engine configs and no error: that was
 * the first H200 run's "0 configs" (the probe gave the heuristics nothing on the GPU); the same
 * happens deviceless when the heuristics get no DEVICEPROP. On the H200 (driver 580, cuDNN 9.19.0)
 * the fix gives heuristics A 2 configs; unified engine 9 runs 4680×32760, 12×128 in 1.72 ms
 * (547 TFLOP/s); the composite graph's engine 2 the same; enumeration alone finds engine 8
 * (KERNEL_CFG 2) at 229 TFLOP/s. Deviceless, the DEVICEPROP comes from saved JSON, no handle.
 *
 * Tested by tests/unit/test_sdpa_plans.c (deviceless plans in `make test`, forward on a GPU). */
#include "sdpa_cuda.h"

#include <cuda_runtime_api.h>
#include <cudnn_graph.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef cudnnBackendDescriptor_t bdesc;

/* ---- the dlopen'd library ------------------------------------------------------------------ */

typedef struct cudnn_api {
    void *lib;
    int version; /* cudnnGetVersion(), e.g. 91900 */
    __typeof__(&cudnnGetVersion) get_version;
    __typeof__(&cudnnGetCudartVersion) cudart_version;
    __typeof__(&cudnnGetErrorString) error_string;
    __typeof__(&cudnnGetLastErrorString) last_error;
    __typeof__(&cudnnCreate) create;
    __typeof__(&cudnnDestroy) destroy;
    __typeof__(&cudnnSetStream) set_stream;
    __typeof__(&cudnnBackendCreateDescriptor) create_desc;
    __typeof__(&cudnnBackendDestroyDescriptor) destroy_desc;
    __typeof__(&cudnnBackendSetAttribute) set_attr;
    __typeof__(&cudnnBackendGetAttribute) get_attr;
    __typeof__(&cudnnBackendFinalize) finalize;
    __typeof__(&cudnnBackendExecute) execute;
} cudnn_api;

/* Load libcudnn.so.9 ($SF_CUDNN_LIB overrides). The library stays loaded for the life of the
 * process (it loads sub-libraries and NVRTC itself; a second dlopen is only a refcount). */
static sf_status api_load(cudnn_api *a, sf_err *err) {
    const char *path = getenv("SF_CUDNN_LIB");
    if (!path || !*path) path = "libcudnn.so.9";
    memset(a, 0, sizeof *a);
    a->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!a->lib) {
        const char *why = dlerror();
        return sf_fail(err, SF_E_UNSUPPORTED, "cuDNN not found (%s): install cuDNN 9 or put it on LD_LIBRARY_PATH",
                       why ? why : path);
    }
#define LOAD(field, name)                                                                                  \
    do {                                                                                                   \
        *(void **)&a->field = dlsym(a->lib, name);                                                         \
        if (!a->field) return sf_fail(err, SF_E_UNSUPPORTED, "%s has no %s: cuDNN 9 is required", path, name); \
    } while (0)
    LOAD(get_version, "cudnnGetVersion");
    LOAD(cudart_version, "cudnnGetCudartVersion");
    LOAD(error_string, "cudnnGetErrorString");
    LOAD(last_error, "cudnnGetLastErrorString");
    LOAD(create, "cudnnCreate");
    LOAD(destroy, "cudnnDestroy");
    LOAD(set_stream, "cudnnSetStream");
    LOAD(create_desc, "cudnnBackendCreateDescriptor");
    LOAD(destroy_desc, "cudnnBackendDestroyDescriptor");
    LOAD(set_attr, "cudnnBackendSetAttribute");
    LOAD(get_attr, "cudnnBackendGetAttribute");
    LOAD(finalize, "cudnnBackendFinalize");
    LOAD(execute, "cudnnBackendExecute");
#undef LOAD
    a->version = (int)a->get_version();
    if (a->version < 90800) /* DEVICEPROP descriptors (9.8) are needed for deviceless plans */
        return sf_fail(err, SF_E_UNSUPPORTED, "cuDNN %d.%d.%d is too old (need ≥ 9.8)", a->version / 10000,
                       a->version / 100 % 100, a->version % 100);
    return SF_OK;
}

/* ---- descriptors: one list per shape, truncated back to a mark when an attempt fails ------------ */

typedef struct dlist {
    bdesc *d;
    int n, cap;
} dlist;

static void dl_drop(const cudnn_api *a, dlist *l, int mark) {
    while (l->n > mark) a->destroy_desc(l->d[--l->n]);
}
static void dl_free(const cudnn_api *a, dlist *l) {
    dl_drop(a, l, 0);
    free(l->d);
    memset(l, 0, sizeof *l);
}

/* One plan search: the library, handle (NULL deviceless), device properties, the descriptor list,
 * and a record of the first failure for the final message. */
typedef struct build {
    const cudnn_api *api;
    cudnnHandle_t handle;
    bdesc devprop;
    dlist *l;
    int debug;
    char why[256]; /* the last failing call and cuDNN's message */
    char tried[200]; /* per graph: configs / engines seen */
} build;

/* Status check: 0 on success; otherwise records (and in debug mode prints) what failed. */
static int bad(build *b, cudnnStatus_t st, const char *what) {
    if (st == CUDNN_STATUS_SUCCESS) return 0;
    char msg[256] = "";
    b->api->last_error(msg, sizeof msg);
    snprintf(b->why, sizeof b->why, "%s: %s%s%s", what, b->api->error_string(st), msg[0] ? ": " : "", msg);
    if (b->debug) fprintf(stderr, "sf-cudnn:   %s\n", b->why);
    return 1;
}
#define CK(b, call, what)                     \
    do {                                      \
        if (bad((b), (call), (what))) goto fail; \
    } while (0)
#define SET(b, d, name, type, n, p) CK(b, (b)->api->set_attr((d), (name), (type), (n), (p)), #name)

static bdesc make(build *b, cudnnBackendDescriptorType_t t) {
    bdesc d = NULL;
    if (b->l->n == b->l->cap) {
        int cap = b->l->cap ? 2 * b->l->cap : 64;
        bdesc *p = realloc(b->l->d, sizeof *p * (size_t)cap);
        if (!p) {
            snprintf(b->why, sizeof b->why, "out of host memory");
            return NULL;
        }
        b->l->d = p, b->l->cap = cap;
    }
    if (bad(b, b->api->create_desc(t, &d), "cudnnBackendCreateDescriptor")) return NULL;
    return b->l->d[b->l->n++] = d;
}

/* ---- the operation graphs --------------------------------------------------------------------- */

typedef struct shape {
    int64_t Lq, Lk, H, d, ldq, ldk, ldo;
} shape;

enum { UID_Q = 1, UID_K, UID_V, UID_O, UID_SCALE, UID_VIRT = 100 };

/* 4-D tensor (1, H, rows, cols) of given strides; virtual = a fused intermediate, by_value = the
 * host scalar scale. */
static bdesc tensor(build *b, int64_t uid, cudnnDataType_t dt, const int64_t dim[4], const int64_t str[4], bool virt,
                    bool by_value) {
    bdesc t = make(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    int64_t align = 16;
    if (!t) return NULL;
    SET(b, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    SET(b, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    SET(b, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim);
    SET(b, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str);
    SET(b, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    SET(b, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt);
    if (by_value) SET(b, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
    CK(b, b->api->finalize(t), "tensor finalize");
    return t;
fail:
    return NULL;
}
/* (1, H, Lq, cols) contiguous virtual tensor: the composite graph's per-row intermediates. */
static bdesc virt_rows(build *b, const shape *s, int64_t *uid, int64_t cols, cudnnDataType_t dt) {
    const int64_t dim[4] = {1, s->H, s->Lq, cols}, str[4] = {s->H * s->Lq * cols, s->Lq * cols, cols, 1};
    return tensor(b, (*uid)++, dt, dim, str, true, false);
}

static bdesc op_matmul(build *b, bdesc x, bdesc y, bdesc out) {
    bdesc m = make(b, CUDNN_BACKEND_MATMUL_DESCRIPTOR), op = m ? make(b, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR) : NULL;
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    if (!op) return NULL;
    SET(b, m, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    CK(b, b->api->finalize(m), "matmul finalize");
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &out);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &m);
    CK(b, b->api->finalize(op), "matmul op finalize");
    return op;
fail:
    return NULL;
}
static bdesc op_pointwise(build *b, cudnnPointwiseMode_t mode, bdesc x, bdesc y /* NULL: unary */, bdesc out) {
    bdesc pw = make(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    bdesc op = pw ? make(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR) : NULL;
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    if (!op) return NULL;
    SET(b, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    SET(b, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    CK(b, b->api->finalize(pw), "pointwise finalize");
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (y) SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &out);
    CK(b, b->api->finalize(op), "pointwise op finalize");
    return op;
fail:
    return NULL;
}
static bdesc op_reduce(build *b, cudnnReduceTensorOp_t rop, bdesc x, bdesc out) {
    bdesc r = make(b, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    bdesc op = r ? make(b, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR) : NULL;
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    if (!op) return NULL;
    SET(b, r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &rop);
    SET(b, r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    CK(b, b->api->finalize(r), "reduction finalize");
    SET(b, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(b, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &out);
    SET(b, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &r);
    CK(b, b->api->finalize(op), "reduction op finalize");
    return op;
fail:
    return NULL;
}

/* The composite graph's ten operations into ops[]; returns their count (0 on failure). */
static int composite_ops(build *b, const shape *s, bdesc q, bdesc v, bdesc o, bdesc scale, bdesc ops[10]) {
    const int64_t ktd[4] = {1, s->H, s->d, s->Lk}, kts[4] = {s->Lk * s->ldk, s->d, 1, s->ldk}; /* Kᵀ: K's memory */
    int64_t uid = UID_VIRT;
    cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    bdesc kt = tensor(b, UID_K, CUDNN_DATA_BFLOAT16, ktd, kts, false, false);
    bdesc sc = kt ? virt_rows(b, s, &uid, s->Lk, f32) : NULL, s2 = sc ? virt_rows(b, s, &uid, s->Lk, f32) : NULL;
    bdesc mx = s2 ? virt_rows(b, s, &uid, 1, f32) : NULL, s3 = mx ? virt_rows(b, s, &uid, s->Lk, f32) : NULL;
    bdesc e = s3 ? virt_rows(b, s, &uid, s->Lk, f32) : NULL, z = e ? virt_rows(b, s, &uid, 1, f32) : NULL;
    bdesc p = z ? virt_rows(b, s, &uid, s->Lk, CUDNN_DATA_BFLOAT16) : NULL; /* matmul operands share a type */
    bdesc logz = p ? virt_rows(b, s, &uid, 1, f32) : NULL, lse = logz ? virt_rows(b, s, &uid, 1, f32) : NULL;
    int n = 0;
    if (!lse) return 0;
    if (!(ops[n++] = op_matmul(b, q, kt, sc))) return 0;                             /* S = Q Kᵀ */
    if (!(ops[n++] = op_pointwise(b, CUDNN_POINTWISE_MUL, sc, scale, s2))) return 0; /* · scale */
    if (!(ops[n++] = op_reduce(b, CUDNN_REDUCE_TENSOR_MAX, s2, mx))) return 0;     /* row max */
    if (!(ops[n++] = op_pointwise(b, CUDNN_POINTWISE_SUB, s2, mx, s3))) return 0;
    if (!(ops[n++] = op_pointwise(b, CUDNN_POINTWISE_EXP, s3, NULL, e))) return 0;
    if (!(ops[n++] = op_reduce(b, CUDNN_REDUCE_TENSOR_ADD, e, z))) return 0;       /* row sum */
    if (!(ops[n++] = op_pointwise(b, CUDNN_POINTWISE_LOG, z, NULL, logz))) return 0; /* Stats = */
    if (!(ops[n++] = op_pointwise(b, CUDNN_POINTWISE_ADD, mx, logz, lse))) return 0; /* max + log z */
    if (!(ops[n++] = op_pointwise(b, CUDNN_POINTWISE_DIV, e, z, p))) return 0;      /* softmax */
    if (!(ops[n++] = op_matmul(b, p, v, o))) return 0;                              /* O = P V */
    return n;
}

static bdesc unified_op(build *b, const shape *s, bdesc q, bdesc v, bdesc o, bdesc scale) {
    const int64_t kd[4] = {1, s->H, s->Lk, s->d}, ks[4] = {s->Lk * s->ldk, s->d, s->ldk, 1};
    bdesc k = tensor(b, UID_K, CUDNN_DATA_BFLOAT16, kd, ks, false, false);
    bdesc op = k ? make(b, CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR) : NULL;
    if (!op) return NULL;
    SET(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &q);
    SET(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &k);
    SET(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v);
    SET(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &o);
    SET(b, op, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &scale);
    CK(b, b->api->finalize(op), "SDPA_FWD op finalize");
    return op;
fail:
    return NULL;
}

/* The finalized operation graph, unified (1 op) or composite (10 ops); NULL on failure. */
static bdesc graph_new(build *b, const shape *s, int unified) {
    const int64_t qd[4] = {1, s->H, s->Lq, s->d}, qs[4] = {s->Lq * s->ldq, s->d, s->ldq, 1};
    const int64_t vd[4] = {1, s->H, s->Lk, s->d}, vs[4] = {s->Lk * s->ldk, s->d, s->ldk, 1};
    const int64_t os[4] = {s->Lq * s->ldo, s->d, s->ldo, 1}, one[4] = {1, 1, 1, 1};
    bdesc q = tensor(b, UID_Q, CUDNN_DATA_BFLOAT16, qd, qs, false, false);
    bdesc v = q ? tensor(b, UID_V, CUDNN_DATA_BFLOAT16, vd, vs, false, false) : NULL;
    bdesc o = v ? tensor(b, UID_O, CUDNN_DATA_BFLOAT16, qd, os, false, false) : NULL;
    bdesc scale = o ? tensor(b, UID_SCALE, CUDNN_DATA_FLOAT, one, one, false, true) : NULL;
    bdesc ops[10], g;
    int nops = 0;
    if (!scale) return NULL;
    if (unified) nops = (ops[0] = unified_op(b, s, q, v, o, scale)) != NULL;
    else nops = composite_ops(b, s, q, v, o, scale, ops);
    if (!nops || !(g = make(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR))) return NULL;
    SET(b, g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, nops, ops);
    if (b->handle) SET(b, g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &b->handle);
    CK(b, b->api->finalize(g), "operation graph finalize");
    return g;
fail:
    return NULL;
}

/* ---- plans: heuristics A, FALLBACK, then every engine ----------------------------------------- */

typedef struct found {
    bdesc plan;
    int64_t workspace, engine;
    char desc[96];
} found;

/* Finalize an execution plan for one engine config; 1 = done (f filled). */
static int plan_try(build *b, bdesc cfg, found *f, const char *label) {
    bdesc plan = make(b, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR), eng = NULL;
    int64_t n = 0, ws = 0, engine = -1;
    if (!plan) return 0;
    if (b->handle) SET(b, plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &b->handle);
    if (b->devprop) SET(b, plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b->devprop);
    SET(b, plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
    CK(b, b->api->finalize(plan), "execution plan finalize");
    CK(b, b->api->get_attr(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws),
       "plan workspace size");
    if ((eng = make(b, CUDNN_BACKEND_ENGINE_DESCRIPTOR)) &&
        b->api->get_attr(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng) ==
            CUDNN_STATUS_SUCCESS)
        b->api->get_attr(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &engine);
    f->plan = plan, f->workspace = ws, f->engine = engine;
    snprintf(f->desc, sizeof f->desc, "%s engine %lld ws %lld", label, (long long)engine, (long long)ws);
    if (b->debug) fprintf(stderr, "sf-cudnn:   plan finalized: %s\n", f->desc);
    return 1;
fail:
    return 0;
}

/* Heuristics in one mode; tries each returned config. */
static int plan_heur(build *b, bdesc g, cudnnBackendHeurMode_t mode, const char *label, found *f) {
    bdesc heur = make(b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR), cfgs[32];
    int64_t count = 0, got = 0;
    if (!heur) return 0;
    SET(b, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g);
    SET(b, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    if (b->devprop) SET(b, heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b->devprop);
    CK(b, b->api->finalize(heur), "heuristics finalize");
    CK(b, b->api->get_attr(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL),
       "heuristics result count");
    if (count > 32) count = 32;
    for (int64_t i = 0; i < count; i++)
        if (!(cfgs[i] = make(b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR))) return 0;
    if (count > 0)
        CK(b, b->api->get_attr(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, cfgs),
           "heuristics results");
    if (b->debug) fprintf(stderr, "sf-cudnn: %s: %lld engine config(s), %lld returned\n", label, (long long)count, (long long)got);
    size_t k = strlen(b->tried);
    snprintf(b->tried + k, sizeof b->tried - k, " %s %lld/%lld cfg;", strchr(label, ' ') + 1, (long long)got,
             (long long)count);
    for (int64_t i = 0; i < got; i++) {
        int mark = b->l->n;
        if (b->debug) fprintf(stderr, "sf-cudnn: %s: config %lld\n", label, (long long)i);
        if (plan_try(b, cfgs[i], f, label)) return 1;
        dl_drop(b->api, b->l, mark);
    }
    return 0;
fail:
    return 0;
}

/* A finalized engine config for eng with knob values val[0..nk) of types typ[]; NULL if refused. */
static bdesc engine_cfg(build *b, bdesc eng, int nk, const cudnnBackendKnobType_t *typ, const int64_t *val) {
    bdesc kc[8], cfg;
    for (int j = 0; j < nk; j++) {
        if (!(kc[j] = make(b, CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR))) return NULL;
        SET(b, kc[j], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &typ[j]);
        SET(b, kc[j], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &val[j]);
        CK(b, b->api->finalize(kc[j]), "knob choice finalize");
    }
    if (!(cfg = make(b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR))) return NULL;
    SET(b, cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &eng);
    if (nk) SET(b, cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR, nk, kc);
    CK(b, b->api->finalize(cfg), "engine config finalize");
    return cfg;
fail:
    return NULL;
}

/* The engine's knobs (at most 8): types and ranges. Returns their count. */
static int engine_knobs(build *b, bdesc eng, cudnnBackendKnobType_t typ[8], int64_t lo[8], int64_t hi[8], int64_t step[8]) {
    bdesc ki[8];
    int64_t n = 0, c;
    for (int j = 0; j < 8; j++)
        if (!(ki[j] = make(b, CUDNN_BACKEND_KNOB_INFO_DESCRIPTOR))) return 0;
    if (bad(b, b->api->get_attr(eng, CUDNN_ATTR_ENGINE_KNOB_INFO, CUDNN_TYPE_BACKEND_DESCRIPTOR, 8, &n, ki), "knob info"))
        return 0;
    for (int j = 0; j < n; j++) {
        typ[j] = 0, lo[j] = hi[j] = 0, step[j] = 1;
        b->api->get_attr(ki[j], CUDNN_ATTR_KNOB_INFO_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &c, &typ[j]);
        b->api->get_attr(ki[j], CUDNN_ATTR_KNOB_INFO_MINIMUM_VALUE, CUDNN_TYPE_INT64, 1, &c, &lo[j]);
        b->api->get_attr(ki[j], CUDNN_ATTR_KNOB_INFO_MAXIMUM_VALUE, CUDNN_TYPE_INT64, 1, &c, &hi[j]);
        b->api->get_attr(ki[j], CUDNN_ATTR_KNOB_INFO_STRIDE, CUDNN_TYPE_INT64, 1, &c, &step[j]);
        if (step[j] < 1) step[j] = 1;
    }
    return (int)n;
}

/* Every engine by global index: first with cuDNN's default knobs, then (an engine that refuses
 * those, like the SDPA_FWD engines whose KERNEL_CFG must be chosen) with its first knob swept over
 * up to 64 values and the others at their minimum. */
static int plan_engines(build *b, bdesc g, const char *label, found *f) {
    int64_t count = 0, n = 0, ok = 0;
    CK(b, b->api->get_attr(g, CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT, CUDNN_TYPE_INT64, 1, &n, &count),
       "engine global count");
    if (b->debug) fprintf(stderr, "sf-cudnn: %s: %lld engines\n", label, (long long)count);
    for (int64_t i = 0; i < count; i++) {
        int mark = b->l->n, nk;
        bdesc eng = make(b, CUDNN_BACKEND_ENGINE_DESCRIPTOR), cfg;
        cudnnBackendKnobType_t typ[8];
        int64_t lo[8], hi[8], step[8], val[8];
        if (b->debug) fprintf(stderr, "sf-cudnn: %s: engine %lld\n", label, (long long)i);
        if (!eng) break;
        if (bad(b, b->api->set_attr(eng, CUDNN_ATTR_ENGINE_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g), "engine graph") ||
            bad(b, b->api->set_attr(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &i), "engine index") ||
            (b->devprop && bad(b, b->api->set_attr(eng, CUDNN_ATTR_ENGINE_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                                    &b->devprop), "engine deviceprop")) ||
            bad(b, b->api->finalize(eng), "engine finalize")) {
            dl_drop(b->api, b->l, mark);
            continue;
        }
        int tries = 0, at = b->l->n;
        if ((cfg = engine_cfg(b, eng, 0, NULL, NULL))) {
            ok++;
            if (plan_try(b, cfg, f, label)) return 1;
        } else if ((nk = engine_knobs(b, eng, typ, lo, hi, step)) > 0) {
            for (int j = 0; j < nk; j++) val[j] = lo[j];
            for (; val[0] <= hi[0] && tries < 64; val[0] += step[0], tries++) {
                dl_drop(b->api, b->l, at);
                if (b->debug) fprintf(stderr, "sf-cudnn: %s: engine %lld knob %d = %lld\n", label, (long long)i,
                                      (int)typ[0], (long long)val[0]);
                if (!(cfg = engine_cfg(b, eng, nk, typ, val))) continue;
                ok++;
                if (plan_try(b, cfg, f, label)) return 1;
            }
        }
        dl_drop(b->api, b->l, mark);
    }
    size_t k = strlen(b->tried);
    snprintf(b->tried + k, sizeof b->tried - k, " engines: %lld configs usable of %lld engines;", (long long)ok,
             (long long)count);
    return 0;
fail:
    return 0;
}

/* SF_CUDNN_ONLY (testing aid) restricts the search: "composite", "unified", "heurA", "fallback",
 * "enum" or a graph and a mode ("composite enum"). Unset: everything. */
static int allowed(const char *kind, const char *mode) {
    const char *only = getenv("SF_CUDNN_ONLY");
    if (!only || !*only) return 1;
    int graph_named = strstr(only, "unified") || strstr(only, "composite");
    int mode_named = strstr(only, "heurA") || strstr(only, "fallback") || strstr(only, "enum");
    return (!graph_named || strstr(only, kind)) && (!mode_named || strstr(only, mode));
}

/* The plan search over both graphs. Descriptors of the winning plan stay in b->l. */
static int plan_search(build *b, const shape *s, found *f) {
    for (int unified = 1; unified >= 0; unified--) {
        const char *kind = unified ? "unified" : "composite";
        char label[48];
        if (!allowed(kind, "")) continue;
        int mark = b->l->n;
        size_t k = strlen(b->tried);
        snprintf(b->tried + k, sizeof b->tried - k, "%s%s:", k ? " " : "", kind);
        if (unified && b->api->version < 91301) { /* the SDPA_FWD operation arrived in 9.13.1 */
            k = strlen(b->tried);
            snprintf(b->tried + k, sizeof b->tried - k, " needs cuDNN ≥ 9.13.1;");
            continue;
        }
        if (b->debug) fprintf(stderr, "sf-cudnn: %s graph, Lq %lld Lk %lld H %lld d %lld\n", kind, (long long)s->Lq,
                              (long long)s->Lk, (long long)s->H, (long long)s->d);
        bdesc g = graph_new(b, s, unified);
        if (!g) {
            k = strlen(b->tried);
            snprintf(b->tried + k, sizeof b->tried - k, " graph rejected;");
            dl_drop(b->api, b->l, mark);
            continue;
        }
        snprintf(label, sizeof label, "%s heurA", kind);
        if (allowed(kind, "heurA") && plan_heur(b, g, CUDNN_HEUR_MODE_A, label, f)) return 1;
        snprintf(label, sizeof label, "%s fallback", kind);
        if (allowed(kind, "fallback") && plan_heur(b, g, CUDNN_HEUR_MODE_FALLBACK, label, f)) return 1;
        snprintf(label, sizeof label, "%s enum", kind);
        if (allowed(kind, "enum") && plan_engines(b, g, label, f)) return 1;
        dl_drop(b->api, b->l, mark);
    }
    return 0;
}

/* NVRTC is what most often stops cuDNN's runtime-compiled engines (all SDPA engines on sm_90):
 * cuDNN dlopens libnvrtc.so.<CUDA major>; say so when it cannot be loaded. */
static void nvrtc_hint(const cudnn_api *a, char *buf, size_t n) {
    char name[32];
    snprintf(name, sizeof name, "libnvrtc.so.%d", (int)(a->cudart_version() / 1000));
    void *h = dlopen(name, RTLD_LAZY | RTLD_LOCAL);
    if (h) {
        dlclose(h);
        buf[0] = 0;
    } else {
        snprintf(buf, n, "; %s cannot be loaded (runtime-compiled engines need it: put the CUDA toolkit's lib on LD_LIBRARY_PATH)", name);
    }
}

static sf_status search_fail(build *b, const shape *s, sf_err *err) {
    char hint[160];
    nvrtc_hint(b->api, hint, sizeof hint);
    return sf_fail(err, SF_E_UNSUPPORTED,
                   "cuDNN %d has no engine for bf16 SDPA Lq %lld Lk %lld H %lld d %lld (%s last: %s)%s%s", b->api->version,
                   (long long)s->Lq, (long long)s->Lk, (long long)s->H, (long long)s->d, b->tried,
                   b->why[0] ? b->why : "none", hint, b->debug ? "" : "; SF_CUDNN_DEBUG=1 shows every attempt");
}

static sf_status shape_check(const shape *s, sf_err *err) {
    int64_t w = s->H * s->d;
    if (s->Lq < 1 || s->Lk < 1 || s->H < 1 || s->d < 8 || s->d > 256 || s->d % 8 || s->ldq < w || s->ldk < w ||
        s->ldo < w || s->ldq % 8 || s->ldk % 8 || s->ldo % 8)
        return sf_fail(err, SF_E_ARG,
                       "sdpa: bad shape Lq %lld Lk %lld H %lld d %lld ldq %lld ldk %lld ldo %lld (d ≤ 256 and strides "
                       "multiples of 8, ≥ H·d)",
                       (long long)s->Lq, (long long)s->Lk, (long long)s->H, (long long)s->d, (long long)s->ldq,
                       (long long)s->ldk, (long long)s->ldo);
    return SF_OK;
}

static int debug_on(void) {
    const char *e = getenv("SF_CUDNN_DEBUG");
    return e && *e && strcmp(e, "0") != 0;
}

/* ---- the handle-bound object --------------------------------------------------------------- */

typedef struct sdpa_plan {
    shape key;
    found f;
    dlist l; /* every descriptor the plan refers to */
} sdpa_plan;

struct sf_sdpa {
    cudnn_api api;
    cudnnHandle_t handle;
    dlist base;    /* the DEVICEPROP descriptor */
    bdesc devprop; /* NULL when this cuDNN cannot make one from the handle */
    sdpa_plan *plans;
    int nplans, capplans;
    void *ws; /* device workspace, ws_bytes */
    size_t ws_bytes;
};

sf_status sf_sdpa_cudnn_version(int *version, sf_err *err) {
    cudnn_api a;
    sf_status st = api_load(&a, err);
    *version = st == SF_OK ? a.version : 0;
    return st;
}

sf_status sf_sdpa_new(sf_sdpa **out, void *cuda_stream, sf_err *err) {
    sf_sdpa *s = calloc(1, sizeof *s);
    sf_status st;
    cudnnStatus_t cs;
    *out = NULL;
    if (!s) return sf_fail(err, SF_E_NOMEM, "sdpa: out of memory");
    if ((st = api_load(&s->api, err))) goto fail;
    if ((cs = s->api.create(&s->handle)) != CUDNN_STATUS_SUCCESS) {
        s->handle = NULL;
        st = sf_fail(err, SF_E_DEVICE, "cudnnCreate: %s (no usable CUDA device?)", s->api.error_string(cs));
        goto fail;
    }
    if ((cs = s->api.set_stream(s->handle, (cudaStream_t)cuda_stream)) != CUDNN_STATUS_SUCCESS) {
        st = sf_fail(err, SF_E_DEVICE, "cudnnSetStream: %s", s->api.error_string(cs));
        goto fail;
    }
    /* device properties from the handle: the heuristics need them (see the file comment) */
    build b = {.api = &s->api, .l = &s->base, .debug = debug_on()};
    bdesc dp = make(&b, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR);
    if (dp && !bad(&b, s->api.set_attr(dp, CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE, 1, &s->handle), "deviceprop handle") &&
        !bad(&b, s->api.finalize(dp), "deviceprop finalize"))
        s->devprop = dp;
    else if (b.debug)
        fprintf(stderr, "sf-cudnn: no device properties from the handle (%s); the handle alone is used\n", b.why);
    *out = s;
    return SF_OK;
fail:
    sf_sdpa_destroy(&s);
    return st;
}

void sf_sdpa_destroy(sf_sdpa **sp) {
    sf_sdpa *s = sp ? *sp : NULL;
    if (!s) return;
    for (int i = 0; i < s->nplans; i++) dl_free(&s->api, &s->plans[i].l);
    free(s->plans);
    if (s->api.lib) dl_free(&s->api, &s->base);
    if (s->ws) cudaFree(s->ws);
    if (s->handle) s->api.destroy(s->handle);
    free(s);
    *sp = NULL;
}

static sdpa_plan *plan_find(const sf_sdpa *s, const shape *k) {
    for (int i = 0; i < s->nplans; i++)
        if (!memcmp(&s->plans[i].key, k, sizeof *k)) return &s->plans[i];
    return NULL;
}

/* The cached plan for shape k, built (and the workspace grown) on first use. */
static sf_status plan_get(sf_sdpa *s, const shape *k, sdpa_plan **out, sf_err *err) {
    sf_status st = shape_check(k, err);
    if (st) return st;
    if ((*out = plan_find(s, k))) return SF_OK;
    if (s->nplans == s->capplans) {
        int cap = s->capplans ? 2 * s->capplans : 16;
        sdpa_plan *p = realloc(s->plans, sizeof *p * (size_t)cap);
        if (!p) return sf_fail(err, SF_E_NOMEM, "sdpa: out of memory");
        s->plans = p, s->capplans = cap;
    }
    sdpa_plan *p = &s->plans[s->nplans];
    memset(p, 0, sizeof *p);
    p->key = *k;
    build b = {.api = &s->api, .handle = s->handle, .devprop = s->devprop, .l = &p->l, .debug = debug_on()};
    if (!plan_search(&b, k, &p->f)) {
        st = search_fail(&b, k, err);
        dl_free(&s->api, &p->l);
        return st;
    }
    if ((size_t)p->f.workspace > s->ws_bytes) { /* grow once; never shrinks */
        void *ws = NULL;
        cudaError_t ce = cudaMalloc(&ws, (size_t)p->f.workspace);
        if (ce != cudaSuccess) {
            dl_free(&s->api, &p->l);
            return sf_fail(err, SF_E_DEVICE, "sdpa: cudaMalloc(%lld B workspace): %s", (long long)p->f.workspace,
                           cudaGetErrorString(ce));
        }
        if (s->ws) cudaFree(s->ws); /* synchronises: no forward still uses the old one */
        s->ws = ws, s->ws_bytes = (size_t)p->f.workspace;
    }
    s->nplans++;
    *out = p;
    return SF_OK;
}

sf_status sf_sdpa_prepare(sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, int64_t ldq, int64_t ldk, int64_t ldo,
                          sf_err *err) {
    shape k = {Lq, Lk, H, d, ldq, ldk, ldo};
    sdpa_plan *p;
    return plan_get(s, &k, &p, err);
}

sf_status sf_sdpa_describe(const sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, int64_t ldq, int64_t ldk,
                           int64_t ldo, char *desc, size_t desc_n, sf_err *err) {
    shape k = {Lq, Lk, H, d, ldq, ldk, ldo};
    const sdpa_plan *p = plan_find(s, &k);
    if (!p) return sf_fail(err, SF_E_NOTFOUND, "sdpa: shape Lq %lld Lk %lld not prepared", (long long)Lq, (long long)Lk);
    snprintf(desc, desc_n, "%s", p->f.desc);
    return SF_OK;
}

sf_status sf_sdpa_forward(sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, const void *q, int64_t ldq,
                          const void *k, const void *v, int64_t ldk, void *o, int64_t ldo, float scale,
                          sf_err *err) {
    shape key = {Lq, Lk, H, d, ldq, ldk, ldo};
    sdpa_plan *p;
    sf_status st;
    if (!q || !k || !v || !o || (((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)o) & 15))
        return sf_fail(err, SF_E_ARG, "sdpa: q, k, v, o must be non-NULL, 16-byte aligned device pointers");
    if ((st = plan_get(s, &key, &p, err))) return st;
    int64_t uids[5] = {UID_Q, UID_K, UID_V, UID_O, UID_SCALE};
    void *ptrs[5] = {(void *)q, (void *)k, (void *)v, o, &scale};
    dlist l = {0};
    build b = {.api = &s->api, .l = &l};
    bdesc vp = make(&b, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    if (!vp) goto fail;
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 5, uids);
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 5, ptrs);
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &s->ws);
    CK(&b, s->api.finalize(vp), "variant pack finalize");
    CK(&b, s->api.execute(s->handle, p->f.plan, vp), "cudnnBackendExecute");
    dl_free(&s->api, &l);
    return SF_OK;
fail:
    dl_free(&s->api, &l);
    return sf_fail(err, SF_E_DEVICE, "sdpa (%s): %s", p->f.desc, b.why);
}

/* ---- deviceless --------------------------------------------------------------------------- */

sf_status sf_sdpa_plan_deviceless(const char *deviceprop_json_path, int64_t Lq, int64_t Lk, int H, int d,
                                  int64_t ldq, int64_t ldk, int64_t ldo, char *desc, size_t desc_n, sf_err *err) {
    shape k = {Lq, Lk, H, d, ldq, ldk, ldo};
    cudnn_api a;
    dlist l = {0};
    char *json = NULL;
    size_t n = 0;
    found f = {0};
    sf_status st;
    if (desc_n) desc[0] = 0;
    if ((st = shape_check(&k, err)) || (st = api_load(&a, err))) return st;
    if ((st = sf_read_file(deviceprop_json_path, &json, &n, 1 << 20, err))) return st;
    build b = {.api = &a, .l = &l, .debug = debug_on()};
    bdesc dp = make(&b, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR);
    if (!dp || bad(&b, a.set_attr(dp, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, (int64_t)n, json),
                   "deviceprop JSON") ||
        bad(&b, a.finalize(dp), "deviceprop finalize")) {
        st = sf_fail(err, SF_E_FORMAT, "%s: not a cuDNN device description (%s)", deviceprop_json_path, b.why);
        goto done;
    }
    b.devprop = dp;
    if (!plan_search(&b, &k, &f)) {
        st = search_fail(&b, &k, err);
        goto done;
    }
    snprintf(desc, desc_n, "%s", f.desc);
done:
    dl_free(&a, &l);
    free(json);
    return st;
}
