"""ONNX ``ReverseSequence`` -> IR ``slice`` (step -1) or ``gather``; no new IR op is needed.

``ReverseSequence(x, sequence_lens) {time_axis, batch_axis}`` reverses the first
``sequence_lens[b]`` steps of each sequence ``b`` and leaves the rest in place.
tf2onnx writes it for TensorFlow's ``ReverseV2`` on the time axis (Keras's
``go_backwards`` and the backward half of ``Bidirectional``) with every length
equal to the full length: ``Expand(T, [N])`` with ``N`` the (symbolic) batch.
Two lowerings:

* every length is the full length ``T`` (a constant, or a broadcast of one; a
  symbolic ``T`` read from ``Shape`` counts):
  the whole axis reversed, ``slice(x) {starts=-1, ends=-2**62, steps=-1}``,
  the IR's time reversal (what the Keras frontend writes for ``go_backwards``);
* constant lengths of a static ``x`` that differ: each output row is a row of
  ``x``, so the op is one ``gather`` of the rows of ``x`` flattened over the time
  and batch axes, at constant indices: out[t, b] = x[l_b - 1 - t, b] for t < l_b,
  else x[t, b] (batch-major likewise).

Lengths computed at run time other than the full length are refused by name.
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.onnx.registry import OnnxNodeContext, onnx_op
from kcc.ir import Graph, Value
from kcc.ops.shapes import UNKNOWN

_BROADCASTS = ("expand", "tile", "identity", "cast", "unsqueeze", "squeeze", "reshape")


def uniform_value(graph: Graph, v: Value) -> float | str | None:
    """The one value every entry of ``v`` holds by construction (a constant or its broadcast), or None.

    A dim read at run time counts by its symbol (``gather(shape(x), [1])`` holds ``"T"``).
    """
    while True:
        if v.is_const:
            flat = v.const.ravel()
            return flat[0].item() if flat.size and np.all(flat == flat[0]) else None
        known = v.type.value
        if known and UNKNOWN not in known and all(d == known[0] for d in known):
            return known[0]
        node = graph.producer(v)
        if node is None:
            return None
        if node.op == "fill_like":
            return node.attrs["value"]
        if node.op not in _BROADCASTS:
            return None
        v = node.inputs[0]


@onnx_op("ReverseSequence")
def reverse_sequence(ctx: OnnxNodeContext) -> Value:
    x = ctx.value(0)
    time_axis, batch_axis = ctx.attr("time_axis", 0), ctx.attr("batch_axis", 1)
    if {time_axis, batch_axis} != {0, 1}:
        raise ctx.fail(f"time_axis={time_axis} and batch_axis={batch_axis} must be 0 and 1")
    steps = x.shape[time_axis]
    lens = ctx.inputs[1]
    if isinstance(lens, np.ndarray) and lens.dtype != object:
        full = bool(np.all(lens == steps)) if isinstance(steps, int) else False
        length = None
    else:
        length = uniform_value(ctx.graph, ctx.value(1))
        full = length is not None and length == steps
    if full:
        return ctx.op.slice(x, starts=(-1,), ends=(-(2 ** 62),), axes=(time_axis,), steps=(-1,))
    if not isinstance(lens, np.ndarray) or lens.dtype == object:
        what = f"every length {length}" if length is not None else "lengths computed at run time"
        raise ctx.fail(f"sequence_lens ({what}) must be constants or the full length {steps} of the time axis")
    if not all(isinstance(d, int) for d in x.shape[:2]):
        raise ctx.fail(f"constant sequence_lens {lens.tolist()} other than the full length need static time and "
                       f"batch axes, got shape {list(x.shape)}; give the model static input shapes")
    return _gather_rows(ctx, x, lens.astype(np.int64), time_axis)


def _gather_rows(ctx: OnnxNodeContext, x: Value, lens: np.ndarray, time_axis: int) -> Value:
    steps, batch = (x.shape[0], x.shape[1]) if time_axis == 0 else (x.shape[1], x.shape[0])
    if lens.shape != (batch,) or np.any(lens < 0) or np.any(lens > steps):
        raise ctx.fail(f"sequence_lens {lens.tolist()} must hold {batch} lengths in [0, {steps}]")
    t = np.arange(steps)[:, None]
    src = np.where(t < lens[None, :], lens[None, :] - 1 - t, t)        # (T, N): the source step of each row
    b = np.arange(batch)[None, :]
    # The row of x flattened over axes 0 and 1 that each output row reads, in the output's layout.
    index = src * batch + b if time_axis == 0 else (b * steps + src).T
    rows = ctx.op.reshape(x, shape=(steps * batch,) + tuple(x.shape[2:]))
    return ctx.op.gather(rows, ctx.op.const(index), axis=0)
