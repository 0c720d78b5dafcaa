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

#include "sf.h"

/* fn(ctx, begin, end) processes indices [begin, end). */
typedef void (*sf_range_fn)(void *ctx, int64_t begin, int64_t end);

/* Run fn over [0, n) on up to nthreads threads (<= 1: inline). Ranges are no smaller than
 * min_chunk (except the last) so tiny problems stay on one thread. */
void sf_parallel_for(int64_t n, int nthreads, int64_t min_chunk, sf_range_fn fn, void *ctx);

/* Run fn(ctx, i, tid) for every i in [0, n_items) on min(threads, n_items) workers: worker tid
 * (0-based) runs items tid, tid + workers, tid + 2·workers, ... one after another, so tid indexes
 * per-worker scratch. Items must write disjoint outputs. Never fails. */
void sf_parallel_items(int64_t n_items, int threads, void (*fn)(void *ctx, int64_t i, int tid), void *ctx);

/* As sf_parallel_for, with the part's index (0 ≤ part < the number of parts ≤ nthreads) passed
 * to fn, so that a part can use its own slot of a scratch sized for nthreads parts. */
typedef void (*sf_part_fn)(void *ctx, int64_t begin, int64_t end, int part);
void sf_parallel_for_part(int64_t n, int nthreads, int64_t min_chunk, sf_part_fn fn, void *ctx);

/* Work memory a component owns, sized at its init for the largest call it will make (the GPU
 * backends' workspaces have the same shape): `parts` slots of `per_part` floats, one per parallel
 * part. Kernels that take one (sf_gemm_cpu_ws, sf_attention_cpu_ws) allocate nothing per call;
 * given NULL, or a slot too small, they allocate per call as before and count it (sf_scratch_misses:
 * tests assert a component's forward never does). */
typedef struct sf_scratch {
    float *buf;
    size_t per_part;
    int parts;
} sf_scratch;
sf_status sf_scratch_init(sf_scratch *s, int parts, size_t per_part, sf_err *err);
void sf_scratch_free(sf_scratch *s);
/* Part `part`'s slot when it holds `need` floats; NULL otherwise (and for s NULL). */
float *sf_scratch_part(const sf_scratch *s, int part, size_t need);
/* Per-call allocations the kernels made because no (large enough) scratch was given. */
unsigned long long sf_scratch_misses(void);
void sf_scratch_count_miss(void);

/* Number of online CPUs (>= 1). */
int sf_cpu_count(void);

/* 1 when the CPU kernels may run their target("avx2") variants: an x86 CPU with AVX2 and the
 * environment variable SF_CPU_BASELINE unset, empty or "0". Both variants give the same bits;
 * tests set SF_CPU_BASELINE=1 to check that. */
int sf_cpu_use_avx2(void);

/* The CPU backend's numerics, read from the environment at each call so that a stage's flag
 * (common/cli.c: --deterministic sets SF_CPU_EXACT=1, --precision bf16 sets SF_CPU_PRECISION=bf16)
 * also reaches the stages sf-run starts:
 *  - SF_CPU_FAST (default): GEMMs, attention's products and softmax, the VAE's convolution through
 *    oneDNN (kernels/dnnl_ops.h), f32; within the golden tolerances, not bit-stable across thread
 *    counts or CPUs.
 *  - SF_CPU_EXACT (SF_CPU_EXACT set and not "0"): the fixed-summation-order kernels, same bits for
 *    any thread count and ISA variant — the oracle of the bit-exact tests.
 *  - SF_CPU_BF16 (SF_CPU_PRECISION=bf16, exact unset): the GPU backend's numerics — GEMM and
 *    convolution inputs and weights rounded to bf16 (bf16 weights used as they are in memory),
 *    f32 accumulation, on AMX / AVX512-BF16 where the CPU has them.
 * SF_CPU_PRECISION other than fp32/bf16 counts as fp32 (the flags reject it first). */
typedef enum sf_cpu_mode { SF_CPU_FAST = 0, SF_CPU_EXACT = 1, SF_CPU_BF16 = 2 } sf_cpu_mode;
sf_cpu_mode sf_cpu_mode_now(void);
const char *sf_cpu_mode_name(sf_cpu_mode m); /* "fast", "exact", "bf16" */

/* Which compiled variant the blocked CPU kernels run now (same choice as sf_cpu_use_avx2()):
 * SF_ISA_BASE or SF_ISA_AVX2. The answer comes from a probe compiled inside the variant
 * (kernels/cpu/simd_variants.h): SF_ISA_AVX2 proves the AVX2 copy exists and was built with
 * AVX2 enabled, so "baseline vs avx2, same bits" tests can show they ran two variants. */
enum { SF_ISA_BASE = 0, SF_ISA_AVX2 = 2 };
int sf_gemm_cpu_isa(void);      /* kernels/cpu/gemm.c */
int sf_attention_cpu_isa(void); /* kernels/cpu/attention.c */
int sf_conv3d_cpu_isa(void);    /* kernels/cpu/conv3d.c */

#endif
