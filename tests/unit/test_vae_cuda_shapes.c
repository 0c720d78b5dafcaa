/* test_vae_cuda_shapes.c — sf-decode's GPU decoder (stages/decode/vae_cuda.c, kernels/cuda/vae_glue.cu,
 * conv_cudnn.c) against the CPU decoder (stages/decode/vae.c) on model shapes other than the golden tiny
 * model's (test_vae_cuda.c covers that one: base width 8, z 16, 8×12 latents). Each case makes a random
 * f32 VAE of the Wan layout (tools/mkmodel/mkmodel.h sf_mk_vae_params(base, z): widths 4·base, 2·base,
 * base; two temporal and three spatial ×2 stages; sf-mkmodel's initialisation, fixed seed) in an in-memory
 * container, loads it once (sf_vae_new_from: the GPU decoder borrows its config and weights), and decodes
 * the same random latent frames on both: the CPU all at once, the GPU in the blocks the case names (so the
 * causal caches are handed over between calls). Held: the frame counts (1 + 4·(n − 1), and
 * sf_vae_cuda_frames_for before each call), the f32 video within SF_TOL_VAE_BF16 (max|Δ| ≤ 0.05 +
 * 0.05·max|ref|, the golden test's bound), the 8-bit frames within SF_TOL_VAE_U8 levels and equal to the
 * mapping of the GPU's own video. The CPU video must be a meaningful reference: not flat, and mostly
 * inside the clamp to [−1, 1] (a saturated frame would hide any error). sf-mkmodel's initialisation needs
 * no rescaling for that: the RMS norm before every conv keeps the ~40-conv stack in range, and the videos
 * have a std of 0.37-0.46 with 1-4 % of the values clamped (clean runs: max|Δ| 0.025-0.046, u8 3-6 levels).
 *
 * The cases cover what the code treats as a parameter: base widths 8, 16, 24 and 96 (the real model's:
 * the mid-block attention's single head of 384), z dims 8, 16, 24 (the GPU decoder needs every width a
 * multiple of 8 for cuDNN's bf16 NDHWC convolutions: base 12 or z 4 / 12 must be refused at
 * sf_vae_cuda_new with one clear line, nothing allocated); latents 5×7, 6×10, 3×5, 2×3 and 1×1 (odd, not
 * multiples of 8; the mid-block attention over 35, 60, 15, 6, 1 tokens; the RMS norm's lane groups at
 * 3 to 48 vectors a pixel); 2 and 3 latent frames (the first frame's 'Rep' rule, then steady frames
 * through time_conv's cache); the bf16 un-scaling of the real pipeline; the per-frame convolutions
 * ($SF_VAE_FRAME_CONVS=1) beside the batched ones.
 *
 * Built twice like test_vae_cuda.c: test_vae_cuda_shapes (the real CUDA backend; SKIPs without a GPU; in
 * the GPU bundle, Makefile GPU_CHECK_TESTS) and test_vae_shapes_emu (-DSF_TEST_EMU: the CPU emulation of
 * the kernels, cuBLASLt and cuDNN, kernels/cuda/emu/, in every `make test`, ~5 s). */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "stages/decode/vae.h"
#include "stages/decode/vae_cuda.h"
#include "tools/mkmodel/mkmodel.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAXB = 4 };

/* A model and a run. */
typedef struct vae_case {
    const char *name;
    int base, z;          /* sf_mk_vae_params(base, z) */
    int h, w;             /* latent H, W */
    int frames;           /* latent frames: the first, then steady ones */
    int blocks[MAXB];     /* the GPU's decode calls, latent frames each (0 ends; their sum is `frames`) */
    int bf16_unscale;     /* the real bf16 pipeline's un-scaling (sf-decode --bf16) */
    int frame_convs;      /* $SF_VAE_FRAME_CONVS=1: one cuDNN call per output frame */
} vae_case;

static float urand(uint64_t *r) { /* xorshift64, uniform in [-1, 1) */
    *r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
    return (float)((double)(*r >> 11) / 4503599627370496.0 - 1.0);
}

/* The random VAE of c (f32, seed 5) in an in-memory container, loaded for h×w latents with the CPU
 * decoder's state (2 threads). NULL on failure (recorded). */
static sf_vae *model_make(const vae_case *c) {
    sf_err err = {{0}};
    sf_mk_params p = {0};
    sf_vae *v = NULL;
    sf_tfile *tf = NULL;
    SF_CHECK_OK(sf_mk_vae_params(c->base, c->z, &p, &err), &err);
    if (!err.msg[0]) SF_CHECK_OK(sf_mk_tfile(&p, SF_F32, 5, "random-shape-vae", &tf, &err), &err);
    if (tf) SF_CHECK_OK(sf_vae_new_from(tf, c->h, c->w, 2, 1, &v, &err), &err); /* tf passes to v, also on failure */
    if (v) v->cfg.bf16_unscale = c->bf16_unscale;
    sf_mk_params_free(&p);
    return v;
}

/* The case: the CPU's video and frames against the GPU's (see the top of the file). */
static void vae_run(const vae_case *c) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    sf_vae *v = model_make(c);
    sf_vae_cuda *g = NULL;
    const int64_t H = 8 * c->h, W = 8 * c->w, P = H * W, nf = 1 + 4 * (c->frames - 1);
    const size_t ze = (size_t)(c->z * c->h * c->w), ve = (size_t)(nf * 3 * P);
    float *z = malloc(ze * c->frames * sizeof(float)), *vc = malloc(ve * sizeof(float)), *vg = malloc(ve * sizeof(float));
    uint8_t *uc = malloc(ve), *ug = malloc(ve);
    uint64_t r = 0x9E3779B97F4A7C15ull ^ (uint64_t)(c->base * 131 + c->z * 17 + c->h * 7 + c->w);
    if (!v || !z || !vc || !vg || !uc || !ug) goto done;
    for (size_t i = 0; i < ze * c->frames; i++) z[i] = 2.0f * urand(&r); /* scaled latents, |z| < 2 */
    if (c->frame_convs) setenv("SF_VAE_FRAME_CONVS", "1", 1);
    SF_CHECK_OK(sf_vae_cuda_new(v, dev, &g, &err), &err);
    unsetenv("SF_VAE_FRAME_CONVS");
    if (!g) goto done;
    int64_t no = 0;
    SF_CHECK_OK(sf_vae_decode(v, z, c->frames, vc, uc, &no, &err), &err);
    SF_CHECK_MSG(no == nf, "%s: the CPU decoded %lld frames from %d latent frames, want %lld", c->name, (long long)no,
                 c->frames, (long long)nf);
    int64_t at = 0, zi = 0;
    for (size_t i = 0; i < ve; i++) vg[i] = NAN, ug[i] = 0xAB;
    for (int b = 0; b < MAXB && c->blocks[b] && !sf_test_failures; b++) {
        const int64_t want = at == 0 ? 1 + 4 * (c->blocks[b] - 1) : 4 * c->blocks[b];
        SF_CHECK_MSG(sf_vae_cuda_frames_for(g, c->blocks[b]) == want, "%s: block %d: frames_for %lld, want %lld",
                     c->name, b, (long long)sf_vae_cuda_frames_for(g, c->blocks[b]), (long long)want);
        if (at + want > nf) {
            SF_CHECK_MSG(0, "%s: blocks of more than %d latent frames", c->name, c->frames);
            break;
        }
        SF_CHECK_OK(sf_vae_cuda_decode(g, z + (size_t)zi * ze, c->blocks[b], vg + (size_t)at * 3 * P,
                                       ug + (size_t)at * 3 * P, &no, &err), &err);
        SF_CHECK_MSG(no == want, "%s: block %d gave %lld frames, want %lld", c->name, b, (long long)no, (long long)want);
        at += no, zi += c->blocks[b];
    }
    if (sf_test_failures) goto done;
    SF_CHECK_MSG(at == nf && zi == c->frames, "%s: the GPU decoded %lld frames from %lld latent frames, want %lld from %d",
                 c->name, (long long)at, (long long)zi, (long long)nf, c->frames);
    sf_test_video_meaningful(c->name, vc, (size_t)ve); /* a meaningful reference */
    char what[160];
    snprintf(what, sizeof what, "%s: video (%lld frames of %lldx%lld)", c->name, (long long)nf, (long long)H,
             (long long)W);
    sf_test_max_close(what, vg, vc, ve, SF_TOL_VAE_BF16, SF_TOL_VAE_BF16);
    int du = 0, mism = 0;
    size_t at_du = 0;
    for (size_t i = 0; i < ve; i++) {
        const int d = abs((int)ug[i] - (int)uc[i]);
        if (d > du) du = d, at_du = i;
    }
    if (getenv("SF_TEST_VERBOSE")) fprintf(stderr, "# %s: frames_u8 max|Δ| %d levels (bound %d)\n", c->name, du, SF_TOL_VAE_U8);
    SF_CHECK_MSG(du <= SF_TOL_VAE_U8, "%s: frames_u8 max|Δ| %d levels at [%zu] (GPU %d, CPU %d), bound %d", c->name, du,
                 at_du, ug[at_du], uc[at_du], SF_TOL_VAE_U8);
    for (int64_t f = 0; f < nf; f++) /* the GPU's u8 frames (f, H, W, 3) are its video's (f, 3, H, W) mapping */
        for (int64_t ch = 0; ch < 3; ch++)
            for (int64_t p = 0; p < P; p++) {
                float q = vg[(f * 3 + ch) * P + p] * 0.5f + 0.5f;
                q = q < 0 ? 0 : q > 1 ? 1 : q;
                mism += (uint8_t)(255.0f * q) != ug[(f * P + p) * 3 + ch];
            }
    SF_CHECK_MSG(mism == 0, "%s: %d u8 values disagree with the GPU's video", c->name, mism);
done:
    sf_vae_cuda_destroy(&g);
    sf_vae_destroy(&v);
    free(z), free(vc), free(vg), free(uc), free(ug);
}

/* A shape the GPU decoder does not take: refused at sf_vae_cuda_new with one line naming the rule,
 * nothing allocated (the CPU decoder takes it). */
static void vae_refused(const vae_case *c) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    sf_vae *v = model_make(c);
    sf_vae_cuda *g = (sf_vae_cuda *)&err; /* must come back NULL */
    if (!v) return;
    sf_status s = sf_vae_cuda_new(v, dev, &g, &err);
    SF_CHECK_MSG(s == SF_E_UNSUPPORTED && g == NULL, "%s: sf_vae_cuda_new gave %s", c->name, sf_status_str(s));
    SF_CHECK_MSG(strstr(err.msg, "multiples of 8") && !strchr(err.msg, '\n'), "%s: message '%s'", c->name, err.msg);
    if (s == SF_OK) sf_vae_cuda_destroy(&g);
    sf_vae_destroy(&v);
}

/* base 8 (the golden's), z 16, 5×7 latents (35 attention tokens), 3 latent frames → 9, the GPU in blocks of
 * 1 and 2 */
static void test_base8_5x7(void) {
    vae_case c = {"base8_5x7", 8, 16, 5, 7, 3, {1, 2}, 0, 0};
    vae_run(&c);
}

/* base 16, z 8, 6×10 latents (60 tokens), 2 latent frames → 5 in one call, the bf16 un-scaling */
static void test_base16_z8_6x10(void) {
    vae_case c = {"base16_z8_6x10", 16, 8, 6, 10, 2, {2}, 1, 0};
    vae_run(&c);
}

/* base 24 (widths 96, 48, 24), z 24 (the un-scaling constants repeat past 16), 3×5 latents, 3 latent frames
 * in blocks of 2 and 1 */
static void test_base24_z24_3x5(void) {
    vae_case c = {"base24_z24_3x5", 24, 24, 3, 5, 3, {2, 1}, 0, 0};
    vae_run(&c);
}

/* base 8, z 16, 1×1 latents (an 8×8 video; the attention over one token, 3×3 convs on a 1×1 frame), 3
 * latent frames one call each, one cuDNN call per output frame */
static void test_base8_1x1_frame_convs(void) {
    vae_case c = {"base8_1x1_frame_convs", 8, 16, 1, 1, 3, {1, 1, 1}, 0, 1};
    vae_run(&c);
}

/* base 96: the real model's widths (384, 192, 96; the mid-block attention's single head of 384, past what
 * cuDNN's attention takes) on 2×3 latents, 2 latent frames one call each */
static void test_base96_real_widths(void) {
    vae_case c = {"base96_real_widths", 96, 16, 2, 3, 2, {1, 1}, 0, 0};
    vae_run(&c);
}

/* base 12 (head width 12), z 4, z 12: not multiples of 8 */
static void test_refusals(void) {
    const vae_case c[3] = {{"base12", 12, 16, 2, 3, 1, {1}, 0, 0},
                           {"z4", 8, 4, 2, 3, 1, {1}, 0, 0},
                           {"z12", 8, 12, 2, 3, 1, {1}, 0, 0}};
    for (int i = 0; i < 3; i++) vae_refused(&c[i]);
    /* a width past the GPU norm's 4096 channels: refused at init, not at the first frame (the copy of a small
       model's struct with its widest width raised: the refusal comes before any weight is read) */
    int dev = sf_test_gpu();
    if (dev < 0) return;
    const vae_case small = {"base8", 8, 16, 2, 3, 1, {1}, 0, 0};
    sf_vae *v = model_make(&small);
    if (!v) return;
    sf_vae wide = *v;
    wide.cfg.top = 4104;
    sf_err err = {{0}};
    sf_vae_cuda *g = (sf_vae_cuda *)&err; /* must come back NULL */
    sf_status s = sf_vae_cuda_new(&wide, dev, &g, &err);
    SF_CHECK_MSG(s == SF_E_UNSUPPORTED && g == NULL && strstr(err.msg, "4096") && !strchr(err.msg, '\n'),
                 "width 4104: sf_vae_cuda_new gave %s, '%s'", sf_status_str(s), err.msg);
    if (s == SF_OK) sf_vae_cuda_destroy(&g);
    sf_vae_destroy(&v);
}

static const sf_test tests[] = {
    {"base8_5x7", test_base8_5x7},
    {"base16_z8_6x10", test_base16_z8_6x10},
    {"base24_z24_3x5", test_base24_z24_3x5},
    {"base8_1x1_frame_convs", test_base8_1x1_frame_convs},
    {"base96_real_widths", test_base96_real_widths},
    {"refusals", test_refusals},
};
SF_TEST_MAIN(tests)
