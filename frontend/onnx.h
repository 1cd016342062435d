/*
 * onnx.h - reading ONNX models into the graph IR, and ONNX tensors.
 *
 * Parsing uses protobuf-c code generated at build time from the onnx.proto
 * that Debian's libonnx-dev installs. Every op is mapped through the op table
 * (ir/ops.def) by domain and type, keeping its opset version; every
 * attribute is copied typed. Initializers become constant values (raw_data,
 * typed fields, or external data files resolved relative to the model's
 * folder and never outside it). Errors name the node, op and opset.
 */
#ifndef MPCC_ONNX_H
#define MPCC_ONNX_H

#include "ir/ir.h"

/* base_dir: folder for external data; NULL refuses external data. */
mpcc_status mpcc_onnx_read_buffer(const void *buf, size_t size, const char *base_dir,
                                  mpcc_graph **out, mpcc_diag *d);
mpcc_status mpcc_onnx_read_file(const char *path, mpcc_graph **out, mpcc_diag *d);

/* Reads a serialised TensorProto (the backend test suite's .pb files).
 * On success *out is filled; out->data is malloc'd (caller frees), out->name
 * is malloc'd (caller frees) or NULL. */
mpcc_status mpcc_onnx_read_tensor(const void *buf, size_t size, mpcc_tensor *out, mpcc_diag *d);

/*
 * Writes trained weights into a serialised ModelProto (model, size bytes):
 * every initializer of the main graph named by one of w[0..n) gets that
 * tensor's data (f32, the initializer's shape), as raw_data, its typed and
 * external-data fields dropped; the rest of the model is packed again as it
 * was. *out is malloc'd (the caller frees it), *out_size its length.
 * Errors: MPCC_ERR_INVALID naming the weight (no initializer of that name,
 * not a float initializer, another shape) or for a model that does not
 * parse; MPCC_ERR_NOMEM.
 */
mpcc_status mpcc_onnx_update_initializers(const void *model, size_t size, const mpcc_tensor *w,
                                          int n, void **out, size_t *out_size, mpcc_diag *d);

#endif
