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
#include <string.h>

#include "ir/ir.h"
#include "testkit.h"

/* Adam and Momentum need the ai.onnx.preview.training domain imported (version 1). */
static int
setup(void **state)
{
	return mpcc_tk_setup_opsets(state, 17, 1);
}

static void
topk_largest_orders_ties_by_lower_index(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {3, 1, 3, 2, 5, /**/ 0, 0, 0, -1, 0};
	const int64_t kk[] = {3};
	int32_t in[2] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 5}, xs),
	                 mpcc_tk_const(f, "k", MPCC_DTYPE_I64, 1, (int64_t[]){1}, kk)};
	int32_t out[2];
	mpcc_tk_node_opset(f, MPCC_OP_TOPK, 11, NULL, 2, in, 2, out);
	mpcc_tk_run_ok(f);
	const float *v = mpcc_tk_result(f, out[0], MPCC_DTYPE_F32, 2, (int64_t[]){2, 3});
	const int64_t *i = mpcc_tk_result(f, out[1], MPCC_DTYPE_I64, 2, (int64_t[]){2, 3});
	mpcc_tk_assert_near(v, (float[]){5, 3, 3, 0, 0, 0}, 6, 0);
	mpcc_tk_assert_ints(i, (int64_t[]){4, 0, 2, 0, 1, 2}, 6);
}

static void
topk_smallest_along_axis_zero(void **state)
{
	mpcc_tk *f = *state;
	const int32_t xs[] = {4, 1, 2, 1, 4, 0};
	const int64_t kk[] = {2};
	int32_t in[2] = {mpcc_tk_const(f, "x", MPCC_DTYPE_I32, 2, (int64_t[]){3, 2}, xs),
	                 mpcc_tk_const(f, "k", MPCC_DTYPE_I64, 1, (int64_t[]){1}, kk)};
	int32_t out[2];
	int32_t n = mpcc_tk_node_opset(f, MPCC_OP_TOPK, 11, NULL, 2, in, 2, out);
	mpcc_tk_attr_int(f, n, "axis", 0);
	mpcc_tk_attr_int(f, n, "largest", 0);
	mpcc_tk_run_ok(f);
	const int32_t *v = mpcc_tk_result(f, out[0], MPCC_DTYPE_I32, 2, (int64_t[]){2, 2});
	const int64_t *i = mpcc_tk_result(f, out[1], MPCC_DTYPE_I64, 2, (int64_t[]){2, 2});
	/* column 0: 4,2,4 -> 2@1, 4@0; column 1: 1,1,0 -> 0@2, 1@0 */
	assert_int_equal(v[0], 2);
	assert_int_equal(v[1], 0);
	assert_int_equal(v[2], 4);
	assert_int_equal(v[3], 1);
	mpcc_tk_assert_ints(i, (int64_t[]){1, 2, 0, 0}, 4);
}

static void
topk_rejects_k_beyond_the_axis(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {1, 2};
	const int64_t kk[] = {3};
	int32_t in[2] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 1, (int64_t[]){2}, xs),
	                 mpcc_tk_const(f, "k", MPCC_DTYPE_I64, 1, (int64_t[]){1}, kk)};
	int32_t out[2];
	mpcc_tk_node_opset(f, MPCC_OP_TOPK, 11, NULL, 2, in, 2, out);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "k = 3"));
}

static void
adam_one_step_matches_the_hand_computation(void **state)
{
	mpcc_tk *f = *state;
	const float r[] = {0.1f}, x[] = {1.0f, 2.0f}, gr[] = {-1.0f, 0.5f};
	const float v[] = {0.5f, 0.0f}, h[] = {0.25f, 1.0f};
	const int64_t t[] = {2};
	int64_t d2[] = {2};
	int32_t in[6] = {mpcc_tk_const(f, "R", MPCC_DTYPE_F32, 0, NULL, r),
	                 mpcc_tk_const(f, "T", MPCC_DTYPE_I64, 0, NULL, t),
	                 mpcc_tk_const(f, "X", MPCC_DTYPE_F32, 1, d2, x),
	                 mpcc_tk_const(f, "G", MPCC_DTYPE_F32, 1, d2, gr),
	                 mpcc_tk_const(f, "V", MPCC_DTYPE_F32, 1, d2, v),
	                 mpcc_tk_const(f, "H", MPCC_DTYPE_F32, 1, d2, h)};
	int32_t out[3];
	int32_t n = mpcc_tk_node_opset(f, MPCC_OP_ADAM, 1, NULL, 6, in, 3, out);
	mpcc_tk_attr_float(f, n, "alpha", 0.5f);
	mpcc_tk_attr_float(f, n, "beta", 0.75f);
	mpcc_tk_attr_float(f, n, "epsilon", 0.0f);
	mpcc_tk_run_ok(f);
	/*
	 * v' = 0.5 v + 0.5 g = {-0.25, 0.25}; h' = 0.75 h + 0.25 g^2 = {0.4375, 0.8125};
	 * t = 2: r' = 0.1 * sqrt(1 - 0.75^2) / (1 - 0.5^2) = 0.1 * sqrt(0.4375) / 0.75;
	 * x' = x - r' v' / sqrt(h').
	 */
	double rr = 0.1 * sqrt(0.4375) / 0.75;
	float want_x[] = {(float)(1.0 + rr * 0.25 / sqrt(0.4375)),
	                  (float)(2.0 - rr * 0.25 / sqrt(0.8125))};
	int64_t d[] = {2};
	mpcc_tk_assert_near(mpcc_tk_result(f, out[0], MPCC_DTYPE_F32, 1, d), want_x, 2, 1e-6f);
	mpcc_tk_assert_near(mpcc_tk_result(f, out[1], MPCC_DTYPE_F32, 1, d),
	                    (float[]){-0.25f, 0.25f}, 2, 1e-7f);
	mpcc_tk_assert_near(mpcc_tk_result(f, out[2], MPCC_DTYPE_F32, 1, d),
	                    (float[]){0.4375f, 0.8125f}, 2, 1e-7f);
}

static void
momentum_requires_its_attributes(void **state)
{
	mpcc_tk *f = *state;
	const float r[] = {0.1f}, x[] = {1.0f}, gr[] = {1.0f}, v[] = {0.0f};
	const int64_t t[] = {0};
	int64_t d1[] = {1};
	int32_t in[5] = {mpcc_tk_const(f, "R", MPCC_DTYPE_F32, 0, NULL, r),
	                 mpcc_tk_const(f, "T", MPCC_DTYPE_I64, 0, NULL, t),
	                 mpcc_tk_const(f, "X", MPCC_DTYPE_F32, 1, d1, x),
	                 mpcc_tk_const(f, "G", MPCC_DTYPE_F32, 1, d1, gr),
	                 mpcc_tk_const(f, "V", MPCC_DTYPE_F32, 1, d1, v)};
	int32_t out[2];
	int32_t n = mpcc_tk_node_opset(f, MPCC_OP_MOMENTUM, 1, NULL, 5, in, 2, out);
	mpcc_tk_attr_float(f, n, "alpha", 0.9f);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "beta"));
}

static void
compress_along_an_axis_and_flattened(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {1, 2, 3, 4, 5, 6};
	const uint8_t cond_ax[] = {1, 0, 1}, cond_flat[] = {0, 1, 0, 1, 1};
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, xs);
	int32_t c1 = mpcc_tk_const(f, "c1", MPCC_DTYPE_BOOL, 1, (int64_t[]){3}, cond_ax);
	int32_t c2 = mpcc_tk_const(f, "c2", MPCC_DTYPE_BOOL, 1, (int64_t[]){5}, cond_flat);
	int32_t y1, y2;
	int32_t n =
	    mpcc_tk_node_opset(f, MPCC_OP_COMPRESS, 11, NULL, 2, (int32_t[]){x, c1}, 1, &y1);
	mpcc_tk_attr_int(f, n, "axis", -1);
	mpcc_tk_node_opset(f, MPCC_OP_COMPRESS, 11, NULL, 2, (int32_t[]){x, c2}, 1, &y2);
	mpcc_tk_run_ok(f);
	mpcc_tk_assert_near(mpcc_tk_result(f, y1, MPCC_DTYPE_F32, 2, (int64_t[]){2, 2}),
	                    (float[]){1, 3, 4, 6}, 4, 0);
	mpcc_tk_assert_near(mpcc_tk_result(f, y2, MPCC_DTYPE_F32, 1, (int64_t[]){3}),
	                    (float[]){2, 4, 5}, 3, 0);
}

static void
compress_rejects_a_condition_longer_than_the_axis(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {1, 2};
	const uint8_t cond[] = {1, 0, 1};
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 1, (int64_t[]){2}, xs);
	int32_t c = mpcc_tk_const(f, "c", MPCC_DTYPE_BOOL, 1, (int64_t[]){3}, cond);
	int32_t y;
	int32_t n = mpcc_tk_node_opset(f, MPCC_OP_COMPRESS, 11, NULL, 2, (int32_t[]){x, c}, 1, &y);
	mpcc_tk_attr_int(f, n, "axis", 0);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_INVALID);
}

static void
det_pivots_and_flips_the_sign(void **state)
{
	mpcc_tk *f = *state;
	/* [[0, 2], [3, 1]] needs a row swap: det = -6; [[1, 2], [2, 4]] is singular */
	const float xs[] = {0, 2, 3, 1, 1, 2, 2, 4};
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 3, (int64_t[]){2, 2, 2}, xs);
	const float x3[] = {0, 1, 2, 1, 0, 3, 4, -3, 8};
	int32_t x3v = mpcc_tk_const(f, "x3", MPCC_DTYPE_F32, 2, (int64_t[]){3, 3}, x3);
	int32_t y, y3;
	mpcc_tk_node_opset(f, MPCC_OP_DET, 17, NULL, 1, &x, 1, &y);
	mpcc_tk_node_opset(f, MPCC_OP_DET, 17, NULL, 1, &x3v, 1, &y3);
	mpcc_tk_run_ok(f);
	mpcc_tk_assert_near(mpcc_tk_result(f, y, MPCC_DTYPE_F32, 1, (int64_t[]){2}),
	                    (float[]){-6, 0}, 2, 1e-5f);
	/* 0(0 + 9) - 1(8 - 12) + 2(-3 - 0) = -2 */
	mpcc_tk_assert_near(mpcc_tk_result(f, y3, MPCC_DTYPE_F32, 0, NULL), (float[]){-2}, 1,
	                    1e-5f);
}

static void
maxunpool_scatters_into_zeros(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {1, 2};
	const int64_t is[] = {3, 0};
	int32_t in[2] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 4, (int64_t[]){1, 1, 1, 2}, xs),
	                 mpcc_tk_const(f, "i", MPCC_DTYPE_I64, 4, (int64_t[]){1, 1, 1, 2}, is)};
	int32_t y;
	int32_t n = mpcc_tk_node_opset(f, MPCC_OP_MAXUNPOOL, 11, NULL, 2, in, 1, &y);
	mpcc_tk_attr_ints(f, n, "kernel_shape", 2, (int64_t[]){1, 2});
	mpcc_tk_attr_ints(f, n, "strides", 2, (int64_t[]){1, 2});
	mpcc_tk_run_ok(f);
	mpcc_tk_assert_near(mpcc_tk_result(f, y, MPCC_DTYPE_F32, 4, (int64_t[]){1, 1, 1, 4}),
	                    (float[]){2, 0, 0, 1}, 4, 0);
}

static void
gridsample_bilinear_reads_zeros_outside(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {1, 2, 3, 4};
	/* align_corners = 0 on a 2x2 image: -0.5 and 0.5 are pixel centres,
	 * 0 is halfway between, -1.5 is a pixel left of the edge (all zeros) */
	const float gr[] = {-0.5f, -0.5f, 0, -0.5f, 0, 0, -2.5f, 0.5f};
	int32_t in[2] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 4, (int64_t[]){1, 1, 2, 2}, xs),
	                 mpcc_tk_const(f, "g", MPCC_DTYPE_F32, 4, (int64_t[]){1, 1, 4, 2}, gr)};
	int32_t y;
	mpcc_tk_node_opset(f, MPCC_OP_GRIDSAMPLE, 16, NULL, 2, in, 1, &y);
	mpcc_tk_run_ok(f);
	mpcc_tk_assert_near(mpcc_tk_result(f, y, MPCC_DTYPE_F32, 4, (int64_t[]){1, 1, 1, 4}),
	                    (float[]){1, 1.5f, 2.5f, 0}, 4, 1e-6f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    MPCC_TK_TEST_WITH(topk_largest_orders_ties_by_lower_index, setup),
	    MPCC_TK_TEST_WITH(topk_smallest_along_axis_zero, setup),
	    MPCC_TK_TEST_WITH(topk_rejects_k_beyond_the_axis, setup),
	    MPCC_TK_TEST_WITH(adam_one_step_matches_the_hand_computation, setup),
	    MPCC_TK_TEST_WITH(momentum_requires_its_attributes, setup),
	    MPCC_TK_TEST_WITH(compress_along_an_axis_and_flattened, setup),
	    MPCC_TK_TEST_WITH(compress_rejects_a_condition_longer_than_the_axis, setup),
	    MPCC_TK_TEST_WITH(det_pivots_and_flips_the_sign, setup),
	    MPCC_TK_TEST_WITH(maxunpool_scatters_into_zeros, setup),
	    MPCC_TK_TEST_WITH(gridsample_bilinear_reads_zeros_outside, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
