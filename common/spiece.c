/* spiece.c — SentencePiece `spiece.model` reader: protobuf wire format decoded by hand.
 *
 * Mirrors sentencepiece_model.proto (ModelProto: pieces = 1, trainer_spec = 2,
 * normalizer_spec = 3; see SPEC.md §2.3). Unknown fields are skipped by wire type (as
 * protobuf does), groups (wire types 3/4) are rejected. Every varint is at most 10 bytes,
 * every length is checked against the bytes left in its enclosing message.
 * Tested by tests/unit/test_spiece.c (the golden spiece.model and crafted bad inputs) and
 * tests/fuzz/fuzz_spiece.c. */
#include "spiece.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pb {
    const uint8_t *p, *end;
} pb;

static int pb_varint(pb *r, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) return 0;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0; /* longer than 10 bytes */
}

/* Read a field key; 0 at end of message, -1 on error, 1 ok. */
static int pb_key(pb *r, uint32_t *field, int *wt) {
    if (r->p == r->end) return 0;
    uint64_t k;
    if (!pb_varint(r, &k)) return -1;
    if ((k >> 3) == 0 || (k >> 3) > 0x1fffffff) return -1;
    *field = (uint32_t)(k >> 3);
    *wt = (int)(k & 7);
    return 1;
}

/* Length-delimited payload → sub-reader. */
static int pb_bytes(pb *r, pb *sub) {
    uint64_t n;
    if (!pb_varint(r, &n)) return 0;
    if (n > (uint64_t)(r->end - r->p)) return 0;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 1;
}

static int pb_fixed32(pb *r, uint32_t *v) {
    if (r->end - r->p < 4) return 0;
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    return 1;
}

static int pb_skip(pb *r, int wt) {
    uint64_t v;
    pb sub;
    switch (wt) {
    case 0: return pb_varint(r, &v);
    case 1:
        if (r->end - r->p < 8) return 0;
        r->p += 8;
        return 1;
    case 2: return pb_bytes(r, &sub);
    case 5:
        if (r->end - r->p < 4) return 0;
        r->p += 4;
        return 1;
    default: return 0; /* groups (3/4) and invalid types */
    }
}

/* int32 fields are sign-extended to 64 bits on the wire; keep the low 32 bits. */
static int32_t as_i32(uint64_t v) {
    return (int32_t)(uint32_t)(v & 0xffffffffu);
}

#define BAD(what) do { st = sf_fail(err, SF_E_FORMAT, "spiece.model: %s", what); goto fail; } while (0)

static sf_status parse_piece(pb *r, sf_spiece_model *m, size_t *pool_len, size_t *pool_cap,
                             size_t *offs, sf_err *err) {
    sf_status st = SF_OK;
    sf_spiece_piece pc = {NULL, 0, 0.0f, SF_SP_NORMAL};
    pb s = {NULL, NULL};
    int have_str = 0, rc;
    uint32_t f;
    int wt;
    while ((rc = pb_key(r, &f, &wt)) == 1) {
        if (f == 1 && wt == 2) {
            if (!pb_bytes(r, &s)) BAD("truncated piece string");
            have_str = 1;
        } else if (f == 2 && wt == 5) {
            uint32_t u;
            if (!pb_fixed32(r, &u)) BAD("truncated piece score");
            memcpy(&pc.score, &u, 4);
        } else if (f == 3 && wt == 0) {
            uint64_t v;
            if (!pb_varint(r, &v)) BAD("bad piece type");
            if (v < 1 || v > 6) BAD("unknown piece type");
            pc.type = (int)v;
        } else if (!pb_skip(r, wt)) {
            BAD("malformed field in a piece");
        }
    }
    if (rc < 0) BAD("malformed field key in a piece");
    if (!have_str || s.end == s.p) BAD("empty piece string");
    size_t n = (size_t)(s.end - s.p);
    if (n > 0xffffffu) BAD("piece string too long");
    if (memchr(s.p, 0, n)) BAD("NUL byte inside a piece");
    if (*pool_len + n + 1 > *pool_cap) {
        size_t cap = *pool_cap ? *pool_cap : 4096;
        while (cap < *pool_len + n + 1) {
            if (cap > SIZE_MAX / 2) { st = sf_fail(err, SF_E_NOMEM, "spiece.model: too large"); goto fail; }
            cap *= 2;
        }
        char *np = realloc(m->pool, cap);
        if (!np) { st = sf_fail(err, SF_E_NOMEM, "spiece.model: out of memory"); goto fail; }
        m->pool = np;
        *pool_cap = cap;
    }
    memcpy(m->pool + *pool_len, s.p, n);
    m->pool[*pool_len + n] = 0;
    *offs = *pool_len;
    *pool_len += n + 1;
    pc.len = (uint32_t)n;
    m->pieces[m->n_pieces] = pc;
fail:
    return st;
}

static sf_status parse_trainer(pb *r, sf_spiece_model *m, sf_err *err) {
    sf_status st = SF_OK;
    uint32_t f;
    int wt, rc;
    while ((rc = pb_key(r, &f, &wt)) == 1) {
        uint64_t v = 0;
        if (wt == 0 && (f == 3 || f == 4 || f == 24 || f == 35 || (f >= 40 && f <= 43))) {
            if (!pb_varint(r, &v)) BAD("bad trainer_spec varint");
            switch (f) {
            case 3: m->model_type = as_i32(v); break;
            case 4: m->vocab_size = as_i32(v); break;
            case 24: m->treat_ws_as_suffix = v != 0; break;
            case 35: m->byte_fallback = v != 0; break;
            case 40: m->unk_id = as_i32(v); break;
            case 41: m->bos_id = as_i32(v); break;
            case 42: m->eos_id = as_i32(v); break;
            case 43: m->pad_id = as_i32(v); break;
            }
        } else if (!pb_skip(r, wt)) {
            BAD("malformed field in trainer_spec");
        }
    }
    if (rc < 0) BAD("malformed field key in trainer_spec");
fail:
    return st;
}

static sf_status parse_normalizer(pb *r, sf_spiece_model *m, sf_err *err) {
    sf_status st = SF_OK;
    uint32_t f;
    int wt, rc;
    while ((rc = pb_key(r, &f, &wt)) == 1) {
        pb s;
        uint64_t v;
        if ((f == 1 || f == 2) && wt == 2) {
            if (!pb_bytes(r, &s)) BAD("truncated normalizer_spec string");
            size_t n = (size_t)(s.end - s.p);
            if (f == 1) {
                if (memchr(s.p, 0, n)) BAD("NUL in normalizer name");
                char *nm = malloc(n + 1);
                if (!nm) { st = sf_fail(err, SF_E_NOMEM, "spiece.model: out of memory"); goto fail; }
                memcpy(nm, s.p, n);
                nm[n] = 0;
                free(m->norm_name);
                m->norm_name = nm;
            } else {
                free(m->charsmap);
                m->charsmap = NULL;
                m->charsmap_len = 0;
                if (n) {
                    m->charsmap = malloc(n);
                    if (!m->charsmap) { st = sf_fail(err, SF_E_NOMEM, "spiece.model: out of memory"); goto fail; }
                    memcpy(m->charsmap, s.p, n);
                    m->charsmap_len = n;
                }
            }
        } else if (f >= 3 && f <= 5 && wt == 0) {
            if (!pb_varint(r, &v)) BAD("bad normalizer_spec varint");
            if (f == 3) m->add_dummy_prefix = v != 0;
            else if (f == 4) m->remove_extra_ws = v != 0;
            else m->escape_ws = v != 0;
        } else if (!pb_skip(r, wt)) {
            BAD("malformed field in normalizer_spec");
        }
    }
    if (rc < 0) BAD("malformed field key in normalizer_spec");
fail:
    return st;
}

sf_status sf_spiece_parse(const uint8_t *data, size_t len, sf_spiece_model **out, sf_err *err) {
    sf_status st = SF_OK;
    size_t cap = 0, pool_len = 0, pool_cap = 0;
    size_t *offs = NULL;
    *out = NULL;
    sf_spiece_model *m = calloc(1, sizeof *m);
    if (!m) return sf_fail(err, SF_E_NOMEM, "spiece.model: out of memory");
    m->model_type = 1;
    m->vocab_size = 8000;
    m->unk_id = 0, m->bos_id = 1, m->eos_id = 2, m->pad_id = -1;
    m->add_dummy_prefix = m->remove_extra_ws = m->escape_ws = 1;
    pb r = {data, data + len};
    if (!data && len) BAD("no data");
    uint32_t f;
    int wt, rc;
    while ((rc = pb_key(&r, &f, &wt)) == 1) {
        pb sub;
        if (f >= 1 && f <= 3 && wt == 2) {
            if (!pb_bytes(&r, &sub)) BAD("truncated message (length past the end of the file)");
            if (f == 1) {
                if (m->n_pieces == cap) {
                    size_t nc = cap ? cap * 2 : 1024;
                    sf_spiece_piece *np = sf_calloc2(nc, sizeof *np);
                    size_t *no = sf_calloc2(nc, sizeof *no);
                    if (!np || !no) {
                        free(np), free(no);
                        st = sf_fail(err, SF_E_NOMEM, "spiece.model: out of memory");
                        goto fail;
                    }
                    if (m->n_pieces) {
                        memcpy(np, m->pieces, m->n_pieces * sizeof *np);
                        memcpy(no, offs, m->n_pieces * sizeof *no);
                    }
                    free(m->pieces), free(offs);
                    m->pieces = np, offs = no, cap = nc;
                }
                if ((st = parse_piece(&sub, m, &pool_len, &pool_cap, &offs[m->n_pieces], err))) goto fail;
                m->n_pieces++;
            } else if (f == 2) {
                if ((st = parse_trainer(&sub, m, err))) goto fail;
            } else {
                if ((st = parse_normalizer(&sub, m, err))) goto fail;
            }
        } else if (!pb_skip(&r, wt)) {
            BAD("malformed top-level field (not a SentencePiece model?)");
        }
    }
    if (rc < 0) BAD("malformed top-level field key (not a SentencePiece model?)");
    if (m->n_pieces == 0) BAD("no pieces (not a SentencePiece model?)");
    if (m->n_pieces > INT32_MAX) BAD("too many pieces");
    for (size_t i = 0; i < m->n_pieces; i++) m->pieces[i].str = m->pool + offs[i];
    /* unk must exist; bos/eos/pad outside the vocabulary mean "not defined" (-1) */
    if (m->unk_id < 0 || (size_t)m->unk_id >= m->n_pieces) {
        st = sf_fail(err, SF_E_FORMAT, "spiece.model: unk_id %d out of range (%zu pieces)", (int)m->unk_id,
                     m->n_pieces);
        goto fail;
    }
    if (m->bos_id < 0 || (size_t)m->bos_id >= m->n_pieces) m->bos_id = -1;
    if (m->eos_id < 0 || (size_t)m->eos_id >= m->n_pieces) m->eos_id = -1;
    if (m->pad_id < 0 || (size_t)m->pad_id >= m->n_pieces) m->pad_id = -1;
    if (!m->norm_name) {
        m->norm_name = calloc(1, 1);
        if (!m->norm_name) { st = sf_fail(err, SF_E_NOMEM, "spiece.model: out of memory"); goto fail; }
    }
    free(offs);
    *out = m;
    return SF_OK;
fail:
    free(offs);
    sf_spiece_destroy(&m);
    return st;
}

sf_status sf_spiece_load(const char *path, sf_spiece_model **out, sf_err *err) {
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    /* SentencePiece models are a few MB (umT5: 4.5 MB); 256 MiB bounds a hostile pipe or file */
    sf_status st = sf_read_file(path, &data, &len, (size_t)256 << 20, err);
    if (st) return st;
    st = sf_spiece_parse((const uint8_t *)data, len, out, err);
    if (st) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        sf_fail(err, st, "%s: %s", path, msg);
    }
    free(data);
    return st;
}

void sf_spiece_destroy(sf_spiece_model **mp) {
    if (!mp || !*mp) return;
    sf_spiece_model *m = *mp;
    free(m->pieces);
    free(m->pool);
    free(m->norm_name);
    free(m->charsmap);
    free(m);
    *mp = NULL;
}
