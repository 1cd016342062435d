#!/usr/bin/env bash
# Loss parity with torch (issue 4): the digits MLP and CNN, an fp32 step plan
# trained by `mpcc train` for 100 steps against torch f32 from the same
# weights, data and Adam; every step's loss within 1e-4 relative
# (tests/train_torch.py parity). Needs Debian's python3-torch, -onnx,
# -sklearn (scripts/deps.sh).
# usage: bash tests/test_train_parity.sh BUILD_DIR   (from the source root)
set -euo pipefail
build=${1:-build}
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -c 'import torch, sklearn, onnx' 2> /dev/null || {
  echo "test_train_parity: needs Debian's python3-torch, python3-sklearn and python3-onnx" \
    "(bash scripts/deps.sh as root)" >&2
  exit 1
}
"$py" scripts/make_digits.py "$work" > /dev/null
"$py" tests/train_torch.py parity "$build/mpcc" "$work" "$work"
echo "test_train_parity: ok"
