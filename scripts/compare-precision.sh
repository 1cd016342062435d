#!/usr/bin/env bash
# Compares mpcc's precision modes with torch.autocast (CPU, bf16) and with
# onnxconverter-common on the four model tests; writes
# docs/precision-comparison.md.
# usage: bash scripts/compare-precision.sh [BUILD_DIR]   (from the source root;
#        `make compare-precision`); TOL=X sets the searches' tolerance and
#        OUT=FILE the Markdown written (docs/precision-comparison.md by default;
#        docs/precision-comparison-tol2e-4.md holds a TOL=2e-4 run).
#
# - torch.autocast: tests/models/compare_autocast.py with Debian's python3 +
#   torch (the same interpreter that exported the models).
# - onnxconverter-common: tests/models/compare_converter.py in a venv,
#   BUILD_DIR/cmp-venv, with onnx, onnxruntime, onnxconverter-common and
#   numpy from pip, made when missing (comparisons may use PyPI; the build
#   and the tests never do).
# - mpcc: compiles each model in auto, fp16 and bf16 with
#   --dump-precision-json (summary.low_flops_share, summary.casts, the
#   search's notes), runs the plan on the committed inputs, and the report
#   measures the output against the committed torch f32 reference.
# - tests/models/compare_report.py (in the venv) turns all of it, kept in
#   BUILD_DIR/cmp-work, into the Markdown.
# The automatic searches (mpcc auto, auto_convert_mixed_precision) stop at
# the same relative L2 tolerance: TOL when set, else mpcc's default as
# docs/precision.md, `mpcc --help` or mpcc auto's own notes state it. A flag
# that this mpcc lacks makes its columns n/a with a message, not a failure.
set -euo pipefail
build=${1:-build}
venv=$build/cmp-venv
work=$build/cmp-work
out=${OUT:-docs/precision-comparison.md}
models=(mlp cnn transformer lstm)
modes=(auto fp16 bf16)
mpcc=$build/mpcc

[ -x "$mpcc" ] || { echo "compare-precision: $mpcc not found; build first (make build)" >&2; exit 1; }
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "compare-precision: Debian's python3-torch is missing (apt-get install python3-torch)" >&2
    exit 1
  fi
  echo "compare-precision: installing python3-torch (apt)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch >&2
fi
if ! "$venv/bin/python" -c "import onnxruntime, onnx, onnxconverter_common, numpy" 2>/dev/null; then
  echo "compare-precision: installing onnxruntime, onnx, onnxconverter-common into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet onnxruntime onnx onnxconverter-common numpy
fi
rm -rf "$work"
mkdir -p "$work/mpcc"

help=$("$mpcc" --help 2>&1 || true)
has() { grep -q -e "$1" <<<"$help"; }
json_flag=yes; has '--dump-precision-json' || json_flag=no
calib_flag=yes; has '--calib' || calib_flag=no
tol_flag=yes; has '--tolerance' || tol_flag=no
[ "$json_flag" = yes ] ||
  echo "compare-precision: this mpcc has no --dump-precision-json; its FLOP share, casts and search cost are n/a" >&2
[ "$calib_flag" = yes ] ||
  echo "compare-precision: this mpcc has no --calib; auto mode calibrates on its own inputs" >&2

# The tolerance of both automatic searches: TOL; else the default that
# docs/precision.md states ("default tolerance ... <number>" on one line);
# else the one `mpcc --help` gives for --tolerance ("default X"); else, after
# the mpcc runs, the one mpcc's auto notes name ("tolerance X").
tol=${TOL:-}
tol_source="the TOL environment variable"
if [ -z "$tol" ] && [ -f docs/precision.md ]; then
  tol=$(grep -i -m1 -E 'default.{0,60}tolerance|tolerance.{0,60}default' docs/precision.md |
    grep -o -E '[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?' | grep -E '[eE.]' | head -n 1 || true)
  tol_source="mpcc's default, as docs/precision.md states it"
fi
if [ -z "$tol" ]; then
  tol=$(grep -A1 -e '--tolerance' <<<"$help" | grep -o -E 'default [0-9.]+([eE][-+]?[0-9]+)?' |
    cut -d' ' -f2 | grep -E '[eE.]' | head -n 1 || true)
  tol_source="mpcc's default, as \`mpcc --help\` states it"
fi
[ -n "$tol" ] && [ "$tol_flag" = no ] &&
  echo "compare-precision: this mpcc has no --tolerance; auto mode runs at its default, not $tol" >&2

for m in "${models[@]}"; do
  dir=tests/models/$m
  inputs=()
  calib=()
  for f in "$dir"/input_*.npy; do
    name=$(basename "$f" .npy)
    name=${name#input_}
    inputs+=(--input "$name=$f")
    calib+=(--calib "$name=$f")
  done
  for mode in "${modes[@]}"; do
    base=$work/mpcc/$m-$mode
    # CPU plans: no GPU binaries, whose NVRTC seconds would count as search time
    args=("$dir/model.onnx" -o "$base.plan" --precision "$mode" --cuda-archs none)
    [ "$json_flag" = yes ] && args+=(--dump-precision-json "$base.json")
    if [ "$mode" = auto ]; then
      [ "$calib_flag" = yes ] && args+=("${calib[@]}")
      [ "$tol_flag" = yes ] && [ -n "$tol" ] && args+=(--tolerance "$tol")
    fi
    echo "compare-precision: mpcc $m $mode" >&2
    start=$(date +%s.%N)
    if "$mpcc" "${args[@]}" > "$base.log" 2>&1; then
      echo "$start $(date +%s.%N)" | awk '{ printf "%.3f\n", $2 - $1 }' > "$base.secs"
      "$mpcc" run "$base.plan" "${inputs[@]}" --output-dir "$base.out" >> "$base.log" 2>&1 ||
        echo "compare-precision: mpcc run failed for $m $mode (see $base.log)" >&2
    else
      echo "compare-precision: mpcc failed to compile $m $mode: $(tail -n 1 "$base.log")" >&2
    fi
  done
done

if [ -z "$tol" ]; then
  tol=$(cat "$work"/mpcc/*-auto.json 2>/dev/null | grep -o -E 'tolerance [0-9.]+([eE][-+]?[0-9]+)?' |
    head -n 1 | cut -d' ' -f2 || true)
  tol_source="mpcc's default, as its auto mode's notes state it"
fi
if [ -z "$tol" ]; then
  tol=1e-3
  tol_source="assumed: neither TOL, nor docs/precision.md, nor mpcc's notes give one"
  echo "compare-precision: found no default tolerance of mpcc; using $tol (set TOL to choose)" >&2
fi

echo "compare-precision: torch.autocast (Debian python3)" >&2
/usr/bin/python3 tests/models/compare_autocast.py --out "$work/autocast.json"
echo "compare-precision: onnxconverter-common at tolerance $tol ($venv)" >&2
"$venv/bin/python" tests/models/compare_converter.py --tol "$tol" --out "$work/converter.json"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit with uncommitted changes"
fi
"$venv/bin/python" tests/models/compare_report.py --work "$work" --out "$out" \
  --models "${models[@]}" --modes "${modes[@]}" --tol "$tol" --tol-source "$tol_source" \
  --cpu "$cpu, $(nproc) cores visible" --mpcc "commit $commit" \
  --flags "json=$json_flag calib=$calib_flag tolerance=$tol_flag" \
  --command "make compare-precision"
echo "compare-precision: wrote $out" >&2
cat "$out"
