/* test_config.c — config.json → sf_dit_config, YAML parsing and OmegaConf-style merging,
 * and the run config read from our copies of the reference configs. */
#define _POSIX_C_SOURCE 200809L
#include "sf_test.h"
#include "config.h"

#include <unistd.h>

static void write_tmp(char *path, size_t n, const char *text) {
    snprintf(path, n, "/tmp/sf_cfg_XXXXXX");
    int fd = mkstemp(path);
    SF_CHECK(fd >= 0);
    if (fd < 0) return;
    SF_CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

static void test_dit_config_golden(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/model/config.json", sf_test_golden());
    sf_dit_config c;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_dit_config_load(p, &c, &err), &err);
    SF_CHECK(c.dim == 256 && c.num_heads == 2 && c.ffn_dim == 384 && c.num_layers == 3);
    SF_CHECK(c.text_dim == 64 && c.text_len == 512 && c.freq_dim == 256 && c.in_dim == 16 && c.out_dim == 16);
    SF_CHECK(c.patch_size[0] == 1 && c.patch_size[1] == 2 && c.patch_size[2] == 2 && c.qk_norm && c.cross_attn_norm);
    SF_CHECK(fabs(c.eps - 1e-6) < 1e-12);
}

static void test_dit_config_defaults(void) {
    /* the real Wan2.1-T2V-1.3B config.json omits text_dim, patch_size, qk_norm, cross_attn_norm */
    char p[64];
    write_tmp(p, sizeof p,
              "{\"_class_name\": \"WanModel\", \"dim\": 1536, \"eps\": 1e-06, \"ffn_dim\": 8960, \"freq_dim\": 256,"
              " \"in_dim\": 16, \"model_type\": \"t2v\", \"num_heads\": 12, \"num_layers\": 30, \"out_dim\": 16,"
              " \"text_len\": 512}");
    sf_dit_config c;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_dit_config_load(p, &c, &err), &err);
    SF_CHECK(c.dim == 1536 && c.text_dim == 4096 && c.patch_size[1] == 2 && c.qk_norm && c.cross_attn_norm);
    unlink(p);
    write_tmp(p, sizeof p, "{\"dim\": 100, \"num_heads\": 3}");
    SF_CHECK(sf_dit_config_load(p, &c, &err) == SF_E_FORMAT && strstr(err.msg, "divisible"));
    unlink(p);
    write_tmp(p, sizeof p, "{\"dim\": \"big\"}");
    SF_CHECK(sf_dit_config_load(p, &c, &err) == SF_E_FORMAT && strstr(err.msg, "'dim'"));
    unlink(p);
    write_tmp(p, sizeof p, "{\"dim\": 12");
    SF_CHECK(sf_dit_config_load(p, &c, &err) == SF_E_FORMAT);
    unlink(p);
    SF_CHECK(sf_dit_config_load("/nonexistent/config.json", &c, &err) == SF_E_IO);
}

static void test_yaml_merge(void) {
    const char *a = "x: 1\nnested:\n  a: 1\n  b: [1, 2, 3]\nlist: [1, 2]\nkeep: yes\n";
    const char *b = "x: 2\nnested:\n  b: [9]\n  c: 'hi'\nlist: [7]\nnew: 5\n";
    sf_yaml *ya, *yb;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_yaml_parse(a, strlen(a), "a", &ya, &err), &err);
    SF_CHECK_OK(sf_yaml_parse(b, strlen(b), "b", &yb, &err), &err);
    sf_yaml_merge(ya, yb);
    long l = 0;
    SF_CHECK(sf_yaml_long(ya, "x", &l, &err) == SF_OK && l == 2);          /* later wins */
    SF_CHECK(sf_yaml_long(ya, "nested.a", &l, &err) == SF_OK && l == 1);   /* nested maps merge */
    double v[8];
    int n = 8;
    SF_CHECK(sf_yaml_doubles(ya, "nested.b", v, &n, &err) == SF_OK && n == 1 && v[0] == 9); /* lists replaced */
    n = 8;
    SF_CHECK(sf_yaml_doubles(ya, "list", v, &n, &err) == SF_OK && n == 1 && v[0] == 7);
    const sf_yaml *c = sf_yaml_get(ya, "nested.c");
    SF_CHECK(c && c->quoted && strcmp(c->value, "hi") == 0);
    SF_CHECK(sf_yaml_long(ya, "nested.c", &l, &err) == SF_E_FORMAT);     /* quoted string is not a number */
    int bv = 0;
    SF_CHECK(sf_yaml_bool(ya, "keep", &bv, &err) == SF_OK && bv == 1);
    SF_CHECK(sf_yaml_long(ya, "new", &l, &err) == SF_OK && l == 5);
    SF_CHECK(sf_yaml_long(ya, "missing.key", &l, &err) == SF_E_NOTFOUND);
    sf_yaml_free(ya);
}

static void test_yaml_bad(void) {
    sf_yaml *y = NULL;
    sf_err err = {{0}};
    const char *bad[] = {"a: [1, 2\n", "a: b: c\n", "- 1\n- 2\n", "a: &x 1\nb: *x\n", "a: 1\n---\nb: 2\n", "\t- x\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sf_status s = sf_yaml_parse(bad[i], strlen(bad[i]), "bad.yaml", &y, &err);
        SF_CHECK_MSG(s != SF_OK && y == NULL && strstr(err.msg, "bad.yaml"), "case %zu: %s", i, err.msg);
    }
    /* deep nesting is refused, not a stack overflow */
    char deep[4096] = "";
    for (int i = 0; i < 500; i++) strcat(deep, "[");
    SF_CHECK(sf_yaml_parse(deep, strlen(deep), "deep", &y, &err) != SF_OK);
}

static void test_run_config_reference(void) {
    sf_run_config rc;
    sf_err err = {{0}};
    SF_CHECK_OK(sf_run_config_load("configs/default_config.yaml", "configs/self_forcing_dmd.yaml", &rc, &err), &err);
    SF_CHECK(rc.n_steps == 4 && rc.denoising_step_list[0] == 1000 && rc.denoising_step_list[3] == 250);
    SF_CHECK(rc.warp_denoising_step == 1 && rc.num_frame_per_block == 3 && rc.timestep_shift == 5.0);
    SF_CHECK(rc.independent_first_frame == 0 && rc.context_noise == 0 && rc.local_attn_size == -1);
    SF_CHECK(rc.has_shape && rc.image_or_video_shape[1] == 21 && rc.image_or_video_shape[4] == 104);
    SF_CHECK_OK(sf_run_config_load("configs/default_config.yaml", NULL, &rc, &err), &err);
    /* no model_kwargs → the wrapper's default shift 8.0; no step list; 1 frame per block */
    SF_CHECK(rc.n_steps == 0 && rc.timestep_shift == 8.0 && rc.num_frame_per_block == 1 && !rc.warp_denoising_step);
    SF_CHECK_OK(sf_run_config_load("configs/default_config.yaml", "configs/self_forcing_sid.yaml", &rc, &err), &err);
    SF_CHECK(rc.n_steps == 4 && rc.timestep_shift == 5.0);
    char p[64];
    write_tmp(p, sizeof p, "num_frame_per_block: 0\n");
    SF_CHECK(sf_run_config_load(NULL, p, &rc, &err) == SF_E_FORMAT);
    unlink(p);
    write_tmp(p, sizeof p, "image_or_video_shape: [1, 21, 16, 1e300, 104]\n");
    SF_CHECK(sf_run_config_load(NULL, p, &rc, &err) == SF_E_FORMAT && strstr(err.msg, "image_or_video_shape"));
    unlink(p);
    write_tmp(p, sizeof p, "num_frame_per_block: 99999999999\n");
    SF_CHECK(sf_run_config_load(NULL, p, &rc, &err) == SF_E_FORMAT && strstr(err.msg, "num_frame_per_block"));
    unlink(p);
    write_tmp(p, sizeof p, "model_kwargs:\n  timestep_shift: [1]\n");
    SF_CHECK(sf_run_config_load(NULL, p, &rc, &err) == SF_E_FORMAT && strstr(err.msg, "timestep_shift"));
    unlink(p);
    write_tmp(p, sizeof p, "model_kwargs:\n  local_attn_size: 12\n  sink_size: 3\n");
    SF_CHECK_OK(sf_run_config_load("configs/default_config.yaml", p, &rc, &err), &err);
    SF_CHECK(rc.local_attn_size == 12 && rc.sink_size == 3 && rc.timestep_shift == 8.0);
    unlink(p);
}

static const sf_test tests[] = {
    {"dit_config_golden", test_dit_config_golden},   {"dit_config_defaults", test_dit_config_defaults},
    {"yaml_merge", test_yaml_merge},                 {"yaml_bad", test_yaml_bad},
    {"run_config_reference", test_run_config_reference},
};
SF_TEST_MAIN(tests)
