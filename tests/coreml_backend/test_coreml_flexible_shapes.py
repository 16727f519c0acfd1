"""Core ML flexible input shapes: dynamic Keras axes become shapeRange / enumeratedShapes.

Each model is converted once and run in kcc's Core ML runtime at several sizes of
its dynamic axis (unequal ones: 1, 5, 11), compared with Keras at those sizes. The
spec fields are checked against what coremltools' own flexible_shape_utils write
for the same bounds, and a size outside the declared range is refused.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kcc  # noqa: E402
from kcc.errors import ConversionError, RuntimeModelError, ShapeError  # noqa: E402
from kcc.coreml import predict  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate, run_keras  # noqa: E402

from coreml_flexible_helpers import feed, network, ranges, run  # noqa: E402

import keras  # noqa: E402

L = keras.layers
RNG = np.random.default_rng(7)


def _seq_model(body, features: int = 16, name: str = "x"):
    keras.utils.set_random_seed(3)
    inp = keras.Input((None, features), name=name)
    return keras.Model(inp, body(inp))


def _check_lengths(model, lengths, batch: int = 2, tol: float = 1e-4, **options):
    """Convert once, then compare with Keras at every sequence length; returns the spec."""
    spec = kcc.compile(model, target="coreml", **options).get_spec()
    for t in lengths:
        x = RNG.standard_normal((batch, t, model.inputs[0].shape[-1])).astype(np.float32)
        ref = run_keras(model, [x])
        assert_not_degenerate(ref[0])
        got = run(spec, [x], ref)
        assert_close(ref[0], got[0], tol, what=f"Core ML output at length {t}")
    return spec


def _dense_layernorm(x):
    return L.LayerNormalization()(L.Dense(8, activation="relu")(x))


CASES = {
    "dense_layernorm": (_dense_layernorm, 1),
    "conv1d_valid": (lambda x: L.Conv1D(6, 3, activation="tanh")(x), 3),
    "conv1d_same_stride2": (lambda x: L.Conv1D(6, 3, strides=2, padding="same")(x), 1),
    "lstm": (lambda x: L.LSTM(8, return_sequences=True)(x), 1),
    "gru_last_state": (lambda x: L.Dense(3)(L.GRU(8, reset_after=False)(x)), 1),
    "global_average": (lambda x: L.GlobalAveragePooling1D()(L.Dense(8)(x)), 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sequence_length_is_a_range(case):
    body, lower = CASES[case]
    model = _seq_model(body)
    spec = _check_lengths(model, [lower, 5, 11])
    feature = spec.description.input[0]
    axis = list(feature.type.multiArrayType.shape)
    # the rank-5 layout: (C, 1, T); the sequence axis has the range, C and the unit H are fixed
    assert network(spec).arrayInputShapeMapping == 0
    assert ranges(feature) == [(16, 16), (1, 1), (lower, -1)]
    assert axis == [16, 1, max(lower, 2)]        # the default: the smallest valid size of at least 2
    assert spec.specificationVersion == 3        # flexible shapes: iOS 12


def test_length_below_the_range_is_refused():
    model = _seq_model(lambda x: L.Conv1D(6, 3)(x))
    spec = kcc.compile(model, target="coreml").get_spec()
    x = np.zeros((1, 2, 16), np.float32)
    with pytest.raises(RuntimeModelError, match=r"input 'x' has shape \[1, 1, 16, 1, 2\].*\[16\.\.16, 1\.\.1, 3\.\.\*\]"):
        predict(spec, {"x": feed(spec, x)})
    with pytest.raises(RuntimeModelError, match=r"input 'x' has shape"):
        predict(spec, {"x": np.zeros((1, 1, 15, 1, 5), np.float32)})   # the fixed feature axis is fixed


def _nd_model(steps=None):
    """Softmax over time forces the ND layout: the batch is a declared axis there."""
    keras.utils.set_random_seed(4)
    inp = keras.Input((steps, 16), name="x")
    y = L.Softmax(axis=1)(L.Dense(8)(inp) * 3.0)
    return keras.Model(inp, L.Dense(5)(y))


def test_nd_layout_batch_and_length_are_ranges():
    model = _nd_model()
    spec = kcc.compile(model, target="coreml").get_spec()
    assert network(spec).arrayInputShapeMapping == 1          # EXACT_ARRAY_MAPPING
    feature = spec.description.input[0]
    assert list(feature.type.multiArrayType.shape) == [1, 16, 2]
    assert ranges(feature) == [(1, -1), (16, 16), (1, -1)]
    assert spec.specificationVersion == 4
    for batch, t in ((1, 1), (3, 5), (2, 11)):
        x = RNG.standard_normal((batch, t, 16)).astype(np.float32)
        ref = run_keras(model, [x])
        assert_close(ref[0], run(spec, [x], ref)[0], 1e-4, what=f"batch {batch}, length {t}")


def test_dynamic_batch_with_fixed_length():
    model = _nd_model(steps=6)
    spec = kcc.compile(model, target="coreml").get_spec()
    feature = spec.description.input[0]
    assert ranges(feature) == [(1, -1), (16, 16), (6, 6)]
    for batch in (1, 4):
        x = RNG.standard_normal((batch, 6, 16)).astype(np.float32)
        ref = run_keras(model, [x])
        assert_close(ref[0], run(spec, [x], ref)[0], 1e-4, what=f"batch {batch}")
    with pytest.raises(RuntimeModelError, match=r"expects \[1\.\.\*, 16\.\.16, 6\.\.6\]"):
        predict(spec, {"x": np.zeros((2, 16, 7), np.float32)})


def test_input_name_shape_dict_fixes_the_axes():
    model = _seq_model(_dense_layernorm)
    spec = kcc.compile(model, target="coreml", input_name_shape_dict={"x": (1, 7, 16)}).get_spec()
    at = spec.description.input[0].type.multiArrayType
    assert list(at.shape) == [16, 1, 7]
    assert at.WhichOneof("ShapeFlexibility") is None
    assert spec.specificationVersion == 1
    x = RNG.standard_normal((1, 7, 16)).astype(np.float32)
    ref = run_keras(model, [x])
    assert_close(ref[0], run(spec, [x], ref)[0], 1e-4)
    with pytest.raises(RuntimeModelError, match="expects"):
        predict(spec, {"x": np.zeros((16, 1, 8), np.float32)})
    with pytest.raises(kcc.errors.OptionError, match=r"input_name_shape_dict names input 'y'.*x"):
        kcc.compile(model, target="coreml", input_name_shape_dict={"y": (1, 7, 16)})
    with pytest.raises(ShapeError, match=r"rank 4.*rank 3"):
        kcc.compile(model, target="coreml", input_name_shape_dict={"x": (1, 7, 16, 1)})


def test_old_deployment_target_names_the_flexible_input():
    model = _seq_model(_dense_layernorm)
    with pytest.raises(ConversionError, match=r"iOS11.*flexible input shapes \(input x \(axis 2: 1\.\.\*\).*"
                                              r"input_name_shape_dict"):
        kcc.compile(model, target="coreml", minimum_deployment_target="iOS11")
    fixed = kcc.compile(model, target="coreml", minimum_deployment_target="iOS11",
                        input_name_shape_dict={"x": (1, 4, 16)}).get_spec()
    assert fixed.specificationVersion == 1


def test_image_input_gets_an_image_size_range():
    keras.utils.set_random_seed(5)
    inp = keras.Input((None, None, 3), name="img")
    model = keras.Model(inp, L.GlobalAveragePooling2D()(L.Conv2D(4, 3, activation="relu")(inp)))
    spec = kcc.compile(model, target="coreml", image_input_names="img", image_scale=1 / 255).get_spec()
    img = spec.description.input[0].type.imageType
    assert (img.width, img.height) == (3, 3)
    rng = img.imageSizeRange
    assert (rng.widthRange.lowerBound, rng.widthRange.upperBound) == (3, -1)
    assert (rng.heightRange.lowerBound, rng.heightRange.upperBound) == (3, -1)
    assert spec.specificationVersion == 3
    for h, w in ((5, 9), (12, 7)):
        pixels = RNG.integers(0, 256, size=(h, w, 3)).astype(np.uint8)
        ref = run_keras(model, [pixels[None].astype(np.float32) / 255])[0]
        got = predict(spec, {"img": pixels})[spec.description.output[0].name]
        assert_close(ref, np.asarray(got).reshape(ref.shape), 1e-4, what=f"{h}x{w} image")
    with pytest.raises(RuntimeModelError, match=r"2x5 .*width 3\.\.\* x height 3\.\.\*"):
        predict(spec, {"img": np.zeros((5, 2, 3), np.uint8)})


def test_fixed_shape_models_are_unchanged():
    keras.utils.set_random_seed(6)
    inp = keras.Input((8, 8, 3), name="pixels")
    model = keras.Model(inp, L.Dense(4)(L.Flatten()(L.Conv2D(3, 3)(inp))))
    spec = kcc.compile(model, target="coreml").get_spec()
    assert spec.description.input[0].type.multiArrayType.WhichOneof("ShapeFlexibility") is None
    assert spec.specificationVersion == 1


# ------------------------------------------------------------ coremltools' own flexible-shape writer
def _as_coremltools_writes(spec, apply, version: int):
    """``spec`` with its input flexibility cleared, then written by coremltools' flexible_shape_utils."""
    from coremltools.models.neural_network import flexible_shape_utils as fsu

    theirs = type(spec)()
    theirs.CopyFrom(spec)
    for f in theirs.description.input:
        if f.type.WhichOneof("Type") == "imageType":
            f.type.imageType.ClearField("SizeFlexibility")
        else:
            f.type.multiArrayType.ClearField("ShapeFlexibility")
    theirs.specificationVersion = version
    apply(fsu, theirs)
    return theirs


def test_rank5_range_matches_coremltools():
    spec = kcc.compile(_seq_model(_dense_layernorm), target="coreml").get_spec()

    def apply(fsu, s):
        r = fsu.NeuralNetworkMultiArrayShapeRange()
        r.add_channel_range((16, 16))
        r.add_height_range((1, 1))
        r.add_width_range((1, -1))
        fsu.update_multiarray_shape_range(s, "x", r)

    theirs = _as_coremltools_writes(spec, apply, version=1)
    assert theirs.description == spec.description
    assert theirs.specificationVersion == spec.specificationVersion == 3


def test_nd_range_matches_coremltools():
    spec = kcc.compile(_nd_model(), target="coreml").get_spec()
    theirs = _as_coremltools_writes(
        spec, lambda fsu, s: fsu.set_multiarray_ndshape_range(s, "x", [1, 16, 1], [-1, 16, -1]), version=1)
    assert theirs.description == spec.description
    assert theirs.specificationVersion == spec.specificationVersion == 4


def test_image_range_matches_coremltools():
    keras.utils.set_random_seed(5)
    inp = keras.Input((None, None, 3), name="img")
    model = keras.Model(inp, L.GlobalAveragePooling2D()(L.Conv2D(4, 3)(inp)))
    spec = kcc.compile(model, target="coreml", image_input_names="img").get_spec()

    def apply(fsu, s):
        r = fsu.NeuralNetworkImageSizeRange()
        r.add_height_range((3, -1))
        r.add_width_range((3, -1))
        fsu.update_image_size_range(s, "img", r)

    theirs = _as_coremltools_writes(spec, apply, version=1)
    assert theirs.description == spec.description
    assert theirs.specificationVersion == spec.specificationVersion == 3


def test_lengths_a_reshape_divides_are_enumerated():
    """Reshape((-1, 32)) of (T, 16) needs an even T: no range serves, the valid lengths are enumerated."""
    model = _seq_model(lambda x: L.Dense(4)(L.Reshape((-1, 32))(x)))
    spec = _check_lengths(model, [2, 6, 10], batch=1)
    at = spec.description.input[0].type.multiArrayType
    assert at.WhichOneof("ShapeFlexibility") == "enumeratedShapes"
    shapes = [list(s.shape) for s in at.enumeratedShapes.shapes]
    assert shapes[0] == list(at.shape) == [1, 16, 2]                # the default first
    assert [s[2] for s in shapes][:8] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert all(s[1] == 16 and s[2] % 2 == 0 for s in shapes)
    assert [2, 16, 6] in shapes                                      # the batch varies too
    x = RNG.standard_normal((2, 6, 16)).astype(np.float32)
    ref = run_keras(model, [x])
    assert_close(ref[0], run(spec, [x], ref)[0], 1e-4, what="batch 2")
    with pytest.raises(RuntimeModelError, match=r"has shape \[1, 16, 5\].*expects \[1, 16, 2\] or \[1, 16, 4\]"):
        predict(spec, {"x": np.zeros((1, 16, 5), np.float32)})


# ------------------------------------------------------------ shape arithmetic from Keras
def _positions(t):
    import tensorflow as tf

    pos = tf.cast(tf.range(tf.shape(t)[1]), tf.float32)
    return t + pos[None, :, None] * 0.1


def test_traced_positions_read_the_length_at_run_time():
    """tf.range(tf.shape(x)[1]) in a Lambda: getShape and rangeDynamic, not a constant of one length."""
    model = _seq_model(lambda x: L.Dense(4)(L.Lambda(_positions)(x)))
    spec = _check_lengths(model, [1, 5, 11], batch=1)
    types = {lyr.WhichOneof("layer") for lyr in network(spec).layers}
    assert {"getShape", "rangeDynamic"} <= types
    assert ranges(spec.description.input[0])[2] == (1, -1)


def test_causal_self_attention_over_a_dynamic_length():
    """The causal mask is built from the runtime length (rangeDynamic, greaterEqual, whereBroadcastable)."""
    def block(x):
        y = L.MultiHeadAttention(2, 8, name="mha")(x, x, use_causal_mask=True)
        return L.LayerNormalization()(x + y)

    model = _seq_model(block)
    spec = _check_lengths(model, [1, 5, 11], batch=2)
    types = {lyr.WhichOneof("layer") for lyr in network(spec).layers}
    assert {"getShape", "rangeDynamic", "whereBroadcastable"} <= types
    # the head split (N, T, 16) -> (N, T, 2, 8) copies N and T: rankPreservingReshape (0, 0, 2, 8)
    assert "rankPreservingReshape" in types
    assert ranges(spec.description.input[0]) == [(1, -1), (16, 16), (1, -1)]
    # the NeuralNetwork frontend reads it back (x_d0, x_d2 symbols) and runs at another length and batch
    from kcc.frontends.coreml.neuralnetwork import load_neuralnetwork
    from kcc.interpreter import run as run_ir

    imported = load_neuralnetwork(spec)
    x = RNG.standard_normal((3, 7, 16)).astype(np.float32)
    ref = run_keras(model, [x])[0]
    got = np.asarray(run_ir(imported, {"x": x.transpose(0, 2, 1)})[imported.output_names[0]])
    assert_close(ref, got.transpose(0, 2, 1), 1e-4, what="imported back, batch 3, length 7")


def test_attention_with_a_fixed_length_takes_any_batch():
    """With the length fixed, each attention reshape has one varying dim (the batch, written -1)."""
    keras.utils.set_random_seed(8)
    inp = keras.Input((6, 16), name="x")
    model = keras.Model(inp, L.MultiHeadAttention(2, 8)(inp, inp, use_causal_mask=True))
    spec = kcc.compile(model, target="coreml").get_spec()
    assert ranges(spec.description.input[0]) == [(1, -1), (16, 16), (6, 6)]
    for batch in (1, 3):
        x = RNG.standard_normal((batch, 6, 16)).astype(np.float32)
        ref = run_keras(model, [x])
        assert_close(ref[0], run(spec, [x], ref)[0], 1e-4, what=f"batch {batch}")


def test_a_layer_carrying_the_length_is_a_clear_error():
    """A deconvolution's outputShape is the length: no flexible shape can hold it; fixing the length can."""
    model = _seq_model(lambda x: L.Conv1DTranspose(4, 3, strides=2, name="up")(x))
    with pytest.raises(ConversionError, match=r"layer 'up/.*\(convolution\).*from layer 'up'\) depends on the "
                                              r"size of the dynamic input axes \['x_d1'\].*input_name_shape_dict"):
        kcc.compile(model, target="coreml")
    spec = kcc.compile(model, target="coreml", input_name_shape_dict={"x": (None, 5, 16)}).get_spec()
    assert spec.description.input[0].type.multiArrayType.WhichOneof("ShapeFlexibility") is None
    x = RNG.standard_normal((1, 5, 16)).astype(np.float32)
    ref = run_keras(model, [x])
    assert_close(ref[0], run(spec, [x], ref)[0], 1e-4)
