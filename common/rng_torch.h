/* rng_torch.h — the normals PyTorch's torch.randn draws on a CUDA device, computed on the CPU.
 *
 * The reference seeds once (torch.manual_seed) and draws its initial noise and every re-noising
 * draw with torch.randn / randn_like on the GPU. That stream is Philox4x32-10 (Salmon et al. 2011)
 * laid out as PyTorch's distribution kernels lay it out (aten/src/ATen/native/cuda/
 * DistributionTemplates.h, calc_execution_policy and distribution_elementwise_grid_stride_kernel):
 *
 *   block 256 threads, grid = min(ceil(numel / 256), sms · (threads_per_sm / 256)) blocks, S = 256 · grid;
 *   thread t starts cuRAND's curand_init(seed, subsequence t, offset): counter (offset/4 + i, t), key seed;
 *   its i-th curand_normal4 call (i = 0, 1, …) is Box–Muller on the 4 words of Philox(counter + i):
 *   (w0, w1) → (sin·r, cos·r), (w2, w3) → (sin·r, cos·r), u = w·2⁻³² + 2⁻³³, v = w·2π·2⁻³² + π·2⁻³²;
 *   element li = t + S·(4i + k) takes component k of thread t's call i;
 *   each launch advances the generator's offset by 4 · ceil(numel / (4·S)).
 *
 * So the values depend on the seed, the offset and, once numel passes one wave (4·S elements per call
 * row), on the card's SM count and threads per SM: an H100 SXM or H200 has 132 SMs of 2048 threads.
 * On the GPU the sine and cosine are the __sincosf hardware approximation; here they are sinf/cosf, so
 * a value can differ from the card's in its last float bits, and a bf16-rounded one (the reference
 * draws bf16) by one bf16 step in a small fraction of elements (tests/gpu measures it on the device).
 * Tested by tests/unit/test_rng_torch.c (Random123's Philox known answers; torch.randn values printed in
 * PyTorch's issue tracker; the element mapping against a thread-by-thread simulation). */
#ifndef SF_RNG_TORCH_H
#define SF_RNG_TORCH_H

#include <stddef.h>
#include <stdint.h>

/* Philox4x32-10: out = the 10-round bijection of ctr under key. */
void sf_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* A CUDA default generator as torch.manual_seed(seed) leaves it (offset 0), on a card of `sms`
 * multiprocessors with `threads_per_sm` threads each (the launch grid's cap). */
typedef struct sf_torch_cuda_rng {
    uint64_t seed;
    uint64_t offset; /* philox_offset_per_thread: a multiple of 4 */
    int sms, threads_per_sm;
} sf_torch_cuda_rng;

#define SF_TORCH_CUDA_SMS_H100 132 /* H100 SXM and H200: the reference's cards */
#define SF_TORCH_CUDA_THREADS_PER_SM 2048

/* The offset one torch.randn of numel elements (float, half or bfloat16) takes from the generator. */
uint64_t sf_torch_cuda_randn_increment(const sf_torch_cuda_rng *g, int64_t numel);
/* Elements [begin, end) of torch.randn(numel) drawn at g->offset, into out[0 .. end-begin), without
 * advancing g. bf16: round each value to bfloat16 (nearest even), as a bf16 draw stores it. Threads:
 * OpenMP threads for the transforms (<= 1: serial); the values do not depend on it. */
void sf_torch_cuda_randn_range(const sf_torch_cuda_rng *g, int64_t numel, int64_t begin, int64_t end, int bf16,
                               float *out, int threads);
/* The whole draw, then g->offset advanced as PyTorch advances it. */
void sf_torch_cuda_randn(sf_torch_cuda_rng *g, int64_t numel, int bf16, float *out, int threads);

#endif
