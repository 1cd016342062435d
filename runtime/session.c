/*
 * session.c - the executor: working memory for a plan on one backend,
 * binding inputs, running the schedule and handing out outputs.
 *
 * At creation everything a run needs is allocated and wired: one 64-byte
 * aligned block holds the graph outputs (each at its own offset) followed by
 * the arena in which runtime/memplan.c places every other intermediate and
 * every kernel's TEMP buffers by liveness; each input has its own buffer,
 * and for every kernel the array of buffer pointers the backend receives is
 * precomputed. mpcc_session_run therefore allocates
 * nothing and only walks the schedule, or hands it whole to a backend that
 * runs it at once (runtime/backend.h's run: cuda, with its own device
 * memory, reading the input buffers and writing the output ones).
 *
 * Errors are reported to the context the session was created with, which
 * must outlive the session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/api_internal.h"
#include "runtime/backend.h"
#include "runtime/memplan.h"

#define ALIGN 64

struct mpcc_session {
	mpcc_context *cx;
	const mpcc_plan *plan;
	const mpcc_backend *be;
	void *state;         /* the backend's, from prepare() */
	uint8_t *block;      /* intermediates and outputs */
	void **tensor_ptr;   /* per tensor: where its data lives */
	uint8_t **input_buf; /* per plan input */
	bool *input_set;
	void ***kbufs;       /* per kernel: one pointer per buffer */
};

static size_t
align_up(size_t n)
{
	return (n + ALIGN - 1) / ALIGN * ALIGN;
}

static void *
alloc_aligned(size_t n)
{
	void *p = aligned_alloc(ALIGN, align_up(n ? n : 1));

	if (p)
		memset(p, 0, align_up(n ? n : 1));
	return p;
}

MPCC_API void
mpcc_session_destroy(mpcc_session *s)
{
	if (!s)
		return;
	if (s->state && s->be)
		s->be->release(s->state);
	if (s->kbufs)
		for (int k = 0; k < s->plan->n_kernels; k++)
			free(s->kbufs[k]);
	free(s->kbufs);
	if (s->input_buf)
		for (int i = 0; i < s->plan->n_inputs; i++)
			free(s->input_buf[i]);
	free(s->input_buf);
	free(s->input_set);
	free(s->tensor_ptr);
	free(s->block);
	free(s);
}

static const mpcc_backend *
find_backend(const char *name)
{
	if (!name || strcmp(name, "cpu") == 0)
		return &mpcc_backend_cpu;
	if (strcmp(name, "interp") == 0)
		return &mpcc_backend_interp;
	if (strcmp(name, "cuda") == 0)
		return &mpcc_backend_cuda;
	return NULL;
}

/*
 * Why memory is laid out before the backend prepares: prepare() may take
 * long (the JIT), and a failure to allocate should be reported first and
 * cheaply. Tensors that are inputs live in their own buffers so set_input
 * can copy straight in; weights are used in place from the plan.
 */
static mpcc_status
lay_out(mpcc_session *s, mpcc_diag *d)
{
	const mpcc_plan *p = s->plan;
	size_t total = 0, arena;
	mpcc_memplan mp = {0};
	mpcc_status st;

	s->tensor_ptr = calloc((size_t)p->n_tensors + 1, sizeof(void *));
	s->input_buf = calloc((size_t)p->n_inputs + 1, sizeof(uint8_t *));
	s->input_set = calloc((size_t)p->n_inputs + 1, sizeof(bool));
	s->kbufs = calloc((size_t)p->n_kernels + 1, sizeof(void **));
	if (!s->tensor_ptr || !s->input_buf || !s->input_set || !s->kbufs)
		goto nomem;
	st = mpcc_memplan_build(p, &mp);
	if (st != MPCC_OK)
		return mpcc_diag_error(d, st, "cannot plan the session's working memory");
	for (int i = 0; i < p->n_inputs; i++) {
		const mpcc_plan_tensor *t = &p->tensors[p->inputs[i]];
		s->input_buf[i] = alloc_aligned(t->t.nbytes);
		if (!s->input_buf[i])
			goto nomem;
		s->tensor_ptr[p->inputs[i]] = s->input_buf[i];
	}
	for (int i = 0; i < p->n_tensors; i++) {
		const mpcc_plan_tensor *t = &p->tensors[i];
		if ((t->flags & (MPCC_TENSOR_INPUT | MPCC_TENSOR_WEIGHT)) || mp.tensor_off[i] >= 0)
			continue;
		if (total + align_up(t->t.nbytes) < total)
			goto nomem;
		total += align_up(t->t.nbytes);
	}
	arena = total;
	if (total + mp.arena_size < total)
		goto nomem;
	s->block = alloc_aligned(total + mp.arena_size);
	if (!s->block)
		goto nomem;
	total = 0;
	for (int i = 0; i < p->n_tensors; i++) {
		const mpcc_plan_tensor *t = &p->tensors[i];
		if (t->flags & MPCC_TENSOR_WEIGHT) {
			s->tensor_ptr[i] = p->weights + t->offset;
		} else if (mp.tensor_off[i] >= 0) {
			s->tensor_ptr[i] = s->block + arena + mp.tensor_off[i];
		} else if (!(t->flags & MPCC_TENSOR_INPUT)) {
			s->tensor_ptr[i] = s->block + total;
			total += align_up(t->t.nbytes);
		}
	}
	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		int t = mp.temp_first[k];
		s->kbufs[k] = calloc((size_t)kk->n_bufs + 1, sizeof(void *));
		if (!s->kbufs[k])
			goto nomem;
		for (int b = 0; b < kk->n_bufs; b++) {
			const kir_buf *buf = &kk->bufs[b];
			if (buf->kind == KIR_BUF_PARAM) {
				s->kbufs[k][b] = s->tensor_ptr[buf->value];
				continue;
			}
			s->kbufs[k][b] = s->block + arena + mp.temp_off[t++];
		}
	}
	mpcc_memplan_fini(&mp);
	return MPCC_OK;
nomem:
	mpcc_memplan_fini(&mp);
	return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory for the session's working memory");
}

MPCC_API mpcc_status
mpcc_session_create(mpcc_context *cx, const mpcc_plan *plan, const char *backend,
                    mpcc_session **out)
{
	mpcc_session *s;
	mpcc_diag d;
	mpcc_status st;

	*out = NULL;
	mpcc_diag_init(&d);
	const mpcc_backend *be = find_backend(backend);
	if (!be) {
		mpcc_diag_error(&d, MPCC_ERR_INVALID,
		                "unknown backend '%s' (choices: cpu, interp, cuda)", backend);
		return mpcc_context_fail(cx, &d, MPCC_ERR_INVALID);
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		mpcc_diag_error(&d, MPCC_ERR_NOMEM, "out of memory creating a session");
		return mpcc_context_fail(cx, &d, MPCC_ERR_NOMEM);
	}
	s->cx = cx;
	s->plan = plan;
	st = lay_out(s, &d);
	if (st == MPCC_OK) {
		st = be->prepare(plan, &s->state, &d);
		if (st == MPCC_OK)
			s->be = be;
	}
	if (st != MPCC_OK) {
		if (d.status == MPCC_OK)
			mpcc_diag_error(&d, st, "backend '%s' failed to prepare the plan", be->name);
		mpcc_session_destroy(s);
		return mpcc_context_fail(cx, &d, st);
	}
	*out = s;
	return MPCC_OK;
}

/* "[1,3,224,224]" into buf. */
static const char *
shape_str(char *buf, size_t n, int rank, const int64_t *dims)
{
	size_t used = 0;

	used += (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < rank && used < n; i++)
		used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? "," : "",
		                         (long long)dims[i]);
	if (used < n)
		snprintf(buf + used, n - used, "]");
	return buf;
}

MPCC_API mpcc_status
mpcc_session_set_input(mpcc_session *s, const char *name, mpcc_dtype dtype, int rank,
                       const int64_t *dims, const void *data, size_t nbytes)
{
	const mpcc_plan *p = s->plan;
	const mpcc_tensor *t = NULL;
	char want[200], got[200];
	mpcc_diag d;
	int i;

	mpcc_diag_init(&d);
	for (i = 0; name && i < p->n_inputs; i++) {
		if (strcmp(p->input_desc[i].name, name) == 0) {
			t = &p->input_desc[i];
			break;
		}
	}
	if (!t) {
		char list[300] = "";
		size_t used = 0;
		for (int k = 0; k < p->n_inputs && used < sizeof(list); k++)
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s'%s'", k ? ", " : "",
			                         p->input_desc[k].name);
		mpcc_diag_error(&d, MPCC_ERR_INVALID, "no input named '%s' (the plan's inputs: %s)",
		                name ? name : "(null)", p->n_inputs ? list : "none");
		return mpcc_context_fail(s->cx, &d, MPCC_ERR_INVALID);
	}
	if (dtype != t->dtype) {
		mpcc_diag_error(&d, MPCC_ERR_INVALID, "input '%s': dtype %s expected, got %s", name,
		                mpcc_dtype_name(t->dtype), mpcc_dtype_name(dtype));
		return mpcc_context_fail(s->cx, &d, MPCC_ERR_INVALID);
	}
	bool same = rank == t->rank && (rank == 0 || dims);
	for (int k = 0; same && k < rank; k++)
		same = dims[k] == t->dims[k];
	if (!same) {
		if (rank < 0 || rank > MPCC_MAX_RANK || (rank > 0 && !dims))
			snprintf(got, sizeof(got), "rank %d", rank);
		else
			shape_str(got, sizeof(got), rank, dims);
		mpcc_diag_error(&d, MPCC_ERR_INVALID, "input '%s': shape %s expected, got %s", name,
		                shape_str(want, sizeof(want), t->rank, t->dims), got);
		return mpcc_context_fail(s->cx, &d, MPCC_ERR_INVALID);
	}
	if (nbytes != t->nbytes || (nbytes && !data)) {
		mpcc_diag_error(&d, MPCC_ERR_INVALID, "input '%s': %zu bytes expected, got %zu", name,
		                t->nbytes, nbytes);
		return mpcc_context_fail(s->cx, &d, MPCC_ERR_INVALID);
	}
	if (nbytes)
		memcpy(s->tensor_ptr[p->inputs[i]], data, nbytes);
	s->input_set[i] = true;
	return MPCC_OK;
}

/*
 * Why rebinding rewires every kernel in one pass rather than keeping a
 * list of slots per tensor: the pass touches each kernel buffer once, which
 * costs less than the kernels reading their buffers, and it needs no memory
 * that could fail to be allocated.
 */
void
mpcc_session_bind_tensors(mpcc_session *s, int n, const int32_t *tensors, void *const *ptrs)
{
	const mpcc_plan *p = s->plan;

	for (int i = 0; i < n; i++) {
		int32_t t = tensors[i];
		if (t < 0 || t >= p->n_tensors || (p->tensors[t].flags & MPCC_TENSOR_WEIGHT))
			continue;
		s->tensor_ptr[t] = ptrs[i];
		for (int k = 0; k < p->n_inputs; k++)
			if (p->inputs[k] == t)
				s->input_set[k] = true;
	}
	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		for (int b = 0; b < kk->n_bufs; b++)
			if (kk->bufs[b].kind == KIR_BUF_PARAM)
				s->kbufs[k][b] = s->tensor_ptr[kk->bufs[b].value];
	}
}

void *
mpcc_session_tensor_data(const mpcc_session *s, int32_t t)
{
	return t >= 0 && t < s->plan->n_tensors ? s->tensor_ptr[t] : NULL;
}

/* Runs the schedule; with `watch`, calls it after every kernel and stops
 * early (with MPCC_OK) at the first kernel for which it returns true. */
static mpcc_status
run_kernels(mpcc_session *s, mpcc_kernel_watch watch, void *user)
{
	const mpcc_plan *p = s->plan;
	mpcc_diag d;

	mpcc_diag_init(&d);
	for (int i = 0; i < p->n_inputs; i++) {
		if (!s->input_set[i]) {
			mpcc_diag_error(&d, MPCC_ERR_INVALID, "input '%s' was never set",
			                p->input_desc[i].name);
			return mpcc_context_fail(s->cx, &d, MPCC_ERR_INVALID);
		}
	}
	if (!watch && s->be->run) {
		mpcc_status st = s->be->run(s->state, s->kbufs, &d);
		if (st != MPCC_OK && d.status == MPCC_OK)
			mpcc_diag_error(&d, st, "backend '%s' failed to run the plan", s->be->name);
		return mpcc_context_fail(s->cx, &d, st);
	}
	if (!s->be->run_kernel) {
		mpcc_diag_error(&d, MPCC_ERR_UNSUPPORTED,
		                "backend '%s' runs whole plans only, not kernel by kernel",
		                s->be->name);
		return mpcc_context_fail(s->cx, &d, MPCC_ERR_UNSUPPORTED);
	}
	for (int k = 0; k < p->n_kernels; k++) {
		mpcc_status st = s->be->run_kernel(s->state, k, s->kbufs[k], &d);
		if (st != MPCC_OK) {
			if (d.status == MPCC_OK)
				mpcc_diag_error(&d, st, "kernel '%s' failed", p->kernels[k]->name);
			return mpcc_context_fail(s->cx, &d, st);
		}
		if (watch && watch(user, k))
			break;
	}
	return MPCC_OK;
}

MPCC_API mpcc_status
mpcc_session_run(mpcc_session *s)
{
	return run_kernels(s, NULL, NULL);
}

mpcc_status
mpcc_session_run_watched(mpcc_session *s, mpcc_kernel_watch watch, void *user)
{
	return run_kernels(s, watch, user);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* One timed run: ms[i] for launch i, from the backend's timer, or the host
 * clock around each run_kernel call. */
static mpcc_status
run_timed(mpcc_session *s, double *ms, mpcc_diag *d)
{
	const mpcc_plan *p = s->plan;

	if (s->be->run_timed)
		return s->be->run_timed(s->state, s->kbufs, ms, d);
	for (int k = 0; k < p->n_kernels; k++) {
		double t0 = now_ms();
		mpcc_status st = s->be->run_kernel(s->state, k, s->kbufs[k], d);
		ms[k] = now_ms() - t0;
		if (st != MPCC_OK) {
			if (d->status == MPCC_OK)
				mpcc_diag_error(d, st, "kernel '%s' failed", p->kernels[k]->name);
			return st;
		}
	}
	return MPCC_OK;
}

MPCC_API mpcc_status
mpcc_session_profile(mpcc_session *s, int runs, mpcc_launch_time **out, int *n_out)
{
	const mpcc_plan *p = s->plan;
	bool device = s->be->launches && s->be->run_timed;
	mpcc_launch_time *lt = NULL;
	double *ms = NULL, *col = NULL;
	mpcc_status st = MPCC_OK;
	mpcc_diag d;
	int n;

	mpcc_diag_init(&d);
	*out = NULL;
	*n_out = 0;
	if (runs < 1) {
		mpcc_diag_error(&d, MPCC_ERR_INVALID, "profile: runs must be >= 1, got %d", runs);
		return mpcc_context_fail(s->cx, &d, MPCC_ERR_INVALID);
	}
	if (!device && !s->be->run_kernel) {
		mpcc_diag_error(&d, MPCC_ERR_UNSUPPORTED,
		                "profile: backend '%s' cannot time its launches", s->be->name);
		return mpcc_context_fail(s->cx, &d, MPCC_ERR_UNSUPPORTED);
	}
	for (int i = 0; i < p->n_inputs; i++) {
		if (!s->input_set[i]) {
			mpcc_diag_error(&d, MPCC_ERR_INVALID, "input '%s' was never set",
			                p->input_desc[i].name);
			return mpcc_context_fail(s->cx, &d, MPCC_ERR_INVALID);
		}
	}
	n = device ? s->be->launches(s->state, NULL) : p->n_kernels;
	lt = calloc((size_t)n + 1, sizeof(*lt));
	ms = calloc((size_t)n * (size_t)runs + 1, sizeof(double));
	col = calloc((size_t)runs + 1, sizeof(double));
	if (!lt || !ms || !col) {
		st = mpcc_diag_error(&d, MPCC_ERR_NOMEM, "profile: out of memory");
		goto done;
	}
	if (device) {
		s->be->launches(s->state, lt);
	} else {
		for (int k = 0; k < n; k++)
			lt[k] = (mpcc_launch_time){p->kernels[k]->name, k, -1, 0, 0, 0, 0, 0};
	}
	for (int r = 0; r < runs && st == MPCC_OK; r++) {
		st = run_timed(s, ms + (size_t)r * (size_t)n, &d);
		if (st != MPCC_OK && d.status == MPCC_OK)
			mpcc_diag_error(&d, st, "backend '%s' failed to run the plan", s->be->name);
	}
	if (st != MPCC_OK)
		goto done;
	for (int i = 0; i < n; i++) {
		for (int r = 0; r < runs; r++)
			col[r] = ms[(size_t)r * (size_t)n + (size_t)i];
		qsort(col, (size_t)runs, sizeof(double), cmp_double);
		lt[i].min_ms = col[0];
		lt[i].max_ms = col[runs - 1];
		lt[i].median_ms = runs % 2 ? col[runs / 2] : (col[runs / 2 - 1] + col[runs / 2]) / 2;
	}
	*out = lt;
	*n_out = n;
	lt = NULL;
done:
	free(lt);
	free(ms);
	free(col);
	return mpcc_context_fail(s->cx, &d, st);
}

MPCC_API const char *
mpcc_session_backend(const mpcc_session *s)
{
	const char *line = s->be->describe ? s->be->describe(s->state) : NULL;

	return line ? line : s->be->name;
}

MPCC_API mpcc_status
mpcc_session_output(mpcc_session *s, int i, mpcc_tensor *out)
{
	const mpcc_plan *p = s->plan;
	mpcc_diag d;

	mpcc_diag_init(&d);
	if (i < 0 || i >= p->n_outputs) {
		mpcc_diag_error(&d, MPCC_ERR_INVALID, "output %d out of range (the plan has %d)", i,
		                p->n_outputs);
		return mpcc_context_fail(s->cx, &d, MPCC_ERR_INVALID);
	}
	*out = p->output_desc[i];
	out->data = s->tensor_ptr[p->outputs[i]];
	return MPCC_OK;
}
