/*
 * autoprec.c - auto precision mode (issue 3, docs/precision.md).
 *
 * Three stages, each leaving its line in the evidence of the nodes it
 * changed:
 *   a. policy: passes/precision.c decides by op class, as in fp16 mode;
 *   b. ranges: the f32 plan, built with every f32 intermediate exposed as
 *      an output (passes/expose.c), runs on the calibration inputs (the
 *      user's, or seeded random data); a node whose activations reach past
 *      half of f16's largest value, whose initializers reach past it, or
 *      whose tensors hold too many values below f16's smallest normal gets
 *      bf16 instead of f16;
 *   c. error budget: the configuration after a and b is compiled and run;
 *      while its worst output misses the tolerance against the f32 run, the
 *      low nodes are ranked by their own measured contribution to the error
 *      (from that one run) and a delta-debugging search finds a small set
 *      whose f32 compute meets it: a prefix of the ranking grown by
 *      doubling, then ddmin dropping the members it does not need.
 *
 * The driver re-reads the model for each build: the frontend is
 * deterministic, so a node's src_index names the same node in every build,
 * and the hints (passes/passes.h) are indexed by it. Plans are run in
 * process through a private context and the public session API, never
 * serialised. Everything is deterministic: the random inputs come from a
 * seeded generator, the ranking breaks ties by src_index, and the search
 * visits candidates in a fixed order; only the timings vary.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/fuse.h"
#include "codegen/lower.h"
#include "frontend/onnx.h"
#include "runtime/api_internal.h"
#include "runtime/autoprec.h"
#include "runtime/plan.h"

struct mpcc_autoprec {
	mpcc_prec_hint *hints; /* n_hints, notes malloc'd */
	int n_hints;
	char *summary;
	mpcc_autoprec_stats stats;
};

/* ---------------------------------------------------------------- small helpers */

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->failed)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static char *
dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
dupf(const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return strdup(buf);
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double
elem_as_double(mpcc_dtype t, const void *data, int64_t i)
{
	switch (t) {
	case MPCC_DTYPE_F32: return ((const float *)data)[i];
	case MPCC_DTYPE_F64: return ((const double *)data)[i];
	case MPCC_DTYPE_F16: return mpcc_f16_to_f32(((const uint16_t *)data)[i]);
	case MPCC_DTYPE_BF16: return mpcc_bf16_to_f32(((const uint16_t *)data)[i]);
	case MPCC_DTYPE_I8: return ((const int8_t *)data)[i];
	case MPCC_DTYPE_I16: return ((const int16_t *)data)[i];
	case MPCC_DTYPE_I32: return ((const int32_t *)data)[i];
	case MPCC_DTYPE_I64: return (double)((const int64_t *)data)[i];
	case MPCC_DTYPE_U8:
	case MPCC_DTYPE_BOOL: return ((const uint8_t *)data)[i];
	case MPCC_DTYPE_U16: return ((const uint16_t *)data)[i];
	case MPCC_DTYPE_U32: return ((const uint32_t *)data)[i];
	case MPCC_DTYPE_U64: return (double)((const uint64_t *)data)[i];
	default: return NAN;
	}
}

/* Writes v (a float, or an integer for integer dtypes) as element i. */
static void
elem_store(mpcc_dtype t, void *data, int64_t i, double v)
{
	switch (t) {
	case MPCC_DTYPE_F32: ((float *)data)[i] = (float)v; break;
	case MPCC_DTYPE_F64: ((double *)data)[i] = v; break;
	case MPCC_DTYPE_F16: ((uint16_t *)data)[i] = mpcc_f32_to_f16((float)v); break;
	case MPCC_DTYPE_BF16: ((uint16_t *)data)[i] = mpcc_f32_to_bf16((float)v); break;
	case MPCC_DTYPE_I8: ((int8_t *)data)[i] = (int8_t)v; break;
	case MPCC_DTYPE_I16: ((int16_t *)data)[i] = (int16_t)v; break;
	case MPCC_DTYPE_I32: ((int32_t *)data)[i] = (int32_t)v; break;
	case MPCC_DTYPE_I64: ((int64_t *)data)[i] = (int64_t)v; break;
	case MPCC_DTYPE_U8:
	case MPCC_DTYPE_BOOL: ((uint8_t *)data)[i] = (uint8_t)v; break;
	case MPCC_DTYPE_U16: ((uint16_t *)data)[i] = (uint16_t)v; break;
	case MPCC_DTYPE_U32: ((uint32_t *)data)[i] = (uint32_t)v; break;
	case MPCC_DTYPE_U64: ((uint64_t *)data)[i] = (uint64_t)v; break;
	default: break;
	}
}

/* splitmix64: a tiny generator whose sequence is fixed by the seed. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static double
rng_unit(uint64_t *s)
{
	return ((double)(rng_next(s) >> 11) + 0.5) * 0x1p-53;
}

/* Standard normal (Box-Muller, one draw per call). */
static double
rng_normal(uint64_t *s)
{
	double u1 = rng_unit(s), u2 = rng_unit(s);
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static const char *
shape_str(char *buf, size_t n, mpcc_dtype t, int rank, const int64_t *dims)
{
	size_t used = (size_t)snprintf(buf, n, "%s[", mpcc_dtype_name(t));
	for (int i = 0; i < rank && used < n; i++)
		used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? "," : "",
		                         (long long)dims[i]);
	if (used < n)
		snprintf(buf + used, n - used, "]");
	return buf;
}

static int64_t
numel(const mpcc_tensor *t)
{
	size_t es = mpcc_dtype_size(t->dtype);
	return es ? (int64_t)(t->nbytes / es) : 0;
}

static bool
list_has(const char *const *list, int n, const char *s)
{
	for (int i = 0; s && i < n; i++)
		if (list[i] && strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* ---------------------------------------------------------------- error metrics */

/*
 * Both metrics treat non-finite values alike: a NaN or infinity in the
 * reference must be matched exactly, and one the reference does not have
 * is an infinite error. Relative L2 falls back to the absolute L2 norm of
 * the difference when the reference is all zeros.
 */
static double
rel_l2(const double *got, const double *ref, int64_t n)
{
	double dd = 0, rr = 0;

	for (int64_t i = 0; i < n; i++) {
		double r = ref[i], x = got[i];
		if (isnan(r) || isnan(x) || isinf(r) || isinf(x)) {
			if ((isnan(r) && isnan(x)) || r == x)
				continue;
			return INFINITY;
		}
		dd += (x - r) * (x - r);
		rr += r * r;
	}
	if (dd == 0)
		return 0;
	return rr > 0 ? sqrt(dd / rr) : sqrt(dd);
}

static double
max_element(const double *got, const double *ref, int64_t n)
{
	double m = 0;

	for (int64_t i = 0; i < n; i++) {
		double r = ref[i], x = got[i];
		if (isnan(r) || isnan(x) || isinf(r) || isinf(x)) {
			if ((isnan(r) && isnan(x)) || r == x)
				continue;
			return INFINITY;
		}
		double e = fabs(x - r) / (1 + fabs(r));
		if (e > m)
			m = e;
	}
	return m;
}

static const char *
metric_name(mpcc_error_metric m)
{
	return m == MPCC_ERROR_METRIC_MAX_ELEMENT ? "max-element" : "rel-l2";
}

static const char *
metric_words(mpcc_error_metric m)
{
	return m == MPCC_ERROR_METRIC_MAX_ELEMENT ? "max-element error" : "rel. error";
}

/* ---------------------------------------------------------------- builds and runs */

typedef struct built {
	mpcc_graph *g;
	mpcc_plan *plan;
	int n_model_outputs; /* the model's own, before expose.c added more */
} built;

static void
built_fini(built *b)
{
	mpcc_plan_free(b->plan);
	mpcc_graph_destroy(b->g);
	b->plan = NULL;
	b->g = NULL;
}

/* One evaluation: the candidates it raised and what it measured. */
typedef struct eval {
	char *raised;      /* per candidate position, 1 = kept in f32 */
	bool ok;
	double err;        /* worst model output in the metric; inf when !ok */
	double *out_err;   /* per model output, in the metric */
	double *verr;      /* per reference value: rel. L2 error; NaN = not measured */
	char msg[256];     /* why a build or run failed */
} eval;

typedef struct state {
	const void *model;
	size_t model_size;
	const char *base_dir;
	const mpcc_compile_options *opts; /* the user's (precision AUTO) */
	mpcc_compile_options ro;          /* the f32 reference build's */
	mpcc_context *cx;
	double tol;
	mpcc_error_metric metric;

	/* the reference: f32 graph, its run, the calibration inputs */
	mpcc_graph *rg;
	int32_t n_values;  /* rg's, for the per-value arrays */
	int n_model_outputs;
	double **refx;     /* per rg value: f32 run's data (outputs and exposed), or NULL */
	int64_t *refn;
	double *absmax;    /* per rg value: largest finite |x|; NaN = not measured */
	double *uf;        /* per rg value: share of nonzero |x| below 2^-14 */
	mpcc_tensor *in;   /* per reference plan input: name, dtype, shape, data */
	int n_in;
	int *in_k;         /* per input: 0 = user data, -1 = N(0,1), k = ints in [0,k) */

	/* per src_index */
	int n_hints;
	int32_t *src_node; /* rg node of each src_index, or -1 */
	mpcc_prec_hint *base; /* stages a and b */

	/* stage c */
	int n_cand;
	int32_t *cand;     /* src indices, most sensitive first */
	double *sens;
	eval ev[MPCC_AUTO_MAX_EVALS];
	int n_ev;
	int n_bf16;
} state;

static mpcc_status
build(const state *a, const mpcc_compile_options *o, const mpcc_prec_hint *hints, bool expose,
      built *b, mpcc_diag *d)
{
	mpcc_lower lx;
	mpcc_status st;

	memset(b, 0, sizeof(*b));
	st = mpcc_onnx_read_buffer(a->model, a->model_size, a->base_dir, &b->g, d);
	if (st != MPCC_OK)
		return st;
	b->n_model_outputs = b->g->n_outputs;
	mpcc_pass_ctx pcx = {.d = d, .opts = o};
	pcx.hints = hints;
	pcx.n_hints = hints ? a->n_hints : 0;
	pcx.expose_intermediates = expose;
	st = mpcc_run_pipeline(b->g, &pcx);
	if (st != MPCC_OK)
		return st;
	mpcc_lower_init(&lx, b->g, d);
	st = mpcc_lower_graph(&lx);
	if (st == MPCC_OK && !o->no_fuse)
		st = mpcc_fuse_kernels(&lx, NULL);
	if (st == MPCC_OK)
		st = mpcc_plan_build(b->g, &lx, o->precision, &b->plan, d);
	mpcc_lower_fini(&lx);
	if (st != MPCC_OK && d->status == MPCC_OK)
		mpcc_diag_error(d, st, "build failed (%s)", mpcc_status_name(st));
	return st;
}

/*
 * Why the interpreter for small plans: the builds here run once each, so
 * the LLVM JIT's compile time (some 15 ms a stage, measured on the model
 * tests) is not won back by its speed unless the plan does real work; the
 * interpreter (some 6 ns per unit of the estimate below) starts at once.
 * Both compute bit-identical results (ARCHITECTURE.md), so the choice
 * changes only the time. The estimate is kir_stage_work, the one the cpu
 * backend threads by.
 */
static const char *
choose_backend(const mpcc_plan *p)
{
	double work = 0;
	int stages = 0;

	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		for (int s = 0; s < kk->n_stages; s++) {
			work += kir_stage_work(kk, &kk->stages[s]);
			stages++;
		}
	}
	return work * 6e-9 < stages * 15e-3 ? "interp" : "cpu";
}

typedef void (*out_fn)(state *a, void *ctx, int i, const char *name, const double *x,
                       int64_t n);

/*
 * Runs plan p on the calibration inputs (converted to the plan's input
 * dtype where low_io made it f16/bf16) and hands each output, as doubles,
 * to fn.
 */
static mpcc_status
run_plan(state *a, const mpcc_plan *p, out_fn fn, void *ctx, mpcc_diag *d)
{
	mpcc_session *s = NULL;
	double *x = NULL;
	void *conv = NULL;
	mpcc_status st;

	st = mpcc_session_create(a->cx, p, choose_backend(p), &s);
	for (int i = 0; st == MPCC_OK && i < mpcc_plan_n_inputs(p); i++) {
		const mpcc_tensor *desc = mpcc_plan_input(p, i);
		const mpcc_tensor *t = NULL;
		for (int k = 0; k < a->n_in && !t; k++)
			if (strcmp(a->in[k].name, desc->name) == 0)
				t = &a->in[k];
		if (!t || numel(t) != numel(desc)) {
			free(x);
			mpcc_session_destroy(s);
			return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "no calibration data for input '%s'",
			                       desc->name);
		}
		const void *data = t->data;
		if (desc->dtype != t->dtype) {
			int64_t n = (int64_t)(t->nbytes / mpcc_dtype_size(t->dtype));
			free(conv);
			conv = malloc(desc->nbytes ? desc->nbytes : 1);
			if (!conv) {
				st = MPCC_ERR_NOMEM;
				break;
			}
			for (int64_t e = 0; e < n; e++)
				elem_store(desc->dtype, conv, e, elem_as_double(t->dtype, t->data, e));
			data = conv;
		}
		st = mpcc_session_set_input(s, desc->name, desc->dtype, desc->rank, desc->dims, data,
		                            desc->nbytes);
	}
	if (st == MPCC_OK)
		st = mpcc_session_run(s);
	if (st != MPCC_OK) {
		mpcc_diag_error(d, st, "%s", st == MPCC_ERR_NOMEM ? "out of memory"
		                                                  : mpcc_context_last_error(a->cx));
		goto out;
	}
	for (int i = 0; i < mpcc_plan_n_outputs(p); i++) {
		mpcc_tensor t;
		if ((st = mpcc_session_output(s, i, &t)) != MPCC_OK) {
			mpcc_diag_error(d, st, "%s", mpcc_context_last_error(a->cx));
			goto out;
		}
		size_t es = mpcc_dtype_size(t.dtype);
		int64_t n = es ? (int64_t)(t.nbytes / es) : 0;
		double *nx = realloc(x, sizeof(double) * (size_t)(n ? n : 1));
		if (!nx) {
			st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory reading outputs");
			goto out;
		}
		x = nx;
		for (int64_t e = 0; e < n; e++)
			x[e] = elem_as_double(t.dtype, t.data, e);
		fn(a, ctx, i, t.name, x, n);
	}
out:
	free(x);
	free(conv);
	mpcc_session_destroy(s);
	return st;
}

/* ---------------------------------------------------------------- calibration */

/*
 * The range random integers are drawn from: an input read as indices (by
 * Gather, GatherElements, Scatter*, GatherND) takes [0, smallest dim they
 * index), so every index is valid; others [0, MPCC_AUTO_INT_RANGE).
 */
static int64_t
int_range(const mpcc_graph *g, int32_t v)
{
	int64_t k = -1;

	for (int i = 0; i < g->n_nodes; i++) {
		const mpcc_node *n = &g->nodes[i];
		if (n->dead || n->n_in < 2 || n->in[1] != v || n->in[0] == MPCC_NONE)
			continue;
		const mpcc_value *data = &g->values[n->in[0]];
		if (data->rank <= 0)
			continue;
		int64_t dim = -1;
		switch (n->op) {
		case MPCC_OP_GATHER:
		case MPCC_OP_GATHERELEMENTS:
		case MPCC_OP_SCATTER:
		case MPCC_OP_SCATTERELEMENTS: {
			int ax = mpcc_axis(mpcc_node_attr_int(n, "axis", 0), data->rank);
			if (ax >= 0)
				dim = data->dims[ax];
			break;
		}
		case MPCC_OP_GATHERND:
		case MPCC_OP_SCATTERND:
			for (int j = 0; j < data->rank; j++)
				if (dim < 0 || data->dims[j] < dim)
					dim = data->dims[j];
			break;
		default:
			break;
		}
		if (dim > 0 && (k < 0 || dim < k))
			k = dim;
	}
	return k > 0 ? k : MPCC_AUTO_INT_RANGE;
}

/*
 * The calibration inputs, one per input of the reference plan: the user's
 * tensor of that name (dtype and shape must match), else seeded random data:
 * floats N(0,1), integers uniform in [0,k), bools 0/1. Inputs are drawn in
 * plan order from one generator, so the data depends only on the seed.
 */
static mpcc_status
make_inputs(state *a, const mpcc_plan *p, mpcc_diag *d)
{
	const mpcc_compile_options *o = a->opts;
	uint64_t rng = o->seed;
	char want[160], got[160];

	for (int c = 0; c < o->n_calib; c++) {
		bool found = false;
		for (int i = 0; i < mpcc_plan_n_inputs(p) && !found; i++)
			found = o->calib[c].name && strcmp(o->calib[c].name, mpcc_plan_input(p, i)->name) == 0;
		if (!found)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "--calib %s: the model has no (unfrozen) input of that name",
			                       o->calib[c].name ? o->calib[c].name : "(null)");
	}
	a->n_in = mpcc_plan_n_inputs(p);
	a->in = calloc((size_t)a->n_in + 1, sizeof(*a->in));
	a->in_k = calloc((size_t)a->n_in + 1, sizeof(*a->in_k));
	if (!a->in || !a->in_k)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory for calibration inputs");
	for (int i = 0; i < a->n_in; i++) {
		const mpcc_tensor *desc = mpcc_plan_input(p, i);
		const mpcc_tensor *user = NULL;
		mpcc_tensor *t = &a->in[i];
		for (int c = 0; c < o->n_calib && !user; c++)
			if (strcmp(o->calib[c].name, desc->name) == 0)
				user = &o->calib[c];
		*t = *desc;
		t->name = strdup(desc->name);
		t->data = malloc(desc->nbytes ? desc->nbytes : 1);
		if (!t->name || !t->data)
			return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory for calibration inputs");
		if (user) {
			bool same = user->dtype == desc->dtype && user->rank == desc->rank &&
			            user->nbytes == desc->nbytes && (desc->nbytes == 0 || user->data);
			for (int k = 0; same && k < desc->rank; k++)
				same = user->dims[k] == desc->dims[k];
			if (!same)
				return mpcc_diag_error(d, MPCC_ERR_INVALID,
				                       "--calib %s: %s expected, got %s", desc->name,
				                       shape_str(want, sizeof(want), desc->dtype, desc->rank,
				                                 desc->dims),
				                       shape_str(got, sizeof(got), user->dtype, user->rank,
				                                 user->dims));
			if (desc->nbytes)
				memcpy(t->data, user->data, desc->nbytes);
			continue;
		}
		size_t es = mpcc_dtype_size(desc->dtype);
		int64_t n = es ? (int64_t)(desc->nbytes / es) : 0;
		if (mpcc_dtype_is_float(desc->dtype)) {
			a->in_k[i] = -1;
			for (int64_t e = 0; e < n; e++)
				elem_store(desc->dtype, t->data, e, rng_normal(&rng));
		} else {
			int32_t v = mpcc_graph_find_value(a->rg, desc->name);
			int64_t k = desc->dtype == MPCC_DTYPE_BOOL ? 2
			            : v != MPCC_NONE ? int_range(a->rg, v) : MPCC_AUTO_INT_RANGE;
			a->in_k[i] = (int)(k > 1 << 30 ? 1 << 30 : k);
			for (int64_t e = 0; e < n; e++)
				elem_store(desc->dtype, t->data, e,
				           (double)(rng_next(&rng) % (uint64_t)a->in_k[i]));
		}
	}
	return MPCC_OK;
}

/* Largest finite |x| and the share of nonzero finite |x| below 2^-14. */
static void
tensor_stats(const double *x, int64_t n, double *absmax, double *uf)
{
	double m = 0;
	int64_t nz = 0, small = 0;

	for (int64_t i = 0; i < n; i++) {
		double v = fabs(x[i]);
		if (!isfinite(v) || v == 0)
			continue;
		nz++;
		if (v < 0x1p-14)
			small++;
		if (v > m)
			m = v;
	}
	*absmax = m;
	*uf = nz ? (double)small / (double)nz : 0;
}

static void
keep_reference(state *a, void *ctx, int i, const char *name, const double *x, int64_t n)
{
	(void)ctx;
	(void)i;
	int32_t v = mpcc_graph_find_value(a->rg, name);
	if (v == MPCC_NONE || a->refx[v])
		return;
	a->refx[v] = malloc(sizeof(double) * (size_t)(n ? n : 1));
	if (!a->refx[v])
		return; /* not kept: that value's error is simply not measured */
	memcpy(a->refx[v], x, sizeof(double) * (size_t)n);
	a->refn[v] = n;
	if (a->rg->values[v].dtype == MPCC_DTYPE_F32)
		tensor_stats(x, n, &a->absmax[v], &a->uf[v]);
}

/* Statistics of the graph inputs (from the calibration data) and of the
 * f32 constants (from the graph). */
static mpcc_status
input_and_constant_stats(state *a)
{
	mpcc_graph *g = a->rg;
	double *x = NULL;

	for (int32_t v = 0; v < g->n_values; v++) {
		const mpcc_value *val = &g->values[v];
		const void *data = NULL;
		int64_t n = 0;
		if (val->dtype != MPCC_DTYPE_F32)
			continue;
		if (val->flags & MPCC_VALUE_CONST) {
			data = val->data;
			n = (int64_t)(val->nbytes / sizeof(float));
		} else if (val->flags & MPCC_VALUE_INPUT) {
			for (int i = 0; i < a->n_in; i++)
				if (strcmp(a->in[i].name, val->name) == 0) {
					data = a->in[i].data;
					n = (int64_t)(a->in[i].nbytes / sizeof(float));
				}
		}
		if (!data || n <= 0)
			continue;
		double *nx = realloc(x, sizeof(double) * (size_t)n);
		if (!nx) {
			free(x);
			return MPCC_ERR_NOMEM;
		}
		x = nx;
		for (int64_t e = 0; e < n; e++)
			x[e] = ((const float *)data)[e];
		tensor_stats(x, n, &a->absmax[v], &a->uf[v]);
	}
	free(x);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- stage b: ranges */

/* Every target mpcc builds for stores and computes bf16 (the CPU through
 * the LLVM backend, CUDA from sm_80). Were one not to, stage b would keep
 * these nodes in f32 instead. */
static bool
target_has_bf16(void)
{
	return true;
}

/*
 * Stage b for one node: the worst of its tensors against the thresholds.
 * Activations (non-constant f32 inputs and outputs) must stay within half
 * of f16's largest value, so the next op has room; initializers are
 * converted once and exactly, so f16's largest value itself is the limit;
 * and no tensor may have more than the stated share of nonzero values
 * below f16's smallest normal, where f16 keeps fewer than 10 bits.
 */
static mpcc_status
range_hint(state *a, const mpcc_node *n, mpcc_prec_hint *h)
{
	const mpcc_graph *g = a->rg;
	double act = 0, init = 0, uf = 0;
	const char *act_v = NULL, *init_v = NULL, *uf_v = NULL;

	for (int side = 0; side < 2; side++) {
		int cnt = side ? n->n_out : n->n_in;
		for (int j = 0; j < cnt; j++) {
			int32_t v = side ? n->out[j] : n->in[j];
			if (v == MPCC_NONE || g->values[v].dtype != MPCC_DTYPE_F32 || isnan(a->absmax[v]))
				continue;
			if (!side && mpcc_precision_input_neutral(n->op, j))
				continue;
			const mpcc_value *val = &g->values[v];
			if (val->flags & MPCC_VALUE_CONST) {
				if (a->absmax[v] > init) {
					init = a->absmax[v];
					init_v = val->name;
				}
			} else if (a->absmax[v] > act) {
				act = a->absmax[v];
				act_v = val->name;
			}
			if (a->uf[v] > uf) {
				uf = a->uf[v];
				uf_v = val->name;
			}
		}
	}
	const char *to = target_has_bf16() ? "bf16" : "f32";
	char *note = NULL;
	if (act > MPCC_AUTO_ACT_LIMIT)
		note = dupf("auto: %s: calibrated max %.1e beyond f16 threshold %.1e ('%s')", to, act,
		            MPCC_AUTO_ACT_LIMIT, act_v);
	else if (init > MPCC_AUTO_INIT_LIMIT)
		note = dupf("auto: %s: initializer '%s' max %.1e beyond f16 max %.0f", to, init_v, init,
		            MPCC_AUTO_INIT_LIMIT);
	else if (uf > MPCC_AUTO_UNDERFLOW_SHARE)
		note = dupf("auto: %s: %.1f%% of nonzero values of '%s' below f16's smallest normal "
		            "2^-14 (threshold %.0f%%)", to, 100 * uf, uf_v, 100 * MPCC_AUTO_UNDERFLOW_SHARE);
	else
		return MPCC_OK;
	if (!note)
		return MPCC_ERR_NOMEM;
	if (target_has_bf16()) {
		h->low = MPCC_DTYPE_BF16;
		h->low_note = note;
	} else {
		h->keep_f32 = true;
		h->f32_note = note;
	}
	return MPCC_OK;
}

/* ---------------------------------------------------------------- stage c: error budget */

typedef struct eval_ctx {
	eval *e;
} eval_ctx;

static void
measure_output(state *a, void *ctx, int i, const char *name, const double *x, int64_t n)
{
	eval *e = ((eval_ctx *)ctx)->e;
	int32_t v = mpcc_graph_find_value(a->rg, name);
	if (v == MPCC_NONE || !a->refx[v] || a->refn[v] != n)
		return;
	e->verr[v] = rel_l2(x, a->refx[v], n);
	/* the model's outputs come first, in the same order in every build */
	if (i < a->n_model_outputs)
		e->out_err[i] = a->metric == MPCC_ERROR_METRIC_MAX_ELEMENT
		                        ? max_element(x, a->refx[v], n)
		                        : e->verr[v];
}

static bool
same_set(const char *x, const char *y, int n)
{
	return (!x && !y) || (x && y && memcmp(x, y, (size_t)n) == 0);
}

/* The hints of a configuration: the base hints with the raised candidates
 * kept in f32. */
static mpcc_prec_hint *
config_hints(const state *a, const char *raised)
{
	mpcc_prec_hint *h = malloc(sizeof(*h) * (size_t)(a->n_hints + 1));
	if (!h)
		return NULL;
	memcpy(h, a->base, sizeof(*h) * (size_t)a->n_hints);
	for (int c = 0; raised && c < a->n_cand; c++)
		if (raised[c])
			h[a->cand[c]].keep_f32 = true;
	return h;
}

/*
 * Compiles and runs one configuration (raised: per candidate, NULL for the
 * base) unless it was evaluated before. Returns NULL only when the cap on
 * evaluations is reached or memory runs out. The first evaluation also
 * collects the candidates: the nodes it made low that no user override
 * forced low.
 */
static eval *
evaluate(state *a, const char *raised)
{
	for (int k = 0; k < a->n_ev; k++)
		if (same_set(a->ev[k].raised, raised, a->n_cand))
			return &a->ev[k];
	if (a->n_ev >= MPCC_AUTO_MAX_EVALS)
		return NULL;
	eval *e = &a->ev[a->n_ev];
	memset(e, 0, sizeof(*e));
	e->err = INFINITY;
	e->out_err = malloc(sizeof(double) * (size_t)(a->n_model_outputs + 1));
	e->verr = malloc(sizeof(double) * (size_t)(a->rg->n_values + 1));
	if (raised && (e->raised = malloc((size_t)a->n_cand + 1)))
		memcpy(e->raised, raised, (size_t)a->n_cand);
	mpcc_prec_hint *h = config_hints(a, raised);
	if (!e->out_err || !e->verr || (raised && !e->raised) || !h) {
		free(e->out_err);
		free(e->verr);
		free(e->raised);
		free(h);
		return NULL;
	}
	a->n_ev++;
	for (int i = 0; i < a->n_model_outputs; i++)
		e->out_err[i] = INFINITY;
	for (int32_t v = 0; v < a->rg->n_values; v++)
		e->verr[v] = NAN;

	built b;
	mpcc_diag d;
	mpcc_diag_init(&d);
	eval_ctx ec = {e};
	mpcc_status st = build(a, a->opts, h, true, &b, &d);
	if (st == MPCC_OK)
		st = run_plan(a, b.plan, measure_output, &ec, &d);
	/* The errors the budget is held to are the delivered plan's: exposing
	 * every intermediate stores (and rounds) values that fusion would keep
	 * in registers, so the outputs of the exposed build can differ from
	 * the plan mpcc writes. A second build, as the compile does it, gives
	 * the outputs' errors; the exposed one gave the per-node errors. */
	if (st == MPCC_OK) {
		built u;
		st = build(a, a->opts, h, false, &u, &d);
		if (st == MPCC_OK)
			st = run_plan(a, u.plan, measure_output, &ec, &d);
		built_fini(&u);
	}
	if (st == MPCC_OK) {
		e->ok = true;
		e->err = 0;
		for (int i = 0; i < a->n_model_outputs; i++)
			if (!(e->out_err[i] <= e->err)) /* NaN counts as worst */
				e->err = isnan(e->out_err[i]) ? INFINITY : e->out_err[i];
	} else {
		snprintf(e->msg, sizeof(e->msg), "%s", d.msg[0] ? d.msg : mpcc_status_name(st));
	}
	if (st == MPCC_OK && a->n_ev == 1) {
		const mpcc_compile_options *o = a->opts;
		a->cand = malloc(sizeof(int32_t) * (size_t)(b.g->n_nodes + 1));
		a->sens = malloc(sizeof(double) * (size_t)(b.g->n_nodes + 1));
		for (int i = 0; a->cand && a->sens && i < b.g->n_nodes; i++) {
			const mpcc_node *n = &b.g->nodes[i];
			if (n->dead || n->src_index < 0 || n->src_index >= a->n_hints ||
			    a->src_node[n->src_index] < 0 ||
			    !mpcc_precision_decides(a->rg, &a->rg->nodes[a->src_node[n->src_index]]) ||
			    (n->compute != MPCC_DTYPE_F16 && n->compute != MPCC_DTYPE_BF16) ||
			    list_has(o->force_low, o->n_force_low, n->name) ||
			    list_has(o->force_low, o->n_force_low, mpcc_op_name(n->op)))
				continue;
			a->cand[a->n_cand++] = n->src_index;
			a->n_bf16 += n->compute == MPCC_DTYPE_BF16;
		}
	}
	built_fini(&b);
	free(h);
	return e;
}

static bool
meets(const state *a, const eval *e)
{
	return e && e->ok && e->err <= a->tol;
}

/*
 * A node's own contribution to the error, from the base evaluation: the
 * relative L2 error of its worst f32 output minus that of its worst
 * activation input, floored at 0 (infinite when its output overflowed
 * where the f32 run's did not). Graph inputs and constants count as exact.
 * A node that merely passes on its inputs' error scores near 0; one whose
 * own rounding or range loses accuracy scores high.
 */
static double
sensitivity(const state *a, const eval *e, int32_t src)
{
	const mpcc_node *n = &a->rg->nodes[a->src_node[src]];
	double out = 0, in = 0;

	for (int j = 0; j < n->n_out; j++) {
		int32_t v = n->out[j];
		if (v != MPCC_NONE && !isnan(e->verr[v]) && e->verr[v] > out)
			out = e->verr[v];
	}
	for (int j = 0; j < n->n_in; j++) {
		int32_t v = n->in[j];
		if (v != MPCC_NONE && !isnan(e->verr[v]) && e->verr[v] > in)
			in = e->verr[v];
	}
	if (isinf(out))
		return isinf(in) ? 0 : INFINITY;
	return out > in ? out - in : 0;
}

typedef struct ranked {
	double sens;
	int32_t src;
} ranked;

/* Most sensitive first; ties go to the node later in the model, nearer the
 * outputs, whose error reaches them least diluted. */
static int
by_sensitivity(const void *x, const void *y)
{
	const ranked *p = x, *q = y;
	if (p->sens != q->sens)
		return p->sens > q->sens ? -1 : 1;
	return (p->src < q->src) - (p->src > q->src);
}

/* Orders the candidates by sensitivity (a->sens follows). */
static mpcc_status
rank_candidates(state *a, const eval *base)
{
	ranked *r = malloc(sizeof(*r) * (size_t)(a->n_cand + 1));

	if (!r)
		return MPCC_ERR_NOMEM;
	for (int c = 0; c < a->n_cand; c++)
		r[c] = (ranked){sensitivity(a, base, a->cand[c]), a->cand[c]};
	qsort(r, (size_t)a->n_cand, sizeof(*r), by_sensitivity);
	for (int c = 0; c < a->n_cand; c++) {
		a->cand[c] = r[c].src;
		a->sens[c] = r[c].sens;
	}
	free(r);
	return MPCC_OK;
}

/*
 * Why delta debugging, and in this order: the ranking from one run puts the
 * nodes that lose accuracy themselves first, so a short prefix of it usually
 * meets the budget; growing the prefix by doubling finds one in about
 * log2(candidates) evaluations, and bisecting between the last prefix that
 * missed and the first that met finds the shortest in as many again. That
 * prefix may still hold members that are not needed (a node that only
 * looked bad because of its inputs, or one whose raise a later member's
 * makes redundant). A ddmin-style elimination then drops what it can:
 * from the least sensitive member on, it tries to drop half of the members
 * not yet tried at once, halving the chunk each time the budget breaks,
 * and keeps a member only when dropping it alone breaks the budget. A
 * needed member costs about log2 of the prefix in evaluations, an
 * unneeded run of them one. The result is 1-minimal (no single member can
 * go) as far as raising more never hurts, and it always meets the budget
 * when any evaluated set did. The cap on evaluations stops any phase; the
 * best set found so far stands. Returns the best set (malloc'd flags) or
 * NULL when none met it and memory ran out.
 */
static char *
search(state *a)
{
	int n = a->n_cand;
	char *set = calloc((size_t)n + 1, 1), *trial = calloc((size_t)n + 1, 1);
	eval *e = NULL;
	int k;

	if (!set || !trial)
		goto nomem;
	int lo = 0; /* the longest prefix known to miss */
	for (k = 1;; k = k * 2 < n ? k * 2 : n) {
		memset(set, 0, (size_t)n);
		memset(set, 1, (size_t)k);
		e = evaluate(a, set);
		if (!e || meets(a, e) || k == n)
			break;
		lo = k;
	}
	if (!meets(a, e)) {
		/* Out of evaluations, or even every candidate in f32 missed the
		 * budget: keep the last evaluated prefix (the most raised). */
		free(trial);
		return set;
	}
	while (k - lo > 1) {
		int mid = lo + (k - lo) / 2;
		memset(trial, 0, (size_t)n);
		memset(trial, 1, (size_t)mid);
		e = evaluate(a, trial);
		if (!e)
			break;
		if (meets(a, e)) {
			k = mid;
			memcpy(set, trial, (size_t)n);
		} else {
			lo = mid;
		}
	}
	/* Elimination: walk the members from the least sensitive, trying to
	 * drop the first half of those not yet tried; when that breaks the
	 * budget, try half as many; a member that cannot be dropped alone
	 * stays. */
	int i = k;
	while (i > 0 && a->n_ev < MPCC_AUTO_MAX_EVALS) {
		int size = (i + 1) / 2;
		for (;;) {
			/* members i-size .. i-1 (ranking positions) out */
			memcpy(trial, set, (size_t)n);
			memset(trial + i - size, 0, (size_t)size);
			bool empty = true;
			for (int c = 0; c < n && empty; c++)
				empty = !trial[c];
			e = empty ? NULL : evaluate(a, trial);
			if (e && meets(a, e)) {
				memcpy(set, trial, (size_t)n);
				i -= size;
				break;
			}
			if (!e && !empty)
				goto out; /* out of evaluations */
			if (size == 1) {
				i--; /* needed */
				break;
			}
			size /= 2;
		}
	}
out:
	free(trial);
	return set;
nomem:
	free(set);
	free(trial);
	return NULL;
}

/* ---------------------------------------------------------------- the driver */

static void
free_reference(state *a)
{
	for (int32_t v = 0; a->refx && v < a->n_values; v++)
		free(a->refx[v]);
	free(a->refx);
	a->refx = NULL;
	mpcc_graph_destroy(a->rg);
	a->rg = NULL;
}

static void
state_fini(state *a)
{
	free_reference(a);
	free(a->refn);
	free(a->absmax);
	free(a->uf);
	for (int i = 0; i < a->n_in; i++) {
		free((char *)a->in[i].name);
		free(a->in[i].data);
	}
	free(a->in);
	free(a->in_k);
	free(a->src_node);
	free(a->base);
	free(a->cand);
	free(a->sens);
	for (int k = 0; k < a->n_ev; k++) {
		free(a->ev[k].raised);
		free(a->ev[k].out_err);
		free(a->ev[k].verr);
	}
	mpcc_context_destroy(a->cx);
}

/* The calibration line of the summary. */
static void
describe_inputs(const state *a, sbuf *sb)
{
	bool any_random = false;
	char shape[160];

	for (int i = 0; i < a->n_in; i++)
		any_random |= a->in_k[i] != 0;
	if (any_random)
		sb_printf(sb, "calibration: seeded random inputs, seed %llu: floats N(0,1), ints in [0,k)",
		          (unsigned long long)a->opts->seed);
	else
		sb_printf(sb, "calibration: user inputs (--calib)");
	for (int i = 0; i < a->n_in; i++) {
		const mpcc_tensor *t = &a->in[i];
		sb_printf(sb, "%s %s %s", i ? ";" : ":", t->name,
		          shape_str(shape, sizeof(shape), t->dtype, t->rank, t->dims));
		if (a->in_k[i] == 0 && any_random)
			sb_printf(sb, " user data");
		else if (a->in_k[i] < 0)
			sb_printf(sb, " N(0,1)");
		else if (a->in_k[i] > 0)
			sb_printf(sb, " ints in [0,%d)", a->in_k[i]);
	}
	if (a->n_in == 0)
		sb_printf(sb, " (the model has no inputs)");
	sb_printf(sb, "\n");
}

static void
describe_thresholds(sbuf *sb, int n_bf16)
{
	sb_printf(sb, "ranges: f16 keeps activations with |x| <= %.0f (65504/2, headroom for the "
	          "next op), initializers with |x| <= %.0f, tensors with at most %.0f%% of nonzero "
	          "|x| below 2^-14; beyond that %s: %d low node%s\n",
	          MPCC_AUTO_ACT_LIMIT, MPCC_AUTO_INIT_LIMIT, 100 * MPCC_AUTO_UNDERFLOW_SHARE,
	          target_has_bf16() ? "bf16 (the target has it)" : "f32", n_bf16,
	          n_bf16 == 1 ? "" : "s");
}

/* Fills the final hints (raise notes, measured errors) and the summary. */
static mpcc_status
conclude(state *a, mpcc_autoprec *ap, const eval *base, const eval *fin, const char *set,
         double t0, sbuf *sb)
{
	mpcc_autoprec_stats *s = &ap->stats;
	int worst = 0;

	for (int i = 1; i < a->n_model_outputs; i++)
		if (!(base->out_err[i] <= base->out_err[worst]))
			worst = i;
	const char *wname = a->n_model_outputs ? a->rg->values[a->rg->outputs[worst]].name : "?";
	for (int c = 0; set && c < a->n_cand; c++) {
		if (!set[c])
			continue;
		mpcc_prec_hint *h = &ap->hints[a->cand[c]];
		h->keep_f32 = true;
		free((char *)h->f32_note);
		h->f32_note = dupf("auto: f32: error budget, output '%s' %s %.1e -> %.1e", wname,
		                   metric_words(a->metric), base->out_err[worst],
		                   fin->out_err[worst]);
		if (!h->f32_note)
			return MPCC_ERR_NOMEM;
		s->n_raised++;
	}
	for (int src = 0; src < a->n_hints; src++) {
		if (a->src_node[src] < 0)
			continue;
		const mpcc_node *n = &a->rg->nodes[a->src_node[src]];
		double m = NAN;
		for (int j = 0; j < n->n_out && isnan(m); j++)
			if (n->out[j] != MPCC_NONE)
				m = fin->verr[n->out[j]];
		ap->hints[src].err = m;
	}
	s->evaluations = a->n_ev;
	s->base_error = base->err;
	s->final_error = fin->err;
	s->n_candidates = a->n_cand;
	s->seconds = now_s() - t0;
	sb_printf(sb, "error budget: %s (worst output), tolerance %.1e\n", metric_name(a->metric),
	          a->tol);
	sb_printf(sb, "search: %d evaluation%s (cap %d) in %.2f s including calibration; %d of %d "
	          "low nodes raised to f32 (sensitivity order, delta debugging)%s\n",
	          a->n_ev, a->n_ev == 1 ? "" : "s", MPCC_AUTO_MAX_EVALS, s->seconds, s->n_raised,
	          a->n_cand, fin->err <= a->tol ? "" : "; tolerance not met");
	for (int i = 0; i < a->n_model_outputs; i++)
		sb_printf(sb, "output '%s': %s %.1e after ranges, %.1e final\n",
		          a->rg->values[a->rg->outputs[i]].name, metric_words(a->metric),
		          base->out_err[i], fin->out_err[i]);
	return MPCC_OK;
}

/* Every precision candidate kept in f32: the fallback when no low build
 * of the model works at all. */
static mpcc_status
raise_everything(state *a, mpcc_autoprec *ap, const char *why)
{
	for (int src = 0; src < a->n_hints; src++) {
		if (a->src_node[src] < 0 ||
		    !mpcc_precision_decides(a->rg, &a->rg->nodes[a->src_node[src]]))
			continue;
		ap->hints[src].keep_f32 = true;
		free((char *)ap->hints[src].f32_note);
		ap->hints[src].f32_note = dupf("auto: f32: the low-precision build failed: %s", why);
		if (!ap->hints[src].f32_note)
			return MPCC_ERR_NOMEM;
	}
	return MPCC_OK;
}

/*
 * Stage c around the search: evaluate the base, stop there when it meets
 * the budget, else rank the candidates and search.
 */
static mpcc_status
error_budget(state *a, mpcc_autoprec *ap, double t0, sbuf *sb)
{
	eval *base = evaluate(a, NULL);
	if (!base)
		return MPCC_ERR_NOMEM;
	if (!base->ok) {
		sb_printf(sb, "error budget: the low-precision build failed (%s): every node kept in "
		          "f32\n", base->msg);
		ap->stats.evaluations = a->n_ev;
		ap->stats.seconds = now_s() - t0;
		return raise_everything(a, ap, base->msg);
	}
	if (meets(a, base) || a->n_cand == 0)
		return conclude(a, ap, base, base, NULL, t0, sb);
	if (rank_candidates(a, base) != MPCC_OK)
		return MPCC_ERR_NOMEM;
	char *set = search(a);
	if (!set)
		return MPCC_ERR_NOMEM;
	const eval *fin = NULL;
	for (int k = 0; k < a->n_ev; k++)
		if (same_set(a->ev[k].raised, set, a->n_cand))
			fin = &a->ev[k];
	mpcc_status st = conclude(a, ap, base, fin ? fin : base, fin ? set : NULL, t0, sb);
	free(set);
	return st;
}

/*
 * The reference: the f32 plan with every intermediate exposed, run on the
 * calibration inputs. Returns MPCC_OK with a->rg NULL (and the reason in
 * sb) when it cannot be built or run, so the caller keeps the policy.
 */
static mpcc_status
calibrate(state *a, sbuf *sb, mpcc_diag *d)
{
	built b;
	mpcc_diag bd;
	mpcc_status st;

	mpcc_diag_init(&bd);
	st = build(a, &a->ro, NULL, true, &b, &bd);
	if (st != MPCC_OK) {
		built_fini(&b);
		sb_printf(sb, "calibration: the f32 build failed (%s): policy only\n", bd.msg);
		return st == MPCC_ERR_NOMEM ? mpcc_diag_error(d, st, "%s", bd.msg) : MPCC_OK;
	}
	a->rg = b.g;
	b.g = NULL;
	mpcc_graph *g = a->rg;
	a->n_values = g->n_values;
	a->n_model_outputs = b.n_model_outputs;
	a->refx = calloc((size_t)g->n_values + 1, sizeof(double *));
	a->refn = calloc((size_t)g->n_values + 1, sizeof(int64_t));
	a->absmax = malloc(sizeof(double) * (size_t)(g->n_values + 1));
	a->uf = malloc(sizeof(double) * (size_t)(g->n_values + 1));
	if (!a->refx || !a->refn || !a->absmax || !a->uf) {
		built_fini(&b);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory calibrating");
	}
	for (int32_t v = 0; v < g->n_values; v++)
		a->absmax[v] = a->uf[v] = NAN;
	st = make_inputs(a, b.plan, d);
	if (st != MPCC_OK) {
		built_fini(&b);
		return st;
	}
	if (input_and_constant_stats(a) != MPCC_OK) {
		built_fini(&b);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory calibrating");
	}
	mpcc_diag_init(&bd);
	st = run_plan(a, b.plan, keep_reference, NULL, &bd);
	built_fini(&b);
	if (st != MPCC_OK) {
		sb_printf(sb, "calibration: the f32 run failed (%s): policy only\n", bd.msg);
		free_reference(a);
		return st == MPCC_ERR_NOMEM ? mpcc_diag_error(d, st, "%s", bd.msg) : MPCC_OK;
	}
	return MPCC_OK;
}

static bool
options_ok(const mpcc_compile_options *o, mpcc_diag *d)
{
	if (!(o->tolerance >= 0) || isinf(o->tolerance)) {
		mpcc_diag_error(d, MPCC_ERR_INVALID, "--tolerance %g: a finite value >= 0 is needed",
		                o->tolerance);
		return false;
	}
	if ((unsigned)o->error_metric > (unsigned)MPCC_ERROR_METRIC_MAX_ELEMENT) {
		mpcc_diag_error(d, MPCC_ERR_INVALID, "error metric %d is not a metric",
		                (int)o->error_metric);
		return false;
	}
	if (o->n_calib < 0 || (o->n_calib > 0 && !o->calib)) {
		mpcc_diag_error(d, MPCC_ERR_INVALID, "calibration inputs: bad count or pointer");
		return false;
	}
	for (int c = 0; c < o->n_calib; c++)
		if (!o->calib[c].name) {
			mpcc_diag_error(d, MPCC_ERR_INVALID, "calibration input %d has no name", c);
			return false;
		}
	return true;
}

/*
 * Stage b over the reference graph: one hint per src_index, the policy's
 * dtype unless the node's ranges rule f16 out.
 */
static mpcc_status
stage_ranges(state *a, mpcc_autoprec *ap)
{
	mpcc_graph *g = a->rg;

	a->n_hints = 0;
	for (int i = 0; i < g->n_nodes; i++)
		if (g->nodes[i].src_index >= a->n_hints)
			a->n_hints = g->nodes[i].src_index + 1;
	a->src_node = malloc(sizeof(int32_t) * (size_t)(a->n_hints + 1));
	a->base = calloc((size_t)a->n_hints + 1, sizeof(*a->base));
	ap->hints = calloc((size_t)a->n_hints + 1, sizeof(*ap->hints));
	if (!a->src_node || !a->base || !ap->hints)
		return MPCC_ERR_NOMEM;
	ap->n_hints = a->n_hints;
	for (int src = 0; src < a->n_hints; src++) {
		a->src_node[src] = -1;
		a->base[src].range_absmax = a->base[src].err = NAN;
	}
	mpcc_status st = MPCC_OK;
	for (int i = 0; i < g->n_nodes && st == MPCC_OK; i++) {
		const mpcc_node *n = &g->nodes[i];
		mpcc_prec_hint *h = n->src_index >= 0 ? &a->base[n->src_index] : NULL;
		if (n->dead || !h)
			continue;
		a->src_node[n->src_index] = i;
		for (int j = 0; j < n->n_out; j++) {
			int32_t v = n->out[j];
			if (v != MPCC_NONE && !isnan(a->absmax[v]) &&
			    (isnan(h->range_absmax) || a->absmax[v] > h->range_absmax))
				h->range_absmax = a->absmax[v];
		}
		if (mpcc_precision_decides(g, n))
			st = range_hint(a, n, h);
	}
	/* The final hints own the notes; the base shares them until then. */
	memcpy(ap->hints, a->base, sizeof(*a->base) * (size_t)a->n_hints);
	return st;
}

mpcc_status
mpcc_autoprec_search(const void *model, size_t size, const char *base_dir,
                     const mpcc_compile_options *opts, mpcc_autoprec **out, mpcc_diag *d)
{
	state a;
	mpcc_autoprec *ap;
	sbuf sb = {0};
	double t0 = now_s();
	mpcc_status st;

	*out = NULL;
	if (!options_ok(opts, d))
		return MPCC_ERR_INVALID;
	ap = calloc(1, sizeof(*ap));
	memset(&a, 0, sizeof(a));
	if (!ap || mpcc_context_create(&a.cx) != MPCC_OK) {
		free(ap);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory for auto precision");
	}
	a.model = model;
	a.model_size = size;
	a.base_dir = base_dir;
	a.opts = opts;
	a.ro = *opts;
	a.ro.precision = MPCC_PRECISION_FP32;
	a.ro.keep_fp32 = a.ro.force_low = NULL;
	a.ro.n_keep_fp32 = a.ro.n_force_low = 0;
	a.ro.low_io = false;
	a.tol = opts->tolerance > 0 ? opts->tolerance : MPCC_AUTO_DEFAULT_TOLERANCE;
	a.metric = opts->error_metric;
	ap->stats.tolerance = a.tol;
	ap->stats.metric = a.metric;
	ap->stats.base_error = ap->stats.final_error = NAN;

	st = calibrate(&a, &sb, d);
	if (st == MPCC_OK && a.rg) {
		ap->stats.calibrated = true;
		describe_inputs(&a, &sb);
		st = stage_ranges(&a, ap);
		/* the base evaluation first: it tells how many low nodes stage b
		 * made bf16 (error_budget finds it evaluated) */
		if (st == MPCC_OK && !evaluate(&a, NULL))
			st = MPCC_ERR_NOMEM;
		if (st == MPCC_OK) {
			describe_thresholds(&sb, a.n_bf16);
			ap->stats.n_bf16 = a.n_bf16;
			st = error_budget(&a, ap, t0, &sb);
		}
		if (st == MPCC_ERR_NOMEM)
			mpcc_diag_error(d, st, "out of memory in the auto precision search");
	}
	ap->stats.seconds = now_s() - t0;
	if (st == MPCC_OK && !sb.failed) {
		if (sb.len && sb.p[sb.len - 1] == '\n')
			sb.p[--sb.len] = 0;
		ap->summary = sb.p;
		sb.p = NULL;
	} else if (st == MPCC_OK) {
		st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory in the auto precision search");
	}
	free(sb.p);
	/* notes allocated into the base belong to ap->hints from here on */
	state_fini(&a);
	if (st != MPCC_OK) {
		mpcc_autoprec_destroy(ap);
		return st;
	}
	*out = ap;
	return MPCC_OK;
}

void
mpcc_autoprec_apply(const mpcc_autoprec *ap, mpcc_pass_ctx *pcx)
{
	pcx->hints = ap ? ap->hints : NULL;
	pcx->n_hints = ap ? ap->n_hints : 0;
	pcx->prec_summary = ap ? ap->summary : NULL;
}

const mpcc_autoprec_stats *
mpcc_autoprec_get_stats(const mpcc_autoprec *ap)
{
	return &ap->stats;
}

const char *
mpcc_autoprec_summary(const mpcc_autoprec *ap)
{
	return ap->summary ? ap->summary : "";
}

void
mpcc_autoprec_destroy(mpcc_autoprec *ap)
{
	if (!ap)
		return;
	for (int i = 0; i < ap->n_hints; i++) {
		free((char *)ap->hints[i].low_note);
		free((char *)ap->hints[i].f32_note);
	}
	free(ap->hints);
	free(ap->summary);
	free(ap);
}

mpcc_status
mpcc_autoprec_pipeline_file(const char *path, const mpcc_compile_options *opts, mpcc_graph **out,
                            mpcc_diag *d)
{
	mpcc_autoprec *ap = NULL;
	mpcc_pass_ctx pcx = {.d = d, .opts = opts};
	void *model = NULL;
	size_t size = 0;
	char *dir = NULL;
	mpcc_status st;

	*out = NULL;
	st = mpcc_onnx_read_file(path, out, d);
	if (st == MPCC_OK && opts->precision == MPCC_PRECISION_AUTO) {
		const char *slash = strrchr(path, '/');
		dir = !slash ? strdup(".") : slash == path ? strdup("/")
		                                           : strndup(path, (size_t)(slash - path));
		st = dir ? mpcc_read_whole_file(path, &model, &size, d)
		         : mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory");
		/* as compile_graph (runtime/api.c): the search builds the
		 * inference model, a training compile included */
		mpcc_compile_options inference = *opts;
		inference.train = NULL;
		if (st == MPCC_OK)
			st = mpcc_autoprec_search(model, size, dir, &inference, &ap, d);
		mpcc_autoprec_apply(ap, &pcx);
	}
	if (st == MPCC_OK)
		st = mpcc_run_pipeline(*out, &pcx);
	mpcc_autoprec_destroy(ap);
	free(model);
	free(dir);
	if (st != MPCC_OK) {
		mpcc_graph_destroy(*out);
		*out = NULL;
	}
	return st;
}
