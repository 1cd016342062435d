/*
 * autodiff.h - reverse-mode automatic differentiation on the graph IR
 * (issue 4, docs/training.md "Autodiff").
 *
 * The pass appends to a graph the ordinary ONNX nodes that compute the
 * gradient of a loss with respect to chosen values, so everything after it
 * (inference, folding, precision, fusion, both backends) treats the backward
 * pass like any other part of the graph. No new kernels are involved.
 */
#ifndef MPCC_AUTODIFF_H
#define MPCC_AUTODIFF_H

#include "ir/ir.h"

/*
 * Appends to g the nodes computing the gradient of the float value `loss`
 * (any shape), weighted by `seed` (a value broadcastable to loss's shape,
 * e.g. a scalar loss scale; MPCC_NONE = ones), with respect to each wrt[i]
 * (float values: graph inputs or initializers; any float value works).
 * grads[i] receives the gradient value (same shape and dtype as wrt[i]), or
 * MPCC_NONE where wrt[i] does not reach loss through float values.
 *
 * Preconditions: the forward graph's shapes and dtypes are inferred (call
 * after mpcc_infer_and_fold). Each new node is given its shape on creation,
 * but constant folding of the new nodes is left to the caller, who runs
 * mpcc_infer_and_fold (or the pipeline) again. Nodes a pass marked dead that
 * the gradient needs are made live again.
 *
 * What is added: nodes named "grad/<forward node>/<what>", with outputs of
 * the same name (forward names are untouched), opset 18 semantics,
 * src_index -1; constants the rules need (axes, shapes, zeros). Only nodes
 * on a path from some wrt to loss get their gradient rule applied, and only
 * the gradients of inputs that depend on a wrt are built. A value read by
 * several nodes has its contributions summed with Add.
 *
 * Errors (first one in d, nothing useful left in grads):
 *   MPCC_ERR_INVALID      loss, seed or a wrt is out of range or not float,
 *                         the seed does not broadcast to loss, or a forward
 *                         shape is not inferred;
 *   MPCC_ERR_UNSUPPORTED  an op on a path from a wrt to loss has no gradient
 *                         rule, or a case its rule does not cover, named
 *                         with mpcc_node_error: "node 'NAME' (Op, opset N):
 *                         no gradient rule ...";
 *   MPCC_ERR_NOMEM, MPCC_ERR_INTERNAL as usual.
 * On error the graph may hold some of the new nodes; they are unreachable
 * from the outputs and removed by dead-code elimination.
 *
 * Not thread-safe on one graph; grads must hold n_wrt entries.
 */
mpcc_status mpcc_autodiff(mpcc_graph *g, int32_t loss, int32_t seed, const int32_t *wrt, int n_wrt,
                          int32_t *grads, mpcc_diag *d);

/*
 * True when node n is one of the Adds mpcc_autodiff builds to sum the
 * gradient contributions of a value read by several nodes ("grad/<consumer>/
 * acc<i>"). The precision pass keeps them in f32 (docs/precision.md,
 * "gradient accumulation"). Pure; safe on any node of any graph.
 */
bool mpcc_autodiff_is_accumulation(const mpcc_node *n);

#endif
