/*
 * ops/movement.c - shape and data movement ops: Constant, Shape, Reshape and
 * friends, Transpose, Concat, Split, Slice, Expand, Tile, and the family's
 * rule table (Pad, Range, Trilu, EyeLike, OneHot, DepthToSpace, SpaceToDepth
 * and ReverseSequence live in movement_layout.c, the gathers and scatters in
 * movement_gather.c, Resize and Upsample in movement_resize.c).
 *
 * Shape inputs are read in infer from constant data; an input that is not
 * constant by then is unsupported. Ops whose outputs infer can compute
 * without input data (Constant, Shape, Size, ConstantOfShape) set that data
 * there. Lowering is always one stage over the output (an index map): the
 * load index is an integer expression of the loop vars, and data-derived
 * indices are clamped into range. Bytes move unchanged, so no dtype needs a
 * conversion beyond the cast to the output buffer's storage dtype.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/movement_impl.h"

/* ---------------------------------------------------------------- helpers */

mpcc_value *
mpcc_move_in(mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_in && n->in[i] != MPCC_NONE ? &g->values[n->in[i]] : NULL;
}

mpcc_value *
mpcc_move_out(mpcc_graph *g, const mpcc_node *n, int i)
{
	return &g->values[n->out[i]];
}

void
mpcc_move_set(mpcc_value *v, mpcc_dtype t, int rank, const int64_t *dims)
{
	v->dtype = t;
	v->rank = rank;
	for (int i = 0; i < rank; i++) {
		v->dims[i] = dims[i];
		v->sym[i] = NULL;
	}
}

mpcc_status
mpcc_move_need_const(mpcc_graph *g, int32_t ni, int i, const char *what, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *v = mpcc_move_in(g, n, i);
	if (!v)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "input %d (%s) is missing", i, what);
	if (!(v->flags & MPCC_VALUE_CONST) || mpcc_value_numel(v) < 0)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
		                       "input '%s' (%s) must be known at compile time (a graph "
		                       "input can be frozen: --freeze %s=FILE.npy)",
		                       v->name, what, v->name);
	return MPCC_OK;
}

mpcc_status
mpcc_move_const_ints(mpcc_graph *g, int32_t ni, int i, const char *what, int64_t *out, int max,
                     int *count, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *v = mpcc_move_in(g, n, i);
	*count = -1;
	if (!v)
		return MPCC_OK;
	mpcc_status st = mpcc_move_need_const(g, ni, i, what, d);
	if (st)
		return st;
	if (!mpcc_dtype_is_int(v->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "input '%s' (%s) must be integer, not %s", v->name, what,
		                       mpcc_dtype_name(v->dtype));
	int64_t numel = mpcc_value_numel(v);
	if (numel > max)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "input '%s' (%s) has %lld elements, at most %d", v->name,
		                       what, (long long)numel, max);
	for (int64_t j = 0; j < numel; j++)
		out[j] = mpcc_value_get_int(v, j);
	*count = (int)numel;
	return MPCC_OK;
}

int32_t
mpcc_move_clamp(kir_kernel *k, int32_t e, int64_t lo, int64_t hi)
{
	e = kir_binary(k, KIR_MAX, e, kir_iconst(k, lo));
	return kir_binary(k, KIR_MIN, e, kir_iconst(k, hi));
}

int32_t
mpcc_move_wrap_index(kir_kernel *k, int32_t e, int64_t dim)
{
	e = kir_cast(k, MPCC_DTYPE_I64, e);
	int32_t neg = kir_binary(k, KIR_LT, e, kir_iconst(k, 0));
	e = kir_select(k, neg, kir_iadd(k, e, kir_iconst(k, dim)), e);
	return mpcc_move_clamp(k, e, 0, dim > 0 ? dim - 1 : 0);
}

int32_t
mpcc_move_load(kir_kernel *k, const mpcc_graph *g, int32_t vi, const int32_t *idx)
{
	const mpcc_value *v = &g->values[vi];
	int b = mpcc_lower_param(k, g, vi);
	return kir_load(k, b, mpcc_lower_linear(k, v->rank, v->dims, idx));
}

int32_t
mpcc_move_load0(kir_kernel *k, const mpcc_graph *g, int32_t vi)
{
	return kir_load(k, mpcc_lower_param(k, g, vi), kir_iconst(k, 0));
}

mpcc_status
mpcc_move_check(mpcc_lower *lx, int32_t ni, kir_kernel *k)
{
	if (kir_kernel_ok(k))
		return MPCC_OK;
	return mpcc_node_error(lx->d, &lx->g->nodes[ni], MPCC_ERR_NOMEM,
	                       "out of memory building its kernel");
}

mpcc_status
mpcc_move_lower_map(mpcc_lower *lx, int32_t ni, int oi, const char *suffix, mpcc_move_map_fn fn,
                    void *ctx)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *y = mpcc_move_out(g, n, oi);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, suffix);
	if (!k)
		return MPCC_ERR_NOMEM;
	int by = mpcc_lower_param(k, g, n->out[oi]);
	int32_t vars[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, y->rank, vars);
	int32_t value = fn(k, g, n, vars, ctx);
	value = kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, value);
	kir_stage *st =
	    kir_stage_add(k, y->rank, y->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	if (st)
		kir_stage_store(k, st, by, mpcc_lower_linear(k, y->rank, y->dims, vars), value);
	return mpcc_move_check(lx, ni, k);
}

/* Flatten's axis: in [-rank, rank], negative counts from the end; -1 if out
 * of range. */
static int
axis_incl(int64_t axis, int rank)
{
	if (axis < 0)
		axis += rank;
	return axis < 0 || axis > rank ? -1 : (int)axis;
}

static int64_t
numel_of(int rank, const int64_t *dims)
{
	int64_t n = 1;
	for (int i = 0; i < rank; i++)
		n *= dims[i];
	return n;
}

/* A stage that copies x into y element for element (same numel): the
 * lowering of every op that only changes the shape. */
static mpcc_status
lower_copy(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *y = mpcc_move_out(g, n, 0);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	int64_t total = mpcc_value_numel(y);
	int32_t v = kir_var(k, 0);
	int32_t val = kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, kir_load(k, bx, v));
	kir_stage *st = kir_stage_add(k, 1, &total, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	if (st)
		kir_stage_store(k, st, by, v, val);
	return mpcc_move_check(lx, ni, k);
}

/* Lowering of ops whose outputs infer already made constant: nothing runs. */
static mpcc_status
lower_none(mpcc_lower *lx, int32_t ni)
{
	return MPCC_OK;
}

/* ---------------------------------------------------------------- Constant */

static mpcc_status
set_const(mpcc_graph *g, mpcc_node *n, mpcc_value *y, mpcc_dtype t, int rank, const int64_t *dims,
          const void *src, size_t nbytes, mpcc_diag *d)
{
	void *data = malloc(nbytes ? nbytes : 1);
	if (!data)
		return mpcc_node_error(d, n, MPCC_ERR_NOMEM, "out of memory for constant data");
	if (nbytes)
		memcpy(data, src, nbytes);
	mpcc_move_set(y, t, rank, dims);
	mpcc_value_set_data(y, data, nbytes);
	return MPCC_OK;
}

/*
 * Constant: exactly one of the value attributes gives the data. Strings and
 * sparse tensors have no mpcc dtype, so they are unsupported.
 */
static mpcc_status
infer_constant(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *y = mpcc_move_out(g, n, 0);
	if (n->n_attr != 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "needs exactly one value attribute, has %d", n->n_attr);
	const mpcc_attr *a = &n->attr[0];
	int64_t dims[1];
	if (!strcmp(a->name, "value") && a->kind == MPCC_ATTR_TENSOR && a->t) {
		const mpcc_const_tensor *t = a->t;
		if (t->dtype == MPCC_DTYPE_UNDEF)
			return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
			                       "tensor dtype is not supported");
		return set_const(g, n, y, t->dtype, t->rank, t->dims, t->data, t->nbytes, d);
	}
	if (!strcmp(a->name, "value_float") && a->kind == MPCC_ATTR_FLOAT)
		return set_const(g, n, y, MPCC_DTYPE_F32, 0, dims, &a->f, sizeof(float), d);
	if (!strcmp(a->name, "value_int") && a->kind == MPCC_ATTR_INT)
		return set_const(g, n, y, MPCC_DTYPE_I64, 0, dims, &a->i, sizeof(int64_t), d);
	if (!strcmp(a->name, "value_floats") && a->kind == MPCC_ATTR_FLOATS) {
		dims[0] = a->n;
		return set_const(g, n, y, MPCC_DTYPE_F32, 1, dims, a->floats, a->n * sizeof(float),
		                 d);
	}
	if (!strcmp(a->name, "value_ints") && a->kind == MPCC_ATTR_INTS) {
		dims[0] = a->n;
		return set_const(g, n, y, MPCC_DTYPE_I64, 1, dims, a->ints, a->n * sizeof(int64_t),
		                 d);
	}
	return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "attribute '%s' is not supported",
	                       a->name);
}

/*
 * ConstantOfShape: the shape is constant data and the fill value a one-element
 * tensor attribute (default f32 zero), so the whole output is known here.
 */
static mpcc_status
infer_constant_of_shape(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	int64_t dims[MPCC_MAX_RANK];
	int rank;
	mpcc_status st = mpcc_move_const_ints(g, ni, 0, "shape", dims, MPCC_MAX_RANK, &rank, d);
	if (st)
		return st;
	if (rank < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "input 0 (shape) is missing");
	for (int i = 0; i < rank; i++)
		if (dims[i] < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "negative dim %lld in shape",
			                       (long long)dims[i]);
	mpcc_dtype t = MPCC_DTYPE_F32;
	float zero = 0;
	const void *fill = &zero;
	const mpcc_attr *a = mpcc_node_attr(n, "value");
	if (a) {
		if (a->kind != MPCC_ATTR_TENSOR || !a->t || a->t->dtype == MPCC_DTYPE_UNDEF ||
		    a->t->nbytes != mpcc_dtype_size(a->t->dtype))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "attribute 'value' must be a one-element tensor");
		t = a->t->dtype;
		fill = a->t->data;
	}
	size_t es = mpcc_dtype_size(t);
	int64_t count = numel_of(rank, dims);
	size_t nbytes = (size_t)count * es;
	uint8_t *data = malloc(nbytes ? nbytes : 1);
	if (!data)
		return mpcc_node_error(d, n, MPCC_ERR_NOMEM, "out of memory for %lld elements",
		                       (long long)count);
	for (int64_t i = 0; i < count; i++)
		memcpy(data + i * es, fill, es);
	mpcc_value *y = mpcc_move_out(g, n, 0);
	mpcc_move_set(y, t, rank, dims);
	mpcc_value_set_data(y, data, nbytes);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- Shape, Size */

/* Shape (start/end from opset 15, clamped like Slice without steps). */
static mpcc_status
infer_shape(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int64_t r = x->rank;
	int64_t start = mpcc_node_attr_int(n, "start", 0), end = mpcc_node_attr_int(n, "end", r);
	if (start < 0)
		start += r;
	if (end < 0)
		end += r;
	start = start < 0 ? 0 : start > r ? r : start;
	end = end < 0 ? 0 : end > r ? r : end;
	int64_t len = end > start ? end - start : 0;
	int64_t vals[MPCC_MAX_RANK];
	for (int64_t i = 0; i < len; i++) {
		if (x->sym[start + i] || x->dims[start + i] < 0)
			return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
			                       "dim %lld of '%s' is symbolic; bind it with --shape",
			                       (long long)(start + i), x->name);
		vals[i] = x->dims[start + i];
	}
	return set_const(g, n, mpcc_move_out(g, n, 0), MPCC_DTYPE_I64, 1, &len, vals,
	                 len * sizeof(int64_t), d);
}

static mpcc_status
infer_size(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	for (int i = 0; i < x->rank; i++)
		if (x->sym[i] || x->dims[i] < 0)
			return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
			                       "dim %d of '%s' is symbolic; bind it with --shape",
			                       i, x->name);
	int64_t count = numel_of(x->rank, x->dims);
	return set_const(g, n, mpcc_move_out(g, n, 0), MPCC_DTYPE_I64, 0, NULL, &count,
	                 sizeof(int64_t), d);
}

/* ---------------------------------------------------------------- Reshape and friends */

/*
 * Reshape: 0 copies the input's dim at that position (unless allowzero), one
 * -1 takes whatever the element count leaves. Opsets before 5 give the shape
 * as an attribute.
 */
static mpcc_status
infer_reshape(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int64_t dims[MPCC_MAX_RANK];
	int rank;
	const mpcc_attr *sa = mpcc_node_attr(n, "shape");
	if (n->opset < 5 && sa && sa->kind == MPCC_ATTR_INTS) {
		if (sa->n > MPCC_MAX_RANK)
			return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "rank %d", sa->n);
		rank = sa->n;
		memcpy(dims, sa->ints, rank * sizeof(int64_t));
	} else {
		mpcc_status st =
		    mpcc_move_const_ints(g, ni, 1, "shape", dims, MPCC_MAX_RANK, &rank, d);
		if (st)
			return st;
		if (rank < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "input 1 (shape) is missing");
	}
	bool allowzero = mpcc_node_attr_int(n, "allowzero", 0) != 0;
	int infer_at = -1;
	int64_t known = 1;
	for (int i = 0; i < rank; i++) {
		if (dims[i] == 0 && !allowzero) {
			if (i >= x->rank)
				return mpcc_node_error(d, n, MPCC_ERR_INVALID,
				                       "shape[%d] = 0 copies a dim the input lacks",
				                       i);
			dims[i] = x->dims[i];
		}
		if (dims[i] == -1) {
			if (infer_at >= 0)
				return mpcc_node_error(d, n, MPCC_ERR_INVALID,
				                       "shape has more than one -1");
			infer_at = i;
		} else if (dims[i] < 0) {
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "shape[%d] = %lld", i,
			                       (long long)dims[i]);
		} else {
			known *= dims[i];
		}
	}
	int64_t total = mpcc_value_numel(x);
	if (infer_at >= 0) {
		if (known == 0 || total % known)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "cannot infer the -1 dim: %lld elements over %lld",
			                       (long long)total, (long long)known);
		dims[infer_at] = total / known;
		known *= dims[infer_at];
	}
	if (known != total)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "shape holds %lld elements, the input %lld",
		                       (long long)known, (long long)total);
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, rank, dims);
	return MPCC_OK;
}

static mpcc_status
infer_flatten(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int axis = axis_incl(mpcc_node_attr_int(n, "axis", 1), x->rank);
	if (axis < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis out of range for rank %d",
		                       x->rank);
	int64_t dims[2] = {numel_of(axis, x->dims), numel_of(x->rank - axis, x->dims + axis)};
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, 2, dims);
	return MPCC_OK;
}

/* The axes of Squeeze/Unsqueeze: an attribute before opset 13, an input
 * from 13 on. *count is -1 when none are given. */
static mpcc_status
read_axes(mpcc_graph *g, int32_t ni, int64_t *axes, int *count, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	if (n->opset < 13) {
		const mpcc_attr *a = mpcc_node_attr(n, "axes");
		*count = -1;
		if (!a)
			return MPCC_OK;
		if (a->n > MPCC_MAX_RANK)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "%d axes", a->n);
		memcpy(axes, a->ints, a->n * sizeof(int64_t));
		*count = a->n;
		return MPCC_OK;
	}
	return mpcc_move_const_ints(g, ni, 1, "axes", axes, MPCC_MAX_RANK, count, d);
}

static mpcc_status
infer_squeeze(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int64_t axes[MPCC_MAX_RANK];
	int na;
	mpcc_status st = read_axes(g, ni, axes, &na, d);
	if (st)
		return st;
	bool drop[MPCC_MAX_RANK] = {false};
	for (int i = 0; i < x->rank; i++)
		drop[i] = na < 0 && x->dims[i] == 1;
	for (int i = 0; i < na; i++) {
		int a = mpcc_axis(axes[i], x->rank);
		if (a < 0 || x->dims[a] != 1)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "cannot squeeze axis %lld",
			                       (long long)axes[i]);
		drop[a] = true;
	}
	int64_t dims[MPCC_MAX_RANK];
	int r = 0;
	for (int i = 0; i < x->rank; i++)
		if (!drop[i])
			dims[r++] = x->dims[i];
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, r, dims);
	return MPCC_OK;
}

static mpcc_status
infer_unsqueeze(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int64_t axes[MPCC_MAX_RANK];
	int na;
	mpcc_status st = read_axes(g, ni, axes, &na, d);
	if (st)
		return st;
	if (na < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axes are missing");
	int r = x->rank + na;
	if (r > MPCC_MAX_RANK)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "result rank %d", r);
	bool ins[MPCC_MAX_RANK] = {false};
	for (int i = 0; i < na; i++) {
		int a = mpcc_axis(axes[i], r);
		if (a < 0 || ins[a])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "bad or repeated axis %lld",
			                       (long long)axes[i]);
		ins[a] = true;
	}
	int64_t dims[MPCC_MAX_RANK];
	for (int i = 0, j = 0; i < r; i++)
		dims[i] = ins[i] ? 1 : x->dims[j++];
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, r, dims);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- Transpose */

static mpcc_status
read_perm(const mpcc_node *n, const mpcc_value *x, int *perm, mpcc_diag *d)
{
	const mpcc_attr *a = mpcc_node_attr(n, "perm");
	bool seen[MPCC_MAX_RANK] = {false};
	if (a && a->n != x->rank)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "perm has %d entries for rank %d",
		                       a->n, x->rank);
	for (int i = 0; i < x->rank; i++) {
		int p = a ? mpcc_axis(a->ints[i], x->rank) : x->rank - 1 - i;
		if (p < 0 || seen[p])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "perm is not a permutation");
		seen[p] = true;
		perm[i] = p;
	}
	return MPCC_OK;
}

static mpcc_status
infer_transpose(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int perm[MPCC_MAX_RANK];
	mpcc_status st = read_perm(n, x, perm, d);
	if (st)
		return st;
	int64_t dims[MPCC_MAX_RANK];
	for (int i = 0; i < x->rank; i++)
		dims[i] = x->dims[perm[i]];
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, x->rank, dims);
	return MPCC_OK;
}

static int32_t
map_transpose(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	const int *perm = ctx;
	int32_t idx[MPCC_MAX_RANK];
	for (int i = 0; i < g->values[n->in[0]].rank; i++)
		idx[perm[i]] = vars[i];
	return mpcc_move_load(k, g, n->in[0], idx);
}

static mpcc_status
lower_transpose(mpcc_lower *lx, int32_t ni)
{
	mpcc_node *n = &lx->g->nodes[ni];
	int perm[MPCC_MAX_RANK];
	mpcc_status st = read_perm(n, mpcc_move_in(lx->g, n, 0), perm, lx->d);
	if (st)
		return st;
	return mpcc_move_lower_map(lx, ni, 0, "", map_transpose, perm);
}

/* ---------------------------------------------------------------- Concat */

static mpcc_status
infer_concat(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x0 = mpcc_move_in(g, n, 0);
	int axis = mpcc_axis(mpcc_node_attr_int(n, "axis", 0), x0->rank);
	if (axis < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis out of range for rank %d",
		                       x0->rank);
	int64_t dims[MPCC_MAX_RANK];
	memcpy(dims, x0->dims, sizeof dims);
	dims[axis] = 0;
	for (int i = 0; i < n->n_in; i++) {
		mpcc_value *x = mpcc_move_in(g, n, i);
		if (!x || x->rank != x0->rank || x->dtype != x0->dtype)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "input %d differs in rank or dtype", i);
		for (int j = 0; j < x->rank; j++)
			if (j != axis && x->dims[j] != x0->dims[j])
				return mpcc_node_error(d, n, MPCC_ERR_INVALID,
				                       "input %d differs in dim %d", i, j);
		dims[axis] += x->dims[axis];
	}
	mpcc_move_set(mpcc_move_out(g, n, 0), x0->dtype, x0->rank, dims);
	return MPCC_OK;
}

/* One stage per input, each over the input's shape, storing at the input's
 * offset along the axis. */
static mpcc_status
lower_concat(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *y = mpcc_move_out(g, n, 0);
	int axis = mpcc_axis(mpcc_node_attr_int(n, "axis", 0), y->rank);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int by = mpcc_lower_param(k, g, n->out[0]);
	int64_t off = 0;
	for (int i = 0; i < n->n_in; i++) {
		mpcc_value *x = mpcc_move_in(g, n, i);
		if (mpcc_value_numel(x) == 0)
			continue;
		int32_t vars[MPCC_MAX_RANK], oidx[MPCC_MAX_RANK];
		mpcc_lower_vars(k, 0, x->rank, vars);
		memcpy(oidx, vars, sizeof oidx);
		oidx[axis] = kir_iadd(k, vars[axis], kir_iconst(k, off));
		int32_t v = kir_cast(k, (mpcc_dtype)k->bufs[by].dtype,
		                     mpcc_move_load(k, g, n->in[i], vars));
		kir_stage *st =
		    kir_stage_add(k, x->rank, x->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
		if (st)
			kir_stage_store(k, st, by, mpcc_lower_linear(k, y->rank, y->dims, oidx), v);
		off += x->dims[axis];
	}
	return mpcc_move_check(lx, ni, k);
}

/* ---------------------------------------------------------------- Split */

/*
 * The part sizes of Split: the `split` attribute (before opset 13) or input,
 * else equal parts (num_outputs from opset 18, where the last part may be
 * smaller; before 18 the axis must divide evenly).
 */
static mpcc_status
split_sizes(mpcc_graph *g, int32_t ni, int *axis, int64_t *sizes, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	*axis = mpcc_axis(mpcc_node_attr_int(n, "axis", 0), x->rank);
	if (*axis < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis out of range for rank %d",
		                       x->rank);
	int64_t dim = x->dims[*axis];
	int cnt = -1;
	const mpcc_attr *a = mpcc_node_attr(n, "split");
	if (a) {
		if (a->n != n->n_out)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "split has %d entries for %d outputs", a->n,
			                       n->n_out);
		memcpy(sizes, a->ints, a->n * sizeof(int64_t));
		cnt = a->n;
	} else if (n->opset >= 13) {
		mpcc_status st = mpcc_move_const_ints(g, ni, 1, "split", sizes, n->n_out, &cnt, d);
		if (st)
			return st;
		if (cnt >= 0 && cnt != n->n_out)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "split has %d entries for %d outputs", cnt,
			                       n->n_out);
	}
	if (cnt < 0) {
		int64_t part = (dim + n->n_out - 1) / n->n_out;
		if (n->opset < 18 && dim % n->n_out)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "dim %lld does not split into %d parts",
			                       (long long)dim, n->n_out);
		for (int i = 0; i < n->n_out; i++) {
			int64_t left = dim - part * i;
			sizes[i] = left < 0 ? 0 : left < part ? left : part;
		}
		return MPCC_OK;
	}
	int64_t sum = 0;
	for (int i = 0; i < n->n_out; i++) {
		if (sizes[i] < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "negative split size");
		sum += sizes[i];
	}
	if (sum != dim)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "split sizes sum to %lld, the dim is %lld", (long long)sum,
		                       (long long)dim);
	return MPCC_OK;
}

static mpcc_status
infer_split(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int64_t *sizes = malloc(n->n_out * sizeof(int64_t));
	if (!sizes)
		return mpcc_node_error(d, n, MPCC_ERR_NOMEM, "out of memory");
	int axis;
	mpcc_status st = split_sizes(g, ni, &axis, sizes, d);
	for (int i = 0; !st && i < n->n_out; i++) {
		int64_t dims[MPCC_MAX_RANK];
		memcpy(dims, x->dims, sizeof dims);
		dims[axis] = sizes[i];
		if (n->out[i] != MPCC_NONE)
			mpcc_move_set(mpcc_move_out(g, n, i), x->dtype, x->rank, dims);
	}
	free(sizes);
	return st;
}

typedef struct split_ctx {
	int axis;
	int64_t off;
} split_ctx;

static int32_t
map_split(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	const split_ctx *c = ctx;
	int32_t idx[MPCC_MAX_RANK];
	memcpy(idx, vars, sizeof idx);
	idx[c->axis] = kir_iadd(k, vars[c->axis], kir_iconst(k, c->off));
	return mpcc_move_load(k, g, n->in[0], idx);
}

/* Offsets along the axis follow the inferred output dims. */
static mpcc_status
lower_split(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	split_ctx c = {mpcc_axis(mpcc_node_attr_int(n, "axis", 0), x->rank), 0};
	for (int i = 0; i < n->n_out; i++) {
		if (n->out[i] == MPCC_NONE)
			continue;
		char suffix[16];
		snprintf(suffix, sizeof suffix, "_%d", i);
		mpcc_status st = mpcc_move_lower_map(lx, ni, i, suffix, map_split, &c);
		if (st)
			return st;
		c.off += mpcc_move_out(g, n, i)->dims[c.axis];
	}
	return MPCC_OK;
}

/* ---------------------------------------------------------------- Slice */

typedef struct slice_params {
	int64_t start[MPCC_MAX_RANK], step[MPCC_MAX_RANK], dims[MPCC_MAX_RANK];
} slice_params;

static int64_t
clamp64(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/*
 * Slice's per-axis start, step and length. Opset 1 gives starts/ends/axes
 * as attributes, later opsets as constant inputs (plus steps). Negative
 * starts and ends count from the end; they are clamped the way the spec
 * states, differently for negative steps (end may reach -1 there).
 */
static mpcc_status
slice_params_get(mpcc_graph *g, int32_t ni, slice_params *p, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int64_t starts[MPCC_MAX_RANK], ends[MPCC_MAX_RANK], axes[MPCC_MAX_RANK],
	    steps[MPCC_MAX_RANK];
	int ns = 0, ne = 0, na = -1, nst = -1;
	if (n->opset < 10) {
		const mpcc_attr *a = mpcc_node_attr(n, "starts"), *b = mpcc_node_attr(n, "ends"),
		                *c = mpcc_node_attr(n, "axes");
		if (!a || !b || a->n > MPCC_MAX_RANK || b->n > MPCC_MAX_RANK ||
		    (c && c->n > MPCC_MAX_RANK))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "bad starts/ends/axes attributes");
		ns = a->n;
		ne = b->n;
		memcpy(starts, a->ints, ns * sizeof(int64_t));
		memcpy(ends, b->ints, ne * sizeof(int64_t));
		if (c) {
			na = c->n;
			memcpy(axes, c->ints, na * sizeof(int64_t));
		}
	} else {
		mpcc_status st;
		if ((st =
		         mpcc_move_const_ints(g, ni, 1, "starts", starts, MPCC_MAX_RANK, &ns, d)) ||
		    (st = mpcc_move_const_ints(g, ni, 2, "ends", ends, MPCC_MAX_RANK, &ne, d)) ||
		    (st = mpcc_move_const_ints(g, ni, 3, "axes", axes, MPCC_MAX_RANK, &na, d)) ||
		    (st = mpcc_move_const_ints(g, ni, 4, "steps", steps, MPCC_MAX_RANK, &nst, d)))
			return st;
	}
	if (ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "starts, ends, axes, steps differ in length");
	for (int i = 0; i < x->rank; i++) {
		p->start[i] = 0;
		p->step[i] = 1;
		p->dims[i] = x->dims[i];
	}
	bool seen[MPCC_MAX_RANK] = {false};
	for (int i = 0; i < ns; i++) {
		int a = mpcc_axis(na >= 0 ? axes[i] : i, x->rank);
		if (a < 0 || seen[a])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "bad or repeated axis");
		seen[a] = true;
		int64_t dim = x->dims[a], step = nst >= 0 ? steps[i] : 1;
		int64_t s = starts[i], e = ends[i];
		if (step == 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "step 0 on axis %d", a);
		if (s < 0)
			s += dim;
		if (e < 0)
			e += dim;
		int64_t len;
		if (step > 0) {
			s = clamp64(s, 0, dim);
			e = clamp64(e, 0, dim);
			len = e > s ? (e - s + step - 1) / step : 0;
		} else {
			s = clamp64(s, 0, dim - 1);
			e = clamp64(e, -1, dim - 1);
			len = s > e ? (s - e - step - 1) / -step : 0;
		}
		p->start[a] = s;
		p->step[a] = step;
		p->dims[a] = len;
	}
	return MPCC_OK;
}

static mpcc_status
infer_slice(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	slice_params p;
	mpcc_status st = slice_params_get(g, ni, &p, d);
	if (st)
		return st;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, x->rank, p.dims);
	return MPCC_OK;
}

static int32_t
map_slice(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	const slice_params *p = ctx;
	int32_t idx[MPCC_MAX_RANK];
	for (int i = 0; i < g->values[n->in[0]].rank; i++)
		idx[i] = kir_iadd(k, kir_iconst(k, p->start[i]), kir_imul(k, vars[i], p->step[i]));
	return mpcc_move_load(k, g, n->in[0], idx);
}

static mpcc_status
lower_slice(mpcc_lower *lx, int32_t ni)
{
	slice_params p;
	mpcc_status st = slice_params_get(lx->g, ni, &p, lx->d);
	if (st)
		return st;
	return mpcc_move_lower_map(lx, ni, 0, "", map_slice, &p);
}

/* ---------------------------------------------------------------- Expand, Tile */

static mpcc_status
infer_expand(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int64_t shape[MPCC_MAX_RANK], dims[MPCC_MAX_RANK];
	int ns;
	mpcc_status st = mpcc_move_const_ints(g, ni, 1, "shape", shape, MPCC_MAX_RANK, &ns, d);
	if (st)
		return st;
	if (ns < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "input 1 (shape) is missing");
	int r = ns > x->rank ? ns : x->rank;
	for (int i = 0; i < r; i++) {
		int ia = i - (r - x->rank), ib = i - (r - ns);
		int64_t a = ia >= 0 ? x->dims[ia] : 1, b = ib >= 0 ? shape[ib] : 1;
		if (a != b && a != 1 && b != 1)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "dim %lld does not broadcast to %lld", (long long)a,
			                       (long long)b);
		dims[i] = a == 1 ? b : a;
	}
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, r, dims);
	return MPCC_OK;
}

static int32_t
map_expand(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	const mpcc_value *x = &g->values[n->in[0]], *y = &g->values[n->out[0]];
	int b = mpcc_lower_param(k, g, n->in[0]);
	return kir_load(k, b, mpcc_lower_bcast(k, x, y->rank, vars));
}

static mpcc_status
lower_expand(mpcc_lower *lx, int32_t ni)
{
	return mpcc_move_lower_map(lx, ni, 0, "", map_expand, NULL);
}

static mpcc_status
infer_tile(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int64_t rep[MPCC_MAX_RANK], dims[MPCC_MAX_RANK];
	int nr;
	mpcc_status st = mpcc_move_const_ints(g, ni, 1, "repeats", rep, MPCC_MAX_RANK, &nr, d);
	if (st)
		return st;
	if (nr != x->rank)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "repeats has %d entries for rank %d",
		                       nr, x->rank);
	for (int i = 0; i < x->rank; i++) {
		if (rep[i] < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "negative repeat");
		dims[i] = x->dims[i] * rep[i];
	}
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, x->rank, dims);
	return MPCC_OK;
}

static int32_t
map_tile(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	const mpcc_value *x = &g->values[n->in[0]];
	int32_t idx[MPCC_MAX_RANK];
	for (int i = 0; i < x->rank; i++)
		idx[i] = x->dims[i] == 1
		             ? kir_iconst(k, 0)
		             : kir_binary(k, KIR_REM, vars[i], kir_iconst(k, x->dims[i]));
	return mpcc_move_load(k, g, n->in[0], idx);
}

static mpcc_status
lower_tile(mpcc_lower *lx, int32_t ni)
{
	return mpcc_move_lower_map(lx, ni, 0, "", map_tile, NULL);
}

/* ---------------------------------------------------------------- the table */

static const char *const no_attrs[] = {NULL};
static const char *const constant_attrs[] = {"value",         "value_float",  "value_floats",
                                             "value_int",     "value_ints",   "value_string",
                                             "value_strings", "sparse_value", NULL};
static const char *const value_attrs[] = {"value", NULL};
static const char *const shape_attrs[] = {"start", "end", NULL};
static const char *const reshape_attrs[] = {"allowzero", "shape", NULL};
static const char *const axis_attrs[] = {"axis", NULL};
static const char *const axes_attrs[] = {"axes", NULL};
static const char *const perm_attrs[] = {"perm", NULL};
static const char *const split_attrs[] = {"axis", "split", "num_outputs", NULL};
static const char *const slice_attrs[] = {"starts", "ends", "axes", NULL};
static const char *const gather_nd_attrs[] = {"batch_dims", NULL};
static const char *const scatter_attrs[] = {"axis", "reduction", NULL};
static const char *const reduction_attrs[] = {"reduction", NULL};
static const char *const pad_attrs[] = {"mode", "pads", "value", NULL};
static const char *const trilu_attrs[] = {"upper", NULL};
static const char *const eyelike_attrs[] = {"dtype", "k", NULL};
static const char *const d2s_attrs[] = {"blocksize", "mode", NULL};
static const char *const s2d_attrs[] = {"blocksize", NULL};
static const char *const resize_attrs[] = {"mode",
                                           "coordinate_transformation_mode",
                                           "nearest_mode",
                                           "cubic_coeff_a",
                                           "exclude_outside",
                                           "extrapolation_value",
                                           NULL};
static const char *const upsample_attrs[] = {"mode", "scales", NULL};
static const char *const revseq_attrs[] = {"batch_axis", "time_axis", NULL};

#define MANY (1 << 16)

const mpcc_op_rule mpcc_rules_movement[] = {
    {MPCC_OP_CONSTANT, 0, 0, 1, 1, constant_attrs, infer_constant, lower_none},
    {MPCC_OP_CONSTANTOFSHAPE, 1, 1, 1, 1, value_attrs, infer_constant_of_shape, lower_none},
    {MPCC_OP_SHAPE, 1, 1, 1, 1, shape_attrs, infer_shape, lower_none},
    {MPCC_OP_SIZE, 1, 1, 1, 1, no_attrs, infer_size, lower_none},
    {MPCC_OP_RESHAPE, 1, 2, 1, 1, reshape_attrs, infer_reshape, lower_copy},
    {MPCC_OP_FLATTEN, 1, 1, 1, 1, axis_attrs, infer_flatten, lower_copy},
    {MPCC_OP_SQUEEZE, 1, 2, 1, 1, axes_attrs, infer_squeeze, lower_copy},
    {MPCC_OP_UNSQUEEZE, 1, 2, 1, 1, axes_attrs, infer_unsqueeze, lower_copy},
    {MPCC_OP_TRANSPOSE, 1, 1, 1, 1, perm_attrs, infer_transpose, lower_transpose},
    {MPCC_OP_CONCAT, 1, MANY, 1, 1, axis_attrs, infer_concat, lower_concat},
    {MPCC_OP_SPLIT, 1, 2, 1, MANY, split_attrs, infer_split, lower_split},
    {MPCC_OP_SLICE, 1, 5, 1, 1, slice_attrs, infer_slice, lower_slice},
    {MPCC_OP_GATHER, 2, 2, 1, 1, axis_attrs, mpcc_move_infer_gather, mpcc_move_lower_gather},
    {MPCC_OP_GATHERELEMENTS, 2, 2, 1, 1, axis_attrs, mpcc_move_infer_gather_elements,
     mpcc_move_lower_gather_elements},
    {MPCC_OP_GATHERND, 2, 2, 1, 1, gather_nd_attrs, mpcc_move_infer_gather_nd,
     mpcc_move_lower_gather_nd},
    {MPCC_OP_SCATTER, 3, 3, 1, 1, axis_attrs, mpcc_move_infer_scatter_elements,
     mpcc_move_lower_scatter_elements},
    {MPCC_OP_SCATTERELEMENTS, 3, 3, 1, 1, scatter_attrs, mpcc_move_infer_scatter_elements,
     mpcc_move_lower_scatter_elements},
    {MPCC_OP_SCATTERND, 3, 3, 1, 1, reduction_attrs, mpcc_move_infer_scatter_nd,
     mpcc_move_lower_scatter_nd},
    {MPCC_OP_EXPAND, 2, 2, 1, 1, no_attrs, infer_expand, lower_expand},
    {MPCC_OP_TILE, 2, 2, 1, 1, no_attrs, infer_tile, lower_tile},
    {MPCC_OP_PAD, 1, 4, 1, 1, pad_attrs, mpcc_move_infer_pad, mpcc_move_lower_pad},
    {MPCC_OP_RANGE, 3, 3, 1, 1, no_attrs, mpcc_move_infer_range, mpcc_move_lower_range},
    {MPCC_OP_TRILU, 1, 2, 1, 1, trilu_attrs, mpcc_move_infer_trilu, mpcc_move_lower_trilu},
    {MPCC_OP_EYELIKE, 1, 1, 1, 1, eyelike_attrs, mpcc_move_infer_eyelike, mpcc_move_lower_eyelike},
    {MPCC_OP_ONEHOT, 3, 3, 1, 1, axis_attrs, mpcc_move_infer_onehot, mpcc_move_lower_onehot},
    {MPCC_OP_DEPTHTOSPACE, 1, 1, 1, 1, d2s_attrs, mpcc_move_infer_depth_space,
     mpcc_move_lower_depth_space},
    {MPCC_OP_SPACETODEPTH, 1, 1, 1, 1, s2d_attrs, mpcc_move_infer_depth_space,
     mpcc_move_lower_depth_space},
    {MPCC_OP_RESIZE, 1, 4, 1, 1, resize_attrs, mpcc_move_infer_resize, mpcc_move_lower_resize},
    {MPCC_OP_UPSAMPLE, 1, 2, 1, 1, upsample_attrs, mpcc_move_infer_resize, mpcc_move_lower_resize},
    {MPCC_OP_REVERSESEQUENCE, 2, 2, 1, 1, revseq_attrs, mpcc_move_infer_revseq,
     mpcc_move_lower_revseq},
    {.op = MPCC_OP_INVALID},
};
