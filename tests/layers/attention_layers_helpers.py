"""Checks shared by the EinsumDense, RMSNormalization and keras.ops tests: one model, three ways, two sources.

``check_targets`` converts a Keras model from memory and from its ``.keras``
file, runs the ONNX model in onnxruntime (default session options), the IR in
kcc's interpreter and the Core ML model in kcc's Core ML runtime, and compares
each with Keras on the same inputs, relative to the output's largest magnitude.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import kcc  # noqa: E402
from kcc.coreml import predict  # noqa: E402
from kcc.interpreter import run as run_ir  # noqa: E402
from kcc.layout import to_ir_perm, to_keras_perm  # noqa: E402
from kcc.testing import assert_close, assert_not_degenerate, run_keras, run_onnx  # noqa: E402

TOL = 1e-4


def seeded_weights(model: Any, seed: int = 0) -> Any:
    """Every float weight drawn from a seeded normal (no weight is 0 or 1, so a dropped one shows)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "float" in str(w.dtype):
            w.assign((rng.standard_normal(tuple(w.shape)) * 0.7 + 0.1).astype(np.float32))
    return model


def op_counts(onnx_model: Any) -> Counter:
    return Counter(n.op_type for n in onnx_model.graph.node)


def saved(model: Any, tmp_path: Path, name: str = "model") -> Path:
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path


def check_onnx(source: Any, xs: Sequence[np.ndarray], refs: Sequence[np.ndarray], *, tol: float = TOL,
               **options: Any) -> Any:
    """Convert ``source`` to ONNX; onnxruntime and the interpreter match ``refs``. Returns the CompileResult."""
    result = kcc.compile_model(source, target="onnx", **options)
    got = run_onnx(result.model, list(xs))
    feeds = {v.name: x for v, x in zip(result.graph.inputs, xs)}
    ir_out = run_ir(result.graph, feeds)
    assert len(got) == len(refs)
    for i, (ref, name) in enumerate(zip(refs, result.graph.output_names)):
        assert_close(ref, got[i], tol, what=f"onnxruntime output {name}")
        assert_close(ref, ir_out[name], tol, what=f"interpreter output {name}")
    return result


def run_coreml(mlmodel: Any, xs: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each sample through kcc's Core ML runtime (inputs in the declared channels-first form), in Keras layout."""
    spec = mlmodel.get_spec()
    samples = []
    for i in range(len(xs[0])):
        feeds = {}
        for f, x in zip(spec.description.input, xs):
            one = np.asarray(x[i:i + 1], dtype=np.float32)
            ir = np.transpose(one, to_ir_perm(one.ndim))
            feeds[f.name] = ir.reshape([int(d) for d in f.type.multiArrayType.shape])
        outs = predict(spec, feeds)
        row = []
        for f, r in zip(spec.description.output, refs):
            ir_shape = tuple(r[i:i + 1].shape[p] for p in to_ir_perm(r.ndim))
            row.append(np.transpose(np.asarray(outs[f.name], np.float32).reshape(ir_shape), to_keras_perm(r.ndim)))
        samples.append(row)
    return [np.concatenate([s[k] for s in samples]) for k in range(len(refs))]


def layer_types(mlmodel: Any) -> list[str]:
    spec = mlmodel.get_spec()
    nn = getattr(spec, spec.WhichOneof("Type"))
    return [layer.WhichOneof("layer") for layer in nn.layers]


def check_coreml(source: Any, xs: Sequence[np.ndarray], refs: Sequence[np.ndarray], *, tol: float = TOL,
                 **options: Any) -> Any:
    """Convert ``source`` to Core ML; kcc's runtime matches ``refs``. Returns the MLModel."""
    mlmodel = kcc.compile(source, target="coreml", **options)
    for i, (ref, got) in enumerate(zip(refs, run_coreml(mlmodel, xs, refs))):
        assert_close(ref, got, tol, what=f"Core ML output {i}")
    return mlmodel


def check_targets(model: Any, xs: Sequence[np.ndarray], tmp_path: Path, *, tol: float = TOL,
                  coreml: bool = True, **options: Any) -> tuple[Any, Any]:
    """Keras vs ONNX + interpreter (memory and file) vs Core ML (memory and file). Returns (onnx result, mlmodel)."""
    refs = run_keras(model, list(xs))
    for r in refs:
        if r.dtype.kind == "f":
            assert_not_degenerate(r)
    path = saved(model, tmp_path)
    result = check_onnx(model, xs, refs, tol=tol, **options)
    check_onnx(path, xs, refs, tol=tol, **options)
    mlmodel = None
    if coreml:
        mlmodel = check_coreml(model, xs, refs, tol=tol)
        check_coreml(path, xs, refs, tol=tol)
    return result, mlmodel
