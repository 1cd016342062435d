/*
 * ops/signal.c - the signal family: HannWindow, HammingWindow,
 * BlackmanWindow and MelWeightMatrix here, with the family's table and shared
 * helpers; DFT and STFT live in ops/signal_dft.c.
 *
 * Every op here takes scalars that decide its output's shape (the window
 * size, the mel bin count and DFT length), so they must be known at compile
 * time: constants, or graph inputs frozen with --freeze. With them known, a
 * window is one stage whose value is a pure function of the element index (a
 * cosine sum evaluated in f64 and cast to output_datatype), and the mel
 * weight matrix is one stage whose value is a function of (bin, band): the
 * band edges are computed here in double precision, as the reference does,
 * and enter the kernel as a select chain of integer constants, so every
 * backend computes the same matrix. With constant inputs the pipeline folds
 * both into constants.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/signal_impl.h"

/* ---------------------------------------------------------------- shared helpers */

mpcc_value *
mpcc_sig_in(mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_in && n->in[i] != MPCC_NONE ? &g->values[n->in[i]] : NULL;
}

mpcc_value *
mpcc_sig_out(mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_out && n->out[i] != MPCC_NONE ? &g->values[n->out[i]] : NULL;
}

void
mpcc_sig_set(mpcc_value *v, mpcc_dtype t, int rank, const int64_t *dims)
{
	v->dtype = t;
	v->rank = rank;
	for (int i = 0; i < rank; i++) {
		v->dims[i] = dims[i];
		v->sym[i] = NULL;
	}
}

/* Input i as a compile-time scalar: present, constant and one element. */
static mpcc_status
const_scalar(mpcc_graph *g, const mpcc_node *n, int i, const char *what, mpcc_value **out,
             mpcc_diag *d)
{
	mpcc_value *v = mpcc_sig_in(g, n, i);
	*out = NULL;
	if (!v)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing input %s", what);
	const char *name = v->name ? v->name : "?";
	if (!(v->flags & MPCC_VALUE_CONST) || !v->data)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
		                       "%s input '%s' must be a constant: its value is needed at "
		                       "compile time (a graph input can be frozen: --freeze "
		                       "%s=FILE.npy)",
		                       what, name, name);
	if (mpcc_value_numel(v) != 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "%s must be a scalar ('%s' has %lld)", what, name,
		                       (long long)mpcc_value_numel(v));
	*out = v;
	return MPCC_OK;
}

mpcc_status
mpcc_sig_const_int(mpcc_graph *g, const mpcc_node *n, int i, const char *what, int64_t *out,
                   mpcc_diag *d)
{
	mpcc_value *v;
	mpcc_status st = const_scalar(g, n, i, what, &v, d);
	if (st)
		return st;
	if (!mpcc_dtype_is_int(v->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "%s must be an integer, not %s",
		                       what, mpcc_dtype_name(v->dtype));
	*out = mpcc_value_get_int(v, 0);
	return MPCC_OK;
}

mpcc_status
mpcc_sig_const_float(mpcc_graph *g, const mpcc_node *n, int i, const char *what, double *out,
                     mpcc_diag *d)
{
	mpcc_value *v;
	mpcc_status st = const_scalar(g, n, i, what, &v, d);
	if (st)
		return st;
	if (!mpcc_dtype_is_float(v->dtype))
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "%s must be a float, not %s", what,
		                       mpcc_dtype_name(v->dtype));
	*out = mpcc_value_get_double(v, 0);
	return MPCC_OK;
}

/* The output_datatype attribute (an ONNX TensorProto type, default FLOAT):
 * any numeric dtype. */
static mpcc_status
output_datatype(const mpcc_node *n, mpcc_dtype *out, mpcc_diag *d)
{
	int64_t t = mpcc_node_attr_int(n, "output_datatype", 1);
	mpcc_dtype dt = t >= 0 && t <= 64 ? mpcc_dtype_from_onnx((int)t) : MPCC_DTYPE_UNDEF;
	if (dt == MPCC_DTYPE_UNDEF || dt == MPCC_DTYPE_BOOL)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "output_datatype %lld is not a numeric type mpcc supports",
		                       (long long)t);
	*out = dt;
	return MPCC_OK;
}

/* ---------------------------------------------------------------- windows */

static const char *const window_attrs[] = {"output_datatype", "periodic", NULL};

/*
 * The windows are cosine sums w[n] = a0 - a1 cos(x) + a2 cos(2x) with
 * x = 2 pi n / M, M = size when periodic (the default), size - 1 when
 * symmetric. Hamming's a0 is 25/46, the "optimal" Hamming value the ONNX
 * definition uses rather than the rounded 0.54.
 */
static void
window_coeffs(mpcc_op op, double *a)
{
	switch (op) {
	case MPCC_OP_HAMMINGWINDOW:
		a[0] = 25.0 / 46.0, a[1] = 21.0 / 46.0, a[2] = 0;
		break;
	case MPCC_OP_BLACKMANWINDOW:
		a[0] = 0.42, a[1] = 0.5, a[2] = 0.08;
		break;
	default: /* Hann */
		a[0] = 0.5, a[1] = 0.5, a[2] = 0;
		break;
	}
}

static mpcc_status
window_params(mpcc_graph *g, const mpcc_node *n, int64_t *size, mpcc_dtype *dt, mpcc_diag *d)
{
	mpcc_status st = mpcc_sig_const_int(g, n, 0, "size", size, d);
	if (st)
		return st;
	if (*size < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "size is negative (%lld)",
		                       (long long)*size);
	int64_t periodic = mpcc_node_attr_int(n, "periodic", 1);
	if (periodic != 0 && periodic != 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "periodic must be 0 or 1, not %lld",
		                       (long long)periodic);
	return output_datatype(n, dt, d);
}

static mpcc_status
infer_window(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	int64_t size = 0;
	mpcc_dtype dt = MPCC_DTYPE_UNDEF;
	mpcc_status st = window_params(g, n, &size, &dt, d);
	if (st)
		return st;
	mpcc_value *y = mpcc_sig_out(g, n, 0);
	if (!y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing output");
	mpcc_sig_set(y, dt, 1, &size);
	return MPCC_OK;
}

/*
 * One stage over the window, computed in f64 and cast to the output dtype
 * (integer outputs truncate, as the reference's astype does). A symmetric
 * window of size 1 has M = 0; it is [1], as in SciPy and PyTorch, where the
 * formula would divide by zero.
 */
static mpcc_status
lower_window(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	int64_t size = 0;
	mpcc_dtype dt = MPCC_DTYPE_UNDEF;
	mpcc_status st = window_params(g, n, &size, &dt, lx->d);
	if (st)
		return st;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	if (size == 0)
		return MPCC_OK;
	int by = mpcc_lower_param(k, g, n->out[0]);
	int64_t m = mpcc_node_attr_int(n, "periodic", 1) ? size : size - 1;
	const mpcc_dtype f = MPCC_DTYPE_F64;
	int32_t w;
	if (m == 0) {
		w = kir_const_f(k, f, 1.0);
	} else {
		double a[3];
		window_coeffs(n->op, a);
		int32_t x = kir_binary(k, KIR_MUL, kir_cast(k, f, kir_var(k, 0)),
		                       kir_const_f(k, f, 2.0 * M_PI / (double)m));
		int32_t c1 =
		    kir_binary(k, KIR_MUL, kir_const_f(k, f, a[1]), kir_unary(k, KIR_COS, x));
		w = kir_binary(k, KIR_SUB, kir_const_f(k, f, a[0]), c1);
		if (a[2] != 0) {
			int32_t x2 = kir_binary(k, KIR_MUL, kir_const_f(k, f, 2.0), x);
			w = kir_binary(k, KIR_ADD, w,
			               kir_binary(k, KIR_MUL, kir_const_f(k, f, a[2]),
			                          kir_unary(k, KIR_COS, x2)));
		}
	}
	kir_stage *s =
	    kir_stage_add(k, 1, &size, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
	if (!s)
		return MPCC_ERR_NOMEM;
	kir_stage_store(k, s, by, kir_var(k, 0), kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, w));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- MelWeightMatrix */

static const char *const mel_attrs[] = {"output_datatype", NULL};

/* The band edges enter the kernel as select chains, linear in the count. */
#define MEL_MAX_BINS 4096

typedef struct mel_params {
	int64_t n_mel;  /* num_mel_bins: output columns */
	int64_t n_dft;  /* dft_length */
	int64_t rate;   /* sample_rate, Hz */
	double lo, hi;  /* lower and upper edge, Hz */
	int64_t n_spec; /* floor(dft_length / 2) + 1: output rows */
	mpcc_dtype dt;
} mel_params;

static mpcc_status
mel_get(mpcc_graph *g, const mpcc_node *n, mel_params *p, mpcc_diag *d)
{
	mpcc_status st;
	if ((st = mpcc_sig_const_int(g, n, 0, "num_mel_bins", &p->n_mel, d)) ||
	    (st = mpcc_sig_const_int(g, n, 1, "dft_length", &p->n_dft, d)) ||
	    (st = mpcc_sig_const_int(g, n, 2, "sample_rate", &p->rate, d)) ||
	    (st = mpcc_sig_const_float(g, n, 3, "lower_edge_hertz", &p->lo, d)) ||
	    (st = mpcc_sig_const_float(g, n, 4, "upper_edge_hertz", &p->hi, d)))
		return st;
	if (p->n_mel < 0)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "num_mel_bins is negative (%lld)",
		                       (long long)p->n_mel);
	if (p->n_mel > MEL_MAX_BINS)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED,
		                       "num_mel_bins %lld is above the %d supported",
		                       (long long)p->n_mel, MEL_MAX_BINS);
	if (p->n_dft < 1 || p->n_dft > (int64_t)1 << 40)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "dft_length %lld out of range",
		                       (long long)p->n_dft);
	if (p->rate < 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "sample_rate must be positive, not %lld",
		                       (long long)p->rate);
	if (!isfinite(p->lo) || !isfinite(p->hi) || p->lo <= -700 || p->hi <= -700)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "edge frequencies must be finite and above -700 Hz");
	p->n_spec = p->n_dft / 2 + 1;
	return output_datatype(n, &p->dt, d);
}

static mpcc_status
infer_mel(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	mel_params p = {0};
	mpcc_status st = mel_get(g, n, &p, d);
	if (st)
		return st;
	mpcc_value *y = mpcc_sig_out(g, n, 0);
	if (!y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "missing output");
	mpcc_sig_set(y, p.dt, 2, (int64_t[]){p.n_spec, p.n_mel});
	return MPCC_OK;
}

static double
hz_to_mel(double hz)
{
	return 2595.0 * log10(1.0 + hz / 700.0);
}

/*
 * The n_mel + 2 band edges as spectrogram bin numbers: n_mel + 2 points
 * equally spaced on the mel scale from mel(lo) in steps of
 * (mel(hi) - mel(lo)) / (n_mel + 2) (the reference's step, which stops one
 * step short of hi), each converted back to Hz and to the bin
 * floor((dft_length + 1) * f / sample_rate).
 */
static void
mel_edges(const mel_params *p, int64_t *edge)
{
	double lo = hz_to_mel(p->lo), step = (hz_to_mel(p->hi) - lo) / (double)(p->n_mel + 2);
	for (int64_t m = 0; m < p->n_mel + 2; m++) {
		double hz = 700.0 * (pow(10.0, (lo + (double)m * step) / 2595.0) - 1.0);
		double bin = floor((double)(p->n_dft + 1) * hz / (double)p->rate);
		edge[m] = bin < -1e15 ? (int64_t)-1e15 : bin > 1e15 ? (int64_t)1e15 : (int64_t)bin;
	}
}

/* edge[idx] for an I64 expression idx in [0, count): a select chain. */
static int32_t
edge_at(kir_kernel *k, const int64_t *edge, int64_t count, int32_t idx)
{
	int32_t v = kir_iconst(k, edge[count - 1]);
	for (int64_t m = count - 2; m >= 0; m--)
		v = kir_select(k, kir_binary(k, KIR_EQ, idx, kir_iconst(k, m)),
		               kir_iconst(k, edge[m]), v);
	return v;
}

/*
 * Band i is the triangle over the edges l = edge[i], c = edge[i+1],
 * h = edge[i+2]: rising (j - l) / (c - l) on [l, c], falling (h - j) / (h - c)
 * on [c, h), both 1 at c; a band with l == c has just the 1 at c, one with
 * h == c no falling side, and one with edges out of order is empty (what the
 * reference's loops leave). Rows outside [0, n_spec) are simply not there.
 */
static mpcc_status
lower_mel(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	mel_params p = {0};
	mpcc_status st = mel_get(g, n, &p, lx->d);
	if (st)
		return st;
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	if (p.n_mel == 0)
		return MPCC_OK;
	int64_t *edge = malloc((size_t)(p.n_mel + 2) * sizeof(*edge));
	if (!edge)
		return mpcc_node_error(lx->d, n, MPCC_ERR_NOMEM, "out of memory");
	mel_edges(&p, edge);
	int by = mpcc_lower_param(k, g, n->out[0]);
	const mpcc_dtype f = MPCC_DTYPE_F64;
	int32_t j = kir_var(k, 0), i = kir_var(k, 1);
	int32_t l = edge_at(k, edge, p.n_mel + 2, i);
	int32_t c = edge_at(k, edge, p.n_mel + 2, kir_iadd(k, i, kir_iconst(k, 1)));
	int32_t h = edge_at(k, edge, p.n_mel + 2, kir_iadd(k, i, kir_iconst(k, 2)));
	free(edge);
	int32_t one = kir_iconst(k, 1);
	/* falling side, c <= j < h */
	int32_t fall =
	    kir_binary(k, KIR_AND, kir_binary(k, KIR_GE, j, c), kir_binary(k, KIR_LT, j, h));
	int32_t fall_v =
	    kir_binary(k, KIR_DIV, kir_cast(k, f, kir_binary(k, KIR_SUB, h, j)),
	               kir_cast(k, f, kir_binary(k, KIR_MAX, kir_binary(k, KIR_SUB, h, c), one)));
	/* rising side, l <= j <= c with l < c */
	int32_t rise = kir_binary(
	    k, KIR_AND,
	    kir_binary(k, KIR_AND, kir_binary(k, KIR_GE, j, l), kir_binary(k, KIR_LE, j, c)),
	    kir_binary(k, KIR_LT, l, c));
	int32_t rise_v =
	    kir_binary(k, KIR_DIV, kir_cast(k, f, kir_binary(k, KIR_SUB, j, l)),
	               kir_cast(k, f, kir_binary(k, KIR_MAX, kir_binary(k, KIR_SUB, c, l), one)));
	/* the lone peak of a band with l == c */
	int32_t peak =
	    kir_binary(k, KIR_AND, kir_binary(k, KIR_EQ, l, c), kir_binary(k, KIR_EQ, j, c));
	int32_t zero_f = kir_const_f(k, f, 0), one_f = kir_const_f(k, f, 1);
	int32_t v = kir_select(k, fall, fall_v,
	                       kir_select(k, rise, rise_v, kir_select(k, peak, one_f, zero_f)));
	int64_t dims[2] = {p.n_spec, p.n_mel};
	kir_stage *s =
	    kir_stage_add(k, 2, dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
	if (!s)
		return MPCC_ERR_NOMEM;
	int32_t idx = kir_iadd(k, kir_imul(k, j, p.n_mel), i);
	kir_stage_store(k, s, by, idx, kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, v));
	return MPCC_OK;
}

/* ---------------------------------------------------------------- the table */

const mpcc_op_rule mpcc_rules_signal[] = {
    {MPCC_OP_HANNWINDOW, 1, 1, 1, 1, window_attrs, infer_window, lower_window},
    {MPCC_OP_HAMMINGWINDOW, 1, 1, 1, 1, window_attrs, infer_window, lower_window},
    {MPCC_OP_BLACKMANWINDOW, 1, 1, 1, 1, window_attrs, infer_window, lower_window},
    {MPCC_OP_MELWEIGHTMATRIX, 5, 5, 1, 1, mel_attrs, infer_mel, lower_mel},
    {MPCC_OP_DFT, 1, 3, 1, 1, mpcc_sig_attrs_dft, mpcc_sig_infer_dft, mpcc_sig_lower_dft},
    {MPCC_OP_STFT, 2, 4, 1, 1, mpcc_sig_attrs_stft, mpcc_sig_infer_stft, mpcc_sig_lower_stft},
    {.op = MPCC_OP_INVALID},
};
