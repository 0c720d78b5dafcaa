/* tfile.c — container sniffing, entry list and O(1) name index shared by all readers.
 * Tested by tests/unit/test_formats.c. */
#define _POSIX_C_SOURCE 200809L
#include "tfile.h"
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

sf_tfile *sf_tfile_new_empty(const char *path) {
    sf_tfile *tf = calloc(1, sizeof *tf);
    if (!tf) return NULL;
    tf->path = strdup(path ? path : "");
    if (!tf->path) {
        free(tf);
        return NULL;
    }
    return tf;
}

static int index_insert(size_t *index, size_t cap, const sf_tensor_entry *entries, size_t ei) {
    size_t mask = cap - 1, h = (size_t)hash_str(entries[ei].name) & mask;
    while (index[h]) {
        if (strcmp(entries[index[h] - 1].name, entries[ei].name) == 0) return 0;
        h = (h + 1) & mask;
    }
    index[h] = ei + 1;
    return 1;
}

sf_status sf_tfile_add(sf_tfile *tf, const char *name, const sf_tensor *t, sf_err *err) {
    size_t nl = strlen(name);
    if (!nl || !sf_utf8_valid(name, nl, 0))
        return sf_fail(err, SF_E_FORMAT, "%s: tensor name '%.64s' is empty, not UTF-8 or holds control characters",
                       tf->path, name);
    if (tf->n == tf->cap) {
        size_t nc = tf->cap ? tf->cap * 2 : 64;
        sf_tensor_entry *ne = realloc(tf->entries, nc * sizeof *ne);
        if (!ne) return sf_fail(err, SF_E_NOMEM, "out of memory");
        tf->entries = ne;
        tf->cap = nc;
    }
    if ((tf->n + 1) * 2 > tf->index_cap) {
        size_t nc = tf->index_cap ? tf->index_cap * 2 : 128;
        size_t *ni = calloc(nc, sizeof *ni);
        if (!ni) return sf_fail(err, SF_E_NOMEM, "out of memory");
        for (size_t i = 0; i < tf->n; i++) index_insert(ni, nc, tf->entries, i);
        free(tf->index);
        tf->index = ni;
        tf->index_cap = nc;
    }
    sf_tensor_entry *e = &tf->entries[tf->n];
    e->name = strdup(name);
    if (!e->name) return sf_fail(err, SF_E_NOMEM, "out of memory");
    e->t = *t;
    if (!index_insert(tf->index, tf->index_cap, tf->entries, tf->n)) {
        free(e->name);
        return sf_fail(err, SF_E_FORMAT, "%s: duplicate tensor name '%s'", tf->path, name);
    }
    tf->n++;
    return SF_OK;
}

const sf_tensor_entry *sf_tfile_find(const sf_tfile *tf, const char *name) {
    if (!tf->index_cap) return NULL;
    size_t mask = tf->index_cap - 1, h = (size_t)hash_str(name) & mask;
    while (tf->index[h]) {
        const sf_tensor_entry *e = &tf->entries[tf->index[h] - 1];
        if (strcmp(e->name, name) == 0) return e;
        h = (h + 1) & mask;
    }
    return NULL;
}

const sf_tensor *sf_tfile_get(const sf_tfile *tf, const char *name) {
    const sf_tensor_entry *e = sf_tfile_find(tf, name);
    return e ? &e->t : NULL;
}

const char *sf_tfile_meta(const sf_tfile *tf, const char *key) {
    for (size_t i = 0; i < tf->n_meta; i++)
        if (strcmp(tf->meta_keys[i], key) == 0) return tf->meta_vals[i];
    return NULL;
}

sf_status sf_tfile_open(const char *path, sf_tfile **out, sf_err *err) {
    *out = NULL;
    sf_tfile *tf = sf_tfile_new_empty(path);
    if (!tf) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_status s = sf_mmap_open(&tf->map, path, err);
    if (s) goto fail;
    if (tf->map.len >= 4 && memcmp(tf->map.data, "PK\x03\x04", 4) == 0) {
        tf->kind = SF_TFILE_TORCH;
        s = sf_torch_read(tf, err);
    } else if (tf->map.len >= 3 && tf->map.data[0] == 0x80 && tf->map.data[1] <= 5 && tf->map.data[2] == 0x8a) {
        /* legacy torch.save starts "\x80\x02\x8a\x0a" (PROTO 2, LONG1 magic number); a bare 0x80
         * first byte is also a safetensors header length ≡ 0x80 (mod 256), so check more bytes */
        s = sf_fail(err, SF_E_UNSUPPORTED,
                    "%s: legacy (non-zip) torch pickle file; re-save it with torch>=1.6 or convert it", path);
    } else {
        tf->kind = SF_TFILE_SAFETENSORS;
        s = sf_safetensors_read(tf, err);
    }
    if (s) goto fail;
    *out = tf;
    return SF_OK;
fail:
    sf_tfile_destroy(&tf);
    return s;
}

void sf_tfile_destroy(sf_tfile **ptf) {
    sf_tfile *tf = *ptf;
    if (!tf) return;
    for (size_t i = 0; i < tf->n; i++) {
        free(tf->entries[i].name);
        sf_tensor_free(&tf->entries[i].t);
    }
    free(tf->entries);
    free(tf->index);
    for (size_t i = 0; i < tf->n_meta; i++) {
        free(tf->meta_keys[i]);
        free(tf->meta_vals[i]);
    }
    free(tf->meta_keys);
    free(tf->meta_vals);
    sf_py_free(tf->root);
    sf_mmap_close(&tf->map);
    free(tf->path);
    free(tf);
    *ptf = NULL;
}

void sf_split_file_arg(const char *arg, char *path, size_t path_n, const char **name_out) {
    *name_out = NULL;
    snprintf(path, path_n, "%s", arg);
    const char *colon = strrchr(arg, ':');
    if (!colon) return;
    struct stat st;
    if (stat(arg, &st) == 0) return; /* the whole thing is a file */
    size_t n = (size_t)(colon - arg);
    if (n >= path_n) return;
    memcpy(path, arg, n);
    path[n] = 0;
    *name_out = colon + 1;
}
