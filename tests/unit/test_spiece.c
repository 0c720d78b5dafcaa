/* test_spiece.c — common/spiece.c: the golden spiece.model fields, proto defaults, and
 * malformed inputs (truncation, lying lengths, bad wire types, out-of-range ids). */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "spiece.h"

#include <float.h>

static sf_spiece_model *load_golden(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model/google/umt5-xxl/spiece.model", sf_test_golden());
    sf_spiece_model *m = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_spiece_load(path, &m, &err), &err);
    return m;
}

static void test_golden_fields(void) {
    sf_spiece_model *m = load_golden();
    if (!m) return;
    SF_CHECK(m->n_pieces == 1000);
    SF_CHECK(m->model_type == 1 && m->vocab_size == 1000);
    SF_CHECK(m->byte_fallback == 0);
    SF_CHECK(m->unk_id == 2 && m->bos_id == -1 && m->eos_id == 1 && m->pad_id == 0);
    SF_CHECK(strcmp(m->norm_name, "nmt_nfkc") == 0);
    SF_CHECK(m->charsmap_len == 237561);
    SF_CHECK(m->add_dummy_prefix == 1 && m->remove_extra_ws == 1 && m->escape_ws == 1);
    /* first pieces as in t5_manifest.json */
    SF_CHECK(strcmp(m->pieces[0].str, "<pad>") == 0 && m->pieces[0].type == SF_SP_CONTROL && m->pieces[0].score == 0);
    SF_CHECK(strcmp(m->pieces[1].str, "</s>") == 0 && m->pieces[1].type == SF_SP_CONTROL);
    SF_CHECK(strcmp(m->pieces[2].str, "<unk>") == 0 && m->pieces[2].type == SF_SP_UNKNOWN);
    SF_CHECK(strcmp(m->pieces[3].str, "\xE2\x96\x81" "a") == 0 && m->pieces[3].score == -2.9253292083740234f);
    SF_CHECK(strcmp(m->pieces[7].str, ".") == 0 && m->pieces[7].score == -3.495120048522949f);
    int counts[7] = {0};
    for (size_t i = 0; i < m->n_pieces; i++) counts[m->pieces[i].type]++;
    SF_CHECK(counts[SF_SP_CONTROL] == 2 && counts[SF_SP_NORMAL] == 997 && counts[SF_SP_UNKNOWN] == 1);
    sf_spiece_destroy(&m);
    SF_CHECK(m == NULL);
}

static void test_defaults(void) {
    /* one piece "ab", nothing else: every spec field takes its proto default */
    const uint8_t buf[] = {0x0a, 0x04, 0x0a, 0x02, 'a', 'b'};
    sf_spiece_model *m = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_spiece_parse(buf, sizeof buf, &m, &err), &err);
    if (!m) return;
    SF_CHECK(m->n_pieces == 1 && m->pieces[0].len == 2 && m->pieces[0].type == SF_SP_NORMAL);
    SF_CHECK(m->model_type == 1 && m->vocab_size == 8000 && m->unk_id == 0 && m->pad_id == -1);
    SF_CHECK(m->bos_id == -1 && m->eos_id == -1); /* defaults 1, 2 do not exist here */
    SF_CHECK(m->add_dummy_prefix && m->remove_extra_ws && m->escape_ws && m->charsmap == NULL);
    sf_spiece_destroy(&m);
    /* bos_id -1 as a 10-byte varint, unknown fields of every wire type skipped */
    const uint8_t buf2[] = {0x0a, 0x05, 0x0a, 0x01, 'x', 0x18, 0x02,                      /* piece x UNKNOWN */
                            0x12, 0x0c, 0xc8, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, /* 41:-1 */
                            0x3d, 0, 0, 0, 0,                                           /* f7 fixed32 */
                            0x21, 1, 2, 3, 4, 5, 6, 7, 8,                               /* f4 fixed64 */
                            0x1a, 0x02, 0x18, 0x00};                                   /* add_dummy_prefix 0 */
    SF_CHECK_OK(sf_spiece_parse(buf2, sizeof buf2, &m, &err), &err);
    if (!m) return;
    SF_CHECK(m->bos_id == -1 && m->pieces[0].type == SF_SP_UNKNOWN && m->add_dummy_prefix == 0);
    sf_spiece_destroy(&m);
}

static void expect_format(const uint8_t *buf, size_t n, const char *what) {
    sf_spiece_model *m = NULL;
    sf_err err = {{0}};
    sf_status st = sf_spiece_parse(buf, n, &m, &err);
    SF_CHECK_MSG(st == SF_E_FORMAT && m == NULL && err.msg[0] && !strchr(err.msg, '\n'), "%s: %d %s", what, st,
                 err.msg);
}

static void test_malformed(void) {
    const uint8_t lying[] = {0x0a, 0x40, 0x0a, 0x02, 'a', 'b'};
    expect_format(lying, sizeof lying, "length past end");
    const uint8_t inner[] = {0x0a, 0x04, 0x0a, 0x09, 'a', 'b'};
    expect_format(inner, sizeof inner, "inner length past message");
    const uint8_t group[] = {0x0b, 0x0c};
    expect_format(group, sizeof group, "group wire type");
    const uint8_t longv[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect_format(longv, sizeof longv, "11-byte varint");
    const uint8_t empty_piece[] = {0x0a, 0x02, 0x0a, 0x00};
    expect_format(empty_piece, sizeof empty_piece, "empty piece");
    const uint8_t nul_piece[] = {0x0a, 0x04, 0x0a, 0x02, 'a', 0};
    expect_format(nul_piece, sizeof nul_piece, "NUL in piece");
    const uint8_t bad_type[] = {0x0a, 0x06, 0x0a, 0x02, 'a', 'b', 0x18, 0x09};
    expect_format(bad_type, sizeof bad_type, "piece type 9");
    const uint8_t bad_unk[] = {0x0a, 0x04, 0x0a, 0x02, 'a', 'b', 0x12, 0x02, 0xc0, 0x02, 0x05};
    expect_format(bad_unk, sizeof bad_unk - 1, "truncated trainer_spec");
    const uint8_t unk_range[] = {0x0a, 0x04, 0x0a, 0x02, 'a', 'b', 0x12, 0x03, 0xc0, 0x02, 0x05};
    expect_format(unk_range, sizeof unk_range, "unk_id out of range");
    expect_format((const uint8_t *)"", 0, "empty file");
    const uint8_t text[] = "hello world, not a model";
    expect_format(text, sizeof text - 1, "text file");
    /* every truncation of the golden model's head is an error or a clean parse, never a crash */
    char path[1024];
    snprintf(path, sizeof path, "%s/model/google/umt5-xxl/spiece.model", sf_test_golden());
    char *data = NULL;
    size_t len = 0;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_read_file(path, &data, &len, 1 << 24, &err), &err);
    if (!data) return;
    int clean = 0;
    for (size_t n = 0; n < 400 && n < len; n++) {
        sf_spiece_model *m = NULL;
        if (sf_spiece_parse((const uint8_t *)data, n, &m, &err) == SF_OK) clean++;
        sf_spiece_destroy(&m);
    }
    SF_CHECK(clean < 400);
    sf_spiece_model *m = NULL;
    SF_CHECK(sf_spiece_parse((const uint8_t *)data, len - 1, &m, &err) == SF_E_FORMAT);
    free(data);
    SF_CHECK(sf_spiece_load("/nonexistent/spiece.model", &m, &err) == SF_E_IO && m == NULL);
}

static const sf_test tests[] = {
    {"golden_fields", test_golden_fields},
    {"defaults", test_defaults},
    {"malformed", test_malformed},
};
SF_TEST_MAIN(tests)
