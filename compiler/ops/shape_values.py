"""Symbolic values of shape tensors: what the graph knows about a small integer tensor.

A shape computation (``shape(x)``, then gather/slice/concat/mul/... on it) yields
i64 tensors whose entries are dims of other values. ``TensorType.value`` holds
those entries, flattened, as ints and dim symbols (``"?"`` = unknown), for integer
tensors of rank <= 1 with at most ``MAX_VALUE_SIZE`` entries. This module is the
table of rules that compute an op's output value from its inputs' values; the op
registry applies it after every shape function (``OpDef.infer_types``), and
constants get theirs in ``Graph.add_const``. Consumers:

* shape functions (``reshape_to`` and ``expand`` give exact symbolic dims when
  their shape input's value is known, ``range`` a named length);
* ``passes/fold_shapes.py``, which turns a value whose entries are all ints into a
  constant and a ``reshape_to`` whose target resolves into the static ``reshape``.

Values mirror the numpy reference implementations (``compute``) entry for entry:
``tests/core/test_shape_ops.py`` checks each rule against the interpreter.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import numpy as np

from kcc.tensor_type import Dim, TensorType
from kcc.ops.shapes import UNKNOWN, dim_op

MAX_VALUE_SIZE = 64
_INT_DTYPES = ("i32", "i64", "i8", "u8")
# Bool tensors carry values too (entries 0 and 1): a comparison of a shape entry with a
# constant (tf2onnx's ``size == -1`` test in a TensorFlow Slice) stays known.
_VALUE_DTYPES = _INT_DTYPES + ("bool",)

ValueRule = Callable[[dict[str, Any], Sequence[TensorType | None]], "tuple[Dim, ...] | None"]
# IR op name -> rule giving the output's value (None: nothing known).
VALUE_RULES: dict[str, ValueRule] = {}


def value_rule(*op_names: str) -> Callable[[ValueRule], ValueRule]:
    def deco(fn: ValueRule) -> ValueRule:
        for name in op_names:
            if name in VALUE_RULES:
                raise ValueError(f"value rule for {name!r} declared twice")
            VALUE_RULES[name] = fn
        return fn
    return deco


def carries_value(t: TensorType) -> bool:
    """Whether values of type ``t`` may hold a symbolic value (small integer, rank <= 1)."""
    if t.dtype not in _VALUE_DTYPES or t.rank > 1:
        return False
    return t.rank == 0 or (isinstance(t.shape[0], int) and t.shape[0] <= MAX_VALUE_SIZE)


def const_value(array: np.ndarray) -> tuple[Dim, ...] | None:
    """The value of a constant array (None unless it is a small integer tensor of rank <= 1)."""
    if array.dtype.kind not in "iub" or array.ndim > 1 or array.size > MAX_VALUE_SIZE:
        return None
    return tuple(int(v) for v in array.ravel())


def with_value(attrs: dict[str, Any], op_name: str, types: Sequence[TensorType | None],
               out: TensorType) -> TensorType:
    """``out`` with its value attached when ``op_name`` has a rule and the rule knows it."""
    rule = VALUE_RULES.get(op_name)
    value = rule(attrs, types) if rule is not None and carries_value(out) else None
    if value is None or len(value) != (1 if out.rank == 0 else out.shape[0]):
        # A shape function that returns its input's type must not pass that value on.
        return out if out.value is None else TensorType(out.shape, out.dtype)
    return TensorType(out.shape, out.dtype, tuple(value))


def is_known(value: tuple[Dim, ...] | None) -> bool:
    """Every entry an int: the tensor is a constant in disguise."""
    return value is not None and all(isinstance(d, int) for d in value)


def _val(t: TensorType | None) -> tuple[Dim, ...] | None:
    return None if t is None else t.value


# ------------------------------------------------------------------ rules
@value_rule("shape")
def _shape(attrs, types):
    return tuple(types[0].shape)


@value_rule("identity", "reshape", "reshape_to", "squeeze", "unsqueeze", "flatten", "expand")
def _same_entries(attrs, types):
    x = types[0]
    if x.rank > 1:
        return None
    return _val(x)


@value_rule("cast")
def _cast(attrs, types):
    x, to = types[0], attrs["to"]
    if x.dtype not in _VALUE_DTYPES or x.value is None:
        return None
    if to == "bool":  # a dim symbol may be 0: only ints are known truths
        return tuple(int(bool(d)) if isinstance(d, int) else UNKNOWN for d in x.value)
    return x.value


@value_rule("gather")
def _gather(attrs, types):
    x, idx = types
    xv, iv = _val(x), _val(idx)
    if xv is None or iv is None or x.rank != 1:
        return None
    n = len(xv)
    out = []
    for i in iv:
        if not isinstance(i, int) or not -n <= i < n:
            return None
        out.append(xv[i])
    return tuple(out)


@value_rule("slice")
def _slice(attrs, types):
    x = types[0]
    xv = _val(x)
    if xv is None or x.rank != 1:
        return None
    steps = attrs["steps"] or (1,) * len(attrs["axes"])
    sl = slice(None)
    for s, e, st in zip(attrs["starts"], attrs["ends"], steps):
        sl = slice(s, e, st)
    return tuple(xv[sl])


@value_rule("slice_to")
def _slice_to(attrs, types):
    x, starts, ends = types
    xv, sv, ev = _val(x), _val(starts), _val(ends)
    if xv is None or x.rank != 1 or not (is_known(sv) and is_known(ev)):
        return None
    steps = attrs["steps"] or (1,)
    return tuple(xv[slice(sv[0], ev[0], steps[0])])


@value_rule("concat")
def _concat(attrs, types):
    out: list[Dim] = []
    for t in types:
        if t is None or t.rank != 1 or t.value is None:
            return None
        out.extend(t.value)
    return tuple(out)


def _entrywise(combine: Callable[[Dim, Dim], Dim]) -> ValueRule:
    """A rule for a binary op on two shape values: entry by entry, a length-1 side broadcast."""
    def rule(attrs, types):
        av, bv = _val(types[0]), _val(types[1])
        if av is None or bv is None:
            return None
        if len(av) == 1:
            av = av * len(bv)
        if len(bv) == 1:
            bv = bv * len(av)
        if len(av) != len(bv):
            return None
        return tuple(combine(p, q) for p, q in zip(av, bv))
    return rule


for _kind in ("add", "sub", "mul", "div", "max", "min"):
    value_rule(_kind)(_entrywise(partial(dim_op, _kind)))


_COMPARE = {"equal": lambda p, q: p == q, "greater": lambda p, q: p > q, "less": lambda p, q: p < q,
            "greater_equal": lambda p, q: p >= q, "less_equal": lambda p, q: p <= q}


def compare_entries(kind: str, a: Dim, b: Dim) -> Dim:
    """``a <kind> b`` as 0/1, or "?" when the entries do not decide it.

    A symbol other than "?" is a dim (shape entries keep a symbol only where the
    arithmetic forces it, kcc.ops.shapes.dim_op), so it is >= 0: ``T == -1`` is
    0 and ``T > -1`` is 1; a symbol compared with itself is decided too.
    """
    if UNKNOWN in (a, b):
        return UNKNOWN
    if isinstance(a, int) and isinstance(b, int):
        return int(_COMPARE[kind](a, b))
    if a == b:
        return int(kind in ("equal", "greater_equal", "less_equal"))
    if isinstance(a, str) and isinstance(b, int) and b < 0:
        return int(_COMPARE[kind](1, b))    # any dim >= 0 > b
    if isinstance(b, str) and isinstance(a, int) and a < 0:
        return int(_COMPARE[kind](a, 1))
    return UNKNOWN


for _kind in _COMPARE:
    value_rule(_kind)(_entrywise(partial(compare_entries, _kind)))


@value_rule("reduce_prod")
def _reduce_prod(attrs, types):
    xv = _val(types[0])
    if xv is None:
        return None
    out: Dim = 1
    for d in xv:
        out = dim_op("mul", out, d)
    return (out,)


@value_rule("range")
def _range(attrs, types):
    vals = [_val(t) for t in types]
    if not all(is_known(v) for v in vals):
        return None
    start, limit, delta = (v[0] for v in vals)
    if delta == 0:
        return None
    return tuple(range(start, limit, delta))


def range_length(start: TensorType, limit: TensorType, delta: TensorType) -> Dim:
    """The length of ``range(start, limit, delta)``: an int, the limit's symbol (start 0, delta 1), or "?"."""
    s, l, d = (_val(t) for t in (start, limit, delta))
    if s is None or l is None or d is None:
        return UNKNOWN
    s, l, d = s[0], l[0], d[0]
    if isinstance(s, int) and isinstance(l, int) and isinstance(d, int) and d != 0:
        return max(-(-(l - s) // d), 0)
    if s == 0 and d == 1:
        return l
    return UNKNOWN
