"""Converted weights are the layers' variables: fine-tuning a converted model lowers its loss."""
from __future__ import annotations

import keras
import numpy as np

import kcc
from keras_backend_helpers import images, resnet_small


def test_fit_lowers_the_loss():
    source = resnet_small(keras)
    model = kcc.compile(kcc.compile(source, target="onnx"), target="keras")
    assert len(model.trainable_weights) > 10
    x = images(32, seed=11)
    y = np.random.RandomState(0).randint(0, 10, 32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.8 * before, (before, after)


def test_inference_only_freezes_the_weights():
    source = resnet_small(keras)
    model = kcc.compile(kcc.compile(source, target="onnx"), target="keras", keras_trainable=False)
    assert model.trainable_weights == [] and len(model.weights) > 10
