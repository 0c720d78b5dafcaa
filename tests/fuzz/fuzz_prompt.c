/* fuzz_prompt.c — libFuzzer target for the prompt path every user's text takes, also text typed into
 * sf-view's page (stages/encode/clean.c, tokenizer.c, html_entities.c): cleaning (ftfy's fixes, HTML
 * unescaping twice, whitespace), SentencePiece normalisation through the real umT5 charsmap and the
 * Viterbi encoding, with the golden spiece.model (tests/golden, the umT5 one's layout and charsmap);
 * then the same text through the fast tokenizer's pipeline (stages/encode/hftok.c: added tokens, the
 * charsmap per grapheme cluster, Metaspace, the f64 lattice) with that model's tokenizer.json
 * (tests/unit/fixtures/umt5_tiny_tokenizer.json.gz: 300 added <extra_id_N>).
 * Beyond not crashing, leaking or reading out of bounds it checks the contract: a rejection is
 * SF_E_FORMAT or SF_E_ARG; cleaned text is valid UTF-8 without NUL, leading, trailing or doubled
 * spaces; every id is a piece of the model; the mask is ones then zeros; eos ends the real tokens.
 * Seeds in tests/fuzz/seeds/fuzz_prompt/. Run: make fuzz. */
#include "stages/encode/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEQ 48

static const sf_tokenizer *tokenizer(void) {
    static sf_tokenizer *t;
    if (!t) {
        sf_err err;
        const char *path = getenv("SF_FUZZ_SPIECE");
        if (!path) path = SF_DATADIR "/tests/golden/model/google/umt5-xxl/spiece.model";
        if (sf_tokenizer_load(path, &t, &err)) {
            fprintf(stderr, "fuzz_prompt: %s (set SF_FUZZ_SPIECE)\n", err.msg);
            abort();
        }
    }
    return t;
}

/* the golden model's tokenizer.json (gzip'd fixture; SF_FUZZ_TOKJSON overrides) */
static const sf_tokenizer *fast_tokenizer(void) {
    static sf_tokenizer *t;
    if (!t) {
        sf_err err;
        const char *path = getenv("SF_FUZZ_TOKJSON");
        if (!path) path = SF_DATADIR "/tests/unit/fixtures/umt5_tiny_tokenizer.json.gz";
        gzFile f = gzopen(path, "rb");
        size_t cap = 1 << 21, n = 0;
        char *d = f ? malloc(cap) : NULL;
        int r;
        while (d && n < cap && (r = gzread(f, d + n, (unsigned)(cap - n))) > 0) n += (size_t)r;
        if (f) gzclose(f);
        if (!d || n == cap || sf_tokenizer_parse(d, n, &t, &err)) {
            fprintf(stderr, "fuzz_prompt: cannot load %s (set SF_FUZZ_TOKJSON)\n", path);
            abort();
        }
        free(d);
    }
    return t;
}

static void check_clean(const char *c, size_t n) {
    sf_err err;
    if (strlen(c) != n || sf_utf8_check(c, n, "cleaned", &err)) abort();
    if (n && (c[0] == ' ' || c[n - 1] == ' ' || strstr(c, "  "))) abort();
}

/* One tokenizer on the text and its cleaned form c: ids inside its vocab, the whole call agreeing with its
 * parts, eos (spiece.model's, or tokenizer.json's template </s>) ending the real tokens. */
static void check_path(const sf_tokenizer *t, int64_t eos, const char *text, size_t size, const char *c, size_t cn) {
    const size_t nv = sf_tokenizer_model(t)->n_pieces;
    sf_err err;
    int32_t *pieces = NULL;
    size_t np = 0;
    sf_status st = sf_tokenizer_encode(t, c, cn, &pieces, &np, &err);
    if (st && st != SF_E_FORMAT && st != SF_E_ARG) abort();
    for (size_t i = 0; !st && i < np; i++)
        if (pieces[i] < 0 || (size_t)pieces[i] >= nv) abort();
    int64_t ids[SEQ], mask[SEQ];
    size_t n = 0;
    char *cleaned = NULL;
    sf_status st2 = sf_tokenizer_prompt(t, text, size, SEQ, ids, mask, &n, &cleaned, &err);
    if ((st2 != SF_OK) != (st != SF_OK)) abort(); /* the whole path agrees with its parts */
    if (!st2) {
        if (strcmp(cleaned, c) != 0 || n < 1 || n > SEQ) abort();
        size_t keep = np < SEQ - 1 ? np : SEQ - 1;
        if (n != keep + 1 || ids[n - 1] != eos) abort();
        for (size_t i = 0; i < SEQ; i++) {
            if (mask[i] != (i < n)) abort();
            if (i < keep && ids[i] != pieces[i]) abort();
            if (ids[i] < 0 || (size_t)ids[i] >= nv) abort();
        }
    }
    free(cleaned);
    free(pieces);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    sf_err err;
    char *c = NULL;
    size_t cn = 0;
    sf_status st = sf_text_clean(text, size, &c, &cn, &err);
    if (st) {
        if (st != SF_E_FORMAT && st != SF_E_ARG) abort();
        return 0;
    }
    check_clean(c, cn);
    check_path(tokenizer(), sf_tokenizer_model(tokenizer())->eos_id, text, size, c, cn);
    check_path(fast_tokenizer(), 1, text, size, c, cn); /* the template's </s> */
    free(c);
    return 0;
}
