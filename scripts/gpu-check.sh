#!/usr/bin/env bash
# The prepared GPU check of issue 6 (point 6), for one NVIDIA GPU (an H200 in
# our checks), in under 8 minutes of wall clock:
#   1. build mpcc (Release, CUDA on); where the system lacks mpcc's Debian
#      build dependencies, from the .deb files scripts/gpu-prep.sh put in
#      .gpu-deps/, unpacked with `dpkg -x` into out/gpu-check/prefix (never /);
#   2. the model tests compiled in fp32, fp16 and bf16 and run on the cuda and
#      cpu backends: cuda against cpu per dtype (relative L2 <= 1e-5 for fp32,
#      as test_cuda_run; 1/512 for fp16 and 1/64 for bf16, the tensor-core
#      tolerances of test_cuda_matrix), fp32 against torch's references (1e-4);
#   3. matrix micro-benchmarks: MatMul [n, n] x [n, n], n = 1024...8192, bf16
#      and f16, mpcc's MatMul kernel alone (`mpcc run --profile`) against
#      torch.matmul (cuBLAS) and the chip's dense peak; the fused elementwise
#      chain tanh(x * a + b) * c over 2^26 elements against the device-to-device
#      copy bandwidth measured in the same run (bench/gpu/make_models.py makes
#      the inputs, bench/gpu/torch_peers.py times torch);
#   4. end to end: the transformer and CNN model tests, `mpcc run --bench`
#      (median, host copies included) against torch eager fp32, eager with
#      torch.autocast (bf16, fp16), torch.compile and torch.compile under
#      autocast bf16, timed the same way (bench/gpu/torch_peers.py);
#   5. test_cuda_run (stored binaries, graph replay, NVRTC and its cache);
#   6. the ONNX conformance suite on the cuda backend in fp32, fp16 and bf16,
#      with the project's per-dtype tolerances (mpcc-conformance), against
#      the cases the cpu backend passes (tests/conformance_expected*.txt):
#      last, as it takes what the budget leaves.
# Every step runs under `timeout`, capped by what is left of the total budget
# (GPU_CHECK_BUDGET_S, 480 s), so a hang costs one step, not the lease. The
# full log and every figure go to out/gpu-check/STAMP/ (GPU_CHECK_OUT moves
# out/gpu-check; generated models, plans and outputs go to its work/); the table
# (bench/gpu/report.py) is printed last and copied to
# bench/gpu/STAMP-DEVICE.md, for the lead to commit.
#
# usage: bash scripts/gpu-check.sh [--dry-run] [BUILD_DIR]   (from the source root)
#   BUILD_DIR  default build-gpu; built here unless --dry-run
#   --dry-run  (or GPU_CHECK_DRY=1) needs no GPU: uses BUILD_DIR as built,
#              small sizes, the cpu backend standing in for cuda, the
#              torch peers' --cpu smoke test, plans without GPU binaries, and
#              when .gpu-deps/ exists, unpacks it and configures a build
#              against it; the table has the same shape with placeholders.
#              tests/test_gpu_check_dry.sh runs it in `make test`.
# On the GPU machine, through the device tool:
#   bash scripts/gpu-prep.sh            # here, once: .gpu-deps/ (46 MB)
#   run(command="bash scripts/gpu-check.sh", carry=[".gpu-deps"], timeout_s=560)
# which copies the table, the log, the figures and the conformance outputs
# into the tool's $OUT; bench/gpu/STAMP-DEVICE.md is the table to commit.
# Without a GPU (and not --dry-run) it says so in one line and exits 2.
set -uo pipefail
dry=${GPU_CHECK_DRY:-0}
build=
for a in "$@"; do
  case "$a" in
    --dry-run) dry=1 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-check: unknown option '$a'" >&2; exit 2 ;;
    *) build=$a ;;
  esac
done
build=${build:-build-gpu}
budget=${GPU_CHECK_BUDGET_S:-480}
[ "$dry" = 1 ] && budget=${GPU_CHECK_BUDGET_S:-120}
t_start=$(date +%s)
jobs=$(nproc 2>/dev/null || echo 4)
stamp=$(date -u +%Y%m%d-%H%M%S)
[ "$dry" = 1 ] && stamp=dry-$stamp
top=${GPU_CHECK_OUT:-out/gpu-check}
case "$top" in /*) ;; *) top=$PWD/$top ;; esac
run_dir=$top/$stamp
work=$top/work
mkdir -p "$run_dir" "$work"
log=$run_dir/log.txt
checks=$run_dir/checks.tsv
mres=$run_dir/mpcc.tsv
: > "$log"; : > "$checks"; : > "$mres"
say() { echo "gpu-check: $*" | tee -a "$log" >&2; }
check() { printf '%s\t%s\n' "$1" "$2" >> "$checks"; echo "check: $1: $2" >> "$log"; }
left() { echo $(( budget - ($(date +%s) - t_start) )); }
# step SECONDS CMD...: CMD under timeout, at most SECONDS and what the budget
# leaves (less a 10 s reserve for the table); output to the log. 124: timed
# out; 125: not run, the budget is spent.
step() {
  local t=$1 l; shift
  l=$(( $(left) - 10 ))
  [ "$l" -lt "$t" ] && t=$l
  if [ "$t" -le 0 ]; then echo "+ not run (budget spent): $*" >> "$log"; return 125; fi
  echo "+ [$t s] $*" >> "$log"
  timeout -k 5 "$t" "$@" >> "$log" 2>&1
}
# step_out FILE SECONDS CMD...: as step, stdout into FILE as well
step_out() {
  local f=$1 t=$2 l rc; shift 2
  l=$(( $(left) - 10 ))
  [ "$l" -lt "$t" ] && t=$l
  if [ "$t" -le 0 ]; then echo "+ not run (budget spent): $*" >> "$log"; : > "$f"; return 125; fi
  echo "+ [$t s] $*" >> "$log"
  timeout -k 5 "$t" "$@" > "$f" 2>> "$log"; rc=$?
  cat "$f" >> "$log"
  return $rc
}
why() { case "$1" in 0) echo pass ;; 124) echo "TIMEOUT" ;; 125) echo "not run (budget)" ;; *) echo "FAIL (exit $1)" ;; esac; }

# ---------------------------------------------------------------- device
if [ "$dry" = 1 ]; then
  # the cpu backend stands in for cuda (a second cpu session: the plumbing,
  # not the numbers), with 2 timed runs instead of 20
  device="none (dry run: the cpu backend stands in for cuda)"; devbe=cpu; archs=none; nb=2
else
  device=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
  if [ -z "$device" ]; then
    echo "gpu-check: no NVIDIA GPU visible (nvidia-smi found none); nothing checked." \
      "GPU_CHECK_DRY=1 (or --dry-run) tests the script's plumbing without one." >&2
    rm -rf "$run_dir"
    exit 2
  fi
  devbe=cuda; nb=20
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  case "$cc" in [0-9][0-9]|[0-9][0-9][0-9]) archs=sm_$cc ;; *) archs=default ;; esac
fi
say "device: $device; build: $build; budget ${budget}s; log: $log"
export MPCC_CACHE_DIR=$work/cuda-cache
rm -rf "$MPCC_CACHE_DIR"

# Python: the first of $PYTHON, python3, /usr/bin/python3 with numpy and onnx
# (and torch, for the peers).
py=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import numpy, onnx, torch' 2>/dev/null; then py=$p; break; fi
done
[ -n "$py" ] || say "no python3 with numpy, onnx and torch: benchmarks and peers left out"

# ---------------------------------------------------------------- build deps
data=/usr/share/libonnx-testdata/data
deps_ld=
cmake_args=()
have_sys_deps() {
  { command -v llvm-config-14 || command -v llvm-config; } >/dev/null &&
    command -v protoc-c >/dev/null && command -v pkg-config >/dev/null &&
    pkg-config --exists libprotobuf-c 2>/dev/null && [ -f /usr/include/onnx/onnx.proto ] &&
    [ -f /usr/include/cmocka.h ] && [ -d "$data" ]
}
# Unpacks .gpu-deps into PREFIX and sets cmake_args, deps_ld and data for it.
use_prefix() {
  local prefix=$1 multi=usr/lib/x86_64-linux-gnu
  if [ ! -f "$prefix/.done" ]; then
    rm -rf "$prefix"; mkdir -p "$prefix"
    for f in .gpu-deps/debs/*.deb; do dpkg -x "$f" "$prefix" || return 1; done
    tar -C "$prefix" -xJf .gpu-deps/llvm-14-headers.tar.xz || return 1
    mkdir -p "$prefix/usr/lib/llvm-14/lib" &&
      ln -sf ../../x86_64-linux-gnu/libLLVM-14.so.1 "$prefix/usr/lib/llvm-14/lib/libLLVM-14.so" || return 1
    # all CMakeLists.txt asks llvm-config (llvm-14-dev is too big to carry)
    printf '#!/bin/sh\ncase "$1" in --includedir) echo %s ;; --libdir) echo %s ;; --version) echo 14.0.6 ;; *) exit 1 ;; esac\n' \
      "$prefix/usr/lib/llvm-14/include" "$prefix/usr/lib/llvm-14/lib" > "$prefix/llvm-config"
    chmod +x "$prefix/llvm-config"
    sed -i "s|^prefix=/usr\$|prefix=$prefix/usr|" "$prefix/$multi"/pkgconfig/*.pc
    touch "$prefix/.done"
  fi
  deps_ld=$prefix/$multi
  set_mp
  export PATH=$PATH:$prefix/usr/bin
  export PKG_CONFIG_PATH=$prefix/$multi/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  cmake_args=(-DLLVM_CONFIG="$prefix/llvm-config" -DPROTOC_C="$prefix/usr/bin/protoc-c"
    -DONNX_PROTO="$prefix/usr/include/onnx/onnx.proto" -DCMOCKA="$prefix/$multi/libcmocka.so"
    -DCMAKE_C_FLAGS="-I$prefix/usr/include")
  command -v pkg-config >/dev/null || cmake_args+=(-DPKG_CONFIG_EXECUTABLE="$prefix/usr/bin/pkgconf")
  data=$prefix/usr/share/libonnx-testdata/data
}
# mpcc's programs and the build see the prefix's libraries (python does not):
# "${mp[@]}" CMD runs CMD so, also under timeout
mp=(env)
set_mp() { mp=(env); [ -z "$deps_ld" ] || mp=(env "LD_LIBRARY_PATH=$deps_ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"); }

if [ "$dry" = 1 ]; then
  if [ -d .gpu-deps/debs ]; then
    # the prefix path of a GPU machine, configured (not built) here
    pfx=$work/prefix
    if use_prefix "$pfx" &&
       step 60 "${mp[@]}" cmake -S . -B "$work/build-prefix" -DCMAKE_BUILD_TYPE=Release -DMPCC_WITH_CUDA=OFF "${cmake_args[@]}" &&
       grep -q "^LLVM_CONFIG:FILEPATH=$pfx/llvm-config" "$work/build-prefix/CMakeCache.txt"; then
      check "deps from .gpu-deps (unpacked, cmake configure)" pass
    else
      check "deps from .gpu-deps (unpacked, cmake configure)" FAIL
    fi
    deps_ld=; set_mp; cmake_args=(); data=/usr/share/libonnx-testdata/data
  fi
  for b in mpcc mpcc-npycmp; do
    [ -x "$build/$b" ] || { say "dry run: $build/$b missing: build first"; exit 1; }
  done
  check build "not built (dry run uses $build)"
else
  if ! have_sys_deps || [ "${GPU_CHECK_PREFIX:-0}" = 1 ]; then
    if [ ! -d .gpu-deps/debs ]; then
      say "the system lacks mpcc's build dependencies and .gpu-deps/ is missing:" \
        "run scripts/gpu-prep.sh on the development machine and carry .gpu-deps"
      exit 1
    fi
    use_prefix "$top/prefix" || { say "unpacking .gpu-deps failed, see $log"; exit 1; }
    say "build dependencies from .gpu-deps, unpacked into $top/prefix"
  fi
  gen=(); command -v ninja >/dev/null && [ ! -f "$build/Makefile" ] && gen=(-G Ninja)
  targets=(mpcc mpcc-npycmp mpcc-conformance test_cuda_run)
  step 200 "${mp[@]}" cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMPCC_WITH_CUDA=ON "${cmake_args[@]}" &&
    step 200 "${mp[@]}" cmake --build "$build" -j"$jobs" --target "${targets[@]}"
  rc=$?
  check build "$(why $rc)"
  if [ $rc != 0 ]; then
    say "build failed, see $log"; cat "$checks" >&2; exit 1
  fi
fi

# ---------------------------------------------------------------- models
# Compiles in parallel (NVRTC is one thread a plan): "plan<TAB>args..." lines.
compile_all() {
  local list=$1 n=0
  while IFS=$'\t' read -r plan rest; do
    # shellcheck disable=SC2086
    (step 120 "${mp[@]}" "$build/mpcc" $rest -o "$plan" --cuda-archs "$archs" || rm -f "$plan") &
    n=$((n + 1))
    if [ "$n" -ge "$jobs" ]; then wait -n; n=$((n - 1)); fi
  done < "$list"
  wait
}
mkdir -p "$work/plans" "$work/out"
rm -f "$work"/plans/*.plan
list=$work/plans.tsv; : > "$list"
precs=(fp32 fp16 bf16)
for dir in tests/models/*/; do
  m=$(basename "$dir")
  for p in "${precs[@]}"; do
    printf '%s\t%s --precision %s\n' "$work/plans/$m.$p.plan" "$dir/model.onnx" "$p" >> "$list"
  done
done
if [ "$dry" = 1 ]; then sizes=256; elog=16; else sizes=1024,2048,4096,8192; elog=26; fi
bench_dir=$work/bench
if [ -n "$py" ]; then
  rm -rf "$bench_dir"
  step 120 "$py" bench/gpu/make_models.py "$bench_dir" --sizes "$sizes" --elems-log2 "$elog" ||
    say "bench/gpu/make_models.py failed, see $log"
  for n in ${sizes//,/ }; do
    for p in fp16 bf16; do
      printf '%s\t%s --precision %s --no-fuse\n' "$work/plans/matmul_$n.$p.plan" "$bench_dir/matmul_$n.onnx" "$p" >> "$list"
    done
  done
  printf '%s\t%s --precision fp32\n' "$work/plans/eltwise.f32.plan" "$bench_dir/eltwise.onnx" >> "$list"
  printf '%s\t%s --precision fp16 --low-io\n' "$work/plans/eltwise.f16.plan" "$bench_dir/eltwise.onnx" >> "$list"
fi
compile_all "$list"
n_plans=$(ls "$work"/plans/*.plan 2>/dev/null | wc -l)
check "plans compiled (models x fp32/fp16/bf16, benchmarks; --cuda-archs $archs)" \
  "$n_plans of $(wc -l < "$list")"

# inputs of a model test folder as --input arguments
inputs_of() {
  local f n
  for f in "$1"/input_*.npy; do n=$(basename "$f" .npy); printf -- '--input\n%s=%s\n' "${n#input_}" "$f"; done
}
tol() { case "$1" in fp32) echo 1e-5 ;; fp16) echo 0.001953125 ;; bf16) echo 0.015625 ;; esac; }
declare -A ok_models worst
for p in "${precs[@]}"; do ok_models[$p]=0; worst[$p]=0; done
n_models=0; ref_ok=0
for dir in tests/models/*/; do
  m=$(basename "$dir"); n_models=$((n_models + 1))
  mapfile -t ins < <(inputs_of "$dir")
  for p in "${precs[@]}"; do
    plan=$work/plans/$m.$p.plan
    [ -f "$plan" ] || continue
    o=$work/out/$m.$p
    rm -rf "$o.cpu" "$o.dev"
    step 120 "${mp[@]}" "$build/mpcc" run "$plan" "${ins[@]}" --output-dir "$o.cpu" --backend cpu || continue
    if [ "$m" = transformer ] || [ "$m" = cnn ]; then
      # the end-to-end figures: --bench 20 (median, host copies in), --profile 20 (device)
      step_out "$o.bench.txt" 120 "${mp[@]}" "$build/mpcc" run "$plan" "${ins[@]}" --output-dir "$o.dev" \
        --backend "$devbe" --bench "$nb" --profile || continue
      med=$(sed -nE 's/^median_ms=([0-9.]+).*/\1/p' "$o.bench.txt")
      tot=$(sed -nE 's/^profile_total_ms=([0-9.]+)/\1/p' "$o.bench.txt")
      printf 'e2e\t%s\t%s\t%s\t%s\n' "$m" "$p" "${med:-n/a}" "${tot:-n/a}" >> "$mres"
    else
      step 120 "${mp[@]}" "$build/mpcc" run "$plan" "${ins[@]}" --output-dir "$o.dev" --backend "$devbe" || continue
    fi
    good=1
    for ref in "$dir"/ref_*.npy; do
      n=$(basename "$ref" .npy); n=${n#ref_}
      line=$("${mp[@]}" "$build/mpcc-npycmp" "$o.dev/$n.npy" "$o.cpu/$n.npy" --max-rel-l2 "$(tol "$p")" 2>&1)
      rc=$?
      echo "$m $p $n $devbe vs cpu: $line" >> "$log"
      [ $rc = 0 ] || good=0
      e=$(echo "$line" | sed -nE 's/.*rel_l2_err=([0-9.e+-]+).*/\1/p')
      worst[$p]=$(awk -v a="${worst[$p]}" -v b="${e:-0}" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
      if [ "$p" = fp32 ]; then
        "${mp[@]}" "$build/mpcc-npycmp" "$o.dev/$n.npy" "$ref" --max-rel-l2 1e-4 >> "$log" 2>&1 && ref_ok=$((ref_ok + 1))
      fi
    done
    [ $good = 1 ] && ok_models[$p]=$((ok_models[$p] + 1))
  done
done
for p in "${precs[@]}"; do
  check "models $p, $devbe vs cpu (rel L2 <= $(tol "$p"))" \
    "${ok_models[$p]} of $n_models pass (worst rel L2 ${worst[$p]})"
done
check "models fp32, $devbe vs torch's references (rel L2 <= 1e-4)" "$ref_ok outputs pass"

# ---------------------------------------------------------------- micro-benchmarks
if [ -n "$py" ]; then
  for n in ${sizes//,/ }; do
    for p in fp16 bf16; do
      plan=$work/plans/matmul_$n.$p.plan
      dt=${p%16}16; [ "$p" = fp16 ] && dt=f16
      f=$work/out/matmul_$n.$p.txt
      ms=n/a
      if [ -f "$plan" ] && step_out "$f" 90 "${mp[@]}" "$build/mpcc" run "$plan" --input a="$bench_dir/matmul_${n}_a.npy" \
          --input b="$bench_dir/matmul_${n}_b.npy" --output-dir "$work/out/mm" --backend "$devbe" --bench $(( nb < 5 ? nb : 5 )) --profile; then
        ms=$(awk '$2 ~ /_matmul$/ { print $6 }' "$f" | head -1)
      fi
      rm -rf "$work/out/mm"
      printf 'matmul\t%s\t%s\t%s\n' "$n" "$dt" "${ms:-n/a}" >> "$mres"
    done
  done
  elems=$(awk '$1 == "eltwise" { print $2 }' "$bench_dir/shapes.txt" 2>/dev/null)
  for dt in f32 f16; do
    plan=$work/plans/eltwise.$dt.plan
    x=$bench_dir/eltwise_x.npy; [ $dt = f16 ] && x=$bench_dir/eltwise_x_f16.npy
    f=$work/out/eltwise.$dt.txt
    ms=n/a; launches=n/a
    if [ -f "$plan" ] && step_out "$f" 90 "${mp[@]}" "$build/mpcc" run "$plan" --input x="$x" \
        --output-dir "$work/out/el" --backend "$devbe" --bench $(( nb < 10 ? nb : 10 )) --profile; then
      ms=$(sed -nE 's/^profile_total_ms=([0-9.]+)/\1/p' "$f")
      launches=$(awk '$1 ~ /^[0-9]+$/ && NF >= 8' "$f" | wc -l)
    fi
    rm -rf "$work/out/el"
    printf 'eltwise\t%s\t%s\t%s\t%s\n' "$dt" "${ms:-n/a}" "$launches" "${elems:-n/a}" >> "$mres"
  done
  peers=(--out "$run_dir/torch.json" --sizes "$sizes" --elems-log2 "$elog")
  [ "$dry" = 1 ] && peers+=(--cpu)
  PYTHONUNBUFFERED=1 step 200 "$py" bench/gpu/torch_peers.py "${peers[@]}"
  check "torch peers (bench/gpu/torch_peers.py ${peers[*]:4})" "$(why $?)"
fi

# ---------------------------------------------------------------- GPU tests
if [ "$dry" != 1 ]; then
  step 90 "${mp[@]}" "$build/test_cuda_run"
  check "test_cuda_run (plan binaries, graph replay, NVRTC cache)" "$(why $?)"
fi

# ---------------------------------------------------------------- conformance
if [ -d "$data" ] && [ -x "$build/mpcc-conformance" ]; then
  for p in "${precs[@]}"; do
    if [ "$p" = fp32 ]; then expect=tests/conformance_expected.txt; else expect=tests/conformance_expected_$p.txt; fi
    f=$run_dir/conformance-$p.txt
    if [ "$dry" = 1 ]; then # three cases, the plumbing only
      step_out "$f" 60 "${mp[@]}" "$build/mpcc-conformance" --backend "$devbe" --precision "$p" --jobs "$jobs" \
        "$data/node/test_add" "$data/node/test_relu" "$data/node/test_matmul_2d"
    else
      # what is left, shared by the modes still to run
      case "$p" in fp32) share=$(( ($(left) - 20) / 3 )) ;; fp16) share=$(( ($(left) - 20) / 2 )) ;; *) share=$(( $(left) - 20 )) ;; esac
      step_out "$f" "$share" "${mp[@]}" "$build/mpcc-conformance" --backend "$devbe" --precision "$p" --jobs "$jobs" \
        --expect "$expect" "$data/node" "$data/pytorch-converted" "$data/pytorch-operator" "$data/simple"
    fi
    rc=$?
    sum=$(sed -nE 's/^conformance: (.*)$/\1/p' "$f" | tail -1)
    reg=$(grep -c '^REGRESSION ' "$f")
    if [ -n "$sum" ] && [ "$dry" = 1 ]; then
      check "conformance $p on $devbe (3 cases, dry run)" "$sum"
    elif [ -n "$sum" ]; then
      check "conformance $p on $devbe vs cpu's $(grep -cv '^#' "$expect") passing cases" \
        "$sum; $reg regressions$( [ $reg != 0 ] && echo " (REGRESSION lines in $f)")"
    else
      check "conformance $p on $devbe" "$(why $rc)"
    fi
  done
else
  check "conformance" "not run: no $data or $build/mpcc-conformance"
fi

# ---------------------------------------------------------------- table
table=$run_dir/table.md
if [ -n "$py" ]; then
  "$py" bench/gpu/report.py --checks "$checks" --mpcc "$mres" --torch "$run_dir/torch.json" \
    --device "$device" --stamp "$stamp" > "$table" 2>> "$log"
else
  { echo "# gpu-check $stamp"; echo; echo "device: $device"; echo; echo "| check | result |"; echo "|---|---|"
    sed 's/\t/ | /; s/^/| /; s/$/ |/' "$checks"; } > "$table"
fi
{ echo; echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' + local changes');" \
    "$(( $(date +%s) - t_start )) s; full log: $log"; } >> "$table"
if [ "$dry" != 1 ]; then
  dev_tag=$(echo "$device" | cut -d, -f1 | tr -c 'A-Za-z0-9\n' '-' | sed 's/-*$//')
  mkdir -p bench/gpu
  cp "$table" "bench/gpu/$stamp-$dev_tag.md"
fi
cat "$table" >> "$log"
# on the device tool's machine, the results come back through $OUT (8 files at most)
if [ "$dry" != 1 ] && [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  cp "$table" "$log" "$checks" "$mres" "$run_dir"/torch.json "$run_dir"/conformance-*.txt "$OUT/" 2>/dev/null
fi
cat "$table"
