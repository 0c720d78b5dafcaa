/* encode.h — sf-encode's per-prompt pipeline: tokenize → cache lookup → (lazy) umT5 → cache store.
 *
 * Mirrors the reference's WanTextEncoder.forward (utils/wan_wrapper.py) for one prompt, plus
 * the embedding cache. The encoder weights are opened only on the first cache miss, so a run
 * whose prompts are all cached never opens them. With a CUDA device (sf_encoder_set_device) umT5
 * runs on the GPU (stages/encode/t5_cuda.h): resident from the first miss on, or with low_memory
 * uploaded for each prompt that misses the cache and freed right after it.
 * Cache and device: the GPU's bf16 numerics give other bytes than the CPU's fp32 encoder, so a GPU
 * entry is keyed with the weights identity plus "|umt5-cuda-bf16": CPU and GPU runs never read each
 * other's entries (an output never depends on which device filled the cache first); CPU keys are
 * unchanged. Tested by tests/bats/sf-encode.bats. */
#ifndef SF_ENCODE_H
#define SF_ENCODE_H

#include "stages/encode/t5.h"
#include "stages/encode/t5_cuda.h"
#include "stages/encode/tokenizer.h"

typedef struct sf_encoder {
    char tok_path[4096], weights_path[4096], cache_dir[4096];
    int use_cache;              /* 0: --no-cache */
    int nthreads;
    sf_tokenizer *tok;          /* owned */
    sf_t5 *t5;                  /* owned; NULL until the first cache miss */
    int cuda_ordinal;           /* −1: umT5 on the CPU; N: on cuda:N */
    int low_memory;             /* with CUDA: free the GPU encoder after every prompt */
    sf_t5_gpu *gpu;             /* owned; NULL until needed (and between prompts with low_memory) */
    char tok_hex[65];           /* SHA-256 of the tokenizer file */
    char weights_id[4300];      /* sf_cache_weights_identity, computed on first use */
} sf_encoder;

/* One encoded prompt. emb: (seq_len, dim) f32 (rows ≥ n_tokens are 0); ids, mask: (seq_len). */
typedef struct sf_encoded {
    float *emb;
    int64_t *ids, *mask;
    int64_t seq_len, dim, n_tokens;
    char *cleaned;
    char key[65];
    int from_cache;
} sf_encoded;
void sf_encoded_free(sf_encoded *e);

/* Load the tokenizer (and hash it). cache_dir NULL or "" with use_cache = 0 is fine. */
sf_status sf_encoder_init(sf_encoder *enc, const char *tok_path, const char *weights_path, const char *cache_dir,
                          int use_cache, int nthreads, sf_err *err);
void sf_encoder_free(sf_encoder *enc);
/* Run umT5 on cuda:ordinal (−1: the CPU, the default); low_memory: free the GPU copy after each
 * prompt. Call after sf_encoder_init, before the first prompt. */
void sf_encoder_set_device(sf_encoder *enc, int cuda_ordinal, int low_memory);
/* Open the encoder weights now (and upload them to the GPU, sized for max_len tokens, unless
 * low_memory): what the first cache miss would do; --serve calls it so that "bound" means "ready". */
sf_status sf_encoder_load(sf_encoder *enc, int64_t max_len, sf_err *err);

/* Tokenize only: ids/mask (seq_len) int64 caller-provided. */
sf_status sf_encoder_tokens(sf_encoder *enc, const char *prompt, size_t len, int64_t seq_len, int64_t *ids,
                            int64_t *mask, int64_t *n_tokens, sf_err *err);

/* Full pipeline for one prompt (prompt: len bytes, need not be NUL-terminated). */
/* The longest prompt taken, in bytes: the cleaned prompt travels as the "prompt" meta string of
 * its prompt_embeds message, and all of a message's meta strings share SF_WIRE_ARENA (32 KiB) —
 * half of it leaves room for the rest. 512 tokens need far less. Checked before any work
 * (sf-encode checks every prompt before loading the encoder; sf_encoder_run again). */
#define SF_ENCODE_MAX_PROMPT 16384
sf_status sf_encoder_check_prompt(const char *prompt, size_t len, sf_err *err);

sf_status sf_encoder_run(sf_encoder *enc, const char *prompt, size_t len, int64_t seq_len, sf_encoded *out,
                         sf_err *err);

#endif
