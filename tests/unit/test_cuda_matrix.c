/*
 * test_cuda_matrix.c - the CUDA emitter's tiled matrix kernels, run on the
 * CPU thread by thread and compared with the kernel IR interpreter; no GPU
 * needed.
 *
 * The printed CUDA C of each matrix stage is compiled as host C++ with g++
 * behind an emulating shim: every GPU thread of a block is a pthread,
 * __syncthreads and __syncwarp are pthread barriers, shared arrays are
 * function statics (one block runs at a time), and the warp-collective
 * PTX the kernels use is emulated from its definition in the PTX ISA:
 * ldmatrix.x4 (each lane gives a row address, lane 4g + t receives row g,
 * elements 2t and 2t+1 of each 8x8 matrix, or with .trans column g, rows
 * 2t and 2t+1), mma.sync.m16n8k16 (A, B and C fragments gathered from the
 * lanes by the documented layouts, products summed in double), cp.async
 * (a copy with zero-fill, checked for alignment and for reading inside a
 * buffer). Buffers end at a guard page, so a plain load past the end
 * crashes the test.
 *
 * Covered: the cases of tests/unit/matrix_cases.h that are small enough,
 * in fp16, bf16 and fp32 plans, with every tile variant forced, a grid
 * smaller than the tile count (the kernels loop over tiles), buffers
 * misaligned by 2 bytes (cp.async falls back to plain loads), a launch
 * with another block size (the generic fallback); and every matrix stage
 * of the model tests in the three precisions with the tiles the emitter
 * chooses. Tensor-core results are compared with a tolerance per output
 * dtype (different summation order, f32 accumulation); SIMT and fallback
 * results must match the interpreter bit for bit.
 *
 * What it cannot see: NVRTC's code generation, the real hardware's
 * accumulation order and timing (races the barriers would hide here);
 * test_cuda_compile compiles the same source for sm_80 and sm_90, and
 * test_cuda_run compares with the cpu backend on a GPU.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/matrix.h"
#include "frontend/onnx.h"
#include "tests/unit/matrix_cases.h"

#define MAX_ARGS 16

static const char shim[] =
    "#include <math.h>\n#include <string.h>\n#include <stdint.h>\n#include <pthread.h>\n"
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
    " unsigned a[32][4], b[32][2]; };\n"
    "static pthread_barrier_t mpcc_emu_bar;\n"
    "static mpcc_emu_warp mpcc_emu_warps[32];\n"
    "static const char *volatile mpcc_emu_err;\n"
    "static pthread_mutex_t mpcc_emu_lock = PTHREAD_MUTEX_INITIALIZER;\n"
    "static const char *mpcc_emu_buf[MAX_BUFS]; static size_t mpcc_emu_len[MAX_BUFS];\n"
    "static int mpcc_emu_nbuf;\n"
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
    "\treturn mpcc_emu_err; }\n";

typedef const char *(*launch_fn)(void *fn, unsigned grid, unsigned block, void **args,
                                 void **bufs, const size_t *lens, int n_bufs);

/* How a job launches its stage. */
enum { RUN_FULL, RUN_SHORT_GRID, RUN_MISALIGNED, RUN_FALLBACK };

typedef struct job {
	kir_kernel k;    /* a shallow copy of the source kernel, one stage */
	int variant;     /* forced tile, -1 chosen */
	int run;
	char label[160];
} job;

typedef struct suite {
	job *jobs;
	int n, cap;
	mpcc_lower lowers[64]; /* own the kernels the jobs point into */
	mpcc_graph *graphs[64];
	int n_lowers;
	int n_mma, n_simt;
} suite;

static void
add_job(suite *s, const kir_kernel *k, int stage, int variant, int run, const char *what)
{
	job *j;

	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->jobs = realloc(s->jobs, sizeof(job) * (size_t)s->cap);
		assert_non_null(s->jobs);
	}
	j = &s->jobs[s->n];
	j->k = *k;
	j->k.stages = &k->stages[stage];
	j->k.n_stages = 1;
	j->k.cover = NULL;
	j->k.n_cover = 0;
	snprintf(j->k.name, sizeof(j->k.name), "j%d", s->n);
	j->variant = variant;
	j->run = run;
	snprintf(j->label, sizeof(j->label), "%s %s stage %d variant %d%s", what, k->name, stage,
	         variant,
	         run == RUN_SHORT_GRID   ? " short grid"
	         : run == RUN_MISALIGNED ? " misaligned"
	         : run == RUN_FALLBACK   ? " fallback"
	                                 : "");
	s->n++;
}

/*
 * Jobs for every matrix stage of lx: with `all`, every variant of its kind
 * (short grid), then the chosen one misaligned and as a fallback launch;
 * without, the chosen tile only.
 */
static void
add_stages(suite *s, const mpcc_lower *lx, const char *what, bool all)
{
	for (int i = 0; i < lx->n_kernels; i++) {
		const kir_kernel *k = lx->kernels[i];

		for (int st = 0; st < k->n_stages; st++) {
			mpcc_cuda_matrix m;

			char desc[160];

			if (!mpcc_cuda_matrix_plan(k, st, -1, &m))
				continue;
			mpcc_cuda_matrix_describe(&m, desc, sizeof(desc));
			printf("  %s %s_s%d: %s\n", what, k->name, st, desc);
			if (m.kind == MPCC_CUDA_MX_MMA)
				s->n_mma++;
			else
				s->n_simt++;
			add_job(s, k, st, -1, RUN_FULL, what);
			if (!all)
				continue;
			for (int v = 0; v < mpcc_cuda_matrix_variants(m.kind); v++)
				add_job(s, k, st, v, RUN_SHORT_GRID, what);
			if (m.a.chunk || m.b.chunk)
				add_job(s, k, st, -1, RUN_MISALIGNED, what);
			add_job(s, k, st, -1, RUN_FALLBACK, what);
		}
	}
}

static void
add_graph(suite *s, mpcc_graph *g, mpcc_precision p, const char *what, bool all)
{
	mpcc_diag d;
	mpcc_lower *lx = &s->lowers[s->n_lowers];

	assert_true(s->n_lowers < 64);
	mpcc_diag_init(&d);
	if (mx_lower(g, p, lx, &d) != MPCC_OK)
		fail_msg("%s: %s", what, d.msg);
	s->graphs[s->n_lowers++] = g;
	add_stages(s, lx, what, all);
}

/* ---------------------------------------------------------------- buffers */

typedef struct gbuf {
	void *map;
	size_t len;
	void *p;
} gbuf;

/* bytes at p, ending within 16 bytes of a guard page (p + misalign is
 * 16-byte aligned minus misalign). */
static void *
galloc(gbuf *g, size_t bytes, size_t misalign)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), body = (bytes + misalign + 32 + pg - 1) / pg * pg;
	char *end;
	uintptr_t base;

	g->len = body + 2 * pg;
	g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->map != MAP_FAILED);
	assert_int_equal(mprotect(g->map, pg, PROT_NONE), 0);
	assert_int_equal(mprotect((char *)g->map + pg + body, pg, PROT_NONE), 0);
	end = (char *)g->map + pg + body;
	base = ((uintptr_t)(end - bytes - misalign)) & ~(uintptr_t)15;
	g->p = (void *)(base + misalign);
	return g->p;
}

static void
gfree(gbuf *g)
{
	munmap(g->map, g->len);
}

static uint32_t rng = 12345;

static float
uniform(void)
{
	rng = rng * 1664525u + 1013904223u;
	return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

static uint16_t
f2h(float x)
{
	_Float16 h = (_Float16)x;
	uint16_t u;
	memcpy(&u, &h, 2);
	return u;
}

static uint16_t
f2bf(float x)
{
	uint32_t u;
	memcpy(&u, &x, 4);
	return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static double
as_double(mpcc_dtype t, const void *p, int64_t i)
{
	uint16_t u;
	uint32_t w;
	float f;

	switch (t) {
	case MPCC_DTYPE_F32:
		return ((const float *)p)[i];
	case MPCC_DTYPE_F16:
		memcpy(&u, (const char *)p + 2 * i, 2);
		{
			_Float16 h;
			memcpy(&h, &u, 2);
			return (double)h;
		}
	case MPCC_DTYPE_BF16:
		memcpy(&u, (const char *)p + 2 * i, 2);
		w = (uint32_t)u << 16;
		memcpy(&f, &w, 4);
		return f;
	default:
		return NAN;
	}
}

static void
fill(mpcc_dtype t, void *p, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		float x = uniform();

		if (t == MPCC_DTYPE_F32)
			((float *)p)[i] = x;
		else if (t == MPCC_DTYPE_F16)
			((uint16_t *)p)[i] = f2h(x);
		else if (t == MPCC_DTYPE_BF16)
			((uint16_t *)p)[i] = f2bf(x);
		else
			memset((char *)p + (size_t)i * mpcc_dtype_size(t), 0, mpcc_dtype_size(t));
	}
}

/* Relative tolerance of a tensor-core result stored in dtype t: the
 * summation order differs, and an f16/bf16 store may then round the other
 * way (one unit in the last place, 2^-8 for bf16, 2^-11 for f16). */
static double
tolerance(mpcc_dtype t)
{
	return t == MPCC_DTYPE_BF16 ? 1.0 / 64 : t == MPCC_DTYPE_F16 ? 1.0 / 512 : 1e-4;
}

/* Runs job j through the emulator; returns the number of mismatches. */
static int
run_job(void *so, const job *j)
{
	const kir_kernel *k = &j->k;
	const kir_stage *st = &k->stages[0];
	void *ref[MAX_ARGS] = {0}, *got[MAX_ARGS] = {0}, *args[MAX_ARGS] = {0};
	size_t lens[MAX_ARGS];
	gbuf gb[MAX_ARGS];
	mpcc_cuda_matrix m;
	unsigned grid, block;
	char name[96];
	mpcc_diag d;
	void *fn;
	launch_fn launch;
	const char *err;
	int bad = 0;
	bool exact;

	mpcc_diag_init(&d);
	assert_true(k->n_bufs <= MAX_ARGS);
	assert_true(mpcc_cuda_matrix_plan(k, 0, j->variant, &m));
	mpcc_cuda_matrix_launch(&m, &grid, &block);
	if (j->run == RUN_SHORT_GRID)
		grid = grid > 2 ? grid / 2 : grid;
	if (j->run == RUN_FALLBACK) {
		block = 64;
		grid = 3;
	}
	exact = m.kind == MPCC_CUDA_MX_SIMT || j->run == RUN_FALLBACK;
	for (int b = 0; b < k->n_bufs; b++) {
		lens[b] = (size_t)k->bufs[b].n_elems * mpcc_dtype_size(k->bufs[b].dtype);
		ref[b] = malloc(lens[b] ? lens[b] : 1);
		assert_non_null(ref[b]);
		got[b] = galloc(&gb[b], lens[b], j->run == RUN_MISALIGNED ? 2 : 0);
		fill(k->bufs[b].dtype, ref[b], k->bufs[b].n_elems);
		memcpy(got[b], ref[b], lens[b]);
		args[b] = got[b];
	}
	if (kir_interpret(k, ref, &d) != MPCC_OK)
		fail_msg("%s: interpreter: %s", j->label, d.msg);
	assert_true(mpcc_cuda_stage_name(name, sizeof(name), k, 0));
	fn = dlsym(so, name);
	*(void **)&launch = dlsym(so, "mpcc_emu_launch");
	assert_non_null(fn);
	assert_non_null(launch);
	err = launch(fn, grid, block, args, got, lens, k->n_bufs);
	if (err) {
		print_message("%s: %s\n", j->label, err);
		bad++;
	}
	for (int s = 0; s < st->n_store && !bad; s++) {
		int b = st->store[s].buf;
		mpcc_dtype t = k->bufs[b].dtype;

		for (int64_t i = 0; i < k->bufs[b].n_elems; i++) {
			double x = as_double(t, got[b], i), y = as_double(t, ref[b], i);
			bool ok = exact ? memcmp((char *)got[b] + (size_t)i * mpcc_dtype_size(t),
			                         (char *)ref[b] + (size_t)i * mpcc_dtype_size(t),
			                         mpcc_dtype_size(t)) == 0 ||
			                      (isnan(x) && isnan(y))
			                : fabs(x - y) <= tolerance(t) * (fabs(y) + 1.0);
			if (!ok && bad++ < 5)
				print_message("%s (%s): buffer %d element %lld is %.9g, want %.9g\n",
				              j->label, exact ? "exact" : "tolerance", b, (long long)i, x,
				              y);
		}
	}
	for (int b = 0; b < k->n_bufs; b++) {
		free(ref[b]);
		gfree(&gb[b]);
	}
	return bad;
}

/* Emits every job into one translation unit behind the shim, compiles it
 * with g++ and runs each job; returns the failures. */
static int
run_suite(suite *s, const char *title)
{
	char dir[] = "/tmp/mpcc_cuda_matrix_XXXXXX", path[256], cmd[600];
	int failures = 0;
	FILE *f;
	void *so;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/k.cpp", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#define MAX_BUFS %d\n%s", MAX_ARGS, shim);
	for (int i = 0; i < s->n; i++) {
		kir_kernel *kp = &s->jobs[i].k;
		char *src = NULL;
		mpcc_diag d;

		mpcc_diag_init(&d);
		if (mpcc_cuda_emit_variant(&kp, 1, i == 0, s->jobs[i].variant, &src, &d) != MPCC_OK)
			fail_msg("%s: emitter: %s", s->jobs[i].label, d.msg);
		fputs(src, f);
		free(src);
	}
	fclose(f);
	snprintf(cmd, sizeof(cmd),
	         "g++ -std=c++17 -O1 -pthread -ffp-contract=off -fno-fast-math -shared -fPIC -w "
	         "-o %s/k.so %s",
	         dir, path);
	if (system(cmd) != 0)
		fail_msg("g++ could not compile the emitted CUDA source (kept in %s)", path);
	snprintf(path, sizeof(path), "%s/k.so", dir);
	so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(so);
	for (int i = 0; i < s->n; i++) {
		int bad = run_job(so, &s->jobs[i]);

		if (bad)
			print_message("FAIL %s: %d mismatches\n", s->jobs[i].label, bad);
		failures += bad > 0;
	}
	printf("%s: %d launches (%d mma and %d simt stages), %d failed\n", title, s->n, s->n_mma,
	       s->n_simt, failures);
	dlclose(so);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (failures == 0 && system(cmd) != 0)
		print_message("could not remove %s\n", dir);
	return failures;
}

static void
suite_fini(suite *s)
{
	for (int i = 0; i < s->n_lowers; i++) {
		mpcc_lower_fini(&s->lowers[i]);
		mpcc_graph_destroy(s->graphs[i]);
	}
	free(s->jobs);
}

static const mpcc_precision precisions[] = {MPCC_PRECISION_FP16, MPCC_PRECISION_BF16,
                                            MPCC_PRECISION_FP32};
static const char *const precision_names[] = {"fp16", "bf16", "fp32"};

static void
matrix_cases_match_interpreter_in_every_variant(void **state)
{
	suite s;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (int c = MX_N_BIG; c < MX_N_CASES; c++) {
		for (int p = 0; p < 3; p++) {
			char what[96];

			snprintf(what, sizeof(what), "%s %s", mx_cases[c].name, precision_names[p]);
			add_graph(&s, mx_case_graph(&mx_cases[c]), precisions[p], what, true);
		}
	}
	assert_true(s.n_mma > 0 && s.n_simt > 0);
	assert_int_equal(run_suite(&s, "matrix cases"), 0);
	suite_fini(&s);
}

static void
model_matrix_stages_match_interpreter(void **state)
{
	static const char *models[] = {"mlp", "cnn", "lstm", "transformer"};
	suite s;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (int m = 0; m < 4; m++) {
		for (int p = 0; p < 3; p++) {
			char path[256], what[96];
			mpcc_graph *g = NULL;
			mpcc_diag d;

			mpcc_diag_init(&d);
			snprintf(path, sizeof(path), "tests/models/%s/model.onnx", models[m]);
			snprintf(what, sizeof(what), "%s %s", models[m], precision_names[p]);
			if (mpcc_onnx_read_file(path, &g, &d) != MPCC_OK)
				fail_msg("%s: %s", path, d.msg);
			add_graph(&s, g, precisions[p], what, false);
		}
	}
	assert_true(s.n_mma > 0 && s.n_simt > 0);
	assert_int_equal(run_suite(&s, "model matrix stages"), 0);
	suite_fini(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(matrix_cases_match_interpreter_in_every_variant),
	    cmocka_unit_test(model_matrix_stages_match_interpreter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
