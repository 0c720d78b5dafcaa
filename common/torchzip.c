/* torchzip.c — reader for torch.save zip archives (.pt/.pth), including ZIP64.
 *
 * Mirrors torch's PyTorchStreamReader (caffe2/serialize/inline_container.cc) as far as a
 * reader needs it (SPEC.md §1.4, §1.6): find the end-of-central-directory record, follow the
 * zip64 locator when present, walk the central directory (zip64 extra 0x0001 for sizes and
 * offsets), take each member's data offset from its *local* header, accept STORED members only,
 * and locate the archive prefix from the member ending in "/data.pkl". The pickle (pickle.c)
 * resolves storage keys to "<prefix>data/<key>" members; every tensor of the resulting tree is
 * added to the sf_tfile with '/'-joined names. All offsets and sizes are checked against the
 * mapped file. Tested by tests/unit/test_formats.c, tests/bats/sf-tensor.bats and
 * tests/fuzz/fuzz_torchzip.c. */
#define _POSIX_C_SOURCE 200809L
#include "tfile.h"
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct zmember {
    const char *name; /* points into the mapping, not NUL-terminated */
    size_t name_len;
    unsigned method;
    uint64_t size;     /* uncompressed */
    uint64_t data_off; /* from the local header */
    uint64_t loff;     /* local header offset */
    uint64_t csize;    /* stored bytes */
} zmember;

typedef struct zarchive {
    const char *path;
    const uint8_t *p;
    size_t len;
    zmember *m;
    size_t n;
    const char *prefix; /* into a member name */
    size_t prefix_len;
    char *keybuf;
    size_t keybuf_cap;
} zarchive;

static uint64_t le(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static int cmp_member(const void *a, const void *b) {
    const zmember *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static int cmp_loff(const void *a, const void *b) {
    const zmember *x = a, *y = b;
    return x->loff < y->loff ? -1 : x->loff > y->loff;
}

static const zmember *zfind(const zarchive *z, const char *name, size_t n) {
    zmember key = {name, n, 0, 0, 0, 0, 0};
    return bsearch(&key, z->m, z->n, sizeof *z->m, cmp_member);
}

/* Locate the central directory (classic or zip64). */
static sf_status find_directory(zarchive *z, uint64_t *cd_off, uint64_t *cd_size, uint64_t *count, sf_err *err) {
    const uint8_t *p = z->p;
    size_t len = z->len;
    if (len < 22) return sf_fail(err, SF_E_FORMAT, "%s: truncated zip archive (%zu bytes)", z->path, len);
    size_t lo = len - 22 > 65535 ? len - 22 - 65535 : 0, eocd = SIZE_MAX, loose = SIZE_MAX;
    for (size_t i = len - 22 + 1; i-- > lo;) {
        if (memcmp(p + i, "PK\x05\x06", 4) != 0) continue;
        size_t clen = (size_t)le(p + i + 20, 2);
        if (i + 22 + clen == len) {
            eocd = i;
            break;
        }
        if (loose == SIZE_MAX && i + 22 + clen <= len) loose = i;
    }
    if (eocd == SIZE_MAX) eocd = loose;
    if (eocd == SIZE_MAX)
        return sf_fail(err, SF_E_FORMAT, "%s: no zip end-of-central-directory record (truncated file?)", z->path);
    const uint8_t *e = p + eocd;
    *count = le(e + 10, 2);
    *cd_size = le(e + 12, 4);
    *cd_off = le(e + 16, 4);
    if (eocd >= 20 && memcmp(p + eocd - 20, "PK\x06\x07", 4) == 0) {
        uint64_t z64 = le(p + eocd - 20 + 8, 8);
        if (z64 > eocd - 20 || eocd - 20 - z64 < 56 || memcmp(p + z64, "PK\x06\x06", 4) != 0)
            return sf_fail(err, SF_E_FORMAT, "%s: bad zip64 end-of-central-directory locator", z->path);
        const uint8_t *r = p + z64;
        *count = le(r + 32, 8);
        *cd_size = le(r + 40, 8);
        *cd_off = le(r + 48, 8);
    } else if (*count == 0xFFFF || *cd_size == 0xFFFFFFFFu || *cd_off == 0xFFFFFFFFu) {
        return sf_fail(err, SF_E_FORMAT, "%s: zip64 archive without a zip64 locator", z->path);
    }
    if (*cd_off > len || *cd_size > len - *cd_off)
        return sf_fail(err, SF_E_FORMAT, "%s: central directory (offset %llu, %llu bytes) outside the %zu-byte file",
                       z->path, (unsigned long long)*cd_off, (unsigned long long)*cd_size, len);
    if (*count > *cd_size / 46)
        return sf_fail(err, SF_E_FORMAT, "%s: %llu directory entries cannot fit in %llu bytes", z->path,
                       (unsigned long long)*count, (unsigned long long)*cd_size);
    return SF_OK;
}

static sf_status read_directory(zarchive *z, sf_err *err) {
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    sf_status s = find_directory(z, &cd_off, &cd_size, &count, err);
    if (s) return s;
    z->m = calloc(count ? (size_t)count : 1, sizeof *z->m);
    if (!z->m) return sf_fail(err, SF_E_NOMEM, "out of memory");
    const uint8_t *p = z->p;
    size_t pos = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (uint64_t k = 0; k < count; k++) {
        if (end - pos < 46 || memcmp(p + pos, "PK\x01\x02", 4) != 0)
            return sf_fail(err, SF_E_FORMAT, "%s: bad central directory entry %llu", z->path, (unsigned long long)k);
        const uint8_t *c = p + pos;
        size_t nl = (size_t)le(c + 28, 2), xl = (size_t)le(c + 30, 2), cl = (size_t)le(c + 32, 2);
        if (end - pos - 46 < nl + xl + cl)
            return sf_fail(err, SF_E_FORMAT, "%s: central directory entry %llu overruns the directory", z->path,
                           (unsigned long long)k);
        zmember *m = &z->m[z->n];
        m->name = (const char *)c + 46;
        m->name_len = nl;
        m->method = (unsigned)le(c + 10, 2);
        uint64_t csize = le(c + 20, 4), usize = le(c + 24, 4), loff = le(c + 42, 4);
        /* zip64 extra: the overflowed fields, in the order usize, csize, offset */
        const uint8_t *x = c + 46 + nl, *xe = x + xl;
        while (xe - x >= 4) {
            unsigned id = (unsigned)le(x, 2), sz = (unsigned)le(x + 2, 2);
            if ((size_t)(xe - x - 4) < sz) break;
            if (id == 0x0001) {
                const uint8_t *v = x + 4, *ve = v + sz;
                uint64_t *fields[3] = {&usize, &csize, &loff};
                for (int f = 0; f < 3; f++) {
                    if (*fields[f] != 0xFFFFFFFFu) continue;
                    if (ve - v < 8)
                        return sf_fail(err, SF_E_FORMAT, "%s: short zip64 extra field in entry %llu", z->path,
                                       (unsigned long long)k);
                    *fields[f] = le(v, 8);
                    v += 8;
                }
            }
            x += 4 + sz;
        }
        if (m->method == 0 && csize != usize)
            return sf_fail(err, SF_E_FORMAT, "%s: member '%.*s': stored sizes disagree (%llu vs %llu)", z->path,
                           (int)(nl > 200 ? 200 : nl), m->name, (unsigned long long)csize,
                           (unsigned long long)usize);
        m->size = usize;
        if (loff > z->len || z->len - loff < 30 || memcmp(p + loff, "PK\x03\x04", 4) != 0)
            return sf_fail(err, SF_E_FORMAT, "%s: member '%.*s': bad local header offset %llu", z->path,
                           (int)(nl > 200 ? 200 : nl), m->name, (unsigned long long)loff);
        /* the local header must describe the same member as the directory: same name, same
         * method, same sizes unless they follow the data (flag bit 3). A reader trusting the
         * directory alone reads whatever the local header really frames (the next header's
         * bytes as tensor data, a second hidden member). */
        const uint8_t *lh = p + loff;
        size_t lnl = (size_t)le(lh + 26, 2), lxl = (size_t)le(lh + 28, 2);
        unsigned lflag = (unsigned)le(lh + 6, 2);
        if (lnl != nl || z->len - loff - 30 < lnl || memcmp(lh + 30, m->name, nl) != 0 ||
            (unsigned)le(lh + 8, 2) != m->method)
            return sf_fail(err, SF_E_FORMAT, "%s: member '%.*s': local header disagrees with the central directory "
                           "(name or method)", z->path, (int)(nl > 200 ? 200 : nl), m->name);
        if (!(lflag & 8)) {
            uint64_t lc = le(lh + 18, 4), lu = le(lh + 22, 4);
            if (z->len - loff - 30 - lnl < lxl)
                return sf_fail(err, SF_E_FORMAT, "%s: member '%.*s': local extra field past the end of the file",
                               z->path, (int)(nl > 200 ? 200 : nl), m->name);
            const uint8_t *x2 = lh + 30 + lnl, *x2e = x2 + lxl; /* local zip64 extra: usize, csize */
            while (x2e - x2 >= 4) {
                unsigned id = (unsigned)le(x2, 2), sz = (unsigned)le(x2 + 2, 2);
                if ((size_t)(x2e - x2 - 4) < sz) break;
                if (id == 0x0001) {
                    const uint8_t *v = x2 + 4;
                    if (lu == 0xFFFFFFFFu && sz >= 8) lu = le(v, 8), v += 8;
                    if (lc == 0xFFFFFFFFu && (size_t)(v - x2 - 4) + 8 <= sz) lc = le(v, 8);
                }
                x2 += 4 + sz;
            }
            if (lc != csize || lu != usize)
                return sf_fail(err, SF_E_FORMAT, "%s: member '%.*s': local header sizes (%llu, %llu) disagree with the "
                               "central directory (%llu, %llu)", z->path, (int)(nl > 200 ? 200 : nl), m->name,
                               (unsigned long long)lc, (unsigned long long)lu, (unsigned long long)csize,
                               (unsigned long long)usize);
        }
        m->loff = loff;
        uint64_t doff = loff + 30 + lnl + lxl;
        if (doff > z->len || csize > z->len - doff)
            return sf_fail(err, SF_E_FORMAT, "%s: member '%.*s' (%llu bytes at %llu) extends past the end of the file",
                           z->path, (int)(nl > 200 ? 200 : nl), m->name, (unsigned long long)csize,
                           (unsigned long long)doff);
        m->data_off = doff;
        m->csize = csize;
        z->n++;
        pos += 46 + nl + xl + cl;
    }
    /* members lie one after another before the directory: no member's data runs into the next
     * local header or the directory (overlapping members alias bytes, a zip-bomb trick) */
    {
        zmember *byoff = malloc((z->n ? z->n : 1) * sizeof *byoff);
        if (!byoff) return sf_fail(err, SF_E_NOMEM, "out of memory");
        memcpy(byoff, z->m, z->n * sizeof *byoff);
        qsort(byoff, z->n, sizeof *byoff, cmp_loff);
        for (size_t i = 0; i < z->n; i++) {
            uint64_t lim = i + 1 < z->n ? byoff[i + 1].loff : cd_off;
            if (byoff[i].data_off + byoff[i].csize > lim) {
                const zmember *b = &byoff[i];
                s = sf_fail(err, SF_E_FORMAT, "%s: member '%.*s' (%llu bytes at %llu) overlaps the next member or the "
                            "central directory at %llu", z->path, (int)(b->name_len > 200 ? 200 : b->name_len), b->name,
                            (unsigned long long)b->csize, (unsigned long long)b->data_off, (unsigned long long)lim);
                free(byoff);
                return s;
            }
        }
        free(byoff);
    }
    qsort(z->m, z->n, sizeof *z->m, cmp_member);
    for (size_t i = 1; i < z->n; i++)
        if (cmp_member(&z->m[i - 1], &z->m[i]) == 0)
            return sf_fail(err, SF_E_FORMAT, "%s: duplicate zip member '%.*s'", z->path,
                           (int)(z->m[i].name_len > 200 ? 200 : z->m[i].name_len), z->m[i].name);
    return SF_OK;
}

static const void *resolve_storage(void *ctx, const char *key, sf_dtype dtype, int64_t numel, sf_err *err) {
    zarchive *z = ctx;
    size_t kl = strlen(key), need = z->prefix_len + 5 + kl;
    if (need > z->keybuf_cap) {
        char *nb = realloc(z->keybuf, need);
        if (!nb) {
            sf_fail(err, SF_E_NOMEM, "out of memory");
            return NULL;
        }
        z->keybuf = nb;
        z->keybuf_cap = need;
    }
    memcpy(z->keybuf, z->prefix, z->prefix_len);
    memcpy(z->keybuf + z->prefix_len, "data/", 5);
    memcpy(z->keybuf + z->prefix_len + 5, key, kl);
    const zmember *m = zfind(z, z->keybuf, need);
    int kshow = kl > 64 ? 64 : (int)kl;
    if (!m) {
        sf_fail(err, SF_E_FORMAT, "storage '%.*s' has no member %.*sdata/%.*s", kshow, key, (int)z->prefix_len,
                z->prefix, kshow, key);
        return NULL;
    }
    if (m->method != 0) {
        sf_fail(err, SF_E_UNSUPPORTED, "storage '%.*s' is compressed (zip method %u); only STORED members are supported",
                kshow, key, m->method);
        return NULL;
    }
    size_t bytes;
    if (numel < 0 || !sf_mul_ok((size_t)numel, sf_dtype_size(dtype), &bytes) || bytes > m->size) {
        sf_fail(err, SF_E_FORMAT, "storage '%.*s': %lld %s elements do not fit its %llu-byte member", kshow, key,
                (long long)numel, sf_dtype_name(dtype), (unsigned long long)m->size);
        return NULL;
    }
    return z->p + m->data_off;
}

static sf_status add_entry(void *ctx, const char *name, const sf_tensor *t, sf_err *err) {
    return sf_tfile_add((sf_tfile *)ctx, name, t, err);
}

sf_status sf_torch_read(sf_tfile *tf, sf_err *err) {
    zarchive z;
    memset(&z, 0, sizeof z);
    z.path = tf->path;
    z.p = tf->map.data;
    z.len = tf->map.len;
    sf_status s = read_directory(&z, err);
    if (s) goto fail;
    const zmember *pkl = NULL;
    for (size_t i = 0; i < z.n; i++) {
        const zmember *m = &z.m[i];
        if (m->name_len >= 8 && memcmp(m->name + m->name_len - 8, "data.pkl", 8) == 0 &&
            (m->name_len == 8 || m->name[m->name_len - 9] == '/')) {
            if (pkl) {
                s = sf_fail(err, SF_E_FORMAT, "%s: more than one data.pkl member", tf->path);
                goto fail;
            }
            pkl = m;
        }
    }
    if (!pkl) {
        s = sf_fail(err, SF_E_FORMAT, "%s: zip archive has no data.pkl (not a torch.save file)", tf->path);
        goto fail;
    }
    if (pkl->method != 0) {
        s = sf_fail(err, SF_E_UNSUPPORTED, "%s: data.pkl is compressed (zip method %u); only STORED is supported",
                    tf->path, pkl->method);
        goto fail;
    }
    z.prefix = pkl->name;
    z.prefix_len = pkl->name_len - 8;
    sf_py *root = NULL;
    s = sf_pickle_load(z.p + pkl->data_off, (size_t)pkl->size, resolve_storage, &z, &root, err);
    if (s) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        sf_fail(err, s, "%s: %s", tf->path, msg);
        goto fail;
    }
    tf->root = root;
    s = sf_py_flatten(root, add_entry, tf, err);
    if (s) {
        if (!strstr(err->msg, tf->path)) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            sf_fail(err, s, "%s: %s", tf->path, msg);
        }
        goto fail;
    }
    free(z.m);
    free(z.keybuf);
    return SF_OK;
fail:
    free(z.m);
    free(z.keybuf);
    return s;
}
