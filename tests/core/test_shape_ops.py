"""The shape ops (kcc.ops.shape_ops) and symbolic values (kcc.ops.shape_values).

Each op's shape function against its numpy reference at concrete sizes; the
symbolic value of every shape computation against what the interpreter
computes (a symbol must equal the concrete dim it names); the dim algebra of
products; and clear errors for malformed shape operands.
"""
from __future__ import annotations

import numpy as np
import pytest

from kcc.builder import GraphBuilder
from kcc.errors import IRError
from kcc.interpreter import run
from kcc.ir import Graph, TensorType
from kcc.ops.shape_ops import reshape_to_dims, static_reshape_spec
from kcc.ops.shapes import UNKNOWN, dim_div, dim_mul, prod

# Concrete sizes for the symbols, unequal so a swapped dim shows.
SIZES = {"N": 3, "T": 5}


def _graph(shape=("N", "T", 8)) -> tuple[Graph, GraphBuilder, object]:
    g = Graph("shapes")
    x = g.add_input("x", TensorType(shape))
    return g, GraphBuilder(g, name="s"), x


def _i64(op: GraphBuilder, v) -> object:
    return op.const(np.asarray(v, dtype=np.int64))


def _concrete(dim) -> int:
    if isinstance(dim, int):
        return dim
    return int(np.prod([SIZES[p] if not p.isdigit() else int(p) for p in dim.split("*")]))


def _check_against_interpreter(g: Graph, values: list) -> None:
    """Every value's shape and symbolic entries agree with the interpreter at SIZES."""
    g.set_outputs(values)
    g.validate()
    x = g.inputs[0]
    feed = np.random.default_rng(0).standard_normal([_concrete(d) for d in x.shape]).astype(np.float32)
    got = run(g, {"x": feed})
    for v in values:
        arr = got[v.name]
        assert arr.ndim == v.rank and all(d == UNKNOWN or _concrete(d) == a for d, a in zip(v.shape, arr.shape)), \
            (v, arr.shape)
        if v.type.value is not None:
            entries = [e if e == UNKNOWN else _concrete(e) for e in v.type.value]
            for e, a in zip(entries, arr.ravel().tolist()):
                assert e == UNKNOWN or e == a, (v, v.type.value, arr)


def test_shape_gather_concat_reshape_to_gives_exact_symbolic_dims():
    g, op, x = _graph()
    s = op.shape(x)
    assert s.type == TensorType((3,), "i64") and s.type.value == ("N", "T", 8)
    nt = op.gather(s, _i64(op, [0, 1]), axis=0)
    target = op.concat(nt, _i64(op, [2, -1]), axis=0)
    assert target.type.value == ("N", "T", 2, -1)
    y = op.reshape_to(x, target)
    assert y.shape == ("N", "T", 2, 4)
    # (N*T, 8) and back: the product is a symbol and the -1 cancels it.
    n, t = (op.gather(s, _i64(op, [i]), axis=0) for i in (0, 1))
    flat = op.reshape_to(x, op.concat(op.mul(n, t), _i64(op, [8]), axis=0))
    assert flat.shape == ("N*T", 8)
    back = op.reshape_to(flat, op.concat(n, _i64(op, [-1, 8]), axis=0))
    assert back.shape == ("N", "T", 8)
    _check_against_interpreter(g, [s, nt, target, y, flat, back])


def test_range_length_is_the_limit_symbol_and_expand_broadcasts_to_it():
    g, op, x = _graph()
    s = op.shape(x)
    t = op.gather(s, _i64(op, 1), axis=0)  # 0-D
    assert t.shape == () and t.type.value == ("T",)
    r = op.range(_i64(op, 0), t, _i64(op, 1))
    assert r.shape == ("T",)
    r2 = op.range(_i64(op, 1), t, _i64(op, 2))  # odd offsets: length not named
    assert r2.shape == (UNKNOWN,)
    pos = op.expand(op.unsqueeze(r, axes=(0,)), op.slice(s, starts=(0,), ends=(2,), axes=(0,)))
    assert pos.shape == ("N", "T")
    mask = op.less_equal(op.unsqueeze(r, axes=(0,)), op.unsqueeze(r, axes=(1,)))
    assert mask.shape == ("T", "T")
    _check_against_interpreter(g, [t, r, r2, pos, mask])


def test_constant_operands_give_static_results():
    g, op, x = _graph((2, 6))
    r = op.range(_i64(op, 7), _i64(op, -2), _i64(op, -3))  # 7, 4, 1
    assert r.shape == (3,) and r.type.value == (7, 4, 1)
    f = op.range(op.const(np.float32(0.5)), op.const(np.float32(2.0)), op.const(np.float32(0.5)))
    assert f.shape == (UNKNOWN,)  # float operands carry no value
    e = op.expand(x, _i64(op, [3, 1, 6]))
    assert e.shape == (3, 2, 6)
    y = op.reshape_to(x, _i64(op, [0, 3, -1]))
    assert y.shape == (2, 3, 2)
    g.set_outputs([r, f, e, y])
    got = run(g, {"x": np.arange(12, dtype=np.float32).reshape(2, 6)})
    np.testing.assert_array_equal(got[r.name], [7, 4, 1])
    np.testing.assert_array_equal(got[f.name], np.float32([0.5, 1.0, 1.5]))
    np.testing.assert_array_equal(got[e.name], np.broadcast_to(np.arange(12).reshape(1, 2, 6), (3, 2, 6)))
    np.testing.assert_array_equal(got[y.name], np.arange(12).reshape(2, 3, 2))


def test_value_is_dropped_by_ops_without_a_rule():
    g, op, x = _graph()
    s = op.shape(x)
    assert op.neg(s).type.value is None  # neg returns its input's type: the value must not ride along
    assert op.cumsum(s, axis=0).type.value is None


@pytest.mark.parametrize("a, b, mul, div", [
    ("N", "T", "N*T", UNKNOWN),
    ("N*T", "T", "N*T*T", "N"),
    (8, "N", "8*N", UNKNOWN),
    ("8*N", 4, "32*N", "2*N"),
    ("N", 1, "N", "N"),
    (UNKNOWN, "N", UNKNOWN, UNKNOWN),
    (-1, "N", UNKNOWN, UNKNOWN),
])
def test_dim_products_are_canonical_symbols(a, b, mul, div):
    assert dim_mul(a, b) == mul
    assert dim_div(a, b) == div
    assert prod(["T", "N", 2]) == prod([2, "N", "T"]) == "2*N*T"


@pytest.mark.parametrize("in_shape, target, out", [
    (("N", "T", 8), ("N", "T", 2, -1), ("N", "T", 2, 4)),
    (("N", "T", 8), (0, -1), ("N", "8*T")),
    (("N*T", 8), ("N", -1, 8), ("N", "T", 8)),
    (("N", "T", 8), ("T", "N", -1), ("T", "N", 8)),
    (("N", UNKNOWN), ("N", -1, 2), ("N", UNKNOWN, 2)),
])
def test_reshape_to_dims(in_shape, target, out):
    assert reshape_to_dims(in_shape, target) == out


def test_static_reshape_spec_copies_own_dims_and_infers_one():
    assert static_reshape_spec(("N", "T", 8), ("N", "T", 2, -1)) == (0, 0, 2, -1)
    assert static_reshape_spec(("N", "T", 8), ("N*T", -1)) == (-1, 8)  # the -1 resolves, the product is inferred
    assert static_reshape_spec(("N", "T", 8), ("N*T", 8)) == (-1, 8)
    assert static_reshape_spec(("N", "T", 8), ("T", "N", 8)) is None  # two dims move: only at run time


def test_malformed_shape_operands_are_refused():
    g, op, x = _graph()
    with pytest.raises(IRError, match="1-D integer"):
        op.reshape_to(x, op.const(np.zeros((1, 3), np.int64)))
    with pytest.raises(IRError, match="1-D integer"):
        op.expand(x, op.const(np.float32([1, 2])))
    with pytest.raises(IRError, match="0-D"):
        op.range(_i64(op, [0]), _i64(op, 3), _i64(op, 1))
    with pytest.raises(IRError, match="one numeric dtype"):
        op.range(_i64(op, 0), op.const(np.int32(3)), _i64(op, 1))
    with pytest.raises(IRError, match="delta is 0"):
        op.range(_i64(op, 0), _i64(op, 3), _i64(op, 0))
    with pytest.raises(IRError, match="more than one -1"):
        op.reshape_to(x, _i64(op, [-1, -1]))
    with pytest.raises(IRError, match="cannot reshape"):
        op.reshape_to(op.const(np.zeros((2, 6), np.float32)), _i64(op, [5, -1]))

