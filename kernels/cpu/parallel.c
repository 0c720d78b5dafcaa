/* parallel.c — sf_parallel_for: contiguous range split over pthreads (see parallel.h).
 * Tested by tests/unit/test_kernels.c. */
#define _POSIX_C_SOURCE 200809L
#include "parallel.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct par_job {
    sf_range_fn fn;
    void *ctx;
    int64_t begin, end;
} par_job;

static void *par_main(void *p) {
    par_job *j = p;
    j->fn(j->ctx, j->begin, j->end);
    return NULL;
}

int sf_cpu_use_avx2(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    const char *e = getenv("SF_CPU_BASELINE");
    if (e && *e && strcmp(e, "0") != 0) return 0;
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

int sf_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 1024 ? 1024 : (int)n);
}

void sf_parallel_for(int64_t n, int nthreads, int64_t min_chunk, sf_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (min_chunk < 1) min_chunk = 1;
    int64_t parts = nthreads < 1 ? 1 : nthreads;
    if (parts > (n + min_chunk - 1) / min_chunk) parts = (n + min_chunk - 1) / min_chunk;
    if (parts > 256) parts = 256;
    if (parts <= 1) {
        fn(ctx, 0, n);
        return;
    }
    par_job jobs[256];
    pthread_t tid[256];
    int started[256] = {0};
    int64_t base = n / parts, rem = n % parts, at = 0;
    for (int64_t i = 0; i < parts; i++) {
        int64_t len = base + (i < rem ? 1 : 0);
        jobs[i] = (par_job){fn, ctx, at, at + len};
        at += len;
    }
    for (int64_t i = 1; i < parts; i++)
        started[i] = pthread_create(&tid[i], NULL, par_main, &jobs[i]) == 0;
    fn(ctx, jobs[0].begin, jobs[0].end);
    for (int64_t i = 1; i < parts; i++) {
        if (started[i]) pthread_join(tid[i], NULL);
        else fn(ctx, jobs[i].begin, jobs[i].end);
    }
}
