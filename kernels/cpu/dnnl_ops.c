/* dnnl_ops.c — oneDNN matmul, softmax and 3-D convolution for the CPU backend's fast and bf16
 * modes (see dnnl_ops.h). Tested by tests/unit/test_kernels.c (fast_* against the exact kernels)
 * and by the golden tests run in every mode (tests/run.sh).
 *
 * oneDNN is chosen over OpenBLAS / BLIS by measurement (docs/performance.md): its f32 brgemm
 * matched or beat OpenBLAS's sgemm at the DiT's shapes, and it is the one Debian library with a
 * bf16 matmul and convolution on AMX / AVX512-BF16 — the CPU PyTorch's bf16 path runs on it.
 * It uses the OpenMP runtime (libgomp) the exact kernels' team already uses: one pool of threads.
 *
 * Primitive descriptors are costly to create (tens of µs to ms) and the forward makes the same
 * few shapes over and over, so created primitives are kept in one small process-wide table
 * (mutex-guarded, like oneDNN's own primitive cache, which it complements: that cache skips the
 * JIT, this one also the descriptor search). oneDNN primitives may run concurrently.
 *
 * oneDNN's reference implementations ("ref:any": plain loops, what it falls back to where no JIT kernel
 * fits the CPU, data type and layout — bf16 on AVX2, say) are refused: they run 100–1000× slower than
 * the exact kernels, which then run instead. A refusal is kept in the table like a primitive, so a
 * shape costs its descriptor search once. */
#define _POSIX_C_SOURCE 200809L
#include "dnnl_ops.h"

#include <dnnl.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- engine and primitive table ----------------------------------------------------------- */

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static void engine_init(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

typedef struct prim_key {
    int kind; /* 1 matmul, 2 softmax, 5 GELU, 6 batched matmul */
    int dt, flag;
    float scale;
    int64_t d[16];
} prim_key;

typedef struct prim_entry {
    prim_key key;
    dnnl_primitive_t p;
    dnnl_primitive_desc_t pd;
} prim_entry;

#define PRIM_CAP 256
static prim_entry prims[PRIM_CAP];
static int prim_n, prim_next;
static pthread_mutex_t prim_mu = PTHREAD_MUTEX_INITIALIZER;

/* The cached primitive for key, or NULL (then the caller creates and adds it). */
static prim_entry *prim_find(const prim_key *k) {
    for (int i = 0; i < prim_n; i++)
        if (!memcmp(&prims[i].key, k, sizeof *k)) return &prims[i];
    return NULL;
}

/* Whether oneDNN runs this CPU at instruction set isa or above (the isa values are nested bit sets). */
static int isa_has(dnnl_cpu_isa_t isa) {
    const unsigned have = (unsigned)dnnl_get_effective_cpu_isa(), want = (unsigned)isa;
    return (have & want) == want;
}

/* Whether pd is one of oneDNN's reference implementations (see the top). */
static int is_reference(const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
           !strncmp(impl, "ref", 3);
}

static unsigned long long dnnl_refusals;
unsigned long long sf_dnnl_refusals(void) { return __atomic_load_n(&dnnl_refusals, __ATOMIC_RELAXED); }

/* Create from pd (taken over; NULL: no descriptor could be made) and add. A reference implementation or
 * a failed creation is added as a refusal (p NULL): the entry's p is what callers run, NULL = use the
 * exact kernels. Under prim_mu. */
static prim_entry *prim_add(const prim_key *k, dnnl_primitive_desc_t pd) {
    dnnl_primitive_t p = NULL;
    if (pd && (is_reference(pd) || dnnl_primitive_create(&p, pd) != dnnl_success)) {
        dnnl_primitive_desc_destroy(pd);
        pd = NULL, p = NULL;
    }
    if (!p) __atomic_fetch_add(&dnnl_refusals, 1, __ATOMIC_RELAXED);
    prim_entry *e;
    if (prim_n < PRIM_CAP) e = &prims[prim_n++];
    else { /* full: replace round-robin (a primitive still running elsewhere is not freed) */
        e = &prims[prim_next];
        prim_next = (prim_next + 1) % PRIM_CAP;
    }
    e->key = *k;
    e->p = p;
    e->pd = pd;
    return e;
}

static dnnl_stream_t stream_new(void) {
    pthread_once(&engine_once, engine_init);
    dnnl_stream_t s = NULL;
    if (!engine || dnnl_stream_create(&s, engine, dnnl_stream_default_flags) != dnnl_success) return NULL;
    return s;
}

/* oneDNN takes its thread count from the OpenMP ICV; inside a region it runs on the caller. */
static void set_threads(int nthreads) {
#ifdef _OPENMP
    if (!omp_in_parallel() && nthreads >= 1 && omp_get_max_threads() != nthreads) omp_set_num_threads(nthreads);
#else
    (void)nthreads;
#endif
}

static unsigned long long dnnl_calls;
unsigned long long sf_dnnl_calls(void) { return __atomic_load_n(&dnnl_calls, __ATOMIC_RELAXED); }

static int run(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args) {
    __atomic_fetch_add(&dnnl_calls, 1, __ATOMIC_RELAXED);
    dnnl_stream_t s = stream_new();
    if (!s) return -1;
    int rc = dnnl_primitive_execute(p, s, nargs, args) == dnnl_success && dnnl_stream_wait(s) == dnnl_success ? 0 : -1;
    dnnl_stream_destroy(s);
    return rc;
}

static dnnl_memory_t mem(const dnnl_memory_desc_t *md, const void *ptr) {
    dnnl_memory_t m = NULL;
    if (dnnl_memory_create(&m, md, engine, ptr ? (void *)ptr : DNNL_MEMORY_ALLOCATE) != dnnl_success) return NULL;
    return m;
}

/* ---- conversions ------------------------------------------------------------------------- */

/* ---- matmul ------------------------------------------------------------------------------ */

int sf_dnnl_matmul(int64_t M, int64_t N, int64_t K, const void *a, int64_t lda, const void *b, int64_t ldb,
                   int b_kn, sf_dtype dt, const float *bias, float scale, float *c, int64_t ldc, int nthreads) {
    if (M <= 0 || N <= 0) return 0;
    if (dt != SF_F32 && dt != SF_BF16) return -1;
    pthread_once(&engine_once, engine_init);
    if (!engine) return -1;
    const dnnl_data_type_t ddt = dt == SF_F32 ? dnnl_f32 : dnnl_bf16;
    dnnl_memory_desc_t ma, mb, mc, mbias;
    dnnl_dims_t da = {M, K}, db = {K, N}, dc = {M, N}, dbias = {1, N};
    dnnl_dims_t sa = {lda, 1}, sc = {ldc, 1}, sbias = {N, 1};
    dnnl_dims_t sb = {1, ldb};
    if (b_kn) sb[0] = ldb, sb[1] = 1;
    if (dnnl_memory_desc_init_by_strides(&ma, 2, da, ddt, sa) || dnnl_memory_desc_init_by_strides(&mb, 2, db, ddt, sb) ||
        dnnl_memory_desc_init_by_strides(&mc, 2, dc, dnnl_f32, sc) ||
        dnnl_memory_desc_init_by_strides(&mbias, 2, dbias, dnnl_f32, sbias))
        return -1;
    prim_key k = {1, (int)dt, (b_kn ? 1 : 0) | (bias ? 2 : 0), scale, {M, N, K, lda, ldb, ldc}};
    pthread_mutex_lock(&prim_mu);
    prim_entry *e = prim_find(&k);
    if (!e) {
        dnnl_matmul_desc_t md;
        dnnl_primitive_attr_t attr = NULL;
        dnnl_primitive_desc_t pd = NULL;
        int ok = dnnl_matmul_desc_init(&md, &ma, &mb, bias ? &mbias : NULL, &mc) == dnnl_success &&
                 dnnl_primitive_attr_create(&attr) == dnnl_success &&
                 (scale == 1.0f || dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale) == dnnl_success) &&
                 dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL) == dnnl_success;
        if (attr) dnnl_primitive_attr_destroy(attr);
        if (!ok && pd) dnnl_primitive_desc_destroy(pd), pd = NULL;
        e = prim_add(&k, pd);
    }
    dnnl_primitive_t p = e ? e->p : NULL;
    pthread_mutex_unlock(&prim_mu);
    if (!p) return -1;
    dnnl_memory_t xa = mem(&ma, a), xb = mem(&mb, b), xc = mem(&mc, c), xbias = bias ? mem(&mbias, bias) : NULL;
    int rc = -1;
    if (xa && xb && xc && (!bias || xbias)) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, xa}, {DNNL_ARG_WEIGHTS, xb}, {DNNL_ARG_DST, xc}, {DNNL_ARG_BIAS, xbias}};
        set_threads(nthreads);
        rc = run(p, bias ? 4 : 3, args);
    }
    if (xa) dnnl_memory_destroy(xa);
    if (xb) dnnl_memory_destroy(xb);
    if (xc) dnnl_memory_destroy(xc);
    if (xbias) dnnl_memory_destroy(xbias);
    return rc;
}

/* Batched f32 C[b] = A[b]·B[b] with element strides (batch, row, column) for each operand. */
int sf_dnnl_matmul_batch(int64_t nb, int64_t M, int64_t N, int64_t K, const float *a, const int64_t sa[3],
                         const float *b, const int64_t sb[3], float *c, const int64_t sc[3], int nthreads) {
    if (nb <= 0 || M <= 0 || N <= 0) return 0;
    pthread_once(&engine_once, engine_init);
    if (!engine) return -1;
    dnnl_memory_desc_t ma, mb, mc;
    dnnl_dims_t da = {nb, M, K}, db = {nb, K, N}, dc = {nb, M, N};
    dnnl_dims_t xa = {sa[0], sa[1], sa[2]}, xb = {sb[0], sb[1], sb[2]}, xc = {sc[0], sc[1], sc[2]};
    if (dnnl_memory_desc_init_by_strides(&ma, 3, da, dnnl_f32, xa) ||
        dnnl_memory_desc_init_by_strides(&mb, 3, db, dnnl_f32, xb) ||
        dnnl_memory_desc_init_by_strides(&mc, 3, dc, dnnl_f32, xc))
        return -1;
    prim_key k = {6, 0, 0, 1.0f, {nb, M, N, K, sa[0], sa[1], sa[2], sb[0], sb[1], sb[2], sc[0], sc[1], sc[2]}};
    pthread_mutex_lock(&prim_mu);
    prim_entry *e = prim_find(&k);
    if (!e) {
        dnnl_matmul_desc_t md;
        dnnl_primitive_desc_t pd = NULL;
        if (dnnl_matmul_desc_init(&md, &ma, &mb, NULL, &mc) != dnnl_success ||
            dnnl_primitive_desc_create(&pd, &md, NULL, engine, NULL) != dnnl_success)
            pd = NULL;
        e = prim_add(&k, pd);
    }
    dnnl_primitive_t p = e ? e->p : NULL;
    pthread_mutex_unlock(&prim_mu);
    if (!p) return -1;
    dnnl_memory_t ya = mem(&ma, a), yb = mem(&mb, b), yc = mem(&mc, c);
    int rc = -1;
    if (ya && yb && yc) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ya}, {DNNL_ARG_WEIGHTS, yb}, {DNNL_ARG_DST, yc}};
        set_threads(nthreads);
        rc = run(p, 3, args);
    }
    if (ya) dnnl_memory_destroy(ya);
    if (yb) dnnl_memory_destroy(yb);
    if (yc) dnnl_memory_destroy(yc);
    return rc;
}

/* ---- in-place elementwise primitives: row softmax, GELU-tanh --------------------------------- */

/* The cached primitive for key k (made by make(&pd, md) on a miss), run in place on buf. */
static int run_inplace(const prim_key *k, const dnnl_memory_desc_t *md, void *buf, int nthreads,
                       int (*make)(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *md)) {
    pthread_mutex_lock(&prim_mu);
    prim_entry *e = prim_find(k);
    if (!e) {
        dnnl_primitive_desc_t pd = NULL;
        if (!make(&pd, md) && pd) dnnl_primitive_desc_destroy(pd), pd = NULL;
        e = prim_add(k, pd);
    }
    dnnl_primitive_t p = e ? e->p : NULL;
    pthread_mutex_unlock(&prim_mu);
    if (!p) return -1;
    dnnl_memory_t m = mem(md, buf);
    if (!m) return -1;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, m}, {DNNL_ARG_DST, m}};
    set_threads(nthreads);
    int rc = run(p, 2, args);
    dnnl_memory_destroy(m);
    return rc;
}

static int make_softmax(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *md) {
    dnnl_softmax_desc_t sd;
    return dnnl_softmax_forward_desc_init(&sd, dnnl_forward_inference, md, 1) == dnnl_success &&
           dnnl_primitive_desc_create(pd, &sd, NULL, engine, NULL) == dnnl_success;
}

static int make_gelu_tanh(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *md) {
    dnnl_eltwise_desc_t ed;
    return dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference, dnnl_eltwise_gelu_tanh, md, 0.f, 0.f) ==
               dnnl_success &&
           dnnl_primitive_desc_create(pd, &ed, NULL, engine, NULL) == dnnl_success;
}

int sf_dnnl_softmax_rows(int64_t rows, int64_t n, float *s, int64_t lds, int nthreads) {
    if (rows <= 0 || n <= 0) return 0;
    pthread_once(&engine_once, engine_init);
    if (!engine) return -1;
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {rows, n}, st = {lds, 1};
    if (dnnl_memory_desc_init_by_strides(&md, 2, d, dnnl_f32, st)) return -1;
    prim_key k = {2, 0, 0, 1.0f, {rows, n, lds}};
    return run_inplace(&k, &md, s, nthreads, make_softmax);
}

int sf_dnnl_gelu_tanh(float *x, int64_t n, int nthreads) {
    if (n <= 0) return 0;
    pthread_once(&engine_once, engine_init);
    if (!engine) return -1;
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {n};
    if (dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_f32, dnnl_a)) return -1;
    prim_key k = {5, 0, 0, 1.0f, {n}};
    return run_inplace(&k, &md, x, nthreads, make_gelu_tanh);
}

/* ---- 3-D convolution --------------------------------------------------------------------- */

/* Frames per oneDNN call: the blocked copies of input and output stay under ~64 M floats. */
#define CONV_BUDGET ((int64_t)64 << 20)

/* The convolution's work buffers (blocked source, destination, weights: ~80 MB for a 192-channel
 * 120×208 frame group), kept between calls — oneDNN's own allocation gave fresh pages per call, ~15 k
 * page faults per conv. Grow-only, 64-byte aligned; one caller at a time holds them (conv_mu, tried:
 * a concurrent caller lets oneDNN allocate as before). */
static pthread_mutex_t conv_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    void *p;
    size_t n;
} conv_buf[3];

/* Memory for md on conv buffer k (held), or oneDNN-allocated (not held / out of memory). */
static dnnl_memory_t conv_mem(const dnnl_memory_desc_t *md, int k, int held) {
    const size_t n = dnnl_memory_desc_get_size(md);
    if (held && conv_buf[k].n < n) {
        free(conv_buf[k].p);
        conv_buf[k].p = sf_malloc64(n, 1);
        conv_buf[k].n = conv_buf[k].p ? n : 0;
    }
    return mem(md, held && conv_buf[k].p ? conv_buf[k].p : NULL);
}

/* The channel block of oneDNN's direct f32 convolution on this CPU: 16 (AVX-512), 8 (AVX2), 0 (neither). */
static int conv_block(void) { return isa_has(dnnl_cpu_isa_avx512_core) ? 16 : isa_has(dnnl_cpu_isa_avx2) ? 8 : 0; }

/* The refusal of a convolution oneDNN has no JIT kernel for (its reference loops, or nothing). */
static sf_status conv_refusal(const sf_conv3d_args *a, sf_err *err) {
    return sf_fail(err, SF_E_UNSUPPORTED, "oneDNN: no convolution for %lldx%lld k%dx%dx%d but its reference loops",
                   (long long)a->cin, (long long)a->cout, a->kt, a->kh, a->kw);
}

/* Convolution shapes oneDNN has only its reference loops for, kept in the primitive table (kind 7, no
 * primitive) so that each costs its descriptor search once. */
static int conv_refused(const prim_key *k) {
    pthread_mutex_lock(&prim_mu);
    const int r = prim_find(k) != NULL;
    pthread_mutex_unlock(&prim_mu);
    return r;
}
static void conv_refuse(const prim_key *k) {
    pthread_mutex_lock(&prim_mu);
    if (!prim_find(k)) prim_add(k, NULL);
    pthread_mutex_unlock(&prim_mu);
}

sf_status sf_dnnl_conv3d(const sf_conv3d_args *a, int bf16, sf_err *err) {
    pthread_once(&engine_once, engine_init);
    if (!engine) return sf_fail(err, SF_E_UNSUPPORTED, "oneDNN: no CPU engine");
    if (a->n_out <= 0) return SF_OK;
    const int st_ = a->stride == 2 ? 2 : 1;
    const prim_key ck = {7, bf16, a->bias != NULL, 1.0f, {a->cin, a->cout, a->kt, a->kh, a->kw, a->h, a->w, a->n_out, st_}};
    if (conv_refused(&ck)) return conv_refusal(a, err);
    const int64_t hw = a->h * a->w, kt = a->kt, ho = a->h / st_, wo = a->w / st_, ohw = ho * wo;
    int64_t per = (a->cin + a->cout) * hw, G = per > 0 ? CONV_BUDGET / per - (kt - 1) : 1;
    if (G < 1) G = 1;
    if (G > a->n_out) G = a->n_out;
    const dnnl_data_type_t cdt = bf16 ? dnnl_bf16 : dnnl_f32;
    sf_status st = SF_OK;
    dnnl_memory_t wuser = NULL, wmem = NULL, bmem = NULL, smem = NULL, dmem = NULL, fmem = NULL, oumem = NULL, slmem = NULL;
    dnnl_primitive_t conv = NULL, rw = NULL, rin = NULL, rout = NULL;
    dnnl_primitive_desc_t cpd = NULL;
    dnnl_stream_t s = stream_new();
    if (!s) return sf_fail(err, SF_E_UNSUPPORTED, "oneDNN: no stream");
    const int held = pthread_mutex_trylock(&conv_mu) == 0;
    set_threads(a->threads);

    for (int64_t t0 = 0; t0 < a->n_out && !st; t0 += G) {
        const int64_t g = a->n_out - t0 < G ? a->n_out - t0 : G, D = g + kt - 1;
        if (!conv || g != G) { /* (re)build for this group size: the first group, then a shorter last one */
            if (conv) dnnl_primitive_destroy(conv), conv = NULL;
            if (cpd) dnnl_primitive_desc_destroy(cpd), cpd = NULL;
            dnnl_memory_desc_t sany, wany, dany, bmd, wplain;
            dnnl_dims_t ds = {1, a->cin, D, a->h, a->w}, dw = {a->cout, a->cin, kt, a->kh, a->kw};
            dnnl_dims_t dd = {1, a->cout, g, ho, wo}, db = {a->cout};
            /* stride 2: output (y, x) is the padded stride-1 sum at (2y + 1, 2x + 1) (conv3d.h), i.e. one
             * padding row / column fewer in front */
            dnnl_dims_t strides = {1, st_, st_}, pl = {0, a->kh / 2 - (st_ - 1), a->kw / 2 - (st_ - 1)},
                        pr = {0, a->kh / 2, a->kw / 2};
            dnnl_convolution_desc_t cd;
            /* f32: the channel-blocked layout of oneDNN's direct JIT kernel for this CPU — 16 channels on
             * AVX-512 (what PyTorch's conv3d runs: 113 vs 140 ms for brgconv's channels-last at 192 ch,
             * 120x208), 8 on AVX2 (a 16-blocked one has no AVX2 kernel: oneDNN's reference loops ran, 1000x
             * slower); bf16 and other CPUs: oneDNN's pick */
            const int blk = conv_block();
            const dnnl_format_tag_t act = !bf16 && blk && a->cin % blk == 0 && a->cout % blk == 0
                                              ? (blk == 16 ? dnnl_aBcde16b : dnnl_aBcde8b)
                                              : dnnl_format_tag_any;
            if (dnnl_memory_desc_init_by_tag(&sany, 5, ds, cdt, act) ||
                dnnl_memory_desc_init_by_tag(&wany, 5, dw, cdt, dnnl_format_tag_any) ||
                dnnl_memory_desc_init_by_tag(&dany, 5, dd, dnnl_f32, act) ||
                dnnl_memory_desc_init_by_tag(&bmd, 1, db, dnnl_f32, dnnl_a) ||
                dnnl_memory_desc_init_by_tag(&wplain, 5, dw, dnnl_f32, dnnl_oidhw) ||
                dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &sany, &wany,
                                                   a->bias ? &bmd : NULL, &dany, strides, pl, pr) ||
                dnnl_primitive_desc_create(&cpd, &cd, NULL, engine, NULL) || is_reference(cpd) ||
                dnnl_primitive_create(&conv, cpd)) {
                st = conv_refusal(a, err);
                conv_refuse(&ck);
                break;
            }
            const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(cpd, dnnl_query_src_md, 0);
            const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(cpd, dnnl_query_weights_md, 0);
            const dnnl_memory_desc_t *dmd = dnnl_primitive_desc_query_md(cpd, dnnl_query_dst_md, 0);
            if (smem) dnnl_memory_destroy(smem);
            if (dmem) dnnl_memory_destroy(dmem);
            smem = conv_mem(smd, 0, held), dmem = conv_mem(dmd, 1, held);
            if (!wmem) { /* weights: reordered to the convolution's layout once per call */
                dnnl_primitive_desc_t rpd = NULL;
                wuser = mem(&wplain, a->weight), wmem = conv_mem(wmd, 2, held);
                bmem = a->bias ? mem(&bmd, a->bias) : NULL;
                if (wuser && wmem && !dnnl_reorder_primitive_desc_create(&rpd, &wplain, engine, wmd, engine, NULL) &&
                    !dnnl_primitive_create(&rw, rpd)) {
                    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, wuser}, {DNNL_ARG_TO, wmem}};
                    if (dnnl_primitive_execute(rw, s, 2, ra)) st = SF_E_UNSUPPORTED;
                } else st = SF_E_UNSUPPORTED;
                if (rpd) dnnl_primitive_desc_destroy(rpd);
            }
            /* one input frame (plain [cin, h, w] f32) → its depth slice of the blocked source */
            dnnl_memory_desc_t fmd, slice, omd;
            dnnl_dims_t df = {1, a->cin, 1, a->h, a->w}, off0 = {0, 0, 0, 0, 0};
            dnnl_dims_t so = {g * a->cout * ohw, ohw, a->cout * ohw, wo, 1};
            dnnl_primitive_desc_t p1 = NULL, p2 = NULL;
            if (rin) dnnl_primitive_destroy(rin), rin = NULL;
            if (rout) dnnl_primitive_destroy(rout), rout = NULL;
            if (fmem) dnnl_memory_destroy(fmem), fmem = NULL;
            if (oumem) dnnl_memory_destroy(oumem), oumem = NULL;
            if (slmem) dnnl_memory_destroy(slmem), slmem = NULL;
            if (st || !smem || !dmem || !bmem != !a->bias || dnnl_memory_desc_init_by_tag(&fmd, 5, df, dnnl_f32, dnnl_ncdhw) ||
                dnnl_memory_desc_init_submemory(&slice, smd, df, off0) ||
                dnnl_memory_desc_init_by_strides(&omd, 5, dd, dnnl_f32, so) ||
                dnnl_reorder_primitive_desc_create(&p1, &fmd, engine, &slice, engine, NULL) ||
                dnnl_primitive_create(&rin, p1) || dnnl_reorder_primitive_desc_create(&p2, dmd, engine, &omd, engine, NULL) ||
                dnnl_primitive_create(&rout, p2) || !(fmem = mem(&fmd, a->frames[0])) || !(oumem = mem(&omd, a->out)) ||
                dnnl_memory_create(&slmem, &slice, engine, DNNL_MEMORY_NONE)) {
                if (p1) dnnl_primitive_desc_destroy(p1);
                if (p2) dnnl_primitive_desc_destroy(p2);
                st = sf_fail(err, SF_E_UNSUPPORTED, "oneDNN: convolution set-up failed (out of memory?)");
                break;
            }
            dnnl_primitive_desc_destroy(p1);
            dnnl_primitive_desc_destroy(p2);
        }
        /* gather the D input frames (depth f of the blocked source starts f · its depth stride
         * elements in: the slice memory is that of depth 0, moved), convolve, scatter the g outputs */
        char *sbase = NULL;
        dnnl_memory_get_data_handle(smem, (void **)&sbase);
        const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(cpd, dnnl_query_src_md, 0);
        const size_t dstride = (size_t)smd->format_desc.blocking.strides[2] * (bf16 ? 2 : 4);
        /* f32 in the 16-channel blocked layout: our transposes (blocked with [H][W][16] per block) */
        const dnnl_blocking_desc_t *bd = &smd->format_desc.blocking;
        const int own = !bf16 && bd->inner_nblks == 1 && bd->inner_blks[0] == 16 && bd->inner_idxs[0] == 1 &&
                        bd->strides[4] == 16 && bd->strides[3] == 16 * a->w && a->cin % 16 == 0 &&
                        !getenv("SF_DNNL_REORDER");
        for (int64_t f = 0; f < D && !st && own; f++)
            sf_dnnl_to_blocked16(a->frames[t0 + f], a->cin, hw, (float *)(sbase + (size_t)f * dstride), bd->strides[1],
                                 a->threads);
        for (int64_t f = 0; f < D && !st && !own; f++) {
            dnnl_memory_set_data_handle(fmem, (void *)a->frames[t0 + f]);
            dnnl_memory_set_data_handle(slmem, sbase + (size_t)f * dstride);
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, fmem}, {DNNL_ARG_TO, slmem}};
            if (dnnl_primitive_execute(rin, s, 2, ra)) st = sf_fail(err, SF_E_UNSUPPORTED, "oneDNN: reorder failed");
        }
        dnnl_exec_arg_t ca[4] = {{DNNL_ARG_SRC, smem}, {DNNL_ARG_WEIGHTS, wmem}, {DNNL_ARG_DST, dmem}, {DNNL_ARG_BIAS, bmem}};
        __atomic_fetch_add(&dnnl_calls, 1, __ATOMIC_RELAXED);
        if (!st && dnnl_primitive_execute(conv, s, a->bias ? 4 : 3, ca))
            st = sf_fail(err, SF_E_UNSUPPORTED, "oneDNN: convolution failed");
        dnnl_memory_set_data_handle(oumem, a->out + (size_t)t0 * (size_t)a->cout * (size_t)ohw);
        dnnl_exec_arg_t oa[2] = {{DNNL_ARG_FROM, dmem}, {DNNL_ARG_TO, oumem}};
        if (!st && dnnl_primitive_execute(rout, s, 2, oa)) st = sf_fail(err, SF_E_UNSUPPORTED, "oneDNN: reorder failed");
        if (!st) dnnl_stream_wait(s);
    }
    dnnl_stream_wait(s);
    if (conv) dnnl_primitive_destroy(conv);
    if (cpd) dnnl_primitive_desc_destroy(cpd);
    if (rw) dnnl_primitive_destroy(rw);
    if (rin) dnnl_primitive_destroy(rin);
    if (rout) dnnl_primitive_destroy(rout);
    dnnl_memory_t ms[] = {wuser, wmem, bmem, smem, dmem, fmem, oumem, slmem};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (ms[i]) dnnl_memory_destroy(ms[i]);
    if (held) pthread_mutex_unlock(&conv_mu);
    dnnl_stream_destroy(s);
    if (st && !err->msg[0]) return sf_fail(err, st, "oneDNN: convolution failed");
    return st;
}

int sf_dnnl_built(void) { return 1; }

int sf_dnnl_bf16_jit(void) { return isa_has(dnnl_cpu_isa_avx512_core); }

int sf_dnnl_bf16_native(void) {
    const char *e = getenv("SF_CPU_NO_BF16_UNITS");
    if (e && *e && strcmp(e, "0") != 0) return 0;
    return isa_has(dnnl_cpu_isa_avx512_core_bf16);
}
