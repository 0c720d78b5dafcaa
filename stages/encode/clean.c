/* clean.c — the reference's prompt cleaning, before SentencePiece (SPEC.md §2.2).
 *
 * wan/modules/tokenizers.py: whitespace_clean(basic_clean(text)), basic_clean = ftfy.fix_text, then
 * html.unescape twice, then strip; whitespace_clean = collapse runs of \s (Unicode White_Space) to
 * one ' ' and strip. Here: sf_ftfy_fix_text (ftfy 6's fixes, its mojibake repair in mojibake.c, NFC
 * through utf8proc), sf_html_unescape (Python's html.unescape, the HTML5 table in html_entities.c),
 * sf_text_clean. Tested by tests/unit/test_tokenizer.c: the goldens, hand cases, and
 * tests/unit/fixtures/clean_ftfy.json (inputs with what ftfy 6.3.1 + the reference's cleaning make of
 * them, written by tests/heldout/tokenizer_diff.py, which also compares whole token ids with
 * SentencePiece). */
#include "stages/encode/clean.h"
#include "stages/encode/html_entities.h"
#include "stages/encode/mojibake.h"
#include "stages/encode/sbuf.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

sf_status sf_utf8_check(const char *s, size_t len, const char *what, sf_err *err) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        if (u[i] == 0) return sf_fail(err, SF_E_FORMAT, "%s contains a NUL byte at byte offset %zu", what, i);
        size_t k = (size_t)sf_utf8_decode(s + i, len - i, &cp);
        if (!k) return sf_fail(err, SF_E_FORMAT, "%s is not valid UTF-8 (bad byte 0x%02x at offset %zu)", what, u[i], i);
        i += k;
    }
    return SF_OK;
}


int sf_unicode_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Python str.isspace (used by str.strip): White_Space plus the separators U+001C..U+001F. */
static int is_py_space(uint32_t c) {
    return sf_unicode_white_space(c) || (c >= 0x1c && c <= 0x1f);
}

/* ---------- html.unescape ---------- */

/* The character of a byte 0x80..0x9f in ftfy's sloppy Windows-1252 (bytes cp1252 lacks map to
 * themselves): ftfy's fix_c1_controls, and Python's html._invalid_charrefs for those numbers too. */
static uint32_t cp1252_c1(uint64_t c) {
    return sf_ftfy_charmaps[SF_FTFY_SLOPPY_1252].decode[c];
}

static int html_numeric(sbuf *b, uint64_t num) {
    if (num == 0) return sb_cp(b, 0xfffd);
    if (num == 0x0d) return sb_cp(b, 0x0d);
    if (num >= 0x80 && num <= 0x9f) return sb_cp(b, cp1252_c1(num));
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

/* The digits of a numeric character reference from s[p] (hex or decimal), as their value saturated at
 * 0x110000 (anything larger is U+FFFD either way) into *num; returns the index past the last digit. */
static size_t charref_digits(const char *s, size_t len, size_t p, int hex, uint64_t *num) {
    *num = 0;
    for (; p < len && (hex ? isxdigit((unsigned char)s[p]) : (s[p] >= '0' && s[p] <= '9')); p++) {
        const int v = s[p] <= '9' ? s[p] - '0' : (s[p] | 0x20) - 'a' + 10;
        *num = *num * (hex ? 16 : 10) + (uint64_t)v;
        if (*num > 0x110000) *num = 0x110000;
    }
    return p;
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
            size_t d = j + 1 + (size_t)hex;
            uint64_t num;
            size_t e = charref_digits(s, len, d, hex, &num);
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
            size_t k = (size_t)sf_utf8_decode(s + e, len - e, &cp);
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

/* ---------- ftfy.fix_text ----------
 *
 * ftfy 6's fix_text with its default configuration. The text is cut after each '\n' into segments,
 * as fix_text does; each segment gets the fixes below in ftfy's order, again and again until a round
 * changes nothing: unescape_html (not in a segment that has a '<', nor in any segment after it),
 * fix_encoding (the mojibake repair: sf_ftfy_fix_encoding, mojibake.c), fix_c1_controls,
 * fix_latin_ligatures, fix_character_width, uncurl_quotes, fix_line_breaks, remove_terminal_escapes,
 * remove_control_chars, then NFC. fix_surrogates has nothing to do on valid UTF-8. */

static int is_alnum_ascii(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* ftfy's HTML_ENTITY_RE, "&#?[0-9A-Za-z]{1,24};", matched at s[i] == '&': the end of the match
 * (past its ';'), or 0 when there is none. */
static size_t ftfy_entity_end(const char *s, size_t len, size_t i) {
    size_t j = i + 1;
    if (j < len && s[j] == '#') j++;
    size_t k = j;
    while (k < len && k - j <= 24 && is_alnum_ascii(s[k])) k++;
    if (k == j || k - j > 24 || k >= len || s[k] != ';') return 0;
    return k + 1;
}

/* Python's str.upper() of an entity's text: simple upper-casing (utf8proc) but for the code
 * points whose full mapping is longer, among the HTML5 entities' values. */
static int sb_upper(sbuf *b, const char *s) {
    for (size_t i = 0, n = strlen(s); i < n;) {
        uint32_t cp;
        size_t k = (size_t)sf_utf8_decode(s + i, n - i, &cp);
        if (!k) return sb_put(b, s + i, n - i); /* the tables are valid UTF-8: not reached */
        const char *full = cp == 0xdf ? "SS" : cp == 0x149 ? "\xca\xbcN" : cp == 0xfb00 ? "FF" : cp == 0xfb01 ? "FI"
                         : cp == 0xfb02 ? "FL" : cp == 0xfb03 ? "FFI" : cp == 0xfb04 ? "FFL" : NULL;
        if (!(full ? sb_put(b, full, strlen(full)) : sb_cp(b, (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp)))) return 0;
        i += k;
    }
    return 1;
}

/* One entity match m[0..n) ('&' to ';') as ftfy's _unescape_fixup replaces it: a named HTML5
 * reference that ends in ';', or an all-caps spelling of a lower-case one that html.unescape
 * leaves alone (&EACUTE; → É, &SZLIG; → SS), or a numeric reference that html.unescape decodes
 * whole (its ';' consumed); anything else stays. 1 when appended, 0 when out of memory. */
static int ftfy_entity(sbuf *b, const char *m, size_t n) {
    if (m[1] == '#') {
        size_t p = 2;
        int hex = m[p] == 'x' || m[p] == 'X';
        p += (size_t)hex;
        uint64_t num;
        const size_t d = p;
        p = charref_digits(m, n, d, hex, &num); /* stops at the match's ';' */
        if (p == d || p != n - 1) return sb_put(b, m, n); /* html.unescape would leave a ';' */
        sbuf r = {0};
        int ok = sb_put(&r, "", 0) && html_numeric(&r, num);
        ok = ok && (strchr(r.p, ';') ? sb_put(b, m, n) : sb_put(b, r.p, r.n)); /* &#59; stays */
        free(r.p);
        return ok;
    }
    const sf_html_entity *e = entity_find(m + 1, n - 1);
    if (e) return sb_put(b, e->utf8, strlen(e->utf8));
    char low[SF_HTML_ENTITY_MAX_NAME + 2];
    if (n - 1 > SF_HTML_ENTITY_MAX_NAME + 1) return sb_put(b, m, n);
    for (size_t i = 1; i < n; i++) {
        if (m[i] >= 'a' && m[i] <= 'z') return sb_put(b, m, n); /* not all-caps */
        low[i - 1] = m[i] >= 'A' && m[i] <= 'Z' ? (char)(m[i] | 0x20) : m[i];
    }
    if (!(e = entity_find(low, n - 1))) return sb_put(b, m, n);
    char *u = NULL;
    size_t un = 0;
    sf_err ignore;
    if (sf_html_unescape(m, n, &u, &un, &ignore)) return 0;
    int same = un == n && !memcmp(u, m, n);
    free(u);
    return same ? sb_upper(b, e->utf8) : sb_put(b, m, n);
}

static int ftfy_unescape_html(const char *s, size_t len, sbuf *b) {
    for (size_t i = 0; i < len;) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t k = amp ? (size_t)(amp - s) : len, e;
        if (!sb_put(b, s + i, k - i)) return 0;
        if ((i = k) == len) break;
        if ((e = ftfy_entity_end(s, len, i))) {
            if (!ftfy_entity(b, s + i, e - i)) return 0;
            i = e;
        } else {
            if (!sb_put(b, "&", 1)) return 0;
            i++;
        }
    }
    return 1;
}

/* The per-character fixes: each returns the replacement of cp, or NULL to keep it ("" drops it). */
static const char *ftfy_c1(uint32_t cp, char *tmp) { /* fix_c1_controls: sloppy Windows-1252 */
    if (cp < 0x80 || cp > 0x9f || cp1252_c1(cp) == cp) return NULL;
    tmp[utf8proc_encode_char((utf8proc_int32_t)cp1252_c1(cp), (utf8proc_uint8_t *)tmp)] = 0;
    return tmp;
}

static const char *ftfy_ligature(uint32_t cp, char *tmp) { /* fix_latin_ligatures */
    (void)tmp;
    switch (cp) {
    case 0x132: return "IJ";
    case 0x133: return "ij";
    case 0x149: return "\xca\xbcn"; /* ʼn */
    case 0x1f1: return "DZ";
    case 0x1f2: return "Dz";
    case 0x1f3: return "dz";
    case 0x1c4: return "D\xc5\xbd"; /* DŽ */
    case 0x1c5: return "D\xc5\xbe"; /* Dž */
    case 0x1c6: return "d\xc5\xbe"; /* dž */
    case 0x1c7: return "LJ";
    case 0x1c8: return "Lj";
    case 0x1c9: return "lj";
    case 0x1ca: return "NJ";
    case 0x1cb: return "Nj";
    case 0x1cc: return "nj";
    case 0xfb00: return "ff";
    case 0xfb01: return "fi";
    case 0xfb02: return "fl";
    case 0xfb03: return "ffi";
    case 0xfb04: return "ffl";
    case 0xfb05: return "\xc5\xbft"; /* ſt */
    case 0xfb06: return "st";
    }
    return NULL;
}

static const char *ftfy_width(uint32_t cp, char *tmp) { /* fix_character_width: NFKC of U+FF01..U+FFEF */
    if (cp == 0x3000) return " ";
    if (cp < 0xff01 || cp > 0xffef) return NULL;
    utf8proc_uint8_t in[8];
    utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)cp, in);
    in[k] = 0;
    utf8proc_uint8_t *nf = utf8proc_NFKC(in);
    if (!nf) return NULL;
    size_t n = strlen((const char *)nf);
    int same = n == (size_t)k && !memcmp(nf, in, n);
    if (!same && n < 32) memcpy(tmp, nf, n + 1);
    free(nf);
    return same || n >= 32 ? NULL : tmp;
}

static const char *ftfy_quote(uint32_t cp, char *tmp) { /* uncurl_quotes */
    (void)tmp;
    return cp == 0x2bc || (cp >= 0x2018 && cp <= 0x201b) ? "'" : cp >= 0x201c && cp <= 0x201f ? "\"" : NULL;
}

static const char *ftfy_line_break(uint32_t cp, char *tmp) { /* fix_line_breaks ("\r\n" in the caller) */
    (void)tmp;
    return cp == '\r' || cp == 0x2028 || cp == 0x2029 || cp == 0x85 ? "\n" : NULL;
}

static const char *ftfy_control(uint32_t cp, char *tmp) { /* remove_control_chars */
    (void)tmp;
    return cp <= 0x08 || cp == 0x0b || (cp >= 0x0e && cp <= 0x1f) || cp == 0x7f || (cp >= 0x206a && cp <= 0x206f) ||
                   cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffc)
               ? ""
               : NULL;
}

static int ftfy_map(const char *s, size_t len, sbuf *b, const char *(*fix)(uint32_t, char *)) {
    char tmp[32];
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = (size_t)sf_utf8_decode(s + i, len - i, &cp);
        if (!k) k = 1, cp = 0xfffd; /* valid UTF-8 in; stay safe */
        if (fix == ftfy_line_break && cp == '\r' && i + 1 < len && s[i + 1] == '\n') k = 2; /* "\r\n" → "\n" */
        const char *r = fix(cp, tmp);
        if (!(r ? sb_put(b, r, strlen(r)) : sb_put(b, s + i, k))) return 0;
        i += k;
    }
    return 1;
}

/* remove_terminal_escapes: "\033\[((?:\d|;)*)([a-zA-Z])", a str pattern: \d is any Unicode decimal
 * digit (category Nd: '٣', '१', '𝟘'), not only 0-9 */
static int ftfy_escapes(const char *s, size_t len, sbuf *b) {
    for (size_t i = 0; i < len;) {
        if (s[i] == '\033' && i + 1 < len && s[i + 1] == '[') {
            size_t j = i + 2, k;
            uint32_t cp;
            while (j < len && (k = (size_t)sf_utf8_decode(s + j, len - j, &cp)) &&
                   (cp == ';' || utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ND))
                j += k;
            if (j < len && ((s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= 'a' && s[j] <= 'z'))) {
                i = j + 1;
                continue;
            }
        }
        if (!sb_put(b, s + i, 1)) return 0;
        i++;
    }
    return 1;
}

static int sb_reset(sbuf *b) {
    b->n = 0;
    return sb_put(b, "", 0);
}

static void sb_swap(sbuf *a, sbuf *b) {
    sbuf t = *a;
    *a = *b, *b = t;
}

/* One round of ftfy's fixes over in, into out (x: scratch). The mojibake repair may make U+0000
 * (C0 80 in utf-8-variants); remove_control_chars drops it before NFC reads a C string. */
static sf_status ftfy_round(const sbuf *in, sbuf *out, sbuf *x, int unescape, sf_err *err) {
    static const char *(*const fix[])(uint32_t, char *) = {ftfy_c1, ftfy_ligature, ftfy_width, ftfy_quote,
                                                           ftfy_line_break};
    sf_status st;
    if (!sb_reset(out) || !(unescape ? ftfy_unescape_html(in->p, in->n, out) : sb_put(out, in->p, in->n))) goto nomem;
    if (!sb_reset(x)) goto nomem;
    if ((st = sf_ftfy_fix_encoding(out->p, out->n, x, err))) return st;
    sb_swap(out, x);
    for (size_t f = 0; f < sizeof fix / sizeof *fix; f++) {
        if (!sb_reset(x) || !ftfy_map(out->p, out->n, x, fix[f])) goto nomem;
        sb_swap(out, x);
    }
    if (!sb_reset(x) || !ftfy_escapes(out->p, out->n, x)) goto nomem;
    if (!sb_reset(out) || !ftfy_map(x->p, x->n, out, ftfy_control)) goto nomem;
    utf8proc_uint8_t *nfc = utf8proc_NFC((const utf8proc_uint8_t *)out->p);
    int ok = nfc && sb_reset(out) && sb_put(out, nfc, strlen((const char *)nfc));
    free(nfc);
    if (ok) return SF_OK;
nomem:
    return sf_fail(err, SF_E_NOMEM, "out of memory cleaning a prompt");
}

/* A segment whose fixes have not settled after this many rounds is not a prompt: ftfy would go on
 * (each round of "&amp;amp;…" peels one level, so 16 KiB can take 4096 rounds, seconds here), and
 * stopping early would clean it differently from the reference, so it is refused instead. */
#define FTFY_MAX_ROUNDS 256

sf_status sf_ftfy_fix_text(const char *text, size_t len, char **out, size_t *out_len, sf_err *err) {
    sbuf o = {0}, cur = {0}, nxt = {0}, x = {0};
    int unescape = 1;
    sf_status st = sb_reset(&o) ? SF_OK : SF_E_NOMEM;
    *out = NULL;
    for (size_t pos = 0; !st && pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) + 1 : len;
        if (memchr(text + pos, '<', end - pos)) unescape = 0; /* fix_text's "auto": off from here on */
        if (!sb_reset(&cur) || !sb_put(&cur, text + pos, end - pos)) st = SF_E_NOMEM;
        int settled = 0;
        for (int round = 0; !st && !settled && round < FTFY_MAX_ROUNDS; round++) {
            if ((st = ftfy_round(&cur, &nxt, &x, unescape, err))) break;
            settled = nxt.n == cur.n && !memcmp(nxt.p, cur.p, cur.n);
            sb_swap(&cur, &nxt);
        }
        if (!st && !settled)
            st = sf_fail(err, SF_E_FORMAT, "ftfy's fixes of the prompt do not settle within %d rounds (HTML entities nested "
                         "that deep, like &amp;amp;amp;...?); refused rather than cleaned unlike the reference",
                         FTFY_MAX_ROUNDS);
        if (!st && !sb_put(&o, cur.p, cur.n)) st = SF_E_NOMEM;
        pos = end;
    }
    free(cur.p), free(nxt.p), free(x.p);
    if (st) {
        free(o.p);
        return st == SF_E_NOMEM ? sf_fail(err, SF_E_NOMEM, "out of memory cleaning a prompt") : st;
    }
    *out = o.p;
    if (out_len) *out_len = o.n;
    return SF_OK;
}

/* ---------- cleaning ---------- */

sf_status sf_text_clean(const char *text, size_t len, char **out, size_t *out_len, sf_err *err) {
    sf_status st;
    char *f = NULL, *a = NULL, *c = NULL;
    size_t fn = 0, an = 0, cn = 0;
    sbuf w = {0};
    *out = NULL;
    if ((st = sf_utf8_check(text, len, "prompt", err))) return st;
    if ((st = sf_ftfy_fix_text(text, len, &f, &fn, err))) return st;
    if ((st = sf_html_unescape(f, fn, &a, &an, err))) goto fail;
    if ((st = sf_html_unescape(a, an, &c, &cn, err))) goto fail;
    /* strip (isspace), collapse \s+ (White_Space) to ' ', strip again */
    size_t i = 0, end = cn;
    if (!sb_put(&w, "", 0)) goto nomem;
    int pending_space = 0;
    while (i < end) {
        uint32_t cp;
        size_t k = (size_t)sf_utf8_decode(c + i, end - i, &cp);
        if (!k) { st = sf_fail(err, SF_E_FORMAT, "prompt: invalid UTF-8 after unescaping"); goto fail; }
        if (sf_unicode_white_space(cp) || (is_py_space(cp) && w.n == 0)) {
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
    free(f), free(a), free(c);
    *out = w.p;
    if (out_len) *out_len = w.n;
    return SF_OK;
nomem:
    st = sf_fail(err, SF_E_NOMEM, "out of memory cleaning a prompt");
fail:
    free(f), free(a), free(c), free(w.p);
    return st;
}

