"""lower_onnx_pad_max_pool: a +0 pad before max_pool (directly or through a cast) pads with -0.0.

Numbers are checked twice: the interpreter before and after the pass, and the emitted
ONNX in onnxruntime with its default options (where a +0 Pad would be fused into the
MaxPool's -inf padding) against the interpreter's output before the pass.
"""
from __future__ import annotations

import numpy as np
import pytest

from kcc.backends.onnx import emit_onnx
from kcc.interpreter import run, seeded_inputs
from kcc.passes.lower_onnx_pad_max_pool import RULES
from kcc.testing import assert_close, run_onnx
from pass_helpers import c, check_rewrite, check_unchanged, graph_with

PASS = "lower_onnx_pad_max_pool"
# Unequal spatial sizes and unequal begin/end pads; only H and W are padded.
SHAPE = ("N", 3, 7, 10)
PADS = (0, 0, 1, 2, 0, 0, 2, 1)


def _negative_feeds(graph):
    """Every input value below zero, so each border window's answer is the padded zero."""
    return {k: (v - 4.0).astype(v.dtype) for k, v in seeded_inputs(graph).items()}


def _check_onnxruntime(graph, feeds, reference):
    for opset in (17, 21):
        got = run_onnx(emit_onnx(graph.copy(), opset=opset), [feeds["x"]], also_unoptimized=True, tol=0.0)
        for (name, ref), out in zip(reference.items(), got):
            assert np.any(ref == 0.0), f"{name}: no output decided by the padding; the check cannot fail"
            assert_close(ref, out, 1e-6, what=f"onnxruntime (opset {opset}) output {name}")


def _pad_values(graph):
    return [n.attrs["value"] for n in graph.nodes() if n.op == "pad"]


def test_zero_pad_before_max_pool_pads_with_negative_zero():
    g, op, x = graph_with(SHAPE, origin="stem")
    g.set_outputs([op.max_pool(op.pad(x, pads=PADS), kernel=(3, 3), strides=(2, 2))], ["y"])
    feeds = _negative_feeds(g)
    reference = run(g, feeds)
    check_rewrite(g, PASS, "pad_max_pool", ["pad", "max_pool"], feeds=feeds, tol=0.0)
    assert [np.signbit(v) for v in _pad_values(g)] == [True]
    _check_onnxruntime(g, feeds, reference)


def test_zero_pad_cast_max_pool_pads_with_negative_zero():
    g, op, x = graph_with(SHAPE, origin="stem")
    g.set_outputs([op.max_pool(op.cast(op.pad(x, pads=PADS), to="f64"), kernel=(2, 3), strides=(2, 2))], ["y"])
    feeds = _negative_feeds(g)
    reference = run(g, feeds)
    check_rewrite(g, PASS, "pad_cast_max_pool", ["pad", "cast", "max_pool"], feeds=feeds, tol=0.0)
    assert [np.signbit(v) for v in _pad_values(g)] == [True]
    _check_onnxruntime(g, feeds, reference)


@pytest.mark.parametrize("consumer", ["avg_pool", "conv"])
def test_zero_pad_before_avg_pool_or_conv_is_left_alone(consumer):
    """Their padding is zeros too: onnxruntime's fusion is exact there, so the pad stays +0."""
    g, op, x = graph_with(SHAPE)
    padded = op.pad(x, pads=PADS)
    if consumer == "avg_pool":
        y = op.avg_pool(padded, kernel=(3, 3), strides=(2, 2))
    else:
        w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
        y = op.conv(padded, c(op, w), c(op, np.full(4, -1.0)))
    g.set_outputs([y], ["y"])
    check_unchanged(g, PASS)
    feeds = _negative_feeds(g)
    got = run_onnx(emit_onnx(g.copy()), [feeds["x"]], also_unoptimized=True, tol=1e-6)
    assert_close(run(g, feeds)["y"], got[0], 1e-5, what=f"onnxruntime, pad then {consumer}")


def test_non_zero_reflect_negative_zero_and_shared_pads_are_left_alone():
    g, op, x = graph_with(SHAPE)
    pool = dict(kernel=(3, 3), strides=(2, 2))
    shared = op.pad(x, pads=PADS)
    outs = [op.max_pool(op.pad(x, pads=PADS, value=1.0), **pool),
            op.max_pool(op.pad(x, pads=PADS, mode="reflect"), **pool),
            op.max_pool(op.pad(x, pads=PADS, value=-0.0), **pool),
            op.max_pool(shared, **pool), op.relu(shared)]
    g.set_outputs(outs, ["one", "reflect", "negzero", "shared", "other_reader"])
    check_unchanged(g, PASS)


def test_check_says_why_it_does_not_fire():
    g, op, x = graph_with(SHAPE)
    g.set_outputs([op.max_pool(op.pad(x, pads=PADS, value=1.0), kernel=(3, 3)),
                   op.max_pool(op.pad(x, pads=PADS, mode="edge"), kernel=(3, 3))], ["a", "b"])
    pools = [n for n in g.nodes() if n.op == "max_pool"]
    reasons = [RULES[0].find(g, n)[1] for n in pools]
    assert "not +0.0" in reasons[0], reasons
    assert "'edge'" in reasons[1], reasons
