/*
 * lower.h - lowering graph nodes to kernel IR.
 *
 * mpcc_lower collects the kernels that the nodes of a graph lower to, in
 * execution order. An op's lowering (its rule's `lower`) creates one or more
 * kernels with mpcc_lower_kernel(), binds graph values to kernel buffers with
 * mpcc_lower_param(), and builds stages with the kir builders. Shapes are
 * static by the time lowering runs: every value has a known rank and dims.
 *
 * The helpers below do the index arithmetic every lowering needs, so that no
 * lowering computes strides by hand.
 */
#ifndef MPCC_LOWER_H
#define MPCC_LOWER_H

#include "codegen/kir.h"
#include "ir/ir.h"

struct mpcc_lower {
	mpcc_graph *g;
	mpcc_diag *d;
	kir_kernel **kernels; /* owned */
	int n_kernels, cap_kernels;
};

void mpcc_lower_init(mpcc_lower *lx, mpcc_graph *g, mpcc_diag *d);
void mpcc_lower_fini(mpcc_lower *lx); /* destroys the kernels still held */
/* Lowers node n through its rule (kernels appended to lx). */
mpcc_status mpcc_lower_node(mpcc_lower *lx, int32_t n);
/* Lowers every live node in order. */
mpcc_status mpcc_lower_graph(mpcc_lower *lx);

/* A new kernel named after node n plus suffix ("" allowed), appended to lx.
 * NULL when out of memory (reported to lx->d). */
kir_kernel *mpcc_lower_kernel(mpcc_lower *lx, int32_t n, const char *suffix);
/* The buffer bound to graph value v in k (created on first use; its dtype and
 * size come from the value). */
int mpcc_lower_param(kir_kernel *k, const mpcc_graph *g, int32_t v);

/* Var exprs 0..n-1 of a stage into out[]. */
void mpcc_lower_vars(kir_kernel *k, int first, int n, int32_t *out);
/* Row-major linear index of idx[0..rank-1] in a tensor of the given dims. */
int32_t mpcc_lower_linear(kir_kernel *k, int rank, const int64_t *dims, const int32_t *idx);
/* Index into input `in` at output position out_idx, with numpy broadcasting
 * (in's dims align to the right of out's, size-1 dims read index 0). */
int32_t mpcc_lower_bcast(kir_kernel *k, const mpcc_value *in, int out_rank, const int32_t *out_idx);

/* One-stage elementwise kernel: out = fn(inputs...) over out's shape, every
 * input broadcast. fn gets the loaded input exprs and returns the value
 * (of the output's dtype). ctx is passed through. */
typedef int32_t (*mpcc_elem_fn)(kir_kernel *k, const int32_t *in, int n_in, const mpcc_node *node,
                                void *ctx);
mpcc_status mpcc_lower_elementwise(mpcc_lower *lx, int32_t n, mpcc_elem_fn fn, void *ctx);

/* Normalises an axis attribute against rank (negative counts from the end);
 * returns -1 when out of range. */
int mpcc_axis(int64_t axis, int rank);

#endif
