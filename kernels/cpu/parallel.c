/* parallel.c — sf_parallel_for / sf_parallel_items on OpenMP's persistent thread team (see
 * parallel.h); a build without OpenMP falls back to a pthread per part.
 * Tested by tests/unit/test_kernels.c. */
#define _POSIX_C_SOURCE 200809L
#include "parallel.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <string.h>
#include <unistd.h>

#define MAX_PARTS 256

#ifndef _OPENMP
typedef struct pjob {
    void (*part)(void *, int);
    void *arg;
    int i;
} pjob;
static void *pjob_main(void *p) {
    pjob *j = p;
    j->part(j->arg, j->i);
    return NULL;
}
#endif

int sf_cpu_use_avx2(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    const char *e = getenv("SF_CPU_BASELINE");
    if (e && *e && strcmp(e, "0") != 0) return 0;
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

sf_cpu_mode sf_cpu_mode_now(void) {
    const char *e = getenv("SF_CPU_EXACT"), *p = getenv("SF_CPU_PRECISION");
    if (e && *e && strcmp(e, "0") != 0) return SF_CPU_EXACT;
    if (p && !strcmp(p, "bf16")) return SF_CPU_BF16;
    return SF_CPU_FAST;
}

const char *sf_cpu_mode_name(sf_cpu_mode m) {
    return m == SF_CPU_EXACT ? "exact" : m == SF_CPU_BF16 ? "bf16" : "fast";
}

int sf_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 1024 ? 1024 : (int)n);
}

/* Run part(arg, i) for every i in [0, parts), each part on one thread at a time.
 * With OpenMP (-fopenmp, the default build): one region of the runtime's persistent team — no
 * thread is created per call; a team smaller than asked (OMP_THREAD_LIMIT, nesting) runs several
 * parts per thread. Without it: one pthread per part, created and joined here; a part whose
 * thread cannot start runs on the caller. Either way each part's work, and so the result, is the
 * same for any scheduling. */
static void run_parts(int parts, void (*part)(void *arg, int i), void *arg) {
#ifdef _OPENMP
    if (omp_in_parallel()) { /* called from inside a region: run here (no nested teams) */
        for (int i = 0; i < parts; i++) part(arg, i);
        return;
    }
#pragma omp parallel num_threads(parts)
    {
        const int nt = omp_get_num_threads();
        for (int i = omp_get_thread_num(); i < parts; i += nt) part(arg, i);
    }
#else
    pjob jobs[MAX_PARTS];
    pthread_t tid[MAX_PARTS];
    int started[MAX_PARTS] = {0};
    for (int i = 0; i < parts; i++) jobs[i] = (pjob){part, arg, i};
    for (int i = 1; i < parts; i++) started[i] = pthread_create(&tid[i], NULL, pjob_main, &jobs[i]) == 0;
    part(arg, 0);
    for (int i = 1; i < parts; i++) {
        if (started[i]) pthread_join(tid[i], NULL);
        else part(arg, i);
    }
#endif
}

typedef struct part_job {
    sf_part_fn fn;
    void *ctx;
    int64_t n, parts;
} part_job;

static void part_part(void *arg, int i) { /* contiguous range i of `parts` near-equal ones */
    const part_job *j = arg;
    int64_t base = j->n / j->parts, rem = j->n % j->parts;
    int64_t begin = i * base + (i < rem ? i : rem), len = base + (i < rem ? 1 : 0);
    j->fn(j->ctx, begin, begin + len, i);
}

void sf_parallel_for_part(int64_t n, int nthreads, int64_t min_chunk, sf_part_fn fn, void *ctx) {
    if (n <= 0) return;
    if (min_chunk < 1) min_chunk = 1;
    int64_t parts = nthreads < 1 ? 1 : nthreads;
    if (parts > (n + min_chunk - 1) / min_chunk) parts = (n + min_chunk - 1) / min_chunk;
    if (parts > MAX_PARTS) parts = MAX_PARTS;
    if (parts <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    part_job j = {fn, ctx, n, parts};
    run_parts((int)parts, part_part, &j);
}

typedef struct range_adapt {
    sf_range_fn fn;
    void *ctx;
} range_adapt;
static void range_adapter(void *c, int64_t b, int64_t e, int part) {
    (void)part;
    const range_adapt *r = c;
    r->fn(r->ctx, b, e);
}

void sf_parallel_for(int64_t n, int nthreads, int64_t min_chunk, sf_range_fn fn, void *ctx) {
    range_adapt r = {fn, ctx};
    sf_parallel_for_part(n, nthreads, min_chunk, range_adapter, &r);
}

typedef struct items_job {
    void (*fn)(void *ctx, int64_t i, int tid);
    void *ctx;
    int64_t n_items;
    int workers;
} items_job;

static void items_part(void *arg, int tid) { /* worker tid: items tid, tid + workers, ... */
    const items_job *j = arg;
    for (int64_t i = tid; i < j->n_items; i += j->workers) j->fn(j->ctx, i, tid);
}

void sf_parallel_items(int64_t n_items, int threads, void (*fn)(void *ctx, int64_t i, int tid), void *ctx) {
    if (n_items <= 0) return;
    int n = threads < 1 ? 1 : threads > MAX_PARTS ? MAX_PARTS : threads;
    if ((int64_t)n > n_items) n = (int)n_items;
    items_job j = {fn, ctx, n_items, n};
    if (n == 1) items_part(&j, 0);
    else run_parts(n, items_part, &j);
}

/* ---- component-owned scratch ---- */
static unsigned long long scratch_misses;

sf_status sf_scratch_init(sf_scratch *s, int parts, size_t per_part, sf_err *err) {
    memset(s, 0, sizeof *s);
    if (parts < 1) parts = 1;
    if (per_part < 1) per_part = 1;
    /* every part starts on a 64-byte line: oneDNN's AMX tile loads of a misaligned source ran 10-15 %
     * slower (a 64-row umT5 product, 2.33 vs 2.69 ms) */
    per_part = (per_part + 15) & ~(size_t)15;
    size_t n;
    if (!sf_mul_ok(per_part, (size_t)parts, &n) || !(s->buf = sf_malloc64(n, sizeof(float))))
        return sf_fail(err, SF_E_NOMEM, "out of memory for the kernels' scratch (%d x %zu MB)", parts,
                       per_part * sizeof(float) >> 20);
    s->per_part = per_part;
    s->parts = parts;
    return SF_OK;
}

void sf_scratch_free(sf_scratch *s) {
    free(s->buf);
    memset(s, 0, sizeof *s);
}

float *sf_scratch_part(const sf_scratch *s, int part, size_t need) {
    if (!s || !s->buf || part < 0 || part >= s->parts || need > s->per_part) return NULL;
    return s->buf + (size_t)part * s->per_part;
}

unsigned long long sf_scratch_misses(void) { return __atomic_load_n(&scratch_misses, __ATOMIC_RELAXED); }
void sf_scratch_count_miss(void) { __atomic_fetch_add(&scratch_misses, 1, __ATOMIC_RELAXED); }
