"""lower_coreml_recurrent: GRU(reset_after=True) and ConvLSTM unrolled over a static time axis."""
from __future__ import annotations

import numpy as np
import pytest
from pass_helpers import c, check_rewrite, check_unchanged, graph_with

from kcc.interpreter import run
from kcc.ir import TensorType

P = "lower_coreml_recurrent"


def _gru_step(f: str) -> list[str]:
    return ["slice", "squeeze", "dense", "split", "dense", "split", "add", f, "add", f, "mul", "add", "tanh", "sub",
            "mul", "add"]


GRU_FORWARD_OPS = _gru_step("hard_sigmoid") * 3 + ["unsqueeze"] * 3 + ["concat"]
GRU_REVERSE_OPS = _gru_step("sigmoid") * 4 + ["unsqueeze"] * 4 + ["concat", "add"]
# The first step has no recurrent conv and no forget gate (h and c start at zero).
CONV_LSTM_OPS = (["slice", "squeeze", "conv", "split", "sigmoid", "tanh", "mul", "sigmoid", "tanh", "mul"]
                 + ["slice", "squeeze", "conv", "conv", "add", "split", "sigmoid", "tanh", "mul", "sigmoid", "mul",
                    "add", "sigmoid", "tanh", "mul"] * 2
                 + ["unsqueeze"] * 3 + ["concat"])
R = np.random.default_rng(3)


@pytest.fixture(autouse=True)
def _fresh_r():
    """Each test draws from a fresh generator: golden text must not depend on which tests ran before."""
    global R
    R = np.random.default_rng(3)


def _w(*shape):
    return R.standard_normal(shape).astype(np.float32) * 0.6


def _feeds(shape):
    return {"x": R.standard_normal(shape).astype(np.float32)}


def test_gru_reset_after_forward_unrolls_with_both_outputs():
    g, op, x = graph_with((3, "N", 4))
    h0 = g.add_input("h0", TensorType(("N", 5)))
    y, h = op.gru(x, c(op, _w(15, 4)), c(op, _w(15, 5)), c(op, _w(30)), h0, recurrent_activation="hard_sigmoid")
    g.set_outputs([y, h], ["y", "h"])
    feeds = {**_feeds((3, 2, 4)), "h0": R.standard_normal((2, 5)).astype(np.float32)}
    out = check_rewrite(g, P, "gru_forward", GRU_FORWARD_OPS, feeds=feeds)
    assert "gru" not in out.op_types()


def test_gru_reset_after_reverse_without_bias_or_state():
    g, op, x = graph_with((4, "N", 3))
    y, h = op.gru(x, c(op, _w(6, 3)), c(op, _w(6, 2)), None, None, direction="reverse")
    g.set_outputs([op.add(y, c(op, 0.0)), h], ["y", "h"])
    feeds = _feeds((4, 3, 3))
    ref = run(g, feeds)
    out = check_rewrite(g, P, "gru_reverse", GRU_REVERSE_OPS, feeds=feeds)
    np.testing.assert_allclose(run(out, feeds)["h"], ref["h"], rtol=1e-6, atol=1e-6)


def test_conv_lstm_unrolls_into_convs():
    g, op, x = graph_with((3, "N", 2, 5, 4))
    y, h, cc = op.conv_lstm(x, c(op, _w(8, 2, 3, 3)), c(op, _w(8, 2, 3, 3)), c(op, _w(8)), pads=(1, 0, 1, 2))
    g.set_outputs([y, h, cc], ["y", "h", "c"])
    out = check_rewrite(g, P, "conv_lstm", CONV_LSTM_OPS, feeds=_feeds((3, 2, 2, 5, 4)))
    assert out.op_types().count("conv") == 3 + 2      # no recurrent conv while h is zero


def test_layer_held_and_dynamic_forms_are_left_alone():
    g, op, x = graph_with((3, "N", 4))
    a = op.gru(x, c(op, _w(15, 4)), c(op, _w(15, 5)), None, None, reset_after=False)[0]   # the gru layer
    b = op.lstm(x, c(op, _w(20, 4)), c(op, _w(20, 5)), None)[0]
    z = g.add_input("z", TensorType(("T", "N", 4)))
    d = op.gru(z, c(op, _w(15, 4)), c(op, _w(15, 5)), None, None)[1]                         # dynamic T
    g.set_outputs([a, b, d], ["a", "b", "d"])
    check_unchanged(g, P)
