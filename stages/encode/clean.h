/* clean.h — the reference's prompt cleaning (basic_clean + whitespace_clean of
 * wan/modules/tokenizers.py; SPEC.md §2.2), the text SentencePiece then encodes (tokenizer.h). */
#ifndef SF_ENCODE_CLEAN_H
#define SF_ENCODE_CLEAN_H

#include "sf.h"

#include <stddef.h>

/* Check that s[0..len) is valid UTF-8 without NUL bytes; SF_E_FORMAT with the byte offset. */
sf_status sf_utf8_check(const char *s, size_t len, const char *what, sf_err *err);
/* Unicode White_Space: the regex package's and Rust's \s, Python's re \s on str, what the reference's
 * whitespace_clean and tokenizers' Strip / lstrip / rstrip use. */
int sf_unicode_white_space(uint32_t c);

/* Python html.unescape(s) (named HTML5 references incl. the semicolon-less legacy ones,
 * decimal/hex references with the HTML5 replacement rules). *out: new NUL-terminated
 * string, caller frees. Input must be valid UTF-8. */
sf_status sf_html_unescape(const char *s, size_t len, char **out, size_t *out_len, sf_err *err);

/* ftfy.fix_text (ftfy 6.3.1, default configuration): per line, until nothing changes: HTML
 * entities (ftfy's rules: ';' required, all-caps spellings; not once a line has had a '<'), the
 * mojibake repair (fix_encoding, mojibake.h), C1 controls as Windows-1252, Latin ligatures,
 * full/half-width forms, curly quotes, line breaks to '\n', terminal escapes and control
 * characters removed, NFC. Input must be valid UTF-8 without NUL. *out: caller frees. A line whose
 * fixes have not settled after 256 rounds (entities nested that deep) is SF_E_FORMAT, not cut short. */
sf_status sf_ftfy_fix_text(const char *text, size_t len, char **out, size_t *out_len, sf_err *err);

/* The reference's prompt cleaning: sf_ftfy_fix_text, html.unescape twice, strip, collapse runs
 * of Unicode whitespace to one ' ', strip. Rejects invalid UTF-8 and NUL bytes. *out: caller frees. */
sf_status sf_text_clean(const char *text, size_t len, char **out, size_t *out_len, sf_err *err);

#endif
