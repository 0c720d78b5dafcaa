/* stage.h — sf-encode's run as library code: its flags checked and gathered (sf_encode_opts_get: the
 * mode combinations before anything loads, in the order the CLI has always reported them), then the
 * run (sf_encode_stage_run: --stop-route, --list, --serve, or the prompts encoded locally or by a
 * server into --out / --save-embeds / --tokens-only / the cache). main.c declares the flags, runs
 * --bench and turns a failure into its exit line. Tested through the binary by
 * tests/bats/sf-encode.bats and sf-encode-serve.bats. */
#ifndef SF_ENCODE_STAGE_H
#define SF_ENCODE_STAGE_H

#include "cli.h"

typedef struct sf_encode_opts {
    sf_stage_flags sh;                      /* --device, --model-dir, --progress, wire timeout */
    long text_len, threads;
    double timeout_s;                       /* --server-timeout */
    const char *bench;                      /* --bench: nothing else was checked */
    const char *serve_url, *server_url, *save, *out_url, *prompts_file, *in_url, *first_prompt;
    const char **pv;                        /* the --prompt values (owned: freed by the run) */
    int np, tokens_only, cache_only, list, use_cache, low_memory, stop_route;
    char cache_dir[4096], tok_path[4096], w_path[4096];
} sf_encode_opts;

sf_status sf_encode_opts_get(const sf_args *a, const sf_opt *opts, sf_encode_opts *o, sf_err *err);
sf_status sf_encode_stage_run(sf_encode_opts *o, sf_err *err);

#endif
