/* run_io.c — the checkpoint decision, provenance and latent outputs of an sf-denoise run (see
 * run_io.h). Tested by tests/unit/test_denoise_run.c and tests/bats/sf-denoise.bats. */
#define _POSIX_C_SOURCE 200809L
#include "run_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

sf_status sf_dit_source_open(sf_dit_source *src, const char *model_dir, const char *ckpath, int no_ckpt, int use_ema,
                             int require, sf_err *err) {
    sf_status s;
    char p[4096];
    memset(src, 0, sizeof *src);
    if (!no_ckpt && ckpath && *ckpath) {
        if (access(ckpath, R_OK) != 0) {
            if (require)
                return sf_fail(err, SF_E_NOTFOUND, "checkpoint %s not found (--require-checkpoint); check the path, or "
                               "drop --require-checkpoint to run on the base weights", ckpath);
            src->ck_missing = 1;
            sf_warn("CHECKPOINT %s NOT FOUND: using the BASE Wan2.1 weights of %s; the result is NOT the "
                    "Self-Forcing model (--require-checkpoint makes this an error)", ckpath, model_dir);
        } else {
            if ((s = sf_tfile_open(ckpath, &src->ck, err))) return s;
            int has_ema = 0, has_gen = 0;
            for (size_t i = 0; i < src->ck->n; i++) {
                has_ema |= !strncmp(src->ck->entries[i].name, "generator_ema/", 14);
                has_gen |= !strncmp(src->ck->entries[i].name, "generator/", 10);
            }
            src->key = use_ema && has_ema ? "generator_ema" : "generator";
            if (!strcmp(src->key, "generator") && !has_gen)
                return sf_fail(err, SF_E_NOTFOUND, "%s: checkpoint has no '%s'%s entry", ckpath, src->key,
                               use_ema ? " (nor generator_ema)" : "");
            if (use_ema && !has_ema) sf_info("checkpoint has no generator_ema; using generator");
            snprintf(src->weights, sizeof src->weights, "checkpoint %s:%s", ckpath, src->key);
            return SF_OK;
        }
    }
    snprintf(p, sizeof p, "%s/diffusion_pytorch_model.safetensors", model_dir);
    if ((s = sf_tfile_open(p, &src->base, err))) return s;
    snprintf(src->weights, sizeof src->weights, "base %s%s%s%s", p, src->ck_missing ? " (checkpoint " : "",
             src->ck_missing ? ckpath : "", src->ck_missing ? " not found)" : "");
    return SF_OK;
}

void sf_dit_source_close(sf_dit_source *src) {
    sf_tfile_destroy(&src->ck);
    sf_tfile_destroy(&src->base);
    src->key = NULL;
}

sf_status sf_denoise_send_block(sf_wire *out, int block, int64_t start_frame, int F, int C, int H, int W,
                                const float *x0, uint64_t seed, const char *prompt, const char *weights, double gen_fps,
                                sf_err *err) {
    sf_wire_msg m;
    sf_status s;
    sf_wire_msg_init(&m, SF_WIRE_TENSOR, "latents");
    if ((s = sf_wire_meta_set_int(&m, "block", block, err)) || (s = sf_wire_meta_set_int(&m, "start_frame", start_frame, err)) ||
        (s = sf_wire_meta_set_int(&m, "seed", (int64_t)seed, err)))
        return s;
    if (prompt && (s = sf_wire_meta_set_str(&m, "prompt", prompt, err))) return s;
    /* when the block left (CLOCK_MONOTONIC seconds: one clock for every process of a host's boot, named
     * by "clock"), for the viewer's latency and catch-up */
    char clk[64];
    sf_clock_id(clk, sizeof clk);
    if ((s = sf_wire_meta_set_double(&m, "t_sent", sf_now(), err)) ||
        (clk[0] && (s = sf_wire_meta_set_str(&m, "clock", clk, err))))
        return s;
    if (weights && (s = sf_wire_meta_set_str(&m, "weights", weights, err))) return s;
    if (gen_fps > 0 && (s = sf_wire_meta_set_double(&m, "gen_fps", gen_fps, err))) return s;
    int64_t sh[5] = {1, F, C, H, W};
    sf_tensor t = sf_tensor_view((void *)x0, SF_F32, 5, sh);
    return sf_wire_send_tensor(out, "latents", &t, &m, err);
}

sf_status sf_denoise_write_latents(const char *path, const sf_latents_out *o, sf_err *err) {
    const size_t ne = 1 + (o->preds ? (size_t)o->n_blocks * (size_t)(o->n_steps + 1) : 0);
    const int64_t fr = (int64_t)o->C * o->H * o->W;
    size_t k = 0;
    sf_tensor_entry *ents = calloc(ne, sizeof *ents);
    char (*names)[32] = calloc(ne, 32);
    sf_status s;
    if (!ents || !names) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
        goto done;
    }
    int64_t sh[5] = {1, o->num_frames, o->C, o->H, o->W};
    snprintf(names[k], 32, "latents");
    ents[k].name = names[k];
    ents[k++].t = sf_tensor_view((void *)o->latents, SF_F32, 5, sh);
    for (int b = 0; o->preds && b < o->n_blocks; b++)
        for (int st = 0; st <= o->n_steps; st++) {
            int F = o->independent_first_frame && b == 0 ? 1 : o->fpb;
            int64_t ps[5] = {1, F, o->C, o->H, o->W};
            snprintf(names[k], 32, "pred.%d.%d", b, st);
            ents[k].name = names[k];
            ents[k++].t = sf_tensor_view((void *)(o->preds + ((int64_t)b * (o->n_steps + 1) + st) * o->fpb * fr), SF_F32, 5,
                                         ps);
        }
    const char *kv[] = {"seed", o->seed ? o->seed : "", "prompt", o->prompt ? o->prompt : "", "weights",
                        o->weights ? o->weights : ""};
    s = sf_safetensors_write(path, ents, k, kv, 3, err);
done:
    free(ents);
    free(names);
    return s;
}

sf_status sf_denoise_load_latents(const char *arg, int C, int H, int W, float **x, int *F, sf_err *err) {
    char path[4096], what[4200];
    const char *name = NULL;
    sf_tfile *tf = NULL;
    sf_split_file_arg(arg, path, sizeof path, &name);
    *x = NULL;
    sf_status s = sf_tfile_open(path, &tf, err);
    if (s) return s;
    const char *nm = name ? name : "latents";
    const sf_tensor *t = sf_tfile_get(tf, nm);
    if (!t && !name && tf->n == 1) t = &tf->entries[0].t, nm = tf->entries[0].name; /* a file of one tensor */
    snprintf(what, sizeof what, "--initial-latents %s:%s", path, nm);
    int64_t d[4];
    if (!t) {
        s = sf_fail(err, SF_E_ARG, "--initial-latents %s: no tensor named %s (pick one with FILE:NAME)", path, nm);
    } else if (sf_tensor_latent_dims(t, what, d, err)) {
        s = SF_E_ARG; /* not a latent video: the argument's fault, as a misfit below */
    } else if (d[1] != C || d[2] != H || d[3] != W) {
        s = sf_fail(err, SF_E_ARG, "%s has %lld channels of %lldx%lld; this run's latents have %d of %dx%d (--height %d "
                    "--width %d)", what, (long long)d[1], (long long)d[2], (long long)d[3], C, H, W, 8 * H, 8 * W);
    } else if (d[0] > 1 << 20) {
        s = sf_fail(err, SF_E_ARG, "%s has %lld frames; too many", what, (long long)d[0]);
    } else if (!(*x = sf_calloc2((size_t)sf_tensor_numel(t), sizeof(float)))) {
        s = sf_fail(err, SF_E_NOMEM, "out of memory");
    } else {
        sf_tensor_to_f32(t, *x);
        for (int64_t i = 0, n = sf_tensor_numel(t); i < n && !s; i++)
            if (!isfinite((*x)[i])) s = sf_fail(err, SF_E_ARG, "%s holds a non-finite value (element %lld)", what, (long long)i);
        *F = (int)d[0];
    }
    if (s) {
        free(*x);
        *x = NULL;
    }
    sf_tfile_destroy(&tf);
    return s;
}
