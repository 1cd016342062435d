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
/* All of the above, in order. */
mpcc_status mpcc_run_pipeline(mpcc_graph *g, mpcc_pass_ctx *cx);

#endif
