"""lower_coreml_math: round (half to even), float->int casts, is_inf, min with a scalar."""
from __future__ import annotations

import numpy as np
from pass_helpers import c, check_rewrite, check_unchanged, graph_with, scaled_inputs

from kcc.interpreter import run

P = "lower_coreml_math"
ROUND_OPS = ["clip", "floor", "sub", "sub", "ceil", "abs", "ceil", "sub", "mul", "floor", "mul", "sub", "add",
             "mul", "add", "sub", "add"]
TIES = np.array([[0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, -3.49, 0.49999997, 2.0 ** 23 + 1.0],
                 [-0.0, 0.0, 8388607.5, -8388607.5, 1e30, -1e30, 0.7, -0.7, 1.25, 4.5]], np.float32)


def _one(build, shape=("N", 10)):
    g, op, x = graph_with(shape)
    g.set_outputs([build(op, x)], ["y"])
    return g


def test_round_halves_to_even_exactly():
    g = _one(lambda op, x: op.round(x))
    feeds = {"x": TIES}
    check_rewrite(g, P, "round", ROUND_OPS, feeds=feeds)
    np.testing.assert_array_equal(run(g, feeds)["y"], np.round(TIES))


def test_round_keeps_inf_and_nan():
    g = _one(lambda op, x: op.round(x), shape=("N", 3))
    from kcc.pipeline import get_pass
    get_pass(P)().run(g)
    got = run(g, {"x": np.array([[np.inf, -np.inf, np.nan]], np.float32)})["y"]
    np.testing.assert_array_equal(got, [[np.inf, -np.inf, np.nan]])


def test_float_to_int_cast_truncates_first():
    g = _one(lambda op, x: op.cast(op.cast(x, to="i32"), to="f32"))
    feeds = {"x": np.array([[0.5, -0.5, 2.7, -2.7, 1.0, -1.0, 0.0, -0.0, 99.99, -99.99],
                            [3.5, -3.5, 0.25, -0.25, 7.0, -7.9, 1e-7, -1e-7, 123456.5, -5.5]], np.float32)}
    check_rewrite(g, P, "cast_to_int", ["sign", "abs", "floor", "mul", "cast", "cast"], feeds=feeds)


def test_is_inf_is_abs_equal_inf():
    g = _one(lambda op, x: op.cast(op.is_inf(op.exp(x)), to="f32"))
    feeds = {"x": (scaled_inputs(g, 200.0)["x"]).astype(np.float32)}
    with np.errstate(over="ignore"):
        check_rewrite(g, P, "is_inf", ["exp", "abs", "equal", "cast"], feeds=feeds)


def test_min_with_a_scalar_is_negated_threshold():
    g = _one(lambda op, x: op.min(c(op, 0.3), x))
    check_rewrite(g, P, "min_scalar", ["neg", "max", "neg"], feeds=scaled_inputs(g, 2.0))


def test_forms_with_a_layer_are_left_alone():
    g, op, x = graph_with(("N", 10))
    y = g.add_input("y", x.type)
    a = op.min(x, y)                                                # two tensors: the min layer
    b = op.min(x, c(op, np.linspace(0, 1, 10, dtype=np.float32)))  # a tensor constant
    d = op.cast(op.floor(x), to="i32")                              # already integral
    e = op.cast(x, to="f16")                                        # float to float: a copy
    g.set_outputs([a, b, d, e], ["a", "b", "d", "e"])
    check_unchanged(g, P)
