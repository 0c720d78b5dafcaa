/* cli.c — long flags in both dash and underscore form. Tested by tests/unit/test_core.c. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "cli.h"
#include "device.h"
#include "parallel.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int name_eq(const char *given, size_t n, const char *name) {
    if (strlen(name) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char a = given[i] == '_' ? '-' : given[i];
        if (a != name[i]) return 0;
    }
    return 1;
}

static int push(sf_args *a, int opt, const char *value) {
    sf_arg *nv = realloc(a->v, (size_t)(a->n + 1) * sizeof *nv);
    if (!nv) return 0;
    a->v = nv;
    a->v[a->n].opt = opt;
    a->v[a->n].value = value;
    a->n++;
    return 1;
}

/* The flags the last sf_args_parse saw spelled with underscores (--num_frames, as the reference's argparse
 * flags are): their errors name them so (sf_arg_long, sf_arg_double), not in the dash form the code uses. */
#define US_MAX 64
static char us_names[US_MAX][48];
static int us_n;

static void us_note(const char *name) {
    for (int k = 0; k < us_n; k++)
        if (!strcmp(us_names[k], name)) return;
    if (us_n < US_MAX && strlen(name) < sizeof us_names[0]) snprintf(us_names[us_n++], sizeof us_names[0], "%s", name);
}

/* flag ("--name" or "name") as the user spelled it: "--the_name" when they typed underscores; else as given. */
static const char *shown(const char *flag, char *buf, size_t n) {
    const char *name = flag[0] == '-' && flag[1] == '-' ? flag + 2 : flag;
    for (int k = 0; k < us_n; k++)
        if (!strcmp(us_names[k], name)) {
            snprintf(buf, n, "--%s", name);
            for (char *c = buf + 2; *c; c++)
                if (*c == '-') *c = '_';
            return buf;
        }
    return flag;
}

/* "--name" of an option, as the user spelled it (shown). */
static const char *opt_flag(const char *name, char *buf, size_t n) {
    char f[64];
    snprintf(f, sizeof f, "--%s", name);
    const char *r = shown(f, buf, n);
    if (r == f) snprintf(buf, n, "%s", f);
    return buf;
}

static int is_flag_word(const char *s) {
    /* "-" alone is a value (stdin/stdout); negative numbers are values too */
    if (s[0] != '-' || s[1] == 0) return 0;
    if ((s[1] >= '0' && s[1] <= '9') || s[1] == '.') return 0;
    return 1;
}

sf_status sf_args_parse(int argc, char **argv, const sf_opt *opts, sf_args *out, sf_err *err) {
    int nopts = 0;
    while (opts[nopts].name) nopts++;
    out->v = NULL;
    out->n = 0;
    us_n = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (only_pos || !is_flag_word(w)) {
            if (!push(out, -1, w)) goto nomem;
            continue;
        }
        if (strcmp(w, "--") == 0) {
            only_pos = 1;
            continue;
        }
        int o = -1;
        const char *inline_val = NULL;
        char sp[64];
        if (w[1] == '-') {
            const char *nm = w + 2, *eq = strchr(nm, '=');
            size_t n = eq ? (size_t)(eq - nm) : strlen(nm);
            for (int k = 0; k < nopts; k++)
                if (name_eq(nm, n, opts[k].name)) { o = k; break; }
            if (eq) inline_val = eq + 1;
            if (o >= 0 && memchr(nm, '_', n)) us_note(opts[o].name);
        } else if (w[2] == 0) {
            for (int k = 0; k < nopts; k++)
                if (opts[k].short_name == w[1]) { o = k; break; }
        }
        if (o < 0) {
            sf_args_free(out);
            return sf_fail(err, SF_E_ARG, "unknown option '%s' (see --help)", w);
        }
        if (opts[o].kind == SF_ARG_FLAG) {
            if (inline_val) {
                sf_args_free(out);
                return sf_fail(err, SF_E_ARG, "option %s takes no value", opt_flag(opts[o].name, sp, sizeof sp));
            }
            if (!push(out, o, NULL)) goto nomem;
        } else if (inline_val) {
            if (!push(out, o, inline_val)) goto nomem;
        } else if (opts[o].kind == SF_ARG_VALUE) {
            if (i + 1 >= argc) {
                sf_args_free(out);
                return sf_fail(err, SF_E_ARG, "option %s needs a value", opt_flag(opts[o].name, sp, sizeof sp));
            }
            if (!push(out, o, argv[++i])) goto nomem;
        } else {
            int got = 0;
            while (i + 1 < argc && !is_flag_word(argv[i + 1])) {
                if (!push(out, o, argv[++i])) goto nomem;
                got++;
            }
            if (!got) {
                sf_args_free(out);
                return sf_fail(err, SF_E_ARG, "option %s needs at least one value", opt_flag(opts[o].name, sp, sizeof sp));
            }
        }
    }
    return SF_OK;
nomem:
    sf_args_free(out);
    return sf_fail(err, SF_E_NOMEM, "out of memory");
}

void sf_args_free(sf_args *a) {
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

static int find_opt(const sf_opt *opts, const char *name) {
    for (int k = 0; opts[k].name; k++)
        if (strcmp(opts[k].name, name) == 0) return k;
    return -2;
}

const char *sf_args_get(const sf_args *a, const sf_opt *opts, const char *name) {
    int o = find_opt(opts, name);
    const char *v = NULL;
    for (int i = 0; i < a->n; i++)
        if (a->v[i].opt == o) v = a->v[i].value;
    return v;
}

int sf_args_has(const sf_args *a, const sf_opt *opts, const char *name) {
    int o = find_opt(opts, name);
    for (int i = 0; i < a->n; i++)
        if (a->v[i].opt == o) return 1;
    return 0;
}

static int collect(const sf_args *a, int o, const char ***vals) {
    int n = 0;
    *vals = calloc((size_t)a->n + 1, sizeof(char *));
    if (!*vals) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->v[i].opt == o) (*vals)[n++] = a->v[i].value;
    return n;
}

int sf_args_all(const sf_args *a, const sf_opt *opts, const char *name, const char ***vals) {
    return collect(a, find_opt(opts, name), vals);
}

int sf_args_positional(const sf_args *a, const char ***vals) { return collect(a, -1, vals); }

/* callers name the flag as "--fps" or "fps": either way the message names it once, as --fps */
static const char *dashes(const char *flag) { return flag[0] == '-' ? "" : "--"; }

sf_status sf_arg_long(const char *flag, const char *s, long lo, long hi, long *out, sf_err *err) {
    char sp[64];
    flag = shown(flag, sp, sizeof sp);
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < lo || v > hi)
        return sf_fail(err, SF_E_ARG, "%s%s: expected an integer in [%ld, %ld], got '%s'", dashes(flag), flag, lo, hi,
                       s ? s : "");
    *out = v;
    return SF_OK;
}

sf_status sf_arg_double(const char *flag, const char *s, double *out, sf_err *err) {
    char sp[64];
    flag = shown(flag, sp, sizeof sp);
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !*s || *end || errno || !isfinite(v))
        return sf_fail(err, SF_E_ARG, "%s%s: expected a number, got '%s'", dashes(flag), flag, s ? s : "");
    *out = v;
    return SF_OK;
}

void sf_args_usage(const char *prog, const char *synopsis, const sf_opt *opts) {
    int nopts = 0;
    while (opts[nopts].name) nopts++;
    printf("usage: %s %s\n\noptions (every --dash-form also works as --underscore_form):\n", prog, synopsis);
    for (int k = 0; k < nopts; k++) {
        const char *h = opts[k].help ? opts[k].help : "";
        const char *tab = strchr(h, '\t');
        char left[96];
        if (tab)
            snprintf(left, sizeof left, "%s%c%s--%s %.*s", opts[k].short_name ? "-" : "",
                     opts[k].short_name ? opts[k].short_name : ' ', opts[k].short_name ? ", " : "  ",
                     opts[k].name, (int)(tab - h), h);
        else
            snprintf(left, sizeof left, "%s%c%s--%s", opts[k].short_name ? "-" : "",
                     opts[k].short_name ? opts[k].short_name : ' ', opts[k].short_name ? ", " : "  ",
                     opts[k].name);
        printf("  %-34s %s\n", left, tab ? tab + 1 : h);
    }
}

int sf_args_main(int argc, char **argv, const char *prog, const char *synopsis, const sf_opt *opts, sf_args *a) {
    sf_err err = {{0}};
    sf_log_set_prefix(prog);
    sf_status s = sf_args_parse(argc, argv, opts, a, &err);
    if (s) sf_die(prog, s, &err);
    if (sf_args_has(a, opts, "help")) {
        sf_args_usage(prog, synopsis, opts);
        sf_args_free(a);
        return 1;
    }
    if (sf_args_has(a, opts, "version")) {
        printf("%s %s\n", prog, SF_VERSION);
        sf_args_free(a);
        return 1;
    }
    const char *lv = sf_args_get(a, opts, "log-level");
    if (lv) {
        int l = sf_log_parse_level(lv);
        if (l < 0) {
            sf_args_free(a);
            sf_die(prog, SF_E_ARG, &(sf_err){"--log-level: expected error, warn, info or debug"});
        }
        sf_log_set_level(l);
    }
    return 0;
}

sf_status sf_stage_flags_get(const sf_args *a, const sf_opt *opts, sf_stage_flags *f, sf_err *err) {
    sf_status s;
    memset(f, 0, sizeof *f);
    f->model_dir = find_opt(opts, "model-dir") >= 0 ? sf_args_get(a, opts, "model-dir") : NULL;
    if (!f->model_dir || !*f->model_dir) f->model_dir = getenv("SF_MODEL_DIR");
    if (!f->model_dir || !*f->model_dir) f->model_dir = "wan_models/Wan2.1-T2V-1.3B";

    const char *pm = find_opt(opts, "progress") >= 0 ? sf_args_get(a, opts, "progress") : NULL;
    if (!pm || !strcmp(pm, "auto"))
        f->progress = sf_progress_enabled(pm) ? SF_PROGRESS_BAR : sf_log_level() >= SF_LOG_INFO ? SF_PROGRESS_LINES
                                                                                                : SF_PROGRESS_NONE;
    else if (!strcmp(pm, "bar")) f->progress = SF_PROGRESS_BAR;
    else if (!strcmp(pm, "lines")) f->progress = SF_PROGRESS_LINES;
    else if (!strcmp(pm, "none")) f->progress = SF_PROGRESS_NONE;
    else return sf_fail(err, SF_E_ARG, "--progress: expected auto, bar, lines or none, got '%s'", pm);

    const char *ds = find_opt(opts, "device") >= 0 ? sf_args_get(a, opts, "device") : NULL;
    const char *gs = find_opt(opts, "gpu-id") >= 0 ? sf_args_get(a, opts, "gpu-id") : NULL;
    sf_device d = {0, 0}, g = {0, 0};
    if (ds && (s = sf_device_parse(ds, &d, err))) return s;
    if (gs) {
        char *end = NULL;
        long n = strtol(gs, &end, 10);
        if (!*gs || *end || n < 0 || n > 1023)
            return sf_fail(err, SF_E_ARG, "--gpu-id: expected a GPU number (0, 1, ...), got '%s'", gs);
        g.cuda = 1, g.ordinal = (int)n;
        if (ds && (!d.cuda || d.ordinal != g.ordinal))
            return sf_fail(err, SF_E_ARG, "--device %s and --gpu-id %s name different devices: give one of them", ds, gs);
        d = g;
    }
    f->cuda = d.cuda;
    f->ordinal = d.ordinal;

    const char *ts = find_opt(opts, "timeout") >= 0 ? sf_args_get(a, opts, "timeout") : NULL;
    if (ts) {
        double t = 0;
        if ((s = sf_arg_double("--timeout", ts, &t, err))) return s;
        if (!(t >= 0 && t <= 1e9)) return sf_fail(err, SF_E_ARG, "--timeout: expected seconds >= 0 (0: wait forever), got '%s'", ts);
        f->wire_timeout = t == 0 ? -1 : t;
    }
    /* the CPU numerics: through the environment, so the kernels and the stages sf-run starts see them */
    const int det = find_opt(opts, "deterministic") >= 0 && sf_args_has(a, opts, "deterministic");
    const char *prec = find_opt(opts, "precision") >= 0 ? sf_args_get(a, opts, "precision") : NULL;
    if (prec && strcmp(prec, "fp32") && strcmp(prec, "bf16"))
        return sf_fail(err, SF_E_ARG, "--precision: expected fp32 or bf16, got '%s'", prec);
    if (det && prec && !strcmp(prec, "bf16"))
        return sf_fail(err, SF_E_ARG, "--deterministic runs the exact fp32 kernels: drop --precision bf16");
    if (det) setenv("SF_CPU_EXACT", "1", 1);
    if (prec) setenv("SF_CPU_PRECISION", prec, 1);
    f->cpu_mode = (int)sf_cpu_mode_now();
    return SF_OK;
}
