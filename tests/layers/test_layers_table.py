"""One row per supported Keras layer/option: Keras == ONNX (onnxruntime) == IR interpreter.

Each row builds a small functional model from code with seeded weights, converts
it from memory, and compares within 1e-4 of the reference's largest magnitude.
Rows marked ``cnn`` must also convert with no Transpose inside the graph.
docs/layers.md lists which rows cover which class (tools/gen_layer_table.py).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras
L = keras.layers

from layers_helpers import check_model, randomize  # noqa: E402


def chain(shape, *layers, dtype="float32"):
    keras.utils.set_random_seed(0)
    x = inp = keras.Input(shape, dtype=dtype)
    for layer in layers:
        x = layer(x)
    return randomize(keras.Model(inp, x))


def merge(layer, *shapes):
    keras.utils.set_random_seed(0)
    ins = [keras.Input(s) for s in shapes]
    return randomize(keras.Model(ins, layer(ins)))


def act(name):
    return lambda: chain((6, 5), L.Dense(8), L.Activation(name))


# id -> (builder, cnn-style: no interior Transpose allowed)
ROWS = {
    # --- core
    "Dense-rank2": (lambda: chain((7,), L.Dense(5, activation="relu")), True),
    "Dense-rank3": (lambda: chain((4, 7), L.Dense(5)), True),
    "Dense-rank4": (lambda: chain((3, 4, 7), L.Dense(5, use_bias=False)), True),
    "Dense-rank5": (lambda: chain((2, 3, 4, 7), L.Dense(5)), True),
    "Activation-relu": (lambda: chain((4, 4, 3), L.Activation("relu")), True),
    "Identity": (lambda: chain((4, 4, 3), L.Identity(), L.Dense(2)), True),
    "Embedding": (lambda: chain((5,), L.Embedding(10, 4), dtype="int32"), False),
    "Embedding-dense": (lambda: chain((5,), L.Embedding(10, 4), L.Dense(3), dtype="int32"), False),
    "Masking-unconsumed": (lambda: chain((5, 3), L.Masking(0.0), L.Dense(4)), True),
    "Flatten": (lambda: chain((4, 4, 3), L.Conv2D(4, 3), L.Flatten(), L.Dense(3)), True),
    # --- convolution
    "Conv1D-same-stride": (lambda: chain((9, 3), L.Conv1D(4, 3, strides=2, padding="same")), True),
    "Conv1D-causal-dilated": (lambda: chain((9, 3), L.Conv1D(4, 3, padding="causal", dilation_rate=2)), True),
    "Conv1D-groups": (lambda: chain((9, 4), L.Conv1D(6, 3, groups=2)), True),
    "Conv2D-valid": (lambda: chain((8, 8, 3), L.Conv2D(4, 3, activation="relu")), True),
    "Conv2D-same-stride2": (lambda: chain((9, 8, 3), L.Conv2D(4, 3, strides=2, padding="same")), True),
    "Conv2D-dilated": (lambda: chain((9, 9, 3), L.Conv2D(4, 3, dilation_rate=2, padding="same")), True),
    "Conv2D-groups": (lambda: chain((6, 6, 4), L.Conv2D(4, 3, groups=2, use_bias=False)), True),
    "Conv3D": (lambda: chain((5, 6, 6, 2), L.Conv3D(3, 3, strides=(1, 2, 2), padding="same")), True),
    "Conv1DTranspose-same-s2": (lambda: chain((5, 3), L.Conv1DTranspose(4, 3, strides=2, padding="same")), True),
    "Conv1DTranspose-valid": (lambda: chain((5, 3), L.Conv1DTranspose(4, 2, strides=3)), True),
    "Conv2DTranspose-same": (lambda: chain((5, 4, 3), L.Conv2DTranspose(4, 3, strides=2, padding="same")), True),
    "Conv2DTranspose-valid": (lambda: chain((5, 4, 3), L.Conv2DTranspose(4, 3, strides=2)), True),
    "Conv2DTranspose-outpad": (lambda: chain((5, 4, 3), L.Conv2DTranspose(4, 3, strides=2, padding="same",
                                                                           output_padding=1)), True),
    "Conv2DTranspose-dilated": (lambda: chain((5, 4, 3), L.Conv2DTranspose(4, 3, dilation_rate=2)), True),
    "Conv3DTranspose": (lambda: chain((3, 4, 4, 2), L.Conv3DTranspose(3, 2, strides=2, padding="same")), True),
    "DepthwiseConv1D": (lambda: chain((9, 3), L.DepthwiseConv1D(3, depth_multiplier=2, padding="same")), True),
    "DepthwiseConv2D": (lambda: chain((8, 8, 3), L.DepthwiseConv2D(3, strides=2, padding="same")), True),
    "DepthwiseConv2D-mult": (lambda: chain((8, 8, 3), L.DepthwiseConv2D(3, depth_multiplier=2,
                                                                         activation="relu6")), True),
    "SeparableConv1D": (lambda: chain((9, 3), L.SeparableConv1D(4, 3, padding="same")), True),
    "SeparableConv2D": (lambda: chain((8, 8, 3), L.SeparableConv2D(5, 3, depth_multiplier=2, strides=2)), True),
    # --- pooling
    "MaxPooling1D": (lambda: chain((9, 3), L.MaxPooling1D(2)), True),
    "AveragePooling1D-same": (lambda: chain((9, 3), L.AveragePooling1D(3, strides=2, padding="same")), True),
    "MaxPooling2D-same": (lambda: chain((9, 9, 3), L.MaxPooling2D(3, strides=2, padding="same")), True),
    "AveragePooling2D": (lambda: chain((8, 8, 3), L.AveragePooling2D(2)), True),
    "AveragePooling2D-same": (lambda: chain((7, 7, 3), L.AveragePooling2D(3, strides=2, padding="same")), True),
    "MaxPooling3D": (lambda: chain((4, 4, 4, 2), L.MaxPooling3D(2)), True),
    "AveragePooling3D-same": (lambda: chain((5, 4, 4, 2), L.AveragePooling3D(2, padding="same")), True),
    "GlobalAveragePooling1D": (lambda: chain((6, 3), L.GlobalAveragePooling1D()), True),
    "GlobalMaxPooling1D-keepdims": (lambda: chain((6, 3), L.GlobalMaxPooling1D(keepdims=True)), True),
    "GlobalAveragePooling2D": (lambda: chain((5, 5, 3), L.GlobalAveragePooling2D()), True),
    "GlobalAveragePooling2D-keepdims": (lambda: chain((5, 5, 3), L.GlobalAveragePooling2D(keepdims=True)), True),
    "GlobalMaxPooling2D": (lambda: chain((5, 5, 3), L.GlobalMaxPooling2D()), True),
    "GlobalAveragePooling3D": (lambda: chain((3, 4, 4, 2), L.GlobalAveragePooling3D()), True),
    "GlobalMaxPooling3D-keepdims": (lambda: chain((3, 4, 4, 2), L.GlobalMaxPooling3D(keepdims=True)), True),
    # --- normalization
    "BatchNormalization": (lambda: chain((6, 6, 3), L.Conv2D(4, 3), L.BatchNormalization()), True),
    "BatchNormalization-standalone": (lambda: chain((6, 6, 3), L.BatchNormalization(center=False)), True),
    "BatchNormalization-axis1": (lambda: chain((5, 6, 3), L.BatchNormalization(axis=1)), True),
    "BatchNormalization-rank2": (lambda: chain((5,), L.BatchNormalization(scale=False)), True),
    "LayerNormalization-last": (lambda: chain((5, 6), L.LayerNormalization()), True),
    "LayerNormalization-rank2": (lambda: chain((6,), L.LayerNormalization(epsilon=1e-5)), True),
    "LayerNormalization-axes12": (lambda: chain((4, 5, 3), L.LayerNormalization(axis=[1, 2])), True),
    "LayerNormalization-all": (lambda: chain((4, 5, 3), L.LayerNormalization(axis=[1, 2, 3], center=False)), True),
    "LayerNormalization-noscale": (lambda: chain((5, 6), L.LayerNormalization(scale=False, center=False)), True),
    "LayerNormalization-rms": (lambda: chain((5, 6), L.LayerNormalization(rms_scaling=True)), True),
    "RMSNormalization-last": (lambda: chain((5, 6), L.RMSNormalization(epsilon=1e-3)), True),
    "RMSNormalization-rank2": (lambda: chain((6,), L.RMSNormalization()), True),
    "GroupNormalization": (lambda: chain((5, 5, 6), L.GroupNormalization(3)), True),
    "GroupNormalization-seq": (lambda: chain((7, 4), L.GroupNormalization(2, center=False)), True),
    "UnitNormalization": (lambda: chain((5, 6), L.UnitNormalization()), True),
    "UnitNormalization-axes": (lambda: chain((4, 4, 3), L.UnitNormalization(axis=[1, 2])), True),
    # --- regularization (identity at inference)
    "Dropout": (lambda: chain((4, 4, 3), L.Dropout(0.5), L.SpatialDropout2D(0.5), L.GaussianNoise(1.0),
                              L.GaussianDropout(0.3), L.AlphaDropout(0.2), L.ActivityRegularization(0.1),
                              L.Dense(3)), True),
    "SpatialDropout1D": (lambda: chain((4, 3), L.SpatialDropout1D(0.5), L.Dense(3)), True),
    "SpatialDropout3D": (lambda: chain((2, 3, 3, 2), L.SpatialDropout3D(0.5), L.Dense(3)), True),
    # --- activation layers
    "ReLU": (lambda: chain((6, 5), L.ReLU()), True),
    "ReLU-max": (lambda: chain((6, 5), L.ReLU(max_value=0.5)), True),
    "ReLU-slope-threshold": (lambda: chain((6, 5), L.ReLU(negative_slope=0.1, threshold=0.3, max_value=1.0)), True),
    "LeakyReLU": (lambda: chain((6, 5), L.LeakyReLU(0.1)), True),
    "PReLU": (lambda: chain((4, 4, 3), L.PReLU()), True),
    "PReLU-shared": (lambda: chain((4, 4, 3), L.PReLU(shared_axes=[1, 2])), True),
    "PReLU-shared-channel": (lambda: chain((4, 4, 3), L.PReLU(shared_axes=[3])), True),
    "ELU": (lambda: chain((6, 5), L.ELU(0.7)), True),
    "Softmax": (lambda: chain((6, 5), L.Softmax()), True),
    "Softmax-axis1": (lambda: chain((6, 5), L.Softmax(axis=1)), True),
    "Softmax-axes": (lambda: chain((3, 4, 5), L.Softmax(axis=[1, 2])), True),
    # --- reshaping
    "Reshape-flat": (lambda: chain((4, 4, 3), L.Reshape((-1,))), False),
    "Reshape-HWxC": (lambda: chain((4, 4, 3), L.Conv2D(5, 1), L.Reshape((16, 5)), L.Dense(2)), True),
    "Reshape-11C": (lambda: chain((4, 4, 3), L.GlobalAveragePooling2D(), L.Reshape((1, 1, 3)),
                                  L.Conv2D(4, 1)), True),
    "Reshape-general": (lambda: chain((4, 6, 3), L.Reshape((6, 4, 3, 1))), False),
    "Reshape-rank5": (lambda: chain((2, 3, 4, 5), L.Reshape((6, -1, 2))), False),
    "Permute": (lambda: chain((3, 4, 5), L.Permute((2, 1, 3))), False),
    "Permute-rank3": (lambda: chain((3, 4), L.Permute((2, 1))), False),
    "RepeatVector": (lambda: chain((5,), L.RepeatVector(3)), True),
    "Cropping1D": (lambda: chain((8, 3), L.Cropping1D((1, 2))), True),
    "Cropping2D": (lambda: chain((8, 7, 3), L.Cropping2D(((1, 2), (0, 1)))), True),
    "Cropping3D": (lambda: chain((5, 6, 6, 2), L.Cropping3D(1)), True),
    "ZeroPadding1D": (lambda: chain((5, 3), L.ZeroPadding1D((1, 2))), True),
    "ZeroPadding2D": (lambda: chain((5, 4, 3), L.ZeroPadding2D(((1, 0), (2, 1)))), True),
    "ZeroPadding3D": (lambda: chain((3, 3, 3, 2), L.ZeroPadding3D(1)), True),
    "UpSampling1D": (lambda: chain((5, 3), L.UpSampling1D(3)), True),
    "UpSampling2D": (lambda: chain((4, 5, 3), L.UpSampling2D((2, 3))), True),
    "UpSampling2D-bilinear": (lambda: chain((4, 5, 3), L.UpSampling2D(2, interpolation="bilinear")), True),
    "UpSampling3D": (lambda: chain((2, 3, 3, 2), L.UpSampling3D(2)), True),
    "Resizing-bilinear-up": (lambda: chain((5, 6, 3), L.Resizing(8, 9)), True),
    "Resizing-bilinear-down": (lambda: chain((9, 8, 3), L.Resizing(4, 3)), True),
    "Resizing-nearest": (lambda: chain((5, 6, 3), L.Resizing(7, 4, interpolation="nearest")), True),
    "Resizing-crop": (lambda: chain((6, 9, 3), L.Resizing(4, 4, crop_to_aspect_ratio=True)), True),
    "Rescaling": (lambda: chain((4, 4, 3), L.Rescaling(1 / 127.5, offset=-1)), True),
    "Rescaling-channel": (lambda: chain((4, 4, 3), L.Rescaling([0.5, 2.0, 3.0])), True),
    "Normalization-config": (lambda: chain((4, 4, 3), L.Normalization(mean=[1.0, 2.0, 3.0],
                                                                       variance=[1.0, 4.0, 0.25])), True),
    "Normalization-invert": (lambda: chain((4, 4, 3), L.Normalization(mean=[1.0, 2.0, 3.0],
                                                                       variance=[1.0, 4.0, 0.25], invert=True)), True),
    "Normalization-adapted-axis": (lambda: _adapted_normalization(), True),
    "CenterCrop": (lambda: chain((7, 8, 3), L.CenterCrop(4, 5)), True),
    # --- merging
    "Add": (lambda: merge(L.Add(), (4, 4, 3), (4, 4, 3), (4, 4, 3)), True),
    "Subtract": (lambda: merge(L.Subtract(), (5, 3), (5, 3)), True),
    "Multiply": (lambda: merge(L.Multiply(), (4, 4, 3), (4, 4, 3)), True),
    "Average": (lambda: merge(L.Average(), (6,), (6,), (6,)), True),
    "Maximum": (lambda: merge(L.Maximum(), (4, 3), (4, 3)), True),
    "Minimum": (lambda: merge(L.Minimum(), (4, 3), (4, 3)), True),
    "Concatenate-channels": (lambda: merge(L.Concatenate(), (4, 4, 3), (4, 4, 2)), True),
    "Concatenate-axis1": (lambda: merge(L.Concatenate(axis=1), (4, 4, 3), (2, 4, 3)), True),
    "Concatenate-axis2-rank3": (lambda: merge(L.Concatenate(axis=-2), (4, 3), (2, 3)), True),
    "Dot-2d": (lambda: merge(L.Dot(axes=1), (5,), (5,)), True),
    "Dot-normalize": (lambda: merge(L.Dot(axes=1, normalize=True), (5,), (5,)), True),
    "Dot-3d": (lambda: merge(L.Dot(axes=(2, 2)), (3, 5), (4, 5)), False),
    "Dot-3d-axes12": (lambda: merge(L.Dot(axes=(1, 2)), (3, 4), (5, 3)), False),
    # --- applications' own layers
    "LayerScale": (lambda: _layer_scale(), True),
    "CustomScaleLayer": (lambda: _custom_scale(), True),
    # Keras 3 operator nodes (class names Add/Multiply/... from keras.src.ops.numpy)
    "operators-add-mul-sub": (lambda: _operators(), True),
}

ACTIVATIONS = ["celu", "elu", "exponential", "gelu", "glu", "hard_shrink", "hard_sigmoid", "hard_silu",
               "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish", "relu",
               "relu6", "selu", "sigmoid", "silu", "soft_shrink", "softmax", "softplus", "softsign",
               "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus", "swish", "tanh", "tanh_shrink"]
for _name in ACTIVATIONS:
    ROWS[f"activation-{_name}"] = (act(_name), True)


def _adapted_normalization():
    keras.utils.set_random_seed(0)
    norm = L.Normalization(axis=(1, -1))
    norm.adapt(np.random.default_rng(1).standard_normal((16, 4, 5, 3)).astype(np.float32) * 3 + 1)
    inp = keras.Input((4, 5, 3))
    return keras.Model(inp, norm(inp))


def _layer_scale():
    from keras.src.applications.convnext import LayerScale
    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 6))
    return randomize(keras.Model(inp, LayerScale(1e-6, 6)(L.Conv2D(6, 1)(inp))))


def _custom_scale():
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer
    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 3))
    return randomize(keras.Model(inp, CustomScaleLayer(0.17)([inp, L.Conv2D(3, 1)(inp)])))


def _operators():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 3))
    x = L.Conv2D(4, 1)(inp)
    y = (x + 3.0) * (1.0 / 6.0)
    return randomize(keras.Model(inp, keras.ops.maximum(y - x, x) * x))


@pytest.mark.parametrize("row", sorted(ROWS))
def test_layer_row(row):
    build, cnn = ROWS[row]
    check_model(build(), no_transpose=cnn)
