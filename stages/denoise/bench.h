/* bench.h — `sf-denoise --bench`: CPU timing of DiT block-forwards and peak RSS.
 *   tiny:        the model in --model-dir (e.g. tests/golden/model), 3-frame blocks of the golden
 *                8×12 latent (72 tokens): ms for block 0 (72 keys) and block 2 (216 keys).
 *   1.3b-layer:  one Wan2.1-1.3B-size layer (dim 1536, ffn 8960, 12 heads, text_dim 4096) with
 *                random bf16 weights: ms for one block-0 forward (after a warm-up one) of the real 60×104
 *                latent (4680 tokens; --bench-tokens N for others) (and ×30 as a full-model estimate),
 *                labelled with the CPU mode (fast, exact, bf16: kernels/parallel.h).
 *   1.3b:        the whole Wan2.1-1.3B DiT (30 layers) with random bf16 weights on a GPU (--device
 *                cuda): one warm-up and one timed 21-frame video (7 blocks × (4 steps + refresh) =
 *                35 forwards), ms per forward and per block, total s, DiT-only FPS, GPU memory.
 *   attn:        the self-attention alone at full size on a GPU, every path (bench_attn.c).
 *   glue:        the norm / RoPE / residual kernels alone at full size on a GPU, TB/s against a device
 *                copy (bench_glue.c).
 *   kvc:         one eviction of --kv-compress, then one compression of --pc-budget, at full size on a GPU, per
 *                part and per block (bench_kvc.c).
 * cuda_ordinal −1 = CPU, N = cuda:N (bench_video.c).
 * Prints one line per figure on stdout. Used by tests/bench/run.sh. */
#ifndef SF_DENOISE_BENCH_H
#define SF_DENOISE_BENCH_H

#include "sf.h"
#include "stages/denoise/dit.h"

/* The full-size GPU attention bench (bench_attn.c: `--bench attn`, `attn-small`): cuDNN and sfpipe's
 * fused kernels (mma.sync, wgmma; plain and with the probability mass), ms and TFLOP/s. */
sf_status sf_denoise_bench_attn(int cuda_ordinal, int small, sf_err *err);

/* The glue kernels at full size on a GPU (bench_glue.c: `--bench glue`, `glue-small`): ms, TB/s,
 * share of a device copy's rate, ms per forward. */
sf_status sf_denoise_bench_glue(int cuda_ordinal, int small, sf_err *err);

/* --kv-compress's eviction at full size on a GPU (bench_kvc.c: `--bench kvc`, `kvc-small`): ms per part, per block. */
sf_status sf_denoise_bench_kvc(int cuda_ordinal, int small, sf_err *err);

/* The median of n timings (sorts ms in place): the GPU benches' figure. */
float sf_bench_median_ms(float *ms, int n);

/* The full-size GPU video bench (bench_video.c). */
sf_status sf_denoise_bench_video(const sf_dit_weights *w, int cuda_ordinal, sf_err *err);

/* tokens: 1.3b-layer's tokens per 3-frame block (a multiple of 3; the latent frame is laid out as
 * near 104:60 as its factors allow). */
sf_status sf_denoise_bench(const char *kind, const char *model_dir, int nthreads, int cuda_ordinal, long tokens,
                           int fp8, sf_err *err);

#endif
