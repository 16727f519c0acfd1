"""lower_coreml_activations: activations with no NeuralNetwork layer -> ones with a layer."""
from __future__ import annotations

import numpy as np
from pass_helpers import c, check_rewrite, check_unchanged, graph_with, scaled_inputs

from kcc.ops.activation import SELU_ALPHA, SELU_SCALE

P = "lower_coreml_activations"


def _one(build, shape=("N", 10)):
    g, op, x = graph_with(shape)
    g.set_outputs([build(op, x)], ["y"])
    return g


def test_selu_is_scaled_elu_with_the_declared_constants():
    g = check_rewrite(_one(lambda op, x: op.selu(x)), P, "selu", ["elu", "mul"], feeds=scaled_inputs(_one(
        lambda op, x: op.selu(x)), 3.0))
    elu, mul = g.nodes()
    assert elu.attrs["alpha"] == SELU_ALPHA
    assert float(mul.inputs[1].const) == np.float32(SELU_SCALE)


def test_silu_hard_silu_mish_become_products_with_x():
    for name, ops in (("silu", ["sigmoid", "mul"]), ("hard_silu", ["hard_sigmoid", "mul"]),
                      ("mish", ["softplus", "tanh", "mul"])):
        g = _one(lambda op, x, n=name: getattr(op, n)(x))
        check_rewrite(g, P, name, ops, feeds=scaled_inputs(g, 4.0))


def test_hard_silu_reads_hard_sigmoid_defaults_from_the_declaration():
    from kcc.ops.registry import get_op

    g = _one(lambda op, x: op.hard_silu(x))
    g = check_rewrite(g, P, "hard_silu_defaults", ["hard_sigmoid", "mul"], feeds=scaled_inputs(g, 4.0))
    declared = get_op("hard_sigmoid").attrs
    assert g.nodes()[0].attrs == {"alpha": declared["alpha"].default, "beta": declared["beta"].default}


def test_clip_is_threshold_then_negated_threshold():
    g = _one(lambda op, x: op.clip(x, min=-0.5, max=0.7))
    check_rewrite(g, P, "clip", ["max", "neg", "max", "neg"], feeds=scaled_inputs(g, 2.0))


def test_relu6_starts_with_relu_and_keeps_the_bounds_exact():
    g = _one(lambda op, x: op.clip(x, min=0.0, max=6.0))
    feeds = {"x": np.array([[-1.0, -0.0, 0.0, 3.0, 6.0, 6.5, -6.0, 5.999999, 1e-30, 100.0]] * 2, np.float32)}
    from kcc.interpreter import run
    ref = run(g, feeds)["y"]
    check_rewrite(g, P, "relu6", ["relu", "neg", "max", "neg"], feeds=feeds)
    np.testing.assert_array_equal(run(g, feeds)["y"], ref)


def test_clip_with_one_bound():
    g = _one(lambda op, x: op.clip(x, min=-1.0))
    check_rewrite(g, P, "clip_lo", ["max"], feeds=scaled_inputs(g, 2.0))
    g = _one(lambda op, x: op.clip(x, max=0.25))
    check_rewrite(g, P, "clip_hi", ["neg", "max", "neg"], feeds=scaled_inputs(g, 2.0))


def test_log_softmax_is_log_of_softmax():
    g = _one(lambda op, x: op.log_softmax(x, axis=1))
    out = check_rewrite(g, P, "log_softmax", ["softmax", "log"], feeds=scaled_inputs(g, 3.0))
    assert out.nodes()[0].attrs["axis"] == 1


def test_prelu_with_a_slope_along_other_axes_is_relu_composite():
    g, op, x = graph_with(("N", 3, 4, 5))
    slope = np.linspace(-1.0, 1.5, 20, dtype=np.float32).reshape(4, 5)
    g.set_outputs([op.prelu(x, c(op, slope))], ["y"])
    check_rewrite(g, P, "prelu_full", ["neg", "relu", "relu", "mul", "add"])


def test_layer_held_forms_are_left_alone():
    g, op, x = graph_with(("N", 3, 4, 5))
    a = op.prelu(x, c(op, np.array([0.1, 0.2, 0.3], np.float32).reshape(3, 1, 1)))   # per channel
    b = op.prelu(x, c(op, 0.25))                                                       # one slope
    d = op.relu(op.hard_sigmoid(op.elu(op.leaky_relu(x, alpha=0.3))))
    y = g.add_input("slope", x.type)
    e = op.prelu(x, y)                                                                 # computed slope
    g.set_outputs([a, b, d, e], ["a", "b", "d", "e"])
    check_unchanged(g, P)


def test_a_row_in_the_coreml_table_stops_the_lowering(monkeypatch):
    from kcc.formats import coreml_layers

    monkeypatch.setitem(coreml_layers.ACTIVATIONS, "selu", coreml_layers.ActivationRow("selu", "ELU"))
    check_unchanged(_one(lambda op, x: op.selu(x)), P)
