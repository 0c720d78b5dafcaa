/* test_tokenizer.c — stages/encode/tokenizer.c against tests/golden/expect/tokens.json (all
 * 28 prompts: cleaned text, ids, mask, byte-exact), Python html.unescape cases, whitespace
 * rules, and bad input (invalid UTF-8, NUL bytes). */
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
    int n = cJSON_GetArraySize(prompts), checked = 0;
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
        SF_CHECK_MSG(strcmp(clean, want_clean) == 0, "prompt %d (%s) cleaned '%s' want '%s'", i, tag, clean,
                     want_clean);
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
    check_clean("\xE3\x80\x80x\xE2\x80\xA8y\xC2\x85", "x y");          /* U+3000, U+2028, U+0085 */
    check_clean("\x1c a\x1c b \x1f", "a\x1c b");                       /* str.strip vs \s */
    check_clean("x\xE2\x80\x8By", "x\xE2\x80\x8By");                   /* ZWSP is not whitespace */
    check_clean("&nbsp;x&amp;nbsp;", "x");
    check_clean("\xE2\x80\x9Cquoted\xE2\x80\x9D it\xE2\x80\x99s", "\"quoted\" it's"); /* ftfy uncurl */
    check_clean("", "");
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
    {"bad_input", test_bad_input},           {"normalize", test_normalize},
};
SF_TEST_MAIN(tests)
