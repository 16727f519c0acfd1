"""ONNX emitters for data movement: transpose, reshape, flatten, concat, pad, slice, ..."""
from __future__ import annotations

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.ir import Node


@onnx_emitter("transpose")
def _transpose(ctx: OnnxContext, node: Node) -> None:
    ctx.add("Transpose", ctx.ins(node), [ctx.out(node)], hint=node.name, perm=list(node.attrs["perm"]))


@onnx_emitter("reshape")
def _reshape(ctx: OnnxContext, node: Node) -> None:
    shape = ctx.ints(list(node.attrs["shape"]), f"{node.name}_shape")
    ctx.add("Reshape", [ctx.name(node.inputs[0]), shape], [ctx.out(node)], hint=node.name)


@onnx_emitter("flatten")
def _flatten(ctx: OnnxContext, node: Node) -> None:
    ctx.add("Flatten", ctx.ins(node), [ctx.out(node)], hint=node.name, axis=node.attrs["axis"])


@onnx_emitter("concat")
def _concat(ctx: OnnxContext, node: Node) -> None:
    ctx.add("Concat", ctx.ins(node), [ctx.out(node)], hint=node.name, axis=node.attrs["axis"])


@onnx_emitter("pad")
def _pad(ctx: OnnxContext, node: Node) -> None:
    x = node.inputs[0]
    ins = [ctx.name(x), ctx.ints(list(node.attrs["pads"]), f"{node.name}_pads")]
    if node.attrs["mode"] == "constant" and node.attrs["value"] != 0.0:
        ins.append(ctx.const(np.asarray(node.attrs["value"], dtype=np.float32), f"{node.name}_value"))
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


@onnx_emitter("squeeze", "unsqueeze")
def _squeeze(ctx: OnnxContext, node: Node) -> None:
    op = {"squeeze": "Squeeze", "unsqueeze": "Unsqueeze"}[node.op]
    ctx.add(op, [ctx.name(node.inputs[0]), ctx.ints(list(node.attrs["axes"]), "axes")], [ctx.out(node)],
            hint=node.name)


@onnx_emitter("tile")
def _tile(ctx: OnnxContext, node: Node) -> None:
    ctx.add("Tile", [ctx.name(node.inputs[0]), ctx.ints(list(node.attrs["repeats"]), "repeats")],
            [ctx.out(node)], hint=node.name)


@onnx_emitter("gather")
def _gather(ctx: OnnxContext, node: Node) -> None:
    ctx.add("Gather", ctx.ins(node), [ctx.out(node)], hint=node.name, axis=node.attrs["axis"])


@onnx_emitter("split")
def _split(ctx: OnnxContext, node: Node) -> None:
    outs = [ctx.name(v) for v in node.outputs]
    ctx.add("Split", [ctx.name(node.inputs[0]), ctx.ints(list(node.attrs["sizes"]), "split")], outs,
            hint=node.name, axis=node.attrs["axis"])
