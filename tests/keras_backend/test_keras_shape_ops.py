"""The shape ops (shape, range, expand, reshape_to, slice_to) come back to Keras with their axes still dynamic.

A hand-written ONNX graph with a dynamic batch N and sequence T uses each of
them the way exported transformers do: position ids from ``Range(0, T)`` (int
and, through a Cast, float), a position table cut by ``Slice`` to T rows, a
padding mask broadcast by ``Expand`` to (N, T, T), and a ``Reshape`` to a
shape built from ``Shape``/``Gather``/``Concat`` that merges N and T around a
MatMul and splits them again, and a mean over T divided by T read from
``Shape`` at run time. The Keras model is saved, reloaded in safe mode
and compared with onnxruntime (default options) at two (N, T), with unequal
sizes so a swapped axis shows. ``regroup``, the factor matching behind the
dynamic reshapes, has its own table.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from kcc.api import compile_model
from kcc.backends.keras.emit_shape import regroup
from kcc.errors import UnsupportedOpError
from kcc.testing import assert_close, assert_not_degenerate, run_onnx

F, ROWS = 6, 12


def _const(name: str, array) -> object:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name))


def dynamic_model():
    """x (N, T, 6), mask (N, T) -> mixed (N, T, 6), attention mask (N, T, T), mean over T (N, 6)."""
    rng = np.random.default_rng(3)
    table = numpy_helper.from_array(rng.normal(size=(ROWS, F)).astype(np.float32), "table")
    w = numpy_helper.from_array(rng.normal(size=(F, F)).astype(np.float32), "w")
    n = helper.make_node
    nodes = [
        _const("i0", np.int64(0)), _const("i1", np.int64(1)), _const("ax0", np.array([0], np.int64)),
        _const("f0", np.float32(0)), _const("f1", np.float32(1)), _const("idx1", np.array([1], np.int64)),
        _const("idx0", np.array([0], np.int64)), _const("c23", np.array([2, 3], np.int64)),
        _const("cm1", np.array([-1, F], np.int64)), _const("ax1", np.array([1], np.int64)),
        n("Shape", ["x"], ["s"]),
        n("Gather", ["s", "i1"], ["t"], axis=0),                       # T, a scalar
        n("Range", ["i0", "t", "i1"], ["pos"]),                        # 0 .. T-1 (int64)
        n("Gather", ["table", "pos"], ["pos_emb"], axis=0),            # (T, 6)
        n("Cast", ["t"], ["tf"], to=TensorProto.FLOAT),
        n("Range", ["f0", "tf", "f1"], ["posf"]),                      # 0. .. T-1. (float)
        n("Unsqueeze", ["posf", "ax1"], ["posf_col"]),                 # (T, 1)
        n("Unsqueeze", ["t", "ax0"], ["t1"]),
        n("Slice", ["table", "idx0", "t1", "ax0"], ["rows"]),          # table[0:T] (T, 6)
        n("Add", ["x", "pos_emb"], ["a"]),
        n("Mul", ["rows", "posf_col"], ["rows_scaled"]),
        n("Add", ["a", "rows_scaled"], ["b"]),                         # (N, T, 6)
        n("Reshape", ["b", "cm1"], ["flat"]),                          # (N*T, 6)
        n("MatMul", ["flat", "w"], ["mm"]),
        n("Gather", ["s", "idx0"], ["nn"], axis=0),
        n("Gather", ["s", "idx1"], ["tt"], axis=0),
        n("Concat", ["nn", "tt", "c23"], ["split_shape"], axis=0),
        n("Reshape", ["mm", "split_shape"], ["split"]),                # (N, T, 2, 3)
        n("Softmax", ["split"], ["soft"], axis=-1),
        n("Shape", ["b"], ["sb"]),
        n("Reshape", ["soft", "sb"], ["mixed"]),                       # (N, T, 6)
        n("Unsqueeze", ["mask", "ax1"], ["m3"]),                       # (N, 1, T)
        n("Concat", ["nn", "tt", "tt"], ["ntt"], axis=0),
        n("Expand", ["m3", "ntt"], ["att_mask"]),                      # (N, T, T)
        n("ReduceSum", ["x", "ax1"], ["total"], keepdims=0),           # (N, 6)
        n("Div", ["total", "tf"], ["mean"]),                           # sum / T: the run-time T as a number
    ]
    graph = helper.make_graph(
        nodes, "dynamic_shapes",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", F]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", "T"])],
        [helper.make_tensor_value_info("mixed", TensorProto.FLOAT, ["N", "T", F]),
         helper.make_tensor_value_info("att_mask", TensorProto.FLOAT, ["N", "T", "T"]),
         helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["N", F])],
        initializer=[table, w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    return model


def _inputs(batch: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, steps), np.float32)
    mask[1:, steps - 2:] = 0.0  # real zeros: padding at the end of every row but the first
    return {"x": rng.normal(size=(batch, steps, F)).astype(np.float32), "mask": mask}


def test_shape_ops_keep_batch_and_sequence_dynamic(tmp_path):
    onx = dynamic_model()
    result = compile_model(onx, target="keras")
    ops = set(result.graph.op_types())
    assert {"shape", "range", "slice_to", "reshape_to", "expand"} <= ops, ops
    path = tmp_path / "dynamic.keras"
    result.model.save(path)
    model = keras.models.load_model(path, safe_mode=True)
    assert [tuple(t.shape) for t in model.inputs] == [(None, None, F), (None, None)]
    assert "Lambda" not in {type(l).__name__ for l in model.layers}
    for batch, steps, seed in ((3, 9, 0), (2, 5, 1)):
        feeds = _inputs(batch, steps, seed)
        want = run_onnx(onx, feeds)
        got = model([feeds["x"], feeds["mask"]])
        for i, (w, g) in enumerate(zip(want, got)):
            assert_not_degenerate(w, f"output {i}")
            assert np.asarray(g).shape == w.shape
            assert_close(w, np.asarray(g), tol=1e-5, what=f"output {i} at (N, T) = ({batch}, {steps})")


def test_a_reshape_keras_cannot_take_is_a_clear_error():
    """(N, T, S) -> (N*T*S,) -> relu -> back to (N, T, S): three run-time dims out of one, which no Keras reshape
    (one run-time dim besides the batch) can make. The error names the op, the node and the source node."""
    n = helper.make_node
    nodes = [_const("m1", np.array([-1], np.int64)), n("Shape", ["x"], ["s"]),
             n("Reshape", ["x", "m1"], ["flat"]), n("Relu", ["flat"], ["r"], name="flat_relu"),
             n("Reshape", ["r", "s"], ["y"], name="back")]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", "S"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "T", "S"])])
    onx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onx.ir_version = 10
    with pytest.raises(UnsupportedOpError, match=r"'reshape_to' of node back.*from 'back'.*run-time dim.*'keras'"):
        compile_model(onx, target="keras")


@pytest.mark.parametrize("atoms, target, groups", [
    (("N", "T", 8), ("N*T", 8), [["N", "T"], [8]]),
    (("N", "T", 8), ("N", "T", 2, 4, 1), [["N"], ["T"], [2], [4], []]),
    (("N", 2, "T", 1, 4), ("2*N", "T", 4), [["N", 2], ["T"], [4]]),
    (("N", "T", 1, 2, 4), ("N*T", 8), [["N", "T"], [2, 4]]),
    (("N", "?", 16), ("?", 16), [["N", "?"], [16]]),
    (("N", "?", 16), ("N", "?", 4, 4), [["N"], ["?"], [4], [4]]),
    (("N", "?", 6), ("N", "T", 2, 3), [["N"], ["?"], [2], [3]]),   # the unknown atom is what is left: T
    (("N", "T", 8), ("T", "N", 8), None),        # factors in another order: not a reshape of these
    (("N", "?", "?"), ("?", "?"), None),          # two unknowns: nothing says which is which
    (("N", "T", 6), ("N", "T", 4), None),         # sizes disagree
])
def test_regroup(atoms, target, groups):
    assert regroup(atoms, target) == groups
