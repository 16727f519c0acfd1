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
from kcc.ir import Node, Value

_ONNX_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# IR activation -> (ONNX name, alpha or None, beta or None).
ONNX_ACTIVATIONS: dict[str, tuple[str, float | None, float | None]] = {
    "linear": ("Affine", 1.0, 0.0),
    "relu": ("Relu", None, None),
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),  # alpha: the node's hard_sigmoid_alpha
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
    "elu": ("Elu", 1.0, None),
    "leaky_relu": ("LeakyRelu", 0.2, None),
}


def _activation_names(node: Node) -> list[str]:
    """The ONNX op's activation list: (f,) for RNN, (f, g) for GRU, (f, g, h) for LSTM."""
    if node.op == "rnn":
        return [node.attrs["activation"]]
    return [node.attrs["recurrent_activation"], node.attrs["activation"]] + \
        ([node.attrs["activation"]] if node.op == "lstm" else [])


def _activation_attrs(node: Node) -> dict:
    acts, alphas, betas = [], [], []
    for name in _activation_names(node):
        onnx_name, alpha, beta = ONNX_ACTIVATIONS[name]
        if name == "hard_sigmoid":
            alpha = node.attrs["hard_sigmoid_alpha"]
        acts.append(onnx_name)
        alphas += [] if alpha is None else [alpha]
        betas += [] if beta is None else [beta]
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
