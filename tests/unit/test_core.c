/* test_core.c — status/errors, tensors and dtype conversions, CLI flags, devices, atomic files. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "cli.h"
#include "device.h"
#include "rng.h"

#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_bf16_round(void) {
    SF_CHECK(sf_f32_to_bf16(1.0f) == 0x3f80);
    /* 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even → 1.0 */
    SF_CHECK(sf_f32_to_bf16(1.00390625f) == 0x3f80);
    /* 1 + 3·2^-8 is halfway between 1.0078125 (odd mantissa) and 1.015625: → even 1.015625 */
    SF_CHECK(sf_f32_to_bf16(1.01171875f) == 0x3f82);
    SF_CHECK(sf_f32_to_bf16(1.0040f) == 0x3f81); /* above half → up */
    SF_CHECK(sf_f32_to_bf16(-2.0f) == 0xc000);
    SF_CHECK(sf_bf16_to_f32(0x3f81) == 1.0078125f);
    uint16_t nan = sf_f32_to_bf16(NAN);
    SF_CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f));
    SF_CHECK(sf_f32_to_bf16(INFINITY) == 0x7f80);
    SF_CHECK(sf_f32_to_bf16(3.4e38f) == 0x7f80); /* rounds past max → inf */
}

static void test_f16_round(void) {
    SF_CHECK(sf_f32_to_f16(1.0f) == 0x3c00);
    SF_CHECK(sf_f32_to_f16(65504.0f) == 0x7bff);
    SF_CHECK(sf_f32_to_f16(65520.0f) == 0x7c00);    /* halfway to 65536 → inf */
    SF_CHECK(sf_f32_to_f16(65519.0f) == 0x7bff);
    SF_CHECK(sf_f32_to_f16(5.9604644775390625e-08f) == 0x0001); /* smallest subnormal */
    SF_CHECK(sf_f32_to_f16(2.98023223876953125e-08f) == 0x0000); /* half of it: ties to even → 0 */
    SF_CHECK(sf_f32_to_f16(4.5e-08f) == 0x0001);
    SF_CHECK(sf_f32_to_f16(6.097555160522461e-05f) == 0x03ff); /* largest subnormal */
    SF_CHECK(sf_f32_to_f16(-0.0f) == 0x8000);
    SF_CHECK(sf_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);       /* tie → even */
    SF_CHECK(sf_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);       /* tie → even (up) */
    /* every f16 value round-trips exactly */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        float f = sf_f16_to_f32((uint16_t)h);
        if (sf_f32_to_f16(f) != h) bad++;
    }
    SF_CHECK_MSG(bad == 0, "%d f16 values do not round-trip", bad);
    bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
        if (sf_f32_to_bf16(sf_bf16_to_f32((uint16_t)h)) != h) bad++;
    }
    SF_CHECK_MSG(bad == 0, "%d bf16 values do not round-trip", bad);
}

static void test_tensor_strided(void) {
    float data[6] = {0, 1, 2, 3, 4, 5};
    int64_t shape[2] = {2, 3};
    sf_tensor t = sf_tensor_view(data, SF_F32, 2, shape);
    SF_CHECK(sf_tensor_numel(&t) == 6 && sf_tensor_nbytes(&t) == 24 && sf_tensor_is_contiguous(&t));
    /* transpose view: shape (3, 2), strides (1, 3) */
    sf_tensor tt = t;
    tt.shape[0] = 3; tt.shape[1] = 2; tt.stride[0] = 1; tt.stride[1] = 3;
    SF_CHECK(!sf_tensor_is_contiguous(&tt));
    float out[6];
    sf_tensor_to_f32(&tt, out);
    float want[6] = {0, 3, 1, 4, 2, 5};
    SF_CHECK(memcmp(out, want, sizeof out) == 0);
    sf_err err = {{0}};
    sf_tensor h;
    SF_CHECK_OK(sf_tensor_convert(&tt, SF_BF16, &h, &err), &err);
    SF_CHECK(h.owned && sf_tensor_is_contiguous(&h) && ((uint16_t *)h.data)[1] == 0x4040);
    sf_tensor_free(&h);
    char buf[64];
    SF_CHECK(strcmp(sf_shape_str(&tt, buf, sizeof buf), "[3, 2]") == 0);
    int64_t huge[3] = {INT64_MAX / 2, 4, 4};
    SF_CHECK(sf_tensor_alloc(&h, SF_F32, 3, huge, &err) == SF_E_NOMEM);
    SF_CHECK(sf_dtype_from_name("bf16") == SF_BF16 && sf_dtype_from_name("BF16") == SF_BF16);
    SF_CHECK(sf_dtype_from_name("F8_E4M3") == -1);
}

static void test_checked_math(void) {
    size_t r = 7;
    SF_CHECK(!sf_mul_ok(SIZE_MAX / 2 + 1, 2, &r) && r == 7);
    SF_CHECK(sf_mul_ok(1u << 20, 1u << 20, &r) && r == (size_t)1 << 40);
    SF_CHECK(!sf_add_ok(SIZE_MAX, 1, &r));
    SF_CHECK(sf_calloc2(SIZE_MAX / 4, 8) == NULL);
}

static void test_cli_forms(void) {
    static const sf_opt opts[] = {
        {"layer-indices", 0, SF_ARG_MULTI, "N...\tlayers"},
        {"output-path", 'o', SF_ARG_VALUE, "FILE\tout"},
        {"use-ema", 0, SF_ARG_FLAG, "ema"},
        {"seed", 0, SF_ARG_VALUE, "N\tseed"},
        {0},
    };
    char *argv[] = {"prog", "--layer_indices", "0", "4", "--output-path=x.pt", "--use_ema",
                    "pos1", "--seed", "-3", "-o", "-", "--layer-indices", "7", NULL};
    sf_args a;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_args_parse(13, argv, opts, &a, &err), &err);
    const char **v = NULL;
    int n = sf_args_all(&a, opts, "layer-indices", &v);
    SF_CHECK(n == 3 && strcmp(v[0], "0") == 0 && strcmp(v[1], "4") == 0 && strcmp(v[2], "7") == 0);
    free(v);
    SF_CHECK(strcmp(sf_args_get(&a, opts, "output-path"), "-") == 0); /* last wins */
    SF_CHECK(sf_args_has(&a, opts, "use-ema"));
    SF_CHECK(strcmp(sf_args_get(&a, opts, "seed"), "-3") == 0);
    n = sf_args_positional(&a, &v);
    SF_CHECK(n == 1 && strcmp(v[0], "pos1") == 0);
    free(v);
    sf_args_free(&a);
    char *bad[] = {"prog", "--bogus", NULL};
    SF_CHECK(sf_args_parse(2, bad, opts, &a, &err) == SF_E_ARG && strstr(err.msg, "--bogus"));
    char *miss[] = {"prog", "--seed", NULL};
    SF_CHECK(sf_args_parse(2, miss, opts, &a, &err) == SF_E_ARG);
    char *flagval[] = {"prog", "--use-ema=1", NULL};
    SF_CHECK(sf_args_parse(2, flagval, opts, &a, &err) == SF_E_ARG);
    long l;
    SF_CHECK(sf_arg_long("seed", "12x", 0, 10, &l, &err) == SF_E_ARG);
    SF_CHECK_MSG(!strncmp(err.msg, "--seed: ", 8), "%s", err.msg);
    /* the flag named with its dashes (as the stages do) is not dashed twice */
    SF_CHECK(sf_arg_long("--num-frames", "1x", 0, 10, &l, &err) == SF_E_ARG);
    SF_CHECK_MSG(!strncmp(err.msg, "--num-frames: ", 14), "%s", err.msg);
    double dv;
    SF_CHECK(sf_arg_double("--fps", "x", &dv, &err) == SF_E_ARG);
    SF_CHECK_MSG(!strncmp(err.msg, "--fps: ", 7), "%s", err.msg);
    SF_CHECK(sf_arg_double("rtol", "nan", &dv, &err) == SF_E_ARG);
    SF_CHECK_MSG(!strncmp(err.msg, "--rtol: ", 8), "%s", err.msg);
    SF_CHECK(sf_arg_long("seed", "9", 0, 10, &l, &err) == SF_OK && l == 9);
    /* errors name a flag as the user spelled it: --output_path typed, --output_path shown (the reference's
     * argparse form), the dash form otherwise */
    char *us[] = {"prog", "--output_path", "x", "--seed", "1", NULL};
    SF_CHECK_OK(sf_args_parse(5, us, opts, &a, &err), &err);
    sf_args_free(&a);
    SF_CHECK(sf_arg_long("--output-path", "x", 0, 10, &l, &err) == SF_E_ARG);
    SF_CHECK_MSG(!strncmp(err.msg, "--output_path: ", 15), "%s", err.msg);
    SF_CHECK(sf_arg_double("output-path", "x", &dv, &err) == SF_E_ARG);
    SF_CHECK_MSG(!strncmp(err.msg, "--output_path: ", 15), "%s", err.msg);
    SF_CHECK(sf_arg_long("--seed", "x", 0, 10, &l, &err) == SF_E_ARG);
    SF_CHECK_MSG(!strncmp(err.msg, "--seed: ", 8), "%s", err.msg);
    char *us_flagval[] = {"prog", "--use_ema=1", NULL};
    SF_CHECK(sf_args_parse(2, us_flagval, opts, &a, &err) == SF_E_ARG);
    SF_CHECK_MSG(!strcmp(err.msg, "option --use_ema takes no value"), "%s", err.msg);
    char *us_none[] = {"prog", "--layer_indices", NULL};
    SF_CHECK(sf_args_parse(2, us_none, opts, &a, &err) == SF_E_ARG);
    SF_CHECK_MSG(!strcmp(err.msg, "option --layer_indices needs at least one value"), "%s", err.msg);
    SF_CHECK(sf_args_parse(2, flagval, opts, &a, &err) == SF_E_ARG);
    SF_CHECK_MSG(!strcmp(err.msg, "option --use-ema takes no value"), "%s", err.msg);
    SF_CHECK(sf_arg_long("--output-path", "x", 0, 10, &l, &err) == SF_E_ARG); /* a new parse forgets the old */
    SF_CHECK_MSG(!strncmp(err.msg, "--output-path: ", 15), "%s", err.msg);
}

static void test_device_parse(void) {
    sf_device d;
    sf_err err = {{0}};
    SF_CHECK(sf_device_parse("cpu", &d, &err) == SF_OK && !d.cuda);
    SF_CHECK(sf_device_parse("cuda:3", &d, &err) == SF_OK && d.cuda && d.ordinal == 3);
    SF_CHECK(sf_device_parse("1", &d, &err) == SF_OK && d.cuda && d.ordinal == 1);
    SF_CHECK(sf_device_parse("gpu", &d, &err) == SF_E_ARG);
    SF_CHECK(sf_device_parse("cuda:x", &d, &err) == SF_E_ARG);
}

/* The shared stage flags (common/cli.c sf_stage_flags_get): one parser for the three stages. */
static const sf_opt stage_opts[] = {SF_OPT_MODEL_DIR, SF_OPTS_DEVICE("test"), SF_OPT_PROGRESS, SF_OPTS_CPU_MODE, SF_OPTS_STD,
                                    {NULL, 0, 0, NULL}};
static sf_status stage_flags(sf_stage_flags *f, sf_err *err, ...) {
    char *argv[16] = {"prog"};
    int argc = 1;
    va_list ap;
    va_start(ap, err);
    for (char *v; argc < 15 && (v = va_arg(ap, char *));) argv[argc++] = v;
    va_end(ap);
    sf_args a = {0};
    sf_status s = sf_args_parse(argc, argv, stage_opts, &a, err);
    if (!s) s = sf_stage_flags_get(&a, stage_opts, f, err);
    sf_args_free(&a);
    return s;
}
static void test_stage_flags(void) {
    sf_err err = {{0}};
    sf_stage_flags f;
    unsetenv("SF_MODEL_DIR");
    SF_CHECK_OK(stage_flags(&f, &err, "--progress", "none", NULL), &err);
    SF_CHECK(!f.cuda && !strcmp(f.model_dir, "wan_models/Wan2.1-T2V-1.3B") && f.progress == SF_PROGRESS_NONE);
    setenv("SF_MODEL_DIR", "/m/env", 1);
    SF_CHECK_OK(stage_flags(&f, &err, "--progress", "lines", NULL), &err);
    SF_CHECK(!strcmp(f.model_dir, "/m/env") && f.progress == SF_PROGRESS_LINES);
    SF_CHECK_OK(stage_flags(&f, &err, "--model_dir", "/m/flag", "--progress=bar", NULL), &err);
    SF_CHECK(!strcmp(f.model_dir, "/m/flag") && f.progress == SF_PROGRESS_BAR);
    unsetenv("SF_MODEL_DIR");
    SF_CHECK_OK(stage_flags(&f, &err, "--device", "cuda:1", NULL), &err);
    SF_CHECK(f.cuda == 1 && f.ordinal == 1);
    SF_CHECK_OK(stage_flags(&f, &err, "--gpu_id", "2", NULL), &err);
    SF_CHECK(f.cuda == 1 && f.ordinal == 2);
    SF_CHECK_OK(stage_flags(&f, &err, "--device", "cuda:3", "--gpu-id", "3", NULL), &err);
    SF_CHECK(f.cuda == 1 && f.ordinal == 3);
    SF_CHECK_OK(stage_flags(&f, &err, "--device", "cpu", NULL), &err);
    SF_CHECK(!f.cuda);
    sf_status s = stage_flags(&f, &err, "--device", "cuda:0", "--gpu-id", "1", NULL);
    SF_CHECK_MSG(s == SF_E_ARG && strstr(err.msg, "--device cuda:0 and --gpu-id 1 name different devices"), "%s", err.msg);
    s = stage_flags(&f, &err, "--device", "cpu", "--gpu-id", "0", NULL);
    SF_CHECK_MSG(s == SF_E_ARG && strstr(err.msg, "name different devices"), "%s", err.msg);
    s = stage_flags(&f, &err, "--gpu-id", "cuda:1", NULL);
    SF_CHECK_MSG(s == SF_E_ARG && strstr(err.msg, "--gpu-id: expected a GPU number"), "%s", err.msg);
    s = stage_flags(&f, &err, "--progress", "verbose", NULL);
    SF_CHECK_MSG(s == SF_E_ARG && strstr(err.msg, "--progress: expected auto, bar, lines or none, got 'verbose'"), "%s",
                 err.msg);
    s = stage_flags(&f, &err, "--device", "gpu", NULL);
    SF_CHECK_MSG(s == SF_E_ARG, "%s", err.msg);
}

/* --deterministic / --precision: the CPU mode (kernels/parallel.h), through the environment. */
static void test_cpu_mode_flags(void) {
    sf_err err = {{0}};
    sf_stage_flags f;
    unsetenv("SF_CPU_EXACT");
    unsetenv("SF_CPU_PRECISION");
    SF_CHECK_OK(stage_flags(&f, &err, NULL), &err);
    SF_CHECK(f.cpu_mode == SF_CPU_FAST && sf_cpu_mode_now() == SF_CPU_FAST && !strcmp(sf_cpu_mode_name(SF_CPU_FAST), "fast"));
    SF_CHECK_OK(stage_flags(&f, &err, "--precision", "bf16", NULL), &err);
    SF_CHECK(f.cpu_mode == SF_CPU_BF16 && !strcmp(getenv("SF_CPU_PRECISION"), "bf16"));
    SF_CHECK_OK(stage_flags(&f, &err, "--precision=fp32", NULL), &err);
    SF_CHECK(f.cpu_mode == SF_CPU_FAST);
    SF_CHECK_OK(stage_flags(&f, &err, "--deterministic", NULL), &err);
    SF_CHECK(f.cpu_mode == SF_CPU_EXACT && sf_cpu_mode_now() == SF_CPU_EXACT);
    sf_status s = stage_flags(&f, &err, "--precision", "fp16", NULL);
    SF_CHECK_MSG(s == SF_E_ARG && strstr(err.msg, "--precision: expected fp32 or bf16, got 'fp16'"), "%s", err.msg);
    s = stage_flags(&f, &err, "--deterministic", "--precision", "bf16", NULL);
    SF_CHECK_MSG(s == SF_E_ARG && strstr(err.msg, "--deterministic"), "%s", err.msg);
    setenv("SF_CPU_EXACT", "0", 1); /* "0" is off */
    setenv("SF_CPU_PRECISION", "bf16", 1);
    SF_CHECK(sf_cpu_mode_now() == SF_CPU_BF16);
    unsetenv("SF_CPU_EXACT");
    unsetenv("SF_CPU_PRECISION");
}

static void test_atomic_file(void) {
    char dir[] = "/tmp/sf_test_XXXXXX";
    SF_CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    sf_atomic_file af;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_atomic_open(&af, path, &err), &err);
    fputs("hello", (FILE *)af.fp);
    SF_CHECK(access(path, F_OK) != 0); /* nothing visible before commit */
    SF_CHECK_OK(sf_atomic_commit(&af, &err), &err);
    char *data;
    size_t len;
    SF_CHECK_OK(sf_read_file(path, &data, &len, 1 << 20, &err), &err);
    SF_CHECK(len == 5 && strcmp(data, "hello") == 0);
    free(data);
    SF_CHECK_OK(sf_atomic_open(&af, path, &err), &err);
    fputs("partial", (FILE *)af.fp);
    sf_atomic_abort(&af);
    SF_CHECK_OK(sf_read_file(path, &data, &len, 1 << 20, &err), &err);
    SF_CHECK(len == 5); /* old content survives an abort */
    free(data);
    SF_CHECK(sf_read_file(path, &data, &len, 3, &err) == SF_E_FORMAT);
    unlink(path);
    rmdir(dir);
    /* devices are written in place, never renamed over */
    SF_CHECK_OK(sf_atomic_open(&af, "/dev/null", &err), &err);
    fputs("discarded", (FILE *)af.fp);
    SF_CHECK_OK(sf_atomic_commit(&af, &err), &err);
    struct stat st;
    SF_CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
    SF_CHECK(sf_atomic_open(&af, "/tmp", &err) == SF_E_IO && strstr(err.msg, "directory"));
    snprintf(path, sizeof path, "/nonexistent-dir/x");
    SF_CHECK(sf_atomic_open(&af, path, &err) == SF_E_IO && strstr(err.msg, "cannot write"));
}

static void test_check_out_dir(void) {
    char dir[] = "/tmp/sf_test_XXXXXX";
    SF_CHECK(mkdtemp(dir) != NULL);
    char path[256], sub[256];
    sf_err err = {{0}};
    SF_CHECK_OK(sf_check_out_dir("--x", NULL, 0, &err), &err);
    SF_CHECK_OK(sf_check_out_dir("--x", "-", 0, &err), &err);
    SF_CHECK_OK(sf_check_out_dir("--x", "ipc:///nonexistent/x.sock", 0, &err), &err);
    SF_CHECK_OK(sf_check_out_dir("--x", "relative.bin", 0, &err), &err);
    snprintf(path, sizeof path, "%s/out.bin", dir);
    SF_CHECK_OK(sf_check_out_dir("--x", path, 0, &err), &err);
    /* a missing folder: the message names it and says how to make it; nothing is created */
    snprintf(path, sizeof path, "%s/a/b/out.bin", dir);
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    SF_CHECK(sf_check_out_dir("--save-latents", path, 0, &err) == SF_E_IO);
    SF_CHECK_MSG(strstr(err.msg, "--save-latents") && strstr(err.msg, "does not exist (mkdir -p ") && strstr(err.msg, sub),
                 "%s", err.msg);
    SF_CHECK(access(sub, F_OK) != 0);
    /* create: mkdir -p */
    SF_CHECK_OK(sf_check_out_dir("--x", path, 1, &err), &err);
    struct stat st;
    SF_CHECK(stat(sub, &st) == 0 && S_ISDIR(st.st_mode));
    /* a folder output (PNG frames, "DIR/") checks the folder it goes into */
    snprintf(path, sizeof path, "%s/a/b/frames/", dir);
    SF_CHECK_OK(sf_check_out_dir("--x", path, 0, &err), &err);
    /* a file where the folder should be, and an unwritable folder (unless root) */
    snprintf(path, sizeof path, "%s/f", dir);
    FILE *f = fopen(path, "w");
    SF_CHECK(f != NULL);
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/f/out.bin", dir);
    SF_CHECK(sf_check_out_dir("--x", path, 1, &err) == SF_E_IO && strstr(err.msg, "not a folder"));
    if (geteuid() != 0) {
        chmod(sub, 0555);
        snprintf(path, sizeof path, "%s/a/b/out.bin", dir);
        SF_CHECK(sf_check_out_dir("--x", path, 0, &err) == SF_E_IO && strstr(err.msg, "not writable"));
        chmod(sub, 0755);
    }
    snprintf(path, sizeof path, "%s/f", dir);
    unlink(path);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/a", dir);
    rmdir(sub);
    rmdir(dir);
}

/* sf_path_dir: the folder a path's last component is in, as the output checks, the atomic writer, the
 * tap room check and sf-run's spec folder need it */
static void test_path_dir(void) {
    char d[16];
    SF_CHECK(sf_path_dir("a.pt", d, sizeof d) && !strcmp(d, "."));
    SF_CHECK(sf_path_dir("/a.pt", d, sizeof d) && !strcmp(d, "/"));
    SF_CHECK(sf_path_dir("x/y/a.pt", d, sizeof d) && !strcmp(d, "x/y"));
    SF_CHECK(sf_path_dir("x/", d, sizeof d) && !strcmp(d, "x"));
    SF_CHECK(!sf_path_dir("a-long-folder-name/a.pt", d, sizeof d)); /* does not fit in 16 */
}

static void test_mkdir_p(void) {
    char dir[] = "/tmp/sf_test_XXXXXX";
    SF_CHECK(mkdtemp(dir) != NULL);
    char path[256], f[256];
    sf_err err = {{0}};
    struct stat st;
    snprintf(path, sizeof path, "%s/a/b/c/", dir); /* parents made, a trailing '/' is fine */
    SF_CHECK_OK(sf_mkdir_p(path, &err), &err);
    SF_CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    SF_CHECK_OK(sf_mkdir_p(path, &err), &err); /* already there */
    snprintf(f, sizeof f, "%s/file", dir);
    FILE *fp = fopen(f, "w");
    SF_CHECK(fp != NULL);
    if (fp) fclose(fp);
    SF_CHECK(sf_mkdir_p(f, &err) == SF_E_IO && strstr(err.msg, "is not a folder"));
    snprintf(path, sizeof path, "%s/file/x", dir);
    SF_CHECK_MSG(sf_mkdir_p(path, &err) == SF_E_IO && !strcmp(err.msg + strlen(dir), "/file is not a folder"), "%s",
                 err.msg); /* the file in the way, not the folder under it */
    unlink(f);
    for (const char *sub = "/a/b/c\0/a/b\0/a\0"; *sub; sub += strlen(sub) + 1) {
        snprintf(path, sizeof path, "%s%s", dir, sub);
        rmdir(path);
    }
    rmdir(dir);
}

static void test_rng_known(void) {
    /* xoshiro256** from splitmix64(0): fixed known answers guard the documented stream */
    sf_rng r;
    sf_rng_seed(&r, 0);
    uint64_t a = sf_rng_next(&r), b = sf_rng_next(&r);
    sf_rng r2;
    sf_rng_seed(&r2, 0);
    SF_CHECK(sf_rng_next(&r2) == a && sf_rng_next(&r2) == b);
    SF_CHECK(a == 0x99ec5f36cb75f2b4ull && b == 0xbf6e1f784956452aull);
    sf_rng_seed(&r, 1);
    SF_CHECK(sf_rng_next(&r) != a);
    /* normals: mean ~0, var ~1 over many draws */
    sf_rng_seed(&r, 42);
    double m = 0, v = 0;
    enum { N = 200000 };
    for (int i = 0; i < N; i++) {
        double x = sf_rng_normal(&r);
        m += x;
        v += x * x;
    }
    m /= N;
    v = v / N - m * m;
    SF_CHECK_MSG(fabs(m) < 0.01 && fabs(v - 1) < 0.02, "mean %g var %g", m, v);
}

/* sf_rng_fill_normal_mt == sf_rng_fill_normal: the same bits and the same state after, for 2 and 3
 * threads, an odd length (its sine left pending), a pending sine on entry, several rounds of pairs or
 * one latent frame's worth,
 * and a stream whose first uniform is 0 (s[1] = 0: xoshiro's first output is 0 and Box–Muller
 * rejects it). */
static void test_rng_fill_mt(void) {
    enum { N = 300001 };
    float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    SF_CHECK(a && b);
    for (int c = 0; a && b && c < 5; c++) {
        sf_rng r1, r2;
        sf_rng_seed(&r1, 7 + (uint64_t)c);
        if (c == 3) r1.s[0] = 1, r1.s[1] = 0, r1.s[2] = 2, r1.s[3] = 3, r1.has_spare = 0;
        if (c == 1) (void)sf_rng_normal(&r1); /* a sine pending on entry */
        r2 = r1;
        const float mean = c == 2 ? 0.5f : 0.0f, sd = c == 2 ? 2.0f : 1.0f;
        const size_t n = c == 4 ? 99840 : N; /* one latent frame at 832x480: a single partial round */
        sf_rng_fill_normal(&r1, a, n, mean, sd);
        sf_rng_fill_normal_mt(&r2, b, n, mean, sd, 2 + (c & 1));
        size_t i = 0;
        while (i < n && memcmp(&a[i], &b[i], sizeof(float)) == 0) i++;
        SF_CHECK_MSG(i == n, "case %d: value %zu differs: %a vs %a", c, i, i < n ? a[i] : 0.0, i < n ? b[i] : 0.0);
        SF_CHECK_MSG(memcmp(r1.s, r2.s, sizeof r1.s) == 0 && r1.has_spare == r2.has_spare && r1.spare == r2.spare,
                     "case %d: state differs after the fill", c);
        SF_CHECK(sf_rng_normal(&r1) == sf_rng_normal(&r2));
    }
    free(a);
    free(b);
}


/* Hostile-input helpers (common/core.c): strict integers, UTF-8 names, escaped control
 * characters, sf_fail with its own message as an argument, and inputs that never block. */
static void test_strict_int(void) {
    int64_t v = 0;
    SF_CHECK(sf_parse_i64("42", 0, 100, &v) && v == 42);
    SF_CHECK(sf_parse_i64("-7", -10, 10, &v) && v == -7);
    SF_CHECK(sf_parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, &v) && v == INT64_MAX);
    SF_CHECK(sf_parse_i64("-9223372036854775808", INT64_MIN, INT64_MAX, &v) && v == INT64_MIN);
    v = 5;
    SF_CHECK(!sf_parse_i64("9223372036854775808", INT64_MIN, INT64_MAX, &v) && v == 5); /* overflow: no wrap */
    SF_CHECK(!sf_parse_i64("99999999999999999999", 0, INT64_MAX, &v));
    SF_CHECK(!sf_parse_i64("4294967296", 0, 2147483647, &v)); /* in int64, out of range */
    SF_CHECK(!sf_parse_i64("0", 1, 10, &v) && !sf_parse_i64("-1", 0, 10, &v));
    const char *bad[] = {"", "-", "+1", " 1", "1 ", "0x10", "1e3", "abc", "1.0", NULL};
    for (int i = 0; bad[i]; i++) SF_CHECK_MSG(!sf_parse_i64(bad[i], INT64_MIN, INT64_MAX, &v), "'%s'", bad[i]);
    const char *p = "12.b3";
    SF_CHECK(sf_scan_i64(&p, 0, 100, &v) && v == 12 && *p == '.');
}

static void test_utf8_names(void) {
    SF_CHECK(sf_utf8_valid("blocks.0.weight", 15, 0));
    SF_CHECK(sf_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, 0)); /* é € 😀 */
    SF_CHECK(!sf_utf8_valid("a\xff", 2, 0));          /* invalid byte */
    SF_CHECK(!sf_utf8_valid("\xc0\xaf", 2, 0));       /* overlong '/' */
    SF_CHECK(!sf_utf8_valid("\xed\xa0\x80", 3, 0));   /* surrogate */
    SF_CHECK(!sf_utf8_valid("\xf4\x90\x80\x80", 4, 0)); /* > U+10FFFF */
    SF_CHECK(!sf_utf8_valid("\xe2\x82", 2, 0));       /* truncated */
    SF_CHECK(!sf_utf8_valid("a\x1b[2J", 5, 0) && sf_utf8_valid("a\x1b[2J", 5, 1)); /* control: names only */
    SF_CHECK(!sf_utf8_valid("a\x7f", 2, 0));
    SF_CHECK(!sf_utf8_valid("a\xe6\x97z", 4, 1));     /* a sequence cut by an ASCII byte */
    /* C1 (U+0085 NEL, U+009B CSI) and bidi controls (U+202E RLO, U+2066 LRI) are controls too;
     * their neighbours U+00A0, U+2029 and U+206A are not */
    SF_CHECK(!sf_utf8_valid("a\xc2\x9b" "31m", 6, 0) && sf_utf8_valid("a\xc2\x9b" "31m", 6, 1));
    SF_CHECK(!sf_utf8_valid("\xc2\x85", 2, 0) && !sf_utf8_valid("\xe2\x80\xae", 3, 0));
    SF_CHECK(!sf_utf8_valid("\xe2\x81\xa6", 3, 0) && !sf_utf8_valid("\xe2\x81\xa9", 3, 0));
    SF_CHECK(sf_utf8_valid("\xc2\xa0\xe2\x80\xa9\xe2\x81\xaa", 8, 0));
    uint32_t cp = 0;
    SF_CHECK(sf_utf8_decode("\xf0\x9f\x98\x80", 4, &cp) == 4 && cp == 0x1f600);
    SF_CHECK(sf_utf8_decode("\xf0\x9f\x98", 3, &cp) == 0 && sf_utf8_decode("", 0, &cp) == 0);
    SF_CHECK(sf_unicode_is_ctl(0x9f) && !sf_unicode_is_ctl(0xa0) && sf_unicode_is_ctl(0x202a) && !sf_unicode_is_ctl(0x2065));
}

static void test_escape_ctl(void) {
    char b[64];
    sf_escape_ctl(b, sizeof b, "x\x1b]0;t\x07y\nz\x7f");
    SF_CHECK_MSG(strcmp(b, "x\\x1b]0;t\\x07y z\\x7f") == 0, "%s", b);
    sf_escape_ctl(b, 6, "ab\x1b\x1b"); /* never a partial escape */
    SF_CHECK_MSG(strcmp(b, "ab") == 0, "%s", b);
    /* C1 controls (8-bit CSI U+009B, NEL U+0085) and bidi overrides / isolates as UTF-8: escaped per
     * byte; other non-ASCII text is kept; a byte that is not UTF-8 is escaped */
    sf_escape_ctl(b, sizeof b, "a\xc2\x9b" "31m \xe2\x80\xae" "exe.gnp \xe2\x81\xa6" "x\xc2\x85");
    SF_CHECK_MSG(strcmp(b, "a\\xc2\\x9b31m \\xe2\\x80\\xaeexe.gnp \\xe2\\x81\\xa6x\\xc2\\x85") == 0, "%s", b);
    sf_escape_ctl(b, sizeof b, "caf\xc3\xa9 \xe6\x97\xa5 \xff\x9b");
    SF_CHECK_MSG(strcmp(b, "caf\xc3\xa9 \xe6\x97\xa5 \\xff\\x9b") == 0, "%s", b);
    sf_escape_ctl(b, 6, "ab\xe6\x97\xa5\xe6\x97\xa5"); /* never a cut character */
    SF_CHECK_MSG(strcmp(b, "ab\xe6\x97\xa5") == 0, "%s", b);
    sf_err err = {{0}};
    snprintf(err.msg, sizeof err.msg, "inner cause");
    sf_fail(&err, SF_E_FORMAT, "%s: %s (%s)", "outer", err.msg, "tail"); /* its own message as an argument */
    SF_CHECK_MSG(strcmp(err.msg, "outer: inner cause (tail)") == 0, "%s", err.msg);
    sf_fail(&err, SF_E_FORMAT, "peer said %s", "\x1b[31mred\a");
    SF_CHECK_MSG(strcmp(err.msg, "peer said \\x1b[31mred\\x07") == 0, "%s", err.msg);
}

static void test_open_input(void) {
    char dir[] = "/tmp/sf-test-open-XXXXXX", path[128];
    SF_CHECK(mkdtemp(dir) != NULL);
    sf_err err = {{0}};
    int fd = -1;
    struct stat st;
    /* a FIFO with no writer: refused at once where a file is needed, empty as a stream */
    snprintf(path, sizeof path, "%s/fifo", dir);
    SF_CHECK(mkfifo(path, 0600) == 0);
    SF_CHECK(sf_open_input(path, SF_IN_REGULAR, 0, &fd, &st, &err) == SF_E_IO && strstr(err.msg, "not a regular file"));
    sf_mmap m;
    SF_CHECK(sf_mmap_open(&m, path, &err) == SF_E_IO);
    char *data = NULL;
    size_t len = 1;
    SF_CHECK_OK(sf_read_file(path, &data, &len, 1 << 20, &err), &err);
    SF_CHECK(len == 0);
    free(data);
    unlink(path);
    /* devices and folders: refused without reading */
    SF_CHECK(sf_read_file("/dev/zero", &data, &len, (size_t)1 << 31, &err) == SF_E_IO && strstr(err.msg, "not a regular"));
    SF_CHECK(sf_open_input(dir, SF_IN_STREAM, 0, &fd, &st, &err) == SF_E_IO && strstr(err.msg, "is a directory"));
    /* a regular file larger than the cap: refused from its size, before reading */
    snprintf(path, sizeof path, "%s/big", dir);
    FILE *f = fopen(path, "wb");
    SF_CHECK(f && fputs("0123456789", f) >= 0 && fclose(f) == 0);
    SF_CHECK(sf_open_input(path, SF_IN_REGULAR, 4, &fd, &st, &err) == SF_E_FORMAT && strstr(err.msg, "10 bytes"));
    SF_CHECK_OK(sf_open_input(path, SF_IN_REGULAR, 10, &fd, &st, &err), &err);
    SF_CHECK(fd >= 0 && st.st_size == 10);
    close(fd);
    unlink(path);
    rmdir(dir);
}

static const sf_test tests[] = {
    {"rng_known", test_rng_known},
    {"rng_fill_mt", test_rng_fill_mt},
    {"bf16_round", test_bf16_round},     {"f16_round", test_f16_round},   {"tensor_strided", test_tensor_strided},
    {"checked_math", test_checked_math}, {"cli_forms", test_cli_forms},   {"device_parse", test_device_parse},
    {"stage_flags", test_stage_flags},   {"atomic_file", test_atomic_file},   {"check_out_dir", test_check_out_dir}, {"mkdir_p", test_mkdir_p},
    {"path_dir", test_path_dir},
    {"strict_int", test_strict_int},     {"utf8_names", test_utf8_names}, {"escape_ctl", test_escape_ctl},
    {"open_input", test_open_input},
    {"cpu_mode_flags", test_cpu_mode_flags},
};
SF_TEST_MAIN(tests)
