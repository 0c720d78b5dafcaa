/* fuzz_config_json.c — libFuzzer target for config.json → sf_dit_config (common/config.c).
 * `make fuzz` builds it; seeds in tests/fuzz/seeds/fuzz_config_json/. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    sf_dit_config c;
    sf_err err;
    if (sf_dit_config_parse(copy, size, "fuzz.json", &c, &err) == SF_OK) {
        /* an accepted config must be self-consistent */
        if (c.dim % c.num_heads != 0 || c.num_layers < 1) abort();
    }
    free(copy);
    return 0;
}
