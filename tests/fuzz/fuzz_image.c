/* fuzz_image.c — libFuzzer target for stages/decode/image.c: arbitrary bytes read as a PNG or JPEG
 * (libpng, libjpeg; sides capped at 512 so that a tiny file declaring a huge image costs little);
 * when that succeeds, the image is resized (down on one axis, up on the other: both passes; and
 * through a fractional box) and turned into pixels. `make fuzz` builds it; seeds in
 * tests/fuzz/seeds/fuzz_image/. */
#include "stages/decode/image.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sf_image im = {0}, out = {0};
    sf_err err;
    if (sf_image_load_mem(data, size, "fuzz", 512, &im, &err) != SF_OK) return 0;
    int64_t W = im.w > 3 ? im.w / 3 : 2 * im.w + 1, H = im.h > 3 ? 2 * im.h + 1 : 3;
    if (sf_image_resize_bilinear(&im, W, H, &out, &err) == SF_OK) {
        float *px = malloc(sizeof(float) * 3 * (size_t)W * (size_t)H);
        if (px) sf_image_to_pixels(&out, px);
        free(px);
        sf_image_free(&out);
    }
    float box[4] = {0.25f, 0.5f, (float)im.w - 0.25f, (float)im.h};
    if (sf_image_resize_bilinear_box(&im, 5, 4, box, &out, &err) == SF_OK) sf_image_free(&out);
    sf_image_free(&im);
    return 0;
}
