/* simd_variants.h — compile a kernel body twice: included with SF_VARIANT_FILE naming a .inc
 * file, it includes that file once with KSUF = _base (portable code) and, on x86 with GCC or
 * clang, once more with KSUF = _avx2 with every function of that copy compiled for AVX2,
 * defining SF_HAVE_AVX2_PATH. The caller picks a variant at run time with sf_cpu_use_avx2()
 * (kernels/parallel.h). Both variants must produce the same bits; the unit tests hold them to
 * that.
 *
 * GCC applies `#pragma GCC target("avx2")` to the functions that follow; clang ignores that
 * pragma (it would silently compile the "_avx2" copy for the baseline ISA), so under clang the
 * copy is wrapped in `#pragma clang attribute push(__attribute__((target("avx2"))), ...)`.
 * Only "avx2", never "fma": FMA contraction would change the bits (clang contracts a*b+c
 * within a statement by default when FMA is available).
 *
 * With SF_VARIANT_ISA naming a function (e.g. sf_gemm_cpu_isa), it also defines
 * `int SF_VARIANT_ISA(void)`: the SF_ISA_* id of the variant the kernels run now, answered by
 * a probe compiled inside each copy. The AVX2 probe executes an AVX2-only intrinsic
 * (_mm256_add_epi32, vpaddd ymm), which does not compile unless the copy really is built for
 * AVX2 — so a test that sees SF_ISA_AVX2 knows two different variants exist and which one ran.
 *
 *   #define SF_VARIANT_FILE "gemm_tile.inc"
 *   #define SF_VARIANT_ISA sf_gemm_cpu_isa
 *   #include "simd_variants.h"
 */
#ifndef SF_VARIANT_FILE
#error "define SF_VARIANT_FILE before including simd_variants.h"
#endif

#include "parallel.h"

#define KSUF _base
#include SF_VARIANT_FILE
#undef KSUF

#ifdef SF_VARIANT_ISA
static int sf_variant_isa_base(void) { return SF_ISA_BASE; }
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SF_HAVE_AVX2_PATH 1
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
#define KSUF _avx2
#include SF_VARIANT_FILE
#undef KSUF
#ifdef SF_VARIANT_ISA
static int sf_variant_isa_avx2(void) {
    __m256i one = _mm256_set1_epi32(1);
    __m256i two = _mm256_add_epi32(one, one); /* AVX2: a compile error outside an AVX2 function */
    return _mm256_extract_epi32(two, 7) == 2 ? SF_ISA_AVX2 : SF_ISA_BASE;
}
#endif
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

#ifdef SF_VARIANT_ISA
int SF_VARIANT_ISA(void) {
#ifdef SF_HAVE_AVX2_PATH
    if (sf_cpu_use_avx2()) return sf_variant_isa_avx2();
#endif
    return sf_variant_isa_base();
}
#undef SF_VARIANT_ISA
#endif

#undef SF_VARIANT_FILE
