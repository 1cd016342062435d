/*
 * train_modes.c - `--train`: BatchNormalization and Dropout switch to their
 * training behaviour in the step graph (docs/training.md, "Training mode").
 *
 * The step graph's bool input train/apply is the mode switch: a training
 * step (apply true) normalises with the batch's statistics and drops
 * activations; an evaluation (apply false) computes what the inference model
 * computes, so mpcc_trainer_eval agrees with the exported model. Each node
 * on the way to the loss is replaced by ordinary ops built here, before the
 * backward pass, so autodiff differentiates the training form like any
 * other graph and no new gradient rule is involved:
 *
 *   BatchNormalization  mean and variance of the batch over every axis but
 *                       1 (ReduceMean, Sub, Mul, ReduceMean; the variance is
 *                       the biased one, as ONNX's training mode defines it),
 *                       Where(apply, batch, running) for each, then
 *                       (x - mean) / sqrt(var + eps) * scale + B in the
 *                       order the inference kernel computes it (so the
 *                       evaluation is bit for bit the exported model's).
 *                       The running mean and variance become state, updated
 *                       by ONNX's rule r' = r momentum + batch (1 - momentum)
 *                       and committed by the caller under `ok` with the
 *                       weights, so a skipped step leaves them untouched.
 *   Dropout             u = HashRandomUniform(step) (ops/misc_random.c), a
 *                       hash of the seed, the step count and the element's
 *                       index; y = Where(apply, Where(u >= ratio, x *
 *                       (1 / (1 - ratio)), 0), x). The step count is one
 *                       int64 state shared by every Dropout, taken one
 *                       further on every training step (apply), so a
 *                       checkpoint resumes the masks bit for bit.
 *
 * The new nodes are appended and write the replaced node's outputs, which
 * then is dead; the node array is sorted back into topological order once
 * at the end. They are named "train/<node>/...", shape-inferred as they are
 * built, through a builder whose status is sticky. The builder is this
 * file's own, a few lines like train.c's: that one is private to the step
 * builder and carries the optimizer's state, and this pass needs only
 * nodes that may write an existing value, constants and one input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"
#include "passes/train.h"

#define MODES_OPSET 18         /* ReduceMean takes its axes as an input */
#define SEED_BASIS 2166136261u /* FNV-1a 32 */
#define SEED_PRIME 16777619u

typedef struct mb {
	mpcc_graph *g;
	mpcc_diag *d;
	mpcc_status st;        /* sticky: the first failure of any step */
	mpcc_train_modes *out; /* the states, as they are added */
	int cap_state;
	int32_t apply;    /* the bool mode switch */
	int32_t step;     /* Dropout's step count input, NONE until made */
	char prefix[400]; /* "train/<node>" of the node being replaced */
} mb;

/* ---------------------------------------------------------------- builder */

static void
nomem(mb *b)
{
	if (!b->st)
		b->st = mpcc_diag_error(b->d, MPCC_ERR_NOMEM,
		                        "out of memory switching to training mode");
}

/* "<prefix>/<what>", or what without its '/' when it starts with one (a
 * name shared by every node, "/train/dropout_step"). */
static void
full_name(const mb *b, const char *what, char *buf, size_t size)
{
	if (what[0] == '/')
		snprintf(buf, size, "%s", what + 1);
	else
		snprintf(buf, size, "%s/%s", b->prefix, what);
}

/* A new value named full_name(what), made unique by a suffix _2, _3, ... */
static int32_t
value_new(mb *b, const char *what)
{
	char name[512], buf[540];
	int32_t v;

	if (b->st)
		return MPCC_NONE;
	full_name(b, what, name, sizeof name);
	snprintf(buf, sizeof buf, "%s", name);
	for (int k = 2; mpcc_graph_find_value(b->g, buf) != MPCC_NONE; k++)
		snprintf(buf, sizeof buf, "%s_%d", name, k);
	v = mpcc_graph_add_value(b->g, buf);
	if (v == MPCC_NONE)
		nomem(b);
	return v;
}

/* A node named full_name(what) over in[n_in]; out NONE makes a new value
 * of that name, else the node writes out (the replaced node's output). */
static int32_t
node_new(mb *b, mpcc_op op, const char *what, int n_in, const int32_t *in, int32_t out)
{
	for (int i = 0; i < n_in; i++)
		if (in[i] == MPCC_NONE && !b->st)
			b->st = mpcc_diag_error(b->d, MPCC_ERR_INTERNAL,
			                        "training mode: '%s' lacks an input", what);
	if (out == MPCC_NONE)
		out = value_new(b, what);
	if (b->st)
		return MPCC_NONE;
	char name[512];
	full_name(b, what, name, sizeof name);
	int32_t ni = mpcc_graph_add_node(b->g, op, name, n_in, in, 1, &out);
	if (ni == MPCC_NONE) {
		nomem(b);
		return MPCC_NONE;
	}
	b->g->nodes[ni].opset = MODES_OPSET;
	b->g->nodes[ni].src_index = -1;
	return ni;
}

static mpcc_attr *
attr(mb *b, int32_t ni, const char *name, mpcc_attr_kind kind)
{
	mpcc_attr *a = b->st ? NULL : mpcc_node_add_attr(b->g, ni, name, kind);
	if (!a)
		nomem(b);
	return a;
}

/* Infers node ni with its op's shape function; returns its output. */
static int32_t
node_done(mb *b, int32_t ni)
{
	if (b->st)
		return MPCC_NONE;
	const mpcc_op_rule *r = mpcc_op_rule_get(b->g->nodes[ni].op);
	if ((b->st = r->infer(b->g, ni, b->d)))
		return MPCC_NONE;
	return b->g->nodes[ni].out[0];
}

static int32_t
op1(mb *b, mpcc_op op, const char *what, int32_t x)
{
	return node_done(b, node_new(b, op, what, 1, &x, MPCC_NONE));
}

static int32_t
op2(mb *b, mpcc_op op, const char *what, int32_t x, int32_t y)
{
	int32_t in[2] = {x, y};
	return node_done(b, node_new(b, op, what, 2, in, MPCC_NONE));
}

static int32_t
op3(mb *b, mpcc_op op, const char *what, int32_t x, int32_t y, int32_t z, int32_t out)
{
	int32_t in[3] = {x, y, z};
	return node_done(b, node_new(b, op, what, 3, in, out));
}

/* A constant "<prefix>/<what>" of dtype t and shape dims[rank] taking over
 * data (malloc'd, freed here on failure). */
static int32_t
cst(mb *b, const char *what, mpcc_dtype t, int rank, const int64_t *dims, void *data)
{
	int32_t v = value_new(b, what);
	if (v == MPCC_NONE || !data) {
		free(data);
		nomem(b);
		return MPCC_NONE;
	}
	mpcc_value *val = &b->g->values[v];
	val->dtype = t;
	val->rank = rank;
	for (int i = 0; i < rank; i++)
		val->dims[i] = dims[i];
	mpcc_value_set_data(val, data, (size_t)mpcc_value_numel(val) * mpcc_dtype_size(t));
	return v;
}

/* A float scalar of dtype t (f16, bf16, f32 or f64) holding x. */
static int32_t
scalar(mb *b, const char *what, mpcc_dtype t, double x)
{
	void *p = malloc(8);
	if (p && t == MPCC_DTYPE_F64)
		*(double *)p = x;
	else if (p && t == MPCC_DTYPE_F16)
		*(uint16_t *)p = mpcc_f32_to_f16((float)x);
	else if (p && t == MPCC_DTYPE_BF16)
		*(uint16_t *)p = mpcc_f32_to_bf16((float)x);
	else if (p)
		*(float *)p = (float)x;
	return cst(b, what, t, 0, NULL, p);
}

/* A 1-D int64 constant: axes, shapes. */
static int32_t
ints(mb *b, const char *what, int n, const int64_t *v)
{
	int64_t dims[1] = {n};
	int64_t *p = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
	if (p)
		memcpy(p, v, sizeof(int64_t) * (size_t)n);
	return cst(b, what, MPCC_DTYPE_I64, 1, dims, p);
}

/* A new graph input of dtype t and shape dims[rank]. */
static int32_t
input_new(mb *b, const char *what, mpcc_dtype t, int rank, const int64_t *dims)
{
	int32_t v = value_new(b, what);
	if (v == MPCC_NONE)
		return v;
	mpcc_value *val = &b->g->values[v];
	val->dtype = t;
	val->rank = rank;
	for (int i = 0; i < rank; i++)
		val->dims[i] = dims[i];
	if (mpcc_graph_add_input(b->g, v))
		nomem(b);
	return v;
}

/* Records state `in` with its next value; init (nbytes) is taken over. */
static void
state_add(mb *b, int32_t in, int32_t next, bool every_step, void *init, size_t nbytes)
{
	mpcc_train_modes *m = b->out;
	if (!b->st && m->n_state == b->cap_state) {
		int cap = b->cap_state ? 2 * b->cap_state : 4;
		mpcc_train_mode_state *s = realloc(m->state, sizeof(*s) * (size_t)cap);
		if (s) {
			m->state = s;
			b->cap_state = cap;
		}
	}
	if (b->st || !init || m->n_state == b->cap_state) {
		free(init);
		nomem(b);
		return;
	}
	m->state[m->n_state++] = (mpcc_train_mode_state){in, next, every_step, init, nbytes};
}

/* Turns initializer v into a graph input of its own name whose data is the
 * initial value of a state (returned, with *nbytes). It keeps its WEIGHT
 * flag, which is what makes `mpcc export` write its trained value back
 * (runtime/plan_source.c). */
static void *
detach(mb *b, int32_t v, size_t *nbytes)
{
	mpcc_value *val = &b->g->values[v];
	void *data = val->data;

	*nbytes = val->nbytes;
	val->data = NULL;
	val->nbytes = 0;
	val->flags &= ~(uint32_t)MPCC_VALUE_CONST;
	if (mpcc_graph_add_input(b->g, v))
		nomem(b);
	return data;
}

/* Node ni is replaced: dead, and no longer the writer of its outputs, so
 * that no pass that revives the producers of a value it needs
 * (mpcc_revive_producers) brings it back beside its replacement. */
static void
retire(mb *b, int32_t ni)
{
	mpcc_node *n = &b->g->nodes[ni];
	n->dead = true;
	for (int j = 0; j < n->n_out; j++)
		n->out[j] = MPCC_NONE;
}

/* ---------------------------------------------------------------- BatchNormalization */

static bool
is_frozen(const mpcc_train_options *o, const char *name)
{
	for (int i = 0; i < o->n_frozen_weights; i++)
		if (!strcmp(o->frozen_weights[i], name))
			return true;
	return false;
}

/* Errors unless running statistic v of BatchNormalization ni is an f32
 * initializer that no other live node reads. */
static void
check_running(mb *b, int32_t ni, int32_t v, const char *what)
{
	const mpcc_graph *g = b->g;
	const mpcc_node *n = &g->nodes[ni];
	const mpcc_value *val = &g->values[v];
	uint32_t want = MPCC_VALUE_CONST | MPCC_VALUE_WEIGHT;

	if (b->st)
		return;
	if ((val->flags & want) != want || (val->flags & MPCC_VALUE_INPUT) || !val->data ||
	    val->dtype != MPCC_DTYPE_F32) {
		b->st = mpcc_node_error(b->d, n, MPCC_ERR_UNSUPPORTED,
		                        "training mode keeps the running %s as state and "
		                        "exports it, which needs an f32 initializer; '%s' is not "
		                        "one: store the running statistics as f32 initializers",
		                        what, val->name);
		return;
	}
	for (int32_t i = 0; i < g->n_nodes; i++)
		for (int j = 0; i != ni && !g->nodes[i].dead && j < g->nodes[i].n_in; j++)
			if (g->nodes[i].in[j] == v) {
				b->st = mpcc_node_error(
				    b->d, n, MPCC_ERR_UNSUPPORTED,
				    "its running %s '%s' is also read by node '%s'; "
				    "training mode updates it, so it must be the "
				    "node's own (or keep the node in inference mode "
				    "with --freeze-weights on both statistics)",
				    what, val->name, g->nodes[i].name);
				return;
			}
}

/* The pieces of a BatchNormalization node's batch form: the batch's
 * statistics (keepdims, [1, C, 1...]), the shapes that reshape [C] to that
 * and back, and the node's attributes. */
typedef struct bn_parts {
	int32_t bm, bv;         /* batch mean and (biased) variance */
	int32_t cshape, fshape; /* [1, C, 1...] and [C] */
	int32_t keep, take;     /* momentum and 1 - momentum, made on first use */
	double eps, momentum;
} bn_parts;

/* x is [N, C, D1...]; the statistics are taken over every axis but 1. */
static void
bn_batch_stats(mb *b, const mpcc_node *n, bn_parts *p)
{
	const mpcc_value *xv = &b->g->values[n->in[0]];
	int rank = xv->rank, n_axes = 0;
	int64_t axes[MPCC_MAX_RANK], chan[MPCC_MAX_RANK], flat[1] = {xv->dims[1]};

	for (int i = 0; i < rank; i++) {
		chan[i] = i == 1 ? flat[0] : 1;
		if (i != 1)
			axes[n_axes++] = i;
	}
	p->keep = p->take = MPCC_NONE;
	p->eps = mpcc_node_attr_float(n, "epsilon", 1e-5f);
	p->momentum = mpcc_node_attr_float(n, "momentum", 0.9f);
	int32_t ax = ints(b, "axes", n_axes, axes);
	p->cshape = ints(b, "channel_shape", rank, chan);
	p->fshape = ints(b, "flat_shape", 1, flat);
	p->bm = op2(b, MPCC_OP_REDUCEMEAN, "batch_mean", n->in[0], ax);
	int32_t dev = op2(b, MPCC_OP_SUB, "deviation", n->in[0], p->bm);
	p->bv = op2(b, MPCC_OP_REDUCEMEAN, "batch_var",
	            op2(b, MPCC_OP_MUL, "deviation_sq", dev, dev), ax);
}

/* y = (x - mean) / sqrt(var + eps) * scale + B into the node's output, in
 * the order the inference kernel computes it (so an evaluation is bit for
 * bit the exported model's). */
static void
bn_normalize(mb *b, const mpcc_node *n, const bn_parts *p, int32_t mean, int32_t var)
{
	int32_t sd =
	    op1(b, MPCC_OP_SQRT, "std",
	        op2(b, MPCC_OP_ADD, "var_eps", var, scalar(b, "epsilon", MPCC_DTYPE_F32, p->eps)));
	int32_t y =
	    op2(b, MPCC_OP_DIV, "normalized", op2(b, MPCC_OP_SUB, "centered", n->in[0], mean), sd);
	y = op2(b, MPCC_OP_MUL, "scaled", y, op2(b, MPCC_OP_RESHAPE, "scale", n->in[1], p->cshape));
	int32_t bias = op2(b, MPCC_OP_RESHAPE, "bias", n->in[2], p->cshape);
	int32_t in[2] = {y, bias};
	node_done(b, node_new(b, MPCC_OP_ADD, "y", 2, in, n->out[0]));
}

/* ONNX's running update r momentum + batch (1 - momentum) of statistic
 * what ("mean" or "var"), into out (NONE: a new value); returns it. */
static int32_t
bn_running(mb *b, bn_parts *p, int32_t r, int32_t batch, const char *what, int32_t out)
{
	char kept[40], taken[40], flat[40], next[40];

	snprintf(kept, sizeof kept, "running_%s_kept", what);
	snprintf(taken, sizeof taken, "batch_%s_taken", what);
	snprintf(flat, sizeof flat, "batch_%s_flat", what);
	snprintf(next, sizeof next, "running_%s_new", what);
	if (p->keep == MPCC_NONE) {
		p->keep = scalar(b, "momentum", MPCC_DTYPE_F32, p->momentum);
		p->take = scalar(b, "one_minus_momentum", MPCC_DTYPE_F32, 1 - p->momentum);
	}
	int32_t in[2];
	in[0] = op2(b, MPCC_OP_MUL, kept, r, p->keep);
	in[1] = op2(b, MPCC_OP_RESHAPE, flat, batch, p->fshape);
	in[1] = op2(b, MPCC_OP_MUL, taken, in[1], p->take);
	return node_done(b, node_new(b, MPCC_OP_ADD, next, 2, in, out));
}

/*
 * Node ni in training mode. The statistics broadcast against x as
 * [1, C, 1...], as do scale and B reshaped. The evaluation branch reads
 * the running statistics reshaped the same way. The running update reads
 * the batch statistics flattened to [C], the running statistics' shape.
 * Both statistics frozen (--freeze-weights) keep the node in inference
 * mode; one alone is refused, since the other would then be trained by
 * the optimizer as if it were a weight.
 */
static void
switch_batchnorm(mb *b, int32_t ni, const mpcc_train_options *o)
{
	mpcc_graph *g = b->g;
	mpcc_node n = g->nodes[ni]; /* a copy: building nodes moves the array */
	int32_t x = n.in[0], rm = n.in[3], rv = n.in[4];
	bool fm = is_frozen(o, g->values[rm].name), fv = is_frozen(o, g->values[rv].name);

	if (fm && fv)
		return;
	if (fm || fv) {
		b->st = mpcc_node_error(b->d, &g->nodes[ni], MPCC_ERR_INVALID,
		                        "--freeze-weights names its running %s '%s' but not its "
		                        "running %s '%s': freeze both (the node stays in inference "
		                        "mode) or neither",
		                        fm ? "mean" : "variance", g->values[fm ? rm : rv].name,
		                        fm ? "variance" : "mean", g->values[fm ? rv : rm].name);
		return;
	}
	if (g->values[x].dtype != MPCC_DTYPE_F32) {
		b->st = mpcc_node_error(b->d, &g->nodes[ni], MPCC_ERR_UNSUPPORTED,
		                        "training mode is built for f32 X, not %s",
		                        mpcc_dtype_name(g->values[x].dtype));
		return;
	}
	if (rm == rv) {
		b->st = mpcc_node_error(b->d, &g->nodes[ni], MPCC_ERR_UNSUPPORTED,
		                        "its running mean and variance are one initializer '%s'",
		                        g->values[rm].name);
		return;
	}
	check_running(b, ni, rm, "mean");
	check_running(b, ni, rv, "variance");
	if (b->st)
		return;

	bn_parts p;
	bn_batch_stats(b, &n, &p);
	/* the mode switch, then the inference kernel's formula */
	int32_t mean = op3(b, MPCC_OP_WHERE, "mean", b->apply, p.bm,
	                   op2(b, MPCC_OP_RESHAPE, "running_mean", rm, p.cshape), MPCC_NONE);
	int32_t var = op3(b, MPCC_OP_WHERE, "var", b->apply, p.bv,
	                  op2(b, MPCC_OP_RESHAPE, "running_var", rv, p.cshape), MPCC_NONE);
	bn_normalize(b, &n, &p, mean, var);
	int32_t new_m = bn_running(b, &p, rm, p.bm, "mean", MPCC_NONE);
	int32_t new_v = bn_running(b, &p, rv, p.bv, "var", MPCC_NONE);
	if (b->st)
		return;
	size_t nm, nv;
	void *im = detach(b, rm, &nm), *iv = detach(b, rv, &nv);
	state_add(b, rm, new_m, false, im, nm);
	state_add(b, rv, new_v, false, iv, nv);
	retire(b, ni);
}

/*
 * A node the model itself marks training_mode=1 (opset 14+) normalises with
 * its batch's statistics in every run, as ONNX defines it, and writes the
 * updated running statistics to its optional outputs: the same ops as the
 * --train switch's batch branch, with no mode switch and no state (the
 * caller owns the running statistics, as inputs and outputs).
 */
static void
expand_batchnorm(mb *b, int32_t ni)
{
	mpcc_graph *g = b->g;
	mpcc_node n = g->nodes[ni];

	for (int i = 0; i < 5; i++)
		if (g->values[n.in[i]].dtype != MPCC_DTYPE_F32) {
			b->st = mpcc_node_error(b->d, &g->nodes[ni], MPCC_ERR_UNSUPPORTED,
			                        "training mode is built for f32 inputs; input %d is %s",
			                        i, mpcc_dtype_name(g->values[n.in[i]].dtype));
			return;
		}
	bn_parts p;
	bn_batch_stats(b, &n, &p);
	bn_normalize(b, &n, &p, p.bm, p.bv);
	if (n.n_out > 1 && n.out[1] != MPCC_NONE)
		bn_running(b, &p, n.in[3], p.bm, "mean", n.out[1]);
	if (n.n_out > 2 && n.out[2] != MPCC_NONE)
		bn_running(b, &p, n.in[4], p.bv, "var", n.out[2]);
	if (!b->st)
		retire(b, ni);
}

mpcc_status
mpcc_expand_training_batchnorm(mpcc_graph *g, mpcc_pass_ctx *cx, bool *expanded)
{
	mb b = {.g = g, .d = cx->d, .apply = MPCC_NONE, .step = MPCC_NONE};
	int32_t n0 = g->n_nodes;

	*expanded = false;
	for (int32_t i = 0; i < n0 && !b.st; i++) {
		const mpcc_node *n = &g->nodes[i];
		if (n->dead || n->op != MPCC_OP_BATCHNORMALIZATION ||
		    mpcc_node_attr_int(n, "training_mode", 0) == 0)
			continue;
		snprintf(b.prefix, sizeof b.prefix, "%s", n->name);
		expand_batchnorm(&b, i);
		*expanded = true;
	}
	if (!b.st && g->n_nodes > n0)
		b.st = mpcc_sort_nodes(g, cx->d);
	if (b.st && cx->d->status == MPCC_OK)
		mpcc_diag_error(cx->d, b.st, "expanding training-mode BatchNormalization failed (%s)",
		                mpcc_status_name(b.st));
	return b.st;
}

/* ---------------------------------------------------------------- Dropout */

/* The node's ratio: input 1 from opset 12 (a constant by now, or refused),
 * the attribute before; 0.5 when absent. */
static double
dropout_ratio(mb *b, int32_t ni)
{
	const mpcc_node *n = &b->g->nodes[ni];
	double r = 0.5;

	if (n->opset < 12) {
		r = mpcc_node_attr_float(n, "ratio", 0.5f);
	} else if (n->n_in > 1 && n->in[1] != MPCC_NONE) {
		const mpcc_value *v = &b->g->values[n->in[1]];
		if (!(v->flags & MPCC_VALUE_CONST) || !v->data || mpcc_value_numel(v) != 1) {
			b->st =
			    mpcc_node_error(b->d, n, MPCC_ERR_UNSUPPORTED,
			                    "training mode needs the ratio at compile time; '%s' "
			                    "is computed at run time",
			                    v->name);
			return 0;
		}
		r = mpcc_value_get_double(v, 0);
	}
	if (!(r >= 0 && r < 1))
		b->st = mpcc_node_error(b->d, n, MPCC_ERR_INVALID,
		                        "ratio must be in [0, 1), got %g", r);
	return r;
}

/* The node's seed attribute (its low 32 bits), else FNV-1a 32 of its
 * output's name: distinct Dropouts draw distinct masks, and the same model
 * draws the same ones in every compile. */
static uint32_t
dropout_seed(const mpcc_graph *g, const mpcc_node *n)
{
	const mpcc_attr *a = mpcc_node_attr(n, "seed");
	const char *s = g->values[n->out[0]].name;
	uint32_t h = SEED_BASIS;

	if (a && a->kind == MPCC_ATTR_INT)
		return (uint32_t)a->i;
	for (; s && *s; s++)
		h = (h ^ (uint8_t)*s) * SEED_PRIME;
	return h;
}

/* The count of training steps, made with the first Dropout: an int64
 * state from 0, one further after every training step. */
static int32_t
dropout_step(mb *b)
{
	if (b->step != MPCC_NONE || b->st)
		return b->step;
	b->step = input_new(b, "/train/dropout_step", MPCC_DTYPE_I64, 0, NULL);
	int64_t *one = malloc(sizeof(int64_t)), *zero = calloc(1, sizeof(int64_t));
	if (one)
		*one = 1;
	int32_t next = op2(b, MPCC_OP_ADD, "/train/dropout_step/plus1", b->step,
	                   cst(b, "/train/dropout_step/one", MPCC_DTYPE_I64, 0, NULL, one));
	state_add(b, b->step, next, true, zero, sizeof(int64_t));
	return b->step;
}

/*
 * Node ni in training mode: keep = HashRandomUniform(step) >= ratio (f32,
 * x's shape); y = Where(apply, Where(keep, x * (1 / (1 - ratio)), 0), x).
 * The product by a constant and the Wheres follow x's precision, so a
 * low-precision activation stays low. The mask output, where the node has
 * one, is keep in a training step and all true in an evaluation (bool, or
 * x's dtype before opset 10). A ratio of 0 changes nothing either way: the
 * node stays as it is.
 */
static void
switch_dropout(mb *b, int32_t ni)
{
	mpcc_graph *g = b->g;
	mpcc_node n = g->nodes[ni];
	int32_t x = n.in[0];
	double ratio = dropout_ratio(b, ni);

	if (b->st || ratio == 0)
		return;
	mpcc_dtype t = g->values[x].dtype;
	int rank = g->values[x].rank;
	int64_t dims[MPCC_MAX_RANK];
	for (int i = 0; i < rank; i++)
		dims[i] = g->values[x].dims[i];
	uint32_t seed = dropout_seed(g, &n);
	int32_t step = dropout_step(b);

	int32_t ui = node_new(b, MPCC_OP_HASHRANDOMUNIFORM, "uniform", 1, &step, MPCC_NONE);
	mpcc_attr *a = attr(b, ui, "shape", MPCC_ATTR_INTS);
	if (a && !(a->ints = mpcc_arena_alloc(&g->arena, sizeof(int64_t) * (size_t)(rank + 1))))
		nomem(b);
	if (!b->st) {
		memcpy(a->ints, dims, sizeof(int64_t) * (size_t)rank);
		a->n = rank;
	}
	if ((a = attr(b, ui, "seed", MPCC_ATTR_INT)))
		a->i = seed;
	int32_t keep = op2(b, MPCC_OP_GREATEROREQUAL, "keep", node_done(b, ui),
	                   scalar(b, "ratio", MPCC_DTYPE_F32, ratio));
	int32_t kept = op2(b, MPCC_OP_MUL, "kept", x, scalar(b, "inv_keep", t, 1 / (1 - ratio)));
	int32_t dropped =
	    op3(b, MPCC_OP_WHERE, "dropped", keep, kept, scalar(b, "zero", t, 0), MPCC_NONE);
	op3(b, MPCC_OP_WHERE, "y", b->apply, dropped, x, n.out[0]);
	if (n.n_out > 1 && n.out[1] != MPCC_NONE) {
		int32_t evaluating = op1(b, MPCC_OP_NOT, "evaluating", b->apply);
		bool as_bool = g->values[n.out[1]].dtype == MPCC_DTYPE_BOOL;
		int32_t in[2] = {keep, evaluating};
		int32_t mi = node_new(b, MPCC_OP_OR, as_bool ? "mask" : "mask_bool", 2, in,
		                      as_bool ? n.out[1] : MPCC_NONE);
		int32_t mask = node_done(b, mi);
		if (!as_bool) {
			int32_t ci = node_new(b, MPCC_OP_CAST, "mask", 1, &mask, n.out[1]);
			if ((a = attr(b, ci, "to", MPCC_ATTR_INT)))
				a->i = mpcc_dtype_to_onnx(t);
			node_done(b, ci);
		}
	}
	if (b->st)
		return;
	retire(b, ni);
}

/* ---------------------------------------------------------------- driver */

/* Marks in reach every value the loss depends on through live nodes (the
 * node array is in topological order). */
static void
mark_reaching(const mpcc_graph *g, int32_t loss, char *reach)
{
	reach[loss] = 1;
	for (int32_t i = g->n_nodes - 1; i >= 0; i--) {
		const mpcc_node *n = &g->nodes[i];
		bool any = false;
		for (int j = 0; !n->dead && j < n->n_out; j++)
			any = any || (n->out[j] != MPCC_NONE && reach[n->out[j]]);
		for (int j = 0; any && j < n->n_in; j++)
			if (n->in[j] != MPCC_NONE)
				reach[n->in[j]] = 1;
	}
}

mpcc_status
mpcc_train_switch_modes(mpcc_graph *g, const mpcc_train_options *o, int32_t loss, int32_t apply,
                        mpcc_train_modes *out, mpcc_diag *d)
{
	mb b = {.g = g, .d = d, .out = out, .apply = apply, .step = MPCC_NONE};
	int32_t n0 = g->n_nodes;
	char *reach = calloc((size_t)g->n_values + 1, 1);

	memset(out, 0, sizeof(*out));
	if (!reach)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM,
		                       "out of memory switching to training mode");
	mark_reaching(g, loss, reach);
	for (int32_t i = 0; i < n0 && !b.st; i++) {
		const mpcc_node *n = &g->nodes[i];
		if (n->dead || (n->op != MPCC_OP_BATCHNORMALIZATION && n->op != MPCC_OP_DROPOUT) ||
		    !reach[n->out[0]])
			continue;
		snprintf(b.prefix, sizeof b.prefix, "train/%s", n->name);
		if (n->op == MPCC_OP_BATCHNORMALIZATION)
			switch_batchnorm(&b, i, o);
		else
			switch_dropout(&b, i);
	}
	free(reach);
	if (!b.st && g->n_nodes > n0)
		b.st = mpcc_sort_nodes(g, d);
	if (b.st && d->status == MPCC_OK)
		mpcc_diag_error(d, b.st, "training: switching to training mode failed (%s)",
		                mpcc_status_name(b.st));
	return b.st;
}

void
mpcc_train_modes_fini(mpcc_train_modes *m)
{
	for (int i = 0; i < m->n_state; i++)
		free(m->state[i].init);
	free(m->state);
	memset(m, 0, sizeof(*m));
}
