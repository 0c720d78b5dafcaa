/* core.c — status strings, errors, logging, checked arithmetic, mmap (atomic output: outfile.c).
 * Tested by tests/unit/test_core.c. */
#define _POSIX_C_SOURCE 200809L
#include "sf.h"
#include "stop.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *sf_status_str(sf_status s) {
    switch (s) {
    case SF_OK: return "ok";
    case SF_E_IO: return "i/o error";
    case SF_E_FORMAT: return "malformed input";
    case SF_E_NOMEM: return "out of memory";
    case SF_E_ARG: return "bad argument";
    case SF_E_UNSUPPORTED: return "unsupported";
    case SF_E_NOTFOUND: return "not found";
    case SF_E_SHAPE: return "wrong shape";
    case SF_E_DEVICE: return "device error";
    case SF_E_STOPPED: return "stopped";
    }
    return "unknown status";
}

void sf_escape_ctl(char *dst, size_t n, const char *src) {
    static const char hex[] = "0123456789abcdef";
    size_t k = 0, len = strlen(src);
    if (!n) return;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        int l = sf_utf8_decode(src + i, len - i, &cp);
        if (l == 1 && (cp == '\n' || cp == '\r' || cp == '\t')) { /* keep it one line */
            if (k + 1 >= n) break;
            dst[k++] = ' ', i++;
        } else if (l > 0 && !sf_unicode_is_ctl(cp)) { /* whole characters only: never a cut sequence */
            if (k + (size_t)l >= n) break;
            memcpy(dst + k, src + i, (size_t)l), k += (size_t)l, i += (size_t)l;
        } else { /* a control character, or a byte that is not UTF-8: each byte as \xHH */
            size_t m = l > 0 ? (size_t)l : 1;
            if (k + 4 * m >= n) break;
            for (size_t j = 0; j < m; j++) {
                unsigned char c = (unsigned char)src[i + j];
                dst[k++] = '\\', dst[k++] = 'x', dst[k++] = hex[c >> 4], dst[k++] = hex[c & 15];
            }
            i += m;
        }
    }
    dst[k] = 0;
}

sf_status sf_fail(sf_err *err, sf_status s, const char *fmt, ...) {
    if (err) {
        /* format into a copy first: callers may pass err->msg itself as an argument ("%s: %s",
         * path, err->msg), which vsnprintf into the same buffer would overwrite mid-way */
        char tmp[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        sf_escape_ctl(err->msg, sizeof err->msg, tmp);
    }
    return s;
}

int sf_exit_code(sf_status s) {
    if (s == SF_OK) return 0;
    /* any failure after a stop signal is the stop's doing: 128 + signal, as a shell reports it */
    if (sf_stop_signal()) return 128 + sf_stop_signal();
    if (s == SF_E_ARG) return 2;
    return 1;
}

/* The log level and prefix are set once by main() before any work starts. */
static int g_log_level = -1;
static char g_log_prefix[64] = "sfpipe";

int sf_log_parse_level(const char *s) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (!s || !*s) return -1;
    if (s[0] >= '0' && s[0] <= '3' && s[1] == 0) return s[0] - '0';
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0) return i;
    if (strcasecmp(s, "warning") == 0) return 1;
    return -1;
}

int sf_log_level(void) {
    if (g_log_level < 0) {
        int l = sf_log_parse_level(getenv("SF_LOG_LEVEL"));
        g_log_level = l < 0 ? SF_LOG_INFO : l;
    }
    return g_log_level;
}

void sf_log_set_level(int level) { g_log_level = level; }

void sf_log_set_prefix(const char *prefix) {
    snprintf(g_log_prefix, sizeof g_log_prefix, "%s", prefix);
}

void sf_log(int level, const char *fmt, ...) {
    static const char *tags[] = {"error", "warning", "info", "debug"};
    if (level > sf_log_level()) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char safe[sizeof line];
    sf_escape_ctl(safe, sizeof safe, line);
    fprintf(stderr, "%s: %s: %s\n", g_log_prefix, tags[level < 0 ? 0 : level > 3 ? 3 : level], safe);
}

void sf_die(const char *prog, sf_status s, const sf_err *err) {
    char safe[sizeof err->msg];
    sf_escape_ctl(safe, sizeof safe, err && err->msg[0] ? err->msg : sf_status_str(s));
    sf_err why;
    if (sf_stop_signal() && s != SF_E_STOPPED) { /* e.g. a read cut short by the signal: name the signal */
        sf_stop_err(&why);
        fprintf(stderr, "%s: error: %s (%s)\n", prog, why.msg, safe);
    } else {
        fprintf(stderr, "%s: error: %s\n", prog, safe);
    }
    exit(sf_exit_code(s) ? sf_exit_code(s) : 1);
}

int sf_mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int sf_add_ok(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

void *sf_malloc64(size_t n, size_t size) {
    size_t t;
    if (!sf_mul_ok(n, size, &t) || t > SIZE_MAX - 63) return NULL;
    return aligned_alloc(64, t ? (t + 63) & ~(size_t)63 : 64);
}

void *sf_calloc2(size_t n, size_t size) {
    size_t t;
    if (!sf_mul_ok(n, size, &t)) return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

int sf_progress_enabled(const char *mode) {
    if (mode && strcmp(mode, "auto") != 0) return 0;
    const char *env = getenv("SF_PROGRESS");
    return isatty(2) || (env && *env && strcmp(env, "0") != 0);
}

int sf_path_dir(const char *path, char *dir, size_t n) {
    const char *slash = strrchr(path, '/');
    int k = slash ? snprintf(dir, n, "%.*s", (int)(slash == path ? 1 : slash - path), path) : snprintf(dir, n, ".");
    return k >= 0 && (size_t)k < n;
}

sf_status sf_mkdir_p(const char *path, sf_err *err) {
    char dir[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof dir) return sf_fail(err, SF_E_ARG, "folder name '%.64s' is empty or too long", path);
    memcpy(dir, path, n + 1);
    for (char *q = dir + 1;; q++) {
        if (*q && *q != '/') continue;
        char c = *q;
        *q = 0;
        struct stat st;
        if (mkdir(dir, 0755) != 0) {
            int e = errno;
            if (e != EEXIST) return sf_fail(err, SF_E_IO, "cannot create folder %s: %s", dir, strerror(e));
            if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) /* a file in the way: name it */
                return sf_fail(err, SF_E_IO, "%s is not a folder", dir);
        }
        *q = c;
        if (!c) break;
    }
    return SF_OK;
}

sf_status sf_check_out_dir(const char *flag, const char *path, int create, sf_err *err) {
    if (!path || !*path || !strcmp(path, "-") || !strncmp(path, "fd:", 3) || strstr(path, "://")) return SF_OK;
    char name[4096], dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof name) return sf_fail(err, SF_E_ARG, "%s %s: path too long", flag, path);
    memcpy(name, path, n + 1);
    while (n > 1 && name[n - 1] == '/') name[--n] = 0; /* DIR/ → the folder DIR goes into */
    sf_path_dir(name, dir, sizeof dir);
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT) return sf_fail(err, SF_E_IO, "%s %s: folder %s: %s", flag, path, dir, strerror(errno));
        if (!create) return sf_fail(err, SF_E_IO, "%s %s: folder %s does not exist (mkdir -p %s)", flag, path, dir, dir);
        sf_err why;
        if (sf_mkdir_p(dir, &why)) return sf_fail(err, SF_E_IO, "%s %s: %s", flag, path, why.msg);
        if (stat(dir, &st) != 0) return sf_fail(err, SF_E_IO, "%s %s: cannot create folder %s", flag, path, dir);
    }
    if (!S_ISDIR(st.st_mode)) return sf_fail(err, SF_E_IO, "%s %s: %s is not a folder", flag, path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return sf_fail(err, SF_E_IO, "%s %s: folder %s is not writable (%s)", flag, path, dir, strerror(errno));
    return SF_OK;
}

int sf_fd_is_data(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return 0;
    return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISREG(st.st_mode);
}

#ifndef SF_DATADIR
#define SF_DATADIR "."
#endif

const char *sf_find_data(const char *rel, char *buf, size_t n) {
    struct stat st;
    char exe[4096];
    const char *root = getenv("SF_ROOT");
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el > 0) {
        exe[el] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
    } else {
        exe[0] = 0;
    }
    /* as given; $SF_ROOT; an installed tree (<prefix>/bin → <prefix>/share/sfpipe); the build
     * tree (build/bin → repo); the source tree this binary was built from */
    const char *bases[5] = {NULL, root && *root ? root : NULL, exe[0] ? exe : NULL, exe[0] ? exe : NULL, SF_DATADIR};
    for (int i = 0; i < 5; i++) {
        if (i == 0) snprintf(buf, n, "%s", rel);
        else if (!bases[i]) continue;
        else if (i == 2) snprintf(buf, n, "%s/../share/sfpipe/%s", bases[i], rel);
        else if (i == 3) snprintf(buf, n, "%s/../../%s", bases[i], rel);
        else snprintf(buf, n, "%s/%s", bases[i], rel);
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) return buf;
    }
    return NULL;
}

const char *sf_find_program(const char *name, char *buf, size_t n) {
    if (!name || !*name || strchr(name, '/')) return NULL;
    char exe[4096];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0) return NULL;
    exe[el] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0;
    int k = snprintf(buf, n, "%s/%s", exe, name);
    struct stat st;
    if (k < 0 || (size_t)k >= n || stat(buf, &st) != 0 || !S_ISREG(st.st_mode) || access(buf, X_OK) != 0) return NULL;
    return buf;
}

double sf_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sf_sleep(double s) {
    if (!(s > 0)) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The boot id, read once per process (it is sent with every block and every progress message) */
static char g_boot_id[64];
static pthread_once_t g_boot_once = PTHREAD_ONCE_INIT;

static void read_boot_id(void) {
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f) return;
    if (!fgets(g_boot_id, sizeof g_boot_id, f)) g_boot_id[0] = 0;
    g_boot_id[strcspn(g_boot_id, "\n")] = 0;
    fclose(f);
}

void sf_clock_id(char *out, size_t n) {
    if (!n) return;
    pthread_once(&g_boot_once, read_boot_id);
    snprintf(out, n, "%s", g_boot_id);
}

sf_status sf_open_input(const char *path, int kind, size_t max_len, int *fd, struct stat *st, sf_err *err) {
    *fd = -1;
    int f = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (f < 0) {
        int e = errno;
        sf_fail(err, SF_E_IO, "cannot open %s: %s", path, strerror(e));
        errno = e; /* callers may tell a missing file apart */
        return SF_E_IO;
    }
    const char *why = NULL;
    if (fstat(f, st) != 0) why = strerror(errno);
    else if (S_ISDIR(st->st_mode)) why = "is a directory";
    else if (!S_ISREG(st->st_mode) && (kind != SF_IN_STREAM || !(S_ISFIFO(st->st_mode) || S_ISSOCK(st->st_mode))))
        why = kind == SF_IN_STREAM ? "not a regular file or a pipe" : "not a regular file";
    if (!why && S_ISREG(st->st_mode) && max_len && (uint64_t)st->st_size > (uint64_t)max_len) {
        close(f);
        return sf_fail(err, SF_E_FORMAT, "%s: %lld bytes, larger than the %zu this format allows", path,
                       (long long)st->st_size, max_len);
    }
    if (!why) {
        int fl = fcntl(f, F_GETFL);
        if (fl < 0 || fcntl(f, F_SETFL, fl & ~O_NONBLOCK) != 0) why = strerror(errno);
    }
    if (why) {
        close(f);
        return sf_fail(err, SF_E_IO, "%s: %s", path, why);
    }
    *fd = f;
    return SF_OK;
}

sf_status sf_read_file(const char *path, char **data, size_t *len, size_t max_len, sf_err *err) {
    *data = NULL;
    *len = 0;
    int fd;
    struct stat st;
    sf_status s = sf_open_input(path, SF_IN_STREAM, max_len, &fd, &st, err);
    if (s) return s;
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        close(fd);
        return sf_fail(err, SF_E_IO, "cannot open %s: %s", path, strerror(errno));
    }
    size_t cap = max_len < 4096 ? max_len : 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(fp);
        return sf_fail(err, SF_E_NOMEM, "out of memory reading %s", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max_len) {
                if (fgetc(fp) == EOF) break;
                free(buf);
                fclose(fp);
                return sf_fail(err, SF_E_FORMAT, "%s: larger than %zu bytes", path, max_len);
            }
            cap = cap * 2 > max_len ? max_len : cap * 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(fp);
                return sf_fail(err, SF_E_NOMEM, "out of memory reading %s", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return sf_fail(err, SF_E_IO, "cannot read %s", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return SF_OK;
}

sf_status sf_mmap_open(sf_mmap *m, const char *path, sf_err *err) {
    m->data = NULL;
    m->len = 0;
    int fd;
    struct stat st;
    sf_status s = sf_open_input(path, SF_IN_REGULAR, 0, &fd, &st, err);
    if (s) return s;
    if (st.st_size == 0) {
        close(fd);
        return SF_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return sf_fail(err, SF_E_IO, "cannot mmap %s: %s", path, strerror(errno));
    m->data = p;
    m->len = (size_t)st.st_size;
    return SF_OK;
}

int sf_scan_i64(const char **pp, int64_t lo, int64_t hi, int64_t *out) {
    const char *p = *pp;
    int neg = *p == '-';
    if (neg) p++;
    if (*p < '0' || *p > '9') return 0;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (lim - d) / 10) return 0; /* overflow: never wrap */
        v = v * 10 + d;
    }
    int64_t x = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (x < lo || x > hi) return 0;
    *out = x;
    *pp = p;
    return 1;
}

int sf_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    const char *p = s;
    int64_t v;
    if (!s || !sf_scan_i64(&p, lo, hi, &v) || *p) return 0;
    *out = v;
    return 1;
}

int sf_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *p = (const unsigned char *)s;
    if (!n) return 0;
    unsigned c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int k = c >= 0xf0 && c <= 0xf4 ? 3 : c >= 0xe0 ? (c <= 0xef ? 2 : -1) : c >= 0xc2 && c <= 0xdf ? 1 : -1;
    if (k < 0 || n < (size_t)k + 1) return 0;
    uint32_t v = c & (0x3fu >> k);
    for (int i = 1; i <= k; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3fu);
    }
    if ((k == 2 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) || (k == 3 && (v < 0x10000 || v > 0x10ffff)))
        return 0;
    *cp = v;
    return k + 1;
}

int sf_unicode_is_ctl(uint32_t cp) {
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) /* C0, DEL, C1 (U+009B is CSI) */
           || (cp >= 0x202a && cp <= 0x202e)        /* bidi embeddings and overrides (LRE..RLO) */
           || (cp >= 0x2066 && cp <= 0x2069);       /* bidi isolates (LRI..PDI) */
}

int sf_utf8_valid(const char *s, size_t n, int allow_ctl) {
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        int l = sf_utf8_decode(s + i, n - i, &cp);
        if (!l || (!allow_ctl && sf_unicode_is_ctl(cp))) return 0;
        i += (size_t)l;
    }
    return 1;
}

void sf_mmap_close(sf_mmap *m) {
    if (m->data) munmap((void *)m->data, m->len);
    m->data = NULL;
    m->len = 0;
}
