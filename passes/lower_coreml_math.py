"""lower_coreml_math: elementwise math whose Core ML layer means something else, or that has none.

Core ML lowering (after the standard pipeline). Semantics are NeuralNetwork.proto's
(see kcc.formats.coreml_layers):

* ``round`` -- the IR's round is half-to-even (ONNX Round, TensorFlow, numpy).
  NeuralNetwork's ``round`` layer "rounds the value to the nearest integer" and
  leaves ties to the compute unit (Apple, webmachinelearning/webnn#817), so
  it is never emitted. With ``f = floor(x)`` and ``d = x - f`` (exact, in [0, 1))::

      round(x) = f + [d > 1/2] + [d == 1/2] * (f mod 2)
      [d > 1/2]  = ceil(d - 1/2)          (0 for d <= 1/2, 1 above)
      [d == 1/2] = 1 - ceil(|d - 1/2|)
      f mod 2    = f - 2 * floor(f / 2)

  computed on ``xc = clip(x, -2**23, 2**23)`` (every float32 beyond is an
  integer) and returned as ``x + (r - xc)``, so +-inf stay +-inf and NaN
  stays NaN. Only floor/ceil (specification 4, the round layer's own
  version) and specification-1 layers: no forced ND layout.
* ``cast`` float -> integer -- Core ML blobs are float: truncation toward zero
  is ``sign(x) * floor(|x|)``, then a cast the emitter writes as a copy.
* ``is_inf`` -- no isinf layer: ``equal(|x|, inf)``.
* ``min`` with a scalar constant -- the rank-5 layout has ``unary THRESHOLD``
  (max with a scalar) and no min with a scalar: ``-max(-x, -s)``.

Before::

    %y: f32[N,4] = is_inf(%x)

After::

    %abs: f32[N,4] = abs(%x)
    %y: bool[N,4] = equal(%abs, %inf)

Not lowered: a cast to a float type or from an integer (a copy), a min of two
tensors or with a non-scalar constant (the min layer takes them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcc.formats.coreml_layers import layer_for
from kcc.passes._match import scalar
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass

_EXACT_INTEGER = float(2 ** 23)   # float32 values at or beyond this magnitude are integers


def _c(op, value: float):
    return op.const(np.asarray(value, dtype=np.float32))


def _round(op, x, root):
    xc = op.clip(x, min=-_EXACT_INTEGER, max=_EXACT_INTEGER)
    f = op.floor(xc)
    d = op.sub(xc, f)
    centered = op.sub(d, _c(op, 0.5))
    above_half = op.ceil(centered)
    tie = op.sub(_c(op, 1.0), op.ceil(op.abs(centered)))
    odd = op.sub(f, op.mul(op.floor(op.mul(f, _c(op, 0.5))), _c(op, 2.0)))
    r = op.add(op.add(f, above_half), op.mul(tie, odd))
    return op.add(x, op.sub(r, xc))


def _check_round(graph, x, root):
    """Fires for floats: the round layer's ties are the compute unit's, the IR's are half-to-even."""
    if not x.dtype.startswith("f"):
        return f"round of {x.dtype} is a copy"
    layer = layer_for("round")
    return f"Core ML has the {layer} layer for round" if layer else None


def _check_is_inf(graph, x, root):
    """Fires: NeuralNetwork has no isinf layer."""
    layer = layer_for("is_inf")
    return f"Core ML has the {layer} layer for is_inf" if layer else None


# Producers whose float output is integral: a float -> int cast of it is a copy.
INTEGRAL_PRODUCERS = ("floor", "ceil", "sign")


def _cast(op, x, root):
    truncated = op.mul(op.sign(x), op.floor(op.abs(x)))
    return op.cast(truncated, to=root.attrs["to"])


def _check_cast(graph, x, root):
    if root.attrs["to"].startswith("f") or not x.dtype.startswith("f"):
        return "not a float -> integer cast (a copy in Core ML)"
    producer = graph.producer(x)
    if producer is not None and (producer.op in INTEGRAL_PRODUCERS or _is_truncation(graph, producer)):
        return "the input is already integral"
    return None


def _is_truncation(graph, node) -> bool:
    if node.op != "mul":
        return False
    ops = sorted(p.op for p in (graph.producer(v) for v in node.inputs) if p is not None)
    return ops == ["floor", "sign"]


def is_integral(graph, value) -> bool:
    """Whether ``value`` is produced integral (what the cast emitter may copy)."""
    producer = graph.producer(value)
    return producer is not None and (producer.op in INTEGRAL_PRODUCERS or _is_truncation(graph, producer))


def _is_inf(op, x, root):
    return op.equal(op.abs(x), _c(op, np.inf))


def _min_scalar(op, x, s, root):
    return op.neg(op.max(op.neg(x), _c(op, -scalar(s))))


def _check_min_scalar(graph, x, s, root):
    if scalar(s) is None:
        return "not a constant with one value (the min layer takes two tensors)"
    if x.is_const:
        return "both operands are constants"
    if root.outputs[0].type != x.type:
        return "the constant broadcasts the result"
    return None


RULES = [
    RewriteRule("round_half_to_even", lambda op, x: op.round(x, _capture="root"), _round, _check_round),
    RewriteRule("cast_float_to_int", lambda op, x: op.cast(x, _capture="root"), _cast, _check_cast),
    RewriteRule("is_inf", lambda op, x: op.is_inf(x, _capture="root"), _is_inf, _check_is_inf),
    RewriteRule("min_scalar", lambda op, x, s: op.min(x, s, _capture="root"), _min_scalar, _check_min_scalar),
]


@register_pass
@dataclass
class LowerCoremlMath(RewritePass):
    name = "lower_coreml_math"
    after = ("fuse_clip", "fold_idempotent")
    rules = RULES
