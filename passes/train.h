/*
 * train.h - `--train`: the pass that turns an inference graph into the
 * training step graph (docs/training.md, "The step graph"), and the check of
 * its options (mpcc_train_options, include/mpcc.h).
 */
#ifndef MPCC_TRAIN_PASS_H
#define MPCC_TRAIN_PASS_H

#include "passes/passes.h"

/*
 * Checks the training options alone, before any model is read: the enums
 * are in range, lr > 0, momentum and the Adam betas in [0, 1), eps > 0,
 * weight decay >= 0, a static loss scale > 0, a dynamic one's growth
 * factor >= 1, backoff in (0, 1) and growth interval >= 1, the frozen list
 * well formed. MPCC_ERR_INVALID with one line naming the option by its
 * command-line flag ("--lr: the learning rate must be > 0, got 0").
 */
mpcc_status mpcc_train_check_options(const mpcc_train_options *o, mpcc_diag *d);

/*
 * Rewrites g, an inference graph after shape inference, folding and dead
 * code elimination, into the step graph for cx->opts->train (nothing to do
 * when that is NULL): trained initializers become f32 state inputs,
 * BatchNormalization and Dropout switch to their training form
 * (mpcc_train_switch_modes below), the label, loss, gradients
 * (passes/autodiff.h), finite check, optimizer updates and loss-scale
 * update are appended, the graph outputs become loss, logits, loss scale,
 * ok and every next state, and g->train says which is which. The new
 * nodes are shape-inferred as they are built; the caller runs
 * mpcc_infer_and_fold and mpcc_eliminate_dead again (passes/pipeline.c),
 * which folds what became constant and removes the model outputs that are
 * no longer wanted.
 *
 * Errors (one line in cx->d): MPCC_ERR_INVALID for options that do not fit
 * the model: a --label naming a value the model computes or an input of the
 * wrong dtype or shape, a --logits naming no float value, no single float
 * output to take as logits, --freeze-weights naming no initializer, --loss
 * model without a loss node, a trained initializer that is not f32, nothing
 * left to train; the mode switch's (mpcc_train_switch_modes below);
 * MPCC_ERR_UNSUPPORTED from autodiff (an op without a gradient rule between
 * a trained weight and the loss, named); NOMEM.
 */
mpcc_status mpcc_build_training(mpcc_graph *g, mpcc_pass_ctx *cx);

/*
 * The mode switch of the step graph (passes/train_modes.c, docs/training.md
 * "Training mode"), run by mpcc_build_training before the backward pass.
 * Every live BatchNormalization and Dropout whose output reaches `loss` is
 * replaced by ordinary ops that behave as in training when the bool input
 * `apply` is true and as in inference when it is false. The states this
 * adds (each BatchNormalization's running mean and variance, a Dropout
 * step count) are listed in out for the caller to commit: every_step ones
 * under apply, the others under apply-and-finite like the weights.
 */
typedef struct mpcc_train_mode_state {
	int32_t in;      /* the state input: a running statistic, or the step count */
	int32_t next;    /* its value after a training step, before the commit */
	bool every_step; /* taken on every training step, not only finite ones */
	void *init;      /* its initial value (malloc'd, nbytes); the caller may take it */
	size_t nbytes;
} mpcc_train_mode_state;

typedef struct mpcc_train_modes {
	mpcc_train_mode_state *state; /* n_state, in node order (malloc'd) */
	int n_state;
} mpcc_train_modes;

/*
 * Rewrites g (topologically ordered, shapes inferred) as said above;
 * out is overwritten, and the caller frees it with mpcc_train_modes_fini
 * on success and on failure. Needs `loss` and the bool scalar input `apply`
 * to exist. A BatchNormalization's running statistics become graph inputs
 * of their own names (kept WEIGHT, so `mpcc export` writes them back), no
 * longer constants; both named in o's frozen list keep the node in
 * inference mode. The node array is sorted again when anything changed.
 *
 * Errors (one line naming the node, in d): MPCC_ERR_INVALID for one
 * running statistic frozen without the other and a Dropout ratio outside
 * [0, 1); MPCC_ERR_UNSUPPORTED for running statistics that are no f32
 * initializers of the node's own, an X that is not f32, a Dropout ratio
 * only known at run time; NOMEM.
 */
mpcc_status mpcc_train_switch_modes(mpcc_graph *g, const mpcc_train_options *o, int32_t loss,
                                    int32_t apply, mpcc_train_modes *out, mpcc_diag *d);

/* Frees the state list and the initial values still in it. */
void mpcc_train_modes_fini(mpcc_train_modes *m);

#endif
