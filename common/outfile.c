/* outfile.c — atomic file output for every writer (safetensors, torch .pt, wire files, videos,
 * the embedding cache, SVG/CSV tables): nothing is visible under the final name before it is
 * complete, nothing stays after a crash (sf.h).
 *
 * Linux: an O_TMPFILE in the output's folder, linked into place at commit through
 * /proc/self/fd (a killed writer leaves nothing: the inode had no name). Elsewhere (a
 * filesystem without O_TMPFILE: some network and FUSE mounts) a named "<path>.tmp.<pid>.<n>",
 * registered with stop.c so exit() and the stop watchdog remove it, and swept by the next open of
 * the same output once its PID is gone (what a SIGKILL leaves). Tested by tests/unit/test_core.c
 * (atomic_*) and tests/bats/faults.bats (killed writers, a full disk). */
#define _GNU_SOURCE
#include "sf.h"
#include "stop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

sf_status sf_tmp_name(const char *path, const char *suffix, char *buf, size_t n, sf_err *err) {
    static unsigned counter;
    int k = snprintf(buf, n, "%s.tmp.%ld.%u%s", path, (long)getpid(), counter++, suffix ? suffix : "");
    if (k < 0 || (size_t)k >= n) return sf_fail(err, SF_E_ARG, "path too long: %s", path);
    return SF_OK;
}

void sf_rm_flat(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char f[8192];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            int k = snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
            if (k <= 0 || (size_t)k >= sizeof f) continue; /* a longer name is not one of ours */
            if (unlink(f) != 0 && errno == EISDIR) rmdir(f);
        }
    if (d) closedir(d);
    rmdir(dir);
}

int sf_pid_gone(long pid) { return pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH; }

int sf_tmp_sweep(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    sf_path_dir(path, dir, sizeof dir);
    size_t bl = strlen(base);
    if (!bl) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int swept = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, bl) || strncmp(nm + bl, ".tmp.", 5)) continue;
        const char *p = nm + bl + 5;
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p || pid <= 0 || (*end && *end != '.')) continue;
        if (!sf_pid_gone(pid)) continue; /* ours, running, or not ours to know */
        char f[8192];
        snprintf(f, sizeof f, "%s/%s", dir, nm);
        struct stat st;
        if (lstat(f, &st) != 0 || st.st_uid != geteuid()) continue;
        if (S_ISDIR(st.st_mode)) sf_rm_flat(f);
        else unlink(f);
        swept++;
    }
    closedir(d);
    if (swept) sf_debug("removed %d stale temporary file%s of %s", swept, swept == 1 ? "" : "s", path);
    return swept;
}

/* An anonymous file in the folder of path (O_TMPFILE); -1 where the filesystem has none. */
static int open_anon(const char *path) {
#ifdef O_TMPFILE
    static int proc_ok = -1;
    if (proc_ok < 0) proc_ok = access("/proc/self/fd", X_OK) == 0; /* linkat goes through it */
    if (!proc_ok) return -1;
    char dir[4096];
    sf_path_dir(path, dir, sizeof dir);
    return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
#else
    (void)path;
    return -1;
#endif
}

sf_status sf_atomic_open(sf_atomic_file *af, const char *path, sf_err *err) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path) return sf_fail(err, SF_E_ARG, "path too long: %s", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* a device or FIFO (/dev/stdout, a named pipe): write in place, never rename over it */
        if (S_ISDIR(st.st_mode)) return sf_fail(err, SF_E_IO, "cannot write %s: is a directory", path);
        FILE *dp = fopen(path, "wb");
        if (!dp) return sf_fail(err, SF_E_IO, "cannot write %s: %s", path, strerror(errno));
        af->fp = dp;
        return SF_OK;
    }
    sf_tmp_sweep(path); /* what a killed writer of the same output left (named fallback) */
    int fd = open_anon(path);
    if (fd >= 0) {
        af->anon = 1;
    } else {
        sf_status s = sf_tmp_name(path, NULL, af->tmp, sizeof af->tmp, err);
        if (s) return s;
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            af->tmp[0] = 0;
            return sf_fail(err, SF_E_IO, "cannot write %s: %s", path, strerror(errno));
        }
        sf_stop_unlink_at_exit(af->tmp);
    }
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        int e = errno;
        close(fd);
        sf_atomic_abort(af);
        return sf_fail(err, SF_E_IO, "cannot write %s: %s", path, strerror(e));
    }
    af->fp = fp;
    return SF_OK;
}

/* Give the anonymous file fd its name: linkat, or (PATH exists) link beside it and rename. */
static int link_anon(int fd, const char *path, char *tmp, size_t tn) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0) return 0;
    if (errno != EEXIST || sf_tmp_name(path, NULL, tmp, tn, NULL)) return -1;
    if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0) return -1;
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

sf_status sf_atomic_commit(sf_atomic_file *af, sf_err *err) {
    FILE *fp = af->fp;
    if (!fp) return sf_fail(err, SF_E_IO, "%s: not open", af->path);
    af->fp = NULL;
    int in_place = !af->anon && !af->tmp[0];
    int bad = ferror(fp) || fflush(fp) != 0;
    if (!bad && !in_place && fsync(fileno(fp)) != 0 && errno != EINVAL) bad = 1;
    int e = errno;
    if (!bad && af->anon) {
        char t[sizeof af->tmp];
        if (link_anon(fileno(fp), af->path, t, sizeof t) != 0) {
            e = errno;
            fclose(fp);
            return sf_fail(err, SF_E_IO, "cannot create %s: %s", af->path, strerror(e));
        }
    }
    if (fclose(fp) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        sf_atomic_abort(af);
        return sf_fail(err, SF_E_IO, "cannot write %s: %s", af->path, strerror(e));
    }
    if (af->tmp[0]) {
        if (rename(af->tmp, af->path) != 0) {
            e = errno;
            sf_atomic_abort(af);
            return sf_fail(err, SF_E_IO, "cannot rename to %s: %s", af->path, strerror(e));
        }
        sf_stop_forget(af->tmp);
        af->tmp[0] = 0;
    }
    af->anon = 0;
    return SF_OK;
}

void sf_atomic_abort(sf_atomic_file *af) {
    if (af->fp) {
        fclose((FILE *)af->fp);
        af->fp = NULL;
    }
    if (af->tmp[0]) {
        unlink(af->tmp);
        sf_stop_forget(af->tmp);
    }
    af->tmp[0] = 0;
    af->anon = 0;
}
