"""torch's side of the digits training comparisons (Debian's python3-torch).

Imported by bench/train_bench.py (step time, loss parity) and
tests/train_torch.py (parity and the bf16 accuracy, asserted in make test).
The models are scripts/make_digits.py's, rebuilt in torch with the ONNX
initializers loaded by name, so both sides start from the same weights;
the loss is softmax cross entropy, mean over the batch; the optimizer Adam.

mpcc_order() replays `mpcc train --shuffle SEED`'s sample order (splitmix64
and Fisher-Yates with rejection, tools/mpcc_train.c), so torch can see the
same batches in the same order.
"""
import csv
import os
import re
import subprocess
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

BATCH = 32
LR = 3e-3           # Adam, betas 0.9/0.999, eps 1e-8, as mpcc's defaults
PARITY_STEPS = 100
MODELS = {  # name: (data input, shape for --shape)
    "mlp": ("x", "x=32x64"),
    "cnn": ("image", "image=32x1x8x8"),
}
M64 = (1 << 64) - 1


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 128)
        self.fc2 = torch.nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.fc = torch.nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.relu(self.conv2(x))
        return self.fc(torch.flatten(x, 1))


def torch_model(name, onnx_path):
    """The architecture of make_digits.py with the ONNX initializers loaded by name."""
    m = MLP() if name == "mlp" else CNN()
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
             for t in onnx.load(onnx_path).graph.initializer}
    sd = m.state_dict()
    if set(inits) != set(sd):
        raise RuntimeError(f"{onnx_path}: initializers {sorted(inits)}, torch wants {sorted(sd)}")
    for k, v in inits.items():
        if tuple(v.shape) != tuple(sd[k].shape):
            raise RuntimeError(f"{onnx_path}: {k} is {tuple(v.shape)}, torch wants {tuple(sd[k].shape)}")
    m.load_state_dict(inits)
    return m


def adam(model, lr=LR):
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0)


def torch_data(npz, inp):
    d = np.load(npz)
    return torch.from_numpy(d[inp].copy()), torch.from_numpy(d["label"].copy())


def step(model, opt, xb, yb, autocast):
    """One training step; the loss and the logits."""
    opt.zero_grad(set_to_none=True)
    if autocast:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
    else:
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
    loss.backward()
    opt.step()
    return loss, logits


def evaluate(model, x, y, autocast):
    """Mean loss over the full batches and accuracy over the samples they hold."""
    n = x.shape[0] // BATCH
    loss, correct = 0.0, 0
    with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16,
                                         enabled=autocast):
        for b in range(n):
            logits = model(x[b * BATCH:(b + 1) * BATCH])
            yb = y[b * BATCH:(b + 1) * BATCH]
            loss += F.cross_entropy(logits.float(), yb).item()
            correct += int((logits.argmax(1) == yb).sum().item())
    return loss / n, correct / (n * BATCH)


def _splitmix(state):
    state = (state + 0x9e3779b97f4a7c15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return state, z ^ (z >> 31)


class MpccOrder:
    """The sample order of `mpcc train --shuffle SEED`, epoch after epoch."""

    def __init__(self, n, seed):
        self.perm = list(range(n))
        self.state = seed & M64

    def next_epoch(self):
        p = self.perm
        for i in range(len(p), 1, -1):
            limit = M64 - M64 % i
            while True:
                self.state, r = _splitmix(self.state)
                if r < limit:
                    break
            j = r % i
            p[i - 1], p[j] = p[j], p[i - 1]
        return list(p)


def train_epochs(model, opt, x, y, order, epochs, autocast):
    """epochs passes over the full batches of x, y in mpcc train's shuffled order."""
    n_batches = x.shape[0] // BATCH
    for _ in range(epochs):
        perm = torch.tensor(order.next_epoch())
        for b in range(n_batches):
            idx = perm[b * BATCH:(b + 1) * BATCH]
            step(model, opt, x[idx], y[idx], autocast)


def torch_epoch(model, opt, x, y, steps, autocast, losses=None):
    """steps training steps over x, y in order; the wall time in seconds."""
    correct = 0
    t0 = time.perf_counter()
    for b in range(steps):
        xb, yb = x[b * BATCH:(b + 1) * BATCH], y[b * BATCH:(b + 1) * BATCH]
        loss, logits = step(model, opt, xb, yb, autocast)
        lv = loss.item()
        correct += int((logits.argmax(1) == yb).sum().item())
        if losses is not None:
            losses.append(lv)
    return time.perf_counter() - t0


def run(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr[-800:]}")
    return r.stdout


def compile_plan(mpcc, digits, name, precision, out, env, lr=LR):
    """A step plan of make_digits.py's model for the CPU: softmax cross entropy, Adam."""
    run([mpcc, os.path.join(digits, f"{name}.onnx"), "-o", out, "--precision", precision,
         "--shape", MODELS[name][1], "--train", "--loss", "softmax_cross_entropy", "--label",
         "label", "--optimizer", "adam", "--lr", repr(lr), "--cuda-archs", "none"], env)


def parity(mpcc, name, digits, plans, env):
    """mpcc fp32 (plans/NAME_fp32.plan) against torch f32 over PARITY_STEPS
    steps from the same weights, data in file order: per-step losses and the
    test loss after them, with their relative differences."""
    inp = MODELS[name][0]
    train = np.load(os.path.join(digits, f"{name}_train.npz"))
    n_full = (train["label"].shape[0] // BATCH) * BATCH
    idx = np.arange(PARITY_STEPS * BATCH) % n_full
    pdata = os.path.join(plans, f"{name}_parity.npz")
    np.savez(pdata, **{inp: train[inp][idx], "label": train["label"][idx]})
    test = os.path.join(digits, f"{name}_test.npz")
    log = os.path.join(plans, f"{name}_parity.csv")
    out = run([mpcc, "train", os.path.join(plans, f"{name}_fp32.plan"), "--data", pdata,
               "--epochs", "1", "--batch", str(BATCH), "--log", log, "--eval", test], env)
    with open(log) as f:
        m_losses = [float(r["loss"]) for r in csv.DictReader(f)]
    m_eval = float(re.search(r"^eval 1/1: loss ([^ ,]+)", out, re.M).group(1))

    model = torch_model(name, os.path.join(digits, f"{name}.onnx"))
    opt = adam(model)
    x, y = torch_data(pdata, inp)
    t_losses = []
    torch_epoch(model, opt, x, y, PARITY_STEPS, False, t_losses)
    t_eval = evaluate(model, *torch_data(test, inp), False)[0]
    if len(m_losses) != PARITY_STEPS:
        raise RuntimeError(f"{log}: {len(m_losses)} steps, wanted {PARITY_STEPS}")
    rel = [abs(a - b) / abs(b) for a, b in zip(m_losses, t_losses)]
    return {"mpcc_loss": m_losses[-1], "torch_loss": t_losses[-1], "rel": rel[-1],
            "max_rel": max(rel), "max_rel_step": rel.index(max(rel)) + 1,
            "mpcc_test_loss": m_eval, "torch_test_loss": t_eval,
            "test_rel": abs(m_eval - t_eval) / abs(t_eval)}
