/*
 * test_models.c - the model tests: real architectures exported from torch
 * (tests/models/make_models.py) compiled by mpcc and run on the CPU backend,
 * each output within relative L2 error 1e-4 of torch's.
 *
 * Each model folder holds model.onnx, input_<name>.npy per graph input and
 * ref_<name>.npy per output. The test goes through the public API only, as
 * an embedding program would, plus the npy reader.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpcc.h"
#include "runtime/npy.h"

#define MAX_REL_L2 1e-4

static double
as_double(const mpcc_tensor *t, size_t i)
{
	switch (t->dtype) {
	case MPCC_DTYPE_F32:
		return ((const float *)t->data)[i];
	case MPCC_DTYPE_F64:
		return ((const double *)t->data)[i];
	case MPCC_DTYPE_I64:
		return (double)((const int64_t *)t->data)[i];
	default:
		return NAN;
	}
}

/* Compiles tests/models/NAME, runs it on its inputs and returns the worst
 * relative L2 error over its outputs. */
static double
run_model(const char *name, const char *backend)
{
	char path[512], plan_path[512];
	snprintf(path, sizeof(path), "tests/models/%s/model.onnx", name);
	snprintf(plan_path, sizeof(plan_path), "/tmp/mpcc_test_%s_%d.plan", name, (int)getpid());
	mpcc_context *cx;
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_compile_options opts;
	mpcc_compile_options_init(&opts);
	opts.precision = MPCC_PRECISION_FP32; /* exact f32 results */
	mpcc_status st = mpcc_compile_file(cx, path, &opts, plan_path);
	if (st)
		fail_msg("%s: compile: %s", name, mpcc_context_last_error(cx));
	mpcc_plan *plan;
	st = mpcc_plan_load(cx, plan_path, &plan);
	unlink(plan_path);
	if (st)
		fail_msg("%s: load: %s", name, mpcc_context_last_error(cx));
	mpcc_session *s;
	st = mpcc_session_create(cx, plan, backend, &s);
	if (st)
		fail_msg("%s: session: %s", name, mpcc_context_last_error(cx));
	for (int i = 0; i < mpcc_plan_n_inputs(plan); i++) {
		const mpcc_tensor *in = mpcc_plan_input(plan, i);
		snprintf(path, sizeof(path), "tests/models/%s/input_%s.npy", name, in->name);
		mpcc_tensor t;
		mpcc_diag d;
		mpcc_diag_init(&d);
		if (mpcc_npy_read_file(path, &t, &d))
			fail_msg("%s: %s", name, d.msg);
		st = mpcc_session_set_input(s, in->name, t.dtype, t.rank, t.dims, t.data, t.nbytes);
		free(t.data);
		if (st)
			fail_msg("%s: set_input: %s", name, mpcc_context_last_error(cx));
	}
	st = mpcc_session_run(s);
	if (st)
		fail_msg("%s: run: %s", name, mpcc_context_last_error(cx));
	double worst = 0;
	for (int i = 0; i < mpcc_plan_n_outputs(plan); i++) {
		mpcc_tensor out;
		assert_int_equal(mpcc_session_output(s, i, &out), MPCC_OK);
		snprintf(path, sizeof(path), "tests/models/%s/ref_%s.npy", name, out.name);
		mpcc_tensor ref;
		mpcc_diag d;
		mpcc_diag_init(&d);
		if (mpcc_npy_read_file(path, &ref, &d))
			fail_msg("%s: %s", name, d.msg);
		assert_int_equal(out.rank, ref.rank);
		for (int j = 0; j < ref.rank; j++)
			assert_int_equal(out.dims[j], ref.dims[j]);
		size_t n = ref.nbytes / mpcc_dtype_size(ref.dtype);
		double num = 0, den = 0;
		for (size_t j = 0; j < n; j++) {
			double e = as_double(&out, j) - as_double(&ref, j);
			num += e * e;
			den += as_double(&ref, j) * as_double(&ref, j);
		}
		double rel = sqrt(num / (den > 0 ? den : 1));
		print_message("%s/%s on %s: relative L2 error %.3g\n", name, out.name, backend, rel);
		if (!(rel <= worst))
			worst = rel;
		free(ref.data);
	}
	mpcc_session_destroy(s);
	mpcc_plan_destroy(plan);
	mpcc_context_destroy(cx);
	return worst;
}

static void
mlp_matches_torch(void **state)
{
	(void)state;
	assert_true(run_model("mlp", "cpu") <= MAX_REL_L2);
}

static void
cnn_matches_torch(void **state)
{
	(void)state;
	assert_true(run_model("cnn", "cpu") <= MAX_REL_L2);
}

static void
transformer_matches_torch(void **state)
{
	(void)state;
	assert_true(run_model("transformer", "cpu") <= MAX_REL_L2);
}

static void
lstm_matches_torch(void **state)
{
	(void)state;
	assert_true(run_model("lstm", "cpu") <= MAX_REL_L2);
}

static void
mlp_on_interpreter_matches_torch(void **state)
{
	(void)state;
	assert_true(run_model("mlp", "interp") <= MAX_REL_L2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mlp_matches_torch),
		cmocka_unit_test(cnn_matches_torch),
		cmocka_unit_test(transformer_matches_torch),
		cmocka_unit_test(lstm_matches_torch),
		cmocka_unit_test(mlp_on_interpreter_matches_torch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
