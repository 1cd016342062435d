/*
 * test_ops_elementwise.c - the elementwise family end to end through the
 * pass pipeline: shape functions, lowering and the reference interpreter.
 *
 * Each test builds a tiny graph whose inputs are all constants, runs
 * mpcc_run_pipeline so that constant folding evaluates every node through
 * its lowering, and reads the folded graph outputs back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "ir/ir.h"
#include "testkit.h"

static void
add_broadcasts_column_against_row(void **state)
{
	mpcc_tk *f = *state;
	const float a[] = {1, 2};
	const float b[] = {10, 20, 30};
	int32_t in[2] = {
	    mpcc_tk_const(f, "a", MPCC_DTYPE_F32, 2, (int64_t[]){2, 1}, a),
	    mpcc_tk_const(f, "b", MPCC_DTYPE_F32, 1, (int64_t[]){3}, b),
	};
	int32_t y = mpcc_tk_apply(f, MPCC_OP_ADD, "add", 2, in, NULL);
	mpcc_tk_run_ok(f);
	const mpcc_value *yv = &f->g->values[y];
	assert_int_equal(yv->rank, 2);
	assert_int_equal(yv->dims[0], 2);
	assert_int_equal(yv->dims[1], 3);
	const float *r = mpcc_tk_result_numel(f, y, MPCC_DTYPE_F32, 6);
	const float want[] = {11, 21, 31, 12, 22, 32};
	for (int i = 0; i < 6; i++)
		assert_float_equal(r[i], want[i], 0);
}

static void
integer_div_truncates_toward_zero(void **state)
{
	mpcc_tk *f = *state;
	const int32_t a[] = {-7, 7, -7, 7, 0};
	const int32_t b[] = {2, 2, -2, -2, 3};
	const uint8_t ua[] = {200, 7};
	const uint8_t ub[] = {7, 200};
	int32_t in[2] = {
	    mpcc_tk_const(f, "a", MPCC_DTYPE_I32, 1, (int64_t[]){5}, a),
	    mpcc_tk_const(f, "b", MPCC_DTYPE_I32, 1, (int64_t[]){5}, b),
	};
	int32_t uin[2] = {
	    mpcc_tk_const(f, "ua", MPCC_DTYPE_U8, 1, (int64_t[]){2}, ua),
	    mpcc_tk_const(f, "ub", MPCC_DTYPE_U8, 1, (int64_t[]){2}, ub),
	};
	int32_t y = mpcc_tk_apply(f, MPCC_OP_DIV, "div", 2, in, NULL);
	int32_t uy = mpcc_tk_apply(f, MPCC_OP_DIV, "udiv", 2, uin, NULL);
	mpcc_tk_run_ok(f);
	const int32_t *r = mpcc_tk_result_numel(f, y, MPCC_DTYPE_I32, 5);
	const int32_t want[] = {-3, 3, 3, -3, 0};
	for (int i = 0; i < 5; i++)
		assert_int_equal(r[i], want[i]);
	const uint8_t *ur = mpcc_tk_result_numel(f, uy, MPCC_DTYPE_U8, 2);
	assert_int_equal(ur[0], 28);
	assert_int_equal(ur[1], 0);
}

static void
mod_takes_divisor_sign_and_fmod_the_dividend_sign(void **state)
{
	mpcc_tk *f = *state;
	const int64_t a[] = {-4, 7, 5, 4, -7, 8};
	const int64_t b[] = {2, -3, 8, -2, 3, 5};
	const float fa[] = {-4.5f, 7.5f};
	const float fb[] = {2.0f, -2.0f};
	int32_t in[2] = {
	    mpcc_tk_const(f, "a", MPCC_DTYPE_I64, 1, (int64_t[]){6}, a),
	    mpcc_tk_const(f, "b", MPCC_DTYPE_I64, 1, (int64_t[]){6}, b),
	};
	int32_t fin[2] = {
	    mpcc_tk_const(f, "fa", MPCC_DTYPE_F32, 1, (int64_t[]){2}, fa),
	    mpcc_tk_const(f, "fb", MPCC_DTYPE_F32, 1, (int64_t[]){2}, fb),
	};
	int32_t n_fmod, n_ffmod;
	int32_t y = mpcc_tk_apply(f, MPCC_OP_MOD, "mod", 2, in, NULL);
	int32_t yf = mpcc_tk_apply(f, MPCC_OP_MOD, "fmod", 2, in, &n_fmod);
	int32_t yff = mpcc_tk_apply(f, MPCC_OP_MOD, "float_fmod", 2, fin, &n_ffmod);
	mpcc_tk_attr_int(f, n_fmod, "fmod", 1);
	mpcc_tk_attr_int(f, n_ffmod, "fmod", 1);
	mpcc_tk_run_ok(f);
	const int64_t *r = mpcc_tk_result_numel(f, y, MPCC_DTYPE_I64, 6);
	const int64_t want[] = {0, -2, 5, 0, 2, 3};
	const int64_t *rf = mpcc_tk_result_numel(f, yf, MPCC_DTYPE_I64, 6);
	const int64_t want_f[] = {0, 1, 5, 0, -1, 3};
	for (int i = 0; i < 6; i++) {
		assert_int_equal(r[i], want[i]);
		assert_int_equal(rf[i], want_f[i]);
	}
	const float *rff = mpcc_tk_result_numel(f, yff, MPCC_DTYPE_F32, 2);
	assert_float_equal(rff[0], -0.5f, 0);
	assert_float_equal(rff[1], 1.5f, 0);
}

static void
float_mod_without_fmod_is_rejected(void **state)
{
	mpcc_tk *f = *state;
	const float a[] = {1, 2};
	int32_t in[2] = {
	    mpcc_tk_const(f, "a", MPCC_DTYPE_F32, 1, (int64_t[]){2}, a),
	    mpcc_tk_const(f, "b", MPCC_DTYPE_F32, 1, (int64_t[]){2}, a),
	};
	mpcc_tk_apply(f, MPCC_OP_MOD, "bad_mod", 2, in, NULL);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "bad_mod"));
}

static void
clip_applies_present_bounds_only(void **state)
{
	mpcc_tk *f = *state;
	const float x[] = {-3, -0.5f, 0.5f, 3};
	const float lo = -1, hi = 1;
	int32_t xv = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 1, (int64_t[]){4}, x);
	int32_t lov = mpcc_tk_const(f, "lo", MPCC_DTYPE_F32, 0, NULL, &lo);
	int32_t hiv = mpcc_tk_const(f, "hi", MPCC_DTYPE_F32, 1, (int64_t[]){1}, &hi);
	int32_t both = mpcc_tk_apply(f, MPCC_OP_CLIP, "both", 3, (int32_t[]){xv, lov, hiv}, NULL);
	int32_t max_only =
	    mpcc_tk_apply(f, MPCC_OP_CLIP, "max_only", 3, (int32_t[]){xv, MPCC_NONE, hiv}, NULL);
	int32_t none = mpcc_tk_apply(f, MPCC_OP_CLIP, "none", 1, &xv, NULL);
	int32_t n_old;
	int32_t old = mpcc_tk_apply(f, MPCC_OP_CLIP, "old", 1, &xv, &n_old);
	f->g->nodes[n_old].opset = 6;
	mpcc_tk_attr_float(f, n_old, "min", 0.0f);
	mpcc_tk_run_ok(f);
	const float *rb = mpcc_tk_result_numel(f, both, MPCC_DTYPE_F32, 4);
	const float *rm = mpcc_tk_result_numel(f, max_only, MPCC_DTYPE_F32, 4);
	const float *rn = mpcc_tk_result_numel(f, none, MPCC_DTYPE_F32, 4);
	const float *ro = mpcc_tk_result_numel(f, old, MPCC_DTYPE_F32, 4);
	const float want_b[] = {-1, -0.5f, 0.5f, 1};
	const float want_m[] = {-3, -0.5f, 0.5f, 1};
	const float want_o[] = {0, 0, 0.5f, 3};
	for (int i = 0; i < 4; i++) {
		assert_float_equal(rb[i], want_b[i], 0);
		assert_float_equal(rm[i], want_m[i], 0);
		assert_float_equal(rn[i], x[i], 0);
		assert_float_equal(ro[i], want_o[i], 0);
	}
}

static void
cast_f32_to_f16_rounds_to_nearest_even(void **state)
{
	mpcc_tk *f = *state;
	/* ulp of f16 at 1 is 2^-10: ties go to the even mantissa; 65520 overflows */
	const float x[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-11f + 0x1p-20f,
	                   65520.0f, -2.5f};
	int32_t xv = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 1, (int64_t[]){5}, x);
	int32_t n;
	int32_t y = mpcc_tk_apply(f, MPCC_OP_CAST, "cast", 1, &xv, &n);
	mpcc_tk_attr_int(f, n, "to", 10); /* FLOAT16 */
	mpcc_tk_run_ok(f);
	const uint16_t *r = mpcc_tk_result_numel(f, y, MPCC_DTYPE_F16, 5);
	assert_int_equal(r[0], 0x3c00);
	assert_int_equal(r[1], 0x3c02);
	assert_int_equal(r[2], 0x3c01);
	assert_int_equal(r[3], 0x7c00);
	assert_int_equal(r[4], 0xc100);
}

static void
cast_to_string_is_unsupported(void **state)
{
	mpcc_tk *f = *state;
	const float x[] = {1};
	int32_t xv = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 1, (int64_t[]){1}, x);
	int32_t n;
	mpcc_tk_apply(f, MPCC_OP_CAST, "to_string", 1, &xv, &n);
	mpcc_tk_attr_int(f, n, "to", 8);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "to_string"));
}

static void
where_broadcasts_all_three_inputs(void **state)
{
	mpcc_tk *f = *state;
	const uint8_t c[] = {1, 0};
	const int32_t x[] = {1, 2, 3};
	const int32_t y = -1;
	int32_t in[3] = {
	    mpcc_tk_const(f, "c", MPCC_DTYPE_BOOL, 2, (int64_t[]){2, 1}, c),
	    mpcc_tk_const(f, "x", MPCC_DTYPE_I32, 1, (int64_t[]){3}, x),
	    mpcc_tk_const(f, "y", MPCC_DTYPE_I32, 0, NULL, &y),
	};
	int32_t out = mpcc_tk_apply(f, MPCC_OP_WHERE, "where", 3, in, NULL);
	mpcc_tk_run_ok(f);
	const int32_t *r = mpcc_tk_result_numel(f, out, MPCC_DTYPE_I32, 6);
	const int32_t want[] = {1, 2, 3, -1, -1, -1};
	for (int i = 0; i < 6; i++)
		assert_int_equal(r[i], want[i]);
}

static void
comparisons_give_bool(void **state)
{
	mpcc_tk *f = *state;
	const uint16_t a[] = {0x3c00, 0x4000}; /* f16 1, 2 */
	const uint16_t b[] = {0x4000, 0x4000};
	int32_t in[2] = {
	    mpcc_tk_const(f, "a", MPCC_DTYPE_F16, 1, (int64_t[]){2}, a),
	    mpcc_tk_const(f, "b", MPCC_DTYPE_F16, 1, (int64_t[]){2}, b),
	};
	int32_t lt = mpcc_tk_apply(f, MPCC_OP_LESS, "less", 2, in, NULL);
	int32_t eq = mpcc_tk_apply(f, MPCC_OP_EQUAL, "equal", 2, in, NULL);
	mpcc_tk_run_ok(f);
	const uint8_t *rl = mpcc_tk_result_numel(f, lt, MPCC_DTYPE_BOOL, 2);
	const uint8_t *re = mpcc_tk_result_numel(f, eq, MPCC_DTYPE_BOOL, 2);
	assert_int_equal(rl[0], 1);
	assert_int_equal(rl[1], 0);
	assert_int_equal(re[0], 0);
	assert_int_equal(re[1], 1);
}

static void
mean_of_three_broadcast_inputs(void **state)
{
	mpcc_tk *f = *state;
	const double a[] = {1, 2}, b[] = {3}, c[] = {5, 7};
	int32_t in[3] = {
	    mpcc_tk_const(f, "a", MPCC_DTYPE_F64, 1, (int64_t[]){2}, a),
	    mpcc_tk_const(f, "b", MPCC_DTYPE_F64, 1, (int64_t[]){1}, b),
	    mpcc_tk_const(f, "c", MPCC_DTYPE_F64, 1, (int64_t[]){2}, c),
	};
	int32_t y = mpcc_tk_apply(f, MPCC_OP_MEAN, "mean", 3, in, NULL);
	mpcc_tk_run_ok(f);
	const double *r = mpcc_tk_result_numel(f, y, MPCC_DTYPE_F64, 2);
	assert_float_equal(r[0], 3.0, 0);
	assert_float_equal(r[1], 4.0, 0);
}

static void
incompatible_broadcast_is_rejected_naming_the_node(void **state)
{
	mpcc_tk *f = *state;
	const float a[6] = {0}, b[4] = {0};
	int32_t in[2] = {
	    mpcc_tk_const(f, "a", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, a),
	    mpcc_tk_const(f, "b", MPCC_DTYPE_F32, 1, (int64_t[]){4}, b),
	};
	mpcc_tk_apply(f, MPCC_OP_MUL, "bad_mul", 2, in, NULL);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "bad_mul"));
	assert_non_null(strstr(f->d.msg, "[2,3]"));
	assert_non_null(strstr(f->d.msg, "[4]"));
}

static void
legacy_broadcast_as_a_suffix_is_numpy_broadcast(void **state)
{
	mpcc_tk *f = *state;
	const float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30};
	int32_t in[2] = {
	    mpcc_tk_const(f, "a", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, a),
	    mpcc_tk_const(f, "b", MPCC_DTYPE_F32, 1, (int64_t[]){3}, b),
	};
	int32_t n;
	int32_t y = mpcc_tk_apply(f, MPCC_OP_ADD, "old_add", 2, in, &n);
	f->g->nodes[n].opset = 6;
	mpcc_tk_attr_int(f, n, "broadcast", 1);
	mpcc_tk_run_ok(f);
	const float *r = mpcc_tk_result_numel(f, y, MPCC_DTYPE_F32, 6);
	const float want[] = {11, 22, 33, 14, 25, 36};
	for (int i = 0; i < 6; i++)
		assert_float_equal(r[i], want[i], 0);
}

static void
legacy_broadcast_along_an_axis_is_unsupported(void **state)
{
	mpcc_tk *f = *state;
	const float a[6] = {0}, b[2] = {0};
	int32_t in[2] = {
	    mpcc_tk_const(f, "a", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, a),
	    mpcc_tk_const(f, "b", MPCC_DTYPE_F32, 1, (int64_t[]){2}, b),
	};
	int32_t n;
	mpcc_tk_apply(f, MPCC_OP_ADD, "old_add_axis", 2, in, &n);
	f->g->nodes[n].opset = 6;
	mpcc_tk_attr_int(f, n, "broadcast", 1);
	mpcc_tk_attr_int(f, n, "axis", 0);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "old_add_axis"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    MPCC_TK_TEST(add_broadcasts_column_against_row),
	    MPCC_TK_TEST(integer_div_truncates_toward_zero),
	    MPCC_TK_TEST(mod_takes_divisor_sign_and_fmod_the_dividend_sign),
	    MPCC_TK_TEST(float_mod_without_fmod_is_rejected),
	    MPCC_TK_TEST(clip_applies_present_bounds_only),
	    MPCC_TK_TEST(cast_f32_to_f16_rounds_to_nearest_even),
	    MPCC_TK_TEST(cast_to_string_is_unsupported),
	    MPCC_TK_TEST(where_broadcasts_all_three_inputs),
	    MPCC_TK_TEST(comparisons_give_bool),
	    MPCC_TK_TEST(mean_of_three_broadcast_inputs),
	    MPCC_TK_TEST(incompatible_broadcast_is_rejected_naming_the_node),
	    MPCC_TK_TEST(legacy_broadcast_as_a_suffix_is_numpy_broadcast),
	    MPCC_TK_TEST(legacy_broadcast_along_an_axis_is_unsupported),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
