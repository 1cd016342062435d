/*
 * fuse.h - producer/consumer fusion on the kernel IR.
 *
 * Runs on the kernels of a lowered graph (between mpcc_lower_graph and
 * mpcc_plan_build), so every backend gets the fused kernels. A one-stage,
 * reduction-free producer whose output is an intermediate read by exactly one
 * later kernel is inlined into that consumer at each of its loads; the
 * producer's kernel and its output tensor disappear. Chains collapse by
 * repetition. Numerics are unchanged: the inlined expression tree is the one
 * the producer stored, already of the buffer's dtype (kir.h: a store's value
 * has the buffer's dtype, and f16/bf16 exprs are rounded where produced), so
 * an f16/bf16 intermediate is rounded exactly where the store rounded it.
 *
 * Cost rule: a producer is inlined when the consumer evaluates each element
 * of the intermediate at most once over its whole iteration (a single load
 * site whose index is an injective affine function of the loop vars it runs
 * under), or, for any access pattern, when the producer is cheap: at most one
 * op besides casts and at most two loads (index arithmetic not counted), so
 * duplicating it costs about what re-reading the intermediate would.
 */
#ifndef MPCC_FUSE_H
#define MPCC_FUSE_H

#include "codegen/lower.h"

typedef struct mpcc_fuse_stats {
	int kernels_before, kernels_after, fused;
} mpcc_fuse_stats;

/* Fuses lx's kernels in place. Each fused kernel records the graph nodes it
 * covers in kir_kernel.cover. Fails only for out of memory; a candidate that
 * cannot be fused correctly is left alone. stats may be NULL. */
mpcc_status mpcc_fuse_kernels(mpcc_lower *lx, mpcc_fuse_stats *stats);

#endif
