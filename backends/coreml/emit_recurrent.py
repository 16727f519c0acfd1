"""Core ML emitters for the recurrent ops: rnn -> simpleRecurrent, lstm -> uniDirectionalLSTM, gru -> gru.

The IR's recurrent ops are time-major, ``(T, N, F)``, and Core ML's recurrent
layers read ``[Seq, Batch, C, 1, 1]``: in the rank-5 layout a time-major value
is exactly that blob, with T on the Seq axis (``sequence_values`` finds them).
The frontend's transposes around a recurrent op, ``(N, F, T) <-> (T, N, F)``,
are then ``permute`` layers swapping Seq and W. In the ND layout the sequence
gets two unit axes before the layer and loses them after; states ``(N, H)``
are ``[1, N, H, 1, 1]`` around the layer.

Core ML keeps one bias per gate: the IR's input and recurrence biases are
summed. Its GRU applies the reset gate before the recurrence matrix, Keras's
``reset_after=False``; a ``reset_after=True`` GRU (Keras 3's default) and
ConvLSTM have no Core ML layer: passes/lower_coreml_recurrent.py unrolled them
over the static time axis before emission. Gate activations are rows of
kcc.formats.coreml_layers.ACTIVATIONS.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.backends.coreml.context import CoremlContext, coreml_emitter
from kcc.backends.coreml.emit_activation import set_activation
from kcc.formats.coreml_layers import ACTIVATIONS, RECURRENT_ACTIVATIONS
from kcc.ir import Graph, Node
from kcc.ops.recurrent import activation_attrs

RECURRENT_OPS = ("rnn", "lstm", "gru")

def sequence_values(graph: Graph) -> set[str]:
    """Names of the time-major values: recurrent inputs/sequence outputs and concats joining them."""
    seq: set[str] = set()
    for node in graph.nodes():
        if node.op in RECURRENT_OPS and not _unrolled(node):
            seq.add(node.inputs[0].name)
            seq.add(node.outputs[0].name)
    changed = True
    while changed:
        changed = False
        for node in graph.nodes():
            if node.op == "concat" and node.outputs[0].rank == 3 and node.attrs["axis"] % 3 == 2:
                names = [v.name for v in node.inputs] + [node.outputs[0].name]
            elif node.op in _ELEMENTWISE and node.outputs[0].rank == 3:
                # a Bidirectional merge (sum/ave/mul) or an activation on a sequence stays a sequence
                tensors = [v for v in node.inputs if v is not None and not v.is_const]
                if not tensors or not all(v.name in seq for v in tensors):
                    continue
                names = [v.name for v in tensors] + [node.outputs[0].name]
            else:
                continue
            if any(n in seq for n in names) and not all(n in seq for n in names):
                seq.update(names)
                changed = True
    return seq


# Ops that keep a time-major sequence a sequence in the rank-5 layout (a
# Bidirectional merge, an activation on a sequence).
_ELEMENTWISE = frozenset(("add", "sub", "mul", "div", "max", "min", "gelu", "prelu") + tuple(ACTIVATIONS))


def _activation(ctx: CoremlContext, node: Node, msg: Any, name: str) -> None:
    """Fill a gate's ``ActivationParams`` from the row of IR activation ``name``."""
    if name != "linear" and name not in RECURRENT_ACTIVATIONS:
        raise ctx.fail(node, f"recurrent activation {name!r} has no Core ML form; use "
                             f"{', '.join(('linear',) + RECURRENT_ACTIVATIONS)}")
    set_activation(msg, name, activation_attrs(name, node.attrs) if name != "linear" else {})


def _gates(node: Node, n: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray] | None]:
    """Per-gate W rows, R rows and summed biases, in the IR's gate order."""
    w, r, b = node.inputs[1], node.inputs[2], node.inputs[3]
    ws = np.split(np.asarray(w.const, np.float32), n)
    rs = np.split(np.asarray(r.const, np.float32), n)
    if b is None:
        return ws, rs, None
    bias = np.asarray(b.const, np.float32)
    half = bias.size // 2
    return ws, rs, np.split(bias[:half] + bias[half:], n)


def _io(ctx: CoremlContext, node: Node, n_states: int) -> tuple[list[str], list[str], list[tuple[str, str, list]]]:
    """Layer inputs and outputs; in ND, the (blob, target, axes) squeezes to apply afterwards."""
    x = node.inputs[0]
    states = [v for v in node.inputs[4:4 + n_states]]
    if any(s is not None for s in states) and states[0] is None:
        raise ctx.fail(node, "an initial cell state without an initial hidden state")
    states = [s for s in states if s is not None]
    outs = [ctx.out(node, i) for i in range(len(node.outputs))]
    if not ctx.nd:
        return [ctx.name(x)] + [ctx.name(s) for s in states], outs, []
    ins = [_expand(ctx, ctx.name(x), [3, 4])] + [_expand(ctx, ctx.name(s), [0, 3, 4]) for s in states]
    raw = [ctx.tmp(f"raw{i}") for i in range(len(outs))]
    squeezes = [(raw[0], outs[0], [3, 4])] + [(r, o, [0, 3, 4]) for r, o in zip(raw[1:], outs[1:])]
    return ins, raw, squeezes


def _expand(ctx: CoremlContext, blob: str, axes: list[int]) -> str:
    out = ctx.tmp("rank5")
    _, p = ctx.layer("expandDims", [blob], out)
    p.axes.extend(axes)
    return out


def _finish(ctx: CoremlContext, squeezes: list[tuple[str, str, list]]) -> None:
    for src, dst, axes in squeezes:
        _, p = ctx.layer("squeeze", [src], dst)
        p.axes.extend(axes)


def _check(ctx: CoremlContext, node: Node) -> None:
    for v in node.inputs[1:4]:
        if v is not None and not v.is_const:
            raise ctx.fail(node, "recurrent weights must be constants")
    if ctx.nd:
        ctx.require(4, node, "expandDims/squeeze around a recurrent layer")


@coreml_emitter("rnn")
def _rnn(ctx: CoremlContext, node: Node) -> None:
    _check(ctx, node)
    ins, outs, squeezes = _io(ctx, node, 1)
    (w,), (r,), b = _gates(node, 1)
    _, p = ctx.layer("simpleRecurrent", ins, outs)
    p.inputVectorSize, p.outputVectorSize = int(w.shape[1]), int(w.shape[0])
    _activation(ctx, node, p.activation, node.attrs["activation"])
    p.sequenceOutput = True
    p.reverseInput = node.attrs["direction"] == "reverse"
    ctx.weights(p.weightMatrix, w)
    ctx.weights(p.recursionMatrix, r)
    if b is not None:
        p.hasBiasVector = True
        ctx.weights(p.biasVector, b[0])
    _finish(ctx, squeezes)


@coreml_emitter("lstm")
def _lstm(ctx: CoremlContext, node: Node) -> None:
    _check(ctx, node)
    ins, outs, squeezes = _io(ctx, node, 2)
    ws, rs, bs = _gates(node, 4)
    gate = {"i": 0, "o": 1, "f": 2, "c": 3}  # IR order i o f c
    _, p = ctx.layer("uniDirectionalLSTM", ins, outs)
    p.inputVectorSize, p.outputVectorSize = int(ws[0].shape[1]), int(ws[0].shape[0])
    for name in (node.attrs["recurrent_activation"], node.attrs["activation"], node.attrs["activation"]):
        _activation(ctx, node, p.activations.add(), name)
    p.params.sequenceOutput = True
    p.params.hasBiasVectors = bs is not None
    p.params.cellClipThreshold = 50000.0
    p.reverseInput = node.attrs["direction"] == "reverse"
    wp = p.weightParams
    for coreml, ir in (("inputGate", "i"), ("forgetGate", "f"), ("blockInput", "c"), ("outputGate", "o")):
        ctx.weights(getattr(wp, coreml + "WeightMatrix"), ws[gate[ir]])
        ctx.weights(getattr(wp, coreml + "RecursionMatrix"), rs[gate[ir]])
        if bs is not None:
            ctx.weights(getattr(wp, coreml + "BiasVector"), bs[gate[ir]])
    _finish(ctx, squeezes)


def _unrolled(node: Node) -> bool:
    return node.op == "gru" and node.attrs["reset_after"]


@coreml_emitter("gru")
def _gru(ctx: CoremlContext, node: Node) -> None:
    _check(ctx, node)
    if node.attrs["reset_after"]:
        raise ctx.fail(node, "a GRU with reset_after=True has no Core ML layer (the gru layer resets before the "
                             "recurrence) and lower_coreml_recurrent unrolls only a static time axis with constant "
                             "weights; give the input a fixed sequence length, or use reset_after=False")
    ins, outs, squeezes = _io(ctx, node, 1)
    ws, rs, bs = _gates(node, 3)   # IR order z r h
    _, p = ctx.layer("gru", ins, outs)
    p.inputVectorSize, p.outputVectorSize = int(ws[0].shape[1]), int(ws[0].shape[0])
    for name in (node.attrs["recurrent_activation"], node.attrs["activation"]):
        _activation(ctx, node, p.activations.add(), name)
    p.sequenceOutput = True
    p.hasBiasVectors = bs is not None
    p.reverseInput = node.attrs["direction"] == "reverse"
    for coreml, k in (("updateGate", 0), ("resetGate", 1), ("outputGate", 2)):
        ctx.weights(getattr(p, coreml + "WeightMatrix"), ws[k])
        ctx.weights(getattr(p, coreml + "RecursionMatrix"), rs[k])
        if bs is not None:
            ctx.weights(getattr(p, coreml + "BiasVector"), bs[k])
    _finish(ctx, squeezes)


@coreml_emitter("conv_lstm")
def _conv_lstm(ctx: CoremlContext, node: Node) -> None:
    raise ctx.fail(node, "ConvLSTM has no Core ML layer and lower_coreml_recurrent unrolls only a static time "
                         "axis with constant weights; give the input a fixed sequence length")


__all__ = ["sequence_values", "RECURRENT_OPS"]
