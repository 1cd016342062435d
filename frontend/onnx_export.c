/*
 * onnx_export.c - a trained model: the source ONNX model with new data for
 * the initializers that training changed (mpcc_trainer_export,
 * docs/training.md "Export").
 *
 * The model is unpacked with the same protobuf-c bindings the reader uses,
 * each trained initializer's TensorProto is pointed at the new data for the
 * time of one pack, and the message is packed again. Nothing else is
 * touched: the graph, the opset imports, metadata, the other initializers
 * (external data references included) and the fields protobuf-c does not
 * know (kept as unknown fields) go out as they came in. A trained
 * initializer is written as raw_data (little-endian, which is the host's:
 * onnx_tensor.c refuses to build elsewhere), its typed fields and its
 * external-data fields dropped, since the file they point to still holds
 * the old values.
 *
 * The unpacked message is restored before it is freed, so protobuf-c frees
 * exactly what it allocated and the caller's buffers are never freed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/onnx_internal.h"

static const char *
dims_text(char *buf, size_t size, int rank, const int64_t *dims)
{
	size_t n = (size_t)snprintf(buf, size, "[");

	for (int i = 0; i < rank && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64, i ? "," : "", dims[i]);
	if (n < size)
		snprintf(buf + n, size - n, "]");
	return buf;
}

/* The main graph's initializer named name, or NULL. */
static Onnx__TensorProto *
find_initializer(const Onnx__GraphProto *g, const char *name)
{
	for (size_t k = 0; k < g->n_initializer; k++)
		if (g->initializer[k]->name && !strcmp(g->initializer[k]->name, name))
			return g->initializer[k];
	return NULL;
}

/* Checks that w may replace tp's data: an f32 initializer of w's shape. */
static mpcc_status
check_weight(const Onnx__TensorProto *tp, const mpcc_tensor *w, mpcc_diag *d)
{
	char want[200], got[200];
	int64_t numel = 1;
	bool same;

	if (!tp)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "trained weight '%s' names no initializer of the source model",
		                       w->name);
	if (!tp->has_data_type || tp->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "trained weight '%s': the source model's initializer has ONNX "
		                       "data type %d, not float", w->name,
		                       tp->has_data_type ? (int)tp->data_type : 0);
	same = w->dtype == MPCC_DTYPE_F32 && tp->n_dims == (size_t)w->rank;
	for (int i = 0; same && i < w->rank; i++)
		same = tp->dims[i] == w->dims[i];
	dims_text(got, sizeof(got), w->rank, w->dims);
	if (!same) {
		dims_text(want, sizeof(want), (int)(tp->n_dims < 64 ? tp->n_dims : 64), tp->dims);
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "trained weight '%s' is %s %s, the source model's initializer "
		                       "f32 %s", w->name, mpcc_dtype_name(w->dtype), got, want);
	}
	for (int i = 0; i < w->rank; i++)
		numel *= w->dims[i];
	if (w->nbytes != (size_t)numel * sizeof(float) || (w->nbytes && !w->data))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "trained weight '%s': %zu bytes of data, "
		                       "%s needs %zu", w->name, w->nbytes, got,
		                       (size_t)numel * sizeof(float));
	return MPCC_OK;
}

/*
 * Why the TensorProtos are patched in place and restored rather than
 * rebuilt: a copy of the message would have to copy every untouched field
 * as well, and any field forgotten would silently vanish from the export.
 */
mpcc_status
mpcc_onnx_update_initializers(const void *model, size_t size, const mpcc_tensor *w, int n,
                              void **out, size_t *out_size, mpcc_diag *d)
{
	Onnx__ModelProto *m;
	Onnx__TensorProto **tp = NULL, *saved = NULL;
	uint8_t *buf = NULL;
	mpcc_status st = MPCC_OK;
	int done = 0;

	*out = NULL;
	*out_size = 0;
	m = onnx__model_proto__unpack(NULL, size, model);
	if (!m)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "the source model is no ONNX model (protobuf parse failed)");
	if (!m->graph) {
		st = mpcc_diag_error(d, MPCC_ERR_INVALID, "the source model holds no graph");
		goto out;
	}
	tp = calloc((size_t)n + 1, sizeof(*tp));
	saved = calloc((size_t)n + 1, sizeof(*saved));
	if (!tp || !saved) {
		st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory exporting the model");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		tp[i] = find_initializer(m->graph, w[i].name);
		if ((st = check_weight(tp[i], &w[i], d)) != MPCC_OK)
			goto out;
		for (int k = 0; k < i; k++)
			if (tp[k] == tp[i]) {
				st = mpcc_diag_error(d, MPCC_ERR_INVALID, "trained weight '%s' given twice",
				                     w[i].name);
				goto out;
			}
	}
	for (; done < n; done++) {
		Onnx__TensorProto *t = tp[done];
		saved[done] = *t;
		t->has_raw_data = 1;
		t->raw_data.len = w[done].nbytes;
		t->raw_data.data = w[done].data;
		t->n_float_data = t->n_int32_data = t->n_string_data = 0;
		t->n_int64_data = t->n_double_data = t->n_uint64_data = 0;
		t->n_external_data = 0;
		t->has_data_location = 0; /* DEFAULT: the data is in the message */
	}
	*out_size = onnx__model_proto__get_packed_size(m);
	buf = malloc(*out_size ? *out_size : 1);
	if (!buf) {
		*out_size = 0;
		st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory exporting the model");
		goto out;
	}
	onnx__model_proto__pack(m, buf);
	*out = buf;
out:
	for (int i = 0; i < done; i++)
		*tp[i] = saved[i];
	onnx__model_proto__free_unpacked(m, NULL);
	free(tp);
	free(saved);
	if (st != MPCC_OK)
		mpcc_onnx_sanitize_msg(d);
	return st;
}
