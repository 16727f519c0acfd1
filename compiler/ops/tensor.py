"""Data-movement ops: identity, transpose, reshape, flatten, concat, pad, slice, ..."""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.errors import IRError
from kcc.tensor_type import TensorType
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shapes import UNKNOWN, dim_div, norm_axes, norm_axis, prod


@register_op
class Identity(OpDef):
    """y = x. Frontends use it for layers with no inference effect (Dropout, ...)."""

    name = "identity"

    def infer(self, attrs, x):
        return x

    def compute(self, attrs, x):
        return x


@register_op
class Transpose(OpDef):
    name = "transpose"
    attrs = {"perm": Attr("ints")}

    def infer(self, attrs, x):
        perm = attrs["perm"]
        if sorted(perm) != list(range(x.rank)):
            raise IRError(f"perm {perm} is not a permutation of {x.rank} axes")
        return TensorType(tuple(x.shape[p] for p in perm), x.dtype)

    def compute(self, attrs, x):
        return np.transpose(x, attrs["perm"])


def reshape_target(in_shape: tuple, spec: tuple[int, ...]) -> tuple:
    """Resolve a reshape spec: 0 copies the input dim at that position, -1 is inferred."""
    out: list[Any] = []
    for i, s in enumerate(spec):
        if s == 0:
            if i >= len(in_shape):
                raise IRError(f"reshape spec {spec}: 0 at {i} has no input dim")
            out.append(in_shape[i])
        elif s == -1 or s > 0:
            out.append(s)
        else:
            raise IRError(f"bad reshape spec {spec}")
    if out.count(-1) > 1:
        raise IRError(f"reshape spec {spec} has more than one -1")
    if -1 in out:
        known = prod([d for d in out if d != -1])
        total = prod(in_shape)
        k = out.index(-1)
        if isinstance(total, int) and isinstance(known, int):
            if known == 0 or total % known:
                raise IRError(f"cannot reshape {in_shape} to {spec}")
            out[k] = total // known
        else:
            # Symbolic dims (and products of them) cancel where they match.
            out[k] = dim_div(total, known)
    else:
        a, b = prod(in_shape), prod(out)
        if isinstance(a, int) and isinstance(b, int) and a != b:
            raise IRError(f"cannot reshape {in_shape} ({a} elements) to {tuple(out)} ({b} elements)")
    return tuple(out)


@register_op
class Reshape(OpDef):
    """Row-major reshape. ``shape`` may use 0 (copy that input dim) and one -1 (infer)."""

    name = "reshape"
    attrs = {"shape": Attr("ints")}

    def infer(self, attrs, x):
        return TensorType(reshape_target(x.shape, attrs["shape"]), x.dtype)

    def compute(self, attrs, x):
        spec = [x.shape[i] if s == 0 else s for i, s in enumerate(attrs["shape"])]
        return x.reshape(spec)


@register_op
class Flatten(OpDef):
    """(d0, ..., d(axis-1), rest...) -> (d0 * ... * d(axis-1), prod(rest)), row-major."""

    name = "flatten"
    attrs = {"axis": Attr("int", 1)}

    def infer(self, attrs, x):
        a = attrs["axis"]
        if not 0 <= a <= x.rank:
            raise IRError(f"flatten axis {a} out of range for rank {x.rank}")
        return TensorType((prod(x.shape[:a]), prod(x.shape[a:])), x.dtype)

    def compute(self, attrs, x):
        a = attrs["axis"]
        return x.reshape(int(np.prod(x.shape[:a])), -1)


@register_op
class Concat(OpDef):
    name = "concat"
    inputs = ("xs*",)
    attrs = {"axis": Attr("int", 1)}

    def infer(self, attrs, *xs):
        if not xs:
            raise IRError("concat of nothing")
        r = xs[0].rank
        ax = norm_axis(attrs["axis"], r)
        total: Any = 0
        out = list(xs[0].shape)
        for t in xs:
            if t.rank != r:
                raise IRError(f"concat of ranks {[t.rank for t in xs]}")
            for i, (d0, d) in enumerate(zip(out, t.shape)):
                if i != ax and isinstance(d0, int) and isinstance(d, int) and d0 != d:
                    raise IRError(f"concat on axis {ax}: shapes {[t.shape for t in xs]} differ on axis {i}")
            total = total + t.shape[ax] if isinstance(total, int) and isinstance(t.shape[ax], int) else UNKNOWN
        out[ax] = total
        return TensorType(tuple(out), xs[0].dtype)

    def compute(self, attrs, *xs):
        return np.concatenate(xs, axis=attrs["axis"])


@register_op
class Pad(OpDef):
    """Pad with ``pads`` = all begins then all ends (every axis); mode constant/reflect/edge."""

    name = "pad"
    attrs = {"pads": Attr("ints"), "mode": Attr("str", "constant", ("constant", "reflect", "edge")),
             "value": Attr("float", 0.0)}

    def infer(self, attrs, x):
        p = attrs["pads"]
        if len(p) != 2 * x.rank:
            raise IRError(f"pad needs {2 * x.rank} values, got {p}")
        return TensorType(tuple(d + p[i] + p[i + x.rank] if isinstance(d, int) else d
                                if p[i] + p[i + x.rank] == 0 else UNKNOWN for i, d in enumerate(x.shape)), x.dtype)

    def compute(self, attrs, x):
        p, r = attrs["pads"], x.ndim
        pw = [(p[i], p[i + r]) for i in range(r)]
        if attrs["mode"] == "constant":
            return np.pad(x, pw, constant_values=attrs["value"])
        return np.pad(x, pw, mode=attrs["mode"])


# An end at least this large means "to the end" (tf2onnx writes 1e9 or INT32/INT64 max).
_TO_THE_END = 10 ** 9


def _whole_axis(s: slice) -> bool:
    """Whether slice ``s`` keeps every element of an axis of any length (a symbolic dim stays itself).

    The whole axis reversed, ``[-1::-1]`` (a time reversal), counts too.
    """
    if s.step == -1:
        return s.start in (None, -1) and (s.stop is None or s.stop <= -_TO_THE_END)
    return s.step in (None, 1) and s.start in (None, 0) and (s.stop is None or s.stop >= _TO_THE_END)


def _one_element(s: slice) -> bool:
    """Whether slice ``s`` keeps exactly one element of any non-empty axis: ``[i:i+1]`` or ``[-1:]``.

    ``x[:, 0]`` on a dynamic-length sequence: a symbolic dim is a size of at
    least 1, so the result has size 1 whatever the length.
    """
    start = 0 if s.start is None else s.start
    if s.step not in (None, 1):
        return False
    return start == 0 and s.stop == 1 or start == -1 and (s.stop is None or s.stop >= _TO_THE_END or s.stop == 0)


@register_op
class Slice(OpDef):
    """x[starts:ends:steps] on ``axes``; ends are clamped like numpy (use a large value for 'to the end')."""

    name = "slice"
    attrs = {"starts": Attr("ints"), "ends": Attr("ints"), "axes": Attr("ints"), "steps": Attr("ints", ())}

    def _slices(self, attrs, rank):
        steps = attrs["steps"] or (1,) * len(attrs["axes"])
        sl = [slice(None)] * rank
        for s, e, a, st in zip(attrs["starts"], attrs["ends"], attrs["axes"], steps):
            sl[norm_axis(a, rank)] = slice(s, e, st)
        return tuple(sl)

    def infer(self, attrs, x):
        n = len(attrs["axes"])
        if len(attrs["starts"]) != n or len(attrs["ends"]) != n or (attrs["steps"] and len(attrs["steps"]) != n):
            raise IRError("slice starts/ends/axes/steps lengths differ")
        out = list(x.shape)
        for i, s in enumerate(self._slices(attrs, x.rank)):
            if s != slice(None):
                if isinstance(x.shape[i], int):
                    out[i] = len(range(*s.indices(x.shape[i])))
                elif _one_element(s):
                    out[i] = 1
                elif not _whole_axis(s):
                    out[i] = UNKNOWN
        return TensorType(tuple(out), x.dtype)

    def compute(self, attrs, x):
        return x[self._slices(attrs, x.ndim)]


@register_op
class Squeeze(OpDef):
    name = "squeeze"
    attrs = {"axes": Attr("ints")}

    def infer(self, attrs, x):
        axes = norm_axes(attrs["axes"], x.rank)
        for a in axes:
            if x.shape[a] != 1:
                raise IRError(f"squeeze of axis {a} of size {x.shape[a]}")
        return TensorType(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype)

    def compute(self, attrs, x):
        return np.squeeze(x, axis=norm_axes(attrs["axes"], x.ndim))


@register_op
class Unsqueeze(OpDef):
    """Insert size-1 axes; ``axes`` index the output."""

    name = "unsqueeze"
    attrs = {"axes": Attr("ints")}

    def infer(self, attrs, x):
        r = x.rank + len(attrs["axes"])
        axes = norm_axes(attrs["axes"], r)
        it = iter(x.shape)
        return TensorType(tuple(1 if i in axes else next(it) for i in range(r)), x.dtype)

    def compute(self, attrs, x):
        return np.expand_dims(x, norm_axes(attrs["axes"], x.ndim + len(attrs["axes"])))


@register_op
class Tile(OpDef):
    name = "tile"
    attrs = {"repeats": Attr("ints")}

    def infer(self, attrs, x):
        r = attrs["repeats"]
        if len(r) != x.rank:
            raise IRError(f"tile repeats {r} for rank {x.rank}")
        return TensorType(tuple(d * k if isinstance(d, int) else (d if k == 1 else UNKNOWN)
                                for d, k in zip(x.shape, r)), x.dtype)

    def compute(self, attrs, x):
        return np.tile(x, attrs["repeats"])


@register_op
class Gather(OpDef):
    """np.take(x, indices, axis): indices are an i32/i64 value (often a constant)."""

    name = "gather"
    inputs = ("x", "indices")
    attrs = {"axis": Attr("int", 0)}

    def infer(self, attrs, x, idx):
        if idx.dtype not in ("i32", "i64"):
            raise IRError(f"gather indices must be integers, got {idx.dtype}")
        a = norm_axis(attrs["axis"], x.rank)
        return TensorType(x.shape[:a] + idx.shape + x.shape[a + 1:], x.dtype)

    def compute(self, attrs, x, idx):
        return np.take(x, idx, axis=attrs["axis"])


@register_op
class Split(OpDef):
    """Split along ``axis`` into pieces of ``sizes``; one output per piece."""

    name = "split"
    attrs = {"axis": Attr("int"), "sizes": Attr("ints")}

    def infer(self, attrs, x):
        a = norm_axis(attrs["axis"], x.rank)
        if isinstance(x.shape[a], int) and sum(attrs["sizes"]) != x.shape[a]:
            raise IRError(f"split sizes {attrs['sizes']} do not add up to {x.shape[a]}")
        return [TensorType(x.shape[:a] + (s,) + x.shape[a + 1:], x.dtype) for s in attrs["sizes"]]

    def compute(self, attrs, x):
        return tuple(np.split(x, np.cumsum(attrs["sizes"])[:-1], axis=attrs["axis"]))
