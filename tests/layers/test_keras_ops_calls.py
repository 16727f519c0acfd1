"""keras.ops calls in functional models convert natively (no tracing), from memory and from .keras files.

Each model is built with ``keras.ops`` calls on a ``(batch, 5, 6)`` input, so
the recorded operation's axes are Keras's and a layout slip changes the
numbers. Tracing is switched off in these tests: a call that reached the
TensorFlow route would fail.
"""
from __future__ import annotations

import numpy as np
import pytest

import keras
from keras import ops
import kcc.frontends.keras.trace as trace
from kcc.errors import ConversionError
from attention_layers_helpers import check_targets, seeded_weights

B, T, F = 2, 5, 6

OPS = {
    "mean": lambda x: ops.mean(x, axis=1),
    "mean_keepdims_last": lambda x: ops.mean(x, axis=-1, keepdims=True),
    "sum_two_axes": lambda x: ops.sum(x, axis=(1, 2)),
    "max": lambda x: ops.max(x, axis=-1),
    "min_keepdims": lambda x: ops.min(x, axis=1, keepdims=True),
    "take_constant": lambda x: ops.take(x, np.array([4, 0, -1]), axis=1),
    "take_features": lambda x: ops.take(x, np.array([5, 1]), axis=-1),
    "transpose_matmul": lambda x: ops.matmul(x, ops.transpose(x, (0, 2, 1))),
    "matmul_constant": lambda x: ops.matmul(x, np.linspace(-1, 1, F * 4, dtype=np.float32).reshape(F, 4)),
    "squeeze": lambda x: ops.squeeze(x[:, 1:2], axis=1),
    "stack": lambda x: ops.stack([x, ops.tanh(x)], axis=2),
    "split_sections": lambda x: ops.split(x, 3, axis=-1)[1],
    "split_points": lambda x: ops.split(x, [1, 4], axis=1)[2],
    "reshape": lambda x: ops.reshape(x, (-1, T, 3, 2)),
    "rms_normalization": lambda x: ops.rms_normalization(x, axis=-1),
    "layer_normalization": lambda x: ops.layer_normalization(x, axis=-1, epsilon=1e-3),
    "unary_chain": lambda x: ops.sqrt(ops.abs(x)) + ops.exp(-ops.square(x)),
    "concatenate_features": lambda x: ops.concatenate([x, ops.abs(x)], axis=-1),
    "cls_token": lambda x: x[:, 0, :],
}


@pytest.fixture
def no_tracing(monkeypatch):
    def refuse(ctx, inputs):
        raise ConversionError(f"layer {ctx.name!r} ({ctx.layer.class_name}) was traced")
    monkeypatch.setattr(trace, "trace_layer", refuse)


@pytest.mark.parametrize("name", list(OPS))
def test_ops_call_converts_without_tracing(name, no_tracing, tmp_path):
    x = keras.Input((T, F), name="x")
    h = keras.layers.Dense(F, name="proj")(x)        # a weight before the op, so the op reads a computed tensor
    model = seeded_weights(keras.Model(x, OPS[name](h)))
    xs = [np.random.default_rng(3).standard_normal((B, T, F)).astype(np.float32)]
    check_targets(model, xs, tmp_path)


def test_reduction_over_the_batch_axis_is_traced_not_dropped(monkeypatch, tmp_path):
    """A configuration the handler does not express goes to the fallback chain (here: refused by name)."""
    def refuse(ctx, inputs):
        raise ConversionError(f"layer {ctx.name!r} ({ctx.layer.class_name}) was traced")
    monkeypatch.setattr(trace, "trace_layer", refuse)
    x = keras.Input((T, F), name="x")
    model = keras.Model(x, ops.mean(x, axis=0))
    with pytest.raises(ConversionError, match="reduces over the batch axis"):
        check_targets(model, [np.random.default_rng(0).standard_normal((B, T, F)).astype(np.float32)], tmp_path,
                      coreml=False)
