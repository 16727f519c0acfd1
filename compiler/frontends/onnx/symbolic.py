"""Folding shape subgraphs whose values hold symbolic dims (the batch size ``N``).

``Shape(x)`` of a value with a symbolic dim is not a constant, but everything a
converter derives from it (Gather an entry, Concat with constants, Unsqueeze,
Slice, Max/Mul with 1, ...) is known up to those symbols. Such values are held
as numpy ``object`` arrays of ints and symbol strings; this table evaluates the
ops that appear in shape computations on them. A consumer such as ``Reshape``
then turns a symbol back into ``0`` (copy that input dim) or ``-1`` (infer).
Values computed from several unknown symbols become ``"?"``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kcc.ops.shapes import UNKNOWN

SymbolicFn = Callable[[dict[str, Any], list[np.ndarray | None]], np.ndarray]
SYMBOLIC: dict[str, SymbolicFn] = {}


def symbolic(*op_types: str) -> Callable[[SymbolicFn], SymbolicFn]:
    def deco(fn: SymbolicFn) -> SymbolicFn:
        for name in op_types:
            SYMBOLIC[name] = fn
        return fn
    return deco


def _obj(x: np.ndarray) -> np.ndarray:
    return x.astype(object) if x.dtype != object else x


def _dim_op(kind: str, a: Any, b: Any) -> Any:
    if not isinstance(a, str) and not isinstance(b, str):
        return {"add": a + b, "sub": a - b, "mul": a * b, "div": a // b, "max": max(a, b), "min": min(a, b)}[kind]
    if kind in ("max", "min") and a == b:
        return a
    if kind == "max" and (a == 1 or b == 1):  # dims are >= 1: max(d, 1) == d
        return b if a == 1 else a
    if kind == "mul" and (a == 1 or b == 1):
        return b if a == 1 else a
    if kind in ("add", "sub") and b == 0:
        return a
    if kind == "add" and a == 0:
        return b
    if kind == "div" and b == 1:
        return a
    return UNKNOWN


def _binary(kind: str) -> SymbolicFn:
    def fn(attrs: dict[str, Any], xs: list[np.ndarray | None]) -> np.ndarray:
        a, b = np.broadcast_arrays(_obj(xs[0]), _obj(xs[1]))
        return np.array([_dim_op(kind, p, q) for p, q in zip(a.ravel(), b.ravel())], dtype=object).reshape(a.shape)
    return fn


for _op, _kind in (("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div"), ("Max", "max"), ("Min", "min")):
    symbolic(_op)(_binary(_kind))


@symbolic("Identity", "Cast")
def _identity(attrs, xs):
    return xs[0]


@symbolic("Gather")
def _gather(attrs, xs):
    return np.take(_obj(xs[0]), xs[1].astype(np.int64), axis=attrs.get("axis", 0))


@symbolic("Concat")
def _concat(attrs, xs):
    return np.concatenate([_obj(x) for x in xs if x is not None], axis=attrs.get("axis", 0))


@symbolic("Unsqueeze")
def _unsqueeze(attrs, xs):
    axes = attrs.get("axes") if len(xs) < 2 or xs[1] is None else xs[1].astype(np.int64).tolist()
    out = xs[0]
    for a in sorted(int(a) % (out.ndim + len(axes)) for a in axes):
        out = np.expand_dims(out, a)
    return out


@symbolic("Squeeze")
def _squeeze(attrs, xs):
    axes = attrs.get("axes") if len(xs) < 2 or xs[1] is None else xs[1].astype(np.int64).tolist()
    return np.squeeze(xs[0], axis=None if axes is None else tuple(int(a) for a in axes))


@symbolic("Slice")
def _slice(attrs, xs):
    x = xs[0]
    starts, ends = xs[1].astype(np.int64).tolist(), xs[2].astype(np.int64).tolist()
    axes = xs[3].astype(np.int64).tolist() if len(xs) > 3 and xs[3] is not None else list(range(len(starts)))
    steps = xs[4].astype(np.int64).tolist() if len(xs) > 4 and xs[4] is not None else [1] * len(starts)
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        sl[a] = slice(s, e, st)
    return x[tuple(sl)]


@symbolic("ReduceProd")
def _reduce_prod(attrs, xs):
    out: Any = 1
    for d in xs[0].ravel():
        out = _dim_op("mul", out, d)
    return np.array(out if attrs.get("keepdims", 1) == 0 else [out], dtype=object)


def evaluate(op_type: str, attrs: dict[str, Any], xs: list[np.ndarray | None]) -> np.ndarray | None:
    """The symbolic result, or None when ``op_type`` has no symbolic rule."""
    fn = SYMBOLIC.get(op_type)
    if fn is None:
        return None
    out = fn(attrs, xs)
    # np.take of one element of an object array gives the bare element: keep it an object array.
    out = out if isinstance(out, np.ndarray) and out.dtype.kind != "U" else np.array(out, dtype=object)
    if out.dtype == object and not any(isinstance(d, str) for d in out.ravel()):
        return out.astype(np.int64)
    return out
