/* test_tokenizer.c — stages/encode/tokenizer.c against tests/golden/expect/tokens.json (all
 * 28 prompts: cleaned text, ids, mask, byte-exact), Python html.unescape cases, whitespace
 * rules, ftfy's fixes and its mojibake repair (stages/encode/clean.c, mojibake.c: hand cases and
 * tests/unit/fixtures/clean_ftfy.json), and bad input (invalid UTF-8, NUL bytes). */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "stages/encode/tokenizer.h"

#include <cjson/cJSON.h>

static sf_tokenizer *golden_tok(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model/google/umt5-xxl/spiece.model", sf_test_golden());
    sf_tokenizer *t = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_tokenizer_load(path, &t, &err), &err);
    return t;
}

static cJSON *golden_tokens(void) {
    char path[1024], *data = NULL;
    size_t len = 0;
    sf_err err = {{0}};
    snprintf(path, sizeof path, "%s/expect/tokens.json", sf_test_golden());
    SF_CHECK_OK(sf_read_file(path, &data, &len, 1 << 24, &err), &err);
    if (!data) return NULL;
    cJSON *j = cJSON_ParseWithLength(data, len);
    free(data);
    SF_CHECK(j != NULL);
    return j;
}

static void test_golden_prompts(void) {
    sf_tokenizer *t = golden_tok();
    cJSON *j = golden_tokens();
    if (!t || !j) goto done;
    cJSON *prompts = cJSON_GetObjectItem(j, "prompts");
    int n = cJSON_GetArraySize(prompts), checked = 0, differ = 0;
    SF_CHECK(n == 28);
    int64_t ids[512], mask[512];
    for (int i = 0; i < n; i++) {
        cJSON *p = cJSON_GetArrayItem(prompts, i);
        const char *text = cJSON_GetObjectItem(p, "text")->valuestring;
        const char *want_clean = cJSON_GetObjectItem(p, "cleaned")->valuestring;
        const char *tag = cJSON_GetObjectItem(p, "tag")->valuestring;
        cJSON *wid = cJSON_GetObjectItem(p, "ids"), *wmask = cJSON_GetObjectItem(p, "mask");
        int want_n = cJSON_GetObjectItem(p, "num_tokens")->valueint;
        size_t nt = 0;
        char *clean = NULL;
        sf_err err = {{0}};
        SF_CHECK_OK(sf_tokenizer_prompt(t, text, strlen(text), 512, ids, mask, &nt, &clean, &err), &err);
        if (!clean) continue;
        /* The golden's "cleaned" emulates ftfy.fix_text as the identity (tokens.json "emulated"); the
         * reference's real ftfy also folds widths and ligatures and composes (NFC), as clean.c does, so
         * 6 of the 28 public ones differ from it in those characters only: the two must be the same
         * text to SentencePiece (its NFKC charsmap), and the ids below are compared exactly. */
        char *nc = NULL, *nw = NULL;
        SF_CHECK_OK(sf_tokenizer_normalize(t, clean, strlen(clean), &nc, NULL, &err), &err);
        SF_CHECK_OK(sf_tokenizer_normalize(t, want_clean, strlen(want_clean), &nw, NULL, &err), &err);
        SF_CHECK_MSG(nc && nw && strcmp(nc, nw) == 0, "prompt %d (%s) cleaned '%s' want '%s' (as SentencePiece reads them)",
                     i, tag, clean, want_clean);
        differ += strcmp(clean, want_clean) != 0;
        free(nc), free(nw);
        SF_CHECK_MSG((int)nt == want_n, "prompt %d (%s): %zu tokens, want %d", i, tag, nt, want_n);
        SF_CHECK(cJSON_GetArraySize(wid) == 512 && cJSON_GetArraySize(wmask) == 512);
        int bad = -1;
        for (int k = 0; k < 512 && bad < 0; k++)
            if (ids[k] != (int64_t)cJSON_GetArrayItem(wid, k)->valuedouble ||
                mask[k] != (int64_t)cJSON_GetArrayItem(wmask, k)->valuedouble)
                bad = k;
        SF_CHECK_MSG(bad < 0, "prompt %d (%s): first id mismatch at %d: got %lld (%s) want %lld", i, tag, bad,
                     bad < 0 ? 0LL : (long long)ids[bad], bad < 0 ? "" : sf_tokenizer_piece(t, (int32_t)ids[bad]),
                     bad < 0 ? 0LL : (long long)cJSON_GetArrayItem(wid, bad)->valuedouble);
        checked += bad < 0;
        free(clean);
    }
    SF_CHECK(checked == 28);
    if (getenv("SF_TEST_VERBOSE")) fprintf(stderr, "# %d cleaned texts differ from the golden's emulation\n", differ);
done:
    cJSON_Delete(j);
    sf_tokenizer_destroy(&t);
}

static void check_unescape(const char *in, const char *want) {
    char *out = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_html_unescape(in, strlen(in), &out, NULL, &err), &err);
    SF_CHECK_MSG(out && strcmp(out, want) == 0, "unescape('%s') = '%s', want '%s'", in, out ? out : "(null)", want);
    free(out);
}

static void test_html_unescape(void) {
    /* expected values from CPython 3.11 html.unescape */
    check_unescape("a &amp; b", "a & b");
    check_unescape("&amp;amp;", "&amp;");
    check_unescape("&lt;3 &gt", "<3 >");
    check_unescape("&ampfoo;", "&foo;");               /* longest legacy prefix "amp" */
    check_unescape("&notit;", "\xC2\xAC" "it;");       /* "not" is a legacy name */
    check_unescape("&unknown; &", "&unknown; &");
    check_unescape("&#39;&#x27;&#X41;", "''A");
    check_unescape("&#65", "A");                       /* ';' optional */
    check_unescape("&#0;", "\xEF\xBF\xBD");
    check_unescape("&#x80;", "\xE2\x82\xAC");          /* cp1252 € */
    check_unescape("&#x81;", "\xC2\x81");
    check_unescape("&#1;x", "x");                      /* invalid code point → '' */
    check_unescape("&#xD800;", "\xEF\xBF\xBD");
    check_unescape("&#99999999999999999999;", "\xEF\xBF\xBD");
    check_unescape("&#x1F600;", "\xF0\x9F\x98\x80");
    check_unescape("&#;&#x;", "&#;&#x;");
    check_unescape("&eacute;&Eacute", "\xC3\xA9\xC3\x89");
    check_unescape("&nbsp;&NotNestedGreaterGreater;", "\xC2\xA0\xE2\xAA\xA2\xCC\xB8");
    check_unescape("&amp", "&");
    check_unescape("&a", "&a");
}

static void check_clean(const char *in, const char *want) {
    char *out = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_text_clean(in, strlen(in), &out, NULL, &err), &err);
    SF_CHECK_MSG(out && strcmp(out, want) == 0, "clean('%s') = '%s', want '%s'", in, out ? out : "(null)", want);
    free(out);
}

static void test_clean(void) {
    check_clean("  a \t\n b  ", "a b");
    check_clean("\xE3\x80\x80x\xE2\x80\xA8y \xC2\x85", "x y \xE2\x80\xA6"); /* U+3000, U+2028; ftfy: U+0085 → … */
    check_clean("\x1c a\x1c b \x1f", "a b");                            /* ftfy drops U+001C..U+001F */
    check_clean("x\xE2\x80\x8By", "x\xE2\x80\x8By");                   /* ZWSP is not whitespace */
    check_clean("&nbsp;x&amp;nbsp;", "x");
    check_clean("\xE2\x80\x9Cquoted\xE2\x80\x9D it\xE2\x80\x99s", "\"quoted\" it's"); /* ftfy uncurl */
    check_clean("", "");
}

/* ftfy.fix_text and the whole cleaning, each pair checked with ftfy 6.3.1 and Python's
 * html.unescape (tests/heldout/tokenizer_diff.py --show). */
static void check_ftfy(const char *in, const char *want_ftfy, const char *want_clean) {
    char *out = NULL;
    size_t n = 0;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_ftfy_fix_text(in, strlen(in), &out, &n, &err), &err);
    SF_CHECK_MSG(out && strlen(out) == n && strcmp(out, want_ftfy) == 0, "ftfy('%s') = '%s', want '%s'", in,
                 out ? out : "(null)", want_ftfy);
    free(out);
    check_clean(in, want_clean);
}

static void test_ftfy(void) {
    /* entities: ';' required; all-caps spellings of lower-case names unless html.unescape reads them
     * (&LTRI; is "&LT" + "RI;"); full upper-casing (ß → SS, ﬀ → FF) */
    check_ftfy("&EACUTE;t&eacute; &SZLIG; &FFLIG; &NTILDE; &LTRI; &AMP; &Eacute",
               "\xC3\x89t\xC3\xA9 SS FF \xC3\x91 &LTRI; & &Eacute", "\xC3\x89t\xC3\xA9 SS FF \xC3\x91 <RI; & \xC3\x89");
    check_ftfy("&amp;amp;amp;amp;", "&", "&");                    /* one level per round, to the end */
    { /* 255 levels settle in ftfy's 256th round; deeper is refused, not returned half-unescaped */
        char deep[8 + 4 * 300];
        strcpy(deep, "&");
        for (int i = 0; i < 255; i++) strcat(deep, "amp;");
        check_ftfy(strcat(deep, "x"), "&x", "&x");
        deep[strlen(deep) - 1] = 0;
        char *out = NULL;
        sf_err err = {{0}};
        strcat(deep, "amp;x"); /* 256 levels */
        SF_CHECK(sf_ftfy_fix_text(deep, strlen(deep), &out, NULL, &err) == SF_E_FORMAT && !out);
        SF_CHECK_MSG(strstr(err.msg, "do not settle within 256 rounds") != NULL, "%s", err.msg);
        SF_CHECK(sf_text_clean(deep, strlen(deep), &out, NULL, &err) == SF_E_FORMAT && !out);
    }
    check_ftfy("<b>&amp;amp;amp;</b>", "<b>&amp;amp;amp;</b>", "<b>&amp;</b>"); /* a '<': not unescaped */
    check_ftfy("x &amp;amp;\n<i>\n&amp;amp;amp;", "x &\n<i>\n&amp;amp;amp;", "x & <i> &amp;"); /* per line, sticky */
    check_ftfy("&#59; &#x41; &#65a; &#0; &#128; &#x110000; &#1;",
               "&#59; A &#65a; \xEF\xBF\xBD \xE2\x82\xAC \xEF\xBF\xBD ", "; A Aa; \xEF\xBF\xBD \xE2\x82\xAC \xEF\xBF\xBD");
    check_ftfy("&ampx; &#x3b; &#X3B;", "&ampx; &#x3b; &#X3B;", "&x; ; ;");
    check_ftfy("\x1b[31mred\x1b[0m \x1b[1;4mbold\x1b[m", "red bold", "red bold");        /* terminal escapes */
    check_ftfy("a\x1b[\xD9\xA3;\xE0\xA5\xA7mred \x1b[\xF0\x9D\x9F\x98" "A", "ared ", "ared"); /* \d: any Nd digit */
    check_ftfy("\x1b\xEF\xBC\xBB" "31m", "", "");                       /* ESC + full-width '[': a later round */
    check_ftfy("\xC2\x93quoted\xC2\x94 \xC2\x85 \xC2\x81", "\"quoted\" \xE2\x80\xA6 \xC2\x81", /* C1 as cp1252 */
               "\"quoted\" \xE2\x80\xA6 \xC2\x81");
    check_ftfy("\xEF\xAC\x81ne \xC4\xB3 \xC7\x86 \xEF\xAC\x85", "fine ij d\xC5\xBE \xC5\xBFt", "fine ij d\xC5\xBE \xC5\xBFt");
    check_ftfy("\xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3\xEF\xBC\x81 \xEF\xBD\xB6\xEF\xBE\x9E \xE3\x80\x80x", /* widths */
               "ABC! \xE3\x82\xAC  x", "ABC! \xE3\x82\xAC x");
    check_ftfy("e\xCC\x81 a\xCC\x88\xCC\x81", "\xC3\xA9 \xC3\xA4\xCC\x81", "\xC3\xA9 \xC3\xA4\xCC\x81"); /* NFC */
    check_ftfy("\xEF\xBB\xBF" "bom\xE2\x81\xAA\xEF\xBF\xBC\x7f\x01", "bom", "bom");    /* control characters */
    check_ftfy("&am\x01p;", "&", "&");                                  /* removed, then unescaped next round */
    check_ftfy("a\r\nb\rc\xE2\x80\xA8" "d", "a\nb\nc\nd", "a b c d");
    check_ftfy("\xE2\x80\x98single\xE2\x80\x99 \xE2\x80\x9C" "double\xE2\x80\x9D \xCA\xBC", "'single' \"double\" '",
               "'single' \"double\" '");
}

static void check_fix2(const char *in, const char *want) { /* ftfy and the cleaning agree */
    check_ftfy(in, want, want);
}

/* ftfy's mojibake repair (fix_encoding, stages/encode/mojibake.c) */
static void test_ftfy_mojibake(void) {
    check_fix2("caf\xC3\x83\xC2\xA9", "caf\xC3\xA9"); /* UTF-8 read as Latin-1 */
    check_fix2("\xC3\xA2\xE2\x82\xAC\xE2\x84\xA2", "'");  /* as sloppy Windows-1252, then uncurled */
    check_fix2("\xC3\x83\xC6\x92\xC3\x82\xC2\xA9", "\xC3\xA9"); /* two layers: a step each */
    /* Windows-1252 of Windows-1252 with C1 left: embedded runs (decode_inconsistent_utf8), twice */
    check_fix2("\xC3\x83\xC2\xA2\xC3\xA2\xE2\x80\x9A\xC2\xAC\xC3\x85\xE2\x80\x9Cquoted"
               "\xC3\x83\xC2\xA2\xC3\xA2\xE2\x80\x9A\xC2\xAC\xC2\x9D", "\"quoted\"");
    check_fix2("\xC3\xA2\xE2\x82\xAC\xC5\x93 like this \xC3\xA2\xE2\x82\xAC\xEF\xBF\xBD", /* lossy: U+FFFD */
               "\" like this \xEF\xBF\xBD");
    check_fix2("l\xE2\x80\x99\xC3\x83\xC2\xA9t\xC3\x83\xC2\xA9 \xE4\xBD\xA0\xE5\xA5\xBD", /* in good text */
               "l'\xC3\xA9t\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD");
    check_fix2("\xC3\x83\xC2\xA0 la", "\xC3\xA0 la");
    check_fix2("voil\xC3\x83 le travail", "voil\xC3\xA0 le travail"); /* restore_byte_a0: ' ' was U+00A0 */
    check_fix2("\xC3\x83 quele", "\xC3\xA0quele");                   /* ... but for A_GRAVE_WORD_RE's words */
    check_fix2("\xD0\xA0\xD1\x9F\xD0\xA1\xD0\x82\xD0\xA0\xD1\x91\xD0\xA0\xD0\x86\xD0\xA0\xC2\xB5\xD0\xA1\xE2\x80\x9A", /* cp1251 */
               "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
    check_fix2("caf\xE2\x88\x9A\xC2\xA9", "caf\xC3\xA9"); /* MacRoman */
    check_fix2("\xE2\x95\xA8\xC6\x92\xE2\x95\xA4\xC3\x87\xE2\x95\xA8\xE2\x95\x95", "\xD0\x9F\xD1\x80\xD0\xB8"); /* cp437 */
    /* utf-8-variants: a CESU-8 pair; C0 80 is U+0000 (then removed); C0 before the line's final
     * '\n' takes the '\n' with it (the codec's '$' matches before it) */
    check_fix2("x\xC3\xAD\xC2\xA0\xC2\xBD\xC3\xAD\xC2\xB8\xC2\x80 \xC3\x83\xC2\xA9", "x\xF0\x9F\x98\x80 \xC3\xA9");
    check_fix2("Java\xC3\x80\xC2\x80null", "Javanull");
    check_ftfy("\xC3\x83\xC2\xA9\xC3\x80\nabc", "\xC3\xA9" "abc", "\xC3\xA9" "abc");
    check_fix2("\xC3\x83\xC2\xA1\xC2\x85 \xC2\x80\xC2\x81", "\xC3\xA1\xE2\x80\xA6 \xE2\x82\xAC\xC2\x81"); /* then C1 */
    check_fix2("na\xC3\xAFve caf\xC3\xA9 \xCE\x9E\xCE\xB3\xCE\x9E\xCE\xB5", /* not bad, or not repairable: kept */
               "na\xC3\xAFve caf\xC3\xA9 \xCE\x9E\xCE\xB3\xCE\x9E\xCE\xB5");
    /* a long prompt: one search over it, no PCRE2 limit in the way (16 KiB, sf-encode's most) */
    char in[16384 + 1], want[16384 + 1];
    size_t n = 0, w = 0;
    while (n + 8 <= 16384) memcpy(in + n, "caf\xC3\x83\xC2\xA9 ", 8), n += 8, memcpy(want + w, "caf\xC3\xA9 ", 6), w += 6;
    in[n] = 0, want[w] = 0;
    char *out = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_ftfy_fix_text(in, n, &out, NULL, &err), &err);
    SF_CHECK(out && strcmp(out, want) == 0);
    free(out);
}

/* tests/unit/fixtures/clean_ftfy.json: inputs (hand-picked and random, mojibake of every kind
 * among them) with what ftfy 6.3.1 (its default fix_text, fix_encoding included) and the
 * reference's whole cleaning make of them. */
static void test_ftfy_fixture(void) {
    const char *root = getenv("SF_ROOT");
    char path[1024], *data = NULL;
    size_t len = 0;
    sf_err err = {{0}};
    snprintf(path, sizeof path, "%s%stests/unit/fixtures/clean_ftfy.json", root && *root ? root : "",
             root && *root ? "/" : "");
    SF_CHECK_OK(sf_read_file(path, &data, &len, 1 << 24, &err), &err);
    cJSON *j = data ? cJSON_ParseWithLength(data, len) : NULL;
    free(data);
    SF_CHECK(cJSON_IsArray(j));
    int n = cJSON_GetArraySize(j), bad = 0;
    SF_CHECK(n >= 200);
    for (int i = 0; i < n; i++) {
        cJSON *c = cJSON_GetArrayItem(j, i);
        const char *in = cJSON_GetStringValue(cJSON_GetObjectItem(c, "in"));
        const char *wf = cJSON_GetStringValue(cJSON_GetObjectItem(c, "ftfy"));
        const char *wc = cJSON_GetStringValue(cJSON_GetObjectItem(c, "clean"));
        SF_CHECK(in && wf && wc);
        if (!in || !wf || !wc) break;
        char *f = NULL, *cl = NULL;
        if (sf_ftfy_fix_text(in, strlen(in), &f, NULL, &err) || sf_text_clean(in, strlen(in), &cl, NULL, &err) ||
            strcmp(f, wf) || strcmp(cl, wc)) {
            if (bad++ < 5)
                SF_CHECK_MSG(0, "case %d: ftfy '%s' (want '%s'), clean '%s' (want '%s')", i, f ? f : "(error)", wf,
                             cl ? cl : "(error)", wc);
        }
        free(f), free(cl);
    }
    SF_CHECK_MSG(bad == 0, "%d of %d cases differ", bad, n);
    cJSON_Delete(j);
}

static void test_bad_input(void) {
    sf_tokenizer *t = golden_tok();
    if (!t) return;
    int64_t ids[8], mask[8];
    size_t n = 0;
    sf_err err = {{0}};
    const char bad1[] = "abc\xff";
    SF_CHECK(sf_tokenizer_prompt(t, bad1, 4, 8, ids, mask, &n, NULL, &err) == SF_E_FORMAT);
    SF_CHECK(strstr(err.msg, "UTF-8") != NULL);
    const char over[] = "\xC0\xAF";  /* overlong '/' */
    SF_CHECK(sf_tokenizer_prompt(t, over, 2, 8, ids, mask, &n, NULL, &err) == SF_E_FORMAT);
    const char sur[] = "\xED\xA0\x80"; /* surrogate */
    SF_CHECK(sf_tokenizer_prompt(t, sur, 3, 8, ids, mask, &n, NULL, &err) == SF_E_FORMAT);
    const char nul[] = "ab\0cd";
    SF_CHECK(sf_tokenizer_prompt(t, nul, 5, 8, ids, mask, &n, NULL, &err) == SF_E_FORMAT);
    SF_CHECK(strstr(err.msg, "NUL") != NULL && strstr(err.msg, "offset 2") != NULL);
    SF_CHECK(sf_tokenizer_prompt(t, "a", 1, 0, ids, mask, &n, NULL, &err) == SF_E_ARG);
    /* seq_len 1: only the eos survives; seq_len 3 keeps 2 pieces + eos */
    SF_CHECK_OK(sf_tokenizer_prompt(t, "a dog runs", 10, 1, ids, mask, &n, NULL, &err), &err);
    SF_CHECK(n == 1 && ids[0] == 1 && mask[0] == 1);
    SF_CHECK_OK(sf_tokenizer_prompt(t, "a dog runs", 10, 3, ids, mask, &n, NULL, &err), &err);
    SF_CHECK(n == 3 && ids[0] == 3 && ids[1] == 227 && ids[2] == 1);
    sf_tokenizer_destroy(&t);
}

static void test_normalize(void) {
    sf_tokenizer *t = golden_tok();
    if (!t) return;
    char *out = NULL;
    size_t n = 0;
    sf_err err = {{0}};
    /* full-width ＡＢ → AB (NFKC via the charsmap), spaces → ▁, dummy prefix, trailing removed */
    SF_CHECK_OK(sf_tokenizer_normalize(t, "\xEF\xBC\xA1\xEF\xBC\xA2  x ", 10, &out, &n, &err), &err);
    SF_CHECK(out && strcmp(out, "\xE2\x96\x81" "AB" "\xE2\x96\x81" "x") == 0);
    free(out);
    /* decomposed e + U+0300 composes to è */
    SF_CHECK_OK(sf_tokenizer_normalize(t, "e\xCC\x80", 3, &out, &n, &err), &err);
    SF_CHECK(out && strcmp(out, "\xE2\x96\x81\xC3\xA8") == 0);
    free(out);
    SF_CHECK_OK(sf_tokenizer_normalize(t, "", 0, &out, &n, &err), &err);
    SF_CHECK(out && n == 0);
    free(out);
    sf_tokenizer_destroy(&t);
}

static const sf_test tests[] = {
    {"golden_prompts", test_golden_prompts}, {"html_unescape", test_html_unescape}, {"clean", test_clean},
    {"bad_input", test_bad_input},           {"normalize", test_normalize}, {"ftfy", test_ftfy},
    {"ftfy_mojibake", test_ftfy_mojibake},   {"ftfy_fixture", test_ftfy_fixture},
};
SF_TEST_MAIN(tests)
