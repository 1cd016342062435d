/*
 * pipeline.c - the passes, in order. Each stops at its first error, which
 * is already in the diagnostics sink; the verifier runs before inference
 * (the frontend's graph) and after the last pass. A training compile
 * (opts->train) rewrites the folded inference graph into the step graph and
 * infers, folds and prunes that again before precision is decided.
 */
#include "passes/passes.h"
#include "passes/train.h"

mpcc_status
mpcc_run_pipeline(mpcc_graph *g, mpcc_pass_ctx *cx)
{
	mpcc_status st;

	if ((st = mpcc_freeze_inputs(g, cx)))
		return st;
	if ((st = mpcc_bind_shapes(g, cx)))
		return st;
	if ((st = mpcc_check_ops(g, cx)))
		return st;
	if ((st = mpcc_graph_verify(g, cx->d)))
		return st;
	if ((st = mpcc_infer_and_fold(g, cx)))
		return st;
	if ((st = mpcc_eliminate_dead(g, cx)))
		return st;
	bool expanded, bn_expanded;
	if ((st = mpcc_expand_gradients(g, cx, &expanded)) ||
	    (st = mpcc_expand_training_batchnorm(g, cx, &bn_expanded)))
		return st;
	if ((expanded || bn_expanded) &&
	    ((st = mpcc_infer_and_fold(g, cx)) || (st = mpcc_eliminate_dead(g, cx))))
		return st;
	if (cx->opts && cx->opts->train) {
		if ((st = mpcc_build_training(g, cx)))
			return st;
		if ((st = mpcc_infer_and_fold(g, cx)))
			return st;
		if ((st = mpcc_eliminate_dead(g, cx)))
			return st;
	}
	if (cx->expose_intermediates && (st = mpcc_expose_intermediates(g, cx)))
		return st;
	if ((st = mpcc_assign_precision(g, cx)))
		return st;
	if ((st = mpcc_insert_casts(g, cx, NULL)))
		return st;
	return mpcc_graph_verify(g, cx->d);
}
