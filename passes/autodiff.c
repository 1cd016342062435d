/*
 * autodiff.c - reverse-mode autodiff over the graph IR (docs/training.md,
 * "Autodiff"): the driver and the node builder the gradient rules use.
 *
 * Two sweeps decide what to differentiate: forward from the wrt values
 * (through float values only: an integer or bool value carries no gradient),
 * backward from the loss. A node is on a path when an input depends on a wrt
 * and an output reaches the loss; only those nodes get their rule applied,
 * and only for the inputs that depend on a wrt. Then the nodes are visited in
 * reverse order (the node array is topological), so when a node is reached
 * every consumer of its outputs has already added its contribution; a value
 * with several consumers gets the sum of their contributions through Add.
 *
 * A rule appends ordinary ONNX nodes (every op has a kernel, so no new
 * kernels): MatMul's dA = dY.B^T and dB = A^T.dY with broadcast batch dims
 * summed, Relu's Where(x > 0, dY, 0), broadcasting arithmetic reducing dY to
 * the operand's shape with ReduceSum, and so on. The rules live by family in
 * passes/autodiff_rules.c (elementwise, matrix products, movement,
 * reductions, losses) and passes/autodiff_nn.c (convolution, pooling,
 * normalisation); the tables at the end of each list every op. Each new node
 * is shape-inferred as it is created, so rules can read the shapes of what
 * they built, and every gradient is checked to have exactly its forward
 * value's shape and dtype before it is accumulated.
 *
 * Rules build through a small builder (declared in passes/autodiff_impl.h)
 * whose status is sticky (like a parse context): once a step fails, later
 * steps do nothing and return MPCC_NONE, so a rule reads as straight-line
 * algebra and the driver checks the status once per node. Constants (axes,
 * shapes, zeros) are constant values; folding is left to the caller's next
 * mpcc_infer_and_fold.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/lower.h"
#include "passes/autodiff.h"
#include "passes/autodiff_impl.h"
#include "passes/passes.h"

/* ---------------------------------------------------------------- builder */

mpcc_ad_shape
mpcc_ad_shape_of(const mpcc_ad *a, int32_t v)
{
	mpcc_ad_shape s = {0};
	const mpcc_value *x = &a->g->values[v];
	s.rank = x->rank;
	for (int i = 0; i < x->rank; i++)
		s.dims[i] = x->dims[i];
	return s;
}

static bool
shape_eq(mpcc_ad_shape x, mpcc_ad_shape y)
{
	if (x.rank != y.rank)
		return false;
	for (int i = 0; i < x.rank; i++)
		if (x.dims[i] != y.dims[i])
			return false;
	return true;
}

int64_t
mpcc_ad_numel(mpcc_ad_shape s)
{
	int64_t n = 1;
	for (int i = 0; i < s.rank; i++)
		n *= s.dims[i];
	return n;
}

mpcc_dtype
mpcc_ad_dtype_of(const mpcc_ad *a, int32_t v)
{
	return a->g->values[v].dtype;
}

static bool
is_float(const mpcc_ad *a, int32_t v)
{
	return v != MPCC_NONE && mpcc_dtype_is_float(a->g->values[v].dtype);
}

void
mpcc_ad_nomem(mpcc_ad *a)
{
	if (!a->st)
		a->st = mpcc_diag_error(a->d, MPCC_ERR_NOMEM, "out of memory in autodiff");
}

void
mpcc_ad_fail(mpcc_ad *a, mpcc_status st, const char *msg)
{
	if (!a->st)
		a->st = mpcc_node_error(a->d, &a->n, st, "%s", msg);
}

/* Stops the rule with "no gradient rule for <what>", naming the node. */
void
mpcc_ad_unsupported(mpcc_ad *a, const char *what)
{
	if (!a->st)
		a->st = mpcc_node_error(a->d, &a->n, MPCC_ERR_UNSUPPORTED,
		                        "no gradient rule for %s", what);
}

/* "grad/<forward node>/<what>", made unique among the value names. */
static void
grad_name(mpcc_ad *a, const char *what, char *buf, size_t cap)
{
	snprintf(buf, cap, "grad/%s/%s", a->n.name, what);
	size_t len = strlen(buf);
	if (len > cap - 16)
		len = cap - 16;
	for (int k = 2; mpcc_graph_find_value(a->g, buf) != MPCC_NONE; k++)
		snprintf(buf + len, cap - len, "_%d", k);
}

static int32_t
value_new(mpcc_ad *a, const char *what)
{
	char name[512];
	int32_t v;
	if (a->st)
		return MPCC_NONE;
	grad_name(a, what, name, sizeof name);
	v = mpcc_graph_add_value(a->g, name);
	if (v == MPCC_NONE)
		mpcc_ad_nomem(a);
	return v;
}

/* A node named after its first output; attributes may be added before
 * node_done infers it. */
int32_t
mpcc_ad_node_new(mpcc_ad *a, mpcc_op op, const char *what, int n_in, const int32_t *in, int n_out)
{
	int32_t out[2], ni;
	if (n_out < 1 || n_out > 2) {
		mpcc_ad_fail(a, MPCC_ERR_INTERNAL, "autodiff builds nodes of one or two outputs");
		return MPCC_NONE;
	}
	for (int j = 0; j < n_out; j++)
		out[j] = value_new(a, j ? "aux" : what);
	if (a->st)
		return MPCC_NONE;
	ni = mpcc_graph_add_node(a->g, op, a->g->values[out[0]].name, n_in, in, n_out, out);
	if (ni == MPCC_NONE) {
		mpcc_ad_nomem(a);
		return MPCC_NONE;
	}
	a->g->nodes[ni].opset = MPCC_AD_OPSET;
	a->g->nodes[ni].src_index = -1;
	return ni;
}

/* Infers node ni's outputs with its op's shape function; returns output 0. */
int32_t
mpcc_ad_node_done(mpcc_ad *a, int32_t ni)
{
	if (a->st || ni == MPCC_NONE)
		return MPCC_NONE;
	const mpcc_op_rule *r = mpcc_op_rule_get(a->g->nodes[ni].op);
	if (!r || !r->infer) {
		mpcc_ad_fail(a, MPCC_ERR_INTERNAL, "gradient uses an op without a shape function");
		return MPCC_NONE;
	}
	mpcc_status st = r->infer(a->g, ni, a->d);
	if (st) {
		a->st = st;
		return MPCC_NONE;
	}
	return a->g->nodes[ni].out[0];
}

mpcc_attr *
mpcc_ad_attr(mpcc_ad *a, int32_t ni, const char *name, mpcc_attr_kind kind)
{
	mpcc_attr *at;
	if (a->st || ni == MPCC_NONE)
		return NULL;
	at = mpcc_node_add_attr(a->g, ni, name, kind);
	if (!at)
		mpcc_ad_nomem(a);
	return at;
}

void
mpcc_ad_attr_int(mpcc_ad *a, int32_t ni, const char *name, int64_t v)
{
	mpcc_attr *at = mpcc_ad_attr(a, ni, name, MPCC_ATTR_INT);
	if (at)
		at->i = v;
}

void
mpcc_ad_attr_float(mpcc_ad *a, int32_t ni, const char *name, float v)
{
	mpcc_attr *at = mpcc_ad_attr(a, ni, name, MPCC_ATTR_FLOAT);
	if (at)
		at->f = v;
}

void
mpcc_ad_attr_str(mpcc_ad *a, int32_t ni, const char *name, const char *v)
{
	mpcc_attr *at = mpcc_ad_attr(a, ni, name, MPCC_ATTR_STRING);
	if (at)
		at->s = v; /* static strings only */
}

void
mpcc_ad_attr_ints(mpcc_ad *a, int32_t ni, const char *name, int n, const int64_t *v)
{
	mpcc_attr *at = mpcc_ad_attr(a, ni, name, MPCC_ATTR_INTS);
	if (!at)
		return;
	at->n = n;
	at->ints = mpcc_arena_alloc(&a->g->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
	if (!at->ints) {
		mpcc_ad_nomem(a);
		return;
	}
	memcpy(at->ints, v, sizeof(int64_t) * (size_t)n);
}

int32_t
mpcc_ad_op1(mpcc_ad *a, mpcc_op op, const char *what, int32_t x)
{
	return mpcc_ad_node_done(a, mpcc_ad_node_new(a, op, what, 1, &x, 1));
}

int32_t
mpcc_ad_op2(mpcc_ad *a, mpcc_op op, const char *what, int32_t x, int32_t y)
{
	int32_t in[2] = {x, y};
	return mpcc_ad_node_done(a, mpcc_ad_node_new(a, op, what, 2, in, 1));
}

int32_t
mpcc_ad_op3(mpcc_ad *a, mpcc_op op, const char *what, int32_t x, int32_t y, int32_t z)
{
	int32_t in[3] = {x, y, z};
	return mpcc_ad_node_done(a, mpcc_ad_node_new(a, op, what, 3, in, 1));
}

/* ---------------------------------------------------------------- constants */

/* A constant of dtype t and shape s taking ownership of malloc'd data. */
static int32_t
cst_own(mpcc_ad *a, const char *what, mpcc_dtype t, mpcc_ad_shape s, void *data)
{
	int32_t v = data ? value_new(a, what) : MPCC_NONE;
	if (!data)
		mpcc_ad_nomem(a);
	if (v == MPCC_NONE) {
		free(data);
		return MPCC_NONE;
	}
	mpcc_value *x = &a->g->values[v];
	x->dtype = t;
	x->rank = s.rank;
	memcpy(x->dims, s.dims, sizeof(int64_t) * (size_t)s.rank);
	mpcc_value_set_data(x, data, (size_t)mpcc_ad_numel(s) * mpcc_dtype_size(t));
	return v;
}

/* A float constant: vals[numel] or, when vals is NULL, fill everywhere. */
int32_t
mpcc_ad_cst_float(mpcc_ad *a, const char *what, mpcc_dtype t, mpcc_ad_shape s, const double *vals,
                  double fill)
{
	int64_t n = mpcc_ad_numel(s);
	size_t es = mpcc_dtype_size(t);
	char *p = a->st ? NULL : malloc((size_t)(n ? n : 1) * es);
	for (int64_t i = 0; p && i < n; i++) {
		double x = vals ? vals[i] : fill;
		float f = (float)x;
		uint16_t h;
		switch (t) {
		case MPCC_DTYPE_F64:
			memcpy(p + i * es, &x, es);
			break;
		case MPCC_DTYPE_F32:
			memcpy(p + i * es, &f, es);
			break;
		default:
			h = t == MPCC_DTYPE_F16 ? mpcc_f32_to_f16(f) : mpcc_f32_to_bf16(f);
			memcpy(p + i * es, &h, es);
			break;
		}
	}
	return cst_own(a, what, t, s, p);
}

int32_t
mpcc_ad_cst_scalar(mpcc_ad *a, mpcc_dtype t, double v)
{
	mpcc_ad_shape s = {0};
	return mpcc_ad_cst_float(a, "c", t, s, NULL, v);
}

/* An integer constant of dtype t (i32 or i64) from vals[numel]. */
int32_t
mpcc_ad_cst_int(mpcc_ad *a, const char *what, mpcc_dtype t, mpcc_ad_shape s, const int64_t *vals)
{
	int64_t n = mpcc_ad_numel(s);
	size_t es = mpcc_dtype_size(t);
	char *p = a->st ? NULL : malloc((size_t)(n ? n : 1) * es);
	for (int64_t i = 0; p && i < n; i++) {
		int32_t v32 = (int32_t)vals[i];
		memcpy(p + i * es, t == MPCC_DTYPE_I32 ? (void *)&v32 : (void *)&vals[i], es);
	}
	return cst_own(a, what, t, s, p);
}

/* A 1-D int64 constant: axes, shapes, pads. */
int32_t
mpcc_ad_cst_ints(mpcc_ad *a, int n, const int64_t *v)
{
	mpcc_ad_shape s = {1, {n}};
	return mpcc_ad_cst_int(a, "ints", MPCC_DTYPE_I64, s, v);
}

/* ---------------------------------------------------------------- common ops */

int32_t
mpcc_ad_mul(mpcc_ad *a, int32_t x, int32_t y)
{
	return mpcc_ad_op2(a, MPCC_OP_MUL, "mul", x, y);
}

int32_t
mpcc_ad_mulc(mpcc_ad *a, int32_t x, double c)
{
	return a->st ? MPCC_NONE
	             : mpcc_ad_mul(a, x, mpcc_ad_cst_scalar(a, mpcc_ad_dtype_of(a, x), c));
}

int32_t
mpcc_ad_add(mpcc_ad *a, int32_t x, int32_t y)
{
	return mpcc_ad_op2(a, MPCC_OP_ADD, "add", x, y);
}

int32_t
mpcc_ad_addc(mpcc_ad *a, int32_t x, double c)
{
	return a->st ? MPCC_NONE
	             : mpcc_ad_add(a, x, mpcc_ad_cst_scalar(a, mpcc_ad_dtype_of(a, x), c));
}

/* c - x */
int32_t
mpcc_ad_rsubc(mpcc_ad *a, double c, int32_t x)
{
	return a->st ? MPCC_NONE
	             : mpcc_ad_op2(a, MPCC_OP_SUB, "sub",
	                           mpcc_ad_cst_scalar(a, mpcc_ad_dtype_of(a, x), c), x);
}

int32_t
mpcc_ad_reshape(mpcc_ad *a, int32_t x, mpcc_ad_shape s)
{
	if (a->st || shape_eq(mpcc_ad_shape_of(a, x), s))
		return x;
	int32_t in[2] = {x, mpcc_ad_cst_ints(a, s.rank, s.dims)};
	int32_t ni = mpcc_ad_node_new(a, MPCC_OP_RESHAPE, "reshape", 2, in, 1);
	mpcc_ad_attr_int(a, ni, "allowzero", 1); /* a 0 in s is an empty dim */
	return mpcc_ad_node_done(a, ni);
}

int32_t
mpcc_ad_expand(mpcc_ad *a, int32_t x, mpcc_ad_shape s)
{
	if (a->st || shape_eq(mpcc_ad_shape_of(a, x), s))
		return x;
	return mpcc_ad_op2(a, MPCC_OP_EXPAND, "expand", x, mpcc_ad_cst_ints(a, s.rank, s.dims));
}

int32_t
mpcc_ad_zeros(mpcc_ad *a, mpcc_dtype t, mpcc_ad_shape s)
{
	return a->st ? MPCC_NONE : mpcc_ad_expand(a, mpcc_ad_cst_scalar(a, t, 0), s);
}

int32_t
mpcc_ad_transpose(mpcc_ad *a, int32_t x, int n, const int64_t *perm)
{
	int32_t ni = mpcc_ad_node_new(a, MPCC_OP_TRANSPOSE, "transpose", 1, &x, 1);
	mpcc_ad_attr_ints(a, ni, "perm", n, perm);
	return mpcc_ad_node_done(a, ni);
}

/* Swaps the last two dims (rank >= 2). */
int32_t
mpcc_ad_transpose_last2(mpcc_ad *a, int32_t x)
{
	int64_t perm[MPCC_MAX_RANK];
	int r = a->st ? 2 : mpcc_ad_shape_of(a, x).rank;
	for (int i = 0; i < r; i++)
		perm[i] = i;
	perm[r - 2] = r - 1;
	perm[r - 1] = r - 2;
	return mpcc_ad_transpose(a, x, r, perm);
}

int32_t
mpcc_ad_slice(mpcc_ad *a, int32_t x, int n, const int64_t *starts, const int64_t *ends,
              const int64_t *axes)
{
	int32_t in[4] = {x, mpcc_ad_cst_ints(a, n, starts), mpcc_ad_cst_ints(a, n, ends),
	                 mpcc_ad_cst_ints(a, n, axes)};
	return mpcc_ad_node_done(a, mpcc_ad_node_new(a, MPCC_OP_SLICE, "slice", 4, in, 1));
}

int32_t
mpcc_ad_reduce(mpcc_ad *a, mpcc_op op, int32_t x, int n_axes, const int64_t *axes, bool keep)
{
	if (a->st || n_axes == 0)
		return x;
	int32_t in[2] = {x, mpcc_ad_cst_ints(a, n_axes, axes)};
	int32_t ni = mpcc_ad_node_new(a, op, op == MPCC_OP_REDUCESUM ? "sum" : "mean", 2, in, 1);
	mpcc_ad_attr_int(a, ni, "keepdims", keep);
	return mpcc_ad_node_done(a, ni);
}

/* Axes [from, rank). */
int
mpcc_ad_axes_from(int from, int rank, int64_t *axes)
{
	for (int i = from; i < rank; i++)
		axes[i - from] = i;
	return rank - from;
}

/*
 * dx, computed at the broadcast shape of an elementwise op, summed over the
 * axes the operand was broadcast along (leading axes it lacks, and its
 * size-1 axes) and reshaped to the operand's shape.
 */
int32_t
mpcc_ad_unbroadcast(mpcc_ad *a, int32_t dx, mpcc_ad_shape to)
{
	if (a->st)
		return MPCC_NONE;
	mpcc_ad_shape s = mpcc_ad_shape_of(a, dx);
	int64_t axes[MPCC_MAX_RANK];
	int n = 0;
	for (int i = 0; i < s.rank; i++) {
		int j = i - (s.rank - to.rank);
		if (j < 0 || (to.dims[j] == 1 && s.dims[i] != 1))
			axes[n++] = i;
	}
	return mpcc_ad_reshape(a, mpcc_ad_reduce(a, MPCC_OP_REDUCESUM, dx, n, axes, true), to);
}

int32_t
mpcc_ad_cast(mpcc_ad *a, int32_t x, mpcc_dtype t)
{
	if (a->st || mpcc_ad_dtype_of(a, x) == t)
		return x;
	int32_t ni = mpcc_ad_node_new(a, MPCC_OP_CAST, "cast", 1, &x, 1);
	mpcc_ad_attr_int(a, ni, "to", mpcc_dtype_to_onnx(t));
	return mpcc_ad_node_done(a, ni);
}

/* Reads a forward node's int list from input i (which must be constant) or,
 * when that input is absent, from attribute name. Returns the count, -1 when
 * neither is given, -2 (with the error set) when the input is not constant. */
int
mpcc_ad_node_ints(mpcc_ad *a, int i, const char *name, int64_t *out, int max)
{
	if (MPCC_AD_HAS_IN(i)) {
		const mpcc_value *v = &a->g->values[MPCC_AD_IN(i)];
		int64_t n = mpcc_value_numel(v);
		if (!(v->flags & MPCC_VALUE_CONST) || !v->data || n < 0 || n > max) {
			mpcc_ad_fail(
			    a, MPCC_ERR_UNSUPPORTED,
			    "no gradient rule for a run-time axes, starts, ends or steps input");
			return -2;
		}
		for (int64_t k = 0; k < n; k++)
			out[k] = mpcc_value_get_int(v, k);
		return (int)n;
	}
	const mpcc_attr *at = mpcc_node_attr(&a->n, name);
	if (!at || at->kind != MPCC_ATTR_INTS)
		return -1;
	int n = at->n < max ? at->n : max;
	memcpy(out, at->ints, sizeof(int64_t) * (size_t)n);
	return n;
}

/* ---------------------------------------------------------------- the driver */

/* The rule tables, in the order they are searched (no op is in two). */
static const mpcc_ad_rule *const tables[] = {mpcc_ad_rules, mpcc_ad_rules_nn};

static mpcc_ad_rule_fn
rule_for(mpcc_op op)
{
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
		for (const mpcc_ad_rule *r = tables[t]; r->op != MPCC_OP_INVALID; r++)
			if (r->op == op)
				return r->fn;
	return NULL;
}

/* A node with a subgraph (If, Loop, Scan) may read outer values that are
 * not among its inputs. */
static bool
has_subgraph(const mpcc_node *n)
{
	for (int i = 0; i < n->n_attr; i++)
		if (n->attr[i].kind == MPCC_ATTR_GRAPH)
			return true;
	return false;
}

/*
 * Forward: float values depending on a wrt. Backward: values the loss
 * depends on. Dead nodes count too: a folded node still links a weight
 * initializer to its consumers. A node with a subgraph counts as depending
 * on a wrt, so if it reaches the loss the pass stops at it rather than
 * miss a gradient through the values its subgraph reads.
 */
static void
reach(mpcc_ad *a, int32_t loss, const int32_t *wrt, int n_wrt)
{
	mpcc_graph *g = a->g;
	for (int i = 0; i < n_wrt; i++)
		a->fwd[wrt[i]] = 1;
	for (int32_t i = 0; i < a->n_nodes0; i++) {
		const mpcc_node *n = &g->nodes[i];
		bool any = has_subgraph(n);
		for (int j = 0; j < n->n_in; j++)
			any = any || (n->in[j] != MPCC_NONE && a->fwd[n->in[j]]);
		for (int j = 0; any && j < n->n_out; j++)
			if (is_float(a, n->out[j]))
				a->fwd[n->out[j]] = 1;
	}
	a->bwd[loss] = 1;
	for (int32_t i = a->n_nodes0 - 1; i >= 0; i--) {
		const mpcc_node *n = &g->nodes[i];
		bool any = false;
		for (int j = 0; j < n->n_out; j++)
			any = any || (n->out[j] != MPCC_NONE && a->bwd[n->out[j]]);
		for (int j = 0; any && j < n->n_in; j++)
			if (n->in[j] != MPCC_NONE)
				a->bwd[n->in[j]] = 1;
	}
}

/* Adds contribution c to the gradient of forward value v, after checking it
 * has v's shape and dtype. */
static void
accumulate(mpcc_ad *a, int32_t v, int32_t c, int input)
{
	if (a->st || c == MPCC_NONE)
		return;
	if (!shape_eq(mpcc_ad_shape_of(a, c), mpcc_ad_shape_of(a, v)) ||
	    mpcc_ad_dtype_of(a, c) != mpcc_ad_dtype_of(a, v)) {
		a->st = mpcc_node_error(a->d, &a->n, MPCC_ERR_INTERNAL,
		                        "gradient of input %d has the wrong shape or dtype", input);
		return;
	}
	if (a->grad[v] == MPCC_NONE) {
		a->grad[v] = c;
		return;
	}
	char what[32];
	snprintf(what, sizeof what, "acc%d", input);
	a->grad[v] = mpcc_ad_op2(a, MPCC_OP_ADD, what, a->grad[v], c);
}

/*
 * The Adds that accumulate() builds are marked by the name it gives them at
 * creation, "grad/<consumer>/acc<input>" (plus "_<k>" where that is taken:
 * grad_name), together with src_index -1 (inserted). No rule names a node
 * "acc<digits>", and a forward node's name only ever appears between
 * "grad/" and the last '/', so the last component decides. Why a name and
 * not a mark in the node: mpcc_node has no spare field for it (src_index is
 * auto mode's stable id, -1 for every inserted node; an attribute Add does
 * not accept is an error in check_ops; a new flag would be a change to the
 * IR), and the name is what the dumps show anyway. Keeping the test here,
 * beside the code that names the nodes, makes the name the contract of
 * this one function.
 */
bool
mpcc_autodiff_is_accumulation(const mpcc_node *n)
{
	if (n->op != MPCC_OP_ADD || n->src_index >= 0 || !n->name ||
	    strncmp(n->name, "grad/", 5) != 0)
		return false;
	static const char digits[] = "0123456789";
	const char *s = strrchr(n->name, '/') + 1;
	size_t k;
	if (strncmp(s, "acc", 3) != 0 || (k = strspn(s + 3, digits)) == 0)
		return false;
	s += 3 + k;
	if (*s == '_' && (k = strspn(s + 1, digits)) > 0)
		s += 1 + k;
	return *s == '\0';
}

/* Checks that node n's values carry inferred shapes. */
static bool
inferred(const mpcc_ad *a, const mpcc_node *n)
{
	for (int j = 0; j < n->n_in + n->n_out; j++) {
		int32_t v = j < n->n_in ? n->in[j] : n->out[j - n->n_in];
		if (v != MPCC_NONE &&
		    (a->g->values[v].dtype == MPCC_DTYPE_UNDEF || a->g->values[v].rank < 0))
			return false;
	}
	return true;
}

/* Differentiates forward node ni (on a path): collects its outputs'
 * gradients, runs its rule and accumulates what it returns. */
static void
differentiate(mpcc_ad *a, int32_t ni)
{
	int32_t dy[64], dx[64];
	bool need[64], any = false;
	a->n = a->g->nodes[ni];
	if (a->n.n_in > 64 || a->n.n_out > 64) {
		mpcc_ad_unsupported(a, "more than 64 inputs or outputs");
		return;
	}
	for (int j = 0; j < a->n.n_out; j++) {
		dy[j] = MPCC_AD_OUT(j) != MPCC_NONE ? a->grad[MPCC_AD_OUT(j)] : MPCC_NONE;
		any = any || dy[j] != MPCC_NONE;
	}
	if (!any)
		return;
	if (!inferred(a, &a->n)) {
		mpcc_ad_fail(a, MPCC_ERR_INVALID,
		             "shapes are not inferred (run mpcc_infer_and_fold first)");
		return;
	}
	mpcc_ad_rule_fn fn = rule_for(a->n.op);
	if (!fn) {
		a->st = mpcc_node_error(a->d, &a->n, MPCC_ERR_UNSUPPORTED,
		                        "no gradient rule for %s%s", mpcc_op_name(a->n.op),
		                        has_subgraph(&a->n)
		                            ? " (its subgraph may read a differentiated value, and "
		                              "its outputs reach the loss)"
		                            : ", which lies on a path from a differentiated value "
		                              "to the loss");
		return;
	}
	for (int j = 0; j < a->n.n_in; j++) {
		need[j] = MPCC_AD_HAS_IN(j) && a->fwd[MPCC_AD_IN(j)];
		dx[j] = MPCC_NONE;
	}
	fn(a, dy, need, dx);
	for (int j = 0; j < a->n.n_in && !a->st; j++)
		if (need[j])
			accumulate(a, MPCC_AD_IN(j), dx[j], j);
}

/* The loss's own gradient: seed cast to its dtype and expanded to its
 * shape, or ones. */
static int32_t
seed_grad(mpcc_ad *a, int32_t loss, int32_t seed)
{
	mpcc_ad_shape ls = mpcc_ad_shape_of(a, loss);
	mpcc_dtype t = mpcc_ad_dtype_of(a, loss);
	memset(&a->n, 0, sizeof a->n);
	a->n.name = a->g->values[loss].name;
	a->n.op = MPCC_OP_IDENTITY;
	if (seed == MPCC_NONE)
		return ls.rank ? mpcc_ad_expand(a, mpcc_ad_cst_scalar(a, t, 1), ls)
		               : mpcc_ad_cst_scalar(a, t, 1);
	mpcc_ad_shape ss = mpcc_ad_shape_of(a, seed);
	bool ok = is_float(a, seed) && ss.rank <= ls.rank;
	for (int i = 0; ok && i < ss.rank; i++) {
		int64_t sd = ss.dims[i], ld = ls.dims[ls.rank - ss.rank + i];
		ok = sd == 1 || sd == ld;
	}
	if (!ok) {
		a->st = mpcc_diag_error(a->d, MPCC_ERR_INVALID,
		                        "autodiff: seed '%s' is not a float value broadcastable to "
		                        "the loss '%s'",
		                        a->g->values[seed].name, a->n.name);
		return MPCC_NONE;
	}
	return mpcc_ad_expand(a, mpcc_ad_cast(a, seed, t), ls);
}

/* Makes live again the dead, unfolded nodes whose outputs the new nodes
 * need (a caller may have run dead-code elimination before us). */
static mpcc_status
revive(mpcc_ad *a)
{
	mpcc_graph *g = a->g;
	char *needed = calloc((size_t)g->n_values + 1, 1);
	if (!needed)
		return mpcc_diag_error(a->d, MPCC_ERR_NOMEM, "out of memory in autodiff");
	for (int32_t i = a->n_nodes0; i < g->n_nodes; i++)
		for (int j = 0; j < g->nodes[i].n_in; j++)
			if (g->nodes[i].in[j] != MPCC_NONE)
				needed[g->nodes[i].in[j]] = 1;
	mpcc_revive_producers(g, needed, a->n_nodes0);
	free(needed);
	return MPCC_OK;
}

static mpcc_status
check_args(mpcc_graph *g, int32_t loss, int32_t seed, const int32_t *wrt, int n_wrt, mpcc_diag *d)
{
	if (loss < 0 || loss >= g->n_values || !mpcc_dtype_is_float(g->values[loss].dtype) ||
	    g->values[loss].rank < 0)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "autodiff: the loss must be a float value with an inferred "
		                       "shape");
	if (seed != MPCC_NONE && (seed < 0 || seed >= g->n_values))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "autodiff: seed %d is out of range",
		                       (int)seed);
	if (n_wrt < 0 || (n_wrt > 0 && !wrt))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "autodiff: bad wrt list");
	for (int i = 0; i < n_wrt; i++)
		if (wrt[i] < 0 || wrt[i] >= g->n_values ||
		    !mpcc_dtype_is_float(g->values[wrt[i]].dtype))
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "autodiff: wrt[%d] is not a float value", i);
	return MPCC_OK;
}

mpcc_status
mpcc_autodiff(mpcc_graph *g, int32_t loss, int32_t seed, const int32_t *wrt, int n_wrt,
              int32_t *grads, mpcc_diag *d)
{
	mpcc_ad a = {.g = g, .d = d, .n_values0 = g->n_values, .n_nodes0 = g->n_nodes};
	mpcc_status st;

	for (int i = 0; i < n_wrt && grads; i++)
		grads[i] = MPCC_NONE;
	if ((st = check_args(g, loss, seed, wrt, n_wrt, d)))
		return st;
	a.grad = malloc(sizeof(int32_t) * (size_t)(a.n_values0 + 1));
	a.fwd = calloc((size_t)a.n_values0 + 1, 1);
	a.bwd = calloc((size_t)a.n_values0 + 1, 1);
	if (!a.grad || !a.fwd || !a.bwd) {
		st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory in autodiff");
		goto out;
	}
	for (int32_t v = 0; v < a.n_values0; v++)
		a.grad[v] = MPCC_NONE;
	reach(&a, loss, wrt, n_wrt);
	if (a.fwd[loss])
		a.grad[loss] = seed_grad(&a, loss, seed);
	for (int32_t i = a.n_nodes0 - 1; i >= 0 && !a.st; i--) {
		const mpcc_node *n = &g->nodes[i];
		bool in_fwd = has_subgraph(n), out_bwd = false;
		for (int j = 0; j < n->n_in; j++)
			in_fwd = in_fwd || (n->in[j] != MPCC_NONE && a.fwd[n->in[j]]);
		for (int j = 0; j < n->n_out; j++)
			out_bwd = out_bwd || (n->out[j] != MPCC_NONE && a.bwd[n->out[j]]);
		if (in_fwd && out_bwd)
			differentiate(&a, i);
	}
	if ((st = a.st) || (st = revive(&a)))
		goto out;
	for (int i = 0; i < n_wrt; i++)
		grads[i] = a.grad[wrt[i]];
out:
	free(a.grad);
	free(a.fwd);
	free(a.bwd);
	return st;
}
