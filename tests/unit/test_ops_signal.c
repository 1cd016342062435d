/*
 * test_ops_signal.c - the signal family end to end through the pass
 * pipeline: the window functions, DFT, STFT and MelWeightMatrix.
 *
 * Each test builds a tiny graph whose inputs are constants, runs
 * mpcc_run_pipeline so that constant folding evaluates the node through its
 * lowering and the reference interpreter, and checks the folded outputs
 * against values computed here independently: windows from their textbook
 * formulas, transforms by a naive double-precision DFT written out with
 * complex arithmetic, and the mel matrix by the loops of the ONNX reference
 * algorithm. Shape-deciding inputs that are not constant must be refused as
 * unsupported (the compiler's answer is --freeze).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "passes/passes.h"

typedef struct fixture {
	mpcc_graph *g;
	mpcc_diag d;
} fixture;

static int
setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	if (!f || mpcc_graph_create(&f->g) != MPCC_OK)
		return -1;
	f->g->opset = 17;
	mpcc_diag_init(&f->d);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fixture *f = *state;
	mpcc_graph_destroy(f->g);
	free(f);
	return 0;
}

/* A constant value holding a copy of data. */
static int32_t
constant(mpcc_graph *g, const char *name, mpcc_dtype dt, int rank, const int64_t *dims,
         const void *data)
{
	int32_t v = mpcc_graph_add_value(g, name);
	assert_int_not_equal(v, MPCC_NONE);
	mpcc_value *val = &g->values[v];
	val->dtype = dt;
	val->rank = rank;
	for (int i = 0; i < rank; i++)
		val->dims[i] = dims[i];
	size_t nbytes = (size_t)mpcc_value_numel(val) * mpcc_dtype_size(dt);
	void *copy = malloc(nbytes ? nbytes : 1);
	assert_non_null(copy);
	if (nbytes)
		memcpy(copy, data, nbytes);
	mpcc_value_set_data(val, copy, nbytes);
	return v;
}

static int32_t
scalar_i64(mpcc_graph *g, const char *name, int64_t v)
{
	return constant(g, name, MPCC_DTYPE_I64, 0, NULL, &v);
}

/* A graph input (not constant) of the given dtype and shape. */
static int32_t
input(mpcc_graph *g, const char *name, mpcc_dtype dt, int rank, const int64_t *dims)
{
	int32_t v = mpcc_graph_add_value(g, name);
	assert_int_not_equal(v, MPCC_NONE);
	g->values[v].dtype = dt;
	g->values[v].rank = rank;
	for (int i = 0; i < rank; i++)
		g->values[v].dims[i] = dims[i];
	assert_int_equal(mpcc_graph_add_input(g, v), MPCC_OK);
	return v;
}

/* A node of op over in[] with one new graph output (into *out). */
static int32_t
node(mpcc_graph *g, mpcc_op op, int opset, int n_in, const int32_t *in, int32_t *out)
{
	*out = mpcc_graph_add_value(g, NULL);
	assert_int_not_equal(*out, MPCC_NONE);
	int32_t n = mpcc_graph_add_node(g, op, NULL, n_in, in, 1, out);
	assert_int_not_equal(n, MPCC_NONE);
	g->nodes[n].opset = opset;
	assert_int_equal(mpcc_graph_add_output(g, *out), MPCC_OK);
	return n;
}

static void
attr_int(mpcc_graph *g, int32_t n, const char *name, int64_t v)
{
	mpcc_attr *a = mpcc_node_add_attr(g, n, name, MPCC_ATTR_INT);
	assert_non_null(a);
	a->i = v;
}

static mpcc_status
run(fixture *f)
{
	mpcc_compile_options opts;
	mpcc_compile_options_init(&opts);
	opts.precision = MPCC_PRECISION_FP32; /* exact f32 results */
	mpcc_pass_ctx cx = {.d = &f->d, .opts = &opts};
	return mpcc_run_pipeline(f->g, &cx);
}

static void
run_ok(fixture *f)
{
	if (run(f) != MPCC_OK)
		fail_msg("pipeline failed: %s", f->d.msg);
}

/* The folded data of value v, checked to have the given dtype and shape. */
static const void *
result(const fixture *f, int32_t v, mpcc_dtype dt, int rank, const int64_t *dims)
{
	const mpcc_value *val = &f->g->values[v];
	assert_int_equal(val->dtype, dt);
	assert_int_equal(val->rank, rank);
	for (int i = 0; i < rank; i++)
		assert_int_equal(val->dims[i], dims[i]);
	assert_true(val->flags & MPCC_VALUE_CONST);
	assert_non_null(val->data);
	return val->data;
}

static void
assert_near(const float *got, const double *want, int n, double tol)
{
	for (int i = 0; i < n; i++)
		if (!(fabs((double)got[i] - want[i]) <= tol))
			fail_msg("element %d: got %.9g, want %.9g", i, (double)got[i], want[i]);
}

/* Deterministic test data in [-1, 1). */
static void
fill(float *x, int n, unsigned seed)
{
	uint32_t s = seed * 2654435761u + 1;
	for (int i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		x[i] = (float)(s >> 8) / (float)(1 << 23) - 1.0f;
	}
}

/* ---------------------------------------------------------------- windows */

/* w[n] of a window by its textbook formula, m = size or size - 1. */
static double
window_ref(mpcc_op op, int n, int m)
{
	double x = 2 * M_PI * n / m;
	switch (op) {
	case MPCC_OP_HAMMINGWINDOW:
		return 25.0 / 46.0 - 21.0 / 46.0 * cos(x);
	case MPCC_OP_BLACKMANWINDOW:
		return 0.42 - 0.5 * cos(x) + 0.08 * cos(2 * x);
	default:
		return pow(sin(M_PI * n / m), 2);
	}
}

static void
windows_match_their_formulas_periodic_and_symmetric(void **state)
{
	fixture *f = *state;
	const mpcc_op ops[3] = {MPCC_OP_HANNWINDOW, MPCC_OP_HAMMINGWINDOW, MPCC_OP_BLACKMANWINDOW};
	int32_t size = scalar_i64(f->g, "size", 7);
	int32_t y[3][2];
	for (int o = 0; o < 3; o++)
		for (int periodic = 0; periodic < 2; periodic++) {
			int32_t n = node(f->g, ops[o], 17, 1, &size, &y[o][periodic]);
			if (!periodic)
				attr_int(f->g, n, "periodic", 0);
		}
	run_ok(f);
	for (int o = 0; o < 3; o++)
		for (int periodic = 0; periodic < 2; periodic++) {
			double want[7];
			for (int i = 0; i < 7; i++)
				want[i] = window_ref(ops[o], i, periodic ? 7 : 6);
			assert_near(result(f, y[o][periodic], MPCC_DTYPE_F32, 1, (int64_t[]){7}),
			            want, 7, 1e-7);
		}
}

static void
window_output_datatype_picks_the_dtype(void **state)
{
	fixture *f = *state;
	int32_t size = scalar_i64(f->g, "size", 4), y64, yi;
	attr_int(f->g, node(f->g, MPCC_OP_HANNWINDOW, 17, 1, &size, &y64), "output_datatype", 11);
	attr_int(f->g, node(f->g, MPCC_OP_HANNWINDOW, 17, 1, &size, &yi), "output_datatype", 7);
	run_ok(f);
	const double *w = result(f, y64, MPCC_DTYPE_F64, 1, (int64_t[]){4});
	const double want[4] = {0, 0.5, 1, 0.5};
	for (int i = 0; i < 4; i++)
		assert_true(fabs(w[i] - want[i]) < 1e-15);
	/* integers truncate: only the peak reaches 1 */
	const int64_t *wi = result(f, yi, MPCC_DTYPE_I64, 1, (int64_t[]){4});
	assert_int_equal(wi[0] + wi[1] + wi[3], 0);
	assert_int_equal(wi[2], 1);
}

static void
window_size_must_be_known_at_compile_time(void **state)
{
	fixture *f = *state;
	int32_t size = input(f->g, "size", MPCC_DTYPE_I64, 0, NULL), y;
	node(f->g, MPCC_OP_BLACKMANWINDOW, 17, 1, &size, &y);
	assert_int_equal(run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "--freeze"));
}

/* ---------------------------------------------------------------- DFT */

/*
 * The naive DFT of x (n_in complex samples, zero-padded or cut to len)
 * into out[len]: forward with exp(-2 pi i k n / len), inverse with the
 * opposite sign and a 1/len scale.
 */
static void
naive_dft(const double complex *x, int n_in, int len, bool inverse, double complex *out)
{
	for (int k = 0; k < len; k++) {
		double complex s = 0;
		for (int n = 0; n < len && n < n_in; n++)
			s += x[n] * cexp((inverse ? 2 : -2) * M_PI * I * k * n / len);
		out[k] = inverse ? s / len : s;
	}
}

static void
dft_of_real_rows_along_axis_1_matches_the_naive_sum(void **state)
{
	fixture *f = *state;
	float xs[2 * 7 * 3];
	fill(xs, 42, 1);
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 4, (int64_t[]){2, 7, 3, 1}, xs), y;
	node(f->g, MPCC_OP_DFT, 17, 1, &x, &y);
	run_ok(f);
	const float *got = result(f, y, MPCC_DTYPE_F32, 4, (int64_t[]){2, 7, 3, 2});
	for (int b = 0; b < 2; b++)
		for (int c = 0; c < 3; c++) {
			double complex in[7], out[7];
			for (int n = 0; n < 7; n++)
				in[n] = xs[(b * 7 + n) * 3 + c];
			naive_dft(in, 7, 7, false, out);
			for (int k = 0; k < 7; k++) {
				int o = ((b * 7 + k) * 3 + c) * 2;
				assert_near(&got[o], (double[]){creal(out[k]), cimag(out[k])}, 2,
				            1e-5);
			}
		}
}

static void
inverse_dft_of_complex_input_matches_the_naive_sum(void **state)
{
	fixture *f = *state;
	float xs[3 * 6 * 2];
	fill(xs, 36, 2);
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 3, (int64_t[]){3, 6, 2}, xs), y;
	int32_t n = node(f->g, MPCC_OP_DFT, 17, 1, &x, &y);
	attr_int(f->g, n, "inverse", 1);
	attr_int(f->g, n, "axis", -2);
	run_ok(f);
	const float *got = result(f, y, MPCC_DTYPE_F32, 3, (int64_t[]){3, 6, 2});
	for (int b = 0; b < 3; b++) {
		double complex in[6], out[6];
		for (int i = 0; i < 6; i++)
			in[i] = xs[(b * 6 + i) * 2] + I * xs[(b * 6 + i) * 2 + 1];
		naive_dft(in, 6, 6, true, out);
		for (int k = 0; k < 6; k++)
			assert_near(&got[(b * 6 + k) * 2], (double[]){creal(out[k]), cimag(out[k])},
			            2, 1e-6);
	}
}

/* dft_length 8 zero-pads a 5-sample signal, 3 cuts it; onesided keeps
 * 8/2 + 1 = 5 and 3/2 + 1 = 2 bins. */
static void
dft_length_pads_or_truncates_and_onesided_keeps_half(void **state)
{
	fixture *f = *state;
	const float xs[5] = {1, -2, 0.5f, 3, -1};
	int32_t in[2] = {constant(f->g, "x", MPCC_DTYPE_F32, 2, (int64_t[]){5, 1}, xs),
	                 scalar_i64(f->g, "len8", 8)};
	int32_t in3[2] = {in[0], scalar_i64(f->g, "len3", 3)};
	int32_t y8, y3;
	int32_t n8 = node(f->g, MPCC_OP_DFT, 17, 2, in, &y8);
	attr_int(f->g, n8, "axis", 0);
	attr_int(f->g, n8, "onesided", 1);
	int32_t n3 = node(f->g, MPCC_OP_DFT, 17, 2, in3, &y3);
	attr_int(f->g, n3, "axis", 0);
	attr_int(f->g, n3, "onesided", 1);
	run_ok(f);
	double complex x[5], out[8];
	for (int i = 0; i < 5; i++)
		x[i] = xs[i];
	naive_dft(x, 5, 8, false, out);
	const float *g8 = result(f, y8, MPCC_DTYPE_F32, 2, (int64_t[]){5, 2});
	for (int k = 0; k < 5; k++)
		assert_near(&g8[k * 2], (double[]){creal(out[k]), cimag(out[k])}, 2, 1e-5);
	naive_dft(x, 5, 3, false, out);
	const float *g3 = result(f, y3, MPCC_DTYPE_F32, 2, (int64_t[]){2, 2});
	for (int k = 0; k < 2; k++)
		assert_near(&g3[k * 2], (double[]){creal(out[k]), cimag(out[k])}, 2, 1e-5);
}

static void
dft_opset_20_takes_the_axis_as_an_input(void **state)
{
	fixture *f = *state;
	const double xs[2 * 3] = {1, 2, 3, 4, 5, 6};
	int32_t in[3] = {constant(f->g, "x", MPCC_DTYPE_F64, 3, (int64_t[]){2, 3, 1}, xs),
	                 MPCC_NONE, scalar_i64(f->g, "axis", 0)};
	int32_t y;
	node(f->g, MPCC_OP_DFT, 20, 3, in, &y);
	run_ok(f);
	/* along axis 0 (length 2): sum and difference of the two rows */
	const double *got = result(f, y, MPCC_DTYPE_F64, 3, (int64_t[]){2, 3, 2});
	const double want[12] = {5, 0, 7, 0, 9, 0, -3, 0, -3, 0, -3, 0};
	for (int i = 0; i < 12; i++)
		assert_true(fabs(got[i] - want[i]) < 1e-12);
}

static void
dft_refuses_the_complex_dim_as_axis(void **state)
{
	fixture *f = *state;
	const float xs[4] = {0};
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 2}, xs), y;
	attr_int(f->g, node(f->g, MPCC_OP_DFT, 17, 1, &x, &y), "axis", -1);
	assert_int_equal(run(f), MPCC_ERR_INVALID);
}

static void
dft_length_must_be_known_at_compile_time(void **state)
{
	fixture *f = *state;
	int32_t in[2] = {input(f->g, "x", MPCC_DTYPE_F32, 3, (int64_t[]){1, 4, 1}),
	                 input(f->g, "len", MPCC_DTYPE_I64, 0, NULL)};
	int32_t y;
	node(f->g, MPCC_OP_DFT, 17, 2, in, &y);
	assert_int_equal(run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "dft_length"));
}

/* ---------------------------------------------------------------- STFT */

static void
stft_frames_the_windowed_signal(void **state)
{
	fixture *f = *state;
	enum { B = 2, L = 20, N = 8, STEP = 5, FRAMES = 1 + (L - N) / STEP, BINS = N / 2 + 1 };
	float xs[B * L], ws[N];
	fill(xs, B * L, 3);
	fill(ws, N, 4);
	int32_t in[3] = {constant(f->g, "signal", MPCC_DTYPE_F32, 3, (int64_t[]){B, L, 1}, xs),
	                 scalar_i64(f->g, "step", STEP),
	                 constant(f->g, "window", MPCC_DTYPE_F32, 1, (int64_t[]){N}, ws)};
	int32_t y;
	node(f->g, MPCC_OP_STFT, 17, 3, in, &y);
	run_ok(f);
	const float *got = result(f, y, MPCC_DTYPE_F32, 4, (int64_t[]){B, FRAMES, BINS, 2});
	for (int b = 0; b < B; b++)
		for (int fr = 0; fr < FRAMES; fr++) {
			double complex frame[N], out[N];
			for (int n = 0; n < N; n++)
				frame[n] = (double)xs[b * L + fr * STEP + n] * ws[n];
			naive_dft(frame, N, N, false, out);
			for (int k = 0; k < BINS; k++)
				assert_near(&got[((b * FRAMES + fr) * BINS + k) * 2],
				            (double[]){creal(out[k]), cimag(out[k])}, 2, 1e-5);
		}
}

static void
stft_of_a_complex_signal_two_sided_without_window(void **state)
{
	fixture *f = *state;
	enum { L = 9, N = 4, STEP = 2, FRAMES = 1 + (L - N) / STEP };
	float xs[L * 2];
	fill(xs, L * 2, 5);
	int32_t in[4] = {constant(f->g, "signal", MPCC_DTYPE_F32, 3, (int64_t[]){1, L, 2}, xs),
	                 scalar_i64(f->g, "step", STEP), MPCC_NONE, scalar_i64(f->g, "len", N)};
	int32_t y;
	attr_int(f->g, node(f->g, MPCC_OP_STFT, 17, 4, in, &y), "onesided", 0);
	run_ok(f);
	const float *got = result(f, y, MPCC_DTYPE_F32, 4, (int64_t[]){1, FRAMES, N, 2});
	for (int fr = 0; fr < FRAMES; fr++) {
		double complex frame[N], out[N];
		for (int n = 0; n < N; n++)
			frame[n] = xs[(fr * STEP + n) * 2] + I * xs[(fr * STEP + n) * 2 + 1];
		naive_dft(frame, N, N, false, out);
		for (int k = 0; k < N; k++)
			assert_near(&got[(fr * N + k) * 2],
			            (double[]){creal(out[k]), cimag(out[k])}, 2, 1e-5);
	}
}

static void
stft_refuses_a_window_longer_than_frame_length(void **state)
{
	fixture *f = *state;
	const float xs[16] = {0}, ws[6] = {1, 1, 1, 1, 1, 1};
	int32_t in[4] = {constant(f->g, "signal", MPCC_DTYPE_F32, 3, (int64_t[]){1, 16, 1}, xs),
	                 scalar_i64(f->g, "step", 4),
	                 constant(f->g, "window", MPCC_DTYPE_F32, 1, (int64_t[]){6}, ws),
	                 scalar_i64(f->g, "len", 4)};
	int32_t y;
	node(f->g, MPCC_OP_STFT, 17, 4, in, &y);
	assert_int_equal(run(f), MPCC_ERR_INVALID);
}

static void
stft_frame_step_must_be_known_at_compile_time(void **state)
{
	fixture *f = *state;
	const float xs[16] = {0};
	int32_t in[2] = {constant(f->g, "signal", MPCC_DTYPE_F32, 3, (int64_t[]){1, 16, 1}, xs),
	                 input(f->g, "step", MPCC_DTYPE_I64, 0, NULL)};
	int32_t y;
	node(f->g, MPCC_OP_STFT, 17, 2, in, &y);
	assert_int_equal(run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "frame_step"));
}

/* ---------------------------------------------------------------- MelWeightMatrix */

/* The ONNX reference algorithm, loop for loop, into out[n_spec][n_mel]. */
static void
mel_ref(int n_mel, int n_dft, int rate, double lo, double hi, double *out)
{
	int n_spec = n_dft / 2 + 1, edge[64];
	double lo_mel = 2595 * log10(1 + lo / 700), hi_mel = 2595 * log10(1 + hi / 700);
	double step = (hi_mel - lo_mel) / (n_mel + 2);
	for (int m = 0; m < n_mel + 2; m++) {
		double hz = 700 * (pow(10, (m * step + lo_mel) / 2595) - 1);
		edge[m] = (int)floor((n_dft + 1) * hz / rate);
	}
	memset(out, 0, sizeof(double) * (size_t)(n_spec * n_mel));
	for (int i = 0; i < n_mel; i++) {
		int l = edge[i], c = edge[i + 1], h = edge[i + 2];
		if (c == l)
			out[c * n_mel + i] = 1;
		else
			for (int j = l; j <= c; j++)
				out[j * n_mel + i] = (double)(j - l) / (c - l);
		for (int j = c; j < h; j++)
			out[j * n_mel + i] = (double)(h - j) / (h - c);
	}
}

static void
melweightmatrix_matches_the_reference_loops(void **state)
{
	fixture *f = *state;
	const int32_t n_mel = 10, n_dft = 64, rate = 16000;
	const float lo = 300, hi = 7000;
	int32_t in[5] = {constant(f->g, "bins", MPCC_DTYPE_I32, 0, NULL, &n_mel),
	                 constant(f->g, "dft", MPCC_DTYPE_I32, 0, NULL, &n_dft),
	                 constant(f->g, "rate", MPCC_DTYPE_I32, 0, NULL, &rate),
	                 constant(f->g, "lo", MPCC_DTYPE_F32, 0, NULL, &lo),
	                 constant(f->g, "hi", MPCC_DTYPE_F32, 0, NULL, &hi)};
	int32_t y;
	node(f->g, MPCC_OP_MELWEIGHTMATRIX, 17, 5, in, &y);
	run_ok(f);
	double want[33 * 10];
	mel_ref(n_mel, n_dft, rate, lo, hi, want);
	assert_near(result(f, y, MPCC_DTYPE_F32, 2, (int64_t[]){33, 10}), want, 33 * 10, 1e-7);
}

static void
melweightmatrix_needs_constant_scalars(void **state)
{
	fixture *f = *state;
	const int64_t v = 8;
	const float lo = 0, hi = 4000;
	int32_t in[5] = {input(f->g, "bins", MPCC_DTYPE_I64, 0, NULL),
	                 constant(f->g, "dft", MPCC_DTYPE_I64, 0, NULL, &v),
	                 constant(f->g, "rate", MPCC_DTYPE_I64, 0, NULL, &v),
	                 constant(f->g, "lo", MPCC_DTYPE_F32, 0, NULL, &lo),
	                 constant(f->g, "hi", MPCC_DTYPE_F32, 0, NULL, &hi)};
	int32_t y;
	node(f->g, MPCC_OP_MELWEIGHTMATRIX, 17, 5, in, &y);
	assert_int_equal(run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "num_mel_bins"));
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(windows_match_their_formulas_periodic_and_symmetric),
	    T(window_output_datatype_picks_the_dtype),
	    T(window_size_must_be_known_at_compile_time),
	    T(dft_of_real_rows_along_axis_1_matches_the_naive_sum),
	    T(inverse_dft_of_complex_input_matches_the_naive_sum),
	    T(dft_length_pads_or_truncates_and_onesided_keeps_half),
	    T(dft_opset_20_takes_the_axis_as_an_input),
	    T(dft_refuses_the_complex_dim_as_axis),
	    T(dft_length_must_be_known_at_compile_time),
	    T(stft_frames_the_windowed_signal),
	    T(stft_of_a_complex_signal_two_sided_without_window),
	    T(stft_refuses_a_window_longer_than_frame_length),
	    T(stft_frame_step_must_be_known_at_compile_time),
	    T(melweightmatrix_matches_the_reference_loops),
	    T(melweightmatrix_needs_constant_scalars),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
