/* test_image.c — stages/decode/image.c against PIL 9.4 (+ torchvision 0.14), bit for bit: every
 * image in tests/golden/images/ decoded as Image.open(p).convert('RGB') does, resized as
 * Image.resize((W, H), Image.BILINEAR [, box]) does, and ToTensor + Normalize([0.5], [0.5]), from the
 * expectations in tests/golden/expect/image.safetensors (tests/heldout/make_image_golden.py); then
 * the refusals: truncated PNG / JPEG at every cut, a text file, other formats, empty and huge
 * declared sizes, 12-bit JPEG, bad resize arguments — each the right status and a one-line message
 * naming the input. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"

#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#include "stages/decode/image.h"

static sf_tfile *open_expect(void) {
    return sf_test_open_golden("expect/image.safetensors");
}

static void image_path(const char *name, char *p, size_t n) {
    snprintf(p, n, "%s/images/%s", sf_test_golden(), name);
}

static int load_golden(const char *name, sf_image *im) {
    char p[1024];
    sf_err err = {{0}};
    image_path(name, p, sizeof p);
    sf_status st = sf_image_load(p, im, &err);
    SF_CHECK_MSG(st == SF_OK, "%s: %s", p, err.msg);
    return st == SF_OK;
}

/* got (h, w, 3) against the u8 tensor ref: the shape, then every byte; the first difference named. */
static void same_u8(const char *what, const sf_image *got, const sf_tensor *ref) {
    SF_CHECK_MSG(ref->dtype == SF_U8 && ref->ndim == 3 && ref->shape[0] == got->h && ref->shape[1] == got->w &&
                     ref->shape[2] == 3,
                 "%s: got %lldx%lld, expected shape (%lld, %lld, %lld)", what, (long long)got->w, (long long)got->h,
                 (long long)ref->shape[0], (long long)(ref->ndim > 1 ? ref->shape[1] : 0),
                 (long long)(ref->ndim > 2 ? ref->shape[2] : 0));
    if (sf_test_failures) return;
    const uint8_t *r = ref->data;
    size_t n = (size_t)got->w * (size_t)got->h * 3, bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (got->rgb[i] != r[i] && bad++ == 0) first = i;
    SF_CHECK_MSG(bad == 0, "%s: %zu of %zu bytes differ; first at index %zu (y %zu, x %zu, c %zu): got %u, PIL %u",
                 what, bad, n, first, first / 3 / (size_t)got->w, first / 3 % (size_t)got->w, first % 3,
                 got->rgb[first], r[first]);
}

/* "resize/NAME/WxH" or "box/NAME/WxH/x0,y0,x1,y1": the file name and the rest. */
static int split_name(const char *entry, const char *prefix, char *name, size_t n, const char **rest) {
    size_t lp = strlen(prefix);
    if (strncmp(entry, prefix, lp) != 0) return 0;
    const char *s = entry + lp, *slash = strchr(s, '/');
    size_t ln = slash ? (size_t)(slash - s) : strlen(s);
    if (ln >= n) return 0;
    memcpy(name, s, ln);
    name[ln] = 0;
    *rest = slash ? slash + 1 : "";
    return 1;
}

static void test_golden_rgb(void) {
    sf_tfile *g = open_expect();
    if (!g) return;
    int seen = 0;
    for (size_t i = 0; i < g->n; i++) {
        char name[256];
        const char *rest;
        if (!split_name(g->entries[i].name, "rgb/", name, sizeof name, &rest)) continue;
        sf_image im = {0};
        if (load_golden(name, &im)) same_u8(g->entries[i].name, &im, &g->entries[i].t);
        sf_image_free(&im);
        seen++;
    }
    SF_CHECK_MSG(seen >= 20, "only %d decoded images in the expectations", seen);
    sf_tfile_destroy(&g);
}

/* resize/ (box NULL) and box/ entries */
static void golden_resizes(const char *prefix, int min_cases) {
    sf_tfile *g = open_expect();
    if (!g) return;
    int seen = 0;
    for (size_t i = 0; i < g->n; i++) {
        char name[256];
        const char *rest;
        if (!split_name(g->entries[i].name, prefix, name, sizeof name, &rest)) continue;
        long long W = 0, H = 0;
        float box[4];
        int nb = 0, is_box = strcmp(prefix, "box/") == 0;
        int ok = is_box ? sscanf(rest, "%lldx%lld/%f,%f,%f,%f%n", &W, &H, &box[0], &box[1], &box[2], &box[3], &nb) == 6
                        : sscanf(rest, "%lldx%lld%n", &W, &H, &nb) == 2;
        SF_CHECK_MSG(ok && rest[nb] == 0, "bad expectation name %s", g->entries[i].name);
        if (!ok) continue;
        sf_image im = {0}, out = {0};
        sf_err err = {{0}};
        if (load_golden(name, &im)) {
            sf_status st = is_box ? sf_image_resize_bilinear_box(&im, W, H, box, &out, &err)
                                  : sf_image_resize_bilinear(&im, W, H, &out, &err);
            SF_CHECK_MSG(st == SF_OK, "%s: %s", g->entries[i].name, err.msg);
            if (st == SF_OK) same_u8(g->entries[i].name, &out, &g->entries[i].t);
        }
        sf_image_free(&im);
        sf_image_free(&out);
        seen++;
    }
    SF_CHECK_MSG(seen >= min_cases, "only %d %s cases in the expectations", seen, prefix);
    sf_tfile_destroy(&g);
}

static void test_golden_resize(void) {
    golden_resizes("resize/", 60);
}

static void test_golden_box(void) {
    golden_resizes("box/", 4);
}

/* pixels/NAME/WxH: ToTensor + Normalize of the resized image, every float bit-exact. */
static void test_golden_pixels(void) {
    sf_tfile *g = open_expect();
    if (!g) return;
    int seen = 0;
    for (size_t i = 0; i < g->n; i++) {
        char name[256];
        const char *rest;
        long long W, H;
        if (!split_name(g->entries[i].name, "pixels/", name, sizeof name, &rest)) continue;
        if (sscanf(rest, "%lldx%lld", &W, &H) != 2) continue;
        const sf_tensor *ref = &g->entries[i].t;
        sf_image im = {0}, out = {0};
        sf_err err = {{0}};
        if (load_golden(name, &im) && sf_image_resize_bilinear(&im, W, H, &out, &err) == SF_OK) {
            size_t n = (size_t)(3 * W * H);
            float *px = malloc(n * sizeof *px);
            SF_CHECK(px != NULL);
            SF_CHECK(ref->dtype == SF_F32 && sf_tensor_numel(ref) == (int64_t)n && ref->shape[0] == 3 &&
                     ref->shape[1] == H && ref->shape[2] == W);
            if (px && !sf_test_failures) {
                sf_image_to_pixels(&out, px);
                const uint8_t *r = ref->data; /* maybe unaligned: compared and read bytewise */
                size_t bad = 0, first = 0;
                for (size_t k = 0; k < n; k++)
                    if (memcmp(&px[k], r + k * sizeof(float), sizeof(float)) != 0 && bad++ == 0) first = k;
                float rf = 0;
                memcpy(&rf, r + first * sizeof(float), sizeof rf);
                SF_CHECK_MSG(bad == 0, "%s: %zu of %zu floats differ; first at index %zu: got %.9g, torchvision %.9g",
                             g->entries[i].name, bad, n, first, (double)px[first], (double)rf);
            }
            free(px);
        }
        sf_image_free(&im);
        sf_image_free(&out);
        seen++;
    }
    SF_CHECK_MSG(seen >= 1, "no pixels case in the expectations");
    sf_tfile_destroy(&g);
}

/* crc/NAME/rgb and crc/NAME/WxH: the 960x540 photo decoded, and resized to the real 832x480 target
 * (u8 bytes and f32 pixels), by zlib CRC-32 (too large to store). */
static void test_golden_crc(void) {
    sf_tfile *g = open_expect();
    if (!g) return;
    int seen = 0;
    for (size_t i = 0; i < g->n; i++) {
        char name[256];
        const char *rest;
        long long W, H;
        if (!split_name(g->entries[i].name, "crc/", name, sizeof name, &rest)) continue;
        int64_t ref[2] = {-1, -1}; /* the file's data may be unaligned: copied out */
        int64_t nref = sf_tensor_numel(&g->entries[i].t);
        SF_CHECK(g->entries[i].t.dtype == SF_I64 && nref >= 1 && nref <= 2);
        if (g->entries[i].t.dtype == SF_I64 && nref >= 1 && nref <= 2)
            memcpy(ref, g->entries[i].t.data, (size_t)nref * sizeof *ref);
        sf_image im = {0}, out = {0};
        sf_err err = {{0}};
        if (!load_golden(name, &im)) continue;
        seen++;
        if (strcmp(rest, "rgb") == 0) {
            uLong c = crc32(0, im.rgb, (uInt)(im.w * im.h * 3));
            SF_CHECK_MSG((int64_t)c == ref[0], "%s: CRC-32 %lu, PIL's %lld", g->entries[i].name, c, (long long)ref[0]);
        } else if (sscanf(rest, "%lldx%lld", &W, &H) == 2 && sf_image_resize_bilinear(&im, W, H, &out, &err) == SF_OK) {
            uLong c = crc32(0, out.rgb, (uInt)(W * H * 3));
            SF_CHECK_MSG((int64_t)c == ref[0], "%s: u8 CRC-32 %lu, PIL's %lld", g->entries[i].name, c, (long long)ref[0]);
            float *px = malloc((size_t)(3 * W * H) * sizeof *px);
            SF_CHECK(px != NULL);
            if (px) {
                sf_image_to_pixels(&out, px);
                c = crc32(0, (const Bytef *)px, (uInt)(3 * W * H * sizeof *px)); /* little-endian host */
                SF_CHECK_MSG((int64_t)c == ref[1], "%s: pixels CRC-32 %lu, torchvision's %lld", g->entries[i].name, c,
                             (long long)ref[1]);
            }
            free(px);
        } else {
            SF_CHECK_MSG(0, "%s: %s", g->entries[i].name, err.msg[0] ? err.msg : "bad name");
        }
        sf_image_free(&im);
        sf_image_free(&out);
    }
    SF_CHECK_MSG(seen >= 2, "only %d crc cases in the expectations", seen);
    sf_tfile_destroy(&g);
}

/* ---- refusals ---------------------------------------------------------------------------------- */

static uint8_t *read_golden(const char *name, size_t *n) {
    char p[1024], *d = NULL;
    sf_err err = {{0}};
    image_path(name, p, sizeof p);
    SF_CHECK_OK(sf_read_file(p, &d, n, 1 << 20, &err), &err);
    return (uint8_t *)d;
}

/* A refusal: the status, a one-line message naming the input, *out left empty. */
static void refused(const char *what, sf_status st, sf_status want, const sf_err *err, const sf_image *out,
                    const char *name) {
    SF_CHECK_MSG(st == want, "%s: status %s, expected %s (%s)", what, sf_status_str(st), sf_status_str(want), err->msg);
    SF_CHECK_MSG(strchr(err->msg, '\n') == NULL && err->msg[0], "%s: message not one line: '%s'", what, err->msg);
    SF_CHECK_MSG(strstr(err->msg, name) != NULL, "%s: message does not name %s: '%s'", what, name, err->msg);
    SF_CHECK_MSG(out->rgb == NULL && out->w == 0 && out->h == 0, "%s: output not empty", what);
}

/* Every cut of a PNG / JPEG: refused (SF_E_FORMAT) while data the image needs is missing, and read
 * as the whole file when at most its last `tail` bytes are (PIL: none of a JPEG; PNG see image.c). */
static void cuts(const char *name, size_t tail) {
    size_t n = 0;
    uint8_t *d = read_golden(name, &n);
    if (!d) return;
    size_t min_ok = n - tail;
    sf_image whole = {0};
    sf_err err = {{0}};
    SF_CHECK_OK(sf_image_load_mem(d, n, name, SF_IMAGE_MAX_SIDE, &whole, &err), &err);
    for (size_t k = 0; k <= n && !sf_test_failures; k++) {
        uint8_t *cut = malloc(k ? k : 1); /* a copy of exactly k bytes: ASan sees any read past the cut */
        SF_CHECK(cut != NULL);
        if (!cut) break;
        memcpy(cut, d, k);
        sf_image im = {0};
        sf_status st = sf_image_load_mem(cut, k, name, SF_IMAGE_MAX_SIDE, &im, &err);
        char what[300];
        snprintf(what, sizeof what, "%s cut to %zu of %zu bytes", name, k, n);
        if (k < min_ok) {
            refused(what, st, SF_E_FORMAT, &err, &im, name);
        } else {
            SF_CHECK_MSG(st == SF_OK, "%s: %s", what, err.msg);
            SF_CHECK_MSG(st != SF_OK || (im.w == whole.w && im.h == whole.h &&
                                         memcmp(im.rgb, whole.rgb, (size_t)im.w * (size_t)im.h * 3) == 0),
                         "%s: not the whole image", what);
        }
        sf_image_free(&im);
        free(cut);
    }
    sf_image_free(&whole);
    free(d);
}

static void test_truncated_png(void) {
    cuts("rgb8.png", 12);        /* all but IEND: read (PIL too) */
    cuts("rgba8_adam7.png", 12); /* interlaced: the whole-image path */
}

static void test_truncated_jpeg(void) {
    cuts("jpeg420.jpg", 0); /* PIL: nothing short of the EOI marker */
    cuts("jpeg444_progressive.jpg", 0);
}

static void mem_refused(const char *what, const void *d, size_t n, sf_status want) {
    sf_image im = {0};
    sf_err err = {{0}};
    sf_status st = sf_image_load_mem(d, n, "input.bin", SF_IMAGE_MAX_SIDE, &im, &err);
    char w[200];
    snprintf(w, sizeof w, "%s", what);
    refused(w, st, want, &err, &im, "input.bin");
    sf_image_free(&im);
}

static void test_not_an_image(void) {
    const char *text = "A red fox jumps over the lazy dog.\n";
    mem_refused("a text file", text, strlen(text), SF_E_FORMAT);
    mem_refused("an empty file", "", 0, SF_E_FORMAT);
    mem_refused("a PNG signature's first bytes", "\x89PNG", 4, SF_E_FORMAT);
    mem_refused("a PNG signature alone", "\x89PNG\r\n\x1a\n", 8, SF_E_FORMAT);
    mem_refused("a JPEG SOI alone", "\xff\xd8\xff", 3, SF_E_FORMAT);
    mem_refused("a GIF", "GIF89a\x01\x00\x01\x00", 10, SF_E_UNSUPPORTED);
    mem_refused("a BMP", "BM\x3a\0\0\0", 6, SF_E_UNSUPPORTED);
    mem_refused("a WebP", "RIFF\x24\0\0\0WEBPVP8 ", 16, SF_E_UNSUPPORTED);
    /* files: a missing one (SF_E_IO), a text file named .png, a truncated JPEG named by its path */
    char dir[] = "/tmp/test_image.XXXXXX", p[256];
    if (!mkdtemp(dir)) return;
    sf_image im = {0};
    sf_err err = {{0}};
    snprintf(p, sizeof p, "%s/missing.png", dir);
    refused("a missing file", sf_image_load(p, &im, &err), SF_E_IO, &err, &im, p);
    snprintf(p, sizeof p, "%s/notes.png", dir);
    FILE *f = fopen(p, "w");
    SF_CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
        refused("a text file named .png", sf_image_load(p, &im, &err), SF_E_FORMAT, &err, &im, p);
        unlink(p);
    }
    size_t n = 0;
    uint8_t *d = read_golden("jpeg420.jpg", &n);
    snprintf(p, sizeof p, "%s/cut.jpg", dir);
    if (d && (f = fopen(p, "wb")) != NULL) {
        fwrite(d, 1, n / 2, f);
        fclose(f);
        refused("a truncated JPEG file", sf_image_load(p, &im, &err), SF_E_FORMAT, &err, &im, p);
        unlink(p);
    }
    free(d);
    rmdir(dir);
}

/* rgb8.png with IHDR's width and height set (and its CRC recomputed). */
static uint8_t *png_sized(uint32_t w, uint32_t h, size_t *n) {
    uint8_t *d = read_golden("rgb8.png", n);
    if (!d) return NULL;
    for (int i = 0; i < 4; i++) {
        d[16 + i] = (uint8_t)(w >> (24 - 8 * i));
        d[20 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    uLong c = crc32(0, d + 12, 17);
    for (int i = 0; i < 4; i++) d[29 + i] = (uint8_t)(c >> (24 - 8 * i));
    return d;
}

/* jpeg420.jpg with SOF0's precision, height and width set. */
static uint8_t *jpeg_sof(int prec, uint16_t w, uint16_t h, size_t *n) {
    uint8_t *d = read_golden("jpeg420.jpg", n);
    if (!d) return NULL;
    size_t i = 2;
    while (i + 9 < *n && !(d[i] == 0xFF && d[i + 1] == 0xC0)) i++;
    SF_CHECK_MSG(i + 9 < *n, "no SOF0 in jpeg420.jpg");
    d[i + 4] = (uint8_t)prec;
    d[i + 5] = (uint8_t)(h >> 8), d[i + 6] = (uint8_t)h;
    d[i + 7] = (uint8_t)(w >> 8), d[i + 8] = (uint8_t)w;
    return d;
}

static void test_declared_sizes(void) {
    static const struct { uint32_t w, h; sf_status want; } png[] = {
        {0, 23, SF_E_FORMAT}, {37, 0, SF_E_FORMAT}, {16385, 23, SF_E_UNSUPPORTED}, {37, 20000, SF_E_UNSUPPORTED},
        {0x7fffffffu, 0x7fffffffu, SF_E_UNSUPPORTED}, {0x80000000u, 1, SF_E_FORMAT}, /* PNG's own limit 2^31 - 1 */
        {13377, 13378, SF_E_UNSUPPORTED}, /* 178 957 506 pixels: PIL's DecompressionBombError (> 178 956 970) */
    };
    for (size_t i = 0; i < sizeof png / sizeof png[0]; i++) {
        size_t n = 0;
        uint8_t *d = png_sized(png[i].w, png[i].h, &n);
        char what[100];
        snprintf(what, sizeof what, "PNG declaring %ux%u", png[i].w, png[i].h);
        if (d) mem_refused(what, d, n, png[i].want);
        free(d);
    }
    static const struct { int prec; uint16_t w, h; sf_status want; } jpg[] = {
        {8, 0, 29, SF_E_FORMAT}, {8, 45, 0, SF_E_FORMAT}, {8, 20000, 29, SF_E_UNSUPPORTED},
        {8, 45, 65535, SF_E_UNSUPPORTED}, {12, 45, 29, SF_E_UNSUPPORTED}, /* PIL: "cannot handle 12-bit layers" */
        {8, 16384, 16384, SF_E_UNSUPPORTED}, /* within the sides, over PIL's pixel limit */
    };
    for (size_t i = 0; i < sizeof jpg / sizeof jpg[0]; i++) {
        size_t n = 0;
        uint8_t *d = jpeg_sof(jpg[i].prec, jpg[i].w, jpg[i].h, &n);
        char what[100];
        snprintf(what, sizeof what, "%d-bit JPEG declaring %ux%u", jpg[i].prec, jpg[i].w, jpg[i].h);
        if (d) mem_refused(what, d, n, jpg[i].want);
        free(d);
    }
    /* a caller's smaller limit (the fuzz target's) */
    size_t n = 0;
    uint8_t *d = read_golden("rgb8.png", &n);
    sf_image im = {0};
    sf_err err = {{0}};
    if (d) refused("rgb8.png over a 16-pixel limit", sf_image_load_mem(d, n, "small", 16, &im, &err),
                   SF_E_UNSUPPORTED, &err, &im, "small");
    free(d);
}

static void test_resize_args(void) {
    sf_image im = {0}, out = {0};
    sf_err err = {{0}};
    if (!load_golden("rgb8.png", &im)) return;
    static const long long sizes[][2] = {{0, 5}, {5, 0}, {-1, 5}, {16385, 5}, {5, 16385}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        SF_CHECK(sf_image_resize_bilinear(&im, sizes[i][0], sizes[i][1], &out, &err) == SF_E_ARG);
        SF_CHECK(out.rgb == NULL && strchr(err.msg, '\n') == NULL);
    }
    static const float boxes[][4] = {{-1, 0, 10, 10}, {0, -0.5f, 10, 10}, {0, 0, 38, 10}, {0, 0, 10, 24},
                                     {5, 0, 4, 10}, {0, 0, NAN, 10}};
    for (size_t i = 0; i < sizeof boxes / sizeof boxes[0]; i++) {
        SF_CHECK_MSG(sf_image_resize_bilinear_box(&im, 4, 4, boxes[i], &out, &err) == SF_E_ARG, "box %zu", i);
        SF_CHECK(out.rgb == NULL);
    }
    sf_image empty = {0};
    SF_CHECK(sf_image_resize_bilinear(&empty, 4, 4, &out, &err) == SF_E_ARG);
    SF_CHECK(sf_image_resize_bilinear(NULL, 4, 4, &out, &err) == SF_E_ARG);
    sf_image_free(&im);
    sf_image_free(&im); /* twice: safe */
}

static const sf_test tests[] = {
    {"golden_rgb", test_golden_rgb},
    {"golden_resize", test_golden_resize},
    {"golden_box", test_golden_box},
    {"golden_pixels", test_golden_pixels},
    {"golden_crc", test_golden_crc},
    {"truncated_png", test_truncated_png},
    {"truncated_jpeg", test_truncated_jpeg},
    {"not_an_image", test_not_an_image},
    {"declared_sizes", test_declared_sizes},
    {"resize_args", test_resize_args},
};
SF_TEST_MAIN(tests)
