/*
 * test_ops_misc.c - the misc family end to end through the pass pipeline:
 * TopK, Compress and the training optimizers.
 *
 * Each test builds a tiny graph whose inputs are constants, runs
 * mpcc_run_pipeline so that constant folding evaluates the node through its
 * lowering and the reference interpreter, and checks the folded outputs
 * against values worked out by hand.
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
	f->g->opset_training = 1;
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

/* A node of op over in[] with n_out new graph outputs (into out[]). */
static int32_t
node(mpcc_graph *g, mpcc_op op, int opset, int n_in, const int32_t *in, int n_out, int32_t *out)
{
	for (int i = 0; i < n_out; i++) {
		out[i] = mpcc_graph_add_value(g, NULL);
		assert_int_not_equal(out[i], MPCC_NONE);
	}
	int32_t n = mpcc_graph_add_node(g, op, NULL, n_in, in, n_out, out);
	assert_int_not_equal(n, MPCC_NONE);
	g->nodes[n].opset = opset;
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
attr_float(mpcc_graph *g, int32_t n, const char *name, float v)
{
	mpcc_attr *a = mpcc_node_add_attr(g, n, name, MPCC_ATTR_FLOAT);
	assert_non_null(a);
	a->f = v;
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

static void
assert_ints_equal(const int64_t *got, const int64_t *want, int n)
{
	for (int i = 0; i < n; i++)
		if (got[i] != want[i])
			fail_msg("element %d: got %lld, want %lld", i, (long long)got[i],
			         (long long)want[i]);
}

static void
topk_largest_orders_ties_by_lower_index(void **state)
{
	fixture *f = *state;
	const float xs[] = {3, 1, 3, 2, 5, /**/ 0, 0, 0, -1, 0};
	const int64_t kk[] = {3};
	int32_t in[2] = {constant(f->g, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 5}, xs),
	                 constant(f->g, "k", MPCC_DTYPE_I64, 1, (int64_t[]){1}, kk)};
	int32_t out[2];
	node(f->g, MPCC_OP_TOPK, 11, 2, in, 2, out);
	run_ok(f);
	const float *v = result(f, out[0], MPCC_DTYPE_F32, 2, (int64_t[]){2, 3});
	const int64_t *i = result(f, out[1], MPCC_DTYPE_I64, 2, (int64_t[]){2, 3});
	assert_floats_near(v, (float[]){5, 3, 3, 0, 0, 0}, 6, 0);
	assert_ints_equal(i, (int64_t[]){4, 0, 2, 0, 1, 2}, 6);
}

static void
topk_smallest_along_axis_zero(void **state)
{
	fixture *f = *state;
	const int32_t xs[] = {4, 1, 2, 1, 4, 0};
	const int64_t kk[] = {2};
	int32_t in[2] = {constant(f->g, "x", MPCC_DTYPE_I32, 2, (int64_t[]){3, 2}, xs),
	                 constant(f->g, "k", MPCC_DTYPE_I64, 1, (int64_t[]){1}, kk)};
	int32_t out[2];
	int32_t n = node(f->g, MPCC_OP_TOPK, 11, 2, in, 2, out);
	attr_int(f->g, n, "axis", 0);
	attr_int(f->g, n, "largest", 0);
	run_ok(f);
	const int32_t *v = result(f, out[0], MPCC_DTYPE_I32, 2, (int64_t[]){2, 2});
	const int64_t *i = result(f, out[1], MPCC_DTYPE_I64, 2, (int64_t[]){2, 2});
	/* column 0: 4,2,4 -> 2@1, 4@0; column 1: 1,1,0 -> 0@2, 1@0 */
	assert_int_equal(v[0], 2);
	assert_int_equal(v[1], 0);
	assert_int_equal(v[2], 4);
	assert_int_equal(v[3], 1);
	assert_ints_equal(i, (int64_t[]){1, 2, 0, 0}, 4);
}

static void
topk_rejects_k_beyond_the_axis(void **state)
{
	fixture *f = *state;
	const float xs[] = {1, 2};
	const int64_t kk[] = {3};
	int32_t in[2] = {constant(f->g, "x", MPCC_DTYPE_F32, 1, (int64_t[]){2}, xs),
	                 constant(f->g, "k", MPCC_DTYPE_I64, 1, (int64_t[]){1}, kk)};
	int32_t out[2];
	node(f->g, MPCC_OP_TOPK, 11, 2, in, 2, out);
	assert_int_equal(run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "k = 3"));
}

static void
adam_one_step_matches_the_hand_computation(void **state)
{
	fixture *f = *state;
	const float r[] = {0.1f}, x[] = {1.0f, 2.0f}, gr[] = {-1.0f, 0.5f};
	const float v[] = {0.5f, 0.0f}, h[] = {0.25f, 1.0f};
	const int64_t t[] = {2};
	int64_t d2[] = {2};
	int32_t in[6] = {constant(f->g, "R", MPCC_DTYPE_F32, 0, NULL, r),
	                 constant(f->g, "T", MPCC_DTYPE_I64, 0, NULL, t),
	                 constant(f->g, "X", MPCC_DTYPE_F32, 1, d2, x),
	                 constant(f->g, "G", MPCC_DTYPE_F32, 1, d2, gr),
	                 constant(f->g, "V", MPCC_DTYPE_F32, 1, d2, v),
	                 constant(f->g, "H", MPCC_DTYPE_F32, 1, d2, h)};
	int32_t out[3];
	int32_t n = node(f->g, MPCC_OP_ADAM, 1, 6, in, 3, out);
	attr_float(f->g, n, "alpha", 0.5f);
	attr_float(f->g, n, "beta", 0.75f);
	attr_float(f->g, n, "epsilon", 0.0f);
	run_ok(f);
	/*
	 * v' = 0.5 v + 0.5 g = {-0.25, 0.25}; h' = 0.75 h + 0.25 g^2 = {0.4375, 0.8125};
	 * t = 2: r' = 0.1 * sqrt(1 - 0.75^2) / (1 - 0.5^2) = 0.1 * sqrt(0.4375) / 0.75;
	 * x' = x - r' v' / sqrt(h').
	 */
	double rr = 0.1 * sqrt(0.4375) / 0.75;
	float want_x[] = {(float)(1.0 + rr * 0.25 / sqrt(0.4375)),
	                  (float)(2.0 - rr * 0.25 / sqrt(0.8125))};
	int64_t d[] = {2};
	assert_floats_near(result(f, out[0], MPCC_DTYPE_F32, 1, d), want_x, 2, 1e-6f);
	assert_floats_near(result(f, out[1], MPCC_DTYPE_F32, 1, d), (float[]){-0.25f, 0.25f}, 2,
	                   1e-7f);
	assert_floats_near(result(f, out[2], MPCC_DTYPE_F32, 1, d), (float[]){0.4375f, 0.8125f}, 2,
	                   1e-7f);
}

static void
momentum_requires_its_attributes(void **state)
{
	fixture *f = *state;
	const float r[] = {0.1f}, x[] = {1.0f}, gr[] = {1.0f}, v[] = {0.0f};
	const int64_t t[] = {0};
	int64_t d1[] = {1};
	int32_t in[5] = {constant(f->g, "R", MPCC_DTYPE_F32, 0, NULL, r),
	                 constant(f->g, "T", MPCC_DTYPE_I64, 0, NULL, t),
	                 constant(f->g, "X", MPCC_DTYPE_F32, 1, d1, x),
	                 constant(f->g, "G", MPCC_DTYPE_F32, 1, d1, gr),
	                 constant(f->g, "V", MPCC_DTYPE_F32, 1, d1, v)};
	int32_t out[2];
	int32_t n = node(f->g, MPCC_OP_MOMENTUM, 1, 5, in, 2, out);
	attr_float(f->g, n, "alpha", 0.9f);
	assert_int_equal(run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "beta"));
}

static void
compress_along_an_axis_and_flattened(void **state)
{
	fixture *f = *state;
	const float xs[] = {1, 2, 3, 4, 5, 6};
	const uint8_t cond_ax[] = {1, 0, 1}, cond_flat[] = {0, 1, 0, 1, 1};
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, xs);
	int32_t c1 = constant(f->g, "c1", MPCC_DTYPE_BOOL, 1, (int64_t[]){3}, cond_ax);
	int32_t c2 = constant(f->g, "c2", MPCC_DTYPE_BOOL, 1, (int64_t[]){5}, cond_flat);
	int32_t y1, y2;
	int32_t n = node(f->g, MPCC_OP_COMPRESS, 11, 2, (int32_t[]){x, c1}, 1, &y1);
	attr_int(f->g, n, "axis", -1);
	node(f->g, MPCC_OP_COMPRESS, 11, 2, (int32_t[]){x, c2}, 1, &y2);
	run_ok(f);
	assert_floats_near(result(f, y1, MPCC_DTYPE_F32, 2, (int64_t[]){2, 2}),
	                   (float[]){1, 3, 4, 6}, 4, 0);
	assert_floats_near(result(f, y2, MPCC_DTYPE_F32, 1, (int64_t[]){3}), (float[]){2, 4, 5}, 3,
	                   0);
}

static void
compress_rejects_a_condition_longer_than_the_axis(void **state)
{
	fixture *f = *state;
	const float xs[] = {1, 2};
	const uint8_t cond[] = {1, 0, 1};
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 1, (int64_t[]){2}, xs);
	int32_t c = constant(f->g, "c", MPCC_DTYPE_BOOL, 1, (int64_t[]){3}, cond);
	int32_t y;
	int32_t n = node(f->g, MPCC_OP_COMPRESS, 11, 2, (int32_t[]){x, c}, 1, &y);
	attr_int(f->g, n, "axis", 0);
	assert_int_equal(run(f), MPCC_ERR_INVALID);
}

static void
det_pivots_and_flips_the_sign(void **state)
{
	fixture *f = *state;
	/* [[0, 2], [3, 1]] needs a row swap: det = -6; [[1, 2], [2, 4]] is singular */
	const float xs[] = {0, 2, 3, 1, 1, 2, 2, 4};
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 3, (int64_t[]){2, 2, 2}, xs);
	const float x3[] = {0, 1, 2, 1, 0, 3, 4, -3, 8};
	int32_t x3v = constant(f->g, "x3", MPCC_DTYPE_F32, 2, (int64_t[]){3, 3}, x3);
	int32_t y, y3;
	node(f->g, MPCC_OP_DET, 17, 1, &x, 1, &y);
	node(f->g, MPCC_OP_DET, 17, 1, &x3v, 1, &y3);
	run_ok(f);
	assert_floats_near(result(f, y, MPCC_DTYPE_F32, 1, (int64_t[]){2}), (float[]){-6, 0}, 2,
	                   1e-5f);
	/* 0(0 + 9) - 1(8 - 12) + 2(-3 - 0) = -2 */
	assert_floats_near(result(f, y3, MPCC_DTYPE_F32, 0, NULL), (float[]){-2}, 1, 1e-5f);
}

static void
maxunpool_scatters_into_zeros(void **state)
{
	fixture *f = *state;
	const float xs[] = {1, 2};
	const int64_t is[] = {3, 0};
	int32_t in[2] = {constant(f->g, "x", MPCC_DTYPE_F32, 4, (int64_t[]){1, 1, 1, 2}, xs),
	                 constant(f->g, "i", MPCC_DTYPE_I64, 4, (int64_t[]){1, 1, 1, 2}, is)};
	int32_t y;
	int32_t n = node(f->g, MPCC_OP_MAXUNPOOL, 11, 2, in, 1, &y);
	mpcc_attr *a = mpcc_node_add_attr(f->g, n, "kernel_shape", MPCC_ATTR_INTS);
	assert_non_null(a);
	a->ints = mpcc_arena_alloc(&f->g->arena, 2 * sizeof(int64_t));
	assert_non_null(a->ints);
	a->ints[0] = 1;
	a->ints[1] = 2;
	a->n = 2;
	mpcc_attr *st = mpcc_node_add_attr(f->g, n, "strides", MPCC_ATTR_INTS);
	assert_non_null(st);
	st->ints = mpcc_arena_alloc(&f->g->arena, 2 * sizeof(int64_t));
	assert_non_null(st->ints);
	st->ints[0] = 1;
	st->ints[1] = 2;
	st->n = 2;
	run_ok(f);
	assert_floats_near(result(f, y, MPCC_DTYPE_F32, 4, (int64_t[]){1, 1, 1, 4}),
	                   (float[]){2, 0, 0, 1}, 4, 0);
}

static void
gridsample_bilinear_reads_zeros_outside(void **state)
{
	fixture *f = *state;
	const float xs[] = {1, 2, 3, 4};
	/* align_corners = 0 on a 2x2 image: -0.5 and 0.5 are pixel centres,
	 * 0 is halfway between, -1.5 is a pixel left of the edge (all zeros) */
	const float gr[] = {-0.5f, -0.5f, 0, -0.5f, 0, 0, -2.5f, 0.5f};
	int32_t in[2] = {constant(f->g, "x", MPCC_DTYPE_F32, 4, (int64_t[]){1, 1, 2, 2}, xs),
	                 constant(f->g, "g", MPCC_DTYPE_F32, 4, (int64_t[]){1, 1, 4, 2}, gr)};
	int32_t y;
	node(f->g, MPCC_OP_GRIDSAMPLE, 16, 2, in, 1, &y);
	run_ok(f);
	assert_floats_near(result(f, y, MPCC_DTYPE_F32, 4, (int64_t[]){1, 1, 1, 4}),
	                   (float[]){1, 1.5f, 2.5f, 0}, 4, 1e-6f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(topk_largest_orders_ties_by_lower_index, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(topk_smallest_along_axis_zero, setup, teardown),
	    cmocka_unit_test_setup_teardown(topk_rejects_k_beyond_the_axis, setup, teardown),
	    cmocka_unit_test_setup_teardown(adam_one_step_matches_the_hand_computation, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(momentum_requires_its_attributes, setup, teardown),
	    cmocka_unit_test_setup_teardown(compress_along_an_axis_and_flattened, setup, teardown),
	    cmocka_unit_test_setup_teardown(compress_rejects_a_condition_longer_than_the_axis,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(det_pivots_and_flips_the_sign, setup, teardown),
	    cmocka_unit_test_setup_teardown(maxunpool_scatters_into_zeros, setup, teardown),
	    cmocka_unit_test_setup_teardown(gridsample_bilinear_reads_zeros_outside, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
