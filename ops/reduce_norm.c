/*
 * ops/reduce_norm.c - the normalisations: BatchNormalization (inference),
 * InstanceNormalization, LayerNormalization, LRN, MeanVarianceNormalization
 * and LpNormalization.
 *
 * Statistics over the normalised axes are reduction stages into per-row
 * TEMP buffers (mpcc_red_mean_var: mean, then variance from the deviations);
 * a map stage over the whole input then normalises, loading the row's
 * statistics by the kept axes' linear index. Everything computes in f32
 * (f64 for f64 inputs) and narrows only at the final store.
 */
#include <math.h>
#include <string.h>

#include "ops/reduce_internal.h"

const char *const mpcc_red_attrs_batchnorm[] = {
    "epsilon", "momentum", "training_mode", "spatial", "is_test", "consumed_inputs", NULL};
const char *const mpcc_red_attrs_instancenorm[] = {"epsilon", NULL};
const char *const mpcc_red_attrs_layernorm[] = {"axis", "epsilon", "stash_type", NULL};
const char *const mpcc_red_attrs_lrn[] = {"alpha", "beta", "bias", "size", NULL};
const char *const mpcc_red_attrs_mvn[] = {"axes", NULL};
const char *const mpcc_red_attrs_lpnorm[] = {"axis", "p", NULL};

/* Loads per-channel parameter input i of node n at channel expr c. */
static int32_t
chan_load(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, int i, int32_t c, mpcc_dtype cdt)
{
	return mpcc_red_load(k, mpcc_lower_param(k, g, n->in[i]), c, cdt);
}

/* Errors unless input i is a 1-D tensor of exactly c elements. */
static mpcc_status
need_channels(mpcc_graph *g, const mpcc_node *n, int i, int64_t c, const char *what, mpcc_diag *d)
{
	const mpcc_value *v = mpcc_red_in(g, n, i);
	if (!v)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input %s", what);
	if (!mpcc_dtype_is_float(v->dtype) || v->rank != 1 || (v->dims[0] != c && c >= 0))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "%s must be a 1-D float tensor of %lld channels", what,
		                       (long long)c);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- BatchNormalization */

mpcc_status
mpcc_red_infer_batchnorm(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	static const char *const names[] = {"scale", "B", "input_mean", "input_var"};
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *y = mpcc_red_out(g, n, 0);
	mpcc_status st = mpcc_red_need_float(n, x, "X", d);
	if (st)
		return st;
	/* training_mode (opset 14+) may write running_mean and running_var;
	 * passes/train_modes.c expands such a node into ordinary ops before
	 * lowering. The statistics outputs of opsets before 14 are refused. */
	bool training = mpcc_node_attr_int(n, "training_mode", 0) != 0;
	for (int i = 1; i < n->n_out; i++)
		if (n->out[i] != MPCC_NONE && !(training && i <= 2))
			return mpcc_node_error(
			    d, n, MPCC_ERR_UNSUPPORTED,
			    "BatchNormalization's output %d (saved statistics of opsets before "
			    "14) is not supported",
			    i);
	if (mpcc_node_attr_int(n, "spatial", 1) != 1)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
		                       "BatchNormalization with spatial=0 is not supported");
	if (!y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing output");
	if (x->rank < 2)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "X must have rank >= 2 (N, C, ...)");
	for (int i = 1; i <= 4; i++) {
		st = need_channels(g, n, i, x->dims[1], names[i - 1], d);
		if (st)
			return st;
	}
	mpcc_red_set_like(y, x->dtype, x);
	for (int i = 1; training && i < n->n_out && i <= 2; i++)
		if (n->out[i] != MPCC_NONE)
			mpcc_red_set_like(&g->values[n->out[i]], g->values[n->in[2 + i]].dtype,
			                  &g->values[n->in[2 + i]]);
	return MPCC_OK;
}

/* y = (x - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + B[c], one map stage. */
mpcc_status
mpcc_red_lower_batchnorm(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0);
	if (mpcc_node_attr_int(n, "training_mode", 0) != 0)
		return mpcc_node_error(lx->d, n, MPCC_ERR_INTERNAL,
		                       "training-mode BatchNormalization reached lowering "
		                       "unexpanded");
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype cdt = mpcc_red_float_compute(x->dtype);
	double eps = mpcc_node_attr_float(n, "epsilon", 1e-5f);
	int32_t v[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, x->rank, v);
	int32_t idx = mpcc_lower_linear(k, x->rank, x->dims, v);
	int32_t c = v[1];
	int32_t var =
	    kir_binary(k, KIR_ADD, chan_load(k, g, n, 4, c, cdt), kir_const_f(k, cdt, eps));
	int32_t y =
	    kir_binary(k, KIR_SUB, mpcc_red_load(k, bx, idx, cdt), chan_load(k, g, n, 3, c, cdt));
	y = kir_binary(k, KIR_DIV, y, kir_unary(k, KIR_SQRT, var));
	y = kir_binary(k, KIR_MUL, y, chan_load(k, g, n, 1, c, cdt));
	y = kir_binary(k, KIR_ADD, y, chan_load(k, g, n, 2, c, cdt));
	kir_stage *s = mpcc_red_map_stage(k, x->rank, x->dims);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, idx, kir_cast(k, mpcc_red_buf_dtype(k, by), y));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- InstanceNormalization */

mpcc_status
mpcc_red_infer_instancenorm(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *y = mpcc_red_out(g, n, 0);
	mpcc_status st = mpcc_red_need_float(n, x, "input", d);
	if (st)
		return st;
	if (!y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing output");
	if (x->rank < 2)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "input must have rank >= 2 (N, C, ...)");
	if ((st = need_channels(g, n, 1, x->dims[1], "scale", d)) ||
	    (st = need_channels(g, n, 2, x->dims[1], "B", d)))
		return st;
	mpcc_red_set_like(y, x->dtype, x);
	return MPCC_OK;
}

/* Mean and variance per (n, c) over the spatial axes, then a map stage. */
mpcc_status
mpcc_red_lower_instancenorm(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0);
	if (mpcc_node_attr_int(n, "training_mode", 0) != 0)
		return mpcc_node_error(lx->d, n, MPCC_ERR_INTERNAL,
		                       "training-mode BatchNormalization reached lowering "
		                       "unexpanded");
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype cdt = mpcc_red_float_compute(x->dtype);
	double eps = mpcc_node_attr_float(n, "epsilon", 1e-5f);
	bool red[MPCC_MAX_RANK];
	for (int i = 0; i < x->rank; i++)
		red[i] = i >= 2;
	mpcc_red_view rv;
	mpcc_red_view_init(&rv, x, red);
	int tmean, tvar;
	mpcc_status st = mpcc_red_mean_var(k, &rv, bx, cdt, &tmean, &tvar);
	if (st)
		return st;
	int32_t ax[MPCC_MAX_RANK];
	mpcc_red_axes_full(k, &rv, ax);
	int32_t idx = mpcc_red_index(k, &rv, ax), kidx = mpcc_red_kept_index(k, &rv, ax);
	int32_t var = kir_binary(k, KIR_ADD, kir_load(k, tvar, kidx), kir_const_f(k, cdt, eps));
	int32_t y =
	    kir_binary(k, KIR_SUB, mpcc_red_load(k, bx, idx, cdt), kir_load(k, tmean, kidx));
	y = kir_binary(k, KIR_DIV, y, kir_unary(k, KIR_SQRT, var));
	y = kir_binary(k, KIR_MUL, y, chan_load(k, g, n, 1, ax[1], cdt));
	y = kir_binary(k, KIR_ADD, y, chan_load(k, g, n, 2, ax[1], cdt));
	kir_stage *s = mpcc_red_map_stage(k, x->rank, x->dims);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, idx, kir_cast(k, mpcc_red_buf_dtype(k, by), y));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- LayerNormalization */

/* The dtype of LayerNormalization's Mean and InvStdDev outputs. */
static mpcc_dtype
layernorm_stash(const mpcc_node *n, const mpcc_value *x)
{
	return x->dtype == MPCC_DTYPE_F64 ? MPCC_DTYPE_F64 : MPCC_DTYPE_F32;
}

/* True when b broadcasts unidirectionally to the trailing dims of x. */
static bool
bcasts_to(const mpcc_value *b, const mpcc_value *x)
{
	if (b->rank > x->rank)
		return false;
	for (int i = 0; i < b->rank; i++) {
		int64_t bd = b->dims[b->rank - 1 - i], xd = x->dims[x->rank - 1 - i];
		if (bd != 1 && bd != xd)
			return false;
	}
	return true;
}

mpcc_status
mpcc_red_infer_layernorm(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *sc = mpcc_red_in(g, n, 1), *b = mpcc_red_in(g, n, 2);
	mpcc_value *y = mpcc_red_out(g, n, 0);
	mpcc_status st = mpcc_red_need_float(n, x, "X", d);
	if (st)
		return st;
	int64_t st_type = mpcc_node_attr_int(n, "stash_type", 1);
	if (st_type != 1 && st_type != 11)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "stash_type %lld",
		                       (long long)st_type);
	int64_t a64 = mpcc_node_attr_int(n, "axis", -1);
	int a = mpcc_axis(a64, x->rank);
	if (a < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis %lld out of range for rank %d",
		                       (long long)a64, x->rank);
	if (!y || !sc)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing Scale or output");
	if (!mpcc_dtype_is_float(sc->dtype) || !bcasts_to(sc, x))
		return mpcc_node_error(
		    d, n, MPCC_ERR_INVALID,
		    "Scale must be a float tensor broadcastable to X's trailing dims");
	if (b && (!mpcc_dtype_is_float(b->dtype) || !bcasts_to(b, x)))
		return mpcc_node_error(
		    d, n, MPCC_ERR_INVALID,
		    "B must be a float tensor broadcastable to X's trailing dims");
	mpcc_red_set_like(y, x->dtype, x);
	int64_t dims[MPCC_MAX_RANK];
	const char *sym[MPCC_MAX_RANK];
	for (int i = 0; i < x->rank; i++) {
		dims[i] = i < a ? x->dims[i] : 1;
		sym[i] = i < a ? x->sym[i] : NULL;
	}
	for (int o = 1; o <= 2; o++) {
		mpcc_value *v = mpcc_red_out(g, n, o);
		if (v)
			mpcc_red_set(v, layernorm_stash(n, x), x->rank, dims, sym);
	}
	return MPCC_OK;
}

/*
 * Mean and variance over axes [axis, rank) into per-row temporaries, then a
 * map stage over X that normalises and applies Scale and B (broadcast from
 * the right), and a map stage over the rows for the optional Mean and
 * InvStdDev outputs.
 */
mpcc_status
mpcc_red_lower_layernorm(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *sc = mpcc_red_in(g, n, 1), *b = mpcc_red_in(g, n, 2);
	mpcc_value *mo = mpcc_red_out(g, n, 1), *io = mpcc_red_out(g, n, 2);
	int a = mpcc_axis(mpcc_node_attr_int(n, "axis", -1), x->rank);
	if (mpcc_node_attr_int(n, "training_mode", 0) != 0)
		return mpcc_node_error(lx->d, n, MPCC_ERR_INTERNAL,
		                       "training-mode BatchNormalization reached lowering "
		                       "unexpanded");
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	int bs = mpcc_lower_param(k, g, n->in[1]), bb = b ? mpcc_lower_param(k, g, n->in[2]) : -1;
	mpcc_dtype cdt = mpcc_red_float_compute(x->dtype);
	double eps = mpcc_node_attr_float(n, "epsilon", 1e-5f);
	bool red[MPCC_MAX_RANK];
	for (int i = 0; i < x->rank; i++)
		red[i] = i >= a;
	mpcc_red_view rv;
	mpcc_red_view_init(&rv, x, red);
	int tmean, tvar;
	mpcc_status st = mpcc_red_mean_var(k, &rv, bx, cdt, &tmean, &tvar);
	if (st)
		return st;

	int32_t ax[MPCC_MAX_RANK];
	mpcc_red_axes_full(k, &rv, ax);
	int32_t idx = mpcc_red_index(k, &rv, ax), kidx = mpcc_red_kept_index(k, &rv, ax);
	int32_t var = kir_binary(k, KIR_ADD, kir_load(k, tvar, kidx), kir_const_f(k, cdt, eps));
	int32_t inv = kir_binary(k, KIR_DIV, kir_const_f(k, cdt, 1), kir_unary(k, KIR_SQRT, var));
	int32_t y =
	    kir_binary(k, KIR_SUB, mpcc_red_load(k, bx, idx, cdt), kir_load(k, tmean, kidx));
	y = kir_binary(k, KIR_MUL, y, inv);
	y = kir_binary(k, KIR_MUL, y,
	               mpcc_red_load(k, bs, mpcc_lower_bcast(k, sc, x->rank, ax), cdt));
	if (bb >= 0)
		y = kir_binary(k, KIR_ADD, y,
		               mpcc_red_load(k, bb, mpcc_lower_bcast(k, b, x->rank, ax), cdt));
	kir_stage *s = mpcc_red_map_stage(k, x->rank, x->dims);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, idx, kir_cast(k, mpcc_red_buf_dtype(k, by), y));

	if (!mo && !io)
		return MPCC_OK;
	int32_t pv[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, rv.n_par, pv);
	int32_t ridx = mpcc_lower_linear(k, rv.n_par, rv.par_ext, pv);
	int32_t rvar = kir_binary(k, KIR_ADD, kir_load(k, tvar, ridx), kir_const_f(k, cdt, eps));
	int32_t rinv = kir_binary(k, KIR_DIV, kir_const_f(k, cdt, 1), kir_unary(k, KIR_SQRT, rvar));
	int32_t rmean = kir_load(k, tmean, ridx);
	int bm = mo ? mpcc_lower_param(k, g, n->out[1]) : -1;
	int bi = io ? mpcc_lower_param(k, g, n->out[2]) : -1;
	s = mpcc_red_map_stage(k, rv.n_par, rv.par_ext);
	if (!s)
		return MPCC_ERR_NOMEM;
	if (bm >= 0)
		kir_stage_store(k, s, bm, ridx, kir_cast(k, mpcc_red_buf_dtype(k, bm), rmean));
	if (bi >= 0)
		kir_stage_store(k, s, bi, ridx, kir_cast(k, mpcc_red_buf_dtype(k, bi), rinv));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- LRN */

mpcc_status
mpcc_red_infer_lrn(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *y = mpcc_red_out(g, n, 0);
	mpcc_status st = mpcc_red_need_float(n, x, "X", d);
	if (st)
		return st;
	if (!y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing output");
	if (x->rank < 2)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "X must have rank >= 2 (N, C, ...)");
	const mpcc_attr *sz = mpcc_node_attr(n, "size");
	if (!sz || sz->kind != MPCC_ATTR_INT || sz->i < 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "attribute size must be a positive int");
	mpcc_red_set_like(y, x->dtype, x);
	return MPCC_OK;
}

/*
 * One stage: the parallel dims are X's, the reduction runs over the size
 * channels of the window [c - floor((size-1)/2), c + ceil((size-1)/2)],
 * with out-of-range channels contributing 0 (their index clamped to 0 to
 * stay in bounds); the store divides x by (bias + alpha/size * sum)^beta.
 */
mpcc_status
mpcc_red_lower_lrn(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0);
	int64_t size = mpcc_node_attr_int(n, "size", 1);
	double alpha = mpcc_node_attr_float(n, "alpha", 1e-4f);
	double beta = mpcc_node_attr_float(n, "beta", 0.75f);
	double bias = mpcc_node_attr_float(n, "bias", 1.0f);
	if (mpcc_node_attr_int(n, "training_mode", 0) != 0)
		return mpcc_node_error(lx->d, n, MPCC_ERR_INTERNAL,
		                       "training-mode BatchNormalization reached lowering "
		                       "unexpanded");
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype cdt = mpcc_red_float_compute(x->dtype);
	int32_t v[MPCC_MAX_RANK], w[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, x->rank, v);
	int32_t r = kir_var(k, x->rank);
	int32_t ci = kir_iadd(k, kir_iadd(k, v[1], r), kir_iconst(k, -((size - 1) / 2)));
	int32_t ok = kir_binary(k, KIR_AND, kir_binary(k, KIR_GE, ci, kir_iconst(k, 0)),
	                        kir_binary(k, KIR_LT, ci, kir_iconst(k, x->dims[1])));
	for (int i = 0; i < x->rank; i++)
		w[i] = v[i];
	w[1] = kir_select(k, ok, ci, kir_iconst(k, 0));
	int32_t xw = mpcc_red_load(k, bx, mpcc_lower_linear(k, x->rank, x->dims, w), cdt);
	int32_t sq = kir_select(k, ok, kir_binary(k, KIR_MUL, xw, xw), kir_const_f(k, cdt, 0));
	kir_stage *s = kir_stage_add(k, x->rank, x->dims, 1, &size, KIR_RED_SUM, cdt, sq);
	if (!s)
		return MPCC_ERR_NOMEM;
	int32_t idx = mpcc_lower_linear(k, x->rank, x->dims, v);
	int32_t den =
	    kir_binary(k, KIR_MUL, kir_const_f(k, cdt, alpha / (double)size), kir_acc(k, cdt));
	den = kir_binary(k, KIR_ADD, kir_const_f(k, cdt, bias), den);
	den = kir_binary(k, KIR_POW, den, kir_const_f(k, cdt, beta));
	int32_t y = kir_binary(k, KIR_DIV, mpcc_red_load(k, bx, idx, cdt), den);
	kir_stage_store(k, s, by, idx, kir_cast(k, mpcc_red_buf_dtype(k, by), y));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- MeanVarianceNormalization */

/* The reduced axes of MVN: attribute axes, default (0, 2, 3). */
static mpcc_status
mvn_axes(const mpcc_node *n, const mpcc_value *x, bool *red, mpcc_diag *d)
{
	static const int64_t dflt[] = {0, 2, 3};
	const mpcc_attr *aa = mpcc_node_attr(n, "axes");
	const int64_t *axes = dflt;
	int n_axes = 3;
	if (aa) {
		if (aa->kind != MPCC_ATTR_INTS)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "attribute axes must be ints");
		axes = aa->ints;
		n_axes = aa->n;
	}
	for (int i = 0; i < x->rank; i++)
		red[i] = false;
	for (int i = 0; i < n_axes; i++) {
		int a = mpcc_axis(axes[i], x->rank);
		if (a < 0 || red[a])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "axis %lld out of range or repeated for rank %d",
			                       (long long)axes[i], x->rank);
		red[a] = true;
	}
	return MPCC_OK;
}

mpcc_status
mpcc_red_infer_mvn(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *y = mpcc_red_out(g, n, 0);
	bool red[MPCC_MAX_RANK];
	mpcc_status st = mpcc_red_need_float(n, x, "X", d);
	if (st)
		return st;
	if (!y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing output");
	if ((st = mvn_axes(n, x, red, d)))
		return st;
	mpcc_red_set_like(y, x->dtype, x);
	return MPCC_OK;
}

/* (x - mean) / (sqrt(variance) + 1e-9), the constant ONNX's definition uses. */
mpcc_status
mpcc_red_lower_mvn(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0);
	bool red[MPCC_MAX_RANK];
	mpcc_status st = mvn_axes(n, x, red, lx->d);
	if (st)
		return st;
	if (mpcc_node_attr_int(n, "training_mode", 0) != 0)
		return mpcc_node_error(lx->d, n, MPCC_ERR_INTERNAL,
		                       "training-mode BatchNormalization reached lowering "
		                       "unexpanded");
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype cdt = mpcc_red_float_compute(x->dtype);
	mpcc_red_view rv;
	mpcc_red_view_init(&rv, x, red);
	int tmean, tvar;
	if ((st = mpcc_red_mean_var(k, &rv, bx, cdt, &tmean, &tvar)))
		return st;
	int32_t ax[MPCC_MAX_RANK];
	mpcc_red_axes_full(k, &rv, ax);
	int32_t idx = mpcc_red_index(k, &rv, ax), kidx = mpcc_red_kept_index(k, &rv, ax);
	int32_t den = kir_binary(k, KIR_ADD, kir_unary(k, KIR_SQRT, kir_load(k, tvar, kidx)),
	                         kir_const_f(k, cdt, 1e-9));
	int32_t y =
	    kir_binary(k, KIR_SUB, mpcc_red_load(k, bx, idx, cdt), kir_load(k, tmean, kidx));
	y = kir_binary(k, KIR_DIV, y, den);
	kir_stage *s = mpcc_red_map_stage(k, x->rank, x->dims);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, idx, kir_cast(k, mpcc_red_buf_dtype(k, by), y));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- LpNormalization */

mpcc_status
mpcc_red_infer_lpnorm(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *y = mpcc_red_out(g, n, 0);
	mpcc_status st = mpcc_red_need_float(n, x, "input", d);
	if (st)
		return st;
	if (!y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing output");
	int64_t p = mpcc_node_attr_int(n, "p", 2);
	if (p != 1 && p != 2)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "p must be 1 or 2, not %lld",
		                       (long long)p);
	int64_t a64 = mpcc_node_attr_int(n, "axis", -1);
	if (mpcc_axis(a64, x->rank) < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis %lld out of range for rank %d",
		                       (long long)a64, x->rank);
	mpcc_red_set_like(y, x->dtype, x);
	return MPCC_OK;
}

/* The norm along the axis into a per-row temporary, then x / norm. */
mpcc_status
mpcc_red_lower_lpnorm(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0);
	int a = mpcc_axis(mpcc_node_attr_int(n, "axis", -1), x->rank);
	bool l1 = mpcc_node_attr_int(n, "p", 2) == 1;
	if (mpcc_node_attr_int(n, "training_mode", 0) != 0)
		return mpcc_node_error(lx->d, n, MPCC_ERR_INTERNAL,
		                       "training-mode BatchNormalization reached lowering "
		                       "unexpanded");
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype cdt = mpcc_red_float_compute(x->dtype);
	bool red[MPCC_MAX_RANK] = {false};
	red[a] = true;
	mpcc_red_view rv;
	mpcc_red_view_init(&rv, x, red);
	int tn = kir_buf_add(k, cdt, KIR_BUF_TEMP, MPCC_NONE, rv.n_kept_elems);
	int32_t ax[MPCC_MAX_RANK];

	mpcc_red_axes_reduce(k, &rv, ax);
	int32_t v = mpcc_red_load(k, bx, mpcc_red_index(k, &rv, ax), cdt);
	v = l1 ? kir_unary(k, KIR_ABS, v) : kir_binary(k, KIR_MUL, v, v);
	kir_stage *s = kir_stage_add(k, rv.n_par, rv.par_ext, 1, rv.red_ext, KIR_RED_SUM, cdt, v);
	if (!s)
		return MPCC_ERR_NOMEM;
	int32_t norm = kir_acc(k, cdt);
	if (!l1)
		norm = kir_unary(k, KIR_SQRT, norm);
	kir_stage_store(k, s, tn, mpcc_red_kept_index(k, &rv, ax), norm);

	mpcc_red_axes_full(k, &rv, ax);
	int32_t idx = mpcc_red_index(k, &rv, ax);
	int32_t y = kir_binary(k, KIR_DIV, mpcc_red_load(k, bx, idx, cdt),
	                       kir_load(k, tn, mpcc_red_kept_index(k, &rv, ax)));
	s = mpcc_red_map_stage(k, x->rank, x->dims);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, idx, kir_cast(k, mpcc_red_buf_dtype(k, by), y));
	return MPCC_OK;
}
