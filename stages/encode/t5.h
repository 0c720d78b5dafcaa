/* t5.h — the umT5 text encoder (T5EncoderModel of wan/modules/t5.py), CPU fp32.
 *
 * Every dimension is inferred from tensor shapes of the state dict (a safetensors file or
 * the torch zip `models_t5_umt5-xxl-enc-bf16.pth`); weights stay in their stored dtype
 * (bf16) inside the mmapped file and are widened to f32 in the GEMM inner loop. Activations
 * are f32 (the golden reference is the float32 model on bf16-rounded weights, SPEC.md §3).
 * Threads split output rows only, so the result is bit-identical for any thread count.
 * Tested by tests/unit/test_t5.c against tests/golden/expect/t5.safetensors. */
#ifndef SF_T5_H
#define SF_T5_H

#include "parallel.h"
#include "tfile.h"

typedef struct sf_t5_config {
    int64_t vocab;       /* token_embedding rows (real 256384) */
    int64_t dim;         /* d_model (real 4096) */
    int64_t dim_attn;    /* q/k/v rows (real 4096) */
    int64_t dim_ffn;     /* fc1/gate rows (real 10240) */
    int64_t num_heads;   /* pos_embedding columns (real 64) */
    int64_t head_dim;    /* dim_attn / num_heads */
    int64_t num_layers;  /* blocks.{i} (real 24) */
    int64_t num_buckets; /* pos_embedding rows (32) */
    int64_t max_dist;    /* 128 (constant, not in the file) */
    float eps;           /* 1e-6 (constant) */
    int shared_pos;      /* 1: one top-level pos_embedding (T5), 0: per block (umT5) */
} sf_t5_config;

typedef struct sf_t5_layer {
    const sf_tensor *norm1, *norm2;          /* (dim) */
    const sf_tensor *q, *k, *v;              /* (dim_attn, dim) */
    const sf_tensor *o;                      /* (dim, dim_attn) */
    const sf_tensor *gate, *fc1;             /* (dim_ffn, dim) */
    const sf_tensor *fc2;                    /* (dim, dim_ffn) */
    float *pos;                              /* (num_buckets, num_heads) f32, owned */
} sf_t5_layer;

typedef struct sf_t5 {
    sf_tfile *tf;                /* owned: the mmapped weights */
    sf_t5_config cfg;
    const sf_tensor *emb;        /* token_embedding.weight (vocab, dim) */
    float *final_norm;           /* norm.weight (dim) f32, owned */
    float *norms;                /* per-layer norm1/norm2 (num_layers, 2, dim) f32, owned */
    sf_t5_layer *layers;         /* (num_layers) */
    int nthreads;
    sf_scratch ws;               /* the GEMMs' work memory, sized at open (kernels/parallel.h) */
} sf_t5;

/* Optional per-call taps of prompt intermediates (layer 0), each (n_tokens, dim) f32,
 * caller-allocated; NULL fields are skipped. */
typedef struct sf_t5_debug {
    float *embed, *block0_norm1, *block0_attn, *block0_out;
} sf_t5_debug;

/* Open the weights at path (safetensors or torch zip) and check every shape. nthreads ≤ 0:
 * all CPUs. *out: new encoder, sf_t5_destroy. */
sf_status sf_t5_open(const char *path, int nthreads, sf_t5 **out, sf_err *err);
void sf_t5_destroy(sf_t5 **m);

/* Bucket of relative position rel = key - query (bidirectional, SPEC.md §3.4). */
int sf_t5_bucket(const sf_t5_config *c, int64_t rel);

/* Encode one prompt: ids (seq_len) int64 with the first n_tokens real (1 ≤ n_tokens ≤ seq_len);
 * out (seq_len, dim) f32, rows ≥ n_tokens set to 0. Only the real rows are computed (keys
 * past n_tokens are masked, so the real rows do not depend on them). dbg may be NULL. */
sf_status sf_t5_encode(const sf_t5 *m, const int64_t *ids, int64_t seq_len, int64_t n_tokens, float *out,
                       const sf_t5_debug *dbg, sf_err *err);

#endif
