"""Times mpcc against ONNX Runtime on one model, interleaved.

usage: python bench.py MPCC MODEL_DIR THREADS ROUNDS N PLAN [PLAN...]
Runs ROUNDS rounds; each round runs `mpcc run PLAN --bench N` (3 warm-ups,
median of N) for every PLAN in turn and then N ORT runs after 3 warm-ups,
in the same process order every round, and reports the median over rounds
of each. Peak RSS of each side is measured in a child process (ru_maxrss)
for the first PLAN: mpcc's is the whole CLI, ORT's a minimal Python script
running the model once. ORT's kernel count is the node count of the graph
ORT optimised. Prints one JSON line: mpcc_ms is a list, one per PLAN.
"""
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort


def ort_session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_node_count(model, threads):
    """Nodes in the graph ORT runs after its optimisations (its kernels)."""
    import onnx
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3  # not the warning that the saved graph is host-specific
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        return len(onnx.load(so.optimized_model_filepath, load_external_data=False).graph.node)


def child_maxrss_kb(cmd, env):
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {err.decode()[-500:]}")
    return out.decode(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


ORT_RSS = """
import sys, numpy as np, onnxruntime as ort, resource
so = ort.SessionOptions(); so.intra_op_num_threads = int(sys.argv[2])
so.inter_op_num_threads = 1
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
feeds = {a.split("=", 1)[0]: np.load(a.split("=", 1)[1]) for a in sys.argv[3:]}
s.run(None, feeds)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def mpcc_command(mpcc, plan, inputs, n, outdir):
    cmd = [mpcc, "run", plan, "--bench", str(n), "--output-dir", outdir]
    for k, v in inputs.items():
        cmd += ["--input", f"{k}={v}"]
    return cmd


def main():
    mpcc, mdir, threads, rounds, n = sys.argv[1:6]
    plans = sys.argv[6:]
    threads, rounds, n = int(threads), int(rounds), int(n)
    model = os.path.join(mdir, "model.onnx")
    inputs = {os.path.basename(f)[6:-4]: f for f in glob.glob(os.path.join(mdir, "input_*.npy"))}
    env = dict(os.environ, MPCC_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    sess = ort_session(model, threads)
    feeds = {k: np.load(v) for k, v in inputs.items()}
    m_med, o_med = [[] for _ in plans], []
    with tempfile.TemporaryDirectory() as tmp:
        cmds = [mpcc_command(mpcc, p, inputs, n, tmp) for p in plans]
        for _ in range(3):
            sess.run(None, feeds)
        for _ in range(rounds):
            for i, cmd in enumerate(cmds):
                r = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError(f"mpcc failed on {plans[i]}: {r.stderr[-500:]}")
                line = [ln for ln in r.stdout.splitlines() if ln.startswith("median_ms=")][0]
                m_med[i].append(float(line.split()[0].split("=")[1]))
            t = []
            for _ in range(n):
                t0 = time.perf_counter()
                sess.run(None, feeds)
                t.append((time.perf_counter() - t0) * 1e3)
            o_med.append(statistics.median(t))
        # peak RSS, one child each (RUSAGE_CHILDREN is a running maximum, so mpcc first)
        _, m_rss = child_maxrss_kb(mpcc_command(mpcc, plans[0], inputs, 1, tmp), env)
        o_out, _ = child_maxrss_kb([sys.executable, "-c", ORT_RSS, model, str(threads)] +
                                   [f"{k}={v}" for k, v in inputs.items()], env)
        o_rss = int(o_out.strip().splitlines()[-1])
    print(json.dumps({"mpcc_ms": [statistics.median(m) for m in m_med],
                      "ort_ms": statistics.median(o_med),
                      "mpcc_rss_kb": m_rss, "ort_rss_kb": o_rss,
                      "ort_nodes": ort_node_count(model, threads)}))


if __name__ == "__main__":
    main()
