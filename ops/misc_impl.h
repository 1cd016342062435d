/*
 * ops/misc_impl.h - helpers shared by the misc family's files (ops/misc.c,
 * ops/misc_image.c, ops/misc_random.c) and the rules those two contribute
 * to the table.
 */
#ifndef MPCC_MISC_IMPL_H
#define MPCC_MISC_IMPL_H

#include "ops/ops.h"

/* Input / output i of n, NULL when absent. */
mpcc_value *mpcc_misc_in(mpcc_graph *g, const mpcc_node *n, int i);
mpcc_value *mpcc_misc_out(mpcc_graph *g, const mpcc_node *n, int i);
/* Sets dtype and a numeric shape. */
void mpcc_misc_set(mpcc_value *v, mpcc_dtype t, int rank, const int64_t *dims);
/* UNSUPPORTED (naming --freeze) unless v's data is known at compile time. */
mpcc_status mpcc_misc_need_const(const mpcc_node *n, const mpcc_value *v, const char *what,
                                 mpcc_diag *d);
/* F64 for f64 values, else F32. */
mpcc_dtype mpcc_misc_compute(mpcc_dtype t);

/* The rules ops/misc_image.c and ops/misc_random.c contribute to the table
 * in ops/misc.c. */
#define MPCC_MISC_RULE(name) mpcc_misc_attrs_##name, mpcc_misc_infer_##name, mpcc_misc_lower_##name
#define MPCC_MISC_DECLARE(name)                                                                    \
	extern const char *const mpcc_misc_attrs_##name[];                                         \
	mpcc_status mpcc_misc_infer_##name(mpcc_graph *g, int32_t node, mpcc_diag *d);             \
	mpcc_status mpcc_misc_lower_##name(mpcc_lower *lx, int32_t node);
MPCC_MISC_DECLARE(gridsample)
MPCC_MISC_DECLARE(maxunpool)
MPCC_MISC_DECLARE(roialign)
MPCC_MISC_DECLARE(det)
MPCC_MISC_DECLARE(hashuniform)

#endif
