/* mkmodel.h — random-weight model folders in the real file formats (sf-mkmodel).
 *
 * A model folder like Wan2.1-T2V-1.3B/: config.json, diffusion_pytorch_model.safetensors (f32),
 * models_t5_umt5-xxl-enc-bf16.pth (bf16 torch zip), Wan2.1_VAE.pth (f32 torch zip, decoder
 * part), google/umt5-xxl/spiece.model, and optionally a Self-Forcing-style checkpoint
 * {'generator': ..., 'generator_ema': ...} with `model.`-prefixed bf16 keys. Deterministic
 * for a given seed. Tested by tests/bats/sf-mkmodel.bats (files read back by the stages). */
#ifndef SF_MKMODEL_H
#define SF_MKMODEL_H

#include "config.h"
#include "tensor.h"

typedef struct sf_mk_t5 {
    int vocab, dim, heads, head_dim, ffn, layers, buckets;
} sf_mk_t5;

typedef struct sf_mk_spec {
    sf_dit_config dit;
    sf_mk_t5 t5;
    int vae_base;       /* 96 real, 8 tiny */
    int vae_z;          /* 16 */
    int64_t taehv_nf[4]; /* the TAEHV tiny decoder's widths (taew2_1.pth: 256/128/64/64; tiny 16/16/8/8); 0: none */
    int spiece_pieces;  /* pieces in spiece.model (≤ t5.vocab) */
    uint64_t seed;
} sf_mk_spec;

/* "tiny" (the golden fixture's sizes) or "1.3b" (the real sizes). */
sf_status sf_mk_preset(const char *name, sf_mk_spec *spec, sf_err *err);

/* A list of (name, shape, init) parameters. */
typedef enum sf_mk_init { SF_MK_LINEAR = 0, SF_MK_BIAS, SF_MK_GAMMA, SF_MK_EMBED, SF_MK_SMALL } sf_mk_init;
typedef struct sf_mk_param {
    char name[128];
    int ndim;
    int64_t shape[SF_MAX_DIMS];
    sf_mk_init init;
} sf_mk_param;
typedef struct sf_mk_params {
    sf_mk_param *v;
    size_t n, cap;
} sf_mk_params;

sf_status sf_mk_dit_params(const sf_dit_config *c, sf_mk_params *out, sf_err *err);
sf_status sf_mk_t5_params(const sf_mk_t5 *t, sf_mk_params *out, sf_err *err);
sf_status sf_mk_vae_params(int base, int z, sf_mk_params *out, sf_err *err);
/* The TAEHV tiny decoder's (stages/decode/taehv.h) state dict: latent width z, first conv to c0 (nf[0] in the
 * real layout; otherwise stage 0's first MemBlock has a 1×1 skip c0 → nf[0]), stage widths nf, TGrow strides,
 * `mems` MemBlocks a stage (taew2_1.pth: z 16, nf 256/128/64/64, strides 1, 2, 2, 3 MemBlocks). */
sf_status sf_mk_taehv_params(int64_t z, int64_t c0, const int64_t nf[4], const int strides[3], int mems,
                             sf_mk_params *out, sf_err *err);
/* sf_mk_taehv_params at taew2_1.pth's shapes (z 16, widths 256/128/64/64, strides 1-2-2, 3 MemBlocks a stage):
 * the benches' TAEHV. */
sf_status sf_mk_taew2_1_params(sf_mk_params *out, sf_err *err);
void sf_mk_params_free(sf_mk_params *p);

/* Fill owned tensors (dtype f32 or bf16) for every parameter; entries[i].name owned. */
sf_status sf_mk_generate(const sf_mk_params *p, sf_dtype dtype, uint64_t seed, const char *prefix,
                         float perturb, sf_tensor_entry **entries, sf_err *err);
void sf_mk_entries_free(sf_tensor_entry *e, size_t n);

/* The same values (no prefix, no perturbation) in an in-memory tensor file named `name` that owns them:
 * what the benches and tests load without writing a file. *out NULL on failure. */
struct sf_tfile;
sf_status sf_mk_tfile(const sf_mk_params *p, sf_dtype dtype, uint64_t seed, const char *name, struct sf_tfile **out,
                      sf_err *err);

/* The whole folder (+ checkpoint when ckpt_path != NULL). `what` is a comma list of
 * config,dit,t5,vae,taehv,tokenizer (NULL = all). */
sf_status sf_mk_write_folder(const sf_mk_spec *spec, const char *dir, const char *what, const char *ckpt_path,
                             sf_err *err);

/* spiece.model with n pieces: <pad> </s> <unk>, ▁, characters and ▁words; identity normalizer. With
 * json_path, also the same tokenizer as a Hugging Face tokenizer.json (extra_ids <extra_id_N> added
 * at ids n_pieces…). */
sf_status sf_mk_write_spiece(const char *path, const char *json_path, int n_pieces, int extra_ids, uint64_t seed,
                             sf_err *err);

#endif
