/* ptwrite.c — torch.save-compatible .pt writer (protocol 2 pickle in a STORED zip, ZIP64 as needed).
 *
 * Mirrors torch.serialization._save + PyTorchStreamWriter (caffe2/serialize/inline_container.cc):
 * members archive/data.pkl, archive/byteorder ("little"), archive/data/<n> (one contiguous
 * little-endian storage per tensor), archive/version ("3\n"); every member's data starts at a
 * multiple of 64 bytes (an "FB" padding record in the local extra field), CRC-32 (zlib) is filled in
 * after streaming each member (the local header is patched), and zip64 records are written for
 * members, offsets or counts that do not fit 32/16 bits. The pickle is what torch's protocol 2
 * pickler emits for dicts, lists, tuples, str, int, float, bool, None and tensors
 * (torch._utils._rebuild_tensor_v2 over a ('storage', torch.<T>Storage, key, 'cpu', numel)
 * persistent id). Tensor bytes are streamed straight to the file, never assembled in memory.
 * Tested by tests/unit/test_formats.c (round trips through our reader, forced zip64) and by hand
 * with torch.load (see /work/notes/torchio.md). */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define PW_MAX_DEPTH 256
#define ZIP_FB_ALIGN 64

/* ---- pickle emission ---------------------------------------------------------------------- */

typedef struct pw {
    uint8_t *b;
    size_t n, cap;
    const sf_tensor **tensors; /* storage key i = tensors[i] */
    size_t nt, tcap;
    uint64_t visits_left; /* sf_py_expand_budget: shared sub-trees cannot blow up the output */
    sf_err *err;
} pw;

static sf_status put(pw *w, const void *d, size_t k) {
    if (w->cap - w->n < k) {
        size_t nc = w->cap ? w->cap : 4096;
        while (nc - w->n < k) {
            if (nc > SIZE_MAX / 2) return sf_fail(w->err, SF_E_NOMEM, "out of memory");
            nc *= 2;
        }
        uint8_t *nb = realloc(w->b, nc);
        if (!nb) return sf_fail(w->err, SF_E_NOMEM, "out of memory");
        w->b = nb;
        w->cap = nc;
    }
    memcpy(w->b + w->n, d, k);
    w->n += k;
    return SF_OK;
}

static sf_status op(pw *w, uint8_t o) { return put(w, &o, 1); }

static sf_status put_le(pw *w, uint64_t v, int bytes) {
    uint8_t b[8];
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
    return put(w, b, (size_t)bytes);
}

static sf_status emit_int(pw *w, int64_t v) {
    sf_status s;
    if (v >= 0 && v < 256) {
        if (!(s = op(w, 'K'))) s = put_le(w, (uint64_t)v, 1);
    } else if (v >= 0 && v < 65536) {
        if (!(s = op(w, 'M'))) s = put_le(w, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        if (!(s = op(w, 'J'))) s = put_le(w, (uint64_t)(uint32_t)(int32_t)v, 4);
    } else { /* LONG1 with the shortest two's complement form, as Python writes it */
        int n = 8;
        while (n > 1) {
            int64_t lo = -((int64_t)1 << (8 * (n - 1) - 1)), hi = ((int64_t)1 << (8 * (n - 1) - 1)) - 1;
            if (v < lo || v > hi) break;
            n--;
        }
        uint8_t h[2] = {0x8a, (uint8_t)n};
        if (!(s = put(w, h, 2))) s = put_le(w, (uint64_t)v, n);
    }
    return s;
}

static sf_status emit_str(pw *w, const char *str, size_t len) {
    if (len > 0xFFFFFFFFu) return sf_fail(w->err, SF_E_ARG, "string of %zu bytes is too long for a pickle", len);
    sf_status s = op(w, 'X');
    if (!s) s = put_le(w, len, 4);
    if (!s) s = put(w, str, len);
    return s;
}

static sf_status emit_global(pw *w, const char *mod_name) { /* "module\nname\n" */
    sf_status s = op(w, 'c');
    return s ? s : put(w, mod_name, strlen(mod_name));
}

static const char *storage_global(sf_dtype d) {
    switch (d) {
    case SF_F32: return "torch\nFloatStorage\n";
    case SF_BF16: return "torch\nBFloat16Storage\n";
    case SF_F16: return "torch\nHalfStorage\n";
    case SF_F64: return "torch\nDoubleStorage\n";
    case SF_I64: return "torch\nLongStorage\n";
    case SF_I32: return "torch\nIntStorage\n";
    case SF_I16: return "torch\nShortStorage\n";
    case SF_I8: return "torch\nCharStorage\n";
    case SF_U8: return "torch\nByteStorage\n";
    case SF_BOOL: return "torch\nBoolStorage\n";
    default: return NULL;
    }
}

static sf_status emit_int_tuple(pw *w, const int64_t *v, int n) {
    static const uint8_t tup[4] = {')', 0x85, 0x86, 0x87};
    sf_status s = SF_OK;
    if (n > 3 && (s = op(w, '('))) return s;
    for (int i = 0; i < n && !s; i++) s = emit_int(w, v[i]);
    return s ? s : op(w, n <= 3 ? tup[n] : 't');
}

/* _rebuild_tensor_v2(('storage', cls, key, 'cpu', numel), 0, size, contiguous stride, False, OrderedDict()) */
static sf_status emit_tensor(pw *w, const sf_tensor *t) {
    const char *cls = storage_global(t->dtype);
    if (!cls) return sf_fail(w->err, SF_E_UNSUPPORTED, "tensor dtype %d cannot be written to .pt", (int)t->dtype);
    if (t->device >= 0) return sf_fail(w->err, SF_E_ARG, "tensor is on a device; copy it to the host first");
    if (t->ndim < 0 || t->ndim > SF_MAX_DIMS) return sf_fail(w->err, SF_E_ARG, "tensor rank %d", t->ndim);
    if (w->nt == w->tcap) {
        size_t nc = w->tcap ? 2 * w->tcap : 64;
        const sf_tensor **nt = realloc(w->tensors, nc * sizeof *nt);
        if (!nt) return sf_fail(w->err, SF_E_NOMEM, "out of memory");
        w->tensors = nt;
        w->tcap = nc;
    }
    size_t key = w->nt;
    w->tensors[w->nt++] = t;
    int64_t stride[SF_MAX_DIMS], acc = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        stride[d] = acc;
        acc *= t->shape[d] > 0 ? t->shape[d] : 1;
    }
    char keys[32];
    snprintf(keys, sizeof keys, "%zu", key);
    sf_status s;
    if ((s = emit_global(w, "torch._utils\n_rebuild_tensor_v2\n")) || (s = op(w, '(')) || (s = op(w, '(')) ||
        (s = emit_str(w, "storage", 7)) || (s = emit_global(w, cls)) || (s = emit_str(w, keys, strlen(keys))) ||
        (s = emit_str(w, "cpu", 3)) || (s = emit_int(w, sf_tensor_numel(t))) || (s = op(w, 't')) ||
        (s = op(w, 'Q')) || (s = emit_int(w, 0)) || (s = emit_int_tuple(w, t->shape, t->ndim)) ||
        (s = emit_int_tuple(w, stride, t->ndim)) || (s = op(w, 0x89)) ||
        (s = emit_global(w, "collections\nOrderedDict\n")) || (s = op(w, ')')) || (s = op(w, 'R')) ||
        (s = op(w, 't')) || (s = op(w, 'R')))
        return s;
    return SF_OK;
}

static sf_status emit(pw *w, const sf_py *p, int depth) {
    sf_status s = SF_OK;
    if (!p) return sf_fail(w->err, SF_E_ARG, "NULL node in the object tree");
    if (depth > PW_MAX_DEPTH) return sf_fail(w->err, SF_E_ARG, "object tree nested deeper than %d levels", PW_MAX_DEPTH);
    if (w->visits_left-- == 0) return sf_fail(w->err, SF_E_ARG, "object tree shares sub-trees too often");
    switch (p->type) {
    case SF_PY_NONE: return op(w, 'N');
    case SF_PY_BOOL: return op(w, p->i ? 0x88 : 0x89);
    case SF_PY_INT: return emit_int(w, p->i);
    case SF_PY_FLOAT: {
        uint64_t v;
        memcpy(&v, &p->f, 8);
        uint8_t b[9] = {'G'};
        for (int i = 0; i < 8; i++) b[1 + i] = (uint8_t)(v >> (56 - 8 * i)); /* big-endian */
        return put(w, b, 9);
    }
    case SF_PY_STR: return emit_str(w, p->s ? p->s : "", p->s ? strlen(p->s) : 0);
    case SF_PY_TENSOR: return emit_tensor(w, &p->t);
    case SF_PY_TUPLE:
        if (p->n == 0) return op(w, ')');
        if ((s = op(w, '('))) return s;
        for (size_t i = 0; i < p->n && !s; i++) s = emit(w, p->items[i], depth + 1);
        return s ? s : op(w, 't');
    case SF_PY_LIST:
    case SF_PY_DICT: {
        int dict = p->type == SF_PY_DICT;
        if ((s = op(w, dict ? '}' : ']'))) return s;
        for (size_t i = 0; i < p->n && !s; i += 1000) { /* batches of 1000 like pickle's _BATCHSIZE */
            size_t e = p->n - i > 1000 ? i + 1000 : p->n;
            if ((s = op(w, '('))) return s;
            for (size_t j = i; j < e && !s; j++) {
                if (dict && !(s = emit(w, p->items[2 * j], depth + 1))) s = emit(w, p->items[2 * j + 1], depth + 1);
                else if (!dict) s = emit(w, p->items[j], depth + 1);
            }
            if (!s) s = op(w, dict ? 'u' : 'e');
        }
        return s;
    }
    default: return sf_fail(w->err, SF_E_ARG, "object of internal type %d cannot be written", (int)p->type);
    }
}

/* ---- zip container ------------------------------------------------------------------------- */

typedef struct zentry {
    char name[64];
    uint32_t crc;
    uint64_t size, local_off;
} zentry;

typedef struct zw {
    FILE *fp;
    uint64_t off;
    zentry *e;
    size_t n, cap;
    int force64;
    sf_err *err;
} zw;

static sf_status zput(zw *z, const void *d, size_t k) {
    if (k && fwrite(d, 1, k, z->fp) != k) return sf_fail(z->err, SF_E_IO, "write failed (disk full?)");
    z->off += k;
    return SF_OK;
}

static void le_into(uint8_t *b, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
}

/* CRC-32 of zip members: zlib's. */
static uint32_t crc_update(uint32_t crc, const void *p, size_t n) { return (uint32_t)crc32_z(crc, p, n); }

static sf_status zbegin(zw *z, const char *name, uint64_t size) {
    if (z->n == z->cap) {
        size_t nc = z->cap ? 2 * z->cap : 64;
        zentry *ne = realloc(z->e, nc * sizeof *ne);
        if (!ne) return sf_fail(z->err, SF_E_NOMEM, "out of memory");
        z->e = ne;
        z->cap = nc;
    }
    zentry *e = &z->e[z->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->crc = 0;
    e->size = size;
    e->local_off = z->off;
    size_t nl = strlen(e->name);
    int z64 = z->force64 || size >= 0xFFFFFFFFu;
    size_t x64 = z64 ? 20 : 0;
    size_t base = (size_t)((z->off + 30 + nl + x64 + 4) % ZIP_FB_ALIGN);
    size_t pad = (ZIP_FB_ALIGN - base) % ZIP_FB_ALIGN;
    uint8_t h[30 + 64 + 20 + 4 + ZIP_FB_ALIGN];
    memset(h, 0, sizeof h);
    memcpy(h, "PK\x03\x04", 4);
    le_into(h + 4, z64 ? 45 : 20, 2);
    le_into(h + 12, 0x21, 2); /* date 1980-01-01 */
    le_into(h + 18, z64 ? 0xFFFFFFFFu : size, 4);
    le_into(h + 22, z64 ? 0xFFFFFFFFu : size, 4);
    le_into(h + 26, nl, 2);
    le_into(h + 28, x64 + 4 + pad, 2);
    size_t k = 30;
    memcpy(h + k, e->name, nl);
    k += nl;
    if (z64) {
        le_into(h + k, 0x0001, 2);
        le_into(h + k + 2, 16, 2);
        le_into(h + k + 4, size, 8);
        le_into(h + k + 12, size, 8);
        k += 20;
    }
    le_into(h + k, 0x4246, 2); /* "FB" */
    le_into(h + k + 2, pad, 2);
    k += 4 + pad; /* padding bytes are zero */
    return zput(z, h, k);
}

/* Patch the CRC into the local header of the last member. */
static sf_status zend(zw *z, uint32_t crc) {
    zentry *e = &z->e[z->n - 1];
    e->crc = crc;
    uint8_t b[4];
    le_into(b, crc, 4);
    if (fseeko(z->fp, (off_t)(e->local_off + 14), SEEK_SET) != 0 || fwrite(b, 1, 4, z->fp) != 4 ||
        fseeko(z->fp, 0, SEEK_END) != 0)
        return sf_fail(z->err, SF_E_IO, "seek/write failed while patching a zip header");
    return SF_OK;
}

static sf_status zmember_bytes(zw *z, const char *name, const void *d, size_t n) {
    sf_status s = zbegin(z, name, n);
    if (!s) s = zput(z, d, n);
    if (!s) s = zend(z, crc_update(0, d, n));
    return s;
}

static sf_status zmember_tensor(zw *z, const char *name, const sf_tensor *t) {
    int64_t numel = sf_tensor_numel(t);
    size_t nb = sf_tensor_nbytes(t);
    if (numel < 0 || (numel > 0 && nb == 0)) return sf_fail(z->err, SF_E_ARG, "tensor size overflows");
    sf_status s = zbegin(z, name, nb);
    if (s) return s;
    uint32_t crc = 0;
    if (nb && sf_tensor_is_contiguous(t)) {
        const uint8_t *p = t->data;
        for (size_t o = 0; o < nb && !s; o += (size_t)1 << 24) {
            size_t k = nb - o < ((size_t)1 << 24) ? nb - o : (size_t)1 << 24;
            crc = crc_update(crc, p + o, k);
            s = zput(z, p + o, k);
        }
    } else if (nb) {
        uint8_t *tmp = malloc(nb);
        if (!tmp) return sf_fail(z->err, SF_E_NOMEM, "out of memory for a %zu-byte strided tensor copy", nb);
        sf_tensor_copy_contiguous(t, tmp);
        crc = crc_update(0, tmp, nb);
        s = zput(z, tmp, nb);
        free(tmp);
    }
    return s ? s : zend(z, crc);
}

static sf_status zfinish(zw *z) {
    uint64_t cd_off = z->off;
    sf_status s = SF_OK;
    int any64 = z->force64 || z->n >= 0xFFFF;
    for (size_t i = 0; i < z->n && !s; i++) {
        const zentry *e = &z->e[i];
        int big = z->force64 || e->size >= 0xFFFFFFFFu, far = z->force64 || e->local_off >= 0xFFFFFFFFu;
        any64 |= big || far;
        size_t nl = strlen(e->name), xl = (big || far) ? 4 + (big ? 16 : 0) + (far ? 8 : 0) : 0;
        uint8_t h[46 + 64 + 28];
        memset(h, 0, sizeof h);
        memcpy(h, "PK\x01\x02", 4);
        le_into(h + 4, (big || far) ? 45 : 20, 2);
        le_into(h + 6, (big || far) ? 45 : 20, 2);
        le_into(h + 14, 0x21, 2);
        le_into(h + 16, e->crc, 4);
        le_into(h + 20, big ? 0xFFFFFFFFu : e->size, 4);
        le_into(h + 24, big ? 0xFFFFFFFFu : e->size, 4);
        le_into(h + 28, nl, 2);
        le_into(h + 30, xl, 2);
        le_into(h + 42, far ? 0xFFFFFFFFu : e->local_off, 4);
        memcpy(h + 46, e->name, nl);
        size_t k = 46 + nl;
        if (xl) {
            le_into(h + k, 0x0001, 2);
            le_into(h + k + 2, xl - 4, 2);
            k += 4;
            if (big) {
                le_into(h + k, e->size, 8);
                le_into(h + k + 8, e->size, 8);
                k += 16;
            }
            if (far) {
                le_into(h + k, e->local_off, 8);
                k += 8;
            }
        }
        s = zput(z, h, k);
    }
    if (s) return s;
    uint64_t cd_size = z->off - cd_off;
    any64 |= cd_off >= 0xFFFFFFFFu || cd_size >= 0xFFFFFFFFu;
    if (any64) {
        uint8_t r[56 + 20];
        uint64_t eocd64 = z->off;
        memset(r, 0, sizeof r);
        memcpy(r, "PK\x06\x06", 4);
        le_into(r + 4, 44, 8);
        le_into(r + 12, 45, 2);
        le_into(r + 14, 45, 2);
        le_into(r + 24, z->n, 8);
        le_into(r + 32, z->n, 8);
        le_into(r + 40, cd_size, 8);
        le_into(r + 48, cd_off, 8);
        memcpy(r + 56, "PK\x06\x07", 4);
        le_into(r + 56 + 8, eocd64, 8);
        le_into(r + 56 + 16, 1, 4);
        if ((s = zput(z, r, sizeof r))) return s;
    }
    uint8_t e[22];
    memset(e, 0, sizeof e);
    memcpy(e, "PK\x05\x06", 4);
    uint64_t cnt = any64 ? 0xFFFF : z->n;
    le_into(e + 8, cnt, 2);
    le_into(e + 10, cnt, 2);
    le_into(e + 12, any64 ? 0xFFFFFFFFu : cd_size, 4);
    le_into(e + 16, any64 ? 0xFFFFFFFFu : cd_off, 4);
    return zput(z, e, sizeof e);
}

sf_status sf_torch_write_ex(const char *path, const sf_py *root, unsigned flags, sf_err *err) {
    pw w;
    zw z;
    sf_atomic_file af;
    memset(&w, 0, sizeof w);
    memset(&z, 0, sizeof z);
    memset(&af, 0, sizeof af);
    w.err = err;
    w.visits_left = sf_py_expand_budget(root);
    z.err = err;
    z.force64 = (flags & SF_TORCH_WRITE_ZIP64) != 0;
    sf_status s;
    uint8_t proto[2] = {0x80, 2};
    if ((s = put(&w, proto, 2)) || (s = emit(&w, root, 0)) || (s = op(&w, '.'))) goto fail;
    if ((s = sf_atomic_open(&af, path, err))) goto fail;
    z.fp = af.fp;
    if ((s = zmember_bytes(&z, "archive/data.pkl", w.b, w.n)) ||
        (s = zmember_bytes(&z, "archive/byteorder", "little", 6)))
        goto fail;
    for (size_t i = 0; i < w.nt; i++) {
        char name[64];
        snprintf(name, sizeof name, "archive/data/%zu", i);
        if ((s = zmember_tensor(&z, name, w.tensors[i]))) goto fail;
    }
    if ((s = zmember_bytes(&z, "archive/version", "3\n", 2)) || (s = zfinish(&z))) goto fail;
    s = sf_atomic_commit(&af, err);
    free(w.b);
    free(w.tensors);
    free(z.e);
    return s;
fail:
    sf_atomic_abort(&af);
    free(w.b);
    free(w.tensors);
    free(z.e);
    return s;
}

sf_status sf_torch_write(const char *path, const sf_py *root, sf_err *err) {
    return sf_torch_write_ex(path, root, 0, err);
}
