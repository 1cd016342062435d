#!/usr/bin/python3
"""Training against torch (issue 4's evidence), asserted in make test.

usage:
  /usr/bin/python3 tests/train_torch.py parity MPCC DIGITS_DIR WORK_DIR
  /usr/bin/python3 tests/train_torch.py accuracy DIGITS_DIR ROWS BATCH SEED LR1 EPOCHS1 LR2 EPOCHS2

DIGITS_DIR holds what scripts/make_digits.py writes. Needs Debian's
python3-torch (scripts/deps.sh installs it); torch runs on one thread.

parity: for the MLP and the CNN, an fp32 step plan trained by `mpcc train`
for 100 steps (no shuffle) against torch f32 doing the same from the same
weights (scripts/digits_torch.py): every step's loss must match torch's to
1e-4 relative, and so must the test loss after the 100 updates.

accuracy: tests/test_digits.sh's schedule (Adam, BATCH, lr LR1 for EPOCHS1
epochs shuffled with SEED, then LR2 for EPOCHS2 with SEED + 1, the optimizer
state carried over as mpcc's --resume carries it) replayed in torch with
mpcc's own sample order, once in f32 and once under
torch.autocast('cpu', torch.bfloat16) (forward and loss; evaluation under
autocast too). ROWS is test_digits.sh's table ("model precision acc% ...");
mpcc's bf16 test accuracy must be within 0.5 points of torch.autocast's.
Prints a table of both sides' accuracies.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from digits_torch import (MODELS, MpccOrder, adam, compile_plan, evaluate, parity,  # noqa: E402
                          torch_data, torch_model, train_epochs)

PARITY_LIMIT = 1e-4
ACCURACY_GAP = 0.5  # points


def check_parity(mpcc, digits, work):
    bad = []
    print("parity: mpcc fp32 against torch f32, 100 steps from the same weights, Adam lr 3e-3")
    print("%-5s %14s %14s %12s %14s %12s" % ("model", "step 100 mpcc", "torch", "max rel diff",
                                             "test loss", "rel diff"))
    env = dict(os.environ, MPCC_NUM_THREADS="1")
    for name in MODELS:
        compile_plan(mpcc, digits, name, "fp32", os.path.join(work, f"{name}_fp32.plan"), env)
        p = parity(mpcc, name, digits, work, env)
        print("%-5s %14.9g %14.9g %7.1e (%3d) %14.6g %12.1e" % (
            name, p["mpcc_loss"], p["torch_loss"], p["max_rel"], p["max_rel_step"],
            p["mpcc_test_loss"], p["test_rel"]))
        if p["max_rel"] > PARITY_LIMIT:
            bad.append(f"{name}: step {p['max_rel_step']}'s loss differs from torch's by "
                       f"{p['max_rel']:.2e} relative (limit {PARITY_LIMIT:g})")
        if p["test_rel"] > PARITY_LIMIT:
            bad.append(f"{name}: the test loss differs from torch's by {p['test_rel']:.2e}")
    return bad


def torch_accuracy(digits, name, autocast, seed, lr1, epochs1, lr2, epochs2):
    inp = MODELS[name][0]
    model = torch_model(name, os.path.join(digits, f"{name}.onnx"))
    x, y = torch_data(os.path.join(digits, f"{name}_train.npz"), inp)
    opt = adam(model, lr1)
    train_epochs(model, opt, x, y, MpccOrder(x.shape[0], seed), epochs1, autocast)
    for g in opt.param_groups:
        g["lr"] = lr2
    train_epochs(model, opt, x, y, MpccOrder(x.shape[0], seed + 1), epochs2, autocast)
    return 100 * evaluate(model, *torch_data(os.path.join(digits, f"{name}_test.npz"), inp),
                          autocast)[1]


def check_accuracy(digits, rows, seed, lr1, epochs1, lr2, epochs2):
    mpcc = {}
    with open(rows) as f:
        for line in f:
            m, p, acc = line.split()[:3]
            mpcc[m, p] = float(acc)
    bad = []
    print("digits test accuracy, the same schedule and sample order on both sides:")
    print("%-5s %10s %10s %12s %16s %8s" % ("model", "mpcc fp32", "torch f32", "mpcc bf16",
                                             "torch autocast", "gap"))
    for name in MODELS:
        t32 = torch_accuracy(digits, name, False, seed, lr1, epochs1, lr2, epochs2)
        tac = torch_accuracy(digits, name, True, seed, lr1, epochs1, lr2, epochs2)
        m32, mbf = mpcc[name, "fp32"], mpcc[name, "bf16"]
        print("%-5s %9.2f%% %9.2f%% %11.2f%% %15.2f%% %+8.2f" % (name, m32, t32, mbf, tac,
                                                               mbf - tac))
        if abs(mbf - tac) > ACCURACY_GAP + 1e-9:
            bad.append(f"{name}: mpcc bf16 {mbf:.2f}% is {abs(mbf - tac):.2f} points from "
                       f"torch.autocast bf16 {tac:.2f}% (limit {ACCURACY_GAP:g})")
    return bad


def main():
    torch.set_num_threads(1)
    if len(sys.argv) == 5 and sys.argv[1] == "parity":
        bad = check_parity(*sys.argv[2:5])
    elif len(sys.argv) == 10 and sys.argv[1] == "accuracy":
        digits, rows, batch, seed, lr1, epochs1, lr2, epochs2 = sys.argv[2:10]
        if int(batch) != 32:
            sys.exit("train_torch.py: the models' plans are compiled for batch 32")
        bad = check_accuracy(digits, rows, int(seed), float(lr1), int(epochs1), float(lr2),
                             int(epochs2))
    else:
        sys.exit(__doc__.strip().split("\n\n")[1])
    for b in bad:
        print("train_torch: " + b, file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
