/* test_taehv_cuda.c — the GPU TAEHV decoder (stages/decode/taehv_cuda.c) against the golden reference decode
 * (tests/golden/expect/taehv.safetensors from demo_utils/taehv.py; two checkpoints: taehv_tiny.pth, widths
 * 16/16/8/8 and strides 1, 2, 2 → 4 frames a latent frame, 3 trimmed; taehv_t2.pth, 8/8/8/8 and 1, 1, 2 → 2,
 * 1 trimmed; 5 latent frames of 4×6) and against the CPU decoder (stages/decode/taehv.c) on other shapes:
 * random checkpoints with widths not multiples of 8 (12/12/4/4, a first conv to 8 so that a MemBlock has a
 * 1×1 skip), latent widths 12 and 8, odd latent sizes (3×5, 5×3, 1×1), strides 2-1-1 and 1-1-1 (no trim).
 * Held: frame counts (sf_taehv_cuda_frames_for before every call), the layer outputs the golden holds
 * (layers 1, 3 and the TGrows 7 and 13, frame by frame through the debug tap), the f32 video and the uint8
 * frames within the bf16 bounds below, the uint8 frames equal to the mapping of the GPU's own video; decoding
 * in blocks (3+2, 1+2+2) and pipelined (two latent frames in flight) gives the bytes of one-shot; on the
 * emulation, no device allocation in the frame loop and no stream wait in a submit.
 *
 * Tolerances (max|Δ| ≤ atol + rtol·max|ref|, sf_test_max_close): SF_TOL_VAE_BF16 = 5e-2 each, the Wan VAE's
 * GPU bound (SF_TOL_VAE_U8 = 13 levels for the uint8 frames: 127.5 · 0.1 + 1 of truncation). The same
 * numerics make the same error: bf16 activations and weights (a relative 2^-9 each), fp32 accumulation, one
 * rounding per conv output, 35 convs on the path of a pixel (27 in the 9 MemBlocks; the VAE: ~40), no norm to damp
 * or amplify it. Measured on the emulation (the same bf16 rounding points as the GPU): golden layers 0.3-1.7 %
 * of max|ref| (the deepest, TGrow 13, the most), golden video max|Δ| 0.042 (tiny) / 0.035 (t2) with nmse
 * 5e-5 / 2e-5 — a rms error of ~0.5 %, the worst of ~80 k values 4-5 rms out — uint8 5 / 4 levels; the random
 * checkpoints 0.009-0.037 and 1-4 levels: under half the bound. Planted bugs miss it by far: every sub-frame
 * of a TGrow from its first chunk (max|Δ| 1.0 of max|ref| at layer 13), the 1×1 skip dropped (1.25), a bias
 * lost in the upload (0.36 at layer 1), a frame too few trimmed (the counts, 255 levels).
 * A failure names the tensor, the first bad index, both values and max|Δ| (sf_test_max_close).
 *
 * Built twice: test_taehv_cuda (real CUDA; SKIPs without a GPU, tests/gpu/check.sh runs it) and, with
 * -DSF_TEST_EMU, test_taehv_emu — the whole GPU decoder on the CPU emulation of the kernels, cuBLASLt and
 * cuDNN (kernels/cuda/emu), in every `make test`. refusal runs everywhere; refuses_layout: an Upsample
 * without its TGrow, which the CPU decoder takes, is refused at init. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "taehv_golden.h"
#include "device.h"
#include "tfile.h"
#ifdef SF_TEST_EMU
#include "cuda/emu/sf_emu.h"
#endif
#include "stages/decode/taehv.h"
#include "stages/decode/taehv_cuda.h"
#include "tools/mkmodel/mkmodel.h"

#include <math.h>
#include <stdio.h>

#define TOL SF_TOL_VAE_BF16

/* max |u8 − ref| (ref: u8 [f, P, 3] or, with refv, the mapping of the video refv [f, 3, P]); 1 within bound. */
static int u8_close(const char *what, const uint8_t *u8, const uint8_t *ref, const float *refv, int64_t frames, int64_t P,
                    int bound) {
    int du = 0;
    int64_t at = 0;
    for (int64_t f = 0; f < frames; f++)
        for (int64_t ch = 0; ch < 3; ch++)
            for (int64_t p = 0; p < P; p++) {
                const int64_t i = (f * P + p) * 3 + ch;
                const int r = refv ? taehv_u8_of(refv[(f * 3 + ch) * P + p]) : ref[i], d = abs((int)u8[i] - r);
                if (d > du) du = d, at = i;
            }
    if (getenv("SF_TEST_VERBOSE")) fprintf(stderr, "# %s: max|Δ| %d levels (bound %d)\n", what, du, bound);
    SF_CHECK_MSG(du <= bound, "%s: max|Δ| %d levels at byte %lld (got %d), bound %d", what, du, (long long)at, u8[at],
                 bound);
    return du <= bound;
}

/* The uint8 frames (f, P, 3) are the mapping of the video (f, 3, P) exactly. */
static void u8_is_video(const char *what, const uint8_t *u8, const float *v, int64_t frames, int64_t P) {
    int64_t mism = 0, first = -1;
    for (int64_t f = 0; f < frames; f++)
        for (int64_t ch = 0; ch < 3; ch++)
            for (int64_t p = 0; p < P; p++)
                if (taehv_u8_of(v[(f * 3 + ch) * P + p]) != u8[(f * P + p) * 3 + ch] && mism++ == 0) first = (f * P + p) * 3 + ch;
    SF_CHECK_MSG(mism == 0, "%s: %lld u8 values disagree with the video, first at byte %lld", what, (long long)mism,
                 (long long)first);
}

/* ---- the golden --------------------------------------------------------------------------------- */

static void golden_case(const char *cs, const char *model, int time_up) {
    sf_err err = {{0}};
    sf_tfile *g = NULL, *tf = NULL;
    sf_taehv *t = NULL;
    sf_taehv_cuda *gd = NULL;
    float *z = NULL, *ref = NULL, *one = NULL, *blk = NULL;
    uint8_t *u8 = NULL, *u8b = NULL;
    char name[64];
    int ord = 0;
    if (!sf_test_pick_gpu(&ord)) {
        SF_TEST_SKIP("no CUDA device");
        return;
    }
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath("expect/taehv.safetensors"), &g, &err), &err);
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath(model), &tf, &err), &err);
    if (!g || !tf) goto done;
    SF_CHECK_OK(sf_taehv_new_from(tf, 4, 6, 1, 0, &t, &err), &err); /* config + weights only: the GPU borrows them */
    if (!t) goto done;
    SF_CHECK_OK(sf_taehv_cuda_new(t, ord, &gd, &err), &err);
    if (!gd) goto done;
    printf("# GPU TAEHV %s: %.2f MiB of device memory\n", cs, sf_taehv_cuda_bytes(gd) / 1048576.0);
    const sf_taehv_config *c = sf_taehv_config_of(t);
    const int64_t T = 5, frames = time_up * T - (time_up - 1), P = 32 * 48, fe = 3 * P, ze = 16 * 4 * 6;
    int64_t nz = 0, nv = 0, no = 0;
    snprintf(name, sizeof name, "%s.latents", cs);
    z = sf_test_golden_f32(g, name, &nz);
    snprintf(name, sizeof name, "%s.video", cs);
    ref = sf_test_golden_f32(g, name, &nv);
    SF_CHECK_MSG(nz == T * ze && nv == frames * fe && c->time_up == time_up, "%s: golden latents %lld, video %lld, time_up %d",
                 cs, (long long)nz, (long long)nv, c->time_up);
    if (!z || !ref || nz != T * ze || nv != frames * fe) goto done;
    one = malloc(sizeof(float) * nv), blk = malloc(sizeof(float) * nv), u8 = malloc(nv), u8b = malloc(nv);
    if (!one || !blk || !u8 || !u8b) goto done;

    taehv_tap_ctx tc = {g, cs, TOL, 0};
    sf_taehv_cuda_set_tap(gd, taehv_golden_tap, &tc);
    SF_CHECK(sf_taehv_cuda_frames_for(gd, T) == frames && sf_taehv_cuda_frames_for(gd, 1) == 1);
#ifdef SF_TEST_EMU
    const unsigned long long a0 = sf_emu_device_allocs();
#endif
    SF_CHECK_OK(sf_taehv_cuda_decode(gd, z, T, one, u8, &no, &err), &err);
#ifdef SF_TEST_EMU
    SF_CHECK_MSG(sf_emu_device_allocs() == a0, "%s: %llu device allocations in the frame loop", cs, sf_emu_device_allocs() - a0);
#endif
    SF_CHECK_MSG(no == frames, "%s: %lld frames, want %lld", cs, (long long)no, (long long)frames);
    /* every frame of the tapped layers the GPU makes: 1 conv, 3 MemBlock, 7 and 13 TGrow (6, the Upsample
       before TGrow 7, is never made: the TGrow's frames are upsampled out of its low-resolution output) */
    const int s7 = c->layers[7].stride, s13 = c->layers[13].stride;
    const int want_taps = (int)(T + T + T * s7 + T * s7 * s13);
    SF_CHECK_MSG(tc.checked == want_taps, "%s: %d layer frames checked, want %d", cs, tc.checked, want_taps);
    sf_taehv_cuda_set_tap(gd, NULL, NULL);
    snprintf(name, sizeof name, "%s.video", cs);
    sf_test_max_close(name, one, ref, (size_t)nv, TOL, TOL);
    snprintf(name, sizeof name, "%s frames_u8", cs);
    u8_close(name, u8, NULL, ref, frames, P, SF_TOL_VAE_U8);
    u8_is_video(name, u8, one, frames, P);

    /* streamed in blocks 3 + 2 and 1 + 2 + 2: the same bytes */
    const int plans[2][3] = {{3, 2, 0}, {1, 2, 2}};
    for (int pl = 0; pl < 2; pl++) {
        SF_CHECK_OK(sf_taehv_cuda_reset(gd, &err), &err);
        int64_t at = 0, zi = 0;
        memset(blk, 0, sizeof(float) * nv), memset(u8b, 0, nv);
        for (int b = 0; b < 3 && plans[pl][b]; b++) {
            const int k = plans[pl][b];
            const int64_t want = sf_taehv_cuda_frames_for(gd, k);
            SF_CHECK_OK(sf_taehv_cuda_decode(gd, z + zi * ze, k, blk + at * fe, u8b + at * fe, &no, &err), &err);
            SF_CHECK_MSG(no == want, "%s: block %d gave %lld frames, frames_for said %lld", cs, b, (long long)no,
                         (long long)want);
            zi += k, at += no;
        }
        SF_CHECK_MSG(at == frames && !memcmp(one, blk, sizeof(float) * nv) && !memcmp(u8, u8b, nv),
                     "%s: streamed plan %d differs from one-shot", cs, pl);
    }
    /* pipelined (sf-decode's GPU loop): latent frame t+1 submitted before t's frames are received — the same
       bytes, in order; a third frame in flight, a blocking decode with frames in flight, a receive of frames
       not asked for and one with none in flight are refused */
    SF_CHECK_OK(sf_taehv_cuda_reset(gd, &err), &err);
    memset(u8b, 0, nv);
    int64_t at = 0;
#ifdef SF_TEST_EMU
    const unsigned long long w0 = sf_emu_host_waits();
#endif
    SF_CHECK_OK(sf_taehv_cuda_submit(gd, z, 0, 1, &err), &err);
    for (int64_t t2 = 1; t2 <= T; t2++) {
        if (t2 < T) SF_CHECK_OK(sf_taehv_cuda_submit(gd, z + t2 * ze, 0, 1, &err), &err);
#ifdef SF_TEST_EMU
        SF_CHECK_MSG(sf_emu_host_waits() == w0, "%llu stream waits by submits", sf_emu_host_waits() - w0);
#endif
        if (t2 == 1) {
            SF_CHECK(sf_taehv_cuda_submit(gd, z, 0, 1, &err) == SF_E_ARG && strstr(err.msg, "in flight"));
            SF_CHECK(sf_taehv_cuda_decode(gd, z, 1, NULL, u8b, &no, &err) == SF_E_ARG);
            SF_CHECK(sf_taehv_cuda_receive(gd, one, NULL, &no, &err) == SF_E_ARG); /* f32 frames were not asked for */
        }
        SF_CHECK_OK(sf_taehv_cuda_receive(gd, NULL, u8b + at * fe, &no, &err), &err);
        SF_CHECK_MSG(no == (t2 == 1 ? 1 : time_up), "%s: latent frame %lld gave %lld frames", cs, (long long)t2 - 1,
                     (long long)no);
        at += no;
    }
    SF_CHECK(sf_taehv_cuda_receive(gd, NULL, u8b, &no, &err) == SF_E_ARG && strstr(err.msg, "no latent frame"));
    SF_CHECK_MSG(at == frames && !memcmp(u8, u8b, nv), "%s: pipelined submit/receive differs from one-shot", cs);
    /* a reset with a frame in flight drops it: the next video starts fresh */
    SF_CHECK_OK(sf_taehv_cuda_submit(gd, z, 0, 1, &err), &err);
    SF_CHECK_OK(sf_taehv_cuda_reset(gd, &err), &err);
    SF_CHECK(sf_taehv_cuda_frames_for(gd, 1) == 1);
    SF_CHECK_OK(sf_taehv_cuda_decode(gd, z, 1, NULL, u8b, &no, &err), &err);
    SF_CHECK_MSG(no == 1 && !memcmp(u8, u8b, (size_t)fe), "%s: the first frame after a reset with one in flight", cs);
done:
    free(z), free(ref), free(one), free(blk), free(u8), free(u8b);
    sf_taehv_cuda_destroy(&gd);
    sf_taehv_destroy(&t);
    sf_tfile_destroy(&g);
}

static void test_taehv_cuda_golden(void) { golden_case("tiny", "model/taehv_tiny.pth", 4); }
static void test_taehv_cuda_golden_t2(void) { golden_case("t2", "model/taehv_t2.pth", 2); }

/* ---- other shapes against the CPU decoder ------------------------------------------------------- */

typedef struct shape_case {
    const char *name;
    int64_t z, c0, nf[4];
    int strides[3], mems;
    int64_t h, w;
    int frames;
    int blocks[4]; /* the GPU's decode calls, latent frames each (0 ends) */
} shape_case;

/* A random f32 TAEHV of c (tools/mkmodel sf_mk_taehv_params, sf-mkmodel's initialisation, seed 9) in an
 * in-memory file, loaded with the CPU decoder's state (2 threads). Its last conv's bias is moved to 0.5 + b:
 * the real decoder's output is ~[0, 1], a random one's near 0, which 2·x − 1 would clamp at −1 (a saturated
 * frame hides any error). NULL on failure (recorded). */
static sf_taehv *random_taehv(const shape_case *c) {
    sf_err err = {{0}};
    sf_mk_params p = {0};
    sf_tfile *tf = NULL;
    sf_taehv *t = NULL;
    SF_CHECK_OK(sf_mk_taehv_params(c->z, c->c0, c->nf, c->strides, c->mems, &p, &err), &err);
    if (!err.msg[0]) SF_CHECK_OK(sf_mk_tfile(&p, SF_F32, 9, "random-taehv", &tf, &err), &err);
    const sf_tensor *hb = tf && p.n ? sf_tfile_get(tf, p.v[p.n - 1].name) : NULL; /* the last conv's bias */
    SF_CHECK(hb && hb->dtype == SF_F32 && hb->ndim == 1 && hb->shape[0] == 3);
    if (hb && hb->dtype == SF_F32)
        for (int i = 0; i < 3; i++) ((float *)hb->data)[i] += 0.5f;
    if (tf) SF_CHECK_OK(sf_taehv_new_from(tf, c->h, c->w, 2, 1, &t, &err), &err); /* tf passes to t */
    sf_mk_params_free(&p);
    return t;
}

static void shape_run(const shape_case *c) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    sf_taehv *t = random_taehv(c);
    sf_taehv_cuda *g = NULL;
    float *z = NULL, *vc = NULL, *vg = NULL;
    uint8_t *uc = NULL, *ug = NULL;
    if (!t) goto done;
    const sf_taehv_config *cf = sf_taehv_config_of(t);
    const int64_t H = c->h << cf->n_up, W = c->w << cf->n_up, P = H * W, tu = cf->time_up;
    const int64_t nf = tu * c->frames - cf->trim, ze = c->z * c->h * c->w, ve = nf * 3 * P;
    SF_CHECK_MSG(tu == (int64_t)c->strides[0] * c->strides[1] * c->strides[2] && cf->n_up == 3, "%s: time_up %d", c->name,
                 cf->time_up);
    z = malloc(sizeof(float) * (size_t)(ze * c->frames)), vc = malloc(sizeof(float) * ve), vg = malloc(sizeof(float) * ve);
    uc = malloc(ve), ug = malloc(ve);
    if (!z || !vc || !vg || !uc || !ug) goto done;
    uint64_t r = 0x9E3779B97F4A7C15ull ^ (uint64_t)(c->h * 131 + c->w * 7 + c->z);
    for (int64_t i = 0; i < ze * c->frames; i++) { /* latents ~ N(0, 1)-ish: uniform in ±2.5 */
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        z[i] = (float)((double)(r >> 11) / 4503599627370496.0 * 5.0 - 2.5);
    }
    SF_CHECK_OK(sf_taehv_cuda_new(t, dev, &g, &err), &err);
    if (!g) goto done;
    int64_t no = 0, at = 0, zi = 0;
    SF_CHECK_OK(sf_taehv_decode(t, z, c->frames, vc, uc, &no, &err), &err);
    SF_CHECK_MSG(no == nf, "%s: the CPU made %lld frames, want %lld", c->name, (long long)no, (long long)nf);
    for (int64_t i = 0; i < ve; i++) vg[i] = NAN, ug[i] = 0xAB;
    for (int b = 0; b < 4 && c->blocks[b] && !sf_test_failures; b++) {
        const int64_t want = sf_taehv_cuda_frames_for(g, c->blocks[b]);
        SF_CHECK_MSG(want == tu * c->blocks[b] - (at ? 0 : cf->trim), "%s: block %d: frames_for %lld", c->name, b,
                     (long long)want);
        if (at + want > nf) break;
        SF_CHECK_OK(sf_taehv_cuda_decode(g, z + zi * ze, c->blocks[b], vg + at * 3 * P, ug + at * 3 * P, &no, &err), &err);
        SF_CHECK_MSG(no == want, "%s: block %d gave %lld frames, want %lld", c->name, b, (long long)no, (long long)want);
        at += no, zi += c->blocks[b];
    }
    if (sf_test_failures) goto done;
    SF_CHECK_MSG(at == nf && zi == c->frames, "%s: the GPU made %lld frames from %lld latent frames, want %lld from %d",
                 c->name, (long long)at, (long long)zi, (long long)nf, c->frames);
    sf_test_video_meaningful(c->name, vc, (size_t)ve); /* a meaningful reference */
    char what[160];
    snprintf(what, sizeof what, "%s: video (%lld frames of %lldx%lld)", c->name, (long long)nf, (long long)H, (long long)W);
    sf_test_max_close(what, vg, vc, (size_t)ve, TOL, TOL);
    snprintf(what, sizeof what, "%s: frames_u8", c->name);
    u8_close(what, ug, uc, NULL, nf, P, SF_TOL_VAE_U8);
    u8_is_video(what, ug, vg, nf, P);
done:
    sf_taehv_cuda_destroy(&g);
    sf_taehv_destroy(&t);
    free(z), free(vc), free(vg), free(uc), free(ug);
}

/* widths 12/12/4/4 (padded to 16/16/8/8), the first conv to 8 (stage 0's first MemBlock: 8 → 12 with its 1×1
 * skip), z 16, strides 1-2-2, 2 MemBlocks a stage; 3×5 latents (24×40 frames), 3 latent frames in blocks 1, 2 */
static void test_taehv_cuda_w12_skip_3x5(void) {
    shape_case c = {"w12_skip_3x5", 16, 8, {12, 12, 4, 4}, {1, 2, 2}, 2, 3, 5, 3, {1, 2}};
    shape_run(&c);
}

/* z 12 (the input padded to 16), widths 16/8/8/8, strides 2-1-1 (the time upsampling in the first stage:
 * every later MemBlock sees 2 frames a latent frame), 1 MemBlock a stage; 5×3 latents, 3 latent frames at once */
static void test_taehv_cuda_z12_5x3(void) {
    shape_case c = {"z12_stride2_5x3", 12, 16, {16, 8, 8, 8}, {2, 1, 1}, 1, 5, 3, 3, {3}};
    shape_run(&c);
}

/* no time upsampling (1 frame a latent frame, nothing trimmed), z 8, widths 8/8/8/8; 1×1 latents (3×3 convs on
 * 1×1 frames), 3 latent frames one call each */
static void test_taehv_cuda_t1_1x1(void) {
    shape_case c = {"t1_1x1", 8, 8, {8, 8, 8, 8}, {1, 1, 1}, 1, 1, 1, 3, {1, 1, 1}};
    shape_run(&c);
}

/* ---- profile, reproducibility, refusal --------------------------------------------------------- */

/* SF_CUDA_PROFILE=1: one profile run per latent frame, every category timed, the convolutions' FLOPs
 * counted; a profiled decoder gives the bytes of a plain one (on a GPU each autotunes its own plans: the
 * bytes cannot depend on that either). */
static void test_taehv_cuda_profile(void) {
    sf_err err = {{0}};
    sf_tfile *tf = NULL, *g = NULL;
    sf_taehv *t = NULL;
    sf_taehv_cuda *plain = NULL, *prof = NULL;
    int ord = 0;
    if (!sf_test_pick_gpu(&ord)) {
        SF_TEST_SKIP("no CUDA device");
        return;
    }
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath("expect/taehv.safetensors"), &g, &err), &err);
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath("model/taehv_tiny.pth"), &tf, &err), &err);
    if (tf) SF_CHECK_OK(sf_taehv_new_from(tf, 4, 6, 1, 0, &t, &err), &err);
    if (!t || !g) goto done;
    SF_CHECK_OK(sf_taehv_cuda_new(t, ord, &plain, &err), &err);
    setenv("SF_CUDA_PROFILE", "1", 1);
    SF_CHECK_OK(sf_taehv_cuda_new(t, ord, &prof, &err), &err);
    unsetenv("SF_CUDA_PROFILE");
    if (!plain || !prof) goto done;
    char buf[2048] = "";
    SF_CHECK(!sf_taehv_cuda_profile(plain, buf, sizeof buf));
    int64_t nz = 0, na = 0, nb = 0;
    float *z = sf_test_golden_f32(g, "tiny.latents", &nz);
    const size_t n = 5 * 3 * 32 * 48; /* 2 latent frames → 1 + 4 frames */
    uint8_t *a = malloc(n), *b = malloc(n);
    if (z && a && b) {
        SF_CHECK_OK(sf_taehv_cuda_decode(plain, z, 2, NULL, a, &na, &err), &err);
        SF_CHECK_OK(sf_taehv_cuda_decode(prof, z, 2, NULL, b, &nb, &err), &err);
        SF_CHECK_MSG(na == 5 && nb == 5 && !memcmp(a, b, n), "profiled decoder differs from the plain one");
        SF_CHECK(sf_taehv_cuda_profile(prof, buf, sizeof buf));
        SF_CHECK_MSG(!strncmp(buf, "2 latent frames,", 16), "%s", buf);
        const char *cats[] = {"3x3 convs (cuDNN)", "1x1 convs (cuBLASLt)", "ReLU + MemBlock cat", "upsampling",
                              "latent in, pixels out"};
        for (int i = 0; i < 5; i++) SF_CHECK_MSG(strstr(buf, cats[i]) != NULL, "no %s in %s", cats[i], buf);
        SF_CHECK_MSG(sf_test_prof_gflop(buf, "3x3 convs (cuDNN)") > 0, "no conv FLOPs: %s", buf);
        sf_taehv_cuda_profile_reset(prof);
        SF_CHECK(!sf_taehv_cuda_profile(prof, buf, sizeof buf));
    }
    free(z), free(a), free(b);
done:
    sf_taehv_cuda_destroy(&plain);
    sf_taehv_cuda_destroy(&prof);
    sf_taehv_destroy(&t);
    sf_tfile_destroy(&g);
}

/* Without a usable GPU: one clear line, nothing allocated. (With one: a bad ordinal.) */
static void test_taehv_cuda_refusal(void) {
    sf_err err = {{0}};
    sf_tfile *tf = NULL;
    sf_taehv *t = NULL;
    sf_taehv_cuda *g = (sf_taehv_cuda *)&err; /* must come back NULL */
    int ord = 0, has = sf_test_pick_gpu(&ord);
    SF_CHECK_OK(sf_tfile_open(sf_test_gpath("model/taehv_tiny.pth"), &tf, &err), &err);
    if (tf) SF_CHECK_OK(sf_taehv_new_from(tf, 4, 6, 1, 0, &t, &err), &err);
    if (!t) return;
    sf_status s = sf_taehv_cuda_new(t, has ? 999 : 0, &g, &err);
    SF_CHECK_MSG(s != SF_OK && g == NULL, "sf_taehv_cuda_new gave %s", sf_status_str(s));
    SF_CHECK_MSG(err.msg[0] && !strchr(err.msg, '\n'), "message: '%s'", err.msg);
    printf("# refusal: %s\n", err.msg);
    if (s == SF_OK) sf_taehv_cuda_destroy(&g);
    sf_taehv_destroy(&t);
}

/* One parameter of a hand-made state dict. */
static void padd(sf_mk_params *p, sf_mk_init init, const char *name, int ndim, int64_t d0, int64_t d1) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 16;
        p->v = realloc(p->v, p->cap * sizeof *p->v);
    }
    sf_mk_param *q = &p->v[p->n++];
    memset(q, 0, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", name);
    q->ndim = ndim, q->init = init, q->shape[0] = d0;
    if (ndim == 4) q->shape[1] = d1, q->shape[2] = q->shape[3] = 3;
}

/* A decoder the CPU loads but the GPU path does not take: an Upsample straight before the last conv (Clamp,
 * conv, ReLU, MemBlock, Upsample, conv — no TGrow): refused at sf_taehv_cuda_new with one line naming it. */
static void test_taehv_cuda_refuses_layout(void) {
    int dev = sf_test_gpu();
    if (dev < 0) return;
    sf_err err = {{0}};
    sf_mk_params p = {0};
    sf_tfile *tf = NULL;
    sf_taehv *t = NULL;
    sf_taehv_cuda *g = (sf_taehv_cuda *)&err; /* must come back NULL */
    padd(&p, SF_MK_LINEAR, "decoder.1.weight", 4, 8, 16), padd(&p, SF_MK_BIAS, "decoder.1.bias", 1, 8, 0);
    padd(&p, SF_MK_LINEAR, "decoder.3.conv.0.weight", 4, 8, 16), padd(&p, SF_MK_BIAS, "decoder.3.conv.0.bias", 1, 8, 0);
    padd(&p, SF_MK_LINEAR, "decoder.3.conv.2.weight", 4, 8, 8), padd(&p, SF_MK_BIAS, "decoder.3.conv.2.bias", 1, 8, 0);
    padd(&p, SF_MK_LINEAR, "decoder.3.conv.4.weight", 4, 8, 8), padd(&p, SF_MK_BIAS, "decoder.3.conv.4.bias", 1, 8, 0);
    padd(&p, SF_MK_LINEAR, "decoder.5.weight", 4, 3, 8), padd(&p, SF_MK_BIAS, "decoder.5.bias", 1, 3, 0);
    SF_CHECK_OK(sf_mk_tfile(&p, SF_F32, 3, "upsample-no-tgrow", &tf, &err), &err);
    if (tf) SF_CHECK_OK(sf_taehv_new_from(tf, 2, 3, 1, 0, &t, &err), &err);
    if (t) {
        const sf_taehv_config *c = sf_taehv_config_of(t);
        SF_CHECK(c->n_layers == 6 && c->layers[4].kind == SF_TAEHV_UP && c->layers[5].kind == SF_TAEHV_CONV);
        sf_status s = sf_taehv_cuda_new(t, dev, &g, &err);
        SF_CHECK_MSG(s == SF_E_UNSUPPORTED && g == NULL && strstr(err.msg, "decoder.4") && !strchr(err.msg, '\n'),
                     "sf_taehv_cuda_new gave %s, '%s'", sf_status_str(s), err.msg);
        if (s == SF_OK) sf_taehv_cuda_destroy(&g);
    }
    sf_taehv_destroy(&t);
    sf_mk_params_free(&p);
}

static const sf_test tests[] = {
    {"taehv_cuda_golden", test_taehv_cuda_golden},
    {"taehv_cuda_golden_t2", test_taehv_cuda_golden_t2},
    {"taehv_cuda_w12_skip_3x5", test_taehv_cuda_w12_skip_3x5},
    {"taehv_cuda_z12_5x3", test_taehv_cuda_z12_5x3},
    {"taehv_cuda_t1_1x1", test_taehv_cuda_t1_1x1},
    {"taehv_cuda_profile", test_taehv_cuda_profile},
    {"taehv_cuda_refusal", test_taehv_cuda_refusal},
    {"taehv_cuda_refuses_layout", test_taehv_cuda_refuses_layout},
};
SF_TEST_MAIN(tests)
