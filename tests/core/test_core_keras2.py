"""Models written by Keras 2 (tf.keras): defaults that differ from Keras 3 keep their Keras 2 meaning."""
from __future__ import annotations

import numpy as np

import kcc
from kcc.testing import assert_close, assert_not_degenerate, run_onnx


def test_hard_sigmoid_has_the_keras2_slope_in_tf_keras_files(tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([
        tf_keras.layers.Dense(16, activation="hard_sigmoid", input_shape=(8,)),
        tf_keras.layers.Activation("hard_sigmoid"),
    ])
    path = tmp_path / "k2.h5"
    model.save(path)
    x = (3 * np.random.default_rng(0).standard_normal((6, 8))).astype(np.float32)
    ref = model(x).numpy()
    assert_not_degenerate(ref)
    got = run_onnx(kcc.compile(str(path), target="onnx"), [x])[0]
    assert_close(ref, got, 1e-5)
