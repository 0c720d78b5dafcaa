/* stop.c — the stop flag, its self-pipe and watchdog, and the names removed at exit (stop.h).
 *
 * Mirrors no reference module (the reference dies on KeyboardInterrupt wherever it is). Tested by
 * tests/unit/test_stop.c (flag, exit codes, the at-exit table, the watchdog) and
 * tests/bats/faults.bats (every stage stopped mid-work, within 1 s, exit 130/143, no leftovers). */
#define _GNU_SOURCE
#include "stop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The stop flag (and what it needs to be useful from a signal handler): sig_atomic_t only,
 * written by the handlers or once at install. */
static volatile sig_atomic_t g_stop, g_signal, g_pipe_rd = -1, g_pipe_wr = -1, g_installed, g_timer_ok;
static timer_t g_timer;
static void *g_altstack; /* the handlers' stack (sf_stop_install) */

/* Names to unlink at exit: a slot is published by setting used after the name is written. */
#define SF_STOP_NAMES 32
static char g_names[SF_STOP_NAMES][4096];
static volatile sig_atomic_t g_used[SF_STOP_NAMES], g_owner[SF_STOP_NAMES]; /* owner: a forked child
                                                                             never removes its parent's */

static const char *sig_name(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "signal";
}

static void unlink_all(void) {
    for (int i = 0; i < SF_STOP_NAMES; i++)
        if (g_used[i] && g_owner[i] == (sig_atomic_t)getpid()) {
            unlink(g_names[i]);
            g_used[i] = 0;
        }
}

/* The watchdog: still running SF_STOP_GRACE_MS after the signal. Async-signal-safe only. */
static void force_exit(int unused) {
    (void)unused;
    int sig = g_signal ? g_signal : SIGTERM;
    char msg[256];
    const char *p = program_invocation_short_name ? program_invocation_short_name : "sfpipe";
    const char *parts[] = {p, ": error: interrupted by ", sig_name(sig), " (stopped hard: still busy after the grace time)\n"};
    size_t n = 0;
    for (int i = 0; i < 4; i++)
        for (const char *c = parts[i]; *c && n + 1 < sizeof msg; c++) msg[n++] = *c;
    ssize_t r = write(2, msg, n);
    (void)r;
    unlink_all();
    _exit(128 + sig);
}

/* When the first signal came (CLOCK_MONOTONIC, ms; clock_gettime is async-signal-safe). A second signal
 * within SF_STOP_SAME_MS of it is the same stop request arriving twice, not an impatient second one: a
 * terminal's Ctrl-C reaches every process of the foreground group, and sf-run then forwards SIGTERM to
 * each stage as well — taken as "stop now", every stage of an interrupted sf-run exited hard, skipping
 * its clean-up (a decoder's temp frame folder, a server's socket). The watchdog still bounds the stop. */
static volatile sig_atomic_t g_first_ms_lo, g_first_ms_hi;

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_stop_signal(int sig) {
    int e = errno;
    if (sig > 0 && g_signal) { /* a second signal: do not wait — unless it is the first one again */
        const long long first = (long long)g_first_ms_hi << 30 | (long long)g_first_ms_lo;
        if (now_ms() - first >= SF_STOP_SAME_MS) force_exit(0);
        errno = e;
        return;
    }
    if (sig > 0) {
        const long long t = now_ms();
        g_first_ms_lo = (sig_atomic_t)(t & ((1 << 30) - 1)), g_first_ms_hi = (sig_atomic_t)(t >> 30);
        g_signal = sig;
        if (g_timer_ok) {
            struct itimerspec it = {{0, 0}, {SF_STOP_GRACE_MS / 1000, (long)(SF_STOP_GRACE_MS % 1000) * 1000000L}};
            timer_settime(g_timer, 0, &it, NULL); /* async-signal-safe (POSIX) */
        }
    }
    g_stop = 1;
    if (g_pipe_wr >= 0) {
        ssize_t r = write(g_pipe_wr, "x", 1);
        (void)r;
    }
    errno = e;
}

sf_status sf_stop_install(sf_err *err) {
    if (g_pipe_rd < 0) {
        int p[2];
        if (pipe(p) != 0) return sf_fail(err, SF_E_IO, "self-pipe: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
            fcntl(p[i], F_SETFD, FD_CLOEXEC);
        }
        g_pipe_rd = p[0];
        g_pipe_wr = p[1];
        if (g_stop) on_stop_signal(0);
    }
    if (!g_installed) {
        struct sigevent sev;
        memset(&sev, 0, sizeof sev);
        sev.sigev_notify = SIGEV_SIGNAL;
        sev.sigev_signo = SIGALRM;
        g_timer_ok = timer_create(CLOCK_MONOTONIC, &sev, &g_timer) == 0;
        g_installed = 1;
    }
    /* The handlers run on an alternate stack (SA_ONSTACK): some of oneDNN's JIT kernels borrow rsp as a
     * general register pointing into their heap buffers, and a signal taken on "the stack" there wrote
     * its frame (~12 KiB with AVX-512 and AMX state) into the heap: a Ctrl-C mid-GEMM corrupted malloc's
     * chunks (1 run in 12, tests/bats/live.bats). Once per thread that installs; it lives to the exit. */
    if (!g_altstack) {
        size_t n = (size_t)256 << 10;
        stack_t ss;
        memset(&ss, 0, sizeof ss);
        if ((ss.ss_sp = malloc(n))) {
            ss.ss_size = n;
            if (sigaltstack(&ss, NULL) == 0) g_altstack = ss.ss_sp;
            else free(ss.ss_sp);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_ONSTACK;
    sa.sa_handler = force_exit;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: blocking syscalls return EINTR */
    sigaddset(&sa.sa_mask, SIGALRM);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGHUP, &sa, NULL) != 0)
        return sf_fail(err, SF_E_IO, "sigaction: %s", strerror(errno));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    return SF_OK;
}

int sf_stopped(void) { return g_stop != 0; }
int sf_stop_signal(void) { return g_signal; }
void sf_stop_request(void) { on_stop_signal(0); }
int sf_stop_fd(void) { return g_pipe_rd; }

sf_status sf_stop_err(sf_err *err) {
    if (!g_signal) return sf_fail(err, SF_E_STOPPED, "interrupted by signal");
    return sf_fail(err, SF_E_STOPPED, "interrupted by %s", sig_name(g_signal));
}

sf_status sf_stop_check(sf_err *err) { return g_stop ? sf_stop_err(err) : SF_OK; }

static void at_exit_unlink(void) { unlink_all(); }

int sf_stop_unlink_at_exit(const char *path) {
    static int registered;
    if (!path || !*path || strlen(path) >= sizeof g_names[0]) return -1;
    if (!registered) registered = atexit(at_exit_unlink) == 0;
    for (int i = 0; i < SF_STOP_NAMES; i++)
        if (!g_used[i]) {
            snprintf(g_names[i], sizeof g_names[i], "%s", path);
            g_owner[i] = (sig_atomic_t)getpid();
            g_used[i] = 1;
            return 0;
        }
    return -1;
}

void sf_stop_forget(const char *path) {
    if (!path || !*path) return;
    for (int i = 0; i < SF_STOP_NAMES; i++)
        if (g_used[i] && !strcmp(g_names[i], path)) g_used[i] = 0;
}
