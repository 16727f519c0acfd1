"""MIL control flow and scatter -> IR: ``while_loop`` unrolled, ``cond`` resolved, ``scatter`` by slices.

coremltools' PyTorch frontend writes ``nn.GRU`` (and other recurrences it has
no MIL op for) as a ``while_loop`` whose counter starts at a constant and is
compared with the sequence length: every operand of the condition is known at
conversion time. kcc's IR has no loops, so the loop is unrolled at import: the
condition block is lowered with the current loop variables (the importer folds
it to a constant), and while it is true the body block is lowered again with
the loop variables bound to the previous body outputs. Ops of a body that only
touch the counter fold away; the rest become one copy per iteration. A
condition that depends on tensor values, or more than ``MAX_ITERATIONS``
iterations, is a clear error.

``cond`` with a known predicate lowers the chosen branch only; with a tensor
predicate both branches are lowered and ``where`` selects (they have no side
effects in MIL), which needs the branches' results to have one shape.

``scatter`` (the loop bodies write each step into a buffer with it) needs
constant indices: each index becomes slices of the buffer around the written
row, the row combined with the update by ``mode``, and one concat.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.frontends.coreml.mil_registry import MilOpContext, mil_op
from kcc.ir import Value

MAX_ITERATIONS = 4096


def _known_bool(ctx: MilOpContext, x: Any, what: str) -> bool | None:
    """The value of a one-element boolean known at conversion time, else None."""
    if isinstance(x, Value):
        if not x.is_const:
            return None
        x = x.const
    arr = np.asarray(x)
    if arr.size != 1:
        raise ctx.fail(f"the {what} has {arr.size} elements; MIL needs one")
    return bool(arr.reshape(()))


@mil_op("while_loop")
def while_loop(ctx: MilOpContext) -> list[Any]:
    blocks = list(ctx.operation.blocks)
    if len(blocks) != 2:
        raise ctx.fail(f"while_loop has {len(blocks)} blocks; MIL gives it two (condition, body)")
    cond_block, body_block = blocks
    values = list(ctx.operands.get("loop_vars") or [])
    for step in range(MAX_ITERATIONS + 1):
        (keep_going,) = ctx.importer.lower_block(cond_block, values, ctx.where)[:1]
        known = _known_bool(ctx, keep_going, "loop condition")
        if known is None:
            raise ctx.fail("the loop's condition depends on tensor values, so its trip count is not known at "
                           "conversion time; kcc unrolls loops with a known count only (give the model fixed "
                           "input shapes, e.g. a fixed sequence length)")
        if not known:
            return values
        if step == MAX_ITERATIONS:
            break
        values = ctx.importer.lower_block(body_block, values, ctx.where)
    raise ctx.fail(f"the loop runs more than {MAX_ITERATIONS} times; kcc unrolls loops, and this one is too long")


@mil_op("cond")
def cond(ctx: MilOpContext) -> list[Any]:
    blocks = list(ctx.operation.blocks)
    if len(blocks) != 2:
        raise ctx.fail(f"cond has {len(blocks)} blocks; MIL gives it two (true, false)")
    known = _known_bool(ctx, ctx.const("pred"), "predicate") if ctx.is_const("pred") else None
    if known is not None:
        return ctx.importer.lower_block(blocks[0] if known else blocks[1], [], ctx.where)
    then, other = ctx.importer.lower_block(blocks[0], [], ctx.where), ctx.importer.lower_block(blocks[1], [], ctx.where)
    flag = ctx.value("pred")
    if flag.dtype != "bool":
        flag = ctx.op.cast(flag, to="bool")
    if flag.rank:
        flag = ctx.op.reshape(flag, shape=[])
    results = []
    for i, (a, b) in enumerate(zip(then, other)):
        a = a if isinstance(a, Value) else ctx.op.const(np.asarray(a))
        b = b if isinstance(b, Value) else ctx.op.const(np.asarray(b))
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ctx.fail(f"the branches' result {i} differ ({list(a.shape)} {a.dtype} vs {list(b.shape)} "
                           f"{b.dtype}) and the predicate is a tensor value; kcc selects between branches "
                           f"of one shape only")
        results.append(ctx.op.where(flag, a, b))
    return results


_COMBINE = {"update": None, "add": "add", "sub": "sub", "mul": "mul", "div": "div", "max": "max", "min": "min"}


@mil_op("scatter")
def scatter(ctx: MilOpContext) -> Value:
    """output = data; output[..., indices[i], ...] = mode(output[..., indices[i], ...], updates[..., i, ...])."""
    data, updates = ctx.value("data"), ctx.value("updates")
    axis = int(ctx.scalar("axis", 0)) % data.rank
    mode = str(ctx.scalar("mode", "add"))
    if mode not in _COMBINE:
        raise ctx.fail(f"scatter mode {mode!r} is not supported by kcc ({', '.join(_COMBINE)})")
    if not ctx.is_const("indices"):
        raise ctx.fail("scatter indices computed from tensor values are not supported by kcc (it needs them at "
                       "conversion time)")
    size = data.shape[axis]
    if not isinstance(size, int):
        raise ctx.fail("scatter along an axis of unknown size; give the model fixed input shapes")
    indices = [int(i) for i in np.asarray(ctx.const("indices")).reshape(-1)]
    if updates.rank != data.rank or updates.shape[axis] != len(indices):
        raise ctx.fail(f"updates of shape {list(updates.shape)} do not fit {len(indices)} indices along axis "
                       f"{axis} of data {list(data.shape)}")
    out = data
    for j, index in enumerate(indices):
        if not -size <= index < size:
            raise ctx.fail(f"index {index} is outside axis {axis} of size {size}")
        pos = index % size
        row = ctx.op.slice(updates, starts=[j], ends=[j + 1], axes=[axis])
        if _COMBINE[mode] is not None:
            old = ctx.op.slice(out, starts=[pos], ends=[pos + 1], axes=[axis])
            row = getattr(ctx.op, _COMBINE[mode])(old, row)
        if row.dtype != out.dtype:
            row = ctx.op.cast(row, to=out.dtype)
        parts = ([ctx.op.slice(out, starts=[0], ends=[pos], axes=[axis])] if pos > 0 else []) + [row] + \
                ([ctx.op.slice(out, starts=[pos + 1], ends=[size], axes=[axis])] if pos + 1 < size else [])
        out = ctx.op.concat(*parts, axis=axis) if len(parts) > 1 else row
    return out
