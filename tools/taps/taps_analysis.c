/* taps_analysis.c — frame-level attention statistics and tap-file source discovery (see
 * taps_analysis.h). Mirrors notebooks/plt_fig4.ipynb (compute_frame_attention, Δ, spread,
 * head mean ± std, summary) and the softmax sink ratio printed by
 * experiments/run_extraction_figure4.py. The logits are streamed one query row at a time
 * from the mapping. Tested by tests/unit/test_taps_analysis.c and tests/bats/sf-taps.bats. */
#define _POSIX_C_SOURCE 200809L
#include "taps_analysis.h"
#include "pickle.h"

#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void sf_taps_stats_free(sf_taps_stats *s) {
    free(s->heads);
    free(s->F);
    free(s->W);
    free(s->delta);
    free(s->spread);
    free(s->sink);
    free(s->mean);
    free(s->std);
    memset(s, 0, sizeof *s);
}

/* Allocate the per-head / per-frame arrays of `s` (nh heads, K frames, W when with_w). */
static sf_status stats_alloc(sf_taps_stats *s, int H, const int *heads, int nh, int64_t K, int with_w, sf_err *err) {
    if (nh <= 0) nh = H;
    for (int i = 0; heads && i < nh; i++)
        if (heads[i] < 0 || heads[i] >= H)
            return sf_fail(err, SF_E_ARG, "--heads: head %d out of range (the tap has %d heads: 0..%d)", heads[i], H,
                           H - 1);
    size_t nf;
    if (K <= 0 || !sf_mul_ok((size_t)nh, (size_t)K, &nf)) return sf_fail(err, SF_E_SHAPE, "bad key-frame count");
    s->nh = nh;
    s->nkf = K;
    s->heads = malloc(sizeof(int) * (size_t)nh);
    s->F = sf_calloc2(nf, sizeof(double));
    s->W = with_w ? sf_calloc2(nf, sizeof(double)) : NULL;
    s->delta = sf_calloc2((size_t)nh, sizeof(double));
    s->spread = sf_calloc2((size_t)nh, sizeof(double));
    s->sink = sf_calloc2((size_t)nh, sizeof(double));
    s->mean = sf_calloc2((size_t)K, sizeof(double));
    s->std = sf_calloc2((size_t)K, sizeof(double));
    if (!s->heads || !s->F || (with_w && !s->W) || !s->delta || !s->spread || !s->sink || !s->mean || !s->std)
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (int i = 0; i < nh; i++) s->heads[i] = heads ? heads[i] : i;
    s->lmin = INFINITY;
    s->lmax = -INFINITY;
    return SF_OK;
}

static double mean_of(const double *v, int64_t n) {
    double a = 0;
    for (int64_t i = 0; i < n; i++) a += v[i];
    return n > 0 ? a / (double)n : NAN;
}

double sf_taps_sink_ratio(const double *w, int64_t K) {
    if (K < 3) return NAN;
    return w[0] / mean_of(w + 1, K - 2);
}

void sf_taps_stats_finish(sf_taps_stats *s) {
    int64_t K = s->nkf;
    for (int h = 0; h < s->nh; h++) {
        const double *f = s->F + (size_t)h * (size_t)K;
        double mid = K >= 3 ? mean_of(f + 1, K - 2) : mean_of(f, K); /* notebook fallback */
        s->delta[h] = f[0] - mid;
        double mn = f[0], mx = f[0];
        for (int64_t k = 1; k < K; k++) {
            if (f[k] < mn) mn = f[k];
            if (f[k] > mx) mx = f[k];
        }
        s->spread[h] = (mx - mn) / fabs(mean_of(f, K)) * 100.0;
        s->sink[h] = s->W ? sf_taps_sink_ratio(s->W + (size_t)h * (size_t)K, K) : NAN;
    }
    for (int64_t k = 0; k < K; k++) {
        double a = 0;
        for (int h = 0; h < s->nh; h++) a += s->F[(size_t)h * (size_t)K + (size_t)k];
        double m = a / s->nh, v = 0;
        for (int h = 0; h < s->nh; h++) {
            double d = s->F[(size_t)h * (size_t)K + (size_t)k] - m;
            v += d * d;
        }
        s->mean[k] = m;
        s->std[k] = sqrt(v / s->nh);
    }
    s->first = s->mean[0];
    s->middle = K >= 3 ? mean_of(s->mean + 1, K - 2) : NAN;
    s->last = s->mean[K - 1];
    s->ratio = s->first / s->middle;
    s->first_minus_last = s->first - s->last;
}

/* Convert one contiguous row of n elements to float. tab: the f16 → f32 table. */
void sf_taps_row_to_f32(const uint8_t *p, sf_dtype dt, int64_t n, const float *tab, float *x) {
    switch (dt) {
    case SF_F16:
        for (int64_t j = 0; j < n; j++) {
            uint16_t h;
            memcpy(&h, p + 2 * j, 2);
            x[j] = tab[h];
        }
        break;
    case SF_BF16:
        for (int64_t j = 0; j < n; j++) {
            uint16_t h;
            memcpy(&h, p + 2 * j, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&x[j], &u, 4);
        }
        break;
    case SF_F32: memcpy(x, p, sizeof(float) * (size_t)n); break;
    default: /* SF_F64 */
        for (int64_t j = 0; j < n; j++) {
            double d;
            memcpy(&d, p + 8 * j, 8);
            x[j] = (float)d;
        }
        break;
    }
}

sf_status sf_taps_stats_logits(const sf_tensor *t, int64_t fsl, const int *heads, int nh, sf_taps_stats *out,
                               sf_err *err) {
    memset(out, 0, sizeof *out);
    float *tab = NULL, *x = NULL, *e = NULL;
    double *colsum = NULL, *wsum = NULL;
    sf_status st = SF_OK;
    char sh[128];
    int off = t->ndim == 4 ? 1 : 0;
    if (!(t->ndim == 4 && t->shape[0] == 1) && t->ndim != 3)
        return sf_fail(err, SF_E_SHAPE, "logits must be [1, heads, Lq, Lk] or [heads, Lq, Lk], got %s",
                       sf_shape_str(t, sh, sizeof sh));
    if (t->dtype != SF_F16 && t->dtype != SF_BF16 && t->dtype != SF_F32 && t->dtype != SF_F64)
        return sf_fail(err, SF_E_UNSUPPORTED, "logits dtype %s is not a float type", sf_dtype_name(t->dtype));
    if (t->device >= 0 || !t->data) return sf_fail(err, SF_E_ARG, "logits are not in host memory");
    int64_t H = t->shape[off], Lq = t->shape[off + 1], Lk = t->shape[off + 2];
    if (H <= 0 || H > 1 << 20 || Lq <= 0 || Lk <= 0)
        return sf_fail(err, SF_E_SHAPE, "empty logits %s", sf_shape_str(t, sh, sizeof sh));
    if (t->stride[off + 2] != 1 && Lk > 1) return sf_fail(err, SF_E_SHAPE, "logits rows are not contiguous");
    if (fsl <= 0 || Lk % fsl != 0)
        return sf_fail(err, SF_E_SHAPE, "key length %lld is not a multiple of frame_seq_length %lld (use --frame-seq-length)",
                       (long long)Lk, (long long)fsl);
    int64_t K = Lk / fsl;
    st = stats_alloc(out, (int)H, heads, nh, K, 1, err);
    if (st) goto fail;
    out->nq = Lq;
    out->fsl = fsl;
    size_t esz = sf_dtype_size(t->dtype);
    x = sf_calloc2((size_t)Lk, sizeof(float));
    e = sf_calloc2((size_t)Lk, sizeof(float));
    colsum = sf_calloc2((size_t)Lk, sizeof(double));
    wsum = sf_calloc2((size_t)Lk, sizeof(double));
    if (t->dtype == SF_F16) tab = sf_calloc2(65536, sizeof(float));
    if (!x || !e || !colsum || !wsum || (t->dtype == SF_F16 && !tab)) {
        st = sf_fail(err, SF_E_NOMEM, "out of memory (rows of %lld keys)", (long long)Lk);
        goto fail;
    }
    for (uint32_t i = 0; tab && i < 65536; i++) tab[i] = sf_f16_to_f32((uint16_t)i);
    const uint8_t *base = t->data;
    double lmin = INFINITY, lmax = -INFINITY;
    for (int hi = 0; hi < out->nh; hi++) {
        int64_t h = out->heads[hi];
        memset(colsum, 0, sizeof(double) * (size_t)Lk);
        memset(wsum, 0, sizeof(double) * (size_t)Lk);
        for (int64_t i = 0; i < Lq; i++) {
            int64_t eoff = h * t->stride[off] + i * t->stride[off + 1];
            sf_taps_row_to_f32(base + eoff * (int64_t)esz, t->dtype, Lk, tab, x);
            float mx = -INFINITY, mn = INFINITY;
            for (int64_t j = 0; j < Lk; j++) {
                if (x[j] > mx) mx = x[j];
                if (x[j] < mn) mn = x[j];
                colsum[j] += x[j];
            }
            if (mx > lmax) lmax = mx;
            if (mn < lmin) lmin = mn;
            /* softmax with max subtraction: exp(x − max) ≤ 1 never overflows */
            double s = 0;
            for (int64_t j = 0; j < Lk; j++) {
                e[j] = expf(x[j] - mx);
                s += e[j];
            }
            double inv = 1.0 / s;
            for (int64_t j = 0; j < Lk; j++) wsum[j] += e[j] * inv;
        }
        double *F = out->F + (size_t)hi * (size_t)K, *W = out->W + (size_t)hi * (size_t)K;
        double den = (double)Lq * (double)fsl;
        for (int64_t k = 0; k < K; k++) {
            double a = 0, b = 0;
            for (int64_t j = k * fsl; j < (k + 1) * fsl; j++) {
                a += colsum[j];
                b += wsum[j];
            }
            F[k] = a / den;
            W[k] = b / den;
        }
    }
    out->lmin = lmin;
    out->lmax = lmax;
    sf_taps_stats_finish(out);
fail:
    free(tab);
    free(x);
    free(e);
    free(colsum);
    free(wsum);
    return st;
}

sf_status sf_taps_stats_frames(const sf_tensor *t, int64_t row0, int64_t nrows, const int *heads, int nh,
                               sf_taps_stats *out, sf_err *err) {
    memset(out, 0, sizeof *out);
    char sh[128];
    if (t->ndim != 2 && t->ndim != 3)
        return sf_fail(err, SF_E_SHAPE, "frame attention must be [heads, q_frames, k_frames] or [heads, k_frames], got %s",
                       sf_shape_str(t, sh, sizeof sh));
    if (t->dtype != SF_F16 && t->dtype != SF_BF16 && t->dtype != SF_F32 && t->dtype != SF_F64)
        return sf_fail(err, SF_E_UNSUPPORTED, "frame attention dtype %s is not a float type", sf_dtype_name(t->dtype));
    int64_t H = t->shape[0], Q = t->ndim == 3 ? t->shape[1] : 1, K = t->shape[t->ndim - 1];
    if (H <= 0 || H > 1 << 20 || Q <= 0 || K <= 0) return sf_fail(err, SF_E_SHAPE, "empty frame attention %s", sf_shape_str(t, sh, sizeof sh));
    if (nrows <= 0) {
        row0 = 0;
        nrows = Q;
    }
    if (row0 < 0 || row0 + nrows > Q)
        return sf_fail(err, SF_E_SHAPE, "query-frame rows %lld..%lld outside %s", (long long)row0,
                       (long long)(row0 + nrows - 1), sf_shape_str(t, sh, sizeof sh));
    sf_status st = stats_alloc(out, (int)H, heads, nh, K, 0, err);
    if (st) return st;
    out->nq = nrows;
    for (int hi = 0; hi < out->nh; hi++) {
        int64_t h = out->heads[hi];
        for (int64_t k = 0; k < K; k++) {
            double a = 0;
            for (int64_t r = row0; r < row0 + nrows; r++) {
                double v = sf_tensor_get(t, (h * Q + r) * K + k);
                if (v < out->lmin) out->lmin = v;
                if (v > out->lmax) out->lmax = v;
                a += v;
            }
            out->F[(size_t)hi * (size_t)K + (size_t)k] = a / (double)nrows;
        }
    }
    sf_taps_stats_finish(out);
    return SF_OK;
}

/* probs: W = F / fsl (the mean weight of one key of the frame, like the logits sources' W). */
static sf_status probs_weights(sf_taps_stats *s, int64_t fsl, sf_err *err) {
    size_t n = (size_t)s->nh * (size_t)s->nkf;
    if (!(s->W = malloc(n * sizeof(double)))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) s->W[i] = s->F[i] / (double)(fsl > 0 ? fsl : 1);
    s->fsl = fsl;
    sf_taps_stats_finish(s);
    return SF_OK;
}

sf_status sf_taps_stats_source(const sf_taps_src *src, const int *heads, int nh, sf_taps_stats *out, sf_err *err) {
    sf_status st;
    if (src->kind == SF_TAPS_SRC_LOGITS) st = sf_taps_stats_logits(src->t, src->fsl, heads, nh, out, err);
    else st = sf_taps_stats_frames(src->t, src->row0, src->nrows, heads, nh, out, err);
    if (!st && src->kind == SF_TAPS_SRC_PROBS) st = probs_weights(out, src->fsl, err);
    if (st) {
        sf_err e2 = *err;
        sf_fail(err, st, "%s: %s", src->name, e2.msg);
    }
    return st;
}

sf_status sf_taps_make_dir(const char *dir, sf_err *err) {
    sf_err why;
    return sf_mkdir_p(dir, &why) ? sf_fail(err, SF_E_IO, "-o %s: %s", dir, why.msg) : SF_OK;
}

/* ---- labels per kind (sf_taps_kind_text) ---- */

static const sf_taps_kind_text k_kind_text[] = {
    [SF_TAPS_SRC_LOGITS] = {"logits", "logit_mean", "logits", "query tokens %lld, frame_seq_length %lld",
                            "Mean attention logit", "per-head frame attention", "frame attention logits across heads"},
    [SF_TAPS_SRC_FRAMES] = {"frames", "logit_mean", "values", "frame-level input: %lld query frame row(s) averaged",
                            "Mean attention logit", "per-head frame attention", "frame attention logits across heads"},
    [SF_TAPS_SRC_CURVE] = {"frames", "logit_mean", "values",
                           "frame-level curve (last block, already averaged over its query frames)",
                           "Mean attention logit", "per-head frame attention", "frame attention logits across heads"},
    [SF_TAPS_SRC_PROBS] = {"probs", "mass_mean", "mass",
                           "attention mass (softmax mass of each key frame, its keys summed; a query row sums to 1): "
                           "%lld query frame(s) averaged, frame_seq_length %lld",
                           "Attention mass", "per-head attention mass", "attention mass across heads"},
};

const sf_taps_kind_text *sf_taps_kind_labels(sf_taps_src_kind k) {
    return (unsigned)k < sizeof k_kind_text / sizeof k_kind_text[0] ? &k_kind_text[k] : &k_kind_text[0];
}

const char *sf_taps_kinds_label(const sf_taps_src *srcs, size_t n, size_t field, const char *mixed) {
    const char *one = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *v;
        memcpy(&v, (const char *)sf_taps_kind_labels(srcs[i].kind) + field, sizeof v);
        if (one && strcmp(one, v) != 0) return mixed;
        one = v;
    }
    return one ? one : mixed;
}

/* ---- source discovery ---- */

typedef struct src_list {
    sf_taps_src *v;
    size_t n, cap;
} src_list;

static sf_status push(src_list *l, const sf_taps_src *s, sf_err *err) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 16;
        sf_taps_src *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return sf_fail(err, SF_E_NOMEM, "out of memory");
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = *s;
    return SF_OK;
}

/* Integer fields of a tap file: absent → dflt; present, they must be an integer in [lo, hi]
 * (never a fallback for 0, a negative, a string or a wrapped value). */
static sf_status py_int(const sf_py *d, const char *key, int64_t lo, int64_t hi, int64_t dflt, int64_t *out,
                        const char *path, sf_err *err) {
    const sf_py *v = d && d->type == SF_PY_DICT ? sf_py_dict_get(d, key) : NULL;
    *out = dflt;
    if (!v) return SF_OK;
    if (v->type != SF_PY_INT || v->i < lo || v->i > hi)
        return sf_fail(err, SF_E_FORMAT, "%s: '%s' must be an integer in [%lld, %lld]", path, key, (long long)lo,
                       (long long)hi);
    *out = v->i;
    return SF_OK;
}

static const sf_tensor *py_tensor(const sf_py *d, const char *key) {
    const sf_py *v = d && d->type == SF_PY_DICT ? sf_py_dict_get(d, key) : NULL;
    return v && v->type == SF_PY_TENSOR ? &v->t : NULL;
}

static int64_t lq_of(const sf_tensor *t) { return t->ndim >= 2 ? t->shape[t->ndim - 2] : 0; }

/* frame_seq_length of a logits tensor: override, explicit value, else Lq / query frames. */
static int64_t pick_fsl(int64_t override, int64_t explicit_fsl, int64_t qframes, const sf_tensor *t) {
    if (override > 0) return override;
    if (explicit_fsl > 0) return explicit_fsl;
    int64_t lq = lq_of(t);
    if (qframes > 0 && lq % qframes == 0) return lq / qframes;
    return 0;
}

static int cmp_src(const void *a, const void *b) {
    const sf_taps_src *x = a, *y = b;
    if (x->set != y->set) return x->set < y->set ? -1 : 1;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    if (x->block != y->block) return x->block < y->block ? -1 : 1;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return strcmp(x->name, y->name);
}

#define TAP_INT_MAX ((int64_t)INT_MAX)

/* A streaming full_frame_attention [H, T, T] (s->t) read as its last block's rows (fpb of them). */
static void full_rows(sf_taps_src *s, int64_t fpb) {
    const int64_t T = s->t->ndim == 3 ? s->t->shape[1] : 0;
    s->kind = SF_TAPS_SRC_FRAMES;
    s->set = SF_TAPS_SET_STREAM;
    s->nrows = fpb <= T ? fpb : T;
    s->row0 = T - s->nrows;
}

static sf_status find_torch(const sf_tfile *tf, int64_t fslo, src_list *l, sf_err *err) {
    const sf_py *root = tf->root;
    const char *path = tf->path ? tf->path : "file";
    if (!root || root->type != SF_PY_DICT) return SF_OK;
    int64_t root_fsl, fpb, v[4];
    sf_status st;
    if ((st = py_int(root, "frame_seq_length", 1, TAP_INT_MAX, 0, &root_fsl, path, err)) ||
        (st = py_int(root, "num_frame_per_block", 1, TAP_INT_MAX, 3, &fpb, path, err)))
        return st;
    const sf_py *aw = sf_py_dict_get(root, "attention_weights");
    if (aw && aw->type == SF_PY_LIST) {
        for (size_t i = 0; i < aw->n; i++) {
            const sf_py *e = aw->items[i];
            sf_taps_src s;
            memset(&s, 0, sizeof s);
            if ((st = py_int(e, "layer_idx", 0, TAP_INT_MAX, (int64_t)(i < (size_t)INT_MAX ? i : 0), &v[0], path, err)) ||
                (st = py_int(e, "block", 0, TAP_INT_MAX, -1, &v[1], path, err)) ||
                (st = py_int(e, "step", 0, TAP_INT_MAX, -1, &v[2], path, err)))
                return st;
            s.layer = (int)v[0], s.block = (int)v[1], s.step = (int)v[2];
            if ((s.t = py_tensor(e, "attn_logits"))) {
                s.kind = SF_TAPS_SRC_LOGITS;
                s.set = s.block >= 0 ? SF_TAPS_SET_TAPS : SF_TAPS_SET_FIG4;
                snprintf(s.name, sizeof s.name, "attention_weights/%zu/attn_logits", i);
                if ((st = py_int(e, "frame_seq_length", 1, TAP_INT_MAX, root_fsl, &v[0], path, err)) ||
                    (st = py_int(e, "num_query_frames", 1, TAP_INT_MAX, fpb, &v[3], path, err)))
                    return st;
                s.fsl = pick_fsl(fslo, v[0], v[3], s.t);
            } else if ((s.t = py_tensor(e, "frame_attention"))) {
                s.kind = SF_TAPS_SRC_FRAMES;
                s.set = SF_TAPS_SET_FRAMES;
                snprintf(s.name, sizeof s.name, "attention_weights/%zu/frame_attention", i);
            } else if ((s.t = py_tensor(e, "full_frame_attention"))) { /* run_extraction_full_attention.py's */
                full_rows(&s, fpb);
                snprintf(s.name, sizeof s.name, "attention_weights/%zu/full_frame_attention", i);
            } else
                continue;
            if (s.set == SF_TAPS_SET_STREAM) snprintf(s.label, sizeof s.label, "stream.L%d", s.layer);
            else if (s.set == SF_TAPS_SET_FIG4) snprintf(s.label, sizeof s.label, "L%d", s.layer);
            else
                snprintf(s.label, sizeof s.label, "%sL%d.b%d.s%d", s.kind == SF_TAPS_SRC_FRAMES ? "frames." : "", s.layer,
                         s.block, s.step);
            if ((st = push(l, &s, err))) return st;
        }
    }
    const sf_tensor *full = py_tensor(root, "full_frame_attention"), *lastb = py_tensor(root, "last_block_frame_attention");
    if (full || lastb) {
        sf_taps_src s;
        memset(&s, 0, sizeof s);
        if ((st = py_int(root, "layer_index", 0, TAP_INT_MAX, 0, &v[0], path, err))) return st;
        s.layer = (int)v[0];
        s.block = s.step = -1;
        s.set = SF_TAPS_SET_STREAM;
        snprintf(s.label, sizeof s.label, "stream.L%d", s.layer);
        if (lastb) {
            s.t = lastb;
            s.kind = SF_TAPS_SRC_CURVE;
            snprintf(s.name, sizeof s.name, "last_block_frame_attention");
        } else {
            s.t = full;
            full_rows(&s, fpb);
            snprintf(s.name, sizeof s.name, "full_frame_attention");
        }
        if ((st = push(l, &s, err))) return st;
    }
    return SF_OK;
}

/* A safetensors metadata integer: absent → dflt; present, a strict decimal in [1, INT_MAX]. */
static sf_status meta_int(const sf_tfile *tf, const char *key, int64_t dflt, int64_t *out, sf_err *err) {
    const char *v = sf_tfile_meta(tf, key);
    *out = dflt;
    if (v && !sf_parse_i64(v, 1, TAP_INT_MAX, out))
        return sf_fail(err, SF_E_FORMAT, "%s: metadata %s = '%.32s' is not an integer in [1, %lld]", tf->path, key, v,
                       (long long)TAP_INT_MAX);
    return SF_OK;
}

/* Match a tap tensor name against pat, where each '#' is a strict integer in [0, INT_MAX]:
 * 1 matched (values in v), 0 another name, -1 the pattern's name with a malformed or
 * out-of-range number (L99999999999999999999, b4294967296, L-1): refused, never wrapped. */
static int match_name(const char *nm, const char *pat, int *v) {
    int k = 0;
    for (; *pat; pat++) {
        if (*pat != '#') {
            if (*nm++ != *pat) return 0;
            continue;
        }
        if (*nm != '-' && (*nm < '0' || *nm > '9')) return 0;
        int64_t x;
        if (!sf_scan_i64(&nm, 0, TAP_INT_MAX, &x)) return -1;
        v[k++] = (int)x;
    }
    return *nm ? 0 : 1;
}

static sf_status find_safetensors(const sf_tfile *tf, int64_t fslo, src_list *l, sf_err *err) {
    int64_t mfsl, fpb;
    sf_status st;
    if ((st = meta_int(tf, "frame_seq_length", 0, &mfsl, err)) || (st = meta_int(tf, "num_frame_per_block", 3, &fpb, err)))
        return st;
    static const struct {
        const char *pat;
        int kind, set;
        const char *label; /* printf of the numbers */
    } pats[] = {
        {"fig4.L#.attn_logits", SF_TAPS_SRC_LOGITS, SF_TAPS_SET_FIG4, "L%d"},
        {"taps.L#.b#.s#", SF_TAPS_SRC_LOGITS, SF_TAPS_SET_TAPS, "L%d.b%d.s%d"},
        {"frames.L#.b#.s#", SF_TAPS_SRC_FRAMES, SF_TAPS_SET_FRAMES, "frames.L%d.b%d.s%d"},
        {"stream.L#.b#.s#", SF_TAPS_SRC_FRAMES, SF_TAPS_SET_FRAMES, "frames.L%d.b%d.s%d"},
        {"stream.L#.full_frame_attention", SF_TAPS_SRC_FRAMES, SF_TAPS_SET_STREAM, "stream.L%d"},
        {"probs.L#.b#.s#", SF_TAPS_SRC_PROBS, SF_TAPS_SET_PROBS, "probs.L%d.b%d.s%d"}, /* the workbench's */
    };
    for (size_t i = 0; i < tf->n; i++) {
        const char *nm = tf->entries[i].name;
        sf_taps_src s;
        memset(&s, 0, sizeof s);
        int v[3] = {0, -1, -1}, p, m = 0;
        for (p = 0; p < (int)(sizeof pats / sizeof pats[0]); p++)
            if ((m = match_name(nm, pats[p].pat, v)) != 0) break;
        if (m < 0)
            return sf_fail(err, SF_E_FORMAT, "%s: tap tensor '%.64s': layer, block and step must be integers in [0, %d]",
                           tf->path, nm, INT_MAX);
        if (m == 0) continue;
        s.layer = v[0], s.block = v[1], s.step = v[2];
        s.kind = pats[p].kind;
        s.set = pats[p].set;
        snprintf(s.label, sizeof s.label, pats[p].label, s.layer, s.block, s.step);
        s.t = &tf->entries[i].t;
        if (s.set == SF_TAPS_SET_STREAM) {
            int64_t T = s.t->ndim == 3 ? s.t->shape[1] : 0;
            s.nrows = fpb <= T ? fpb : T;
            s.row0 = T - s.nrows;
        }
        snprintf(s.name, sizeof s.name, "%s", nm);
        if (s.kind == SF_TAPS_SRC_LOGITS) s.fsl = pick_fsl(fslo, mfsl, fpb, s.t);
        if (s.kind == SF_TAPS_SRC_PROBS) s.fsl = fslo > 0 ? fslo : mfsl;
        if ((st = push(l, &s, err))) return st;
    }
    return SF_OK;
}

/* "probs.L*, taps.L* or fig4.L*": the tap groups of a set mask, as the files name them. */
static void set_names(unsigned sets, char *buf, size_t n) {
    static const struct {
        unsigned set;
        const char *name;
    } names[] = {{SF_TAPS_SET_PROBS, "probs.L*"},        {SF_TAPS_SET_TAPS, "taps.L*"},
                 {SF_TAPS_SET_FIG4, "fig4.L* (figure-4)"}, {SF_TAPS_SET_FRAMES, "frames.L*"},
                 {SF_TAPS_SET_STREAM, "stream.L* (streaming)"}};
    const size_t nn = sizeof names / sizeof names[0];
    size_t o = 0, k = 0, total = 0;
    for (size_t i = 0; i < nn; i++) total += (sets & names[i].set) != 0;
    buf[0] = 0;
    for (size_t i = 0; i < nn && o < n; i++) {
        if (!(sets & names[i].set)) continue;
        k++;
        o += (size_t)snprintf(buf + o, n - o, "%s%s", k == 1 ? "" : k == total ? " or " : ", ", names[i].name);
    }
}

sf_status sf_taps_find_sources(const sf_tfile *tf, unsigned sets, int64_t fsl_override, const int *layers, int nl,
                               sf_taps_src **out, size_t *n_out, sf_err *err) {
    src_list l = {0};
    *out = NULL;
    *n_out = 0;
    sf_status st = tf->kind == SF_TFILE_TORCH ? find_torch(tf, fsl_override, &l, err)
                                              : find_safetensors(tf, fsl_override, &l, err);
    if (st) goto fail;
    unsigned have = 0;
    for (size_t i = 0; i < l.n; i++) have |= l.v[i].set;
    if (!sets) {
        sets = have & SF_TAPS_SET_FIG4 ? SF_TAPS_SET_FIG4
               : have & SF_TAPS_SET_STREAM ? SF_TAPS_SET_STREAM
                                            : SF_TAPS_SET_TAPS | SF_TAPS_SET_FRAMES | SF_TAPS_SET_PROBS;
    }
    size_t k = 0;
    for (size_t i = 0; i < l.n; i++) {
        int keep = (l.v[i].set & sets) != 0;
        if (keep && layers && nl > 0) {
            keep = 0;
            for (int j = 0; j < nl; j++) keep |= layers[j] == l.v[i].layer;
        }
        if (keep) l.v[k++] = l.v[i];
    }
    l.n = k;
    const char *path = tf->path ? tf->path : "file";
    if (l.n == 0 && (have & sets) == 0 && have != 0) { /* taps, but none of the kinds asked for: say which */
        char want[160], got[160];
        set_names(sets, want, sizeof want);
        set_names(have, got, sizeof got);
        st = sf_fail(err, SF_E_NOTFOUND, "%s: no %s taps (the file has %s taps)", path, want, got);
        goto fail;
    }
    if (l.n == 0 && have == 0 && tf->kind != SF_TFILE_TORCH && sf_tfile_meta(tf, "token_grid")) {
        /* a tokens file (--tap-mode tokens): per-token masses, not per frame */
        st = sf_fail(err, SF_E_NOTFOUND, "%s: tokens.L* taps (the sink frames' per-token mass) are read by "
                                         "sf-taps tokens FILE, and by report --tokens", path);
        goto fail;
    }
    if (l.n == 0) {
        st = sf_fail(err, SF_E_NOTFOUND, "%s: no attention taps%s (expected a figure-4/streaming .pt or "
                                         "fig4.L*/taps.L*/frames.L*/stream.L*/probs.L* tensors)",
                     path, layers && nl > 0 ? " for the selected layers/set" : "");
        goto fail;
    }
    qsort(l.v, l.n, sizeof *l.v, cmp_src);
    *out = l.v;
    *n_out = l.n;
    return SF_OK;
fail:
    free(l.v);
    return st;
}
