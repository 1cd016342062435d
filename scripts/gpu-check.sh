#!/usr/bin/env bash
# The prepared GPU check of issue 6: builds mpcc, then on the first NVIDIA
# GPU runs the ONNX conformance suite and the model tests on the cuda backend
# and compares them with the CPU backend and torch's references. Writes the
# full log and a short table (printed last) to out/gpu-check/, and copies the
# table to bench/gpu/DATE-DEVICE.md for the lead to commit.
# The model plans carry their GPU binaries (mpcc's default --cuda-archs), so
# the table's "cuda code" column says which one the device took (`mpcc run`
# prints it on stderr); test_cuda_run checks graph replay and the NVRTC
# cache. The cache lives in out/gpu-check/cuda-cache, emptied first, so the
# check neither depends on nor fills the user's.
# usage: bash scripts/gpu-check.sh [BUILD_DIR]   (from the source root)
# Only fp32 plans exist so far (the precision pass is issue 3); the f16/bf16
# columns and the matrix-kernel benchmarks join when those land.
set -uo pipefail
build=${1:-build-gpu}
data=/usr/share/libonnx-testdata/data
jobs=$(nproc 2>/dev/null || echo 4)
stamp=$(date -u +%Y%m%d-%H%M)
outdir=out/gpu-check
mkdir -p "$outdir" bench/gpu
log=$outdir/$stamp.log
table=$outdir/$stamp.table.md
export MPCC_CACHE_DIR=$PWD/$outdir/cuda-cache
rm -rf "$MPCC_CACHE_DIR"
: > "$log"
say() { echo "$*" | tee -a "$log"; }
run() { echo "+ $*" >> "$log"; "$@" >> "$log" 2>&1; }

device=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
if [ -z "$device" ]; then
  say "gpu-check: no NVIDIA GPU visible (nvidia-smi found none); nothing to check"
  exit 2
fi
say "device: $device"
say "build: $build"
if ! run cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPCC_WITH_CUDA=ON ||
   ! run cmake --build "$build" -j"$jobs"; then
  say "gpu-check: build failed, see $log"
  exit 1
fi
run "$build/test_cuda_compile" && compile=pass || compile=FAIL
# stored binaries, graph replay (same bits twice), NVRTC then the cache
run "$build/test_cuda_run" && cuda_run=pass || cuda_run=FAIL

# Conformance on the cuda backend, judged by the suite's expected outputs.
conf() {
  local backend=$1
  timeout 240 "$build/mpcc-conformance" --jobs "$jobs" --backend "$backend" \
    --expect tests/conformance_expected.txt \
    "$data/node" "$data/pytorch-converted" "$data/pytorch-operator" "$data/simple" \
    > "$outdir/$stamp.conformance-$backend.txt" 2>&1
  local rc=$?
  cat "$outdir/$stamp.conformance-$backend.txt" >> "$log"
  local line
  line=$(grep -E '^conformance: [0-9]+ passed' "$outdir/$stamp.conformance-$backend.txt" | tail -1)
  echo "${line#conformance: } (exit $rc)"
}
conf_cuda=$(conf cuda)

# Models: cuda against torch's reference and against the cpu backend, and
# latency of both backends (mpcc run --bench: median over 20 runs).
models_rows=""
for dir in tests/models/*/; do
  m=$(basename "$dir")
  plan=$outdir/$m.plan
  run "$build/mpcc" "$dir/model.onnx" -o "$plan" || { models_rows+="| $m | compile FAIL | | | | | |"$'\n'; continue; }
  inputs=()
  for f in "$dir"/input_*.npy; do
    n=$(basename "$f" .npy); inputs+=(--input "${n#input_}=$f")
  done
  at=$(wc -l < "$log")
  for be in cpu cuda; do
    rm -rf "$outdir/$m.$be"
    run timeout 120 "$build/mpcc" run "$plan" "${inputs[@]}" --output-dir "$outdir/$m.$be" --backend "$be"
  done
  # "mpcc: backend: cuda: DEVICE (sm_XY), driver V; CODE; GRAPH; MEMORY"
  code=$(tail -n +"$((at + 1))" "$log" | grep '^mpcc: backend: cuda: ' | cut -d';' -f2 | sed 's/^ //')
  vs_ref=pass; vs_cpu=pass
  for ref in "$dir"/ref_*.npy; do
    n=$(basename "$ref" .npy); n=${n#ref_}
    run "$build/mpcc-npycmp" "$outdir/$m.cuda/$n.npy" "$ref" --max-rel-l2 1e-4 || vs_ref=FAIL
    run "$build/mpcc-npycmp" "$outdir/$m.cuda/$n.npy" "$outdir/$m.cpu/$n.npy" --max-rel-l2 1e-5 || vs_cpu=FAIL
  done
  lat() {
    timeout 120 "$build/mpcc" run "$plan" "${inputs[@]}" --output-dir "$outdir/$m.bench" \
      --backend "$1" --bench 20 2>>"$log" | tee -a "$log" | sed -nE 's/.*median_ms=([0-9.]+).*/\1/p'
  }
  models_rows+="| $m | $vs_ref | $vs_cpu | ${code:-?} | $(lat cpu) | $(lat cuda) |"$'\n'
done

{
  echo "# gpu-check $stamp"
  echo
  echo "device: $device; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); model plans compiled with mpcc's defaults (auto precision, GPU binaries)"
  echo
  echo "| check | result |"
  echo "|---|---|"
  echo "| NVRTC compile sm_80/sm_90 (test_cuda_compile) | $compile |"
  echo "| plan binaries, graph replay, NVRTC cache (test_cuda_run) | $cuda_run |"
  echo "| conformance, cuda backend | $conf_cuda |"
  echo
  echo "| model | cuda vs torch (rel L2 1e-4) | cuda vs cpu (1e-5) | cuda code | cpu median ms | cuda median ms |"
  echo "|---|---|---|---|---:|---:|"
  printf '%s' "$models_rows"
  echo
  echo "full log: $log"
} > "$table"
dev_tag=$(echo "$device" | cut -d, -f1 | tr -c 'A-Za-z0-9\n' '-' | sed 's/-*$//')
cp "$table" "bench/gpu/$stamp-$dev_tag.md"
cat "$table" | tee -a "$log"
