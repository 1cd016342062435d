/*
 * test_ops_movement.c - the data-movement family end to end through the
 * pass pipeline: shape functions, lowering and the reference interpreter.
 *
 * Each test builds a tiny graph whose inputs are constants, runs
 * mpcc_run_pipeline so that constant folding evaluates every node through
 * its lowering, and compares the folded output with values worked out by
 * hand (or by numpy, as noted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "ir/ir.h"
#include "testkit.h"

/* Runs the pipeline and checks output y: its shape and f32 contents. */
static void
expect_f32(mpcc_tk *f, int32_t y, int rank, const int64_t *dims, const float *want)
{
	mpcc_tk_run_ok(f);
	const float *got = mpcc_tk_result(f, y, MPCC_DTYPE_F32, rank, dims);
	for (int64_t i = 0; i < mpcc_value_numel(&f->g->values[y]); i++)
		assert_float_equal(got[i], want[i], 1e-6);
}

static const float iota12[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

static void
reshape_copies_zero_dims_and_infers_minus_one(void **state)
{
	mpcc_tk *f = *state;
	int64_t xd[3] = {2, 3, 2};
	int32_t in[2] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 3, xd, iota12),
	                 mpcc_tk_const_ints(f, "shape", 2, (int64_t[]){0, -1})};
	int32_t y = mpcc_tk_apply(f, MPCC_OP_RESHAPE, "r", 2, in, NULL);
	expect_f32(f, y, 2, (int64_t[]){2, 6}, iota12);
}

static void
transpose_default_reverses_dims(void **state)
{
	mpcc_tk *f = *state;
	int64_t xd[2] = {3, 4};
	int32_t x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, xd, iota12);
	int32_t y = mpcc_tk_apply(f, MPCC_OP_TRANSPOSE, "t", 1, &x, NULL);
	float want[12] = {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11};
	expect_f32(f, y, 2, (int64_t[]){4, 3}, want);
}

static void
transpose_follows_perm(void **state)
{
	mpcc_tk *f = *state;
	int64_t xd[3] = {2, 3, 2};
	int32_t n, x = mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 3, xd, iota12);
	int32_t y = mpcc_tk_apply(f, MPCC_OP_TRANSPOSE, "t", 1, &x, &n);
	mpcc_tk_attr_ints(f, n, "perm", 3, (int64_t[]){1, 0, 2});
	/* numpy: np.arange(12).reshape(2,3,2).transpose(1,0,2) */
	float want[12] = {0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11};
	expect_f32(f, y, 3, (int64_t[]){3, 2, 2}, want);
}

static void
slice_walks_backwards_with_negative_steps(void **state)
{
	mpcc_tk *f = *state;
	int64_t xd[2] = {3, 4};
	int32_t in[5] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, xd, iota12),
	                 mpcc_tk_const_ints(f, "starts", 2, (int64_t[]){-1, 10}),
	                 mpcc_tk_const_ints(f, "ends", 2, (int64_t[]){INT64_MIN, 0}),
	                 mpcc_tk_const_ints(f, "axes", 2, (int64_t[]){0, 1}),
	                 mpcc_tk_const_ints(f, "steps", 2, (int64_t[]){-2, -1})};
	int32_t y = mpcc_tk_apply(f, MPCC_OP_SLICE, "s", 5, in, NULL);
	/* numpy: x[-1::-2, 10:0:-1] */
	float want[6] = {11, 10, 9, 3, 2, 1};
	expect_f32(f, y, 2, (int64_t[]){2, 3}, want);
}

static void
gather_wraps_negative_indices(void **state)
{
	mpcc_tk *f = *state;
	int64_t xd[2] = {3, 4};
	int32_t n, in[2] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, xd, iota12),
	                    mpcc_tk_const_ints(f, "idx", 2, (int64_t[]){-1, 0})};
	int32_t y = mpcc_tk_apply(f, MPCC_OP_GATHER, "g", 2, in, &n);
	mpcc_tk_attr_int(f, n, "axis", 1);
	float want[6] = {3, 0, 7, 4, 11, 8};
	expect_f32(f, y, 2, (int64_t[]){3, 2}, want);
}

static void
concat_places_inputs_along_the_axis(void **state)
{
	mpcc_tk *f = *state;
	int64_t ad[2] = {2, 1}, bd[2] = {2, 2};
	float a[2] = {100, 200}, b[4] = {1, 2, 3, 4};
	int32_t n, in[2] = {mpcc_tk_const(f, "a", MPCC_DTYPE_F32, 2, ad, a),
	                    mpcc_tk_const(f, "b", MPCC_DTYPE_F32, 2, bd, b)};
	int32_t y = mpcc_tk_apply(f, MPCC_OP_CONCAT, "c", 2, in, &n);
	mpcc_tk_attr_int(f, n, "axis", -1);
	float want[6] = {100, 1, 2, 200, 3, 4};
	expect_f32(f, y, 2, (int64_t[]){2, 3}, want);
}

static void
pad_reflect_mirrors_without_the_edge(void **state)
{
	mpcc_tk *f = *state;
	int64_t xd[2] = {2, 3};
	int32_t n, in[2] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 2, xd, iota12),
	                    mpcc_tk_const_ints(f, "pads", 4, (int64_t[]){0, 2, 0, 1})};
	int32_t y = mpcc_tk_apply(f, MPCC_OP_PAD, "p", 2, in, &n);
	mpcc_tk_attr_string(f, n, "mode", "reflect");
	/* numpy: np.pad(x, ((0,0),(2,1)), 'reflect') */
	float want[12] = {2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4};
	expect_f32(f, y, 2, (int64_t[]){2, 6}, want);
}

static int32_t
resize_node(mpcc_tk *f, const char *mode, int32_t *out_node)
{
	int64_t xd[4] = {1, 1, 2, 2}, sd[1] = {4};
	float x[4] = {1, 2, 3, 4}, scales[4] = {1, 1, 2, 2};
	int32_t in[3] = {mpcc_tk_const(f, "x", MPCC_DTYPE_F32, 4, xd, x), MPCC_NONE,
	                 mpcc_tk_const(f, "scales", MPCC_DTYPE_F32, 1, sd, scales)};
	int32_t y = mpcc_tk_apply(f, MPCC_OP_RESIZE, "rs", 3, in, out_node);
	mpcc_tk_attr_string(f, *out_node, "mode", mode);
	return y;
}

static void
resize_nearest_repeats_pixels(void **state)
{
	mpcc_tk *f = *state;
	int32_t n, y = resize_node(f, "nearest", &n);
	float want[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
	expect_f32(f, y, 4, (int64_t[]){1, 1, 4, 4}, want);
}

static void
resize_linear_half_pixel_interpolates(void **state)
{
	mpcc_tk *f = *state;
	int32_t n, y = resize_node(f, "linear", &n);
	/* The ONNX reference (test_resize_upsample_scales_linear). */
	float want[16] = {1.0f, 1.25f, 1.75f, 2.0f, 1.5f, 1.75f, 2.25f, 2.5f,
	                  2.5f, 2.75f, 3.25f, 3.5f, 3.0f, 3.25f, 3.75f, 4.0f};
	expect_f32(f, y, 4, (int64_t[]){1, 1, 4, 4}, want);
}

static void
non_constant_shape_input_is_unsupported(void **state)
{
	mpcc_tk *f = *state;
	int32_t in[2] = {mpcc_tk_input(f, "x", MPCC_DTYPE_F32, 1, (int64_t[]){6}),
	                 mpcc_tk_input(f, "s", MPCC_DTYPE_I64, 1, (int64_t[]){2})};
	mpcc_tk_apply(f, MPCC_OP_RESHAPE, "my_reshape", 2, in, NULL);
	assert_int_equal(mpcc_tk_run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "my_reshape"));
	assert_non_null(strstr(f->d.msg, "compile time"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    MPCC_TK_TEST(reshape_copies_zero_dims_and_infers_minus_one),
	    MPCC_TK_TEST(transpose_default_reverses_dims),
	    MPCC_TK_TEST(transpose_follows_perm),
	    MPCC_TK_TEST(slice_walks_backwards_with_negative_steps),
	    MPCC_TK_TEST(gather_wraps_negative_indices),
	    MPCC_TK_TEST(concat_places_inputs_along_the_axis),
	    MPCC_TK_TEST(pad_reflect_mirrors_without_the_edge),
	    MPCC_TK_TEST(resize_nearest_repeats_pixels),
	    MPCC_TK_TEST(resize_linear_half_pixel_interpolates),
	    MPCC_TK_TEST(non_constant_shape_input_is_unsupported),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
