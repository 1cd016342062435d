/*
 * kir_impl.h - helpers shared by the kernel IR's own files (kir.c, interp.c)
 * and useful to emitters: which operands an expression reads, the class of
 * an op, and which expressions each tree of a stage reaches.
 *
 * Reachability is one backward sweep over the expression array: operands
 * always precede their users, so marking a user before visiting lower
 * indices marks every operand it needs.
 */
#ifndef MPCC_KIR_IMPL_H
#define MPCC_KIR_IMPL_H

#include "codegen/kir.h"

enum {
	KIR_REACH_RED = 1 << 0,   /* reached from the stage's red_value */
	KIR_REACH_STORE = 1 << 1, /* reached from a store's index or value */
};

/* Expression operands (expr indices) of e into out[]; returns how many. A
 * LOAD's buffer and a VAR's number are not operands. */
int kir_expr_operands(const kir_expr *e, int32_t out[3]);

bool kir_op_is_unary(kir_op op);
bool kir_op_is_binary(kir_op op);
bool kir_op_is_compare(kir_op op);

/* True when the stage folds a reduction (red_op != NONE). */
bool kir_stage_reduces(const kir_stage *st);

/* Sets mark[i] (n_exprs bytes, zeroed here) to KIR_REACH_* bits for each
 * expression the stage's trees reach. Out-of-range roots and operands are
 * skipped, so this is safe on unvalidated kernels. */
void kir_stage_reach(const kir_kernel *k, const kir_stage *st, uint8_t *mark);

#endif
