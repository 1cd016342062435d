/*
 * ops/misc.c - the ops that fit no other family: the
 * ai.onnx.preview.training optimizers (Adagrad, Momentum, Adam), TopK and
 * Compress here, with the family's table; GridSample, RoiAlign, MaxUnpool and
 * Det live in ops/misc_image.c, the mpcc-internal HashRandomUniform (the
 * random numbers of training-mode Dropout) in ops/misc_random.c.
 *
 * The optimizers are variadic: one node updates several tensors at once. Each
 * tensor group lowers to its own kernel of one flat elementwise stage with one
 * store per updated state, computing in f32 (f64 for f64 tensors); the scalar
 * learning rate R and step count T are loaded at run time, so a plan serves
 * every step. TopK has no sort in kernel IR to lean on: it ranks each element
 * along the axis by counting the elements that beat it, then picks the element
 * of each rank with an ARGMAX. Compress needs its condition at compile time
 * (it decides the output shape) and becomes a gather through a select chain.
 */
#include <stdio.h>
#include <string.h>

#include "ops/misc_impl.h"

/* ---------------------------------------------------------------- shared helpers */

mpcc_value *
mpcc_misc_in(mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_in && n->in[i] != MPCC_NONE ? &g->values[n->in[i]] : NULL;
}

mpcc_value *
mpcc_misc_out(mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_out && n->out[i] != MPCC_NONE ? &g->values[n->out[i]] : NULL;
}

void
mpcc_misc_set(mpcc_value *v, mpcc_dtype t, int rank, const int64_t *dims)
{
	v->dtype = t;
	v->rank = rank;
	for (int i = 0; i < rank; i++) {
		v->dims[i] = dims[i];
		v->sym[i] = NULL;
	}
}

mpcc_status
mpcc_misc_need_const(const mpcc_node *n, const mpcc_value *v, const char *what, mpcc_diag *d)
{
	if (!(v->flags & MPCC_VALUE_CONST) || !v->data)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
		                       "%s input '%s' must be known at compile time (a graph input "
		                       "can be frozen: --freeze %s=FILE.npy)",
		                       what, v->name ? v->name : "?", v->name ? v->name : "NAME");
	return MPCC_OK;
}

/* The dtype float math runs in for values stored as t. */
mpcc_dtype
mpcc_misc_compute(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F64 ? MPCC_DTYPE_F64 : MPCC_DTYPE_F32;
}

/* ---------------------------------------------------------------- optimizers */

static const char *const adagrad_attrs[] = {"decay_factor", "epsilon", "norm_coefficient", NULL};
static const char *const momentum_attrs[] = {"alpha", "beta", "mode", "norm_coefficient", NULL};
static const char *const adam_attrs[] = {
    "alpha", "beta", "epsilon", "norm_coefficient", "norm_coefficient_post", NULL};

/* How many per-tensor inputs (X, G, then states) each optimizer takes. */
static int
opt_arity(mpcc_op op)
{
	return op == MPCC_OP_ADAM ? 4 : 3;
}

/*
 * Checks the variadic layout R, T, X1..Xn, G1..Gn, S1..Sn[, S'1..S'n] against
 * outputs X_new1..n, S_new1..n[, S'_new1..n], and returns n.
 */
static mpcc_status
opt_groups(mpcc_graph *g, const mpcc_node *n, int *out_n, mpcc_diag *d)
{
	int per = opt_arity(n->op);
	if (n->n_in < 2 + per || (n->n_in - 2) % per != 0)
		return mpcc_node_error(
		    d, n, MPCC_ERR_INVALID,
		    "expects R, T and %d inputs per optimised tensor, got %d inputs", per, n->n_in);
	int cnt = (n->n_in - 2) / per;
	if (n->n_out != cnt * (per - 1))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "%d optimised tensors need %d outputs, got %d", cnt,
		                       cnt * (per - 1), n->n_out);
	for (int i = 0; i < n->n_in; i++)
		if (!mpcc_misc_in(g, n, i))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "input %d is missing", i);
	const mpcc_value *r = mpcc_misc_in(g, n, 0), *t = mpcc_misc_in(g, n, 1);
	if (!mpcc_dtype_is_float(r->dtype) || mpcc_value_numel(r) != 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "R must be a float scalar");
	if (!mpcc_dtype_is_int(t->dtype) || mpcc_value_numel(t) != 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "T must be an integer scalar");
	if (n->op == MPCC_OP_MOMENTUM) {
		static const char *const req[] = {"alpha", "beta", "mode", "norm_coefficient"};
		for (int i = 0; i < 4; i++)
			if (!mpcc_node_attr(n, req[i]))
				return mpcc_node_error(d, n, MPCC_ERR_INVALID,
				                       "missing required attribute %s", req[i]);
		const char *mode = mpcc_node_attr_string(n, "mode", "");
		if (strcmp(mode, "standard") != 0 && strcmp(mode, "nesterov") != 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "mode must be standard or nesterov, not '%s'", mode);
	}
	*out_n = cnt;
	return MPCC_OK;
}

static mpcc_status
infer_optimizer(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	int cnt, per = opt_arity(n->op);
	mpcc_status st = opt_groups(g, n, &cnt, d);
	if (st)
		return st;
	for (int j = 0; j < cnt; j++) {
		const mpcc_value *x = mpcc_misc_in(g, n, 2 + j);
		if (!mpcc_dtype_is_float(x->dtype))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "optimised tensor '%s' must be float, not %s",
			                       x->name, mpcc_dtype_name(x->dtype));
		for (int s = 1; s < per; s++) {
			const mpcc_value *o = mpcc_misc_in(g, n, 2 + s * cnt + j);
			bool same = o->dtype == x->dtype && o->rank == x->rank;
			for (int i = 0; same && i < x->rank; i++)
				same = o->dims[i] == x->dims[i];
			if (!same)
				return mpcc_node_error(d, n, MPCC_ERR_INVALID,
				                       "'%s' must have the dtype and shape of '%s'",
				                       o->name, x->name);
		}
		for (int s = 0; s < per - 1; s++) {
			mpcc_value *y = mpcc_misc_out(g, n, s * cnt + j);
			if (y)
				mpcc_misc_set(y, x->dtype, x->rank, x->dims);
		}
	}
	return MPCC_OK;
}

/* The loaded scalars and constants one optimizer group's expressions use. */
typedef struct opt_ctx {
	kir_kernel *k;
	mpcc_dtype c; /* compute dtype */
	int32_t r, t; /* R in c; T as I64 */
	int32_t tpos; /* T > 0 (BOOL) */
	int32_t tf;   /* T in c */
} opt_ctx;

static int32_t
cf(opt_ctx *o, double v)
{
	return kir_const_f(o->k, o->c, v);
}

static int32_t
bin(opt_ctx *o, kir_op op, int32_t a, int32_t b)
{
	return kir_binary(o->k, op, a, b);
}

/*
 * The update of one tensor group at flat position i; fills val[] with the
 * new X and the new states in output order. Formulas follow the operator
 * specs: the regularised gradient is norm_coefficient * x + g throughout.
 */
static int
opt_update(opt_ctx *o, const mpcc_node *n, const int32_t *in, int32_t *val)
{
	float nc = mpcc_node_attr_float(n, "norm_coefficient", 0.0f);
	int32_t x = in[0];
	int32_t gr = bin(o, KIR_ADD, bin(o, KIR_MUL, cf(o, nc), x), in[1]);

	if (n->op == MPCC_OP_ADAGRAD) {
		float decay = mpcc_node_attr_float(n, "decay_factor", 0.0f);
		float eps = mpcc_node_attr_float(n, "epsilon", 1e-6f);
		int32_t rr = bin(o, KIR_DIV, o->r,
		                 bin(o, KIR_ADD, cf(o, 1), bin(o, KIR_MUL, o->tf, cf(o, decay))));
		int32_t h = bin(o, KIR_ADD, in[2], bin(o, KIR_MUL, gr, gr));
		int32_t hs = bin(o, KIR_ADD, kir_unary(o->k, KIR_SQRT, h), cf(o, eps));
		val[0] = bin(o, KIR_SUB, x, bin(o, KIR_DIV, bin(o, KIR_MUL, rr, gr), hs));
		val[1] = h;
		return 2;
	}
	if (n->op == MPCC_OP_MOMENTUM) {
		float alpha = mpcc_node_attr_float(n, "alpha", 0.0f);
		float beta = mpcc_node_attr_float(n, "beta", 0.0f);
		bool nesterov = strcmp(mpcc_node_attr_string(n, "mode", ""), "nesterov") == 0;
		int32_t b = kir_select(o->k, o->tpos, cf(o, beta), cf(o, 1));
		int32_t v =
		    bin(o, KIR_ADD, bin(o, KIR_MUL, cf(o, alpha), in[2]), bin(o, KIR_MUL, b, gr));
		int32_t step = nesterov ? bin(o, KIR_ADD, gr, bin(o, KIR_MUL, cf(o, alpha), v)) : v;
		val[0] = bin(o, KIR_SUB, x, bin(o, KIR_MUL, o->r, step));
		val[1] = v;
		return 2;
	}
	float alpha = mpcc_node_attr_float(n, "alpha", 0.9f);
	float beta = mpcc_node_attr_float(n, "beta", 0.999f);
	float eps = mpcc_node_attr_float(n, "epsilon", 1e-6f);
	float post = mpcc_node_attr_float(n, "norm_coefficient_post", 0.0f);
	int32_t v = bin(o, KIR_ADD, bin(o, KIR_MUL, cf(o, alpha), in[2]),
	                bin(o, KIR_MUL, cf(o, 1.0 - (double)alpha), gr));
	int32_t h = bin(o, KIR_ADD, bin(o, KIR_MUL, cf(o, beta), in[3]),
	                bin(o, KIR_MUL, cf(o, 1.0 - (double)beta), bin(o, KIR_MUL, gr, gr)));
	int32_t hs = bin(o, KIR_ADD, kir_unary(o->k, KIR_SQRT, h), cf(o, eps));
	/* bias correction r * sqrt(1 - beta^t) / (1 - alpha^t), only once t > 0 */
	int32_t corr =
	    bin(o, KIR_DIV,
	        kir_unary(o->k, KIR_SQRT,
	                  bin(o, KIR_SUB, cf(o, 1), bin(o, KIR_POW, cf(o, beta), o->tf))),
	        bin(o, KIR_SUB, cf(o, 1), bin(o, KIR_POW, cf(o, alpha), o->tf)));
	int32_t rr = kir_select(o->k, o->tpos, bin(o, KIR_MUL, o->r, corr), o->r);
	int32_t xn = bin(o, KIR_SUB, x, bin(o, KIR_MUL, rr, bin(o, KIR_DIV, v, hs)));
	val[0] = bin(o, KIR_MUL, cf(o, 1.0 - (double)post), xn);
	val[1] = v;
	val[2] = h;
	return 3;
}

static mpcc_status
lower_optimizer(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	int cnt, per = opt_arity(n->op);
	mpcc_status st = opt_groups(g, n, &cnt, lx->d);
	if (st)
		return st;
	for (int j = 0; j < cnt; j++) {
		const mpcc_value *xv = mpcc_misc_in(g, n, 2 + j);
		int64_t numel = mpcc_value_numel(xv);
		char suffix[16];
		snprintf(suffix, sizeof suffix, "_%d", j);
		kir_kernel *k = mpcc_lower_kernel(lx, ni, suffix);
		if (!k)
			return MPCC_ERR_NOMEM;
		if (numel <= 0)
			continue;
		opt_ctx o = {.k = k, .c = mpcc_misc_compute(xv->dtype)};
		int br = mpcc_lower_param(k, g, n->in[0]), bt = mpcc_lower_param(k, g, n->in[1]);
		o.r = kir_cast(k, o.c, kir_load(k, br, kir_iconst(k, 0)));
		o.t = kir_cast(k, MPCC_DTYPE_I64, kir_load(k, bt, kir_iconst(k, 0)));
		o.tpos = kir_binary(k, KIR_GT, o.t, kir_iconst(k, 0));
		o.tf = kir_cast(k, o.c, o.t);
		int32_t i = kir_var(k, 0), in[4], val[3];
		for (int s = 0; s < per; s++) {
			int b = mpcc_lower_param(k, g, n->in[2 + s * cnt + j]);
			in[s] = kir_cast(k, o.c, kir_load(k, b, i));
		}
		int nv = opt_update(&o, n, in, val);
		kir_stage *stg =
		    kir_stage_add(k, 1, &numel, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
		if (!stg)
			return MPCC_ERR_NOMEM;
		for (int s = 0; s < nv; s++) {
			int32_t yv = n->out[s * cnt + j];
			if (yv == MPCC_NONE)
				continue;
			int b = mpcc_lower_param(k, g, yv);
			stg = &k->stages[k->n_stages - 1];
			kir_stage_store(k, stg, b, i,
			                kir_cast(k, (mpcc_dtype)k->bufs[b].dtype, val[s]));
		}
	}
	return MPCC_OK;
}

/* ---------------------------------------------------------------- TopK */

static const char *const topk_attrs[] = {"axis", "largest", "sorted", "k", NULL};

/* The axis and k of a TopK node (k: the attribute before opset 10, else the
 * constant second input). */
static mpcc_status
topk_params(mpcc_graph *g, const mpcc_node *n, int *axis, int64_t *kk, mpcc_diag *d)
{
	const mpcc_value *x = mpcc_misc_in(g, n, 0);
	if (!x)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input X");
	if (x->rank < 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "X must have rank >= 1");
	int64_t a64 = mpcc_node_attr_int(n, "axis", -1);
	*axis = mpcc_axis(a64, x->rank);
	if (*axis < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "axis %lld out of range for rank %d",
		                       (long long)a64, x->rank);
	const mpcc_value *kv = mpcc_misc_in(g, n, 1);
	if (n->opset < 10) {
		if (kv || !mpcc_node_attr(n, "k"))
			return mpcc_node_error(
			    d, n, MPCC_ERR_INVALID,
			    "before opset 10, k is an attribute and the only input "
			    "is X");
		*kk = mpcc_node_attr_int(n, "k", 0);
	} else {
		if (mpcc_node_attr(n, "k"))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "since opset 10, k is an input, not an attribute");
		if (!kv)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input K");
		mpcc_status st = mpcc_misc_need_const(n, kv, "K", d);
		if (st)
			return st;
		if (!mpcc_dtype_is_int(kv->dtype) || mpcc_value_numel(kv) != 1)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "K must hold one integer");
		*kk = mpcc_value_get_int(kv, 0);
	}
	if (*kk < 0 || *kk > x->dims[*axis])
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "k = %lld outside [0, %lld], the length of axis %d",
		                       (long long)*kk, (long long)x->dims[*axis], *axis);
	return MPCC_OK;
}

static mpcc_status
infer_topk(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	int axis;
	int64_t kk;
	mpcc_status st = topk_params(g, n, &axis, &kk, d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0);
	if (x->dtype == MPCC_DTYPE_BOOL || x->dtype == MPCC_DTYPE_UNDEF)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "unsupported input dtype %s",
		                       mpcc_dtype_name(x->dtype));
	int64_t dims[MPCC_MAX_RANK];
	memcpy(dims, x->dims, sizeof dims);
	dims[axis] = kk;
	mpcc_value *yv = mpcc_misc_out(g, n, 0), *yi = mpcc_misc_out(g, n, 1);
	if (yv)
		mpcc_misc_set(yv, x->dtype, x->rank, dims);
	if (yi)
		mpcc_misc_set(yi, MPCC_DTYPE_I64, x->rank, dims);
	return MPCC_OK;
}

/*
 * Two stages. The first gives every element its rank along the axis: the
 * number of elements that come before it in the output order (greater, or
 * smaller for largest = 0, or equal at a lower index, so ties keep index
 * order), summed into an I64 TEMP of X's shape. The second runs over the
 * output and, for slot j, finds the position whose rank is j with an ARGMAX
 * of (rank == j) along the axis, storing that index and the value there.
 * O(n^2) in the axis length, in exchange for stages every backend runs in
 * parallel. The output is always sorted, which sorted = 0 permits.
 */
static mpcc_status
lower_topk(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	int axis;
	int64_t kk;
	mpcc_status st = topk_params(g, n, &axis, &kk, lx->d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0);
	bool largest = mpcc_node_attr_int(n, "largest", 1) != 0;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int64_t numel = mpcc_value_numel(x), len = x->dims[axis];
	int64_t odims[MPCC_MAX_RANK];
	memcpy(odims, x->dims, sizeof odims);
	odims[axis] = kk;
	if (numel == 0 || kk == 0)
		return MPCC_OK;
	int bx = mpcc_lower_param(k, g, n->in[0]);
	int brank = kir_buf_add(k, MPCC_DTYPE_I64, KIR_BUF_TEMP, MPCC_NONE, numel);
	mpcc_dtype c =
	    x->dtype == MPCC_DTYPE_F16 || x->dtype == MPCC_DTYPE_BF16 ? MPCC_DTYPE_F32 : x->dtype;
	int rank = x->rank;

	/* stage 1: rank[p] = #{q : x[q] beats x[p]} along the axis */
	int32_t pv[MPCC_MAX_RANK], qv[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, rank, pv);
	memcpy(qv, pv, sizeof(int32_t) * (size_t)rank);
	qv[axis] = kir_var(k, rank);
	int32_t pidx = mpcc_lower_linear(k, rank, x->dims, pv);
	int32_t xp = kir_cast(k, c, kir_load(k, bx, pidx));
	int32_t xq = kir_cast(k, c, kir_load(k, bx, mpcc_lower_linear(k, rank, x->dims, qv)));
	int32_t better = kir_binary(k, largest ? KIR_GT : KIR_LT, xq, xp);
	int32_t tie = kir_binary(k, KIR_AND, kir_binary(k, KIR_EQ, xq, xp),
	                         kir_binary(k, KIR_LT, qv[axis], pv[axis]));
	int32_t beats = kir_cast(k, MPCC_DTYPE_I64, kir_binary(k, KIR_OR, better, tie));
	kir_stage *s = kir_stage_add(k, rank, x->dims, 1, &len, KIR_RED_SUM, MPCC_DTYPE_I64, beats);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, brank, pidx, kir_acc(k, MPCC_DTYPE_I64));

	/* stage 2: slot j of the output takes the position of rank j */
	int32_t ov[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, rank, ov);
	memcpy(qv, ov, sizeof(int32_t) * (size_t)rank);
	qv[axis] = kir_var(k, rank);
	int32_t hit = kir_binary(
	    k, KIR_EQ, kir_load(k, brank, mpcc_lower_linear(k, rank, x->dims, qv)), ov[axis]);
	s = kir_stage_add(k, rank, odims, 1, &len, KIR_RED_ARGMAX, MPCC_DTYPE_I64,
	                  kir_cast(k, MPCC_DTYPE_I64, hit));
	if (!s)
		return MPCC_ERR_NOMEM;
	int32_t oidx = mpcc_lower_linear(k, rank, odims, ov);
	int32_t src = kir_acc(k, MPCC_DTYPE_I64);
	int32_t sv[MPCC_MAX_RANK];
	memcpy(sv, ov, sizeof(int32_t) * (size_t)rank);
	sv[axis] = src;
	if (n->n_out > 0 && n->out[0] != MPCC_NONE) {
		int by = mpcc_lower_param(k, g, n->out[0]);
		s = &k->stages[k->n_stages - 1];
		int32_t val = kir_load(k, bx, mpcc_lower_linear(k, rank, x->dims, sv));
		kir_stage_store(k, s, by, oidx, kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, val));
	}
	if (n->n_out > 1 && n->out[1] != MPCC_NONE) {
		int bi = mpcc_lower_param(k, g, n->out[1]);
		s = &k->stages[k->n_stages - 1];
		kir_stage_store(k, s, bi, oidx, kir_cast(k, (mpcc_dtype)k->bufs[bi].dtype, src));
	}
	return MPCC_OK;
}

/* ---------------------------------------------------------------- Compress */

static const char *const compress_attrs[] = {"axis", NULL};

/* The axis (-1 when X is flattened) and the count of selected slices. */
static mpcc_status
compress_params(mpcc_graph *g, const mpcc_node *n, int *axis, int64_t *count, mpcc_diag *d)
{
	const mpcc_value *x = mpcc_misc_in(g, n, 0), *cv = mpcc_misc_in(g, n, 1);
	if (!x || !cv)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input");
	mpcc_status st = mpcc_misc_need_const(n, cv, "condition", d);
	if (st)
		return st;
	if (cv->rank != 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "condition must be 1-D");
	int64_t len = mpcc_value_numel(x);
	*axis = -1;
	if (mpcc_node_attr(n, "axis")) {
		int64_t a64 = mpcc_node_attr_int(n, "axis", 0);
		*axis = mpcc_axis(a64, x->rank);
		if (*axis < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "axis %lld out of range for rank %d", (long long)a64,
			                       x->rank);
		len = x->dims[*axis];
	}
	if (cv->dims[0] > len)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "condition has %lld entries for %lld slices",
		                       (long long)cv->dims[0], (long long)len);
	*count = 0;
	for (int64_t i = 0; i < cv->dims[0]; i++)
		*count += mpcc_value_get_double(cv, i) != 0;
	return MPCC_OK;
}

static mpcc_status
infer_compress(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	int axis;
	int64_t count;
	mpcc_status st = compress_params(g, n, &axis, &count, d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0);
	mpcc_value *y = mpcc_misc_out(g, n, 0);
	if (axis < 0) {
		mpcc_misc_set(y, x->dtype, 1, &count);
		return MPCC_OK;
	}
	int64_t dims[MPCC_MAX_RANK];
	memcpy(dims, x->dims, sizeof dims);
	dims[axis] = count;
	mpcc_misc_set(y, x->dtype, x->rank, dims);
	return MPCC_OK;
}

/*
 * A gather whose source index along the axis is a compile-time function of
 * the output index: a chain of selects from the selected positions, which is
 * linear in their number and needs no index table.
 */
static mpcc_status
lower_compress(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	int axis;
	int64_t count;
	mpcc_status st = compress_params(g, n, &axis, &count, lx->d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0), *cv = mpcc_misc_in(g, n, 1);
	const mpcc_value *yv = mpcc_misc_out(g, n, 0);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	if (mpcc_value_numel(yv) <= 0)
		return MPCC_OK;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	int a = axis < 0 ? 0 : axis;
	int32_t ov[MPCC_MAX_RANK], iv[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, yv->rank, ov);
	memcpy(iv, ov, sizeof(int32_t) * (size_t)yv->rank);
	int32_t src = kir_iconst(k, 0);
	for (int64_t i = cv->dims[0] - 1, j = count - 1; i >= 0; i--) {
		if (mpcc_value_get_double(cv, i) == 0)
			continue;
		src = kir_select(k, kir_binary(k, KIR_EQ, ov[a], kir_iconst(k, j)),
		                 kir_iconst(k, i), src);
		j--;
	}
	iv[a] = src;
	int32_t xidx = axis < 0 ? src : mpcc_lower_linear(k, x->rank, x->dims, iv);
	kir_stage *s = kir_stage_add(k, yv->rank, yv->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF,
	                             MPCC_NONE);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, mpcc_lower_linear(k, yv->rank, yv->dims, ov),
	                kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, kir_load(k, bx, xidx)));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- Gradient */

/*
 * ai.onnx.preview.training Gradient: outputs d y / d xs[i], each shaped like
 * xs[i] (the node's first inputs). It has no lowering: passes/gradient.c
 * replaces it by the backward nodes of passes/autodiff.c once shapes are
 * known, so only its outputs' shapes are defined here.
 */
static const char *const gradient_attrs[] = {"xs", "y", "zs", NULL};

static mpcc_status
infer_gradient(mpcc_graph *g, int32_t node, mpcc_diag *d)
{
	const mpcc_node *n = &g->nodes[node];
	const mpcc_attr *xs = mpcc_node_attr(n, "xs");

	if (!xs || xs->kind != MPCC_ATTR_STRINGS || xs->n != n->n_out || xs->n > n->n_in)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "needs attribute xs naming one input per output");
	if (!mpcc_node_attr_string(n, "y", NULL))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "needs attribute y");
	for (int i = 0; i < n->n_out; i++) {
		const mpcc_value *x = &g->values[n->in[i]];
		mpcc_value *o = &g->values[n->out[i]];
		if (strcmp(x->name, xs->strings[i]) != 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "input %d is '%s' but xs[%d] names '%s'", i, x->name, i,
			                       xs->strings[i]);
		if (!mpcc_dtype_is_float(x->dtype))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "xs[%d] '%s' is not float", i,
			                       x->name);
		o->dtype = x->dtype;
		o->rank = x->rank;
		memcpy(o->dims, x->dims, sizeof(o->dims));
	}
	return MPCC_OK;
}

/* ---------------------------------------------------------------- the table */

const mpcc_op_rule mpcc_rules_misc[] = {
    {MPCC_OP_ADAGRAD, 5, 2 + 3 * 64, 2, 2 * 64, adagrad_attrs, infer_optimizer, lower_optimizer},
    {MPCC_OP_MOMENTUM, 5, 2 + 3 * 64, 2, 2 * 64, momentum_attrs, infer_optimizer, lower_optimizer},
    {MPCC_OP_ADAM, 6, 2 + 4 * 64, 3, 3 * 64, adam_attrs, infer_optimizer, lower_optimizer},
    {MPCC_OP_TOPK, 1, 2, 2, 2, topk_attrs, infer_topk, lower_topk},
    {MPCC_OP_COMPRESS, 2, 2, 1, 1, compress_attrs, infer_compress, lower_compress},
    {MPCC_OP_GRIDSAMPLE, 2, 2, 1, 1, MPCC_MISC_RULE(gridsample)},
    {MPCC_OP_MAXUNPOOL, 2, 3, 1, 1, MPCC_MISC_RULE(maxunpool)},
    {MPCC_OP_ROIALIGN, 3, 3, 1, 1, MPCC_MISC_RULE(roialign)},
    {MPCC_OP_DET, 1, 1, 1, 1, MPCC_MISC_RULE(det)},
    {MPCC_OP_HASHRANDOMUNIFORM, 1, 1, 1, 1, MPCC_MISC_RULE(hashuniform)},
    {MPCC_OP_GRADIENT, 1, 64, 1, 64, gradient_attrs, infer_gradient, NULL},
    {.op = MPCC_OP_INVALID},
};
