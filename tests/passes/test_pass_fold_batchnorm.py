"""fold_batchnorm: batch_norm into conv / depthwise conv / conv_transpose / dense."""
from __future__ import annotations

import numpy as np
import pytest

from pass_helpers import c, check_rewrite, check_unchanged, graph_with

def _bn(op, y, channels):
    r = np.random.default_rng(channels)
    return op.batch_norm(y, c(op, r.uniform(0.5, 2, channels)), c(op, r.normal(size=channels)),
                         c(op, r.normal(size=channels)), c(op, r.uniform(0.5, 2, channels)), epsilon=1e-3)


def _w(*shape):
    return np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32) * 0.3


PRODUCERS = {
    "conv": (("N", 3, 8, 8), lambda op, x: op.conv(x, c(op, _w(4, 3, 3, 3)), c(op, _w(4))), 4),
    "conv_nobias": (("N", 3, 8, 8), lambda op, x: op.conv(x, c(op, _w(4, 3, 3, 3)), strides=(2, 2)), 4),
    "depthwise": (("N", 3, 8, 8), lambda op, x: op.conv(x, c(op, _w(3, 1, 3, 3)), c(op, _w(3)), group=3), 3),
    "conv_transpose": (("N", 4, 5, 5),
                       lambda op, x: op.conv_transpose(x, c(op, _w(4, 3, 3, 3)), c(op, _w(6)), group=2,
                                                       strides=(2, 2)), 6),
    "dense": (("N", 5), lambda op, x: op.dense(x, c(op, _w(5, 7)), c(op, _w(7))), 7),
    "dense_seq": (("N", 5, 3), lambda op, x: op.dense(x, c(op, _w(5, 7))), 7),
}


@pytest.mark.parametrize("case", sorted(PRODUCERS))
def test_batchnorm_folds_into_producer(case):
    shape, make, ch = PRODUCERS[case]
    g, op, x = graph_with(shape, origin="block")
    y = make(op, x)
    g.set_outputs([_bn(op, y, ch)], ["y"])
    prod = g.nodes()[0].op
    out = check_rewrite(g, "fold_batchnorm", case, [prod], tol=1e-5)
    assert out.nodes()[0].inputs[2] is not None


def test_batchnorm_without_foldable_producer_stays():
    g, op, x = graph_with(("N", 3, 8, 8))
    pooled = op.max_pool(x, kernel=(2, 2))
    g.set_outputs([_bn(op, pooled, 3), _bn(op, x, 3)], ["a", "b"])
    check_unchanged(g, "fold_batchnorm")


def test_fused_activation_shared_output_or_variable_stats_block_folding():
    g, op, x = graph_with(("N", 5))
    w = c(op, _w(5, 7))
    act = op.dense(x, w, activation="relu")
    shared = op.dense(x, w)
    var_in = g.add_input("var", g.inputs[0].type.__class__((7,)))
    plain = op.dense(x, w)
    g.set_outputs([_bn(op, act, 7), _bn(op, shared, 7), shared,
                   op.batch_norm(plain, c(op, np.ones(7)), c(op, np.zeros(7)), c(op, np.zeros(7)), var_in)],
                  ["a", "b", "s", "v"])
    check_unchanged(g, "fold_batchnorm")
