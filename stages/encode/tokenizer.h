/* tokenizer.h — the umT5 prompt tokenizer: text cleaning + SentencePiece unigram encoding.
 *
 * Mirrors the reference's HuggingfaceTokenizer(clean='whitespace') + T5 tokenizer call
 * (wan/modules/tokenizers.py; SPEC.md §2): clean → normalize (precompiled charsmap) →
 * dummy prefix / '▁' → Viterbi over piece scores → fuse unknowns → eos → truncate → pad.
 * Goldens: tests/golden/expect/tokens.json (made with sentencepiece 0.1.97 on spiece.model).
 * Tested by tests/unit/test_tokenizer.c and tests/bats/sf-encode.bats. */
#ifndef SF_TOKENIZER_H
#define SF_TOKENIZER_H

#include "spiece.h"
#include "stages/encode/clean.h"

typedef struct sf_tokenizer sf_tokenizer;

/* Build a tokenizer from a parsed model; takes ownership of *model (sets it to NULL), also
 * on failure. O(n) in the number of pieces (hash table for piece lookup). */
sf_status sf_tokenizer_new(sf_spiece_model **model, sf_tokenizer **out, sf_err *err);
/* Load spiece.model from a path. */
sf_status sf_tokenizer_load(const char *spiece_path, sf_tokenizer **out, sf_err *err);
void sf_tokenizer_destroy(sf_tokenizer **t);

/* Borrowed model data. */
const sf_spiece_model *sf_tokenizer_model(const sf_tokenizer *t);
/* Piece text of id (borrowed), NULL when out of range. */
const char *sf_tokenizer_piece(const sf_tokenizer *t, int32_t id);

/* SentencePiece normalization (charsmap, whitespace rules, dummy prefix, '▁' escaping) of
 * already-cleaned text. *out: caller frees. */
sf_status sf_tokenizer_normalize(const sf_tokenizer *t, const char *s, size_t len, char **out, size_t *out_len,
                                 sf_err *err);

/* sp.encode(text): piece ids without eos. *ids: caller frees (may be NULL when *n == 0). */
sf_status sf_tokenizer_encode(const sf_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n,
                              sf_err *err);

/* Full reference contract for one prompt: clean, encode, keep the first seq_len-1 ids,
 * append eos, pad with pad_id (0) to seq_len. ids, mask: caller-provided [seq_len] int64.
 * *n_tokens = Σ mask (≥ 1). cleaned (optional): the cleaned text, caller frees. */
sf_status sf_tokenizer_prompt(const sf_tokenizer *t, const char *prompt, size_t len, size_t seq_len, int64_t *ids,
                              int64_t *mask, size_t *n_tokens, char **cleaned, sf_err *err);

#endif
