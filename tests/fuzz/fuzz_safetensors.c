/* fuzz_safetensors.c — libFuzzer target for common/safetensors.c: parse arbitrary bytes as a
 * safetensors file (mapped in memory, no file) and touch the first and last element of every
 * tensor it accepts, so an offset that escapes the buffer shows up under ASan.
 * `make fuzz` builds it; seeds in tests/fuzz/seeds/fuzz_safetensors/. */
#include "tfile.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1); /* exact-size heap copy: ASan sees overreads */
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    sf_tfile *tf = sf_tfile_new_empty("fuzz.safetensors");
    sf_err err;
    if (tf) {
        tf->map.data = copy;
        tf->map.len = size;
        if (sf_safetensors_read(tf, &err) == SF_OK) {
            volatile double sink = 0;
            for (size_t i = 0; i < tf->n; i++) {
                const sf_tensor *t = &tf->entries[i].t;
                int64_t n = sf_tensor_numel(t);
                if (n > 0) sink += sf_tensor_get(t, 0) + sf_tensor_get(t, n - 1);
                (void)sf_tfile_get(tf, tf->entries[i].name);
            }
            (void)sink;
        }
        tf->map.data = NULL;
        tf->map.len = 0;
        sf_tfile_destroy(&tf);
    }
    free(copy);
    return 0;
}
