/* rng.c — xoshiro256** (Blackman & Vigna, public domain algorithm) seeded with splitmix64;
 * Box–Muller normals. Tested by tests/unit/test_core.c. */
#include "rng.h"

#include <math.h>
#include <stdlib.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sf_rng_seed(sf_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sf_rng_next(sf_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sf_rng_uniform(sf_rng *r) { return (double)(sf_rng_next(r) >> 11) * 0x1.0p-53; }

double sf_rng_normal(sf_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1;
    do u1 = sf_rng_uniform(r);
    while (u1 <= 0.0);
    double u2 = sf_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

void sf_rng_fill_normal(sf_rng *r, float *x, size_t n, float mean, float std) {
    for (size_t i = 0; i < n; i++) x[i] = mean + std * (float)sf_rng_normal(r);
}

void sf_rng_fill_normal_mt(sf_rng *r, float *x, size_t n, float mean, float std, int nthreads) {
    enum { CHUNK = 1 << 15 }; /* pairs per round: 512 KiB of uniforms */
    double *u = nthreads > 1 && n >= 8192 ? malloc(sizeof(double) * 2 * CHUNK) : NULL; /* a latent frame at 832x480: 99840 */
    if (!u) {
        sf_rng_fill_normal(r, x, n, mean, std);
        return;
    }
    size_t i = 0, np = 0;
    if (r->has_spare) x[i++] = mean + std * (float)sf_rng_normal(r); /* the pending sine of the last pair */
    while (n - i >= 2) {
        np = (n - i) / 2 < CHUNK ? (n - i) / 2 : CHUNK;
        for (size_t p = 0; p < np; p++) { /* serial: the stream's order (sf_rng_normal's draws, rejection included) */
            double u1;
            do u1 = sf_rng_uniform(r);
            while (u1 <= 0.0);
            u[2 * p] = u1;
            u[2 * p + 1] = sf_rng_uniform(r);
        }
        float *o = x + i;
        const long npl = (long)np;
#pragma omp parallel for num_threads(nthreads) schedule(static)
        for (long p = 0; p < npl; p++) { /* sf_rng_normal's arithmetic exactly: cos first, then the sine */
            double rad = sqrt(-2.0 * log(u[2 * p])), th = 6.283185307179586 * u[2 * p + 1];
            o[2 * p] = mean + std * (float)(rad * cos(th));
            o[2 * p + 1] = mean + std * (float)(rad * sin(th));
        }
        i += 2 * np;
    }
    if (np) { /* the state as sf_rng_normal leaves it: the last pair's sine, consumed */
        const double rad = sqrt(-2.0 * log(u[2 * np - 2]));
        r->spare = rad * sin(6.283185307179586 * u[2 * np - 1]);
    }
    if (i < n) x[i] = mean + std * (float)sf_rng_normal(r); /* an odd end: its sine stays pending */
    free(u);
}
