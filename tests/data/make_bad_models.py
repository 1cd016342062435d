#!/usr/bin/env python3
"""Generates the small ONNX models tests/unit/test_frontend.c reads.

Run from the source root: python3 tests/data/make_bad_models.py
The outputs are committed; the tests never run Python. Most models are
deliberately broken in one way each, so onnx.checker is never called.
"""
import os

import numpy as np
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
F = TensorProto.FLOAT


def model(nodes, inits=(), inputs=None, outputs=None, opsets=(("", 13),), name="g"):
    if inputs is None:
        inputs = [helper.make_tensor_value_info("x", F, [2, 3])]
    if outputs is None:
        outputs = [helper.make_tensor_value_info("y", F, [2, 3])]
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    m.ir_version = 8
    return m


def save(m, name, sub=""):
    with open(os.path.join(HERE, sub, name), "wb") as f:
        f.write(m.SerializeToString())


def w23(name="w"):
    return numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), name)


add = helper.make_node("Add", ["x", "w"], ["y"], name="add0")

save(model([add], [w23()]), "good_add.onnx")
save(model([helper.make_node("Relu", ["t"], ["y"], name="relu0"),
            helper.make_node("Add", ["x", "w"], ["t"], name="add0")], [w23()]),
     "use_before_def.onnx")
save(model([helper.make_node("Add", ["x", "b"], ["a"], name="n_a"),
            helper.make_node("Relu", ["a"], ["b"], name="n_b"),
            helper.make_node("Identity", ["a"], ["y"], name="n_y")]), "cycle.onnx")
save(model([helper.make_node("Relu", ["x"], ["t"], name="r0"),
            helper.make_node("Neg", ["x"], ["t"], name="r1"),
            helper.make_node("Identity", ["t"], ["y"], name="r2")]), "dup_value.onnx")
save(model([add], [w23(), w23()]), "dup_init.onnx")
save(model([add]), "missing_init.onnx")

bad = w23()
bad.raw_data = bad.raw_data[:20]
save(model([add], [bad]), "raw_size.onnx")



def raw_tensor(dims):
    t = TensorProto()
    t.name, t.data_type, t.raw_data = "w", F, b""
    t.dims.extend(dims)
    return t


save(model([add], [raw_tensor([2**62, 4])]), "dims_overflow.onnx")
save(model([add], [raw_tensor([-1, 3])]), "negative_dim.onnx")

save(model([helper.make_node("FooBar", ["x"], ["y"], name="foo0")]), "unknown_op.onnx")
save(model([helper.make_node("Add", ["x", "x"], ["y"], name="add_ms", domain="com.example")],
           opsets=(("", 13), ("com.example", 1))), "unknown_domain.onnx")
save(model([add], [w23()], opsets=(("com.example", 1),)), "no_default_opset.onnx")
seq_in = helper.make_tensor_sequence_value_info("x", F, [2, 3])
save(model([helper.make_node("Identity", ["x"], ["y"], name="id0")], inputs=[seq_in]),
     "sequence_input.onnx")


def ext(loc, name):
    t = w23()
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", loc), ("offset", "8"), ("length", "24")):
        e = t.external_data.add()
        e.key, e.value = k, v
    save(model([add], [t]), name, "ext")


with open(os.path.join(HERE, "ext", "weights.bin"), "wb") as f:
    f.write(b"\xff" * 8 + np.arange(6, dtype=np.float32).tobytes() + b"\xee" * 4)
ext("weights.bin", "ext_ok.onnx")
ext("../good_add.onnx", "ext_dotdot.onnx")
ext("/etc/passwd", "ext_abs.onnx")
ext("missing.bin", "ext_missing.onnx")

# Typed data fields of every kind, one initializer each, fed to Identity nodes.
typed = [
    helper.make_tensor("f16", TensorProto.FLOAT16, [2], [1.0, -2.0]),
    helper.make_tensor("bf16", TensorProto.BFLOAT16, [2], [1.0, -2.0]),
    helper.make_tensor("b", TensorProto.BOOL, [3], [True, False, True]),
    helper.make_tensor("i8", TensorProto.INT8, [2], [-3, 7]),
    helper.make_tensor("u16", TensorProto.UINT16, [2], [65535, 2]),
    helper.make_tensor("i64", TensorProto.INT64, [2], [-(2**40), 5]),
    helper.make_tensor("f64", TensorProto.DOUBLE, [1], [0.5]),
    helper.make_tensor("u32", TensorProto.UINT32, [2], [4000000000, 1]),
    helper.make_tensor("u64", TensorProto.UINT64, [1], [2**63 + 1]),
    helper.make_tensor("f32", F, [2, 1], [1.5, 2.5]),
]
save(model([helper.make_node("Identity", ["f32"], ["y"], name="id0")], typed, inputs=[]),
     "typed_fields.onnx")

# An If whose branches read 'x' and 'w' from the enclosing graph.
then_g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t_out"], name="then_add")],
                           "then", [], [helper.make_tensor_value_info("t_out", F, [2, 3])])
else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e_out"], name="else_neg")],
                           "else", [], [helper.make_tensor_value_info("e_out", F, [2, 3])])
cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
save(model([helper.make_node("If", ["c"], ["y"], name="if0", then_branch=then_g,
                             else_branch=else_g)], [w23()],
           inputs=[helper.make_tensor_value_info("x", F, ["N", 3]), cond]), "if_capture.onnx")
