/* trace.c — SF_TRACE timeline lines (see trace.h). */
#define _POSIX_C_SOURCE 200809L
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int trace_fd = -2; /* -2: not opened yet, -1: off */

static int trace_open(void) {
    if (trace_fd != -2) return trace_fd;
    const char *p = getenv("SF_TRACE");
    trace_fd = -1;
    if (!p || !*p) return -1;
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0644);
    if (fd < 0) {
        fprintf(stderr, "warning: SF_TRACE=%s: %s (no timeline is written)\n", p, strerror(errno));
        return -1;
    }
    return trace_fd = fd;
}

void sf_trace(const char *stage, const char *event, int64_t block, int64_t count) {
    int fd = trace_open();
    if (fd < 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[160];
    int n = snprintf(line, sizeof line, "%lld%09ld %s %s %lld %lld\n", (long long)ts.tv_sec, (long)ts.tv_nsec, stage,
                     event, (long long)block, (long long)count);
    if (n <= 0 || (size_t)n >= sizeof line) return;
    if (write(fd, line, (size_t)n) != n) {
        fprintf(stderr, "warning: SF_TRACE: %s (timeline stopped)\n", strerror(errno));
        close(fd);
        trace_fd = -1;
    }
}
