/*
 * freeze_inputs.c - specialises a graph to given values of some inputs.
 *
 * ONNX lets shape-deciding tensors (Reshape's shape, Expand's shape, Resize's
 * scales and sizes, TopK's k, ReduceSum's axes) arrive as graph inputs. mpcc
 * compiles static shapes, so such an input must be fixed at compile time:
 * `--freeze NAME=FILE.npy` (mpcc_compile_options.frozen) makes the input a
 * constant with the given value. The dtype and, where declared, the shape
 * must match the input's declaration; the input then leaves the plan's
 * inputs, and constant folding propagates it like any initializer.
 */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

static int
input_slot(const mpcc_graph *g, const char *name)
{
	for (int i = 0; i < g->n_inputs; i++)
		if (!strcmp(g->values[g->inputs[i]].name, name))
			return i;
	return -1;
}

/* Checks a frozen value against the input's declaration: dtype always, and
 * each dim that the model fixes. */
static mpcc_status
check_declared(const mpcc_value *v, const mpcc_tensor *t, mpcc_diag *d)
{
	if (t->dtype != v->dtype)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--freeze %s: dtype %s, the input is %s",
		                       t->name, mpcc_dtype_name(t->dtype), mpcc_dtype_name(v->dtype));
	if (t->rank < 0 || t->rank > MPCC_MAX_RANK)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--freeze %s: rank %d", t->name, t->rank);
	if (v->rank >= 0 && v->rank != t->rank)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--freeze %s: rank %d, the input has %d",
		                       t->name, t->rank, v->rank);
	size_t numel = 1;
	for (int i = 0; i < t->rank; i++) {
		if (t->dims[i] < 0)
			return mpcc_diag_error(d, MPCC_ERR_INVALID, "--freeze %s: negative dim", t->name);
		if (v->rank >= 0 && v->dims[i] >= 0 && !v->sym[i] && v->dims[i] != t->dims[i])
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "--freeze %s: dim %d is %lld, the input declares %lld",
			                       t->name, i, (long long)t->dims[i], (long long)v->dims[i]);
		numel *= (size_t)t->dims[i];
	}
	if (numel * mpcc_dtype_size(t->dtype) != t->nbytes)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--freeze %s: %zu bytes for %zu elements",
		                       t->name, t->nbytes, numel);
	return MPCC_OK;
}

mpcc_status
mpcc_freeze_inputs(mpcc_graph *g, mpcc_pass_ctx *cx)
{
	const mpcc_compile_options *o = cx->opts;
	if (!o || o->n_frozen <= 0)
		return MPCC_OK;
	for (int f = 0; f < o->n_frozen; f++) {
		const mpcc_tensor *t = &o->frozen[f];
		int slot = t->name ? input_slot(g, t->name) : -1;
		if (slot < 0)
			return mpcc_diag_error(cx->d, MPCC_ERR_INVALID,
			                       "--freeze names '%s', which is not a graph input",
			                       t->name ? t->name : "(null)");
		mpcc_value *v = &g->values[g->inputs[slot]];
		mpcc_status st = check_declared(v, t, cx->d);
		if (st)
			return st;
		void *data = malloc(t->nbytes ? t->nbytes : 1);
		if (!data)
			return mpcc_diag_error(cx->d, MPCC_ERR_NOMEM, "out of memory freezing '%s'",
			                       t->name);
		if (t->nbytes)
			memcpy(data, t->data, t->nbytes);
		v->rank = t->rank;
		for (int i = 0; i < t->rank; i++) {
			v->dims[i] = t->dims[i];
			v->sym[i] = NULL;
		}
		mpcc_value_set_data(v, data, t->nbytes);
		v->flags &= ~(uint32_t)MPCC_VALUE_INPUT;
		memmove(&g->inputs[slot], &g->inputs[slot + 1],
		        (size_t)(g->n_inputs - slot - 1) * sizeof(g->inputs[0]));
		g->n_inputs--;
	}
	return MPCC_OK;
}
