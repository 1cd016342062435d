/* ops/signal.c - placeholder table, replaced by the family's rules. */
#include "ops/ops.h"

const mpcc_op_rule mpcc_rules_signal[] = {
	{.op = MPCC_OP_INVALID},
};
