/*
 * nn_impl.h - matrix and sliding-window geometry shared by the op families
 * that lower matrix products and convolutions (ops/nn.c, ops/quant.c).
 *
 * Internal to ops/: these helpers report through mpcc_node_error and build
 * kernel IR index expressions; they know nothing of dtypes, so the float ops
 * and their integer and quantised variants share one definition of shapes,
 * broadcasting, padding and windows.
 */
#ifndef MPCC_NN_IMPL_H
#define MPCC_NN_IMPL_H

#include "codegen/lower.h"
#include "ir/ir.h"

/* A matrix product extended to numpy's rules: batch dims, M, K, N, and
 * whether A (B) was a promoted 1-D operand. */
typedef struct mpcc_nn_mm_shape {
	int n_batch;
	int64_t batch[MPCC_MAX_RANK];
	int64_t m, k, n;
	bool a_vec, b_vec;
} mpcc_nn_mm_shape;

/* Sliding-window geometry per spatial dim: kernel extent, stride, dilation,
 * begin and end padding, input and output sizes. */
typedef struct mpcc_nn_window {
	int n_sp;
	int64_t kernel[MPCC_MAX_RANK], stride[MPCC_MAX_RANK], dil[MPCC_MAX_RANK];
	int64_t pad_b[MPCC_MAX_RANK], pad_e[MPCC_MAX_RANK];
	int64_t in[MPCC_MAX_RANK], out[MPCC_MAX_RANK];
} mpcc_nn_window;

/* Fills s from the operand shapes; INVALID when K or batch dims disagree. */
mpcc_status mpcc_nn_matmul_dims(const mpcc_value *a, const mpcc_value *b, mpcc_nn_mm_shape *s,
                                const mpcc_node *node, mpcc_diag *d);
/* Linear index into operand v of the extended problem at (batch vars, row,
 * col); row (col) is ignored for a promoted vector A (B): pass -1. */
int32_t mpcc_nn_mm_index(kir_kernel *k, const mpcc_value *v, int n_batch, const int32_t *bvars,
                         int32_t row, int32_t col, bool vec);

/* Reads strides, dilations, pads and auto_pad of n for input x and the given
 * kernel extents; computes the output sizes. */
mpcc_status mpcc_nn_window_geometry(const mpcc_node *n, const mpcc_value *x, const int64_t *kernel,
                                    bool ceil_mode, mpcc_nn_window *w, mpcc_diag *d);
/* Conv's geometry for input x and weights wt (kernel_shape checked against
 * wt's spatial dims). */
mpcc_status mpcc_nn_conv_geometry(const mpcc_node *n, const mpcc_value *x, const mpcc_value *wt,
                                  mpcc_nn_window *w, mpcc_diag *d);
/* Input position along spatial dim i for output var o and kernel var kv
 * (may fall in the padding). */
int32_t mpcc_nn_window_pos(kir_kernel *k, const mpcc_nn_window *w, int i, int32_t o, int32_t kv);
/* BOOL expr lo <= p < hi. */
int32_t mpcc_nn_in_range(kir_kernel *k, int32_t p, int64_t lo, int64_t hi);
/* acc AND c, where acc < 0 means "no condition yet". */
int32_t mpcc_nn_and_all(kir_kernel *k, int32_t acc, int32_t c);
/* p clamped into [0, n), so a masked-off load stays in bounds. */
int32_t mpcc_nn_clamp_pos(kir_kernel *k, int32_t p, int64_t n);

#endif
