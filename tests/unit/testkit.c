/*
 * testkit.c - the shared harness of the op-family unit tests: fixtures,
 * graph builders, the pipeline run and result checks (see testkit.h).
 *
 * Every builder checks each graph call with a cmocka assertion, so a test
 * body reads as the graph it builds and the values it expects; a failure
 * stops the running test (cmocka longjmps out of it) and the teardown still
 * frees the graph.
 */
#include "testkit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

int
mpcc_tk_setup_opsets(void **state, int opset, int opset_training)
{
	mpcc_tk *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	if (mpcc_graph_create(&t->g) != MPCC_OK) {
		free(t);
		return -1;
	}
	t->g->opset = opset;
	t->g->opset_training = opset_training;
	mpcc_diag_init(&t->d);
	*state = t;
	return 0;
}

int
mpcc_tk_setup(void **state)
{
	return mpcc_tk_setup_opsets(state, 17, 0);
}

int
mpcc_tk_teardown(void **state)
{
	mpcc_tk *t = *state;
	mpcc_graph_destroy(t->g);
	free(t);
	return 0;
}

/* A new value of the given dtype and shape, without data. */
static int32_t
add_value(mpcc_tk *t, const char *name, mpcc_dtype dt, int rank, const int64_t *dims)
{
	int32_t v = mpcc_graph_add_value(t->g, name);
	assert_int_not_equal(v, MPCC_NONE);
	mpcc_value *val = &t->g->values[v];
	val->dtype = dt;
	val->rank = rank;
	for (int i = 0; i < rank; i++)
		val->dims[i] = dims[i];
	return v;
}

int32_t
mpcc_tk_const(mpcc_tk *t, const char *name, mpcc_dtype dt, int rank, const int64_t *dims,
              const void *data)
{
	int32_t v = add_value(t, name, dt, rank, dims);
	mpcc_value *val = &t->g->values[v];
	size_t nbytes = (size_t)mpcc_value_numel(val) * mpcc_dtype_size(dt);
	void *copy = malloc(nbytes ? nbytes : 1);
	assert_non_null(copy);
	if (nbytes)
		memcpy(copy, data, nbytes);
	mpcc_value_set_data(val, copy, nbytes);
	return v;
}

int32_t
mpcc_tk_const_ints(mpcc_tk *t, const char *name, int n, const int64_t *v)
{
	int64_t dims[1] = {n};
	return mpcc_tk_const(t, name, MPCC_DTYPE_I64, 1, dims, v);
}

int32_t
mpcc_tk_const_int(mpcc_tk *t, const char *name, int64_t v)
{
	return mpcc_tk_const(t, name, MPCC_DTYPE_I64, 0, NULL, &v);
}

int32_t
mpcc_tk_input(mpcc_tk *t, const char *name, mpcc_dtype dt, int rank, const int64_t *dims)
{
	int32_t v = add_value(t, name, dt, rank, dims);
	assert_int_equal(mpcc_graph_add_input(t->g, v), MPCC_OK);
	return v;
}

int32_t
mpcc_tk_node_opset(mpcc_tk *t, mpcc_op op, int opset, const char *name, int n_in, const int32_t *in,
                   int n_out, int32_t *out)
{
	for (int i = 0; i < n_out; i++) {
		out[i] = mpcc_graph_add_value(t->g, NULL);
		assert_int_not_equal(out[i], MPCC_NONE);
	}
	int32_t n = mpcc_graph_add_node(t->g, op, name, n_in, in, n_out, out);
	assert_int_not_equal(n, MPCC_NONE);
	t->g->nodes[n].opset = opset;
	for (int i = 0; i < n_out; i++)
		assert_int_equal(mpcc_graph_add_output(t->g, out[i]), MPCC_OK);
	return n;
}

int32_t
mpcc_tk_node(mpcc_tk *t, mpcc_op op, const char *name, int n_in, const int32_t *in, int n_out,
             int32_t *out)
{
	return mpcc_tk_node_opset(t, op, t->g->opset, name, n_in, in, n_out, out);
}

int32_t
mpcc_tk_apply(mpcc_tk *t, mpcc_op op, const char *name, int n_in, const int32_t *in,
              int32_t *out_node)
{
	int32_t y;
	int32_t n = mpcc_tk_node(t, op, name, n_in, in, 1, &y);
	if (out_node)
		*out_node = n;
	return y;
}

void
mpcc_tk_attr_int(mpcc_tk *t, int32_t n, const char *name, int64_t v)
{
	mpcc_attr *a = mpcc_node_add_attr(t->g, n, name, MPCC_ATTR_INT);
	assert_non_null(a);
	a->i = v;
}

void
mpcc_tk_attr_float(mpcc_tk *t, int32_t n, const char *name, float v)
{
	mpcc_attr *a = mpcc_node_add_attr(t->g, n, name, MPCC_ATTR_FLOAT);
	assert_non_null(a);
	a->f = v;
}

void
mpcc_tk_attr_ints(mpcc_tk *t, int32_t n, const char *name, int count, const int64_t *v)
{
	mpcc_attr *a = mpcc_node_add_attr(t->g, n, name, MPCC_ATTR_INTS);
	assert_non_null(a);
	a->ints = mpcc_arena_alloc(&t->g->arena, sizeof(int64_t) * (size_t)count);
	assert_non_null(a->ints);
	memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
	a->n = count;
}

void
mpcc_tk_attr_string(mpcc_tk *t, int32_t n, const char *name, const char *s)
{
	mpcc_attr *a = mpcc_node_add_attr(t->g, n, name, MPCC_ATTR_STRING);
	assert_non_null(a);
	a->s = mpcc_arena_strdup(&t->g->arena, s);
	assert_non_null(a->s);
}

mpcc_status
mpcc_tk_run(mpcc_tk *t)
{
	mpcc_compile_options opts;
	mpcc_compile_options_init(&opts);
	opts.precision = MPCC_PRECISION_FP32; /* exact f32 results */
	mpcc_pass_ctx cx = {.d = &t->d, .opts = &opts};
	return mpcc_run_pipeline(t->g, &cx);
}

void
mpcc_tk_run_ok(mpcc_tk *t)
{
	if (mpcc_tk_run(t) != MPCC_OK)
		fail_msg("pipeline failed: %s", t->d.msg);
}

/* The checks every result shares, once dtype and size have been checked. */
static const void *
folded_data(const mpcc_value *val)
{
	assert_true(val->flags & MPCC_VALUE_CONST);
	assert_non_null(val->data);
	return val->data;
}

const void *
mpcc_tk_result(const mpcc_tk *t, int32_t v, mpcc_dtype dt, int rank, const int64_t *dims)
{
	const mpcc_value *val = &t->g->values[v];
	assert_int_equal(val->dtype, dt);
	assert_int_equal(val->rank, rank);
	for (int i = 0; i < rank; i++)
		assert_int_equal(val->dims[i], dims[i]);
	return folded_data(val);
}

const void *
mpcc_tk_result_numel(const mpcc_tk *t, int32_t v, mpcc_dtype dt, int64_t numel)
{
	const mpcc_value *val = &t->g->values[v];
	assert_int_equal(val->dtype, dt);
	assert_int_equal(mpcc_value_numel(val), numel);
	return folded_data(val);
}

void
mpcc_tk_assert_near_f64(const float *got, const double *want, int n, double tol)
{
	for (int i = 0; i < n; i++)
		if (!(fabs((double)got[i] - want[i]) <= tol))
			fail_msg("element %d: got %.9g, want %.9g", i, (double)got[i], want[i]);
}

void
mpcc_tk_assert_near(const float *got, const float *want, int n, double tol)
{
	for (int i = 0; i < n; i++)
		if (!(fabs((double)got[i] - (double)want[i]) <= tol))
			fail_msg("element %d: got %.9g, want %.9g", i, (double)got[i],
			         (double)want[i]);
}

void
mpcc_tk_assert_ints(const int64_t *got, const int64_t *want, int n)
{
	for (int i = 0; i < n; i++)
		if (got[i] != want[i])
			fail_msg("element %d: got %lld, want %lld", i, (long long)got[i],
			         (long long)want[i]);
}
