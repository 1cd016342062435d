/*
 * lower.c - drives lowering of graph nodes to kernel IR and supplies the
 * index arithmetic every op's lowering shares.
 *
 * mpcc_lower_node looks up the op's rule, lets it append kernels, and checks
 * what it built: every kernel must have been built without running out of
 * memory and, in debug builds, must pass kir_validate, so a broken lowering is
 * reported at the node that produced it rather than deep inside an emitter.
 * The helpers build row-major linear indices and numpy broadcasting from
 * loop vars, and one-stage elementwise kernels from a per-op value function.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/lower.h"

void
mpcc_lower_init(mpcc_lower *lx, mpcc_graph *g, mpcc_diag *d)
{
	memset(lx, 0, sizeof(*lx));
	lx->g = g;
	lx->d = d;
}

void
mpcc_lower_fini(mpcc_lower *lx)
{
	for (int i = 0; i < lx->n_kernels; i++)
		kir_kernel_destroy(lx->kernels[i]);
	free(lx->kernels);
	lx->kernels = NULL;
	lx->n_kernels = lx->cap_kernels = 0;
}

/* Why the checks live here: a lowering builds with builders that never fail
 * visibly, so this is the one place that turns a failed build into NOMEM and
 * a malformed kernel into an internal error naming the node. */
mpcc_status
mpcc_lower_node(mpcc_lower *lx, int32_t n)
{
	const mpcc_node *node;
	const mpcc_op_rule *rule;
	int first = lx->n_kernels;
	mpcc_status st;

	if (n < 0 || n >= lx->g->n_nodes)
		return mpcc_diag_error(lx->d, MPCC_ERR_INTERNAL, "lowering: node %d out of range", n);
	node = &lx->g->nodes[n];
	rule = mpcc_op_rule_get(node->op);
	if (!rule || !rule->lower)
		return mpcc_node_error(lx->d, node, MPCC_ERR_UNSUPPORTED, "no lowering");
	st = rule->lower(lx, n);
	if (st != MPCC_OK) {
		if (lx->d->status == MPCC_OK)
			mpcc_node_error(lx->d, node, st, "lowering failed");
		return st;
	}
	for (int i = first; i < lx->n_kernels; i++) {
		kir_kernel *k = lx->kernels[i];
		if (!kir_kernel_ok(k))
			return mpcc_node_error(lx->d, node, MPCC_ERR_NOMEM,
			                       "building kernel %s failed (out of memory or a "
			                       "malformed build)",
			                       k ? k->name : "?");
#ifndef NDEBUG
		mpcc_diag vd;
		mpcc_diag_init(&vd);
		if (kir_validate(k, &vd) != MPCC_OK)
			return mpcc_node_error(lx->d, node, MPCC_ERR_INTERNAL,
			                       "lowering built a malformed kernel: %s", vd.msg);
#endif
	}
	return MPCC_OK;
}

static bool
outputs_const(const mpcc_graph *g, const mpcc_node *node)
{
	for (int i = 0; i < node->n_out; i++) {
		int32_t v = node->out[i];
		if (v != MPCC_NONE && !(g->values[v].flags & MPCC_VALUE_CONST))
			return false;
	}
	return true;
}

mpcc_status
mpcc_lower_graph(mpcc_lower *lx)
{
	for (int32_t n = 0; n < lx->g->n_nodes; n++) {
		const mpcc_node *node = &lx->g->nodes[n];
		if (node->dead || outputs_const(lx->g, node))
			continue;
		mpcc_status st = mpcc_lower_node(lx, n);
		if (st != MPCC_OK)
			return st;
	}
	return MPCC_OK;
}

/* Why the index leads the name: "k<index>_" makes names unique in a plan
 * even after truncation to 63 characters, and keeps them C identifiers. */
kir_kernel *
mpcc_lower_kernel(mpcc_lower *lx, int32_t n, const char *suffix)
{
	char name[128];
	const char *nn = "kernel";
	size_t len;
	kir_kernel *k;

	if (n >= 0 && n < lx->g->n_nodes && lx->g->nodes[n].name && lx->g->nodes[n].name[0])
		nn = lx->g->nodes[n].name;
	len = (size_t)snprintf(name, sizeof(name), "k%d_", lx->n_kernels);
	for (const char *p = nn; *p && len < sizeof(name) - 1; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_';
		name[len++] = ok ? c : '_';
	}
	name[len] = '\0';
	if (suffix && suffix[0] && len < sizeof(name) - 1)
		snprintf(name + len, sizeof(name) - len, "_%s", suffix);
	name[63] = '\0';

	if (lx->n_kernels == lx->cap_kernels) {
		int ncap = lx->cap_kernels ? lx->cap_kernels * 2 : 16;
		kir_kernel **p = realloc(lx->kernels, (size_t)ncap * sizeof(*p));
		if (!p) {
			mpcc_diag_error(lx->d, MPCC_ERR_NOMEM, "out of memory lowering %s", name);
			return NULL;
		}
		lx->kernels = p;
		lx->cap_kernels = ncap;
	}
	k = kir_kernel_create(name);
	if (!k) {
		mpcc_diag_error(lx->d, MPCC_ERR_NOMEM, "out of memory lowering %s", name);
		return NULL;
	}
	k->node = n;
	lx->kernels[lx->n_kernels++] = k;
	return k;
}

int
mpcc_lower_param(kir_kernel *k, const mpcc_graph *g, int32_t v)
{
	const mpcc_value *val;
	mpcc_dtype t;

	for (int i = 0; i < k->n_bufs; i++)
		if (k->bufs[i].kind == KIR_BUF_PARAM && k->bufs[i].value == v)
			return i;
	if (v < 0 || v >= g->n_values) {
		k->failed = true;
		return 0;
	}
	val = &g->values[v];
	t = val->storage != MPCC_DTYPE_UNDEF ? val->storage : val->dtype;
	return kir_buf_add(k, t, KIR_BUF_PARAM, v, mpcc_value_numel(val));
}

void
mpcc_lower_vars(kir_kernel *k, int first, int n, int32_t *out)
{
	for (int i = 0; i < n; i++)
		out[i] = kir_var(k, first + i);
}

int32_t
mpcc_lower_linear(kir_kernel *k, int rank, const int64_t *dims, const int32_t *idx)
{
	int64_t stride[MPCC_MAX_RANK];
	int64_t s = 1;
	int32_t e = MPCC_NONE;

	if (rank < 0 || rank > MPCC_MAX_RANK) {
		k->failed = true;
		return 0;
	}
	for (int d = rank - 1; d >= 0; d--) {
		stride[d] = s;
		s = (int64_t)((uint64_t)s * (uint64_t)dims[d]);
	}
	for (int d = 0; d < rank; d++) {
		if (dims[d] == 1)
			continue;
		int32_t term = kir_imul(k, idx[d], stride[d]);
		e = e == MPCC_NONE ? term : kir_iadd(k, e, term);
	}
	return e == MPCC_NONE ? kir_iconst(k, 0) : e;
}

int32_t
mpcc_lower_bcast(kir_kernel *k, const mpcc_value *in, int out_rank, const int32_t *out_idx)
{
	int off = out_rank - in->rank;

	if (in->rank < 0 || off < 0) {
		k->failed = true;
		return 0;
	}
	/* size-1 dims are skipped by the linear index, which is the broadcast */
	return mpcc_lower_linear(k, in->rank, in->dims, out_idx + off);
}

/* Why one helper: most unary, binary and variadic ops are "load every input
 * broadcast to the output's position, combine, store"; only the combining
 * differs, so each op supplies fn and nothing else. Absent optional inputs
 * reach fn as MPCC_NONE. */
mpcc_status
mpcc_lower_elementwise(mpcc_lower *lx, int32_t n, mpcc_elem_fn fn, void *ctx)
{
	mpcc_graph *g = lx->g;
	const mpcc_node *node = &g->nodes[n];
	const mpcc_value *out;
	int32_t vars[MPCC_MAX_RANK], *in;
	kir_kernel *k;
	kir_stage *st;
	int32_t val, idx;
	mpcc_dtype ot;
	int ob;

	if (node->n_out < 1 || node->out[0] == MPCC_NONE)
		return mpcc_node_error(lx->d, node, MPCC_ERR_INTERNAL, "elementwise op without output");
	out = &g->values[node->out[0]];
	if (out->rank < 0 || out->rank > KIR_MAX_DIMS)
		return mpcc_node_error(lx->d, node, MPCC_ERR_UNSUPPORTED,
		                       "output rank %d not supported by the elementwise lowering",
		                       out->rank);
	k = mpcc_lower_kernel(lx, n, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	in = malloc((size_t)(node->n_in > 0 ? node->n_in : 1) * sizeof(*in));
	if (!in)
		return mpcc_node_error(lx->d, node, MPCC_ERR_NOMEM, "out of memory");
	mpcc_lower_vars(k, 0, out->rank, vars);
	for (int i = 0; i < node->n_in; i++) {
		int32_t v = node->in[i];
		if (v == MPCC_NONE) {
			in[i] = MPCC_NONE;
			continue;
		}
		int b = mpcc_lower_param(k, g, v);
		in[i] = kir_load(k, b, mpcc_lower_bcast(k, &g->values[v], out->rank, vars));
	}
	val = fn(k, in, node->n_in, node, ctx);
	free(in);
	if (val < 0 || (k->n_exprs > 0 && val >= k->n_exprs)) {
		if (lx->d->status != MPCC_OK)
			return lx->d->status;
		return mpcc_node_error(lx->d, node, MPCC_ERR_INTERNAL,
		                       "elementwise lowering produced no value");
	}
	ot = out->storage != MPCC_DTYPE_UNDEF ? out->storage : out->dtype;
	val = kir_cast(k, ot, val);
	ob = mpcc_lower_param(k, g, node->out[0]);
	idx = mpcc_lower_linear(k, out->rank, out->dims, vars);
	st = kir_stage_add(k, out->rank, out->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF,
	                   MPCC_NONE);
	kir_stage_store(k, st, ob, idx, val);
	return MPCC_OK;
}

int
mpcc_axis(int64_t axis, int rank)
{
	if (axis < -(int64_t)rank || axis >= rank)
		return -1;
	return (int)(axis < 0 ? axis + rank : axis);
}
