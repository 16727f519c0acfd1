"""Shape arithmetic ops: ``shape``, ``range``, ``expand``, ``reshape_to``, ``slice_to``.

These carry shape computations the IR cannot settle at conversion time because
a dim is symbolic (batch ``N``, a sequence length ``x_d1``, ...). Existing ops
(``gather``, ``slice``, ``concat``, ``mul``, comparisons, ``where``, ``cumsum``,
``reduce_prod``, ``cast``) work on the i64 shape tensors in between.

What the graph knows about a shape tensor's entries is its type's symbolic
value (``TensorType.value``, rules in ``kcc.ops.shape_values``), so these shape
functions give exact symbolic dims wherever the arithmetic allows:

    %s: i64[3] = shape(%x)                        # value (N, x_d1, 8)
    %t: i64[2] = gather(%s, %c01)                 # value (N, x_d1)
    %p: i64[4] = concat(%t, %c2m1) {axis=0}       # value (N, x_d1, 2, -1)
    %y: f32[N,x_d1,2,4] = reshape_to(%x, %p)

``passes/fold_shapes.py`` then turns ``%y`` into ``reshape(%x) {shape=(0, 0, 2, -1)}``
and drops the shape computation; when every dim is static it folds ``%s`` to a
constant. Backends emit these ops only where a dim stays dynamic.

``slice_to`` is ``slice`` with run-time starts and ends (a learned position table
cut to the sequence length: ``table[0:T]`` of ``f32[12,16]`` is ``f32[T,16]``);
fold_shapes makes it the static ``slice`` once its bounds are constants.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.errors import IRError
from kcc.tensor_type import Dim, TensorType
from kcc.ops.registry import Attr, OpDef, register_op
from kcc.ops.shape_values import range_length
from kcc.ops.shapes import UNKNOWN, broadcast, dim_div, prod

_INT = ("i32", "i64")
_NUMERIC = ("f16", "f32", "f64", "i8", "i32", "i64", "u8")


def _shape_operand(t: TensorType, op: str) -> int:
    """Check a 1-D integer shape operand; return its (static) length."""
    if t.dtype not in _INT or t.rank != 1:
        raise IRError(f"{op}: the shape operand must be a 1-D integer tensor, got {t}")
    if not isinstance(t.shape[0], int):
        raise IRError(f"{op}: the shape operand's length {t.shape[0]!r} must be static (it is the output rank)")
    return t.shape[0]


@register_op
class Shape(OpDef):
    """The dims of ``x`` as an i64 vector (ONNX Shape with no start/end; slice it for those)."""

    name = "shape"

    def infer(self, attrs: dict[str, Any], x: TensorType) -> TensorType:
        return TensorType((x.rank,), "i64")

    def compute(self, attrs: dict[str, Any], x: np.ndarray) -> np.ndarray:
        return np.asarray(x.shape, dtype=np.int64)


@register_op
class Range(OpDef):
    """[start, start + delta, ...) up to ``limit`` (exclusive): 0-D operands of one numeric dtype.

    Length max(ceil((limit - start) / delta), 0): an int when all three are known,
    the limit's own symbol for ``range(0, T, 1)``, else ``"?"``.
    """

    name = "range"
    inputs = ("start", "limit", "delta")

    def infer(self, attrs: dict[str, Any], start: TensorType, limit: TensorType, delta: TensorType) -> TensorType:
        for t in (start, limit, delta):
            if t.rank != 0:
                raise IRError(f"range operands must be 0-D, got {start}, {limit}, {delta}")
        if not start.dtype == limit.dtype == delta.dtype or start.dtype not in _NUMERIC:
            raise IRError(f"range operands must share one numeric dtype, got {start.dtype}, {limit.dtype}, "
                          f"{delta.dtype}")
        if delta.value == (0,):
            raise IRError("range delta is 0")
        return TensorType((range_length(start, limit, delta),), start.dtype)

    def compute(self, attrs: dict[str, Any], start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> np.ndarray:
        # ONNX Range: n = max(ceil((limit - start) / delta), 0); entries start + i * delta.
        s, l, d = start.item(), limit.item(), delta.item()
        n = max(int(np.ceil((l - s) / d)), 0)
        return (s + np.arange(n) * d).astype(start.dtype)


def _value_dims(t: TensorType, n: int) -> tuple[Dim, ...]:
    """The entries of shape operand ``t`` as dims (``"?"`` where unknown or negative)."""
    if t.value is None:
        return (UNKNOWN,) * n
    return tuple(d if isinstance(d, str) or d >= 0 else UNKNOWN for d in t.value)


@register_op
class Expand(OpDef):
    """ONNX Expand: broadcast ``x`` and the 1-D i64 ``shape`` both ways (numpy rules) and copy."""

    name = "expand"
    inputs = ("x", "shape")

    def infer(self, attrs: dict[str, Any], x: TensorType, shape: TensorType) -> TensorType:
        n = _shape_operand(shape, "expand")
        if shape.value is not None and any(isinstance(d, int) and d < 0 for d in shape.value):
            raise IRError(f"expand to shape {shape.value} with a negative dim")
        return TensorType(broadcast(x.shape, _value_dims(shape, n)), x.dtype)

    def compute(self, attrs: dict[str, Any], x: np.ndarray, shape: np.ndarray) -> np.ndarray:
        out = np.broadcast_shapes(x.shape, tuple(int(d) for d in shape))
        return np.ascontiguousarray(np.broadcast_to(x, out))


def reshape_to_dims(in_shape: tuple[Dim, ...], target: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """Output dims of a reshape of ``in_shape`` to ``target`` entries (0 copies, one -1 inferred, symbols).

    The -1 is the input's element count divided by the other entries' product,
    symbols cancelling (kcc.ops.shapes.dim_div); ``"?"`` when they do not cancel.
    """
    out: list[Dim] = []
    for i, d in enumerate(target):
        if d == 0:
            if i >= len(in_shape):
                raise IRError(f"reshape target {target}: 0 at {i} has no input dim")
            out.append(in_shape[i])
        elif isinstance(d, str) or d >= -1:
            out.append(d)
        else:
            raise IRError(f"bad reshape target entry {d} in {target}")
    if out.count(-1) > 1:
        raise IRError(f"reshape target {target} has more than one -1")
    if -1 not in out:
        a, b = prod(in_shape), prod(out)
        if isinstance(a, int) and isinstance(b, int) and a != b:
            raise IRError(f"cannot reshape {in_shape} ({a} elements) to {tuple(out)} ({b} elements)")
        return tuple(out)
    k = out.index(-1)
    total, known = prod(in_shape), prod([d for d in out if d != -1])
    if isinstance(total, int) and isinstance(known, int):
        if known == 0 or total % known:
            raise IRError(f"cannot reshape {in_shape} to {target}")
        out[k] = total // known
    else:
        out[k] = dim_div(total, known)
    return tuple(out)


def static_reshape_spec(in_shape: tuple[Dim, ...], target: tuple[Dim, ...]) -> tuple[int, ...] | None:
    """The static ``reshape`` spec for target entries ``target`` of an input of ``in_shape``, or None.

    Int entries stay as written (0 copies, -1 is inferred); a symbol equal to the
    input dim at the same position is 0; one other symbol or unknown entry is -1.
    When that makes two -1s, the written -1 is replaced by its resolved dim
    (``reshape_to_dims``: next to ``N*T`` of an ``(N, T, 8)`` input it is 8). None
    when two entries still need -1: only the run time knows them.
    """
    spec: list[int | None] = []
    for i, d in enumerate(target):
        if isinstance(d, int):
            spec.append(d)
        elif d != UNKNOWN and i < len(in_shape) and in_shape[i] == d:
            spec.append(0)
        else:
            spec.append(None)
    if spec.count(-1) + spec.count(None) > 1 and -1 in spec:
        try:
            resolved = reshape_to_dims(in_shape, target)[spec.index(-1)]
        except IRError:
            return None
        if isinstance(resolved, int):
            spec[spec.index(-1)] = resolved
    out = tuple(-1 if d is None else d for d in spec)
    return out if out.count(-1) <= 1 else None


@register_op
class ReshapeTo(OpDef):
    """Row-major reshape to a runtime 1-D i64 ``shape`` (ONNX Reshape, allowzero=0).

    An entry 0 copies the input dim at that position, one -1 is inferred. With the
    shape operand's value known the output dims are exact (symbols included);
    prefer the static ``reshape`` op whenever the target is known at conversion time.
    """

    name = "reshape_to"
    inputs = ("x", "shape")

    def infer(self, attrs: dict[str, Any], x: TensorType, shape: TensorType) -> TensorType:
        n = _shape_operand(shape, "reshape_to")
        if shape.value is None:
            return TensorType((UNKNOWN,) * n, x.dtype)
        return TensorType(reshape_to_dims(x.shape, shape.value), x.dtype)

    def compute(self, attrs: dict[str, Any], x: np.ndarray, shape: np.ndarray) -> np.ndarray:
        spec = [x.shape[i] if int(s) == 0 else int(s) for i, s in enumerate(shape)]
        return x.reshape(spec)



def slice_bound(v: Dim, dim: Dim) -> int | None:
    """A slice bound as an int numpy can use (None when it is a symbol other than the axis's own dim)."""
    if isinstance(v, int):
        return v
    return 2 ** 62 if v == dim and v != UNKNOWN else None


def slice_to_dim(dim: Dim, start: Dim, end: Dim, step: int) -> Dim:
    """The length of ``x[start:end:step]`` on an axis of ``dim``, from the bounds' symbolic values.

    Ints on a static axis give the numpy length. A symbolic end ``T`` with start 0
    and step 1 gives ``T``: the graph promises ``T`` fits the axis (a position table
    of 12 rows cut to the sequence length; a longer sequence fails at run time, in
    the model's own add, as it does in the source framework). Anything else is "?".
    """
    s, e = slice_bound(start, dim), slice_bound(end, dim)
    if s is not None and e is not None:
        if isinstance(dim, int):
            return len(range(*slice(s, e, step).indices(dim)))
        if s == 0 and step == 1 and e >= 2 ** 62:
            return dim
        return UNKNOWN
    if start == 0 and step == 1 and isinstance(end, str) and end != UNKNOWN:
        return end
    return UNKNOWN


def _value_dims_raw(t: TensorType, n: int) -> tuple[Dim, ...]:
    """The entries of a bounds operand (ints may be negative; ``"?"`` where unknown)."""
    return (UNKNOWN,) * n if t.value is None else tuple(t.value)


@register_op
class SliceTo(OpDef):
    """``x[starts:ends:steps]`` on ``axes`` with run-time 1-D integer ``starts`` and ``ends`` (ONNX Slice).

    ``axes`` and ``steps`` are attributes (constants in every graph kcc meets); the
    bounds are clamped like numpy's. Output dims come from the bounds' symbolic
    values (``slice_to_dim``); ``passes/fold_shapes.py`` turns the node into the
    static ``slice`` when both bounds become constants.
    """

    name = "slice_to"
    inputs = ("x", "starts", "ends")
    attrs = {"axes": Attr("ints"), "steps": Attr("ints", ())}

    def infer(self, attrs: dict[str, Any], x: TensorType, starts: TensorType, ends: TensorType) -> TensorType:
        axes, steps = attrs["axes"], attrs["steps"] or (1,) * len(attrs["axes"])
        n = len(axes)
        for t, what in ((starts, "starts"), (ends, "ends")):
            if _shape_operand(t, f"slice_to {what}") != n:
                raise IRError(f"slice_to: {what} has {t.shape[0]} entries for {n} axes {axes}")
        if len(steps) != n or 0 in steps:
            raise IRError(f"slice_to: steps {attrs['steps']} must be {n} non-zero entries")
        norm = [a + x.rank if a < 0 else a for a in axes]
        if any(not 0 <= a < x.rank for a in norm) or len(set(norm)) != n:
            raise IRError(f"slice_to: axes {axes} are not distinct axes of {x}")
        sv, ev = _value_dims_raw(starts, n), _value_dims_raw(ends, n)
        out = list(x.shape)
        for k, a in enumerate(norm):
            out[a] = slice_to_dim(x.shape[a], sv[k], ev[k], steps[k])
        return TensorType(tuple(out), x.dtype)

    def compute(self, attrs: dict[str, Any], x: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        steps = attrs["steps"] or (1,) * len(attrs["axes"])
        index = [slice(None)] * x.ndim
        for a, s, e, st in zip(attrs["axes"], starts.reshape(-1), ends.reshape(-1), steps):
            index[a] = slice(int(s), int(e), int(st))
        return x[tuple(index)]

