"""Shared helpers for the Core ML runtime tests: build seeded Keras models, convert
them with coremltools 9 (an emitter kcc did not write) and compare the runtime's
outputs with Keras on seeded inputs."""
from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402


def rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref|: error relative to the output's largest magnitude."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"shape {got.shape} != reference {ref.shape}"
    scale = np.max(np.abs(ref))
    assert scale > 1e-3, f"reference output vanishes (max |ref| = {scale}); the check would be vacuous"
    return float(np.max(np.abs(got - ref)) / scale)


def randomize_weights(model, seed: int, scale: float = 0.5) -> None:
    """Give every weight (biases included: the converter drops all-zero biases) seeded
    random values; BatchNorm variances stay positive."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        name = w.path if hasattr(w, "path") else w.name
        if "variance" in name:
            w.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            w.assign((rng.standard_normal(shape) * scale / np.sqrt(fan_in)).astype(np.float32))


def calibrate_batchnorm(model, x: np.ndarray) -> None:
    """Set BatchNorm moving statistics to those of real activations (momentum 0, one
    training-mode pass) so deep random nets keep outputs far from zero."""
    import keras

    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    for bn in bns:
        bn.momentum = 0.0
    model(x, training=True)


def convert(model, target: str = "iOS13"):
    """coremltools 9 NeuralNetwork spec of a Keras model (or a list of concrete functions)."""
    import coremltools as ct

    mlmodel = ct.convert(model, source="tensorflow", convert_to="neuralnetwork",
                         minimum_deployment_target=getattr(ct.target, target))
    return mlmodel.get_spec()


def layer_types(spec) -> set[str]:
    network = getattr(spec, spec.WhichOneof("Type"))
    return {layer.WhichOneof("layer") for layer in network.layers}


def run_single(spec, x: np.ndarray) -> np.ndarray:
    """Run a one-input, one-output spec in the kcc runtime."""
    from kcc.coreml import predict

    name = spec.description.input[0].name
    out = predict(spec, {name: x})
    assert len(out) == 1, out.keys()
    return next(iter(out.values()))
