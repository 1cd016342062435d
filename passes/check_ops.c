/*
 * check_ops.c - every live node must have a rule, an input and output count
 * the rule accepts, and only attributes the rule names.
 *
 * This runs before inference so that an unsupported op or a misspelt
 * attribute is reported as such, not as a confusing shape error later.
 */
#include <string.h>

#include "passes/passes.h"

static bool
attr_known(const mpcc_op_rule *r, const char *name)
{
	for (const char *const *a = r->attrs; a && *a; a++)
		if (strcmp(*a, name) == 0)
			return true;
	return false;
}

static mpcc_status
check_node(const mpcc_node *n, mpcc_diag *d)
{
	const mpcc_op_rule *r = mpcc_op_rule_get(n->op);

	if (!r)
		return mpcc_node_error(d, n, MPCC_ERR_UNSUPPORTED, "unsupported op");
	if (n->n_in < r->min_in || n->n_in > r->max_in)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "has %d inputs, expected %d to %d",
		                       n->n_in, r->min_in, r->max_in);
	if (n->n_out < r->min_out || n->n_out > r->max_out)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "has %d outputs, expected %d to %d",
		                       n->n_out, r->min_out, r->max_out);
	for (int i = 0; i < n->n_attr; i++)
		if (!attr_known(r, n->attr[i].name))
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "unknown attribute '%s'",
			                       n->attr[i].name);
	return MPCC_OK;
}

mpcc_status
mpcc_check_ops(mpcc_graph *g, mpcc_pass_ctx *cx)
{
	for (int i = 0; i < g->n_nodes; i++) {
		if (g->nodes[i].dead)
			continue;
		mpcc_status st = check_node(&g->nodes[i], cx->d);
		if (st)
			return st;
	}
	return MPCC_OK;
}
