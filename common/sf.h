/* sf.h — libsf basics: status codes, error messages, logging, checked arithmetic.
 *
 * Every library function returns an sf_status and, on failure, fills an sf_err with a
 * one-line cause. Library code never exits; only a program's main() maps a status to an
 * exit code (sf_exit_code). Tested by tests/unit/test_core.c. */
#ifndef SF_H
#define SF_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SF_VERSION "0.1.0"

typedef enum sf_status {
    SF_OK = 0,
    SF_E_IO = -1,          /* open/read/write/mmap failed */
    SF_E_FORMAT = -2,      /* malformed, truncated or hostile file */
    SF_E_NOMEM = -3,       /* allocation failed or size overflow */
    SF_E_ARG = -4,         /* bad argument / flag / combination */
    SF_E_UNSUPPORTED = -5, /* valid but not supported (dtype, feature) */
    SF_E_NOTFOUND = -6,    /* missing tensor / key / file */
    SF_E_SHAPE = -7,       /* tensor of the wrong shape or dtype */
    SF_E_DEVICE = -8,      /* CUDA / device failure */
    SF_E_STOPPED = -9,     /* interrupted by a signal or upstream error */
} sf_status;

/* One-line error message buffer. */
typedef struct sf_err {
    char msg[512];
} sf_err;

const char *sf_status_str(sf_status s);

/* Format a message into err (when non-NULL) and return s. */
sf_status sf_fail(sf_err *err, sf_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Exit code for a status: 0 ok, 2 bad arguments, 1 everything else. */
int sf_exit_code(sf_status s);

/* Logging to stderr. Levels: 0 error, 1 warn, 2 info, 3 debug. Default info, from
 * SF_LOG_LEVEL or --log-level. */
enum { SF_LOG_ERROR = 0, SF_LOG_WARN = 1, SF_LOG_INFO = 2, SF_LOG_DEBUG = 3 };
void sf_log_set_level(int level);
int sf_log_parse_level(const char *s); /* name or digit; -1 when unknown */
int sf_log_level(void);
void sf_log_set_prefix(const char *prefix); /* e.g. "sf-denoise" */
void sf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define sf_error(...) sf_log(SF_LOG_ERROR, __VA_ARGS__)
#define sf_warn(...) sf_log(SF_LOG_WARN, __VA_ARGS__)
#define sf_info(...) sf_log(SF_LOG_INFO, __VA_ARGS__)
#define sf_debug(...) sf_log(SF_LOG_DEBUG, __VA_ARGS__)

/* Print "prog: error: msg" and exit with sf_exit_code(s). Only for main(). */
void sf_die(const char *prog, sf_status s, const sf_err *err) __attribute__((noreturn));

/* Checked size arithmetic: return 0 on overflow (result untouched), 1 on success. */
int sf_mul_ok(size_t a, size_t b, size_t *out);
int sf_add_ok(size_t a, size_t b, size_t *out);

/* Allocation that returns NULL on a size overflow. */
void *sf_calloc2(size_t n, size_t size);
/* n × size bytes (overflow-checked, not zeroed) starting on a 64-byte line, the size rounded up to
 * whole lines; NULL on overflow or out of memory; free() releases it. The CPU kernels' operands: a
 * 16-byte-aligned source slowed oneDNN's AMX products by 10-15 %. */
void *sf_malloc64(size_t n, size_t size);

/* 1 when fd is a pipe, socket or regular file — i.e. data is being piped in or out (not a
 * terminal, not /dev/null). Used for the shell-composition defaults `--in -` / `--out -`. */
int sf_fd_is_data(int fd);

/* Find a project data file such as "configs/default_config.yaml": tried as given (relative to
 * the working directory, like the reference), then under $SF_ROOT, in an installed tree
 * (<exe>/../share/sfpipe/), next to the build tree (<exe>/../../) and under the source tree
 * the binary was built from. NULL when absent. */
const char *sf_find_data(const char *rel, char *buf, size_t n);

/* A sibling program: <folder of the running binary>/name when it is an executable file there
 * (build/bin/sf-run finds build/bin/sf-encode, <prefix>/bin/sf-run finds <prefix>/bin/...), so
 * a fresh build works without build/bin on PATH. NULL otherwise — and for names containing a
 * '/' — in which case the caller leaves the name to PATH (execvp). */
const char *sf_find_program(const char *name, char *buf, size_t n);

/* The folder PATH's last component is in, into dir[n]: "." when PATH has no '/', "/" for "/x", else
 * everything before the last '/'. 0 when it does not fit (dir then holds a truncated name). */
int sf_path_dir(const char *path, char *dir, size_t n);

/* mkdir -p PATH (mode 0755 less the umask): the folder and every missing parent. SF_E_IO naming
 * the folder that could not be made ("cannot create folder a/b: Permission denied") or the file in
 * the way ("a is not a folder"). Tested by test_core.c. */
sf_status sf_mkdir_p(const char *path, sf_err *err);

/* Check, before any work, that the folder an output file PATH goes into exists and is writable
 * (flag names the option in the message, e.g. "--save-latents"). PATH NULL, "", "-", fd:N and
 * URLs (scheme://) pass; a trailing '/' (a folder output, e.g. PNG frames) checks its parent.
 * A missing folder is created (mkdir -p) when create is set, else SF_E_IO with the hint
 * "mkdir -p DIR"; an existing but unwritable folder is SF_E_IO. Tested by test_core.c. */
sf_status sf_check_out_dir(const char *flag, const char *path, int create, sf_err *err);

/* --progress auto|none: 1 when progress should be shown — "none" never; "auto" (or NULL) when
 * stderr is a terminal or SF_PROGRESS is set (sf-run sets it and draws one status line from
 * the '\r'-terminated progress updates of all its stages). */
int sf_progress_enabled(const char *mode);

/* Monotonic clock in seconds. */
double sf_now(void);
/* Sleep s seconds (nothing when s <= 0); a signal may end it early. */
void sf_sleep(double s);
/* Which sf_now() this is: the boot id of this host's kernel (/proc/sys/kernel/random/boot_id), the
 * same for every process of one boot and different elsewhere, so two sf_now() readings compare only
 * when their ids match (sent beside wire timestamps as meta "clock"). "" when it cannot be read. */
void sf_clock_id(char *out, size_t n);

/* Atomic file output (common/outfile.c): nothing is visible under PATH before it is complete,
 * and nothing stays after a crash. The data goes to an anonymous O_TMPFILE in PATH's folder,
 * linked into place by sf_atomic_commit (linkat; rename when PATH exists); where the filesystem
 * has no O_TMPFILE, to "<path>.tmp.<pid>.<n>", removed at exit and by the stop watchdog, and
 * swept by the next open of the same PATH once its PID is gone (SIGKILL). An existing device or
 * FIFO (/dev/stdout, a named pipe) is written in place instead. */
typedef struct sf_atomic_file {
    char path[4096];
    char tmp[4096 + 64]; /* the named temp file; "" when anonymous or in place */
    void *fp;            /* FILE* */
    int anon;            /* 1: an O_TMPFILE, linked at commit */
} sf_atomic_file;
sf_status sf_atomic_open(sf_atomic_file *af, const char *path, sf_err *err);
/* Flush, fsync, close and link/rename into place. On failure nothing is left. */
sf_status sf_atomic_commit(sf_atomic_file *af, sf_err *err);
/* Drop the output (idempotent). */
void sf_atomic_abort(sf_atomic_file *af);
/* The temp names beside PATH: "<path>.tmp.<pid>.<n><suffix>" into buf (SF_E_ARG when too long). */
sf_status sf_tmp_name(const char *path, const char *suffix, char *buf, size_t n, sf_err *err);
/* Remove temp names of PATH ("<path>.tmp.<pid>[.*]": files, or flat folders such as a PNG
 * output's) whose PID is not running and which this user owns. Returns how many went. */
int sf_tmp_sweep(const char *path);
/* Remove a flat folder: its files (and empty subfolders), then itself; errors are ignored. */
void sf_rm_flat(const char *dir);
/* 1 when process pid is certainly gone (not us, and kill(pid, 0) says ESRCH): whose leftovers may go. */
int sf_pid_gone(long pid);

/* Open an input file for reading without ever blocking in open(): O_NONBLOCK (a FIFO or device
 * with no writer cannot hang us), fstat, then O_NONBLOCK cleared. SF_IN_REGULAR refuses anything
 * but a regular file (a mapped or seekable input: weights, tokenizer, tensors); SF_IN_STREAM also
 * takes a pipe/FIFO or socket (text and wire streams read front to back), never a directory or a
 * device (/dev/zero, a terminal). max_len (0 = no cap) refuses a regular file larger than the
 * format allows before anything is read. On success *fd is open (caller closes) and *st filled;
 * on failure SF_E_IO or SF_E_FORMAT (too large), errno kept from a failed open() (ENOENT).
 * Every file input of every stage and tool goes through here (sf_read_file, sf_mmap_open, the
 * wire's file reader, sf-encode --prompts). Tested by test_core.c and tests/hostile/. */
enum { SF_IN_REGULAR = 0, SF_IN_STREAM = 1 };
struct stat;
sf_status sf_open_input(const char *path, int kind, size_t max_len, int *fd, struct stat *st, sf_err *err);

/* Read a whole file into a malloc'd buffer (NUL-terminated; caller frees): a regular file or a
 * stream (sf_open_input SF_IN_STREAM), never more than max_len bytes. */
sf_status sf_read_file(const char *path, char **data, size_t *len, size_t max_len, sf_err *err);

/* Strict decimal integer at *p: an optional '-', then digits (no space, no '+', no hex), the
 * value in [lo, hi] (no wrap-around, no overflow). Advances *p past it; 0 when malformed or
 * out of range. sf_parse_i64 wants the whole string to be that integer. */
int sf_scan_i64(const char **p, int64_t lo, int64_t hi, int64_t *out);
int sf_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* The UTF-8 character at s[0..n): its length (1..4) and code point in *cp, or 0 when it is not
 * well-formed (an overlong, a surrogate, > U+10FFFF, a stray or missing continuation byte, n = 0). */
int sf_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* 1 for a code point that must never reach a terminal or a log raw: C0 controls, DEL, C1 controls
 * (U+0080..U+009F: U+009B is an 8-bit CSI) and the bidi embedding / override / isolate controls
 * (U+202A..U+202E, U+2066..U+2069: they reorder what follows them on the line). */
int sf_unicode_is_ctl(uint32_t cp);

/* 1 when the n bytes are well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF)
 * and, unless allow_ctl, hold no control character (sf_unicode_is_ctl: names and keys read from
 * files and peers: never a terminal escape, never a line break, never a bidi override). */
int sf_utf8_valid(const char *s, size_t n, int allow_ctl);

/* Copy src into dst (size n, NUL-terminated, truncated at a character boundary) with every
 * control character (sf_unicode_is_ctl: C0, DEL, C1, bidi controls) and every byte that is not
 * part of well-formed UTF-8 written as \xHH per byte, and newlines / tabs as spaces, so text from a
 * file or a peer can never drive the terminal (escape sequences, BEL, 8-bit CSI), reorder the line
 * (bidi overrides) nor split a one-line message. sf_fail, sf_log and sf_die apply it to
 * everything they print. */
void sf_escape_ctl(char *dst, size_t n, const char *src);

/* Read-only memory map of a whole file (empty files give data=NULL, len=0). */
typedef struct sf_mmap {
    const uint8_t *data;
    size_t len;
} sf_mmap;
sf_status sf_mmap_open(sf_mmap *m, const char *path, sf_err *err);
void sf_mmap_close(sf_mmap *m);

#ifdef __cplusplus
}
#endif
#endif
