"""Traced Keras code doing shape arithmetic on a dynamic sequence length (``keras.Input((None, 8))``).

The Lambda / custom layer goes TensorFlow -> tf2onnx -> kcc's ONNX importer
with ``ops.shape(x)``, ``ops.arange`` and reshapes to computed shapes in it.
kcc's ONNX must keep the batch and length dynamic (named dim_params) and
match Keras at two lengths and batches; shape computations the known dims
settle leave no Shape op behind.
"""
from __future__ import annotations

import numpy as np

import keras
from keras import ops

import kcc
from kcc.testing import assert_close, assert_not_degenerate, run_onnx

SIZES = [(2, 5), (3, 9)]


def _split_heads(x):
    s = ops.shape(x)
    return ops.reshape(x, (s[0], s[1], 2, -1))


class CausalSelfAttention(keras.layers.Layer):
    """Scores x x^T masked to the past by a mask built from ``ops.arange(ops.shape(x)[1])``."""

    def call(self, x):
        t = ops.shape(x)[1]
        i = ops.arange(t)
        allowed = i[:, None] >= i[None, :]
        scores = ops.matmul(x, ops.transpose(x, (0, 2, 1))) / 2.0
        scores = ops.where(allowed[None], scores, -1e9)
        return ops.matmul(ops.softmax(scores, axis=-1), x)


def _dims(vi) -> list:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def _check_at_two_sizes(model: keras.Model, emitted) -> None:
    for b, t in SIZES:
        x = np.random.default_rng(10 * b + t).standard_normal((b, t, 8)).astype(np.float32)
        refs = model(x)
        refs = refs if isinstance(refs, (list, tuple)) else [refs]
        got = run_onnx(emitted, {emitted.graph.input[0].name: x})
        for k, (ref, g) in enumerate(zip(refs, got)):
            ref = np.asarray(ref)
            assert_not_degenerate(ref, f"Keras output {k}")
            assert g.shape == ref.shape
            assert_close(ref, g, 1e-5, what=f"output {k} at batch {b}, length {t}")


def test_lambda_reshape_to_a_computed_shape_is_a_static_reshape():
    inp = keras.Input((None, 8))
    model = keras.Model(inp, keras.layers.Lambda(_split_heads)(inp))
    emitted = kcc.compile(model, target="onnx")
    batch, length, feat = _dims(emitted.graph.input[0])
    assert isinstance(batch, str) and isinstance(length, str) and batch != length and feat == 8
    assert _dims(emitted.graph.output[0]) == [batch, length, 2, 4]
    assert "Shape" not in [n.op_type for n in emitted.graph.node]
    _check_at_two_sizes(model, emitted)


def test_custom_layer_causal_mask_from_arange_of_the_length():
    inp = keras.Input((None, 8))
    model = keras.Model(inp, CausalSelfAttention()(inp))
    emitted = kcc.compile(model, target="onnx")
    batch, length, _ = _dims(emitted.graph.input[0])
    assert _dims(emitted.graph.output[0]) == [batch, length, 8]
    ops_ = [n.op_type for n in emitted.graph.node]
    assert "Range" in ops_  # the mask is built at run time, for any length
    _check_at_two_sizes(model, emitted)


def test_fixed_length_folds_the_mask_to_a_constant():
    inp = keras.Input((7, 8))
    model = keras.Model(inp, CausalSelfAttention()(inp))
    emitted = kcc.compile(model, target="onnx")
    assert not {"Shape", "Range"} & {n.op_type for n in emitted.graph.node}
    x = np.random.default_rng(0).standard_normal((3, 7, 8)).astype(np.float32)
    assert_close(np.asarray(model(x)), run_onnx(emitted, {emitted.graph.input[0].name: x})[0], 1e-5)


def test_lambda_tril_of_the_dynamic_length():
    """``ops.tril(ops.ones((T, T)))``: TensorFlow's band part (Mod/Div of flat indices) built at run time."""
    def running_sum(x):
        t = ops.shape(x)[1]
        return ops.matmul(ops.tril(ops.ones((t, t)))[None], x)

    inp = keras.Input((None, 8))
    model = keras.Model(inp, keras.layers.Lambda(running_sum)(inp))
    emitted = kcc.compile(model, target="onnx")
    assert "CumSum" in [n.op_type for n in emitted.graph.node]  # the flat index of the band part, at run time
    _check_at_two_sizes(model, emitted)
