"""keras.ops calls recorded in a functional graph as operations: ``GetItem`` (``x[...]``).

A functional model built with ``x[:, 0, :]`` (every KerasHub BERT-style backbone
pools its first token so) records a ``GetItem`` operation whose second call
argument is the key: ints, ``__slice__`` entries with int or None bounds, and
``__ellipsis__``. The key is in Keras's (channels-last) order, so the handler
slices between layout transposes:

    %k = transpose(%x) {perm=to_keras}   slice(%k) {axes of the slices}
    squeeze(...) {axes indexed by an int}   transpose(...) {perm=to_ir}

A key holding a tensor (a gather by computed indices) or ``None`` (a new axis)
is refused with the layer's name.
"""
from __future__ import annotations

from typing import Any

from kcc.frontends.keras.registry import KerasLayerContext, keras_layer
from kcc.ir import Value

_END = 2**62  # slice end "to the end of the axis"


def _key(ctx: KerasLayerContext) -> list[Any]:
    """The key as a list of int / slice / Ellipsis items (a bare item is a list of one)."""
    raw = ctx.call.kwargs.get("arg1", ctx.call.kwargs.get("key"))
    items = raw if isinstance(raw, list) else [raw]
    out: list[Any] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            out.append(item)
        elif isinstance(item, dict) and item.get("class_name") == "__slice__":
            cfg = item.get("config") or {}
            bounds = [cfg.get("start"), cfg.get("stop"), cfg.get("step")]
            if not all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in bounds):
                raise ctx.fail(f"slice bounds {bounds} are not ints or None; only static slices convert")
            if bounds[2] == 0:
                raise ctx.fail("a slice step of 0 is not a slice")
            out.append(slice(*bounds))
        elif isinstance(item, dict) and item.get("class_name") == "__ellipsis__":
            out.append(Ellipsis)
        else:
            raise ctx.fail(f"index {item!r} is not an int, a static slice or '...'; kcc converts "
                           "x[...] with those only (use keras.ops.take for computed indices)")
    if out.count(Ellipsis) > 1:
        raise ctx.fail("an index can hold one '...' only")
    return out


def _expand(key: list[Any], rank: int, ctx: KerasLayerContext) -> list[Any]:
    """One item per axis: '...' and the missing trailing axes become full slices."""
    explicit = len(key) - key.count(Ellipsis)
    if explicit > rank:
        raise ctx.fail(f"index {key} has {explicit} items for a rank-{rank} tensor")
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = key[:i] + [slice(None)] * (rank - explicit) + key[i + 1:]
    return key + [slice(None)] * (rank - len(key))


@keras_layer("GetItem")
def get_item(ctx: KerasLayerContext, x: Value) -> Value:
    """``x[key]`` for static keys: one slice, then a squeeze of the int-indexed axes."""
    key = _expand(_key(ctx), x.rank, ctx)
    if isinstance(key[0], int) or key[0] != slice(None):
        raise ctx.fail(f"index {key} selects along the batch axis; kcc keeps the batch whole")
    starts, ends, axes, steps, dropped = [], [], [], [], []
    for axis, item in enumerate(key):
        if isinstance(item, int):
            dim = x.shape[ctx.axis(axis, x.rank)] if axis else None
            if isinstance(dim, int) and not -dim <= item < dim:
                raise ctx.fail(f"index {item} is out of range for axis {axis} of size {dim}")
            starts.append(item)
            ends.append(item + 1 if item != -1 else _END)
            axes.append(axis)
            steps.append(1)
            dropped.append(axis)
        elif item != slice(None):
            step = 1 if item.step is None else item.step
            start = item.start if item.start is not None else (0 if step > 0 else -1)
            end = item.stop if item.stop is not None else (_END if step > 0 else -_END)
            starts.append(start)
            ends.append(end)
            axes.append(axis)
            steps.append(step)
    y = ctx.to_keras_layout(x)
    if axes:
        y = ctx.op.slice(y, starts=tuple(starts), ends=tuple(ends), axes=tuple(axes),
                         steps=tuple(steps) if any(s != 1 for s in steps) else ())
    if dropped:
        y = ctx.op.squeeze(y, axes=tuple(dropped))
    return ctx.from_keras_layout(y)
