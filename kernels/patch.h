/* patch.h — the DiT's patch embedding input layout and the head's unpatchify.
 * Patch size (1, ph, pw); a latent block x: (F, C, H, W) f32 (pipeline [B,F,C,H,W] order, B = 1).
 * Tokens are ordered (f, h', w') with h' < H/ph, w' < W/pw.
 *   sf_patchify_cpu:   P[tok, c·ph·pw + q·pw + r] = x[f, c, ph·h'+q, pw·w'+r]   (Conv3d weight order)
 *     P: (F·H/ph·W/pw, C·ph·pw); the conv itself is then a GEMM with W_pe (dim, C·ph·pw).
 *   sf_unpatchify_cpu: y[f, c, ph·h'+q, pw·w'+r] = O[tok, (q·pw + r)·C + c]       (head order, c fastest)
 *     O: (F·H/ph·W/pw, ph·pw·C). H, W must be multiples of ph, pw (caller checks).
 * Mirrors CausalWanModel's patch_embedding (Conv3d) and unpatchify. Tested by test_kernels.c. */
#ifndef SF_PATCH_H
#define SF_PATCH_H

#include <stdint.h>

void sf_patchify_cpu(const float *x, int F, int C, int H, int W, int ph, int pw, float *P);
void sf_unpatchify_cpu(const float *O, int F, int C, int H, int W, int ph, int pw, float *y);

#endif
