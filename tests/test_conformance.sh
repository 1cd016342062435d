#!/usr/bin/env bash
# Runs the ONNX backend test suite through build/mpcc-conformance and fails
# when a case listed in tests/conformance_expected.txt no longer passes.
# usage: bash tests/test_conformance.sh BUILD_DIR   (from the source root)
set -euo pipefail
build=${1:-build}
data=/usr/share/libonnx-testdata/data
if [ ! -d "$data" ]; then
  echo "test_conformance: $data missing: run 'make deps' (libonnx-testdata)" >&2
  exit 1
fi
exec "$build/mpcc-conformance" --jobs "${JOBS:-2}" --expect tests/conformance_expected.txt \
  "$data/node" "$data/pytorch-converted" "$data/pytorch-operator" "$data/simple"
