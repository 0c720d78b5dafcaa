/* ports.c — free loopback tcp ports for sf-run's local tcp links (runspec.h).
 *
 * Without --tcp-port, a run whose neighbours are both on this machine gets ports nobody holds:
 * two tcp runs on one machine no longer collide on a fixed 47600, and a run does not fail
 * because some process happens to hold that port.
 *
 * The ports are drawn outside the kernel's ephemeral range (ip_local_port_range). The kernel
 * hands ports from that range to every outgoing connection, including the stages' own: while
 * a receiver is still starting, its sender's reconnect attempts use ephemeral source ports, and
 * one of them could take a port the run is about to bind. Below the range, only an explicit
 * bind can take a port. Each candidate is checked by binding and listening on 127.0.0.1 (with
 * SO_REUSEADDR, as ZeroMQ binds) and held until all are chosen, so they are distinct. They are
 * released before the stages bind them: another process could take one in between (rare; the stage
 * then fails with "Address already in use"). Tested by tests/unit/test_runspec.c (free_ports) and
 * tests/bats/pipeline.bats (two tcp runs at once). */
#define _DEFAULT_SOURCE
#include "runspec.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The draw: [lo, hi). Below the ephemeral range from 20000 on (ports under 20000 are where
 * services are usually configured), or from 1024 when that leaves fewer than 1000 ports; the
 * whole unprivileged range when the ephemeral range starts too low for either. */
void sf_run_port_range(int *lo, int *hi) {
    int elo = 32768; /* Linux's default start */
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        int a, b;
        if (fscanf(f, "%d %d", &a, &b) == 2 && a >= 1 && a <= b && b <= 65535) elo = a;
        fclose(f);
    }
    if (elo - 20000 >= 1000) *lo = 20000, *hi = elo;
    else if (elo - 1024 >= 1000) *lo = 1024, *hi = elo;
    else *lo = 1024, *hi = 65536;
}

/* A socket bound and listening on 127.0.0.1:port, or -1. */
static int hold(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 1) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

sf_status sf_run_free_ports(int n, int *ports, sf_err *err) {
    if (n <= 0) return SF_OK;
    if (n > SF_RUN_MAX_STAGES) return sf_fail(err, SF_E_ARG, "sf-run: %d tcp ports asked for, at most %d", n, SF_RUN_MAX_STAGES);
    int lo, hi, fds[SF_RUN_MAX_STAGES], got = 0, tries = 0;
    sf_run_port_range(&lo, &hi);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() << 32 ^ (uint64_t)ts.tv_sec;
    while (got < n && tries < 64 * n + 256) {
        tries++;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64: spread, not secrecy */
        int p = lo + (int)(x % (uint64_t)(hi - lo)), dup = 0;
        for (int k = 0; k < got; k++) dup |= ports[k] == p;
        if (dup || (fds[got] = hold(p)) < 0) continue;
        ports[got++] = p;
    }
    for (int k = 0; k < got; k++) close(fds[k]);
    if (got < n)
        return sf_fail(err, SF_E_IO, "sf-run: no free tcp port on 127.0.0.1 in %d..%d after %d tries: name one with --tcp-port", lo,
                       hi - 1, tries);
    return SF_OK;
}
