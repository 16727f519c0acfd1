"""End to end: decomposed activations and normalizations reach ONNX as fused operators.

Keras models whose activations are written out in a Lambda (traced by the
frontend into elementwise IR) compile to ONNX models holding the fused
operator, and match Keras through onnxruntime. A graph built directly in the
IR checks the same for opsets 17 and 20 (Gelu is native from 20: below it
lower_onnx_elementwise writes it out), and a
Conv/Dense + BatchNormalization model checks the folds.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops as K

from pass_helpers import c, graph_with
from kcc.api import COMMON_OPTIONS, compile_model, load_graph
from kcc.backends import STANDARD_PIPELINE, get_target, with_pass_options
from kcc.backends.onnx import ONNX_LOWERING, emit_onnx
from kcc.interpreter import run, seeded_inputs
from kcc.pipeline import Pipeline
from kcc.testing import (assert_close, assert_not_degenerate, calibrate_batchnorm, run_keras, run_onnx)

# name -> (Lambda body, IR op expected after the pipeline, ONNX op expected at opset 17)
BODIES = {
    "silu": (lambda x: x * tf.sigmoid(x), "silu", "Sigmoid"),
    "tf_silu": (lambda x: tf.nn.silu(x), "silu", "Sigmoid"),
    "mish": (lambda x: x * tf.tanh(tf.nn.softplus(x)), "mish", "Softplus"),
    "gelu_tf": (lambda x: tf.nn.gelu(x, approximate=False), "gelu", "Erf"),
    "gelu_written": (lambda x: 0.5 * x * (1.0 + tf.math.erf(x / 1.4142135623730951)), "gelu", "Erf"),
    "gelu_keras_tanh": (lambda x: K.gelu(x, approximate=True), "gelu", "Tanh"),
    "relu6": (lambda x: tf.minimum(tf.maximum(x, 0.0), 6.0), "clip", "Clip"),
    "hard_swish": (lambda x: x * tf.nn.relu6(x + 3.0) / 6.0, "hard_silu", "HardSwish"),
    "keras_hard_silu": (lambda x: K.hard_silu(x), "hard_silu", "HardSwish"),
    "leaky": (lambda x: tf.maximum(x, 0.2 * x), "leaky_relu", "LeakyRelu"),
    "square": (lambda x: x * x, "square", "Mul"),
    "seed_norm": (lambda x: (x - tf.reduce_mean(x)) / tf.math.sqrt(tf.math.reduce_variance(x) + 1e-7),
                  "layer_norm", "ReduceMean"),
    "moments_affine": (lambda x: (lambda m, v: (x - m) / tf.sqrt(v + 1e-5) * 1.5 + 0.25)(
        *tf.nn.moments(x, axes=[-1], keepdims=True)), "layer_norm", "LayerNormalization"),
    "keras_layer_norm": (lambda x: K.layer_normalization(x, axis=-1, epsilon=1e-3), "layer_norm",
                         "LayerNormalization"),
    "tf_batch_normalization": (lambda x: (lambda m, v: tf.nn.batch_normalization(x, m, v, 0.5, 2.0, 1e-3))(
        *tf.nn.moments(x, [-1], keepdims=True)), "layer_norm", "LayerNormalization"),
}


def _fused_ops(model) -> list[str]:
    """The IR ops after the standard pipeline (before the ONNX lowering passes)."""
    target = get_target("onnx")
    g = load_graph(model, boundary=target.default_boundary, options={**COMMON_OPTIONS, **target.options})
    Pipeline.from_spec(list(STANDARD_PIPELINE)).run(g)
    return g.op_types()


@pytest.mark.parametrize("name", sorted(BODIES))
def test_lambda_activation_reaches_onnx_fused(name):
    body, ir_op, onnx_op = BODIES[name]
    inp = keras.Input((6,))
    y = keras.layers.Lambda(body)(keras.layers.Dense(10)(inp))
    model = keras.Model(inp, y)
    x = (np.random.default_rng(1).normal(size=(3, 6)) * 3).astype(np.float32)
    assert _fused_ops(model) == ["dense", ir_op]
    result = compile_model(model, "onnx")
    assert onnx_op in [n.op_type for n in result.model.graph.node]
    ref = run_keras(model, [x])[0]
    assert_not_degenerate(ref)
    assert_close(ref, run_onnx(result.model, [x])[0], 1e-5, what=name)


def _decomposed_graph():
    """Five decomposed forms side by side on one Dense output."""
    g, op, x = graph_with(("N", 6), origin="body")
    h = op.dense(x, c(op, np.random.default_rng(3).normal(size=(6, 8)) * 0.8))
    gelu = op.mul(op.mul(h, c(op, 0.5)), op.add(op.erf(op.mul(h, c(op, 0.7071067811865476))), c(op, 1.0)))
    r6 = op.min(op.max(op.add(h, c(op, 3.0)), c(op, 0.0)), c(op, 6.0))
    hswish = op.div(op.mul(h, r6), c(op, 6.0))
    leaky = op.max(h, op.mul(h, c(op, 0.1)))
    m = op.reduce_mean(h, axes=(1,), keepdims=True)
    d = op.sub(h, m)
    norm = op.mul(d, op.rsqrt(op.add(op.reduce_mean(op.mul(d, d), axes=(1,), keepdims=True), c(op, 1e-3))))
    norm = op.add(op.mul(norm, c(op, np.linspace(0.5, 1.5, 8))), c(op, np.linspace(-1, 1, 8)))
    g.set_outputs([gelu, hswish, leaky, norm], ["gelu", "hswish", "leaky", "norm"])
    return g


@pytest.mark.parametrize("opset", [17, 20])
def test_ir_graph_fuses_and_matches_in_onnxruntime(opset):
    g = _decomposed_graph()
    feeds = {"x": seeded_inputs(g)["x"] * np.float32(3)}
    ref = run(g, feeds)
    Pipeline.from_spec(list(STANDARD_PIPELINE)).run(g)
    assert sorted(g.op_types()) == ["dense", "gelu", "hard_silu", "layer_norm", "leaky_relu"]
    Pipeline.from_spec(with_pass_options(ONNX_LOWERING, {"opset": opset})).run(g)
    assert ("gelu" in g.op_types()) == (opset >= 20)
    model = emit_onnx(g, opset=opset)
    ops = [n.op_type for n in model.graph.node]
    assert {"HardSwish", "LeakyRelu", "LayerNormalization"} <= set(ops)
    assert ("Gelu" in ops) == (opset >= 20) and ("Erf" in ops) == (opset < 20)
    outs = run_onnx(model, feeds)
    for (name, r), o in zip(ref.items(), outs):
        assert_not_degenerate(r, name)
        assert_close(r, o, 1e-5, what=f"{name} at opset {opset}")


def test_batchnorm_and_bias_fold_into_conv_and_dense(tmp_path):
    from kcc.cli import main

    inp = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 3, use_bias=False)(inp)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.DepthwiseConv2D(3)(y)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.Flatten()(y)
    y = keras.layers.Dense(5)(y)
    y = keras.layers.BatchNormalization()(y)
    model = keras.Model(inp, y)
    x = np.random.default_rng(2).normal(size=(4, 8, 8, 3)).astype(np.float32)
    calibrate_batchnorm(model, x)
    result = compile_model(model, "onnx")
    assert "batch_norm" not in result.graph.op_types()
    ops = [n.op_type for n in result.model.graph.node]
    assert "BatchNormalization" not in ops and ops.count("Conv") == 2
    ref = run_keras(model, [x])[0]
    assert_not_degenerate(ref)
    assert_close(ref, run_onnx(result.model, [x])[0], 1e-4)
    # The CLI's dumps show fold_batchnorm doing it.
    path = tmp_path / "m.keras"
    model.save(path)
    dumps = tmp_path / "dumps"
    assert main([str(path), "--emit", "onnx", "-o", str(tmp_path / "m.onnx"), "--dump-ir", str(dumps),
                 "--verify-each"]) == 0
    before = next(dumps.glob("00-frontend.txt")).read_text()
    after = next(dumps.glob("*-fold_batchnorm.txt")).read_text()
    assert before.count("= batch_norm(") == 3 and "= batch_norm(" not in after
