/* test_hftok.c — stages/encode/hftok.c (the tokenizer.json reader) against Hugging Face `tokenizers`.
 *
 * tests/unit/fixtures/umt5_tiny_tokenizer.json.gz is the golden tiny spiece.model converted by
 * transformers' T5 converter into umT5's tokenizer.json form (300 <extra_id_N> added tokens);
 * tests/unit/fixtures/hftok_cases.json.gz holds what `tokenizers` made of 335 texts (hand-picked and
 * random: literal special tokens, spaces of every kind, combining marks, grapheme clusters, widths,
 * unknown characters) under that file and under nine variants of it (tests/heldout/hftok_fixture.py
 * writes both; each variant is a patch applied here the same way), and of clean prompts with the
 * reference's truncation and padding. Also: what the loader refuses, the default file, and that
 * tokenizer.json and spiece.model differ exactly where the fast tokenizer splits special tokens. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "stages/encode/tokenizer.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static void fixture_path(char *buf, size_t n, const char *name) {
    const char *root = getenv("SF_ROOT");
    snprintf(buf, n, "%s%stests/unit/fixtures/%s", root && *root ? root : "", root && *root ? "/" : "", name);
}

/* a gzip'd JSON fixture (the device check carries the tree: 64 MiB in all) */
static cJSON *gz_json(const char *name) {
    char path[1024];
    fixture_path(path, sizeof path, name);
    gzFile f = gzopen(path, "rb");
    SF_CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *d = malloc(cap);
    int r;
    while (d && (r = gzread(f, d + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)r;
        if (n == cap) {
            char *nd = realloc(d, cap *= 2);
            if (!nd) free(d);
            d = nd;
        }
    }
    gzclose(f);
    cJSON *j = d ? cJSON_ParseWithLength(d, n) : NULL;
    free(d);
    SF_CHECK_MSG(cJSON_IsObject(j), "%s is not a JSON object", path);
    return j;
}

static cJSON *base_json(void) {
    return gz_json("umt5_tiny_tokenizer.json.gz");
}

static cJSON *cases_json(void) {
    return gz_json("hftok_cases.json.gz");
}

/* hftok_fixture.py's patched(): replace top-level keys; "normalizer_tail" keeps the Precompiled
 * step and appends; "added" updates the flags of added tokens by content; "byte_fallback" sets the
 * model's flag and "vocab_append" extends its vocab. */
static cJSON *patched(const cJSON *base, const cJSON *patch) {
    cJSON *j = cJSON_Duplicate(base, 1), *e;
    cJSON_ArrayForEach(e, patch) {
        if (!strcmp(e->string, "normalizer_tail")) {
            cJSON *seq = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(seq, "normalizers"), *n;
            cJSON_AddStringToObject(seq, "type", "Sequence");
            cJSON_ArrayForEach(n, cJSON_GetObjectItem(cJSON_GetObjectItem(j, "normalizer"), "normalizers"))
                if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(n, "type")), "Precompiled"))
                    cJSON_AddItemToArray(list, cJSON_Duplicate(n, 1));
            cJSON_ArrayForEach(n, e) cJSON_AddItemToArray(list, cJSON_Duplicate(n, 1));
            cJSON_ReplaceItemInObject(j, "normalizer", seq);
        } else if (!strcmp(e->string, "byte_fallback")) {
            cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "model"), "byte_fallback", cJSON_Duplicate(e, 1));
        } else if (!strcmp(e->string, "vocab_append")) {
            cJSON *n;
            cJSON_ArrayForEach(n, e) cJSON_AddItemToArray(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "vocab"), cJSON_Duplicate(n, 1));
        } else if (!strcmp(e->string, "added")) {
            cJSON *c, *t, *f;
            cJSON_ArrayForEach(c, e) cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "added_tokens")) {
                if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(t, "content")),
                           cJSON_GetStringValue(cJSON_GetObjectItem(c, "content"))))
                    continue;
                cJSON_ArrayForEach(f, c) if (strcmp(f->string, "content")) cJSON_ReplaceItemInObject(t, f->string, cJSON_Duplicate(f, 1));
            }
        } else {
            cJSON_DeleteItemFromObject(j, e->string);
            cJSON_AddItemToObject(j, e->string, cJSON_Duplicate(e, 1));
        }
    }
    return j;
}

static sf_tokenizer *from_json(const cJSON *j, sf_err *err) {
    char *s = cJSON_PrintUnformatted(j);
    sf_tokenizer *t = NULL;
    if (s) sf_tokenizer_parse(s, strlen(s), &t, err);
    free(s);
    return t;
}

static void show(const char *s, char *out, size_t n) { /* the text, escaped, for a failure message */
    size_t o = 0;
    for (; *s && o + 8 < n; s++)
        o += (size_t)snprintf(out + o, n - o, (unsigned char)*s < 0x20 || *s == '\\' ? "\\x%02x" : "%c", (unsigned char)*s);
    out[o] = 0;
}

static int same_ids(const int32_t *got, size_t n, const cJSON *want) {
    if ((size_t)cJSON_GetArraySize(want) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (cJSON_GetArrayItem(want, (int)i)->valueint != got[i]) return 0;
    return 1;
}

static void test_variants(void) {
    cJSON *base = base_json(), *c = cases_json();
    if (!base || !c) goto done;
    const cJSON *texts = cJSON_GetObjectItem(c, "texts"), *v;
    int nt = cJSON_GetArraySize(texts), nv = 0;
    SF_CHECK(nt >= 300);
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(c, "variants")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(v, "name"));
        const cJSON *want = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "ids"), name);
        cJSON *j = patched(base, cJSON_GetObjectItem(v, "patch"));
        sf_err err = {{0}};
        sf_tokenizer *t = from_json(j, &err);
        cJSON_Delete(j);
        SF_CHECK_MSG(t != NULL, "variant %s: %s", name, err.msg);
        if (!t) continue;
        int bad = 0;
        for (int i = 0; i < nt; i++) {
            const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(texts, i));
            int32_t *ids = NULL;
            size_t n = 0;
            sf_status st = sf_tokenizer_encode(t, s, strlen(s), &ids, &n, &err);
            const cJSON *w = cJSON_GetArrayItem(want, i);
            if (st || !same_ids(ids, n, w)) {
                if (bad++ < 3) {
                    char e[400], g[400] = "", *ws = cJSON_PrintUnformatted(w);
                    show(s, e, sizeof e);
                    for (size_t k = 0, o = 0; k < n && o + 12 < sizeof g; k++) o += (size_t)snprintf(g + o, sizeof g - o, "%d,", ids[k]);
                    SF_CHECK_MSG(0, "variant %s, text %d '%s': tokenizers %s, sfpipe [%s] %s", name, i, e, ws ? ws : "?", g,
                                 st ? err.msg : "");
                    free(ws);
                }
            }
            free(ids);
        }
        SF_CHECK_MSG(!bad, "variant %s: %d of %d texts differ from tokenizers", name, bad, nt);
        sf_tokenizer_destroy(&t);
        nv++;
    }
    SF_CHECK(nv == 10);
done:
    cJSON_Delete(base), cJSON_Delete(c);
}

/* the reference's call: clean, tokens, the template's </s>, truncation to the limit, padding */
static void test_prompts(void) {
    cJSON *base = base_json(), *c = cases_json(), *p;
    sf_err err = {{0}};
    sf_tokenizer *t = base ? from_json(base, &err) : NULL;
    SF_CHECK_MSG(t != NULL, "%s", err.msg);
    int checked = 0;
    if (!t || !c) goto done;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(c, "prompts")) {
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(p, "text"));
        int limit = cJSON_GetObjectItem(p, "limit")->valueint, wn = cJSON_GetObjectItem(p, "n")->valueint;
        int64_t ids[64], mask[64];
        size_t n = 0;
        char *clean = NULL;
        SF_CHECK_OK(sf_tokenizer_prompt(t, s, strlen(s), (size_t)limit, ids, mask, &n, &clean, &err), &err);
        SF_CHECK_MSG(clean && !strcmp(clean, s), "prompt '%s' is not clean as it is", s);
        const cJSON *w = cJSON_GetObjectItem(p, "ids");
        int ok = (int)n == wn && cJSON_GetArraySize(w) == limit;
        for (int k = 0; ok && k < limit; k++) ok = ids[k] == cJSON_GetArrayItem(w, k)->valueint && mask[k] == (k < wn);
        SF_CHECK_MSG(ok, "prompt '%s' limit %d: %zu tokens (tokenizers %d), first ids %lld %lld", s, limit, n, wn,
                     (long long)ids[0], (long long)(limit > 1 ? ids[1] : -1));
        free(clean);
        checked++;
    }
    SF_CHECK(checked >= 100);
done:
    sf_tokenizer_destroy(&t);
    cJSON_Delete(base), cJSON_Delete(c);
}

/* what the fast tokenizer changes: literal special tokens are one id; the rest is the same model */
static void test_spm_differs(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model/google/umt5-xxl/spiece.model", sf_test_golden());
    sf_err err = {{0}};
    sf_tokenizer *spm = NULL, *hf = NULL;
    cJSON *base = base_json();
    SF_CHECK_OK(sf_tokenizer_load(path, &spm, &err), &err);
    if (base) hf = from_json(base, &err);
    SF_CHECK(hf != NULL);
    if (!spm || !hf) goto done;
    int64_t a[32], am[32], b[32], bm[32];
    size_t na = 0, nb = 0;
    const char *same = "A red fox walks across the snow.", *diff = "hello</s>world <extra_id_0>";
    SF_CHECK_OK(sf_tokenizer_prompt(spm, same, strlen(same), 32, a, am, &na, NULL, &err), &err);
    SF_CHECK_OK(sf_tokenizer_prompt(hf, same, strlen(same), 32, b, bm, &nb, NULL, &err), &err);
    SF_CHECK(na == nb && na > 5 && !memcmp(a, b, sizeof a));
    SF_CHECK_OK(sf_tokenizer_prompt(spm, diff, strlen(diff), 32, a, am, &na, NULL, &err), &err);
    SF_CHECK_OK(sf_tokenizer_prompt(hf, diff, strlen(diff), 32, b, bm, &nb, NULL, &err), &err);
    /* spm: </s> and <extra_id_0> as pieces of text; tokenizers: ids 1 and 1299 */
    SF_CHECK(na > nb + 4);
    SF_CHECK(nb == 8 && b[3] == 1 && b[6] == 1299 && b[7] == 1); /* ▁he ll o </s> ▁world ▁ <extra_id_0> </s> */
    for (size_t k = 0; k + 1 < na; k++) SF_CHECK(a[k] != 1 && a[k] != 1299);
    SF_CHECK(!strcmp(sf_tokenizer_piece(hf, 1299), "<extra_id_0>"));
done:
    sf_tokenizer_destroy(&spm), sf_tokenizer_destroy(&hf);
    cJSON_Delete(base);
}

/* each refusal: one line naming what is wrong, no tokenizer */
static void test_refusals(void) {
    cJSON *base = base_json();
    if (!base) return;
    static const struct {
        const char *key, *json, *says;
    } cases[] = {
        {"model", "{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}", "model type 'BPE'"},
        {"model", "{\"type\":\"Unigram\",\"unk_id\":5,\"vocab\":[[\"a\",-1.0]]}", "unk_id"},
        {"model", "{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"a\"]]}", "model.vocab[0]"},
        {"model", "{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"\",0.0]]}", "model.vocab[0]"},
        {"normalizer", "{\"type\":\"Lowercase\"}", "normalizer 'Lowercase'"},
        {"normalizer", "{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"@@@\"}", "base64"},
        {"normalizer", "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(\"},\"content\":\"x\"}", "does not compile"},
        {"pre_tokenizer", "{\"type\":\"ByteLevel\"}", "pre_tokenizer 'ByteLevel'"},
        {"pre_tokenizer", "{\"type\":\"Metaspace\",\"replacement\":\"ab\"}", "one character"},
        {"post_processor", "{\"type\":\"RobertaProcessing\"}", "post_processor 'RobertaProcessing'"},
        {"added_tokens", "[{\"id\":-1,\"content\":\"x\"}]", "non-negative"},
        {"added_tokens", "[{\"id\":3,\"content\":\"x\"},{\"id\":4,\"content\":\"x\"}]", "twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *j = cJSON_Duplicate(base, 1);
        cJSON_ReplaceItemInObject(j, cases[i].key, cJSON_Parse(cases[i].json));
        sf_err err = {{0}};
        sf_tokenizer *t = from_json(j, &err);
        SF_CHECK_MSG(!t && strstr(err.msg, cases[i].says) && !strchr(err.msg, '\n'), "case %zu: '%s' (want '%s')", i,
                     err.msg, cases[i].says);
        sf_tokenizer_destroy(&t);
        cJSON_Delete(j);
    }
    sf_err err = {{0}};
    sf_tokenizer *t = NULL;
    SF_CHECK(sf_tokenizer_parse("{\"model\":", 9, &t, &err) != SF_OK && !t && strstr(err.msg, "not a JSON object"));
    /* a score past float's range is a valid f64 (tokenizers' own type): it loads and tokenizes (UBSan: no float cast
       overflow) */
    static const char big[] = "{\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0],[\"a\",1e300],"
                              "[\"b\",-1e300]]}}";
    SF_CHECK_OK(sf_tokenizer_parse(big, sizeof big - 1, &t, &err), &err);
    int32_t *ids = NULL;
    size_t n = 0;
    if (t) SF_CHECK_OK(sf_tokenizer_encode(t, "ab", 2, &ids, &n, &err), &err);
    SF_CHECK(n == 2 && ids && ids[0] == 1 && ids[1] == 2);
    free(ids);
    sf_tokenizer_destroy(&t);
    cJSON_Delete(base);
}

/* sf-encode's default: tokenizer.json when the folder has one (as AutoTokenizer), else spiece.model */
static void test_default_path(void) {
    char dir[] = "/tmp/sf_hftok_XXXXXX", sub[256], file[300], got[512];
    SF_CHECK(mkdtemp(dir) != NULL);
    snprintf(sub, sizeof sub, "%s/google", dir);
    mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/google/umt5-xxl", dir);
    mkdir(sub, 0700);
    sf_tokenizer_default_path(dir, got, sizeof got);
    snprintf(file, sizeof file, "%s/spiece.model", sub);
    SF_CHECK(!strcmp(got, file));
    snprintf(file, sizeof file, "%s/tokenizer.json", sub);
    FILE *f = fopen(file, "w");
    SF_CHECK(f != NULL);
    if (f) fclose(f);
    sf_tokenizer_default_path(dir, got, sizeof got);
    SF_CHECK(!strcmp(got, file));
    unlink(file);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/google", dir);
    rmdir(sub);
    rmdir(dir);
}

static const sf_test tests[] = {
    {"variants", test_variants}, {"prompts", test_prompts}, {"spm_differs", test_spm_differs},
    {"refusals", test_refusals}, {"default_path", test_default_path},
};
SF_TEST_MAIN(tests)
