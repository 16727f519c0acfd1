"""Folding shape subgraphs whose values hold symbolic dims (the batch size ``N``).

``Shape(x)`` of a value with a symbolic dim is not a constant, but everything a
converter derives from it (Gather an entry, Concat with constants, Unsqueeze,
Slice, Max/Mul with 1, ...) is known up to those symbols. Such values are held
as numpy ``object`` arrays of ints and symbol strings; this table evaluates the
ops that appear in shape computations on them. A consumer such as ``Reshape``
then turns a symbol back into ``0`` (copy that input dim) or ``-1`` (infer).
A result that would hold ``"?"`` (a product of two symbols, ...) is not
kept here: the importer builds the IR shape ops instead (``DimSources``
materializes the inputs), whose symbolic values (kcc.ops.shape_values) carry
on from there.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kcc.builder import GraphBuilder
from kcc.ir import DTYPES, Value
from kcc.ops.shapes import UNKNOWN, dim_factors, dim_op

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


def _binary(kind: str) -> SymbolicFn:
    def fn(attrs: dict[str, Any], xs: list[np.ndarray | None]) -> np.ndarray:
        a, b = np.broadcast_arrays(_obj(xs[0]), _obj(xs[1]))
        return np.array([dim_op(kind, p, q) for p, q in zip(a.ravel(), b.ravel())], dtype=object).reshape(a.shape)
    return fn


for _op, _kind in (("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div"), ("Max", "max"), ("Min", "min")):
    symbolic(_op)(_binary(_kind))


@symbolic("Identity")
def _identity(attrs, xs):
    return xs[0]


# ONNX element types of integers: a Cast between them keeps the dims.
_INT_ELEM_TYPES = (2, 3, 4, 5, 6, 7, 12, 13)


@symbolic("Cast")
def _cast(attrs, xs):
    # A cast to float computes with the dims (a scale from a length): that is real IR math.
    return xs[0] if attrs.get("to") in _INT_ELEM_TYPES else None


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
    if any(isinstance(d, str) for b in xs[1:3] for d in b.ravel()):
        return None  # bounds from symbolic dims: the handler builds slice_to (onnx_tensor.py)
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
        out = dim_op("mul", out, d)
    return np.array(out if attrs.get("keepdims", 1) == 0 else [out], dtype=object)


def evaluate(op_type: str, attrs: dict[str, Any], xs: list[np.ndarray | None]) -> np.ndarray | None:
    """The symbolic result, or None when ``op_type`` has no symbolic rule."""
    fn = SYMBOLIC.get(op_type)
    if fn is None:
        return None
    out = fn(attrs, xs)
    if out is None:
        return None
    # np.take of one element of an object array gives the bare element: keep it an object array.
    out = out if isinstance(out, np.ndarray) and out.dtype.kind != "U" else np.array(out, dtype=object)
    if out.dtype == object and not any(isinstance(d, str) for d in out.ravel()):
        return out.astype(np.int64)
    return out


def has_unknown(x: np.ndarray) -> bool:
    """Whether a symbolic array holds an entry nothing names (``"?"``)."""
    return x.dtype == object and any(d == UNKNOWN for d in x.ravel())


class DimSources:
    """Where each named dim symbol can be read at run time: symbol -> (value, axis).

    Filled with the dims of every value the importer takes a ``Shape`` of (and of
    the bound inputs). ``materialize`` turns a symbolic array back into IR:
    ``gather(shape(src), [axis])`` per symbol, constants between, one ``concat``.
    """

    def __init__(self) -> None:
        self.sources: dict[str, tuple[Value, int]] = {}
        self._dims: dict[tuple[str, str], Value] = {}
        self._shapes: dict[str, Value] = {}

    def record(self, v: Value) -> None:
        for axis, d in enumerate(v.shape):
            if isinstance(d, str) and d != UNKNOWN:
                self.sources.setdefault(d, (v, axis))

    def shape_of(self, op: GraphBuilder, v: Value) -> Value:
        """One ``shape(v)`` node per value and graph."""
        key = v.name
        s = self._shapes.get(key)
        if s is None or not op.graph.has_value(s.name) or op.graph.value(s.name) is not s:
            s = self._shapes[key] = op.shape(v)
        return s

    def materialize(self, x: np.ndarray, op: GraphBuilder, dtype: str = "i64") -> Value | None:
        """An IR value computing symbolic array ``x`` (None when an entry has no source)."""
        if x.ndim == 0 and isinstance(x.item(), str):
            return self.dim(op, x.item(), dtype, scalar=True)
        pieces: list[Value] = []
        ints: list[int] = []
        np_dtype = np.int32 if dtype == "i32" else np.int64

        def flush() -> None:
            if ints:
                pieces.append(op.const(np.asarray(ints, dtype=np_dtype)))
                ints.clear()

        for d in x.ravel():
            if not isinstance(d, str):
                ints.append(int(d))
                continue
            flush()
            piece = self.dim(op, d, dtype)
            if piece is None:
                return None
            pieces.append(piece)
        flush()
        flat = pieces[0] if len(pieces) == 1 else op.concat(*pieces, axis=0)
        if x.ndim == 1:
            return flat
        return op.reshape(flat, shape=tuple(int(n) for n in x.shape))

    def dim(self, op: GraphBuilder, sym: str, dtype: str = "i64", *, scalar: bool = False) -> Value | None:
        """Symbol ``sym`` read at run time: ``gather(shape(src), [axis])`` (0-D with ``scalar``); None if unknown."""
        key = (sym, dtype, scalar)
        v = self._dims.get(key)
        if v is not None and op.graph.has_value(v.name) and op.graph.value(v.name) is v:
            return v
        if sym in self.sources:
            src, axis = self.sources[sym]
            index = np.asarray(axis if scalar else [axis], dtype=np.int64)
            v = op.gather(self.shape_of(op, src), op.const(index), axis=0)
            if dtype != "i64":
                v = op.cast(v, to=dtype)
        else:
            # A product of dims ("8*N*seq"): multiply the factors read at run time.
            factors = dim_factors(sym)
            if factors is None or not factors[1] or (len(factors[1]) == 1 and factors[0] == 1):
                return None
            coef, syms = factors
            parts = [self.dim(op, s, dtype, scalar=scalar) for s in syms]
            if any(p is None for p in parts):
                return None
            v = parts[0]
            for p in parts[1:]:
                v = op.mul(v, p)
            if coef != 1:
                v = op.mul(v, op.const(np.asarray(coef if scalar else [coef], dtype=DTYPES[dtype])))
        self._dims[key] = v
        return v
