/*
 * test_passes.c - the graph passes: binding input shapes, checking ops
 * against their rules, inference with constant folding, dead node
 * elimination, and the pipeline that runs them in order.
 *
 * Graphs are built by hand with the IR calls, so each test states exactly
 * the situation it checks. Folding runs the real op families, lowering and
 * kernel IR interpreter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

static int32_t
add_typed(mpcc_graph *g, const char *name, mpcc_dtype t, int rank, const int64_t *dims)
{
	int32_t v = mpcc_graph_add_value(g, name);
	assert_true(v >= 0);
	g->values[v].dtype = t;
	g->values[v].rank = rank;
	for (int i = 0; i < rank; i++)
		g->values[v].dims[i] = dims[i];
	return v;
}

static int32_t
add_input(mpcc_graph *g, const char *name, int rank, const int64_t *dims, const char *const *sym)
{
	int32_t v = add_typed(g, name, MPCC_DTYPE_F32, rank, dims);
	for (int i = 0; sym && i < rank; i++)
		if (sym[i]) {
			g->values[v].sym[i] = sym[i];
			g->values[v].dims[i] = -1;
		}
	assert_int_equal(mpcc_graph_add_input(g, v), MPCC_OK);
	return v;
}

static int32_t
add_i64_const(mpcc_graph *g, const char *name, int rank, const int64_t *dims, const int64_t *data,
              int n)
{
	int32_t v = add_typed(g, name, MPCC_DTYPE_I64, rank, dims);
	int64_t *p = malloc((size_t)n * 8 + 1);
	assert_non_null(p);
	memcpy(p, data, (size_t)n * 8);
	mpcc_value_set_data(&g->values[v], p, (size_t)n * 8);
	return v;
}

typedef struct fixture {
	mpcc_graph *g;
	mpcc_diag d;
	mpcc_compile_options o;
	mpcc_pass_ctx cx;
} fixture;

static int
setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	if (!f || mpcc_graph_create(&f->g))
		return -1;
	f->g->opset = 17;
	mpcc_diag_init(&f->d);
	f->cx.d = &f->d;
	f->cx.opts = &f->o;
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

/* ---------------------------------------------------------------- bind_shapes */

static void
binding_an_unknown_input_names_it_and_lists_the_inputs(void **state)
{
	fixture *f = *state;
	static const int64_t d[] = {1, 3};
	add_input(f->g, "x", 2, d, NULL);
	add_input(f->g, "y", 2, d, NULL);
	mpcc_shape_binding b = {.input = "z", .rank = 2, .dims = {1, 3}};
	f->o.shapes = &b, f->o.n_shapes = 1;
	assert_int_equal(mpcc_bind_shapes(f->g, &f->cx), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "'z'"));
	assert_non_null(strstr(f->d.msg, "inputs: x, y"));
}

static void
binding_with_the_wrong_rank_is_refused(void **state)
{
	fixture *f = *state;
	static const int64_t d[] = {1, 3};
	add_input(f->g, "x", 2, d, NULL);
	mpcc_shape_binding b = {.input = "x", .rank = 3, .dims = {1, 3, 4}};
	f->o.shapes = &b, f->o.n_shapes = 1;
	assert_int_equal(mpcc_bind_shapes(f->g, &f->cx), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "rank 3"));
}

static void
binding_against_a_fixed_dim_is_refused(void **state)
{
	fixture *f = *state;
	static const int64_t d[] = {1, 3};
	add_input(f->g, "x", 2, d, NULL);
	mpcc_shape_binding b = {.input = "x", .rank = 2, .dims = {1, 4}};
	f->o.shapes = &b, f->o.n_shapes = 1;
	assert_int_equal(mpcc_bind_shapes(f->g, &f->cx), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "dim 1"));
}

static void
bound_symbolic_dims_reach_other_inputs(void **state)
{
	fixture *f = *state;
	static const int64_t dx[] = {-1, 3}, dy[] = {-1, 10};
	static const char *const sym[] = {"N", NULL};
	int32_t x = add_input(f->g, "x", 2, dx, sym);
	int32_t y = add_input(f->g, "y", 2, dy, sym);
	mpcc_shape_binding b = {.input = "x", .rank = 2, .dims = {8, 3}};
	f->o.shapes = &b, f->o.n_shapes = 1;
	assert_int_equal(mpcc_bind_shapes(f->g, &f->cx), MPCC_OK);
	assert_int_equal(f->g->values[x].dims[0], 8);
	assert_int_equal(f->g->values[y].dims[0], 8);
	assert_int_equal(f->g->values[y].dims[1], 10);
	assert_null(f->g->values[y].sym[0]);
}

static void
a_symbol_bound_to_two_sizes_is_refused(void **state)
{
	fixture *f = *state;
	static const int64_t dx[] = {-1, 3};
	static const char *const sym[] = {"N", NULL};
	add_input(f->g, "x", 2, dx, sym);
	add_input(f->g, "y", 2, dx, sym);
	mpcc_shape_binding b[] = {{.input = "x", .rank = 2, .dims = {8, 3}},
	                          {.input = "y", .rank = 2, .dims = {4, 3}}};
	f->o.shapes = b, f->o.n_shapes = 2;
	assert_int_equal(mpcc_bind_shapes(f->g, &f->cx), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "'N'"));
}

static void
an_unbound_symbolic_dim_asks_for_shape_flag(void **state)
{
	fixture *f = *state;
	static const int64_t dx[] = {-1, 3};
	static const char *const sym[] = {"N", NULL};
	add_input(f->g, "x", 2, dx, sym);
	assert_int_equal(mpcc_bind_shapes(f->g, &f->cx), MPCC_ERR_INVALID);
	assert_string_equal(f->d.msg,
	                    "input 'x' dim 0 is symbolic ('N'): bind it with --shape x=...");
}

/* ---------------------------------------------------------------- check_ops */

static void
an_unknown_attribute_is_an_error(void **state)
{
	fixture *f = *state;
	static const int64_t d[] = {4};
	int32_t x = add_input(f->g, "x", 1, d, NULL);
	int32_t y = mpcc_graph_add_value(f->g, "y");
	int32_t n = mpcc_graph_add_node(f->g, MPCC_OP_RELU, "r", 1, &x, 1, &y);
	mpcc_node_add_attr(f->g, n, "foo", MPCC_ATTR_INT);
	mpcc_graph_add_output(f->g, y);
	assert_int_equal(mpcc_check_ops(f->g, &f->cx), MPCC_ERR_INVALID);
	assert_string_equal(f->d.msg, "node 'r' (Relu, opset 17): unknown attribute 'foo'");
}

static void
an_op_without_a_rule_is_unsupported(void **state)
{
	fixture *f = *state;
	static const int64_t d[] = {4};
	int32_t x = add_input(f->g, "x", 1, d, NULL);
	int32_t y = mpcc_graph_add_value(f->g, "y");
	mpcc_graph_add_node(f->g, MPCC_OP_UNIQUE, "u", 1, &x, 1, &y);
	assert_int_equal(mpcc_check_ops(f->g, &f->cx), MPCC_ERR_UNSUPPORTED);
	assert_string_equal(f->d.msg, "node 'u' (Unique, opset 17): unsupported op");
}

static void
a_wrong_input_count_is_an_error(void **state)
{
	fixture *f = *state;
	static const int64_t d[] = {4};
	int32_t x = add_input(f->g, "x", 1, d, NULL);
	int32_t y = mpcc_graph_add_value(f->g, "y");
	int32_t in[] = {x, x, x};
	mpcc_graph_add_node(f->g, MPCC_OP_RELU, "r", 3, in, 1, &y);
	assert_int_equal(mpcc_check_ops(f->g, &f->cx), MPCC_ERR_INVALID);
	assert_non_null(strstr(f->d.msg, "has 3 inputs"));
}

/* ---------------------------------------------------------------- dce */

static void
nodes_nobody_needs_are_marked_dead(void **state)
{
	fixture *f = *state;
	static const int64_t d[] = {4};
	int32_t x = add_input(f->g, "x", 1, d, NULL);
	int32_t a = mpcc_graph_add_value(f->g, "a"), b = mpcc_graph_add_value(f->g, "b");
	int32_t c = mpcc_graph_add_value(f->g, "c");
	int32_t n0 = mpcc_graph_add_node(f->g, MPCC_OP_RELU, "used", 1, &x, 1, &a);
	int32_t n1 = mpcc_graph_add_node(f->g, MPCC_OP_NEG, "unused", 1, &x, 1, &b);
	int32_t n2 = mpcc_graph_add_node(f->g, MPCC_OP_ABS, "folded", 1, &x, 1, &c);
	mpcc_value_set_data(&f->g->values[c], calloc(1, 16), 16);
	mpcc_graph_add_output(f->g, a);
	mpcc_graph_add_output(f->g, c);
	assert_int_equal(mpcc_eliminate_dead(f->g, &f->cx), MPCC_OK);
	assert_false(f->g->nodes[n0].dead);
	assert_true(f->g->nodes[n1].dead);
	assert_true(f->g->nodes[n2].dead);
	assert_int_equal(mpcc_graph_verify(f->g, &f->d), MPCC_OK);
}

/* ---------------------------------------------------------------- infer_and_fold */

static void
adding_two_constants_folds_to_a_constant(void **state)
{
	fixture *f = *state;
	static const int64_t d3[] = {3}, d1[] = {1};
	int32_t a = add_typed(f->g, "a", MPCC_DTYPE_F32, 1, d3);
	int32_t b = add_typed(f->g, "b", MPCC_DTYPE_F32, 1, d1);
	float *pa = malloc(12), *pb = malloc(4);
	pa[0] = 1, pa[1] = 2, pa[2] = 3.5f, pb[0] = 10;
	mpcc_value_set_data(&f->g->values[a], pa, 12);
	mpcc_value_set_data(&f->g->values[b], pb, 4);
	int32_t y = mpcc_graph_add_value(f->g, "y");
	int32_t in[] = {a, b};
	int32_t n = mpcc_graph_add_node(f->g, MPCC_OP_ADD, "add", 2, in, 1, &y);
	mpcc_graph_add_output(f->g, y);
	assert_int_equal(mpcc_run_pipeline(f->g, &f->cx), MPCC_OK);
	mpcc_value *v = &f->g->values[y];
	assert_true(v->flags & MPCC_VALUE_CONST);
	assert_int_equal(v->dtype, MPCC_DTYPE_F32);
	assert_int_equal(v->rank, 1);
	assert_int_equal(v->dims[0], 3);
	assert_true(mpcc_value_get_double(v, 0) == 11);
	assert_true(mpcc_value_get_double(v, 1) == 12);
	assert_true(mpcc_value_get_double(v, 2) == 13.5);
	assert_true(f->g->nodes[n].dead);
}

static void
no_fold_leaves_constant_arithmetic_alone(void **state)
{
	fixture *f = *state;
	static const int64_t d1[] = {1};
	int32_t a = add_typed(f->g, "a", MPCC_DTYPE_F32, 1, d1);
	mpcc_value_set_data(&f->g->values[a], calloc(1, 4), 4);
	int32_t y = mpcc_graph_add_value(f->g, "y");
	int32_t in[] = {a, a};
	int32_t n = mpcc_graph_add_node(f->g, MPCC_OP_ADD, "add", 2, in, 1, &y);
	mpcc_graph_add_output(f->g, y);
	f->o.no_fold = true;
	assert_int_equal(mpcc_run_pipeline(f->g, &f->cx), MPCC_OK);
	assert_false(f->g->values[y].flags & MPCC_VALUE_CONST);
	assert_int_equal(f->g->values[y].rank, 1);
	assert_false(f->g->nodes[n].dead);
}

/*
 * y = Reshape(x, Concat(Gather(Shape(x), [0]), [-1])): the shape input of
 * Reshape is computed from x's shape, and must be constant by the time
 * Reshape infers its output.
 */
static void
shape_gather_concat_reshape_chain_folds(void **state)
{
	fixture *f = *state;
	mpcc_graph *g = f->g;
	static const int64_t dx[] = {2, 3, 4}, d1[] = {1};
	static const int64_t zero[] = {0}, minus1[] = {-1};
	int32_t x = add_input(g, "x", 3, dx, NULL);
	int32_t s = mpcc_graph_add_value(g, "s");
	int32_t idx = add_i64_const(g, "idx", 1, d1, zero, 1);
	int32_t n0 = mpcc_graph_add_value(g, "n0");
	int32_t m1 = add_i64_const(g, "m1", 1, d1, minus1, 1);
	int32_t shp = mpcc_graph_add_value(g, "shp");
	int32_t y = mpcc_graph_add_value(g, "y");
	mpcc_graph_add_node(g, MPCC_OP_SHAPE, "shape", 1, &x, 1, &s);
	int32_t gin[] = {s, idx};
	int32_t gn = mpcc_graph_add_node(g, MPCC_OP_GATHER, "gather", 2, gin, 1, &n0);
	mpcc_node_add_attr(g, gn, "axis", MPCC_ATTR_INT)->i = 0;
	int32_t cin[] = {n0, m1};
	int32_t cn = mpcc_graph_add_node(g, MPCC_OP_CONCAT, "concat", 2, cin, 1, &shp);
	mpcc_node_add_attr(g, cn, "axis", MPCC_ATTR_INT)->i = 0;
	int32_t rin[] = {x, shp};
	mpcc_graph_add_node(g, MPCC_OP_RESHAPE, "reshape", 2, rin, 1, &y);
	mpcc_graph_add_output(g, y);
	assert_int_equal(mpcc_run_pipeline(g, &f->cx), MPCC_OK);
	assert_int_equal(g->values[y].rank, 2);
	assert_int_equal(g->values[y].dims[0], 2);
	assert_int_equal(g->values[y].dims[1], 12);
	char *t = mpcc_graph_print(g);
	assert_non_null(t);
	assert_string_equal(t, "graph opset=17\n"
	                       "  input %x : f32[2,3,4]\n"
	                       "  const %shp : i64[2] = [2, -1]\n"
	                       "  %y : f32[2,12] = Reshape(%x, %shp)  # reshape\n"
	                       "  output %y\n");
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(binding_an_unknown_input_names_it_and_lists_the_inputs,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(binding_with_the_wrong_rank_is_refused, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(binding_against_a_fixed_dim_is_refused, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(bound_symbolic_dims_reach_other_inputs, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(a_symbol_bound_to_two_sizes_is_refused, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(an_unbound_symbolic_dim_asks_for_shape_flag, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(an_unknown_attribute_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(an_op_without_a_rule_is_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(a_wrong_input_count_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(nodes_nobody_needs_are_marked_dead, setup, teardown),
		cmocka_unit_test_setup_teardown(adding_two_constants_folds_to_a_constant, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(no_fold_leaves_constant_arithmetic_alone, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(shape_gather_concat_reshape_chain_folds, setup,
		                                teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
