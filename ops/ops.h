/*
 * ops.h - the op families. Each family file exports one rule table,
 * terminated by an entry whose op is MPCC_OP_INVALID; the registry
 * (ir/registry.c) searches them in this order.
 *
 *   ops/elementwise.c  unary, binary, n-ary, activations, Cast, Where, Clip
 *   ops/movement.c     shape and data movement: Reshape .. Resize
 *   ops/reduce.c       reductions, ArgMax/Min, CumSum, Softmax family,
 *                      normalisations and losses
 *   ops/nn.c           MatMul, Gemm, Einsum, Conv, ConvTranspose, pooling, RNNs
 *   ops/quant.c        QuantizeLinear, DequantizeLinear, integer and QLinear products
 *   ops/signal.c       window functions, DFT, STFT, MelWeightMatrix
 *   ops/misc.c         TopK, Compress, GridSample, RoiAlign, MaxUnpool, Det, the
 *                      ai.onnx.preview.training optimizers, the mpcc-internal
 *                      HashRandomUniform
 */
#ifndef MPCC_OPS_H
#define MPCC_OPS_H

#include "codegen/lower.h"
#include "ir/ir.h"

extern const mpcc_op_rule mpcc_rules_elementwise[];
extern const mpcc_op_rule mpcc_rules_movement[];
extern const mpcc_op_rule mpcc_rules_reduce[];
extern const mpcc_op_rule mpcc_rules_nn[];
extern const mpcc_op_rule mpcc_rules_quant[];
extern const mpcc_op_rule mpcc_rules_signal[];
extern const mpcc_op_rule mpcc_rules_misc[];

/* RNN, GRU and LSTM share one description (ops/rnn.c); nn.c lists them. */
mpcc_status mpcc_infer_rnn(mpcc_graph *g, int32_t node, mpcc_diag *d);
mpcc_status mpcc_lower_rnn(mpcc_lower *lx, int32_t node);

#endif
