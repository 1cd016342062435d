"""Writes the digits training demo's data and models into OUT (a build folder).

scikit-learn's digits (1797 8x8 grey images of 0-9, pixels 0..16) scaled to
[0, 1] and split, stratified and with a fixed seed, into 1413 training and
384 test samples (384 = 12 batches of 32, so an eval at batch 32 reads every
test sample; a step plan's batch is fixed and `mpcc train` leaves out what
does not fill one). Two models, written with onnx.helper (opset 17, batch dim
symbolic 'N', bound at compile time with --shape), weights from a seeded He
(Relu layers) / Glorot (the last layer) uniform init in numpy, biases zero:

  mlp.onnx  x [N,64] -> Gemm 64x128 -> Relu -> Gemm 128x10 -> logits [N,10]
  cnn.onnx  image [N,1,8,8] -> Conv 1->8 3x3 pad 1 -> Relu -> MaxPool 2
            -> Conv 8->16 3x3 pad 1 -> Relu -> Flatten -> Gemm 256x10 -> logits

and the data as np.savez (stored, not compressed) files whose arrays are
named after the plans' inputs: mlp_train.npz / mlp_test.npz hold 'x'
(f32 [N,64]) and 'label' (int64 [N]); cnn_train.npz / cnn_test.npz hold
'image' (f32 [N,1,8,8]) and 'label'.

usage: /usr/bin/python3 scripts/make_digits.py OUT [--seed N]
(Debian's python3-sklearn, python3-numpy and python3-onnx; no torch.)
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

N_TEST = 384  # 12 batches of 32: the eval reads every test sample


def he_uniform(rng, shape, fan_in):
    bound = np.sqrt(6.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def glorot_uniform(rng, shape, fan_in, fan_out):
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def save_model(path, name, nodes, inp, inits):
    graph = helper.make_graph(
        nodes, name, [inp],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(a, n) for n, a in inits])
    model = helper.make_model(graph, producer_name="mpcc make_digits.py",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def mlp(rng, path):
    # Gemm with transB=1, so the weights are [out, in] as in torch's Linear
    inits = [("fc1.weight", he_uniform(rng, (128, 64), 64)),
             ("fc1.bias", np.zeros(128, np.float32)),
             ("fc2.weight", glorot_uniform(rng, (10, 128), 128, 10)),
             ("fc2.bias", np.zeros(10, np.float32))]
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], "fc1", transB=1),
        helper.make_node("Relu", ["h"], ["h_relu"], "relu1"),
        helper.make_node("Gemm", ["h_relu", "fc2.weight", "fc2.bias"], ["logits"], "fc2", transB=1),
    ]
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])
    save_model(path, "digits_mlp", nodes, inp, inits)


def cnn(rng, path):
    inits = [("conv1.weight", he_uniform(rng, (8, 1, 3, 3), 1 * 9)),
             ("conv1.bias", np.zeros(8, np.float32)),
             ("conv2.weight", he_uniform(rng, (16, 8, 3, 3), 8 * 9)),
             ("conv2.bias", np.zeros(16, np.float32)),
             ("fc.weight", glorot_uniform(rng, (10, 256), 256, 10)),
             ("fc.bias", np.zeros(10, np.float32))]
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], "conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], "pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], "conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], "relu2"),
        helper.make_node("Flatten", ["r2"], ["flat"], "flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], "fc", transB=1),
    ]
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])
    save_model(path, "digits_cnn", nodes, inp, inits)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=N_TEST, stratify=y, random_state=args.seed)
    for split, xs, ys in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        np.savez(os.path.join(args.out, "mlp_%s.npz" % split), x=xs, label=ys)
        np.savez(os.path.join(args.out, "cnn_%s.npz" % split),
                 image=xs.reshape(-1, 1, 8, 8), label=ys)

    rng = np.random.default_rng(args.seed)
    mlp(rng, os.path.join(args.out, "mlp.onnx"))
    cnn(rng, os.path.join(args.out, "cnn.onnx"))
    print("digits: %d train, %d test samples, mlp.onnx and cnn.onnx in %s"
          % (len(y_tr), len(y_te), args.out))


if __name__ == "__main__":
    main()
