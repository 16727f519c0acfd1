"""Recurrent NeuralNetwork layers -> the IR's time-major ``rnn`` / ``lstm`` / ``gru`` (kcc.ops.recurrent).

A recurrent layer reads ``[Seq, Batch, F, 1, 1]`` and writes its sequence (or
its last step when ``sequenceOutput`` is off) and its final states
``[1, Batch, H, 1, 1]``. The IR ops take ``(T, N, F)``; their weights stack the
gates in ONNX order with the bias split as ``[Wb, Rb]``:

* uniDirectionalLSTM (and each direction of biDirectionalLSTM): Core ML's
  input/forget/blockInput/output matrices
  ``(H, F)`` -> IR rows i, o, f, c; ``forgetBias`` adds 1 to the forget bias;
  activations ``[f, g, h]`` need ``g == h`` (the IR applies one ``activation``);
* gru: update/reset/output matrices -> IR z, r, h, with ``reset_after=False``
  (Core ML applies the reset gate before the recursion matrix);
* simpleRecurrent: the matrices as they are.

Core ML clips every pre-activation to [-50, 50] and the cell state to
``cellClipThreshold`` (50 when unset); the IR does not. They agree unless a
pre-activation or cell value goes past 50 (and for sigmoid/tanh gates the
clipped and unclipped results are equal to float32 precision).
"""
from __future__ import annotations

import numpy as np

from kcc.formats.coreml_layers import activation_for_layer
from kcc.frontends.coreml.nn_context import NNLayerContext, nn_layer
from kcc.ir import Value
from kcc.ops.activation import HARD_SIGMOID_BETA
from kcc.ops.recurrent import RECURRENT_ACTIVATIONS


def _activation_name(ctx: NNLayerContext, params) -> tuple[str, float | None]:
    """(IR activation name, hard_sigmoid alpha or None) of an ActivationParams in a recurrent layer."""
    variant = params.WhichOneof("NonlinearityType")
    fields = getattr(params, variant) if variant else None
    if variant == "linear" and fields.alpha == 1 and fields.beta == 0:
        return "linear", None
    for row in activation_for_layer(variant or ""):
        if row.ir == "hard_sigmoid" and np.float32(fields.beta) == np.float32(HARD_SIGMOID_BETA):
            return "hard_sigmoid", float(fields.alpha)
        if not row.params and not row.fixed and row.ir in RECURRENT_ACTIVATIONS:
            return row.ir, None
    raise ctx.unsupported(f"the recurrent activation {variant!r}")


def _sequence(ctx: NNLayerContext, v: Value) -> Value:
    """A recurrent layer's input as (T, N, F)."""
    if ctx.nd:
        raise ctx.unsupported("a recurrent layer in an ND (exact array mapping) model")
    if v.rank == 5:
        return ctx.node("squeeze", [v], {"axes": (3, 4)})
    return ctx.node("unsqueeze", [ctx.channels(v)], {"axes": (0,)})


def _state(ctx: NNLayerContext, i: int) -> Value | None:
    return ctx.channels(ctx.inputs[i]) if len(ctx.inputs) > i else None


def _outputs(ctx: NNLayerContext, y: Value, states: list[Value], sequence_output: bool) -> list[Value]:
    first = ctx.node("unsqueeze", [y], {"axes": (3, 4)}) if sequence_output else states[0]
    return [first, *states][: len(ctx.layer.output)]


def _activations(ctx: NNLayerContext, acts, n: int) -> tuple[list[str], float]:
    if len(acts) != n:
        raise ctx.error(f"expects {n} activations, has {len(acts)}")
    names, alpha = [], 0.2
    for a in acts:
        name, hs_alpha = _activation_name(ctx, a)
        names.append(name)
        if hs_alpha is not None:
            alpha = hs_alpha
    return names, alpha


def _lstm_inputs(ctx: NNLayerContext, wp, lp, acts, f: int, h: int) -> tuple[list[Value], dict]:
    """(w, r, b constants, attributes) of one LSTM direction."""
    if lp.hasPeepholeVectors or lp.coupledInputAndForgetGate:
        raise ctx.unsupported("an LSTM with peepholes or a coupled input/forget gate")
    (fa, ga, ha), alpha = _activations(ctx, acts, 3)
    if ga != ha:
        raise ctx.unsupported(f"an LSTM whose cell and output activations differ ({ga}, {ha})")
    gates = ("inputGate", "outputGate", "forgetGate", "blockInput")  # IR order i o f c
    w = np.concatenate([ctx.weights(getattr(wp, f"{g}WeightMatrix"), (h, f), f"{g}WeightMatrix") for g in gates])
    r = np.concatenate([ctx.weights(getattr(wp, f"{g}RecursionMatrix"), (h, h), f"{g}RecursionMatrix")
                        for g in gates])
    if lp.hasBiasVectors:
        b = [ctx.weights(getattr(wp, f"{g}BiasVector"), (h,), f"{g}BiasVector") for g in gates]
    else:
        b = [np.zeros(h, np.float32) for _ in gates]
    if lp.forgetBias:
        b[2] = b[2] + 1.0
    bias = np.concatenate(b + [np.zeros(4 * h, np.float32)])
    consts = [ctx.const(w, "w"), ctx.const(r, "r"), ctx.const(bias, "b")]
    return consts, {"activation": ga, "recurrent_activation": fa, "hard_sigmoid_alpha": alpha}


@nn_layer("uniDirectionalLSTM")
def _lstm(ctx: NNLayerContext) -> list[Value]:
    p = ctx.params
    consts, attrs = _lstm_inputs(ctx, p.weightParams, p.params, p.activations, int(p.inputVectorSize),
                                 int(p.outputVectorSize))
    attrs["direction"] = "reverse" if p.reverseInput else "forward"
    y, hn, cn = ctx.node("lstm", [_sequence(ctx, ctx.x), *consts, _state(ctx, 1), _state(ctx, 2)], attrs,
                         n_outputs=3)
    return _outputs(ctx, y, [hn, cn], p.params.sequenceOutput)


@nn_layer("biDirectionalLSTM")
def _bilstm(ctx: NNLayerContext) -> list[Value]:
    """Two IR lstm ops (forward, reverse); the sequence output concatenates them along the features."""
    p = ctx.params
    f, h = int(p.inputVectorSize), int(p.outputVectorSize)
    if len(p.weightParams) != 2:
        raise ctx.error(f"has {len(p.weightParams)} weight sets, a bidirectional LSTM needs 2")
    x = _sequence(ctx, ctx.x)
    results = []
    for i, (wp, acts, direction) in enumerate(((p.weightParams[0], p.activationsForwardLSTM, "forward"),
                                               (p.weightParams[1], p.activationsBackwardLSTM, "reverse"))):
        consts, attrs = _lstm_inputs(ctx, wp, p.params, acts, f, h)
        results.append(ctx.node("lstm", [x, *consts, _state(ctx, 1 + 2 * i), _state(ctx, 2 + 2 * i)],
                                {**attrs, "direction": direction}, n_outputs=3))
    (yf, hf, cf), (yb, hb, cb) = results
    if p.params.sequenceOutput:
        first = ctx.node("unsqueeze", [ctx.node("concat", [yf, yb], {"axis": 2})], {"axes": (3, 4)})
    else:
        first = ctx.node("concat", [hf, hb], {"axis": 1})
    return [first, hf, cf, hb, cb][: len(ctx.layer.output)]


@nn_layer("gru")
def _gru(ctx: NNLayerContext) -> list[Value]:
    p = ctx.params
    f, h = int(p.inputVectorSize), int(p.outputVectorSize)
    (fa, ga), alpha = _activations(ctx, p.activations, 2)
    gates = ("updateGate", "resetGate", "outputGate")  # IR order z r h
    w = np.concatenate([ctx.weights(getattr(p, f"{g}WeightMatrix"), (h, f), f"{g}WeightMatrix") for g in gates])
    r = np.concatenate([ctx.weights(getattr(p, f"{g}RecursionMatrix"), (h, h), f"{g}RecursionMatrix")
                        for g in gates])
    b = [ctx.weights(getattr(p, f"{g}BiasVector"), (h,), f"{g}BiasVector") if p.hasBiasVectors
         else np.zeros(h, np.float32) for g in gates]
    bias = np.concatenate(b + [np.zeros(3 * h, np.float32)])
    attrs = {"direction": "reverse" if p.reverseInput else "forward", "activation": ga,
             "recurrent_activation": fa, "hard_sigmoid_alpha": alpha, "reset_after": False}
    y, hn = ctx.node("gru", [_sequence(ctx, ctx.x), ctx.const(w, "w"), ctx.const(r, "r"), ctx.const(bias, "b"),
                             _state(ctx, 1)], attrs, n_outputs=2)
    return _outputs(ctx, y, [hn], p.sequenceOutput)


@nn_layer("simpleRecurrent")
def _simple_recurrent(ctx: NNLayerContext) -> list[Value]:
    p = ctx.params
    f, h = int(p.inputVectorSize), int(p.outputVectorSize)
    (act,), alpha = _activations(ctx, [p.activation], 1)
    w = ctx.weights(p.weightMatrix, (h, f), "weightMatrix")
    r = ctx.weights(p.recursionMatrix, (h, h), "recursionMatrix")
    b = ctx.weights(p.biasVector, (h,), "biasVector") if p.hasBiasVector else np.zeros(h, np.float32)
    attrs = {"direction": "reverse" if p.reverseInput else "forward", "activation": act,
             "hard_sigmoid_alpha": alpha}
    y, hn = ctx.node("rnn", [_sequence(ctx, ctx.x), ctx.const(w, "w"), ctx.const(r, "r"),
                             ctx.const(np.concatenate([b, np.zeros(h, np.float32)]), "b"), _state(ctx, 1)],
                     attrs, n_outputs=2)
    return _outputs(ctx, y, [hn], p.sequenceOutput)
