#!/usr/bin/env bash
# GPU binaries in the plan and the cuda backend through the CLI (issue 6,
# points 3 and 4), on tests/models/mlp: the default compile stores sm_80 and
# sm_90 cubins and compute_90 PTX (when mpcc has NVRTC) and `inspect` lists
# them; --cuda-archs chooses or turns them off and refuses bad lists; a
# damaged section is one "damaged plan" line; `run --backend cuda` says in
# one line which backend runs and how, or fails with one line naming what
# is missing (no driver, no device, no toolkit); with the fake driver of
# tests/unit/fake_libcuda.c it takes the stored sm_90 cubin and a CUDA graph.
# usage: bash tests/test_cli_cuda.sh BUILD_DIR   (from the source root)
set -euo pipefail
build=${1:-build}
mpcc="$build/mpcc"
model=tests/models/mlp/model.onnx
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "test_cli_cuda: $*" >&2; exit 1; }
export MPCC_CACHE_DIR="$work/cache"
with_cuda=false
grep -q '^MPCC_WITH_CUDA:BOOL=ON' "$build/CMakeCache.txt" && with_cuda=true

# the default compile, and inspect's listing
"$mpcc" "$model" -o "$work/a.plan" --precision fp32
"$mpcc" inspect "$work/a.plan" > "$work/inspect.txt"
if $with_cuda; then
  grep -q '^cuda: source [0-9]* bytes, 3 binaries$' "$work/inspect.txt" ||
    fail "inspect: $(grep '^cuda' "$work/inspect.txt")"
  for im in 'cubin sm_80' 'cubin sm_90' 'PTX compute_90'; do
    grep -q "^cuda binary: $im, [0-9]* bytes, NVRTC [0-9]*\.[0-9]*$" "$work/inspect.txt" ||
      fail "inspect lists no $im"
  done
else
  grep -q '^cuda: no GPU binaries (the cuda backend compiles at load)$' "$work/inspect.txt" ||
    fail "a build without NVRTC stored binaries"
fi

# inspect --cuda: a line per launch, naming the path each takes; the
# transformer in bf16 has tensor-core matrix products, LayerNorm and softmax
# as row kernels, and its elementwise stages vectorised
"$mpcc" tests/models/transformer/model.onnx -o "$work/tr.plan" --precision bf16 --cuda-archs none
if $with_cuda; then
  "$mpcc" inspect "$work/tr.plan" --cuda > "$work/launches.txt"
  grep -q '^cuda launch: kernel .*att_Softmax stage 0: row kernel of stages 0-2, a warp per row; grid [0-9]* x 256 threads$'     "$work/launches.txt" || fail "inspect --cuda: no softmax row kernel"
  grep -q '^cuda launch: kernel .*ln1_LayerNormalization stage 0: row kernel of stages 0-2, '     "$work/launches.txt" || fail "inspect --cuda: no LayerNorm row kernel"
  grep -q '^cuda launch: kernel .*ff1_MatMul stage 0: tiled matrix product, mma bf16 .*, tensor cores; '     "$work/launches.txt" || fail "inspect --cuda: no tensor-core matmul"
  grep -q '^cuda launch: kernel .*Mul_1 stage 0: vectorised, 8 points a thread'     "$work/launches.txt" || fail "inspect --cuda: the bf16 elementwise stage is not vectorised"
  ! grep -v '^cuda launch: ' "$work/launches.txt" | grep -q 'launch' || fail "inspect --cuda: stray lines"
else
  rc=0
  "$mpcc" inspect "$work/tr.plan" --cuda > /dev/null 2> "$work/err.txt" || rc=$?
  [ "$rc" = 1 ] && [ "$(cat "$work/err.txt")" = "mpcc: inspect --cuda: this mpcc was built without the CUDA toolkit" ] ||
    fail "inspect --cuda without the toolkit: exit $rc, $(cat "$work/err.txt")"
fi

# --cuda-archs: none, a choice, and bad lists (usage errors, exit 2)
"$mpcc" "$model" -o "$work/none.plan" --precision fp32 --cuda-archs none
"$mpcc" inspect "$work/none.plan" | grep -q '^cuda: no GPU binaries' ||
  fail "--cuda-archs none stored binaries"
if $with_cuda; then
  "$mpcc" "$model" -o "$work/90.plan" --precision fp32 --cuda-archs sm_90
  [ "$("$mpcc" inspect "$work/90.plan" | grep -c '^cuda binary: ')" = 1 ] ||
    fail "--cuda-archs sm_90 stored other binaries"
  "$mpcc" inspect "$work/90.plan" | grep -q '^cuda binary: cubin sm_90, ' ||
    fail "--cuda-archs sm_90 stored no sm_90 cubin"
  # a list must compile: an architecture no NVRTC knows fails the compile
  rc=0
  "$mpcc" "$model" -o "$work/99.plan" --cuda-archs 99 2> "$work/err.txt" || rc=$?
  [ "$rc" = 1 ] && [ ! -e "$work/99.plan" ] || fail "--cuda-archs 99: exit $rc"
  [ "$(cat "$work/err.txt")" = "mpcc: nvrtc: architecture sm_99 is not supported by this NVRTC" ] ||
    fail "--cuda-archs 99: $(cat "$work/err.txt")"
else
  if "$mpcc" "$model" -o "$work/90.plan" --cuda-archs 90 2> "$work/err.txt"; then
    fail "a build without NVRTC accepted --cuda-archs 90"
  fi
  grep -q 'built without the CUDA toolkit' "$work/err.txt" || fail "$(cat "$work/err.txt")"
fi
for bad in 90,90 sm_9 compute_ all ''; do
  rc=0
  "$mpcc" "$model" -o "$work/bad.plan" --cuda-archs "$bad" 2> "$work/err.txt" || rc=$?
  [ "$rc" = 2 ] || fail "--cuda-archs '$bad': exit $rc"
  [ "$(wc -l < "$work/err.txt")" = 1 ] || fail "--cuda-archs '$bad': $(cat "$work/err.txt")"
  grep -q "^mpcc: --cuda-archs: " "$work/err.txt" || fail "$(cat "$work/err.txt")"
done

# a damaged section: one line naming it
if $with_cuda; then
  python3 - "$work/a.plan" "$work/damaged.plan" <<'PY' || fail "could not damage the plan"
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack_from("<I", b, 12)[0]
for i in range(n):
    tag, _, off, size = struct.unpack_from("<4sIQQ", b, 64 + 24 * i)
    if tag == b"CUDA":
        struct.pack_into("<I", b, off, 7)  # layout version
fnv = 0xcbf29ce484222325
for c in b[64:]:
    fnv = ((fnv ^ c) * 0x100000001b3) & 0xffffffffffffffff
struct.pack_into("<Q", b, 16, fnv)
open(sys.argv[2], "wb").write(b)
PY
  rc=0
  "$mpcc" inspect "$work/damaged.plan" > /dev/null 2> "$work/err.txt" || rc=$?
  [ "$rc" = 1 ] || fail "damaged plan: exit $rc"
  [ "$(cat "$work/err.txt")" = "mpcc: $work/damaged.plan: damaged plan: section 'CUDA': layout version 7, this mpcc reads 1" ] ||
    fail "damaged plan: $(cat "$work/err.txt")"
fi

# run: the backend says what it does, or why it cannot, in one line
run() { "$mpcc" run "$1" --input x=tests/models/mlp/input_x.npy --output-dir "$work/out" "${@:2}"; }
run "$work/a.plan" 2> "$work/err.txt" || fail "cpu run: $(cat "$work/err.txt")"
[ "$(cat "$work/err.txt")" = "mpcc: backend: cpu" ] || fail "cpu run says: $(cat "$work/err.txt")"
rc=0
run "$work/a.plan" --backend cuda 2> "$work/err.txt" || rc=$?
[ "$(wc -l < "$work/err.txt")" = 1 ] || fail "cuda run: $(cat "$work/err.txt")"
if [ "$rc" = 0 ]; then
  # a GPU is here: the stored binary for it, or NVRTC, and a graph
  grep -q '^mpcc: backend: cuda: .* (sm_[0-9]*), driver [0-9.]*; .*; one CUDA graph of 3 launches; ' \
    "$work/err.txt" || fail "cuda run says: $(cat "$work/err.txt")"
else
  [ "$rc" = 1 ] || fail "cuda run: exit $rc"
  grep -Eq '^mpcc: cuda backend: (libcuda.so.1 not found \(no NVIDIA driver\)|no CUDA device found|this mpcc was built without the CUDA toolkit)' \
    "$work/err.txt" || fail "cuda run fails with: $(cat "$work/err.txt")"
fi

# the fake driver: the stored sm_90 cubin, one graph (its kernels do not run)
if [ -e "$build/fakecuda/libcuda.so.1" ]; then
  LD_LIBRARY_PATH="$build/fakecuda" run "$work/a.plan" --backend cuda 2> "$work/err.txt" ||
    fail "cuda run on the fake driver: $(cat "$work/err.txt")"
  grep -qx 'mpcc: backend: cuda: Fake GPU 9.0 (sm_90), driver 13.0; cubin sm_90 from the plan; one CUDA graph of 3 launches; [0-9]* KiB device' \
    "$work/err.txt" || fail "cuda run on the fake driver says: $(cat "$work/err.txt")"
fi
echo "test_cli_cuda: ok"
