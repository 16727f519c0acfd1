"""ONNX ``RNN``/``LSTM``/``GRU`` -> IR ``rnn``/``lstm``/``gru``: the inverse of the ONNX emitter.

The IR ops carry ONNX's gate order, ``[Wb, Rb]`` biases and time-major layout
(kcc.ops.recurrent), so one ONNX direction is one IR op on the weights' slice
``[d]``; ``bidirectional`` is a forward and a reverse op whose outputs are
stacked on the ``num_directions`` axis::

    Y, Y_h, Y_c = LSTM(X, W, R, B, , h0, c0) {direction=bidirectional}
    ->  y_f, h_f, c_f = lstm(X, W[0], R[0], B[0], h0[0], c0[0]) {direction=forward}
        y_r, h_r, c_r = lstm(X, W[1], R[1], B[1], h0[1], c0[1]) {direction=reverse}
        Y = concat(unsqueeze(y_f, 1), unsqueeze(y_r, 1), axis=1); Y_h, Y_c likewise on axis 0

``layout=1`` (batch-major) adds a transpose on the way in and out. Activations
are read by kcc.formats.onnx_recurrent, the module the emitter writes with.
What the IR cannot hold is refused by name: ``clip``, LSTM ``input_forget`` and
non-zero peepholes ``P``, and ``sequence_lens`` other than the full length.

An initial state that is zeros by construction is dropped (the IR op's absent
state is zeros): with a symbolic batch tf2onnx builds it as
``Expand(0, Concat(Gather(Shape(x), 0), [H]))``, which would otherwise stay in
the graph as four shape nodes feeding ``h0``. ``is_zeros`` also serves the
``Loop`` importer (onnx_loop.py).
"""
from __future__ import annotations

import numpy as np

from kcc.errors import UnsupportedOpError
from kcc.formats.onnx_recurrent import GATES, IR_OP, ir_activation_attrs
from kcc.frontends.onnx.registry import OnnxNodeContext, onnx_op
from kcc.ir import Graph, Value

_DIRECTIONS = {"forward": ("forward",), "reverse": ("reverse",), "bidirectional": ("forward", "reverse")}
_X, _W, _R, _B, _SEQ_LENS, _H0, _C0, _P = range(8)


def _refuse(ctx: OnnxNodeContext, what: str) -> UnsupportedOpError:
    node = ctx.node
    return UnsupportedOpError(f"ONNX node {node.name or node.op_type!r} ({node.op_type}): {what}")


def _check_unsupported(ctx: OnnxNodeContext, op: str, steps: int | str) -> None:
    """Refuse the ONNX features the IR recurrent ops have no meaning for."""
    if ctx.attr("clip") is not None:
        raise _refuse(ctx, f"attribute clip={ctx.attr('clip')} is not supported (kcc's recurrent ops do not clip "
                           "pre-activations); export without clip")
    if op == "lstm" and ctx.attr("input_forget", 0):
        raise _refuse(ctx, "attribute input_forget=1 (coupled input and forget gates) is not supported")
    if op == "lstm" and ctx.has(_P):
        if not ctx.is_const(_P) or np.any(ctx.const(_P)):
            raise _refuse(ctx, "input P (peephole weights) is not supported unless it is all zeros")
    if ctx.has(_SEQ_LENS):
        if not ctx.is_const(_SEQ_LENS):
            raise _refuse(ctx, "input sequence_lens must be a constant equal to the sequence length; kcc's "
                               "recurrent ops run every sequence for all steps (no per-sequence lengths)")
        lens = ctx.const(_SEQ_LENS)
        if not isinstance(steps, int) or np.any(lens != steps):
            raise _refuse(ctx, f"input sequence_lens {lens.tolist()} differs from the sequence length {steps}; "
                               "kcc's recurrent ops run every sequence for all steps (no per-sequence lengths)")


# Ops that move or broadcast entries without changing them: zeros stay zeros.
_ENTRY_PRESERVING = ("identity", "cast", "unsqueeze", "squeeze", "reshape", "reshape_to", "flatten", "transpose",
                     "slice", "slice_to", "expand", "tile")


def is_zeros(graph: Graph, v: Value) -> bool:
    """Whether every entry of ``v`` is zero by construction (a zero constant or fill, moved or broadcast)."""
    while True:
        if v.is_const:
            return not np.any(v.const)
        node = graph.producer(v)
        if node is None:
            return False
        if node.op == "fill_like":
            return node.attrs["value"] == 0
        if node.op == "mul":  # Expand of a zero to a known shape: zero * ones
            a, b = node.inputs
            return (is_zeros(graph, a) and _finite(graph, b)) or (is_zeros(graph, b) and _finite(graph, a))
        if node.op not in _ENTRY_PRESERVING:
            return False
        v = node.inputs[0]


def _finite(graph: Graph, v: Value) -> bool:
    """Whether ``v`` is a constant or fill with no inf or NaN (so zero times it is zero)."""
    node = graph.producer(v)
    if node is not None and node.op == "fill_like":
        return bool(np.isfinite(node.attrs["value"]))
    return v.is_const and bool(np.all(np.isfinite(v.const)))


def _state(ctx: OnnxNodeContext, i: int, layout: int, d: int) -> Value | None:
    """Initial state input ``i`` of direction ``d`` as (N, H), or None when absent or zeros."""
    if not ctx.has(i):
        return None
    if (isinstance(ctx.inputs[i], Value) and is_zeros(ctx.graph, ctx.inputs[i])) or \
            (ctx.is_const(i) and not np.any(ctx.const(i))):
        return None
    if ctx.is_const(i):
        s = ctx.const(i)
        return ctx.op.const(np.ascontiguousarray(s[:, d] if layout else s[d]))
    v = ctx.value(i)
    axis = 1 if layout else 0
    return ctx.op.squeeze(ctx.op.slice(v, starts=(d,), ends=(d + 1,), axes=(axis,)), axes=(axis,))


def _stack(ctx: OnnxNodeContext, parts: list[Value], axis: int) -> Value:
    """The per-direction values with a num_directions axis at ``axis``."""
    parts = [ctx.op.unsqueeze(p, axes=(axis,)) for p in parts]
    return parts[0] if len(parts) == 1 else ctx.op.concat(*parts, axis=axis)


@onnx_op("RNN", "LSTM", "GRU")
def recurrent(ctx: OnnxNodeContext) -> list[Value]:
    op = IR_OP[ctx.node.op_type]
    direction = ctx.attr("direction", "forward")
    if direction not in _DIRECTIONS:
        raise _refuse(ctx, f"attribute direction={direction!r} is not one of {sorted(_DIRECTIONS)}")
    layout = ctx.attr("layout", 0)
    if layout not in (0, 1):
        raise _refuse(ctx, f"attribute layout={layout} is not 0 or 1")
    x = ctx.value(_X)
    if x.rank != 3:
        raise _refuse(ctx, f"input X must be 3-D, got shape {x.shape}")
    if layout:
        x = ctx.op.transpose(x, perm=(1, 0, 2))  # (N, T, F) -> (T, N, F)
    _check_unsupported(ctx, op, x.shape[0])
    w, r = ctx.const(_W), ctx.const(_R)
    b = ctx.const(_B) if ctx.has(_B) else None
    dirs = _DIRECTIONS[direction]
    hidden = r.shape[-1]
    if ctx.attr("hidden_size", hidden) != hidden or w.shape[0] != len(dirs) or \
            r.shape != (len(dirs), GATES[op] * hidden, hidden):
        raise _refuse(ctx, f"weights W {w.shape} and R {r.shape} do not fit hidden_size="
                           f"{ctx.attr('hidden_size')} with {len(dirs)} direction(s)")
    where = f"ONNX node {ctx.node.name or ctx.node.op_type!r} ({ctx.node.op_type})"
    acts = ir_activation_attrs(op, ctx.attrs, len(dirs), where)
    extra = {"reset_after": bool(ctx.attr("linear_before_reset", 0))} if op == "gru" else {}
    states = (_H0, _C0) if op == "lstm" else (_H0,)
    results = []
    for d, sense in enumerate(dirs):
        bias = ctx.op.const(b[d]) if b is not None else None
        ins = [x, ctx.op.const(w[d]), ctx.op.const(r[d]), bias] + [_state(ctx, i, layout, d) for i in states]
        results.append(getattr(ctx.op, op)(*ins, direction=sense, **acts[d], **extra))
    y = _stack(ctx, [res[0] for res in results], 1)                  # (T, D, N, H)
    finals = [_stack(ctx, [res[k] for res in results], 0) for k in range(1, len(results[0]))]  # (D, N, H)
    if layout:
        y = ctx.op.transpose(y, perm=(2, 0, 1, 3))                   # (N, T, D, H)
        finals = [ctx.op.transpose(f, perm=(1, 0, 2)) for f in finals]  # (N, D, H)
    return [y] + finals
