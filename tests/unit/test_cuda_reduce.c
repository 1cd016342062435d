/*
 * test_cuda_reduce.c - the CUDA emitter's cooperative reductions (a warp or
 * a block per point, emit_reduce.c) and vectorised elementwise stages
 * (16-byte accesses, emit_vec.c), run on the CPU thread by thread through
 * tests/unit/cuda_emu.c and compared with the kernel IR interpreter; no
 * GPU needed.
 *
 * Covered: hand-built kernels that pin each path and its corners (every
 * reduction operator; NaN at a row's first element, NaNs inside rows, +0
 * and -0 and repeated values, so MAX/MIN and ARG* ties are exercised;
 * integer wrap-around; f16 and bf16 values; reductions over an inner, an
 * outer and several dims; block and warp mode; vectorised f32, f16 and
 * bf16 stages with broadcast operands, stages mixing 1-, 2- and 4-byte
 * elements, a row gather; row kernels in their thread, warp and block
 * forms), small ONNX graphs (Softmax, LayerNorm,
 * ReduceMean/Max, ArgMax/ArgMin, an elementwise chain) in fp32, fp16 and
 * bf16 plans, every reducing, vectorised or row-kernel stage of the model
 * tests, and the fast-path stages of the ONNX conformance models.
 * Each stage runs with the launch the emitter chooses, with a grid of one
 * block (groups loop over points), with 64 threads (the generic fallback)
 * and with every buffer misaligned by its element size (vector accesses
 * must fall back to scalars; the emulator fails any misaligned 16-byte
 * access). The test asserts the path each hand-built stage takes and,
 * through the emulator's counters, that shuffles and 16-byte accesses
 * really ran (or, misaligned and in the fallback, did not).
 *
 * Comparison: bit for bit (NaN matching any NaN) for everything except
 * float SUM/PROD run cooperatively, whose partial sums are reassociated:
 * there |got - want| <= n eps32 (|want| + 1) + one unit in the last place
 * of a 16-bit output. The inputs lie in [-1, 1], and the stored results of
 * these stages are the sum itself scaled down (mean: by 1/n; softmax and
 * LayerNorm: by a sum >= 1 or a deviation), so the reassociation error of
 * an f32 sum, at most about n eps sum|x_i| <= n eps n, reaches the output
 * as at most about n eps times a magnitude of order |want| + 1; a 16-bit
 * store may then round the other way.
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
#include <unistd.h>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/matrix.h"
#include "frontend/onnx.h"
#include "tests/unit/cuda_emu.h"
#include "tests/unit/matrix_cases.h"

#define MAX_ARGS MPCC_EMU_MAX_ARGS
#define MAX_LOWERS 1200
#define DATA "/usr/share/libonnx-testdata/data"

enum path { P_GENERIC, P_WARP, P_BLOCK, P_VEC, P_MATRIX, P_ROW_THREAD, P_ROW_WARP, P_ROW_BLOCK };
static const char *const path_names[] = {"generic", "warp",       "block",    "vector",
                                         "matrix",  "row thread", "row warp", "row block"};
enum { RUN_FULL, RUN_ONE_BLOCK, RUN_FALLBACK, RUN_MISALIGNED };
static const char *const run_names[] = {"", " one block", " fallback", " misaligned"};
enum { DATA_UNIFORM, DATA_TIES, DATA_ZEROS };

typedef struct job {
	kir_kernel k; /* a shallow copy of the source kernel, one stage */
	int path, run, data;
	bool ints; /* fill integer buffers with small values (else zeros: indices) */
	char label[192];
} job;

typedef struct suite {
	job *jobs;
	int n, cap;
	kir_kernel *owned[64];
	int n_owned;
	mpcc_lower *lowers; /* MAX_LOWERS, calloc'd by suite_init */
	mpcc_graph **graphs;
	int n_lowers;
	bool quick; /* graphs: only the fast paths, a full and a fallback run each */
	int n_path[8];
} suite;

static int
path_of(const kir_kernel *k, int stage)
{
	mpcc_cuda_matrix m;

	if (mpcc_cuda_matrix_plan(k, stage, -1, &m))
		return P_MATRIX;
	switch (mpcc_cuda_row_mode(k, stage)) {
	case MPCC_CUDA_RED_GENERIC:
		return P_ROW_THREAD;
	case MPCC_CUDA_RED_WARP:
		return P_ROW_WARP;
	case MPCC_CUDA_RED_BLOCK:
		return P_ROW_BLOCK;
	default:
		break;
	}
	switch (mpcc_cuda_reduce_mode(k, &k->stages[stage])) {
	case MPCC_CUDA_RED_WARP:
		return P_WARP;
	case MPCC_CUDA_RED_BLOCK:
		return P_BLOCK;
	default:
		return mpcc_cuda_vec_width(k, &k->stages[stage]) > 1 ? P_VEC : P_GENERIC;
	}
}

static void
add_job(suite *s, const kir_kernel *k, int stage, int run, int data, bool ints, const char *what)
{
	job *j;

	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->jobs = realloc(s->jobs, sizeof(job) * (size_t)s->cap);
		assert_non_null(s->jobs);
	}
	j = &s->jobs[s->n];
	j->k = *k;
	j->k.stages = &k->stages[stage]; /* the stage, or the row kernel it starts */
	j->k.n_stages = mpcc_cuda_stage_span(k, stage);
	j->k.cover = NULL;
	j->k.n_cover = 0;
	snprintf(j->k.name, sizeof(j->k.name), "j%d", s->n);
	j->path = path_of(&j->k, 0);
	j->run = run;
	j->data = data;
	j->ints = ints;
	snprintf(j->label, sizeof(j->label), "%s %s stage %d (%s%s%s)", what, k->name, stage,
	         path_names[j->path], run_names[run],
	         data == DATA_TIES    ? ", ties and NaNs"
	         : data == DATA_ZEROS ? ", signed zeros"
	                              : "");
	s->n++;
}

/* Every run of one stage that is not a matrix product. */
static void
add_stage_runs(suite *s, const kir_kernel *k, int stage, bool ints, const char *what)
{
	int p = path_of(k, stage);

	if (p == P_MATRIX || (s->quick && p == P_GENERIC))
		return;
	s->n_path[p]++;
	if (s->quick) {
		add_job(s, k, stage, RUN_FULL, DATA_TIES, ints, what);
		add_job(s, k, stage, RUN_FALLBACK, DATA_TIES, ints, what);
		return;
	}
	add_job(s, k, stage, RUN_FULL, DATA_UNIFORM, ints, what);
	if (p == P_GENERIC && !ints)
		return; /* the generic body of a graph: test_cuda_matrix and test_cuda_host cover it
		         */
	if (!ints && (p == P_ROW_THREAD || p == P_ROW_WARP || p == P_ROW_BLOCK)) {
		/* a graph's row kernel (the LSTM has dozens, each launching up to 16
		 * emulated blocks of 256 threads): ties on one block, which loops
		 * over every row, and the fallback launch; the pinned row kernels
		 * take every run */
		add_job(s, k, stage, RUN_ONE_BLOCK, DATA_TIES, ints, what);
		add_job(s, k, stage, RUN_FALLBACK, DATA_TIES, ints, what);
		return;
	}
	add_job(s, k, stage, RUN_FULL, DATA_TIES, ints, what);
	add_job(s, k, stage, RUN_ONE_BLOCK, DATA_TIES, ints, what);
	if (p == P_WARP || p == P_BLOCK || p == P_ROW_WARP || p == P_ROW_BLOCK)
		add_job(s, k, stage, RUN_FULL, DATA_ZEROS, ints, what);
	add_job(s, k, stage, RUN_FALLBACK, DATA_TIES, ints, what);
	add_job(s, k, stage, RUN_MISALIGNED, DATA_UNIFORM, ints, what);
}

/* ---------------------------------------------------------------- kernels */

/* y[p] = red over x[p, r] (or x[r, p] with outer) of x, for n_par x n_red. */
static kir_kernel *
row_kernel(suite *s, const char *name, kir_red red, mpcc_dtype xt, mpcc_dtype acc_t, int64_t np,
           int64_t nr, bool outer)
{
	kir_kernel *k = kir_kernel_create(name);
	bool arg = red >= KIR_RED_ARGMAX;
	int x = kir_buf_add(k, xt, KIR_BUF_PARAM, 0, np * nr);
	int y = kir_buf_add(k, arg ? MPCC_DTYPE_I64 : acc_t, KIR_BUF_PARAM, 1, np);
	int32_t idx = outer ? kir_iadd(k, kir_imul(k, kir_var(k, 1), np), kir_var(k, 0))
	                    : kir_iadd(k, kir_imul(k, kir_var(k, 0), nr), kir_var(k, 1));
	int32_t v = kir_load(k, x, idx);
	kir_stage *st;

	if (!arg)
		v = kir_cast(k, acc_t, v);
	st = kir_stage_add(k, 1, &np, 1, &nr, red, arg ? MPCC_DTYPE_UNDEF : acc_t, v);
	kir_stage_store(k, st, y, kir_var(k, 0), kir_acc(k, arg ? MPCC_DTYPE_I64 : acc_t));
	assert_true(kir_kernel_ok(k));
	s->owned[s->n_owned++] = k;
	return k;
}

/* A reduction over two dims: y[p] = sum x[p, a, b] * 0.5, stored twice. */
static kir_kernel *
two_dim_kernel(suite *s)
{
	kir_kernel *k = kir_kernel_create("two_dims");
	int64_t np = 5, nr[2] = {3, 40};
	int x = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 5 * 120);
	int y = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 1, 5);
	int z = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 2, 5);
	int32_t idx = kir_iadd(
	    k, kir_iadd(k, kir_imul(k, kir_var(k, 0), 120), kir_imul(k, kir_var(k, 1), 40)),
	    kir_var(k, 2));
	int32_t v =
	    kir_binary(k, KIR_MUL, kir_load(k, x, idx), kir_const_f(k, MPCC_DTYPE_F32, 0.5));
	kir_stage *st = kir_stage_add(k, 1, &np, 2, nr, KIR_RED_SUM, MPCC_DTYPE_F32, v);
	int32_t a = kir_acc(k, MPCC_DTYPE_F32);

	kir_stage_store(k, st, y, kir_var(k, 0), a);
	kir_stage_store(k, st, z, kir_var(k, 0), kir_cast(k, MPCC_DTYPE_F16, a));
	assert_true(kir_kernel_ok(k));
	s->owned[s->n_owned++] = k;
	return k;
}

/* out[r, c] = f(x[r, c] op w[c] op b[r]) in dtype t (computed in f32 for
 * 16-bit t), over rows x cols. With wmod > 0, w and b are read as fusion
 * writes broadcasts, at flat % wmod and flat / cols (flat = r * cols + c);
 * w then has wmod elements. */
static kir_kernel *
elementwise_kernel(suite *s, const char *name, mpcc_dtype t, int64_t rows, int64_t cols,
                   int64_t wmod)
{
	kir_kernel *k = kir_kernel_create(name);
	int64_t ext[2] = {rows, cols};
	int x = kir_buf_add(k, t, KIR_BUF_PARAM, 0, rows * cols);
	int w = kir_buf_add(k, t, KIR_BUF_PARAM, 1, wmod > 0 ? wmod : cols);
	int b = kir_buf_add(k, t, KIR_BUF_PARAM, 2, rows);
	int y = kir_buf_add(k, t, KIR_BUF_PARAM, 3, rows * cols);
	int z = kir_buf_add(k, t, KIR_BUF_PARAM, 4, rows * cols);
	int32_t i = kir_iadd(k, kir_imul(k, kir_var(k, 0), cols), kir_var(k, 1));
	mpcc_dtype ct = t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 ? MPCC_DTYPE_F32 : t;
	int32_t xv = kir_cast(k, ct, kir_load(k, x, i));
	int32_t wi = wmod > 0 ? kir_binary(k, KIR_REM, i, kir_iconst(k, wmod)) : kir_var(k, 1);
	int32_t bi = wmod > 0 ? kir_binary(k, KIR_DIV, i, kir_iconst(k, cols)) : kir_var(k, 0);
	int32_t wv = kir_cast(k, ct, kir_load(k, w, wi));
	int32_t bv = kir_cast(k, ct, kir_load(k, b, bi));
	int32_t sum = kir_binary(k, KIR_ADD, kir_binary(k, KIR_MUL, xv, wv), bv);
	int32_t mx =
	    kir_binary(k, KIR_MAX, sum, kir_cast(k, ct, kir_const_f(k, MPCC_DTYPE_F32, 0)));
	kir_stage *st = kir_stage_add(k, 2, ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);

	if (ct == MPCC_DTYPE_F32)
		mx = kir_unary(k, KIR_TANH, mx);
	kir_stage_store(k, st, y, i, kir_cast(k, t, mx));
	kir_stage_store(k, st, z, i, kir_cast(k, t, sum));
	assert_true(kir_kernel_ok(k));
	s->owned[s->n_owned++] = k;
	return k;
}

/*
 * Mixed element widths, as a reduced-precision plan has them: x (f32) and
 * h (hw: f16 or bf16) read per point, s (i8) and g (bool) when bytes, a
 * row bias r (f32) read per row; stores y = hw(x * h + r), z = f32(h) - x
 * and, when bytes, m = x > h and q = i8(s + 1). W is 16 / the narrowest
 * size: 8 without the byte buffers, 16 with them.
 */
static kir_kernel *
mixed_kernel(suite *s, const char *name, mpcc_dtype hw, int64_t rows, int64_t cols, bool bytes)
{
	kir_kernel *k = kir_kernel_create(name);
	int64_t ext[2] = {rows, cols}, n = rows * cols;
	int x = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, n);
	int h = kir_buf_add(k, hw, KIR_BUF_PARAM, 1, n);
	int r = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 2, rows);
	int y = kir_buf_add(k, hw, KIR_BUF_PARAM, 3, n);
	int z = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 4, n);
	int32_t i = kir_iadd(k, kir_imul(k, kir_var(k, 0), cols), kir_var(k, 1));
	int32_t xv = kir_load(k, x, i);
	int32_t hv = kir_cast(k, MPCC_DTYPE_F32, kir_load(k, h, i));
	int32_t rv = kir_load(k, r, kir_var(k, 0));
	kir_stage *st = kir_stage_add(k, 2, ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);

	kir_stage_store(k, st, y, i,
	                kir_cast(k, hw, kir_binary(k, KIR_ADD, kir_binary(k, KIR_MUL, xv, hv), rv)));
	kir_stage_store(k, st, z, i, kir_binary(k, KIR_SUB, hv, xv));
	if (bytes) {
		int sb = kir_buf_add(k, MPCC_DTYPE_I8, KIR_BUF_PARAM, 5, n);
		int m = kir_buf_add(k, MPCC_DTYPE_BOOL, KIR_BUF_PARAM, 6, n);
		int q = kir_buf_add(k, MPCC_DTYPE_I8, KIR_BUF_PARAM, 7, n);
		int32_t one = kir_const_i(k, MPCC_DTYPE_I8, 1);

		kir_stage_store(k, st, m, i, kir_binary(k, KIR_GT, xv, hv));
		kir_stage_store(k, st, q, i, kir_binary(k, KIR_ADD, kir_load(k, sb, i), one));
	}
	assert_true(kir_kernel_ok(k));
	s->owned[s->n_owned++] = k;
	return k;
}

/*
 * Two stages over rows of x [rows, cols] (row kernels, emit_row.c):
 * m[p] = red_r x[p, r]; y[p, r] = x[p, r] - m[p], or - m[rows - 1 - p]
 * with `mirrored` (another row's statistic: no row kernel). With `global`
 * the statistic is one value over all of x (no row dims: one row).
 */
static kir_kernel *
row_pair_kernel(suite *s, const char *name, kir_red red, int64_t rows, int64_t cols,
                bool mirrored, bool global)
{
	kir_kernel *k = kir_kernel_create(name);
	int64_t ext[2] = {rows, cols};
	int x = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, rows * cols);
	int m = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 1, global ? 1 : rows);
	int y = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 2, rows * cols);
	/* stage 0's vars: row, then column (a reduction var; both are with global) */
	int32_t i0 = kir_iadd(k, kir_imul(k, kir_var(k, 0), cols), kir_var(k, 1));
	int32_t i1 = kir_iadd(k, kir_imul(k, kir_var(k, 0), cols), kir_var(k, 1));
	int32_t mi = global     ? kir_iconst(k, 0)
	             : mirrored ? kir_iadd(k, kir_imul(k, kir_var(k, 0), -1), kir_iconst(k, rows - 1))
	                        : kir_var(k, 0);
	kir_stage *st;

	if (global)
		st = kir_stage_add(k, 0, NULL, 2, ext, red, MPCC_DTYPE_F32, kir_load(k, x, i0));
	else
		st = kir_stage_add(k, 1, ext, 1, &cols, red, MPCC_DTYPE_F32, kir_load(k, x, i0));
	kir_stage_store(k, st, m, global ? kir_iconst(k, 0) : kir_var(k, 0),
	                kir_acc(k, MPCC_DTYPE_F32));
	st = kir_stage_add(k, 2, ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	kir_stage_store(k, st, y, i1,
	                kir_binary(k, KIR_SUB, kir_load(k, x, i1), kir_load(k, m, mi)));
	assert_true(kir_kernel_ok(k));
	s->owned[s->n_owned++] = k;
	return k;
}

/*
 * A row gather, as an embedding lookup lowers: y[p, c] = f32(table[clamp(
 * idx[p], 0, rows_t - 1) * cols + c]) + x[p, c], table f16, the index an
 * i64 load (an opaque term: the row offset does not move along c).
 */
static kir_kernel *
gather_kernel(suite *s, const char *name, int64_t rows, int64_t cols, int64_t rows_t)
{
	kir_kernel *k = kir_kernel_create(name);
	int64_t ext[2] = {rows, cols};
	int idx = kir_buf_add(k, MPCC_DTYPE_I64, KIR_BUF_PARAM, 0, rows);
	int tab = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 1, rows_t * cols);
	int x = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 2, rows * cols);
	int y = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 3, rows * cols);
	int32_t i = kir_iadd(k, kir_imul(k, kir_var(k, 0), cols), kir_var(k, 1));
	int32_t r = kir_binary(
	    k, KIR_MIN, kir_binary(k, KIR_MAX, kir_load(k, idx, kir_var(k, 0)), kir_iconst(k, 0)),
	    kir_iconst(k, rows_t - 1));
	int32_t t = kir_load(k, tab, kir_iadd(k, kir_imul(k, r, cols), kir_var(k, 1)));
	kir_stage *st = kir_stage_add(k, 2, ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);

	kir_stage_store(k, st, y, i,
	                kir_binary(k, KIR_ADD, kir_cast(k, MPCC_DTYPE_F32, t), kir_load(k, x, i)));
	assert_true(kir_kernel_ok(k));
	s->owned[s->n_owned++] = k;
	return k;
}

/* ---------------------------------------------------------------- graphs */

static int32_t
node(mpcc_graph *g, mpcc_op op, const char *name, int n_in, const int32_t *in, int32_t out)
{
	int32_t n = mpcc_graph_add_node(g, op, name, n_in, in, 1, &out);

	assert_int_not_equal(n, MPCC_NONE);
	g->nodes[n].opset = 17;
	return n;
}

static int32_t
out_value(mpcc_graph *g, const char *name)
{
	int32_t v = mpcc_graph_add_value(g, name);

	assert_int_not_equal(v, MPCC_NONE);
	assert_int_equal(mpcc_graph_add_output(g, v), MPCC_OK);
	return v;
}

/* Softmax, LayerNorm, ReduceMean/Max, ArgMax/ArgMin and an elementwise
 * chain over x [rows, cols]. */
static mpcc_graph *
ops_graph(int64_t rows, int64_t cols)
{
	mpcc_graph *g = NULL;
	int64_t dx[2] = {rows, cols}, dc = cols;
	int32_t x, sc, bi, in[3], n, t;

	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	g->opset = 17;
	x = mx_value(g, "x", 2, dx);
	assert_int_equal(mpcc_graph_add_input(g, x), MPCC_OK);
	sc = mx_weight(g, "scale", 1, &dc, 3);
	bi = mx_weight(g, "bias", 1, &dc, 5);
	mx_int(g, node(g, MPCC_OP_SOFTMAX, "softmax", 1, &x, out_value(g, "softmax")), "axis", -1);
	in[0] = x;
	in[1] = sc;
	in[2] = bi;
	mx_int(g, node(g, MPCC_OP_LAYERNORMALIZATION, "ln", 3, in, out_value(g, "ln")), "axis", -1);
	n = node(g, MPCC_OP_REDUCEMEAN, "mean", 1, &x, out_value(g, "mean"));
	mx_ints(g, n, "axes", 1, 1);
	n = node(g, MPCC_OP_REDUCEMAX, "max", 1, &x, out_value(g, "max"));
	mx_ints(g, n, "axes", 1, 1);
	mx_int(g, n, "keepdims", 0);
	n = node(g, MPCC_OP_ARGMAX, "argmax", 1, &x, out_value(g, "argmax"));
	mx_int(g, n, "axis", 1);
	n = node(g, MPCC_OP_ARGMIN, "argmin", 1, &x, out_value(g, "argmin"));
	mx_int(g, n, "axis", 1);
	mx_int(g, n, "select_last_index", 1);
	t = mpcc_graph_add_value(g, "t");
	in[1] = sc;
	node(g, MPCC_OP_MUL, "mul", 2, in, t);
	in[0] = t;
	in[1] = bi;
	node(g, MPCC_OP_ADD, "add", 2, in, out_value(g, "chain"));
	return g;
}

static void
add_lowered(suite *s, mpcc_graph *g, mpcc_precision p, const char *what)
{
	mpcc_diag d;
	mpcc_lower *lx = &s->lowers[s->n_lowers];

	assert_true(s->n_lowers < MAX_LOWERS);
	mpcc_diag_init(&d);
	if (mx_lower(g, p, lx, &d) != MPCC_OK) {
		if (!s->quick)
			fail_msg("%s: %s", what, d.msg);
		/* a conformance case the CPU path does not compile either (it
		 * needs frozen inputs): the conformance test reports it */
		mpcc_lower_fini(lx);
		mpcc_graph_destroy(g);
		return;
	}
	s->graphs[s->n_lowers++] = g;
	for (int i = 0; i < lx->n_kernels; i++) {
		for (int st = 0; st < lx->kernels[i]->n_stages;
		     st += mpcc_cuda_stage_span(lx->kernels[i], st)) {
			int p = path_of(lx->kernels[i], st);

			if (p != P_GENERIC && p != P_MATRIX && !s->quick)
				printf("  %s %s_s%d: %s\n", what, lx->kernels[i]->name, st,
				       path_names[p]);
			add_stage_runs(s, lx->kernels[i], st, false, what);
		}
	}
}

/* ---------------------------------------------------------------- data */

static uint32_t rng = 4242;

static uint32_t
next(void)
{
	rng = rng * 1664525u + 1013904223u;
	return rng >> 8;
}

static bool
is_float(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F32 || t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 ||
	       t == MPCC_DTYPE_F64;
}

/*
 * Uniform data in [-1, 1); or with ties: values from {-1, -0.5, -0, +0,
 * 0.5, 1} and, in the first half of a buffer, NaN at every 97th element
 * (so a row of 300 starting at 0 has NaN first, the next rows inside, and
 * the later rows none); or only +0 and -0 (MAX/MIN must then keep the
 * zero the sequential fold keeps, ARG* the first or last index). Integers:
 * small values with ties when ints, else
 * zeros (they may be indices).
 */
static void
fill(mpcc_dtype t, void *p, int64_t n, int data, bool ints)
{
	static const float ties[6] = {-1.0f, -0.5f, -0.0f, 0.0f, 0.5f, 1.0f};

	for (int64_t i = 0; i < n; i++) {
		float x = data == DATA_TIES    ? ties[next() % 6]
		          : data == DATA_ZEROS ? ties[2 + next() % 2]
		                               : (float)(next() & 0xffffff) / 8388608.0f - 1.0f;

		if (data == DATA_TIES && i < n / 2 && i % 97 == 0)
			x = NAN;
		switch (t) {
		case MPCC_DTYPE_F32:
			((float *)p)[i] = x;
			break;
		case MPCC_DTYPE_F64:
			((double *)p)[i] = x;
			break;
		case MPCC_DTYPE_F16:
			((uint16_t *)p)[i] = mpcc_emu_f2h(x);
			break;
		case MPCC_DTYPE_BF16:
			((uint16_t *)p)[i] = mpcc_emu_f2bf(x);
			break;
		default: {
			int64_t v = ints ? (int64_t)(next() % 7) - 3 : 0;
			size_t sz = mpcc_dtype_size(t);

			if (t == MPCC_DTYPE_BOOL)
				v = ints ? (int64_t)(next() & 1) : 0;
			memcpy((char *)p + (size_t)i * sz, &v, sz); /* little-endian */
		}
		}
	}
}

/* ---------------------------------------------------------------- running */

typedef struct emu {
	void *so;
	mpcc_emu_launch_fn launch;
	mpcc_emu_count_fn vectors, shuffles;
} emu;

/* Whether the job's stored results may differ from the sequential fold
 * by rounding: a float SUM/PROD folded cooperatively (in a row kernel, the
 * later stages then compute from the reassociated statistic). */
static bool
reassociated(const job *j, unsigned block)
{
	bool coop = j->path == P_WARP || j->path == P_BLOCK || j->path == P_ROW_WARP ||
	            j->path == P_ROW_BLOCK;

	for (int s = 0; coop && block == MPCC_CUDA_BLOCK && s < j->k.n_stages; s++) {
		const kir_stage *st = &j->k.stages[s];

		if ((st->red_op == KIR_RED_SUM || st->red_op == KIR_RED_PROD) &&
		    is_float(st->acc_dtype))
			return true;
	}
	return false;
}

/* n: the longest reduction of the job. */
static double
tolerance(const job *j, mpcc_dtype t, double want)
{
	double n = 1, ulp = t == MPCC_DTYPE_F16 ? 0x1p-10 : t == MPCC_DTYPE_BF16 ? 0x1p-7 : 0;

	for (int s = 0; s < j->k.n_stages; s++) {
		const kir_stage *st = &j->k.stages[s];
		double m = 1;

		for (int r = 0; r < st->n_red; r++)
			m *= (double)st->red_ext[r];
		n = m > n ? m : n;
	}
	return ulp * fabs(want) + n * 0x1p-23 * (fabs(want) + 1.0);
}

/* The largest |got - want| / tolerance met in a suite (reported). */
static double worst_ratio;
static char worst_label[192];

/* Runs job j through the emulator; returns the number of problems. */
static int
run_job(const emu *em, const job *j)
{
	const kir_kernel *k = &j->k;
	const kir_stage *st = &k->stages[0];
	void *ref[MAX_ARGS] = {0}, *got[MAX_ARGS] = {0}, *args[MAX_ARGS] = {0};
	size_t lens[MAX_ARGS];
	mpcc_emu_buf gb[MAX_ARGS];
	unsigned grid, block;
	char name[96];
	mpcc_diag d;
	const char *err;
	long vec, shfl;
	int bad = 0;
	bool tol;
	void *fn;

	mpcc_diag_init(&d);
	assert_true(k->n_bufs <= MAX_ARGS);
	mpcc_cuda_stage_launch(k, 0, &grid, &block);
	if (j->run == RUN_ONE_BLOCK)
		grid = 1;
	if (j->run == RUN_FALLBACK) {
		block = 64;
		grid = 3;
	}
	if (st->serial) {
		grid = 1;
		block = 32; /* the emulator runs whole warps; thread 0 works */
	}
	tol = reassociated(j, block);
	for (int b = 0; b < k->n_bufs; b++) {
		size_t es = mpcc_dtype_size(k->bufs[b].dtype);

		lens[b] = (size_t)k->bufs[b].n_elems * es;
		ref[b] = malloc(lens[b] ? lens[b] : 1);
		assert_non_null(ref[b]);
		got[b] = mpcc_emu_alloc(&gb[b], lens[b], j->run == RUN_MISALIGNED ? es % 16 : 0);
		fill(k->bufs[b].dtype, ref[b], k->bufs[b].n_elems, j->data, j->ints);
		memcpy(got[b], ref[b], lens[b]);
		args[b] = got[b];
	}
	if (kir_interpret(k, ref, &d) != MPCC_OK)
		fail_msg("%s: interpreter: %s", j->label, d.msg);
	assert_true(mpcc_cuda_stage_name(name, sizeof(name), k, 0));
	fn = dlsym(em->so, name);
	assert_non_null(fn);
	em->vectors();
	em->shuffles();
	err = em->launch(fn, grid, block, args, got, lens, k->n_bufs);
	vec = em->vectors();
	shfl = em->shuffles();
	if (err) {
		print_message("%s: %s\n", j->label, err);
		bad++;
	}
	/* the path really ran, or really fell back */
	if (j->path == P_VEC && (j->run == RUN_MISALIGNED ? vec != 0 : vec == 0)) {
		print_message("%s: %ld 16-byte accesses\n", j->label, vec);
		bad++;
	}
	if ((j->path == P_WARP || j->path == P_BLOCK || j->path == P_ROW_WARP ||
	     j->path == P_ROW_BLOCK)
	        ? (j->run == RUN_FALLBACK) != (shfl == 0)
	        : shfl != 0) {
		print_message("%s: %ld shuffles\n", j->label, shfl);
		bad++;
	}
	for (int s = 0; s < j->k.n_stages * KIR_MAX_STORES && !bad; s++) {
		const kir_stage *so = &j->k.stages[s / KIR_MAX_STORES];
		int b;

		if (s % KIR_MAX_STORES >= so->n_store)
			continue;
		b = so->store[s % KIR_MAX_STORES].buf;
		mpcc_dtype t = k->bufs[b].dtype;
		size_t es = mpcc_dtype_size(t);

		for (int64_t i = 0; i < k->bufs[b].n_elems; i++) {
			const char *x = (const char *)got[b] + (size_t)i * es;
			const char *y = (const char *)ref[b] + (size_t)i * es;
			double xv = mpcc_emu_as_double(t, got[b], i), yv = mpcc_emu_as_double(t, ref[b], i);
			bool ok = memcmp(x, y, es) == 0 ||
			          (is_float(t) && isnan(xv) && isnan(yv)) ||
			          (tol && is_float(t) && fabs(xv - yv) <= tolerance(j, t, yv));

			if (tol && is_float(t) && !isnan(xv) && xv != yv) {
				double r = fabs(xv - yv) / tolerance(j, t, yv);
				if (r > worst_ratio)
					snprintf(worst_label, sizeof(worst_label), "%s", j->label);
				worst_ratio = r > worst_ratio ? r : worst_ratio;
			}
			if (!ok && bad++ < 5)
				print_message(
				    "%s (%s): buffer %d element %lld is %.9g, want %.9g\n",
				    j->label, tol ? "tolerance" : "exact", b, (long long)i, xv, yv);
		}
	}
	for (int b = 0; b < k->n_bufs; b++) {
		free(ref[b]);
		mpcc_emu_free(&gb[b]);
	}
	return bad;
}

/* Emits every job into one translation unit, compiles it and runs each. */
static int
run_suite(suite *s, const char *title)
{
	char dir[64];
	int failures = 0;
	FILE *f = mpcc_emu_begin(dir);
	emu em;

	assert_non_null(f);
	for (int i = 0; i < s->n; i++) {
		kir_kernel *kp = &s->jobs[i].k;
		char *src = NULL;
		mpcc_diag d;

		mpcc_diag_init(&d);
		if (mpcc_cuda_emit(&kp, 1, i == 0, &src, &d) != MPCC_OK)
			fail_msg("%s: emitter: %s", s->jobs[i].label, d.msg);
		fputs(src, f);
		free(src);
	}
	em.so = mpcc_emu_finish(f, dir);
	if (!em.so)
		fail_msg("g++ could not compile the emitted CUDA source (kept in %s/k.cpp)", dir);
	*(void **)&em.launch = dlsym(em.so, "mpcc_emu_launch");
	*(void **)&em.vectors = dlsym(em.so, "mpcc_emu_vector_accesses");
	*(void **)&em.shuffles = dlsym(em.so, "mpcc_emu_shuffles");
	assert_true(em.launch && em.vectors && em.shuffles);
	worst_ratio = 0;
	for (int i = 0; i < s->n; i++) {
		int bad = run_job(&em, &s->jobs[i]);

		if (bad)
			print_message("FAIL %s: %d problems\n", s->jobs[i].label, bad);
		failures += bad > 0;
	}
	printf("%s: %d launches of %d warp, %d block, %d vector and %d generic stages and %d "
	       "thread, %d warp and %d block row kernels, %d failed\n",
	       title, s->n, s->n_path[P_WARP], s->n_path[P_BLOCK], s->n_path[P_VEC],
	       s->n_path[P_GENERIC], s->n_path[P_ROW_THREAD], s->n_path[P_ROW_WARP],
	       s->n_path[P_ROW_BLOCK], failures);
	printf("%s: largest reassociation error %.3g of its tolerance (%s)\n", title, worst_ratio,
	       worst_label);
	mpcc_emu_close(em.so, dir, failures != 0);
	return failures;
}

static void
suite_init(suite *s)
{
	memset(s, 0, sizeof(*s));
	s->lowers = calloc(MAX_LOWERS, sizeof(*s->lowers));
	s->graphs = calloc(MAX_LOWERS, sizeof(*s->graphs));
	assert_true(s->lowers && s->graphs);
}

static void
suite_fini(suite *s)
{
	for (int i = 0; i < s->n_owned; i++)
		kir_kernel_destroy(s->owned[i]);
	for (int i = 0; i < s->n_lowers; i++) {
		mpcc_lower_fini(&s->lowers[i]);
		mpcc_graph_destroy(s->graphs[i]);
	}
	free(s->jobs);
	free(s->lowers);
	free(s->graphs);
}

/* ---------------------------------------------------------------- tests */

/* The vector width of stage 0 of the back-th last kernel built. */
static int
owned_width(const suite *s, int back)
{
	const kir_kernel *k = s->owned[s->n_owned - back];

	return mpcc_cuda_vec_width(k, &k->stages[0]);
}

static void
add_pinned(suite *s, kir_kernel *k, int want)
{
	int got = path_of(k, 0);

	if (got != want)
		fail_msg("kernel %s takes the %s path, want %s", k->name, path_names[got],
		         path_names[want]);
	add_stage_runs(s, k, 0, true, "pinned");
}

static void
pinned_kernels_take_their_path_and_match_interpreter(void **state)
{
	static const kir_red reds[] = {KIR_RED_SUM,         KIR_RED_PROD,       KIR_RED_MAX,
	                               KIR_RED_MIN,         KIR_RED_ARGMAX,     KIR_RED_ARGMIN,
	                               KIR_RED_ARGMAX_LAST, KIR_RED_ARGMIN_LAST};
	suite s;

	(void)state;
	suite_init(&s);
	for (size_t r = 0; r < sizeof(reds) / sizeof(reds[0]); r++) {
		char name[32];

		snprintf(name, sizeof(name), "row_f32_%zu", r);
		add_pinned(
		    &s,
		    row_kernel(&s, name, reds[r], MPCC_DTYPE_F32, MPCC_DTYPE_F32, 6, 300, false),
		    P_WARP);
		snprintf(name, sizeof(name), "col_f32_%zu", r);
		add_pinned(
		    &s, row_kernel(&s, name, reds[r], MPCC_DTYPE_F32, MPCC_DTYPE_F32, 5, 300, true),
		    P_WARP);
		snprintf(name, sizeof(name), "long_f32_%zu", r);
		add_pinned(
		    &s,
		    row_kernel(&s, name, reds[r], MPCC_DTYPE_F32, MPCC_DTYPE_F32, 3, 5000, false),
		    P_BLOCK);
		snprintf(name, sizeof(name), "row_i32_%zu", r);
		add_pinned(
		    &s,
		    row_kernel(&s, name, reds[r], MPCC_DTYPE_I32, MPCC_DTYPE_I32, 4, 200, false),
		    P_WARP);
	}
	add_pinned(
	    &s,
	    row_kernel(&s, "max_f16", KIR_RED_MAX, MPCC_DTYPE_F16, MPCC_DTYPE_F16, 6, 300, false),
	    P_WARP);
	add_pinned(&s,
	           row_kernel(&s, "min_bf16", KIR_RED_MIN, MPCC_DTYPE_BF16, MPCC_DTYPE_BF16, 3,
	                      4096, false),
	           P_BLOCK);
	add_pinned(&s,
	           row_kernel(&s, "argmax_f16", KIR_RED_ARGMAX_LAST, MPCC_DTYPE_F16, MPCC_DTYPE_F16,
	                      6, 300, false),
	           P_WARP);
	add_pinned(
	    &s, row_kernel(&s, "max_i8", KIR_RED_MAX, MPCC_DTYPE_I8, MPCC_DTYPE_I8, 4, 100, false),
	    P_WARP);
	add_pinned(
	    &s,
	    row_kernel(&s, "sum_i64", KIR_RED_SUM, MPCC_DTYPE_I64, MPCC_DTYPE_I64, 3, 3000, false),
	    P_BLOCK);
	add_pinned(
	    &s,
	    row_kernel(&s, "sum_f64", KIR_RED_SUM, MPCC_DTYPE_F64, MPCC_DTYPE_F64, 6, 300, false),
	    P_WARP);
	/* too short, and an f16 accumulator: the generic fold */
	add_pinned(
	    &s, row_kernel(&s, "short", KIR_RED_SUM, MPCC_DTYPE_F32, MPCC_DTYPE_F32, 6, 63, false),
	    P_GENERIC);
	add_pinned(
	    &s,
	    row_kernel(&s, "sum_f16", KIR_RED_SUM, MPCC_DTYPE_F16, MPCC_DTYPE_F16, 6, 300, false),
	    P_GENERIC);
	add_pinned(&s, two_dim_kernel(&s), P_WARP);
	add_pinned(&s, elementwise_kernel(&s, "ew_f32", MPCC_DTYPE_F32, 7, 64, 0), P_VEC);
	add_pinned(&s, elementwise_kernel(&s, "ew_f16", MPCC_DTYPE_F16, 5, 48, 0), P_VEC);
	add_pinned(&s, elementwise_kernel(&s, "ew_bf16", MPCC_DTYPE_BF16, 3, 8, 0), P_VEC);
	add_pinned(&s, elementwise_kernel(&s, "ew_flat", MPCC_DTYPE_F32, 6, 40, 40), P_VEC);
	add_pinned(&s, elementwise_kernel(&s, "ew_flat_f16", MPCC_DTYPE_F16, 3, 16, 16), P_VEC);
	add_pinned(&s, mixed_kernel(&s, "mixed_f16", MPCC_DTYPE_F16, 5, 24, false), P_VEC);
	add_pinned(&s, mixed_kernel(&s, "mixed_bf16", MPCC_DTYPE_BF16, 3, 40, false), P_VEC);
	add_pinned(&s, mixed_kernel(&s, "mixed_bytes", MPCC_DTYPE_F16, 4, 48, true), P_VEC);
	assert_int_equal(owned_width(&s, 3), 8);
	assert_int_equal(owned_width(&s, 1), 16);
	/* not vectorisable: an inner extent that is no multiple of W, and a
	 * remainder that wraps inside a row (flat % 20 over rows of 40) */
	add_pinned(&s, elementwise_kernel(&s, "ew_ragged", MPCC_DTYPE_F32, 7, 30, 0), P_GENERIC);
	add_pinned(&s, elementwise_kernel(&s, "ew_wraps", MPCC_DTYPE_F32, 6, 40, 20), P_GENERIC);
	add_pinned(&s, gather_kernel(&s, "gather_rows", 9, 32, 4), P_VEC);
	assert_int_equal(owned_width(&s, 1), 8);
	add_pinned(&s, row_pair_kernel(&s, "row_thread", KIR_RED_MAX, 40, 8, false, false),
	           P_ROW_THREAD);
	add_pinned(&s, row_pair_kernel(&s, "row_warp", KIR_RED_SUM, 12, 100, false, false),
	           P_ROW_WARP);
	add_pinned(&s, row_pair_kernel(&s, "row_global", KIR_RED_SUM, 4, 1024, false, true),
	           P_ROW_BLOCK);
	assert_int_equal(mpcc_cuda_stage_span(s.owned[s.n_owned - 1], 0), 2);
	/* one row of 16384: a block alone would run the elementwise pass */
	add_pinned(&s, row_pair_kernel(&s, "row_huge", KIR_RED_SUM, 8, 2048, false, true),
	           P_BLOCK);
	assert_int_equal(mpcc_cuda_stage_span(s.owned[s.n_owned - 1], 0), 1);
	/* another row's statistic: the stages stay apart */
	add_pinned(&s, row_pair_kernel(&s, "row_mirror", KIR_RED_MAX, 40, 8, true, false),
	           P_GENERIC);
	assert_int_equal(mpcc_cuda_stage_span(s.owned[s.n_owned - 1], 0), 1);
	/* rows of 24 bytes-and-f32 points: a multiple of 8, not of W = 16 */
	add_pinned(&s, mixed_kernel(&s, "mixed_ragged", MPCC_DTYPE_F16, 4, 24, true), P_GENERIC);
	assert_int_equal(run_suite(&s, "pinned kernels"), 0);
	suite_fini(&s);
}

static const mpcc_precision precisions[] = {MPCC_PRECISION_FP16, MPCC_PRECISION_BF16,
                                            MPCC_PRECISION_FP32};
static const char *const precision_names[] = {"fp16", "bf16", "fp32"};

static void
graph_and_model_stages_match_interpreter(void **state)
{
	static const char *models[] = {"mlp", "cnn", "lstm", "transformer"};
	suite s;

	(void)state;
	suite_init(&s);
	for (int p = 0; p < 3; p++) {
		char what[96];

		snprintf(what, sizeof(what), "ops 6x300 %s", precision_names[p]);
		add_lowered(&s, ops_graph(6, 300), precisions[p], what);
		snprintf(what, sizeof(what), "ops 2x4096 %s", precision_names[p]);
		add_lowered(&s, ops_graph(2, 4096), precisions[p], what);
	}
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
			add_lowered(&s, g, precisions[p], what);
		}
	}
	assert_true(s.n_path[P_WARP] > 0 && s.n_path[P_BLOCK] > 0 && s.n_path[P_VEC] > 0 &&
	            s.n_path[P_ROW_WARP] > 0 && s.n_path[P_ROW_BLOCK] > 0);
	assert_int_equal(run_suite(&s, "graphs and models"), 0);
	suite_fini(&s);
}

/*
 * Every row kernel, cooperative reduction and vectorised stage of the ONNX
 * conformance suite's models (the cases tests/conformance_expected.txt
 * lists, in fp32 and bf16 plans), with random data in place of the
 * cases' inputs, against the interpreter: a full launch and the fallback
 * launch each.
 */
static void
conformance_fast_paths_match_interpreter(void **state)
{
	FILE *f = fopen("tests/conformance_expected.txt", "r");
	static const mpcc_precision precs[] = {MPCC_PRECISION_FP32, MPCC_PRECISION_BF16};
	char line[512], path[700];
	int failures = 0;

	(void)state;
	assert_non_null(f);
	if (access(DATA, R_OK) != 0)
		fail_msg("%s missing: run 'make deps' (libonnx-testdata)", DATA);
	for (int pi = 0; pi < 2; pi++) {
		suite s;
		char title[64];

		suite_init(&s);
		s.quick = true;
		rewind(f);
		while (fgets(line, sizeof(line), f)) {
			mpcc_graph *g = NULL;
			mpcc_diag d;

			line[strcspn(line, "\r\n")] = 0;
			if (!line[0] || line[0] == '#')
				continue;
			snprintf(path, sizeof(path), "%s/%s/model.onnx", DATA, line);
			mpcc_diag_init(&d);
			if (mpcc_onnx_read_file(path, &g, &d) != MPCC_OK)
				continue; /* the conformance test reports unreadable models */
			add_lowered(&s, g, precs[pi], line);
		}
		snprintf(title, sizeof(title), "conformance %s", pi ? "bf16" : "fp32");
		assert_true(s.n_path[P_ROW_WARP] > 0 && s.n_path[P_VEC] > 0);
		failures += run_suite(&s, title);
		suite_fini(&s);
	}
	fclose(f);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(pinned_kernels_take_their_path_and_match_interpreter),
	    cmocka_unit_test(graph_and_model_stages_match_interpreter),
	    cmocka_unit_test(conformance_fast_paths_match_interpreter),
	};

	(void)mx_case_graph; /* the header's matrix graphs are test_cuda_matrix's */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
