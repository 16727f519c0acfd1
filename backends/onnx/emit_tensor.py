"""ONNX emitters for data movement whose operands ONNX takes as inputs: reshape, pad, slice, slice_to, squeeze, tile, split.

(transpose, concat, flatten and gather are rows of kcc.formats.onnx_ops.)
"""
from __future__ import annotations

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.formats.onnx_ops import ELEM_TYPES
from kcc.ir import DTYPES, Node


@onnx_emitter("reshape")
def _reshape(ctx: OnnxContext, node: Node) -> None:
    shape = ctx.ints(list(node.attrs["shape"]), f"{node.name}_shape")
    ctx.add("Reshape", [ctx.name(node.inputs[0]), shape], [ctx.out(node)], hint=node.name)


@onnx_emitter("pad")
def _pad(ctx: OnnxContext, node: Node) -> None:
    x = node.inputs[0]
    ins = [ctx.name(x), ctx.ints(list(node.attrs["pads"]), f"{node.name}_pads")]
    value = node.attrs["value"]
    # -0.0 is written too (np.signbit): passes/lower_onnx_pad_max_pool.py relies on it.
    if node.attrs["mode"] == "constant" and (value != 0.0 or np.signbit(value)):
        ins.append(ctx.const(np.asarray(value, dtype=DTYPES[x.dtype]), f"{node.name}_value"))
    ctx.add("Pad", ins, [ctx.out(node)], hint=node.name, mode=node.attrs["mode"])


@onnx_emitter("slice")
def _slice(ctx: OnnxContext, node: Node) -> None:
    a = node.attrs
    clamp = lambda v: max(min(v, 2**62), -(2**62))  # noqa: E731
    ins = [ctx.name(node.inputs[0]), ctx.ints([clamp(s) for s in a["starts"]], "starts"),
           ctx.ints([clamp(e) for e in a["ends"]], "ends"), ctx.ints(list(a["axes"]), "axes")]
    if a["steps"]:
        ins.append(ctx.ints(list(a["steps"]), "steps"))
    ctx.add("Slice", ins, [ctx.out(node)], hint=node.name)


@onnx_emitter("slice_to")
def _slice_to(ctx: OnnxContext, node: Node) -> None:
    """Slice with run-time starts and ends (one integer dtype, as ONNX's Tind wants)."""
    x, starts, ends = node.inputs
    ins = [ctx.name(x), ctx.name(starts), ctx.name(ends)]
    if ends.dtype != starts.dtype:
        ins[2] = ctx.fresh(f"{node.name}_ends")
        ctx.add("Cast", [ctx.name(ends)], [ins[2]], hint=node.name, to=ELEM_TYPES[starts.dtype])
    a, tind = node.attrs, DTYPES[starts.dtype]
    ins.append(ctx.const(np.asarray(a["axes"], dtype=tind), "axes"))
    if a["steps"]:
        ins.append(ctx.const(np.asarray(a["steps"], dtype=tind), "steps"))
    ctx.add("Slice", ins, [ctx.out(node)], hint=node.name)


@onnx_emitter("squeeze", "unsqueeze")
def _squeeze(ctx: OnnxContext, node: Node) -> None:
    op = {"squeeze": "Squeeze", "unsqueeze": "Unsqueeze"}[node.op]
    ctx.add(op, [ctx.name(node.inputs[0]), ctx.ints(list(node.attrs["axes"]), "axes")], [ctx.out(node)],
            hint=node.name)


@onnx_emitter("tile")
def _tile(ctx: OnnxContext, node: Node) -> None:
    ctx.add("Tile", [ctx.name(node.inputs[0]), ctx.ints(list(node.attrs["repeats"]), "repeats")],
            [ctx.out(node)], hint=node.name)


@onnx_emitter("split")
def _split(ctx: OnnxContext, node: Node) -> None:
    outs = [ctx.name(v) for v in node.outputs]
    ctx.add("Split", [ctx.name(node.inputs[0]), ctx.ints(list(node.attrs["sizes"]), "split")], outs,
            hint=node.name, axis=node.attrs["axis"])
