#!/usr/bin/env bash
# `mpcc train` and `mpcc inspect` on training step plans (issue 4): the plans
# are built by hand in the IR by test_train_runtime --write-plans (linear
# regression; a two-class classifier whose loss scale is a second state; an
# inference plan), the data written as np.savez does (Python's zipfile with
# force_zip64, stored), so the .npz reader meets a real zip writer. Checks:
# the inspect block, per-epoch lines, loss falling, the dropped-samples note,
# accuracy and loss scale, --eval, --log rows, a seeded shuffle being
# reproducible, --checkpoint/--resume continuing bit for bit, the collapse
# guard stopping on NaN data, and one-line errors with the right exit status. `mpcc export` gets a plan compiled from
# tests/models/mlp with --train: its export without a checkpoint computes
# what the source model does, bit for bit; with one, something else; plans
# without a source model are refused.
# usage: bash tests/test_cli_train.sh BUILD_DIR   (from the source root)
set -euo pipefail
build=${1:-build}
mpcc="$build/mpcc"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "test_cli_train: $*" >&2; exit 1; }

"$build/test_train_runtime" --write-plans "$work" || fail "cannot write the plans"

/usr/bin/env python3 - "$work" <<'PY' || fail "cannot write the data"
import random, struct, sys, zipfile
work = sys.argv[1]

def npy(descr, shape, fmt, values):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(tuple(shape)))
    hdr += ' ' * ((64 - (10 + len(hdr) + 1) % 64) % 64) + '\n'
    return (b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode() +
            struct.pack('<%d%s' % (len(values), fmt), *values))

def savez(path, arrays, method=zipfile.ZIP_STORED):
    # what np.savez does: one NAME.npy member each, zip64 forced (gh-10776)
    with zipfile.ZipFile(path, 'w', method) as z:
        for name, blob in arrays:
            with z.open(name + '.npy', 'w', force_zip64=True) as f:
                f.write(blob)

rng = random.Random(7)
def xs(n):
    return [rng.uniform(-1, 1) for _ in range(3 * n)]

w = [1.5, -2.0, 0.5]
x = xs(100)
y = [sum(x[3 * i + j] * w[j] for j in range(3)) for i in range(100)]
reg = [('x', npy('<f4', (100, 3), 'f', x)), ('y', npy('<f4', (100, 1), 'f', y))]
savez(work + '/reg.npz', reg)
savez(work + '/reg_deflate.npz', reg, zipfile.ZIP_DEFLATED)
savez(work + '/reg_nolabel.npz', reg[:1])
savez(work + '/reg_wide.npz', [reg[0], ('y', npy('<f4', (100, 2), 'f', y + y))])
savez(work + '/reg_nan.npz', [('x', npy('<f4', (96, 3), 'f', [float('nan')] + x[1:288])),
                            ('y', npy('<f4', (96, 1), 'f', y[:96]))])

v = [1.0, 1.0, -0.5]
for name, n in (('cls', 96), ('cls_eval', 48)):
    x = xs(n)
    lab = [int(sum(x[3 * i + j] * v[j] for j in range(3)) > 0) for i in range(n)]
    savez(work + '/%s.npz' % name,
          [('x', npy('<f4', (n, 3), 'f', x)), ('label', npy('<i8', (n, 1), 'q', lab))])

# for tests/models/mlp (x f32 [4,64], 10 classes)
x = [rng.uniform(-1, 1) for _ in range(32 * 64)]
lab = [rng.randrange(10) for _ in range(32)]
savez(work + '/mlp.npz', [('x', npy('<f4', (32, 64), 'f', x)), ('y', npy('<i8', (32,), 'q', lab))])
PY

# inspect shows the training block
"$mpcc" inspect "$work/linreg.plan" > "$work/inspect.txt"
grep -q "^training: sgd lr=0.5, mse, no loss scaling$" "$work/inspect.txt" || fail "inspect: recipe"
grep -q "^  state 'w' f32 \[3,1\] -> 'w_next'$" "$work/inspect.txt" || fail "inspect: state"
grep -q "^  label: 'y' f32 \[16,1\]$" "$work/inspect.txt" || fail "inspect: label"
grep -q "^  loss scale: none$" "$work/inspect.txt" || fail "inspect: loss scale"
! "$mpcc" inspect "$work/inference.plan" | grep -q "^training:" || fail "inference plan has a block"

# train: one line per epoch (stdout is no terminal), loss falling, a note
# about the 4 samples that do not fill a batch of 16
"$mpcc" train "$work/linreg.plan" --data "$work/reg.npz" --epochs 4 --batch 16 --shuffle 3 \
  --eval "$work/reg.npz" --log "$work/log.csv" --checkpoint "$work/ck" > "$work/out.txt" \
  2> "$work/err.txt" || fail "train failed: $(cat "$work/err.txt")"
[ "$(grep -c '^epoch [1-4]/4: loss .*, loss scale 1, skipped 0, [0-9]* samples/s$' "$work/out.txt")" = 4 ] ||
  fail "epoch lines: $(cat "$work/out.txt")"
[ "$(grep -c '^eval [1-4]/4: loss ' "$work/out.txt")" = 4 ] || fail "eval lines"
! grep -q accuracy "$work/out.txt" || fail "accuracy printed for a float label"
grep -q "the last 4 of 100 samples do not fill a batch of 16" "$work/err.txt" || fail "no note"
[ "$(wc -l < "$work/err.txt")" = 1 ] || fail "more than one note: $(cat "$work/err.txt")"
awk '/^epoch/ { l = $4 + 0; if (seen && !(l < prev)) bad = 1; prev = l; seen = 1 }
     END { exit bad }' "$work/out.txt" || fail "loss did not fall: $(cat "$work/out.txt")"
awk '/^epoch 1/ { first = $4 + 0 } /^epoch 4/ { exit !($4 + 0 < first / 100) }' "$work/out.txt" ||
  fail "no convergence: $(grep '^epoch 4' "$work/out.txt")"
[ "$(head -1 "$work/log.csv")" = "step,epoch,loss,loss_scale,skipped" ] || fail "log header"
[ "$(wc -l < "$work/log.csv")" = 25 ] || fail "log rows: $(wc -l < "$work/log.csv")"
[ "$(sed -n 25p "$work/log.csv" | cut -d, -f1,2,4,5)" = "24,4,1,0" ] || fail "last log row"

# the same seed gives the same run; resuming epoch 4 from the epoch-3
# checkpoint gives the same steps bit for bit
"$mpcc" train "$work/linreg.plan" --data "$work/reg.npz" --epochs 3 --batch 16 --shuffle 3 \
  --log "$work/log3.csv" --checkpoint "$work/ck3" > /dev/null 2>&1 || fail "3 epochs"
cmp -s <(head -19 "$work/log.csv") "$work/log3.csv" || fail "a seeded shuffle is not reproducible"
# epoch 4 of the first run shuffled with the generator after three epochs;
# a resumed run starts its generator afresh, so compare against a plain
# (unshuffled) continuation instead
"$mpcc" train "$work/linreg.plan" --data "$work/reg.npz" --epochs 4 --batch 16 \
  --log "$work/plain.csv" --checkpoint "$work/ckp" > /dev/null 2>&1 || fail "plain run"
"$mpcc" train "$work/linreg.plan" --data "$work/reg.npz" --epochs 3 --batch 16 \
  --checkpoint "$work/ckp3" > /dev/null 2>&1 || fail "plain 3 epochs"
"$mpcc" train "$work/linreg.plan" --data "$work/reg.npz" --epochs 1 --batch 16 \
  --resume "$work/ckp3" --log "$work/resumed.csv" --checkpoint "$work/ckr" > /dev/null 2>&1 ||
  fail "resume"
cmp -s <(sed -n '20,25p' "$work/plain.csv" | cut -d, -f1,3-) \
  <(sed -n '2,7p' "$work/resumed.csv" | cut -d, -f1,3-) || fail "resumed steps differ"
cmp -s "$work/ckp" "$work/ckr" || fail "resumed checkpoint differs from the uninterrupted one"

# the classifier: accuracy, the loss scale (a state) reaching its cap
"$mpcc" train "$work/classifier.plan" --data "$work/cls.npz" --epochs 3 --batch 16 \
  --eval "$work/cls_eval.npz" --checkpoint "$work/cls.ck" > "$work/cls.txt" 2> "$work/cls_err.txt" ||
  fail "classifier: $(cat "$work/cls_err.txt")"
[ ! -s "$work/cls_err.txt" ] || fail "classifier wrote to stderr: $(cat "$work/cls_err.txt")"
grep -q '^epoch 1/3: loss .*, accuracy 0\.[0-9]*, loss scale 32, skipped 0' "$work/cls.txt" ||
  fail "classifier epoch 1: $(cat "$work/cls.txt")"
grep -q '^epoch 3/3: .*, loss scale 1024, ' "$work/cls.txt" || fail "loss scale cap"
awk '/^eval 3\/3/ { a = $6 + 0; exit !(a >= 0.75) }' "$work/cls.txt" ||
  fail "eval accuracy: $(grep '^eval 3' "$work/cls.txt")"

# errors: one line, exit 1 (2 for usage)
check_error() { # expected-status pattern command...
  local want=$1 pat=$2; shift 2
  set +e; "$@" > /dev/null 2> "$work/e.txt"; local rc=$?; set -e
  [ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want: $(cat "$work/e.txt")"
  grep -q -- "$pat" "$work/e.txt" || fail "'$*': message '$(cat "$work/e.txt")' lacks '$pat'"
  [ "$(wc -l < "$work/e.txt")" = 1 ] || fail "'$*': more than one line"
}
t="$mpcc train $work/linreg.plan"
check_error 2 "--batch 8: the plan was compiled for batch 16" $t --data "$work/reg.npz" --epochs 1 --batch 8
check_error 2 "--epochs N is required" $t --data "$work/reg.npz" --batch 16
check_error 1 "no array 'y' (the plan's label; the file holds 'x')" \
  $t --data "$work/reg_nolabel.npz" --epochs 1 --batch 16
check_error 1 "compressed (deflate); write the file with np.savez, not np.savez_compressed" \
  $t --data "$work/reg_deflate.npz" --epochs 1 --batch 16
check_error 1 "no array 'label' (the plan's label; the file holds 'x', 'y')" \
  "$mpcc" train "$work/classifier.plan" --data "$work/reg.npz" --epochs 1 --batch 16
check_error 1 "array 'y' is f32 \[100,2\], the plan wants f32 \[N,1\]" \
  $t --data "$work/reg_wide.npz" --epochs 1 --batch 16
check_error 1 "is not a training step plan" "$mpcc" train "$work/inference.plan" \
  --data "$work/reg.npz" --epochs 1 --batch 16
check_error 1 "checkpoint holds 2 tensors, the plan's state has 1" \
  $t --data "$work/reg.npz" --epochs 1 --batch 16 --resume "$work/cls.ck"
check_error 1 "not an mpcc checkpoint" \
  $t --data "$work/reg.npz" --epochs 1 --batch 16 --resume "$work/linreg.plan"
check_error 1 "step 1 of epoch 1: training stopped at step 1: 1 step in a row skipped; input 'x' holds NaN at element 0 of f32 \[16,3\]" \
  $t --data "$work/reg_nan.npz" --epochs 1 --batch 16 --max-skips 1
check_error 2 "--max-skips wants a count >= 0, got '-1'" \
  $t --data "$work/reg.npz" --epochs 1 --batch 16 --max-skips -1
"$mpcc" train --help | grep -q "^usage: mpcc train PLAN" || fail "train --help"

# export: the trained weights written into the plan's source model (trained
# on the CPU: no GPU binaries, which would take NVRTC seconds)
mlp=tests/models/mlp
"$mpcc" "$mlp/model.onnx" -o "$work/mlp_step.plan" --precision fp32 --train --cuda-archs none \
  --loss softmax_cross_entropy --label y --optimizer adam --lr 0.01 || fail "compile the mlp step"
"$mpcc" train "$work/mlp_step.plan" --data "$work/mlp.npz" --epochs 2 --batch 4 \
  --checkpoint "$work/mlp.ck" > /dev/null || fail "train the mlp"
"$mpcc" export "$work/mlp_step.plan" -o "$work/initial.onnx" || fail "export without a checkpoint"
"$mpcc" export "$work/mlp_step.plan" --checkpoint "$work/mlp.ck" -o "$work/trained.onnx" ||
  fail "export with a checkpoint"
for m in "$mlp/model.onnx" "$work/initial.onnx" "$work/trained.onnx"; do
  out="$work/out_$(basename "$m" .onnx)"
  "$mpcc" "$m" -o "$out.plan" --precision fp32 --cuda-archs none || fail "compile the export $m"
  "$mpcc" run "$out.plan" --input x="$mlp/input_x.npy" --output-dir "$out" || fail "run $m"
done
cmp -s "$work/out_model/logits.npy" "$work/out_initial/logits.npy" ||
  fail "the export of the initial weights computes something else than the source"
! cmp -s "$work/out_model/logits.npy" "$work/out_trained/logits.npy" ||
  fail "the trained export computes what the source does"
check_error 1 "linreg.plan: plan has no source model: recompile it with this mpcc" \
  "$mpcc" export "$work/linreg.plan" -o "$work/x.onnx"
check_error 1 "is not a training step plan" "$mpcc" export "$work/inference.plan" -o "$work/x.onnx"
check_error 1 "checkpoint holds 1 tensors, the plan's state has 19" \
  "$mpcc" export "$work/mlp_step.plan" --checkpoint "$work/ck" -o "$work/x.onnx"
check_error 2 "-o MODEL.onnx is required" "$mpcc" export "$work/mlp_step.plan"
[ ! -e "$work/x.onnx" ] || fail "a failed export wrote a file"
"$mpcc" export --help | grep -q "^usage: mpcc export PLAN" || fail "export --help"
echo "test_cli_train: ok"
