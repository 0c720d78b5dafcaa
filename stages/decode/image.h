/* image.h — the input image of image-to-video, read and resized exactly as the reference's i2v
 * transform does: PIL 9.x Image.open(p).convert('RGB'), torchvision transforms.Resize((H, W)) on a
 * PIL image (= Image.resize((W, H), Image.BILINEAR), PIL's antialiased fixed-point resampler),
 * ToTensor() and Normalize([0.5], [0.5]).
 *
 * Decoding: libpng (PNG) and libjpeg(-turbo) with its defaults (JDCT_ISLOW, fancy upsampling), what
 * PIL uses; the conversion to RGB follows PIL's modes (see image.c). Programs that use this link
 * -ljpeg (Makefile IMAGE_LIBS). Tested bit for bit by tests/unit/test_image.c against
 * tests/golden/expect/image.safetensors (made by tests/heldout/make_image_golden.py with PIL), and
 * fuzzed by tests/fuzz/fuzz_image.c. */
#ifndef SF_IMAGE_H
#define SF_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest width or height read or produced, and the most pixels read (PIL's Image.open refuses
 * more: DecompressionBombError over 2·MAX_IMAGE_PIXELS); bigger declared sizes are refused before
 * allocating. */
#define SF_IMAGE_MAX_SIDE 16384
#define SF_IMAGE_MAX_PIXELS 178956970LL

typedef struct sf_image {
    int64_t w, h;
    uint8_t *rgb; /* rgb: (h, w, 3) RGB8, row-major, interleaved; owned (sf_image_free) */
} sf_image;

/* Read a PNG or JPEG (chosen by the file's magic bytes, not its name) as PIL's
 * Image.open(p).convert('RGB') gives it: palette, grey (1-16 bit), grey+alpha, RGB, RGBA (alpha
 * dropped, as PIL's convert does), 16-bit PNG (as PIL reads it: the high byte of colour samples,
 * 16-bit grey clipped to 255), grey / YCbCr / CMYK JPEG. Anything else, or a damaged or truncated
 * file: a one-line error naming the file (SF_E_FORMAT, SF_E_UNSUPPORTED, SF_E_IO), nothing
 * leaked, *out left empty. Sides over SF_IMAGE_MAX_SIDE or more than SF_IMAGE_MAX_PIXELS pixels are
 * refused before allocating. Caller frees
 * *out with sf_image_free. */
sf_status sf_image_load(const char *path, sf_image *out, sf_err *err);
/* The same on n bytes in memory; name is used in messages; sides over max_side (≤ SF_IMAGE_MAX_SIDE)
 * are refused (SF_E_UNSUPPORTED). */
sf_status sf_image_load_mem(const uint8_t *data, size_t n, const char *name, int64_t max_side, sf_image *out,
                            sf_err *err);

/* PIL's Image.resize((W, H), Image.BILINEAR) on an RGB image, bit-exact; *out (H, W, 3) is new
 * (caller frees). W, H in [1, SF_IMAGE_MAX_SIDE], else SF_E_ARG. */
sf_status sf_image_resize_bilinear(const sf_image *in, int64_t W, int64_t H, sf_image *out, sf_err *err);
/* The same with PIL's box argument (x0, y0, x1, y1): the source region, float coordinates, as
 * Image.resize((W, H), Image.BILINEAR, box). sf_image_resize_bilinear is box (0, 0, w, h). */
sf_status sf_image_resize_bilinear_box(const sf_image *in, int64_t W, int64_t H, const float box[4], sf_image *out,
                                       sf_err *err);

/* ToTensor + Normalize([0.5], [0.5]): chw (3, h, w) f32 = (u8 / 255 - 0.5) / 0.5, exactly
 * torchvision's float32 arithmetic. chw is the caller's, 3·h·w floats. */
void sf_image_to_pixels(const sf_image *im, float *chw);

/* Frees im->rgb and empties *im (safe on an empty image). */
void sf_image_free(sf_image *im);

#ifdef __cplusplus
}
#endif

#endif
