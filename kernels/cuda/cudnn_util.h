/* cudnn_util.h — internal to kernels/cuda: what every cuDNN backend-graph user shares. The
 * dlopen'd library table (sf_cudnn_api: libcudnn.so.9 or $SF_CUDNN_LIB, never linked), the
 * descriptor list that a failed attempt truncates back to a mark, the plan search over heuristics
 * mode A, FALLBACK and every engine by global index (with a knob sweep), NVRTC diagnosis and the
 * SF_CUDNN_DEBUG switch. Extracted unchanged from sdpa_cudnn.c (the DiT's flash attention) so that
 * conv_cudnn.c (the VAE's conv3d) uses the same search; tested through both
 * (tests/unit/test_sdpa_plans.c, tests/unit/test_conv_plans.c). Plain C11, cuDNN headers only
 * for types and enums. */
#ifndef SF_CUDNN_UTIL_H
#define SF_CUDNN_UTIL_H

#include "sf.h"

#include <cudnn_graph.h>
#include <stdbool.h>
#include <stdint.h>

typedef cudnnBackendDescriptor_t bdesc;

typedef struct sf_cudnn_api {
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
} sf_cudnn_api;

typedef struct sf_cudnn_dlist {
    bdesc *d;
    int n, cap;
} sf_cudnn_dlist;

typedef struct sf_cudnn_build {
    const sf_cudnn_api *api;
    cudnnHandle_t handle;
    bdesc devprop;
    sf_cudnn_dlist *l;
    int debug;
    char why[256]; /* the last failing call and cuDNN's message */
    char tried[200]; /* per graph: configs / engines seen */
} sf_cudnn_build;

#define CK(b, call, what)                     \
    do {                                      \
        if (sf_cudnn_bad((b), (call), (what))) goto fail; \
    } while (0)

#define SET(b, d, name, type, n, p) CK(b, (b)->api->set_attr((d), (name), (type), (n), (p)), #name)

typedef struct sf_cudnn_found {
    bdesc plan;
    int64_t workspace, engine;
    char desc[96];
} sf_cudnn_found;

/* Load libcudnn.so.9 ($SF_CUDNN_LIB overrides); SF_E_UNSUPPORTED with the reason when absent or
 * older than 9.8. The library stays loaded for the life of the process. */
sf_status sf_cudnn_api_load(sf_cudnn_api *a, sf_err *err);
/* Destroy the descriptors of l past mark / all of them (and the list). */
void sf_cudnn_dl_drop(const sf_cudnn_api *a, sf_cudnn_dlist *l, int mark);
void sf_cudnn_dl_free(const sf_cudnn_api *a, sf_cudnn_dlist *l);
/* 0 on success; otherwise records in b->why (and prints with b->debug) what failed. */
int sf_cudnn_bad(sf_cudnn_build *b, cudnnStatus_t st, const char *what);
/* A new descriptor appended to b->l; NULL on failure (reason in b->why). */
bdesc sf_cudnn_make(sf_cudnn_build *b, cudnnBackendDescriptorType_t t);
/* A finalized tensor descriptor of ndim (≤ 8) dims / strides, 16-byte aligned; virt = a fused
 * intermediate, by_value = a host scalar. NULL on failure (reason in b->why). */
bdesc sf_cudnn_tensor(sf_cudnn_build *b, int64_t uid, cudnnDataType_t dt, int ndim, const int64_t *dim, const int64_t *str,
                      bool virt, bool by_value);
/* A finalized pointwise operation out = mode(x[, y]) computed in fp32 (y NULL: unary). */
bdesc sf_cudnn_pointwise(sf_cudnn_build *b, cudnnPointwiseMode_t mode, bdesc x, bdesc y, bdesc out);
/* Finalize a plan for one engine config / for the configs of heuristics `mode` / for every engine
 * of graph g; 1 = found (f filled; its descriptors stay in b->l). label: "<graph> <mode>". */
int sf_cudnn_plan_try(sf_cudnn_build *b, bdesc cfg, sf_cudnn_found *f, const char *label);
int sf_cudnn_plan_heur(sf_cudnn_build *b, bdesc g, cudnnBackendHeurMode_t mode, const char *label, sf_cudnn_found *f);
/* The first max configs of heuristics `mode` that finalize, into f[0..), in its order: how many
 * (the candidates an autotune times; their descriptors stay in b->l). budget_s > 0: no further
 * config once that long was spent and one finalized (runtime-compiled engines take ~0.4 s each). */
int sf_cudnn_plan_heur_n(sf_cudnn_build *b, bdesc g, cudnnBackendHeurMode_t mode, const char *label, sf_cudnn_found *f,
                         int max, double budget_s);
bdesc sf_cudnn_engine_cfg(sf_cudnn_build *b, bdesc eng, int nk, const cudnnBackendKnobType_t *typ, const int64_t *val);
int sf_cudnn_engine_knobs(sf_cudnn_build *b, bdesc eng, cudnnBackendKnobType_t typ[8], int64_t lo[8], int64_t hi[8],
                          int64_t step[8]);
int sf_cudnn_plan_engines(sf_cudnn_build *b, bdesc g, const char *label, sf_cudnn_found *f);
/* "" when libnvrtc.so.<major> loads, else a hint for the error message. */
void sf_cudnn_nvrtc_hint(const sf_cudnn_api *a, char *buf, size_t n);
/* SF_CUDNN_DEBUG set and not "0". */
int sf_cudnn_debug_on(void);
/* DEVICEPROP descriptor from the saved JSON at path (deviceless plans) into b->l; SF_E_IO when the
 * file cannot be read, SF_E_FORMAT when cuDNN rejects it. */
sf_status sf_cudnn_devprop_json(sf_cudnn_build *b, const char *path, bdesc *out, sf_err *err);
/* DEVICEPROP descriptor from a handle (on a GPU); NULL when this cuDNN cannot make one. */
bdesc sf_cudnn_devprop_handle(sf_cudnn_build *b, cudnnHandle_t h);

/* What each cuDNN user on a GPU holds (sdpa_cudnn.c, conv_cudnn.c): the library table, a handle bound
 * to the caller's stream, the handle's DEVICEPROP descriptor (the heuristics need it; NULL when this
 * cuDNN cannot make one: the handle alone is used) and one device workspace that grows to the largest
 * plan's and never shrinks. */
typedef struct sf_cudnn_session {
    sf_cudnn_api api;
    cudnnHandle_t handle;
    sf_cudnn_dlist base; /* the DEVICEPROP descriptor */
    bdesc devprop;
    void *ws;
    size_t ws_bytes;
    void *stream; /* the CUDA stream the handle works on */
} sf_cudnn_session;
/* Load the library, create the handle on cuda_stream, describe the device. On failure (no cuDNN:
 * SF_E_UNSUPPORTED; no usable device: SF_E_DEVICE) everything made is released. */
sf_status sf_cudnn_session_open(sf_cudnn_session *s, void *cuda_stream, sf_err *err);
void sf_cudnn_session_close(sf_cudnn_session *s); /* safe on a zeroed or failed session */
/* Wait for the work enqueued on the session's stream (before its plans are destroyed: a plan freed
 * under a running kernel, e.g. after a stop mid-forward, is undefined). */
void sf_cudnn_session_drain(const sf_cudnn_session *s);
/* Grow the workspace to bytes (cudaFree of the old one synchronises the device: nothing still uses
 * it); who names the caller in the error (SF_E_NOMEM when the device is out of memory). */
sf_status sf_cudnn_session_workspace(sf_cudnn_session *s, int64_t bytes, const char *who, sf_err *err);

#endif
