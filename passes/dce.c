/*
 * dce.c - dead node elimination.
 *
 * One backward sweep: graph outputs are needed; a node is live when one of
 * its outputs is needed and not all of its outputs are constant (a folded
 * node has nothing left to compute); a live node's inputs become needed.
 * Dead nodes are only marked, never removed, so indices stay valid.
 */
#include <stdlib.h>

#include "passes/passes.h"

static bool
node_live(const mpcc_graph *g, const mpcc_node *n, const char *needed)
{
	bool any_needed = false, all_const = true;

	for (int j = 0; j < n->n_out; j++) {
		int32_t v = n->out[j];
		if (v < 0 || v >= g->n_values)
			continue;
		if (needed[v])
			any_needed = true;
		if (!(g->values[v].flags & MPCC_VALUE_CONST))
			all_const = false;
	}
	return any_needed && !all_const;
}

mpcc_status
mpcc_eliminate_dead(mpcc_graph *g, mpcc_pass_ctx *cx)
{
	char *needed = calloc((size_t)g->n_values + 1, 1);

	if (!needed)
		return mpcc_diag_error(cx->d, MPCC_ERR_NOMEM, "out of memory in dead code elimination");
	for (int i = 0; i < g->n_outputs; i++)
		if (g->outputs[i] >= 0 && g->outputs[i] < g->n_values)
			needed[g->outputs[i]] = 1;
	for (int i = g->n_nodes - 1; i >= 0; i--) {
		mpcc_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		if (!node_live(g, n, needed)) {
			n->dead = true;
			continue;
		}
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] >= 0 && n->in[j] < g->n_values)
				needed[n->in[j]] = 1;
	}
	free(needed);
	return MPCC_OK;
}

/*
 * Makes live again the dead nodes among the first n_nodes that compute a
 * value marked in needed (one byte per value), and, transitively, their
 * inputs' producers. A node whose outputs were all folded to constants
 * stays dead: its values need no producer. Used by the passes that append
 * nodes reading values an earlier elimination removed (autodiff, the
 * training step graph). needed is updated in place.
 */
void
mpcc_revive_producers(mpcc_graph *g, char *needed, int32_t n_nodes)
{
	for (int32_t i = n_nodes - 1; i >= 0; i--) {
		mpcc_node *n = &g->nodes[i];
		bool want = false, folded = true;
		for (int j = 0; j < n->n_out; j++) {
			if (n->out[j] == MPCC_NONE)
				continue;
			want = want || needed[n->out[j]];
			folded = folded && (g->values[n->out[j]].flags & MPCC_VALUE_CONST);
		}
		if (!want || folded)
			continue;
		n->dead = false;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] != MPCC_NONE)
				needed[n->in[j]] = 1;
	}
}
