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

#include <string.h>

#include "ir/ir.h"
#include "testkit.h"

/* These tests run at ai.onnx opset 13, where QuantizeLinear gained per-axis parameters. */
static int
setup(void **state)
{
	return mpcc_tk_setup_opsets(state, 13, 0);
}

static void
quantize_rounds_ties_to_even_and_saturates(void **state)
{
	mpcc_tk *f = *state;
	static const float x[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 300.0f, -300.0f, 127.5f};
	static const float one = 1.0f;
	static const uint8_t zp = 10;
	int64_t d8[] = {8};
	int32_t in[] = {mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 1, d8, x),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 0, NULL, &one),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 0, NULL, &zp)};
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_QUANTIZELINEAR, "q", 3, in, 1, &y);
	mpcc_tk_run_ok(f);
	const uint8_t *r = mpcc_tk_result(f, y, MPCC_DTYPE_U8, 1, d8);
	/* 0.5->0, 1.5->2, 2.5->2, -0.5->-0, -1.5->-2, then +10, clamped to [0, 255] */
	static const uint8_t want[] = {10, 12, 12, 10, 8, 255, 0, 138};
	assert_memory_equal(r, want, sizeof(want));
}

static void
quantize_to_int8_saturates_at_both_ends(void **state)
{
	mpcc_tk *f = *state;
	static const float x[] = {-200.0f, 200.0f, 1.25f, -1.25f};
	static const float scale = 0.5f;
	static const int8_t zp = -1;
	int64_t d4[] = {4};
	int32_t in[] = {mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 1, d4, x),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 0, NULL, &scale),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_I8, 0, NULL, &zp)};
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_QUANTIZELINEAR, "q", 3, in, 1, &y);
	mpcc_tk_run_ok(f);
	const int8_t *r = mpcc_tk_result(f, y, MPCC_DTYPE_I8, 1, d4);
	/* 1.25 / 0.5 = 2.5 -> 2, -2.5 -> -2, each minus 1 */
	static const int8_t want[] = {-128, 127, 1, -3};
	assert_memory_equal(r, want, sizeof(want));
}

static void
quantize_per_axis_uses_each_channels_scale_and_zero_point(void **state)
{
	mpcc_tk *f = *state;
	static const float x[] = {1, 2, 4, 3, 6, 10};
	static const float scale[] = {1, 2, 4};
	static const uint8_t zp[] = {0, 10, 20};
	int64_t d23[] = {2, 3}, d3[] = {3};
	int32_t in[] = {mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 2, d23, x),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 1, d3, scale),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 1, d3, zp)};
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_QUANTIZELINEAR, "q", 3, in, 1, &y);
	mpcc_tk_run_ok(f);
	const uint8_t *r = mpcc_tk_result(f, y, MPCC_DTYPE_U8, 2, d23);
	static const uint8_t want[] = {1, 11, 21, 3, 13, 22}; /* 10 / 4 = 2.5 -> 2 */
	assert_memory_equal(r, want, sizeof(want));
}

static void
dequantize_subtracts_zero_point_then_scales(void **state)
{
	mpcc_tk *f = *state;
	static const int8_t x[] = {-128, 0, 127};
	static const float scale = 0.5f;
	static const int8_t zp = -1;
	int64_t d3[] = {3};
	int32_t in[] = {mpcc_tk_const(f, NULL, MPCC_DTYPE_I8, 1, d3, x),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 0, NULL, &scale),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_I8, 0, NULL, &zp)};
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_DEQUANTIZELINEAR, "q", 3, in, 1, &y);
	mpcc_tk_run_ok(f);
	const float *r = mpcc_tk_result(f, y, MPCC_DTYPE_F32, 1, d3);
	assert_true(r[0] == -63.5f && r[1] == 0.5f && r[2] == 64.0f);
}

static void
dequantize_int32_without_zero_point(void **state)
{
	mpcc_tk *f = *state;
	static const int32_t x[] = {100000, -3};
	static const float scale = 0.25f;
	int64_t d2[] = {2};
	int32_t in[] = {mpcc_tk_const(f, NULL, MPCC_DTYPE_I32, 1, d2, x),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 0, NULL, &scale)};
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_DEQUANTIZELINEAR, "q", 2, in, 1, &y);
	mpcc_tk_run_ok(f);
	const float *r = mpcc_tk_result(f, y, MPCC_DTYPE_F32, 1, d2);
	assert_true(r[0] == 25000.0f && r[1] == -0.75f);
}

static void
dynamic_quantize_includes_zero_in_the_range(void **state)
{
	mpcc_tk *f = *state;
	static const float x[] = {0, 2, -3, -2.5f, 1.34f, 0.5f};
	int64_t d6[] = {6};
	int32_t in = mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 1, d6, x);
	int32_t out[3];
	mpcc_tk_node(f, MPCC_OP_DYNAMICQUANTIZELINEAR, "q", 1, &in, 3, out);
	mpcc_tk_run_ok(f);
	const uint8_t *y = mpcc_tk_result(f, out[0], MPCC_DTYPE_U8, 1, d6);
	const float *scale = mpcc_tk_result(f, out[1], MPCC_DTYPE_F32, 0, NULL);
	const uint8_t *zp = mpcc_tk_result(f, out[2], MPCC_DTYPE_U8, 0, NULL);
	/* min -3, max 2: scale 5 / 255, zero point rint(3 / scale) = 153 */
	assert_true(*scale == 5.0f / 255.0f);
	assert_int_equal(*zp, 153);
	static const uint8_t want[] = {153, 255, 0, 26, 221, 179};
	assert_memory_equal(y, want, sizeof(want));
}

static void
dynamic_quantize_of_negative_input_puts_zero_point_at_the_top(void **state)
{
	mpcc_tk *f = *state;
	static const float x[] = {-1.0f, -4.0f};
	int64_t d2[] = {2};
	int32_t in = mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 1, d2, x);
	int32_t out[3];
	mpcc_tk_node(f, MPCC_OP_DYNAMICQUANTIZELINEAR, "q", 1, &in, 3, out);
	mpcc_tk_run_ok(f);
	const uint8_t *y = mpcc_tk_result(f, out[0], MPCC_DTYPE_U8, 1, d2);
	const uint8_t *zp = mpcc_tk_result(f, out[2], MPCC_DTYPE_U8, 0, NULL);
	assert_int_equal(*zp, 255);
	/* -1 / (4 / 255) = -63.75 -> -64, + 255 */
	assert_int_equal(y[0], 191);
	assert_int_equal(y[1], 0);
}

static void
qlinear_matmul_requantizes_with_ties_to_even_and_saturates(void **state)
{
	mpcc_tk *f = *state;
	static const uint8_t a[] = {130, 120};                 /* centred: 2, -8 */
	static const uint8_t b[] = {6, 255, 8, 1, 1, 1, 1, 2}; /* [2, 4], centred on 1 */
	static const float a_s = 0.25f, b_s = 1.0f, y_s = 1.0f;
	static const uint8_t a_zp = 128, b_zp = 1, y_zp = 200;
	int64_t da[] = {1, 2}, db[] = {2, 4}, dy[] = {1, 4};
	int32_t in[] = {mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 2, da, a),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 0, NULL, &a_s),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 0, NULL, &a_zp),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 2, db, b),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 0, NULL, &b_s),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 0, NULL, &b_zp),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 0, NULL, &y_s),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 0, NULL, &y_zp)};
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_QLINEARMATMUL, "q", 8, in, 1, &y);
	mpcc_tk_run_ok(f);
	const uint8_t *r = mpcc_tk_result(f, y, MPCC_DTYPE_U8, 2, dy);
	/* sums 10, 508, 14, -8; times 0.25: 2.5 -> 2, 127, 3.5 -> 4, -2; plus 200 */
	static const uint8_t want[] = {202, 255, 204, 198};
	assert_memory_equal(r, want, sizeof(want));
}

static void
matmul_integer_applies_per_row_zero_points(void **state)
{
	mpcc_tk *f = *state;
	static const uint8_t a[] = {1, 2, 3, 4};
	static const uint8_t a_zp[] = {1, 3};
	static const uint8_t b[] = {2, 3};
	int64_t d22[] = {2, 2}, d2[] = {2}, d21[] = {2, 1};
	int32_t in[] = {mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 2, d22, a),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 2, d21, b),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 1, d2, a_zp)};
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_MATMULINTEGER, "q", 3, in, 1, &y);
	mpcc_tk_run_ok(f);
	const int32_t *r = mpcc_tk_result(f, y, MPCC_DTYPE_I32, 2, d21);
	/* rows centred to [0, 1] and [0, 1]: 0*2 + 1*3 each */
	assert_int_equal(r[0], 3);
	assert_int_equal(r[1], 3);
}

static void
conv_integer_padding_contributes_nothing(void **state)
{
	mpcc_tk *f = *state;
	static const uint8_t x[] = {5, 6, 7, 8};
	static const uint8_t w[] = {2};
	static const uint8_t x_zp = 5;
	int64_t dx[] = {1, 1, 2, 2}, dw[] = {1, 1, 1, 1}, dy[] = {1, 1, 4, 4};
	int32_t in[] = {mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 4, dx, x),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 4, dw, w),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 0, NULL, &x_zp)};
	int32_t y;
	int32_t n = mpcc_tk_node(f, MPCC_OP_CONVINTEGER, "q", 3, in, 1, &y);
	mpcc_tk_attr_ints(f, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
	mpcc_tk_run_ok(f);
	const int32_t *r = mpcc_tk_result(f, y, MPCC_DTYPE_I32, 4, dy);
	static const int32_t want[] = {0, 0, 0, 0, 0, 0, 2, 0, 0, 4, 6, 0, 0, 0, 0, 0};
	assert_memory_equal(r, want, sizeof(want));
}

static void
per_axis_scale_before_opset_13_is_invalid(void **state)
{
	mpcc_tk *f = *state;
	f->g->opset = 10;
	static const float x[] = {1, 2};
	static const float scale[] = {1, 2};
	int64_t d2[] = {2};
	int32_t in[] = {mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 1, d2, x),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 1, d2, scale)};
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_QUANTIZELINEAR, "q", 2, in, 1, &y);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "QuantizeLinear"));
	assert_non_null(strstr(f->d.msg, "opset 13"));
}

static void
float_zero_point_of_matmul_integer_is_invalid(void **state)
{
	mpcc_tk *f = *state;
	static const uint8_t a[] = {1, 2};
	static const float zp = 1.0f;
	int64_t d12[] = {1, 2}, d21[] = {2, 1};
	int32_t in[] = {mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 2, d12, a),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_U8, 2, d21, a),
	                mpcc_tk_const(f, NULL, MPCC_DTYPE_F32, 0, NULL, &zp)};
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_MATMULINTEGER, "q", 3, in, 1, &y);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "zero point"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    MPCC_TK_TEST_WITH(quantize_rounds_ties_to_even_and_saturates, setup),
	    MPCC_TK_TEST_WITH(quantize_to_int8_saturates_at_both_ends, setup),
	    MPCC_TK_TEST_WITH(quantize_per_axis_uses_each_channels_scale_and_zero_point, setup),
	    MPCC_TK_TEST_WITH(dequantize_subtracts_zero_point_then_scales, setup),
	    MPCC_TK_TEST_WITH(dequantize_int32_without_zero_point, setup),
	    MPCC_TK_TEST_WITH(dynamic_quantize_includes_zero_in_the_range, setup),
	    MPCC_TK_TEST_WITH(dynamic_quantize_of_negative_input_puts_zero_point_at_the_top, setup),
	    MPCC_TK_TEST_WITH(qlinear_matmul_requantizes_with_ties_to_even_and_saturates, setup),
	    MPCC_TK_TEST_WITH(matmul_integer_applies_per_row_zero_points, setup),
	    MPCC_TK_TEST_WITH(conv_integer_padding_contributes_nothing, setup),
	    MPCC_TK_TEST_WITH(per_axis_scale_before_opset_13_is_invalid, setup),
	    MPCC_TK_TEST_WITH(float_zero_point_of_matmul_integer_is_invalid, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
