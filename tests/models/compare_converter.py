"""onnxconverter-common on the four model tests: a peer column of
docs/precision-comparison.md (scripts/compare-precision.sh).

Run in a venv with onnx, onnxruntime, onnxconverter-common and numpy from pip:
    VENV/bin/python tests/models/compare_converter.py --tol X [--out FILE.json]

For each tests/models/<name>/model.onnx, on its committed input_*.npy:

- f32: ONNX Runtime (CPU) runs the model as is; its outputs are the
  reference for everything below (ref_check: their relative L2 error
  against the committed torch outputs ref_*.npy).
- fp16: float16.convert_float_to_float16(keep_io_types=True). Reports the
  Cast nodes it added, whether onnx.checker.check_model(full_check=True)
  accepts the result, whether ONNX Runtime loads and runs it (with the error
  text when not), the output's relative L2 error against f32, and the share
  of matrix FLOPs it put in f16.
- auto: auto_convert_mixed_precision(keep_io_types=True) with a validate_fn
  that accepts a candidate when every output's relative L2 error against
  the f32 run is at most --tol (the metric of mpcc's --tolerance; rtol/atol
  are not used). Reports evaluations (candidate models converted and run,
  the final one included), ONNX Runtime sessions created (dtype discovery
  and the f32 run included), wall time, and the fp16 figures above for the
  model it returns.

Matrix FLOPs (2 per multiply-add) come from shapes that onnx shape
inference gives the f32 model: MatMul, Gemm, Conv, ConvTranspose and
LSTM/GRU/RNN; a node counts as f16 when the converter did not keep it in
f32 (the node block list of the last conversion, plus the converter's
default op block list).
"""
import argparse
import contextlib
import copy
import io
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnxconverter_common import auto_mixed_precision, float16

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("mlp", "cnn", "transformer", "lstm")


def rel_l2(y, ref):
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    d = np.linalg.norm(ref)
    return float(np.linalg.norm(y - ref) / d) if d else float(np.linalg.norm(y - ref))


def one_line(e):
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


def load_feed(folder, model):
    return {i.name: np.load(os.path.join(folder, f"input_{i.name}.npy")) for i in model.graph.input
            if os.path.exists(os.path.join(folder, f"input_{i.name}.npy"))}


def run_ort(model, feed):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def shapes_of(model):
    """Static shapes of every value onnx shape inference can tell."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    out = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[vi.name] = [d.dim_value for d in dims]
    for t in g.initializer:
        out[t.name] = list(t.dims)
    return out


def prod(xs):
    n = 1
    for x in xs:
        n *= int(x)
    return n


def node_flops(node, shapes):
    """Matrix FLOPs of one node, 0 for other ops, None when shapes are unknown."""
    s = lambda i: shapes.get(node.input[i]) if i < len(node.input) and node.input[i] else None
    o = shapes.get(node.output[0]) if node.output else None
    op = node.op_type
    try:
        if op == "MatMul":
            return 2 * prod(o) * s(0)[-1]
        if op == "Gemm":
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            k = s(0)[0] if trans_a else s(0)[1]
            return 2 * prod(o) * k
        if op == "Conv":
            return 2 * prod(o) * prod(s(1)[1:])
        if op == "ConvTranspose":
            return 2 * prod(s(0)) * prod(s(1)[1:])
        if op in ("LSTM", "GRU", "RNN"):
            x, w, r = s(0), s(1), s(2)  # X [T, B, I], W [D, G*H, I], R [D, G*H, H]
            layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
            t, b = (x[1], x[0]) if layout else (x[0], x[1])
            return 2 * t * b * w[0] * w[1] * (w[2] + r[2])
    except (TypeError, IndexError):
        return None
    return 0


def flop_share(model, shapes, blocked_nodes, op_block_list):
    blocked_nodes = set(blocked_nodes or [])
    ops = set(op_block_list)
    low = total = 0
    unknown = 0
    for n in model.graph.node:
        f = node_flops(n, shapes)
        if f is None:
            unknown += 1
            continue
        total += f
        if n.name not in blocked_nodes and n.op_type not in ops:
            low += f
    return (low / total if total else 0.0), unknown


def count_casts(model):
    return sum(1 for n in model.graph.node if n.op_type == "Cast")


def judge(converted, original, feed, ref):
    """Cast count, checker, ORT load/run and error of a converted model."""
    r = {"casts": count_casts(converted) - count_casts(original)}
    try:
        onnx.checker.check_model(converted, full_check=True)
        r["checker"] = "ok"
    except Exception as e:  # noqa: BLE001 - the text is the result
        r["checker"] = one_line(e)
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(converted.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        r["ort_load"] = "ok"
    except Exception as e:  # noqa: BLE001
        r["ort_load"] = one_line(e)
        return r
    try:
        ys = sess.run(None, feed)
        r["ort_run"] = "ok"
        r["err"] = max(rel_l2(y, y0) for y, y0 in zip(ys, ref))
    except Exception as e:  # noqa: BLE001
        r["ort_run"] = one_line(e)
    return r


class Spy:
    """Counts what auto_convert_mixed_precision does, by wrapping the
    functions it looks up at call time: float16.convert_float_to_float16
    (one call per candidate) and onnxruntime.InferenceSession."""

    def __init__(self):
        self.conversions = 0
        self.sessions = 0
        self.last_block_list = None
        self.validations = 0

    @contextlib.contextmanager
    def installed(self):
        convert, session = float16.convert_float_to_float16, ort.InferenceSession
        spy = self

        def counting_convert(*args, **kwargs):
            spy.conversions += 1
            spy.last_block_list = kwargs.get("node_block_list")
            return convert(*args, **kwargs)

        class CountingSession(session):
            def __init__(self, *args, **kwargs):
                spy.sessions += 1
                super().__init__(*args, **kwargs)

        float16.convert_float_to_float16 = counting_convert
        ort.InferenceSession = CountingSession
        try:
            yield self
        finally:
            float16.convert_float_to_float16 = convert
            ort.InferenceSession = session


def measure(name, tol):
    folder = os.path.join(HERE, name)
    model = onnx.load(os.path.join(folder, "model.onnx"))
    feed = load_feed(folder, model)
    ref = run_ort(model, feed)
    ref_check = max(rel_l2(y, np.load(os.path.join(folder, f"ref_{o.name}.npy")))
                    for y, o in zip(ref, model.graph.output))
    shapes = shapes_of(model)
    op_block = list(float16.DEFAULT_OP_BLOCK_LIST)
    res = {"ref_check": ref_check, "nodes": len(model.graph.node)}

    try:
        fp16 = float16.convert_float_to_float16(copy.deepcopy(model), keep_io_types=True)
        res["fp16"] = judge(fp16, model, feed, ref)
        res["fp16"]["low_flops_share"], _ = flop_share(model, shapes, [], op_block)
    except Exception as e:  # noqa: BLE001
        res["fp16"] = {"error": one_line(e)}

    spy = Spy()

    def within_tol(r0, r1):
        spy.validations += 1
        return all(rel_l2(b, a) <= tol for a, b in zip(r0, r1))

    log = io.StringIO()
    t0 = time.perf_counter()
    try:
        with spy.installed(), contextlib.redirect_stdout(log):
            auto = auto_mixed_precision.auto_convert_mixed_precision(
                copy.deepcopy(model), feed, validate_fn=within_tol, keep_io_types=True)
        secs = time.perf_counter() - t0
        res["auto"] = judge(auto, model, feed, ref)
        res["auto"]["low_flops_share"], _ = flop_share(model, shapes, spy.last_block_list, op_block)
        res["auto"]["nodes_kept_f32"] = len(spy.last_block_list or [])
    except Exception as e:  # noqa: BLE001
        secs = time.perf_counter() - t0
        res["auto"] = {"error": one_line(e)}
    res["auto"].update({"evaluations": spy.conversions, "ort_sessions": spy.sessions,
                        "seconds": secs, "tol": tol})
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tol", type=float, required=True,
                    help="relative L2 error bound against f32 for the automatic search")
    ap.add_argument("--out", help="write the JSON here (default: stdout)")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    import onnxconverter_common
    res = {"onnx": onnx.__version__, "onnxruntime": ort.__version__,
           "onnxconverter_common": onnxconverter_common.__version__,
           "numpy": np.__version__, "tol": args.tol, "models": {}}
    for name in args.models:
        r = measure(name, args.tol)
        res["models"][name] = r
        f, a = r["fp16"], r["auto"]
        print(f"compare_converter: {name}: fp16 casts {f.get('casts', 'n/a')}, "
              f"ort {f.get('ort_run', f.get('ort_load', f.get('error')))}; auto "
              f"{a.get('evaluations')} evaluations, {a['seconds']:.2f} s, "
              f"{a.get('error', 'ok')}", file=sys.stderr)
    text = json.dumps(res, indent=1, sort_keys=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
