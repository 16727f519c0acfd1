"""The Lambda library: Lambda bodies built from common TensorFlow and keras.ops operations.

Each entry is ``(name, input shapes (Keras layout, no batch dim), body, extra
Lambda kwargs)``. A body receives one tensor, or a list when there are several
inputs. Tests wrap each in ``Dense -> Lambda`` or ``Input -> Lambda`` models and
check Keras against kcc's ONNX model (onnxruntime) and the IR interpreter.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf
from keras import ops as K

CAPTURED = np.linspace(-1.0, 2.0, 10).astype(np.float32)
GATHER_INDICES = [4, 0, 9, 9, 2]

Entry = tuple[str, list[tuple[int, ...]], Callable[..., Any], dict[str, Any]]

V = [(10,)]          # one (N, 10) input
S = [(4, 6)]         # one (N, 4, 6) sequence
I = [(4, 5, 6)]      # one (N, 4, 5, 6) image

LIBRARY: list[Entry] = [
    # elementwise math
    ("arith", V, lambda x: (x + 1.5) * 2.0 - x / 3.0, {}),
    ("pow_square", V, lambda x: tf.pow(tf.abs(x) + 0.5, 1.7) + tf.square(x), {}),
    ("sqrt_rsqrt", V, lambda x: tf.sqrt(tf.abs(x)) + tf.math.rsqrt(tf.abs(x) + 1.0), {}),
    ("exp_log", V, lambda x: tf.exp(x * 0.5) + tf.math.log(tf.abs(x) + 1e-2), {}),
    ("abs_neg", V, lambda x: tf.abs(x) - tf.negative(x) * 0.5, {}),
    ("sin_cos_tanh", V, lambda x: tf.sin(x) * tf.cos(x) + tf.tanh(x), {}),
    ("atan", V, lambda x: tf.atan(x * 2.0), {}),
    ("sigmoid_erf", V, lambda x: tf.sigmoid(x) + tf.math.erf(x), {}),
    ("floor_ceil_round", V, lambda x: tf.floor(x * 3.0) + tf.math.ceil(x * 2.0) + tf.round(x * 5.0), {}),
    ("min_max", V, lambda x: tf.minimum(x, 0.3) + tf.maximum(x, -0.2) + tf.maximum(x, x * x), {}),
    ("clip", V, lambda x: tf.clip_by_value(x, -0.5, 0.7), {}),
    ("keras_ops_math", V, lambda x: K.square(x) + K.sqrt(K.abs(x)) - K.exp(-K.abs(x)) + K.clip(x, -1, 1), {}),
    # reductions
    ("mean_last_keepdims", S, lambda x: x - tf.reduce_mean(x, axis=-1, keepdims=True), {}),
    ("sum_axes", S, lambda x: tf.reduce_sum(x, axis=[1, 2]), {}),
    ("max_min", S, lambda x: tf.reduce_max(x, axis=1) - tf.reduce_min(x, axis=1), {}),
    ("prod", V, lambda x: tf.reduce_prod(x * 0.5 + 1.0, axis=-1, keepdims=True), {}),
    ("variance_std", S, lambda x: tf.math.reduce_variance(x, axis=1, keepdims=True)
     + tf.math.reduce_std(x, axis=-1, keepdims=True), {}),
    ("keras_ops_reduce", S, lambda x: K.mean(x, axis=1) + K.std(x, axis=1) + K.max(x, axis=1), {}),
    # shapes
    ("reshape", V, lambda x: tf.reshape(x, (-1, 5, 2)), {}),
    ("reshape_dynamic_batch", V, lambda x: tf.reshape(x, [tf.shape(x)[0], 2, 5]), {}),
    ("transpose", S, lambda x: tf.transpose(x, (0, 2, 1)), {}),
    ("expand_squeeze", V, lambda x: tf.squeeze(tf.expand_dims(x, 1) * 2.0, axis=1), {}),
    ("strided_slice", S, lambda x: x[:, 1:4, ::2] + 1.0, {}),
    ("slice_reverse_index", S, lambda x: x[:, ::-1, 2], {}),
    ("gather_const", V, lambda x: tf.gather(x, GATHER_INDICES, axis=1), {}),
    ("concat", V, lambda x: tf.concat([x, x * 2.0, -x], axis=-1), {}),
    ("stack", V, lambda x: tf.stack([x, tf.sin(x)], axis=1), {}),
    ("split", V, lambda x: tf.split(x, [3, 7], axis=1)[1] * 2.0, {}),
    ("tile", V, lambda x: tf.tile(x, [1, 3]), {}),
    ("pad", S, lambda x: tf.pad(x, [[0, 0], [1, 2], [0, 1]], constant_values=0.5), {}),
    # linear algebra
    ("matmul_const", V, lambda x: tf.matmul(x, tf.constant(np.arange(30, dtype=np.float32).reshape(10, 3) / 30.0)), {}),
    ("matmul_batched", S, lambda x: tf.matmul(x, x, transpose_b=True), {}),
    ("einsum_bij_bkj", S, lambda x: tf.einsum("bij,bkj->bik", x, x), {}),
    ("einsum_keras", V, lambda x: K.einsum("bi,ij->bj", x, np.eye(10, 4, dtype=np.float32)), {}),
    # activations and normalization
    ("nn_activations", V, lambda x: tf.nn.relu(x) + tf.nn.relu6(x * 4.0) + tf.nn.elu(x) + tf.nn.selu(x), {}),
    ("nn_activations_2", V, lambda x: tf.nn.softplus(x) + tf.nn.softsign(x) + tf.nn.leaky_relu(x, 0.1)
     + tf.nn.gelu(x) + tf.nn.silu(x), {}),
    ("l2_normalize", S, lambda x: tf.math.l2_normalize(x, axis=-1), {}),
    ("softmax", S, lambda x: tf.nn.softmax(x, axis=-1), {}),
    ("log_softmax", V, lambda x: tf.nn.log_softmax(x), {}),
    ("one_hot", V, lambda x: tf.one_hot(tf.cast(tf.clip_by_value(x * 2.0 + 2.0, 0.0, 4.0), tf.int32), depth=5), {}),
    ("argmax_one_hot", V, lambda x: tf.one_hot(tf.argmax(x, axis=-1), depth=10) * x, {}),
    ("casts", V, lambda x: tf.cast(tf.cast(x * 3.0, tf.int32), tf.float32) + x, {}),
    # captured constants, arguments=, images
    ("captured_constant", V, lambda x: x * CAPTURED + tf.constant(CAPTURED[::-1].copy()), {}),
    ("arguments", V, lambda x, scale, shift: x * scale + shift, {"arguments": {"scale": 2.5, "shift": -1.0}}),
    ("image_channel_mean", I, lambda x: x - tf.reduce_mean(x, axis=-1, keepdims=True), {}),
    ("image_spatial_sum", I, lambda x: tf.reduce_sum(x, axis=[1, 2]), {}),
    # comparisons, selection, running sums
    ("where_greater", V, lambda x: tf.where(x > 0.2, x, 0.1 * x), {}),
    ("keras_ops_where", V, lambda x: K.where(K.logical_and(K.greater(x, -0.5), K.less(x, 0.5)), x * 4.0, x), {}),
    ("reduce_any_all", V, lambda x: x + tf.cast(tf.reduce_any(x > 1.0, axis=-1, keepdims=True), tf.float32)
     - tf.cast(tf.reduce_all(x > -1.5, axis=-1, keepdims=True), tf.float32), {}),
    ("cumsum", V, lambda x: tf.cumsum(x, axis=1) + tf.cumsum(x, axis=1, exclusive=True, reverse=True), {}),
    ("logsumexp", S, lambda x: tf.math.reduce_logsumexp(x, axis=-1, keepdims=True) - x, {}),
    ("log1p_expm1", V, lambda x: tf.math.log1p(tf.abs(x)) + tf.math.expm1(x), {}),
    # tensors shaped like the input (symbolic batch)
    ("zeros_ones_like", V, lambda x: x * tf.ones_like(x) + tf.zeros_like(x) + 1.0, {}),
    ("broadcast_to_shape", V, lambda x: tf.broadcast_to(tf.reduce_mean(x, -1, keepdims=True), tf.shape(x)) - x, {}),
    ("reverse", S, lambda x: tf.reverse(x, axis=[1, 2]), {}),
    # image ops in a Lambda
    ("depth_to_space", [(3, 4, 8)], lambda x: tf.nn.depth_to_space(x, 2), {}),
    ("space_to_depth", [(4, 6, 2)], lambda x: tf.nn.space_to_depth(x, 2), {}),
    ("resize_bilinear", I, lambda x: tf.image.resize(x, (7, 9), method="bilinear"), {}),
    ("resize_nearest", I, lambda x: tf.image.resize(x, (8, 12), method="nearest"), {}),
    ("pool_and_conv", [(4, 6, 3)], lambda x: tf.nn.avg_pool2d(x, 2, 2, "VALID") + tf.nn.max_pool2d(x, 2, 2, "SAME")
     + tf.nn.conv2d(x, tf.constant(np.linspace(-1, 1, 81, dtype=np.float32).reshape(3, 3, 3, 3)), 2, "SAME"), {}),
    # several inputs and outputs
    ("two_inputs", [(10,), (10,)], lambda t: t[0] * t[1] + t[0], {}),
    ("two_outputs", V, lambda x: [x * 2.0, tf.reduce_sum(x, axis=-1, keepdims=True)], {}),
]
