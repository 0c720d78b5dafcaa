/* fuzz_yaml.c — libFuzzer target for the YAML config reader (common/config.c): parse
 * arbitrary bytes, merge the tree over itself, read the inference keys and dump it.
 * `make fuzz` builds it; seeds in tests/fuzz/seeds/fuzz_yaml/. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    sf_err err;
    sf_yaml *a = NULL, *b = NULL;
    if (sf_yaml_parse(copy, size, "fuzz.yaml", &a, &err) == SF_OK &&
        sf_yaml_parse(copy, size, "fuzz.yaml", &b, &err) == SF_OK) {
        sf_yaml_merge(a, b);
        b = NULL;
        sf_run_config rc;
        (void)sf_run_config_from_yaml(a, &rc, &err);
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull) {
            sf_yaml_dump(a, devnull);
            fclose(devnull);
        }
    }
    sf_yaml_free(a);
    sf_yaml_free(b);
    free(copy);
    return 0;
}
