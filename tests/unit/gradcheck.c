/*
 * gradcheck.c - the shared harness of the autodiff unit tests: graph
 * builders with a seeded random stream, compiling and running on the CPU
 * backend, and the finite-difference gradient check (see gradcheck.h).
 *
 * Every builder checks each graph call with a cmocka assertion, so a case
 * reads as the graph it builds; a failure stops the running test (cmocka
 * longjmps out of it). The check builds a case twice from the same seed,
 * once differentiated and once forward only, so both plans see the same
 * constants and R.
 */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/fuse.h"
#include "passes/autodiff.h"
#include "passes/passes.h"
#include "runtime/plan.h"

#define H_F64 1e-6
#define H_F32 (1.0 / 1024)
#define TOL 1e-6

/* ---------------------------------------------------------------- graph building */

static double
uniform(mpcc_gc *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return (double)(c->rng >> 11) / (double)(1ull << 53);
}

/* Signed values keep 0.05 away from 0; positive ones lie in [0.5, 2]. */
double
mpcc_gc_sample(mpcc_gc *c, mpcc_gc_range r)
{
	double u = uniform(c);
	if (r == MPCC_GC_POSITIVE)
		return 0.5 + 1.5 * u;
	double v = 2 * u - 1;
	return v < 0 ? v - 0.05 : v + 0.05;
}

static int32_t
value(mpcc_gc *c, const char *name, mpcc_dtype t, int rank, const int64_t *dims)
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

int32_t
mpcc_gc_wrt_typed(mpcc_gc *c, const char *name, mpcc_dtype t, mpcc_gc_range r, int rank,
                  const int64_t *dims)
{
	int i = c->n_in++;
	assert_true(i < MPCC_GC_MAX_IN);
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
		double x = mpcc_gc_sample(c, r);
		c->data[i][k] = t == MPCC_DTYPE_F32 ? (double)(float)x : x;
	}
	assert_int_equal(mpcc_graph_add_input(c->g, c->in[i]), MPCC_OK);
	return c->in[i];
}

int32_t
mpcc_gc_wrt(mpcc_gc *c, const char *name, mpcc_gc_range r, int rank, const int64_t *dims)
{
	return mpcc_gc_wrt_typed(c, name, MPCC_DTYPE_F64, r, rank, dims);
}

int32_t
mpcc_gc_const_data(mpcc_gc *c, mpcc_dtype t, int rank, const int64_t *dims, const void *data)
{
	int32_t v = value(c, NULL, t, rank, dims);
	size_t nb = (size_t)count(rank, dims) * mpcc_dtype_size(t);
	void *p = malloc(nb + 1);
	assert_non_null(p);
	memcpy(p, data, nb);
	mpcc_value_set_data(&c->g->values[v], p, nb);
	return v;
}

int32_t
mpcc_gc_cfloat(mpcc_gc *c, mpcc_gc_range r, int rank, const int64_t *dims)
{
	int64_t n = count(rank, dims);
	double *p = malloc(sizeof(double) * (size_t)(n + 1));
	assert_non_null(p);
	for (int64_t k = 0; k < n; k++)
		p[k] = mpcc_gc_sample(c, r);
	int32_t v = mpcc_gc_const_data(c, MPCC_DTYPE_F64, rank, dims, p);
	free(p);
	return v;
}

int32_t
mpcc_gc_cscalar(mpcc_gc *c, double x)
{
	return mpcc_gc_const_data(c, MPCC_DTYPE_F64, 0, NULL, &x);
}

int32_t
mpcc_gc_ints(mpcc_gc *c, int n, const int64_t *v)
{
	int64_t dims[1] = {n};
	return mpcc_gc_const_data(c, MPCC_DTYPE_I64, 1, dims, v);
}

int32_t
mpcc_gc_op(mpcc_gc *c, mpcc_op o, const char *name, int n_in, ...)
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

void
mpcc_gc_opn(mpcc_gc *c, mpcc_op o, const char *name, int n_in, const int32_t *in, int n_out,
            int32_t *out)
{
	for (int j = 0; j < n_out; j++)
		out[j] = value(c, NULL, MPCC_DTYPE_UNDEF, -1, NULL);
	c->last = mpcc_graph_add_node(c->g, o, name, n_in, in, n_out, out);
	assert_true(c->last >= 0);
}

void
mpcc_gc_attr_i(mpcc_gc *c, const char *name, int64_t v)
{
	mpcc_attr *a = mpcc_node_add_attr(c->g, c->last, name, MPCC_ATTR_INT);
	assert_non_null(a);
	a->i = v;
}

void
mpcc_gc_attr_f(mpcc_gc *c, const char *name, float v)
{
	mpcc_attr *a = mpcc_node_add_attr(c->g, c->last, name, MPCC_ATTR_FLOAT);
	assert_non_null(a);
	a->f = v;
}

void
mpcc_gc_attr_s(mpcc_gc *c, const char *name, const char *v)
{
	mpcc_attr *a = mpcc_node_add_attr(c->g, c->last, name, MPCC_ATTR_STRING);
	assert_non_null(a);
	a->s = v;
}

void
mpcc_gc_attr_is(mpcc_gc *c, const char *name, int n, const int64_t *v)
{
	mpcc_attr *a = mpcc_node_add_attr(c->g, c->last, name, MPCC_ATTR_INTS);
	assert_non_null(a);
	a->n = n;
	a->ints = mpcc_arena_alloc(&c->g->arena, sizeof(int64_t) * (size_t)n);
	assert_non_null(a->ints);
	memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
}

/* ---------------------------------------------------------------- compiling and running */

const mpcc_compile_options *
mpcc_gc_options(void)
{
	static mpcc_compile_options opts;
	static bool made;
	if (!made) {
		mpcc_compile_options_init(&opts);
		opts.precision = MPCC_PRECISION_FP32;
		made = true;
	}
	return &opts;
}

void
mpcc_gc_infer(mpcc_graph *g)
{
	mpcc_diag d;
	mpcc_diag_init(&d);
	mpcc_pass_ctx cx = {.d = &d, .opts = mpcc_gc_options()};
	if (mpcc_check_ops(g, &cx) || mpcc_graph_verify(g, &d) || mpcc_infer_and_fold(g, &cx))
		fail_msg("inference failed: %s", d.msg);
}

mpcc_plan *
mpcc_gc_compile(mpcc_graph *g)
{
	mpcc_diag d;
	mpcc_lower lx;
	mpcc_plan *p = NULL;
	mpcc_diag_init(&d);
	mpcc_pass_ctx cx = {.d = &d, .opts = mpcc_gc_options()};
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

int32_t
mpcc_gc_append_loss(mpcc_gc *c, int32_t y)
{
	mpcc_gc_infer(c->g);
	const mpcc_value *v = &c->g->values[y];
	int64_t dims[MPCC_MAX_RANK];
	int rank = v->rank;
	memcpy(dims, v->dims, sizeof dims);
	int32_t r = mpcc_gc_cfloat(c, MPCC_GC_SIGNED, rank, dims);
	int32_t loss = mpcc_gc_op(c, MPCC_OP_REDUCESUM, "loss", 1,
	                          mpcc_gc_op(c, MPCC_OP_MUL, "weigh", 2, y, r));
	mpcc_gc_attr_i(c, "keepdims", 0);
	mpcc_gc_infer(c->g);
	return loss;
}

/* FNV-1a of the name, made odd so the xorshift stream never sticks at 0. */
static uint64_t
seed_of(const char *name)
{
	uint64_t h = 1469598103934665603ull;
	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 1099511628211ull;
	return h | 1;
}

void
mpcc_gc_init(mpcc_gc *c, const char *name)
{
	memset(c, 0, sizeof *c);
	assert_int_equal(mpcc_graph_create(&c->g), MPCC_OK);
	c->g->opset = 17;
	c->rng = seed_of(name);
}

/* Builds case k's graph with its loss into c. */
static int32_t
build(const mpcc_gc_case *k, mpcc_gc *c)
{
	mpcc_gc_init(c, k->name);
	return mpcc_gc_append_loss(c, k->build(c));
}

void
mpcc_gc_free_data(mpcc_gc *c)
{
	for (int i = 0; i < c->n_in; i++)
		free(c->data[i]);
}

void
mpcc_gc_runner_open(mpcc_gc_runner *r, mpcc_plan *p)
{
	r->p = p;
	assert_int_equal(mpcc_context_create(&r->cx), MPCC_OK);
	assert_int_equal(mpcc_session_create(r->cx, p, "cpu", &r->s), MPCC_OK);
}

void
mpcc_gc_runner_close(mpcc_gc_runner *r)
{
	mpcc_session_destroy(r->s);
	mpcc_context_destroy(r->cx);
	mpcc_plan_free(r->p);
}

void
mpcc_gc_runner_run(mpcc_gc_runner *r, const mpcc_gc *c)
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

double
mpcc_gc_runner_out(mpcc_gc_runner *r, int i, int64_t k)
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
 * the central difference of the forward plan's loss. Output 0 of the
 * gradient plan is the loss, output 1 + i the gradient of input i.
 */
void
mpcc_gc_check(void **state)
{
	const mpcc_gc_case *k = *state;
	mpcc_gc c, cf;
	int32_t grads[MPCC_GC_MAX_IN];
	mpcc_diag d;
	mpcc_gc_runner rg, rf;

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
	mpcc_gc_runner_open(&rg, mpcc_gc_compile(c.g));
	loss = build(k, &cf);
	assert_int_equal(mpcc_graph_add_output(cf.g, loss), MPCC_OK);
	mpcc_gc_runner_open(&rf, mpcc_gc_compile(cf.g));
	mpcc_gc_free_data(&cf);

	mpcc_gc_runner_run(&rg, &c);
	for (int i = 0; i < c.n_in; i++) {
		for (int64_t e = 0; e < c.numel[i]; e++) {
			double x = c.data[i][e], h = c.dt[i] == MPCC_DTYPE_F32 ? H_F32 : H_F64;
			double xp = x + h, xm = x - h;
			if (c.dt[i] == MPCC_DTYPE_F32) {
				xp = (float)xp;
				xm = (float)xm;
			}
			c.data[i][e] = xp;
			mpcc_gc_runner_run(&rf, &c);
			double lp = mpcc_gc_runner_out(&rf, 0, 0);
			c.data[i][e] = xm;
			mpcc_gc_runner_run(&rf, &c);
			double lm = mpcc_gc_runner_out(&rf, 0, 0);
			c.data[i][e] = x;
			double fd = (lp - lm) / (xp - xm), got = mpcc_gc_runner_out(&rg, 1 + i, e);
			if (!(fabs(got - fd) <= TOL * fmax(1.0, fabs(fd))))
				fail_msg(
				    "d loss / d %s[%lld]: autodiff %.12g, finite difference %.12g",
				    c.name[i], (long long)e, got, fd);
		}
	}
	mpcc_gc_runner_close(&rf);
	mpcc_gc_runner_close(&rg);
	mpcc_gc_free_data(&c);
}

/*
 * One cmocka group of the gradient checks, then the extra tests. The
 * entries are built at run time because each check's state is its case.
 */
int
mpcc_gc_run_group(const char *group, const mpcc_gc_case *cases, size_t n_cases,
                  const struct CMUnitTest *extra, size_t n_extra)
{
	struct CMUnitTest *tests = calloc(n_cases + n_extra + 1, sizeof *tests);
	size_t n = 0;
	if (!tests) {
		fprintf(stderr, "%s: out of memory\n", group);
		return 1;
	}
	mpcc_gc_options();
	for (size_t i = 0; i < n_cases; i++)
		tests[n++] = (struct CMUnitTest){cases[i].name, mpcc_gc_check, NULL, NULL,
		                                 (void *)&cases[i]};
	for (size_t i = 0; i < n_extra; i++)
		tests[n++] = extra[i];
	int failed = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	free(tests);
	return failed;
}
