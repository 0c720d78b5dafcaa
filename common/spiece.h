/* spiece.h — SentencePiece `spiece.model` reader (protobuf ModelProto, parsing only).
 *
 * Mirrors sentencepiece_model.proto as used by the umT5 tokenizer (SPEC.md §2.3): the
 * pieces (string, score, type), the trainer spec fields the tokenizer needs and the
 * normalizer spec including the raw precompiled charsmap. Proto defaults apply to absent
 * fields. Every varint, length and nested message is bounds-checked; anything malformed is
 * SF_E_FORMAT with a one-line message. The tokenizer lives in stages/encode/tokenizer.c.
 * Tested by tests/unit/test_spiece.c and fuzzed by tests/fuzz/fuzz_spiece.c. */
#ifndef SF_SPIECE_H
#define SF_SPIECE_H

#include "sf.h"

/* ModelProto.SentencePiece.Type */
enum {
    SF_SP_NORMAL = 1,
    SF_SP_UNKNOWN = 2,
    SF_SP_CONTROL = 3,
    SF_SP_USER_DEFINED = 4,
    SF_SP_UNUSED = 5,
    SF_SP_BYTE = 6,
};

typedef struct sf_spiece_piece {
    const char *str; /* NUL-terminated UTF-8, borrowed from the model's pool */
    uint32_t len;    /* bytes */
    float score;     /* log probability (proto default 0) */
    int type;        /* SF_SP_* (proto default NORMAL) */
} sf_spiece_piece;

typedef struct sf_spiece_model {
    size_t n_pieces;          /* id = index */
    sf_spiece_piece *pieces;  /* [n_pieces], owned */
    char *pool;               /* piece strings, owned */
    /* trainer_spec (field 2), proto defaults when absent */
    int model_type;           /* 1 UNIGRAM (default), 2 BPE, 3 WORD, 4 CHAR */
    int32_t vocab_size;       /* default 8000 */
    int byte_fallback;        /* default 0 */
    int treat_ws_as_suffix;   /* default 0 */
    int32_t unk_id, bos_id, eos_id, pad_id; /* defaults 0, 1, 2, -1; -1 when not a valid id
                                               (unk_id is always valid) */
    /* normalizer_spec (field 3) */
    char *norm_name;          /* owned, "" when absent */
    uint8_t *charsmap;        /* owned copy of precompiled_charsmap; NULL when empty */
    size_t charsmap_len;
    int add_dummy_prefix;     /* default 1 */
    int remove_extra_ws;      /* default 1 */
    int escape_ws;            /* default 1 */
} sf_spiece_model;

/* Parse a serialized ModelProto. On success *out is a new model (sf_spiece_destroy).
 * Checks: wire format, lengths, piece strings non-empty and NUL-free, unk_id in range. */
sf_status sf_spiece_parse(const uint8_t *data, size_t len, sf_spiece_model **out, sf_err *err);
/* Read and parse a file. */
sf_status sf_spiece_load(const char *path, sf_spiece_model **out, sf_err *err);
void sf_spiece_destroy(sf_spiece_model **m);

#endif
