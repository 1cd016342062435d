/*
 * ops/nn.c - matrix products, convolutions and pooling.
 *
 * Every op here is one reduction stage (or two, for average pooling's
 * divisor): the parallel dims are the output's, the reduction dims are the
 * contracted ones (K of a matrix product; input channels and kernel window of
 * a convolution). Padding is a bounds predicate on the load, never a padded
 * copy. f16/bf16 operands are widened to f32 and accumulated in f32, f64 in
 * f64, integers in their own type. These are the "templates" the kernel IR
 * keeps simple on purpose: a later pass picks blocked or tensor-core variants
 * by recognising the same stage shape.
 */
#include <math.h>
#include <string.h>

#include "ops/nn_impl.h"
#include "ops/ops.h"

/* The dtype matrix products accumulate in for a given operand dtype. */
static mpcc_dtype
acc_dtype(mpcc_dtype t)
{
	if (t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16)
		return MPCC_DTYPE_F32;
	return t;
}

static mpcc_value *
val(mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_in && n->in[i] != MPCC_NONE ? &g->values[n->in[i]] : NULL;
}

static mpcc_value *
outv(mpcc_graph *g, const mpcc_node *n, int i)
{
	return &g->values[n->out[i]];
}

static void
set_shape(mpcc_value *v, mpcc_dtype t, int rank, const int64_t *dims)
{
	v->dtype = t;
	v->rank = rank;
	for (int i = 0; i < rank; i++)
		v->dims[i] = dims[i];
}

static bool
is_numeric(mpcc_dtype t)
{
	return t != MPCC_DTYPE_BOOL && t != MPCC_DTYPE_UNDEF;
}

/* Loads an element and widens it to the accumulation dtype. */
static int32_t
load_acc(kir_kernel *k, int buf, int32_t idx, mpcc_dtype acc)
{
	return kir_cast(k, acc, kir_load(k, buf, idx));
}

/* ---------------------------------------------------------------- MatMul */

/*
 * MatMul follows numpy: 1-D operands are promoted (A to [1,K], B to [K,1])
 * and the promoted dim dropped from the result; leading batch dims
 * broadcast. mpcc_nn_matmul_dims fills the "extended" problem: batch dims, M, K, N.
 */
mpcc_status
mpcc_nn_matmul_dims(const mpcc_value *a, const mpcc_value *b, mpcc_nn_mm_shape *s,
                    const mpcc_node *node, mpcc_diag *d)
{
	if (a->rank < 1 || b->rank < 1)
		return mpcc_node_error(d, node, MPCC_ERR_INVALID, "MatMul operands must have rank >= 1");
	s->a_vec = a->rank == 1;
	s->b_vec = b->rank == 1;
	s->m = s->a_vec ? 1 : a->dims[a->rank - 2];
	int64_t ka = a->dims[a->rank - 1];
	int64_t kb = s->b_vec ? b->dims[0] : b->dims[b->rank - 2];
	s->n = s->b_vec ? 1 : b->dims[b->rank - 1];
	if (ka != kb)
		return mpcc_node_error(d, node, MPCC_ERR_INVALID,
		                       "inner dims differ: A has K=%lld, B has K=%lld", (long long)ka,
		                       (long long)kb);
	s->k = ka;
	int ra = s->a_vec ? 0 : a->rank - 2, rb = s->b_vec ? 0 : b->rank - 2;
	s->n_batch = ra > rb ? ra : rb;
	for (int i = 0; i < s->n_batch; i++) {
		int ia = i - (s->n_batch - ra), ib = i - (s->n_batch - rb);
		int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return mpcc_node_error(d, node, MPCC_ERR_INVALID,
			                       "batch dims do not broadcast (%lld vs %lld)", (long long)da,
			                       (long long)db);
		s->batch[i] = da == 1 ? db : da;
	}
	return MPCC_OK;
}

static mpcc_status
infer_matmul(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *a = val(g, n, 0), *b = val(g, n, 1);
	if (a->dtype != b->dtype || !is_numeric(a->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "operand dtypes %s and %s",
		                       mpcc_dtype_name(a->dtype), mpcc_dtype_name(b->dtype));
	mpcc_nn_mm_shape s;
	mpcc_status st = mpcc_nn_matmul_dims(a, b, &s, n, d);
	if (st)
		return st;
	int64_t dims[MPCC_MAX_RANK + 2];
	int r = 0;
	for (int i = 0; i < s.n_batch; i++)
		dims[r++] = s.batch[i];
	if (!s.a_vec)
		dims[r++] = s.m;
	if (!s.b_vec)
		dims[r++] = s.n;
	if (r > MPCC_MAX_RANK)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "result rank %d", r);
	set_shape(outv(g, n, 0), a->dtype, r, dims);
	return MPCC_OK;
}

/* Linear index of an operand of the extended problem: its batch dims align
 * right against the problem's batch vars (size-1 dims read 0), followed by
 * its two matrix dims (absent for a promoted vector). */
int32_t
mpcc_nn_mm_index(kir_kernel *k, const mpcc_value *v, int n_batch, const int32_t *bvars, int32_t row,
                 int32_t col, bool vec)
{
	int32_t idx[MPCC_MAX_RANK];
	int r = v->rank, nb = vec ? 0 : r - 2;
	for (int i = 0; i < nb; i++) {
		int bi = n_batch - nb + i;
		idx[i] = v->dims[i] == 1 ? kir_iconst(k, 0) : bvars[bi];
	}
	if (vec) {
		idx[0] = row >= 0 ? row : col;
	} else {
		idx[r - 2] = row;
		idx[r - 1] = col;
	}
	return mpcc_lower_linear(k, r, v->dims, idx);
}

static mpcc_status
lower_matmul(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *a = val(g, n, 0), *b = val(g, n, 1), *y = outv(g, n, 0);
	mpcc_nn_mm_shape s;
	mpcc_status st = mpcc_nn_matmul_dims(a, b, &s, n, lx->d);
	if (st)
		return st;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int ba = mpcc_lower_param(k, g, n->in[0]), bb = mpcc_lower_param(k, g, n->in[1]);
	int by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype acc = acc_dtype(a->dtype);

	/* Parallel vars are the output's dims; rebuild the extended indices. */
	int32_t vars[MPCC_MAX_RANK + 1];
	mpcc_lower_vars(k, 0, y->rank + 1, vars);
	int32_t kv = vars[y->rank];
	int32_t zero = kir_iconst(k, 0);
	int p = 0;
	int32_t bvars[MPCC_MAX_RANK];
	for (int i = 0; i < s.n_batch; i++)
		bvars[i] = vars[p++];
	int32_t mv = s.a_vec ? zero : vars[p++];
	int32_t nv = s.b_vec ? zero : vars[p++];
	int32_t ia = mpcc_nn_mm_index(k, a, s.n_batch, bvars, s.a_vec ? -1 : mv, kv, s.a_vec);
	int32_t ib = mpcc_nn_mm_index(k, b, s.n_batch, bvars, kv, s.b_vec ? -1 : nv, s.b_vec);
	int32_t prod = kir_binary(k, KIR_MUL, load_acc(k, ba, ia, acc), load_acc(k, bb, ib, acc));
	int64_t red = s.k;
	kir_stage *stg = kir_stage_add(k, y->rank, y->dims, 1, &red, KIR_RED_SUM, acc, prod);
	if (!stg)
		return MPCC_ERR_NOMEM;
	int32_t out = kir_cast(k, y->storage ? y->storage : y->dtype, kir_acc(k, acc));
	kir_stage_store(k, stg, by, mpcc_lower_linear(k, y->rank, y->dims, vars), out);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- Gemm */

static mpcc_status
gemm_dims(mpcc_graph *g, const mpcc_node *n, int64_t *m, int64_t *kk, int64_t *nn, mpcc_diag *d)
{
	mpcc_value *a = val(g, n, 0), *b = val(g, n, 1);
	if (a->rank != 2 || b->rank != 2)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "Gemm operands must be 2-D");
	bool ta = mpcc_node_attr_int(n, "transA", 0), tb = mpcc_node_attr_int(n, "transB", 0);
	*m = ta ? a->dims[1] : a->dims[0];
	int64_t ka = ta ? a->dims[0] : a->dims[1];
	int64_t kb = tb ? b->dims[1] : b->dims[0];
	*nn = tb ? b->dims[0] : b->dims[1];
	if (ka != kb)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "inner dims differ: %lld vs %lld",
		                       (long long)ka, (long long)kb);
	*kk = ka;
	return MPCC_OK;
}

static mpcc_status
infer_gemm(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	int64_t dims[2], kk;
	mpcc_status st = gemm_dims(g, n, &dims[0], &kk, &dims[1], d);
	if (st)
		return st;
	mpcc_value *a = val(g, n, 0), *c = val(g, n, 2);
	if (c) {
		if (c->rank > 2)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "C has rank %d", c->rank);
		for (int i = 0; i < c->rank; i++) {
			int64_t want = dims[2 - c->rank + i];
			if (c->dims[i] != 1 && c->dims[i] != want)
				return mpcc_node_error(d, n, MPCC_ERR_INVALID,
				                       "C does not broadcast to [%lld,%lld]",
				                       (long long)dims[0], (long long)dims[1]);
		}
	}
	set_shape(outv(g, n, 0), a->dtype, 2, dims);
	return MPCC_OK;
}

static mpcc_status
lower_gemm(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	int64_t m, kk, nn;
	mpcc_status st = gemm_dims(g, n, &m, &kk, &nn, lx->d);
	if (st)
		return st;
	mpcc_value *a = val(g, n, 0), *b = val(g, n, 1), *c = val(g, n, 2), *y = outv(g, n, 0);
	bool ta = mpcc_node_attr_int(n, "transA", 0), tb = mpcc_node_attr_int(n, "transB", 0);
	double alpha = mpcc_node_attr_float(n, "alpha", 1.0f);
	double beta = mpcc_node_attr_float(n, "beta", 1.0f);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	mpcc_dtype acc = acc_dtype(a->dtype);
	int ba = mpcc_lower_param(k, g, n->in[0]), bb = mpcc_lower_param(k, g, n->in[1]);
	int by = mpcc_lower_param(k, g, n->out[0]);
	int32_t v[3];
	mpcc_lower_vars(k, 0, 3, v);
	int32_t ia[2] = {ta ? v[2] : v[0], ta ? v[0] : v[2]};
	int32_t ib[2] = {tb ? v[1] : v[2], tb ? v[2] : v[1]};
	int32_t prod = kir_binary(k, KIR_MUL,
	                          load_acc(k, ba, mpcc_lower_linear(k, 2, a->dims, ia), acc),
	                          load_acc(k, bb, mpcc_lower_linear(k, 2, b->dims, ib), acc));
	int64_t dims[2] = {m, nn};
	kir_stage *stg = kir_stage_add(k, 2, dims, 1, &kk, KIR_RED_SUM, acc, prod);
	if (!stg)
		return MPCC_ERR_NOMEM;
	int32_t out = kir_acc(k, acc);
	bool is_float = mpcc_dtype_is_float(acc);
	if (alpha != 1.0)
		out = kir_binary(k, KIR_MUL, out,
		                 is_float ? kir_const_f(k, acc, alpha)
		                          : kir_const_i(k, acc, (int64_t)alpha));
	if (c && beta != 0.0) {
		int bc = mpcc_lower_param(k, g, n->in[2]);
		int32_t cv = load_acc(k, bc, mpcc_lower_bcast(k, c, 2, v), acc);
		if (beta != 1.0)
			cv = kir_binary(k, KIR_MUL, cv,
			                is_float ? kir_const_f(k, acc, beta)
			                         : kir_const_i(k, acc, (int64_t)beta));
		out = kir_binary(k, KIR_ADD, out, cv);
	}
	out = kir_cast(k, y->storage ? y->storage : y->dtype, out);
	kir_stage_store(k, stg, by, mpcc_lower_linear(k, 2, dims, v), out);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- windows */

/*
 * The sliding-window geometry shared by Conv, ConvTranspose and the pools:
 * per spatial dim the kernel extent, stride, dilation, begin and end padding,
 * input and output sizes. mpcc_nn_window_geometry reads the attributes, resolves
 * auto_pad and computes output sizes (ceil_mode for pools).
 */
static mpcc_status
ints_attr(const mpcc_node *n, const char *name, int count, int64_t *dst, int64_t dflt,
          mpcc_diag *d)
{
	const mpcc_attr *a = mpcc_node_attr(n, name);
	for (int i = 0; i < count; i++)
		dst[i] = dflt;
	if (!a)
		return MPCC_OK;
	if (a->kind != MPCC_ATTR_INTS || a->n != count)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "attribute '%s' needs %d ints", name,
		                       count);
	for (int i = 0; i < count; i++)
		dst[i] = a->ints[i];
	return MPCC_OK;
}

mpcc_status
mpcc_nn_window_geometry(const mpcc_node *n, const mpcc_value *x, const int64_t *kernel,
                        bool ceil_mode, mpcc_nn_window *w, mpcc_diag *d)
{
	if (x->rank < 3)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "input must have rank >= 3, has %d",
		                       x->rank);
	int sp = w->n_sp = x->rank - 2;
	int64_t pads[2 * MPCC_MAX_RANK];
	mpcc_status st;
	if ((st = ints_attr(n, "strides", sp, w->stride, 1, d)) ||
	    (st = ints_attr(n, "dilations", sp, w->dil, 1, d)) ||
	    (st = ints_attr(n, "pads", 2 * sp, pads, 0, d)))
		return st;
	const char *ap = mpcc_node_attr_string(n, "auto_pad", "NOTSET");
	for (int i = 0; i < sp; i++) {
		w->kernel[i] = kernel[i];
		w->in[i] = x->dims[i + 2];
		w->pad_b[i] = pads[i];
		w->pad_e[i] = pads[i + sp];
		if (w->stride[i] < 1 || w->dil[i] < 1 || w->kernel[i] < 1 || pads[i] < 0 ||
		    pads[i + sp] < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "strides, dilations and kernel must be >= 1, pads >= 0");
		int64_t span = (w->kernel[i] - 1) * w->dil[i] + 1;
		if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
			int64_t out = (w->in[i] + w->stride[i] - 1) / w->stride[i];
			int64_t total = (out - 1) * w->stride[i] + span - w->in[i];
			if (total < 0)
				total = 0;
			bool upper = !strcmp(ap, "SAME_UPPER");
			w->pad_b[i] = upper ? total / 2 : total - total / 2;
			w->pad_e[i] = total - w->pad_b[i];
		} else if (!strcmp(ap, "VALID")) {
			w->pad_b[i] = w->pad_e[i] = 0;
		} else if (strcmp(ap, "NOTSET")) {
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "unknown auto_pad '%s'", ap);
		}
		int64_t room = w->in[i] + w->pad_b[i] + w->pad_e[i] - span;
		if (room < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "window (%lld) larger than padded input (%lld)",
			                       (long long)span,
			                       (long long)(w->in[i] + w->pad_b[i] + w->pad_e[i]));
		int64_t out = ceil_mode ? (room + w->stride[i] - 1) / w->stride[i] + 1
		                        : room / w->stride[i] + 1;
		/* A last window that would start inside the end padding is dropped. */
		if (ceil_mode && (out - 1) * w->stride[i] >= w->in[i] + w->pad_b[i])
			out--;
		w->out[i] = out;
	}
	return MPCC_OK;
}

/* Input position along spatial dim i for output var o and kernel var kv,
 * and the predicate "inside the unpadded input". */
int32_t
mpcc_nn_window_pos(kir_kernel *k, const mpcc_nn_window *w, int i, int32_t o, int32_t kv)
{
	int32_t p = kir_iadd(k, kir_imul(k, o, w->stride[i]), kir_imul(k, kv, w->dil[i]));
	return kir_iadd(k, p, kir_iconst(k, -w->pad_b[i]));
}

int32_t
mpcc_nn_in_range(kir_kernel *k, int32_t p, int64_t lo, int64_t hi)
{
	int32_t ge = kir_binary(k, KIR_GE, p, kir_iconst(k, lo));
	int32_t lt = kir_binary(k, KIR_LT, p, kir_iconst(k, hi));
	return kir_binary(k, KIR_AND, ge, lt);
}

int32_t
mpcc_nn_and_all(kir_kernel *k, int32_t acc, int32_t c)
{
	return acc < 0 ? c : kir_binary(k, KIR_AND, acc, c);
}

/* A position clamped into [0, n) so a masked-off load stays in bounds. */
int32_t
mpcc_nn_clamp_pos(kir_kernel *k, int32_t p, int64_t n)
{
	int32_t lo = kir_binary(k, KIR_MAX, p, kir_iconst(k, 0));
	return kir_binary(k, KIR_MIN, lo, kir_iconst(k, n > 0 ? n - 1 : 0));
}

/* ---------------------------------------------------------------- Conv */

static const char *const conv_attrs[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                         "pads",     "strides",   NULL};

mpcc_status
mpcc_nn_conv_geometry(const mpcc_node *n, const mpcc_value *x, const mpcc_value *wt,
                      mpcc_nn_window *w, mpcc_diag *d)
{
	if (wt->rank != x->rank)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "W has rank %d, X has rank %d",
		                       wt->rank, x->rank);
	int64_t kernel[MPCC_MAX_RANK];
	mpcc_status st = ints_attr(n, "kernel_shape", x->rank - 2, kernel, 0, d);
	if (st)
		return st;
	for (int i = 0; i < x->rank - 2; i++)
		if (!mpcc_node_attr(n, "kernel_shape"))
			kernel[i] = wt->dims[i + 2];
		else if (kernel[i] != wt->dims[i + 2])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "kernel_shape disagrees with W");
	return mpcc_nn_window_geometry(n, x, kernel, false, w, d);
}

static mpcc_status
conv_geometry(mpcc_graph *g, const mpcc_node *n, mpcc_nn_window *w, mpcc_diag *d)
{
	return mpcc_nn_conv_geometry(n, val(g, n, 0), val(g, n, 1), w, d);
}

static mpcc_status
infer_conv(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = val(g, n, 0), *wt = val(g, n, 1), *b = val(g, n, 2);
	if (!mpcc_dtype_is_float(x->dtype) || wt->dtype != x->dtype || (b && b->dtype != x->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "Conv needs float operands of one dtype");
	mpcc_nn_window w;
	mpcc_status st = conv_geometry(g, n, &w, d);
	if (st)
		return st;
	int64_t group = mpcc_node_attr_int(n, "group", 1);
	if (group < 1 || x->dims[1] != wt->dims[1] * group || wt->dims[0] % group)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "channels: X has %lld, W expects %lld x group %lld",
		                       (long long)x->dims[1], (long long)wt->dims[1], (long long)group);
	if (b && (b->rank != 1 || b->dims[0] != wt->dims[0]))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "B must be [%lld]",
		                       (long long)wt->dims[0]);
	int64_t dims[MPCC_MAX_RANK] = {x->dims[0], wt->dims[0]};
	for (int i = 0; i < w.n_sp; i++)
		dims[i + 2] = w.out[i];
	set_shape(outv(g, n, 0), x->dtype, x->rank, dims);
	return MPCC_OK;
}

/*
 * y[n, m, o..] = b[m] + sum over (c, k..) of x[n, g*Cg + c, o*s - p + k*d]
 * * w[m, c, k..], where g = m / (M / group). Out-of-input positions read 0.
 */
static mpcc_status
lower_conv(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = val(g, n, 0), *wt = val(g, n, 1), *b = val(g, n, 2), *y = outv(g, n, 0);
	mpcc_nn_window w;
	mpcc_status st = conv_geometry(g, n, &w, lx->d);
	if (st)
		return st;
	int sp = w.n_sp;
	int64_t group = mpcc_node_attr_int(n, "group", 1);
	int64_t cg = wt->dims[1], mg = wt->dims[0] / group;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	mpcc_dtype acc = acc_dtype(x->dtype);
	int bx = mpcc_lower_param(k, g, n->in[0]), bw = mpcc_lower_param(k, g, n->in[1]);
	int by = mpcc_lower_param(k, g, n->out[0]);
	int32_t v[2 * MPCC_MAX_RANK + 2];
	int n_par = y->rank, n_red = 1 + sp;
	mpcc_lower_vars(k, 0, n_par + n_red, v);
	int32_t nv = v[0], mv = v[1], cv = v[n_par];
	int32_t gi = kir_binary(k, KIR_DIV, mv, kir_iconst(k, mg));
	int32_t xi[MPCC_MAX_RANK], wi[MPCC_MAX_RANK];
	xi[0] = nv;
	xi[1] = kir_iadd(k, kir_imul(k, gi, cg), cv);
	wi[0] = mv;
	wi[1] = cv;
	int32_t ok = -1;
	for (int i = 0; i < sp; i++) {
		int32_t p = mpcc_nn_window_pos(k, &w, i, v[2 + i], v[n_par + 1 + i]);
		if (w.pad_b[i] || w.pad_e[i] || w.dil[i] > 1) {
			ok = mpcc_nn_and_all(k, ok, mpcc_nn_in_range(k, p, 0, w.in[i]));
			p = mpcc_nn_clamp_pos(k, p, w.in[i]);
		}
		xi[2 + i] = p;
		wi[2 + i] = v[n_par + 1 + i];
	}
	int32_t xv = load_acc(k, bx, mpcc_lower_linear(k, x->rank, x->dims, xi), acc);
	int32_t wv = load_acc(k, bw, mpcc_lower_linear(k, wt->rank, wt->dims, wi), acc);
	int32_t prod = kir_binary(k, KIR_MUL, xv, wv);
	if (ok >= 0)
		prod = kir_select(k, ok, prod, kir_const_f(k, acc, 0.0));
	int64_t red[MPCC_MAX_RANK + 1];
	red[0] = cg;
	for (int i = 0; i < sp; i++)
		red[1 + i] = w.kernel[i];
	kir_stage *stg = kir_stage_add(k, n_par, y->dims, n_red, red, KIR_RED_SUM, acc, prod);
	if (!stg)
		return MPCC_ERR_NOMEM;
	int32_t out = kir_acc(k, acc);
	if (b) {
		int bb = mpcc_lower_param(k, g, n->in[2]);
		out = kir_binary(k, KIR_ADD, out, load_acc(k, bb, mv, acc));
	}
	out = kir_cast(k, y->storage ? y->storage : y->dtype, out);
	kir_stage_store(k, stg, by, mpcc_lower_linear(k, y->rank, y->dims, v), out);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- ConvTranspose */

static const char *const convt_attrs[] = {"auto_pad",       "dilations",    "group",
                                          "kernel_shape",   "output_padding", "output_shape",
                                          "pads",           "strides",      NULL};

/*
 * ConvTranspose geometry: out = s*(in-1) + output_padding + (k-1)*d + 1 -
 * pad_b - pad_e, or, with output_shape, the pads that produce it (split as
 * auto_pad says; SAME_UPPER puts the odd one at the end).
 */
static mpcc_status
convt_geometry(mpcc_graph *g, const mpcc_node *n, mpcc_nn_window *w, mpcc_diag *d)
{
	mpcc_value *x = val(g, n, 0), *wt = val(g, n, 1);
	if (x->rank < 3 || wt->rank != x->rank)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "X and W need equal rank >= 3");
	int sp = w->n_sp = x->rank - 2;
	int64_t pads[2 * MPCC_MAX_RANK], opad[MPCC_MAX_RANK], oshape[MPCC_MAX_RANK];
	mpcc_status st;
	if ((st = ints_attr(n, "strides", sp, w->stride, 1, d)) ||
	    (st = ints_attr(n, "dilations", sp, w->dil, 1, d)) ||
	    (st = ints_attr(n, "pads", 2 * sp, pads, 0, d)) ||
	    (st = ints_attr(n, "output_padding", sp, opad, 0, d)))
		return st;
	const mpcc_attr *os = mpcc_node_attr(n, "output_shape");
	if (os) {
		if (os->kind != MPCC_ATTR_INTS || (os->n != sp && os->n != x->rank))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "bad output_shape");
		for (int i = 0; i < sp; i++)
			oshape[i] = os->ints[os->n - sp + i];
	}
	const char *ap = mpcc_node_attr_string(n, "auto_pad", "NOTSET");
	for (int i = 0; i < sp; i++) {
		w->kernel[i] = wt->dims[i + 2];
		w->in[i] = x->dims[i + 2];
		int64_t full = w->stride[i] * (w->in[i] - 1) + opad[i] + (w->kernel[i] - 1) * w->dil[i] + 1;
		if (os || !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
			/* The spec's split, with floor division: a target beyond the
			 * full extent gives negative padding, i.e. zero-filled rows. */
			int64_t target = os ? oshape[i] : w->in[i] * w->stride[i];
			int64_t total = full - target;
			int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
			bool upper = !strcmp(ap, "SAME_UPPER");
			w->pad_b[i] = upper ? half : total - half;
			w->pad_e[i] = total - w->pad_b[i];
		} else if (!strcmp(ap, "VALID")) {
			w->pad_b[i] = w->pad_e[i] = 0;
		} else {
			w->pad_b[i] = pads[i];
			w->pad_e[i] = pads[i + sp];
		}
		w->out[i] = full - w->pad_b[i] - w->pad_e[i];
		if (w->out[i] < 0 || w->stride[i] < 1 || w->dil[i] < 1)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "invalid geometry");
	}
	return MPCC_OK;
}

static mpcc_status
infer_convt(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = val(g, n, 0), *wt = val(g, n, 1);
	if (!mpcc_dtype_is_float(x->dtype) || wt->dtype != x->dtype)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "needs float operands of one dtype");
	mpcc_nn_window w;
	mpcc_status st = convt_geometry(g, n, &w, d);
	if (st)
		return st;
	int64_t group = mpcc_node_attr_int(n, "group", 1);
	if (group < 1 || x->dims[1] != wt->dims[0] || wt->dims[0] % group)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "channels of X and W disagree");
	int64_t dims[MPCC_MAX_RANK] = {x->dims[0], wt->dims[1] * group};
	for (int i = 0; i < w.n_sp; i++)
		dims[i + 2] = w.out[i];
	set_shape(outv(g, n, 0), x->dtype, x->rank, dims);
	return MPCC_OK;
}

/*
 * Gather form: y[n, m, o..] = sum over (c in group, k..) of x[n, c, i..] *
 * w[c, m', k..] where o + pad_b - k*d = i*s for an integer i inside the
 * input. No scatter, so every output element is written exactly once.
 */
static mpcc_status
lower_convt(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = val(g, n, 0), *wt = val(g, n, 1), *b = val(g, n, 2), *y = outv(g, n, 0);
	mpcc_nn_window w;
	mpcc_status st = convt_geometry(g, n, &w, lx->d);
	if (st)
		return st;
	int sp = w.n_sp;
	int64_t group = mpcc_node_attr_int(n, "group", 1);
	int64_t cg = wt->dims[0] / group, mg = wt->dims[1];
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	mpcc_dtype acc = acc_dtype(x->dtype);
	int bx = mpcc_lower_param(k, g, n->in[0]), bw = mpcc_lower_param(k, g, n->in[1]);
	int by = mpcc_lower_param(k, g, n->out[0]);
	int n_par = y->rank, n_red = 1 + sp;
	int32_t v[2 * MPCC_MAX_RANK + 2];
	mpcc_lower_vars(k, 0, n_par + n_red, v);
	int32_t mv = v[1], cl = v[n_par];
	int32_t gi = kir_binary(k, KIR_DIV, mv, kir_iconst(k, mg));
	int32_t c = kir_iadd(k, kir_imul(k, gi, cg), cl);
	int32_t xi[MPCC_MAX_RANK] = {v[0], c}, wi[MPCC_MAX_RANK];
	wi[0] = c;
	wi[1] = kir_binary(k, KIR_REM, mv, kir_iconst(k, mg));
	int32_t ok = -1;
	for (int i = 0; i < sp; i++) {
		int32_t kv = v[n_par + 1 + i];
		int32_t t = kir_iadd(k, kir_iadd(k, v[2 + i], kir_iconst(k, w.pad_b[i])),
		                     kir_imul(k, kv, -w.dil[i]));
		int32_t q = t;
		if (w.stride[i] > 1) {
			int32_t s = kir_iconst(k, w.stride[i]);
			int32_t divisible = kir_binary(k, KIR_EQ, kir_binary(k, KIR_FLOORMOD, t, s),
			                               kir_iconst(k, 0));
			ok = mpcc_nn_and_all(k, ok, divisible);
			q = kir_binary(k, KIR_DIV, t, s);
		}
		ok = mpcc_nn_and_all(k, ok, mpcc_nn_in_range(k, t, 0, w.in[i] * w.stride[i]));
		xi[2 + i] = mpcc_nn_clamp_pos(k, q, w.in[i]);
		wi[2 + i] = kv;
	}
	int32_t prod = kir_binary(k, KIR_MUL,
	                          load_acc(k, bx, mpcc_lower_linear(k, x->rank, x->dims, xi), acc),
	                          load_acc(k, bw, mpcc_lower_linear(k, wt->rank, wt->dims, wi), acc));
	if (ok >= 0)
		prod = kir_select(k, ok, prod, kir_const_f(k, acc, 0.0));
	int64_t red[MPCC_MAX_RANK + 1] = {cg};
	for (int i = 0; i < sp; i++)
		red[1 + i] = w.kernel[i];
	kir_stage *stg = kir_stage_add(k, n_par, y->dims, n_red, red, KIR_RED_SUM, acc, prod);
	if (!stg)
		return MPCC_ERR_NOMEM;
	int32_t out = kir_acc(k, acc);
	if (b) {
		int bb = mpcc_lower_param(k, g, n->in[2]);
		out = kir_binary(k, KIR_ADD, out, load_acc(k, bb, mv, acc));
	}
	out = kir_cast(k, y->storage ? y->storage : y->dtype, out);
	kir_stage_store(k, stg, by, mpcc_lower_linear(k, y->rank, y->dims, v), out);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- pooling */

static const char *const maxpool_attrs[] = {"auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                            "pads",     "storage_order", "strides", NULL};
static const char *const avgpool_attrs[] = {"auto_pad", "ceil_mode", "count_include_pad",
                                            "kernel_shape", "pads", "strides", NULL};
static const char *const lppool_attrs[] = {"auto_pad", "kernel_shape", "p", "pads", "strides",
                                           NULL};
static const char *const no_attrs[] = {NULL};

static mpcc_status
pool_geometry(mpcc_graph *g, const mpcc_node *n, mpcc_nn_window *w, mpcc_diag *d)
{
	mpcc_value *x = val(g, n, 0);
	if (!mpcc_node_attr(n, "kernel_shape"))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "kernel_shape is required");
	int64_t kernel[MPCC_MAX_RANK];
	if (x->rank < 3)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "input must have rank >= 3");
	mpcc_status st = ints_attr(n, "kernel_shape", x->rank - 2, kernel, 1, d);
	if (st)
		return st;
	return mpcc_nn_window_geometry(n, x, kernel, mpcc_node_attr_int(n, "ceil_mode", 0) != 0, w,
	                               d);
}

static mpcc_status
infer_pool(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = val(g, n, 0);
	if (!mpcc_dtype_is_float(x->dtype) &&
	    !(n->op == MPCC_OP_MAXPOOL && (x->dtype == MPCC_DTYPE_I8 || x->dtype == MPCC_DTYPE_U8)))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "input dtype %s",
		                       mpcc_dtype_name(x->dtype));
	mpcc_nn_window w;
	mpcc_status st = pool_geometry(g, n, &w, d);
	if (st)
		return st;
	int64_t dims[MPCC_MAX_RANK] = {x->dims[0], x->dims[1]};
	for (int i = 0; i < w.n_sp; i++)
		dims[i + 2] = w.out[i];
	set_shape(outv(g, n, 0), x->dtype, x->rank, dims);
	if (n->n_out > 1 && n->out[1] != MPCC_NONE)
		set_shape(outv(g, n, 1), MPCC_DTYPE_I64, x->rank, dims);
	return MPCC_OK;
}

/*
 * Builds the window predicate and the clamped input index for a pool: vars
 * 0..rank-1 are the output position, rank.. the window offsets. lo/hi widen
 * the admissible range (AveragePool with count_include_pad counts padding).
 */
static int32_t
pool_index(kir_kernel *k, const mpcc_nn_window *w, const mpcc_value *x, const int32_t *v, int n_par,
           int32_t *ok)
{
	int32_t xi[MPCC_MAX_RANK] = {v[0], v[1]};
	*ok = -1;
	for (int i = 0; i < w->n_sp; i++) {
		int32_t p = mpcc_nn_window_pos(k, w, i, v[2 + i], v[n_par + i]);
		*ok = mpcc_nn_and_all(k, *ok, mpcc_nn_in_range(k, p, 0, w->in[i]));
		xi[2 + i] = mpcc_nn_clamp_pos(k, p, w->in[i]);
	}
	return mpcc_lower_linear(k, x->rank, x->dims, xi);
}

static mpcc_status
lower_maxpool(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = val(g, n, 0), *y = outv(g, n, 0);
	mpcc_nn_window w;
	mpcc_status st = pool_geometry(g, n, &w, lx->d);
	if (st)
		return st;
	bool want_idx = n->n_out > 1 && n->out[1] != MPCC_NONE;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	mpcc_dtype acc = acc_dtype(x->dtype);
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	int n_par = x->rank, n_red = w.n_sp;
	int32_t v[2 * MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, n_par + n_red, v);
	int32_t ok;
	int32_t xi = pool_index(k, &w, x, v, n_par, &ok);
	int32_t lowest = mpcc_dtype_is_float(acc) ? kir_const_f(k, acc, -INFINITY)
	                                          : kir_const_i(k, acc, acc == MPCC_DTYPE_I8 ? -128 : 0);
	int32_t value = kir_select(k, ok, load_acc(k, bx, xi, acc), lowest);
	int32_t ov = mpcc_lower_linear(k, y->rank, y->dims, v);
	kir_stage *stg = kir_stage_add(k, n_par, y->dims, n_red, w.kernel, KIR_RED_MAX, acc, value);
	if (!stg)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, stg, by, ov, kir_cast(k, y->storage ? y->storage : y->dtype,
	                                          kir_acc(k, acc)));
	if (!want_idx)
		return MPCC_OK;
	/* Indices: a second stage takes the window's argmax and turns the window
	 * offset back into a flat input index (row-major, or column-major over the
	 * spatial dims with storage_order = 1). */
	int bi = mpcc_lower_param(k, g, n->out[1]);
	kir_stage *s2 = kir_stage_add(k, n_par, y->dims, n_red, w.kernel, KIR_RED_ARGMAX, MPCC_DTYPE_I64,
	                              value);
	if (!s2)
		return MPCC_ERR_NOMEM;
	int32_t a = kir_acc(k, MPCC_DTYPE_I64);
	int64_t inner = 1;
	int32_t pos[MPCC_MAX_RANK];
	for (int i = w.n_sp - 1; i >= 0; i--) {
		int32_t kv = kir_binary(k, KIR_REM, kir_binary(k, KIR_DIV, a, kir_iconst(k, inner)),
		                        kir_iconst(k, w.kernel[i]));
		pos[i] = mpcc_nn_window_pos(k, &w, i, v[2 + i], kv);
		inner *= w.kernel[i];
	}
	int32_t flat = kir_iadd(k, kir_imul(k, v[0], x->dims[1]), v[1]);
	int64_t plane = 1;
	for (int i = 0; i < w.n_sp; i++)
		plane *= w.in[i];
	flat = kir_imul(k, flat, plane);
	bool col = mpcc_node_attr_int(n, "storage_order", 0) != 0;
	int32_t sp_idx = kir_iconst(k, 0);
	int64_t stride = 1;
	for (int j = 0; j < w.n_sp; j++) {
		int i = col ? j : w.n_sp - 1 - j;
		sp_idx = kir_iadd(k, sp_idx, kir_imul(k, pos[i], stride));
		stride *= w.in[i];
	}
	kir_stage_store(k, s2, bi, ov, kir_iadd(k, flat, sp_idx));
	return MPCC_OK;
}

/* AveragePool: stage 0 counts the admissible window points per output
 * position into a TEMP (the divisor), stage 1 sums and divides. */
static mpcc_status
lower_avgpool(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = val(g, n, 0), *y = outv(g, n, 0);
	mpcc_nn_window w;
	mpcc_status st = pool_geometry(g, n, &w, lx->d);
	if (st)
		return st;
	bool incl = mpcc_node_attr_int(n, "count_include_pad", 0) != 0;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	mpcc_dtype acc = acc_dtype(x->dtype);
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	int n_par = x->rank, n_red = w.n_sp;
	int32_t v[2 * MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, n_par + n_red, v);

	int64_t sp_out[MPCC_MAX_RANK], n_sp_out = 1;
	for (int i = 0; i < w.n_sp; i++)
		n_sp_out *= (sp_out[i] = w.out[i]);
	int bc = kir_buf_add(k, acc, KIR_BUF_TEMP, MPCC_NONE, n_sp_out);
	/* stage 0: vars 0..n_sp-1 are output positions, n_sp.. window offsets */
	int32_t cnt_ok = -1;
	for (int i = 0; i < w.n_sp; i++) {
		int32_t p = mpcc_nn_window_pos(k, &w, i, v[i], v[w.n_sp + i]);
		int64_t lo = incl ? -w.pad_b[i] : 0, hi = incl ? w.in[i] + w.pad_e[i] : w.in[i];
		cnt_ok = mpcc_nn_and_all(k, cnt_ok, mpcc_nn_in_range(k, p, lo, hi));
	}
	int32_t one = kir_select(k, cnt_ok, kir_const_f(k, acc, 1.0), kir_const_f(k, acc, 0.0));
	kir_stage *s0 = kir_stage_add(k, w.n_sp, sp_out, n_red, w.kernel, KIR_RED_SUM, acc, one);
	if (!s0)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s0, bc, mpcc_lower_linear(k, w.n_sp, sp_out, v), kir_acc(k, acc));

	int32_t ok;
	int32_t xi = pool_index(k, &w, x, v, n_par, &ok);
	int32_t value = kir_select(k, ok, load_acc(k, bx, xi, acc), kir_const_f(k, acc, 0.0));
	kir_stage *s1 = kir_stage_add(k, n_par, y->dims, n_red, w.kernel, KIR_RED_SUM, acc, value);
	if (!s1)
		return MPCC_ERR_NOMEM;
	int32_t cnt = kir_load(k, bc, mpcc_lower_linear(k, w.n_sp, sp_out, v + 2));
	int32_t out = kir_binary(k, KIR_DIV, kir_acc(k, acc), cnt);
	kir_stage_store(k, s1, by, mpcc_lower_linear(k, y->rank, y->dims, v),
	                kir_cast(k, y->storage ? y->storage : y->dtype, out));
	return MPCC_OK;
}

static mpcc_status
lower_lppool(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = val(g, n, 0), *y = outv(g, n, 0);
	mpcc_nn_window w;
	mpcc_status st = pool_geometry(g, n, &w, lx->d);
	if (st)
		return st;
	double p = (double)mpcc_node_attr_int(n, "p", 2);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	mpcc_dtype acc = acc_dtype(x->dtype);
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	int n_par = x->rank, n_red = w.n_sp;
	int32_t v[2 * MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, n_par + n_red, v);
	int32_t ok;
	int32_t xi = pool_index(k, &w, x, v, n_par, &ok);
	int32_t a = kir_unary(k, KIR_ABS, load_acc(k, bx, xi, acc));
	int32_t pw = kir_binary(k, KIR_POW, a, kir_const_f(k, acc, p));
	int32_t value = kir_select(k, ok, pw, kir_const_f(k, acc, 0.0));
	kir_stage *s = kir_stage_add(k, n_par, y->dims, n_red, w.kernel, KIR_RED_SUM, acc, value);
	if (!s)
		return MPCC_ERR_NOMEM;
	int32_t out = kir_binary(k, KIR_POW, kir_acc(k, acc), kir_const_f(k, acc, 1.0 / p));
	kir_stage_store(k, s, by, mpcc_lower_linear(k, y->rank, y->dims, v),
	                kir_cast(k, y->storage ? y->storage : y->dtype, out));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- global pools */

static mpcc_status
infer_global_pool(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = val(g, n, 0);
	if (x->rank < 2 || !mpcc_dtype_is_float(x->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "needs a float input of rank >= 2");
	int64_t dims[MPCC_MAX_RANK];
	for (int i = 0; i < x->rank; i++)
		dims[i] = i < 2 ? x->dims[i] : 1;
	set_shape(outv(g, n, 0), x->dtype, x->rank, dims);
	return MPCC_OK;
}

static mpcc_status
lower_global_pool(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = val(g, n, 0), *y = outv(g, n, 0);
	bool is_max = n->op == MPCC_OP_GLOBALMAXPOOL;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	mpcc_dtype acc = acc_dtype(x->dtype);
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	int sp = x->rank - 2;
	int32_t v[2 + MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, 2 + sp, v);
	int64_t count = 1;
	for (int i = 0; i < sp; i++)
		count *= x->dims[2 + i];
	int32_t value = load_acc(k, bx, mpcc_lower_linear(k, x->rank, x->dims, v), acc);
	kir_stage *s = kir_stage_add(k, 2, x->dims, sp, x->dims + 2,
	                             is_max ? KIR_RED_MAX : KIR_RED_SUM, acc, value);
	if (!s)
		return MPCC_ERR_NOMEM;
	int32_t out = kir_acc(k, acc);
	if (!is_max)
		out = kir_binary(k, KIR_DIV, out, kir_const_f(k, acc, (double)count));
	kir_stage_store(k, s, by, mpcc_lower_linear(k, 2, x->dims, v),
	                kir_cast(k, y->storage ? y->storage : y->dtype, out));
	return MPCC_OK;
}


/* ---------------------------------------------------------------- Einsum */

/*
 * Einsum: every label becomes a loop var, the output's labels parallel and
 * the rest reduced, and the body is the product of one load per operand.
 * Labels are letters; "..." stands for the leading broadcast dims, which get
 * labels of their own (52 + position, right-aligned across operands). A label
 * repeated within one operand takes its diagonal.
 */
#define EIN_LABELS (52 + MPCC_MAX_RANK)

typedef struct einsum {
	int n_ops;
	int rank[8];
	int label[8][MPCC_MAX_RANK]; /* per operand dim */
	int n_out;
	int out[MPCC_MAX_RANK];
	int64_t size[EIN_LABELS];
	int n_ell; /* dims the ellipsis stands for */
} einsum;

static int
ein_letter(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= 'A' && c <= 'Z')
		return 26 + c - 'A';
	return -1;
}

/* Parses one term into labels; returns the count or -1. */
static int
ein_term(const char *s, size_t len, int rank, int n_ell, int *labels)
{
	int letters = 0;
	bool ell = false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '.')
			ell = true;
		else if (s[i] != ' ')
			letters++;
	int ell_dims = ell ? rank - letters : 0;
	if (rank >= 0 && (ell_dims < 0 || (!ell && letters != rank)))
		return -1;
	int base = 0; /* first ellipsis label offset: right-aligned later */
	if (rank < 0)
		ell_dims = ell ? n_ell : 0;
	else
		n_ell = ell_dims;
	base = n_ell - ell_dims;
	int n = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == ' ')
			continue;
		if (s[i] == '.') {
			if (i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.')
				return -1;
			for (int e = 0; e < ell_dims; e++)
				labels[n++] = 52 + base + e;
			i += 2;
			continue;
		}
		int l = ein_letter(s[i]);
		if (l < 0 || n >= MPCC_MAX_RANK)
			return -1;
		labels[n++] = l;
	}
	return n;
}

static mpcc_status
einsum_parse(mpcc_graph *g, const mpcc_node *n, einsum *e, mpcc_diag *d)
{
	const char *eq = mpcc_node_attr_string(n, "equation", NULL);
	if (!eq)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "equation is required");
	if (n->n_in > 8)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "more than 8 operands");
	memset(e, 0, sizeof(*e));
	for (int l = 0; l < EIN_LABELS; l++)
		e->size[l] = -1;
	const char *arrow = strstr(eq, "->");
	size_t lhs_len = arrow ? (size_t)(arrow - eq) : strlen(eq);
	/* Ellipsis width: the largest any operand needs. */
	const char *p = eq;
	e->n_ops = n->n_in;
	for (int i = 0; i < n->n_in; i++) {
		const char *end = memchr(p, ',', (size_t)(eq + lhs_len - p));
		size_t len = end ? (size_t)(end - p) : (size_t)(eq + lhs_len - p);
		if (!end && i != n->n_in - 1)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "equation has fewer terms than inputs");
		int letters = 0;
		bool ell = false;
		for (size_t j = 0; j < len; j++)
			if (p[j] == '.')
				ell = true;
			else if (p[j] != ' ')
				letters++;
		if (ell && val(g, n, i)->rank - letters > e->n_ell)
			e->n_ell = val(g, n, i)->rank - letters;
		e->rank[i] = val(g, n, i)->rank;
		int got = ein_term(p, len, e->rank[i], 0, e->label[i]);
		if (got != e->rank[i])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "term %d of '%s' does not match input rank %d", i, eq,
			                       e->rank[i]);
		p = end ? end + 1 : p + len;
	}
	/* Re-label ellipsis dims right-aligned to the common width. */
	for (int i = 0; i < e->n_ops; i++) {
		int cnt = 0;
		for (int j = 0; j < e->rank[i]; j++)
			cnt += e->label[i][j] >= 52;
		for (int j = 0; j < e->rank[i]; j++)
			if (e->label[i][j] >= 52)
				e->label[i][j] += e->n_ell - cnt;
	}
	for (int i = 0; i < e->n_ops; i++) {
		const mpcc_value *v = val(g, n, i);
		for (int j = 0; j < e->rank[i]; j++) {
			int l = e->label[i][j];
			int64_t sz = v->dims[j];
			if (e->size[l] < 0 || e->size[l] == 1)
				e->size[l] = sz;
			else if (sz != e->size[l] && !(l >= 52 && sz == 1))
				return mpcc_node_error(d, n, MPCC_ERR_INVALID,
				                       "label sizes disagree (%lld vs %lld)",
				                       (long long)sz, (long long)e->size[l]);
		}
	}
	if (arrow) {
		const char *o = arrow + 2;
		e->n_out = ein_term(o, strlen(o), -1, e->n_ell, e->out);
		if (e->n_out < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "bad output term in '%s'", eq);
		for (int i = 0; i < e->n_out; i++)
			if (e->size[e->out[i]] < 0)
				return mpcc_node_error(d, n, MPCC_ERR_INVALID,
				                       "output label not in any input");
	} else {
		/* Implicit output: ellipsis dims, then labels used once, sorted. */
		int count[EIN_LABELS] = {0};
		for (int i = 0; i < e->n_ops; i++)
			for (int j = 0; j < e->rank[i]; j++)
				count[e->label[i][j]]++;
		for (int l = 52; l < 52 + e->n_ell; l++)
			e->out[e->n_out++] = l;
		for (int l = 0; l < 52 && e->n_out < MPCC_MAX_RANK; l++)
			if (count[l] == 1)
				e->out[e->n_out++] = l;
	}
	return MPCC_OK;
}

static mpcc_status
infer_einsum(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	einsum e;
	mpcc_status st = einsum_parse(g, n, &e, d);
	if (st)
		return st;
	int64_t dims[MPCC_MAX_RANK];
	for (int i = 0; i < e.n_out; i++)
		dims[i] = e.size[e.out[i]];
	set_shape(outv(g, n, 0), val(g, n, 0)->dtype, e.n_out, dims);
	return MPCC_OK;
}

static mpcc_status
lower_einsum(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *y = outv(g, n, 0);
	einsum e;
	mpcc_status st = einsum_parse(g, n, &e, lx->d);
	if (st)
		return st;
	int var_of[EIN_LABELS];
	for (int l = 0; l < EIN_LABELS; l++)
		var_of[l] = -1;
	for (int i = 0; i < e.n_out; i++)
		var_of[e.out[i]] = i;
	int n_red = 0;
	int64_t red[KIR_MAX_DIMS];
	for (int l = 0; l < EIN_LABELS; l++)
		if (e.size[l] >= 0 && var_of[l] < 0) {
			if (n_red == KIR_MAX_DIMS)
				return mpcc_node_error(lx->d, n, MPCC_ERR_UNSUPPORTED,
				                       "more than %d summed labels", KIR_MAX_DIMS);
			var_of[l] = e.n_out + n_red;
			red[n_red++] = e.size[l];
		}
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	mpcc_dtype acc = acc_dtype(y->dtype);
	int32_t v[2 * KIR_MAX_DIMS];
	mpcc_lower_vars(k, 0, e.n_out + n_red, v);
	int32_t prod = -1;
	for (int i = 0; i < e.n_ops; i++) {
		const mpcc_value *x = val(g, n, i);
		int32_t idx[MPCC_MAX_RANK];
		for (int j = 0; j < e.rank[i]; j++)
			idx[j] = x->dims[j] == 1 ? kir_iconst(k, 0) : v[var_of[e.label[i][j]]];
		int b = mpcc_lower_param(k, g, n->in[i]);
		int32_t ld = load_acc(k, b, mpcc_lower_linear(k, x->rank, x->dims, idx), acc);
		prod = prod < 0 ? ld : kir_binary(k, KIR_MUL, prod, ld);
	}
	int by = mpcc_lower_param(k, g, n->out[0]);
	int32_t out;
	kir_stage *s;
	if (n_red) {
		s = kir_stage_add(k, e.n_out, y->dims, n_red, red, KIR_RED_SUM, acc, prod);
		out = kir_acc(k, acc);
	} else {
		s = kir_stage_add(k, e.n_out, y->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
		out = prod;
	}
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, mpcc_lower_linear(k, y->rank, y->dims, v),
	                kir_cast(k, y->storage ? y->storage : y->dtype, out));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- table */

/* broadcast: Gemm before opset 7 (C broadcasts either way here) */
static const char *const gemm_attrs[] = {"alpha", "beta", "broadcast", "transA", "transB", NULL};
static const char *const einsum_attrs[] = {"equation", NULL};
static const char *const rnn_attrs[] = {"activation_alpha", "activation_beta", "activations",
                                        "clip", "direction", "hidden_size", "layout", NULL};
static const char *const gru_attrs[] = {"activation_alpha", "activation_beta", "activations",
                                        "clip", "direction", "hidden_size", "layout",
                                        "linear_before_reset", NULL};
static const char *const lstm_attrs[] = {"activation_alpha", "activation_beta", "activations",
                                         "clip", "direction", "hidden_size", "input_forget",
                                         "layout", NULL};

const mpcc_op_rule mpcc_rules_nn[] = {
	{MPCC_OP_MATMUL, 2, 2, 1, 1, no_attrs, infer_matmul, lower_matmul},
	{MPCC_OP_GEMM, 2, 3, 1, 1, gemm_attrs, infer_gemm, lower_gemm},
	{MPCC_OP_CONV, 2, 3, 1, 1, conv_attrs, infer_conv, lower_conv},
	{MPCC_OP_CONVTRANSPOSE, 2, 3, 1, 1, convt_attrs, infer_convt, lower_convt},
	{MPCC_OP_MAXPOOL, 1, 1, 1, 2, maxpool_attrs, infer_pool, lower_maxpool},
	{MPCC_OP_AVERAGEPOOL, 1, 1, 1, 1, avgpool_attrs, infer_pool, lower_avgpool},
	{MPCC_OP_LPPOOL, 1, 1, 1, 1, lppool_attrs, infer_pool, lower_lppool},
	{MPCC_OP_GLOBALAVERAGEPOOL, 1, 1, 1, 1, no_attrs, infer_global_pool, lower_global_pool},
	{MPCC_OP_GLOBALMAXPOOL, 1, 1, 1, 1, no_attrs, infer_global_pool, lower_global_pool},
	{MPCC_OP_EINSUM, 1, 8, 1, 1, einsum_attrs, infer_einsum, lower_einsum},
	{MPCC_OP_RNN, 3, 6, 0, 2, rnn_attrs, mpcc_infer_rnn, mpcc_lower_rnn},
	{MPCC_OP_GRU, 3, 6, 0, 2, gru_attrs, mpcc_infer_rnn, mpcc_lower_rnn},
	{MPCC_OP_LSTM, 3, 8, 0, 3, lstm_attrs, mpcc_infer_rnn, mpcc_lower_rnn},
	{.op = MPCC_OP_INVALID},
};
