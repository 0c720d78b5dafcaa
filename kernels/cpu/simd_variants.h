/* simd_variants.h — compile a kernel body twice: included with SF_VARIANT_FILE naming a .inc
 * file, it includes that file once with KSUF = _base (portable code) and, on x86 with GCC or
 * clang, once more with KSUF = _avx2 under target("avx2"), defining SF_HAVE_AVX2_PATH. The
 * caller picks a variant at run time with sf_cpu_use_avx2() (kernels/parallel.h). Both
 * variants must produce the same bits; the unit tests hold them to that.
 *
 *   #define SF_VARIANT_FILE "gemm_tile.inc"
 *   #include "simd_variants.h"
 */
#ifndef SF_VARIANT_FILE
#error "define SF_VARIANT_FILE before including simd_variants.h"
#endif

#define KSUF _base
#include SF_VARIANT_FILE
#undef KSUF

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SF_HAVE_AVX2_PATH 1
#pragma GCC push_options
#pragma GCC target("avx2")
#define KSUF _avx2
#include SF_VARIANT_FILE
#undef KSUF
#pragma GCC pop_options
#endif

#undef SF_VARIANT_FILE
