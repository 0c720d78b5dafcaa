/* stage.c — sf-encode's flags gathered and its run (stage.h). Moved out of main.c unchanged in
 * behaviour: the same checks in the same order, the same messages; failures return a status (main
 * turns it into the exit line). */
#define _POSIX_C_SOURCE 200809L
#include "stages/encode/stage.h"

#include "cuda_ops.h"
#include "device.h"
#include "parallel.h"
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
                            const char *save, const char *out_url, double wire_timeout, sf_progress_mode progress, sf_err *err) {
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
        if (progress) /* bar: one '\r' line, ended when the last prompt is done (or below, on a failure); lines: a line each */
            fprintf(stderr, "%ssf-encode: prompt %zu/%zu  %.1fs  %.2f prompts/s%s", progress == SF_PROGRESS_BAR ? "\r" : "",
                    done, pl->n, sf_now() - t0, (double)done / (sf_now() - t0 + 1e-9),
                    progress == SF_PROGRESS_LINES || done == pl->n ? "\n" : "   ");
        if (w && (st = send_embeds(w, &res[i], i, err))) break;
        if (!save) sf_encoded_free(&res[i]);
    }
    if (progress == SF_PROGRESS_BAR && done && done < pl->n) fputc('\n', stderr); /* the error line starts its own */
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

/* ---- flags -------------------------------------------------------------------------------- */

sf_status sf_encode_opts_get(const sf_args *a, const sf_opt *opts, sf_encode_opts *o, sf_err *err) {
    sf_status st;
    memset(o, 0, sizeof *o);
    o->text_len = 512;
    if (sf_args_get(a, opts, "text-len") &&
        (st = sf_arg_long("text-len", sf_args_get(a, opts, "text-len"), 1, 1 << 20, &o->text_len, err)))
        return st;
    if (sf_args_get(a, opts, "threads") &&
        (st = sf_arg_long("threads", sf_args_get(a, opts, "threads"), 1, 1024, &o->threads, err)))
        return st;
    if (sf_args_get(a, opts, "server-timeout") &&
        (st = sf_arg_double("server-timeout", sf_args_get(a, opts, "server-timeout"), &o->timeout_s, err)))
        return st;
    if (!(o->timeout_s >= 0)) return sf_fail(err, SF_E_ARG, "--server-timeout must be >= 0");
    if (o->threads == 0) o->threads = sf_cpu_count();
    if ((st = sf_stage_flags_get(a, opts, &o->sh, err))) return st; /* --device / --gpu-id, --model-dir, --progress */
    o->low_memory = sf_args_has(a, opts, "low-memory");
    if ((o->bench = sf_args_get(a, opts, "bench"))) return SF_OK;
    /* modes and outputs: check combinations before anything is loaded */
    o->serve_url = sf_args_get(a, opts, "serve"), o->server_url = sf_args_get(a, opts, "server");
    if (!o->server_url) o->server_url = sf_args_get(a, opts, "connect");
    o->save = sf_args_get(a, opts, "save-embeds"), o->out_url = sf_args_get(a, opts, "out");
    o->tokens_only = sf_args_has(a, opts, "tokens-only"), o->cache_only = sf_args_has(a, opts, "cache-only");
    o->list = sf_args_has(a, opts, "list"), o->use_cache = !sf_args_has(a, opts, "no-cache");
    o->prompts_file = sf_args_get(a, opts, "prompts"), o->in_url = sf_args_get(a, opts, "in");
    o->first_prompt = sf_args_get(a, opts, "prompt");
    const int has_prompts = o->first_prompt || o->prompts_file;
    if ((o->stop_route = sf_args_has(a, opts, "stop-route"))) { /* a script's Ctrl-C for a live run */
        if (!o->server_url || o->serve_url) return sf_fail(err, SF_E_ARG, "--stop-route needs --server URL");
        return sf_encode_url_check(o->server_url, err);
    }
    if (o->serve_url && (o->server_url || o->save || o->tokens_only || o->cache_only || o->list || o->prompts_file ||
                         (has_prompts && !o->out_url)))
        return sf_fail(err, SF_E_ARG,
                       "--serve URL runs a server: it takes no --prompts/--save-embeds/--tokens-only/--cache-only/"
                       "--list/--server (--out URL with one --prompt: the live route, README \"Live\")");
    /* the outputs' folders before the encoder loads (minutes for umT5-XXL on a CPU) */
    if ((st = sf_check_out_dir("--save-embeds", o->save, 0, err)) || (st = sf_check_out_dir("--out", o->out_url, 0, err)))
        return st;
    if (o->cache_only && (o->save || o->out_url || o->tokens_only))
        return sf_fail(err, SF_E_ARG, "--cache-only writes no output: drop --out/--save-embeds/--tokens-only");
    if (o->cache_only && !o->use_cache && !o->server_url)
        return sf_fail(err, SF_E_ARG, "--cache-only needs the cache: drop --no-cache");
    if (o->server_url && (o->tokens_only || o->list))
        return sf_fail(err, SF_E_ARG, "--tokens-only and --list run locally: drop --server");
    if (!o->serve_url && !o->list && !o->tokens_only && !o->cache_only && !o->save && !o->out_url) {
        if (isatty(1))
            return sf_fail(err, SF_E_ARG,
                           "stdout is a terminal: give --out URL, --save-embeds FILE or --cache-only, or pipe it "
                           "(sf-encode --prompt TEXT | sf-denoise | sf-decode -o out.y4m)");
        o->out_url = "-";
    }
    if ((o->serve_url && (st = sf_encode_url_check(o->serve_url, err))) ||
        (o->server_url && (st = sf_encode_url_check(o->server_url, err))))
        return st;
    if (o->server_url && (sf_args_get(a, opts, "cache-dir") || !o->use_cache))
        sf_warn("--cache-dir/--no-cache are ignored with --server (the server uses its own cache)");
    /* the device: one clear line before any work when it cannot be used — no driver or GPU, an old
     * GPU, no cuBLASLt (a context is made and dropped: the encoder itself loads lazily, on the first
     * cache miss, so this is the only early check; too little memory shows at that load) */
    if (o->low_memory && !o->sh.cuda) sf_warn("--low-memory applies to --device cuda; the CPU encoder maps its weights anyway");
    if (o->sh.cuda && (o->server_url || o->tokens_only || o->list)) {
        sf_warn("--device cuda:%d is ignored with %s (no encoder runs here)", o->sh.ordinal,
                o->server_url ? "--server" : o->tokens_only ? "--tokens-only" : "--list");
    } else if (o->sh.cuda) {
        sf_cuda_ctx probe;
        st = sf_cuda_ctx_init(&probe, o->sh.ordinal, err);
        sf_cuda_ctx_free(&probe);
        if (st) return st;
    }
    /* cache folder */
    if (sf_args_get(a, opts, "cache-dir")) snprintf(o->cache_dir, sizeof o->cache_dir, "%s", sf_args_get(a, opts, "cache-dir"));
    else if (!o->server_url && (o->use_cache || o->list) &&
             (st = sf_cache_default_dir(o->cache_dir, sizeof o->cache_dir, err)))
        return st;
    /* model paths */
    const char *mdir = o->sh.model_dir;
    if (sf_args_get(a, opts, "tokenizer")) snprintf(o->tok_path, sizeof o->tok_path, "%s", sf_args_get(a, opts, "tokenizer"));
    else sf_tokenizer_default_path(mdir, o->tok_path, sizeof o->tok_path); /* tokenizer.json first, as the reference */
    if (sf_args_get(a, opts, "weights")) snprintf(o->w_path, sizeof o->w_path, "%s", sf_args_get(a, opts, "weights"));
    else snprintf(o->w_path, sizeof o->w_path, "%s/models_t5_umt5-xxl-enc-bf16.pth", mdir);
    o->np = sf_args_all(a, opts, "prompt", &o->pv);
    return SF_OK;
}

/* ---- the run ------------------------------------------------------------------------------ */

/* --stop-route: ask the server to end its live run. */
static sf_status stop_route(const sf_encode_opts *o, sf_err *err) {
    sf_encode_client *sc = NULL;
    sf_status st;
    if (!(st = sf_wire_install_signals(err)) && !(st = sf_encode_client_open(o->server_url, o->timeout_s, &sc, err)))
        st = sf_encode_client_stop_route(sc, err);
    sf_encode_client_close(&sc);
    return st;
}

/* --serve: the resident server (and the live route: the opening --prompt and forwarded requests go
 * down --out). */
static sf_status serve(const sf_encode_opts *o, sf_err *err) {
    sf_encoder enc;
    sf_status st = sf_encoder_init(&enc, o->tok_path, o->w_path, o->cache_dir, o->use_cache, (int)o->threads, err);
    if (st) return st;
    sf_encoder_set_device(&enc, o->sh.cuda ? o->sh.ordinal : -1, o->low_memory);
    sf_wire *fwd = NULL;
    if (!(o->out_url && (st = sf_wire_open_writer(o->out_url, &fwd, err))))
        st = sf_encode_serve_fwd(&enc, o->serve_url, o->text_len, fwd, o->first_prompt, err);
    sf_wire_close(&fwd, NULL);
    sf_encoder_free(&enc);
    return st;
}

sf_status sf_encode_stage_run(sf_encode_opts *o, sf_err *err) {
    sf_status st = SF_OK;
    prompt_list pl = {0};
    if (o->stop_route) st = stop_route(o, err);
    else if (o->list) st = sf_cache_list(o->cache_dir, stdout, err);
    else if (o->serve_url) st = serve(o, err);
    if (o->stop_route || o->list || o->serve_url) goto done;
    /* prompts */
    for (int i = 0; i < o->np && !st; i++)
        if (!pl_add(&pl, o->pv[i], strlen(o->pv[i]))) st = sf_fail(err, SF_E_NOMEM, "out of memory");
    const char *pf = o->prompts_file;
    if (!pf && !o->in_url && o->np == 0 && !isatty(0)) pf = "-";
    if (!st && pf) st = read_prompts(pf, &pl, err);
    if (!st && o->in_url) st = read_prompt_stream(o->in_url, o->sh.wire_timeout, &pl, err);
    if (!st && pl.n == 0) st = sf_fail(err, SF_E_ARG, "no prompts: give --prompt TEXT, --prompts FILE or lines on stdin");
    for (size_t i = 0; !st && i < pl.n; i++) /* every prompt checked before the encoder loads */
        if ((st = sf_encoder_check_prompt(pl.s[i], pl.len[i], err))) st = prompt_fail(st, i, err);
    if (st) goto done;
    sf_encoder enc;
    sf_encode_client *cl = NULL;
    if (o->server_url) st = sf_encode_client_open(o->server_url, o->timeout_s, &cl, err);
    else if (!(st = sf_encoder_init(&enc, o->tok_path, o->w_path, o->cache_dir, o->use_cache, (int)o->threads, err)))
        sf_encoder_set_device(&enc, o->sh.cuda ? o->sh.ordinal : -1, o->low_memory);
    if (st) goto done;
    const sf_progress_mode progress = o->sh.progress;
    if (o->tokens_only) st = run_tokens_only(&enc, &pl, o->text_len, err);
    else st = run_encode(cl ? NULL : &enc, cl, &pl, o->text_len, o->save, o->out_url, o->sh.wire_timeout, progress, err);
    if (cl) sf_encode_client_close(&cl);
    else sf_encoder_free(&enc);
done:
    pl_free(&pl);
    free(o->pv);
    o->pv = NULL;
    return st;
}
