/* dit_cuda_fp8.c — `--fp8` in the CUDA DiT: the block linears that sf_dit_weights_fp8 marked run as
 * cuBLASLt FP8 GEMMs (kernels/fp8_cuda.h), as torchao's Float8DynamicActivationFloat8WeightConfig
 * (PerTensor) runs them on the bf16 model (numerics: kernels/fp8.h):
 *   the weight's e4m3 codes and scale made on the host once, at upload (sf_dit_mat_fp8: the same bits as
 *   the CPU backend's), the activation's on the device before every product (sf_fp8_quantize_cuda), then
 *   Y = ⌊sx·sw·(X8·W8ᵀ) + b⌉ [GELU] with fp32 (fast) accumulation. Nothing waits on the host, so a
 *   forward still records into a CUDA graph.
 * Which shapes: every (n, k) of a marked matrix is tried once at init on scratch buffers, at every row count a
 * forward can have; one cuBLASLt refuses stays bf16 (one warning each), and a refused GELU epilogue makes ffn.0 an FP8 product followed
 * by the GELU kernel. Tested by tests/unit/test_fp8_cuda.c (`dit_forward`: the fp8 golden; `dit_fallback`:
 * the refusals give the plain bf16 forward bit for bit). */
#include "dit_cuda_impl.h"
#include "fp8_cuda.h"

#include <stdlib.h>
#include <string.h>

#define F8_ALIGN(b) (((size_t)(b) + 255) & ~(size_t)255)

static int shape_find(const sf_dit_gpu *g, int64_t n, int64_t k) {
    for (int i = 0; i < g->n_f8shape; i++)
        if (g->f8shape[i].n == n && g->f8shape[i].k == k) return i;
    return -1;
}

/* 1 when m's products run in float8 on this GPU: marked by sf_dit_weights_fp8 and its shape taken by cuBLASLt
 * (sf_dgpu_fp8_probe). */
int sf_dgpu_fp8_takes(const sf_dit_gpu *g, const sf_dit_mat *m) {
    const int i = m->fp8 ? shape_find(g, m->n, m->k) : -1;
    return i >= 0 && g->f8shape[i].ok;
}

/* Before the weights are sized: try the FP8 GEMM (with the bias epilogue) on each (n, k) of a marked matrix, for
 * every row count a forward can have — a block of f = 1 … max_frames frames (a shorter first or last block, an
 * independent first frame) — and the text's (the cross-attention's K / V), and the GELU epilogue on the FFN's
 * first shape at those row counts — on zeroed scratch, which is freed again; so no product refuses mid-run. A refusal (SF_E_UNSUPPORTED) is a warning and that shape
 * stays bf16; any other failure is returned. Also primes cuBLASLt's plans for those shapes. */
sf_status sf_dgpu_fp8_probe(sf_dit_state *st, sf_err *err) {
    sf_dit_gpu *g = st->gpu;
    const sf_dit_weights *w = st->w;
    const sf_dit_config *c = &w->cfg;
    const int64_t L = (int64_t)st->max_frames * st->frame_tokens, T = c->text_len, Mx = L > T ? L : T;
    size_t nk = 0, mk = 0, mn = 0, nn = 0;
    sf_status s = SF_OK;
    void *buf = NULL;
    g->n_f8shape = 0;
    g->fp8_on = 0;
    g->fp8_gelu_epi = g->gelu_epi;
    if (!w->fp8) return SF_OK;
    for (int l = 0; l < c->num_layers; l++) {
        for (int i = 0; i < SF_DIT_BLOCK_LINEARS; i++) {
            const sf_dit_mat *m = sf_dit_block_linear(&w->layers[l], i);
            if (!m->fp8 || shape_find(g, m->n, m->k) >= 0) continue;
            if (g->n_f8shape == (int)(sizeof g->f8shape / sizeof g->f8shape[0]))
                return sf_fail(err, SF_E_UNSUPPORTED, "fp8: more than %d linear shapes", g->n_f8shape);
            g->f8shape[g->n_f8shape].n = m->n, g->f8shape[g->n_f8shape].k = m->k, g->f8shape[g->n_f8shape++].ok = 0;
            if ((size_t)(m->n * m->k) > nk) nk = (size_t)(m->n * m->k);
            if ((size_t)(Mx * m->k) > mk) mk = (size_t)(Mx * m->k);
            if ((size_t)(Mx * m->n) > mn) mn = (size_t)(Mx * m->n);
            if ((size_t)m->n > nn) nn = (size_t)m->n;
        }
    }
    if (!g->n_f8shape) return SF_OK;
    const size_t oa = 0, ob = oa + F8_ALIGN(nk), od = ob + F8_ALIGN(mk), obias = od + F8_ALIGN(mn * 2),
                 osc = obias + F8_ALIGN(nn * 2), total = osc + 256;
    if ((s = sf_cuda_malloc(&buf, total, err))) return s;
    if ((s = sf_cuda_memset(&g->cx, buf, 0, total, err))) goto done;
    char *b = buf;
    for (int i = 0; i < g->n_f8shape; i++) {
        const int64_t n = g->f8shape[i].n, k = g->f8shape[i].k;
        int ok = 1;
        for (int64_t j = 0; j <= st->max_frames && ok; j++) { /* blocks of 1 … max_frames frames, then the text */
            const int64_t M = j < st->max_frames ? (j + 1) * st->frame_tokens : T;
            sf_err e2 = {{0}};
            s = sf_linear_fp8_cuda(&g->cx, M, n, k, b + ob, (const float *)(b + osc), b + oa,
                                   (const float *)(b + osc) + 1, b + obias, 0, b + od, n, &e2);
            if (s == SF_E_UNSUPPORTED) {
                sf_log(SF_LOG_WARN, "sf-denoise: --fp8: %s; the %lldx%lld linears stay bf16", e2.msg, (long long)n,
                       (long long)k);
                ok = 0, s = SF_OK;
            } else if (s) {
                *err = e2;
                goto done;
            }
        }
        g->f8shape[i].ok = ok;
        g->fp8_on |= ok;
        for (int64_t f = 1; ok && g->fp8_gelu_epi && n == c->ffn_dim && k == c->dim && f <= st->max_frames; f++) {
            sf_err e2 = {{0}}; /* ffn.0: bias + GELU in the epilogue, at each block's row count */
            s = sf_linear_fp8_cuda(&g->cx, f * st->frame_tokens, n, k, b + ob, (const float *)(b + osc), b + oa,
                                   (const float *)(b + osc) + 1, b + obias, 1, b + od, n, &e2);
            if (s == SF_E_UNSUPPORTED) {
                sf_log(SF_LOG_WARN, "sf-denoise: --fp8: %s; the FFN's GELU runs as its own kernel", e2.msg);
                g->fp8_gelu_epi = 0, s = SF_OK;
            } else if (s) {
                *err = e2;
                goto done;
            }
        }
    }
    s = sf_cuda_sync(&g->cx, err);
done:
    sf_cuda_free(buf);
    return s;
}

/* m's e4m3 codes (n·k bytes) and scale, made on the host as the CPU backend makes them, into device memory. */
sf_status sf_dgpu_fp8_upload(sf_dit_gpu *g, const sf_dit_mat *m, uint8_t *codes, float *scale, sf_err *err) {
    const size_t n = (size_t)m->n * (size_t)m->k;
    uint8_t *h = malloc(n ? n : 1);
    float s8 = 1.0f;
    sf_status s;
    if (!h) return sf_fail(err, SF_E_NOMEM, "out of memory quantizing the DiT to fp8");
    s = sf_dit_mat_fp8(m, h, &s8, err);
    if (!s) s = sf_cuda_copy_h2d(&g->cx, codes, h, n, err);
    if (!s) s = sf_cuda_copy_h2d(&g->cx, scale, &s8, sizeof s8, err);
    free(h);
    return s;
}

/* y = ⌊sx·sw·(X8·W8ᵀ) + b⌉ [GELU] for a float8 matrix w (w->w8): x (M, w->k) bf16, row stride ldx, quantized into
 * g->xq / g->sx first — unless reuse is set and xq already holds this very input (the caller vouches that nothing
 * wrote x since: q, k and v of one activation). A fused [Wk; Wv] (parts 2) runs as two products of n/2 rows, each
 * with its own weight scale, into columns [0, n/2) and [n/2, n) of y. Profile: the quantization as "fp8
 * quantize", each product as a linear. */
sf_status sf_dgpu_product8(sf_dit_gpu *g, int64_t M, const void *x, int64_t ldx, const gmat *w, void *y, int64_t ldy,
                           int gelu, int reuse, sf_err *err) {
    const int parts = w->parts > 1 ? w->parts : 1;
    const int64_t n = w->n / parts, k = w->k;
    sf_status s;
    if (!(reuse && g->xq_x == x && g->xq_M == M && g->xq_ld == ldx && g->xq_k == k)) {
        sf_gpu_prof_mark(&g->prof, &g->cx, P_FP8Q);
        g->xq_x = NULL;
        if ((s = sf_fp8_quantize_cuda(&g->cx, M, k, x, ldx, g->xq, g->sx, err))) return s;
        g->xq_x = x, g->xq_M = M, g->xq_ld = ldx, g->xq_k = k;
    }
    for (int p = 0; p < parts; p++) {
        sf_gpu_prof_mark_flops(&g->prof, &g->cx, P_LINEAR, 2.0 * (double)M * (double)n * (double)k);
        if ((s = sf_linear_fp8_cuda(&g->cx, M, n, k, g->xq, g->sx, w->w8 + (size_t)p * (size_t)(n * k), w->s8 + p,
                                    w->b ? w->b + (size_t)p * (size_t)n : NULL, gelu, (bf16 *)y + (size_t)p * (size_t)n,
                                    ldy, err)))
            return s;
    }
    return SF_OK;
}
