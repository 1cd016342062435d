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

static int32_t
ints(mpcc_graph *g, const char *name, int n, const int64_t *v)
{
	int64_t dims[1] = {n};
	return constant(g, name, MPCC_DTYPE_I64, 1, dims, v);
}

/* A graph output produced by a new node of op over in[]; *out_node gets it. */
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

/* Runs the pipeline and checks output y: its shape and f32 contents. */
static void
expect_f32(fixture *f, int32_t y, int rank, const int64_t *dims, const float *want)
{
	assert_int_equal(run(f), MPCC_OK);
	const mpcc_value *v = &f->g->values[y];
	assert_int_equal(v->rank, rank);
	for (int i = 0; i < rank; i++)
		assert_int_equal(v->dims[i], dims[i]);
	assert_true(v->flags & MPCC_VALUE_CONST);
	assert_int_equal(v->dtype, MPCC_DTYPE_F32);
	const float *got = v->data;
	for (int64_t i = 0; i < mpcc_value_numel(v); i++)
		assert_float_equal(got[i], want[i], 1e-6);
}

static const float iota12[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

static void
reshape_copies_zero_dims_and_infers_minus_one(void **state)
{
	fixture *f = *state;
	int64_t xd[3] = {2, 3, 2};
	int32_t in[2] = {constant(f->g, "x", MPCC_DTYPE_F32, 3, xd, iota12),
	                 ints(f->g, "shape", 2, (int64_t[]){0, -1})};
	int32_t y = node(f->g, MPCC_OP_RESHAPE, "r", 2, in, NULL);
	expect_f32(f, y, 2, (int64_t[]){2, 6}, iota12);
}

static void
transpose_default_reverses_dims(void **state)
{
	fixture *f = *state;
	int64_t xd[2] = {3, 4};
	int32_t x = constant(f->g, "x", MPCC_DTYPE_F32, 2, xd, iota12);
	int32_t y = node(f->g, MPCC_OP_TRANSPOSE, "t", 1, &x, NULL);
	float want[12] = {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11};
	expect_f32(f, y, 2, (int64_t[]){4, 3}, want);
}

static void
transpose_follows_perm(void **state)
{
	fixture *f = *state;
	int64_t xd[3] = {2, 3, 2};
	int32_t n, x = constant(f->g, "x", MPCC_DTYPE_F32, 3, xd, iota12);
	int32_t y = node(f->g, MPCC_OP_TRANSPOSE, "t", 1, &x, &n);
	mpcc_attr *a = mpcc_node_add_attr(f->g, n, "perm", MPCC_ATTR_INTS);
	static int64_t perm[3] = {1, 0, 2};
	a->n = 3;
	a->ints = perm;
	/* numpy: np.arange(12).reshape(2,3,2).transpose(1,0,2) */
	float want[12] = {0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11};
	expect_f32(f, y, 3, (int64_t[]){3, 2, 2}, want);
}

static void
slice_walks_backwards_with_negative_steps(void **state)
{
	fixture *f = *state;
	int64_t xd[2] = {3, 4};
	int32_t in[5] = {constant(f->g, "x", MPCC_DTYPE_F32, 2, xd, iota12),
	                 ints(f->g, "starts", 2, (int64_t[]){-1, 10}),
	                 ints(f->g, "ends", 2, (int64_t[]){INT64_MIN, 0}),
	                 ints(f->g, "axes", 2, (int64_t[]){0, 1}),
	                 ints(f->g, "steps", 2, (int64_t[]){-2, -1})};
	int32_t y = node(f->g, MPCC_OP_SLICE, "s", 5, in, NULL);
	/* numpy: x[-1::-2, 10:0:-1] */
	float want[6] = {11, 10, 9, 3, 2, 1};
	expect_f32(f, y, 2, (int64_t[]){2, 3}, want);
}

static void
gather_wraps_negative_indices(void **state)
{
	fixture *f = *state;
	int64_t xd[2] = {3, 4};
	int32_t n, in[2] = {constant(f->g, "x", MPCC_DTYPE_F32, 2, xd, iota12),
	                    ints(f->g, "idx", 2, (int64_t[]){-1, 0})};
	int32_t y = node(f->g, MPCC_OP_GATHER, "g", 2, in, &n);
	mpcc_node_add_attr(f->g, n, "axis", MPCC_ATTR_INT)->i = 1;
	float want[6] = {3, 0, 7, 4, 11, 8};
	expect_f32(f, y, 2, (int64_t[]){3, 2}, want);
}

static void
concat_places_inputs_along_the_axis(void **state)
{
	fixture *f = *state;
	int64_t ad[2] = {2, 1}, bd[2] = {2, 2};
	float a[2] = {100, 200}, b[4] = {1, 2, 3, 4};
	int32_t n, in[2] = {constant(f->g, "a", MPCC_DTYPE_F32, 2, ad, a),
	                    constant(f->g, "b", MPCC_DTYPE_F32, 2, bd, b)};
	int32_t y = node(f->g, MPCC_OP_CONCAT, "c", 2, in, &n);
	mpcc_node_add_attr(f->g, n, "axis", MPCC_ATTR_INT)->i = -1;
	float want[6] = {100, 1, 2, 200, 3, 4};
	expect_f32(f, y, 2, (int64_t[]){2, 3}, want);
}

static void
pad_reflect_mirrors_without_the_edge(void **state)
{
	fixture *f = *state;
	int64_t xd[2] = {2, 3};
	int32_t n, in[2] = {constant(f->g, "x", MPCC_DTYPE_F32, 2, xd, iota12),
	                    ints(f->g, "pads", 4, (int64_t[]){0, 2, 0, 1})};
	int32_t y = node(f->g, MPCC_OP_PAD, "p", 2, in, &n);
	mpcc_attr *a = mpcc_node_add_attr(f->g, n, "mode", MPCC_ATTR_STRING);
	a->s = "reflect";
	/* numpy: np.pad(x, ((0,0),(2,1)), 'reflect') */
	float want[12] = {2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4};
	expect_f32(f, y, 2, (int64_t[]){2, 6}, want);
}

static int32_t
resize_node(fixture *f, const char *mode, int32_t *out_node)
{
	int64_t xd[4] = {1, 1, 2, 2}, sd[1] = {4};
	float x[4] = {1, 2, 3, 4}, scales[4] = {1, 1, 2, 2};
	int32_t in[3] = {constant(f->g, "x", MPCC_DTYPE_F32, 4, xd, x), MPCC_NONE,
	                 constant(f->g, "scales", MPCC_DTYPE_F32, 1, sd, scales)};
	int32_t y = node(f->g, MPCC_OP_RESIZE, "rs", 3, in, out_node);
	mpcc_attr *a = mpcc_node_add_attr(f->g, *out_node, "mode", MPCC_ATTR_STRING);
	a->s = mode;
	return y;
}

static void
resize_nearest_repeats_pixels(void **state)
{
	fixture *f = *state;
	int32_t n, y = resize_node(f, "nearest", &n);
	float want[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
	expect_f32(f, y, 4, (int64_t[]){1, 1, 4, 4}, want);
}

static void
resize_linear_half_pixel_interpolates(void **state)
{
	fixture *f = *state;
	int32_t n, y = resize_node(f, "linear", &n);
	/* The ONNX reference (test_resize_upsample_scales_linear). */
	float want[16] = {1.0f, 1.25f, 1.75f, 2.0f, 1.5f, 1.75f, 2.25f, 2.5f,
	                  2.5f, 2.75f, 3.25f, 3.5f, 3.0f, 3.25f, 3.75f, 4.0f};
	expect_f32(f, y, 4, (int64_t[]){1, 1, 4, 4}, want);
}

static void
non_constant_shape_input_is_unsupported(void **state)
{
	fixture *f = *state;
	int32_t x = mpcc_graph_add_value(f->g, "x"), s = mpcc_graph_add_value(f->g, "s");
	mpcc_value *xv = &f->g->values[x], *sv = &f->g->values[s];
	xv->dtype = MPCC_DTYPE_F32;
	xv->rank = 1;
	xv->dims[0] = 6;
	sv->dtype = MPCC_DTYPE_I64;
	sv->rank = 1;
	sv->dims[0] = 2;
	assert_int_equal(mpcc_graph_add_input(f->g, x), MPCC_OK);
	assert_int_equal(mpcc_graph_add_input(f->g, s), MPCC_OK);
	int32_t in[2] = {x, s};
	node(f->g, MPCC_OP_RESHAPE, "my_reshape", 2, in, NULL);
	assert_int_equal(run(f), MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(f->d.msg, "my_reshape"));
	assert_non_null(strstr(f->d.msg, "compile time"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(reshape_copies_zero_dims_and_infers_minus_one, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(transpose_default_reverses_dims, setup, teardown),
	    cmocka_unit_test_setup_teardown(transpose_follows_perm, setup, teardown),
	    cmocka_unit_test_setup_teardown(slice_walks_backwards_with_negative_steps, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(gather_wraps_negative_indices, setup, teardown),
	    cmocka_unit_test_setup_teardown(concat_places_inputs_along_the_axis, setup, teardown),
	    cmocka_unit_test_setup_teardown(pad_reflect_mirrors_without_the_edge, setup, teardown),
	    cmocka_unit_test_setup_teardown(resize_nearest_repeats_pixels, setup, teardown),
	    cmocka_unit_test_setup_teardown(resize_linear_half_pixel_interpolates, setup, teardown),
	    cmocka_unit_test_setup_teardown(non_constant_shape_input_is_unsupported, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
