/* wgmma.cuh — Hopper's warpgroup MMA (wgmma.mma_async, sm_90a) for the hand-written tensor-core
 * kernels (attn_mass_wg.cu): shared-memory matrix descriptors with the 128-byte swizzle, bf16 → f32
 * m64n64k16 with A and B in shared memory, m64n{64,128}k16 with A in registers and B transposed
 * (N-major) in shared memory, and the fences around them. Layouts: cuda_emu.h's "warpgroup MMA"
 * comment (the emulation runs the same calls). On other architectures (and the sm_80..89, compute_90
 * passes of the build) the instructions compile to nothing: the kernels that use them check for an
 * sm_90 device before launching (sf_wgmma_device_ok). */
#ifndef SF_WGMMA_CUH
#define SF_WGMMA_CUH

#include "cuda_common.cuh"

/* The 128-byte-swizzled row that holds 16-byte chunk c of row r of a tile whose rows are 128 bytes:
 * the chunk's position within the row (atoms 1024-byte aligned). */
__device__ __forceinline__ int sf_swz128(int r, int c) { return c ^ (r & 7); }

/* Register fences for asynchronous wgmma operands (as CUTLASS's warpgroup_fence_operand): after a wait,
 * every register of x is treated as rewritten here, so the compiler neither reads a copy made while the
 * tensor cores still owned it nor moves its uses above the wait. */
#ifdef SF_CUDA_EMU
static inline void sf_wgmma_fence_regs(float &) {}
static inline void sf_wgmma_fence_regs(uint32_t &) {}
template <int N>
static inline void sf_setmaxnreg_inc(void) {}
template <int N>
static inline void sf_setmaxnreg_dec(void) {}
#else
__device__ __forceinline__ void sf_wgmma_fence_regs(float &x) { asm volatile("" : "+f"(x)::"memory"); }
__device__ __forceinline__ void sf_wgmma_fence_regs(uint32_t &x) { asm volatile("" : "+r"(x)::"memory"); }
/* Warp-specialised kernels hand registers between warpgroups (every thread of the warpgroup executes it). */
template <int N>
__device__ __forceinline__ void sf_setmaxnreg_inc(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
template <int N>
__device__ __forceinline__ void sf_setmaxnreg_dec(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
#endif
template <typename T, size_t N>
__device__ __forceinline__ void sf_wgmma_fence_regs(T (&a)[N]) {
    for (size_t i = 0; i < N; i++) sf_wgmma_fence_regs(a[i]);
}

#ifdef SF_CUDA_EMU
#define sf_smem_addr(p) sf_emu::smem_offset((p), __FILE__, __LINE__)
#define sf_wgmma_m64n64k16_ss(d, da, db, sc) sf_emu_wgmma((d), 64, nullptr, (da), (db), false, (sc), __FILE__, __LINE__)
#define sf_wgmma_m64n128k16_rs_tb(d, a, db, sc) sf_emu_wgmma((d), 128, (a), 0, (db), true, (sc), __FILE__, __LINE__)
#define sf_wgmma_m64n64k16_rs_tb(d, a, db, sc) sf_emu_wgmma((d), 64, (a), 0, (db), true, (sc), __FILE__, __LINE__)
#define sf_wgmma_m64n64k16_rs(d, a, db, sc) sf_emu_wgmma((d), 64, (a), 0, (db), false, (sc), __FILE__, __LINE__)
#define sf_wgmma_m64n128k16_rs(d, a, db, sc) sf_emu_wgmma((d), 128, (a), 0, (db), false, (sc), __FILE__, __LINE__)
static inline void sf_wgmma_fence(const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    sf_emu::wgmma_fence(file, line);
}
static inline void sf_wgmma_commit(const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    sf_emu::wgmma_commit(file, line);
}
template <int N>
static inline void sf_wgmma_wait(const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    sf_emu::wgmma_wait(N, file, line);
}
static inline void sf_fence_proxy_async(void) { sf_emu::fence_proxy_async(); }
#else
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SF_HAVE_WGMMA 1
#endif
__device__ __forceinline__ uint32_t sf_smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void sf_wgmma_fence(void) {
#ifdef SF_HAVE_WGMMA
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void sf_wgmma_commit(void) {
#ifdef SF_HAVE_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void sf_wgmma_wait(void) {
#ifdef SF_HAVE_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
/* Shared memory written by ordinary stores / cp.async, then read by wgmma (the async proxy). */
__device__ __forceinline__ void sf_fence_proxy_async(void) {
#ifdef SF_HAVE_WGMMA
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
#ifdef SF_HAVE_WGMMA
__device__ __forceinline__ void sf_wgmma_m64n64k16_ss(float *d, uint64_t da, uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "l"(da), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ void sf_wgmma_m64n128k16_rs_tb(float *d, const uint32_t *a, uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ void sf_wgmma_m64n64k16_rs_tb(float *d, const uint32_t *a, uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
/* A in registers, B K-major (not transposed) in shared memory: S = Q·Kᵀ with Q held in registers. */
__device__ __forceinline__ void sf_wgmma_m64n64k16_rs(float *d, const uint32_t *a, uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ void sf_wgmma_m64n128k16_rs(float *d, const uint32_t *a, uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
#else
__device__ __forceinline__ void sf_wgmma_m64n128k16_rs(float *, const uint32_t *, uint64_t, int) {}
__device__ __forceinline__ void sf_wgmma_m64n64k16_rs(float *, const uint32_t *, uint64_t, int) {}
__device__ __forceinline__ void sf_wgmma_m64n64k16_ss(float *, uint64_t, uint64_t, int) {}
__device__ __forceinline__ void sf_wgmma_m64n128k16_rs_tb(float *, const uint32_t *, uint64_t, int) {}
__device__ __forceinline__ void sf_wgmma_m64n64k16_rs_tb(float *, const uint32_t *, uint64_t, int) {}
#endif
#endif

/* The wgmma A fragments (the mma.sync m16n8k16 A layout) of a warp's 16 rows, KS steps of 16 columns, from
 * a bf16 matrix in 128-byte-swizzled atoms (64 columns each, atom_bytes apart, rows 128 bytes apart,
 * 1024-byte aligned): row0 = the warp's first row in the atoms. ldmatrix x4, matrix i of step kk = rows
 * + 8·(i & 1), 16-byte chunk 2·kk + (i >> 1). */
template <int KS>
__device__ __forceinline__ void sf_wgmma_load_a(uint32_t (*frag)[4], const unsigned char *atoms, uint32_t atom_bytes,
                                                int row0) {
    const int lane = (int)(threadIdx.x & 31), row = row0 + (lane & 7) + ((lane >> 3) & 1) * 8;
    for (int kk = 0; kk < KS; kk++) {
        const int c = 2 * kk + (lane >> 4);
        sf_ldsm_x4(frag[kk], atoms + (c / 8) * atom_bytes + row * 128 + sf_swz128(row, c % 8) * 16);
    }
}

/* A descriptor for a 128-byte-swizzled operand at shared address addr (lbo, sbo in bytes). */
__device__ __forceinline__ uint64_t sf_wgmma_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((addr & 0x3ffffu) >> 4) | (uint64_t)((lbo >> 4) & 0x3fffu) << 16 |
           (uint64_t)((sbo >> 4) & 0x3fffu) << 32 | (uint64_t)1 << 62;
}


/* Host: wgmma (and TMA) need an sm_90 device (and the sm_90a build); asked once per device. */
static inline int sf_wgmma_device_ok(int ordinal) {
    static int known[16], ok[16];
    if (ordinal < 0 || ordinal >= 16) return 0;
    if (!known[ordinal]) {
        cudaDeviceProp p;
        ok[ordinal] = cudaGetDeviceProperties(&p, ordinal) == cudaSuccess && p.major == 9 && p.minor == 0;
        known[ordinal] = 1;
    }
    return ok[ordinal];
}

#endif
