#!/usr/bin/env bash
# make demo: compile the bundled example (a small pre-norm transformer
# encoder exported from torch by tests/models/make_models.py), show its IR
# summary and plan, run it on the example input, check the result against
# torch's, and time it. Then training: scikit-learn's digits and an MLP
# (scripts/make_digits.py, into BUILD/digits), compiled into an fp16 step
# plan with --train, its precision decisions, and `mpcc train`: the loss per
# epoch, then a lower learning rate resumed from the checkpoint, with the
# test accuracy.
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
grep ' = ' "$OUT/ir.txt" | grep -v '^ *const' | sed -n 1,6p | cut -c1-150
echo
echo "== inspect"
"$B/mpcc" inspect "$OUT/transformer.plan" | sed -n 1,20p
echo
echo "== run on the example input"
"$B/mpcc" run "$OUT/transformer.plan" --input ids="$M/input_ids.npy" --output-dir "$OUT"
# the plan is auto precision (the default), held to a relative error of 1e-3
# against the f32 plan: check it against torch's f32 output at that budget
cmp=$("$B/mpcc-npycmp" "$OUT/logits.npy" "$M/ref_logits.npy" --max-rel-l2 1e-3) ||
  { echo "logits against torch: $cmp: over the auto budget" >&2; exit 1; }
echo "logits against torch (auto precision, budget 1e-3): $cmp"
echo
echo "== timing (20 runs)"
"$B/mpcc" run "$OUT/transformer.plan" --input ids="$M/input_ids.npy" --output-dir "$OUT" --bench 20 | tail -n 1
echo
echo "== train: digits (8x8 images of 0-9) with an MLP 64-128-10, mixed precision"
D=$B/digits
/usr/bin/python3 scripts/make_digits.py "$D"
train_plan() { # LR PLAN: an fp16 step plan, Adam, softmax cross entropy, batch 32 (CPU)
  "$B/mpcc" "$D/mlp.onnx" -o "$2" --precision fp16 --shape x=32x64 --train \
    --loss softmax_cross_entropy --label label --optimizer adam --lr "$1" --cuda-archs none
}
train_plan 3e-3 "$OUT/digits.plan"
"$B/mpcc" inspect "$OUT/digits.plan" --precision > "$OUT/digits_precision.txt"
echo "precision of the step plan (full table in $OUT/digits_precision.txt):"
echo "  in f16, forward and backward:"
awk '/^totals:/ { exit } t && $5 == "f16" && $3 != "Cast" {
       printf "    %-16s %-8s compute %s, accumulate %s: %s\n", $2, $3, $5, $6, substr($0, index($0, $10)) }
     /^id / { t = 1 }' "$OUT/digits_precision.txt"
echo "  in f32 (the loss, gradient sums, unscaling, the Adam updates), by op: $(awk '
  /^totals:/ { exit } t && $5 == "f32" && $3 != "Cast" { print $3 } /^id / { t = 1 }' "$OUT/digits_precision.txt" |
  sort | uniq -c | sort -rn | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }')"
sed -n '/^totals:/,/^notes:/p' "$OUT/digits_precision.txt" | grep -E '^  (casts|FLOPs|low precision)'
echo "-- 12 epochs at lr 3e-3 (f16 matrix ops, f32 master weights and Adam state, dynamic loss scale)"
"$B/mpcc" train "$OUT/digits.plan" --data "$D/mlp_train.npz" --epochs 12 --batch 32 --shuffle 1 \
  --checkpoint "$OUT/digits.ckpt" 2> /dev/null
echo "-- 4 more at lr 3e-4: a second plan resumed from the checkpoint, evaluated on the test set"
train_plan 3e-4 "$OUT/digits_lr3e-4.plan" > /dev/null
"$B/mpcc" train "$OUT/digits_lr3e-4.plan" --resume "$OUT/digits.ckpt" --data "$D/mlp_train.npz" \
  --eval "$D/mlp_test.npz" --epochs 4 --batch 32 --shuffle 2 2> /dev/null | tee "$OUT/digits_train.txt"
awk '$1 == "eval" { a = $6 } END { printf "test accuracy: %.2f%% of %d held-out digits\n", 100 * a, 384 }' \
  "$OUT/digits_train.txt"
