/*
 * expose.c - makes the f32 intermediates of a graph into graph outputs, for
 * auto mode's internal builds (runtime/autoprec.c): the calibration run
 * reads every tensor's range from them and the search reads every node's
 * error.
 *
 * Only the outputs list and flags change, never what a node computes: the
 * cast pass keeps a graph output's model dtype by letting a low node write a
 * low twin that its consumers read and casting the twin to f32 for the
 * output, and fusion leaves graph outputs alone, whose results are
 * bit-identical anyway. So a run of an exposed build computes exactly what
 * the plain build computes, and hands back more.
 *
 * Exposed values cannot share memory, so their total is capped: in node
 * order, a value that no longer fits MPCC_EXPOSE_MAX_BYTES stays internal
 * (auto mode then has no range or error for it).
 */
#include "passes/passes.h"

mpcc_status
mpcc_expose_intermediates(mpcc_graph *g, mpcc_pass_ctx *cx)
{
	size_t budget = MPCC_EXPOSE_MAX_BYTES;

	for (int i = 0; i < g->n_nodes; i++) {
		const mpcc_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_out; j++) {
			int32_t v = n->out[j];
			if (v == MPCC_NONE)
				continue;
			const mpcc_value *val = &g->values[v];
			int64_t numel = mpcc_value_numel(val);
			if (val->dtype != MPCC_DTYPE_F32 || numel < 0 ||
			    (val->flags & (MPCC_VALUE_OUTPUT | MPCC_VALUE_CONST | MPCC_VALUE_INPUT)))
				continue;
			if ((size_t)numel * sizeof(float) > budget)
				continue; /* over the budget: not measured */
			budget -= (size_t)numel * sizeof(float);
			mpcc_status st = mpcc_graph_add_output(g, v);
			if (st != MPCC_OK)
				return mpcc_diag_error(cx->d, st, "out of memory exposing intermediates");
		}
	}
	return MPCC_OK;
}
