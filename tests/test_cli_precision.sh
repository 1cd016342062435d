#!/usr/bin/env bash
# The precision dumps through the CLI (issue 3, point 5): --dump-precision to
# stdout and to a file, --dump-precision-json, --report, `inspect
# --precision` and `explain`, on tests/models/mlp in fp16. The compile-time
# table must equal the one read back from the plan, two compiles must give
# byte-identical JSON, and the page must reference nothing outside itself.
# The plans carry no GPU binaries (--cuda-archs none): NVRTC would add
# seconds a compile to a test about precision.
# usage: bash tests/test_cli_precision.sh BUILD_DIR   (from the source root)
set -euo pipefail
build=${1:-build}
mpcc="$build/mpcc"
model=tests/models/mlp/model.onnx
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "test_cli_precision: $*" >&2; exit 1; }

"$mpcc" "$model" -o "$work/a.plan" --precision fp16 --dump-precision="$work/table.txt" \
  --cuda-archs none --dump-precision-json "$work/a.json" --report "$work/report.html" \
  > "$work/out.txt"
[ ! -s "$work/out.txt" ] || fail "--dump-precision=FILE also wrote to stdout"
"$mpcc" "$model" -o "$work/b.plan" --precision fp16 --dump-precision \
  --cuda-archs none --dump-precision-json "$work/b.json" > "$work/stdout.txt"
cmp -s "$work/table.txt" "$work/stdout.txt" || fail "--dump-precision differs from =FILE"
cmp -s "$work/a.json" "$work/b.json" || fail "two compiles gave different JSON"
grep -q '^precision report: mode fp16, 5 nodes, 2 casts inserted$' "$work/table.txt" ||
  fail "table header: $(head -1 "$work/table.txt")"
grep -q '^n0 .* Gemm .* f16 .* f32 .*policy: matrix op (Gemm)$' "$work/table.txt" ||
  fail "no Gemm row in the table"

# inspect --precision prints the same table after the plan summary
"$mpcc" inspect "$work/a.plan" --precision | sed -n '/^precision report:/,$p' > "$work/inspect.txt"
cmp -s "$work/table.txt" "$work/inspect.txt" || fail "inspect --precision differs from the dump"

# the JSON parses and follows docs/precision-json.md
/usr/bin/env python3 - "$work/a.json" <<'PY' || fail "JSON check failed"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["schema"] == "mpcc-precision/1" and d["mode"] == "fp16"
s = d["summary"]
assert s["nodes"] == 5 and s["casts"] == 2, s
assert len(d["nodes"]) == s["nodes"] + s["casts"]
assert set(s["flops"]) >= {"f32", "f16", "bf16"}
assert 0 <= s["low_flops_share"] <= 1 and 0 <= s["low_bytes_share"] <= 1
for n in d["nodes"]:
    assert n["evidence"][-1] == n["reason"]
    assert n["id"].startswith("n") or n["id"].startswith("cast:")
assert sum(n["flops"] for n in d["nodes"]) == sum(s["flops"].values())
PY

# the page is self-contained
grep -q '<svg ' "$work/report.html" || fail "report has no graph"
! grep -q -i 'http\|<script\|src=' "$work/report.html" || fail "report references outside"

# explain: by name, by id, and an unknown node
"$mpcc" explain "$work/a.plan" /Relu | grep -q "^  kernel: k" || fail "explain names no kernel"
"$mpcc" explain "$work/a.plan" cast:x:f16 | grep -q "inserted by the precision pass" ||
  fail "explain by id"
if "$mpcc" explain "$work/a.plan" relu 2> "$work/err.txt"; then fail "unknown node accepted"; fi
grep -q "no node 'relu' in the plan; closest: '/Relu'" "$work/err.txt" ||
  fail "unknown node message: $(cat "$work/err.txt")"

# a fp32 plan has records too; usage errors exit 2
"$mpcc" "$model" -o "$work/c.plan" --precision fp32 --dump-precision --cuda-archs none |
  grep -q 'mode fp32, 5 nodes, 0 casts' ||
  fail "fp32 dump"
set +e
"$mpcc" explain "$work/a.plan" > /dev/null 2>&1; rc=$?
set -e
[ "$rc" = 2 ] || fail "explain without a node gave $rc"
echo "test_cli_precision: ok"
