/* pickle.c — the sf_py object tree and a pickle reader that never executes anything.
 *
 * Mirrors what torch.load(weights_only=True) accepts from a torch.save file (torch/_weights_only_
 * unpickler.py): a protocol 2 (and the protocol 3/4 framing) opcode whitelist and a globals
 * whitelist — collections.OrderedDict, torch._utils._rebuild_tensor_v2, _rebuild_parameter and the
 * torch.*Storage classes (SPEC.md §1.5). Every other opcode or global, a stack underflow, a memo
 * miss, a truncated stream, a length beyond the input, a reference cycle or a nesting deeper
 * than 256 levels is SF_E_FORMAT with a one-line reason. Tensors are views into storages handed
 * out by a caller-supplied resolver, bounds-checked against the storage's element count.
 * Tested by tests/unit/test_formats.c (goldens and hostile byte strings), tests/fuzz/fuzz_pickle.c. */
#define _POSIX_C_SOURCE 200809L
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reader-internal node types: never reachable from a list or dict, nor returned as the root. */
#define PY_GLOBAL ((sf_py_type)64)  /* i = which global, t.dtype for storages, s = "module name" */
#define PY_STORAGE ((sf_py_type)65) /* t.data/t.dtype = storage bytes, i = numel, s = key */

enum { G_ODICT = 1, G_REBUILD_V2, G_PARAM, G_PARAM_STATE, G_STORAGE };

#define SF_PY_MAX_DEPTH 256

/* ---- nodes ------------------------------------------------------------------------------ */

static sf_py *py_new(sf_py_type type) {
    sf_py *p = calloc(1, sizeof *p);
    if (p) {
        p->type = type;
        p->refs = 1;
        p->t.device = -1;
    }
    return p;
}

sf_py *sf_py_none(void) { return py_new(SF_PY_NONE); }
sf_py *sf_py_bool(int v) {
    sf_py *p = py_new(SF_PY_BOOL);
    if (p) p->i = v != 0;
    return p;
}
sf_py *sf_py_int(int64_t v) {
    sf_py *p = py_new(SF_PY_INT);
    if (p) p->i = v;
    return p;
}
sf_py *sf_py_float(double v) {
    sf_py *p = py_new(SF_PY_FLOAT);
    if (p) p->f = v;
    return p;
}
static sf_py *py_strn(const char *s, size_t n) {
    sf_py *p = py_new(SF_PY_STR);
    if (!p) return NULL;
    p->s = malloc(n + 1);
    if (!p->s) {
        free(p);
        return NULL;
    }
    if (n) memcpy(p->s, s, n);
    p->s[n] = 0;
    p->n = n;
    return p;
}
sf_py *sf_py_str(const char *s) { return py_strn(s, strlen(s)); }
sf_py *sf_py_list(void) { return py_new(SF_PY_LIST); }
sf_py *sf_py_tuple(void) { return py_new(SF_PY_TUPLE); }
sf_py *sf_py_dict(void) { return py_new(SF_PY_DICT); }
sf_py *sf_py_tensor(const sf_tensor *t) {
    sf_py *p = py_new(SF_PY_TENSOR);
    if (p) p->t = *t;
    return p;
}
sf_py *sf_py_ref(sf_py *p) {
    if (p) p->refs++;
    return p;
}

static size_t py_nitems(const sf_py *p) {
    if (p->type == SF_PY_LIST || p->type == SF_PY_TUPLE) return p->n;
    if (p->type == SF_PY_DICT) return 2 * p->n;
    return 0;
}

static int is_container_(const sf_py *p) {
    return p->type == SF_PY_LIST || p->type == SF_PY_TUPLE || p->type == SF_PY_DICT;
}

/* Iterative so that a hostile, deeply nested tree cannot overflow the C stack. The reader
 * never builds cycles, so every node is reached once its count drops to zero. */
void sf_py_free(sf_py *p) {
    if (!p || --p->refs > 0) return;
    sf_py **work = NULL;
    size_t n = 0, cap = 0;
    sf_py *q = p;
    for (;;) {
        size_t k = py_nitems(q);
        for (size_t i = 0; i < k; i++) {
            sf_py *c = q->items[i];
            if (!c || --c->refs > 0) continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 64;
                sf_py **nw = realloc(work, nc * sizeof *nw);
                if (!nw) { /* out of memory while freeing: fall back to recursion */
                    c->refs = 1;
                    sf_py_free(c);
                    continue;
                }
                work = nw;
                cap = nc;
            }
            work[n++] = c;
        }
        free(q->items);
        free(q->s);
        if (q->type == SF_PY_TENSOR) sf_tensor_free(&q->t);
        free(q);
        if (!n) break;
        q = work[--n];
    }
    free(work);
}

static int py_push_item(sf_py *c, sf_py *item) {
    size_t need = py_nitems(c) + 1;
    if (need > c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 8;
        while (nc < need) nc *= 2;
        sf_py **ni = realloc(c->items, nc * sizeof *ni);
        if (!ni) return 0;
        c->items = ni;
        c->cap = nc;
    }
    c->items[py_nitems(c)] = item;
    return 1;
}

int sf_py_append(sf_py *list, sf_py *item) {
    if (!list || !item || (list->type != SF_PY_LIST && list->type != SF_PY_TUPLE) || !py_push_item(list, item)) {
        sf_py_free(item);
        return 0;
    }
    list->n++;
    return 1;
}

static int dict_add(sf_py *d, sf_py *key, sf_py *val) {
    size_t need = 2 * d->n + 2;
    if (need > d->cap) {
        size_t nc = d->cap ? 2 * d->cap : 8;
        while (nc < need) nc *= 2;
        sf_py **ni = realloc(d->items, nc * sizeof *ni);
        if (!ni) return 0;
        d->items = ni;
        d->cap = nc;
    }
    d->items[2 * d->n] = key;
    d->items[2 * d->n + 1] = val;
    d->n++;
    return 1;
}

int sf_py_dict_set(sf_py *dict, const char *key, sf_py *val) {
    if (!dict || dict->type != SF_PY_DICT || !key || !val) {
        sf_py_free(val);
        return 0;
    }
    for (size_t i = 0; i < dict->n; i++) {
        sf_py *k = dict->items[2 * i];
        if (k->type == SF_PY_STR && strcmp(k->s, key) == 0) {
            sf_py_free(dict->items[2 * i + 1]);
            dict->items[2 * i + 1] = val;
            return 1;
        }
    }
    sf_py *k = sf_py_str(key);
    if (!k || !dict_add(dict, k, val)) {
        sf_py_free(k);
        sf_py_free(val);
        return 0;
    }
    return 1;
}

sf_py *sf_py_dict_get(const sf_py *dict, const char *key) {
    if (!dict || dict->type != SF_PY_DICT) return NULL;
    for (size_t i = 0; i < dict->n; i++) {
        const sf_py *k = dict->items[2 * i];
        if (k->type == SF_PY_STR && strcmp(k->s, key) == 0) return dict->items[2 * i + 1];
    }
    return NULL;
}

/* ---- size of a shared graph ----------------------------------------------------------- */

/* Edges between distinct nodes, counted with a pointer set (iterative, no recursion). */
uint64_t sf_py_count_edges(const sf_py *root) {
    if (!root) return 0;
    size_t cap = 1024, used = 0, n = 0, wcap = 256;
    const sf_py **set = calloc(cap, sizeof *set), **work = malloc(wcap * sizeof *work);
    uint64_t edges = 0;
    if (!set || !work) goto oom;
    work[n++] = root;
    while (n) {
        const sf_py *q = work[--n];
        size_t k = py_nitems(q);
        edges += k;
        for (size_t i = 0; i < k; i++) {
            const sf_py *c = q->items[i];
            if (!is_container_(c)) continue;
            size_t h = ((uintptr_t)c >> 4) * 0x9E3779B97F4A7C15ull & (cap - 1);
            while (set[h] && set[h] != c) h = (h + 1) & (cap - 1);
            if (set[h]) continue;
            set[h] = c;
            if (++used * 2 > cap) { /* grow and rehash */
                size_t nc = cap * 2;
                const sf_py **ns = calloc(nc, sizeof *ns);
                if (!ns) goto oom;
                for (size_t j = 0; j < cap; j++) {
                    if (!set[j]) continue;
                    size_t g = ((uintptr_t)set[j] >> 4) * 0x9E3779B97F4A7C15ull & (nc - 1);
                    while (ns[g]) g = (g + 1) & (nc - 1);
                    ns[g] = set[j];
                }
                free(set);
                set = ns;
                cap = nc;
            }
            if (n == wcap) {
                const sf_py **nw = realloc(work, 2 * wcap * sizeof *nw);
                if (!nw) goto oom;
                work = nw;
                wcap *= 2;
            }
            work[n++] = c;
        }
    }
    free(set);
    free(work);
    return edges;
oom:
    free(set);
    free(work);
    return UINT64_MAX;
}

/* ---- flatten ---------------------------------------------------------------------------- */

typedef struct flat_ctx {
    sf_py_tensor_fn fn;
    void *ctx;
    uint64_t visits_left; /* shared sub-trees may repeat, but not exponentially */
    char *name;
    size_t len, cap;
} flat_ctx;

static int name_put(flat_ctx *f, size_t at, const char *sep, const char *part) {
    size_t a = strlen(sep), b = strlen(part), need;
    if (!sf_add_ok(at, a + b + 1, &need)) return 0;
    if (need > f->cap) {
        size_t nc = f->cap ? 2 * f->cap : 256;
        while (nc < need) nc *= 2;
        char *nn = realloc(f->name, nc);
        if (!nn) return 0;
        f->name = nn;
        f->cap = nc;
    }
    memcpy(f->name + at, sep, a);
    memcpy(f->name + at + a, part, b + 1);
    f->len = at + a + b;
    return 1;
}

static sf_status flat_rec(flat_ctx *f, const sf_py *p, int depth, sf_err *err) {
    if (depth > SF_PY_MAX_DEPTH) return sf_fail(err, SF_E_FORMAT, "object tree nested deeper than %d levels", SF_PY_MAX_DEPTH);
    if (f->visits_left-- == 0)
        return sf_fail(err, SF_E_FORMAT, "object tree shares sub-trees too often (expands beyond its size)");
    if (p->type == SF_PY_TENSOR) return f->fn(f->ctx, f->len ? f->name : "tensor", &p->t, err);
    if (p->type != SF_PY_LIST && p->type != SF_PY_TUPLE && p->type != SF_PY_DICT) return SF_OK;
    size_t base = f->len;
    size_t n = p->n;
    for (size_t i = 0; i < n; i++) {
        const sf_py *k = p->type == SF_PY_DICT ? p->items[2 * i] : NULL;
        const sf_py *v = p->type == SF_PY_DICT ? p->items[2 * i + 1] : p->items[i];
        if (v->type != SF_PY_TENSOR && v->type != SF_PY_LIST && v->type != SF_PY_TUPLE && v->type != SF_PY_DICT)
            continue;
        char buf[64];
        const char *part = buf;
        if (!k) snprintf(buf, sizeof buf, "%zu", i);
        else if (k->type == SF_PY_STR) part = k->s;
        else if (k->type == SF_PY_INT) snprintf(buf, sizeof buf, "%lld", (long long)k->i);
        else if (k->type == SF_PY_BOOL) part = k->i ? "True" : "False";
        else if (k->type == SF_PY_NONE) part = "None";
        else if (k->type == SF_PY_FLOAT) snprintf(buf, sizeof buf, "%.17g", k->f);
        else return sf_fail(err, SF_E_FORMAT, "dict key of an unsupported type");
        if (!name_put(f, base, base ? "/" : "", part)) return sf_fail(err, SF_E_NOMEM, "out of memory");
        sf_status s = flat_rec(f, v, depth + 1, err);
        if (s) return s;
        f->len = base;
        if (f->name) f->name[base] = 0;
    }
    return SF_OK;
}

uint64_t sf_py_expand_budget(const sf_py *root) {
    uint64_t e = sf_py_count_edges(root);
    return e >= UINT64_MAX / 8 ? UINT64_MAX : 4 * (e + 1) + 4096;
}

sf_status sf_py_flatten(const sf_py *root, sf_py_tensor_fn fn, void *ctx, sf_err *err) {
    flat_ctx f = {fn, ctx, 0, NULL, 0, 0};
    if (!root) return SF_OK;
    f.visits_left = sf_py_expand_budget(root);
    sf_status s = flat_rec(&f, root, 0, err);
    free(f.name);
    return s;
}

/* ---- the pickle machine --------------------------------------------------------------------- */

typedef struct vm {
    const uint8_t *p;
    size_t len, pos;
    sf_py **stack;
    size_t sn, scap;
    size_t *marks;
    size_t mn, mcap;
    sf_py **memo;
    size_t memo_n, memo_count;
    sf_py **scratch; /* cycle-check work list */
    size_t scratch_cap;
    unsigned stamp;
    uint64_t work_left; /* bounds total cycle-check effort by the input size */
    sf_pickle_storage_fn storage;
    void *ctx;
    sf_err *err;
} vm;

#define BAD(...) sf_fail(m->err, SF_E_FORMAT, "pickle: " __VA_ARGS__)

static sf_status push(vm *m, sf_py *p) {
    if (!p) return sf_fail(m->err, SF_E_NOMEM, "out of memory");
    if (m->sn == m->scap) {
        size_t nc = m->scap ? 2 * m->scap : 64;
        sf_py **ns = realloc(m->stack, nc * sizeof *ns);
        if (!ns) {
            sf_py_free(p);
            return sf_fail(m->err, SF_E_NOMEM, "out of memory");
        }
        m->stack = ns;
        m->scap = nc;
    }
    m->stack[m->sn++] = p;
    return SF_OK;
}

static size_t floor_(const vm *m) { return m->mn ? m->marks[m->mn - 1] : 0; }

/* Pop one object above the innermost mark (owned by the caller), or NULL on underflow. */
static sf_py *pop(vm *m) {
    if (m->sn <= floor_(m)) return NULL;
    return m->stack[--m->sn];
}

static sf_py *top(vm *m) { return m->sn > floor_(m) ? m->stack[m->sn - 1] : NULL; }

static int need(vm *m, size_t k) { return k <= m->len - m->pos; }

static uint64_t rd_le(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static int is_internal(const sf_py *p) {
    return p->type == PY_GLOBAL || p->type == PY_STORAGE || (p->type == SF_PY_TUPLE && p->i);
}

static int is_container(const sf_py *p) {
    return p->type == SF_PY_LIST || p->type == SF_PY_TUPLE || p->type == SF_PY_DICT;
}

/* Would inserting `item` into container `c` create a cycle (c reachable from item)? */
static sf_status check_acyclic(vm *m, sf_py *c, sf_py *item) {
    if (!is_container(item)) return SF_OK;
    if (item == c) return BAD("object contains itself (reference cycle)");
    unsigned st = ++m->stamp;
    size_t n = 0;
    item->stamp = st;
    m->scratch[n++] = item; /* scratch_cap >= 1 guaranteed by the caller setup */
    while (n) {
        sf_py *q = m->scratch[--n];
        if (m->work_left-- == 0) return BAD("object graph too complex for its size");
        size_t k = py_nitems(q);
        for (size_t i = 0; i < k; i++) {
            sf_py *x = q->items[i];
            if (x == c) return BAD("reference cycle");
            if (!is_container(x) || x->stamp == st) continue;
            x->stamp = st;
            if (n == m->scratch_cap) {
                size_t nc = 2 * m->scratch_cap;
                sf_py **ns = realloc(m->scratch, nc * sizeof *ns);
                if (!ns) return sf_fail(m->err, SF_E_NOMEM, "out of memory");
                m->scratch = ns;
                m->scratch_cap = nc;
            }
            m->scratch[n++] = x;
        }
    }
    return SF_OK;
}

static sf_status list_insert(vm *m, sf_py *list, sf_py *item) {
    if (is_internal(item)) {
        sf_py_free(item);
        return BAD("a global or storage cannot be stored in a list or dict");
    }
    sf_status s = check_acyclic(m, list, item);
    if (s) {
        sf_py_free(item);
        return s;
    }
    if (!sf_py_append(list, item)) return sf_fail(m->err, SF_E_NOMEM, "out of memory");
    return SF_OK;
}

static sf_status dict_insert(vm *m, sf_py *d, sf_py *k, sf_py *v) {
    sf_status s = SF_OK;
    if (k->type != SF_PY_STR && k->type != SF_PY_INT && k->type != SF_PY_BOOL && k->type != SF_PY_NONE &&
        k->type != SF_PY_FLOAT)
        s = BAD("unsupported dict key type");
    else if (is_internal(v))
        s = BAD("a global or storage cannot be stored in a list or dict");
    else
        s = check_acyclic(m, d, v);
    if (!s && !dict_add(d, k, v)) s = sf_fail(m->err, SF_E_NOMEM, "out of memory");
    if (s) {
        sf_py_free(k);
        sf_py_free(v);
    }
    return s;
}

static const struct {
    const char *name;
    sf_dtype dtype;
} storage_types[] = {
    {"FloatStorage", SF_F32}, {"BFloat16Storage", SF_BF16}, {"HalfStorage", SF_F16}, {"DoubleStorage", SF_F64},
    {"LongStorage", SF_I64},  {"IntStorage", SF_I32},       {"ShortStorage", SF_I16}, {"CharStorage", SF_I8},
    {"ByteStorage", SF_U8},   {"BoolStorage", SF_BOOL},
};

static sf_status op_global(vm *m, const char *mod, size_t ml, const char *name, size_t nl) {
    int which = 0;
    sf_dtype dt = SF_F32;
#define IS(a, l, lit) ((l) == sizeof(lit) - 1 && memcmp(a, lit, l) == 0)
    if (IS(mod, ml, "collections") && IS(name, nl, "OrderedDict")) which = G_ODICT;
    else if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_tensor_v2")) which = G_REBUILD_V2;
    else if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_parameter")) which = G_PARAM;
    else if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_parameter_with_state")) which = G_PARAM_STATE;
    else if (IS(mod, ml, "torch")) {
        for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0]; i++)
            if (strlen(storage_types[i].name) == nl && memcmp(storage_types[i].name, name, nl) == 0) {
                which = G_STORAGE;
                dt = storage_types[i].dtype;
            }
    }
#undef IS
    if (!which) {
        int a = ml > 60 ? 60 : (int)ml, b = nl > 60 ? 60 : (int)nl;
        char safe[128];
        snprintf(safe, sizeof safe, "%.*s %.*s", a, mod, b, name);
        for (char *c = safe; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) *c = '?';
        return BAD("global '%s' is not allowed (only tensors, storages and OrderedDict are loaded)", safe);
    }
    sf_py *g = py_new(PY_GLOBAL);
    if (!g) return sf_fail(m->err, SF_E_NOMEM, "out of memory");
    g->i = which;
    g->t.dtype = dt;
    return push(m, g);
}

static int tuple_ints(const sf_py *t, int64_t *out, int *n) {
    if (t->type != SF_PY_TUPLE) return 0;
    if (t->n > SF_MAX_DIMS) return -1;
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->type != SF_PY_INT || t->items[i]->i < 0) return 0;
        out[i] = t->items[i]->i;
    }
    *n = (int)t->n;
    return 1;
}

/* torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata]) */
static sf_status rebuild_tensor(vm *m, const sf_py *args, sf_py **out) {
    if (args->n != 6 && args->n != 7) return BAD("_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu", args->n);
    const sf_py *st = args->items[0], *off = args->items[1];
    if (st->type != PY_STORAGE) return BAD("_rebuild_tensor_v2: first argument is not a storage");
    if (off->type != SF_PY_INT || off->i < 0) return BAD("_rebuild_tensor_v2: bad storage offset");
    sf_tensor t;
    memset(&t, 0, sizeof t);
    t.device = -1;
    t.dtype = st->t.dtype;
    int nd = 0, ns = 0;
    int r1 = tuple_ints(args->items[2], t.shape, &nd), r2 = tuple_ints(args->items[3], t.stride, &ns);
    if (r1 < 0 || r2 < 0)
        return sf_fail(m->err, SF_E_UNSUPPORTED, "pickle: tensor of rank > %d is not supported", SF_MAX_DIMS);
    if (!r1 || !r2 || nd != ns) return BAD("_rebuild_tensor_v2: bad size or stride tuple");
    t.ndim = nd;
    size_t numel = (size_t)st->i, offset = (size_t)off->i, last = offset, count = 1;
    for (int d = 0; d < nd; d++) {
        if (t.shape[d] == 0) count = 0;
        else if (count && !sf_mul_ok(count, (size_t)t.shape[d], &count)) return BAD("tensor size overflows");
    }
    if (count) {
        for (int d = 0; d < nd; d++) {
            size_t span;
            if (!sf_mul_ok((size_t)(t.shape[d] - 1), (size_t)t.stride[d], &span) || !sf_add_ok(last, span, &last))
                return BAD("tensor view overflows");
        }
        if (last >= numel)
            return BAD("tensor view (offset %llu, last element %llu) outside its storage '%s' of %llu elements",
                       (unsigned long long)offset, (unsigned long long)last, st->s ? st->s : "?",
                       (unsigned long long)numel);
    } else if (offset > numel) {
        return BAD("tensor offset %llu outside its storage of %llu elements", (unsigned long long)offset,
                   (unsigned long long)numel);
    }
    t.data = st->t.data ? (uint8_t *)st->t.data + offset * sf_dtype_size(t.dtype) : NULL;
    *out = sf_py_tensor(&t);
    return *out ? SF_OK : sf_fail(m->err, SF_E_NOMEM, "out of memory");
}

static sf_status op_reduce(vm *m) {
    sf_py *args = pop(m), *fn = pop(m), *res = NULL;
    sf_status s = SF_OK;
    if (!args || !fn) {
        s = BAD("stack underflow at REDUCE");
        goto done;
    }
    if (fn->type != PY_GLOBAL || args->type != SF_PY_TUPLE) {
        s = BAD("REDUCE of something that is not an allowed global");
        goto done;
    }
    switch (fn->i) {
    case G_ODICT:
        if (args->n != 0) {
            s = BAD("OrderedDict() with arguments is not supported");
            goto done;
        }
        res = sf_py_dict();
        if (!res) s = sf_fail(m->err, SF_E_NOMEM, "out of memory");
        break;
    case G_REBUILD_V2: s = rebuild_tensor(m, args, &res); break;
    case G_PARAM:
    case G_PARAM_STATE:
        if (args->n != (fn->i == G_PARAM ? 3u : 4u) || args->items[0]->type != SF_PY_TENSOR) {
            s = BAD("_rebuild_parameter: bad arguments");
            goto done;
        }
        res = sf_py_ref(args->items[0]);
        break;
    default: s = BAD("storage classes cannot be called"); break;
    }
    if (!s) {
        s = push(m, res);
        res = NULL;
    }
done:
    sf_py_free(args);
    sf_py_free(fn);
    sf_py_free(res);
    return s;
}

/* BINPERSID: ('storage', StorageClass, key, location, numel) → storage node. */
static sf_status op_persid(vm *m) {
    sf_py *pid = pop(m);
    sf_status s = SF_OK;
    if (!pid) return BAD("stack underflow at BINPERSID");
    if (pid->type != SF_PY_TUPLE || pid->n != 5 || pid->items[0]->type != SF_PY_STR ||
        strcmp(pid->items[0]->s, "storage") != 0 || pid->items[1]->type != PY_GLOBAL ||
        pid->items[1]->i != G_STORAGE || pid->items[2]->type != SF_PY_STR || pid->items[4]->type != SF_PY_INT ||
        pid->items[4]->i < 0) {
        s = BAD("persistent id is not ('storage', torch.<T>Storage, key, location, numel)");
        goto done;
    }
    sf_dtype dt = pid->items[1]->t.dtype;
    const char *key = pid->items[2]->s;
    int64_t numel = pid->items[4]->i;
    const void *data = m->storage ? m->storage(m->ctx, key, dt, numel, m->err) : NULL;
    if (!data && numel > 0) {
        if (!m->storage) s = BAD("no storage resolver for storage '%s'", key);
        else s = SF_E_FORMAT; /* resolver filled err */
        goto done;
    }
    sf_py *st = py_new(PY_STORAGE);
    if (!st || !(st->s = strdup(key))) {
        free(st);
        s = sf_fail(m->err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    st->t.dtype = dt;
    st->t.data = (void *)data;
    st->i = numel;
    s = push(m, st);
done:
    sf_py_free(pid);
    return s;
}

static sf_status memo_put(vm *m, uint64_t idx) {
    sf_py *t = top(m);
    if (!t) return BAD("memo put with an empty stack");
    /* Picklers number memo entries densely, so an index can never exceed the stream length. */
    if (idx >= m->len) return BAD("memo index %llu out of range", (unsigned long long)idx);
    if (idx >= m->memo_n) {
        size_t nn = m->memo_n ? m->memo_n : 64;
        while (nn <= idx) nn *= 2;
        if (nn > m->len) nn = m->len;
        sf_py **nm = realloc(m->memo, nn * sizeof *nm);
        if (!nm) return sf_fail(m->err, SF_E_NOMEM, "out of memory");
        memset(nm + m->memo_n, 0, (nn - m->memo_n) * sizeof *nm);
        m->memo = nm;
        m->memo_n = nn;
    }
    if (m->memo[idx]) sf_py_free(m->memo[idx]);
    else m->memo_count++;
    m->memo[idx] = sf_py_ref(t);
    return SF_OK;
}

static sf_status memo_get(vm *m, uint64_t idx) {
    if (idx >= m->memo_n || !m->memo[idx]) return BAD("memo index %llu out of range", (unsigned long long)idx);
    return push(m, sf_py_ref(m->memo[idx]));
}

/* Pop everything above the innermost mark and the mark itself into a new tuple/list. */
static sf_status collect(vm *m, sf_py_type type, sf_py **out) {
    if (!m->mn) return BAD("no MARK on the stack");
    size_t base = m->marks[--m->mn];
    sf_py *c = py_new(type);
    if (!c) return sf_fail(m->err, SF_E_NOMEM, "out of memory");
    size_t k = m->sn - base;
    if (k) {
        c->items = malloc(k * sizeof *c->items);
        if (!c->items) {
            free(c);
            return sf_fail(m->err, SF_E_NOMEM, "out of memory");
        }
        memcpy(c->items, m->stack + base, k * sizeof *c->items);
        c->n = c->cap = k;
        for (size_t i = 0; i < k; i++)
            if (is_internal(c->items[i])) c->i = 1;
    }
    m->sn = base;
    *out = c;
    return SF_OK;
}

static sf_status tuple_n(vm *m, size_t k) {
    if (m->sn < floor_(m) + k) return BAD("stack underflow at TUPLE%zu", k);
    sf_py *c = py_new(SF_PY_TUPLE);
    if (!c || (k && !(c->items = malloc(k * sizeof *c->items)))) {
        free(c);
        return sf_fail(m->err, SF_E_NOMEM, "out of memory");
    }
    memcpy(c->items, m->stack + m->sn - k, k * sizeof *c->items);
    c->n = c->cap = k;
    for (size_t i = 0; i < k; i++)
        if (is_internal(c->items[i])) c->i = 1;
    m->sn -= k;
    return push(m, c);
}

static sf_status op_string(vm *m, uint64_t n) {
    if (n > m->len - m->pos) return BAD("string length %llu beyond the end of the stream", (unsigned long long)n);
    /* str in Python 3: UTF-8 (BINSTRING decodes as ASCII in torch.load); keys become names */
    if (!sf_utf8_valid((const char *)m->p + m->pos, (size_t)n, 1)) return BAD("string is not UTF-8");
    if (memchr(m->p + m->pos, 0, (size_t)n)) return BAD("string contains NUL");
    sf_py *s = py_strn((const char *)m->p + m->pos, (size_t)n);
    m->pos += (size_t)n;
    return push(m, s);
}

static sf_status run(vm *m, sf_py **out) {
    sf_status s = SF_OK;
    while (m->pos < m->len) {
        size_t at = m->pos;
        uint8_t op = m->p[m->pos++];
        const uint8_t *a = m->p + m->pos;
        switch (op) {
        case 0x80: /* PROTO */
            if (!need(m, 1)) goto trunc;
            if (a[0] > 5) return BAD("unsupported protocol %u", a[0]);
            m->pos += 1;
            break;
        case 0x95: { /* FRAME: the next n bytes form one frame; it must lie inside the stream */
            if (!need(m, 8)) goto trunc;
            uint64_t fl = rd_le(a, 8);
            m->pos += 8;
            if (fl > m->len - m->pos)
                return BAD("frame of %llu bytes beyond the end of the %zu-byte stream", (unsigned long long)fl, m->len);
            break;
        }
        case '.': { /* STOP */
            sf_py *r = pop(m);
            if (!r) return BAD("stack underflow at STOP");
            if (is_internal(r)) {
                sf_py_free(r);
                return BAD("result is a bare global or storage");
            }
            *out = r;
            return SF_OK;
        }
        case '(': /* MARK */
            if (m->mn == m->mcap) {
                size_t nc = m->mcap ? 2 * m->mcap : 32;
                size_t *nm = realloc(m->marks, nc * sizeof *nm);
                if (!nm) return sf_fail(m->err, SF_E_NOMEM, "out of memory");
                m->marks = nm;
                m->mcap = nc;
            }
            m->marks[m->mn++] = m->sn;
            break;
        case '}': s = push(m, sf_py_dict()); break;
        case ']': s = push(m, sf_py_list()); break;
        case ')': s = push(m, sf_py_tuple()); break;
        case 'N': s = push(m, sf_py_none()); break;
        case 0x88: s = push(m, sf_py_bool(1)); break;
        case 0x89: s = push(m, sf_py_bool(0)); break;
        case 'K':
            if (!need(m, 1)) goto trunc;
            m->pos += 1;
            s = push(m, sf_py_int(a[0]));
            break;
        case 'M':
            if (!need(m, 2)) goto trunc;
            m->pos += 2;
            s = push(m, sf_py_int((int64_t)rd_le(a, 2)));
            break;
        case 'J':
            if (!need(m, 4)) goto trunc;
            m->pos += 4;
            s = push(m, sf_py_int((int32_t)(uint32_t)rd_le(a, 4)));
            break;
        case 0x8a: { /* LONG1 */
            if (!need(m, 1)) goto trunc;
            unsigned n = a[0];
            if (n > 8) return sf_fail(m->err, SF_E_UNSUPPORTED, "pickle: integer of %u bytes is too large", n);
            if (!need(m, 1 + n)) goto trunc;
            uint64_t v = rd_le(a + 1, (int)n);
            if (n && n < 8 && (a[n] & 0x80)) v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
            m->pos += 1 + n;
            s = push(m, sf_py_int((int64_t)v));
            break;
        }
        case 'G': { /* BINFLOAT, big-endian */
            if (!need(m, 8)) goto trunc;
            uint64_t v = 0;
            for (int i = 0; i < 8; i++) v = (v << 8) | a[i];
            double d;
            memcpy(&d, &v, 8);
            m->pos += 8;
            s = push(m, sf_py_float(d));
            break;
        }
        case 'X': /* BINUNICODE */
        case 'T': /* BINSTRING */
            if (!need(m, 4)) goto trunc;
            m->pos += 4;
            if (op == 'T' && (a[3] & 0x80)) return BAD("negative string length");
            s = op_string(m, rd_le(a, 4));
            break;
        case 0x8c: /* SHORT_BINUNICODE */
        case 'U':  /* SHORT_BINSTRING */
            if (!need(m, 1)) goto trunc;
            m->pos += 1;
            s = op_string(m, a[0]);
            break;
        case 0x8d: /* BINUNICODE8 */
            if (!need(m, 8)) goto trunc;
            m->pos += 8;
            s = op_string(m, rd_le(a, 8));
            break;
        case 'q':
            if (!need(m, 1)) goto trunc;
            m->pos += 1;
            s = memo_put(m, a[0]);
            break;
        case 'r':
            if (!need(m, 4)) goto trunc;
            m->pos += 4;
            s = memo_put(m, rd_le(a, 4));
            break;
        case 0x94: /* MEMOIZE: index = number of memo entries so far */
            s = memo_put(m, m->memo_count);
            break;
        case 'h':
            if (!need(m, 1)) goto trunc;
            m->pos += 1;
            s = memo_get(m, a[0]);
            break;
        case 'j':
            if (!need(m, 4)) goto trunc;
            m->pos += 4;
            s = memo_get(m, rd_le(a, 4));
            break;
        case 'c': { /* GLOBAL "module\nname\n" */
            const uint8_t *e1 = memchr(a, '\n', m->len - m->pos);
            if (!e1) goto trunc;
            const uint8_t *b = e1 + 1;
            const uint8_t *e2 = memchr(b, '\n', (size_t)(m->p + m->len - b));
            if (!e2) goto trunc;
            m->pos = (size_t)(e2 + 1 - m->p);
            s = op_global(m, (const char *)a, (size_t)(e1 - a), (const char *)b, (size_t)(e2 - b));
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            sf_py *name = pop(m), *mod = pop(m);
            if (!name || !mod || name->type != SF_PY_STR || mod->type != SF_PY_STR)
                s = BAD("STACK_GLOBAL needs two strings");
            else
                s = op_global(m, mod->s, mod->n, name->s, name->n);
            sf_py_free(name);
            sf_py_free(mod);
            break;
        }
        case 't': {
            sf_py *c;
            if (!(s = collect(m, SF_PY_TUPLE, &c))) s = push(m, c);
            break;
        }
        case 'l': {
            sf_py *c;
            if ((s = collect(m, SF_PY_LIST, &c))) break;
            if (c->i) {
                sf_py_free(c);
                return BAD("a global or storage cannot be stored in a list or dict");
            }
            s = push(m, c);
            break;
        }
        case 'd': { /* DICT: MARK k v ... DICT */
            sf_py *c, *d = sf_py_dict();
            if (!d) return sf_fail(m->err, SF_E_NOMEM, "out of memory");
            if ((s = collect(m, SF_PY_TUPLE, &c))) {
                sf_py_free(d);
                break;
            }
            if (c->n % 2) s = BAD("DICT with an odd number of items");
            for (size_t i = 0; !s && i + 1 < c->n; i += 2)
                s = dict_insert(m, d, sf_py_ref(c->items[i]), sf_py_ref(c->items[i + 1]));
            sf_py_free(c);
            if (s) sf_py_free(d);
            else s = push(m, d);
            break;
        }
        case 0x85: s = tuple_n(m, 1); break;
        case 0x86: s = tuple_n(m, 2); break;
        case 0x87: s = tuple_n(m, 3); break;
        case 'a': { /* APPEND */
            sf_py *v = pop(m), *l = top(m);
            if (!v || !l) {
                sf_py_free(v);
                return BAD("stack underflow at APPEND");
            }
            if (l->type != SF_PY_LIST) {
                sf_py_free(v);
                return BAD("APPEND to something that is not a list");
            }
            s = list_insert(m, l, v);
            break;
        }
        case 'e':   /* APPENDS */
        case 'u': { /* SETITEMS */
            sf_py *c;
            if ((s = collect(m, SF_PY_TUPLE, &c))) break;
            sf_py *target = top(m);
            if (!target || target->type != (op == 'e' ? SF_PY_LIST : SF_PY_DICT)) {
                sf_py_free(c);
                return BAD("%s on something that is not a %s", op == 'e' ? "APPENDS" : "SETITEMS",
                           op == 'e' ? "list" : "dict");
            }
            if (op == 'u' && c->n % 2) s = BAD("SETITEMS with an odd number of items");
            for (size_t i = 0; !s && i < c->n; i += (op == 'e' ? 1 : 2))
                s = op == 'e' ? list_insert(m, target, sf_py_ref(c->items[i]))
                              : dict_insert(m, target, sf_py_ref(c->items[i]), sf_py_ref(c->items[i + 1]));
            sf_py_free(c);
            break;
        }
        case 's': { /* SETITEM */
            sf_py *v = pop(m), *k = pop(m), *d = top(m);
            if (!v || !k || !d || d->type != SF_PY_DICT) {
                sf_py_free(v);
                sf_py_free(k);
                return BAD("SETITEM needs a dict, a key and a value");
            }
            s = dict_insert(m, d, k, v);
            break;
        }
        case 'R': s = op_reduce(m); break;
        case 'Q': s = op_persid(m); break;
        case 'b': { /* BUILD: only the OrderedDict _metadata attribute; dropped */
            sf_py *st = pop(m), *t = top(m);
            if (!st || !t) {
                sf_py_free(st);
                return BAD("stack underflow at BUILD");
            }
            sf_py_free(st);
            if (t->type != SF_PY_DICT) return BAD("BUILD on something that is not an OrderedDict");
            break;
        }
        case '0': { /* POP */
            if (m->sn > floor_(m)) sf_py_free(pop(m));
            else if (m->mn) m->mn--; /* popping a mark */
            else return BAD("stack underflow at POP");
            break;
        }
        case '2': { /* DUP */
            sf_py *t = top(m);
            if (!t) return BAD("stack underflow at DUP");
            s = push(m, sf_py_ref(t));
            break;
        }
        default: {
            unsigned c = op;
            return BAD("opcode 0x%02x%s%c%s at byte %zu is not allowed", c, c >= 0x20 && c < 0x7f ? " ('" : "",
                       c >= 0x20 && c < 0x7f ? (char)c : ' ', c >= 0x20 && c < 0x7f ? "')" : "", at);
        }
        }
        if (s) return s;
    }
trunc:
    return BAD("truncated (no STOP before the end of %zu bytes)", m->len);
}

sf_status sf_pickle_load(const uint8_t *buf, size_t len, sf_pickle_storage_fn storage, void *ctx, sf_py **out,
                         sf_err *err) {
    vm m;
    memset(&m, 0, sizeof m);
    m.p = buf;
    m.len = len;
    m.storage = storage;
    m.ctx = ctx;
    m.err = err;
    m.work_left = 64 * (uint64_t)len + (1u << 20);
    *out = NULL;
    sf_status s;
    m.scratch_cap = 64;
    m.scratch = malloc(m.scratch_cap * sizeof *m.scratch);
    if (!m.scratch) return sf_fail(err, SF_E_NOMEM, "out of memory");
    if (!buf && len) s = sf_fail(err, SF_E_ARG, "pickle: no data");
    else s = run(&m, out);
    for (size_t i = 0; i < m.sn; i++) sf_py_free(m.stack[i]);
    for (size_t i = 0; i < m.memo_n; i++) sf_py_free(m.memo[i]);
    free(m.stack);
    free(m.marks);
    free(m.memo);
    free(m.scratch);
    return s;
}
