/*
 * autodiff_rules.c - the gradient rules of the elementwise ops, matrix
 * products, data movement, reductions, softmax and the losses
 * (passes/autodiff.c is the driver; passes/autodiff_nn.c has convolution,
 * pooling and normalisation).
 *
 * Each rule gets the forward node in a->n, its outputs' gradients dy and
 * which inputs need one, and writes those inputs' gradients to dx, building
 * ordinary ONNX nodes through the builder of passes/autodiff_impl.h. The
 * table at the end maps every op handled here to its rule.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/lower.h"
#include "passes/autodiff_impl.h"

/* ---------------------------------------------------------------- pointwise rules */

/* Relu, LeakyRelu: dY where x > 0, else 0 (alpha * dY). */
static int32_t
grad_rectifier(mpcc_ad *a, int32_t x, int32_t g)
{
	mpcc_dtype t = mpcc_ad_dtype_of(a, x);
	int32_t pos = mpcc_ad_op2(a, MPCC_OP_GREATER, "pos", x, mpcc_ad_cst_scalar(a, t, 0));
	int32_t neg = a->n.op == MPCC_OP_LEAKYRELU
	                  ? mpcc_ad_mulc(a, g, mpcc_node_attr_float(&a->n, "alpha", 0.01f))
	                  : mpcc_ad_cst_scalar(a, t, 0);
	return mpcc_ad_op3(a, MPCC_OP_WHERE, "dX", pos, g, neg);
}

/* Gelu's derivative: exact (erf) or its tanh approximation. */
static int32_t
grad_gelu(mpcc_ad *a, int32_t x, int32_t g)
{
	const char *ap = mpcc_node_attr_string(&a->n, "approximate", "none");
	int32_t x2 = mpcc_ad_mul(a, x, x), d;
	if (!strcmp(ap, "tanh")) {
		/* t = tanh(c (x + k x^3)):
		 * 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3k x^2) */
		double c = sqrt(2.0 / M_PI), k = 0.044715;
		int32_t t = mpcc_ad_op1(
		    a, MPCC_OP_TANH, "tanh",
		    mpcc_ad_mulc(a, mpcc_ad_mul(a, x, mpcc_ad_addc(a, mpcc_ad_mulc(a, x2, k), 1)),
		                 c));
		int32_t du = mpcc_ad_mulc(a, mpcc_ad_addc(a, mpcc_ad_mulc(a, x2, 3 * k), 1), c);
		int32_t inner = mpcc_ad_mul(
		    a, mpcc_ad_mul(a, x, mpcc_ad_rsubc(a, 1, mpcc_ad_mul(a, t, t))), du);
		d = mpcc_ad_mulc(a, mpcc_ad_add(a, mpcc_ad_addc(a, t, 1), inner), 0.5);
	} else if (!strcmp(ap, "none")) {
		/* Phi(x) + x phi(x) */
		int32_t cdf = mpcc_ad_mulc(
		    a,
		    mpcc_ad_addc(
		        a, mpcc_ad_op1(a, MPCC_OP_ERF, "erf", mpcc_ad_mulc(a, x, M_SQRT1_2)), 1),
		    0.5);
		int32_t pdf =
		    mpcc_ad_mulc(a, mpcc_ad_op1(a, MPCC_OP_EXP, "exp", mpcc_ad_mulc(a, x2, -0.5)),
		                 1 / sqrt(2 * M_PI));
		d = mpcc_ad_add(a, cdf, mpcc_ad_mul(a, x, pdf));
	} else {
		mpcc_ad_unsupported(a, "this approximate mode");
		return MPCC_NONE;
	}
	return mpcc_ad_mul(a, g, d);
}

/* One-input elementwise ops (and Dropout in inference mode). */
static void
grad_pointwise(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	int32_t x = MPCC_AD_IN(0), y = MPCC_AD_OUT(0), g = dy[0];
	mpcc_dtype t = mpcc_ad_dtype_of(a, x);
	if (g == MPCC_NONE) {
		mpcc_ad_unsupported(a, "a gradient through its second output");
		return;
	}
	switch (a->n.op) {
	case MPCC_OP_IDENTITY:
	case MPCC_OP_DROPOUT: /* inference mode only: the shape function refuses training */
		dx[0] = g;
		break;
	case MPCC_OP_NEG:
		dx[0] = mpcc_ad_op1(a, MPCC_OP_NEG, "dX", g);
		break;
	case MPCC_OP_RELU:
	case MPCC_OP_LEAKYRELU:
		dx[0] = grad_rectifier(a, x, g);
		break;
	case MPCC_OP_SIGMOID: /* y (1 - y) */
		dx[0] = mpcc_ad_mul(a, g, mpcc_ad_mul(a, y, mpcc_ad_rsubc(a, 1, y)));
		break;
	case MPCC_OP_TANH: /* 1 - y^2 */
		dx[0] = mpcc_ad_mul(a, g, mpcc_ad_rsubc(a, 1, mpcc_ad_mul(a, y, y)));
		break;
	case MPCC_OP_EXP:
		dx[0] = mpcc_ad_mul(a, g, y);
		break;
	case MPCC_OP_LOG:
		dx[0] = mpcc_ad_op2(a, MPCC_OP_DIV, "dX", g, x);
		break;
	case MPCC_OP_SQRT: /* 1 / (2 y) */
		dx[0] = mpcc_ad_op2(a, MPCC_OP_DIV, "dX", mpcc_ad_mulc(a, g, 0.5), y);
		break;
	case MPCC_OP_RECIPROCAL: /* -y^2 */
		dx[0] = mpcc_ad_op1(a, MPCC_OP_NEG, "dX", mpcc_ad_mul(a, g, mpcc_ad_mul(a, y, y)));
		break;
	case MPCC_OP_ABS:
		dx[0] = mpcc_ad_mul(a, g, mpcc_ad_op1(a, MPCC_OP_SIGN, "sign", x));
		break;
	case MPCC_OP_SIN:
		dx[0] = mpcc_ad_mul(a, g, mpcc_ad_op1(a, MPCC_OP_COS, "cos", x));
		break;
	case MPCC_OP_COS:
		dx[0] = mpcc_ad_op1(a, MPCC_OP_NEG, "dX",
		                    mpcc_ad_mul(a, g, mpcc_ad_op1(a, MPCC_OP_SIN, "sin", x)));
		break;
	case MPCC_OP_ERF: /* 2/sqrt(pi) exp(-x^2) */
		dx[0] =
		    mpcc_ad_mul(a, g,
		                mpcc_ad_mulc(a,
		                             mpcc_ad_op1(a, MPCC_OP_EXP, "exp",
		                                         mpcc_ad_mulc(a, mpcc_ad_mul(a, x, x), -1)),
		                             M_2_SQRTPI));
		break;
	case MPCC_OP_SOFTPLUS:
		dx[0] = mpcc_ad_mul(a, g, mpcc_ad_op1(a, MPCC_OP_SIGMOID, "sigmoid", x));
		break;
	case MPCC_OP_GELU:
		dx[0] = grad_gelu(a, x, g);
		break;
	case MPCC_OP_CAST:
		dx[0] = mpcc_ad_cast(a, g, t);
		break;
	default:
		mpcc_ad_unsupported(a, mpcc_op_name(a->n.op));
		break;
	}
	(void)need;
}

/* ---------------------------------------------------------------- broadcasting rules */

/* Add, Sub, Mul, Div, Pow: both operands' gradients at the broadcast shape,
 * then unbroadcast. Pow's exponent may have another dtype; it gets a
 * gradient only when it is float and depends on a wrt. */
static void
grad_arith(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	int32_t x = MPCC_AD_IN(0), b = MPCC_AD_IN(1), y = MPCC_AD_OUT(0), g = dy[0];
	int32_t da = MPCC_NONE, db = MPCC_NONE;
	switch (a->n.op) {
	case MPCC_OP_ADD:
		da = db = g;
		break;
	case MPCC_OP_SUB:
		da = g;
		db = need[1] ? mpcc_ad_op1(a, MPCC_OP_NEG, "dB", g) : MPCC_NONE;
		break;
	case MPCC_OP_MUL:
		da = need[0] ? mpcc_ad_mul(a, g, b) : MPCC_NONE;
		db = need[1] ? mpcc_ad_mul(a, g, x) : MPCC_NONE;
		break;
	case MPCC_OP_DIV: /* dA = g / b, dB = -g y / b */
		da = need[0] ? mpcc_ad_op2(a, MPCC_OP_DIV, "dA", g, b) : MPCC_NONE;
		db = need[1]
		         ? mpcc_ad_op1(a, MPCC_OP_NEG, "dB",
		                       mpcc_ad_op2(a, MPCC_OP_DIV, "gy_b", mpcc_ad_mul(a, g, y), b))
		         : MPCC_NONE;
		break;
	case MPCC_OP_POW: { /* dA = g b x^(b-1), dB = g y log x */
		if (need[0]) {
			int32_t bf = mpcc_ad_cast(a, b, mpcc_ad_dtype_of(a, x));
			int32_t bm1 = mpcc_ad_addc(a, bf, -1);
			da = mpcc_ad_mul(
			    a, g, mpcc_ad_mul(a, bf, mpcc_ad_op2(a, MPCC_OP_POW, "pow", x, bm1)));
		}
		if (need[1])
			db = mpcc_ad_cast(a,
			                  mpcc_ad_mul(a, mpcc_ad_mul(a, g, y),
			                              mpcc_ad_op1(a, MPCC_OP_LOG, "log", x)),
			                  mpcc_ad_dtype_of(a, b));
		break;
	}
	default:
		mpcc_ad_unsupported(a, mpcc_op_name(a->n.op));
		return;
	}
	if (need[0])
		dx[0] = mpcc_ad_unbroadcast(a, da, mpcc_ad_shape_of(a, x));
	if (need[1])
		dx[1] = mpcc_ad_unbroadcast(a, db, mpcc_ad_shape_of(a, b));
}

/* Sum and Mean of any number of inputs; Expand (a one-way broadcast). */
static void
grad_sum(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	int32_t g = dy[0];
	if (a->n.op == MPCC_OP_MEAN)
		g = mpcc_ad_mulc(a, g, 1.0 / a->n.n_in);
	for (int i = 0; i < a->n.n_in; i++)
		if (need[i])
			dx[i] = mpcc_ad_unbroadcast(a, g, mpcc_ad_shape_of(a, MPCC_AD_IN(i)));
}

/* Where(c, x, y): dY to x where c holds, to y elsewhere. */
static void
grad_where(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	int32_t c = MPCC_AD_IN(0), g = dy[0], z = mpcc_ad_cst_scalar(a, mpcc_ad_dtype_of(a, g), 0);
	if (need[1])
		dx[1] = mpcc_ad_unbroadcast(a, mpcc_ad_op3(a, MPCC_OP_WHERE, "dX", c, g, z),
		                            mpcc_ad_shape_of(a, MPCC_AD_IN(1)));
	if (need[2])
		dx[2] = mpcc_ad_unbroadcast(a, mpcc_ad_op3(a, MPCC_OP_WHERE, "dY", c, z, g),
		                            mpcc_ad_shape_of(a, MPCC_AD_IN(2)));
}

/* ---------------------------------------------------------------- matrix products */

/*
 * MatMul with numpy's rules. 1-D operands are promoted ([K] -> [1,K] for A,
 * [K,1] for B) and dY reshaped to the promoted product's shape, so one rule
 * covers them: dA' = dY'.B'^T and dB' = A'^T.dY' at the broadcast batch
 * shape, then unbroadcast to A' (B') and reshaped back to A (B).
 */
static void
grad_matmul(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	mpcc_ad_shape as = mpcc_ad_shape_of(a, MPCC_AD_IN(0)),
	              bs = mpcc_ad_shape_of(a, MPCC_AD_IN(1)),
	              ys = mpcc_ad_shape_of(a, MPCC_AD_OUT(0));
	mpcc_ad_shape a2 = as, b2 = bs, y2 = ys;
	if (as.rank == 1)
		a2 = (mpcc_ad_shape){2, {1, as.dims[0]}};
	if (bs.rank == 1)
		b2 = (mpcc_ad_shape){2, {bs.dims[0], 1}};
	if (as.rank == 1) { /* M dropped from Y: put it back before N (or at the end) */
		y2.rank++;
		int at = y2.rank - (bs.rank == 1 ? 1 : 2);
		memmove(y2.dims + at + 1, y2.dims + at,
		        sizeof(int64_t) * (size_t)(y2.rank - 1 - at));
		y2.dims[at] = 1;
	}
	if (bs.rank == 1)
		y2.dims[y2.rank++] = 1;
	if (y2.rank > MPCC_MAX_RANK) {
		mpcc_ad_unsupported(a, "a product of this rank");
		return;
	}
	int32_t g = mpcc_ad_reshape(a, dy[0], y2);
	if (need[0]) {
		int32_t bt = mpcc_ad_transpose_last2(a, mpcc_ad_reshape(a, MPCC_AD_IN(1), b2));
		int32_t d = mpcc_ad_op2(a, MPCC_OP_MATMUL, "dA", g, bt);
		dx[0] = mpcc_ad_reshape(a, mpcc_ad_unbroadcast(a, d, a2), as);
	}
	if (need[1]) {
		int32_t at = mpcc_ad_transpose_last2(a, mpcc_ad_reshape(a, MPCC_AD_IN(0), a2));
		int32_t d = mpcc_ad_op2(a, MPCC_OP_MATMUL, "dB", at, g);
		dx[1] = mpcc_ad_reshape(a, mpcc_ad_unbroadcast(a, d, b2), bs);
	}
}

static int32_t
gemm(mpcc_ad *a, const char *what, int32_t x, int32_t y, bool ta, bool tb, float alpha)
{
	int32_t in[2] = {x, y};
	int32_t ni = mpcc_ad_node_new(a, MPCC_OP_GEMM, what, 2, in, 1);
	mpcc_ad_attr_int(a, ni, "transA", ta);
	mpcc_ad_attr_int(a, ni, "transB", tb);
	if (alpha != 1.0f)
		mpcc_ad_attr_float(a, ni, "alpha", alpha);
	return mpcc_ad_node_done(a, ni);
}

/*
 * Y = alpha op(A) op(B) + beta C: each operand's gradient is itself a Gemm
 * (which of dY, A, B is transposed follows transA/transB); C's is beta dY
 * unbroadcast to C's shape (zeros when beta is 0).
 */
static void
grad_gemm(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	bool ta = mpcc_node_attr_int(&a->n, "transA", 0),
	     tb = mpcc_node_attr_int(&a->n, "transB", 0);
	float alpha = mpcc_node_attr_float(&a->n, "alpha", 1.0f);
	float beta = mpcc_node_attr_float(&a->n, "beta", 1.0f);
	int32_t g = dy[0];
	if (need[0])
		dx[0] = ta ? gemm(a, "dA", MPCC_AD_IN(1), g, tb, true, alpha)
		           : gemm(a, "dA", g, MPCC_AD_IN(1), false, !tb, alpha);
	if (need[1])
		dx[1] = tb ? gemm(a, "dB", g, MPCC_AD_IN(0), true, ta, alpha)
		           : gemm(a, "dB", MPCC_AD_IN(0), g, !ta, false, alpha);
	if (MPCC_AD_HAS_IN(2) && need[2]) {
		mpcc_ad_shape cs = mpcc_ad_shape_of(a, MPCC_AD_IN(2));
		if (beta == 0.0f)
			dx[2] = mpcc_ad_zeros(a, mpcc_ad_dtype_of(a, MPCC_AD_IN(2)), cs);
		else
			dx[2] =
			    mpcc_ad_unbroadcast(a, beta == 1.0f ? g : mpcc_ad_mulc(a, g, beta), cs);
	}
}

/* ---------------------------------------------------------------- movement */

/* Reshape, Flatten, Squeeze, Unsqueeze: the same elements, X's shape. */
static void
grad_reshape(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	if (need[0])
		dx[0] = mpcc_ad_reshape(a, dy[0], mpcc_ad_shape_of(a, MPCC_AD_IN(0)));
}

static void
grad_transpose(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	const mpcc_attr *p = mpcc_node_attr(&a->n, "perm");
	int r = mpcc_ad_shape_of(a, MPCC_AD_IN(0)).rank;
	int64_t inv[MPCC_MAX_RANK];
	for (int i = 0; i < r; i++) {
		int pi = p ? mpcc_axis(p->ints[i], r) : r - 1 - i;
		inv[pi] = i;
	}
	if (need[0])
		dx[0] = mpcc_ad_transpose(a, dy[0], r, inv);
}

/* Concat: each input's gradient is its slab of dY along the axis. */
static void
grad_concat(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	mpcc_ad_shape ys = mpcc_ad_shape_of(a, MPCC_AD_OUT(0));
	int64_t axis = mpcc_axis(mpcc_node_attr_int(&a->n, "axis", 0), ys.rank), off = 0;
	for (int i = 0; i < a->n.n_in; i++) {
		int64_t len = mpcc_ad_shape_of(a, MPCC_AD_IN(i)).dims[axis], end = off + len;
		if (need[i])
			dx[i] = mpcc_ad_slice(a, dy[0], 1, &off, &end, &axis);
		off = end;
	}
}

/* Split: dX is the outputs' gradients concatenated, zeros for the parts
 * that have none. */
static void
grad_split(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	int32_t parts[64];
	int r = mpcc_ad_shape_of(a, MPCC_AD_IN(0)).rank;
	int axis = mpcc_axis(mpcc_node_attr_int(&a->n, "axis", 0), r), n = 0;
	for (int j = 0; j < a->n.n_out; j++) {
		if (MPCC_AD_OUT(j) == MPCC_NONE)
			continue;
		parts[n++] = dy[j] != MPCC_NONE
		                 ? dy[j]
		                 : mpcc_ad_zeros(a, mpcc_ad_dtype_of(a, MPCC_AD_IN(0)),
		                                 mpcc_ad_shape_of(a, MPCC_AD_OUT(j)));
	}
	if (!need[0])
		return;
	int32_t ni = mpcc_ad_node_new(a, MPCC_OP_CONCAT, "dX", n, parts, 1);
	mpcc_ad_attr_int(a, ni, "axis", axis);
	dx[0] = mpcc_ad_node_done(a, ni);
}

/*
 * Slice: dY goes back to the sliced positions, zeros elsewhere. With unit
 * steps that is a Pad; otherwise a ScatterND into zeros at the flat indices
 * of the sliced positions, computed here from the same start/step rule as
 * ops/movement.c's Slice (negative indices counted from the end, clamped).
 */
static void
grad_slice(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	mpcc_ad_shape xs = mpcc_ad_shape_of(a, MPCC_AD_IN(0)),
	              ys = mpcc_ad_shape_of(a, MPCC_AD_OUT(0));
	int64_t starts[MPCC_MAX_RANK], axes[MPCC_MAX_RANK], steps[MPCC_MAX_RANK];
	int64_t start[MPCC_MAX_RANK] = {0}, step[MPCC_MAX_RANK];
	bool legacy = a->n.opset < 10;
	int ns = mpcc_ad_node_ints(a, legacy ? 99 : 1, "starts", starts, MPCC_MAX_RANK);
	int na = mpcc_ad_node_ints(a, legacy ? 99 : 3, "axes", axes, MPCC_MAX_RANK);
	int nst = legacy ? -1 : mpcc_ad_node_ints(a, 4, "steps", steps, MPCC_MAX_RANK);
	if (ns < 0)
		mpcc_ad_fail(a, MPCC_ERR_INVALID, "Slice without starts");
	if (a->st || !need[0])
		return;
	for (int i = 0; i < xs.rank; i++)
		step[i] = 1;
	bool unit = true;
	for (int i = 0; i < ns; i++) {
		int ax = mpcc_axis(na >= 0 ? axes[i] : i, xs.rank);
		int64_t dim = xs.dims[ax], s = starts[i], st = nst >= 0 ? steps[i] : 1;
		if (s < 0)
			s += dim;
		s = st > 0 ? (s < 0     ? 0
		              : s > dim ? dim
		                        : s)
		           : (s < 0         ? 0
		              : s > dim - 1 ? dim - 1
		                            : s);
		start[ax] = s;
		step[ax] = st;
		unit = unit && st == 1;
	}
	if (unit) {
		int64_t pads[2 * MPCC_MAX_RANK];
		for (int i = 0; i < xs.rank; i++) {
			pads[i] = start[i];
			pads[xs.rank + i] = xs.dims[i] - start[i] - ys.dims[i];
		}
		dx[0] = mpcc_ad_op2(a, MPCC_OP_PAD, "dX", dy[0],
		                    mpcc_ad_cst_ints(a, 2 * xs.rank, pads));
		return;
	}
	int64_t ny = mpcc_ad_numel(ys), nx = mpcc_ad_numel(xs);
	int64_t *idx = malloc(sizeof(int64_t) * (size_t)(ny ? ny : 1));
	if (!idx) {
		mpcc_ad_nomem(a);
		return;
	}
	for (int64_t e = 0; e < ny; e++) {
		int64_t rem = e, flat = 0, stride = 1;
		for (int i = xs.rank - 1; i >= 0; i--) {
			int64_t o = rem % ys.dims[i];
			rem /= ys.dims[i];
			flat += (start[i] + o * step[i]) * stride;
			stride *= xs.dims[i];
		}
		idx[e] = flat;
	}
	mpcc_ad_shape is = {2, {ny, 1}}, fs = {1, {nx}}, us = {1, {ny}};
	int32_t ind = mpcc_ad_cst_int(a, "indices", MPCC_DTYPE_I64, is, idx);
	free(idx);
	int32_t s = mpcc_ad_op3(a, MPCC_OP_SCATTERND, "scatter",
	                        mpcc_ad_zeros(a, mpcc_ad_dtype_of(a, MPCC_AD_IN(0)), fs), ind,
	                        mpcc_ad_reshape(a, dy[0], us));
	dx[0] = mpcc_ad_reshape(a, s, xs);
}

/*
 * Gather: dY scatter-added (ScatterND, reduction add, so repeated indices
 * accumulate, in order) into zeros. Along axis 0 the indices address
 * data's first dim directly; along another axis data and dY are transposed
 * so the gathered axis (and the indices' dims) lead, and the result back.
 */
static void
grad_gather(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	mpcc_ad_shape xs = mpcc_ad_shape_of(a, MPCC_AD_IN(0)),
	              is = mpcc_ad_shape_of(a, MPCC_AD_IN(1));
	int r = xs.rank, q = is.rank;
	int ax = mpcc_axis(mpcc_node_attr_int(&a->n, "axis", 0), r);
	int64_t m1 = -1, px[MPCC_MAX_RANK], py[MPCC_MAX_RANK], inv[MPCC_MAX_RANK];
	if (!need[0])
		return;
	if (r + q - 1 > MPCC_MAX_RANK || q + 1 > MPCC_MAX_RANK) {
		mpcc_ad_unsupported(a, "indices of this rank");
		return;
	}
	int32_t g = dy[0];
	mpcc_ad_shape zs = xs;
	if (ax > 0) { /* px: data with axis first; py: dY with the index dims first */
		int k = 0;
		px[k++] = ax;
		for (int i = 0; i < r; i++)
			if (i != ax)
				px[k++] = i;
		k = 0;
		for (int i = 0; i < q; i++)
			py[k++] = ax + i;
		for (int i = 0; i < r + q - 1; i++)
			if (i < ax || i >= ax + q)
				py[k++] = i;
		for (int i = 0; i < r; i++) {
			zs.dims[i] = xs.dims[px[i]];
			inv[px[i]] = i;
		}
		g = mpcc_ad_transpose(a, g, r + q - 1, py);
	}
	int32_t ind = mpcc_ad_op2(a, MPCC_OP_UNSQUEEZE, "indices", MPCC_AD_IN(1),
	                          mpcc_ad_cst_ints(a, 1, &m1));
	int32_t in[3] = {mpcc_ad_zeros(a, mpcc_ad_dtype_of(a, MPCC_AD_IN(0)), zs), ind, g};
	int32_t ni = mpcc_ad_node_new(a, MPCC_OP_SCATTERND, "scatter", 3, in, 1);
	mpcc_ad_attr_str(a, ni, "reduction", "add");
	int32_t s = mpcc_ad_node_done(a, ni);
	dx[0] = ax > 0 ? mpcc_ad_transpose(a, s, r, inv) : s;
}

/* ---------------------------------------------------------------- reductions */

/* Softmax and LogSoftmax over their normalised axes (the trailing ones
 * from `axis` before opset 13, the one axis from 13). */
static int
softmax_axes(mpcc_ad *a, int r, int64_t *axes)
{
	bool legacy = a->n.opset < 13;
	int ax = mpcc_axis(mpcc_node_attr_int(&a->n, "axis", legacy ? 1 : -1), r);
	if (legacy)
		return mpcc_ad_axes_from(ax, r, axes);
	axes[0] = ax;
	return 1;
}

/* Softmax: y (g - sum(g y)); LogSoftmax: g - exp(y) sum(g). */
static void
grad_softmax(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	int64_t axes[MPCC_MAX_RANK];
	int32_t y = MPCC_AD_OUT(0), g = dy[0];
	int n = softmax_axes(a, mpcc_ad_shape_of(a, y).rank, axes);
	if (!need[0])
		return;
	if (a->n.op == MPCC_OP_SOFTMAX) {
		int32_t s =
		    mpcc_ad_reduce(a, MPCC_OP_REDUCESUM, mpcc_ad_mul(a, g, y), n, axes, true);
		dx[0] = mpcc_ad_mul(a, y, mpcc_ad_op2(a, MPCC_OP_SUB, "g_s", g, s));
	} else {
		int32_t s = mpcc_ad_reduce(a, MPCC_OP_REDUCESUM, g, n, axes, true);
		dx[0] = mpcc_ad_op2(a, MPCC_OP_SUB, "dX", g,
		                    mpcc_ad_mul(a, mpcc_ad_op1(a, MPCC_OP_EXP, "p", y), s));
	}
}

/* ReduceSum, ReduceMean: dY (over the count) broadcast back over the
 * reduced axes. Axes come from the input or the attribute, as in the op. */
static void
grad_reduce(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	mpcc_ad_shape xs = mpcc_ad_shape_of(a, MPCC_AD_IN(0)), ks = xs;
	int64_t axes[2 * MPCC_MAX_RANK];
	int n = mpcc_ad_node_ints(a, 1, "axes", axes, 2 * MPCC_MAX_RANK);
	if (a->st || !need[0])
		return;
	if (n <= 0 && mpcc_node_attr_int(&a->n, "noop_with_empty_axes", 0)) {
		dx[0] = dy[0];
		return;
	}
	int64_t count = 1;
	for (int i = 0; i < xs.rank; i++) {
		bool red = n <= 0;
		for (int j = 0; j < n; j++)
			red = red || mpcc_axis(axes[j], xs.rank) == i;
		if (red) {
			count *= xs.dims[i];
			ks.dims[i] = 1;
		}
	}
	int32_t g = mpcc_ad_reshape(a, dy[0], ks);
	if (a->n.op == MPCC_OP_REDUCEMEAN)
		g = mpcc_ad_mulc(a, g, count ? 1.0 / (double)count : 0.0);
	dx[0] = mpcc_ad_expand(a, g, xs);
}

/*
 * SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss with respect to the
 * scores (N, C, d..). Per element i with target t_i and applied weight w_i
 * (the class weight, 0 for ignore_index, else 1) the loss is
 * -w_i lp_i[t_i], lp = log_softmax(x) for SCE and x itself for NLL, so
 * d/dx_i = w_i (softmax(x_i) - onehot(t_i)) (SCE) or -w_i onehot(t_i)
 * (NLL), times the loss's gradient: per element (none), the scalar (sum),
 * or the scalar over the sum of applied weights (mean). SCE's optional
 * log_prob output adds LogSoftmax's rule over the class axis.
 */
static void
grad_loss(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	int32_t x = MPCC_AD_IN(0), t = MPCC_AD_IN(1);
	mpcc_ad_shape xs = mpcc_ad_shape_of(a, x), ts = mpcc_ad_shape_of(a, t);
	mpcc_dtype ft = mpcc_ad_dtype_of(a, x), it = mpcc_ad_dtype_of(a, t);
	const char *red = mpcc_node_attr_string(&a->n, "reduction", "mean");
	const mpcc_attr *ii = mpcc_node_attr(&a->n, "ignore_index");
	bool sce = a->n.op == MPCC_OP_SOFTMAXCROSSENTROPYLOSS;
	int64_t one = 1;
	if (!need[0])
		return;
	/* onehot(t) as (t[:, None] == [0, C)) in the scores' dtype */
	mpcc_ad_shape cs = {xs.rank, {1, xs.dims[1]}};
	int64_t *cls = malloc(sizeof(int64_t) * (size_t)(xs.dims[1] ? xs.dims[1] : 1));
	if (!cls) {
		mpcc_ad_nomem(a);
		return;
	}
	for (int i = 2; i < xs.rank; i++)
		cs.dims[i] = 1;
	for (int64_t c = 0; c < xs.dims[1]; c++)
		cls[c] = c;
	int32_t classes = mpcc_ad_cst_int(a, "classes", it, cs, cls);
	free(cls);
	int32_t tu = mpcc_ad_op2(a, MPCC_OP_UNSQUEEZE, "t1", t, mpcc_ad_cst_ints(a, 1, &one));
	int32_t onehot = mpcc_ad_cast(a, mpcc_ad_op2(a, MPCC_OP_EQUAL, "is_t", tu, classes), ft);

	int32_t w = MPCC_NONE, gl = MPCC_NONE;
	if (MPCC_AD_HAS_IN(2))
		w = mpcc_ad_op2(a, MPCC_OP_GATHER, "w_t", MPCC_AD_IN(2), t);
	if (ii) {
		mpcc_ad_shape s0 = {0};
		int32_t iv = mpcc_ad_cst_int(a, "ignore", it, s0, &ii->i);
		int32_t keep =
		    mpcc_ad_cast(a,
		                 mpcc_ad_op1(a, MPCC_OP_NOT, "keep",
		                             mpcc_ad_op2(a, MPCC_OP_EQUAL, "ignored", t, iv)),
		                 ft);
		w = w == MPCC_NONE ? keep : mpcc_ad_mul(a, w, keep);
	}
	if (dy[0] != MPCC_NONE) {
		gl = w == MPCC_NONE ? dy[0] : mpcc_ad_mul(a, dy[0], w);
		if (!strcmp(red, "mean")) {
			int64_t all[MPCC_MAX_RANK];
			int32_t den =
			    w == MPCC_NONE
			        ? mpcc_ad_cst_scalar(a, ft, (double)mpcc_ad_numel(ts))
			        : mpcc_ad_reduce(a, MPCC_OP_REDUCESUM, w,
			                         mpcc_ad_axes_from(0, ts.rank, all), all, false);
			gl = mpcc_ad_op2(a, MPCC_OP_DIV, "g_mean", gl, den);
		} else if (strcmp(red, "none") && strcmp(red, "sum")) {
			mpcc_ad_unsupported(a, "this reduction");
			return;
		}
		if (!a->st && mpcc_ad_shape_of(a, gl).rank > 0)
			gl = mpcc_ad_op2(a, MPCC_OP_UNSQUEEZE, "g1", gl,
			                 mpcc_ad_cst_ints(a, 1, &one));
	}
	int32_t p = MPCC_NONE;
	if (sce) {
		int32_t ni = mpcc_ad_node_new(a, MPCC_OP_SOFTMAX, "p", 1, &x, 1);
		mpcc_ad_attr_int(a, ni, "axis", 1);
		p = mpcc_ad_node_done(a, ni);
	}
	int32_t d = MPCC_NONE;
	if (gl != MPCC_NONE)
		d = mpcc_ad_mul(a,
		                sce ? mpcc_ad_op2(a, MPCC_OP_SUB, "p_onehot", p, onehot)
		                    : mpcc_ad_op1(a, MPCC_OP_NEG, "neg_onehot", onehot),
		                gl);
	if (sce && a->n.n_out > 1 && dy[1] != MPCC_NONE) {
		int32_t s = mpcc_ad_reduce(a, MPCC_OP_REDUCESUM, dy[1], 1, &one, true);
		int32_t dl = mpcc_ad_op2(a, MPCC_OP_SUB, "d_logprob", dy[1], mpcc_ad_mul(a, p, s));
		d = d == MPCC_NONE ? dl : mpcc_ad_op2(a, MPCC_OP_ADD, "dX", d, dl);
	}
	dx[0] = d;
}

/* ---------------------------------------------------------------- the rule table */

/* Ended by MPCC_OP_INVALID; the driver searches it first. */
const mpcc_ad_rule mpcc_ad_rules[] = {
    {MPCC_OP_IDENTITY, grad_pointwise},
    {MPCC_OP_DROPOUT, grad_pointwise},
    {MPCC_OP_CAST, grad_pointwise},
    {MPCC_OP_NEG, grad_pointwise},
    {MPCC_OP_RELU, grad_pointwise},
    {MPCC_OP_LEAKYRELU, grad_pointwise},
    {MPCC_OP_SIGMOID, grad_pointwise},
    {MPCC_OP_TANH, grad_pointwise},
    {MPCC_OP_EXP, grad_pointwise},
    {MPCC_OP_LOG, grad_pointwise},
    {MPCC_OP_SQRT, grad_pointwise},
    {MPCC_OP_RECIPROCAL, grad_pointwise},
    {MPCC_OP_ABS, grad_pointwise},
    {MPCC_OP_SIN, grad_pointwise},
    {MPCC_OP_COS, grad_pointwise},
    {MPCC_OP_ERF, grad_pointwise},
    {MPCC_OP_SOFTPLUS, grad_pointwise},
    {MPCC_OP_GELU, grad_pointwise},
    {MPCC_OP_ADD, grad_arith},
    {MPCC_OP_SUB, grad_arith},
    {MPCC_OP_MUL, grad_arith},
    {MPCC_OP_DIV, grad_arith},
    {MPCC_OP_POW, grad_arith},
    {MPCC_OP_SUM, grad_sum},
    {MPCC_OP_MEAN, grad_sum},
    {MPCC_OP_EXPAND, grad_sum},
    {MPCC_OP_WHERE, grad_where},
    {MPCC_OP_MATMUL, grad_matmul},
    {MPCC_OP_GEMM, grad_gemm},
    {MPCC_OP_RESHAPE, grad_reshape},
    {MPCC_OP_FLATTEN, grad_reshape},
    {MPCC_OP_SQUEEZE, grad_reshape},
    {MPCC_OP_UNSQUEEZE, grad_reshape},
    {MPCC_OP_TRANSPOSE, grad_transpose},
    {MPCC_OP_CONCAT, grad_concat},
    {MPCC_OP_SPLIT, grad_split},
    {MPCC_OP_SLICE, grad_slice},
    {MPCC_OP_GATHER, grad_gather},
    {MPCC_OP_SOFTMAX, grad_softmax},
    {MPCC_OP_LOGSOFTMAX, grad_softmax},
    {MPCC_OP_REDUCESUM, grad_reduce},
    {MPCC_OP_REDUCEMEAN, grad_reduce},
    {MPCC_OP_SOFTMAXCROSSENTROPYLOSS, grad_loss},
    {MPCC_OP_NEGATIVELOGLIKELIHOODLOSS, grad_loss},
    {MPCC_OP_INVALID, NULL},
};
