"""Shared checks for the layer tests: Keras vs ONNX (onnxruntime) vs the IR interpreter."""
from __future__ import annotations

import os
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import kcc  # noqa: E402
from kcc.interpreter import run as run_ir  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate, keras_inputs, run_keras, run_onnx  # noqa: E402


def randomize(model: Any, seed: int = 0) -> Any:
    """Seeded non-trivial weights (variances positive), so a wrong weight layout cannot pass."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "float" not in str(w.dtype):
            continue
        name = w.path if hasattr(w, "path") else w.name
        shape = tuple(w.shape)
        if "variance" in name:
            w.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
        else:
            w.assign((rng.standard_normal(shape) * 0.5).astype(np.float32))
    return model


def interior_transposes(onnx_model: Any) -> list[str]:
    """Transpose nodes not touching a graph input or output (the layout boundary)."""
    g = onnx_model.graph
    inputs = {i.name for i in g.input}
    outputs = {o.name for o in g.output}
    return [n.name for n in g.node if n.op_type == "Transpose"
            and not (set(n.input) & inputs or set(n.output) & outputs)]


def check_model(model: Any, inputs: Sequence[np.ndarray] | None = None, *, tol: float = 1e-4,
                no_transpose: bool = False, **options: Any) -> dict[str, float]:
    """Convert ``model`` from memory and compare ONNX and the IR interpreter with Keras."""
    xs = list(inputs) if inputs is not None else keras_inputs(model)
    ref = run_keras(model, xs)
    for r in ref:
        if r.dtype.kind == "f":
            assert_not_degenerate(r)
    result = kcc.compile_model(model, target="onnx", **options)
    got = run_onnx(result.model, xs)
    feeds = {v.name: x for v, x in zip(result.graph.inputs, xs)}
    ir_out = run_ir(result.graph, feeds)
    errors = {}
    for i, (r, g, name) in enumerate(zip(ref, got, result.graph.output_names)):
        errors[f"onnx{i}"] = assert_close(r, g, tol, what=f"onnx output {name}")
        errors[f"ir{i}"] = assert_close(r, ir_out[name], tol, what=f"interpreter output {name}")
    assert len(got) == len(ref)
    if no_transpose:
        assert interior_transposes(result.model) == [], interior_transposes(result.model)
    return errors
