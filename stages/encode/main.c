/* main.c — sf-encode: prompts → umT5 token ids → umT5-XXL embeddings (`prompt_embeds`).
 *
 * Mirrors the reference's text-encoder step (utils/wan_wrapper.py WanTextEncoder, called by
 * inference.py / the extraction scripts). Flags, prompt sources and outputs: see --help and
 * README.md (sf-encode); the resident server (--serve) and its client (--server) live in
 * serve.c, the GPU encoder (--device cuda[:N], --low-memory) in t5_cuda.c, the full-size GPU
 * benchmark (--bench xxl) in bench.c. Tested by tests/bats/sf-encode.bats and
 * tests/bats/sf-encode-serve.bats. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "stop.h"
#include "cuda_ops.h"
#include "device.h"
#include "parallel.h"
#include "stages/encode/bench.h"
#include "stages/encode/cache.h"
#include "stages/encode/encode.h"
#include "stages/encode/serve.h"
#include "tfile.h"
#include "trace.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const sf_opt opts[] = {
    {"prompt", 'p', SF_ARG_VALUE, "TEXT\ta prompt (repeatable)"},
    {"prompts", 0, SF_ARG_VALUE, "FILE\tprompts, one per line ('-' = stdin; default when no --prompt and stdin is not a terminal)"},
    SF_OPT_MODEL_DIR,
    {"tokenizer", 0, SF_ARG_VALUE, "FILE\tspiece.model (default DIR/google/umt5-xxl/spiece.model)"},
    {"weights", 0, SF_ARG_VALUE, "FILE\tencoder weights (default DIR/models_t5_umt5-xxl-enc-bf16.pth)"},
    {"text-len", 0, SF_ARG_VALUE, "N\ttokens per prompt incl. eos, padded (default 512)"},
    {"save-embeds", 0, SF_ARG_VALUE, "FILE\twrite emb.<i> [N, D] f32, ids.<i>, mask.<i> (safetensors)"},
    {"tokens-only", 0, SF_ARG_FLAG, "print the token ids of each prompt (one line each) and exit"},
    {"in", 0, SF_ARG_VALUE, "URL\tprompts as a wire stream: 'prompt' u8 messages holding UTF-8 text (the --serve request format)"},
    SF_OPT_PROGRESS,
    SF_OPT_TIMEOUT,
    SF_OPTS_CPU_MODE,
    {"out", 'o', SF_ARG_VALUE, "URL\twire output: one prompt_embeds message per prompt (default '-' when stdout is not a terminal)"},
    {"cache-only", 0, SF_ARG_FLAG, "only fill the cache for the prompts; output nothing"},
    {"serve", 0, SF_ARG_VALUE, "URL\trun as a resident encoder server on tcp://HOST:PORT or ipc://PATH (bind) until SIGINT/SIGTERM"},
    {"server", 0, SF_ARG_VALUE, "URL\task the encoder server at URL instead of loading anything (alias --connect)"},
    {"connect", 0, SF_ARG_VALUE, "URL\tsame as --server"},
    {"stop-route", 0, SF_ARG_FLAG, "with --server: end the server's live run (sf-encode --serve URL --out ...: README \"Live\")"},
    {"server-timeout", 0, SF_ARG_VALUE, "SEC\twith --server: fail when a reply takes longer (default 0: wait)"},
    {"cache-dir", 0, SF_ARG_VALUE, "DIR\tembedding cache (default $XDG_CACHE_HOME/sfpipe/embeds)"},
    {"no-cache", 0, SF_ARG_FLAG, "neither read nor write the cache"},
    {"list", 0, SF_ARG_FLAG, "list the cache entries and exit"},
    {"threads", 0, SF_ARG_VALUE, "N\tCPU threads (default: all)"},
    SF_OPTS_DEVICE("umT5 in bf16, 11.4 GB for umT5-XXL"),
    {"low-memory", 0, SF_ARG_FLAG, "with --device cuda: stream the layers (one on the GPU at a time) and free the GPU memory after every prompt"},
    {"bench", 0, SF_ARG_VALUE, "xxl\tprint ms per 512-token prompt and GPU memory of the full-size umT5-XXL with random weights (needs --device cuda), then exit"},
    SF_OPTS_STD,
    {NULL, 0, 0, NULL},
};

typedef struct prompt_list {
    char **s;
    size_t *len;
    size_t n, cap;
} prompt_list;

static int pl_add(prompt_list *p, const char *s, size_t len) {
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 16;
        char **ns = realloc(p->s, nc * sizeof *ns);
        if (!ns) return 0;
        p->s = ns;
        size_t *nl = realloc(p->len, nc * sizeof *nl);
        if (!nl) return 0;
        p->len = nl, p->cap = nc;
    }
    char *c = malloc(len + 1);
    if (!c) return 0;
    memcpy(c, s, len);
    c[len] = 0;
    p->s[p->n] = c, p->len[p->n] = len, p->n++;
    return 1;
}

static void pl_free(prompt_list *p) {
    for (size_t i = 0; i < p->n; i++) free(p->s[i]);
    free(p->s), free(p->len);
}

/* One prompt per line; "\n" or "\r\n" ends a line; a final line without newline counts. */
static sf_status read_prompts(const char *path, prompt_list *p, sf_err *err) {
    FILE *fp = stdin;
    if (strcmp(path, "-") != 0) { /* a file or a pipe; never blocks in open(), never a device */
        int fd;
        struct stat sb;
        sf_status so = sf_open_input(path, SF_IN_STREAM, 0, &fd, &sb, err);
        if (so) return so;
        if (!(fp = fdopen(fd, "rb"))) {
            close(fd);
            return sf_fail(err, SF_E_IO, "cannot open prompts file %s", path);
        }
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    sf_status st = SF_OK;
    while ((n = getline(&line, &cap, fp)) >= 0) {
        size_t k = (size_t)n;
        if (k && line[k - 1] == '\n') k--;
        if (k && line[k - 1] == '\r') k--;
        if ((st = sf_encoder_check_prompt(line, k, err))) { /* before reading on, before any work */
            char m2[sizeof err->msg];
            snprintf(m2, sizeof m2, "%s", err->msg);
            st = sf_fail(err, st, "%s: prompt %zu: %s", path, p->n, m2);
            break;
        }
        if (!pl_add(p, line, k)) { st = sf_fail(err, SF_E_NOMEM, "out of memory reading prompts"); break; }
    }
    free(line);
    if (fp != stdin) fclose(fp);
    return st;
}

/* Prompts from a wire stream: every tensor message named "prompt" (u8 [n], UTF-8 text) until
 * end — the same message a --serve request carries. Other messages are skipped. */
static sf_status read_prompt_stream(const char *url, double wire_timeout, prompt_list *p, sf_err *err) {
    sf_wire *r = NULL;
    sf_wire_msg *m = malloc(sizeof *m);
    sf_wire_opts wo = {wire_timeout, 1u << 20}; /* a prompt's UTF-8 text: 1 MiB is far beyond any */
    sf_status st = m ? sf_wire_open_reader_opts(url, &wo, &r, err) : sf_fail(err, SF_E_NOMEM, "out of memory");
    while (!st) {
        const void *payload = NULL;
        if ((st = sf_wire_recv(r, m, &payload, err)) || m->type == SF_WIRE_END) break;
        if (strcmp(m->name, "prompt") != 0) continue;
        if (m->dtype != SF_U8 || m->ndim != 1) {
            st = sf_fail(err, SF_E_FORMAT, "%s: a 'prompt' message must be u8 [n] UTF-8 text", url);
            break;
        }
        if (!pl_add(p, payload, (size_t)m->shape[0])) st = sf_fail(err, SF_E_NOMEM, "out of memory reading prompts");
    }
    sf_wire_close(&r, NULL);
    free(m);
    return st;
}

/* Prefix err with "prompt i: ". */
static sf_status prompt_fail(sf_status st, size_t i, sf_err *err) {
    char m2[sizeof err->msg];
    snprintf(m2, sizeof m2, "%s", err->msg);
    return sf_fail(err, st, "prompt %zu: %s", i, m2);
}

/* One prompt: locally (enc) or by asking a server (cl). */
static sf_status encode_one(sf_encoder *enc, sf_encode_client *cl, const prompt_list *pl, size_t i, int64_t tl,
                            sf_encoded *r, sf_err *err) {
    sf_status st = cl ? sf_encode_client_run(cl, pl->s[i], pl->len[i], tl, (int64_t)i, r, err)
                      : sf_encoder_run(enc, pl->s[i], pl->len[i], tl, r, err);
    return st ? prompt_fail(st, i, err) : SF_OK;
}

static sf_status send_embeds(sf_wire *w, const sf_encoded *r, size_t i, sf_err *err) {
    int64_t shp[2] = {r->seq_len, r->dim};
    sf_tensor t = sf_tensor_view(r->emb, SF_F32, 2, shp);
    sf_wire_msg *msg = malloc(sizeof *msg);
    if (!msg) return sf_fail(err, SF_E_NOMEM, "out of memory");
    sf_status st;
    if (!(st = sf_wire_msg_tensor(msg, "prompt_embeds", &t, err)) &&
        !(st = sf_wire_meta_set_str(msg, "prompt", r->cleaned, err)) &&
        !(st = sf_wire_meta_set_int(msg, "n_tokens", r->n_tokens, err)) &&
        !(st = sf_wire_meta_set_int(msg, "index", (int64_t)i, err)) &&
        !(st = sf_wire_meta_set_str(msg, "cache_key", r->key, err)))
        st = sf_wire_send(w, msg, r->emb, err);
    if (!st) sf_trace("encode", "embeds_out", (int64_t)i, r->n_tokens);
    free(msg);
    return st;
}

/* emb.<i> [N, D] f32, ids.<i> [N] i64, mask.<i> [N] i64 (DESIGN.md §5). */
static sf_status save_embeds(const char *path, const sf_encoded *res, size_t n, sf_err *err) {
    sf_status st = SF_OK;
    sf_tensor_entry *ents = sf_calloc2(3 * n, sizeof *ents);
    char(*names)[32] = sf_calloc2(3 * n, 32);
    if (!ents || !names) st = sf_fail(err, SF_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < n; i++) {
        int64_t se[2] = {res[i].seq_len, res[i].dim}, si[1] = {res[i].seq_len};
        snprintf(names[3 * i], 32, "emb.%zu", i);
        snprintf(names[3 * i + 1], 32, "ids.%zu", i);
        snprintf(names[3 * i + 2], 32, "mask.%zu", i);
        ents[3 * i] = (sf_tensor_entry){names[3 * i], sf_tensor_view(res[i].emb, SF_F32, 2, se)};
        ents[3 * i + 1] = (sf_tensor_entry){names[3 * i + 1], sf_tensor_view(res[i].ids, SF_I64, 1, si)};
        ents[3 * i + 2] = (sf_tensor_entry){names[3 * i + 2], sf_tensor_view(res[i].mask, SF_I64, 1, si)};
    }
    if (!st) {
        const char *meta[] = {"producer", "sf-encode " SF_VERSION};
        st = sf_safetensors_write(path, ents, 3 * n, meta, 1, err);
    }
    free(ents), free(names);
    return st;
}

static sf_status run_tokens_only(sf_encoder *enc, const prompt_list *pl, int64_t tl, sf_err *err) {
    sf_status st = SF_OK;
    int64_t *ids = sf_calloc2((size_t)tl, 8), *mask = sf_calloc2((size_t)tl, 8), n = 0;
    if (!ids || !mask) st = sf_fail(err, SF_E_NOMEM, "out of memory");
    for (size_t i = 0; i < pl->n && !st; i++) {
        if ((st = sf_encoder_tokens(enc, pl->s[i], pl->len[i], tl, ids, mask, &n, err))) {
            st = prompt_fail(st, i, err);
            break;
        }
        for (int64_t k = 0; k < n; k++) printf(k ? " %lld" : "%lld", (long long)ids[k]);
        printf("\n");
    }
    free(ids), free(mask);
    if (!st && fflush(stdout) != 0) st = sf_fail(err, SF_E_IO, "cannot write to stdout");
    return st;
}

/* Encode every prompt (locally or via a server) and write the requested outputs; with neither
 * save nor out_url it only fills the cache (--cache-only). */
static sf_status run_encode(sf_encoder *enc, sf_encode_client *cl, const prompt_list *pl, int64_t tl,
                            const char *save, const char *out_url, double wire_timeout, int progress, sf_err *err) {
    double t0 = sf_now();
    sf_status st = SF_OK;
    sf_wire *w = NULL;
    size_t done = 0;
    if (out_url && (st = sf_wire_open_writer_opts(out_url, &(sf_wire_opts){wire_timeout, 0}, &w, err))) return st;
    sf_encoded *res = sf_calloc2(pl->n, sizeof *res);
    if (!res) st = sf_fail(err, SF_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < pl->n; i++) {
        if ((st = encode_one(enc, cl, pl, i, tl, &res[i], err))) break;
        done++;
        if (progress)
            fprintf(stderr, "\rsf-encode: prompt %zu/%zu  %.1fs  %.2f prompts/s   %s", done, pl->n, sf_now() - t0,
                    (double)done / (sf_now() - t0 + 1e-9), done == pl->n ? "\n" : "");
        if (w && (st = send_embeds(w, &res[i], i, err))) break;
        if (!save) sf_encoded_free(&res[i]);
    }
    if (!st && save) st = save_embeds(save, res, pl->n, err);
    if (w) {
        sf_err e2;
        if (st) sf_wire_send_error(w, err->msg, &e2);
        else st = sf_wire_send_end(w, err);
        sf_status cst = sf_wire_close(&w, st ? &e2 : err);
        if (!st) st = cst;
    }
    for (size_t i = 0; res && i < pl->n; i++) sf_encoded_free(&res[i]);
    free(res);
    if (!st) sf_info("%zu prompt(s) done%s", done, !save && !out_url ? " (cache filled, no output)" : "");
    return st;
}

static void usage_die(const char *prog, const char *msg) {
    sf_err e;
    snprintf(e.msg, sizeof e.msg, "%s", msg);
    sf_die(prog, SF_E_ARG, &e);
}

int main(int argc, char **argv) {
    const char *prog = "sf-encode";
    sf_args a = {0};
    sf_err err = {{0}};
    sf_status st = SF_OK;
    if (sf_args_main(argc, argv, prog,
                     "[--prompt TEXT]... [--prompts FILE] [--save-embeds FILE | --out URL | --tokens-only | "
                     "--cache-only] [--server URL] | --serve URL | --list",
                     opts, &a))
        return 0;
    if ((st = sf_stop_install(&err))) sf_die(prog, st, &err); /* SIGINT/SIGTERM: stop per layer, exit 130/143 */
    long text_len = 512, threads = 0;
    double timeout_s = 0;
    if (sf_args_get(&a, opts, "text-len") &&
        (st = sf_arg_long("text-len", sf_args_get(&a, opts, "text-len"), 1, 1 << 20, &text_len, &err)))
        sf_die(prog, st, &err);
    if (sf_args_get(&a, opts, "threads") &&
        (st = sf_arg_long("threads", sf_args_get(&a, opts, "threads"), 1, 1024, &threads, &err)))
        sf_die(prog, st, &err);
    if (sf_args_get(&a, opts, "server-timeout") &&
        (st = sf_arg_double("server-timeout", sf_args_get(&a, opts, "server-timeout"), &timeout_s, &err)))
        sf_die(prog, st, &err);
    if (!(timeout_s >= 0)) usage_die(prog, "--server-timeout must be >= 0");
    if (threads == 0) threads = sf_cpu_count();
    sf_stage_flags sh; /* --device / --gpu-id, --model-dir, --progress: common/cli.c */
    if ((st = sf_stage_flags_get(&a, opts, &sh, &err))) sf_die(prog, st, &err);
    const sf_device dev = {sh.cuda, sh.ordinal};
    char dev_s[32];
    snprintf(dev_s, sizeof dev_s, "cuda:%d", sh.ordinal);
    int low_memory = sf_args_has(&a, opts, "low-memory");
    if (sf_args_get(&a, opts, "bench")) {
        if ((st = sf_encode_bench(sf_args_get(&a, opts, "bench"), dev.cuda ? dev.ordinal : -1, &err)))
            sf_die(prog, st, &err);
        sf_args_free(&a);
        return 0;
    }
    /* modes and outputs: check combinations before anything is loaded */
    const char *serve_url = sf_args_get(&a, opts, "serve"), *server_url = sf_args_get(&a, opts, "server");
    if (!server_url) server_url = sf_args_get(&a, opts, "connect");
    const char *save = sf_args_get(&a, opts, "save-embeds"), *out_url = sf_args_get(&a, opts, "out");
    int tokens_only = sf_args_has(&a, opts, "tokens-only"), cache_only = sf_args_has(&a, opts, "cache-only");
    int list = sf_args_has(&a, opts, "list"), use_cache = !sf_args_has(&a, opts, "no-cache");
    int has_prompts = sf_args_get(&a, opts, "prompt") || sf_args_get(&a, opts, "prompts");
    if (sf_args_has(&a, opts, "stop-route")) { /* a script's Ctrl-C for a live run */
        if (!server_url || serve_url) usage_die(prog, "--stop-route needs --server URL");
        sf_encode_client *sc = NULL;
        if ((st = sf_encode_url_check(server_url, &err)) || (st = sf_wire_install_signals(&err)) ||
            (st = sf_encode_client_open(server_url, timeout_s, &sc, &err)) || (st = sf_encode_client_stop_route(sc, &err)))
            sf_die(prog, st, &err);
        sf_encode_client_close(&sc);
        sf_args_free(&a);
        return 0;
    }
    if (serve_url && (server_url || save || tokens_only || cache_only || list || sf_args_get(&a, opts, "prompts") ||
                      (has_prompts && !out_url)))
        usage_die(prog, "--serve URL runs a server: it takes no --prompts/--save-embeds/--tokens-only/--cache-only/"
                        "--list/--server (--out URL with one --prompt: the live route, README \"Live\")");
    if (cache_only && (save || out_url || tokens_only))
        usage_die(prog, "--cache-only writes no output: drop --out/--save-embeds/--tokens-only");
    if (cache_only && !use_cache && !server_url) usage_die(prog, "--cache-only needs the cache: drop --no-cache");
    if (server_url && (tokens_only || list))
        usage_die(prog, "--tokens-only and --list run locally: drop --server");
    if (!serve_url && !list && !tokens_only && !cache_only && !save && !out_url) {
        if (isatty(1))
            usage_die(prog, "stdout is a terminal: give --out URL, --save-embeds FILE or --cache-only, or pipe it "
                            "(sf-encode --prompt TEXT | sf-denoise | sf-decode -o out.y4m)");
        out_url = "-";
    }
    if ((serve_url && (st = sf_encode_url_check(serve_url, &err))) ||
        (server_url && (st = sf_encode_url_check(server_url, &err))))
        sf_die(prog, st, &err);
    if (server_url && (sf_args_get(&a, opts, "cache-dir") || !use_cache))
        sf_warn("--cache-dir/--no-cache are ignored with --server (the server uses its own cache)");
    /* the device: one clear line before any work when it cannot be used — no driver or GPU, an old
     * GPU, no cuBLASLt (a context is made and dropped: the encoder itself loads lazily, on the first
     * cache miss, so this is the only early check; too little memory shows at that load) */
    if (low_memory && !dev.cuda) sf_warn("--low-memory applies to --device cuda; the CPU encoder maps its weights anyway");
    if (dev.cuda && (server_url || tokens_only || list)) {
        sf_warn("--device %s is ignored with %s (no encoder runs here)", dev_s,
                server_url ? "--server" : tokens_only ? "--tokens-only" : "--list");
    } else if (dev.cuda) {
        sf_cuda_ctx probe;
        st = sf_cuda_ctx_init(&probe, dev.ordinal, &err);
        sf_cuda_ctx_free(&probe);
        if (st) sf_die(prog, st, &err);
    }
    /* cache folder */
    char cache_dir[4096] = "";
    if (sf_args_get(&a, opts, "cache-dir")) snprintf(cache_dir, sizeof cache_dir, "%s", sf_args_get(&a, opts, "cache-dir"));
    else if (!server_url && (use_cache || list) && (st = sf_cache_default_dir(cache_dir, sizeof cache_dir, &err)))
        sf_die(prog, st, &err);
    if (list) {
        st = sf_cache_list(cache_dir, stdout, &err);
        sf_args_free(&a);
        if (st) sf_die(prog, st, &err);
        return 0;
    }
    /* model paths */
    const char *mdir = sh.model_dir;
    char tok_path[4096], w_path[4096];
    if (sf_args_get(&a, opts, "tokenizer")) snprintf(tok_path, sizeof tok_path, "%s", sf_args_get(&a, opts, "tokenizer"));
    else snprintf(tok_path, sizeof tok_path, "%s/google/umt5-xxl/spiece.model", mdir);
    if (sf_args_get(&a, opts, "weights")) snprintf(w_path, sizeof w_path, "%s", sf_args_get(&a, opts, "weights"));
    else snprintf(w_path, sizeof w_path, "%s/models_t5_umt5-xxl-enc-bf16.pth", mdir);
    sf_encoder enc;
    if (serve_url) {
        if ((st = sf_encoder_init(&enc, tok_path, w_path, cache_dir, use_cache, (int)threads, &err))) sf_die(prog, st, &err);
        sf_encoder_set_device(&enc, dev.cuda ? dev.ordinal : -1, low_memory);
        sf_wire *fwd = NULL; /* the live route: the opening --prompt and forwarded requests go down --out */
        if (out_url && (st = sf_wire_open_writer(out_url, &fwd, &err))) sf_die(prog, st, &err);
        st = sf_encode_serve_fwd(&enc, serve_url, text_len, fwd, sf_args_get(&a, opts, "prompt"), &err);
        sf_wire_close(&fwd, NULL);
        sf_encoder_free(&enc);
        sf_args_free(&a);
        if (st) sf_die(prog, st, &err);
        return 0;
    }
    int show_progress = sh.progress != SF_PROGRESS_NONE; /* a line per prompt (bar and lines alike) */
    /* prompts */
    prompt_list pl = {0};
    const char **pv = NULL;
    int np = sf_args_all(&a, opts, "prompt", &pv);
    for (int i = 0; i < np; i++)
        if (!pl_add(&pl, pv[i], strlen(pv[i]))) sf_die(prog, SF_E_NOMEM, &(sf_err){"out of memory"});
    free(pv);
    const char *pf = sf_args_get(&a, opts, "prompts"), *in_url = sf_args_get(&a, opts, "in");
    if (!pf && !in_url && np == 0 && !isatty(0)) pf = "-";
    if (pf && (st = read_prompts(pf, &pl, &err))) sf_die(prog, st, &err);
    if (in_url && (st = read_prompt_stream(in_url, sh.wire_timeout, &pl, &err))) sf_die(prog, st, &err);
    if (pl.n == 0) usage_die(prog, "no prompts: give --prompt TEXT, --prompts FILE or lines on stdin");
    for (size_t i = 0; i < pl.n; i++) /* every prompt checked before the encoder loads */
        if ((st = sf_encoder_check_prompt(pl.s[i], pl.len[i], &err))) sf_die(prog, prompt_fail(st, i, &err), &err);

    sf_encode_client *cl = NULL;
    if (server_url) st = sf_encode_client_open(server_url, timeout_s, &cl, &err);
    else if (!(st = sf_encoder_init(&enc, tok_path, w_path, cache_dir, use_cache, (int)threads, &err)))
        sf_encoder_set_device(&enc, dev.cuda ? dev.ordinal : -1, low_memory);
    if (st) sf_die(prog, st, &err);
    if (tokens_only) st = run_tokens_only(&enc, &pl, text_len, &err);
    else st = run_encode(cl ? NULL : &enc, cl, &pl, text_len, save, out_url, sh.wire_timeout, show_progress, &err);
    if (cl) sf_encode_client_close(&cl);
    else sf_encoder_free(&enc);
    pl_free(&pl);
    sf_args_free(&a);
    if (st) sf_die(prog, st, &err);
    return 0;
}
