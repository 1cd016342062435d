/*
 * cuda_emu.c - the emulating shim behind which the unit tests run the CUDA
 * emitter's kernels as host C++ (see cuda_emu.h).
 *
 * Every GPU thread of a block is a pthread, __syncthreads and __syncwarp
 * are pthread barriers, shared arrays are function statics (one block runs
 * at a time), and the warp-collective operations the kernels use are
 * emulated from their definitions: ldmatrix.x4 (each lane gives a row
 * address, lane 4g + t receives row g, elements 2t and 2t+1 of each 8x8
 * matrix, or with .trans column g, rows 2t and 2t+1), mma.sync.m16n8k16 (A,
 * B and C fragments gathered from the lanes by the PTX ISA's layouts,
 * products summed in double), cp.async (a copy with zero-fill, checked for
 * alignment and for reading inside a buffer), __shfl_xor_sync,
 * __shfl_down_sync and __shfl_sync (every lane of the warp posts its value
 * in the warp's slots, a barrier, each reads its source lane, a barrier;
 * a partial mask fails the run), and the 16-byte accesses mpcc_ld16 and
 * mpcc_st16 (failing the run when misaligned or outside every buffer, and
 * counted, so a test can see that the vector path ran).
 *
 * What it cannot see: NVRTC's code generation, the real hardware's timing
 * (races the barriers would hide here), divergent shuffles (they would
 * hang here rather than fail).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/unit/cuda_emu.h"

const char mpcc_emu_shim[] =
    "#include <math.h>\n#include <string.h>\n#include <stdint.h>\n#include <pthread.h>\n#include "
    "<atomic>\n"
    "#define MPCC_HOST_SHIM 1\n#define MPCC_SHIM_MATRIX 1\n"
    "#define __global__\n#define __device__\n#define __forceinline__ inline\n"
    "#define __launch_bounds__(...)\n#define __shared__ static\n"
    "struct mpcc_dim3 { unsigned x, y, z; };\n"
    "static thread_local mpcc_dim3 threadIdx;\n"
    "static mpcc_dim3 blockIdx, blockDim, gridDim;\n"
    "static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }\n"
    "static inline double __longlong_as_double(long long i)"
    " { double f; memcpy(&f, &i, 8); return f; }\n"
    "static inline unsigned short mpcc_f2h(float x)"
    " { _Float16 h = (_Float16)x; unsigned short u; memcpy(&u, &h, 2); return u; }\n"
    "static inline float mpcc_h2f(unsigned short u)"
    " { _Float16 h; memcpy(&h, &u, 2); return (float)h; }\n"
    "static inline unsigned short mpcc_f2bf(float x) { uint32_t u; memcpy(&u, &x, 4);\n"
    "\tif ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40);\n"
    "\treturn (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16); }\n"
    "static inline float mpcc_bf2f(unsigned short h)"
    " { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }\n"
    /* the emulator's state: one block at a time */
    "struct mpcc_emu_warp { pthread_barrier_t bar; const unsigned short *row[32];"
    " unsigned a[32][4], b[32][2]; unsigned long long x[32]; };\n"
    "static pthread_barrier_t mpcc_emu_bar;\n"
    "static mpcc_emu_warp mpcc_emu_warps[32];\n"
    "static const char *volatile mpcc_emu_err;\n"
    "static pthread_mutex_t mpcc_emu_lock = PTHREAD_MUTEX_INITIALIZER;\n"
    "static const char *mpcc_emu_buf[MAX_BUFS]; static size_t mpcc_emu_len[MAX_BUFS];\n"
    "static int mpcc_emu_nbuf;\n"
    "static std::atomic<long> mpcc_emu_n16, mpcc_emu_nshfl;\n"
    "static void mpcc_emu_fail(const char *m) { pthread_mutex_lock(&mpcc_emu_lock);"
    " if (!mpcc_emu_err) mpcc_emu_err = m; pthread_mutex_unlock(&mpcc_emu_lock); }\n"
    "static bool mpcc_emu_inside(const void *p, size_t n) {\n"
    "\tfor (int i = 0; i < mpcc_emu_nbuf; i++)\n"
    "\t\tif ((const char *)p >= mpcc_emu_buf[i] &&"
    " (const char *)p + n <= mpcc_emu_buf[i] + mpcc_emu_len[i]) return true;\n"
    "\treturn false; }\n"
    "static inline void __syncthreads() { pthread_barrier_wait(&mpcc_emu_bar); }\n"
    "static inline void __syncwarp() {"
    " pthread_barrier_wait(&mpcc_emu_warps[threadIdx.x >> 5].bar); }\n"
    /* ldmatrix.x4: lanes 8j..8j+7 address the rows of matrix j */
    "static void mpcc_emu_ldsm(unsigned *r, const unsigned short *p, bool trans) {\n"
    "\tmpcc_emu_warp *w = &mpcc_emu_warps[threadIdx.x >> 5]; int l = threadIdx.x & 31;\n"
    "\tint g = l >> 2, t = l & 3;\n"
    "\tif ((uintptr_t)p % 16) mpcc_emu_fail(\"ldmatrix row address not 16-byte aligned\");\n"
    "\tw->row[l] = p; pthread_barrier_wait(&w->bar);\n"
    "\tfor (int j = 0; j < 4; j++) {\n"
    "\t\tunsigned lo = trans ? w->row[8 * j + 2 * t][g] : w->row[8 * j + g][2 * t];\n"
    "\t\tunsigned hi = trans ? w->row[8 * j + 2 * t + 1][g] : w->row[8 * j + g][2 * t + 1];\n"
    "\t\tr[j] = lo | hi << 16; }\n"
    "\tpthread_barrier_wait(&w->bar); }\n"
    "static inline void mpcc_ldsm4(unsigned *r, const unsigned short *p)"
    " { mpcc_emu_ldsm(r, p, false); }\n"
    "static inline void mpcc_ldsm4t(unsigned *r, const unsigned short *p)"
    " { mpcc_emu_ldsm(r, p, true); }\n"
    /* mma.m16n8k16: A (row, k) in lane 4 (row % 8) + (k % 8) / 2, register
     * (row >= 8) + 2 (k >= 8); B (k, n) in lane 4 n + (k % 8) / 2, register
     * k >= 8; half k & 1; C (row, col) of lane 4 g + t: (g, 2t), (g, 2t+1),
     * (g+8, 2t), (g+8, 2t+1) */
    "static double mpcc_emu_half(unsigned r, int k, bool bf) {\n"
    "\tunsigned short u = (unsigned short)(k & 1 ? r >> 16 : r & 0xffff);\n"
    "\treturn bf ? mpcc_bf2f(u) : mpcc_h2f(u); }\n"
    "static void mpcc_emu_mma(float *d, const unsigned *a, const unsigned *b, bool bf) {\n"
    "\tmpcc_emu_warp *w = &mpcc_emu_warps[threadIdx.x >> 5]; int l = threadIdx.x & 31;\n"
    "\tint g = l >> 2, t = l & 3; float o[4];\n"
    "\tmemcpy(w->a[l], a, 16); memcpy(w->b[l], b, 8); pthread_barrier_wait(&w->bar);\n"
    "\tfor (int q = 0; q < 4; q++) {\n"
    "\t\tint row = g + (q >> 1) * 8, col = 2 * t + (q & 1); double s = d[q];\n"
    "\t\tfor (int k = 0; k < 16; k++)\n"
    "\t\t\ts += mpcc_emu_half(w->a[(row % 8) * 4 + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)], k,"
    " bf) * mpcc_emu_half(w->b[col * 4 + (k % 8) / 2][k >= 8], k, bf);\n"
    "\t\to[q] = (float)s; }\n"
    "\tpthread_barrier_wait(&w->bar); memcpy(d, o, 16); }\n"
    "static inline void mpcc_mma_f16(float *d, const unsigned *a, const unsigned *b)"
    " { mpcc_emu_mma(d, a, b, false); }\n"
    "static inline void mpcc_mma_bf16(float *d, const unsigned *a, const unsigned *b)"
    " { mpcc_emu_mma(d, a, b, true); }\n"
    /* cp.async with src-size n elements of e */
    "static void mpcc_emu_cp(unsigned short *d, const unsigned short *s, int n, bool fast,"
    " int e) {\n"
    "\tif ((uintptr_t)d % (2 * e)) mpcc_emu_fail(\"cp.async destination misaligned\");\n"
    "\tif (fast && (uintptr_t)s % (2 * e)) mpcc_emu_fail(\"cp.async source misaligned\");\n"
    "\tif (n < 0 || n > e) mpcc_emu_fail(\"cp.async source size out of range\");\n"
    "\tif (n > 0 && !mpcc_emu_inside(s, 2 * (size_t)n))"
    " mpcc_emu_fail(\"cp.async reads outside every buffer\");\n"
    "\tfor (int j = 0; j < e; j++) d[j] = j < n ? s[j] : (unsigned short)0; }\n"
    "static inline void mpcc_cp16(unsigned short *d, const unsigned short *s, int n, bool f)"
    " { mpcc_emu_cp(d, s, n, f, 8); }\n"
    "static inline void mpcc_cp8(unsigned short *d, const unsigned short *s, int n, bool f)"
    " { mpcc_emu_cp(d, s, n, f, 4); }\n"
    "static inline void mpcc_cp4(unsigned short *d, const unsigned short *s, int n, bool f)"
    " { mpcc_emu_cp(d, s, n, f, 2); }\n"
    "static inline void mpcc_cp_commit() {}\nstatic inline void mpcc_cp_wait() {}\n"
    "static inline void mpcc_st2(unsigned short *p, unsigned v) {\n"
    "\tif ((uintptr_t)p % 4) mpcc_emu_fail(\"32-bit shared store misaligned\");\n"
    "\tmemcpy(p, &v, 4); }\n"
    "static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }\n"
    /* warp shuffles: every lane posts its value, waits for the warp, reads
     * its source lane, waits again (the slot is reused by the next call) */
    "static unsigned long long mpcc_emu_xchg(unsigned mask, unsigned long long v, int src) {\n"
    "\tmpcc_emu_warp *w = &mpcc_emu_warps[threadIdx.x >> 5]; int l = threadIdx.x & 31;\n"
    "\tif (mask != 0xffffffffu) mpcc_emu_fail(\"shuffle with a partial mask\");\n"
    "\tw->x[l] = v; mpcc_emu_nshfl++; pthread_barrier_wait(&w->bar);\n"
    "\tunsigned long long r = w->x[src]; pthread_barrier_wait(&w->bar); return r; }\n"
    "template <typename T> static T mpcc_emu_shfl(unsigned mask, T v, int src) {\n"
    "\tstatic_assert(sizeof(T) == 4 || sizeof(T) == 8, \"shuffle of a 4- or 8-byte value\");\n"
    "\tunsigned long long u = 0; memcpy(&u, &v, sizeof(T));\n"
    "\tu = mpcc_emu_xchg(mask, u, src); memcpy(&v, &u, sizeof(T)); return v; }\n"
    "template <typename T> static T __shfl_xor_sync(unsigned mask, T v, int m)"
    " { return mpcc_emu_shfl(mask, v, (int)((threadIdx.x & 31) ^ (unsigned)m) & 31); }\n"
    "template <typename T> static T __shfl_down_sync(unsigned mask, T v, unsigned d) {\n"
    "\tint l = threadIdx.x & 31; return mpcc_emu_shfl(mask, v, l + (int)d < 32 ? l + (int)d : l); "
    "}\n"
    "template <typename T> static T __shfl_sync(unsigned mask, T v, int s)"
    " { return mpcc_emu_shfl(mask, v, s & 31); }\n"
    /* 16-byte vector accesses (mpcc_v16 comes with the emitted prelude) */
    "template <typename V> static V mpcc_emu_ld16(const void *p) {\n"
    "\tV v; memset(&v, 0, sizeof(v));\n"
    "\tif ((uintptr_t)p % 16) { mpcc_emu_fail(\"misaligned 16-byte load\"); return v; }\n"
    "\tif (!mpcc_emu_inside(p, 16)) { mpcc_emu_fail(\"16-byte load outside every buffer\");"
    " return v; }\n"
    "\tmemcpy(&v, p, 16); mpcc_emu_n16++; return v; }\n"
    "template <typename V> static void mpcc_emu_st16(void *p, const V &v) {\n"
    "\tif ((uintptr_t)p % 16) { mpcc_emu_fail(\"misaligned 16-byte store\"); return; }\n"
    "\tif (!mpcc_emu_inside(p, 16)) { mpcc_emu_fail(\"16-byte store outside every buffer\");"
    " return; }\n"
    "\tmemcpy(p, &v, 16); mpcc_emu_n16++; }\n"
    "#define mpcc_ld16(p) mpcc_emu_ld16<mpcc_v16>(p)\n"
    "#define mpcc_st16(p, v) mpcc_emu_st16(p, v)\n"
    /* the launcher: every block in turn, every thread of a block at once */
    "typedef void (*mpcc_emu_fn)(void *, void *, void *, void *, void *, void *, void *,"
    " void *, void *, void *, void *, void *, void *, void *, void *, void *);\n"
    "struct mpcc_emu_thread_arg { mpcc_emu_fn fn; void **a; unsigned tid; };\n"
    "static void *mpcc_emu_thread(void *p) {\n"
    "\tmpcc_emu_thread_arg *j = (mpcc_emu_thread_arg *)p;\n"
    "\tthreadIdx.x = j->tid; threadIdx.y = threadIdx.z = 0;\n"
    "\tvoid **a = j->a;\n"
    "\tj->fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12],"
    " a[13], a[14], a[15]);\n"
    "\treturn 0; }\n"
    "extern \"C\" const char *mpcc_emu_launch(void *fn, unsigned grid, unsigned block,"
    " void **args, void **bufs, const size_t *lens, int n_bufs) {\n"
    "\tstatic pthread_t th[1024]; static mpcc_emu_thread_arg ja[1024];\n"
    "\tpthread_attr_t at;\n"
    "\tif (block % 32 || block > 1024 || n_bufs > MAX_BUFS) return \"bad launch\";\n"
    "\tmpcc_emu_err = 0; mpcc_emu_nbuf = n_bufs;\n"
    "\tfor (int i = 0; i < n_bufs; i++) { mpcc_emu_buf[i] = (const char *)bufs[i];"
    " mpcc_emu_len[i] = lens[i]; }\n"
    "\tblockDim.x = block; blockDim.y = blockDim.z = 1;\n"
    "\tgridDim.x = grid; gridDim.y = gridDim.z = 1;\n"
    "\tpthread_barrier_init(&mpcc_emu_bar, 0, block);\n"
    "\tfor (unsigned w = 0; w < block / 32; w++)"
    " pthread_barrier_init(&mpcc_emu_warps[w].bar, 0, 32);\n"
    "\tpthread_attr_init(&at); pthread_attr_setstacksize(&at, 1 << 18);\n"
    "\tfor (unsigned b = 0; b < grid && !mpcc_emu_err; b++) {\n"
    "\t\tblockIdx.x = b; blockIdx.y = blockIdx.z = 0;\n"
    "\t\tfor (unsigned t = 0; t < block; t++) {\n"
    "\t\t\tja[t].fn = (mpcc_emu_fn)fn; ja[t].a = args; ja[t].tid = t;\n"
    "\t\t\tif (pthread_create(&th[t], &at, mpcc_emu_thread, &ja[t])) return \"pthread_create"
    " failed\"; }\n"
    "\t\tfor (unsigned t = 0; t < block; t++) pthread_join(th[t], 0); }\n"
    "\tpthread_attr_destroy(&at);\n"
    "\tpthread_barrier_destroy(&mpcc_emu_bar);\n"
    "\tfor (unsigned w = 0; w < block / 32; w++)"
    " pthread_barrier_destroy(&mpcc_emu_warps[w].bar);\n"
    "\treturn mpcc_emu_err; }\n"
    "extern \"C\" long mpcc_emu_vector_accesses(void) { return mpcc_emu_n16.exchange(0); }\n"
    "extern \"C\" long mpcc_emu_shuffles(void) { return mpcc_emu_nshfl.exchange(0); }\n";

void *
mpcc_emu_alloc(mpcc_emu_buf *g, size_t bytes, size_t misalign)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE),
	       body = (bytes + misalign + 32 + pg - 1) / pg * pg;
	char *end;
	uintptr_t base;

	g->len = body + 2 * pg;
	g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->map == MAP_FAILED || mprotect(g->map, pg, PROT_NONE) != 0 ||
	    mprotect((char *)g->map + pg + body, pg, PROT_NONE) != 0) {
		fprintf(stderr, "cuda_emu: cannot map a guarded buffer\n");
		abort();
	}
	end = (char *)g->map + pg + body;
	base = ((uintptr_t)(end - bytes - misalign)) & ~(uintptr_t)15;
	g->p = (void *)(base + misalign);
	return g->p;
}

void
mpcc_emu_free(mpcc_emu_buf *g)
{
	munmap(g->map, g->len);
}

void *
mpcc_emu_begin(char *dir)
{
	char path[256];
	FILE *f;

	strcpy(dir, "/tmp/mpcc_cuda_emu_XXXXXX");
	if (!mkdtemp(dir))
		return NULL;
	snprintf(path, sizeof(path), "%s/k.cpp", dir);
	f = fopen(path, "w");
	if (f)
		fprintf(f, "#define MAX_BUFS %d\n%s", MPCC_EMU_MAX_ARGS, mpcc_emu_shim);
	return f;
}

void *
mpcc_emu_finish(void *stream, const char *dir)
{
	char path[256], cmd[700];

	fclose(stream);
	snprintf(cmd, sizeof(cmd),
	         "g++ -std=c++17 -O1 -pthread -ffp-contract=off -fno-fast-math -shared -fPIC -w "
	         "-o %s/k.so %s/k.cpp",
	         dir, dir);
	if (system(cmd) != 0)
		return NULL;
	snprintf(path, sizeof(path), "%s/k.so", dir);
	return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

void
mpcc_emu_close(void *so, const char *dir, bool keep)
{
	char cmd[300];

	if (so)
		dlclose(so);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (!keep && getenv("MPCC_EMU_KEEP"))
		fprintf(stderr, "cuda_emu: source kept in %s/k.cpp (MPCC_EMU_KEEP)\n", dir);
	else if (!keep && system(cmd) != 0)
		fprintf(stderr, "cuda_emu: could not remove %s\n", dir);
}

uint16_t
mpcc_emu_f2h(float x)
{
	_Float16 h = (_Float16)x;
	uint16_t u;

	memcpy(&u, &h, 2);
	return u;
}

uint16_t
mpcc_emu_f2bf(float x)
{
	uint32_t u;

	memcpy(&u, &x, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40);
	return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

double
mpcc_emu_as_double(mpcc_dtype t, const void *p, int64_t i)
{
	uint16_t u;
	uint32_t w;
	float f;
	_Float16 h;

	switch (t) {
	case MPCC_DTYPE_F32:
		return ((const float *)p)[i];
	case MPCC_DTYPE_F64:
		return ((const double *)p)[i];
	case MPCC_DTYPE_F16:
		memcpy(&h, (const char *)p + 2 * i, 2);
		return (double)h;
	case MPCC_DTYPE_BF16:
		memcpy(&u, (const char *)p + 2 * i, 2);
		w = (uint32_t)u << 16;
		memcpy(&f, &w, 4);
		return f;
	default:
		return NAN;
	}
}
