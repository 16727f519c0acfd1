"""Graph shapes around the layers: nesting, sharing, several inputs/outputs, ranks 2-5,
unknown spatial sizes, and the errors for unknown layers and consumed masks."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras
L = keras.layers

import kcc  # noqa: E402
from kcc.testing import seeded  # noqa: E402
from layers_helpers import check_model, interior_transposes, randomize  # noqa: E402


def test_nested_three_levels_sequential_in_functional_in_sequential():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((6, 6, 4)), L.Conv2D(4, 3, padding="same"), L.ReLU()], name="inner")
    i = keras.Input((6, 6, 3))
    mid = keras.Model(i, L.Add()([inner(L.Conv2D(4, 1)(i)), L.Conv2D(4, 1)(i)]), name="mid")
    outer = keras.Sequential([keras.Input((6, 6, 3)), mid, L.GlobalAveragePooling2D(), L.Dense(3)], name="outer")
    check_model(randomize(outer), no_transpose=True)


def test_nested_functional_in_sequential_in_functional():
    keras.utils.set_random_seed(0)
    j = keras.Input((5, 4))
    leaf = keras.Model(j, L.LayerNormalization()(L.Dense(4)(j)), name="leaf")
    seq = keras.Sequential([keras.Input((5, 4)), leaf, L.Conv1D(4, 3, padding="same")], name="seq")
    i = keras.Input((5, 4))
    model = keras.Model(i, L.Concatenate()([seq(i), seq(L.Dense(4)(i))]))
    check_model(randomize(model))


def test_shared_layers_several_inputs_outputs_ranks_2_to_5():
    keras.utils.set_random_seed(0)
    a = keras.Input((6,), name="vec")
    b = keras.Input((5, 6), name="seq")
    c = keras.Input((4, 4, 6), name="img")
    d = keras.Input((2, 3, 3, 6), name="vol")
    shared = L.Dense(6, activation="tanh", name="shared")
    outs = [shared(t) for t in (a, b, c, d)]
    pooled = [outs[0], L.GlobalMaxPooling1D()(outs[1]), L.GlobalAveragePooling2D()(outs[2]),
              L.GlobalAveragePooling3D()(outs[3])]
    total = L.Add(name="total")(pooled)
    model = keras.Model([a, b, c, d], [total, outs[2], L.Conv3D(2, 2)(outs[3])])
    check_model(randomize(model))


def test_conv_model_unknown_spatial_dims():
    keras.utils.set_random_seed(0)
    i = keras.Input((None, None, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(i)
    x = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.MaxPooling2D(2, padding="same")(x)
    x = L.AveragePooling2D(3, strides=2, padding="same")(x)
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    x = L.UpSampling2D(2)(x)
    x = L.GroupNormalization(2)(x)
    x = L.GlobalAveragePooling2D(keepdims=True)(x)
    x = L.Reshape((-1,))(x)
    model = randomize(keras.Model(i, L.Dense(3)(x)))
    for hw in ((13, 11), (16, 16)):
        check_model(model, [seeded((2, *hw, 3))], no_transpose=True)


def test_unknown_sequence_length():
    keras.utils.set_random_seed(0)
    i = keras.Input((None, 4))
    x = L.Conv1D(6, 3, padding="causal")(i)
    x = L.LayerNormalization()(x)
    model = randomize(keras.Model(i, L.GlobalMaxPooling1D()(x)))
    check_model(model, [seeded((2, 9, 4))])


class Mystery(L.Layer):
    def call(self, x):
        return x * 2.0


def test_unknown_layer_error_names_layer_class_and_ways_forward():
    """A class no handler knows, with no live layer to trace (as read from a file without Keras)."""
    from kcc.frontends.keras.fallback import lower_unknown_layer
    from kcc.frontends.keras.loader import load_keras_model
    from kcc.frontends.keras.lower import KerasLowering

    i = keras.Input((4,))
    model = keras.Model(i, Mystery(name="odd")(L.Dense(3)(i)))
    spec = load_keras_model(model)
    spec.layer("odd").live = None
    with pytest.raises(kcc.UnsupportedLayerError) as e:
        KerasLowering(spec).lower()
    # With the fallback chain (what kcc.compile uses) it is the same class of error, still naming the ways forward.
    with pytest.raises(kcc.UnsupportedLayerError) as e2:
        KerasLowering(spec, fallback=lower_unknown_layer).lower()
    for msg in (str(e.value), str(e2.value)):
        assert "odd" in msg and "Mystery" in msg and "custom_conversion_functions" in msg


def test_masking_consumed_by_a_recurrent_layer_is_an_error():
    """Masks reaching pooling or attention are honored (tests/layers/test_masks.py); an LSTM's is refused."""
    i = keras.Input((5, 3))
    model = keras.Model(i, L.LSTM(2, name="lstm")(L.Dense(4)(L.Masking(0.0, name="mask")(i))))
    with pytest.raises(kcc.ConversionError, match="lstm.*mask"):
        kcc.compile(model, target="onnx")


def test_embedding_mask_zero_without_consumer_converts():
    keras.utils.set_random_seed(0)
    i = keras.Input((5,), dtype="int32")
    model = randomize(keras.Model(i, L.Flatten()(L.Embedding(7, 3, mask_zero=True)(i))))
    x = np.random.default_rng(0).integers(1, 7, (2, 5)).astype(np.int32)
    check_model(model, [x])


def test_cnn_reshapes_leave_no_transpose():
    """MobileNet's GAP -> Reshape((1,1,C)) -> conv and a (H*W, C) reshape become plain reshapes."""
    keras.utils.set_random_seed(0)
    i = keras.Input((6, 6, 8))
    g = L.Reshape((1, 1, 8))(L.GlobalAveragePooling2D()(i))
    g = L.Conv2D(8, 1, activation="hard_sigmoid")(g)
    x = L.Multiply()([i, g])
    x = L.Reshape((36, 8))(x)
    x = L.Dense(4)(x)
    model = randomize(keras.Model(i, x))
    check_model(model, no_transpose=True)
    onnx_model = kcc.compile(model, target="onnx")
    assert not interior_transposes(onnx_model)
    assert sum(n.op_type == "Transpose" for n in onnx_model.graph.node) == 2
