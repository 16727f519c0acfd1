"""The Keras lowering passes, three ways (op list, golden text, numbers) plus the must-not-fire cases."""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "passes"))
from pass_helpers import c, check_rewrite, check_unchanged, graph_with  # noqa: E402

from kcc.ir import TensorType  # noqa: E402


def test_lower_keras_dense_matmul_add():
    g, op, x = graph_with(("N", 6))
    rng = np.random.RandomState(0)
    y = op.relu(op.add(op.matmul(x, c(op, rng.normal(size=(6, 4)))), c(op, rng.normal(size=(4,)))))
    g.set_outputs([y], ["y"])
    check_rewrite(g, "lower_keras_dense", "matmul_add", ["dense", "relu"])


def test_lower_keras_dense_leaves_sequences_and_computed_weights():
    g, op, x = graph_with(("N", 3, 6))
    g.set_outputs([op.matmul(x, c(op, np.ones((6, 4))))], ["y"])
    check_unchanged(g, "lower_keras_dense")
    g, op, x = graph_with(("N", 6))
    w = g.add_input("w", TensorType((6, 4)))
    g.set_outputs([op.matmul(x, w)], ["y"])
    check_unchanged(g, "lower_keras_dense")


def test_lower_keras_float32_widens_and_drops_casts():
    g, op, x = graph_with(("N", 3, 5, 4))
    x16 = op.cast(x, to="f16")
    w = op.const(np.random.RandomState(1).normal(size=(2, 3, 1, 1)).astype(np.float16))
    y = op.cast(op.relu(op.conv(x16, w, None)), to="f32")
    g.set_outputs([y], ["y"])
    out = check_rewrite(g, "lower_keras_float32", "fp16_conv", ["conv", "relu"], tol=2e-3)
    assert all(v.dtype == "f32" for v in out.values())


def test_lower_keras_float32_keeps_integer_casts():
    g, op, x = graph_with(("N", 4))
    g.set_outputs([op.cast(op.cast(x, to="i32"), to="f32")], ["y"])
    check_unchanged(g, "lower_keras_float32")
