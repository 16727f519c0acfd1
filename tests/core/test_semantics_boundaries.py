"""One meaning per op at its boundaries: the IR interpreter, the emitted ONNX in onnxruntime and the
emitted Core ML model in kcc's Core ML runtime give the same values on ties and edges.

Inputs are exact halves, values equal to an op's thresholds and one float32 step
either side, +-0, +-inf and NaN where the op defines a result for them. The
cases that diverged before (issue 8): ``round`` of halves (the IR rounds half to
even; NeuralNetwork's round layer leaves ties to the compute unit, so the Core
ML lowering spells it with floor/ceil) and ``thresholded_relu`` at ``x == alpha``
(the IR is ``x > alpha``; the thresholdedReLU layer is ``x >= alpha``, so the
emitter stores the next float32 above alpha). Values are compared exactly
(``-0 == +0``; NaN matches NaN).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from kcc.backends import with_pass_options
from kcc.backends.coreml import COREML_LOWERING, build_spec
from kcc.backends.coreml.options import parse_options
from kcc.backends.onnx import ONNX_LOWERING, emit_onnx
from kcc.builder import GraphBuilder
from kcc.coreml import predict
from kcc.formats.onnx_ops import DEFAULT_OPSET
from kcc.interpreter import run
from kcc.ir import Graph, TensorType
from kcc.pipeline import Pipeline
from kcc.testing import run_onnx

F32 = np.float32
INF, NAN = F32(np.inf), F32(np.nan)


def _around(v: float) -> list[float]:
    """v and the float32 neighbours either side (for 0: +-1e-30, keeping clear of subnormals, which
    onnxruntime's kernels may flush to zero)."""
    if v == 0.0:
        return [-1e-30, 0.0, 1e-30]
    v32 = F32(v)
    return [float(np.nextafter(v32, F32(-np.inf))), float(v32), float(np.nextafter(v32, F32(np.inf)))]


HALVES = [0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, -3.5, 0.49999997, -0.49999997, 8388607.5, -8388607.5,
          2.0 ** 23 + 1.0, 1e30, -1e30, 0.0, -0.0, 1.25, -1.75]

# case -> (build(op, x), input values)
CASES: dict[str, tuple[Callable[[GraphBuilder, Any], Any], list[float]]] = {
    "round": (lambda op, x: op.round(x), HALVES + [np.inf, -np.inf, np.nan]),
    "thresholded_relu": (lambda op, x: op.thresholded_relu(x, alpha=1.0),
                         _around(1.0) + [0.0, -0.0, -1.0, 2.0, np.inf, -np.inf]),
    "thresholded_relu-fraction": (lambda op, x: op.thresholded_relu(x, alpha=0.1),
                                  _around(0.1) + [0.0, -0.0, np.inf]),
    "relu6": (lambda op, x: op.clip(x, min=0.0, max=6.0),
              _around(6.0) + _around(0.0) + [-0.0, 3.0, -5.0, np.inf, -np.inf]),
    "clip": (lambda op, x: op.clip(x, min=-1.0, max=0.5),
             _around(-1.0) + _around(0.5) + [0.0, -0.0, np.inf, -np.inf]),
    "hard_sigmoid": (lambda op, x: op.hard_sigmoid(x), _around(3.0) + _around(-3.0) + [0.0, -0.0, np.inf, -np.inf]),
    "hard_sigmoid-keras2": (lambda op, x: op.hard_sigmoid(x, alpha=0.2, beta=0.5),
                            _around(2.5) + _around(-2.5) + [0.0, -0.0, np.inf, -np.inf]),
    "relu": (lambda op, x: op.relu(x), _around(0.0) + [-0.0, np.inf, -np.inf]),
    "leaky_relu": (lambda op, x: op.leaky_relu(x, alpha=0.3), _around(0.0) + [-0.0, np.inf, -np.inf]),
    # Not -1e-30: onnxruntime computes alpha * (exp(x) - 1) (ONNX's formula) and gets 0 where expm1 gives
    # -7e-31; an accuracy difference of 1e-30, not a different meaning.
    "elu": (lambda op, x: op.elu(x, alpha=0.7), [0.0, -0.0, 1e-30, np.inf, -np.inf]),
    "floor": (lambda op, x: op.floor(x), HALVES + [np.inf, -np.inf, np.nan]),
    "ceil": (lambda op, x: op.ceil(x), HALVES + [np.inf, -np.inf, np.nan]),
    "sign": (lambda op, x: op.sign(x), [0.0, -0.0, 1e-30, -1e-30, 2.0, -2.0, np.inf, -np.inf]),
    # Core ML's INVERSE/RSQRT add an epsilon that cannot be 0; the emitter uses POWER (x ** -1, x ** -0.5),
    # which is inf at 0 as the IR. Not -0: the unary layer computes scale * x + shift first (the proto's
    # formula), and -0 * 1 + 0 is +0, so 1/-0 is +inf there and -inf in the IR (a known difference).
    "reciprocal": (lambda op, x: op.reciprocal(x), [0.0, 2.0, -4.0, 0.5, 2.0 ** -100, np.inf, -np.inf, np.nan]),
    "rsqrt": (lambda op, x: op.rsqrt(x), [0.0, 4.0, 0.25, 16.0, -1.0, np.inf, np.nan]),
    "div-scalar-first": (lambda op, x: op.div(op.const(np.float32(2.0)), x),
                         [0.0, 2.0, -4.0, 0.5, np.inf, -np.inf, np.nan]),
    "cast-int": (lambda op, x: op.cast(op.cast(x, to="i32"), to="f32"),
                 [0.5, -0.5, 1.5, -1.5, 2.999999, -2.999999, 0.0, -0.0, 1e-30, 100.5]),
}


def _graph(name: str) -> tuple[Graph, dict[str, np.ndarray]]:
    build, values = CASES[name]
    x = np.asarray(values, F32).reshape(1, -1)
    g = Graph(name)
    v = g.add_input("x", TensorType(("N", x.shape[1])))
    g.set_outputs([build(GraphBuilder(g, name="t"), v)], ["y"])
    return g, {"x": x}


def _interpreter(g: Graph, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(run(g.copy(), feeds)["y"], F32)


def _onnx(g: Graph, feeds: dict[str, np.ndarray]) -> np.ndarray:
    g = g.copy()
    Pipeline.from_spec(with_pass_options(ONNX_LOWERING, {"opset": DEFAULT_OPSET})).run(g)
    return np.asarray(run_onnx(emit_onnx(g), feeds)[0], F32)


def _coreml_spec(g: Graph, force_nd: bool = False) -> Any:
    g = g.copy()
    Pipeline.from_spec(list(COREML_LOWERING)).run(g)
    return build_spec(g, parse_options({}), force_nd=force_nd)


def _coreml(g: Graph, feeds: dict[str, np.ndarray], force_nd: bool) -> np.ndarray:
    spec = _coreml_spec(g, force_nd)
    x = feeds["x"]
    nd = getattr(spec, spec.WhichOneof("Type")).arrayInputShapeMapping == 1
    out = predict(spec, {"x": x if nd else x.reshape(-1)})["y"]
    return np.asarray(out, F32).reshape(x.shape)


def _same(ref: np.ndarray, got: np.ndarray, where: str, values: np.ndarray) -> None:
    bad = ~((ref == got) | (np.isnan(ref) & np.isnan(got)))
    assert not bad.any(), (f"{where}: at inputs {values[bad].tolist()} expected {ref[bad].tolist()}, "
                           f"got {got[bad].tolist()}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_boundaries_agree_everywhere(name):
    g, feeds = _graph(name)
    with np.errstate(all="ignore"):
        ref = _interpreter(g, feeds)
        values = feeds["x"]
        _same(ref, _onnx(g, feeds), f"{name}: onnxruntime", values)
        _same(ref, _coreml(g, feeds, force_nd=False), f"{name}: Core ML (rank-5 first)", values)
        _same(ref, _coreml(g, feeds, force_nd=True), f"{name}: Core ML (ND)", values)


def test_round_is_half_to_even_in_the_ir():
    g, feeds = _graph("round")
    got = _interpreter(g, feeds)[0, :8]
    np.testing.assert_array_equal(got, [0, 2, 2, 4, -0.0, -2, -2, -4])


def test_thresholded_relu_is_strict_in_the_ir():
    g, feeds = _graph("thresholded_relu")
    np.testing.assert_array_equal(_interpreter(g, feeds)[0, :3], [0.0, 0.0, float(np.nextafter(F32(1), F32(2)))])


def test_the_coreml_round_layer_is_not_emitted():
    g, _ = _graph("round")
    spec = _coreml_spec(g)
    kinds = {layer.WhichOneof("layer") for layer in getattr(spec, spec.WhichOneof("Type")).layers}
    assert "round" not in kinds and {"floor", "ceil"} <= kinds
