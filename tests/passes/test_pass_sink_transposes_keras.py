"""sink_transposes end to end: Keras sequence models reach ONNX in Keras order, CNNs stay channels-first.

Each model runs in Keras and, converted, in onnxruntime with its default session
options; outputs agree within 1e-4 of their largest magnitude. Then the ONNX
graph's structure: no interior Transpose (the sequence models need none at all),
a Keras Dense on a sequence is MatMul (+ Add), LayerNormalization on the last
axis is one ONNX LayerNormalization, and a CNN keeps zero interior Transposes.
Sizes are unequal (vocabulary 13, length 7, features 12, hidden 20) so a
transposed axis cannot pass.
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras  # noqa: E402

import kcc  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate, calibrate_batchnorm, run_keras, run_onnx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers"))
from layers_helpers import interior_transposes, randomize  # noqa: E402

VOCAB, LENGTH, FEATURES, HIDDEN = 13, 7, 12, 20


def _block(h, i: int):
    f = keras.layers.Dense(HIDDEN, activation="gelu", name=f"ffn{i}_up")(h)
    f = keras.layers.Dense(FEATURES, name=f"ffn{i}_down")(f)
    h = keras.layers.Add(name=f"residual{i}")([h, f])
    return keras.layers.LayerNormalization(epsilon=1e-5, name=f"ln{i}")(h)


def _transformer_stack() -> keras.Model:
    """Embedding + learned positions -> LayerNormalization -> 2 x (Dense-gelu-Dense, residual, LayerNormalization)."""
    tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
    positions = keras.Input((LENGTH,), dtype="int32", name="positions")
    h = keras.layers.Embedding(VOCAB, FEATURES, name="tok_emb")(tokens)
    p = keras.layers.Embedding(LENGTH, FEATURES, name="pos_emb")(positions)
    h = keras.layers.Add(name="emb_add")([h, p])
    h = keras.layers.LayerNormalization(epsilon=1e-5, name="ln_emb")(h)
    for i in range(2):
        h = _block(h, i)
    return randomize(keras.Model([tokens, positions], h), seed=3)


def _float_sequence_model() -> keras.Model:
    """``Input((None, 16))`` (dynamic length) -> Dense -> LayerNormalization -> block."""
    x = keras.Input((None, 16), name="x")
    h = keras.layers.Dense(FEATURES, name="proj")(x)
    h = keras.layers.LayerNormalization(name="ln_in")(h)
    return randomize(keras.Model(x, _block(h, 0)), seed=4)


def _ops(onnx_model) -> Counter:
    return Counter(n.op_type for n in onnx_model.graph.node)


def _compare(model, xs, tol=1e-4):
    ref = run_keras(model, xs)[0]
    assert_not_degenerate(ref)
    onnx_model = kcc.compile(model, target="onnx")
    assert_close(ref, run_onnx(onnx_model, xs)[0], tol, what=model.name)
    return onnx_model


def test_transformer_stack_has_no_transpose_and_native_layer_norm():
    model = _transformer_stack()
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCAB, (3, LENGTH)).astype("int32")
    tokens[0, :] = 0          # a row of one token: layer norm of equal rows before the positions add
    tokens[1, -1] = VOCAB - 1  # the last table row
    positions = np.tile(np.arange(LENGTH, dtype="int32"), (3, 1))
    onnx_model = _compare(model, [tokens, positions])
    ops = _ops(onnx_model)
    assert ops["Transpose"] == 0, ops
    assert ops["LayerNormalization"] == 3 and ops["ReduceMean"] == 0, ops
    assert ops["MatMul"] == 4 and ops["Conv"] == 0 and ops["Gemm"] == 0, ops


def test_dynamic_length_float_sequence():
    model = _float_sequence_model()
    onnx_model = kcc.compile(model, target="onnx")
    ops = _ops(onnx_model)
    assert ops["Transpose"] == 0 and interior_transposes(onnx_model) == [], ops
    assert ops["LayerNormalization"] == 2 and ops["MatMul"] == 3 and ops["Conv"] == 0, ops
    length = onnx_model.graph.input[0].type.tensor_type.shape.dim[1]
    assert length.dim_param, "the sequence length must stay dynamic"
    for t, seed in ((5, 0), (9, 1)):
        x = (np.random.default_rng(seed).standard_normal((2, t, 16)) * 2 + 0.5).astype(np.float32)
        ref = run_keras(model, [x])[0]
        assert_not_degenerate(ref)
        assert_close(ref, run_onnx(onnx_model, [x])[0], 1e-4, what=f"length {t}")


def test_cnn_keeps_zero_interior_transposes():
    x = keras.Input((10, 12, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", name="c1")(x)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU(name="relu")(h)
    h = keras.layers.MaxPooling2D(name="pool")(h)
    h = keras.layers.Conv2D(5, 3, name="c2")(h)
    h = keras.layers.LayerNormalization(name="ln")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(x, keras.layers.Dense(4, name="logits")(h))
    randomize(model, seed=5)
    images = np.random.default_rng(1).standard_normal((8, 10, 12, 3)).astype(np.float32)
    calibrate_batchnorm(model, images)
    onnx_model = _compare(model, [images[:2]])
    assert interior_transposes(onnx_model) == []
    assert _ops(onnx_model)["Transpose"] == 1, _ops(onnx_model)  # the NHWC input only


def _patch_model(attention: bool) -> keras.Model:
    x = keras.Input((12, 16, 3), name="image")
    h = keras.layers.Conv2D(FEATURES, 4, strides=4, name="patches")(x)
    h = keras.layers.Reshape((-1, FEATURES), name="to_sequence")(h)
    h = keras.layers.LayerNormalization(name="ln_patches")(h)
    if attention:
        a = keras.layers.MultiHeadAttention(num_heads=3, key_dim=4, name="mha")(h, h)
        h = keras.layers.Add(name="residual_mha")([h, a])
    h = _block(h, 0)
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    return randomize(keras.Model(x, keras.layers.Dense(5, name="logits")(h)), seed=6)


def test_patch_embedding_without_a_transpose_in_the_sequence_adds_none():
    """Conv2D patches -> Reshape -> block: the reshape lands in IR layout with no transpose left to move;
    holding the sequence in Keras order would take a new one, so it stays (Transposes: the input only)."""
    images = np.random.default_rng(2).standard_normal((2, 12, 16, 3)).astype(np.float32)
    ops = _ops(_compare(_patch_model(attention=False), [images]))
    assert ops["Transpose"] == 1, ops


def test_patch_embedding_with_attention_moves_the_sequence_to_keras_order():
    """With attention (computed in Keras order) the transposes around it move up to the reshape:
    the input's, the image-to-sequence one and the 4 head splits of attention are all that is left;
    the LayerNormalizations are native and the Dense layers MatMul."""
    images = np.random.default_rng(2).standard_normal((2, 12, 16, 3)).astype(np.float32)
    ops = _ops(_compare(_patch_model(attention=True), [images]))
    assert ops["Transpose"] == 6 and ops["LayerNormalization"] == 2 and ops["Conv"] == 1, ops
