/* test_formats.c — safetensors and torch .pt/.pth reading, the .pt writer, zip64, hostile input.
 *
 * Goldens: tests/golden/model (real-format tiny model), tests/golden/checkpoints/tiny_dmd.pt and
 * tests/golden/torch/{views,many}.pt (written by torch 1.13: views sharing a storage, a
 * Parameter, int64, 0-d, bool, u8, nested lists/tuples, >255 memo entries). Expected values were
 * read with torch.load. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "pickle.h"
#include "tfile.h"

#include <unistd.h>

static char g_path[4096];
static const char *gpath(const char *rel) {
    snprintf(g_path, sizeof g_path, "%s/%s", sf_test_golden(), rel);
    return g_path;
}

static char tmp_path[256];
static const char *tmpname(const char *suffix) {
    snprintf(tmp_path, sizeof tmp_path, "/tmp/sf_test_formats_%ld_%s", (long)getpid(), suffix);
    return tmp_path;
}

static sf_tfile *open_ok(const char *path) {
    sf_tfile *tf = NULL;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_tfile_open(path, &tf, &err), &err);
    return tf;
}

static int tensor_is(const sf_tfile *tf, const char *name, sf_dtype dt, int nd, const int64_t *shape) {
    const sf_tensor *t = sf_tfile_get(tf, name);
    if (!t) {
        fprintf(stderr, "# missing tensor %s\n", name);
        return 0;
    }
    return t->dtype == dt && sf_shape_eq(t, nd, shape);
}

static uint16_t u16_at(const sf_tensor *t, int64_t i) { return ((const uint16_t *)t->data)[i]; }

static void test_safetensors_golden(void) {
    sf_tfile *tf = open_ok(gpath("model/diffusion_pytorch_model.safetensors"));
    if (!tf) return;
    SF_CHECK(tf->kind == SF_TFILE_SAFETENSORS);
    SF_CHECK(tf->n == 96);
    SF_CHECK(sf_tfile_meta(tf, "format") && strcmp(sf_tfile_meta(tf, "format"), "pt") == 0);
    SF_CHECK(tensor_is(tf, "blocks.0.self_attn.q.weight", SF_F32, 2, (int64_t[]){256, 256}));
    const sf_tensor *q = sf_tfile_get(tf, "blocks.0.self_attn.q.weight");
    if (q) {
        SF_CHECK(sf_tensor_get(q, 0) == (double)-0.00697521585971117f);
        SF_CHECK(sf_tensor_get(q, 2) == (double)-0.0166062880307436f);
        SF_CHECK(sf_tensor_get(q, 256 * 256 - 1) == (double)0.046623002737760544f);
    }
    const sf_tensor *h = sf_tfile_get(tf, "head.head.weight");
    SF_CHECK(h && sf_shape_eq(h, 2, (int64_t[]){64, 256}) && sf_tensor_get(h, 1) == (double)0.006962550338357687f);
    sf_tfile_destroy(&tf);
}

static void test_torch_t5_bf16(void) {
    sf_tfile *tf = open_ok(gpath("model/models_t5_umt5-xxl-enc-bf16.pth"));
    if (!tf) return;
    SF_CHECK(tf->kind == SF_TFILE_TORCH && tf->n == 32);
    SF_CHECK(strcmp(tf->entries[0].name, "token_embedding.weight") == 0);
    SF_CHECK(strcmp(tf->entries[31].name, "norm.weight") == 0);
    SF_CHECK(tensor_is(tf, "token_embedding.weight", SF_BF16, 2, (int64_t[]){1000, 64}));
    SF_CHECK(tensor_is(tf, "blocks.2.ffn.fc2.weight", SF_BF16, 2, (int64_t[]){64, 160}));
    SF_CHECK(tensor_is(tf, "blocks.1.pos_embedding.embedding.weight", SF_BF16, 2, (int64_t[]){32, 4}));
    const sf_tensor *e = sf_tfile_get(tf, "token_embedding.weight");
    if (e) {
        SF_CHECK(u16_at(e, 0) == 0x3f77 && u16_at(e, 1) == (uint16_t)-0x40fc && u16_at(e, 2) == (uint16_t)-0x406a);
        SF_CHECK(sf_tensor_get(e, 1000 * 64 - 1) == -0.61328125);
    }
    const sf_tensor *f = sf_tfile_get(tf, "blocks.2.ffn.fc2.weight");
    SF_CHECK(f && sf_tensor_get(f, 0) == -0.026123046875 && sf_tensor_get(f, 64 * 160 - 1) == 0.00994873046875);
    SF_CHECK(tf->root && tf->root->type == SF_PY_DICT && tf->root->n == 32);
    sf_tfile_destroy(&tf);
}

static void test_torch_vae_f32(void) {
    sf_tfile *tf = open_ok(gpath("model/Wan2.1_VAE.pth"));
    if (!tf) return;
    SF_CHECK(tf->n == 194);
    SF_CHECK(tensor_is(tf, "encoder.conv1.weight", SF_F32, 5, (int64_t[]){8, 3, 3, 3, 3}));
    const sf_tensor *w = sf_tfile_get(tf, "encoder.conv1.weight");
    if (w) {
        SF_CHECK(sf_tensor_get(w, 0) == (double)-0.012413173913955688f);
        SF_CHECK(sf_tensor_get(w, 1) == (double)-0.05517667904496193f);
        SF_CHECK(sf_tensor_get(w, 8 * 81 - 1) == (double)0.07174737751483917f);
    }
    const sf_tensor *b = sf_tfile_get(tf, "decoder.head.2.bias");
    SF_CHECK(b && sf_shape_eq(b, 1, (int64_t[]){3}) && sf_tensor_get(b, 2) == (double)0.03301781043410301f);
    SF_CHECK(strcmp(tf->entries[tf->n - 1].name, "decoder.head.2.bias") == 0);
    sf_tfile_destroy(&tf);
}

/* NMSE of a (bf16) against b (f32): the manifest says generator = bf16(base + 0.10·std·N(0,1)),
 * generator_ema = bf16(base + 0.05·std·N(0,1)), so NMSE ≈ 0.01 and 0.0025 when names line up. */
static double nmse(const sf_tensor *a, const sf_tensor *b) {
    int64_t n = sf_tensor_numel(a);
    double se = 0, sr = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = sf_tensor_get(a, i), y = sf_tensor_get(b, i);
        se += (x - y) * (x - y);
        sr += y * y;
    }
    return se / (sr > 0 ? sr : 1);
}

static void test_torch_checkpoint_nested(void) {
    sf_tfile *ck = open_ok(gpath("checkpoints/tiny_dmd.pt"));
    sf_tfile *base = open_ok(gpath("model/diffusion_pytorch_model.safetensors"));
    if (!ck || !base) goto done;
    SF_CHECK(ck->n == 192);
    SF_CHECK(strcmp(ck->entries[0].name, "generator/model.patch_embedding.weight") == 0);
    SF_CHECK(tensor_is(ck, "generator_ema/model.blocks.2.ffn.2.weight", SF_BF16, 2, (int64_t[]){256, 384}));
    const sf_tensor *g = sf_tfile_get(ck, "generator/model.blocks.2.ffn.2.weight");
    SF_CHECK(g && u16_at(g, 0) == 0x3d4a && u16_at(g, 1) == (uint16_t)-0x43b3);
    const sf_tensor *hb = sf_tfile_get(ck, "generator_ema/model.head.head.bias");
    SF_CHECK(hb && u16_at(hb, 0) == (uint16_t)-0x437b && sf_tensor_get(hb, 63) == -0.037353515625);
    SF_CHECK(!sf_tfile_get(ck, "model.head.head.bias")); /* names stay qualified */
    int n_gen = 0, n_ema = 0;
    double worst_g = 0, worst_e = 0, sum_g = 0, sum_e = 0;
    for (size_t i = 0; i < base->n; i++) {
        char name[512];
        const sf_tensor *b = &base->entries[i].t;
        snprintf(name, sizeof name, "generator/model.%s", base->entries[i].name);
        const sf_tensor *a = sf_tfile_get(ck, name);
        snprintf(name, sizeof name, "generator_ema/model.%s", base->entries[i].name);
        const sf_tensor *e = sf_tfile_get(ck, name);
        if (a && sf_shape_eq(a, b->ndim, b->shape) && sf_tensor_numel(b) > 16) {
            double v = nmse(a, b);
            worst_g = v > worst_g ? v : worst_g;
            sum_g += v;
            n_gen++;
        }
        if (e && sf_shape_eq(e, b->ndim, b->shape) && sf_tensor_numel(b) > 16) {
            double v = nmse(e, b);
            worst_e = v > worst_e ? v : worst_e;
            sum_e += v;
            n_ema++;
        }
    }
    SF_CHECK_MSG(n_gen >= 60 && n_ema >= 60, "%d %d", n_gen, n_ema);
    /* per tensor NMSE ≤ 0.1² (less where the tensor has a mean); EMA noise is half the generator's */
    SF_CHECK_MSG(worst_g < 0.015 && worst_e < 0.005, "worst nmse %g %g", worst_g, worst_e);
    SF_CHECK_MSG(n_gen && n_ema && sum_g / n_gen > 2.5 * (sum_e / n_ema), "mean nmse %g %g", sum_g / n_gen, sum_e / n_ema);
    /* and a wrong pairing is far off: generator q of block 0 against base k of block 0 */
    const sf_tensor *gq = sf_tfile_get(ck, "generator/model.blocks.0.self_attn.q.weight");
    const sf_tensor *bk = sf_tfile_get(base, "blocks.0.self_attn.k.weight");
    SF_CHECK(gq && bk && nmse(gq, bk) > 0.5);
    /* the tree keeps the nesting */
    SF_CHECK(ck->root && ck->root->type == SF_PY_DICT && ck->root->n == 2);
    const sf_py *ge = sf_py_dict_get(ck->root, "generator_ema");
    SF_CHECK(ge && ge->type == SF_PY_DICT && ge->n == 96);
done:
    sf_tfile_destroy(&ck);
    sf_tfile_destroy(&base);
}

static void test_torch_views_and_types(void) {
    sf_tfile *tf = open_ok(gpath("torch/views.pt"));
    if (!tf) return;
    const sf_tensor *tr = sf_tfile_get(tf, "transposed"), *base = sf_tfile_get(tf, "base");
    SF_CHECK(tr && base && tr->dtype == SF_F16 && sf_shape_eq(tr, 2, (int64_t[]){4, 3}));
    if (tr && base) {
        SF_CHECK(tr->stride[0] == 1 && tr->stride[1] == 4 && tr->data == base->data);
        /* base = arange(12).reshape(3, 4) → transposed[i][j] = 4j + i */
        for (int i = 0; i < 12; i++) SF_CHECK(sf_tensor_get(tr, i) == (double)(4 * (i % 3) + i / 3));
    }
    const sf_tensor *r2 = sf_tfile_get(tf, "row2");
    SF_CHECK(r2 && sf_tensor_get(r2, 0) == 8 && sf_tensor_get(r2, 3) == 11);
    const sf_tensor *p = sf_tfile_get(tf, "param");
    SF_CHECK(p && p->dtype == SF_F32 && sf_tensor_get(p, 1) == -2.25);
    const sf_tensor *i64 = sf_tfile_get(tf, "i64");
    SF_CHECK(i64 && i64->dtype == SF_I64 && ((const int64_t *)i64->data)[1] == ((int64_t)1 << 40) &&
             ((const int64_t *)i64->data)[0] == -3);
    const sf_tensor *sc = sf_tfile_get(tf, "scalar");
    SF_CHECK(sc && sc->ndim == 0 && sf_tensor_numel(sc) == 1 && sf_tensor_get(sc, 0) == 3.25);
    const sf_tensor *bf = sf_tfile_get(tf, "bf16");
    SF_CHECK(bf && bf->dtype == SF_BF16 && sf_tensor_get(bf, 1) == -0.5);
    const sf_tensor *fl = sf_tfile_get(tf, "flags");
    SF_CHECK(fl && fl->dtype == SF_BOOL && sf_tensor_get(fl, 0) == 1 && sf_tensor_get(fl, 1) == 0);
    const sf_tensor *u8 = sf_tfile_get(tf, "u8");
    SF_CHECK(u8 && u8->dtype == SF_U8 && sf_tensor_get(u8, 1) == 255);
    SF_CHECK(tensor_is(tf, "five", SF_F32, 5, (int64_t[]){1, 2, 2, 2, 4}));
    SF_CHECK(tensor_is(tf, "nested/list/0", SF_F32, 1, (int64_t[]){1}));
    SF_CHECK(tensor_is(tf, "nested/tup/0", SF_I32, 1, (int64_t[]){1}));
    SF_CHECK(tf->n == 12);
    const sf_py *meta = sf_py_dict_get(tf->root, "meta"), *v;
    SF_CHECK((v = sf_py_dict_get(meta, "step")) && v->type == SF_PY_INT && v->i == 1234);
    SF_CHECK((v = sf_py_dict_get(meta, "lr")) && v->type == SF_PY_FLOAT && v->f == 1e-4);
    SF_CHECK((v = sf_py_dict_get(meta, "name")) && v->type == SF_PY_STR && strcmp(v->s, "tiny") == 0);
    SF_CHECK((v = sf_py_dict_get(meta, "big")) && v->i == ((int64_t)1 << 40));
    SF_CHECK((v = sf_py_dict_get(meta, "neg")) && v->i == -5);
    const sf_py *list = sf_py_dict_get(sf_py_dict_get(tf->root, "nested"), "list");
    SF_CHECK(list && list->type == SF_PY_LIST && list->n == 6);
    if (list && list->n == 6) {
        SF_CHECK(list->items[1]->type == SF_PY_STR && strcmp(list->items[1]->s, "text") == 0);
        SF_CHECK(list->items[2]->i == 7 && list->items[3]->f == 2.5);
        SF_CHECK(list->items[4]->type == SF_PY_NONE && list->items[5]->type == SF_PY_BOOL && list->items[5]->i == 1);
    }
    sf_tfile_destroy(&tf);

    tf = open_ok(gpath("torch/many.pt")); /* 300 entries: LONG_BINPUT */
    if (!tf) return;
    SF_CHECK(tf->n == 300);
    const sf_tensor *k299 = sf_tfile_get(tf, "k299");
    SF_CHECK(k299 && sf_tensor_get(k299, 0) == 299);
    sf_tfile_destroy(&tf);
}

/* ---- writer ------------------------------------------------------------------------------- */

static int py_equal(const sf_py *a, const sf_py *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case SF_PY_NONE: return 1;
    case SF_PY_BOOL:
    case SF_PY_INT: return a->i == b->i;
    case SF_PY_FLOAT: return memcmp(&a->f, &b->f, sizeof a->f) == 0;
    case SF_PY_STR: return strcmp(a->s, b->s) == 0;
    case SF_PY_LIST:
    case SF_PY_TUPLE:
    case SF_PY_DICT: {
        size_t k = a->type == SF_PY_DICT ? 2 * a->n : a->n;
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < k; i++)
            if (!py_equal(a->items[i], b->items[i])) return 0;
        return 1;
    }
    case SF_PY_TENSOR: {
        if (a->t.dtype != b->t.dtype || !sf_shape_eq(&a->t, b->t.ndim, b->t.shape)) return 0;
        size_t n = sf_tensor_nbytes(&a->t);
        uint8_t *x = malloc(n + 1), *y = malloc(n + 1);
        sf_tensor_copy_contiguous(&a->t, x);
        sf_tensor_copy_contiguous(&b->t, y);
        int eq = memcmp(x, y, n) == 0;
        free(x);
        free(y);
        return eq;
    }
    default: return 0;
    }
}

static void test_pt_write_roundtrip(void) {
    float f[6] = {1, 2, 3, 4, 5, -0.0f};
    uint16_t h[3] = {0x3f80, 0xc000, 0x7fc0};
    int64_t l[2] = {-1, (int64_t)1 << 50};
    uint8_t bo[2] = {1, 0};
    sf_tensor tf32 = sf_tensor_view(f, SF_F32, 2, (int64_t[]){2, 3});
    sf_tensor tt = tf32; /* transposed view (3, 2), strides (1, 3) */
    tt.shape[0] = 3, tt.shape[1] = 2, tt.stride[0] = 1, tt.stride[1] = 3;
    sf_tensor tbf = sf_tensor_view(h, SF_BF16, 1, (int64_t[]){3});
    sf_tensor ti = sf_tensor_view(l, SF_I64, 1, (int64_t[]){2});
    sf_tensor tb = sf_tensor_view(bo, SF_BOOL, 1, (int64_t[]){2});
    sf_tensor t0 = sf_tensor_view(f + 4, SF_F32, 0, NULL);
    sf_tensor te = sf_tensor_view(f, SF_F16, 2, (int64_t[]){0, 4});
    sf_py *root = sf_py_dict(), *inner = sf_py_dict(), *list = sf_py_list(), *tup = sf_py_tuple();
    SF_CHECK(sf_py_append(tup, sf_py_tensor(&tt)) && sf_py_append(tup, sf_py_int(-70000)));
    SF_CHECK(sf_py_append(list, sf_py_str("héllo")) && sf_py_append(list, sf_py_float(-1.5e-300)) &&
             sf_py_append(list, sf_py_none()) && sf_py_append(list, sf_py_bool(1)) &&
             sf_py_append(list, sf_py_int(((int64_t)1 << 62) + 5)) && sf_py_append(list, sf_py_int(INT64_MIN)) &&
             sf_py_append(list, tup));
    SF_CHECK(sf_py_dict_set(inner, "model.w", sf_py_tensor(&tf32)) && sf_py_dict_set(inner, "bf", sf_py_tensor(&tbf)));
    SF_CHECK(sf_py_dict_set(root, "generator", inner) && sf_py_dict_set(root, "list", list) &&
             sf_py_dict_set(root, "i64", sf_py_tensor(&ti)) && sf_py_dict_set(root, "flags", sf_py_tensor(&tb)) &&
             sf_py_dict_set(root, "scalar", sf_py_tensor(&t0)) && sf_py_dict_set(root, "empty", sf_py_tensor(&te)) &&
             sf_py_dict_set(root, "step", sf_py_int(255)) && sf_py_dict_set(root, "n", sf_py_int(65536)));
    for (int z64 = 0; z64 < 2; z64++) {
        const char *path = tmpname(z64 ? "rt64.pt" : "rt.pt");
        sf_err err = {{0}};
        SF_CHECK_OK(sf_torch_write_ex(path, root, z64 ? SF_TORCH_WRITE_ZIP64 : 0, &err), &err);
        sf_tfile *tf = open_ok(path);
        if (tf) {
            SF_CHECK_MSG(py_equal(root, tf->root), "zip64 %d: tree differs after the round trip", z64);
            SF_CHECK(sf_tfile_get(tf, "generator/model.w") && sf_tfile_get(tf, "list/6/0") && tf->n == 7);
            /* every storage member starts at a multiple of 64 bytes */
            for (size_t i = 0; i < tf->n; i++)
                if (sf_tensor_numel(&tf->entries[i].t))
                    SF_CHECK(((const uint8_t *)tf->entries[i].t.data - tf->map.data) % 64 == 0);
            /* zip64 records are present exactly when forced */
            int has64 = 0;
            for (size_t i = 0; i + 4 <= tf->map.len; i++)
                if (memcmp(tf->map.data + i, "PK\x06\x07", 4) == 0) has64 = 1;
            SF_CHECK(has64 == z64);
        }
        sf_tfile_destroy(&tf);
        unlink(path);
    }
    sf_py_free(root);
}

/* Rebuild nested dicts from '/' names (as sf-tensor convert does). */
static sf_py *tree_from_names(const sf_tfile *tf) {
    sf_py *root = sf_py_dict();
    for (size_t i = 0; i < tf->n; i++) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", tf->entries[i].name);
        sf_py *d = root;
        char *p = buf, *slash;
        while ((slash = strchr(p, '/'))) {
            *slash = 0;
            if (!sf_py_dict_get(d, p)) sf_py_dict_set(d, p, sf_py_dict());
            d = sf_py_dict_get(d, p);
            p = slash + 1;
        }
        sf_tensor t = tf->entries[i].t;
        t.owned = 0;
        sf_py_dict_set(d, p, sf_py_tensor(&t));
    }
    return root;
}

static void test_pt_safetensors_pt_lossless(void) {
    sf_tfile *a = open_ok(gpath("checkpoints/tiny_dmd.pt")), *b = NULL, *c = NULL;
    char st[256], pt[256];
    snprintf(st, sizeof st, "%s", tmpname("ck.safetensors"));
    snprintf(pt, sizeof pt, "%s", tmpname("ck.pt"));
    sf_err err = {{0}};
    sf_py *tree = NULL;
    if (!a) return;
    SF_CHECK_OK(sf_safetensors_write(st, a->entries, a->n, NULL, 0, &err), &err);
    if (!(b = open_ok(st))) goto done;
    tree = tree_from_names(b);
    SF_CHECK_OK(sf_torch_write(pt, tree, &err), &err);
    if (!(c = open_ok(pt))) goto done;
    SF_CHECK(c->n == a->n);
    for (size_t i = 0; i < a->n; i++) {
        const sf_tensor *x = &a->entries[i].t, *y = sf_tfile_get(c, a->entries[i].name);
        SF_CHECK_MSG(y && y->dtype == x->dtype && sf_shape_eq(y, x->ndim, x->shape) &&
                         memcmp(x->data, y->data, sf_tensor_nbytes(x)) == 0,
                     "%s", a->entries[i].name);
        SF_CHECK(strcmp(a->entries[i].name, c->entries[i].name) == 0); /* order kept */
    }
done:
    sf_py_free(tree);
    sf_tfile_destroy(&a);
    sf_tfile_destroy(&b);
    sf_tfile_destroy(&c);
    unlink(st);
    unlink(pt);
}

/* ---- hostile input ------------------------------------------------------------------------ */

static const void *fake_storage(void *ctx, const char *key, sf_dtype dtype, int64_t numel, sf_err *err) {
    (void)key;
    (void)dtype;
    if (numel > 16) {
        sf_fail(err, SF_E_FORMAT, "storage too small");
        return NULL;
    }
    return ctx;
}

static sf_status load_bytes(const char *bytes, size_t n, sf_err *err) {
    float store[16] = {0};
    sf_py *out = NULL;
    sf_status s = sf_pickle_load((const uint8_t *)bytes, n, fake_storage, store, &out, err);
    sf_py_free(out);
    return s;
}

#define PK(lit) lit, sizeof(lit) - 1

static void expect_format(const char *what, const char *bytes, size_t n, const char *needle) {
    sf_err err = {{0}};
    sf_status s = load_bytes(bytes, n, &err);
    SF_CHECK_MSG(s == SF_E_FORMAT, "%s: status %d", what, (int)s);
    SF_CHECK_MSG(!needle || strstr(err.msg, needle), "%s: message '%s'", what, err.msg);
    SF_CHECK_MSG(!strchr(err.msg, '\n'), "%s: multi-line message", what);
}

static void test_hostile_pickles(void) {
    expect_format("os.system", PK("\x80\x02" "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85R."), "os system");
    expect_format("builtins eval (STACK_GLOBAL)", PK("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93."),
                  "builtins eval");
    expect_format("unknown opcode", PK("\x80\x02}\xff."), "0xff");
    expect_format("INST opcode", PK("\x80\x02(i__builtin__\nobject\n."), "not allowed");
    expect_format("truncated", PK("\x80\x02}q\x00(X\x01\x00\x00\x00"), NULL);
    expect_format("no STOP", PK("\x80\x02}"), "truncated");
    expect_format("memo miss", PK("\x80\x02h\x05."), "memo");
    expect_format("memo huge", PK("\x80\x02}r\xff\xff\xff\x7f."), "memo");
    expect_format("underflow", PK("\x80\x02s."), NULL);
    expect_format("underflow tuple", PK("\x80\x02K\x01\x86."), "underflow");
    expect_format("string too long", PK("\x80\x02X\xff\xff\xff\x7f" "abc."), "beyond the end");
    expect_format("self cycle", PK("\x80\x02]q\x00h\x00" "a."), "cycle");
    expect_format("cycle via dict", PK("\x80\x02}q\x00]q\x01h\x00" "a0(X\x01\x00\x00\x00kh\x01u."), "cycle");
    expect_format("reduce non-global", PK("\x80\x02})R."), NULL);
    expect_format("storage in list", PK("\x80\x02]ctorch\nFloatStorage\na."), NULL);
    expect_format("bad persid", PK("\x80\x02(X\x01\x00\x00\x00xtQ."), "persistent id");
    expect_format("empty stack STOP", PK("\x80\x02."), "underflow");
    expect_format("bare global result", PK("\x80\x02" "ccollections\nOrderedDict\n."), "global");
    /* a tensor whose view reaches past its storage: storage numel 4, offset 2, size 3 */
    expect_format("view out of bounds",
                  PK("\x80\x02" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
                     "ctorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x04tQK\x02K\x03\x85K\x01\x85"
                     "\x89" "ccollections\nOrderedDict\n)RtR."),
                  "outside its storage");
    /* resolver refuses an oversized storage */
    expect_format("storage numel", PK("\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00"
                                     "0X\x03\x00\x00\x00" "cpuJ\x00\x00\x00\x01tQ."),
                  "storage too small");
    /* the same tensor in bounds loads */
    sf_err err = {{0}};
    SF_CHECK_OK(load_bytes(PK("\x80\x02}(X\x01\x00\x00\x00t" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"
                              "ctorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x04tQK\x01K\x03\x85K\x01\x85"
                              "\x89" "ccollections\nOrderedDict\n)RtRu."),
                           &err),
                &err);
    /* deep nesting: 100000 × TUPLE1 loads (no recursion in the reader or free) but flattening refuses */
    size_t n = 100000;
    char *deep = malloc(n + 8);
    memcpy(deep, "\x80\x02)", 3);
    memset(deep + 3, 0x85, n);
    deep[3 + n] = '.';
    sf_py *out = NULL;
    SF_CHECK_OK(sf_pickle_load((const uint8_t *)deep, n + 4, NULL, NULL, &out, &err), &err);
    SF_CHECK(sf_py_flatten(out, NULL, NULL, &err) == SF_E_FORMAT && strstr(err.msg, "deeper"));
    SF_CHECK(sf_torch_write(tmpname("deep.pt"), out, &err) != SF_OK && access(tmpname("deep.pt"), F_OK) != 0);
    sf_py_free(out);
    /* "billion laughs": 40 × (DUP DUP TUPLE3) shares one sub-tree 3^40 times; walkers refuse */
    char laughs[3 + 3 * 40 + 1];
    memcpy(laughs, "\x80\x02)", 3);
    for (int i = 0; i < 40; i++) memcpy(laughs + 3 + 3 * i, "22\x87", 3);
    laughs[sizeof laughs - 1] = '.';
    out = NULL;
    SF_CHECK_OK(sf_pickle_load((const uint8_t *)laughs, sizeof laughs, NULL, NULL, &out, &err), &err);
    SF_CHECK(sf_py_count_edges(out) == 120);
    SF_CHECK(sf_py_flatten(out, NULL, NULL, &err) == SF_E_FORMAT && strstr(err.msg, "too often"));
    SF_CHECK(sf_torch_write(tmpname("laughs.pt"), out, &err) != SF_OK && access(tmpname("laughs.pt"), F_OK) != 0);
    sf_py_free(out);
    /* every prefix of a valid pickle is rejected cleanly */
    static const char ok[] = "\x80\x02}q\x00(X\x01\x00\x00\x00" "aK\x01X\x01\x00\x00\x00" "b]q\x01(G?\xf8\x00\x00\x00\x00\x00\x00" "Ne" "u.";
    size_t okn = sizeof ok - 1;
    SF_CHECK_OK(load_bytes(ok, okn, &err), &err);
    for (size_t k = 0; k < okn; k++) SF_CHECK_MSG(load_bytes(ok, k, &err) == SF_E_FORMAT, "prefix %zu", k);
    free(deep);
}

static size_t rd32(const uint8_t *b) { return (size_t)b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 | (size_t)b[3] << 24; }

static uint8_t *read_all(const char *path, size_t *n) {
    char *d = NULL;
    sf_err err = {{0}};
    if (sf_read_file(path, &d, n, (size_t)1 << 26, &err)) return NULL;
    return (uint8_t *)d;
}

/* Run the torch reader over a memory image (no file); returns the status. */
static sf_status torch_from_memory(const uint8_t *p, size_t n, sf_err *err) {
    sf_tfile *tf = sf_tfile_new_empty("mem.pt");
    tf->map.data = p;
    tf->map.len = n;
    sf_status s = sf_torch_read(tf, err);
    tf->map.data = NULL;
    tf->map.len = 0;
    sf_tfile_destroy(&tf);
    return s;
}

static size_t find_last(const uint8_t *p, size_t n, const char *sig) {
    for (size_t i = n - 4 + 1; i-- > 0;)
        if (memcmp(p + i, sig, 4) == 0) return i;
    return SIZE_MAX;
}

static void test_hostile_zips(void) {
    size_t n = 0;
    uint8_t *orig = read_all(gpath("torch/views.pt"), &n), *p = malloc(n ? n : 1);
    sf_err err = {{0}};
    if (!orig || !p) goto done;
    SF_CHECK_OK(torch_from_memory(orig, n, &err), &err);
    /* every truncation fails cleanly */
    for (size_t k = 0; k < n; k += 7) SF_CHECK_MSG(torch_from_memory(orig, k, &err) != SF_OK, "truncated at %zu", k);
    /* a lying member size in the central directory */
    size_t cd = find_last(orig, n, "PK\x01\x02");
    memcpy(p, orig, n);
    p[cd + 24] = p[cd + 20] = 0xf0, p[cd + 25] = p[cd + 21] = 0xff;
    SF_CHECK(torch_from_memory(p, n, &err) == SF_E_FORMAT);
    /* a lying directory offset in the (zip64) end record; torch always writes zip64 records */
    size_t eocd = find_last(orig, n, "PK\x05\x06"), e64 = find_last(orig, n, "PK\x06\x06");
    size_t loc = find_last(orig, n, "PK\x06\x07");
    SF_CHECK(eocd != SIZE_MAX && e64 != SIZE_MAX && loc != SIZE_MAX);
    if (eocd == SIZE_MAX || e64 == SIZE_MAX || loc == SIZE_MAX) goto done;
    memcpy(p, orig, n);
    p[e64 + 48] ^= 0x40;
    SF_CHECK_MSG(torch_from_memory(p, n, &err) == SF_E_FORMAT, "%s", err.msg);
    memcpy(p, orig, n);
    p[e64 + 32] = 0xff; /* entry count */
    SF_CHECK_MSG(torch_from_memory(p, n, &err) == SF_E_FORMAT, "%s", err.msg);
    /* the zip64 markers without a zip64 locator */
    memcpy(p, orig, n);
    p[loc] = 'X';
    memset(p + eocd + 16, 0xff, 4);
    SF_CHECK_MSG(torch_from_memory(p, n, &err) == SF_E_FORMAT && strstr(err.msg, "zip64"), "%s", err.msg);
    /* a compressed data.pkl (method 8) */
    size_t first = SIZE_MAX;
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(orig + i, "PK\x01\x02", 4) == 0) {
            first = i;
            break;
        }
    memcpy(p, orig, n);
    p[first + 10] = 8;
    p[rd32(orig + first + 42) + 8] = 8; /* the local header says so too */
    SF_CHECK_MSG(torch_from_memory(p, n, &err) == SF_E_UNSUPPORTED && strstr(err.msg, "STORED"), "%s", err.msg);
    /* ... but a central directory that disagrees with the local header is refused */
    memcpy(p, orig, n);
    p[first + 10] = 8;
    SF_CHECK_MSG(torch_from_memory(p, n, &err) == SF_E_FORMAT && strstr(err.msg, "local header"), "%s", err.msg);
    /* every single-byte corruption is handled without a crash (statuses vary) */
    for (size_t i = 0; i < n; i++) {
        memcpy(p, orig, n);
        p[i] ^= 0xff;
        torch_from_memory(p, n, &err);
    }
    /* a forced-zip64 file truncated before its zip64 EOCD */
    const char *path = tmpname("z64.pt");
    sf_tfile *tf = open_ok(gpath("torch/views.pt"));
    if (tf) SF_CHECK_OK(sf_torch_write_ex(path, tf->root, SF_TORCH_WRITE_ZIP64, &err), &err);
    sf_tfile_destroy(&tf);
    size_t zn = 0;
    uint8_t *z = read_all(path, &zn);
    if (z) {
        SF_CHECK_OK(torch_from_memory(z, zn, &err), &err);
        size_t zloc = find_last(z, zn, "PK\x06\x07");
        SF_CHECK(zloc != SIZE_MAX);
        uint8_t *zz = malloc(zn);
        memcpy(zz, z, zn);
        zz[zloc + 8] ^= 0x10; /* locator points elsewhere */
        SF_CHECK(torch_from_memory(zz, zn, &err) == SF_E_FORMAT);
        memcpy(zz, z, zn);
        size_t cd64 = find_last(z, zn, "PK\x01\x02"); /* last entry's zip64 extra: usize, csize, offset */
        size_t nl = (size_t)z[cd64 + 28] | (size_t)z[cd64 + 29] << 8;
        zz[cd64 + 46 + nl + 4 + 16 + 5] = 0x7f; /* offset far beyond the file */
        SF_CHECK(torch_from_memory(zz, zn, &err) == SF_E_FORMAT);
        free(zz);
        free(z);
    }
    unlink(path);
done:
    free(orig);
    free(p);
}

static const sf_test tests[] = {
    {"safetensors_golden", test_safetensors_golden},
    {"torch_t5_bf16", test_torch_t5_bf16},
    {"torch_vae_f32", test_torch_vae_f32},
    {"torch_checkpoint_nested", test_torch_checkpoint_nested},
    {"torch_views_and_types", test_torch_views_and_types},
    {"pt_write_roundtrip", test_pt_write_roundtrip},
    {"pt_safetensors_pt_lossless", test_pt_safetensors_pt_lossless},
    {"hostile_pickles", test_hostile_pickles},
    {"hostile_zips", test_hostile_zips},
};
SF_TEST_MAIN(tests)
