/* bench.h — `sf-encode --bench xxl --device cuda[:N]`: ms per 512-token prompt of the full-size
 * umT5-XXL encoder with random bf16 weights on a GPU, and the GPU memory it holds (bench.c). Prints
 * one line per figure on stdout; tests/gpu/check.sh runs it. cuda_ordinal −1 (the CPU) is refused:
 * the fp32 CPU encoder takes minutes per full-size prompt. */
#ifndef SF_ENCODE_BENCH_H
#define SF_ENCODE_BENCH_H

#include "sf.h"

sf_status sf_encode_bench(const char *kind, int cuda_ordinal, sf_err *err);

#endif
