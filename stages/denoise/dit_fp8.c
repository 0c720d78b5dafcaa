/* dit_fp8.c — `--fp8` for the DiT: which linears, their weights' quantization (shared by both
 * backends), and the CPU product (see dit.h sf_dit_weights_fp8, kernels/fp8.h). */
#include "dit_fp8.h"
#include "fp8.h"
#include "gemm.h"
#include "gpu_host.h"
#include "parallel.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK ((size_t)1 << 22) /* values converted to bf16 at a time (8 MiB), the conversion on up to 16 threads */
#define PARTS 16

/* One chunk of a weight as bf16: its parts' amax (pass 0), or its codes at scale s (pass 1). */
typedef struct chunk_job {
    const uint16_t *b;
    uint8_t *codes;
    float s, amax[PARTS];
} chunk_job;

static void chunk_part(void *ctx, int64_t lo, int64_t hi, int part) {
    chunk_job *j = ctx;
    if (!j->codes) {
        float m = 0.0f;
        for (int64_t i = lo; i < hi; i++) {
            float v = sf_bf16_to_f32(j->b[i]);
            v = v < 0 ? -v : v;
            if (v > m) m = v;
        }
        if (m > j->amax[part]) j->amax[part] = m;
        return;
    }
    for (int64_t i = lo; i < hi; i++) j->codes[i] = sf_fp8_e4m3_code(sf_bf16_to_f32(j->b[i]), j->s);
}

static size_t mat_elems(const sf_dit_mat *m) { return (size_t)m->n * (size_t)m->k; }

static const uint8_t *mat_bytes(const sf_dit_mat *m, size_t off) {
    return (const uint8_t *)m->w + off * (size_t)sf_dtype_size(m->dt);
}

sf_status sf_dit_mat_fp8(const sf_dit_mat *m, uint8_t *codes, float *scale, sf_err *err) {
    const size_t n = mat_elems(m);
    const size_t nb = n < CHUNK ? n : CHUNK;
    uint16_t *b = malloc((nb ? nb : 1) * sizeof *b);
    const int cores = sf_cpu_count(), nt = cores < PARTS ? cores : PARTS;
    chunk_job j = {b, NULL, 1.0f, {0}};
    if (!b) return sf_fail(err, SF_E_NOMEM, "out of memory");
    if (m->dt != SF_F32 && m->dt != SF_BF16 && m->dt != SF_F16) {
        free(b);
        return sf_fail(err, SF_E_UNSUPPORTED, "fp8: weight dtype %s", sf_dtype_name(m->dt));
    }
    for (int pass = 0; pass < 2; pass++) { /* the bf16 model's amax, then its codes */
        if (pass) {
            float amax = 0.0f;
            for (int p = 0; p < PARTS; p++) amax = j.amax[p] > amax ? j.amax[p] : amax;
            j.s = sf_fp8_scale(amax);
        }
        for (size_t off = 0; off < n; off += CHUNK) {
            const size_t c = n - off < CHUNK ? n - off : CHUNK;
            sf_gpu_to_bf16(mat_bytes(m, off), m->dt, c, b);
            j.codes = pass ? codes + off : NULL;
            sf_parallel_for_part((int64_t)c, nt, 1 << 16, chunk_part, &j);
        }
    }
    *scale = j.s;
    free(b);
    return SF_OK;
}

sf_dit_mat *sf_dit_block_linear(const sf_dit_layer *L, int i) {
    static const size_t off[SF_DIT_BLOCK_LINEARS] = {
        offsetof(sf_dit_layer, sa_q), offsetof(sf_dit_layer, sa_k), offsetof(sf_dit_layer, sa_v),
        offsetof(sf_dit_layer, sa_o), offsetof(sf_dit_layer, ca_q), offsetof(sf_dit_layer, ca_k),
        offsetof(sf_dit_layer, ca_v), offsetof(sf_dit_layer, ca_o), offsetof(sf_dit_layer, ffn0),
        offsetof(sf_dit_layer, ffn2)};
    return (sf_dit_mat *)((const char *)L + off[i]);
}

static sf_status mark(sf_dit_weights *w, sf_dit_mat *m, int cpu, sf_err *err) {
    sf_status s;
    if (!sf_fp8_eligible(m->n, m->k) || m->fp8) return SF_OK;
    if (cpu) {
        const size_t n = mat_elems(m);
        uint8_t *codes = malloc(n ? n : 1);
        uint16_t *q = malloc((n ? n : 1) * sizeof *q);
        if (!codes || !q) {
            free(codes), free(q);
            return sf_fail(err, SF_E_NOMEM, "out of memory quantizing the DiT to fp8");
        }
        s = sf_dit_mat_fp8(m, codes, &m->s8, err);
        for (size_t i = 0; !s && i < n; i++) q[i] = sf_f32_to_bf16(sf_fp8_e4m3_to_f32(codes[i]));
        free(codes);
        if (s) return free(q), s;
        if ((s = sf_dit_weights_own(w, q, err))) return s;
        m->q8 = q;
    }
    m->fp8 = 1;
    w->fp8++;
    return SF_OK;
}

sf_status sf_dit_weights_fp8(sf_dit_weights *w, int cpu, sf_err *err) {
    sf_status s;
    for (int l = 0; l < w->cfg.num_layers; l++)
        for (int i = 0; i < SF_DIT_BLOCK_LINEARS; i++)
            if ((s = mark(w, sf_dit_block_linear(&w->layers[l], i), cpu, err))) return s;
    return SF_OK;
}

sf_status sf_dit_fp8_cpu_ready(const sf_dit_weights *w, sf_err *err) {
    for (int l = 0; l < w->cfg.num_layers; l++)
        for (int i = 0; i < SF_DIT_BLOCK_LINEARS; i++) {
            const sf_dit_mat *m = sf_dit_block_linear(&w->layers[l], i);
            if (m->fp8 && !m->q8)
                return sf_fail(err, SF_E_ARG, "fp8: layer %d's weights were marked for a GPU, not quantized for the CPU", l);
        }
    return SF_OK;
}

sf_status sf_dit_gemm_fp8_cpu(int64_t M, const float *x, int64_t ldx, const sf_dit_mat *m, const float *b, float *y,
                              sf_dit_xq *xq, int same_x, int nthreads, sf_scratch *ws, sf_err *err) {
    if (!(same_x && xq->x == x && xq->M == M && xq->ld == ldx && xq->k == m->k)) {
        xq->s = sf_fp8_scale(sf_fp8_amax_cpu_mt(x, M, m->k, ldx, nthreads));
        sf_fp8_quantize_cpu_mt(x, M, m->k, ldx, xq->s, xq->q, nthreads);
        xq->x = x, xq->M = M, xq->ld = ldx, xq->k = m->k;
    }
    const float a = xq->s * m->s8; /* exact: bf16 · bf16 */
    if (sf_gemm_cpu_ws(M, m->n, m->k, xq->q, m->k, m->q8, SF_BF16, NULL, y, m->n, nthreads, ws))
        return sf_fail(err, SF_E_UNSUPPORTED, "gemm: unsupported weight dtype");
    for (int64_t i = 0; i < M; i++) {
        float *r = y + i * m->n;
        for (int64_t j = 0; j < m->n; j++) r[j] = r[j] * a + (b ? b[j] : 0.0f);
    }
    return SF_OK;
}
