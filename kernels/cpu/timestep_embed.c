/* timestep_embed.c — sinusoidal timestep embedding (see timestep_embed.h). Mirrors
 * wan/modules/model.py sinusoidal_embedding_1d. Tested by tests/unit/test_kernels.c. */
#include "timestep_embed.h"

#include <math.h>

double sf_timestep_freq(int j, int dim) { return pow(10000.0, -((double)j / (double)(dim / 2))); }

void sf_timestep_embed_cpu(const float *t, int64_t n, int dim, double *out) {
    int half = dim / 2;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < half; j++) {
            double fr = sf_timestep_freq(j, dim);
            double a = (double)t[i] * fr;
            out[i * dim + j] = cos(a);
            out[i * dim + half + j] = sin(a);
        }
}
