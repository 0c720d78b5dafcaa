/* image.c — PNG / JPEG input images read and resized as the reference's i2v transform does (PIL 9.x
 * + torchvision); the contract is in image.h. Tested by tests/unit/test_image.c (bit for bit against
 * PIL's output in tests/golden/expect/image.safetensors) and tests/fuzz/fuzz_image.c.
 *
 * PIL's conversions reproduced here (PngImagePlugin's _MODES, JpegImagePlugin, Convert.c):
 *   PNG grey 1/2/4/8 bit  mode 1 / L: samples scaled to 8 bits (×255, ×85, ×17), replicated
 *   PNG grey 16 bit       mode I: the 16-bit value clipped to [0, 255] (not scaled), replicated
 *   PNG RGB / RGBA / LA   8 bit as is, 16 bit the high byte; alpha dropped
 *   PNG palette           PLTE entries; an index past them is the grey (i, i, i) of PIL's default palette
 *   tRNS, gAMA, iCCP ...  ignored (convert('RGB') keeps the colour samples)
 *   JPEG 1/3/4 components libjpeg's conversion to grey / RGB / CMYK; CMYK is taken as Adobe-inverted
 *                         ("CMYK;I", always) and cmyk2rgb: nk = 255 - k, c' = nk - c·nk/255 (rounded)
 *   JPEG warnings         ignored (PIL's decoder ignores them), except running out of data before the
 *                         EOI marker: PIL's "image file is truncated"
 *   damaged PNG           libpng's rules, which differ from PIL's only on damaged files, never in the pixels
 *                         of a file both read: refused when anything up to the last IDAT's CRC is missing
 *                         (PIL also reads a file cut within the zlib stream's last bytes, its Adler-32, once
 *                         it has every row) or an IDAT's CRC is wrong (PIL does not check it); read when an
 *                         ancillary chunk's CRC is wrong (libpng drops the chunk; PIL refuses the file) */
#include "image.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* A file larger than this is no input image (a 16384² RGBA16 PNG stored uncompressed is ~2 GiB). */
#define IMAGE_MAX_FILE ((size_t)1 << 31)

void sf_image_free(sf_image *im) {
    if (!im) return;
    free(im->rgb);
    memset(im, 0, sizeof *im);
}

static sf_status image_alloc(sf_image *im, int64_t w, int64_t h, const char *name, sf_err *err) {
    im->rgb = malloc((size_t)w * (size_t)h * 3); /* sides ≤ SF_IMAGE_MAX_SIDE: no overflow */
    if (!im->rgb) return sf_fail(err, SF_E_NOMEM, "%s: out of memory for a %lldx%lld image", name, (long long)w, (long long)h);
    im->w = w;
    im->h = h;
    return SF_OK;
}

static sf_status check_sides(int64_t w, int64_t h, int64_t max_side, const char *name, sf_err *err) {
    if (w < 1 || h < 1) return sf_fail(err, SF_E_FORMAT, "%s: image declares an empty size %lldx%lld", name, (long long)w, (long long)h);
    if (w > max_side || h > max_side)
        return sf_fail(err, SF_E_UNSUPPORTED, "%s: image size %lldx%lld is larger than %lld per side", name, (long long)w,
                       (long long)h, (long long)max_side);
    if (w * h > SF_IMAGE_MAX_PIXELS) /* PIL's Image.open raises DecompressionBombError */
        return sf_fail(err, SF_E_UNSUPPORTED, "%s: image size %lldx%lld is over %lld pixels (PIL refuses it too)", name,
                       (long long)w, (long long)h, (long long)SF_IMAGE_MAX_PIXELS);
    return SF_OK;
}

/* ------------------------------------------------------------------------------------------------ */
/* PNG (libpng): samples as stored (png_set_packing for depths < 8, 16-bit big-endian), converted   */
/* to RGB8 row by row as PIL's unpackers + convert('RGB') do.                                         */
/* ------------------------------------------------------------------------------------------------ */

typedef struct png_dec {
    const uint8_t *buf;
    size_t n, off;
    png_structp png;
    png_infop info;
    int64_t max_side;
    const char *name;
    sf_status status; /* what a png_error means: SF_E_FORMAT unless set before it */
    char msg[sizeof(sf_err){{0}}.msg];
    uint8_t pal[256 * 3];
    uint8_t *raw; /* one row, or the whole image when interlaced */
    sf_image im;
} png_dec;

static void png_mem_read(png_structp png, png_bytep out, size_t len) {
    png_dec *d = png_get_io_ptr(png);
    if (len > d->n - d->off) png_error(png, "truncated file (unexpected end of data)");
    memcpy(out, d->buf + d->off, len);
    d->off += len;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_dec *d = png_get_error_ptr(png);
    if (!d->msg[0]) snprintf(d->msg, sizeof d->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* libpng's warnings (a bad ancillary chunk, ...) are dropped: PIL reads past them too. */
static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_row_to_rgb(const png_dec *d, int ct, int bd, const uint8_t *s, uint8_t *o, int64_t w) {
    static const uint8_t scale[17] = {0, 255, 85, 0, 17, 0, 0, 0, 1}; /* 1, 2, 4, 8 bit grey → 8 bit */
    int wide = bd == 16;
    for (int64_t x = 0; x < w; x++, o += 3) {
        switch (ct) {
        case PNG_COLOR_TYPE_GRAY:
            if (wide) {
                unsigned v = (unsigned)s[2 * x] << 8 | s[2 * x + 1]; /* PIL mode I, i2rgb: clipped */
                o[0] = o[1] = o[2] = (uint8_t)(v > 255 ? 255 : v);
            } else {
                o[0] = o[1] = o[2] = (uint8_t)(s[x] * scale[bd]);
            }
            break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:
            o[0] = o[1] = o[2] = s[x * (wide ? 4 : 2)];
            break;
        case PNG_COLOR_TYPE_PALETTE:
            memcpy(o, d->pal + 3 * s[x], 3);
            break;
        case PNG_COLOR_TYPE_RGB:
            for (int c = 0; c < 3; c++) o[c] = s[x * (wide ? 6 : 3) + c * (wide ? 2 : 1)];
            break;
        default: /* PNG_COLOR_TYPE_RGB_ALPHA */
            for (int c = 0; c < 3; c++) o[c] = s[x * (wide ? 8 : 4) + c * (wide ? 2 : 1)];
            break;
        }
    }
}

/* Everything that can png_error (longjmp back to png_decode). */
static void png_decode_body(png_dec *d) {
    png_set_user_limits(d->png, 0x7fffffff, 0x7fffffff); /* our own check below, with our status */
    png_set_read_fn(d->png, d, png_mem_read);
    png_read_info(d->png, d->info);
    png_uint_32 w, h;
    int bd, ct, il;
    png_get_IHDR(d->png, d->info, &w, &h, &bd, &ct, &il, NULL, NULL);
    sf_err e;
    d->status = check_sides(w, h, d->max_side, d->name, &e);
    if (d->status != SF_OK) {
        snprintf(d->msg, sizeof d->msg, "%s", e.msg);
        png_error(d->png, d->msg);
    }
    d->status = SF_E_FORMAT;
    for (int i = 0; i < 256; i++) d->pal[3 * i] = d->pal[3 * i + 1] = d->pal[3 * i + 2] = (uint8_t)i;
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        png_colorp plte = NULL;
        int np = 0;
        if (!png_get_PLTE(d->png, d->info, &plte, &np)) png_error(d->png, "palette image without a PLTE chunk");
        for (int i = 0; i < np && i < 256; i++) {
            d->pal[3 * i] = plte[i].red;
            d->pal[3 * i + 1] = plte[i].green;
            d->pal[3 * i + 2] = plte[i].blue;
        }
    }
    if (bd < 8) png_set_packing(d->png);
    int passes = png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->info);
    size_t rowbytes = png_get_rowbytes(d->png, d->info);
    size_t rows = passes > 1 ? h : 1;
    if (rowbytes == 0 || rowbytes > SIZE_MAX / rows || !(d->raw = malloc(rowbytes * rows))) {
        d->status = SF_E_NOMEM;
        png_error(d->png, "out of memory");
    }
    sf_err ae;
    if (image_alloc(&d->im, w, h, d->name, &ae) != SF_OK) {
        d->status = SF_E_NOMEM;
        png_error(d->png, "out of memory");
    }
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < h; y++) {
            uint8_t *r = d->raw + (passes > 1 ? y * rowbytes : 0);
            png_read_row(d->png, r, NULL);
            if (passes == 1) png_row_to_rgb(d, ct, bd, r, d->im.rgb + (size_t)y * w * 3, w);
        }
    if (passes > 1)
        for (png_uint_32 y = 0; y < h; y++)
            png_row_to_rgb(d, ct, bd, d->raw + y * rowbytes, d->im.rgb + (size_t)y * w * 3, w);
    /* No png_read_end: what follows the image data (text chunks, IEND) does not change the pixels,
     * and PIL too stops reading at a truncated tail. */
}

static sf_status png_decode(const uint8_t *buf, size_t n, const char *name, int64_t max_side, sf_image *out,
                            sf_err *err) {
    /* on the heap: what changes between setjmp and longjmp must not live in the function's locals */
    png_dec *d = calloc(1, sizeof *d);
    if (!d) return sf_fail(err, SF_E_NOMEM, "%s: out of memory starting the PNG decoder", name);
    d->buf = buf;
    d->n = n;
    d->name = name;
    d->max_side = max_side;
    d->status = SF_E_FORMAT;
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d, png_on_error, png_on_warning);
    if (d->png) d->info = png_create_info_struct(d->png);
    sf_status st = SF_OK;
    if (!d->png || !d->info) {
        st = sf_fail(err, SF_E_NOMEM, "%s: out of memory starting the PNG decoder", name);
    } else if (setjmp(png_jmpbuf(d->png))) {
        if (d->status == SF_E_UNSUPPORTED) st = sf_fail(err, d->status, "%s", d->msg);
        else if (d->status == SF_E_NOMEM) st = sf_fail(err, d->status, "%s: out of memory decoding the PNG", name);
        else st = sf_fail(err, SF_E_FORMAT, "%s: damaged or truncated PNG: %s", name, d->msg);
    } else {
        png_decode_body(d);
        *out = d->im;
        d->im.rgb = NULL;
    }
    png_destroy_read_struct(&d->png, &d->info, NULL);
    free(d->raw);
    sf_image_free(&d->im);
    free(d);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* JPEG (libjpeg API, libjpeg-turbo): its defaults, as PIL's JpegDecode.c leaves them               */
/* ------------------------------------------------------------------------------------------------ */

typedef struct jpg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int truncated; /* the source ran dry (JWRN_JPEG_EOF): libjpeg pads with grey, PIL refuses */
} jpg_err;

static void jpg_error_exit(j_common_ptr c) {
    longjmp(((jpg_err *)c->err)->jb, 1);
}

static void jpg_emit_message(j_common_ptr c, int level) {
    if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) ((jpg_err *)c->err)->truncated = 1;
}

typedef struct jpg_dec {
    struct jpeg_decompress_struct c;
    jpg_err e;
    uint8_t *row; /* one decoded row for grey and CMYK */
    sf_image im;
    sf_status status;
    int own; /* msg is a whole message of ours (status set), not libjpeg's */
    char msg[sizeof(sf_err){{0}}.msg];
} jpg_dec;

static void jpg_row_to_rgb(const uint8_t *s, int comps, uint8_t *o, JDIMENSION w) {
    for (JDIMENSION x = 0; x < w; x++, o += 3) {
        if (comps == 1) {
            o[0] = o[1] = o[2] = s[x];
        } else { /* CMYK;I then cmyk2rgb (Convert.c): MULDIV255 rounds a·b/255 */
            int nk = s[4 * x + 3];  /* 255 - (255 - k): the inverted sample */
            for (int ch = 0; ch < 3; ch++) {
                int cv = 255 - s[4 * x + ch], t = cv * nk + 128;
                int v = nk - (((t >> 8) + t) >> 8);
                o[ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}

/* Everything that can longjmp back to jpg_decode. */
static void jpg_decode_body(jpg_dec *d, const uint8_t *buf, size_t n, const char *name, int64_t max_side) {
    struct jpeg_decompress_struct *c = &d->c;
    jpeg_mem_src(c, buf, (unsigned long)n);
    if (jpeg_read_header(c, TRUE) != JPEG_HEADER_OK || d->e.truncated) {
        snprintf(d->msg, sizeof d->msg, "no image in the data (truncated header)");
        longjmp(d->e.jb, 1);
    }
    sf_err e;
    sf_status st = check_sides(c->image_width, c->image_height, max_side, name, &e);
    int comps = c->num_components;
    if (st == SF_OK && comps != 1 && comps != 3 && comps != 4)
        st = sf_fail(&e, SF_E_UNSUPPORTED, "%s: a JPEG of %d components (PIL reads 1, 3 or 4)", name, comps);
    if (st != SF_OK) {
        d->status = st;
        d->own = 1;
        snprintf(d->msg, sizeof d->msg, "%s", e.msg);
        longjmp(d->e.jb, 1);
    }
    c->out_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
    c->dct_method = JDCT_ISLOW; /* libjpeg's defaults, as PIL decodes (no draft mode) */
    c->do_fancy_upsampling = TRUE;
    jpeg_start_decompress(c);
    if (c->output_components != (comps == 1 ? 1 : comps == 3 ? 3 : 4)) {
        snprintf(d->msg, sizeof d->msg, "unexpected decoder output (%d components)", c->output_components);
        longjmp(d->e.jb, 1);
    }
    if (image_alloc(&d->im, c->output_width, c->output_height, name, &e) != SF_OK ||
        (comps != 3 && !(d->row = malloc((size_t)c->output_width * (size_t)comps)))) {
        d->status = SF_E_NOMEM;
        longjmp(d->e.jb, 1);
    }
    while (c->output_scanline < c->output_height) {
        uint8_t *o = d->im.rgb + (size_t)c->output_scanline * (size_t)c->output_width * 3;
        JSAMPROW r = comps == 3 ? o : d->row;
        if (jpeg_read_scanlines(c, &r, 1) != 1) break;
        if (comps != 3) jpg_row_to_rgb(d->row, comps, o, c->output_width);
        if (d->e.truncated) break; /* the rest would be libjpeg's grey padding */
    }
    if (d->e.truncated || c->output_scanline < c->output_height) {
        snprintf(d->msg, sizeof d->msg, "truncated file (the data ends at row %u of %u)", c->output_scanline,
                 c->output_height);
        longjmp(d->e.jb, 1);
    }
    /* up to the EOI marker: PIL refuses a file that ends before it ("image file is truncated") */
    jpeg_finish_decompress(c);
    if (d->e.truncated) {
        snprintf(d->msg, sizeof d->msg, "truncated file (the data ends before the EOI marker)");
        longjmp(d->e.jb, 1);
    }
}

static sf_status jpg_decode(const uint8_t *buf, size_t n, const char *name, int64_t max_side, sf_image *out,
                            sf_err *err) {
    jpg_dec *d = calloc(1, sizeof *d);
    if (!d) return sf_fail(err, SF_E_NOMEM, "%s: out of memory starting the JPEG decoder", name);
    d->status = SF_E_FORMAT;
    d->c.err = jpeg_std_error(&d->e.pub);
    d->e.pub.error_exit = jpg_error_exit;
    d->e.pub.emit_message = jpg_emit_message;
    sf_status st = SF_OK;
    if (setjmp(d->e.jb)) {
        if (d->own) { /* our own check, its message complete */
            st = sf_fail(err, d->status, "%s", d->msg);
        } else if (d->status == SF_E_NOMEM) {
            st = sf_fail(err, SF_E_NOMEM, "%s: out of memory decoding the JPEG", name);
        } else {
            if (!d->msg[0]) { /* libjpeg's error_exit */
                char m[JMSG_LENGTH_MAX];
                d->e.pub.format_message((j_common_ptr)&d->c, m);
                snprintf(d->msg, sizeof d->msg, "%s", m);
                if (d->e.pub.msg_code == JERR_BAD_PRECISION || d->e.pub.msg_code == JERR_IMAGE_TOO_BIG)
                    d->status = SF_E_UNSUPPORTED; /* 12-bit (PIL neither), over 65500 pixels a side */
            }
            st = sf_fail(err, d->status, "%s: %s JPEG: %s", name,
                         d->status == SF_E_UNSUPPORTED ? "unsupported" : "damaged or truncated", d->msg);
        }
        goto done;
    }
    jpeg_create_decompress(&d->c);
    jpg_decode_body(d, buf, n, name, max_side);
    *out = d->im;
    d->im.rgb = NULL;
done:
    jpeg_destroy_decompress(&d->c);
    free(d->row);
    sf_image_free(&d->im);
    free(d);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */

sf_status sf_image_load_mem(const uint8_t *data, size_t n, const char *name, int64_t max_side, sf_image *out,
                            sf_err *err) {
    memset(out, 0, sizeof *out);
    if (max_side > SF_IMAGE_MAX_SIDE || max_side < 1) max_side = SF_IMAGE_MAX_SIDE;
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(data, png_magic, 8) == 0) return png_decode(data, n, name, max_side, out, err);
    if (n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) /* PIL's JPEG _accept */
        return jpg_decode(data, n, name, max_side, out, err);
    static const struct {
        size_t n;
        const char *magic, *what;
    } other[] = {
        {6, "GIF87a", "GIF"}, {6, "GIF89a", "GIF"}, {2, "BM", "BMP"}, {4, "II*\0", "TIFF"}, {4, "MM\0*", "TIFF"},
        {8, "\0\0\0\x0cjP  ", "JPEG 2000"}, {4, "\xff\x4f\xff\x51", "JPEG 2000"}, {4, "qoif", "QOI"},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (n >= other[i].n && memcmp(data, other[i].magic, other[i].n) == 0)
            return sf_fail(err, SF_E_UNSUPPORTED, "%s: a %s image; only PNG and JPEG are read", name, other[i].what);
    if (n >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0)
        return sf_fail(err, SF_E_UNSUPPORTED, "%s: a WebP image; only PNG and JPEG are read", name);
    if (n == 0) return sf_fail(err, SF_E_FORMAT, "%s: empty file, not a PNG or JPEG image", name);
    return sf_fail(err, SF_E_FORMAT, "%s: not a PNG or JPEG image (unknown magic bytes)", name);
}

sf_status sf_image_load(const char *path, sf_image *out, sf_err *err) {
    char *data = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    sf_status st = sf_read_file(path, &data, &n, IMAGE_MAX_FILE, err);
    if (st != SF_OK) return st;
    st = sf_image_load_mem((const uint8_t *)data, n, path, SF_IMAGE_MAX_SIDE, out, err);
    free(data);
    return st;
}

/* ------------------------------------------------------------------------------------------------ */
/* The resampler: Pillow's src/libImaging/Resample.c (Alex Clark & contributors, after Fredrik      */
/* Lundh's PIL), its 8-bit path with the bilinear (triangle) filter, reproduced for bit-exact        */
/* output: coefficients in double (center, support, rounding of the window as Pillow computes them), */
/* normalised to sum 1, converted to fixed point with PRECISION_BITS = 32 - 8 - 2 (rounded half away */
/* from zero), a horizontal pass over only the source rows the vertical pass uses, then the vertical */
/* pass; each output = clip8((1 << (PRECISION_BITS - 1) + Σ pixel·k) >> PRECISION_BITS). A pass is   */
/* skipped as in ImagingResampleInner, and _imaging.c's crop shortcut (an integer box of the output's */
/* size) applies first. -ffp-contract=off (Makefile) keeps the double arithmetic Pillow's.           */
/* ------------------------------------------------------------------------------------------------ */

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc: per output index xx the first source index
 * bounds[2xx], the count bounds[2xx+1], and ksize fixed-point weights at kk[xx·ksize]. Returns ksize,
 * 0 when out of memory. The float arguments are Pillow's (box coordinates are C floats there). */
static int resample_coeffs(int in_size, float in0, float in1, int out_size, int **bounds_out, int32_t **kk_out) {
    double support, scale, filterscale;
    double center, ww, ss;
    int xx, x, ksize, xmin, xmax;
    filterscale = scale = (double)(in1 - in0) / out_size;
    if (filterscale < 1.0) filterscale = 1.0;
    support = 1.0 * filterscale; /* the bilinear filter's support is 1 */
    ksize = (int)ceil(support) * 2 + 1;
    double *k = malloc((size_t)ksize * sizeof *k);
    int32_t *kk = malloc((size_t)out_size * (size_t)ksize * sizeof *kk);
    int *bounds = malloc((size_t)out_size * 2 * sizeof *bounds);
    if (!k || !kk || !bounds) {
        free(k);
        free(kk);
        free(bounds);
        return 0;
    }
    for (xx = 0; xx < out_size; xx++) {
        center = in0 + (xx + 0.5) * scale;
        ww = 0.0;
        ss = 1.0 / filterscale;
        xmin = (int)(center - support + 0.5); /* Pillow's "round": truncation after + 0.5 */
        if (xmin < 0) xmin = 0;
        xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (x = 0; x < xmax; x++) {
            double w = bilinear_filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        for (x = 0; x < ksize; x++)
            kk[xx * ksize + x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << PRECISION_BITS))
                                          : (int32_t)(0.5 + k[x] * (1 << PRECISION_BITS));
        bounds[xx * 2 + 0] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    free(k);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

/* Pillow's clip8: (the accumulator >> PRECISION_BITS) clamped to [0, 255] (its lookup table). */
static inline uint8_t clip8(int32_t in) {
    if (in < 0) return 0;
    in >>= PRECISION_BITS;
    return (uint8_t)(in > 255 ? 255 : in);
}

/* One output pixel: the n samples p, p + step, … (RGB each) weighted by k, Pillow's fixed-point sum
 * (rounding half added up front) clipped into dst[0..2]. */
static inline void weigh3(uint8_t *dst, const uint8_t *p, size_t step, const int32_t *k, int n) {
    int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
    for (int i = 0; i < n; i++, p += step) {
        s0 += p[0] * k[i];
        s1 += p[1] * k[i];
        s2 += p[2] * k[i];
    }
    dst[0] = clip8(s0);
    dst[1] = clip8(s1);
    dst[2] = clip8(s2);
}

/* out (oh, ow, 3) from rows [off, off + oh) of in (·, iw, 3), along x. */
static void resample_horizontal(uint8_t *out, int64_t ow, int64_t oh, const uint8_t *in, int64_t iw, int off,
                                int ksize, const int *bounds, const int32_t *kk) {
    for (int64_t yy = 0; yy < oh; yy++) {
        const uint8_t *src = in + (size_t)(yy + off) * (size_t)iw * 3;
        uint8_t *dst = out + (size_t)yy * (size_t)ow * 3;
        for (int64_t xx = 0; xx < ow; xx++)
            weigh3(dst + xx * 3, src + (size_t)bounds[xx * 2] * 3, 3, kk + xx * ksize, bounds[xx * 2 + 1]);
    }
}

/* out (oh, w, 3) from in (·, w, 3), along y; bounds index in's rows. */
static void resample_vertical(uint8_t *out, int64_t w, int64_t oh, const uint8_t *in, int ksize, const int *bounds,
                              const int32_t *kk) {
    for (int64_t yy = 0; yy < oh; yy++) {
        const uint8_t *src = in + (size_t)bounds[yy * 2] * (size_t)w * 3;
        uint8_t *dst = out + (size_t)yy * (size_t)w * 3;
        for (int64_t xx = 0; xx < w; xx++)
            weigh3(dst + xx * 3, src + (size_t)xx * 3, (size_t)w * 3, kk + yy * ksize, bounds[yy * 2 + 1]);
    }
}

sf_status sf_image_resize_bilinear_box(const sf_image *in, int64_t W, int64_t H, const float box[4], sf_image *out,
                                       sf_err *err) {
    memset(out, 0, sizeof *out);
    if (!in || !in->rgb || in->w < 1 || in->h < 1 || in->w > SF_IMAGE_MAX_SIDE || in->h > SF_IMAGE_MAX_SIDE)
        return sf_fail(err, SF_E_ARG, "resize: no source image (or one over %d per side)", SF_IMAGE_MAX_SIDE);
    if (W < 1 || H < 1 || W > SF_IMAGE_MAX_SIDE || H > SF_IMAGE_MAX_SIDE)
        return sf_fail(err, SF_E_ARG, "resize: target size %lldx%lld is not in 1..%d per side", (long long)W,
                       (long long)H, SF_IMAGE_MAX_SIDE);
    /* _imaging.c _resize's checks (NaN fails them too) */
    if (!(box[0] >= 0 && box[1] >= 0 && box[2] <= in->w && box[3] <= in->h && box[2] - box[0] >= 0 &&
          box[3] - box[1] >= 0))
        return sf_fail(err, SF_E_ARG, "resize: box (%g, %g, %g, %g) is not inside the %lldx%lld image", box[0], box[1],
                       box[2], box[3], (long long)in->w, (long long)in->h);
    sf_status st = image_alloc(out, W, H, "resize", err);
    if (st != SF_OK) return st;
    /* the crop shortcut: integer box offsets and a box of exactly the output's size */
    if (box[0] - (int)box[0] == 0 && box[2] - box[0] == W && box[1] - (int)box[1] == 0 && box[3] - box[1] == H) {
        for (int64_t y = 0; y < H; y++)
            memcpy(out->rgb + (size_t)y * (size_t)W * 3, in->rgb + ((size_t)(y + (int)box[1]) * (size_t)in->w + (size_t)(int)box[0]) * 3,
                   (size_t)W * 3);
        return SF_OK;
    }
    int need_h = W != in->w || box[0] != 0 || box[2] != W;
    int need_v = H != in->h || box[1] != 0 || box[3] != H;
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    uint8_t *tmp = NULL;
    int ksh = resample_coeffs((int)in->w, box[0], box[2], (int)W, &bh, &kh);
    int ksv = ksh ? resample_coeffs((int)in->h, box[1], box[3], (int)H, &bv, &kv) : 0;
    if (!ksh || !ksv) goto nomem;
    int yfirst = bv[0], ylast = bv[H * 2 - 2] + bv[H * 2 - 1];
    const uint8_t *src = in->rgb;
    int64_t sw = in->w;
    if (need_h) {
        for (int64_t i = 0; i < H; i++) bv[i * 2] -= yfirst; /* the vertical pass reads the temp's rows */
        int64_t th = ylast - yfirst;
        uint8_t *dst = need_v ? (tmp = malloc((size_t)W * (size_t)(th > 0 ? th : 1) * 3)) : out->rgb;
        if (!dst) goto nomem;
        resample_horizontal(dst, W, need_v ? th : H, in->rgb, in->w, yfirst, ksh, bh, kh);
        src = dst;
        sw = W;
    }
    if (need_v) resample_vertical(out->rgb, sw, H, src, ksv, bv, kv);
    else if (!need_h) memcpy(out->rgb, in->rgb, (size_t)W * (size_t)H * 3); /* neither pass: a copy */
    free(tmp);
    free(bh);
    free(kh);
    free(bv);
    free(kv);
    return SF_OK;
nomem:
    free(tmp);
    free(bh);
    free(kh);
    free(bv);
    free(kv);
    sf_image_free(out);
    return sf_fail(err, SF_E_NOMEM, "resize: out of memory (%lldx%lld to %lldx%lld)", (long long)in->w,
                   (long long)in->h, (long long)W, (long long)H);
}

sf_status sf_image_resize_bilinear(const sf_image *in, int64_t W, int64_t H, sf_image *out, sf_err *err) {
    float box[4] = {0, 0, in ? (float)in->w : 0, in ? (float)in->h : 0};
    return sf_image_resize_bilinear_box(in, W, H, box, out, err);
}

void sf_image_to_pixels(const sf_image *im, float *chw) {
    size_t hw = (size_t)im->w * (size_t)im->h;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < hw; i++) {
            float v = (float)im->rgb[i * 3 + c] / 255.0f; /* ToTensor: .float().div(255) */
            chw[(size_t)c * hw + i] = (v - 0.5f) / 0.5f;  /* Normalize: .sub_(mean).div_(std) */
        }
}
