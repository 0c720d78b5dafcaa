/* cache.c — content-addressed embedding cache for sf-encode; SHA-256 from libsodium.
 *
 * Mirrors no reference module (see cache.h for the entry format and the key). Tested by
 * tests/unit/test_t5.c (sha256 vectors, put/get round trip, truncated and corrupted entries
 * repaired) and tests/bats/sf-encode.bats (second run hits without loading the encoder). */
#define _DEFAULT_SOURCE /* realpath, st_mtim */
#define _XOPEN_SOURCE 700 /* nftw */
#define _POSIX_C_SOURCE 200809L
#include "cache.h"
#include "tfile.h"

#include <dirent.h>
#include <ftw.h>
#include <sodium.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_FORMAT "sfpipe-embed-v1"

/* ---------- SHA-256 (libsodium) ---------- */

/* libsodium asks for sodium_init() before anything else; it is idempotent and thread-safe, and
 * its SHA-256 does not depend on it succeeding (it only seeds the random generator). */
static void sha256_begin(crypto_hash_sha256_state *s) {
    int rc = sodium_init(); /* 0 first time, 1 after; -1 only matters for randomness */
    (void)rc;
    crypto_hash_sha256_init(s);
}

void sf_sha256_hex(const uint8_t d[32], char hex[65]) { sodium_bin2hex(hex, 65, d, 32); }

sf_status sf_sha256_file(const char *path, uint8_t out[32], sf_err *err) {
    sf_mmap m = {0};
    sf_status st = sf_mmap_open(&m, path, err);
    if (st) return st;
    crypto_hash_sha256_state s;
    sha256_begin(&s);
    crypto_hash_sha256_update(&s, m.data, m.len);
    crypto_hash_sha256_final(&s, out);
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
    crypto_hash_sha256_state s;
    uint8_t d[32];
    char sl[32];
    snprintf(sl, sizeof sl, "%lld", (long long)seq_len);
    const char *parts[5] = {CACHE_FORMAT, tok_hex, weights_id, cleaned, sl};
    sha256_begin(&s);
    for (int i = 0; i < 5; i++) /* with the NUL */
        crypto_hash_sha256_update(&s, (const unsigned char *)parts[i], strlen(parts[i]) + 1);
    crypto_hash_sha256_final(&s, d);
    sf_sha256_hex(d, key);
}

static int entry_path(char *buf, size_t n, const char *dir, const char *key) {
    int k = snprintf(buf, n, "%s/%s.safetensors", dir, key);
    return k > 0 && (size_t)k < n;
}

static void payload_digest(const float *emb, size_t n_emb, const int64_t *ids, const int64_t *mask, size_t L,
                           char hex[65]) {
    crypto_hash_sha256_state s;
    uint8_t d[32];
    sha256_begin(&s);
    crypto_hash_sha256_update(&s, (const unsigned char *)emb, n_emb * sizeof *emb);
    crypto_hash_sha256_update(&s, (const unsigned char *)ids, L * sizeof *ids);
    crypto_hash_sha256_update(&s, (const unsigned char *)mask, L * sizeof *mask);
    crypto_hash_sha256_final(&s, d);
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

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

/* Something not a regular file under an entry's name (a folder, a FIFO, a socket, a symlink):
 * never opened (a FIFO would hang the reader), removed — a folder with what it holds, never
 * following links — so that the entry is recomputed and written once, not warned about forever. */
static int repair_nonregular(const char *path, const char *why_prefix) {
    struct stat sb, lb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) return 0; /* a file (or a link to one): validated when read */
    if (lstat(path, &lb) != 0) return 0;                       /* nothing there */
    const char *what = S_ISDIR(lb.st_mode) ? "a folder" : S_ISFIFO(lb.st_mode) ? "a FIFO" : S_ISLNK(lb.st_mode) ? "a dangling or odd symlink"
                                                                                                       : "not a regular file";
    int rc = S_ISDIR(lb.st_mode) ? nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) : unlink(path);
    if (rc != 0) sf_warn("%scache entry %s is %s and cannot be removed (%s)", why_prefix, path, what, strerror(errno));
    else sf_warn("%scache entry %s was %s; removed it, recomputing", why_prefix, path, what);
    return 1;
}

sf_status sf_cache_get(const char *dir, const char *key, int64_t seq_len, sf_cache_entry *e, int *hit, sf_err *err) {
    char path[4200];
    struct stat sb;
    memset(e, 0, sizeof *e);
    *hit = 0;
    if (!entry_path(path, sizeof path, dir, key)) return sf_fail(err, SF_E_ARG, "cache folder path too long");
    if (lstat(path, &sb) != 0) return SF_OK; /* miss */
    if (repair_nonregular(path, "")) return SF_OK; /* a miss, repaired */
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

sf_status sf_cache_put(const char *dir, const char *key, const char *cleaned, const char *tok_hex,
                       const char *weights_id, int64_t seq_len, int64_t dim, const float *emb, const int64_t *ids,
                       const int64_t *mask, int64_t n_tokens, sf_err *err) {
    char path[4200], hex[65], nt[32], sl[32];
    sf_status st = sf_mkdir_p(dir, err);
    if (st) return st;
    if (!entry_path(path, sizeof path, dir, key)) return sf_fail(err, SF_E_ARG, "cache folder path too long");
    repair_nonregular(path, ""); /* written since the lookup: the atomic rename needs the name free */
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
        if (stat(path, &sb) != 0 && lstat(path, &sb) != 0) continue;
        sf_tfile *tf = NULL;
        sf_err e2;
        n++;
        if (!S_ISREG(sb.st_mode)) { /* listed, never opened (a FIFO would hang); sf-encode repairs it */
            fprintf(out, "%s\tINVALID: not a regular file (removed and recomputed by the next sf-encode of it)\n", key);
            continue;
        }
        if (sf_tfile_open(path, &tf, &e2) != SF_OK) {
            fprintf(out, "%s\tINVALID: %s\n", key, e2.msg); /* sf_fail escaped it */
            continue;
        }
        const char *sl = sf_tfile_meta(tf, "seq_len");
        sf_cache_entry e = {0};
        const char *why = validate(tf, key, sl ? strtoll(sl, NULL, 10) : 0, &e);
        if (why) fprintf(out, "%s\tINVALID: %s\n", key, why);
        else {
            char pr[1024]; /* the entry's text: control characters escaped */
            sf_escape_ctl(pr, sizeof pr, sf_tfile_meta(tf, "prompt") ? sf_tfile_meta(tf, "prompt") : "");
            fprintf(out, "%s\t%lld tokens\t[%lld, %lld]\t%lld bytes\t%s\n", key, (long long)e.n_tokens,
                    (long long)e.seq_len, (long long)e.dim, (long long)sb.st_size, pr);
        }
        sf_cache_entry_free(&e);
        sf_tfile_destroy(&tf);
    }
    closedir(d);
    fprintf(out, "# %zu entries in %s\n", n, dir);
    return SF_OK;
}
