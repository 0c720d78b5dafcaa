/* fuzz_hftok.c — libFuzzer target for stages/encode/hftok.c, the tokenizer.json reader: arbitrary
 * bytes as a tokenizer.json (through sf_tokenizer_parse, as sf-encode and sf-taps load one); when it
 * loads, tokenize texts that reach every stage of its pipeline (added tokens with spaces around them,
 * a grapheme cluster, a width the charsmap folds, an unknown character, a run of spaces) and the
 * reference call at two lengths. `make fuzz` builds it; seeds in tests/fuzz/seeds/fuzz_hftok/ (a
 * tokenizer.json of a 36-piece model with a 5-rule charsmap in umT5's form, and a variant with NFKC,
 * Strip, Prepend, a String Replace, prepend_scheme first and byte fallback). */
#include "stages/encode/tokenizer.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sf_tokenizer *t = NULL;
    sf_err err;
    if (sf_tokenizer_parse((const char *)data, size, &t, &err) != SF_OK) return 0;
    static const char *const texts[] = {
        "red fox </s> <extra_id_0>x hello <extra_id_2>  ", "", " ", "\xEF\xBC\xA1 e\xCC\x81\xCC\x81 \xEF\xAC\x81x",
        "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 \xE4\xBD\xA0\xE5\xA5\xBD<pad>", "a   b\xE2\x96\x81\xE2\x96\x81",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (sf_tokenizer_encode(t, texts[i], strlen(texts[i]), &ids, &n, &err) == SF_OK)
            for (size_t k = 0; k < n; k++) (void)sf_tokenizer_piece(t, ids[k]);
        free(ids);
        int64_t pid[24], mask[24];
        (void)sf_tokenizer_prompt(t, texts[i], strlen(texts[i]), 24, pid, mask, &n, NULL, &err);
        (void)sf_tokenizer_prompt(t, texts[i], strlen(texts[i]), 2, pid, mask, &n, NULL, &err);
    }
    sf_tokenizer_destroy(&t);
    return 0;
}
