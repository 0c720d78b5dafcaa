/* runspec.c — turns a pipeline spec (pipelines/NAME.yaml) into stage command lines.
 *
 * Spec keys: name, transport (pipe|ipc|tcp|shm, default ipc), vars (map; ${var} expands in
 * every string; overrides "var=value"), stages (list of {name, program, device, host, args}),
 * launcher (ssh, the default, or srun: stages on the Slurm allocation's nodes, a stage's `node: K`
 * picking the K-th, else node i mod n; launch_srun.c), extends (another spec, a path relative to
 * this one's folder: it is loaded first and this spec laid over it — vars key by key, every other
 * key replaced; up to 4 levels).
 * args is a map: "--key value" for scalars, "--key" alone for true, nothing for false/null,
 * "--key v1 v2" for lists. "stage.key=value" overrides set or replace one arg of one stage
 * (matching an existing arg whatever its '-'/'_' spelling); "stage.device=" and "stage.host="
 * set the stage's own fields. A relative program path with a '/' is relative to the folder of the
 * spec that lists the stages (./sink_study.sh); a name without '/' is looked up by sf-run (next to
 * it, then PATH). Overrides naming a variable the spec neither declares nor uses,
 * or a stage it does not have, are errors that name the closest valid one.
 * Tested by tests/unit/test_runspec.c and tests/bats/sf-run.bats. */
#define _POSIX_C_SOURCE 200809L
#include "runspec.h"
#include "launch_srun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

/* A spec's vars, then the command line's var overrides (a later entry wins: expand reads them backwards). */
#define SPEC_VARS 64
#define OVERRIDE_VARS 64
typedef struct vars {
    const char *k[SPEC_VARS + OVERRIDE_VARS];
    const char *v[SPEC_VARS + OVERRIDE_VARS];
    int n;
} vars;

static sf_status expand(const char *in, const vars *vs, char *out, size_t n, sf_err *err) {
    size_t o = 0;
    for (const char *p = in; *p;) {
        if (p[0] == '$' && p[1] == '{') {
            const char *e = strchr(p, '}');
            if (!e) return sf_fail(err, SF_E_FORMAT, "unterminated ${ in '%s'", in);
            size_t kl = (size_t)(e - p - 2);
            const char *val = NULL;
            for (int i = vs->n - 1; i >= 0 && !val; i--)
                if (strlen(vs->k[i]) == kl && strncmp(vs->k[i], p + 2, kl) == 0) val = vs->v[i];
            if (!val) return sf_fail(err, SF_E_FORMAT, "undefined variable ${%.*s}", (int)kl, p + 2);
            size_t vl = strlen(val);
            if (o + vl >= n) return sf_fail(err, SF_E_FORMAT, "expanded value too long");
            memcpy(out + o, val, vl);
            o += vl;
            p = e + 1;
        } else {
            if (o + 1 >= n) return sf_fail(err, SF_E_FORMAT, "value too long");
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    return SF_OK;
}

static int push_arg(sf_run_stage *st, const char *a) {
    char **nv = realloc(st->argv, (size_t)(st->argc + 2) * sizeof *nv);
    if (!nv) return 0;
    st->argv = nv;
    if (!(st->argv[st->argc] = strdup(a))) return 0;
    st->argc++;
    st->argv[st->argc] = NULL;
    return 1;
}

static const char *scalar(const sf_yaml *y, const char *key) {
    const sf_yaml *v = sf_yaml_get(y, key);
    return v && v->kind == SF_YAML_SCALAR ? v->value : NULL;
}

/* The spec at path with what it extends laid under it (see the top). depth: levels above this one.
 * stages_dir[sdn]: the folder of the spec whose `stages` are used (the first that has them, from
 * the top: a spec's stages replace its base's); left as is when none has them. */
static sf_status load_spec(const char *path, int depth, sf_yaml **out, char *stages_dir, size_t sdn, sf_err *err) {
    sf_yaml *spec = NULL, *base = NULL;
    sf_status s = sf_yaml_load(path, &spec, err);
    if (s) return s;
    if (!stages_dir[0] && sf_yaml_get(spec, "stages") && !sf_path_dir(path, stages_dir, sdn))
        s = sf_fail(err, SF_E_ARG, "%s: path too long", path);
    const char *ext = s ? NULL : scalar(spec, "extends");
    if (s) {
        sf_yaml_free(spec);
        return s;
    }
    if (!ext) {
        *out = spec;
        return SF_OK;
    }
    char bp[4096];
    const char *slash = strrchr(path, '/');
    if (depth >= 4) s = sf_fail(err, SF_E_FORMAT, "%s: 'extends' nests more than 4 specs deep (a cycle?)", path);
    else if (!*ext) s = sf_fail(err, SF_E_FORMAT, "%s: 'extends' names no spec", path);
    else if (ext[0] == '/' || !slash) snprintf(bp, sizeof bp, "%s", ext);
    else if ((size_t)snprintf(bp, sizeof bp, "%.*s/%s", (int)(slash - path), path, ext) >= sizeof bp)
        s = sf_fail(err, SF_E_ARG, "%s: 'extends' path too long", path);
    if (!s && (s = load_spec(bp, depth + 1, &base, stages_dir, sdn, err))) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        s = sf_fail(err, s, "%s extends %s: %s", path, ext, m);
    }
    if (s) {
        sf_yaml_free(spec);
        return s;
    }
    sf_yaml_merge(base, spec); /* consumes spec */
    *out = base;
    return SF_OK;
}

/* The settings local stages inherit from sf-run's environment — the log level (--log-level), the CPU
 * numerics (--deterministic / SF_CPU_EXACT, SF_CPU_PRECISION: the same bytes on every host) — which
 * ssh does not carry: "export NAME=VALUE ...; " for the remote shell, or "". Plain values only (they
 * go into a shell command line); another is not passed, with a warning. */
static void remote_env(char *out, size_t n) {
    static const char *const names[] = {"SF_LOG_LEVEL", "SF_CPU_EXACT", "SF_CPU_PRECISION"};
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (!v || !*v) continue;
        if (strlen(v) > 32 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(v)) {
            sf_warn("$%s is not passed to remote stages: not a plain value", names[i]);
            continue;
        }
        o += (size_t)snprintf(out + o, n - o, "%s%s=%s", o ? " " : "export ", names[i], v);
    }
    if (o) snprintf(out + o, n - o, "; ");
}

/* "user@host" -> "host" */
static const char *host_part(const char *h) { return strchr(h, '@') ? strchr(h, '@') + 1 : h; }

static int is_false(const char *v) { return !*v || !strcmp(v, "false") || !strcmp(v, "null") || !strcmp(v, "~"); }

/* ---------- names: what an override may name, and the closest one to a typo ---------- */

#define MAX_NAMES 256

typedef struct name_set {
    char v[MAX_NAMES][64];
    int n;
} name_set;

static void names_add(name_set *ns, const char *s, size_t len) {
    if (len == 0 || len >= sizeof ns->v[0]) return;
    for (int i = 0; i < ns->n; i++)
        if (strlen(ns->v[i]) == len && !strncmp(ns->v[i], s, len)) return;
    if (ns->n < MAX_NAMES) {
        memcpy(ns->v[ns->n], s, len);
        ns->v[ns->n++][len] = 0;
    }
}

/* Every ${name} used in a scalar anywhere under y. */
static void names_used(name_set *ns, const sf_yaml *y) {
    if (!y) return;
    if (y->kind == SF_YAML_SCALAR) {
        for (const char *p = y->value ? y->value : ""; (p = strstr(p, "${"));) {
            const char *e = strchr(p, '}');
            if (!e) break;
            names_add(ns, p + 2, (size_t)(e - p - 2));
            p = e + 1;
        }
        return;
    }
    for (size_t i = 0; i < y->n; i++) names_used(ns, y->items[i]);
}

static int has_name(const name_set *ns, const char *s, size_t len) {
    for (int i = 0; i < ns->n; i++)
        if (strlen(ns->v[i]) == len && !strncmp(ns->v[i], s, len)) return 1;
    return 0;
}

/* Edit distance with adjacent transpositions counting one (optimal string alignment), so
 * "outptu" is one edit from "output". Names longer than 63 bytes compare as far apart. */
static int edit_distance(const char *a, size_t la, const char *b) {
    size_t lb = strlen(b);
    if (la > 63 || lb > 63) return 1000;
    int d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

/* The closest name in ns to s[0, len) (the first of equally close ones); NULL when ns is empty. */
static const char *closest(const name_set *ns, const char *s, size_t len, int *dist) {
    const char *best = NULL;
    int bd = 1 << 30;
    for (int i = 0; i < ns->n; i++) {
        int d = edit_distance(s, len, ns->v[i]);
        if (d < bd) bd = d, best = ns->v[i];
    }
    if (dist) *dist = bd;
    return best;
}

/* Refuse overrides that would be silently ignored: a variable the spec neither declares nor
 * uses (num_frame=9, outptu=x), a stage that does not exist (denoize.seed=7). The message names
 * the closest valid one. */
static sf_status check_overrides(const char *spec_path, const sf_yaml *spec, const sf_run_plan *plan,
                                 const char *const *ov, int nov, sf_err *err) {
    name_set vars_ok = {.n = 0}, stages = {.n = 0}, stage_keys = {.n = 0};
    const sf_yaml *vy = sf_yaml_get(spec, "vars");
    if (vy && vy->kind == SF_YAML_MAP)
        for (size_t i = 0; i < vy->n; i++) names_add(&vars_ok, vy->keys[i], strlen(vy->keys[i]));
    names_used(&vars_ok, spec);
    for (int i = 0; i < plan->n; i++) names_add(&stages, plan->stages[i].name, strlen(plan->stages[i].name));
    /* stage.key spellings, offered when a bare key is closer to one of them than to any variable */
    const sf_yaml *sy = sf_yaml_get(spec, "stages");
    for (size_t i = 0; sy && sy->kind == SF_YAML_SEQ && i < sy->n && (int)i < plan->n; i++) {
        const sf_yaml *args = sf_yaml_get(sy->items[i], "args");
        for (size_t k = 0; args && args->kind == SF_YAML_MAP && k < args->n; k++) {
            char full[64];
            int fl = snprintf(full, sizeof full, "%s.%s", plan->stages[i].name, args->keys[k]);
            if (fl > 0 && (size_t)fl < sizeof full) names_add(&stage_keys, full, (size_t)fl);
        }
    }
    for (int i = 0; i < nov; i++) {
        const char *o = ov[i], *eq = strchr(o, '='), *dot = strchr(o, '.');
        size_t kl = (size_t)(eq - o);
        if (dot && dot < eq) {
            size_t sl = (size_t)(dot - o);
            if (has_name(&stages, o, sl)) continue;
            const char *c = closest(&stages, o, sl, NULL);
            return sf_fail(err, SF_E_ARG, "%s: unknown stage '%.*s' in '%s' (did you mean '%s'?)", spec_path, (int)sl,
                           o, o, c ? c : "?");
        }
        if (has_name(&vars_ok, o, kl)) continue;
        int dv = 0, dk = 0;
        const char *cv = closest(&vars_ok, o, kl, &dv);
        /* "seed=7" where only a stage has a seed: compare with the key after "stage." */
        const char *ck = NULL;
        for (int k = 0; k < stage_keys.n; k++) {
            const char *key = strchr(stage_keys.v[k], '.') + 1;
            int d = edit_distance(o, kl, key);
            if (!ck || d < dk) ck = stage_keys.v[k], dk = d;
        }
        if (ck && (!cv || dk < dv)) cv = ck;
        if (!cv)
            return sf_fail(err, SF_E_ARG, "%s: unknown variable '%.*s': this spec has no variables (set a stage's "
                           "argument with STAGE.ARG=VALUE)", spec_path, (int)kl, o);
        return sf_fail(err, SF_E_ARG, "%s: unknown variable '%.*s' (did you mean '%s'?)", spec_path, (int)kl, o, cv);
    }
    return SF_OK;
}

/* Same name apart from '-' vs '_' (the programs accept both spellings of a flag). */
static int same_flag(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (*a != *b && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_'))) return 0;
    return *a == *b;
}

/* Apply "stage.key=value" overrides to the args map of stage `name` (creating keys). */
static sf_status apply_stage_overrides(sf_yaml *args, const char *name, const char *const *ov, int nov, sf_err *err) {
    for (int i = 0; i < nov; i++) {
        const char *eq = strchr(ov[i], '='), *dot = strchr(ov[i], '.');
        if (!eq || !dot || dot > eq) continue;
        if ((size_t)(dot - ov[i]) != strlen(name) || strncmp(ov[i], name, strlen(name)) != 0) continue;
        char key[256], text[1024];
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
        if (!strcmp(key, "device") || !strcmp(key, "host")) continue; /* the stage's own fields */
        for (size_t k = 0; k < args->n; k++) /* denoise.checkpoint-path replaces checkpoint_path */
            if (same_flag(args->keys[k], key)) snprintf(key, sizeof key, "%s", args->keys[k]);
        snprintf(text, sizeof text, "%s: %s\n", key, eq + 1);
        sf_yaml *one = NULL;
        sf_status s = sf_yaml_parse(text, strlen(text), ov[i], &one, err);
        if (s) return s;
        sf_yaml_merge(args, one);
    }
    return SF_OK;
}

sf_status sf_run_plan_load(const char *spec_path, const char *const *ov, int nov, const char *run_id, int tcp_port0,
                           sf_run_plan *plan, sf_err *err) {
    memset(plan, 0, sizeof *plan);
    sf_yaml *spec = NULL;
    char stages_dir[4096] = "";
    sf_status s = load_spec(spec_path, 0, &spec, stages_dir, sizeof stages_dir, err);
    if (s) return s;
    vars vs = {.n = 0};
    const sf_yaml *vy = sf_yaml_get(spec, "vars");
    if (vy && vy->kind == SF_YAML_MAP)
        for (size_t i = 0; i < vy->n; i++)
            if (vy->items[i]->kind == SF_YAML_SCALAR) {
                if (vs.n == SPEC_VARS) {
                    s = sf_fail(err, SF_E_ARG, "%s: more than %d vars", spec_path, SPEC_VARS);
                    goto done;
                }
                vs.k[vs.n] = vy->keys[i];
                vs.v[vs.n++] = vy->items[i]->value;
            }
    char ovk[OVERRIDE_VARS][128];
    int nk = 0;
    for (int i = 0; i < nov; i++) {
        if ((s = sf_run_check_override(ov[i], err))) goto done;
        const char *eq = strchr(ov[i], '=');
        if (!eq || eq == ov[i]) {
            s = sf_fail(err, SF_E_ARG, "override '%s' is not key=value", ov[i]);
            goto done;
        }
        const char *dot = strchr(ov[i], '.');
        if (dot && dot < eq) continue; /* stage override */
        if (nk == OVERRIDE_VARS) {
            s = sf_fail(err, SF_E_ARG, "too many var overrides (at most %d)", OVERRIDE_VARS);
            goto done;
        }
        if (eq - ov[i] >= (ptrdiff_t)sizeof ovk[nk]) {
            s = sf_fail(err, SF_E_ARG, "override '%.40s...': the name is too long", ov[i]);
            goto done;
        }
        snprintf(ovk[nk], sizeof ovk[nk], "%.*s", (int)(eq - ov[i]), ov[i]);
        vs.k[vs.n] = ovk[nk++];
        vs.v[vs.n++] = eq + 1;
    }
    const char *nm = scalar(spec, "name");
    snprintf(plan->name, sizeof plan->name, "%s", nm ? nm : "pipeline");
    const char *tr = scalar(spec, "transport");
    char trbuf[32] = "ipc";
    if (tr && (s = expand(tr, &vs, trbuf, sizeof trbuf, err))) goto done;
    if (!strcmp(trbuf, "pipe")) plan->transport = SF_RUN_PIPE;
    else if (!strcmp(trbuf, "ipc")) plan->transport = SF_RUN_IPC;
    else if (!strcmp(trbuf, "tcp")) plan->transport = SF_RUN_TCP;
    else if (!strcmp(trbuf, "shm")) plan->transport = SF_RUN_SHM;
    else {
        s = sf_fail(err, SF_E_FORMAT, "%s: unknown transport '%s' (pipe, ipc, tcp or shm)", spec_path, trbuf);
        goto done;
    }
    const char *ln = scalar(spec, "launcher"); /* srun: every stage on a node of the Slurm allocation */
    if (ln && strcmp(ln, "ssh") && strcmp(ln, "srun")) {
        s = sf_fail(err, SF_E_FORMAT, "%s: unknown launcher '%s' (ssh or srun)", spec_path, ln);
        goto done;
    }
    if (ln && !strcmp(ln, "srun")) {
        plan->launcher = SF_RUN_SRUN;
        if ((s = sf_run_srun_nodes(plan, err))) goto done;
    }
    sf_yaml *stages = (sf_yaml *)sf_yaml_get(spec, "stages");
    if (!stages || stages->kind != SF_YAML_SEQ || stages->n == 0) {
        s = sf_fail(err, SF_E_FORMAT, "%s: 'stages' must be a non-empty list", spec_path);
        goto done;
    }
    if (stages->n > SF_RUN_MAX_STAGES) {
        s = sf_fail(err, SF_E_FORMAT, "%s: more than %d stages", spec_path, SF_RUN_MAX_STAGES);
        goto done;
    }
    int any_remote = 0;
    for (size_t i = 0; i < stages->n; i++) {
        sf_yaml *sy = stages->items[i];
        sf_run_stage *st = &plan->stages[plan->n++];
        if (sy->kind != SF_YAML_MAP) {
            s = sf_fail(err, SF_E_FORMAT, "%s: stage %zu is not a map", spec_path, i);
            goto done;
        }
        const char *sn = scalar(sy, "name"), *prog = scalar(sy, "program");
        if (!prog) {
            s = sf_fail(err, SF_E_FORMAT, "%s: stage %zu has no 'program'", spec_path, i);
            goto done;
        }
        snprintf(st->name, sizeof st->name, "%s", sn ? sn : prog);
        if ((s = expand(prog, &vs, st->program, sizeof st->program, err))) goto done;
        const char *host = scalar(sy, "host"), *dev = scalar(sy, "device");
        for (int k = 0; k < nov; k++) { /* "stage.device=cuda:1" / "stage.host=gpu2" */
            size_t nl = strlen(st->name);
            if (strncmp(ov[k], st->name, nl) != 0 || ov[k][nl] != '.') continue;
            if (!strncmp(ov[k] + nl + 1, "device=", 7)) dev = ov[k] + nl + 8;
            if (!strncmp(ov[k] + nl + 1, "host=", 5)) host = ov[k] + nl + 6;
        }
        if (host && (s = expand(host, &vs, st->host, sizeof st->host, err))) goto done;
        if (dev && (s = expand(dev, &vs, st->device, sizeof st->device, err))) goto done;
        if (plan->launcher == SF_RUN_SRUN &&
            (s = sf_run_srun_place(plan, (int)i, scalar(sy, "node"), st->host, sizeof st->host, err)))
            goto done;
        if (!strcmp(st->host, "local") || !strcmp(st->host, "localhost")) st->host[0] = 0;
        /* a relative program path (one with a '/') is the spec's, like extends: relative to the folder
         * of the spec that lists the stages, so the spec runs from any folder, in the source tree and
         * installed (share/sfpipe/pipelines). Not for an ssh host: its paths are that machine's
         * (srun's nodes share this storage). */
        if (strchr(st->program, '/') && st->program[0] != '/' && (!st->host[0] || plan->launcher == SF_RUN_SRUN)) {
            char rel[sizeof st->program];
            const char *r = st->program[0] == '.' && st->program[1] == '/' ? st->program + 2 : st->program;
            snprintf(rel, sizeof rel, "%s", r);
            if ((size_t)snprintf(st->program, sizeof st->program, "%s/%s", stages_dir, rel) >= sizeof st->program) {
                s = sf_fail(err, SF_E_ARG, "%s: stage '%s': program %s/%s: path too long", spec_path, st->name, stages_dir, rel);
                goto done;
            }
        }
        char what[128];
        snprintf(what, sizeof what, "%s: stage '%s': host", spec_path, st->name);
        if (st->host[0] && (s = sf_run_check_host(what, st->host, err))) goto done;
        snprintf(what, sizeof what, "%s: stage '%s': device", spec_path, st->name);
        if ((s = sf_run_check_value(what, st->device, 0, err)) || (s = sf_run_check_arg(what, st->device, err))) goto done;
        snprintf(what, sizeof what, "%s: stage '%s': program", spec_path, st->name);
        if ((s = sf_run_check_value(what, st->program, 0, err)) || (s = sf_run_check_value(what, st->name, 0, err))) goto done;
        any_remote |= st->host[0] != 0;
    }
    if ((s = check_overrides(spec_path, spec, plan, ov, nov, err))) goto done;
    if (any_remote) plan->transport = SF_RUN_TCP; /* data between hosts goes over tcp */
    plan->curve = plan->transport == SF_RUN_TCP && zmq_has("curve");
    int port[SF_RUN_MAX_STAGES]; /* tcp: link i's port */
    for (int i = 0; i + 1 < plan->n; i++) port[i] = (tcp_port0 ? tcp_port0 : 47600) + i;
    if (plan->transport == SF_RUN_TCP && !tcp_port0) { /* free ports for the links within this machine */
        int local[SF_RUN_MAX_STAGES], nl = 0, fp[SF_RUN_MAX_STAGES];
        for (int i = 0; i + 1 < plan->n; i++)
            if (!plan->stages[i].host[0] && !plan->stages[i + 1].host[0]) local[nl++] = i;
        if ((s = sf_run_free_ports(nl, fp, err))) goto done;
        for (int k = 0; k < nl; k++) port[local[k]] = fp[k];
    }
    for (int i = 0; i + 1 < plan->n; i++) {
        sf_run_stage *a = &plan->stages[i], *b = &plan->stages[i + 1];
        switch (plan->transport) {
        case SF_RUN_PIPE:
            snprintf(a->out_url, sizeof a->out_url, "-");
            snprintf(b->in_url, sizeof b->in_url, "-");
            break;
        case SF_RUN_IPC: { /* in $TMPDIR when set (an absolute path short enough for a socket), else /tmp */
            const char *td = getenv("TMPDIR");
            if (!td || td[0] != '/' || strlen(td) > 80) td = "/tmp"; /* sf-run's run folder: ≤ 80 */
            size_t tl = strlen(td);
            while (tl > 1 && td[tl - 1] == '/') tl--;
            snprintf(a->out_url, sizeof a->out_url, "ipc://%.*s/sf-run-%s-%d.sock", (int)tl, td, run_id, i);
            _Static_assert(sizeof b->in_url == sizeof a->out_url, "in_url and out_url have one size");
            memcpy(b->in_url, a->out_url, sizeof b->in_url);
            break;
        }
        case SF_RUN_SHM:
            snprintf(a->out_url, sizeof a->out_url, "shm://sf-run-%s-%d", run_id, i);
            snprintf(b->in_url, sizeof b->in_url, "shm://sf-run-%s-%d", run_id, i);
            break;
        case SF_RUN_TCP: {
            /* The sender connects to the receiver's host. The receiver binds loopback when both
             * are here, else the interface that reaches the sender (wire_net.c "route="; a
             * sender on sf-run's host is the one ssh came from), never every interface. */
            char here[256] = "127.0.0.1";
            if (a->host[0] && !b->host[0] && (gethostname(here, sizeof here) != 0 || !here[0])) snprintf(here, sizeof here, "localhost");
            const char *rh = b->host[0] ? host_part(b->host) : here;
            if (!a->host[0] && !b->host[0])
                snprintf(b->in_url, sizeof b->in_url, "@tcp://127.0.0.1:%d", port[i]);
            else
                snprintf(b->in_url, sizeof b->in_url, "@tcp://route=%s:%d", a->host[0] ? host_part(a->host) : "ssh-client",
                         port[i]);
            snprintf(a->out_url, sizeof a->out_url, ">tcp://%s:%d", rh, port[i]);
            break;
        }
        }
    }
    for (size_t i = 0; i < stages->n; i++) {
        sf_yaml *sy = stages->items[i];
        sf_run_stage *st = &plan->stages[i];
        sf_yaml *args = (sf_yaml *)sf_yaml_get(sy, "args");
        sf_yaml *empty = NULL;
        if (!args) {
            if ((s = sf_yaml_parse("{}", 2, "args", &empty, err))) goto done;
            args = empty;
        }
        if (args->kind != SF_YAML_MAP) {
            s = sf_fail(err, SF_E_FORMAT, "%s: stage '%s': 'args' must be a map", spec_path, st->name);
            goto done;
        }
        s = apply_stage_overrides(args, st->name, ov, nov, err);
        if (!s && !push_arg(st, st->program)) s = sf_fail(err, SF_E_NOMEM, "out of memory");
        for (size_t k = 0; !s && k < args->n; k++) {
            const sf_yaml *v = args->items[k];
            char flag[160], val[2048];
            snprintf(flag, sizeof flag, "--%s", args->keys[k]);
            char what[400];
            snprintf(what, sizeof what, "%s: stage '%s': arg '%s'", spec_path, st->name, args->keys[k]);
            if (!(s = sf_run_check_value(what, args->keys[k], 0, err)) && args->keys[k][0] == '-')
                s = sf_fail(err, SF_E_ARG, "%s: name it without the leading '-'", what);
            if (s) {
            } else if (v->kind == SF_YAML_MAP) {
                s = sf_fail(err, SF_E_FORMAT, "%s: stage '%s': arg '%s' cannot be a map", spec_path, st->name, args->keys[k]);
            } else if (v->kind == SF_YAML_SEQ) {
                if (v->n && !push_arg(st, flag)) s = sf_fail(err, SF_E_NOMEM, "out of memory");
                for (size_t j = 0; !s && j < v->n; j++) {
                    if (v->items[j]->kind != SF_YAML_SCALAR)
                        s = sf_fail(err, SF_E_FORMAT, "%s: arg '%s': list items must be scalars", spec_path, args->keys[k]);
                    else if (!(s = expand(v->items[j]->value, &vs, val, sizeof val, err)) &&
                             !(s = sf_run_check_arg(what, val, err)) && !push_arg(st, val))
                        s = sf_fail(err, SF_E_NOMEM, "out of memory");
                }
            } else if (!(s = expand(v->value, &vs, val, sizeof val, err)) && !(s = sf_run_check_arg(what, val, err))) {
                if (!v->quoted && !strcmp(val, "true")) {
                    if (!push_arg(st, flag)) s = sf_fail(err, SF_E_NOMEM, "out of memory");
                } else if (v->quoted || !is_false(val)) {
                    if (!push_arg(st, flag) || !push_arg(st, val)) s = sf_fail(err, SF_E_NOMEM, "out of memory");
                }
            }
        }
        if (!s && st->device[0] && (!push_arg(st, "--device") || !push_arg(st, st->device)))
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
        if (!s && st->in_url[0] && (!push_arg(st, "--in") || !push_arg(st, st->in_url)))
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
        if (!s && st->out_url[0] && (!push_arg(st, "--out") || !push_arg(st, st->out_url)))
            s = sf_fail(err, SF_E_NOMEM, "out of memory");
        sf_yaml_free(empty);
        if (s) goto done;
        if (st->host[0] && plan->launcher == SF_RUN_SRUN) {
            if ((s = sf_run_srun_wrap(st, push_arg, err))) goto done;
        } else if (st->host[0]) {
            /* remote: ssh -o BatchMode=yes -- HOST 'quoted command line' (the host after "--":
             * never an option). With CURVE the remote shell reads the run's key from stdin
             * (sf_run_remote_stdin) into the stage's environment: on no command line. Then a
             * watcher reads the rest of stdin, which sf-run holds open while the stage runs, and
             * sends the stage ($$: the shell execs it) SIGTERM at its end: no signal crosses ssh
             * without a tty, so when sf-run stops the run, dies, or loses the connection, EOF is
             * all the remote side learns (without it the stage ran on, holding its GPU and port).
             * Only while the stage is the watcher's parent (/proc/self/stat's 4th field; without
             * /proc, as before): the channel also ends after a stage that ended by itself, whose
             * PID another process may hold by then. sshd makes the shell a session leader, which
             * keeps its PID from reuse while the watcher (in its session) lives; a launcher that
             * does not would have had the watcher signal whoever took the PID. */
            char line[8192], cmd[8800], env[256];
            sf_run_stage_cmdline(st, line, sizeof line);
            remote_env(env, sizeof env);
            snprintf(cmd, sizeof cmd,
                     "%s%sexec 3<&0; { while read -r _; do :; done; read -r _ _ _ p _ </proc/self/stat && [ \"$p\" != $$ ] || "
                     "kill -TERM $$; } <&3 >/dev/null 2>&1 & exec %s </dev/null 3<&-",
                     plan->curve ? "IFS= read -r SF_WIRE_CURVE_KEY; export SF_WIRE_CURVE_KEY; " : "", env, line);
            for (int k = 0; k < st->argc; k++) free(st->argv[k]);
            st->argc = 0;
            if (!push_arg(st, "ssh") || !push_arg(st, "-o") || !push_arg(st, "BatchMode=yes") || !push_arg(st, "--") ||
                !push_arg(st, st->host) || !push_arg(st, cmd)) {
                s = sf_fail(err, SF_E_NOMEM, "out of memory");
                goto done;
            }
        }
    }
done:
    sf_yaml_free(spec);
    if (s) sf_run_plan_free(plan);
    return s;
}

void sf_run_plan_free(sf_run_plan *plan) {
    for (int i = 0; i < plan->n; i++) {
        sf_run_stage *st = &plan->stages[i];
        for (int k = 0; k < st->argc; k++) free(st->argv[k]);
        free(st->argv);
        st->argv = NULL;
        st->argc = 0;
    }
    for (int i = 0; i < plan->n_nodes; i++) free(plan->nodes[i]);
    free(plan->nodes);
    plan->nodes = NULL;
    plan->n_nodes = 0;
}

const char *sf_run_stage_cmdline(const sf_run_stage *st, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int k = 0; k < st->argc && o + 4 < n; k++) {
        const char *a = st->argv[k];
        int plain = *a != 0;
        for (const char *c = a; *c; c++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+%", *c)) plain = 0;
        if (k) buf[o++] = ' ';
        if (plain) {
            o += (size_t)snprintf(buf + o, n - o, "%s", a);
        } else {
            buf[o++] = '\'';
            for (const char *c = a; *c && o + 6 < n; c++) {
                if (*c == '\'') {
                    memcpy(buf + o, "'\\''", 4);
                    o += 4;
                } else {
                    buf[o++] = *c;
                }
            }
            buf[o++] = '\'';
        }
        if (o >= n) o = n - 1;
        buf[o] = 0;
    }
    return buf;
}
