/* wire_tfile.c — wire streams as tensor containers (wire_tfile.h). */
#define _POSIX_C_SOURCE 200809L
#include "wire_tfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sf_status sf_wire_gather_init(sf_wire_gather *g, const char *path, sf_err *err) {
    memset(g, 0, sizeof *g);
    if (!(g->tf = sf_tfile_new_empty(path))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    return SF_OK;
}

void sf_wire_gather_free(sf_wire_gather *g) { sf_tfile_destroy(&g->tf); }

/* tf's metadata "<tname>.<key>" = v (copied). */
static sf_status add_meta_str(sf_tfile *tf, const char *tname, const char *ekey, const char *v, sf_err *err) {
    char **nk = realloc(tf->meta_keys, (tf->n_meta + 1) * sizeof *nk);
    if (!nk) return sf_fail(err, SF_E_NOMEM, "out of memory");
    tf->meta_keys = nk;
    char **nv = realloc(tf->meta_vals, (tf->n_meta + 1) * sizeof *nv);
    if (!nv) return sf_fail(err, SF_E_NOMEM, "out of memory");
    tf->meta_vals = nv;
    size_t kl = strlen(tname) + strlen(ekey) + 2;
    char *key = malloc(kl), *vd = strdup(v ? v : "");
    if (!key || !vd) {
        free(key), free(vd);
        return sf_fail(err, SF_E_NOMEM, "out of memory");
    }
    snprintf(key, kl, "%s.%s", tname, ekey);
    tf->meta_keys[tf->n_meta] = key;
    tf->meta_vals[tf->n_meta] = vd;
    tf->n_meta++;
    return SF_OK;
}

/* tf's metadata "<tname>.<key>" for m's meta entry e, as text. */
static sf_status add_meta(sf_tfile *tf, const char *tname, const sf_wire_msg *m, const sf_wire_meta *e,
                          sf_err *err) {
    char val[64], *list = NULL; /* list: an int array's text, every element (up to SF_WIRE_ARENA / 8 of them) */
    const char *v = val;
    size_t n = 0;
    switch (e->kind) {
    case SF_META_INT: snprintf(val, sizeof val, "%lld", (long long)e->i); break;
    case SF_META_BOOL: v = e->i ? "true" : "false"; break;
    case SF_META_FLOAT: snprintf(val, sizeof val, "%.17g", e->f); break;
    case SF_META_STR: v = sf_wire_meta_str(m, e->key); break;
    case SF_META_INTS: {
        const int64_t *a = sf_wire_meta_ints(m, e->key, &n);
        size_t cap = 3 + 22 * n, k = 1; /* "[", ", " and 20 characters each, "]", NUL */
        if (!(v = list = malloc(cap))) return sf_fail(err, SF_E_NOMEM, "out of memory");
        list[0] = '[';
        for (size_t i = 0; i < n; i++) k += (size_t)snprintf(list + k, cap - k, i ? ", %lld" : "%lld", (long long)a[i]);
        snprintf(list + k, cap - k, "]");
        break;
    }
    default: return SF_OK;
    }
    sf_status s = add_meta_str(tf, tname, e->key, v, err);
    free(list);
    return s;
}

/* 1 when m's tensor can be called name: no tensor has the name, it is not safetensors' own
 * "__metadata__", and none of its meta keys "<name>.<key>" is taken. Another tensor's key equals one
 * only when that tensor's name is the key's part before one of its dots: looked up only then. */
static int name_free(const sf_tfile *tf, const char *name, const sf_wire_msg *m) {
    if (!strcmp(name, "__metadata__") || sf_tfile_find(tf, name)) return 0;
    for (int i = 0; i < m->n_meta; i++) {
        char key[256]; /* a name (< 160) and a meta key (< 64) */
        snprintf(key, sizeof key, "%s.%s", name, m->meta[i].key);
        for (char *dot = strchr(key, '.'); dot; dot = strchr(dot + 1, '.')) {
            *dot = 0;
            int other = strcmp(key, name) != 0 && sf_tfile_find(tf, key);
            *dot = '.';
            if (other && sf_tfile_meta(tf, key)) return 0;
        }
    }
    return 1;
}

sf_status sf_wire_gather_add(sf_wire_gather *g, const sf_wire_msg *m, const void *payload, sf_err *err) {
    if (m->type != SF_WIRE_TENSOR) return SF_OK;
    const char *base = m->name[0] ? m->name : "tensor";
    char name[160];
    size_t k = strcmp(base, g->prev) == 0 ? g->prev_k + 1 : 0;
    for (;; k++) { /* the first free of base, base#1, base#2, ... */
        if (k) snprintf(name, sizeof name, "%s#%zu", base, k);
        else snprintf(name, sizeof name, "%s", base);
        if (name_free(g->tf, name, m)) break;
    }
    snprintf(g->prev, sizeof g->prev, "%s", base);
    g->prev_k = k;
    sf_tensor t;
    sf_status s = sf_tensor_alloc(&t, m->dtype, m->ndim, m->shape, err);
    if (s) return s;
    if (sf_wire_msg_nbytes(m)) memcpy(t.data, payload, sf_wire_msg_nbytes(m));
    if ((s = sf_tfile_add(g->tf, name, &t, err))) {
        sf_tensor_free(&t);
        return s;
    }
    for (int i = 0; i < m->n_meta && !s; i++) s = add_meta(g->tf, name, m, &m->meta[i], err);
    return s;
}

sf_status sf_wire_read_tfile(const char *url, sf_tfile **out, sf_err *err) {
    sf_wire *r = NULL;
    sf_wire_gather g;
    sf_wire_msg *m = malloc(sizeof *m);
    *out = NULL;
    sf_status s = m ? sf_wire_gather_init(&g, url, err) : sf_fail(err, SF_E_NOMEM, "out of memory");
    if (s) {
        free(m);
        return s;
    }
    if (!(s = sf_wire_open_reader(url, &r, err))) {
        for (;;) {
            const void *payload = NULL;
            if ((s = sf_wire_recv(r, m, &payload, err)) || m->type == SF_WIRE_END) break;
            if ((s = sf_wire_gather_add(&g, m, payload, err))) break;
        }
        sf_status c = sf_wire_close(&r, s ? NULL : err);
        if (!s) s = c;
    }
    free(m);
    if (!s) *out = g.tf, g.tf = NULL;
    sf_wire_gather_free(&g);
    return s;
}

sf_status sf_tfile_write_safetensors(const sf_tfile *tf, const sf_tensor_entry *entries, size_t n, const char *path,
                                     sf_err *err) {
    const char **meta = NULL;
    size_t nm = tf->kind != SF_TFILE_TORCH ? tf->n_meta : 0;
    if (nm && !(meta = calloc(2 * nm, sizeof *meta))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    for (size_t i = 0; i < nm; i++) meta[2 * i] = tf->meta_keys[i], meta[2 * i + 1] = tf->meta_vals[i];
    sf_status s = sf_safetensors_write(path, entries, n, meta, nm, err);
    free(meta);
    return s;
}
