/* rng.h — sfpipe's own seeded random numbers: xoshiro256** seeded through splitmix64, and
 * standard normals by the Box–Muller transform (both outputs used, in order).
 *
 * The stream depends only on the seed and the number of draws, never on threads or the
 * machine: generation is serial. Used for the initial/re-noising draws of sf-denoise and
 * for sf-mkmodel's random weights. Tested by tests/unit/test_core.c (known-answer values). */
#ifndef SF_RNG_H
#define SF_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct sf_rng {
    uint64_t s[4];
    int has_spare;  /* Box–Muller produces pairs */
    double spare;
} sf_rng;

void sf_rng_seed(sf_rng *r, uint64_t seed);
uint64_t sf_rng_next(sf_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double sf_rng_uniform(sf_rng *r);
/* Standard normal (computed in double, then rounded to float by the fill helper). */
double sf_rng_normal(sf_rng *r);
/* x[i] = mean + std * normal, i = 0..n-1, in order. */
void sf_rng_fill_normal(sf_rng *r, float *x, size_t n, float mean, float std);
/* The same values and the same state afterwards, the Box–Muller transforms (log, sin, cos: ~85 % of
 * the time) on up to nthreads OpenMP threads; the uniforms are still drawn serially, in order. For
 * sf-denoise on a GPU, whose host cores are otherwise idle: the first block's re-noising waits for
 * the whole video's initial noise. nthreads <= 1: sf_rng_fill_normal. */
void sf_rng_fill_normal_mt(sf_rng *r, float *x, size_t n, float mean, float std, int nthreads);

#endif
