/*
 * autodiff_nn.c - the gradient rules of convolution, pooling,
 * LayerNormalization and BatchNormalization (passes/autodiff.c is the driver;
 * passes/autodiff_rules.c has the other families).
 *
 * Conv's input gradient is a ConvTranspose and its weight gradient a Conv
 * with strides and dilations swapped; pooling spreads dY back with
 * ScatterND (max) or a ConvTranspose of ones (average). The window geometry
 * of Conv and the pools comes from ops/nn_impl.h, the same code the ops'
 * shape functions and lowerings use, so auto_pad, ceil mode and dilations
 * cannot be read differently here. That header is internal to ops/; it is
 * included here on purpose, and only here outside ops/: ops/ops.h exports
 * no geometry (only the rule tables), and a second copy of the auto_pad and
 * ceil-mode arithmetic would be worse than reaching for mpcc_nn_window,
 * mpcc_nn_window_geometry and mpcc_nn_conv_geometry where they live.
 */
#include <stdlib.h>
#include <string.h>

#include "ops/nn_impl.h"
#include "passes/autodiff_impl.h"

/* ---------------------------------------------------------------- normalisation */

/*
 * LayerNormalization: x^ = (x - mean) inv, inv = 1/sqrt(var + eps) over the
 * axes from `axis`, recomputed here. dX = inv (g - mean(g) - x^ mean(g x^))
 * with g = dY scale; dScale and dB are dY x^ and dY unbroadcast.
 */
static void
grad_layernorm(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	int32_t x = MPCC_AD_IN(0), sc = MPCC_AD_IN(1);
	mpcc_ad_shape xs = mpcc_ad_shape_of(a, x);
	mpcc_dtype t = mpcc_ad_dtype_of(a, x);
	int64_t axes[MPCC_MAX_RANK];
	int n = mpcc_ad_axes_from(mpcc_axis(mpcc_node_attr_int(&a->n, "axis", -1), xs.rank),
	                          xs.rank, axes);
	for (int j = 1; j < a->n.n_out; j++)
		if (MPCC_AD_OUT(j) != MPCC_NONE && dy[j] != MPCC_NONE) {
			mpcc_ad_unsupported(a, "a gradient through Mean or InvStdDev");
			return;
		}
	if (mpcc_ad_dtype_of(a, sc) != t ||
	    (MPCC_AD_HAS_IN(2) && mpcc_ad_dtype_of(a, MPCC_AD_IN(2)) != t)) {
		mpcc_ad_unsupported(a, "Scale or B of another dtype than X");
		return;
	}
	int32_t g = dy[0];
	int32_t xc = mpcc_ad_op2(a, MPCC_OP_SUB, "xc", x,
	                         mpcc_ad_reduce(a, MPCC_OP_REDUCEMEAN, x, n, axes, true));
	int32_t var = mpcc_ad_reduce(a, MPCC_OP_REDUCEMEAN, mpcc_ad_mul(a, xc, xc), n, axes, true);
	double eps = mpcc_node_attr_float(&a->n, "epsilon", 1e-5f);
	int32_t inv = mpcc_ad_op1(a, MPCC_OP_RECIPROCAL, "inv",
	                          mpcc_ad_op1(a, MPCC_OP_SQRT, "std", mpcc_ad_addc(a, var, eps)));
	int32_t xh = mpcc_ad_mul(a, xc, inv);
	if (need[0]) {
		int32_t gx = mpcc_ad_mul(a, g, sc);
		int32_t m1 = mpcc_ad_reduce(a, MPCC_OP_REDUCEMEAN, gx, n, axes, true);
		int32_t m2 =
		    mpcc_ad_reduce(a, MPCC_OP_REDUCEMEAN, mpcc_ad_mul(a, gx, xh), n, axes, true);
		int32_t c =
		    mpcc_ad_op2(a, MPCC_OP_SUB, "c", mpcc_ad_op2(a, MPCC_OP_SUB, "gx_m1", gx, m1),
		                mpcc_ad_mul(a, xh, m2));
		dx[0] = mpcc_ad_mul(a, inv, c);
	}
	if (need[1])
		dx[1] = mpcc_ad_unbroadcast(a, mpcc_ad_mul(a, g, xh), mpcc_ad_shape_of(a, sc));
	if (MPCC_AD_HAS_IN(2) && need[2])
		dx[2] = mpcc_ad_unbroadcast(a, g, mpcc_ad_shape_of(a, MPCC_AD_IN(2)));
}

/*
 * BatchNormalization in inference form (the statistics are inputs; the
 * training form is refused by its shape function, and `--train` rewrites
 * each BatchNormalization it trains into ordinary ops, passes/train_modes.c).
 * Per channel c (dim 1), with inv = 1/sqrt(var + eps) and the sums over
 * every axis but 1: y = (x - mean) inv scale + B, so dX = dY scale inv,
 * dScale = sum(dY (x - mean) inv), dB = sum(dY), dMean = -sum(dY) scale
 * inv and dVar = -sum(dY (x - mean)) scale inv^3 / 2.
 */
static void
grad_batchnorm(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	int32_t x = MPCC_AD_IN(0), g = dy[0];
	mpcc_ad_shape xs = mpcc_ad_shape_of(a, x), cs = {xs.rank, {1}};
	mpcc_dtype t = mpcc_ad_dtype_of(a, x);
	int64_t axes[MPCC_MAX_RANK];
	int n = 0;
	for (int i = 1; i <= 4; i++)
		if (mpcc_ad_dtype_of(a, MPCC_AD_IN(i)) != t) {
			mpcc_ad_unsupported(a, "scale, B, mean or var of another dtype than X");
			return;
		}
	for (int i = 0; i < xs.rank; i++) {
		cs.dims[i] = i == 1 ? xs.dims[1] : 1;
		if (i != 1)
			axes[n++] = i;
	}
	double eps = mpcc_node_attr_float(&a->n, "epsilon", 1e-5f);
	int32_t sc = MPCC_AD_IN(1);
	int32_t sd = mpcc_ad_op1(a, MPCC_OP_SQRT, "std", mpcc_ad_addc(a, MPCC_AD_IN(4), eps));
	int32_t inv = mpcc_ad_op1(a, MPCC_OP_RECIPROCAL, "inv", sd);
	int32_t scale_inv = mpcc_ad_mul(a, sc, inv); /* [C] */
	int32_t sum_g = MPCC_NONE, sum_gxc = MPCC_NONE;
	if (need[2] || need[3])
		sum_g = mpcc_ad_reduce(a, MPCC_OP_REDUCESUM, g, n, axes, false);
	if (need[1] || need[4]) {
		int32_t xc =
		    mpcc_ad_op2(a, MPCC_OP_SUB, "xc", x, mpcc_ad_reshape(a, MPCC_AD_IN(3), cs));
		sum_gxc =
		    mpcc_ad_reduce(a, MPCC_OP_REDUCESUM, mpcc_ad_mul(a, g, xc), n, axes, false);
	}
	if (need[0])
		dx[0] = mpcc_ad_mul(a, g, mpcc_ad_reshape(a, scale_inv, cs));
	if (need[1])
		dx[1] = mpcc_ad_mul(a, sum_gxc, inv);
	if (need[2])
		dx[2] = sum_g;
	if (need[3])
		dx[3] = mpcc_ad_op1(a, MPCC_OP_NEG, "dMean", mpcc_ad_mul(a, sum_g, scale_inv));
	if (need[4])
		dx[4] = mpcc_ad_mulc(
		    a, mpcc_ad_mul(a, mpcc_ad_mul(a, sum_gxc, scale_inv), mpcc_ad_mul(a, inv, inv)),
		    -0.5);
}

/* ---------------------------------------------------------------- convolution and pooling */

/*
 * The transposed convolution that spreads an output-shaped gradient g over
 * the input positions of window geometry w: strides and dilations as the
 * forward op, its begin pads, and the end pad (or output padding) that makes
 * the result exactly the forward input's spatial size.
 */
static int32_t
conv_transpose(mpcc_ad *a, const char *what, int32_t g, int32_t k, const mpcc_nn_window *w,
               int64_t group)
{
	int sp = w->n_sp;
	int64_t pads[2 * MPCC_MAX_RANK], opad[MPCC_MAX_RANK];
	for (int i = 0; i < sp; i++) {
		int64_t full = w->stride[i] * (w->out[i] - 1) + (w->kernel[i] - 1) * w->dil[i] + 1;
		int64_t pe = full - w->pad_b[i] - w->in[i];
		pads[i] = w->pad_b[i];
		pads[sp + i] = pe > 0 ? pe : 0;
		opad[i] = pe < 0 ? -pe : 0;
	}
	int32_t in[2] = {g, k};
	int32_t ni = mpcc_ad_node_new(a, MPCC_OP_CONVTRANSPOSE, what, 2, in, 1);
	mpcc_ad_attr_ints(a, ni, "strides", sp, w->stride);
	mpcc_ad_attr_ints(a, ni, "dilations", sp, w->dil);
	mpcc_ad_attr_ints(a, ni, "pads", 2 * sp, pads);
	mpcc_ad_attr_ints(a, ni, "output_padding", sp, opad);
	if (group != 1)
		mpcc_ad_attr_int(a, ni, "group", group);
	return mpcc_ad_node_done(a, ni);
}

/* Swaps dims 0 and 1 (N and C). */
static int32_t
transpose_nc(mpcc_ad *a, int32_t x, int r)
{
	int64_t perm[MPCC_MAX_RANK];
	for (int i = 0; i < r; i++)
		perm[i] = i;
	perm[0] = 1;
	perm[1] = 0;
	return mpcc_ad_transpose(a, x, r, perm);
}

/*
 * A grouped Conv's dW operands: t of shape (N, G K, ...) split to (N, G, K,
 * ...), its first three dims permuted by lead (the rest kept), and two
 * adjacent ones of those merged: X (lead 2,1,0, the last two merged)
 * becomes (K, G N, ...), dY (lead 1,2,0, the first two) (G K, N, ...).
 */
static int32_t
group_major(mpcc_ad *a, int32_t t, mpcc_ad_shape ts, int64_t group, const int64_t *lead,
            bool merge_first)
{
	mpcc_ad_shape split = {ts.rank + 1, {ts.dims[0], group, ts.dims[1] / group}};
	int64_t perm[MPCC_MAX_RANK];
	for (int i = 2; i < ts.rank; i++)
		split.dims[i + 1] = ts.dims[i];
	for (int i = 0; i < split.rank; i++)
		perm[i] = i < 3 ? lead[i] : i;
	int32_t p = mpcc_ad_transpose(a, mpcc_ad_reshape(a, t, split), split.rank, perm);
	int64_t d0 = split.dims[lead[0]], d1 = split.dims[lead[1]], d2 = split.dims[lead[2]];
	mpcc_ad_shape merged = {ts.rank, {merge_first ? d0 * d1 : d0, merge_first ? d2 : d1 * d2}};
	for (int i = 2; i < ts.rank; i++)
		merged.dims[i] = ts.dims[i];
	return mpcc_ad_reshape(a, p, merged);
}

/*
 * Conv. dX: ConvTranspose of dY with W (any group). dW: for each (m, c, k),
 * the sum over n and o of dY[n,m,o] X[n,c,o*s + k*d - p], which is a Conv
 * of X^T (C, N, ...) with dY^T (M, N, ...) as weights, strides and
 * dilations swapped; end padding makes it reach every kernel offset and a
 * Slice crops the offsets beyond the kernel. With G groups (C = G Cg,
 * M = G Mg) the same Conv runs grouped: its input X as (Cg, G N, ...) and
 * its weights dY as (G Mg, N, ...), so group g pairs X's channels of group
 * g with dY's, and the result (Cg, G Mg, ...) transposes to W's layout.
 * dB: dY summed but over M.
 */
static void
grad_conv(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	int32_t x = MPCC_AD_IN(0), wt = MPCC_AD_IN(1), g = dy[0];
	mpcc_ad_shape xs = mpcc_ad_shape_of(a, x), ws = mpcc_ad_shape_of(a, wt);
	int r = xs.rank, sp = r - 2;
	int64_t group = mpcc_node_attr_int(&a->n, "group", 1);
	mpcc_nn_window w;
	mpcc_status st =
	    mpcc_nn_conv_geometry(&a->n, &a->g->values[x], &a->g->values[wt], &w, a->d);
	if (st) {
		a->st = st;
		return;
	}
	if (need[0])
		dx[0] = conv_transpose(a, "dX", g, wt, &w, group);
	if (need[1]) {
		int64_t pads[2 * MPCC_MAX_RANK], starts[MPCC_MAX_RANK], ends[MPCC_MAX_RANK],
		    axes[MPCC_MAX_RANK];
		bool crop = false;
		for (int i = 0; i < sp; i++) {
			int64_t span = (w.out[i] - 1) * w.stride[i] + 1;
			int64_t pe = (w.kernel[i] - 1) * w.dil[i] + span - w.in[i] - w.pad_b[i];
			pads[i] = w.pad_b[i];
			pads[sp + i] = pe > 0 ? pe : 0;
			crop = crop || pe < 0;
			starts[i] = 0;
			ends[i] = ws.dims[2 + i];
			axes[i] = 2 + i;
		}
		int32_t in[2] = {transpose_nc(a, x, r), transpose_nc(a, g, r)};
		if (group != 1) {
			in[0] = group_major(a, x, xs, group, (int64_t[]){2, 1, 0}, false);
			in[1] = group_major(a, g, mpcc_ad_shape_of(a, g), group, (int64_t[]){1, 2, 0},
			                    true);
		}
		int32_t ni = mpcc_ad_node_new(a, MPCC_OP_CONV, "dW_cm", 2, in, 1);
		mpcc_ad_attr_ints(a, ni, "strides", sp, w.dil);
		mpcc_ad_attr_ints(a, ni, "dilations", sp, w.stride);
		mpcc_ad_attr_ints(a, ni, "pads", 2 * sp, pads);
		if (group != 1)
			mpcc_ad_attr_int(a, ni, "group", group);
		int32_t c = mpcc_ad_node_done(a, ni);
		if (crop)
			c = mpcc_ad_slice(a, c, sp, starts, ends, axes);
		dx[1] = transpose_nc(a, c, r);
	}
	if (MPCC_AD_HAS_IN(2) && need[2]) {
		int64_t axes[MPCC_MAX_RANK] = {0};
		int n = 1 + mpcc_ad_axes_from(2, r, axes + 1);
		dx[2] = mpcc_ad_reduce(a, MPCC_OP_REDUCESUM, g, n, axes, false);
	}
}

/*
 * MaxPool: dY goes to the position the window's maximum came from. The
 * Indices output of MaxPool (the forward node's, or a recomputation's)
 * names it as a flat index into X; a ScatterND with reduction add sums the
 * gradients of overlapping windows. Ties go to the first maximum in window
 * order, the one Indices reports, so the choice is deterministic.
 */
static void
grad_maxpool(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	mpcc_ad_shape xs = mpcc_ad_shape_of(a, MPCC_AD_IN(0)),
	              ys = mpcc_ad_shape_of(a, MPCC_AD_OUT(0));
	int32_t ind = a->n.n_out > 1 ? MPCC_AD_OUT(1) : MPCC_NONE;
	if (!need[0])
		return;
	if (ind == MPCC_NONE || mpcc_node_attr_int(&a->n, "storage_order", 0) != 0) {
		int32_t x = MPCC_AD_IN(0);
		int32_t ni = mpcc_ad_node_new(a, MPCC_OP_MAXPOOL, "pool", 1, &x, 2);
		for (int i = 0; i < a->n.n_attr && !a->st; i++)
			if (strcmp(a->n.attr[i].name, "storage_order")) {
				mpcc_attr *at =
				    mpcc_ad_attr(a, ni, a->n.attr[i].name, a->n.attr[i].kind);
				if (at)
					*at = a->n.attr[i];
			}
		if (mpcc_ad_node_done(a, ni) != MPCC_NONE)
			ind = a->g->nodes[ni].out[1];
	}
	int64_t ny = mpcc_ad_numel(ys);
	mpcc_ad_shape is = {2, {ny, 1}}, fs = {1, {mpcc_ad_numel(xs)}}, us = {1, {ny}};
	int32_t in[3] = {mpcc_ad_zeros(a, mpcc_ad_dtype_of(a, MPCC_AD_IN(0)), fs),
	                 mpcc_ad_reshape(a, ind, is), mpcc_ad_reshape(a, dy[0], us)};
	int32_t ni = mpcc_ad_node_new(a, MPCC_OP_SCATTERND, "scatter", 3, in, 1);
	mpcc_ad_attr_str(a, ni, "reduction", "add");
	dx[0] = mpcc_ad_reshape(a, mpcc_ad_node_done(a, ni), xs);
}

/*
 * AveragePool: dY over each window's divisor (counted here exactly as the
 * lowering counts admissible points: padding counts with count_include_pad),
 * spread over the window by a ConvTranspose with a kernel of ones, per
 * channel (N*C as the batch). GlobalAveragePool: dY / count, expanded.
 */
static void
grad_avgpool(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx)
{
	mpcc_ad_shape xs = mpcc_ad_shape_of(a, MPCC_AD_IN(0)),
	              ys = mpcc_ad_shape_of(a, MPCC_AD_OUT(0));
	mpcc_dtype t = mpcc_ad_dtype_of(a, MPCC_AD_IN(0));
	int sp = xs.rank - 2;
	if (!need[0])
		return;
	if (a->n.op == MPCC_OP_GLOBALAVERAGEPOOL) {
		double cnt = (double)mpcc_ad_numel(xs) / (double)(xs.dims[0] * xs.dims[1]);
		dx[0] = mpcc_ad_expand(a, mpcc_ad_mulc(a, dy[0], 1.0 / cnt), xs);
		return;
	}
	const mpcc_attr *ka = mpcc_node_attr(&a->n, "kernel_shape");
	mpcc_nn_window w;
	if (!ka || ka->n != sp) {
		mpcc_ad_unsupported(a, "a pool without kernel_shape");
		return;
	}
	mpcc_status st =
	    mpcc_nn_window_geometry(&a->n, &a->g->values[MPCC_AD_IN(0)], ka->ints,
	                            mpcc_node_attr_int(&a->n, "ceil_mode", 0) != 0, &w, a->d);
	if (st) {
		a->st = st;
		return;
	}
	bool incl = mpcc_node_attr_int(&a->n, "count_include_pad", 0) != 0;
	mpcc_ad_shape os = {sp, {0}}, ks = {xs.rank, {1, 1}},
	              bs = {xs.rank, {xs.dims[0] * xs.dims[1], 1}};
	for (int i = 0; i < sp; i++) {
		os.dims[i] = ys.dims[2 + i];
		ks.dims[2 + i] = w.kernel[i];
		bs.dims[2 + i] = ys.dims[2 + i];
	}
	int64_t no = mpcc_ad_numel(os);
	double *inv = malloc(sizeof(double) * (size_t)(no ? no : 1));
	if (!inv) {
		mpcc_ad_nomem(a);
		return;
	}
	for (int64_t e = 0; e < no; e++) {
		int64_t rem = e, cnt = 1;
		for (int i = sp - 1; i >= 0; i--) {
			int64_t o = rem % os.dims[i], c = 0;
			int64_t lo = incl ? -w.pad_b[i] : 0,
			        hi = incl ? w.in[i] + w.pad_e[i] : w.in[i];
			rem /= os.dims[i];
			for (int64_t k = 0; k < w.kernel[i]; k++) {
				int64_t p = o * w.stride[i] + k * w.dil[i] - w.pad_b[i];
				c += p >= lo && p < hi;
			}
			cnt *= c;
		}
		inv[e] = cnt ? 1.0 / (double)cnt : 0.0;
	}
	int32_t scale = mpcc_ad_cst_float(a, "inv_count", t, os, inv, 0);
	free(inv);
	int32_t g = mpcc_ad_reshape(a, mpcc_ad_mul(a, dy[0], scale), bs);
	int32_t s = conv_transpose(a, "dX", g, mpcc_ad_cst_float(a, "ones", t, ks, NULL, 1), &w, 1);
	dx[0] = mpcc_ad_reshape(a, s, xs);
}

/* ---------------------------------------------------------------- the rule table */

/* Ended by MPCC_OP_INVALID; the driver searches it second. */
const mpcc_ad_rule mpcc_ad_rules_nn[] = {
    {MPCC_OP_LAYERNORMALIZATION, grad_layernorm},
    {MPCC_OP_BATCHNORMALIZATION, grad_batchnorm},
    {MPCC_OP_CONV, grad_conv},
    {MPCC_OP_MAXPOOL, grad_maxpool},
    {MPCC_OP_AVERAGEPOOL, grad_avgpool},
    {MPCC_OP_GLOBALAVERAGEPOOL, grad_avgpool},
    {MPCC_OP_INVALID, NULL},
};
