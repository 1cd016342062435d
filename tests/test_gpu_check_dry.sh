#!/usr/bin/env bash
# scripts/gpu-check.sh's plumbing without a GPU (issue 6, point 6): its dry
# run (--dry-run) generates the benchmark models, compiles every plan it
# would run on the GPU (the model tests in fp32, fp16 and bf16, the MatMul
# and elementwise benchmarks), runs them with --bench and --profile on the
# cpu backend standing in for cuda, runs bench/gpu/torch_peers.py --cpu and
# three conformance cases per precision, and formats the table; every step
# must pass and every section of the table must be there. Without a GPU, a
# plain run must stop at once with one line and exit 2. When .gpu-deps/
# (scripts/gpu-prep.sh) exists, the dry run also unpacks it and configures a
# build against it. Python parts need a python3 with numpy, onnx and torch
# (Debian's, from `make deps`); without one the test checks the rest.
# usage: bash tests/test_gpu_check_dry.sh BUILD_DIR   (from the source root)
set -euo pipefail
build=${1:-build}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "test_gpu_check_dry: $*" >&2; exit 1; }

if ! command -v nvidia-smi >/dev/null; then
  rc=0
  GPU_CHECK_OUT="$work/nogpu" bash scripts/gpu-check.sh "$build" > "$work/nogpu.txt" 2>&1 || rc=$?
  [ "$rc" = 2 ] || fail "without a GPU: exit $rc, not 2: $(cat "$work/nogpu.txt")"
  [ "$(wc -l < "$work/nogpu.txt")" = 1 ] && grep -q '^gpu-check: no NVIDIA GPU visible' "$work/nogpu.txt" ||
    fail "without a GPU: $(cat "$work/nogpu.txt")"
fi

start=$(date +%s)
GPU_CHECK_OUT="$work/out" bash scripts/gpu-check.sh --dry-run "$build" > "$work/dry.txt" 2> "$work/err.txt" ||
  fail "the dry run failed: $(tail -5 "$work/err.txt")"
secs=$(( $(date +%s) - start ))
t=$work/dry.txt
row() { grep -F "| $1" "$t" || fail "no row '$1' in the table: $(cat "$t")"; }
row "plans compiled" | grep -qE '\| ([0-9]+) of \1 \|$' || fail "$(row "plans compiled")"
for p in fp32 fp16 bf16; do
  row "models $p, cpu vs cpu" | grep -qE '\| 4 of 4 pass' || fail "$(row "models $p")"
  if [ -d /usr/share/libonnx-testdata/data ]; then
    row "conformance $p on cpu (3 cases" | grep -q '| 3 passed, 0 failed, 0 unsupported |' ||
      fail "$(row "conformance $p")"
  fi
done
row "models fp32, cpu vs torch's references" | grep -q '| 4 outputs pass |' || fail "references"
if [ -d .gpu-deps/debs ]; then
  row "deps from .gpu-deps" | grep -q '| pass |' || fail "$(row "deps from .gpu-deps")"
fi
py=
for p in python3 /usr/bin/python3; do
  command -v "$p" >/dev/null && "$p" -c 'import numpy, onnx, torch' 2>/dev/null && { py=$p; break; }
done
if [ -n "$py" ]; then
  row "torch peers" | grep -q '| pass |' || fail "$(row "torch peers")"
  for section in "Matrix kernels:" "Elementwise:" "End to end," "Device time only" "| goal"; do
    grep -qF "$section" "$t" || fail "no section '$section'"
  done
  # mpcc's figures are there (the cpu backend's, in the dry run)
  grep -qE '^\| 256 \| bf16 \| [0-9.]+ \| [0-9.]+ \|' "$t" || fail "matmul row: $(grep '^| 256 |' "$t")"
  grep -qE '^\| f32 \| 1 \| [0-9.]+ \|' "$t" || fail "the elementwise chain is not one kernel: $(grep '^| f32 |' "$t")"
  grep -qE '^\| transformer \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|' "$t" || fail "e2e row"
fi
[ -z "$(ls bench/gpu/dry-* 2>/dev/null)" ] || fail "the dry run wrote into bench/gpu/"
echo "test_gpu_check_dry: dry run passed in ${secs}s"
