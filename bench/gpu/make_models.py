#!/usr/bin/env python3
"""Writes the GPU micro-benchmark models and their inputs (scripts/gpu-check.sh).

usage: python3 bench/gpu/make_models.py OUT_DIR [--sizes 1024,2048,4096,8192]
                                                [--elems-log2 26]

Needs onnx and numpy only (Debian's /usr/bin/python3 here, the image's
python3 on the GPU machine). Writes into OUT_DIR:

  matmul_N.onnx, matmul_N_a.npy, matmul_N_b.npy   Y = A @ B, A and B f32 [N, N]
      graph inputs. gpu-check compiles it with --precision fp16|bf16
      --no-fuse, so the plan is: cast A, cast B (f32 -> 16-bit, their own
      kernels, as --no-fuse keeps them out of the matrix kernel), the
      tensor-core MatMul kernel reading the two 16-bit tensors, and the
      cast of its 16-bit result back to f32. `mpcc run --profile` times each
      launch, and the table takes the MatMul kernel's row alone: that is the
      kernel the issue asks about (16-bit operands in device memory, f32
      accumulation, 16-bit result), with no cast in its loads. Why not
      16-bit graph inputs: .npy has no bfloat16, so bf16 inputs cannot be
      fed to `mpcc run`; f16 could, but one recipe for both keeps the
      two dtypes comparable.
  eltwise.onnx, eltwise_x.npy (f32), eltwise_x_f16.npy (f16)
      y = tanh(x * a + b) * c over 2^E elements (a, b, c scalar
      initializers): four elementwise nodes that mpcc's fusion makes one
      kernel, reading x once and writing y once. Compiled with --precision
      fp32 (f32 in and out: 8 bytes moved per element) and --precision fp16
      --low-io (f16 in and out: 4 bytes per element).
  shapes.txt   one line per model: NAME FLOPS_OR_ELEMENTS, for the table.

Inputs are seeded random normals, never zeros (zeros can run faster).
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = 17
A, B, C = 0.75, 0.125, 1.5  # the elementwise chain's constants


def matmul_model(n):
    x = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    w = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])
    node = helper.make_node("MatMul", ["a", "b"], ["y"], name="matmul")
    g = helper.make_graph([node], f"matmul_{n}", [x, w], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])


def eltwise_model(count):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [count])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [count])
    consts = [helper.make_tensor(k, TensorProto.FLOAT, [1], [v])
              for k, v in (("ca", A), ("cb", B), ("cc", C))]
    nodes = [
        helper.make_node("Mul", ["x", "ca"], ["t0"], name="scale"),
        helper.make_node("Add", ["t0", "cb"], ["t1"], name="shift"),
        helper.make_node("Tanh", ["t1"], ["t2"], name="tanh"),
        helper.make_node("Mul", ["t2", "cc"], ["y"], name="gain"),
    ]
    g = helper.make_graph(nodes, "eltwise", [x], [y], initializer=consts)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--sizes", default="1024,2048,4096,8192")
    ap.add_argument("--elems-log2", type=int, default=26)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    shapes = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        onnx.save(matmul_model(n), os.path.join(args.out, f"matmul_{n}.onnx"))
        for side in "ab":
            a = rng.standard_normal((n, n), dtype=np.float32)
            np.save(os.path.join(args.out, f"matmul_{n}_{side}.npy"), a)
        shapes.append(f"matmul_{n} {2 * n * n * n}")
    count = 1 << args.elems_log2
    onnx.save(eltwise_model(count), os.path.join(args.out, "eltwise.onnx"))
    x = rng.standard_normal(count, dtype=np.float32)
    np.save(os.path.join(args.out, "eltwise_x.npy"), x)
    np.save(os.path.join(args.out, "eltwise_x_f16.npy"), x.astype(np.float16))
    shapes.append(f"eltwise {count}")
    with open(os.path.join(args.out, "shapes.txt"), "w") as f:
        f.write("\n".join(shapes) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
