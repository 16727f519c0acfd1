"""Side conditions shared by the rewriting passes (not a pass itself).

The pattern language (kcc.pattern) matches structure; these helpers answer the
questions a ``check()`` asks about what was matched: is this value a scalar
constant, does the match keep its input's type (a broadcasting constant could
widen it), is a constant per-channel for a producer's output, and how a
producer's weights scale per output channel.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from kcc.ir import Node, TensorType, Value, is_static


def scalar(v: Value | None) -> float | None:
    """The value of a float constant whose elements are all equal; else None."""
    if v is None or not v.is_const or v.const.size == 0 or not v.dtype.startswith("f"):
        return None
    flat = np.asarray(v.const, dtype=np.float64).reshape(-1)
    return float(flat[0]) if np.all(flat == flat[0]) else None


def close(a: float | None, b: float, rtol: float = 1e-6) -> bool:
    """``a`` equals ``b`` up to float32 rounding of a written-out constant."""
    return a is not None and abs(a - b) <= rtol * max(1.0, abs(b))


def same_type(root: Node, x: Value) -> str | None:
    """Reason unless the matched root yields x's type (a float tensor; no broadcast widened it)."""
    if not x.dtype.startswith("f"):
        return f"{x.name} is {x.dtype}, not a float tensor"
    if x.is_const:
        return f"{x.name} is a constant"
    if root.outputs[0].type != x.type:
        return f"the result {root.outputs[0].type} is not the input's type {x.type} (a constant broadcasts it)"
    return None


def per_channel(c: Value, out: TensorType) -> np.ndarray | None:
    """``c`` as a (channels,) vector when ``out + c`` only varies along axis 1; else None.

    Scalars count (they broadcast to every channel). ``out`` is a conv/dense
    output: (N, C, *S) or (N, C).
    """
    if not c.is_const or not c.dtype.startswith("f") or c.rank > out.rank or out.rank < 2:
        return None
    channels = out.shape[1]
    if not isinstance(channels, int):
        return None
    shape = (1,) * (out.rank - c.rank) + tuple(c.shape)
    if any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(c.const.reshape(-1).astype(np.float64), (channels,))


def _scale_conv(w: np.ndarray, s: np.ndarray, node: Node) -> np.ndarray:
    # w: (O, C/g, *K); output channel o is row o.
    return w * s.reshape((-1,) + (1,) * (w.ndim - 1))


def _scale_dense(w: np.ndarray, s: np.ndarray, node: Node) -> np.ndarray:
    # w: (in, out); output feature o is column o.
    return w * s.reshape(1, -1)


def _scale_conv_transpose(w: np.ndarray, s: np.ndarray, node: Node) -> np.ndarray:
    # w: (C, O/g, *K); output channel o = group * (O/g) + j reads w[group's C rows, j].
    g = node.attrs["group"]
    c, og = w.shape[:2]
    wg = w.reshape((g, c // g, og) + w.shape[2:])
    return (wg * s.reshape((g, 1, og) + (1,) * (w.ndim - 2))).reshape(w.shape)


# Producer op -> how its constant weights scale per output channel. A producer
# listed here computes y[:, o] = (linear in x)[:, o] + b[o], so a per-channel
# affine after it folds into (w, b).
CHANNEL_PRODUCERS: dict[str, Callable[[np.ndarray, np.ndarray, Node], np.ndarray]] = {
    "conv": _scale_conv,
    "dense": _scale_dense,
    "conv_transpose": _scale_conv_transpose,
}


def foldable_producer(prod: Node, w: Value, b: Value | None) -> str | None:
    """Reason unless ``prod`` can absorb a per-channel affine of its output."""
    if prod.op not in CHANNEL_PRODUCERS:
        return f"{prod.op} has no per-channel weights"
    if prod.attrs.get("activation", "linear") != "linear":
        return "the producer has a fused activation (the affine would apply after it)"
    if not w.is_const or (b is not None and not b.is_const):
        return "the producer's weights are not constant"
    if not is_static(prod.outputs[0].shape[1:2]):
        return "the channel count is not static"
    return None


def folded_weights(prod: Node, w: Value, b: Value | None, scale: np.ndarray,
                   shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(w', b') with y' = y * scale + shift per output channel (float64 math, w's dtype out)."""
    w2 = CHANNEL_PRODUCERS[prod.op](w.const.astype(np.float64), scale, prod)
    b0 = b.const.astype(np.float64) if b is not None else np.zeros_like(scale)
    return w2.astype(w.const.dtype), (b0 * scale + shift).astype(w.const.dtype)


def on_x(build: Callable) -> Callable:
    """A pattern function of the one variable ``x`` from ``build(op, x)``.

    Rules generated in a loop need this: RewriteRule reads the pattern
    variables from the function's signature, so a loop variable must live in a
    closure, not in a default argument.
    """
    def pattern(op, x):
        return build(op, x)
    return pattern
