/* main.c — sf-encode: prompts → umT5 token ids → umT5-XXL embeddings (`prompt_embeds`).
 *
 * Mirrors the reference's text-encoder step (utils/wan_wrapper.py WanTextEncoder, called by
 * inference.py / the extraction scripts). Flags, prompt sources and outputs: see --help and
 * /work/notes/encode.md. Tested by tests/bats/sf-encode.bats. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "device.h"
#include "parallel.h"
#include "stages/encode/cache.h"
#include "stages/encode/encode.h"
#include "tfile.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const sf_opt opts[] = {
    {"prompt", 'p', SF_ARG_VALUE, "TEXT\ta prompt (repeatable)"},
    {"prompts", 0, SF_ARG_VALUE, "FILE\tprompts, one per line ('-' = stdin; default when no --prompt and stdin is not a terminal)"},
    {"model-dir", 0, SF_ARG_VALUE, "DIR\tWan2.1-T2V-1.3B folder (default $SF_MODEL_DIR or wan_models/Wan2.1-T2V-1.3B)"},
    {"tokenizer", 0, SF_ARG_VALUE, "FILE\tspiece.model (default DIR/google/umt5-xxl/spiece.model)"},
    {"weights", 0, SF_ARG_VALUE, "FILE\tencoder weights (default DIR/models_t5_umt5-xxl-enc-bf16.pth)"},
    {"text-len", 0, SF_ARG_VALUE, "N\ttokens per prompt incl. eos, padded (default 512)"},
    {"save-embeds", 0, SF_ARG_VALUE, "FILE\twrite emb.<i> [N, D] f32, ids.<i>, mask.<i> (safetensors)"},
    {"tokens-only", 0, SF_ARG_FLAG, "print the token ids of each prompt (one line each) and exit"},
    {"out", 'o', SF_ARG_VALUE, "URL\twire output: one prompt_embeds message per prompt (default '-' when stdout is not a terminal)"},
    {"cache-dir", 0, SF_ARG_VALUE, "DIR\tembedding cache (default $XDG_CACHE_HOME/sfpipe/embeds)"},
    {"no-cache", 0, SF_ARG_FLAG, "neither read nor write the cache"},
    {"list", 0, SF_ARG_FLAG, "list the cache entries and exit"},
    {"threads", 0, SF_ARG_VALUE, "N\tCPU threads (default: all)"},
    {"device", 0, SF_ARG_VALUE, "DEV\tcpu (cuda falls back to cpu with a warning)"},
    {"gpu-id", 0, SF_ARG_VALUE, "N\talias of --device cuda:N"},
    {"log-level", 0, SF_ARG_VALUE, "L\terror|warn|info|debug"},
    {"help", 'h', SF_ARG_FLAG, "show this help"},
    {"version", 0, SF_ARG_FLAG, "print the version"},
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
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!fp) return sf_fail(err, SF_E_IO, "cannot open prompts file %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    sf_status st = SF_OK;
    while ((n = getline(&line, &cap, fp)) >= 0) {
        size_t k = (size_t)n;
        if (k && line[k - 1] == '\n') k--;
        if (k && line[k - 1] == '\r') k--;
        if (!pl_add(p, line, k)) { st = sf_fail(err, SF_E_NOMEM, "out of memory reading prompts"); break; }
    }
    free(line);
    if (fp != stdin) fclose(fp);
    return st;
}

int main(int argc, char **argv) {
    const char *prog = "sf-encode";
    sf_log_set_prefix(prog);
    sf_args a = {0};
    sf_err err = {{0}};
    sf_status st = sf_args_parse(argc, argv, opts, &a, &err);
    if (st) sf_die(prog, st, &err);
    if (sf_args_has(&a, opts, "help")) {
        sf_args_usage(prog, "[--prompt TEXT]... [--prompts FILE] [--save-embeds FILE | --out URL | --tokens-only]",
                      opts);
        return 0;
    }
    if (sf_args_has(&a, opts, "version")) {
        printf("sf-encode %s\n", SF_VERSION);
        return 0;
    }
    const char *lv = sf_args_get(&a, opts, "log-level");
    if (lv) {
        int l = sf_log_parse_level(lv);
        if (l < 0) sf_die(prog, SF_E_ARG, &(sf_err){"--log-level: expected error|warn|info|debug"});
        sf_log_set_level(l);
    }
    long text_len = 512, threads = 0;
    if (sf_args_get(&a, opts, "text-len") &&
        (st = sf_arg_long("text-len", sf_args_get(&a, opts, "text-len"), 1, 1 << 20, &text_len, &err)))
        sf_die(prog, st, &err);
    if (sf_args_get(&a, opts, "threads") &&
        (st = sf_arg_long("threads", sf_args_get(&a, opts, "threads"), 1, 1024, &threads, &err)))
        sf_die(prog, st, &err);
    if (threads == 0) threads = sf_cpu_count();
    const char *dev_s = sf_args_get(&a, opts, "device");
    char devbuf[32];
    if (!dev_s && sf_args_get(&a, opts, "gpu-id")) {
        snprintf(devbuf, sizeof devbuf, "cuda:%s", sf_args_get(&a, opts, "gpu-id"));
        dev_s = devbuf;
    }
    if (dev_s) {
        sf_device dev;
        if ((st = sf_device_parse(dev_s, &dev, &err))) sf_die(prog, st, &err);
        if (dev.cuda) sf_warn("--device %s: the umT5 encoder runs on the CPU only; using cpu", dev_s);
    }
    /* cache folder */
    char cache_dir[4096] = "";
    int use_cache = !sf_args_has(&a, opts, "no-cache");
    if (sf_args_get(&a, opts, "cache-dir")) snprintf(cache_dir, sizeof cache_dir, "%s", sf_args_get(&a, opts, "cache-dir"));
    else if ((use_cache || sf_args_has(&a, opts, "list")) &&
             (st = sf_cache_default_dir(cache_dir, sizeof cache_dir, &err)))
        sf_die(prog, st, &err);
    if (sf_args_has(&a, opts, "list")) {
        st = sf_cache_list(cache_dir, stdout, &err);
        sf_args_free(&a);
        if (st) sf_die(prog, st, &err);
        return 0;
    }
    /* model paths */
    const char *mdir = sf_args_get(&a, opts, "model-dir");
    if (!mdir) mdir = getenv("SF_MODEL_DIR");
    if (!mdir || !*mdir) mdir = "wan_models/Wan2.1-T2V-1.3B";
    char tok_path[4096], w_path[4096];
    if (sf_args_get(&a, opts, "tokenizer")) snprintf(tok_path, sizeof tok_path, "%s", sf_args_get(&a, opts, "tokenizer"));
    else snprintf(tok_path, sizeof tok_path, "%s/google/umt5-xxl/spiece.model", mdir);
    if (sf_args_get(&a, opts, "weights")) snprintf(w_path, sizeof w_path, "%s", sf_args_get(&a, opts, "weights"));
    else snprintf(w_path, sizeof w_path, "%s/models_t5_umt5-xxl-enc-bf16.pth", mdir);
    /* prompts */
    prompt_list pl = {0};
    const char **pv = NULL;
    int np = sf_args_all(&a, opts, "prompt", &pv);
    for (int i = 0; i < np; i++)
        if (!pl_add(&pl, pv[i], strlen(pv[i]))) sf_die(prog, SF_E_NOMEM, &(sf_err){"out of memory"});
    free(pv);
    const char *pf = sf_args_get(&a, opts, "prompts");
    if (!pf && np == 0 && !isatty(0)) pf = "-";
    if (pf && (st = read_prompts(pf, &pl, &err))) sf_die(prog, st, &err);
    if (pl.n == 0) sf_die(prog, SF_E_ARG, &(sf_err){"no prompts: give --prompt TEXT, --prompts FILE or lines on stdin"});

    sf_encoder enc;
    if ((st = sf_encoder_init(&enc, tok_path, w_path, cache_dir, use_cache, (int)threads, &err))) sf_die(prog, st, &err);
    int rc = 0;
    if (sf_args_has(&a, opts, "tokens-only")) {
        int64_t *ids = sf_calloc2((size_t)text_len, 8), *mask = sf_calloc2((size_t)text_len, 8), n = 0;
        if (!ids || !mask) sf_die(prog, SF_E_NOMEM, &(sf_err){"out of memory"});
        for (size_t i = 0; i < pl.n && !st; i++) {
            if ((st = sf_encoder_tokens(&enc, pl.s[i], pl.len[i], text_len, ids, mask, &n, &err))) {
                char m2[sizeof err.msg];
                snprintf(m2, sizeof m2, "%s", err.msg);
                sf_fail(&err, st, "prompt %zu: %s", i, m2);
                break;
            }
            for (int64_t k = 0; k < n; k++) printf(k ? " %lld" : "%lld", (long long)ids[k]);
            printf("\n");
        }
        free(ids), free(mask);
        sf_encoder_free(&enc);
        pl_free(&pl);
        sf_args_free(&a);
        if (st) sf_die(prog, st, &err);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    const char *save = sf_args_get(&a, opts, "save-embeds"), *out_url = sf_args_get(&a, opts, "out");
    if (!save && !out_url && !isatty(1)) out_url = "-";
    if (!save && !out_url) sf_info("no --out / --save-embeds: only filling the cache");
    sf_wire *w = NULL;
    if (out_url && (st = sf_wire_open_writer(out_url, &w, &err))) sf_die(prog, st, &err);
    sf_encoded *res = sf_calloc2(pl.n, sizeof *res);
    if (!res) sf_die(prog, SF_E_NOMEM, &(sf_err){"out of memory"});
    size_t done = 0;
    for (size_t i = 0; i < pl.n; i++) {
        if ((st = sf_encoder_run(&enc, pl.s[i], pl.len[i], text_len, &res[i], &err))) {
            char m2[sizeof err.msg];
            snprintf(m2, sizeof m2, "%s", err.msg);
            sf_fail(&err, st, "prompt %zu: %s", i, m2);
            break;
        }
        done++;
        if (w) {
            int64_t shp[2] = {res[i].seq_len, res[i].dim};
            sf_tensor t = sf_tensor_view(res[i].emb, SF_F32, 2, shp);
            sf_wire_msg *msg = malloc(sizeof *msg);
            if (!msg) { st = sf_fail(&err, SF_E_NOMEM, "out of memory"); break; }
            if (!(st = sf_wire_msg_tensor(msg, "prompt_embeds", &t, &err)) &&
                !(st = sf_wire_meta_set_str(msg, "prompt", res[i].cleaned, &err)) &&
                !(st = sf_wire_meta_set_int(msg, "n_tokens", res[i].n_tokens, &err)) &&
                !(st = sf_wire_meta_set_int(msg, "index", (int64_t)i, &err)) &&
                !(st = sf_wire_meta_set_str(msg, "cache_key", res[i].key, &err)))
                st = sf_wire_send(w, msg, res[i].emb, &err);
            free(msg);
            if (st) break;
        }
        if (!save) sf_encoded_free(&res[i]);
    }
    if (!st && save) {
        sf_tensor_entry *ents = sf_calloc2(3 * pl.n, sizeof *ents);
        char(*names)[32] = sf_calloc2(3 * pl.n, 32);
        if (!ents || !names) st = sf_fail(&err, SF_E_NOMEM, "out of memory");
        for (size_t i = 0; !st && i < pl.n; i++) {
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
            st = sf_safetensors_write(save, ents, 3 * pl.n, meta, 1, &err);
        }
        free(ents), free(names);
    }
    if (w) {
        sf_err e2;
        if (st) sf_wire_send_error(w, err.msg, &e2);
        else if ((st = sf_wire_send_end(w, &err))) { /* keep err */ }
        sf_status cst = sf_wire_close(&w, st ? &e2 : &err);
        if (!st) st = cst;
    }
    for (size_t i = 0; i < pl.n; i++) sf_encoded_free(&res[i]);
    free(res);
    if (!st) sf_info("%zu prompt(s) done", done);
    sf_encoder_free(&enc);
    pl_free(&pl);
    sf_args_free(&a);
    if (st) sf_die(prog, st, &err);
    return rc;
}
