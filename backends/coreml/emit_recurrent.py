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
ConvLSTM have no Core ML layer and are unrolled over the static time axis with
ND layers (specification 4).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from kcc.backends.coreml.context import CoremlContext, coreml_emitter
from kcc.ir import Graph, Node

RECURRENT_OPS = ("rnn", "lstm", "gru")

# IR activation -> (ActivationParams variant, fields)
_ACTS: dict[str, tuple[str, dict[str, float]]] = {
    "linear": ("linear", {"alpha": 1.0}),
    "relu": ("ReLU", {}),
    "tanh": ("tanh", {}),
    "sigmoid": ("sigmoid", {}),
    "hard_sigmoid": ("sigmoidHard", {"alpha": 1.0 / 6.0, "beta": 0.5}),
    "softsign": ("softsign", {}),
    "softplus": ("softplus", {}),
    "elu": ("ELU", {"alpha": 1.0}),
    "leaky_relu": ("leakyReLU", {"alpha": 0.2}),
}


def sequence_values(graph: Graph) -> set[str]:
    """Names of the time-major values: recurrent inputs/sequence outputs and concats joining them."""
    seq: set[str] = set()
    for node in graph.nodes():
        if node.op in RECURRENT_OPS + ("conv_lstm",):
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


def _elementwise_ops() -> frozenset[str]:
    from kcc.backends.coreml.emit_activation import ACTIVATIONS
    return frozenset(("add", "sub", "mul", "div", "max", "min", "identity", "neg") + tuple(ACTIVATIONS))


_ELEMENTWISE = _elementwise_ops()


def _activation(ctx: CoremlContext, node: Node, msg: Any, name: str) -> None:
    if name not in _ACTS:
        raise ctx.fail(node, f"recurrent activation {name!r} has no Core ML form; use tanh, sigmoid, "
                             f"hard_sigmoid, relu, linear, softsign, softplus, elu or leaky_relu")
    from kcc.ops.recurrent import activation_attrs

    params = activation_attrs(name, node.attrs) if name != "linear" else {}
    kind, fields = _ACTS[name]
    sub = getattr(msg, kind)
    sub.SetInParent()
    for key, val in fields.items():
        setattr(sub, key, float(params.get(key, val)))


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


@coreml_emitter("gru")
def _gru(ctx: CoremlContext, node: Node) -> None:
    _check(ctx, node)
    if node.attrs["reset_after"]:
        _gru_reset_after(ctx, node)
        return
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


def _gru_reset_after(ctx: CoremlContext, node: Node) -> None:
    """Keras 3's default GRU, unrolled over the (static) time axis in the ND layout.

    The input projection of every step is one batchedMatmul; per step the
    recurrent projection is an innerProduct (with the recurrent bias, which the
    reset gate multiplies), then the gates and ``h = (h - h~) * z + h~``.
    """
    x, w, r, b, h0 = node.inputs
    ctx.need_nd(node, "a GRU with reset_after=True (Core ML's gru layer resets before the recurrence)")
    steps, _, features = ctx.dims(x)
    hidden = int(r.shape[1])
    wk, rk = np.asarray(w.const, np.float32), np.asarray(r.const, np.float32)
    bias = np.zeros(6 * hidden, np.float32) if b is None else np.asarray(b.const, np.float32)
    f_act, g_act = node.attrs["recurrent_activation"], node.attrs["activation"]
    xw = ctx.tmp("xw")
    _, p = ctx.layer("batchedMatmul", [ctx.name(x)], xw)
    p.weightMatrixFirstDimension, p.weightMatrixSecondDimension = features, 3 * hidden
    ctx.weights(p.weights, wk)            # (3H, F) row-major is the column-major (F, 3H) matrix
    p.hasBias = True
    ctx.weights(p.bias, bias[:3 * hidden])
    h = ctx.name(h0) if h0 is not None else ctx.constant(np.zeros((1, hidden), np.float32), ctx.tmp("h0"))
    ys: dict[int, str] = {}
    order = range(steps - 1, -1, -1) if node.attrs["direction"] == "reverse" else range(steps)
    for t in order:
        row, xt = ctx.tmp(f"xw{t}"), ctx.tmp(f"xw{t}_step")
        _, p = ctx.layer("sliceStatic", [xw], row)
        p.beginIds.extend([t, 0, 0])
        p.endIds.extend([t + 1, 1, 3 * hidden])
        p.strides.extend([1, 1, 1])
        p.beginMasks.extend([False] * 3)
        p.endMasks.extend([False] * 3)
        _, p = ctx.layer("squeeze", [row], xt)
        p.axes.extend([0])
        hr = ctx.tmp(f"hr{t}")
        _, p = ctx.layer("innerProduct", [h], hr)
        p.inputChannels, p.outputChannels = hidden, 3 * hidden
        ctx.weights(p.weights, rk)
        p.hasBias = True
        ctx.weights(p.bias, bias[3 * hidden:])
        xs, hs = [ctx.tmp(f"x{g}{t}") for g in "zrh"], [ctx.tmp(f"h{g}{t}") for g in "zrh"]
        for src, dst in ((xt, xs), (hr, hs)):
            _, p = ctx.layer("splitND", [src], dst)
            p.axis, p.numSplits = 1, 3
            p.splitSizes.extend([hidden] * 3)
        pre_z, pre_r = ctx.tmp(f"prez{t}"), ctx.tmp(f"prer{t}")
        ctx.layer("addBroadcastable", [xs[0], hs[0]], pre_z)
        ctx.layer("addBroadcastable", [xs[1], hs[1]], pre_r)
        z, rg = _act(ctx, node, f_act, pre_z), _act(ctx, node, f_act, pre_r)
        gated, pre_h = ctx.tmp(f"rh{t}"), ctx.tmp(f"preh{t}")
        ctx.layer("multiplyBroadcastable", [rg, hs[2]], gated)
        ctx.layer("addBroadcastable", [xs[2], gated], pre_h)
        hh = _act(ctx, node, g_act, pre_h)
        diff, scaled, h_new = ctx.tmp(f"d{t}"), ctx.tmp(f"dz{t}"), ctx.tmp(f"h{t}")
        ctx.layer("subtractBroadcastable", [h, hh], diff)
        ctx.layer("multiplyBroadcastable", [diff, z], scaled)
        ctx.layer("addBroadcastable", [scaled, hh], h_new)
        h = ys[t] = h_new
    ctx.layer("activation", [h], ctx.out(node, 1))[1].linear.alpha = 1.0
    stacked = []
    for t in range(steps):
        e = ctx.tmp(f"y{t}")
        _, p = ctx.layer("expandDims", [ys[t]], e)
        p.axes.extend([0])
        stacked.append(e)
    _, p = ctx.layer("concatND", stacked, ctx.out(node, 0))
    p.axis = 0
    ctx.require(4, node, "ND layers of an unrolled GRU (reset_after=True)")


# ------------------------------------------------------------- conv_lstm
def _conv_layer(ctx: CoremlContext, inp: str, out: str, w: np.ndarray, b: np.ndarray | None,
                strides: tuple, dilations: tuple, pads: tuple | None) -> None:
    """A 2-D convolution (pads None = TensorFlow 'same')."""
    _, p = ctx.layer("convolution", [inp], out)
    p.outputChannels, p.kernelChannels, p.nGroups = int(w.shape[0]), int(w.shape[1]), 1
    p.kernelSize.extend(int(k) for k in w.shape[2:])
    p.stride.extend(int(s) for s in strides)
    p.dilationFactor.extend(int(d) for d in dilations)
    if pads is None:
        p.same.asymmetryMode = type(p.same).SamePaddingMode.Value("BOTTOM_RIGHT_HEAVY")
    else:
        p.valid.SetInParent()
        for begin, end in ((pads[0], pads[2]), (pads[1], pads[3])):
            edge = p.valid.paddingAmounts.borderAmounts.add()
            edge.startEdgeSize, edge.endEdgeSize = int(begin), int(end)
    ctx.weights(p.weights, w)
    if b is not None:
        p.hasBias = True
        ctx.weights(p.bias, b)


def _act(ctx: CoremlContext, node: Node, name: str, x: str) -> str:
    from kcc.backends.coreml.emit_activation import apply_activation
    from kcc.ops.recurrent import activation_attrs

    out = ctx.tmp(name)
    if name == "exp":
        from kcc.backends.coreml.emit_activation import unary
        unary(ctx, "EXP", x, out)
        return out
    attrs = activation_attrs(name, node.attrs) if name != "linear" else {}
    apply_activation(ctx, name, attrs, x, out, node.outputs[1])
    return out


@coreml_emitter("conv_lstm")
def _conv_lstm(ctx: CoremlContext, node: Node) -> None:
    """Unrolled over the (static) time axis in the ND layout: per step two convolutions, the gates, the state.

    1-D steps get a unit H axis so they use the 2-D convolution layer.
    """
    x, w, r, b, h0, c0 = node.inputs
    ctx.need_nd(node, "ConvLSTM (unrolled over time)")
    _check(ctx, node)
    n = x.rank - 3
    if n not in (1, 2):
        raise ctx.fail(node, f"ConvLSTM{n}D has no Core ML form (3-D convolutions cannot be unrolled here)")
    dims = ctx.dims(x)
    steps = dims[0]
    to2d = (lambda a: a.reshape(a.shape[:2] + (1,) + a.shape[2:])) if n == 1 else (lambda a: a)
    wk, rk = to2d(np.asarray(w.const, np.float32)), to2d(np.asarray(r.const, np.float32))
    bias = None if b is None else np.asarray(b.const, np.float32)
    strides = ((1,) if n == 1 else ()) + tuple(node.attrs["strides"] or (1,) * n)
    dil = ((1,) if n == 1 else ()) + tuple(node.attrs["dilations"] or (1,) * n)
    pads = None
    if node.attrs["auto_pad"] != "same":
        p = node.attrs["pads"] or (0,) * (2 * n)
        pads = (0, p[0], 0, p[1]) if n == 1 else tuple(p)
    rpads = tuple((k - 1) // 2 for k in rk.shape[2:]) + tuple(k - 1 - (k - 1) // 2 for k in rk.shape[2:])
    f_act, g_act = node.attrs["recurrent_activation"], node.attrs["activation"]
    filters = int(r.shape[1])

    def step_form(blob: str, hint: str) -> str:   # (1, F, *S) state -> the 2-D form
        return _expand(ctx, blob, [2]) if n == 1 else blob

    h = step_form(ctx.name(h0), "h") if h0 is not None else None
    c = step_form(ctx.name(c0), "c") if c0 is not None else None
    ys: dict[int, str] = {}
    order = range(steps - 1, -1, -1) if node.attrs["direction"] == "reverse" else range(steps)
    for t in order:
        xt = ctx.tmp(f"x{t}")
        _, p = ctx.layer("sliceStatic", [ctx.name(x)], xt)
        p.beginIds.extend([t] + [0] * (x.rank - 1))
        p.endIds.extend([t + 1] + list(dims[1:]))
        p.strides.extend([1] * x.rank)
        p.beginMasks.extend([False] * x.rank)
        p.endMasks.extend([False] * x.rank)
        xt_squeezed = ctx.tmp(f"x{t}_step")
        _, p = ctx.layer("squeeze", [xt], xt_squeezed)
        p.axes.extend([0])
        xt = _expand(ctx, xt_squeezed, [2]) if n == 1 else xt_squeezed
        pre = ctx.tmp(f"xw{t}")
        _conv_layer(ctx, xt, pre, wk, bias, strides, dil, pads)
        if h is not None:
            hr, total = ctx.tmp(f"hr{t}"), ctx.tmp(f"pre{t}")
            _conv_layer(ctx, h, hr, rk, None, (1, 1), (1, 1), rpads)
            ctx.layer("addBroadcastable", [pre, hr], total)
            pre = total
        gates = [ctx.tmp(f"{g}{t}") for g in "iofc"]
        _, p = ctx.layer("splitND", [pre], gates)
        p.axis, p.numSplits = 1, 4
        p.splitSizes.extend([filters] * 4)
        i, o, fg, cc = (_act(ctx, node, a, g) for a, g in zip((f_act, f_act, f_act, g_act), gates))
        ig = ctx.tmp(f"ig{t}")
        ctx.layer("multiplyBroadcastable", [i, cc], ig)
        if c is not None:
            fc, c_new = ctx.tmp(f"fc{t}"), ctx.tmp(f"c{t}")
            ctx.layer("multiplyBroadcastable", [fg, c], fc)
            ctx.layer("addBroadcastable", [fc, ig], c_new)
            c = c_new
        else:
            c = ig
        h = ctx.tmp(f"h{t}")
        ctx.layer("multiplyBroadcastable", [o, _act(ctx, node, g_act, c)], h)
        ys[t] = h
    squeeze = [2] if n == 1 else []

    def state_out(blob: str, out: str) -> None:
        if squeeze:
            _, p = ctx.layer("squeeze", [blob], out)
            p.axes.extend(squeeze)
        else:
            ctx.layer("activation", [blob], out)[1].linear.alpha = 1.0

    state_out(h, ctx.out(node, 1))
    state_out(c, ctx.out(node, 2))
    stacked = []
    for t in range(steps):
        e = ctx.tmp(f"y{t}")
        _, p = ctx.layer("expandDims", [ys[t]], e)
        p.axes.extend([0])
        stacked.append(e)
    if squeeze:
        y4 = ctx.tmp("y")
        _, p = ctx.layer("concatND", stacked, y4)
        p.axis = 0
        _, p = ctx.layer("squeeze", [y4], ctx.out(node, 0))
        p.axes.extend([3])
    else:
        _, p = ctx.layer("concatND", stacked, ctx.out(node, 0))
        p.axis = 0
    ctx.require(4, node, "ND layers of an unrolled ConvLSTM")


__all__ = ["sequence_values", "RECURRENT_OPS"]
