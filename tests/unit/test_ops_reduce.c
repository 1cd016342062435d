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
#include <string.h>

#include "ir/ir.h"
#include "testkit.h"

static const float x23[] = {1, 2, 3, 4, 5, 6};

static void
reduce_sum_keeps_or_drops_the_reduced_axis(void **state)
{
	mpcc_tk *f = *state;
	const int64_t axes[] = {1};
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, x23);
	int32_t a = mpcc_tk_const(f, "axes", MPCC_DTYPE_I64, 1, (int64_t[]){1}, axes);
	int32_t y_keep, y_drop;
	mpcc_tk_node(f, MPCC_OP_REDUCESUM, "sum_keep", 2, (int32_t[]){x, a}, 1, &y_keep);
	int32_t n =
	    mpcc_tk_node(f, MPCC_OP_REDUCESUM, "sum_drop", 2, (int32_t[]){x, a}, 1, &y_drop);
	mpcc_tk_attr_int(f, n, "keepdims", 0);
	mpcc_tk_run_ok(f);
	const float *k = mpcc_tk_result(f, y_keep, MPCC_DTYPE_F32, 2, (int64_t[]){2, 1});
	const float *d = mpcc_tk_result(f, y_drop, MPCC_DTYPE_F32, 1, (int64_t[]){2});
	mpcc_tk_assert_near(k, (float[]){6, 15}, 2, 0);
	mpcc_tk_assert_near(d, (float[]){6, 15}, 2, 0);
}

static void
reduce_mean_over_two_axes(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {1, 2, 3, 4, 5, 6, 7, 8};
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 3, (int64_t[]){2, 2, 2}, xs);
	int32_t y;
	int32_t n = mpcc_tk_node(f, MPCC_OP_REDUCEMEAN, "mean", 1, &x, 1, &y);
	mpcc_tk_attr_ints(f, n, "axes", 2, (int64_t[]){0, -1});
	mpcc_tk_run_ok(f);
	const float *r = mpcc_tk_result(f, y, MPCC_DTYPE_F32, 3, (int64_t[]){1, 2, 1});
	mpcc_tk_assert_near(r, (float[]){3.5f, 5.5f}, 2, 1e-6f);
}

static void
argmax_select_last_index_picks_the_last_tie(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {1, 3, 3, 5, 5, 2};
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, xs);
	int32_t y_first, y_last;
	int32_t n1 = mpcc_tk_node(f, MPCC_OP_ARGMAX, "first", 1, &x, 1, &y_first);
	mpcc_tk_attr_int(f, n1, "axis", 1);
	mpcc_tk_attr_int(f, n1, "keepdims", 0);
	int32_t n2 = mpcc_tk_node(f, MPCC_OP_ARGMAX, "last", 1, &x, 1, &y_last);
	mpcc_tk_attr_int(f, n2, "axis", 1);
	mpcc_tk_attr_int(f, n2, "keepdims", 0);
	mpcc_tk_attr_int(f, n2, "select_last_index", 1);
	mpcc_tk_run_ok(f);
	const int64_t *a = mpcc_tk_result(f, y_first, MPCC_DTYPE_I64, 1, (int64_t[]){2});
	const int64_t *b = mpcc_tk_result(f, y_last, MPCC_DTYPE_I64, 1, (int64_t[]){2});
	assert_int_equal(a[0], 1);
	assert_int_equal(a[1], 0);
	assert_int_equal(b[0], 2);
	assert_int_equal(b[1], 1);
}

static void
softmax_rows_sum_to_one(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {1, 2, 3, 0, 0, 0};
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, xs);
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_SOFTMAX, "softmax", 1, &x, 1, &y);
	mpcc_tk_run_ok(f);
	const float *r = mpcc_tk_result(f, y, MPCC_DTYPE_F32, 2, (int64_t[]){2, 3});
	const float want[] = {0.09003057f, 0.24472847f, 0.66524096f, 1 / 3.0f, 1 / 3.0f, 1 / 3.0f};
	mpcc_tk_assert_near(r, want, 6, 1e-6f);
	for (int i = 0; i < 2; i++)
		assert_true(fabsf(r[3 * i] + r[3 * i + 1] + r[3 * i + 2] - 1) < 1e-6f);
}

static void
layer_normalization_matches_hand_computed(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {1, 3, 2, 6};
	const float sc[] = {1, 2}, bs[] = {0, 1};
	int32_t in[3] = {
	    mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 2}, xs),
	    mpcc_tk_const(f, "scale", MPCC_DTYPE_F32, 1, (int64_t[]){2}, sc),
	    mpcc_tk_const(f, "bias", MPCC_DTYPE_F32, 1, (int64_t[]){2}, bs),
	};
	int32_t out[3];
	mpcc_tk_node(f, MPCC_OP_LAYERNORMALIZATION, "ln", 3, in, 3, out);
	mpcc_tk_run_ok(f);
	/* rows: mean 2 var 1, mean 4 var 4; epsilon 1e-5 */
	float i0 = 1 / sqrtf(1 + 1e-5f), i1 = 1 / sqrtf(4 + 1e-5f);
	const float want[] = {-i0, 2 * i0 + 1, -2 * i1, 2 * 2 * i1 + 1};
	mpcc_tk_assert_near(mpcc_tk_result(f, out[0], MPCC_DTYPE_F32, 2, (int64_t[]){2, 2}), want,
	                    4, 1e-6f);
	mpcc_tk_assert_near(mpcc_tk_result(f, out[1], MPCC_DTYPE_F32, 2, (int64_t[]){2, 1}),
	                    (float[]){2, 4}, 2, 1e-6f);
	mpcc_tk_assert_near(mpcc_tk_result(f, out[2], MPCC_DTYPE_F32, 2, (int64_t[]){2, 1}),
	                    (float[]){i0, i1}, 2, 1e-6f);
}

static void
non_constant_axes_are_unsupported_naming_the_node(void **state)
{
	mpcc_tk *f = *state;
	int32_t x = mpcc_tk_input(f, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3});
	int32_t a = mpcc_tk_input(f, "dyn_axes", MPCC_DTYPE_I64, 1, (int64_t[]){1});
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_REDUCESUM, "my_sum", 2, (int32_t[]){x, a}, 1, &y);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "my_sum"));
	assert_non_null(strstr(f->d.msg, "dyn_axes"));
}

static void
cumsum_exclusive_reverse_sums_the_later_elements(void **state)
{
	mpcc_tk *f = *state;
	const float xs[] = {1, 2, 3, 4};
	const int32_t axis = 0;
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 1, (int64_t[]){4}, xs);
	int32_t a = mpcc_tk_const(f, "axis", MPCC_DTYPE_I32, 0, NULL, &axis);
	int32_t y_plain, y_er;
	mpcc_tk_node(f, MPCC_OP_CUMSUM, "plain", 2, (int32_t[]){x, a}, 1, &y_plain);
	int32_t n = mpcc_tk_node(f, MPCC_OP_CUMSUM, "excl_rev", 2, (int32_t[]){x, a}, 1, &y_er);
	mpcc_tk_attr_int(f, n, "exclusive", 1);
	mpcc_tk_attr_int(f, n, "reverse", 1);
	mpcc_tk_run_ok(f);
	mpcc_tk_assert_near(mpcc_tk_result(f, y_plain, MPCC_DTYPE_F32, 1, (int64_t[]){4}),
	                    (float[]){1, 3, 6, 10}, 4, 0);
	mpcc_tk_assert_near(mpcc_tk_result(f, y_er, MPCC_DTYPE_F32, 1, (int64_t[]){4}),
	                    (float[]){9, 7, 4, 0}, 4, 0);
}

static void
empty_axes_reduce_all_unless_noop(void **state)
{
	mpcc_tk *f = *state;
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, x23);
	int32_t a = mpcc_tk_const(f, "axes", MPCC_DTYPE_I64, 1, (int64_t[]){0}, NULL);
	int32_t y_all, y_noop;
	mpcc_tk_node(f, MPCC_OP_REDUCESUM, "all", 2, (int32_t[]){x, a}, 1, &y_all);
	int32_t n = mpcc_tk_node(f, MPCC_OP_REDUCESUM, "noop", 2, (int32_t[]){x, a}, 1, &y_noop);
	mpcc_tk_attr_int(f, n, "noop_with_empty_axes", 1);
	mpcc_tk_run_ok(f);
	mpcc_tk_assert_near(mpcc_tk_result(f, y_all, MPCC_DTYPE_F32, 2, (int64_t[]){1, 1}),
	                    (float[]){21}, 1, 0);
	mpcc_tk_assert_near(mpcc_tk_result(f, y_noop, MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}), x23, 6,
	                    0);
}

static void
f16_reduce_sum_accumulates_in_f32(void **state)
{
	mpcc_tk *f = *state;
	/* 2048 + 1 + 1 + ... : each 1 alone would be lost in f16 (spacing 2 at 2048) */
	uint16_t xs[9];
	xs[0] = mpcc_f32_to_f16(2048);
	for (int i = 1; i < 9; i++)
		xs[i] = mpcc_f32_to_f16(1);
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F16, 1, (int64_t[]){9}, xs);
	int32_t y;
	mpcc_tk_node(f, MPCC_OP_REDUCESUM, "sum", 1, &x, 1, &y);
	mpcc_tk_run_ok(f);
	const uint16_t *r = mpcc_tk_result(f, y, MPCC_DTYPE_F16, 1, (int64_t[]){1});
	assert_true(mpcc_f16_to_f32(r[0]) == 2056.0f);
}

static void
nll_loss_mean_divides_by_applied_weights(void **state)
{
	mpcc_tk *f = *state;
	const float lp[] = {-1, -2, -3, -4, -5, -6};
	const int64_t t[] = {2, 1};
	const float w[] = {1, 2, 3};
	int32_t in[3] = {
	    mpcc_tk_const(f, "logp", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, lp),
	    mpcc_tk_const(f, "target", MPCC_DTYPE_I64, 1, (int64_t[]){2}, t),
	    mpcc_tk_const(f, "w", MPCC_DTYPE_F32, 1, (int64_t[]){3}, w),
	};
	int32_t y_mean, y_ign;
	mpcc_tk_node(f, MPCC_OP_NEGATIVELOGLIKELIHOODLOSS, "mean", 3, in, 1, &y_mean);
	int32_t n = mpcc_tk_node(f, MPCC_OP_NEGATIVELOGLIKELIHOODLOSS, "ign", 3, in, 1, &y_ign);
	mpcc_tk_attr_int(f, n, "ignore_index", 1);
	mpcc_tk_run_ok(f);
	/* (3 * 3 + 5 * 2) / (3 + 2); ignoring class 1 leaves 3 * 3 / 3 */
	mpcc_tk_assert_near(mpcc_tk_result(f, y_mean, MPCC_DTYPE_F32, 0, NULL), (float[]){3.8f}, 1,
	                    1e-6f);
	mpcc_tk_assert_near(mpcc_tk_result(f, y_ign, MPCC_DTYPE_F32, 0, NULL), (float[]){3}, 1,
	                    1e-6f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    MPCC_TK_TEST(reduce_sum_keeps_or_drops_the_reduced_axis),
	    MPCC_TK_TEST(reduce_mean_over_two_axes),
	    MPCC_TK_TEST(argmax_select_last_index_picks_the_last_tie),
	    MPCC_TK_TEST(softmax_rows_sum_to_one),
	    MPCC_TK_TEST(layer_normalization_matches_hand_computed),
	    MPCC_TK_TEST(non_constant_axes_are_unsupported_naming_the_node),
	    MPCC_TK_TEST(cumsum_exclusive_reverse_sums_the_later_elements),
	    MPCC_TK_TEST(empty_axes_reduce_all_unless_noop),
	    MPCC_TK_TEST(f16_reduce_sum_accumulates_in_f32),
	    MPCC_TK_TEST(nll_loss_mean_divides_by_applied_weights),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
