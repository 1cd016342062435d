/*
 * print.c - the stable text form of a graph, for dumps and golden tests.
 *
 *   graph opset=17
 *     input %x : f32[1,3,224,224]
 *     const %w : f32[64,3,7,7]
 *     %y : f32[1,64,112,112] = Conv(%x, %w, _) {strides=[2,2], pads=[3,3,3,3]}  # conv1
 *     output %y
 *
 * One line per input, used constant, live node and output, in that order;
 * attributes in stored order; omitted operands as `_`; unknown dims as `?`,
 * symbolic ones by name. Constants of at most 8 elements show their data,
 * longer ones only their type. Text is built in a growing malloc'd buffer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

#define SHORT_CONST 8

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool failed;
} sbuf;

static void __attribute__((format(printf, 2, 3)))
put(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n >= b->cap - b->len) {
		size_t cap = b->cap * 2;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

static void
put_type(sbuf *b, const mpcc_value *v)
{
	put(b, "%s", v->dtype == MPCC_DTYPE_UNDEF ? "?" : mpcc_dtype_name(v->dtype));
	if (v->rank < 0) {
		put(b, "[?]");
		return;
	}
	put(b, "[");
	for (int i = 0; i < v->rank && i < MPCC_MAX_RANK; i++) {
		if (i)
			put(b, ",");
		if (v->sym[i] && v->dims[i] < 0)
			put(b, "%s", v->sym[i]);
		else if (v->dims[i] < 0)
			put(b, "?");
		else
			put(b, "%lld", (long long)v->dims[i]);
	}
	put(b, "]");
}

static void
put_data(sbuf *b, const mpcc_value *v)
{
	int64_t n = mpcc_value_numel(v);

	if (!v->data || n < 0 || n > SHORT_CONST ||
	    (size_t)n * mpcc_dtype_size(v->dtype) > v->nbytes)
		return;
	put(b, " = [");
	for (int64_t i = 0; i < n; i++) {
		if (i)
			put(b, ", ");
		if (mpcc_dtype_is_float(v->dtype))
			put(b, "%.9g", mpcc_value_get_double(v, i));
		else if (v->dtype == MPCC_DTYPE_U64)
			put(b, "%llu", (unsigned long long)mpcc_value_get_int(v, i));
		else
			put(b, "%lld", (long long)mpcc_value_get_int(v, i));
	}
	put(b, "]");
}

static void
put_attr(sbuf *b, const mpcc_attr *a)
{
	put(b, "%s=", a->name);
	switch (a->kind) {
	case MPCC_ATTR_INT:
		put(b, "%lld", (long long)a->i);
		break;
	case MPCC_ATTR_FLOAT:
		put(b, "%.9g", a->f);
		break;
	case MPCC_ATTR_STRING:
		put(b, "\"%s\"", a->s ? a->s : "");
		break;
	case MPCC_ATTR_INTS:
		put(b, "[");
		for (int i = 0; i < a->n; i++)
			put(b, i ? ",%lld" : "%lld", (long long)a->ints[i]);
		put(b, "]");
		break;
	case MPCC_ATTR_FLOATS:
		put(b, "[");
		for (int i = 0; i < a->n; i++)
			put(b, i ? ",%.9g" : "%.9g", a->floats[i]);
		put(b, "]");
		break;
	case MPCC_ATTR_STRINGS:
		put(b, "[");
		for (int i = 0; i < a->n; i++)
			put(b, i ? ",\"%s\"" : "\"%s\"", a->strings[i] ? a->strings[i] : "");
		put(b, "]");
		break;
	case MPCC_ATTR_TENSOR:
		if (!a->t) {
			put(b, "tensor(?)");
			break;
		}
		put(b, "tensor(%s[", mpcc_dtype_name(a->t->dtype));
		for (int i = 0; i < a->t->rank && i < MPCC_MAX_RANK; i++)
			put(b, i ? ",%lld" : "%lld", (long long)a->t->dims[i]);
		put(b, "])");
		break;
	case MPCC_ATTR_GRAPH:
		put(b, "graph(%d nodes)", a->g ? a->g->n_nodes : 0);
		break;
	default:
		put(b, "?");
		break;
	}
}

static void
put_operand(sbuf *b, const mpcc_graph *g, int32_t v)
{
	if (v < 0 || v >= g->n_values)
		put(b, "_");
	else
		put(b, "%%%s", g->values[v].name);
}

static bool
produced_live(const mpcc_graph *g, const mpcc_value *v)
{
	return v->producer >= 0 && v->producer < g->n_nodes && !g->nodes[v->producer].dead;
}

/*
 * Constants are listed only when something live reads them, so a dump after
 * folding and DCE shows what the plan will really hold, in value order.
 */
static void
put_consts(sbuf *b, const mpcc_graph *g)
{
	bool *used = calloc((size_t)g->n_values + 1, sizeof(*used));

	if (!used) {
		b->failed = true;
		return;
	}
	for (int i = 0; i < g->n_nodes; i++) {
		const mpcc_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] >= 0 && n->in[j] < g->n_values)
				used[n->in[j]] = true;
	}
	for (int i = 0; i < g->n_outputs; i++)
		if (g->outputs[i] >= 0 && g->outputs[i] < g->n_values)
			used[g->outputs[i]] = true;
	for (int i = 0; i < g->n_values; i++) {
		const mpcc_value *v = &g->values[i];
		if (!used[i] || !(v->flags & MPCC_VALUE_CONST) || produced_live(g, v) ||
		    (v->flags & MPCC_VALUE_INPUT))
			continue;
		put(b, "  const %%%s : ", v->name);
		put_type(b, v);
		put_data(b, v);
		put(b, "\n");
	}
	free(used);
}

static void
put_node(sbuf *b, const mpcc_graph *g, const mpcc_node *n)
{
	put(b, "  ");
	for (int j = 0; j < n->n_out; j++) {
		if (j)
			put(b, ", ");
		put_operand(b, g, n->out[j]);
		if (n->out[j] >= 0 && n->out[j] < g->n_values) {
			put(b, " : ");
			put_type(b, &g->values[n->out[j]]);
		}
	}
	put(b, " = %s(", mpcc_op_name(n->op));
	for (int j = 0; j < n->n_in; j++) {
		if (j)
			put(b, ", ");
		put_operand(b, g, n->in[j]);
	}
	put(b, ")");
	if (n->n_attr) {
		put(b, " {");
		for (int j = 0; j < n->n_attr; j++) {
			if (j)
				put(b, ", ");
			put_attr(b, &n->attr[j]);
		}
		put(b, "}");
	}
	put(b, "  # %s\n", n->name ? n->name : "?");
}

/* A step graph's state pairs and roles, after the outputs. */
static void
put_train(sbuf *b, const mpcc_graph *g, const mpcc_train_info *t)
{
	static const char *const names[] = {"label", "loss", "logits", "loss_scale", "ok", "apply"};
	const int32_t roles[] = {t->label, t->loss, t->logits, t->loss_scale, t->ok, t->apply};

	put(b, "  train \"%s\"\n", t->recipe ? t->recipe : "");
	for (int i = 0; i < t->n_state; i++) {
		put(b, "  state ");
		put_operand(b, g, t->state[i].in);
		put(b, " -> ");
		put_operand(b, g, t->state[i].out);
		put(b, "\n");
	}
	for (int i = 0; i < 6; i++) {
		if (roles[i] == MPCC_NONE)
			continue;
		put(b, "  role %s ", names[i]);
		put_operand(b, g, roles[i]);
		put(b, "\n");
	}
}

char *
mpcc_graph_print(const mpcc_graph *g)
{
	sbuf b = {.cap = 1024};

	b.p = malloc(b.cap);
	if (!b.p)
		return NULL;
	b.p[0] = '\0';
	put(&b, "graph opset=%d", g->opset);
	if (g->opset_training)
		put(&b, " training=%d", g->opset_training);
	put(&b, "\n");
	for (int i = 0; i < g->n_inputs; i++) {
		put(&b, "  input ");
		put_operand(&b, g, g->inputs[i]);
		if (g->inputs[i] >= 0 && g->inputs[i] < g->n_values) {
			put(&b, " : ");
			put_type(&b, &g->values[g->inputs[i]]);
		}
		put(&b, "\n");
	}
	put_consts(&b, g);
	for (int i = 0; i < g->n_nodes; i++)
		if (!g->nodes[i].dead)
			put_node(&b, g, &g->nodes[i]);
	for (int i = 0; i < g->n_outputs; i++) {
		put(&b, "  output ");
		put_operand(&b, g, g->outputs[i]);
		put(&b, "\n");
	}
	if (g->train)
		put_train(&b, g, g->train);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
