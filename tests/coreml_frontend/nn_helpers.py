"""Helpers for the NeuralNetwork frontend tests: run a Core ML model three ways and compare.

``check_nn`` compiles a NeuralNetwork model (spec, MLModel or .mlmodel path) to
ONNX with kcc, runs it in onnxruntime with its DEFAULT session options, and
runs the same model in kcc's NeuralNetwork runtime (``kcc.coreml.predict``,
one sample at a time); both must match the reference from the source framework
within ``tol`` of the reference's largest magnitude.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import numpy as np

import kcc
from kcc.coreml import predict
from kcc.testing import assert_close, assert_not_degenerate

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_onnx(model: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString())  # default session options
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, dict(feeds))))


def check_nn(source: Any, onnx_feeds: Mapping[str, np.ndarray], refs: Mapping[str, np.ndarray],
             coreml_feed: Callable[[int], Mapping[str, Any]] | None = None, tol: float = 1e-4,
             runtime_tol: float | None = None) -> dict[str, float]:
    """Core ML -> kcc -> ONNX -> onnxruntime vs ``refs``, and kcc.coreml.predict vs ``refs``; the errors."""
    onnx_model = kcc.compile(source, target="onnx")
    got = run_onnx(onnx_model, onnx_feeds)
    errors = {}
    for name, ref in refs.items():
        assert_not_degenerate(ref, f"{name} reference")
        errors[name] = assert_close(ref, got[name].reshape(ref.shape), tol, f"onnxruntime {name}")
    if coreml_feed is not None:
        n = next(iter(onnx_feeds.values())).shape[0]
        for name, ref in refs.items():
            rt = np.stack([np.asarray(predict(source, coreml_feed(i))[name], np.float32).reshape(ref.shape[1:])
                           for i in range(n)])
            errors[f"runtime {name}"] = assert_close(ref, rt, runtime_tol or tol, f"kcc.coreml.predict {name}")
    return errors


def calibrate_batchnorm(model: Any, x: np.ndarray) -> None:
    """Give every BatchNormalization the statistics of real activations (STYLE.md)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x, training=True)
