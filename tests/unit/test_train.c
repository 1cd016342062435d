/*
 * test_train.c - `--train` compilation (passes/train.c, docs/training.md "The
 * step graph"): tiny ONNX models packed in memory with the frontend's
 * protobuf-c bindings, compiled with mpcc_compile_buffer and a
 * mpcc_train_options, and run step by step with the trainer API.
 *
 *   parity       a two-layer MLP, one step at a time from the plan's own
 *                state, against a reference written here in double: the
 *                forward pass, the gradients by hand, and each optimizer's
 *                update (SGD, momentum with L2, Adam, AdamW) for softmax
 *                cross entropy, NLL, MSE and the model's own loss node;
 *   convergence  the MLP learns a separable 3-class problem (three seeded
 *                Gaussian blobs) to >= 95% training accuracy in fp32, bf16
 *                and fp16 (dynamic loss scaling by default);
 *   skipping     an inf in the batch skips the step: every state bit for bit
 *                unchanged but the loss scale, halved; it doubles again after
 *                growth_interval finite steps; evaluation moves nothing;
 *   underflow    in fp16 a gradient scaled by 2^-20 vanishes in the f16
 *                backward matrix product without scaling (the weights stay
 *                bit for bit), and survives with dynamic scaling;
 *   errors       bad options and names give one-line MPCC_ERR_INVALID.
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

#include "ir/ir.h"
#include "onnx.pb-c.h"

/* ---------------------------------------------------------------- models */

enum { T_F32 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, T_I64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64 };

#define MAX_INIT 6
#define MAX_NODE 8

typedef struct init_spec {
	const char *name;
	int rank;
	int64_t dims[2];
	const float *data;
} init_spec;

typedef struct node_spec {
	const char *op, *name, *in[3], *out;
} node_spec;

/* x: f32 [batch, features] (declared); with `label`, y: int64 [batch];
 * initializers, nodes in order (inputs NULL-terminated), one output. */
typedef struct model_spec {
	int64_t batch, features;
	bool label;
	init_spec init[MAX_INIT];
	node_spec node[MAX_NODE];
	const char *out;
} model_spec;

/* A declared input: name, elem type, shape. */
typedef struct io_decl {
	Onnx__ValueInfoProto vi;
	Onnx__TypeProto type;
	Onnx__TypeProto__Tensor tensor;
	Onnx__TensorShapeProto shape;
	Onnx__TensorShapeProto__Dimension dim[2], *dim_p[2];
} io_decl;

static void
declare(io_decl *io, const char *name, int elem, int rank, const int64_t *dims)
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
	io->tensor.elem_type = elem;
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

/* The spec as an opset 17 ONNX model (malloc'd, *size bytes). */
static uint8_t *
pack(const model_spec *s, size_t *size)
{
	Onnx__NodeProto node[MAX_NODE], *node_p[MAX_NODE];
	Onnx__TensorProto init[MAX_INIT], *init_p[MAX_INIT];
	io_decl in[2], out;
	Onnx__ValueInfoProto *in_p[2] = {&in[0].vi, &in[1].vi}, *out_p = &out.vi;
	Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
	Onnx__ModelProto pm = ONNX__MODEL_PROTO__INIT;
	Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opset_p = &opset;
	int64_t xd[2] = {s->batch, s->features};

	for (; g.n_node < MAX_NODE && s->node[g.n_node].op; g.n_node++) {
		size_t i = g.n_node;
		Onnx__NodeProto *n = node_p[i] = &node[i];
		onnx__node_proto__init(n);
		n->op_type = (char *)s->node[i].op;
		n->name = (char *)s->node[i].name;
		n->input = (char **)s->node[i].in;
		while (n->n_input < 3 && s->node[i].in[n->n_input])
			n->n_input++;
		n->output = (char **)&s->node[i].out;
		n->n_output = 1;
	}
	for (; g.n_initializer < MAX_INIT && s->init[g.n_initializer].name; g.n_initializer++) {
		const init_spec *is = &s->init[g.n_initializer];
		Onnx__TensorProto *t = init_p[g.n_initializer] = &init[g.n_initializer];
		size_t numel = 1;
		onnx__tensor_proto__init(t);
		t->name = (char *)is->name;
		t->n_dims = (size_t)is->rank;
		t->dims = (int64_t *)is->dims;
		for (int k = 0; k < is->rank; k++)
			numel *= (size_t)is->dims[k];
		t->has_data_type = 1;
		t->data_type = T_F32;
		t->n_float_data = numel;
		t->float_data = (float *)is->data;
	}
	declare(&in[0], "x", T_F32, 2, xd);
	declare(&in[1], "y", T_I64, 1, xd);
	declare(&out, s->out, T_F32, 0, NULL);
	out.vi.type = NULL; /* inferred */
	g.name = "test";
	g.node = node_p;
	g.initializer = init_p;
	g.n_input = s->label ? 2 : 1;
	g.input = in_p;
	g.n_output = 1;
	g.output = &out_p;
	opset.domain = "";
	opset.has_version = 1;
	opset.version = 17;
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

/* Uniform in [-1, 1). */
static double
uniform(uint64_t *s)
{
	return (double)(splitmix(s) >> 11) / (double)(1ull << 53) * 2 - 1;
}

static double
gaussian(uint64_t *s)
{
	double u = (uniform(s) + 1) / 2, v = (uniform(s) + 1) / 2;
	return sqrt(-2 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

static void
fill(float *p, int n, double scale, uint64_t *s)
{
	for (int i = 0; i < n; i++)
		p[i] = (float)(scale * uniform(s));
}

/* ---------------------------------------------------------------- the MLP */

/* logits = relu(x W1 + b1) W2 + b2; a fixed batch for the parity tests. */
#define F 4
#define H 5
#define C 3
#define B 8
#define MAXP (F * H > H * C ? F * H : H * C)

static float W1[F * H], b1[H], W2[H * C], b2[C];
static float xs[B * F], targets[B * C];
static int64_t labels[B];

static const char *const pname[4] = {"W1", "b1", "W2", "b2"};
static const int psize[4] = {F * H, H, H * C, C};

static model_spec
mlp_spec(int64_t batch, int64_t features, int64_t hidden, int64_t classes, const float *w1,
         const float *bb1, const float *w2, const float *bb2, bool own_loss)
{
	model_spec s = {
		.batch = batch,
		.features = features,
		.init = {{"W1", 2, {features, hidden}, w1},
		         {"b1", 1, {hidden}, bb1},
		         {"W2", 2, {hidden, classes}, w2},
		         {"b2", 1, {classes}, bb2}},
		.node = {{"MatMul", "mm1", {"x", "W1"}, "z1a"},
		         {"Add", "add1", {"z1a", "b1"}, "z1"},
		         {"Relu", "relu", {"z1"}, "h"},
		         {"MatMul", "mm2", {"h", "W2"}, "z2a"},
		         {"Add", "add2", {"z2a", "b2"}, "logits"}},
		.out = "logits",
	};
	if (own_loss) {
		s.label = true;
		s.node[5] = (node_spec){"SoftmaxCrossEntropyLoss", "sce", {"logits", "y"}, "loss"};
		s.out = "loss";
	}
	return s;
}

static void
make_parity_data(void)
{
	uint64_t s = 42;
	fill(W1, F * H, 0.8, &s);
	fill(b1, H, 0.2, &s);
	fill(W2, H * C, 0.8, &s);
	fill(b2, C, 0.2, &s);
	fill(xs, B * F, 1.0, &s);
	fill(targets, B * C, 1.0, &s);
	for (int i = 0; i < B; i++)
		labels[i] = (int64_t)(splitmix(&s) % C);
}

/* ---------------------------------------------------------------- reference */

typedef struct params {
	double p[4][MAXP];
} params;

/* The loss and its gradients at p on the parity batch, in double: the
 * forward pass, then backpropagation written out by hand. */
static double
reference_grads(const params *p, bool mse, params *g)
{
	double z1[B][H], h[B][H], z2[B][C], dz2[B][C], dz1[B][H], loss = 0;

	memset(g, 0, sizeof(*g));
	for (int b = 0; b < B; b++) {
		for (int j = 0; j < H; j++) {
			z1[b][j] = p->p[1][j];
			for (int i = 0; i < F; i++)
				z1[b][j] += xs[b * F + i] * p->p[0][i * H + j];
			h[b][j] = z1[b][j] > 0 ? z1[b][j] : 0;
		}
		double mx = -INFINITY, se = 0;
		for (int c = 0; c < C; c++) {
			z2[b][c] = p->p[3][c];
			for (int j = 0; j < H; j++)
				z2[b][c] += h[b][j] * p->p[2][j * C + c];
			mx = fmax(mx, z2[b][c]);
		}
		for (int c = 0; c < C; c++)
			se += exp(z2[b][c] - mx);
		for (int c = 0; c < C; c++) {
			if (mse) {
				double e = z2[b][c] - targets[b * C + c];
				loss += e * e / (B * C);
				dz2[b][c] = 2 * e / (B * C);
			} else {
				double pr = exp(z2[b][c] - mx) / se;
				dz2[b][c] = (pr - (c == labels[b])) / B;
				if (c == labels[b])
					loss -= (z2[b][c] - mx - log(se)) / B;
			}
		}
	}
	for (int b = 0; b < B; b++) {
		for (int c = 0; c < C; c++) {
			g->p[3][c] += dz2[b][c];
			for (int j = 0; j < H; j++)
				g->p[2][j * C + c] += h[b][j] * dz2[b][c];
		}
		for (int j = 0; j < H; j++) {
			double dh = 0;
			for (int c = 0; c < C; c++)
				dh += dz2[b][c] * p->p[2][j * C + c];
			dz1[b][j] = z1[b][j] > 0 ? dh : 0;
			g->p[1][j] += dz1[b][j];
			for (int i = 0; i < F; i++)
				g->p[0][i * H + j] += xs[b * F + i] * dz1[b][j];
		}
	}
	return loss;
}

/* One optimizer step in double, as docs/training.md states it; m and v are
 * the first and second state (momentum: m is the velocity), t the count of
 * applied steps before this one. */
static void
reference_update(const mpcc_train_options *o, double t, double *w, double *m, double *v,
                 const double *g, int n)
{
	for (int i = 0; i < n; i++) {
		double gi = g[i];
		if (o->optimizer != MPCC_OPTIMIZER_ADAMW)
			gi += o->weight_decay * w[i];
		switch (o->optimizer) {
		case MPCC_OPTIMIZER_SGD:
			w[i] -= o->lr * gi;
			break;
		case MPCC_OPTIMIZER_MOMENTUM:
			m[i] = o->momentum * m[i] + gi;
			w[i] -= o->lr * m[i];
			break;
		default:
			m[i] = o->beta1 * m[i] + (1 - o->beta1) * gi;
			v[i] = o->beta2 * v[i] + (1 - o->beta2) * gi * gi;
			double upd = o->lr / (1 - pow(o->beta1, t + 1)) * m[i] /
			             (sqrt(v[i] / (1 - pow(o->beta2, t + 1))) + o->eps);
			if (o->optimizer == MPCC_OPTIMIZER_ADAMW)
				w[i] *= 1 - o->lr * o->weight_decay;
			w[i] -= upd;
		}
	}
}

/* ---------------------------------------------------------------- compiling and running */

typedef struct fx {
	mpcc_context *cx;
	mpcc_plan *plan;
	mpcc_trainer *tr;
} fx;

/* Compiles s with o at precision p through the public API; on success the
 * plan is loaded and a CPU trainer made. */
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

/* The state tensor of that name, or NULL. */
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

static int64_t
state_i64(fx *f, const char *name)
{
	const mpcc_tensor *t = state(f, name);
	if (!t)
		fail_msg("no state '%s'", name);
	assert_int_equal(t->dtype, MPCC_DTYPE_I64);
	assert_int_equal(t->nbytes, sizeof(int64_t));
	return *(const int64_t *)t->data;
}

/* One step (or evaluation) on x (rows x features) and the label "y":
 * int64 classes, or float targets of the logits' shape. */
static mpcc_status
run(fx *f, const float *x, int64_t rows, int64_t features, const int64_t *cls,
    const float *tgt, int64_t classes, bool eval, mpcc_train_result *r)
{
	mpcc_tensor in[2] = {
		{.name = "x", .dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {rows, features},
		 .data = (void *)x, .nbytes = sizeof(float) * (size_t)(rows * features)},
		{.name = "y"},
	};
	if (cls)
		in[1] = (mpcc_tensor){.name = "y", .dtype = MPCC_DTYPE_I64, .rank = 1, .dims = {rows},
		                      .data = (void *)cls, .nbytes = sizeof(int64_t) * (size_t)rows};
	else
		in[1] = (mpcc_tensor){.name = "y", .dtype = MPCC_DTYPE_F32, .rank = 2,
		                      .dims = {rows, classes}, .data = (void *)tgt,
		                      .nbytes = sizeof(float) * (size_t)(rows * classes)};
	return eval ? mpcc_trainer_eval(f->tr, in, 2, r) : mpcc_trainer_step(f->tr, in, 2, r);
}

/* |got - want| within rtol of the larger of |want| and mag, the size of
 * what it was computed from (a weight near zero after its update cancelled
 * it carries the rounding of the weight before). */
static void
near(const char *what, int i, double got, double want, double mag, double rtol)
{
	if (!(fabs(got - want) <= rtol * fmax(fabs(want), mag) + 1e-9))
		fail_msg("%s[%d] = %.9g, reference %.9g (mag %g)", what, i, got, want, mag);
}

/* ---------------------------------------------------------------- parity */

typedef struct parity_case {
	mpcc_optimizer opt;
	mpcc_loss loss;
	double lr, weight_decay;
} parity_case;

/*
 * Why each step starts from the plan's own state: the reference then checks
 * one step exactly (f32 against double rounding only), whatever rounding the
 * steps before it accumulated, so two steps also cover the optimizer state
 * (momentum, Adam's m, v and step count) that the first step wrote.
 */
static void
parity(fx *f, const parity_case *pc)
{
	mpcc_train_options o;
	mpcc_train_result r;
	bool mse = pc->loss == MPCC_LOSS_MSE, adam = pc->opt >= MPCC_OPTIMIZER_ADAM;
	bool own = pc->loss == MPCC_LOSS_MODEL;
	model_spec s = mlp_spec(B, F, H, C, W1, b1, W2, b2, own);

	mpcc_train_options_init(&o);
	o.loss = pc->loss;
	o.optimizer = pc->opt;
	o.lr = pc->lr;
	o.weight_decay = pc->weight_decay;
	o.label = own ? NULL : "y";
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	assert_int_equal(mpcc_trainer_n_state(f->tr),
	                 4 * (pc->opt == MPCC_OPTIMIZER_SGD ? 1 : adam ? 3 : 2) + adam);
	assert_int_equal(mpcc_trainer_n_inputs(f->tr), 2);
	assert_string_equal(mpcc_trainer_label(f->tr)->name, "y");
	assert_memory_equal(state_f32(f, "W2"), W2, sizeof(W2)); /* the initializer's value */
	for (int step = 0; step < 2; step++) {
		params p, m = {{{0}}}, v = {{{0}}}, g;
		char name[64];
		double t = adam ? (double)state_i64(f, "opt/step") : 0;
		for (int k = 0; k < 4; k++)
			for (int i = 0; i < psize[k]; i++) {
				p.p[k][i] = state_f32(f, pname[k])[i];
				if (pc->opt == MPCC_OPTIMIZER_MOMENTUM) {
					snprintf(name, sizeof name, "opt/%s/velocity", pname[k]);
					m.p[k][i] = state_f32(f, name)[i];
				} else if (adam) {
					snprintf(name, sizeof name, "opt/%s/m", pname[k]);
					m.p[k][i] = state_f32(f, name)[i];
					snprintf(name, sizeof name, "opt/%s/v", pname[k]);
					v.p[k][i] = state_f32(f, name)[i];
				}
			}
		params before = p;
		double loss = reference_grads(&p, mse, &g);
		for (int k = 0; k < 4; k++)
			reference_update(&o, t, p.p[k], m.p[k], v.p[k], g.p[k], psize[k]);
		assert_int_equal(run(f, xs, B, F, mse ? NULL : labels, targets, C, false, &r), MPCC_OK);
		assert_false(r.skipped);
		assert_true(r.loss_scale == 1.0);
		near("loss", step, r.loss, loss, 0, 1e-5);
		for (int k = 0; k < 4; k++)
			for (int i = 0; i < psize[k]; i++) {
				near(pname[k], i, state_f32(f, pname[k])[i], p.p[k][i],
				     fabs(before.p[k][i]), 1e-5);
				if (pc->opt == MPCC_OPTIMIZER_MOMENTUM) {
					snprintf(name, sizeof name, "opt/%s/velocity", pname[k]);
					near(name, i, state_f32(f, name)[i], m.p[k][i], 0, 1e-5);
				} else if (adam) {
					snprintf(name, sizeof name, "opt/%s/m", pname[k]);
					near(name, i, state_f32(f, name)[i], m.p[k][i], 0, 1e-5);
					snprintf(name, sizeof name, "opt/%s/v", pname[k]);
					near(name, i, state_f32(f, name)[i], v.p[k][i], 0, 1e-5);
				}
			}
		if (adam)
			assert_true(state_i64(f, "opt/step") == t + 1);
	}
}

static void
one_sgd_step_matches_the_reference(void **st)
{
	parity(*st, &(parity_case){MPCC_OPTIMIZER_SGD, MPCC_LOSS_SOFTMAX_CROSS_ENTROPY, 0.5, 0});
}

static void
one_adam_step_matches_the_reference(void **st)
{
	parity(*st, &(parity_case){MPCC_OPTIMIZER_ADAM, MPCC_LOSS_SOFTMAX_CROSS_ENTROPY, 0.01, 0});
}

static void
momentum_and_adamw_with_weight_decay_match_the_reference(void **st)
{
	parity(*st, &(parity_case){MPCC_OPTIMIZER_MOMENTUM, MPCC_LOSS_SOFTMAX_CROSS_ENTROPY, 0.1, 0.01});
	parity(*st, &(parity_case){MPCC_OPTIMIZER_ADAMW, MPCC_LOSS_SOFTMAX_CROSS_ENTROPY, 0.01, 0.1});
	parity(*st, &(parity_case){MPCC_OPTIMIZER_ADAM, MPCC_LOSS_SOFTMAX_CROSS_ENTROPY, 0.01, 0.1});
}

/* NLL over LogSoftmax and the model's own loss node are cross entropy too;
 * MSE reads float targets of the logits' shape. */
static void
every_loss_matches_the_reference(void **st)
{
	parity(*st, &(parity_case){MPCC_OPTIMIZER_SGD, MPCC_LOSS_NLL, 0.5, 0});
	parity(*st, &(parity_case){MPCC_OPTIMIZER_SGD, MPCC_LOSS_MODEL, 0.5, 0});
	parity(*st, &(parity_case){MPCC_OPTIMIZER_SGD, MPCC_LOSS_MSE, 0.5, 0});
}

/* The plan's interface: trainer inputs x and the label; outputs loss,
 * logits, the loss scale this step used, ok, then every next state. */
static void
the_step_plan_has_the_documented_interface(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	model_spec s = mlp_spec(B, F, H, C, W1, b1, W2, b2, false);
	static const char *const outs[] = {
	    "train/loss", "logits", "train/loss_scale", "train/ok", "W1.next", "opt/W1/m.next",
	    "opt/W1/v.next", "b1.next"};
	static const char *const last[] = {"opt/step.next", "train/loss_scale.next",
	                                   "train/good_steps.next"};

	mpcc_train_options_init(&o);
	o.optimizer = MPCC_OPTIMIZER_ADAM;
	o.label = "y";
	o.loss_scaling = MPCC_LOSS_SCALING_DYNAMIC;
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	int n = mpcc_plan_n_outputs(f->plan);
	assert_int_equal(n, 4 + 4 * 3 + 3);
	for (int i = 0; i < 8; i++)
		assert_string_equal(mpcc_plan_output(f->plan, i)->name, outs[i]);
	for (int i = 0; i < 3; i++)
		assert_string_equal(mpcc_plan_output(f->plan, n - 3 + i)->name, last[i]);
	assert_int_equal(mpcc_plan_output(f->plan, 0)->rank, 0);
	assert_int_equal(mpcc_trainer_n_inputs(f->tr), 2);
	assert_string_equal(mpcc_trainer_input(f->tr, 0)->name, "x");
	const mpcc_tensor *y = mpcc_trainer_label(f->tr);
	assert_int_equal(y->dtype, MPCC_DTYPE_I64);
	assert_int_equal(y->rank, 1);
	assert_int_equal(y->dims[0], B);
	assert_float_equal(state_f32(f, "train/loss_scale")[0], 65536, 0);
	assert_float_equal(state_f32(f, "train/good_steps")[0], 0, 0);
	assert_string_equal(mpcc_trainer_recipe(f->tr),
	                    "adam lr=0.01 beta1=0.9 beta2=0.999 eps=1e-08, softmax_cross_entropy, "
	                    "dynamic loss scale 65536 (x2 after 2000 finite steps, x0.5 on "
	                    "overflow); 4 weights trained, 0 frozen");
}

/* A frozen initializer stays a constant (no state), an unused one too. */
static void
frozen_and_unreached_initializers_stay_constant(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	static const float unused[2] = {1, 2};
	model_spec s = mlp_spec(B, F, H, C, W1, b1, W2, b2, false);
	s.init[4] = (init_spec){"unused", 1, {2}, unused};

	mpcc_train_options_init(&o);
	o.label = "y";
	o.frozen_weights = (const char *const[]){"W1", "b1"};
	o.n_frozen_weights = 2;
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	assert_int_equal(mpcc_trainer_n_state(f->tr), 2);
	assert_null(state(f, "W1"));
	assert_null(state(f, "unused"));
	assert_non_null(strstr(mpcc_trainer_recipe(f->tr), "2 weights trained, 2 frozen"));
	assert_int_equal(run(f, xs, B, F, labels, NULL, C, false, &r), MPCC_OK);
	assert_false(r.skipped);
	assert_true(memcmp(state_f32(f, "W2"), W2, sizeof(W2)) != 0);
}

/* --logits may name any float value: here one no model output needs (the
 * model's output is the first layer), whose nodes come back to life; the
 * model's own output is no output of the step. */
static void
logits_may_name_a_value_no_output_needs(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	model_spec s = mlp_spec(B, F, H, C, W1, b1, W2, b2, false);
	s.out = "h";

	mpcc_train_options_init(&o);
	o.label = "y";
	o.logits = "logits";
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	assert_int_equal(mpcc_trainer_n_state(f->tr), 4);
	for (int i = 0; i < mpcc_plan_n_outputs(f->plan); i++)
		assert_string_not_equal(mpcc_plan_output(f->plan, i)->name, "h");
	assert_int_equal(run(f, xs, B, F, labels, NULL, C, false, &r), MPCC_OK);
	assert_string_equal(r.logits.name, "logits");
	assert_int_equal(r.logits.dims[1], C);
	params p, g;
	for (int k = 0; k < 4; k++)
		for (int i = 0; i < psize[k]; i++)
			p.p[k][i] = k == 0 ? W1[i] : k == 1 ? b1[i] : k == 2 ? W2[i] : b2[i];
	near("loss", 0, r.loss, reference_grads(&p, false, &g), 0, 1e-5);
}

/* Auto mode decides the forward pass from calibrated builds of the
 * inference model; with f16 matrix ops the default scaling is dynamic. */
static void
auto_precision_trains_with_dynamic_scaling_by_default(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	model_spec s = mlp_spec(B, F, H, C, W1, b1, W2, b2, false);

	mpcc_train_options_init(&o);
	o.label = "y";
	compile(f, &s, MPCC_PRECISION_AUTO, &o);
	assert_non_null(strstr(mpcc_trainer_recipe(f->tr), "dynamic loss scale 65536"));
	assert_int_equal(run(f, xs, B, F, labels, NULL, C, false, &r), MPCC_OK);
	assert_true(isfinite(r.loss));
	assert_true(r.loss_scale == 65536);
}

/* ---------------------------------------------------------------- convergence */

#define CN 240 /* samples */
#define CB 24  /* batch */
#define CF 2
#define CH 16
#define CC 3

static float cx_data[CN * CF];
static int64_t cy_data[CN];
static float cw1[CF * CH], cb1[CH], cw2[CH * CC], cb2[CC];

/* Three Gaussian blobs (sd 0.6) at radius 3, 120 degrees apart: separable
 * with a wide margin, not linearly in one coordinate. */
static void
make_blobs(void)
{
	uint64_t s = 7;
	for (int i = 0; i < CN; i++) {
		int c = i % CC;
		double a = 2 * M_PI * c / CC;
		cx_data[i * CF] = (float)(3 * cos(a) + 0.6 * gaussian(&s));
		cx_data[i * CF + 1] = (float)(3 * sin(a) + 0.6 * gaussian(&s));
		cy_data[i] = c;
	}
	fill(cw1, CF * CH, 0.7, &s);
	fill(cb1, CH, 0.1, &s);
	fill(cw2, CH * CC, 0.5, &s);
	fill(cb2, CC, 0.1, &s);
}

/* Training accuracy after `epochs` passes, from evaluation runs. */
static double
train_and_measure(fx *f, int epochs, mpcc_train_counts *counts)
{
	mpcc_train_result r;
	int right = 0;

	for (int e = 0; e < epochs; e++)
		for (int b0 = 0; b0 < CN; b0 += CB) {
			assert_int_equal(run(f, cx_data + b0 * CF, CB, CF, cy_data + b0, NULL, CC, false, &r),
			                 MPCC_OK);
			assert_true(isfinite(r.loss) || r.skipped);
		}
	for (int b0 = 0; b0 < CN; b0 += CB) {
		assert_int_equal(run(f, cx_data + b0 * CF, CB, CF, cy_data + b0, NULL, CC, true, &r),
		                 MPCC_OK);
		assert_int_equal(r.logits.rank, 2);
		for (int i = 0; i < CB; i++) {
			double best = -INFINITY;
			int arg = 0;
			for (int c = 0; c < CC; c++) {
				double v = r.logits.dtype == MPCC_DTYPE_F32
				               ? ((const float *)r.logits.data)[i * CC + c]
				           : r.logits.dtype == MPCC_DTYPE_F16
				               ? mpcc_f16_to_f32(((const uint16_t *)r.logits.data)[i * CC + c])
				               : mpcc_bf16_to_f32(((const uint16_t *)r.logits.data)[i * CC + c]);
				if (v > best) {
					best = v;
					arg = c;
				}
			}
			right += arg == cy_data[b0 + i];
		}
	}
	mpcc_trainer_counts(f->tr, counts);
	return (double)right / CN;
}

static void
an_mlp_learns_three_blobs_in_every_precision(void **st)
{
	fx *f = *st;
	const mpcc_precision modes[] = {MPCC_PRECISION_FP32, MPCC_PRECISION_BF16, MPCC_PRECISION_FP16};
	const char *const scaling[] = {"no loss scaling", "no loss scaling", "dynamic loss scale"};
	model_spec s = mlp_spec(CB, CF, CH, CC, cw1, cb1, cw2, cb2, false);
	mpcc_train_options o;

	mpcc_train_options_init(&o);
	o.optimizer = MPCC_OPTIMIZER_ADAM;
	o.lr = 0.02;
	o.label = "y";
	for (int k = 0; k < 3; k++) {
		mpcc_train_counts c;
		compile(f, &s, modes[k], &o);
		assert_non_null(strstr(mpcc_trainer_recipe(f->tr), scaling[k]));
		double acc = train_and_measure(f, 15, &c);
		if (acc < 0.95)
			fail_msg("%s: training accuracy %.3f after %llu steps (%llu skipped)",
			         k == 0 ? "fp32" : k == 1 ? "bf16" : "fp16", acc,
			         (unsigned long long)c.steps, (unsigned long long)c.skipped);
		/* dynamic scaling may skip a few first steps while it backs off */
		assert_true(c.skipped <= (k == 2 ? 8u : 0u));
	}
}

/* ---------------------------------------------------------------- skipping */

static void
copy_state(fx *f, uint8_t *buf, size_t cap)
{
	size_t at = 0;
	for (int i = 0; i < mpcc_trainer_n_state(f->tr); i++) {
		const mpcc_tensor *t;
		assert_int_equal(mpcc_trainer_state(f->tr, i, &t), MPCC_OK);
		assert_true(at + t->nbytes <= cap);
		memcpy(buf + at, t->data, t->nbytes);
		at += t->nbytes;
	}
}

/* Every state but the scaler's is bit for bit as in buf. */
static void
state_unchanged(fx *f, const uint8_t *buf)
{
	size_t at = 0;
	for (int i = 0; i < mpcc_trainer_n_state(f->tr); i++) {
		const mpcc_tensor *t;
		assert_int_equal(mpcc_trainer_state(f->tr, i, &t), MPCC_OK);
		if (strncmp(t->name, "train/", 6) && memcmp(buf + at, t->data, t->nbytes))
			fail_msg("state '%s' changed", t->name);
		at += t->nbytes;
	}
}

static void
an_inf_skips_the_step_and_the_scale_regrows(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	static uint8_t before[1 << 14];
	float bad[B * F];
	model_spec s = mlp_spec(B, F, H, C, W1, b1, W2, b2, false);

	mpcc_train_options_init(&o);
	o.optimizer = MPCC_OPTIMIZER_ADAM;
	o.label = "y";
	o.loss_scaling = MPCC_LOSS_SCALING_DYNAMIC;
	o.loss_scale = 1024;
	o.growth_interval = 3;
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	memcpy(bad, xs, sizeof bad);
	bad[5] = INFINITY;

	assert_int_equal(run(f, xs, B, F, labels, NULL, C, false, &r), MPCC_OK);
	assert_false(r.skipped);
	assert_true(r.loss_scale == 1024);
	assert_float_equal(state_f32(f, "train/good_steps")[0], 1, 0);
	copy_state(f, before, sizeof before);
	assert_int_equal(run(f, bad, B, F, labels, NULL, C, false, &r), MPCC_OK);
	assert_true(r.skipped);
	assert_true(r.loss_scale == 1024); /* the scale this step used */
	state_unchanged(f, before);
	assert_float_equal(state_f32(f, "train/loss_scale")[0], 512, 0);
	assert_float_equal(state_f32(f, "train/good_steps")[0], 0, 0);
	/* evaluation moves nothing, the scaler included, even on a bad batch */
	assert_int_equal(run(f, bad, B, F, labels, NULL, C, true, &r), MPCC_OK);
	assert_int_equal(run(f, xs, B, F, labels, NULL, C, true, &r), MPCC_OK);
	state_unchanged(f, before);
	assert_float_equal(state_f32(f, "train/loss_scale")[0], 512, 0);
	/* three finite steps at 512, then it doubles */
	for (int k = 1; k <= 3; k++) {
		assert_int_equal(run(f, xs, B, F, labels, NULL, C, false, &r), MPCC_OK);
		assert_false(r.skipped);
		assert_true(r.loss_scale == 512);
		assert_float_equal(state_f32(f, "train/good_steps")[0], (double)(k % 3), 0);
	}
	assert_int_equal(state_i64(f, "opt/step"), 4);
	assert_int_equal(run(f, xs, B, F, labels, NULL, C, false, &r), MPCC_OK);
	assert_true(r.loss_scale == 1024);
	mpcc_train_counts c;
	mpcc_trainer_counts(f->tr, &c);
	assert_int_equal(c.steps, 6);
	assert_int_equal(c.skipped, 1);
}

/* ---------------------------------------------------------------- underflow */

#define UB 64
#define UF 4

static void
f16_gradients_underflow_without_loss_scaling(void **st)
{
	fx *f = *st;
	static float ux[UB * UF], uw[UF * C];
	static int64_t uy[UB];
	static const float k = 0x1p-20f;
	mpcc_train_options o;
	mpcc_train_result r;
	uint64_t s = 99;
	model_spec m = {
		.batch = UB,
		.features = UF,
		.init = {{"W", 2, {UF, C}, uw}, {"k", 0, {0}, &k}},
		.node = {{"MatMul", "mm", {"x", "W"}, "z"}, {"Mul", "tiny", {"z", "k"}, "logits"}},
		.out = "logits",
	};

	fill(ux, UB * UF, 1.0, &s);
	fill(uw, UF * C, 0.5, &s);
	for (int i = 0; i < UB; i++)
		uy[i] = (int64_t)(splitmix(&s) % C);
	mpcc_train_options_init(&o);
	o.optimizer = MPCC_OPTIMIZER_ADAM;
	o.label = "y";
	o.frozen_weights = (const char *const[]){"k"};
	o.n_frozen_weights = 1;
	o.loss_scaling = MPCC_LOSS_SCALING_OFF;
	compile(f, &m, MPCC_PRECISION_FP16, &o);
	for (int step = 0; step < 2; step++) {
		assert_int_equal(run(f, ux, UB, UF, uy, NULL, C, false, &r), MPCC_OK);
		assert_false(r.skipped); /* zeros are finite: applied, and nothing moves */
		assert_true(isfinite(r.loss));
	}
	assert_memory_equal(state_f32(f, "W"), uw, sizeof uw);

	/* the same with dynamic scaling: 2^16 lifts the f16 gradients into range */
	o.loss_scaling = MPCC_LOSS_SCALING_DYNAMIC;
	compile(f, &m, MPCC_PRECISION_FP16, &o);
	for (int step = 0; step < 2; step++)
		assert_int_equal(run(f, ux, UB, UF, uy, NULL, C, false, &r), MPCC_OK);
	mpcc_train_counts c;
	mpcc_trainer_counts(f->tr, &c);
	assert_int_equal(c.skipped, 0);
	const float *w = state_f32(f, "W");
	int moved = 0;
	for (int i = 0; i < UF * C; i++)
		moved += fabs((double)w[i] - uw[i]) > 0.5 * o.lr; /* Adam: about lr a step */
	assert_true(moved >= UF * C / 2);
}

/* ---------------------------------------------------------------- collapse guard */

/*
 * logits = (x W) * 1e38 in fp16, x in [1, 2) and W in [0.5, 1.5): every
 * logit is at least 2e38, beyond f32 (and f16) range, so every step's loss
 * and gradients are non-finite and every step is skipped. With the default
 * dynamic scaling (2^16, halved per skip) the scale used by step 18 is 0.5,
 * below the default floor 1: the guard stops there, naming the overflow.
 * With scaling off, only the count of skips in a row can trip it.
 */
static void
the_collapse_guard_stops_training_and_names_the_overflow(void **st)
{
	fx *f = *st;
	static float gx[UB * UF], gw[UF * C];
	static int64_t gy[UB];
	static const float k = 1e38f;
	mpcc_train_options o;
	mpcc_train_result r;
	mpcc_train_counts c;
	uint64_t s = 7;
	model_spec m = {
		.batch = UB,
		.features = UF,
		.init = {{"W", 2, {UF, C}, gw}, {"k", 0, {0}, &k}},
		.node = {{"MatMul", "mm", {"x", "W"}, "z"}, {"Mul", "blowup", {"z", "k"}, "logits"}},
		.out = "logits",
	};

	for (int i = 0; i < UB * UF; i++)
		gx[i] = (float)(1.5 + 0.5 * uniform(&s));
	for (int i = 0; i < UF * C; i++)
		gw[i] = (float)(1 + 0.5 * uniform(&s));
	for (int i = 0; i < UB; i++)
		gy[i] = (int64_t)(splitmix(&s) % C);
	mpcc_train_options_init(&o);
	o.label = "y";
	o.frozen_weights = (const char *const[]){"k"};
	o.n_frozen_weights = 1;
	compile(f, &m, MPCC_PRECISION_FP16, &o);
	int step = 0;
	mpcc_status rs;
	while ((rs = run(f, gx, UB, UF, gy, NULL, C, false, &r)) == MPCC_OK && step < 40) {
		assert_true(r.skipped);
		step++;
	}
	assert_int_equal(rs, MPCC_ERR_DIVERGED);
	assert_int_equal(step + 1, 18); /* 2^16 * 2^-17 = 0.5 < 1 */
	assert_true(r.skipped);
	assert_true(r.loss_scale == 0.5);
	mpcc_trainer_counts(f->tr, &c);
	assert_int_equal(c.consecutive_skips, 18);
	assert_memory_equal(state_f32(f, "W"), gw, sizeof gw);
	const char *msg = mpcc_context_last_error(f->cx);
	if (!strstr(msg, "training stopped at step 18: the loss scale fell to 0.5 (floor 1)") ||
	    !strstr(msg, "the first non-finite value is 'logits', inf at element 0 of f32 [64,3], "
	                 "computed by node 'blowup' (Mul)") || strchr(msg, '\n'))
		fail_msg("guard message: %s", msg);

	/* scaling off: three skips in a row trip a limit of three */
	o.loss_scaling = MPCC_LOSS_SCALING_OFF;
	compile(f, &m, MPCC_PRECISION_FP16, &o);
	mpcc_trainer_set_guard(f->tr, 1, 3);
	assert_int_equal(run(f, gx, UB, UF, gy, NULL, C, false, &r), MPCC_OK);
	assert_int_equal(run(f, gx, UB, UF, gy, NULL, C, false, &r), MPCC_OK);
	assert_int_equal(run(f, gx, UB, UF, gy, NULL, C, false, &r), MPCC_ERR_DIVERGED);
	msg = mpcc_context_last_error(f->cx);
	if (!strstr(msg, "training stopped at step 3: 3 steps in a row skipped") ||
	    !strstr(msg, "computed by node 'blowup' (Mul)"))
		fail_msg("guard message: %s", msg);
	/* off: it never trips */
	mpcc_trainer_set_guard(f->tr, 0, 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(run(f, gx, UB, UF, gy, NULL, C, false, &r), MPCC_OK);

	/* a NaN in the data is named as such, before any kernel */
	mpcc_trainer_set_guard(f->tr, 0, 1);
	gx[5] = NAN;
	assert_int_equal(run(f, gx, UB, UF, gy, NULL, C, false, &r), MPCC_ERR_DIVERGED);
	msg = mpcc_context_last_error(f->cx);
	if (!strstr(msg, "input 'x' holds NaN at element 5 of f32 [64,4]"))
		fail_msg("guard message: %s", msg);
}

/* ---------------------------------------------------------------- errors */

/* Compiling with o fails with MPCC_ERR_INVALID and one line containing want. */
static void
refused(fx *f, const model_spec *s, const mpcc_train_options *o, const char *want)
{
	assert_int_equal(try_compile(f, s, MPCC_PRECISION_FP32, o), MPCC_ERR_INVALID);
	assert_null(f->plan);
	const char *msg = mpcc_context_last_error(f->cx);
	if (!strstr(msg, want) || strchr(msg, '\n'))
		fail_msg("message \"%s\", wanted one line with \"%s\"", msg, want);
}

static void
bad_options_and_names_are_one_line_errors(void **st)
{
	fx *f = *st;
	model_spec s = mlp_spec(B, F, H, C, W1, b1, W2, b2, false);
	model_spec own = mlp_spec(B, F, H, C, W1, b1, W2, b2, true);
	mpcc_train_options o;

	mpcc_train_options_init(&o);
	o.label = "h";
	refused(f, &s, &o, "--label: 'h' names a value of the model that is not a graph input");
	o.label = "labels";
	o.loss = MPCC_LOSS_MODEL;
	refused(f, &own, &o, "--label: 'labels' is not the label of the model's loss 'sce', which "
	                     "reads 'y'");
	o.loss = MPCC_LOSS_MODEL;
	o.label = NULL;
	refused(f, &s, &o, "--loss model: no SoftmaxCrossEntropyLoss or NegativeLogLikelihoodLoss");

	mpcc_train_options_init(&o);
	o.label = "y";
	o.frozen_weights = (const char *const[]){"W2", "z1"};
	o.n_frozen_weights = 2;
	refused(f, &s, &o, "--freeze-weights: 'z1' names no initializer of the model");
	o.frozen_weights = (const char *const[]){"W1", "b1", "W2", "b2"};
	o.n_frozen_weights = 4;
	refused(f, &s, &o, "nothing to train");

	mpcc_train_options_init(&o);
	o.label = "y";
	o.logits = "nope";
	refused(f, &s, &o, "--logits: 'nope' names no float value of the model");

	mpcc_train_options_init(&o);
	o.label = "y";
	o.loss_scaling = MPCC_LOSS_SCALING_STATIC;
	o.loss_scale = 0;
	refused(f, &s, &o, "--loss-scale: a static loss scale must be > 0, got 0");
	o.loss_scale = -4;
	refused(f, &s, &o, "--loss-scale: a static loss scale must be > 0, got -4");

	mpcc_train_options_init(&o);
	o.label = "y";
	o.lr = 0;
	refused(f, &s, &o, "--lr: the learning rate must be > 0, got 0");
	o.lr = -0.1;
	refused(f, &s, &o, "--lr: the learning rate must be > 0, got -0.1");
	o.lr = NAN;
	refused(f, &s, &o, "--lr: the learning rate must be > 0");

	mpcc_train_options_init(&o);
	o.label = "y";
	o.optimizer = MPCC_OPTIMIZER_MOMENTUM;
	o.momentum = 1;
	refused(f, &s, &o, "--momentum must be in [0, 1), got 1");
	mpcc_train_options_init(&o);
	o.label = "y";
	o.growth_interval = 0;
	refused(f, &s, &o, "the growth interval must be in [1, 2^24], got 0");

	/* an op without a gradient rule between a weight and the loss */
	s.node[2] = (node_spec){"Tan", "tan", {"z1"}, "h"};
	mpcc_train_options_init(&o);
	o.label = "y";
	assert_int_equal(try_compile(f, &s, MPCC_PRECISION_FP32, &o), MPCC_ERR_UNSUPPORTED);
	const char *msg = mpcc_context_last_error(f->cx);
	assert_non_null(strstr(msg, "node 'tan' (Tan, opset 17): no gradient rule for Tan"));
	assert_non_null(strstr(msg, "can be kept constant with --freeze-weights"));
	/* freezing what lies before it trains the rest */
	o.frozen_weights = (const char *const[]){"W1", "b1"};
	o.n_frozen_weights = 2;
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	assert_int_equal(mpcc_trainer_n_state(f->tr), 2);
}

/* A static scale seeds the backward pass and divides it out again: the same
 * step as without scaling (a power of two divides exactly). */
static void
a_static_loss_scale_gives_the_unscaled_step(void **st)
{
	fx *f = *st;
	mpcc_train_options o;
	mpcc_train_result r;
	float w_off[H * C];
	model_spec s = mlp_spec(B, F, H, C, W1, b1, W2, b2, false);

	mpcc_train_options_init(&o);
	o.label = "y";
	o.lr = 0.5;
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	assert_int_equal(run(f, xs, B, F, labels, NULL, C, false, &r), MPCC_OK);
	memcpy(w_off, state_f32(f, "W2"), sizeof w_off);
	o.loss_scaling = MPCC_LOSS_SCALING_STATIC;
	o.loss_scale = 256;
	compile(f, &s, MPCC_PRECISION_FP32, &o);
	assert_int_equal(mpcc_trainer_n_state(f->tr), 4);
	assert_int_equal(run(f, xs, B, F, labels, NULL, C, false, &r), MPCC_OK);
	assert_true(r.loss_scale == 256);
	assert_memory_equal(state_f32(f, "W2"), w_off, sizeof w_off);
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
	free(f);
	return 0;
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(one_sgd_step_matches_the_reference),
		TEST(one_adam_step_matches_the_reference),
		TEST(momentum_and_adamw_with_weight_decay_match_the_reference),
		TEST(every_loss_matches_the_reference),
		TEST(the_step_plan_has_the_documented_interface),
		TEST(frozen_and_unreached_initializers_stay_constant),
		TEST(a_static_loss_scale_gives_the_unscaled_step),
		TEST(logits_may_name_a_value_no_output_needs),
		TEST(auto_precision_trains_with_dynamic_scaling_by_default),
		TEST(an_mlp_learns_three_blobs_in_every_precision),
		TEST(an_inf_skips_the_step_and_the_scale_regrows),
		TEST(f16_gradients_underflow_without_loss_scaling),
		TEST(the_collapse_guard_stops_training_and_names_the_overflow),
		TEST(bad_options_and_names_are_one_line_errors),
	};
	make_parity_data();
	make_blobs();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
