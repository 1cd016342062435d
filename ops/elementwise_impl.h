/*
 * elementwise_impl.h - internal to the elementwise family. ops/elementwise.c
 * holds the rule table and the shape functions; ops/elementwise_lower.c
 * builds the kernel IR. The lowerings below are what the table points at.
 */
#ifndef MPCC_ELEMENTWISE_IMPL_H
#define MPCC_ELEMENTWISE_IMPL_H

#include "codegen/lower.h"
#include "ir/ir.h"

/* Every op whose output is one expression over its broadcast inputs:
 * unary math, activations, Cast, Identity, binary, variadic, Where. */
mpcc_status mpcc_elem_lower(mpcc_lower *lx, int32_t n);
/* PRelu of opset < 7 whose slope is one value per channel of X (dim 1),
 * the legacy broadcast that numpy rules would refuse. */
bool mpcc_elem_prelu_is_legacy(const mpcc_graph *g, const mpcc_node *node);
/* Clip: optional min/max inputs (opset >= 11) loaded as scalars, or the
 * min/max attributes of older opsets. */
mpcc_status mpcc_elem_lower_clip(mpcc_lower *lx, int32_t n);
/* Dropout in inference: output = input, optional mask all true. */
mpcc_status mpcc_elem_lower_dropout(mpcc_lower *lx, int32_t n);
/* CastLike: casts input 0; the target is read for its dtype only. */
mpcc_status mpcc_elem_lower_castlike(mpcc_lower *lx, int32_t n);

#endif
