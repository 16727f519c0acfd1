"""ONNX emitters for the recurrent ops: ``rnn`` -> RNN, ``lstm`` -> LSTM, ``gru`` -> GRU.

The IR ops were declared on ONNX's conventions (time-major ``layout=0``, gate
order, ``[Wb, Rb]`` biases, position-aligned reverse outputs; see
kcc.ops.recurrent), so each is one ONNX node: the weights gain the leading
``num_directions`` axis, the initial states an ``Unsqueeze``, and the outputs a
``Squeeze`` of that axis (a reshape, no data movement). Outputs nobody reads
are left unnamed so the runtime need not produce them.

Activations use ONNX's recurrent activation names; parameters go in
``activation_alpha/beta``, consumed in activation order by the functions that
take them (onnxruntime's reading of the spec). A node using an activation ONNX's
recurrent ops cannot name (selu, silu, gelu, ...) becomes a ``Scan`` over time
instead (emit_recurrent_scan.py), as is every ``conv_lstm`` node.
"""
from __future__ import annotations

import numpy as np

from kcc.backends.onnx.context import OnnxContext, onnx_emitter
from kcc.backends.onnx.emit_recurrent_scan import emit_cell_scan, emit_conv_lstm_scan
from kcc.formats.onnx_ops import BY_IR
from kcc.ir import Node, Value
from kcc.ops.recurrent import activation_attrs

_ONNX_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# The IR activations ONNX's RNN/LSTM/GRU can name: by their rows' ONNX names in
# kcc.formats.onnx_ops, and linear as "Affine" (alpha * x + beta).
ONNX_ACTIVATIONS: tuple[str, ...] = ("linear", "relu", "tanh", "sigmoid", "hard_sigmoid", "softsign", "softplus",
                                     "elu", "leaky_relu")


def _activation_names(node: Node) -> list[str]:
    """The ONNX op's activation list: (f,) for RNN, (f, g) for GRU, (f, g, h) for LSTM."""
    if node.op == "rnn":
        return [node.attrs["activation"]]
    return [node.attrs["recurrent_activation"], node.attrs["activation"]] + \
        ([node.attrs["activation"]] if node.op == "lstm" else [])


def _activation_attrs(node: Node) -> dict:
    """``activations`` and their ``activation_alpha/beta``, read from the IR op's attributes.

    A function's parameters are its IR attributes spelled ``alpha``/``beta`` in
    the shared table (HardSigmoid: both, Elu and LeakyRelu: alpha), with the
    values the recurrent op gives them (kcc.ops.recurrent.activation_attrs).
    """
    acts, alphas, betas = [], [], []
    for name in _activation_names(node):
        if name == "linear":
            acts.append("Affine")
            alphas.append(1.0)
            betas.append(0.0)
            continue
        row = BY_IR[name]
        values = activation_attrs(name, node.attrs)
        acts.append(row.onnx)
        for ir_attr, a in row.attrs.items():
            (alphas if a.name == "alpha" else betas).append(float(values[ir_attr]))
    return {"activations": acts, "activation_alpha": alphas or None, "activation_beta": betas or None}


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
    if not all(name in ONNX_ACTIVATIONS for name in _activation_names(node)):
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
    attrs = {"hidden_size": int(hidden), "direction": node.attrs["direction"], **_activation_attrs(node)}
    if node.op == "gru":
        attrs["linear_before_reset"] = int(node.attrs["reset_after"])
    ctx.add(_ONNX_OP[node.op], inputs, raw or [ctx.fresh(f"{node.name}_y")], hint=node.name, **attrs)
    for i, name in enumerate(raw):
        if name:
            ctx.add("Squeeze", [name, ctx.ints([1 if i == 0 else 0], "axes")], [ctx.out(node, i)],
                    hint=f"{node.name}_squeeze")


@onnx_emitter("conv_lstm")
def _conv_lstm(ctx: OnnxContext, node: Node) -> None:
    """ONNX has no convolutional LSTM: always a Scan over time."""
    emit_conv_lstm_scan(ctx, node)
