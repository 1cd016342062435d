"""Writes docs/precision-comparison.md from what scripts/compare-precision.sh
gathered in its work folder:

    autocast.json            tests/models/compare_autocast.py
    converter.json           tests/models/compare_converter.py
    mpcc/<model>-<mode>.json   mpcc --dump-precision-json (absent: n/a)
    mpcc/<model>-<mode>.out/   mpcc run's outputs (absent: compile/run failed)
    mpcc/<model>-<mode>.secs   compile wall time
    mpcc/<model>-<mode>.log    mpcc's stdout and stderr

Runs with any python3 that has numpy (the script uses its venv). The error of
an mpcc plan is the relative L2 error of its output against the committed
torch f32 reference tests/models/<model>/ref_*.npy (the largest over the
outputs).
"""
import argparse
import datetime
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MATRIX_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN", "Einsum"}
LOW = {"f16", "bf16", "float16", "bfloat16"}
NA = "n/a"


def rel_l2(y, ref):
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    d = np.linalg.norm(ref)
    return float(np.linalg.norm(y - ref) / d) if d else float(np.linalg.norm(y - ref))


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def last_line(path):
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip()]
        return lines[-1] if lines else ""
    except OSError:
        return ""


def mpcc_error(model, outdir):
    folder = os.path.join(HERE, model)
    errs = []
    for f in sorted(os.listdir(folder)):
        if not (f.startswith("ref_") and f.endswith(".npy")):
            continue
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f[4:-4])
        path = os.path.join(outdir, name + ".npy")
        if not os.path.exists(path):
            return None
        errs.append(rel_l2(np.load(path), np.load(os.path.join(folder, f))))
    return max(errs) if errs else None


def matrix_share(doc):
    """Low-precision share of the matrix ops' FLOPs, from the node records;
    None when the records do not carry op, compute dtype and flops."""
    low = total = 0
    for n in doc.get("nodes") or []:
        if not isinstance(n, dict):
            return None
        op = n.get("op", n.get("op_type"))
        dt = n.get("compute", n.get("compute_dtype"))
        fl = n.get("flops")
        if op is None or fl is None or dt is None:
            return None
        if op in MATRIX_OPS:
            total += fl
            if str(dt) in LOW:
                low += fl
    return low / total if total else None


def search_cost(notes):
    """(evaluations, seconds) from auto mode's summary notes, None each when
    no line says it. Accepts "N evaluations", "evaluations: N", "N evals"
    and a time as "X s", "X ms" or "Xs"."""
    evals = secs = None
    for line in notes or []:
        line = str(line)
        m = (re.search(r"(\d+)\s+(?:evaluations?|evals?|candidate runs?|trial runs?)\b", line, re.I)
             or re.search(r"\b(?:evaluations?|evals?)\s*[:=]?\s*(\d+)", line, re.I))
        if m and evals is None:
            evals = int(m.group(1))
        m = re.search(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|seconds)\b", line)
        if m and secs is None and re.search(r"time|took|spent|search|in\s+\d", line, re.I):
            secs = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    return evals, secs


def fmt_err(x):
    return NA if x is None else f"{x:.2e}"


def fmt_share(x):
    return NA if x is None else f"{100 * x:.1f}%"


def fmt_err_tol(x, tol):
    if x is None:
        return NA
    return f"{x:.2e}" + (" (over the tolerance)" if x > tol else "")


def fmt_secs(x):
    if x is None:
        return NA
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def collect_mpcc(work, model, mode):
    base = os.path.join(work, "mpcc", f"{model}-{mode}")
    r = {"error": None, "share_all": None, "share_matrix": None, "casts": None,
         "evals": None, "secs": None, "tol": None, "compile_secs": None, "notes": [], "problem": None}
    outdir = base + ".out"
    if not os.path.isdir(outdir):
        r["problem"] = last_line(base + ".log") or "not compiled"
    else:
        r["error"] = mpcc_error(model, outdir)
    try:
        with open(base + ".secs") as f:
            r["compile_secs"] = float(f.read())
    except (OSError, ValueError):
        pass
    doc = load_json(base + ".json")
    if doc is not None:
        s = doc.get("summary", {})
        r["share_all"] = s.get("low_flops_share")
        r["casts"] = s.get("casts")
        r["notes"] = s.get("notes") or []
        r["share_matrix"] = matrix_share(doc)
        r["evals"], r["secs"] = search_cost(r["notes"])
        m = re.search(r"tolerance\s+([0-9.]+(?:[eE][-+]?[0-9]+)?)", " ".join(map(str, r["notes"])))
        r["tol"] = float(m.group(1)) if m else None
        r["schema"] = doc.get("schema")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--modes", nargs="+", required=True)
    ap.add_argument("--tol", type=float, required=True)
    ap.add_argument("--tol-source", required=True)
    ap.add_argument("--cpu", required=True)
    ap.add_argument("--mpcc", required=True)
    ap.add_argument("--flags", required=True)
    ap.add_argument("--command", required=True)
    a = ap.parse_args()

    ac = load_json(os.path.join(a.work, "autocast.json")) or {"models": {}}
    cv = load_json(os.path.join(a.work, "converter.json")) or {"models": {}}
    mp = {(m, mode): collect_mpcc(a.work, m, mode) for m in a.models for mode in a.modes}
    flags = dict(kv.split("=") for kv in a.flags.split())
    low_of = {"auto": "mixed", "fp16": "f16", "bf16": "bf16"}

    L = []
    w = L.append
    w("# Mixed precision: mpcc against torch.autocast and onnxconverter-common")
    w("")
    w(f"Written by scripts/compare-precision.sh on "
      f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}; regenerate with "
      f"`{a.command}` (or `bash scripts/compare-precision.sh BUILD_DIR` from the source "
      f"root; `TOL=X` sets the tolerance). The evidence table of issue 3.")
    w("")
    w(f"- CPU: {a.cpu}.")
    w(f"- mpcc: {a.mpcc}. torch {ac.get('torch', NA)} (Debian python3-torch); "
      f"onnx {cv.get('onnx', NA)}, onnxruntime {cv.get('onnxruntime', NA)}, "
      f"onnxconverter-common {cv.get('onnxconverter_common', NA)}, numpy {cv.get('numpy', NA)} (pip).")
    w(f"- Tolerance of both automatic searches (mpcc auto, `auto_convert_mixed_precision`): "
      f"relative L2 error {a.tol:g} against the f32 output; source: {a.tol_source}.")
    missing = []
    if flags.get("json") != "yes":
        missing.append("`--dump-precision-json` (FLOP share, casts and search cost of mpcc are n/a)")
    if flags.get("calib") != "yes":
        missing.append("`--calib` (mpcc auto calibrated on inputs of its own, not on the "
                       "committed inputs the other tools and the error column use)")
    if flags.get("tolerance") != "yes":
        missing.append("`--tolerance` (mpcc auto ran at its default tolerance)")
    if missing:
        w(f"- This mpcc lacked: {'; '.join(missing)}.")
    w("")
    w("## Method")
    w("")
    w("- **Error**: relative L2 error ‖y − y_f32‖ / ‖y_f32‖ of the model's output on the committed "
      "`input_*.npy`. mpcc and autocast are measured against torch's f32 output (`ref_*.npy`; "
      "compare_autocast.py rebuilds each model with make_models.py's builders and checks that its "
      "f32 run reproduces `ref_*.npy`); onnxconverter-common against ONNX Runtime's f32 run of the "
      "same model.onnx.")
    w("- **Low-precision share of matrix FLOPs** (the like-for-like column): FLOPs of MatMul/Gemm/"
      "Conv/ConvTranspose/LSTM/GRU/RNN/Einsum (torch: mm, addmm, bmm, baddbmm, addmv, mv, dot, "
      "convolution), 2 per multiply-add, attributed to the dtype the op computes in. torch: a "
      "`TorchDispatchMode` sees every aten op after autocast rewrote it, with its real dtypes. mpcc: "
      "the node records of `--dump-precision-json` (op, compute dtype, flops). onnxconverter-common: "
      "shapes from onnx shape inference; a node is f16 unless the converter blocked it.")
    w("- **Share of all FLOPs**: mpcc's `summary.low_flops_share`, which also counts elementwise ops, "
      "reductions and normalisations (docs/precision-json.md); no peer reports this.")
    w("- **Casts**: mpcc: `summary.casts`, the Cast nodes in the compiled graph (weights are converted "
      "once at compile time and are no casts). autocast: `aten._to_copy`/`aten.to`/`aten.copy_` calls "
      "that change a float dtype during one forward pass, counted by the same dispatch mode, given as "
      "total (weight casts + activation casts); autocast's weight cache converts each parameter once "
      "per autocast region. onnxconverter-common: Cast nodes added to the graph.")
    w("- **Goal** (issue 3): mpcc's error no worse than autocast's at an equal or larger "
      "low-precision share of matrix FLOPs. autocast runs bf16, so mpcc bf16 is the like-for-like "
      "row; the column is filled for every mpcc mode.")
    w("")

    w("## Error, low-precision share and casts")
    w("")
    w("| model | run | low dtype | rel. L2 error vs f32 | low share, matrix FLOPs | low share, all FLOPs (mpcc) | casts | goal vs autocast |")
    w("|---|---|---|---:|---:|---:|---:|---|")
    goal_counts = {mode: [0, 0] for mode in a.modes}
    for m in a.models:
        acm = ac["models"].get(m)
        cvm = cv["models"].get(m, {})
        for mode in a.modes:
            r = mp[(m, mode)]
            goal = NA
            share = r["share_matrix"]
            # Without node records, judge by mpcc's all-FLOP share, and say so.
            judged, by_all = (share, "") if share is not None else (r["share_all"], ", all-FLOP share")
            if acm and r["error"] is not None and judged is not None:
                ok = r["error"] <= acm["err"] and judged >= acm["low_flops_share"]
                goal = f"{'yes' if ok else 'no'} (error ×{r['error'] / acm['err']:.2f}{by_all})"
                goal_counts[mode][0] += ok
                goal_counts[mode][1] += 1
            err = fmt_err(r["error"]) if not r["problem"] else f"{NA} ({cell(r['problem'])})"
            w(f"| {m} | mpcc {mode} | {low_of.get(mode, mode)} | {err} | {fmt_share(share)} | "
              f"{fmt_share(r['share_all'])} | {NA if r['casts'] is None else r['casts']} | {goal} |")
        if acm:
            casts = (f"{acm['casts']} ({acm['casts_weights']} weight + "
                     f"{acm['casts_activations']} activation)")
            w(f"| {m} | torch.autocast | bf16 | {fmt_err(acm['err'])} | "
              f"{fmt_share(acm['low_flops_share'])} | {NA} | {casts} | |")
        else:
            w(f"| {m} | torch.autocast | bf16 | {NA} | {NA} | {NA} | {NA} | |")
        for key, label in (("fp16", "converter fp16"), ("auto", "converter auto")):
            c = cvm.get(key, {})
            low = "f16" if key == "fp16" else "mixed"
            err = fmt_err(c.get("err"))
            if "err" not in c:
                err = f"{NA} ({cell(c.get('error') or c.get('ort_run') or c.get('ort_load') or '')})"
            w(f"| {m} | {label} | {low} | {err} | {fmt_share(c.get('low_flops_share'))} | {NA} | "
              f"{c.get('casts', NA)} | |")
    w("")
    for mode in a.modes:
        n_ok, n = goal_counts[mode]
        if n:
            w(f"- mpcc {mode}: goal met on {n_ok} of {n} models.")
    w("")

    w(f"## Automatic search at tolerance {a.tol:g}")
    w("")
    w("Evaluations: candidate precision assignments run to check them against the tolerance. "
      "mpcc: from the notes of `summary` (the lines are quoted below); onnxconverter-common: calls "
      "of `convert_float_to_float16` inside `auto_convert_mixed_precision` (each is one candidate "
      "run in ONNX Runtime, the final check included), counted by wrapping the function; ORT "
      "sessions counts every `InferenceSession` it created, dtype discovery and the f32 run "
      "included. Time: wall clock of the whole search (mpcc: as its notes report it; compile: the "
      "whole `mpcc` compile command). Tolerance: mpcc's as its notes state it (n/a: they do not).")
    w("")
    w("| model | search | tolerance | evaluations | time | compile | low share, matrix FLOPs | casts | rel. L2 error vs f32 | graph valid (checker / ORT) |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for m in a.models:
        r = mp.get((m, "auto"))
        if r:
            tol = NA if r["tol"] is None else f"{r['tol']:g}"
            w(f"| {m} | mpcc auto | {tol} | "
              f"{NA if r['evals'] is None else r['evals']} | "
              f"{fmt_secs(r['secs'])} | {fmt_secs(r['compile_secs'])} | "
              f"{fmt_share(r['share_matrix'])} | {NA if r['casts'] is None else r['casts']} | "
              f"{fmt_err_tol(r['error'], a.tol)} | {'plan ran' if r['error'] is not None else NA} |")
        c = cv["models"].get(m, {}).get("auto", {})
        valid = (f"{c.get('checker', NA)} / {c.get('ort_run', c.get('ort_load', NA))}"
                 if "error" not in c else f"search failed: {c['error']}")
        w(f"| {m} | converter auto | {a.tol:g} | {c.get('evaluations', NA)} ({c.get('ort_sessions', NA)} ORT sessions) | "
          f"{fmt_secs(c.get('seconds'))} | | {fmt_share(c.get('low_flops_share'))} | "
          f"{c.get('casts', NA)} | {fmt_err_tol(c.get('err'), a.tol)} | {cell(valid)} |")
    w("")

    w("## onnxconverter-common `convert_float_to_float16(keep_io_types=True)`")
    w("")
    w("| model | nodes | Cast nodes added | onnx.checker (full_check) | ORT loads | ORT runs | rel. L2 error vs f32 ORT |")
    w("|---|---:|---:|---|---|---|---:|")
    for m in a.models:
        cvm = cv["models"].get(m, {})
        c = cvm.get("fp16", {})
        if "error" in c:
            w(f"| {m} | {cvm.get('nodes', NA)} | {NA} | conversion failed: {cell(c['error'])} | | | |")
            continue
        w(f"| {m} | {cvm.get('nodes', NA)} | {c.get('casts', NA)} | {cell(c.get('checker', NA))} | "
          f"{cell(c.get('ort_load', NA))} | {cell(c.get('ort_run', NA))} | {fmt_err(c.get('err'))} |")
    w("")

    w("## mpcc auto: summary notes")
    w("")
    any_notes = False
    for m in a.models:
        r = mp.get((m, "auto"))
        if r and r["notes"]:
            any_notes = True
            w(f"- {m}: " + "; ".join(cell(n) for n in r["notes"]))
    if not any_notes:
        w(f"{NA}: no notes (no `--dump-precision-json`, or auto mode wrote none).")
    w("")
    w("## Checks")
    w("")
    checks = [f"{m} {ac['models'][m]['ref_check']:.1e}" for m in a.models if m in ac["models"]]
    w("- Rebuilt torch models against the committed `ref_*.npy` (rel. L2, f32): " + ", ".join(checks) + ".")
    checks = [f"{m} {cv['models'][m]['ref_check']:.1e}" for m in a.models if m in cv["models"]]
    w("- ONNX Runtime f32 against `ref_*.npy`: " + ", ".join(checks) + ".")
    ac_out = sorted({ac["models"][m]["out_dtype"] for m in ac["models"]})
    w(f"- autocast's outputs come out in {', '.join(ac_out)} (no cast back); their error is "
      "measured after widening to f64, as mpcc's and the converter's (f32 outputs).")
    mixed = [f"{m} {ac['models'][m]['mixed_inputs']}" for m in a.models if m in ac["models"]]
    w("- aten ops that autocast left with mixed float inputs (type promotion inside the op, no "
      "cast op; not counted as casts): " + ", ".join(mixed) + ".")
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(L) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
