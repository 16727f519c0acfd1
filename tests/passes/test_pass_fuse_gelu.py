"""fuse_gelu: erf and tanh spellings of GELU."""
from __future__ import annotations

import math

import pytest

from pass_helpers import apply_pass, c, check_rewrite, check_unchanged, graph_with

S2 = math.sqrt(2.0)
K = math.sqrt(2 / math.pi)


def _erf_forms():
    return {
        # tf.nn.gelu(approximate=False): 0.5 * x * (1 + erf(x / sqrt2))
        "tf": lambda op, x: op.mul(op.mul(c(op, 0.5), x), op.add(c(op, 1.0), op.erf(op.div(x, c(op, S2))))),
        # torch/BERT: x * 0.5 * (1.0 + erf(x * 0.70710678))
        "bert": lambda op, x: op.mul(op.mul(x, c(op, 0.5)), op.add(op.erf(op.mul(x, c(op, 1 / S2))), c(op, 1.0))),
        # jax: x * (erf(x / sqrt2) + 1) / 2
        "jax": lambda op, x: op.div(op.mul(x, op.add(op.erf(op.div(x, c(op, S2))), c(op, 1.0))), c(op, 2.0)),
        # tf.nn.gelu as traced: 0.5 * x * erfc(-x * 0.7071), erfc(z) = 1 - erf(z)
        "tf_erfc": lambda op, x: op.mul(op.mul(c(op, 0.5), x),
                                        op.sub(c(op, 1.0), op.erf(op.mul(op.neg(x), c(op, 1 / S2))))),
        # x * (0.5 + 0.5 * erf(..))
        "cdf": lambda op, x: op.mul(x, op.add(op.mul(c(op, 0.5), op.erf(op.mul(x, c(op, 1 / S2)))), c(op, 0.5))),
    }


@pytest.mark.parametrize("form", sorted(_erf_forms()))
def test_erf_gelu_spellings(form):
    g, op, x = graph_with()
    g.set_outputs([_erf_forms()[form](op, x)], ["y"])
    out = check_rewrite(g, "fuse_gelu", f"erf_{form}", ["gelu"])
    assert out.nodes()[0].attrs["approximate"] is False


def test_tanh_gelu_tf_spelling_with_pow():
    # tf.nn.gelu(approximate=True): 0.5 * x * (1 + tanh(k * (x + 0.044715 * pow(x, 3))))
    g, op, x = graph_with()
    inner = op.mul(c(op, K), op.add(x, op.mul(c(op, 0.044715), op.pow(x, c(op, 3.0)))))
    g.set_outputs([op.mul(op.mul(c(op, 0.5), x), op.add(c(op, 1.0), op.tanh(inner)))], ["y"])
    out = check_rewrite(g, "fuse_gelu", "tanh_tf_pow", ["gelu"])
    assert out.nodes()[0].attrs["approximate"] is True


def test_tanh_gelu_keras_spelling_with_x_x_x_after_fuse_square():
    # keras numpy-style: x * (0.5 * (1 + tanh(k * (x + 0.044715 * x*x*x))))
    g, op, x = graph_with()
    cube = op.mul(op.mul(x, x), x)
    inner = op.mul(op.add(x, op.mul(cube, c(op, 0.044715))), c(op, K))
    g.set_outputs([op.mul(x, op.mul(c(op, 0.5), op.add(c(op, 1.0), op.tanh(inner))))], ["y"])
    apply_pass("fuse_square", g)
    check_rewrite(g, "fuse_gelu", "tanh_keras_cube", ["gelu"])


def test_truncated_constant_other_x_and_shared_erf_are_left_alone():
    g, op, x = graph_with()
    y = g.add_input("y", x.type)
    trunc = op.mul(op.mul(x, c(op, 0.5)), op.add(op.erf(op.mul(x, c(op, 0.7071))), c(op, 1.0)))
    other = op.mul(op.mul(x, c(op, 0.5)), op.add(op.erf(op.div(y, c(op, S2))), c(op, 1.0)))
    e = op.erf(op.div(x, c(op, S2)))
    shared = op.mul(op.mul(x, c(op, 0.5)), op.add(e, c(op, 1.0)))
    g.set_outputs([trunc, other, shared, e], ["a", "b", "c", "e"])
    check_unchanged(g, "fuse_gelu")
