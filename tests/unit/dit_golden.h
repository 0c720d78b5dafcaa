/* dit_golden.h — the golden causal-loop fixture shared by test_dit_pipeline.c and
 * test_dit_taps.c: the tiny model (base weights, or a key of the tiny_dmd.pt checkpoint), the
 * dit_pipeline_<mode>.safetensors expect file, a state for 9 latent frames of 8×12 in blocks of
 * 3, the golden text context, and the reference schedule (shift 5, warped 1000/750/500/250). */
#ifndef SF_TEST_DIT_GOLDEN_H
#define SF_TEST_DIT_GOLDEN_H

#include "sf_test.h"
#include "config.h"
#include "tfile.h"
#include "stages/denoise/pipeline.h"

typedef struct dit_golden {
    sf_dit_config cfg;
    sf_tfile *base, *ck, *g; /* g: the mode's expect file (also the noise to replay) */
    sf_dit_weights w;
    sf_dit_state st;
    sf_scheduler sc;
    sf_pipeline_cfg pc;
    float *emb;
} dit_golden;

/* Returns 1 when everything is loaded (failures are recorded as test failures). With
 * use_noise the expect file's noise.* draws are replayed, else `seed` drives our RNG. */
/* The tiny model's config and base weights (no checkpoint); *base must outlive w. */
static inline sf_status dit_golden_base_model(sf_dit_config *cfg, sf_tfile **base, sf_dit_weights *w, sf_err *err) {
    char p[1024];
    snprintf(p, sizeof p, "%s/model/config.json", sf_test_golden());
    sf_status s = sf_dit_config_load(p, cfg, err);
    if (s) return s;
    snprintf(p, sizeof p, "%s/model/diffusion_pytorch_model.safetensors", sf_test_golden());
    if ((s = sf_tfile_open(p, base, err))) return s;
    return sf_dit_weights_load(w, cfg, *base, NULL, NULL, err);
}

/* The tiny model's base weights with the base pipeline's expect file and its prompt embedding
 * (rows × dim f32), loaded once per test binary (the long-video and live tests build their own
 * states and pipelines on it). Returns m->ok; failures are recorded. */
typedef struct dit_golden_base {
    sf_dit_config cfg;
    sf_tfile *base, *g;
    sf_dit_weights w;
    float *emb;
    int64_t rows, n; /* n: rows × dim */
    int ok;
} dit_golden_base;

static inline int dit_golden_base_load(dit_golden_base *m) {
    if (m->ok) return 1;
    char p[1024];
    sf_err err = {{0}};
    SF_CHECK_OK(dit_golden_base_model(&m->cfg, &m->base, &m->w, &err), &err);
    snprintf(p, sizeof p, "%s/expect/dit_pipeline_base.safetensors", sf_test_golden());
    SF_CHECK_OK(sf_tfile_open(p, &m->g, &err), &err);
    if (!m->base || !m->g) return 0;
    m->emb = sf_test_golden_f32(m->g, "context.prompt_embeds", &m->n);
    if (!m->emb) return 0;
    m->rows = sf_tfile_get(m->g, "context.prompt_embeds")->shape[1];
    return m->ok = 1;
}

static inline void dit_golden_base_free(dit_golden_base *m) {
    free(m->emb);
    sf_dit_weights_free(&m->w);
    sf_tfile_destroy(&m->g);
    sf_tfile_destroy(&m->base);
    memset(m, 0, sizeof *m);
}

/* cuda_ordinal −1: the CPU; N: the state lives on cuda:N (test_dit_cuda.c). */
static inline int dit_golden_open_on(dit_golden *d, const char *mode, const char *ckpt_key, int nthreads, int use_noise,
                              uint64_t seed, int cuda_ordinal) {
    char p[1024];
    sf_err err = {{0}};
    memset(d, 0, sizeof *d);
    snprintf(p, sizeof p, "%s/model/config.json", sf_test_golden());
    SF_CHECK_OK(sf_dit_config_load(p, &d->cfg, &err), &err);
    snprintf(p, sizeof p, "%s/model/diffusion_pytorch_model.safetensors", sf_test_golden());
    SF_CHECK_OK(sf_tfile_open(p, &d->base, &err), &err);
    if (ckpt_key) {
        snprintf(p, sizeof p, "%s/checkpoints/tiny_dmd.pt", sf_test_golden());
        SF_CHECK_OK(sf_tfile_open(p, &d->ck, &err), &err);
    }
    snprintf(p, sizeof p, "%s/expect/dit_pipeline_%s.safetensors", sf_test_golden(), mode);
    SF_CHECK_OK(sf_tfile_open(p, &d->g, &err), &err);
    if (!d->base || !d->g || (ckpt_key && !d->ck)) return 0;
    SF_CHECK_OK(sf_dit_weights_load(&d->w, &d->cfg, d->base, d->ck, ckpt_key, &err), &err);
    sf_status ss = sf_dit_state_init_on(&d->st, &d->w, 3, 8, 12, 9, -1, 0, nthreads, cuda_ordinal, &err);
    SF_CHECK_OK(ss, &err);
    if (ss) {
        sf_dit_weights_free(&d->w);
        return 0;
    }
    const sf_tensor *pe = sf_tfile_get(d->g, "context.prompt_embeds");
    d->emb = malloc(sizeof(float) * (size_t)sf_tensor_numel(pe));
    sf_tensor_to_f32(pe, d->emb);
    SF_CHECK_OK(sf_dit_set_context(&d->st, d->emb, pe->shape[1], &err), &err);
    SF_CHECK_OK(sf_scheduler_init(&d->sc, 5.0, &err), &err);
    sf_pipeline_cfg pc = {{0}, 4, 3, 0, 0.0f, 9, 8, 12, 16, seed, use_noise ? d->g : NULL, 0, 0, {0, 0, 0, 0}, 0, 0, NULL, 0};
    d->pc = pc;
    double raw[4] = {1000, 750, 500, 250};
    SF_CHECK_OK(sf_scheduler_steps(&d->sc, raw, 4, 1, d->pc.steps, &err), &err);
    return 1;
}

static inline int dit_golden_open(dit_golden *d, const char *mode, const char *ckpt_key, int nthreads, int use_noise,
                                  uint64_t seed) {
    return dit_golden_open_on(d, mode, ckpt_key, nthreads, use_noise, seed, -1);
}

static inline void dit_golden_close(dit_golden *d) {
    if (d->emb) {
        free(d->emb);
        sf_dit_state_free(&d->st);
        sf_dit_weights_free(&d->w);
    }
    sf_tfile_destroy(&d->g);
    sf_tfile_destroy(&d->ck);
    sf_tfile_destroy(&d->base);
}

/* The initial-latents golden: tests/golden/expect/dit_pipeline_initial.safetensors (made by
 * tests/heldout/make_initial_golden.py from the reference's CausalInferencePipeline.inference with an
 * initial_latent): case "ext" (3 initial frames, blocks of 3) or "i2v" (1 initial frame, an independent first
 * frame), then 6 generated frames on dit_pipeline_base's noise (noise.init frames 0..5, noise.renoise.0..5). */
typedef struct dit_golden_initial {
    sf_tfile *file, *noise;      /* the expect file; the replayed noise (views into the base expect file) */
    float *init;                 /* (F_in, 16, 8, 12) */
    const sf_tensor *ref;        /* the reference's output (1, F_in + 6, 16, 8, 12) */
    int F_in;
    int64_t n_out;               /* floats of the output */
} dit_golden_initial;

/* d opened on the base weights (state for 9 frames: both cases fit), d->pc set for the case. 1 when ready. */
static inline int dit_golden_initial_open(dit_golden *d, dit_golden_initial *gi, const char *kase, int nthreads,
                                          int cuda_ordinal) {
    char p[1024], nm[64], in[64];
    sf_err err = {{0}};
    memset(gi, 0, sizeof *gi);
    snprintf(p, sizeof p, "%s/expect/dit_pipeline_initial.safetensors", sf_test_golden());
    SF_CHECK_OK(sf_tfile_open(p, &gi->file, &err), &err);
    if (!gi->file || !dit_golden_open_on(d, "base", NULL, nthreads, 0, 0, cuda_ordinal)) return 0;
    snprintf(in, sizeof in, "%s.initial_latent", kase);
    const sf_tensor *it = sf_tfile_get(gi->file, in), *ni = sf_tfile_get(d->g, "noise.init");
    snprintf(nm, sizeof nm, "%s.output", kase);
    gi->ref = sf_tfile_get(gi->file, nm);
    SF_CHECK_MSG(it && gi->ref && ni && it->ndim == 5 && ni->dtype == SF_F32, "%s: golden tensors missing", kase);
    if (!it || !gi->ref || !ni || it->ndim != 5 || ni->dtype != SF_F32) return 0;
    gi->F_in = (int)it->shape[1];
    gi->n_out = sf_tensor_numel(gi->ref);
    int64_t n;
    gi->init = sf_test_golden_f32(gi->file, in, &n);
    gi->noise = sf_tfile_new_empty("dit_pipeline_base.safetensors (noise.init[:, :6])");
    const int64_t sh[5] = {1, 6, 16, 8, 12};
    sf_tensor t = sf_tensor_view(ni->data, SF_F32, 5, sh); /* frames 0..5: the first 6·16·8·12 floats */
    SF_CHECK_OK(sf_tfile_add(gi->noise, "noise.init", &t, &err), &err);
    for (int k = 0; k < 6; k++) {
        snprintf(nm, sizeof nm, "noise.renoise.%d", k);
        const sf_tensor *r = sf_tfile_get(d->g, nm);
        if (r) SF_CHECK_OK(sf_tfile_add(gi->noise, nm, r, &err), &err);
    }
    d->pc.noise = gi->noise;
    d->pc.num_frames = 6;
    d->pc.independent_first_frame = kase[0] == 'i';
    d->pc.init_latents = gi->init, d->pc.init_frames = gi->F_in;
    return gi->init != NULL && gi->F_in + 6 == gi->ref->shape[1];
}

static inline void dit_golden_initial_close(dit_golden *d, dit_golden_initial *gi) {
    dit_golden_close(d);
    sf_tfile_destroy(&gi->noise);
    sf_tfile_destroy(&gi->file);
    free(gi->init);
    memset(gi, 0, sizeof *gi);
}

#endif
