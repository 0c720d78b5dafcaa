/* spiece_write.c — writes a SentencePiece ModelProto (unigram) for sf-mkmodel: the umT5
 * special ids (pad 0, eos 1, unk 2, no bos), "▁", printable ASCII characters with and
 * without "▁", then "▁"-prefixed letter strings until n pieces. Identity normalizer (no
 * precompiled charsmap). Field numbers as in SPEC.md §2.3. Beside it, the same vocabulary as a
 * Hugging Face tokenizer.json, as a real Wan folder has both: what transformers' T5 converter makes
 * of such a model (Strip right + Replace " {2,}" → "▁", no charsmap to carry), laid out as umT5's
 * (Metaspace with add_prefix_space, "$A </s>", <pad> </s> <unk> and extra_ids <extra_id_N> added
 * above the pieces, N descending as the converter numbers them). Read back by common/spiece.c and
 * stages/encode/hftok.c in tests/bats/sf-mkmodel.bats. */
#include "mkmodel.h"
#include "rng.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
    cJSON *vocab; /* the model's pieces list: the same pieces as tokenizer.json entries (NULL: none) */
} pbuf;

static void put(pbuf *b, const void *d, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->n + n) nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void varint(pbuf *b, uint64_t v) {
    uint8_t t[10];
    int n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    put(b, t, (size_t)n);
}

static void field_varint(pbuf *b, int field, int64_t v) {
    varint(b, (uint64_t)field << 3);
    varint(b, (uint64_t)v); /* negative int32 → 10-byte two's complement, as protobuf does */
}

static void field_bytes(pbuf *b, int field, const void *d, size_t n) {
    varint(b, ((uint64_t)field << 3) | 2);
    varint(b, n);
    put(b, d, n);
}

static void piece(pbuf *out, const char *s, float score, int type) {
    if (out->vocab) {
        cJSON *e = cJSON_CreateArray();
        if (e && cJSON_AddItemToArray(out->vocab, e)) {
            cJSON_AddItemToArray(e, cJSON_CreateString(s));
            cJSON_AddItemToArray(e, cJSON_CreateNumber((double)score));
        }
    }
    pbuf m = {0};
    field_bytes(&m, 1, s, strlen(s));
    uint32_t u;
    memcpy(&u, &score, 4);
    varint(&m, (2u << 3) | 5);
    uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    put(&m, le, 4);
    field_varint(&m, 3, type);
    if (m.oom) out->oom = 1;
    else field_bytes(out, 1, m.p, m.n);
    free(m.p);
}

static cJSON *obj(cJSON *parent, const char *key, const char *type) {
    cJSON *o = cJSON_AddObjectToObject(parent, key);
    if (o && type) cJSON_AddStringToObject(o, "type", type);
    return o;
}

static void added(cJSON *list, int id, const char *content) {
    cJSON *t = cJSON_CreateObject();
    if (!t || !cJSON_AddItemToArray(list, t)) return;
    cJSON_AddNumberToObject(t, "id", id);
    cJSON_AddStringToObject(t, "content", content);
    cJSON_AddBoolToObject(t, "single_word", 0);
    cJSON_AddBoolToObject(t, "lstrip", 0);
    cJSON_AddBoolToObject(t, "rstrip", 0);
    cJSON_AddBoolToObject(t, "normalized", 0);
    cJSON_AddBoolToObject(t, "special", 1);
}

/* {"Sequence": {"id": "A", "type_id": 0}} or {"SpecialToken": {"id": "</s>", "type_id": 0}} */
static void template_item(cJSON *list, const char *kind, const char *id) {
    cJSON *x = list ? cJSON_CreateObject() : NULL, *y;
    if (!x || !cJSON_AddItemToArray(list, x) || !(y = obj(x, kind, NULL))) return;
    cJSON_AddStringToObject(y, "id", id);
    cJSON_AddNumberToObject(y, "type_id", 0);
}

/* tokenizer.json around the vocab piece() collected (n_pieces pieces), with extra_ids <extra_id_N> */
static cJSON *tokenizer_json(cJSON *vocab, int n_pieces, int extra_ids) {
    cJSON *j = cJSON_CreateObject(), *a, *n, *pre, *post, *m;
    if (!j) {
        cJSON_Delete(vocab);
        return NULL;
    }
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    if ((a = cJSON_AddArrayToObject(j, "added_tokens"))) {
        added(a, 0, "<pad>"), added(a, 1, "</s>"), added(a, 2, "<unk>");
        for (int k = 0; k < extra_ids; k++) {
            char s[32];
            snprintf(s, sizeof s, "<extra_id_%d>", extra_ids - 1 - k);
            added(a, n_pieces + k, s);
            cJSON *e = cJSON_CreateArray();
            if (e && cJSON_AddItemToArray(vocab, e)) {
                cJSON_AddItemToArray(e, cJSON_CreateString(s));
                cJSON_AddItemToArray(e, cJSON_CreateNumber(0.0));
            }
        }
    }
    if ((n = obj(j, "normalizer", "Sequence")) && (n = cJSON_AddArrayToObject(n, "normalizers"))) {
        cJSON *s = cJSON_CreateObject(), *r = cJSON_CreateObject(), *p;
        if (s && cJSON_AddItemToArray(n, s)) {
            cJSON_AddStringToObject(s, "type", "Strip");
            cJSON_AddBoolToObject(s, "strip_left", 0);
            cJSON_AddBoolToObject(s, "strip_right", 1);
        }
        if (r && cJSON_AddItemToArray(n, r)) {
            cJSON_AddStringToObject(r, "type", "Replace");
            if ((p = obj(r, "pattern", NULL))) cJSON_AddStringToObject(p, "Regex", " {2,}");
            cJSON_AddStringToObject(r, "content", "\xe2\x96\x81");
        }
    }
    if ((pre = obj(j, "pre_tokenizer", "Metaspace"))) {
        cJSON_AddStringToObject(pre, "replacement", "\xe2\x96\x81");
        cJSON_AddBoolToObject(pre, "add_prefix_space", 1);
    }
    if ((post = obj(j, "post_processor", "TemplateProcessing"))) {
        cJSON *single = cJSON_AddArrayToObject(post, "single"), *pair = cJSON_AddArrayToObject(post, "pair"), *sp, *eos,
              *ids, *toks;
        template_item(single, "Sequence", "A"), template_item(single, "SpecialToken", "</s>");
        template_item(pair, "Sequence", "A"), template_item(pair, "SpecialToken", "</s>");
        template_item(pair, "Sequence", "B"), template_item(pair, "SpecialToken", "</s>");
        if ((sp = obj(post, "special_tokens", NULL)) && (eos = obj(sp, "</s>", NULL))) {
            cJSON_AddStringToObject(eos, "id", "</s>");
            if ((ids = cJSON_AddArrayToObject(eos, "ids"))) cJSON_AddItemToArray(ids, cJSON_CreateNumber(1));
            if ((toks = cJSON_AddArrayToObject(eos, "tokens"))) cJSON_AddItemToArray(toks, cJSON_CreateString("</s>"));
        }
    }
    if ((m = obj(j, "decoder", "Metaspace"))) {
        cJSON_AddStringToObject(m, "replacement", "\xe2\x96\x81");
        cJSON_AddBoolToObject(m, "add_prefix_space", 1);
    }
    if ((m = obj(j, "model", "Unigram"))) {
        cJSON_AddNumberToObject(m, "unk_id", 2);
        cJSON_AddItemToObject(m, "vocab", vocab);
        cJSON_AddBoolToObject(m, "byte_fallback", 0);
    } else {
        cJSON_Delete(vocab);
    }
    return j;
}

sf_status sf_mk_write_spiece(const char *path, const char *json_path, int n_pieces, int extra_ids, uint64_t seed,
                             sf_err *err) {
    if (n_pieces < 3 + 1 + 2 * 94) return sf_fail(err, SF_E_ARG, "spiece.model needs at least %d pieces", 3 + 1 + 2 * 94);
    pbuf b = {.vocab = json_path ? cJSON_CreateArray() : NULL};
    if (json_path && !b.vocab) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_rng r;
    sf_rng_seed(&r, seed);
    piece(&b, "<pad>", 0, 3);
    piece(&b, "</s>", 0, 3);
    piece(&b, "<unk>", 0, 2);
    piece(&b, "\xe2\x96\x81", -3.0f, 1);
    int n = 4;
    char s[64];
    for (int c = 33; c < 127; c++) {
        snprintf(s, sizeof s, "%c", c);
        piece(&b, s, -8.0f - (float)sf_rng_uniform(&r), 1);
        snprintf(s, sizeof s, "\xe2\x96\x81%c", c);
        piece(&b, s, -7.0f - (float)sf_rng_uniform(&r), 1);
        n += 2;
    }
    /* "▁" + lowercase strings of growing length: a, b, ..., z, aa, ab, ... */
    for (uint64_t k = 0; n < n_pieces; k++) {
        char w[32];
        int len = 0;
        uint64_t v = k;
        do {
            w[len++] = (char)('a' + v % 26);
            v = v / 26;
        } while (v && len < 30);
        w[len] = 0;
        if (len == 1) continue; /* single letters already exist as "▁c" */
        snprintf(s, sizeof s, "\xe2\x96\x81%s", w);
        piece(&b, s, -5.0f - 0.5f * (float)len - (float)sf_rng_uniform(&r), 1);
        n++;
    }
    pbuf t = {0};
    field_varint(&t, 3, 1);          /* model_type UNIGRAM */
    field_varint(&t, 4, n_pieces);   /* vocab_size */
    field_varint(&t, 35, 0);         /* byte_fallback */
    field_varint(&t, 40, 2);         /* unk_id */
    field_varint(&t, 41, -1);        /* bos_id */
    field_varint(&t, 42, 1);         /* eos_id */
    field_varint(&t, 43, 0);         /* pad_id */
    pbuf nm = {0};
    field_bytes(&nm, 1, "identity", 8);
    field_varint(&nm, 3, 1);         /* add_dummy_prefix */
    field_varint(&nm, 4, 1);         /* remove_extra_whitespaces */
    field_varint(&nm, 5, 1);         /* escape_whitespaces */
    if (!t.oom) field_bytes(&b, 2, t.p, t.n);
    if (!nm.oom) field_bytes(&b, 3, nm.p, nm.n);
    sf_status s2 = SF_OK;
    if (b.oom || t.oom || nm.oom) s2 = sf_fail(err, SF_E_NOMEM, "out of memory");
    if (!s2) {
        sf_atomic_file af;
        s2 = sf_atomic_open(&af, path, err);
        if (!s2) {
            fwrite(b.p, 1, b.n, af.fp);
            s2 = sf_atomic_commit(&af, err);
        }
    }
    free(b.p);
    free(t.p);
    free(nm.p);
    cJSON *vocab = b.vocab;
    if (!json_path || s2) {
        cJSON_Delete(vocab);
        return s2;
    }
    cJSON *j = tokenizer_json(vocab, n_pieces, extra_ids);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text) return sf_fail(err, SF_E_NOMEM, "out of memory (tokenizer.json)");
    sf_atomic_file af;
    if (!(s2 = sf_atomic_open(&af, json_path, err))) {
        fputs(text, af.fp);
        s2 = sf_atomic_commit(&af, err);
    }
    free(text);
    return s2;
}
