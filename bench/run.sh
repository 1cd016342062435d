#!/usr/bin/env bash
# Benchmarks mpcc against ONNX Runtime on the CPU; writes bench/RESULTS.md.
# usage: bash bench/run.sh [BUILD_DIR]   (from the source root; `make bench`)
#
# Installs onnxruntime with pip into BUILD_DIR/bench-venv when missing
# (benchmarks may use PyPI; the build and the tests never do), exports the
# larger models with Debian's python3 + torch into BUILD_DIR/bench-models,
# then times every model of tests/models and bench-models with bench/bench.py
# (interleaved rounds, medians after warm-up, same thread count both sides).
# ROUNDS, N and THREADS override the defaults.
#
# Then the training section (issue 5): one training step of the digits MLP
# and CNN (scripts/make_digits.py, into BUILD_DIR/bench-digits), mpcc fp32,
# bf16 and fp16 against torch f32 and autocast bf16 on the CPU, and mpcc's
# fp32 loss against torch's after 100 steps, by bench/train_bench.py with
# Debian's python3 (its docstring has the method). TRAIN_ROUNDS (3) and
# TRAIN_N (5, timed chunks of 10 steps per round) override its defaults;
# TRAIN=0 leaves it out.
set -euo pipefail
build=${1:-build}
rounds=${ROUNDS:-5}
n=${N:-10}
threads=${THREADS:-$(nproc)}
train_rounds=${TRAIN_ROUNDS:-3}
train_n=${TRAIN_N:-5}
train=${TRAIN:-1}
digits=$build/bench-digits
venv=$build/bench-venv
models=$build/bench-models
plans=$build/bench-plans
out=bench/RESULTS.md

if ! "$venv/bin/python" -c "import onnxruntime, numpy, onnx" 2>/dev/null; then
  echo "bench: installing onnxruntime and onnx into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet onnxruntime numpy onnx
fi
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: Debian's python3-torch is missing (apt-get install python3-torch)" >&2
    exit 1
  fi
  echo "bench: installing python3-torch (apt) to export the benchmark models" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch >&2
fi
if [ "$train" != 0 ] && ! /usr/bin/python3 -c "import onnx, sklearn" 2>/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: the training section needs Debian's python3-onnx and python3-sklearn" \
      "(apt-get install them, or TRAIN=0)" >&2
    exit 1
  fi
  echo "bench: installing python3-onnx and python3-sklearn (apt) for the training section" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3-onnx python3-sklearn >&2
fi
if [ ! -f "$models/.done" ]; then
  echo "bench: exporting benchmark models into $models" >&2
  /usr/bin/python3 bench/make_bench_models.py "$models"
  touch "$models/.done"
fi
mkdir -p "$plans"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
flags=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2- | tr ' ' '\n' |
  grep -E '^(sse4_2|avx|avx2|fma|avx512f|avx512bw|avx512vl|avx512_bf16|avx512_fp16|amx_tile|amx_bf16|f16c)$' |
  tr '\n' ' ')
ortv=$("$venv/bin/python" -c "import onnxruntime; print(onnxruntime.__version__)")
tmp=$(mktemp)
low=$(mktemp)
trn=$(mktemp)
trap 'rm -f "$tmp" "$low" "$trn"' EXIT
{
  echo "# mpcc vs ONNX Runtime, CPU"
  echo
  echo "Written by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%d)."
  echo
  echo "- CPU: $cpu, $(nproc) cores visible; flags: $flags"
  echo "- ONNX Runtime $ortv (pip), graph optimisations on (ORT_ENABLE_ALL), sequential"
  echo "  executor; both sides use $threads thread(s) (MPCC_NUM_THREADS, intra_op_num_threads)."
  echo "- Latency: $rounds interleaved rounds (every mpcc plan, then ORT); each round is the"
  echo "  median of $n runs after 3 warm-ups; the tables give the median over rounds."
  echo "- Peak RSS: maximum resident set of a child process running the model once (mpcc:"
  echo "  the CLI, JIT included, f32 plan; ORT: a Python script, interpreter included)."
  echo "  mpcc arena: planned peak of intermediates against their sum (\`mpcc inspect --memory\`)."
  echo "- mpcc's RSS is dominated by the LLVM library and the JIT, not by tensors; ORT's"
  echo "  includes Python. Neither is peak *intermediate* memory, which ORT does not report."
  echo "- Kernels: mpcc's fused plan (unfused: \`--no-fuse\`, one kernel per op) against the"
  echo "  nodes of the graph ORT runs after its own fusions. Bytes moved: what mpcc's kernels"
  echo "  read and write per run, each tensor once per kernel, fused / unfused."
  echo "- Timings on a shared machine move by 10-40% between runs (other processes on the"
  echo "  same cores); ratios above 2 are meaningful, small differences are not."
  echo
  echo "## f32"
  echo
  echo "| model | mpcc ms | ORT ms | latency mpcc/ORT | mpcc RSS MiB | ORT RSS MiB | RSS mpcc/ORT | mpcc arena / sum of intermediates (MiB) | kernels mpcc (unfused) / ORT | MiB moved fused / unfused |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} > "$tmp"
{
  echo
  echo "## mpcc's low precisions against ORT's f32"
  echo
  echo "Same runs as above. bf16 and fp16 store activations and weights in 16 bits and"
  echo "compute in f32 (docs/precision.md); auto is mpcc's default (policy, calibration,"
  echo "error budget 1e-3 on random calibration data). Ratios are mpcc / ORT f32."
  echo
  echo "| model | ORT f32 ms | mpcc f32 ms | mpcc bf16 ms | mpcc fp16 ms | mpcc auto ms | f32 ratio | bf16 ratio | fp16 ratio | auto ratio |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} > "$low"
# field TEXT REGEX: the first group of REGEX on its matching line of TEXT
field() { echo "$1" | sed -n "s/^$2\$/\\1/p"; }
for dir in tests/models/*/ "$models"/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  [ -f "$dir/model.onnx" ] || continue
  echo "bench: $name" >&2
  for mode in fp32 bf16 fp16 auto; do
    "$build/mpcc" "$dir/model.onnx" -o "$plans/$name.$mode.plan" --precision $mode \
      --cuda-archs none >/dev/null
  done
  "$build/mpcc" "$dir/model.onnx" -o "$plans/$name.nofuse.plan" --precision fp32 --no-fuse \
    --cuda-archs none >/dev/null
  mem=$("$build/mpcc" inspect "$plans/$name.fp32.plan" --memory)
  unf=$("$build/mpcc" inspect "$plans/$name.nofuse.plan" --memory)
  stats="$(field "$mem" 'kernels: \([0-9]*\)') $(field "$unf" 'kernels: \([0-9]*\)')"
  stats="$stats $(field "$mem" 'memory: arena peak \([0-9]*\) bytes.*')"
  stats="$stats $(field "$mem" 'memory: .* sum \([0-9]*\) bytes')"
  stats="$stats $(field "$mem" 'memory: moved per run \([0-9]*\) bytes.*')"
  stats="$stats $(field "$unf" 'memory: moved per run \([0-9]*\) bytes.*')"
  res=$("$venv/bin/python" bench/bench.py "$build/mpcc" "$dir" "$threads" "$rounds" "$n" \
    "$plans/$name".{fp32,bf16,fp16,auto}.plan)
  "$venv/bin/python" - "$name" "$res" $stats "$tmp" "$low" <<'PY'
import json, sys
name, res, k, k_unf, arena, total, moved, moved_unf, f32_md, low_md = sys.argv[1:11]
r = json.loads(res)
mib = lambda b: int(b) / 1048576
m = r["mpcc_ms"]
o = r["ort_ms"]
with open(f32_md, "a") as f:
    print(f"| {name} | {m[0]:.3f} | {o:.3f} | {m[0] / o:.2f} | "
          f"{r['mpcc_rss_kb'] / 1024:.1f} | {r['ort_rss_kb'] / 1024:.1f} | "
          f"{r['mpcc_rss_kb'] / r['ort_rss_kb']:.2f} | "
          f"{mib(arena):.2f} / {mib(total):.2f} | {k} ({k_unf}) / {r['ort_nodes']} | "
          f"{mib(moved):.2f} / {mib(moved_unf):.2f} |", file=f)
with open(low_md, "a") as f:
    print(f"| {name} | {o:.3f} | " + " | ".join(f"{x:.3f}" for x in m) + " | " +
          " | ".join(f"{x / o:.2f}" for x in m) + " |", file=f)
PY
done
if [ "$train" != 0 ]; then
  echo "bench: training step (digits mlp, cnn)" >&2
  /usr/bin/python3 scripts/make_digits.py "$digits" >/dev/null
  /usr/bin/python3 bench/train_bench.py "$build/mpcc" "$digits" "$plans/train" "$threads" \
    "$train_rounds" "$train_n" "$plans/train.json" > "$trn"
fi
cat "$tmp" "$low" "$trn" > "$out"
cat "$out"
