/*
 * casts.c - turns the precision decisions of precision.c into the graph
 * (issue 3): low nodes' f32 outputs become f16/bf16 values, a Cast sits at
 * every dtype boundary (one per value and target dtype, shared by all its
 * consumers), constants feeding low nodes are converted at compile time, and
 * round trips Cast(Cast(x, low), f32) are cancelled. Shapes and dtypes are
 * then inferred again and checked against the decisions, so every existing
 * lowering sees an ordinary graph whose dtypes say where values are rounded.
 *
 * Casts are appended with mpcc_graph_add_node and then the node array is
 * permuted so each cast sits right after the node producing its source
 * (graph inputs and constants: at the front); producers are renumbered.
 *
 * Each node computes in its own dtype: auto mode mixes f16 and bf16 nodes in
 * one graph, so a value may be wanted in f32, f16 and bf16 at once. It gets
 * one version per dtype, each shared by every consumer that wants it, and a
 * node's float inputs always arrive in the one dtype it computes in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

typedef struct cast_entry {
	int32_t src;
	mpcc_dtype to;
	int32_t dst;
} cast_entry;

typedef struct rewrite {
	mpcc_graph *g;
	mpcc_diag *d;
	mpcc_dtype low;    /* the mode's low dtype: graph inputs under low_io */
	mpcc_dtype *odt;   /* dtype of each original value before the rewrite */
	mpcc_dtype *stor;  /* storage decided for each original value */
	int32_t *base;     /* value a node actually writes for original value v */
	char *kind;        /* per original node: 0 no decision, 1 f32, 2 low */
	mpcc_dtype *ndt;   /* per original node: the dtype its float data uses */
	int32_t n_values0; /* values before the rewrite */
	cast_entry *map;
	int n_map, cap_map;
	mpcc_precision_stats *stats;
} rewrite;


static bool
map_add(rewrite *rw, int32_t src, mpcc_dtype to, int32_t dst)
{
	if (rw->n_map == rw->cap_map) {
		int cap = rw->cap_map ? 2 * rw->cap_map : 64;
		cast_entry *m = realloc(rw->map, sizeof(*m) * (size_t)cap);
		if (!m)
			return false;
		rw->map = m;
		rw->cap_map = cap;
	}
	rw->map[rw->n_map++] = (cast_entry){src, to, dst};
	return true;
}

static int32_t
map_find(const rewrite *rw, int32_t src, mpcc_dtype to)
{
	for (int i = 0; i < rw->n_map; i++)
		if (rw->map[i].src == src && rw->map[i].to == to)
			return rw->map[i].dst;
	return MPCC_NONE;
}

/* A new value named "<src>.<dtype>" (or a generated name on a clash) with
 * src's shape and dtype `to`. */
static int32_t
new_value_like(mpcc_graph *g, int32_t src, mpcc_dtype to)
{
	char name[512];
	int32_t v;

	snprintf(name, sizeof(name), "%s.%s", g->values[src].name, mpcc_dtype_name(to));
	v = mpcc_graph_add_value(g, mpcc_graph_find_value(g, name) == MPCC_NONE ? name : NULL);
	if (v == MPCC_NONE)
		return v;
	mpcc_value *nv = &g->values[v], *sv = &g->values[src];
	nv->dtype = to;
	nv->storage = to;
	nv->rank = sv->rank;
	memcpy(nv->dims, sv->dims, sizeof(nv->dims));
	memcpy(nv->sym, sv->sym, sizeof(nv->sym));
	return v;
}

/* Converts constant f32 data to `to` (f16 or bf16) into a new constant. */
static int32_t
convert_const(rewrite *rw, int32_t src, mpcc_dtype to)
{
	mpcc_graph *g = rw->g;
	int64_t numel = mpcc_value_numel(&g->values[src]);
	uint16_t *data;
	int32_t v;

	if (numel < 0)
		return MPCC_NONE;
	data = malloc((size_t)(numel ? numel : 1) * sizeof(uint16_t));
	if (!data)
		return MPCC_NONE;
	v = new_value_like(g, src, to);
	if (v == MPCC_NONE) {
		free(data);
		return MPCC_NONE;
	}
	const float *f = g->values[src].data;
	for (int64_t i = 0; i < numel; i++)
		data[i] = to == MPCC_DTYPE_F16 ? mpcc_f32_to_f16(f[i]) : mpcc_f32_to_bf16(f[i]);
	mpcc_value_set_data(&g->values[v], data, (size_t)numel * sizeof(uint16_t));
	g->values[v].flags |= g->values[src].flags & MPCC_VALUE_WEIGHT;
	if (rw->stats)
		rw->stats->consts_converted++;
	return v;
}

/* Appends Cast(src -> to) writing dst (a new value when dst is NONE). */
static int32_t
add_cast(rewrite *rw, int32_t src, mpcc_dtype to, int32_t dst)
{
	mpcc_graph *g = rw->g;
	char name[512];
	int32_t ni;

	if (dst == MPCC_NONE && (dst = new_value_like(g, src, to)) == MPCC_NONE)
		return MPCC_NONE;
	snprintf(name, sizeof(name), "Cast_%s_%s", g->values[src].name, mpcc_dtype_name(to));
	ni = mpcc_graph_add_node(g, MPCC_OP_CAST, name, 1, &src, 1, &dst);
	if (ni == MPCC_NONE)
		return MPCC_NONE;
	mpcc_attr *a = mpcc_node_add_attr(g, ni, "to", MPCC_ATTR_INT);
	if (!a)
		return MPCC_NONE;
	a->i = mpcc_dtype_to_onnx(to);
	mpcc_node *n = &g->nodes[ni];
	n->opset = g->opset;
	n->src_index = -1;
	n->compute = n->accum = to;
	n->reason = mpcc_arena_strdup(&g->arena, "cast inserted at a precision boundary");
	if (!n->reason)
		return MPCC_NONE;
	if (rw->stats)
		rw->stats->casts_inserted++;
	return dst;
}

/*
 * The value holding original value v in dtype `to`: v itself (or what its
 * producer now writes) when stored so, else one shared conversion: a
 * converted constant or a Cast node.
 */
static int32_t
version(rewrite *rw, int32_t v, mpcc_dtype to)
{
	int32_t b = rw->base[v], r;

	if (rw->stor[v] == to)
		return b;
	if ((r = map_find(rw, b, to)) != MPCC_NONE)
		return r;
	if (rw->g->values[v].flags & MPCC_VALUE_CONST)
		r = convert_const(rw, v, to);
	else
		r = add_cast(rw, b, to, MPCC_NONE);
	if (r == MPCC_NONE || !map_add(rw, b, to, r))
		return MPCC_NONE;
	return r;
}

/* True when the float inputs that count (not read dtype-blind) share one
 * dtype. */
static bool
inputs_agree(const mpcc_graph *g, const mpcc_node *n)
{
	mpcc_dtype t = MPCC_DTYPE_UNDEF;

	for (int j = 0; j < n->n_in; j++) {
		if (n->in[j] == MPCC_NONE || mpcc_precision_input_neutral(n->op, j))
			continue;
		mpcc_dtype u = g->values[n->in[j]].dtype;
		if (!mpcc_dtype_is_float(u))
			continue;
		if (t != MPCC_DTYPE_UNDEF && u != t)
			return false;
		t = u;
	}
	return true;
}

/* Moves every node appended after n0 to just after the producer of its
 * input (to the front when that is a graph input), keeping topological
 * order, and renumbers the values' producers. */
static mpcc_status
reorder(mpcc_graph *g, int n0, char *flag, mpcc_diag *d)
{
	int n = g->n_nodes, at = 0;
	int32_t *order = malloc(sizeof(*order) * (size_t)(n + 1));
	mpcc_node *tmp = malloc(sizeof(*tmp) * (size_t)(n + 1));
	char *ftmp = malloc((size_t)n + 1);

	if (!order || !tmp || !ftmp) {
		free(order);
		free(tmp);
		free(ftmp);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory inserting casts");
	}
	for (int k = n0; k < n; k++) {
		int32_t p = g->values[g->nodes[k].in[0]].producer;
		if (p < 0 || p >= n0)
			order[at++] = k;
	}
	for (int i = 0; i < n0; i++) {
		order[at++] = i;
		for (int k = n0; k < n; k++)
			if (g->values[g->nodes[k].in[0]].producer == i)
				order[at++] = k;
	}
	memcpy(tmp, g->nodes, sizeof(*tmp) * (size_t)n);
	for (int k = 0; k < n; k++) {
		g->nodes[k] = tmp[order[k]];
		ftmp[k] = order[k] < n0 ? flag[order[k]] : 0;
	}
	memcpy(flag, ftmp, (size_t)n);
	for (int k = 0; k < n; k++)
		for (int j = 0; j < g->nodes[k].n_out; j++)
			if (g->nodes[k].out[j] != MPCC_NONE)
				g->values[g->nodes[k].out[j]].producer = k;
	free(order);
	free(tmp);
	free(ftmp);
	return at == n ? MPCC_OK
	               : mpcc_diag_error(d, MPCC_ERR_INTERNAL, "cast placement lost a node");
}

static int
count_uses(const mpcc_graph *g, int32_t v)
{
	int uses = 0;
	for (int i = 0; i < g->n_nodes; i++)
		for (int j = 0; !g->nodes[i].dead && j < g->nodes[i].n_in; j++)
			uses += g->nodes[i].in[j] == v;
	for (int i = 0; i < g->n_outputs; i++)
		uses += g->outputs[i] == v;
	return uses;
}

static bool
is_low_dtype(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16;
}

mpcc_status
mpcc_cancel_round_trips(mpcc_graph *g, mpcc_pass_ctx *cx, mpcc_precision_stats *stats)
{
	(void)cx;
	for (int i = 0; i < g->n_nodes; i++) {
		mpcc_node *c2 = &g->nodes[i];
		if (c2->dead || c2->op != MPCC_OP_CAST)
			continue;
		int32_t mid = c2->in[0], y = c2->out[0];
		int32_t p = g->values[mid].producer;
		if (p < 0 || g->nodes[p].dead || g->nodes[p].op != MPCC_OP_CAST)
			continue;
		int32_t x = g->nodes[p].in[0];
		if (!is_low_dtype(g->values[mid].dtype) || g->values[x].dtype != g->values[y].dtype ||
		    !mpcc_dtype_is_float(g->values[x].dtype) ||
		    mpcc_dtype_size(g->values[x].dtype) <= mpcc_dtype_size(g->values[mid].dtype) ||
		    count_uses(g, mid) != 1)
			continue;
		g->nodes[p].dead = true;
		if (g->values[y].flags & MPCC_VALUE_OUTPUT) {
			c2->in[0] = x; /* a same-dtype cast: a copy into the output */
		} else {
			c2->dead = true;
			for (int k = 0; k < g->n_nodes; k++)
				for (int j = 0; !g->nodes[k].dead && j < g->nodes[k].n_in; j++)
					if (g->nodes[k].in[j] == y)
						g->nodes[k].in[j] = x;
		}
		if (stats)
			stats->round_trips_cancelled++;
	}
	return MPCC_OK;
}

/* Runs every live node's shape function again over the rewritten graph. */
static mpcc_status
reinfer(mpcc_graph *g, mpcc_diag *d)
{
	for (int i = 0; i < g->n_nodes; i++) {
		if (g->nodes[i].dead)
			continue;
		const mpcc_op_rule *r = mpcc_op_rule_get(g->nodes[i].op);
		if (!r || !r->infer)
			return mpcc_node_error(d, &g->nodes[i], MPCC_ERR_INTERNAL, "no shape function");
		mpcc_status st = r->infer(g, i, d);
		if (st)
			return st;
	}
	return MPCC_OK;
}

/*
 * After inference: low nodes store low, graph inputs and outputs keep their
 * model dtype (unless low_io), and no node whose float inputs agreed before
 * the rewrite has inputs that disagree now.
 */
static mpcc_status
check_result(const rewrite *rw, const char *agreed, bool low_io)
{
	const mpcc_graph *g = rw->g;

	for (int i = 0; i < g->n_nodes; i++) {
		const mpcc_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		if (n->op != MPCC_OP_CAST && agreed[i] == 1 && !inputs_agree(g, n))
			return mpcc_node_error(rw->d, n, MPCC_ERR_INTERNAL,
			                       "precision rewrite left float inputs of different dtypes");
		if (n->op == MPCC_OP_CAST)
			continue;
		for (int j = 0; j < n->n_out; j++) {
			int32_t v = n->out[j];
			if (v == MPCC_NONE || v >= rw->n_values0 || rw->odt[v] != MPCC_DTYPE_F32)
				continue;
			if (g->values[v].dtype != rw->stor[v])
				return mpcc_node_error(rw->d, n, MPCC_ERR_INTERNAL,
				                       "output '%s' inferred as %s, assigned %s",
				                       g->values[v].name,
				                       mpcc_dtype_name(g->values[v].dtype),
				                       mpcc_dtype_name(rw->stor[v]));
		}
	}
	for (int i = 0; i < g->n_outputs; i++) {
		int32_t v = g->outputs[i];
		mpcc_dtype t = g->values[v].dtype;
		bool lowered = low_io && rw->odt[v] == MPCC_DTYPE_F32 &&
		               !(g->values[v].flags & MPCC_VALUE_CONST);
		bool ok = lowered ? t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 : t == rw->odt[v];
		if (v < rw->n_values0 && !ok)
			return mpcc_diag_error(rw->d, MPCC_ERR_INTERNAL,
			                       "graph output '%s' changed dtype to %s", g->values[v].name,
			                       mpcc_dtype_name(t));
	}
	return MPCC_OK;
}

/* Decides each original value's storage and rewires the low nodes whose
 * outputs are graph outputs to write a fresh low value instead. */
static mpcc_status
plan_storage(rewrite *rw, bool low_io)
{
	mpcc_graph *g = rw->g;
	int n0 = g->n_nodes;

	for (int i = 0; low_io && i < g->n_inputs; i++) {
		int32_t v = g->inputs[i];
		if (rw->odt[v] == MPCC_DTYPE_F32)
			rw->stor[v] = rw->low;
	}
	for (int i = 0; i < n0; i++) {
		if (rw->kind[i] != 2)
			continue;
		for (int j = 0; j < g->nodes[i].n_out; j++) {
			int32_t v = g->nodes[i].out[j];
			if (v == MPCC_NONE || rw->odt[v] != MPCC_DTYPE_F32)
				continue;
			rw->stor[v] = rw->ndt[i];
			if (low_io || !(g->values[v].flags & MPCC_VALUE_OUTPUT))
				continue;
			/* the graph output keeps its name and model dtype: the node
			 * writes a low twin and a cast restores the output */
			int32_t t = new_value_like(g, v, rw->ndt[i]);
			if (t == MPCC_NONE)
				return mpcc_diag_error(rw->d, MPCC_ERR_NOMEM, "out of memory inserting casts");
			g->nodes[i].out[j] = t;
			g->values[t].producer = i;
			g->values[v].producer = MPCC_NONE;
			rw->base[v] = t;
			if (add_cast(rw, t, MPCC_DTYPE_F32, v) == MPCC_NONE ||
			    !map_add(rw, t, MPCC_DTYPE_F32, v))
				return mpcc_diag_error(rw->d, MPCC_ERR_NOMEM, "out of memory inserting casts");
		}
	}
	/* low_io: an f32 output of an f32 node is rounded once at the end: the
	 * node writes an f32 twin (what in-graph consumers read) and a cast
	 * produces the output, under its name, in the low dtype */
	for (int i = 0; low_io && i < g->n_outputs; i++) {
		int32_t v = g->outputs[i], p = g->values[v].producer;
		if (v >= rw->n_values0 || rw->odt[v] != MPCC_DTYPE_F32 ||
		    rw->stor[v] != MPCC_DTYPE_F32 || rw->base[v] != v || p == MPCC_NONE ||
		    (g->values[v].flags & MPCC_VALUE_CONST))
			continue;
		int32_t t = new_value_like(g, v, MPCC_DTYPE_F32);
		if (t == MPCC_NONE)
			return mpcc_diag_error(rw->d, MPCC_ERR_NOMEM, "out of memory inserting casts");
		for (int j = 0; j < g->nodes[p].n_out; j++)
			if (g->nodes[p].out[j] == v)
				g->nodes[p].out[j] = t;
		g->values[t].producer = p;
		g->values[v].producer = MPCC_NONE;
		rw->base[v] = t;
		if (add_cast(rw, t, rw->low, v) == MPCC_NONE || !map_add(rw, t, rw->low, v))
			return mpcc_diag_error(rw->d, MPCC_ERR_NOMEM, "out of memory inserting casts");
	}
	return MPCC_OK;
}

/* Points every input of the original nodes at the version it needs. */
static mpcc_status
rewire_inputs(rewrite *rw, int n0)
{
	mpcc_graph *g = rw->g;

	for (int i = 0; i < n0; i++) {
		if (rw->kind[i] == 0)
			continue;
		for (int j = 0; j < g->nodes[i].n_in; j++) {
			int32_t v = g->nodes[i].in[j];
			if (v == MPCC_NONE || v >= rw->n_values0 || rw->odt[v] != MPCC_DTYPE_F32)
				continue;
			mpcc_dtype want = rw->ndt[i];
			if (mpcc_precision_input_neutral(g->nodes[i].op, j))
				want = rw->stor[v];
			int32_t r = version(rw, v, want);
			if (r == MPCC_NONE)
				return mpcc_diag_error(rw->d, MPCC_ERR_NOMEM, "out of memory inserting casts");
			g->nodes[i].in[j] = r;
		}
	}
	return MPCC_OK;
}

/*
 * Why the decisions are applied by rewiring inputs and re-running inference,
 * not by setting output dtypes directly: the shape functions are the one
 * definition of what dtype an op produces from its inputs, so a low node fed
 * low inputs comes out low on its own, and check_result catches any op whose
 * rule disagrees with the decision instead of handing a lowering a graph it
 * never saw in fp32 mode.
 */
mpcc_status
mpcc_insert_casts(mpcc_graph *g, mpcc_pass_ctx *cx, mpcc_precision_stats *stats)
{
	static const mpcc_compile_options defaults = {0};
	const mpcc_compile_options *o = cx->opts ? cx->opts : &defaults;
	rewrite rw = {0};
	char *agreed = NULL;
	int n0 = g->n_nodes;
	mpcc_status st = MPCC_OK;

	if (stats)
		memset(stats, 0, sizeof(*stats));
	rw.g = g;
	rw.d = cx->d;
	rw.low = mpcc_precision_low_dtype(o->precision);
	rw.stats = stats;
	rw.n_values0 = g->n_values;
	if (rw.low == MPCC_DTYPE_UNDEF)
		return MPCC_OK;
	rw.odt = malloc(sizeof(*rw.odt) * (size_t)(g->n_values + 1));
	rw.stor = malloc(sizeof(*rw.stor) * (size_t)(g->n_values + 1));
	rw.base = malloc(sizeof(*rw.base) * (size_t)(g->n_values + 1));
	rw.kind = calloc((size_t)n0 + 1, 1);
	rw.ndt = calloc((size_t)n0 + 1, sizeof(*rw.ndt));
	agreed = calloc((size_t)n0 + 1, 1);
	if (!rw.odt || !rw.stor || !rw.base || !rw.kind || !rw.ndt || !agreed) {
		st = mpcc_diag_error(cx->d, MPCC_ERR_NOMEM, "out of memory inserting casts");
		goto out;
	}
	for (int32_t v = 0; v < g->n_values; v++) {
		rw.odt[v] = rw.stor[v] = g->values[v].dtype;
		rw.base[v] = v;
	}
	for (int i = 0; i < n0; i++) {
		const mpcc_node *n = &g->nodes[i];
		if (n->dead || !mpcc_precision_candidate(g, n))
			continue;
		rw.kind[i] = is_low_dtype(n->compute) ? 2 : 1;
		rw.ndt[i] = rw.kind[i] == 2 ? n->compute : MPCC_DTYPE_F32;
		agreed[i] = inputs_agree(g, n);
	}
	if ((st = plan_storage(&rw, o->low_io)))
		goto out;
	if ((st = rewire_inputs(&rw, n0)))
		goto out;
	for (int i = 0; o->low_io && i < g->n_inputs; i++) {
		mpcc_value *v = &g->values[g->inputs[i]];
		if (v->dtype == MPCC_DTYPE_F32)
			v->dtype = v->storage = rw.low;
	}
	char *grown = realloc(agreed, (size_t)g->n_nodes + 1);
	if (!grown) {
		st = mpcc_diag_error(cx->d, MPCC_ERR_NOMEM, "out of memory inserting casts");
		goto out;
	}
	agreed = grown;
	memset(agreed + n0, 0, (size_t)(g->n_nodes - n0));
	if ((st = reorder(g, n0, agreed, cx->d)))
		goto out;
	if ((st = reinfer(g, cx->d)))
		goto out;
	if ((st = mpcc_cancel_round_trips(g, cx, stats)))
		goto out;
	if ((st = check_result(&rw, agreed, o->low_io)))
		goto out;
	for (int32_t v = 0; v < g->n_values; v++) {
		mpcc_value *x = &g->values[v];
		if (mpcc_dtype_is_float(x->dtype))
			x->storage = x->dtype;
		if ((x->dtype == MPCC_DTYPE_F16 || x->dtype == MPCC_DTYPE_BF16) &&
		    !(x->flags & MPCC_VALUE_CONST) &&
		    (v >= rw.n_values0 || rw.odt[v] == MPCC_DTYPE_F32))
			x->flags |= MPCC_VALUE_LOWERED;
	}
	st = mpcc_graph_verify(g, cx->d);
out:
	free(rw.odt);
	free(rw.stor);
	free(rw.base);
	free(rw.kind);
	free(rw.ndt);
	free(rw.map);
	free(agreed);
	return st;
}
