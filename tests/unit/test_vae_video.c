/* test_vae_video.c — sf-decode's frame writers (stages/decode/video.c): PNG bytes (stored
 * deflate, CRC, Adler-32), BT.601 full-range colour conversion, y4m layout, atomic
 * commit/abort of files and PNG folders. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "stages/decode/video.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static uint32_t crc32_ref(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
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
    SF_CHECK(png[24] == 8 && png[25] == 2); /* 8-bit truecolour */
    SF_CHECK(rd32(png + 29) == crc32_ref(png + 12, 17));
    const uint8_t *id = png + 33;
    uint32_t n = rd32(id);
    SF_CHECK(!memcmp(id + 4, "IDAT", 4));
    /* zlib: 78 01, one final stored block of 7 bytes (filter 0 + 6), data, Adler-32 */
    const uint8_t *z = id + 8;
    SF_CHECK(n == 2 + 5 + 7 + 4 && z[0] == 0x78 && z[1] == 0x01 && z[2] == 1 && z[3] == 7 && z[4] == 0 &&
             z[5] == 0xf8 && z[6] == 0xff);
    const uint8_t want[7] = {0, 255, 0, 0, 1, 2, 3};
    SF_CHECK(!memcmp(z + 7, want, 7));
    uint32_t a = 1, b = 0;
    for (int i = 0; i < 7; i++) a = (a + want[i]) % 65521, b = (b + a) % 65521;
    SF_CHECK(rd32(z + 14) == (b << 16 | a));
    SF_CHECK(rd32(id + 8 + n) == crc32_ref(id + 4, 4 + n));
    SF_CHECK(!memcmp(png + len - 8, "IEND", 4));
    free(png);
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

static const sf_test tests[] = {
    {"png_bytes", test_png_bytes},
    {"ycbcr", test_ycbcr},
    {"atomic", test_atomic},
};
SF_TEST_MAIN(tests)
