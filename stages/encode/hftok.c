/* hftok.c — the reference's own tokenizer file: Hugging Face `tokenizer.json` (SPEC.md §2.1, §2.6).
 *
 * The reference loads google/umt5-xxl with AutoTokenizer, which builds the fast (Rust
 * `tokenizers`) tokenizer from tokenizer.json. It differs from SentencePiece on the same model
 * where added tokens occur in the text: a literal `</s>`, `<pad>` or `<extra_id_N>` in a prompt is
 * one token there and several pieces in spm. This file reads tokenizer.json (cJSON) and does what
 * `tokenizers` does for the parts SentencePiece-converted files are made of:
 *   added tokens   split out first, leftmost-longest; the non-normalized ones on the raw text,
 *                  the normalized ones on each normalized segment (their content normalized too);
 *                  lstrip / rstrip take the whitespace (\s) beside a match, single_word drops a
 *                  match with a word character (\w) beside it;
 *   normalizer     Precompiled (the charsmap, grapheme by grapheme as tokenizers does: a cluster
 *                  under 6 bytes is replaced whole by the replacement of its shortest charsmap
 *                  prefix, otherwise character by character), Replace (String, or Regex through
 *                  PCRE2), Strip, Prepend, NFC/NFD/NFKC/NFKD (utf8proc), Sequence;
 *   pre-tokenizer  Metaspace (spaces to the replacement, prepended always, first or never (or the
 *                  older add_prefix_space), split before each replacement);
 *   model          Unigram (vocab with f64 scores, unk_id, byte_fallback): tokenizer.c's lattice
 *                  over every vocab string per word, consecutive unknowns fused and the fused
 *                  string looked up again (then its bytes with byte_fallback, else unk);
 *   post-processor TemplateProcessing (special tokens around $A) or none.
 * Anything else is refused at load, naming it, so that no file tokenizes silently differently.
 * Unicode classes: \s is White_Space (clean.c's); \w is approximated by utf8proc's categories (letters, marks,
 * Nd, Nl, Pc, ZWJ/ZWNJ, the circled and squared Latin letters), which is Rust's \w but for a few
 * Other_Alphabetic symbols. Graphemes are utf8proc's extended clusters (UAX #29).
 * No C library reads tokenizer.json (the implementation is Rust); hence this one.
 * Tested against `tokenizers` by tests/unit/test_hftok.c (fixture: tests/heldout/hftok_fixture.py)
 * and tests/heldout/tokenizer_diff.py --fast; fuzzed by tests/fuzz/fuzz_hftok.c. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "stages/encode/tokenizer_impl.h"
#include "stages/encode/sbuf.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <pcre2.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

enum { NF_PRECOMPILED, NF_REPLACE, NF_REGEX, NF_STRIP, NF_PREPEND, NF_UNICODE };
enum { PREPEND_NEVER, PREPEND_ALWAYS, PREPEND_FIRST };
#define HF_MAX_NORM 16
#define SF_HF_MAX_BYTES (64 << 20)
#define HF_MAX_SPECIAL 16

typedef struct {
    int kind;
    char *a, *b;          /* Replace: pattern, content; Prepend: a */
    size_t an, bn;
    pcre2_code *re;       /* Regex */
    int left, right;      /* Strip */
    utf8proc_option_t uo; /* NFC/NFD/NFKC/NFKD */
} hf_norm;

typedef struct {
    char *s;
    size_t n;
    int32_t id;
    int lstrip, rstrip, single_word, normalized;
} hf_added;

struct sf_hf_pipe {
    hf_norm norm[HF_MAX_NORM];
    size_t n_norm;
    int meta;               /* Metaspace present */
    char rep[8];            /* its replacement character, UTF-8 */
    size_t rep_n;
    int prepend, split;
    hf_added *added;        /* raw (non-normalized) first, then normalized; n_raw of them raw */
    size_t n_added, n_raw;
    int32_t pre[HF_MAX_SPECIAL], suf[HF_MAX_SPECIAL];
    size_t n_pre, n_suf;
};

int sf_hf_is_json(const char *d, size_t n) {
    size_t i = 0;
    while (i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r')) i++;
    return i < n && d[i] == '{';
}

void sf_hf_pipe_free(sf_hf_pipe **pp) {
    if (!pp || !*pp) return;
    sf_hf_pipe *p = *pp;
    for (size_t i = 0; i < p->n_norm; i++) {
        free(p->norm[i].a), free(p->norm[i].b);
        if (p->norm[i].re) pcre2_code_free(p->norm[i].re);
    }
    for (size_t i = 0; i < p->n_added; i++) free(p->added[i].s);
    free(p->added);
    free(p);
    *pp = NULL;
}

const char *sf_hf_added_content(const sf_hf_pipe *p, int32_t id) {
    for (size_t i = 0; i < p->n_added; i++)
        if (p->added[i].id == id) return p->added[i].s;
    return NULL;
}

void sf_hf_specials(const sf_hf_pipe *p, const int32_t **pre, size_t *npre, const int32_t **suf, size_t *nsuf) {
    *pre = p->pre, *npre = p->n_pre, *suf = p->suf, *nsuf = p->n_suf;
}

/* ---------- Unicode classes ---------- */

static int is_word(uint32_t c) { /* regex \w (see the header for the approximation) */
    if (c == 0x200c || c == 0x200d || (c >= 0x24b6 && c <= 0x24e9) || (c >= 0x1f130 && c <= 0x1f189)) return 1;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

/* where the character ending at s[end) starts (end > 0, valid UTF-8) */
static size_t char_start(const char *s, size_t end) {
    size_t b = end - 1;
    while (b > 0 && ((unsigned char)s[b] & 0xc0) == 0x80) b--;
    return b;
}

/* the code point ending at s[end) (valid UTF-8), or -1 at the start */
static int64_t cp_before(const char *s, size_t end) {
    if (!end) return -1;
    size_t b = char_start(s, end);
    uint32_t c;
    return sf_utf8_decode(s + b, end - b, &c) ? (int64_t)c : -1;
}

static int64_t cp_at(const char *s, size_t n, size_t i, size_t *len) {
    uint32_t c;
    int k = i < n ? sf_utf8_decode(s + i, n - i, &c) : 0;
    if (len) *len = (size_t)k;
    return k ? (int64_t)c : -1;
}

/* ---------- loading ---------- */

static sf_status bad(sf_err *err, const char *what) {
    return sf_fail(err, SF_E_FORMAT, "tokenizer.json: %s", what);
}

static sf_status nomem(sf_err *err) {
    return sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer.json)");
}

static sf_status dup_str(const cJSON *v, const char *what, char **out, size_t *n, sf_err *err) {
    if (!cJSON_IsString(v) || !v->valuestring) return sf_fail(err, SF_E_FORMAT, "tokenizer.json: %s must be a string", what);
    size_t l = strlen(v->valuestring);
    sf_status st = sf_utf8_check(v->valuestring, l, what, err);
    if (st) return st;
    if (!(*out = malloc(l + 1))) return sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer.json)");
    memcpy(*out, v->valuestring, l + 1);
    if (n) *n = l;
    return SF_OK;
}

static int flag(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *type_of(const cJSON *o) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

/* Unigram vocab → model pieces (ids = indices) and f64 scores; the Precompiled charsmap goes
 * into the model's charsmap (tokenizer.c decodes it). */
static sf_status load_model(const cJSON *root, sf_spiece_model *m, double **scores, sf_err *err) {
    const cJSON *mo = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(mo)) return bad(err, "no model");
    if (strcmp(type_of(mo), "Unigram"))
        return sf_fail(err, SF_E_UNSUPPORTED, "tokenizer.json: model type '%s' is not supported (Unigram only)",
                       type_of(mo));
    const cJSON *voc = cJSON_GetObjectItemCaseSensitive(mo, "vocab"), *unk = cJSON_GetObjectItemCaseSensitive(mo, "unk_id");
    if (!cJSON_IsArray(voc) || !cJSON_GetArraySize(voc)) return bad(err, "model.vocab must be a non-empty array");
    size_t n = (size_t)cJSON_GetArraySize(voc), pool_n = 0, i = 0;
    if (!cJSON_IsNumber(unk) || unk->valuedouble != floor(unk->valuedouble) || unk->valuedouble < 0 ||
        unk->valuedouble >= (double)n)
        return bad(err, "model.unk_id must be the index of a vocab entry");
    const cJSON *e;
    cJSON_ArrayForEach(e, voc) {
        const cJSON *ps = cJSON_GetArrayItem(e, 0), *sc = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(ps) || !ps->valuestring ||
            !ps->valuestring[0] || !cJSON_IsNumber(sc) || !isfinite(sc->valuedouble))
            return sf_fail(err, SF_E_FORMAT, "tokenizer.json: model.vocab[%zu] must be [non-empty piece, score]", i);
        size_t l = strlen(ps->valuestring);
        if (l > UINT32_MAX / 2 || sf_utf8_check(ps->valuestring, l, "a vocab piece", err))
            return sf_fail(err, SF_E_FORMAT, "tokenizer.json: model.vocab[%zu] is not UTF-8", i);
        pool_n += l + 1;
        i++;
    }
    m->pieces = sf_calloc2(n, sizeof *m->pieces);
    m->pool = malloc(pool_n);
    *scores = sf_calloc2(n, sizeof **scores);
    if (!m->pieces || !m->pool || !*scores) return sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer.json vocab)");
    m->n_pieces = n;
    m->unk_id = (int32_t)unk->valuedouble;
    m->byte_fallback = flag(mo, "byte_fallback", 0);
    char *q = m->pool;
    i = 0;
    cJSON_ArrayForEach(e, voc) {
        const char *ps = cJSON_GetArrayItem(e, 0)->valuestring;
        size_t l = strlen(ps);
        memcpy(q, ps, l + 1);
        const double sc = cJSON_GetArrayItem(e, 1)->valuedouble; /* the f64 the lattice uses; a float copy in range */
        m->pieces[i] = (sf_spiece_piece){q, (uint32_t)l, (float)(sc > FLT_MAX ? FLT_MAX : sc < -FLT_MAX ? -FLT_MAX : sc),
                                         (int32_t)i == m->unk_id ? SF_SP_UNKNOWN : SF_SP_NORMAL};
        (*scores)[i] = sc;
        if (!strcmp(ps, "<pad>")) m->pad_id = (int32_t)i;
        q += l + 1, i++;
    }
    return SF_OK;
}

static sf_status load_norm(const cJSON *o, sf_hf_pipe *p, sf_spiece_model *m, sf_err *err) {
    const char *ty = type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "normalizers"), *e;
        if (!cJSON_IsArray(list)) return bad(err, "a Sequence normalizer needs 'normalizers'");
        cJSON_ArrayForEach(e, list) {
            sf_status st = load_norm(e, p, m, err);
            if (st) return st;
        }
        return SF_OK;
    }
    if (p->n_norm == HF_MAX_NORM) return bad(err, "more than 16 normalizers");
    hf_norm *nf = &p->norm[p->n_norm++]; /* counted now: sf_hf_pipe_free frees what a failure left */
    sf_status st = SF_OK;
    if (!strcmp(ty, "Precompiled")) {
        const cJSON *cm = cJSON_GetObjectItemCaseSensitive(o, "precompiled_charsmap");
        if (m->charsmap) return sf_fail(err, SF_E_UNSUPPORTED, "tokenizer.json: more than one Precompiled normalizer");
        if (!cJSON_IsString(cm) || !cm->valuestring) return bad(err, "Precompiled needs 'precompiled_charsmap'");
        size_t l = strlen(cm->valuestring), bl = 0;
        if (!l) return bad(err, "Precompiled has an empty charsmap");
        if (!(m->charsmap = malloc(l))) return sf_fail(err, SF_E_NOMEM, "out of memory (charsmap)");
        if (sodium_base642bin(m->charsmap, l, cm->valuestring, l, NULL, &bl, NULL, sodium_base64_VARIANT_ORIGINAL) || !bl)
            return bad(err, "precompiled_charsmap is not base64");
        m->charsmap_len = bl;
        nf->kind = NF_PRECOMPILED;
    } else if (!strcmp(ty, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(pat, "String"), *pr = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        if ((st = dup_str(cJSON_GetObjectItemCaseSensitive(o, "content"), "Replace content", &nf->b, &nf->bn, err)))
            return st;
        if (ps) {
            if ((st = dup_str(ps, "Replace pattern", &nf->a, &nf->an, err))) return st;
            if (!nf->an) return bad(err, "Replace with an empty String pattern");
            nf->kind = NF_REPLACE;
        } else {
            if ((st = dup_str(pr, "Replace pattern", &nf->a, &nf->an, err))) return st;
            int code;
            PCRE2_SIZE off;
            if (!(nf->re = pcre2_compile((PCRE2_SPTR)nf->a, nf->an, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL)))
                return sf_fail(err, SF_E_UNSUPPORTED, "tokenizer.json: Replace regex '%.60s' does not compile", nf->a);
            nf->kind = NF_REGEX;
        }
    } else if (!strcmp(ty, "Strip")) {
        nf->kind = NF_STRIP, nf->left = flag(o, "strip_left", 0), nf->right = flag(o, "strip_right", 0);
    } else if (!strcmp(ty, "Prepend")) {
        if ((st = dup_str(cJSON_GetObjectItemCaseSensitive(o, "prepend"), "Prepend", &nf->a, &nf->an, err))) return st;
        nf->kind = NF_PREPEND;
    } else if (!strcmp(ty, "NFC") || !strcmp(ty, "NFD") || !strcmp(ty, "NFKC") || !strcmp(ty, "NFKD")) {
        nf->kind = NF_UNICODE;
        nf->uo = UTF8PROC_STABLE | (ty[2] == 'C' || ty[3] == 'C' ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
                 (ty[2] == 'K' ? UTF8PROC_COMPAT : 0);
    } else {
        return sf_fail(err, SF_E_UNSUPPORTED, "tokenizer.json: normalizer '%.40s' is not supported", ty);
    }
    return SF_OK;
}

static sf_status load_pre(const cJSON *o, sf_hf_pipe *p, sf_err *err) {
    if (!o || cJSON_IsNull(o)) return SF_OK;
    if (strcmp(type_of(o), "Metaspace"))
        return sf_fail(err, SF_E_UNSUPPORTED, "tokenizer.json: pre_tokenizer '%.40s' is not supported (Metaspace only)",
                       type_of(o));
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "replacement"), *ps = cJSON_GetObjectItemCaseSensitive(o, "prepend_scheme");
    size_t k = 0;
    uint32_t c;
    if (!cJSON_IsString(r) || !r->valuestring || !(k = (size_t)sf_utf8_decode(r->valuestring, strlen(r->valuestring), &c)) ||
        r->valuestring[k])
        return bad(err, "Metaspace replacement must be one character");
    memcpy(p->rep, r->valuestring, k), p->rep_n = k;
    p->meta = 1;
    p->split = flag(o, "split", 1);
    p->prepend = flag(o, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER; /* before prepend_scheme existed */
    if (ps) {
        const char *v = cJSON_IsString(ps) && ps->valuestring ? ps->valuestring : "";
        if (!strcmp(v, "always")) p->prepend = PREPEND_ALWAYS;
        else if (!strcmp(v, "first")) p->prepend = PREPEND_FIRST;
        else if (!strcmp(v, "never")) p->prepend = PREPEND_NEVER;
        else return bad(err, "Metaspace prepend_scheme must be always, first or never");
    }
    return SF_OK;
}

static sf_status load_post(const cJSON *o, sf_hf_pipe *p, sf_err *err) {
    if (!o || cJSON_IsNull(o)) return SF_OK;
    if (strcmp(type_of(o), "TemplateProcessing"))
        return sf_fail(err, SF_E_UNSUPPORTED, "tokenizer.json: post_processor '%.40s' is not supported", type_of(o));
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single"), *sp = cJSON_GetObjectItemCaseSensitive(o, "special_tokens"), *e;
    if (!cJSON_IsArray(single)) return bad(err, "TemplateProcessing needs 'single'");
    int seen_a = 0;
    cJSON_ArrayForEach(e, single) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "Sequence"), *tok = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        if (seq) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(seq, "id");
            if (seen_a || !cJSON_IsString(id) || !id->valuestring || strcmp(id->valuestring, "A"))
                return sf_fail(err, SF_E_UNSUPPORTED, "tokenizer.json: a 'single' template other than one $A");
            seen_a = 1;
            continue;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(tok, "id");
        if (!cJSON_IsString(name) || !name->valuestring) return bad(err, "a template item is neither Sequence nor SpecialToken");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, name->valuestring), "ids"), *v;
        if (!cJSON_IsArray(ids)) return bad(err, "a template's special token has no ids");
        cJSON_ArrayForEach(v, ids) {
            size_t *cnt = seen_a ? &p->n_suf : &p->n_pre;
            int32_t *dst = seen_a ? p->suf : p->pre;
            if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > INT32_MAX)
                return bad(err, "a special token id must be a non-negative integer");
            if (*cnt == HF_MAX_SPECIAL) return bad(err, "more than 16 special tokens on a side of the template");
            dst[(*cnt)++] = (int32_t)v->valuedouble;
        }
    }
    if (!seen_a) return sf_fail(err, SF_E_UNSUPPORTED, "tokenizer.json: a 'single' template without $A");
    return SF_OK;
}

static sf_status normalize(const sf_tokenizer *t, const sf_hf_pipe *p, const char *s, size_t n, sbuf *out, sf_err *err);

static sf_status load_added(const cJSON *root, sf_hf_pipe *p, sf_err *err) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *e;
    if (!list || cJSON_IsNull(list)) return SF_OK;
    if (!cJSON_IsArray(list)) return bad(err, "added_tokens must be an array");
    size_t n = (size_t)cJSON_GetArraySize(list);
    if (!n) return SF_OK;
    if (!(p->added = sf_calloc2(n, sizeof *p->added))) return sf_fail(err, SF_E_NOMEM, "out of memory (added tokens)");
    cJSON_ArrayForEach(e, list) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        hf_added *a = &p->added[p->n_added];
        if (!cJSON_IsNumber(id) || id->valuedouble != floor(id->valuedouble) || id->valuedouble < 0 || id->valuedouble > INT32_MAX)
            return bad(err, "an added token's id must be a non-negative integer");
        sf_status st = dup_str(cJSON_GetObjectItemCaseSensitive(e, "content"), "an added token's content", &a->s, &a->n, err);
        if (st) return st;
        p->n_added++;
        a->id = (int32_t)id->valuedouble;
        a->lstrip = flag(e, "lstrip", 0), a->rstrip = flag(e, "rstrip", 0), a->single_word = flag(e, "single_word", 0);
        a->normalized = flag(e, "normalized", !flag(e, "special", 0));
        if (!a->n) { /* tokenizers ignores an empty added token */
            free(a->s), a->s = NULL, p->n_added--;
            continue;
        }
        for (size_t k = 0; k + 1 < p->n_added; k++)
            if (p->added[k].n == a->n && !memcmp(p->added[k].s, a->s, a->n)) return bad(err, "an added token listed twice");
    }
    return SF_OK;
}

sf_status sf_hf_finish(const sf_tokenizer *t, sf_hf_pipe *p, sf_err *err) {
    /* normalized tokens match their normalized content (tokenizers' refresh_added_tokens) */
    for (size_t i = 0; i < p->n_added; i++) {
        hf_added *a = &p->added[i];
        if (!a->normalized) continue;
        sbuf b = {0};
        sf_status st = normalize(t, p, a->s, a->n, &b, err);
        if (st) return free(b.p), st;
        free(a->s);
        a->s = b.p, a->n = b.n;
    }
    /* the raw ones first, then the normalized ones, each group in the file's order */
    hf_added *by = p->n_added ? sf_calloc2(p->n_added, sizeof *by) : NULL;
    if (p->n_added && !by) return nomem(err);
    size_t k = 0;
    for (int normalized = 0; normalized < 2; normalized++)
        for (size_t i = 0; i < p->n_added; i++)
            if (p->added[i].normalized == normalized) by[k++] = p->added[i];
    for (p->n_raw = 0; p->n_raw < p->n_added && !by[p->n_raw].normalized; p->n_raw++) {}
    free(p->added);
    p->added = by;
    return SF_OK;
}

sf_status sf_hf_parse(const char *data, size_t len, sf_spiece_model **model, double **scores, sf_hf_pipe **pipe,
                      sf_err *err) {
    *model = NULL, *scores = NULL, *pipe = NULL;
    /* umT5's is 16.8 MB; the JSON tree costs ~25 bytes of memory per byte of a dense vocab, so a cap keeps a
       hostile file's tree near 1.5 GB */
    if (len > SF_HF_MAX_BYTES)
        return sf_fail(err, SF_E_FORMAT, "tokenizer.json: %zu bytes, more than the %d MiB a tokenizer file may have", len,
                       SF_HF_MAX_BYTES >> 20);
    cJSON *root = cJSON_ParseWithLength(data, len);
    sf_spiece_model *m = calloc(1, sizeof *m);
    sf_hf_pipe *p = calloc(1, sizeof *p);
    sf_status st = SF_OK;
    if (!m || !p || !(m->norm_name = calloc(1, 1))) { st = sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer.json)"); goto fail; }
    if (!cJSON_IsObject(root)) { st = bad(err, "not a JSON object"); goto fail; }
    m->model_type = 1, m->bos_id = -1, m->eos_id = -1, m->pad_id = -1;
    if ((st = load_model(root, m, scores, err))) goto fail;
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (nz && !cJSON_IsNull(nz) && (st = load_norm(nz, p, m, err))) goto fail;
    if ((st = load_pre(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), p, err))) goto fail;
    if ((st = load_post(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), p, err))) goto fail;
    if ((st = load_added(root, p, err))) goto fail;
    cJSON_Delete(root);
    *model = m, *pipe = p;
    return SF_OK;
fail:
    cJSON_Delete(root);
    sf_spiece_destroy(&m);
    sf_hf_pipe_free(&p);
    free(*scores), *scores = NULL;
    return st;
}

/* ---------- normalizer ---------- */

/* tokenizers' Precompiled: per grapheme cluster (utf8proc's extended clusters) */
static sf_status precompiled(const sf_tokenizer *t, const char *s, size_t n, sbuf *o, sf_err *err) {
    utf8proc_int32_t state = 0;
    size_t i = 0, k;
    int64_t prev = cp_at(s, n, 0, &k);
    while (i < n) {
        size_t g = i;
        i += k;
        for (;;) { /* extend the cluster */
            size_t k2;
            int64_t c = cp_at(s, n, i, &k2);
            if (c < 0) { k = 0; break; }
            int brk = utf8proc_grapheme_break_stateful((utf8proc_int32_t)prev, (utf8proc_int32_t)c, &state);
            prev = c, k = k2;
            if (brk) break;
            i += k2;
        }
        const char *rep;
        int r;
        if (i - g < 6 && (r = sf_tok_charsmap_first(t, s + g, i - g, &rep)) != 0) {
            if (r < 0) return bad(err, "corrupt precompiled_charsmap");
            if (!sb_put(o, rep, strlen(rep))) return nomem(err);
            continue;
        }
        for (size_t q = g, cl; q < i; q += cl) {
            cp_at(s, n, q, &cl);
            if (!cl) return bad(err, "invalid UTF-8 inside the normalizer (internal)");
            if ((r = sf_tok_charsmap_first(t, s + q, cl, &rep)) < 0) return bad(err, "corrupt precompiled_charsmap");
            if (!(r ? sb_put(o, rep, strlen(rep)) : sb_put(o, s + q, cl))) return nomem(err);
        }
    }
    return SF_OK;
}

static const char *find(const char *s, size_t n, const char *pat, size_t pn) {
    for (size_t i = 0; pn <= n && i <= n - pn; i++)
        if (s[i] == pat[0] && !memcmp(s + i, pat, pn)) return s + i;
    return NULL;
}

static sf_status replace(const hf_norm *nf, const char *s, size_t n, sbuf *o, sf_err *err) {
    size_t i = 0;
    if (nf->kind == NF_REPLACE) {
        while (i < n) {
            const char *hit = find(s + i, n - i, nf->a, nf->an);
            if (!hit) break;
            if (!sb_put(o, s + i, (size_t)(hit - (s + i))) || !sb_put(o, nf->b, nf->bn)) return nomem(err);
            i = (size_t)(hit - s) + nf->an;
        }
        return sb_put(o, s + i, n - i) ? SF_OK : nomem(err);
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(nf->re, NULL);
    if (!md) return nomem(err);
    sf_status st = SF_OK;
    while (i <= n) { /* non-empty matches, left to right */
        int rc = pcre2_match(nf->re, (PCRE2_SPTR)s, n, i, PCRE2_NOTEMPTY | PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) { /* e.g. PCRE2's match limit: a pattern that backtracks without end */
            PCRE2_UCHAR why[120];
            pcre2_get_error_message(rc, why, sizeof why);
            st = sf_fail(err, SF_E_FORMAT, "tokenizer.json: Replace regex failed on a prompt: %s", (const char *)why);
            goto done;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (!sb_put(o, s + i, ov[0] - i) || !sb_put(o, nf->b, nf->bn)) { st = nomem(err); goto done; }
        i = ov[1];
    }
    if (i < n && !sb_put(o, s + i, n - i)) st = nomem(err);
done:
    pcre2_match_data_free(md);
    return st;
}

static sf_status one_norm(const sf_tokenizer *t, const hf_norm *nf, const char *s, size_t n, sbuf *o, sf_err *err) {
    switch (nf->kind) {
    case NF_PRECOMPILED:
        return precompiled(t, s, n, o, err);
    case NF_REPLACE:
    case NF_REGEX:
        return replace(nf, s, n, o, err);
    case NF_PREPEND:
        return (!n || sb_put(o, nf->a, nf->an)) && sb_put(o, s, n) ? SF_OK : nomem(err);
    case NF_STRIP: {
        size_t a = 0, b = n, k;
        int64_t c;
        while (nf->left && a < b && (c = cp_at(s, n, a, &k)) >= 0 && sf_unicode_white_space((uint32_t)c)) a += k;
        while (nf->right && b > a && (c = cp_before(s, b)) >= 0 && sf_unicode_white_space((uint32_t)c))
            b = char_start(s, b);
        return sb_put(o, s + a, b - a) ? SF_OK : nomem(err);
    }
    default: {
        utf8proc_uint8_t *r = NULL;
        utf8proc_ssize_t rn = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &r, nf->uo);
        if (rn < 0) return bad(err, "NFC/NFKC normalization failed");
        int ok = sb_put(o, r, (size_t)rn);
        free(r);
        return ok ? SF_OK : nomem(err);
    }
    }
}

static sf_status normalize(const sf_tokenizer *t, const sf_hf_pipe *p, const char *s, size_t n, sbuf *out, sf_err *err) {
    sbuf a = {0}, b = {0};
    if (!sb_put(&a, s, n)) return nomem(err);
    for (size_t i = 0; i < p->n_norm; i++) {
        b.n = 0;
        if (!sb_put(&b, "", 0)) { free(a.p); return nomem(err); }
        sf_status st = one_norm(t, &p->norm[i], a.p, a.n, &b, err);
        if (st) { free(a.p), free(b.p); return st; }
        sbuf x = a;
        a = b, b = x;
    }
    free(b.p);
    *out = a;
    return SF_OK;
}

sf_status sf_hf_normalize(const sf_tokenizer *t, const sf_hf_pipe *p, const char *s, size_t n, char **out,
                          size_t *out_len, sf_err *err) {
    sbuf b = {0};
    sf_status st = normalize(t, p, s, n, &b, err);
    *out = st ? NULL : b.p;
    if (st) free(b.p);
    if (out_len) *out_len = st ? 0 : b.n;
    return st;
}

/* ---------- added tokens (tokenizers' AddedVocabulary::find_matches) ---------- */

typedef struct {
    size_t a, b;  /* byte range */
    int32_t id;   /* the added token's id, -1 for text */
} span;

typedef struct {
    span *v;
    size_t n, cap;
} spans;

static int push(spans *l, size_t a, size_t b, int32_t id) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        span *v = realloc(l->v, cap * sizeof *v);
        if (!v) return 0;
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = (span){a, b, id};
    return 1;
}

/* Split s[0..n) on the added tokens set[0..m): leftmost match, longest at that position, then on
 * from its end; spans cover s (empty text spans left out). */
static int split_added(const hf_added *set, size_t m, const char *s, size_t n, spans *out) {
    size_t done = 0; /* start_offset: the end of the last kept match */
    size_t i = 0;
    while (i < n && m) {
        const hf_added *best = NULL;
        for (size_t k = 0; k < m; k++)
            if (set[k].n && set[k].s[0] == s[i] && set[k].n <= n - i && (!best || set[k].n > best->n) &&
                !memcmp(s + i, set[k].s, set[k].n))
                best = &set[k];
        if (!best) {
            i++;
            continue;
        }
        size_t a = i, b = i + best->n;
        i = b;
        if (best->single_word) {
            int64_t l = cp_before(s, a), r = cp_at(s, n, b, NULL);
            if ((l >= 0 && is_word((uint32_t)l)) || (r >= 0 && is_word((uint32_t)r))) continue;
        }
        if (best->lstrip) {
            size_t na = a;
            for (int64_t c; (c = cp_before(s, na)) >= 0 && sf_unicode_white_space((uint32_t)c);) na = char_start(s, na);
            a = na > done ? na : done;
        }
        if (best->rstrip) {
            size_t k;
            for (int64_t c; (c = cp_at(s, n, b, &k)) >= 0 && sf_unicode_white_space((uint32_t)c);) b += k;
        }
        if (done < a && !push(out, done, a, -1)) return 0;
        if (!push(out, a, b, best->id)) return 0;
        done = b;
    }
    return done < n ? push(out, done, n, -1) : 1;
}

/* ---------- pre-tokenizer and model ---------- */

/* One word through the Unigram model: tokenizer.c's lattice, unknowns fused and looked up. */
static sf_status word_ids(const sf_tokenizer *t, const char *w, size_t n, sbuf *ids, sf_err *err) {
    int32_t *nodes = NULL;
    size_t *starts = NULL, nr = 0;
    const sf_spiece_model *m = sf_tokenizer_model(t);
    sf_status st = sf_tok_lattice(t, w, n, &nodes, &starts, &nr, err);
    if (st) return st;
    for (size_t r = 0; r < nr;) {
        size_t e = r + 1;
        int32_t id = nodes[r];
        if (id == m->unk_id)
            while (e < nr && nodes[e] == m->unk_id) e++;
        size_t a = starts[r], b = e < nr ? starts[e] : n;
        if (id == m->unk_id) { /* the fused string may be a piece after all, or its bytes may be */
            int32_t f = sf_tok_find(t, w + a, b - a);
            int bytes = f < 0 && m->byte_fallback;
            for (size_t q = a; bytes && q < b; q++) bytes = sf_tok_byte_id(t, (unsigned char)w[q]) >= 0;
            if (bytes) {
                for (size_t q = a; q < b; q++) {
                    int32_t bid = sf_tok_byte_id(t, (unsigned char)w[q]);
                    if (!sb_put(ids, &bid, sizeof bid)) { st = nomem(err); goto done; }
                }
                r = e;
                continue;
            }
            id = f >= 0 ? f : m->unk_id;
        }
        if (!sb_put(ids, &id, sizeof id)) { st = nomem(err); goto done; }
        r = e;
    }
done:
    free(nodes), free(starts);
    return st;
}

/* Metaspace over one normalized text segment, then the model on each word. */
static sf_status segment_ids(const sf_tokenizer *t, const sf_hf_pipe *p, const char *s, size_t n, int first, sbuf *ids,
                             sf_err *err) {
    if (!p->meta) return word_ids(t, s, n, ids, err);
    sbuf w = {0};
    sf_status st = SF_OK;
    if (!sb_put(&w, "", 0)) return nomem(err);
    int starts_rep = n >= 1 && s[0] == ' ';
    if (!starts_rep && n >= p->rep_n && !memcmp(s, p->rep, p->rep_n)) starts_rep = 1;
    if (!starts_rep && (p->prepend == PREPEND_ALWAYS || (p->prepend == PREPEND_FIRST && first)) &&
        !sb_put(&w, p->rep, p->rep_n)) { st = nomem(err); goto done; }
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' ? sb_put(&w, p->rep, p->rep_n) : sb_put(&w, s + i, 1))) { st = nomem(err); goto done; }
    size_t a = 0;
    for (size_t i = 1; p->split && i + p->rep_n <= w.n; i++) { /* a word begins at each replacement */
        if (memcmp(w.p + i, p->rep, p->rep_n)) continue;
        if ((st = word_ids(t, w.p + a, i - a, ids, err))) goto done;
        a = i;
        i += p->rep_n - 1;
    }
    if (a < w.n) st = word_ids(t, w.p + a, w.n - a, ids, err);
done:
    free(w.p);
    return st;
}

sf_status sf_hf_encode(const sf_tokenizer *t, const sf_hf_pipe *p, const char *s, size_t n, int32_t **ids_out,
                       size_t *n_out, sf_err *err) {
    spans raw = {0}, sub = {0};
    sbuf ids = {0}, nz = {0};
    sf_status st = SF_OK;
    *ids_out = NULL, *n_out = 0;
    if (!sb_put(&ids, "", 0)) return nomem(err);
    if (n && !split_added(p->added, p->n_raw, s, n, &raw)) { st = nomem(err); goto done; }
    for (size_t i = 0; i < raw.n; i++) {
        span r = raw.v[i];
        if (r.id >= 0) {
            if (!sb_put(&ids, &r.id, sizeof r.id)) { st = nomem(err); goto done; }
            continue;
        }
        free(nz.p), nz = (sbuf){0};
        if ((st = normalize(t, p, s + r.a, r.b - r.a, &nz, err))) goto done;
        sub.n = 0;
        const hf_added *norm_set = p->added ? p->added + p->n_raw : NULL;
        if (nz.n && !split_added(norm_set, p->n_added - p->n_raw, nz.p, nz.n, &sub)) { st = nomem(err); goto done; }
        for (size_t j = 0; j < sub.n; j++) {
            span q = sub.v[j];
            if (q.id >= 0) {
                if (!sb_put(&ids, &q.id, sizeof q.id)) { st = nomem(err); goto done; }
            } else if ((st = segment_ids(t, p, nz.p + q.a, q.b - q.a, r.a == 0 && q.a == 0, &ids, err))) {
                goto done;
            }
        }
    }
    *n_out = ids.n / sizeof(int32_t);
    *ids_out = (int32_t *)(void *)ids.p;
    ids.p = NULL;
done:
    free(raw.v), free(sub.v), free(nz.p), free(ids.p);
    return st;
}
