/*
 * ops/reduce_softmax.c - Softmax, LogSoftmax and Hardmax, and the two
 * losses built on them: SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss.
 *
 * Each op is one kernel of several stages with per-row TEMP buffers between
 * them: the row max, the sum of exp(x - max), then a map stage over the
 * whole input that normalises. Before opset 13 the Softmax family coerces
 * the input to 2-D at `axis` (default 1) and normalises over all trailing
 * dims; from 13 it normalises over the single axis (default -1). Both are a
 * reduction view whose reduced axes are those dims, so one lowering serves.
 */
#include <math.h>
#include <string.h>

#include "ops/reduce_internal.h"

const char *const mpcc_red_attrs_softmax[] = {"axis", NULL};
const char *const mpcc_red_attrs_sce[] = {"ignore_index", "reduction", NULL};
const char *const mpcc_red_attrs_nll[] = {"ignore_index", "reduction", NULL};

/* ---------------------------------------------------------------- Softmax family */

/* The reduced axes of a Softmax-family node over x. */
static mpcc_status
softmax_axes(const mpcc_node *n, const mpcc_value *x, bool *red, mpcc_diag *d)
{
	bool legacy = n->opset > 0 && n->opset < 13;
	int64_t a64 = mpcc_node_attr_int(n, "axis", legacy ? 1 : -1);
	int a = mpcc_axis(a64, x->rank);
	if (a < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis %lld out of range for rank %d",
		                       (long long)a64, x->rank);
	for (int i = 0; i < x->rank; i++)
		red[i] = legacy ? i >= a : i == a;
	return MPCC_OK;
}

mpcc_status
mpcc_red_infer_softmax(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *y = mpcc_red_out(g, n, 0);
	bool red[MPCC_MAX_RANK];
	mpcc_status st = mpcc_red_need_float(n, x, "input", d);
	if (st)
		return st;
	if (!y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing output");
	st = softmax_axes(n, x, red, d);
	if (st)
		return st;
	mpcc_red_set_like(y, x->dtype, x);
	return MPCC_OK;
}

/*
 * Hardmax: the first maximum's linear index over the reduced axes (ARGMAX)
 * into a per-row temporary, then 1 where an element's own index equals it.
 */
static mpcc_status
lower_hardmax(kir_kernel *k, const mpcc_red_view *rv, int bx, int by)
{
	mpcc_dtype xt = mpcc_red_buf_dtype(k, bx), yt = mpcc_red_buf_dtype(k, by);
	mpcc_dtype cdt = mpcc_red_float_compute(xt);
	int targ = kir_buf_add(k, MPCC_DTYPE_I64, KIR_BUF_TEMP, MPCC_NONE, rv->n_kept_elems);
	int32_t ax[MPCC_MAX_RANK];

	mpcc_red_axes_reduce(k, rv, ax);
	int32_t v = mpcc_red_load(k, bx, mpcc_red_index(k, rv, ax), cdt);
	kir_stage *s = kir_stage_add(k, rv->n_par, rv->par_ext, rv->n_red, rv->red_ext,
	                             KIR_RED_ARGMAX, MPCC_DTYPE_I64, v);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, targ, mpcc_red_kept_index(k, rv, ax), kir_acc(k, MPCC_DTYPE_I64));

	mpcc_red_axes_full(k, rv, ax);
	int32_t hit = kir_binary(k, KIR_EQ, mpcc_red_red_index(k, rv, ax),
	                         kir_load(k, targ, mpcc_red_kept_index(k, rv, ax)));
	int32_t one = kir_const_f(k, cdt, 1), zero = kir_const_f(k, cdt, 0);
	s = mpcc_red_map_stage(k, rv->rank, rv->dims);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, mpcc_red_index(k, rv, ax),
	                kir_cast(k, yt, kir_select(k, hit, one, zero)));
	return MPCC_OK;
}

mpcc_status
mpcc_red_lower_softmax(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0);
	bool red[MPCC_MAX_RANK];
	mpcc_status st = softmax_axes(n, x, red, lx->d);
	if (st)
		return st;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_red_view rv;
	mpcc_red_view_init(&rv, x, red);
	if (n->op == MPCC_OP_HARDMAX)
		return lower_hardmax(k, &rv, bx, by);

	mpcc_dtype cdt = mpcc_red_float_compute(x->dtype), yt = mpcc_red_buf_dtype(k, by);
	int tmax, tsum;
	st = mpcc_red_max_sumexp(k, &rv, bx, cdt, false, &tmax, &tsum);
	if (st)
		return st;
	int32_t ax[MPCC_MAX_RANK];
	mpcc_red_axes_full(k, &rv, ax);
	int32_t idx = mpcc_red_index(k, &rv, ax), kidx = mpcc_red_kept_index(k, &rv, ax);
	int32_t d = kir_binary(k, KIR_SUB, mpcc_red_load(k, bx, idx, cdt), kir_load(k, tmax, kidx));
	int32_t sum = kir_load(k, tsum, kidx), v;
	if (n->op == MPCC_OP_SOFTMAX)
		v = kir_binary(k, KIR_DIV, kir_unary(k, KIR_EXP, d), sum);
	else
		v = kir_binary(k, KIR_SUB, d, kir_unary(k, KIR_LOG, sum));
	kir_stage *s = mpcc_red_map_stage(k, rv.rank, rv.dims);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, idx, kir_cast(k, yt, v));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- losses */

typedef enum loss_reduction { LOSS_NONE, LOSS_SUM, LOSS_MEAN } loss_reduction;

static mpcc_status
loss_reduction_of(const mpcc_node *n, loss_reduction *out, mpcc_diag *d)
{
	const char *r = mpcc_node_attr_string(n, "reduction", "mean");
	if (strcmp(r, "none") == 0)
		*out = LOSS_NONE;
	else if (strcmp(r, "sum") == 0)
		*out = LOSS_SUM;
	else if (strcmp(r, "mean") == 0)
		*out = LOSS_MEAN;
	else
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "reduction '%s' is not one of none, sum, mean", r);
	return MPCC_OK;
}

/*
 * Both losses take scores or log-probabilities (N, C, d1..dk), integer
 * targets (N, d1..dk) and optional per-class weights (C). The loss has the
 * targets' shape with reduction none, else it is a scalar.
 */
mpcc_status
mpcc_red_infer_loss(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *t = mpcc_red_in(g, n, 1), *w = mpcc_red_in(g, n, 2);
	mpcc_value *y = mpcc_red_out(g, n, 0), *lp = mpcc_red_out(g, n, 1);
	loss_reduction red = LOSS_NONE;
	mpcc_status st = mpcc_red_need_float(n, x, "input", d);
	if (st)
		return st;
	if (!t || !y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing target or output");
	st = loss_reduction_of(n, &red, d);
	if (st)
		return st;
	if (x->rank < 2)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "input must have rank >= 2 (N, C, ...)");
	if (t->dtype != MPCC_DTYPE_I32 && t->dtype != MPCC_DTYPE_I64)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "target must be int32 or int64, not %s",
		                       mpcc_dtype_name(t->dtype));
	if (t->rank != x->rank - 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "target rank %d, expected %d",
		                       t->rank, x->rank - 1);
	for (int i = 0; i < t->rank; i++) {
		int64_t xd = x->dims[i == 0 ? 0 : i + 1];
		if (t->dims[i] != xd && t->dims[i] >= 0 && xd >= 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "target dim %d is %lld, input has %lld", i,
			                       (long long)t->dims[i], (long long)xd);
	}
	if (w && (w->dtype != x->dtype || w->rank != 1 || w->dims[0] != x->dims[1]))
		return mpcc_node_error(
		    d, n, MPCC_ERR_INVALID,
		    "weights must be a 1-D tensor of C elements of the input dtype");
	if (red == LOSS_NONE)
		mpcc_red_set_like(y, x->dtype, t);
	else
		mpcc_red_set(y, x->dtype, 0, NULL, NULL);
	if (lp)
		mpcc_red_set_like(lp, x->dtype, x);
	return MPCC_OK;
}

/* Stores the scalar sum (or weighted mean) of the per-element losses. */
static mpcc_status
loss_total(kir_kernel *k, loss_reduction red, int64_t n_elems, int tl, int tw, int by,
           mpcc_dtype cdt)
{
	int32_t j = kir_var(k, 0), zero = kir_iconst(k, 0);
	int32_t den = MPCC_NONE;
	if (red == LOSS_MEAN) {
		int tws = kir_buf_add(k, cdt, KIR_BUF_TEMP, MPCC_NONE, 1);
		kir_stage *s =
		    kir_stage_add(k, 0, NULL, 1, &n_elems, KIR_RED_SUM, cdt, kir_load(k, tw, j));
		if (!s)
			return MPCC_ERR_NOMEM;
		kir_stage_store(k, s, tws, zero, kir_acc(k, cdt));
		den = kir_load(k, tws, zero);
	}
	kir_stage *s = kir_stage_add(k, 0, NULL, 1, &n_elems, KIR_RED_SUM, cdt, kir_load(k, tl, j));
	if (!s)
		return MPCC_ERR_NOMEM;
	int32_t v = kir_acc(k, cdt);
	if (den != MPCC_NONE)
		v = kir_binary(k, KIR_DIV, v, den);
	kir_stage_store(k, s, by, zero, kir_cast(k, mpcc_red_buf_dtype(k, by), v));
	return MPCC_OK;
}

/*
 * The losses as one kernel. SCE first computes the log-softmax over the
 * class axis as row max and sum of exp (written out in full when log_prob
 * is asked for); then a stage over the targets' shape gathers each target
 * class's log-probability, weights it (0 for ignore_index, whose class index
 * is clamped so the gather stays in bounds) and negates it. With reduction
 * sum or mean the per-element losses and weights go to temporaries and two
 * one-point stages total them: mean divides by the sum of applied weights.
 */
mpcc_status
mpcc_red_lower_loss(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *w = mpcc_red_in(g, n, 2);
	mpcc_value *lpv = mpcc_red_out(g, n, 1);
	bool sce = n->op == MPCC_OP_SOFTMAXCROSSENTROPYLOSS;
	loss_reduction red = LOSS_NONE;
	mpcc_status st = loss_reduction_of(n, &red, lx->d);
	if (st)
		return st;
	const mpcc_attr *ii = mpcc_node_attr(n, "ignore_index");
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), bt = mpcc_lower_param(k, g, n->in[1]);
	int bw = w ? mpcc_lower_param(k, g, n->in[2]) : -1;
	int by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype cdt = mpcc_red_float_compute(x->dtype);
	bool red_c[MPCC_MAX_RANK] = {false};
	red_c[1] = true;
	mpcc_red_view rv;
	mpcc_red_view_init(&rv, x, red_c);
	int64_t C = x->dims[1];
	int tmax = -1, tsum = -1;
	int32_t ax[MPCC_MAX_RANK];

	if (sce) {
		st = mpcc_red_max_sumexp(k, &rv, bx, cdt, false, &tmax, &tsum);
		if (st)
			return st;
		if (lpv) {
			int blp = mpcc_lower_param(k, g, n->out[1]);
			mpcc_red_axes_full(k, &rv, ax);
			int32_t idx = mpcc_red_index(k, &rv, ax),
			        kidx = mpcc_red_kept_index(k, &rv, ax);
			int32_t v = kir_binary(k, KIR_SUB, mpcc_red_load(k, bx, idx, cdt),
			                       kir_load(k, tmax, kidx));
			v = kir_binary(k, KIR_SUB, v,
			               kir_unary(k, KIR_LOG, kir_load(k, tsum, kidx)));
			kir_stage *s = mpcc_red_map_stage(k, rv.rank, rv.dims);
			if (!s)
				return MPCC_ERR_NOMEM;
			kir_stage_store(k, s, blp, idx, kir_cast(k, mpcc_red_buf_dtype(k, blp), v));
		}
	}

	/* Per-element stage over (N, d1..dk): vars are the kept axes. */
	int32_t pv[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, rv.n_par, pv);
	int32_t kidx = mpcc_lower_linear(k, rv.n_par, rv.par_ext, pv);
	int32_t t = mpcc_red_load(k, bt, kidx, MPCC_DTYPE_I64);
	int32_t ok = kir_binary(k, KIR_AND, kir_binary(k, KIR_GE, t, kir_iconst(k, 0)),
	                        kir_binary(k, KIR_LT, t, kir_iconst(k, C)));
	int32_t ign = MPCC_NONE;
	if (ii) {
		ign = kir_binary(k, KIR_EQ, t, kir_iconst(k, ii->i));
		ok = kir_binary(k, KIR_AND, ok, kir_unary(k, KIR_NOT, ign));
	}
	int32_t tc = kir_select(k, ok, t, kir_iconst(k, 0));
	ax[0] = pv[0];
	ax[1] = tc;
	for (int i = 2; i < rv.rank; i++)
		ax[i] = pv[i - 1];
	int32_t lp = mpcc_red_load(k, bx, mpcc_red_index(k, &rv, ax), cdt);
	if (sce) {
		lp = kir_binary(k, KIR_SUB, lp, kir_load(k, tmax, kidx));
		lp = kir_binary(k, KIR_SUB, lp, kir_unary(k, KIR_LOG, kir_load(k, tsum, kidx)));
	}
	int32_t wt = bw >= 0 ? mpcc_red_load(k, bw, tc, cdt) : kir_const_f(k, cdt, 1);
	if (ign != MPCC_NONE)
		wt = kir_select(k, ign, kir_const_f(k, cdt, 0), wt);
	int32_t loss = kir_unary(k, KIR_NEG, kir_binary(k, KIR_MUL, lp, wt));
	kir_stage *s = mpcc_red_map_stage(k, rv.n_par, rv.par_ext);
	if (!s)
		return MPCC_ERR_NOMEM;
	if (red == LOSS_NONE) {
		kir_stage_store(k, s, by, kidx, kir_cast(k, mpcc_red_buf_dtype(k, by), loss));
		return MPCC_OK;
	}
	int tl = kir_buf_add(k, cdt, KIR_BUF_TEMP, MPCC_NONE, rv.n_kept_elems);
	int tw = kir_buf_add(k, cdt, KIR_BUF_TEMP, MPCC_NONE, rv.n_kept_elems);
	s = &k->stages[k->n_stages - 1];
	kir_stage_store(k, s, tl, kidx, loss);
	kir_stage_store(k, s, tw, kidx, wt);
	return loss_total(k, red, rv.n_kept_elems, tl, tw, by, cdt);
}
