/*
 * ops/quant.c - linear quantisation: QuantizeLinear, DequantizeLinear,
 * DynamicQuantizeLinear, and the integer and QLinear matrix products and
 * convolutions.
 *
 * Quantising is q = saturate(round_half_even(x / scale) + zero_point), done
 * in f32 (f64 for int32 input, as the reference's numpy promotion does);
 * dequantising is (x - zero_point) * scale. Scales and zero points are loaded
 * like any operand: a one-element parameter is read at index 0, a 1-D one
 * (opset 13's per-axis form) at the loop var of its axis, so nothing needs
 * their values at compile time. The integer products reuse the matrix and
 * window geometry of ops/nn.c (ops/nn_impl.h): one reduction stage whose
 * value is (a - a_zp) * (b - b_zp) in i32, and for the QLinear ops a store
 * that requantises the i32 sum with a_scale * b_scale / y_scale.
 */
#include <string.h>

#include "ops/nn_impl.h"
#include "ops/ops.h"

static mpcc_value *
in(mpcc_graph *g, const mpcc_node *n, int i)
{
	return i >= 0 && i < n->n_in && n->in[i] != MPCC_NONE ? &g->values[n->in[i]] : NULL;
}

static void
set_shape(mpcc_value *v, mpcc_dtype t, int rank, const int64_t *dims)
{
	v->dtype = t;
	v->rank = rank;
	for (int i = 0; i < rank; i++)
		v->dims[i] = dims[i];
}

/* The representable range of a quantised dtype; false for other dtypes. */
static bool
q_range(mpcc_dtype t, double *lo, double *hi)
{
	switch (t) {
	case MPCC_DTYPE_U8:
		*lo = 0, *hi = 255;
		return true;
	case MPCC_DTYPE_I8:
		*lo = -128, *hi = 127;
		return true;
	case MPCC_DTYPE_U16:
		*lo = 0, *hi = 65535;
		return true;
	case MPCC_DTYPE_I16:
		*lo = -32768, *hi = 32767;
		return true;
	default:
		return false;
	}
}

static bool
is_q8(mpcc_dtype t)
{
	return t == MPCC_DTYPE_U8 || t == MPCC_DTYPE_I8;
}

static bool
is_scale_dtype(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F32 || t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16;
}

/*
 * v (float, any dtype) clamped to t's range and converted. The clamp comes
 * before the cast so that the result saturates at t's bounds rather than at
 * the cast's; a NaN survives the clamp and the cast turns it into 0.
 */
static int32_t
saturate_to(kir_kernel *k, int32_t v, mpcc_dtype t)
{
	double lo = 0, hi = 0;
	q_range(t, &lo, &hi);
	mpcc_dtype ft = kir_expr_dtype(k, v);
	v = kir_binary(k, KIR_MAX, v, kir_const_f(k, ft, lo));
	v = kir_binary(k, KIR_MIN, v, kir_const_f(k, ft, hi));
	return kir_cast(k, t, v);
}

/* saturate(rint(x / scale) + zp) with every operand already in one float
 * dtype; zp < 0 means no zero point. */
static int32_t
quantize(kir_kernel *k, int32_t x, int32_t scale, int32_t zp, mpcc_dtype t)
{
	int32_t v = kir_unary(k, KIR_RINT, kir_binary(k, KIR_DIV, x, scale));
	if (zp >= 0)
		v = kir_binary(k, KIR_ADD, v, zp);
	return saturate_to(k, v, t);
}

/*
 * Checks a scale or zero point p of a per-tensor or per-axis quantisation of
 * x: one element, or (from opset 13) a 1-D tensor as long as x's axis.
 */
static mpcc_status
check_qparam(const mpcc_node *n, const mpcc_value *p, const mpcc_value *x, int axis,
             const char *what, mpcc_diag *d)
{
	if (mpcc_value_numel(p) == 1 && p->rank <= 1)
		return MPCC_OK;
	if (n->opset < 13)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "%s must be a scalar before opset 13", what);
	if (p->rank != 1 || axis < 0 || p->dims[0] != x->dims[axis])
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "%s must be a scalar or 1-D of x's axis length", what);
	return MPCC_OK;
}

/* The element of parameter p used at a point whose var along p's axis is
 * var: index 0 of a one-element parameter, var otherwise. */
static int32_t
load_param(kir_kernel *k, const mpcc_graph *g, int32_t vi, int32_t var, mpcc_dtype cdt)
{
	int b = mpcc_lower_param(k, g, vi);
	int32_t idx = mpcc_value_numel(&g->values[vi]) == 1 ? kir_iconst(k, 0) : var;
	return kir_cast(k, cdt, kir_load(k, b, idx));
}

/* ---------------------------------------------------------------- Quantize/Dequantize */

static const char *const qdq_attrs[] = {"axis", NULL};
static const char *const no_attrs[] = {NULL};

/* Validates x, scale and zero point of QuantizeLinear/DequantizeLinear and
 * returns the normalised axis through out_axis. */
static mpcc_status
check_qdq(const mpcc_node *n, const mpcc_value *x, const mpcc_value *s, const mpcc_value *zp,
          int *out_axis, mpcc_diag *d)
{
	int64_t a = mpcc_node_attr_int(n, "axis", 1);
	if (n->opset < 13 && mpcc_node_attr(n, "axis"))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "attribute 'axis' needs opset 13");
	int axis = x->rank > 0 ? mpcc_axis(a, x->rank) : -1;
	mpcc_status st = check_qparam(n, s, x, axis, "scale", d);
	if (!st && zp)
		st = check_qparam(n, zp, x, axis, "zero point", d);
	if (st)
		return st;
	if (zp && mpcc_value_numel(zp) != mpcc_value_numel(s))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "scale and zero point differ in size");
	if (!is_scale_dtype(s->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "scale dtype %s",
		                       mpcc_dtype_name(s->dtype));
	*out_axis = axis;
	return MPCC_OK;
}

static mpcc_status
infer_quantize(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = in(g, n, 0), *s = in(g, n, 1), *zp = in(g, n, 2);
	int axis;
	mpcc_status st = check_qdq(n, x, s, zp, &axis, d);
	if (st)
		return st;
	if (!is_scale_dtype(x->dtype) && x->dtype != MPCC_DTYPE_I32)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "x dtype %s",
		                       mpcc_dtype_name(x->dtype));
	mpcc_dtype t = zp ? zp->dtype : MPCC_DTYPE_U8;
	double lo, hi;
	if (!q_range(t, &lo, &hi))
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "quantising to %s",
		                       mpcc_dtype_name(t));
	set_shape(&g->values[n->out[0]], t, x->rank, x->dims);
	return MPCC_OK;
}

static mpcc_status
infer_dequantize(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = in(g, n, 0), *s = in(g, n, 1), *zp = in(g, n, 2);
	int axis;
	mpcc_status st = check_qdq(n, x, s, zp, &axis, d);
	if (st)
		return st;
	double lo, hi;
	if (!q_range(x->dtype, &lo, &hi) && x->dtype != MPCC_DTYPE_I32)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "dequantising %s",
		                       mpcc_dtype_name(x->dtype));
	if (zp && zp->dtype != x->dtype)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "zero point is %s, x is %s",
		                       mpcc_dtype_name(zp->dtype), mpcc_dtype_name(x->dtype));
	set_shape(&g->values[n->out[0]], s->dtype, x->rank, x->dims);
	return MPCC_OK;
}

/*
 * One stage over x's shape. int32 input is quantised in f64, which is what
 * the reference's int32 / float32 division promotes to; float input in f32.
 */
static mpcc_status
lower_qdq(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = in(g, n, 0), *zp = in(g, n, 2);
	bool quant = n->op == MPCC_OP_QUANTIZELINEAR;
	int axis = x->rank > 0 ? mpcc_axis(mpcc_node_attr_int(n, "axis", 1), x->rank) : -1;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype cdt = quant && x->dtype == MPCC_DTYPE_I32 ? MPCC_DTYPE_F64 : MPCC_DTYPE_F32;
	int32_t v[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, x->rank, v);
	int32_t av = axis >= 0 ? v[axis] : kir_iconst(k, 0);
	int32_t lin = mpcc_lower_linear(k, x->rank, x->dims, v);
	int32_t xv = kir_cast(k, cdt, kir_load(k, bx, lin));
	int32_t sv = load_param(k, g, n->in[1], av, cdt);
	int32_t zv = zp ? load_param(k, g, n->in[2], av, cdt) : -1;
	int32_t out;
	mpcc_dtype yt = k->bufs[by].dtype;
	if (quant) {
		out = quantize(k, xv, sv, zv, yt);
	} else {
		if (zv >= 0)
			xv = kir_binary(k, KIR_SUB, xv, zv);
		out = kir_cast(k, yt, kir_binary(k, KIR_MUL, xv, sv));
	}
	kir_stage *st =
	    kir_stage_add(k, x->rank, x->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, 0);
	if (!st)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, st, by, lin, out);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- DynamicQuantizeLinear */

static mpcc_status
infer_dynquant(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = in(g, n, 0);
	if (x->dtype != MPCC_DTYPE_F32)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "x must be float, is %s",
		                       mpcc_dtype_name(x->dtype));
	if (mpcc_value_numel(x) < 1)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "empty input");
	set_shape(&g->values[n->out[0]], MPCC_DTYPE_U8, x->rank, x->dims);
	if (n->n_out > 1 && n->out[1] != MPCC_NONE)
		set_shape(&g->values[n->out[1]], MPCC_DTYPE_F32, 0, NULL);
	if (n->n_out > 2 && n->out[2] != MPCC_NONE)
		set_shape(&g->values[n->out[2]], MPCC_DTYPE_U8, 0, NULL);
	return MPCC_OK;
}

/*
 * Four stages: the minimum and the maximum of x, each widened to include 0;
 * one point computing scale = (max - min) / 255 and zero point =
 * saturate(rint(-min / scale)) into a temporary (and the optional outputs);
 * then x quantised with them. All of it in f32, as the spec's reference.
 */
static mpcc_status
lower_dynquant(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = in(g, n, 0);
	const mpcc_dtype f = MPCC_DTYPE_F32;
	int64_t numel = mpcc_value_numel(x);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	int tmm = kir_buf_add(k, f, KIR_BUF_TEMP, MPCC_NONE, 2); /* min, max */
	int tq = kir_buf_add(k, f, KIR_BUF_TEMP, MPCC_NONE, 2);  /* scale, zero point */
	int32_t i0 = kir_iconst(k, 0), i1 = kir_iconst(k, 1), zero = kir_const_f(k, f, 0.0);
	static const kir_red reds[2] = {KIR_RED_MIN, KIR_RED_MAX};
	for (int r = 0; r < 2; r++) {
		int32_t xv = kir_load(k, bx, kir_var(k, 0));
		kir_stage *st = kir_stage_add(k, 0, NULL, 1, &numel, reds[r], f, xv);
		if (!st)
			return MPCC_ERR_NOMEM;
		int32_t m = kir_binary(k, r ? KIR_MAX : KIR_MIN, kir_acc(k, f), zero);
		kir_stage_store(k, st, tmm, r ? i1 : i0, m);
	}
	int32_t mn = kir_load(k, tmm, i0), mx = kir_load(k, tmm, i1);
	int32_t scale =
	    kir_binary(k, KIR_DIV, kir_binary(k, KIR_SUB, mx, mn), kir_const_f(k, f, 255.0));
	int32_t zpf =
	    kir_unary(k, KIR_RINT, kir_binary(k, KIR_DIV, kir_unary(k, KIR_NEG, mn), scale));
	zpf = kir_binary(k, KIR_MIN, kir_binary(k, KIR_MAX, zpf, zero), kir_const_f(k, f, 255.0));
	/* A NaN zero point (all of x zero) becomes 0, as the u8 output would. */
	zpf = kir_select(k, kir_unary(k, KIR_ISNAN, zpf), zero, zpf);
	kir_stage *st = kir_stage_add(k, 0, NULL, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, 0);
	if (!st)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, st, tq, i0, scale);
	kir_stage_store(k, st, tq, i1, zpf);
	if (n->n_out > 1 && n->out[1] != MPCC_NONE)
		kir_stage_store(k, st, mpcc_lower_param(k, g, n->out[1]), i0, scale);
	if (n->n_out > 2 && n->out[2] != MPCC_NONE)
		kir_stage_store(k, st, mpcc_lower_param(k, g, n->out[2]), i0,
		                kir_cast(k, MPCC_DTYPE_U8, zpf));
	int32_t j = kir_var(k, 0);
	int32_t q = quantize(k, kir_load(k, bx, j), kir_load(k, tq, i0), kir_load(k, tq, i1),
	                     MPCC_DTYPE_U8);
	st = kir_stage_add(k, 1, &numel, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, 0);
	if (!st)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, st, by, j, q);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- integer products */

/*
 * Where an integer product finds its operands: input indices of A (x), its
 * zero point, B (w) and its zero point; for the QLinear ops also the scales,
 * the output zero point and (QLinearConv) the i32 bias. -1 when the op has
 * no such input.
 */
typedef struct qprod {
	int a, a_zp, b, b_zp;
	int a_s, b_s, y_s, y_zp, bias;
} qprod;

static const qprod qp_integer = {0, 2, 1, 3, -1, -1, -1, -1, -1};
static const qprod qp_qlinear = {0, 2, 3, 5, 1, 4, 6, 7, 8};

static const qprod *
qprod_of(const mpcc_node *n)
{
	return n->op == MPCC_OP_MATMULINTEGER || n->op == MPCC_OP_CONVINTEGER ? &qp_integer
	                                                                      : &qp_qlinear;
}

/*
 * Checks the dtypes common to the four products: A and B 8-bit, each zero
 * point of its operand's dtype and of one element or `per` elements (per-row
 * for A, per-column or per-output-channel for B, passed as a_per and b_per);
 * scales float with the same sizes; y's zero point 8-bit and one element.
 */
static mpcc_status
check_qprod(mpcc_graph *g, const mpcc_node *n, int64_t a_per, int64_t b_per, mpcc_diag *d)
{
	const qprod *q = qprod_of(n);
	mpcc_value *a = in(g, n, q->a), *b = in(g, n, q->b);
	if (!is_q8(a->dtype) || !is_q8(b->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "operands must be 8-bit, are %s and %s",
		                       mpcc_dtype_name(a->dtype), mpcc_dtype_name(b->dtype));
	struct {
		int idx;
		mpcc_dtype dt;
		int64_t per;
		const char *what;
	} p[] = {
	    {q->a_zp, a->dtype, a_per, "A's zero point"},
	    {q->b_zp, b->dtype, b_per, "B's zero point"},
	    {q->a_s, MPCC_DTYPE_F32, a_per, "A's scale"},
	    {q->b_s, MPCC_DTYPE_F32, b_per, "B's scale"},
	    {q->y_s, MPCC_DTYPE_F32, 1, "y's scale"},
	};
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
		mpcc_value *v = in(g, n, p[i].idx);
		if (!v)
			continue;
		int64_t ne = mpcc_value_numel(v);
		if (v->dtype != p[i].dt)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "%s is %s, expected %s",
			                       p[i].what, mpcc_dtype_name(v->dtype),
			                       mpcc_dtype_name(p[i].dt));
		if (ne != 1 && (v->rank != 1 || ne != p[i].per))
			return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
			                       "%s must have 1 or %lld elements", p[i].what,
			                       (long long)p[i].per);
	}
	mpcc_value *yzp = in(g, n, q->y_zp);
	if (yzp && (!is_q8(yzp->dtype) || mpcc_value_numel(yzp) != 1))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "y's zero point must be one 8-bit value");
	if (q->y_zp >= 0 && (!yzp || !in(g, n, q->a_s) || !in(g, n, q->b_s) || !in(g, n, q->y_s) ||
	                     !in(g, n, q->a_zp) || !in(g, n, q->b_zp)))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "scales and zero points are required");
	return MPCC_OK;
}

/* The output dtype: i32 for the Integer ops, y's zero point's for QLinear. */
static mpcc_dtype
qprod_out_dtype(mpcc_graph *g, const mpcc_node *n)
{
	mpcc_value *yzp = in(g, n, qprod_of(n)->y_zp);
	return yzp ? yzp->dtype : MPCC_DTYPE_I32;
}

/* (load(buf, idx) - zero point) in i32; zp_var indexes a per-row/column zp. */
static int32_t
centred(kir_kernel *k, const mpcc_graph *g, const mpcc_node *n, int buf, int32_t idx, int zp_in,
        int32_t zp_var)
{
	const mpcc_dtype i = MPCC_DTYPE_I32;
	int32_t v = kir_cast(k, i, kir_load(k, buf, idx));
	if (zp_in >= 0 && zp_in < n->n_in && n->in[zp_in] != MPCC_NONE)
		v = kir_binary(k, KIR_SUB, v, load_param(k, g, n->in[zp_in], zp_var, i));
	return v;
}

/*
 * The value stored from the i32 sum acc: acc itself for the Integer ops;
 * for QLinear, (acc + bias) * (a_scale * b_scale / y_scale) rounded to even,
 * plus y's zero point, saturated. a_var and b_var index per-row and
 * per-column (per-channel) scales.
 */
static int32_t
requantize(kir_kernel *k, const mpcc_graph *g, const mpcc_node *n, int32_t acc, int32_t a_var,
           int32_t b_var, mpcc_dtype yt)
{
	const qprod *q = qprod_of(n);
	const mpcc_dtype f = MPCC_DTYPE_F32;
	if (q->y_zp < 0)
		return acc;
	if (q->bias >= 0 && q->bias < n->n_in && n->in[q->bias] != MPCC_NONE)
		acc = kir_binary(k, KIR_ADD, acc,
		                 load_param(k, g, n->in[q->bias], b_var, MPCC_DTYPE_I32));
	int32_t mul = kir_binary(k, KIR_MUL, load_param(k, g, n->in[q->a_s], a_var, f),
	                         load_param(k, g, n->in[q->b_s], b_var, f));
	mul = kir_binary(k, KIR_DIV, mul, load_param(k, g, n->in[q->y_s], b_var, f));
	int32_t v = kir_unary(k, KIR_RINT, kir_binary(k, KIR_MUL, kir_cast(k, f, acc), mul));
	v = kir_binary(k, KIR_ADD, v, load_param(k, g, n->in[q->y_zp], b_var, f));
	return saturate_to(k, v, yt);
}

/* ---------------------------------------------------------------- MatMulInteger, QLinearMatMul */

static mpcc_status
infer_qmatmul(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	const qprod *q = qprod_of(n);
	mpcc_nn_mm_shape s;
	mpcc_status st = mpcc_nn_matmul_dims(in(g, n, q->a), in(g, n, q->b), &s, n, d);
	if (st || (st = check_qprod(g, n, s.m, s.n, d)))
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
	set_shape(&g->values[n->out[0]], qprod_out_dtype(g, n), r, dims);
	return MPCC_OK;
}

/* One reduction stage over K, as MatMul's, on zero-point-centred i32
 * operands; per-row parameters of A follow M, per-column ones of B follow N. */
static mpcc_status
lower_qmatmul(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	const qprod *q = qprod_of(n);
	mpcc_value *a = in(g, n, q->a), *b = in(g, n, q->b), *y = &g->values[n->out[0]];
	mpcc_nn_mm_shape s;
	mpcc_status st = mpcc_nn_matmul_dims(a, b, &s, n, lx->d);
	if (st)
		return st;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int ba = mpcc_lower_param(k, g, n->in[q->a]), bb = mpcc_lower_param(k, g, n->in[q->b]);
	int by = mpcc_lower_param(k, g, n->out[0]);
	int32_t vars[MPCC_MAX_RANK + 1], bvars[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, y->rank + 1, vars);
	int32_t kv = vars[y->rank], zero = kir_iconst(k, 0);
	int p = 0;
	for (int i = 0; i < s.n_batch; i++)
		bvars[i] = vars[p++];
	int32_t mv = s.a_vec ? zero : vars[p++];
	int32_t nv = s.b_vec ? zero : vars[p++];
	int32_t ia = mpcc_nn_mm_index(k, a, s.n_batch, bvars, s.a_vec ? -1 : mv, kv, s.a_vec);
	int32_t ib = mpcc_nn_mm_index(k, b, s.n_batch, bvars, kv, s.b_vec ? -1 : nv, s.b_vec);
	int32_t prod = kir_binary(k, KIR_MUL, centred(k, g, n, ba, ia, q->a_zp, mv),
	                          centred(k, g, n, bb, ib, q->b_zp, nv));
	int64_t red = s.k;
	kir_stage *stg =
	    kir_stage_add(k, y->rank, y->dims, 1, &red, KIR_RED_SUM, MPCC_DTYPE_I32, prod);
	if (!stg)
		return MPCC_ERR_NOMEM;
	int32_t out = requantize(k, g, n, kir_acc(k, MPCC_DTYPE_I32), mv, nv, k->bufs[by].dtype);
	kir_stage_store(k, stg, by, mpcc_lower_linear(k, y->rank, y->dims, vars), out);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- ConvInteger, QLinearConv */

static const char *const conv_attrs[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                         "pads",     "strides",   NULL};

static mpcc_status
infer_qconv(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	const qprod *q = qprod_of(n);
	mpcc_value *x = in(g, n, q->a), *wt = in(g, n, q->b), *bias = in(g, n, q->bias);
	mpcc_nn_window w;
	mpcc_status st = mpcc_nn_conv_geometry(n, x, wt, &w, d);
	if (st || (st = check_qprod(g, n, 1, wt->dims[0], d)))
		return st;
	int64_t group = mpcc_node_attr_int(n, "group", 1);
	if (group < 1 || x->dims[1] != wt->dims[1] * group || wt->dims[0] % group)
		return mpcc_node_error(
		    d, n, MPCC_ERR_INVALID, "channels: X has %lld, W expects %lld x group %lld",
		    (long long)x->dims[1], (long long)wt->dims[1], (long long)group);
	if (bias &&
	    (bias->dtype != MPCC_DTYPE_I32 || bias->rank != 1 || bias->dims[0] != wt->dims[0]))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "B must be int32 [%lld]",
		                       (long long)wt->dims[0]);
	int64_t dims[MPCC_MAX_RANK] = {x->dims[0], wt->dims[0]};
	for (int i = 0; i < w.n_sp; i++)
		dims[i + 2] = w.out[i];
	set_shape(&g->values[n->out[0]], qprod_out_dtype(g, n), x->rank, dims);
	return MPCC_OK;
}

/*
 * Conv's stage (ops/nn.c) on centred i32 operands: y[n, m, o..] = sum over
 * (c, k..) of (x[n, g*Cg + c, o*s - p + k*d] - x_zp) * (w[m, c, k..] -
 * w_zp[m]). A padded position contributes 0, as if the padding held x's
 * zero point. Per-channel parameters of W follow the output channel m.
 */
static mpcc_status
lower_qconv(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	const qprod *q = qprod_of(n);
	mpcc_value *x = in(g, n, q->a), *wt = in(g, n, q->b), *y = &g->values[n->out[0]];
	mpcc_nn_window w;
	mpcc_status st = mpcc_nn_conv_geometry(n, x, wt, &w, lx->d);
	if (st)
		return st;
	int sp = w.n_sp;
	int64_t group = mpcc_node_attr_int(n, "group", 1);
	int64_t cg = wt->dims[1], mg = wt->dims[0] / group;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[q->a]), bw = mpcc_lower_param(k, g, n->in[q->b]);
	int by = mpcc_lower_param(k, g, n->out[0]);
	int32_t v[2 * MPCC_MAX_RANK + 2];
	int n_par = y->rank, n_red = 1 + sp;
	mpcc_lower_vars(k, 0, n_par + n_red, v);
	int32_t mv = v[1], cv = v[n_par], zero = kir_iconst(k, 0);
	int32_t gi = kir_binary(k, KIR_DIV, mv, kir_iconst(k, mg));
	int32_t xi[MPCC_MAX_RANK], wi[MPCC_MAX_RANK];
	xi[0] = v[0];
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
	int32_t xv =
	    centred(k, g, n, bx, mpcc_lower_linear(k, x->rank, x->dims, xi), q->a_zp, zero);
	int32_t wv =
	    centred(k, g, n, bw, mpcc_lower_linear(k, wt->rank, wt->dims, wi), q->b_zp, mv);
	int32_t prod = kir_binary(k, KIR_MUL, xv, wv);
	if (ok >= 0)
		prod = kir_select(k, ok, prod, kir_const_i(k, MPCC_DTYPE_I32, 0));
	int64_t red[MPCC_MAX_RANK + 1];
	red[0] = cg;
	for (int i = 0; i < sp; i++)
		red[1 + i] = w.kernel[i];
	kir_stage *stg =
	    kir_stage_add(k, n_par, y->dims, n_red, red, KIR_RED_SUM, MPCC_DTYPE_I32, prod);
	if (!stg)
		return MPCC_ERR_NOMEM;
	int32_t out = requantize(k, g, n, kir_acc(k, MPCC_DTYPE_I32), zero, mv, k->bufs[by].dtype);
	kir_stage_store(k, stg, by, mpcc_lower_linear(k, y->rank, y->dims, v), out);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- table */

const mpcc_op_rule mpcc_rules_quant[] = {
	{MPCC_OP_QUANTIZELINEAR, 2, 3, 1, 1, qdq_attrs, infer_quantize, lower_qdq},
	{MPCC_OP_DEQUANTIZELINEAR, 2, 3, 1, 1, qdq_attrs, infer_dequantize, lower_qdq},
	{MPCC_OP_DYNAMICQUANTIZELINEAR, 1, 1, 1, 3, no_attrs, infer_dynquant, lower_dynquant},
	{MPCC_OP_MATMULINTEGER, 2, 4, 1, 1, no_attrs, infer_qmatmul, lower_qmatmul},
	{MPCC_OP_CONVINTEGER, 2, 4, 1, 1, conv_attrs, infer_qconv, lower_qconv},
	{MPCC_OP_QLINEARMATMUL, 8, 8, 1, 1, no_attrs, infer_qmatmul, lower_qmatmul},
	{MPCC_OP_QLINEARCONV, 8, 9, 1, 1, conv_attrs, infer_qconv, lower_qconv},
	{.op = MPCC_OP_INVALID},
};
