/* config.h — model and run configuration: the DiT's config.json and the reference's YAML
 * configs (default_config.yaml merged under the given file, OmegaConf semantics: nested maps
 * merge key by key, later file wins, lists and scalars replaced wholesale).
 * Tested by tests/unit/test_config.c. */
#ifndef SF_CONFIG_H
#define SF_CONFIG_H

#include "sf.h"

/* Diffusers-style Wan DiT config (config.json). Keys absent from the file take the
 * constructor defaults of the reference (text_dim 4096, patch (1,2,2), qk_norm and
 * cross_attn_norm on, freq_dim 256, eps 1e-6, text_len 512). */
typedef struct sf_dit_config {
    int dim;            /* 1536 */
    int ffn_dim;        /* 8960 */
    int freq_dim;       /* 256 */
    int in_dim;         /* 16 */
    int out_dim;        /* 16 */
    int num_heads;      /* 12 */
    int num_layers;     /* 30 */
    int text_len;       /* 512 */
    int text_dim;       /* 4096 */
    int patch_size[3];  /* (1, 2, 2) */
    int qk_norm;        /* 1 */
    int cross_attn_norm;/* 1 */
    double eps;         /* 1e-6 */
    char model_type[16];/* "t2v" */
} sf_dit_config;

void sf_dit_config_default(sf_dit_config *c);
/* Read and validate config.json (dim divisible by heads, positive sizes, ...). */
sf_status sf_dit_config_load(const char *path, sf_dit_config *c, sf_err *err);
/* The same from JSON text in memory (`what` names it in errors). */
sf_status sf_dit_config_parse(const char *text, size_t len, const char *what, sf_dit_config *c, sf_err *err);

/* A parsed YAML document as a tree (maps keep insertion order). */
typedef enum sf_yaml_kind { SF_YAML_SCALAR = 0, SF_YAML_MAP, SF_YAML_SEQ } sf_yaml_kind;
typedef struct sf_yaml {
    sf_yaml_kind kind;
    char *value;            /* SCALAR: text as written (owned); NULL for maps/seqs */
    int quoted;             /* SCALAR: was quoted in the source (a string, never a number) */
    size_t n;               /* MAP: pairs; SEQ: items */
    char **keys;            /* MAP */
    struct sf_yaml **items; /* MAP values / SEQ items */
} sf_yaml;

sf_status sf_yaml_load(const char *path, sf_yaml **out, sf_err *err);
sf_status sf_yaml_parse(const char *text, size_t len, const char *what, sf_yaml **out, sf_err *err);
void sf_yaml_free(sf_yaml *y);
/* Merge src over dst (src consumed). */
void sf_yaml_merge(sf_yaml *dst, sf_yaml *src);
/* Dotted lookup "model_kwargs.timestep_shift"; NULL when absent. Borrowed. */
const sf_yaml *sf_yaml_get(const sf_yaml *y, const char *dotted);
/* Typed lookups: return SF_E_NOTFOUND when absent (out untouched), SF_E_FORMAT on a bad value. */
sf_status sf_yaml_double(const sf_yaml *y, const char *dotted, double *out, sf_err *err);
sf_status sf_yaml_long(const sf_yaml *y, const char *dotted, long *out, sf_err *err);
sf_status sf_yaml_bool(const sf_yaml *y, const char *dotted, int *out, sf_err *err);
/* Sequence of numbers; *n in: capacity, out: count. */
sf_status sf_yaml_doubles(const sf_yaml *y, const char *dotted, double *vals, int *n, sf_err *err);
/* Emit as YAML text to a FILE* (for --print-config); returns 0 on success. */
int sf_yaml_dump(const sf_yaml *y, void *fp);

/* The inference-relevant run config (SPEC.md §1.3), from default_config.yaml merged with the
 * given file. Fields the files do not set keep the reference's code defaults. */
typedef struct sf_run_config {
    double denoising_step_list[16]; /* raw step list, e.g. 1000 750 500 250 */
    int n_steps;                    /* 0 when the config has no denoising_step_list */
    int warp_denoising_step;        /* default 0 */
    int num_frame_per_block;        /* default 1 when absent */
    double timestep_shift;          /* model_kwargs.timestep_shift; 8.0 when model_kwargs is absent */
    int independent_first_frame;    /* default 0 */
    double context_noise;           /* default 0 */
    long local_attn_size;           /* model_kwargs.local_attn_size, -1 = global */
    long sink_size;                 /* model_kwargs.sink_size, 0 */
    long image_or_video_shape[5];   /* e.g. 1 21 16 60 104; zeros when absent */
    int has_shape;
} sf_run_config;

/* Load default_path (may be NULL to skip) then path (may be NULL) on top. */
sf_status sf_run_config_load(const char *default_path, const char *path, sf_run_config *rc, sf_err *err);
/* The inference keys of an already merged YAML tree. */
sf_status sf_run_config_from_yaml(const sf_yaml *root, sf_run_config *rc, sf_err *err);

#endif
