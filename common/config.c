/* config.c — the DiT's config.json (cJSON) and the reference's YAML configs (libyaml) with
 * OmegaConf-style merging. Mirrors the reference's `OmegaConf.merge(default_config, config)`
 * in inference.py / run_extraction_figure4.py and WanModel's constructor defaults.
 * Tested by tests/unit/test_config.c and tests/bats/config.bats. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define SF_CONFIG_MAX_BYTES (16u << 20)
#define SF_YAML_MAX_DEPTH 64

/* ---------------- config.json ---------------- */

void sf_dit_config_default(sf_dit_config *c) {
    memset(c, 0, sizeof *c);
    c->dim = 1536;
    c->ffn_dim = 8960;
    c->freq_dim = 256;
    c->in_dim = 16;
    c->out_dim = 16;
    c->num_heads = 12;
    c->num_layers = 30;
    c->text_len = 512;
    c->text_dim = 4096;
    c->patch_size[0] = 1;
    c->patch_size[1] = 2;
    c->patch_size[2] = 2;
    c->qk_norm = 1;
    c->cross_attn_norm = 1;
    c->eps = 1e-6;
    snprintf(c->model_type, sizeof c->model_type, "t2v");
}

static sf_status json_int(const cJSON *root, const char *key, int *out, int lo, int hi, const char *path, sf_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return SF_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return sf_fail(err, SF_E_FORMAT, "%s: '%s' must be an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)v->valuedouble;
    return SF_OK;
}

static sf_status json_bool(const cJSON *root, const char *key, int *out, const char *path, sf_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return SF_OK;
    if (!cJSON_IsBool(v)) return sf_fail(err, SF_E_FORMAT, "%s: '%s' must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return SF_OK;
}

sf_status sf_dit_config_load(const char *path, sf_dit_config *c, sf_err *err) {
    char *text = NULL;
    size_t len = 0;
    sf_dit_config_default(c);
    sf_status s = sf_read_file(path, &text, &len, SF_CONFIG_MAX_BYTES, err);
    if (s) return s;
    s = sf_dit_config_parse(text, len, path, c, err);
    free(text);
    return s;
}

sf_status sf_dit_config_parse(const char *text, size_t len, const char *path, sf_dit_config *c, sf_err *err) {
    sf_status s = SF_OK;
    sf_dit_config_default(c);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sf_fail(err, SF_E_FORMAT, "%s: not a JSON object", path);
    }
    const int big = 1 << 20;
    if ((s = json_int(root, "dim", &c->dim, 1, big, path, err)) || (s = json_int(root, "ffn_dim", &c->ffn_dim, 1, big, path, err)) ||
        (s = json_int(root, "freq_dim", &c->freq_dim, 2, big, path, err)) ||
        (s = json_int(root, "in_dim", &c->in_dim, 1, 4096, path, err)) ||
        (s = json_int(root, "out_dim", &c->out_dim, 1, 4096, path, err)) ||
        (s = json_int(root, "num_heads", &c->num_heads, 1, 4096, path, err)) ||
        (s = json_int(root, "num_layers", &c->num_layers, 1, 4096, path, err)) ||
        (s = json_int(root, "text_len", &c->text_len, 1, big, path, err)) ||
        (s = json_int(root, "text_dim", &c->text_dim, 1, big, path, err)) ||
        (s = json_bool(root, "qk_norm", &c->qk_norm, path, err)) ||
        (s = json_bool(root, "cross_attn_norm", &c->cross_attn_norm, path, err)))
        goto done;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "eps");
    if (v) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || v->valuedouble > 1) {
            s = sf_fail(err, SF_E_FORMAT, "%s: 'eps' must be a number in (0, 1]", path);
            goto done;
        }
        c->eps = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "patch_size");
    if (v) {
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3) {
            s = sf_fail(err, SF_E_FORMAT, "%s: 'patch_size' must be a list of 3 integers", path);
            goto done;
        }
        for (int i = 0; i < 3; i++) {
            const cJSON *e = cJSON_GetArrayItem(v, i);
            if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > 64 || e->valuedouble != floor(e->valuedouble)) {
                s = sf_fail(err, SF_E_FORMAT, "%s: 'patch_size' must be a list of 3 integers in [1, 64]", path);
                goto done;
            }
            c->patch_size[i] = (int)e->valuedouble;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (v) {
        if (!cJSON_IsString(v)) {
            s = sf_fail(err, SF_E_FORMAT, "%s: 'model_type' must be a string", path);
            goto done;
        }
        snprintf(c->model_type, sizeof c->model_type, "%s", v->valuestring);
        if (strcmp(c->model_type, "t2v") != 0) {
            s = sf_fail(err, SF_E_UNSUPPORTED, "%s: model_type '%s' is not supported (only t2v)", path, c->model_type);
            goto done;
        }
    }
    if (c->dim % c->num_heads != 0) {
        s = sf_fail(err, SF_E_FORMAT, "%s: dim %d is not divisible by num_heads %d", path, c->dim, c->num_heads);
        goto done;
    }
    if ((c->dim / c->num_heads) % 2 != 0 || c->freq_dim % 2 != 0) {
        s = sf_fail(err, SF_E_FORMAT, "%s: head dim and freq_dim must be even", path);
        goto done;
    }
done:
    cJSON_Delete(root);
    return s;
}

/* ---------------- YAML tree ---------------- */

static sf_yaml *ynew(sf_yaml_kind k) {
    sf_yaml *y = calloc(1, sizeof *y);
    if (y) y->kind = k;
    return y;
}

void sf_yaml_free(sf_yaml *y) {
    if (!y) return;
    for (size_t i = 0; i < y->n; i++) {
        if (y->keys) free(y->keys[i]);
        sf_yaml_free(y->items[i]);
    }
    free(y->keys);
    free(y->items);
    free(y->value);
    free(y);
}

static int yappend(sf_yaml *y, char *key, sf_yaml *item) {
    char **nk = NULL;
    sf_yaml **ni = realloc(y->items, (y->n + 1) * sizeof *ni);
    if (!ni) return 0;
    y->items = ni;
    if (y->kind == SF_YAML_MAP) {
        nk = realloc(y->keys, (y->n + 1) * sizeof *nk);
        if (!nk) return 0;
        y->keys = nk;
        y->keys[y->n] = key;
    }
    y->items[y->n++] = item;
    return 1;
}

/* Recursive-descent over libyaml events. */
static sf_status parse_node(yaml_parser_t *p, yaml_event_t *ev, sf_yaml **out, int depth, const char *what,
                            sf_err *err);

static sf_status next_event(yaml_parser_t *p, yaml_event_t *ev, const char *what, sf_err *err) {
    if (!yaml_parser_parse(p, ev))
        return sf_fail(err, SF_E_FORMAT, "%s: YAML error at line %zu: %s", what, p->problem_mark.line + 1,
                       p->problem ? p->problem : "parse error");
    return SF_OK;
}

static sf_status parse_node(yaml_parser_t *p, yaml_event_t *ev, sf_yaml **out, int depth, const char *what,
                            sf_err *err) {
    sf_status s = SF_OK;
    *out = NULL;
    if (depth > SF_YAML_MAX_DEPTH) return sf_fail(err, SF_E_FORMAT, "%s: YAML nested too deeply", what);
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        sf_yaml *y = ynew(SF_YAML_SCALAR);
        if (!y || !(y->value = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length))) {
            sf_yaml_free(y);
            return sf_fail(err, SF_E_NOMEM, "out of memory");
        }
        y->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        *out = y;
        return SF_OK;
    }
    case YAML_ALIAS_EVENT:
        return sf_fail(err, SF_E_UNSUPPORTED, "%s: YAML aliases are not supported", what);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        sf_yaml *y = ynew(is_map ? SF_YAML_MAP : SF_YAML_SEQ);
        if (!y) return sf_fail(err, SF_E_NOMEM, "out of memory");
        for (;;) {
            yaml_event_t e;
            if ((s = next_event(p, &e, what, err))) goto fail;
            if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            char *key = NULL;
            if (is_map) {
                if (e.type != YAML_SCALAR_EVENT) {
                    yaml_event_delete(&e);
                    s = sf_fail(err, SF_E_UNSUPPORTED, "%s: only scalar YAML keys are supported", what);
                    goto fail;
                }
                key = strndup((const char *)e.data.scalar.value, e.data.scalar.length);
                yaml_event_delete(&e);
                if (!key) {
                    s = sf_fail(err, SF_E_NOMEM, "out of memory");
                    goto fail;
                }
                if ((s = next_event(p, &e, what, err))) {
                    free(key);
                    goto fail;
                }
            }
            sf_yaml *child = NULL;
            s = parse_node(p, &e, &child, depth + 1, what, err);
            yaml_event_delete(&e);
            if (s) {
                free(key);
                goto fail;
            }
            if (is_map) {
                /* a repeated key: the later value wins, as in PyYAML */
                size_t i;
                for (i = 0; i < y->n; i++)
                    if (strcmp(y->keys[i], key) == 0) break;
                if (i < y->n) {
                    sf_yaml_free(y->items[i]);
                    y->items[i] = child;
                    free(key);
                    continue;
                }
            }
            if (!yappend(y, key, child)) {
                free(key);
                sf_yaml_free(child);
                s = sf_fail(err, SF_E_NOMEM, "out of memory");
                goto fail;
            }
        }
        *out = y;
        return SF_OK;
    fail:
        sf_yaml_free(y);
        return s;
    }
    default:
        return sf_fail(err, SF_E_FORMAT, "%s: unexpected YAML structure", what);
    }
}

sf_status sf_yaml_parse(const char *text, size_t len, const char *what, sf_yaml **out, sf_err *err) {
    *out = NULL;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return sf_fail(err, SF_E_NOMEM, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    sf_status s = SF_OK;
    sf_yaml *root = NULL;
    yaml_event_t ev;
    int done = 0;
    while (!done) {
        if ((s = next_event(&p, &ev, what, err))) break;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (root) {
                s = sf_fail(err, SF_E_FORMAT, "%s: more than one YAML document", what);
                done = 1;
            }
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            if (root) {
                s = sf_fail(err, SF_E_FORMAT, "%s: unexpected YAML content", what);
                done = 1;
                break;
            }
            s = parse_node(&p, &ev, &root, 0, what, err);
            if (s) done = 1;
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (s) {
        sf_yaml_free(root);
        return s;
    }
    if (!root) root = ynew(SF_YAML_MAP); /* an empty file is an empty config */
    if (!root) return sf_fail(err, SF_E_NOMEM, "out of memory");
    if (root->kind != SF_YAML_MAP) {
        sf_yaml_free(root);
        return sf_fail(err, SF_E_FORMAT, "%s: a config must be a YAML mapping at the top level", what);
    }
    *out = root;
    return SF_OK;
}

sf_status sf_yaml_load(const char *path, sf_yaml **out, sf_err *err) {
    char *text = NULL;
    size_t len = 0;
    sf_status s = sf_read_file(path, &text, &len, SF_CONFIG_MAX_BYTES, err);
    if (s) return s;
    s = sf_yaml_parse(text, len, path, out, err);
    free(text);
    return s;
}

void sf_yaml_merge(sf_yaml *dst, sf_yaml *src) {
    if (!src) return;
    if (dst->kind != SF_YAML_MAP || src->kind != SF_YAML_MAP) {
        sf_yaml_free(src);
        return;
    }
    for (size_t i = 0; i < src->n; i++) {
        size_t j;
        for (j = 0; j < dst->n; j++)
            if (strcmp(dst->keys[j], src->keys[i]) == 0) break;
        sf_yaml *v = src->items[i];
        src->items[i] = NULL;
        if (j < dst->n) {
            if (dst->items[j]->kind == SF_YAML_MAP && v->kind == SF_YAML_MAP) {
                sf_yaml_merge(dst->items[j], v); /* nested maps merge key by key */
            } else {
                sf_yaml_free(dst->items[j]);     /* scalars and lists are replaced */
                dst->items[j] = v;
            }
        } else {
            if (!yappend(dst, src->keys[i], v)) {
                sf_yaml_free(v);
                continue;
            }
            src->keys[i] = NULL;
        }
    }
    sf_yaml_free(src);
}

const sf_yaml *sf_yaml_get(const sf_yaml *y, const char *dotted) {
    const char *p = dotted;
    while (y && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (y->kind != SF_YAML_MAP) return NULL;
        const sf_yaml *next = NULL;
        for (size_t i = 0; i < y->n; i++)
            if (strlen(y->keys[i]) == n && strncmp(y->keys[i], p, n) == 0) next = y->items[i];
        y = next;
        p = dot ? dot + 1 : p + n;
    }
    return y;
}

static int is_null(const sf_yaml *v) {
    return v->kind == SF_YAML_SCALAR && !v->quoted &&
           (!v->value[0] || strcmp(v->value, "~") == 0 || strcasecmp(v->value, "null") == 0);
}

static sf_status scalar_double(const sf_yaml *v, const char *key, double *out, sf_err *err) {
    if (v->kind != SF_YAML_SCALAR || v->quoted) return sf_fail(err, SF_E_FORMAT, "config key '%s' must be a number", key);
    char *end = NULL;
    errno = 0;
    double d = strtod(v->value, &end);
    if (!v->value[0] || *end || errno || !isfinite(d))
        return sf_fail(err, SF_E_FORMAT, "config key '%s' must be a number, got '%s'", key, v->value);
    *out = d;
    return SF_OK;
}

sf_status sf_yaml_double(const sf_yaml *y, const char *dotted, double *out, sf_err *err) {
    const sf_yaml *v = sf_yaml_get(y, dotted);
    if (!v || is_null(v)) return SF_E_NOTFOUND;
    return scalar_double(v, dotted, out, err);
}

sf_status sf_yaml_long(const sf_yaml *y, const char *dotted, long *out, sf_err *err) {
    double d;
    sf_status s = sf_yaml_double(y, dotted, &d, err);
    if (s) return s;
    if (d != floor(d) || fabs(d) > 9e15) return sf_fail(err, SF_E_FORMAT, "config key '%s' must be an integer", dotted);
    *out = (long)d;
    return SF_OK;
}

sf_status sf_yaml_bool(const sf_yaml *y, const char *dotted, int *out, sf_err *err) {
    const sf_yaml *v = sf_yaml_get(y, dotted);
    if (!v || is_null(v)) return SF_E_NOTFOUND;
    if (v->kind == SF_YAML_SCALAR && !v->quoted) {
        const char *t[] = {"true", "yes", "on"}, *f[] = {"false", "no", "off"};
        for (int i = 0; i < 3; i++) {
            if (strcasecmp(v->value, t[i]) == 0) { *out = 1; return SF_OK; }
            if (strcasecmp(v->value, f[i]) == 0) { *out = 0; return SF_OK; }
        }
    }
    return sf_fail(err, SF_E_FORMAT, "config key '%s' must be true or false", dotted);
}

sf_status sf_yaml_doubles(const sf_yaml *y, const char *dotted, double *vals, int *n, sf_err *err) {
    const sf_yaml *v = sf_yaml_get(y, dotted);
    if (!v || is_null(v)) return SF_E_NOTFOUND;
    if (v->kind != SF_YAML_SEQ) return sf_fail(err, SF_E_FORMAT, "config key '%s' must be a list of numbers", dotted);
    if ((int)v->n > *n) return sf_fail(err, SF_E_FORMAT, "config key '%s' has more than %d entries", dotted, *n);
    for (size_t i = 0; i < v->n; i++) {
        sf_status s = scalar_double(v->items[i], dotted, &vals[i], err);
        if (s) return s;
    }
    *n = (int)v->n;
    return SF_OK;
}

static void dump_rec(const sf_yaml *y, FILE *fp, int indent) {
    for (size_t i = 0; i < y->n; i++) {
        const sf_yaml *v = y->items[i];
        if (y->kind == SF_YAML_MAP) fprintf(fp, "%*s%s:", indent, "", y->keys[i]);
        else fprintf(fp, "%*s-", indent, "");
        if (v->kind == SF_YAML_SCALAR) {
            if (v->quoted) {
                fputs(" '", fp);
                for (const char *c = v->value; *c; c++) {
                    if (*c == '\'') fputc('\'', fp);
                    fputc(*c, fp);
                }
                fputs("'\n", fp);
            } else {
                fprintf(fp, " %s\n", v->value);
            }
        } else {
            fputc('\n', fp);
            dump_rec(v, fp, indent + 2);
        }
    }
}

int sf_yaml_dump(const sf_yaml *y, void *fp) {
    dump_rec(y, (FILE *)fp, 0);
    return ferror((FILE *)fp) ? -1 : 0;
}

/* ---------------- run config ---------------- */

/* The reference's code defaults for keys no config sets. */
static void run_config_default(sf_run_config *rc) {
    memset(rc, 0, sizeof *rc);
    rc->num_frame_per_block = 1;
    rc->timestep_shift = 8.0;
    rc->local_attn_size = -1;
    rc->sink_size = 0;
}

sf_status sf_run_config_load(const char *default_path, const char *path, sf_run_config *rc, sf_err *err) {
    run_config_default(rc);
    sf_yaml *root = NULL, *top = NULL;
    sf_status s = SF_OK;
    if (default_path && (s = sf_yaml_load(default_path, &root, err))) return s;
    if (path) {
        if ((s = sf_yaml_load(path, &top, err))) goto done;
        if (root) sf_yaml_merge(root, top);
        else root = top;
        top = NULL;
    }
    if (root && (s = sf_run_config_from_yaml(root, rc, err)) && err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        sf_fail(err, s, "%s: %s", path ? path : default_path, msg);
    }
done:
    sf_yaml_free(root);
    sf_yaml_free(top);
    return s;
}

sf_status sf_run_config_from_yaml(const sf_yaml *root, sf_run_config *rc, sf_err *err) {
    sf_status s = SF_OK;
    run_config_default(rc);
    int n = 16;
    s = sf_yaml_doubles(root, "denoising_step_list", rc->denoising_step_list, &n, err);
    if (s == SF_OK) rc->n_steps = n;
    else if (s != SF_E_NOTFOUND) goto done;
    long l;
    double d;
    int b;
#define OPT(call, assign)                                                                                            \
    do {                                                                                                             \
        s = (call);                                                                                                  \
        if (s == SF_OK) { assign; }                                                                                  \
        else if (s != SF_E_NOTFOUND) goto done;                                                                      \
    } while (0)
    OPT(sf_yaml_bool(root, "warp_denoising_step", &b, err), rc->warp_denoising_step = b);
    OPT(sf_yaml_long(root, "num_frame_per_block", &l, err), rc->num_frame_per_block = l < 1 || l > 1024 ? 0 : (int)l);
    OPT(sf_yaml_bool(root, "independent_first_frame", &b, err), rc->independent_first_frame = b);
    OPT(sf_yaml_double(root, "context_noise", &d, err), rc->context_noise = d);
    /* The wrapper reads the shift from model_kwargs only; with no model_kwargs its default is 8.0
     * (the top-level timestep_shift key is a training setting). */
    OPT(sf_yaml_double(root, "model_kwargs.timestep_shift", &d, err), rc->timestep_shift = d);
    OPT(sf_yaml_long(root, "model_kwargs.local_attn_size", &l, err), rc->local_attn_size = l);
    OPT(sf_yaml_long(root, "model_kwargs.sink_size", &l, err), rc->sink_size = l);
    double shp[5];
    n = 5;
    s = sf_yaml_doubles(root, "image_or_video_shape", shp, &n, err);
    if (s == SF_OK && n == 5) {
        for (int i = 0; i < 5; i++) {
            if (!(shp[i] >= 0 && shp[i] <= 1e9) || shp[i] != floor(shp[i])) {
                s = sf_fail(err, SF_E_FORMAT, "config: image_or_video_shape must be 5 non-negative integers");
                goto done;
            }
            rc->image_or_video_shape[i] = (long)shp[i];
        }
        rc->has_shape = 1;
    } else if (s != SF_OK && s != SF_E_NOTFOUND) {
        goto done;
    }
#undef OPT
    s = SF_OK;
    if (rc->num_frame_per_block < 1 || rc->num_frame_per_block > 1024) {
        s = sf_fail(err, SF_E_FORMAT, "config: num_frame_per_block must be in [1, 1024]");
        goto done;
    }
    for (int i = 0; i < rc->n_steps; i++)
        if (rc->denoising_step_list[i] < 0 || rc->denoising_step_list[i] > 1000) {
            s = sf_fail(err, SF_E_FORMAT, "config: denoising_step_list entries must be in [0, 1000]");
            goto done;
        }
done:
    return s;
}
