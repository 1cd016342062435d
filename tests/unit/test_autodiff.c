/*
 * test_autodiff.c - passes/autodiff*.c: every gradient rule against central
 * finite differences, and the pass's contract.
 *
 * Gradient checks (the table `cases`, one cmocka test each): a case builds a
 * tiny graph whose float inputs are the values to differentiate (f64, with
 * odd shapes and broadcasting), the harness appends loss = ReduceSum(y * R)
 * with R a fixed random tensor of y's shape (so every element of y matters),
 * calls mpcc_autodiff and makes the gradients graph outputs. That graph and
 * the forward-only one are compiled like mpcc_compile_* (pipeline in fp32
 * precision, where f64 stays f64; lowering, fusion, plan) and run on the CPU
 * backend. Each gradient element must match (L(x + h) - L(x - h)) / 2h from
 * the forward plan within 1e-6 relative to max(1, |fd|), with h = 1e-6: in
 * f64 the difference's rounding error (~1e-16 |L| / h) and truncation error
 * (~h^2) are both far below that. The one f32 input (the Cast case) steps by
 * 2^-10 and divides by the step actually representable; its loss is
 * quadratic in the input, so the difference is exact up to rounding, and the
 * f32 gradient (from a Cast of the f64 one) is good to ~1e-7.
 *
 * Inputs stay 0.05 away from the kinks of Relu, LeakyRelu and Abs, and
 * positive ranges keep Log, Sqrt, Div and Pow away from their poles. The
 * contract tests: an op without a rule is an error naming the node, a value
 * not reaching the loss gets MPCC_NONE, a value read twice gets the Add of
 * both contributions, the seed scales the gradient, MaxPool ties go to the
 * first maximum, initializers differentiate through folded nodes, and in
 * an fp16 compile that Add of contributions stays f32 (precision policy)
 * while the gradient MatMuls go f16.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/fuse.h"
#include "passes/autodiff.h"
#include "passes/passes.h"
#include "runtime/plan.h"

#define MAX_IN 4
#define H_F64 1e-6
#define H_F32 (1.0 / 1024)
#define TOL 1e-6

/* Shape arguments: SHAPE(3, 5) gives "2, (const int64_t[]){3, 5}". */
#define SHAPE(...)                                                                                 \
	(int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[])               \
	{                                                                                          \
		__VA_ARGS__                                                                        \
	}

typedef enum range { SIGNED, POSITIVE } range;

/* The state of one graph build: the graph, its differentiated inputs with
 * their data, the last node (for attributes) and the random stream. */
typedef struct gc {
	mpcc_graph *g;
	int n_in;
	int32_t in[MAX_IN];
	const char *name[MAX_IN]; /* static strings: valid after the graph is gone */
	int rank[MAX_IN];
	int64_t dims[MAX_IN][MPCC_MAX_RANK];
	mpcc_dtype dt[MAX_IN];
	double *data[MAX_IN];
	int64_t numel[MAX_IN];
	int32_t last;
	uint64_t rng;
} gc;

typedef int32_t (*build_fn)(gc *c); /* returns y */

typedef struct gcase {
	const char *name;
	build_fn build;
} gcase;

/* ---------------------------------------------------------------- graph building */

static double
uniform(gc *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return (double)(c->rng >> 11) / (double)(1ull << 53);
}

/* Signed values keep 0.05 away from 0; positive ones lie in [0.5, 2]. */
static double
sample(gc *c, range r)
{
	double u = uniform(c);
	if (r == POSITIVE)
		return 0.5 + 1.5 * u;
	double v = 2 * u - 1;
	return v < 0 ? v - 0.05 : v + 0.05;
}

static int32_t
value(gc *c, const char *name, mpcc_dtype t, int rank, const int64_t *dims)
{
	int32_t v = mpcc_graph_add_value(c->g, name);
	assert_true(v >= 0);
	c->g->values[v].dtype = t;
	c->g->values[v].rank = rank;
	for (int i = 0; i < rank; i++)
		c->g->values[v].dims[i] = dims[i];
	return v;
}

static int64_t
count(int rank, const int64_t *dims)
{
	int64_t n = 1;
	for (int i = 0; i < rank; i++)
		n *= dims[i];
	return n;
}

/* A graph input to differentiate, of dtype t, with random data. */
static int32_t
wrt_typed(gc *c, const char *name, mpcc_dtype t, range r, int rank, const int64_t *dims)
{
	int i = c->n_in++;
	assert_true(i < MAX_IN);
	c->in[i] = value(c, name, t, rank, dims);
	c->name[i] = name;
	c->rank[i] = rank;
	for (int k = 0; k < rank; k++)
		c->dims[i][k] = dims[k];
	c->dt[i] = t;
	c->numel[i] = count(rank, dims);
	c->data[i] = malloc(sizeof(double) * (size_t)(c->numel[i] + 1));
	assert_non_null(c->data[i]);
	for (int64_t k = 0; k < c->numel[i]; k++) {
		double x = sample(c, r);
		c->data[i][k] = t == MPCC_DTYPE_F32 ? (double)(float)x : x;
	}
	assert_int_equal(mpcc_graph_add_input(c->g, c->in[i]), MPCC_OK);
	return c->in[i];
}

static int32_t
wrt(gc *c, const char *name, range r, int rank, const int64_t *dims)
{
	return wrt_typed(c, name, MPCC_DTYPE_F64, r, rank, dims);
}

static int32_t
const_data(gc *c, mpcc_dtype t, int rank, const int64_t *dims, const void *data)
{
	int32_t v = value(c, NULL, t, rank, dims);
	size_t nb = (size_t)count(rank, dims) * mpcc_dtype_size(t);
	void *p = malloc(nb + 1);
	assert_non_null(p);
	memcpy(p, data, nb);
	mpcc_value_set_data(&c->g->values[v], p, nb);
	return v;
}

/* An f64 constant with random data: an operand that is not differentiated. */
static int32_t
cfloat(gc *c, range r, int rank, const int64_t *dims)
{
	int64_t n = count(rank, dims);
	double *p = malloc(sizeof(double) * (size_t)(n + 1));
	assert_non_null(p);
	for (int64_t k = 0; k < n; k++)
		p[k] = sample(c, r);
	int32_t v = const_data(c, MPCC_DTYPE_F64, rank, dims, p);
	free(p);
	return v;
}

static int32_t
cscalar(gc *c, double x)
{
	return const_data(c, MPCC_DTYPE_F64, 0, NULL, &x);
}

/* A 1-D int64 constant: ints(c, SHAPE(0, 2)) is [0, 2]. */
static int32_t
ints(gc *c, int n, const int64_t *v)
{
	int64_t dims[1] = {n};
	return const_data(c, MPCC_DTYPE_I64, 1, dims, v);
}

/* A node of op over n_in inputs (varargs) with one output, returned. */
static int32_t
op(gc *c, mpcc_op o, const char *name, int n_in, ...)
{
	int32_t in[8], out = value(c, NULL, MPCC_DTYPE_UNDEF, -1, NULL);
	va_list ap;
	va_start(ap, n_in);
	for (int i = 0; i < n_in; i++)
		in[i] = va_arg(ap, int32_t);
	va_end(ap);
	c->g->values[out].rank = -1;
	c->last = mpcc_graph_add_node(c->g, o, name, n_in, in, 1, &out);
	assert_true(c->last >= 0);
	return out;
}

/* A node with n_out outputs, written to out[]. */
static void
opn(gc *c, mpcc_op o, const char *name, int n_in, const int32_t *in, int n_out, int32_t *out)
{
	for (int j = 0; j < n_out; j++)
		out[j] = value(c, NULL, MPCC_DTYPE_UNDEF, -1, NULL);
	c->last = mpcc_graph_add_node(c->g, o, name, n_in, in, n_out, out);
	assert_true(c->last >= 0);
}

static void
attr_i(gc *c, const char *name, int64_t v)
{
	mpcc_attr *a = mpcc_node_add_attr(c->g, c->last, name, MPCC_ATTR_INT);
	assert_non_null(a);
	a->i = v;
}

static void
attr_f(gc *c, const char *name, float v)
{
	mpcc_attr *a = mpcc_node_add_attr(c->g, c->last, name, MPCC_ATTR_FLOAT);
	assert_non_null(a);
	a->f = v;
}

static void
attr_s(gc *c, const char *name, const char *v)
{
	mpcc_attr *a = mpcc_node_add_attr(c->g, c->last, name, MPCC_ATTR_STRING);
	assert_non_null(a);
	a->s = v;
}

static void
attr_is(gc *c, const char *name, int n, const int64_t *v)
{
	mpcc_attr *a = mpcc_node_add_attr(c->g, c->last, name, MPCC_ATTR_INTS);
	assert_non_null(a);
	a->n = n;
	a->ints = mpcc_arena_alloc(&c->g->arena, sizeof(int64_t) * (size_t)n);
	assert_non_null(a->ints);
	memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
}

/* ---------------------------------------------------------------- compiling and running */

static mpcc_compile_options opts;

static void
infer(mpcc_graph *g)
{
	mpcc_diag d;
	mpcc_diag_init(&d);
	mpcc_pass_ctx cx = {.d = &d, .opts = &opts};
	if (mpcc_check_ops(g, &cx) || mpcc_graph_verify(g, &d) || mpcc_infer_and_fold(g, &cx))
		fail_msg("inference failed: %s", d.msg);
}

/* Compiles g (consumed) like mpcc_compile_*, in fp32 precision. */
static mpcc_plan *
compile(mpcc_graph *g)
{
	mpcc_diag d;
	mpcc_lower lx;
	mpcc_plan *p = NULL;
	mpcc_diag_init(&d);
	mpcc_pass_ctx cx = {.d = &d, .opts = &opts};
	if (mpcc_run_pipeline(g, &cx))
		fail_msg("pipeline: %s", d.msg);
	mpcc_lower_init(&lx, g, &d);
	if (mpcc_lower_graph(&lx) || mpcc_fuse_kernels(&lx, NULL) ||
	    mpcc_plan_build(g, &lx, MPCC_PRECISION_FP32, &p, &d))
		fail_msg("lowering: %s", d.msg);
	mpcc_lower_fini(&lx);
	mpcc_graph_destroy(g);
	return p;
}

/* y * R summed, R random of y's shape; shapes inferred on return. */
static int32_t
append_loss(gc *c, int32_t y)
{
	infer(c->g);
	const mpcc_value *v = &c->g->values[y];
	int64_t dims[MPCC_MAX_RANK];
	int rank = v->rank;
	memcpy(dims, v->dims, sizeof dims);
	int32_t r = cfloat(c, SIGNED, rank, dims);
	int32_t loss = op(c, MPCC_OP_REDUCESUM, "loss", 1, op(c, MPCC_OP_MUL, "weigh", 2, y, r));
	attr_i(c, "keepdims", 0);
	infer(c->g);
	return loss;
}

static uint64_t
seed_of(const char *name)
{
	uint64_t h = 1469598103934665603ull;
	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 1099511628211ull;
	return h | 1;
}

/* Starts c on a new graph (opset 17) with a random stream seeded by name. */
static void
fresh(gc *c, const char *name)
{
	memset(c, 0, sizeof *c);
	assert_int_equal(mpcc_graph_create(&c->g), MPCC_OK);
	c->g->opset = 17;
	c->rng = seed_of(name);
}

/* Builds case k's graph with its loss into c. */
static int32_t
build(const gcase *k, gc *c)
{
	fresh(c, k->name);
	return append_loss(c, k->build(c));
}

static void
free_data(gc *c)
{
	for (int i = 0; i < c->n_in; i++)
		free(c->data[i]);
}

typedef struct runner {
	mpcc_context *cx;
	mpcc_session *s;
	mpcc_plan *p;
} runner;

static void
runner_open(runner *r, mpcc_plan *p)
{
	r->p = p;
	assert_int_equal(mpcc_context_create(&r->cx), MPCC_OK);
	assert_int_equal(mpcc_session_create(r->cx, p, "cpu", &r->s), MPCC_OK);
}

static void
runner_close(runner *r)
{
	mpcc_session_destroy(r->s);
	mpcc_context_destroy(r->cx);
	mpcc_plan_free(r->p);
}

/* Sets every input of c (in its dtype) and runs. */
static void
runner_run(runner *r, const gc *c)
{
	for (int i = 0; i < c->n_in; i++) {
		size_t es = mpcc_dtype_size(c->dt[i]), nb = (size_t)c->numel[i] * es;
		char *buf = malloc(nb + 1);
		assert_non_null(buf);
		for (int64_t k = 0; k < c->numel[i]; k++) {
			float f = (float)c->data[i][k];
			memcpy(buf + k * es,
			       c->dt[i] == MPCC_DTYPE_F32 ? (void *)&f : (void *)&c->data[i][k],
			       es);
		}
		assert_int_equal(mpcc_session_set_input(r->s, c->name[i], c->dt[i], c->rank[i],
		                                        c->dims[i], buf, nb),
		                 MPCC_OK);
		free(buf);
	}
	if (mpcc_session_run(r->s))
		fail_msg("run: %s", mpcc_context_last_error(r->cx));
}

/* Element k of output i as double. */
static double
runner_out(runner *r, int i, int64_t k)
{
	mpcc_tensor t;
	assert_int_equal(mpcc_session_output(r->s, i, &t), MPCC_OK);
	if (t.dtype == MPCC_DTYPE_F32)
		return ((const float *)t.data)[k];
	assert_int_equal(t.dtype, MPCC_DTYPE_F64);
	return ((const double *)t.data)[k];
}

/* ---------------------------------------------------------------- the gradient check */

/*
 * Builds case k twice from the same seed, once with the gradients as
 * outputs and once forward only, and compares each gradient element with
 * the central difference of the forward plan's loss.
 */
static void
gradient_check(void **state)
{
	const gcase *k = *state;
	gc c, cf;
	int32_t grads[MAX_IN];
	mpcc_diag d;
	runner rg, rf;

	int32_t loss = build(k, &c);
	mpcc_diag_init(&d);
	if (mpcc_autodiff(c.g, loss, MPCC_NONE, c.in, c.n_in, grads, &d))
		fail_msg("autodiff: %s", d.msg);
	assert_int_equal(mpcc_graph_add_output(c.g, loss), MPCC_OK);
	for (int i = 0; i < c.n_in; i++) {
		if (grads[i] == MPCC_NONE)
			fail_msg("no gradient for input '%s'", c.name[i]);
		assert_int_equal(mpcc_graph_add_output(c.g, grads[i]), MPCC_OK);
	}
	runner_open(&rg, compile(c.g));
	loss = build(k, &cf);
	assert_int_equal(mpcc_graph_add_output(cf.g, loss), MPCC_OK);
	runner_open(&rf, compile(cf.g));
	free_data(&cf);

	runner_run(&rg, &c);
	for (int i = 0; i < c.n_in; i++) {
		for (int64_t e = 0; e < c.numel[i]; e++) {
			double x = c.data[i][e], h = c.dt[i] == MPCC_DTYPE_F32 ? H_F32 : H_F64;
			double xp = x + h, xm = x - h;
			if (c.dt[i] == MPCC_DTYPE_F32) {
				xp = (float)xp;
				xm = (float)xm;
			}
			c.data[i][e] = xp;
			runner_run(&rf, &c);
			double lp = runner_out(&rf, 0, 0);
			c.data[i][e] = xm;
			runner_run(&rf, &c);
			double lm = runner_out(&rf, 0, 0);
			c.data[i][e] = x;
			double fd = (lp - lm) / (xp - xm), got = runner_out(&rg, 1 + i, e);
			if (!(fabs(got - fd) <= TOL * fmax(1.0, fabs(fd))))
				fail_msg(
				    "d loss / d %s[%lld]: autodiff %.12g, finite difference %.12g",
				    c.name[i], (long long)e, got, fd);
		}
	}
	runner_close(&rf);
	runner_close(&rg);
	free_data(&c);
}

/* ---------------------------------------------------------------- the cases */

static int32_t
unary(gc *c, mpcc_op o, range r)
{
	return op(c, o, "f", 1, wrt(c, "x", r, SHAPE(3, 4)));
}

/* -- matrix products */

static int32_t
b_matmul_2d(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(3, 5)), b = wrt(c, "b", SIGNED, SHAPE(5, 4));
	return op(c, MPCC_OP_MATMUL, "mm", 2, a, b);
}

static int32_t
b_matmul_batch_broadcast(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(2, 1, 3, 5)), b = wrt(c, "b", SIGNED, SHAPE(4, 5, 2));
	return op(c, MPCC_OP_MATMUL, "mm", 2, a, b);
}

static int32_t
b_matmul_vector_a(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(5)), b = wrt(c, "b", SIGNED, SHAPE(2, 5, 3));
	return op(c, MPCC_OP_MATMUL, "mm", 2, a, b);
}

static int32_t
b_matmul_vector_b(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(2, 3, 5)), b = wrt(c, "b", SIGNED, SHAPE(5));
	return op(c, MPCC_OP_MATMUL, "mm", 2, a, b);
}

static int32_t
b_matmul_constant_a(gc *c)
{
	int32_t b = wrt(c, "b", SIGNED, SHAPE(5, 2));
	return op(c, MPCC_OP_MATMUL, "mm", 2, cfloat(c, SIGNED, SHAPE(3, 5)), b);
}

static int32_t
b_gemm_transposed_row_bias(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(5, 3)), b = wrt(c, "b", SIGNED, SHAPE(4, 5));
	int32_t y = op(c, MPCC_OP_GEMM, "gemm", 3, a, b, wrt(c, "c", SIGNED, SHAPE(4)));
	attr_i(c, "transA", 1);
	attr_i(c, "transB", 1);
	attr_f(c, "alpha", 0.75f);
	attr_f(c, "beta", 1.25f);
	return y;
}

static int32_t
b_gemm_column_bias(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(3, 5)), b = wrt(c, "b", SIGNED, SHAPE(5, 4));
	return op(c, MPCC_OP_GEMM, "gemm", 3, a, b, wrt(c, "c", SIGNED, SHAPE(3, 1)));
}

static int32_t
b_gemm_trans_a_scalar_bias(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(4, 3)), b = wrt(c, "b", SIGNED, SHAPE(4, 2));
	int32_t y = op(c, MPCC_OP_GEMM, "gemm", 3, a, b, wrt(c, "c", SIGNED, 0, NULL));
	attr_i(c, "transA", 1);
	attr_f(c, "beta", 0.5f);
	return y;
}

/* beta 0: C does not contribute, its gradient is zeros */
static int32_t
b_gemm_zero_beta(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(2, 3)), b = wrt(c, "b", SIGNED, SHAPE(3, 4));
	int32_t y = op(c, MPCC_OP_GEMM, "gemm", 3, a, b, wrt(c, "c", SIGNED, SHAPE(2, 4)));
	attr_f(c, "beta", 0.0f);
	return y;
}

/* -- broadcasting arithmetic */

static int32_t
binary(gc *c, mpcc_op o, int ra, const int64_t *da, int rb, const int64_t *db, range rng_b)
{
	int32_t a = wrt(c, "a", SIGNED, ra, da), b = wrt(c, "b", rng_b, rb, db);
	return op(c, o, "f", 2, a, b);
}

static int32_t
b_add_broadcast(gc *c)
{
	return binary(c, MPCC_OP_ADD, SHAPE(3, 1, 5), SHAPE(4, 1), SIGNED);
}

static int32_t
b_sub_broadcast(gc *c)
{
	return binary(c, MPCC_OP_SUB, SHAPE(5), SHAPE(2, 3, 5), SIGNED);
}

static int32_t
b_mul_broadcast(gc *c)
{
	return binary(c, MPCC_OP_MUL, SHAPE(2, 3, 4), SHAPE(3, 1), SIGNED);
}

static int32_t
b_div_broadcast(gc *c)
{
	return binary(c, MPCC_OP_DIV, SHAPE(3, 4), SHAPE(4), POSITIVE);
}

static int32_t
b_mul_same_value_twice(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(3, 2));
	return op(c, MPCC_OP_MUL, "square", 2, x, x);
}

static int32_t
b_pow_constant_exponent(gc *c)
{
	int32_t x = wrt(c, "x", POSITIVE, SHAPE(3, 4));
	return op(c, MPCC_OP_POW, "cube", 2, x, cscalar(c, 3.0));
}

static int32_t
b_pow_both_operands(gc *c)
{
	int32_t x = wrt(c, "x", POSITIVE, SHAPE(3, 4)), e = wrt(c, "e", SIGNED, SHAPE(4));
	return op(c, MPCC_OP_POW, "pow", 2, x, e);
}

static int32_t
b_sum_three_broadcast(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(3, 4)), b = wrt(c, "b", SIGNED, SHAPE(4));
	return op(c, MPCC_OP_SUM, "sum", 3, a, b, wrt(c, "c", SIGNED, SHAPE(3, 1)));
}

static int32_t
b_mean_two(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(2, 3)), b = wrt(c, "b", SIGNED, SHAPE(2, 1));
	return op(c, MPCC_OP_MEAN, "mean", 2, a, b);
}

static int32_t
b_where_broadcast(gc *c)
{
	static const uint8_t cond[3] = {1, 0, 1};
	int32_t m = const_data(c, MPCC_DTYPE_BOOL, SHAPE(3, 1), cond);
	int32_t x = wrt(c, "x", SIGNED, SHAPE(3, 4)), y = wrt(c, "y", SIGNED, SHAPE(4));
	return op(c, MPCC_OP_WHERE, "where", 3, m, x, y);
}

static int32_t
b_two_consumers(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(2, 3));
	int32_t n = op(c, MPCC_OP_NEG, "neg", 1, x), t = op(c, MPCC_OP_TANH, "tanh", 1, x);
	return op(c, MPCC_OP_ADD, "add", 2, n, t);
}

/* -- pointwise */

static int32_t
b_neg(gc *c)
{
	return unary(c, MPCC_OP_NEG, SIGNED);
}
static int32_t
b_relu(gc *c)
{
	return unary(c, MPCC_OP_RELU, SIGNED);
}
static int32_t
b_sigmoid(gc *c)
{
	return unary(c, MPCC_OP_SIGMOID, SIGNED);
}
static int32_t
b_tanh(gc *c)
{
	return unary(c, MPCC_OP_TANH, SIGNED);
}
static int32_t
b_exp(gc *c)
{
	return unary(c, MPCC_OP_EXP, SIGNED);
}
static int32_t
b_log(gc *c)
{
	return unary(c, MPCC_OP_LOG, POSITIVE);
}
static int32_t
b_sqrt(gc *c)
{
	return unary(c, MPCC_OP_SQRT, POSITIVE);
}
static int32_t
b_identity(gc *c)
{
	return unary(c, MPCC_OP_IDENTITY, SIGNED);
}
static int32_t
b_reciprocal(gc *c)
{
	return unary(c, MPCC_OP_RECIPROCAL, POSITIVE);
}
static int32_t
b_abs(gc *c)
{
	return unary(c, MPCC_OP_ABS, SIGNED);
}
static int32_t
b_sin(gc *c)
{
	return unary(c, MPCC_OP_SIN, SIGNED);
}
static int32_t
b_cos(gc *c)
{
	return unary(c, MPCC_OP_COS, SIGNED);
}
static int32_t
b_erf(gc *c)
{
	return unary(c, MPCC_OP_ERF, SIGNED);
}
static int32_t
b_softplus(gc *c)
{
	return unary(c, MPCC_OP_SOFTPLUS, SIGNED);
}
static int32_t
b_dropout_inference(gc *c)
{
	return unary(c, MPCC_OP_DROPOUT, SIGNED);
}
static int32_t
b_gelu_exact(gc *c)
{
	return unary(c, MPCC_OP_GELU, SIGNED);
}

static int32_t
b_gelu_tanh(gc *c)
{
	int32_t y = unary(c, MPCC_OP_GELU, SIGNED);
	attr_s(c, "approximate", "tanh");
	return y;
}

static int32_t
b_leakyrelu(gc *c)
{
	int32_t y = unary(c, MPCC_OP_LEAKYRELU, SIGNED);
	attr_f(c, "alpha", 0.2f);
	return y;
}

/* The one f32 input: Cast to f64, squared so the gradient depends on x. */
static int32_t
b_cast_f32_to_f64(gc *c)
{
	int32_t x = wrt_typed(c, "x", MPCC_DTYPE_F32, SIGNED, SHAPE(3, 4));
	int32_t y = op(c, MPCC_OP_CAST, "widen", 1, x);
	attr_i(c, "to", 11);
	return op(c, MPCC_OP_MUL, "square", 2, y, y);
}

/* -- movement */

static int32_t
b_reshape_inferred_dim(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(2, 3, 4));
	return op(c, MPCC_OP_RESHAPE, "reshape", 2, x, ints(c, SHAPE(4, -1)));
}

static int32_t
b_flatten_axis2(gc *c)
{
	int32_t y = op(c, MPCC_OP_FLATTEN, "flatten", 1, wrt(c, "x", SIGNED, SHAPE(2, 3, 4, 5)));
	attr_i(c, "axis", 2);
	return y;
}

static int32_t
b_transpose_perm(gc *c)
{
	int32_t y = op(c, MPCC_OP_TRANSPOSE, "transpose", 1, wrt(c, "x", SIGNED, SHAPE(2, 3, 4)));
	attr_is(c, "perm", SHAPE(2, 0, 1));
	return y;
}

static int32_t
b_squeeze_axis(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(3, 1, 4, 1));
	return op(c, MPCC_OP_SQUEEZE, "squeeze", 2, x, ints(c, SHAPE(1)));
}

static int32_t
b_unsqueeze_axes(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(3, 4));
	return op(c, MPCC_OP_UNSQUEEZE, "unsqueeze", 2, x, ints(c, SHAPE(0, 3)));
}

static int32_t
b_expand(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(3, 1));
	return op(c, MPCC_OP_EXPAND, "expand", 2, x, ints(c, SHAPE(2, 3, 4)));
}

static int32_t
b_concat_with_constant(gc *c)
{
	int32_t a = wrt(c, "a", SIGNED, SHAPE(2, 3)), b = wrt(c, "b", SIGNED, SHAPE(2, 4));
	int32_t y = op(c, MPCC_OP_CONCAT, "concat", 3, a, cfloat(c, SIGNED, SHAPE(2, 1)), b);
	attr_i(c, "axis", 1);
	return y;
}

static int32_t
split2(gc *c, int32_t *out)
{
	int32_t in[2] = {wrt(c, "x", SIGNED, SHAPE(2, 7)), ints(c, SHAPE(2, 5))};
	opn(c, MPCC_OP_SPLIT, "split", 2, in, 2, out);
	attr_i(c, "axis", 1);
	return out[0];
}

static int32_t
b_split_one_part_unused(gc *c)
{
	int32_t o[2];
	split2(c, o);
	return op(c, MPCC_OP_TANH, "tanh", 1, o[1]);
}

static int32_t
b_split_both_parts(gc *c)
{
	int32_t o[2];
	split2(c, o);
	int32_t y =
	    op(c, MPCC_OP_CONCAT, "concat", 2, o[1], op(c, MPCC_OP_MUL, "sq", 2, o[0], o[0]));
	attr_i(c, "axis", 1);
	return y;
}

static int32_t
b_slice_unit_steps(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(5, 6));
	return op(c, MPCC_OP_SLICE, "slice", 4, x, ints(c, SHAPE(1, -4)), ints(c, SHAPE(4, 100)),
	          ints(c, SHAPE(0, 1)));
}

static int32_t
b_slice_strided_negative(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(6, 7));
	return op(c, MPCC_OP_SLICE, "slice", 5, x, ints(c, SHAPE(5, 1)), ints(c, SHAPE(0, 7)),
	          ints(c, SHAPE(0, 1)), ints(c, SHAPE(-2, 3)));
}

static int32_t
b_gather_embedding_repeats(gc *c)
{
	static const int64_t idx[] = {1, 4, 1, -1, 0, 5, 5, 2};
	int32_t e = wrt(c, "table", SIGNED, SHAPE(6, 3));
	return op(c, MPCC_OP_GATHER, "embed", 2, e,
	          const_data(c, MPCC_DTYPE_I64, SHAPE(2, 4), idx));
}

static int32_t
b_gather_axis1(gc *c)
{
	static const int64_t idx[] = {4, 0, 4, -2};
	int32_t x = wrt(c, "x", SIGNED, SHAPE(3, 5, 2));
	int32_t y =
	    op(c, MPCC_OP_GATHER, "gather", 2, x, const_data(c, MPCC_DTYPE_I64, SHAPE(2, 2), idx));
	attr_i(c, "axis", 1);
	return y;
}

/* -- reductions, softmax, losses, normalisation */

static int32_t
b_softmax_last_axis(gc *c)
{
	return op(c, MPCC_OP_SOFTMAX, "softmax", 1, wrt(c, "x", SIGNED, SHAPE(3, 5)));
}

static int32_t
b_softmax_middle_axis(gc *c)
{
	int32_t y = op(c, MPCC_OP_SOFTMAX, "softmax", 1, wrt(c, "x", SIGNED, SHAPE(2, 3, 4)));
	attr_i(c, "axis", 1);
	return y;
}

/* Before opset 13, axis 1 of [2,3,4] normalises over the trailing 12. */
static int32_t
b_softmax_opset11_coerced(gc *c)
{
	int32_t y = b_softmax_middle_axis(c);
	c->g->nodes[c->last].opset = 11;
	return y;
}

static int32_t
b_logsoftmax_axis0(gc *c)
{
	int32_t y = op(c, MPCC_OP_LOGSOFTMAX, "logsoftmax", 1, wrt(c, "x", SIGNED, SHAPE(4, 3)));
	attr_i(c, "axis", 0);
	return y;
}

static int32_t
b_reduce_sum_axis_dropped(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(3, 4, 5));
	int32_t y = op(c, MPCC_OP_REDUCESUM, "sum", 2, x, ints(c, SHAPE(1)));
	attr_i(c, "keepdims", 0);
	return y;
}

static int32_t
b_reduce_sum_all_kept(gc *c)
{
	return op(c, MPCC_OP_REDUCESUM, "sum", 1, wrt(c, "x", SIGNED, SHAPE(3, 4)));
}

static int32_t
b_reduce_sum_opset11_attr(gc *c)
{
	int32_t y = op(c, MPCC_OP_REDUCESUM, "sum", 1, wrt(c, "x", SIGNED, SHAPE(2, 3)));
	attr_is(c, "axes", SHAPE(-1));
	attr_i(c, "keepdims", 0);
	c->g->nodes[c->last].opset = 11;
	return y;
}

static int32_t
b_reduce_mean_attr_axes(gc *c)
{
	int32_t y = op(c, MPCC_OP_REDUCEMEAN, "mean", 1, wrt(c, "x", SIGNED, SHAPE(3, 4, 5)));
	attr_is(c, "axes", SHAPE(0, 2));
	return y;
}

static int32_t
b_reduce_mean_opset18_input_axes(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(3, 4, 5));
	int32_t y = op(c, MPCC_OP_REDUCEMEAN, "mean", 2, x, ints(c, SHAPE(-1, 0)));
	attr_i(c, "keepdims", 0);
	c->g->nodes[c->last].opset = 18;
	return y;
}

static int32_t
b_reduce_sum_noop_empty_axes(gc *c)
{
	int32_t y = op(c, MPCC_OP_REDUCESUM, "sum", 1, wrt(c, "x", SIGNED, SHAPE(2, 3)));
	attr_i(c, "noop_with_empty_axes", 1);
	return y;
}

/* A loss node over scores x[shape] and labels; n_out 2 asks SCE for
 * log_prob too, and y adds it to the loss so both outputs matter. */
static int32_t
loss_node(gc *c, mpcc_op o, const char *red, int rank, const int64_t *dims, const int64_t *labels,
          bool weights, bool ignore, int n_out)
{
	int64_t ld[MPCC_MAX_RANK] = {dims[0]}, cls[1] = {dims[1]};
	for (int i = 2; i < rank; i++)
		ld[i - 1] = dims[i];
	int32_t in[3] = {wrt(c, "scores", SIGNED, rank, dims),
	                 const_data(c, MPCC_DTYPE_I64, rank - 1, ld, labels), MPCC_NONE};
	if (weights)
		in[2] = cfloat(c, POSITIVE, 1, cls);
	int32_t out[2];
	opn(c, o, "loss_op", weights ? 3 : 2, in, n_out, out);
	attr_s(c, "reduction", red);
	if (ignore)
		attr_i(c, "ignore_index", -1);
	return n_out == 1 ? out[0] : op(c, MPCC_OP_ADD, "both", 2, out[1], out[0]);
}

static const int64_t labels_4[] = {0, 3, 4, 1};
static const int64_t labels_3x2[] = {1, 0, 3, 3, 2, 0};
static const int64_t labels_ignore_5[] = {1, -1, 3, 0, 1};

#define SCE MPCC_OP_SOFTMAXCROSSENTROPYLOSS
#define NLL MPCC_OP_NEGATIVELOGLIKELIHOODLOSS

static int32_t
b_sce_mean(gc *c)
{
	return loss_node(c, SCE, "mean", SHAPE(4, 5), labels_4, false, false, 1);
}

static int32_t
b_sce_sum_spatial(gc *c)
{
	return loss_node(c, SCE, "sum", SHAPE(3, 4, 2), labels_3x2, false, false, 1);
}

static int32_t
b_sce_none(gc *c)
{
	return loss_node(c, SCE, "none", SHAPE(4, 5), labels_4, false, false, 1);
}

static int32_t
b_sce_weights_ignore_mean(gc *c)
{
	return loss_node(c, SCE, "mean", SHAPE(5, 4), labels_ignore_5, true, true, 1);
}

static int32_t
b_sce_log_prob_output(gc *c)
{
	return loss_node(c, SCE, "sum", SHAPE(4, 5), labels_4, false, false, 2);
}

static int32_t
b_nll_mean(gc *c)
{
	return loss_node(c, NLL, "mean", SHAPE(4, 5), labels_4, false, false, 1);
}

static int32_t
b_nll_sum_spatial(gc *c)
{
	return loss_node(c, NLL, "sum", SHAPE(3, 4, 2), labels_3x2, false, false, 1);
}

static int32_t
b_nll_none(gc *c)
{
	return loss_node(c, NLL, "none", SHAPE(4, 5), labels_4, false, false, 1);
}

static int32_t
b_nll_weights_ignore_mean(gc *c)
{
	return loss_node(c, NLL, "mean", SHAPE(5, 4), labels_ignore_5, true, true, 1);
}

static int32_t
b_layernorm_last_axis(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(3, 5)), s = wrt(c, "scale", SIGNED, SHAPE(5));
	return op(c, MPCC_OP_LAYERNORMALIZATION, "ln", 3, x, s, wrt(c, "b", SIGNED, SHAPE(5)));
}

static int32_t
b_layernorm_axis1_broadcast(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(2, 3, 4)), s = wrt(c, "scale", SIGNED, SHAPE(3, 4));
	int32_t y = op(c, MPCC_OP_LAYERNORMALIZATION, "ln", 3, x, s, wrt(c, "b", SIGNED, SHAPE(4)));
	attr_i(c, "axis", 1);
	attr_f(c, "epsilon", 0.01f);
	return y;
}

/* -- convolution and pooling */

static int32_t
b_conv_strided_padded_dilated(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(2, 3, 7, 6)),
	        w = wrt(c, "w", SIGNED, SHAPE(4, 3, 3, 2));
	int32_t y = op(c, MPCC_OP_CONV, "conv", 3, x, w, wrt(c, "b", SIGNED, SHAPE(4)));
	attr_is(c, "strides", SHAPE(2, 1));
	attr_is(c, "pads", SHAPE(1, 0, 0, 1));
	attr_is(c, "dilations", SHAPE(1, 2));
	return y;
}

static int32_t
b_conv_same_upper_strided(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(1, 2, 5, 6)),
	        w = wrt(c, "w", SIGNED, SHAPE(3, 2, 3, 3));
	int32_t y = op(c, MPCC_OP_CONV, "conv", 2, x, w);
	attr_s(c, "auto_pad", "SAME_UPPER");
	attr_is(c, "strides", SHAPE(2, 2));
	return y;
}

static int32_t
b_conv_1d_stride_leaves_tail(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(2, 3, 9)), w = wrt(c, "w", SIGNED, SHAPE(2, 3, 4));
	int32_t y = op(c, MPCC_OP_CONV, "conv", 2, x, w);
	attr_is(c, "strides", SHAPE(3));
	return y;
}

static int32_t
b_conv_grouped_input_only(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(1, 4, 5, 4));
	int32_t y = op(c, MPCC_OP_CONV, "conv", 2, x, cfloat(c, SIGNED, SHAPE(6, 2, 3, 3)));
	attr_i(c, "group", 2);
	attr_is(c, "pads", SHAPE(1, 1, 1, 1));
	return y;
}

static int32_t
b_maxpool_overlapping_padded(gc *c)
{
	int32_t y = op(c, MPCC_OP_MAXPOOL, "pool", 1, wrt(c, "x", SIGNED, SHAPE(2, 2, 5, 6)));
	attr_is(c, "kernel_shape", SHAPE(3, 2));
	attr_is(c, "strides", SHAPE(2, 1));
	attr_is(c, "pads", SHAPE(1, 0, 1, 1));
	return y;
}

static int32_t
b_maxpool_indices_output(gc *c)
{
	int32_t x = wrt(c, "x", SIGNED, SHAPE(1, 2, 4, 6)), out[2];
	opn(c, MPCC_OP_MAXPOOL, "pool", 1, &x, 2, out);
	attr_is(c, "kernel_shape", SHAPE(2, 2));
	attr_is(c, "strides", SHAPE(2, 2));
	return out[0];
}

static int32_t
b_avgpool_exclude_pad(gc *c)
{
	int32_t y = op(c, MPCC_OP_AVERAGEPOOL, "pool", 1, wrt(c, "x", SIGNED, SHAPE(1, 2, 5, 5)));
	attr_is(c, "kernel_shape", SHAPE(3, 3));
	attr_is(c, "strides", SHAPE(2, 2));
	attr_is(c, "pads", SHAPE(1, 1, 1, 1));
	return y;
}

static int32_t
b_avgpool_ceil_include_pad(gc *c)
{
	int32_t y = op(c, MPCC_OP_AVERAGEPOOL, "pool", 1, wrt(c, "x", SIGNED, SHAPE(2, 1, 6, 5)));
	attr_is(c, "kernel_shape", SHAPE(2, 3));
	attr_is(c, "strides", SHAPE(2, 2));
	attr_is(c, "pads", SHAPE(0, 1, 0, 1));
	attr_i(c, "ceil_mode", 1);
	attr_i(c, "count_include_pad", 1);
	return y;
}

static int32_t
b_global_avgpool(gc *c)
{
	return op(c, MPCC_OP_GLOBALAVERAGEPOOL, "gap", 1, wrt(c, "x", SIGNED, SHAPE(2, 3, 4, 5)));
}

static const gcase cases[] = {
    /* matrix products */
    {"matmul_2d", b_matmul_2d},
    {"matmul_batch_dims_broadcast", b_matmul_batch_broadcast},
    {"matmul_vector_a", b_matmul_vector_a},
    {"matmul_vector_b", b_matmul_vector_b},
    {"matmul_constant_a_only_b_differentiated", b_matmul_constant_a},
    {"gemm_transposed_scaled_row_bias", b_gemm_transposed_row_bias},
    {"gemm_column_bias", b_gemm_column_bias},
    {"gemm_trans_a_scalar_bias", b_gemm_trans_a_scalar_bias},
    {"gemm_zero_beta", b_gemm_zero_beta},
    /* broadcasting arithmetic */
    {"add_broadcast", b_add_broadcast},
    {"sub_broadcast", b_sub_broadcast},
    {"mul_broadcast", b_mul_broadcast},
    {"div_broadcast", b_div_broadcast},
    {"mul_same_value_twice", b_mul_same_value_twice},
    {"pow_constant_exponent", b_pow_constant_exponent},
    {"pow_both_operands", b_pow_both_operands},
    {"sum_three_broadcast", b_sum_three_broadcast},
    {"mean_two_broadcast", b_mean_two},
    {"where_broadcast", b_where_broadcast},
    {"two_consumers", b_two_consumers},
    /* pointwise */
    {"neg", b_neg},
    {"relu", b_relu},
    {"leakyrelu", b_leakyrelu},
    {"sigmoid", b_sigmoid},
    {"tanh", b_tanh},
    {"exp", b_exp},
    {"log", b_log},
    {"sqrt", b_sqrt},
    {"identity", b_identity},
    {"reciprocal", b_reciprocal},
    {"abs", b_abs},
    {"sin", b_sin},
    {"cos", b_cos},
    {"erf", b_erf},
    {"softplus", b_softplus},
    {"gelu_exact", b_gelu_exact},
    {"gelu_tanh", b_gelu_tanh},
    {"dropout_inference", b_dropout_inference},
    {"cast_f32_to_f64", b_cast_f32_to_f64},
    /* movement */
    {"reshape_inferred_dim", b_reshape_inferred_dim},
    {"flatten_axis2", b_flatten_axis2},
    {"transpose_perm", b_transpose_perm},
    {"squeeze_axis", b_squeeze_axis},
    {"unsqueeze_axes", b_unsqueeze_axes},
    {"expand", b_expand},
    {"concat_with_constant", b_concat_with_constant},
    {"split_one_part_unused", b_split_one_part_unused},
    {"split_both_parts", b_split_both_parts},
    {"slice_unit_steps", b_slice_unit_steps},
    {"slice_strided_negative_step", b_slice_strided_negative},
    {"gather_embedding_repeated_negative_indices", b_gather_embedding_repeats},
    {"gather_axis1", b_gather_axis1},
    /* reductions, softmax, losses, normalisation */
    {"softmax_last_axis", b_softmax_last_axis},
    {"softmax_middle_axis", b_softmax_middle_axis},
    {"softmax_opset11_coerced", b_softmax_opset11_coerced},
    {"logsoftmax_axis0", b_logsoftmax_axis0},
    {"reduce_sum_axis_dropped", b_reduce_sum_axis_dropped},
    {"reduce_sum_all_kept", b_reduce_sum_all_kept},
    {"reduce_sum_opset11_attr", b_reduce_sum_opset11_attr},
    {"reduce_mean_attr_axes", b_reduce_mean_attr_axes},
    {"reduce_mean_opset18_input_axes", b_reduce_mean_opset18_input_axes},
    {"reduce_sum_noop_empty_axes", b_reduce_sum_noop_empty_axes},
    {"sce_mean", b_sce_mean},
    {"sce_sum_spatial", b_sce_sum_spatial},
    {"sce_none", b_sce_none},
    {"sce_weights_ignore_index_mean", b_sce_weights_ignore_mean},
    {"sce_log_prob_output", b_sce_log_prob_output},
    {"nll_mean", b_nll_mean},
    {"nll_sum_spatial", b_nll_sum_spatial},
    {"nll_none", b_nll_none},
    {"nll_weights_ignore_index_mean", b_nll_weights_ignore_mean},
    {"layernorm_last_axis", b_layernorm_last_axis},
    {"layernorm_axis1_broadcast_scale", b_layernorm_axis1_broadcast},
    /* convolution and pooling */
    {"conv_strided_padded_dilated", b_conv_strided_padded_dilated},
    {"conv_same_upper_strided", b_conv_same_upper_strided},
    {"conv_1d_stride_leaves_tail", b_conv_1d_stride_leaves_tail},
    {"conv_grouped_input_only", b_conv_grouped_input_only},
    {"maxpool_overlapping_padded", b_maxpool_overlapping_padded},
    {"maxpool_indices_output", b_maxpool_indices_output},
    {"avgpool_exclude_pad", b_avgpool_exclude_pad},
    {"avgpool_ceil_include_pad", b_avgpool_ceil_include_pad},
    {"global_avgpool", b_global_avgpool},
};

/* ---------------------------------------------------------------- the contract */

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void
op_without_rule_is_an_error_naming_the_node(void **state)
{
	(void)state;
	gc c;
	int32_t grad;
	mpcc_diag d;
	fresh(&c, "norule");
	int32_t x = wrt(&c, "x", SIGNED, SHAPE(3, 4));
	int32_t loss = append_loss(&c, op(&c, MPCC_OP_REDUCEMAX, "peak", 1, x));
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &x, 1, &grad, &d),
	                 MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(d.msg, "node 'peak' (ReduceMax, opset 17): no gradient rule"));
	assert_int_equal(grad, MPCC_NONE);
	mpcc_graph_destroy(c.g);
	free_data(&c);
}

static void
grouped_conv_weights_are_refused_by_name(void **state)
{
	(void)state;
	gc c;
	int32_t grad;
	mpcc_diag d;
	fresh(&c, "grouped");
	int32_t x = cfloat(&c, SIGNED, SHAPE(1, 4, 3, 3));
	int32_t w = wrt(&c, "w", SIGNED, SHAPE(2, 2, 1, 1));
	int32_t y = op(&c, MPCC_OP_CONV, "gconv", 2, x, w);
	attr_i(&c, "group", 2);
	int32_t loss = append_loss(&c, y);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &w, 1, &grad, &d),
	                 MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(d.msg, "node 'gconv' (Conv, opset 17): no gradient rule for the "
	                              "weights of a grouped Conv"));
	mpcc_graph_destroy(c.g);
	free_data(&c);
}

/* z is not read at all; w reaches the loss only through an integer value. */
static void
a_value_not_reaching_the_loss_gets_none(void **state)
{
	(void)state;
	gc c;
	int32_t grads[3];
	mpcc_diag d;
	fresh(&c, "unreached");
	int32_t x = wrt(&c, "x", SIGNED, SHAPE(2, 3));
	int32_t z = wrt(&c, "z", SIGNED, SHAPE(2, 3));
	int32_t w = wrt(&c, "w", SIGNED, SHAPE(2, 3));
	int32_t wi = op(&c, MPCC_OP_CAST, "to_int", 1, w);
	attr_i(&c, "to", 7);
	int32_t wf = op(&c, MPCC_OP_CAST, "to_float", 1, wi);
	attr_i(&c, "to", 11);
	int32_t loss =
	    append_loss(&c, op(&c, MPCC_OP_ADD, "add", 2, op(&c, MPCC_OP_EXP, "e", 1, x), wf));
	int32_t wrts[3] = {x, z, w};
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, wrts, 3, grads, &d), MPCC_OK);
	assert_true(grads[0] != MPCC_NONE);
	assert_int_equal(grads[1], MPCC_NONE);
	assert_int_equal(grads[2], MPCC_NONE);
	mpcc_graph_destroy(c.g);
	free_data(&c);
}

/* x feeds Neg and Tanh: its gradient is an Add of both contributions, named
 * after the consumer visited second; forward names are untouched. */
static void
a_value_read_twice_sums_both_contributions(void **state)
{
	(void)state;
	gc c;
	int32_t grad;
	mpcc_diag d;
	fresh(&c, "twice");
	int32_t x = wrt(&c, "x", SIGNED, SHAPE(2, 3));
	int32_t n = op(&c, MPCC_OP_NEG, "neg", 1, x), t = op(&c, MPCC_OP_TANH, "tanh", 1, x);
	int32_t loss = append_loss(&c, op(&c, MPCC_OP_ADD, "add", 2, n, t));
	int n_nodes = c.g->n_nodes;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &x, 1, &grad, &d), MPCC_OK);
	const mpcc_node *p = &c.g->nodes[c.g->values[grad].producer];
	assert_int_equal(p->op, MPCC_OP_ADD);
	assert_string_equal(p->name, "grad/neg/acc0");
	assert_string_equal(c.g->nodes[1].name, "tanh");
	for (int i = n_nodes; i < c.g->n_nodes; i++)
		assert_true(starts_with(c.g->nodes[i].name, "grad/"));
	mpcc_graph_destroy(c.g);
	free_data(&c);
}

/* loss = sum(x * x) in f64, seeded by an f32 graph input "scale" = 4:
 * the gradient is 8 x. */
static void
the_seed_scales_the_gradient(void **state)
{
	(void)state;
	gc c;
	int32_t grad;
	mpcc_diag d;
	runner r;
	fresh(&c, "seed");
	int32_t x = wrt(&c, "x", SIGNED, SHAPE(2, 3));
	int32_t scale = wrt_typed(&c, "scale", MPCC_DTYPE_F32, SIGNED, 0, NULL);
	c.data[1][0] = 4.0;
	int32_t loss = op(&c, MPCC_OP_REDUCESUM, "loss", 1, op(&c, MPCC_OP_MUL, "sq", 2, x, x));
	attr_i(&c, "keepdims", 0);
	infer(c.g);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, scale, &x, 1, &grad, &d), MPCC_OK);
	assert_int_equal(mpcc_graph_add_output(c.g, grad), MPCC_OK);
	runner_open(&r, compile(c.g));
	runner_run(&r, &c);
	for (int e = 0; e < 6; e++)
		assert_true(fabs(runner_out(&r, 0, e) - 8 * c.data[0][e]) <= 1e-12);
	runner_close(&r);
	free_data(&c);
}

/* All four inputs equal: each 2x2 window's gradient goes to its first
 * element in window order, whatever the order of the others. */
static void
maxpool_ties_go_to_the_first_maximum(void **state)
{
	(void)state;
	static const double rw[2] = {2, 3};
	gc c;
	int32_t grad;
	mpcc_diag d;
	runner r;
	fresh(&c, "ties");
	int32_t x = wrt(&c, "x", SIGNED, SHAPE(1, 1, 2, 3));
	for (int e = 0; e < 6; e++)
		c.data[0][e] = 0.5;
	int32_t y = op(&c, MPCC_OP_MAXPOOL, "pool", 1, x);
	attr_is(&c, "kernel_shape", SHAPE(2, 2));
	int32_t rv = const_data(&c, MPCC_DTYPE_F64, SHAPE(1, 1, 1, 2), rw);
	int32_t loss = op(&c, MPCC_OP_REDUCESUM, "loss", 1, op(&c, MPCC_OP_MUL, "w", 2, y, rv));
	attr_i(&c, "keepdims", 0);
	infer(c.g);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &x, 1, &grad, &d), MPCC_OK);
	assert_int_equal(mpcc_graph_add_output(c.g, grad), MPCC_OK);
	runner_open(&r, compile(c.g));
	runner_run(&r, &c);
	static const double want[6] = {2, 3, 0, 0, 0, 0};
	for (int e = 0; e < 6; e++)
		assert_true(runner_out(&r, 0, e) == want[e]);
	runner_close(&r);
	free_data(&c);
}

/*
 * W is an initializer, so Transpose(W) is folded, and dead-code elimination
 * has run with no outputs, so every forward node is dead: the gradient still
 * flows through the folded Transpose, and the Tanh it needs comes back to
 * life. y = tanh(x W^T), loss = sum(y R): dW = ((1 - y^2) R)^T x.
 */
static void
initializers_differentiate_through_folded_and_dead_nodes(void **state)
{
	(void)state;
	gc c;
	int32_t grad;
	mpcc_diag d;
	runner r;
	double wv[6], rv[12];
	fresh(&c, "initializer");
	int32_t x = wrt(&c, "x", SIGNED, SHAPE(4, 2));
	for (int e = 0; e < 6; e++)
		wv[e] = sample(&c, SIGNED);
	for (int e = 0; e < 12; e++)
		rv[e] = sample(&c, SIGNED);
	int32_t w = const_data(&c, MPCC_DTYPE_F64, SHAPE(3, 2), wv);
	c.g->values[w].flags |= MPCC_VALUE_WEIGHT;
	int32_t y = op(&c, MPCC_OP_TANH, "tanh", 1,
	               op(&c, MPCC_OP_MATMUL, "mm", 2, x, op(&c, MPCC_OP_TRANSPOSE, "wt", 1, w)));
	int32_t rc = const_data(&c, MPCC_DTYPE_F64, SHAPE(4, 3), rv);
	int32_t loss = op(&c, MPCC_OP_REDUCESUM, "loss", 1, op(&c, MPCC_OP_MUL, "weigh", 2, y, rc));
	attr_i(&c, "keepdims", 0);
	infer(c.g);
	mpcc_pass_ctx cx = {.d = &d, .opts = &opts};
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_eliminate_dead(c.g, &cx), MPCC_OK);
	assert_true(c.g->nodes[c.g->values[y].producer].dead);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &w, 1, &grad, &d), MPCC_OK);
	assert_false(c.g->nodes[c.g->values[y].producer].dead);
	assert_int_equal(mpcc_graph_add_output(c.g, grad), MPCC_OK);
	runner_open(&r, compile(c.g));
	runner_run(&r, &c);
	for (int j = 0; j < 3; j++) {
		for (int k = 0; k < 2; k++) {
			double want = 0;
			for (int i = 0; i < 4; i++) {
				double z = c.data[0][i * 2] * wv[j * 2] +
				           c.data[0][i * 2 + 1] * wv[j * 2 + 1];
				double t = tanh(z);
				want += (1 - t * t) * rv[i * 3 + j] * c.data[0][i * 2 + k];
			}
			assert_true(fabs(runner_out(&r, 0, j * 2 + k) - want) <= 1e-12);
		}
	}
	runner_close(&r);
	free_data(&c);
}

static void
a_non_float_loss_is_invalid(void **state)
{
	(void)state;
	gc c;
	int32_t grad;
	mpcc_diag d;
	fresh(&c, "intloss");
	int32_t x = wrt(&c, "x", SIGNED, SHAPE(3));
	int32_t l = op(&c, MPCC_OP_CAST, "to_int", 1, x);
	attr_i(&c, "to", 7);
	infer(c.g);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, l, MPCC_NONE, &x, 1, &grad, &d), MPCC_ERR_INVALID);
	assert_int_equal(grad, MPCC_NONE);
	mpcc_graph_destroy(c.g);
	free_data(&c);
}

/* The node of g named name (NULL when none). */
static const mpcc_node *
node_named(const mpcc_graph *g, const char *name)
{
	for (int i = 0; i < g->n_nodes; i++)
		if (g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0)
			return &g->nodes[i];
	return NULL;
}

/*
 * w (f32) feeds two MatMuls, h = x w and y = h w, so its gradient is the
 * Add of both contributions. Compiled in fp16, that Add computes and
 * accumulates in f32 by policy and reads f32 inputs (the casts pass widens
 * the f16 products), while the gradient MatMuls compute in f16 with f32
 * accumulation; the whole step still lowers to an fp16 plan.
 */
static void
gradient_accumulation_is_f32_in_fp16(void **state)
{
	(void)state;
	gc c;
	int32_t grad;
	mpcc_diag d;
	mpcc_lower lx;
	mpcc_plan *p = NULL;
	mpcc_compile_options o = opts;
	o.precision = MPCC_PRECISION_FP16;
	fresh(&c, "accumulate");
	int32_t x = wrt_typed(&c, "x", MPCC_DTYPE_F32, SIGNED, SHAPE(2, 3));
	int32_t w = wrt_typed(&c, "w", MPCC_DTYPE_F32, SIGNED, SHAPE(3, 3));
	int32_t h = op(&c, MPCC_OP_MATMUL, "mm1", 2, x, w);
	int32_t loss = op(&c, MPCC_OP_REDUCESUM, "loss", 1, op(&c, MPCC_OP_MATMUL, "mm2", 2, h, w));
	attr_i(&c, "keepdims", 0);
	infer(c.g);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &w, 1, &grad, &d), MPCC_OK);
	assert_int_equal(mpcc_graph_add_output(c.g, grad), MPCC_OK);
	mpcc_pass_ctx cx = {.d = &d, .opts = &o};
	if (mpcc_run_pipeline(c.g, &cx))
		fail_msg("pipeline: %s", d.msg);

	const mpcc_node *acc = node_named(c.g, "grad/mm1/acc1");
	assert_non_null(acc);
	assert_false(acc->dead);
	assert_true(mpcc_autodiff_is_accumulation(acc));
	assert_int_equal(acc->compute, MPCC_DTYPE_F32);
	assert_int_equal(acc->accum, MPCC_DTYPE_F32);
	assert_string_equal(acc->reason, "policy: gradient accumulation (Add)");
	for (int j = 0; j < acc->n_in; j++)
		assert_int_equal(c.g->values[acc->in[j]].dtype, MPCC_DTYPE_F32);
	int n_mm = 0;
	for (int i = 0; i < c.g->n_nodes; i++) {
		const mpcc_node *n = &c.g->nodes[i];
		if (n->dead || n->op != MPCC_OP_MATMUL || !starts_with(n->name, "grad/"))
			continue;
		n_mm++;
		assert_false(mpcc_autodiff_is_accumulation(n));
		assert_int_equal(n->compute, MPCC_DTYPE_F16);
		assert_int_equal(n->accum, MPCC_DTYPE_F32);
		assert_string_equal(n->reason, "policy: matrix op (MatMul)");
	}
	assert_int_equal(n_mm, 3); /* mm2's dA and dB, mm1's dB */

	/* The mark is the name autodiff gives an inserted Add. */
	static const struct {
		const char *name;
		int32_t src_index;
		bool is_acc;
	} names[] = {
	    {"grad/x/acc0", -1, true},    {"grad/x/acc12_3", -1, true}, {"grad/x/acc0", 4, false},
	    {"grad/x/acc", -1, false},    {"grad/acc0/add", -1, false}, {"grad/x/acc0_", -1, false},
	    {"x/grad/y/acc0", -1, false},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		mpcc_node n = {
		    .name = names[i].name, .op = MPCC_OP_ADD, .src_index = names[i].src_index};
		assert_int_equal(mpcc_autodiff_is_accumulation(&n), names[i].is_acc);
	}

	mpcc_lower_init(&lx, c.g, &d);
	if (mpcc_lower_graph(&lx) || mpcc_fuse_kernels(&lx, NULL) ||
	    mpcc_plan_build(c.g, &lx, MPCC_PRECISION_FP16, &p, &d))
		fail_msg("lowering: %s", d.msg);
	mpcc_lower_fini(&lx);
	mpcc_plan_free(p);
	mpcc_graph_destroy(c.g);
	free_data(&c);
}

static const struct CMUnitTest contract[] = {
    cmocka_unit_test(op_without_rule_is_an_error_naming_the_node),
    cmocka_unit_test(grouped_conv_weights_are_refused_by_name),
    cmocka_unit_test(a_value_not_reaching_the_loss_gets_none),
    cmocka_unit_test(a_value_read_twice_sums_both_contributions),
    cmocka_unit_test(the_seed_scales_the_gradient),
    cmocka_unit_test(maxpool_ties_go_to_the_first_maximum),
    cmocka_unit_test(initializers_differentiate_through_folded_and_dead_nodes),
    cmocka_unit_test(a_non_float_loss_is_invalid),
    cmocka_unit_test(gradient_accumulation_is_f32_in_fp16),
};

int
main(void)
{
	struct CMUnitTest
	    tests[sizeof cases / sizeof cases[0] + sizeof contract / sizeof contract[0]];
	int n = 0;
	mpcc_compile_options_init(&opts);
	opts.precision = MPCC_PRECISION_FP32;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		tests[n++] = (struct CMUnitTest){cases[i].name, gradient_check, NULL, NULL,
		                                 (void *)&cases[i]};
	for (size_t i = 0; i < sizeof contract / sizeof contract[0]; i++)
		tests[n++] = contract[i];
	return _cmocka_run_group_tests("autodiff", tests, (size_t)n, NULL, NULL);
}
