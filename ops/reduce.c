/*
 * ops/reduce.c - the reduction family: ReduceSum .. ReduceSumSquare,
 * ArgMax/ArgMin and CumSum here, with the helpers the family shares; the
 * Softmax family and the losses live in ops/reduce_softmax.c, the
 * normalisations in ops/reduce_norm.c. This file holds the family's table.
 *
 * A reduction is one kernel stage whose parallel dims are the kept axes and
 * whose reduction dims are the reduced ones; red_value loads the input and
 * widens it to the accumulation dtype (f32 for f16/bf16, f64 for f64, the
 * integer type itself for integers), and the store finishes (mean, sqrt, log)
 * and narrows to the output's storage dtype. keepdims only changes the
 * declared shape: the kept axes' linear layout is the same either way.
 */
#include <math.h>
#include <string.h>

#include "ops/reduce_internal.h"

/* ---------------------------------------------------------------- shared helpers */

mpcc_value *
mpcc_red_in(mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_in && n->in[i] != MPCC_NONE ? &g->values[n->in[i]] : NULL;
}

mpcc_value *
mpcc_red_out(mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_out && n->out[i] != MPCC_NONE ? &g->values[n->out[i]] : NULL;
}

void
mpcc_red_set(mpcc_value *v, mpcc_dtype t, int rank, const int64_t *dims, const char *const *sym)
{
	v->dtype = t;
	v->rank = rank;
	for (int i = 0; i < rank; i++) {
		v->dims[i] = dims[i];
		v->sym[i] = sym ? sym[i] : NULL;
	}
}

void
mpcc_red_set_like(mpcc_value *v, mpcc_dtype t, const mpcc_value *x)
{
	mpcc_red_set(v, t, x->rank, x->dims, x->sym);
}

bool
mpcc_red_is_lowfloat(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16;
}

mpcc_dtype
mpcc_red_float_compute(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F64 ? MPCC_DTYPE_F64 : MPCC_DTYPE_F32;
}

mpcc_status
mpcc_red_need_float(const mpcc_node *n, const mpcc_value *x, const char *what, mpcc_diag *d)
{
	if (!x)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input %s", what);
	if (!mpcc_dtype_is_float(x->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "%s must be a float tensor, not %s",
		                       what, mpcc_dtype_name(x->dtype));
	return MPCC_OK;
}

void
mpcc_red_view_init(mpcc_red_view *rv, const mpcc_value *x, const bool *red)
{
	memset(rv, 0, sizeof *rv);
	rv->rank = x->rank;
	rv->n_kept_elems = 1;
	rv->n_red_elems = 1;
	for (int i = 0; i < x->rank; i++) {
		rv->dims[i] = x->dims[i];
		rv->red[i] = red[i];
		if (red[i]) {
			rv->red_ext[rv->n_red++] = x->dims[i];
			rv->n_red_elems *= x->dims[i];
		} else {
			rv->par_ext[rv->n_par++] = x->dims[i];
			rv->n_kept_elems *= x->dims[i];
		}
	}
}

void
mpcc_red_axes_reduce(kir_kernel *k, const mpcc_red_view *rv, int32_t *ax)
{
	int p = 0, r = 0;
	for (int i = 0; i < rv->rank; i++)
		ax[i] = rv->red[i] ? kir_var(k, rv->n_par + r++) : kir_var(k, p++);
}

void
mpcc_red_axes_full(kir_kernel *k, const mpcc_red_view *rv, int32_t *ax)
{
	mpcc_lower_vars(k, 0, rv->rank, ax);
}

int32_t
mpcc_red_index(kir_kernel *k, const mpcc_red_view *rv, const int32_t *ax)
{
	return mpcc_lower_linear(k, rv->rank, rv->dims, ax);
}

/* Linear index over the axes whose red flag equals want. */
static int32_t
sub_index(kir_kernel *k, const mpcc_red_view *rv, const int32_t *ax, bool want)
{
	int32_t idx[MPCC_MAX_RANK];
	int64_t dims[MPCC_MAX_RANK];
	int n = 0;
	for (int i = 0; i < rv->rank; i++) {
		if (rv->red[i] == want) {
			idx[n] = ax[i];
			dims[n++] = rv->dims[i];
		}
	}
	if (n == 0)
		return kir_iconst(k, 0);
	return mpcc_lower_linear(k, n, dims, idx);
}

int32_t
mpcc_red_kept_index(kir_kernel *k, const mpcc_red_view *rv, const int32_t *ax)
{
	return sub_index(k, rv, ax, false);
}

int32_t
mpcc_red_red_index(kir_kernel *k, const mpcc_red_view *rv, const int32_t *ax)
{
	return sub_index(k, rv, ax, true);
}

int32_t
mpcc_red_load(kir_kernel *k, int buf, int32_t idx, mpcc_dtype t)
{
	return kir_cast(k, t, kir_load(k, buf, idx));
}

mpcc_dtype
mpcc_red_buf_dtype(const kir_kernel *k, int b)
{
	return b >= 0 && b < k->n_bufs ? (mpcc_dtype)k->bufs[b].dtype : MPCC_DTYPE_UNDEF;
}

kir_stage *
mpcc_red_map_stage(kir_kernel *k, int n_par, const int64_t *ext)
{
	return kir_stage_add(k, n_par, ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
}

/*
 * Softmax, LogSoftmax, LogSumExp and the cross-entropy loss all need the
 * row max and the sum of exp(x - max); computing them as two stages into
 * per-row temporaries keeps exp from overflowing. safe_max maps a max of
 * -inf (a row of -inf, or an empty row) to 0 so the subtraction stays finite.
 */
mpcc_status
mpcc_red_max_sumexp(kir_kernel *k, const mpcc_red_view *rv, int xbuf, mpcc_dtype cdt, bool safe_max,
                    int *out_max, int *out_sum)
{
	int32_t ax[MPCC_MAX_RANK];
	int tmax = kir_buf_add(k, cdt, KIR_BUF_TEMP, MPCC_NONE, rv->n_kept_elems);
	int tsum = kir_buf_add(k, cdt, KIR_BUF_TEMP, MPCC_NONE, rv->n_kept_elems);

	mpcc_red_axes_reduce(k, rv, ax);
	int32_t x = mpcc_red_load(k, xbuf, mpcc_red_index(k, rv, ax), cdt);
	kir_stage *st =
	    kir_stage_add(k, rv->n_par, rv->par_ext, rv->n_red, rv->red_ext, KIR_RED_MAX, cdt, x);
	if (!st)
		return MPCC_ERR_NOMEM;
	int32_t m = kir_acc(k, cdt);
	if (safe_max)
		m = kir_select(k, kir_binary(k, KIR_EQ, m, kir_const_f(k, cdt, -INFINITY)),
		               kir_const_f(k, cdt, 0), m);
	kir_stage_store(k, st, tmax, mpcc_red_kept_index(k, rv, ax), m);

	int32_t kidx = mpcc_red_kept_index(k, rv, ax);
	int32_t e = kir_unary(k, KIR_EXP, kir_binary(k, KIR_SUB, x, kir_load(k, tmax, kidx)));
	st = kir_stage_add(k, rv->n_par, rv->par_ext, rv->n_red, rv->red_ext, KIR_RED_SUM, cdt, e);
	if (!st)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, st, tsum, kidx, kir_acc(k, cdt));
	*out_max = tmax;
	*out_sum = tsum;
	return MPCC_OK;
}

/*
 * Mean, then variance as the mean of squared deviations (two passes rather
 * than E[x^2] - E[x]^2, which cancels badly for large means).
 */
mpcc_status
mpcc_red_mean_var(kir_kernel *k, const mpcc_red_view *rv, int xbuf, mpcc_dtype cdt, int *out_mean,
                  int *out_var)
{
	int32_t ax[MPCC_MAX_RANK];
	int tmean = kir_buf_add(k, cdt, KIR_BUF_TEMP, MPCC_NONE, rv->n_kept_elems);
	int tvar = kir_buf_add(k, cdt, KIR_BUF_TEMP, MPCC_NONE, rv->n_kept_elems);
	int32_t cnt = kir_const_f(k, cdt, (double)rv->n_red_elems);

	mpcc_red_axes_reduce(k, rv, ax);
	int32_t x = mpcc_red_load(k, xbuf, mpcc_red_index(k, rv, ax), cdt);
	int32_t kidx = mpcc_red_kept_index(k, rv, ax);
	kir_stage *st =
	    kir_stage_add(k, rv->n_par, rv->par_ext, rv->n_red, rv->red_ext, KIR_RED_SUM, cdt, x);
	if (!st)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, st, tmean, kidx, kir_binary(k, KIR_DIV, kir_acc(k, cdt), cnt));

	int32_t dev = kir_binary(k, KIR_SUB, x, kir_load(k, tmean, kidx));
	st = kir_stage_add(k, rv->n_par, rv->par_ext, rv->n_red, rv->red_ext, KIR_RED_SUM, cdt,
	                   kir_binary(k, KIR_MUL, dev, dev));
	if (!st)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, st, tvar, kidx, kir_binary(k, KIR_DIV, kir_acc(k, cdt), cnt));
	*out_mean = tmean;
	*out_var = tvar;
	return MPCC_OK;
}

/* ---------------------------------------------------------------- Reduce* */

static const char *const reduce_attrs[] = {"axes", "keepdims", "noop_with_empty_axes", NULL};

/*
 * Which axes a Reduce* node reduces. Axes come from the attribute (before
 * ReduceSum-13) or from the optional second input, which must be constant:
 * a data-dependent reduction would make the output shape unknown. No axes
 * means all axes, unless noop_with_empty_axes asks for the identity.
 */
static mpcc_status
reduce_axes(mpcc_graph *g, const mpcc_node *n, const mpcc_value *x, bool *red, bool *noop,
            mpcc_diag *d)
{
	int64_t axes[MPCC_MAX_RANK * 2];
	int n_axes = 0;
	const mpcc_value *av = mpcc_red_in(g, n, 1);
	const mpcc_attr *aa = mpcc_node_attr(n, "axes");

	*noop = false;
	if (av) {
		if (!(av->flags & MPCC_VALUE_CONST) || !av->data)
			return mpcc_node_error(
			    d, n, MPCC_ERR_UNSUPPORTED,
			    "axes input '%s' must be known at compile time (a graph input "
			    "can be frozen: --freeze %s=FILE.npy)",
			    av->name ? av->name : "?", av->name ? av->name : "NAME");
		if (!mpcc_dtype_is_int(av->dtype) || av->rank > 1)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "axes input '%s' must be a 1-D integer tensor",
			                       av->name);
		int64_t cnt = mpcc_value_numel(av);
		if (cnt < 0 || cnt > (int64_t)(sizeof axes / sizeof axes[0]))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "too many axes (%lld)",
			                       (long long)cnt);
		for (int64_t i = 0; i < cnt; i++)
			axes[n_axes++] = mpcc_value_get_int(av, i);
	} else if (aa) {
		if (aa->kind != MPCC_ATTR_INTS || aa->n > (int)(sizeof axes / sizeof axes[0]))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "attribute axes must be ints");
		for (int i = 0; i < aa->n; i++)
			axes[n_axes++] = aa->ints[i];
	}
	for (int i = 0; i < x->rank; i++)
		red[i] = false;
	if (n_axes == 0) {
		if (mpcc_node_attr_int(n, "noop_with_empty_axes", 0)) {
			*noop = true;
			return MPCC_OK;
		}
		for (int i = 0; i < x->rank; i++)
			red[i] = true;
		return MPCC_OK;
	}
	for (int i = 0; i < n_axes; i++) {
		int a = mpcc_axis(axes[i], x->rank);
		if (a < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "axis %lld out of range for rank %d",
			                       (long long)axes[i], x->rank);
		if (red[a])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis %lld repeated",
			                       (long long)axes[i]);
		red[a] = true;
	}
	return MPCC_OK;
}

static bool
reduce_accepts(mpcc_op op, mpcc_dtype t)
{
	if (t == MPCC_DTYPE_UNDEF)
		return false;
	if (t == MPCC_DTYPE_BOOL)
		return op == MPCC_OP_REDUCEMAX || op == MPCC_OP_REDUCEMIN;
	return true;
}

static mpcc_status
infer_reduce(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *y = mpcc_red_out(g, n, 0);
	bool red[MPCC_MAX_RANK], noop;

	if (!x || !y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing data input or output");
	if (!reduce_accepts(n->op, x->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "unsupported input dtype %s",
		                       mpcc_dtype_name(x->dtype));
	mpcc_status st = reduce_axes(g, n, x, red, &noop, d);
	if (st)
		return st;
	bool keep = mpcc_node_attr_int(n, "keepdims", 1) != 0;
	int64_t dims[MPCC_MAX_RANK];
	const char *sym[MPCC_MAX_RANK];
	int r = 0;
	for (int i = 0; i < x->rank; i++) {
		if (!red[i]) {
			sym[r] = x->sym[i];
			dims[r++] = x->dims[i];
		} else if (keep) {
			sym[r] = NULL;
			dims[r++] = 1;
		}
	}
	mpcc_red_set(y, x->dtype, r, dims, sym);
	return MPCC_OK;
}

/* The dtype a Reduce* op accumulates in. */
static mpcc_dtype
reduce_acc(mpcc_op op, mpcc_dtype t)
{
	if (mpcc_red_is_lowfloat(t))
		return MPCC_DTYPE_F32;
	if (t == MPCC_DTYPE_BOOL)
		return MPCC_DTYPE_U8;
	if (op == MPCC_OP_REDUCELOGSUMEXP && mpcc_dtype_is_int(t))
		return MPCC_DTYPE_F64;
	return t;
}

/* A float-only unary op on any numeric expr: integers go through f64. */
static int32_t
float_unary(kir_kernel *k, kir_op op, int32_t a)
{
	mpcc_dtype t = kir_expr_dtype(k, a);
	if (mpcc_dtype_is_float(t))
		return kir_unary(k, op, a);
	return kir_cast(k, t, kir_unary(k, op, kir_cast(k, MPCC_DTYPE_F64, a)));
}

/* The value folded at each reduction point, from x in the acc dtype. */
static int32_t
reduce_point(kir_kernel *k, mpcc_op op, int32_t x)
{
	switch (op) {
	case MPCC_OP_REDUCEL1:
		if (mpcc_dtype_is_int(kir_expr_dtype(k, x)) &&
		    !mpcc_dtype_is_signed(kir_expr_dtype(k, x)))
			return x;
		return kir_unary(k, KIR_ABS, x);
	case MPCC_OP_REDUCEL2:
	case MPCC_OP_REDUCESUMSQUARE:
		return kir_binary(k, KIR_MUL, x, x);
	default:
		return x;
	}
}

/* The output from the folded accumulator (count: reduced elements). */
static int32_t
reduce_finish(kir_kernel *k, mpcc_op op, int32_t acc, int64_t count)
{
	mpcc_dtype t = kir_expr_dtype(k, acc);
	switch (op) {
	case MPCC_OP_REDUCEMEAN:
		if (mpcc_dtype_is_float(t))
			return kir_binary(k, KIR_DIV, acc, kir_const_f(k, t, (double)count));
		return kir_binary(k, KIR_DIV, acc, kir_const_i(k, t, count));
	case MPCC_OP_REDUCEL2:
		return float_unary(k, KIR_SQRT, acc);
	case MPCC_OP_REDUCELOGSUM:
		return float_unary(k, KIR_LOG, acc);
	default:
		return acc;
	}
}

static kir_red
reduce_kind(mpcc_op op)
{
	switch (op) {
	case MPCC_OP_REDUCEMAX:
		return KIR_RED_MAX;
	case MPCC_OP_REDUCEMIN:
		return KIR_RED_MIN;
	case MPCC_OP_REDUCEPROD:
		return KIR_RED_PROD;
	default:
		return KIR_RED_SUM;
	}
}

/*
 * One stage for every Reduce* but LogSumExp, which subtracts the row max
 * first (two stages from mpcc_red_max_sumexp and a third that takes the
 * log). With nothing to reduce (noop, or a scalar input) a map stage
 * applies the op to each element as a one-element reduction.
 */
static mpcc_status
lower_reduce(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0);
	bool red[MPCC_MAX_RANK], noop;
	mpcc_status st = reduce_axes(g, n, x, red, &noop, lx->d);
	if (st)
		return st;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype yt = mpcc_red_buf_dtype(k, by);
	mpcc_dtype acc = reduce_acc(n->op, x->dtype);
	mpcc_red_view rv;
	mpcc_red_view_init(&rv, x, red);
	int32_t ax[MPCC_MAX_RANK];

	if (rv.n_red == 0) {
		mpcc_red_axes_full(k, &rv, ax);
		int32_t idx = mpcc_red_index(k, &rv, ax);
		int32_t v = mpcc_red_load(k, bx, idx, acc);
		if (n->op != MPCC_OP_REDUCELOGSUMEXP)
			v = reduce_finish(k, n->op, reduce_point(k, n->op, v), 1);
		kir_stage *s = mpcc_red_map_stage(k, rv.rank, rv.dims);
		if (!s)
			return MPCC_ERR_NOMEM;
		kir_stage_store(k, s, by, idx, kir_cast(k, yt, v));
		return MPCC_OK;
	}
	if (n->op == MPCC_OP_REDUCELOGSUMEXP) {
		int tmax, tsum;
		st = mpcc_red_max_sumexp(k, &rv, bx, acc, true, &tmax, &tsum);
		if (st)
			return st;
		int32_t pv[MPCC_MAX_RANK];
		mpcc_lower_vars(k, 0, rv.n_par, pv);
		int32_t kidx = mpcc_lower_linear(k, rv.n_par, rv.par_ext, pv);
		int32_t v = kir_binary(k, KIR_ADD, kir_load(k, tmax, kidx),
		                       kir_unary(k, KIR_LOG, kir_load(k, tsum, kidx)));
		kir_stage *s = mpcc_red_map_stage(k, rv.n_par, rv.par_ext);
		if (!s)
			return MPCC_ERR_NOMEM;
		kir_stage_store(k, s, by, kidx, kir_cast(k, yt, v));
		return MPCC_OK;
	}
	mpcc_red_axes_reduce(k, &rv, ax);
	int32_t v = reduce_point(k, n->op, mpcc_red_load(k, bx, mpcc_red_index(k, &rv, ax), acc));
	kir_stage *s = kir_stage_add(k, rv.n_par, rv.par_ext, rv.n_red, rv.red_ext,
	                             reduce_kind(n->op), acc, v);
	if (!s)
		return MPCC_ERR_NOMEM;
	int32_t out = reduce_finish(k, n->op, kir_acc(k, acc), rv.n_red_elems);
	kir_stage_store(k, s, by, mpcc_red_kept_index(k, &rv, ax), kir_cast(k, yt, out));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- ArgMax, ArgMin */

static const char *const arg_attrs[] = {"axis", "keepdims", "select_last_index", NULL};

static mpcc_status
infer_arg(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *y = mpcc_red_out(g, n, 0);
	if (!x || !y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input or output");
	if (x->dtype == MPCC_DTYPE_BOOL || x->dtype == MPCC_DTYPE_UNDEF)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "unsupported input dtype %s",
		                       mpcc_dtype_name(x->dtype));
	int64_t a64 = mpcc_node_attr_int(n, "axis", 0);
	int a = mpcc_axis(a64, x->rank);
	if (a < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis %lld out of range for rank %d",
		                       (long long)a64, x->rank);
	bool keep = mpcc_node_attr_int(n, "keepdims", 1) != 0;
	int64_t dims[MPCC_MAX_RANK];
	const char *sym[MPCC_MAX_RANK];
	int r = 0;
	for (int i = 0; i < x->rank; i++) {
		if (i != a) {
			sym[r] = x->sym[i];
			dims[r++] = x->dims[i];
		} else if (keep) {
			sym[r] = NULL;
			dims[r++] = 1;
		}
	}
	mpcc_red_set(y, MPCC_DTYPE_I64, r, dims, sym);
	return MPCC_OK;
}

static mpcc_status
lower_arg(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0);
	int a = mpcc_axis(mpcc_node_attr_int(n, "axis", 0), x->rank);
	bool last = mpcc_node_attr_int(n, "select_last_index", 0) != 0;
	bool red[MPCC_MAX_RANK] = {false};
	red[a] = true;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype cdt = mpcc_red_is_lowfloat(x->dtype) ? MPCC_DTYPE_F32 : x->dtype;
	mpcc_red_view rv;
	mpcc_red_view_init(&rv, x, red);
	int32_t ax[MPCC_MAX_RANK];
	mpcc_red_axes_reduce(k, &rv, ax);
	int32_t v = mpcc_red_load(k, bx, mpcc_red_index(k, &rv, ax), cdt);
	kir_red op;
	if (n->op == MPCC_OP_ARGMAX)
		op = last ? KIR_RED_ARGMAX_LAST : KIR_RED_ARGMAX;
	else
		op = last ? KIR_RED_ARGMIN_LAST : KIR_RED_ARGMIN;
	kir_stage *s = kir_stage_add(k, rv.n_par, rv.par_ext, 1, rv.red_ext, op, MPCC_DTYPE_I64, v);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, mpcc_red_kept_index(k, &rv, ax),
	                kir_cast(k, mpcc_red_buf_dtype(k, by), kir_acc(k, MPCC_DTYPE_I64)));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- CumSum */

static const char *const cumsum_attrs[] = {"exclusive", "reverse", NULL};

/* The axis input of CumSum: a constant scalar (or one-element) integer. */
static mpcc_status
cumsum_axis(mpcc_graph *g, const mpcc_node *n, const mpcc_value *x, int *out, mpcc_diag *d)
{
	const mpcc_value *av = mpcc_red_in(g, n, 1);
	if (!av)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing axis input");
	if (!(av->flags & MPCC_VALUE_CONST) || !av->data)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
		                       "axis input '%s' must be known at compile time (a graph "
		                       "input can be frozen: --freeze %s=FILE.npy)",
		                       av->name ? av->name : "?", av->name ? av->name : "NAME");
	if (!mpcc_dtype_is_int(av->dtype) || mpcc_value_numel(av) != 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "axis input '%s' must be one integer", av->name);
	int64_t a64 = mpcc_value_get_int(av, 0);
	*out = mpcc_axis(a64, x->rank);
	if (*out < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis %lld out of range for rank %d",
		                       (long long)a64, x->rank);
	return MPCC_OK;
}

static mpcc_status
infer_cumsum(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0), *y = mpcc_red_out(g, n, 0);
	int a;
	if (!x || !y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input or output");
	if (x->dtype == MPCC_DTYPE_BOOL || x->dtype == MPCC_DTYPE_UNDEF)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "unsupported input dtype %s",
		                       mpcc_dtype_name(x->dtype));
	if (x->rank < 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "input must have rank >= 1");
	mpcc_status st = cumsum_axis(g, n, x, &a, d);
	if (st)
		return st;
	mpcc_red_set_like(y, x->dtype, x);
	return MPCC_OK;
}

/*
 * Each output element is a reduction over the whole axis with a select that
 * keeps only the points before it (or after it, reversed; strictly, when
 * exclusive). Quadratic in the axis length, but one plain stage that every
 * backend parallelises over the output.
 */
static mpcc_status
lower_cumsum(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_red_in(g, n, 0);
	int a;
	mpcc_status st = cumsum_axis(g, n, x, &a, lx->d);
	if (st)
		return st;
	bool excl = mpcc_node_attr_int(n, "exclusive", 0) != 0;
	bool rev = mpcc_node_attr_int(n, "reverse", 0) != 0;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype acc = reduce_acc(MPCC_OP_CUMSUM, x->dtype);
	int32_t ov[MPCC_MAX_RANK], iv[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, x->rank, ov);
	for (int i = 0; i < x->rank; i++)
		iv[i] = ov[i];
	int32_t j = kir_var(k, x->rank);
	iv[a] = j;
	kir_op cmp = rev ? (excl ? KIR_GT : KIR_GE) : (excl ? KIR_LT : KIR_LE);
	int32_t keep = kir_binary(k, cmp, j, ov[a]);
	int32_t v = mpcc_red_load(k, bx, mpcc_lower_linear(k, x->rank, x->dims, iv), acc);
	int32_t zero = mpcc_dtype_is_float(acc) ? kir_const_f(k, acc, 0) : kir_const_i(k, acc, 0);
	v = kir_select(k, keep, v, zero);
	int64_t len = x->dims[a];
	kir_stage *s = kir_stage_add(k, x->rank, x->dims, 1, &len, KIR_RED_SUM, acc, v);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, mpcc_lower_linear(k, x->rank, x->dims, ov),
	                kir_cast(k, mpcc_red_buf_dtype(k, by), kir_acc(k, acc)));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- the table */

#define REDUCE(id)                                                                                 \
	{                                                                                          \
		MPCC_OP_##id, 1, 2, 1, 1, reduce_attrs, infer_reduce, lower_reduce                 \
	}

const mpcc_op_rule mpcc_rules_reduce[] = {
    REDUCE(REDUCESUM),
    REDUCE(REDUCEMEAN),
    REDUCE(REDUCEMAX),
    REDUCE(REDUCEMIN),
    REDUCE(REDUCEPROD),
    REDUCE(REDUCEL1),
    REDUCE(REDUCEL2),
    REDUCE(REDUCELOGSUM),
    REDUCE(REDUCELOGSUMEXP),
    REDUCE(REDUCESUMSQUARE),
    {MPCC_OP_ARGMAX, 1, 1, 1, 1, arg_attrs, infer_arg, lower_arg},
    {MPCC_OP_ARGMIN, 1, 1, 1, 1, arg_attrs, infer_arg, lower_arg},
    {MPCC_OP_CUMSUM, 2, 2, 1, 1, cumsum_attrs, infer_cumsum, lower_cumsum},
    {MPCC_OP_HARDMAX, 1, 1, 1, 1, mpcc_red_attrs_softmax, mpcc_red_infer_softmax,
     mpcc_red_lower_softmax},
    {MPCC_OP_SOFTMAX, 1, 1, 1, 1, mpcc_red_attrs_softmax, mpcc_red_infer_softmax,
     mpcc_red_lower_softmax},
    {MPCC_OP_LOGSOFTMAX, 1, 1, 1, 1, mpcc_red_attrs_softmax, mpcc_red_infer_softmax,
     mpcc_red_lower_softmax},
    {MPCC_OP_SOFTMAXCROSSENTROPYLOSS, 2, 3, 1, 2, mpcc_red_attrs_sce, mpcc_red_infer_loss,
     mpcc_red_lower_loss},
    {MPCC_OP_NEGATIVELOGLIKELIHOODLOSS, 2, 3, 1, 1, mpcc_red_attrs_nll, mpcc_red_infer_loss,
     mpcc_red_lower_loss},
    {MPCC_OP_BATCHNORMALIZATION, 5, 5, 1, 5, mpcc_red_attrs_batchnorm, mpcc_red_infer_batchnorm,
     mpcc_red_lower_batchnorm},
    {MPCC_OP_INSTANCENORMALIZATION, 3, 3, 1, 1, mpcc_red_attrs_instancenorm,
     mpcc_red_infer_instancenorm, mpcc_red_lower_instancenorm},
    {MPCC_OP_LAYERNORMALIZATION, 2, 3, 1, 3, mpcc_red_attrs_layernorm, mpcc_red_infer_layernorm,
     mpcc_red_lower_layernorm},
    {MPCC_OP_LRN, 1, 1, 1, 1, mpcc_red_attrs_lrn, mpcc_red_infer_lrn, mpcc_red_lower_lrn},
    {MPCC_OP_MEANVARIANCENORMALIZATION, 1, 1, 1, 1, mpcc_red_attrs_mvn, mpcc_red_infer_mvn,
     mpcc_red_lower_mvn},
    {MPCC_OP_LPNORMALIZATION, 1, 1, 1, 1, mpcc_red_attrs_lpnorm, mpcc_red_infer_lpnorm,
     mpcc_red_lower_lpnorm},
    {.op = MPCC_OP_INVALID},
};
