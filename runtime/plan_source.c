/*
 * plan_source.c - section ONNX of the plan: the ONNX model a training step
 * plan was compiled from (docs/plan-format.md, docs/training.md "Export").
 *
 * Training changes the weights, not the model, so a trained model is the
 * source model with new initializer data. The section keeps the model's
 * bytes exactly as they were compiled and says which of the plan's state
 * pairs (section TRAN) are trained initializers, as opposed to optimizer
 * and loss-scaler state; mpcc_trainer_export (runtime/train.c) writes those
 * states' current values into the model (frontend/onnx_export.c). Only
 * training plans carry it, so inference plans and older readers are
 * unaffected.
 *
 * The runtime does not unpack the model when loading a plan: that would
 * copy every weight for a check most loads never need. It walks the
 * model's top-level protobuf fields instead (keys, wire types, lengths, a
 * graph present), which refuses a damaged or foreign blob with one line
 * and costs a few dozen byte reads whatever the model's size.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/plan.h"

#define ONNX_VERSION 1
#define MODEL_GRAPH_FIELD 7 /* ModelProto.graph */

/* ---------------------------------------------------------------- building */

static bool
is_exportable(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F32 || t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16;
}

/*
 * Why a trained initializer is recognised by its value's WEIGHT flag: the
 * training rewrite turns each trained initializer into a state input of its
 * own name and keeps the flag (passes/train.c), while the optimizer's and
 * the scaler's state are values it creates, under names it keeps unique.
 */
mpcc_status
mpcc_plan_source_build(mpcc_plan *p, const mpcc_graph *g, const void *model, size_t size,
                       mpcc_diag *d)
{
	const mpcc_train_info *gt = g->train;
	mpcc_plan_source *s;

	if (!p->train || !gt || gt->n_state != p->train->n_state)
		return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "plan: source model without state");
	if (!model || !size)
		return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "plan: empty source model");
	s = mpcc_arena_alloc(&p->arena, sizeof(*s));
	if (s)
		s->weights = mpcc_arena_alloc(&p->arena, sizeof(int32_t) * ((size_t)gt->n_state + 1));
	if (s && s->weights)
		s->model = malloc(size);
	if (!s || !s->weights || !s->model)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory building the plan");
	memcpy(s->model, model, size);
	s->model_size = size;
	s->n_weights = 0;
	p->source = s; /* owned by the plan from here, also on failure */
	for (int i = 0; i < gt->n_state; i++) {
		if (!(g->values[gt->state[i].in].flags & MPCC_VALUE_WEIGHT))
			continue;
		const mpcc_plan_tensor *t = &p->tensors[p->inputs[p->train->state[i].in]];
		if (!is_exportable(t->t.dtype))
			return mpcc_diag_error(d, MPCC_ERR_INTERNAL,
			                       "plan: trained initializer '%s' is stored as %s",
			                       t->t.name, mpcc_dtype_name(t->t.dtype));
		s->weights[s->n_weights++] = i;
	}
	return MPCC_OK;
}

/* ---------------------------------------------------------------- writing */

void
mpcc_plan_source_write(kir_writer *w, const mpcc_plan *p)
{
	const mpcc_plan_source *s = p->source;

	mpcc_plan_put_u32(w, ONNX_VERSION);
	mpcc_plan_put_u32(w, (uint32_t)s->n_weights);
	for (int i = 0; i < s->n_weights; i++)
		mpcc_plan_put_u32(w, (uint32_t)s->weights[i]);
	mpcc_plan_put_u32(w, (uint32_t)s->model_size);
	mpcc_plan_put_u32(w, (uint32_t)((uint64_t)s->model_size >> 32));
	kir_write_bytes(w, s->model, s->model_size);
}

/* ---------------------------------------------------------------- reading */

static uint32_t
le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* A base-128 varint at b[*pos..n); false when it runs past n or 10 bytes. */
static bool
varint(const uint8_t *b, size_t n, size_t *pos, uint64_t *out)
{
	uint64_t v = 0;

	for (int k = 0; k < 10 && *pos < n; k++) {
		uint8_t c = b[(*pos)++];
		v |= (uint64_t)(c & 0x7f) << (7 * k);
		if (!(c & 0x80)) {
			*out = v;
			return true;
		}
	}
	return false;
}

/* The wire type of each field ModelProto (onnx.proto) defines: 0 for its
 * two integers, 2 for its strings and messages; -1 for other numbers, which
 * a reader keeps as unknown fields. */
static int
model_wire_type(uint64_t field)
{
	switch (field) {
	case 1: /* ir_version */
	case 5: /* model_version */
		return 0;
	case 2: /* producer_name */
	case 3: /* producer_version */
	case 4: /* domain */
	case 6: /* doc_string */
	case 7: /* graph */
	case 8: /* opset_import */
	case 14: /* metadata_props */
	case 20: /* training_info */
	case 25: /* functions */
		return 2;
	default:
		return -1;
	}
}

/*
 * Walks the top-level fields of a serialised ModelProto: every key a valid
 * field number and wire type (groups are not used by ONNX), the wire type
 * the schema gives known fields, every length inside the blob, and a graph.
 * Fills msg and returns false at the first thing wrong.
 */
static bool
scan_model(const uint8_t *b, size_t n, char *msg, size_t cap)
{
	size_t pos = 0;
	bool graph = false;

	while (pos < n) {
		size_t at = pos;
		uint64_t key, len;
		if (!varint(b, n, &pos, &key)) {
			snprintf(msg, cap, "the model is no ONNX model (byte %zu: a truncated key)", at);
			return false;
		}
		uint64_t field = key >> 3;
		int wt = (int)(key & 7), want = model_wire_type(field);
		if (field == 0 || field > 0x1fffffff || (wt != 0 && wt != 1 && wt != 2 && wt != 5) ||
		    (want >= 0 && wt != want)) {
			snprintf(msg, cap, "the model is no ONNX model (byte %zu: field %llu with wire "
			         "type %d)", at, (unsigned long long)field, wt);
			return false;
		}
		bool ok;
		if (wt == 0)
			ok = varint(b, n, &pos, &len);
		else if (wt == 2)
			ok = varint(b, n, &pos, &len) && len <= n - pos;
		else
			ok = n - pos >= (wt == 1 ? 8u : 4u);
		if (ok && wt != 0)
			pos += wt == 2 ? (size_t)len : wt == 1 ? 8 : 4;
		if (!ok) {
			snprintf(msg, cap, "the model is no ONNX model (byte %zu: field %llu runs past "
			         "its end)", at, (unsigned long long)field);
			return false;
		}
		graph = graph || field == MODEL_GRAPH_FIELD;
	}
	if (!graph) {
		snprintf(msg, cap, "the model has no graph");
		return false;
	}
	return true;
}

/*
 * Why the section is checked although the file checksum passed: the
 * checksum catches damage in transit, not a writer's bug or a crafted file,
 * and export trusts these indices and unpacks these bytes.
 */
mpcc_status
mpcc_plan_source_read(mpcc_plan *p, const uint8_t *b, size_t size, mpcc_diag *d)
{
	const mpcc_plan_train *t = p->train;
	mpcc_plan_source *s;
	size_t pos = 8;
	char msg[200];

	if (size < 8)
		return mpcc_plan_damaged(d, "ONNX", "truncated header");
	uint32_t version = le32(b), n = le32(b + 4);
	if (version == 0 || version > ONNX_VERSION)
		return mpcc_plan_damaged(d, "ONNX", "layout version %u, this mpcc reads %d",
		                         version, ONNX_VERSION);
	if (!t)
		return mpcc_plan_damaged(d, "ONNX",
		                         "the plan has no section 'TRAN' its weights refer to");
	if (n > (uint32_t)t->n_state)
		return mpcc_plan_damaged(d, "ONNX", "%u trained weights, the plan has %d states", n,
		                         t->n_state);
	if ((size - pos) / 4 < n)
		return mpcc_plan_damaged(d, "ONNX", "weight list runs past the section");
	s = mpcc_arena_alloc(&p->arena, sizeof(*s));
	if (s)
		s->weights = mpcc_arena_alloc(&p->arena, sizeof(int32_t) * ((size_t)n + 1));
	if (!s || !s->weights)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	for (uint32_t i = 0; i < n; i++, pos += 4) {
		uint32_t k = le32(b + pos);
		if (k >= (uint32_t)t->n_state)
			return mpcc_plan_damaged(d, "ONNX", "weight %u: state %u, the plan has %d",
			                         i, k, t->n_state);
		if (i > 0 && k <= (uint32_t)s->weights[i - 1])
			return mpcc_plan_damaged(d, "ONNX",
			                         "weight %u: state %u does not follow state %d", i,
			                         k, (int)s->weights[i - 1]);
		const mpcc_tensor *w = &p->tensors[p->inputs[t->state[k].in]].t;
		if (!is_exportable(w->dtype))
			return mpcc_plan_damaged(
			    d, "ONNX", "weight %u: state '%s' is %s, not f32, f16 or bf16", i,
			    w->name, mpcc_dtype_name(w->dtype));
		s->weights[i] = (int32_t)k;
	}
	s->n_weights = (int)n;
	if (size - pos < 8)
		return mpcc_plan_damaged(d, "ONNX", "truncated model size");
	uint64_t len = le32(b + pos) | (uint64_t)le32(b + pos + 4) << 32;
	pos += 8;
	if (len == 0 || len > size - pos)
		return mpcc_plan_damaged(d, "ONNX", "model of %llu bytes, the section holds %zu",
		                         (unsigned long long)len, size - pos);
	if (len < size - pos)
		return mpcc_plan_damaged(d, "ONNX", "%zu trailing bytes", size - pos - (size_t)len);
	if (!scan_model(b + pos, (size_t)len, msg, sizeof(msg)))
		return mpcc_plan_damaged(d, "ONNX", "%s", msg);
	s->model = malloc((size_t)len);
	if (!s->model)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory for the %llu-byte model",
		                       (unsigned long long)len);
	memcpy(s->model, b + pos, (size_t)len);
	s->model_size = (size_t)len;
	p->source = s;
	return MPCC_OK;
}
