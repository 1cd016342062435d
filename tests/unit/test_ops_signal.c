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
#include <string.h>

#include "ir/ir.h"
#include "testkit.h"

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
	mpcc_tk *f = *state;
	const mpcc_op ops[3] = {MPCC_OP_HANNWINDOW, MPCC_OP_HAMMINGWINDOW, MPCC_OP_BLACKMANWINDOW};
	int32_t size = mpcc_tk_const_int(f, "size", 7);
	int32_t y[3][2];
	for (int o = 0; o < 3; o++)
		for (int periodic = 0; periodic < 2; periodic++) {
			int32_t n =
			    mpcc_tk_node_opset(f, ops[o], 17, NULL, 1, &size, 1, &y[o][periodic]);
			if (!periodic)
				mpcc_tk_attr_int(f, n, "periodic", 0);
		}
	mpcc_tk_run_ok(f);
	for (int o = 0; o < 3; o++)
		for (int periodic = 0; periodic < 2; periodic++) {
			double want[7];
			for (int i = 0; i < 7; i++)
				want[i] = window_ref(ops[o], i, periodic ? 7 : 6);
			mpcc_tk_assert_near_f64(
			    mpcc_tk_result(f, y[o][periodic], MPCC_DTYPE_F32, 1, (int64_t[]){7}),
			    want, 7, 1e-7);
		}
}

static void
window_output_datatype_picks_the_dtype(void **state)
{
	mpcc_tk *f = *state;
	int32_t size = mpcc_tk_const_int(f, "size", 4), y64, yi;
	int32_t n64 = mpcc_tk_node_opset(f, MPCC_OP_HANNWINDOW, 17, NULL, 1, &size, 1, &y64);
	mpcc_tk_attr_int(f, n64, "output_datatype", 11);
	int32_t ni = mpcc_tk_node_opset(f, MPCC_OP_HANNWINDOW, 17, NULL, 1, &size, 1, &yi);
	mpcc_tk_attr_int(f, ni, "output_datatype", 7);
	mpcc_tk_run_ok(f);
	const double *w = mpcc_tk_result(f, y64, MPCC_DTYPE_F64, 1, (int64_t[]){4});
	const double want[4] = {0, 0.5, 1, 0.5};
	for (int i = 0; i < 4; i++)
		assert_true(fabs(w[i] - want[i]) < 1e-15);
	/* integers truncate: only the peak reaches 1 */
	const int64_t *wi = mpcc_tk_result(f, yi, MPCC_DTYPE_I64, 1, (int64_t[]){4});
	assert_int_equal(wi[0] + wi[1] + wi[3], 0);
	assert_int_equal(wi[2], 1);
}

static void
window_size_must_be_known_at_compile_time(void **state)
{
	mpcc_tk *f = *state;
	int32_t size = mpcc_tk_input(f, "size", MPCC_DTYPE_I64, 0, NULL), y;
	mpcc_tk_node_opset(f, MPCC_OP_BLACKMANWINDOW, 17, NULL, 1, &size, 1, &y);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_UNSUPPORTED);
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
	mpcc_tk *f = *state;
	float xs[2 * 7 * 3];
	fill(xs, 42, 1);
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 4, (int64_t[]){2, 7, 3, 1}, xs), y;
	mpcc_tk_node_opset(f, MPCC_OP_DFT, 17, NULL, 1, &x, 1, &y);
	mpcc_tk_run_ok(f);
	const float *got = mpcc_tk_result(f, y, MPCC_DTYPE_F32, 4, (int64_t[]){2, 7, 3, 2});
	for (int b = 0; b < 2; b++)
		for (int c = 0; c < 3; c++) {
			double complex in[7], out[7];
			for (int n = 0; n < 7; n++)
				in[n] = xs[(b * 7 + n) * 3 + c];
			naive_dft(in, 7, 7, false, out);
			for (int k = 0; k < 7; k++) {
				int o = ((b * 7 + k) * 3 + c) * 2;
				mpcc_tk_assert_near_f64(
				    &got[o], (double[]){creal(out[k]), cimag(out[k])}, 2, 1e-5);
			}
		}
}

static void
inverse_dft_of_complex_input_matches_the_naive_sum(void **state)
{
	mpcc_tk *f = *state;
	float xs[3 * 6 * 2];
	fill(xs, 36, 2);
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 3, (int64_t[]){3, 6, 2}, xs), y;
	int32_t n = mpcc_tk_node_opset(f, MPCC_OP_DFT, 17, NULL, 1, &x, 1, &y);
	mpcc_tk_attr_int(f, n, "inverse", 1);
	mpcc_tk_attr_int(f, n, "axis", -2);
	mpcc_tk_run_ok(f);
	const float *got = mpcc_tk_result(f, y, MPCC_DTYPE_F32, 3, (int64_t[]){3, 6, 2});
	for (int b = 0; b < 3; b++) {
		double complex in[6], out[6];
		for (int i = 0; i < 6; i++)
			in[i] = xs[(b * 6 + i) * 2] + I * xs[(b * 6 + i) * 2 + 1];
		naive_dft(in, 6, 6, true, out);
		for (int k = 0; k < 6; k++)
			mpcc_tk_assert_near_f64(&got[(b * 6 + k) * 2],
			                        (double[]){creal(out[k]), cimag(out[k])}, 2, 1e-6);
	}
}

/* dft_length 8 zero-pads a 5-sample signal, 3 cuts it; onesided keeps
 * 8/2 + 1 = 5 and 3/2 + 1 = 2 bins. */
static void
dft_length_pads_or_truncates_and_onesided_keeps_half(void **state)
{
	mpcc_tk *f = *state;
	const float xs[5] = {1, -2, 0.5f, 3, -1};
	int32_t in[2] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, (int64_t[]){5, 1}, xs),
	                 mpcc_tk_const_int(f, "len8", 8)};
	int32_t in3[2] = {in[0], mpcc_tk_const_int(f, "len3", 3)};
	int32_t y8, y3;
	int32_t n8 = mpcc_tk_node_opset(f, MPCC_OP_DFT, 17, NULL, 2, in, 1, &y8);
	mpcc_tk_attr_int(f, n8, "axis", 0);
	mpcc_tk_attr_int(f, n8, "onesided", 1);
	int32_t n3 = mpcc_tk_node_opset(f, MPCC_OP_DFT, 17, NULL, 2, in3, 1, &y3);
	mpcc_tk_attr_int(f, n3, "axis", 0);
	mpcc_tk_attr_int(f, n3, "onesided", 1);
	mpcc_tk_run_ok(f);
	double complex x[5], out[8];
	for (int i = 0; i < 5; i++)
		x[i] = xs[i];
	naive_dft(x, 5, 8, false, out);
	const float *g8 = mpcc_tk_result(f, y8, MPCC_DTYPE_F32, 2, (int64_t[]){5, 2});
	for (int k = 0; k < 5; k++)
		mpcc_tk_assert_near_f64(&g8[k * 2], (double[]){creal(out[k]), cimag(out[k])}, 2,
		                        1e-5);
	naive_dft(x, 5, 3, false, out);
	const float *g3 = mpcc_tk_result(f, y3, MPCC_DTYPE_F32, 2, (int64_t[]){2, 2});
	for (int k = 0; k < 2; k++)
		mpcc_tk_assert_near_f64(&g3[k * 2], (double[]){creal(out[k]), cimag(out[k])}, 2,
		                        1e-5);
}

static void
dft_opset_20_takes_the_axis_as_an_input(void **state)
{
	mpcc_tk *f = *state;
	const double xs[2 * 3] = {1, 2, 3, 4, 5, 6};
	int32_t in[3] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F64, 3, (int64_t[]){2, 3, 1}, xs),
	                 MPCC_NONE, mpcc_tk_const_int(f, "axis", 0)};
	int32_t y;
	mpcc_tk_node_opset(f, MPCC_OP_DFT, 20, NULL, 3, in, 1, &y);
	mpcc_tk_run_ok(f);
	/* along axis 0 (length 2): sum and difference of the two rows */
	const double *got = mpcc_tk_result(f, y, MPCC_DTYPE_F64, 3, (int64_t[]){2, 3, 2});
	const double want[12] = {5, 0, 7, 0, 9, 0, -3, 0, -3, 0, -3, 0};
	for (int i = 0; i < 12; i++)
		assert_true(fabs(got[i] - want[i]) < 1e-12);
}

static void
dft_refuses_the_complex_dim_as_axis(void **state)
{
	mpcc_tk *f = *state;
	const float xs[4] = {0};
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 2}, xs), y;
	int32_t n = mpcc_tk_node_opset(f, MPCC_OP_DFT, 17, NULL, 1, &x, 1, &y);
	mpcc_tk_attr_int(f, n, "axis", -1);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_INVALID);
}

static void
dft_length_must_be_known_at_compile_time(void **state)
{
	mpcc_tk *f = *state;
	int32_t in[2] = {mpcc_tk_input(f, "x", MPCC_DTYPE_F32, 3, (int64_t[]){1, 4, 1}),
	                 mpcc_tk_input(f, "len", MPCC_DTYPE_I64, 0, NULL)};
	int32_t y;
	mpcc_tk_node_opset(f, MPCC_OP_DFT, 17, NULL, 2, in, 1, &y);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "dft_length"));
}

/* ---------------------------------------------------------------- STFT */

static void
stft_frames_the_windowed_signal(void **state)
{
	mpcc_tk *f = *state;
	enum { B = 2, L = 20, N = 8, STEP = 5, FRAMES = 1 + (L - N) / STEP, BINS = N / 2 + 1 };
	float xs[B * L], ws[N];
	fill(xs, B * L, 3);
	fill(ws, N, 4);
	int32_t in[3] = {mpcc_tk_const(f, "signal", MPCC_DTYPE_F32, 3, (int64_t[]){B, L, 1}, xs),
	                 mpcc_tk_const_int(f, "step", STEP),
	                 mpcc_tk_const(f, "window", MPCC_DTYPE_F32, 1, (int64_t[]){N}, ws)};
	int32_t y;
	mpcc_tk_node_opset(f, MPCC_OP_STFT, 17, NULL, 3, in, 1, &y);
	mpcc_tk_run_ok(f);
	const float *got = mpcc_tk_result(f, y, MPCC_DTYPE_F32, 4, (int64_t[]){B, FRAMES, BINS, 2});
	for (int b = 0; b < B; b++)
		for (int fr = 0; fr < FRAMES; fr++) {
			double complex frame[N], out[N];
			for (int n = 0; n < N; n++)
				frame[n] = (double)xs[b * L + fr * STEP + n] * ws[n];
			naive_dft(frame, N, N, false, out);
			for (int k = 0; k < BINS; k++)
				mpcc_tk_assert_near_f64(&got[((b * FRAMES + fr) * BINS + k) * 2],
				                        (double[]){creal(out[k]), cimag(out[k])}, 2,
				                        1e-5);
		}
}

static void
stft_of_a_complex_signal_two_sided_without_window(void **state)
{
	mpcc_tk *f = *state;
	enum { L = 9, N = 4, STEP = 2, FRAMES = 1 + (L - N) / STEP };
	float xs[L * 2];
	fill(xs, L * 2, 5);
	int32_t in[4] = {mpcc_tk_const(f, "signal", MPCC_DTYPE_F32, 3, (int64_t[]){1, L, 2}, xs),
	                 mpcc_tk_const_int(f, "step", STEP), MPCC_NONE,
	                 mpcc_tk_const_int(f, "len", N)};
	int32_t y;
	int32_t stft = mpcc_tk_node_opset(f, MPCC_OP_STFT, 17, NULL, 4, in, 1, &y);
	mpcc_tk_attr_int(f, stft, "onesided", 0);
	mpcc_tk_run_ok(f);
	const float *got = mpcc_tk_result(f, y, MPCC_DTYPE_F32, 4, (int64_t[]){1, FRAMES, N, 2});
	for (int fr = 0; fr < FRAMES; fr++) {
		double complex frame[N], out[N];
		for (int n = 0; n < N; n++)
			frame[n] = xs[(fr * STEP + n) * 2] + I * xs[(fr * STEP + n) * 2 + 1];
		naive_dft(frame, N, N, false, out);
		for (int k = 0; k < N; k++)
			mpcc_tk_assert_near_f64(&got[(fr * N + k) * 2],
			                        (double[]){creal(out[k]), cimag(out[k])}, 2, 1e-5);
	}
}

static void
stft_refuses_a_window_longer_than_frame_length(void **state)
{
	mpcc_tk *f = *state;
	const float xs[16] = {0}, ws[6] = {1, 1, 1, 1, 1, 1};
	int32_t in[4] = {mpcc_tk_const(f, "signal", MPCC_DTYPE_F32, 3, (int64_t[]){1, 16, 1}, xs),
	                 mpcc_tk_const_int(f, "step", 4),
	                 mpcc_tk_const(f, "window", MPCC_DTYPE_F32, 1, (int64_t[]){6}, ws),
	                 mpcc_tk_const_int(f, "len", 4)};
	int32_t y;
	mpcc_tk_node_opset(f, MPCC_OP_STFT, 17, NULL, 4, in, 1, &y);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_INVALID);
}

static void
stft_frame_step_must_be_known_at_compile_time(void **state)
{
	mpcc_tk *f = *state;
	const float xs[16] = {0};
	int32_t in[2] = {mpcc_tk_const(f, "signal", MPCC_DTYPE_F32, 3, (int64_t[]){1, 16, 1}, xs),
	                 mpcc_tk_input(f, "step", MPCC_DTYPE_I64, 0, NULL)};
	int32_t y;
	mpcc_tk_node_opset(f, MPCC_OP_STFT, 17, NULL, 2, in, 1, &y);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_UNSUPPORTED);
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
	mpcc_tk *f = *state;
	const int32_t n_mel = 10, n_dft = 64, rate = 16000;
	const float lo = 300, hi = 7000;
	int32_t in[5] = {mpcc_tk_const(f, "bins", MPCC_DTYPE_I32, 0, NULL, &n_mel),
	                 mpcc_tk_const(f, "dft", MPCC_DTYPE_I32, 0, NULL, &n_dft),
	                 mpcc_tk_const(f, "rate", MPCC_DTYPE_I32, 0, NULL, &rate),
	                 mpcc_tk_const(f, "lo", MPCC_DTYPE_F32, 0, NULL, &lo),
	                 mpcc_tk_const(f, "hi", MPCC_DTYPE_F32, 0, NULL, &hi)};
	int32_t y;
	mpcc_tk_node_opset(f, MPCC_OP_MELWEIGHTMATRIX, 17, NULL, 5, in, 1, &y);
	mpcc_tk_run_ok(f);
	double want[33 * 10];
	mel_ref(n_mel, n_dft, rate, lo, hi, want);
	mpcc_tk_assert_near_f64(mpcc_tk_result(f, y, MPCC_DTYPE_F32, 2, (int64_t[]){33, 10}), want,
	                        33 * 10, 1e-7);
}

static void
melweightmatrix_needs_constant_scalars(void **state)
{
	mpcc_tk *f = *state;
	const int64_t v = 8;
	const float lo = 0, hi = 4000;
	int32_t in[5] = {mpcc_tk_input(f, "bins", MPCC_DTYPE_I64, 0, NULL),
	                 mpcc_tk_const(f, "dft", MPCC_DTYPE_I64, 0, NULL, &v),
	                 mpcc_tk_const(f, "rate", MPCC_DTYPE_I64, 0, NULL, &v),
	                 mpcc_tk_const(f, "lo", MPCC_DTYPE_F32, 0, NULL, &lo),
	                 mpcc_tk_const(f, "hi", MPCC_DTYPE_F32, 0, NULL, &hi)};
	int32_t y;
	mpcc_tk_node_opset(f, MPCC_OP_MELWEIGHTMATRIX, 17, NULL, 5, in, 1, &y);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "num_mel_bins"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    MPCC_TK_TEST(windows_match_their_formulas_periodic_and_symmetric),
	    MPCC_TK_TEST(window_output_datatype_picks_the_dtype),
	    MPCC_TK_TEST(window_size_must_be_known_at_compile_time),
	    MPCC_TK_TEST(dft_of_real_rows_along_axis_1_matches_the_naive_sum),
	    MPCC_TK_TEST(inverse_dft_of_complex_input_matches_the_naive_sum),
	    MPCC_TK_TEST(dft_length_pads_or_truncates_and_onesided_keeps_half),
	    MPCC_TK_TEST(dft_opset_20_takes_the_axis_as_an_input),
	    MPCC_TK_TEST(dft_refuses_the_complex_dim_as_axis),
	    MPCC_TK_TEST(dft_length_must_be_known_at_compile_time),
	    MPCC_TK_TEST(stft_frames_the_windowed_signal),
	    MPCC_TK_TEST(stft_of_a_complex_signal_two_sided_without_window),
	    MPCC_TK_TEST(stft_refuses_a_window_longer_than_frame_length),
	    MPCC_TK_TEST(stft_frame_step_must_be_known_at_compile_time),
	    MPCC_TK_TEST(melweightmatrix_matches_the_reference_loops),
	    MPCC_TK_TEST(melweightmatrix_needs_constant_scalars),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
