/*
 * registry.c - the op table: names, domains and precision classes from
 * ir/ops.def, and each op's rule found in the family tables of ops/.
 *
 * Everything here is constant data built by the X-macro, so the registry has
 * no mutable state and needs no initialisation. Lookup by name is a linear
 * scan over some 180 names; the frontend does it once per node, which is
 * cheap next to parsing the protobuf.
 */
#include <string.h>

#include "ir/ir.h"
#include "ops/ops.h"

enum { DOM_A, DOM_T, DOM_M };

static const struct {
	const char *name;
	unsigned char dom;
	unsigned char prec;
} ops[MPCC_OP_COUNT] = {
	[MPCC_OP_INVALID] = {"<invalid>", DOM_M, MPCC_PREC_NONE},
#define OP(id, onnx, d, p) [MPCC_OP_##id] = {onnx, DOM_##d, MPCC_PREC_##p},
#include "ir/ops.def"
#undef OP
};

const char *
mpcc_op_name(mpcc_op op)
{
	if ((unsigned)op >= MPCC_OP_COUNT)
		return "<invalid>";
	return ops[op].name;
}

mpcc_prec_class
mpcc_op_prec_class(mpcc_op op)
{
	if ((unsigned)op >= MPCC_OP_COUNT)
		return MPCC_PREC_NONE;
	return (mpcc_prec_class)ops[op].prec;
}

/* mpcc-internal ops (domain M) have no ONNX domain and are never found by
 * name: they are created by passes, not read from models. */
mpcc_op
mpcc_op_lookup(const char *domain, const char *op_type)
{
	int dom;

	if (!op_type)
		return MPCC_OP_INVALID;
	if (!domain || !*domain || strcmp(domain, "ai.onnx") == 0)
		dom = DOM_A;
	else if (strcmp(domain, "ai.onnx.preview.training") == 0)
		dom = DOM_T;
	else
		return MPCC_OP_INVALID;
	for (int i = 1; i < MPCC_OP_COUNT; i++)
		if (ops[i].dom == dom && strcmp(ops[i].name, op_type) == 0)
			return (mpcc_op)i;
	return MPCC_OP_INVALID;
}

const mpcc_op_rule *
mpcc_op_rule_get(mpcc_op op)
{
	static const mpcc_op_rule *const families[] = {
		mpcc_rules_elementwise,
		mpcc_rules_movement,
		mpcc_rules_reduce,
		mpcc_rules_nn,
		mpcc_rules_quant,
		mpcc_rules_signal,
		mpcc_rules_misc,
	};

	if (op <= MPCC_OP_INVALID || op >= MPCC_OP_COUNT)
		return NULL;
	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++)
		for (const mpcc_op_rule *r = families[f]; r->op != MPCC_OP_INVALID; r++)
			if (r->op == op)
				return r;
	return NULL;
}
