#!/usr/bin/python3
"""Exports the model-test architectures to ONNX with seeded weights and
writes torch's outputs as references.

Run with Debian's python3 (it has torch): /usr/bin/python3 tests/models/make_models.py
Each model gets a folder tests/models/<name>/ with model.onnx, input_<name>.npy
for every graph input and ref_<name>.npy for every output. The folders are
committed, so `make test` and `make demo` need no Python ML stack.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.dk = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x, mask):
        b, s, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q = q.reshape(b, s, self.h, self.dk).transpose(1, 2)
        k = k.reshape(b, s, self.h, self.dk).transpose(1, 2)
        v = v.reshape(b, s, self.h, self.dk).transpose(1, 2)
        att = q @ k.transpose(-2, -1) / math.sqrt(self.dk)
        att = att + mask
        att = att.softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, s, d)
        return self.proj(y)


class EncoderLayer(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), x + mlp(ln(x))."""

    def __init__(self, d, heads, ff):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.att = Attention(d, heads)
        self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, x, mask):
        x = x + self.att(self.ln1(x), mask)
        return x + self.ff2(F.gelu(self.ff1(self.ln2(x))))


class Encoder(nn.Module):
    def __init__(self, vocab=100, d=32, heads=4, ff=64, layers=2, seq=16, classes=5):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(seq, d) * 0.1)
        self.layers = nn.ModuleList([EncoderLayer(d, heads, ff) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, ids):
        s = ids.shape[1]
        causal = torch.triu(torch.full((s, s), -1e4), diagonal=1)
        x = self.tok(ids) + self.pos[:s]
        for layer in self.layers:
            x = layer(x, causal)
        return self.head(self.ln(x))


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.out(y)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(x + self.b2(self.c2(y)))


class ResNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16),
                                  nn.ReLU(), nn.MaxPool2d(2))
        self.blocks = nn.Sequential(Block(16), Block(16))
        self.down = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.block3 = Block(32)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.block3(F.relu(self.down(self.blocks(self.stem(x)))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class MLP(nn.Module):
    def __init__(self, d_in=64, hidden=(128, 64), classes=10):
        super().__init__()
        dims = (d_in,) + hidden
        self.hidden = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims, dims[1:])])
        self.out = nn.Linear(dims[-1], classes)

    def forward(self, x):
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.out(x)


def randomise_bn(model, gen):
    """Gives BatchNorm non-trivial running statistics, so the test checks them."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


def export(name, model, inputs, input_names, output_names):
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    model.eval()
    with torch.no_grad():
        outs = model(*inputs)
    if not isinstance(outs, tuple):
        outs = (outs,)
    torch.onnx.export(model, tuple(inputs), os.path.join(folder, "model.onnx"),
                      input_names=input_names, output_names=output_names,
                      opset_version=OPSET, do_constant_folding=True)
    for n, t in zip(input_names, inputs):
        np.save(os.path.join(folder, f"input_{n}.npy"), t.numpy())
    for n, t in zip(output_names, outs):
        np.save(os.path.join(folder, f"ref_{n}.npy"), t.numpy())
    print(f"{name}: {os.path.getsize(os.path.join(folder, 'model.onnx'))} bytes")


def build_models():
    """The four seeded models with their inputs, in export order, as tuples
    (name, model, inputs, input_names, output_names). Reseeds torch's global
    generator, so every call builds the same weights; export() draws no
    random numbers, so building all first leaves the files unchanged.
    tests/models/compare_autocast.py imports this."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    models = [("transformer", Encoder(), [torch.randint(0, 100, (2, 16), generator=gen)],
               ["ids"], ["logits"])]
    models.append(("lstm", LSTMNet(), [torch.randn(2, 10, 8, generator=gen)], ["x"], ["y"]))
    cnn = ResNet()
    randomise_bn(cnn, gen)
    models.append(("cnn", cnn, [torch.randn(2, 3, 32, 32, generator=gen)], ["image"], ["logits"]))
    models.append(("mlp", MLP(), [torch.randn(4, 64, generator=gen)], ["x"], ["logits"]))
    return models


def main():
    for spec in build_models():
        export(*spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
