/*
 * passes.h - the graph passes and the pipeline that runs them.
 *
 * Each pass is one function, graph in and graph out, that reports to the
 * diagnostics sink and stops cleanly. passes/pipeline.c calls them in order.
 */
#ifndef MPCC_PASSES_H
#define MPCC_PASSES_H

#include "ir/ir.h"

/*
 * What auto mode (runtime/autoprec.c) decided about one node, before
 * mpcc_assign_precision turns it into the node's fields. Indexed by
 * mpcc_node.src_index, which is stable across reads of the same model.
 * Policy still decides whether a node is low; a hint changes which low
 * dtype it gets (stage b: ranges) or keeps it in f32 (stage c: the error
 * budget). User overrides (--keep-fp32, --force-low) win over hints.
 */
typedef struct mpcc_prec_hint {
	mpcc_dtype low;        /* low dtype if the node goes low; UNDEF = the mode's */
	bool keep_f32;         /* stage c raised it */
	const char *low_note;  /* stage b's evidence line ("auto: bf16: ..."), or NULL */
	const char *f32_note;  /* stage c's evidence line ("auto: f32: ..."), or NULL */
	double range_absmax;   /* copied into mpcc_node (NaN = not measured) */
	double err;
} mpcc_prec_hint;

typedef struct mpcc_pass_ctx {
	mpcc_diag *d;
	const mpcc_compile_options *opts;
	/* Auto mode only (set by runtime/autoprec.c; zero otherwise): the
	 * per-node hints (n_hints entries, by src_index; NULL = policy alone),
	 * the graph-level summary copied into mpcc_graph.prec_summary, and
	 * whether every f32 intermediate becomes a graph output so the
	 * calibration and search builds can read it (mpcc_expose_intermediates). */
	const mpcc_prec_hint *hints;
	int n_hints;
	const char *prec_summary;
	bool expose_intermediates;
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
/* Revives the dead producers (among nodes [0, n_nodes)) of the values
 * marked in needed, transitively; folded nodes stay dead (passes/dce.c). */
void mpcc_revive_producers(mpcc_graph *g, char *needed, int32_t n_nodes);
/* Puts the node array back into topological order after a pass appended
 * nodes that feed nodes standing before them: each node moves after what
 * it reads (depth first, inputs in order), the rest keeps its order, and
 * every value's producer index follows its node, a dead one's too
 * (passes/gradient.c). Node indices change; value indices do not. */
mpcc_status mpcc_sort_nodes(mpcc_graph *g, mpcc_diag *d);
/* Replaces every Gradient node (ai.onnx.preview.training) by its backward
 * nodes (passes/gradient.c); *expanded says whether there was one, after
 * which shapes are inferred again. Needs inferred shapes. */
mpcc_status mpcc_expand_gradients(mpcc_graph *g, mpcc_pass_ctx *cx, bool *expanded);
/* Replaces every BatchNormalization with training_mode=1 by ordinary ops
 * that normalise with the batch's statistics and compute its running
 * statistics outputs (passes/train_modes.c); *expanded as above. Needs
 * inferred shapes. */
mpcc_status mpcc_expand_training_batchnorm(mpcc_graph *g, mpcc_pass_ctx *cx, bool *expanded);
/* Makes every f32 value a live node computes a graph output (after the
 * model's own outputs), so a run hands it back; for auto mode's internal
 * builds (cx->expose_intermediates). Does not change what is computed.
 * At most MPCC_EXPOSE_MAX_BYTES of them, in node order. */
#define MPCC_EXPOSE_MAX_BYTES ((size_t)256 << 20)
mpcc_status mpcc_expose_intermediates(mpcc_graph *g, mpcc_pass_ctx *cx);

/* ---- precision (issue 3, docs/precision.md) */

/* What the cast pass did, for tests and dumps. */
typedef struct mpcc_precision_stats {
	int casts_inserted;        /* Cast nodes added (one per value and dtype) */
	int consts_converted;      /* constants converted at compile time */
	int round_trips_cancelled; /* Cast(Cast(x, low), f32) pairs removed */
} mpcc_precision_stats;

/* f16 for fp16 and auto, bf16 for bf16, UNDEF for fp32. In auto mode
 * this is the default low dtype; a hint may choose bf16 per node. */
mpcc_dtype mpcc_precision_low_dtype(mpcc_precision p);
/* True when input `input` of op is read in any dtype (Cast, Shape, Size). */
bool mpcc_precision_input_neutral(mpcc_op op, int input);
/* True when node n has f32 data to decide about. */
bool mpcc_precision_candidate(const mpcc_graph *g, const mpcc_node *n);
/* True when the policy decides n's dtype: a candidate that is not a Cast,
 * Shape or Size (those keep the dtype they are given). */
bool mpcc_precision_decides(const mpcc_graph *g, const mpcc_node *n);
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
