"""Shape arithmetic to Core ML: ``shape``, ``range``, ``expand``, ``reshape_to`` on a dynamic sequence.

Hand-built IR graphs over ``x: f32[N, 4, T]`` compute positions, masks and
reshapes from ``shape(x)`` at run time. Each is emitted once (ND layout, ``T``
declared as a range) and run in kcc's Core ML runtime at two unequal lengths,
compared with the IR interpreter at the same lengths; a length outside the
range is refused.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kcc.backends.coreml import COREML_LOWERING, build_spec  # noqa: E402
from kcc.backends.coreml.emit_shape import one_way  # noqa: E402
from kcc.backends.coreml.options import parse_options  # noqa: E402
from kcc.builder import GraphBuilder  # noqa: E402
from kcc.coreml import predict  # noqa: E402
from kcc.errors import RuntimeModelError, UnsupportedOpError  # noqa: E402
from kcc.interpreter import run as run_ir  # noqa: E402
from kcc.ir import Graph, TensorType  # noqa: E402
from kcc.pipeline import Pipeline  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate  # noqa: E402

from coreml_flexible_helpers import network, ranges  # noqa: E402


def i64(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _positions(op, x):
    """x + 0.1 * arange(T): range(0, T, 1) with T gathered from shape(x)."""
    t = op.gather(op.shape(x), op.const(np.int64(2)), axis=0)
    pos = op.range(op.const(np.int64(0)), t, op.const(np.int64(1)))
    return op.add(x, op.mul(op.cast(pos, to="f32"), op.const(np.float32(0.1))))


def _causal(op, x):
    """A causal mask from two ranges, as attention builds it: where(j <= i, x x^T scores, -1e4)."""
    t = op.gather(op.shape(x), op.const(np.int64(2)), axis=0)
    step = op.const(np.int64(1))
    pos = op.range(op.const(np.int64(0)), t, step)
    mask = op.less_equal(op.unsqueeze(pos, axes=(0,)), op.unsqueeze(pos, axes=(1,)))      # (T, T): j <= i
    scores = op.matmul(op.transpose(x, perm=(0, 2, 1)), x)                                # (N, T, T)
    return op.softmax(op.where(mask, scores, op.const(np.float32(-1e4))), axis=-1)


def _expand(op, x):
    """x * expand(scale (1, 4, 1), shape(x)): broadcastToDynamic (the target is as long as x's rank)."""
    scale = op.const(np.asarray([1.5, -2.0, 0.5, 3.0], np.float32).reshape(1, 4, 1))
    return op.mul(x, op.expand(scale, op.shape(x)))


def _expand_two_way(op, x):
    """expand(x (N, 4, T), [4, 1, 1]) is (4, 4, T) with N = 1: both ways, so fillDynamic + addBroadcastable."""
    target = op.concat(op.const(i64(4)), op.slice(op.shape(x), starts=(0,), ends=(1,), axes=(0,)),
                       op.const(i64(1)), axis=0)
    return op.expand(x, target)


def _reshape_to(op, x):
    """reshape_to(x, [N, -1]): a flatten whose target comes from shape(x)."""
    target = op.concat(op.slice(op.shape(x), starts=(0,), ends=(1,), axes=(0,)), op.const(i64(-1)), axis=0)
    return op.relu(op.reshape_to(x, target))


CASES = {
    "positions": (_positions, {"getShape", "rangeDynamic"}),
    "causal_mask": (_causal, {"getShape", "rangeDynamic", "lessEqual", "whereBroadcastable"}),
    "expand": (_expand, {"getShape", "broadcastToDynamic"}),
    "expand_two_way": (_expand_two_way, {"getShape", "fillDynamic", "addBroadcastable"}),
    "reshape_to": (_reshape_to, {"getShape", "reshapeDynamic"}),
}


def _graph(build) -> Graph:
    g = Graph("shape_ops")
    x = g.add_input("x", TensorType(("N", 4, "T"), "f32"))
    g.set_outputs([build(GraphBuilder(g, name="t"), x)], ["out"])
    g.validate()
    return g


@pytest.mark.parametrize("case", sorted(CASES))
def test_shape_ops_run_at_two_lengths(case):
    build, layers = CASES[case]
    graph = _graph(build)
    reference = graph.copy()
    Pipeline.from_spec(list(COREML_LOWERING)).run(graph)
    spec = build_spec(graph, parse_options({}))
    types = {lyr.WhichOneof("layer") for lyr in network(spec).layers}
    assert layers <= types, sorted(types)
    assert network(spec).arrayInputShapeMapping == 1
    assert spec.specificationVersion == 4
    feature = spec.description.input[0]
    assert ranges(feature)[1:] == [(4, 4), (1, -1)]
    rng = np.random.default_rng(11)
    for t in (5, 11):
        x = rng.standard_normal((1, 4, t)).astype(np.float32)
        ref = np.asarray(run_ir(reference, {"x": x})["out"], np.float32)
        assert_not_degenerate(ref)
        got = np.asarray(predict(spec, {"x": x})["out"], np.float32)
        assert got.shape == ref.shape, (got.shape, ref.shape)
        assert_close(ref, got, 1e-4, what=f"{case} at length {t}")
    with pytest.raises(RuntimeModelError, match=r"input 'x' has shape \[1, 5, 3\]"):
        predict(spec, {"x": np.zeros((1, 5, 3), np.float32)})


def test_expand_form_follows_the_known_target():
    g = Graph("t")
    x = g.add_input("x", TensorType(("N", 4, "T"), "f32"))
    op = GraphBuilder(g, name="t")
    s = op.shape(x)
    assert one_way(op.const(np.zeros((1, 4, 1), np.float32)), s)          # (1, 4, 1) to (N, 4, T)
    assert not one_way(x, op.const(i64(4, 1, 1)))                          # 1 meets 4: two-way
    assert not one_way(x, op.const(i64(4, 1)))                             # shorter than x's rank
    assert not one_way(op.const(np.zeros((1, 4, 3), np.float32)), s)        # T may be 1 where the input has 3


def test_reshape_to_with_a_copied_dim_is_refused():
    g = Graph("t")
    x = g.add_input("x", TensorType(("N", 4, "T"), "f32"))
    op = GraphBuilder(g, name="t")
    unknown = op.gather(op.shape(x), op.const(i64(2)), axis=0)
    target = op.concat(op.const(i64(0)), unknown, op.const(i64(4)), axis=0)
    g.set_outputs([op.reshape_to(x, target)], ["out"])
    Pipeline.from_spec(list(COREML_LOWERING)).run(g)
    with pytest.raises(UnsupportedOpError, match=r"reshape_to target \[0, 'T', 4\].*entries 0"):
        build_spec(g, parse_options({}))


@pytest.mark.parametrize("case", sorted(CASES))
def test_shape_layers_import_back(case):
    """The NeuralNetwork frontend reads the same table rows: the imported graph runs at both lengths."""
    from kcc.frontends.coreml.neuralnetwork import load_neuralnetwork

    build, _ = CASES[case]
    graph = _graph(build)
    reference = graph.copy()
    Pipeline.from_spec(list(COREML_LOWERING)).run(graph)
    imported = load_neuralnetwork(build_spec(graph, parse_options({})))
    ops = set(imported.op_types())
    assert {"shape"} <= ops, sorted(ops)
    rng = np.random.default_rng(12)
    for t in (5, 11):
        x = rng.standard_normal((1, 4, t)).astype(np.float32)
        ref = np.asarray(run_ir(reference, {"x": x})["out"], np.float32)
        got = np.asarray(run_ir(imported, {"x": x})["out"], np.float32)
        assert_close(ref, got.reshape(ref.shape), 1e-4, what=f"{case} imported, at length {t}")
