/* tokenizer.c — umT5 prompt tokenizer: cleaning, SentencePiece normalization, unigram Viterbi.
 *
 * Mirrors wan/modules/tokenizers.py (basic_clean + whitespace_clean) and the SentencePiece
 * 0.1.97 encoder the goldens were made with (normalizer.cc Normalize/NormalizePrefix,
 * unigram_model.cc Encode, sentencepiece_processor.cc unknown fusion). SPEC.md §2.
 * Piece lookup is an open-addressing hash over the matchable pieces (NORMAL, USER_DEFINED):
 * at each start position the FNV-1a hash is extended one byte at a time up to the longest
 * piece, so load is O(vocab) and encoding O(bytes · max_piece_len).
 * Tested by tests/unit/test_tokenizer.c (all 28 golden prompts byte-exact, html/whitespace
 * cases, bad UTF-8) and tests/bats/sf-encode.bats. */
#include "tokenizer.h"
#include "stages/encode/html_entities.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sf_tokenizer {
    sf_spiece_model *m;
    uint32_t *slots;       /* [n_slots] piece id + 1, 0 = empty */
    uint64_t *hashes;      /* [n_pieces] FNV-1a of each piece (valid for hashed pieces) */
    size_t n_slots;        /* power of two */
    uint32_t max_len;      /* longest matchable piece, bytes */
    uint32_t max_ud_len;   /* longest USER_DEFINED piece, 0 when none */
    float unk_score;       /* min NORMAL score - 10 */
    float max_score;       /* spm's max_score_ (starts at FLT_MIN) for USER_DEFINED pieces */
    int32_t byte_ids[256]; /* <0xNN> pieces for byte fallback, -1 when absent */
    /* precompiled charsmap: Darts-clone double array + NUL-separated pool */
    const uint32_t *units; /* borrowed from m->charsmap, unaligned-safe copy below */
    uint32_t *units_buf;
    size_t n_units;
    const char *cpool;
    size_t cpool_len;
};

/* ---------- small growable byte buffer ---------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_put(sbuf *b, const void *s, size_t n) {
    if (n > SIZE_MAX - b->n - 1) return 0;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) {
            if (cap > SIZE_MAX / 2) return 0;
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) return 0;
        b->p = np, b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 1;
}

static int sb_cp(sbuf *b, uint32_t c) { /* append code point as UTF-8 */
    char u[4];
    size_t n;
    if (c < 0x80) u[0] = (char)c, n = 1;
    else if (c < 0x800) u[0] = (char)(0xc0 | c >> 6), u[1] = (char)(0x80 | (c & 63)), n = 2;
    else if (c < 0x10000)
        u[0] = (char)(0xe0 | c >> 12), u[1] = (char)(0x80 | ((c >> 6) & 63)), u[2] = (char)(0x80 | (c & 63)), n = 3;
    else
        u[0] = (char)(0xf0 | c >> 18), u[1] = (char)(0x80 | ((c >> 12) & 63)), u[2] = (char)(0x80 | ((c >> 6) & 63)),
        u[3] = (char)(0x80 | (c & 63)), n = 4;
    return sb_put(b, u, n);
}

/* ---------- UTF-8 ---------- */

/* Decode one strict UTF-8 character at s[0..n); returns its length, 0 when invalid. */
static size_t utf8_dec(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) return *cp = c, 1;
    size_t len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) len = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

sf_status sf_utf8_check(const char *s, size_t len, const char *what, sf_err *err) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        if (u[i] == 0) return sf_fail(err, SF_E_FORMAT, "%s contains a NUL byte at byte offset %zu", what, i);
        size_t k = utf8_dec(u + i, len - i, &cp);
        if (!k) return sf_fail(err, SF_E_FORMAT, "%s is not valid UTF-8 (bad byte 0x%02x at offset %zu)", what, u[i], i);
        i += k;
    }
    return SF_OK;
}

/* Unicode White_Space (the regex package's \s, what the reference's whitespace_clean uses). */
static int is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Python str.isspace (used by str.strip): White_Space plus the separators U+001C..U+001F. */
static int is_py_space(uint32_t c) {
    return is_white_space(c) || (c >= 0x1c && c <= 0x1f);
}

/* ---------- html.unescape ---------- */

/* html._invalid_charrefs for 0x80..0x9f (Windows-1252; undefined bytes map to themselves). */
static const uint16_t cp1252_c1[32] = {
    0x20ac, 0x81, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x8d, 0x017d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
    0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d, 0x017e, 0x0178};

static int html_numeric(sbuf *b, uint64_t num) {
    if (num == 0) return sb_cp(b, 0xfffd);
    if (num == 0x0d) return sb_cp(b, 0x0d);
    if (num >= 0x80 && num <= 0x9f) return sb_cp(b, cp1252_c1[num - 0x80]);
    if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return sb_cp(b, 0xfffd);
    /* html._invalid_codepoints → '' */
    if ((num >= 0x1 && num <= 0x8) || num == 0xb || (num >= 0xe && num <= 0x1f) || (num >= 0x7f && num <= 0x9f) ||
        (num >= 0xfdd0 && num <= 0xfdef) || (num & 0xfffe) == 0xfffe)
        return 1;
    return sb_cp(b, (uint32_t)num);
}

static const sf_html_entity *entity_find(const char *name, size_t n) {
    size_t lo = 0, hi = sf_html_n_entities;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *e = sf_html_entities[mid].name;
        int c = strncmp(e, name, n);
        if (c == 0) c = e[n] ? 1 : 0; /* e longer than name → e sorts after */
        if (c == 0) return &sf_html_entities[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int is_hex(int c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Python: re.sub(r'&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)', _replace_charref, s) */
sf_status sf_html_unescape(const char *s, size_t len, char **out, size_t *out_len, sf_err *err) {
    sbuf b = {0};
    *out = NULL;
    if (!sb_put(&b, "", 0)) goto nomem;
    for (size_t i = 0; i < len;) {
        if (s[i] != '&') {
            const char *amp = memchr(s + i, '&', len - i);
            size_t k = amp ? (size_t)(amp - (s + i)) : len - i;
            if (!sb_put(&b, s + i, k)) goto nomem;
            i += k;
            continue;
        }
        size_t j = i + 1;
        if (j < len && s[j] == '#') {
            int hex = j + 1 < len && (s[j + 1] == 'x' || s[j + 1] == 'X');
            size_t d = j + 1 + (size_t)hex, e = d;
            uint64_t num = 0;
            while (e < len && (hex ? is_hex((unsigned char)s[e]) : (s[e] >= '0' && s[e] <= '9'))) {
                int v = s[e] <= '9' ? s[e] - '0' : (s[e] | 0x20) - 'a' + 10;
                num = num * (hex ? 16 : 10) + (uint64_t)v;
                if (num > 0x110000) num = 0x110000; /* saturate: anything larger is U+FFFD */
                e++;
            }
            if (e == d) { /* no digits: not a reference */
                if (!sb_put(&b, "&", 1)) goto nomem;
                i++;
                continue;
            }
            if (e < len && s[e] == ';') e++;
            if (!html_numeric(&b, num)) goto nomem;
            i = e;
            continue;
        }
        /* named: up to 32 characters not in "\t\n\f <&#;", then an optional ';' */
        size_t e = j, nch = 0;
        while (e < len && nch < 32) {
            unsigned char c = (unsigned char)s[e];
            if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';') break;
            uint32_t cp;
            size_t k = utf8_dec((const unsigned char *)s + e, len - e, &cp);
            if (!k) k = 1; /* callers pass valid UTF-8; stay safe anyway */
            e += k, nch++;
        }
        if (nch == 0) {
            if (!sb_put(&b, "&", 1)) goto nomem;
            i++;
            continue;
        }
        if (e < len && s[e] == ';') e++;
        const char *name = s + j;
        size_t nlen = e - j;
        const sf_html_entity *ent = entity_find(name, nlen);
        if (ent) {
            if (!sb_put(&b, ent->utf8, strlen(ent->utf8))) goto nomem;
        } else {
            /* longest prefix of at least 2 characters that is a known name (x in range(len-1, 1, -1));
             * Python slices by code point; entity names are ASCII so only ASCII prefixes can match */
            size_t x = 0;
            const sf_html_entity *best = NULL;
            size_t nchars = 0;
            for (size_t q = 0; q < nlen; q++) nchars += ((unsigned char)name[q] & 0xc0) != 0x80;
            for (size_t xc = nchars - 1; xc >= 2 && xc < nchars; xc--) {
                size_t q = 0, cc = 0; /* byte length of the first xc characters */
                while (q < nlen && cc < xc) {
                    q++;
                    while (q < nlen && ((unsigned char)name[q] & 0xc0) == 0x80) q++;
                    cc++;
                }
                if ((best = entity_find(name, q))) {
                    x = q;
                    break;
                }
            }
            if (best) {
                if (!sb_put(&b, best->utf8, strlen(best->utf8)) || !sb_put(&b, name + x, nlen - x)) goto nomem;
            } else {
                if (!sb_put(&b, "&", 1) || !sb_put(&b, name, nlen)) goto nomem;
            }
        }
        i = e;
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return SF_OK;
nomem:
    free(b.p);
    return sf_fail(err, SF_E_NOMEM, "out of memory unescaping a prompt");
}

/* ---------- cleaning ---------- */

sf_status sf_text_clean(const char *text, size_t len, char **out, size_t *out_len, sf_err *err) {
    sf_status st;
    char *a = NULL, *c = NULL;
    size_t an = 0, cn = 0;
    sbuf q = {0}, w = {0};
    *out = NULL;
    if ((st = sf_utf8_check(text, len, "prompt", err))) return st;
    /* ftfy.fix_text's uncurl_quotes: U+02BC, U+2018..U+201B → ', U+201C..U+201F → " */
    if (!sb_put(&q, "", 0)) goto nomem;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_dec((const unsigned char *)text + i, len - i, &cp);
        int ok = cp == 0x2bc || (cp >= 0x2018 && cp <= 0x201b) ? sb_put(&q, "'", 1)
                 : cp >= 0x201c && cp <= 0x201f                 ? sb_put(&q, "\"", 1)
                                                                : sb_put(&q, text + i, k);
        if (!ok) goto nomem;
        i += k;
    }
    if ((st = sf_html_unescape(q.p, q.n, &a, &an, err))) goto fail;
    if ((st = sf_html_unescape(a, an, &c, &cn, err))) goto fail;
    /* strip (isspace), collapse \s+ (White_Space) to ' ', strip again */
    const unsigned char *u = (const unsigned char *)c;
    size_t i = 0, end = cn;
    if (!sb_put(&w, "", 0)) goto nomem;
    int pending_space = 0;
    while (i < end) {
        uint32_t cp;
        size_t k = utf8_dec(u + i, end - i, &cp);
        if (!k) { st = sf_fail(err, SF_E_FORMAT, "prompt: invalid UTF-8 after unescaping"); goto fail; }
        if (is_white_space(cp) || (is_py_space(cp) && w.n == 0)) {
            pending_space = w.n > 0;
        } else {
            if (pending_space && !sb_put(&w, " ", 1)) goto nomem;
            pending_space = 0;
            if (!sb_put(&w, c + i, k)) goto nomem;
        }
        i += k;
    }
    /* trailing U+001C..U+001F survive the collapse but not the final strip */
    for (;;) {
        size_t n = w.n;
        if (n && w.p[n - 1] >= 0x1c && w.p[n - 1] <= 0x1f) {
            w.p[--w.n] = 0;
            while (w.n && w.p[w.n - 1] == ' ') w.p[--w.n] = 0;
        } else {
            break;
        }
    }
    free(a), free(c), free(q.p);
    *out = w.p;
    if (out_len) *out_len = w.n;
    return SF_OK;
nomem:
    st = sf_fail(err, SF_E_NOMEM, "out of memory cleaning a prompt");
fail:
    free(a), free(c), free(q.p), free(w.p);
    return st;
}

/* ---------- model setup ---------- */

static uint64_t fnv_step(uint64_t h, unsigned char c) {
    return (h ^ c) * 0x100000001b3ULL;
}
#define FNV_INIT 0xcbf29ce484222325ULL

static int matchable(int type) {
    return type == SF_SP_NORMAL || type == SF_SP_USER_DEFINED;
}

/* Look up the piece s[0..n) with precomputed hash h; id or -1. */
static int32_t lookup(const sf_tokenizer *t, const char *s, size_t n, uint64_t h) {
    size_t mask = t->n_slots - 1;
    for (size_t k = (size_t)h & mask;; k = (k + 1) & mask) {
        uint32_t v = t->slots[k];
        if (!v) return -1;
        const sf_spiece_piece *p = &t->m->pieces[v - 1];
        if (t->hashes[v - 1] == h && p->len == n && memcmp(p->str, s, n) == 0) return (int32_t)(v - 1);
    }
}

static sf_status charsmap_init(sf_tokenizer *t, sf_err *err) {
    const sf_spiece_model *m = t->m;
    if (!m->charsmap_len) return SF_OK;
    if (m->charsmap_len < 4) return sf_fail(err, SF_E_FORMAT, "spiece.model: precompiled_charsmap too short");
    const uint8_t *d = m->charsmap;
    uint32_t tb = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
    if (tb == 0 || tb % 4 || tb > m->charsmap_len - 4)
        return sf_fail(err, SF_E_FORMAT, "spiece.model: precompiled_charsmap trie size %u invalid for %zu bytes", tb,
                       m->charsmap_len);
    t->n_units = tb / 4;
    t->units_buf = malloc(tb);
    if (!t->units_buf) return sf_fail(err, SF_E_NOMEM, "out of memory (charsmap)");
    for (size_t i = 0; i < t->n_units; i++) {
        const uint8_t *p = d + 4 + 4 * i;
        t->units_buf[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    t->units = t->units_buf;
    t->cpool = (const char *)d + 4 + tb;
    t->cpool_len = m->charsmap_len - 4 - tb;
    return SF_OK;
}

sf_status sf_tokenizer_new(sf_spiece_model **model, sf_tokenizer **out, sf_err *err) {
    sf_status st = SF_OK;
    *out = NULL;
    sf_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        sf_spiece_destroy(model);
        return sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer)");
    }
    t->m = *model;
    *model = NULL;
    sf_spiece_model *m = t->m;
    if (m->model_type != 1) {
        st = sf_fail(err, SF_E_UNSUPPORTED, "spiece.model: model_type %d is not UNIGRAM (1)", m->model_type);
        goto fail;
    }
    if (m->unk_id < 0 || m->pieces[m->unk_id].type != SF_SP_UNKNOWN) {
        st = sf_fail(err, SF_E_FORMAT, "spiece.model: unk_id %d is not an UNKNOWN piece", (int)m->unk_id);
        goto fail;
    }
    if ((st = charsmap_init(t, err))) goto fail;
    size_t ns = 16;
    while (ns < 2 * m->n_pieces) ns *= 2;
    t->n_slots = ns;
    t->slots = sf_calloc2(ns, sizeof *t->slots);
    t->hashes = sf_calloc2(m->n_pieces, sizeof *t->hashes);
    if (!t->slots || !t->hashes) { st = sf_fail(err, SF_E_NOMEM, "out of memory (vocabulary)"); goto fail; }
    float min_score = FLT_MAX;
    t->max_score = FLT_MIN; /* as spm: max over NORMAL scores, starting from FLT_MIN */
    for (int i = 0; i < 256; i++) t->byte_ids[i] = -1;
    for (size_t i = 0; i < m->n_pieces; i++) {
        const sf_spiece_piece *p = &m->pieces[i];
        if (p->type == SF_SP_NORMAL) {
            if (p->score < min_score) min_score = p->score;
            if (p->score > t->max_score) t->max_score = p->score;
        }
        if (p->type == SF_SP_BYTE && p->len == 6 && memcmp(p->str, "<0x", 3) == 0 && p->str[5] == '>') {
            unsigned v = 0;
            int ok = 1;
            for (int k = 3; k < 5; k++) {
                int c = (unsigned char)p->str[k];
                if (!is_hex(c)) ok = 0;
                else v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
            }
            if (ok) t->byte_ids[v] = (int32_t)i;
        }
        if (!matchable(p->type)) continue;
        uint64_t h = FNV_INIT;
        for (uint32_t k = 0; k < p->len; k++) h = fnv_step(h, (unsigned char)p->str[k]);
        t->hashes[i] = h;
        if (lookup(t, p->str, p->len, h) >= 0) {
            st = sf_fail(err, SF_E_FORMAT, "spiece.model: piece %zu duplicates an earlier piece", i);
            goto fail;
        }
        size_t k = (size_t)h & (ns - 1);
        while (t->slots[k]) k = (k + 1) & (ns - 1);
        t->slots[k] = (uint32_t)(i + 1);
        if (p->len > t->max_len) t->max_len = p->len;
        if (p->type == SF_SP_USER_DEFINED && p->len > t->max_ud_len) t->max_ud_len = p->len;
    }
    if (min_score == FLT_MAX) min_score = 0; /* no NORMAL piece: spm would keep FLT_MAX; stay finite */
    t->unk_score = min_score - 10.0f;
    *out = t;
    return SF_OK;
fail:
    sf_tokenizer_destroy(&t);
    return st;
}

sf_status sf_tokenizer_load(const char *path, sf_tokenizer **out, sf_err *err) {
    sf_spiece_model *m = NULL;
    *out = NULL;
    sf_status st = sf_spiece_load(path, &m, err);
    if (st) return st;
    st = sf_tokenizer_new(&m, out, err);
    if (st) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        sf_fail(err, st, "%s: %s", path, msg);
    }
    return st;
}

void sf_tokenizer_destroy(sf_tokenizer **tp) {
    if (!tp || !*tp) return;
    sf_tokenizer *t = *tp;
    sf_spiece_destroy(&t->m);
    free(t->slots);
    free(t->hashes);
    free(t->units_buf);
    free(t);
    *tp = NULL;
}

const sf_spiece_model *sf_tokenizer_model(const sf_tokenizer *t) {
    return t->m;
}

const char *sf_tokenizer_piece(const sf_tokenizer *t, int32_t id) {
    if (id < 0 || (size_t)id >= t->m->n_pieces) return NULL;
    return t->m->pieces[id].str;
}

/* ---------- normalization (normalizer.cc) ---------- */

/* Longest charsmap match at s[0..n): *mlen bytes replaced by *rep (NUL-terminated, in the
 * pool). 0 = no match, -1 = corrupt map. Darts-clone commonPrefixSearch. */
static int charsmap_match(const sf_tokenizer *t, const unsigned char *s, size_t n, size_t *mlen, const char **rep) {
    if (!t->n_units) return 0;
    const uint32_t *u = t->units;
    size_t pos = (size_t)(u[0] >> 10) << ((u[0] & 0x200) >> 6);
    size_t best = 0;
    uint32_t val = 0;
    for (size_t i = 0; i < n; i++) {
        pos ^= s[i];
        if (pos >= t->n_units) break;
        uint32_t w = u[pos];
        if ((w & 0x800000ffu) != s[i]) break;
        pos ^= (size_t)(w >> 10) << ((w & 0x200) >> 6);
        if (pos >= t->n_units) return -1;
        if ((w >> 8) & 1) {
            best = i + 1;
            val = u[pos] & 0x7fffffffu;
        }
    }
    if (!best) return 0;
    if (val >= t->cpool_len || !memchr(t->cpool + val, 0, t->cpool_len - val)) return -1;
    *mlen = best;
    *rep = t->cpool + val;
    return 1;
}

/* spm's OneCharLen: length from the lead byte only (no validation). */
static size_t one_char_len(unsigned char c) {
    static const unsigned char tab[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return tab[c >> 4];
}

/* NormalizePrefix: (sp, spn) = replacement, returns consumed bytes (≥ 1), 0 on a corrupt map. */
static size_t norm_prefix(const sf_tokenizer *t, const unsigned char *s, size_t n, const char **sp, size_t *spn) {
    /* user-defined pieces are kept verbatim (PrefixMatcher, longest match) */
    if (t->max_ud_len) {
        uint64_t h = FNV_INIT;
        size_t best = 0;
        for (size_t k = 0; k < n && k < t->max_ud_len; k++) {
            h = fnv_step(h, s[k]);
            int32_t id = lookup(t, (const char *)s, k + 1, h);
            if (id >= 0 && t->m->pieces[id].type == SF_SP_USER_DEFINED) best = k + 1;
        }
        if (best) {
            *sp = (const char *)s, *spn = best;
            return best;
        }
    }
    size_t ml = 0;
    const char *rep = NULL;
    int r = charsmap_match(t, s, n, &ml, &rep);
    if (r < 0) return 0;
    if (r > 0) {
        *sp = rep, *spn = strlen(rep);
        return ml;
    }
    uint32_t cp;
    size_t k = utf8_dec(s, n, &cp);
    if (!k) { /* malformed: U+FFFD, consume one byte */
        *sp = "\xEF\xBF\xBD", *spn = 3;
        return 1;
    }
    *sp = (const char *)s, *spn = k;
    return k;
}

sf_status sf_tokenizer_normalize(const sf_tokenizer *t, const char *text, size_t len, char **out, size_t *out_len,
                                 sf_err *err) {
    const sf_spiece_model *m = t->m;
    const unsigned char *s = (const unsigned char *)text;
    static const char ws[] = "\xE2\x96\x81"; /* U+2581 '▁' */
    const char *space = m->escape_ws ? ws : " ";
    size_t space_n = m->escape_ws ? 3 : 1;
    sbuf b = {0};
    *out = NULL;
    if (!sb_put(&b, "", 0)) goto nomem;
    size_t i = 0;
    const char *sp;
    size_t spn, k;
    if (m->remove_extra_ws) { /* skip leading (normalized) spaces */
        while (i < len) {
            if (!(k = norm_prefix(t, s + i, len - i, &sp, &spn))) goto corrupt;
            if (!(spn == 1 && sp[0] == ' ')) break;
            i += k;
        }
    }
    if (i == len) goto done;
    if (!m->treat_ws_as_suffix && m->add_dummy_prefix && !sb_put(&b, space, space_n)) goto nomem;
    int prev_space = m->remove_extra_ws;
    while (i < len) {
        if (!(k = norm_prefix(t, s + i, len - i, &sp, &spn))) goto corrupt;
        while (prev_space && spn && sp[0] == ' ') sp++, spn--;
        if (spn) {
            for (size_t q = 0; q < spn; q++) {
                int ok = (m->escape_ws && sp[q] == ' ') ? sb_put(&b, ws, 3) : sb_put(&b, sp + q, 1);
                if (!ok) goto nomem;
            }
            prev_space = sp[spn - 1] == ' ';
        }
        i += k;
        if (!m->remove_extra_ws) prev_space = 0;
    }
    if (m->remove_extra_ws)
        while (b.n >= space_n && memcmp(b.p + b.n - space_n, space, space_n) == 0) b.n -= space_n, b.p[b.n] = 0;
    if (m->treat_ws_as_suffix && m->add_dummy_prefix && !sb_put(&b, space, space_n)) goto nomem;
done:
    *out = b.p;
    if (out_len) *out_len = b.n;
    return SF_OK;
nomem:
    free(b.p);
    return sf_fail(err, SF_E_NOMEM, "out of memory normalizing a prompt");
corrupt:
    free(b.p);
    return sf_fail(err, SF_E_FORMAT, "spiece.model: corrupt precompiled_charsmap");
}

/* ---------- unigram Viterbi (unigram_model.cc EncodeOptimized) ---------- */

static sf_status viterbi(const sf_tokenizer *t, const char *s, size_t n, int32_t **ids_out, size_t *n_out,
                         sf_err *err) {
    float *best = sf_calloc2(n + 1, sizeof *best);
    int32_t *from = sf_calloc2(n + 1, sizeof *from), *pid = sf_calloc2(n + 1, sizeof *pid);
    int32_t *rev = sf_calloc2(n + 1, sizeof *rev), *ids = NULL;
    size_t *rstart = sf_calloc2(n + 1, sizeof *rstart);
    sf_status st = SF_OK;
    if (!best || !from || !pid || !rev || !rstart) { st = sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer)"); goto fail; }
    for (size_t i = 0; i <= n; i++) from[i] = -1;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t start = 0; start < n;) {
        size_t mblen = one_char_len(u[start]);
        if (mblen > n - start) mblen = n - start;
        float base = best[start];
        int single = 0;
        uint64_t h = FNV_INIT;
        for (size_t k = start; k < n && k - start < t->max_len; k++) {
            h = fnv_step(h, u[k]);
            size_t l = k + 1 - start;
            int32_t id = lookup(t, s + start, l, h);
            if (id < 0) continue;
            const sf_spiece_piece *p = &t->m->pieces[id];
            float sc = p->score;
            if (p->type == SF_SP_USER_DEFINED) { /* spm: length (chars) * max_score - 0.1 */
                size_t nch = 0;
                for (size_t q = 0; q < l; q++) nch += (u[start + q] & 0xc0) != 0x80;
                sc = (float)nch * t->max_score - 0.1f;
            }
            float cand = base + sc;
            if (from[k + 1] < 0 || cand > best[k + 1]) best[k + 1] = cand, from[k + 1] = (int32_t)start, pid[k + 1] = id;
            if (l == mblen) single = 1;
        }
        if (!single) {
            float cand = base + t->unk_score;
            size_t e = start + mblen;
            if (from[e] < 0 || cand > best[e]) best[e] = cand, from[e] = (int32_t)start, pid[e] = t->m->unk_id;
        }
        start += mblen;
    }
    /* backtrack */
    size_t nr = 0;
    for (size_t e = n; e > 0;) {
        if (from[e] < 0) { st = sf_fail(err, SF_E_FORMAT, "tokenizer: no segmentation (internal)"); goto fail; }
        rev[nr] = pid[e];
        rstart[nr] = (size_t)from[e];
        nr++;
        e = (size_t)from[e];
    }
    /* forward order; fuse consecutive unknowns (or expand them to bytes with byte_fallback) */
    size_t cap = t->m->byte_fallback ? 4 * n + 1 : nr + 1, no = 0;
    ids = sf_calloc2(cap, sizeof *ids);
    if (!ids) { st = sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer)"); goto fail; }
    int prev_unk = 0;
    for (size_t r = nr; r-- > 0;) {
        int32_t id = rev[r];
        int is_unk = id == t->m->unk_id;
        if (is_unk && t->m->byte_fallback) {
            size_t a = rstart[r], e = r ? rstart[r - 1] : n;
            int all = 1;
            for (size_t q = a; q < e; q++) all &= t->byte_ids[u[q]] >= 0;
            if (all) {
                for (size_t q = a; q < e; q++) ids[no++] = t->byte_ids[u[q]];
                prev_unk = 0;
                continue;
            }
        }
        if (!(is_unk && prev_unk)) ids[no++] = id;
        prev_unk = is_unk;
    }
    *ids_out = ids;
    *n_out = no;
    ids = NULL;
fail:
    free(best), free(from), free(pid), free(rev), free(rstart), free(ids);
    return st;
}

sf_status sf_tokenizer_encode(const sf_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n,
                              sf_err *err) {
    char *norm = NULL;
    size_t nn = 0;
    *ids = NULL;
    *n = 0;
    sf_status st = sf_utf8_check(text, len, "text", err);
    if (st) return st;
    if ((st = sf_tokenizer_normalize(t, text, len, &norm, &nn, err))) return st;
    if (nn) st = viterbi(t, norm, nn, ids, n, err);
    free(norm);
    return st;
}

sf_status sf_tokenizer_prompt(const sf_tokenizer *t, const char *prompt, size_t len, size_t seq_len, int64_t *ids,
                              int64_t *mask, size_t *n_tokens, char **cleaned, sf_err *err) {
    char *c = NULL;
    size_t cn = 0, n = 0;
    int32_t *pieces = NULL;
    if (cleaned) *cleaned = NULL;
    if (seq_len < 1) return sf_fail(err, SF_E_ARG, "text length must be at least 1");
    if (t->m->eos_id < 0) return sf_fail(err, SF_E_FORMAT, "spiece.model: no eos piece");
    sf_status st = sf_text_clean(prompt, len, &c, &cn, err);
    if (st) return st;
    if ((st = sf_tokenizer_encode(t, c, cn, &pieces, &n, err))) goto fail;
    size_t keep = n < seq_len - 1 ? n : seq_len - 1;
    int64_t pad = t->m->pad_id >= 0 ? t->m->pad_id : 0;
    for (size_t i = 0; i < seq_len; i++) {
        ids[i] = i < keep ? pieces[i] : i == keep ? t->m->eos_id : pad;
        mask[i] = i <= keep;
    }
    *n_tokens = keep + 1;
    if (cleaned) *cleaned = c, c = NULL;
fail:
    free(c);
    free(pieces);
    return st;
}
