/*
 * ops/movement_layout.c - movement ops that build their output from a layout
 * rule rather than a plain copy: Pad, Range, Trilu, EyeLike, OneHot,
 * DepthToSpace, SpaceToDepth and ReverseSequence.
 *
 * Each is one index-map stage over the output (mpcc_move_lower_map): the
 * value at an output position is a load at an integer expression of the
 * loop vars, or a constant where the rule says so (padding, off-diagonal,
 * off values). Inputs that decide shapes (pads, Range's scalars, depth) are
 * read from constant data in infer; inputs that only decide values (Pad's
 * constant_value, Trilu's k, sequence_lens) are loaded by the kernel.
 */
#include <math.h>
#include <string.h>

#include "ops/movement_impl.h"

/* ---------------------------------------------------------------- Pad */

typedef enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

typedef struct pad_params {
	pad_mode mode;
	int64_t before[MPCC_MAX_RANK];
	int64_t dims[MPCC_MAX_RANK];
	double value; /* opset < 11 constant */
} pad_params;

/*
 * Pad's per-axis leading pad and output dims. Before opset 11 pads and value
 * are attributes; from 11 pads is a constant input, constant_value a data
 * input (read by the kernel), and from 18 `axes` selects the padded axes.
 * Negative pads crop.
 */
static mpcc_status
pad_params_get(mpcc_graph *g, int32_t ni, pad_params *p, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	const char *mode = mpcc_node_attr_string(n, "mode", "constant");
	if (!strcmp(mode, "constant"))
		p->mode = PAD_CONSTANT;
	else if (!strcmp(mode, "reflect"))
		p->mode = PAD_REFLECT;
	else if (!strcmp(mode, "edge"))
		p->mode = PAD_EDGE;
	else if (!strcmp(mode, "wrap"))
		p->mode = PAD_WRAP;
	else
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "mode '%s'", mode);
	int64_t pads[2 * MPCC_MAX_RANK], axes[MPCC_MAX_RANK];
	int np, na = -1;
	p->value = 0;
	if (n->opset < 11) {
		const mpcc_attr *a = mpcc_node_attr(n, "pads");
		if (!a || a->n > 2 * MPCC_MAX_RANK)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "attribute 'pads' is missing or too long");
		np = a->n;
		memcpy(pads, a->ints, np * sizeof(int64_t));
		p->value = mpcc_node_attr_float(n, "value", 0);
	} else {
		mpcc_status st;
		if ((st =
		         mpcc_move_const_ints(g, ni, 1, "pads", pads, 2 * MPCC_MAX_RANK, &np, d)) ||
		    (st = mpcc_move_const_ints(g, ni, 3, "axes", axes, MPCC_MAX_RANK, &na, d)))
			return st;
	}
	int nax = na >= 0 ? na : x->rank;
	if (np != 2 * nax)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "pads has %d entries for %d axes",
		                       np, nax);
	for (int i = 0; i < x->rank; i++) {
		p->before[i] = 0;
		p->dims[i] = x->dims[i];
	}
	for (int i = 0; i < nax; i++) {
		int a = mpcc_axis(na >= 0 ? axes[i] : i, x->rank);
		if (a < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "bad axis");
		p->before[a] = pads[i];
		p->dims[a] = x->dims[a] + pads[i] + pads[i + nax];
		if (p->dims[a] < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "pads crop axis %d below zero", a);
		if (p->mode != PAD_CONSTANT && x->dims[a] == 0 && p->dims[a] > 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "cannot %s-pad an empty axis", mode);
	}
	return MPCC_OK;
}

mpcc_status
mpcc_move_infer_pad(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	pad_params p;
	mpcc_status st = pad_params_get(g, ni, &p, d);
	if (st)
		return st;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, x->rank, p.dims);
	return MPCC_OK;
}

/*
 * Source index along one axis for out position v: constant and edge clamp
 * (constant also yields the in-range predicate), reflect folds with period
 * 2(dim-1) so pads wider than the axis keep reflecting as numpy does, wrap
 * takes the index modulo dim.
 */
static int32_t
pad_src(kir_kernel *k, pad_mode mode, int32_t v, int64_t before, int64_t dim, int32_t *inside)
{
	int32_t s = kir_iadd(k, v, kir_iconst(k, -before));
	if (mode == PAD_CONSTANT) {
		int32_t ge = kir_binary(k, KIR_GE, s, kir_iconst(k, 0));
		int32_t lt = kir_binary(k, KIR_LT, s, kir_iconst(k, dim));
		int32_t ok = kir_binary(k, KIR_AND, ge, lt);
		*inside = *inside >= 0 ? kir_binary(k, KIR_AND, *inside, ok) : ok;
		return mpcc_move_clamp(k, s, 0, dim - 1);
	}
	if (mode == PAD_EDGE || dim == 1)
		return mpcc_move_clamp(k, s, 0, dim - 1);
	if (mode == PAD_WRAP)
		return kir_binary(k, KIR_FLOORMOD, s, kir_iconst(k, dim));
	int64_t period = 2 * (dim - 1);
	int32_t m = kir_binary(k, KIR_FLOORMOD, s, kir_iconst(k, period));
	int32_t back = kir_binary(k, KIR_SUB, kir_iconst(k, period), m);
	return kir_select(k, kir_binary(k, KIR_LT, m, kir_iconst(k, dim)), m, back);
}

static int32_t
map_pad(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	const pad_params *p = ctx;
	const mpcc_value *x = &g->values[n->in[0]];
	mpcc_dtype t = x->dtype;
	int32_t fill;
	if (p->mode != PAD_CONSTANT)
		fill = 0;
	else if (n->opset >= 11 && mpcc_move_in((mpcc_graph *)g, n, 2) &&
	         mpcc_value_numel(&g->values[n->in[2]]) > 0)
		fill = kir_cast(k, t, mpcc_move_load0(k, g, n->in[2]));
	else if (mpcc_dtype_is_float(t))
		fill = kir_cast(k, t, kir_const_f(k, MPCC_DTYPE_F64, p->value));
	else
		fill = kir_const_i(k, t, (int64_t)p->value);
	if (mpcc_value_numel(x) == 0)
		return fill;
	int32_t idx[MPCC_MAX_RANK], inside = -1;
	for (int i = 0; i < x->rank; i++)
		idx[i] = pad_src(k, p->mode, vars[i], p->before[i], x->dims[i], &inside);
	int32_t v = mpcc_move_load(k, g, n->in[0], idx);
	return inside >= 0 ? kir_select(k, inside, v, fill) : v;
}

mpcc_status
mpcc_move_lower_pad(mpcc_lower *lx, int32_t ni)
{
	pad_params p;
	mpcc_status st = pad_params_get(lx->g, ni, &p, lx->d);
	if (st)
		return st;
	return mpcc_move_lower_map(lx, ni, 0, "", map_pad, &p);
}

/* ---------------------------------------------------------------- Range */

static mpcc_status
range_params(mpcc_graph *g, int32_t ni, double *start, double *delta, int64_t *count, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	static const char *const what[3] = {"start", "limit", "delta"};
	double v[3];
	mpcc_value *x0 = mpcc_move_in(g, n, 0);
	for (int i = 0; i < 3; i++) {
		mpcc_status st = mpcc_move_need_const(g, ni, i, what[i], d);
		if (st)
			return st;
		mpcc_value *x = mpcc_move_in(g, n, i);
		if (mpcc_value_numel(x) != 1 || x->dtype != x0->dtype)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "input %d (%s) must be a scalar of %s", i, what[i],
			                       mpcc_dtype_name(x0->dtype));
		v[i] = mpcc_value_get_double(x, 0);
	}
	if (v[2] == 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "delta is zero");
	double c = ceil((v[1] - v[0]) / v[2]);
	*start = v[0];
	*delta = v[2];
	*count = c > 0 ? (int64_t)c : 0;
	return MPCC_OK;
}

mpcc_status
mpcc_move_infer_range(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	double start, delta;
	int64_t count;
	mpcc_status st = range_params(g, ni, &start, &delta, &count, d);
	if (st)
		return st;
	mpcc_node *n = &g->nodes[ni];
	mpcc_move_set(mpcc_move_out(g, n, 0), mpcc_move_in(g, n, 0)->dtype, 1, &count);
	return MPCC_OK;
}

/* start + i * delta, in f64 for floats and i64 for integers (exact there). */
static int32_t
map_range(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	const double *p = ctx;
	mpcc_dtype t = g->values[n->out[0]].dtype;
	if (mpcc_dtype_is_float(t)) {
		int32_t i = kir_cast(k, MPCC_DTYPE_F64, vars[0]);
		int32_t step = kir_binary(k, KIR_MUL, i, kir_const_f(k, MPCC_DTYPE_F64, p[1]));
		return kir_cast(k, t,
		                kir_binary(k, KIR_ADD, kir_const_f(k, MPCC_DTYPE_F64, p[0]), step));
	}
	int32_t v = kir_iadd(k, kir_iconst(k, (int64_t)p[0]), kir_imul(k, vars[0], (int64_t)p[1]));
	return kir_cast(k, t, v);
}

mpcc_status
mpcc_move_lower_range(mpcc_lower *lx, int32_t ni)
{
	double p[2];
	int64_t count;
	mpcc_status st = range_params(lx->g, ni, &p[0], &p[1], &count, lx->d);
	if (st)
		return st;
	return mpcc_move_lower_map(lx, ni, 0, "", map_range, p);
}

/* ---------------------------------------------------------------- Trilu, EyeLike */

static mpcc_status
infer_same(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, x->rank, x->dims);
	return MPCC_OK;
}

mpcc_status
mpcc_move_infer_trilu(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0), *kv = mpcc_move_in(g, n, 1);
	if (x->rank < 2)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "input rank %d < 2", x->rank);
	if (kv && (mpcc_value_numel(kv) != 1 || !mpcc_dtype_is_int(kv->dtype)))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "k must be an integer scalar");
	return infer_same(g, ni, d);
}

/* Keeps x where col - row >= k (upper) or <= k (lower), else zero; k is read
 * by the kernel, so it need not be constant. */
static int32_t
map_trilu(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	const mpcc_value *x = &g->values[n->in[0]];
	int r = x->rank;
	int32_t kk = mpcc_move_in(g, n, 1)
	                 ? kir_cast(k, MPCC_DTYPE_I64, mpcc_move_load0(k, g, n->in[1]))
	                 : kir_iconst(k, 0);
	int32_t diff = kir_binary(k, KIR_SUB, vars[r - 1], vars[r - 2]);
	bool upper = mpcc_node_attr_int(n, "upper", 1) != 0;
	int32_t keep = kir_binary(k, upper ? KIR_GE : KIR_LE, diff, kk);
	int32_t v = mpcc_move_load(k, g, n->in[0], vars);
	return kir_select(k, keep, v, kir_const_i(k, x->dtype, 0));
}

mpcc_status
mpcc_move_lower_trilu(mpcc_lower *lx, int32_t ni)
{
	return mpcc_move_lower_map(lx, ni, 0, "", map_trilu, NULL);
}

mpcc_status
mpcc_move_infer_eyelike(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	if (x->rank != 2)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "input rank %d, must be 2", x->rank);
	mpcc_dtype t = x->dtype;
	const mpcc_attr *a = mpcc_node_attr(n, "dtype");
	if (a) {
		t = mpcc_dtype_from_onnx((int)a->i);
		if (t == MPCC_DTYPE_UNDEF)
			return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "dtype %lld",
			                       (long long)a->i);
	}
	mpcc_move_set(mpcc_move_out(g, n, 0), t, 2, x->dims);
	return MPCC_OK;
}

static int32_t
map_eyelike(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	mpcc_dtype t = g->values[n->out[0]].dtype;
	int32_t diff = kir_binary(k, KIR_SUB, vars[1], vars[0]);
	int32_t on = kir_binary(k, KIR_EQ, diff, kir_iconst(k, mpcc_node_attr_int(n, "k", 0)));
	return kir_cast(k, t, on);
}

mpcc_status
mpcc_move_lower_eyelike(mpcc_lower *lx, int32_t ni)
{
	return mpcc_move_lower_map(lx, ni, 0, "", map_eyelike, NULL);
}

/* ---------------------------------------------------------------- OneHot */

static mpcc_status
onehot_params(mpcc_graph *g, int32_t ni, int *axis, int64_t *depth, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *ind = mpcc_move_in(g, n, 0), *vals = mpcc_move_in(g, n, 2);
	mpcc_status st = mpcc_move_need_const(g, ni, 1, "depth", d);
	if (st)
		return st;
	mpcc_value *dv = mpcc_move_in(g, n, 1);
	if (mpcc_value_numel(dv) != 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "depth must hold one element");
	*depth = (int64_t)mpcc_value_get_double(dv, 0);
	if (*depth < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "negative depth");
	if (!vals || mpcc_value_numel(vals) != 2)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "values must hold [off, on]");
	if (ind->rank + 1 > MPCC_MAX_RANK)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "result rank %d", ind->rank + 1);
	*axis = mpcc_axis(mpcc_node_attr_int(n, "axis", -1), ind->rank + 1);
	if (*axis < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis out of range");
	return MPCC_OK;
}

mpcc_status
mpcc_move_infer_onehot(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	int axis = 0;
	int64_t depth = 0;
	mpcc_status st = onehot_params(g, ni, &axis, &depth, d);
	if (st)
		return st;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *ind = mpcc_move_in(g, n, 0);
	int64_t dims[MPCC_MAX_RANK];
	for (int i = 0, j = 0; i <= ind->rank; i++)
		dims[i] = i == axis ? depth : ind->dims[j++];
	mpcc_move_set(mpcc_move_out(g, n, 0), mpcc_move_in(g, n, 2)->dtype, ind->rank + 1, dims);
	return MPCC_OK;
}

/* Indices may be of any numeric type; negative ones count from depth. An
 * index outside [-depth, depth) matches no position and gives off. */
static int32_t
map_onehot(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	const int64_t *p = ctx; /* axis, depth */
	int axis = (int)p[0];
	const mpcc_value *ind = &g->values[n->in[0]];
	int32_t idx[MPCC_MAX_RANK];
	for (int i = 0, j = 0; i <= ind->rank; i++)
		if (i != axis)
			idx[j++] = vars[i];
	int32_t e = kir_cast(k, MPCC_DTYPE_I64, mpcc_move_load(k, g, n->in[0], idx));
	int32_t neg = kir_binary(k, KIR_LT, e, kir_iconst(k, 0));
	e = kir_select(k, neg, kir_iadd(k, e, kir_iconst(k, p[1])), e);
	int bv = mpcc_lower_param(k, g, n->in[2]);
	int32_t off = kir_load(k, bv, kir_iconst(k, 0)), on = kir_load(k, bv, kir_iconst(k, 1));
	return kir_select(k, kir_binary(k, KIR_EQ, e, vars[axis]), on, off);
}

mpcc_status
mpcc_move_lower_onehot(mpcc_lower *lx, int32_t ni)
{
	int axis = 0;
	int64_t p[2];
	mpcc_status st = onehot_params(lx->g, ni, &axis, &p[1], lx->d);
	if (st)
		return st;
	p[0] = axis;
	return mpcc_move_lower_map(lx, ni, 0, "", map_onehot, p);
}

/* ---------------------------------------------------------------- DepthToSpace, SpaceToDepth */

mpcc_status
mpcc_move_infer_depth_space(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int64_t b = mpcc_node_attr_int(n, "blocksize", 0);
	if (x->rank != 4 || b <= 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "needs a rank-4 input and blocksize > 0");
	int64_t dims[4] = {x->dims[0], x->dims[1], x->dims[2], x->dims[3]};
	if (n->op == MPCC_OP_DEPTHTOSPACE) {
		const char *mode = mpcc_node_attr_string(n, "mode", "DCR");
		if (strcmp(mode, "DCR") && strcmp(mode, "CRD"))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "mode '%s'", mode);
		if (dims[1] % (b * b))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "channels not divisible by blocksize^2");
		dims[1] /= b * b;
		dims[2] *= b;
		dims[3] *= b;
	} else {
		if (dims[2] % b || dims[3] % b)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "H and W not divisible by blocksize");
		dims[1] *= b * b;
		dims[2] /= b;
		dims[3] /= b;
	}
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, 4, dims);
	return MPCC_OK;
}

/*
 * DepthToSpace: output (n, c, h, w) reads channel
 * DCR: (bh*b + bw)*C' + c, CRD: c*b*b + bh*b + bw, at (h/b, w/b), where
 * bh = h%b, bw = w%b. SpaceToDepth is the DCR inverse.
 */
static int32_t
map_depth_space(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	int64_t b = mpcc_node_attr_int(n, "blocksize", 1);
	const mpcc_value *x = &g->values[n->in[0]], *y = &g->values[n->out[0]];
	int32_t bi = kir_iconst(k, b), idx[4];
	idx[0] = vars[0];
	if (n->op == MPCC_OP_DEPTHTOSPACE) {
		int32_t bh = kir_binary(k, KIR_REM, vars[2], bi),
		        bw = kir_binary(k, KIR_REM, vars[3], bi);
		int32_t blk = kir_iadd(k, kir_imul(k, bh, b), bw);
		if (!strcmp(mpcc_node_attr_string(n, "mode", "DCR"), "DCR"))
			idx[1] = kir_iadd(k, kir_imul(k, blk, y->dims[1]), vars[1]);
		else
			idx[1] = kir_iadd(k, kir_imul(k, vars[1], b * b), blk);
		idx[2] = kir_binary(k, KIR_DIV, vars[2], bi);
		idx[3] = kir_binary(k, KIR_DIV, vars[3], bi);
	} else {
		int32_t c = kir_iconst(k, x->dims[1]);
		int32_t blk = kir_binary(k, KIR_DIV, vars[1], c);
		idx[1] = kir_binary(k, KIR_REM, vars[1], c);
		idx[2] = kir_iadd(k, kir_imul(k, vars[2], b), kir_binary(k, KIR_DIV, blk, bi));
		idx[3] = kir_iadd(k, kir_imul(k, vars[3], b), kir_binary(k, KIR_REM, blk, bi));
	}
	return mpcc_move_load(k, g, n->in[0], idx);
}

mpcc_status
mpcc_move_lower_depth_space(mpcc_lower *lx, int32_t ni)
{
	return mpcc_move_lower_map(lx, ni, 0, "", map_depth_space, NULL);
}

/* ---------------------------------------------------------------- ReverseSequence */

static mpcc_status
revseq_axes(mpcc_graph *g, const mpcc_node *n, int *ba, int *ta, mpcc_diag *d)
{
	mpcc_value *x = mpcc_move_in(g, n, 0), *lens = mpcc_move_in(g, n, 1);
	*ba = mpcc_axis(mpcc_node_attr_int(n, "batch_axis", 1), x->rank);
	*ta = mpcc_axis(mpcc_node_attr_int(n, "time_axis", 0), x->rank);
	if (x->rank < 2 || *ba < 0 || *ta < 0 || *ba > 1 || *ta > 1 || *ba == *ta)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "batch_axis and time_axis must be 0 and 1");
	if (!lens || lens->rank != 1 || lens->dims[0] != x->dims[*ba] ||
	    !mpcc_dtype_is_int(lens->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "sequence_lens must be [batch] integers");
	return MPCC_OK;
}

mpcc_status
mpcc_move_infer_revseq(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	int ba, ta;
	mpcc_status st = revseq_axes(g, &g->nodes[ni], &ba, &ta, d);
	return st ? st : infer_same(g, ni, d);
}

/* Time t of batch b reads L-1-t when t < L (L clamped into [0, T]). */
static int32_t
map_revseq(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	const int *ax = ctx;
	const mpcc_value *x = &g->values[n->in[0]];
	int32_t bvar = vars[ax[0]], t = vars[ax[1]];
	int32_t len = kir_load(k, mpcc_lower_param(k, g, n->in[1]), bvar);
	len = mpcc_move_clamp(k, kir_cast(k, MPCC_DTYPE_I64, len), 0, x->dims[ax[1]]);
	int32_t rev = kir_binary(k, KIR_SUB, kir_iadd(k, len, kir_iconst(k, -1)), t);
	int32_t idx[MPCC_MAX_RANK];
	memcpy(idx, vars, sizeof idx);
	idx[ax[1]] = kir_select(k, kir_binary(k, KIR_LT, t, len), rev, t);
	return mpcc_move_load(k, g, n->in[0], idx);
}

mpcc_status
mpcc_move_lower_revseq(mpcc_lower *lx, int32_t ni)
{
	int ax[2];
	mpcc_status st = revseq_axes(lx->g, &lx->g->nodes[ni], &ax[0], &ax[1], lx->d);
	if (st)
		return st;
	return mpcc_move_lower_map(lx, ni, 0, "", map_revseq, ax);
}
