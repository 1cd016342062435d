/*
 * test_train_runtime.c - the runtime side of training: section TRAN of the
 * plan, the trainer (steps, evaluation, skip counts, checkpoints) and .npz
 * reading.
 *
 * The step graphs are built by hand in the IR, no autodiff: linear
 * regression pred = x·w with MSE loss and plain gradient descent,
 * w' = Where(ok, w - lr (2/B) xᵀ(x·w - y), w), ok = apply and the loss is
 * not NaN; and a two-class least-squares classifier with a second piece of
 * state, a loss scale that doubles while steps succeed. They go through the
 * same passes, lowering, fusion, plan builder, serialisation and loader as
 * mpcc_compile_*. The convergence tolerance comes from the problem: for
 * gradient descent on a quadratic the error contracts by
 * rho = (kmax - kmin) / (kmax + kmin) per step at lr = 2 / (kmin + kmax),
 * with k the eigenvalues of the loss's Hessian, computed here in double.
 *
 * `test_train_runtime --write-plans DIR` writes the two plans for
 * tests/test_cli_train.sh instead of running the tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/fuse.h"
#include "passes/passes.h"
#include "runtime/api_internal.h"
#include "runtime/npy.h"
#include "runtime/npz.h"
#include "runtime/plan.h"

#define B 16 /* batch */
#define F 3  /* features */
#define STEPS 50

static float xs[B * F], ys[B];
static const float w_true[F] = {1.5f, -2.0f, 0.5f};
static const float w_init[F] = {0.25f, 0.5f, -0.75f};
static float lr = 0.1f; /* set by main from the data's Hessian */
static double rho;      /* the contraction that lr gives */
static double kappa;    /* kmax / kmin */

/* ---------------------------------------------------------------- data */

static uint32_t
lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

/* x uniform in [-1, 1], y = x·w_true exactly, so w_true is the minimum. */
static void
make_data(void)
{
	uint32_t s = 12345;

	for (int i = 0; i < B * F; i++)
		xs[i] = (float)lcg(&s) / (float)(1u << 24) * 2.0f - 1.0f;
	for (int i = 0; i < B; i++) {
		double acc = 0;
		for (int j = 0; j < F; j++)
			acc += (double)xs[i * F + j] * w_true[j];
		ys[i] = (float)acc;
	}
}

/* Extreme eigenvalues of a symmetric 3x3 matrix (the trigonometric method). */
static void
eig3(const double a[3][3], double *lmin, double *lmax)
{
	double p1 = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
	double q = (a[0][0] + a[1][1] + a[2][2]) / 3;
	double p2 = (a[0][0] - q) * (a[0][0] - q) + (a[1][1] - q) * (a[1][1] - q) +
	            (a[2][2] - q) * (a[2][2] - q) + 2 * p1;
	double p = sqrt(p2 / 6), b[3][3];

	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++)
			b[i][j] = (a[i][j] - (i == j ? q : 0)) / p;
	double r = (b[0][0] * (b[1][1] * b[2][2] - b[1][2] * b[2][1]) -
	            b[0][1] * (b[1][0] * b[2][2] - b[1][2] * b[2][0]) +
	            b[0][2] * (b[1][0] * b[2][1] - b[1][1] * b[2][0])) / 2;
	r = r < -1 ? -1 : r > 1 ? 1 : r;
	double phi = acos(r) / 3;
	*lmax = q + 2 * p * cos(phi);
	*lmin = q + 2 * p * cos(phi + 2 * M_PI / 3);
}

/* The Hessian of mean((x·w - y)^2) is (2/B) xᵀx; the best fixed step. */
static void
choose_lr(void)
{
	double h[3][3] = {{0}}, lmin, lmax;

	for (int i = 0; i < F; i++)
		for (int j = 0; j < F; j++) {
			for (int s = 0; s < B; s++)
				h[i][j] += (double)xs[s * F + i] * xs[s * F + j];
			h[i][j] *= 2.0 / B;
		}
	eig3(h, &lmin, &lmax);
	lr = (float)(2 / (lmin + lmax));
	rho = (lmax - lmin) / (lmax + lmin);
	kappa = lmax / lmin;
}

/* ---------------------------------------------------------------- graphs */

static int32_t
value(mpcc_graph *g, const char *name, mpcc_dtype dt, int rank, const int64_t *dims)
{
	int32_t v = mpcc_graph_add_value(g, name);
	assert_true(v >= 0);
	g->values[v].dtype = dt;
	g->values[v].rank = rank;
	for (int i = 0; i < rank; i++)
		g->values[v].dims[i] = dims[i];
	return v;
}

static int32_t
input(mpcc_graph *g, const char *name, mpcc_dtype dt, int rank, const int64_t *dims)
{
	int32_t v = value(g, name, dt, rank, dims);
	assert_int_equal(mpcc_graph_add_input(g, v), MPCC_OK);
	return v;
}

static int32_t
constant(mpcc_graph *g, const char *name, mpcc_dtype dt, int rank, const int64_t *dims,
         const void *data, size_t nbytes)
{
	int32_t v = value(g, name, dt, rank, dims);
	void *copy = malloc(nbytes);
	assert_non_null(copy);
	memcpy(copy, data, nbytes);
	mpcc_value_set_data(&g->values[v], copy, nbytes);
	return v;
}

static int32_t
scalar(mpcc_graph *g, const char *name, float f)
{
	return constant(g, name, MPCC_DTYPE_F32, 0, NULL, &f, sizeof(f));
}

/* A node with one output value named after the node. */
static int32_t
op(mpcc_graph *g, mpcc_op o, const char *name, int n_in, const int32_t *in)
{
	int32_t out = mpcc_graph_add_value(g, name);
	assert_true(out >= 0);
	assert_true(mpcc_graph_add_node(g, o, name, n_in, in, 1, &out) != MPCC_NONE);
	return out;
}

static int32_t
op1(mpcc_graph *g, mpcc_op o, const char *name, int32_t a)
{
	return op(g, o, name, 1, &a);
}

static int32_t
op2(mpcc_graph *g, mpcc_op o, const char *name, int32_t a, int32_t b)
{
	int32_t in[2] = {a, b};
	return op(g, o, name, 2, in);
}

static int32_t
where(mpcc_graph *g, const char *name, int32_t c, int32_t a, int32_t b)
{
	int32_t in[3] = {c, a, b};
	return op(g, MPCC_OP_WHERE, name, 3, in);
}

/* mean((pred - target)^2) over everything, as a scalar. */
static int32_t
mse(mpcc_graph *g, int32_t err)
{
	int32_t loss = op1(g, MPCC_OP_REDUCEMEAN, "loss", op2(g, MPCC_OP_MUL, "sq", err, err));
	mpcc_attr *a = mpcc_node_add_attr(g, g->n_nodes - 1, "keepdims", MPCC_ATTR_INT);
	assert_non_null(a);
	a->i = 0;
	return loss;
}

/* ok = apply and not IsNaN(loss): a NaN batch skips the update. */
static int32_t
ok_flag(mpcc_graph *g, int32_t apply, int32_t loss)
{
	int32_t fin = op1(g, MPCC_OP_NOT, "finite", op1(g, MPCC_OP_ISNAN, "isnan", loss));
	return op2(g, MPCC_OP_AND, "ok", apply, fin);
}

static void
build_linreg(mpcc_graph *g)
{
	static const int64_t dx[] = {B, F}, dy[] = {B, 1}, dw[] = {F, 1};
	int32_t x = input(g, "x", MPCC_DTYPE_F32, 2, dx);
	int32_t y = input(g, "y", MPCC_DTYPE_F32, 2, dy);
	int32_t w = input(g, "w", MPCC_DTYPE_F32, 2, dw);
	int32_t apply = input(g, "apply", MPCC_DTYPE_BOOL, 0, NULL);
	int32_t pred = op2(g, MPCC_OP_MATMUL, "pred", x, w);
	int32_t err = op2(g, MPCC_OP_SUB, "err", pred, y);
	int32_t loss = mse(g, err);
	int32_t grad = op2(g, MPCC_OP_MATMUL, "grad", op1(g, MPCC_OP_TRANSPOSE, "xt", x), err);
	int32_t step = op2(g, MPCC_OP_MUL, "step", grad, scalar(g, "k", -lr * 2.0f / B));
	int32_t ok = ok_flag(g, apply, loss);
	int32_t wn = where(g, "w_next", ok, op2(g, MPCC_OP_ADD, "upd", w, step), w);
	int32_t outs[] = {loss, wn, pred, ok};
	for (int i = 0; i < 4; i++)
		assert_int_equal(mpcc_graph_add_output(g, outs[i]), MPCC_OK);

	mpcc_train_info *t;
	char recipe[100];
	assert_int_equal(mpcc_graph_train_new(g, 1, &t), MPCC_OK);
	assert_int_equal(mpcc_train_set_state(g, 0, w, wn, MPCC_DTYPE_F32, w_init, sizeof(w_init)),
	                 MPCC_OK);
	t->label = y;
	t->loss = loss;
	t->logits = pred;
	t->ok = ok;
	t->apply = apply;
	snprintf(recipe, sizeof(recipe), "sgd lr=%g, mse, no loss scaling", (double)lr);
	t->recipe = mpcc_arena_strdup(&g->arena, recipe);
}

/* logits = x·W (2 classes), target = one-hot(label), MSE; a second state,
 * the loss scale, doubles (up to 1024) after an applied step, halves after a
 * skipped one, and is itself the loss-scale output. */
static void
build_classifier(mpcc_graph *g)
{
	static const int64_t dx[] = {B, F}, dl[] = {B, 1}, dw[] = {F, 2}, dc[] = {1, 2};
	static const int64_t classes[2] = {0, 1};
	static const float w0[F * 2] = {0};
	static const float s0 = 1;
	int32_t x = input(g, "x", MPCC_DTYPE_F32, 2, dx);
	int32_t label = input(g, "label", MPCC_DTYPE_I64, 2, dl);
	int32_t w = input(g, "W", MPCC_DTYPE_F32, 2, dw);
	int32_t scale = input(g, "scale", MPCC_DTYPE_F32, 0, NULL);
	int32_t apply = input(g, "apply", MPCC_DTYPE_BOOL, 0, NULL);
	int32_t logits = op2(g, MPCC_OP_MATMUL, "logits", x, w);
	int32_t cls = constant(g, "classes", MPCC_DTYPE_I64, 2, dc, classes, sizeof(classes));
	int32_t target = op1(g, MPCC_OP_CAST, "target", op2(g, MPCC_OP_EQUAL, "onehot", label, cls));
	mpcc_attr *a = mpcc_node_add_attr(g, g->n_nodes - 1, "to", MPCC_ATTR_INT);
	assert_non_null(a);
	a->i = 1; /* FLOAT */
	int32_t err = op2(g, MPCC_OP_SUB, "err", logits, target);
	int32_t loss = mse(g, err);
	int32_t grad = op2(g, MPCC_OP_MATMUL, "grad", op1(g, MPCC_OP_TRANSPOSE, "xt", x), err);
	int32_t step = op2(g, MPCC_OP_MUL, "step", grad, scalar(g, "k", -0.5f * 2.0f / (B * 2)));
	int32_t ok = ok_flag(g, apply, loss);
	int32_t wn = where(g, "W_next", ok, op2(g, MPCC_OP_ADD, "upd", w, step), w);
	int32_t grow = op2(g, MPCC_OP_MIN, "grow",
	                   op2(g, MPCC_OP_MUL, "twice", scale, scalar(g, "two", 2)),
	                   scalar(g, "cap", 1024));
	int32_t halve = op2(g, MPCC_OP_MUL, "halve", scale, scalar(g, "half", 0.5f));
	int32_t sn = where(g, "scale_next", ok, grow, halve);
	int32_t outs[] = {loss, wn, sn, logits, scale, ok};
	for (int i = 0; i < 6; i++)
		assert_int_equal(mpcc_graph_add_output(g, outs[i]), MPCC_OK);

	mpcc_train_info *t;
	assert_int_equal(mpcc_graph_train_new(g, 2, &t), MPCC_OK);
	assert_int_equal(mpcc_train_set_state(g, 0, w, wn, MPCC_DTYPE_F32, w0, sizeof(w0)), MPCC_OK);
	assert_int_equal(mpcc_train_set_state(g, 1, scale, sn, MPCC_DTYPE_F32, &s0, sizeof(s0)),
	                 MPCC_OK);
	t->label = label;
	t->loss = loss;
	t->logits = logits;
	t->loss_scale = scale;
	t->ok = ok;
	t->apply = apply;
	t->recipe = "sgd lr=0.5, mse on one-hot labels, loss scale x2 up to 1024";
}

/* An inference graph: y = x + x. */
static void
build_inference(mpcc_graph *g)
{
	static const int64_t dx[] = {B, F};
	int32_t x = input(g, "x", MPCC_DTYPE_F32, 2, dx);
	assert_int_equal(mpcc_graph_add_output(g, op2(g, MPCC_OP_ADD, "y", x, x)), MPCC_OK);
}

/* Compiles like mpcc_compile_buffer (fp32); returns the serialised plan.
 * opts may be NULL. Fails the test unless the pipeline's status is want;
 * then *out is NULL. */
static mpcc_status
compile_to_buffer(void (*build)(mpcc_graph *), const mpcc_compile_options *opts, void **out,
                  size_t *size, char *msg)
{
	mpcc_graph *g = NULL;
	mpcc_compile_options o;
	mpcc_diag d;
	mpcc_lower lx;
	mpcc_plan *p = NULL;
	mpcc_status st;

	*out = NULL;
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	g->opset = 17;
	build(g);
	if (!opts) {
		mpcc_compile_options_init(&o);
		o.precision = MPCC_PRECISION_FP32;
		opts = &o;
	}
	mpcc_diag_init(&d);
	mpcc_pass_ctx pcx = {.d = &d, .opts = opts};
	st = mpcc_run_pipeline(g, &pcx);
	if (st == MPCC_OK) {
		mpcc_lower_init(&lx, g, &d);
		assert_int_equal(mpcc_lower_graph(&lx), MPCC_OK);
		assert_int_equal(mpcc_fuse_kernels(&lx, NULL), MPCC_OK);
		st = mpcc_plan_build(g, &lx, opts->precision, &p, &d);
		mpcc_lower_fini(&lx);
	}
	mpcc_graph_destroy(g);
	if (msg)
		snprintf(msg, 512, "%s", d.msg);
	if (st != MPCC_OK)
		return st;
	assert_int_equal(mpcc_plan_serialize(p, out, size, &d), MPCC_OK);
	mpcc_plan_free(p);
	return MPCC_OK;
}

static mpcc_plan *
compile(void (*build)(mpcc_graph *))
{
	void *buf;
	size_t size;
	mpcc_plan *p = NULL;
	mpcc_diag d;

	assert_int_equal(compile_to_buffer(build, NULL, &buf, &size, NULL), MPCC_OK);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(buf, size, &p, &d), MPCC_OK);
	free(buf);
	return p;
}

/* ---------------------------------------------------------------- stepping */

typedef struct fixture {
	mpcc_context *cx;
	mpcc_plan *plan;
	mpcc_trainer *tr;
} fixture;

static void
fixture_init(fixture *f, void (*build)(mpcc_graph *))
{
	assert_int_equal(mpcc_context_create(&f->cx), MPCC_OK);
	f->plan = compile(build);
	assert_int_equal(mpcc_trainer_create(f->cx, f->plan, "cpu", &f->tr), MPCC_OK);
}

static void
fixture_fini(fixture *f)
{
	mpcc_trainer_destroy(f->tr);
	mpcc_plan_destroy(f->plan);
	mpcc_context_destroy(f->cx);
}

static mpcc_status
run_batch(mpcc_trainer *tr, const float *x, const float *y, bool eval, mpcc_train_result *r)
{
	mpcc_tensor in[2] = {
		{.name = "x", .dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {B, F},
		 .data = (void *)x, .nbytes = sizeof(float) * B * F},
		{.name = "y", .dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {B, 1},
		 .data = (void *)y, .nbytes = sizeof(float) * B},
	};
	return eval ? mpcc_trainer_eval(tr, in, 2, r) : mpcc_trainer_step(tr, in, 2, r);
}

static const float *
state_w(mpcc_trainer *tr)
{
	const mpcc_tensor *t;
	assert_int_equal(mpcc_trainer_state(tr, 0, &t), MPCC_OK);
	assert_string_equal(t->name, "w");
	assert_int_equal(t->nbytes, sizeof(float) * F);
	return t->data;
}

static double
dist_to_true(const float *w)
{
	double s = 0;
	for (int i = 0; i < F; i++)
		s += ((double)w[i] - w_true[i]) * ((double)w[i] - w_true[i]);
	return sqrt(s);
}

static void
linear_regression_converges_to_the_true_weights(void **state)
{
	fixture f;
	mpcc_train_result r;
	double prev = INFINITY, first = 0, e0 = dist_to_true(w_init), wnorm = 0;

	fixture_init(&f, build_linreg);
	assert_int_equal(mpcc_trainer_n_state(f.tr), 1);
	assert_int_equal(mpcc_trainer_n_inputs(f.tr), 2);
	assert_string_equal(mpcc_trainer_label(f.tr)->name, "y");
	assert_non_null(strstr(mpcc_trainer_recipe(f.tr), "sgd lr="));
	assert_memory_equal(state_w(f.tr), w_init, sizeof(w_init));
	for (int k = 1; k <= STEPS; k++) {
		assert_int_equal(run_batch(f.tr, xs, ys, false, &r), MPCC_OK);
		assert_int_equal(r.step, k);
		assert_false(r.skipped);
		assert_true(r.loss_scale == 1.0);
		assert_non_null(r.logits.data);
		assert_int_equal(r.logits.rank, 2);
		if (k == 1)
			first = r.loss;
		/* each eigencomponent of the error shrinks, so the loss falls
		 * until it reaches the level of f32 rounding */
		if (prev > 1e-9)
			assert_true(r.loss < prev);
		prev = r.loss;
	}
	assert_true(prev < 1e-6 * first);
	for (int i = 0; i < F; i++)
		wnorm += (double)w_true[i] * w_true[i];
	double tol = pow(rho, STEPS) * e0 + 64 * FLT_EPSILON * kappa * sqrt(wnorm);
	double err = dist_to_true(state_w(f.tr));
	if (err > tol)
		fail_msg("|w - w_true| = %g exceeds %g (rho %g, kappa %g)", err, tol, rho, kappa);
	mpcc_train_counts c;
	mpcc_trainer_counts(f.tr, &c);
	assert_int_equal(c.steps, STEPS);
	assert_int_equal(c.skipped, 0);
	fixture_fini(&f);
}

/* One step by hand in double: w - lr (2/B) xᵀ(x·w - y). */
static void
reference_step(const float *w, double *out)
{
	double e[B];
	for (int s = 0; s < B; s++) {
		e[s] = -ys[s];
		for (int j = 0; j < F; j++)
			e[s] += (double)xs[s * F + j] * w[j];
	}
	for (int j = 0; j < F; j++) {
		double gj = 0;
		for (int s = 0; s < B; s++)
			gj += (double)xs[s * F + j] * e[s];
		out[j] = w[j] - (double)lr * 2.0 / B * gj;
	}
}

static void
a_step_is_one_gradient_descent_update(void **state)
{
	fixture f;
	mpcc_train_result r;
	double want[F];

	fixture_init(&f, build_linreg);
	reference_step(w_init, want);
	assert_int_equal(run_batch(f.tr, xs, ys, false, &r), MPCC_OK);
	const float *w = state_w(f.tr);
	for (int j = 0; j < F; j++)
		assert_true(fabs(w[j] - want[j]) < 1e-5 * (1 + fabs(want[j])));
	fixture_fini(&f);
}

static void
eval_leaves_the_state_untouched(void **state)
{
	fixture f;
	mpcc_train_result r, e;
	float before[F];

	fixture_init(&f, build_linreg);
	for (int k = 0; k < 3; k++)
		assert_int_equal(run_batch(f.tr, xs, ys, false, &r), MPCC_OK);
	memcpy(before, state_w(f.tr), sizeof(before));
	assert_int_equal(run_batch(f.tr, xs, ys, true, &e), MPCC_OK);
	assert_memory_equal(state_w(f.tr), before, sizeof(before));
	assert_int_equal(e.step, 3);
	assert_false(e.skipped);
	/* the loss of the current state, and its logits x·w */
	double loss = 0;
	for (int s = 0; s < B; s++) {
		double p = 0;
		for (int j = 0; j < F; j++)
			p += (double)xs[s * F + j] * before[j];
		assert_true(fabs(((float *)e.logits.data)[s] - p) < 1e-5 * (1 + fabs(p)));
		loss += (p - ys[s]) * (p - ys[s]) / B;
	}
	assert_true(fabs(e.loss - loss) < 1e-4 * (1e-6 + loss));
	/* an evaluation between steps changes nothing that follows */
	assert_int_equal(run_batch(f.tr, xs, ys, false, &r), MPCC_OK);
	mpcc_train_counts c;
	mpcc_trainer_counts(f.tr, &c);
	assert_int_equal(c.steps, 4);
	fixture_fini(&f);
}

static void
a_nan_batch_is_skipped_and_counted(void **state)
{
	fixture f;
	mpcc_train_result r;
	mpcc_train_counts c;
	float bad[B * F], before[F];

	fixture_init(&f, build_linreg);
	memcpy(bad, xs, sizeof(bad));
	bad[4] = NAN;
	assert_int_equal(run_batch(f.tr, xs, ys, false, &r), MPCC_OK);
	memcpy(before, state_w(f.tr), sizeof(before));
	for (int k = 0; k < 2; k++) {
		assert_int_equal(run_batch(f.tr, bad, ys, false, &r), MPCC_OK);
		assert_true(r.skipped);
		assert_true(isnan(r.loss));
		assert_memory_equal(state_w(f.tr), before, sizeof(before));
	}
	mpcc_trainer_counts(f.tr, &c);
	assert_int_equal(c.steps, 3);
	assert_int_equal(c.skipped, 2);
	assert_int_equal(c.consecutive_skips, 2);
	assert_int_equal(run_batch(f.tr, xs, ys, false, &r), MPCC_OK);
	assert_false(r.skipped);
	mpcc_trainer_counts(f.tr, &c);
	assert_int_equal(c.skipped, 2);
	assert_int_equal(c.consecutive_skips, 0);
	fixture_fini(&f);
}

static void
missing_or_wrong_inputs_are_errors_naming_them(void **state)
{
	fixture f;
	mpcc_train_result r;
	float w[F] = {0};
	const mpcc_tensor *before;
	float saved[F];

	fixture_init(&f, build_linreg);
	assert_int_equal(mpcc_trainer_state(f.tr, 0, &before), MPCC_OK);
	memcpy(saved, before->data, sizeof(saved));
	mpcc_tensor in[2] = {
		{.name = "x", .dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {B, F},
		 .data = xs, .nbytes = sizeof(xs)},
		{.name = "y", .dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {B, 1},
		 .data = ys, .nbytes = sizeof(ys)},
	};
	assert_int_equal(mpcc_trainer_step(f.tr, in, 1, &r), MPCC_ERR_INVALID);
	assert_string_equal(mpcc_context_last_error(f.cx), "the label 'y' is missing");
	assert_int_equal(mpcc_trainer_step(f.tr, in + 1, 1, &r), MPCC_ERR_INVALID);
	assert_string_equal(mpcc_context_last_error(f.cx), "input 'x' is missing");
	in[0].dims[1] = 2;
	in[0].nbytes = sizeof(float) * B * 2;
	assert_int_equal(mpcc_trainer_step(f.tr, in, 2, &r), MPCC_ERR_INVALID);
	assert_non_null(strstr(mpcc_context_last_error(f.cx), "input 'x': shape [16,3] expected"));
	in[0].dims[1] = F;
	in[0].nbytes = sizeof(xs);
	in[1].name = "x";
	assert_int_equal(mpcc_trainer_step(f.tr, in, 2, &r), MPCC_ERR_INVALID);
	assert_string_equal(mpcc_context_last_error(f.cx), "input 'x' given twice");
	in[1].name = "z";
	assert_int_equal(mpcc_trainer_step(f.tr, in, 2, &r), MPCC_ERR_INVALID);
	assert_string_equal(mpcc_context_last_error(f.cx),
	                    "no input named 'z' (the trainer's inputs: 'x', 'y')");
	mpcc_tensor ws = {.name = "w", .dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {F, 1},
	                  .data = w, .nbytes = sizeof(w)};
	in[1] = ws;
	assert_int_equal(mpcc_trainer_step(f.tr, in, 2, &r), MPCC_ERR_INVALID);
	assert_string_equal(mpcc_context_last_error(f.cx),
	                    "input 'w' is the training state, which the trainer binds itself");
	/* none of this ran a step */
	mpcc_train_counts c;
	mpcc_trainer_counts(f.tr, &c);
	assert_int_equal(c.steps, 0);
	assert_memory_equal(state_w(f.tr), saved, sizeof(saved));
	const mpcc_tensor *t;
	assert_int_equal(mpcc_trainer_state(f.tr, 1, &t), MPCC_ERR_INVALID);
	assert_null(t);
	fixture_fini(&f);
}

static void
no_trainer_for_an_inference_plan_or_unknown_backend(void **state)
{
	mpcc_context *cx;
	mpcc_trainer *tr = (mpcc_trainer *)1;
	mpcc_plan *p = compile(build_inference);

	assert_null(p->train);
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	assert_int_equal(mpcc_trainer_create(cx, p, "cpu", &tr), MPCC_ERR_INVALID);
	assert_null(tr);
	assert_non_null(strstr(mpcc_context_last_error(cx), "no section 'TRAN'"));
	mpcc_plan_destroy(p);
	/* a failing session leaves nothing behind (valgrind) */
	p = compile(build_linreg);
	tr = (mpcc_trainer *)1;
	assert_int_equal(mpcc_trainer_create(cx, p, "tpu", &tr), MPCC_ERR_INVALID);
	assert_null(tr);
	assert_string_equal(mpcc_context_last_error(cx),
	                    "unknown backend 'tpu' (choices: cpu, interp, cuda)");
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

static void
two_states_swap_and_the_loss_scale_is_reported(void **state)
{
	fixture f;
	mpcc_train_result r;
	int64_t label[B];
	mpcc_tensor in[2] = {
		{.name = "label", .dtype = MPCC_DTYPE_I64, .rank = 2, .dims = {B, 1},
		 .data = label, .nbytes = sizeof(label)},
		{.name = "x", .dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {B, F},
		 .data = xs, .nbytes = sizeof(xs)},
	};

	for (int s = 0; s < B; s++)
		label[s] = ys[s] > 0;
	fixture_init(&f, build_classifier);
	assert_int_equal(mpcc_trainer_n_state(f.tr), 2);
	for (int k = 0; k < 12; k++) {
		assert_int_equal(mpcc_trainer_step(f.tr, in, 2, &r), MPCC_OK);
		assert_true(r.loss_scale == (k < 10 ? (double)(1 << k) : 1024.0));
		assert_int_equal(r.logits.dims[1], 2);
	}
	const mpcc_tensor *t;
	assert_int_equal(mpcc_trainer_state(f.tr, 1, &t), MPCC_OK);
	assert_string_equal(t->name, "scale");
	assert_true(*(float *)t->data == 1024.0f);
	fixture_fini(&f);
}

/* The JIT is bit-identical to the interpreter, and so are trainers on them. */
static void
cpu_and_interp_trainers_agree_bit_for_bit(void **state)
{
	fixture f;
	mpcc_trainer *ti;
	mpcc_train_result r, ri;

	fixture_init(&f, build_linreg);
	assert_int_equal(mpcc_trainer_create(f.cx, f.plan, "interp", &ti), MPCC_OK);
	for (int k = 0; k < 5; k++) {
		assert_int_equal(run_batch(f.tr, xs, ys, false, &r), MPCC_OK);
		assert_int_equal(run_batch(ti, xs, ys, false, &ri), MPCC_OK);
		assert_memory_equal(&r.loss, &ri.loss, sizeof(double));
		assert_memory_equal(state_w(f.tr), state_w(ti), sizeof(float) * F);
	}
	mpcc_trainer_destroy(ti);
	fixture_fini(&f);
}

/* ---------------------------------------------------------------- checkpoints */

static char tmpdir[64];

static const char *
tmp_path(const char *name)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static void
resuming_from_a_checkpoint_is_bit_exact(void **state)
{
	fixture a, b;
	mpcc_train_result ra, rb;
	float wa[F];
	mpcc_train_counts ca, cb;

	fixture_init(&a, build_linreg);
	fixture_init(&b, build_linreg);
	for (int k = 0; k < 10; k++)
		assert_int_equal(run_batch(a.tr, xs, ys, false, &ra), MPCC_OK);
	assert_int_equal(mpcc_trainer_save(a.tr, tmp_path("a.ckpt")), MPCC_OK);
	assert_int_equal(run_batch(a.tr, xs, ys, false, &ra), MPCC_OK);
	memcpy(wa, state_w(a.tr), sizeof(wa));

	assert_int_equal(mpcc_trainer_load(b.tr, tmp_path("a.ckpt")), MPCC_OK);
	mpcc_trainer_counts(b.tr, &cb);
	assert_int_equal(cb.steps, 10);
	assert_int_equal(run_batch(b.tr, xs, ys, false, &rb), MPCC_OK);
	assert_memory_equal(state_w(b.tr), wa, sizeof(wa));
	assert_memory_equal(&rb.loss, &ra.loss, sizeof(double));
	assert_int_equal(rb.step, 11);
	mpcc_trainer_counts(a.tr, &ca);
	mpcc_trainer_counts(b.tr, &cb);
	assert_memory_equal(&ca, &cb, sizeof(ca));

	/* loading rolls a trainer back to exactly the saved state */
	assert_int_equal(mpcc_trainer_save(b.tr, tmp_path("b.ckpt")), MPCC_OK);
	assert_int_equal(mpcc_trainer_load(a.tr, tmp_path("a.ckpt")), MPCC_OK);
	assert_int_equal(mpcc_trainer_save(a.tr, tmp_path("c.ckpt")), MPCC_OK);
	void *f1, *f2;
	size_t n1, n2;
	mpcc_diag d;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_read_whole_file(tmp_path("a.ckpt"), &f1, &n1, &d), MPCC_OK);
	assert_int_equal(mpcc_read_whole_file(tmp_path("c.ckpt"), &f2, &n2, &d), MPCC_OK);
	assert_int_equal(n1, n2);
	assert_memory_equal(f1, f2, n1);
	free(f1);
	free(f2);
	fixture_fini(&a);
	fixture_fini(&b);
}

/* Writes buf with its last 8 bytes set to the checksum of the rest. */
static void
write_resealed(const char *path, uint8_t *buf, size_t size)
{
	mpcc_diag d;
	uint64_t h = mpcc_fnv1a64(buf, size - 8);

	for (int i = 0; i < 8; i++)
		buf[size - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_write_whole_file(path, buf, size, &d), MPCC_OK);
}

static void
expect_load_error(fixture *f, const char *path, mpcc_status st, const char *msg)
{
	const float *w = state_w(f->tr);
	float before[F];

	memcpy(before, w, sizeof(before));
	assert_int_equal(mpcc_trainer_load(f->tr, path), st);
	if (!strstr(mpcc_context_last_error(f->cx), msg))
		fail_msg("'%s' does not say '%s'", mpcc_context_last_error(f->cx), msg);
	assert_null(strchr(mpcc_context_last_error(f->cx), '\n'));
	assert_memory_equal(state_w(f->tr), before, sizeof(before));
}

static void
damaged_or_foreign_checkpoints_are_refused(void **state)
{
	fixture f;
	mpcc_train_result r;
	void *buf;
	size_t size;
	mpcc_diag d;

	fixture_init(&f, build_linreg);
	assert_int_equal(run_batch(f.tr, xs, ys, false, &r), MPCC_OK);
	assert_int_equal(mpcc_trainer_save(f.tr, tmp_path("d.ckpt")), MPCC_OK);
	assert_int_equal(run_batch(f.tr, xs, ys, false, &r), MPCC_OK);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_read_whole_file(tmp_path("d.ckpt"), &buf, &size, &d), MPCC_OK);
	uint8_t *b = buf, *copy = malloc(size);
	assert_non_null(copy);
	/* header 40 bytes, then name length, "w", dtype, rank, dims, nbytes, data */
	assert_int_equal(size, 40 + 4 + 1 + 4 + 4 + 16 + 8 + 12 + 8);

	expect_load_error(&f, tmp_path("missing.ckpt"), MPCC_ERR_IO, "cannot open");
	for (size_t i = 0; i < size; i++) {
		memcpy(copy, b, size);
		copy[i] ^= 0x40;
		assert_int_equal(mpcc_write_whole_file(tmp_path("x.ckpt"), copy, size, &d), MPCC_OK);
		expect_load_error(&f, tmp_path("x.ckpt"), MPCC_ERR_INVALID,
		                  i < 8 ? "not an mpcc checkpoint" : "checksum mismatch");
	}
	for (size_t n = 0; n < size; n += 7) {
		assert_int_equal(mpcc_write_whole_file(tmp_path("x.ckpt"), b, n, &d), MPCC_OK);
		expect_load_error(&f, tmp_path("x.ckpt"), MPCC_ERR_INVALID, "checkpoint");
	}
	memcpy(copy, b, size);
	copy[53] = 4; /* dims[0] */
	write_resealed(tmp_path("x.ckpt"), copy, size);
	expect_load_error(&f, tmp_path("x.ckpt"), MPCC_ERR_INVALID,
	                  "checkpoint tensor 'w' is f32 [4,1], the plan's state is f32 [3,1]");
	memcpy(copy, b, size);
	copy[44] = 'v';
	write_resealed(tmp_path("x.ckpt"), copy, size);
	expect_load_error(&f, tmp_path("x.ckpt"), MPCC_ERR_INVALID,
	                  "checkpoint tensor 'v' is not state of this plan");
	memcpy(copy, b, size);
	copy[12] = 2; /* tensor count */
	write_resealed(tmp_path("x.ckpt"), copy, size);
	expect_load_error(&f, tmp_path("x.ckpt"), MPCC_ERR_INVALID,
	                  "checkpoint holds 2 tensors, the plan's state has 1");
	memcpy(copy, b, size);
	copy[8] = 9; /* version */
	write_resealed(tmp_path("x.ckpt"), copy, size);
	expect_load_error(&f, tmp_path("x.ckpt"), MPCC_ERR_INVALID, "checkpoint version 9");
	/* a checkpoint of another plan */
	fixture g;
	fixture_init(&g, build_classifier);
	assert_int_equal(mpcc_trainer_save(g.tr, tmp_path("g.ckpt")), MPCC_OK);
	expect_load_error(&f, tmp_path("g.ckpt"), MPCC_ERR_INVALID,
	                  "checkpoint holds 2 tensors, the plan's state has 1");
	fixture_fini(&g);
	free(copy);
	free(buf);
	fixture_fini(&f);
}

/* ---------------------------------------------------------------- plan section */

static void
the_training_section_round_trips(void **state)
{
	void *buf, *buf2;
	size_t size, size2;
	mpcc_plan *p;
	mpcc_diag d;

	assert_int_equal(compile_to_buffer(build_classifier, NULL, &buf, &size, NULL), MPCC_OK);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(buf, size, &p, &d), MPCC_OK);
	const mpcc_plan_train *t = p->train;
	assert_non_null(t);
	assert_int_equal(t->n_state, 2);
	assert_string_equal(p->input_desc[t->state[0].in].name, "W");
	assert_string_equal(p->output_desc[t->state[0].out].name, "W_next");
	assert_string_equal(p->input_desc[t->state[1].in].name, "scale");
	assert_true(*(const float *)t->state[1].init == 1.0f);
	assert_string_equal(p->input_desc[t->label].name, "label");
	assert_string_equal(p->input_desc[t->apply].name, "apply");
	assert_string_equal(p->output_desc[t->loss].name, "loss");
	assert_string_equal(p->output_desc[t->logits].name, "logits");
	assert_string_equal(p->output_desc[t->loss_scale].name, "scale");
	assert_string_equal(p->output_desc[t->ok].name, "ok");
	assert_non_null(strstr(t->recipe, "loss scale x2"));
	assert_int_equal(mpcc_plan_serialize(p, &buf2, &size2, &d), MPCC_OK);
	assert_int_equal(size, size2);
	assert_memory_equal(buf, buf2, size);
	mpcc_plan_free(p);
	free(buf);
	free(buf2);
}

/* The TRAN section's offset and size, from the section table. */
static void
find_tran(const uint8_t *b, size_t *off, size_t *len)
{
	uint32_t n = (uint32_t)b[12] | (uint32_t)b[13] << 8;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = b + 64 + 24 * i;
		if (memcmp(e, "TRAN", 4) == 0) {
			uint64_t o = 0, l = 0;
			for (int k = 7; k >= 0; k--) {
				o = o << 8 | e[8 + k];
				l = l << 8 | e[16 + k];
			}
			*off = (size_t)o;
			*len = (size_t)l;
			return;
		}
	}
	fail_msg("no section TRAN");
}

static void
reseal_plan(uint8_t *b, size_t size)
{
	uint64_t h = mpcc_fnv1a64(b + 64, size - 64);
	for (int i = 0; i < 8; i++)
		b[16 + i] = (uint8_t)(h >> (8 * i));
}

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Loads b (resealed) and expects an error containing msg. */
static void
expect_plan_error(uint8_t *b, size_t size, const char *msg)
{
	mpcc_plan *p = NULL;
	mpcc_diag d;

	reseal_plan(b, size);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(b, size, &p, &d), MPCC_ERR_INVALID);
	assert_null(p);
	if (!strstr(d.msg, msg))
		fail_msg("'%s' does not say '%s'", d.msg, msg);
}

static void
a_damaged_training_section_is_refused(void **state)
{
	void *buf;
	size_t size, off = 0, len = 0;
	mpcc_diag d;

	assert_int_equal(compile_to_buffer(build_linreg, NULL, &buf, &size, NULL), MPCC_OK);
	uint8_t *b = buf, *c = malloc(size);
	assert_non_null(c);
	find_tran(b, &off, &len);
	/* version, recipe, label, loss, logits, loss scale, ok, apply, count,
	 * then the state: input, output, nbytes (u64), bytes */
	size_t rl = (size_t)b[off + 4], roles = off + 8 + rl, st0 = roles + 28;
	/* inputs: x 0, y 1, w 2, apply 3; outputs: loss 0, w_next 1, pred 2, ok 3 */
	assert_int_equal(b[roles], 1);
	assert_int_equal(b[st0], 2);
	assert_int_equal(len, 8 + rl + 28 + 16 + 12);
	static const struct {
		size_t at;
		uint32_t v;
		const char *msg;
	} cases[] = {
		{0, 7, "section 'TRAN': layout version 7, this mpcc reads 1"},
		{4, 1000, "section 'TRAN': recipe runs past the section"},
		{8 + 0, 9, "section 'TRAN': label: position 9, the plan has 4"},
		{8 + 4, 0xffffffffu, "section 'TRAN': loss: position 4294967295, the plan has 4"},
		{8 + 4, 2, "section 'TRAN': loss 'pred' has 16 elements, one expected"},
		{8 + 4, 3, "section 'TRAN': loss 'ok' is bool, not a float"},
		{8 + 16, 0, "section 'TRAN': ok flag 'loss' is f32, not bool"},
		{8 + 20, 0, "section 'TRAN': apply input 'x' is f32, not bool"},
		{8 + 20, 1, "section 'TRAN': apply input 'y' is f32, not bool"},
		{8 + 24, 1000, "section 'TRAN': state count 1000 exceeds the section"},
		{8 + 28, 1, "section 'TRAN': state 0 ('y') is also the label"},
		{8 + 28, 7, "section 'TRAN': state 0: input position 7, the plan has 4"},
		{8 + 32, 0, "section 'TRAN': state 0: 'w' and its next value 'loss' differ"},
		{8 + 36, 13, "section 'TRAN': state 0 ('w'): initial value of 13 bytes, the tensor "
		             "has 12"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(c, b, size);
		size_t at = cases[i].at < 8 ? off + cases[i].at : roles + cases[i].at - 8;
		put32(c + at, cases[i].v);
		expect_plan_error(c, size, cases[i].msg);
	}
	/* a recipe with a line break; a section one byte short */
	memcpy(c, b, size);
	c[off + 8] = '\n';
	expect_plan_error(c, size, "section 'TRAN': recipe holds a line break");
	for (size_t cut = 1; cut < len; cut++) {
		memcpy(c, b, size);
		const uint8_t *e = NULL;
		for (uint32_t k = 0; !e; k++)
			if (memcmp(c + 64 + 24 * k, "TRAN", 4) == 0)
				e = c + 64 + 24 * k;
		put32(c + (e - c) + 16, (uint32_t)(len - cut));
		expect_plan_error(c, size, "section 'TRAN'");
	}
	/* any byte of the section changed: refused with a message or loaded,
	 * never read out of bounds (valgrind watches this loop) */
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			mpcc_plan *p = NULL;
			memcpy(c, b, size);
			c[off + i] ^= (uint8_t)(1u << bit);
			reseal_plan(c, size);
			mpcc_diag_init(&d);
			mpcc_status st = mpcc_plan_deserialize(c, size, &p, &d);
			if (st == MPCC_OK)
				mpcc_plan_free(p);
			else
				assert_non_null(strstr(d.msg, "section 'TRAN'"));
		}
	}
	free(c);
	free(buf);
}

static void
freezing_a_state_input_fails_verification(void **state)
{
	mpcc_compile_options o;
	float w[F] = {0};
	mpcc_tensor frozen = {.name = "w", .dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {F, 1},
	                      .data = w, .nbytes = sizeof(w)};
	void *buf;
	size_t size;
	char msg[512];

	mpcc_compile_options_init(&o);
	o.precision = MPCC_PRECISION_FP32;
	o.frozen = &frozen;
	o.n_frozen = 1;
	assert_int_equal(compile_to_buffer(build_linreg, &o, &buf, &size, msg), MPCC_ERR_INVALID);
	assert_string_equal(msg, "training: state 'w' is not a graph input (frozen?)");
}

static void
low_io_plans_convert_the_initial_state(void **state)
{
	mpcc_compile_options o;
	void *buf;
	size_t size;
	mpcc_plan *p;
	mpcc_diag d;

	mpcc_compile_options_init(&o);
	o.precision = MPCC_PRECISION_BF16;
	o.low_io = true;
	assert_int_equal(compile_to_buffer(build_linreg, &o, &buf, &size, NULL), MPCC_OK);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(buf, size, &p, &d), MPCC_OK);
	const mpcc_tensor *w = &p->input_desc[p->train->state[0].in];
	assert_int_equal(w->dtype, MPCC_DTYPE_BF16);
	for (int i = 0; i < F; i++) {
		uint16_t h;
		memcpy(&h, p->train->state[0].init + 2 * i, 2);
		assert_true(mpcc_bf16_to_f32(h) == w_init[i]);
	}
	mpcc_plan_free(p);
	free(buf);
}

/* ---------------------------------------------------------------- npz */

typedef struct zbuf {
	uint8_t *p;
	size_t n, cap;
} zbuf;

static void
zput(zbuf *z, const void *p, size_t n)
{
	if (z->n + n > z->cap) {
		z->cap = (z->n + n) * 2 + 64;
		z->p = realloc(z->p, z->cap);
		assert_non_null(z->p);
	}
	memcpy(z->p + z->n, p, n);
	z->n += n;
}

static void
z16(zbuf *z, uint32_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	zput(z, b, 2);
}

static void
z32(zbuf *z, uint32_t v)
{
	z16(z, v & 0xffff);
	z16(z, v >> 16);
}

/* Bit by bit, independent of the reader's table. */
static uint32_t
crc32_ref(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
	}
	return ~c;
}

typedef enum zstyle {
	ZIP_PLAIN,      /* sizes in the local header */
	ZIP_NUMPY,      /* 0xffffffff and a zip64 extra field, as np.savez writes */
	ZIP_DESCRIPTOR, /* zero sizes, a data descriptor after the data */
} zstyle;

/* A stored zip archive of members names[i] with data[i]. */
static void
zip_write(zbuf *z, int n, const char *const *names, void *const *data, const size_t *sizes,
          zstyle style, uint32_t method)
{
	uint32_t local[8];
	size_t cd;

	z->n = 0;
	for (int i = 0; i < n; i++) {
		uint32_t crc = crc32_ref(data[i], sizes[i]), len = (uint32_t)strlen(names[i]);
		local[i] = (uint32_t)z->n;
		z32(z, 0x04034b50);
		z16(z, style == ZIP_NUMPY ? 45 : 20);
		z16(z, style == ZIP_DESCRIPTOR ? 8 : 0);
		z16(z, method);
		z16(z, 0);
		z16(z, 0x21);
		z32(z, style == ZIP_DESCRIPTOR ? 0 : crc);
		uint32_t sz = style == ZIP_DESCRIPTOR ? 0 : style == ZIP_NUMPY ? 0xffffffffu
		                                                              : (uint32_t)sizes[i];
		z32(z, sz);
		z32(z, sz);
		z16(z, len);
		z16(z, style == ZIP_NUMPY ? 20 : 0);
		zput(z, names[i], len);
		if (style == ZIP_NUMPY) {
			z16(z, 1);
			z16(z, 16);
			z32(z, (uint32_t)sizes[i]);
			z32(z, 0);
			z32(z, (uint32_t)sizes[i]);
			z32(z, 0);
		}
		zput(z, data[i], sizes[i]);
		if (style == ZIP_DESCRIPTOR) {
			z32(z, 0x08074b50);
			z32(z, crc);
			z32(z, (uint32_t)sizes[i]);
			z32(z, (uint32_t)sizes[i]);
		}
	}
	cd = z->n;
	for (int i = 0; i < n; i++) {
		uint32_t len = (uint32_t)strlen(names[i]);
		z32(z, 0x02014b50);
		z16(z, 20);
		z16(z, style == ZIP_NUMPY ? 45 : 20);
		z16(z, style == ZIP_DESCRIPTOR ? 8 : 0);
		z16(z, method);
		z16(z, 0);
		z16(z, 0x21);
		z32(z, crc32_ref(data[i], sizes[i]));
		z32(z, (uint32_t)sizes[i]);
		z32(z, (uint32_t)sizes[i]);
		z16(z, len);
		z16(z, 0);
		z16(z, 0);
		z16(z, 0);
		z16(z, 0);
		z32(z, 0);
		z32(z, local[i]);
		zput(z, names[i], len);
	}
	size_t cd_size = z->n - cd;
	z32(z, 0x06054b50);
	z16(z, 0);
	z16(z, 0);
	z16(z, (uint32_t)n);
	z16(z, (uint32_t)n);
	z32(z, (uint32_t)cd_size);
	z32(z, (uint32_t)cd);
	z16(z, 0);
}

static float nx[4 * 3];
static int64_t ny[4];

/* Two .npy members: x f32 [4,3], y i64 [4]. */
static void
npy_members(void **data, size_t *sizes)
{
	mpcc_tensor x = {.dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {4, 3}, .data = nx,
	                 .nbytes = sizeof(nx)};
	mpcc_tensor y = {.dtype = MPCC_DTYPE_I64, .rank = 1, .dims = {4}, .data = ny,
	                 .nbytes = sizeof(ny)};
	mpcc_diag d;

	for (int i = 0; i < 12; i++)
		nx[i] = (float)i * 0.5f - 1;
	for (int i = 0; i < 4; i++)
		ny[i] = i % 2;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_npy_write_buffer(&x, &data[0], &sizes[0], &d), MPCC_OK);
	assert_int_equal(mpcc_npy_write_buffer(&y, &data[1], &sizes[1], &d), MPCC_OK);
}

static void
make_npz(zbuf *z, zstyle style, uint32_t method)
{
	static const char *const names[] = {"x.npy", "y.npy"};
	void *data[2];
	size_t sizes[2];

	npy_members(data, sizes);
	zip_write(z, 2, names, data, sizes, style, method);
	free(data[0]);
	free(data[1]);
}

static void
npz_reads_stored_archives_in_every_layout(void **state)
{
	for (int style = ZIP_PLAIN; style <= ZIP_DESCRIPTOR; style++) {
		zbuf z = {0};
		mpcc_npz a;
		mpcc_diag d;
		make_npz(&z, (zstyle)style, 0);
		mpcc_diag_init(&d);
		if (mpcc_npz_read_buffer(z.p, z.n, &a, &d) != MPCC_OK)
			fail_msg("style %d: %s", style, d.msg);
		assert_int_equal(a.n, 2);
		const mpcc_tensor *x = mpcc_npz_find(&a, "x"), *y = mpcc_npz_find(&a, "y");
		assert_non_null(x);
		assert_non_null(y);
		assert_null(mpcc_npz_find(&a, "x.npy"));
		assert_int_equal(x->dtype, MPCC_DTYPE_F32);
		assert_int_equal(x->rank, 2);
		assert_int_equal(x->dims[1], 3);
		assert_memory_equal(x->data, nx, sizeof(nx));
		assert_int_equal(y->dtype, MPCC_DTYPE_I64);
		assert_memory_equal(y->data, ny, sizeof(ny));
		mpcc_npz_fini(&a);
		free(z.p);
	}
}

static void
npz_error(const void *b, size_t n, mpcc_status want, const char *msg)
{
	mpcc_npz a;
	mpcc_diag d;

	mpcc_diag_init(&d);
	mpcc_status st = mpcc_npz_read_buffer(b, n, &a, &d);
	if (st == MPCC_OK)
		fail_msg("accepted, expected '%s'", msg);
	assert_int_equal(a.n, 0);
	assert_null(a.t);
	if (want != MPCC_OK)
		assert_int_equal(st, want);
	if (!strstr(d.msg, msg))
		fail_msg("'%s' does not say '%s'", d.msg, msg);
	assert_null(strchr(d.msg, '\n'));
}

static void
npz_refuses_compressed_members_with_advice(void **state)
{
	zbuf z = {0};

	make_npz(&z, ZIP_NUMPY, 8);
	npz_error(z.p, z.n, MPCC_ERR_UNSUPPORTED,
	          ".npz member 'x.npy': compressed (deflate); write the file with np.savez, not "
	          "np.savez_compressed");
	free(z.p);
}

static void
npz_refuses_odd_members(void **state)
{
	static const char *const dup[] = {"x.npy", "x.npy"}, *const odd[] = {"x.npy", "notes.txt"};
	void *data[2];
	size_t sizes[2];
	zbuf z = {0};

	npy_members(data, sizes);
	zip_write(&z, 2, dup, data, sizes, ZIP_PLAIN, 0);
	npz_error(z.p, z.n, MPCC_ERR_INVALID, "member 'x.npy': the archive holds it twice");
	zip_write(&z, 2, odd, data, sizes, ZIP_PLAIN, 0);
	npz_error(z.p, z.n, MPCC_ERR_INVALID, "member 'notes.txt': not an .npy member");
	static const char *const bad_npy[] = {"x.npy"};
	size_t cut = sizes[0] - 4;
	zip_write(&z, 1, bad_npy, data, &cut, ZIP_PLAIN, 0);
	npz_error(z.p, z.n, MPCC_ERR_INVALID, "member 'x.npy': .npy: shape and dtype need");
	npz_error("PK\3\4", 4, MPCC_ERR_INVALID, "not a .npz (zip) file");
	npz_error("hello, world, this is not a zip archive", 39, MPCC_ERR_INVALID,
	          "not a .npz (zip) file");
	free(data[0]);
	free(data[1]);
	free(z.p);
}

/*
 * Why every truncation and every byte: a reader that trusts one length
 * reads out of bounds on some prefix or some flipped bit; valgrind turns
 * such a read into a failure. Flipped data bytes must be caught by the
 * CRC, flipped header bytes by the structural checks.
 */
static void
npz_damage_gives_errors_never_crashes(void **state)
{
	for (int style = ZIP_PLAIN; style <= ZIP_DESCRIPTOR; style++) {
		zbuf z = {0};
		make_npz(&z, (zstyle)style, 0);
		for (size_t n = 0; n < z.n; n++)
			npz_error(z.p, n, MPCC_OK, "npz");
		uint8_t *c = malloc(z.n);
		assert_non_null(c);
		for (size_t i = 0; i < z.n; i++) {
			mpcc_npz a;
			mpcc_diag d;
			memcpy(c, z.p, z.n);
			c[i] ^= 0x11;
			mpcc_diag_init(&d);
			if (mpcc_npz_read_buffer(c, z.n, &a, &d) == MPCC_OK)
				mpcc_npz_fini(&a); /* e.g. a timestamp or version byte */
			else
				assert_null(strchr(d.msg, '\n'));
		}
		free(c);
		free(z.p);
	}
}

static void
npz_file_errors_name_the_path(void **state)
{
	zbuf z = {0};
	mpcc_npz a;
	mpcc_diag d;

	make_npz(&z, ZIP_PLAIN, 0);
	z.p[z.n / 3] ^= 1; /* inside x's data: CRC */
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_write_whole_file(tmp_path("bad.npz"), z.p, z.n, &d), MPCC_OK);
	assert_int_equal(mpcc_npz_read_file(tmp_path("bad.npz"), &a, &d), MPCC_ERR_INVALID);
	char want[200];
	snprintf(want, sizeof(want), "%s: damaged .npz member 'x.npy': CRC-32 mismatch",
	         tmp_path("bad.npz"));
	assert_string_equal(d.msg, want);
	free(z.p);
}

/* ---------------------------------------------------------------- main */

static int
write_plans(const char *dir)
{
	static const struct {
		void (*build)(mpcc_graph *);
		const char *name;
	} plans[] = {{build_linreg, "linreg.plan"}, {build_classifier, "classifier.plan"},
	             {build_inference, "inference.plan"}};
	char path[512];

	lr = 0.5f; /* the CLI test's data differ from make_data's */
	for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
		void *buf;
		size_t size;
		mpcc_diag d;
		if (compile_to_buffer(plans[i].build, NULL, &buf, &size, NULL) != MPCC_OK)
			return 1;
		snprintf(path, sizeof(path), "%s/%s", dir, plans[i].name);
		mpcc_diag_init(&d);
		mpcc_status st = mpcc_write_whole_file(path, buf, size, &d);
		free(buf);
		if (st != MPCC_OK) {
			fprintf(stderr, "%s\n", d.msg);
			return 1;
		}
	}
	return 0;
}

static int
make_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mpcc_train_XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
remove_tmpdir(void **state)
{
	static const char *const names[] = {"a.ckpt", "b.ckpt", "c.ckpt", "d.ckpt", "x.ckpt",
	                                    "g.ckpt", "bad.npz"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		remove(tmp_path(names[i]));
	return rmdir(tmpdir);
}

int
main(int argc, char **argv)
{
	make_data();
	choose_lr();
	if (argc == 3 && strcmp(argv[1], "--write-plans") == 0)
		return write_plans(argv[2]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(linear_regression_converges_to_the_true_weights),
		cmocka_unit_test(a_step_is_one_gradient_descent_update),
		cmocka_unit_test(eval_leaves_the_state_untouched),
		cmocka_unit_test(a_nan_batch_is_skipped_and_counted),
		cmocka_unit_test(missing_or_wrong_inputs_are_errors_naming_them),
		cmocka_unit_test(no_trainer_for_an_inference_plan_or_unknown_backend),
		cmocka_unit_test(two_states_swap_and_the_loss_scale_is_reported),
		cmocka_unit_test(cpu_and_interp_trainers_agree_bit_for_bit),
		cmocka_unit_test(resuming_from_a_checkpoint_is_bit_exact),
		cmocka_unit_test(damaged_or_foreign_checkpoints_are_refused),
		cmocka_unit_test(the_training_section_round_trips),
		cmocka_unit_test(a_damaged_training_section_is_refused),
		cmocka_unit_test(freezing_a_state_input_fails_verification),
		cmocka_unit_test(low_io_plans_convert_the_initial_state),
		cmocka_unit_test(npz_reads_stored_archives_in_every_layout),
		cmocka_unit_test(npz_refuses_compressed_members_with_advice),
		cmocka_unit_test(npz_refuses_odd_members),
		cmocka_unit_test(npz_damage_gives_errors_never_crashes),
		cmocka_unit_test(npz_file_errors_name_the_path),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
