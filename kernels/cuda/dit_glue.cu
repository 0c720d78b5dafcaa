/* dit_glue.cu — the DiT's memory-bound glue on the GPU, bf16 storage with fp32 (fp64 where the
 * reference uses it) arithmetic: 3-axis RoPE, patchify / unpatchify, the per-frame modulation
 * table, residual add, dtype conversions and the row softmax of the explicit attention path.
 * Declarations and contracts: kernels/cuda_ops.h. CPU references: kernels/rope.h
 * (sf_rope_apply_cpu), kernels/patch.h (sf_patchify_cpu / sf_unpatchify_cpu), kernels/modulate.h
 * (sf_mod_table_cpu), kernels/attention.h (sf_softmax_rows_cpu), kernels/timestep_embed.h
 * (sf_timestep_embed_cpu), stages/denoise/scheduler.h (sf_flow_to_x0_cpu / sf_add_noise_cpu).
 * Tested on the host through the CPU emulation layer (tests/unit/test_cuda_emu) and on a GPU by
 * tests/unit/test_cuda_kernels.c (tests/gpu/check.sh). */
#include "cuda_common.cuh"

/* ---------------------------------------------------------------- RoPE */

/* Element i of a grid-stride loop over (token, head, pair j) with c pairs a head: its token, head and pair. */
static __device__ __forceinline__ int64_t pair_of(int64_t i, int c, int heads, int *h, int *j) {
    const int64_t tok = i / ((int64_t)c * heads);
    const int rem = (int)(i - tok * c * heads);
    *h = rem / c, *j = rem - *h * c;
    return tok;
}

/* One thread per (token, pair j, head). cs: (max_pos, d/2, 2) fp64 cos/sin of pair j's own axis
 * (sf_rope_table layout). z' = z·(cos + i·sin) in fp64, rounded once to bf16 (the reference's
 * complex128 product then .type_as(x)). */
static __global__ void rope_kernel(__nv_bfloat16 *x, int64_t ld, int64_t n_tok, int H, int W, int heads, int d,
                                   int n_t, int n_h, int64_t start_frame, const double *__restrict__ cs) {
    const int c = d / 2;
    const int64_t total = n_tok * c * heads;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int h, j;
        const int64_t tok = pair_of(i, c, heads, &h, &j);
        int64_t hw = tok % ((int64_t)H * W);
        int64_t pos = j < n_t ? start_frame + tok / ((int64_t)H * W) : (j < n_t + n_h ? hw / W : hw % W);
        const double *p = cs + ((size_t)pos * c + j) * 2;
        __nv_bfloat16 *z = x + tok * ld + (int64_t)h * d + 2 * j;
        double re = (double)sf_bf(z[0]), im = (double)sf_bf(z[1]);
        z[0] = __double2bfloat16(re * p[0] - im * p[1]);
        z[1] = __double2bfloat16(re * p[1] + im * p[0]);
    }
}

extern "C" sf_status sf_rope_cuda(const sf_cuda_ctx *ctx, void *x, int64_t ld, int F, int H, int W, int heads, int d,
                                  int n_t, int n_h, int64_t start_frame, const double *cs, int max_pos, sf_err *err) {
    sf_status st = SF_OK;
    int64_t n_tok = (int64_t)F * H * W;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_rope_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(F >= 0 && H > 0 && W > 0 && heads > 0 && d > 0 && d % 2 == 0 && ld >= (int64_t)heads * d,
                    "sf_rope_cuda: bad shape F=%d H=%d W=%d heads=%d d=%d ld=%lld", F, H, W, heads, d, (long long)ld);
    SF_CUDA_REQUIRE(start_frame >= 0 && start_frame + F <= max_pos && H <= max_pos && W <= max_pos,
                    "sf_rope_cuda: position past the table (%d positions)", max_pos);
    if (n_tok == 0) return SF_OK;
    SF_LAUNCH(rope_kernel, sf_cuda_blocks(n_tok * (d / 2) * heads, 256), 256, 0, SF_CUDA_STREAM(ctx),
              (__nv_bfloat16 *)x, ld, n_tok, H, W, heads, d, n_t, n_h, start_frame, cs);
    CUDA_CHECK_LAUNCH("rope_kernel");
    return SF_OK;
fail:
    return st;
}

/* Deep Sink's re-alignment: one thread per (token, pair j, head); time pairs z' = z·(cos + i·sgn·sin) of row |delta|
 * in fp64, one rounding to bf16; height / width pairs copied (src and dst may be the same rows). */
static __global__ void rope_time_shift_kernel(const __nv_bfloat16 *src, int64_t lds, __nv_bfloat16 *dst, int64_t ldd,
                                              int64_t n_tok, int heads, int d, int n_t, int64_t a, double sgn,
                                              const double *__restrict__ cs) {
    const int c = d / 2;
    const int64_t total = n_tok * c * heads;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int h, j;
        const int64_t tok = pair_of(i, c, heads, &h, &j);
        const __nv_bfloat16 *z = src + tok * lds + (int64_t)h * d + 2 * j;
        __nv_bfloat16 *o = dst + tok * ldd + (int64_t)h * d + 2 * j;
        const __nv_bfloat16 z0 = z[0], z1 = z[1];
        if (j >= n_t) {
            o[0] = z0, o[1] = z1;
            continue;
        }
        const double *p = cs + ((size_t)a * c + j) * 2;
        const double re = (double)sf_bf(z0), im = (double)sf_bf(z1), si = sgn * p[1];
        o[0] = __double2bfloat16(re * p[0] - im * si);
        o[1] = __double2bfloat16(re * si + im * p[0]);
    }
}

extern "C" sf_status sf_rope_time_shift_cuda(const sf_cuda_ctx *ctx, const void *src, int64_t lds, void *dst, int64_t ldd,
                                             int64_t n_tok, int heads, int d, int n_t, int64_t delta, const double *cs,
                                             int max_pos, sf_err *err) {
    sf_status st = SF_OK;
    const int64_t a = delta < 0 ? -delta : delta;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_rope_time_shift_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(n_tok >= 0 && heads > 0 && d > 0 && d % 2 == 0 && n_t >= 0 && n_t <= d / 2 &&
                        lds >= (int64_t)heads * d && ldd >= (int64_t)heads * d,
                    "sf_rope_time_shift_cuda: bad shape tokens=%lld heads=%d d=%d n_t=%d", (long long)n_tok, heads, d, n_t);
    SF_CUDA_REQUIRE(a < max_pos, "sf_rope_time_shift_cuda: shift %lld past the table (%d positions)", (long long)delta,
                    max_pos);
    if (n_tok == 0) return SF_OK;
    SF_LAUNCH(rope_time_shift_kernel, sf_cuda_blocks(n_tok * (d / 2) * heads, 256), 256, 0, SF_CUDA_STREAM(ctx),
              (const __nv_bfloat16 *)src, lds, (__nv_bfloat16 *)dst, ldd, n_tok, heads, d, n_t, a,
              delta < 0 ? -1.0 : 1.0, cs);
    CUDA_CHECK_LAUNCH("rope_time_shift_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- patchify / unpatchify */

/* P[tok, c·ph·pw + q·pw + r] = ⌊x[f, c, ph·h'+q, pw·w'+r]⌉ (x_t is bf16 in the reference). */
static __global__ void patchify_kernel(const float *__restrict__ x, int F, int C, int H, int W, int ph, int pw,
                                       __nv_bfloat16 *__restrict__ P) {
    const int Hp = H / ph, Wp = W / pw, K = C * ph * pw;
    const int64_t total = (int64_t)F * Hp * Wp * K;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t tok = i / K;
        int p = (int)(i - tok * K);
        int c = p / (ph * pw), q = (p / pw) % ph, r = p % pw;
        int64_t f = tok / ((int64_t)Hp * Wp);
        int hw = (int)(tok - f * Hp * Wp), hh = hw / Wp, ww = hw % Wp;
        P[i] = sf_tobf(x[((f * C + c) * H + (int64_t)ph * hh + q) * W + (int64_t)pw * ww + r]);
    }
}

/* y[f, c, ph·h'+q, pw·w'+r] = O[tok, (q·pw + r)·C + c] (head order, c fastest), widened to f32. */
static __global__ void unpatchify_kernel(const __nv_bfloat16 *__restrict__ O, int F, int C, int H, int W, int ph,
                                         int pw, float *__restrict__ y) {
    const int64_t total = (int64_t)F * C * H * W;
    const int Hp = H / ph, Wp = W / pw;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t f = i / ((int64_t)C * H * W);
        int rem = (int)(i - f * C * H * W);
        int c = rem / (H * W), yy = (rem / W) % H, xx = rem % W;
        int hh = yy / ph, q = yy % ph, ww = xx / pw, r = xx % pw;
        int64_t tok = (f * Hp + hh) * Wp + ww;
        y[i] = sf_bf(O[tok * ((int64_t)ph * pw * C) + (q * pw + r) * C + c]);
    }
}

static sf_status patch_args(const char *op, const sf_cuda_ctx *ctx, int F, int C, int H, int W, int ph, int pw,
                            sf_err *err) {
    if (!ctx || !ctx->stream) return sf_fail(err, SF_E_ARG, "%s: CUDA context not initialised", op);
    if (F < 0 || C < 1 || ph < 1 || pw < 1 || H < ph || W < pw || H % ph || W % pw)
        return sf_fail(err, SF_E_ARG, "%s: bad shape F=%d C=%d H=%d W=%d patch %dx%d", op, F, C, H, W, ph, pw);
    return SF_OK;
}

extern "C" sf_status sf_patchify_cuda(const sf_cuda_ctx *ctx, const float *x, int F, int C, int H, int W, int ph,
                                      int pw, void *P, sf_err *err) {
    sf_status st = patch_args("sf_patchify_cuda", ctx, F, C, H, W, ph, pw, err);
    if (st != SF_OK) return st;
    int64_t total = (int64_t)F * C * H * W;
    if (total == 0) return SF_OK;
    SF_LAUNCH(patchify_kernel, sf_cuda_blocks(total, 256), 256, 0, SF_CUDA_STREAM(ctx), x, F, C, H, W, ph, pw,
              (__nv_bfloat16 *)P);
    CUDA_CHECK_LAUNCH("patchify_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_unpatchify_cuda(const sf_cuda_ctx *ctx, const void *O, int F, int C, int H, int W, int ph,
                                        int pw, float *y, sf_err *err) {
    sf_status st = patch_args("sf_unpatchify_cuda", ctx, F, C, H, W, ph, pw, err);
    if (st != SF_OK) return st;
    int64_t total = (int64_t)F * C * H * W;
    if (total == 0) return SF_OK;
    SF_LAUNCH(unpatchify_kernel, sf_cuda_blocks(total, 256), 256, 0, SF_CUDA_STREAM(ctx),
              (const __nv_bfloat16 *)O, F, C, H, W, ph, pw, y);
    CUDA_CHECK_LAUNCH("unpatchify_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- modulation table, residual */

/* out[f·n + i] = ⌊ mod[i] + e[f·lde + i % period] ⌉ (f32 holding a bf16 value). */
static __global__ void mod_table_kernel(int F, int64_t n, const float *__restrict__ mod,
                                        const __nv_bfloat16 *__restrict__ e, int64_t lde, int64_t period,
                                        float *__restrict__ out) {
    const int64_t total = (int64_t)F * n;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t f = i / n, j = i - f * n;
        out[i] = sf_round_bf(mod[j] + sf_bf(e[f * lde + j % period]));
    }
}

extern "C" sf_status sf_mod_table_cuda(const sf_cuda_ctx *ctx, int F, int64_t n, const float *mod, const void *e,
                                       int64_t lde, int64_t period, float *out, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_mod_table_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(F >= 0 && n >= 0 && period >= 1 && lde >= (period < n ? period : n),
                    "sf_mod_table_cuda: bad shape F=%d n=%lld lde=%lld period=%lld", F, (long long)n, (long long)lde,
                    (long long)period);
    if ((int64_t)F * n == 0) return SF_OK;
    SF_LAUNCH(mod_table_kernel, sf_cuda_blocks((int64_t)F * n, 256), 256, 0, SF_CUDA_STREAM(ctx), F, n, mod,
              (const __nv_bfloat16 *)e, lde, period, out);
    CUDA_CHECK_LAUNCH("mod_table_kernel");
    return SF_OK;
fail:
    return st;
}

/* x = ⌊ x + y ⌉ over n bf16 values (the cross-attention residual). */
static __global__ void add_kernel(int64_t n, __nv_bfloat16 *x, const __nv_bfloat16 *y) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = sf_tobf(sf_bf(x[i]) + sf_bf(y[i]));
}

extern "C" sf_status sf_add_cuda(const sf_cuda_ctx *ctx, void *x, const void *y, int64_t n, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_add_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(n >= 0, "sf_add_cuda: negative length %lld", (long long)n);
    if (n == 0) return SF_OK;
    SF_LAUNCH(add_kernel, sf_cuda_blocks(n, 256), 256, 0, SF_CUDA_STREAM(ctx), n, (__nv_bfloat16 *)x,
              (const __nv_bfloat16 *)y);
    CUDA_CHECK_LAUNCH("add_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- conversions */

static __global__ void f32_to_bf16_kernel(int64_t n, const float *__restrict__ x, __nv_bfloat16 *__restrict__ y) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = sf_tobf(x[i]);
}

static __global__ void bf16_to_f32_kernel(int64_t n, const __nv_bfloat16 *__restrict__ x, float *__restrict__ y) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = sf_bf(x[i]);
}

extern "C" sf_status sf_f32_to_bf16_cuda(const sf_cuda_ctx *ctx, const float *x, void *y, int64_t n, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream && n >= 0, "sf_f32_to_bf16_cuda: bad arguments");
    if (n == 0) return SF_OK;
    SF_LAUNCH(f32_to_bf16_kernel, sf_cuda_blocks(n, 256), 256, 0, SF_CUDA_STREAM(ctx), n, x, (__nv_bfloat16 *)y);
    CUDA_CHECK_LAUNCH("f32_to_bf16_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_bf16_to_f32_cuda(const sf_cuda_ctx *ctx, const void *x, float *y, int64_t n, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream && n >= 0, "sf_bf16_to_f32_cuda: bad arguments");
    if (n == 0) return SF_OK;
    SF_LAUNCH(bf16_to_f32_kernel, sf_cuda_blocks(n, 256), 256, 0, SF_CUDA_STREAM(ctx), n,
              (const __nv_bfloat16 *)x, y);
    CUDA_CHECK_LAUNCH("bf16_to_f32_kernel");
    return SF_OK;
fail:
    return st;
}

static __global__ void f32_to_f16_kernel(int64_t n, const float *__restrict__ x, uint16_t *__restrict__ y) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = __half_as_ushort(__float2half_rn(x[i]));
}

extern "C" sf_status sf_f32_to_f16_cuda(const sf_cuda_ctx *ctx, const float *x, void *y, int64_t n, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream && n >= 0, "sf_f32_to_f16_cuda: bad arguments");
    if (n == 0) return SF_OK;
    SF_LAUNCH(f32_to_f16_kernel, sf_cuda_blocks(n, 256), 256, 0, SF_CUDA_STREAM(ctx), n, x, (uint16_t *)y);
    CUDA_CHECK_LAUNCH("f32_to_f16_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- row softmax */

#define SOFTMAX_THREADS 256

/* One block per row: p = ⌊ exp(s − max) / Σ exp(s − max) ⌉, s = logits (already scaled), fp32
 * statistics. The logits stay in place for a tap; P is bf16 for the P·V product. */
static __global__ void softmax_rows_kernel(int64_t n, const float *__restrict__ s, int64_t lds,
                                           __nv_bfloat16 *__restrict__ p, int64_t ldp) {
    __shared__ float shm[32];
    const float *sr = s + (int64_t)blockIdx.x * lds;
    __nv_bfloat16 *pr = p + (int64_t)blockIdx.x * ldp;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, sr[i]);
    m = sf_block_max(m, shm);
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += expf(sr[i] - m);
    sum = sf_block_sum(sum, shm);
    const float inv = 1.0f / sum;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) pr[i] = sf_tobf(expf(sr[i] - m) * inv);
}

extern "C" sf_status sf_softmax_rows_cuda(const sf_cuda_ctx *ctx, int64_t rows, int64_t n, const float *s,
                                          int64_t lds, void *p, int64_t ldp, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream, "sf_softmax_rows_cuda: CUDA context not initialised");
    SF_CUDA_REQUIRE(rows >= 0 && rows <= INT_MAX && n >= 1 && lds >= n && ldp >= n,
                    "sf_softmax_rows_cuda: bad shape rows=%lld n=%lld lds=%lld ldp=%lld", (long long)rows,
                    (long long)n, (long long)lds, (long long)ldp);
    if (rows == 0) return SF_OK;
    SF_LAUNCH(softmax_rows_kernel, (unsigned)rows, SOFTMAX_THREADS, 0, SF_CUDA_STREAM(ctx), n, s, lds,
              (__nv_bfloat16 *)p, ldp);
    CUDA_CHECK_LAUNCH("softmax_rows_kernel");
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- timestep sinusoid */

/* One thread per (frame, j < half): a = t_f·freq[j] in fp64 (freq = 10000^(−j/half), made on the host
 * by the same pow() as the CPU reference, so the product is the CPU's bit for bit), then
 * cos(a) → column j and sin(a) → column half + j, each rounded fp64 → fp32 → bf16 as the host path
 * did (the GPU's cos/sin are within 2 ulp of fp64: at most one bf16 step apart, and only at a tie). */
static __global__ void timestep_embed_kernel(sf_cuda_tvec tv, int n, int half, const double *__restrict__ freq,
                                             __nv_bfloat16 *__restrict__ out) {
    const int64_t total = (int64_t)n * half;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int f = (int)(i / half), j = (int)(i - (int64_t)f * half);
        double a = __dmul_rn((double)tv.t[f], freq[j]);
        __nv_bfloat16 *o = out + (int64_t)f * 2 * half;
        o[j] = sf_tobf((float)cos(a));
        o[half + j] = sf_tobf((float)sin(a));
    }
}

extern "C" sf_status sf_timestep_embed_cuda(const sf_cuda_ctx *ctx, const float *t, int n, int dim, const double *freq,
                                            void *out, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream && t && freq && out, "sf_timestep_embed_cuda: bad arguments");
    SF_CUDA_REQUIRE(n >= 0 && dim >= 2 && dim % 2 == 0, "sf_timestep_embed_cuda: bad shape n=%d dim=%d", n, dim);
    for (int f0 = 0; f0 < n; f0 += SF_CUDA_TVEC) { /* the timesteps travel as a kernel argument: no copy, no sync */
        sf_cuda_tvec tv;
        int m = n - f0 < SF_CUDA_TVEC ? n - f0 : SF_CUDA_TVEC;
        memset(&tv, 0, sizeof tv);
        memcpy(tv.t, t + f0, sizeof(float) * (size_t)m);
        SF_LAUNCH(timestep_embed_kernel, sf_cuda_blocks((int64_t)m * (dim / 2), 128), 128, 0, SF_CUDA_STREAM(ctx), tv,
                  m, dim / 2, freq, (__nv_bfloat16 *)out + (int64_t)f0 * dim);
        CUDA_CHECK_LAUNCH("timestep_embed_kernel");
    }
    return SF_OK;
fail:
    return st;
}

/* ---------------------------------------------------------------- scheduler steps */

/* x0 = float32(float64(xt) − σ·float64(flow)); __dmul_rn / __dsub_rn keep nvcc from fusing the
 * two into one fma, so the result is sf_flow_to_x0_cpu's bit for bit. x0 may alias xt or flow. */
static __global__ void flow_to_x0_kernel(int64_t n, const float *xt, const float *flow, double sigma, float *x0) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x0[i] = (float)__dsub_rn((double)xt[i], __dmul_rn(sigma, (double)flow[i]));
}

/* out = fl32(fl32(1 − σ)·x0) + fl32(σ·noise), each product rounded (no fma): sf_add_noise_cpu's bits. */
static __global__ void add_noise_kernel(int64_t n, const float *x0, const float *noise, float sigma, float *out) {
    const float one = __fsub_rn(1.0f, sigma);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __fadd_rn(__fmul_rn(one, x0[i]), __fmul_rn(sigma, noise[i]));
}

extern "C" sf_status sf_flow_to_x0_cuda(const sf_cuda_ctx *ctx, const float *xt, const float *flow, int64_t n,
                                        double sigma, float *x0, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream && n >= 0, "sf_flow_to_x0_cuda: bad arguments");
    if (n == 0) return SF_OK;
    SF_LAUNCH(flow_to_x0_kernel, sf_cuda_blocks(n, 256), 256, 0, SF_CUDA_STREAM(ctx), n, xt, flow, sigma, x0);
    CUDA_CHECK_LAUNCH("flow_to_x0_kernel");
    return SF_OK;
fail:
    return st;
}

extern "C" sf_status sf_add_noise_cuda(const sf_cuda_ctx *ctx, const float *x0, const float *noise, int64_t n,
                                       float sigma, float *out, sf_err *err) {
    sf_status st = SF_OK;
    SF_CUDA_REQUIRE(ctx && ctx->stream && n >= 0, "sf_add_noise_cuda: bad arguments");
    if (n == 0) return SF_OK;
    SF_LAUNCH(add_noise_kernel, sf_cuda_blocks(n, 256), 256, 0, SF_CUDA_STREAM(ctx), n, x0, noise, sigma, out);
    CUDA_CHECK_LAUNCH("add_noise_kernel");
    return SF_OK;
fail:
    return st;
}
