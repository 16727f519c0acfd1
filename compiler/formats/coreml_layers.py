"""The one table between IR elementwise ops and Core ML NeuralNetwork layers.

Read by the Core ML emitter (kcc.backends.coreml) and meant to be inverted, not
copied, by a Core ML frontend. Each row says that one IR op and one
NeuralNetwork layer mean the same thing, and how each IR attribute is spelled
in the layer's parameter message:

    ActivationRow("leaky_relu", "leakyReLU", {"alpha": CoremlParam("alpha")})

* ``ACTIVATIONS``: IR op -> a variant of ``ActivationParams`` (the
  ``activation`` layer, and the gate activations of the recurrent layers).
  Specification 1.
* ``UNARY``: IR op -> an ``Operation`` of the legacy ``unary`` layer
  (``y = f(scale * x + shift)``). Specification 1.
* ``MATH_LAYERS``: IR op -> a parameterless elementwise layer of the same
  meaning added in specification 4 (``sin``, ``floor``, ...).
* ``BROADCASTABLE``, ``COMPARISONS``, ``LOGICAL``: IR binary ops -> the
  specification-4 layers with numpy broadcasting.
* ``NORMALIZATION_LAYERS``: ``layer_norm`` -> ``layerNormalization`` (specification 4).
* ``SHAPE_LAYERS``: IR shape arithmetic (``shape``, ``range``, ``expand``,
  ``reshape_to``, ``slice_to``) -> the specification-4 ND layers that read runtime tensors.

Semantics are taken from the comments of NeuralNetwork.proto (apple/
coremltools, mlmodel/format). Where the layer's meaning differs from the IR
op's, the row's parameter mapping makes them agree, or the op has no row and a
Core ML lowering pass (passes/lower_coreml_*.py) rewrites it first:

* ``thresholdedReLU`` is ``x if x >= alpha else 0``; the IR's
  ``thresholded_relu`` (Keras, ONNX) is ``x > alpha``. For float32 ``x``,
  ``x > a`` is ``x >= nextafter(a, +inf)``: the row stores that alpha.
* ``round``: the proto says only "rounds the value to the nearest integer";
  ties are implementation-defined (Apple, webmachinelearning/webnn#817: X.5
  goes up or down depending on the compute unit). The IR's round is
  half-to-even (ONNX, TensorFlow, numpy), so it has no row here:
  passes/lower_coreml_math.py spells it with floor/ceil arithmetic.
* ``sigmoidHard`` is ``min(max(alpha * x + beta, 0), 1)``, ``ELU``,
  ``leakyReLU`` and ``PReLU`` take the ``x >= 0`` branch at 0: the IR ops give
  the same values at every boundary (both branches agree at 0).

Modules here import only the IR's op registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from kcc.ops.registry import get_op


def _same(v: Any) -> Any:
    return float(v)


def strictly_above(alpha: float) -> float:
    """The smallest float32 greater than float32(alpha): ``x > alpha`` as ``x >= strictly_above(alpha)``."""
    a = np.float32(alpha)
    return float(np.nextafter(a, np.float32(np.inf))) if np.isfinite(a) else float(a)


def strictly_below(alpha: float) -> float:
    """The inverse of :func:`strictly_above` (a frontend reading a ``thresholdedReLU``)."""
    a = np.float32(alpha)
    return float(np.nextafter(a, np.float32(-np.inf))) if np.isfinite(a) else float(a)


@dataclass(frozen=True)
class CoremlParam:
    """How one IR attribute is spelled in a Core ML parameter message."""

    name: str
    to_coreml: Callable[[Any], float] = _same
    to_ir: Callable[[float], Any] = _same


@dataclass(frozen=True)
class ActivationRow:
    """One IR op <-> one ``ActivationParams`` variant."""

    ir: str
    layer: str                                   # the ActivationParams oneof field
    params: Mapping[str, CoremlParam] = field(default_factory=dict)
    # Fields the IR op fixes (neg is linear with alpha=-1): always written.
    fixed: Mapping[str, float] = field(default_factory=dict)

    def fields(self, attrs: Mapping[str, Any]) -> dict[str, float]:
        """The parameter message's fields for an IR node with attributes ``attrs`` (omitted: the op's defaults)."""
        full = get_op(self.ir).normalize_attrs(dict(attrs), where=self.ir) if self.params else {}
        out = dict(self.fixed)
        for ir_name, p in self.params.items():
            out[p.name] = p.to_coreml(full[ir_name])
        return out


@dataclass(frozen=True)
class UnaryRow:
    """One IR op <-> one ``UnaryFunctionLayerParams.Operation``."""

    ir: str
    operation: str                               # SQRT RSQRT INVERSE POWER EXP LOG ABS THRESHOLD
    alpha: float = 0.0


_ROWS = (
    ActivationRow("relu", "ReLU"),
    ActivationRow("leaky_relu", "leakyReLU", {"alpha": CoremlParam("alpha")}),
    ActivationRow("thresholded_relu", "thresholdedReLU",
                  {"alpha": CoremlParam("alpha", strictly_above, strictly_below)}),
    ActivationRow("elu", "ELU", {"alpha": CoremlParam("alpha")}),
    ActivationRow("sigmoid", "sigmoid"),
    ActivationRow("tanh", "tanh"),
    ActivationRow("softsign", "softsign"),
    ActivationRow("softplus", "softplus"),
    ActivationRow("hard_sigmoid", "sigmoidHard", {"alpha": CoremlParam("alpha"), "beta": CoremlParam("beta")}),
    ActivationRow("scaled_tanh", "scaledTanh", {"alpha": CoremlParam("alpha"), "beta": CoremlParam("beta")}),
    ActivationRow("identity", "linear", fixed={"alpha": 1.0, "beta": 0.0}),
    ActivationRow("neg", "linear", fixed={"alpha": -1.0, "beta": 0.0}),
)
ACTIVATIONS: dict[str, ActivationRow] = {r.ir: r for r in _ROWS}

UNARY: dict[str, UnaryRow] = {r.ir: r for r in (
    UnaryRow("abs", "ABS"),
    UnaryRow("sqrt", "SQRT"),
    # Not RSQRT / INVERSE: those compute 1 / (x + epsilon) and an epsilon of 0 means
    # 1e-6 (NeuralNetwork.proto), so 1/0 would be finite. POWER is x ** alpha: inf at 0,
    # as the IR's reciprocal and rsqrt. (Every unary layer first computes scale * x + shift,
    # which turns -0 into +0: 1/-0 is +inf through Core ML, -inf in the IR.)
    UnaryRow("rsqrt", "POWER", alpha=-0.5),
    UnaryRow("reciprocal", "POWER", alpha=-1.0),
    UnaryRow("square", "POWER", alpha=2.0),
    UnaryRow("exp", "EXP"),
    UnaryRow("log", "LOG"),
)}

# IR op -> the specification-4 layer of the same meaning (no parameters).
MATH_LAYERS: dict[str, str] = {op: op for op in ("sin", "cos", "tan", "atan", "erf", "floor", "ceil", "sign",
                                                 "asin", "acos", "asinh", "acosh", "atanh")}
MATH_LAYERS_VERSION = 4

# IR binary op -> the specification-4 layer with numpy broadcasting (two inputs).
BROADCASTABLE: dict[str, str] = {
    "add": "addBroadcastable", "sub": "subtractBroadcastable", "mul": "multiplyBroadcastable",
    "div": "divideBroadcastable", "max": "maxBroadcastable", "min": "minBroadcastable", "pow": "powBroadcastable",
}
# IR comparison / logical op -> its specification-4 layer (1.0 / 0.0 outputs). A comparison
# with one input compares with the layer's ``alpha``.
COMPARISONS: dict[str, str] = {
    "greater": "greaterThan", "less": "lessThan", "equal": "equal", "greater_equal": "greaterEqual",
    "less_equal": "lessEqual",
}
LOGICAL: dict[str, str] = {"logical_and": "logicalAnd", "logical_or": "logicalOr", "logical_xor": "logicalXor"}

# IR shape-arithmetic op (kcc.ops.shape_ops) -> the specification-4 ND layer that reads the
# runtime tensor: ``shape`` is getShape, ``range`` rangeDynamic (inputs end, start, step: the
# IR's limit, start, delta), ``expand`` broadcastToDynamic, ``reshape_to`` reshapeDynamic.
# Core ML blobs are float32, so i64 shape tensors are float blobs of exact small integers.
# Where meanings differ the emitter (backends/coreml/emit_shape.py) and the NeuralNetwork
# frontend say how: broadcastTo is one-way (numpy broadcast_to), IR expand two-way; a
# reshapeDynamic entry 0 is a zero-size axis, an IR reshape_to entry 0 copies the input dim.
SHAPE_LAYERS: dict[str, str] = {"shape": "getShape", "range": "rangeDynamic", "expand": "broadcastToDynamic",
                                "reshape_to": "reshapeDynamic", "slice_to": "sliceDynamic"}
SHAPE_LAYERS_VERSION = 4

# IR normalization op -> the specification-4 layer of the same meaning: ``layerNormalization``
# normalizes the trailing ``normalizedShape`` dims (the IR's layer_norm over trailing axes; in
# the rank-5 layout the trailing dims of the CHW form) with gamma/beta of that shape. There is
# no RMS normalization layer: passes/lower_coreml_rms_norm.py writes rms_norm's formula.
NORMALIZATION_LAYERS: dict[str, str] = {"layer_norm": "layerNormalization"}
NORMALIZATION_LAYERS_VERSION = 4

# Activations the recurrent layers accept for their gates (rows above, by IR name).
RECURRENT_ACTIVATIONS: tuple[str, ...] = ("tanh", "sigmoid", "hard_sigmoid", "relu", "softsign", "softplus",
                                          "elu", "leaky_relu")


def layer_for(ir_op: str) -> str | None:
    """The NeuralNetwork layer a row maps ``ir_op`` to (``"activation/ELU"``, ``"unary/ABS"``, ``"sin"``), or None.

    The Core ML lowering passes read it: an op with a row is emitted as is.
    """
    if ir_op in ACTIVATIONS:
        return f"activation/{ACTIVATIONS[ir_op].layer}"
    if ir_op in UNARY:
        return f"unary/{UNARY[ir_op].operation}"
    return MATH_LAYERS.get(ir_op)


def activation_for_layer(layer: str) -> list[ActivationRow]:
    """The rows whose ActivationParams variant is ``layer`` (the table inverted, for a frontend)."""
    return [r for r in _ROWS if r.layer == layer]


__all__ = ["ACTIVATIONS", "UNARY", "MATH_LAYERS", "MATH_LAYERS_VERSION", "BROADCASTABLE", "COMPARISONS", "LOGICAL",
           "SHAPE_LAYERS", "SHAPE_LAYERS_VERSION", "NORMALIZATION_LAYERS", "NORMALIZATION_LAYERS_VERSION",
           "RECURRENT_ACTIVATIONS", "ActivationRow", "UnaryRow", "CoremlParam", "strictly_above", "strictly_below",
           "layer_for", "activation_for_layer"]
