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
set -euo pipefail
build=${1:-build}
rounds=${ROUNDS:-5}
n=${N:-10}
threads=${THREADS:-$(nproc)}
venv=$build/bench-venv
models=$build/bench-models
plans=$build/bench-plans
out=bench/RESULTS.md

if ! "$venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null; then
  echo "bench: installing onnxruntime into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet onnxruntime numpy
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
{
  echo "# mpcc vs ONNX Runtime, CPU"
  echo
  echo "Written by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%d)."
  echo
  echo "- CPU: $cpu, $(nproc) cores visible; flags: $flags"
  echo "- ONNX Runtime $ortv (pip), graph optimisations on (ORT_ENABLE_ALL), sequential"
  echo "  executor; both sides use $threads thread(s) (MPCC_NUM_THREADS, intra_op_num_threads)."
  echo "- Latency: $rounds interleaved rounds (mpcc, then ORT); each round is the median of"
  echo "  $n runs after 3 warm-ups; the table gives the median over rounds. f32 only."
  echo "- Peak RSS: maximum resident set of a child process running the model once (mpcc:"
  echo "  the CLI, JIT included; ORT: a Python script, interpreter included). mpcc arena:"
  echo "  planned peak of intermediates against their sum (\`mpcc inspect --memory\`)."
  echo "- mpcc's RSS is dominated by the LLVM library and the JIT, not by tensors; ORT's"
  echo "  includes Python. Neither is peak *intermediate* memory, which ORT does not report."
  echo "- Timings on a shared machine move by 10-40% between runs (other processes on the"
  echo "  same cores); ratios above 2 are meaningful, small differences are not."
  echo
  echo "| model | mpcc ms | ORT ms | latency mpcc/ORT | mpcc RSS MiB | ORT RSS MiB | RSS mpcc/ORT | mpcc arena / sum of intermediates (MiB) | kernels |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
} > "$tmp"
for dir in tests/models/*/ "$models"/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  [ -f "$dir/model.onnx" ] || continue
  plan=$plans/$name.plan
  "$build/mpcc" "$dir/model.onnx" -o "$plan" --precision fp32 >/dev/null
  mem=$("$build/mpcc" inspect "$plan" --memory)
  kernels=$(echo "$mem" | sed -n 's/^kernels: //p')
  arena=$(echo "$mem" | sed -n 's/^memory: arena peak \([0-9]*\) bytes.*/\1/p')
  sum=$(echo "$mem" | sed -n 's/^memory: .* sum \([0-9]*\) bytes/\1/p')
  echo "bench: $name" >&2
  res=$("$venv/bin/python" bench/bench.py "$build/mpcc" "$plan" "$dir" "$threads" "$rounds" "$n")
  "$venv/bin/python" - "$name" "$res" "$arena" "$sum" "$kernels" >> "$tmp" <<'PY'
import json, sys
name, res, arena, total, kernels = sys.argv[1:6]
r = json.loads(res)
mib = lambda b: b / 1048576
print(f"| {name} | {r['mpcc_ms']:.3f} | {r['ort_ms']:.3f} | {r['mpcc_ms'] / r['ort_ms']:.2f} | "
      f"{r['mpcc_rss_kb'] / 1024:.1f} | {r['ort_rss_kb'] / 1024:.1f} | "
      f"{r['mpcc_rss_kb'] / r['ort_rss_kb']:.2f} | "
      f"{mib(int(arena)):.2f} / {mib(int(total)):.2f} | {kernels} |")
PY
done
mv "$tmp" "$out"
cat "$out"
