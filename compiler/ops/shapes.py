"""Shape arithmetic shared by op declarations, with symbolic dims.

A dim is an int or a symbol (str); equal symbols are the same dim. A product of
dims is a symbol too, spelled canonically (``"8*N*seq"``: the int factor first,
then the symbols sorted), so a flatten and the reshape back agree on their dims.
Other arithmetic on a symbol gives ``"?"`` (unknown; two ``"?"`` are not the same
dim) unless the result is forced (adding 0, ``max(d, 1)``, ...).
"""
from __future__ import annotations

import math
from typing import Sequence

from kcc.errors import IRError
from kcc.tensor_type import Dim, Shape

UNKNOWN = "?"


def dim_factors(d: Dim) -> tuple[int, list[str]] | None:
    """A dim as (int factor, symbol factors); None for an unknown dim (or a negative shape entry)."""
    if isinstance(d, int):
        return (d, []) if d >= 0 else None
    if d == UNKNOWN:
        return None
    coef, syms = 1, []
    for part in d.split("*"):
        if part.isdigit():
            coef *= int(part)
        else:
            syms.append(part)
    return coef, syms


def _from_factors(coef: int, syms: list[str]) -> Dim:
    if coef == 0 or not syms:
        return coef
    return "*".join(([str(coef)] if coef != 1 else []) + sorted(syms))


def dim_mul(a: Dim, b: Dim) -> Dim:
    """a * b, a canonical product symbol when either is symbolic."""
    fa, fb = dim_factors(a), dim_factors(b)
    if fa is None or fb is None:
        return 0 if 0 in (a, b) else UNKNOWN
    return _from_factors(fa[0] * fb[0], fa[1] + fb[1])


def dim_div(a: Dim, b: Dim) -> Dim:
    """a / b when it divides exactly (symbols cancelling), else ``"?"``."""
    fa, fb = dim_factors(a), dim_factors(b)
    if fa is None or fb is None or fb[0] == 0 or fa[0] % fb[0]:
        return UNKNOWN
    left = list(fa[1])
    for s in fb[1]:
        if s not in left:
            return UNKNOWN
        left.remove(s)
    return _from_factors(fa[0] // fb[0], left)


def prod(dims: Sequence[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = dim_mul(out, d)
    return out


def norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise IRError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def norm_axes(axes: Sequence[int], rank: int) -> tuple[int, ...]:
    out = tuple(sorted(norm_axis(a, rank) for a in axes))
    if len(set(out)) != len(out):
        raise IRError(f"repeated axis in {tuple(axes)}")
    return out


def broadcast(*shapes: Shape) -> Shape:
    """numpy broadcasting of shapes with symbolic dims."""
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        non1 = [d for d in dims if d != 1]
        if not non1:
            out.append(1)
            continue
        ints = {d for d in non1 if isinstance(d, int)}
        if len(ints) > 1:
            raise IRError(f"shapes {list(shapes)} do not broadcast")
        if ints:
            out.append(ints.pop())
        else:
            syms = set(non1)
            out.append(non1[0] if len(syms) == 1 else UNKNOWN)
    return tuple(out)


def conv_out(size: Dim, kernel: int, stride: int, dilation: int, pad_total: int, same: bool) -> Dim:
    """Output length of a sliding window along one axis (a symbolic length stays itself when the window keeps it)."""
    if not isinstance(size, int):
        keeps = stride == 1 and (same or pad_total == (kernel - 1) * dilation)
        return size if keeps else UNKNOWN
    if same:
        return -(-size // stride)
    eff = (kernel - 1) * dilation + 1
    out = (size + pad_total - eff) // stride + 1
    if out < 1:
        raise IRError(f"window {eff} (kernel {kernel}, dilation {dilation}) is larger than the padded input {size + pad_total}")
    return out


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(begin, end) padding of Keras/TensorFlow 'same' (the extra pixel goes at the end)."""
    eff = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def window_pads(in_shape: Shape, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                pads: Sequence[int], auto_pad: str) -> list[tuple[int, int]]:
    """Per spatial axis (begin, end) padding, resolving auto_pad='same' on a concrete shape."""
    n = len(kernel)
    if auto_pad == "same":
        return [same_pads(int(in_shape[2 + i]), kernel[i], strides[i], dilations[i]) for i in range(n)]
    pads = tuple(pads) or (0,) * (2 * n)
    return [(pads[i], pads[i + n]) for i in range(n)]


def check_window_attrs(n: int, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                       pads: Sequence[int]) -> None:
    if len(kernel) != n or len(strides) != n or len(dilations) != n:
        raise IRError(f"window attributes {kernel}/{strides}/{dilations} do not match {n} spatial dims")
    if pads and len(pads) != 2 * n:
        raise IRError(f"pads {tuple(pads)} must hold {2 * n} values (all begins, then all ends)")


def spatial_out(in_shape: Shape, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                pads: Sequence[int], auto_pad: str) -> tuple[Dim, ...]:
    n = len(kernel)
    check_window_attrs(n, kernel, strides, dilations, pads)
    pads = tuple(pads) or (0,) * (2 * n)
    return tuple(conv_out(in_shape[2 + i], kernel[i], strides[i], dilations[i], pads[i] + pads[i + n],
                          auto_pad == "same") for i in range(n))


def dim_op(kind: str, a: Dim, b: Dim) -> Dim:
    """``a <kind> b`` on dims or shape-tensor entries (ints, possibly negative, and symbols).

    ``kind`` is add, sub, mul, div (integer division truncating toward zero, as the
    IR's and ONNX's integer Div), max or min. A symbol survives only where the result
    is forced (``d * 1``, ``d + 0``, ``max(d, 1)`` since dims are >= 1, ``max(d, d)``);
    anything else involving a symbol is ``"?"``.
    """
    if isinstance(a, int) and isinstance(b, int):
        if kind == "div":
            return 0 if b == 0 else abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        return {"add": a + b, "sub": a - b, "mul": a * b, "max": max(a, b), "min": min(a, b)}[kind]
    if kind in ("max", "min") and a == b and a != UNKNOWN:
        return a
    if kind == "max" and (a == 1 or b == 1):
        return b if a == 1 else a
    if kind == "mul":
        return dim_mul(a, b)
    if kind in ("add", "sub") and b == 0:
        return a
    if kind == "add" and a == 0:
        return b
    if kind == "div" and b != 0:
        return dim_div(a, b)
    return UNKNOWN
