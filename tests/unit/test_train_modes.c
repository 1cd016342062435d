/*
 * test_train_modes.c - BatchNormalization and Dropout in `--train` plans
 * (passes/train_modes.c, docs/training.md "Training mode"): small ONNX
 * models packed in memory with the frontend's protobuf-c bindings, compiled
 * to training plans and run step by step with the trainer API on the CPU.
 *
 *   batchnorm   MatMul -> BatchNormalization and Conv -> BatchNormalization
 *               (-> Relu): a training step normalises with the batch's
 *               statistics (per channel, mean B and variance scale^2
 *               v / (v + eps)); the running statistics move by ONNX's rule,
 *               computed here in double; a skipped step and an evaluation
 *               leave them bit for bit; an evaluation is the inference
 *               formula with the running statistics, and the exported
 *               model gives its logits bit for bit; the gradients of scale,
 *               B and the Conv weight (read back from one SGD step with
 *               lr 1) match central differences of a double reference; a
 *               bf16 or fp16 plan keeps the statistics in f32; frozen
 *               statistics keep the node in inference mode; a model's own
 *               training_mode = 1 stays refused;
 *   dropout     a training step zeroes ratio of 4096 elements within four
 *               standard deviations, scales the rest by exactly
 *               1 / (1 - ratio), draws exactly the documented hash's mask,
 *               a new one each step and the same one again after a
 *               checkpoint is loaded; an evaluation is the identity; the
 *               gradient of an upstream weight is zero exactly where the
 *               mask drops;
 *   backends    the interpreter's steps equal the CPU backend's bit for bit
 *               (masks, logits and every state).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/onnx.h"
#include "onnx.pb-c.h"
#include "passes/passes.h"
#include "runtime/api_internal.h"

/* ---------------------------------------------------------------- models */

enum { T_F32 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT };

#define MAX_INIT 8
#define MAX_NODE 6
#define MAX_ATTR 4

typedef struct attr_spec {
	const char *name; /* NULL ends the list */
	char kind;        /* 'f' float, 'i' int, 'I' ints */
	double f;
	int64_t i;
	int n;
	int64_t ints[8];
} attr_spec;

typedef struct node_spec {
	const char *op, *name, *in[6], *out[2]; /* lists NULL-terminated */
	attr_spec attr[MAX_ATTR];
} node_spec;

typedef struct tensor_spec {
	const char *name;
	int rank;
	int64_t dims[4];
	const float *data;
} tensor_spec;

/* Input x (f32, x.dims), f32 initializers, nodes in order, one output
 * (shape inferred), at opset `opset`. */
typedef struct model_spec {
	int opset;
	tensor_spec x;
	tensor_spec init[MAX_INIT];
	node_spec node[MAX_NODE];
	const char *out;
} model_spec;

typedef struct io_decl {
	Onnx__ValueInfoProto vi;
	Onnx__TypeProto type;
	Onnx__TypeProto__Tensor tensor;
	Onnx__TensorShapeProto shape;
	Onnx__TensorShapeProto__Dimension dim[4], *dim_p[4];
} io_decl;

static void
declare(io_decl *io, const char *name, int rank, const int64_t *dims)
{
	onnx__value_info_proto__init(&io->vi);
	onnx__type_proto__init(&io->type);
	onnx__type_proto__tensor__init(&io->tensor);
	onnx__tensor_shape_proto__init(&io->shape);
	io->vi.name = (char *)name;
	io->vi.type = &io->type;
	io->type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	io->type.tensor_type = &io->tensor;
	io->tensor.has_elem_type = 1;
	io->tensor.elem_type = T_F32;
	io->tensor.shape = &io->shape;
	for (int i = 0; i < rank; i++) {
		onnx__tensor_shape_proto__dimension__init(&io->dim[i]);
		io->dim[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
		io->dim[i].dim_value = dims[i];
		io->dim_p[i] = &io->dim[i];
	}
	io->shape.n_dim = (size_t)rank;
	io->shape.dim = io->dim_p;
}

static int64_t
numel(const tensor_spec *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->rank; i++)
		n *= t->dims[i];
	return n;
}

/* The spec as an ONNX model (malloc'd, *size bytes). */
static uint8_t *
pack(const model_spec *s, size_t *size)
{
	Onnx__NodeProto node[MAX_NODE], *node_p[MAX_NODE];
	Onnx__AttributeProto attr[MAX_NODE][MAX_ATTR], *attr_p[MAX_NODE][MAX_ATTR];
	Onnx__TensorProto init[MAX_INIT], *init_p[MAX_INIT];
	io_decl in, out;
	Onnx__ValueInfoProto *in_p = &in.vi, *out_p = &out.vi;
	Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
	Onnx__ModelProto pm = ONNX__MODEL_PROTO__INIT;
	Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opset_p = &opset;

	for (; g.n_node < MAX_NODE && s->node[g.n_node].op; g.n_node++) {
		size_t i = g.n_node;
		const node_spec *ns = &s->node[i];
		Onnx__NodeProto *n = node_p[i] = &node[i];
		onnx__node_proto__init(n);
		n->op_type = (char *)ns->op;
		n->name = (char *)ns->name;
		n->input = (char **)ns->in;
		while (n->n_input < 6 && ns->in[n->n_input])
			n->n_input++;
		n->output = (char **)ns->out;
		while (n->n_output < 2 && ns->out[n->n_output])
			n->n_output++;
		for (; n->n_attribute < MAX_ATTR && ns->attr[n->n_attribute].name;
		     n->n_attribute++) {
			const attr_spec *as = &ns->attr[n->n_attribute];
			Onnx__AttributeProto *a = attr_p[i][n->n_attribute] =
			    &attr[i][n->n_attribute];
			onnx__attribute_proto__init(a);
			a->name = (char *)as->name;
			a->has_type = 1;
			if (as->kind == 'f') {
				a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
				a->has_f = 1;
				a->f = (float)as->f;
			} else if (as->kind == 'i') {
				a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
				a->has_i = 1;
				a->i = as->i;
			} else {
				a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
				a->n_ints = (size_t)as->n;
				a->ints = (int64_t *)as->ints;
			}
		}
		n->attribute = attr_p[i];
	}
	for (; g.n_initializer < MAX_INIT && s->init[g.n_initializer].name; g.n_initializer++) {
		const tensor_spec *ts = &s->init[g.n_initializer];
		Onnx__TensorProto *t = init_p[g.n_initializer] = &init[g.n_initializer];
		onnx__tensor_proto__init(t);
		t->name = (char *)ts->name;
		t->n_dims = (size_t)ts->rank;
		t->dims = (int64_t *)ts->dims;
		t->has_data_type = 1;
		t->data_type = T_F32;
		t->n_float_data = (size_t)numel(ts);
		t->float_data = (float *)ts->data;
	}
	declare(&in, "x", s->x.rank, s->x.dims);
	declare(&out, s->out, 0, NULL);
	out.vi.type = NULL; /* inferred */
	g.name = "test";
	g.node = node_p;
	g.initializer = init_p;
	g.n_input = 1;
	g.input = &in_p;
	g.n_output = 1;
	g.output = &out_p;
	opset.domain = "";
	opset.has_version = 1;
	opset.version = s->opset;
	pm.has_ir_version = 1;
	pm.ir_version = 8;
	pm.n_opset_import = 1;
	pm.opset_import = &opset_p;
	pm.graph = &g;
	*size = onnx__model_proto__get_packed_size(&pm);
	uint8_t *buf = malloc(*size);
	assert_non_null(buf);
	onnx__model_proto__pack(&pm, buf);
	return buf;
}

/* ---------------------------------------------------------------- data */

static uint64_t
splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi), as f32. */
static void
fill(float *p, int n, double lo, double hi, uint64_t *s)
{
	for (int i = 0; i < n; i++)
		p[i] = (float)(lo + (hi - lo) * (double)(splitmix(s) >> 11) / (double)(1ull << 53));
}

/* Uniform with |value| in [0.2, 1) and a random sign: away from zero, so a
 * zero output can only be a dropped element. */
static void
fill_signed(float *p, int n, uint64_t *s)
{
	fill(p, n, 0.2, 1.0, s);
	for (int i = 0; i < n; i++)
		if (splitmix(s) & 1)
			p[i] = -p[i];
}

/* ---------------------------------------------------------------- compiling and running */

typedef struct fx {
	mpcc_context *cx;
	mpcc_plan *plan;
	mpcc_trainer *tr;
	char dir[64]; /* for checkpoints and exports */
} fx;

static mpcc_status
try_compile(fx *f, const model_spec *s, mpcc_precision p, const mpcc_train_options *o)
{
	mpcc_compile_options co;
	void *buf = NULL;
	size_t n = 0, model_size;
	uint8_t *model = pack(s, &model_size);

	mpcc_trainer_destroy(f->tr);
	mpcc_plan_destroy(f->plan);
	f->tr = NULL;
	f->plan = NULL;
	mpcc_compile_options_init(&co);
	co.precision = p;
	co.train = o;
	mpcc_status st = mpcc_compile_buffer(f->cx, model, model_size, NULL, &co, &buf, &n);
	free(model);
	if (st != MPCC_OK)
		return st;
	assert_int_equal(mpcc_plan_load_buffer(f->cx, buf, n, &f->plan), MPCC_OK);
	free(buf);
	assert_int_equal(mpcc_trainer_create(f->cx, f->plan, "cpu", &f->tr), MPCC_OK);
	return MPCC_OK;
}

static void
compile(fx *f, const model_spec *s, mpcc_precision p, const mpcc_train_options *o)
{
	if (try_compile(f, s, p, o) != MPCC_OK)
		fail_msg("compile: %s", mpcc_context_last_error(f->cx));
}

/* SGD with lr and MSE against float targets "y": each weight's gradient is
 * (w - w') / lr after one step. */
static void
sgd_mse(mpcc_train_options *o, double lr)
{
	mpcc_train_options_init(o);
	o->loss = MPCC_LOSS_MSE;
	o->optimizer = MPCC_OPTIMIZER_SGD;
	o->lr = lr;
	o->label = "y";
}

static const mpcc_tensor *
state(fx *f, const char *name)
{
	for (int i = 0; i < mpcc_trainer_n_state(f->tr); i++) {
		const mpcc_tensor *t;
		assert_int_equal(mpcc_trainer_state(f->tr, i, &t), MPCC_OK);
		if (!strcmp(t->name, name))
			return t;
	}
	return NULL;
}

static const float *
state_f32(fx *f, const char *name)
{
	const mpcc_tensor *t = state(f, name);
	if (!t)
		fail_msg("no state '%s'", name);
	assert_int_equal(t->dtype, MPCC_DTYPE_F32);
	return t->data;
}

/* A step (or evaluation) on x (shape of spec's x) with targets y shaped as
 * the logits (ydims[yrank]). */
static void
run(fx *f, const model_spec *s, const float *x, const float *y, int yrank, const int64_t *ydims,
    bool eval, mpcc_train_result *r)
{
	int64_t yn = 1;
	for (int i = 0; i < yrank; i++)
		yn *= ydims[i];
	mpcc_tensor in[2] = {
	    {.name = "x",
	     .dtype = MPCC_DTYPE_F32,
	     .rank = s->x.rank,
	     .data = (void *)x,
	     .nbytes = sizeof(float) * (size_t)numel(&s->x)},
	    {.name = "y",
	     .dtype = MPCC_DTYPE_F32,
	     .rank = yrank,
	     .data = (void *)y,
	     .nbytes = sizeof(float) * (size_t)yn},
	};
	memcpy(in[0].dims, s->x.dims, sizeof(int64_t) * (size_t)s->x.rank);
	memcpy(in[1].dims, ydims, sizeof(int64_t) * (size_t)yrank);
	mpcc_status st =
	    eval ? mpcc_trainer_eval(f->tr, in, 2, r) : mpcc_trainer_step(f->tr, in, 2, r);
	if (st != MPCC_OK)
		fail_msg("%s: %s", eval ? "eval" : "step", mpcc_context_last_error(f->cx));
	assert_int_equal(r->logits.dtype, MPCC_DTYPE_F32);
	assert_int_equal(r->logits.nbytes, sizeof(float) * (size_t)yn);
}

/* |got - want| <= tol * max(|want|, mag) */
static void
near(const char *what, int i, double got, double want, double mag, double tol)
{
	if (!(fabs(got - want) <= tol * fmax(fabs(want), mag)))
		fail_msg("%s[%d] = %.9g, reference %.9g (tolerance %g)", what, i, got, want,
		         tol * fmax(fabs(want), mag));
}

/* ---------------------------------------------------------------- batchnorm models */

/*
 * Two models share the BatchNormalization "bn" (scale, B, rm, rv over C
 * channels): "dense", z = x W with x [DN, DF], W [DF, C]; "conv",
 * z = Conv(x, K) with x [CN, CI, HW, HW], K [C, CI, 3, 3], pads 1, then
 * bn -> Relu "out". The dense one sets epsilon and momentum, the conv one
 * takes the defaults.
 */
#define C 3
#define DN 16
#define DF 4
#define CN 4
#define CI 2
#define HW 5
#define CS (HW * HW)

static float dense_x[DN * DF], dense_w[DF * C], dense_t[DN * C];
static float conv_x[CN * CI * CS], conv_k[C * CI * 9], conv_t[CN * C * CS];
static float bn_scale[C], bn_b[C], bn_rm[C], bn_rv[C];

static const float dense_eps = 1e-3f, dense_momentum = 0.8f;

static model_spec
dense_model(void)
{
	return (model_spec){
	    .opset = 15,
	    .x = {"x", 2, {DN, DF}},
	    .init = {{"W", 2, {DF, C}, dense_w},
	             {"scale", 1, {C}, bn_scale},
	             {"B", 1, {C}, bn_b},
	             {"rm", 1, {C}, bn_rm},
	             {"rv", 1, {C}, bn_rv}},
	    .node = {{"MatMul", "mm", {"x", "W"}, {"z"}},
	             {"BatchNormalization",
	              "bn",
	              {"z", "scale", "B", "rm", "rv"},
	              {"logits"},
	              {{"epsilon", 'f', dense_eps}, {"momentum", 'f', dense_momentum}}}},
	    .out = "logits",
	};
}

static model_spec
conv_model(void)
{
	return (model_spec){
	    .opset = 15,
	    .x = {"x", 4, {CN, CI, HW, HW}},
	    .init = {{"K", 4, {C, CI, 3, 3}, conv_k},
	             {"scale", 1, {C}, bn_scale},
	             {"B", 1, {C}, bn_b},
	             {"rm", 1, {C}, bn_rm},
	             {"rv", 1, {C}, bn_rv}},
	    .node =
	        {{"Conv", "conv", {"x", "K"}, {"z"}, {{"pads", 'I', .n = 4, .ints = {1, 1, 1, 1}}}},
	         {"BatchNormalization", "bn", {"z", "scale", "B", "rm", "rv"}, {"zbn"}},
	         {"Relu", "relu", {"zbn"}, {"out"}}},
	    .out = "out",
	};
}

static const int64_t dense_ydims[2] = {DN, C}, conv_ydims[4] = {CN, C, HW, HW};

static void
make_bn_data(void)
{
	uint64_t s = 2024;
	fill(dense_x, DN * DF, -1.5, 2.5, &s); /* a mean away from 0 */
	fill(dense_w, DF * C, -1, 1, &s);
	fill(dense_t, DN * C, -1, 1, &s);
	fill(conv_x, CN * CI * CS, -1, 1.5, &s);
	fill(conv_k, C * CI * 9, -0.5, 0.5, &s);
	fill(conv_t, CN * C * CS, -0.5, 1.5, &s);
	fill(bn_scale, C, 0.5, 1.5, &s);
	fill(bn_b, C, -0.5, 0.5, &s);
	fill(bn_rm, C, -0.3, 0.3, &s);
	fill(bn_rv, C, 0.5, 2, &s);
}

/* z in double as [n][c][s] (s the spatial position, one for dense). */
static void
dense_z(const float *w, double *z)
{
	for (int n = 0; n < DN; n++)
		for (int c = 0; c < C; c++) {
			double acc = 0;
			for (int i = 0; i < DF; i++)
				acc += (double)dense_x[n * DF + i] * w[i * C + c];
			z[n * C + c] = acc;
		}
}

/* x at (n, i, h, w), 0 in the padding. */
static double
conv_in(int n, int i, int h, int w)
{
	if (h < 0 || h >= HW || w < 0 || w >= HW)
		return 0;
	return conv_x[((n * CI + i) * HW + h) * HW + w];
}

static void
conv_z(const double *k, double *z)
{
	for (int n = 0; n < CN; n++)
		for (int c = 0; c < C; c++)
			for (int p = 0; p < CS; p++) {
				int h = p / HW, w = p % HW;
				double acc = 0;
				for (int t = 0; t < CI * 9; t++) {
					int i = t / 9, dh = t / 3 % 3, dw = t % 3;
					acc += conv_in(n, i, h + dh - 1, w + dw - 1) *
					       k[c * CI * 9 + t];
				}
				z[(n * C + c) * CS + p] = acc;
			}
}

/* Per channel mean and biased variance of z [nb][C][sp]. */
static void
channel_stats(const double *z, int nb, int sp, double *mean, double *var)
{
	for (int c = 0; c < C; c++) {
		double m = 0, v = 0;
		for (int n = 0; n < nb; n++)
			for (int s = 0; s < sp; s++)
				m += z[(n * C + c) * sp + s];
		m /= nb * sp;
		for (int n = 0; n < nb; n++)
			for (int s = 0; s < sp; s++)
				v += (z[(n * C + c) * sp + s] - m) * (z[(n * C + c) * sp + s] - m);
		mean[c] = m;
		var[c] = v / (nb * sp);
	}
}

/* Per channel statistics of f32 logits [nb][C][sp], in double. */
static void
logits_stats(const mpcc_train_result *r, int nb, int sp, double *mean, double *var)
{
	static double z[CN * C * CS > DN * C ? CN * C * CS : DN * C];
	const float *y = r->logits.data;
	for (int i = 0; i < nb * C * sp; i++)
		z[i] = y[i];
	channel_stats(z, nb, sp, mean, var);
}

/*
 * One training step normalises z with the batch's statistics: per channel
 * the output's mean is B and its variance scale^2 v / (v + eps), v the
 * batch variance; the running statistics become r momentum + batch (1 -
 * momentum), ONNX's rule with the biased variance, from z in double.
 */
static void
check_first_step(fx *f, const model_spec *s, const float *x, const float *t, int yrank,
                 const int64_t *ydims, const double *z, int nb, int sp, double eps, double momentum)
{
	mpcc_train_result r;
	double bm[C], bv[C], ym[C], yv[C];

	channel_stats(z, nb, sp, bm, bv);
	run(f, s, x, t, yrank, ydims, false, &r);
	assert_false(r.skipped);
	logits_stats(&r, nb, sp, ym, yv);
	for (int c = 0; c < C; c++) {
		near("mean of y", c, ym[c], bn_b[c], 1, 1e-5);
		near("variance of y", c, yv[c],
		     (double)bn_scale[c] * bn_scale[c] * bv[c] / (bv[c] + eps), 0, 1e-5);
		near("running mean", c, state_f32(f, "rm")[c],
		     bn_rm[c] * momentum + bm[c] * (1 - momentum), 0, 1e-6);
		near("running var", c, state_f32(f, "rv")[c],
		     bn_rv[c] * momentum + bv[c] * (1 - momentum), 0, 1e-6);
	}
}

static void
a_training_step_uses_the_batch_statistics_and_updates_the_running_ones(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	model_spec s = dense_model();
	static double z[CN * C * CS];

	sgd_mse(&o, 0.1);
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	/* the running statistics are state of their own names, after the weights */
	assert_int_equal(mpcc_trainer_n_state(f->tr), 5);
	assert_memory_equal(state_f32(f, "rm"), bn_rm, sizeof bn_rm);
	dense_z(dense_w, z);
	check_first_step(f, &s, dense_x, dense_t, 2, dense_ydims, z, DN, 1, dense_eps,
	                 dense_momentum);

	/* NCHW, default epsilon and momentum; the logits are the normalised z */
	s = conv_model();
	o.logits = "zbn";
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	double k[C * CI * 9];
	for (int i = 0; i < C * CI * 9; i++)
		k[i] = conv_k[i];
	conv_z(k, z);
	check_first_step(f, &s, conv_x, conv_t, 4, conv_ydims, z, CN, CS, 1e-5f, 0.9f);
}

static void
copy_f32(fx *f, const char *name, float *to)
{
	memcpy(to, state_f32(f, name), sizeof(float) * C);
}

/* A non-finite batch skips the step: the running statistics stay bit for
 * bit, as the weights; an evaluation leaves them too. */
static void
a_skipped_step_and_an_evaluation_leave_the_running_statistics(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	model_spec s = dense_model();
	float rm[C], rv[C], bad[DN * DF], w[DF * C];

	sgd_mse(&o, 0.1);
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	run(f, &s, dense_x, dense_t, 2, dense_ydims, false, &r);
	copy_f32(f, "rm", rm);
	copy_f32(f, "rv", rv);
	memcpy(w, state_f32(f, "W"), sizeof w);
	memcpy(bad, dense_x, sizeof bad);
	bad[7] = INFINITY;
	run(f, &s, bad, dense_t, 2, dense_ydims, false, &r);
	assert_true(r.skipped);
	assert_memory_equal(state_f32(f, "rm"), rm, sizeof rm);
	assert_memory_equal(state_f32(f, "rv"), rv, sizeof rv);
	assert_memory_equal(state_f32(f, "W"), w, sizeof w);
	run(f, &s, dense_x, dense_t, 2, dense_ydims, true, &r);
	assert_memory_equal(state_f32(f, "rm"), rm, sizeof rm);
	assert_memory_equal(state_f32(f, "rv"), rv, sizeof rv);
	run(f, &s, dense_x, dense_t, 2, dense_ydims, false, &r);
	assert_false(r.skipped);
	assert_true(memcmp(state_f32(f, "rm"), rm, sizeof rm) != 0);
}

/* The logits of model (a file) compiled as an fp32 inference plan, run on
 * x (dense) on the CPU. Malloc'd. */
static float *
infer_dense(fx *f, const char *path)
{
	mpcc_compile_options co;
	mpcc_plan *p;
	mpcc_session *s;
	mpcc_tensor out;
	mpcc_diag d;
	size_t n, mn;
	void *plan, *model;
	int64_t xd[2] = {DN, DF};

	mpcc_diag_init(&d);
	if (mpcc_read_whole_file(path, &model, &mn, &d) != MPCC_OK)
		fail_msg("%s", d.msg);
	mpcc_compile_options_init(&co);
	co.precision = MPCC_PRECISION_FP32;
	if (mpcc_compile_buffer(f->cx, model, mn, NULL, &co, &plan, &n) != MPCC_OK)
		fail_msg("compiling the export: %s", mpcc_context_last_error(f->cx));
	free(model);
	assert_int_equal(mpcc_plan_load_buffer(f->cx, plan, n, &p), MPCC_OK);
	free(plan);
	assert_int_equal(mpcc_session_create(f->cx, p, "cpu", &s), MPCC_OK);
	assert_int_equal(
	    mpcc_session_set_input(s, "x", MPCC_DTYPE_F32, 2, xd, dense_x, sizeof(dense_x)),
	    MPCC_OK);
	assert_int_equal(mpcc_session_run(s), MPCC_OK);
	assert_int_equal(mpcc_session_output(s, 0, &out), MPCC_OK);
	assert_int_equal(out.nbytes, sizeof(float) * DN * C);
	float *y = malloc(out.nbytes);
	assert_non_null(y);
	memcpy(y, out.data, out.nbytes);
	mpcc_session_destroy(s);
	mpcc_plan_destroy(p);
	return y;
}

/*
 * After two steps an evaluation is the inference formula over the running
 * statistics and the current weights (in double, within f32 rounding), and
 * the exported model (its running statistics written back) gives the same
 * logits bit for bit as an inference plan.
 */
static void
evaluation_is_the_inference_model_with_the_running_statistics(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	model_spec s = dense_model();
	double z[DN * C];
	char path[128];

	sgd_mse(&o, 0.1);
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	for (int i = 0; i < 2; i++)
		run(f, &s, dense_x, dense_t, 2, dense_ydims, false, &r);
	const float *rm = state_f32(f, "rm"), *rv = state_f32(f, "rv");
	const float *sc = state_f32(f, "scale"), *b = state_f32(f, "B");
	assert_true(memcmp(rm, bn_rm, sizeof bn_rm) != 0);
	dense_z(state_f32(f, "W"), z);
	run(f, &s, dense_x, dense_t, 2, dense_ydims, true, &r);
	const float *y = r.logits.data;
	for (int i = 0; i < DN * C; i++) {
		int c = i % C;
		double want = (z[i] - rm[c]) / sqrt((double)rv[c] + dense_eps) * sc[c] + b[c];
		near("eval logits", i, y[i], want, 1, 1e-5);
	}
	float eval[DN * C];
	memcpy(eval, y, sizeof eval);

	snprintf(path, sizeof path, "%s/bn.onnx", f->dir);
	if (mpcc_trainer_export(f->tr, path) != MPCC_OK)
		fail_msg("export: %s", mpcc_context_last_error(f->cx));
	float *inferred = infer_dense(f, path);
	assert_memory_equal(inferred, eval, sizeof eval);
	free(inferred);
	unlink(path);
}

/* The reference loss of the conv model at (k, scale, b): Conv, training-mode
 * BatchNormalization, Relu, mean squared error, all in double. */
static double
conv_loss(const double *k, const double *scale, const double *b)
{
	static double z[CN * C * CS];
	double m[C], v[C], loss = 0;

	conv_z(k, z);
	channel_stats(z, CN, CS, m, v);
	for (int n = 0; n < CN; n++)
		for (int c = 0; c < C; c++)
			for (int p = 0; p < CS; p++) {
				int i = (n * C + c) * CS + p;
				double y = (z[i] - m[c]) / sqrt(v[c] + 1e-5f) * scale[c] + b[c];
				double e = (y > 0 ? y : 0) - conv_t[i];
				loss += e * e;
			}
	return loss / (CN * C * CS);
}

/*
 * Why the tolerance: the compiled gradient comes back as (w - w') / lr with
 * lr = 1, which is exact to the rounding of w' (2^-24 |w|, |w| < 2); the
 * step computes in f32, and the batch statistics' backward sums 100
 * products per channel. Measured, the worst element is off by 9e-7 of the
 * tensor's largest gradient; the tolerance is 1e-5 of it. A backward pass
 * that treated the batch statistics as constants would be off by 0.95 of
 * the largest dK here (measured the same way), so the check sees the
 * statistics' own gradient. The reference is a central difference of the
 * double loss with h = 1e-6, good to about 1e-9.
 */
static void
check_grad(const char *what, const float *before, const float *after, const double *fd, int n)
{
	double gmax = 0;
	for (int i = 0; i < n; i++)
		gmax = fmax(gmax, fabs(fd[i]));
	assert_true(gmax > 1e-3);
	for (int i = 0; i < n; i++)
		near(what, i, (double)before[i] - after[i], fd[i], gmax, 1e-5);
}

static void
batchnorm_gradients_match_finite_differences(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	model_spec s = conv_model();
	double k[C * CI * 9], sc[C], b[C], fdk[C * CI * 9], fds[C], fdb[C];
	const double h = 1e-6;

	for (int i = 0; i < C * CI * 9; i++)
		k[i] = conv_k[i];
	for (int c = 0; c < C; c++) {
		sc[c] = bn_scale[c];
		b[c] = bn_b[c];
	}
	double *params[3] = {k, sc, b}, *fd[3] = {fdk, fds, fdb};
	int sizes[3] = {C * CI * 9, C, C};
	for (int p = 0; p < 3; p++)
		for (int i = 0; i < sizes[p]; i++) {
			double keep = params[p][i];
			params[p][i] = keep + h;
			double up = conv_loss(k, sc, b);
			params[p][i] = keep - h;
			double down = conv_loss(k, sc, b);
			params[p][i] = keep;
			fd[p][i] = (up - down) / (2 * h);
		}

	sgd_mse(&o, 1);
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	run(f, &s, conv_x, conv_t, 4, conv_ydims, false, &r);
	assert_false(r.skipped);
	near("loss", 0, r.loss, conv_loss(k, sc, b), 0, 1e-5);
	check_grad("dK", conv_k, state_f32(f, "K"), fdk, C * CI * 9);
	check_grad("dscale", bn_scale, state_f32(f, "scale"), fds, C);
	check_grad("dB", bn_b, state_f32(f, "B"), fdb, C);
}

/* The node of g named name, which must exist and be live. */
static const mpcc_node *
live_node(const mpcc_graph *g, const char *name)
{
	for (int32_t i = 0; i < g->n_nodes; i++)
		if (!g->nodes[i].dead && !strcmp(g->nodes[i].name, name))
			return &g->nodes[i];
	fail_msg("no live node '%s'", name);
	return NULL;
}

/*
 * In bf16 and fp16 the Conv computes low, but the statistics (ReduceMean
 * is numerically sensitive by policy, and what reads its f32 output
 * follows it) and the running update compute and store f32: the step
 * graph through the pipeline, its decisions read by node name.
 */
static void
low_precision_plans_keep_the_statistics_in_f32(void **st)
{
	fx *f = *st;
	static const char *const nodes[] = {"train/bn/batch_mean",       "train/bn/deviation",
	                                    "train/bn/deviation_sq",     "train/bn/batch_var",
	                                    "train/bn/running_mean_new", "train/bn/running_var_new",
	                                    "train/bn/centered",         "train/bn/std"};
	const mpcc_precision modes[2] = {MPCC_PRECISION_BF16, MPCC_PRECISION_FP16};
	model_spec s = conv_model();
	mpcc_train_options o;
	size_t size;
	uint8_t *model = pack(&s, &size);

	sgd_mse(&o, 0.1);
	for (int m = 0; m < 2; m++) {
		mpcc_compile_options co;
		mpcc_graph *g;
		mpcc_diag d;
		mpcc_diag_init(&d);
		mpcc_compile_options_init(&co);
		co.precision = modes[m];
		co.train = &o;
		mpcc_pass_ctx cx = {.d = &d, .opts = &co};
		assert_int_equal(mpcc_onnx_read_buffer(model, size, NULL, &g, &d), MPCC_OK);
		if (mpcc_run_pipeline(g, &cx) != MPCC_OK)
			fail_msg("pipeline: %s", d.msg);
		assert_true(mpcc_dtype_is_float(live_node(g, "conv")->compute));
		assert_int_not_equal(live_node(g, "conv")->compute, MPCC_DTYPE_F32);
		for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
			const mpcc_node *n = live_node(g, nodes[i]);
			const mpcc_value *v = &g->values[n->out[0]];
			if (n->compute != MPCC_DTYPE_F32 || n->accum != MPCC_DTYPE_F32 ||
			    v->dtype != MPCC_DTYPE_F32 ||
			    (v->storage != MPCC_DTYPE_UNDEF && v->storage != MPCC_DTYPE_F32))
				fail_msg("%s: '%s' computes %s, stores %s (%s)",
				         modes[m] == MPCC_PRECISION_BF16 ? "bf16" : "fp16",
				         nodes[i], mpcc_dtype_name(n->compute),
				         mpcc_dtype_name(v->storage), n->reason ? n->reason : "");
		}
		mpcc_graph_destroy(g);
	}
	free(model);
	/* and a step runs, moving the running statistics */
	compile(f, &s, MPCC_PRECISION_FP16, &o);
	mpcc_train_result r;
	run(f, &s, conv_x, conv_t, 4, conv_ydims, false, &r);
	assert_true(isfinite(r.loss));
	assert_true(memcmp(state_f32(f, "rm"), bn_rm, sizeof bn_rm) != 0);
}

/*
 * --freeze-weights on both running statistics keeps the node in inference
 * mode (its gradient rule is the inference form's): no state for them, and
 * the step's logits are the inference formula. One alone is refused.
 */
static void
frozen_statistics_keep_batchnorm_in_inference_mode(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	model_spec s = dense_model();
	double z[DN * C];

	sgd_mse(&o, 0.1);
	o.frozen_weights = (const char *const[]){"rm", "rv"};
	o.n_frozen_weights = 2;
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	assert_int_equal(mpcc_trainer_n_state(f->tr), 3);
	assert_null(state(f, "rm"));
	run(f, &s, dense_x, dense_t, 2, dense_ydims, false, &r);
	dense_z(dense_w, z);
	const float *y = r.logits.data;
	for (int i = 0; i < DN * C; i++) {
		int c = i % C;
		near("logits", i, y[i],
		     (z[i] - bn_rm[c]) / sqrt((double)bn_rv[c] + dense_eps) * bn_scale[c] + bn_b[c],
		     1, 1e-5);
	}
	assert_true(memcmp(state_f32(f, "scale"), bn_scale, sizeof bn_scale) != 0);

	o.n_frozen_weights = 1;
	assert_int_equal(try_compile(f, &s, MPCC_PRECISION_FP32, &o), MPCC_ERR_INVALID);
	const char *msg = mpcc_context_last_error(f->cx);
	if (!strstr(msg, "node 'bn' (BatchNormalization, opset 15): --freeze-weights names its "
	                 "running mean 'rm' but not its running variance 'rv'") ||
	    strchr(msg, '\n'))
		fail_msg("message \"%s\"", msg);
}

/*
 * A model's own training-mode node (training_mode = 1) is ONNX's batch
 * form in every run: the pipeline expands it, for inference and training
 * alike, into the batch branch named "<node>/...", with no mode switch and
 * no state (the ONNX suite's training-mode cases check the values).
 */
static void
a_training_mode_batchnorm_in_the_model_is_expanded(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	model_spec s = dense_model();
	static const char *const nodes[] = {"bn/batch_mean", "bn/deviation", "bn/batch_var",
	                                    "bn/centered", "bn/std"};

	s.node[1].attr[2] = (attr_spec){"training_mode", 'i', .i = 1};
	size_t size;
	uint8_t *model = pack(&s, &size);
	mpcc_compile_options co;
	mpcc_graph *g;
	mpcc_diag d;
	mpcc_diag_init(&d);
	mpcc_compile_options_init(&co);
	mpcc_pass_ctx cx = {.d = &d, .opts = &co};
	assert_int_equal(mpcc_onnx_read_buffer(model, size, NULL, &g, &d), MPCC_OK);
	if (mpcc_run_pipeline(g, &cx) != MPCC_OK)
		fail_msg("pipeline: %s", d.msg);
	for (int32_t i = 0; i < g->n_nodes; i++)
		if (!g->nodes[i].dead && g->nodes[i].op == MPCC_OP_BATCHNORMALIZATION)
			fail_msg("node '%s' is still a BatchNormalization", g->nodes[i].name);
	for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++)
		live_node(g, nodes[i]);
	for (int32_t i = 0; i < g->n_nodes; i++)
		if (!g->nodes[i].dead && g->nodes[i].op == MPCC_OP_WHERE)
			fail_msg("node '%s': the expansion has no mode switch", g->nodes[i].name);
	mpcc_graph_destroy(g);
	free(model);

	sgd_mse(&o, 0.1);
	assert_int_equal(try_compile(f, &s, MPCC_PRECISION_FP32, &o), MPCC_OK);
}

/* ---------------------------------------------------------------- dropout */

/*
 * z = x * w (w a weight of x's shape [DR, DR], so each element has its own
 * gradient) -> Dropout "logits". drop13: opset 13, the ratio 0.25 an
 * initializer input, seed attribute 1234. drop10: opset 10, the ratio
 * attribute 0.5, no seed (the seed is FNV-1a 32 of "logits").
 */
#define DR 64
#define DE (DR * DR)

static float drop_x[DE], drop_w[DE], drop_t[DE];
static const float ratio13 = 0.25f;
static const int64_t drop_dims[2] = {DR, DR};

static model_spec
drop13(void)
{
	return (model_spec){
	    .opset = 13,
	    .x = {"x", 2, {DR, DR}},
	    .init = {{"w", 2, {DR, DR}, drop_w}, {"ratio", 0, {0}, &ratio13}},
	    .node = {{"Mul", "mul", {"x", "w"}, {"z"}},
	             {"Dropout", "drop", {"z", "ratio"}, {"logits"}, {{"seed", 'i', .i = 1234}}}},
	    .out = "logits",
	};
}

static model_spec
drop10(void)
{
	return (model_spec){
	    .opset = 10,
	    .x = {"x", 2, {DR, DR}},
	    .init = {{"w", 2, {DR, DR}, drop_w}},
	    .node = {{"Mul", "mul", {"x", "w"}, {"z"}},
	             {"Dropout", "drop", {"z"}, {"logits", "mask"}, {{"ratio", 'f', 0.5}}}},
	    .out = "logits",
	};
}

static void
make_drop_data(void)
{
	uint64_t s = 77;
	fill_signed(drop_x, DE, &s);
	fill_signed(drop_w, DE, &s);
	fill(drop_t, DE, -1, 1, &s);
}

/* docs/training.md's generator, written out again. */
static uint32_t
fmix32(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	return h ^ (h >> 16);
}

static float
hash_uniform(uint32_t seed, int64_t step, uint32_t i)
{
	uint32_t lo = (uint32_t)step, hi = (uint32_t)((uint64_t)step >> 32);
	uint32_t key = fmix32(seed ^ fmix32(lo ^ fmix32(hi ^ 0x9e3779b9u)));
	return (float)(fmix32(fmix32(i ^ key) + key) >> 8) / 16777216.0f;
}

static uint32_t
fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* Which elements the step dropped (its logits are exactly 0 there; x w is
 * never 0), checked against the hash at that step count: every kept one
 * is x w scaled by exactly 1 / (1 - ratio). Returns the count dropped. */
static int
check_mask(const mpcc_train_result *r, const float *w, uint32_t seed, int64_t step, float ratio,
           bool *dropped)
{
	const float *y = r->logits.data, s = (float)(1.0 / (1.0 - (double)ratio));
	int n = 0;
	for (int i = 0; i < DE; i++) {
		dropped[i] = y[i] == 0;
		n += dropped[i];
		if (dropped[i] != !(hash_uniform(seed, step, (uint32_t)i) >= ratio))
			fail_msg("element %d: %s at step %lld, the hash says otherwise", i,
			         dropped[i] ? "dropped" : "kept", (long long)step);
		float z = drop_x[i] * w[i];
		if (!dropped[i] && y[i] != z * s)
			fail_msg("element %d: %.9g, not %.9g * %.9g", i, y[i], z, s);
	}
	return n;
}

static int64_t
drop_step_state(fx *f)
{
	const mpcc_tensor *t = state(f, "train/dropout_step");
	assert_non_null(t);
	assert_int_equal(t->dtype, MPCC_DTYPE_I64);
	return *(const int64_t *)t->data;
}

/*
 * A training step drops ratio of 4096 elements, within four standard
 * deviations of the binomial count, each the documented hash's choice; the
 * next step draws another mask; an evaluation is the identity and moves
 * nothing, the step count included.
 */
static void
dropout_drops_the_hashs_elements_and_evaluation_keeps_all(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	static bool first[DE], second[DE];
	static float w[DE];
	const struct {
		model_spec s;
		float ratio;
		uint32_t seed;
	} cases[2] = {{drop13(), ratio13, 1234}, {drop10(), 0.5f, fnv1a("logits")}};

	for (int k = 0; k < 2; k++) {
		const model_spec *s = &cases[k].s;
		double p = cases[k].ratio, sd = sqrt(DE * p * (1 - p));
		sgd_mse(&o, 0.1);
		compile(f, s, MPCC_PRECISION_FP32, &o);
		assert_int_equal(drop_step_state(f), 0);

		run(f, s, drop_x, drop_t, 2, drop_dims, true, &r);
		for (int i = 0; i < DE; i++)
			if (((const float *)r.logits.data)[i] != drop_x[i] * drop_w[i])
				fail_msg("evaluation: element %d is not x w", i);
		assert_int_equal(drop_step_state(f), 0);

		run(f, s, drop_x, drop_t, 2, drop_dims, false, &r);
		int n = check_mask(&r, drop_w, cases[k].seed, 0, cases[k].ratio, first);
		if (fabs(n - DE * p) > 4 * sd)
			fail_msg("ratio %g: %d of %d dropped", p, n, DE);
		assert_int_equal(drop_step_state(f), 1);

		memcpy(w, state_f32(f, "w"), sizeof w);
		run(f, s, drop_x, drop_t, 2, drop_dims, false, &r);
		check_mask(&r, w, cases[k].seed, 1, cases[k].ratio, second);
		int differ = 0;
		for (int i = 0; i < DE; i++)
			differ += first[i] != second[i];
		/* independent masks differ in 2 p (1 - p) of the elements */
		if (fabs(differ - DE * 2 * p * (1 - p)) > 4 * sqrt(DE * 2 * p * (1 - p)))
			fail_msg("ratio %g: the second mask differs in %d elements", p, differ);
		assert_int_equal(drop_step_state(f), 2);
	}
}

/* The step count is state: a checkpoint loaded again draws the same mask,
 * the same logits bit for bit. */
static void
a_checkpoint_resumes_the_dropout_masks(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	model_spec s = drop13();
	static float again[DE], w[DE];
	static bool mask[DE];
	char path[128];

	snprintf(path, sizeof path, "%s/drop.ckpt", f->dir);
	sgd_mse(&o, 0.1);
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	run(f, &s, drop_x, drop_t, 2, drop_dims, false, &r);
	assert_int_equal(mpcc_trainer_save(f->tr, path), MPCC_OK);
	memcpy(w, state_f32(f, "w"), sizeof w);
	run(f, &s, drop_x, drop_t, 2, drop_dims, false, &r);
	memcpy(again, r.logits.data, sizeof again);
	check_mask(&r, w, 1234, 1, ratio13, mask);
	run(f, &s, drop_x, drop_t, 2, drop_dims, false, &r);
	assert_int_equal(drop_step_state(f), 3);

	assert_int_equal(mpcc_trainer_load(f->tr, path), MPCC_OK);
	assert_int_equal(drop_step_state(f), 1);
	run(f, &s, drop_x, drop_t, 2, drop_dims, false, &r);
	assert_memory_equal(r.logits.data, again, sizeof again);
	unlink(path);
}

/* dL/dw = dL/dy (mask / (1 - ratio)) x: one SGD step leaves w bit for bit
 * where the mask dropped and moves every other element. */
static void
the_gradient_vanishes_exactly_where_the_mask_drops(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	model_spec s = drop13();
	static bool dropped[DE];

	sgd_mse(&o, 1);
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	run(f, &s, drop_x, drop_t, 2, drop_dims, false, &r);
	assert_false(r.skipped);
	check_mask(&r, drop_w, 1234, 0, ratio13, dropped);
	const float *w = state_f32(f, "w");
	for (int i = 0; i < DE; i++)
		if (dropped[i] != (w[i] == drop_w[i]))
			fail_msg("element %d: %s, but w %s", i, dropped[i] ? "dropped" : "kept",
			         w[i] == drop_w[i] ? "did not move" : "moved");
}

/* The interpreter draws the CPU backend's masks bit for bit (the hash is
 * integer kernel IR), and computes its batch statistics' steps the same. */
static void
the_interpreter_agrees_bit_for_bit(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r, ri;
	mpcc_trainer *interp;
	const model_spec models[2] = {drop13(), dense_model()};
	const float *xs[2] = {drop_x, dense_x}, *ts[2] = {drop_t, dense_t};
	const int64_t *yd[2] = {drop_dims, dense_ydims};

	sgd_mse(&o, 0.1);
	for (int k = 0; k < 2; k++) {
		compile(f, &models[k], MPCC_PRECISION_FP32, &o);
		assert_int_equal(mpcc_trainer_create(f->cx, f->plan, "interp", &interp), MPCC_OK);
		for (int step = 0; step < 2; step++) {
			run(f, &models[k], xs[k], ts[k], 2, yd[k], false, &r);
			mpcc_trainer *cpu = f->tr;
			f->tr = interp;
			run(f, &models[k], xs[k], ts[k], 2, yd[k], false, &ri);
			f->tr = cpu;
			assert_memory_equal(r.logits.data, ri.logits.data, r.logits.nbytes);
			for (int i = 0; i < mpcc_trainer_n_state(cpu); i++) {
				const mpcc_tensor *a, *b;
				assert_int_equal(mpcc_trainer_state(cpu, i, &a), MPCC_OK);
				assert_int_equal(mpcc_trainer_state(interp, i, &b), MPCC_OK);
				if (memcmp(a->data, b->data, a->nbytes))
					fail_msg("state '%s' differs after step %d", a->name, step);
			}
		}
		mpcc_trainer_destroy(interp);
	}
}

/* HashRandomUniform is mpcc's own: no model can name it, in any domain. */
static void
the_random_op_is_not_an_onnx_op(void **st)
{
	(void)st;
	assert_int_equal(mpcc_op_lookup("", "HashRandomUniform"), MPCC_OP_INVALID);
	assert_int_equal(mpcc_op_lookup("ai.onnx", "HashRandomUniform"), MPCC_OP_INVALID);
	assert_int_equal(mpcc_op_lookup("com.mpcc", "HashRandomUniform"), MPCC_OP_INVALID);
	assert_string_equal(mpcc_op_name(MPCC_OP_HASHRANDOMUNIFORM), "HashRandomUniform");
	assert_non_null(mpcc_op_rule_get(MPCC_OP_HASHRANDOMUNIFORM));
}

/* ---------------------------------------------------------------- main */

static int
setup(void **st)
{
	fx *f = calloc(1, sizeof(*f));
	if (!f || mpcc_context_create(&f->cx) != MPCC_OK) {
		free(f);
		return -1;
	}
	snprintf(f->dir, sizeof f->dir, "/tmp/mpcc_modes_XXXXXX");
	if (!mkdtemp(f->dir)) {
		mpcc_context_destroy(f->cx);
		free(f);
		return -1;
	}
	*st = f;
	return 0;
}

static int
teardown(void **st)
{
	fx *f = *st;
	mpcc_trainer_destroy(f->tr);
	mpcc_plan_destroy(f->plan);
	mpcc_context_destroy(f->cx);
	rmdir(f->dir);
	free(f);
	return 0;
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    TEST(a_training_step_uses_the_batch_statistics_and_updates_the_running_ones),
	    TEST(a_skipped_step_and_an_evaluation_leave_the_running_statistics),
	    TEST(evaluation_is_the_inference_model_with_the_running_statistics),
	    TEST(batchnorm_gradients_match_finite_differences),
	    TEST(low_precision_plans_keep_the_statistics_in_f32),
	    TEST(frozen_statistics_keep_batchnorm_in_inference_mode),
	    TEST(a_training_mode_batchnorm_in_the_model_is_expanded),
	    TEST(dropout_drops_the_hashs_elements_and_evaluation_keeps_all),
	    TEST(a_checkpoint_resumes_the_dropout_masks),
	    TEST(the_gradient_vanishes_exactly_where_the_mask_drops),
	    TEST(the_interpreter_agrees_bit_for_bit),
	    TEST(the_random_op_is_not_an_onnx_op),
	};
	make_bn_data();
	make_drop_data();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
