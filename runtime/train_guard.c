/*
 * train_guard.c - what the collapse guard says when it stops training
 * (mpcc_trainer_set_guard, docs/training.md "Collapse guard").
 *
 * The trainer calls this once, on the step that trips the guard, with that
 * step's inputs still bound in its session. The search for the first
 * non-finite value goes, in schedule order: the plan inputs (a NaN in the
 * data is the most common cause, and a non-finite weight the next), then
 * the tensors each kernel writes. It re-runs the step on a fresh session of
 * the interpreter, whatever backend trains: its tensors are host memory on
 * every machine, it computes what the cpu backend computes bit for bit, and
 * a watched run can look at each kernel's outputs before later kernels
 * reuse their memory. The trainer's own session and state are not touched.
 *
 * What it can name is what the plan materialises: a kernel's written
 * tensors. Inside a fused kernel the value that went non-finite first may
 * be an intermediate held in registers; the message names the kernel's
 * output and the node computing it (the plan's precision report records
 * each node's outputs; casts the precision pass inserted are looked
 * through), or every node of the kernel when the plan has no report. A
 * node of the backward pass is named "grad/<node>/..." after the forward
 * node it differentiates, which the message spells out.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runtime/api_internal.h"
#include "runtime/plan.h"
#include "runtime/train_guard.h"

/* Where a non-finite element was found. */
typedef struct finding {
	int64_t elem;
	bool nan;
} finding;

/* Element i of data (dtype dt) as a double. */
static double
elem(const void *data, mpcc_dtype dt, int64_t i)
{
	switch (dt) {
	case MPCC_DTYPE_F32: return ((const float *)data)[i];
	case MPCC_DTYPE_F64: return ((const double *)data)[i];
	case MPCC_DTYPE_F16: return mpcc_f16_to_f32(((const uint16_t *)data)[i]);
	case MPCC_DTYPE_BF16: return mpcc_bf16_to_f32(((const uint16_t *)data)[i]);
	default: return 0;
	}
}

/* True (and *f filled) when t's data holds an inf or a NaN. */
static bool
non_finite(const mpcc_tensor *t, const void *data, finding *f)
{
	if (!data || !mpcc_dtype_is_float(t->dtype))
		return false;
	int64_t n = (int64_t)(t->nbytes / mpcc_dtype_size(t->dtype));
	for (int64_t i = 0; i < n; i++) {
		double v = elem(data, t->dtype, i);
		if (!isfinite(v)) {
			f->elem = i;
			f->nan = isnan(v);
			return true;
		}
	}
	return false;
}

/* "f16 [64,3]" */
static void
describe(char *buf, size_t n, const mpcc_tensor *t)
{
	int k = snprintf(buf, n, "%s [", mpcc_dtype_name(t->dtype));
	for (int i = 0; i < t->rank && k > 0 && (size_t)k < n; i++)
		k += snprintf(buf + k, n - (size_t)k, i ? ",%lld" : "%lld", (long long)t->dims[i]);
	if (k > 0 && (size_t)k < n)
		snprintf(buf + k, n - (size_t)k, "]");
}

/* The watched run's state: the first kernel output found non-finite. */
typedef struct watch {
	mpcc_session *s;
	const mpcc_plan *p;
	int kernel;
	int32_t tensor;
	finding f;
} watch;

static bool
after_kernel(void *user, int k)
{
	watch *w = user;
	const kir_kernel *kk = w->p->kernels[k];

	for (int b = 0; b < kk->n_bufs; b++) {
		const kir_buf *buf = &kk->bufs[b];
		if (buf->kind != KIR_BUF_PARAM || !buf->written)
			continue;
		const mpcc_plan_tensor *t = &w->p->tensors[buf->value];
		if (non_finite(&t->t, mpcc_session_tensor_data(w->s, buf->value), &w->f)) {
			w->kernel = k;
			w->tensor = buf->value;
			return true;
		}
	}
	return false;
}

/* " (the backward pass of node 'fc1')" for a value named grad/fc1/..., else "". */
static void
backward_of(char *buf, size_t n, const char *value)
{
	buf[0] = 0;
	if (strncmp(value, "grad/", 5) != 0)
		return;
	const char *end = strchr(value + 5, '/');
	if (end)
		snprintf(buf, n, " (the backward pass of node '%.*s')", (int)(end - value - 5),
		         value + 5);
}

/* The node that computes value, from the plan's precision report, looking
 * through the casts the precision pass inserted (a value of the model
 * stored in f16 reaches its f32 output through one); NULL without a report
 * or a record of it. */
static const mpcc_prec_record *
producer_of(const mpcc_plan *p, const char *value)
{
	const mpcc_prec_report *rep = p->prec_report;
	int r = -1;

	if (!rep)
		return NULL;
	for (int i = 0; i < rep->n_records && r < 0; i++)
		for (int o = 0; o < rep->records[i].n_out; o++)
			if (strcmp(rep->records[i].out[o].value, value) == 0)
				r = i;
	while (r >= 0 && strncmp(rep->records[r].id, "cast:", 5) == 0 && rep->records[r].n_in == 1)
		r = rep->records[r].in[0].producer;
	return r >= 0 ? &rep->records[r] : NULL;
}

/* The first non-finite kernel output of a re-run on the interpreter, into
 * msg; false when the re-run found none or could not be made. */
static bool
rerun(mpcc_context *cx, const mpcc_plan *p, void *const *input_data, char *msg, size_t n)
{
	mpcc_session *s = NULL;
	watch w = {.p = p, .kernel = -1};
	bool found = false;

	if (mpcc_session_create(cx, p, "interp", &s) != MPCC_OK)
		return false;
	w.s = s;
	for (int i = 0; i < p->n_inputs; i++) {
		const mpcc_tensor *t = &p->input_desc[i];
		if (mpcc_session_set_input(s, t->name, t->dtype, t->rank, t->dims, input_data[i],
		                           t->nbytes) != MPCC_OK)
			goto done;
	}
	if (mpcc_session_run_watched(s, after_kernel, &w) != MPCC_OK || w.kernel < 0)
		goto done;
	const mpcc_tensor *t = &p->tensors[w.tensor].t;
	const mpcc_prec_record *rec = producer_of(p, t->name);
	char shape[96], bwd[160], by[200];
	describe(shape, sizeof shape, t);
	backward_of(bwd, sizeof bwd, rec ? rec->name : t->name);
	if (rec)
		snprintf(by, sizeof by, "node '%s' (%s)%s", rec->name, rec->op, bwd);
	else
		snprintf(by, sizeof by, "nodes %s%s",
		         p->kernel_nodes && p->kernel_nodes[w.kernel][0] ? p->kernel_nodes[w.kernel]
		                                                         : "(none recorded)", bwd);
	snprintf(msg, n, "the first non-finite value is '%s', %s at element %lld of %s, computed by "
	         "%s in kernel %d '%s'", t->name, w.f.nan ? "NaN" : "inf", (long long)w.f.elem,
	         shape, by, w.kernel, p->kernels[w.kernel]->name);
	found = true;
done:
	mpcc_session_destroy(s);
	return found;
}

void
mpcc_train_guard_explain(mpcc_context *cx, const mpcc_plan *p, int apply,
                         void *const *input_data, char *msg, size_t n)
{
	finding f;
	char shape[96];

	for (int i = 0; i < p->n_inputs; i++) {
		const mpcc_tensor *t = &p->input_desc[i];
		if (i != apply && non_finite(t, input_data[i], &f)) {
			describe(shape, sizeof shape, t);
			snprintf(msg, n, "input '%s' holds %s at element %lld of %s", t->name,
			         f.nan ? "NaN" : "inf", (long long)f.elem, shape);
			return;
		}
	}
	if (!rerun(cx, p, input_data, msg, n))
		snprintf(msg, n, "re-running the step on the interpreter found no non-finite tensor "
		              "(it may be inside a fused kernel's registers only)");
}
