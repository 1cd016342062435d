"""Times mpcc against ONNX Runtime on one model, interleaved.

usage: python bench.py MPCC PLAN MODEL_DIR THREADS ROUNDS N
Runs ROUNDS rounds; each round runs `mpcc run PLAN --bench N` (3 warm-ups,
median of N) and then N ORT runs after 3 warm-ups, in the same process
order every round, and reports the median over rounds of each. Peak RSS of
each side is measured in a child process (ru_maxrss): mpcc's is the whole
CLI, ORT's a minimal Python script running the model once. Prints one JSON
line.
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


def main():
    mpcc, plan, mdir, threads, rounds, n = sys.argv[1:7]
    threads, rounds, n = int(threads), int(rounds), int(n)
    model = os.path.join(mdir, "model.onnx")
    inputs = {os.path.basename(f)[6:-4]: f for f in glob.glob(os.path.join(mdir, "input_*.npy"))}
    env = dict(os.environ, MPCC_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    sess = ort_session(model, threads)
    feeds = {k: np.load(v) for k, v in inputs.items()}
    mpcc_cmd = [mpcc, "run", plan, "--bench", str(n)]
    for k, v in inputs.items():
        mpcc_cmd += ["--input", f"{k}={v}"]
    m_med, o_med = [], []
    with tempfile.TemporaryDirectory() as tmp:
        mpcc_cmd += ["--output-dir", tmp]
        for _ in range(3):
            sess.run(None, feeds)
        for _ in range(rounds):
            r = subprocess.run(mpcc_cmd, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"mpcc failed: {r.stderr[-500:]}")
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("median_ms=")][0]
            m_med.append(float(line.split()[0].split("=")[1]))
            t = []
            for _ in range(n):
                t0 = time.perf_counter()
                sess.run(None, feeds)
                t.append((time.perf_counter() - t0) * 1e3)
            o_med.append(statistics.median(t))
        # peak RSS, one child each (RUSAGE_CHILDREN is a running maximum, so mpcc first)
        rss_cmd = [c for c in mpcc_cmd]
        rss_cmd[rss_cmd.index("--bench") + 1] = "1"
        _, m_rss = child_maxrss_kb(rss_cmd, env)
        o_out, _ = child_maxrss_kb([sys.executable, "-c", ORT_RSS, model, str(threads)] +
                                   [f"{k}={v}" for k, v in inputs.items()], env)
        o_rss = int(o_out.strip().splitlines()[-1])
    print(json.dumps({"mpcc_ms": statistics.median(m_med), "ort_ms": statistics.median(o_med),
                      "mpcc_rss_kb": m_rss, "ort_rss_kb": o_rss}))


if __name__ == "__main__":
    main()
