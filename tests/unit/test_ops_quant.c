/*
 * test_ops_quant.c - the quantisation family end to end through the pass
 * pipeline: shape functions, lowering and the reference interpreter.
 *
 * Each test builds a tiny graph whose inputs are constants, runs
 * mpcc_run_pipeline so that constant folding evaluates the node through its
 * lowering, and checks the folded outputs against hand-computed values:
 * rounding of ties to even, saturation at the integer type's bounds,
 * per-axis parameters, zero points in the integer products and padding.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

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
	f->g->opset = 13;
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
constant(mpcc_graph *g, mpcc_dtype dt, int rank, const int64_t *dims, const void *data)
{
	int32_t v = mpcc_graph_add_value(g, NULL);
	assert_int_not_equal(v, MPCC_NONE);
	mpcc_value *val = &g->values[v];
	val->dtype = dt;
	val->rank = rank;
	for (int i = 0; i < rank; i++)
		val->dims[i] = dims[i];
	size_t nbytes = (size_t)mpcc_value_numel(val) * mpcc_dtype_size(dt);
	void *copy = malloc(nbytes ? nbytes : 1);
	assert_non_null(copy);
	memcpy(copy, data, nbytes);
	mpcc_value_set_data(val, copy, nbytes);
	return v;
}

/* A node of op over in[] with n_out new graph outputs (into out[]). */
static int32_t
node(mpcc_graph *g, mpcc_op op, int n_in, const int32_t *in, int n_out, int32_t *out)
{
	for (int i = 0; i < n_out; i++) {
		out[i] = mpcc_graph_add_value(g, NULL);
		assert_int_not_equal(out[i], MPCC_NONE);
	}
	int32_t n = mpcc_graph_add_node(g, op, "q", n_in, in, n_out, out);
	assert_int_not_equal(n, MPCC_NONE);
	for (int i = 0; i < n_out; i++)
		assert_int_equal(mpcc_graph_add_output(g, out[i]), MPCC_OK);
	return n;
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
quantize_rounds_ties_to_even_and_saturates(void **state)
{
	fixture *f = *state;
	static const float x[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 300.0f, -300.0f, 127.5f};
	static const float one = 1.0f;
	static const uint8_t zp = 10;
	int64_t d8[] = {8};
	int32_t in[] = {constant(f->g, MPCC_DTYPE_F32, 1, d8, x),
	                constant(f->g, MPCC_DTYPE_F32, 0, NULL, &one),
	                constant(f->g, MPCC_DTYPE_U8, 0, NULL, &zp)};
	int32_t y;
	node(f->g, MPCC_OP_QUANTIZELINEAR, 3, in, 1, &y);
	run_ok(f);
	const uint8_t *r = result(f, y, MPCC_DTYPE_U8, 1, d8);
	/* 0.5->0, 1.5->2, 2.5->2, -0.5->-0, -1.5->-2, then +10, clamped to [0, 255] */
	static const uint8_t want[] = {10, 12, 12, 10, 8, 255, 0, 138};
	assert_memory_equal(r, want, sizeof(want));
}

static void
quantize_to_int8_saturates_at_both_ends(void **state)
{
	fixture *f = *state;
	static const float x[] = {-200.0f, 200.0f, 1.25f, -1.25f};
	static const float scale = 0.5f;
	static const int8_t zp = -1;
	int64_t d4[] = {4};
	int32_t in[] = {constant(f->g, MPCC_DTYPE_F32, 1, d4, x),
	                constant(f->g, MPCC_DTYPE_F32, 0, NULL, &scale),
	                constant(f->g, MPCC_DTYPE_I8, 0, NULL, &zp)};
	int32_t y;
	node(f->g, MPCC_OP_QUANTIZELINEAR, 3, in, 1, &y);
	run_ok(f);
	const int8_t *r = result(f, y, MPCC_DTYPE_I8, 1, d4);
	/* 1.25 / 0.5 = 2.5 -> 2, -2.5 -> -2, each minus 1 */
	static const int8_t want[] = {-128, 127, 1, -3};
	assert_memory_equal(r, want, sizeof(want));
}

static void
quantize_per_axis_uses_each_channels_scale_and_zero_point(void **state)
{
	fixture *f = *state;
	static const float x[] = {1, 2, 4, 3, 6, 10};
	static const float scale[] = {1, 2, 4};
	static const uint8_t zp[] = {0, 10, 20};
	int64_t d23[] = {2, 3}, d3[] = {3};
	int32_t in[] = {constant(f->g, MPCC_DTYPE_F32, 2, d23, x),
	                constant(f->g, MPCC_DTYPE_F32, 1, d3, scale),
	                constant(f->g, MPCC_DTYPE_U8, 1, d3, zp)};
	int32_t y;
	node(f->g, MPCC_OP_QUANTIZELINEAR, 3, in, 1, &y);
	run_ok(f);
	const uint8_t *r = result(f, y, MPCC_DTYPE_U8, 2, d23);
	static const uint8_t want[] = {1, 11, 21, 3, 13, 22}; /* 10 / 4 = 2.5 -> 2 */
	assert_memory_equal(r, want, sizeof(want));
}

static void
dequantize_subtracts_zero_point_then_scales(void **state)
{
	fixture *f = *state;
	static const int8_t x[] = {-128, 0, 127};
	static const float scale = 0.5f;
	static const int8_t zp = -1;
	int64_t d3[] = {3};
	int32_t in[] = {constant(f->g, MPCC_DTYPE_I8, 1, d3, x),
	                constant(f->g, MPCC_DTYPE_F32, 0, NULL, &scale),
	                constant(f->g, MPCC_DTYPE_I8, 0, NULL, &zp)};
	int32_t y;
	node(f->g, MPCC_OP_DEQUANTIZELINEAR, 3, in, 1, &y);
	run_ok(f);
	const float *r = result(f, y, MPCC_DTYPE_F32, 1, d3);
	assert_true(r[0] == -63.5f && r[1] == 0.5f && r[2] == 64.0f);
}

static void
dequantize_int32_without_zero_point(void **state)
{
	fixture *f = *state;
	static const int32_t x[] = {100000, -3};
	static const float scale = 0.25f;
	int64_t d2[] = {2};
	int32_t in[] = {constant(f->g, MPCC_DTYPE_I32, 1, d2, x),
	                constant(f->g, MPCC_DTYPE_F32, 0, NULL, &scale)};
	int32_t y;
	node(f->g, MPCC_OP_DEQUANTIZELINEAR, 2, in, 1, &y);
	run_ok(f);
	const float *r = result(f, y, MPCC_DTYPE_F32, 1, d2);
	assert_true(r[0] == 25000.0f && r[1] == -0.75f);
}

static void
dynamic_quantize_includes_zero_in_the_range(void **state)
{
	fixture *f = *state;
	static const float x[] = {0, 2, -3, -2.5f, 1.34f, 0.5f};
	int64_t d6[] = {6};
	int32_t in = constant(f->g, MPCC_DTYPE_F32, 1, d6, x);
	int32_t out[3];
	node(f->g, MPCC_OP_DYNAMICQUANTIZELINEAR, 1, &in, 3, out);
	run_ok(f);
	const uint8_t *y = result(f, out[0], MPCC_DTYPE_U8, 1, d6);
	const float *scale = result(f, out[1], MPCC_DTYPE_F32, 0, NULL);
	const uint8_t *zp = result(f, out[2], MPCC_DTYPE_U8, 0, NULL);
	/* min -3, max 2: scale 5 / 255, zero point rint(3 / scale) = 153 */
	assert_true(*scale == 5.0f / 255.0f);
	assert_int_equal(*zp, 153);
	static const uint8_t want[] = {153, 255, 0, 26, 221, 179};
	assert_memory_equal(y, want, sizeof(want));
}

static void
dynamic_quantize_of_negative_input_puts_zero_point_at_the_top(void **state)
{
	fixture *f = *state;
	static const float x[] = {-1.0f, -4.0f};
	int64_t d2[] = {2};
	int32_t in = constant(f->g, MPCC_DTYPE_F32, 1, d2, x);
	int32_t out[3];
	node(f->g, MPCC_OP_DYNAMICQUANTIZELINEAR, 1, &in, 3, out);
	run_ok(f);
	const uint8_t *y = result(f, out[0], MPCC_DTYPE_U8, 1, d2);
	const uint8_t *zp = result(f, out[2], MPCC_DTYPE_U8, 0, NULL);
	assert_int_equal(*zp, 255);
	/* -1 / (4 / 255) = -63.75 -> -64, + 255 */
	assert_int_equal(y[0], 191);
	assert_int_equal(y[1], 0);
}

static void
qlinear_matmul_requantizes_with_ties_to_even_and_saturates(void **state)
{
	fixture *f = *state;
	static const uint8_t a[] = {130, 120};                 /* centred: 2, -8 */
	static const uint8_t b[] = {6, 255, 8, 1, 1, 1, 1, 2}; /* [2, 4], centred on 1 */
	static const float a_s = 0.25f, b_s = 1.0f, y_s = 1.0f;
	static const uint8_t a_zp = 128, b_zp = 1, y_zp = 200;
	int64_t da[] = {1, 2}, db[] = {2, 4}, dy[] = {1, 4};
	int32_t in[] = {constant(f->g, MPCC_DTYPE_U8, 2, da, a),
	                constant(f->g, MPCC_DTYPE_F32, 0, NULL, &a_s),
	                constant(f->g, MPCC_DTYPE_U8, 0, NULL, &a_zp),
	                constant(f->g, MPCC_DTYPE_U8, 2, db, b),
	                constant(f->g, MPCC_DTYPE_F32, 0, NULL, &b_s),
	                constant(f->g, MPCC_DTYPE_U8, 0, NULL, &b_zp),
	                constant(f->g, MPCC_DTYPE_F32, 0, NULL, &y_s),
	                constant(f->g, MPCC_DTYPE_U8, 0, NULL, &y_zp)};
	int32_t y;
	node(f->g, MPCC_OP_QLINEARMATMUL, 8, in, 1, &y);
	run_ok(f);
	const uint8_t *r = result(f, y, MPCC_DTYPE_U8, 2, dy);
	/* sums 10, 508, 14, -8; times 0.25: 2.5 -> 2, 127, 3.5 -> 4, -2; plus 200 */
	static const uint8_t want[] = {202, 255, 204, 198};
	assert_memory_equal(r, want, sizeof(want));
}

static void
matmul_integer_applies_per_row_zero_points(void **state)
{
	fixture *f = *state;
	static const uint8_t a[] = {1, 2, 3, 4};
	static const uint8_t a_zp[] = {1, 3};
	static const uint8_t b[] = {2, 3};
	int64_t d22[] = {2, 2}, d2[] = {2}, d21[] = {2, 1};
	int32_t in[] = {constant(f->g, MPCC_DTYPE_U8, 2, d22, a),
	                constant(f->g, MPCC_DTYPE_U8, 2, d21, b),
	                constant(f->g, MPCC_DTYPE_U8, 1, d2, a_zp)};
	int32_t y;
	node(f->g, MPCC_OP_MATMULINTEGER, 3, in, 1, &y);
	run_ok(f);
	const int32_t *r = result(f, y, MPCC_DTYPE_I32, 2, d21);
	/* rows centred to [0, 1] and [0, 1]: 0*2 + 1*3 each */
	assert_int_equal(r[0], 3);
	assert_int_equal(r[1], 3);
}

static void
conv_integer_padding_contributes_nothing(void **state)
{
	fixture *f = *state;
	static const uint8_t x[] = {5, 6, 7, 8};
	static const uint8_t w[] = {2};
	static const uint8_t x_zp = 5;
	int64_t dx[] = {1, 1, 2, 2}, dw[] = {1, 1, 1, 1}, dy[] = {1, 1, 4, 4};
	int32_t in[] = {constant(f->g, MPCC_DTYPE_U8, 4, dx, x),
	                constant(f->g, MPCC_DTYPE_U8, 4, dw, w),
	                constant(f->g, MPCC_DTYPE_U8, 0, NULL, &x_zp)};
	int32_t y;
	int32_t n = node(f->g, MPCC_OP_CONVINTEGER, 3, in, 1, &y);
	mpcc_attr *pads = mpcc_node_add_attr(f->g, n, "pads", MPCC_ATTR_INTS);
	assert_non_null(pads);
	static int64_t p[] = {1, 1, 1, 1};
	pads->ints = p;
	pads->n = 4;
	run_ok(f);
	const int32_t *r = result(f, y, MPCC_DTYPE_I32, 4, dy);
	static const int32_t want[] = {0, 0, 0, 0, 0, 0, 2, 0, 0, 4, 6, 0, 0, 0, 0, 0};
	assert_memory_equal(r, want, sizeof(want));
}

static void
per_axis_scale_before_opset_13_is_invalid(void **state)
{
	fixture *f = *state;
	f->g->opset = 10;
	static const float x[] = {1, 2};
	static const float scale[] = {1, 2};
	int64_t d2[] = {2};
	int32_t in[] = {constant(f->g, MPCC_DTYPE_F32, 1, d2, x),
	                constant(f->g, MPCC_DTYPE_F32, 1, d2, scale)};
	int32_t y;
	node(f->g, MPCC_OP_QUANTIZELINEAR, 2, in, 1, &y);
	assert_int_equal(run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "QuantizeLinear"));
	assert_non_null(strstr(f->d.msg, "opset 13"));
}

static void
float_zero_point_of_matmul_integer_is_invalid(void **state)
{
	fixture *f = *state;
	static const uint8_t a[] = {1, 2};
	static const float zp = 1.0f;
	int64_t d12[] = {1, 2}, d21[] = {2, 1};
	int32_t in[] = {constant(f->g, MPCC_DTYPE_U8, 2, d12, a),
	                constant(f->g, MPCC_DTYPE_U8, 2, d21, a),
	                constant(f->g, MPCC_DTYPE_F32, 0, NULL, &zp)};
	int32_t y;
	node(f->g, MPCC_OP_MATMULINTEGER, 3, in, 1, &y);
	assert_int_equal(run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "zero point"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(quantize_rounds_ties_to_even_and_saturates, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(quantize_to_int8_saturates_at_both_ends, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        quantize_per_axis_uses_each_channels_scale_and_zero_point, setup, teardown),
	    cmocka_unit_test_setup_teardown(dequantize_subtracts_zero_point_then_scales, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(dequantize_int32_without_zero_point, setup, teardown),
	    cmocka_unit_test_setup_teardown(dynamic_quantize_includes_zero_in_the_range, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        dynamic_quantize_of_negative_input_puts_zero_point_at_the_top, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        qlinear_matmul_requantizes_with_ties_to_even_and_saturates, setup, teardown),
	    cmocka_unit_test_setup_teardown(matmul_integer_applies_per_row_zero_points, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(conv_integer_padding_contributes_nothing, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(per_axis_scale_before_opset_13_is_invalid, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(float_zero_point_of_matmul_integer_is_invalid, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
