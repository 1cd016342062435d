#!/usr/bin/env bash
# make demo: compile the bundled example (a small pre-norm transformer
# encoder exported from torch by tests/models/make_models.py), show its IR
# summary and plan, run it on the example input, check the result against
# torch's, and time it.
set -euo pipefail
B=${1:-build}
M=tests/models/transformer
OUT=out/demo
mkdir -p "$OUT"

echo "== compile $M/model.onnx"
"$B/mpcc" "$M/model.onnx" -o "$OUT/transformer.plan" --dump-ir > "$OUT/ir.txt"
echo "IR after shape inference, constant folding and dead-code elimination:"
echo "  $(grep -c '^ *const ' "$OUT/ir.txt") constants, $(grep ' = ' "$OUT/ir.txt" | grep -vc '^ *const') nodes (full text in $OUT/ir.txt)"
echo "  nodes by op:" $(grep ' = ' "$OUT/ir.txt" | grep -v '^ *const' | sed -E 's/.* = ([A-Za-z]+)\(.*/\1/' | sort | uniq -c | sort -rn | awk '{printf "%s %s, ", $2, $1}')
echo "  a few nodes:"
grep ' = ' "$OUT/ir.txt" | grep -v '^ *const' | head -n 6 | cut -c1-150
echo
echo "== inspect"
"$B/mpcc" inspect "$OUT/transformer.plan" | head -n 20
echo
echo "== run on the example input"
"$B/mpcc" run "$OUT/transformer.plan" --input ids="$M/input_ids.npy" --output-dir "$OUT"
echo "logits against torch: $("$B/mpcc-npycmp" "$OUT/logits.npy" "$M/ref_logits.npy" --max-rel-l2 1e-4)"
echo
echo "== timing (20 runs)"
"$B/mpcc" run "$OUT/transformer.plan" --input ids="$M/input_ids.npy" --output-dir "$OUT" --bench 20 | tail -n 1
