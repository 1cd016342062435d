/*
 * train.c - the trainer: runs a training step plan step after step, and
 * saves and restores its state (include/mpcc.h, docs/training.md).
 *
 * A step plan is an ordinary plan whose section TRAN pairs state inputs
 * with next-state outputs (runtime/plan_train.c). The trainer owns a
 * session and two 64-byte aligned buffers per state pair: `cur`, bound as
 * the state input, and `nxt`, bound as the next-state output. After an
 * applied step the two are swapped and the session's kernel pointers
 * rewired (mpcc_session_bind_tensors), so the state never goes through a
 * copy and no step allocates. Evaluation runs the same plan with the apply
 * input false and never swaps, so the state cannot change.
 *
 * Checkpoints are a small file of their own (docs/training.md): the state
 * tensors by name, dtype, shape and bytes and the skip counts, closed by
 * the plan format's FNV-1a checksum. Loading validates all of it before
 * touching the trainer, so a refused file leaves the trainer as it was.
 *
 * Export writes the trained weights into the ONNX model the plan was
 * compiled from (section ONNX), for ONNX Runtime, torch or another mpcc
 * compile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/onnx.h"
#include "runtime/api_internal.h"
#include "runtime/plan.h"
#include "runtime/train_guard.h"

#define ALIGN 64
#define CKPT_VERSION 1
#define CKPT_HEADER 40 /* magic, version, count, three u64 counts */

static const char ckpt_magic[8] = {'M', 'P', 'C', 'C', 'C', 'K', 'P', 'T'};

struct mpcc_trainer {
	mpcc_context *cx;
	const mpcc_plan *plan;
	const mpcc_plan_train *tp;
	mpcc_session *s;
	int n_in;               /* inputs the caller gives */
	int *in_pos;            /* their plan input positions */
	bool *given;            /* per caller input: seen in this call (scratch) */
	int label;              /* index in in_pos, or -1 */
	uint8_t **cur, **nxt;   /* per state: this step's value, the next one */
	mpcc_tensor *view;      /* per state: what mpcc_trainer_state hands out */
	int32_t *bind_t;        /* tensors to rebind after a swap ... */
	void **bind_p;          /* ... and where they go */
	int n_bind;
	mpcc_train_counts counts;
	double guard_min_scale;   /* mpcc_trainer_set_guard; 0: off */
	uint64_t guard_max_skips;
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

static const mpcc_plan_tensor *
input_tensor(const mpcc_plan *p, int pos)
{
	return &p->tensors[p->inputs[pos]];
}

static const mpcc_plan_tensor *
output_tensor(const mpcc_plan *p, int pos)
{
	return &p->tensors[p->outputs[pos]];
}

/* A next-state output that a kernel writes gets its own buffer (swapped);
 * one that is an input or a constant is copied instead. */
static bool
out_written(const mpcc_plan *p, const mpcc_plan_state *st)
{
	return !(output_tensor(p, st->out)->flags & (MPCC_TENSOR_INPUT | MPCC_TENSOR_WEIGHT));
}

/* Binds every state input to cur and every written next-state output to
 * nxt, and points the views at cur. */
static void
rebind(mpcc_trainer *tr)
{
	const mpcc_plan *p = tr->plan;

	tr->n_bind = 0;
	for (int i = 0; i < tr->tp->n_state; i++) {
		const mpcc_plan_state *st = &tr->tp->state[i];
		tr->bind_t[tr->n_bind] = p->inputs[st->in];
		tr->bind_p[tr->n_bind++] = tr->cur[i];
		if (out_written(p, st)) {
			tr->bind_t[tr->n_bind] = p->outputs[st->out];
			tr->bind_p[tr->n_bind++] = tr->nxt[i];
		}
		tr->view[i].data = tr->cur[i];
	}
	mpcc_session_bind_tensors(tr->s, tr->n_bind, tr->bind_t, tr->bind_p);
}

MPCC_API void
mpcc_trainer_destroy(mpcc_trainer *tr)
{
	if (!tr)
		return;
	for (int i = 0; tr->tp && i < tr->tp->n_state; i++) {
		if (tr->cur)
			free(tr->cur[i]);
		if (tr->nxt)
			free(tr->nxt[i]);
	}
	free(tr->cur);
	free(tr->nxt);
	free(tr->view);
	free(tr->bind_t);
	free(tr->bind_p);
	free(tr->in_pos);
	free(tr->given);
	mpcc_session_destroy(tr->s);
	free(tr);
}

static bool
is_state_input(const mpcc_plan_train *tp, int pos)
{
	for (int i = 0; i < tp->n_state; i++)
		if (tp->state[i].in == pos)
			return true;
	return false;
}

/* Everything but the session: the caller's inputs, the state buffers with
 * their initial values, the views and the rebinding lists. */
static mpcc_status
trainer_alloc(mpcc_trainer *tr)
{
	const mpcc_plan *p = tr->plan;
	const mpcc_plan_train *tp = tr->tp;
	size_t ns = (size_t)tp->n_state + 1;

	tr->in_pos = calloc((size_t)p->n_inputs + 1, sizeof(int));
	tr->given = calloc((size_t)p->n_inputs + 1, sizeof(bool));
	tr->cur = calloc(ns, sizeof(uint8_t *));
	tr->nxt = calloc(ns, sizeof(uint8_t *));
	tr->view = calloc(ns, sizeof(mpcc_tensor));
	tr->bind_t = calloc(2 * ns, sizeof(int32_t));
	tr->bind_p = calloc(2 * ns, sizeof(void *));
	if (!tr->in_pos || !tr->given || !tr->cur || !tr->nxt || !tr->view || !tr->bind_t ||
	    !tr->bind_p)
		return MPCC_ERR_NOMEM;
	tr->label = -1;
	for (int i = 0; i < p->n_inputs; i++) {
		if (i == tp->apply || is_state_input(tp, i))
			continue;
		if (i == tp->label)
			tr->label = tr->n_in;
		tr->in_pos[tr->n_in++] = i;
	}
	for (int i = 0; i < tp->n_state; i++) {
		const mpcc_plan_tensor *t = input_tensor(p, tp->state[i].in);
		tr->cur[i] = alloc_aligned(t->t.nbytes);
		tr->nxt[i] = alloc_aligned(t->t.nbytes);
		if (!tr->cur[i] || !tr->nxt[i])
			return MPCC_ERR_NOMEM;
		memcpy(tr->cur[i], tp->state[i].init, t->t.nbytes);
		tr->view[i] = t->t;
	}
	return MPCC_OK;
}

/*
 * Why the session is created first: it is where an unknown backend or a
 * JIT failure is reported, with the session's own message, and the state
 * buffers can only be bound once it exists.
 */
MPCC_API mpcc_status
mpcc_trainer_create(mpcc_context *cx, const mpcc_plan *plan, const char *backend,
                    mpcc_trainer **out)
{
	mpcc_trainer *tr;
	mpcc_diag d;
	mpcc_status st;

	*out = NULL;
	mpcc_diag_init(&d);
	if (!plan || !plan->train) {
		mpcc_diag_error(&d, MPCC_ERR_INVALID,
		                "the plan is not a training step plan (it has no section 'TRAN')");
		return mpcc_context_fail(cx, &d, MPCC_ERR_INVALID);
	}
	tr = calloc(1, sizeof(*tr));
	if (!tr) {
		mpcc_diag_error(&d, MPCC_ERR_NOMEM, "out of memory creating a trainer");
		return mpcc_context_fail(cx, &d, MPCC_ERR_NOMEM);
	}
	tr->cx = cx;
	tr->guard_min_scale = 1.0;
	tr->guard_max_skips = 32;
	tr->plan = plan;
	tr->tp = plan->train;
	st = mpcc_session_create(cx, plan, backend, &tr->s);
	if (st != MPCC_OK) {
		mpcc_trainer_destroy(tr);
		return st; /* the session has set the message */
	}
	if (trainer_alloc(tr) != MPCC_OK) {
		mpcc_trainer_destroy(tr);
		mpcc_diag_error(&d, MPCC_ERR_NOMEM, "out of memory for the training state");
		return mpcc_context_fail(cx, &d, MPCC_ERR_NOMEM);
	}
	rebind(tr);
	*out = tr;
	return MPCC_OK;
}

MPCC_API int
mpcc_trainer_n_inputs(const mpcc_trainer *tr)
{
	return tr->n_in;
}

MPCC_API const mpcc_tensor *
mpcc_trainer_input(const mpcc_trainer *tr, int i)
{
	return i >= 0 && i < tr->n_in ? &tr->plan->input_desc[tr->in_pos[i]] : NULL;
}

MPCC_API const mpcc_tensor *
mpcc_trainer_label(const mpcc_trainer *tr)
{
	return tr->label >= 0 ? mpcc_trainer_input(tr, tr->label) : NULL;
}

MPCC_API const char *
mpcc_trainer_recipe(const mpcc_trainer *tr)
{
	return tr->tp->recipe;
}

MPCC_API int
mpcc_trainer_n_state(const mpcc_trainer *tr)
{
	return tr->tp->n_state;
}

MPCC_API mpcc_status
mpcc_trainer_state(mpcc_trainer *tr, int i, const mpcc_tensor **t)
{
	mpcc_diag d;

	*t = NULL;
	if (i < 0 || i >= tr->tp->n_state) {
		mpcc_diag_init(&d);
		mpcc_diag_error(&d, MPCC_ERR_INVALID, "state %d out of range (the plan has %d)", i,
		                tr->tp->n_state);
		return mpcc_context_fail(tr->cx, &d, MPCC_ERR_INVALID);
	}
	*t = &tr->view[i];
	return MPCC_OK;
}

MPCC_API void
mpcc_trainer_counts(const mpcc_trainer *tr, mpcc_train_counts *out)
{
	*out = tr->counts;
}

/* ---------------------------------------------------------------- stepping */

/* Element 0 of a float or bool tensor as a double. */
static double
scalar_value(const mpcc_tensor *t)
{
	const uint8_t *b = t->data;
	uint16_t h;
	float f;
	double x;

	switch (t->dtype) {
	case MPCC_DTYPE_F32: memcpy(&f, b, 4); return f;
	case MPCC_DTYPE_F64: memcpy(&x, b, 8); return x;
	case MPCC_DTYPE_F16: memcpy(&h, b, 2); return mpcc_f16_to_f32(h);
	case MPCC_DTYPE_BF16: memcpy(&h, b, 2); return mpcc_bf16_to_f32(h);
	case MPCC_DTYPE_BOOL: return b[0] != 0;
	default: return 0;
	}
}

/* Which plan input, if any, is named name; -1 if none. */
static int
plan_input_named(const mpcc_plan *p, const char *name)
{
	for (int i = 0; name && i < p->n_inputs; i++)
		if (strcmp(p->input_desc[i].name, name) == 0)
			return i;
	return -1;
}

/* Binds the caller's inputs by name; every one exactly once. */
static mpcc_status
bind_inputs(mpcc_trainer *tr, const mpcc_tensor *inputs, int n, mpcc_diag *d)
{
	const mpcc_plan *p = tr->plan;

	if (n < 0 || (n > 0 && !inputs))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "bad input array (%d inputs)", n);
	memset(tr->given, 0, sizeof(bool) * (size_t)(tr->n_in + 1));
	for (int j = 0; j < n; j++) {
		const mpcc_tensor *t = &inputs[j];
		int pos = plan_input_named(p, t->name), k;
		for (k = 0; k < tr->n_in && tr->in_pos[k] != pos; k++)
			;
		if (pos >= 0 && k == tr->n_in)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "input '%s' is the %s, which the trainer binds itself",
			                       t->name, pos == tr->tp->apply ? "apply switch"
			                                                     : "training state");
		if (pos < 0) {
			char list[300] = "";
			size_t used = 0;
			for (int i = 0; i < tr->n_in && used < sizeof(list); i++)
				used += (size_t)snprintf(list + used, sizeof(list) - used, "%s'%s'",
				                         i ? ", " : "", p->input_desc[tr->in_pos[i]].name);
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "no input named '%s' (the trainer's inputs: %s)",
			                       t->name ? t->name : "(null)", tr->n_in ? list : "none");
		}
		if (tr->given[k])
			return mpcc_diag_error(d, MPCC_ERR_INVALID, "input '%s' given twice", t->name);
		tr->given[k] = true;
		if (mpcc_session_set_input(tr->s, t->name, t->dtype, t->rank, t->dims, t->data,
		                           t->nbytes) != MPCC_OK)
			return mpcc_diag_error(d, MPCC_ERR_INVALID, "%s",
			                       mpcc_context_last_error(tr->cx));
	}
	for (int k = 0; k < tr->n_in; k++)
		if (!tr->given[k])
			return mpcc_diag_error(d, MPCC_ERR_INVALID, "%s '%s' is missing",
			                       k == tr->label ? "the label" : "input",
			                       p->input_desc[tr->in_pos[k]].name);
	return MPCC_OK;
}

/* After an applied step: every state's next value becomes its value. Copies
 * (next-state outputs that are inputs or constants) are made into nxt first,
 * all before any swap, so they read this step's values. */
static void
advance(mpcc_trainer *tr)
{
	const mpcc_plan *p = tr->plan;

	for (int i = 0; i < tr->tp->n_state; i++) {
		const mpcc_plan_state *st = &tr->tp->state[i];
		if (!out_written(p, st))
			memcpy(tr->nxt[i], mpcc_session_tensor_data(tr->s, p->outputs[st->out]),
			       input_tensor(p, st->in)->t.nbytes);
	}
	for (int i = 0; i < tr->tp->n_state; i++) {
		uint8_t *t = tr->cur[i];
		tr->cur[i] = tr->nxt[i];
		tr->nxt[i] = t;
	}
	rebind(tr);
}

/* Whether the skipped step r trips the collapse guard. */
static bool
guard_trips(const mpcc_trainer *tr, const mpcc_train_result *r)
{
	return (tr->guard_max_skips && tr->counts.consecutive_skips >= tr->guard_max_skips) ||
	       (tr->guard_min_scale > 0 && tr->tp->loss_scale >= 0 &&
	        r->loss_scale < tr->guard_min_scale);
}

/* The guard's message into d: why it tripped and where the step first went
 * non-finite (runtime/train_guard.c), from the inputs still bound. */
static void
trip(mpcc_trainer *tr, const mpcc_train_result *r, mpcc_diag *d)
{
	const mpcc_plan *p = tr->plan;
	void **data = malloc(sizeof(void *) * ((size_t)p->n_inputs + 1));
	char where[400], why[120];

	if (tr->counts.consecutive_skips >= tr->guard_max_skips && tr->guard_max_skips)
		snprintf(why, sizeof why, "%llu step%s in a row skipped",
		         (unsigned long long)tr->counts.consecutive_skips,
		         tr->counts.consecutive_skips == 1 ? "" : "s");
	else
		snprintf(why, sizeof why, "the loss scale fell to %g (floor %g)", r->loss_scale,
		         tr->guard_min_scale);
	if (!data) {
		snprintf(where, sizeof where, "out of memory looking for the first non-finite value");
	} else {
		for (int i = 0; i < p->n_inputs; i++)
			data[i] = mpcc_session_tensor_data(tr->s, p->inputs[i]);
		mpcc_train_guard_explain(tr->cx, p, tr->tp->apply, data, where, sizeof where);
	}
	free(data);
	mpcc_diag_error(d, MPCC_ERR_DIVERGED, "training stopped at step %llu: %s; %s",
	                (unsigned long long)tr->counts.steps, why, where);
}

static mpcc_status
run(mpcc_trainer *tr, const mpcc_tensor *inputs, int n, bool apply, mpcc_train_result *r)
{
	const mpcc_plan *p = tr->plan;
	const mpcc_plan_train *tp = tr->tp;
	mpcc_tensor t;
	mpcc_diag d;
	mpcc_status st;

	mpcc_diag_init(&d);
	memset(r, 0, sizeof(*r));
	if ((st = bind_inputs(tr, inputs, n, &d)) != MPCC_OK)
		return mpcc_context_fail(tr->cx, &d, st);
	if (tp->apply >= 0) {
		const mpcc_tensor *a = &p->input_desc[tp->apply];
		uint8_t v = apply;
		if ((st = mpcc_session_set_input(tr->s, a->name, a->dtype, a->rank, a->dims, &v, 1)))
			return st;
	}
	if ((st = mpcc_session_run(tr->s)) != MPCC_OK)
		return st;
	mpcc_session_output(tr->s, tp->loss, &t);
	r->loss = scalar_value(&t);
	r->loss_scale = 1;
	if (tp->loss_scale >= 0) {
		mpcc_session_output(tr->s, tp->loss_scale, &t);
		r->loss_scale = scalar_value(&t);
	}
	if (tp->logits >= 0)
		mpcc_session_output(tr->s, tp->logits, &r->logits);
	if (apply) {
		if (tp->ok >= 0) {
			mpcc_session_output(tr->s, tp->ok, &t);
			r->skipped = scalar_value(&t) == 0;
		}
		tr->counts.steps++;
		if (r->skipped) {
			tr->counts.skipped++;
			tr->counts.consecutive_skips++;
		} else {
			tr->counts.consecutive_skips = 0;
		}
		if (r->skipped && guard_trips(tr, r)) {
			trip(tr, r, &d);
			advance(tr);
			r->step = tr->counts.steps;
			return mpcc_context_fail(tr->cx, &d, MPCC_ERR_DIVERGED);
		}
		advance(tr);
	}
	r->step = tr->counts.steps;
	return MPCC_OK;
}

MPCC_API mpcc_status
mpcc_trainer_step(mpcc_trainer *tr, const mpcc_tensor *inputs, int n, mpcc_train_result *r)
{
	return run(tr, inputs, n, true, r);
}

MPCC_API void
mpcc_trainer_set_guard(mpcc_trainer *tr, double min_loss_scale, uint64_t max_consecutive_skips)
{
	tr->guard_min_scale = min_loss_scale > 0 ? min_loss_scale : 0;
	tr->guard_max_skips = max_consecutive_skips;
}

MPCC_API mpcc_status
mpcc_trainer_eval(mpcc_trainer *tr, const mpcc_tensor *inputs, int n, mpcc_train_result *r)
{
	return run(tr, inputs, n, false, r);
}

/* ---------------------------------------------------------------- checkpoints */

MPCC_API mpcc_status
mpcc_trainer_save(mpcc_trainer *tr, const char *path)
{
	kir_writer w = {0};
	mpcc_diag d;
	mpcc_status st;

	mpcc_diag_init(&d);
	kir_write_bytes(&w, ckpt_magic, 8);
	mpcc_plan_put_u32(&w, CKPT_VERSION);
	mpcc_plan_put_u32(&w, (uint32_t)tr->tp->n_state);
	mpcc_plan_put_u64(&w, tr->counts.steps);
	mpcc_plan_put_u64(&w, tr->counts.skipped);
	mpcc_plan_put_u64(&w, tr->counts.consecutive_skips);
	for (int i = 0; i < tr->tp->n_state; i++) {
		const mpcc_tensor *t = &tr->view[i];
		mpcc_plan_put_u32(&w, (uint32_t)strlen(t->name));
		kir_write_bytes(&w, t->name, strlen(t->name));
		mpcc_plan_put_u32(&w, (uint32_t)t->dtype);
		mpcc_plan_put_u32(&w, (uint32_t)t->rank);
		for (int k = 0; k < t->rank; k++)
			mpcc_plan_put_u64(&w, (uint64_t)t->dims[k]);
		mpcc_plan_put_u64(&w, t->nbytes);
		kir_write_bytes(&w, tr->cur[i], t->nbytes);
	}
	if (!w.failed)
		mpcc_plan_put_u64(&w, mpcc_fnv1a64(w.data, w.size));
	if (w.failed) {
		free(w.data);
		mpcc_diag_error(&d, MPCC_ERR_NOMEM, "out of memory writing checkpoint '%s'", path);
		return mpcc_context_fail(tr->cx, &d, MPCC_ERR_NOMEM);
	}
	st = mpcc_write_whole_file(path, w.data, w.size, &d);
	free(w.data);
	return mpcc_context_fail(tr->cx, &d, st);
}

typedef struct cursor {
	const uint8_t *b;
	size_t size, pos;
	bool short_read;
} cursor;

static uint64_t
get_le(cursor *c, int n)
{
	uint64_t v = 0;

	if (c->short_read || c->size - c->pos < (size_t)n) {
		c->short_read = true;
		return 0;
	}
	for (int i = 0; i < n; i++)
		v |= (uint64_t)c->b[c->pos + (size_t)i] << (8 * i);
	c->pos += (size_t)n;
	return v;
}

static const char *
shape_str(char *buf, size_t n, mpcc_dtype dt, int rank, const int64_t *dims)
{
	size_t used = (size_t)snprintf(buf, n, "%s [", mpcc_dtype_name(dt));

	for (int i = 0; i < rank && used < n; i++)
		used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? "," : "",
		                         (long long)dims[i]);
	if (used < n)
		snprintf(buf + used, n - used, "]");
	return buf;
}

/*
 * Why matching is by name and not by position: a checkpoint names what it
 * holds, so one made by another build of the same model (state in another
 * order) still loads, and one of another model is refused by name. Data
 * offsets are collected first and copied only once everything checked out.
 */
static mpcc_status
parse_checkpoint(mpcc_trainer *tr, const uint8_t *b, size_t size, size_t *data_off,
                 mpcc_train_counts *counts, mpcc_diag *d)
{
	const mpcc_plan_train *tp = tr->tp;
	cursor c = {b, size, 0, false};
	bool *seen;
	mpcc_status st = MPCC_OK;
	char want[200], got[200];

	if (size < 8 || memcmp(b, ckpt_magic, 8) != 0)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "not an mpcc checkpoint (bad magic)");
	if (size < CKPT_HEADER + 8)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "damaged checkpoint: %zu bytes, shorter than its header", size);
	c.size = size - 8; /* the checksum closes the file */
	c.pos = 8;
	cursor tail = {b, size, size - 8, false};
	if (get_le(&tail, 8) != mpcc_fnv1a64(b, size - 8))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "damaged checkpoint: checksum mismatch");
	uint32_t version = (uint32_t)get_le(&c, 4), n = (uint32_t)get_le(&c, 4);
	if (version == 0 || version > CKPT_VERSION)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "checkpoint version %u, this mpcc reads %d", version,
		                       CKPT_VERSION);
	counts->steps = get_le(&c, 8);
	counts->skipped = get_le(&c, 8);
	counts->consecutive_skips = get_le(&c, 8);
	if (n != (uint32_t)tp->n_state)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "checkpoint holds %u tensors, the plan's state has %d", n,
		                       tp->n_state);
	seen = calloc((size_t)n + 1, sizeof(bool));
	if (!seen)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory reading a checkpoint");
	for (uint32_t i = 0; i < n && st == MPCC_OK; i++) {
		uint32_t len = (uint32_t)get_le(&c, 4);
		if (c.short_read || len > c.size - c.pos) {
			st = mpcc_diag_error(d, MPCC_ERR_INVALID, "damaged checkpoint: tensor %u truncated",
			                     i);
			break;
		}
		const char *name = (const char *)b + c.pos;
		c.pos += len;
		int k;
		for (k = 0; k < tp->n_state; k++)
			if (strlen(tr->view[k].name) == len && memcmp(tr->view[k].name, name, len) == 0)
				break;
		if (k == tp->n_state || seen[k]) {
			st = mpcc_diag_error(d, MPCC_ERR_INVALID, "checkpoint tensor '%.*s' is %s",
			                     (int)(len > 100 ? 100 : len), name,
			                     k == tp->n_state ? "not state of this plan" : "there twice");
			break;
		}
		seen[k] = true;
		const mpcc_tensor *t = &tr->view[k];
		uint32_t dtype = (uint32_t)get_le(&c, 4), rank = (uint32_t)get_le(&c, 4);
		int64_t dims[MPCC_MAX_RANK] = {0};
		bool same = !c.short_read && rank <= MPCC_MAX_RANK && dtype == (uint32_t)t->dtype &&
		            rank == (uint32_t)t->rank;
		for (uint32_t j = 0; j < rank && j < MPCC_MAX_RANK; j++) {
			dims[j] = (int64_t)get_le(&c, 8);
			same = same && dims[j] == t->dims[j];
		}
		uint64_t nbytes = get_le(&c, 8);
		if (c.short_read) {
			st = mpcc_diag_error(d, MPCC_ERR_INVALID,
			                     "damaged checkpoint: tensor '%s' truncated", t->name);
		} else if (!same) {
			bool known = rank <= MPCC_MAX_RANK && dtype > 0 && dtype < MPCC_DTYPE_COUNT;
			st = mpcc_diag_error(d, MPCC_ERR_INVALID,
			                     "checkpoint tensor '%s' is %s, the plan's state is %s",
			                     t->name, known ? shape_str(got, sizeof(got), (mpcc_dtype)dtype,
			                                                (int)rank, dims)
			                                    : "of an unknown type",
			                     shape_str(want, sizeof(want), t->dtype, t->rank, t->dims));
		} else if (nbytes != t->nbytes || nbytes > c.size - c.pos) {
			st = mpcc_diag_error(d, MPCC_ERR_INVALID,
			                     "damaged checkpoint: tensor '%s' holds %llu bytes, %zu "
			                     "expected", t->name, (unsigned long long)nbytes, t->nbytes);
		} else {
			data_off[k] = c.pos;
			c.pos += (size_t)nbytes;
		}
	}
	free(seen);
	if (st == MPCC_OK && c.pos != c.size)
		st = mpcc_diag_error(d, MPCC_ERR_INVALID, "damaged checkpoint: %zu trailing bytes",
		                     c.size - c.pos);
	if (st == MPCC_OK && counts->skipped > counts->steps)
		st = mpcc_diag_error(d, MPCC_ERR_INVALID,
		                     "damaged checkpoint: %llu skipped steps of %llu",
		                     (unsigned long long)counts->skipped,
		                     (unsigned long long)counts->steps);
	return st;
}

MPCC_API mpcc_status
mpcc_trainer_load(mpcc_trainer *tr, const char *path)
{
	void *buf = NULL;
	size_t size = 0, *off;
	mpcc_train_counts counts;
	mpcc_diag d;
	mpcc_status st;

	mpcc_diag_init(&d);
	off = calloc((size_t)tr->tp->n_state + 1, sizeof(size_t));
	if (!off) {
		mpcc_diag_error(&d, MPCC_ERR_NOMEM, "out of memory reading a checkpoint");
		return mpcc_context_fail(tr->cx, &d, MPCC_ERR_NOMEM);
	}
	st = mpcc_read_whole_file(path, &buf, &size, &d);
	if (st == MPCC_OK) {
		st = parse_checkpoint(tr, buf, size, off, &counts, &d);
		if (st != MPCC_OK)
			mpcc_diag_prefix(&d, path);
	}
	if (st == MPCC_OK) {
		for (int i = 0; i < tr->tp->n_state; i++)
			memcpy(tr->cur[i], (const uint8_t *)buf + off[i], tr->view[i].nbytes);
		tr->counts = counts;
	}
	free(buf);
	free(off);
	return mpcc_context_fail(tr->cx, &d, st);
}

/* ---------------------------------------------------------------- export */

/* The trained weights as f32 tensors named after their initializers: a
 * view of the state, or (f16/bf16 state, --low-io) a widened copy in
 * copies[i], which the caller frees. */
static mpcc_status
weights_f32(mpcc_trainer *tr, const mpcc_plan_source *src, mpcc_tensor *w, float **copies,
            mpcc_diag *d)
{
	for (int i = 0; i < src->n_weights; i++) {
		const mpcc_tensor *t = &tr->view[src->weights[i]];
		w[i] = *t;
		if (t->dtype == MPCC_DTYPE_F32)
			continue;
		size_t n = t->nbytes / 2;
		const uint16_t *h = t->data;
		copies[i] = malloc(sizeof(float) * (n ? n : 1));
		if (!copies[i])
			return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory exporting the model");
		for (size_t k = 0; k < n; k++)
			copies[i][k] = t->dtype == MPCC_DTYPE_F16 ? mpcc_f16_to_f32(h[k])
			                                          : mpcc_bf16_to_f32(h[k]);
		w[i].dtype = MPCC_DTYPE_F32;
		w[i].data = copies[i];
		w[i].nbytes = sizeof(float) * n;
	}
	return MPCC_OK;
}

/*
 * Why export goes through the stored source model instead of rebuilding
 * ONNX from the plan: the plan holds the step graph, lowered, fused and
 * cast for one precision; the source holds the model as its author wrote
 * it, which is what ONNX Runtime or torch should get back, new weights
 * aside. The states that are trained initializers are listed in the
 * plan's section ONNX; the optimizer's and scaler's are not exported.
 */
MPCC_API mpcc_status
mpcc_trainer_export(mpcc_trainer *tr, const char *path)
{
	const mpcc_plan_source *src = tr->plan->source;
	mpcc_tensor *w = NULL;
	float **copies = NULL;
	void *buf = NULL;
	size_t size = 0;
	mpcc_diag d;
	mpcc_status st;

	mpcc_diag_init(&d);
	if (!src) {
		mpcc_diag_error(&d, MPCC_ERR_UNSUPPORTED,
		                "plan has no source model: recompile it with this mpcc");
		return mpcc_context_fail(tr->cx, &d, MPCC_ERR_UNSUPPORTED);
	}
	w = calloc((size_t)src->n_weights + 1, sizeof(*w));
	copies = calloc((size_t)src->n_weights + 1, sizeof(*copies));
	if (!w || !copies)
		st = mpcc_diag_error(&d, MPCC_ERR_NOMEM, "out of memory exporting the model");
	else
		st = weights_f32(tr, src, w, copies, &d);
	if (st == MPCC_OK)
		st = mpcc_onnx_update_initializers(src->model, src->model_size, w, src->n_weights,
		                                   &buf, &size, &d);
	if (st == MPCC_OK)
		st = mpcc_write_whole_file(path, buf, size, &d);
	for (int i = 0; copies && i < src->n_weights; i++)
		free(copies[i]);
	free(copies);
	free(w);
	free(buf);
	return mpcc_context_fail(tr->cx, &d, st);
}
