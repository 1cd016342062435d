#!/usr/bin/env bash
# Runs the ONNX backend test suite through build/mpcc-conformance in each
# precision mode and fails when a case listed in the mode's expected file
# (tests/conformance_expected.txt for fp32, tests/conformance_expected_MODE.txt
# for the others) no longer passes. A mode without its expected file is an
# error: scripts/conformance-table.sh (`make conformance`) records them.
# A mode MODE-lowio runs MODE with --low-io.
# usage: bash tests/test_conformance.sh BUILD_DIR   (from the source root)
#        MODES="fp32" bash tests/test_conformance.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
modes=${MODES:-fp32 fp16 bf16 auto fp16-lowio bf16-lowio auto-lowio}
data=/usr/share/libonnx-testdata/data
if [ ! -d "$data" ]; then
  echo "test_conformance: $data missing: run 'make deps' (libonnx-testdata)" >&2
  exit 1
fi
rc=0
for m in $modes; do
  if [ "$m" = fp32 ]; then expect=tests/conformance_expected.txt
  else expect=tests/conformance_expected_$m.txt; fi
  if [ ! -f "$expect" ]; then
    echo "test_conformance: $m: $expect missing: run 'make conformance'" >&2
    rc=1
    continue
  fi
  echo "== $m"
  lowio=
  case "$m" in *-lowio) lowio=--low-io ;; esac
  "$build/mpcc-conformance" --precision "${m%-lowio}" $lowio --jobs "${JOBS:-2}" --expect "$expect" \
    "$data/node" "$data/pytorch-converted" "$data/pytorch-operator" "$data/simple" || rc=1
done
exit $rc
