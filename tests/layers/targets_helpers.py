"""Convert a Keras model from memory and from its ``.keras`` file to ONNX and Core ML, and compare.

ONNX runs in onnxruntime with its default options; Core ML in kcc's runtime
(``kcc.coreml.predict``), one sample at a time, fed in the declared (IR) layout.
Every output is compared with Keras's, relative to the output's magnitude.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

import kcc  # noqa: E402
from kcc.coreml import predict  # noqa: E402
from kcc.layout import to_ir_perm, to_keras_perm  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate, run_keras, run_onnx  # noqa: E402


def randomize(model: Any, seed: int = 0, scale: float = 0.5) -> Any:
    """Seeded normal weights (biases too), so a wrong weight layout or a dropped bias cannot pass."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "float" in str(w.dtype):
            w.assign((rng.standard_normal(tuple(w.shape)) * scale).astype(np.float32))
    return model


def sources(model: Any, tmp_path: Path) -> list[tuple[str, Any]]:
    """The model itself and its ``.keras`` file."""
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return [("memory", model), ("keras file", str(path))]


def run_coreml(mlmodel: Any, xs: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every sample of the batch through kcc's Core ML runtime; outputs in Keras layout, stacked."""
    spec = mlmodel.get_spec()
    per_sample = []
    for i in range(len(xs[0])):
        feeds = {}
        for feature, x in zip(spec.description.input, xs):
            one = np.asarray(x[i:i + 1], dtype=np.float32)
            declared = [int(d) for d in feature.type.multiArrayType.shape]
            ir = np.transpose(one, to_ir_perm(one.ndim))
            # A flexible (dynamic) input is fed at its own size, in the declared rank.
            feeds[feature.name] = ir.reshape(declared) if ir.size == np.prod(declared) else ir
        outs = predict(spec, feeds)
        sample = []
        for feature, r in zip(spec.description.output, refs):
            ref = r[i:i + 1]
            ir_shape = tuple(ref.shape[p] for p in to_ir_perm(ref.ndim))
            got = np.asarray(outs[feature.name], dtype=np.float32).reshape(ir_shape)
            sample.append(np.transpose(got, to_keras_perm(got.ndim)))
        per_sample.append(sample)
    return [np.concatenate([s[k] for s in per_sample]) for k in range(len(refs))]


def check_targets(model: Any, xs: Sequence[np.ndarray], tmp_path: Path, *, coreml: bool = True,
                  tol: float = 1e-4) -> list[np.ndarray]:
    """Keras vs ONNX (and Core ML) for the model from memory and from its file; returns Keras's outputs."""
    refs = run_keras(model, xs)
    for r in refs:
        assert_not_degenerate(r)
    for where, source in sources(model, tmp_path):
        onnx_model = kcc.compile(source, target="onnx")
        got = run_onnx(onnx_model, list(xs))
        assert len(got) == len(refs)
        for k, (r, g) in enumerate(zip(refs, got)):
            assert_close(r, g, tol, what=f"ONNX output {k} ({where})")
        if coreml:
            mlmodel = kcc.compile(source, target="coreml")
            for k, (r, g) in enumerate(zip(refs, run_coreml(mlmodel, xs, refs))):
                assert_close(r, g, tol, what=f"Core ML output {k} ({where})")
    return refs
