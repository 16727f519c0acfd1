"""``slice_to`` (slice with run-time starts/ends) and the comparison rules of kcc.ops.shape_values.

The shape function against numpy at concrete sizes: a table of 12 rows cut to
``shape(x)[1]`` is typed ``(T, 8)`` and runs at T = 5; bounds nothing names give
``"?"``; negative steps and out-of-range bounds clamp like numpy. tf2onnx's
``size == -1`` test of a dim is decided (a dim is >= 0), so the bound it feeds
keeps its symbol. Malformed bounds are clear IR errors.
"""
from __future__ import annotations

import numpy as np
import pytest

from kcc.builder import GraphBuilder
from kcc.errors import IRError
from kcc.interpreter import run
from kcc.ir import Graph, TensorType
from kcc.ops.shape_ops import slice_to_dim
from kcc.ops.shape_values import compare_entries
from kcc.ops.shapes import UNKNOWN

TABLE = np.random.default_rng(0).standard_normal((12, 8)).astype(np.float32)


def _graph(shape=("N", "T", 8)):
    g = Graph("slice_to")
    x = g.add_input("x", TensorType(shape))
    return g, GraphBuilder(g, name="s"), x


def _i(op, v, dtype=np.int64):
    return op.const(np.asarray(v, dtype=dtype))


def test_a_table_cut_to_the_sequence_length_is_typed_by_it():
    g, op, x = _graph()
    t = op.gather(op.shape(x), _i(op, [1]), axis=0)
    pos = op.slice_to(op.const(TABLE), _i(op, [0]), t, axes=(0,))
    assert pos.shape == ("T", 8)
    y = op.add(x, pos)
    assert y.shape == ("N", "T", 8)
    g.set_outputs([y])
    g.validate()
    feed = np.random.default_rng(1).standard_normal((3, 5, 8)).astype(np.float32)
    np.testing.assert_allclose(run(g, {"x": feed})[y.name], feed + TABLE[:5], rtol=0, atol=0)


def test_tf2onnx_size_test_of_a_dim_keeps_the_symbol():
    """ends = begin + size + (size == -1) * INT32_MAX, size = [T, 8]: the comparison is decided."""
    g, op, x = _graph()
    size = op.concat(op.cast(op.gather(op.shape(x), _i(op, [1]), axis=0), to="i32"), _i(op, [8], np.int32), axis=0)
    is_all = op.equal(_i(op, [-1], np.int32), size)
    assert is_all.type.value == (0, 0)
    ends = op.add(_i(op, [0, 0], np.int32),
                  op.add(size, op.mul(_i(op, [2 ** 31 - 1], np.int32), op.cast(is_all, to="i32"))))
    assert ends.type.value == ("T", 8)
    pos = op.slice_to(op.const(TABLE), _i(op, [0, 0], np.int32), ends, axes=(0, 1))
    assert pos.shape == ("T", 8)
    g.set_outputs([pos])
    feed = np.zeros((2, 7, 8), np.float32)
    np.testing.assert_array_equal(run(g, {"x": feed})[pos.name], TABLE[:7])


@pytest.mark.parametrize("kind, a, b, out", [
    ("equal", "T", -1, 0), ("greater", "T", -1, 1), ("less", -3, "T", 1), ("greater_equal", "T", "T", 1),
    ("less", "T", "T", 0), ("equal", "T", 5, UNKNOWN), ("equal", "T", "N", UNKNOWN),
    ("equal", UNKNOWN, -1, UNKNOWN), ("less_equal", 4, 4, 1),
])
def test_compare_entries(kind, a, b, out):
    assert compare_entries(kind, a, b) == out


@pytest.mark.parametrize("dim, start, end, step, out", [
    (12, 0, "T", 1, "T"), (12, 2, 7, 1, 5), (12, -1, -(2 ** 62), -1, 12), (12, 0, 2 ** 62, 3, 4),
    ("T", 0, "T", 1, "T"), ("T", 0, 2 ** 62, 1, "T"), (12, "T", 2 ** 62, 1, UNKNOWN), (12, 1, "T", 1, UNKNOWN),
    (12, 0, "T", 2, UNKNOWN), (12, 0, UNKNOWN, 1, UNKNOWN),
])
def test_slice_to_dim(dim, start, end, step, out):
    assert slice_to_dim(dim, start, end, step) == out


def test_compute_clamps_and_steps_like_numpy():
    g, op, x = _graph((4, 10))
    y = op.slice_to(x, _i(op, [9, -100]), _i(op, [-(2 ** 62), 2 ** 62]), axes=(1, 0), steps=(-2, 1))
    assert y.shape == (4, 5)
    g.set_outputs([y])
    feed = np.arange(40, dtype=np.float32).reshape(4, 10)
    np.testing.assert_array_equal(run(g, {"x": feed})[y.name], feed[:, 9::-2])


def test_a_run_time_start_gives_an_unknown_length():
    g, op, x = _graph()
    t = op.gather(op.shape(x), _i(op, [1]), axis=0)
    y = op.slice_to(x, op.sub(t, _i(op, [3])), _i(op, [2 ** 62]), axes=(1,))
    assert y.shape == ("N", UNKNOWN, 8)
    g.set_outputs([y])
    feed = np.random.default_rng(2).standard_normal((2, 9, 8)).astype(np.float32)
    np.testing.assert_array_equal(run(g, {"x": feed})[y.name], feed[:, 6:])


def test_slice_to_of_a_shape_vector_has_a_value():
    g, op, x = _graph()
    s = op.shape(x)
    head = op.slice_to(s, _i(op, [0]), _i(op, [2]), axes=(0,))
    assert head.type.value == ("N", "T")


@pytest.mark.parametrize("starts, ends, attrs, match", [
    ([0, 0], [3], {"axes": (0,)}, "starts has 2 entries for 1 axes"),
    ([0], [3], {"axes": (0,), "steps": (0,)}, "steps"),
    ([0], [3], {"axes": (2,)}, "not distinct axes"),
    ([0, 0], [3, 3], {"axes": (0, -2)}, "not distinct axes"),
])
def test_malformed_bounds_are_refused(starts, ends, attrs, match):
    g, op, x = _graph((4, 10))
    with pytest.raises(IRError, match=match):
        op.slice_to(x, _i(op, starts), _i(op, ends), **attrs)


def test_float_bounds_are_refused():
    g, op, x = _graph((4, 10))
    with pytest.raises(IRError, match="1-D integer"):
        op.slice_to(x, op.const(np.zeros(1, np.float32)), _i(op, [3]), axes=(0,))
