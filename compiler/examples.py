"""Built-in example models: the two MNIST CNNs of the classic "Keras & Core ML" tutorial.

Built in code as Keras 3 Sequential models (input 28x28x1); used by the demo,
the tests and the benchmarks, so nothing is ever downloaded.
"""
from __future__ import annotations

from typing import Any

from kcc.extras import require


def mnist_small(seed: int = 0) -> Any:
    """Conv(32,5x5) Pool Drop Conv(64,3x3) Pool Drop Conv(128,1x1) Pool Drop Flatten Dense(128) Dense(10)."""
    keras = require("keras", "building the tutorial's example model")
    layers = keras.layers

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((28, 28, 1), name="image"),
        layers.Conv2D(32, (5, 5), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.5),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.2),
        layers.Conv2D(128, (1, 1), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ], name="mnist_small")


def mnist_large(seed: int = 0) -> Any:
    """Conv(32,3x3) Conv(64,3x3) Pool Drop Flatten Dense(128) Drop Dense(10)."""
    keras = require("keras", "building the tutorial's example model")
    layers = keras.layers

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((28, 28, 1), name="image"),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ], name="mnist_large")


TUTORIAL_MODELS = {"small": mnist_small, "large": mnist_large}
