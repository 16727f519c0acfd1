"""The IR the ML Program frontend makes: op list, golden text, and numbers (interpreter vs numpy).

The program mixes what coremltools writes for a Keras CNN: NHWC<->NCHW
transposes around a conv, batch_norm, an activation, a reshape and a linear.
"""
from __future__ import annotations

import numpy as np
import pytest

from kcc.frontends.coreml import load_mlprogram
from kcc.interpreter import run
from kcc.printer import format_graph
from kcc.testing import assert_close
from mlp_helpers import check_golden, coremltools, program_to_mlpackage, seeded

X = seeded((2, 6, 5, 3), 0)
W = seeded((4, 3, 3, 3), 1, 0.4)
MEAN, VAR = seeded((4,), 2), np.abs(seeded((4,), 3)) + 0.5
LW, LB = seeded((7, 4 * 4 * 3), 4, 0.2), seeded((7,), 5)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    coremltools()
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(X.shape)])
    def prog(x):
        y = mb.transpose(x=x, perm=[0, 3, 1, 2])
        y = mb.conv(x=y, weight=W, pad_type="valid")
        y = mb.batch_norm(x=y, mean=MEAN, variance=VAR, epsilon=1e-3)
        y = mb.relu(x=y)
        y = mb.transpose(x=y, perm=[0, 2, 3, 1])
        y = mb.reshape(x=y, shape=[2, -1])
        return mb.linear(x=y, weight=LW, bias=LB, name="logits")

    return program_to_mlpackage(prog, tmp_path_factory.mktemp("ir") / "cnn.mlpackage")


def _reference(x):
    import tensorflow as tf

    y = np.asarray(tf.nn.conv2d(x, np.transpose(W, (2, 3, 1, 0)), 1, "VALID"))
    y = np.maximum((y - MEAN) / np.sqrt(VAR + 1e-3), 0)
    return y.reshape(2, -1) @ LW.T + LB


def test_frontend_ir(package):
    graph = load_mlprogram(package)
    graph.validate()
    assert graph.op_types() == ["transpose", "conv", "batch_norm", "relu", "transpose", "reshape", "dense"]
    check_golden("mlprogram__cnn", format_graph(graph))
    assert_close(_reference(X), run(graph, {"x": X})["logits"], 1e-5)
