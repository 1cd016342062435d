#!/usr/bin/env python3
"""The peers of mpcc's GPU numbers, timed in the same run (scripts/gpu-check.sh).

usage: python3 bench/gpu/torch_peers.py --out FILE.json [--sizes 1024,2048,4096,8192]
           [--elems-log2 26] [--n 20] [--skip-compile] [--cpu]

Writes one JSON object (and prints a line per measurement on stderr):

  device, torch, cuda                what ran
  bandwidth_gbs                      device-to-device copy of 1 GiB (x.copy_(y)),
                                     bytes read + bytes written over the median time
  matmul[]   {n, dtype, ms, tflops}  torch.matmul (cuBLAS) of two [n, n] bf16/f16
                                     matrices already on the device, 2n^3 flops
  eltwise[]  {dtype, mode, ms, gbs}  y = tanh(x * a + b) * c over 2^E elements,
                                     eager (4 kernels) and torch.compile (fused),
                                     bytes = one read of x and one write of y
  models[]   {model, mode, host_ms, device_ms}
             the transformer and CNN model tests (tests/models/make_models.py's
             own definitions, imported, same batch and shapes as mpcc's plans) in
             eager fp32, eager torch.autocast bf16 and fp16, torch.compile fp32
             and torch.compile under torch.autocast bf16.
             host_ms: host wall clock of one inference from host input to host
             output: the input's copy to the device, the forward pass, the
             output's copy back, which waits for the device; so like `mpcc run
             --bench`, whose runs copy inputs in and outputs out.
             device_ms: CUDA events around the forward pass alone on a
             device-resident input (launch gaps of eager included).

Method: every figure is the median of N timed repetitions after warm-up runs
(3, and the first call of a compiled function, which compiles); device
timings use torch.cuda.Event pairs. Inputs are seeded random normals.

--cpu is a smoke test of this script on a machine without a GPU (gpu-check's
dry run): sizes capped at 256 and 2^16 elements, N = 2, everything on the CPU with host timing, and
torch.compile left out when this torch has none; the JSON has the same keys.
"""
import argparse
import json
import os
import statistics
import sys
import time
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "models"))
from make_models import build_models  # noqa: E402  (the model tests' own definitions)

A, B, C = 0.75, 0.125, 1.5  # as bench/gpu/make_models.py
WARMUP = 3


def log(msg):
    print(f"torch_peers: {msg}", file=sys.stderr, flush=True)


class Timer:
    def __init__(self, dev):
        self.cuda = dev.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def device_ms(self, fn, n):
        """Median ms of fn() by events (host clock on the CPU), after warm-up."""
        for _ in range(WARMUP):
            fn()
        self.sync()
        ts = []
        for _ in range(n):
            if self.cuda:
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                fn()
                e.record()
                e.synchronize()
                ts.append(s.elapsed_time(e))
            else:
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ts)

    def host_ms(self, fn, n):
        """Median host wall-clock ms of fn(), which must end synchronised."""
        for _ in range(WARMUP):
            fn()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ts)


def has_compile():
    return hasattr(torch, "compile")


def bandwidth(dev, t, n, cpu):
    count = (1 << 16) if cpu else (1 << 28)  # f32: 1 GiB on the GPU
    x = torch.randn(count, device=dev)
    y = torch.empty_like(x)
    ms = t.device_ms(lambda: y.copy_(x), n)
    gbs = 2 * x.numel() * 4 / (ms * 1e-3) / 1e9
    log(f"device-to-device copy: {ms:.4f} ms, {gbs:.0f} GB/s")
    return gbs


def matmuls(dev, t, sizes, n):
    out = []
    for size in sizes:
        for name, dt in (("bf16", torch.bfloat16), ("f16", torch.float16)):
            if dev.type == "cpu" and dt == torch.float16:
                dt = torch.float32  # no f16 matmul on the CPU of old torch: smoke only
            g = torch.Generator(device=dev).manual_seed(size)
            a = torch.randn(size, size, device=dev, generator=g).to(dt)
            b = torch.randn(size, size, device=dev, generator=g).to(dt)
            ms = t.device_ms(lambda: torch.matmul(a, b), n)
            tf = 2 * size**3 / (ms * 1e-3) / 1e12
            log(f"matmul {size} {name}: {ms:.4f} ms, {tf:.1f} TFLOP/s")
            out.append({"n": size, "dtype": name, "ms": ms, "tflops": tf})
    return out


def eltwise(dev, t, elems_log2, n, skip_compile):
    out = []

    def chain(x):
        return torch.tanh(x * A + B) * C

    compiled = torch.compile(chain) if has_compile() and not skip_compile else None
    for name, dt, size in (("f32", torch.float32, 4), ("f16", torch.float16, 2)):
        if dev.type == "cpu" and dt == torch.float16:
            continue
        x = torch.randn(1 << elems_log2, device=dev).to(dt)
        for mode, fn in (("eager", chain), ("compile", compiled)):
            if fn is None:
                continue
            ms = t.device_ms(lambda: fn(x), n)
            gbs = 2 * x.numel() * size / (ms * 1e-3) / 1e9
            log(f"eltwise {name} {mode}: {ms:.4f} ms, {gbs:.0f} GB/s")
            out.append({"dtype": name, "mode": mode, "ms": ms, "gbs": gbs})
    return out


def models(dev, t, n, skip_compile):
    out = []
    specs = {name: (model, inputs) for name, model, inputs, _, _ in build_models()}
    for name in ("transformer", "cnn"):
        model, inputs = specs[name]
        model = model.to(dev).eval()
        host_inputs = [x.clone() for x in inputs]
        dev_inputs = [x.to(dev) for x in inputs]
        modes = [("eager fp32", model, None), ("eager autocast bf16", model, torch.bfloat16),
                 ("eager autocast fp16", model, torch.float16)]
        if has_compile() and not skip_compile:
            modes += [("compile fp32", torch.compile(model), None),
                      ("compile autocast bf16", torch.compile(model), torch.bfloat16)]
        for mode, fn, dt in modes:
            def forward(xs, fn=fn, dt=dt):
                with torch.no_grad(), torch.autocast(dev.type, dtype=dt, enabled=dt is not None):
                    return fn(*xs)

            def end_to_end():
                y = forward([x.to(dev) for x in host_inputs])
                return y.float().cpu()  # waits for the device

            try:
                host = t.host_ms(end_to_end, n)
                device = t.device_ms(lambda: forward(dev_inputs), n)
            except (RuntimeError, AssertionError) as e:  # e.g. fp16 autocast on an old CPU torch
                log(f"{name} {mode}: not run: {str(e).splitlines()[0][:120]}")
                continue
            log(f"{name} {mode}: host {host:.4f} ms, device {device:.4f} ms")
            out.append({"model": name, "mode": mode, "host_ms": host, "device_ms": device})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", default="1024,2048,4096,8192")
    ap.add_argument("--elems-log2", type=int, default=26)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--skip-compile", action="store_true", help="leave torch.compile out")
    ap.add_argument("--cpu", action="store_true", help="smoke test without a GPU")
    args = ap.parse_args()
    if args.cpu:
        warnings.filterwarnings("ignore", message="In CPU autocast")
        dev, n = torch.device("cpu"), 2
        sizes = [min(int(s), 256) for s in args.sizes.split(",") if s]
        elems = min(args.elems_log2, 16)
    else:
        if not torch.cuda.is_available():
            log("no CUDA device visible to torch")
            return 2
        dev = torch.device("cuda")
        sizes = [int(s) for s in args.sizes.split(",") if s]
        elems, n = args.elems_log2, args.n
    torch.manual_seed(0)
    t = Timer(dev)
    res = {
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu (smoke test)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "n": n,
        "bandwidth_gbs": bandwidth(dev, t, n, args.cpu),
        "matmul": matmuls(dev, t, sizes, n),
        "eltwise": eltwise(dev, t, elems, n, args.skip_compile),
        "models": models(dev, t, n, args.skip_compile),
    }
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
