/*
 * infer_fold.c - shape and dtype inference with constant folding, in one
 * forward sweep over the live nodes.
 *
 * Each node's rule infers its outputs; then, if every input is constant, the
 * node is lowered to kernel IR and run by the reference interpreter, and its
 * outputs become constants. Doing both in one sweep is what lets a
 * Shape->Gather->Concat->Reshape chain resolve: by the time Reshape infers,
 * its shape input already holds data. Folding reuses the ops' lowerings, so
 * there is no second implementation of any op to keep in step.
 */
#include <stdlib.h>
#include <string.h>

#include "codegen/kir.h"
#include "codegen/lower.h"
#include "passes/passes.h"

#define FOLD_MAX_ELEMS ((int64_t)1 << 22)

static mpcc_status
check_outputs(const mpcc_graph *g, const mpcc_node *n, mpcc_diag *d)
{
	for (int j = 0; j < n->n_out; j++) {
		if (n->out[j] == MPCC_NONE)
			continue;
		const mpcc_value *v = &g->values[n->out[j]];
		if (v->dtype == MPCC_DTYPE_UNDEF || v->rank < 0 || v->rank > MPCC_MAX_RANK)
			return mpcc_node_error(d, n, MPCC_ERR_INTERNAL,
			                       "shape inference left output '%s' without a type",
			                       v->name);
		if (mpcc_value_numel(v) < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INTERNAL,
			                       "shape inference left output '%s' with an unknown dim",
			                       v->name);
	}
	return MPCC_OK;
}

/* Foldable: outputs not yet constant, every present input constant, and the
 * results small enough to hold in the plan. */
static bool
foldable(const mpcc_graph *g, const mpcc_node *n, const mpcc_op_rule *r)
{
	int64_t total = 0;
	bool all_const = true;

	if (!r->lower)
		return false;
	for (int j = 0; j < n->n_in; j++)
		if (n->in[j] != MPCC_NONE && !(g->values[n->in[j]].flags & MPCC_VALUE_CONST))
			return false;
	for (int j = 0; j < n->n_out; j++) {
		if (n->out[j] == MPCC_NONE)
			continue;
		const mpcc_value *v = &g->values[n->out[j]];
		if (!(v->flags & MPCC_VALUE_CONST))
			all_const = false;
		total += mpcc_value_numel(v);
		if (total > FOLD_MAX_ELEMS)
			return false;
	}
	return !all_const;
}

static int
out_slot(const mpcc_node *n, int32_t v)
{
	for (int j = 0; j < n->n_out; j++)
		if (n->out[j] == v)
			return j;
	return -1;
}

/*
 * Binds every PARAM buffer of k: node outputs to the buffers in outs[]
 * (shared by all kernels of the node, so a later kernel can read what an
 * earlier one wrote), anything else to constant data, after checking that
 * the data covers the buffer. Returns false when a buffer cannot be bound,
 * which means the node is not foldable after all.
 */
static bool
bind_bufs(const mpcc_graph *g, const mpcc_node *n, const kir_kernel *k, void **outs, void **bufs)
{
	for (int b = 0; b < k->n_bufs; b++) {
		const kir_buf *kb = &k->bufs[b];
		bufs[b] = NULL;
		if (kb->kind != KIR_BUF_PARAM)
			continue;
		if (kb->value < 0 || kb->value >= g->n_values)
			return false;
		const mpcc_value *v = &g->values[kb->value];
		size_t need = (size_t)kb->n_elems * mpcc_dtype_size((mpcc_dtype)kb->dtype);
		int s = out_slot(n, kb->value);
		if (s >= 0) {
			size_t have = (size_t)mpcc_value_numel(v) * mpcc_dtype_size(v->dtype);
			if (need > have)
				return false;
			bufs[b] = outs[s];
		} else {
			if (!(v->flags & MPCC_VALUE_CONST) || !v->data || need > v->nbytes)
				return false;
			bufs[b] = v->data;
		}
	}
	return true;
}

/*
 * Lowers node ni with a throwaway mpcc_lower and interprets its kernels.
 * On success the outputs take ownership of their buffers; on any failure
 * the buffers are freed. A node whose kernels cannot be bound is left
 * unfolded (*folded false), which is not an error.
 */
static mpcc_status
fold_node(mpcc_graph *g, int32_t ni, mpcc_diag *d, bool *folded)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_lower lx;
	void **outs;
	mpcc_status st = MPCC_OK;

	*folded = false;
	outs = calloc((size_t)n->n_out + 1, sizeof(*outs));
	if (!outs)
		return mpcc_node_error(d, n, MPCC_ERR_NOMEM, "out of memory folding constants");
	for (int j = 0; j < n->n_out; j++) {
		if (n->out[j] == MPCC_NONE)
			continue;
		const mpcc_value *v = &g->values[n->out[j]];
		size_t nb = (size_t)mpcc_value_numel(v) * mpcc_dtype_size(v->dtype);
		outs[j] = calloc(nb ? nb : 1, 1);
		if (!outs[j]) {
			st = mpcc_node_error(d, n, MPCC_ERR_NOMEM, "out of memory folding constants");
			goto out;
		}
	}
	mpcc_lower_init(&lx, g, d);
	st = mpcc_lower_node(&lx, ni);
	n = &g->nodes[ni];
	for (int ki = 0; ki < lx.n_kernels && !st; ki++) {
		const kir_kernel *k = lx.kernels[ki];
		void **bufs = calloc((size_t)k->n_bufs + 1, sizeof(*bufs));
		if (!bufs) {
			st = mpcc_node_error(d, n, MPCC_ERR_NOMEM, "out of memory folding constants");
			break;
		}
		if (!bind_bufs(g, n, k, outs, bufs)) {
			free(bufs);
			mpcc_lower_fini(&lx);
			goto out;
		}
		st = kir_interpret(k, bufs, d);
		free(bufs);
	}
	mpcc_lower_fini(&lx);
	if (st)
		goto out;
	for (int j = 0; j < n->n_out; j++) {
		if (n->out[j] == MPCC_NONE)
			continue;
		mpcc_value *v = &g->values[n->out[j]];
		size_t nb = (size_t)mpcc_value_numel(v) * mpcc_dtype_size(v->dtype);
		mpcc_value_set_data(v, outs[j], nb);
		outs[j] = NULL;
	}
	*folded = true;
out:
	for (int j = 0; j < n->n_out; j++)
		free(outs[j]);
	free(outs);
	return st;
}

mpcc_status
mpcc_infer_and_fold(mpcc_graph *g, mpcc_pass_ctx *cx)
{
	bool no_fold = cx->opts && cx->opts->no_fold;

	for (int32_t i = 0; i < g->n_nodes; i++) {
		mpcc_node *n = &g->nodes[i];
		const mpcc_op_rule *r;
		mpcc_status st;
		bool folded;

		if (n->dead)
			continue;
		r = mpcc_op_rule_get(n->op);
		if (!r || !r->infer)
			return mpcc_node_error(cx->d, n, MPCC_ERR_UNSUPPORTED, "unsupported op");
		st = r->infer(g, i, cx->d);
		if (st)
			return st;
		n = &g->nodes[i];
		st = check_outputs(g, n, cx->d);
		if (st)
			return st;
		if (no_fold || !foldable(g, n, r))
			continue;
		st = fold_node(g, i, cx->d, &folded);
		if (st)
			return st;
	}
	return MPCC_OK;
}
