/*
 * gradient.c - expands the ai.onnx.preview.training Gradient op: each
 * Gradient node becomes the backward nodes passes/autodiff.c appends for
 * d y / d xs, its outputs then written by Identity nodes (or, for an x that
 * y does not depend on, a constant zero of x's shape). Runs after shape
 * inference, which autodiff needs; the node array is then put back into
 * topological order (mpcc_sort_nodes, here, also used by the training
 * builder's mode switch), since the appended nodes may feed nodes that
 * stood after the Gradient.
 */
#include <stdlib.h>
#include <string.h>

#include "passes/autodiff.h"
#include "passes/passes.h"

/* Appends node i after everything it reads (depth first, inputs in order),
 * so the order changes only where it must. */
static bool
place(const mpcc_graph *g, int32_t i, char *state, int32_t *order, int *n)
{
	if (state[i] == 2)
		return true;
	if (state[i] == 1)
		return false; /* a cycle: cannot happen in a verified graph */
	state[i] = 1;
	const mpcc_node *nd = &g->nodes[i];
	for (int j = 0; j < nd->n_in; j++) {
		int32_t v = nd->in[j];
		int32_t p = v == MPCC_NONE ? MPCC_NONE : g->values[v].producer;
		if (p != MPCC_NONE && !place(g, p, state, order, n))
			return false;
	}
	state[i] = 2;
	order[(*n)++] = i;
	return true;
}

mpcc_status
mpcc_sort_nodes(mpcc_graph *g, mpcc_diag *d)
{
	int nn = g->n_nodes, n = 0;
	char *state = calloc((size_t)nn + 1, 1);
	int32_t *order = malloc(sizeof(int32_t) * ((size_t)nn + 1));
	int32_t *moved_to = malloc(sizeof(int32_t) * ((size_t)nn + 1));
	mpcc_node *nodes = malloc(sizeof(mpcc_node) * ((size_t)nn + 1));
	mpcc_status st = MPCC_OK;

	if (!state || !order || !moved_to || !nodes) {
		st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory ordering the nodes");
		goto out;
	}
	for (int32_t i = 0; i < nn; i++) {
		if (!place(g, i, state, order, &n)) {
			st = mpcc_diag_error(d, MPCC_ERR_INTERNAL, "a pass made a cycle of nodes");
			goto out;
		}
	}
	for (int k = 0; k < nn; k++) {
		nodes[k] = g->nodes[order[k]];
		moved_to[order[k]] = k;
	}
	memcpy(g->nodes, nodes, sizeof(mpcc_node) * (size_t)nn);
	/* every producer index follows its node, a dead one's (a folded
	 * value's) too, so none is left pointing at another node */
	for (int32_t v = 0; v < g->n_values; v++)
		if (g->values[v].producer >= 0 && g->values[v].producer < nn)
			g->values[v].producer = moved_to[g->values[v].producer];
out:
	free(state);
	free(order);
	free(moved_to);
	free(nodes);
	return st;
}

/* Output o of a Gradient whose x does not reach y: a constant zero. */
static mpcc_status
zero_output(mpcc_graph *g, int32_t o, mpcc_diag *d)
{
	mpcc_value *v = &g->values[o];
	int64_t numel = mpcc_value_numel(v);
	size_t nbytes = (size_t)(numel > 0 ? numel : 1) * mpcc_dtype_size(v->dtype);
	void *zeros = calloc(1, nbytes);

	if (numel < 0 || !zeros) {
		free(zeros);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory expanding Gradient");
	}
	v->producer = MPCC_NONE;
	mpcc_value_set_data(v, zeros, (size_t)numel * mpcc_dtype_size(v->dtype));
	return MPCC_OK;
}

static mpcc_status
expand(mpcc_graph *g, int32_t i, mpcc_diag *d)
{
	const mpcc_node *n = &g->nodes[i];
	const char *yname = mpcc_node_attr_string(n, "y", NULL);
	int32_t y = yname ? mpcc_graph_find_value(g, yname) : MPCC_NONE;
	int nx = n->n_out;
	int32_t xs[64], outs[64], grads[64];
	mpcc_status st;

	if (mpcc_node_attr(n, "zs"))
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "attribute zs is not supported");
	if (y == MPCC_NONE)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "y names no value of the graph");
	if (nx > 64)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "more than 64 xs");
	memcpy(xs, n->in, sizeof(int32_t) * (size_t)nx);
	memcpy(outs, n->out, sizeof(int32_t) * (size_t)nx);
	g->nodes[i].dead = true;
	st = mpcc_autodiff(g, y, MPCC_NONE, xs, nx, grads, d);
	if (st != MPCC_OK)
		return st;
	for (int k = 0; k < nx; k++) {
		if (outs[k] == MPCC_NONE)
			continue;
		if (grads[k] == MPCC_NONE) {
			if ((st = zero_output(g, outs[k], d)))
				return st;
			continue;
		}
		int32_t id = mpcc_graph_add_node(g, MPCC_OP_IDENTITY, g->values[outs[k]].name, 1,
		                                 &grads[k], 1, &outs[k]);
		if (id == MPCC_NONE)
			return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory expanding Gradient");
		g->nodes[id].opset = g->opset;
		g->nodes[id].src_index = -1;
	}
	return MPCC_OK;
}

mpcc_status
mpcc_expand_gradients(mpcc_graph *g, mpcc_pass_ctx *cx, bool *expanded)
{
	int n0 = g->n_nodes;
	mpcc_status st;

	*expanded = false;
	for (int32_t i = 0; i < n0; i++) {
		if (g->nodes[i].dead || g->nodes[i].op != MPCC_OP_GRADIENT)
			continue;
		if ((st = expand(g, i, cx->d)))
			return st;
		*expanded = true;
	}
	return *expanded ? mpcc_sort_nodes(g, cx->d) : MPCC_OK;
}
