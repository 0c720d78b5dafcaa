/* encode.c — one prompt through sf-encode: clean + tokenize, cache, umT5 (see encode.h).
 *
 * Mirrors utils/wan_wrapper.py WanTextEncoder.forward (tokenizer call with seq_len 512,
 * T5 encoder, rows past the real length zeroed) and adds the embedding cache.
 * Tested by tests/bats/sf-encode.bats (golden embeddings, cache hits without loading the
 * encoder, corrupt entries repaired). */
#include "encode.h"
#include "cache.h"
#include "device.h"
#include "parallel.h"

#include <stdlib.h>
#include <string.h>

void sf_encoded_free(sf_encoded *e) {
    free(e->emb);
    free(e->ids);
    free(e->mask);
    free(e->cleaned);
    memset(e, 0, sizeof *e);
}

static int copy_str(char *dst, size_t n, const char *s) {
    size_t k = strlen(s);
    if (k >= n) return 0;
    memcpy(dst, s, k + 1);
    return 1;
}

sf_status sf_encoder_init(sf_encoder *enc, const char *tok_path, const char *weights_path, const char *cache_dir,
                          int use_cache, int nthreads, sf_err *err) {
    memset(enc, 0, sizeof *enc);
    enc->cuda_ordinal = -1;
    if (!copy_str(enc->tok_path, sizeof enc->tok_path, tok_path) ||
        !copy_str(enc->weights_path, sizeof enc->weights_path, weights_path) ||
        !copy_str(enc->cache_dir, sizeof enc->cache_dir, cache_dir ? cache_dir : ""))
        return sf_fail(err, SF_E_ARG, "path too long");
    enc->use_cache = use_cache && cache_dir && *cache_dir;
    enc->nthreads = nthreads;
    sf_status st = sf_tokenizer_load(tok_path, &enc->tok, err);
    if (st == SF_E_UNSUPPORTED) /* a tokenizer.json of another kind: say how to take the SentencePiece file */
        sf_fail(err, st, "%s (--tokenizer with the folder's spiece.model uses SentencePiece instead)", err->msg);
    if (st) return st;
    if (enc->use_cache) {
        uint8_t d[32];
        if ((st = sf_sha256_file(tok_path, d, err))) goto fail;
        sf_sha256_hex(d, enc->tok_hex);
    }
    return SF_OK;
fail:
    sf_encoder_free(enc);
    return st;
}

void sf_encoder_free(sf_encoder *enc) {
    sf_tokenizer_destroy(&enc->tok);
    sf_t5_cuda_destroy(&enc->gpu);
    sf_t5_destroy(&enc->t5);
}

/* Upload the opened weights to the GPU (once; or, with low_memory, a streaming encoder per prompt). */
static sf_status load_gpu(sf_encoder *enc, int64_t max_len, sf_err *err) {
    double t0 = sf_now();
    char desc[256] = "";
    sf_err e2 = {{0}};
    sf_cuda_describe(enc->cuda_ordinal, desc, sizeof desc, &e2);
    /* --low-memory: one layer on the device at a time, streamed from the mapped weights per prompt */
    sf_status st = enc->low_memory ? sf_t5_cuda_new_streaming(enc->t5, enc->cuda_ordinal, max_len, &enc->gpu, err)
                                   : sf_t5_cuda_new(enc->t5, enc->cuda_ordinal, max_len, &enc->gpu, err);
    if (st) return st;
    sf_info("umT5 on cuda:%d (%s): %.2f GiB of bf16 weights%s + %.2f GiB of activations for %lld tokens (%.2f s)",
            enc->cuda_ordinal, desc, sf_t5_cuda_weight_bytes(enc->gpu) / 1073741824.0,
            enc->low_memory ? " (one layer at a time: --low-memory)" : "",
            (sf_t5_cuda_bytes(enc->gpu) - sf_t5_cuda_weight_bytes(enc->gpu)) / 1073741824.0, (long long)max_len,
            sf_now() - t0);
    return SF_OK;
}

void sf_encoder_set_device(sf_encoder *enc, int cuda_ordinal, int low_memory) {
    enc->cuda_ordinal = cuda_ordinal < 0 ? -1 : cuda_ordinal;
    enc->low_memory = low_memory && cuda_ordinal >= 0;
}

sf_status sf_encoder_load(sf_encoder *enc, int64_t max_len, sf_err *err) {
    sf_status st;
    if (!enc->t5) {
        double t0 = sf_now();
        sf_info("loading umT5 encoder %s", enc->weights_path);
        if ((st = sf_t5_open(enc->weights_path, enc->nthreads, &enc->t5, err))) return st;
        const sf_t5_config *c = &enc->t5->cfg;
        sf_info("umT5: %lld layers, dim %lld, %lld heads, ffn %lld, vocab %lld (%.2f s)", (long long)c->num_layers,
                (long long)c->dim, (long long)c->num_heads, (long long)c->dim_ffn, (long long)c->vocab,
                sf_now() - t0);
    }
    if (enc->cuda_ordinal >= 0 && !enc->gpu && !enc->low_memory) return load_gpu(enc, max_len, err);
    return SF_OK;
}

sf_status sf_encoder_tokens(sf_encoder *enc, const char *prompt, size_t len, int64_t seq_len, int64_t *ids,
                            int64_t *mask, int64_t *n_tokens, sf_err *err) {
    size_t n = 0;
    sf_status st = sf_tokenizer_prompt(enc->tok, prompt, len, (size_t)seq_len, ids, mask, &n, NULL, err);
    *n_tokens = (int64_t)n;
    return st;
}

sf_status sf_encoder_check_prompt(const char *prompt, size_t len, sf_err *err) {
    (void)prompt;
    if (len > SF_ENCODE_MAX_PROMPT)
        return sf_fail(err, SF_E_ARG, "%zu bytes of prompt text; at most %d are taken (the embeddings' wire message "
                       "carries the prompt; 512 tokens need far less)", len, SF_ENCODE_MAX_PROMPT);
    return SF_OK;
}

sf_status sf_encoder_run(sf_encoder *enc, const char *prompt, size_t len, int64_t seq_len, sf_encoded *out,
                         sf_err *err) {
    sf_status st;
    size_t nt = 0;
    memset(out, 0, sizeof *out);
    if (seq_len < 1) return sf_fail(err, SF_E_ARG, "text length must be at least 1");
    if ((st = sf_encoder_check_prompt(prompt, len, err))) return st;
    out->seq_len = seq_len;
    out->ids = sf_calloc2((size_t)seq_len, sizeof *out->ids);
    out->mask = sf_calloc2((size_t)seq_len, sizeof *out->mask);
    if (!out->ids || !out->mask) { st = sf_fail(err, SF_E_NOMEM, "out of memory"); goto fail; }
    if ((st = sf_tokenizer_prompt(enc->tok, prompt, len, (size_t)seq_len, out->ids, out->mask, &nt, &out->cleaned,
                                  err)))
        goto fail;
    out->n_tokens = (int64_t)nt;
    if (enc->use_cache) {
        if (!enc->weights_id[0]) {
            if ((st = sf_cache_weights_identity(enc->weights_path, enc->weights_id, sizeof enc->weights_id, err)))
                goto fail;
            /* other numerics, other bytes: GPU entries get their own keys (encode.h), and so do the
             * CPU's bf16 and exact modes (kernels/parallel.h; the exact mode's bits are reproducible) */
            size_t k = strlen(enc->weights_id);
            const sf_cpu_mode cm = sf_cpu_mode_now();
            const char *tag = enc->cuda_ordinal >= 0 ? "|umt5-cuda-bf16"
                              : cm == SF_CPU_BF16    ? "|umt5-cpu-bf16"
                              : cm == SF_CPU_EXACT   ? "|umt5-cpu-exact"
                                                     : NULL;
            if (tag) {
                if (k + strlen(tag) >= sizeof enc->weights_id) {
                    st = sf_fail(err, SF_E_ARG, "weights path too long for the cache key");
                    goto fail;
                }
                memcpy(enc->weights_id + k, tag, strlen(tag) + 1);
            }
        }
        sf_cache_key(enc->tok_hex, enc->weights_id, out->cleaned, seq_len, out->key);
        sf_cache_entry ce;
        int hit = 0;
        if ((st = sf_cache_get(enc->cache_dir, out->key, seq_len, &ce, &hit, err))) goto fail;
        if (hit) {
            int same = ce.n_tokens == out->n_tokens && memcmp(ce.ids, out->ids, (size_t)seq_len * 8) == 0;
            if (same) {
                out->emb = ce.emb, ce.emb = NULL;
                out->dim = ce.dim;
                out->from_cache = 1;
                sf_cache_entry_free(&ce);
                sf_info("cache hit %.16s (%lld tokens)%s", out->key, (long long)out->n_tokens,
                        enc->t5 ? "" : " (encoder not loaded)");
                return SF_OK;
            }
            sf_warn("cache entry %.16s has other token ids than the tokenizer gives; recomputing", out->key);
            sf_cache_entry_free(&ce);
        }
    }
    if ((st = sf_encoder_load(enc, seq_len, err))) goto fail;
    if (enc->cuda_ordinal >= 0 && !enc->gpu && (st = load_gpu(enc, seq_len, err))) goto fail;
    out->dim = enc->t5->cfg.dim;
    size_t ne;
    if (!sf_mul_ok((size_t)seq_len, (size_t)out->dim, &ne) || !(out->emb = sf_calloc2(ne, sizeof *out->emb))) {
        st = sf_fail(err, SF_E_NOMEM, "out of memory (embeddings)");
        goto fail;
    }
    double t0 = sf_now();
    if (enc->gpu) {
        st = sf_t5_cuda_encode(enc->gpu, out->ids, seq_len, out->n_tokens, out->emb, NULL, err);
        if (enc->low_memory) sf_t5_cuda_destroy(&enc->gpu); /* --low-memory: give the GPU back */
    } else {
        st = sf_t5_encode(enc->t5, out->ids, seq_len, out->n_tokens, out->emb, NULL, err);
    }
    if (st) goto fail;
    sf_info("encoded %lld tokens in %.3f s%s", (long long)out->n_tokens, sf_now() - t0,
            enc->cuda_ordinal >= 0 ? (enc->low_memory ? " on the GPU (freed again: --low-memory)" : " on the GPU") : "");
    if (enc->use_cache) {
        sf_err e2;
        if (sf_cache_put(enc->cache_dir, out->key, out->cleaned, enc->tok_hex, enc->weights_id, seq_len, out->dim,
                         out->emb, out->ids, out->mask, out->n_tokens, &e2))
            sf_warn("could not write the cache entry: %s", e2.msg);
        else
            sf_debug("cached %s", out->key);
    }
    return SF_OK;
fail:
    sf_encoded_free(out);
    return st;
}
