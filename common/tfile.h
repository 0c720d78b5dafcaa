/* tfile.h — a tensor container read from disk: safetensors or a torch.save zip (.pt/.pth).
 *
 * sf_tfile_open() sniffs the format, mmaps the file and exposes every tensor as a named,
 * borrowed view into the mapping, with O(1) lookup by name. Nested torch checkpoints are
 * flattened with '/' between dict keys (list items by index): "generator/model.blocks.0.x".
 * For torch files the whole pickled object tree stays available in `root` (see pickle.h).
 * Tested by tests/unit/test_formats.c and tests/bats/sf-tensor.bats. */
#ifndef SF_TFILE_H
#define SF_TFILE_H

#include "tensor.h"

typedef enum sf_tfile_kind { SF_TFILE_SAFETENSORS = 1, SF_TFILE_TORCH = 2 } sf_tfile_kind;

struct sf_py; /* pickle.h */

typedef struct sf_tfile {
    sf_tfile_kind kind;
    char *path;
    sf_mmap map;
    size_t n, cap;
    sf_tensor_entry *entries;   /* in file order */
    size_t *index;              /* open-addressing hash: slot → entry index + 1 (0 = empty) */
    size_t index_cap;
    char **meta_keys, **meta_vals; /* safetensors __metadata__ (string → string) */
    size_t n_meta;
    struct sf_py *root;         /* torch: the unpickled object tree (owned) */
} sf_tfile;

/* Open any supported container. Caller destroys with sf_tfile_destroy. */
sf_status sf_tfile_open(const char *path, sf_tfile **out, sf_err *err);
void sf_tfile_destroy(sf_tfile **tf);

/* Borrowed; NULL when absent. */
const sf_tensor *sf_tfile_get(const sf_tfile *tf, const char *name);
const sf_tensor_entry *sf_tfile_find(const sf_tfile *tf, const char *name);
const char *sf_tfile_meta(const sf_tfile *tf, const char *key);

/* Used by the format readers: append an entry (name copied). Fails on duplicate names. */
sf_status sf_tfile_add(sf_tfile *tf, const char *name, const sf_tensor *t, sf_err *err);
sf_tfile *sf_tfile_new_empty(const char *path);

/* Look up "NAME" or "FILE:NAME" style arguments: split at the last ':' when the part
 * before it is an existing file. name_out is NULL when no name was given. */
void sf_split_file_arg(const char *arg, char *path, size_t path_n, const char **name_out);

/* Format readers (called by sf_tfile_open). */
sf_status sf_safetensors_read(sf_tfile *tf, sf_err *err);
sf_status sf_torch_read(sf_tfile *tf, sf_err *err); /* torchzip.c + pickle.c */

/* Safetensors writer: contiguous little-endian data, JSON header padded to 8 bytes,
 * optional string metadata; atomic (temp file + rename). Host tensors of any strides. */
sf_status sf_safetensors_write(const char *path, const sf_tensor_entry *entries, size_t n,
                               const char *const *meta_kv, size_t n_meta, sf_err *err);

#endif
