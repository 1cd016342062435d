/*
 * test_ops_reduce.c - the reduction family end to end through the pass
 * pipeline: shape functions, lowering and the reference interpreter.
 *
 * Each test builds a tiny graph whose inputs are constants, runs
 * mpcc_run_pipeline so that constant folding evaluates the node through its
 * lowering, and checks the folded outputs against hand-computed values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

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

/* A value of the given dtype and shape, without data. */
static int32_t
value(mpcc_graph *g, const char *name, mpcc_dtype dt, int rank, const int64_t *dims)
{
	int32_t v = mpcc_graph_add_value(g, name);
	assert_int_not_equal(v, MPCC_NONE);
	mpcc_value *val = &g->values[v];
	val->dtype = dt;
	val->rank = rank;
	for (int i = 0; i < rank; i++)
		val->dims[i] = dims[i];
	return v;
}

/* A constant value holding a copy of data. */
static int32_t
constant(mpcc_graph *g, const char *name, mpcc_dtype dt, int rank, const int64_t *dims,
         const void *data)
{
	int32_t v = value(g, name, dt, rank, dims);
	mpcc_value *val = &g->values[v];
	size_t nbytes = (size_t)mpcc_value_numel(val) * mpcc_dtype_size(dt);
	void *copy = malloc(nbytes ? nbytes : 1);
	assert_non_null(copy);
	if (nbytes)
		memcpy(copy, data, nbytes);
	mpcc_value_set_data(val, copy, nbytes);
	return v;
}

/* A node of op over in[] with n_out new graph outputs (into out[]). */
static int32_t
node(mpcc_graph *g, mpcc_op op, const char *name, int n_in, const int32_t *in, int n_out,
     int32_t *out)
{
	for (int i = 0; i < n_out; i++) {
		out[i] = mpcc_graph_add_value(g, NULL);
		assert_int_not_equal(out[i], MPCC_NONE);
	}
	int32_t n = mpcc_graph_add_node(g, op, name, n_in, in, n_out, out);
	assert_int_not_equal(n, MPCC_NONE);
	for (int i = 0; i < n_out; i++)
		assert_int_equal(mpcc_graph_add_output(g, out[i]), MPCC_OK);
	return n;
}

static void
attr_int(mpcc_graph *g, int32_t n, const char *name, int64_t v)
{
	mpcc_attr *a = mpcc_node_add_attr(g, n, name, MPCC_ATTR_INT);
	assert_non_null(a);
	a->i = v;
}

static void
attr_ints(mpcc_graph *g, int32_t n, const char *name, int count, const int64_t *v)
{
	mpcc_attr *a = mpcc_node_add_attr(g, n, name, MPCC_ATTR_INTS);
	assert_non_null(a);
	a->ints = mpcc_arena_alloc(&g->arena, sizeof(int64_t) * (size_t)count);
	assert_non_null(a->ints);
	memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
	a->n = count;
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
assert_floats_near(const float *got, const float *want, int n, float tol)
{
	for (int i = 0; i < n; i++)
		if (fabsf(got[i] - want[i]) > tol)
			fail_msg("element %d: got %.7g, want %.7g", i, got[i], want[i]);
}

static const float x23[] = {1, 2, 3, 4, 5, 6};

static void
reduce_sum_keeps_or_drops_the_reduced_axis(void **state)
{
	fixture *f = *state;
	const int64_t axes[] = {1};
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, x23);
	int32_t a = constant(f->g, "axes", MPCC_DTYPE_I64, 1, (int64_t[]){1}, axes);
	int32_t y_keep, y_drop;
	node(f->g, MPCC_OP_REDUCESUM, "sum_keep", 2, (int32_t[]){x, a}, 1, &y_keep);
	int32_t n = node(f->g, MPCC_OP_REDUCESUM, "sum_drop", 2, (int32_t[]){x, a}, 1, &y_drop);
	attr_int(f->g, n, "keepdims", 0);
	run_ok(f);
	const float *k = result(f, y_keep, MPCC_DTYPE_F32, 2, (int64_t[]){2, 1});
	const float *d = result(f, y_drop, MPCC_DTYPE_F32, 1, (int64_t[]){2});
	assert_floats_near(k, (float[]){6, 15}, 2, 0);
	assert_floats_near(d, (float[]){6, 15}, 2, 0);
}

static void
reduce_mean_over_two_axes(void **state)
{
	fixture *f = *state;
	const float xs[] = {1, 2, 3, 4, 5, 6, 7, 8};
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 3, (int64_t[]){2, 2, 2}, xs);
	int32_t y;
	int32_t n = node(f->g, MPCC_OP_REDUCEMEAN, "mean", 1, &x, 1, &y);
	attr_ints(f->g, n, "axes", 2, (int64_t[]){0, -1});
	run_ok(f);
	const float *r = result(f, y, MPCC_DTYPE_F32, 3, (int64_t[]){1, 2, 1});
	assert_floats_near(r, (float[]){3.5f, 5.5f}, 2, 1e-6f);
}

static void
argmax_select_last_index_picks_the_last_tie(void **state)
{
	fixture *f = *state;
	const float xs[] = {1, 3, 3, 5, 5, 2};
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, xs);
	int32_t y_first, y_last;
	int32_t n1 = node(f->g, MPCC_OP_ARGMAX, "first", 1, &x, 1, &y_first);
	attr_int(f->g, n1, "axis", 1);
	attr_int(f->g, n1, "keepdims", 0);
	int32_t n2 = node(f->g, MPCC_OP_ARGMAX, "last", 1, &x, 1, &y_last);
	attr_int(f->g, n2, "axis", 1);
	attr_int(f->g, n2, "keepdims", 0);
	attr_int(f->g, n2, "select_last_index", 1);
	run_ok(f);
	const int64_t *a = result(f, y_first, MPCC_DTYPE_I64, 1, (int64_t[]){2});
	const int64_t *b = result(f, y_last, MPCC_DTYPE_I64, 1, (int64_t[]){2});
	assert_int_equal(a[0], 1);
	assert_int_equal(a[1], 0);
	assert_int_equal(b[0], 2);
	assert_int_equal(b[1], 1);
}

static void
softmax_rows_sum_to_one(void **state)
{
	fixture *f = *state;
	const float xs[] = {1, 2, 3, 0, 0, 0};
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, xs);
	int32_t y;
	node(f->g, MPCC_OP_SOFTMAX, "softmax", 1, &x, 1, &y);
	run_ok(f);
	const float *r = result(f, y, MPCC_DTYPE_F32, 2, (int64_t[]){2, 3});
	const float want[] = {0.09003057f, 0.24472847f, 0.66524096f, 1 / 3.0f, 1 / 3.0f, 1 / 3.0f};
	assert_floats_near(r, want, 6, 1e-6f);
	for (int i = 0; i < 2; i++)
		assert_true(fabsf(r[3 * i] + r[3 * i + 1] + r[3 * i + 2] - 1) < 1e-6f);
}

static void
layer_normalization_matches_hand_computed(void **state)
{
	fixture *f = *state;
	const float xs[] = {1, 3, 2, 6};
	const float sc[] = {1, 2}, bs[] = {0, 1};
	int32_t in[3] = {
	    constant(f->g, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 2}, xs),
	    constant(f->g, "scale", MPCC_DTYPE_F32, 1, (int64_t[]){2}, sc),
	    constant(f->g, "bias", MPCC_DTYPE_F32, 1, (int64_t[]){2}, bs),
	};
	int32_t out[3];
	node(f->g, MPCC_OP_LAYERNORMALIZATION, "ln", 3, in, 3, out);
	run_ok(f);
	/* rows: mean 2 var 1, mean 4 var 4; epsilon 1e-5 */
	float i0 = 1 / sqrtf(1 + 1e-5f), i1 = 1 / sqrtf(4 + 1e-5f);
	const float want[] = {-i0, 2 * i0 + 1, -2 * i1, 2 * 2 * i1 + 1};
	assert_floats_near(result(f, out[0], MPCC_DTYPE_F32, 2, (int64_t[]){2, 2}), want, 4, 1e-6f);
	assert_floats_near(result(f, out[1], MPCC_DTYPE_F32, 2, (int64_t[]){2, 1}), (float[]){2, 4},
	                   2, 1e-6f);
	assert_floats_near(result(f, out[2], MPCC_DTYPE_F32, 2, (int64_t[]){2, 1}),
	                   (float[]){i0, i1}, 2, 1e-6f);
}

static void
non_constant_axes_are_unsupported_naming_the_node(void **state)
{
	fixture *f = *state;
	int32_t x = value(f->g, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3});
	int32_t a = value(f->g, "dyn_axes", MPCC_DTYPE_I64, 1, (int64_t[]){1});
	assert_int_equal(mpcc_graph_add_input(f->g, x), MPCC_OK);
	assert_int_equal(mpcc_graph_add_input(f->g, a), MPCC_OK);
	int32_t y;
	node(f->g, MPCC_OP_REDUCESUM, "my_sum", 2, (int32_t[]){x, a}, 1, &y);
	assert_int_equal(run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "my_sum"));
	assert_non_null(strstr(f->d.msg, "dyn_axes"));
}

static void
cumsum_exclusive_reverse_sums_the_later_elements(void **state)
{
	fixture *f = *state;
	const float xs[] = {1, 2, 3, 4};
	const int32_t axis = 0;
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 1, (int64_t[]){4}, xs);
	int32_t a = constant(f->g, "axis", MPCC_DTYPE_I32, 0, NULL, &axis);
	int32_t y_plain, y_er;
	node(f->g, MPCC_OP_CUMSUM, "plain", 2, (int32_t[]){x, a}, 1, &y_plain);
	int32_t n = node(f->g, MPCC_OP_CUMSUM, "excl_rev", 2, (int32_t[]){x, a}, 1, &y_er);
	attr_int(f->g, n, "exclusive", 1);
	attr_int(f->g, n, "reverse", 1);
	run_ok(f);
	assert_floats_near(result(f, y_plain, MPCC_DTYPE_F32, 1, (int64_t[]){4}),
	                   (float[]){1, 3, 6, 10}, 4, 0);
	assert_floats_near(result(f, y_er, MPCC_DTYPE_F32, 1, (int64_t[]){4}),
	                   (float[]){9, 7, 4, 0}, 4, 0);
}

static void
empty_axes_reduce_all_unless_noop(void **state)
{
	fixture *f = *state;
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, x23);
	int32_t a = constant(f->g, "axes", MPCC_DTYPE_I64, 1, (int64_t[]){0}, NULL);
	int32_t y_all, y_noop;
	node(f->g, MPCC_OP_REDUCESUM, "all", 2, (int32_t[]){x, a}, 1, &y_all);
	int32_t n = node(f->g, MPCC_OP_REDUCESUM, "noop", 2, (int32_t[]){x, a}, 1, &y_noop);
	attr_int(f->g, n, "noop_with_empty_axes", 1);
	run_ok(f);
	assert_floats_near(result(f, y_all, MPCC_DTYPE_F32, 2, (int64_t[]){1, 1}), (float[]){21}, 1,
	                   0);
	assert_floats_near(result(f, y_noop, MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}), x23, 6, 0);
}

static void
f16_reduce_sum_accumulates_in_f32(void **state)
{
	fixture *f = *state;
	/* 2048 + 1 + 1 + ... : each 1 alone would be lost in f16 (spacing 2 at 2048) */
	uint16_t xs[9];
	xs[0] = mpcc_f32_to_f16(2048);
	for (int i = 1; i < 9; i++)
		xs[i] = mpcc_f32_to_f16(1);
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F16, 1, (int64_t[]){9}, xs);
	int32_t y;
	node(f->g, MPCC_OP_REDUCESUM, "sum", 1, &x, 1, &y);
	run_ok(f);
	const uint16_t *r = result(f, y, MPCC_DTYPE_F16, 1, (int64_t[]){1});
	assert_true(mpcc_f16_to_f32(r[0]) == 2056.0f);
}

static void
nll_loss_mean_divides_by_applied_weights(void **state)
{
	fixture *f = *state;
	const float lp[] = {-1, -2, -3, -4, -5, -6};
	const int64_t t[] = {2, 1};
	const float w[] = {1, 2, 3};
	int32_t in[3] = {
	    constant(f->g, "logp", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, lp),
	    constant(f->g, "target", MPCC_DTYPE_I64, 1, (int64_t[]){2}, t),
	    constant(f->g, "w", MPCC_DTYPE_F32, 1, (int64_t[]){3}, w),
	};
	int32_t y_mean, y_ign;
	node(f->g, MPCC_OP_NEGATIVELOGLIKELIHOODLOSS, "mean", 3, in, 1, &y_mean);
	int32_t n = node(f->g, MPCC_OP_NEGATIVELOGLIKELIHOODLOSS, "ign", 3, in, 1, &y_ign);
	attr_int(f->g, n, "ignore_index", 1);
	run_ok(f);
	/* (3 * 3 + 5 * 2) / (3 + 2); ignoring class 1 leaves 3 * 3 / 3 */
	assert_floats_near(result(f, y_mean, MPCC_DTYPE_F32, 0, NULL), (float[]){3.8f}, 1, 1e-6f);
	assert_floats_near(result(f, y_ign, MPCC_DTYPE_F32, 0, NULL), (float[]){3}, 1, 1e-6f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(reduce_sum_keeps_or_drops_the_reduced_axis, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(reduce_mean_over_two_axes, setup, teardown),
	    cmocka_unit_test_setup_teardown(argmax_select_last_index_picks_the_last_tie, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(softmax_rows_sum_to_one, setup, teardown),
	    cmocka_unit_test_setup_teardown(layer_normalization_matches_hand_computed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(non_constant_axes_are_unsupported_naming_the_node,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(cumsum_exclusive_reverse_sums_the_later_elements, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(empty_axes_reduce_all_unless_noop, setup, teardown),
	    cmocka_unit_test_setup_teardown(f16_reduce_sum_accumulates_in_f32, setup, teardown),
	    cmocka_unit_test_setup_teardown(nll_loss_mean_divides_by_applied_weights, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
