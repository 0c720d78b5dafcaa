/* libs_emu.cc — the emulation's stand-in for cuBLASLt (see cuda_emu.h): sf_blaslt_* as plain
 * fp32-accumulating loops (they test the wrappers' layout mapping, batching and epilogues, not
 * cuBLASLt). cuDNN's stand-ins are conv_emu.cc and sdpa_emu.cc. Part of the emulated objects (Makefile
 * EMU_SRC), never of libsf.a. */
#include "cuda_emu.h"
#include "emu_state.h"
#include "act.h"
#include "fp8.h"

#include <stdlib.h>

using namespace sf_emu;

/* ---- cuBLASLt (kernels/blaslt_cuda.h) --------------------------------------------------------- */
struct sf_blaslt {
    cudaStream_t stream;
};
extern "C" sf_status sf_blaslt_new(sf_blaslt **out, void *cuda_stream, sf_err *err) {
    *out = (sf_blaslt *)calloc(1, sizeof(sf_blaslt));
    if (!*out) return sf_fail(err, SF_E_NOMEM, "out of memory");
    (*out)->stream = (cudaStream_t)cuda_stream;
    return SF_OK;
}
extern "C" void sf_blaslt_destroy(sf_blaslt **p) {
    if (!p || !*p) return;
    free(*p);
    *p = NULL;
}
extern "C" int sf_blaslt_version(const sf_blaslt *lt) { return lt ? 1 : 0; }
/* SF_U8: a float8 e4m3 code (sf_mm.fp8), decoded by the CPU reference's table-free sf_fp8_e4m3_to_f32. */
static float ld_el(const void *p, sf_dtype t, size_t i) {
    return t == SF_BF16 ? sf_emu_bf_bits2f(((const unsigned short *)p)[i])
           : t == SF_U8 ? sf_fp8_e4m3_to_f32(((const unsigned char *)p)[i])
                        : ((const float *)p)[i];
}
static size_t el_size(sf_dtype t) { return t == SF_BF16 ? 2 : t == SF_U8 ? 1 : 4; }
static sf_status matmul_now(const sf_mm *m, sf_err *err);
/* Σ a[p]·b[p] in fp32 as eight interleaved partial sums (p mod 8) added pairwise at the end: one fixed
 * order (the same bits on every run) that the compiler can keep in vector registers; cuBLASLt's own
 * order is another, so the tests compare with the bf16 tolerances either way. */
static float dot8(const float *a, const float *b, int64_t k) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t p = 0;
    for (; p + 8 <= k; p += 8)
        for (int l = 0; l < 8; l++) s[l] += a[p + l] * b[p + l];
    for (int l = 0; p < k; p++, l++) s[l] += a[p] * b[p];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}
/* Column-major D (m, n) = alpha·op(A)·op(B) + beta·D + bias, fp32 accumulation (dot8), per batch;
 * D is not read when beta == 0 (as cuBLASLt). FP8 (m->fp8): the e4m3 codes decoded exactly, the same
 * fp32 sums, times alpha·(*a_scale·*b_scale) read from device memory when the product runs (a graph
 * replay sees the scales of its own run), + bias, GELU, one bf16 rounding; the layout rules of the
 * real wrapper (TN, bf16 D, beta 0, batch 1) are checked, and SF_EMU_NO_FP8_GEMM=1 refuses every FP8
 * product as a cuBLASLt without an FP8 algorithm would (SF_E_UNSUPPORTED, nothing enqueued);
 * SF_EMU_NO_FP8_ROWS=N those with N activation rows (sf_mm.n) alone.
 * On a capturing stream the product is recorded (the descriptor copied) and computed when the graph runs. */
extern "C" sf_status sf_blaslt_matmul(sf_blaslt *lt, const sf_mm *m, sf_err *err) {
    if (!lt) return sf_fail(err, SF_E_ARG, "sf_blaslt_matmul: no handle");
    if (m->fp8 && (m->at != SF_U8 || m->bt != SF_U8 || m->dt != SF_BF16 || m->transa != 1 || m->transb != 0 ||
                   m->beta != 0.0f || m->batch != 1 || !m->a_scale || !m->b_scale || m->lda % 16 || m->ldb % 16 ||
                   !is_device_ptr(m->a_scale) || !is_device_ptr(m->b_scale)))
        return sf_fail(err, SF_E_ARG, "sf_blaslt_matmul: bad FP8 product m=%lld n=%lld k=%lld", (long long)m->m,
                       (long long)m->n, (long long)m->k);
    if (m->fp8 && getenv("SF_EMU_NO_FP8_GEMM"))
        return sf_fail(err, SF_E_UNSUPPORTED, "cuBLASLt has no algorithm for this product (float8 e4m3; emulated refusal)");
    const char *nrows = m->fp8 ? getenv("SF_EMU_NO_FP8_ROWS") : nullptr; /* tests: refused at one activation row count */
    if (nrows && atoll(nrows) == m->n)
        return sf_fail(err, SF_E_UNSUPPORTED, "cuBLASLt has no algorithm for this product (float8 e4m3, %lld rows; "
                                              "emulated refusal)", (long long)m->n);
    if (m->m < 1 || m->n < 1 || m->k < 1 || m->batch < 1 || (m->at != SF_BF16 && m->at != SF_F32 && !(m->fp8 && m->at == SF_U8)) ||
        m->bt != m->at || (m->dt != SF_BF16 && m->dt != SF_F32) || (m->gelu && m->beta != 0.0f) ||
        m->lda < (m->transa ? m->k : m->m) || m->ldb < (m->transb ? m->n : m->k) || m->ldd < m->m)
        return sf_fail(err, SF_E_ARG, "sf_blaslt_matmul: bad product m=%lld n=%lld k=%lld", (long long)m->m,
                       (long long)m->n, (long long)m->k);
    if (!is_device_ptr(m->A) || !is_device_ptr(m->B) || !is_device_ptr(m->D) || (m->bias && !is_device_ptr(m->bias)))
        return sf_fail(err, SF_E_DEVICE, "sf_blaslt_matmul: an operand is not device memory");
    if (!same_device("sf_blaslt_matmul", lt->stream, m->A, m->D) || !same_device("sf_blaslt_matmul", nullptr, m->B, m->bias))
        return sf_fail(err, SF_E_DEVICE, "%s", err_msg);
    if (*sf_emu_last_error()) return sf_fail(err, SF_E_DEVICE, "sf_blaslt_matmul: sticky CUDA error");
    if (m->gelu && getenv("SF_EMU_NO_GELU_EPILOGUE")) /* tests: a cuBLASLt without a GELU-epilogue algorithm */
        return sf_fail(err, SF_E_UNSUPPORTED, "cuBLASLt has no algorithm for this product (GELU epilogue; emulated refusal)");
    const sf_mm mc = *m; /* recorded or queued: the descriptor copied */
    std::function<void()> later = [mc] {
        sf_err e2 = {{0}};
        if (matmul_now(&mc, &e2)) sticky_error = last_error = cudaErrorLaunchFailure;
    };
    if (capturing(lt->stream)) {
        cudaError_t e = capture_node(lt->stream, "matmul", "sf_blaslt_matmul", std::move(later));
        return e == cudaSuccess ? SF_OK
                                : sf_fail(err, SF_E_DEVICE, "sf_blaslt_matmul: %s", cudaGetErrorString(e));
    }
    if (capture_active()) return sf_fail(err, SF_E_DEVICE, "sf_blaslt_matmul: %s", cudaGetErrorString(capture_illegal("a product on another stream")));
    if (deferring()) {
        defer(std::move(later));
        return SF_OK;
    }
    return matmul_now(m, err);
}

static sf_status matmul_now(const sf_mm *m, sf_err *err) {
    /* op(A) as (m, k) and op(B) as (n, k) row-major floats, so the k loop runs over contiguous memory;
       the operands are exact widenings, summed by dot8. */
    float *a = (float *)malloc(sizeof(float) * (size_t)(m->m * m->k));
    float *bt = (float *)malloc(sizeof(float) * (size_t)(m->n * m->k));
    if (!a || !bt) {
        free(a), free(bt);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    for (int b = 0; b < m->batch; b++) {
        const char *A = (const char *)m->A + (size_t)(b * m->sa) * el_size(m->at);
        const char *B = (const char *)m->B + (size_t)(b * m->sb) * el_size(m->bt);
        char *D = (char *)m->D + (size_t)(b * m->sd) * (m->dt == SF_BF16 ? 2 : 4);
        for (int64_t i = 0; i < m->m; i++)
            for (int64_t p = 0; p < m->k; p++)
                a[i * m->k + p] = ld_el(A, m->at, m->transa ? (size_t)(p + i * m->lda) : (size_t)(i + p * m->lda));
        for (int64_t j = 0; j < m->n; j++)
            for (int64_t p = 0; p < m->k; p++)
                bt[j * m->k + p] = ld_el(B, m->bt, m->transb ? (size_t)(j + p * m->ldb) : (size_t)(p + j * m->ldb));
        for (int64_t j = 0; j < m->n; j++)
            for (int64_t i = 0; i < m->m; i++) {
                const float *ar = a + i * m->k, *br = bt + j * m->k;
                const float acc = dot8(ar, br, m->k);
                size_t id = (size_t)(i + j * m->ldd);
                float v = m->fp8 ? m->alpha * (acc * (*m->a_scale * *m->b_scale)) : m->alpha * acc;
                if (m->beta != 0.0f) v += m->beta * ld_el(D, m->dt, id);
                if (m->bias) v += ld_el(m->bias, m->dt, (size_t)i);
                if (m->gelu) v = (float)sf_gelu_tanh((double)v); /* the tanh form (double here; the tests' bf16 bounds cover cuBLASLt's fp32) */
                if (m->dt == SF_BF16) ((unsigned short *)D)[id] = sf_emu_f2bf_bits(v);
                else ((float *)D)[id] = v;
            }
    }
    free(a);
    free(bt);
    return SF_OK;
}
