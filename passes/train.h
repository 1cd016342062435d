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
 * when that is NULL): trained initializers become f32 state inputs, the
 * label, loss, gradients (passes/autodiff.h), finite check, optimizer
 * updates and loss-scale update are appended, the graph outputs become
 * loss, logits, loss scale, ok and every next state, and g->train says
 * which is which. The new nodes are shape-inferred as they are built;
 * the caller runs mpcc_infer_and_fold and mpcc_eliminate_dead again
 * (passes/pipeline.c), which folds what became constant and removes the
 * model outputs that are no longer wanted.
 *
 * Errors (one line in cx->d): MPCC_ERR_INVALID for options that do not fit
 * the model: a --label naming a value the model computes or an input of the
 * wrong dtype or shape, a --logits naming no float value, no single float
 * output to take as logits, --freeze-weights naming no initializer, --loss
 * model without a loss node, a trained initializer that is not f32, nothing
 * left to train; MPCC_ERR_UNSUPPORTED from autodiff (an op without a
 * gradient rule between a trained weight and the loss, named); NOMEM.
 */
mpcc_status mpcc_build_training(mpcc_graph *g, mpcc_pass_ctx *cx);

#endif
