#!/usr/bin/python3
"""Exports the benchmark models to ONNX at realistic sizes.

Run with Debian's python3 (it has torch):
    /usr/bin/python3 bench/make_bench_models.py OUT_DIR
Each model gets OUT_DIR/<name>/ with model.onnx and input_<name>.npy per
graph input, the layout of tests/models. The architectures are the model
tests' (tests/models/make_models.py), scaled up; nothing here is committed.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "models"))
import make_models as mm  # noqa: E402


def export(out, name, model, inputs, input_names, output_names):
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    model.eval()
    torch.onnx.export(model, tuple(inputs), os.path.join(folder, "model.onnx"),
                      input_names=input_names, output_names=output_names,
                      opset_version=mm.OPSET, do_constant_folding=True)
    for n, t in zip(input_names, inputs):
        np.save(os.path.join(folder, f"input_{n}.npy"), t.numpy())
    print(f"{name}: {os.path.getsize(os.path.join(folder, 'model.onnx'))} bytes")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench-models"
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    # MLP: MNIST-sized input, two 1024-wide hidden layers, batch 64.
    export(out, "mlp_b64", mm.MLP(784, (1024, 1024), 10),
           [torch.randn(64, 784, generator=gen)], ["x"], ["logits"])
    # ResNet-style CNN on one 224x224 image.
    cnn = mm.ResNet(1000)
    mm.randomise_bn(cnn, gen)
    export(out, "cnn_224", cnn, [torch.randn(1, 3, 224, 224, generator=gen)], ["image"],
           ["logits"])
    # BERT-style encoder: 6 layers, d=256, 4 heads, ff=1024, sequence 128.
    enc = mm.Encoder(vocab=1000, d=256, heads=4, ff=1024, layers=6, seq=128, classes=2)
    export(out, "bert6_s128", enc, [torch.randint(0, 1000, (1, 128), generator=gen)], ["ids"],
           ["logits"])
    # The two-layer LSTM over a longer sequence.
    export(out, "lstm_s64", mm.LSTMNet(), [torch.randn(8, 64, 8, generator=gen)], ["x"], ["y"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
