/* blaslt.c — kernels/blaslt_cuda.h: matrix products through cuBLASLt, plain C11, the library
 * loaded with dlopen (<cublasLt.h> gives types and enums only; the build links no cuBLAS).
 * Mirrors torch's bf16 addmm / bmm (fp32 accumulation, one rounding of the output), and with sf_mm.fp8
 * torch._scaled_mm as torchao calls it (float8 e4m3 operands, per-tensor scales, fast accumulation).
 * Tested by tests/unit/test_cuda_kernels.c on a GPU. */
#include "blaslt_cuda.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lt_api {
    void *lib;
    __typeof__(&cublasLtCreate) create;
    __typeof__(&cublasLtDestroy) destroy;
    __typeof__(&cublasLtGetVersion) get_version;
    __typeof__(&cublasLtGetStatusString) status_string;
    __typeof__(&cublasLtMatmulDescCreate) desc_create;
    __typeof__(&cublasLtMatmulDescDestroy) desc_destroy;
    __typeof__(&cublasLtMatmulDescSetAttribute) desc_set;
    __typeof__(&cublasLtMatrixLayoutCreate) layout_create;
    __typeof__(&cublasLtMatrixLayoutDestroy) layout_destroy;
    __typeof__(&cublasLtMatrixLayoutSetAttribute) layout_set;
    __typeof__(&cublasLtMatmulPreferenceCreate) pref_create;
    __typeof__(&cublasLtMatmulPreferenceDestroy) pref_destroy;
    __typeof__(&cublasLtMatmulPreferenceSetAttribute) pref_set;
    __typeof__(&cublasLtMatmulAlgoGetHeuristic) heuristic;
    __typeof__(&cublasLtMatmul) matmul;
} lt_api;

/* One cached plan: the descriptors and the algorithm for a shape + dtypes + alignments. */
typedef struct lt_plan {
    sf_mm key;                 /* pointers zeroed except bias != NULL marks the epilogue (scales: in the
                                  descriptor, refreshed each call like the bias) */
    int align[4];              /* A, B, D, bias alignment in bytes (≤ 256) */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

struct sf_blaslt {
    lt_api api;
    cublasLtHandle_t h;
    cudaStream_t stream;
    void *ws;
    size_t ws_bytes;
    lt_plan *plans;
    size_t n_plans, cap_plans;
    size_t version;
};

#define WS_BYTES ((size_t)32 << 20)

static sf_status lt_fail(const sf_blaslt *lt, sf_err *err, cublasStatus_t s, const char *what) {
    return sf_fail(err, SF_E_DEVICE, "cuBLASLt %s: %s (%d)", what, lt->api.status_string ? lt->api.status_string(s) : "?",
                   (int)s);
}

static sf_status api_load(lt_api *a, sf_err *err) {
    const char *path = getenv("SF_CUBLASLT_LIB");
    const char *names[] = {path && *path ? path : "libcublasLt.so.13", "libcublasLt.so"};
    memset(a, 0, sizeof *a);
    for (int i = 0; i < 2 && !a->lib; i++) a->lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!a->lib)
        return sf_fail(err, SF_E_UNSUPPORTED,
                       "cuBLASLt not found (%s: %s): install CUDA 13's cuBLAS (libcublasLt.so.13) or put it on "
                       "LD_LIBRARY_PATH",
                       names[0], dlerror());
#define SYM(field, name)                                                                                       \
    do {                                                                                                       \
        *(void **)&a->field = dlsym(a->lib, name);                                                             \
        if (!a->field) return sf_fail(err, SF_E_UNSUPPORTED, "cuBLASLt %s lacks %s: too old?", names[0], name); \
    } while (0)
    SYM(create, "cublasLtCreate");
    SYM(destroy, "cublasLtDestroy");
    SYM(get_version, "cublasLtGetVersion");
    SYM(status_string, "cublasLtGetStatusString");
    SYM(desc_create, "cublasLtMatmulDescCreate");
    SYM(desc_destroy, "cublasLtMatmulDescDestroy");
    SYM(desc_set, "cublasLtMatmulDescSetAttribute");
    SYM(layout_create, "cublasLtMatrixLayoutCreate");
    SYM(layout_destroy, "cublasLtMatrixLayoutDestroy");
    SYM(layout_set, "cublasLtMatrixLayoutSetAttribute");
    SYM(pref_create, "cublasLtMatmulPreferenceCreate");
    SYM(pref_destroy, "cublasLtMatmulPreferenceDestroy");
    SYM(pref_set, "cublasLtMatmulPreferenceSetAttribute");
    SYM(heuristic, "cublasLtMatmulAlgoGetHeuristic");
    SYM(matmul, "cublasLtMatmul");
#undef SYM
    return SF_OK;
}

sf_status sf_blaslt_new(sf_blaslt **out, void *cuda_stream, sf_err *err) {
    sf_status st;
    *out = NULL;
    sf_blaslt *lt = calloc(1, sizeof *lt);
    if (!lt) return sf_fail(err, SF_E_NOMEM, "out of memory");
    if ((st = api_load(&lt->api, err))) goto fail;
    cublasStatus_t s = lt->api.create(&lt->h);
    if (s != CUBLAS_STATUS_SUCCESS) {
        st = lt_fail(lt, err, s, "create");
        goto fail;
    }
    lt->version = lt->api.get_version();
    lt->stream = (cudaStream_t)cuda_stream;
    cudaError_t e = cudaMalloc(&lt->ws, WS_BYTES);
    if (e != cudaSuccess) {
        cudaGetLastError();
        st = sf_fail(err, SF_E_NOMEM, "cuBLASLt workspace of %zu MiB: %s", WS_BYTES >> 20, cudaGetErrorString(e));
        goto fail;
    }
    lt->ws_bytes = WS_BYTES;
    *out = lt;
    return SF_OK;
fail:
    sf_blaslt_destroy(&lt);
    return st;
}

static void plan_free(const lt_api *a, lt_plan *p) {
    if (p->desc) a->desc_destroy(p->desc);
    if (p->a) a->layout_destroy(p->a);
    if (p->b) a->layout_destroy(p->b);
    if (p->d) a->layout_destroy(p->d);
}

void sf_blaslt_destroy(sf_blaslt **p) {
    if (!p || !*p) return;
    sf_blaslt *lt = *p;
    for (size_t i = 0; i < lt->n_plans; i++) plan_free(&lt->api, &lt->plans[i]);
    free(lt->plans);
    if (lt->ws) cudaFree(lt->ws);
    if (lt->h) lt->api.destroy(lt->h);
    /* the library stays loaded: cuDNN uses it too */
    free(lt);
    *p = NULL;
}

int sf_blaslt_version(const sf_blaslt *lt) { return lt ? (int)lt->version : 0; }

static int align_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && (a % (uintptr_t)al)) al >>= 1;
    return al;
}

/* SF_U8: the float8 e4m3 operands of an FP8 product (only with sf_mm.fp8). */
static cudaDataType_t cdt(sf_dtype t) { return t == SF_BF16 ? CUDA_R_16BF : t == SF_U8 ? CUDA_R_8F_E4M3 : CUDA_R_32F; }

static sf_status make_layout(sf_blaslt *lt, cublasLtMatrixLayout_t *l, sf_dtype t, int64_t rows, int64_t cols,
                             int64_t ld, int batch, int64_t stride, sf_err *err) {
    cublasStatus_t s = lt->api.layout_create(l, cdt(t), (uint64_t)rows, (uint64_t)cols, ld);
    if (s) return lt_fail(lt, err, s, "layout");
    if (batch > 1) {
        int32_t bc = batch;
        if ((s = lt->api.layout_set(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc)) ||
            (s = lt->api.layout_set(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride)))
            return lt_fail(lt, err, s, "batched layout");
    }
    return SF_OK;
}

static int same_key(const lt_plan *p, const sf_mm *m, const int *al) {
    const sf_mm *k = &p->key;
    return k->transa == m->transa && k->transb == m->transb && k->m == m->m && k->n == m->n && k->k == m->k &&
           k->at == m->at && k->lda == m->lda && k->sa == m->sa && k->bt == m->bt && k->ldb == m->ldb &&
           k->sb == m->sb && k->dt == m->dt && k->ldd == m->ldd && k->sd == m->sd && k->batch == m->batch &&
           (k->beta != 0) == (m->beta != 0) && (k->bias != NULL) == (m->bias != NULL) && k->gelu == m->gelu &&
           k->fp8 == m->fp8 && !memcmp(p->align, al, sizeof p->align);
}

static sf_status plan_build(sf_blaslt *lt, const sf_mm *m, const int *al, lt_plan *p, sf_err *err) {
    const lt_api *a = &lt->api;
    sf_status st;
    cublasStatus_t s;
    cublasLtMatmulPreference_t pref = NULL;
    memset(p, 0, sizeof *p);
    p->key = *m;
    p->key.A = p->key.B = p->key.D = NULL;
    p->key.bias = m->bias ? (const void *)1 : NULL;
    p->key.a_scale = p->key.b_scale = NULL;
    memcpy(p->align, al, sizeof p->align);
    if ((s = a->desc_create(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F))) { st = lt_fail(lt, err, s, "desc"); goto fail; }
    cublasOperation_t ta = m->transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = m->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if ((s = a->desc_set(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) ||
        (s = a->desc_set(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb))) {
        st = lt_fail(lt, err, s, "transpose");
        goto fail;
    }
    if (m->fp8) { /* the scales' pointers are set per call (sf_blaslt_matmul); fast accumulation as torchao */
        int8_t fast = 1;
        if ((s = a->desc_set(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &m->a_scale, sizeof m->a_scale)) ||
            (s = a->desc_set(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &m->b_scale, sizeof m->b_scale)) ||
            (s = a->desc_set(p->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast))) {
            st = lt_fail(lt, err, s, "FP8 scales");
            goto fail;
        }
    }
    if (m->bias) {
        cublasLtEpilogue_t ep = m->gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
        int32_t bt = cdt(m->dt);
        if ((s = a->desc_set(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep)) ||
            (s = a->desc_set(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt)) ||
            (s = a->desc_set(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &m->bias, sizeof m->bias))) {
            st = lt_fail(lt, err, s, "bias epilogue");
            goto fail;
        }
    } else if (m->gelu) {
        cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_GELU;
        if ((s = a->desc_set(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep))) {
            st = lt_fail(lt, err, s, "GELU epilogue");
            goto fail;
        }
    }
    /* stored (pre-op) shapes: op(A) is m×k, so A is k×m when transposed */
    if ((st = make_layout(lt, &p->a, m->at, m->transa ? m->k : m->m, m->transa ? m->m : m->k, m->lda, m->batch, m->sa,
                          err)) ||
        (st = make_layout(lt, &p->b, m->bt, m->transb ? m->n : m->k, m->transb ? m->k : m->n, m->ldb, m->batch, m->sb,
                          err)) ||
        (st = make_layout(lt, &p->d, m->dt, m->m, m->n, m->ldd, m->batch, m->sd, err)))
        goto fail;
    if ((s = a->pref_create(&pref))) { st = lt_fail(lt, err, s, "preference"); goto fail; }
    uint64_t ws = lt->ws_bytes;
    uint32_t red = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE; /* fp32 partial sums only */
    uint32_t aa = (uint32_t)al[0], ab = (uint32_t)al[1], ad = (uint32_t)al[2];
    if ((s = a->pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws)) ||
        (s = a->pref_set(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red)) ||
        (s = a->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa)) ||
        (s = a->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab)) ||
        (s = a->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ad, sizeof ad)) ||
        (s = a->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ad, sizeof ad))) {
        st = lt_fail(lt, err, s, "preference attributes");
        goto fail;
    }
    cublasLtMatmulHeuristicResult_t r;
    int n = 0;
    memset(&r, 0, sizeof r);
    s = a->heuristic(lt->h, p->desc, p->a, p->b, p->d, p->d, pref, 1, &r, &n);
    if (s || n < 1) {
        st = sf_fail(err, SF_E_UNSUPPORTED,
                     "cuBLASLt has no algorithm for %s%s m=%lld n=%lld k=%lld batch %d (%s -> %s%s%s): %s",
                     m->transa ? "T" : "N", m->transb ? "T" : "N", (long long)m->m, (long long)m->n, (long long)m->k,
                     m->batch, m->fp8 ? "float8 e4m3" : sf_dtype_name(m->at), sf_dtype_name(m->dt),
                     m->bias ? ", bias epilogue" : "",
                     m->gelu ? ", GELU epilogue" : "",
                     s ? a->status_string(s) : "none returned");
        goto fail;
    }
    p->algo = r.algo;
    a->pref_destroy(pref);
    if (getenv("SF_BLASLT_DEBUG"))
        fprintf(stderr, "sf-blaslt: plan %s%s m=%lld n=%lld k=%lld batch %d %s->%s%s%s align %d/%d/%d ws %zu\n",
                m->transa ? "T" : "N", m->transb ? "T" : "N", (long long)m->m, (long long)m->n, (long long)m->k,
                m->batch, m->fp8 ? "e4m3" : sf_dtype_name(m->at), sf_dtype_name(m->dt), m->bias ? " +bias" : "", m->gelu ? " +gelu" : "",
                al[0], al[1], al[2],
                r.workspaceSize);
    return SF_OK;
fail:
    if (pref) a->pref_destroy(pref);
    plan_free(a, p);
    memset(p, 0, sizeof *p);
    return st;
}

sf_status sf_blaslt_matmul(sf_blaslt *lt, const sf_mm *m, sf_err *err) {
    if (!lt) return sf_fail(err, SF_E_ARG, "sf_blaslt_matmul: no cuBLASLt handle");
    if (m->fp8 && (m->at != SF_U8 || m->bt != SF_U8 || m->dt != SF_BF16 || m->transa != 1 || m->transb != 0 ||
                   m->beta != 0.0f || m->batch != 1 || !m->a_scale || !m->b_scale || m->m < 1 || m->n < 1 || m->k < 1))
        return sf_fail(err, SF_E_ARG,
                       "sf_blaslt_matmul: bad FP8 product m=%lld n=%lld k=%lld (wants e4m3 A and B, TN, bf16 D, beta 0, "
                       "batch 1, both scales)",
                       (long long)m->m, (long long)m->n, (long long)m->k);
    if (!m->fp8 && (m->m < 1 || m->n < 1 || m->k < 1 || m->batch < 1 || (m->at != SF_BF16 && m->at != SF_F32) ||
        (m->bt != m->at) || (m->dt != SF_BF16 && m->dt != SF_F32) || (m->gelu && m->beta != 0.0f)))
        return sf_fail(err, SF_E_ARG, "sf_blaslt_matmul: bad product m=%lld n=%lld k=%lld batch %d (%s, %s -> %s)",
                       (long long)m->m, (long long)m->n, (long long)m->k, m->batch, sf_dtype_name(m->at),
                       sf_dtype_name(m->bt), sf_dtype_name(m->dt));
    int al[4] = {align_of(m->A), align_of(m->B), align_of(m->D), m->bias ? align_of(m->bias) : 256};
    lt_plan *p = NULL;
    for (size_t i = 0; i < lt->n_plans && !p; i++)
        if (same_key(&lt->plans[i], m, al)) p = &lt->plans[i];
    if (!p) {
        if (lt->n_plans == lt->cap_plans) {
            size_t nc = lt->cap_plans ? 2 * lt->cap_plans : 32;
            lt_plan *np = realloc(lt->plans, nc * sizeof *np);
            if (!np) return sf_fail(err, SF_E_NOMEM, "out of memory");
            lt->plans = np;
            lt->cap_plans = nc;
        }
        sf_status st = plan_build(lt, m, al, &lt->plans[lt->n_plans], err);
        if (st) return st;
        p = &lt->plans[lt->n_plans++];
    }
    if (m->bias) { /* the pointer lives in the descriptor: refresh it (same alignment class) */
        cublasStatus_t s = lt->api.desc_set(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &m->bias, sizeof m->bias);
        if (s) return lt_fail(lt, err, s, "bias pointer");
    }
    if (m->fp8) { /* likewise the scales' */
        cublasStatus_t s = lt->api.desc_set(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &m->a_scale, sizeof m->a_scale);
        if (!s) s = lt->api.desc_set(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &m->b_scale, sizeof m->b_scale);
        if (s) return lt_fail(lt, err, s, "FP8 scale pointers");
    }
    cublasStatus_t s = lt->api.matmul(lt->h, p->desc, &m->alpha, m->A, p->a, m->B, p->b, &m->beta, m->D, p->d, m->D,
                                      p->d, &p->algo, lt->ws, lt->ws_bytes, lt->stream);
    if (s) return lt_fail(lt, err, s, "matmul");
    /* inside a CUDA graph capture (kernels/cuda_graph.h) a library call that breaks the capture is named
       here, not by whichever call of ours comes next */
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(lt->stream, &cs) == cudaSuccess && cs == cudaStreamCaptureStatusInvalidated)
        return sf_fail(err, SF_E_DEVICE, "cuBLASLt matmul %lldx%lldx%lld invalidated the CUDA graph capture",
                       (long long)m->m, (long long)m->n, (long long)m->k);
    return SF_OK;
}
