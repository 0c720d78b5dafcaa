/* tokenizer.c — umT5 prompt tokenizer: cleaning, SentencePiece normalization, unigram Viterbi.
 *
 * Mirrors wan/modules/tokenizers.py (basic_clean + whitespace_clean) and the SentencePiece
 * 0.1.97 encoder the goldens were made with (normalizer.cc Normalize/NormalizePrefix,
 * unigram_model.cc Encode, sentencepiece_processor.cc unknown fusion). SPEC.md §2.
 * Piece lookup is an open-addressing hash over the matchable pieces (NORMAL, USER_DEFINED;
 * every piece for tokenizer.json): at each start position the FNV-1a hash is extended one byte at
 * a time up to the longest piece, so load is O(vocab) and encoding O(bytes · max_piece_len).
 * The lattice (sf_tok_lattice) serves both files; tokenizer.json's pipeline around it is hftok.c.
 * Tested by tests/unit/test_tokenizer.c (all 28 golden prompts byte-exact, html/whitespace
 * cases, bad UTF-8), tests/unit/test_hftok.c and tests/bats/sf-encode.bats. */
#include "tokenizer.h"
#include "stages/encode/sbuf.h"
#include "stages/encode/tokenizer_impl.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct sf_tokenizer {
    sf_spiece_model *m;
    sf_hf_pipe *pipe;      /* tokenizer.json's pipeline (hftok.c); NULL for spiece.model */
    double *dscores;       /* tokenizer.json's f64 scores [n_pieces]; NULL for spiece.model */
    const char *what;      /* "spiece.model" or "tokenizer.json", for messages */
    uint32_t *slots;       /* [n_slots] piece id + 1, 0 = empty */
    uint64_t *hashes;      /* [n_pieces] FNV-1a of each piece (valid for hashed pieces) */
    size_t n_slots;        /* power of two */
    uint32_t max_len;      /* longest matchable piece, bytes */
    uint32_t max_ud_len;   /* longest USER_DEFINED piece, 0 when none */
    float unk_score;       /* min NORMAL score - 10 */
    double dunk_score;     /* tokenizer.json: min over every score - 10 (f64, as tokenizers) */
    float max_score;       /* spm's max_score_ (starts at FLT_MIN) for USER_DEFINED pieces */
    int32_t byte_ids[256]; /* <0xNN> pieces for byte fallback, -1 when absent */
    /* precompiled charsmap: Darts-clone double array + NUL-separated pool */
    const uint32_t *units; /* borrowed from m->charsmap, unaligned-safe copy below */
    uint32_t *units_buf;
    size_t n_units;
    const char *cpool;
    size_t cpool_len;
};

/* ---------- model setup ---------- */

static uint64_t fnv_step(uint64_t h, unsigned char c) {
    return (h ^ c) * 0x100000001b3ULL;
}
#define FNV_INIT 0xcbf29ce484222325ULL

/* SentencePiece matches NORMAL and USER_DEFINED pieces; tokenizers' Unigram trie holds every
 * vocab string. */
static int matchable(const sf_tokenizer *t, int type) {
    return t->pipe || type == SF_SP_NORMAL || type == SF_SP_USER_DEFINED;
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
    if (m->charsmap_len < 4) return sf_fail(err, SF_E_FORMAT, "%s: precompiled_charsmap too short", t->what);
    const uint8_t *d = m->charsmap;
    uint32_t tb = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
    if (tb == 0 || tb % 4 || tb > m->charsmap_len - 4)
        return sf_fail(err, SF_E_FORMAT, "%s: precompiled_charsmap trie size %u invalid for %zu bytes", t->what,
                       tb, m->charsmap_len);
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
    for (size_t i = 0, k; t->pipe && i < t->cpool_len; i += k) { /* tokenizers wants NUL-separated UTF-8 */
        uint32_t cp;
        k = t->cpool[i] ? (size_t)sf_utf8_decode(t->cpool + i, t->cpool_len - i, &cp) : 1;
        if (!k) return sf_fail(err, SF_E_FORMAT, "%s: precompiled_charsmap is malformed (a replacement is not UTF-8)", t->what);
    }
    return SF_OK;
}

/* Takes *model, *dscores and *pipe (each set to NULL, also on failure). */
static sf_status build(sf_spiece_model **model, double **dscores, sf_hf_pipe **pipe, sf_tokenizer **out,
                       sf_err *err) {
    sf_status st = SF_OK;
    *out = NULL;
    sf_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        sf_spiece_destroy(model);
        free(*dscores), *dscores = NULL;
        sf_hf_pipe_free(pipe);
        return sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer)");
    }
    t->m = *model, *model = NULL;
    t->dscores = *dscores, *dscores = NULL;
    t->pipe = *pipe, *pipe = NULL;
    t->what = t->pipe ? "tokenizer.json" : "spiece.model";
    sf_spiece_model *m = t->m;
    if (m->model_type != 1) {
        st = sf_fail(err, SF_E_UNSUPPORTED, "%s: model_type %d is not UNIGRAM (1)", t->what, m->model_type);
        goto fail;
    }
    if (m->unk_id < 0 || m->pieces[m->unk_id].type != SF_SP_UNKNOWN) {
        st = sf_fail(err, SF_E_FORMAT, "%s: unk_id %d is not an UNKNOWN piece", t->what, (int)m->unk_id);
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
    double dmin = HUGE_VAL;
    t->max_score = FLT_MIN; /* as spm: max over NORMAL scores, starting from FLT_MIN */
    for (int i = 0; i < 256; i++) t->byte_ids[i] = -1;
    for (size_t i = 0; i < m->n_pieces; i++) {
        const sf_spiece_piece *p = &m->pieces[i];
        if (t->dscores && t->dscores[i] < dmin) dmin = t->dscores[i]; /* tokenizers: over the whole vocab */
        if (p->type == SF_SP_NORMAL) {
            if (p->score < min_score) min_score = p->score;
            if (p->score > t->max_score) t->max_score = p->score;
        }
        if ((p->type == SF_SP_BYTE || t->pipe) && p->len == 6 && memcmp(p->str, "<0x", 3) == 0 && p->str[5] == '>') {
            unsigned v = 0;
            int ok = 1;
            for (int k = 3; k < 5; k++) {
                int c = (unsigned char)p->str[k];
                if (!isxdigit(c)) ok = 0;
                else v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
            }
            /* tokenizers looks up "<0x%02X>" (upper case) exactly */
            if (ok && (!t->pipe || (!islower((unsigned char)p->str[3]) && !islower((unsigned char)p->str[4]))))
                t->byte_ids[v] = (int32_t)i;
        }
        if (!matchable(t, p->type)) continue;
        uint64_t h = FNV_INIT;
        for (uint32_t k = 0; k < p->len; k++) h = fnv_step(h, (unsigned char)p->str[k]);
        t->hashes[i] = h;
        if (lookup(t, p->str, p->len, h) >= 0) {
            st = sf_fail(err, SF_E_FORMAT, "%s: piece %zu duplicates an earlier piece", t->what, i);
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
    t->dunk_score = t->dscores ? dmin - 10.0 : (double)t->unk_score;
    if (t->pipe && (st = sf_hf_finish(t, t->pipe, err))) goto fail;
    *out = t;
    return SF_OK;
fail:
    sf_tokenizer_destroy(&t);
    return st;
}

sf_status sf_tokenizer_new(sf_spiece_model **model, sf_tokenizer **out, sf_err *err) {
    double *none = NULL;
    sf_hf_pipe *no_pipe = NULL;
    return build(model, &none, &no_pipe, out, err);
}

sf_status sf_tokenizer_parse(const char *data, size_t len, sf_tokenizer **out, sf_err *err) {
    sf_spiece_model *m = NULL;
    double *sc = NULL;
    sf_hf_pipe *pipe = NULL;
    *out = NULL;
    sf_status st = sf_hf_is_json(data, len) ? sf_hf_parse(data, len, &m, &sc, &pipe, err)
                                            : sf_spiece_parse((const uint8_t *)data, len, &m, err);
    if (st) return st;
    return build(&m, &sc, &pipe, out, err);
}

sf_status sf_tokenizer_load(const char *path, sf_tokenizer **out, sf_err *err) {
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    /* spiece.model's bound (common/spiece.c); a tokenizer.json has its own, smaller one (hftok.c) */
    sf_status st = sf_read_file(path, &data, &len, (size_t)256 << 20, err);
    if (st) return st;
    st = sf_tokenizer_parse(data, len, out, err);
    free(data);
    return st ? sf_fail(err, st, "%s: %s", path, err->msg) : SF_OK; /* sf_fail formats into a copy first */
}

void sf_tokenizer_default_path(const char *model_dir, char *buf, size_t n) {
    snprintf(buf, n, "%s/google/umt5-xxl/tokenizer.json", model_dir);
    struct stat sb;
    if (stat(buf, &sb) == 0 && S_ISREG(sb.st_mode)) return;
    snprintf(buf, n, "%s/google/umt5-xxl/spiece.model", model_dir);
}

void sf_tokenizer_destroy(sf_tokenizer **tp) {
    if (!tp || !*tp) return;
    sf_tokenizer *t = *tp;
    sf_spiece_destroy(&t->m);
    sf_hf_pipe_free(&t->pipe);
    free(t->dscores);
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
    if (t->pipe && (id < 0 || (size_t)id >= t->m->n_pieces)) return sf_hf_added_content(t->pipe, id);
    if (id < 0 || (size_t)id >= t->m->n_pieces) return NULL;
    return t->m->pieces[id].str;
}

/* ---------- normalization (normalizer.cc) ---------- */

/* Longest (first = 0) or shortest (first = 1) charsmap match at s[0..n): *mlen bytes replaced by
 * *rep (NUL-terminated, in the pool). 0 = no match, -1 = corrupt map. Darts-clone
 * commonPrefixSearch; a NUL byte ends the key, as in both Darts readers. */
static int charsmap_match(const sf_tokenizer *t, const unsigned char *s, size_t n, int first, size_t *mlen,
                          const char **rep) {
    if (!t->n_units) return 0;
    const uint32_t *u = t->units;
    size_t pos = (size_t)(u[0] >> 10) << ((u[0] & 0x200) >> 6);
    size_t best = 0;
    uint32_t val = 0;
    for (size_t i = 0; i < n && s[i]; i++) {
        pos ^= s[i];
        if (pos >= t->n_units) break;
        uint32_t w = u[pos];
        if ((w & 0x800000ffu) != s[i]) break;
        pos ^= (size_t)(w >> 10) << ((w & 0x200) >> 6);
        if (pos >= t->n_units) return -1;
        if ((w >> 8) & 1) {
            best = i + 1;
            val = u[pos] & 0x7fffffffu;
            if (first) break;
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
    int r = charsmap_match(t, s, n, 0, &ml, &rep);
    if (r < 0) return 0;
    if (r > 0) {
        *sp = rep, *spn = strlen(rep);
        return ml;
    }
    uint32_t cp;
    size_t k = (size_t)sf_utf8_decode((const char *)s, n, &cp);
    if (!k) { /* malformed: U+FFFD, consume one byte */
        *sp = "\xEF\xBF\xBD", *spn = 3;
        return 1;
    }
    *sp = (const char *)s, *spn = k;
    return k;
}

sf_status sf_tokenizer_normalize(const sf_tokenizer *t, const char *text, size_t len, char **out, size_t *out_len,
                                 sf_err *err) {
    if (t->pipe) return sf_hf_normalize(t, t->pipe, text, len, out, out_len, err);
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

int sf_tok_charsmap_first(const sf_tokenizer *t, const char *s, size_t n, const char **rep) {
    size_t ml;
    return charsmap_match(t, (const unsigned char *)s, n, 1, &ml, rep);
}

int sf_tok_has_charsmap(const sf_tokenizer *t) {
    return t->n_units != 0;
}

int32_t sf_tok_find(const sf_tokenizer *t, const char *s, size_t n) {
    if (!n || n > t->max_len) return -1;
    uint64_t h = FNV_INIT;
    for (size_t k = 0; k < n; k++) h = fnv_step(h, (unsigned char)s[k]);
    return lookup(t, s, n, h);
}

int32_t sf_tok_byte_id(const sf_tokenizer *t, unsigned char b) {
    return t->byte_ids[b];
}

/* ---------- unigram Viterbi (unigram_model.cc EncodeOptimized; tokenizers' encode_optimized) ---------- */

sf_status sf_tok_lattice(const sf_tokenizer *t, const char *s, size_t n, int32_t **ids_out, size_t **starts_out,
                         size_t *n_out, sf_err *err) {
    double *best = sf_calloc2(n + 1, sizeof *best);
    int32_t *from = sf_calloc2(n + 1, sizeof *from), *pid = sf_calloc2(n + 1, sizeof *pid);
    int32_t *ids = sf_calloc2(n + 1, sizeof *ids);
    size_t *starts = sf_calloc2(n + 1, sizeof *starts);
    sf_status st = SF_OK;
    *ids_out = NULL, *starts_out = NULL, *n_out = 0;
    if (!best || !from || !pid || !ids || !starts) { st = sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer)"); goto fail; }
    for (size_t i = 0; i <= n; i++) from[i] = -1;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t start = 0; start < n;) {
        size_t mblen = one_char_len(u[start]);
        if (mblen > n - start) mblen = n - start;
        double base = best[start];
        int single = 0;
        uint64_t h = FNV_INIT;
        for (size_t k = start; k < n && k - start < t->max_len; k++) {
            h = fnv_step(h, u[k]);
            size_t l = k + 1 - start;
            int32_t id = lookup(t, s + start, l, h);
            if (id < 0) continue;
            const sf_spiece_piece *p = &t->m->pieces[id];
            double cand;
            if (t->dscores) cand = base + t->dscores[id]; /* tokenizers: f64 throughout */
            else {                                        /* spm: float sums */
                float sc = p->score;
                if (p->type == SF_SP_USER_DEFINED) { /* spm: length (chars) * max_score - 0.1 */
                    size_t nch = 0;
                    for (size_t q = 0; q < l; q++) nch += (u[start + q] & 0xc0) != 0x80;
                    sc = (float)nch * t->max_score - 0.1f;
                }
                cand = (float)((float)base + sc);
            }
            if (from[k + 1] < 0 || cand > best[k + 1]) best[k + 1] = cand, from[k + 1] = (int32_t)start, pid[k + 1] = id;
            if (l == mblen) single = 1;
        }
        if (!single) {
            double cand = t->dscores ? base + t->dunk_score : (float)((float)base + t->unk_score);
            size_t e = start + mblen;
            if (from[e] < 0 || cand > best[e]) best[e] = cand, from[e] = (int32_t)start, pid[e] = t->m->unk_id;
        }
        start += mblen;
    }
    /* backtrack, then reverse into forward order */
    size_t nr = 0;
    for (size_t e = n; e > 0;) {
        if (from[e] < 0) { st = sf_fail(err, SF_E_FORMAT, "tokenizer: no segmentation (internal)"); goto fail; }
        ids[nr] = pid[e];
        starts[nr] = (size_t)from[e];
        nr++;
        e = (size_t)from[e];
    }
    for (size_t a = 0, b = nr; a + 1 < b; a++, b--) {
        int32_t ti = ids[a];
        ids[a] = ids[b - 1], ids[b - 1] = ti;
        size_t ts = starts[a];
        starts[a] = starts[b - 1], starts[b - 1] = ts;
    }
    *ids_out = ids, *starts_out = starts, *n_out = nr;
    ids = NULL, starts = NULL;
fail:
    free(best), free(from), free(pid), free(ids), free(starts);
    return st;
}

/* SentencePiece's result: consecutive unknowns fused into one (or, with byte_fallback, each
 * unknown piece expanded to its bytes when every byte has a piece). */
static sf_status viterbi(const sf_tokenizer *t, const char *s, size_t n, int32_t **ids_out, size_t *n_out,
                         sf_err *err) {
    int32_t *nodes = NULL, *ids = NULL;
    size_t *starts = NULL, nr = 0;
    const unsigned char *u = (const unsigned char *)s;
    sf_status st = sf_tok_lattice(t, s, n, &nodes, &starts, &nr, err);
    if (st) return st;
    size_t cap = t->m->byte_fallback ? 4 * n + 1 : nr + 1, no = 0;
    ids = sf_calloc2(cap, sizeof *ids);
    if (!ids) { st = sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer)"); goto fail; }
    int prev_unk = 0;
    for (size_t r = 0; r < nr; r++) {
        int32_t id = nodes[r];
        int is_unk = id == t->m->unk_id;
        if (is_unk && t->m->byte_fallback) {
            size_t a = starts[r], e = r + 1 < nr ? starts[r + 1] : n;
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
    free(nodes), free(starts), free(ids);
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
    if (t->pipe) return sf_hf_encode(t, t->pipe, text, len, ids, n, err);
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
    /* the specials around the text: spm appends eos; tokenizer.json's post-processor says */
    const int32_t *pre = NULL, *suf = &t->m->eos_id;
    size_t npre = 0, nsuf = 1;
    if (t->pipe) sf_hf_specials(t->pipe, &pre, &npre, &suf, &nsuf);
    else if (t->m->eos_id < 0) return sf_fail(err, SF_E_FORMAT, "spiece.model: no eos piece");
    if (seq_len < 1) return sf_fail(err, SF_E_ARG, "text length must be at least 1");
    if (seq_len < npre + nsuf)
        return sf_fail(err, SF_E_ARG, "text length %zu is shorter than the %zu special tokens the tokenizer adds", seq_len,
                       npre + nsuf);
    sf_status st = sf_text_clean(prompt, len, &c, &cn, err);
    if (st) return st;
    if ((st = sf_tokenizer_encode(t, c, cn, &pieces, &n, err))) goto fail;
    size_t room = seq_len - npre - nsuf, keep = n < room ? n : room, used = npre + keep + nsuf;
    if (!used) {
        st = sf_fail(err, SF_E_ARG, "the prompt has no tokens (empty, and the tokenizer adds no special token)");
        goto fail;
    }
    int64_t pad = t->m->pad_id >= 0 ? t->m->pad_id : 0;
    for (size_t i = 0; i < seq_len; i++) {
        ids[i] = i < npre ? pre[i] : i < npre + keep ? pieces[i - npre] : i < used ? suf[i - npre - keep] : pad;
        mask[i] = i < used;
    }
    *n_tokens = used;
    if (cleaned) *cleaned = c, c = NULL;
fail:
    free(c);
    free(pieces);
    return st;
}
