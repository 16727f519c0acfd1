"""The Core ML layout analysis: rank 5 or ND, decided once before emission, and what decided it."""
from __future__ import annotations

import numpy as np
import pytest

from kcc.backends.coreml import build_spec
from kcc.backends.coreml.context import RANK5_CHECKS
from kcc.backends.coreml.layout import plan_layout
from kcc.backends.coreml.options import parse_options
from kcc.builder import GraphBuilder
from kcc.errors import ConversionError
from kcc.ir import Graph, TensorType


def _graph(build, shape=("N", 3, 4, 5)) -> Graph:
    g = Graph("g")
    x = g.add_input("x", TensorType(shape))
    g.set_outputs([build(GraphBuilder(g, name="t", origin="layer"), x)], ["y"])
    return g


def _conv(op, x):
    w = np.ones((2, 3, 1, 1), np.float32)
    return op.softmax(op.relu(op.conv(x, op.const(w), None)), axis=1)


def test_a_classic_cnn_stays_rank5_and_emits_no_nd_layer():
    g = _graph(_conv)
    layout = plan_layout(g)
    assert not layout.nd and layout.node is None
    spec = build_spec(g, parse_options({}))
    assert spec.specificationVersion == 1
    assert spec.neuralNetwork.arrayInputShapeMapping == 0


def test_the_first_node_without_a_rank5_form_is_named():
    g = _graph(lambda op, x: op.softmax(op.relu(x), axis=3))
    layout = plan_layout(g)
    assert layout.nd and layout.node.op == "softmax"
    assert "softmax over axis 3" in layout.why
    assert "from layer 'layer'" in layout.describe()


def test_a_rank5_model_input_or_output_needs_nd():
    g = _graph(lambda op, x: op.relu(x), shape=("N", 2, 3, 4, 5))
    layout = plan_layout(g)
    assert layout.nd and "model input x" in layout.why


def test_force_nd():
    assert plan_layout(_graph(_conv), force_nd=True).nd


def test_a_check_that_misses_a_case_is_reported_as_a_kcc_bug(monkeypatch):
    # Pretend softmax had a rank-5 form on every axis: the emitter refuses instead of a wrong layer.
    monkeypatch.setitem(RANK5_CHECKS._entries, "softmax", lambda ctx, node: None)
    g = _graph(lambda op, x: op.softmax(op.reshape(x, shape=(0, 3, 20)), axis=2))
    assert not plan_layout(g).nd
    with pytest.raises(ConversionError, match="kcc bug.*rank-5 layout.*softmax"):
        build_spec(g, parse_options({}))
