/*
 * plan_train.c - section TRAN of the plan: what makes a plan a training
 * step plan (docs/plan-format.md, docs/training.md).
 *
 * The step graph reads the training state as ordinary inputs and writes its
 * next value as ordinary outputs; this section says which input pairs with
 * which output, holds each state's first value, and names the inputs and
 * outputs that play a role for the trainer (label, loss, logits, loss scale,
 * the "update applied" flag and the "apply" switch), all by position in the
 * plan's input and output lists. The section is optional, so inference plans
 * and older readers are unaffected. Loading checks every position against
 * the I/O lists and every size, dtype and shape against the tensor table,
 * and refuses a damaged section with one line naming the field.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "runtime/plan.h"

#define TRAN_VERSION 1
#define NO_INDEX 0xffffffffu /* an absent role */

/* ---------------------------------------------------------------- building */

static int32_t
position(const int32_t *list, int n, int32_t v)
{
	for (int i = 0; i < n; i++)
		if (list[i] == v)
			return i;
	return -1;
}

/* The initial value in the plan tensor's dtype: a copy, or f32 rounded to
 * f16/bf16 when the precision pass lowered the input (--low-io). */
static mpcc_status
convert_init(mpcc_plan *p, const mpcc_train_state *s, const mpcc_plan_tensor *t,
             const uint8_t **out, mpcc_diag *d)
{
	uint8_t *b = mpcc_arena_alloc(&p->arena, t->t.nbytes ? t->t.nbytes : 1);
	size_t n = t->t.nbytes / (mpcc_dtype_size(t->t.dtype) ? mpcc_dtype_size(t->t.dtype) : 1);

	if (!b)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory building the plan");
	if (s->init_dtype == t->t.dtype && s->init_nbytes == t->t.nbytes) {
		memcpy(b, s->init, t->t.nbytes);
	} else if (s->init_dtype == MPCC_DTYPE_F32 && s->init_nbytes == n * 4 &&
	           (t->t.dtype == MPCC_DTYPE_F16 || t->t.dtype == MPCC_DTYPE_BF16)) {
		for (size_t i = 0; i < n; i++) {
			float f;
			memcpy(&f, (const uint8_t *)s->init + 4 * i, 4);
			uint16_t h = t->t.dtype == MPCC_DTYPE_F16 ? mpcc_f32_to_f16(f) : mpcc_f32_to_bf16(f);
			memcpy(b + 2 * i, &h, 2);
		}
	} else {
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "training: state '%s' is stored as %s; its initial value (%zu "
		                       "bytes of %s) cannot be converted", t->t.name,
		                       mpcc_dtype_name(t->t.dtype), s->init_nbytes,
		                       mpcc_dtype_name(s->init_dtype));
	}
	*out = b;
	return MPCC_OK;
}

/*
 * Why positions and not tensor indices: the trainer binds inputs and reads
 * outputs through the session, which numbers them by position, and a
 * position also says "this is a graph input/output" without a second check.
 * The plan's I/O lists follow the graph's, entry for entry.
 */
mpcc_status
mpcc_plan_train_build(mpcc_plan *p, const mpcc_graph *g, mpcc_diag *d)
{
	const mpcc_train_info *gt = g->train;
	mpcc_plan_train *t;
	mpcc_status st;

	if ((st = mpcc_train_verify(g, d)) != MPCC_OK)
		return st;
	if (p->n_inputs != g->n_inputs || p->n_outputs != g->n_outputs)
		return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "plan: I/O lists differ from the graph's");
	t = mpcc_arena_alloc(&p->arena, sizeof(*t));
	if (t)
		t->state = mpcc_arena_alloc(&p->arena, sizeof(*t->state) * ((size_t)gt->n_state + 1));
	if (t && gt->recipe)
		t->recipe = mpcc_arena_strdup(&p->arena, gt->recipe);
	else if (t)
		t->recipe = "";
	if (!t || !t->state || !t->recipe)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory building the plan");
	t->label = position(g->inputs, g->n_inputs, gt->label);
	t->apply = position(g->inputs, g->n_inputs, gt->apply);
	t->loss = position(g->outputs, g->n_outputs, gt->loss);
	t->logits = position(g->outputs, g->n_outputs, gt->logits);
	t->loss_scale = position(g->outputs, g->n_outputs, gt->loss_scale);
	t->ok = position(g->outputs, g->n_outputs, gt->ok);
	for (int i = 0; i < gt->n_state; i++) {
		mpcc_plan_state *s = &t->state[i];
		s->in = position(g->inputs, g->n_inputs, gt->state[i].in);
		s->out = position(g->outputs, g->n_outputs, gt->state[i].out);
		if (s->in < 0 || s->out < 0)
			return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "plan: training state %d lost", i);
		const mpcc_plan_tensor *ti = &p->tensors[p->inputs[s->in]];
		const mpcc_plan_tensor *to = &p->tensors[p->outputs[s->out]];
		if (ti->t.dtype != to->t.dtype || ti->t.nbytes != to->t.nbytes)
			return mpcc_diag_error(d, MPCC_ERR_INTERNAL,
			                       "plan: state '%s' is %s, its next value '%s' %s",
			                       ti->t.name, mpcc_dtype_name(ti->t.dtype), to->t.name,
			                       mpcc_dtype_name(to->t.dtype));
		if ((st = convert_init(p, &gt->state[i], ti, &s->init, d)) != MPCC_OK)
			return st;
	}
	for (int i = 0; i < gt->n_state; i++)
		for (int k = 0; k < i; k++)
			if (p->outputs[t->state[k].out] == p->outputs[t->state[i].out])
				return mpcc_diag_error(d, MPCC_ERR_INTERNAL,
				                       "plan: training states %d and %d share an output", k, i);
	t->n_state = gt->n_state;
	p->train = t;
	return MPCC_OK;
}

/* ---------------------------------------------------------------- writing */

static void
put_index(kir_writer *w, int32_t v)
{
	mpcc_plan_put_u32(w, v < 0 ? NO_INDEX : (uint32_t)v);
}

void
mpcc_plan_train_write(kir_writer *w, const mpcc_plan *p)
{
	const mpcc_plan_train *t = p->train;
	size_t len = strlen(t->recipe);

	mpcc_plan_put_u32(w, TRAN_VERSION);
	mpcc_plan_put_u32(w, (uint32_t)len);
	kir_write_bytes(w, t->recipe, len);
	put_index(w, t->label);
	put_index(w, t->loss);
	put_index(w, t->logits);
	put_index(w, t->loss_scale);
	put_index(w, t->ok);
	put_index(w, t->apply);
	mpcc_plan_put_u32(w, (uint32_t)t->n_state);
	for (int i = 0; i < t->n_state; i++) {
		size_t n = p->tensors[p->inputs[t->state[i].in]].t.nbytes;
		mpcc_plan_put_u32(w, (uint32_t)t->state[i].in);
		mpcc_plan_put_u32(w, (uint32_t)t->state[i].out);
		mpcc_plan_put_u32(w, (uint32_t)n);
		mpcc_plan_put_u32(w, (uint32_t)((uint64_t)n >> 32));
		kir_write_bytes(w, t->state[i].init, n);
	}
}

/* ---------------------------------------------------------------- reading */

/* A role's position: NO_INDEX (allowed unless required) or below n. */
static mpcc_status
read_role(mpcc_plan_reader *c, const char *role, int n, bool required, int32_t *out, mpcc_diag *d)
{
	uint32_t v = mpcc_plan_get_u32(c);

	if (c->short_read)
		return mpcc_plan_damaged(d, "TRAN", "truncated before the %s", role);
	if (v == NO_INDEX && !required) {
		*out = -1;
		return MPCC_OK;
	}
	if (v >= (uint32_t)n)
		return mpcc_plan_damaged(d, "TRAN", "%s: position %u, the plan has %d", role, v, n);
	*out = (int32_t)v;
	return MPCC_OK;
}

static int64_t
numel(const mpcc_tensor *t)
{
	int64_t n = 1;

	for (int i = 0; i < t->rank; i++)
		n *= t->dims[i];
	return n;
}

/* A role's tensor: one element when scalar; bool, or a float when !is_bool. */
static mpcc_status
check_role_tensor(const mpcc_plan *p, const char *role, int32_t pos, bool input, bool scalar,
                  bool is_bool, mpcc_diag *d)
{
	const mpcc_tensor *t;

	if (pos < 0)
		return MPCC_OK;
	t = &p->tensors[input ? p->inputs[pos] : p->outputs[pos]].t;
	if (is_bool ? t->dtype != MPCC_DTYPE_BOOL : !mpcc_dtype_is_float(t->dtype))
		return mpcc_plan_damaged(d, "TRAN", "%s '%s' is %s, not %s", role, t->name,
		                         mpcc_dtype_name(t->dtype), is_bool ? "bool" : "a float");
	if (scalar && numel(t) != 1)
		return mpcc_plan_damaged(d, "TRAN", "%s '%s' has %lld elements, one expected", role,
		                         t->name, (long long)numel(t));
	return MPCC_OK;
}

static mpcc_status
read_state(mpcc_plan *p, mpcc_plan_reader *c, mpcc_plan_train *t, uint32_t i, mpcc_diag *d)
{
	mpcc_plan_state *s = &t->state[i];
	uint32_t in = mpcc_plan_get_u32(c), out = mpcc_plan_get_u32(c);
	uint64_t lo = mpcc_plan_get_u32(c), n = lo | (uint64_t)mpcc_plan_get_u32(c) << 32;

	if (c->short_read)
		return mpcc_plan_damaged(d, "TRAN", "state %u truncated", i);
	if (in >= (uint32_t)p->n_inputs)
		return mpcc_plan_damaged(d, "TRAN", "state %u: input position %u, the plan has %d",
		                         i, in, p->n_inputs);
	if (out >= (uint32_t)p->n_outputs)
		return mpcc_plan_damaged(d, "TRAN", "state %u: output position %u, the plan has %d",
		                         i, out, p->n_outputs);
	s->in = (int32_t)in;
	s->out = (int32_t)out;
	const mpcc_tensor *ti = &p->tensors[p->inputs[in]].t, *to = &p->tensors[p->outputs[out]].t;
	if (s->in == t->label || s->in == t->apply)
		return mpcc_plan_damaged(d, "TRAN", "state %u ('%s') is also the %s", i, ti->name,
		                         s->in == t->label ? "label" : "apply input");
	/* distinct output tensors, not just positions: the trainer gives each
	 * its own buffer, and IOUT may list one tensor twice */
	for (uint32_t k = 0; k < i; k++)
		if (t->state[k].in == s->in || p->outputs[t->state[k].out] == p->outputs[s->out])
			return mpcc_plan_damaged(
			    d, "TRAN", "state %u ('%s') shares its %s with state %u", i, ti->name,
			    t->state[k].in == s->in ? "input" : "output", k);
	if (ti->dtype != to->dtype || ti->rank != to->rank ||
	    memcmp(ti->dims, to->dims, sizeof(int64_t) * (size_t)ti->rank) != 0)
		return mpcc_plan_damaged(
		    d, "TRAN", "state %u: '%s' and its next value '%s' differ in dtype or shape", i,
		    ti->name, to->name);
	if (n != ti->nbytes)
		return mpcc_plan_damaged(
		    d, "TRAN", "state %u ('%s'): initial value of %llu bytes, the tensor has %zu",
		    i, ti->name, (unsigned long long)n, ti->nbytes);
	const uint8_t *b = mpcc_plan_get_bytes(c, n);
	if (!b)
		return mpcc_plan_damaged(
		    d, "TRAN", "state %u ('%s'): initial value runs past the section", i, ti->name);
	uint8_t *copy = mpcc_arena_alloc(&p->arena, n ? (size_t)n : 1);
	if (!copy)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	memcpy(copy, b, (size_t)n);
	s->init = copy;
	return MPCC_OK;
}

/*
 * Why every field is checked although the file checksum passed: the
 * checksum catches damage in transit, not a writer's bug or a crafted file,
 * and the trainer indexes its buffers with these positions.
 */
mpcc_status
mpcc_plan_train_read(mpcc_plan *p, const uint8_t *b, size_t size, mpcc_diag *d)
{
	mpcc_plan_reader c = {b, size, 0, false};
	mpcc_plan_train *t;
	mpcc_status st;

	uint32_t version = mpcc_plan_get_u32(&c);
	if (c.short_read)
		return mpcc_plan_damaged(d, "TRAN", "truncated layout version");
	if (version == 0 || version > TRAN_VERSION)
		return mpcc_plan_damaged(d, "TRAN", "layout version %u, this mpcc reads %d",
		                         version, TRAN_VERSION);
	uint32_t len = mpcc_plan_get_u32(&c);
	const uint8_t *recipe = c.short_read ? NULL : mpcc_plan_get_bytes(&c, len);
	if (!recipe)
		return mpcc_plan_damaged(d, "TRAN", "recipe runs past the section");
	for (uint32_t i = 0; i < len; i++)
		if (recipe[i] == 0 || recipe[i] == '\n')
			return mpcc_plan_damaged(d, "TRAN", "recipe holds a %s",
			                         recipe[i] ? "line break" : "NUL byte");
	t = mpcc_arena_alloc(&p->arena, sizeof(*t));
	char *r = mpcc_arena_alloc(&p->arena, (size_t)len + 1);
	if (!t || !r)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	memcpy(r, recipe, len);
	t->recipe = r;
	if ((st = read_role(&c, "label", p->n_inputs, false, &t->label, d)) ||
	    (st = read_role(&c, "loss", p->n_outputs, true, &t->loss, d)) ||
	    (st = read_role(&c, "logits", p->n_outputs, false, &t->logits, d)) ||
	    (st = read_role(&c, "loss scale", p->n_outputs, false, &t->loss_scale, d)) ||
	    (st = read_role(&c, "ok flag", p->n_outputs, false, &t->ok, d)) ||
	    (st = read_role(&c, "apply input", p->n_inputs, false, &t->apply, d)))
		return st;
	if ((st = check_role_tensor(p, "loss", t->loss, false, true, false, d)) ||
	    (st = check_role_tensor(p, "logits", t->logits, false, false, false, d)) ||
	    (st = check_role_tensor(p, "loss scale", t->loss_scale, false, true, false, d)) ||
	    (st = check_role_tensor(p, "ok flag", t->ok, false, true, true, d)) ||
	    (st = check_role_tensor(p, "apply input", t->apply, true, true, true, d)))
		return st;
	if (t->label >= 0 && t->label == t->apply)
		return mpcc_plan_damaged(d, "TRAN", "the label is the apply input");
	uint32_t n = mpcc_plan_get_u32(&c);
	if (c.short_read)
		return mpcc_plan_damaged(d, "TRAN", "truncated state count");
	if (n > (c.size - c.pos) / 16)
		return mpcc_plan_damaged(d, "TRAN", "state count %u exceeds the section", n);
	t->state = mpcc_arena_alloc(&p->arena, sizeof(*t->state) * ((size_t)n + 1));
	if (!t->state)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	for (uint32_t i = 0; i < n; i++)
		if ((st = read_state(p, &c, t, i, d)) != MPCC_OK)
			return st;
	t->n_state = (int)n;
	if (c.pos != c.size)
		return mpcc_plan_damaged(d, "TRAN", "%zu trailing bytes", c.size - c.pos);
	p->train = t;
	return MPCC_OK;
}
