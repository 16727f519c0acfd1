"""The IR's one text form: one node a line.

    graph mnist(%input: f32[N,28,28,1]) -> (%dense_1)
      %w = const f32[10,32] [-0.31, 0.05, ...]
      %conv2d: f32[N,32,24,24] = conv(%input_t, %w, %b) {strides=(1, 1)}
      return %dense_1

Attributes equal to their op's default are left out; constants show their type
and a few leading values (enough to tell two apart in a diff).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from kcc.ir import Graph, Node, Value
from kcc.ops.registry import get_op


def _fmt_attr(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt_attr(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


def _is_default(v: Any, default: Any) -> bool:
    """Equal to the default, telling -0.0 from +0.0 (a pad value -0.0 is a choice, see lower_onnx_pad_max_pool)."""
    if isinstance(v, float) and isinstance(default, float):
        return v == default and math.copysign(1.0, v) == math.copysign(1.0, default)
    return v == default


def _fmt_const(v: Value) -> str:
    flat = np.asarray(v.const).reshape(-1)
    head = ", ".join(f"{x:.4g}" if isinstance(x, (float, np.floating)) else str(x) for x in flat[:4].tolist())
    more = ", ..." if flat.size > 4 else ""
    return f"[{head}{more}]"


def format_node(node: Node) -> str:
    opdef = get_op(node.op)
    outs = ", ".join(f"%{v.name}: {v.type}" for v in node.outputs)
    args = ", ".join("_" if v is None else f"%{v.name}" for v in node.inputs)
    attrs = {k: v for k, v in node.attrs.items() if not _is_default(v, opdef.attrs[k].default)}
    text = f"{outs} = {node.op}({args})"
    if attrs:
        text += " {" + ", ".join(f"{k}={_fmt_attr(v)}" for k, v in attrs.items()) + "}"
    return text


def format_graph(graph: Graph, *, consts: bool = True) -> str:
    ins = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    outs = ", ".join(f"%{v.name}" if v.name == n else f"%{v.name} as {n}"
                     for v, n in zip(graph.outputs, graph.output_names))
    lines = [f"graph {graph.name}({ins}) -> ({outs}) {{"]
    if consts:
        for v in graph.constants():
            lines.append(f"  %{v.name} = const {v.type} {_fmt_const(v)}")
    for node in graph.nodes():
        # The origin is shown only when the node's name does not already say it.
        said = node.origin is None or node.name == node.origin or node.name.startswith(node.origin + "/")
        origin = "" if said else f"  # {node.origin}"
        lines.append(f"  {format_node(node)}{origin}")
    lines.append(f"  return {outs}")
    lines.append("}")
    return "\n".join(lines) + "\n"
