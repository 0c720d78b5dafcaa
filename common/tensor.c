/* tensor.c — dtypes, shapes, strided copies and bf16/f16 conversions.
 * Tested by tests/unit/test_core.c. */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *wire, *st;
    size_t size;
} k_dtypes[SF_DTYPE_COUNT] = {
    [SF_F32] = {"f32", "F32", 4},  [SF_BF16] = {"bf16", "BF16", 2}, [SF_F16] = {"f16", "F16", 2},
    [SF_F64] = {"f64", "F64", 8},  [SF_I64] = {"i64", "I64", 8},    [SF_I32] = {"i32", "I32", 4},
    [SF_I16] = {"i16", "I16", 2},  [SF_I8] = {"i8", "I8", 1},       [SF_U8] = {"u8", "U8", 1},
    [SF_BOOL] = {"bool", "BOOL", 1},
};

size_t sf_dtype_size(sf_dtype d) { return (unsigned)d < SF_DTYPE_COUNT ? k_dtypes[d].size : 0; }
const char *sf_dtype_name(sf_dtype d) { return (unsigned)d < SF_DTYPE_COUNT ? k_dtypes[d].wire : "?"; }
const char *sf_dtype_st_name(sf_dtype d) { return (unsigned)d < SF_DTYPE_COUNT ? k_dtypes[d].st : "?"; }

int sf_dtype_from_name(const char *s) {
    if (!s) return -1;
    for (int i = 0; i < SF_DTYPE_COUNT; i++)
        if (strcmp(s, k_dtypes[i].wire) == 0 || strcmp(s, k_dtypes[i].st) == 0) return i;
    return -1;
}

int64_t sf_tensor_numel(const sf_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0) return -1;
        if (t->shape[i] && n > INT64_MAX / t->shape[i]) return -1;
        n *= t->shape[i];
    }
    return n;
}

size_t sf_tensor_nbytes(const sf_tensor *t) {
    int64_t n = sf_tensor_numel(t);
    size_t b;
    if (n < 0 || !sf_mul_ok((size_t)n, sf_dtype_size(t->dtype), &b)) return 0;
    return b;
}

int sf_tensor_is_contiguous(const sf_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

void sf_tensor_set_contiguous(sf_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        /* saturate: an overflowing shape is rejected later by sf_tensor_numel's check */
        if (__builtin_mul_overflow(s, t->shape[i], &s)) s = INT64_MAX;
    }
}

sf_tensor sf_tensor_view(void *data, sf_dtype dtype, int ndim, const int64_t *shape) {
    sf_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    sf_tensor_set_contiguous(&t);
    t.data = data;
    t.device = -1;
    return t;
}

sf_status sf_tensor_alloc(sf_tensor *t, sf_dtype dtype, int ndim, const int64_t *shape, sf_err *err) {
    if (ndim < 0 || ndim > SF_MAX_DIMS) return sf_fail(err, SF_E_ARG, "tensor rank %d > %d", ndim, SF_MAX_DIMS);
    *t = sf_tensor_view(NULL, dtype, ndim, shape);
    int64_t n = sf_tensor_numel(t);
    size_t bytes = sf_tensor_nbytes(t);
    if (n < 0 || (n > 0 && bytes == 0)) return sf_fail(err, SF_E_NOMEM, "tensor size overflows");
    t->data = calloc(bytes ? bytes : 1, 1);
    if (!t->data) return sf_fail(err, SF_E_NOMEM, "out of memory allocating %zu bytes", bytes);
    t->owned = 1;
    return SF_OK;
}

void sf_tensor_free(sf_tensor *t) {
    if (t->owned && t->device < 0) free(t->data);
    t->data = NULL;
    t->owned = 0;
}

const char *sf_shape_str(const sf_tensor *t, char *buf, size_t n) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

int sf_shape_eq(const sf_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

/* ---- scalar conversions ---- */

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sf_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float sf_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

float sf_round_bf16(float f) { return sf_bf16_to_f32(sf_f32_to_bf16(f)); }

uint16_t sf_f32_to_f16(float f) {
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;                 /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u;                /* overflow → inf (≥ 65520) */
    if (a < 0x38800000u) {                                      /* subnormal or zero in f16 */
        if (a < 0x33000000u) return sign;                       /* < 2^-25 rounds to 0 */
        uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(a >> 23); /* 14..24 */
        /* value = mant * 2^(e-150) and the f16 subnormal unit is 2^-24: r = mant >> (126-e) */
        uint32_t r = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = a - 0x38000000u; /* rebias exponent 127 → 15, in place */
    uint32_t h = r >> 13;
    uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return sign | (uint16_t)h;
}

float sf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-08f; /* 2^-24 */
        return (sign ? -v : v);
    }
    if (e == 31) return u2f(sign | 0x7f800000u | (m << 13));
    return u2f(sign | ((e + 112u) << 23) | (m << 13));
}

/* ---- element access ---- */

static double load_elem(const void *base, sf_dtype d, int64_t off) {
    const char *p = (const char *)base;
    switch (d) {
    case SF_F32: { float v; memcpy(&v, p + off * 4, 4); return v; }
    case SF_BF16: { uint16_t v; memcpy(&v, p + off * 2, 2); return sf_bf16_to_f32(v); }
    case SF_F16: { uint16_t v; memcpy(&v, p + off * 2, 2); return sf_f16_to_f32(v); }
    case SF_F64: { double v; memcpy(&v, p + off * 8, 8); return v; }
    case SF_I64: { int64_t v; memcpy(&v, p + off * 8, 8); return (double)v; }
    case SF_I32: { int32_t v; memcpy(&v, p + off * 4, 4); return v; }
    case SF_I16: { int16_t v; memcpy(&v, p + off * 2, 2); return v; }
    case SF_I8: return ((const int8_t *)p)[off];
    case SF_U8: return ((const uint8_t *)p)[off];
    case SF_BOOL: return ((const uint8_t *)p)[off] != 0;
    default: return NAN;
    }
}

static int64_t elem_offset(const sf_tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->stride[d];
        i /= n;
    }
    return off;
}

double sf_tensor_get(const sf_tensor *t, int64_t i) { return load_elem(t->data, t->dtype, elem_offset(t, i)); }

void sf_tensor_to_f32(const sf_tensor *t, float *out) {
    int64_t n = sf_tensor_numel(t);
    if (t->dtype == SF_F32 && sf_tensor_is_contiguous(t)) {
        memcpy(out, t->data, (size_t)n * 4);
        return;
    }
    if (t->dtype == SF_BF16 && sf_tensor_is_contiguous(t)) {
        const uint16_t *s = t->data;
        for (int64_t i = 0; i < n; i++) out[i] = sf_bf16_to_f32(s[i]);
        return;
    }
    for (int64_t i = 0; i < n; i++) out[i] = (float)sf_tensor_get(t, i);
}

void sf_tensor_copy_contiguous(const sf_tensor *t, void *dst) {
    int64_t n = sf_tensor_numel(t);
    size_t es = sf_dtype_size(t->dtype);
    if (sf_tensor_is_contiguous(t)) {
        memcpy(dst, t->data, (size_t)n * es);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        memcpy((char *)dst + i * (int64_t)es, (const char *)t->data + elem_offset(t, i) * (int64_t)es, es);
}

static void store_elem(void *base, sf_dtype d, int64_t i, double v) {
    char *p = base;
    switch (d) {
    case SF_F32: { float f = (float)v; memcpy(p + i * 4, &f, 4); break; }
    case SF_BF16: { uint16_t h = sf_f32_to_bf16((float)v); memcpy(p + i * 2, &h, 2); break; }
    case SF_F16: { uint16_t h = sf_f32_to_f16((float)v); memcpy(p + i * 2, &h, 2); break; }
    case SF_F64: memcpy(p + i * 8, &v, 8); break;
    case SF_I64: { int64_t x = (int64_t)v; memcpy(p + i * 8, &x, 8); break; }
    case SF_I32: { int32_t x = (int32_t)v; memcpy(p + i * 4, &x, 4); break; }
    case SF_I16: { int16_t x = (int16_t)v; memcpy(p + i * 2, &x, 2); break; }
    case SF_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    case SF_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case SF_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

sf_status sf_tensor_convert(const sf_tensor *t, sf_dtype to, sf_tensor *out, sf_err *err) {
    sf_status s = sf_tensor_alloc(out, to, t->ndim, t->shape, err);
    if (s) return s;
    int64_t n = sf_tensor_numel(t);
    if (to == t->dtype) {
        sf_tensor_copy_contiguous(t, out->data);
        return SF_OK;
    }
    /* i64 through double would lose bits past 2^53; copy integers exactly. */
    if (to == SF_I64 && (t->dtype == SF_I32 || t->dtype == SF_I64)) {
        for (int64_t i = 0; i < n; i++) {
            int64_t off = elem_offset(t, i), v;
            if (t->dtype == SF_I64) memcpy(&v, (const char *)t->data + off * 8, 8);
            else { int32_t w; memcpy(&w, (const char *)t->data + off * 4, 4); v = w; }
            memcpy((char *)out->data + i * 8, &v, 8);
        }
        return SF_OK;
    }
    for (int64_t i = 0; i < n; i++) store_elem(out->data, to, i, sf_tensor_get(t, i));
    return SF_OK;
}

sf_status sf_tensor_need_float(const sf_tensor *t, const char *what, sf_err *err) {
    if (t->dtype == SF_F32 || t->dtype == SF_BF16 || t->dtype == SF_F16 || t->dtype == SF_F64) return SF_OK;
    return sf_fail(err, SF_E_UNSUPPORTED, "%s has dtype %s; expected a float type (f32, bf16, f16, f64)", what,
                   (unsigned)t->dtype < SF_DTYPE_COUNT ? sf_dtype_name(t->dtype) : "?");
}

sf_status sf_tensor_latent_dims(const sf_tensor *t, const char *what, int64_t d[4], sf_err *err) {
    char b[96];
    if (t->ndim == 5 && t->shape[0] == 1) memcpy(d, t->shape + 1, 4 * sizeof(int64_t));
    else if (t->ndim == 4) memcpy(d, t->shape, 4 * sizeof(int64_t));
    else
        return sf_fail(err, SF_E_SHAPE, "%s has shape %s, expected [1, T, 16, h, w] or [T, 16, h, w]", what,
                       sf_shape_str(t, b, sizeof b));
    if (d[0] <= 0 || d[1] <= 0 || d[2] <= 0 || d[3] <= 0)
        return sf_fail(err, SF_E_SHAPE, "%s has an empty shape %s", what, sf_shape_str(t, b, sizeof b));
    return sf_tensor_need_float(t, what, err);
}
