/* sf-tensor — inspect, compare and convert tensor files (.safetensors, torch .pt/.pth, wire streams).
 *   sf-tensor ls FILE                       name, dtype, shape per line (nested keys joined by '/')
 *   sf-tensor cat FILE NAME [--limit N]     the values of one tensor
 *   sf-tensor diff A B [--rtol R] [--atol A] per-tensor max abs/rel error and NMSE; exit 1 on mismatch
 *   sf-tensor convert IN OUT [--select KEY] by OUT's extension; --select takes a sub-dict
 *   sf-tensor tree FILE                     a .pt/.pth file's whole object tree (dicts, lists,
 *                                           scalars, strings, tensors) — e.g. a taps file's layout
 * FILE may also be a wire byte stream (starts with "SFT1", common/wire.h) or "-" (a wire stream
 * on stdin): its tensor messages are read into memory in stream order; a repeated name gets
 * "#<k>" for its k-th repeat (latents, latents#1, latents#2, ...); message meta becomes string
 * metadata "<tensor>.<key>" (kept by convert to .safetensors). The stream must end with `end`.
 * The reference has no such tool (users run torch.load / safetensors in Python); this is the
 * command-line view of common/tfile.h + pickle.h + wire.h. Tested by tests/bats/sf-tensor.bats. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "pickle.h"
#include "tfile.h"
#include "wire.h"
#include "wire_tfile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *prog = "sf-tensor";
static const char *synopsis = "ls FILE | cat FILE NAME [--limit N] | diff A B [--rtol R --atol A] | "
                              "convert IN OUT [--select KEY] | tree FILE";

static const sf_opt opts[] = {
    {"limit", 'n', SF_ARG_VALUE, "N\tcat: print at most N values"},
    {"rtol", 0, SF_ARG_VALUE, "R\tdiff: relative tolerance (default 0)"},
    {"atol", 0, SF_ARG_VALUE, "A\tdiff: absolute tolerance (default 0: values must be equal)"},
    {"select", 0, SF_ARG_VALUE, "KEY\tconvert: only the sub-dict KEY (e.g. generator_ema), prefix stripped"},
    {"quiet", 'q', SF_ARG_FLAG, "diff: print only mismatching tensors and the summary"},
    SF_OPTS_STD,
    {0},
};

static void usage_die(const char *msg) {
    sf_err e;
    snprintf(e.msg, sizeof e.msg, "%s (usage: sf-tensor %s)", msg, synopsis);
    sf_die(prog, SF_E_ARG, &e);
}

static int has_ext(const char *path, const char *ext) {
    size_t a = strlen(path), b = strlen(ext);
    return a > b && strcmp(path + a - b, ext) == 0;
}

/* "-" or a file that starts with the wire magic. */
static int is_wire_stream(const char *path) {
    if (strcmp(path, "-") == 0) return 1;
    int fd;
    struct stat sb;
    sf_err e;
    if (sf_open_input(path, SF_IN_STREAM, 0, &fd, &sb, &e)) return 0; /* sf_tfile_open says why */
    char b[4];
    int ok = !S_ISREG(sb.st_mode) || (read(fd, b, 4) == 4 && memcmp(b, SF_WIRE_MAGIC, 4) == 0); /* a pipe: a stream */
    close(fd);
    return ok;
}

static sf_tfile *open_or_die(const char *path) {
    sf_tfile *tf = NULL;
    sf_err err = {{0}};
    sf_status s = is_wire_stream(path) ? sf_wire_read_tfile(path, &tf, &err) : sf_tfile_open(path, &tf, &err);
    if (s) sf_die(prog, s, &err);
    return tf;
}

static int cmd_ls(const char *path) {
    sf_tfile *tf = open_or_die(path);
    char shape[256];
    for (size_t i = 0; i < tf->n; i++)
        printf("%s\t%s\t%s\n", tf->entries[i].name, sf_dtype_name(tf->entries[i].t.dtype),
               sf_shape_str(&tf->entries[i].t, shape, sizeof shape));
    sf_tfile_destroy(&tf);
    return 0;
}

/* One line per node: "path: type value" with tensors as "dtype [shape]"; strings quoted. */
static void tree_print(const sf_py *p, char *path, size_t len, size_t cap, int depth) {
    char shape[256];
    if (depth > 64) {
        printf("%s: ...\n", len ? path : "/");
        return;
    }
    /* keys and strings come from the file: control characters escaped (no terminal escapes) */
    char at_buf[4096], str[1024];
    sf_escape_ctl(at_buf, sizeof at_buf, len ? path : "/");
    const char *at = at_buf;
    switch (p->type) {
    case SF_PY_NONE: printf("%s: None\n", at); return;
    case SF_PY_BOOL: printf("%s: bool %s\n", at, p->i ? "True" : "False"); return;
    case SF_PY_INT: printf("%s: int %lld\n", at, (long long)p->i); return;
    case SF_PY_FLOAT: printf("%s: float %.17g\n", at, p->f); return;
    case SF_PY_STR: sf_escape_ctl(str, sizeof str, p->s); printf("%s: str '%s'\n", at, str); return;
    case SF_PY_TENSOR: printf("%s: tensor %s %s\n", at, sf_dtype_name(p->t.dtype), sf_shape_str(&p->t, shape, sizeof shape)); return;
    case SF_PY_LIST:
    case SF_PY_TUPLE:
    case SF_PY_DICT: {
        int dict = p->type == SF_PY_DICT;
        printf("%s: %s of %zu\n", at, dict ? "dict" : p->type == SF_PY_LIST ? "list" : "tuple", p->n);
        for (size_t i = 0; i < p->n; i++) {
            const sf_py *key = dict ? p->items[2 * i] : NULL, *val = dict ? p->items[2 * i + 1] : p->items[i];
            char k[64];
            const char *ks = k;
            if (dict && key->type == SF_PY_STR) ks = key->s;
            else if (dict && key->type == SF_PY_INT) snprintf(k, sizeof k, "%lld", (long long)key->i);
            else if (dict) snprintf(k, sizeof k, "<key %zu>", i);
            else snprintf(k, sizeof k, "%zu", i);
            size_t kl = strlen(ks);
            if (len + 1 + kl + 1 > cap) {
                printf("%s/...: (path too long)\n", at);
                continue;
            }
            path[len] = '/';
            memcpy(path + len + 1, ks, kl + 1);
            tree_print(val, path, len + 1 + kl, cap, depth + 1);
            path[len] = 0;
        }
        return;
    }
    }
}

static int cmd_tree(const char *path) {
    sf_tfile *tf = open_or_die(path);
    if (!tf->root) {
        /* flat containers: the tensors are the whole tree */
        sf_tfile_destroy(&tf);
        return cmd_ls(path);
    }
    char buf[4096] = "";
    tree_print(tf->root, buf, 0, sizeof buf, 0);
    sf_tfile_destroy(&tf);
    return 0;
}

static int is_int_dtype(sf_dtype d) {
    return d == SF_I64 || d == SF_I32 || d == SF_I16 || d == SF_I8 || d == SF_U8 || d == SF_BOOL;
}

static int cmd_cat(const char *path, const char *name, long limit) {
    sf_tfile *tf = open_or_die(path);
    const sf_tensor *t = sf_tfile_get(tf, name);
    if (!t) {
        sf_err e;
        snprintf(e.msg, sizeof e.msg, "%s: no tensor named '%s' (see sf-tensor ls)", path, name);
        sf_tfile_destroy(&tf);
        sf_die(prog, SF_E_NOTFOUND, &e);
    }
    char shape[256];
    int64_t n = sf_tensor_numel(t);
    printf("# %s %s %s\n", name, sf_dtype_name(t->dtype), sf_shape_str(t, shape, sizeof shape));
    if (limit >= 0 && n > limit) n = limit;
    for (int64_t i = 0; i < n; i++) {
        double v = sf_tensor_get(t, i);
        if (t->dtype == SF_I64) { /* exact beyond 2^53 */
            int64_t off = 0, rem = i;
            for (int d = t->ndim - 1; d >= 0; d--) {
                off += (rem % t->shape[d]) * t->stride[d];
                rem /= t->shape[d];
            }
            int64_t x;
            memcpy(&x, (const char *)t->data + off * 8, 8);
            printf("%lld\n", (long long)x);
        } else if (is_int_dtype(t->dtype)) {
            printf("%.0f\n", v);
        } else {
            printf("%.9g\n", v);
        }
    }
    sf_tfile_destroy(&tf);
    return 0;
}

typedef struct diffstat {
    double max_abs, max_rel, se, sr;
    int64_t bad;
} diffstat;

static void diff_tensor(const sf_tensor *a, const sf_tensor *b, double rtol, double atol, diffstat *d) {
    memset(d, 0, sizeof *d);
    int64_t n = sf_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) {
        double x = sf_tensor_get(a, i), y = sf_tensor_get(b, i);
        if (isnan(x) || isnan(y)) {
            if (!(isnan(x) && isnan(y))) {
                d->bad++;
                d->max_abs = INFINITY;
            }
            continue;
        }
        if (x == y) { /* also equal infinities */
            d->sr += y * y;
            continue;
        }
        double e = fabs(x - y), r = y != 0 ? e / fabs(y) : INFINITY;
        if (isinf(x) || isinf(y)) e = INFINITY;
        d->max_abs = e > d->max_abs ? e : d->max_abs;
        d->max_rel = r > d->max_rel ? r : d->max_rel;
        d->se += e * e;
        d->sr += y * y;
        if (!(e <= atol + rtol * fabs(y))) d->bad++;
    }
}

static int cmd_diff(const char *pa, const char *pb, double rtol, double atol, int quiet) {
    sf_tfile *a = open_or_die(pa), *b = open_or_die(pb);
    size_t mismatched = 0, missing = 0, extra = 0, compared = 0;
    char s1[256], s2[256];
    for (size_t i = 0; i < a->n; i++) {
        const sf_tensor_entry *e = &a->entries[i];
        const sf_tensor *tb = sf_tfile_get(b, e->name);
        if (!tb) {
            printf("%s\tonly in %s\n", e->name, pa);
            missing++;
            continue;
        }
        compared++;
        if (e->t.ndim != tb->ndim || !sf_shape_eq(&e->t, tb->ndim, tb->shape)) {
            printf("%s\tshape %s vs %s\tMISMATCH\n", e->name, sf_shape_str(&e->t, s1, sizeof s1),
                   sf_shape_str(tb, s2, sizeof s2));
            mismatched++;
            continue;
        }
        diffstat d;
        diff_tensor(&e->t, tb, rtol, atol, &d);
        double nmse = d.sr > 0 ? d.se / d.sr : d.se;
        int bad = d.bad > 0;
        mismatched += bad;
        if (!quiet || bad)
            printf("%s\tmax_abs %.6g\tmax_rel %.6g\tnmse %.6g%s%s\n", e->name, d.max_abs, d.max_rel, nmse,
                   e->t.dtype != tb->dtype ? "\tdtype differs" : "", bad ? "\tMISMATCH" : "\tok");
    }
    for (size_t i = 0; i < b->n; i++)
        if (!sf_tfile_find(a, b->entries[i].name)) {
            printf("%s\tonly in %s\n", b->entries[i].name, pb);
            extra++;
        }
    printf("# %zu compared, %zu mismatched, %zu only in A, %zu only in B (rtol %g, atol %g)\n", compared, mismatched,
           missing, extra, rtol, atol);
    sf_tfile_destroy(&a);
    sf_tfile_destroy(&b);
    return mismatched || missing || extra ? 1 : 0;
}

/* Rebuild nested dicts from '/'-joined names (the inverse of the reader's flattening). */
static sf_status tree_add(sf_py *root, const char *name, const sf_tensor *t, sf_err *err) {
    sf_py *d = root;
    const char *p = name;
    for (;;) {
        const char *slash = strchr(p, '/');
        if (!slash) break;
        char key[1024];
        size_t kl = (size_t)(slash - p);
        if (kl >= sizeof key) return sf_fail(err, SF_E_ARG, "name component too long in '%s'", name);
        memcpy(key, p, kl);
        key[kl] = 0;
        sf_py *c = sf_py_dict_get(d, key);
        if (!c) {
            if (!sf_py_dict_set(d, key, sf_py_dict())) return sf_fail(err, SF_E_NOMEM, "out of memory");
            c = sf_py_dict_get(d, key);
        } else if (c->type != SF_PY_DICT) {
            return sf_fail(err, SF_E_ARG, "'%s' is both a tensor and a prefix of '%s'", key, name);
        }
        d = c;
        p = slash + 1;
    }
    if (sf_py_dict_get(d, p)) return sf_fail(err, SF_E_ARG, "duplicate or conflicting name '%s'", name);
    sf_tensor v = *t;
    v.owned = 0; /* borrowed from the input mapping */
    if (!sf_py_dict_set(d, p, sf_py_tensor(&v))) return sf_fail(err, SF_E_NOMEM, "out of memory");
    return SF_OK;
}

static int cmd_convert(const char *in, const char *out, const char *select) {
    int to_st = has_ext(out, ".safetensors"), to_pt = has_ext(out, ".pt") || has_ext(out, ".pth");
    if (!to_st && !to_pt) usage_die("convert: OUT must end in .safetensors, .pt or .pth");
    sf_tfile *tf = open_or_die(in);
    sf_err err = {{0}};
    sf_status s = SF_OK;
    sf_tensor_entry *sel = NULL;
    sf_py *tree = NULL;
    size_t ns = 0, pl = select ? strlen(select) : 0;
    sel = calloc(tf->n ? tf->n : 1, sizeof *sel);
    if (!sel) {
        s = sf_fail(&err, SF_E_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < tf->n; i++) {
        const char *nm = tf->entries[i].name;
        if (select) {
            if (strncmp(nm, select, pl) != 0 || nm[pl] != '/') continue;
            nm += pl + 1;
        }
        sel[ns].name = (char *)nm;
        sel[ns].t = tf->entries[i].t;
        ns++;
    }
    if (select && ns == 0) {
        s = sf_fail(&err, SF_E_NOTFOUND, "%s: no tensors under '%s/' (see sf-tensor ls)", in, select);
        goto fail;
    }
    if (to_st) {
        s = sf_tfile_write_safetensors(tf, sel, ns, out, &err);
    } else if (tf->kind == SF_TFILE_TORCH && !select && tf->root) {
        s = sf_torch_write(out, tf->root, &err); /* keeps non-tensor values and list/tuple structure */
    } else {
        tree = sf_py_dict();
        if (!tree) {
            s = sf_fail(&err, SF_E_NOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < ns && !s; i++) s = tree_add(tree, sel[i].name, &sel[i].t, &err);
        if (!s) s = sf_torch_write(out, tree, &err);
    }
fail:
    sf_py_free(tree);
    free(sel);
    sf_tfile_destroy(&tf);
    if (s) sf_die(prog, s, &err);
    return 0;
}

int main(int argc, char **argv) {
    sf_args a;
    sf_err err = {{0}};
    sf_status s = SF_OK;
    if (sf_args_main(argc, argv, prog, synopsis, opts, &a)) return 0;
    const char **pos = NULL;
    int np = sf_args_positional(&a, &pos);
    if (np < 1) usage_die("missing command");
    const char *cmd = pos[0];
    int rc;
    if (strcmp(cmd, "ls") == 0) {
        if (np != 2) usage_die("ls takes one FILE");
        rc = cmd_ls(pos[1]);
    } else if (strcmp(cmd, "cat") == 0) {
        if (np != 3) usage_die("cat takes FILE NAME");
        long limit = -1;
        const char *l = sf_args_get(&a, opts, "limit");
        if (l && (s = sf_arg_long("limit", l, 0, 0x7fffffffL, &limit, &err))) sf_die(prog, s, &err);
        rc = cmd_cat(pos[1], pos[2], limit);
    } else if (strcmp(cmd, "diff") == 0) {
        if (np != 3) usage_die("diff takes two files");
        if (strcmp(pos[1], "-") == 0 && strcmp(pos[2], "-") == 0) usage_die("diff: only one of A and B can be '-'");
        double rtol = 0, atol = 0;
        const char *r = sf_args_get(&a, opts, "rtol"), *t = sf_args_get(&a, opts, "atol");
        if (r && (s = sf_arg_double("rtol", r, &rtol, &err))) sf_die(prog, s, &err);
        if (t && (s = sf_arg_double("atol", t, &atol, &err))) sf_die(prog, s, &err);
        if (!(rtol >= 0) || !(atol >= 0)) usage_die("--rtol/--atol must be >= 0");
        rc = cmd_diff(pos[1], pos[2], rtol, atol, sf_args_has(&a, opts, "quiet"));
    } else if (strcmp(cmd, "tree") == 0) {
        if (np != 2) usage_die("tree takes one FILE");
        rc = cmd_tree(pos[1]);
    } else if (strcmp(cmd, "convert") == 0) {
        if (np != 3) usage_die("convert takes IN OUT");
        rc = cmd_convert(pos[1], pos[2], sf_args_get(&a, opts, "select"));
    } else {
        char m[300];
        snprintf(m, sizeof m, "unknown command '%.100s'", cmd);
        usage_die(m);
        rc = 2;
    }
    free(pos);
    sf_args_free(&a);
    return rc;
}
