/*
 * ops/signal_impl.h - helpers shared by the signal family's files
 * (ops/signal.c: windows, MelWeightMatrix and the table; ops/signal_dft.c:
 * DFT and STFT) and the rules signal_dft.c contributes to the table.
 */
#ifndef MPCC_SIGNAL_IMPL_H
#define MPCC_SIGNAL_IMPL_H

#include "ops/ops.h"

/* Input / output i of n, NULL when absent. */
mpcc_value *mpcc_sig_in(mpcc_graph *g, const mpcc_node *n, int i);
mpcc_value *mpcc_sig_out(mpcc_graph *g, const mpcc_node *n, int i);
/* Sets dtype and a numeric shape. */
void mpcc_sig_set(mpcc_value *v, mpcc_dtype t, int rank, const int64_t *dims);
/*
 * The one integer held by input i of n, whose value the lowering needs at
 * compile time (it decides a shape, or a band edge): MPCC_ERR_UNSUPPORTED
 * (naming --freeze) when it is not a constant, MPCC_ERR_INVALID when it is
 * missing, not an integer or not a single element. `what` names the input
 * in messages.
 */
mpcc_status mpcc_sig_const_int(mpcc_graph *g, const mpcc_node *n, int i, const char *what,
                               int64_t *out, mpcc_diag *d);
/* The same for a float scalar (MelWeightMatrix's edge frequencies). */
mpcc_status mpcc_sig_const_float(mpcc_graph *g, const mpcc_node *n, int i, const char *what,
                                 double *out, mpcc_diag *d);

/* The rules ops/signal_dft.c contributes to the table in ops/signal.c. */
extern const char *const mpcc_sig_attrs_dft[];
extern const char *const mpcc_sig_attrs_stft[];
mpcc_status mpcc_sig_infer_dft(mpcc_graph *g, int32_t node, mpcc_diag *d);
mpcc_status mpcc_sig_lower_dft(mpcc_lower *lx, int32_t node);
mpcc_status mpcc_sig_infer_stft(mpcc_graph *g, int32_t node, mpcc_diag *d);
mpcc_status mpcc_sig_lower_stft(mpcc_lower *lx, int32_t node);

#endif
