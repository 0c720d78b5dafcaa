/* fuzz_spiece.c — libFuzzer target for common/spiece.c and the tokenizer built on it:
 * parse arbitrary bytes as a ModelProto; when that succeeds, build the tokenizer (charsmap
 * validation, vocabulary hash) and tokenize a few fixed strings through the hostile charsmap
 * and pieces. `make fuzz` builds it; seeds in tests/fuzz/seeds/fuzz_spiece/. */
#include "spiece.h"
#include "stages/encode/tokenizer.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sf_spiece_model *m = NULL;
    sf_err err;
    if (sf_spiece_parse(data, size, &m, &err) != SF_OK) return 0;
    sf_tokenizer *t = NULL;
    if (sf_tokenizer_new(&m, &t, &err) != SF_OK) return 0;
    static const char *const texts[] = {"A  red fox &amp; \xEF\xBC\xA1 caf\xC3\xA9", "", "   ", "\xE2\x85\xAB x"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int64_t ids[16], mask[16];
        size_t n = 0;
        (void)sf_tokenizer_prompt(t, texts[i], strlen(texts[i]), 16, ids, mask, &n, NULL, &err);
    }
    sf_tokenizer_destroy(&t);
    return 0;
}
