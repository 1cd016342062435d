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
	memcpy(copy, data, nbytes);
	mpcc_value_set_data(val, copy, nbytes);
	return v;
}

/* A graph output produced by a new node of op over in[]. */
static int32_t
node(mpcc_graph *g, mpcc_op op, const char *name, int n_in, const int32_t *in, int32_t *out_node)
{
	int32_t out = mpcc_graph_add_value(g, NULL);
	assert_int_not_equal(out, MPCC_NONE);
	int32_t n = mpcc_graph_add_node(g, op, name, n_in, in, 1, &out);
	assert_int_not_equal(n, MPCC_NONE);
	assert_int_equal(mpcc_graph_add_output(g, out), MPCC_OK);
	if (out_node)
		*out_node = n;
	return out;
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

/* The folded data of value v, checked to have the given dtype and count. */
static const void *
result(const fixture *f, int32_t v, mpcc_dtype dt, int64_t numel)
{
	const mpcc_value *val = &f->g->values[v];
	assert_int_equal(val->dtype, dt);
	assert_int_equal(mpcc_value_numel(val), numel);
	assert_true(val->flags & MPCC_VALUE_CONST);
	assert_non_null(val->data);
	return val->data;
}

static void
add_broadcasts_column_against_row(void **state)
{
	fixture *f = *state;
	const float a[] = {1, 2};
	const float b[] = {10, 20, 30};
	int32_t in[2] = {
	    constant(f->g, "a", MPCC_DTYPE_F32, 2, (int64_t[]){2, 1}, a),
	    constant(f->g, "b", MPCC_DTYPE_F32, 1, (int64_t[]){3}, b),
	};
	int32_t y = node(f->g, MPCC_OP_ADD, "add", 2, in, NULL);
	run_ok(f);
	const mpcc_value *yv = &f->g->values[y];
	assert_int_equal(yv->rank, 2);
	assert_int_equal(yv->dims[0], 2);
	assert_int_equal(yv->dims[1], 3);
	const float *r = result(f, y, MPCC_DTYPE_F32, 6);
	const float want[] = {11, 21, 31, 12, 22, 32};
	for (int i = 0; i < 6; i++)
		assert_float_equal(r[i], want[i], 0);
}

static void
integer_div_truncates_toward_zero(void **state)
{
	fixture *f = *state;
	const int32_t a[] = {-7, 7, -7, 7, 0};
	const int32_t b[] = {2, 2, -2, -2, 3};
	const uint8_t ua[] = {200, 7};
	const uint8_t ub[] = {7, 200};
	int32_t in[2] = {
	    constant(f->g, "a", MPCC_DTYPE_I32, 1, (int64_t[]){5}, a),
	    constant(f->g, "b", MPCC_DTYPE_I32, 1, (int64_t[]){5}, b),
	};
	int32_t uin[2] = {
	    constant(f->g, "ua", MPCC_DTYPE_U8, 1, (int64_t[]){2}, ua),
	    constant(f->g, "ub", MPCC_DTYPE_U8, 1, (int64_t[]){2}, ub),
	};
	int32_t y = node(f->g, MPCC_OP_DIV, "div", 2, in, NULL);
	int32_t uy = node(f->g, MPCC_OP_DIV, "udiv", 2, uin, NULL);
	run_ok(f);
	const int32_t *r = result(f, y, MPCC_DTYPE_I32, 5);
	const int32_t want[] = {-3, 3, 3, -3, 0};
	for (int i = 0; i < 5; i++)
		assert_int_equal(r[i], want[i]);
	const uint8_t *ur = result(f, uy, MPCC_DTYPE_U8, 2);
	assert_int_equal(ur[0], 28);
	assert_int_equal(ur[1], 0);
}

static void
mod_takes_divisor_sign_and_fmod_the_dividend_sign(void **state)
{
	fixture *f = *state;
	const int64_t a[] = {-4, 7, 5, 4, -7, 8};
	const int64_t b[] = {2, -3, 8, -2, 3, 5};
	const float fa[] = {-4.5f, 7.5f};
	const float fb[] = {2.0f, -2.0f};
	int32_t in[2] = {
	    constant(f->g, "a", MPCC_DTYPE_I64, 1, (int64_t[]){6}, a),
	    constant(f->g, "b", MPCC_DTYPE_I64, 1, (int64_t[]){6}, b),
	};
	int32_t fin[2] = {
	    constant(f->g, "fa", MPCC_DTYPE_F32, 1, (int64_t[]){2}, fa),
	    constant(f->g, "fb", MPCC_DTYPE_F32, 1, (int64_t[]){2}, fb),
	};
	int32_t n_fmod, n_ffmod;
	int32_t y = node(f->g, MPCC_OP_MOD, "mod", 2, in, NULL);
	int32_t yf = node(f->g, MPCC_OP_MOD, "fmod", 2, in, &n_fmod);
	int32_t yff = node(f->g, MPCC_OP_MOD, "float_fmod", 2, fin, &n_ffmod);
	mpcc_node_add_attr(f->g, n_fmod, "fmod", MPCC_ATTR_INT)->i = 1;
	mpcc_node_add_attr(f->g, n_ffmod, "fmod", MPCC_ATTR_INT)->i = 1;
	run_ok(f);
	const int64_t *r = result(f, y, MPCC_DTYPE_I64, 6);
	const int64_t want[] = {0, -2, 5, 0, 2, 3};
	const int64_t *rf = result(f, yf, MPCC_DTYPE_I64, 6);
	const int64_t want_f[] = {0, 1, 5, 0, -1, 3};
	for (int i = 0; i < 6; i++) {
		assert_int_equal(r[i], want[i]);
		assert_int_equal(rf[i], want_f[i]);
	}
	const float *rff = result(f, yff, MPCC_DTYPE_F32, 2);
	assert_float_equal(rff[0], -0.5f, 0);
	assert_float_equal(rff[1], 1.5f, 0);
}

static void
float_mod_without_fmod_is_rejected(void **state)
{
	fixture *f = *state;
	const float a[] = {1, 2};
	int32_t in[2] = {
	    constant(f->g, "a", MPCC_DTYPE_F32, 1, (int64_t[]){2}, a),
	    constant(f->g, "b", MPCC_DTYPE_F32, 1, (int64_t[]){2}, a),
	};
	node(f->g, MPCC_OP_MOD, "bad_mod", 2, in, NULL);
	assert_int_equal(run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "bad_mod"));
}

static void
clip_applies_present_bounds_only(void **state)
{
	fixture *f = *state;
	const float x[] = {-3, -0.5f, 0.5f, 3};
	const float lo = -1, hi = 1;
	int32_t xv = constant(f->g, "x", MPCC_DTYPE_F32, 1, (int64_t[]){4}, x);
	int32_t lov = constant(f->g, "lo", MPCC_DTYPE_F32, 0, NULL, &lo);
	int32_t hiv = constant(f->g, "hi", MPCC_DTYPE_F32, 1, (int64_t[]){1}, &hi);
	int32_t both = node(f->g, MPCC_OP_CLIP, "both", 3, (int32_t[]){xv, lov, hiv}, NULL);
	int32_t max_only =
	    node(f->g, MPCC_OP_CLIP, "max_only", 3, (int32_t[]){xv, MPCC_NONE, hiv}, NULL);
	int32_t none = node(f->g, MPCC_OP_CLIP, "none", 1, &xv, NULL);
	int32_t n_old;
	int32_t old = node(f->g, MPCC_OP_CLIP, "old", 1, &xv, &n_old);
	f->g->nodes[n_old].opset = 6;
	mpcc_node_add_attr(f->g, n_old, "min", MPCC_ATTR_FLOAT)->f = 0.0f;
	run_ok(f);
	const float *rb = result(f, both, MPCC_DTYPE_F32, 4);
	const float *rm = result(f, max_only, MPCC_DTYPE_F32, 4);
	const float *rn = result(f, none, MPCC_DTYPE_F32, 4);
	const float *ro = result(f, old, MPCC_DTYPE_F32, 4);
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
	fixture *f = *state;
	/* ulp of f16 at 1 is 2^-10: ties go to the even mantissa; 65520 overflows */
	const float x[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-11f + 0x1p-20f,
	                   65520.0f, -2.5f};
	int32_t xv = constant(f->g, "x", MPCC_DTYPE_F32, 1, (int64_t[]){5}, x);
	int32_t n;
	int32_t y = node(f->g, MPCC_OP_CAST, "cast", 1, &xv, &n);
	mpcc_node_add_attr(f->g, n, "to", MPCC_ATTR_INT)->i = 10; /* FLOAT16 */
	run_ok(f);
	const uint16_t *r = result(f, y, MPCC_DTYPE_F16, 5);
	assert_int_equal(r[0], 0x3c00);
	assert_int_equal(r[1], 0x3c02);
	assert_int_equal(r[2], 0x3c01);
	assert_int_equal(r[3], 0x7c00);
	assert_int_equal(r[4], 0xc100);
}

static void
cast_to_string_is_unsupported(void **state)
{
	fixture *f = *state;
	const float x[] = {1};
	int32_t xv = constant(f->g, "x", MPCC_DTYPE_F32, 1, (int64_t[]){1}, x);
	int32_t n;
	node(f->g, MPCC_OP_CAST, "to_string", 1, &xv, &n);
	mpcc_node_add_attr(f->g, n, "to", MPCC_ATTR_INT)->i = 8;
	assert_int_equal(run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "to_string"));
}

static void
where_broadcasts_all_three_inputs(void **state)
{
	fixture *f = *state;
	const uint8_t c[] = {1, 0};
	const int32_t x[] = {1, 2, 3};
	const int32_t y = -1;
	int32_t in[3] = {
	    constant(f->g, "c", MPCC_DTYPE_BOOL, 2, (int64_t[]){2, 1}, c),
	    constant(f->g, "x", MPCC_DTYPE_I32, 1, (int64_t[]){3}, x),
	    constant(f->g, "y", MPCC_DTYPE_I32, 0, NULL, &y),
	};
	int32_t out = node(f->g, MPCC_OP_WHERE, "where", 3, in, NULL);
	run_ok(f);
	const int32_t *r = result(f, out, MPCC_DTYPE_I32, 6);
	const int32_t want[] = {1, 2, 3, -1, -1, -1};
	for (int i = 0; i < 6; i++)
		assert_int_equal(r[i], want[i]);
}

static void
comparisons_give_bool(void **state)
{
	fixture *f = *state;
	const uint16_t a[] = {0x3c00, 0x4000}; /* f16 1, 2 */
	const uint16_t b[] = {0x4000, 0x4000};
	int32_t in[2] = {
	    constant(f->g, "a", MPCC_DTYPE_F16, 1, (int64_t[]){2}, a),
	    constant(f->g, "b", MPCC_DTYPE_F16, 1, (int64_t[]){2}, b),
	};
	int32_t lt = node(f->g, MPCC_OP_LESS, "less", 2, in, NULL);
	int32_t eq = node(f->g, MPCC_OP_EQUAL, "equal", 2, in, NULL);
	run_ok(f);
	const uint8_t *rl = result(f, lt, MPCC_DTYPE_BOOL, 2);
	const uint8_t *re = result(f, eq, MPCC_DTYPE_BOOL, 2);
	assert_int_equal(rl[0], 1);
	assert_int_equal(rl[1], 0);
	assert_int_equal(re[0], 0);
	assert_int_equal(re[1], 1);
}

static void
mean_of_three_broadcast_inputs(void **state)
{
	fixture *f = *state;
	const double a[] = {1, 2}, b[] = {3}, c[] = {5, 7};
	int32_t in[3] = {
	    constant(f->g, "a", MPCC_DTYPE_F64, 1, (int64_t[]){2}, a),
	    constant(f->g, "b", MPCC_DTYPE_F64, 1, (int64_t[]){1}, b),
	    constant(f->g, "c", MPCC_DTYPE_F64, 1, (int64_t[]){2}, c),
	};
	int32_t y = node(f->g, MPCC_OP_MEAN, "mean", 3, in, NULL);
	run_ok(f);
	const double *r = result(f, y, MPCC_DTYPE_F64, 2);
	assert_float_equal(r[0], 3.0, 0);
	assert_float_equal(r[1], 4.0, 0);
}

static void
incompatible_broadcast_is_rejected_naming_the_node(void **state)
{
	fixture *f = *state;
	const float a[6] = {0}, b[4] = {0};
	int32_t in[2] = {
	    constant(f->g, "a", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, a),
	    constant(f->g, "b", MPCC_DTYPE_F32, 1, (int64_t[]){4}, b),
	};
	node(f->g, MPCC_OP_MUL, "bad_mul", 2, in, NULL);
	assert_int_equal(run(f), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "bad_mul"));
	assert_non_null(strstr(f->d.msg, "[2,3]"));
	assert_non_null(strstr(f->d.msg, "[4]"));
}

static void
legacy_broadcast_as_a_suffix_is_numpy_broadcast(void **state)
{
	fixture *f = *state;
	const float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30};
	int32_t in[2] = {
	    constant(f->g, "a", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, a),
	    constant(f->g, "b", MPCC_DTYPE_F32, 1, (int64_t[]){3}, b),
	};
	int32_t n;
	int32_t y = node(f->g, MPCC_OP_ADD, "old_add", 2, in, &n);
	f->g->nodes[n].opset = 6;
	mpcc_node_add_attr(f->g, n, "broadcast", MPCC_ATTR_INT)->i = 1;
	run_ok(f);
	const float *r = result(f, y, MPCC_DTYPE_F32, 6);
	const float want[] = {11, 22, 33, 14, 25, 36};
	for (int i = 0; i < 6; i++)
		assert_float_equal(r[i], want[i], 0);
}

static void
legacy_broadcast_along_an_axis_is_unsupported(void **state)
{
	fixture *f = *state;
	const float a[6] = {0}, b[2] = {0};
	int32_t in[2] = {
	    constant(f->g, "a", MPCC_DTYPE_F32, 2, (int64_t[]){2, 3}, a),
	    constant(f->g, "b", MPCC_DTYPE_F32, 1, (int64_t[]){2}, b),
	};
	int32_t n;
	node(f->g, MPCC_OP_ADD, "old_add_axis", 2, in, &n);
	f->g->nodes[n].opset = 6;
	mpcc_node_add_attr(f->g, n, "broadcast", MPCC_ATTR_INT)->i = 1;
	mpcc_node_add_attr(f->g, n, "axis", MPCC_ATTR_INT)->i = 0;
	assert_int_equal(run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "old_add_axis"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(add_broadcasts_column_against_row, setup, teardown),
	    cmocka_unit_test_setup_teardown(integer_div_truncates_toward_zero, setup, teardown),
	    cmocka_unit_test_setup_teardown(mod_takes_divisor_sign_and_fmod_the_dividend_sign,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(float_mod_without_fmod_is_rejected, setup, teardown),
	    cmocka_unit_test_setup_teardown(clip_applies_present_bounds_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(cast_f32_to_f16_rounds_to_nearest_even, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(cast_to_string_is_unsupported, setup, teardown),
	    cmocka_unit_test_setup_teardown(where_broadcasts_all_three_inputs, setup, teardown),
	    cmocka_unit_test_setup_teardown(comparisons_give_bool, setup, teardown),
	    cmocka_unit_test_setup_teardown(mean_of_three_broadcast_inputs, setup, teardown),
	    cmocka_unit_test_setup_teardown(incompatible_broadcast_is_rejected_naming_the_node,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(legacy_broadcast_as_a_suffix_is_numpy_broadcast, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(legacy_broadcast_along_an_axis_is_unsupported, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
