/* mojibake.h — ftfy's mojibake repair (ftfy.fix_encoding, ftfy 6.3.1, default configuration), the
 * step of the reference's ftfy.fix_text that clean.c runs after its HTML unescape in each round.
 * The data (1-byte charsets, ftfy's regular expressions for PCRE2) is mojibake_tables.c, generated
 * by tests/heldout/gen_ftfy_tables.py from ftfy's and Python's own tables. */
#ifndef SF_ENCODE_MOJIBAKE_H
#define SF_ENCODE_MOJIBAKE_H

#include "sf.h"
#include "stages/encode/sbuf.h"

#include <stddef.h>
#include <stdint.h>

/* ftfy.fix_encoding(s[0..len)): s is valid UTF-8 (U+0000 allowed). Appends the repaired text to
 * *out (valid UTF-8; it may hold U+0000, which ftfy's utf-8-variants decoding makes of C0 80).
 * SF_E_NOMEM when out of memory, SF_E_UNSUPPORTED when PCRE2 cannot compile or run the patterns
 * (a PCRE2 built without Unicode support). */
sf_status sf_ftfy_fix_encoding(const char *s, size_t len, sbuf *out, sf_err *err);

/* ---- the generated tables (mojibake_tables.c) ---- */

/* chardata.CHARMAP_ENCODINGS, in ftfy's order */
enum {
    SF_FTFY_LATIN_1, SF_FTFY_SLOPPY_1252, SF_FTFY_SLOPPY_1251, SF_FTFY_SLOPPY_1250, SF_FTFY_SLOPPY_1253,
    SF_FTFY_SLOPPY_1254, SF_FTFY_SLOPPY_1257, SF_FTFY_ISO_8859_2, SF_FTFY_MACROMAN, SF_FTFY_CP437,
    SF_FTFY_N_CHARMAPS
};

typedef struct sf_ftfy_enc {
    uint16_t cp; /* a non-ASCII character the encoding has */
    uint8_t byte;
} sf_ftfy_enc;

typedef struct sf_ftfy_charmap {
    const char *name;         /* ftfy's name: "latin-1", "sloppy-windows-1252", ... */
    int sloppy;               /* ftfy's sloppy codec (byte 1A is U+FFFD; lossy sequences repaired) */
    const uint16_t *decode;   /* [256]: the character of each byte */
    const sf_ftfy_enc *encode; /* [n_encode], by code point; ASCII not listed (itself, but 1A in sloppy) */
    size_t n_encode;
} sf_ftfy_charmap;

extern const sf_ftfy_charmap sf_ftfy_charmaps[SF_FTFY_N_CHARMAPS];

enum { SF_FTFY_RE_BADNESS, SF_FTFY_RE_UTF8_DETECTOR, SF_FTFY_RE_ALTERED_UTF8, SF_FTFY_RE_LOSSY_UTF8,
       SF_FTFY_RE_A_GRAVE_WORD, SF_FTFY_N_REGEXES };

typedef struct sf_ftfy_regex {
    const char *name;
    int utf;             /* 1: matches text (UTF-8, code points); 0: matches bytes */
    const char *pattern; /* PCRE2 syntax */
} sf_ftfy_regex;

extern const sf_ftfy_regex sf_ftfy_regexes[SF_FTFY_N_REGEXES];

#endif
