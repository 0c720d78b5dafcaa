/* gpu_host.h — host-side helpers the GPU backends share: SF_CUDA_PROFILE's event profile, shared by the GPU DiT, umT5 and (when wanted) the
 * VAE: an event on the stream before each op, tagged with its category; after a run the time from
 * each event to the next is added to that event's category. Plain C over the CUDA C API
 * (kernels/cuda_ops.h), so a CPU-only build compiles it against the stubs. Used by
 * stages/denoise/dit_cuda.c and stages/encode/t5_cuda.c; exercised on a GPU by the benches
 * (tests/gpu/check.sh, SF_CUDA_PROFILE=1); and the staged weight upload (any file dtype → bf16). */
#ifndef SF_GPU_HOST_H
#define SF_GPU_HOST_H

#include "cuda_ops.h"

#define SF_GPU_PROF_MAX_CAT 8

typedef struct sf_gpu_prof {
    void *ev;                         /* NULL: profiling off (every call is a no-op) */
    int n_ev, cap_ev, *ev_cat;
    double *ev_flops;                 /* the FLOPs of each recorded event's op, added at collect (an abandoned
                                         run, n_ev set back to 0, counts none) */
    int n_cat, runs;
    const char *const *names;         /* n_cat category names (borrowed) */
    double ms[SF_GPU_PROF_MAX_CAT];   /* summed over runs */
    double flops[SF_GPU_PROF_MAX_CAT]; /* the FLOPs of the marked ops, summed over runs */
} sf_gpu_prof;

/* Turn profiling on with room for cap events per run (on failure *p is left off). */
sf_status sf_gpu_prof_init(sf_gpu_prof *p, int cap, int n_cat, const char *const *names, sf_err *err);
void sf_gpu_prof_free(sf_gpu_prof *p);
/* An event before the next op, of category cat (dropped when the run has used all cap events). */
void sf_gpu_prof_mark(sf_gpu_prof *p, const sf_cuda_ctx *cx, int cat);
/* The same for an op of known arithmetic (a GEMM: 2·M·N·K; attention: 4·Lq·Lk·heads·head_dim), so
 * the category's achieved rate can be reported; counted only when the event is recorded and its run
 * collected. */
void sf_gpu_prof_mark_flops(sf_gpu_prof *p, const sf_cuda_ctx *cx, int cat, double flops);
/* End of a run: wait for its events and add their intervals to the categories. */
sf_status sf_gpu_prof_collect(sf_gpu_prof *p, sf_err *err);
/* "<runs> <unit>, <ms> ms each on the GPU: <name> <ms> ms (<pct>%), ..." with `decimals` digits
 * into buf, a category with counted FLOPs as "<name> <ms> ms (<pct>%, <G> GFLOP, <R> TFLOP/s)"
 * (per run); 0 when nothing was profiled. */
int sf_gpu_prof_format(const sf_gpu_prof *p, const char *unit, int decimals, char *buf, size_t n);
void sf_gpu_prof_reset(sf_gpu_prof *p);

/* Carve n bytes (256-aligned) for the next buffer of an arena at base, at byte *off (advanced);
 * base NULL only counts (the sizing pass before the one allocation). */
static inline void *sf_gpu_carve(char *base, size_t *off, size_t n) {
    void *p = base ? base + *off : NULL;
    *off += (n + 255) & ~(size_t)255;
    return p;
}

/* n values of src (dtype f32, bf16 or f16; the caller checked it) as bf16 at dst (round to nearest
 * even), on up to 16 host threads (kernels/parallel.h). */
void sf_gpu_to_bf16(const void *src, sf_dtype dt, size_t n, uint16_t *dst);

/* n values of src (dtype dt: f32, bf16 or f16, host memory, e.g. an mmapped file) to dst as bf16
 * (round to nearest even), through the pinned buffer stage of stage_n uint16 (no full host copy):
 * more than stage_n values go in halves of it, one converted while the other's copy runs. Returns
 * when every copy is done (the stage may be reused). SF_E_UNSUPPORTED for another dtype. */
sf_status sf_gpu_upload_bf16(const sf_cuda_ctx *cx, void *dst, const void *src, sf_dtype dt, size_t n, uint16_t *stage,
                             size_t stage_n, sf_err *err);

#endif
