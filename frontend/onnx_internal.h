/*
 * onnx_internal.h - what the two halves of the ONNX reader share: the model
 * reader (onnx_read.c) decodes initializers and tensor attributes through the
 * tensor decoder (onnx_tensor.c). Not part of any public contract.
 */
#ifndef MPCC_ONNX_INTERNAL_H
#define MPCC_ONNX_INTERNAL_H

#include "frontend/onnx.h"
#include "onnx.pb-c.h"

/*
 * Decodes a TensorProto into dense little-endian data. `what` names the
 * tensor in messages ("initializer 'w'"). base_dir is the folder external
 * data is resolved against (NULL refuses external data). On success out
 * holds dtype, rank, dims, and a malloc'd data buffer (at least one byte even
 * for an empty tensor) that the caller owns; out->name is left NULL.
 * Errors: MPCC_ERR_INVALID (malformed), MPCC_ERR_UNSUPPORTED (string,
 * complex, rank above MPCC_MAX_RANK), MPCC_ERR_IO (external file), NOMEM.
 */
mpcc_status mpcc_onnx_decode_tensor(const Onnx__TensorProto *tp, const char *what,
                                    const char *base_dir, mpcc_tensor *out, mpcc_diag *d);

/* Replaces control characters in a diagnostic message with '?', so a name
 * taken from a damaged model cannot split the message over lines. */
void mpcc_onnx_sanitize_msg(mpcc_diag *d);

#endif
