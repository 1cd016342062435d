#!/usr/bin/env python3
"""Formats scripts/gpu-check.sh's results as the Markdown table it prints last.

usage: python3 bench/gpu/report.py --checks CHECKS.tsv --mpcc MPCC.tsv
           --torch TORCH.json --device TEXT [--peak-tflops 989] [--stamp S]

Standard library only. CHECKS.tsv: "name<TAB>result" per line. MPCC.tsv, what
gpu-check measured with mpcc (tab-separated):
  matmul  N DTYPE MS             the MatMul kernel's median device time (--profile)
  eltwise DTYPE MS LAUNCHES ELEMS  the fused chain's kernel time, its launch count
  e2e     MODEL PRECISION MS PROFILE_MS   `mpcc run --bench` median (host, copies
                                  included) and --profile's kernel sum (device)
A missing figure prints as "n/a" (the dry run has none), so the plumbing is
the same with and without a GPU.
"""
import argparse
import json
import os

BYTES = {"f32": 4, "f16": 2, "bf16": 2}
GOAL_MATMUL, GOAL_ELTWISE = 0.70, 0.80


def fmt(x, spec=".1f"):
    return "n/a" if x is None else format(x, spec)


def ratio(a, b):
    return a / b if a is not None and b else None


def read_tsv(path):
    rows = []
    if path and os.path.exists(path):
        with open(path) as f:
            rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return rows


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checks")
    ap.add_argument("--mpcc")
    ap.add_argument("--torch")
    ap.add_argument("--device", default="?")
    ap.add_argument("--stamp", default="")
    # H200 SXM dense bf16/f16 tensor-core peak, 989 TFLOP/s (without sparsity):
    # NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200/), the H100 SXM's rate.
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    a = ap.parse_args()
    torch = {}
    if a.torch and os.path.exists(a.torch):
        with open(a.torch) as f:
            torch = json.load(f)
    mp = read_tsv(a.mpcc)
    out = []
    w = out.append

    w(f"# gpu-check {a.stamp}")
    w("")
    w(f"device: {a.device}; torch {torch.get('torch', 'n/a')} (CUDA {torch.get('cuda', 'n/a')});"
      f" bf16/f16 dense peak {a.peak_tflops:g} TFLOP/s (datasheet); device-to-device copy"
      f" {fmt(torch.get('bandwidth_gbs'), '.0f')} GB/s (measured, read + write)")
    w("")
    w("| check | result |")
    w("|---|---|")
    for row in read_tsv(a.checks):
        w(f"| {row[0]} | {row[1] if len(row) > 1 else ''} |")
    w("")

    w("Matrix kernels: C = A @ B, [n, n] 16-bit operands in device memory, f32 accumulation;"
      " mpcc: its MatMul kernel alone (`--profile`, CUDA events, median);"
      " cuBLAS: torch.matmul (CUDA events, median).")
    w("")
    w("| n | dtype | mpcc TFLOP/s | cuBLAS TFLOP/s | mpcc / cuBLAS | mpcc % of peak | cuBLAS % of peak |")
    w("|---:|---|---:|---:|---:|---:|---:|")
    tmm = {(m["n"], m["dtype"]): m for m in torch.get("matmul", [])}
    goal_mm = None
    for r in (r for r in mp if r[0] == "matmul"):
        n, dt, ms = int(r[1]), r[2], num(r[3])
        tf = 2 * n**3 / (ms * 1e-3) / 1e12 if ms else None
        cb = tmm.get((n, dt), {}).get("tflops")
        q = ratio(tf, cb)
        if dt == "bf16" and n == max(int(x[1]) for x in mp if x[0] == "matmul"):
            goal_mm = q
        w(f"| {n} | {dt} | {fmt(tf)} | {fmt(cb)} | {fmt(q, '.2f')} |"
          f" {fmt(None if tf is None else 100 * tf / a.peak_tflops)} |"
          f" {fmt(None if cb is None else 100 * cb / a.peak_tflops)} |")
    w("")

    bw = torch.get("bandwidth_gbs")
    w("Elementwise: y = tanh(x * a + b) * c, one read of x and one write of y counted;"
      " mpcc: its one fused kernel (`--profile`); torch eager (4 kernels) and torch.compile.")
    w("")
    w("| dtype | mpcc launches | mpcc ms | mpcc GB/s | mpcc % of copy bandwidth | eager GB/s | torch.compile GB/s |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    tel = {(e["dtype"], e["mode"]): e for e in torch.get("eltwise", [])}
    goal_el = None
    for r in (r for r in mp if r[0] == "eltwise"):
        dt, ms, launches, elems = r[1], num(r[2]), r[3], num(r[4])
        gbs = 2 * elems * BYTES[dt] / (ms * 1e-3) / 1e9 if ms and elems else None
        pct = ratio(gbs, bw)
        goal_el = pct if goal_el is None or (pct or 0) > goal_el else goal_el
        w(f"| {dt} | {launches} | {fmt(ms, '.4f')} | {fmt(gbs, '.0f')} |"
          f" {fmt(None if pct is None else 100 * pct)} |"
          f" {fmt(tel.get((dt, 'eager'), {}).get('gbs'), '.0f')} |"
          f" {fmt(tel.get((dt, 'compile'), {}).get('gbs'), '.0f')} |")
    w("")

    tmo = {(m["model"], m["mode"]): m for m in torch.get("models", [])}
    e2e = {(r[1], r[2]): (num(r[3]), num(r[4])) for r in mp if r[0] == "e2e"}
    w("End to end, host wall clock of one inference from host input to host output (ms,"
      " median): mpcc `run --bench` (inputs copied in, one CUDA graph, outputs copied out,"
      " one synchronisation); torch: input .to('cuda'), forward, output .cpu(). Same batch"
      " as the model tests.")
    w("")
    w("| model | mpcc fp32 | mpcc fp16 | mpcc bf16 | eager fp32 | eager autocast fp16 |"
      " eager autocast bf16 | compile fp32 | compile autocast bf16 | mpcc bf16 / compile autocast bf16 |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    goal_e2e = []
    for model in ("transformer", "cnn"):
        m = {p: e2e.get((model, p), (None, None))[0] for p in ("fp32", "fp16", "bf16")}
        t = {k: tmo.get((model, k), {}).get("host_ms") for k in
             ("eager fp32", "eager autocast fp16", "eager autocast bf16", "compile fp32",
              "compile autocast bf16")}
        q = ratio(m["bf16"], t["compile autocast bf16"])
        goal_e2e.append(q)
        w(f"| {model} | " + " | ".join(fmt(m[p], ".3f") for p in ("fp32", "fp16", "bf16")) + " | "
          + " | ".join(fmt(v, ".3f") for v in t.values()) + f" | {fmt(q, '.2f')} |")
    w("")
    w("Device time only (ms): mpcc, the sum of its kernels' median times (`--profile`:"
      " launched one by one, gaps between launches not counted); torch, CUDA events around"
      " the forward pass on a device-resident input (gaps between eager launches counted).")
    w("")
    w("| model | mpcc bf16 kernels | eager autocast bf16 | compile autocast bf16 |")
    w("|---|---:|---:|---:|")
    for model in ("transformer", "cnn"):
        w(f"| {model} | {fmt(e2e.get((model, 'bf16'), (None, None))[1], '.3f')} | "
          f"{fmt(tmo.get((model, 'eager autocast bf16'), {}).get('device_ms'), '.3f')} | "
          f"{fmt(tmo.get((model, 'compile autocast bf16'), {}).get('device_ms'), '.3f')} |")
    w("")

    def goal(ok):
        return "n/a" if ok is None else ("met" if ok else "not met")
    w("| goal (reported, not a gate) | measured | |")
    w("|---|---:|---|")
    w(f"| matrix kernels >= 70% of cuBLAS, largest bf16 | {fmt(goal_mm, '.2f')} |"
      f" {goal(None if goal_mm is None else goal_mm >= GOAL_MATMUL)} |")
    w(f"| fused elementwise >= 80% of copy bandwidth (best dtype) | {fmt(goal_el, '.2f')} |"
      f" {goal(None if goal_el is None else goal_el >= GOAL_ELTWISE)} |")
    known = [q for q in goal_e2e if q is not None]
    w(f"| end to end at or below torch.compile (bf16) | "
      f"{' / '.join(fmt(q, '.2f') for q in goal_e2e)} |"
      f" {goal(None if len(known) < len(goal_e2e) else all(q <= 1 for q in known))} |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
