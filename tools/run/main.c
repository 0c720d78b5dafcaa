/* sf-run — start the stages of a pipeline spec, wire them, prefix their logs, and fail fast.
 *
 *   sf-run PIPELINE.yaml [key=value | stage.key=value ...] [--dry-run] [--timeout S]
 *
 * Every stage is a child process (ssh for stages with a host). Their stderr lines are
 * relayed with a "[stage] " prefix; their '\r'-terminated progress updates are drawn as one
 * status line for the whole pipeline when sf-run's stderr is a terminal (SF_PROGRESS=1 asks
 * the stages for them) and dropped otherwise. When a stage exits non-zero or dies, the others get
 * SIGTERM (SIGKILL 3 s later) and sf-run exits 1 naming the stage and its last message; a stage
 * that only relays an upstream failure is not blamed while its cause is still exiting. On
 * SIGINT/SIGTERM/SIGHUP it stops them all and exits 128 + signal (130, 143, 129), without blaming a
 * stage for the shutdown. The sockets between stages live in a private run folder that is removed
 * however the run ends (cleanup.c).
 * Children get PR_SET_PDEATHSIG so that they never outlive sf-run; a remote stage's shell stops it
 * when its stdin, which sf-run holds open, ends (sf_run_remote_stdin). A stage program without a
 * '/' is looked up next to sf-run first (build/bin, <prefix>/bin), then on PATH; a relative path
 * is relative to the spec's folder (runspec.c). Tested by
 * tests/bats/sf-run.bats. */
#define _GNU_SOURCE
#include "cli.h"
#include "runspec.h"
#include "cleanup.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { g_stop = sig; }
/* Error lines the stages print after sf-run started stopping them on a signal or the timeout
 * (sf-decode's "ffmpeg pipe: Broken pipe" after Ctrl-C reached ffmpeg): the shutdown's doing, not
 * a cause, so they are counted and shown only with --log-level debug. */
static int g_hidden_errors;

static const sf_opt opts[] = {
    {"dry-run", 'n', SF_ARG_FLAG, "print the stage command lines and exit"},
    {"timeout", 0, SF_ARG_VALUE, "S\tkill the run after S seconds (default: none)"},
    {"tcp-port", 0, SF_ARG_VALUE, "P\ttcp: link i uses port P+i (default: free ports here, 47600+i between hosts)"},
    {"curve-key-env", 0, SF_ARG_FLAG, "tcp: the run's CURVE key is $SF_WIRE_CURVE_KEY, not a fresh one (to reach servers "
                                      "started with that key)"},
    SF_OPTS_STD,
    {0},
};

typedef struct child {
    pid_t pid;
    int err_fd;          /* read end of the child's stderr */
    int in_fd;           /* ssh stages: the write end of the remote stage's stdin, open while it runs (-1: none) */
    char buf[4096];      /* partial line */
    size_t blen;
    char last[512];      /* last complete stderr line */
    int after_cr;        /* the last segment ended with '\r' */
    char progress[160];  /* last progress update ('\r'-terminated) */
    int done, status;
} child;

/* A stage whose last message only passes on an upstream stage's failure (sf_wire_is_relayed: the wire's
 * error frame, or its stream cut short) can exit before the stage that caused it is reaped, so sf-run
 * waits this long for the cause before it blames anyone. */
#define RELAY_WAIT_S 2.0

/* A remote stage's stdin at its end: its shell stops it (sf_run_remote_stdin). */
static void close_stdin(child *c) {
    if (c->in_fd >= 0) close(c->in_fd);
    c->in_fd = -1;
}

/* SIGTERM to every stage still running (EOF to the remote ones, whose ssh does not carry the
 * signal); the SIGKILL deadline (3 s on). */
static double stop_stages(child *kids, int n) {
    for (int k = 0; k < n; k++) {
        close_stdin(&kids[k]);
        if (!kids[k].done) kill(kids[k].pid, SIGTERM);
    }
    return sf_now() + 3.0;
}

/* The pipeline's status line: every stage's last progress update, on one terminal line. */
typedef struct status_line {
    int tty;       /* sf-run's stderr is a terminal */
    int shown;     /* a status line is on screen */
} status_line;

static void status_clear(status_line *sl) {
    if (sl->shown) fputs("\r\033[K", stderr);
    sl->shown = 0;
}

static void status_draw(status_line *sl, const child *kids, const sf_run_plan *plan, int n) {
    if (!sl->tty) return;
    char line[512];
    size_t o = 0;
    for (int i = 0; i < n && o + 8 < sizeof line; i++) {
        if (!kids[i].progress[0]) continue;
        const char *st = kids[i].progress;
        const char *colon = strstr(st, ": "); /* drop the program's own "sf-x: " prefix */
        if (colon && colon - st < 16) st = colon + 2;
        o += (size_t)snprintf(line + o, sizeof line - o, "%s[%s] %s", o ? " | " : "", plan->stages[i].name, st);
    }
    if (!o) return;
    if (o > 200) o = 200; /* stay on one line of a wide terminal */
    fprintf(stderr, "\r\033[K%.*s", (int)o, line);
    fflush(stderr);
    sl->shown = 1;
}

static void relay(child *c, const char *name, int flush, status_line *sl) {
    char *start = c->buf, *end = c->buf + c->blen;
    for (;;) {
        char *nl = NULL;
        for (char *p = start; p < end; p++)
            if (*p == '\n' || *p == '\r') { nl = p; break; }
        if (!nl) break;
        int progress = *nl == '\r';
        *nl = 0;
        /* trim the padding stages put after a progress update */
        char *e = nl;
        while (e > start && e[-1] == ' ') *--e = 0;
        if (!progress && c->after_cr) c->progress[0] = 0; /* the final update ends with '\n' */
        c->after_cr = progress;
        if (e > start) {
            if (progress) {
                snprintf(c->progress, sizeof c->progress, "%.150s", start);
            } else if (g_stop && strstr(start, "error") && sf_log_level() < SF_LOG_DEBUG) {
                g_hidden_errors++;
            } else {
                status_clear(sl);
                fprintf(stderr, "[%s] %s\n", name, start);
                snprintf(c->last, sizeof c->last, "%.500s", start);
            }
        }
        start = nl + 1;
    }
    size_t rest = (size_t)(end - start);
    if (flush && rest) {
        status_clear(sl);
        fprintf(stderr, "[%s] %.*s\n", name, (int)rest, start);
        snprintf(c->last, sizeof c->last, "%.*s", (int)rest, start);
        rest = 0;
    }
    if (rest == sizeof c->buf) { /* an over-long line: print it as it is */
        status_clear(sl);
        fprintf(stderr, "[%s] %.*s\n", name, (int)rest, start);
        rest = 0;
    }
    memmove(c->buf, start, rest);
    c->blen = rest;
}

int main(int argc, char **argv) {
    const char *prog = "sf-run";
    sf_args a;
    sf_err err = {{0}};
    sf_status s = SF_OK;
    if (sf_args_main(argc, argv, prog, "PIPELINE.yaml [var=value | stage.arg=value ...] [options]", opts, &a)) return 0;
    /* --log-level reaches the stages too (through SF_LOG_LEVEL, which every sf-* program reads; remote
       stages get it on their command line, runspec.c remote_env: ssh does not carry the environment) */
    if (sf_args_get(&a, opts, "log-level")) setenv("SF_LOG_LEVEL", sf_args_get(&a, opts, "log-level"), 1);
    const char **pos = NULL;
    int np = sf_args_positional(&a, &pos);
    if (np < 1) sf_die(prog, SF_E_ARG, &(sf_err){"usage: sf-run PIPELINE.yaml [key=value ...] (see --help)"});
    long timeout = 0, port0 = 0; /* 0: sf_run_plan_load picks */
    if (sf_args_get(&a, opts, "timeout") &&
        (s = sf_arg_long("timeout", sf_args_get(&a, opts, "timeout"), 1, 1L << 30, &timeout, &err)))
        sf_die(prog, s, &err);
    if (sf_args_get(&a, opts, "tcp-port") &&
        (s = sf_arg_long("tcp-port", sf_args_get(&a, opts, "tcp-port"), 1024, 65000, &port0, &err)))
        sf_die(prog, s, &err);
    char run_id[32];
    snprintf(run_id, sizeof run_id, "%ld", (long)getpid());
    /* the run's private folder (ipc and shm control sockets): removed however the run ends */
    char run_dir[4096];
    if ((s = sf_run_dir_setup(run_id, !sf_args_has(&a, opts, "dry-run"), run_dir, sizeof run_dir, &err))) sf_die(prog, s, &err);
    sf_run_plan plan;
    /* a spec such as pipelines/t2v.yaml is also found from any directory (installed or built) */
    char spec_buf[4096];
    const char *spec = pos[0];
    if (spec[0] != '/' && access(spec, F_OK) != 0 && sf_find_data(spec, spec_buf, sizeof spec_buf)) spec = spec_buf;
    s = sf_run_plan_load(spec, pos + 1, np - 1, run_id, (int)port0, &plan, &err);
    if (s) sf_die(prog, s, &err);
    /* tcp: the run's CURVE key, handed to each stage (keys.c); a dry run refuses what the run would */
    sf_run_keys keys;
    if ((s = sf_run_keys_new(&plan, sf_args_has(&a, opts, "curve-key-env"), &keys, &err))) sf_die(prog, s, &err);
    char line[8192];
    if (sf_args_has(&a, opts, "dry-run")) {
        sf_run_keys_wipe(&keys);
        for (int i = 0; i < plan.n; i++) printf("%s\n", sf_run_stage_cmdline(&plan.stages[i], line, sizeof line));
        sf_run_plan_free(&plan);
        free(pos);
        sf_args_free(&a);
        return 0;
    }

    /* the outputs a spec names (videos/t2v.mp4, cache/...): create their folders now, and fail
     * here rather than after the stages ran when one cannot be made */
    for (int i = 0; i < plan.n; i++) {
        const sf_run_stage *st = &plan.stages[i];
        for (int k = 1; !st->host[0] && k + 1 < st->argc; k++) {
            char f[64];
            snprintf(f, sizeof f, "%s", st->argv[k]);
            for (char *c = f; *c; c++) if (*c == '_') *c = '-';
            if (!strcmp(f, "-o") || !strcmp(f, "--output") || !strcmp(f, "--output-path") || !strcmp(f, "--save-latents") ||
                !strcmp(f, "--save-video"))
                if ((s = sf_check_out_dir(st->argv[k], st->argv[k + 1], 1, &err))) sf_die(prog, s, &err);
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    child kids[SF_RUN_MAX_STAGES];
    memset(kids, 0, sizeof kids);
    for (int i = 0; i < SF_RUN_MAX_STAGES; i++) kids[i].in_fd = -1;
    int prev_out = -1; /* pipe transport: read end feeding the next stage's stdin */
    pid_t parent = getpid();
    status_line sl = {isatty(2), 0};
    double t0 = sf_now();
    int started = 0;
    for (int i = 0; i < plan.n; i++) {
        sf_run_stage *st = &plan.stages[i];
        sf_info("stage %s: %s", st->name, sf_run_stage_cmdline(st, line, sizeof line));
        /* sf-* programs next to this sf-run first (build/bin or <prefix>/bin), then PATH */
        char exe_buf[4096];
        const char *exe = st->host[0] ? NULL : sf_find_program(st->argv[0], exe_buf, sizeof exe_buf);
        int ep[2], dp[2] = {-1, -1};
        if (pipe(ep) != 0) sf_die(prog, SF_E_IO, &(sf_err){"pipe() failed"});
        if (plan.transport == SF_RUN_PIPE && i + 1 < plan.n && pipe(dp) != 0) sf_die(prog, SF_E_IO, &(sf_err){"pipe() failed"});
        int rin[2] = {-1, -1}; /* ssh: the remote stage's stdin (the key, then open until it should stop) */
        if (st->host[0] && plan.launcher == SF_RUN_SSH && sf_run_remote_stdin(&keys, rin) != 0)
            sf_die(prog, SF_E_IO, &(sf_err){"cannot make the stdin pipe of a remote stage"});
        pid_t pid = fork();
        if (pid < 0) {
            sf_error("cannot start stage %s: %s", st->name, strerror(errno));
            if (rin[0] >= 0) close(rin[0]), close(rin[1]);
            break;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) _exit(1);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            signal(SIGHUP, SIG_DFL);
            signal(SIGPIPE, SIG_DFL);
            if (sl.tty) setenv("SF_PROGRESS", "1", 1);
            dup2(ep[1], 2);
            close(ep[0]);
            close(ep[1]);
            if (prev_out >= 0) {
                dup2(prev_out, 0);
                close(prev_out);
            }
            if (rin[0] >= 0) dup2(rin[0], 0); /* the close-on-exec ends go at exec */
            if (dp[1] >= 0) {
                dup2(dp[1], 1);
                close(dp[0]);
                close(dp[1]);
            }
            for (int k = 0; k < i; k++) if (kids[k].err_fd >= 0) close(kids[k].err_fd);
            if (sf_run_keys_child(&keys, st) != 0) {
                fprintf(stderr, "sf-run: error: cannot hand the run's key to %s: %s\n", st->argv[0], strerror(errno));
                _exit(127);
            }
            if (exe) execv(exe, st->argv);
            else execvp(st->argv[0], st->argv);
            fprintf(stderr, "sf-run: error: cannot run %s: %s\n", st->argv[0], strerror(errno));
            _exit(127);
        }
        close(ep[1]);
        if (rin[0] >= 0) close(rin[0]);
        kids[i].in_fd = rin[1];
        if (prev_out >= 0) close(prev_out);
        prev_out = -1;
        if (dp[1] >= 0) {
            close(dp[1]);
            prev_out = dp[0];
        }
        kids[i].pid = pid;
        kids[i].err_fd = ep[0];
        /* non-blocking: a grandchild that inherited the pipe must not stall the drain */
        fcntl(ep[0], F_SETFL, fcntl(ep[0], F_GETFL) | O_NONBLOCK);
        started++;
    }
    if (prev_out >= 0) close(prev_out);
    sf_run_keys_wipe(&keys);

    int failed = -1, remaining = started;
    double kill_at = 0, relay_until = 0;
    while (remaining > 0) {
        struct pollfd pf[SF_RUN_MAX_STAGES];
        int map[SF_RUN_MAX_STAGES], nf = 0;
        for (int i = 0; i < started; i++)
            if (kids[i].err_fd >= 0) {
                pf[nf].fd = kids[i].err_fd;
                pf[nf].events = POLLIN;
                map[nf++] = i;
            }
        poll(pf, (nfds_t)nf, 100);
        for (int k = 0; k < nf; k++) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            child *c = &kids[map[k]];
            ssize_t r = read(c->err_fd, c->buf + c->blen, sizeof c->buf - c->blen);
            if (r > 0) {
                c->blen += (size_t)r;
                relay(c, plan.stages[map[k]].name, 0, &sl);
                status_draw(&sl, kids, &plan, started);
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                relay(c, plan.stages[map[k]].name, 1, &sl);
                close(c->err_fd);
                c->err_fd = -1;
            }
        }
        for (int i = 0; i < started; i++) {
            if (kids[i].done) continue;
            int st;
            pid_t w = waitpid(kids[i].pid, &st, WNOHANG);
            if (w != kids[i].pid) continue;
            /* drain what is left of its stderr */
            if (kids[i].err_fd >= 0) {
                ssize_t r;
                while ((r = read(kids[i].err_fd, kids[i].buf + kids[i].blen, sizeof kids[i].buf - kids[i].blen)) > 0) {
                    kids[i].blen += (size_t)r;
                    relay(&kids[i], plan.stages[i].name, 0, &sl);
                }
                relay(&kids[i], plan.stages[i].name, 1, &sl);
                close(kids[i].err_fd);
                kids[i].err_fd = -1;
            }
            kids[i].done = 1;
            kids[i].status = st;
            close_stdin(&kids[i]);
            kids[i].progress[0] = 0; /* a finished stage leaves the status line */
            remaining--;
            int bad = !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
            /* once sf-run is stopping on a signal, a stage's exit is the shutdown's doing (the
             * terminal's Ctrl-C reaches every stage, and ffmpeg, too), not a failure to report */
            if (bad && !kill_at && !g_stop) {
                int relay = sf_wire_is_relayed(kids[i].last);
                /* the first failure, or the cause after a stage that only relayed it */
                if (failed < 0 || (!relay && sf_wire_is_relayed(kids[failed].last))) failed = i;
                if (!relay) kill_at = stop_stages(kids, started);
                else if (!relay_until) relay_until = sf_now() + RELAY_WAIT_S;
            }
        }
        if (relay_until && !kill_at && !g_stop && sf_now() > relay_until) /* no cause came: stop the rest */
            kill_at = stop_stages(kids, started);
        if (g_stop && !kill_at) {
            sf_warn("interrupted: stopping all stages");
            kill_at = stop_stages(kids, started);
        }
        if (timeout && !kill_at && sf_now() - t0 > (double)timeout) {
            sf_warn("--timeout %ld s reached: stopping all stages", timeout); /* the error is the last line */
            g_stop = SIGALRM;
            kill_at = stop_stages(kids, started);
        }
        if (kill_at && sf_now() > kill_at)
            for (int k = 0; k < started; k++)
                if (!kids[k].done) kill(kids[k].pid, SIGKILL);
    }
    status_clear(&sl);
    int rc = 0;
    if (failed >= 0) {
        int st = kids[failed].status;
        char why[64];
        if (WIFSIGNALED(st)) snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(st));
        else snprintf(why, sizeof why, "exit %d", WEXITSTATUS(st));
        fprintf(stderr, "%s: error: stage '%s' failed (%s): %s\n", prog, plan.stages[failed].name, why,
                kids[failed].last[0] ? kids[failed].last : "no message");
        rc = 1;
    } else if (g_stop) {
        char hidden[128] = "";
        if (g_hidden_errors)
            snprintf(hidden, sizeof hidden, " (%d error line%s of stages shutting down not shown: --log-level debug)",
                     g_hidden_errors, g_hidden_errors == 1 ? "" : "s");
        if (g_stop == SIGALRM) fprintf(stderr, "%s: error: stopped after the timeout (--timeout %ld s)%s\n", prog, timeout, hidden);
        else fprintf(stderr, "%s: error: interrupted by %s: all stages stopped%s\n", prog,
                     g_stop == SIGINT ? "SIGINT" : g_stop == SIGTERM ? "SIGTERM" : g_stop == SIGHUP ? "SIGHUP" : "a signal",
                     hidden);
        rc = g_stop == SIGALRM ? 1 : 128 + g_stop; /* 130 SIGINT, 143 SIGTERM, 129 SIGHUP, as a shell reports */
    } else if (started < plan.n) {
        rc = 1;
    } else {
        sf_info("pipeline '%s' finished in %.1f s", plan.name, sf_now() - t0);
    }
    /* the ipc sockets between stages: a stage that was killed cannot remove its own */
    for (int i = 0; i < plan.n; i++)
        if (!strncmp(plan.stages[i].out_url, "ipc:///", 7)) unlink(plan.stages[i].out_url + 6);
    sf_run_dir_remove(); /* and everything else in the run folder, the shm segments */
    sf_run_plan_free(&plan);
    free(pos);
    sf_args_free(&a);
    return rc;
}
