/* main.c — sf-encode: prompts → umT5 token ids → umT5-XXL embeddings (`prompt_embeds`).
 *
 * Mirrors the reference's text-encoder step (utils/wan_wrapper.py WanTextEncoder, called by
 * inference.py / the extraction scripts). Flags, prompt sources and outputs: see --help and
 * README.md (sf-encode); the checks and the run in stage.c, the resident server (--serve) and its
 * client (--server) in serve.c, the GPU encoder (--device cuda[:N], --low-memory) in t5_cuda.c, the
 * full-size GPU benchmark (--bench xxl) in bench.c. Tested by tests/bats/sf-encode.bats and
 * tests/bats/sf-encode-serve.bats. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "stop.h"
#include "stages/encode/bench.h"
#include "stages/encode/stage.h"

static const sf_opt opts[] = {
    {"prompt", 'p', SF_ARG_VALUE, "TEXT\ta prompt (repeatable)"},
    {"prompts", 0, SF_ARG_VALUE, "FILE\tprompts, one per line ('-' = stdin; default when no --prompt and stdin is not a terminal)"},
    SF_OPT_MODEL_DIR,
    {"tokenizer", 0, SF_ARG_VALUE, "FILE\ttokenizer.json or spiece.model (default DIR/google/umt5-xxl/tokenizer.json when there, as the reference, else its spiece.model)"},
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
    {"cache-dir", 0, SF_ARG_VALUE, "DIR\tembedding cache (default $XDG_CACHE_HOME/sfpipe/embeds, else ~/.cache/sfpipe/embeds)"},
    {"no-cache", 0, SF_ARG_FLAG, "neither read nor write the cache"},
    {"list", 0, SF_ARG_FLAG, "list the cache entries and exit"},
    {"threads", 0, SF_ARG_VALUE, "N\tCPU threads (default: all)"},
    SF_OPTS_DEVICE("umT5 in bf16, 11.4 GB for umT5-XXL"),
    {"low-memory", 0, SF_ARG_FLAG, "with --device cuda: stream the layers (one on the GPU at a time) and free the GPU memory after every prompt"},
    {"bench", 0, SF_ARG_VALUE, "xxl\tprint ms per 512-token prompt and GPU memory of the full-size umT5-XXL with random weights (needs --device cuda), then exit"},
    SF_OPTS_STD,
    {NULL, 0, 0, NULL},
};

int main(int argc, char **argv) {
    const char *prog = "sf-encode";
    sf_args a = {0};
    sf_err err = {{0}};
    sf_status st;
    if (sf_args_main(argc, argv, prog,
                     "[--prompt TEXT]... [--prompts FILE] [--save-embeds FILE | --out URL | --tokens-only | "
                     "--cache-only] [--server URL] | --serve URL | --list",
                     opts, &a))
        return 0;
    if ((st = sf_stop_install(&err))) sf_die(prog, st, &err); /* SIGINT/SIGTERM: stop per layer, exit 130/143 */
    sf_encode_opts o; /* stages/encode/stage.c: the flags, then the run */
    if ((st = sf_encode_opts_get(&a, opts, &o, &err)) ||
        (st = o.bench ? sf_encode_bench(o.bench, o.sh.cuda ? o.sh.ordinal : -1, &err) : sf_encode_stage_run(&o, &err)))
        sf_die(prog, st, &err);
    sf_args_free(&a);
    return 0;
}
