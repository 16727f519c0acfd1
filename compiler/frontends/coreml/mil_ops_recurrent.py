"""MIL ``lstm``, ``gru`` and ``rnn`` -> the IR's recurrent ops.

Both are time-major: x (T, N, F). MIL stacks gates as LSTM ``[i, f, o, z]``,
GRU ``[r, o, z]`` (o = the candidate); the IR as LSTM ``i o f c`` and GRU
``z r h``, so the weight rows are reordered once, here. MIL's LSTM ``bias`` is
the sum of the input and hidden biases: it becomes the IR's ``Wb`` with ``Rb``
zero. MIL's GRU candidate is ``act(W_o x + b_o + r * (W_ho h) + b_ho)`` (reset
applied after the matrix product, hidden bias outside it): the IR's
``reset_after=True`` with every bias in ``Wb``. iOS18's ``reset_after=True``
with ``input_bias`` is PyTorch's GRU: ``Wb = input_bias``, ``Rb = bias``.
``bidirectional`` becomes a forward and a reverse op whose outputs are
concatenated on the feature axis; ``output_sequence=False`` returns the last
state with a leading axis of 1, as MIL does.
"""
from __future__ import annotations

import numpy as np

from kcc.frontends.coreml.mil_registry import MilOpContext, mil_op
from kcc.ir import Value

_ACTIVATIONS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "linear": "linear",
                "sigmoid_hard": "hard_sigmoid"}


def _activation(ctx: MilOpContext, param: str, default: str) -> str:
    name = str(ctx.scalar(param, default)).lower()
    if name not in _ACTIVATIONS:
        raise ctx.fail(f"{param}={name!r} is not supported by kcc ({', '.join(_ACTIVATIONS)})")
    return _ACTIVATIONS[name]


def _blocks(w: np.ndarray, order: list[int]) -> np.ndarray:
    parts = np.split(np.asarray(w), len(order), axis=0)
    return np.concatenate([parts[i] for i in order], axis=0)


def _state(ctx: MilOpContext, param: str, half: int | None) -> Value | None:
    if not ctx.has(param):
        return None
    v = ctx.value(param)
    if v.rank == 3:
        v = ctx.op.squeeze(v, axes=[0])
    if half is not None:
        h = int(v.shape[-1]) // 2
        return ctx.op.slice(v, starts=[half * h], ends=[(half + 1) * h], axes=[1])
    return v


def _run(ctx: MilOpContext, kind: str, order: list[int], attrs: dict, bias_pair) -> list[Value]:
    """Lower one MIL recurrent op; ``bias_pair(suffix)`` returns the IR's (Wb, Rb) for a direction."""
    x = ctx.value("x")
    direction = str(ctx.scalar("direction", "forward"))
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ctx.fail(f"unknown direction {direction!r}")
    runs = [("", "forward"), ("_back", "reverse")] if direction == "bidirectional" else [("", direction)]
    results = []
    for k, (suffix, ir_dir) in enumerate(runs):
        w = ctx.op.const(_blocks(ctx.const("weight_ih" + suffix), order))
        r = ctx.op.const(_blocks(ctx.const("weight_hh" + suffix), order))
        wb, rb = bias_pair(suffix)
        b = ctx.op.const(np.concatenate([_blocks(wb, order), _blocks(rb, order)]).astype(w.const.dtype))
        half = k if direction == "bidirectional" else None
        states = [_state(ctx, "initial_h", half)] + ([_state(ctx, "initial_c", half)] if kind == "lstm" else [])
        results.append(getattr(ctx.op, kind)(x, w, r, b, *states, direction=ir_dir, **attrs))
    if len(results) == 1:
        outs = list(results[0])
    else:
        outs = [ctx.op.concat(results[0][0], results[1][0], axis=2)]
        outs += [ctx.op.concat(a, b, axis=1) for a, b in zip(results[0][1:], results[1][1:])]
    if not bool(ctx.scalar("output_sequence", False)):
        outs[0] = ctx.op.unsqueeze(outs[1], axes=[0])
    return outs


def _zeros_like(v: np.ndarray) -> np.ndarray:
    return np.zeros_like(np.asarray(v))


@mil_op("lstm")
def lstm(ctx: MilOpContext):
    act, cell = _activation(ctx, "activation", "tanh"), _activation(ctx, "cell_activation", "tanh")
    if act != cell:
        raise ctx.fail(f"cell_activation {cell!r} differs from activation {act!r}; kcc's lstm uses one for both")
    if ctx.has("clip"):
        raise ctx.fail("lstm with clip is not supported by kcc")
    for p in ("peephole", "peephole_back"):
        if ctx.has(p) and np.any(ctx.const(p)):
            raise ctx.fail("lstm with peepholes is not supported by kcc")
    hidden4 = int(np.asarray(ctx.const("weight_ih")).shape[0])

    def bias_pair(suffix: str):
        b = ctx.const("bias" + suffix) if ctx.has("bias" + suffix) else np.zeros(hidden4, np.float32)
        return b, _zeros_like(b)

    attrs = {"activation": act, "recurrent_activation": _activation(ctx, "recurrent_activation", "sigmoid")}
    if attrs["recurrent_activation"] == "hard_sigmoid":
        attrs["hard_sigmoid_alpha"] = 0.2
    return tuple(_run(ctx, "lstm", [0, 2, 1, 3], attrs, bias_pair))


@mil_op("gru")
def gru(ctx: MilOpContext):
    hidden3 = int(np.asarray(ctx.const("weight_ih")).shape[0])
    zeros = np.zeros(hidden3, np.float32)
    reset_after = bool(ctx.scalar("reset_after", False))

    def bias_pair(suffix: str):
        b = np.asarray(ctx.const("bias" + suffix, zeros))
        ib = np.asarray(ctx.const("input_bias" + suffix, zeros)).astype(b.dtype)
        return (ib, b) if reset_after else (ib + b, _zeros_like(b))

    attrs = {"activation": _activation(ctx, "activation", "tanh"),
             "recurrent_activation": _activation(ctx, "recurrent_activation", "sigmoid"), "reset_after": True}
    return tuple(_run(ctx, "gru", [2, 0, 1], attrs, bias_pair))


@mil_op("rnn")
def rnn(ctx: MilOpContext):
    hidden = int(np.asarray(ctx.const("weight_ih")).shape[0])

    def bias_pair(suffix: str):
        b = np.asarray(ctx.const("bias" + suffix, np.zeros(hidden, np.float32)))
        return b, _zeros_like(b)

    return tuple(_run(ctx, "rnn", [0], {"activation": _activation(ctx, "activation", "tanh")}, bias_pair))
