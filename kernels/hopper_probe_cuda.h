/* hopper_probe_cuda.h — small kernels that exercise, one at a time, the Hopper machinery the
 * hand-written attention kernels are built from (kernels/cuda/hopper_probe.cu): warpgroup MMA (wgmma)
 * with each operand form the kernels use, TMA tile loads through an mbarrier ring, and named-barrier
 * turns. Each is checked exactly against a CPU computation by tests/unit/test_hopper.c — on the
 * emulation in every build, on an sm_90 GPU by test_hopper_gpu (tests/gpu/check.sh, part attn), so a
 * failure of attn_mass_ws.cu on first contact with hardware can be told apart: layouts (wgmma),
 * copies (TMA), or synchronisation (barriers).
 * All return SF_E_UNSUPPORTED on a device without sm_90 features (or a CPU-only build). */
#ifndef SF_HOPPER_PROBE_CUDA_H
#define SF_HOPPER_PROBE_CUDA_H

#include "cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One warpgroup's product from 128-byte-swizzled shared memory, a and b bf16 row-major on the device,
 * d f32 row-major on the device:
 *   mode 0  S = A·Bᵀ, A 64×128, B 64×128 (both K-major, from shared memory: wgmma SS), d 64×64;
 *   mode 1  the same with A in registers (ldmatrix → wgmma RS, as the attention kernels' Q·Kᵀ);
 *   mode 2  O = A·B, A 64×64 in registers, B 64×128 N-major (wgmma RS with B transposed, as P·V), d 64×128;
 *   mode 3  the same with B 64×64, d 64×64;
 *   mode 4  S = A·Bᵀ, A 64×128 in registers, B 128×128 K-major (RS, n = 128: the 128-key tiles), d 64×128. */
sf_status sf_hopper_probe_wgmma(const sf_cuda_ctx *ctx, int mode, const void *a, const void *b, float *d, sf_err *err);

/* TMA through a one-stage mbarrier ring, four rounds: box r = 8 rows × 64 columns of the bf16 matrix m
 * (rows × cols, pitch elements apart) at column 64·(r % 2), row 6·r − 3, read back through the swizzle
 * into out[r·512 + row·64 + col] (f32; outside the matrix: 0). */
sf_status sf_hopper_probe_tma(const sf_cuda_ctx *ctx, const void *m, int64_t rows, int64_t cols, int64_t pitch,
                              float *out, sf_err *err);

/* Two warps taking 4 turns each on named barriers, warp 0 first: out[8] = the warp of each turn. */
sf_status sf_hopper_probe_turns(const sf_cuda_ctx *ctx, float *out, sf_err *err);

#ifdef __cplusplus
}
#endif

#endif
