"""Numeric checking helpers, for kcc's tests and for users checking a conversion.

Errors are measured relative to the reference output's largest magnitude (never
with a floor of 1), so a vanishing output cannot pass by being small.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def max_rel_error(ref: np.ndarray, got: np.ndarray) -> float:
    """max |ref - got| / max |ref| (inf on a shape mismatch; absolute error when ref is all zero)."""
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        return float("inf")
    if ref.size == 0:
        return 0.0
    scale = float(np.max(np.abs(ref)))
    err = float(np.max(np.abs(ref - got)))
    return err / scale if scale > 0 else err


def assert_close(ref: np.ndarray, got: np.ndarray, tol: float = 1e-4, what: str = "output") -> float:
    """Assert ``got`` matches ``ref`` within ``tol`` of ref's largest magnitude; return the error."""
    err = max_rel_error(ref, got)
    assert np.all(np.isfinite(got)), f"{what}: non-finite values"
    assert err <= tol, (f"{what}: relative error {err:.3g} > {tol:g} "
                        f"(max|ref|={float(np.max(np.abs(ref))):.3g}, shapes {np.shape(ref)} vs {np.shape(got)})")
    return err


def assert_not_degenerate(ref: np.ndarray, what: str = "reference") -> None:
    """A reference that is ~constant cannot distinguish a right conversion from a wrong one."""
    ref = np.asarray(ref, dtype=np.float64)
    spread = float(ref.max() - ref.min()) if ref.size else 0.0
    assert spread > 1e-3 * max(float(np.max(np.abs(ref))), 1e-30), f"{what} is (nearly) constant: test cannot fail"


def seeded(shape: Sequence[int], seed: int = 0, kind: str = "normal") -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.random(shape, dtype=np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def keras_inputs(model: Any, batch: int = 2, seed: int = 0, fill: int = 8) -> list[np.ndarray]:
    """Seeded inputs for every input of a Keras model (unknown non-batch dims become ``fill``)."""
    out = []
    for i, t in enumerate(model.inputs):
        shape = [batch] + [d if d is not None else fill for d in t.shape[1:]]
        dtype = str(t.dtype)
        if "int" in dtype:
            out.append(np.random.default_rng(seed + i).integers(0, 4, shape).astype(dtype))
        else:
            out.append(seeded(shape, seed + i))
    return out


def run_keras(model: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    ys = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
    ys = ys if isinstance(ys, (list, tuple)) else [ys]
    return [np.asarray(y) for y in ys]


def run_onnx(model: Any, feeds: Mapping[str, np.ndarray] | Sequence[np.ndarray], *,
             also_unoptimized: bool = False, tol: float = 1e-4) -> list[np.ndarray]:
    """Run an ONNX ModelProto (or bytes/path) in onnxruntime; feeds by name or in input order.

    The session uses onnxruntime's default options (every graph optimization on), because
    that is how users run a model: a fusion that changes the numbers must fail a test.
    ``also_unoptimized=True`` adds a second opinion: the same model with every optimization
    disabled must agree with the default run within ``tol`` of the output's largest
    magnitude; the default run's outputs are returned.
    """
    if not also_unoptimized:
        return _ort_run(model, feeds, optimized=True)
    outputs, plain = run_onnx_both(model, feeds)
    for i, (a, b) in enumerate(zip(plain, outputs)):
        if np.asarray(a).dtype.kind == "f":
            err = max_rel_error(a, b)
            assert err <= tol, (f"output {i}: onnxruntime's graph optimizations change the result by {err:.3g} "
                                f"of its largest magnitude (> {tol:g})")
        else:
            assert np.array_equal(a, b), f"output {i}: onnxruntime's graph optimizations change the result"
    return outputs


def run_onnx_both(model: Any, feeds: Mapping[str, np.ndarray] | Sequence[np.ndarray]
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(outputs with onnxruntime's default options, outputs with every graph optimization disabled).

    The first is what users get; the second is only a second opinion (it tells an
    emission mistake from an onnxruntime fusion that changes the numbers).
    """
    return _ort_run(model, feeds, optimized=True), _ort_run(model, feeds, optimized=False)


def _ort_run(model: Any, feeds: Mapping[str, np.ndarray] | Sequence[np.ndarray], *,
             optimized: bool) -> list[np.ndarray]:
    from kcc.extras import require

    ort = require("onnxruntime", "running an ONNX model (kcc.testing)")

    data = model.SerializeToString() if hasattr(model, "SerializeToString") else model
    opts = ort.SessionOptions()
    if not optimized:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    if not isinstance(feeds, Mapping):
        feeds = {i.name: x for i, x in zip(sess.get_inputs(), feeds)}
    return sess.run(None, dict(feeds))


def calibrate_batchnorm(model: Any, samples: np.ndarray | Sequence[np.ndarray], steps: int = 1) -> None:
    """Give BatchNormalization layers the statistics of real activations.

    Fresh BN layers (mean 0, variance 1) on random weights make deep nets'
    outputs vanish, and then any converter "matches". Running a varied batch in
    training mode with momentum 0 sets each layer's moving statistics to that
    batch's, layer by layer.
    """
    from kcc.extras import require

    keras = require("keras", "calibrating BatchNormalization statistics (kcc.testing)")

    bns = [l for l in _all_layers(model) if isinstance(l, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    try:
        for _ in range(steps):
            model(samples, training=True)
    finally:
        for bn, m in zip(bns, saved):
            bn.momentum = m


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        out.extend(_all_layers(layer))
    return out
