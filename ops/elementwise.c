/*
 * elementwise.c - rules of the elementwise family: unary math, activations,
 * Cast, Identity, Dropout, binary arithmetic, logic and comparisons, the
 * variadic Max/Min/Sum/Mean, and Where.
 *
 * Each rule gives the accepted attributes and a shape function; lowering
 * lives in ops/elementwise_lower.c. Shape functions check input dtypes
 * against one accepted-type mask per op (the union of what ONNX allows from
 * opset 6 to 17), apply numpy broadcasting, and refuse what the legacy
 * opsets meant differently (binary ops before opset 7 with their
 * broadcast/axis attributes, Clip and Dropout's attribute forms).
 */
#include <float.h>
#include <stdio.h>
#include <string.h>

#include "ops/elementwise_impl.h"
#include "ops/ops.h"

#define DT(t) (1u << MPCC_DTYPE_##t)
#define T_FLOAT (DT(F32) | DT(F16) | DT(BF16) | DT(F64))
#define T_SINT (DT(I8) | DT(I16) | DT(I32) | DT(I64))
#define T_UINT (DT(U8) | DT(U16) | DT(U32) | DT(U64))
#define T_INT (T_SINT | T_UINT)
#define T_NUM (T_FLOAT | T_INT)
#define T_ALL (T_NUM | DT(BOOL))

/*
 * The dtypes an op accepts for its data inputs (for Pow, the base; for
 * Where, X and Y). A superset of one opset's list is fine where the
 * semantics stay obvious (Relu on integers arrived in opset 14).
 */
static uint32_t
accepted_types(mpcc_op op)
{
	switch (op) {
	case MPCC_OP_ABS:
	case MPCC_OP_SIGN:
	case MPCC_OP_ERF:
	case MPCC_OP_SHRINK:
	case MPCC_OP_CLIP:
	case MPCC_OP_ADD:
	case MPCC_OP_SUB:
	case MPCC_OP_MUL:
	case MPCC_OP_DIV:
	case MPCC_OP_POW:
	case MPCC_OP_MOD:
	case MPCC_OP_MAX:
	case MPCC_OP_MIN:
	case MPCC_OP_GREATER:
	case MPCC_OP_GREATEROREQUAL:
	case MPCC_OP_LESS:
	case MPCC_OP_LESSOREQUAL:
		return T_NUM;
	case MPCC_OP_NEG:
	case MPCC_OP_RELU:
		return T_FLOAT | T_SINT;
	case MPCC_OP_PRELU:
		return T_FLOAT | DT(I32) | DT(I64) | DT(U32) | DT(U64);
	case MPCC_OP_NOT:
	case MPCC_OP_AND:
	case MPCC_OP_OR:
	case MPCC_OP_XOR:
		return DT(BOOL);
	case MPCC_OP_BITSHIFT:
		return T_UINT;
	case MPCC_OP_BITWISEAND:
	case MPCC_OP_BITWISEOR:
	case MPCC_OP_BITWISEXOR:
	case MPCC_OP_BITWISENOT:
		return T_INT;
	case MPCC_OP_EQUAL:
	case MPCC_OP_IDENTITY:
	case MPCC_OP_CAST:
	case MPCC_OP_CASTLIKE:
	case MPCC_OP_WHERE:
		return T_ALL;
	default:
		return T_FLOAT;
	}
}

static bool
is_compare(mpcc_op op)
{
	return op == MPCC_OP_EQUAL || op == MPCC_OP_GREATER || op == MPCC_OP_GREATEROREQUAL ||
	       op == MPCC_OP_LESS || op == MPCC_OP_LESSOREQUAL;
}

/* Writes "[2,3,N]" into buf. */
static const char *
shape_str(const mpcc_value *v, char *buf, size_t size)
{
	size_t at = 0;
	at += (size_t)snprintf(buf, size, "[");
	for (int i = 0; i < v->rank && at < size; i++) {
		const char *sep = i ? "," : "";
		if (v->sym[i])
			at += (size_t)snprintf(buf + at, size - at, "%s%s", sep, v->sym[i]);
		else
			at += (size_t)snprintf(buf + at, size - at, "%s%lld", sep,
			                       (long long)v->dims[i]);
	}
	if (at < size)
		snprintf(buf + at, size - at, "]");
	return buf;
}

static bool
dim_is_sym(const mpcc_value *v, int i)
{
	return v->sym[i] != NULL || v->dims[i] < 0;
}

/*
 * Input i of node n, checked to be present with a known dtype and shape.
 * Every shape function starts here so that its later code may assume both.
 */
static mpcc_status
get_input(mpcc_graph *g, int32_t n, int i, mpcc_diag *d, mpcc_value **out)
{
	const mpcc_node *node = &g->nodes[n];
	*out = NULL;
	if (i >= node->n_in || node->in[i] == MPCC_NONE)
		return mpcc_node_error(d, node, MPCC_ERR_INVALID, "input %d is required", i);
	mpcc_value *v = &g->values[node->in[i]];
	if (v->dtype == MPCC_DTYPE_UNDEF || v->rank < 0)
		return mpcc_node_error(d, node, MPCC_ERR_INVALID,
		                       "input %d ('%s') has no known dtype and shape", i, v->name);
	*out = v;
	return MPCC_OK;
}

/* An optional input: *out is NULL when absent. */
static mpcc_status
get_optional(mpcc_graph *g, int32_t n, int i, mpcc_diag *d, mpcc_value **out)
{
	const mpcc_node *node = &g->nodes[n];
	*out = NULL;
	if (i >= node->n_in || node->in[i] == MPCC_NONE)
		return MPCC_OK;
	return get_input(g, n, i, d, out);
}

static mpcc_status
check_type(const mpcc_node *node, const mpcc_value *v, int i, uint32_t ok, mpcc_diag *d)
{
	if (v->dtype > 0 && v->dtype < MPCC_DTYPE_COUNT && (ok & (1u << v->dtype)))
		return MPCC_OK;
	return mpcc_node_error(d, node, MPCC_ERR_INVALID,
	                       "input %d ('%s') has dtype %s, not accepted", i, v->name,
	                       mpcc_dtype_name(v->dtype));
}

static void
set_output(mpcc_graph *g, int32_t v, mpcc_dtype dtype, const mpcc_value *shape)
{
	if (v == MPCC_NONE)
		return;
	mpcc_value *o = &g->values[v];
	o->dtype = dtype;
	o->rank = shape->rank;
	for (int i = 0; i < shape->rank; i++) {
		o->dims[i] = shape->dims[i];
		o->sym[i] = shape->sym[i];
	}
}

/*
 * numpy broadcasting of n_vals shapes into *out (rank, dims, sym only).
 * Symbolic dims broadcast against 1 and against themselves; against a
 * number > 1 the number wins (the symbol must equal it at run time), and
 * two different symbols keep the first. Incompatible numbers are an
 * INVALID error naming the two shapes that clash.
 */
static mpcc_status
broadcast(const mpcc_node *node, mpcc_value *const *vals, int n_vals, mpcc_value *out, mpcc_diag *d)
{
	int from[MPCC_MAX_RANK]; /* which input set each dim, for the message */
	out->rank = 0;
	for (int i = 0; i < n_vals; i++)
		if (vals[i]->rank > out->rank)
			out->rank = vals[i]->rank;
	for (int k = 0; k < out->rank; k++) {
		out->dims[k] = 1;
		out->sym[k] = NULL;
		from[k] = 0;
	}
	for (int i = 0; i < n_vals; i++) {
		const mpcc_value *v = vals[i];
		int off = out->rank - v->rank;
		for (int k = 0; k < v->rank; k++) {
			int o = off + k;
			bool osym = out->sym[o] != NULL || out->dims[o] < 0;
			if (!dim_is_sym(v, k) && v->dims[k] == 1)
				continue;
			if (!osym && out->dims[o] == 1) {
				out->dims[o] = v->dims[k];
				out->sym[o] = v->sym[k];
				from[o] = i;
				continue;
			}
			if (dim_is_sym(v, k))
				continue;
			if (osym) {
				out->dims[o] = v->dims[k];
				out->sym[o] = NULL;
				from[o] = i;
				continue;
			}
			if (out->dims[o] != v->dims[k]) {
				char a[160], b[160];
				return mpcc_node_error(d, node, MPCC_ERR_INVALID,
				                       "cannot broadcast input shapes %s and %s",
				                       shape_str(vals[from[o]], a, sizeof(a)),
				                       shape_str(v, b, sizeof(b)));
			}
		}
	}
	return MPCC_OK;
}

/*
 * Binary ops before opset 7 broadcast only with broadcast=1, B onto A, B's
 * dims aligned at `axis` (default: as a suffix of A). Where B aligns as a
 * suffix and broadcasts onto A's shape, that is exactly numpy broadcasting
 * with A's shape as the result, so those nodes are accepted; any other
 * legacy broadcast is refused rather than guessed.
 */
static mpcc_status
check_legacy_broadcast(const mpcc_node *node, mpcc_value *const *vals, mpcc_diag *d)
{
	if (node->opset >= 7)
		return MPCC_OK;
	const mpcc_value *a = vals[0], *b = vals[1];
	const mpcc_attr *axis = mpcc_node_attr(node, "axis");
	mpcc_value out;
	mpcc_diag scratch;
	mpcc_diag_init(&scratch);
	bool ok = broadcast(node, vals, 2, &out, &scratch) == MPCC_OK && out.rank == a->rank;
	for (int k = 0; ok && k < a->rank; k++)
		ok = out.dims[k] == a->dims[k];
	if (axis && axis->i != a->rank - b->rank)
		ok = false;
	if (!mpcc_node_attr_int(node, "broadcast", 0) && b->rank != a->rank)
		ok = false;
	if (ok)
		return MPCC_OK;
	return mpcc_node_error(
	    d, node, MPCC_ERR_UNSUPPORTED,
	    "legacy broadcasting (broadcast/axis attributes) of opset %d is only "
	    "supported where it equals numpy broadcasting onto input 0; convert "
	    "the model to opset 7 or later",
	    node->opset);
}

/* ------------------------------------------------------------- shape functions */

/* Output 0 takes input 0's dtype and shape. */
static mpcc_status
infer_unary(mpcc_graph *g, int32_t n, mpcc_diag *d)
{
	const mpcc_node *node = &g->nodes[n];
	mpcc_value *x;
	mpcc_status st = get_input(g, n, 0, d, &x);
	if (st == MPCC_OK)
		st = check_type(node, x, 0, accepted_types(node->op), d);
	if (st != MPCC_OK)
		return st;
	if (node->op == MPCC_OP_GELU) {
		const char *ap = mpcc_node_attr_string(node, "approximate", "none");
		if (strcmp(ap, "none") != 0 && strcmp(ap, "tanh") != 0)
			return mpcc_node_error(
			    d, node, MPCC_ERR_INVALID,
			    "approximate must be \"none\" or \"tanh\", not \"%s\"", ap);
	}
	set_output(g, node->out[0], x->dtype, x);
	return MPCC_OK;
}

/* IsNaN and IsInf: float in, bool out. */
static mpcc_status
infer_predicate(mpcc_graph *g, int32_t n, mpcc_diag *d)
{
	const mpcc_node *node = &g->nodes[n];
	mpcc_value *x;
	mpcc_status st = get_input(g, n, 0, d, &x);
	if (st == MPCC_OK)
		st = check_type(node, x, 0, T_FLOAT, d);
	if (st != MPCC_OK)
		return st;
	set_output(g, node->out[0], MPCC_DTYPE_BOOL, x);
	return MPCC_OK;
}

/*
 * Clip changed form in opset 11: min and max moved from float attributes to
 * optional scalar inputs of the data's dtype (possibly computed at run
 * time). Mixing the forms is a malformed model.
 */
static mpcc_status
infer_clip(mpcc_graph *g, int32_t n, mpcc_diag *d)
{
	const mpcc_node *node = &g->nodes[n];
	mpcc_status st = infer_unary(g, n, d);
	if (st != MPCC_OK)
		return st;
	mpcc_value *x = &g->values[node->in[0]];
	if (node->opset < 11) {
		if (node->n_in > 1)
			return mpcc_node_error(
			    d, node, MPCC_ERR_INVALID,
			    "Clip before opset 11 takes min and max as attributes, "
			    "not inputs");
		return MPCC_OK;
	}
	if (mpcc_node_attr(node, "min") || mpcc_node_attr(node, "max"))
		return mpcc_node_error(
		    d, node, MPCC_ERR_INVALID,
		    "Clip from opset 11 takes min and max as inputs, not attributes");
	for (int i = 1; i < 3; i++) {
		mpcc_value *b;
		if ((st = get_optional(g, n, i, d, &b)) != MPCC_OK)
			return st;
		if (!b)
			continue;
		if (b->dtype != x->dtype)
			return mpcc_node_error(d, node, MPCC_ERR_INVALID,
			                       "%s has dtype %s but the input is %s",
			                       i == 1 ? "min" : "max", mpcc_dtype_name(b->dtype),
			                       mpcc_dtype_name(x->dtype));
		if (mpcc_value_numel(b) != 1)
			return mpcc_node_error(d, node, MPCC_ERR_INVALID, "%s must be a scalar",
			                       i == 1 ? "min" : "max");
	}
	return MPCC_OK;
}

/* Cast-1 named its target type by string. */
static int
onnx_type_from_name(const char *s)
{
	static const char *const names[] = {
	    "UNDEFINED", "FLOAT",  "UINT8",     "INT8",       "UINT16",   "INT16",
	    "INT32",     "INT64",  "STRING",    "BOOL",       "FLOAT16",  "DOUBLE",
	    "UINT32",    "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
	};
	for (int i = 1; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static mpcc_status
infer_cast(mpcc_graph *g, int32_t n, mpcc_diag *d)
{
	const mpcc_node *node = &g->nodes[n];
	mpcc_value *x;
	mpcc_status st = get_input(g, n, 0, d, &x);
	if (st != MPCC_OK)
		return st;
	const mpcc_attr *to = mpcc_node_attr(node, "to");
	if (!to)
		return mpcc_node_error(d, node, MPCC_ERR_INVALID, "attribute 'to' is required");
	int code = to->kind == MPCC_ATTR_STRING ? onnx_type_from_name(to->s) : (int)to->i;
	if (code == 8)
		return mpcc_node_error(d, node, MPCC_ERR_UNSUPPORTED,
		                       "Cast to STRING is not supported");
	mpcc_dtype dt = mpcc_dtype_from_onnx(code);
	if (dt == MPCC_DTYPE_UNDEF)
		return mpcc_node_error(d, node, MPCC_ERR_UNSUPPORTED,
		                       "Cast to ONNX type %d is not supported", code);
	set_output(g, node->out[0], dt, x);
	return MPCC_OK;
}

static mpcc_status
infer_castlike(mpcc_graph *g, int32_t n, mpcc_diag *d)
{
	const mpcc_node *node = &g->nodes[n];
	mpcc_value *x, *like;
	mpcc_status st = get_input(g, n, 0, d, &x);
	if (st == MPCC_OK)
		st = get_input(g, n, 1, d, &like);
	if (st != MPCC_OK)
		return st;
	set_output(g, node->out[0], like->dtype, x);
	return MPCC_OK;
}

/*
 * mpcc compiles for inference, where Dropout is the identity and its mask
 * all true. A model's own training mode with a nonzero ratio would need
 * random numbers and is refused; a training_mode or ratio only known at
 * run time is too. (`--train` replaces the node by its training form
 * itself, passes/train_modes.c.)
 * The mask is bool from opset 10, the data's dtype before.
 */
static mpcc_status
infer_dropout(mpcc_graph *g, int32_t n, mpcc_diag *d)
{
	const mpcc_node *node = &g->nodes[n];
	mpcc_value *x, *ratio = NULL, *train = NULL;
	mpcc_status st = get_input(g, n, 0, d, &x);
	if (st == MPCC_OK)
		st = check_type(node, x, 0, T_FLOAT, d);
	if (st == MPCC_OK)
		st = get_optional(g, n, 1, d, &ratio);
	if (st == MPCC_OK)
		st = get_optional(g, n, 2, d, &train);
	if (st != MPCC_OK)
		return st;
	if (node->opset < 12 && node->n_in > 1)
		return mpcc_node_error(d, node, MPCC_ERR_INVALID,
		                       "Dropout before opset 12 takes one input");
	if (train) {
		if (!(train->flags & MPCC_VALUE_CONST) || !train->data ||
		    mpcc_value_numel(train) != 1)
			return mpcc_node_error(d, node, MPCC_ERR_UNSUPPORTED,
			                       "training_mode must be a constant scalar");
		if (mpcc_value_get_int(train, 0) != 0) {
			double r = 0.5;
			if (ratio) {
				if (!(ratio->flags & MPCC_VALUE_CONST) || !ratio->data)
					return mpcc_node_error(
					    d, node, MPCC_ERR_UNSUPPORTED,
					    "training-mode Dropout with a run-time "
					    "ratio is not supported");
				r = mpcc_value_get_double(ratio, 0);
			}
			if (r > 0)
				return mpcc_node_error(d, node, MPCC_ERR_UNSUPPORTED,
				                       "training-mode Dropout is not supported");
		}
	}
	set_output(g, node->out[0], x->dtype, x);
	if (node->n_out > 1)
		set_output(g, node->out[1], node->opset < 10 ? x->dtype : MPCC_DTYPE_BOOL, x);
	return MPCC_OK;
}

/*
 * Two inputs broadcast together. Arithmetic and bitwise ops need one dtype
 * on both sides; Pow's exponent may be any numeric type; comparisons and
 * logic give bool.
 */
static mpcc_status
infer_binary(mpcc_graph *g, int32_t n, mpcc_diag *d)
{
	const mpcc_node *node = &g->nodes[n];
	mpcc_value *v[2];
	uint32_t ok = accepted_types(node->op);
	mpcc_status st = get_input(g, n, 0, d, &v[0]);
	if (st == MPCC_OK)
		st = get_input(g, n, 1, d, &v[1]);
	if (st == MPCC_OK)
		st = check_type(node, v[0], 0, ok, d);
	if (st == MPCC_OK)
		st = check_type(node, v[1], 1, ok, d);
	if (st == MPCC_OK)
		st = check_legacy_broadcast(node, v, d);
	if (st != MPCC_OK)
		return st;
	if (node->op != MPCC_OP_POW && v[0]->dtype != v[1]->dtype)
		return mpcc_node_error(d, node, MPCC_ERR_INVALID, "input dtypes differ: %s and %s",
		                       mpcc_dtype_name(v[0]->dtype), mpcc_dtype_name(v[1]->dtype));
	if (node->op == MPCC_OP_MOD && mpcc_dtype_is_float(v[0]->dtype) &&
	    mpcc_node_attr_int(node, "fmod", 0) == 0)
		return mpcc_node_error(d, node, MPCC_ERR_INVALID,
		                       "Mod of floating-point inputs needs fmod=1");
	if (node->op == MPCC_OP_BITSHIFT) {
		const char *dir = mpcc_node_attr_string(node, "direction", "");
		if (strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0)
			return mpcc_node_error(
			    d, node, MPCC_ERR_INVALID,
			    "direction must be \"LEFT\" or \"RIGHT\", not \"%s\"", dir);
	}
	mpcc_value shape;
	if ((st = broadcast(node, v, 2, &shape, d)) != MPCC_OK)
		return st;
	bool to_bool = is_compare(node->op) || v[0]->dtype == MPCC_DTYPE_BOOL;
	set_output(g, node->out[0], to_bool ? MPCC_DTYPE_BOOL : v[0]->dtype, &shape);
	return MPCC_OK;
}

bool
mpcc_elem_prelu_is_legacy(const mpcc_graph *g, const mpcc_node *node)
{
	if (node->opset >= 7 || node->n_in < 2 || node->in[1] == MPCC_NONE)
		return false;
	const mpcc_value *x = &g->values[node->in[0]], *s = &g->values[node->in[1]];
	return x->rank > 2 && s->rank == 1 && s->dims[0] == x->dims[1] && s->dims[0] != 1 &&
	       s->dims[0] != x->dims[x->rank - 1];
}

/* PRelu: slope broadcasts to X (one direction only); the output is X's. */
static mpcc_status
infer_prelu(mpcc_graph *g, int32_t n, mpcc_diag *d)
{
	const mpcc_node *node = &g->nodes[n];
	mpcc_value *v[2];
	mpcc_status st = get_input(g, n, 0, d, &v[0]);
	if (st == MPCC_OK)
		st = get_input(g, n, 1, d, &v[1]);
	if (st == MPCC_OK)
		st = check_type(node, v[0], 0, accepted_types(node->op), d);
	if (st != MPCC_OK)
		return st;
	if (v[1]->dtype != v[0]->dtype)
		return mpcc_node_error(d, node, MPCC_ERR_INVALID, "slope has dtype %s, X has %s",
		                       mpcc_dtype_name(v[1]->dtype), mpcc_dtype_name(v[0]->dtype));
	if (mpcc_elem_prelu_is_legacy(g, node)) {
		set_output(g, node->out[0], v[0]->dtype, v[0]);
		return MPCC_OK;
	}
	mpcc_value shape;
	if ((st = broadcast(node, v, 2, &shape, d)) != MPCC_OK)
		return st;
	bool same = shape.rank == v[0]->rank;
	for (int k = 0; same && k < shape.rank; k++)
		same = shape.dims[k] == v[0]->dims[k];
	if (!same) {
		char a[160], b[160];
		return mpcc_node_error(
		    d, node, MPCC_ERR_INVALID, "slope shape %s does not broadcast to X shape %s",
		    shape_str(v[1], a, sizeof(a)), shape_str(v[0], b, sizeof(b)));
	}
	set_output(g, node->out[0], v[0]->dtype, v[0]);
	return MPCC_OK;
}

/* Max, Min, Sum, Mean: one or more inputs of one dtype, all broadcast. */
static mpcc_status
infer_variadic(mpcc_graph *g, int32_t n, mpcc_diag *d)
{
	const mpcc_node *node = &g->nodes[n];
	mpcc_value *v[64];
	if (node->n_in < 1 || node->n_in > 64)
		return mpcc_node_error(d, node, MPCC_ERR_UNSUPPORTED,
		                       "%d inputs; 1 to 64 are supported", node->n_in);
	uint32_t ok = accepted_types(node->op);
	if (node->op == MPCC_OP_SUM || node->op == MPCC_OP_MEAN)
		ok = T_FLOAT;
	for (int i = 0; i < node->n_in; i++) {
		mpcc_status st = get_input(g, n, i, d, &v[i]);
		if (st == MPCC_OK)
			st = check_type(node, v[i], i, ok, d);
		if (st != MPCC_OK)
			return st;
		if (v[i]->dtype != v[0]->dtype)
			return mpcc_node_error(
			    d, node, MPCC_ERR_INVALID, "input %d has dtype %s, input 0 has %s", i,
			    mpcc_dtype_name(v[i]->dtype), mpcc_dtype_name(v[0]->dtype));
	}
	mpcc_value shape;
	mpcc_status st = broadcast(node, v, node->n_in, &shape, d);
	if (st != MPCC_OK)
		return st;
	set_output(g, node->out[0], v[0]->dtype, &shape);
	return MPCC_OK;
}

static mpcc_status
infer_where(mpcc_graph *g, int32_t n, mpcc_diag *d)
{
	const mpcc_node *node = &g->nodes[n];
	mpcc_value *v[3];
	for (int i = 0; i < 3; i++) {
		mpcc_status st = get_input(g, n, i, d, &v[i]);
		if (st != MPCC_OK)
			return st;
	}
	mpcc_status st = check_type(node, v[0], 0, DT(BOOL), d);
	if (st != MPCC_OK)
		return st;
	if (v[1]->dtype != v[2]->dtype)
		return mpcc_node_error(d, node, MPCC_ERR_INVALID, "X has dtype %s, Y has %s",
		                       mpcc_dtype_name(v[1]->dtype), mpcc_dtype_name(v[2]->dtype));
	mpcc_value shape;
	if ((st = broadcast(node, v, 3, &shape, d)) != MPCC_OK)
		return st;
	set_output(g, node->out[0], v[1]->dtype, &shape);
	return MPCC_OK;
}

/* ------------------------------------------------------------- the table */

/* consumed_inputs (opset 1) only named buffers to reuse: harmless. */
static const char *const a_none[] = {"consumed_inputs", NULL};
static const char *const a_legacy_binary[] = {"broadcast", "axis", "consumed_inputs", NULL};
static const char *const a_alpha[] = {"alpha", "consumed_inputs", NULL};
static const char *const a_selu[] = {"alpha", "gamma", "consumed_inputs", NULL};
static const char *const a_alpha_beta[] = {"alpha", "beta", "consumed_inputs", NULL};
static const char *const a_shrink[] = {"bias", "lambd", NULL};
static const char *const a_gelu[] = {"approximate", NULL};
static const char *const a_isinf[] = {"detect_negative", "detect_positive", NULL};
static const char *const a_clip[] = {"min", "max", "consumed_inputs", NULL};
/* saturate (opset 19) only affects float8 targets, which mpcc lacks. */
static const char *const a_cast[] = {"to", "saturate", NULL};
static const char *const a_castlike[] = {"saturate", NULL};
static const char *const a_dropout[] = {"ratio", "seed", "is_test", "consumed_inputs", NULL};
static const char *const a_mod[] = {"fmod", NULL};
static const char *const a_bitshift[] = {"direction", NULL};
static const char *const a_empty[] = {NULL};

#define RULE(id, lo, hi, olo, ohi, at, inf, low)                                                   \
	{                                                                                          \
		.op = MPCC_OP_##id, .min_in = lo, .max_in = hi, .min_out = olo, .max_out = ohi,    \
		.attrs = at, .infer = inf, .lower = low                                            \
	}
#define UNARY(id, at) RULE(id, 1, 1, 1, 1, at, infer_unary, mpcc_elem_lower)
#define BINARY(id, at) RULE(id, 2, 2, 1, 1, at, infer_binary, mpcc_elem_lower)
#define VARIADIC(id) RULE(id, 1, 64, 1, 1, a_none, infer_variadic, mpcc_elem_lower)

const mpcc_op_rule mpcc_rules_elementwise[] = {
    UNARY(ABS, a_none),
    UNARY(NEG, a_none),
    UNARY(RECIPROCAL, a_none),
    UNARY(SQRT, a_none),
    UNARY(EXP, a_none),
    UNARY(LOG, a_none),
    UNARY(SIN, a_empty),
    UNARY(COS, a_empty),
    UNARY(TAN, a_empty),
    UNARY(ASIN, a_empty),
    UNARY(ACOS, a_empty),
    UNARY(ATAN, a_empty),
    UNARY(SINH, a_empty),
    UNARY(COSH, a_empty),
    UNARY(TANH, a_none),
    UNARY(ASINH, a_empty),
    UNARY(ACOSH, a_empty),
    UNARY(ATANH, a_empty),
    UNARY(ERF, a_empty),
    UNARY(FLOOR, a_none),
    UNARY(CEIL, a_none),
    UNARY(ROUND, a_empty),
    UNARY(SIGN, a_empty),
    UNARY(NOT, a_empty),
    UNARY(BITWISENOT, a_empty),
    RULE(ISNAN, 1, 1, 1, 1, a_empty, infer_predicate, mpcc_elem_lower),
    RULE(ISINF, 1, 1, 1, 1, a_isinf, infer_predicate, mpcc_elem_lower),
    UNARY(RELU, a_none),
    UNARY(LEAKYRELU, a_alpha),
    RULE(PRELU, 2, 2, 1, 1, a_none, infer_prelu, mpcc_elem_lower),
    UNARY(ELU, a_alpha),
    UNARY(SELU, a_selu),
    UNARY(CELU, a_alpha),
    UNARY(SIGMOID, a_none),
    UNARY(HARDSIGMOID, a_alpha_beta),
    UNARY(HARDSWISH, a_empty),
    UNARY(SOFTPLUS, a_empty),
    UNARY(SOFTSIGN, a_empty),
    UNARY(THRESHOLDEDRELU, a_alpha),
    UNARY(SHRINK, a_shrink),
    UNARY(GELU, a_gelu),
    UNARY(MISH, a_empty),
    RULE(CLIP, 1, 3, 1, 1, a_clip, infer_clip, mpcc_elem_lower_clip),
    RULE(CAST, 1, 1, 1, 1, a_cast, infer_cast, mpcc_elem_lower),
    RULE(CASTLIKE, 2, 2, 1, 1, a_castlike, infer_castlike, mpcc_elem_lower_castlike),
    UNARY(IDENTITY, a_empty),
    RULE(DROPOUT, 1, 3, 1, 2, a_dropout, infer_dropout, mpcc_elem_lower_dropout),
    BINARY(ADD, a_legacy_binary),
    BINARY(SUB, a_legacy_binary),
    BINARY(MUL, a_legacy_binary),
    BINARY(DIV, a_legacy_binary),
    BINARY(POW, a_legacy_binary),
    BINARY(MOD, a_mod),
    BINARY(BITSHIFT, a_bitshift),
    BINARY(BITWISEAND, a_empty),
    BINARY(BITWISEOR, a_empty),
    BINARY(BITWISEXOR, a_empty),
    BINARY(AND, a_legacy_binary),
    BINARY(OR, a_legacy_binary),
    BINARY(XOR, a_legacy_binary),
    BINARY(EQUAL, a_legacy_binary),
    BINARY(GREATER, a_legacy_binary),
    BINARY(GREATEROREQUAL, a_empty),
    BINARY(LESS, a_legacy_binary),
    BINARY(LESSOREQUAL, a_empty),
    VARIADIC(MAX),
    VARIADIC(MIN),
    VARIADIC(SUM),
    VARIADIC(MEAN),
    RULE(WHERE, 3, 3, 1, 1, a_empty, infer_where, mpcc_elem_lower),
    {.op = MPCC_OP_INVALID},
};
