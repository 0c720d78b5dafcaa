/* gpu_host.c — the GPU backends' shared host-side helpers: the SF_CUDA_PROFILE event profile and the
 * staged bf16 weight upload (see gpu_prof.h). */
#include "gpu_host.h"
#include "dnnl_ops.h"
#include "parallel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sf_status sf_gpu_prof_init(sf_gpu_prof *p, int cap, int n_cat, const char *const *names, sf_err *err) {
    memset(p, 0, sizeof *p);
    if (n_cat < 1 || n_cat > SF_GPU_PROF_MAX_CAT || cap < 2)
        return sf_fail(err, SF_E_ARG, "profile: %d categories, %d events", n_cat, cap);
    p->ev_cat = calloc((size_t)cap, sizeof(int));
    p->ev_flops = calloc((size_t)cap, sizeof(double));
    if (!p->ev_cat || !p->ev_flops) {
        free(p->ev_cat), free(p->ev_flops);
        memset(p, 0, sizeof *p);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    sf_status s = sf_cuda_events_new(&p->ev, cap, err);
    if (s) {
        free(p->ev_cat), free(p->ev_flops);
        memset(p, 0, sizeof *p);
        return s;
    }
    p->cap_ev = cap, p->n_cat = n_cat, p->names = names;
    return SF_OK;
}

void sf_gpu_prof_free(sf_gpu_prof *p) {
    if (p->ev) sf_cuda_events_free(p->ev, p->cap_ev);
    free(p->ev_cat), free(p->ev_flops);
    memset(p, 0, sizeof *p);
}

void sf_gpu_prof_mark(sf_gpu_prof *p, const sf_cuda_ctx *cx, int cat) {
    if (!p->ev || p->n_ev >= p->cap_ev) return;
    sf_err e = {{0}};
    if (sf_cuda_event_record(cx, p->ev, p->n_ev, &e) == SF_OK) p->ev_cat[p->n_ev] = cat, p->ev_flops[p->n_ev++] = 0;
}

void sf_gpu_prof_mark_flops(sf_gpu_prof *p, const sf_cuda_ctx *cx, int cat, double flops) {
    int n = p->n_ev;
    sf_gpu_prof_mark(p, cx, cat);
    if (p->n_ev > n) p->ev_flops[n] = flops;
}

sf_status sf_gpu_prof_collect(sf_gpu_prof *p, sf_err *err) {
    if (!p->ev || p->n_ev < 2) return SF_OK;
    for (int i = 0; i + 1 < p->n_ev; i++) {
        float ms = 0;
        sf_status s = sf_cuda_event_ms(p->ev, i, i + 1, &ms, err);
        if (s) return s;
        p->ms[p->ev_cat[i]] += ms;
    }
    for (int i = 0; i < p->n_ev; i++) p->flops[p->ev_cat[i]] += p->ev_flops[i];
    p->n_ev = 0;
    p->runs++;
    return SF_OK;
}

int sf_gpu_prof_format(const sf_gpu_prof *p, const char *unit, int decimals, char *buf, size_t n) {
    if (!p->runs || !n) return 0;
    double tot = 0;
    for (int c = 0; c < p->n_cat; c++) tot += p->ms[c];
    int k = snprintf(buf, n, "%d %s, %.*f ms each on the GPU:", p->runs, unit, decimals, tot / p->runs);
    for (int c = 0; c < p->n_cat && k > 0 && (size_t)k < n; c++) {
        k += snprintf(buf + k, n - (size_t)k, " %s %.*f ms (%.0f%%", p->names[c], decimals, p->ms[c] / p->runs,
                      tot > 0 ? 100 * p->ms[c] / tot : 0);
        if (p->flops[c] > 0 && k > 0 && (size_t)k < n)
            k += snprintf(buf + k, n - (size_t)k, ", %.4g GFLOP, %.0f TFLOP/s", p->flops[c] / p->runs / 1e9,
                          p->ms[c] > 0 ? p->flops[c] / (p->ms[c] * 1e-3) / 1e12 : 0.0);
        if (k > 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, ")%s", c + 1 < p->n_cat ? "," : "");
    }
    return 1;
}

void sf_gpu_prof_reset(sf_gpu_prof *p) {
    memset(p->ms, 0, sizeof p->ms);
    memset(p->flops, 0, sizeof p->flops);
    p->runs = 0;
    p->n_ev = 0;
}

typedef struct to_bf16_job {
    const void *src;
    sf_dtype dt;
    uint16_t *dst;
} to_bf16_job;

static void to_bf16_range(void *ctx, int64_t b, int64_t e) {
    const to_bf16_job *j = ctx;
    if (j->dt == SF_BF16) memcpy(j->dst + b, (const uint16_t *)j->src + b, (size_t)(e - b) * 2);
    else if (j->dt == SF_F32) /* vectorised (AVX2 where there is one), the bits of sf_f32_to_bf16 */
        sf_dnnl_to_bf16((const float *)j->src + b, j->dst + b, e - b);
    else
        for (int64_t i = b; i < e; i++) j->dst[i] = sf_f32_to_bf16(sf_f16_to_f32(((const uint16_t *)j->src)[i]));
}

/* The host side of an upload on up to 16 cores: page faults of a mapped weights file, the conversion,
 * the copy into pinned memory (each value on its own: any split gives the same bits). Pieces of at
 * least 2^18 values; shorter sources (an embedding row) stay on the caller's thread without asking
 * how many cores there are. */
void sf_gpu_to_bf16(const void *src, sf_dtype dt, size_t n, uint16_t *dst) {
    enum { MIN_PIECE = 1 << 18 };
    to_bf16_job j = {src, dt, dst};
    const int cores = n >= 2 * (size_t)MIN_PIECE ? sf_cpu_count() : 1;
    sf_parallel_for((int64_t)n, cores < 16 ? cores : 16, MIN_PIECE, to_bf16_range, &j);
}

sf_status sf_gpu_upload_bf16(const sf_cuda_ctx *cx, void *dst, const void *src, sf_dtype dt, size_t n, uint16_t *stage,
                             size_t stage_n, sf_err *err) {
    if (dt != SF_F32 && dt != SF_BF16 && dt != SF_F16)
        return sf_fail(err, SF_E_UNSUPPORTED, "weights of dtype %s cannot be uploaded as bf16", sf_dtype_name(dt));
    const size_t es = sf_dtype_size(dt);
    if (n <= stage_n || stage_n < 2) { /* one piece (or a stage too small to halve) */
        for (size_t off = 0; off < n; off += stage_n) {
            size_t c = n - off < stage_n ? n - off : stage_n;
            sf_gpu_to_bf16((const char *)src + off * es, dt, c, stage);
            sf_status s = sf_cuda_copy_h2d(cx, (uint16_t *)dst + off, stage, c * 2, err);
            if (s) return s;
        }
        return SF_OK;
    }
    /* two halves of the stage: one is filled while the other's copy runs; an event per half says when
       its last copy has left it */
    const size_t half = stage_n / 2;
    void *ev = NULL;
    sf_status s = sf_cuda_events_new(&ev, 2, err);
    if (s) return s;
    int k = 0;
    for (size_t off = 0; off < n && !s; off += half, k ^= 1) {
        const size_t c = n - off < half ? n - off : half;
        uint16_t *buf = stage + (size_t)k * half;
        if ((s = sf_cuda_event_sync(ev, k, err))) break;
        sf_gpu_to_bf16((const char *)src + off * es, dt, c, buf);
        if (!(s = sf_cuda_copy_h2d_async(cx, (uint16_t *)dst + off, buf, c * 2, err))) s = sf_cuda_event_record(cx, ev, k, err);
    }
    sf_err e2 = {{0}};
    sf_status s2 = sf_cuda_sync(cx, s ? &e2 : err); /* the caller refills the stage at once */
    sf_cuda_events_free(ev, 2);
    return s ? s : s2;
}
