/*
 * passes.h - the graph passes and the pipeline that runs them.
 *
 * Each pass is one function, graph in and graph out, that reports to the
 * diagnostics sink and stops cleanly. passes/pipeline.c calls them in order.
 */
#ifndef MPCC_PASSES_H
#define MPCC_PASSES_H

#include "ir/ir.h"

typedef struct mpcc_pass_ctx {
	mpcc_diag *d;
	const mpcc_compile_options *opts;
} mpcc_pass_ctx;

/* Turns the inputs named in opts->frozen into constants (--freeze). */
mpcc_status mpcc_freeze_inputs(mpcc_graph *g, mpcc_pass_ctx *cx);
/* Binds --shape NAME=dims to graph inputs and checks them. */
mpcc_status mpcc_bind_shapes(mpcc_graph *g, mpcc_pass_ctx *cx);
/* Checks attributes against each op's rule (unknown ones are errors). */
mpcc_status mpcc_check_ops(mpcc_graph *g, mpcc_pass_ctx *cx);
/* Shape and dtype inference with constant folding, in one forward sweep:
 * a node whose inputs are all constant is evaluated (kernel IR interpreter)
 * and its outputs become constants, so Shape->Gather->Concat->Reshape chains
 * resolve before the Reshape needs its shape. */
mpcc_status mpcc_infer_and_fold(mpcc_graph *g, mpcc_pass_ctx *cx);
/* Removes nodes whose outputs nobody needs (constant outputs included). */
mpcc_status mpcc_eliminate_dead(mpcc_graph *g, mpcc_pass_ctx *cx);

/* ---- precision (issue 3, docs/precision.md) */

/* What the cast pass did, for tests and dumps. */
typedef struct mpcc_precision_stats {
	int casts_inserted;        /* Cast nodes added (one per value and dtype) */
	int consts_converted;      /* constants converted at compile time */
	int round_trips_cancelled; /* Cast(Cast(x, low), f32) pairs removed */
} mpcc_precision_stats;

/* f16 for fp16 and auto, bf16 for bf16, UNDEF for fp32. */
mpcc_dtype mpcc_precision_low_dtype(mpcc_precision p);
/* True when input `input` of op is read in any dtype (Cast, Shape, Size). */
bool mpcc_precision_input_neutral(mpcc_op op, int input);
/* True when node n has f32 data to decide about. */
bool mpcc_precision_candidate(const mpcc_graph *g, const mpcc_node *n);
/* Sets compute, accum and reason of every live node (precision.c). */
mpcc_status mpcc_assign_precision(mpcc_graph *g, mpcc_pass_ctx *cx);
/* Applies the decisions: low storage, shared casts, constants converted,
 * round trips cancelled, inference re-run and checked (casts.c). stats may
 * be NULL. Does nothing in fp32 mode. */
mpcc_status mpcc_insert_casts(mpcc_graph *g, mpcc_pass_ctx *cx, mpcc_precision_stats *stats);
/* Removes Cast(Cast(x, f16|bf16), dtype of x) where nothing else reads the
 * low value (part of mpcc_insert_casts; exposed for tests). */
mpcc_status mpcc_cancel_round_trips(mpcc_graph *g, mpcc_pass_ctx *cx,
                                    mpcc_precision_stats *stats);

/* All of the above, in order. */
mpcc_status mpcc_run_pipeline(mpcc_graph *g, mpcc_pass_ctx *cx);

#endif
