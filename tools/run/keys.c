/* keys.c — the CURVE key of an sf-run run: one fresh key pair per run (libzmq, backed by
 * libsodium), handed to every stage so that its tcp streams are encrypted and its readers accept
 * only the run's own stages (common/wire_net.c). The key never appears on a command line: a
 * local stage finds it in $SF_WIRE_CURVE_KEY (its environment is readable by its owner only),
 * a remote one reads it from ssh's stdin (runspec.c prefixes its command with the `read`), a pipe
 * sf-run holds open for the stage's life (sf_run_remote_stdin), so that its end tells the remote
 * shell that the run is over.
 * With --curve-key-env the run takes $SF_WIRE_CURVE_KEY instead, so that its stages can reach servers
 * started outside it with the same key (a resident `sf-encode --serve tcp://…`).
 * Mirrors no reference module. Tested by tests/bats/net-edge.bats (sf-run over tcp, the key
 * absent from every command line, a peer without it refused). */
#define _GNU_SOURCE /* pipe2 */
#include "runspec.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

sf_status sf_run_keys_new(const sf_run_plan *plan, int from_env, sf_run_keys *k, sf_err *err) {
    memset(k, 0, sizeof *k);
    if (from_env) { /* --curve-key-env: the key the user shares with servers started outside the run */
        const char *e = getenv("SF_WIRE_CURVE_KEY");
        if (!plan->curve)
            return sf_fail(err, SF_E_ARG, "--curve-key-env needs a tcp run with CURVE (transport: tcp, libzmq with CURVE)");
        if (!e || !*e) return sf_fail(err, SF_E_ARG, "--curve-key-env: $SF_WIRE_CURVE_KEY is not set");
        if (!sf_wire_curve_key_valid(e))
            return sf_fail(err, SF_E_ARG, "--curve-key-env: $SF_WIRE_CURVE_KEY is not a Z85 CURVE secret key (40 characters)");
        memcpy(k->secret, e, 41);
        k->on = 1;
        return SF_OK;
    }
    if (!plan->curve) return SF_OK;
    char pub[41];
    if (zmq_curve_keypair(pub, k->secret) != 0)
        return sf_fail(err, SF_E_IO, "cannot make the run's CURVE key pair: %s", zmq_strerror(errno));
    k->on = 1;
    return SF_OK;
}

int sf_run_keys_child(const sf_run_keys *k, const sf_run_stage *st) {
    if (!k->on) {
        unsetenv("SF_WIRE_CURVE_KEY"); /* a stale key from sf-run's own environment */
        return 0;
    }
    /* local stages, and srun's (srun hands its environment to the step: --export=ALL, the default),
     * take the key from the environment; ssh's remote shell reads it from stdin (sf_run_remote_stdin) */
    if (!st->host[0] || (st->argc > 0 && !strcmp(st->argv[0], "srun")))
        return setenv("SF_WIRE_CURVE_KEY", k->secret, 1);
    return 0;
}

int sf_run_remote_stdin(const sf_run_keys *k, int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    if (k->on) {
        char line[48];
        size_t n = (size_t)snprintf(line, sizeof line, "%s\n", k->secret);
        ssize_t w = write(fds[1], line, n); /* 41 bytes: a pipe holds them without a reader */
        memset(line, 0, sizeof line);
        if (w != (ssize_t)n) {
            close(fds[0]);
            close(fds[1]);
            return -1;
        }
    }
    return 0;
}

void sf_run_keys_wipe(sf_run_keys *k) {
    volatile char *p = k->secret;
    for (size_t i = 0; i < sizeof k->secret; i++) p[i] = 0;
    k->on = 0;
}
