/* tensor.h — sf_tensor: a typed, strided view of host or device memory.
 *
 * Shapes are outermost-first (PyTorch order); strides are in elements. A tensor either
 * borrows its memory (an mmapped file, another tensor) or owns a malloc'd buffer
 * (owned = 1, released by sf_tensor_free). Tested by tests/unit/test_core.c. */
#ifndef SF_TENSOR_H
#define SF_TENSOR_H

#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_MAX_DIMS 6

typedef enum sf_dtype {
    SF_F32 = 0,
    SF_BF16,
    SF_F16,
    SF_F64,
    SF_I64,
    SF_I32,
    SF_I16,
    SF_I8,
    SF_U8,
    SF_BOOL,
    SF_DTYPE_COUNT
} sf_dtype;

typedef struct sf_tensor {
    sf_dtype dtype;
    int ndim;                      /* 0..SF_MAX_DIMS; 0 = scalar */
    int64_t shape[SF_MAX_DIMS];    /* outermost first */
    int64_t stride[SF_MAX_DIMS];   /* elements */
    void *data;                    /* first element */
    int device;                    /* -1 host, >= 0 CUDA device ordinal */
    int owned;                     /* 1: data is ours to free */
} sf_tensor;

/* A tensor with a name (file entries, wire messages). */
typedef struct sf_tensor_entry {
    char *name; /* owned by the container */
    sf_tensor t;
} sf_tensor_entry;

size_t sf_dtype_size(sf_dtype d);
const char *sf_dtype_name(sf_dtype d);     /* wire names: "f32", "bf16", ... */
const char *sf_dtype_st_name(sf_dtype d);  /* safetensors names: "F32", "BF16", ... */
int sf_dtype_from_name(const char *s);     /* either naming; -1 when unknown */

/* SF_OK when t holds floating-point values (f32, bf16, f16, f64); else SF_E_UNSUPPORTED naming
 * `what` — a stage takes activations (embeddings, latents, noise) as floats only, never an
 * integer tensor silently converted. */
sf_status sf_tensor_need_float(const sf_tensor *t, const char *what, sf_err *err);
/* A latent video (T, C, h, w): t is [1, T, C, h, w] or [T, C, h, w] (the layout sf-denoise --save-latents
 * writes) with no empty dimension, of a float dtype; d ← (T, C, h, w). Else SF_E_SHAPE / SF_E_UNSUPPORTED
 * naming `what` (sf-decode --latents, sf-denoise --initial-latents, a wire block). */
sf_status sf_tensor_latent_dims(const sf_tensor *t, const char *what, int64_t d[4], sf_err *err);

int64_t sf_tensor_numel(const sf_tensor *t);
/* Bytes of a contiguous tensor of this shape; 0 on overflow (check numel first). */
size_t sf_tensor_nbytes(const sf_tensor *t);
int sf_tensor_is_contiguous(const sf_tensor *t);
/* Fill contiguous strides for t->shape. */
void sf_tensor_set_contiguous(sf_tensor *t);
/* Set dtype/shape/contiguous strides on a borrowed pointer. */
sf_tensor sf_tensor_view(void *data, sf_dtype dtype, int ndim, const int64_t *shape);

/* Allocate a zeroed, owned, contiguous host tensor. */
sf_status sf_tensor_alloc(sf_tensor *t, sf_dtype dtype, int ndim, const int64_t *shape, sf_err *err);
void sf_tensor_free(sf_tensor *t);

/* Shape text "[1, 2, 3]" into buf. */
const char *sf_shape_str(const sf_tensor *t, char *buf, size_t n);
int sf_shape_eq(const sf_tensor *t, int ndim, const int64_t *shape);

/* Element i (row-major logical index) of any host tensor as double. */
double sf_tensor_get(const sf_tensor *t, int64_t i);
/* Copy any host tensor (any dtype, any strides) into a contiguous f32 buffer of numel floats. */
void sf_tensor_to_f32(const sf_tensor *t, float *out);
/* Copy into a new owned contiguous tensor of dtype `to` (rounding to nearest even). */
sf_status sf_tensor_convert(const sf_tensor *t, sf_dtype to, sf_tensor *out, sf_err *err);
/* Copy any host tensor into dst contiguous bytes of the same dtype. */
void sf_tensor_copy_contiguous(const sf_tensor *t, void *dst);

/* Scalar conversions, round-to-nearest-even, NaN preserved (quiet). */
uint16_t sf_f32_to_bf16(float f);
float sf_bf16_to_f32(uint16_t h);
uint16_t sf_f32_to_f16(float f);
float sf_f16_to_f32(uint16_t h);
/* Round a float to bf16 precision and back (the reference's "⌊x⌉"). */
float sf_round_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
