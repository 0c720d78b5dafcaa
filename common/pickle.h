/* pickle.h — the Python object tree that torch.save files hold, a pickle reader that never
 * executes anything, and the torch .pt writer.
 *
 * Reader: protocol-2 subset of SPEC.md §1.5 with an opcode whitelist and a globals whitelist
 * (collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
 * torch.*Storage). Anything else is SF_E_FORMAT with a one-line reason. Nodes are reference
 * counted because the pickle memo may share one object in several places.
 * Writer: torch.save's zip layout (archive/data.pkl, archive/data/<n>, archive/version,
 * archive/byteorder), protocol 2, 64-byte aligned members, ZIP64 when needed, atomic.
 * Tested by tests/unit/test_formats.c. */
#ifndef SF_PICKLE_H
#define SF_PICKLE_H

#include "tensor.h"

typedef enum sf_py_type {
    SF_PY_NONE = 0,
    SF_PY_BOOL,
    SF_PY_INT,
    SF_PY_FLOAT,
    SF_PY_STR,
    SF_PY_LIST,
    SF_PY_TUPLE,
    SF_PY_DICT, /* insertion ordered; keys are any hashable node (usually STR) */
    SF_PY_TENSOR,
} sf_py_type;

typedef struct sf_py {
    sf_py_type type;
    int refs;
    int64_t i;          /* BOOL, INT */
    double f;           /* FLOAT */
    char *s;            /* STR (NUL-terminated UTF-8, owned) */
    size_t n, cap;      /* LIST/TUPLE: items[0..n); DICT: keys[i] = items[2i], values = items[2i+1], n pairs */
    struct sf_py **items;
    sf_tensor t;        /* TENSOR: view (borrowed from a mapping, or owned when t.owned) */
    unsigned stamp;     /* reader-internal (cycle checks); ignore */
} sf_py;

sf_py *sf_py_none(void);
sf_py *sf_py_bool(int v);
sf_py *sf_py_int(int64_t v);
sf_py *sf_py_float(double v);
sf_py *sf_py_str(const char *s);
sf_py *sf_py_list(void);
sf_py *sf_py_tuple(void);
sf_py *sf_py_dict(void);
/* Wraps t (the node takes over ownership when t->owned). */
sf_py *sf_py_tensor(const sf_tensor *t);
sf_py *sf_py_ref(sf_py *p);              /* refs++ and return p */
void sf_py_free(sf_py *p);               /* refs--; frees at 0 (recursive); NULL ok */
/* These take ownership of the node arguments; return 0 on allocation failure. */
int sf_py_append(sf_py *list, sf_py *item);
int sf_py_dict_set(sf_py *dict, const char *key, sf_py *val);
sf_py *sf_py_dict_get(const sf_py *dict, const char *key); /* borrowed; NULL when absent */

/* Storage resolver: given the storage key (e.g. "0"), dtype and element count, return a
 * pointer to its bytes (borrowed) or NULL with err set. */
typedef const void *(*sf_pickle_storage_fn)(void *ctx, const char *key, sf_dtype dtype, int64_t numel,
                                            sf_err *err);

sf_status sf_pickle_load(const uint8_t *buf, size_t len, sf_pickle_storage_fn storage, void *ctx,
                         sf_py **out, sf_err *err);

/* Write a torch.save-compatible .pt: dicts (string keys), lists, tuples, str, int, float,
 * bool, None and tensors (any dtype of tensor.h except i16/i8 written as such). */
sf_status sf_torch_write(const char *path, const sf_py *root, sf_err *err);

/* As sf_torch_write; flags SF_TORCH_WRITE_ZIP64 forces zip64 records for every member and the
 * end of the directory (tests exercise the zip64 paths without writing 4 GiB). */
#define SF_TORCH_WRITE_ZIP64 1u
sf_status sf_torch_write_ex(const char *path, const sf_py *root, unsigned flags, sf_err *err);

/* Flatten every tensor of a tree into (name, borrowed tensor) pairs: dict keys joined with '/',
 * list/tuple items by index; a bare tensor root is named "tensor". Calls fn for each; stops at
 * the first non-OK status. Nesting deeper than 256 levels or expanding beyond the budget above
 * is SF_E_FORMAT. */
/* The memo lets one sub-tree appear many times; walkers (flatten, the writer) visit at most
 * sf_py_expand_budget(root) = 4·(edges between distinct nodes + 1) + 4096 nodes, so a hostile
 * "billion laughs" DAG is an error instead of exponential work. */
uint64_t sf_py_count_edges(const sf_py *root);
uint64_t sf_py_expand_budget(const sf_py *root);
typedef sf_status (*sf_py_tensor_fn)(void *ctx, const char *name, const sf_tensor *t, sf_err *err);
sf_status sf_py_flatten(const sf_py *root, sf_py_tensor_fn fn, void *ctx, sf_err *err);

#endif
