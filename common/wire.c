/* wire.c — the wire format (DESIGN.md §4): messages and meta, the msgpack header codec, the
 * byte-stream framing ("-", "fd:N", files), URL dispatch to the ZeroMQ / shm transports
 * (wire_zmq.c, wire_shm.c), and the stop signal (self-pipe).
 *
 * Mirrors no reference module (the reference is one Python process). The frame spec is at the
 * top of wire.h. Tested by tests/unit/test_wire.c (round trips, pipes, malformed frames),
 * tests/fuzz/fuzz_wire.c (sf_wire_frame_parse) and tests/bats/sf-wire.bats. */
#define _POSIX_C_SOURCE 200809L
#include "wire_impl.h"
#include "stop.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <msgpack.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------
 * The stop signal: common/stop.c (one module for every program); these names stay for callers. */
sf_status sf_wire_install_signals(sf_err *err) { return sf_stop_install(err); }
int sf_wire_stopped(void) { return sf_stopped(); }

int sf_wire_is_relayed(const char *msg) {
    return strstr(msg, SF_WIRE_UPSTREAM_ERROR) || strstr(msg, SF_WIRE_UPSTREAM_CLOSED);
}
void sf_wire_request_stop(void) { sf_stop_request(); }
int sf_wire_selfpipe_fd(void) { return sf_stop_fd(); }
sf_status sf_wire_stop_err(sf_err *err) { return sf_stop_err(err); }

/* ------------------------------------------------------------------------------------------
 * Messages and meta. */
static const sf_dtype k_wire_dtypes[] = {SF_F32, SF_BF16, SF_F16, SF_I64, SF_I32, SF_U8};

static int wire_dtype_ok(sf_dtype d) {
    for (size_t i = 0; i < sizeof k_wire_dtypes / sizeof k_wire_dtypes[0]; i++)
        if (k_wire_dtypes[i] == d) return 1;
    return 0;
}

static int wire_dtype_from_name(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof k_wire_dtypes / sizeof k_wire_dtypes[0]; i++) {
        const char *w = sf_dtype_name(k_wire_dtypes[i]);
        if (strlen(w) == n && memcmp(w, s, n) == 0) return (int)k_wire_dtypes[i];
    }
    return -1;
}

static const char *type_name(sf_wire_type t) {
    return t == SF_WIRE_TENSOR ? "tensor" : t == SF_WIRE_END ? "end" : t == SF_WIRE_ERROR ? "error" : "?";
}

void sf_wire_msg_init(sf_wire_msg *m, sf_wire_type type, const char *name) {
    /* Only the fixed part and the used arena matter; skip zeroing the 32 KiB arena. */
    memset(m, 0, offsetof(sf_wire_msg, arena));
    m->type = type;
    m->dtype = SF_U8;
    if (name) snprintf(m->name, sizeof m->name, "%s", name);
}

sf_status sf_wire_msg_tensor(sf_wire_msg *m, const char *name, const sf_tensor *t, sf_err *err) {
    sf_wire_msg_init(m, SF_WIRE_TENSOR, name);
    if (name && strlen(name) >= sizeof m->name) return sf_fail(err, SF_E_ARG, "wire: tensor name too long: %.64s...", name);
    if (!wire_dtype_ok(t->dtype))
        return sf_fail(err, SF_E_UNSUPPORTED, "wire: dtype %s cannot travel on the wire (f32 bf16 f16 i64 i32 u8)",
                       sf_dtype_name(t->dtype));
    if (t->ndim < 0 || t->ndim > SF_MAX_DIMS) return sf_fail(err, SF_E_ARG, "wire: bad ndim %d", t->ndim);
    m->dtype = t->dtype;
    m->ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) m->shape[i] = t->shape[i];
    return SF_OK;
}

size_t sf_wire_msg_nbytes(const sf_wire_msg *m) {
    if (m->type != SF_WIRE_TENSOR) return 0;
    size_t n = sf_dtype_size(m->dtype);
    for (int i = 0; i < m->ndim; i++)
        if (m->shape[i] < 0 || !sf_mul_ok(n, (size_t)m->shape[i], &n)) return 0;
    return n;
}

sf_tensor sf_wire_msg_view(const sf_wire_msg *m, const void *payload) {
    return sf_tensor_view((void *)payload, m->dtype, m->ndim, m->shape);
}

const sf_wire_meta *sf_wire_meta_find(const sf_wire_msg *m, const char *key) {
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta[i].key, key) == 0) return &m->meta[i];
    return NULL;
}

/* Slot for key (existing or new). */
static sf_wire_meta *meta_slot(sf_wire_msg *m, const char *key, sf_err *err) {
    if (strlen(key) >= sizeof m->meta[0].key) {
        sf_fail(err, SF_E_ARG, "wire: meta key too long: %.64s", key);
        return NULL;
    }
    sf_wire_meta *e = (sf_wire_meta *)sf_wire_meta_find(m, key);
    if (!e) {
        if (m->n_meta >= SF_WIRE_MAX_META) {
            sf_fail(err, SF_E_ARG, "wire: more than %d meta entries", SF_WIRE_MAX_META);
            return NULL;
        }
        e = &m->meta[m->n_meta++];
        memset(e, 0, sizeof *e);
        snprintf(e->key, sizeof e->key, "%s", key);
    }
    return e;
}

/* Copy n bytes into the arena (aligned to 8); offset in *off. */
static int arena_put(sf_wire_msg *m, const void *data, size_t n, uint32_t *off) {
    size_t at = ((size_t)m->arena_used + 7) & ~(size_t)7;
    if (at > SF_WIRE_ARENA || n > SF_WIRE_ARENA - at) return 0;
    if (n) memcpy(m->arena + at, data, n);
    *off = (uint32_t)at;
    m->arena_used = (uint32_t)(at + n);
    return 1;
}

sf_status sf_wire_meta_set_int(sf_wire_msg *m, const char *key, int64_t v, sf_err *err) {
    sf_wire_meta *e = meta_slot(m, key, err);
    if (!e) return SF_E_ARG;
    e->kind = SF_META_INT;
    e->i = v;
    return SF_OK;
}

sf_status sf_wire_meta_set_bool(sf_wire_msg *m, const char *key, int v, sf_err *err) {
    sf_wire_meta *e = meta_slot(m, key, err);
    if (!e) return SF_E_ARG;
    e->kind = SF_META_BOOL;
    e->i = v != 0;
    return SF_OK;
}

sf_status sf_wire_meta_set_double(sf_wire_msg *m, const char *key, double v, sf_err *err) {
    sf_wire_meta *e = meta_slot(m, key, err);
    if (!e) return SF_E_ARG;
    e->kind = SF_META_FLOAT;
    e->f = v;
    return SF_OK;
}

static sf_status meta_set_strn(sf_wire_msg *m, const char *key, const char *v, size_t n, sf_err *err) {
    uint32_t off;
    if (memchr(v, 0, n)) return sf_fail(err, SF_E_FORMAT, "wire: meta %s: string contains NUL", key);
    /* n bytes only: v need not be NUL-terminated (a msgpack string may end its buffer); then the NUL */
    if (!arena_put(m, v, n, &off) || m->arena_used >= SF_WIRE_ARENA)
        return sf_fail(err, SF_E_ARG, "wire: meta strings exceed %d bytes", SF_WIRE_ARENA);
    m->arena[off + n] = 0;
    m->arena_used++;
    sf_wire_meta *e = meta_slot(m, key, err);
    if (!e) return SF_E_ARG;
    e->kind = SF_META_STR;
    e->off = off;
    e->i = (int64_t)n;
    return SF_OK;
}

sf_status sf_wire_meta_set_str(sf_wire_msg *m, const char *key, const char *v, sf_err *err) {
    return meta_set_strn(m, key, v, strlen(v), err);
}

sf_status sf_wire_meta_set_ints(sf_wire_msg *m, const char *key, const int64_t *v, size_t n, sf_err *err) {
    uint32_t off;
    if (n > SF_WIRE_ARENA / 8 || !arena_put(m, v, n * 8, &off))
        return sf_fail(err, SF_E_ARG, "wire: meta arrays exceed %d bytes", SF_WIRE_ARENA);
    sf_wire_meta *e = meta_slot(m, key, err);
    if (!e) return SF_E_ARG;
    e->kind = SF_META_INTS;
    e->off = off;
    e->i = (int64_t)n;
    return SF_OK;
}

int64_t sf_wire_meta_int(const sf_wire_msg *m, const char *key, int64_t dflt) {
    const sf_wire_meta *e = sf_wire_meta_find(m, key);
    return e && (e->kind == SF_META_INT || e->kind == SF_META_BOOL) ? e->i : dflt;
}

double sf_wire_meta_double(const sf_wire_msg *m, const char *key, double dflt) {
    const sf_wire_meta *e = sf_wire_meta_find(m, key);
    if (!e) return dflt;
    if (e->kind == SF_META_FLOAT) return e->f;
    if (e->kind == SF_META_INT) return (double)e->i;
    return dflt;
}

double sf_wire_meta_rate(const sf_wire_msg *m, const char *key) {
    const double v = sf_wire_meta_double(m, key, 0.0);
    return v > 0 && v < 1e9 ? v : 0.0; /* NaN compares false */
}

const char *sf_wire_meta_str(const sf_wire_msg *m, const char *key) {
    const sf_wire_meta *e = sf_wire_meta_find(m, key);
    return e && e->kind == SF_META_STR ? m->arena + e->off : NULL;
}

const int64_t *sf_wire_meta_ints(const sf_wire_msg *m, const char *key, size_t *n) {
    const sf_wire_meta *e = sf_wire_meta_find(m, key);
    if (!e || e->kind != SF_META_INTS) return NULL;
    if (n) *n = (size_t)e->i;
    return (const int64_t *)(const void *)(m->arena + e->off);
}

const char *sf_wire_msg_str(const sf_wire_msg *m, char *buf, size_t n) {
    size_t at = 0;
#define PUT(...)                                                                  \
    do {                                                                          \
        if (at < n) {                                                             \
            int k_ = snprintf(buf + at, n - at, __VA_ARGS__);                     \
            at = k_ < 0 ? n : (size_t)k_ >= n - at ? n : at + (size_t)k_;         \
        }                                                                         \
    } while (0)
    if (!n) return buf;
    buf[0] = 0;
    PUT("%s %s", type_name(m->type), m->name[0] ? m->name : "-");
    if (m->type == SF_WIRE_TENSOR) {
        PUT(" %s [", sf_dtype_name(m->dtype));
        for (int i = 0; i < m->ndim; i++) PUT("%s%" PRId64, i ? ", " : "", m->shape[i]);
        PUT("]");
    }
    if (m->type == SF_WIRE_ERROR) PUT(" \"%s\"", m->text);
    if (m->n_meta) {
        PUT(" {");
        for (int i = 0; i < m->n_meta; i++) {
            const sf_wire_meta *e = &m->meta[i];
            PUT("%s%s: ", i ? ", " : "", e->key);
            switch (e->kind) {
            case SF_META_INT: PUT("%" PRId64, e->i); break;
            case SF_META_BOOL: PUT("%s", e->i ? "true" : "false"); break;
            case SF_META_FLOAT: PUT("%.17g", e->f); break;
            case SF_META_STR: PUT("\"%s\"", m->arena + e->off); break;
            case SF_META_INTS: {
                size_t k = 0;
                const int64_t *v = sf_wire_meta_ints(m, e->key, &k);
                PUT("[");
                for (size_t j = 0; j < k; j++) PUT("%s%" PRId64, j ? ", " : "", v[j]);
                PUT("]");
                break;
            }
            }
        }
        PUT("}");
    }
#undef PUT
    char *raw = strdup(buf); /* names and strings come from a peer: escape control characters */
    if (raw) sf_escape_ctl(buf, n, raw);
    else
        for (char *c = buf; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    free(raw);
    return buf;
}

/* ------------------------------------------------------------------------------------------
 * Header codec. */
static void pack_cstr(msgpack_packer *pk, const char *s) { msgpack_pack_str_with_body(pk, s, strlen(s)); }

sf_status sf_wire_header_encode(const sf_wire_msg *m, void **buf, size_t *len, sf_err *err) {
    if (m->type != SF_WIRE_TENSOR && m->type != SF_WIRE_END && m->type != SF_WIRE_ERROR)
        return sf_fail(err, SF_E_ARG, "wire: bad message type %d", (int)m->type);
    if (m->type == SF_WIRE_TENSOR && (!wire_dtype_ok(m->dtype) || m->ndim < 0 || m->ndim > SF_MAX_DIMS))
        return sf_fail(err, SF_E_ARG, "wire: bad tensor header (dtype %s, ndim %d)", sf_dtype_name(m->dtype), m->ndim);
    if (m->n_meta < 0 || m->n_meta > SF_WIRE_MAX_META) return sf_fail(err, SF_E_ARG, "wire: bad meta count");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t nkeys = 4 + (m->type == SF_WIRE_TENSOR ? 2 : 0) + (m->type == SF_WIRE_ERROR ? 1 : 0);
    msgpack_pack_map(&pk, nkeys);
    pack_cstr(&pk, "v");
    msgpack_pack_uint32(&pk, SF_WIRE_VERSION);
    pack_cstr(&pk, "type");
    pack_cstr(&pk, type_name(m->type));
    pack_cstr(&pk, "name");
    pack_cstr(&pk, m->name);
    if (m->type == SF_WIRE_TENSOR) {
        pack_cstr(&pk, "dtype");
        pack_cstr(&pk, sf_dtype_name(m->dtype));
        pack_cstr(&pk, "shape");
        msgpack_pack_array(&pk, (size_t)m->ndim);
        for (int i = 0; i < m->ndim; i++) msgpack_pack_int64(&pk, m->shape[i]);
    }
    if (m->type == SF_WIRE_ERROR) {
        pack_cstr(&pk, "text");
        pack_cstr(&pk, m->text);
    }
    pack_cstr(&pk, "meta");
    msgpack_pack_map(&pk, (size_t)m->n_meta);
    for (int i = 0; i < m->n_meta; i++) {
        const sf_wire_meta *e = &m->meta[i];
        pack_cstr(&pk, e->key);
        switch (e->kind) {
        case SF_META_INT: msgpack_pack_int64(&pk, e->i); break;
        case SF_META_BOOL: e->i ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk); break;
        case SF_META_FLOAT: msgpack_pack_double(&pk, e->f); break;
        case SF_META_STR: msgpack_pack_str_with_body(&pk, m->arena + e->off, (size_t)e->i); break;
        case SF_META_INTS: {
            size_t k = 0;
            const int64_t *v = sf_wire_meta_ints(m, e->key, &k);
            msgpack_pack_array(&pk, k);
            for (size_t j = 0; j < k; j++) msgpack_pack_int64(&pk, v[j]);
            break;
        }
        default: msgpack_pack_nil(&pk); break;
        }
    }
    if (!sb.data || sb.size > SF_WIRE_MAX_HEADER) {
        msgpack_sbuffer_destroy(&sb);
        return sf_fail(err, SF_E_ARG, "wire: header larger than %u bytes", SF_WIRE_MAX_HEADER);
    }
    *len = sb.size;
    *buf = msgpack_sbuffer_release(&sb);
    return SF_OK;
}

/* Walk msgpack bytes without allocating: checks that the buffer holds exactly one object and
 * that every container count fits in the bytes left, so msgpack-c's allocations stay bounded
 * by the header size (a 6-byte header cannot ask for a 4-billion-element array). */
static int mp_prescan(const uint8_t *p, size_t len) {
    size_t pos = 0, items = 1;
    while (items) {
        if (pos >= len) return 0;
        uint8_t c = p[pos++];
        size_t skip = 0, count = 0; /* bytes to skip, children to add */
        size_t lenbytes = 0;        /* big-endian length field size */
        int kind = 0;               /* 0 scalar, 1 str/bin (skip length), 2 ext, 3 array, 4 map */
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        } else if (c >= 0x80 && c <= 0x8f) {
            count = 2u * (c & 0x0f);
        } else if (c >= 0x90 && c <= 0x9f) {
            count = c & 0x0f;
        } else if (c >= 0xa0 && c <= 0xbf) {
            skip = c & 0x1f;
        } else {
            switch (c) {
            case 0xc4: case 0xd9: lenbytes = 1; kind = 1; break;
            case 0xc5: case 0xda: lenbytes = 2; kind = 1; break;
            case 0xc6: case 0xdb: lenbytes = 4; kind = 1; break;
            case 0xc7: lenbytes = 1; kind = 2; break;
            case 0xc8: lenbytes = 2; kind = 2; break;
            case 0xc9: lenbytes = 4; kind = 2; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: lenbytes = 2; kind = 3; break;
            case 0xdd: lenbytes = 4; kind = 3; break;
            case 0xde: lenbytes = 2; kind = 4; break;
            case 0xdf: lenbytes = 4; kind = 4; break;
            default: return 0; /* 0xc1: never used */
            }
        }
        if (lenbytes) {
            if (len - pos < lenbytes) return 0;
            size_t n = 0;
            for (size_t i = 0; i < lenbytes; i++) n = (n << 8) | p[pos + i];
            pos += lenbytes;
            if (kind == 1) skip = n;
            else if (kind == 2) skip = n + 1;
            else if (kind == 3) count = n;
            else count = 2 * n;
        }
        if (skip > len - pos) return 0;
        pos += skip;
        /* every child takes at least one byte */
        if (count > len - pos) return 0;
        items = items - 1 + count;
    }
    return pos == len;
}

static int key_is(const msgpack_object *k, const char *s) {
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
}

static int obj_int(const msgpack_object *o, int64_t *v) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX) return 0;
        *v = (int64_t)o->via.u64;
        return 1;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return 1;
    }
    return 0;
}

static sf_status decode_meta(const msgpack_object *o, sf_wire_msg *m, sf_err *err) {
    if (o->type != MSGPACK_OBJECT_MAP) return sf_fail(err, SF_E_FORMAT, "wire: header: meta is not a map");
    const msgpack_object_map *mp = &o->via.map;
    if (mp->size > SF_WIRE_MAX_META)
        return sf_fail(err, SF_E_FORMAT, "wire: header: %u meta entries (max %d)", mp->size, SF_WIRE_MAX_META);
    for (uint32_t i = 0; i < mp->size; i++) {
        const msgpack_object *k = &mp->ptr[i].key, *v = &mp->ptr[i].val;
        char key[64];
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 || k->via.str.size >= sizeof key ||
            memchr(k->via.str.ptr, 0, k->via.str.size))
            return sf_fail(err, SF_E_FORMAT, "wire: header: bad meta key");
        memcpy(key, k->via.str.ptr, k->via.str.size);
        key[k->via.str.size] = 0;
        if (sf_wire_meta_find(m, key)) return sf_fail(err, SF_E_FORMAT, "wire: header: duplicate meta key %s", key);
        int64_t iv;
        sf_status st = SF_OK;
        if (obj_int(v, &iv)) {
            st = sf_wire_meta_set_int(m, key, iv, err);
        } else if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64) {
            st = sf_wire_meta_set_double(m, key, v->via.f64, err);
        } else if (v->type == MSGPACK_OBJECT_BOOLEAN) {
            st = sf_wire_meta_set_bool(m, key, v->via.boolean, err);
        } else if (v->type == MSGPACK_OBJECT_STR) {
            st = meta_set_strn(m, key, v->via.str.ptr, v->via.str.size, err);
        } else if (v->type == MSGPACK_OBJECT_ARRAY) {
            uint32_t n = v->via.array.size;
            if ((size_t)n * 8 > SF_WIRE_ARENA) return sf_fail(err, SF_E_FORMAT, "wire: header: meta %s: array too long", key);
            int64_t tmp[SF_WIRE_ARENA / 8];
            for (uint32_t j = 0; j < n; j++)
                if (!obj_int(&v->via.array.ptr[j], &tmp[j]))
                    return sf_fail(err, SF_E_FORMAT, "wire: header: meta %s: array of non-integers", key);
            st = sf_wire_meta_set_ints(m, key, tmp, n, err);
        } else {
            return sf_fail(err, SF_E_FORMAT, "wire: header: meta %s: unsupported value type", key);
        }
        if (st) { /* keep the cause (e.g. "meta strings exceed ..."), as a format error */
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err ? err->msg : "wire: bad meta");
            return sf_fail(err, SF_E_FORMAT, "%s", why);
        }
    }
    return SF_OK;
}

static sf_status decode_map(const msgpack_object *root, sf_wire_msg *m, sf_err *err) {
    if (root->type != MSGPACK_OBJECT_MAP) return sf_fail(err, SF_E_FORMAT, "wire: header is not a msgpack map");
    const msgpack_object *v = NULL, *type = NULL, *name = NULL, *dtype = NULL, *shape = NULL, *meta = NULL, *text = NULL;
    const msgpack_object_map *mp = &root->via.map;
    for (uint32_t i = 0; i < mp->size; i++) {
        const msgpack_object *k = &mp->ptr[i].key, *val = &mp->ptr[i].val;
        const msgpack_object **slot = key_is(k, "v") ? &v : key_is(k, "type") ? &type : key_is(k, "name") ? &name
                                    : key_is(k, "dtype") ? &dtype : key_is(k, "shape") ? &shape
                                    : key_is(k, "meta") ? &meta : key_is(k, "text") ? &text : NULL;
        if (!slot) continue; /* unknown keys are ignored (forward compatibility) */
        if (*slot) return sf_fail(err, SF_E_FORMAT, "wire: header: duplicate key");
        *slot = val;
    }
    int64_t ver;
    if (!v || !obj_int(v, &ver)) return sf_fail(err, SF_E_FORMAT, "wire: header: missing version \"v\"");
    if (ver != SF_WIRE_VERSION)
        return sf_fail(err, SF_E_FORMAT, "wire: unsupported wire version %" PRId64 " (this build reads %d)", ver, SF_WIRE_VERSION);
    if (!type || type->type != MSGPACK_OBJECT_STR) return sf_fail(err, SF_E_FORMAT, "wire: header: missing \"type\"");
    sf_wire_type t = key_is(type, "tensor") ? SF_WIRE_TENSOR : key_is(type, "end") ? SF_WIRE_END
                   : key_is(type, "error") ? SF_WIRE_ERROR : (sf_wire_type)0;
    if (!t) return sf_fail(err, SF_E_FORMAT, "wire: header: unknown message type");
    sf_wire_msg_init(m, t, NULL);
    if (name) {
        if (name->type != MSGPACK_OBJECT_STR || name->via.str.size >= sizeof m->name ||
            memchr(name->via.str.ptr, 0, name->via.str.size))
            return sf_fail(err, SF_E_FORMAT, "wire: header: bad \"name\"");
        memcpy(m->name, name->via.str.ptr, name->via.str.size);
        m->name[name->via.str.size] = 0;
    }
    if (t == SF_WIRE_TENSOR) {
        if (!dtype || dtype->type != MSGPACK_OBJECT_STR) return sf_fail(err, SF_E_FORMAT, "wire: header: missing \"dtype\"");
        int d = wire_dtype_from_name(dtype->via.str.ptr, dtype->via.str.size);
        if (d < 0) return sf_fail(err, SF_E_FORMAT, "wire: header: unknown dtype \"%.*s\"", (int)(dtype->via.str.size > 16 ? 16 : dtype->via.str.size), dtype->via.str.ptr);
        m->dtype = (sf_dtype)d;
        if (!shape || shape->type != MSGPACK_OBJECT_ARRAY) return sf_fail(err, SF_E_FORMAT, "wire: header: missing \"shape\"");
        if (shape->via.array.size > SF_MAX_DIMS)
            return sf_fail(err, SF_E_FORMAT, "wire: header: %u dims (max %d)", shape->via.array.size, SF_MAX_DIMS);
        m->ndim = (int)shape->via.array.size;
        size_t nb = sf_dtype_size(m->dtype);
        for (int i = 0; i < m->ndim; i++) {
            int64_t s;
            if (!obj_int(&shape->via.array.ptr[i], &s) || s < 0 || s > ((int64_t)1 << 40))
                return sf_fail(err, SF_E_FORMAT, "wire: header: bad shape entry");
            m->shape[i] = s;
            if (!sf_mul_ok(nb, (size_t)s, &nb) || nb > SF_WIRE_MAX_PAYLOAD)
                return sf_fail(err, SF_E_FORMAT, "wire: header: tensor larger than %llu bytes", (unsigned long long)SF_WIRE_MAX_PAYLOAD);
        }
    }
    if (t == SF_WIRE_ERROR) {
        if (text && text->type == MSGPACK_OBJECT_STR) {
            /* a peer's text: NULs dropped, control characters (ESC, BEL, newlines) escaped so it
             * can never drive the terminal it is printed on nor split the one-line error */
            char raw[sizeof m->text];
            size_t n = text->via.str.size < sizeof raw - 1 ? text->via.str.size : sizeof raw - 1;
            memcpy(raw, text->via.str.ptr, n);
            raw[n] = 0;
            for (size_t i = 0; i < n; i++)
                if (raw[i] == 0) raw[i] = ' ';
            sf_escape_ctl(m->text, sizeof m->text, raw);
        } else {
            snprintf(m->text, sizeof m->text, "(no text)");
        }
    }
    if (meta) return decode_meta(meta, m, err);
    return SF_OK;
}

sf_status sf_wire_header_decode(const void *buf, size_t len, sf_wire_msg *m, sf_err *err) {
    if (len == 0 || len > SF_WIRE_MAX_HEADER)
        return sf_fail(err, SF_E_FORMAT, "wire: header length %zu out of range (1..%u)", len, SF_WIRE_MAX_HEADER);
    if (!mp_prescan(buf, len)) return sf_fail(err, SF_E_FORMAT, "wire: header is not one valid msgpack object");
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&up, buf, len, &off);
    sf_status st;
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        st = sf_fail(err, SF_E_FORMAT, "wire: header is not one valid msgpack object");
    else
        st = decode_map(&up.data, m, err);
    msgpack_unpacked_destroy(&up);
    return st;
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void wr64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* The payload length must agree with the header. */
static sf_status check_payload_len(const sf_wire_msg *m, uint64_t plen, sf_err *err) {
    uint64_t want = sf_wire_msg_nbytes(m);
    if (plen != want)
        return sf_fail(err, SF_E_FORMAT, "wire: %s %s: payload is %llu bytes, header says %llu", type_name(m->type),
                       m->name, (unsigned long long)plen, (unsigned long long)want);
    return SF_OK;
}

sf_status sf_wire_frame_parse(const void *buf, size_t len, sf_wire_msg *m, const void **payload, size_t *used,
                              sf_err *err) {
    const uint8_t *p = buf;
    if (len < 8) return sf_fail(err, SF_E_FORMAT, "wire: truncated frame");
    if (memcmp(p, SF_WIRE_MAGIC, 4) != 0) return sf_fail(err, SF_E_FORMAT, "wire: bad magic (not an SFT1 stream)");
    uint32_t hlen = rd32(p + 4);
    if (hlen == 0 || hlen > SF_WIRE_MAX_HEADER)
        return sf_fail(err, SF_E_FORMAT, "wire: header length %u out of range (1..%u)", hlen, SF_WIRE_MAX_HEADER);
    if (len - 8 < (size_t)hlen + 8) return sf_fail(err, SF_E_FORMAT, "wire: truncated frame");
    sf_status st = sf_wire_header_decode(p + 8, hlen, m, err);
    if (st) return st;
    uint64_t plen = rd64(p + 8 + hlen);
    if ((st = check_payload_len(m, plen, err))) return st;
    size_t rest = len - 16 - hlen;
    if (plen > rest) return sf_fail(err, SF_E_FORMAT, "wire: truncated payload");
    *payload = plen ? p + 16 + hlen : NULL;
    *used = 16 + hlen + (size_t)plen;
    return SF_OK;
}

/* ------------------------------------------------------------------------------------------
 * Byte streams. */

/* Wait until fd is ready for `events` or the stop flag rises. */
static sf_status wait_fd(int fd, short events, sf_err *err) {
    for (;;) {
        if (sf_stopped()) return sf_wire_stop_err(err);
        int sp = sf_stop_fd();
        struct pollfd pf[2] = {{fd, events, 0}, {sp, POLLIN, 0}};
        int n = poll(pf, sp >= 0 ? 2 : 1, sp >= 0 ? -1 : 200);
        if (n < 0 && errno != EINTR) return sf_fail(err, SF_E_IO, "wire: poll: %s", strerror(errno));
        if (sf_stopped()) return sf_wire_stop_err(err);
        if (n > 0 && pf[0].revents) return SF_OK;
    }
}

/* Read exactly n bytes; *got tells how many arrived before EOF. */
static sf_status read_full(sf_wire *w, void *buf, size_t n, size_t *got, sf_err *err) {
    uint8_t *p = buf;
    *got = 0;
    while (*got < n) {
        sf_status st = wait_fd(w->fd, POLLIN, err);
        if (st) return st;
        size_t want = n - *got < ((size_t)1 << 30) ? n - *got : ((size_t)1 << 30);
        ssize_t r = read(w->fd, p + *got, want);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return sf_fail(err, SF_E_IO, "wire: read %s: %s", w->url, strerror(errno));
        }
        if (r == 0) return SF_OK;
        *got += (size_t)r;
    }
    return SF_OK;
}

static sf_status write_full(sf_wire *w, const void *buf, size_t n, sf_err *err) {
    if (!n) return SF_OK;
    if (w->kind == SF_WK_FILE) {
        if (fwrite(buf, 1, n, (FILE *)w->af.fp) != n)
            return sf_fail(err, SF_E_IO, "wire: write %s: %s", w->url, strerror(errno));
        return SF_OK;
    }
    const uint8_t *p = buf;
    size_t done = 0;
    while (done < n) {
        sf_status st = wait_fd(w->fd, POLLOUT, err);
        if (st) return st;
        size_t want = n - done < ((size_t)1 << 30) ? n - done : ((size_t)1 << 30);
        ssize_t r = write(w->fd, p + done, want);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            if (errno == EPIPE) return sf_fail(err, SF_E_IO, "wire: downstream closed (%s)", w->url);
            return sf_fail(err, SF_E_IO, "wire: write %s: %s", w->url, strerror(errno));
        }
        done += (size_t)r;
    }
    return SF_OK;
}

static sf_status stream_send(sf_wire *w, const sf_wire_msg *m, const void *payload, sf_err *err) {
    void *hdr = NULL;
    size_t hlen = 0;
    sf_status st = sf_wire_header_encode(m, &hdr, &hlen, err);
    if (st) return st;
    uint8_t pre[8], plen[8];
    memcpy(pre, SF_WIRE_MAGIC, 4);
    wr32(pre + 4, (uint32_t)hlen);
    size_t nb = sf_wire_msg_nbytes(m);
    wr64(plen, nb);
    if (!(st = write_full(w, pre, 8, err)) && !(st = write_full(w, hdr, hlen, err)) && !(st = write_full(w, plen, 8, err)))
        st = write_full(w, payload, nb, err);
    free(hdr);
    return st;
}

static sf_status grow(uint8_t **buf, size_t *cap, size_t n, sf_err *err) {
    if (n <= *cap && *buf) return SF_OK;
    free(*buf);
    *buf = malloc(n ? n : 1);
    *cap = *buf ? n : 0;
    if (!*buf) return sf_fail(err, SF_E_NOMEM, "wire: cannot allocate %zu bytes", n);
    return SF_OK;
}

static sf_status stream_recv(sf_wire *w, sf_wire_msg *m, const void **payload, sf_err *err) {
    uint8_t pre[8];
    size_t got;
    sf_status st = read_full(w, pre, 8, &got, err);
    if (st) return st;
    if (got == 0) return sf_fail(err, SF_E_IO, "wire: %s: " SF_WIRE_UPSTREAM_CLOSED, w->url);
    if (got < 8) return sf_fail(err, SF_E_FORMAT, "wire: %s: truncated frame", w->url);
    if (memcmp(pre, SF_WIRE_MAGIC, 4) != 0) return sf_fail(err, SF_E_FORMAT, "wire: %s: bad magic (not an SFT1 stream)", w->url);
    uint32_t hlen = rd32(pre + 4);
    if (hlen == 0 || hlen > SF_WIRE_MAX_HEADER)
        return sf_fail(err, SF_E_FORMAT, "wire: %s: header length %u out of range (1..%u)", w->url, hlen, SF_WIRE_MAX_HEADER);
    if ((st = grow(&w->hbuf, &w->hcap, (size_t)hlen + 8, err))) return st;
    if ((st = read_full(w, w->hbuf, (size_t)hlen + 8, &got, err))) return st;
    if (got < (size_t)hlen + 8) return sf_fail(err, SF_E_FORMAT, "wire: %s: truncated frame", w->url);
    if ((st = sf_wire_header_decode(w->hbuf, hlen, m, err))) return st;
    uint64_t plen = rd64(w->hbuf + hlen);
    if ((st = check_payload_len(m, plen, err)) || (st = sf_wire_check_size(w, m, err))) return st;
    *payload = NULL;
    if (plen) {
        if ((st = grow(&w->pbuf, &w->pcap, (size_t)plen, err))) return st;
        if ((st = read_full(w, w->pbuf, (size_t)plen, &got, err))) return st;
        if (got < plen) return sf_fail(err, SF_E_FORMAT, "wire: %s: truncated payload", w->url);
        *payload = w->pbuf;
    }
    return SF_OK;
}

/* ------------------------------------------------------------------------------------------
 * Endpoints. */
/* Linux pipes hold 64 KiB by default; 1 MiB (the unprivileged maximum) cuts the context
 * switches per 4 MB message by 16x. Best effort: failures are ignored. */
static void grow_pipe(int fd) {
#ifdef __linux__
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISFIFO(sb.st_mode)) (void)fcntl(fd, 1031 /* F_SETPIPE_SZ */, 1 << 20);
#else
    (void)fd;
#endif
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* A message bigger than the reader takes is refused from its header, before any allocation. */
sf_status sf_wire_check_size(const sf_wire *w, const sf_wire_msg *m, sf_err *err) {
    size_t nb = sf_wire_msg_nbytes(m);
    if (nb > w->max_payload)
        return sf_fail(err, SF_E_FORMAT, "wire: %s: message '%s' announces %zu bytes, more than this reader takes (%zu)",
                       w->url, m->name, nb, w->max_payload);
    return SF_OK;
}

static sf_status wire_open(const char *url, int writer, const sf_wire_opts *o, sf_wire **out, sf_err *err) {
    *out = NULL;
    if (!url || !*url) return sf_fail(err, SF_E_ARG, "wire: empty URL");
    if (strlen(url) >= sizeof ((sf_wire *)0)->url) return sf_fail(err, SF_E_ARG, "wire: URL too long");
    sf_wire *w = calloc(1, sizeof *w);
    if (!w) return sf_fail(err, SF_E_NOMEM, "wire: out of memory");
    w->writer = writer;
    w->timeout_s = !o || o->timeout_s == 0 ? SF_WIRE_TIMEOUT_S : o->timeout_s < 0 ? 0 : o->timeout_s;
    w->max_payload = o && o->max_payload ? o->max_payload : SF_WIRE_MAX_MSG_DEFAULT;
    w->fd = -1;
    w->zfree_pipe[0] = w->zfree_pipe[1] = -1;
    snprintf(w->url, sizeof w->url, "%s", url);
    sf_status st = SF_OK;
    int force = 0;
    const char *u = url;
    if (u[0] == '@' || u[0] == '>') {
        force = u[0] == '@' ? 1 : 2;
        u++;
    }
    if (starts(u, "tcp://") || starts(u, "ipc://")) {
        w->kind = starts(u, "tcp://") ? SF_WK_TCP : SF_WK_IPC;
        st = sf_wire_zmq_open(w, u, force, err);
    } else if (starts(u, "shm://")) {
        w->kind = SF_WK_SHM;
        st = sf_wire_shm_open(w, u + 6, err);
    } else if (force) {
        st = sf_fail(err, SF_E_ARG, "wire: '%c' applies to tcp://, ipc:// and shm:// URLs only: %s", url[0], url);
    } else if (strcmp(u, "-") == 0) {
        w->kind = SF_WK_STDIO;
        w->fd = writer ? 1 : 0;
        grow_pipe(w->fd);
    } else if (starts(u, "fd:")) {
        char *end = NULL;
        errno = 0;
        long fd = strtol(u + 3, &end, 10);
        if (errno || !end || *end || end == u + 3 || fd < 0 || fd > 1 << 20) {
            st = sf_fail(err, SF_E_ARG, "wire: bad fd URL: %s", url);
        } else {
            w->kind = SF_WK_FD;
            w->fd = (int)fd;
            w->own_fd = 1;
            grow_pipe(w->fd);
            if (fcntl(w->fd, F_GETFD) < 0) st = sf_fail(err, SF_E_ARG, "wire: %s: fd %ld is not open", url, fd);
        }
    } else if (strstr(u, "://")) {
        st = sf_fail(err, SF_E_ARG, "wire: unknown URL scheme: %s (use -, fd:N, a path, tcp://, ipc://, shm://)", url);
    } else {
        w->kind = SF_WK_FILE;
        if (writer) {
            if (!(st = sf_atomic_open(&w->af, u, err))) w->file_open = 1;
        } else {
            /* never blocks in open(): a FIFO whose writer is not there yet is waited for in
             * poll (interruptible), a device or folder is refused */
            struct stat sb;
            w->own_fd = 1;
            if (sf_open_input(u, SF_IN_STREAM, 0, &w->fd, &sb, err)) {
                int missing = errno == ENOENT;
                char m2[sizeof err->msg];
                snprintf(m2, sizeof m2, "%s", err ? err->msg : "");
                st = sf_fail(err, missing ? SF_E_NOTFOUND : SF_E_IO, "wire: %s", m2);
            }
        }
    }
    if (st) {
        w->own_fd = w->fd >= 0 && w->own_fd;
        sf_wire_close(&w, NULL);
        return st;
    }
    *out = w;
    return SF_OK;
}

sf_status sf_wire_open_reader(const char *url, sf_wire **out, sf_err *err) { return wire_open(url, 0, NULL, out, err); }
sf_status sf_wire_open_writer(const char *url, sf_wire **out, sf_err *err) { return wire_open(url, 1, NULL, out, err); }
sf_status sf_wire_open_reader_opts(const char *url, const sf_wire_opts *o, sf_wire **out, sf_err *err) {
    return wire_open(url, 0, o, out, err);
}
sf_status sf_wire_open_writer_opts(const char *url, const sf_wire_opts *o, sf_wire **out, sf_err *err) {
    return wire_open(url, 1, o, out, err);
}

const char *sf_wire_kind(const sf_wire *w) {
    static const char *const names[] = {"?", "stdio", "fd", "file", "tcp", "ipc", "shm"};
    return w && w->kind >= 1 && w->kind <= SF_WK_SHM ? names[w->kind] : "?";
}

sf_status sf_wire_send(sf_wire *w, const sf_wire_msg *msg, const void *payload, sf_err *err) {
    if (!w || !w->writer) return sf_fail(err, SF_E_ARG, "wire: send on a reader");
    if (w->sent_end) return sf_fail(err, SF_E_ARG, "wire: send after end-of-stream");
    if (msg->type == SF_WIRE_TENSOR && !payload && sf_wire_msg_nbytes(msg))
        return sf_fail(err, SF_E_ARG, "wire: tensor %s without payload", msg->name);
    /* after a stop signal nothing more is sent — but a file's end-of-stream, which cannot block, still
       commits it: an endless run that Ctrl-C ends keeps what it made (sf-denoise) */
    if (sf_stopped() && !(w->kind == SF_WK_FILE && msg->type == SF_WIRE_END)) return sf_wire_stop_err(err);
    sf_status st;
    switch (w->kind) {
    case SF_WK_TCP: case SF_WK_IPC: st = sf_wire_zmq_send(w, msg, payload, err); break;
    case SF_WK_SHM: st = sf_wire_shm_send(w, msg, payload, err); break;
    default: st = stream_send(w, msg, payload, err); break;
    }
    if (!st && msg->type == SF_WIRE_END) w->sent_end = 1;
    return st;
}

sf_status sf_wire_send_tensor(sf_wire *w, const char *name, const sf_tensor *t, const sf_wire_msg *meta_from,
                              sf_err *err) {
    sf_wire_msg *m = malloc(sizeof *m);
    if (!m) return sf_fail(err, SF_E_NOMEM, "wire: out of memory");
    void *packed = NULL;
    sf_status st;
    if (meta_from) {
        memcpy(m, meta_from, sizeof *m);
        sf_wire_msg tmp;
        if ((st = sf_wire_msg_tensor(&tmp, name, t, err))) goto fail;
        m->type = SF_WIRE_TENSOR;
        memcpy(m->name, tmp.name, sizeof m->name);
        m->dtype = tmp.dtype;
        m->ndim = tmp.ndim;
        memcpy(m->shape, tmp.shape, sizeof m->shape);
    } else if ((st = sf_wire_msg_tensor(m, name, t, err))) {
        goto fail;
    }
    if (t->device >= 0) {
        st = sf_fail(err, SF_E_ARG, "wire: tensor %s is on a device; copy it to the host first", name);
        goto fail;
    }
    const void *data = t->data;
    if (!sf_tensor_is_contiguous(t)) {
        size_t nb = sf_wire_msg_nbytes(m);
        if (!(packed = malloc(nb ? nb : 1))) {
            st = sf_fail(err, SF_E_NOMEM, "wire: out of memory");
            goto fail;
        }
        sf_tensor_copy_contiguous(t, packed);
        data = packed;
    }
    st = sf_wire_send(w, m, data, err);
fail:
    free(packed);
    free(m);
    return st;
}

sf_status sf_wire_send_end(sf_wire *w, sf_err *err) {
    sf_wire_msg *m = malloc(sizeof *m);
    if (!m) return sf_fail(err, SF_E_NOMEM, "wire: out of memory");
    sf_wire_msg_init(m, SF_WIRE_END, "");
    sf_status st = sf_wire_send(w, m, NULL, err);
    free(m);
    return st;
}

sf_status sf_wire_send_error(sf_wire *w, const char *text, sf_err *err) {
    sf_wire_msg *m = malloc(sizeof *m);
    if (!m) return sf_fail(err, SF_E_NOMEM, "wire: out of memory");
    sf_wire_msg_init(m, SF_WIRE_ERROR, "");
    snprintf(m->text, sizeof m->text, "%s", text ? text : "");
    for (char *c = m->text; *c; c++)
        if (*c == '\n') *c = ' ';
    sf_status st = sf_wire_send(w, m, NULL, err);
    free(m);
    return st;
}

sf_status sf_wire_reserve(sf_wire *w, size_t nbytes, void **buf, sf_err *err) {
    if (!w || !w->writer) return sf_fail(err, SF_E_ARG, "wire: reserve on a reader");
    if (w->kind == SF_WK_SHM) return sf_wire_shm_reserve(w, nbytes, buf, err);
    uint8_t *p = w->scratch;
    sf_status st = grow(&p, &w->scratch_cap, nbytes, err);
    w->scratch = p;
    if (st) return st;
    *buf = w->scratch;
    return SF_OK;
}

sf_status sf_wire_recv(sf_wire *r, sf_wire_msg *msg, const void **payload, sf_err *err) {
    *payload = NULL;
    if (!r || r->writer) return sf_fail(err, SF_E_ARG, "wire: recv on a writer");
    if (r->got_end) {
        memcpy(msg, &r->end_msg, sizeof *msg);
        return SF_OK;
    }
    if (sf_stopped()) return sf_wire_stop_err(err);
    sf_status st;
    switch (r->kind) {
    case SF_WK_TCP: case SF_WK_IPC: st = sf_wire_zmq_recv(r, msg, payload, err); break;
    case SF_WK_SHM: st = sf_wire_shm_recv(r, msg, payload, err); break;
    default: st = stream_recv(r, msg, payload, err); break;
    }
    if (st) return st;
    if (msg->type == SF_WIRE_END) {
        r->got_end = 1;
        memcpy(&r->end_msg, msg, sizeof *msg);
        if (r->kind == SF_WK_TCP || r->kind == SF_WK_IPC || r->kind == SF_WK_SHM) sf_wire_zmq_end_received(r);
    } else if (msg->type == SF_WIRE_ERROR) {
        *payload = NULL;
        return sf_fail(err, SF_E_STOPPED, SF_WIRE_UPSTREAM_ERROR "%s", msg->text);
    }
    return SF_OK;
}

sf_status sf_wire_close(sf_wire **wp, sf_err *err) {
    sf_wire *w = wp ? *wp : NULL;
    if (!w) return SF_OK;
    *wp = NULL;
    sf_status st = SF_OK;
    if (w->kind == SF_WK_SHM) st = sf_wire_shm_close(w, err);
    else if (w->kind == SF_WK_TCP || w->kind == SF_WK_IPC) st = sf_wire_zmq_close(w, err);
    if (w->file_open) {
        if (w->sent_end) {
            sf_status s2 = sf_atomic_commit(&w->af, err);
            if (!st) st = s2;
        } else {
            sf_atomic_abort(&w->af);
        }
    }
    if (w->own_fd && w->fd >= 0) close(w->fd);
    free(w->hbuf);
    free(w->pbuf);
    free(w->scratch);
    free(w);
    return st;
}
