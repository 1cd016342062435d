/*
 * train.c - the training side of a graph: state pairs and roles (g->train).
 *
 * A step graph is an ordinary graph plus a small table saying which graph
 * input is each piece of training state, which graph output is its next
 * value, what its first value is, and which inputs and outputs are the
 * label, loss, logits, loss scale, "update applied" flag and the "apply"
 * switch. The table refers to values by index and lives in the graph's
 * arena. This file creates it and checks it; mpcc_graph_verify calls the
 * check after every pass, so a pass that drops a state input (--freeze) or
 * a role output is caught where it happens, not when the plan is built.
 */
#include <string.h>

#include "ir/ir.h"

mpcc_status
mpcc_graph_train_new(mpcc_graph *g, int n_state, mpcc_train_info **out)
{
	mpcc_train_info *t;

	*out = NULL;
	if (n_state < 0)
		return MPCC_ERR_INTERNAL;
	t = mpcc_arena_alloc(&g->arena, sizeof(*t));
	if (!t)
		return MPCC_ERR_NOMEM;
	t->state = mpcc_arena_alloc(&g->arena, sizeof(*t->state) * ((size_t)n_state + 1));
	if (!t->state)
		return MPCC_ERR_NOMEM;
	for (int i = 0; i < n_state; i++)
		t->state[i].in = t->state[i].out = MPCC_NONE;
	t->n_state = n_state;
	t->label = t->loss = t->logits = t->loss_scale = t->ok = t->apply = MPCC_NONE;
	g->train = t;
	*out = t;
	return MPCC_OK;
}

mpcc_status
mpcc_train_set_state(mpcc_graph *g, int i, int32_t in, int32_t out, mpcc_dtype dtype,
                     const void *init, size_t nbytes)
{
	mpcc_train_state *s;
	void *copy;

	if (!g->train || i < 0 || i >= g->train->n_state || (nbytes && !init))
		return MPCC_ERR_INTERNAL;
	copy = mpcc_arena_alloc(&g->arena, nbytes ? nbytes : 1);
	if (!copy)
		return MPCC_ERR_NOMEM;
	if (nbytes)
		memcpy(copy, init, nbytes);
	s = &g->train->state[i];
	s->in = in;
	s->out = out;
	s->init_dtype = dtype;
	s->init = copy;
	s->init_nbytes = nbytes;
	return MPCC_OK;
}

static bool
is_listed(const int32_t *list, int n, int32_t v)
{
	for (int i = 0; i < n; i++)
		if (list[i] == v)
			return true;
	return false;
}

static const char *
vname(const mpcc_graph *g, int32_t v)
{
	return v >= 0 && v < g->n_values && g->values[v].name ? g->values[v].name : "?";
}

/* Shape known: rank inferred and every dim numeric. */
static bool
shape_known(const mpcc_value *v)
{
	if (v->rank < 0)
		return false;
	for (int i = 0; i < v->rank; i++)
		if (v->dims[i] < 0)
			return false;
	return true;
}

/* One role: a graph input (want_input) or output, of one element when
 * `scalar`, of dtype `want` (UNDEF: any float; COUNT: any) once inferred. */
static mpcc_status
check_role(const mpcc_graph *g, const char *role, int32_t v, bool want_input, bool required,
           bool scalar, mpcc_dtype want, mpcc_diag *d)
{
	const mpcc_value *val;

	if (v == MPCC_NONE) {
		if (required)
			return mpcc_diag_error(d, MPCC_ERR_INVALID, "training: the %s is not set", role);
		return MPCC_OK;
	}
	if (v < 0 || v >= g->n_values)
		return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "training: %s refers to value %d of %d",
		                       role, (int)v, g->n_values);
	if (want_input ? !is_listed(g->inputs, g->n_inputs, v)
	               : !is_listed(g->outputs, g->n_outputs, v))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "training: %s '%s' is not a graph %s",
		                       role, vname(g, v), want_input ? "input" : "output");
	val = &g->values[v];
	if (val->dtype != MPCC_DTYPE_UNDEF && want != MPCC_DTYPE_COUNT) {
		bool ok = want == MPCC_DTYPE_UNDEF ? mpcc_dtype_is_float(val->dtype)
		                                   : val->dtype == want;
		if (!ok)
			return mpcc_diag_error(d, MPCC_ERR_INVALID, "training: %s '%s' is %s, not %s",
			                       role, vname(g, v), mpcc_dtype_name(val->dtype),
			                       want == MPCC_DTYPE_UNDEF ? "a float" : mpcc_dtype_name(want));
	}
	if (scalar && shape_known(val) && mpcc_value_numel(val) != 1)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "training: %s '%s' has %lld elements, one expected", role,
		                       vname(g, v), (long long)mpcc_value_numel(val));
	return MPCC_OK;
}

static mpcc_status
check_state(const mpcc_graph *g, int i, const mpcc_train_state *s, mpcc_diag *d)
{
	const mpcc_train_info *t = g->train;

	if (s->in < 0 || s->in >= g->n_values || s->out < 0 || s->out >= g->n_values)
		return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "training: state %d is not set", i);
	const mpcc_value *vi = &g->values[s->in], *vo = &g->values[s->out];
	if (!is_listed(g->inputs, g->n_inputs, s->in))
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "training: state '%s' is not a graph input (frozen?)",
		                       vname(g, s->in));
	if (!is_listed(g->outputs, g->n_outputs, s->out))
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "training: next state '%s' of '%s' is not a graph output",
		                       vname(g, s->out), vname(g, s->in));
	if (s->in == t->label || s->in == t->apply)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "training: state '%s' is also the %s", vname(g, s->in),
		                       s->in == t->label ? "label" : "apply input");
	for (int k = 0; k < i; k++) {
		if (t->state[k].in == s->in || t->state[k].out == s->out)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "training: state '%s' shares its %s with state '%s'",
			                       vname(g, s->in), t->state[k].in == s->in ? "input" : "output",
			                       vname(g, t->state[k].in));
	}
	if (vi->dtype != MPCC_DTYPE_UNDEF && vo->dtype != MPCC_DTYPE_UNDEF && vi->dtype != vo->dtype)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "training: state '%s' is %s, its next "
		                       "value '%s' %s", vname(g, s->in), mpcc_dtype_name(vi->dtype),
		                       vname(g, s->out), mpcc_dtype_name(vo->dtype));
	if (shape_known(vi) && shape_known(vo) &&
	    (vi->rank != vo->rank || memcmp(vi->dims, vo->dims, sizeof(int64_t) * (size_t)vi->rank)))
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "training: state '%s' and its next value '%s' differ in shape",
		                       vname(g, s->in), vname(g, s->out));
	if (shape_known(vi)) {
		size_t esz = mpcc_dtype_size(s->init_dtype);
		if (!esz || (uint64_t)mpcc_value_numel(vi) * esz != s->init_nbytes || !s->init)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "training: state '%s': initial value holds %zu bytes of %s, "
			                       "the shape needs %lld elements", vname(g, s->in),
			                       s->init_nbytes, mpcc_dtype_name(s->init_dtype),
			                       (long long)mpcc_value_numel(vi));
	}
	return MPCC_OK;
}

mpcc_status
mpcc_train_verify(const mpcc_graph *g, mpcc_diag *d)
{
	const mpcc_train_info *t = g->train;
	mpcc_status st;

	if (!t)
		return MPCC_OK;
	if (t->n_state < 0 || (t->n_state > 0 && !t->state))
		return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "training: bad state table");
	if ((st = check_role(g, "label", t->label, true, false, false, MPCC_DTYPE_COUNT, d)) ||
	    (st = check_role(g, "loss", t->loss, false, true, true, MPCC_DTYPE_UNDEF, d)) ||
	    (st = check_role(g, "logits", t->logits, false, false, false, MPCC_DTYPE_UNDEF, d)) ||
	    (st = check_role(g, "loss scale", t->loss_scale, false, false, true, MPCC_DTYPE_UNDEF,
	                     d)) ||
	    (st = check_role(g, "ok flag", t->ok, false, false, true, MPCC_DTYPE_BOOL, d)) ||
	    (st = check_role(g, "apply input", t->apply, true, false, true, MPCC_DTYPE_BOOL, d)))
		return st;
	if (t->label != MPCC_NONE && t->label == t->apply)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "training: the label is the apply input");
	for (int i = 0; i < t->n_state; i++)
		if ((st = check_state(g, i, &t->state[i], d)))
			return st;
	return MPCC_OK;
}
