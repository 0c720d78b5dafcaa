/* cache.h — sf-encode's content-addressed embedding cache (SHA-256 keys: libsodium).
 *
 * Mirrors no reference module (the reference re-encodes every prompt). An entry is one
 * safetensors file <dir>/<key>.safetensors holding `emb` (seq_len, dim) f32, `ids` (seq_len)
 * i64 and `mask` (seq_len) i64, with metadata: format "sfpipe-embed-v1", key, prompt (the
 * cleaned text), n_tokens, seq_len, tokenizer (sha256 of the tokenizer file), weights (identity),
 * payload_sha256. key = SHA-256 over (format tag, tokenizer digest, weights identity, cleaned
 * prompt, seq_len) with NUL separators. Writes are atomic (temp file + rename: concurrent
 * writers of the same key each rename a complete file). Reads validate everything and treat a
 * bad entry (truncated, corrupt, wrong key/shape/checksum) as a miss and delete it, so the
 * next put repairs it. Tested by tests/unit/test_t5.c (cache_*) and tests/bats/sf-encode.bats. */
#ifndef SF_ENCODE_CACHE_H
#define SF_ENCODE_CACHE_H

#include <stdio.h>

#include "sf.h"

/* Lowercase hex of a SHA-256 digest. The digests themselves come from libsodium
 * (crypto_hash_sha256). */
void sf_sha256_hex(const uint8_t d[32], char hex[65]);
/* SHA-256 of a whole file. */
sf_status sf_sha256_file(const char *path, uint8_t out[32], sf_err *err);

/* Default cache folder: $XDG_CACHE_HOME/sfpipe/embeds, else $HOME/.cache/sfpipe/embeds. */
sf_status sf_cache_default_dir(char *buf, size_t n, sf_err *err);

/* Identity of the encoder weights without opening them: "realpath|size|mtime_ns" from stat. */
sf_status sf_cache_weights_identity(const char *path, char *buf, size_t n, sf_err *err);

/* Cache key (64 hex chars + NUL). tok_hex: hex SHA-256 of the tokenizer file. */
void sf_cache_key(const char *tok_hex, const char *weights_id, const char *cleaned, int64_t seq_len, char key[65]);

/* One looked-up entry. emb: (seq_len, dim) f32, owned (free). */
typedef struct sf_cache_entry {
    float *emb;
    int64_t dim, seq_len, n_tokens;
    int64_t *ids, *mask; /* (seq_len), owned */
} sf_cache_entry;
void sf_cache_entry_free(sf_cache_entry *e);

/* Look up key: *hit = 1 and e filled on a valid entry; *hit = 0 on a miss. A present but
 * invalid entry is logged (warn), removed, and reported as a miss. Errors only for a bad dir. */
sf_status sf_cache_get(const char *dir, const char *key, int64_t seq_len, sf_cache_entry *e, int *hit, sf_err *err);

/* Store an entry (creates dir with parents). emb: (seq_len, dim) f32; ids, mask: (seq_len). */
sf_status sf_cache_put(const char *dir, const char *key, const char *cleaned, const char *tok_hex,
                       const char *weights_id, int64_t seq_len, int64_t dim, const float *emb, const int64_t *ids,
                       const int64_t *mask, int64_t n_tokens, sf_err *err);

/* Print one line per entry: key, n_tokens, seq_len x dim, bytes, prompt (or "INVALID: why"). */
sf_status sf_cache_list(const char *dir, FILE *out, sf_err *err);

#endif
