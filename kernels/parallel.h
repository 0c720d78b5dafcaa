/* parallel.h — deterministic parallel loops on one persistent thread team (OpenMP's, from the
 * compiler's runtime: libgomp with GCC; a build without -fopenmp creates a pthread per part).
 *
 * [0, n) is cut into at most `nthreads` contiguous ranges, one per part; which thread runs a part
 * does not matter. Kernels built on it partition OUTPUT elements only and never split a
 * reduction, so results are bit-identical for any thread count and schedule. A call from inside
 * another parallel region runs its parts on the calling thread.
 * Tested by tests/unit/test_kernels.c (thread-count invariance of GEMM and attention, baseline vs
 * avx2 kernels). */
#ifndef SF_PARALLEL_H
#define SF_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

/* fn(ctx, begin, end) processes indices [begin, end). */
typedef void (*sf_range_fn)(void *ctx, int64_t begin, int64_t end);

/* Run fn over [0, n) on up to nthreads threads (<= 1: inline). Ranges are no smaller than
 * min_chunk (except the last) so tiny problems stay on one thread. */
void sf_parallel_for(int64_t n, int nthreads, int64_t min_chunk, sf_range_fn fn, void *ctx);

/* Run fn(ctx, i, tid) for every i in [0, n_items) on min(threads, n_items) workers: worker tid
 * (0-based) runs items tid, tid + workers, tid + 2·workers, ... one after another, so tid indexes
 * per-worker scratch. Items must write disjoint outputs. Never fails. */
void sf_parallel_items(int64_t n_items, int threads, void (*fn)(void *ctx, int64_t i, int tid), void *ctx);

/* Work memory of the calling thread: at least `floats` floats in buffer `slot` (0 or 1), kept
 * between calls — grown (contents not kept) when a call needs more, freed when the thread exits.
 * The kernels' per-part buffers (GEMM panels, attention tiles) come from here, so the persistent
 * team's threads stop calling malloc/free ~20 000 times per video; a thread holds at most its
 * largest request (what one call allocated before). NULL when out of memory (callers take their
 * slow path). Never pass the pointer to another thread or keep it across a nested parallel call. */
float *sf_thread_scratch(int slot, size_t floats);

/* Number of online CPUs (>= 1). */
int sf_cpu_count(void);

/* 1 when the CPU kernels may run their target("avx2") variants: an x86 CPU with AVX2 and the
 * environment variable SF_CPU_BASELINE unset, empty or "0". Both variants give the same bits;
 * tests set SF_CPU_BASELINE=1 to check that. */
int sf_cpu_use_avx2(void);

/* Which compiled variant the blocked CPU kernels run now (same choice as sf_cpu_use_avx2()):
 * SF_ISA_BASE or SF_ISA_AVX2. The answer comes from a probe compiled inside the variant
 * (kernels/cpu/simd_variants.h): SF_ISA_AVX2 proves the AVX2 copy exists and was built with
 * AVX2 enabled, so "baseline vs avx2, same bits" tests can show they ran two variants. */
enum { SF_ISA_BASE = 0, SF_ISA_AVX2 = 2 };
int sf_gemm_cpu_isa(void);      /* kernels/cpu/gemm.c */
int sf_attention_cpu_isa(void); /* kernels/cpu/attention.c */
int sf_conv3d_cpu_isa(void);    /* kernels/cpu/conv3d.c */

#endif
