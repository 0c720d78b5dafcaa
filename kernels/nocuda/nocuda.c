/* nocuda.c — the CUDA entry points of a CPU-only build (no nvcc at build time): each one
 * reports that CUDA is not compiled in, so --device cuda fails with a clear message.
 * Also stubs every function of kernels/cuda_ops.h, cuda_graph.h, fp8_cuda.h, sdpa_cuda.h, t5_cuda.h, conv_cuda.h, vae_ops_cuda.h and taehv_ops_cuda.h (SF_E_DEVICE). Tested by tests/unit/test_cuda_kernels.c. */
#include "cuda_ops.h"
#include "cuda_graph.h"
#include "device.h"
#include "conv_cuda.h"
#include "fp8_cuda.h"
#include "kv_compress_cuda.h"
#include "sdpa_cuda.h"
#include "t5_cuda.h"
#include "taehv_ops_cuda.h"
#include "vae_ops_cuda.h"

#include <string.h>

int sf_cuda_compiled(void) { return 0; }

sf_status sf_cuda_device_count(int *count, sf_err *err) {
    *count = 0;
    return sf_fail(err, SF_E_DEVICE, "this build has no CUDA support: rebuild with nvcc on PATH, or use --device cpu");
}

sf_status sf_cuda_geometry(int ordinal, int *sms, int *threads_per_sm, sf_err *err) {
    (void)ordinal;
    *sms = *threads_per_sm = 0;
    return sf_fail(err, SF_E_DEVICE, "this build has no CUDA support: rebuild with nvcc on PATH, or use --device cpu");
}

sf_status sf_cuda_describe(int ordinal, char *buf, size_t n, sf_err *err) {
    (void)ordinal;
    if (n) buf[0] = 0;
    return sf_fail(err, SF_E_DEVICE, "this build has no CUDA support: rebuild with nvcc on PATH, or use --device cpu");
}

/* kernels/cuda_ops.h: the CUDA context, memory helpers and kernels — all unavailable here. */
#define SF_NO_CUDA(err) sf_fail(err, SF_E_DEVICE, "this build has no CUDA support: rebuild with nvcc on PATH, or use --device cpu")

sf_status sf_cuda_ctx_init(sf_cuda_ctx *ctx, int ordinal, sf_err *err) {
    (void)ordinal;
    memset(ctx, 0, sizeof *ctx);
    return SF_NO_CUDA(err);
}

void sf_cuda_ctx_free(sf_cuda_ctx *ctx) {
    if (ctx) memset(ctx, 0, sizeof *ctx);
}

sf_status sf_cuda_sync(const sf_cuda_ctx *ctx, sf_err *err) {
    (void)ctx;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_alive(const sf_cuda_ctx *ctx, sf_err *err) {
    (void)ctx;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_malloc(void **dev, size_t bytes, sf_err *err) {
    (void)bytes;
    *dev = NULL;
    return SF_NO_CUDA(err);
}

void sf_cuda_free(void *dev) { (void)dev; }

sf_status sf_cuda_copy_h2d(const sf_cuda_ctx *ctx, void *dev, const void *host, size_t bytes, sf_err *err) {
    (void)ctx, (void)dev, (void)host, (void)bytes;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_copy_d2h(const sf_cuda_ctx *ctx, void *host, const void *dev, size_t bytes, sf_err *err) {
    (void)ctx, (void)host, (void)dev, (void)bytes;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_memset(const sf_cuda_ctx *ctx, void *dev, int byte, size_t bytes, sf_err *err) {
    (void)ctx, (void)dev, (void)byte, (void)bytes;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_upload_f32(const sf_cuda_ctx *ctx, void *dev, const float *host, size_t n, sf_err *err) {
    (void)ctx, (void)dev, (void)host, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_upload_bf16(const sf_cuda_ctx *ctx, void *dev, const float *host, size_t n, sf_err *err) {
    (void)ctx, (void)dev, (void)host, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_download_f32(const sf_cuda_ctx *ctx, float *host, const void *dev, size_t n, sf_err *err) {
    (void)ctx, (void)host, (void)dev, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_cuda_download_bf16(const sf_cuda_ctx *ctx, float *host, const void *dev, size_t n, sf_err *err) {
    (void)ctx, (void)host, (void)dev, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_gemm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x, int64_t ldx,
                       const void *w, const float *bias, void *y, sf_dtype ydt, int64_t ldy, sf_err *err) {
    (void)ctx, (void)M, (void)N, (void)K, (void)x, (void)ldx, (void)w, (void)bias, (void)y, (void)ydt, (void)ldy;
    return SF_NO_CUDA(err);
}

sf_status sf_rmsnorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx, const float *w,
                          double eps, void *y, int64_t ldy, sf_err *err) {
    (void)ctx, (void)M, (void)D, (void)x, (void)ldx, (void)w, (void)eps, (void)y, (void)ldy;
    return SF_NO_CUDA(err);
}

sf_status sf_layernorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx, const float *w,
                            const float *b, double eps, void *y, int64_t ldy, sf_err *err) {
    (void)ctx, (void)M, (void)D, (void)x, (void)ldx, (void)w, (void)b, (void)eps, (void)y, (void)ldy;
    return SF_NO_CUDA(err);
}

sf_status sf_gelu_tanh_cuda(const sf_cuda_ctx *ctx, void *x, int64_t n, sf_err *err) {
    (void)ctx, (void)x, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_silu_cuda(const sf_cuda_ctx *ctx, void *x, int64_t n, sf_err *err) {
    (void)ctx, (void)x, (void)n;
    return SF_NO_CUDA(err);
}

sf_status sf_modulate_cuda(const sf_cuda_ctx *ctx, int F, int64_t S, int64_t D, const void *x, const float *shift,
                           const float *scale, int64_t fstride, void *y, sf_err *err) {
    (void)ctx, (void)F, (void)S, (void)D, (void)x, (void)shift, (void)scale, (void)fstride, (void)y;
    return SF_NO_CUDA(err);
}

sf_status sf_gated_add_cuda(const sf_cuda_ctx *ctx, int F, int64_t S, int64_t D, void *x, const void *y,
                            const float *gate, int64_t fstride, sf_err *err) {
    (void)ctx, (void)F, (void)S, (void)D, (void)x, (void)y, (void)gate, (void)fstride;
    return SF_NO_CUDA(err);
}

/* DiT glue, explicit attention and copies (kernels/cuda/dit_glue.cu, attn_blas.cu, cuda_common.cu). */
sf_status sf_rope_cuda(const sf_cuda_ctx *ctx, void *x, int64_t ld, int F, int H, int W, int heads, int d, int n_t,
                       int n_h, int64_t start_frame, const double *cs, int max_pos, sf_err *err) {
    (void)ctx, (void)x, (void)ld, (void)F, (void)H, (void)W, (void)heads, (void)d, (void)n_t, (void)n_h;
    (void)start_frame, (void)cs, (void)max_pos;
    return SF_NO_CUDA(err);
}
sf_status sf_rope_time_shift_cuda(const sf_cuda_ctx *ctx, const void *src, int64_t lds, void *dst, int64_t ldd,
                                  int64_t n_tok, int heads, int d, int n_t, int64_t delta, const double *cs, int max_pos,
                                  sf_err *err) {
    (void)ctx, (void)src, (void)lds, (void)dst, (void)ldd, (void)n_tok, (void)heads, (void)d, (void)n_t, (void)delta;
    (void)cs, (void)max_pos;
    return SF_NO_CUDA(err);
}
sf_status sf_patchify_cuda(const sf_cuda_ctx *ctx, const float *x, int F, int C, int H, int W, int ph, int pw, void *P,
                           sf_err *err) {
    (void)ctx, (void)x, (void)F, (void)C, (void)H, (void)W, (void)ph, (void)pw, (void)P;
    return SF_NO_CUDA(err);
}
sf_status sf_unpatchify_cuda(const sf_cuda_ctx *ctx, const void *O, int F, int C, int H, int W, int ph, int pw,
                             float *y, sf_err *err) {
    (void)ctx, (void)O, (void)F, (void)C, (void)H, (void)W, (void)ph, (void)pw, (void)y;
    return SF_NO_CUDA(err);
}
sf_status sf_mod_table_cuda(const sf_cuda_ctx *ctx, int F, int64_t n, const float *mod, const void *e, int64_t lde,
                            int64_t period, float *out, sf_err *err) {
    (void)ctx, (void)F, (void)n, (void)mod, (void)e, (void)lde, (void)period, (void)out;
    return SF_NO_CUDA(err);
}
sf_status sf_add_cuda(const sf_cuda_ctx *ctx, void *x, const void *y, int64_t n, sf_err *err) {
    (void)ctx, (void)x, (void)y, (void)n;
    return SF_NO_CUDA(err);
}
sf_status sf_f32_to_bf16_cuda(const sf_cuda_ctx *ctx, const float *x, void *y, int64_t n, sf_err *err) {
    (void)ctx, (void)x, (void)y, (void)n;
    return SF_NO_CUDA(err);
}
sf_status sf_bf16_to_f32_cuda(const sf_cuda_ctx *ctx, const void *x, float *y, int64_t n, sf_err *err) {
    (void)ctx, (void)x, (void)y, (void)n;
    return SF_NO_CUDA(err);
}
sf_status sf_timestep_embed_cuda(const sf_cuda_ctx *ctx, const float *t, int n, int dim, const double *freq, void *out,
                                 sf_err *err) {
    (void)ctx, (void)t, (void)n, (void)dim, (void)freq, (void)out;
    return SF_NO_CUDA(err);
}
sf_status sf_flow_to_x0_cuda(const sf_cuda_ctx *ctx, const float *xt, const float *flow, int64_t n, double sigma,
                             float *x0, sf_err *err) {
    (void)ctx, (void)xt, (void)flow, (void)n, (void)sigma, (void)x0;
    return SF_NO_CUDA(err);
}
sf_status sf_add_noise_cuda(const sf_cuda_ctx *ctx, const float *x0, const float *noise, int64_t n, float sigma,
                            float *out, sf_err *err) {
    (void)ctx, (void)x0, (void)noise, (void)n, (void)sigma, (void)out;
    return SF_NO_CUDA(err);
}
sf_status sf_softmax_rows_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t n, const float *s, int64_t lds, void *p,
                               int64_t ldp, sf_err *err) {
    (void)ctx, (void)rows, (void)n, (void)s, (void)lds, (void)p, (void)ldp;
    return SF_NO_CUDA(err);
}
sf_status sf_attention_blas_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int H, int d, const void *q,
                                 int64_t ldq, const void *k, const void *v, int64_t ldk, void *o, int64_t ldo,
                                 float scale, float *S, void *P, int64_t chunk, sf_attn_logits_fn on_logits,
                                 void *cb_ctx, sf_err *err) {
    (void)ctx, (void)Lq, (void)Lk, (void)H, (void)d, (void)q, (void)ldq, (void)k, (void)v, (void)ldk, (void)o;
    (void)ldo, (void)scale, (void)S, (void)P, (void)chunk, (void)on_logits, (void)cb_ctx;
    return SF_NO_CUDA(err);
}
sf_status sf_cuda_copy_d2h_2d(const sf_cuda_ctx *ctx, void *host, size_t hpitch, const void *dev, size_t dpitch,
                              size_t width, size_t height, sf_err *err) {
    (void)ctx, (void)host, (void)hpitch, (void)dev, (void)dpitch, (void)width, (void)height;
    return SF_NO_CUDA(err);
}
sf_status sf_cuda_copy_d2d(const sf_cuda_ctx *ctx, void *dst, const void *src, size_t bytes, sf_err *err) {
    (void)ctx, (void)dst, (void)src, (void)bytes;
    return SF_NO_CUDA(err);
}

/* kernels/sdpa_cuda.h: cuDNN flash attention — unavailable here. */
sf_status sf_sdpa_new(sf_sdpa **out, void *cuda_stream, sf_err *err) {
    (void)cuda_stream;
    *out = NULL;
    return SF_NO_CUDA(err);
}
void sf_sdpa_destroy(sf_sdpa **s) {
    if (s) *s = NULL;
}
sf_status sf_sdpa_prepare(sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, int64_t ldq, int64_t ldk, int64_t ldo,
                          sf_err *err) {
    (void)s, (void)Lq, (void)Lk, (void)H, (void)d, (void)ldq, (void)ldk, (void)ldo;
    return SF_NO_CUDA(err);
}
sf_status sf_sdpa_forward(sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, const void *q, int64_t ldq,
                          const void *k, const void *v, int64_t ldk, void *o, int64_t ldo, float scale,
                          sf_err *err) {
    (void)s, (void)Lq, (void)Lk, (void)H, (void)d, (void)q, (void)ldq, (void)k, (void)v, (void)ldk, (void)o;
    (void)ldo, (void)scale;
    return SF_NO_CUDA(err);
}
sf_status sf_sdpa_describe(const sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, int64_t ldq, int64_t ldk,
                           int64_t ldo, char *desc, size_t desc_n, sf_err *err) {
    (void)s, (void)Lq, (void)Lk, (void)H, (void)d, (void)ldq, (void)ldk, (void)ldo;
    if (desc_n) desc[0] = 0;
    return SF_NO_CUDA(err);
}
sf_status sf_sdpa_plan_deviceless(const char *deviceprop_json_path, int64_t Lq, int64_t Lk, int H, int d,
                                  int64_t ldq, int64_t ldk, int64_t ldo, char *desc, size_t desc_n, sf_err *err) {
    (void)deviceprop_json_path, (void)Lq, (void)Lk, (void)H, (void)d, (void)ldq, (void)ldk, (void)ldo;
    if (desc_n) desc[0] = 0;
    return SF_NO_CUDA(err);
}
sf_status sf_sdpa_cudnn_version(int *version, sf_err *err) {
    *version = 0;
    return SF_NO_CUDA(err);
}
sf_status sf_cuda_host_alloc(void **p, size_t bytes, sf_err *err) {
    (void)bytes;
    *p = NULL;
    return SF_NO_CUDA(err);
}
void sf_cuda_host_free(void *p) { (void)p; }
sf_status sf_cuda_mem_info(size_t *free_bytes, size_t *total_bytes, sf_err *err) {
    *free_bytes = *total_bytes = 0;
    return SF_NO_CUDA(err);
}
sf_status sf_linear_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x, int64_t ldx,
                         const void *w, const void *bias, void *y, int64_t ldy, sf_err *err) {
    (void)ctx, (void)M, (void)N, (void)K, (void)x, (void)ldx, (void)w, (void)bias, (void)y, (void)ldy;
    return SF_NO_CUDA(err);
}
sf_status sf_linear_gelu_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x, int64_t ldx,
                              const void *w, const void *bias, void *y, int64_t ldy, sf_err *err) {
    return sf_linear_cuda(ctx, M, N, K, x, ldx, w, bias, y, ldy, err);
}
/* kernels/fp8_cuda.h */
sf_status sf_fp8_quantize_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t cols, const void *x, int64_t ldx,
                               void *codes, float *scale, sf_err *err) {
    (void)ctx, (void)rows, (void)cols, (void)x, (void)ldx, (void)codes, (void)scale;
    return SF_NO_CUDA(err);
}
sf_status sf_linear_fp8_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t N, int64_t K, const void *x8, const float *sx,
                             const void *w8, const float *sw, const void *bias, int gelu, void *y, int64_t ldy,
                             sf_err *err) {
    (void)ctx, (void)M, (void)N, (void)K, (void)x8, (void)sx, (void)w8, (void)sw, (void)bias, (void)gelu, (void)y,
        (void)ldy;
    return SF_NO_CUDA(err);
}
sf_status sf_cuda_events_new(void **ev, int n, sf_err *err) {
    (void)n;
    *ev = NULL;
    return SF_NO_CUDA(err);
}
void sf_cuda_events_free(void *ev, int n) { (void)ev, (void)n; }
sf_status sf_cuda_event_record(const sf_cuda_ctx *ctx, void *ev, int i, sf_err *err) {
    (void)ctx, (void)ev, (void)i;
    return SF_NO_CUDA(err);
}
sf_status sf_cuda_event_sync(void *ev, int i, sf_err *err) {
    (void)ev, (void)i;
    return SF_NO_CUDA(err);
}
sf_status sf_cuda_copy_h2d_async(const sf_cuda_ctx *ctx, void *dev, const void *pinned, size_t bytes, sf_err *err) {
    (void)ctx, (void)dev, (void)pinned, (void)bytes;
    return SF_NO_CUDA(err);
}
sf_status sf_cuda_event_ms(void *ev, int i, int j, float *ms, sf_err *err) {
    (void)ev, (void)i, (void)j;
    *ms = 0;
    return SF_NO_CUDA(err);
}
int sf_fused_norm_vector_loads(int on) {
    (void)on;
    return 1;
}
sf_status sf_ln_mod_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx, const float *w,
                         const float *b, double eps, int64_t S, const float *shift, const float *scale, int64_t fstride,
                         void *y, int64_t ldy, sf_err *err) {
    (void)ctx, (void)M, (void)D, (void)x, (void)ldx, (void)w, (void)b, (void)eps, (void)S, (void)shift, (void)scale;
    (void)fstride, (void)y, (void)ldy;
    return SF_NO_CUDA(err);
}
sf_status sf_rmsnorm_rope_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, const void *x, int64_t ldx,
                               const float *w, double eps, void *y, int64_t ldy, int heads, int d, int Hp, int Wp,
                               int n_t, int n_h, int64_t start_frame, const double *cs, int max_pos, sf_err *err) {
    (void)ctx, (void)M, (void)D, (void)x, (void)ldx, (void)w, (void)eps, (void)y, (void)ldy, (void)heads, (void)d;
    (void)Hp, (void)Wp, (void)n_t, (void)n_h, (void)start_frame, (void)cs, (void)max_pos;
    return SF_NO_CUDA(err);
}
sf_status sf_res_ln_mod_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, void *x, int64_t ldx, const void *res,
                             int64_t ldr, const float *gate, const float *w, const float *b, double eps, int64_t S,
                             const float *shift, const float *scale, int64_t fstride, void *y, int64_t ldy,
                             sf_err *err) {
    (void)ctx, (void)M, (void)D, (void)x, (void)ldx, (void)res, (void)ldr, (void)gate, (void)w, (void)b, (void)eps;
    (void)S, (void)shift, (void)scale, (void)fstride, (void)y, (void)ldy;
    return SF_NO_CUDA(err);
}
sf_status sf_f32_to_f16_cuda(const sf_cuda_ctx *ctx, const float *x, void *y, int64_t n, sf_err *err) {
    (void)ctx, (void)x, (void)y, (void)n;
    return SF_NO_CUDA(err);
}

/* kernels/t5_cuda.h: the umT5 encoder's kernels */
sf_status sf_t5_embed_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t D, const int64_t *ids, int64_t vocab,
                           const void *table, float *x, int64_t ldx, sf_err *err) {
    (void)ctx, (void)n, (void)D, (void)ids, (void)vocab, (void)table, (void)x, (void)ldx;
    return SF_NO_CUDA(err);
}
sf_status sf_t5_res_rmsnorm_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t D, float *x, int64_t ldx, const float *r,
                                 int64_t ldr, const float *w, double eps, void *y, sf_dtype ydt, int64_t ldy,
                                 sf_err *err) {
    (void)ctx, (void)M, (void)D, (void)x, (void)ldx, (void)r, (void)ldr, (void)w, (void)eps, (void)y, (void)ydt;
    (void)ldy;
    return SF_NO_CUDA(err);
}
sf_status sf_t5_bias_softmax_cuda(const sf_cuda_ctx *ctx, int H, int64_t rows, int64_t q0, int64_t Lk,
                                  int64_t ld, int64_t nk_valid, float *S, const int *bucket, int64_t off,
                                  const float *pos, int num_buckets, void *P, sf_err *err) {
    (void)ctx, (void)H, (void)rows, (void)q0, (void)Lk, (void)ld, (void)nk_valid, (void)S, (void)bucket, (void)off, (void)pos;
    (void)num_buckets, (void)P;
    return SF_NO_CUDA(err);
}
sf_status sf_t5_attention_cuda(const sf_cuda_ctx *ctx, int64_t L, int64_t nk_valid, int H, int d, const void *q,
                               const void *k, const void *v, int64_t ld, void *o, int64_t ldo, const int *bucket,
                               int64_t off, const float *pos, int num_buckets, float *S, void *P, int64_t chunk,
                               sf_err *err) {
    (void)ctx, (void)L, (void)nk_valid, (void)H, (void)d, (void)q, (void)k, (void)v, (void)ld, (void)o, (void)ldo;
    (void)bucket, (void)off, (void)pos, (void)num_buckets, (void)S, (void)P, (void)chunk;
    return SF_NO_CUDA(err);
}
sf_status sf_t5_gated_gelu_cuda(const sf_cuda_ctx *ctx, int64_t M, int64_t F, const float *g, int64_t ldg, void *h,
                                int64_t ldh, sf_err *err) {
    (void)ctx, (void)M, (void)F, (void)g, (void)ldg, (void)h, (void)ldh;
    return SF_NO_CUDA(err);
}
sf_status sf_t5_fill_random_cuda(const sf_cuda_ctx *ctx, void *p, int64_t n, uint64_t seed, float scale,
                                 sf_err *err) {
    (void)ctx, (void)p, (void)n, (void)seed, (void)scale;
    return SF_NO_CUDA(err);
}

/* kernels/vae_ops_cuda.h: the VAE decoder's GPU glue — unavailable here. */
sf_status sf_vae_rms_norm_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, const void *x, const float *gamma,
                               int silu, void *y, sf_err *err) {
    (void)ctx, (void)P, (void)C, (void)x, (void)gamma, (void)silu, (void)y;
    return SF_NO_CUDA(err);
}
sf_status sf_vae_upsample2x_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t H, int64_t W, int64_t C, const void *x,
                                 int64_t fstride, int64_t pstride, void *y, sf_err *err) {
    (void)ctx, (void)n, (void)H, (void)W, (void)C, (void)x, (void)fstride, (void)pstride, (void)y;
    return SF_NO_CUDA(err);
}
sf_status sf_vae_unscale_cuda(const sf_cuda_ctx *ctx, int64_t C, int64_t HW, const float *z, const float *mr, int bf16,
                              void *y, int64_t ldy, sf_err *err) {
    (void)ctx, (void)C, (void)HW, (void)z, (void)mr, (void)bf16, (void)y, (void)ldy;
    return SF_NO_CUDA(err);
}
sf_status sf_vae_bias_res_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, void *y, const void *bias,
                               const void *res, sf_err *err) {
    (void)ctx, (void)P, (void)C, (void)y, (void)bias, (void)res;
    return SF_NO_CUDA(err);
}
sf_status sf_vae_to_pixels_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t P, int64_t ldx, const void *x, uint8_t *u8,
                                float *video, sf_err *err) {
    (void)ctx, (void)n, (void)P, (void)ldx, (void)x, (void)u8, (void)video;
    return SF_NO_CUDA(err);
}

/* kernels/taehv_ops_cuda.h: the TAEHV decoder's GPU glue — unavailable here. */
sf_status sf_taehv_clamp_cuda(const sf_cuda_ctx *ctx, int64_t C, int64_t HW, const float *z, void *y, int64_t ldy,
                              sf_err *err) {
    (void)ctx, (void)C, (void)HW, (void)z, (void)y, (void)ldy;
    return SF_NO_CUDA(err);
}
sf_status sf_relu_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, void *x, sf_err *err) {
    (void)ctx, (void)P, (void)C, (void)x;
    return SF_NO_CUDA(err);
}
sf_status sf_taehv_cat_roll_cuda(const sf_cuda_ctx *ctx, int64_t P, int64_t C, const void *x, void *past, void *cat,
                                 sf_err *err) {
    (void)ctx, (void)P, (void)C, (void)x, (void)past, (void)cat;
    return SF_NO_CUDA(err);
}

/* kernels/conv_cuda.h: cuDNN conv3d — unavailable here. */
sf_status sf_conv_cudnn_new(sf_conv_cudnn **out, const sf_cuda_ctx *ctx, sf_err *err) {
    (void)ctx;
    *out = NULL;
    return SF_NO_CUDA(err);
}
void sf_conv_cudnn_destroy(sf_conv_cudnn **c) {
    if (c) *c = NULL;
}
sf_status sf_conv_cudnn_prepare(sf_conv_cudnn *c, const sf_conv_shape *s, sf_err *err) {
    (void)c, (void)s;
    return SF_NO_CUDA(err);
}
sf_status sf_conv_cudnn_forward(sf_conv_cudnn *c, const sf_conv_shape *s, const void *x, const void *w,
                                const void *bias, const void *res, void *y, sf_err *err) {
    (void)c, (void)s, (void)x, (void)w, (void)bias, (void)res, (void)y;
    return SF_NO_CUDA(err);
}
sf_status sf_conv_cudnn_describe(const sf_conv_cudnn *c, const sf_conv_shape *s, char *desc, size_t n, sf_err *err) {
    (void)c, (void)s;
    if (n) desc[0] = 0;
    return SF_NO_CUDA(err);
}
size_t sf_conv_cudnn_bytes(const sf_conv_cudnn *c) {
    (void)c;
    return 0;
}
int sf_conv_cudnn_tune_report(const sf_conv_cudnn *c, char *buf, size_t n) {
    (void)c;
    if (n) buf[0] = 0;
    return 0;
}
sf_status sf_conv_cudnn_plan_deviceless(const char *deviceprop_json_path, const sf_conv_shape *s, char *desc,
                                        size_t desc_n, sf_err *err) {
    (void)deviceprop_json_path, (void)s;
    if (desc_n) desc[0] = 0;
    return SF_NO_CUDA(err);
}

/* kernels/tap_mass_cuda.h: the attention-tap probability aggregates. */
#include "tap_mass_cuda.h"
sf_status sf_tap_row_mass_cuda(const sf_cuda_ctx *ctx, int H, int64_t rows, int64_t r0, int64_t Lq, int64_t Lk,
                               const float *S, int64_t lds, int64_t G, int64_t NG, float *rowmass, float *lse,
                               sf_err *err) {
    (void)ctx, (void)H, (void)rows, (void)r0, (void)Lq, (void)Lk, (void)S, (void)lds, (void)G, (void)NG, (void)rowmass,
        (void)lse;
    return SF_NO_CUDA(err);
}
sf_status sf_frame_means_cuda(const sf_cuda_ctx *ctx, int64_t nframes, int64_t S, int64_t D, const void *x, int64_t ld,
                              double *means, sf_err *err) {
    (void)ctx, (void)nframes, (void)S, (void)D, (void)x, (void)ld, (void)means;
    return SF_NO_CUDA(err);
}
sf_status sf_frame_logit_means_cuda(const sf_cuda_ctx *ctx, int H, int64_t d, int64_t QF, int64_t KF, const double *qm,
                                    const double *km, double scale, float *out, sf_err *err) {
    (void)ctx, (void)H, (void)d, (void)QF, (void)KF, (void)qm, (void)km, (void)scale, (void)out;
    return SF_NO_CUDA(err);
}
sf_status sf_tap_mass_reduce_cuda(const sf_cuda_ctx *ctx, int H, int64_t Lq, int64_t NG, int64_t S, int renorm,
                                  const float *rowmass, const float *lse, double *rowtot, float *out, float *stats,
                                  sf_err *err) {
    (void)ctx, (void)H, (void)Lq, (void)NG, (void)S, (void)renorm, (void)rowmass, (void)lse, (void)rowtot, (void)out,
        (void)stats;
    return SF_NO_CUDA(err);
}

sf_status sf_tap_token_mass_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t NG, const float *lse, float *s,
                                 sf_err *err) {
    (void)ctx, (void)rows, (void)NG, (void)lse, (void)s;
    return SF_NO_CUDA(err);
}
sf_status sf_tap_token_mass_qk_cuda(const sf_cuda_ctx *ctx, int H, int64_t Lq, int64_t NG, int d, const void *q,
                                    int64_t ldq, const void *k, int64_t ldk, float scale, const float *lse, float *rowmass,
                                    sf_err *err) {
    (void)ctx, (void)H, (void)Lq, (void)NG, (void)d, (void)q, (void)ldq, (void)k, (void)ldk, (void)scale, (void)lse,
        (void)rowmass;
    return SF_NO_CUDA(err);
}

/* kernels/attn_mass_cuda.h: the attention with its key-group probability mass in one pass. */
#include "attn_mass_cuda.h"
int sf_attn_mass_head_dim_ok(int d) {
    (void)d;
    return 0;
}
const char *sf_attn_mass_last_kernel(void) { return NULL; }
int sf_attn_mass_last_split(int64_t *tail_units) {
    if (tail_units) *tail_units = 0;
    return 1;
}
sf_status sf_attn_mass_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int H, int d, const void *q, int64_t ldq,
                            const void *k, const void *v, int64_t ldk, void *o, int64_t ldo, float scale, int64_t G,
                            int64_t NG, float *rowmass, float *lse, sf_err *err) {
    (void)ctx, (void)Lq, (void)Lk, (void)H, (void)d, (void)q, (void)ldq, (void)k, (void)v, (void)ldk, (void)o, (void)ldo,
        (void)scale, (void)G, (void)NG, (void)rowmass, (void)lse;
    return SF_NO_CUDA(err);
}

/* kernels/hopper_probe_cuda.h: the Hopper probes. */
#include "hopper_probe_cuda.h"
sf_status sf_hopper_probe_wgmma(const sf_cuda_ctx *ctx, int mode, const void *a, const void *b, float *d, sf_err *err) {
    (void)ctx, (void)mode, (void)a, (void)b, (void)d;
    return SF_NO_CUDA(err);
}
sf_status sf_hopper_probe_tma(const sf_cuda_ctx *ctx, const void *m, int64_t rows, int64_t cols, int64_t pitch,
                              float *out, sf_err *err) {
    (void)ctx, (void)m, (void)rows, (void)cols, (void)pitch, (void)out;
    return SF_NO_CUDA(err);
}
sf_status sf_hopper_probe_turns(const sf_cuda_ctx *ctx, float *out, sf_err *err) {
    (void)ctx, (void)out;
    return SF_NO_CUDA(err);
}

/* kernels/cuda_graph.h */
sf_status sf_cuda_graphs_new(sf_cuda_graphs **out, sf_err *err) {
    *out = NULL;
    return SF_NO_CUDA(err);
}
void sf_cuda_graphs_free(sf_cuda_graphs *gs) { (void)gs; }
sf_status sf_cuda_graph_begin(const sf_cuda_ctx *ctx, sf_err *err) {
    (void)ctx;
    return SF_NO_CUDA(err);
}
sf_status sf_cuda_graph_end(const sf_cuda_ctx *ctx, sf_cuda_graphs *gs, uint64_t key, int run, sf_err *err) {
    (void)ctx, (void)gs, (void)key, (void)run;
    return SF_NO_CUDA(err);
}
void sf_cuda_graph_stats_get(const sf_cuda_graphs *gs, sf_cuda_graph_stats *out) {
    (void)gs;
    memset(out, 0, sizeof *out);
}
sf_status sf_cuda_scratch(const sf_cuda_ctx *ctx, size_t bytes, void **p, sf_err *err) {
    (void)ctx, (void)bytes;
    *p = NULL;
    return SF_NO_CUDA(err);
}
sf_status sf_cuda_copy_d2h_async(const sf_cuda_ctx *ctx, void *pinned, const void *dev, size_t bytes, sf_err *err) {
    (void)ctx, (void)pinned, (void)dev, (void)bytes;
    return SF_NO_CUDA(err);
}

/* kernels/kv_compress_cuda.h: Participative Compression's kernels. */
sf_status sf_key_mass_rows_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t Lk, const float *S, int64_t lds,
                                int64_t k0, int64_t nk, double *lse_ws, double *acc, sf_err *err) {
    (void)ctx, (void)rows, (void)Lk, (void)S, (void)lds, (void)k0, (void)nk, (void)lse_ws, (void)acc;
    return SF_NO_CUDA(err);
}
sf_status sf_key_mass_cuda(const sf_cuda_ctx *ctx, int64_t Lq, int64_t Lk, int H, int d, const void *q, int64_t ldq,
                           const void *k, int64_t ldk, float scale, int64_t k0, int64_t nk, float *S_ws, int64_t ws_rows,
                           double *lse_ws, double *out, sf_err *err) {
    (void)ctx, (void)Lq, (void)Lk, (void)H, (void)d, (void)q, (void)ldq, (void)k, (void)ldk, (void)scale, (void)k0;
    (void)nk, (void)S_ws, (void)ws_rows, (void)lse_ws, (void)out;
    return SF_NO_CUDA(err);
}
sf_status sf_kv_gather_cuda(const sf_cuda_ctx *ctx, void *x, int64_t ld, int H, int d, int64_t keep, const int32_t *idx,
                            void *tmp, sf_err *err) {
    (void)ctx, (void)x, (void)ld, (void)H, (void)d, (void)keep, (void)idx, (void)tmp;
    return SF_NO_CUDA(err);
}
sf_status sf_ring_put_cuda(const sf_cuda_ctx *ctx, void *ring, int64_t R, int64_t D, int64_t pos, const void *x,
                           int64_t ldx, int64_t n, sf_err *err) {
    (void)ctx, (void)ring, (void)R, (void)D, (void)pos, (void)x, (void)ldx, (void)n;
    return SF_NO_CUDA(err);
}
sf_status sf_ring_sum_cuda(const sf_cuda_ctx *ctx, const void *ring, int64_t R, int64_t D, int64_t head, int64_t n,
                           double *out, sf_err *err) {
    (void)ctx, (void)ring, (void)R, (void)D, (void)head, (void)n, (void)out;
    return SF_NO_CUDA(err);
}
sf_status sf_pc_scores_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t D, const void *k, int64_t ldk, const double *qsum,
                            double scale, double *out, sf_err *err) {
    (void)ctx, (void)n, (void)D, (void)k, (void)ldk, (void)qsum, (void)scale, (void)out;
    return SF_NO_CUDA(err);
}
sf_status sf_topk_select_cuda(const sf_cuda_ctx *ctx, int nseg, int64_t n, const double *score, int64_t lds,
                              const int32_t *count, int64_t ldc, int max_reuse, int64_t keep, int32_t *idx, int64_t ldi,
                              int64_t *fills, sf_err *err) {
    (void)ctx, (void)nseg, (void)n, (void)score, (void)lds, (void)count, (void)ldc, (void)max_reuse, (void)keep;
    (void)idx, (void)ldi, (void)fills;
    return SF_NO_CUDA(err);
}
sf_status sf_pc_finish_cuda(const sf_cuda_ctx *ctx, int64_t n, int64_t topc, int64_t old, int32_t *idx, int32_t *cnt,
                            int64_t ncnt, int32_t *tmp, sf_err *err) {
    (void)ctx, (void)n, (void)topc, (void)old, (void)idx, (void)cnt, (void)ncnt, (void)tmp;
    return SF_NO_CUDA(err);
}
sf_status sf_fill_i32_cuda(const sf_cuda_ctx *ctx, int32_t *x, int64_t n, int32_t v, sf_err *err) {
    (void)ctx, (void)x, (void)n, (void)v;
    return SF_NO_CUDA(err);
}
