"""Source models for the Keras-backend tests, built in code (small, seeded, nothing downloaded).

Images are 20x12 (unequal H and W, so a swapped transpose cannot pass);
BatchNorm statistics are calibrated on varied inputs (STYLE.md), and models
end in logits.
"""
from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np

from kcc.testing import calibrate_batchnorm

H, W = 20, 12


def images(n: int = 4, seed: int = 0, shape: tuple[int, ...] = (H, W, 3)) -> np.ndarray:
    """Varied inputs: a gradient, noise and a few exact zeros."""
    rng = np.random.RandomState(seed)
    x = rng.normal(0.0, 1.0, (n,) + shape).astype(np.float32)
    x[0] = np.linspace(-2, 2, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    x[:, 0, 0] = 0.0
    return x


def resnet_small(keras: Any, seed: int = 0) -> Any:
    """Conv-BN-ReLU stem, two residual blocks (one with a strided 1x1 projection), global pool, Dense logits."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    x = inp = keras.Input((H, W, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    for filters, stride in ((8, 1), (16, 2)):
        y = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = L.BatchNormalization()(y)
        y = L.ReLU()(y)
        y = L.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = L.BatchNormalization()(y)
        if stride != 1 or x.shape[-1] != filters:
            x = L.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
            x = L.BatchNormalization()(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.MaxPooling2D(2, padding="same")(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10, name="logits")(x)
    model = keras.Model(inp, out, name="resnet_small")
    calibrate_batchnorm(model, images(16, seed=1))
    return model


def cnn_tf(keras: Any, seed: int = 0) -> Any:
    """A CNN for tf2onnx: strided conv, depthwise conv, pooling, concat, Flatten, Dense logits."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((H, W, 3), name="image")
    a = L.Conv2D(6, 3, strides=2, padding="same", activation="relu")(inp)
    b = L.DepthwiseConv2D(3, padding="same", activation="relu6")(a)
    x = L.Concatenate()([a, b])
    x = L.AveragePooling2D(2)(x)
    x = L.Flatten()(x)
    out = L.Dense(7)(x)
    return keras.Model(inp, out, name="cnn_tf")


def layer_classes(model: Any) -> list[str]:
    """Class names of the layers that hold weights or compute (not inputs, dropout or plain activations)."""
    skip = {"InputLayer", "Dropout", "Activation", "ReLU", "Softmax", "BatchNormalization", "Identity"}
    return sorted(type(l).__name__ for l in model.layers if type(l).__name__ not in skip)


def transposes(model: Any) -> int:
    """Permute layers and transpose ops in a Keras model."""
    return sum(type(l).__name__ in ("Permute", "Transpose") for l in model.layers)


def run_fresh(code: str) -> str:
    """Run Python in a fresh interpreter (nothing of this process loaded); return its stdout."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    if proc.returncode:
        raise AssertionError(f"fresh interpreter failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def recurrent(keras: Any, seed: int = 0, steps: int = 9, features: int = 5) -> Any:
    """Embedding-free sequence model: LSTM (sequences) -> GRU -> Dense logits, T != F != H."""
    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((steps, features), name="sequence")
    x = L.LSTM(6, return_sequences=True)(inp)
    x = L.GRU(4)(x)
    out = L.Dense(3)(x)
    return keras.Model(inp, out, name="recurrent")


def sequences(n: int = 3, seed: int = 0, steps: int = 9, features: int = 5) -> np.ndarray:
    x = np.random.RandomState(seed).normal(0.0, 1.0, (n, steps, features)).astype(np.float32)
    x[:, 0] = 0.0
    return x
