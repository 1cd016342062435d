/*
 * movement_impl.h - helpers shared by the data-movement family's files
 * (ops/movement.c, ops/movement_gather.c, ops/movement_resize.c) and the
 * rule functions the split-off files hand to movement.c's table.
 *
 * Every movement op is an index map: one stage over the output's shape that
 * loads the input at an integer expression of the loop vars. The helpers
 * here read compile-time shape inputs, set output shapes and build that
 * stage, so each op only writes its index arithmetic.
 */
#ifndef MPCC_OPS_MOVEMENT_IMPL_H
#define MPCC_OPS_MOVEMENT_IMPL_H

#include "ops/ops.h"

/* Input i of node n, or NULL when absent (omitted optional or past n_in). */
mpcc_value *mpcc_move_in(mpcc_graph *g, const mpcc_node *n, int i);
mpcc_value *mpcc_move_out(mpcc_graph *g, const mpcc_node *n, int i);
/* Sets dtype, rank and dims of an output. */
void mpcc_move_set(mpcc_value *v, mpcc_dtype t, int rank, const int64_t *dims);

/*
 * Reads constant input i (an integer tensor of at most max elements) into
 * out[] and its element count into *count. `what` names its role in the
 * message ("input 'x' (what) must be known at compile time"). An absent
 * input gives *count = -1 and MPCC_OK.
 */
mpcc_status mpcc_move_const_ints(mpcc_graph *g, int32_t ni, int i, const char *what, int64_t *out,
                                 int max, int *count, mpcc_diag *d);
/* MPCC_ERR_UNSUPPORTED unless input i is present and constant. */
mpcc_status mpcc_move_need_const(mpcc_graph *g, int32_t ni, int i, const char *what, mpcc_diag *d);

/* An index read from data: cast to I64, negative values wrap by dim, then
 * clamped into [0, dim-1] so the load stays in bounds. */
int32_t mpcc_move_wrap_index(kir_kernel *k, int32_t e, int64_t dim);
/* e (I64) clamped into [lo, hi]. */
int32_t mpcc_move_clamp(kir_kernel *k, int32_t e, int64_t lo, int64_t hi);
/* Loads value vi at the multi-index idx (its rank entries). */
int32_t mpcc_move_load(kir_kernel *k, const mpcc_graph *g, int32_t vi, const int32_t *idx);
/* Loads element 0 of value vi (a scalar input). */
int32_t mpcc_move_load0(kir_kernel *k, const mpcc_graph *g, int32_t vi);

/*
 * The index-map stage: fn gets the output's loop vars and returns the value
 * expr (any dtype; it is cast to the output buffer's). One kernel per call,
 * named after the node with suffix.
 */
typedef int32_t (*mpcc_move_map_fn)(kir_kernel *k, mpcc_graph *g, const mpcc_node *n,
                                    const int32_t *vars, void *ctx);
mpcc_status mpcc_move_lower_map(mpcc_lower *lx, int32_t ni, int oi, const char *suffix,
                                mpcc_move_map_fn fn, void *ctx);
/* Reports a failed kernel build (out of memory) for node ni. */
mpcc_status mpcc_move_check(mpcc_lower *lx, int32_t ni, kir_kernel *k);

/* Rules implemented in ops/movement_layout.c, ops/movement_gather.c and
 * ops/movement_resize.c. */
mpcc_status mpcc_move_infer_pad(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_pad(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_range(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_range(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_trilu(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_trilu(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_eyelike(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_eyelike(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_onehot(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_onehot(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_depth_space(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_depth_space(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_revseq(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_revseq(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_gather(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_gather(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_gather_elements(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_gather_elements(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_gather_nd(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_gather_nd(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_scatter_elements(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_scatter_elements(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_scatter_nd(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_scatter_nd(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_move_infer_resize(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_move_lower_resize(mpcc_lower *lx, int32_t ni);

#endif
