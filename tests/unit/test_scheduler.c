/* test_scheduler.c — the flow-matching tables, warped steps and argmin lookups, bit-exact
 * against tests/golden/expect/scheduler.safetensors, plus add_noise / flow→x0 by hand. */
#include "sf_test.h"
#include "tfile.h"
#include "stages/denoise/scheduler.h"

#include <stdio.h>

static void test_tables(void) {
    char p[1024];
    sf_err err = {{0}};
    sf_tfile *g = NULL;
    snprintf(p, sizeof p, "%s/expect/scheduler.safetensors", sf_test_golden());
    SF_CHECK_OK(sf_tfile_open(p, &g, &err), &err);
    if (!g) return;
    sf_scheduler s;
    SF_CHECK_OK(sf_scheduler_init(&s, 5.0, &err), &err);
    float ref[1001];
    sf_tensor_to_f32(sf_tfile_get(g, "sigmas"), ref);
    int bad = 0;
    for (int i = 0; i < 1000; i++) bad += memcmp(&ref[i], &s.sigmas[i], 4) != 0;
    SF_CHECK_MSG(bad == 0, "%d sigmas differ", bad);
    sf_tensor_to_f32(sf_tfile_get(g, "timesteps"), ref);
    bad = 0;
    for (int i = 0; i < 1000; i++) bad += memcmp(&ref[i], &s.timesteps[i], 4) != 0;
    SF_CHECK_MSG(bad == 0, "%d timesteps differ", bad);
    double raw[4] = {1000, 750, 500, 250};
    float w[4];
    SF_CHECK_OK(sf_scheduler_steps(&s, raw, 4, 1, w, &err), &err);
    sf_tensor_to_f32(sf_tfile_get(g, "denoising_step_list_warped"), ref);
    SF_CHECK(memcmp(w, ref, sizeof w) == 0);
    SF_CHECK(w[0] == 1000.0f && w[1] == 937.5f && w[3] == 625.0f);
    const sf_tensor *wi = sf_tfile_get(g, "warped_timestep_id");
    for (int i = 0; i < 4; i++) {
        SF_CHECK(sf_scheduler_index_f64(&s, w[i]) == (int)sf_tensor_get(wi, i));
        SF_CHECK(sf_scheduler_index_f32(&s, w[i]) == (int)sf_tensor_get(wi, i));
    }
    SF_CHECK(sf_scheduler_index_f64(&s, 0.0) == (int)sf_tensor_get(sf_tfile_get(g, "t0_timestep_id"), 0));
    const sf_tensor *ws = sf_tfile_get(g, "warped_sigma_f64");
    for (int i = 0; i < 4; i++) SF_CHECK((double)s.sigmas[sf_scheduler_index_f64(&s, w[i])] == sf_tensor_get(ws, i));
    /* flow→x0 at t=1000: sigma 1 → x0 = xt - flow; add_noise at 937.5: (1-0.9375)x0 + 0.9375 n */
    float xt[2] = {1.5f, -2.0f}, fl[2] = {0.25f, 1.0f}, x0[2], nz[2] = {2.0f, -1.0f}, out[2];
    sf_scheduler_flow_to_x0(&s, xt, fl, 2, 1000.0f, x0);
    SF_CHECK(x0[0] == 1.25f && x0[1] == -3.0f);
    sf_scheduler_add_noise(&s, x0, nz, 2, 937.5f, out);
    SF_CHECK(out[0] == 0.0625f * 1.25f + 0.9375f * 2.0f && out[1] == 0.0625f * -3.0f + 0.9375f * -1.0f);
    SF_CHECK(sf_scheduler_steps(&s, (double[]){1001}, 1, 1, w, &err) == SF_E_ARG);
    sf_tfile_destroy(&g);
}

static const sf_test tests[] = {{"tables", test_tables}};
SF_TEST_MAIN(tests)
