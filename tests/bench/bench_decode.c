/* bench_decode.c — CPU seconds and peak RSS of the VAE decoder (stages/decode/vae.c) on one
 * latent block at 832×480 with the real-width (dim 96) architecture and random weights.
 *
 * Not a test: prints one figure line. Writes a random-weight decoder-only VAE checkpoint
 * (safetensors, ~293 MB, the real tensor names and shapes) to $TMPDIR, loads it like
 * Wan2.1_VAE.pth, then decodes.
 *
 *   make build/bench/bench_decode      (make bench builds it too)
 *   build/bench/bench_decode [--frames N] [--first] [--h 60 --w 104] [--dim 96] [--threads N] [--plan] [--taehv]
 *
 * --frames: latent frames in the block (default 3 = one DiT block); the first block of a
 * video yields 1 + 4(N-1) pixel frames, later blocks 4N: by default the bench decodes one
 * warm-up latent frame (untimed) and then a steady-state block; --first times the first block.
 * --plan only loads the model and prints the decoder state size (no decoding).
 * --taehv times the TAEHV tiny decoder (stages/decode/taehv.c) instead, at taew2_1.pth's shapes (latent 16,
 * widths 256/128/64/64, TGrow strides 1-2-2, 3 MemBlocks a stage; tools/mkmodel's random weights, in
 * memory): ≈ 0.53 TFLOP a latent frame at 832×480, 25× less than the Wan VAE's; `make bench` runs
 * `--taehv --frames 1`.
 * The default block is ≈ 40.5 TFLOP of convolution: ≈ 3.7 min wall / 7.4 CPU-min on 2 Zen 5 cores
 * (conv3d at ≈ 90 GFLOP/s per core); --h 16 --w 26 --frames 1 (0.9 TFLOP, ≈ 5 s) is a quick check. */
#define _POSIX_C_SOURCE 200809L
#include "sf.h"
#include "tensor.h"
#include "tfile.h"
#include "stages/decode/taehv.h"
#include "stages/decode/vae.h"
#include "tools/mkmodel/mkmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct bw {
    sf_tensor_entry *e;
    size_t n, cap;
    uint64_t rng;
} bw;

static float urand(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((*s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* kind: 'w' weight (fan-in scaled), 'b' bias, 'g' gamma */
static int add(bw *b, const char *name, char kind, int nd, int64_t d0, int64_t d1, int64_t d2, int64_t d3, int64_t d4) {
    int64_t sh[5] = {d0, d1, d2, d3, d4};
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->e = realloc(b->e, b->cap * sizeof *b->e);
        if (!b->e) return -1;
    }
    sf_tensor t;
    sf_err err;
    if (sf_tensor_alloc(&t, SF_F32, nd, sh, &err) != SF_OK) return -1;
    int64_t n = sf_tensor_numel(&t), fan = n / sh[0];
    float *f = t.data, sc = kind == 'w' ? 1.7f / sqrtf((float)fan) : 0.02f;
    for (int64_t i = 0; i < n; i++) f[i] = kind == 'g' ? 1.0f + 0.2f * urand(&b->rng) : sc * urand(&b->rng);
    b->e[b->n].name = strdup(name);
    b->e[b->n].t = t;
    b->n++;
    return 0;
}

static int add_res(bw *b, const char *p, int64_t ci, int64_t co) {
    char n[128];
    int r = 0;
    snprintf(n, sizeof n, "%s.residual.0.gamma", p), r |= add(b, n, 'g', 4, ci, 1, 1, 1, 0);
    snprintf(n, sizeof n, "%s.residual.2.weight", p), r |= add(b, n, 'w', 5, co, ci, 3, 3, 3);
    snprintf(n, sizeof n, "%s.residual.2.bias", p), r |= add(b, n, 'b', 1, co, 0, 0, 0, 0);
    snprintf(n, sizeof n, "%s.residual.3.gamma", p), r |= add(b, n, 'g', 4, co, 1, 1, 1, 0);
    snprintf(n, sizeof n, "%s.residual.6.weight", p), r |= add(b, n, 'w', 5, co, co, 3, 3, 3);
    snprintf(n, sizeof n, "%s.residual.6.bias", p), r |= add(b, n, 'b', 1, co, 0, 0, 0, 0);
    if (ci != co) {
        snprintf(n, sizeof n, "%s.shortcut.weight", p), r |= add(b, n, 'w', 5, co, ci, 1, 1, 1);
        snprintf(n, sizeof n, "%s.shortcut.bias", p), r |= add(b, n, 'b', 1, co, 0, 0, 0, 0);
    }
    return r;
}

static int add_up(bw *b, const char *p, int64_t c, int temporal) {
    char n[128];
    int r = 0;
    if (temporal) {
        snprintf(n, sizeof n, "%s.time_conv.weight", p), r |= add(b, n, 'w', 5, 2 * c, c, 3, 1, 1);
        snprintf(n, sizeof n, "%s.time_conv.bias", p), r |= add(b, n, 'b', 1, 2 * c, 0, 0, 0, 0);
    }
    snprintf(n, sizeof n, "%s.resample.1.weight", p), r |= add(b, n, 'w', 4, c / 2, c, 3, 3, 0);
    snprintf(n, sizeof n, "%s.resample.1.bias", p), r |= add(b, n, 'b', 1, c / 2, 0, 0, 0, 0);
    return r;
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One decoder under the clock: a warm-up latent frame (unless first: then the video's first block is
 * timed), then `frames` latent frames; wall and CPU seconds. 1 on failure (said on stderr). */
typedef sf_status (*decode_fn)(void *dec, const float *z, int64_t n, float *video, uint8_t *u8, int64_t *got,
                               sf_err *err);
static sf_status vae_dec(void *d, const float *z, int64_t n, float *video, uint8_t *u8, int64_t *got, sf_err *err) {
    return sf_vae_decode(d, z, n, video, u8, got, err);
}
static sf_status taehv_dec(void *d, const float *z, int64_t n, float *video, uint8_t *u8, int64_t *got, sf_err *err) {
    return sf_taehv_decode(d, z, n, video, u8, got, err);
}
static int timed(decode_fn fn, void *dec, const float *lat, int64_t zf, int64_t frames, int first, float *vid,
                 uint8_t *u8, int64_t *got, double *wall, double *cpu) {
    sf_err err = {{0}};
    sf_status st = SF_OK;
    if (!first) st = fn(dec, lat, 1, vid, u8, got, &err); /* warm-up: latent frame 0 */
    double c0 = cpu_seconds(), t0 = sf_now();
    if (st == SF_OK) st = fn(dec, lat + (first ? 0 : zf), frames, vid, u8, got, &err);
    *wall = sf_now() - t0, *cpu = cpu_seconds() - c0;
    if (st != SF_OK) fprintf(stderr, "bench_decode: %s\n", err.msg);
    return st != SF_OK;
}

/* The TAEHV at taew2_1.pth's shapes on the CPU: a warm-up latent frame (unless first), then `frames` timed. */
static int bench_taehv(int64_t frames, int64_t h, int64_t w, int threads, int first) {
    sf_mk_params p = {0};
    sf_tfile *tf = NULL;
    sf_taehv *t = NULL;
    sf_err err = {{0}};
    sf_status st;
    if ((st = sf_mk_taew2_1_params(&p, &err)) ||
        (st = sf_mk_tfile(&p, SF_F32, 7, "random taew2_1", &tf, &err)) ||
        (st = sf_taehv_new_from(tf, h, w, threads, 1, &t, &err))) {
        sf_mk_params_free(&p);
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        return 1;
    }
    size_t params = 0;
    for (size_t i = 0; i < p.n; i++) {
        size_t n = 1;
        for (int d = 0; d < p.v[i].ndim; d++) n *= (size_t)p.v[i].shape[d];
        if (!strncmp(p.v[i].name, "decoder.", 8)) params += n;
    }
    sf_mk_params_free(&p);
    const sf_taehv_config *c = sf_taehv_config_of(t);
    const int64_t H = h << c->n_up, W = w << c->n_up, zf = 16 * h * w, nmax = c->time_up * (frames + 1);
    float *lat = malloc((size_t)((frames + 1) * zf) * sizeof(float));
    uint8_t *u8 = malloc((size_t)(nmax * 3 * H * W));
    if (!lat || !u8) {
        fprintf(stderr, "bench_decode: out of memory\n");
        return 1;
    }
    uint64_t s = 12345;
    for (int64_t i = 0; i < (frames + 1) * zf; i++) lat[i] = 2.0f * urand(&s);
    int64_t got = 0;
    double wall, cpu;
    if (timed(taehv_dec, t, lat, zf, frames, first, NULL, u8, &got, &wall, &cpu)) return 1;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("bench_decode: TAEHV (%.1fM decoder params), %s block of %lld latent frames %lldx%lld -> %lld frames "
           "%lldx%lld, %d threads: wall %.2f s (%.2f s a latent frame), cpu %.2f s, peak RSS %.2f GiB\n",
           params / 1e6, first ? "first" : "steady-state", (long long)frames, (long long)h, (long long)w,
           (long long)got, (long long)W, (long long)H, c->threads, wall, wall / (double)frames, cpu,
           ru.ru_maxrss / 1048576.0);
    free(lat);
    free(u8);
    sf_taehv_destroy(&t);
    return 0;
}

int main(int argc, char **argv) {
    int64_t frames = 3, h = 60, w = 104, dim = 96;
    int threads = 0, first = 0, plan = 0, taehv = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--full")) continue; /* make bench's full mode: the default is already full size */
        else if (!strcmp(argv[i], "--first")) first = 1;
        else if (!strcmp(argv[i], "--plan")) plan = 1;
        else if (!strcmp(argv[i], "--taehv")) taehv = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--frames")) frames = atoll(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--h")) h = atoll(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--w")) w = atoll(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--dim")) dim = atoll(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--frames N] [--first] [--h H --w W] [--dim D] [--threads N] [--plan] [--taehv]\n",
                    argv[0]);
            return 2;
        }
    }
    if (frames < 1 || frames > 64 || h < 1 || w < 1 || dim < 2 || dim % 2) {
        fprintf(stderr, "bench_decode: bad sizes\n");
        return 2;
    }
    if (taehv) return bench_taehv(frames, h, w, threads, first);
    bw b = {NULL, 0, 0, 0x9e3779b97f4a7c15ull};
    const int64_t top = 4 * dim, z = 16;
    int r = 0;
    char p[64];
    r |= add(&b, "conv2.weight", 'w', 5, z, z, 1, 1, 1) | add(&b, "conv2.bias", 'b', 1, z, 0, 0, 0, 0);
    r |= add(&b, "decoder.conv1.weight", 'w', 5, top, z, 3, 3, 3) | add(&b, "decoder.conv1.bias", 'b', 1, top, 0, 0, 0, 0);
    r |= add_res(&b, "decoder.middle.0", top, top);
    r |= add(&b, "decoder.middle.1.norm.gamma", 'g', 3, top, 1, 1, 0, 0);
    r |= add(&b, "decoder.middle.1.to_qkv.weight", 'w', 4, 3 * top, top, 1, 1, 0);
    r |= add(&b, "decoder.middle.1.to_qkv.bias", 'b', 1, 3 * top, 0, 0, 0, 0);
    r |= add(&b, "decoder.middle.1.proj.weight", 'w', 4, top, top, 1, 1, 0);
    r |= add(&b, "decoder.middle.1.proj.bias", 'b', 1, top, 0, 0, 0, 0);
    r |= add_res(&b, "decoder.middle.2", top, top);
    /* upsamples: stage widths 4d,4d,2d,d; stage entry width halves after each Resample */
    const int64_t out_c[4] = {top, top, 2 * dim, dim};
    int64_t c = top, idx = 0;
    for (int s = 0; s < 4; s++) {
        for (int k = 0; k < 3; k++, idx++) {
            snprintf(p, sizeof p, "decoder.upsamples.%lld", (long long)idx);
            r |= add_res(&b, p, c, out_c[s]);
            c = out_c[s];
        }
        if (s < 3) {
            snprintf(p, sizeof p, "decoder.upsamples.%lld", (long long)idx++);
            r |= add_up(&b, p, c, s < 2);
            c /= 2;
        }
    }
    r |= add(&b, "decoder.head.0.gamma", 'g', 4, dim, 1, 1, 1, 0);
    r |= add(&b, "decoder.head.2.weight", 'w', 5, 3, dim, 3, 3, 3) | add(&b, "decoder.head.2.bias", 'b', 1, 3, 0, 0, 0, 0);
    if (r) {
        fprintf(stderr, "bench_decode: out of memory building weights\n");
        return 1;
    }
    const char *tmpd = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/bench_vae_%ld.safetensors", tmpd && *tmpd ? tmpd : "/tmp", (long)getpid());
    sf_err err = {{0}};
    sf_status st = sf_safetensors_write(path, b.e, b.n, NULL, 0, &err);
    size_t params = 0;
    for (size_t i = 0; i < b.n; i++) {
        params += (size_t)sf_tensor_numel(&b.e[i].t);
        sf_tensor_free(&b.e[i].t);
        free(b.e[i].name);
    }
    free(b.e);
    if (st != SF_OK) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        return 1;
    }
    sf_vae *v = NULL;
    st = sf_vae_new(path, h, w, threads, &v, &err);
    unlink(path); /* the mapping stays valid */
    if (st != SF_OK) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        return 1;
    }
    /* bytes the decoder state owns (allocated once; the bound on activation memory) */
    double state = 3.0 * (double)v->st.buf_elems * sizeof(float);
    for (int i = 0; i < v->st.n_caches; i++) state += 2.0 * (double)v->st.cache_frame[i] * sizeof(float);
    if (plan) {
        printf("bench_decode: dim %lld, latents %lldx%lld: decoder state %.2f GiB (3 activation buffers %.2f GiB, "
               "%d causal caches)\n", (long long)dim, (long long)h, (long long)w, state / 1073741824.0,
               3.0 * (double)v->st.buf_elems * 4 / 1073741824.0, v->st.n_caches);
        sf_vae_destroy(&v);
        return 0;
    }
    const int64_t zn = (frames + 1) * z * h * w;
    float *lat = malloc((size_t)zn * sizeof(float));
    uint64_t s = 12345;
    for (int64_t i = 0; i < zn; i++) lat[i] = 2.0f * urand(&s);
    const int64_t H = h << v->cfg.n_up, W = w << v->cfg.n_up;
    int64_t nmax = ((int64_t)1 << v->cfg.n_up3d) * frames;
    float *vid = malloc((size_t)(nmax * 3 * H * W) * sizeof(float));
    uint8_t *u8 = malloc((size_t)(nmax * 3 * H * W));
    int64_t got = 0;
    if (!lat || !vid || !u8) {
        fprintf(stderr, "bench_decode: out of memory\n");
        return 1;
    }
    double wall, cpu;
    if (timed(vae_dec, v, lat, z * h * w, frames, first, vid, u8, &got, &wall, &cpu)) return 1;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("bench_decode: dim %lld (%.1fM decoder params), %s block of %lld latent frames %lldx%lld -> %lld frames "
           "%lldx%lld, %d threads: wall %.2f s, cpu %.2f s, peak RSS %.2f GiB (decoder state %.2f GiB)\n",
           (long long)dim, params / 1e6, first ? "first" : "steady-state", (long long)frames, (long long)h,
           (long long)w, (long long)got, (long long)W, (long long)H, v->cfg.threads, wall, cpu,
           ru.ru_maxrss / 1048576.0, state / 1073741824.0);
    free(lat);
    free(vid);
    free(u8);
    sf_vae_destroy(&v);
    return 0;
}
