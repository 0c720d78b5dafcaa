/* dnnl_none.c — dnnl_ops.h without oneDNN (`make DNNL=0`, and the GPU bundle: the device machine
 * has no libdnnl and the carried bundle must stay small): every call refuses, so the fast and bf16
 * CPU modes run the exact kernels (what each caller does when oneDNN refuses a call). */
#include "dnnl_ops.h"

int sf_dnnl_matmul(int64_t M, int64_t N, int64_t K, const void *a, int64_t lda, const void *b, int64_t ldb,
                   int b_kn, sf_dtype dt, const float *bias, float scale, float *c, int64_t ldc, int nthreads) {
    (void)M, (void)N, (void)K, (void)a, (void)lda, (void)b, (void)ldb, (void)b_kn, (void)dt, (void)bias, (void)scale;
    (void)c, (void)ldc, (void)nthreads;
    return -1;
}

int sf_dnnl_matmul_batch(int64_t nb, int64_t M, int64_t N, int64_t K, const float *a, const int64_t sa[3],
                         const float *b, const int64_t sb[3], float *c, const int64_t sc[3], int nthreads) {
    (void)nb, (void)M, (void)N, (void)K, (void)a, (void)sa, (void)b, (void)sb, (void)c, (void)sc, (void)nthreads;
    return -1;
}

int sf_dnnl_softmax_rows(int64_t rows, int64_t n, float *s, int64_t lds, int nthreads) {
    (void)rows, (void)n, (void)s, (void)lds, (void)nthreads;
    return -1;
}

int sf_dnnl_gelu_tanh(float *x, int64_t n, int nthreads) {
    (void)x, (void)n, (void)nthreads;
    return -1;
}

sf_status sf_dnnl_conv3d(const sf_conv3d_args *a, int bf16, sf_err *err) {
    (void)a, (void)bf16;
    return sf_fail(err, SF_E_UNSUPPORTED, "built without oneDNN (DNNL=0)");
}

unsigned long long sf_dnnl_calls(void) { return 0; }
unsigned long long sf_dnnl_refusals(void) { return 0; }
int sf_dnnl_bf16_jit(void) { return 0; }

int sf_dnnl_built(void) { return 0; }

int sf_dnnl_bf16_native(void) { return 0; }
