"""ONNX Slice whose starts or ends come from Shape: kcc's ``slice_to``, dynamic batch AND length.

A learned position table (12 rows, more than any length used here) is cut to the
sequence length ``T`` read from ``Shape(x)``, as KerasHub's PositionEmbedding does;
a window starts at ``T - 3``; a column slice with step 2 runs on axis 1 with a
bound of int32 dtype; tf2onnx's spelling of a TensorFlow ``Slice(begin, size)``
tests ``size == -1`` before adding. Each model is imported, emitted and run in
onnxruntime (default options) at (2, 5) and (3, 9) against onnxruntime running the
original. The table cut is typed ``(seq, 8)`` in the IR; with fixed dims every
bound folds and the emitted Slice reads only initializers.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

import kcc
from kcc.errors import KccError
from kcc.frontends.onnx import import_onnx_model
from kcc.testing import assert_close, assert_not_degenerate, run_onnx

SIZES = [(2, 5), (3, 9)]
F, MAX_LEN = 8, 12


def _const(name: str, value) -> onnx.NodeProto:
    return h.make_node("Constant", [], [name], value=nh.from_array(np.asarray(value), name))


def _table(name: str = "table", shape=(MAX_LEN, F)) -> onnx.TensorProto:
    return nh.from_array(np.random.default_rng(3).standard_normal(shape).astype(np.float32), name)


def _model(nodes, outputs, inits=(), batch="batch", seq="seq") -> onnx.ModelProto:
    x = h.make_tensor_value_info("x", TP.FLOAT, [batch, seq, F])
    outs = [h.make_tensor_value_info(n, TP.FLOAT, dims) for n, dims in outputs]
    m = h.make_model(h.make_graph(nodes, "g", [x], outs, list(inits)), opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def _length(dtype=np.int64) -> list[onnx.NodeProto]:
    """``t1`` = [T] (1-D, int64) from Shape(x), and ``t1c`` its int32 cast when ``dtype`` asks."""
    nodes = [h.make_node("Shape", ["x"], ["s"]), _const("i1", np.array([1], np.int64)),
             h.make_node("Gather", ["s", "i1"], ["t1"], axis=0)]
    if dtype != np.int64:
        nodes.append(h.make_node("Cast", ["t1"], ["t1c"], to=TP.INT32))
    return nodes


def positions(**dims) -> onnx.ModelProto:
    """x + table[0:T] (broadcast over the batch)."""
    nodes = _length() + [_const("z", np.array([0], np.int64)), _const("a0", np.array([0], np.int64)),
                         h.make_node("Slice", ["table", "z", "t1", "a0"], ["pos"]),
                         h.make_node("Add", ["x", "pos"], ["out"])]
    return _model(nodes, [("out", ["B", "T", F])], [_table()], **dims)


def window(**dims) -> onnx.ModelProto:
    """x[:, T-3:] * 2: a run-time start, the end INT64_MAX."""
    nodes = _length() + [_const("three", np.array([3], np.int64)), h.make_node("Sub", ["t1", "three"], ["st"]),
                         _const("end", np.array([np.iinfo(np.int64).max], np.int64)),
                         _const("a1", np.array([1], np.int64)),
                         h.make_node("Slice", ["x", "st", "end", "a1"], ["w"]),
                         _const("two", np.float32(2.0)), h.make_node("Mul", ["w", "two"], ["out"])]
    return _model(nodes, [("out", ["B", 3, F])], **dims)


def strided_columns(**dims) -> onnx.ModelProto:
    """table (8, 12)[:, 0:T:2] with int32 bounds, summed into x's features: axis 1, step 2."""
    nodes = _length(np.int32) + [
        _const("z", np.array([0], np.int32)), _const("a1", np.array([1], np.int32)),
        _const("st2", np.array([2], np.int32)),
        h.make_node("Slice", ["table", "z", "t1c", "a1", "st2"], ["cols"]),       # (8, ceil(T/2))
        _const("r1", np.array([1], np.int64)),
        h.make_node("ReduceSum", ["cols", "r1"], ["csum"], keepdims=0),          # (8,)
        h.make_node("Add", ["x", "csum"], ["out"])]
    return _model(nodes, [("out", ["B", "T", F])], [_table(shape=(F, MAX_LEN))], **dims)


def tf_slice(**dims) -> onnx.ModelProto:
    """tf2onnx's TensorFlow Slice(table, [0, 0], [T, 8]): ends = begin + size + (size == -1) * INT32_MAX."""
    nodes = _length(np.int32) + [
        _const("f", np.array([F], np.int32)), h.make_node("Concat", ["t1c", "f"], ["size"], axis=0),
        _const("m1", np.array([-1], np.int32)), h.make_node("Equal", ["m1", "size"], ["all"]),
        h.make_node("Cast", ["all"], ["alli"], to=TP.INT32),
        _const("big", np.array([np.iinfo(np.int32).max], np.int32)), h.make_node("Mul", ["big", "alli"], ["pad"]),
        h.make_node("Add", ["size", "pad"], ["sz"]),
        _const("begin", np.array([0, 0], np.int32)), h.make_node("Add", ["begin", "sz"], ["ends"]),
        h.make_node("Slice", ["table", "begin", "ends"], ["pos"]),
        h.make_node("Add", ["x", "pos"], ["out"])]
    return _model(nodes, [("out", ["B", "T", F])], [_table()], **dims)


MODELS = [positions, window, strided_columns, tf_slice]


def _feed(b: int, t: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(10 * b + t).standard_normal((b, t, F)).astype(np.float32)}


@pytest.mark.parametrize("build", MODELS, ids=lambda f: f.__name__)
def test_dynamic_slice_matches_onnxruntime_at_two_sizes(build):
    source = build()
    emitted = kcc.compile(source, target="onnx")
    assert "Slice" in [n.op_type for n in emitted.graph.node]
    for b, t in SIZES:
        feed = _feed(b, t)
        (want,), (got,) = run_onnx(source, feed), run_onnx(emitted, feed)
        assert_not_degenerate(want, build.__name__)
        assert got.shape == want.shape, (got.shape, want.shape)
        assert_close(want, got, 1e-5, what=f"{build.__name__} at {(b, t)}")


@pytest.mark.parametrize("build", [positions, tf_slice], ids=lambda f: f.__name__)
def test_the_table_cut_is_typed_by_the_sequence_length(build):
    graph = import_onnx_model(build())
    (cut,) = [n for n in graph.nodes() if n.op == "slice_to"]
    assert cut.output.shape == ("seq", F)
    (add,) = [n for n in graph.nodes() if n.op == "add" and n.inputs[0].name == "x"]
    assert add.output.shape == ("N", "seq", F)


@pytest.mark.parametrize("build", MODELS, ids=lambda f: f.__name__)
def test_fixed_dims_make_it_the_static_slice(build):
    b, t = SIZES[1]
    source = build(batch=b, seq=t)
    emitted = kcc.compile(source, target="onnx")
    inits = {i.name for i in emitted.graph.initializer}
    ops = [n.op_type for n in emitted.graph.node]
    assert not {"Shape", "Gather", "Concat", "Equal", "Sub"} & set(ops), ops
    for n in emitted.graph.node:
        if n.op_type == "Slice":
            assert all(i in inits for i in n.input[1:]), n.input
    feed = _feed(b, t)
    assert_close(run_onnx(source, feed)[0], run_onnx(emitted, feed)[0], 1e-5, what=build.__name__)


def test_run_time_axes_are_refused():
    nodes = _length() + [_const("z", np.array([0], np.int64)),
                         h.make_node("Sub", ["t1", "t1"], ["ax"]),
                         h.make_node("Slice", ["table", "z", "t1", "ax"], ["pos"]),
                         h.make_node("Add", ["x", "pos"], ["out"])]
    source = _model(nodes, [("out", ["B", "T", F])], [_table()])
    with pytest.raises(KccError, match=r"input 3 \(axes\) must be a constant"):
        kcc.compile(source, target="onnx")
