"""Shared helpers for the Core ML backend tests: compile with kcc, run in kcc's Core ML
runtime, compare with Keras in Keras's layout.

Feeds follow the emitted spec: in the rank-5 layout (arrayInputShapeMapping 0) an input
is passed as its declared CHW form (batch 1); in the ND layout as the IR shape.
"""
from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

from typing import Any, Sequence  # noqa: E402

import numpy as np  # noqa: E402

import kcc  # noqa: E402
from kcc.coreml import predict  # noqa: E402
from kcc.frontends.keras.registry import to_ir_perm, to_keras_perm  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate, keras_inputs, run_keras  # noqa: E402


def network(spec: Any) -> Any:
    return getattr(spec, spec.WhichOneof("Type"))


def layer_types(spec: Any) -> list[str]:
    return [layer.WhichOneof("layer") for layer in network(spec).layers]


def to_feed(spec: Any, feature: Any, keras_x: np.ndarray) -> np.ndarray:
    """A Keras-layout batch-1 array as the runtime input for ``feature``."""
    x = np.asarray(keras_x, dtype=np.float32)
    ir = np.transpose(x, to_ir_perm(x.ndim))
    declared = [int(d) for d in feature.type.multiArrayType.shape]
    return ir.reshape(declared)


def from_output(out: np.ndarray, keras_ref: np.ndarray) -> np.ndarray:
    """A runtime output (batch 1) in Keras's layout, shaped like the Keras reference."""
    ir_shape = tuple(keras_ref.shape[p] for p in to_ir_perm(keras_ref.ndim))
    ir = np.asarray(out, dtype=np.float32).reshape(ir_shape)
    return np.transpose(ir, to_keras_perm(ir.ndim))


def run_coreml(mlmodel: Any, xs: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run every sample of the batch through the runtime; outputs stacked like ``refs``."""
    spec = mlmodel.get_spec()
    per_sample = []
    for i in range(len(xs[0])):
        feeds = {f.name: to_feed(spec, f, x[i:i + 1]) for f, x in zip(spec.description.input, xs)}
        outs = predict(spec, feeds)
        per_sample.append([from_output(outs[f.name], r[i:i + 1])
                           for f, r in zip(spec.description.output, refs)])
    return [np.concatenate([s[k] for s in per_sample]) for k in range(len(refs))]


def check_coreml(model: Any, inputs: Sequence[np.ndarray] | None = None, *, tol: float = 1e-4,
                 **options: Any) -> tuple[Any, list[float]]:
    """Compile ``model`` for Core ML, run it in the runtime, compare every output with Keras."""
    xs = list(inputs) if inputs is not None else keras_inputs(model, batch=2)
    refs = run_keras(model, xs)
    for r in refs:
        if r.dtype.kind == "f":
            assert_not_degenerate(r)
    mlmodel = kcc.compile(model, target="coreml", **options)
    got = run_coreml(mlmodel, xs, refs)
    errors = [assert_close(r, g, tol, what=f"Core ML output {i}") for i, (r, g) in enumerate(zip(refs, got))]
    return mlmodel, errors
