"""Shared checks for the recurrent tests: randomize every weight, convert, compare three ways.

Keras initializes biases to zero (and LSTM forget biases to one), which would hide
any bias-layout mistake, so every variable gets seeded random values first.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import kcc
from kcc import testing
from kcc.interpreter import run

TOL = 1e-4


def randomize(model: Any, seed: int = 0, scale: float = 0.5) -> None:
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = scale * rng.standard_normal(tuple(w.shape))
        if "variance" in w.path:
            value = np.abs(value) + 0.5
        w.assign(value.astype("float32"))


def check(model: Any, source: Any = None, *, inputs: Sequence[np.ndarray] | None = None, fill: int = 7,
          randomize_weights: bool = True, **options: Any) -> kcc.CompileResult:
    """Keras vs onnxruntime vs the IR interpreter on seeded inputs; returns the compile result."""
    if randomize_weights:
        randomize(model)
    xs = list(inputs) if inputs is not None else testing.keras_inputs(model, fill=fill)
    ref = testing.run_keras(model, xs)
    result = kcc.compile_model(model if source is None else source, target="onnx", **options)
    got_onnx = testing.run_onnx(result.model, xs)
    graph = result.graph
    env = run(graph, {v.name: x for v, x in zip(graph.inputs, xs)})
    got_ir = [env[n] for n in graph.output_names]
    assert len(got_onnx) == len(ref) == len(got_ir)
    for i, (r, o, g) in enumerate(zip(ref, got_onnx, got_ir)):
        testing.assert_not_degenerate(r, f"keras output {i}")
        testing.assert_close(r, o, TOL, f"onnxruntime output {i}")
        testing.assert_close(r, g, TOL, f"interpreter output {i}")
    return result


def onnx_ops(result: kcc.CompileResult) -> list[str]:
    return [n.op_type for n in result.model.graph.node]
