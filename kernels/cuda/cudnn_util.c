/* cudnn_util.c — kernels/cuda/cudnn_util.h: the cuDNN library table, descriptor lists and plan
 * search shared by sdpa_cudnn.c and conv_cudnn.c (moved from sdpa_cudnn.c unchanged). */
#include "cuda/cudnn_util.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the dlopen'd library ------------------------------------------------------------------ */


/* Load libcudnn.so.9 ($SF_CUDNN_LIB overrides). The library stays loaded for the life of the
 * process (it loads sub-libraries and NVRTC itself; a second dlopen is only a refcount). */
sf_status sf_cudnn_api_load(sf_cudnn_api *a, sf_err *err) {
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


void sf_cudnn_dl_drop(const sf_cudnn_api *a, sf_cudnn_dlist *l, int mark) {
    while (l->n > mark) a->destroy_desc(l->d[--l->n]);
}
void sf_cudnn_dl_free(const sf_cudnn_api *a, sf_cudnn_dlist *l) {
    sf_cudnn_dl_drop(a, l, 0);
    free(l->d);
    memset(l, 0, sizeof *l);
}

/* One plan search: the library, handle (NULL deviceless), device properties, the descriptor list,
 * and a record of the first failure for the final message. */

/* Status check: 0 on success; otherwise records (and in debug mode prints) what failed. */
int sf_cudnn_bad(sf_cudnn_build *b, cudnnStatus_t st, const char *what) {
    if (st == CUDNN_STATUS_SUCCESS) return 0;
    char msg[256] = "";
    b->api->last_error(msg, sizeof msg);
    snprintf(b->why, sizeof b->why, "%s: %s%s%s", what, b->api->error_string(st), msg[0] ? ": " : "", msg);
    if (b->debug) fprintf(stderr, "sf-cudnn:   %s\n", b->why);
    return 1;
}

bdesc sf_cudnn_make(sf_cudnn_build *b, cudnnBackendDescriptorType_t t) {
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
    if (sf_cudnn_bad(b, b->api->create_desc(t, &d), "cudnnBackendCreateDescriptor")) return NULL;
    return b->l->d[b->l->n++] = d;
}


/* ---- plans: heuristics A, FALLBACK, then every engine ----------------------------------------- */


/* Finalize an execution plan for one engine config; 1 = done (f filled). */
int sf_cudnn_plan_try(sf_cudnn_build *b, bdesc cfg, sf_cudnn_found *f, const char *label) {
    bdesc plan = sf_cudnn_make(b, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR), eng = NULL;
    int64_t n = 0, ws = 0, engine = -1;
    if (!plan) return 0;
    if (b->handle) SET(b, plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &b->handle);
    if (b->devprop) SET(b, plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b->devprop);
    SET(b, plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
    CK(b, b->api->finalize(plan), "execution plan finalize");
    CK(b, b->api->get_attr(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws),
       "plan workspace size");
    if ((eng = sf_cudnn_make(b, CUDNN_BACKEND_ENGINE_DESCRIPTOR)) &&
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
int sf_cudnn_plan_heur(sf_cudnn_build *b, bdesc g, cudnnBackendHeurMode_t mode, const char *label, sf_cudnn_found *f) {
    return sf_cudnn_plan_heur_n(b, g, mode, label, f, 1, 0) > 0;
}

/* The same, keeping the first max configs that finalize (in the heuristics' order); their count. */
int sf_cudnn_plan_heur_n(sf_cudnn_build *b, bdesc g, cudnnBackendHeurMode_t mode, const char *label, sf_cudnn_found *f,
                         int max, double budget_s) {
    const double t0 = sf_now();
    bdesc heur = sf_cudnn_make(b, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR), cfgs[32];
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
        if (!(cfgs[i] = sf_cudnn_make(b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR))) return 0;
    if (count > 0)
        CK(b, b->api->get_attr(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, cfgs),
           "heuristics results");
    if (b->debug) fprintf(stderr, "sf-cudnn: %s: %lld engine config(s), %lld returned\n", label, (long long)count, (long long)got);
    size_t k = strlen(b->tried);
    snprintf(b->tried + k, sizeof b->tried - k, " %s %lld/%lld cfg;", strchr(label, ' ') + 1, (long long)got,
             (long long)count);
    int found = 0;
    for (int64_t i = 0; i < got && found < max && !(found && budget_s > 0 && sf_now() - t0 > budget_s); i++) {
        int mark = b->l->n;
        if (b->debug) fprintf(stderr, "sf-cudnn: %s: config %lld\n", label, (long long)i);
        if (sf_cudnn_plan_try(b, cfgs[i], &f[found], label)) found++;
        else sf_cudnn_dl_drop(b->api, b->l, mark);
    }
    return found;
fail:
    return 0;
}

/* A finalized engine config for eng with knob values val[0..nk) of types typ[]; NULL if refused. */
bdesc sf_cudnn_engine_cfg(sf_cudnn_build *b, bdesc eng, int nk, const cudnnBackendKnobType_t *typ, const int64_t *val) {
    bdesc kc[8], cfg;
    for (int j = 0; j < nk; j++) {
        if (!(kc[j] = sf_cudnn_make(b, CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR))) return NULL;
        SET(b, kc[j], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &typ[j]);
        SET(b, kc[j], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64, 1, &val[j]);
        CK(b, b->api->finalize(kc[j]), "knob choice finalize");
    }
    if (!(cfg = sf_cudnn_make(b, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR))) return NULL;
    SET(b, cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &eng);
    if (nk) SET(b, cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR, nk, kc);
    CK(b, b->api->finalize(cfg), "engine config finalize");
    return cfg;
fail:
    return NULL;
}

/* The engine's knobs (at most 8): types and ranges. Returns their count. */
int sf_cudnn_engine_knobs(sf_cudnn_build *b, bdesc eng, cudnnBackendKnobType_t typ[8], int64_t lo[8], int64_t hi[8], int64_t step[8]) {
    bdesc ki[8];
    int64_t n = 0, c;
    for (int j = 0; j < 8; j++)
        if (!(ki[j] = sf_cudnn_make(b, CUDNN_BACKEND_KNOB_INFO_DESCRIPTOR))) return 0;
    if (sf_cudnn_bad(b, b->api->get_attr(eng, CUDNN_ATTR_ENGINE_KNOB_INFO, CUDNN_TYPE_BACKEND_DESCRIPTOR, 8, &n, ki), "knob info"))
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
int sf_cudnn_plan_engines(sf_cudnn_build *b, bdesc g, const char *label, sf_cudnn_found *f) {
    int64_t count = 0, n = 0, ok = 0;
    CK(b, b->api->get_attr(g, CUDNN_ATTR_OPERATIONGRAPH_ENGINE_GLOBAL_COUNT, CUDNN_TYPE_INT64, 1, &n, &count),
       "engine global count");
    if (b->debug) fprintf(stderr, "sf-cudnn: %s: %lld engines\n", label, (long long)count);
    for (int64_t i = 0; i < count; i++) {
        int mark = b->l->n, nk;
        bdesc eng = sf_cudnn_make(b, CUDNN_BACKEND_ENGINE_DESCRIPTOR), cfg;
        cudnnBackendKnobType_t typ[8];
        int64_t lo[8], hi[8], step[8], val[8];
        if (b->debug) fprintf(stderr, "sf-cudnn: %s: engine %lld\n", label, (long long)i);
        if (!eng) break;
        if (sf_cudnn_bad(b, b->api->set_attr(eng, CUDNN_ATTR_ENGINE_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g), "engine graph") ||
            sf_cudnn_bad(b, b->api->set_attr(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &i), "engine index") ||
            (b->devprop && sf_cudnn_bad(b, b->api->set_attr(eng, CUDNN_ATTR_ENGINE_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                                    &b->devprop), "engine deviceprop")) ||
            sf_cudnn_bad(b, b->api->finalize(eng), "engine finalize")) {
            sf_cudnn_dl_drop(b->api, b->l, mark);
            continue;
        }
        int tries = 0, at = b->l->n;
        if ((cfg = sf_cudnn_engine_cfg(b, eng, 0, NULL, NULL))) {
            ok++;
            if (sf_cudnn_plan_try(b, cfg, f, label)) return 1;
        } else if ((nk = sf_cudnn_engine_knobs(b, eng, typ, lo, hi, step)) > 0) {
            for (int j = 0; j < nk; j++) val[j] = lo[j];
            for (; val[0] <= hi[0] && tries < 64; val[0] += step[0], tries++) {
                sf_cudnn_dl_drop(b->api, b->l, at);
                if (b->debug) fprintf(stderr, "sf-cudnn: %s: engine %lld knob %d = %lld\n", label, (long long)i,
                                      (int)typ[0], (long long)val[0]);
                if (!(cfg = sf_cudnn_engine_cfg(b, eng, nk, typ, val))) continue;
                ok++;
                if (sf_cudnn_plan_try(b, cfg, f, label)) return 1;
            }
        }
        sf_cudnn_dl_drop(b->api, b->l, mark);
    }
    size_t k = strlen(b->tried);
    snprintf(b->tried + k, sizeof b->tried - k, " engines: %lld configs usable of %lld engines;", (long long)ok,
             (long long)count);
    return 0;
fail:
    return 0;
}

/* NVRTC is what most often stops cuDNN's runtime-compiled engines (all SDPA engines on sm_90):
 * cuDNN dlopens libnvrtc.so.<CUDA major>; say so when it cannot be loaded. */
void sf_cudnn_nvrtc_hint(const sf_cudnn_api *a, char *buf, size_t n) {
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

int sf_cudnn_debug_on(void) {
    const char *e = getenv("SF_CUDNN_DEBUG");
    return e && *e && strcmp(e, "0") != 0;
}

sf_status sf_cudnn_devprop_json(sf_cudnn_build *b, const char *path, bdesc *out, sf_err *err) {
    char *json = NULL;
    size_t n = 0;
    sf_status st = sf_read_file(path, &json, &n, 1 << 20, err);
    *out = NULL;
    if (st) return st;
    bdesc dp = sf_cudnn_make(b, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR);
    if (!dp || sf_cudnn_bad(b, b->api->set_attr(dp, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR, (int64_t)n, json),
                            "deviceprop JSON") ||
        sf_cudnn_bad(b, b->api->finalize(dp), "deviceprop finalize"))
        st = sf_fail(err, SF_E_FORMAT, "%s: not a cuDNN device description (%s)", path, b->why);
    else
        *out = dp;
    free(json);
    return st;
}

bdesc sf_cudnn_devprop_handle(sf_cudnn_build *b, cudnnHandle_t h) {
    bdesc dp = sf_cudnn_make(b, CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR);
    if (dp && !sf_cudnn_bad(b, b->api->set_attr(dp, CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE, 1, &h), "deviceprop handle") &&
        !sf_cudnn_bad(b, b->api->finalize(dp), "deviceprop finalize"))
        return dp;
    return NULL;
}

bdesc sf_cudnn_tensor(sf_cudnn_build *b, int64_t uid, cudnnDataType_t dt, int ndim, const int64_t *dim, const int64_t *str,
                      bool virt, bool by_value) {
    bdesc t = sf_cudnn_make(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    int64_t align = 16;
    if (!t) return NULL;
    SET(b, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    SET(b, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    SET(b, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, ndim, dim);
    SET(b, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, ndim, str);
    SET(b, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    SET(b, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt);
    if (by_value) SET(b, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
    CK(b, b->api->finalize(t), "tensor finalize");
    return t;
fail:
    return NULL;
}

bdesc sf_cudnn_pointwise(sf_cudnn_build *b, cudnnPointwiseMode_t mode, bdesc x, bdesc y, bdesc out) {
    bdesc pw = sf_cudnn_make(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    bdesc op = pw ? sf_cudnn_make(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR) : NULL;
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

/* ---- a session on the GPU ------------------------------------------------------------------ */

sf_status sf_cudnn_session_open(sf_cudnn_session *s, void *cuda_stream, sf_err *err) {
    cudnnStatus_t cs;
    sf_status st;
    memset(s, 0, sizeof *s);
    if ((st = sf_cudnn_api_load(&s->api, err))) return st;
    if ((cs = s->api.create(&s->handle)) != CUDNN_STATUS_SUCCESS) {
        s->handle = NULL;
        st = sf_fail(err, SF_E_DEVICE, "cudnnCreate: %s (no usable CUDA device?)", s->api.error_string(cs));
        goto fail;
    }
    s->stream = cuda_stream;
    if ((cs = s->api.set_stream(s->handle, (cudaStream_t)cuda_stream)) != CUDNN_STATUS_SUCCESS) {
        st = sf_fail(err, SF_E_DEVICE, "cudnnSetStream: %s", s->api.error_string(cs));
        goto fail;
    }
    sf_cudnn_build b = {.api = &s->api, .l = &s->base, .debug = sf_cudnn_debug_on()};
    s->devprop = sf_cudnn_devprop_handle(&b, s->handle);
    if (!s->devprop && b.debug)
        fprintf(stderr, "sf-cudnn: no device properties from the handle (%s); the handle alone is used\n", b.why);
    return SF_OK;
fail:
    sf_cudnn_session_close(s);
    return st;
}

void sf_cudnn_session_drain(const sf_cudnn_session *s) {
    if (s->handle && cudaStreamSynchronize((cudaStream_t)s->stream) != cudaSuccess) (void)cudaGetLastError();
}

void sf_cudnn_session_close(sf_cudnn_session *s) {
    if (s->api.lib) sf_cudnn_dl_free(&s->api, &s->base);
    if (s->ws) cudaFree(s->ws);
    if (s->handle) s->api.destroy(s->handle);
    memset(s, 0, sizeof *s);
}

sf_status sf_cudnn_session_workspace(sf_cudnn_session *s, int64_t bytes, const char *who, sf_err *err) {
    if (bytes <= 0 || (size_t)bytes <= s->ws_bytes) return SF_OK;
    void *ws = NULL;
    cudaError_t ce = cudaMalloc(&ws, (size_t)bytes);
    if (ce != cudaSuccess) {
        (void)cudaGetLastError(); /* a refused allocation is not sticky: the next launch check must not see it */
        return sf_fail(err, ce == cudaErrorMemoryAllocation ? SF_E_NOMEM : SF_E_DEVICE, "%s: cudaMalloc(%lld B workspace): %s",
                       who, (long long)bytes, cudaGetErrorString(ce));
    }
    if (s->ws) cudaFree(s->ws);
    s->ws = ws, s->ws_bytes = (size_t)bytes;
    return SF_OK;
}
