/*
 * bind_shapes.c - binds --shape NAME=dims to the graph inputs, then checks
 * that every input shape is fully known.
 *
 * Each binding must name a graph input and agree with its rank and fixed
 * dims. A symbolic dim (ONNX dim_param) that a binding fixes is fixed
 * everywhere the same name appears, so `--shape x=8x3` also settles the
 * batch dim of another input declared [N,10]. Afterwards an input dim that
 * is still unknown is an error telling the user which flag to add.
 */
#include <stdio.h>
#include <string.h>

#include "passes/passes.h"

typedef struct sym_bind {
	const char *name;
	int64_t dim;
} sym_bind;

static int32_t
find_input(const mpcc_graph *g, const char *name)
{
	for (int i = 0; i < g->n_inputs; i++)
		if (strcmp(g->values[g->inputs[i]].name, name) == 0)
			return g->inputs[i];
	return MPCC_NONE;
}

static mpcc_status
unknown_input(const mpcc_graph *g, const char *name, mpcc_diag *d)
{
	char list[256];
	size_t len = 0;

	list[0] = '\0';
	for (int i = 0; i < g->n_inputs && len < sizeof(list); i++) {
		int k = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
		                 g->values[g->inputs[i]].name);
		if (k < 0)
			break;
		len += (size_t)k;
	}
	if (g->n_inputs == 0)
		snprintf(list, sizeof(list), "none");
	return mpcc_diag_error(d, MPCC_ERR_INVALID,
	                       "--shape names '%s', which is not a graph input (inputs: %s)", name,
	                       list);
}

static int64_t
sym_lookup(const sym_bind *syms, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(syms[i].name, name) == 0)
			return syms[i].dim;
	return -1;
}

/*
 * Applies one binding. Symbolic names it fixes are recorded in syms so the
 * second loop of mpcc_bind_shapes can settle other inputs, and so a name
 * bound twice to different sizes is caught.
 */
static mpcc_status
bind_one(mpcc_graph *g, const mpcc_shape_binding *b, sym_bind *syms, int *n_syms, mpcc_diag *d)
{
	int32_t vi;
	mpcc_value *v;

	if (!b->input)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--shape binding without an input name");
	vi = find_input(g, b->input);
	if (vi == MPCC_NONE)
		return unknown_input(g, b->input, d);
	v = &g->values[vi];
	if (b->rank < 0 || b->rank > MPCC_MAX_RANK)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "--shape %s: rank %d out of range",
		                       b->input, b->rank);
	if (v->rank >= 0 && v->rank != b->rank)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "--shape %s gives rank %d but input '%s' has rank %d", b->input,
		                       b->rank, v->name, v->rank);
	for (int i = 0; i < b->rank; i++) {
		int64_t want = b->dims[i];
		if (want < 0)
			return mpcc_diag_error(d, MPCC_ERR_INVALID, "--shape %s: dim %d is negative",
			                       b->input, i);
		if (v->rank >= 0 && !v->sym[i] && v->dims[i] >= 0 && v->dims[i] != want)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "--shape %s gives dim %d = %lld but input '%s' fixes it "
			                       "to %lld",
			                       b->input, i, (long long)want, v->name,
			                       (long long)v->dims[i]);
		if (v->rank >= 0 && v->sym[i]) {
			int64_t had = sym_lookup(syms, *n_syms, v->sym[i]);
			if (had >= 0 && had != want)
				return mpcc_diag_error(d, MPCC_ERR_INVALID,
				                       "--shape %s binds '%s' to %lld, already bound to "
				                       "%lld",
				                       b->input, v->sym[i], (long long)want,
				                       (long long)had);
			if (had < 0) {
				syms[*n_syms].name = v->sym[i];
				syms[*n_syms].dim = want;
				(*n_syms)++;
			}
		}
	}
	v->rank = b->rank;
	for (int i = 0; i < b->rank; i++) {
		v->dims[i] = b->dims[i];
		v->sym[i] = NULL;
	}
	return MPCC_OK;
}

mpcc_status
mpcc_bind_shapes(mpcc_graph *g, mpcc_pass_ctx *cx)
{
	sym_bind syms[64 * MPCC_MAX_RANK];
	int n_syms = 0;
	const mpcc_compile_options *o = cx->opts;
	mpcc_status st;

	if (o && o->n_shapes > 64)
		return mpcc_diag_error(cx->d, MPCC_ERR_INVALID, "too many --shape bindings (%d, at "
		                       "most 64)", o->n_shapes);
	for (int i = 0; o && i < o->n_shapes; i++) {
		st = bind_one(g, &o->shapes[i], syms, &n_syms, cx->d);
		if (st)
			return st;
	}
	for (int i = 0; i < g->n_inputs; i++) {
		mpcc_value *v = &g->values[g->inputs[i]];
		if (v->rank < 0)
			return mpcc_diag_error(cx->d, MPCC_ERR_INVALID,
			                       "input '%s' has unknown rank: bind it with --shape %s=...",
			                       v->name, v->name);
		for (int k = 0; k < v->rank; k++) {
			if (v->sym[k]) {
				int64_t dim = sym_lookup(syms, n_syms, v->sym[k]);
				if (dim >= 0) {
					v->dims[k] = dim;
					v->sym[k] = NULL;
					continue;
				}
				return mpcc_diag_error(cx->d, MPCC_ERR_INVALID,
				                       "input '%s' dim %d is symbolic ('%s'): bind it with "
				                       "--shape %s=...",
				                       v->name, k, v->sym[k], v->name);
			}
			if (v->dims[k] < 0)
				return mpcc_diag_error(cx->d, MPCC_ERR_INVALID,
				                       "input '%s' dim %d is unknown: bind it with --shape "
				                       "%s=...",
				                       v->name, k, v->name);
		}
	}
	return MPCC_OK;
}
