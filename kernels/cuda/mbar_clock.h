/* mbar_clock.h — the hang guard of tma.cuh's sf_mbar_wait, as plain C so that the host can test it
 * (tests/unit/test_hopper.c wait_clock): the emulation replaces sf_mbar_wait, so without this the guard's
 * arithmetic would first run on a GPU — where a version that mistook two equal readings of the coarse
 * %globaltimer for a 4.29 s wait trapped on the first wait that polled twice within one tick.
 *
 * One register of state, t0: 0 before the wait's first failed poll, then that poll's reading with its low
 * bit set (so never 0 again). The bound is passed once more than limit_ns have gone by since that poll.
 * Readings are the timer's low 32 bits: differences are exact modulo 2^32, so limit_ns must stay below
 * ~4.29e9, and a reading equal to the first (same tick) or one past it counts as no time at all. */
#ifndef SF_MBAR_CLOCK_H
#define SF_MBAR_CLOCK_H

#include <stdint.h>
#include <stdlib.h>

/* The hang guard's bound (kernels take it as an argument): $SF_MBAR_TIMEOUT_NS as given to the host (env,
 * NULL when unset): unset, empty or not a number → 3 s; 0 → no bound (debuggers, compute-sanitizer); else
 * the value, at most 4e9 (the clock's 32-bit differences) and at least 1 ms (a shorter bound would trap
 * on a loaded GPU's ordinary waits). */
#define SF_MBAR_DEFAULT_NS 3000000000u
static inline uint32_t sf_mbar_limit_ns(const char *env) {
    if (!env || !*env) return SF_MBAR_DEFAULT_NS;
    char *end;
    const double v = strtod(env, &end);
    if (end == env || *end || !(v >= 0)) return SF_MBAR_DEFAULT_NS;
    if (v == 0) return 0;
    return v < 1e6 ? 1000000u : v > 4e9 ? 4000000000u : (uint32_t)v;
}
/* The bound this process's launches pass: $SF_MBAR_TIMEOUT_NS as above. */
static inline uint32_t sf_mbar_limit_env(void) { return sf_mbar_limit_ns(getenv("SF_MBAR_TIMEOUT_NS")); }

/* One poll's step: starts the clock at the first call, runs `expire` (a statement) once the bound is
 * passed. A statement macro, not a function: with an inline function returning the verdict, ptxas
 * serialises the warp-specialised attention's wgmma products (C7512, too few registers); this form
 * compiles as the hand-written loop did. */
#define SF_MBAR_CLOCK_STEP(t0, now, limit_ns, expire)                                                          \
    do {                                                                                                     \
        if (!(t0)) (t0) = (now) | 1u;                                                                        \
        else if ((uint32_t)((now) - ((t0) & ~1u)) > (uint32_t)(limit_ns)) { expire; }                        \
    } while (0)

#endif
