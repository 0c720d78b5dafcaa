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
 * execution plan that finalizes wins. SF_CUDNN_DEBUG=1 prints every attempt to stderr. The library
 * table, descriptor lists and that search are shared with the VAE's conv3d (kernels/cuda/cudnn_util.c).
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
#include "cuda/cudnn_util.h"

#include <cuda_runtime_api.h>
#include <cudnn_graph.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- the operation graphs --------------------------------------------------------------------- */

typedef struct shape {
    int64_t Lq, Lk, H, d, ldq, ldk, ldo;
} shape;

enum { UID_Q = 1, UID_K, UID_V, UID_O, UID_SCALE, UID_VIRT = 100 };

/* 4-D tensor (1, H, rows, cols) of given strides; virtual = a fused intermediate, by_value = the
 * host scalar scale. */
static bdesc tensor(sf_cudnn_build *b, int64_t uid, cudnnDataType_t dt, const int64_t dim[4], const int64_t str[4], bool virt,
                    bool by_value) {
    return sf_cudnn_tensor(b, uid, dt, 4, dim, str, virt, by_value);
}
/* (1, H, Lq, cols) contiguous virtual tensor: the composite graph's per-row intermediates. */
static bdesc virt_rows(sf_cudnn_build *b, const shape *s, int64_t *uid, int64_t cols, cudnnDataType_t dt) {
    const int64_t dim[4] = {1, s->H, s->Lq, cols}, str[4] = {s->H * s->Lq * cols, s->Lq * cols, cols, 1};
    return tensor(b, (*uid)++, dt, dim, str, true, false);
}

static bdesc op_matmul(sf_cudnn_build *b, bdesc x, bdesc y, bdesc out) {
    bdesc m = sf_cudnn_make(b, CUDNN_BACKEND_MATMUL_DESCRIPTOR), op = m ? sf_cudnn_make(b, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR) : NULL;
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
static bdesc op_reduce(sf_cudnn_build *b, cudnnReduceTensorOp_t rop, bdesc x, bdesc out) {
    bdesc r = sf_cudnn_make(b, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    bdesc op = r ? sf_cudnn_make(b, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR) : NULL;
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
static int composite_ops(sf_cudnn_build *b, const shape *s, bdesc q, bdesc v, bdesc o, bdesc scale, bdesc ops[10]) {
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
    if (!(ops[n++] = sf_cudnn_pointwise(b, CUDNN_POINTWISE_MUL, sc, scale, s2))) return 0; /* · scale */
    if (!(ops[n++] = op_reduce(b, CUDNN_REDUCE_TENSOR_MAX, s2, mx))) return 0;     /* row max */
    if (!(ops[n++] = sf_cudnn_pointwise(b, CUDNN_POINTWISE_SUB, s2, mx, s3))) return 0;
    if (!(ops[n++] = sf_cudnn_pointwise(b, CUDNN_POINTWISE_EXP, s3, NULL, e))) return 0;
    if (!(ops[n++] = op_reduce(b, CUDNN_REDUCE_TENSOR_ADD, e, z))) return 0;       /* row sum */
    if (!(ops[n++] = sf_cudnn_pointwise(b, CUDNN_POINTWISE_LOG, z, NULL, logz))) return 0; /* Stats = */
    if (!(ops[n++] = sf_cudnn_pointwise(b, CUDNN_POINTWISE_ADD, mx, logz, lse))) return 0; /* max + log z */
    if (!(ops[n++] = sf_cudnn_pointwise(b, CUDNN_POINTWISE_DIV, e, z, p))) return 0;      /* softmax */
    if (!(ops[n++] = op_matmul(b, p, v, o))) return 0;                              /* O = P V */
    return n;
}

static bdesc unified_op(sf_cudnn_build *b, const shape *s, bdesc q, bdesc v, bdesc o, bdesc scale) {
    const int64_t kd[4] = {1, s->H, s->Lk, s->d}, ks[4] = {s->Lk * s->ldk, s->d, s->ldk, 1};
    bdesc k = tensor(b, UID_K, CUDNN_DATA_BFLOAT16, kd, ks, false, false);
    bdesc op = k ? sf_cudnn_make(b, CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR) : NULL;
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
static bdesc graph_new(sf_cudnn_build *b, const shape *s, int unified) {
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
    if (!nops || !(g = sf_cudnn_make(b, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR))) return NULL;
    SET(b, g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, nops, ops);
    if (b->handle) SET(b, g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &b->handle);
    CK(b, b->api->finalize(g), "operation graph finalize");
    return g;
fail:
    return NULL;
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
static int plan_search(sf_cudnn_build *b, const shape *s, sf_cudnn_found *f) {
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
            sf_cudnn_dl_drop(b->api, b->l, mark);
            continue;
        }
        snprintf(label, sizeof label, "%s heurA", kind);
        if (allowed(kind, "heurA") && sf_cudnn_plan_heur(b, g, CUDNN_HEUR_MODE_A, label, f)) return 1;
        snprintf(label, sizeof label, "%s fallback", kind);
        if (allowed(kind, "fallback") && sf_cudnn_plan_heur(b, g, CUDNN_HEUR_MODE_FALLBACK, label, f)) return 1;
        snprintf(label, sizeof label, "%s enum", kind);
        if (allowed(kind, "enum") && sf_cudnn_plan_engines(b, g, label, f)) return 1;
        sf_cudnn_dl_drop(b->api, b->l, mark);
    }
    return 0;
}


static sf_status search_fail(sf_cudnn_build *b, const shape *s, sf_err *err) {
    char hint[160];
    sf_cudnn_nvrtc_hint(b->api, hint, sizeof hint);
    return sf_fail(err, SF_E_UNSUPPORTED,
                   "cuDNN %d has no engine for bf16 SDPA Lq %lld Lk %lld H %lld d %lld (%s last: %s)%s%s", b->api->version,
                   (long long)s->Lq, (long long)s->Lk, (long long)s->H, (long long)s->d, b->tried,
                   b->why[0] ? b->why : "none", hint, b->debug ? "" : "; SF_CUDNN_DEBUG=1 shows every attempt");
}

static sf_status shape_check(const shape *s, sf_err *err) {
    return sf_sdpa_shape_check(s->Lq, s->Lk, s->H, s->d, s->ldq, s->ldk, s->ldo, err);
}


/* ---- the handle-bound object --------------------------------------------------------------- */

typedef struct sdpa_plan {
    shape key;
    sf_cudnn_found f;
    sf_cudnn_dlist l; /* every descriptor the plan refers to */
} sdpa_plan;

struct sf_sdpa {
    sf_cudnn_session cs; /* library, handle on the caller's stream, device properties, workspace */
    sdpa_plan *plans;
    int nplans, capplans;
};

sf_status sf_sdpa_cudnn_version(int *version, sf_err *err) {
    sf_cudnn_api a;
    sf_status st = sf_cudnn_api_load(&a, err);
    *version = st == SF_OK ? a.version : 0;
    return st;
}

sf_status sf_sdpa_new(sf_sdpa **out, void *cuda_stream, sf_err *err) {
    sf_sdpa *s = calloc(1, sizeof *s);
    sf_status st;
    *out = NULL;
    if (!s) return sf_fail(err, SF_E_NOMEM, "sdpa: out of memory");
    if ((st = sf_cudnn_session_open(&s->cs, cuda_stream, err))) {
        free(s);
        return st;
    }
    *out = s;
    return SF_OK;
}

void sf_sdpa_destroy(sf_sdpa **sp) {
    sf_sdpa *s = sp ? *sp : NULL;
    if (!s) return;
    sf_cudnn_session_drain(&s->cs); /* no plan is freed under a running kernel */
    for (int i = 0; i < s->nplans; i++) sf_cudnn_dl_free(&s->cs.api, &s->plans[i].l);
    free(s->plans);
    sf_cudnn_session_close(&s->cs);
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
    /* a plan search inside a CUDA graph capture could break it and then read as "no engine", turning cuDNN
       off for the run: refused as a device error, so the caller runs the forward directly and builds it then */
    enum cudaStreamCaptureStatus capst = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing((cudaStream_t)s->cs.stream, &capst) == cudaSuccess && capst != cudaStreamCaptureStatusNone)
        return sf_fail(err, SF_E_DEVICE, "sdpa: no plan for Lq %lld x Lk %lld prepared (none is built during a CUDA graph "
                       "capture)", (long long)k->Lq, (long long)k->Lk);
    if (s->nplans == s->capplans) {
        int cap = s->capplans ? 2 * s->capplans : 16;
        sdpa_plan *p = realloc(s->plans, sizeof *p * (size_t)cap);
        if (!p) return sf_fail(err, SF_E_NOMEM, "sdpa: out of memory");
        s->plans = p, s->capplans = cap;
    }
    sdpa_plan *p = &s->plans[s->nplans];
    memset(p, 0, sizeof *p);
    p->key = *k;
    sf_cudnn_build b = {.api = &s->cs.api, .handle = s->cs.handle, .devprop = s->cs.devprop, .l = &p->l,
                        .debug = sf_cudnn_debug_on()};
    if (!plan_search(&b, k, &p->f)) st = search_fail(&b, k, err);
    else st = sf_cudnn_session_workspace(&s->cs, p->f.workspace, "sdpa", err);
    if (st) {
        sf_cudnn_dl_free(&s->cs.api, &p->l);
        return st;
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
    sf_cudnn_dlist l = {0};
    sf_cudnn_build b = {.api = &s->cs.api, .l = &l};
    bdesc vp = sf_cudnn_make(&b, CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
    if (!vp) goto fail;
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 5, uids);
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 5, ptrs);
    SET(&b, vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &s->cs.ws);
    CK(&b, s->cs.api.finalize(vp), "variant pack finalize");
    CK(&b, s->cs.api.execute(s->cs.handle, p->f.plan, vp), "cudnnBackendExecute");
    sf_cudnn_dl_free(&s->cs.api, &l);
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone; /* named here, not by our next call (as blaslt.c) */
    if (cudaStreamIsCapturing((cudaStream_t)s->cs.stream, &cs) == cudaSuccess && cs == cudaStreamCaptureStatusInvalidated)
        return sf_fail(err, SF_E_DEVICE, "sdpa (%s): cudnnBackendExecute invalidated the CUDA graph capture", p->f.desc);
    return SF_OK;
fail:
    sf_cudnn_dl_free(&s->cs.api, &l);
    return sf_fail(err, SF_E_DEVICE, "sdpa (%s): %s", p->f.desc, b.why);
}

/* ---- deviceless --------------------------------------------------------------------------- */

sf_status sf_sdpa_plan_deviceless(const char *deviceprop_json_path, int64_t Lq, int64_t Lk, int H, int d,
                                  int64_t ldq, int64_t ldk, int64_t ldo, char *desc, size_t desc_n, sf_err *err) {
    shape k = {Lq, Lk, H, d, ldq, ldk, ldo};
    sf_cudnn_api a;
    sf_cudnn_dlist l = {0};
    sf_cudnn_found f = {0};
    sf_status st;
    if (desc_n) desc[0] = 0;
    if ((st = shape_check(&k, err)) || (st = sf_cudnn_api_load(&a, err))) return st;
    sf_cudnn_build b = {.api = &a, .l = &l, .debug = sf_cudnn_debug_on()};
    if ((st = sf_cudnn_devprop_json(&b, deviceprop_json_path, &b.devprop, err))) goto done;
    if (!plan_search(&b, &k, &f)) {
        st = search_fail(&b, &k, err);
        goto done;
    }
    snprintf(desc, desc_n, "%s", f.desc);
done:
    sf_cudnn_dl_free(&a, &l);
    return st;
}
