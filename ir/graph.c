/*
 * graph.c - building and querying the graph IR.
 *
 * Values and nodes live in malloc'd arrays that double as they grow and are
 * referred to by index, so growing them never invalidates a reference held as
 * an index. Names, node operand arrays and attributes live in the graph's
 * arena. Value lookup by name goes through an open-addressing hash index
 * (FNV-1a, linear probing, at most half full) that add_value keeps current:
 * real models have tens of thousands of values and the frontend looks every
 * operand up by name.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

mpcc_status
mpcc_graph_create(mpcc_graph **out)
{
	mpcc_graph *g;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return MPCC_ERR_NOMEM;
	mpcc_arena_init(&g->arena);
	*out = g;
	return MPCC_OK;
}

void
mpcc_graph_destroy(mpcc_graph *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->n_values; i++)
		free(g->values[i].data);
	for (int i = 0; i < g->n_nodes; i++) {
		mpcc_node *n = &g->nodes[i];
		for (int j = 0; j < n->n_attr; j++)
			if (n->attr[j].kind == MPCC_ATTR_GRAPH)
				mpcc_graph_destroy(n->attr[j].g);
	}
	free(g->values);
	free(g->nodes);
	free(g->vindex);
	mpcc_arena_fini(&g->arena);
	free(g);
}

static uint32_t
hash_name(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* Slot holding name, or the empty slot where it would go. */
static int
index_slot(const mpcc_graph *g, const char *name)
{
	uint32_t mask = (uint32_t)g->cap_vindex - 1;
	uint32_t i = hash_name(name) & mask;

	for (;;) {
		int32_t v = g->vindex[i];
		if (v == MPCC_NONE || strcmp(g->values[v].name, name) == 0)
			return (int)i;
		i = (i + 1) & mask;
	}
}

/*
 * Rehashing when the table would pass half full keeps probes short. A name
 * added twice keeps pointing at its first value: ONNX names are SSA, and a
 * duplicate is the verifier's business, not the index's.
 */
static bool
index_add(mpcc_graph *g, int32_t v)
{
	if (2 * (g->n_values + 1) > g->cap_vindex) {
		int cap = g->cap_vindex ? 2 * g->cap_vindex : 64;
		int32_t *old = g->vindex;
		int old_cap = g->cap_vindex;
		int32_t *t = malloc((size_t)cap * sizeof(*t));
		if (!t)
			return false;
		for (int i = 0; i < cap; i++)
			t[i] = MPCC_NONE;
		g->vindex = t;
		g->cap_vindex = cap;
		for (int i = 0; i < old_cap; i++)
			if (old[i] != MPCC_NONE)
				g->vindex[index_slot(g, g->values[old[i]].name)] = old[i];
		free(old);
	}
	int s = index_slot(g, g->values[v].name);
	if (g->vindex[s] == MPCC_NONE)
		g->vindex[s] = v;
	return true;
}

int32_t
mpcc_graph_find_value(const mpcc_graph *g, const char *name)
{
	if (!name || g->cap_vindex == 0)
		return MPCC_NONE;
	return g->vindex[index_slot(g, name)];
}

static bool
grow(void **arr, int *cap, int need, size_t elem)
{
	if (need <= *cap)
		return true;
	int ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > INT32_MAX / 2)
			return false;
		ncap *= 2;
	}
	void *p = realloc(*arr, (size_t)ncap * elem);
	if (!p)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

int32_t
mpcc_graph_add_value(mpcc_graph *g, const char *name)
{
	char buf[32];
	mpcc_value *v;
	int32_t idx = g->n_values;

	if (!name) {
		do
			snprintf(buf, sizeof(buf), "_v%d", g->n_genname++);
		while (mpcc_graph_find_value(g, buf) != MPCC_NONE);
		name = buf;
	}
	if (!grow((void **)&g->values, &g->cap_values, idx + 1, sizeof(*g->values)))
		return MPCC_NONE;
	v = &g->values[idx];
	memset(v, 0, sizeof(*v));
	v->name = mpcc_arena_strdup(&g->arena, name);
	if (!v->name)
		return MPCC_NONE;
	v->dtype = MPCC_DTYPE_UNDEF;
	v->rank = -1;
	v->producer = MPCC_NONE;
	v->storage = MPCC_DTYPE_UNDEF;
	if (!index_add(g, idx))
		return MPCC_NONE;
	g->n_values++;
	return idx;
}

static int32_t *
copy_ids(mpcc_graph *g, int n, const int32_t *ids)
{
	int32_t *p = mpcc_arena_alloc(&g->arena, (size_t)(n > 0 ? n : 1) * sizeof(*p));

	if (p && n > 0)
		memcpy(p, ids, (size_t)n * sizeof(*p));
	return p;
}

int32_t
mpcc_graph_add_node(mpcc_graph *g, mpcc_op op, const char *name, int n_in, const int32_t *in,
                    int n_out, const int32_t *out)
{
	char buf[96];
	mpcc_node *n;
	int32_t idx = g->n_nodes;

	if (n_in < 0 || n_out < 0)
		return MPCC_NONE;
	if (!grow((void **)&g->nodes, &g->cap_nodes, idx + 1, sizeof(*g->nodes)))
		return MPCC_NONE;
	n = &g->nodes[idx];
	memset(n, 0, sizeof(*n));
	if (!name) {
		snprintf(buf, sizeof(buf), "%s_%d", mpcc_op_name(op), idx);
		name = buf;
	}
	n->name = mpcc_arena_strdup(&g->arena, name);
	n->in = copy_ids(g, n_in, in);
	n->out = copy_ids(g, n_out, out);
	if (!n->name || !n->in || !n->out)
		return MPCC_NONE;
	n->op = op;
	n->opset = g->opset;
	n->n_in = n_in;
	n->n_out = n_out;
	n->compute = MPCC_DTYPE_UNDEF;
	n->accum = MPCC_DTYPE_UNDEF;
	n->range_absmax = n->err = NAN;
	n->src_index = idx;
	for (int i = 0; i < n_out; i++)
		if (out[i] >= 0 && out[i] < g->n_values)
			g->values[out[i]].producer = idx;
	g->n_nodes++;
	return idx;
}

static mpcc_status
append_id(mpcc_graph *g, int32_t **arr, int *n, int32_t v)
{
	/* capacity is the next power of two at or above n, so grow on powers */
	if (*n == 0 || (*n & (*n - 1)) == 0) {
		int cap = *n ? 2 * *n : 4;
		int32_t *p = mpcc_arena_alloc(&g->arena, (size_t)cap * sizeof(*p));
		if (!p)
			return MPCC_ERR_NOMEM;
		if (*n)
			memcpy(p, *arr, (size_t)*n * sizeof(*p));
		*arr = p;
	}
	(*arr)[(*n)++] = v;
	return MPCC_OK;
}

mpcc_status
mpcc_graph_add_input(mpcc_graph *g, int32_t v)
{
	if (v < 0 || v >= g->n_values)
		return MPCC_ERR_INTERNAL;
	g->values[v].flags |= MPCC_VALUE_INPUT;
	return append_id(g, &g->inputs, &g->n_inputs, v);
}

mpcc_status
mpcc_graph_add_output(mpcc_graph *g, int32_t v)
{
	if (v < 0 || v >= g->n_values)
		return MPCC_ERR_INTERNAL;
	g->values[v].flags |= MPCC_VALUE_OUTPUT;
	return append_id(g, &g->outputs, &g->n_outputs, v);
}

mpcc_attr *
mpcc_node_add_attr(mpcc_graph *g, int32_t ni, const char *name, mpcc_attr_kind kind)
{
	mpcc_node *n = &g->nodes[ni];
	mpcc_attr *a;

	if (n->n_attr == 0 || (n->n_attr & (n->n_attr - 1)) == 0) {
		int cap = n->n_attr ? 2 * n->n_attr : 4;
		mpcc_attr *p = mpcc_arena_alloc(&g->arena, (size_t)cap * sizeof(*p));
		if (!p)
			return NULL;
		if (n->n_attr)
			memcpy(p, n->attr, (size_t)n->n_attr * sizeof(*p));
		n->attr = p;
	}
	a = &n->attr[n->n_attr];
	memset(a, 0, sizeof(*a));
	a->name = mpcc_arena_strdup(&g->arena, name);
	if (!a->name)
		return NULL;
	a->kind = kind;
	n->n_attr++;
	return a;
}

const mpcc_attr *
mpcc_node_attr(const mpcc_node *n, const char *name)
{
	for (int i = 0; i < n->n_attr; i++)
		if (strcmp(n->attr[i].name, name) == 0)
			return &n->attr[i];
	return NULL;
}

int64_t
mpcc_node_attr_int(const mpcc_node *n, const char *name, int64_t dflt)
{
	const mpcc_attr *a = mpcc_node_attr(n, name);

	return a && a->kind == MPCC_ATTR_INT ? a->i : dflt;
}

float
mpcc_node_attr_float(const mpcc_node *n, const char *name, float dflt)
{
	const mpcc_attr *a = mpcc_node_attr(n, name);

	if (a && a->kind == MPCC_ATTR_FLOAT)
		return a->f;
	if (a && a->kind == MPCC_ATTR_INT)
		return (float)a->i;
	return dflt;
}

const char *
mpcc_node_attr_string(const mpcc_node *n, const char *name, const char *dflt)
{
	const mpcc_attr *a = mpcc_node_attr(n, name);

	return a && a->kind == MPCC_ATTR_STRING && a->s ? a->s : dflt;
}

int64_t
mpcc_value_numel(const mpcc_value *v)
{
	int64_t n = 1;

	if (v->rank < 0 || v->rank > MPCC_MAX_RANK)
		return -1;
	for (int i = 0; i < v->rank; i++) {
		int64_t d = v->dims[i];
		if (d < 0)
			return -1;
		if (d == 0)
			n = 0;
		else if (n > INT64_MAX / d)
			return -1;
		else
			n *= d;
	}
	return n;
}

void
mpcc_value_set_data(mpcc_value *v, void *data, size_t nbytes)
{
	if (v->data != data)
		free(v->data);
	v->data = data;
	v->nbytes = nbytes;
	v->flags |= MPCC_VALUE_CONST;
}

static bool
elem_ptr(const mpcc_value *v, int64_t i, const void **p)
{
	size_t es = mpcc_dtype_size(v->dtype);

	if (!v->data || es == 0 || i < 0 || (uint64_t)i >= v->nbytes / es)
		return false;
	*p = (const char *)v->data + (size_t)i * es;
	return true;
}

/*
 * Both readers go through memcpy so constant data need not be aligned (ONNX
 * raw_data slices are not). Out-of-range reads give 0 rather than trapping:
 * callers check shapes first, and a wrong answer is easier to report than a
 * crash.
 */
int64_t
mpcc_value_get_int(const mpcc_value *v, int64_t i)
{
	const void *p;

	if (!elem_ptr(v, i, &p))
		return 0;
	switch (v->dtype) {
	case MPCC_DTYPE_I8: { int8_t x; memcpy(&x, p, 1); return x; }
	case MPCC_DTYPE_I16: { int16_t x; memcpy(&x, p, 2); return x; }
	case MPCC_DTYPE_I32: { int32_t x; memcpy(&x, p, 4); return x; }
	case MPCC_DTYPE_I64: { int64_t x; memcpy(&x, p, 8); return x; }
	case MPCC_DTYPE_U8: { uint8_t x; memcpy(&x, p, 1); return x; }
	case MPCC_DTYPE_U16: { uint16_t x; memcpy(&x, p, 2); return x; }
	case MPCC_DTYPE_U32: { uint32_t x; memcpy(&x, p, 4); return x; }
	case MPCC_DTYPE_U64: { uint64_t x; memcpy(&x, p, 8); return (int64_t)x; }
	case MPCC_DTYPE_BOOL: { uint8_t x; memcpy(&x, p, 1); return x != 0; }
	default: break;
	}
	double d = mpcc_value_get_double(v, i);
	if (d != d)
		return 0;
	if (d >= 9223372036854775807.0)
		return INT64_MAX;
	if (d <= -9223372036854775808.0)
		return INT64_MIN;
	return (int64_t)d;
}

double
mpcc_value_get_double(const mpcc_value *v, int64_t i)
{
	const void *p;

	if (!elem_ptr(v, i, &p))
		return 0;
	switch (v->dtype) {
	case MPCC_DTYPE_F32: { float x; memcpy(&x, p, 4); return x; }
	case MPCC_DTYPE_F64: { double x; memcpy(&x, p, 8); return x; }
	case MPCC_DTYPE_F16: { uint16_t x; memcpy(&x, p, 2); return mpcc_f16_to_f32(x); }
	case MPCC_DTYPE_BF16: { uint16_t x; memcpy(&x, p, 2); return mpcc_bf16_to_f32(x); }
	case MPCC_DTYPE_U64: { uint64_t x; memcpy(&x, p, 8); return (double)x; }
	default: return (double)mpcc_value_get_int(v, i);
	}
}
