/*
 * ops/movement_gather.c - Gather, GatherElements, GatherND and the scatters
 * (Scatter, ScatterElements, ScatterND).
 *
 * Gathers are index maps whose load index along the gathered axes comes from
 * the indices tensor: negative indices wrap once and every data-derived
 * index is clamped into range, so no load leaves its buffer whatever the
 * data holds. Scatters are two stages of one kernel: a copy of data into the
 * output, then a `serial` stage over the updates that stores (or combines
 * with the reduction) at the data-derived position, in order, so duplicate
 * indices resolve as the reference does (last write wins, or accumulate).
 */
#include <string.h>

#include "ops/movement_impl.h"

/* ---------------------------------------------------------------- Gather */

static mpcc_status
infer_gather_common(mpcc_graph *g, int32_t ni, int *axis, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0), *ind = mpcc_move_in(g, n, 1);
	if (!mpcc_dtype_is_int(ind->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "indices must be integers, not %s",
		                       mpcc_dtype_name(ind->dtype));
	*axis = mpcc_axis(mpcc_node_attr_int(n, "axis", 0), x->rank);
	if (*axis < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis out of range for rank %d",
		                       x->rank);
	return MPCC_OK;
}

mpcc_status
mpcc_move_infer_gather(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0), *ind = mpcc_move_in(g, n, 1);
	int axis;
	mpcc_status st = infer_gather_common(g, ni, &axis, d);
	if (st)
		return st;
	int r = x->rank + ind->rank - 1;
	if (r > MPCC_MAX_RANK)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "result rank %d", r);
	int64_t dims[MPCC_MAX_RANK];
	int k = 0;
	for (int i = 0; i < axis; i++)
		dims[k++] = x->dims[i];
	for (int i = 0; i < ind->rank; i++)
		dims[k++] = ind->dims[i];
	for (int i = axis + 1; i < x->rank; i++)
		dims[k++] = x->dims[i];
	mpcc_value *y = mpcc_move_out(g, n, 0);
	mpcc_move_set(y, x->dtype, r, dims);
	if (x->dims[axis] == 0 && mpcc_value_numel(y) > 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "gathers from an empty axis");
	return MPCC_OK;
}

static int32_t
map_gather(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	int axis = *(const int *)ctx;
	const mpcc_value *x = &g->values[n->in[0]], *ind = &g->values[n->in[1]];
	int32_t gi = mpcc_move_load(k, g, n->in[1], vars + axis);
	int32_t idx[MPCC_MAX_RANK];
	for (int i = 0; i < x->rank; i++)
		idx[i] = i < axis ? vars[i] : i > axis ? vars[i + ind->rank - 1] : 0;
	idx[axis] = mpcc_move_wrap_index(k, gi, x->dims[axis]);
	return mpcc_move_load(k, g, n->in[0], idx);
}

mpcc_status
mpcc_move_lower_gather(mpcc_lower *lx, int32_t ni)
{
	int axis;
	mpcc_status st = infer_gather_common(lx->g, ni, &axis, lx->d);
	return st ? st : mpcc_move_lower_map(lx, ni, 0, "", map_gather, &axis);
}

/* ---------------------------------------------------------------- GatherElements */

mpcc_status
mpcc_move_infer_gather_elements(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0), *ind = mpcc_move_in(g, n, 1);
	int axis;
	mpcc_status st = infer_gather_common(g, ni, &axis, d);
	if (st)
		return st;
	if (ind->rank != x->rank)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "indices rank %d differs from data rank %d", ind->rank,
		                       x->rank);
	mpcc_value *y = mpcc_move_out(g, n, 0);
	mpcc_move_set(y, x->dtype, ind->rank, ind->dims);
	if (x->dims[axis] == 0 && mpcc_value_numel(y) > 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "gathers from an empty axis");
	return MPCC_OK;
}

/* The data index of GatherElements and ScatterElements: the position itself,
 * with the axis entry read from indices. */
static void
elements_index(kir_kernel *k, const mpcc_graph *g, const mpcc_node *n, int axis,
               const int32_t *vars, int32_t *idx)
{
	const mpcc_value *x = &g->values[n->in[0]];
	int32_t gi = mpcc_move_load(k, g, n->in[1], vars);
	memcpy(idx, vars, x->rank * sizeof(int32_t));
	idx[axis] = mpcc_move_wrap_index(k, gi, x->dims[axis]);
}

static int32_t
map_gather_elements(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars,
                    void *ctx)
{
	int32_t idx[MPCC_MAX_RANK];
	elements_index(k, g, n, *(const int *)ctx, vars, idx);
	return mpcc_move_load(k, g, n->in[0], idx);
}

mpcc_status
mpcc_move_lower_gather_elements(mpcc_lower *lx, int32_t ni)
{
	int axis;
	mpcc_status st = infer_gather_common(lx->g, ni, &axis, lx->d);
	return st ? st : mpcc_move_lower_map(lx, ni, 0, "", map_gather_elements, &axis);
}

/* ---------------------------------------------------------------- GatherND */

/*
 * GatherND with b batch dims: the last dim m of indices addresses data dims
 * b..b+m-1; the output is indices.shape[:-1] + data.shape[b+m:].
 */
static mpcc_status
gather_nd_check(mpcc_graph *g, const mpcc_node *n, int *b, int *m, mpcc_diag *d)
{
	mpcc_value *x = mpcc_move_in(g, n, 0), *ind = mpcc_move_in(g, n, 1);
	*b = (int)mpcc_node_attr_int(n, "batch_dims", 0);
	if (!mpcc_dtype_is_int(ind->dtype) || ind->rank < 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "indices must be integers of rank >= 1");
	*m = (int)ind->dims[ind->rank - 1];
	if (*b < 0 || *b >= ind->rank || *b >= x->rank || *m < 0 || *b + *m > x->rank)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "batch_dims %d and index depth %d for ranks %d, %d", *b, *m,
		                       x->rank, ind->rank);
	for (int i = 0; i < *b; i++)
		if (x->dims[i] != ind->dims[i])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "batch dim %d differs", i);
	return MPCC_OK;
}

mpcc_status
mpcc_move_infer_gather_nd(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0), *ind = mpcc_move_in(g, n, 1);
	int b = 0, m = 0;
	mpcc_status st = gather_nd_check(g, n, &b, &m, d);
	if (st)
		return st;
	int r = ind->rank - 1 + x->rank - b - m;
	if (r > MPCC_MAX_RANK)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "result rank %d", r);
	int64_t dims[MPCC_MAX_RANK];
	int k = 0;
	for (int i = 0; i < ind->rank - 1; i++)
		dims[k++] = ind->dims[i];
	for (int i = b + m; i < x->rank; i++)
		dims[k++] = x->dims[i];
	mpcc_value *y = mpcc_move_out(g, n, 0);
	mpcc_move_set(y, x->dtype, r, dims);
	for (int i = b; i < b + m; i++)
		if (x->dims[i] == 0 && mpcc_value_numel(y) > 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "gathers from an empty axis");
	return MPCC_OK;
}

/* Data index for the ND ops: vars[0..q-2] select an index tuple (its first
 * `first` entries copied from batch vars), the tuple addresses data dims
 * first..first+m-1, and the remaining vars the trailing data dims. */
static void
nd_index(kir_kernel *k, const mpcc_graph *g, int32_t data, int32_t indices, int first,
         const int32_t *vars, int32_t *idx)
{
	const mpcc_value *x = &g->values[data], *ind = &g->values[indices];
	int q = ind->rank, m = (int)ind->dims[q - 1];
	int32_t iidx[MPCC_MAX_RANK];
	memcpy(iidx, vars, (q - 1) * sizeof(int32_t));
	for (int i = 0; i < first; i++)
		idx[i] = vars[i];
	for (int j = 0; j < m; j++) {
		iidx[q - 1] = kir_iconst(k, j);
		int32_t e = mpcc_move_load(k, g, indices, iidx);
		idx[first + j] = mpcc_move_wrap_index(k, e, x->dims[first + j]);
	}
	for (int i = first + m; i < x->rank; i++)
		idx[i] = vars[q - 1 + i - first - m];
}

static int32_t
map_gather_nd(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, const int32_t *vars, void *ctx)
{
	int32_t idx[MPCC_MAX_RANK];
	nd_index(k, g, n->in[0], n->in[1], *(const int *)ctx, vars, idx);
	return mpcc_move_load(k, g, n->in[0], idx);
}

mpcc_status
mpcc_move_lower_gather_nd(mpcc_lower *lx, int32_t ni)
{
	int b = 0, m = 0;
	mpcc_status st = gather_nd_check(lx->g, &lx->g->nodes[ni], &b, &m, lx->d);
	return st ? st : mpcc_move_lower_map(lx, ni, 0, "", map_gather_nd, &b);
}

/* ---------------------------------------------------------------- scatters */

static mpcc_status
scatter_reduction(const mpcc_node *n, kir_op *op, mpcc_diag *d)
{
	const char *r = mpcc_node_attr_string(n, "reduction", "none");
	if (!strcmp(r, "none"))
		*op = KIR_OP_COUNT;
	else if (!strcmp(r, "add"))
		*op = KIR_ADD;
	else if (!strcmp(r, "mul"))
		*op = KIR_MUL;
	else if (!strcmp(r, "max"))
		*op = KIR_MAX;
	else if (!strcmp(r, "min"))
		*op = KIR_MIN;
	else
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "reduction '%s'", r);
	return MPCC_OK;
}

/* old (op) new in the output dtype: f16/bf16 combine in f32, bool as logic. */
static int32_t
combine(kir_kernel *k, kir_op op, int32_t old, int32_t upd, mpcc_dtype t)
{
	if (op == KIR_OP_COUNT)
		return upd;
	if (t == MPCC_DTYPE_BOOL) {
		kir_op lop = op == KIR_ADD || op == KIR_MAX ? KIR_OR : KIR_AND;
		return kir_binary(k, lop, old, upd);
	}
	mpcc_dtype ct = t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 ? MPCC_DTYPE_F32 : t;
	int32_t v = kir_binary(k, op, kir_cast(k, ct, old), kir_cast(k, ct, upd));
	return kir_cast(k, t, v);
}

/*
 * The scatter kernel: stage 0 copies data into the output, stage 1 (serial)
 * runs over the updates and stores at idx_fn's data position.
 */
typedef void (*scatter_index_fn)(kir_kernel *k, const mpcc_graph *g, const mpcc_node *n, int arg,
                                 const int32_t *vars, int32_t *idx);

static mpcc_status
lower_scatter(mpcc_lower *lx, int32_t ni, scatter_index_fn fn, int arg)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	kir_op op;
	mpcc_status st = scatter_reduction(n, &op, lx->d);
	if (st)
		return st;
	mpcc_value *y = mpcc_move_out(g, n, 0), *u = mpcc_move_in(g, n, 2);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype t = (mpcc_dtype)k->bufs[by].dtype;

	int64_t total = mpcc_value_numel(y);
	int32_t v0 = kir_var(k, 0);
	int32_t copy = kir_cast(k, t, kir_load(k, mpcc_lower_param(k, g, n->in[0]), v0));
	kir_stage *s0 = kir_stage_add(k, 1, &total, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	if (s0)
		kir_stage_store(k, s0, by, v0, copy);

	if (total > 0) {
		int32_t vars[MPCC_MAX_RANK], idx[MPCC_MAX_RANK];
		mpcc_lower_vars(k, 0, u->rank, vars);
		fn(k, g, n, arg, vars, idx);
		int32_t at = mpcc_lower_linear(k, y->rank, y->dims, idx);
		int32_t upd = kir_cast(k, t, mpcc_move_load(k, g, n->in[2], vars));
		int32_t val = combine(k, op, kir_load(k, by, at), upd, t);
		kir_stage *s1 =
		    kir_stage_add(k, u->rank, u->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
		if (s1) {
			s1->serial = true;
			kir_stage_store(k, s1, by, at, val);
		}
	}
	return mpcc_move_check(lx, ni, k);
}

static mpcc_status
scatter_elements_check(mpcc_graph *g, int32_t ni, int *axis, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0), *ind = mpcc_move_in(g, n, 1),
	           *u = mpcc_move_in(g, n, 2);
	kir_op op;
	mpcc_status st = infer_gather_common(g, ni, axis, d);
	if (st || (st = scatter_reduction(n, &op, d)))
		return st;
	if (ind->rank != x->rank || u->rank != x->rank || u->dtype != x->dtype)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "data, indices and updates differ in rank");
	for (int i = 0; i < x->rank; i++)
		if (ind->dims[i] != u->dims[i])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "indices and updates differ in shape");
	if (x->dims[*axis] == 0 && mpcc_value_numel(u) > 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "scatters into an empty axis");
	return MPCC_OK;
}

mpcc_status
mpcc_move_infer_scatter_elements(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	int axis;
	mpcc_status st = scatter_elements_check(g, ni, &axis, d);
	if (st)
		return st;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, x->rank, x->dims);
	return MPCC_OK;
}

static void
scatter_elements_index(kir_kernel *k, const mpcc_graph *g, const mpcc_node *n, int axis,
                       const int32_t *vars, int32_t *idx)
{
	elements_index(k, g, n, axis, vars, idx);
}

mpcc_status
mpcc_move_lower_scatter_elements(mpcc_lower *lx, int32_t ni)
{
	int axis;
	mpcc_status st = scatter_elements_check(lx->g, ni, &axis, lx->d);
	return st ? st : lower_scatter(lx, ni, scatter_elements_index, axis);
}

static mpcc_status
scatter_nd_check(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0), *ind = mpcc_move_in(g, n, 1),
	           *u = mpcc_move_in(g, n, 2);
	kir_op op;
	mpcc_status st = scatter_reduction(n, &op, d);
	if (st)
		return st;
	if (!mpcc_dtype_is_int(ind->dtype) || ind->rank < 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "indices must be integers of rank >= 1");
	int q = ind->rank, m = (int)ind->dims[q - 1];
	if (m < 0 || m > x->rank || u->rank != q - 1 + x->rank - m || u->dtype != x->dtype)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "updates do not match data and indices");
	for (int i = 0; i < q - 1; i++)
		if (u->dims[i] != ind->dims[i])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "updates dim %d differs", i);
	for (int i = m; i < x->rank; i++)
		if (u->dims[q - 1 + i - m] != x->dims[i])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "updates dim %d differs",
			                       q - 1 + i - m);
	for (int i = 0; i < m; i++)
		if (x->dims[i] == 0 && mpcc_value_numel(u) > 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "scatters into an empty axis");
	return MPCC_OK;
}

mpcc_status
mpcc_move_infer_scatter_nd(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_status st = scatter_nd_check(g, ni, d);
	if (st)
		return st;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, x->rank, x->dims);
	return MPCC_OK;
}

static void
scatter_nd_index(kir_kernel *k, const mpcc_graph *g, const mpcc_node *n, int arg,
                 const int32_t *vars, int32_t *idx)
{
	nd_index(k, g, n->in[0], n->in[1], 0, vars, idx);
}

mpcc_status
mpcc_move_lower_scatter_nd(mpcc_lower *lx, int32_t ni)
{
	mpcc_status st = scatter_nd_check(lx->g, ni, lx->d);
	return st ? st : lower_scatter(lx, ni, scatter_nd_index, 0);
}
