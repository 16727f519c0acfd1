"""fuse_clip: max/min by scalar constants -> ``relu`` / ``clip``; clip chains merge; ``hard_sigmoid``.

Rules (c, lo, hi, a, b scalar constants; either operand order of max/min):

* ``max(x, 0)`` -> ``relu(x)``; ``max(x, c)`` -> ``clip(x, min=c)``; ``min(x, c)`` -> ``clip(x, max=c)``
* ``clip(clip(x, lo1, hi1), lo2, hi2)`` -> ``clip(x, max(lo1, lo2), min(hi1, hi2))``;
  ``relu`` counts as ``clip(0, inf)``, and ``clip(x, 0, inf)`` is spelled ``relu``
* so ``min(max(x, 0), 6)`` (and ``max(min(x, 6), 0)``, tf.clip_by_value's order)
  -> ``clip(x, 0, 6)``, the IR's relu6
* ``clip(x * a + b, 0, 1)`` (or ``x / d + b``) -> ``hard_sigmoid(x, alpha=a, beta=b)``;
  ``clip(x + b, 0, c) / c`` (or ``* (1/c)``) -> ``hard_sigmoid(x, alpha=1/c, beta=b/c)``
  (Keras's ``relu6(x + 3) / 6``)

Before::

    %max: f32[N,10] = max(%x, %zero)
    %min: f32[N,10] = min(%max, %six)

After::

    %clip: f32[N,10] = clip(%x) {min=0, max=6}

Targets: ONNX Relu / Clip / HardSigmoid; Core ML activation ReLU, clip (or
clampedReLU / linear+threshold), sigmoidHard(alpha, beta).

Not fused: a constant that is not one scalar (per-channel bounds), a result
wider than x (the constant broadcasts it), integer tensors, an empty merged
interval, ``c <= 0`` in the divided form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from kcc.passes._match import on_x, same_type, scalar
from kcc.pattern import RewriteRule
from kcc.passes.base import RewritePass, register_pass

INF = float("inf")


def _bounds(node) -> tuple[float, float]:
    """(lo, hi) of a clip or relu node."""
    return (0.0, INF) if node.op == "relu" else (node.attrs["min"], node.attrs["max"])


def _clip_or_relu(op, x, lo: float, hi: float):
    if lo == 0.0 and hi == INF:
        return op.relu(x)
    return op.clip(x, min=lo, max=hi)


# ------------------------------------------------------------ max / min by a scalar
def _check_scalar(graph, x, c, root):
    if scalar(c) is None:
        return f"{c.name} is not a scalar constant"
    if math.isnan(scalar(c)):
        return "NaN bound"
    return same_type(root, x)


def _rewrite_max(op, x, c, root):
    return _clip_or_relu(op, x, scalar(c), INF)


def _rewrite_min(op, x, c, root):
    return op.clip(x, max=scalar(c))


# ----------------------------------------------------------------- clip chains
def _check_chain(graph, x, inner, outer):
    (lo1, hi1), (lo2, hi2) = _bounds(inner), _bounds(outer)
    if max(lo1, lo2) > min(hi1, hi2):
        return "the merged interval is empty (the result is a constant)"
    if not x.dtype.startswith("f"):
        return "not a float tensor"
    return None


def _rewrite_chain(op, x, inner, outer):
    (lo1, hi1), (lo2, hi2) = _bounds(inner), _bounds(outer)
    return _clip_or_relu(op, x, max(lo1, lo2), min(hi1, hi2))


def _chain_rule(inner: str, outer: str) -> RewriteRule:
    def pattern(op, x):
        return getattr(op, outer)(getattr(op, inner)(x, _capture="inner"), _capture="outer")
    return RewriteRule(f"{inner}_{outer}", pattern, _rewrite_chain, _check_chain)


def _check_relu_spelling(graph, x, root):
    return None if _bounds(root) == (0.0, INF) else "not clip(0, inf)"


# ------------------------------------------------------------------ hard sigmoid
def _check_affine(graph, x, a, b, root):
    if _bounds(root) != (0.0, 1.0):
        return "the clip is not clip(0, 1)"
    if scalar(a) is None or scalar(b) is None:
        return "scale or offset is not a scalar constant"
    if scalar(a) == 0:
        return "zero slope"
    return same_type(root, x)


def _hs_mul(op, x, a, b, root):
    return op.hard_sigmoid(x, alpha=scalar(a), beta=scalar(b))


def _hs_div(op, x, a, b, root):
    return op.hard_sigmoid(x, alpha=1.0 / scalar(a), beta=scalar(b))


def _scaled_relu_check(divided: bool):
    """clip(x + b, 0, hi) / hi (``divided``) or * (1/hi): hi is the divisor or the multiplier's inverse."""
    def check(graph, x, b, c, root, clip):
        cv = scalar(c)
        if cv is None or scalar(b) is None or cv == 0:
            return "offset or scale is not a non-zero scalar constant"
        hi = cv if divided else 1.0 / cv
        if hi <= 0 or _bounds(clip)[0] != 0.0 or abs(_bounds(clip)[1] - hi) > 1e-6 * hi:
            return f"the clip {_bounds(clip)} is not clip(0, {hi:g})"
        return same_type(root, x)
    return check


def _hs_scaled(op, x, b, c, root, clip):
    hi = _bounds(clip)[1]
    return op.hard_sigmoid(x, alpha=1.0 / hi, beta=scalar(b) / hi)


def _rules() -> list[RewriteRule]:
    rules = [
        RewriteRule("max_scalar", lambda op, x, c: op.max(x, c, _capture="root"), _rewrite_max, _check_scalar),
        RewriteRule("min_scalar", lambda op, x, c: op.min(x, c, _capture="root"), _rewrite_min, _check_scalar),
        RewriteRule("clip_as_relu", on_x(lambda op, x: op.clip(x, _capture="root")),
                    lambda op, x, root: op.relu(x), _check_relu_spelling),
    ]
    rules += [_chain_rule(i, o) for i in ("clip", "relu") for o in ("clip", "relu")]
    rules += [
        RewriteRule("clip_mul_add", lambda op, x, a, b: op.clip(op.add(op.mul(x, a), b), _capture="root"),
                    _hs_mul, _check_affine),
        RewriteRule("clip_div_add", lambda op, x, a, b: op.clip(op.add(op.div(x, a), b), _capture="root"),
                    _hs_div, _check_affine),
        RewriteRule("clip_add_div", lambda op, x, b, c: op.div(op.clip(op.add(x, b), _capture="clip"), c,
                                                                _capture="root"),
                    _hs_scaled, _scaled_relu_check(divided=True)),
        RewriteRule("clip_add_mul", lambda op, x, b, c: op.mul(op.clip(op.add(x, b), _capture="clip"), c,
                                                                _capture="root"),
                    _hs_scaled, _scaled_relu_check(divided=False)),
    ]
    return rules


RULES = _rules()


@register_pass
@dataclass
class FuseClip(RewritePass):
    name = "fuse_clip"
    after = ("fold_identity",)
    rules = RULES
