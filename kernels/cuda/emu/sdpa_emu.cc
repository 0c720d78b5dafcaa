/* sdpa_emu.cc — kernels/sdpa_cuda.h (cuDNN's fused attention) on the CPU emulation (test builds
 * only, never in libsf.a): O = softmax(Q·Kᵀ·scale)·V per head as a plain loop over the same bf16
 * device (= host) buffers, in the contract's numerics — fp32 scores and softmax statistics, P rounded
 * to bf16 before P·V, O divided by the fp32 row sum, one bf16 rounding (SPEC §5.7, cuDNN's flash
 * attention). It tests the DiT's use of the API, not cuDNN: the layouts and strides it passes (the
 * interleaved [k | v] cache rows, cross-attention's text rows), shapes prepared before the loop (an
 * unprepared shape grows the workspace by cudaMalloc at its first forward, as cuDNN's plan building does
 * on a GPU: a capture then fails and the emulation's allocation count shows it), CUDA-graph capture and
 * deferred streams like every other stand-in. SF_EMU_NO_CUDNN=1 makes it absent (SF_E_UNSUPPORTED), as
 * on a machine without libcudnn. Deviceless plans are not emulated. Linked before libsf.a by the emu
 * rules, so sdpa_cudnn.o is never pulled in. Tested by test_cuda_emu sdpa_standin (against
 * sf_attention_cpu) and through the whole emulated DiT (test_dit_emu). */
#include "cuda_emu.h"
#include "emu_state.h"
#include "sdpa_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

using namespace sf_emu;

namespace {
struct shape {
    int64_t Lq, Lk, H, d, ldq, ldk, ldo;
    bool operator==(const shape &o) const {
        return Lq == o.Lq && Lk == o.Lk && H == o.H && d == o.d && ldq == o.ldq && ldk == o.ldk && ldo == o.ldo;
    }
};
unsigned long long n_sdpa_calls;
int first_use_breaks; /* sf_emu_sdpa_first_use_breaks_capture */

float bf(const uint16_t *p, int64_t i) { return sf_emu_bf_bits2f(p[i]); }

void attention_now(const shape &s, const uint16_t *q, const uint16_t *k, const uint16_t *v, uint16_t *o, float scale) {
    std::vector<float> kf((size_t)(s.Lk * s.d)), vf((size_t)(s.Lk * s.d)), sc((size_t)s.Lk), acc((size_t)s.d);
    for (int64_t h = 0; h < s.H; h++) {
        for (int64_t j = 0; j < s.Lk; j++)
            for (int64_t t = 0; t < s.d; t++) {
                kf[(size_t)(j * s.d + t)] = bf(k, j * s.ldk + h * s.d + t);
                vf[(size_t)(j * s.d + t)] = bf(v, j * s.ldk + h * s.d + t);
            }
        for (int64_t i = 0; i < s.Lq; i++) {
            const uint16_t *qr = q + i * s.ldq + h * s.d;
            float m = -INFINITY;
            for (int64_t j = 0; j < s.Lk; j++) {
                const float *kr = &kf[(size_t)(j * s.d)];
                float dot = 0.0f;
                for (int64_t t = 0; t < s.d; t++) dot += sf_emu_bf_bits2f(qr[t]) * kr[t];
                sc[(size_t)j] = dot * scale;
                if (sc[(size_t)j] > m) m = sc[(size_t)j];
            }
            float l = 0.0f;
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t j = 0; j < s.Lk; j++) {
                const float p = expf(sc[(size_t)j] - m);
                l += p;
                const float pb = sf_emu_bf_bits2f(sf_emu_f2bf_bits(p)); /* P in bf16 for P·V */
                const float *vr = &vf[(size_t)(j * s.d)];
                for (int64_t t = 0; t < s.d; t++) acc[(size_t)t] += pb * vr[t];
            }
            uint16_t *orow = o + i * s.ldo + h * s.d;
            for (int64_t t = 0; t < s.d; t++) orow[t] = sf_emu_f2bf_bits(acc[(size_t)t] / l);
        }
    }
}
} // namespace

struct sf_sdpa {
    cudaStream_t stream;
    std::vector<shape> prepared;
    std::vector<shape> executed; /* shapes whose plan ran outside a capture */
    void *ws;
    size_t ws_bytes;
};

extern "C" unsigned long long sf_emu_sdpa_calls(void) { return n_sdpa_calls; }
extern "C" void sf_emu_sdpa_first_use_breaks_capture(int on) { first_use_breaks = on != 0; }

extern "C" sf_status sf_sdpa_cudnn_version(int *version, sf_err *err) {
    *version = 0;
    const char *absent = getenv("SF_EMU_NO_CUDNN");
    if (absent && *absent && strcmp(absent, "0") != 0)
        return sf_fail(err, SF_E_UNSUPPORTED, "cuDNN not found (SF_EMU_NO_CUDNN: emulated absence)");
    *version = 91900;
    return SF_OK;
}

extern "C" sf_status sf_sdpa_new(sf_sdpa **out, void *cuda_stream, sf_err *err) {
    *out = NULL;
    int v;
    sf_status st = sf_sdpa_cudnn_version(&v, err);
    if (st) return st;
    sf_sdpa *s = new (std::nothrow) sf_sdpa();
    if (!s) return sf_fail(err, SF_E_NOMEM, "sdpa: out of memory");
    s->stream = (cudaStream_t)cuda_stream;
    *out = s;
    return SF_OK;
}

extern "C" void sf_sdpa_destroy(sf_sdpa **sp) {
    if (!sp || !*sp) return;
    if ((*sp)->ws) cudaFree((*sp)->ws);
    delete *sp;
    *sp = NULL;
}

/* The "plan" of a shape: known once prepared; the first use grows the workspace (Lq·H fp32 row
 * statistics, as a flash attention keeps) by cudaMalloc, as a plan built on a GPU would. */
static sf_status plan_get(sf_sdpa *s, const shape &k, sf_err *err) {
    sf_status st = sf_sdpa_shape_check(k.Lq, k.Lk, k.H, k.d, k.ldq, k.ldk, k.ldo, err);
    if (st) return st;
    for (const shape &p : s->prepared)
        if (p == k) return SF_OK;
    const size_t need = (size_t)(k.Lq * k.H) * sizeof(float);
    if (need > s->ws_bytes) {
        void *ws = NULL;
        cudaError_t ce = cudaMalloc(&ws, need);
        if (ce != cudaSuccess)
            return sf_fail(err, SF_E_DEVICE, "sdpa: cudaMalloc(%zu B workspace): %s", need, cudaGetErrorString(ce));
        if (s->ws) cudaFree(s->ws);
        s->ws = ws, s->ws_bytes = need;
    }
    s->prepared.push_back(k);
    return SF_OK;
}

extern "C" sf_status sf_sdpa_prepare(sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, int64_t ldq, int64_t ldk,
                                     int64_t ldo, sf_err *err) {
    return plan_get(s, shape{Lq, Lk, H, d, ldq, ldk, ldo}, err);
}

extern "C" sf_status sf_sdpa_describe(const sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, int64_t ldq, int64_t ldk,
                                      int64_t ldo, char *desc, size_t desc_n, sf_err *err) {
    const shape k{Lq, Lk, H, d, ldq, ldk, ldo};
    for (const shape &p : s->prepared)
        if (p == k) {
            snprintf(desc, desc_n, "emulated (a plain loop)");
            return SF_OK;
        }
    return sf_fail(err, SF_E_NOTFOUND, "sdpa: shape Lq %lld Lk %lld not prepared", (long long)Lq, (long long)Lk);
}

extern "C" sf_status sf_sdpa_forward(sf_sdpa *s, int64_t Lq, int64_t Lk, int H, int d, const void *q, int64_t ldq,
                                     const void *k, const void *v, int64_t ldk, void *o, int64_t ldo, float scale,
                                     sf_err *err) {
    if (!q || !k || !v || !o || (((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)o) & 15))
        return sf_fail(err, SF_E_ARG, "sdpa: q, k, v, o must be non-NULL, 16-byte aligned device pointers");
    if (!is_device_ptr(q) || !is_device_ptr(k) || !is_device_ptr(v) || !is_device_ptr(o))
        return sf_fail(err, SF_E_DEVICE, "sdpa: an operand is not device memory");
    if (!same_device("sf_sdpa_forward", s->stream, q, o) || !same_device("sf_sdpa_forward", nullptr, k, v))
        return sf_fail(err, SF_E_DEVICE, "%s", err_msg);
    if (*sf_emu_last_error()) return sf_fail(err, SF_E_DEVICE, "sdpa: sticky CUDA error");
    const shape sh{Lq, Lk, H, d, ldq, ldk, ldo};
    sf_status st = plan_get(s, sh, err);
    if (st) return st;
    n_sdpa_calls++;
    const uint16_t *qb = (const uint16_t *)q, *kb = (const uint16_t *)k, *vb = (const uint16_t *)v;
    uint16_t *ob = (uint16_t *)o;
    std::function<void()> later = [sh, qb, kb, vb, ob, scale] { attention_now(sh, qb, kb, vb, ob, scale); };
    bool ran_before = false;
    for (const shape &p : s->executed) ran_before = ran_before || p == sh;
    if (capturing(s->stream)) {
        if (first_use_breaks && !ran_before)
            return sf_fail(err, SF_E_DEVICE, "sdpa: %s",
                           cudaGetErrorString(capture_illegal("a plan's first execution (emulated: it loads its kernels)")));
        cudaError_t e = capture_node(s->stream, "sdpa", "sf_sdpa_forward", std::move(later));
        return e == cudaSuccess ? SF_OK : sf_fail(err, SF_E_DEVICE, "sdpa: %s", cudaGetErrorString(e));
    }
    if (capture_active())
        return sf_fail(err, SF_E_DEVICE, "sdpa: %s", cudaGetErrorString(capture_illegal("an attention on another stream")));
    if (!ran_before) s->executed.push_back(sh);
    if (deferring()) {
        defer(std::move(later));
        return SF_OK;
    }
    later();
    return SF_OK;
}

extern "C" sf_status sf_sdpa_plan_deviceless(const char *, int64_t, int64_t, int, int, int64_t, int64_t, int64_t, char *desc,
                                             size_t desc_n, sf_err *err) {
    if (desc_n) desc[0] = 0;
    return sf_fail(err, SF_E_UNSUPPORTED, "deviceless cuDNN plans are not emulated");
}
