/* test_vae_video.c — sf-decode's frame writers (stages/decode/video.c): PNG (header, decoded
 * back with libpng pixel for pixel, compressed), BT.601 full-range colour conversion, y4m
 * layout, atomic commit/abort of files and PNG folders. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "stages/decode/video.h"

#include <dirent.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Decode a PNG with libpng (which checks every chunk CRC and the zlib stream) into RGB. */
static uint8_t *png_decode(const uint8_t *png, size_t len, int *w, int *h) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, png, len)) {
        fprintf(stderr, "# libpng: %s\n", im.message);
        return NULL;
    }
    im.format = PNG_FORMAT_RGB;
    uint8_t *rgb = malloc(PNG_IMAGE_SIZE(im));
    if (!rgb || !png_image_finish_read(&im, NULL, rgb, 0, NULL)) {
        fprintf(stderr, "# libpng: %s\n", im.message);
        png_image_free(&im);
        free(rgb);
        return NULL;
    }
    *w = (int)im.width, *h = (int)im.height;
    return rgb;
}

static void test_png_bytes(void) {
    const uint8_t rgb[2 * 3] = {255, 0, 0, 1, 2, 3}; /* 2×1: red, (1,2,3) */
    uint8_t *png = NULL;
    size_t len = 0;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_png_encode(rgb, 2, 1, &png, &len, &err), &err);
    if (!png) return;
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    SF_CHECK(len > 8 + 25 + 12 && !memcmp(png, sig, 8));
    SF_CHECK(rd32(png + 8) == 13 && !memcmp(png + 12, "IHDR", 4) && rd32(png + 16) == 2 && rd32(png + 20) == 1);
    SF_CHECK(png[24] == 8 && png[25] == 2 && png[28] == 0); /* 8-bit truecolour, not interlaced */
    SF_CHECK(!memcmp(png + len - 8, "IEND", 4));
    int w = 0, h = 0;
    uint8_t *back = png_decode(png, len, &w, &h);
    SF_CHECK(back && w == 2 && h == 1 && !memcmp(back, rgb, sizeof rgb));
    free(back);
    free(png);
}

/* A video-sized frame round-trips pixel for pixel and is compressed: a smooth frame takes far
 * less than its raw 3·W·H bytes (the hand-written writer stored it uncompressed, raw + 0.1%). */
static void test_png_roundtrip_compressed(void) {
    enum { W = 832, H = 480 };
    uint8_t *rgb = malloc((size_t)W * H * 3);
    SF_CHECK(rgb != NULL);
    if (!rgb) return;
    uint32_t r = 7;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = rgb + ((size_t)y * W + x) * 3;
            r = r * 1664525u + 1013904223u;
            p[0] = (uint8_t)(x * 255 / (W - 1)), p[1] = (uint8_t)(y * 255 / (H - 1));
            p[2] = (uint8_t)(128 + (r >> 29)); /* a little noise */
        }
    uint8_t *png = NULL;
    size_t len = 0;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_png_encode(rgb, W, H, &png, &len, &err), &err);
    if (png) {
        SF_CHECK_MSG(len < (size_t)W * H * 3 / 2, "PNG of %zu bytes for %d raw bytes: not compressed", len, W * H * 3);
        int w = 0, h = 0;
        uint8_t *back = png_decode(png, len, &w, &h);
        SF_CHECK(back && w == W && h == H && !memcmp(back, rgb, (size_t)W * H * 3));
        free(back);
    }
    free(png);
    SF_CHECK(sf_png_encode(rgb, 0, 5, &png, &len, &err) == SF_E_ARG && png == NULL);
    free(rgb);
}

static void test_ycbcr(void) {
    uint8_t y, u, v;
    sf_rgb_to_ycbcr601(255, 255, 255, &y, &u, &v);
    SF_CHECK(y == 255 && u == 128 && v == 128);
    sf_rgb_to_ycbcr601(0, 0, 0, &y, &u, &v);
    SF_CHECK(y == 0 && u == 128 && v == 128);
    /* red: Y = 0.299·255 = 76.2 → 76; Cb = 128 − 0.1687·255 = 84.97 → 85; Cr = 128 + 127.5 → 255.5 → 255 */
    sf_rgb_to_ycbcr601(255, 0, 0, &y, &u, &v);
    SF_CHECK_MSG(y == 76 && u == 85 && v == 255, "%d %d %d", y, u, v);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void test_atomic(void) {
    char dir[] = "/tmp/sf_video_test_XXXXXX", path[256];
    if (!mkdtemp(dir)) return;
    sf_err err = {{0}};
    sf_video_writer *w = NULL;
    uint8_t frame[4 * 2 * 3];
    for (int i = 0; i < 24; i++) frame[i] = (uint8_t)(i * 10);
    /* abort leaves nothing */
    snprintf(path, sizeof path, "%s/a.y4m", dir);
    SF_CHECK_OK(sf_video_open(path, 4, 2, 16, &w, &err), &err);
    if (w) SF_CHECK_OK(sf_video_write(w, frame, &err), &err);
    sf_video_abort(&w);
    SF_CHECK(w == NULL && count_entries(dir) == 0);
    /* commit: header + 2 × ("FRAME\n" + 3 planes of 8 bytes) */
    SF_CHECK_OK(sf_video_open(path, 4, 2, 16, &w, &err), &err);
    if (w) {
        SF_CHECK_OK(sf_video_write(w, frame, &err), &err);
        SF_CHECK_OK(sf_video_write(w, frame, &err), &err);
        SF_CHECK(sf_video_frames(w) == 2);
        SF_CHECK_OK(sf_video_close(&w, &err), &err);
    }
    struct stat sb;
    const char *hdr = "YUV4MPEG2 W4 H2 F16:1 Ip A1:1 C444 XCOLORRANGE=FULL\n";
    SF_CHECK(stat(path, &sb) == 0 && sb.st_size == (off_t)(strlen(hdr) + 2 * (6 + 24)));
    SF_CHECK(count_entries(dir) == 1);
    unlink(path);
    /* PNG folder: temp folder renamed into place; abort removes it */
    snprintf(path, sizeof path, "%s/frames/", dir);
    SF_CHECK_OK(sf_video_open(path, 4, 2, 16, &w, &err), &err);
    if (w) SF_CHECK_OK(sf_video_write(w, frame, &err), &err);
    sf_video_abort(&w);
    SF_CHECK(count_entries(dir) == 0);
    SF_CHECK_OK(sf_video_open(path, 4, 2, 16, &w, &err), &err);
    if (w) {
        SF_CHECK_OK(sf_video_write(w, frame, &err), &err);
        SF_CHECK_OK(sf_video_close(&w, &err), &err);
    }
    snprintf(path, sizeof path, "%s/frames", dir);
    SF_CHECK(count_entries(path) == 1 && count_entries(dir) == 1);
    snprintf(path, sizeof path, "%s/frames/frame_00000.png", dir);
    SF_CHECK(stat(path, &sb) == 0);
    unlink(path);
    snprintf(path, sizeof path, "%s/frames", dir);
    rmdir(path);
    /* unknown extension and bad sizes are argument errors */
    sf_video_kind k;
    SF_CHECK(sf_video_kind_of("x.avi", &k, &err) == SF_E_ARG);
    SF_CHECK(sf_video_kind_of("x.MP4", &k, &err) == SF_OK && k == SF_VIDEO_MP4);
    SF_CHECK(sf_video_kind_of("-", &k, &err) == SF_OK && k == SF_VIDEO_Y4M);
    snprintf(path, sizeof path, "%s/b.y4m", dir);
    SF_CHECK(sf_video_open(path, 0, 2, 16, &w, &err) == SF_E_ARG && w == NULL);
    rmdir(dir);
}

/* PNG folder errors name the output folder the user asked for, never the temp folder beside it
 * (DIR.tmp.PID) that the frames are written to first. */
static void test_png_errors_name_output(void) {
    char dir[] = "/tmp/sf_video_test_XXXXXX", path[256], tmp[320];
    if (!mkdtemp(dir)) return;
    sf_err err = {{0}};
    sf_video_writer *w = NULL;
    uint8_t frame[4 * 2 * 3] = {0};
    /* the parent folder is missing */
    snprintf(path, sizeof path, "%s/no/frames/", dir);
    SF_CHECK(sf_video_open(path, 4, 2, 16, &w, &err) == SF_E_IO && w == NULL);
    SF_CHECK_MSG(strstr(err.msg, "/no/frames") && !strstr(err.msg, ".tmp."), "%s", err.msg);
    /* a frame cannot be written (the temp folder vanished under us) */
    snprintf(path, sizeof path, "%s/frames/", dir);
    SF_CHECK_OK(sf_video_open(path, 4, 2, 16, &w, &err), &err);
    if (w) {
        SF_CHECK_OK(sf_video_write(w, frame, &err), &err);
        snprintf(tmp, sizeof tmp, "%s/frames.tmp.%ld/frame_00000.png", dir, (long)getpid());
        SF_CHECK(unlink(tmp) == 0);
        snprintf(tmp, sizeof tmp, "%s/frames.tmp.%ld", dir, (long)getpid());
        SF_CHECK(rmdir(tmp) == 0);
        SF_CHECK(sf_video_write(w, frame, &err) == SF_E_IO);
        SF_CHECK_MSG(strstr(err.msg, "/frames/frame_00001.png") && !strstr(err.msg, ".tmp."), "%s", err.msg);
        sf_video_abort(&w);
    }
    SF_CHECK(count_entries(dir) == 0);
    rmdir(dir);
}

static const sf_test tests[] = {
    {"png_bytes", test_png_bytes},
    {"png_roundtrip_compressed", test_png_roundtrip_compressed},
    {"ycbcr", test_ycbcr},
    {"atomic", test_atomic},
    {"png_errors_name_output", test_png_errors_name_output},
};
SF_TEST_MAIN(tests)
