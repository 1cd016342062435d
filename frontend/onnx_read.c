/*
 * onnx_read.c - ONNX ModelProto to mpcc's graph IR.
 *
 * The model is unpacked with the protobuf-c bindings generated from Debian's
 * onnx.proto, then walked once in file order: opset imports, initializers
 * (constant weight values), graph inputs, nodes, graph outputs. Every name is
 * resolved when it is used, so a node that reads a value nobody has defined
 * yet (missing initializer, cycle, unsorted graph) is refused right there,
 * naming the node and the value. Attributes are copied typed into the
 * graph's arena; a GRAPH attribute (If, Loop, Scan bodies) is read
 * recursively into a subgraph whose parent is the enclosing graph.
 *
 * Subgraph scoping: a name a subgraph uses but does not define is looked up
 * in the enclosing graphs as they stand at the node that owns the subgraph.
 * It becomes a value of the subgraph flagged MPCC_VALUE_INPUT with no
 * producer, but it is not listed in the subgraph's inputs (those are the
 * body's formal inputs); the enclosing value has the same name. Every graph
 * between the definition and the use gets such a captured value, so each
 * subgraph's outer references are values of its direct parent.
 *
 * The unpacked protobuf is freed on every path; on failure the partial graph
 * is destroyed and *out stays NULL.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "frontend/onnx_internal.h"

#define MAX_DEPTH 32 /* subgraph nesting we accept */

typedef struct reader {
	const Onnx__ModelProto *m;
	const char *base_dir;
	mpcc_diag *d;
	int opset;          /* ai.onnx */
	int opset_training; /* ai.onnx.preview.training, 0 if not imported */
	int depth;
} reader;

/* How a node is named in messages before it exists in the graph. */
typedef struct node_label {
	char text[320];
} node_label;

static const char *
str(const char *s)
{
	return s ? s : "";
}

static bool
is_default_domain(const char *dom)
{
	return !dom[0] || !strcmp(dom, "ai.onnx");
}

static void
label_node(node_label *l, const Onnx__NodeProto *np, size_t i, int opset)
{
	const char *name = str(np->name);
	if (name[0])
		snprintf(l->text, sizeof l->text, "node '%s' (%s, opset %d)", name,
		         str(np->op_type), opset);
	else
		snprintf(l->text, sizeof l->text, "node #%zu (%s, opset %d)", i, str(np->op_type),
		         opset);
}

static mpcc_status
nomem(reader *r)
{
	return mpcc_diag_error(r->d, MPCC_ERR_NOMEM, "out of memory while reading the model");
}

/*
 * Finds the value called name as seen from g, capturing it from the
 * enclosing graphs when g does not define it. *out is MPCC_NONE when no
 * scope defines the name.
 */
static mpcc_status
resolve(reader *r, mpcc_graph *g, const char *name, int32_t *out)
{
	*out = mpcc_graph_find_value(g, name);
	if (*out != MPCC_NONE || !g->parent)
		return MPCC_OK;
	int32_t outer;
	mpcc_status s = resolve(r, g->parent, name, &outer);
	if (s != MPCC_OK || outer == MPCC_NONE)
		return s;
	int32_t v = mpcc_graph_add_value(g, name);
	if (v == MPCC_NONE)
		return nomem(r);
	const mpcc_value *ov = &g->parent->values[outer];
	mpcc_value *nv = &g->values[v];
	nv->dtype = ov->dtype;
	nv->rank = ov->rank;
	for (int k = 0; k < MPCC_MAX_RANK; k++) {
		nv->dims[k] = ov->dims[k];
		nv->sym[k] = ov->sym[k];
	}
	nv->flags |= MPCC_VALUE_INPUT;
	nv->producer = MPCC_NONE;
	*out = v;
	return MPCC_OK;
}

/* Graph input types: tensors only, with dtype and (possibly symbolic) shape. */
static mpcc_status
set_value_type(reader *r, mpcc_graph *g, int32_t vi, const Onnx__TypeProto *tp, const char *name)
{
	mpcc_value *v = &g->values[vi];
	v->dtype = MPCC_DTYPE_UNDEF;
	v->rank = -1;
	if (!tp || tp->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET)
		return MPCC_OK;
	if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
		const char *kind =
		    tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE   ? "a sequence"
		    : tp->value_case == ONNX__TYPE_PROTO__VALUE_MAP_TYPE      ? "a map"
		    : tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE ? "an optional"
		                                                              : "a sparse tensor";
		return mpcc_diag_error(r->d, MPCC_ERR_UNSUPPORTED,
		                       "graph input '%s' is %s; only tensors are supported", name,
		                       kind);
	}
	const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
	if (!tt)
		return MPCC_OK;
	if (tt->has_elem_type && tt->elem_type != 0) {
		v->dtype = mpcc_dtype_from_onnx(tt->elem_type);
		if (v->dtype == MPCC_DTYPE_UNDEF)
			return mpcc_diag_error(
			    r->d, MPCC_ERR_UNSUPPORTED,
			    "graph input '%s': ONNX element type %d is not supported", name,
			    tt->elem_type);
	}
	if (!tt->shape)
		return MPCC_OK;
	if (tt->shape->n_dim > MPCC_MAX_RANK)
		return mpcc_diag_error(
		    r->d, MPCC_ERR_UNSUPPORTED,
		    "graph input '%s': rank %zu exceeds the supported maximum of %d", name,
		    tt->shape->n_dim, MPCC_MAX_RANK);
	v->rank = (int)tt->shape->n_dim;
	for (int k = 0; k < v->rank; k++) {
		const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[k];
		v->dims[k] = -1;
		v->sym[k] = NULL;
		if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
			if (dim->dim_value < 0)
				return mpcc_diag_error(
				    r->d, MPCC_ERR_INVALID,
				    "graph input '%s': dimension %d is negative (%lld)", name, k,
				    (long long)dim->dim_value);
			v->dims[k] = dim->dim_value;
		} else if (dim->value_case ==
		               ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
		           dim->dim_param && dim->dim_param[0]) {
			v->sym[k] = mpcc_arena_strdup(&g->arena, dim->dim_param);
			if (!v->sym[k])
				return nomem(r);
		}
	}
	return MPCC_OK;
}

static mpcc_status read_graph(reader *r, const Onnx__GraphProto *gp, mpcc_graph *parent,
                              mpcc_graph **out);

static char *
arena_bytes(mpcc_arena *a, const ProtobufCBinaryData *b)
{
	char *s = mpcc_arena_alloc(a, b->len + 1);
	if (s && b->len)
		memcpy(s, b->data, b->len);
	return s;
}

/* ONNX before IR version 3 may leave the type out; infer it from the field set. */
static int
attr_type(const Onnx__AttributeProto *ap)
{
	if (ap->has_type && ap->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
		return ap->type;
	if (ap->has_f)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
	if (ap->has_i)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	if (ap->has_s)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
	if (ap->t)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
	if (ap->g)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
	if (ap->n_floats)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
	if (ap->n_ints)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	if (ap->n_strings)
		return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
	return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

/*
 * Converts one attribute into a (for GRAPH, reads the subgraph). Everything
 * it allocates lives in g's arena except a subgraph, which the caller owns
 * until the attribute is attached to its node.
 */
static mpcc_status
read_attr(reader *r, mpcc_graph *g, const node_label *nl, const Onnx__AttributeProto *ap,
          mpcc_attr *a)
{
	mpcc_arena *ar = &g->arena;
	const char *an = str(ap->name);
	memset(a, 0, sizeof *a);
	if (!an[0])
		return mpcc_diag_error(r->d, MPCC_ERR_INVALID, "%s: attribute without a name",
		                       nl->text);
	if (ap->ref_attr_name && ap->ref_attr_name[0])
		return mpcc_diag_error(r->d, MPCC_ERR_UNSUPPORTED,
		                       "%s: attribute '%s' refers to function attribute '%s'; "
		                       "function bodies are not supported",
		                       nl->text, an, ap->ref_attr_name);
	a->name = mpcc_arena_strdup(ar, an);
	if (!a->name)
		return nomem(r);
	switch (attr_type(ap)) {
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
		a->kind = MPCC_ATTR_FLOAT;
		a->f = ap->f;
		return MPCC_OK;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
		a->kind = MPCC_ATTR_INT;
		a->i = ap->i;
		return MPCC_OK;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
		a->kind = MPCC_ATTR_STRING;
		a->s = arena_bytes(ar, &ap->s);
		return a->s ? MPCC_OK : nomem(r);
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
		if (ap->n_floats > INT_MAX)
			break;
		a->kind = MPCC_ATTR_FLOATS;
		a->n = (int)ap->n_floats;
		a->floats = mpcc_arena_alloc(ar, ap->n_floats * sizeof(float) + 1);
		if (!a->floats)
			return nomem(r);
		if (a->n)
			memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
		return MPCC_OK;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
		if (ap->n_ints > INT_MAX)
			break;
		a->kind = MPCC_ATTR_INTS;
		a->n = (int)ap->n_ints;
		a->ints = mpcc_arena_alloc(ar, ap->n_ints * sizeof(int64_t) + 1);
		if (!a->ints)
			return nomem(r);
		if (a->n)
			memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
		return MPCC_OK;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
		if (ap->n_strings > INT_MAX)
			break;
		a->kind = MPCC_ATTR_STRINGS;
		a->n = (int)ap->n_strings;
		a->strings = mpcc_arena_alloc(ar, (ap->n_strings + 1) * sizeof(char *));
		if (!a->strings)
			return nomem(r);
		for (size_t k = 0; k < ap->n_strings; k++)
			if (!(a->strings[k] = arena_bytes(ar, &ap->strings[k])))
				return nomem(r);
		return MPCC_OK;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
		if (!ap->t)
			return mpcc_diag_error(r->d, MPCC_ERR_INVALID,
			                       "%s: attribute '%s' is a tensor but holds none",
			                       nl->text, an);
		char what[400];
		snprintf(what, sizeof what, "%s: attribute '%s'", nl->text, an);
		mpcc_tensor t;
		mpcc_status s = mpcc_onnx_decode_tensor(ap->t, what, r->base_dir, &t, r->d);
		if (s != MPCC_OK)
			return s;
		mpcc_const_tensor *ct = mpcc_arena_alloc(ar, sizeof *ct);
		void *data = ct ? mpcc_arena_alloc(ar, t.nbytes ? t.nbytes : 1) : NULL;
		if (!data) {
			free(t.data);
			return nomem(r);
		}
		memcpy(data, t.data, t.nbytes);
		free(t.data);
		ct->dtype = t.dtype;
		ct->rank = t.rank;
		memcpy(ct->dims, t.dims, sizeof ct->dims);
		ct->data = data;
		ct->nbytes = t.nbytes;
		a->kind = MPCC_ATTR_TENSOR;
		a->t = ct;
		return MPCC_OK;
	}
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH: {
		if (!ap->g)
			return mpcc_diag_error(r->d, MPCC_ERR_INVALID,
			                       "%s: attribute '%s' is a graph but holds none",
			                       nl->text, an);
		if (r->depth >= MAX_DEPTH)
			return mpcc_diag_error(
			    r->d, MPCC_ERR_UNSUPPORTED,
			    "%s: attribute '%s': subgraphs nested deeper than %d", nl->text, an,
			    MAX_DEPTH);
		r->depth++;
		mpcc_status s = read_graph(r, ap->g, g, &a->g);
		r->depth--;
		if (s == MPCC_OK)
			a->kind = MPCC_ATTR_GRAPH;
		return s;
	}
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED:
		return mpcc_diag_error(r->d, MPCC_ERR_INVALID, "%s: attribute '%s' has no type",
		                       nl->text, an);
	default:
		return mpcc_diag_error(
		    r->d, MPCC_ERR_UNSUPPORTED,
		    "%s: attribute '%s' has ONNX attribute type %d (tensors, "
		    "graphs, sparse tensors and type protos lists are not supported)",
		    nl->text, an, (int)attr_type(ap));
	}
	return mpcc_diag_error(r->d, MPCC_ERR_INVALID, "%s: attribute '%s' is too long", nl->text,
	                       an);
}

static void
free_attr_graphs(mpcc_attr *attrs, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (attrs[k].g)
			mpcc_graph_destroy(attrs[k].g);
}

/* The opset version a node of this domain runs at; 0 if not imported. */
static int
domain_opset(const reader *r, const char *dom)
{
	if (is_default_domain(dom))
		return r->opset;
	if (!strcmp(dom, "ai.onnx.preview.training"))
		return r->opset_training;
	return 0;
}

static bool
is_model_function(const reader *r, const char *dom, const char *op_type)
{
	for (size_t k = 0; k < r->m->n_functions; k++) {
		const Onnx__FunctionProto *f = r->m->functions[k];
		if (!strcmp(str(f->name), op_type) && !strcmp(str(f->domain), dom))
			return true;
	}
	return false;
}

/*
 * Reads one node. Inputs are resolved and attributes (subgraphs included)
 * read before the node's outputs exist, so a subgraph cannot see the outputs
 * of the node that owns it: that would be a cycle.
 */
static mpcc_status
read_node(reader *r, mpcc_graph *g, const Onnx__NodeProto *np, size_t i)
{
	const char *op_type = str(np->op_type);
	const char *dom = str(np->domain);
	int opset = domain_opset(r, dom);
	node_label nl;
	label_node(&nl, np, i, opset);
	mpcc_diag *d = r->d;

	if (!op_type[0])
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "node #%zu has no op_type", i);
	if (is_model_function(r, dom, op_type))
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "%s: op is a model-local function (domain '%s'); functions "
		                       "are not supported",
		                       nl.text, dom);
	mpcc_op op = MPCC_OP_INVALID;
	if (is_default_domain(dom) || !strcmp(dom, "ai.onnx.preview.training"))
		op = mpcc_op_lookup(dom, op_type);
	if (op == MPCC_OP_INVALID) {
		if (np->name && np->name[0])
			return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
			                       "node '%s' (%s, domain '%s'): op not supported",
			                       np->name, op_type,
			                       is_default_domain(dom) ? "ai.onnx" : dom);
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "node #%zu (%s, domain '%s'): op not supported", i, op_type,
		                       is_default_domain(dom) ? "ai.onnx" : dom);
	}
	if (opset == 0)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "%s: the model does not import domain '%s'", nl.text, dom);
	if (np->n_input > INT_MAX / 8 || np->n_output > INT_MAX / 8 ||
	    np->n_attribute > INT_MAX / 8)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "%s: too many inputs, outputs or "
		                       "attributes",
		                       nl.text);

	mpcc_status s = MPCC_OK;
	int32_t *in = malloc((np->n_input + 1) * sizeof *in);
	int32_t *out = malloc((np->n_output + 1) * sizeof *out);
	mpcc_attr *attrs = calloc(np->n_attribute + 1, sizeof *attrs);
	size_t n_attrs = 0;
	if (!in || !out || !attrs) {
		s = nomem(r);
		goto done;
	}
	for (size_t k = 0; k < np->n_input; k++) {
		const char *vn = str(np->input[k]);
		in[k] = MPCC_NONE;
		if (!vn[0])
			continue;
		if ((s = resolve(r, g, vn, &in[k])) != MPCC_OK)
			goto done;
		if (in[k] == MPCC_NONE) {
			s = mpcc_diag_error(
			    d, MPCC_ERR_INVALID,
			    "%s: input '%s' is not defined before use (missing "
			    "initializer, or the graph has a cycle / is not sorted)",
			    nl.text, vn);
			goto done;
		}
	}
	for (; n_attrs < np->n_attribute; n_attrs++) {
		const Onnx__AttributeProto *ap = np->attribute[n_attrs];
		for (size_t k = 0; k < n_attrs; k++) {
			if (!strcmp(attrs[k].name, str(ap->name))) {
				s = mpcc_diag_error(d, MPCC_ERR_INVALID,
				                    "%s: attribute '%s' given twice", nl.text,
				                    attrs[k].name);
				goto done;
			}
		}
		if ((s = read_attr(r, g, &nl, ap, &attrs[n_attrs])) != MPCC_OK) {
			n_attrs++; /* a failed GRAPH read leaves a->g NULL */
			goto done;
		}
	}
	for (size_t k = 0; k < np->n_output; k++) {
		const char *vn = str(np->output[k]);
		if (vn[0] && mpcc_graph_find_value(g, vn) != MPCC_NONE) {
			s = mpcc_diag_error(d, MPCC_ERR_INVALID, "%s: value '%s' is defined twice",
			                    nl.text, vn);
			goto done;
		}
		out[k] = mpcc_graph_add_value(g, vn[0] ? vn : NULL);
		if (out[k] == MPCC_NONE) {
			s = nomem(r);
			goto done;
		}
	}
	const char *name = np->name && np->name[0] ? mpcc_arena_strdup(&g->arena, np->name) : NULL;
	int32_t n = mpcc_graph_add_node(g, op, name, (int)np->n_input, in, (int)np->n_output, out);
	if (n == MPCC_NONE) {
		s = nomem(r);
		goto done;
	}
	g->nodes[n].opset = opset;
	for (size_t k = 0; k < n_attrs; k++) {
		mpcc_attr *slot = mpcc_node_add_attr(g, n, attrs[k].name, attrs[k].kind);
		if (!slot) {
			free_attr_graphs(attrs + k, n_attrs - k);
			n_attrs = 0;
			s = nomem(r);
			goto done;
		}
		const char *slot_name = slot->name;
		*slot = attrs[k];
		slot->name = slot_name;
		attrs[k].g = NULL; /* now owned by the node */
	}
	n_attrs = 0;
done:
	if (s != MPCC_OK && attrs)
		free_attr_graphs(attrs, n_attrs);
	free(in);
	free(out);
	free(attrs);
	return s;
}

static mpcc_status
read_initializers(reader *r, mpcc_graph *g, const Onnx__GraphProto *gp)
{
	if (gp->n_sparse_initializer)
		return mpcc_diag_error(
		    r->d, MPCC_ERR_UNSUPPORTED, "sparse initializer '%s' is not supported",
		    str(gp->sparse_initializer[0]->values ? gp->sparse_initializer[0]->values->name
		                                          : NULL));
	for (size_t k = 0; k < gp->n_initializer; k++) {
		const Onnx__TensorProto *tp = gp->initializer[k];
		const char *name = str(tp->name);
		if (!name[0])
			return mpcc_diag_error(r->d, MPCC_ERR_INVALID,
			                       "initializer #%zu has no name", k);
		if (mpcc_graph_find_value(g, name) != MPCC_NONE)
			return mpcc_diag_error(r->d, MPCC_ERR_INVALID,
			                       "value '%s' is defined twice "
			                       "(duplicate initializer)",
			                       name);
		char what[320];
		snprintf(what, sizeof what, "initializer '%s'", name);
		mpcc_tensor t;
		mpcc_status s = mpcc_onnx_decode_tensor(tp, what, r->base_dir, &t, r->d);
		if (s != MPCC_OK)
			return s;
		int32_t vi = mpcc_graph_add_value(g, name);
		if (vi == MPCC_NONE) {
			free(t.data);
			return nomem(r);
		}
		mpcc_value *v = &g->values[vi];
		v->dtype = t.dtype;
		v->rank = t.rank;
		for (int j = 0; j < t.rank; j++)
			v->dims[j] = t.dims[j];
		mpcc_value_set_data(v, t.data, t.nbytes);
		v->flags |= MPCC_VALUE_CONST | MPCC_VALUE_WEIGHT;
	}
	return MPCC_OK;
}

static mpcc_status
read_inputs(reader *r, mpcc_graph *g, const Onnx__GraphProto *gp)
{
	for (size_t k = 0; k < gp->n_input; k++) {
		const Onnx__ValueInfoProto *vp = gp->input[k];
		const char *name = str(vp->name);
		if (!name[0])
			return mpcc_diag_error(r->d, MPCC_ERR_INVALID,
			                       "graph input #%zu has no name", k);
		int32_t old = mpcc_graph_find_value(g, name);
		if (old != MPCC_NONE) {
			if (g->values[old].flags & MPCC_VALUE_WEIGHT)
				continue; /* an initializer listed as input: a constant */
			return mpcc_diag_error(
			    r->d, MPCC_ERR_INVALID,
			    "value '%s' is defined twice (duplicate graph input)", name);
		}
		int32_t vi = mpcc_graph_add_value(g, name);
		if (vi == MPCC_NONE)
			return nomem(r);
		mpcc_status s = set_value_type(r, g, vi, vp->type, name);
		if (s != MPCC_OK)
			return s;
		if (mpcc_graph_add_input(g, vi) != MPCC_OK)
			return nomem(r);
	}
	return MPCC_OK;
}

static mpcc_status
read_outputs(reader *r, mpcc_graph *g, const Onnx__GraphProto *gp)
{
	for (size_t k = 0; k < gp->n_output; k++) {
		const char *name = str(gp->output[k]->name);
		int32_t vi = MPCC_NONE;
		if (name[0]) {
			mpcc_status s = resolve(r, g, name, &vi);
			if (s != MPCC_OK)
				return s;
		}
		if (vi == MPCC_NONE)
			return mpcc_diag_error(
			    r->d, MPCC_ERR_INVALID,
			    "graph output '%s' is not defined by any node, input or "
			    "initializer",
			    name);
		if (mpcc_graph_add_output(g, vi) != MPCC_OK)
			return nomem(r);
	}
	return MPCC_OK;
}

/* One graph: initializers, inputs, nodes in order, outputs. */
static mpcc_status
read_graph(reader *r, const Onnx__GraphProto *gp, mpcc_graph *parent, mpcc_graph **out)
{
	*out = NULL;
	if (gp->n_input > INT_MAX / 8 || gp->n_output > INT_MAX / 8 || gp->n_node > INT_MAX / 8)
		return mpcc_diag_error(r->d, MPCC_ERR_INVALID, "graph '%s' is too large",
		                       str(gp->name));
	mpcc_graph *g;
	if (mpcc_graph_create(&g) != MPCC_OK)
		return nomem(r);
	g->parent = parent;
	g->opset = r->opset;
	g->opset_training = r->opset_training;
	mpcc_status s = read_initializers(r, g, gp);
	if (s == MPCC_OK)
		s = read_inputs(r, g, gp);
	for (size_t k = 0; s == MPCC_OK && k < gp->n_node; k++)
		s = read_node(r, g, gp->node[k], k);
	if (s == MPCC_OK)
		s = read_outputs(r, g, gp);
	if (s != MPCC_OK) {
		mpcc_graph_destroy(g);
		return s;
	}
	*out = g;
	return MPCC_OK;
}

/*
 * Opset imports: one version per domain. The default domain is required,
 * except in a model that imports only the training domain (the backend
 * suite's optimizer tests do); a default-domain node is then refused.
 */
static mpcc_status
read_opsets(reader *r)
{
	bool have_default = false, have_training = false;
	for (size_t k = 0; k < r->m->n_opset_import; k++) {
		const Onnx__OperatorSetIdProto *op = r->m->opset_import[k];
		const char *dom = str(op->domain);
		bool is_def = is_default_domain(dom);
		bool is_tr = !strcmp(dom, "ai.onnx.preview.training");
		if (!is_def && !is_tr)
			continue; /* other domains: their nodes are refused one by one */
		if ((is_def && have_default) || (is_tr && have_training))
			return mpcc_diag_error(r->d, MPCC_ERR_INVALID,
			                       "opset_import lists domain '%s' twice", dom);
		if (!op->has_version || op->version < 1 || op->version > 1000)
			return mpcc_diag_error(
			    r->d, MPCC_ERR_INVALID,
			    "opset_import of domain '%s' has invalid version %lld",
			    is_def ? "ai.onnx" : dom, (long long)op->version);
		if (is_def) {
			have_default = true;
			r->opset = (int)op->version;
		} else {
			have_training = true;
			r->opset_training = (int)op->version;
		}
	}
	if (!have_default && !have_training)
		return mpcc_diag_error(
		    r->d, MPCC_ERR_INVALID,
		    "the model imports no opset for the default domain 'ai.onnx'");
	return MPCC_OK;
}

mpcc_status
mpcc_onnx_read_buffer(const void *buf, size_t size, const char *base_dir, mpcc_graph **out,
                      mpcc_diag *d)
{
	*out = NULL;
	if (!buf && size)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "no model buffer");
	Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, buf);
	if (!m)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "not an ONNX model (protobuf parse failed)");
	reader r = {.m = m, .base_dir = base_dir, .d = d};
	mpcc_status s = read_opsets(&r);
	if (s == MPCC_OK && !m->graph)
		s = mpcc_diag_error(d, MPCC_ERR_INVALID, "not an ONNX model (it holds no graph)");
	if (s == MPCC_OK)
		s = read_graph(&r, m->graph, NULL, out);
	onnx__model_proto__free_unpacked(m, NULL);
	if (s != MPCC_OK)
		mpcc_onnx_sanitize_msg(d);
	return s;
}

/* Reads the whole file, so protobuf-c can unpack it in one go. */
mpcc_status
mpcc_onnx_read_file(const char *path, mpcc_graph **out, mpcc_diag *d)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return mpcc_diag_error(d, MPCC_ERR_IO, "cannot open '%s': %s", path,
		                       strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return mpcc_diag_error(d, MPCC_ERR_IO, "'%s' is not a regular file", path);
	}
	size_t size = (size_t)st.st_size;
	void *buf = malloc(size ? size : 1);
	if (!buf) {
		fclose(f);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "'%s': out of memory for %zu bytes", path,
		                       size);
	}
	if (size && fread(buf, 1, size, f) != size) {
		fclose(f);
		free(buf);
		return mpcc_diag_error(d, MPCC_ERR_IO, "cannot read '%s'", path);
	}
	fclose(f);

	char *dir = strdup(path);
	if (!dir) {
		free(buf);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory");
	}
	char *slash = strrchr(dir, '/');
	const char *base = ".";
	if (slash == dir)
		base = "/";
	else if (slash) {
		*slash = '\0';
		base = dir;
	}
	mpcc_status s = mpcc_onnx_read_buffer(buf, size, base, out, d);
	free(dir);
	free(buf);
	return s;
}
