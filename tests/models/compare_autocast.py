#!/usr/bin/python3
"""torch.autocast on the CPU (bf16) on the four model tests: the peer column
of docs/precision-comparison.md (scripts/compare-precision.sh).

Run with Debian's python3 (it has torch):
    /usr/bin/python3 tests/models/compare_autocast.py [--out FILE.json]

Rebuilds each model with make_models.build_models() (same seeds, so the same
weights as the committed model.onnx), runs it in f32 and under
torch.autocast("cpu", dtype=torch.bfloat16) on the committed input_*.npy,
and reports per model:

- err: relative L2 error ||y_autocast - y_f32|| / ||y_f32|| of the output;
  ref_check: the same norm between the fresh f32 run and the committed
  ref_*.npy, which shows the rebuilt model is the exported one.
- FLOPs per dtype: a TorchDispatchMode sees every aten op after autocast has
  rewritten it, with the dtypes it really ran in. Matrix ops (mm, addmm, bmm,
  baddbmm, addmv, mv, dot, convolution) count 2*M*N*K multiply-adds
  (convolution: 2 * output elements * C_in/groups * kernel size), attributed
  to the dtype of their (first) matrix operand; other ops are not counted.
- casts: aten._to_copy / aten.to / aten.copy_ calls whose floating dtype
  differs between input and output, split into casts of parameters and
  buffers (weights, which mpcc converts once at compile time) and casts of
  activations. Ops that autocast left with mixed float inputs (computed by
  type promotion, no cast op) are counted apart as `mixed_inputs`.
The tensors go through the mode with torch.no_grad(), one forward pass per
autocast context, so autocast's weight-cast cache converts each weight once.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ beside the committed models
import make_models  # noqa: E402  (builders only; importing exports nothing)

FLOAT = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
aten = torch.ops.aten


def numel(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def matrix_flops(func, args, out):
    """(FLOPs, 2 per multiply-add, and the operand whose dtype the op
    computes in) of a matrix op; None for any other op."""
    p = func.overloadpacket
    if p in (aten.mm, aten.bmm):
        a, b = args[0], args[1]
        return 2 * numel(a.shape) * b.shape[-1], a
    if p in (aten.addmm, aten.baddbmm, aten.addbmm):
        a, b = args[1], args[2]
        return 2 * numel(a.shape) * b.shape[-1], a
    if p in (aten.mv, aten.addmv, aten.dot):
        a = args[1] if p is aten.addmv else args[0]
        return 2 * numel(a.shape), a
    if p in (aten.convolution, aten._convolution, aten.mkldnn_convolution):
        # weight [C_out, C_in/groups, k...]: each output element costs
        # C_in/groups * prod(k) multiply-adds; transposed, each input element
        # does (weight [C_in, C_out/groups, k...]).
        x, w = args[0], args[1]
        transposed = p is not aten.mkldnn_convolution and bool(args[6])
        return 2 * numel((x if transposed else out).shape) * numel(w.shape[1:]), x
    return None


def float_dtypes(args):
    return [a.dtype for a in args if isinstance(a, torch.Tensor) and a.dtype in FLOAT]


class Counter(TorchDispatchMode):
    """Counts FLOPs by the dtype they ran in and the dtype conversions."""

    def __init__(self, weight_ptrs):
        super().__init__()
        self.weight_ptrs = weight_ptrs
        self.flops = {}
        self.casts = {"weights": 0, "activations": 0}
        self.cast_kinds = {}
        self.mixed_inputs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        p = func.overloadpacket
        if p in (aten._to_copy, aten.to, aten.copy_):
            src = args[1] if p is aten.copy_ else args[0]
            dst = out[0] if isinstance(out, (tuple, list)) else out
            if (isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor)
                    and src.dtype in FLOAT and dst.dtype in FLOAT and src.dtype != dst.dtype):
                kind = "weights" if src.data_ptr() in self.weight_ptrs else "activations"
                self.casts[kind] += 1
                key = f"{str(src.dtype)[6:]}->{str(dst.dtype)[6:]}"
                self.cast_kinds[key] = self.cast_kinds.get(key, 0) + 1
            return out
        mf = matrix_flops(func, args, out)
        if mf is not None:
            fl, operand = mf
            name = str(operand.dtype)[6:]
            self.flops[name] = self.flops.get(name, 0) + fl
        elif len(set(float_dtypes(args))) > 1:
            self.mixed_inputs += 1
        return out


def rel_l2(y, ref):
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    d = np.linalg.norm(ref)
    return float(np.linalg.norm(y - ref) / d) if d else float(np.linalg.norm(y - ref))


def load_inputs(name, input_names):
    folder = os.path.join(HERE, name)
    return [torch.from_numpy(np.load(os.path.join(folder, f"input_{n}.npy"))) for n in input_names]


def as_tuple(y):
    return y if isinstance(y, tuple) else (y,)


def measure(name, model, input_names, output_names):
    folder = os.path.join(HERE, name)
    model.eval()
    inputs = load_inputs(name, input_names)
    with torch.no_grad():
        y32 = as_tuple(model(*inputs))
    weights = {t.data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    counter = Counter(weights)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), counter:
        ylow = as_tuple(model(*inputs))
    errs, ref_checks = [], []
    for n, a, b in zip(output_names, ylow, y32):
        errs.append(rel_l2(a.float().numpy(), b.numpy()))
        ref = np.load(os.path.join(folder, f"ref_{n}.npy"))
        ref_checks.append(rel_l2(b.numpy(), ref))
    total = sum(counter.flops.values())
    low = sum(v for k, v in counter.flops.items() if k in ("bfloat16", "float16"))
    return {
        "err": max(errs),
        "ref_check": max(ref_checks),
        "out_dtype": str(ylow[0].dtype)[6:],
        "flops": counter.flops,
        "low_flops_share": low / total if total else 0.0,
        "casts": counter.casts["weights"] + counter.casts["activations"],
        "casts_weights": counter.casts["weights"],
        "casts_activations": counter.casts["activations"],
        "cast_kinds": counter.cast_kinds,
        "mixed_inputs": counter.mixed_inputs,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="write the JSON here (default: stdout)")
    ap.add_argument("--models", nargs="*", help="only these models")
    args = ap.parse_args()
    torch.set_num_threads(1)  # deterministic reductions; these models are tiny
    res = {"torch": torch.__version__, "models": {}}
    for name, model, _inputs, input_names, output_names in make_models.build_models():
        if args.models and name not in args.models:
            continue
        r = measure(name, model, input_names, output_names)
        if r["ref_check"] > 1e-5:
            print(f"compare_autocast: {name}: rebuilt model differs from ref_*.npy "
                  f"(rel. L2 {r['ref_check']:.2e}); make_models.py and the committed "
                  f"files disagree", file=sys.stderr)
            return 1
        res["models"][name] = r
        print(f"compare_autocast: {name}: err {r['err']:.3e}, bf16 FLOPs "
              f"{100 * r['low_flops_share']:.1f}%, casts {r['casts']} "
              f"({r['casts_weights']} weights)", file=sys.stderr)
    text = json.dumps(res, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
