/* stop.h — the one stop flag of every sfpipe program (STYLE.md: the only mutable global is a
 * volatile sig_atomic_t stop flag), and the names a program must not leave behind.
 *
 * sf_stop_install() makes SIGINT, SIGTERM and SIGHUP set the flag, remember the signal and wake
 * a self-pipe that every blocking wire call polls; long work (per DiT / umT5 layer, per VAE conv,
 * per denoising block, on the CPU and the GPU paths alike) checks sf_stopped() and returns
 * SF_E_STOPPED, and main() exits 128 + signal (130 SIGINT, 143 SIGTERM, 129 SIGHUP) through
 * sf_die / sf_exit_code. A watchdog bounds the whole stop: when the program is still running
 * SF_STOP_GRACE_MS after the first signal (one long kernel on the CPU at full size), or on a
 * second signal SF_STOP_SAME_MS or more after the first (sooner, it is the same request arriving
 * twice: a terminal's Ctrl-C to the process group, then sf-run's SIGTERM), it removes the registered
 * names and _exits with the same code. Outputs are
 * never half-written either way (sf_atomic_open: O_TMPFILE, or a registered temp name).
 *
 * Registered names (sf_stop_unlink_at_exit): temp files of the named fallback and ipc socket
 * files a program bound; they are unlinked by exit() (atexit) and by the watchdog, and forgotten
 * once committed or closed. Tested by tests/unit/test_stop.c and tests/bats/faults.bats. */
#ifndef SF_STOP_H
#define SF_STOP_H

#include "sf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SF_STOP_GRACE_MS 700
#define SF_STOP_SAME_MS 300

/* Install the handlers (SIGINT, SIGTERM, SIGHUP; SIGPIPE ignored), the self-pipe and the
 * watchdog. Idempotent. */
sf_status sf_stop_install(sf_err *err);
/* 1 once a stop signal arrived (or sf_stop_request was called). */
int sf_stopped(void);
/* The signal that stopped the program; 0 when none (or stopped by sf_stop_request). */
int sf_stop_signal(void);
/* Set the flag by hand (tests, error paths). Async-signal-safe; arms no watchdog. */
void sf_stop_request(void);
/* Read end of the self-pipe (readable once stopped); -1 before sf_stop_install. */
int sf_stop_fd(void);
/* SF_E_STOPPED with "interrupted by SIGTERM" (or "... by signal" when requested by hand). */
sf_status sf_stop_err(sf_err *err);
/* SF_OK, or sf_stop_err when stopped: the check inside long work. */
sf_status sf_stop_check(sf_err *err);

/* Remove path when the program exits (exit(), sf_die, the watchdog) unless forgotten first.
 * Returns 0, or -1 when the table is full (the name is then only removed by its owner). */
int sf_stop_unlink_at_exit(const char *path);
void sf_stop_forget(const char *path);

#ifdef __cplusplus
}
#endif
#endif
