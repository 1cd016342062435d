/*
 * verify.c - structural invariants of a graph, checked after every pass.
 *
 * One walk over the live nodes in order, with a flag per value saying
 * whether it is defined yet. Graph inputs and constants are defined from the
 * start; a node's inputs must be defined when it is reached and its outputs
 * must not be, which catches unsorted graphs, cycles and values produced
 * twice in one sweep. The first problem is reported, naming node and value.
 * A training graph's state pairs and roles are checked last (ir/train.c).
 */
#include <stdlib.h>

#include "ir/ir.h"

static bool
in_range(const mpcc_graph *g, int32_t v)
{
	return v >= 0 && v < g->n_values;
}

static mpcc_status
check_arity(const mpcc_node *n, mpcc_diag *d)
{
	const mpcc_op_rule *r = mpcc_op_rule_get(n->op);

	if (!r)
		return MPCC_OK;
	if (n->n_in < r->min_in || n->n_in > r->max_in)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "has %d inputs, expected %d to %d",
		                       n->n_in, r->min_in, r->max_in);
	if (n->n_out < r->min_out || n->n_out > r->max_out)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "has %d outputs, expected %d to %d",
		                       n->n_out, r->min_out, r->max_out);
	return MPCC_OK;
}

static mpcc_status
check_node(const mpcc_graph *g, const mpcc_node *n, char *defined, mpcc_diag *d)
{
	mpcc_status st;

	if (n->op <= MPCC_OP_INVALID || n->op >= MPCC_OP_COUNT)
		return mpcc_node_error(d, n, MPCC_ERR_INTERNAL, "has no valid op");
	for (int j = 0; j < n->n_in; j++) {
		int32_t v = n->in[j];
		if (v == MPCC_NONE)
			continue;
		if (!in_range(g, v))
			return mpcc_node_error(d, n, MPCC_ERR_INTERNAL,
			                       "input %d refers to value %d of %d", j, (int)v,
			                       g->n_values);
		if (!defined[v])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID,
			                       "input '%s' is used before it is defined", g->values[v].name);
	}
	for (int j = 0; j < n->n_out; j++) {
		int32_t v = n->out[j];
		if (v == MPCC_NONE)
			continue;
		if (!in_range(g, v))
			return mpcc_node_error(d, n, MPCC_ERR_INTERNAL,
			                       "output %d refers to value %d of %d", j, (int)v,
			                       g->n_values);
		if (defined[v])
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "output '%s' is defined twice",
			                       g->values[v].name);
	}
	st = check_arity(n, d);
	if (st)
		return st;
	for (int j = 0; j < n->n_out; j++)
		if (n->out[j] != MPCC_NONE)
			defined[n->out[j]] = 1;
	return MPCC_OK;
}

/*
 * A constant produced by a live node counts as defined only when that node
 * runs: folding leaves the node in place until DCE, and the node's position
 * is what orders it. Constants with no live producer (initializers, folded
 * values whose node is gone) are defined from the start.
 */
mpcc_status
mpcc_graph_verify(const mpcc_graph *g, mpcc_diag *d)
{
	char *defined = calloc((size_t)g->n_values + 1, 1);
	mpcc_status st = MPCC_OK;

	if (!defined)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory verifying the graph");
	for (int i = 0; i < g->n_values; i++) {
		const mpcc_value *v = &g->values[i];
		bool live_producer = v->producer >= 0 && v->producer < g->n_nodes &&
		                     !g->nodes[v->producer].dead;
		if ((v->flags & MPCC_VALUE_CONST) && !live_producer)
			defined[i] = 1;
	}
	for (int i = 0; i < g->n_inputs; i++) {
		int32_t v = g->inputs[i];
		if (!in_range(g, v)) {
			st = mpcc_diag_error(d, MPCC_ERR_INTERNAL, "graph input %d refers to value %d",
			                     i, (int)v);
			goto out;
		}
		if (g->values[v].producer >= 0 && g->values[v].producer < g->n_nodes &&
		    !g->nodes[g->values[v].producer].dead) {
			st = mpcc_diag_error(d, MPCC_ERR_INVALID,
			                     "graph input '%s' is also produced by node '%s'",
			                     g->values[v].name, g->nodes[g->values[v].producer].name);
			goto out;
		}
		defined[v] = 1;
	}
	for (int i = 0; i < g->n_nodes && !st; i++)
		if (!g->nodes[i].dead)
			st = check_node(g, &g->nodes[i], defined, d);
	for (int i = 0; i < g->n_outputs && !st; i++) {
		int32_t v = g->outputs[i];
		if (!in_range(g, v))
			st = mpcc_diag_error(d, MPCC_ERR_INTERNAL, "graph output %d refers to value %d",
			                     i, (int)v);
		else if (!defined[v])
			st = mpcc_diag_error(d, MPCC_ERR_INVALID, "graph output '%s' is never defined",
			                     g->values[v].name);
	}
	if (!st)
		st = mpcc_train_verify(g, d);
out:
	free(defined);
	return st;
}
