/* sf-wire — look at, feed, drain and measure wire streams (common/wire.h).
 *   sf-wire cat URL                                  one line per message: type name dtype shape meta
 *   sf-wire send --from FILE [--name N ...] [--meta k=v ...] [--error TEXT] URL
 *                                                    tensors of FILE (safetensors or .pt) as messages, then end
 *                                                    (f64 → f32, bool → u8, i8/i16 → i32: the wire has no such dtypes)
 *   sf-wire recv URL [--save FILE.safetensors]       collect tensors until end (exit 1 on an upstream error)
 *   sf-wire bench --transport pipe|ipc|tcp|shm [--size-mb M] [--count N]
 *                                                    throughput and per-message latency beside memcpy
 * The reference has no such tool; this is the command-line face of common/wire.c for tests,
 * benchmarks and debugging. Tested by tests/bats/sf-wire.bats. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "tfile.h"
#include "wire.h"
#include "wire_tfile.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "sf-wire";
static const char *synopsis = "cat URL | send URL --from FILE [--name N...] [--meta K=V...] [--error TEXT] | "
                              "recv URL [--save FILE.safetensors] | bench --transport pipe|ipc|tcp|shm "
                              "[--size-mb M] [--count N]";

static const sf_opt opts[] = {
    {"from", 'f', SF_ARG_VALUE, "FILE\tsend: tensor file (.safetensors, .pt, .pth)"},
    {"name", 'n', SF_ARG_MULTI, "NAME...\tsend: only these tensors, in this order (default: all, file order)"},
    {"meta", 'm', SF_ARG_MULTI, "K=V...\tsend: meta for every message (int, float, true/false or string)"},
    {"error", 0, SF_ARG_VALUE, "TEXT\tsend: end the stream with an error message instead of end"},
    {"save", 's', SF_ARG_VALUE, "FILE\trecv: write the tensors to a safetensors file (repeated names get #1, #2, ...; meta kept)"},
    {"transport", 't', SF_ARG_VALUE, "T\tbench: pipe, ipc, tcp or shm"},
    {"size-mb", 0, SF_ARG_VALUE, "M\tbench: message size in MiB (default 4)"},
    {"count", 'c', SF_ARG_VALUE, "N\tbench: messages (default 50)"},
    SF_OPT_TIMEOUT,
    SF_OPTS_STD,
    {0},
};

static void usage_die(const char *msg) {
    sf_err e;
    snprintf(e.msg, sizeof e.msg, "%s (usage: sf-wire %s)", msg, synopsis);
    sf_die(prog, SF_E_ARG, &e);
}

/* ---- cat / recv ---- */
static int cmd_recv(const char *url, const sf_wire_opts *wo, const char *save, int print) {
    sf_err err = {{0}};
    sf_wire *r = NULL;
    sf_wire_gather g = {0};
    sf_wire_msg *m = malloc(sizeof *m);
    char *line = malloc(65536);
    sf_status st = m && line ? SF_OK : sf_fail(&err, SF_E_NOMEM, "out of memory");
    /* where the file goes, before the stream is read (sf-wire's other errors are usage errors: exit 2) */
    if (!st && save && (!*save || !strcmp(save, "-"))) st = sf_fail(&err, SF_E_ARG, "--save needs a file name (.safetensors)");
    if (!st && save) st = sf_check_out_dir("--save", save, 0, &err);
    if (!st && save) st = sf_wire_gather_init(&g, save, &err);
    if (!st) st = sf_wire_open_reader_opts(url, wo, &r, &err);
    while (!st) {
        const void *pl;
        if ((st = sf_wire_recv(r, m, &pl, &err))) break;
        if (print) {
            printf("%s\n", sf_wire_msg_str(m, line, 65536));
            fflush(stdout);
        }
        if (m->type == SF_WIRE_END) break;
        if (save) st = sf_wire_gather_add(&g, m, pl, &err);
    }
    sf_status c = sf_wire_close(&r, NULL);
    if (!st && c) st = c;
    if (!st && save) {
        st = sf_tfile_write_safetensors(g.tf, g.tf->entries, g.tf->n, save, &err);
        if (!st) sf_info("%s: %zu tensors", save, g.tf->n);
    }
    sf_wire_gather_free(&g);
    free(m);
    free(line);
    if (st) sf_die(prog, st, &err);
    return 0;
}

/* ---- send ---- */
static sf_status parse_meta(sf_wire_msg *m, const char *kv, sf_err *err) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv || (size_t)(eq - kv) >= 64) return sf_fail(err, SF_E_ARG, "--meta: want KEY=VALUE, got '%s'", kv);
    char key[64];
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = 0;
    const char *v = eq + 1;
    char *end = NULL;
    errno = 0;
    long long i = strtoll(v, &end, 10);
    if (*v && !*end && !errno) return sf_wire_meta_set_int(m, key, i, err);
    errno = 0;
    double d = strtod(v, &end);
    if (*v && !*end && !errno) return sf_wire_meta_set_double(m, key, d, err);
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) return sf_wire_meta_set_bool(m, key, v[0] == 't', err);
    return sf_wire_meta_set_str(m, key, v, err);
}

static int cmd_send(const char *url, const sf_wire_opts *wo, const char *from, const char **names, int n_names, const char **metas,
                    int n_meta, const char *error_text) {
    sf_err err = {{0}};
    sf_tfile *tf = NULL;
    sf_wire *w = NULL;
    sf_wire_msg *meta = calloc(1, sizeof *meta);
    sf_status st = meta ? SF_OK : sf_fail(&err, SF_E_NOMEM, "out of memory");
    if (!st) sf_wire_msg_init(meta, SF_WIRE_TENSOR, "");
    for (int i = 0; !st && i < n_meta; i++) st = parse_meta(meta, metas[i], &err);
    if (!st && from) st = sf_tfile_open(from, &tf, &err);
    for (int i = 0; !st && tf && i < n_names; i++)
        if (!sf_tfile_get(tf, names[i])) st = sf_fail(&err, SF_E_NOTFOUND, "%s: no tensor named '%s'", from, names[i]);
    if (!st) st = sf_wire_open_writer_opts(url, wo, &w, &err);
    size_t count = tf ? (n_names ? (size_t)n_names : tf->n) : 0;
    for (size_t i = 0; !st && i < count; i++) {
        const sf_tensor_entry *e = n_names ? sf_tfile_find(tf, names[i]) : &tf->entries[i];
        sf_dtype d = e->t.dtype;
        /* dtypes the wire lacks travel as the nearest wire dtype */
        sf_dtype to = d == SF_F64 ? SF_F32 : d == SF_BOOL ? SF_U8 : (d == SF_I16 || d == SF_I8) ? SF_I32 : d;
        if (to == d) {
            st = sf_wire_send_tensor(w, e->name, &e->t, meta, &err);
        } else {
            sf_tensor c;
            if ((st = sf_tensor_convert(&e->t, to, &c, &err))) break;
            sf_debug("%s: %s sent as %s", e->name, sf_dtype_name(d), sf_dtype_name(to));
            st = sf_wire_send_tensor(w, e->name, &c, meta, &err);
            sf_tensor_free(&c);
        }
    }
    if (w) {
        if (st) {
            sf_err e2;
            sf_wire_send_error(w, err.msg, &e2); /* best effort: tell downstream why */
        } else if (error_text) {
            st = sf_wire_send_error(w, error_text, &err);
        } else {
            st = sf_wire_send_end(w, &err);
        }
        sf_status c = sf_wire_close(&w, st ? NULL : &err);
        if (!st) st = c;
    }
    sf_tfile_destroy(&tf);
    free(meta);
    if (st) sf_die(prog, st, &err);
    return 0;
}

/* ---- bench ---- */
typedef struct bench_job {
    const char *url;
    size_t bytes;
    int count;
    sf_status st;
    sf_err err;
} bench_job;

static void *bench_writer(void *arg) {
    bench_job *j = arg;
    sf_wire *w = NULL;
    sf_wire_msg *m = malloc(sizeof *m);
    uint8_t *buf = malloc(j->bytes);
    j->st = m && buf ? sf_wire_open_writer(j->url, &w, &j->err) : SF_E_NOMEM;
    if (!j->st) {
        memset(buf, 0x3c, j->bytes);
        int64_t shape[1] = {(int64_t)j->bytes};
        sf_tensor t = sf_tensor_view(buf, SF_U8, 1, shape);
        sf_wire_msg_tensor(m, "bench", &t, &j->err);
        for (int k = 0; !j->st && k < j->count; k++) {
            sf_wire_meta_set_int(m, "i", k, &j->err);
            j->st = sf_wire_send(w, m, buf, &j->err);
        }
        if (!j->st) j->st = sf_wire_send_end(w, &j->err);
    }
    sf_status c = sf_wire_close(&w, &j->err);
    if (!j->st) j->st = c;
    free(buf);
    free(m);
    return NULL;
}

/* Send count messages of `bytes` from a thread; seconds from open to the last message. */
static sf_status bench_run(const char *wurl, const char *rurl, size_t bytes, int count, double *secs, sf_err *err) {
    sf_wire *r = NULL;
    sf_wire_msg *m = malloc(sizeof *m);
    if (!m) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_status st = sf_wire_open_reader_opts(rurl, &(sf_wire_opts){0, bytes}, &r, err);
    if (st) { free(m); return st; }
    bench_job j = {.url = wurl, .bytes = bytes, .count = count};
    double t0 = sf_now();
    pthread_t th;
    pthread_create(&th, NULL, bench_writer, &j);
    volatile uint8_t sink = 0;
    for (int k = 0; !st; k++) {
        const void *pl;
        st = sf_wire_recv(r, m, &pl, err);
        if (st || m->type == SF_WIRE_END) break;
        if (bytes) sink ^= ((const uint8_t *)pl)[bytes - 1]; /* touch the payload */
        if (k >= count) st = sf_fail(err, SF_E_FORMAT, "bench: too many messages");
    }
    *secs = sf_now() - t0;
    pthread_join(th, NULL);
    sf_wire_close(&r, NULL);
    free(m);
    (void)sink;
    if (!st && j.st) { *err = j.err; st = j.st; }
    return st;
}

static int cmd_bench(const char *transport, double size_mb, long count) {
    sf_err err = {{0}};
    char wurl[256], rurl[256];
    int p[2] = {-1, -1};
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    size_t bytes = (size_t)(size_mb * 1048576.0);
    if (strcmp(transport, "pipe") == 0) {
        if (pipe(p) != 0) usage_die("pipe failed");
        snprintf(wurl, sizeof wurl, "fd:%d", p[1]);
        snprintf(rurl, sizeof rurl, "fd:%d", p[0]);
    } else if (strcmp(transport, "ipc") == 0) {
        snprintf(wurl, sizeof wurl, "ipc://%s/sf-wire-bench-%d.sock", tmp, (int)getpid());
        snprintf(rurl, sizeof rurl, "%s", wurl);
    } else if (strcmp(transport, "tcp") == 0) {
        snprintf(wurl, sizeof wurl, "tcp://127.0.0.1:%d", 30000 + (int)(getpid() % 20000));
        snprintf(rurl, sizeof rurl, "%s", wurl);
    } else if (strcmp(transport, "shm") == 0) {
        snprintf(wurl, sizeof wurl, "shm://sfbench%d", (int)getpid());
        snprintf(rurl, sizeof rurl, "%s", wurl);
    } else {
        usage_die("--transport must be pipe, ipc, tcp or shm");
    }
    /* memcpy baseline: the same bytes, count times, into a second buffer */
    uint8_t *a = malloc(bytes ? bytes : 1), *b = malloc(bytes ? bytes : 1);
    if (!a || !b) sf_die(prog, SF_E_NOMEM, &err);
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double t0 = sf_now();
    for (long k = 0; k < count; k++) {
        a[k % (bytes ? bytes : 1)] = (uint8_t)k;
        memcpy(b, a, bytes);
    }
    double tm = sf_now() - t0;
    volatile uint8_t keep = b[bytes ? bytes - 1 : 0];
    (void)keep;
    free(a);
    free(b);
    double secs = 0, lat = 0;
    sf_status st = bench_run(wurl, rurl, bytes, (int)count, &secs, &err);
    if (!st && strcmp(transport, "pipe") == 0) { /* the pipe fds were closed by the endpoints */
        if (pipe(p) != 0) usage_die("pipe failed");
        snprintf(wurl, sizeof wurl, "fd:%d", p[1]);
        snprintf(rurl, sizeof rurl, "fd:%d", p[0]);
    }
    /* per-message latency: tiny messages, pipelined */
    if (!st) st = bench_run(wurl, rurl, 64, (int)count, &lat, &err);
    if (strcmp(transport, "ipc") == 0) unlink(wurl + 6);
    if (st) sf_die(prog, st, &err);
    double gb = (double)bytes * (double)count / 1e9;
    printf("transport %-4s size %.1f MiB count %ld: %.2f GB/s, %.3f ms/message; 64 B messages %.1f us/message; "
           "memcpy %.2f GB/s\n",
           transport, size_mb, count, gb / secs, 1e3 * secs / (double)count, 1e6 * lat / (double)count,
           tm > 0 ? gb / tm : 0.0);
    return 0;
}

int main(int argc, char **argv) {
    sf_log_set_prefix(prog);
    if (argc < 2) usage_die("missing subcommand");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        sf_args_usage(prog, synopsis, opts);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("%s %s\n", prog, SF_VERSION);
        return 0;
    }
    sf_args a;
    sf_err err = {{0}};
    sf_status st = SF_OK;
    if (sf_args_main(argc - 1, argv + 1, prog, synopsis, opts, &a)) return 0;
    if ((st = sf_wire_install_signals(&err))) sf_die(prog, st, &err);
    const char **pos = NULL;
    int npos = sf_args_positional(&a, &pos);
    int rc = 0;
    sf_stage_flags sh; /* --timeout */
    if ((st = sf_stage_flags_get(&a, opts, &sh, &err))) sf_die(prog, st, &err);
    sf_wire_opts wo = {sh.wire_timeout, 0};
    if (strcmp(cmd, "cat") == 0 || strcmp(cmd, "recv") == 0) {
        if (npos != 1) usage_die("want exactly one URL");
        rc = cmd_recv(pos[0], &wo, sf_args_get(&a, opts, "save"), cmd[0] == 'c');
    } else if (strcmp(cmd, "send") == 0) {
        if (npos != 1) usage_die("want exactly one URL");
        const char *from = sf_args_get(&a, opts, "from");
        if (!from && !sf_args_get(&a, opts, "error")) usage_die("send needs --from FILE (or --error TEXT)");
        const char **names = NULL, **metas = NULL;
        int nn = sf_args_all(&a, opts, "name", &names);
        int nm = sf_args_all(&a, opts, "meta", &metas);
        rc = cmd_send(pos[0], &wo, from, names, nn, metas, nm, sf_args_get(&a, opts, "error"));
        free(names);
        free(metas);
    } else if (strcmp(cmd, "bench") == 0) {
        const char *t = sf_args_get(&a, opts, "transport");
        if (!t || npos) usage_die("bench needs --transport and no positional arguments");
        double mb = 4;
        long count = 50;
        const char *s = sf_args_get(&a, opts, "size-mb");
        if (s && ((st = sf_arg_double("--size-mb", s, &mb, &err)) || mb < 0 || mb > 4096))
            usage_die("--size-mb must be 0..4096");
        s = sf_args_get(&a, opts, "count");
        if (s && (st = sf_arg_long("--count", s, 1, 1000000, &count, &err))) sf_die(prog, st, &err);
        rc = cmd_bench(t, mb, count);
    } else {
        usage_die("unknown subcommand");
    }
    free(pos);
    sf_args_free(&a);
    return rc;
}
