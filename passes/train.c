/*
 * train.c - `--train`: the inference graph becomes the training step graph
 * (docs/training.md, "The step graph").
 *
 * The rewrite runs once, after the first inference, folding and dead-code
 * elimination, and appends ordinary ONNX nodes, so everything after it
 * (inference, folding, precision, casts, lowering, fusion, both backends)
 * treats the step like any graph. In order:
 *
 *   loss      the label input and the loss (or the model's own loss);
 *   modes     BatchNormalization and Dropout switch to their training
 *             behaviour on the input train/apply (passes/train_modes.c);
 *   weights   every f32 initializer not frozen becomes a graph input of its
 *             own name (its data the state's initial value); nodes the first
 *             fold evaluated from it are made live again;
 *   backward  mpcc_autodiff(loss, seed = loss scale) for every weight; a
 *             weight without a gradient goes back to being a constant;
 *   finite    u = g / scale, ok = apply and not IsNaN(sum ReduceSum(u * 0));
 *   update    the optimizer as elementwise chains, each next state
 *             Where(ok, new, old), so a skipped step changes nothing;
 *   scaler    the loss scale and its count of finite steps in a row;
 *   outputs   loss, logits, loss scale, ok, every next state, and g->train.
 *
 * Every new node computes in f32 as built; the precision pass decides as
 * usual afterwards. Where a gradient may arrive stored in f16/bf16 it is
 * widened by an explicit Cast before anything else reads it, so the
 * unscaling, the finite check and the update chains read f32 whatever the
 * policy makes of the backward pass. New nodes are named "train/..." (the
 * optimizer's "opt/<weight>/..."), each after its output value, and are
 * shape-inferred as they are built, through a builder whose status is sticky
 * (as autodiff's), so the body reads as straight-line algebra.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/autodiff.h"
#include "passes/train.h"

#define TRAIN_OPSET 18   /* reductions take their axes as an input */
#define ONNX_FLOAT 1     /* TensorProto.FLOAT, Cast's `to` */
#define ONNX_DOUBLE 11   /* TensorProto.DOUBLE */
#define SCALE_LIMIT 16777216.0 /* 2^24: a dynamic scale stays in [2^-24, 2^24] */
#define N_NAMES 8        /* name buffers in flight in one expression */

/* One trained weight. */
typedef struct weight {
	int32_t v;     /* the initializer, then the state input of its name */
	void *data;    /* its initial data, detached from the value (malloc'd) */
	size_t nbytes;
	int32_t grad;  /* from autodiff; MPCC_NONE: it does not reach the loss */
	int32_t u;     /* the unscaled f32 gradient */
} weight;

/* A state pair for g->train; init is malloc'd and freed at the end. */
typedef struct state {
	int32_t in, out;
	void *init;
	size_t nbytes;
	mpcc_dtype dtype; /* of in, out and init */
} state;

/* The optimizer's constants, made once and shared by every weight. */
enum { K_ZERO, K_LR, K_MOMENTUM, K_BETA1, K_BETA2, K_1_MINUS_BETA1, K_1_MINUS_BETA2,
       K_EPS, K_WD, K_KEEP, K_COUNT };

typedef struct tb {
	mpcc_graph *g;
	mpcc_diag *d;
	const mpcc_train_options *o;
	mpcc_status st; /* sticky: the first failure of any step */
	weight *w;
	int n_w;
	state *s;
	int n_s, cap_s;
	int n_frozen;   /* initializers kept constant by --freeze-weights */
	bool widen;     /* gradients may be stored low: Cast them to f32 */
	int32_t k[K_COUNT]; /* the shared constants, MPCC_NONE until made */
	char names[N_NAMES][512];
	int next_name;
} tb;

/* ---------------------------------------------------------------- options */

static const char *
loss_name(mpcc_loss l)
{
	switch (l) {
	case MPCC_LOSS_SOFTMAX_CROSS_ENTROPY: return "softmax_cross_entropy";
	case MPCC_LOSS_MSE: return "mse";
	case MPCC_LOSS_NLL: return "nll";
	case MPCC_LOSS_MODEL: return "model";
	}
	return "?";
}

static const char *
optimizer_name(mpcc_optimizer o)
{
	switch (o) {
	case MPCC_OPTIMIZER_SGD: return "sgd";
	case MPCC_OPTIMIZER_MOMENTUM: return "momentum";
	case MPCC_OPTIMIZER_ADAM: return "adam";
	case MPCC_OPTIMIZER_ADAMW: return "adamw";
	}
	return "?";
}

static bool
in_unit(double x) /* [0, 1) */
{
	return x >= 0 && x < 1;
}

mpcc_status
mpcc_train_check_options(const mpcc_train_options *o, mpcc_diag *d)
{
	bool adam = o->optimizer == MPCC_OPTIMIZER_ADAM || o->optimizer == MPCC_OPTIMIZER_ADAMW;

	if ((unsigned)o->loss > (unsigned)MPCC_LOSS_MODEL)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--loss: %d is not a loss", (int)o->loss);
	if ((unsigned)o->optimizer > (unsigned)MPCC_OPTIMIZER_ADAMW)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--optimizer: %d is not an optimizer",
		                       (int)o->optimizer);
	if ((unsigned)o->loss_scaling > (unsigned)MPCC_LOSS_SCALING_OFF)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--loss-scale: %d is not a scaling mode",
		                       (int)o->loss_scaling);
	if (!(o->lr > 0) || !isfinite(o->lr))
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "--lr: the learning rate must be > 0, got %g", o->lr);
	if (o->optimizer == MPCC_OPTIMIZER_MOMENTUM && !in_unit(o->momentum))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--momentum must be in [0, 1), got %g",
		                       o->momentum);
	if (adam && (!in_unit(o->beta1) || !in_unit(o->beta2)))
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "%s: beta1 and beta2 must be in [0, 1), got %g and %g",
		                       optimizer_name(o->optimizer), o->beta1, o->beta2);
	if (adam && (!(o->eps > 0) || !isfinite(o->eps)))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "%s: eps must be > 0, got %g",
		                       optimizer_name(o->optimizer), o->eps);
	if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--weight-decay must be >= 0, got %g",
		                       o->weight_decay);
	if (o->n_frozen_weights < 0 || (o->n_frozen_weights > 0 && !o->frozen_weights))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--freeze-weights: bad count or pointer");
	for (int i = 0; i < o->n_frozen_weights; i++)
		if (!o->frozen_weights[i] || !o->frozen_weights[i][0])
			return mpcc_diag_error(d, MPCC_ERR_INVALID, "--freeze-weights: empty name");
	if (o->loss_scaling == MPCC_LOSS_SCALING_OFF)
		return MPCC_OK;
	if (!(o->loss_scale > 0) || !isfinite(o->loss_scale) || o->loss_scale > 3e38)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "--loss-scale: %s loss scale must be > 0, got %g",
		                       o->loss_scaling == MPCC_LOSS_SCALING_STATIC ? "a static"
		                                                                   : "the initial",
		                       o->loss_scale);
	if (o->loss_scaling == MPCC_LOSS_SCALING_STATIC)
		return MPCC_OK;
	if (!(o->growth_factor >= 1) || !isfinite(o->growth_factor))
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "loss scaling: the growth factor must be >= 1, got %g",
		                       o->growth_factor);
	if (!(o->backoff_factor > 0 && o->backoff_factor < 1))
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "loss scaling: the backoff factor must be in (0, 1), got %g",
		                       o->backoff_factor);
	if (o->growth_interval < 1 || o->growth_interval > (1 << 24))
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "loss scaling: the growth interval must be in [1, 2^24], "
		                       "got %lld",
		                       (long long)o->growth_interval);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- builder */

static void
nomem(tb *b)
{
	if (!b->st)
		b->st = mpcc_diag_error(b->d, MPCC_ERR_NOMEM, "out of memory building the step graph");
}

/* A name for one value, in one of N_NAMES rotating buffers, so a nested
 * expression may format several before the builder copies them. */
static const char *
nm(tb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *
nm(tb *b, const char *fmt, ...)
{
	char *buf = b->names[b->next_name++ % N_NAMES];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof b->names[0], fmt, ap);
	va_end(ap);
	return buf;
}

/* A new value named `name`, or name_2, name_3, ... when that is taken. */
static int32_t
value_new(tb *b, const char *name)
{
	char buf[560];
	int32_t v;

	if (b->st)
		return MPCC_NONE;
	snprintf(buf, sizeof buf, "%s", name);
	for (int k = 2; mpcc_graph_find_value(b->g, buf) != MPCC_NONE; k++)
		snprintf(buf, sizeof buf, "%s_%d", name, k);
	v = mpcc_graph_add_value(b->g, buf);
	if (v == MPCC_NONE)
		nomem(b);
	return v;
}

/* A node of one output, both named after `name`; attributes may be added
 * before node_done infers it. */
static int32_t
node_new(tb *b, mpcc_op op, const char *name, int n_in, const int32_t *in)
{
	int32_t out = value_new(b, name), ni;

	for (int i = 0; i < n_in; i++)
		if (in[i] == MPCC_NONE && !b->st)
			b->st = mpcc_diag_error(b->d, MPCC_ERR_INTERNAL, "training: '%s' lacks an input",
			                        name);
	if (b->st)
		return MPCC_NONE;
	ni = mpcc_graph_add_node(b->g, op, b->g->values[out].name, n_in, in, 1, &out);
	if (ni == MPCC_NONE) {
		nomem(b);
		return MPCC_NONE;
	}
	b->g->nodes[ni].opset = TRAIN_OPSET;
	b->g->nodes[ni].src_index = -1;
	return ni;
}

static void
attr_int(tb *b, int32_t ni, const char *name, int64_t v)
{
	if (b->st)
		return;
	mpcc_attr *a = mpcc_node_add_attr(b->g, ni, name, MPCC_ATTR_INT);
	if (!a)
		nomem(b);
	else
		a->i = v;
}

/* Infers node ni with its op's shape function; returns its output. */
static int32_t
node_done(tb *b, int32_t ni)
{
	if (b->st)
		return MPCC_NONE;
	const mpcc_op_rule *r = mpcc_op_rule_get(b->g->nodes[ni].op);
	if (!r || !r->infer) {
		b->st = mpcc_diag_error(b->d, MPCC_ERR_INTERNAL, "training: op %s has no shape rule",
		                        mpcc_op_name(b->g->nodes[ni].op));
		return MPCC_NONE;
	}
	if ((b->st = r->infer(b->g, ni, b->d)))
		return MPCC_NONE;
	return b->g->nodes[ni].out[0];
}

static int32_t
op1(tb *b, mpcc_op op, const char *name, int32_t x)
{
	return node_done(b, node_new(b, op, name, 1, &x));
}

static int32_t
op2(tb *b, mpcc_op op, const char *name, int32_t x, int32_t y)
{
	int32_t in[2] = {x, y};
	return node_done(b, node_new(b, op, name, 2, in));
}

static int32_t
where(tb *b, const char *name, int32_t c, int32_t x, int32_t y)
{
	int32_t in[3] = {c, x, y};
	return node_done(b, node_new(b, MPCC_OP_WHERE, name, 3, in));
}

/* ReduceSum or ReduceMean over every axis, to a scalar. */
static int32_t
reduce_all(tb *b, mpcc_op op, const char *name, int32_t x)
{
	int32_t ni = node_new(b, op, name, 1, &x);
	attr_int(b, ni, "keepdims", 0);
	return node_done(b, ni);
}

/* Cast to `to`, an ONNX elem type. */
static int32_t
cast(tb *b, const char *name, int32_t x, int to)
{
	int32_t ni = node_new(b, MPCC_OP_CAST, name, 1, &x);
	attr_int(b, ni, "to", to);
	return node_done(b, ni);
}

/* A constant of dtype t, rank 0, holding x. */
static int32_t
scalar(tb *b, const char *name, mpcc_dtype t, double x)
{
	int32_t v = value_new(b, name);
	void *p = malloc(8);

	if (!p || v == MPCC_NONE) {
		free(p);
		nomem(b);
		return MPCC_NONE;
	}
	if (t == MPCC_DTYPE_F32)
		*(float *)p = (float)x;
	else if (t == MPCC_DTYPE_F64)
		*(double *)p = x;
	else if (t == MPCC_DTYPE_I64)
		*(int64_t *)p = (int64_t)x;
	else
		*(uint8_t *)p = x != 0;
	mpcc_value *val = &b->g->values[v];
	val->dtype = t;
	val->rank = 0;
	mpcc_value_set_data(val, p, mpcc_dtype_size(t));
	return v;
}

static int32_t
f32(tb *b, const char *name, double x)
{
	return scalar(b, name, MPCC_DTYPE_F32, x);
}

/* Shared constant i of the optimizer, "opt/<name>". */
static int32_t
k(tb *b, int i)
{
	static const char *const names[K_COUNT] = {
	    "opt/zero", "opt/lr", "opt/momentum", "opt/beta1", "opt/beta2",
	    "opt/one_minus_beta1", "opt/one_minus_beta2", "opt/eps", "opt/weight_decay",
	    "opt/keep"};
	const mpcc_train_options *o = b->o;
	double x[K_COUNT] = {0, o->lr, o->momentum, o->beta1, o->beta2, 1 - o->beta1,
	                     1 - o->beta2, o->eps, o->weight_decay, 1 - o->lr * o->weight_decay};
	if (b->k[i] == MPCC_NONE)
		b->k[i] = f32(b, names[i], x[i]);
	return b->k[i];
}

/* A new graph input of dtype t and shape dims[rank]; dims may point into
 * the graph's values, which adding the input may move. */
static int32_t
input_new(tb *b, const char *name, mpcc_dtype t, int rank, const int64_t *dims)
{
	int64_t d[MPCC_MAX_RANK];
	for (int i = 0; i < rank; i++)
		d[i] = dims[i];
	int32_t v = value_new(b, name);
	if (v == MPCC_NONE)
		return v;
	mpcc_value *val = &b->g->values[v];
	val->dtype = t;
	val->rank = rank;
	for (int i = 0; i < rank; i++)
		val->dims[i] = d[i];
	if (mpcc_graph_add_input(b->g, v))
		nomem(b);
	return v;
}

/* Records a state pair; init (nbytes, in in's dtype) is taken over (freed at
 * the end), NULL meaning zeros. */
static void
state_add(tb *b, int32_t in, int32_t out, void *init, size_t nbytes)
{
	if (!init && !b->st)
		init = calloc(nbytes ? nbytes : 1, 1);
	if (b->st || !init || (b->n_s == b->cap_s && !(b->cap_s = b->cap_s ? 2 * b->cap_s : 16,
	                                                 b->s = realloc(b->s, sizeof(*b->s) *
	                                                                          (size_t)b->cap_s)))) {
		free(init);
		nomem(b);
		return;
	}
	b->s[b->n_s++] = (state){in, out, init, nbytes, b->g->values[in].dtype};
}

/* A zero-initialised f32 state input shaped like value `like`. */
static int32_t
state_like(tb *b, const char *name, int32_t like)
{
	const mpcc_value *l = &b->g->values[like];
	return input_new(b, name, MPCC_DTYPE_F32, l->rank, l->dims);
}

static size_t
nbytes_of(const mpcc_graph *g, int32_t v)
{
	return (size_t)mpcc_value_numel(&g->values[v]) * mpcc_dtype_size(g->values[v].dtype);
}

/* ---------------------------------------------------------------- the model */

static bool
listed(const int32_t *list, int n, int32_t v)
{
	for (int i = 0; i < n; i++)
		if (list[i] == v)
			return true;
	return false;
}

static bool
is_frozen(const mpcc_train_options *o, const char *name)
{
	for (int i = 0; i < o->n_frozen_weights; i++)
		if (!strcmp(o->frozen_weights[i], name))
			return true;
	return false;
}

/* Makes live again the dead, unfolded nodes that compute v (dead-code
 * elimination dropped them when --logits names a value no model output
 * needed). */
static void
revive(tb *b, int32_t v)
{
	mpcc_graph *g = b->g;
	char *needed = calloc((size_t)g->n_values + 1, 1);

	if (!needed) {
		nomem(b);
		return;
	}
	needed[v] = 1;
	mpcc_revive_producers(g, needed, g->n_nodes);
	free(needed);
}

/* The logits: --logits names a float value of the model; otherwise the
 * model's only float output. */
static int32_t
find_logits(tb *b)
{
	mpcc_graph *g = b->g;
	int32_t found = MPCC_NONE;
	int n_float = 0;

	if (b->o->logits) {
		int32_t v = mpcc_graph_find_value(g, b->o->logits);
		if (v == MPCC_NONE || !mpcc_dtype_is_float(g->values[v].dtype) ||
		    g->values[v].rank < 0) {
			b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
			                        "--logits: '%s' names no float value of the model",
			                        b->o->logits);
			return MPCC_NONE;
		}
		revive(b, v);
		return v;
	}
	for (int i = 0; i < g->n_outputs; i++)
		if (mpcc_dtype_is_float(g->values[g->outputs[i]].dtype)) {
			n_float++;
			if (found == MPCC_NONE)
				found = g->outputs[i];
		}
	if (n_float != 1)
		b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
		                        "--logits: the model has %d float outputs; name the one the "
		                        "loss reads with --logits NAME",
		                        n_float);
	return n_float == 1 ? found : MPCC_NONE;
}

/* --loss model: the live SoftmaxCrossEntropyLoss or NegativeLogLikelihoodLoss
 * whose loss is a graph output; its label input and scores. */
static int32_t
model_loss(tb *b, int32_t *label, int32_t *logits)
{
	mpcc_graph *g = b->g;
	int32_t found = MPCC_NONE;

	for (int32_t i = 0; i < g->n_nodes; i++) {
		const mpcc_node *n = &g->nodes[i];
		if (n->dead || (n->op != MPCC_OP_SOFTMAXCROSSENTROPYLOSS &&
		                n->op != MPCC_OP_NEGATIVELOGLIKELIHOODLOSS) ||
		    !listed(g->outputs, g->n_outputs, n->out[0]))
			continue;
		if (found != MPCC_NONE) {
			b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
			                        "--loss model: the model has two losses ('%s' and "
			                        "'%s'); mpcc trains one",
			                        g->nodes[found].name, n->name);
			return MPCC_NONE;
		}
		found = i;
	}
	if (found == MPCC_NONE) {
		b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
		                        "--loss model: no SoftmaxCrossEntropyLoss or "
		                        "NegativeLogLikelihoodLoss of the model gives a graph output");
		return MPCC_NONE;
	}
	const mpcc_node *n = &g->nodes[found];
	int32_t loss = n->out[0], t = n->in[1];
	if (mpcc_value_numel(&g->values[loss]) != 1)
		b->st = mpcc_node_error(b->d, n, MPCC_ERR_INVALID,
		                        "--loss model: the loss has reduction 'none'; training needs "
		                        "one number (mean or sum)");
	else if (b->o->label && strcmp(b->o->label, g->values[t].name))
		b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
		                        "--label: '%s' is not the label of the model's loss '%s', "
		                        "which reads '%s'",
		                        b->o->label, n->name, g->values[t].name);
	else if (!listed(g->inputs, g->n_inputs, t))
		b->st = mpcc_node_error(b->d, n, MPCC_ERR_INVALID,
		                        "--loss model: the label '%s' is computed, not a graph input",
		                        g->values[t].name);
	if (b->st)
		return MPCC_NONE;
	*label = t;
	*logits = n->in[0];
	return loss;
}

/* The label input: an existing graph input of that name (of the right
 * dtype and shape), or a new one. */
static int32_t
label_input(tb *b, mpcc_dtype t, int rank, const int64_t *dims)
{
	const char *name = b->o->label ? b->o->label : "label";
	mpcc_graph *g = b->g;
	int32_t v = mpcc_graph_find_value(g, name);

	if (v == MPCC_NONE)
		return input_new(b, name, t, rank, dims);
	const mpcc_value *l = &g->values[v];
	if (!listed(g->inputs, g->n_inputs, v)) {
		b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
		                        "--label: '%s' names a value of the model that is not a graph "
		                        "input; name a new input or an unused one",
		                        name);
		return MPCC_NONE;
	}
	for (int32_t i = 0; i < g->n_nodes; i++)
		for (int j = 0; j < g->nodes[i].n_in && !g->nodes[i].dead; j++)
			if (g->nodes[i].in[j] == v) {
				b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
				                        "--label: '%s' is an input the model reads; name a "
				                        "new input or an unused one",
				                        name);
				return MPCC_NONE;
			}
	bool same = l->dtype == t && l->rank == rank;
	for (int i = 0; same && i < rank; i++)
		same = l->dims[i] == dims[i];
	if (!same) {
		char want[160];
		int len = snprintf(want, sizeof want, "%s [", mpcc_dtype_name(t));
		for (int i = 0; i < rank && len < 140; i++)
			len += snprintf(want + len, sizeof want - (size_t)len, "%s%lld", i ? "," : "",
			                (long long)dims[i]);
		snprintf(want + len, sizeof want - (size_t)len, "]");
		b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
		                        "--label: the model's input '%s' is %s of rank %d; the %s "
		                        "loss needs %s",
		                        name, mpcc_dtype_name(l->dtype), l->rank,
		                        loss_name(b->o->loss), want);
		return MPCC_NONE;
	}
	return v;
}

/* Appends the loss over the logits; *label gets the label input. */
static int32_t
build_loss(tb *b, int32_t logits, int32_t *label)
{
	const mpcc_value *x = &b->g->values[logits];
	int64_t dims[MPCC_MAX_RANK];
	int rank = 0;

	if (b->o->loss == MPCC_LOSS_MSE) {
		*label = label_input(b, x->dtype, x->rank, x->dims);
		int32_t diff = op2(b, MPCC_OP_SUB, "train/loss/diff", logits, *label);
		int32_t sq = op2(b, MPCC_OP_MUL, "train/loss/square", diff, diff);
		return reduce_all(b, MPCC_OP_REDUCEMEAN, "train/loss", sq);
	}
	if (x->rank < 2) {
		b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
		                        "--loss %s: the logits '%s' have rank %d; classes need "
		                        "[N, C, ...]",
		                        loss_name(b->o->loss), x->name, x->rank);
		return MPCC_NONE;
	}
	for (int i = 0; i < x->rank; i++)
		if (i != 1)
			dims[rank++] = x->dims[i];
	*label = label_input(b, MPCC_DTYPE_I64, rank, dims);
	int32_t in[2] = {logits, *label};
	if (b->o->loss == MPCC_LOSS_NLL) {
		int32_t ni = node_new(b, MPCC_OP_LOGSOFTMAX, "train/log_softmax", 1, &logits);
		attr_int(b, ni, "axis", 1);
		in[0] = node_done(b, ni);
		return node_done(b, node_new(b, MPCC_OP_NEGATIVELOGLIKELIHOODLOSS, "train/loss", 2, in));
	}
	return node_done(b, node_new(b, MPCC_OP_SOFTMAXCROSSENTROPYLOSS, "train/loss", 2, in));
}

/* ---------------------------------------------------------------- weights */

/* Every f32 initializer not frozen (--freeze-weights names must each be an
 * initializer). Initializers of other float dtypes are candidates too, so
 * that one that reaches the loss is refused by name rather than ignored. */
static void
collect_weights(tb *b)
{
	mpcc_graph *g = b->g;

	for (int i = 0; i < b->o->n_frozen_weights; i++) {
		int32_t v = mpcc_graph_find_value(g, b->o->frozen_weights[i]);
		if (v == MPCC_NONE || !(g->values[v].flags & MPCC_VALUE_WEIGHT)) {
			b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
			                        "--freeze-weights: '%s' names no initializer of the model",
			                        b->o->frozen_weights[i]);
			return;
		}
	}
	b->w = calloc((size_t)g->n_values + 1, sizeof(*b->w));
	if (!b->w) {
		nomem(b);
		return;
	}
	for (int32_t v = 0; v < g->n_values; v++) {
		const mpcc_value *val = &g->values[v];
		if ((val->flags & (MPCC_VALUE_WEIGHT | MPCC_VALUE_CONST)) !=
		        (MPCC_VALUE_WEIGHT | MPCC_VALUE_CONST) ||
		    (val->flags & (MPCC_VALUE_INPUT | MPCC_VALUE_OUTPUT)) ||
		    !mpcc_dtype_is_float(val->dtype) || !val->data || mpcc_value_numel(val) < 0)
			continue;
		if (is_frozen(b->o, val->name)) {
			b->n_frozen++;
			continue;
		}
		b->w[b->n_w++] = (weight){.v = v, .grad = MPCC_NONE, .u = MPCC_NONE};
	}
}

/*
 * Why folded nodes are revived: the first fold evaluated every node whose
 * inputs were all constant, weights included (a Transpose of a weight, a
 * Gemm of two initializers), and dead-code elimination then dropped the
 * node. Now that the weights vary, those results are stale: in one forward
 * sweep, every folded node reading a varying value loses its constant
 * outputs and is live again, to be inferred and possibly folded anew.
 * Shape and Size read only the shape, which does not vary.
 */
static void
detach_weights(tb *b)
{
	mpcc_graph *g = b->g;
	char *varies = calloc((size_t)g->n_values + 1, 1);

	if (!varies) {
		nomem(b);
		return;
	}
	for (int i = 0; i < b->n_w; i++) {
		mpcc_value *v = &g->values[b->w[i].v];
		b->w[i].data = v->data;
		b->w[i].nbytes = v->nbytes;
		v->data = NULL;
		v->nbytes = 0;
		v->flags &= ~(uint32_t)MPCC_VALUE_CONST;
		varies[b->w[i].v] = 1;
		if (mpcc_graph_add_input(g, b->w[i].v))
			nomem(b);
	}
	for (int32_t i = 0; i < g->n_nodes; i++) {
		mpcc_node *n = &g->nodes[i];
		bool any = false;
		if (n->op == MPCC_OP_SHAPE || n->op == MPCC_OP_SIZE)
			continue;
		for (int j = 0; j < n->n_in; j++)
			any = any || (n->in[j] != MPCC_NONE && varies[n->in[j]]);
		if (!any)
			continue;
		for (int j = 0; j < n->n_out; j++) {
			mpcc_value *v = n->out[j] != MPCC_NONE ? &g->values[n->out[j]] : NULL;
			if (!v)
				continue;
			varies[n->out[j]] = 1;
			if (!(v->flags & MPCC_VALUE_CONST))
				continue;
			free(v->data);
			v->data = NULL;
			v->nbytes = 0;
			v->flags &= ~(uint32_t)MPCC_VALUE_CONST;
			n->dead = false;
		}
	}
	free(varies);
}

/* A weight that autodiff found no path from goes back to being a constant
 * (and the second fold evaluates what reads it again). */
static void
keep_constant(tb *b, weight *w)
{
	mpcc_graph *g = b->g;
	mpcc_value *v = &g->values[w->v];
	int k = 0;

	mpcc_value_set_data(v, w->data, w->nbytes);
	w->data = NULL;
	v->flags &= ~(uint32_t)MPCC_VALUE_INPUT;
	for (int i = 0; i < g->n_inputs; i++)
		if (g->inputs[i] != w->v)
			g->inputs[k++] = g->inputs[i];
	g->n_inputs = k;
}

/* Keeps the weights with a gradient (the others become constants again);
 * refuses one that is not f32. */
static void
keep_trained(tb *b)
{
	int k = 0;

	for (int i = 0; i < b->n_w; i++)
		if (b->w[i].grad == MPCC_NONE)
			keep_constant(b, &b->w[i]);
	for (int i = 0; i < b->n_w; i++) {
		const mpcc_value *v = &b->g->values[b->w[i].v];
		if (b->w[i].grad != MPCC_NONE && v->dtype != MPCC_DTYPE_F32) {
			b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
			                        "initializer '%s' is %s and reaches the loss: trained "
			                        "weights are f32 (keep it constant with --freeze-weights "
			                        "%s)",
			                        v->name, mpcc_dtype_name(v->dtype), v->name);
			return;
		}
	}
	for (int i = 0; i < b->n_w; i++)
		if (b->w[i].grad != MPCC_NONE)
			b->w[k++] = b->w[i];
	b->n_w = k;
	if (k == 0)
		b->st = mpcc_diag_error(b->d, MPCC_ERR_INVALID,
		                        "training: no initializer reaches the loss through float "
		                        "values (%d frozen): nothing to train",
		                        b->n_frozen);
}

/* The gradient of every weight, seeded with the loss scale (NONE: ones).
 * An op without a gradient rule on the way is autodiff's error, which gets
 * a hint: the weights behind it can be frozen. */
static void
backward(tb *b, int32_t loss, int32_t seed)
{
	int32_t *wrt, *grads;

	if (b->st)
		return;
	wrt = malloc(sizeof(int32_t) * (size_t)(b->n_w + 1));
	grads = malloc(sizeof(int32_t) * (size_t)(b->n_w + 1));
	if (!wrt || !grads)
		nomem(b);
	for (int i = 0; !b->st && i < b->n_w; i++)
		wrt[i] = b->w[i].v;
	if (!b->st)
		b->st = mpcc_autodiff(b->g, loss, seed, wrt, b->n_w, grads, b->d);
	for (int i = 0; !b->st && i < b->n_w; i++)
		b->w[i].grad = grads[i];
	free(wrt);
	free(grads);
	if (b->st == MPCC_ERR_UNSUPPORTED) {
		size_t len = strlen(b->d->msg);
		snprintf(b->d->msg + len, sizeof b->d->msg - len,
		         " (initializers on that path can be kept constant with --freeze-weights)");
	}
}

/* ---------------------------------------------------------------- the step */

/* Where(ok, new, old) as the next value of state `old`, recorded. */
static int32_t
commit(tb *b, int32_t ok, int32_t old, int32_t new, void *init, size_t nbytes)
{
	const char *name = b->st ? "" : b->g->values[old].name;
	int32_t next = where(b, nm(b, "%s.next", name), ok, new, old);
	if (next != MPCC_NONE)
		state_add(b, old, next, init, nbytes);
	else
		free(init);
	return next;
}

/* u = g (widened to f32) / scale, and ReduceSum(u * 0), which is NaN when
 * any element of u is not finite (inf * 0 = NaN). */
static int32_t
unscale(tb *b, weight *w, int32_t scale)
{
	const char *name = b->g->values[w->v].name;
	int32_t g = w->grad;

	if (b->widen)
		g = cast(b, nm(b, "opt/%s/grad_f32", name), g, ONNX_FLOAT);
	w->u = scale == MPCC_NONE ? g : op2(b, MPCC_OP_DIV, nm(b, "opt/%s/grad", name), g, scale);
	return reduce_all(b, MPCC_OP_REDUCESUM, nm(b, "opt/%s/nan_probe", name),
	                  op2(b, MPCC_OP_MUL, nm(b, "opt/%s/times0", name), w->u, k(b, K_ZERO)));
}

/*
 * The per-step scalars Adam shares over weights: the step size
 * lr / (1 - b1^t) and 1 - b2^t for the step t = count + 1, where the count
 * of applied steps is an int64 state. Why f64: 1 - b2^t cancels. In f32,
 * 0.999 is 1.3e-8 off, which is 1.3e-5 of 1 - 0.999, so the first steps'
 * bias correction would be that far off; f64 makes both exact to f32
 * rounding. Four scalar ops a step.
 */
typedef struct adam_step {
	int32_t t, t1, step_size, bias2;
} adam_step;

static adam_step
adam_scalars(tb *b)
{
	const mpcc_train_options *o = b->o;
	adam_step a;
	int32_t one = scalar(b, "opt/one_f64", MPCC_DTYPE_F64, 1);
	a.t = input_new(b, "opt/step", MPCC_DTYPE_I64, 0, NULL);
	a.t1 = op2(b, MPCC_OP_ADD, "opt/step/plus1", a.t, scalar(b, "opt/one_i64", MPCC_DTYPE_I64, 1));
	int32_t t = cast(b, "opt/step/f64", a.t1, ONNX_DOUBLE);
	int32_t b1t = op2(b, MPCC_OP_POW, "opt/beta1_pow",
	                  scalar(b, "opt/beta1_f64", MPCC_DTYPE_F64, o->beta1), t);
	int32_t b2t = op2(b, MPCC_OP_POW, "opt/beta2_pow",
	                  scalar(b, "opt/beta2_f64", MPCC_DTYPE_F64, o->beta2), t);
	int32_t bias1 = op2(b, MPCC_OP_SUB, "opt/bias1", one, b1t);
	a.bias2 = cast(b, "opt/bias2", op2(b, MPCC_OP_SUB, "opt/bias2_f64", one, b2t), ONNX_FLOAT);
	a.step_size = cast(b, "opt/step_size",
	                   op2(b, MPCC_OP_DIV, "opt/step_size_f64",
	                       scalar(b, "opt/lr_f64", MPCC_DTYPE_F64, o->lr), bias1),
	                   ONNX_FLOAT);
	return a;
}

/*
 * One weight's update, as PyTorch writes its optimizers (weight decay is L2
 * added to the gradient except for AdamW, which decays the weight itself):
 *   sgd       w' = w - lr g
 *   momentum  v' = mu v + g;  w' = w - lr v'
 *   adam      m' = b1 m + (1 - b1) g;  v' = b2 v + (1 - b2) g^2;
 *             w' = w - (lr / (1 - b1^t)) m' / (sqrt(v' / (1 - b2^t)) + eps)
 *   adamw     the same from w (1 - lr wd)
 * Every next value is Where(ok, new, old), the weight's committed first so
 * the state table lists each weight before its optimizer state.
 */
static void
update(tb *b, weight *w, int32_t ok, adam_step as)
{
	const mpcc_train_options *o = b->o;
	const char *name = b->g->values[w->v].name;
	int32_t W = w->v, g = w->u, next;

	if (o->weight_decay > 0 && o->optimizer != MPCC_OPTIMIZER_ADAMW)
		g = op2(b, MPCC_OP_ADD, nm(b, "opt/%s/decayed", name), g,
		        op2(b, MPCC_OP_MUL, nm(b, "opt/%s/l2", name), W, k(b, K_WD)));
	switch (o->optimizer) {
	case MPCC_OPTIMIZER_SGD:
		next = op2(b, MPCC_OP_SUB, nm(b, "opt/%s/new", name), W,
		           op2(b, MPCC_OP_MUL, nm(b, "opt/%s/step", name), g,
		               k(b, K_LR)));
		commit(b, ok, W, next, w->data, w->nbytes);
		break;
	case MPCC_OPTIMIZER_MOMENTUM: {
		int32_t v = state_like(b, nm(b, "opt/%s/velocity", name), W);
		int32_t v1 = op2(b, MPCC_OP_ADD, nm(b, "opt/%s/velocity_new", name),
		                 op2(b, MPCC_OP_MUL, nm(b, "opt/%s/velocity_decayed", name), v,
		                     k(b, K_MOMENTUM)),
		                 g);
		next = op2(b, MPCC_OP_SUB, nm(b, "opt/%s/new", name), W,
		           op2(b, MPCC_OP_MUL, nm(b, "opt/%s/step", name), v1,
		               k(b, K_LR)));
		commit(b, ok, W, next, w->data, w->nbytes);
		commit(b, ok, v, v1, NULL, nbytes_of(b->g, W));
		break;
	}
	default: { /* ADAM, ADAMW */
		int32_t m = state_like(b, nm(b, "opt/%s/m", name), W);
		int32_t v = state_like(b, nm(b, "opt/%s/v", name), W);
		int32_t m1 = op2(b, MPCC_OP_ADD, nm(b, "opt/%s/m_new", name),
		                 op2(b, MPCC_OP_MUL, nm(b, "opt/%s/m_decayed", name), m,
		                     k(b, K_BETA1)),
		                 op2(b, MPCC_OP_MUL, nm(b, "opt/%s/m_grad", name), g,
		                     k(b, K_1_MINUS_BETA1)));
		int32_t g2 = op2(b, MPCC_OP_MUL, nm(b, "opt/%s/grad_sq", name), g, g);
		int32_t v1 = op2(b, MPCC_OP_ADD, nm(b, "opt/%s/v_new", name),
		                 op2(b, MPCC_OP_MUL, nm(b, "opt/%s/v_decayed", name), v,
		                     k(b, K_BETA2)),
		                 op2(b, MPCC_OP_MUL, nm(b, "opt/%s/v_grad", name), g2,
		                     k(b, K_1_MINUS_BETA2)));
		int32_t denom = op2(
		    b, MPCC_OP_ADD, nm(b, "opt/%s/denom", name),
		    op1(b, MPCC_OP_SQRT, nm(b, "opt/%s/sqrt_v", name),
		        op2(b, MPCC_OP_DIV, nm(b, "opt/%s/v_hat", name), v1, as.bias2)),
		    k(b, K_EPS));
		int32_t upd = op2(b, MPCC_OP_DIV, nm(b, "opt/%s/step", name),
		                  op2(b, MPCC_OP_MUL, nm(b, "opt/%s/m_scaled", name), m1, as.step_size),
		                  denom);
		int32_t from = W;
		if (o->optimizer == MPCC_OPTIMIZER_ADAMW && o->weight_decay > 0)
			from = op2(b, MPCC_OP_MUL, nm(b, "opt/%s/decayed", name), W, k(b, K_KEEP));
		next = op2(b, MPCC_OP_SUB, nm(b, "opt/%s/new", name), from, upd);
		commit(b, ok, W, next, w->data, w->nbytes);
		commit(b, ok, m, m1, NULL, nbytes_of(b->g, W));
		commit(b, ok, v, v1, NULL, nbytes_of(b->g, W));
		break;
	}
	}
	w->data = NULL; /* the state's now */
}

/*
 * The dynamic scaler, PyTorch's GradScaler in graph form: after a step
 * with finite gradients good_steps counts up, and on reaching the growth
 * interval the scale grows (up to 2^24, or the initial scale if higher)
 * and the count restarts; after a non-finite one the scale backs off
 * (down to 2^-24) and the count restarts. With apply false neither moves.
 */
static void
scaler(tb *b, int32_t scale, int32_t good, int32_t ok, int32_t apply)
{
	const mpcc_train_options *o = b->o;
	double hi = fmax(SCALE_LIMIT, o->loss_scale), lo = fmin(1 / SCALE_LIMIT, o->loss_scale);
	int32_t zero = f32(b, "train/good_steps/zero", 0);
	int32_t good1 = op2(b, MPCC_OP_ADD, "train/good_steps/plus1", good,
	                    f32(b, "train/good_steps/one", 1));
	int32_t grow = op2(b, MPCC_OP_GREATEROREQUAL, "train/loss_scale/grow", good1,
	                   f32(b, "train/loss_scale/interval", (double)o->growth_interval));
	int32_t grown = op2(b, MPCC_OP_MIN, "train/loss_scale/grown",
	                    op2(b, MPCC_OP_MUL, "train/loss_scale/times_growth", scale,
	                        f32(b, "train/loss_scale/growth", o->growth_factor)),
	                    f32(b, "train/loss_scale/max", hi));
	int32_t backed = op2(b, MPCC_OP_MAX, "train/loss_scale/backed_off",
	                     op2(b, MPCC_OP_MUL, "train/loss_scale/times_backoff", scale,
	                         f32(b, "train/loss_scale/backoff", o->backoff_factor)),
	                     f32(b, "train/loss_scale/min", lo));
	int32_t s_ok = where(b, "train/loss_scale/if_finite", grow, grown, scale);
	int32_t s_bad = where(b, "train/loss_scale/if_skipped", apply, backed, scale);
	int32_t g_ok = where(b, "train/good_steps/if_finite", grow, zero, good1);
	int32_t g_bad = where(b, "train/good_steps/if_skipped", apply, zero, good);
	float s0 = (float)o->loss_scale;
	void *init = malloc(sizeof(float));
	if (init)
		memcpy(init, &s0, sizeof s0);
	else
		nomem(b);
	int32_t s_next = where(b, "train/loss_scale.next", ok, s_ok, s_bad);
	int32_t g_next = where(b, "train/good_steps.next", ok, g_ok, g_bad);
	state_add(b, scale, s_next, init, sizeof(float));
	state_add(b, good, g_next, NULL, sizeof(float));
}

/* ---------------------------------------------------------------- driver */

/* Dynamic scaling by default where f16 gradients may underflow: fp16, and
 * auto when some matrix op of the model is to compute in f16 (its hint, or
 * the policy where there is none). */
static bool
default_dynamic(const mpcc_graph *g, const mpcc_pass_ctx *cx)
{
	switch (cx->opts->precision) {
	case MPCC_PRECISION_FP16: return true;
	case MPCC_PRECISION_AUTO: break;
	default: return false;
	}
	for (int32_t i = 0; i < g->n_nodes; i++) {
		const mpcc_node *n = &g->nodes[i];
		if (n->dead || mpcc_op_prec_class(n->op) != MPCC_PREC_LOW)
			continue;
		if (!cx->hints || n->src_index < 0 || n->src_index >= cx->n_hints)
			return true;
		const mpcc_prec_hint *h = &cx->hints[n->src_index];
		if (!h->keep_f32 && h->low != MPCC_DTYPE_BF16)
			return true;
	}
	return false;
}

static const char *
recipe(tb *b, mpcc_loss_scaling sc)
{
	const mpcc_train_options *o = b->o;
	char buf[512];
	int n = snprintf(buf, sizeof buf, "%s lr=%g", optimizer_name(o->optimizer), o->lr);

	if (o->optimizer == MPCC_OPTIMIZER_MOMENTUM)
		n += snprintf(buf + n, sizeof buf - (size_t)n, " momentum=%g", o->momentum);
	if (o->optimizer == MPCC_OPTIMIZER_ADAM || o->optimizer == MPCC_OPTIMIZER_ADAMW)
		n += snprintf(buf + n, sizeof buf - (size_t)n, " beta1=%g beta2=%g eps=%g", o->beta1,
		              o->beta2, o->eps);
	if (o->weight_decay > 0)
		n += snprintf(buf + n, sizeof buf - (size_t)n, " weight_decay=%g", o->weight_decay);
	n += snprintf(buf + n, sizeof buf - (size_t)n, ", %s, ", loss_name(o->loss));
	if (sc == MPCC_LOSS_SCALING_DYNAMIC)
		n += snprintf(buf + n, sizeof buf - (size_t)n,
		              "dynamic loss scale %g (x%g after %lld finite steps, x%g on overflow)",
		              o->loss_scale, o->growth_factor, (long long)o->growth_interval,
		              o->backoff_factor);
	else if (sc == MPCC_LOSS_SCALING_STATIC)
		n += snprintf(buf + n, sizeof buf - (size_t)n, "static loss scale %g", o->loss_scale);
	else
		n += snprintf(buf + n, sizeof buf - (size_t)n, "no loss scaling");
	if (n < (int)sizeof buf)
		snprintf(buf + n, sizeof buf - (size_t)n, "; %d weights trained, %d frozen", b->n_w,
		         b->n_frozen);
	return mpcc_arena_strdup(&b->g->arena, buf);
}

/* The outputs become: loss, logits, loss scale, ok, the next states. */
static void
set_outputs(tb *b, int32_t loss, int32_t logits, int32_t scale, int32_t ok)
{
	mpcc_graph *g = b->g;
	int32_t first[4] = {loss, logits, scale, ok};

	if (b->st)
		return;
	for (int i = 0; i < g->n_outputs; i++)
		g->values[g->outputs[i]].flags &= ~(uint32_t)MPCC_VALUE_OUTPUT;
	g->n_outputs = 0;
	for (int i = 0; i < 4; i++)
		if (first[i] != MPCC_NONE && !listed(g->outputs, g->n_outputs, first[i]) &&
		    mpcc_graph_add_output(g, first[i]))
			nomem(b);
	for (int i = 0; i < b->n_s; i++)
		if (mpcc_graph_add_output(g, b->s[i].out))
			nomem(b);
}

static void
fill_train_info(tb *b, int32_t label, int32_t loss, int32_t logits, int32_t scale, int32_t ok,
                int32_t apply, mpcc_loss_scaling sc)
{
	mpcc_train_info *t;

	if (b->st)
		return;
	if (mpcc_graph_train_new(b->g, b->n_s, &t)) {
		nomem(b);
		return;
	}
	for (int i = 0; i < b->n_s && !b->st; i++)
		if ((b->st = mpcc_train_set_state(b->g, i, b->s[i].in, b->s[i].out, b->s[i].dtype,
		                                  b->s[i].init, b->s[i].nbytes)))
			b->st = mpcc_diag_error(b->d, b->st, "out of memory building the step graph");
	t->label = label;
	t->loss = loss;
	t->logits = logits;
	t->loss_scale = scale;
	t->ok = ok;
	t->apply = apply;
	t->recipe = recipe(b, sc);
}

static void
tb_fini(tb *b)
{
	for (int i = 0; i < b->n_w; i++)
		free(b->w[i].data);
	for (int i = 0; i < b->n_s; i++)
		free(b->s[i].init);
	free(b->w);
	free(b->s);
}

mpcc_status
mpcc_build_training(mpcc_graph *g, mpcc_pass_ctx *cx)
{
	const mpcc_train_options *o = cx->opts ? cx->opts->train : NULL;
	tb b = {.g = g, .d = cx->d, .o = o};
	int32_t label = MPCC_NONE, logits = MPCC_NONE, loss, scale = MPCC_NONE, good = MPCC_NONE;

	if (!o)
		return MPCC_OK;
	for (int i = 0; i < K_COUNT; i++)
		b.k[i] = MPCC_NONE;
	if ((b.st = mpcc_train_check_options(o, cx->d)))
		return b.st;
	if (g->train)
		return mpcc_diag_error(cx->d, MPCC_ERR_INVALID, "--train: the graph already is a "
		                                                 "training step graph");
	mpcc_loss_scaling sc = o->loss_scaling;
	if (sc == MPCC_LOSS_SCALING_DEFAULT)
		sc = default_dynamic(g, cx) ? MPCC_LOSS_SCALING_DYNAMIC : MPCC_LOSS_SCALING_OFF;
	b.widen = cx->opts->precision != MPCC_PRECISION_FP32;

	/* the forward pass: logits and loss */
	if (o->loss == MPCC_LOSS_MODEL) {
		loss = model_loss(&b, &label, &logits);
		if (!b.st && o->logits)
			logits = find_logits(&b);
	} else {
		logits = find_logits(&b);
		loss = b.st ? MPCC_NONE : build_loss(&b, logits, &label);
	}
	/* BatchNormalization and Dropout switch on apply (train_modes.c) */
	int32_t apply = input_new(&b, "train/apply", MPCC_DTYPE_BOOL, 0, NULL), probe = MPCC_NONE;
	mpcc_train_modes modes = {0};
	if (!b.st)
		b.st = mpcc_train_switch_modes(g, o, loss, apply, &modes, cx->d);
	collect_weights(&b);
	if (!b.st)
		detach_weights(&b);

	/* backward, seeded with the loss scale */
	if (sc == MPCC_LOSS_SCALING_DYNAMIC) {
		scale = input_new(&b, "train/loss_scale", MPCC_DTYPE_F32, 0, NULL);
		good = input_new(&b, "train/good_steps", MPCC_DTYPE_F32, 0, NULL);
	} else if (sc == MPCC_LOSS_SCALING_STATIC) {
		scale = f32(&b, "train/loss_scale", o->loss_scale);
	}
	backward(&b, loss, scale);
	if (!b.st)
		keep_trained(&b);

	/* finite check */
	for (int i = 0; i < b.n_w && !b.st; i++) {
		int32_t p = unscale(&b, &b.w[i], scale);
		probe = probe == MPCC_NONE ? p : op2(&b, MPCC_OP_ADD, "train/nan_probe", probe, p);
	}
	int32_t finite = op1(&b, MPCC_OP_NOT, "train/finite",
	                     op1(&b, MPCC_OP_ISNAN, "train/is_nan", probe));
	int32_t ok = op2(&b, MPCC_OP_AND, "train/ok", apply, finite);

	/* the optimizer, then the scaler */
	bool adam = o->optimizer == MPCC_OPTIMIZER_ADAM || o->optimizer == MPCC_OPTIMIZER_ADAMW;
	adam_step as = {MPCC_NONE, MPCC_NONE, MPCC_NONE, MPCC_NONE};
	if (adam)
		as = adam_scalars(&b);
	for (int i = 0; i < b.n_w && !b.st; i++)
		update(&b, &b.w[i], ok, as);
	if (adam)
		commit(&b, ok, as.t, as.t1, NULL, sizeof(int64_t));
	for (int i = 0; i < modes.n_state && !b.st; i++) {
		mpcc_train_mode_state *m = &modes.state[i];
		commit(&b, m->every_step ? apply : ok, m->in, m->next, m->init, m->nbytes);
		m->init = NULL;
	}
	if (sc == MPCC_LOSS_SCALING_DYNAMIC)
		scaler(&b, scale, good, ok, apply);

	set_outputs(&b, loss, logits, scale, ok);
	fill_train_info(&b, label, loss, logits, scale, ok, apply, sc);
	mpcc_train_modes_fini(&modes);
	tb_fini(&b);
	if (b.st && cx->d->status == MPCC_OK)
		mpcc_diag_error(cx->d, b.st, "training: building the step graph failed (%s)",
		                mpcc_status_name(b.st));
	return b.st;
}
