/*
 * train_guard.h - the collapse guard's diagnosis (runtime/train_guard.c),
 * called by the trainer (runtime/train.c).
 */
#ifndef MPCC_TRAIN_GUARD_H
#define MPCC_TRAIN_GUARD_H

#include "runtime/plan.h"

/*
 * Writes into msg (size n, one line, no trailing period) where the step
 * whose plan inputs hold input_data[i] (plan input order; the apply switch
 * at position `apply`, or -1) first goes non-finite: a plan input, or the
 * first kernel output in schedule order on a re-run with the interpreter.
 * Errors of the re-run (memory) make the message say nothing was found;
 * cx's last error may be overwritten by them.
 */
void mpcc_train_guard_explain(mpcc_context *cx, const mpcc_plan *p, int apply,
                              void *const *input_data, char *msg, size_t n);

#endif
