"""Shared helpers of the Lambda tests: build a model around a body, compile, run three ways."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

import keras
from kcc.api import compile_model
from kcc.interpreter import run
from kcc.testing import assert_close, assert_not_degenerate, run_keras, run_onnx

TOL = 1e-4


def lambda_model(shapes: Sequence[tuple[int, ...]], body: Callable[..., Any], dense: int | None = None,
                 **lambda_kwargs: Any) -> keras.Model:
    """Input(s) [-> Dense] -> Lambda(body); a list body output becomes several model outputs."""
    inputs = [keras.Input(s) for s in shapes]
    xs = [keras.layers.Dense(dense)(i) for i in inputs] if dense else list(inputs)
    out = keras.layers.Lambda(body, **lambda_kwargs)(xs if len(xs) > 1 else xs[0])
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], out)


def seeded_inputs(model: keras.Model, seed: int = 0, batch: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch,) + tuple(t.shape[1:])).astype(np.float32) for t in model.inputs]


def check_three_ways(model: keras.Model, tol: float = TOL, **options: Any) -> tuple[Any, float]:
    """Keras vs kcc's ONNX (onnxruntime) vs the IR interpreter; returns (CompileResult, worst error)."""
    xs = seeded_inputs(model)
    refs = run_keras(model, xs)
    result = compile_model(model, "onnx", **options)
    got_onnx = run_onnx(result.model, xs)
    feeds = {v.name: x for v, x in zip(result.graph.inputs, xs)}
    got_ir = run(result.graph, feeds)
    worst = 0.0
    for k, ref in enumerate(refs):
        assert_not_degenerate(ref, f"Keras output {k}")
        worst = max(worst, assert_close(ref, got_onnx[k], tol, f"onnxruntime output {k}"))
        worst = max(worst, assert_close(ref, got_ir[result.graph.output_names[k]], tol, f"interpreter output {k}"))
    return result, worst
