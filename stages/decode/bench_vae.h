/* bench_vae.h — `sf-decode --bench 1.3b|tiny|taehv --device cuda[:N]`: the GPU VAE decoder (taehv: the
 * TAEHV tiny decoder) on one 21-latent-frame video with random weights; prints seconds per block, total
 * and device memory on stdout. Implemented in bench_vae.c; run by tests/gpu/check.sh. */
#ifndef SF_BENCH_VAE_H
#define SF_BENCH_VAE_H

#include "sf.h"

sf_status sf_decode_bench(const char *kind, int cuda_ordinal, sf_err *err);

#endif
