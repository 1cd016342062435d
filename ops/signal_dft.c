/*
 * ops/signal_dft.c - DFT and STFT, both as a direct O(N^2) transform in
 * kernel IR.
 *
 * A complex value is the last dim of a tensor: 1 (real) or 2 (real,
 * imaginary). Output component p of bin k is a reduction over the samples n,
 *
 *   y[k][p] = sum_n sum_q x[n][q] * W[p][q][(k * n) mod N],
 *
 * where W holds the four real coefficients of the twiddle factor
 * exp(-+2 pi i j / N) (sign by direction). Each kernel first fills W into a
 * TEMP table of 4N entries (one stage of N points computing cos and sin in
 * f64, rounded once to the compute dtype), then runs one reduction stage
 * over the output with the sum over n. Reducing k * n modulo N in integers
 * keeps every angle in [0, 2 pi) and makes the twiddles exact table lookups:
 * no sin/cos per term, no precision lost to large arguments, and the
 * twiddles of a real spectrum's symmetric bins are bit-identical. An FFT
 * would be O(N log N), but needs a data-dependent stage structure per N;
 * this is one reduction every backend parallelises over the output.
 *
 * Zero padding to a longer dft_length needs no data: the padded samples
 * contribute nothing, so the reduction stops at the input's length. A shorter
 * dft_length stops it at N (truncation). onesided keeps the first N/2 + 1
 * bins. The inverse transform flips the sign and divides by N.
 */
#include <math.h>
#include <string.h>

#include "ops/signal_impl.h"

const char *const mpcc_sig_attrs_dft[] = {"axis", "inverse", "onesided", NULL};
const char *const mpcc_sig_attrs_stft[] = {"onesided", NULL};

/* The dtype float math runs in for a buffer stored as t. */
static mpcc_dtype
compute_dtype(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F64 ? MPCC_DTYPE_F64 : MPCC_DTYPE_F32;
}

/* A 0/1 attribute. */
static mpcc_status
flag_attr(const mpcc_node *n, const char *name, int64_t dflt, bool *out, mpcc_diag *d)
{
	int64_t v = mpcc_node_attr_int(n, name, dflt);
	if (v != 0 && v != 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "%s must be 0 or 1, not %lld", name,
		                       (long long)v);
	*out = v != 0;
	return MPCC_OK;
}

/* A float tensor whose last dim holds a real (1) or complex (2) value. */
static mpcc_status
check_complex(const mpcc_node *n, const mpcc_value *x, const char *what, mpcc_diag *d)
{
	if (!mpcc_dtype_is_float(x->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "%s must be float, not %s", what,
		                       mpcc_dtype_name(x->dtype));
	if (x->rank < 2 || (x->dims[x->rank - 1] != 1 && x->dims[x->rank - 1] != 2))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "%s must have rank >= 2 and a last dim of 1 (real) or 2 "
		                       "(complex)",
		                       what);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- the shared transform */

typedef struct xform {
	kir_kernel *k;
	mpcc_dtype c; /* compute dtype */
	int64_t n;    /* transform length N */
	bool inverse;
	int tab; /* TEMP: W[p][q][j], 4N entries */
} xform;

/*
 * Fills the twiddle table: forward exp(-i a) = cos a - i sin a gives
 * W[0][0] = cos, W[0][1] = sin, W[1][0] = -sin, W[1][1] = cos for
 * (re, im) = (xr cos + xi sin, xi cos - xr sin); the inverse flips the sines.
 */
static mpcc_status
xform_init(xform *t, kir_kernel *k, mpcc_dtype c, int64_t n, bool inverse)
{
	const mpcc_dtype f = MPCC_DTYPE_F64;
	*t = (xform){.k = k, .c = c, .n = n, .inverse = inverse};
	t->tab = kir_buf_add(k, c, KIR_BUF_TEMP, MPCC_NONE, 4 * n);
	int32_t j = kir_var(k, 0);
	int32_t a =
	    kir_binary(k, KIR_MUL, kir_cast(k, f, j), kir_const_f(k, f, 2.0 * M_PI / (double)n));
	int32_t cs = kir_cast(k, c, kir_unary(k, KIR_COS, a));
	int32_t sn = kir_cast(k, c, kir_unary(k, KIR_SIN, a));
	int32_t nsn = kir_unary(k, KIR_NEG, sn);
	int32_t w[4] = {cs, inverse ? nsn : sn, inverse ? sn : nsn, cs};
	kir_stage *s = kir_stage_add(k, 1, &n, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
	if (!s)
		return MPCC_ERR_NOMEM;
	for (int i = 0; i < 4; i++)
		kir_stage_store(k, s, t->tab, kir_iadd(k, kir_iconst(k, i * n), j), w[i]);
	return MPCC_OK;
}

/*
 * The reduction stage over the output (rank dims, last dim the component p):
 * the sum over the reduction var n of xq[q] * W[p][q][(bin * n) mod N], where
 * xq[] are the n_q input components already loaded (in the compute dtype) at
 * the sample that n selects. Stores into buffer by at the output's
 * row-major index.
 */
static mpcc_status
xform_stage(const xform *t, int rank, const int64_t *dims, const int32_t *vars, int32_t bin,
            int32_t nvar, int64_t red_len, const int32_t *xq, int n_q, int by)
{
	kir_kernel *k = t->k;
	int32_t p = vars[rank - 1];
	int32_t j = kir_binary(k, KIR_REM, kir_binary(k, KIR_MUL, bin, nvar), kir_iconst(k, t->n));
	int32_t row = kir_iadd(k, kir_imul(k, p, 2 * t->n), j);
	int32_t sum = MPCC_NONE;
	for (int q = 0; q < n_q; q++) {
		int32_t w = kir_load(k, t->tab, kir_iadd(k, row, kir_iconst(k, q * t->n)));
		int32_t term = kir_binary(k, KIR_MUL, xq[q], w);
		sum = q == 0 ? term : kir_binary(k, KIR_ADD, sum, term);
	}
	kir_stage *s = kir_stage_add(k, rank, dims, 1, &red_len, KIR_RED_SUM, t->c, sum);
	if (!s)
		return MPCC_ERR_NOMEM;
	int32_t v = kir_acc(k, t->c);
	if (t->inverse)
		v = kir_binary(k, KIR_DIV, v, kir_const_f(k, t->c, (double)t->n));
	kir_stage_store(k, s, by, mpcc_lower_linear(k, rank, dims, vars),
	                kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, v));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- DFT */

typedef struct dft_params {
	int axis;     /* the transformed axis of the input */
	int64_t len;  /* its length */
	int64_t n;    /* transform length: dft_length, else len */
	int64_t bins; /* output length along the axis */
	bool inverse, onesided;
} dft_params;

/*
 * Opset 17 takes the axis as an attribute (default 1); opset 20 as an
 * optional third input (default -2). Either way it may count from the end
 * and must not be the last (complex) dim. With onesided, only the first
 * N/2 + 1 bins are returned, of either direction, as the opset 17 reference
 * does; opset 20 redefined inverse + onesided as a real inverse of a half
 * spectrum, which is not implemented.
 */
static mpcc_status
dft_get(mpcc_graph *g, const mpcc_node *n, dft_params *p, mpcc_diag *d)
{
	const mpcc_value *x = mpcc_sig_in(g, n, 0);
	if (!x)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input");
	mpcc_status st = check_complex(n, x, "input", d);
	if (st)
		return st;
	int64_t a64;
	if (n->opset >= 20) {
		if (mpcc_node_attr(n, "axis"))
			return mpcc_node_error(
			    d, n, MPCC_ERR_INVALID,
			    "since opset 20, axis is an input, not an attribute");
		a64 = -2;
		if (mpcc_sig_in(g, n, 2) && (st = mpcc_sig_const_int(g, n, 2, "axis", &a64, d)))
			return st;
	} else {
		if (n->n_in > 2)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "before opset 20, DFT takes at most 2 inputs");
		a64 = mpcc_node_attr_int(n, "axis", 1);
	}
	p->axis = mpcc_axis(a64, x->rank);
	if (p->axis < 0 || p->axis == x->rank - 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "axis %lld out of range for rank %d (the last dim holds the "
		                       "complex value)",
		                       (long long)a64, x->rank);
	if ((st = flag_attr(n, "inverse", 0, &p->inverse, d)) ||
	    (st = flag_attr(n, "onesided", 0, &p->onesided, d)))
		return st;
	if (n->opset >= 20 && p->inverse && p->onesided)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
		                       "inverse with onesided (a real inverse of a half spectrum) "
		                       "is not supported");
	p->len = x->dims[p->axis];
	p->n = p->len;
	if (mpcc_sig_in(g, n, 1) && (st = mpcc_sig_const_int(g, n, 1, "dft_length", &p->n, d)))
		return st;
	if (p->n < 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "the transform length must be positive, not %lld",
		                       (long long)p->n);
	p->bins = p->onesided ? p->n / 2 + 1 : p->n;
	return MPCC_OK;
}

mpcc_status
mpcc_sig_infer_dft(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	dft_params p = {0};
	mpcc_status st = dft_get(g, n, &p, d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_sig_in(g, n, 0);
	mpcc_value *y = mpcc_sig_out(g, n, 0);
	if (!y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing output");
	int64_t dims[MPCC_MAX_RANK];
	memcpy(dims, x->dims, sizeof dims);
	dims[p.axis] = p.bins;
	dims[x->rank - 1] = 2;
	mpcc_sig_set(y, x->dtype, x->rank, dims);
	return MPCC_OK;
}

mpcc_status
mpcc_sig_lower_dft(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	dft_params p = {0};
	mpcc_status st = dft_get(g, n, &p, lx->d);
	if (st)
		return st;
	const mpcc_value *x = mpcc_sig_in(g, n, 0), *y = mpcc_sig_out(g, n, 0);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	if (mpcc_value_numel(y) == 0)
		return MPCC_OK;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	mpcc_dtype c = compute_dtype((mpcc_dtype)k->bufs[bx].dtype);
	xform t;
	if ((st = xform_init(&t, k, c, p.n, p.inverse)))
		return st;

	int rank = x->rank, n_q = (int)x->dims[rank - 1];
	int32_t ov[MPCC_MAX_RANK], iv[MPCC_MAX_RANK], xq[2];
	mpcc_lower_vars(k, 0, rank, ov);
	int32_t nvar = kir_var(k, rank);
	memcpy(iv, ov, sizeof(int32_t) * (size_t)rank);
	iv[p.axis] = nvar;
	for (int q = 0; q < n_q; q++) {
		iv[rank - 1] = kir_iconst(k, q);
		xq[q] = kir_cast(k, c, kir_load(k, bx, mpcc_lower_linear(k, rank, x->dims, iv)));
	}
	int64_t red_len = p.len < p.n ? p.len : p.n;
	return xform_stage(&t, rank, y->dims, ov, ov[p.axis], nvar, red_len, xq, n_q, by);
}

/* ---------------------------------------------------------------- STFT */

typedef struct stft_params {
	int64_t batch, len; /* signal [batch][len][n_q] */
	int n_q;
	int64_t step; /* frame_step */
	int64_t n;    /* frame (and DFT) length */
	int64_t frames, bins;
	bool onesided;
	bool window;
} stft_params;

/*
 * The frame length is frame_length, else the window's length, else the
 * whole signal; a window given with frame_length must match it. Frames
 * start every frame_step samples while a whole frame fits:
 * 1 + (len - N) / step of them. onesided defaults to 1 here.
 */
static mpcc_status
stft_get(mpcc_graph *g, const mpcc_node *n, stft_params *p, mpcc_diag *d)
{
	const mpcc_value *x = mpcc_sig_in(g, n, 0), *w = mpcc_sig_in(g, n, 2);
	if (!x)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input signal");
	mpcc_status st = check_complex(n, x, "signal", d);
	if (st)
		return st;
	if (x->rank != 3)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "signal must be [batch][length][1 or 2], not rank %d",
		                       x->rank);
	p->batch = x->dims[0];
	p->len = x->dims[1];
	p->n_q = (int)x->dims[2];
	if ((st = mpcc_sig_const_int(g, n, 1, "frame_step", &p->step, d)))
		return st;
	if (p->step < 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "frame_step must be positive, not %lld", (long long)p->step);
	p->window = w != NULL;
	if (w && (w->rank != 1 || !mpcc_dtype_is_float(w->dtype)))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "window must be a 1-D float tensor");
	p->n = w ? w->dims[0] : p->len;
	if (mpcc_sig_in(g, n, 3)) {
		int64_t fl;
		if ((st = mpcc_sig_const_int(g, n, 3, "frame_length", &fl, d)))
			return st;
		if (w && fl != w->dims[0])
			return mpcc_node_error(
			    d, n, MPCC_ERR_INVALID,
			    "frame_length %lld differs from the window's length %lld",
			    (long long)fl, (long long)w->dims[0]);
		p->n = fl;
	}
	if (p->n < 1 || p->n > p->len)
		return mpcc_node_error(
		    d, n, MPCC_ERR_INVALID,
		    "frame length %lld must be in [1, %lld], the signal's length", (long long)p->n,
		    (long long)p->len);
	if ((st = flag_attr(n, "onesided", 1, &p->onesided, d)))
		return st;
	p->frames = 1 + (p->len - p->n) / p->step;
	p->bins = p->onesided ? p->n / 2 + 1 : p->n;
	return MPCC_OK;
}

mpcc_status
mpcc_sig_infer_stft(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	stft_params p = {0};
	mpcc_status st = stft_get(g, n, &p, d);
	if (st)
		return st;
	mpcc_value *y = mpcc_sig_out(g, n, 0);
	if (!y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing output");
	int64_t dims[4] = {p.batch, p.frames, p.bins, 2};
	mpcc_sig_set(y, mpcc_sig_in(g, n, 0)->dtype, 4, dims);
	return MPCC_OK;
}

/* Frame f's DFT over the samples f * step + n, each weighted by window[n]. */
mpcc_status
mpcc_sig_lower_stft(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	stft_params p = {0};
	mpcc_status st = stft_get(g, n, &p, lx->d);
	if (st)
		return st;
	const mpcc_value *y = mpcc_sig_out(g, n, 0);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	if (mpcc_value_numel(y) == 0)
		return MPCC_OK;
	int bx = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);
	int bw = p.window ? mpcc_lower_param(k, g, n->in[2]) : -1;
	mpcc_dtype c = compute_dtype((mpcc_dtype)k->bufs[bx].dtype);
	xform t;
	if ((st = xform_init(&t, k, c, p.n, false)))
		return st;

	int32_t ov[4], xq[2];
	mpcc_lower_vars(k, 0, 4, ov);
	int32_t nvar = kir_var(k, 4);
	/* sample (b, f * step + n) */
	int32_t pos =
	    kir_iadd(k, kir_imul(k, ov[0], p.len), kir_iadd(k, kir_imul(k, ov[1], p.step), nvar));
	int32_t wv = bw >= 0 ? kir_cast(k, c, kir_load(k, bw, nvar)) : MPCC_NONE;
	for (int q = 0; q < p.n_q; q++) {
		int32_t idx = kir_iadd(k, kir_imul(k, pos, p.n_q), kir_iconst(k, q));
		xq[q] = kir_cast(k, c, kir_load(k, bx, idx));
		if (bw >= 0)
			xq[q] = kir_binary(k, KIR_MUL, xq[q], wv);
	}
	return xform_stage(&t, 4, y->dims, ov, ov[2], nvar, p.n, xq, p.n_q, by);
}
