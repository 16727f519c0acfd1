"""lower_onnx_layer_norm: a layer_norm ONNX LayerNormalization cannot express -> mean/variance ops."""
from __future__ import annotations

import numpy as np
import pytest

from pass_helpers import c, check_rewrite, check_unchanged, graph_with
from kcc.backends.onnx import emit_onnx
from kcc.interpreter import run, seeded_inputs
from kcc.ir import TensorType
from kcc.testing import assert_close, run_onnx

_RNG = np.random.default_rng(5)


@pytest.fixture(autouse=True)
def _fresh_rng():
    """Each test draws from a fresh generator: golden text must not depend on which tests ran before."""
    global _RNG
    _RNG = np.random.default_rng(5)


def _onnx_matches(g, feeds) -> None:
    ref = run(g, feeds)["y"]
    assert_close(ref, run_onnx(emit_onnx(g), feeds)[0], 1e-5)


def _feeds(g):
    # An offset and a spread per position: a wrong axis gives a different mean.
    return {k: v * np.float32(3) + np.float32(1.5) for k, v in seeded_inputs(g).items()}


def test_channel_axis_of_an_image_is_written_out():
    g, op, x = graph_with(("N", 4, 3, 5))
    y = op.layer_norm(x, c(op, _RNG.uniform(0.5, 1.5, 4)), c(op, _RNG.normal(size=4)), axes=(1,), epsilon=1e-3)
    g.set_outputs([y], ["y"])
    feeds = _feeds(g)
    check_rewrite(g, "lower_onnx_layer_norm", "channel_axis",
                  ["reduce_mean", "sub", "mul", "reduce_mean", "add", "sqrt", "div", "mul", "add"], feeds=feeds)
    _onnx_matches(g, feeds)


def test_without_scale_and_bias():
    g, op, x = graph_with(("N", 4, 6))
    g.set_outputs([op.layer_norm(x, axes=(1,))], ["y"])
    feeds = _feeds(g)
    check_rewrite(g, "lower_onnx_layer_norm", "no_params",
                  ["reduce_mean", "sub", "mul", "reduce_mean", "add", "sqrt", "div"], feeds=feeds)
    _onnx_matches(g, feeds)


def test_computed_scale_on_the_last_axis_is_written_out():
    g, op, x = graph_with(("N", 3, 6))
    s = g.add_input("s", TensorType((6,)))
    g.set_outputs([op.layer_norm(x, s, None, axes=(2,))], ["y"])
    feeds = _feeds(g)
    check_rewrite(g, "lower_onnx_layer_norm", "computed_scale",
                  ["reduce_mean", "sub", "mul", "reduce_mean", "add", "sqrt", "div", "reshape", "mul"], feeds=feeds)
    _onnx_matches(g, feeds)


@pytest.mark.parametrize("bias", [True, False])
def test_trailing_axes_with_constant_scale_are_left_alone(bias):
    g, op, x = graph_with(("N", 3, 4, 6))
    b = c(op, _RNG.normal(size=(4, 6))) if bias else None
    g.set_outputs([op.layer_norm(x, c(op, _RNG.uniform(0.5, 1.5, (4, 6))), b, axes=(2, 3))], ["y"])
    check_unchanged(g, "lower_onnx_layer_norm")
    _onnx_matches(g, _feeds(g))
