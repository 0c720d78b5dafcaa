/* tokenizer.h — the umT5 prompt tokenizer: text cleaning + SentencePiece unigram encoding.
 *
 * Mirrors the reference's HuggingfaceTokenizer(clean='whitespace') + T5 tokenizer call
 * (wan/modules/tokenizers.py; SPEC.md §2): clean → normalize (precompiled charsmap) →
 * dummy prefix / '▁' → Viterbi over piece scores → fuse unknowns → eos → truncate → pad.
 * Two model files: `spiece.model` (SentencePiece, as sentencepiece encodes) and `tokenizer.json`
 * (what the reference's AutoTokenizer actually loads: the fast tokenizer, which splits literal
 * special tokens such as `</s>` out of the text first; stages/encode/hftok.c). The loaders tell
 * them apart by content.
 * Goldens: tests/golden/expect/tokens.json (made with sentencepiece 0.1.97 on spiece.model);
 * tests/unit/fixtures/hftok_cases.json (made with tokenizers on a tokenizer.json of the same model).
 * Tested by tests/unit/test_tokenizer.c, tests/unit/test_hftok.c and tests/bats/sf-encode.bats. */
#ifndef SF_TOKENIZER_H
#define SF_TOKENIZER_H

#include "spiece.h"
#include "stages/encode/clean.h"

typedef struct sf_tokenizer sf_tokenizer;

/* Build a tokenizer from a parsed model; takes ownership of *model (sets it to NULL), also
 * on failure. O(n) in the number of pieces (hash table for piece lookup). */
sf_status sf_tokenizer_new(sf_spiece_model **model, sf_tokenizer **out, sf_err *err);
/* A tokenizer from a model file's bytes: tokenizer.json (its first non-blank byte is '{') or
 * spiece.model. Errors are one line (SF_E_FORMAT, SF_E_UNSUPPORTED for a tokenizer.json part
 * hftok.c does not reproduce exactly). */
sf_status sf_tokenizer_parse(const char *data, size_t len, sf_tokenizer **out, sf_err *err);
/* Load a model file from a path (either kind; errors name the path). */
sf_status sf_tokenizer_load(const char *path, sf_tokenizer **out, sf_err *err);
/* The model file the reference would use in model_dir: google/umt5-xxl/tokenizer.json when it is
 * there (AutoTokenizer prefers it), else google/umt5-xxl/spiece.model. */
void sf_tokenizer_default_path(const char *model_dir, char *buf, size_t n);
void sf_tokenizer_destroy(sf_tokenizer **t);

/* Borrowed model data. */
const sf_spiece_model *sf_tokenizer_model(const sf_tokenizer *t);
/* Piece text of id (borrowed), NULL when out of range. */
const char *sf_tokenizer_piece(const sf_tokenizer *t, int32_t id);

/* SentencePiece normalization (charsmap, whitespace rules, dummy prefix, '▁' escaping) of
 * already-cleaned text. *out: caller frees. */
sf_status sf_tokenizer_normalize(const sf_tokenizer *t, const char *s, size_t len, char **out, size_t *out_len,
                                 sf_err *err);

/* sp.encode(text) / tokenizer.encode(text, add_special_tokens=False): ids without eos.
 * *ids: caller frees (may be NULL when *n == 0). */
sf_status sf_tokenizer_encode(const sf_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n,
                              sf_err *err);

/* Full reference contract for one prompt: clean, encode, keep the first seq_len-1 ids,
 * append eos, pad with pad_id (0) to seq_len (tokenizer.json: its post-processor's special
 * tokens around the kept ids instead of eos). ids, mask: caller-provided [seq_len] int64.
 * *n_tokens = Σ mask (≥ 1: a prompt with no token at all is refused). cleaned (optional): the
 * cleaned text, caller frees. */
sf_status sf_tokenizer_prompt(const sf_tokenizer *t, const char *prompt, size_t len, size_t seq_len, int64_t *ids,
                              int64_t *mask, size_t *n_tokens, char **cleaned, sf_err *err);

#endif
