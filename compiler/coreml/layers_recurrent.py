"""Recurrent layers: simpleRecurrent, gru, uniDirectionalLSTM, biDirectionalLSTM.

Inputs follow NeuralNetwork.proto: ``x`` [Seq, Batch, C_in, 1, 1] then the optional
initial states (h0, and c0 for LSTMs; [1, Batch, H, 1, 1]); outputs are ``y``
([Seq or 1, Batch, H, 1, 1]) then the final states. Pre-activations are clipped
to [-50, 50] as the spec's ``clip()`` says. With ``reverseInput`` the sequence is
consumed from the end and each output stays at the position of its input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcc.coreml.layers_activation import apply_activation
from kcc.coreml.registry import LayerContext, layer

_CLIP = np.float32(50.0)


def _sequence(x: np.ndarray, ctx: LayerContext, size: int) -> np.ndarray:
    if x.ndim < 2:
        raise ctx.error(f"needs a [Seq, Batch, C, 1, 1] input, got shape {list(x.shape)}")
    seq = x.reshape(x.shape[0], x.shape[1], -1)
    if seq.shape[2] != size:
        raise ctx.error(f"expects input vectors of size {size}, got shape {list(x.shape)}")
    return seq


def _state(inputs, i: int, batch: int, size: int) -> np.ndarray:
    if len(inputs) > i and inputs[i] is not None:
        return inputs[i].reshape(batch, size).astype(np.float32)
    return np.zeros((batch, size), dtype=np.float32)


def _act(params, x: np.ndarray) -> np.ndarray:
    return apply_activation(params, np.clip(x, -_CLIP, _CLIP))


def _as_blob(values: np.ndarray) -> np.ndarray:
    """[T, B, H] -> [T, B, H, 1, 1]"""
    return values[..., None, None]


def _outputs(ys: list, h, c, sequence_output: bool, reverse: bool):
    if not sequence_output:
        y = h[None]
    else:
        y = np.stack(ys[::-1] if reverse else ys)
    outs = [_as_blob(y), _as_blob(h[None])]
    if c is not None:
        outs.append(_as_blob(c[None]))
    return outs


@layer("simpleRecurrent")
def simple_recurrent(p, inputs, ctx: LayerContext):
    cin, hid = int(p.inputVectorSize), int(p.outputVectorSize)
    x = _sequence(inputs[0], ctx, cin)
    w = ctx.weight(p.weightMatrix, (hid, cin), "weightMatrix")
    r = ctx.weight(p.recursionMatrix, (hid, hid), "recursionMatrix")
    b = ctx.weight(p.biasVector, (hid,), "biasVector") if p.hasBiasVector else 0.0
    h = _state(inputs, 1, x.shape[1], hid)
    steps = x[::-1] if p.reverseInput else x
    ys = []
    for xt in steps:
        h = _act(p.activation, xt @ w.T + h @ r.T + b)
        ys.append(h)
    return _outputs(ys, h, None, p.sequenceOutput, p.reverseInput)[: len(ctx.layer.output)]


@layer("gru")
def gru(p, inputs, ctx: LayerContext):
    cin, hid = int(p.inputVectorSize), int(p.outputVectorSize)
    x = _sequence(inputs[0], ctx, cin)
    f, g = p.activations[0], p.activations[1]
    wz, wr, wo = (ctx.weight(getattr(p, n), (hid, cin), n) for n in (
        "updateGateWeightMatrix", "resetGateWeightMatrix", "outputGateWeightMatrix"))
    rz, rr, ro = (ctx.weight(getattr(p, n), (hid, hid), n) for n in (
        "updateGateRecursionMatrix", "resetGateRecursionMatrix", "outputGateRecursionMatrix"))
    if p.hasBiasVectors:
        bz, br, bo = (ctx.weight(getattr(p, n), (hid,), n) for n in (
            "updateGateBiasVector", "resetGateBiasVector", "outputGateBiasVector"))
    else:
        bz = br = bo = np.float32(0.0)
    h = _state(inputs, 1, x.shape[1], hid)
    ys = []
    for xt in (x[::-1] if p.reverseInput else x):
        z = _act(f, xt @ wz.T + h @ rz.T + bz)
        r = _act(f, xt @ wr.T + h @ rr.T + br)
        o = _act(g, xt @ wo.T + (h * r) @ ro.T + bo)
        h = (1 - z) * o + z * h
        ys.append(h)
    return _outputs(ys, h, None, p.sequenceOutput, p.reverseInput)[: len(ctx.layer.output)]


@dataclass
class _LSTMWeights:
    w: np.ndarray  # [4, H, C_in] in gate order i, f, z, o
    r: np.ndarray  # [4, H, H]
    b: np.ndarray  # [4, H]
    peep: np.ndarray  # [3, H] for i, f, o


_GATES = ("inputGate", "forgetGate", "blockInput", "outputGate")


def _lstm_weights(wp, lp, cin: int, hid: int, ctx: LayerContext) -> _LSTMWeights:
    w = np.stack([ctx.weight(getattr(wp, g + "WeightMatrix"), (hid, cin), g) for g in _GATES])
    r = np.stack([ctx.weight(getattr(wp, g + "RecursionMatrix"), (hid, hid), g) for g in _GATES])
    if lp.hasBiasVectors:
        b = np.stack([ctx.weight(getattr(wp, g + "BiasVector"), (hid,), g) for g in _GATES])
    else:
        b = np.zeros((4, hid), dtype=np.float32)
    if lp.forgetBias:
        b = b.copy()
        b[1] += 1.0
    if lp.hasPeepholeVectors:
        peep = np.stack([ctx.weight(getattr(wp, g + "PeepholeVector"), (hid,), g)
                         for g in ("inputGate", "forgetGate", "outputGate")])
    else:
        peep = np.zeros((3, hid), dtype=np.float32)
    return _LSTMWeights(w, r, b, peep)


def _run_lstm(x, h, c, wts: _LSTMWeights, acts, lp, reverse: bool):
    f, g, hact = acts
    cell_clip = np.float32(lp.cellClipThreshold or 50.0)
    ys = []
    for xt in (x[::-1] if reverse else x):
        pre = np.einsum("bc,ghc->gbh", xt, wts.w) + np.einsum("bk,ghk->gbh", h, wts.r) + wts.b[:, None]
        i = _act(f, pre[0] + wts.peep[0] * c)
        z = _act(g, pre[2])
        if lp.coupledInputAndForgetGate:
            c = c * (1 - i) + i * z
        else:
            fg = _act(f, pre[1] + wts.peep[1] * c)
            c = c * fg + i * z
        c = np.clip(c, -cell_clip, cell_clip)
        o = _act(f, pre[3] + wts.peep[2] * c)
        h = apply_activation(hact, c) * o
        ys.append(h)
    return ys, h, c


@layer("uniDirectionalLSTM")
def uni_lstm(p, inputs, ctx: LayerContext):
    cin, hid = int(p.inputVectorSize), int(p.outputVectorSize)
    x = _sequence(inputs[0], ctx, cin)
    batch = x.shape[1]
    wts = _lstm_weights(p.weightParams, p.params, cin, hid, ctx)
    ys, h, c = _run_lstm(x, _state(inputs, 1, batch, hid), _state(inputs, 2, batch, hid),
                         wts, p.activations, p.params, p.reverseInput)
    return _outputs(ys, h, c, p.params.sequenceOutput, p.reverseInput)[: len(ctx.layer.output)]


@layer("biDirectionalLSTM")
def bi_lstm(p, inputs, ctx: LayerContext):
    cin, hid = int(p.inputVectorSize), int(p.outputVectorSize)
    x = _sequence(inputs[0], ctx, cin)
    batch = x.shape[1]
    fw = _lstm_weights(p.weightParams[0], p.params, cin, hid, ctx)
    bw = _lstm_weights(p.weightParams[1], p.params, cin, hid, ctx)
    ys_f, h_f, c_f = _run_lstm(x, _state(inputs, 1, batch, hid), _state(inputs, 2, batch, hid),
                               fw, p.activationsForwardLSTM, p.params, False)
    ys_b, h_b, c_b = _run_lstm(x, _state(inputs, 3, batch, hid), _state(inputs, 4, batch, hid),
                               bw, p.activationsBackwardLSTM, p.params, True)
    if p.params.sequenceOutput:
        y = np.concatenate([np.stack(ys_f), np.stack(ys_b[::-1])], axis=-1)
    else:
        y = np.concatenate([h_f, h_b], axis=-1)[None]
    outs = [_as_blob(y)] + [_as_blob(s[None]) for s in (h_f, c_f, h_b, c_b)]
    return outs[: len(ctx.layer.output)]
