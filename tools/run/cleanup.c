/* cleanup.c — sf-run's private run folder and the sweep of dead runs' leftovers (cleanup.h).
 *
 * The reference has no multi-process runner. Tested by tests/bats/faults.bats (a stage SIGKILLed
 * per transport, SIGINT/SIGTERM/SIGHUP to sf-run, sf-run itself SIGKILLed then swept). */
#define _GNU_SOURCE
#include "cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHM_DIR "/dev/shm"

static char g_dir[4096];   /* the run folder once made; "" after removal */
static char g_run_id[32];

/* "<prefix><pid><rest>": the pid, when rest starts with one of the separators; else -1 */
static long name_pid(const char *name, const char *prefix, const char *seps) {
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl)) return -1;
    char *end;
    long pid = strtol(name + pl, &end, 10);
    if (end == name + pl || pid <= 0 || !*end || !strchr(seps, *end)) return -1;
    return pid;
}

static int owned(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && st.st_uid == geteuid();
}

int sf_run_sweep_stale(const char *base) {
    int n = 0;
    char f[8192];
    DIR *d = opendir(base);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid = name_pid(e->d_name, "sf-run-", ".-");
        if (pid < 0) pid = name_pid(e->d_name, "sf-shm-sf-run-", "-");
        if (pid < 0 || !sf_pid_gone(pid)) continue;
        snprintf(f, sizeof f, "%s/%s", base, e->d_name);
        if (!owned(f)) continue;
        size_t l = strlen(e->d_name);
        if (l > 2 && !strcmp(e->d_name + l - 2, ".d")) sf_rm_flat(f);
        else if ((l > 5 && !strcmp(e->d_name + l - 5, ".sock")) || (l > 4 && !strcmp(e->d_name + l - 4, ".ctl"))) unlink(f);
        else continue;
        n++;
    }
    if (d) closedir(d);
    if ((d = opendir(SHM_DIR))) {
        while ((e = readdir(d))) {
            long pid = name_pid(e->d_name, "sf-sf-run-", "-");
            if (pid < 0 || !sf_pid_gone(pid)) continue;
            snprintf(f, sizeof f, "%s/%s", SHM_DIR, e->d_name);
            if (owned(f) && unlink(f) == 0) n++;
        }
        closedir(d);
    }
    if (n) sf_info("removed %d leftover%s of sf-runs that were killed", n, n == 1 ? "" : "s");
    return n;
}

void sf_run_dir_remove(void) {
    if (g_dir[0]) sf_rm_flat(g_dir);
    g_dir[0] = 0;
    if (!g_run_id[0]) return;
    char prefix[64], f[8192];
    snprintf(prefix, sizeof prefix, "sf-sf-run-%s-", g_run_id);
    DIR *d = opendir(SHM_DIR);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) {
            snprintf(f, sizeof f, "%s/%s", SHM_DIR, e->d_name);
            unlink(f);
        }
    if (d) closedir(d);
}

sf_status sf_run_dir_setup(const char *run_id, int create, char *dir, size_t n, sf_err *err) {
    const char *td = getenv("TMPDIR");
    /* 60 + "/sf-run-<pid>.d" + "/sf-run-<pid>-<n>.sock" stays inside a socket path (107) */
    if (!td || td[0] != '/' || strlen(td) > 60) td = "/tmp";
    size_t tl = strlen(td);
    while (tl > 1 && td[tl - 1] == '/') tl--;
    int k = snprintf(dir, n, "%.*s/sf-run-%s.d", (int)tl, td, run_id);
    if (k < 0 || (size_t)k >= n) return sf_fail(err, SF_E_ARG, "run folder name too long");
    if (create) {
        char base[4096];
        snprintf(base, sizeof base, "%.*s", (int)tl, td);
        sf_run_sweep_stale(base);
        sf_rm_flat(dir); /* a dead run with our PID (PID reuse) */
        if (mkdir(dir, 0700) != 0) return sf_fail(err, SF_E_IO, "cannot create the run folder %s: %s", dir, strerror(errno));
        snprintf(g_dir, sizeof g_dir, "%s", dir);
        snprintf(g_run_id, sizeof g_run_id, "%s", run_id);
        static int registered;
        if (!registered) registered = atexit(sf_run_dir_remove) == 0;
    }
    if (setenv("TMPDIR", dir, 1) != 0) return sf_fail(err, SF_E_IO, "setenv TMPDIR: %s", strerror(errno));
    return SF_OK;
}
