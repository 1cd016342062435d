/*
 * ops/movement_resize.c - Resize (opsets 10, 11, 13) and Upsample (7, 9).
 *
 * One stage over the output. Each resized axis maps its output index to an
 * input coordinate (an f64 expression of the loop var, built in the same
 * order of operations as the ONNX reference so ties round the same way).
 * Nearest rounds that coordinate to an index. Linear and cubic are a SUM
 * reduction over the 2^k or 4^k neighbourhood (k resized axes): each
 * reduction var picks one neighbour per axis, whose weight is computed from
 * the coordinate's fraction, and the product of the axis weights scales the
 * loaded value. Neighbours past the edge clamp (edge padding), or with
 * exclude_outside get weight 0 and the axis weights are renormalised.
 * tf_crop_and_resize gives extrapolation_value where a coordinate falls
 * outside the input. Everything is computed in f64 and cast once at the
 * store, as the reference does.
 */
#include <math.h>
#include <string.h>

#include "ops/movement_impl.h"

typedef enum rs_mode { RS_NEAREST, RS_LINEAR, RS_CUBIC } rs_mode;
typedef enum rs_coord {
	RS_HALF_PIXEL,
	RS_ASYMMETRIC,
	RS_PYTORCH_HALF_PIXEL,
	RS_TF_HALF_PIXEL_FOR_NN,
	RS_ALIGN_CORNERS,
	RS_TF_CROP_AND_RESIZE,
} rs_coord;
typedef enum rs_round { RS_PREFER_FLOOR, RS_PREFER_CEIL, RS_FLOOR, RS_CEIL } rs_round;

typedef struct rs_params {
	rs_mode mode;
	rs_coord coord;
	rs_round round;
	double a;           /* cubic_coeff_a */
	bool exclude;       /* exclude_outside */
	double extrapolate; /* extrapolation_value */
	int rank;
	int64_t out[MPCC_MAX_RANK];
	double scale[MPCC_MAX_RANK];
	double roi[2 * MPCC_MAX_RANK];
} rs_params;

static int
lookup(const char *s, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static bool
input_given(mpcc_graph *g, const mpcc_node *n, int i)
{
	mpcc_value *v = mpcc_move_in(g, n, i);
	return v && mpcc_value_numel(v) != 0;
}

/* Reads scales (f32 per axis) from input i or from attribute floats. */
static mpcc_status
read_scales(mpcc_graph *g, int32_t ni, int i, rs_params *p, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	int count;
	if (i < 0) {
		const mpcc_attr *a = mpcc_node_attr(n, "scales");
		if (!a || a->kind != MPCC_ATTR_FLOATS)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "attribute 'scales' is missing");
		count = a->n;
		if (count != x->rank)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "%d scales for rank %d",
			                       count, x->rank);
		for (int j = 0; j < count; j++)
			p->scale[j] = a->floats[j];
	} else {
		mpcc_status st = mpcc_move_need_const(g, ni, i, "scales", d);
		if (st)
			return st;
		mpcc_value *s = mpcc_move_in(g, n, i);
		if (!mpcc_dtype_is_float(s->dtype) || mpcc_value_numel(s) != x->rank)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "scales must hold %d floats",
			                       x->rank);
		for (int j = 0; j < x->rank; j++)
			p->scale[j] = mpcc_value_get_double(s, j);
	}
	for (int j = 0; j < x->rank; j++) {
		if (!(p->scale[j] > 0))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "scale %g on axis %d",
			                       p->scale[j], j);
		p->out[j] = (int64_t)(p->scale[j] * (double)x->dims[j]);
	}
	return MPCC_OK;
}

/*
 * Gathers every attribute and shape input into p: which inputs exist
 * depends on the op and opset (Upsample-7 scales attribute; Upsample-9 and
 * Resize-10 scales input 1; Resize-11+ roi, scales, sizes at 1, 2, 3).
 * Opset 10 and Upsample use asymmetric coordinates and floor rounding.
 */
static mpcc_status
rs_params_get(mpcc_graph *g, int32_t ni, rs_params *p, mpcc_diag *d)
{
	static const char *const modes[] = {"nearest", "linear", "cubic", NULL};
	static const char *const coords[] = {"half_pixel",
	                                     "asymmetric",
	                                     "pytorch_half_pixel",
	                                     "tf_half_pixel_for_nn",
	                                     "align_corners",
	                                     "tf_crop_and_resize",
	                                     NULL};
	static const char *const rounds[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
	                                     "ceil", NULL};
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	bool legacy = n->op == MPCC_OP_UPSAMPLE || n->opset < 11;
	memset(p, 0, sizeof *p);
	p->rank = x->rank;
	const char *mode = mpcc_node_attr_string(n, "mode", "nearest");
	int m = lookup(mode, modes);
	if (m < 0 && legacy && !strcmp(mode, "bilinear"))
		m = RS_LINEAR;
	if (m < 0 || (legacy && m == RS_CUBIC))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "mode '%s'", mode);
	p->mode = (rs_mode)m;
	const char *cs = mpcc_node_attr_string(n, "coordinate_transformation_mode", "half_pixel");
	int c = legacy ? RS_ASYMMETRIC : lookup(cs, coords);
	if (c < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "coordinate_transformation_mode '%s'", cs);
	p->coord = (rs_coord)c;
	const char *rsn = mpcc_node_attr_string(n, "nearest_mode", "round_prefer_floor");
	int r = legacy ? RS_FLOOR : lookup(rsn, rounds);
	if (r < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "nearest_mode '%s'", rsn);
	p->round = (rs_round)r;
	p->a = mpcc_node_attr_float(n, "cubic_coeff_a", -0.75f);
	p->exclude = mpcc_node_attr_int(n, "exclude_outside", 0) != 0;
	p->extrapolate = mpcc_node_attr_float(n, "extrapolation_value", 0.0f);

	mpcc_status st;
	if (n->op == MPCC_OP_UPSAMPLE && n->opset < 9)
		return read_scales(g, ni, -1, p, d);
	if (legacy)
		return read_scales(g, ni, 1, p, d);
	if (p->coord == RS_TF_CROP_AND_RESIZE) {
		if ((st = mpcc_move_need_const(g, ni, 1, "roi", d)))
			return st;
		mpcc_value *rv = mpcc_move_in(g, n, 1);
		if (mpcc_value_numel(rv) != 2 * x->rank)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "roi must hold %d values",
			                       2 * x->rank);
		for (int j = 0; j < 2 * x->rank; j++)
			p->roi[j] = mpcc_value_get_double(rv, j);
	}
	if (input_given(g, n, 3)) {
		int64_t sizes[MPCC_MAX_RANK];
		int count;
		if ((st = mpcc_move_const_ints(g, ni, 3, "sizes", sizes, MPCC_MAX_RANK, &count, d)))
			return st;
		if (count != x->rank || input_given(g, n, 2))
			return mpcc_node_error(
			    d, n, MPCC_ERR_INVALID,
			    "needs exactly one of scales and sizes (%d sizes for rank %d)", count,
			    x->rank);
		for (int j = 0; j < x->rank; j++) {
			if (sizes[j] < 0 || x->dims[j] == 0)
				return mpcc_node_error(d, n, MPCC_ERR_INVALID,
				                       "size %lld on axis %d", (long long)sizes[j],
				                       j);
			p->out[j] = sizes[j];
			p->scale[j] = (double)sizes[j] / (double)x->dims[j];
		}
		return MPCC_OK;
	}
	if (!input_given(g, n, 2))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "needs scales or sizes");
	return read_scales(g, ni, 2, p, d);
}

mpcc_status
mpcc_move_infer_resize(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	rs_params p;
	mpcc_status st = rs_params_get(g, ni, &p, d);
	if (st)
		return st;
	mpcc_node *n = &g->nodes[ni];
	mpcc_value *x = mpcc_move_in(g, n, 0);
	for (int j = 0; j < x->rank; j++)
		if (x->dims[j] == 0 && p.out[j] > 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "resizes an empty axis %d",
			                       j);
	mpcc_move_set(mpcc_move_out(g, n, 0), x->dtype, x->rank, p.out);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- lowering */

static int32_t
fc(kir_kernel *k, double v)
{
	return kir_const_f(k, MPCC_DTYPE_F64, v);
}

static int32_t
fop(kir_kernel *k, kir_op op, int32_t a, int32_t b)
{
	return kir_binary(k, op, a, b);
}

/* The input coordinate of output index var along axis j (reference order). */
static int32_t
coord(kir_kernel *k, const rs_params *p, int j, int64_t in, int32_t var)
{
	int32_t x = kir_cast(k, MPCC_DTYPE_F64, var);
	double s = p->scale[j], ow = s * (double)in;
	switch (p->coord) {
	case RS_ALIGN_CORNERS:
		if (ow == 1)
			return fc(k, 0);
		return fop(k, KIR_DIV, fop(k, KIR_MUL, x, fc(k, (double)(in - 1))), fc(k, ow - 1));
	case RS_ASYMMETRIC:
		return fop(k, KIR_DIV, x, fc(k, s));
	case RS_TF_CROP_AND_RESIZE: {
		double r0 = p->roi[j], r1 = p->roi[j + p->rank];
		int32_t base = fc(k, r0 * (double)(in - 1));
		if (ow == 1)
			return fop(k, KIR_ADD, fc(k, (r1 - r0) * (double)(in - 1) / 2), base);
		int32_t t =
		    fop(k, KIR_MUL, fop(k, KIR_MUL, x, fc(k, r1 - r0)), fc(k, (double)(in - 1)));
		return fop(k, KIR_ADD, fop(k, KIR_DIV, t, fc(k, ow - 1)), base);
	}
	case RS_PYTORCH_HALF_PIXEL:
		if (ow == 1)
			return fc(k, -0.5);
		/* fallthrough */
	case RS_HALF_PIXEL:
		return fop(k, KIR_SUB, fop(k, KIR_DIV, fop(k, KIR_ADD, x, fc(k, 0.5)), fc(k, s)),
		           fc(k, 0.5));
	case RS_TF_HALF_PIXEL_FOR_NN:
		return fop(k, KIR_DIV, fop(k, KIR_ADD, x, fc(k, 0.5)), fc(k, s));
	}
	return x;
}

/* Nearest neighbour of coordinate c by nearest_mode (integers stay). */
static int32_t
nearest(kir_kernel *k, rs_round r, int32_t c)
{
	switch (r) {
	case RS_PREFER_FLOOR:
		return kir_unary(k, KIR_CEIL, fop(k, KIR_SUB, c, fc(k, 0.5)));
	case RS_PREFER_CEIL:
		return kir_unary(k, KIR_FLOOR, fop(k, KIR_ADD, c, fc(k, 0.5)));
	case RS_FLOOR:
		return kir_unary(k, KIR_FLOOR, c);
	case RS_CEIL:
		return kir_unary(k, KIR_CEIL, c);
	}
	return c;
}

/* Interpolation weight of neighbour j (0-based, leftmost first) at
 * fraction t, as the reference's linear_coeffs and cubic_coeffs. */
static int32_t
coeff(kir_kernel *k, const rs_params *p, int j, int32_t t)
{
	if (p->mode == RS_LINEAR)
		return j == 0 ? fop(k, KIR_SUB, fc(k, 1), t) : t;
	double a = p->a;
	int32_t one = fc(k, 1);
	int32_t s = j == 0   ? fop(k, KIR_ADD, t, one)
	            : j == 1 ? t
	            : j == 2 ? fop(k, KIR_SUB, one, t)
	                     : fop(k, KIR_ADD, fop(k, KIR_SUB, one, t), one);
	if (j == 1 || j == 2) {
		/* ((A+2)s - (A+3)) s s + 1 */
		int32_t v = fop(k, KIR_SUB, fop(k, KIR_MUL, fc(k, a + 2), s), fc(k, a + 3));
		return fop(k, KIR_ADD, fop(k, KIR_MUL, fop(k, KIR_MUL, v, s), s), one);
	}
	/* ((A s - 5A) s + 8A) s - 4A */
	int32_t v = fop(k, KIR_SUB, fop(k, KIR_MUL, fc(k, a), s), fc(k, 5 * a));
	v = fop(k, KIR_ADD, fop(k, KIR_MUL, v, s), fc(k, 8 * a));
	return fop(k, KIR_SUB, fop(k, KIR_MUL, v, s), fc(k, 4 * a));
}

/* Whether axis j is resized at all; others read the output index directly. */
static bool
active(const rs_params *p, int j, int64_t in)
{
	return p->out[j] != in || p->scale[j] != 1.0 || p->coord == RS_TF_CROP_AND_RESIZE;
}

mpcc_status
mpcc_move_lower_resize(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	rs_params p;
	mpcc_status st = rs_params_get(g, ni, &p, lx->d);
	if (st)
		return st;
	mpcc_value *x = mpcc_move_in(g, n, 0), *y = mpcc_move_out(g, n, 0);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype t = (mpcc_dtype)k->bufs[by].dtype;
	int r = x->rank;
	int n_red = 0, width = p.mode == RS_LINEAR ? 2 : p.mode == RS_CUBIC ? 4 : 0;
	int64_t red[KIR_MAX_DIMS];
	for (int j = 0; j < r; j++)
		if (width && active(&p, j, x->dims[j]))
			red[n_red++] = width;
	int32_t vars[2 * MPCC_MAX_RANK], idx[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, r + n_red, vars);
	int32_t outside = -1, weight = -1;
	for (int j = 0, rv = r; j < r; j++) {
		int64_t in = x->dims[j];
		if (!active(&p, j, in)) {
			idx[j] = vars[j];
			continue;
		}
		int32_t c = coord(k, &p, j, in, vars[j]);
		if (p.coord == RS_TF_CROP_AND_RESIZE) {
			int32_t o = fop(k, KIR_OR, fop(k, KIR_LT, c, fc(k, 0)),
			                fop(k, KIR_GT, c, fc(k, (double)(in - 1))));
			outside = outside >= 0 ? fop(k, KIR_OR, outside, o) : o;
		}
		if (!width) {
			int32_t i = kir_cast(k, MPCC_DTYPE_I64, nearest(k, p.round, c));
			idx[j] = mpcc_move_clamp(k, i, 0, in - 1);
			continue;
		}
		int32_t fl = kir_unary(k, KIR_FLOOR, c), frac = fop(k, KIR_SUB, c, fl);
		int32_t base = kir_iadd(k, kir_cast(k, MPCC_DTYPE_I64, fl),
		                        kir_iconst(k, p.mode == RS_CUBIC ? -1 : 0));
		int32_t rvar = vars[rv++];
		idx[j] = mpcc_move_clamp(k, kir_iadd(k, base, rvar), 0, in - 1);
		int32_t w = -1, sum = -1;
		for (int q = 0; q < width; q++) {
			int32_t cq = coeff(k, &p, q, frac);
			if (p.exclude) {
				int32_t pos = kir_iadd(k, base, kir_iconst(k, q));
				int32_t ok = fop(k, KIR_AND, fop(k, KIR_GE, pos, kir_iconst(k, 0)),
				                 fop(k, KIR_LT, pos, kir_iconst(k, in)));
				cq = kir_select(k, ok, cq, fc(k, 0));
				sum = sum >= 0 ? fop(k, KIR_ADD, sum, cq) : cq;
			}
			w = w >= 0 ? kir_select(k, fop(k, KIR_EQ, rvar, kir_iconst(k, q)), cq, w)
			           : cq;
		}
		if (p.exclude)
			w = fop(k, KIR_DIV, w, sum);
		weight = weight >= 0 ? fop(k, KIR_MUL, weight, w) : w;
	}
	/* Nearest moves the value untouched; interpolation computes in f64. */
	int32_t v = kir_load(k, bx, mpcc_lower_linear(k, r, x->dims, idx));
	if (width)
		v = kir_cast(k, MPCC_DTYPE_F64, v);
	if (weight >= 0)
		v = fop(k, KIR_MUL, weight, v);
	kir_stage *s;
	int32_t res;
	if (n_red) {
		s = kir_stage_add(k, r, y->dims, n_red, red, KIR_RED_SUM, MPCC_DTYPE_F64, v);
		res = kir_acc(k, MPCC_DTYPE_F64);
	} else {
		s = kir_stage_add(k, r, y->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
		res = v;
	}
	if (outside >= 0)
		res = kir_select(k, outside,
		                 kir_cast(k, kir_expr_dtype(k, res), fc(k, p.extrapolate)), res);
	if (s)
		kir_stage_store(k, s, by, mpcc_lower_linear(k, r, y->dims, vars),
		                kir_cast(k, t, res));
	return mpcc_move_check(lx, ni, k);
}
