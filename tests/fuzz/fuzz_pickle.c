/* fuzz_pickle.c — libFuzzer target for common/pickle.c: run the whitelisted pickle machine on
 * arbitrary bytes with a resolver that hands out one 4 KiB storage, flatten the result and
 * touch the first and last element of every tensor (views must stay inside their storage).
 * `make fuzz` builds it; seeds in tests/fuzz/seeds/fuzz_pickle/ (data.pkl of torch files). */
#include "pickle.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct store {
    uint8_t *buf;
    size_t len;
} store;

static const void *resolve(void *ctx, const char *key, sf_dtype dtype, int64_t numel, sf_err *err) {
    store *s = ctx;
    (void)key;
    if (numel < 0 || (uint64_t)numel > s->len / sf_dtype_size(dtype)) {
        sf_fail(err, SF_E_FORMAT, "storage too large");
        return NULL;
    }
    return s->buf;
}

static sf_status touch(void *ctx, const char *name, const sf_tensor *t, sf_err *err) {
    (void)ctx;
    (void)name;
    (void)err;
    int64_t n = sf_tensor_numel(t);
    volatile double sink = 0;
    if (n > 0) sink += sf_tensor_get(t, 0) + sf_tensor_get(t, n - 1);
    (void)sink;
    return SF_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1), *buf = malloc(4096);
    store s = {buf, 4096};
    sf_err err;
    sf_py *root = NULL;
    if (copy && buf) {
        if (size) memcpy(copy, data, size);
        memset(buf, 0x3c, 4096);
        if (sf_pickle_load(copy, size, resolve, &s, &root, &err) == SF_OK) (void)sf_py_flatten(root, touch, NULL, &err);
        sf_py_free(root);
    }
    free(copy);
    free(buf);
    return 0;
}
