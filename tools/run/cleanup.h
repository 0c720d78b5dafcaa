/* cleanup.h — the names an sf-run owns, removed however the run ends.
 *
 * Every run gets a private folder, <base>/sf-run-<pid>.d (mode 0700; base: $TMPDIR when it is an
 * absolute path of at most 60 bytes, else /tmp), and hands it to its stages as $TMPDIR, so the
 * ipc sockets between stages (sf-run-<pid>-<n>.sock) and the shm transport's control sockets
 * (sf-shm-*.ctl) live in it; the shm transport's segments are /dev/shm/sf-sf-run-<pid>-*. At the
 * end of the run (normal, failed, stopped by a signal, or a stage SIGKILLed) sf-run removes the
 * folder and the segments; what a SIGKILLed sf-run leaves is swept by the next sf-run, which
 * removes every such folder, socket and segment whose sf-run PID is gone. Tested by
 * tests/bats/faults.bats. */
#ifndef SF_RUN_CLEANUP_H
#define SF_RUN_CLEANUP_H

#include "sf.h"

/* Name the run folder for run_id into dir and export it as TMPDIR (before the plan is made,
 * so the ipc URLs go into it); with create, also sweep stale runs' leftovers and make it. */
sf_status sf_run_dir_setup(const char *run_id, int create, char *dir, size_t n, sf_err *err);

/* Remove the run folder (flat) and run_id's shm segments. Idempotent; also runs at exit once
 * sf_run_dir_setup made the folder. */
void sf_run_dir_remove(void);

/* Remove leftovers of sf-runs that are gone: <base>/sf-run-<pid>.d, <base>/sf-run-<pid>-*.sock,
 * <base>/sf-shm-sf-run-<pid>-*.ctl and /dev/shm/sf-sf-run-<pid>-*. Returns how many. */
int sf_run_sweep_stale(const char *base);

#endif
