#!/usr/bin/env bash
# Runs the ONNX backend test suite through build/mpcc-conformance in each
# precision mode and fails when a case listed in the mode's expected file
# (tests/conformance_expected.txt for fp32, tests/conformance_expected_MODE.txt
# for the others) no longer passes. A mode without its expected file is an
# error: scripts/conformance-table.sh (`make conformance`) records them.
# A mode MODE-lowio runs MODE with --low-io; MODE-nofuse runs MODE with
# --no-fuse against MODE's expected file, so every case that passes fused
# passes unfused too (fused and unfused outputs agree within the tolerance).
# usage: bash tests/test_conformance.sh BUILD_DIR   (from the source root)
#        MODES="fp32" bash tests/test_conformance.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
modes=${MODES:-fp32 fp16 bf16 auto fp16-lowio bf16-lowio auto-lowio fp32-nofuse bf16-nofuse}
data=/usr/share/libonnx-testdata/data
if [ ! -d "$data" ]; then
  echo "test_conformance: $data missing: run 'make deps' (libonnx-testdata)" >&2
  exit 1
fi
rc=0
for m in $modes; do
  base=${m%-nofuse}
  if [ "$base" = fp32 ]; then expect=tests/conformance_expected.txt
  else expect=tests/conformance_expected_$base.txt; fi
  if [ ! -f "$expect" ]; then
    echo "test_conformance: $m: $expect missing: run 'make conformance'" >&2
    rc=1
    continue
  fi
  echo "== $m"
  flags=
  case "$m" in *-lowio) flags=--low-io ;; *-nofuse) flags=--no-fuse ;; esac
  "$build/mpcc-conformance" --precision "${base%-lowio}" $flags --jobs "${JOBS:-2}" --expect "$expect" \
    "$data/node" "$data/pytorch-converted" "$data/pytorch-operator" "$data/simple" || rc=1
done
exit $rc
