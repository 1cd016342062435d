/*
 * ops/misc_image.c - the misc family's image and matrix ops: GridSample,
 * RoiAlign, MaxUnpool and Det (the table is in ops/misc.c).
 *
 * GridSample and RoiAlign are gathers with computed, fractional source
 * positions: one stage over the output whose value interpolates a handful of
 * loads, each clamped into range and zeroed by a select when the position
 * falls outside the image, so no load leaves its buffer. MaxUnpool zero-fills
 * its output and scatters in a `serial` stage. Det runs Gaussian elimination
 * with partial pivoting unrolled into stages over TEMP copies of the
 * matrices, since kernel IR has no sequential control flow.
 */
#include <math.h>
#include <string.h>

#include "ops/misc_impl.h"

/* ---------------------------------------------------------------- float helpers */

/* A kernel and the float dtype its interpolation runs in. */
typedef struct fx {
	kir_kernel *k;
	mpcc_dtype c;
} fx;

static int32_t
fc(fx *f, double v)
{
	return kir_const_f(f->k, f->c, v);
}

static int32_t
fb(fx *f, kir_op op, int32_t a, int32_t b)
{
	return kir_binary(f->k, op, a, b);
}

static int32_t
fu(fx *f, kir_op op, int32_t a)
{
	return kir_unary(f->k, op, a);
}

static int32_t
fclip(fx *f, int32_t a, double lo, double hi)
{
	return fb(f, KIR_MIN, fb(f, KIR_MAX, a, fc(f, lo)), fc(f, hi));
}

/* ---------------------------------------------------------------- GridSample */

const char *const mpcc_misc_attrs_gridsample[] = {"align_corners", "mode", "padding_mode", NULL};

enum { GS_BILINEAR, GS_NEAREST, GS_BICUBIC };
enum { GS_ZEROS, GS_BORDER, GS_REFLECTION };

static mpcc_status
gridsample_params(mpcc_graph *g, const mpcc_node *n, int *mode, int *pad, mpcc_diag *d)
{
	const mpcc_value *x = mpcc_misc_in(g, n, 0), *grid = mpcc_misc_in(g, n, 1);
	if (!x || !grid)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input");
	if (x->rank != 4)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
		                       "only 4-D input (N, C, H, W) is supported, not rank %d",
		                       x->rank);
	if (grid->rank != 4 || grid->dims[3] != 2 || grid->dims[0] != x->dims[0])
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "grid must have shape (N, H_out, W_out, 2) with X's N");
	if (!mpcc_dtype_is_float(x->dtype) || !mpcc_dtype_is_float(grid->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "X and grid must be float tensors");
	const char *m = mpcc_node_attr_string(n, "mode", "bilinear");
	const char *p = mpcc_node_attr_string(n, "padding_mode", "zeros");
	if (!strcmp(m, "bilinear") || !strcmp(m, "linear"))
		*mode = GS_BILINEAR;
	else if (!strcmp(m, "nearest"))
		*mode = GS_NEAREST;
	else if (!strcmp(m, "bicubic") || !strcmp(m, "cubic"))
		*mode = GS_BICUBIC;
	else
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "unknown mode '%s'", m);
	if (!strcmp(p, "zeros"))
		*pad = GS_ZEROS;
	else if (!strcmp(p, "border"))
		*pad = GS_BORDER;
	else if (!strcmp(p, "reflection"))
		*pad = GS_REFLECTION;
	else
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "unknown padding_mode '%s'", p);
	return MPCC_OK;
}

mpcc_status
mpcc_misc_infer_gridsample(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	int mode = 0, pad = 0;
	mpcc_status st = gridsample_params(g, n, &mode, &pad, d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0), *grid = mpcc_misc_in(g, n, 1);
	int64_t dims[4] = {x->dims[0], x->dims[1], grid->dims[1], grid->dims[2]};
	mpcc_misc_set(mpcc_misc_out(g, n, 0), x->dtype, 4, dims);
	return MPCC_OK;
}

/* What a GridSample stage shares: the image plane being read. */
typedef struct gs {
	fx f;
	int bx;
	int32_t plane; /* I64 offset of (n, c) in X */
	int64_t h, w;
	int pad;
	bool align;
} gs;

/*
 * Folds coordinate a into [lo2/2, hi2/2] by reflecting at the bounds, as
 * many times as needed: the distance from the low bound modulo the span,
 * mirrored on odd laps.
 */
static int32_t
reflect(fx *f, int32_t a, double lo2, double hi2)
{
	if (lo2 == hi2)
		return fc(f, 0);
	double lo = lo2 / 2, span = (hi2 - lo2) / 2;
	int32_t in = fu(f, KIR_ABS, fb(f, KIR_SUB, a, fc(f, lo)));
	int32_t laps = fu(f, KIR_FLOOR, fb(f, KIR_DIV, in, fc(f, span)));
	int32_t extra = fb(f, KIR_SUB, in, fb(f, KIR_MUL, laps, fc(f, span)));
	int32_t half = fu(f, KIR_FLOOR, fb(f, KIR_DIV, laps, fc(f, 2)));
	int32_t even = fb(f, KIR_EQ, laps, fb(f, KIR_MUL, half, fc(f, 2)));
	return kir_select(f->k, even, fb(f, KIR_ADD, extra, fc(f, lo)),
	                  fb(f, KIR_ADD, fb(f, KIR_SUB, fc(f, span), extra), fc(f, lo)));
}

/* The padding mode applied to a pixel coordinate along an axis of size. */
static int32_t
gs_pad(gs *s, int32_t a, int64_t size)
{
	fx *f = &s->f;
	if (s->pad == GS_BORDER)
		return fclip(f, a, 0, (double)(size - 1));
	if (s->pad == GS_REFLECTION) {
		a = s->align ? reflect(f, a, 0, 2.0 * (double)(size - 1))
		             : reflect(f, a, -1, 2.0 * (double)size - 1);
		return fclip(f, a, 0, (double)(size - 1));
	}
	return a;
}

/* From the normalised [-1, 1] grid coordinate to a pixel coordinate. */
static int32_t
gs_unnormalize(gs *s, int32_t a, int64_t size)
{
	fx *f = &s->f;
	int32_t p1 = fb(f, KIR_ADD, a, fc(f, 1));
	if (s->align)
		return fb(f, KIR_MUL, p1, fc(f, (double)(size - 1) / 2));
	return fb(f, KIR_DIV, fb(f, KIR_SUB, fb(f, KIR_MUL, p1, fc(f, (double)size)), fc(f, 1)),
	          fc(f, 2));
}

/* X at integral float position (y, x) of the plane, 0 outside it. */
static int32_t
gs_fetch(gs *s, int32_t y, int32_t x)
{
	fx *f = &s->f;
	kir_kernel *k = f->k;
	int32_t in = fb(
	    f, KIR_AND,
	    fb(f, KIR_AND, fb(f, KIR_GE, x, fc(f, 0)), fb(f, KIR_LE, x, fc(f, (double)(s->w - 1)))),
	    fb(f, KIR_AND, fb(f, KIR_GE, y, fc(f, 0)),
	       fb(f, KIR_LE, y, fc(f, (double)(s->h - 1)))));
	int32_t xi = kir_cast(k, MPCC_DTYPE_I64, fclip(f, x, 0, (double)(s->w - 1)));
	int32_t yi = kir_cast(k, MPCC_DTYPE_I64, fclip(f, y, 0, (double)(s->h - 1)));
	int32_t idx = kir_iadd(k, s->plane, kir_iadd(k, kir_imul(k, yi, s->w), xi));
	int32_t v = kir_cast(k, f->c, kir_load(k, s->bx, idx));
	return kir_select(k, in, v, fc(f, 0));
}

/* The bicubic weights of the four taps around fraction t (A = -0.75). */
static void
cubic_weights(fx *f, int32_t t, int32_t *w)
{
	const double A = -0.75;
	int32_t one = fc(f, 1);
	int32_t d[4] = {fb(f, KIR_ADD, t, one), t, fb(f, KIR_SUB, one, t),
	                fb(f, KIR_SUB, fc(f, 2), t)};
	for (int i = 0; i < 4; i++) {
		int32_t x = d[i];
		if (i == 1 || i == 2) {
			/* ((A + 2) x - (A + 3)) x^2 + 1 */
			int32_t p = fb(f, KIR_SUB, fb(f, KIR_MUL, fc(f, A + 2), x), fc(f, A + 3));
			w[i] = fb(f, KIR_ADD, fb(f, KIR_MUL, fb(f, KIR_MUL, p, x), x), one);
		} else {
			/* ((A x - 5A) x + 8A) x - 4A */
			int32_t p = fb(f, KIR_SUB, fb(f, KIR_MUL, fc(f, A), x), fc(f, 5 * A));
			p = fb(f, KIR_ADD, fb(f, KIR_MUL, p, x), fc(f, 8 * A));
			w[i] = fb(f, KIR_SUB, fb(f, KIR_MUL, p, x), fc(f, 4 * A));
		}
	}
}

/*
 * One stage over (N, C, H_out, W_out). Bilinear and nearest pad the source
 * coordinate and then read with zeros outside; bicubic reads the 4x4 taps
 * around the unpadded coordinate and pads each tap's position, which is how
 * the reference (PyTorch's grid_sample) defines it.
 */
mpcc_status
mpcc_misc_lower_gridsample(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	int mode = 0, pad = 0;
	mpcc_status st = gridsample_params(g, n, &mode, &pad, lx->d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0), *grid = mpcc_misc_in(g, n, 1);
	const mpcc_value *y = mpcc_misc_out(g, n, 0);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	if (mpcc_value_numel(y) <= 0)
		return MPCC_OK;
	gs s = {.f = {k, mpcc_misc_compute(x->dtype)},
	        .h = x->dims[2],
	        .w = x->dims[3],
	        .pad = pad,
	        .align = mpcc_node_attr_int(n, "align_corners", 0) != 0};
	fx *f = &s.f;
	s.bx = mpcc_lower_param(k, g, n->in[0]);
	int bg = mpcc_lower_param(k, g, n->in[1]), by = mpcc_lower_param(k, g, n->out[0]);
	int32_t v[4];
	mpcc_lower_vars(k, 0, 4, v);
	s.plane = kir_imul(k, kir_iadd(k, kir_imul(k, v[0], x->dims[1]), v[1]), s.h * s.w);
	int32_t gi[4] = {v[0], v[2], v[3], kir_iconst(k, 0)};
	int32_t gx = kir_cast(k, f->c, kir_load(k, bg, mpcc_lower_linear(k, 4, grid->dims, gi)));
	gi[3] = kir_iconst(k, 1);
	int32_t gy = kir_cast(k, f->c, kir_load(k, bg, mpcc_lower_linear(k, 4, grid->dims, gi)));
	int32_t px = gs_unnormalize(&s, gx, s.w), py = gs_unnormalize(&s, gy, s.h);
	int32_t out;
	if (mode == GS_NEAREST) {
		px = gs_pad(&s, px, s.w);
		py = gs_pad(&s, py, s.h);
		out = gs_fetch(&s, fu(f, KIR_RINT, py), fu(f, KIR_RINT, px));
	} else if (mode == GS_BILINEAR) {
		px = gs_pad(&s, px, s.w);
		py = gs_pad(&s, py, s.h);
		int32_t x0 = fu(f, KIR_FLOOR, px), y0 = fu(f, KIR_FLOOR, py);
		int32_t x1 = fb(f, KIR_ADD, x0, fc(f, 1)), y1 = fb(f, KIR_ADD, y0, fc(f, 1));
		int32_t wx1 = fb(f, KIR_SUB, px, x0), wy1 = fb(f, KIR_SUB, py, y0);
		int32_t wx0 = fb(f, KIR_SUB, fc(f, 1), wx1), wy0 = fb(f, KIR_SUB, fc(f, 1), wy1);
		int32_t top = fb(f, KIR_ADD, fb(f, KIR_MUL, wx0, gs_fetch(&s, y0, x0)),
		                 fb(f, KIR_MUL, wx1, gs_fetch(&s, y0, x1)));
		int32_t bot = fb(f, KIR_ADD, fb(f, KIR_MUL, wx0, gs_fetch(&s, y1, x0)),
		                 fb(f, KIR_MUL, wx1, gs_fetch(&s, y1, x1)));
		out = fb(f, KIR_ADD, fb(f, KIR_MUL, wy0, top), fb(f, KIR_MUL, wy1, bot));
	} else {
		int32_t x0 = fu(f, KIR_FLOOR, px), y0 = fu(f, KIR_FLOOR, py);
		int32_t wx[4], wy[4];
		cubic_weights(f, fb(f, KIR_SUB, px, x0), wx);
		cubic_weights(f, fb(f, KIR_SUB, py, y0), wy);
		out = fc(f, 0);
		for (int j = 0; j < 4; j++) {
			int32_t ty = gs_pad(&s, fb(f, KIR_ADD, y0, fc(f, j - 1)), s.h);
			int32_t row = fc(f, 0);
			for (int i = 0; i < 4; i++) {
				int32_t tx = gs_pad(&s, fb(f, KIR_ADD, x0, fc(f, i - 1)), s.w);
				row = fb(f, KIR_ADD, row,
				         fb(f, KIR_MUL, wx[i], gs_fetch(&s, ty, tx)));
			}
			out = fb(f, KIR_ADD, out, fb(f, KIR_MUL, wy[j], row));
		}
	}
	kir_stage *stg =
	    kir_stage_add(k, 4, y->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
	if (!stg)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, stg, by, mpcc_lower_linear(k, 4, y->dims, v),
	                kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, out));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- MaxUnpool */

const char *const mpcc_misc_attrs_maxunpool[] = {"kernel_shape", "pads", "strides", NULL};

/*
 * The output shape into dims: the optional constant output_shape input, else
 * (in - 1) * stride + kernel - pads per spatial axis, which is always the
 * shape the indices address (into nat).
 */
static mpcc_status
maxunpool_shape(mpcc_graph *g, const mpcc_node *n, int64_t *dims, int64_t *nat, mpcc_diag *d)
{
	const mpcc_value *x = mpcc_misc_in(g, n, 0), *ind = mpcc_misc_in(g, n, 1);
	const mpcc_value *os = mpcc_misc_in(g, n, 2);
	if (!x || !ind)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input");
	if (x->rank < 3)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "X must have rank >= 3");
	if (!mpcc_dtype_is_int(ind->dtype) || ind->rank != x->rank)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "I must be an integer tensor of X's shape");
	for (int i = 0; i < x->rank; i++)
		if (ind->dims[i] != x->dims[i])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "I must have X's shape");
	int sp = x->rank - 2;
	const mpcc_attr *ks = mpcc_node_attr(n, "kernel_shape");
	const mpcc_attr *pa = mpcc_node_attr(n, "pads"), *sa = mpcc_node_attr(n, "strides");
	if (!ks || ks->kind != MPCC_ATTR_INTS || ks->n != sp)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "kernel_shape must list %d spatial sizes", sp);
	if ((pa && (pa->kind != MPCC_ATTR_INTS || pa->n != 2 * sp)) ||
	    (sa && (sa->kind != MPCC_ATTR_INTS || sa->n != sp)))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "pads must list %d and strides %d values", 2 * sp, sp);
	nat[0] = x->dims[0];
	nat[1] = x->dims[1];
	for (int i = 0; i < sp; i++) {
		int64_t s = sa ? sa->ints[i] : 1;
		int64_t p = pa ? pa->ints[i] + pa->ints[i + sp] : 0;
		nat[2 + i] = (x->dims[2 + i] - 1) * s + ks->ints[i] - p;
		if (nat[2 + i] < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "negative output size");
	}
	memcpy(dims, nat, sizeof(int64_t) * (size_t)x->rank);
	if (!os)
		return MPCC_OK;
	mpcc_status st = mpcc_misc_need_const(n, os, "output_shape", d);
	if (st)
		return st;
	if (!mpcc_dtype_is_int(os->dtype) || mpcc_value_numel(os) != x->rank)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "output_shape must hold %d integers",
		                       x->rank);
	for (int i = 0; i < x->rank; i++) {
		dims[i] = mpcc_value_get_int(os, i);
		if (dims[i] < 0 || (i < 2 && dims[i] != x->dims[i]))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "output_shape disagrees with X's N and C");
	}
	return MPCC_OK;
}

mpcc_status
mpcc_misc_infer_maxunpool(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	int64_t dims[MPCC_MAX_RANK], nat[MPCC_MAX_RANK];
	mpcc_status st = maxunpool_shape(g, n, dims, nat, d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0);
	mpcc_misc_set(mpcc_misc_out(g, n, 0), x->dtype, x->rank, dims);
	return MPCC_OK;
}

/*
 * A zero fill, then a serial stage over X storing each value at its index.
 * The indices are flat in the shape MaxPool's input had (the natural output
 * shape); they are clamped into range so bad data cannot write outside the
 * buffer, and the serial order makes duplicates resolve as last-write-wins.
 * When output_shape asks for another shape, the scatter goes to a TEMP of the
 * natural shape and a last stage places it at the origin of the output,
 * zeros around (as the reference does).
 */
mpcc_status
mpcc_misc_lower_maxunpool(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	int64_t dims[MPCC_MAX_RANK], nat[MPCC_MAX_RANK];
	mpcc_status st = maxunpool_shape(g, n, dims, nat, lx->d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0), *y = mpcc_misc_out(g, n, 0);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int rank = x->rank;
	int64_t ny = mpcc_value_numel(y), nx = mpcc_value_numel(x), nn = 1;
	for (int i = 0; i < rank; i++)
		nn *= nat[i];
	bool same = memcmp(dims, nat, sizeof(int64_t) * (size_t)rank) == 0;
	if (ny <= 0)
		return MPCC_OK;
	int by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype yt = (mpcc_dtype)k->bufs[by].dtype;
	int32_t zero = mpcc_dtype_is_float(yt) ? kir_const_f(k, yt, 0) : kir_const_i(k, yt, 0);
	int bt = same ? by : kir_buf_add(k, yt, KIR_BUF_TEMP, MPCC_NONE, nn > 0 ? nn : 1);
	int64_t nt = same ? ny : nn;
	if (nt > 0) {
		kir_stage *s =
		    kir_stage_add(k, 1, &nt, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
		if (!s)
			return MPCC_ERR_NOMEM;
		kir_stage_store(k, s, bt, kir_var(k, 0), zero);
	}
	if (nx > 0 && nt > 0) {
		int bx = mpcc_lower_param(k, g, n->in[0]), bi = mpcc_lower_param(k, g, n->in[1]);
		int32_t i = kir_var(k, 0);
		int32_t at = kir_cast(k, MPCC_DTYPE_I64, kir_load(k, bi, i));
		at = kir_binary(k, KIR_MIN, kir_binary(k, KIR_MAX, at, kir_iconst(k, 0)),
		                kir_iconst(k, nt - 1));
		int32_t val = kir_cast(k, yt, kir_load(k, bx, i));
		kir_stage *s =
		    kir_stage_add(k, 1, &nx, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
		if (!s)
			return MPCC_ERR_NOMEM;
		s->serial = true;
		kir_stage_store(k, s, bt, at, val);
	}
	if (same)
		return MPCC_OK;
	int32_t v[MPCC_MAX_RANK], src[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, rank, v);
	int32_t in = kir_const_i(k, MPCC_DTYPE_BOOL, 1);
	for (int i = 0; i < rank; i++) {
		in = kir_binary(k, KIR_AND, in, kir_binary(k, KIR_LT, v[i], kir_iconst(k, nat[i])));
		src[i] = kir_binary(k, KIR_MIN, v[i], kir_iconst(k, nat[i] > 0 ? nat[i] - 1 : 0));
	}
	int32_t val =
	    nn > 0 ? kir_select(k, in, kir_load(k, bt, mpcc_lower_linear(k, rank, nat, src)), zero)
	           : zero;
	kir_stage *s =
	    kir_stage_add(k, rank, dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, mpcc_lower_linear(k, rank, dims, v), val);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- RoiAlign */

const char *const mpcc_misc_attrs_roialign[] = {"coordinate_transformation_mode",
                                                "mode",
                                                "output_height",
                                                "output_width",
                                                "sampling_ratio",
                                                "spatial_scale",
                                                NULL};

/* The sampling grid per bin: sampling_ratio when positive, else the largest
 * adaptive grid any ROI needs (from constant rois), masked per ROI. */
static mpcc_status
roialign_params(mpcc_graph *g, const mpcc_node *n, int64_t *gh, int64_t *gw, mpcc_diag *d)
{
	const mpcc_value *x = mpcc_misc_in(g, n, 0), *rois = mpcc_misc_in(g, n, 1);
	const mpcc_value *bi = mpcc_misc_in(g, n, 2);
	if (!x || !rois || !bi)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input");
	if (x->rank != 4 || !mpcc_dtype_is_float(x->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "X must be a 4-D float tensor");
	if (rois->rank != 2 || rois->dims[1] != 4 || !mpcc_dtype_is_float(rois->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "rois must be a float tensor of shape (num_rois, 4)");
	if (bi->rank != 1 || bi->dims[0] != rois->dims[0] || !mpcc_dtype_is_int(bi->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "batch_indices must be integers of shape (num_rois)");
	const char *m = mpcc_node_attr_string(n, "mode", "avg");
	const char *ct = mpcc_node_attr_string(n, "coordinate_transformation_mode", "half_pixel");
	if (strcmp(m, "avg") != 0 && strcmp(m, "max") != 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "unknown mode '%s'", m);
	if (strcmp(ct, "half_pixel") != 0 && strcmp(ct, "output_half_pixel") != 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "unknown coordinate_transformation_mode '%s'", ct);
	int64_t oh = mpcc_node_attr_int(n, "output_height", 1);
	int64_t ow = mpcc_node_attr_int(n, "output_width", 1);
	int64_t sr = mpcc_node_attr_int(n, "sampling_ratio", 0);
	if (oh < 1 || ow < 1 || sr < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "output sizes must be positive, sampling_ratio >= 0");
	if (sr > 0) {
		*gh = *gw = sr;
		return MPCC_OK;
	}
	if (!(rois->flags & MPCC_VALUE_CONST) || !rois->data)
		return mpcc_node_error(
		    d, n, MPCC_ERR_UNSUPPORTED,
		    "sampling_ratio 0 (adaptive) needs rois known at compile time");
	bool half = strcmp(ct, "half_pixel") == 0;
	double scale = mpcc_node_attr_float(n, "spatial_scale", 1.0f);
	*gh = *gw = 1;
	for (int64_t r = 0; r < rois->dims[0]; r++) {
		double w =
		    (mpcc_value_get_double(rois, 4 * r + 2) - mpcc_value_get_double(rois, 4 * r)) *
		    scale;
		double h = (mpcc_value_get_double(rois, 4 * r + 3) -
		            mpcc_value_get_double(rois, 4 * r + 1)) *
		           scale;
		if (!half) {
			w = w > 1 ? w : 1;
			h = h > 1 ? h : 1;
		}
		double cw = w / (double)ow, ch = h / (double)oh;
		int64_t iw = (int64_t)cw + ((double)(int64_t)cw < cw),
		        ih = (int64_t)ch + ((double)(int64_t)ch < ch);
		if (iw > 64 || ih > 64)
			return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
			                       "adaptive sampling grid over 64 points per side");
		*gw = iw > *gw ? iw : *gw;
		*gh = ih > *gh ? ih : *gh;
	}
	return MPCC_OK;
}

mpcc_status
mpcc_misc_infer_roialign(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	int64_t gh, gw;
	mpcc_status st = roialign_params(g, n, &gh, &gw, d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0), *rois = mpcc_misc_in(g, n, 1);
	int64_t dims[4] = {rois->dims[0], x->dims[1], mpcc_node_attr_int(n, "output_height", 1),
	                   mpcc_node_attr_int(n, "output_width", 1)};
	mpcc_misc_set(mpcc_misc_out(g, n, 0), x->dtype, 4, dims);
	return MPCC_OK;
}

/* X at (plane, y, x) bilinearly, with RoiAlign's edge rules: 0 beyond one
 * pixel outside, coordinates below 0 pinned to 0, the last row and column
 * repeated. */
static int32_t
roi_bilinear(gs *s, int32_t y, int32_t x)
{
	fx *f = &s->f;
	kir_kernel *k = f->k;
	double hh = (double)s->h, ww = (double)s->w;
	int32_t out =
	    fb(f, KIR_OR, fb(f, KIR_OR, fb(f, KIR_LT, y, fc(f, -1)), fb(f, KIR_GT, y, fc(f, hh))),
	       fb(f, KIR_OR, fb(f, KIR_LT, x, fc(f, -1)), fb(f, KIR_GT, x, fc(f, ww))));
	y = fb(f, KIR_MAX, y, fc(f, 0));
	x = fb(f, KIR_MAX, x, fc(f, 0));
	int32_t y0 = fb(f, KIR_MIN, fu(f, KIR_FLOOR, y), fc(f, hh - 1));
	int32_t x0 = fb(f, KIR_MIN, fu(f, KIR_FLOOR, x), fc(f, ww - 1));
	y = kir_select(k, fb(f, KIR_GE, y0, fc(f, hh - 1)), y0, y);
	x = kir_select(k, fb(f, KIR_GE, x0, fc(f, ww - 1)), x0, x);
	int32_t y1 = fb(f, KIR_MIN, fb(f, KIR_ADD, y0, fc(f, 1)), fc(f, hh - 1));
	int32_t x1 = fb(f, KIR_MIN, fb(f, KIR_ADD, x0, fc(f, 1)), fc(f, ww - 1));
	int32_t ly = fb(f, KIR_SUB, y, y0), lx = fb(f, KIR_SUB, x, x0);
	int32_t hy = fb(f, KIR_SUB, fc(f, 1), ly), hx = fb(f, KIR_SUB, fc(f, 1), lx);
	int32_t v = fb(f, KIR_ADD,
	               fb(f, KIR_ADD, fb(f, KIR_MUL, fb(f, KIR_MUL, hy, hx), gs_fetch(s, y0, x0)),
	                  fb(f, KIR_MUL, fb(f, KIR_MUL, hy, lx), gs_fetch(s, y0, x1))),
	               fb(f, KIR_ADD, fb(f, KIR_MUL, fb(f, KIR_MUL, ly, hx), gs_fetch(s, y1, x0)),
	                  fb(f, KIR_MUL, fb(f, KIR_MUL, ly, lx), gs_fetch(s, y1, x1))));
	return kir_select(k, out, fc(f, 0), v);
}

/*
 * One stage over (roi, C, out_h, out_w) whose reduction runs over the
 * sampling grid of the bin: SUM then divide by the ROI's point count (avg),
 * or MAX (max). ROI geometry is computed per point from the rois buffer; an
 * adaptive grid masks the points beyond the ROI's own grid size.
 */
mpcc_status
mpcc_misc_lower_roialign(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	int64_t gh, gw;
	mpcc_status st = roialign_params(g, n, &gh, &gw, lx->d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0), *y = mpcc_misc_out(g, n, 0);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	if (mpcc_value_numel(y) <= 0 || mpcc_value_numel(x) <= 0)
		return MPCC_OK;
	bool half = strcmp(mpcc_node_attr_string(n, "coordinate_transformation_mode", "half_pixel"),
	                   "half_pixel") == 0;
	bool is_max = strcmp(mpcc_node_attr_string(n, "mode", "avg"), "max") == 0;
	int64_t sr = mpcc_node_attr_int(n, "sampling_ratio", 0);
	double scale = mpcc_node_attr_float(n, "spatial_scale", 1.0f);
	int64_t oh = y->dims[2], ow = y->dims[3];
	gs s = {.f = {k, mpcc_misc_compute(x->dtype)}, .h = x->dims[2], .w = x->dims[3]};
	fx *f = &s.f;
	s.bx = mpcc_lower_param(k, g, n->in[0]);
	int brois = mpcc_lower_param(k, g, n->in[1]), bbi = mpcc_lower_param(k, g, n->in[2]);
	int by = mpcc_lower_param(k, g, n->out[0]);
	int32_t v[6];
	mpcc_lower_vars(k, 0, 6, v);
	int32_t b = kir_cast(k, MPCC_DTYPE_I64, kir_load(k, bbi, v[0]));
	b = kir_binary(k, KIR_MIN, kir_binary(k, KIR_MAX, b, kir_iconst(k, 0)),
	               kir_iconst(k, x->dims[0] - 1));
	s.plane = kir_imul(k, kir_iadd(k, kir_imul(k, b, x->dims[1]), v[1]), s.h * s.w);
	int32_t c[4];
	for (int j = 0; j < 4; j++) {
		int32_t r = kir_cast(
		    k, f->c,
		    kir_load(k, brois, kir_iadd(k, kir_imul(k, v[0], 4), kir_iconst(k, j))));
		c[j] = fb(f, KIR_SUB, fb(f, KIR_MUL, r, fc(f, scale)), fc(f, half ? 0.5 : 0));
	}
	int32_t rw = fb(f, KIR_SUB, c[2], c[0]), rh = fb(f, KIR_SUB, c[3], c[1]);
	if (!half) {
		rw = fb(f, KIR_MAX, rw, fc(f, 1));
		rh = fb(f, KIR_MAX, rh, fc(f, 1));
	}
	int32_t bw = fb(f, KIR_DIV, rw, fc(f, (double)ow)),
	        bh = fb(f, KIR_DIV, rh, fc(f, (double)oh));
	int32_t nh, nw;
	if (sr > 0) {
		nh = fc(f, (double)sr);
		nw = fc(f, (double)sr);
	} else {
		nh = fu(f, KIR_CEIL, bh);
		nw = fu(f, KIR_CEIL, bw);
	}
	int32_t fy = kir_cast(k, f->c, v[4]), fxv = kir_cast(k, f->c, v[5]);
	int32_t py =
	    fb(f, KIR_ADD, fb(f, KIR_ADD, c[1], fb(f, KIR_MUL, kir_cast(k, f->c, v[2]), bh)),
	       fb(f, KIR_DIV, fb(f, KIR_MUL, fb(f, KIR_ADD, fy, fc(f, 0.5)), bh), nh));
	int32_t px =
	    fb(f, KIR_ADD, fb(f, KIR_ADD, c[0], fb(f, KIR_MUL, kir_cast(k, f->c, v[3]), bw)),
	       fb(f, KIR_DIV, fb(f, KIR_MUL, fb(f, KIR_ADD, fxv, fc(f, 0.5)), bw), nw));
	int32_t val = roi_bilinear(&s, py, px);
	if (sr <= 0) {
		int32_t inside = fb(f, KIR_AND, fb(f, KIR_LT, fy, nh), fb(f, KIR_LT, fxv, nw));
		val = kir_select(k, inside, val, fc(f, is_max ? -INFINITY : 0.0));
	}
	int64_t pext[4] = {y->dims[0], y->dims[1], oh, ow}, rext[2] = {gh, gw};
	kir_stage *stg =
	    kir_stage_add(k, 4, pext, 2, rext, is_max ? KIR_RED_MAX : KIR_RED_SUM, f->c, val);
	if (!stg)
		return MPCC_ERR_NOMEM;
	int32_t out = kir_acc(k, f->c);
	if (!is_max)
		out = fb(f, KIR_DIV, out, fb(f, KIR_MAX, fb(f, KIR_MUL, nh, nw), fc(f, 1)));
	kir_stage_store(k, stg, by, mpcc_lower_linear(k, 4, y->dims, v),
	                kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, out));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- Det */

const char *const mpcc_misc_attrs_det[] = {NULL};

#define DET_MAX_N 8 /* larger matrices would unroll into too many stages */

static mpcc_status
det_check(mpcc_graph *g, const mpcc_node *n, mpcc_diag *d)
{
	const mpcc_value *x = mpcc_misc_in(g, n, 0);
	if (!x)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input");
	if (!mpcc_dtype_is_float(x->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "X must be a float tensor, not %s",
		                       mpcc_dtype_name(x->dtype));
	if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2])
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "X must hold square matrices in its last two axes");
	if (x->dims[x->rank - 1] > DET_MAX_N)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
		                       "matrices of order %lld (at most %d supported)",
		                       (long long)x->dims[x->rank - 1], DET_MAX_N);
	return MPCC_OK;
}

mpcc_status
mpcc_misc_infer_det(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_status st = det_check(g, n, d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0);
	mpcc_misc_set(mpcc_misc_out(g, n, 0), x->dtype, x->rank - 2, x->dims);
	return MPCC_OK;
}

/* A map stage over ext[0..n_par-1]; NULL when out of memory. */
static kir_stage *
map_stage(kir_kernel *k, int n_par, const int64_t *ext)
{
	return kir_stage_add(k, n_par, ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
}

/* Element (b, i, j) of a batch of m x m matrices (i and j I64 exprs). */
static int32_t
mat_at(kir_kernel *k, int32_t b, int32_t i, int32_t j, int64_t m)
{
	return kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, b, m), i), m), j);
}

/*
 * Gaussian elimination with partial pivoting, every step unrolled into
 * stages over an f64 TEMP copy A of the matrices (one parallel point per
 * matrix, row or element). Step kk: an ARGMAX of |A[i][kk]| over rows
 * i >= kk picks the pivot row; both rows are copied to a TEMP and written
 * back swapped, flipping the sign when they differ; the multipliers
 * A[i][kk] / A[kk][kk] go to a TEMP (0 for a zero pivot, which leaves a zero
 * on the diagonal and so det 0); the rows below kk are updated. Every stage
 * writes only what no other point of it reads. det is the sign times the
 * product of the diagonal.
 */
mpcc_status
mpcc_misc_lower_det(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mpcc_status st = det_check(g, n, lx->d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_misc_in(g, n, 0);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	int64_t m = x->dims[x->rank - 1], nb = 1;
	for (int i = 0; i < x->rank - 2; i++)
		nb *= x->dims[i];
	if (nb <= 0)
		return MPCC_OK;
	const mpcc_dtype c = MPCC_DTYPE_F64;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	int64_t mm = m > 0 ? m : 1;
	int ba = kir_buf_add(k, c, KIR_BUF_TEMP, MPCC_NONE, nb * mm * mm);
	int bsign = kir_buf_add(k, c, KIR_BUF_TEMP, MPCC_NONE, nb);
	int bpiv = kir_buf_add(k, MPCC_DTYPE_I64, KIR_BUF_TEMP, MPCC_NONE, nb);
	int brows = kir_buf_add(k, c, KIR_BUF_TEMP, MPCC_NONE, nb * 2 * mm);
	int bfac = kir_buf_add(k, c, KIR_BUF_TEMP, MPCC_NONE, nb * mm);
	int32_t v0 = kir_var(k, 0), v1 = kir_var(k, 1), v2 = kir_var(k, 2);
	kir_stage *s;

	s = map_stage(k, 1, &nb);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, bsign, v0, kir_const_f(k, c, 1));
	if (m > 0) {
		int64_t ext[3] = {nb, m, m};
		int32_t idx = mat_at(k, v0, v1, v2, m);
		s = map_stage(k, 3, ext);
		if (!s)
			return MPCC_ERR_NOMEM;
		kir_stage_store(k, s, ba, idx, kir_cast(k, c, kir_load(k, bx, idx)));
	}
	for (int64_t kk = 0; kk + 1 < m; kk++) {
		int32_t kc = kir_iconst(k, kk);
		/* pivot row: first maximum of |A[b][i][kk]| for i >= kk */
		int64_t rows = m - kk;
		int32_t cand = kir_unary(
		    k, KIR_ABS, kir_load(k, ba, mat_at(k, v0, kir_iadd(k, v1, kc), kc, m)));
		s = kir_stage_add(k, 1, &nb, 1, &rows, KIR_RED_ARGMAX, MPCC_DTYPE_I64, cand);
		if (!s)
			return MPCC_ERR_NOMEM;
		kir_stage_store(k, s, bpiv, v0, kir_iadd(k, kir_acc(k, MPCC_DTYPE_I64), kc));
		/* copy rows kk and piv out, then back swapped; flip the sign */
		int32_t p = kir_load(k, bpiv, v0);
		int64_t ext2[2] = {nb, m};
		int32_t r0 = kir_iadd(k, kir_imul(k, v0, 2 * m), v1);
		int32_t r1 = kir_iadd(k, r0, kir_iconst(k, m));
		s = map_stage(k, 2, ext2);
		if (!s)
			return MPCC_ERR_NOMEM;
		kir_stage_store(k, s, brows, r0, kir_load(k, ba, mat_at(k, v0, kc, v1, m)));
		kir_stage_store(k, s, brows, r1, kir_load(k, ba, mat_at(k, v0, p, v1, m)));
		s = map_stage(k, 2, ext2);
		if (!s)
			return MPCC_ERR_NOMEM;
		kir_stage_store(k, s, ba, mat_at(k, v0, p, v1, m), kir_load(k, brows, r0));
		kir_stage_store(k, s, ba, mat_at(k, v0, kc, v1, m), kir_load(k, brows, r1));
		s = map_stage(k, 1, &nb);
		if (!s)
			return MPCC_ERR_NOMEM;
		int32_t flip = kir_binary(k, KIR_NE, p, kc);
		int32_t sg = kir_load(k, bsign, v0);
		kir_stage_store(k, s, bsign, v0,
		                kir_select(k, flip, kir_unary(k, KIR_NEG, sg), sg));
		/* multipliers for rows below kk */
		int32_t piv = kir_load(k, ba, mat_at(k, v0, kc, kc, m));
		int32_t zero = kir_const_f(k, c, 0);
		int32_t below = kir_iadd(k, v1, kir_iconst(k, kk + 1));
		int32_t fac = kir_select(
		    k, kir_binary(k, KIR_EQ, piv, zero), zero,
		    kir_binary(k, KIR_DIV, kir_load(k, ba, mat_at(k, v0, below, kc, m)), piv));
		int64_t ext3[3] = {nb, m - kk - 1, m - kk};
		s = map_stage(k, 2, ext3);
		if (!s)
			return MPCC_ERR_NOMEM;
		kir_stage_store(k, s, bfac, kir_iadd(k, kir_imul(k, v0, m), below), fac);
		/* A[i][j] -= fac[i] * A[kk][j] for i > kk, j >= kk */
		int32_t col = kir_iadd(k, v2, kc);
		int32_t at = mat_at(k, v0, below, col, m);
		int32_t upd =
		    kir_binary(k, KIR_SUB, kir_load(k, ba, at),
		               kir_binary(k, KIR_MUL,
		                          kir_load(k, bfac, kir_iadd(k, kir_imul(k, v0, m), below)),
		                          kir_load(k, ba, mat_at(k, v0, kc, col, m))));
		s = map_stage(k, 3, ext3);
		if (!s)
			return MPCC_ERR_NOMEM;
		kir_stage_store(k, s, ba, at, upd);
	}
	int32_t diag = m > 0 ? kir_load(k, ba, mat_at(k, v0, v1, v1, m)) : kir_const_f(k, c, 1);
	int64_t red = m > 0 ? m : 1;
	s = kir_stage_add(k, 1, &nb, 1, &red, KIR_RED_PROD, c, diag);
	if (!s)
		return MPCC_ERR_NOMEM;
	int32_t det = kir_binary(k, KIR_MUL, kir_acc(k, c), kir_load(k, bsign, v0));
	kir_stage_store(k, s, by, v0, kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, det));
	return MPCC_OK;
}
