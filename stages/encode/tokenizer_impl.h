/* tokenizer_impl.h — what tokenizer.c (SentencePiece, the lattice) and hftok.c (tokenizer.json)
 * share. Private to those two files and their tests. */
#ifndef SF_TOKENIZER_IMPL_H
#define SF_TOKENIZER_IMPL_H

#include "stages/encode/tokenizer.h"

typedef struct sf_hf_pipe sf_hf_pipe; /* tokenizer.json's added tokens, normalizer, pre-tokenizer, post-processor */

/* ---- hftok.c ---- */
/* 1 when data looks like JSON (first non-blank byte '{'). */
int sf_hf_is_json(const char *data, size_t len);
/* Parse tokenizer.json: the Unigram vocab as a model (every piece NORMAL but the unk), its f64
 * scores, and the pipeline. Outputs owned by the caller (build() in tokenizer.c). */
sf_status sf_hf_parse(const char *data, size_t len, sf_spiece_model **model, double **scores, sf_hf_pipe **pipe,
                      sf_err *err);
void sf_hf_pipe_free(sf_hf_pipe **p);
/* Once tokenizer.c has the vocabulary and charsmap: normalize the normalized added tokens. */
sf_status sf_hf_finish(const sf_tokenizer *t, sf_hf_pipe *p, sf_err *err);
/* tokenizer.encode(text, add_special_tokens=False).ids for valid UTF-8 text. */
sf_status sf_hf_encode(const sf_tokenizer *t, const sf_hf_pipe *p, const char *s, size_t n, int32_t **ids, size_t *nids,
                       sf_err *err);
/* The normalizer alone over the whole text (no added-token split). */
sf_status sf_hf_normalize(const sf_tokenizer *t, const sf_hf_pipe *p, const char *s, size_t n, char **out,
                          size_t *out_len, sf_err *err);
/* An added token's text by id (its normalized form for a normalized one), NULL when none. */
const char *sf_hf_added_content(const sf_hf_pipe *p, int32_t id);
/* The post-processor's special ids before and after the text. */
void sf_hf_specials(const sf_hf_pipe *p, const int32_t **pre, size_t *npre, const int32_t **suf, size_t *nsuf);

/* ---- tokenizer.c ---- */
/* The best path over s[0..n): node ids (unknowns unfused, one per character) and their start
 * offsets, in order. spm scores in float (spiece.model), tokenizers' in f64 (tokenizer.json). */
sf_status sf_tok_lattice(const sf_tokenizer *t, const char *s, size_t n, int32_t **ids, size_t **starts, size_t *count,
                         sf_err *err);
/* tokenizers' Precompiled transform: the shortest charsmap key that prefixes s[0..n).
 * 1 (*rep = its replacement), 0 none, -1 corrupt map. */
int sf_tok_charsmap_first(const sf_tokenizer *t, const char *s, size_t n, const char **rep);
int sf_tok_has_charsmap(const sf_tokenizer *t);
/* The vocab id of the string s[0..n), -1 when none. */
int32_t sf_tok_find(const sf_tokenizer *t, const char *s, size_t n);
/* The id of the piece "<0xNN>" for byte b, -1 when none. */
int32_t sf_tok_byte_id(const sf_tokenizer *t, unsigned char b);

#endif
