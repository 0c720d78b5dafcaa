/* cache.c — content-addressed embedding cache for sf-encode, plus a small SHA-256 (FIPS 180-4).
 *
 * Mirrors no reference module (see cache.h for the entry format and the key). Tested by
 * tests/unit/test_t5.c (sha256 vectors, put/get round trip, truncated and corrupted entries
 * repaired) and tests/bats/sf-encode.bats (second run hits without loading the encoder). */
#define _DEFAULT_SOURCE /* realpath, st_mtim */
#define _POSIX_C_SOURCE 200809L
#include "cache.h"
#include "tfile.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_FORMAT "sfpipe-embed-v1"

/* ---------- SHA-256 ---------- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t ror(uint32_t x, int n) {
    return x >> n | x << (32 - n);
}

static void sha_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void sf_sha256_init(sf_sha256 *s) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->len = 0;
    s->nbuf = 0;
}

void sf_sha256_update(sf_sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->len += n;
    while (n) {
        if (s->nbuf == 0 && n >= 64) {
            sha_block(s->h, p);
            p += 64, n -= 64;
            continue;
        }
        size_t k = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, k);
        s->nbuf += k, p += k, n -= k;
        if (s->nbuf == 64) sha_block(s->h, s->buf), s->nbuf = 0;
    }
}

void sf_sha256_final(sf_sha256 *s, uint8_t out[32]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80, z = 0, lenb[8];
    sf_sha256_update(s, &pad, 1);
    while (s->nbuf != 56) sf_sha256_update(s, &z, 1);
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sf_sha256_update(s, lenb, 8);
    for (int i = 0; i < 8; i++)
        out[4 * i] = (uint8_t)(s->h[i] >> 24), out[4 * i + 1] = (uint8_t)(s->h[i] >> 16),
                out[4 * i + 2] = (uint8_t)(s->h[i] >> 8), out[4 * i + 3] = (uint8_t)s->h[i];
}

void sf_sha256_hex(const uint8_t d[32], char hex[65]) {
    static const char x[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) hex[2 * i] = x[d[i] >> 4], hex[2 * i + 1] = x[d[i] & 15];
    hex[64] = 0;
}

sf_status sf_sha256_file(const char *path, uint8_t out[32], sf_err *err) {
    sf_mmap m = {0};
    sf_status st = sf_mmap_open(&m, path, err);
    if (st) return st;
    sf_sha256 s;
    sf_sha256_init(&s);
    sf_sha256_update(&s, m.data, m.len);
    sf_sha256_final(&s, out);
    sf_mmap_close(&m);
    return SF_OK;
}

/* ---------- keys and paths ---------- */

sf_status sf_cache_default_dir(char *buf, size_t n, sf_err *err) {
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int k;
    if (x && *x) k = snprintf(buf, n, "%s/sfpipe/embeds", x);
    else if (home && *home) k = snprintf(buf, n, "%s/.cache/sfpipe/embeds", home);
    else return sf_fail(err, SF_E_ARG, "no cache folder: set XDG_CACHE_HOME or HOME, or pass --cache-dir");
    if (k < 0 || (size_t)k >= n) return sf_fail(err, SF_E_ARG, "cache folder path too long");
    return SF_OK;
}

sf_status sf_cache_weights_identity(const char *path, char *buf, size_t n, sf_err *err) {
    struct stat sb;
    char real[PATH_MAX];
    if (stat(path, &sb) != 0) return sf_fail(err, SF_E_IO, "cannot stat %s: %s", path, strerror(errno));
    if (!realpath(path, real)) snprintf(real, sizeof real, "%s", path);
    int k = snprintf(buf, n, "%s|%lld|%lld.%09ld", real, (long long)sb.st_size, (long long)sb.st_mtim.tv_sec,
                     (long)sb.st_mtim.tv_nsec);
    if (k < 0 || (size_t)k >= n) return sf_fail(err, SF_E_ARG, "weights path too long");
    return SF_OK;
}

void sf_cache_key(const char *tok_hex, const char *weights_id, const char *cleaned, int64_t seq_len, char key[65]) {
    sf_sha256 s;
    uint8_t d[32];
    char sl[32];
    snprintf(sl, sizeof sl, "%lld", (long long)seq_len);
    const char *parts[5] = {CACHE_FORMAT, tok_hex, weights_id, cleaned, sl};
    sf_sha256_init(&s);
    for (int i = 0; i < 5; i++) sf_sha256_update(&s, parts[i], strlen(parts[i]) + 1); /* with the NUL */
    sf_sha256_final(&s, d);
    sf_sha256_hex(d, key);
}

static int entry_path(char *buf, size_t n, const char *dir, const char *key) {
    int k = snprintf(buf, n, "%s/%s.safetensors", dir, key);
    return k > 0 && (size_t)k < n;
}

static void payload_digest(const float *emb, size_t n_emb, const int64_t *ids, const int64_t *mask, size_t L,
                           char hex[65]) {
    sf_sha256 s;
    uint8_t d[32];
    sf_sha256_init(&s);
    sf_sha256_update(&s, emb, n_emb * sizeof *emb);
    sf_sha256_update(&s, ids, L * sizeof *ids);
    sf_sha256_update(&s, mask, L * sizeof *mask);
    sf_sha256_final(&s, d);
    sf_sha256_hex(d, hex);
}

void sf_cache_entry_free(sf_cache_entry *e) {
    free(e->emb);
    free(e->ids);
    free(e->mask);
    memset(e, 0, sizeof *e);
}

/* Validate an open entry; fills e on success, returns a reason string on failure. */
static const char *validate(const sf_tfile *tf, const char *key, int64_t seq_len, sf_cache_entry *e) {
    const char *fmt = sf_tfile_meta(tf, "format"), *k = sf_tfile_meta(tf, "key");
    const char *nt = sf_tfile_meta(tf, "n_tokens"), *sum = sf_tfile_meta(tf, "payload_sha256");
    if (!fmt || strcmp(fmt, CACHE_FORMAT) != 0) return "not an sfpipe embedding entry";
    if (!k || strcmp(k, key) != 0) return "key mismatch";
    const sf_tensor *te = sf_tfile_get(tf, "emb"), *ti = sf_tfile_get(tf, "ids"), *tm = sf_tfile_get(tf, "mask");
    if (!te || !ti || !tm || te->dtype != SF_F32 || ti->dtype != SF_I64 || tm->dtype != SF_I64) return "bad tensors";
    if (te->ndim != 2 || te->shape[0] != seq_len || te->shape[1] < 1 || ti->ndim != 1 || ti->shape[0] != seq_len ||
        tm->ndim != 1 || tm->shape[0] != seq_len)
        return "bad shapes";
    char *endp = NULL;
    long long n = nt ? strtoll(nt, &endp, 10) : 0;
    if (!nt || *endp || n < 1 || n > seq_len) return "bad n_tokens";
    size_t ne = (size_t)seq_len * (size_t)te->shape[1];
    e->emb = malloc(ne * sizeof *e->emb);
    e->ids = malloc((size_t)seq_len * sizeof *e->ids);
    e->mask = malloc((size_t)seq_len * sizeof *e->mask);
    if (!e->emb || !e->ids || !e->mask) return "out of memory";
    sf_tensor_to_f32(te, e->emb);
    sf_tensor_copy_contiguous(ti, e->ids);
    sf_tensor_copy_contiguous(tm, e->mask);
    char hex[65];
    payload_digest(e->emb, ne, e->ids, e->mask, (size_t)seq_len, hex);
    if (!sum || strcmp(sum, hex) != 0) return "payload checksum mismatch";
    for (int64_t i = 0; i < seq_len; i++)
        if (e->mask[i] != (i < n)) return "mask inconsistent with n_tokens";
    e->dim = te->shape[1], e->seq_len = seq_len, e->n_tokens = n;
    return NULL;
}

sf_status sf_cache_get(const char *dir, const char *key, int64_t seq_len, sf_cache_entry *e, int *hit, sf_err *err) {
    char path[4200];
    struct stat sb;
    memset(e, 0, sizeof *e);
    *hit = 0;
    if (!entry_path(path, sizeof path, dir, key)) return sf_fail(err, SF_E_ARG, "cache folder path too long");
    if (stat(path, &sb) != 0) return SF_OK; /* miss */
    sf_tfile *tf = NULL;
    sf_err e2;
    const char *why = NULL;
    if (sf_tfile_open(path, &tf, &e2) != SF_OK) why = e2.msg;
    else why = validate(tf, key, seq_len, e);
    if (why) {
        sf_warn("cache entry %s is invalid (%s); removing it and recomputing", path, why);
        sf_cache_entry_free(e);
        unlink(path);
    } else {
        *hit = 1;
    }
    sf_tfile_destroy(&tf);
    return SF_OK;
}

static sf_status mkdir_p(const char *dir, sf_err *err) {
    char tmp[4096];
    int k = snprintf(tmp, sizeof tmp, "%s", dir);
    if (k < 0 || (size_t)k >= sizeof tmp) return sf_fail(err, SF_E_ARG, "cache folder path too long");
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return sf_fail(err, SF_E_IO, "cannot create %s: %s", tmp, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return sf_fail(err, SF_E_IO, "%s is not a folder", dir);
    return SF_OK;
}

sf_status sf_cache_put(const char *dir, const char *key, const char *cleaned, const char *tok_hex,
                       const char *weights_id, int64_t seq_len, int64_t dim, const float *emb, const int64_t *ids,
                       const int64_t *mask, int64_t n_tokens, sf_err *err) {
    char path[4200], hex[65], nt[32], sl[32];
    sf_status st = mkdir_p(dir, err);
    if (st) return st;
    if (!entry_path(path, sizeof path, dir, key)) return sf_fail(err, SF_E_ARG, "cache folder path too long");
    payload_digest(emb, (size_t)seq_len * (size_t)dim, ids, mask, (size_t)seq_len, hex);
    snprintf(nt, sizeof nt, "%lld", (long long)n_tokens);
    snprintf(sl, sizeof sl, "%lld", (long long)seq_len);
    const char *meta[] = {"format", CACHE_FORMAT, "key", key, "prompt", cleaned, "n_tokens", nt, "seq_len", sl,
                          "tokenizer", tok_hex, "weights", weights_id, "payload_sha256", hex};
    int64_t se[2] = {seq_len, dim}, si[1] = {seq_len};
    sf_tensor_entry ents[3] = {
        {"emb", sf_tensor_view((void *)emb, SF_F32, 2, se)},
        {"ids", sf_tensor_view((void *)ids, SF_I64, 1, si)},
        {"mask", sf_tensor_view((void *)mask, SF_I64, 1, si)},
    };
    return sf_safetensors_write(path, ents, 3, meta, sizeof meta / sizeof meta[0] / 2, err);
}

static int is_key_name(const char *name) {
    size_t n = strlen(name);
    if (n != 64 + strlen(".safetensors") || strcmp(name + 64, ".safetensors") != 0) return 0;
    for (int i = 0; i < 64; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f'))) return 0;
    return 1;
}

sf_status sf_cache_list(const char *dir, FILE *out, sf_err *err) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) {
            fprintf(out, "# %s: empty (no folder)\n", dir);
            return SF_OK;
        }
        return sf_fail(err, SF_E_IO, "cannot read %s: %s", dir, strerror(errno));
    }
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(d))) {
        if (!is_key_name(de->d_name)) continue;
        char path[4200], key[65];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        memcpy(key, de->d_name, 64);
        key[64] = 0;
        if (stat(path, &sb) != 0) continue;
        sf_tfile *tf = NULL;
        sf_err e2;
        n++;
        if (sf_tfile_open(path, &tf, &e2) != SF_OK) {
            fprintf(out, "%s\tINVALID: %s\n", key, e2.msg);
            continue;
        }
        const char *sl = sf_tfile_meta(tf, "seq_len");
        sf_cache_entry e = {0};
        const char *why = validate(tf, key, sl ? strtoll(sl, NULL, 10) : 0, &e);
        if (why) fprintf(out, "%s\tINVALID: %s\n", key, why);
        else
            fprintf(out, "%s\t%lld tokens\t[%lld, %lld]\t%lld bytes\t%s\n", key, (long long)e.n_tokens,
                    (long long)e.seq_len, (long long)e.dim, (long long)sb.st_size, sf_tfile_meta(tf, "prompt"));
        sf_cache_entry_free(&e);
        sf_tfile_destroy(&tf);
    }
    closedir(d);
    fprintf(out, "# %zu entries in %s\n", n, dir);
    return SF_OK;
}
