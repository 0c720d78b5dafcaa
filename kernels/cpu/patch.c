/* patch.c — patchify / unpatchify layouts (see patch.h). Tested by tests/unit/test_kernels.c. */
#include "patch.h"

void sf_patchify_cpu(const float *x, int F, int C, int H, int W, int ph, int pw, float *P) {
    int hh = H / ph, ww = W / pw;
    int64_t pd = (int64_t)C * ph * pw;
    for (int f = 0; f < F; f++)
        for (int i = 0; i < hh; i++)
            for (int j = 0; j < ww; j++) {
                float *row = P + (((int64_t)f * hh + i) * ww + j) * pd;
                for (int c = 0; c < C; c++)
                    for (int q = 0; q < ph; q++)
                        for (int r = 0; r < pw; r++)
                            row[((int64_t)c * ph + q) * pw + r] =
                                x[(((int64_t)f * C + c) * H + (int64_t)ph * i + q) * W + (int64_t)pw * j + r];
            }
}

void sf_unpatchify_cpu(const float *O, int F, int C, int H, int W, int ph, int pw, float *y) {
    int hh = H / ph, ww = W / pw;
    int64_t pd = (int64_t)C * ph * pw;
    for (int f = 0; f < F; f++)
        for (int i = 0; i < hh; i++)
            for (int j = 0; j < ww; j++) {
                const float *row = O + (((int64_t)f * hh + i) * ww + j) * pd;
                for (int q = 0; q < ph; q++)
                    for (int r = 0; r < pw; r++)
                        for (int c = 0; c < C; c++)
                            y[(((int64_t)f * C + c) * H + (int64_t)ph * i + q) * W + (int64_t)pw * j + r] =
                                row[((int64_t)q * pw + r) * C + c];
            }
}
