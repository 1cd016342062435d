/*
 * test_cuda_matrix.c - the CUDA emitter's tiled matrix kernels, run on the
 * CPU thread by thread and compared with the kernel IR interpreter; no GPU
 * needed.
 *
 * The printed CUDA C of each matrix stage is compiled as host C++ with g++
 * behind the emulating shim of tests/unit/cuda_emu.c (a pthread per GPU
 * thread; ldmatrix, mma.sync and cp.async emulated from the PTX ISA);
 * buffers end at a guard page, so a plain load past the end crashes the
 * test.
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

#include "codegen/cuda/emit.h"
#include "codegen/cuda/matrix.h"
#include "frontend/onnx.h"
#include "tests/unit/cuda_emu.h"
#include "tests/unit/matrix_cases.h"

#define MAX_ARGS MPCC_EMU_MAX_ARGS

typedef mpcc_emu_launch_fn launch_fn;

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

typedef mpcc_emu_buf gbuf;
#define galloc mpcc_emu_alloc
#define gfree mpcc_emu_free

static uint32_t rng = 12345;

static float
uniform(void)
{
	rng = rng * 1664525u + 1013904223u;
	return (float)(rng >> 8) / 8388608.0f - 1.0f;
}

static void
fill(mpcc_dtype t, void *p, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		float x = uniform();

		if (t == MPCC_DTYPE_F32)
			((float *)p)[i] = x;
		else if (t == MPCC_DTYPE_F16)
			((uint16_t *)p)[i] = mpcc_emu_f2h(x);
		else if (t == MPCC_DTYPE_BF16)
			((uint16_t *)p)[i] = mpcc_emu_f2bf(x);
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
			double x = mpcc_emu_as_double(t, got[b], i), y = mpcc_emu_as_double(t, ref[b], i);
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
	char dir[64];
	int failures = 0;
	FILE *f = mpcc_emu_begin(dir);
	void *so;

	assert_non_null(f);
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
	so = mpcc_emu_finish(f, dir);
	if (!so)
		fail_msg("g++ could not compile the emitted CUDA source (kept in %s/k.cpp)", dir);
	for (int i = 0; i < s->n; i++) {
		int bad = run_job(so, &s->jobs[i]);

		if (bad)
			print_message("FAIL %s: %d mismatches\n", s->jobs[i].label, bad);
		failures += bad > 0;
	}
	printf("%s: %d launches (%d mma and %d simt stages), %d failed\n", title, s->n, s->n_mma,
	       s->n_simt, failures);
	mpcc_emu_close(so, dir, failures != 0);
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
