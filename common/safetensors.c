/* safetensors.c — mmap reader and atomic writer for the safetensors format.
 *
 * Layout: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, ...,
 * "__metadata__": {str: str}}, then the data. Every offset is checked against the file size,
 * every byte count against dtype × shape; unknown dtypes are rejected; no tensor count cap.
 * Tested by tests/unit/test_formats.c and tests/bats/sf-tensor.bats. */
#define _POSIX_C_SOURCE 200809L
#include "tfile.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SF_ST_MAX_HEADER 100000000u /* the format's own limit: 100 MB (safetensors MAX_HEADER_SIZE) */

typedef struct span {
    uint64_t b, e;
    const char *name;
} span;

static int cmp_span(const void *x, const void *y) {
    const span *a = x, *b = y;
    if (a->b != b->b) return a->b < b->b ? -1 : 1;
    return a->e < b->e ? -1 : a->e > b->e;
}

/* A tensor entry is exactly {dtype, shape, data_offsets}, each once (cJSON keeps duplicates). */
static const char *entry_keys_bad(const cJSON *it) {
    int seen[3] = {0, 0, 0};
    static const char *keys[3] = {"dtype", "shape", "data_offsets"};
    const cJSON *f;
    cJSON_ArrayForEach(f, it) {
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (f->string && strcmp(f->string, keys[i]) == 0) k = i;
        if (k < 0) return "unknown field";
        if (seen[k]++) return "duplicate field";
    }
    return NULL;
}

static sf_status read_shape(const cJSON *arr, sf_tensor *t, const char *path, const char *name, sf_err *err) {
    if (!cJSON_IsArray(arr)) return sf_fail(err, SF_E_FORMAT, "%s: tensor '%s': shape is not an array", path, name);
    int nd = cJSON_GetArraySize(arr);
    if (nd > SF_MAX_DIMS)
        return sf_fail(err, SF_E_UNSUPPORTED, "%s: tensor '%s': rank %d > %d", path, name, nd, SF_MAX_DIMS);
    t->ndim = nd;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, arr) {
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9.0e15 ||
            d->valuedouble != (double)(int64_t)d->valuedouble)
            return sf_fail(err, SF_E_FORMAT, "%s: tensor '%s': bad dimension", path, name);
        t->shape[i++] = (int64_t)d->valuedouble;
    }
    sf_tensor_set_contiguous(t);
    return SF_OK;
}

sf_status sf_safetensors_read(sf_tfile *tf, sf_err *err) {
    const uint8_t *p = tf->map.data;
    size_t len = tf->map.len;
    const char *path = tf->path;
    if (len < 8) return sf_fail(err, SF_E_FORMAT, "%s: not a safetensors file (too short)", path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > SF_ST_MAX_HEADER || hlen > len - 8)
        return sf_fail(err, SF_E_FORMAT, "%s: not a safetensors file (header length %llu, file %zu bytes)", path,
                       (unsigned long long)hlen, len);
    if (hlen < 2 || p[8] != '{')
        return sf_fail(err, SF_E_FORMAT, "%s: not a safetensors file (header is not a JSON object)", path);
    /* the spec: UTF-8 JSON starting with '{', only trailing spaces (0x20) as padding */
    if (!sf_utf8_valid((const char *)p + 8, (size_t)hlen, 1))
        return sf_fail(err, SF_E_FORMAT, "%s: safetensors header is not UTF-8", path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sf_fail(err, SF_E_FORMAT, "%s: safetensors header is not valid JSON", path);
    }
    for (const char *q = end; q && q < (const char *)p + 8 + hlen; q++)
        if (*q != ' ') {
            cJSON_Delete(root);
            return sf_fail(err, SF_E_FORMAT, "%s: bytes after the safetensors JSON header (only space padding is allowed)",
                           path);
        }
    size_t data0 = 8 + (size_t)hlen, dlen = len - data0;
    sf_status s = SF_OK;
    const cJSON *it;
    int n_items = cJSON_GetArraySize(root), n_sp = 0;
    span *sp = calloc((size_t)(n_items > 0 ? n_items : 1), sizeof *sp);
    if (!sp) {
        cJSON_Delete(root);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    cJSON_ArrayForEach(it, root) {
        const char *name = it->string;
        if (!name) continue;
        if (strcmp(name, "__metadata__") == 0) {
            if (tf->meta_keys) {
                s = sf_fail(err, SF_E_FORMAT, "%s: duplicate __metadata__", path);
                goto done;
            }
            if (!cJSON_IsObject(it)) {
                s = sf_fail(err, SF_E_FORMAT, "%s: __metadata__ is not an object", path);
                goto done;
            }
            int nm = cJSON_GetArraySize(it);
            tf->meta_keys = calloc((size_t)nm + 1, sizeof(char *));
            tf->meta_vals = calloc((size_t)nm + 1, sizeof(char *));
            if (!tf->meta_keys || !tf->meta_vals) {
                s = sf_fail(err, SF_E_NOMEM, "out of memory");
                goto done;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, it) {
                if (!cJSON_IsString(m)) {
                    s = sf_fail(err, SF_E_FORMAT, "%s: __metadata__ value '%s' is not a string", path, m->string);
                    goto done;
                }
                if (!m->string || !sf_utf8_valid(m->string, strlen(m->string), 0) || sf_tfile_meta(tf, m->string)) {
                    s = sf_fail(err, SF_E_FORMAT, "%s: __metadata__ key '%.64s' is duplicate, not UTF-8 or holds control "
                                "characters", path, m->string ? m->string : "");
                    goto done;
                }
                tf->meta_keys[tf->n_meta] = strdup(m->string);
                tf->meta_vals[tf->n_meta] = strdup(m->valuestring);
                tf->n_meta++;
                if (!tf->meta_keys[tf->n_meta - 1] || !tf->meta_vals[tf->n_meta - 1]) {
                    s = sf_fail(err, SF_E_NOMEM, "out of memory");
                    goto done;
                }
            }
            continue;
        }
        if (!cJSON_IsObject(it)) {
            s = sf_fail(err, SF_E_FORMAT, "%s: tensor '%s': entry is not an object", path, name);
            goto done;
        }
        const char *bad = entry_keys_bad(it);
        if (bad) {
            s = sf_fail(err, SF_E_FORMAT, "%s: tensor '%.64s': %s (an entry holds dtype, shape and data_offsets once)",
                        path, name, bad);
            goto done;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(jd) || !jo || !js) {
            s = sf_fail(err, SF_E_FORMAT, "%s: tensor '%s': missing dtype, shape or data_offsets", path, name);
            goto done;
        }
        int dt = sf_dtype_from_name(jd->valuestring);
        if (dt < 0 || strcmp(jd->valuestring, sf_dtype_st_name((sf_dtype)dt)) != 0) {
            s = sf_fail(err, SF_E_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s'", path, name, jd->valuestring);
            goto done;
        }
        sf_tensor t;
        memset(&t, 0, sizeof t);
        t.dtype = (sf_dtype)dt;
        t.device = -1;
        if ((s = read_shape(js, &t, path, name, err))) goto done;
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2) {
            s = sf_fail(err, SF_E_FORMAT, "%s: tensor '%s': data_offsets must be [begin, end]", path, name);
            goto done;
        }
        double b = cJSON_GetArrayItem(jo, 0)->valuedouble, e = cJSON_GetArrayItem(jo, 1)->valuedouble;
        if (!cJSON_IsNumber(cJSON_GetArrayItem(jo, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(jo, 1)) || b < 0 ||
            e < b || e > (double)dlen || b != (double)(uint64_t)b || e != (double)(uint64_t)e) {
            s = sf_fail(err, SF_E_FORMAT, "%s: tensor '%s': data_offsets [%.0f, %.0f] outside the %zu data bytes",
                        path, name, b, e, dlen);
            goto done;
        }
        int64_t numel = sf_tensor_numel(&t);
        size_t want = sf_tensor_nbytes(&t);
        if (numel < 0 || (numel > 0 && want == 0) || want != (size_t)(e - b)) {
            s = sf_fail(err, SF_E_FORMAT, "%s: tensor '%s': %zu data bytes do not match dtype %s and its shape",
                        path, name, (size_t)(e - b), jd->valuestring);
            goto done;
        }
        t.data = (void *)(p + data0 + (size_t)b);
        sp[n_sp++] = (span){(uint64_t)b, (uint64_t)e, name};
        if ((s = sf_tfile_add(tf, name, &t, err))) goto done;
    }
    /* the data area is tensors end to end: no overlap (aliased bytes), no hole or tail (a
     * polyglot file hiding other content), as the spec and its reference reader require */
    qsort(sp, (size_t)n_sp, sizeof *sp, cmp_span);
    uint64_t at = 0;
    for (int i = 0; i < n_sp; i++) {
        if (sp[i].b != at) {
            s = sf_fail(err, SF_E_FORMAT, "%s: tensor '%.64s' at data offset %llu %s (tensors must tile the data area)",
                        path, sp[i].name, (unsigned long long)sp[i].b, sp[i].b < at ? "overlaps the previous one"
                                                                               : "leaves a hole before it");
            goto done;
        }
        at = sp[i].e;
    }
    if (at != dlen) {
        s = sf_fail(err, SF_E_FORMAT, "%s: %llu data bytes after the last tensor (tensors must tile the data area)", path,
                    (unsigned long long)(dlen - at));
        goto done;
    }
done:
    free(sp);
    cJSON_Delete(root);
    return s;
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(const char *const *)x, *(const char *const *)y); }

/* The names and metadata the reader above would refuse, refused before anything is written: a tensor
 * name or metadata key that is empty (names only), not UTF-8, holds control characters or is repeated,
 * a tensor called __metadata__, a metadata value that is not UTF-8. */
static sf_status header_check(const char *path, const sf_tensor_entry *entries, size_t n, const char *const *meta_kv,
                              size_t n_meta, sf_err *err) {
    for (size_t i = 0; i < n; i++) {
        const char *nm = entries[i].name;
        if (!nm[0] || !sf_utf8_valid(nm, strlen(nm), 0) || !strcmp(nm, "__metadata__"))
            return sf_fail(err, SF_E_FORMAT, "%s: tensor name '%.64s' is empty, not UTF-8, holds control characters or "
                           "is __metadata__: no safetensors reader takes it", path, nm);
    }
    for (size_t i = 0; i < n_meta; i++) {
        const char *k = meta_kv[2 * i], *v = meta_kv[2 * i + 1];
        if (!sf_utf8_valid(k, strlen(k), 0))
            return sf_fail(err, SF_E_FORMAT, "%s: metadata key '%.64s' is not UTF-8 or holds control characters: no "
                           "safetensors reader takes it", path, k);
        if (!sf_utf8_valid(v, strlen(v), 1))
            return sf_fail(err, SF_E_FORMAT, "%s: metadata '%.64s' has a value that is not UTF-8: no safetensors reader "
                           "takes it", path, k);
    }
    const size_t counts[2] = {n, n_meta};
    for (int w = 0; w < 2; w++) { /* repeats: sorted, neighbours */
        const char **v = counts[w] > 1 ? malloc(counts[w] * sizeof *v) : NULL;
        if (counts[w] > 1 && !v) return sf_fail(err, SF_E_NOMEM, "out of memory");
        for (size_t i = 0; v && i < counts[w]; i++) v[i] = w ? meta_kv[2 * i] : entries[i].name;
        if (v) qsort(v, counts[w], sizeof *v, cmp_str);
        for (size_t i = 1; v && i < counts[w]; i++)
            if (!strcmp(v[i - 1], v[i])) {
                sf_status s = sf_fail(err, SF_E_FORMAT, "%s: %s '%.64s' is there twice: no safetensors reader takes it",
                                      path, w ? "metadata key" : "tensor name", v[i]);
                free(v);
                return s;
            }
        free(v);
    }
    return SF_OK;
}

sf_status sf_safetensors_write(const char *path, const sf_tensor_entry *entries, size_t n,
                               const char *const *meta_kv, size_t n_meta, sf_err *err) {
    sf_status s = header_check(path, entries, n, meta_kv, n_meta, err);
    if (s) return s;
    cJSON *root = cJSON_CreateObject();
    char *hdr = NULL;
    sf_atomic_file af = {0};
    if (!root) return sf_fail(err, SF_E_NOMEM, "out of memory");
    if (n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (size_t i = 0; m && i < n_meta; i++) cJSON_AddStringToObject(m, meta_kv[2 * i], meta_kv[2 * i + 1]);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const sf_tensor *t = &entries[i].t;
        if (t->device >= 0) {
            s = sf_fail(err, SF_E_ARG, "tensor '%s' is on a device; copy it to the host first", entries[i].name);
            goto fail;
        }
        if (t->dtype == SF_F64 || (unsigned)t->dtype >= SF_DTYPE_COUNT) {
            /* F64 is valid safetensors; keep it */
        }
        cJSON *o = cJSON_AddObjectToObject(root, entries[i].name);
        if (!o) {
            s = sf_fail(err, SF_E_FORMAT, "cannot add tensor '%s' (duplicate name?)", entries[i].name);
            goto fail;
        }
        cJSON_AddStringToObject(o, "dtype", sf_dtype_st_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        size_t nb = sf_tensor_nbytes(t);
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
    }
    hdr = cJSON_PrintUnformatted(root);
    if (!hdr) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto fail;
    }
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    if ((s = sf_atomic_open(&af, path, err))) goto fail;
    FILE *fp = af.fp;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    fwrite(le, 1, 8, fp);
    fwrite(hdr, 1, hl, fp);
    for (size_t i = hl; i < padded; i++) fputc(' ', fp);
    for (size_t i = 0; i < n; i++) {
        const sf_tensor *t = &entries[i].t;
        size_t nb = sf_tensor_nbytes(t);
        if (sf_tensor_is_contiguous(t)) {
            if (nb) fwrite(t->data, 1, nb, fp);
        } else {
            void *tmp = malloc(nb ? nb : 1);
            if (!tmp) {
                s = sf_fail(err, SF_E_NOMEM, "out of memory");
                goto fail;
            }
            sf_tensor_copy_contiguous(t, tmp);
            fwrite(tmp, 1, nb, fp);
            free(tmp);
        }
    }
    s = sf_atomic_commit(&af, err);
    cJSON_free(hdr);
    cJSON_Delete(root);
    return s;
fail:
    sf_atomic_abort(&af);
    if (hdr) cJSON_free(hdr);
    cJSON_Delete(root);
    return s;
}
