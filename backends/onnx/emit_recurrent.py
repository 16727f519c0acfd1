"""ONNX emitters for the recurrent ops: ``rnn`` -> RNN, ``lstm`` -> LSTM, ``gru`` -> GRU.

The IR ops were declared on ONNX's conventions (time-major ``layout=0``, gate
order, ``[Wb, Rb]`` biases, position-aligned reverse outputs; see
kcc.ops.recurrent), so each is one ONNX node: the weights gain the leading
``num_directions`` axis, the initial states an ``Unsqueeze``, and the outputs a
``Squeeze`` of that axis (a reshape, no data movement). Outputs nobody reads
are left unnamed so the runtime need not produce them.

Activations use ONNX's recurrent activation names, with their parameters in
``activation_alpha/beta`` (kcc.formats.onnx_recurrent, which the ONNX importer
reads back). A node using an activation ONNX's recurrent ops cannot name
(selu, silu, gelu, ...) becomes a ``Scan`` over time instead
(emit_recurrent_scan.py), as is every ``conv_lstm`` node.
"""
from __future__ import annotations

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.backends.onnx.emit_recurrent_scan import emit_cell_scan, emit_conv_lstm_scan
from kcc.formats.onnx_recurrent import ONNX_ACTIVATIONS, ONNX_OP, activation_names, onnx_activation_attrs
from kcc.ir import Node, Value


def _with_direction_axis(ctx: OnnxContext, v: Value | None) -> str:
    """The value with a leading size-1 num_directions axis ('' when absent)."""
    if v is None:
        return ""
    if v.is_const:
        return ctx.const(np.ascontiguousarray(v.const[None]), f"{v.name}_onnx")
    return ctx.add("Unsqueeze", [ctx.name(v), ctx.ints([0], "axes")], hint=f"{v.name}_dir")[0]


def _used(ctx: OnnxContext, v: Value) -> bool:
    return bool(ctx.graph.uses(v)) or ctx.graph.is_output(v)


@onnx_emitter("rnn", "lstm", "gru")
def _recurrent(ctx: OnnxContext, node: Node) -> None:
    if not all(name in ONNX_ACTIVATIONS for name in activation_names(node.op, node.attrs)):
        emit_cell_scan(ctx, node)
        return
    x, w, r, b, *states = node.inputs
    hidden = r.shape[1]
    inputs = [ctx.name(x), _with_direction_axis(ctx, w), _with_direction_axis(ctx, r),
              _with_direction_axis(ctx, b), ""] + [_with_direction_axis(ctx, s) for s in states]
    while inputs[-1] == "":
        inputs.pop()
    # ONNX outputs: Y (T, 1, N, H), Y_h (1, N, H), Y_c (1, N, H); the IR drops the direction axes.
    raw = [ctx.fresh(f"{v.name}_onnx") if _used(ctx, v) else "" for v in node.outputs]
    while raw and raw[-1] == "":
        raw.pop()
    attrs = {"hidden_size": int(hidden), "direction": node.attrs["direction"],
             **onnx_activation_attrs(node.op, node.attrs)}
    if node.op == "gru":
        attrs["linear_before_reset"] = int(node.attrs["reset_after"])
    ctx.add(ONNX_OP[node.op], inputs, raw or [ctx.fresh(f"{node.name}_y")], hint=node.name, **attrs)
    for i, name in enumerate(raw):
        if name:
            ctx.add("Squeeze", [name, ctx.ints([1 if i == 0 else 0], "axes")], [ctx.out(node, i)],
                    hint=f"{node.name}_squeeze")


@onnx_emitter("conv_lstm")
def _conv_lstm(ctx: OnnxContext, node: Node) -> None:
    """ONNX has no convolutional LSTM: always a Scan over time."""
    emit_conv_lstm_scan(ctx, node)
