/* sf-mkmodel — write a model folder with random weights in the real file formats.
 *   sf-mkmodel tiny|1.3b|CONFIG.json OUTDIR [--seed N] [--checkpoint FILE] [--only LIST]
 *              [--dit-layers N] [--t5-layers N]
 * Tested by tests/bats/sf-mkmodel.bats. */
#include "cli.h"
#include "mkmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sf_opt opts[] = {
    {"seed", 0, SF_ARG_VALUE, "N\trandom seed (default 0)"},
    {"checkpoint", 0, SF_ARG_VALUE, "FILE\talso write a Self-Forcing-style checkpoint (generator, generator_ema)"},
    {"only", 0, SF_ARG_VALUE, "LIST\tcomma list of config,dit,t5,vae,taehv,tokenizer (default all; taehv: taew2_1.pth, the TAEHV tiny decoder)"},
    {"dit-layers", 0, SF_ARG_VALUE, "N\toverride the DiT depth (e.g. 1 for a one-layer benchmark model)"},
    {"t5-layers", 0, SF_ARG_VALUE, "N\toverride the umT5 depth"},
    {"spiece-pieces", 0, SF_ARG_VALUE, "N\tpieces in spiece.model (default: the preset's)"},
    SF_OPTS_STD,
    {0},
};

int main(int argc, char **argv) {
    const char *prog = "sf-mkmodel";
    sf_args a;
    sf_err err = {{0}};
    sf_status s = SF_OK;
    if (sf_args_main(argc, argv, prog, "tiny|1.3b|CONFIG.json OUTDIR [options]", opts, &a)) return 0;
    const char **pos = NULL;
    int np = sf_args_positional(&a, &pos);
    if (np != 2) {
        free(pos);
        sf_die(prog, SF_E_ARG, &(sf_err){"usage: sf-mkmodel tiny|1.3b|CONFIG.json OUTDIR [--seed N] (see --help)"});
    }
    sf_mk_spec spec;
    const char *which = pos[0], *dir = pos[1];
    size_t wl = strlen(which);
    if (wl > 5 && strcmp(which + wl - 5, ".json") == 0) {
        /* a config.json: tiny's T5/VAE/tokenizer sizes with that DiT */
        s = sf_mk_preset("tiny", &spec, &err);
        if (!s) s = sf_dit_config_load(which, &spec.dit, &err);
    } else {
        s = sf_mk_preset(which, &spec, &err);
    }
    long v;
    if (!s && sf_args_get(&a, opts, "seed")) {
        s = sf_arg_long("seed", sf_args_get(&a, opts, "seed"), 0, 0x7fffffffL, &v, &err);
        spec.seed = (uint64_t)v;
    }
    if (!s && sf_args_get(&a, opts, "dit-layers")) {
        s = sf_arg_long("dit-layers", sf_args_get(&a, opts, "dit-layers"), 1, 4096, &v, &err);
        spec.dit.num_layers = (int)v;
    }
    if (!s && sf_args_get(&a, opts, "t5-layers")) {
        s = sf_arg_long("t5-layers", sf_args_get(&a, opts, "t5-layers"), 1, 4096, &v, &err);
        spec.t5.layers = (int)v;
    }
    if (!s && sf_args_get(&a, opts, "spiece-pieces")) {
        s = sf_arg_long("spiece-pieces", sf_args_get(&a, opts, "spiece-pieces"), 200, 1 << 24, &v, &err);
        spec.spiece_pieces = (int)v;
    }
    if (!s) {
        double t0 = sf_now();
        s = sf_mk_write_folder(&spec, dir, sf_args_get(&a, opts, "only"), sf_args_get(&a, opts, "checkpoint"), &err);
        if (!s) sf_info("wrote %s (%s, seed %llu) in %.1f s", dir, which, (unsigned long long)spec.seed, sf_now() - t0);
    }
    free(pos);
    sf_args_free(&a);
    if (s) sf_die(prog, s, &err);
    return 0;
}
